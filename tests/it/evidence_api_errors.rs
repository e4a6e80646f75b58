//! The keyring, evidence, audit, anomaly and webhook APIs refuse what they cannot do with the
//! JSON error body, a status that follows the cause, and a remediation that names the fix.

use crate::common;

use common::TestServer;
use serde_json::{Value, json};

const PASSWORD: &str = "errors-test-password-1";
const FIXTURE_KEY: &str = "tests/fixtures/cosign/cosign_generated_encrypted_empty_private.key";
const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The error body's code and remediation.
fn error(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["remediation"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn artifact_routes_answer_405_to_other_methods_before_reading_the_reference() {
    let s = TestServer::start();
    for path in [
        format!("/api/v1/artifacts/dev/team/app@{DIGEST}"),
        "/api/v1/artifacts/not-a-reference/evidence".to_string(),
    ] {
        let response = s.http.put(s.url(&path)).send().await.unwrap();
        let allow = response.headers()["allow"].to_str().unwrap().to_string();
        assert!(allow.starts_with("GET"), "{allow}");
        let (status, body) = answer(response).await;
        assert_eq!(status, 405, "{path}: {body}");
        let (code, remediation) = error(&body);
        assert_eq!(code, "METHOD_NOT_ALLOWED");
        assert!(remediation.contains("POST .../evidence"), "{body}");
    }
}

#[tokio::test]
async fn evidence_for_an_artifact_that_is_not_there_says_to_push_it_first() {
    let s = TestServer::start();
    let builder = common::add_user(&s, "bob", PASSWORD, &[("builder", "dev")]).await;
    let url = s.url(&format!("/api/v1/artifacts/dev/team/app@{DIGEST}/evidence"));
    let envelope =
        json!({"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": []});
    let (status, body) = answer(builder.post(url).json(&envelope).send().await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    let (code, remediation) = error(&body);
    assert_eq!(code, "NOT_FOUND");
    assert!(
        remediation.contains("push the artifact to dev/team/app"),
        "{body}"
    );
}

#[tokio::test]
async fn key_requests_that_cannot_be_keys_are_refused_with_the_fix() {
    let s = TestServer::start();
    let keyadmin = common::add_user(&s, "kate", PASSWORD, &[("key-admin", "*")]).await;
    let pem = std::fs::read_to_string(FIXTURE_KEY).unwrap();
    let pem = airlock_trust::keys::decrypt_cosign_private_key(&pem, b"")
        .unwrap()
        .public_key()
        .to_pem();
    for (body, words) in [
        (
            json!({"name": "ci", "public_key": pem, "purposes": ["launch"], "scope": ["*"]}),
            "attest:<predicate type URI>",
        ),
        (
            json!({"name": "ci", "public_key": "not a key", "purposes": ["sign"], "scope": ["*"]}),
            "SPKI PEM",
        ),
        (
            json!({"name": "c i", "public_key": pem, "purposes": ["sign"], "scope": ["*"]}),
            "airlock keys add NAME",
        ),
    ] {
        let (status, answer) = answer(
            keyadmin
                .post(s.url("/api/v1/keys"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(error(&answer).1.contains(words), "{words}: {answer}");
    }
    // A name already taken is a conflict naming where to look.
    let ok = json!({"name": "ci", "public_key": pem, "purposes": ["sign"], "scope": ["*"]});
    let (status, _) = answer(
        keyadmin
            .post(s.url("/api/v1/keys"))
            .json(&ok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) = answer(
        keyadmin
            .post(s.url("/api/v1/keys"))
            .json(&ok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(error(&answer).1.contains("airlock keys"), "{answer}");
}

#[tokio::test]
async fn anomaly_and_delivery_lists_refuse_a_bad_filter_or_limit() {
    let s = TestServer::start();
    for path in [
        "/api/v1/anomalies?status=bogus",
        "/api/v1/anomalies?limit=0",
        "/api/v1/anomalies?limit=1001",
        "/api/v1/webhooks/1/deliveries?status=bogus",
        "/api/v1/webhooks/1/deliveries?limit=5000",
    ] {
        let (status, body) = answer(s.http.get(s.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}: {body}");
        let (code, remediation) = error(&body);
        assert_eq!(code, "BAD_REQUEST", "{path}");
        assert!(
            remediation.contains("limit") && remediation.contains("1 to 1000")
                || remediation.contains("status="),
            "{path}: {body}"
        );
    }
    let (status, _) = answer(
        s.http
            .get(s.url("/api/v1/anomalies?status=open&limit=1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn audit_proofs_need_their_index_and_stay_within_the_log() {
    let s = TestServer::start();
    let (status, body) = answer(
        s.http
            .get(s.url("/api/v1/audit/proof/inclusion?tree_size=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("index"),
        "{body}"
    );
    assert!(error(&body).1.contains("index=N"), "{body}");
    let (status, body) = answer(
        s.http
            .get(s.url("/api/v1/audit/proof/consistency?from=1&to=999999"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (code, remediation) = error(&body);
    assert_eq!(code, "OUT_OF_RANGE");
    assert!(remediation.contains("/api/v1/audit/checkpoint"), "{body}");
}

/// The audit queries' numbers are what the OpenAPI document says (int64, at least 0): larger or
/// negative ones are refused, not read.
#[tokio::test]
async fn audit_query_numbers_outside_int64_are_refused() {
    let s = TestServer::start();
    for path in [
        "/api/v1/audit/entries?start=9223372036854775808",
        "/api/v1/audit/checkpoints?limit=9223372036854775808",
        "/api/v1/audit/proof/inclusion?index=9223372036854775808",
        "/api/v1/audit/entries?start=-1",
    ] {
        let (status, body) = answer(s.http.get(s.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error(&body).0, "BAD_REQUEST", "{path}: {body}");
    }
    let (status, body) = answer(
        s.http
            .get(s.url("/api/v1/audit/entries?start=9223372036854775807"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn reading_an_artifact_without_pull_rights_answers_like_one_that_is_not_there() {
    let s = TestServer::start();
    let secret =
        common::push_image_as(&s, &s.http, "dev/team/secret", "1.0", b"secret", None).await;
    let reader = common::add_user(&s, "rui", PASSWORD, &[("reader", "dev/team/app")]).await;
    for tail in ["", "/evidence"] {
        let hidden = s.url(&format!("/api/v1/artifacts/dev/team/secret@{secret}{tail}"));
        let (status, hidden) = answer(reader.get(hidden).send().await.unwrap()).await;
        let missing = s.url(&format!("/api/v1/artifacts/dev/team/gone@{secret}{tail}"));
        let (_, missing) = answer(reader.get(missing).send().await.unwrap()).await;
        assert_eq!(status, 404, "{hidden}");
        assert_eq!(error(&hidden).0, "MANIFEST_UNKNOWN", "{hidden}");
        assert_eq!(
            hidden.to_string().replace("team/secret", "X"),
            missing.to_string().replace("team/gone", "X"),
        );
        // The admin, who may pull it, reads it.
        let url = s.url(&format!("/api/v1/artifacts/dev/team/secret@{secret}{tail}"));
        let (status, body) = answer(s.http.get(url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The audit lists refuse a count outside their range (as the anomaly and delivery lists do)
/// instead of clamping it: `limit=0` is not an empty page, `limit=50000` not 10000 entries.
#[tokio::test]
async fn audit_lists_refuse_a_limit_outside_their_range_naming_it() {
    let s = TestServer::start();
    for (path, range) in [
        ("/api/v1/audit/entries?limit=0", "1 to 10000"),
        ("/api/v1/audit/entries?limit=50000", "1 to 10000"),
        ("/api/v1/audit/entries?newest=10001", "0 to 10000"),
        ("/api/v1/audit/checkpoints?limit=0", "1 to 1000"),
        ("/api/v1/audit/checkpoints?limit=1001", "1 to 1000"),
    ] {
        let (status, body) = answer(s.http.get(s.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error(&body).0, "BAD_REQUEST", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(range), "{path}: {body}");
    }
    for path in [
        "/api/v1/audit/entries?limit=10000",
        "/api/v1/audit/entries?newest=10000",
        "/api/v1/audit/checkpoints?limit=1000",
    ] {
        let (status, body) = answer(s.http.get(s.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // newest=0 is no entries and where the log ends: `audit tail -n 0 --follow` starts there.
    let (status, body) = answer(
        s.http
            .get(s.url("/api/v1/audit/entries?newest=0"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"], json!([]), "{body}");
    assert!(body["next"].as_u64().is_some_and(|n| n > 0), "{body}");
    let (code, out, err) = s.cli(&["audit", "tail", "-n", "0"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, _, err) = s.cli(&["audit", "tail", "-n", "10001"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("10001"), "{err}");
}
