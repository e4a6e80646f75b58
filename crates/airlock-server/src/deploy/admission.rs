//! The Kubernetes ValidatingAdmissionWebhook: `POST /admission/v1/validate` takes an
//! AdmissionReview (`admission.k8s.io/v1`) for a Pod or a workload with a pod template, finds
//! every image it would run (`airlock_core::workload`), and verifies them against the stage its
//! namespace deploys from (`[[deploy.admission.namespaces]]`). The answer is an AdmissionReview
//! whose `response.uid` is the request's: `allowed`, or denied with each failed image, its reason
//! and its fix in `status.message` (`warn` mode: allowed, with one warning per failed image).
//!
//! It fails closed: a namespace no rule maps, an object it cannot read, or storage that cannot
//! answer is a denial unless configured otherwise. It changes nothing, so `dryRun` requests are
//! answered like any other. The API server calls it without an airlock identity; protect it as
//! docs/kubernetes.md says (TLS, and a client certificate or network policy).

use std::collections::BTreeSet;

use airlock_api::deploy::{VerifyFailure, VerifyRequest};
use airlock_core::workload::{ContainerImage, images_of};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Reader;
use super::routes::DeployState;
use crate::config::{AdmissionConfig, AdmissionMode, UnmatchedNamespace};

/// Largest AdmissionReview accepted (a larger body is answered `413` before it is read on): an
/// object and its old version, each at most the 1.5 MiB etcd keeps, with room for the envelope.
pub const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// Longest `status.message` sent back; the API server shows it to whoever applied the object.
const MAX_MESSAGE_CHARS: usize = 4000;

const API_VERSION: &str = "admission.k8s.io/v1";

/// An AdmissionReview as the API server sends it (the fields airlock reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    api_version: String,
    kind: String,
    request: Option<ReviewRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewRequest {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    object: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// The API group of each kind airlock reads: a custom resource that happens to share a kind's
/// name is not read as it.
const KIND_GROUPS: [(&str, &str); 8] = [
    ("Pod", ""),
    ("ReplicationController", ""),
    ("Deployment", "apps"),
    ("StatefulSet", "apps"),
    ("DaemonSet", "apps"),
    ("ReplicaSet", "apps"),
    ("Job", "batch"),
    ("CronJob", "batch"),
];

/// The AdmissionReview airlock answers with.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewAnswer {
    api_version: &'static str,
    kind: &'static str,
    response: ReviewResponse,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewResponse {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ReviewStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ReviewStatus {
    code: u16,
    message: String,
}

/// What the review decided, before it is written as an AdmissionReview.
#[derive(Debug)]
enum Outcome {
    Allow,
    Deny { code: u16, message: String },
    Warn(Vec<String>),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny { .. } => "deny",
            Outcome::Warn(_) => "warn",
        }
    }
}

/// `POST /admission/v1/validate`.
pub(super) async fn validate(State(state): State<DeployState>, body: Bytes) -> Response {
    let Some(admission) = state.deploy.config().admission.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let review: Review = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(err) => {
            metrics::counter!(crate::metrics::ADMISSION_REVIEWS, "outcome" => "error").increment(1);
            return bad_review(format!("the body is not an AdmissionReview: {err}"));
        }
    };
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        metrics::counter!(crate::metrics::ADMISSION_REVIEWS, "outcome" => "error").increment(1);
        return bad_review(format!(
            "airlock answers AdmissionReview {API_VERSION}, not {} {}; set admissionReviewVersions: [\"v1\"] in the ValidatingWebhookConfiguration",
            review.kind, review.api_version
        ));
    }
    let Some(request) = review.request else {
        metrics::counter!(crate::metrics::ADMISSION_REVIEWS, "outcome" => "error").increment(1);
        return bad_review("the AdmissionReview has no request".to_string());
    };
    let outcome = decide(&state, &admission, &request).await;
    metrics::counter!(crate::metrics::ADMISSION_REVIEWS, "outcome" => outcome.label()).increment(1);
    if let Outcome::Deny { message, .. } = &outcome {
        tracing::info!(uid = %request.uid, namespace = ?request.namespace, kind = %request.kind.kind, %message, "admission denied");
    }
    let response = match outcome {
        Outcome::Allow => ReviewResponse {
            uid: request.uid,
            allowed: true,
            status: None,
            warnings: Vec::new(),
        },
        Outcome::Warn(warnings) => ReviewResponse {
            uid: request.uid,
            allowed: true,
            status: None,
            warnings,
        },
        Outcome::Deny { code, message } => ReviewResponse {
            uid: request.uid,
            allowed: false,
            status: Some(ReviewStatus {
                code,
                message: bounded(message),
            }),
            warnings: Vec::new(),
        },
    };
    Json(ReviewAnswer {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response,
    })
    .into_response()
}

/// A review airlock cannot read: `400` with the reason, which the API server treats as the
/// webhook failing (its `failurePolicy` decides; `Fail` denies).
fn bad_review(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

async fn decide(
    state: &DeployState,
    admission: &AdmissionConfig,
    request: &ReviewRequest,
) -> Outcome {
    if matches!(request.operation.as_deref(), Some("DELETE" | "CONNECT")) {
        return Outcome::Allow;
    }
    // A subresource other than a Pod's ephemeral containers (`status`, `scale`, `binding`)
    // cannot change which images run: the kubelet's status updates and `kubectl scale` pass.
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|sub| !sub.is_empty() && sub != "ephemeralcontainers")
    {
        return Outcome::Allow;
    }
    let namespace = request.namespace.clone().or_else(|| {
        request
            .object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/namespace"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
    });
    let namespace = namespace.unwrap_or_default();
    let Some(rule) = admission.namespaces.iter().find(|r| r.matches(&namespace)) else {
        return match admission.unmatched {
            UnmatchedNamespace::Allow => Outcome::Allow,
            UnmatchedNamespace::Deny => Outcome::Deny {
                code: 403,
                message: format!(
                    "airlock: no [[deploy.admission.namespaces]] rule maps namespace {namespace:?} to a stage, and unmapped namespaces are denied; add a rule for it, or leave it out of the webhook's namespaceSelector"
                ),
            },
        };
    };
    let mode = rule.mode.unwrap_or(admission.mode);
    let fail = |code: u16, message: String| match mode {
        AdmissionMode::Enforce => Outcome::Deny { code, message },
        AdmissionMode::Warn => Outcome::Warn(vec![bounded_warning(message)]),
    };
    let Some(object) = &request.object else {
        return fail(
            400,
            format!(
                "airlock: the {} review carries no object to check",
                request.kind.kind
            ),
        );
    };
    let kind = &request.kind;
    if KIND_GROUPS
        .iter()
        .any(|(name, group)| *name == kind.kind && *group != kind.group)
    {
        return fail(
            400,
            format!(
                "airlock: {}/{} is not a Kubernetes workload airlock reads (it reads Pods and ReplicationControllers of the core group, Deployments, StatefulSets, DaemonSets and ReplicaSets of apps, Jobs and CronJobs of batch); leave it out of the webhook's rules",
                kind.group, kind.kind
            ),
        );
    }
    let images = match images_of(&kind.kind, object) {
        Ok(images) => images,
        Err(err) => return fail(400, format!("airlock: {err}")),
    };
    let references: Vec<String> = images
        .iter()
        .map(|image| image.image.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if references.is_empty() {
        return Outcome::Allow;
    }
    let max = state.deploy.config().max_references;
    if references.len() > max {
        return fail(
            400,
            format!(
                "airlock: the {} names {} distinct images and airlock checks at most {max} at once; raise [deploy] max_references (at most 1000)",
                kind.kind,
                references.len()
            ),
        );
    }
    let verify = VerifyRequest {
        stage: rule.stage.clone(),
        references,
        current: rule.current,
    };
    let answer = match state.deploy.verify(Reader::Airlock, &verify).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(error = %err, "admission could not verify");
            return fail(
                500,
                format!(
                    "airlock could not check the images against stage {}: {err}; try again once airlock's storage answers",
                    rule.stage
                ),
            );
        }
    };
    if answer.verified {
        return Outcome::Allow;
    }
    let lines: Vec<String> = answer
        .results
        .iter()
        .filter(|r| !r.verified)
        .flat_map(|result| {
            let fields = fields_of(&images, &result.reference);
            result
                .failures
                .iter()
                .map(move |f| describe(&fields, &result.reference, f))
        })
        .collect();
    match mode {
        AdmissionMode::Enforce => Outcome::Deny {
            code: 403,
            message: format!(
                "airlock: {} image reference(s) not verified for stage {}: {}",
                answer.results.iter().filter(|r| !r.verified).count(),
                rule.stage,
                lines.join("; ")
            ),
        },
        AdmissionMode::Warn => Outcome::Warn(lines.into_iter().map(bounded_warning).collect()),
    }
}

/// The fields that name `reference` (`spec.containers[0].image`), comma-separated.
fn fields_of(images: &[ContainerImage], reference: &str) -> String {
    images
        .iter()
        .filter(|image| image.image == reference)
        .map(|image| image.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One failed check, its code first, so a warning cut at 256 characters keeps what failed and
/// where, and loses the fix last.
fn describe(fields: &str, reference: &str, failure: &VerifyFailure) -> String {
    format!(
        "{}: {fields} {reference:?}: {}; fix: {}",
        failure.code, failure.message, failure.remediation
    )
}

fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push_str(" ... (more: airlock verify lists every failure)");
    cut
}

/// The API server may truncate warnings over 256 characters; airlock cuts each to that itself,
/// from the end (see [`describe`]).
fn bounded_warning(message: String) -> String {
    const MAX: usize = 256;
    if message.chars().count() <= MAX {
        return message;
    }
    let mut cut: String = message.chars().take(MAX - 3).collect();
    cut.push_str("...");
    cut
}
