//! Authentication holes closed, end to end against a real `airlock serve`: tokens die with the
//! credential they descend from, refresh tokens rotate and a reused one revokes its login, refused
//! logins cost the same whoever the name, the failure limiter is keyed by (name, address) under a
//! per-address ceiling, `X-Forwarded-For` counts only from trusted proxies, the token realm never
//! comes from the `Host` header, and a disabled principal is not told to log in again. That refused
//! logins also take as long whichever part was wrong is measured alone, in `tests/it/auth_timing.rs`.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestServer, bearer, claims_of, client_as};
use serde_json::{Value, json};

/// The password every test user gets.
const PASSWORD: &str = "user-password-0123";

// ---- helpers ----------------------------------------------------------------------------------

async fn api_post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    common::post_json(&s.http, &s.url(path), body).await
}

async fn add_user(s: &TestServer, name: &str) -> reqwest::Client {
    let (status, body) = api_post(
        s,
        "/api/v1/users",
        json!({"name": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "create user {name}: {body}");
    client_as(name, PASSWORD)
}

async fn grant(s: &TestServer, principal: &str, role: &str, scope: &str) {
    let (status, body) = api_post(
        s,
        "/api/v1/roles/grant",
        json!({"principal": principal, "role": role, "scope": scope}),
    )
    .await;
    assert_eq!(status, 200, "grant {role} to {principal}: {body}");
}

/// Creates service account `name` whose API key expires in `secs`; returns (key, key id).
async fn add_service_account(s: &TestServer, name: &str, secs: u64) -> (String, String) {
    let (status, body) = api_post(
        s,
        "/api/v1/service-accounts",
        json!({"name": name, "expires_in_secs": secs}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["api_key"].as_str().unwrap().to_string(),
        body["key_id"].as_str().unwrap().to_string(),
    )
}

/// `POST /auth/token` with `form`; returns the status and the JSON answer.
async fn token_form(s: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Logs in with offline access; returns (access token, refresh token).
async fn login_offline(s: &TestServer, user: &str, secret: &str) -> (String, String) {
    let (status, body) = token_form(
        s,
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", secret),
            ("service", "airlock"),
            ("access_type", "offline"),
            ("scope", "repository:dev/team/app:pull"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// Exchanges `refresh`; returns the status and the answer.
async fn exchange(s: &TestServer, refresh: &str) -> (u16, Value) {
    token_form(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", "airlock"),
            ("scope", "repository:dev/team/app:pull"),
        ],
    )
    .await
}

/// The status of `GET /v2/` (any valid credentials pass) with `client`.
async fn registry_status(s: &TestServer, client: &reqwest::Client) -> u16 {
    client
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits for the next minute if fewer than `secs` seconds are left in this one.
async fn keep_within_one_minute(secs: u64) {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = 60_000 - millis % 60_000;
    if left < secs * 1000 {
        tokio::time::sleep(Duration::from_millis(left + 200)).await;
    }
}

/// The status of a token request with Basic `user`:`secret`, optionally as forwarded for `xff`.
async fn basic_login(s: &TestServer, user: &str, secret: &str, xff: Option<&str>) -> u16 {
    let mut request = client_as(user, secret).get(s.url("/auth/token?service=airlock"));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap().status().as_u16()
}

// ---- tokens die with their credential ---------------------------------------------------------

#[tokio::test]
async fn refresh_token_stops_working_after_api_key_expires() {
    let s = TestServer::start();
    let (key, _) = add_service_account(&s, "ci", 4).await;
    let issued = Instant::now();
    grant(&s, "ci", "reader", "dev").await;
    let (access, refresh) = login_offline(&s, "ci", &key).await;
    assert_eq!(claims_of(&refresh)["cred"], claims_of(&access)["cred"]);
    // While the key lives, the refresh token works (and rotates).
    let (status, body) = exchange(&s, &refresh).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let access = body["token"].as_str().unwrap().to_string();
    assert_eq!(registry_status(&s, &bearer(&access)).await, 200);

    tokio::time::sleep(Duration::from_secs(5).saturating_sub(issued.elapsed())).await;
    // The key has expired: its refresh token issues nothing, its access token opens nothing,
    // although neither token has expired itself and the principal's epoch never moved.
    let (status, body) = exchange(&s, &refresh).await;
    assert_eq!(status, 401, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("expired or was revoked"), "{message}");
    assert_eq!(registry_status(&s, &bearer(&access)).await, 401);
    assert_eq!(registry_status(&s, &client_as("ci", &key)).await, 401);
}

// ---- refresh-token rotation -------------------------------------------------------------------

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_login() {
    let s = TestServer::start();
    add_user(&s, "dev").await;
    grant(&s, "dev", "reader", "dev").await;
    let (_, first) = login_offline(&s, "dev", PASSWORD).await;
    let (status, body) = exchange(&s, &first).await;
    assert_eq!(status, 200, "{body}");
    let second = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first, "an exchange returns a new refresh token");
    let (status, body) = exchange(&s, &second).await;
    assert_eq!(status, 200, "{body}");
    let third = body["refresh_token"].as_str().unwrap().to_string();
    let access = body["token"].as_str().unwrap().to_string();
    assert_eq!(registry_status(&s, &bearer(&access)).await, 200);
    // Another login of the same user is another family, untouched by what follows.
    let (_, other_login) = login_offline(&s, "dev", PASSWORD).await;

    // The first token again: spent, so someone else has a copy. The whole family dies.
    let (status, body) = exchange(&s, &first).await;
    assert_eq!(status, 401, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("reused"), "{message}");
    let (status, _) = exchange(&s, &third).await;
    assert_eq!(status, 401, "the newest token of the family is revoked too");
    assert_eq!(
        registry_status(&s, &bearer(&access)).await,
        401,
        "access tokens of the family are refused too"
    );
    let (status, body) = exchange(&s, &other_login).await;
    assert_eq!(status, 200, "another login keeps working: {body}");

    // The reuse is an authentication failure in the audit log.
    s.wait_for_checkpoint().await;
    let failures: Vec<Value> = s
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "auth.failed" && e["subject"]["name"] == "dev")
        .collect();
    assert!(
        failures
            .iter()
            .any(|e| e["details"]["reason"].as_str().unwrap().contains("reused")),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn refresh_token_state_survives_a_restart() {
    let mut s = TestServer::start();
    add_user(&s, "dev").await;
    let (_, first) = login_offline(&s, "dev", PASSWORD).await;
    let (status, body) = exchange(&s, &first).await;
    assert_eq!(status, 200, "{body}");
    let second = body["refresh_token"].as_str().unwrap().to_string();
    s.stop();
    let restarted = TestServer::start_in(&s.data_dir, &[]);
    // The live token still works, and the spent one is still known to be spent.
    let (status, body) = exchange(&restarted, &second).await;
    assert_eq!(status, 200, "{body}");
    let third = body["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = exchange(&restarted, &first).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = exchange(&restarted, &third).await;
    assert_eq!(
        status, 401,
        "the reuse after the restart revoked the family"
    );
}

#[tokio::test]
async fn docker_engine_gets_no_refresh_token_it_would_not_rotate() {
    let s = TestServer::start();
    add_user(&s, "dev").await;
    let form = |client_id| {
        vec![
            ("grant_type", "password"),
            ("username", "dev"),
            ("password", PASSWORD),
            ("service", "airlock"),
            ("access_type", "offline"),
            ("client_id", client_id),
        ]
    };
    let (status, body) = token_form(&s, &form("docker")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");
    let response = client_as("dev", PASSWORD)
        .get(s.url("/auth/token?service=airlock&offline_token=true&client_id=docker"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    // Clients that store the rotated token get one.
    let (status, body) = token_form(&s, &form("airlock-cli")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
}

#[tokio::test]
async fn cli_keeps_working_across_commands_after_refresh_rotation() {
    let s = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        home.path(),
        &["login", &s.base, "-u", "admin", "--password-stdin"],
        Some(common::ADMIN_PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");
    let stored = || {
        let text = std::fs::read_to_string(home.path().join("airlock/credentials.json")).unwrap();
        let store: Value = serde_json::from_str(&text).unwrap();
        store["servers"][&s.base]["refresh_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut seen = vec![stored()];
    for _ in 0..3 {
        let (code, out, err) = s.cli_as(home.path(), &["whoami"], None);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("admin"), "{out}");
        let now = stored();
        assert!(
            !seen.contains(&now),
            "the CLI stores the rotated refresh token"
        );
        seen.push(now);
    }
    // Commands running at once share the login without tripping reuse detection.
    let runs: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| s.cli_as(home.path(), &["users", "list"], None)))
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (code, out, err) in runs {
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, out, err) = s.cli_as(home.path(), &["whoami"], None);
    assert_eq!(code, 0, "{out}{err}");
}

// ---- refused logins say the same (their cost: tests/it/auth_timing.rs) --------------------------

#[tokio::test]
async fn a_refused_login_says_the_same_whichever_part_was_wrong() {
    let s = TestServer::start();
    add_user(&s, "alice").await;
    let (_, key_id) = add_service_account(&s, "ci", 3600).await;
    let mut messages = Vec::new();
    for (user, secret) in [
        ("nobody", "wrong-password-0123".to_string()),
        ("alice", "wrong-password-0123".to_string()),
        ("ci", format!("alk_{key_id}_{}", "A".repeat(43))),
        ("nobody", format!("alk_{key_id}_{}", "A".repeat(43))),
    ] {
        let response = client_as(user, &secret)
            .get(s.url("/auth/token?service=airlock"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        messages.push(body["errors"][0]["message"].as_str().unwrap().to_string());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:#?}");
}

// ---- the failure limiter ----------------------------------------------------------------------

#[tokio::test]
async fn failures_for_one_user_do_not_block_another_users_login_from_the_same_address() {
    let s = TestServer::start();
    add_user(&s, "alice").await;
    add_user(&s, "bob").await;
    keep_within_one_minute(20).await;
    for attempt in 1..=10 {
        assert_eq!(
            basic_login(&s, "alice", "wrong-password-0123", None).await,
            401,
            "attempt {attempt}"
        );
    }
    assert_eq!(
        basic_login(&s, "alice", "wrong-password-0123", None).await,
        429
    );
    assert_eq!(basic_login(&s, "alice", PASSWORD, None).await, 429);
    // Bob, from the same address, is not held up by alice's failures.
    assert_eq!(basic_login(&s, "bob", PASSWORD, None).await, 200);
}

#[tokio::test]
async fn the_per_address_ceiling_stops_a_password_spray() {
    let s =
        TestServer::start_with_env(&[("AIRLOCK_ACCESS__MAX_FAILURES_PER_SOURCE_PER_MINUTE", "15")]);
    add_user(&s, "alice").await;
    keep_within_one_minute(20).await;
    for n in 0..15 {
        let name = format!("user{n}");
        assert_eq!(
            basic_login(&s, &name, "wrong-password-0123", None).await,
            401,
            "{name}"
        );
    }
    assert_eq!(
        basic_login(&s, "user99", "wrong-password-0123", None).await,
        429
    );
    assert_eq!(basic_login(&s, "alice", PASSWORD, None).await, 429);
}

// ---- the client address -----------------------------------------------------------------------

/// The source of the newest audit entry that created principal `name`.
async fn creation_source(s: &TestServer, name: &str) -> String {
    s.audit_entries()
        .await
        .into_iter()
        .rev()
        .find(|e| e["type"] == "principal.created" && e["subject"]["name"] == name)
        .unwrap_or_else(|| panic!("no principal.created for {name}"))["actor"]["source"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn create_user_forwarded(s: &TestServer, name: &str, xff: &str) {
    let response = s
        .http
        .post(s.url("/api/v1/users"))
        .header("x-forwarded-for", xff)
        .json(&json!({"name": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let s = TestServer::start();
    create_user_forwarded(&s, "alice", "203.0.113.7").await;
    let source = creation_source(&s, "alice").await;
    assert!(source.starts_with("127.0.0.1:"), "{source}");
    // Nor can a client escape its own failure count by claiming another address.
    keep_within_one_minute(20).await;
    for n in 0..10 {
        let xff = format!("203.0.113.{n}");
        assert_eq!(
            basic_login(&s, "alice", "wrong-password-0123", Some(&xff)).await,
            401
        );
    }
    assert_eq!(
        basic_login(&s, "alice", PASSWORD, Some("198.51.100.1")).await,
        429
    );
}

#[tokio::test]
async fn forwarded_for_names_the_client_behind_a_trusted_proxy() {
    let s = TestServer::start_with_env(&[("AIRLOCK_ACCESS__TRUSTED_PROXIES", "127.0.0.1")]);
    // The left-most entry is whatever the client claimed; the right-most untrusted one is the
    // address the proxy saw.
    create_user_forwarded(&s, "alice", "6.6.6.6, 203.0.113.7").await;
    assert_eq!(creation_source(&s, "alice").await, "203.0.113.7:0");
    // The limiter counts per client behind the proxy: one client's failures leave another's
    // login alone.
    keep_within_one_minute(20).await;
    for _ in 0..10 {
        assert_eq!(
            basic_login(&s, "alice", "wrong-password-0123", Some("203.0.113.7")).await,
            401
        );
    }
    assert_eq!(
        basic_login(&s, "alice", PASSWORD, Some("203.0.113.7")).await,
        429
    );
    assert_eq!(
        basic_login(&s, "alice", PASSWORD, Some("203.0.113.8")).await,
        200
    );
}

#[tokio::test]
async fn a_forwarded_for_hop_that_is_not_text_does_not_hide_the_client() {
    let s = TestServer::start_with_env(&[("AIRLOCK_ACCESS__TRUSTED_PROXIES", "127.0.0.1")]);
    // The client sent a byte that is not ASCII; the proxy appended the address it saw on the
    // same line. Dropping the whole value would make the proxy itself the client.
    let response = s
        .http
        .post(s.url("/api/v1/users"))
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap(),
        )
        .json(&json!({"name": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(creation_source(&s, "alice").await, "203.0.113.9:0");
}

// ---- the token realm --------------------------------------------------------------------------

#[tokio::test]
async fn the_token_realm_ignores_the_host_header() {
    let s = TestServer::start();
    for path in ["/v2/", "/v2/dev/team/app/tags/list"] {
        let response = s
            .anonymous
            .get(s.url(path))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(&format!("Bearer realm=\"{}/auth/token\"", s.base)),
            "{path}: {challenge}"
        );
        assert!(!challenge.contains("evil.example"), "{challenge}");
    }
    let configured =
        TestServer::start_with_env(&[("AIRLOCK_ACCESS__PUBLIC_URL", "https://registry.example")]);
    let response = configured
        .anonymous
        .get(configured.url("/v2/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"https://registry.example/auth/token\""),
        "{challenge}"
    );
}

// ---- no claim of a capability that does not exist ---------------------------------------------

#[tokio::test]
async fn a_disabled_user_is_not_told_to_log_in_again() {
    let s = TestServer::start();
    let dan = add_user(&s, "dan").await;
    let (status, body) = api_post(&s, "/api/v1/users/dan/disable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let response = dan.get(s.url("/api/v1/whoami")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    let remediation = body["error"]["remediation"].as_str().unwrap();
    assert!(message.contains("disabled"), "{message}");
    assert!(message.contains("airlock users enable dan"), "{message}");
    assert!(!remediation.contains("airlock login"), "{remediation}");
    // Someone without the password learns nothing about the account.
    let response = client_as("dan", "wrong-password-0123")
        .get(s.url("/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{body}"
    );
}
