//! Independent promotion approvals and password resets, end to end: whoever reset a user's
//! password learned or chose a password of it and could act as it, so an approver whose password
//! a party of the promotion reset (even if the approver changed it since) does not count, as an
//! approver holding an API key a party added does not.

use crate::common;

use common::permissive_bundle;

use common::{TestServer, client_as, post_json};
use serde_json::json;

const PASSWORD: &str = "reset-independence-pass-01";
const CHANGED: &str = "reset-independence-pass-02";

/// Admin creates user `name` with `grants`; returns its client.
async fn user(s: &TestServer, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
    common::add_user(s, name, PASSWORD, grants).await
}

#[tokio::test]
async fn an_approver_whose_password_the_requester_reset_does_not_count_even_after_changing_it() {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_in(
        &temp.path().join("data"),
        &[
            ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
            ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
            ("AIRLOCK_GATES__STAGING__APPROVALS__INDEPENDENT", "always"),
        ],
    );
    // admin makes everyone; eve, an access-admin who also promotes, resets approver carol's
    // password (and so learns the temporary one); carol then changes it.
    let eve = user(&s, "eve", &[("access-admin", "*"), ("promoter", "staging")]).await;
    user(&s, "carol", &[("approver", "staging")]).await;
    let ann = user(&s, "ann", &[("approver", "staging")]).await;
    let ci = user(&s, "ci", &[("developer", "dev")]).await;
    let (status, reset) = post_json(
        &eve,
        &s.url("/api/v1/users/carol/reset-password"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{reset}");
    let temporary = reset["password"].as_str().unwrap().to_string();
    let (status, body) = post_json(
        &s.anonymous,
        &s.url("/api/v1/users/carol/password"),
        json!({"current_password": temporary, "new_password": CHANGED}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let digest = common::push_image_as(&s, &ci, "dev/team/app", "1.0", b"reset", None).await;
    let (status, body) = post_json(
        &eve,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "pending_approval", "{body:#}");
    let id = body["promotion"]["id"].as_str().unwrap().to_string();
    let approve = |client: reqwest::Client| {
        let url = s.url(&format!("/api/v1/promotions/{id}/approve"));
        async move { post_json(&client, &url, json!({})).await }
    };
    let (status, body) = approve(client_as("carol", CHANGED)).await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "APPROVAL_REFUSED", "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("carol had its password reset by eve, who requested this promotion"),
        "{body:#}"
    );
    // An approver nobody of the promotion vouched for still counts.
    let (status, body) = approve(ann).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
}
