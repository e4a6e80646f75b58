//! How promotion errors become API answers: the status and code follow the cause.

use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::super::PromotionError;
use crate::api::ApiError;
use crate::evidence::EvidenceError;

async fn answer(err: PromotionError) -> (StatusCode, serde_json::Value) {
    let response = ApiError::from(err).into_response();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&body).expect("JSON error body"),
    )
}

#[tokio::test]
async fn a_storage_failure_reading_evidence_is_a_storage_error_not_policy_invalid() {
    let err = PromotionError::from(EvidenceError::Store(airlock_store::StoreError::Corrupt(
        "row".into(),
    )));
    let (status, body) = answer(err).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "INTERNAL");
}

#[tokio::test]
async fn an_evidence_service_failure_is_a_500_with_its_own_code() {
    let err = PromotionError::from(EvidenceError::KeyUnknown {
        name: "no-such-key".into(),
    });
    let (status, body) = answer(err).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "EVIDENCE_UNAVAILABLE");
    assert!(
        !body["error"]["remediation"]
            .as_str()
            .unwrap_or_default()
            .contains("policy"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bundle_whose_tests_fail_stays_policy_invalid() {
    let err = PromotionError::BundleTestsFail {
        failed: vec!["test_prod: false".into()],
    };
    let (status, body) = answer(err).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "POLICY_INVALID");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("test_prod"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_gate_role_names_the_configuration_field() {
    let source = "approverz"
        .parse::<airlock_core::Role>()
        .expect_err("not a role");
    let err = PromotionError::GateRole {
        stage: "prod".into(),
        source,
    };
    let (status, body) = answer(err).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "CONFIG_INVALID");
    assert!(
        body["error"]["remediation"]
            .as_str()
            .unwrap_or_default()
            .contains("[gates.prod].approvals.role"),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_state_filter_names_the_states() {
    let (status, body) = answer(PromotionError::UnknownState {
        given: "bogus".into(),
    })
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"bogus\""), "{message}");
    assert!(message.contains("pending_approval"), "{message}");
}

#[test]
fn the_openapi_document_lists_every_promotion_route_with_its_error_answers() {
    let doc = super::openapi();
    let mut paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/api/v1/attestation-key",
            "/api/v1/decisions/{id}",
            "/api/v1/decisions/{id}/replay",
            "/api/v1/policy",
            "/api/v1/policy/reload",
            "/api/v1/promotions",
            "/api/v1/promotions/{id}",
            "/api/v1/promotions/{id}/approve",
            "/api/v1/promotions/{id}/cancel",
            "/api/v1/promotions/{id}/reject",
            "/api/v1/rollbacks",
            "/api/v1/stages/{stage}/freeze",
            "/api/v1/stages/{stage}/unfreeze",
        ]
    );
    // The served document: the area's own answers plus those every authenticated operation with a
    // body can give (401, 429, 413), which `crate::openapi` adds once for all areas.
    let served = crate::openapi::document();
    let reject = served.paths.paths["/api/v1/promotions/{id}/reject"]
        .post
        .as_ref()
        .expect("POST reject");
    let mut statuses: Vec<&str> = reject
        .responses
        .responses
        .keys()
        .map(String::as_str)
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            "200", "400", "401", "403", "404", "409", "413", "429", "500", "503"
        ]
    );
}
