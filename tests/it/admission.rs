//! The Kubernetes ValidatingAdmissionWebhook (`POST /admission/v1/validate`) end to end, over TLS
//! and without airlock credentials, as the API server calls it.
//!
//! The AdmissionReview documents in `tests/fixtures/admission/` were written independently from
//! the Kubernetes API reference (`admission.k8s.io/v1`; Pod, Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job, CronJob and Service as the API server sends them after defaulting), not from
//! airlock's code; see their `ORIGIN.md`. Their images are placeholders (`IMAGE_APP`,
//! `IMAGE_INIT`, `IMAGE_DEBUG`) each test replaces with a digest it pushed. The server runs
//! `tests/fixtures/admission/airlock.toml`: namespaces `prod` and `prod-*` deploy from stage prod
//! (enforced), `staging-*` from staging (warn only), and no other namespace is mapped.
//!
//! Checked: promoted images are admitted in every supported kind; an unpromoted init or ephemeral
//! container, a tag and another stage's reference are denied naming the field, the failure code
//! and the fix; a warn namespace admits with one bounded warning per failed image; an unmapped
//! namespace fails closed, a delete passes and a dry run changes nothing; malformed, outdated,
//! unsupported and oversized reviews are refused while the server answers on; the route exists
//! only when configured; reviews are counted by outcome.

use crate::common;

/// The host name the cluster pulls airlock by (`[deploy] registry_hosts`); references are only
/// compared with it, never connected to.
const REGISTRY_HOST: &str = "airlock.example.com";

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{TestPki, TestServer, add_user, https_client_as, permissive_bundle, post_json};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEBHOOK: &str = "/admission/v1/validate";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/admission");
const PASSWORD: &str = "admission-test-password-1";

/// Each workload fixture, its kind, and where the kind keeps the pod spec (Kubernetes API
/// reference: a Pod's `spec`, a workload's pod template, a CronJob's job template).
const WORKLOADS: [(&str, &str, &str); 7] = [
    ("pod.json", "Pod", "spec"),
    ("deployment.json", "Deployment", "spec.template.spec"),
    ("statefulset.json", "StatefulSet", "spec.template.spec"),
    ("daemonset.json", "DaemonSet", "spec.template.spec"),
    ("replicaset.json", "ReplicaSet", "spec.template.spec"),
    ("job.json", "Job", "spec.template.spec"),
    (
        "cronjob.json",
        "CronJob",
        "spec.jobTemplate.spec.template.spec",
    ),
];

/// A TLS server running `airlock.toml` with the permissive policy bundle and no approvals into
/// prod, holding two digests of `dev/team/app`: one promoted dev -> staging -> prod, one pushed to
/// dev only.
struct Bed {
    s: TestServer,
    pki: TestPki,
    /// Promoted into staging and prod (pushed as `1.0`, a tag the promotions carry along).
    promoted: String,
    /// Pushed to dev as `2.0`, never promoted.
    unpromoted: String,
    _temp: tempfile::TempDir,
}

impl Bed {
    async fn start() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let bundle = permissive_bundle(&temp.path().join("bundle"));
        let pki = TestPki::new();
        let config = format!("{FIXTURES}/airlock.toml");
        let s = TestServer::start_tls_with(
            &pki,
            &["--config", &config],
            &[
                ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
                ("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "0"),
                ("AIRLOCK_DEPLOY__REGISTRY_HOSTS", REGISTRY_HOST),
            ],
        );
        add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
        let rita = https_client_as(&pki.ca_cert, "rita", PASSWORD);
        let (_, promoted) = s
            .push_image("dev/team/app", "1.0", &[b"the promoted release"])
            .await;
        let (_, unpromoted) = s
            .push_image("dev/team/app", "2.0", &[b"never promoted"])
            .await;
        for (source, to) in [("dev/team/app", "staging"), ("staging/team/app", "prod")] {
            let (status, body) = post_json(
                &rita,
                &s.url("/api/v1/promotions"),
                json!({"source": source, "reference": promoted, "to": to}),
            )
            .await;
            assert_eq!(status, 201, "promote {source} -> {to}: {body:#}");
            assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
        }
        Self {
            s,
            pki,
            promoted,
            unpromoted,
            _temp: temp,
        }
    }

    /// `HOST/STAGE/team/app@DIGEST`: `digest` as a manifest names it pulled from `stage`.
    fn image(&self, stage: &str, digest: &str) -> String {
        format!("{REGISTRY_HOST}/{stage}/team/app@{digest}")
    }

    /// The review in `fixture` with every container on the digest promoted into prod.
    fn all_promoted(&self, fixture: &str) -> Value {
        let image = self.image("prod", &self.promoted);
        review_from(
            fixture,
            &[
                ("IMAGE_APP", image.as_str()),
                ("IMAGE_INIT", image.as_str()),
                ("IMAGE_DEBUG", image.as_str()),
            ],
        )
    }
}

/// The AdmissionReview in `fixture`, each placeholder image replaced as `images` says (a
/// placeholder the fixture lacks is ignored; one left unreplaced fails the test).
fn review_from(fixture: &str, images: &[(&str, &str)]) -> Value {
    let path = Path::new(FIXTURES).join(fixture);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    for (placeholder, image) in images {
        text = text.replace(&format!("\"{placeholder}\""), &format!("\"{image}\""));
    }
    assert!(
        !text.contains("\"IMAGE_"),
        "{fixture}: a placeholder image was left unreplaced: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{fixture}: {err}"))
}

/// Moves `review`'s request and object to `namespace`.
fn in_namespace(review: &mut Value, namespace: &str) {
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
}

/// POSTs `body` to the webhook as JSON without credentials; returns the status and the text.
async fn post_raw(s: &TestServer, body: Vec<u8>) -> (u16, String) {
    let response = s
        .anonymous
        .post(s.url(WEBHOOK))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Sends `review` and returns the answer's `response`, having checked the envelope: `200`, an
/// AdmissionReview v1, and the request's `uid`.
async fn answer(s: &TestServer, review: &Value) -> Value {
    let (status, text) = post_raw(s, serde_json::to_vec(review).unwrap()).await;
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{status}, not JSON ({err}): {text}"));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1", "{body:#}");
    assert_eq!(body["kind"], "AdmissionReview", "{body:#}");
    assert_eq!(
        body["response"]["uid"], review["request"]["uid"],
        "{body:#}"
    );
    body["response"].clone()
}

/// Checks that `response` admits without a condition: no status, no warning.
fn assert_admitted(what: &str, response: &Value) {
    assert_eq!(response["allowed"], true, "{what}: {response:#}");
    assert!(response["status"].is_null(), "{what}: {response:#}");
    assert!(
        response["warnings"]
            .as_array()
            .is_none_or(|warnings| warnings.is_empty()),
        "{what}: {response:#}"
    );
}

/// The `status.code` and `status.message` of a denial.
fn denial(response: &Value) -> (u64, String) {
    assert_eq!(response["allowed"], false, "{response:#}");
    let code = response["status"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("a denial without status.code: {response:#}"));
    let message = response["status"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("a denial without status.message: {response:#}"));
    (code, message.to_string())
}

/// The warnings of an admitting `response`.
fn warnings_of(response: &Value) -> Vec<String> {
    assert_eq!(response["allowed"], true, "{response:#}");
    response["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings: {response:#}"))
        .iter()
        .map(|w| {
            w.as_str()
                .unwrap_or_else(|| panic!("{response:#}"))
                .to_string()
        })
        .collect()
}

/// POSTs `body` to the webhook over a TLS connection of its own and returns the first line of
/// the answer, read while the body is still being sent: a server may refuse a body over its
/// limit once the limit has arrived, without reading the rest (as tests/it/connections.rs does in
/// plaintext).
async fn status_line_of_post(s: &TestServer, ca_cert: &Path, body: Vec<u8>) -> String {
    let config = common::tls_client_config(ca_cert, None, &[b"http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(&s.host)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let header = format!(
        "POST {WEBHOOK} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        s.host,
        body.len()
    );
    // The writer stays open once done: a half-closed connection ends the request.
    let sender = tokio::spawn(async move {
        writer.write_all(header.as_bytes()).await?;
        writer.write_all(&body).await?;
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let mut piece = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while !received.windows(2).any(|pair| pair == b"\r\n") {
            let n = reader.read(&mut piece).await?;
            if n == 0 {
                break;
            }
            received.extend_from_slice(&piece[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    sender.abort();
    let received = String::from_utf8_lossy(&received).into_owned();
    assert!(
        matches!(read, Ok(Ok(()))),
        "reading the answer: {read:?}; received {received:?}"
    );
    received.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn promoted_images_are_admitted_in_every_supported_kind() {
    let bed = Bed::start().await;
    for (fixture, kind, _) in WORKLOADS {
        let review = bed.all_promoted(fixture);
        assert_eq!(
            review["request"]["kind"]["kind"], kind,
            "{fixture}: {review:#}"
        );
        assert_eq!(
            review["request"]["object"]["kind"], kind,
            "{fixture}: {review:#}"
        );
        assert_admitted(fixture, &answer(&bed.s, &review).await);
    }
    // `kubectl debug` adding an ephemeral container that runs a promoted image.
    let fixture = "pod-ephemeral-container.json";
    let response = answer(&bed.s, &bed.all_promoted(fixture)).await;
    assert_admitted(fixture, &response);
}

#[tokio::test]
async fn an_unpromoted_init_or_ephemeral_container_is_denied_naming_its_field_and_fix() {
    let bed = Bed::start().await;
    let promoted = bed.image("prod", &bed.promoted);
    let unpromoted = bed.image("prod", &bed.unpromoted);
    // (fixture, the field that names the unpromoted image, the review)
    let mut cases: Vec<(&str, String, Value)> = WORKLOADS
        .iter()
        .map(|&(fixture, _, pod_spec)| {
            let review = review_from(
                fixture,
                &[
                    ("IMAGE_APP", promoted.as_str()),
                    ("IMAGE_INIT", unpromoted.as_str()),
                ],
            );
            (
                fixture,
                format!("{pod_spec}.initContainers[0].image"),
                review,
            )
        })
        .collect();
    let ephemeral = "pod-ephemeral-container.json";
    cases.push((
        ephemeral,
        "spec.ephemeralContainers[0].image".to_string(),
        review_from(
            ephemeral,
            &[
                ("IMAGE_APP", promoted.as_str()),
                ("IMAGE_INIT", promoted.as_str()),
                ("IMAGE_DEBUG", unpromoted.as_str()),
            ],
        ),
    ));
    for (fixture, field, review) in cases {
        let response = answer(&bed.s, &review).await;
        let (code, message) = denial(&response);
        assert_eq!(code, 403, "{fixture}: {response:#}");
        for expected in [
            field.as_str(),
            unpromoted.as_str(),
            "NOT_PROMOTED",
            "airlock promote",
        ] {
            assert!(
                message.contains(expected),
                "{fixture}: no {expected:?} in the denial: {response:#}"
            );
        }
        // The app container runs the promoted digest: it is not blamed.
        assert!(
            !message.contains(".containers[0].image"),
            "{fixture}: {response:#}"
        );
    }
}

#[tokio::test]
async fn a_tag_or_another_stages_reference_is_denied_naming_the_reference_to_deploy() {
    let bed = Bed::start().await;
    let promoted = bed.image("prod", &bed.promoted);
    // Each fix names `promoted`: the digest the tag stands for now, pinned; or the same digest
    // pulled from prod.
    let cases = [
        (format!("{REGISTRY_HOST}/prod/team/app:1.0"), "TAG_REFUSED"),
        (bed.image("dev", &bed.promoted), "STAGE_MISMATCH"),
        (bed.image("staging", &bed.promoted), "STAGE_MISMATCH"),
    ];
    for (image, failure) in cases {
        let review = review_from(
            "deployment.json",
            &[
                ("IMAGE_APP", image.as_str()),
                ("IMAGE_INIT", promoted.as_str()),
            ],
        );
        let response = answer(&bed.s, &review).await;
        let (code, message) = denial(&response);
        assert_eq!(code, 403, "{image}: {response:#}");
        for expected in [
            failure,
            "spec.template.spec.containers[0].image",
            image.as_str(),
            promoted.as_str(),
        ] {
            assert!(
                message.contains(expected),
                "{image}: no {expected:?} in the denial: {response:#}"
            );
        }
    }
}

#[tokio::test]
async fn a_warn_namespace_admits_a_failed_check_with_one_bounded_warning_per_image() {
    let bed = Bed::start().await;
    let promoted = bed.image("staging", &bed.promoted);
    let unpromoted = bed.image("staging", &bed.unpromoted);

    // Everything promoted into staging: admitted without a warning.
    let mut clean = review_from(
        "deployment.json",
        &[
            ("IMAGE_APP", promoted.as_str()),
            ("IMAGE_INIT", promoted.as_str()),
        ],
    );
    in_namespace(&mut clean, "staging-a");
    assert_admitted("staging-a, promoted", &answer(&bed.s, &clean).await);

    // An init container never promoted into staging: admitted, with a warning naming it.
    let mut failing = review_from(
        "deployment.json",
        &[
            ("IMAGE_APP", promoted.as_str()),
            ("IMAGE_INIT", unpromoted.as_str()),
        ],
    );
    in_namespace(&mut failing, "staging-a");
    let response = answer(&bed.s, &failing).await;
    assert!(response["status"].is_null(), "{response:#}");
    let warnings = warnings_of(&response);
    assert_eq!(warnings.len(), 1, "one failed image: {response:#}");
    // The API server may truncate a warning over 256 characters (AdmissionResponse.warnings).
    for warning in &warnings {
        let length = warning.chars().count();
        assert!(length <= 256, "a warning of {length} chars: {response:#}");
    }
    for expected in ["spec.template.spec.initContainers[0].image", "NOT_PROMOTED"] {
        assert!(
            warnings[0].contains(expected),
            "no {expected:?} in the warning: {response:#}"
        );
    }
}

#[tokio::test]
async fn an_unmapped_namespace_fails_closed_a_delete_passes_and_a_dry_run_changes_nothing() {
    let bed = Bed::start().await;

    // No rule maps `other`: denied even with promoted images, naming what to configure.
    let mut unmapped = bed.all_promoted("pod.json");
    in_namespace(&mut unmapped, "other");
    let response = answer(&bed.s, &unmapped).await;
    let (code, message) = denial(&response);
    assert_eq!(code, 403, "{response:#}");
    for expected in ["[[deploy.admission.namespaces]]", "other"] {
        assert!(
            message.contains(expected),
            "no {expected:?} in the denial: {response:#}"
        );
    }

    // A DELETE carries no object: it passes, whatever the old object ran.
    let delete = review_from("deployment-delete.json", &[]);
    assert!(delete["request"]["object"].is_null(), "{delete:#}");
    assert_admitted("DELETE", &answer(&bed.s, &delete).await);

    // A dry run of a denied object is answered as the real request is, and writes nothing.
    let denied = review_from(
        "deployment.json",
        &[
            ("IMAGE_APP", bed.image("prod", &bed.promoted).as_str()),
            ("IMAGE_INIT", bed.image("prod", &bed.unpromoted).as_str()),
        ],
    );
    let mut dry_run = denied.clone();
    dry_run["request"]["dryRun"] = json!(true);
    let before = bed.s.audit_entries().await.len();
    let dry = answer(&bed.s, &dry_run).await;
    let after = bed.s.audit_entries().await.len();
    let (_, message) = denial(&dry);
    assert!(message.contains("NOT_PROMOTED"), "{dry:#}");
    assert_eq!(after, before, "the dry run wrote audit entries: {dry:#}");
    let real = answer(&bed.s, &denied).await;
    assert_eq!(dry, real, "dry run: {dry:#}\nreal: {real:#}");
}

#[tokio::test]
async fn unreadable_unsupported_and_oversized_reviews_are_refused_and_the_server_answers_on() {
    let bed = Bed::start().await;
    refuses_bodies_that_are_not_v1_reviews(&bed).await;
    denies_objects_whose_images_cannot_be_read(&bed).await;

    // 5 MiB (an annotation no API server would store): 413 once the limit has arrived.
    let mut huge = bed.all_promoted("pod.json");
    huge["request"]["object"]["metadata"]["annotations"] =
        json!({"example.com/blob": "a".repeat(5 * 1024 * 1024)});
    let body = serde_json::to_vec(&huge).unwrap();
    assert!(body.len() > 5 * 1024 * 1024, "{} bytes", body.len());
    let status_line = status_line_of_post(&bed.s, &bed.pki.ca_cert, body).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    // The next review is answered as ever.
    let response = answer(&bed.s, &bed.all_promoted("pod.json")).await;
    assert_admitted("pod.json after the oversized review", &response);
}

/// A body that is not JSON, and an AdmissionReview of `v1beta1`: `400` (the API server counts it
/// as the webhook failing), the latter naming the setting that makes the API server send `v1`.
async fn refuses_bodies_that_are_not_v1_reviews(bed: &Bed) {
    let (status, text) = post_raw(&bed.s, b"<AdmissionReview uid=\"1\"/>".to_vec()).await;
    assert_eq!(status, 400, "{text}");

    let mut beta = bed.all_promoted("pod.json");
    beta["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (status, text) = post_raw(&bed.s, serde_json::to_vec(&beta).unwrap()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("admissionReviewVersions"), "{text}");
}

/// A kind without a pod spec is denied listing the kinds airlock reads; a container without an
/// image is denied naming the field.
async fn denies_objects_whose_images_cannot_be_read(bed: &Bed) {
    let response = answer(&bed.s, &review_from("service.json", &[])).await;
    let (_, message) = denial(&response);
    let supported = WORKLOADS.iter().map(|&(_, kind, _)| kind);
    for kind in std::iter::once("Service").chain(supported) {
        assert!(
            message.contains(kind),
            "no {kind:?} in the denial: {response:#}"
        );
    }

    let mut imageless = bed.all_promoted("pod.json");
    imageless["request"]["object"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("a container")
        .remove("image");
    let response = answer(&bed.s, &imageless).await;
    let (_, message) = denial(&response);
    assert!(message.contains("spec.containers[0].image"), "{response:#}");

    // A custom resource that shares a kind's name is not read as that kind.
    let mut custom = bed.all_promoted("deployment.json");
    custom["request"]["kind"]["group"] = json!("example.com");
    let response = answer(&bed.s, &custom).await;
    let (_, message) = denial(&response);
    assert!(
        message.contains("example.com/Deployment is not a Kubernetes workload"),
        "{response:#}"
    );

    // A subresource that cannot change the images (the kubelet's `pods/status`, `scale`) passes
    // even for a Pod whose images were never promoted; `ephemeralcontainers` is checked.
    let mut status = review_from(
        "pod.json",
        &[
            ("IMAGE_APP", bed.image("prod", &bed.unpromoted).as_str()),
            ("IMAGE_INIT", bed.image("prod", &bed.unpromoted).as_str()),
        ],
    );
    status["request"]["operation"] = json!("UPDATE");
    status["request"]["subResource"] = json!("status");
    assert_admitted("pods/status", &answer(&bed.s, &status).await);
    status["request"]["subResource"] = json!("ephemeralcontainers");
    let response = answer(&bed.s, &status).await;
    let (_, message) = denial(&response);
    assert!(message.contains("NOT_PROMOTED"), "{response:#}");
}

#[tokio::test]
async fn without_deploy_admission_the_webhook_is_not_served() {
    let s = TestServer::start();
    let review = review_from(
        "pod.json",
        &[
            ("IMAGE_APP", "registry.example.com/prod/team/app:1.0"),
            ("IMAGE_INIT", "registry.example.com/prod/team/app:1.0"),
        ],
    );
    let (status, text) = post_raw(&s, serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 404, "{text}");
}

#[tokio::test]
async fn reviews_are_counted_by_outcome() {
    let bed = Bed::start().await;
    let allowed = answer(&bed.s, &bed.all_promoted("pod.json")).await;
    assert_admitted("pod.json", &allowed);
    let mut unmapped = bed.all_promoted("pod.json");
    in_namespace(&mut unmapped, "other");
    let denied = answer(&bed.s, &unmapped).await;
    assert_eq!(denial(&denied).0, 403, "{denied:#}");
    let mut failing = review_from(
        "deployment.json",
        &[
            ("IMAGE_APP", bed.image("staging", &bed.promoted).as_str()),
            ("IMAGE_INIT", bed.image("staging", &bed.unpromoted).as_str()),
        ],
    );
    in_namespace(&mut failing, "staging-a");
    let warned = answer(&bed.s, &failing).await;
    assert!(!warnings_of(&warned).is_empty(), "{warned:#}");
    let (status, text) = post_raw(&bed.s, b"{".to_vec()).await;
    assert_eq!(status, 400, "{text}");

    let metrics = bed
        .s
        .http
        .get(bed.s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("airlock_admission_reviews_total"))
        .collect();
    for outcome in ["allow", "deny", "warn", "error"] {
        let name = format!("airlock_admission_reviews_total{{outcome=\"{outcome}\"}}");
        let value = series
            .iter()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .and_then(|value| value.trim().parse::<f64>().ok());
        assert_eq!(value, Some(1.0), "{outcome}: {series:#?}");
    }
}
