//! `/metrics` checked by tools airlock did not write: Prometheus' own linter (`promtool check
//! metrics`, Debian's `prometheus` package) on a scrape after real traffic, and the OpenMetrics
//! parser of the Prometheus Python client (`prometheus-client`, PyPI) on the OpenMetrics answer.
//!
//! Locally a missing tool skips with a notice; with `AIRLOCK_INTEROP=required` (CI) it fails.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A server that has seen a push, a promotion, a refused push to a gated stage and failed
/// logins, so that the request, byte, promotion, policy, refusal and authentication families
/// all have samples.
async fn server_after_traffic() -> (TestServer, tempfile::TempDir) {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"a layer"]).await;
    let promoter = add_user(
        &s,
        "rita",
        "promotion-words-0123",
        &[("promoter", "staging")],
    )
    .await;
    let (status, body) = post_json(
        &promoter,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    let refused = s
        .http
        .post(s.url("/v2/prod/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    for _ in 0..2 {
        let failed = client_as("admin", "not-the-password")
            .get(s.url("/v2/"))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 401);
    }
    (s, temp)
}

/// `GET /metrics` with `accept` (if any); returns (content type, body).
async fn scrape(s: &TestServer, accept: Option<&str>) -> (String, String) {
    let mut request = s.anonymous.get(s.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, response.text().await.unwrap())
}

/// Runs `program args` with `input` on stdin; returns (success, stdout + stderr).
fn pipe(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn promtool_check_metrics_passes_on_a_scrape_after_a_push_a_promotion_and_failed_logins() {
    if !interop_tool_available("promtool", &["--version"]) {
        return;
    }
    let (s, _temp) = server_after_traffic().await;
    let (content_type, text) = scrape(&s, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    // The traffic reached the families promtool should look at.
    for family in [
        "airlock_http_requests_total",
        "airlock_http_request_duration_seconds",
        "airlock_registry_bytes_received_total",
        "airlock_promotions_total",
        "airlock_policy_evaluation_seconds",
        "airlock_push_refusals_total",
        "airlock_auth_failures_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family} in the scrape:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no help for {family}:\n{text}"
        );
    }
    // promtool prints one line per problem (e.g. "x no help text") and exits non-zero.
    let (ok, said) = pipe("promtool", &["check", "metrics"], &text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[tokio::test]
async fn openmetrics_is_served_when_the_scrape_asks_for_it_and_prometheus_text_stays_the_default() {
    let (s, _temp) = server_after_traffic().await;

    // The Prometheus text format without an Accept header, and for `*/*` or text/plain.
    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let (content_type, text) = scrape(&s, accept).await;
        assert_eq!(
            content_type, "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        assert!(!text.contains("# EOF"), "{accept:?}");
        assert!(text.contains("# TYPE airlock_http_requests_total counter"));
    }

    // OpenMetrics for what Prometheus sends, and for a plain request of it.
    for accept in [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text; version=1.0.0",
    ] {
        let (content_type, text) = scrape(&s, Some(accept)).await;
        assert_eq!(content_type, OPENMETRICS, "{accept}");
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(!text.contains("\n\n"), "blank lines:\n{text}");
        // Counter families are named without `_total`, their samples with it.
        assert!(
            text.contains("# TYPE airlock_http_requests counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP airlock_http_requests "), "{text}");
        assert!(text.contains("\nairlock_http_requests_total{"), "{text}");
        assert!(
            !text.contains("# TYPE airlock_http_requests_total"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE airlock_promotions counter\n"),
            "{text}"
        );
        // Histogram bucket bounds are canonical floats.
        assert!(text.contains("le=\"1.0\""), "{text}");
        assert!(text.contains("le=\"+Inf\""), "{text}");
    }

    // The Prometheus client's strict OpenMetrics parser accepts it.
    if !interop_tool_available(
        "python3",
        &["-c", "import prometheus_client.openmetrics.parser"],
    ) {
        return;
    }
    let (_, text) = scrape(&s, Some("application/openmetrics-text; version=1.0.0")).await;
    let (ok, said) = pipe(
        "python3",
        &[
            "-c",
            "import sys\n\
             from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
             for family in text_string_to_metric_families(sys.stdin.read()):\n\
             \x20   print(family.name, family.type)\n",
        ],
        &text,
    );
    assert!(
        ok,
        "the OpenMetrics parser refused the scrape: {said}\n{text}"
    );
    for family in [
        "airlock_http_requests counter",
        "airlock_http_request_duration_seconds histogram",
        "airlock_promotions counter",
        "airlock_policy_evaluation_seconds summary",
        "airlock_auth_failures counter",
    ] {
        assert!(said.lines().any(|l| l == family), "{family} not in {said}");
    }
}
