//! Service-account API keys and the epoch rule, end to end: several named keys per account, each
//! with its own expiry; listings without secrets; revoking one key ends exactly the tokens and
//! refresh tokens descending from it; "last used"; the maximum lifetime; `credential.expiring` /
//! `credential.expired` once per key (across restarts) and delivered to a webhook; and grants
//! that only add rights leaving tokens valid while removals and JIT expiry narrow them at once.

use crate::common;

use common::permissive_bundle;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{TestServer, bearer, claims_of, client_as, post_json};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const PASSWORD: &str = "keys-test-password-01";
const SECRET: &str = "0123456789abcdef-webhook-secret";

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates service account `name` (its first key is `default`) with builder on `dev/team/*`;
/// returns the first key.
async fn service_account(s: &TestServer, name: &str) -> String {
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/service-accounts"),
        json!({"name": name, "expires_in_secs": 30 * 86_400}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": name, "role": "builder", "scope": "dev/team/*"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, keys) = get_json(
        &s.http,
        &s.url(&format!("/api/v1/service-accounts/{name}/keys")),
    )
    .await;
    assert_eq!(keys["keys"][0]["name"], "default", "{keys}");
    let (status, body) = post_json(
        &s.http,
        &s.url(&format!("/api/v1/service-accounts/{name}/keys")),
        json!({"name": "first", "expires_in_secs": 86_400 * 7}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["api_key"].as_str().unwrap().to_string()
}

/// Adds key `key` to `account` through the API; returns the answer.
async fn add_key(s: &TestServer, account: &str, body: Value) -> (u16, Value) {
    post_json(
        &s.http,
        &s.url(&format!("/api/v1/service-accounts/{account}/keys")),
        body,
    )
    .await
}

/// A token (and, with `offline`, a refresh token) for `scope` with Basic `user`/`secret`.
async fn token(s: &TestServer, user: &str, secret: &str, scope: &str) -> Value {
    let response = client_as(user, secret)
        .get(s.url(&format!(
            "/auth/token?service=airlock&scope={scope}&offline_token=true&client_id=tests"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Exchanges a refresh token; returns the status and answer.
async fn refresh(s: &TestServer, refresh_token: &str, scope: &str) -> (u16, Value) {
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("service", "airlock"),
            ("client_id", "tests"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The status of opening a blob upload in `repo` (202: allowed to push).
async fn start_upload(s: &TestServer, client: &reqwest::Client, repo: &str) -> u16 {
    client
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn entries_of_kind(s: &TestServer, kind: &str) -> Vec<Value> {
    s.audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

#[tokio::test]
async fn a_service_account_holds_several_named_keys_listed_without_secrets() {
    let s = TestServer::start();
    let first = service_account(&s, "ci").await;
    let (code, out, err) = s.cli(&[
        "service-accounts",
        "keys",
        "add",
        "ci",
        "--name",
        "deploy",
        "--expires-in",
        "10",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let deploy: Value = serde_json::from_str(&out).unwrap();
    let deploy_secret = deploy["api_key"].as_str().unwrap().to_string();
    assert!(deploy_secret.starts_with(&format!("alk_{}_", deploy["id"].as_str().unwrap())));
    let (code, out, err) = s.cli(&[
        "service-accounts",
        "keys",
        "add",
        "ci",
        "--name",
        "nightly",
        "--expires-at",
        "2099-01-01",
    ]);
    assert_ne!(
        code, 0,
        "a date beyond the maximum lifetime is refused: {out}{err}"
    );
    assert!(err.contains("access.max_api_key_days"), "{err}");
    // Without an expiry a key gets the maximum lifetime (365 days), never forever.
    let (code, out, err) = s.cli(&["service-accounts", "keys", "add", "ci", "--name", "nightly"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shown once"), "{out}");

    let (code, out, err) = s.cli(&["service-accounts", "keys", "list", "ci", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let keys = list["keys"].as_array().unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "first", "deploy", "nightly"]);
    for key in keys {
        for field in ["id", "name", "created", "expires", "status"] {
            assert!(key[field].is_string(), "{field} missing in {key}");
        }
        assert!(key.get("last_used").is_some(), "{key}");
        assert!(
            key.get("api_key").is_none() && key.get("secret_hash").is_none(),
            "{key}"
        );
    }
    let nightly_expires = time::OffsetDateTime::parse(
        keys[3]["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (nightly_expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((364 * 24..=365 * 24).contains(&days), "{days} hours");
    // Neither a secret nor its hash appears in the listing or the audit log.
    let secret_part = deploy_secret.rsplit('_').next().unwrap();
    for text in [
        out.clone(),
        serde_json::to_string(&s.audit_entries().await).unwrap(),
    ] {
        assert!(
            !text.contains(secret_part) && !text.contains(&first[4..]),
            "secret leaked"
        );
    }
    let created = entries_of_kind(&s, "credential.created").await;
    assert!(
        created
            .iter()
            .any(|e| e["details"]["name"] == "deploy" && e["subject"]["name"] == "ci"),
        "{created:#?}"
    );
    let (code, _, _) = s.cli(&["service-accounts", "keys", "list", "ci"]);
    assert_eq!(code, 0);

    // Both keys authenticate.
    for secret in [&first, &deploy_secret] {
        assert_eq!(
            start_upload(&s, &client_as("ci", secret), "dev/team/app").await,
            202
        );
    }
}

#[tokio::test]
async fn adding_keys_is_refused_with_a_message_naming_the_fix() {
    let s = TestServer::start();
    service_account(&s, "ci").await;
    // A name already used by a live key of the account.
    let (code, out, err) = s.cli(&["service-accounts", "keys", "add", "ci", "--name", "first"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("already has a live key named first"), "{err}");
    // A bad name, a lifetime beyond the maximum, an expiry in the past, both expiry fields.
    for (body, words) in [
        (json!({"name": "Bad Name"}), "invalid key name"),
        (
            json!({"name": "long", "expires_in_secs": 366 * 86_400}),
            "access.max_api_key_days",
        ),
        (
            json!({"name": "past", "expires_at": "2001-01-01T00:00:00Z"}),
            "must expire in the future",
        ),
        (
            json!({"name": "both", "expires_in_secs": 60, "expires_at": "2030-01-01T00:00:00Z"}),
            "not both",
        ),
    ] {
        let (status, answer) = add_key(&s, "ci", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(words), "{answer}");
    }
    // Keys belong to service accounts only.
    let (status, answer) = add_key(&s, "admin", json!({"name": "k"})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("not a service account"),
        "{answer}"
    );
    let (status, _) = add_key(&s, "nobody", json!({"name": "k"})).await;
    assert_eq!(status, 404);
    // The CLI refuses both expiry flags (usage error).
    let (code, _, _) = s.cli(&[
        "service-accounts",
        "keys",
        "add",
        "ci",
        "--name",
        "x",
        "--expires-in",
        "3",
        "--expires-at",
        "2030-01-01",
    ]);
    assert_eq!(code, 2);

    // Only an access-admin adds or revokes keys; an auditor may list them, a developer not.
    for (user, role) in [("dev", "developer"), ("aud", "auditor")] {
        let (status, body) = post_json(
            &s.http,
            &s.url("/api/v1/users"),
            json!({"name": user, "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = post_json(
            &s.http,
            &s.url("/api/v1/roles/grant"),
            json!({"principal": user, "role": role, "scope": "*"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let client = client_as(user, PASSWORD);
        let (status, _) = post_json(
            &client,
            &s.url("/api/v1/service-accounts/ci/keys"),
            json!({"name": "mine"}),
        )
        .await;
        assert_eq!(status, 403, "{user} added a key");
        let (status, _) = post_json(
            &client,
            &s.url("/api/v1/service-accounts/ci/keys/first/revoke"),
            json!({}),
        )
        .await;
        assert_eq!(status, 403, "{user} revoked a key");
        let (status, _) = get_json(&client, &s.url("/api/v1/service-accounts/ci/keys")).await;
        assert_eq!(status, if role == "auditor" { 200 } else { 403 });
    }
    let (_, list) = get_json(&s.http, &s.url("/api/v1/service-accounts/ci/keys")).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn revoking_one_key_ends_its_tokens_and_refresh_tokens_and_leaves_the_others_working() {
    let s = TestServer::start();
    let first = service_account(&s, "ci").await;
    let (status, second) = add_key(&s, "ci", json!({"name": "second"})).await;
    assert_eq!(status, 201, "{second}");
    let second = second["api_key"].as_str().unwrap().to_string();
    let scope = "repository:dev/team/app:pull,push";
    let from_first = token(&s, "ci", &first, scope).await;
    let from_second = token(&s, "ci", &second, scope).await;
    let first_access = bearer(from_first["token"].as_str().unwrap());
    let second_access = bearer(from_second["token"].as_str().unwrap());
    assert_eq!(start_upload(&s, &first_access, "dev/team/app").await, 202);

    let (code, out, err) = s.cli(&["service-accounts", "keys", "revoke", "ci", "first"]);
    assert_eq!(code, 0, "{out}{err}");
    // The revoked key, its access token and its refresh token are refused at once.
    assert_eq!(
        start_upload(&s, &client_as("ci", &first), "dev/team/app").await,
        401
    );
    assert_eq!(start_upload(&s, &first_access, "dev/team/app").await, 401);
    let (status, _) = refresh(&s, from_first["refresh_token"].as_str().unwrap(), scope).await;
    assert_eq!(status, 401);
    // The other key and everything descending from it keep working.
    assert_eq!(
        start_upload(&s, &client_as("ci", &second), "dev/team/app").await,
        202
    );
    assert_eq!(start_upload(&s, &second_access, "dev/team/app").await, 202);
    let (status, renewed) =
        refresh(&s, from_second["refresh_token"].as_str().unwrap(), scope).await;
    assert_eq!(status, 200, "{renewed}");

    let revoked = entries_of_kind(&s, "credential.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:#?}");
    assert_eq!(revoked[0]["details"]["name"], "first");
    assert_eq!(revoked[0]["actor"]["principal"], "admin");
    // Revoking it again, or a key that does not exist, is refused.
    let (code, _, err) = s.cli(&["service-accounts", "keys", "revoke", "ci", "first"]);
    assert_eq!(code, 1);
    assert!(err.contains("already revoked"), "{err}");
    // (An unknown name is a 404, which the CLI exits with 1 like every other command.)
    let (code, _, err) = s.cli(&["service-accounts", "keys", "revoke", "ci", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("keys list ci"), "{err}");
    // The name is free for a replacement; the old key stays listed as revoked.
    let (status, body) = add_key(&s, "ci", json!({"name": "first"})).await;
    assert_eq!(status, 201, "{body}");
    let (_, list) = get_json(&s.http, &s.url("/api/v1/service-accounts/ci/keys")).await;
    let statuses: Vec<(&str, &str)> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("default", "active"),
            ("first", "revoked"),
            ("second", "active"),
            ("first", "active")
        ]
    );
    // The older revoke route still works for API keys too.
    let default_id = list["keys"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = post_json(
        &s.http,
        &s.url(&format!("/api/v1/credentials/{default_id}/revoke")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(start_upload(&s, &second_access, "dev/team/app").await, 202);
}

#[tokio::test]
async fn last_use_is_recorded_when_a_key_authenticates() {
    let s = TestServer::start();
    let first = service_account(&s, "ci").await;
    let last_used = |list: &Value| list["keys"][1]["last_used"].clone();
    let (_, list) = get_json(&s.http, &s.url("/api/v1/service-accounts/ci/keys")).await;
    assert_eq!(last_used(&list), Value::Null);
    token(&s, "ci", &first, "repository:dev/team/app:pull").await;
    for _ in 0..50 {
        let (_, list) = get_json(&s.http, &s.url("/api/v1/service-accounts/ci/keys")).await;
        if last_used(&list).is_string() {
            // The key that was not used has no last use.
            assert_eq!(list["keys"][0]["last_used"], Value::Null);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("last_used was not recorded after the key authenticated");
}

/// A webhook receiver that checks each signature and keeps the events it accepts.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(seen): State<Arc<Mutex<Vec<Value>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    if headers
        .get("x-airlock-signature")
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return StatusCode::UNAUTHORIZED;
    }
    seen.lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, seen, task }
    }

    async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            let seen = self.seen.lock().unwrap().clone();
            if seen.len() >= count {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {} of {count} events",
            self.seen.lock().unwrap().len()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const NOTICE_ENV: [(&str, &str); 4] = [
    ("AIRLOCK_ACCESS__CREDENTIAL_EXPIRY_WARNING_DAYS", "2"),
    ("AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
    ("AIRLOCK_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    ("AIRLOCK_WEBHOOKS__INITIAL_BACKOFF_MS", "50"),
];

#[tokio::test]
async fn a_key_inside_the_warning_window_yields_one_expiring_event_and_one_webhook_across_restarts()
{
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut s = TestServer::start_in(&dir, &NOTICE_ENV);
    let receiver = Receiver::start().await;
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/webhooks"),
        json!({"url": receiver.url, "events": ["credential.expiring", "credential.expired"], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    service_account(&s, "ci").await;
    // `first` expires in 7 days, outside the 2-day window; `soon` in 1 day, inside it; `gone`
    // in 2 seconds.
    let (status, soon) =
        add_key(&s, "ci", json!({"name": "soon", "expires_in_secs": 86_400})).await;
    assert_eq!(status, 201, "{soon}");
    let (status, gone) = add_key(&s, "ci", json!({"name": "gone", "expires_in_secs": 2})).await;
    assert_eq!(status, 201, "{gone}");
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Notices due are appended at start (and every 30 s after): restart twice.
    for _ in 0..2 {
        s.stop();
        let restarted = TestServer::start_in(&dir, &NOTICE_ENV);
        let expiring = entries_of_kind(&restarted, "credential.expiring").await;
        assert_eq!(expiring.len(), 1, "{expiring:#?}");
        let details = &expiring[0]["details"];
        assert_eq!(expiring[0]["subject"]["name"], "ci");
        assert_eq!(details["id"], soon["id"]);
        assert_eq!(details["name"], "soon");
        assert_eq!(details["expires"], soon["expires"]);
        assert_eq!(details["days"], 2);
        let expired = entries_of_kind(&restarted, "credential.expired").await;
        assert_eq!(expired.len(), 1, "{expired:#?}");
        assert_eq!(expired[0]["details"]["name"], "gone");
        assert!(!serde_json::to_string(&expiring).unwrap().contains("alk_"));
        s = restarted;
    }
    let events = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_now = receiver.seen.lock().unwrap().clone();
    assert_eq!(events_now.len(), 2, "{events_now:#?}");
    let expiring: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "dev.airlock.credential.expiring")
        .collect();
    assert_eq!(expiring.len(), 1, "{events:#?}");
    assert_eq!(expiring[0]["data"]["entry"]["details"]["name"], "soon");
    assert_eq!(expiring[0]["subject"], "principal/ci");
}

#[tokio::test]
async fn a_role_grant_keeps_the_refresh_token_and_the_next_token_carries_the_new_right() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1", &[b"layer"]).await;
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/users"),
        json!({"name": "ana", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    post_json(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": "ana", "role": "reader", "scope": "dev"}),
    )
    .await;
    let scope = "repository:dev/team/app:pull,push";
    let login = token(&s, "ana", PASSWORD, scope).await;
    assert_eq!(
        claims_of(login["token"].as_str().unwrap())["access"][0]["actions"],
        json!(["pull"])
    );
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": "ana", "role": "developer", "scope": "dev"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The access token from before the grant still works for what it carries.
    let old = bearer(login["token"].as_str().unwrap());
    let (status, _) = get_json(&old, &s.url("/v2/dev/team/app/tags/list")).await;
    assert_eq!(status, 200);
    // The refresh token still works, and the next access token carries the new right.
    let (status, renewed) = refresh(&s, login["refresh_token"].as_str().unwrap(), scope).await;
    assert_eq!(status, 200, "{renewed}");
    let mut actions: Vec<String> = serde_json::from_value(
        claims_of(renewed["token"].as_str().unwrap())["access"][0]["actions"].clone(),
    )
    .unwrap();
    actions.sort();
    assert_eq!(actions, ["pull", "push"]);
    assert_eq!(
        start_upload(
            &s,
            &bearer(renewed["token"].as_str().unwrap()),
            "dev/team/app"
        )
        .await,
        202
    );
    // `airlock roles grant` through the CLI keeps the login too.
    let (code, out, err) = s.cli(&["roles", "grant", "ana", "reader", "--scope", "staging"]);
    assert_eq!(code, 0, "{out}{err}");
    let (status, _) = get_json(&old, &s.url("/v2/dev/team/app/tags/list")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_revoked_role_refuses_an_existing_access_token_at_once() {
    let s = TestServer::start();
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/users"),
        json!({"name": "ben", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    post_json(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": "ben", "role": "developer", "scope": "dev"}),
    )
    .await;
    let login = token(&s, "ben", PASSWORD, "repository:dev/team/app:pull,push").await;
    let access = bearer(login["token"].as_str().unwrap());
    assert_eq!(start_upload(&s, &access, "dev/team/app").await, 202);
    let (code, out, err) = s.cli(&["roles", "revoke", "ben", "developer", "--scope", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(start_upload(&s, &access, "dev/team/app").await, 401);
    let (status, _) = refresh(
        &s,
        login["refresh_token"].as_str().unwrap(),
        "repository:dev/team/app:pull",
    )
    .await;
    assert_eq!(status, 401, "a removal ends the stored login too");
}

#[tokio::test]
async fn a_jit_grant_running_out_removes_the_right_from_tokens_issued_during_it() {
    let s = TestServer::start();
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/users"),
        json!({"name": "jit", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let jit = client_as("jit", PASSWORD);
    let login = token(&s, "jit", PASSWORD, "repository:dev/team/app:pull").await;
    let (status, body) = post_json(
        &jit,
        &s.url("/api/v1/access-requests"),
        json!({"role": "developer", "scope": "dev/team/app", "duration_secs": 3, "reason": "INC-7"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &s.http,
        &s.url(&format!("/api/v1/access-requests/{}/grant", body["id"])),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The grant did not log jit out: the login made before it refreshes into a token with push.
    let (status, during) = refresh(
        &s,
        login["refresh_token"].as_str().unwrap(),
        "repository:dev/team/app:pull,push",
    )
    .await;
    assert_eq!(status, 200, "{during}");
    let access = bearer(during["token"].as_str().unwrap());
    assert_eq!(start_upload(&s, &access, "dev/team/app").await, 202);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The token still says push, but the grant behind it ended: refused.
    assert_eq!(start_upload(&s, &access, "dev/team/app").await, 403);
    let (status, after) = refresh(
        &s,
        during["refresh_token"].as_str().unwrap(),
        "repository:dev/team/app:pull,push",
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        claims_of(after["token"].as_str().unwrap())["access"],
        json!([])
    );
}

/// Admin creates user `name` with `grants`; returns its client.
async fn user(s: &TestServer, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
    common::add_user(s, name, PASSWORD, grants).await
}

#[tokio::test]
async fn an_approver_account_holding_a_key_the_requester_added_does_not_count() {
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
    // admin makes everyone; eve, an access-admin who also promotes, adds a key to the approver
    // service account admin made.
    let eve = user(&s, "eve", &[("access-admin", "*"), ("promoter", "staging")]).await;
    let ann = user(&s, "ann", &[("approver", "staging")]).await;
    let ci = user(&s, "ci", &[("developer", "dev")]).await;
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/service-accounts"),
        json!({"name": "approve-bot", "expires_in_secs": 86_400}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": "approve-bot", "role": "approver", "scope": "staging"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, eves_key) = post_json(
        &eve,
        &s.url("/api/v1/service-accounts/approve-bot/keys"),
        json!({"name": "eves"}),
    )
    .await;
    assert_eq!(status, 201, "{eves_key}");
    assert_eq!(eves_key["created_by"], "eve");

    let digest = common::push_image_as(&s, &ci, "dev/team/app", "1.0", b"keyed", None).await;
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
    let bot = client_as("approve-bot", eves_key["api_key"].as_str().unwrap());
    let (status, body) = approve(bot).await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "APPROVAL_REFUSED", "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("approve-bot holds an API key added by eve, who requested this promotion"),
        "{body:#}"
    );
    let (status, body) = approve(ann).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
}
