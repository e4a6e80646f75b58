//! Prometheus metrics: the recorder, the `/metrics` route, HTTP request metrics middleware, and
//! the names and help texts of every metric airlock exports (one place, so dashboards and docs
//! stay in step). `/metrics` answers in the Prometheus text format (0.0.4), or in OpenMetrics
//! 1.0 when the scrape's `Accept` header prefers it ([`openmetrics`]).

mod openmetrics;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::oci::route::OciRoute;

/// HTTP requests, by route, method and status.
pub const HTTP_REQUESTS: &str = "airlock_http_requests_total";
/// HTTP request latency in seconds, by route and method.
pub const HTTP_DURATION: &str = "airlock_http_request_duration_seconds";
/// Blob bytes received from clients.
pub const REGISTRY_BYTES_IN: &str = "airlock_registry_bytes_received_total";
/// Blob bytes sent to clients.
pub const REGISTRY_BYTES_OUT: &str = "airlock_registry_bytes_sent_total";
/// Failed authentications.
pub const AUTH_FAILURES: &str = "airlock_auth_failures_total";
/// Evidence items recorded, by format (`cosign`, `dsse`, `sigstore-bundle`) and status.
pub const EVIDENCE_ITEMS: &str = "airlock_evidence_items_total";
/// Evidence verdicts changed by keyring changes, by new status.
pub const EVIDENCE_REVERIFIED: &str = "airlock_evidence_reverified_total";
/// Promotion decisions, by target stage and outcome (`promoted`, `pending_approval`, `denied`).
pub const PROMOTIONS: &str = "airlock_promotions_total";
/// Time to evaluate a gate, in seconds.
pub const POLICY_EVALUATION: &str = "airlock_policy_evaluation_seconds";
/// Time to answer a deploy-time verification (`/api/v1/verify`, admission), in seconds.
pub const VERIFY_DURATION: &str = "airlock_verify_seconds";
/// Deploy-time verification answers by reference, by whether the cache had them (`hit`, `miss`).
pub const VERIFY_CACHE: &str = "airlock_verify_cache_total";
/// Admission reviews answered, by outcome (`allow`, `deny`, `warn`, `error`).
pub const ADMISSION_REVIEWS: &str = "airlock_admission_reviews_total";
/// Anomalies raised, by rule and action.
pub const ANOMALIES: &str = "airlock_anomalies_total";
/// Anomalies resolved, by rule.
pub const ANOMALIES_RESOLVED: &str = "airlock_anomalies_resolved_total";
/// Anomaly signals that could not be recorded (storage failures).
pub const ANOMALY_ERRORS: &str = "airlock_anomaly_signal_errors_total";
/// Pushes and deletes refused by the stage rules (each one; the audit log aggregates them).
pub const PUSH_REFUSALS: &str = "airlock_push_refusals_total";
/// Requests refused because their artifact is quarantined.
pub const QUARANTINE_REFUSALS: &str = "airlock_quarantine_refusals_total";
/// Webhook delivery attempts, by outcome (`delivered`, `failed` (will retry), `dead`).
pub const WEBHOOK_DELIVERIES: &str = "airlock_webhook_deliveries_total";
/// Webhook deliveries waiting in the outbox.
pub const WEBHOOK_PENDING: &str = "airlock_webhook_outbox_pending";
/// Entries in the audit log (appended, integrated or not).
pub const AUDIT_ENTRIES: &str = "airlock_audit_log_entries";
/// Tree size of the newest signed checkpoint.
pub const AUDIT_CHECKPOINT_SIZE: &str = "airlock_audit_checkpoint_size";
/// Seconds since the newest checkpoint was signed.
pub const AUDIT_CHECKPOINT_AGE: &str = "airlock_audit_checkpoint_age_seconds";
/// Checkpoints offered to the log's witnesses, by `outcome` (`cosigned`, `refused`,
/// `unreachable`).
pub const AUDIT_WITNESS_SUBMISSIONS: &str = "airlock_audit_witness_submissions_total";
/// 1 while this replica leads (signs audit checkpoints, runs the periodic sweeps), else 0.
pub const REPLICA_LEADER: &str = "airlock_replica_leader";
/// Always 1, labelled with the running release's `version` (as `GET /api/v1/version` says).
pub const BUILD_INFO: &str = "airlock_build_info";

const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// Installs the process-wide Prometheus recorder. Returns `None` (and logs) if one is already
/// installed, e.g. when a second server runs in the same process.
pub fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_string()), &LATENCY_BUCKETS)
        .ok()?;
    match builder.install_recorder() {
        Ok(handle) => {
            describe();
            metrics::describe_gauge!(
                BUILD_INFO,
                "Always 1; the version label is the running airlock release."
            );
            metrics::gauge!(BUILD_INFO, "version" => crate::meta::VERSION).set(1.0);
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics recorder not installed");
            None
        }
    }
}

/// Gives every metric its `# HELP` text (scrapers and `promtool check metrics` want one per
/// family). Called once the recorder is installed: descriptions given before go nowhere.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route kind (never a name or digest), method and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        "Time to answer an HTTP request in seconds, by route kind and method."
    );
    describe_counter!(
        REGISTRY_BYTES_IN,
        "Blob bytes received from clients (uploads)."
    );
    describe_counter!(
        REGISTRY_BYTES_OUT,
        "Blob bytes sent to clients (downloads)."
    );
    describe_counter!(
        AUTH_FAILURES,
        "Failed authentications (wrong password, API key or token)."
    );
    describe_counter!(
        EVIDENCE_ITEMS,
        "Evidence items recorded, by format (cosign, dsse, sigstore-bundle) and status."
    );
    describe_counter!(
        EVIDENCE_REVERIFIED,
        "Evidence verdicts changed by keyring changes, by new status."
    );
    describe_counter!(
        PROMOTIONS,
        "Gate decisions, by target stage and outcome (promoted, pending_approval, denied)."
    );
    describe_histogram!(
        POLICY_EVALUATION,
        "Time to evaluate a promotion gate in seconds."
    );
    describe_histogram!(
        VERIFY_DURATION,
        "Time to answer a deploy-time verification (API or admission) in seconds."
    );
    describe_counter!(
        VERIFY_CACHE,
        "Deploy-time verification answers per reference, by cache result (hit, miss)."
    );
    describe_counter!(
        ADMISSION_REVIEWS,
        "Kubernetes admission reviews answered, by outcome (allow, deny, warn, error)."
    );
    describe_counter!(ANOMALIES, "Anomalies raised, by rule and action.");
    describe_counter!(ANOMALIES_RESOLVED, "Anomalies resolved, by rule.");
    describe_counter!(
        ANOMALY_ERRORS,
        "Anomaly signals that could not be recorded (storage failures)."
    );
    describe_counter!(
        PUSH_REFUSALS,
        "Pushes, mounts and deletes refused by the stage rules."
    );
    describe_counter!(
        QUARANTINE_REFUSALS,
        "Pulls from gated stages refused because the artifact is quarantined."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts, by outcome (delivered, failed and will retry, dead)."
    );
    describe_gauge!(
        WEBHOOK_PENDING,
        "Webhook deliveries waiting in the outbox, as of the last delivery attempt."
    );
    describe_gauge!(
        AUDIT_ENTRIES,
        "Entries appended to the audit log, integrated or not."
    );
    describe_gauge!(
        AUDIT_CHECKPOINT_SIZE,
        "Entries covered by the newest signed checkpoint of the audit log."
    );
    describe_counter!(
        AUDIT_WITNESS_SUBMISSIONS,
        "Audit log checkpoints offered to witnesses, by outcome (cosigned, refused, unreachable)."
    );
    describe_gauge!(
        AUDIT_CHECKPOINT_AGE,
        "Seconds since the newest audit log checkpoint was signed."
    );
    describe_gauge!(
        REPLICA_LEADER,
        "1 while this replica leads (signs audit checkpoints, runs the periodic sweeps), else 0."
    );
    describe_gauge!(
        crate::tls::EXPIRY_METRIC,
        "When the served TLS certificate expires, in Unix seconds."
    );
}

/// `GET /metrics`: the Prometheus text format, or OpenMetrics 1.0 when the `Accept` header
/// prefers `application/openmetrics-text`.
pub async fn render(
    State(handle): State<Option<PrometheusHandle>>,
    headers: HeaderMap,
) -> Response {
    match handle {
        Some(handle) => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("");
            let text = handle.render();
            match openmetrics::negotiate(accept) {
                Some(version) => (
                    [(header::CONTENT_TYPE, version.content_type())],
                    openmetrics::from_prometheus_text(&text),
                )
                    .into_response(),
                None => (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
                    .into_response(),
            }
        }
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}

/// A bounded label for a request path: the endpoint kind, never the repository or digest, so the
/// number of series does not grow with the content.
pub fn route_label(path: &str, matched: Option<&str>) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v2/") {
        return match OciRoute::parse(rest) {
            Ok(OciRoute::Base) => "v2_base",
            Ok(OciRoute::Catalog) => "v2_catalog",
            Ok(OciRoute::Tags(_)) => "v2_tags",
            Ok(OciRoute::Manifest(..) | OciRoute::ManifestWithInvalidTag(..)) => "v2_manifest",
            Ok(OciRoute::Blob(..)) => "v2_blob",
            Ok(OciRoute::UploadStart(_)) => "v2_upload_start",
            Ok(OciRoute::Upload(..)) => "v2_upload",
            Ok(OciRoute::Referrers(..)) => "v2_referrers",
            Err(_) => "v2_invalid",
        };
    }
    match matched {
        Some("/v2" | "/v2/") => "v2_base",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some(p) if p.starts_with("/log/") => "log",
        Some(p) if p.starts_with("/api/v1/audit") => "api_audit",
        Some(p) if p.starts_with("/auth/") => "auth",
        Some(p) if p.starts_with("/admission/") => "admission",
        Some(p) if p.starts_with("/api/v1/") => "api",
        _ => "other",
    }
}

/// Middleware recording each request's count and latency.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let route = route_label(request.uri().path(), matched.as_deref());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_do_not_contain_names_or_digests() {
        assert_eq!(
            route_label("/v2/dev/team/app/manifests/1", None),
            "v2_manifest"
        );
        assert_eq!(
            route_label("/v2/dev/team/app/blobs/uploads/", None),
            "v2_upload_start"
        );
        assert_eq!(route_label("/v2/Bad/x/manifests/1", None), "v2_invalid");
        assert_eq!(route_label("/whatever", None), "other");
        assert_eq!(
            route_label("/log/tile/0/000", Some("/log/tile/{*path}")),
            "log"
        );
    }
}
