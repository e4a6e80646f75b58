//! `airlock keys rotate-server`: replacing airlock's own keys on a running server.
//!
//! The token signing key: tokens signed before a rotation keep working until the overlap ends,
//! new tokens carry the new key's `kid`, and after the overlap the old key's tokens are refused.
//! The promotion attestation key: new attestations are signed by the new key, older ones keep
//! verifying with the replaced key, which `/api/v1/attestation-key` keeps listing. The audit log
//! key is never rotated in place.

use crate::common;

use common::permissive_bundle;

use std::time::Duration;

use base64::Engine as _;
use common::{OCI_MANIFEST, TestServer, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "server-keys-password-1";

/// Creates user `name` holding each (role, scope) of `grants`.
async fn user(s: &TestServer, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
    common::add_user(s, name, PASSWORD, grants).await
}

async fn rotate(s: &TestServer, client: &reqwest::Client, key: &str, body: Value) -> (u16, Value) {
    post(
        client,
        &s.url(&format!("/api/v1/server-keys/{key}/rotate")),
        body,
    )
    .await
}

/// The `kid` in a JWT's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// An access token and a refresh token for admin (a login with offline access).
async fn login(s: &TestServer) -> (String, String) {
    let body: Value = s
        .http
        .get(s.url("/auth/token?offline_token=true&client_id=server-keys-test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// The status of `GET /api/v1/whoami` with bearer `token`.
async fn whoami(s: &TestServer, token: &str) -> u16 {
    s.anonymous
        .get(s.url("/api/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Exchanges refresh token `token`: (status, answer).
async fn refresh(s: &TestServer, token: &str) -> (u16, Value) {
    let response = s
        .anonymous
        .get(s.url("/auth/token"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_rotated_token_key_keeps_earlier_tokens_until_the_overlap_ends() {
    let mut s = TestServer::start_with_env(&[("AIRLOCK_ACCESS__TOKEN_LIFETIME_SECS", "3")]);
    let keyadmin = user(&s, "keyadmin", &[("key-admin", "*")]).await;
    let (old_access, old_refresh) = login(&s).await;
    let old_kid = kid(&old_access);
    assert_eq!(
        kid(&old_refresh),
        old_kid,
        "refresh tokens are signed by the same key"
    );

    // An overlap shorter than the access-token lifetime would cut tokens short: refused.
    let (status, body) = rotate(&s, &keyadmin, "token", json!({"overlap_secs": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("access-token lifetime"),
        "{body}"
    );

    // An overlap of 4 s (at least the 3 s access-token lifetime), so the steps below fit in it
    // even on a loaded machine.
    let (status, rotated) = rotate(&s, &keyadmin, "token", json!({"overlap_secs": 4})).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["key"], "token");
    assert_eq!(rotated["old_key_id"], old_kid.as_str());
    let new_kid = rotated["new_key_id"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    // Refresh tokens live longer than this overlap: the answer says those logins end.
    assert!(
        rotated["notice"].as_str().unwrap().contains("log in again"),
        "{rotated}"
    );

    // Within the overlap the earlier token works; new tokens carry the new key's kid, without
    // a restart.
    assert_eq!(whoami(&s, &old_access).await, 200);
    let (new_access, new_refresh) = login(&s).await;
    assert_eq!(kid(&new_access), new_kid);
    assert_eq!(kid(&new_refresh), new_kid);
    assert_eq!(whoami(&s, &new_access).await, 200);

    // After the overlap, what the old key signed is refused (here a refresh token, which has
    // not expired), saying why.
    // The overlap ends within 5 s of the rotation (whole seconds, never earlier than asked).
    tokio::time::sleep(Duration::from_millis(5600)).await;
    let (status, body) = refresh(&s, &old_refresh).await;
    assert_eq!(status, 401, "{body}");
    let text = body.to_string();
    assert!(
        text.contains(&old_kid) && text.contains("replaced"),
        "{text}"
    );
    // The new key's refresh token still works.
    let (status, body) = refresh(&s, &new_refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kid(body["token"].as_str().unwrap()), new_kid);
    let renewed = body["refresh_token"].as_str().unwrap().to_string();

    // Listed and recorded.
    let listing: Value = keyadmin
        .get(s.url("/api/v1/server-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listing["token"][0]["key_id"],
        new_kid.as_str(),
        "{listing:#}"
    );
    assert_eq!(listing["token"][0]["status"], "current");
    assert_eq!(listing["token"][1]["key_id"], old_kid.as_str());
    assert!(listing["token"][1]["retired_at"].is_string());
    assert!(listing["token"][1]["accepted_until"].is_string());
    let entries = s.audit_entries().await;
    let entry = entries
        .iter()
        .find(|e| e["type"] == "server_key.rotated")
        .expect("a server_key.rotated entry");
    assert_eq!(entry["actor"]["principal"], "keyadmin");
    assert_eq!(entry["details"]["old_key_id"], old_kid.as_str());
    assert_eq!(entry["details"]["new_key_id"], new_kid.as_str());

    // The new key and the history survive a restart.
    let data_dir = s.data_dir.clone();
    s.stop();
    let s = TestServer::start_in(&data_dir, &[("AIRLOCK_ACCESS__TOKEN_LIFETIME_SECS", "3")]);
    let (status, body) = refresh(&s, &renewed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kid(body["token"].as_str().unwrap()), new_kid);
    let (status, _) = refresh(&s, &old_refresh).await;
    assert_eq!(status, 401);
}

/// Promotes `digest` from dev/team/app to staging as `promoter`; returns the promotion
/// attestation's DSSE envelope (the last layer of the `.att` manifest in staging).
async fn promote(s: &TestServer, promoter: &reqwest::Client, digest: &str) -> Value {
    let (status, body) = post(
        promoter,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    let manifest: Value = s
        .http
        .get(s.url(&format!(
            "/v2/staging/team/app/manifests/sha256-{}.att",
            &digest[7..]
        )))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    s.http
        .get(s.url(&format!(
            "/v2/staging/team/app/blobs/{}",
            layer["digest"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Whether the DSSE `envelope` carries a signature by the key in `public_pem`.
fn signed_by(envelope: &Value, public_pem: &str) -> bool {
    let parsed = airlock_trust::dsse::Envelope::parse(envelope.to_string().as_bytes()).unwrap();
    let key = airlock_trust::keys::PublicKey::from_pem(public_pem).unwrap();
    parsed
        .signatures
        .iter()
        .any(|sig| key.verify(&parsed.pae(), &sig.sig).is_ok())
}

async fn attestation_keys(s: &TestServer) -> Value {
    s.anonymous
        .get(s.url("/api/v1/attestation-key"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn attestation_pem(s: &TestServer) -> String {
    let response = s
        .anonymous
        .get(s.url("/api/v1/attestation-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_rotated_attestation_key_signs_new_promotions_and_the_old_one_stays_listed() {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let keyadmin = user(&s, "keyadmin", &[("key-admin", "*")]).await;
    let promoter = user(&s, "rita", &[("promoter", "staging")]).await;
    let (_, first) = s.push_image("dev/team/app", "1.0", &[b"first"]).await;
    let (_, second) = s.push_image("dev/team/app", "2.0", &[b"second"]).await;

    let old_pem = attestation_pem(&s).await;
    assert!(
        old_pem.starts_with("-----BEGIN PUBLIC KEY-----"),
        "{old_pem}"
    );
    let before = attestation_keys(&s).await;
    assert_eq!(before["keys"].as_array().unwrap().len(), 1, "{before:#}");
    let old_attestation = promote(&s, &promoter, &first).await;
    assert!(signed_by(&old_attestation, &old_pem));

    // The attestation key takes no overlap.
    let (status, body) = rotate(&s, &keyadmin, "attestation", json!({"overlap_secs": 60})).await;
    assert_eq!(status, 400, "{body}");
    let (code, out, err) = {
        let home = temp.path().join("keyadmin-home");
        std::fs::create_dir_all(&home).unwrap();
        let (code, out, err) = s.cli_as(
            &home,
            &["login", &s.base, "-u", "keyadmin", "--password-stdin"],
            Some(PASSWORD),
        );
        assert_eq!(code, 0, "{out}{err}");
        s.cli_as(
            &home,
            &["keys", "rotate-server", "attestation", "--output", "json"],
            None,
        )
    };
    assert_eq!(code, 0, "{out}{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rotated["key"], "attestation");
    assert_eq!(rotated["old_key_id"], before["current"]);

    // The PEM answer (what existing clients and `export-attestation-key` read) is the new key;
    // the JSON listing holds both.
    let new_pem = attestation_pem(&s).await;
    assert_ne!(new_pem, old_pem);
    let (code, exported, err) = s.cli(&["keys", "export-attestation-key"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(exported, new_pem);
    let listing = attestation_keys(&s).await;
    let keys = listing["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listing:#}");
    assert_eq!(listing["current"], rotated["new_key_id"]);
    assert_eq!(keys[0]["key_id"], rotated["new_key_id"]);
    assert_eq!(keys[0]["public_key"], new_pem.as_str());
    assert_eq!(keys[0]["retired_at"], Value::Null);
    assert_eq!(keys[1]["key_id"], rotated["old_key_id"]);
    assert_eq!(keys[1]["public_key"], old_pem.as_str());
    assert!(keys[1]["retired_at"].is_string(), "{listing:#}");
    assert!(keys[1]["created"].is_string(), "{listing:#}");

    // A new promotion is attested by the new key; the old attestation still verifies with the
    // listed previous key, and neither with the other.
    let new_attestation = promote(&s, &promoter, &second).await;
    assert!(signed_by(&new_attestation, &new_pem));
    assert!(!signed_by(&new_attestation, &old_pem));
    let listed_old = keys[1]["public_key"].as_str().unwrap();
    assert!(signed_by(&old_attestation, listed_old));
    assert!(!signed_by(&old_attestation, &new_pem));
    assert!(
        s.audit_entries()
            .await
            .iter()
            .any(|e| e["type"] == "server_key.rotated"
                && e["subject"]["name"] == "attestation"
                && e["details"]["old_key_id"] == rotated["old_key_id"])
    );
}

/// The log's verifier key (`GET /log/key`): the same whether the key is a file (embedded) or
/// shared through the database (PostgreSQL).
async fn log_verifier_key(s: &TestServer) -> String {
    s.anonymous
        .get(s.url("/log/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The current token key's id and public key, as `GET /api/v1/server-keys` lists them.
async fn current_token_key(s: &TestServer) -> Value {
    let listing: Value = s
        .http
        .get(s.url("/api/v1/server-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["token"][0]["status"], "current", "{listing:#}");
    json!([
        listing["token"][0]["key_id"],
        listing["token"][0]["public_key"]
    ])
}

#[tokio::test]
async fn the_log_key_is_never_rotated_and_the_refusal_names_the_procedure() {
    let s = TestServer::start();
    let keyadmin = user(&s, "keyadmin", &[("key-admin", "*")]).await;
    let log_key = log_verifier_key(&s).await;
    let (status, body) = rotate(&s, &keyadmin, "log", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "LOG_KEY_NOT_ROTATABLE");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("docs/operations.md"), "{message}");
    assert!(message.contains("new log"), "{message}");
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        home.path(),
        &["login", &s.base, "-u", "keyadmin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = s.cli_as(home.path(), &["keys", "rotate-server", "log"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Starting a new audit log"), "{err}");
    assert_eq!(log_verifier_key(&s).await, log_key);
    assert!(
        !s.audit_entries()
            .await
            .iter()
            .any(|e| e["type"] == "server_key.rotated")
    );
}

#[tokio::test]
async fn only_key_admins_for_everything_rotate_server_keys() {
    let s = TestServer::start();
    let token_key = current_token_key(&s).await;
    // admin holds access-admin, developer and auditor; a scoped key-admin is not enough either.
    let scoped = user(&s, "teamkeys", &[("key-admin", "dev/team/*")]).await;
    for client in [&s.http, &scoped] {
        for key in ["token", "attestation"] {
            let (status, body) = rotate(&s, client, key, json!({})).await;
            assert_eq!(status, 403, "{key}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("key-admin"),
                "{body}"
            );
        }
    }
    let (code, _, err) = s.cli(&["keys", "rotate-server", "token"]);
    assert_eq!(code, 1, "{err}");
    // Unknown keys and bodies are refused by a key-admin too.
    let keyadmin = user(&s, "keyadmin", &[("key-admin", "*")]).await;
    let (status, body) = rotate(&s, &keyadmin, "tls", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`token` or `attestation`")
    );
    let (status, body) = rotate(&s, &keyadmin, "token", json!({"overlap": "1h"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(current_token_key(&s).await, token_key);
}
