//! OIDC trust rules with `jwks_url`: the issuer's JWKS is fetched over TLS (with the rule's
//! `ca_cert`) at start, refreshed when a token names a key it lacks, and kept when a refresh
//! fails; a JWKS server whose certificate the rule does not trust refuses the start, naming
//! the rule and the certificate problem.

use crate::common;
use crate::tls_support;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestPki, TestServer, serve_refused};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tls_support::HttpsResponder;

const ISSUER: &str = "https://ci.example";
const AUDIENCE: &str = "airlock-test";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(seed: &str) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&Sha256::digest(seed.as_bytes())).unwrap()
}

fn jwk(key: &p256::ecdsa::SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
           "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

fn id_token(key: &p256::ecdsa::SigningKey, kid: &str) -> String {
    use p256::ecdsa::signature::Signer as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "repo:team/app:ref:refs/heads/main",
        "repository": "team/app", "ref": "refs/heads/main",
        "iat": now - 5, "nbf": now - 5, "exp": now + 300,
    });
    let header = b64(json!({"alg": "ES256", "typ": "JWT", "kid": kid})
        .to_string()
        .as_bytes());
    let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

/// What the JWKS server answers: a status and a document, changeable during the test.
type Served = Arc<Mutex<(u16, Value)>>;

fn jwks_server(pki: &TestPki, served: Served) -> HttpsResponder {
    HttpsResponder::start(pki, move |request| {
        assert_eq!(request.path, "/.well-known/jwks");
        let (status, body) = served.lock().unwrap().clone();
        (status, "application/json", body.to_string().into_bytes())
    })
}

/// A configuration file with one rule fetching `jwks_url`, trusting the CA in `ca_file`.
fn config(dir: &std::path::Path, jwks_url: &str, ca_file: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("airlock.toml");
    std::fs::write(
        &file,
        format!(
            "[[access.oidc]]\nname = \"ci-main\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             jwks_url = \"{jwks_url}\"\nca_cert = {:?}\n\
             claims = {{ repository = \"team/app\" }}\nrepositories = [\"dev/team/*\"]\n",
            ca_file.to_str().unwrap()
        ),
    )
    .unwrap();
    file
}

async fn exchange(s: &TestServer, id_token: &str) -> (u16, Value) {
    let response = s
        .anonymous
        .post(s.url("/auth/oidc"))
        .json(&json!({"id_token": id_token, "scope": ["repository:dev/team/app:push"]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_oidc_exchange_verifies_against_a_jwks_fetched_over_https_and_follows_rotation() {
    let ca = TestPki::new();
    let (first, second) = (key("first key"), key("second key"));
    let served: Served = Arc::new(Mutex::new((200, json!({"keys": [jwk(&first, "k1")]}))));
    let jwks = jwks_server(&ca, served.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = config(
        dir.path(),
        &format!("{}/.well-known/jwks", jwks.url),
        &ca.ca_cert,
    );
    let s = TestServer::start_with_env(&[("AIRLOCK_CONFIG", file.to_str().unwrap())]);
    assert_eq!(jwks.received().len(), 1, "fetched once at start");

    let (status, body) = exchange(&s, &id_token(&first, "k1")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string(), "{body}");

    // The issuer rotates: a token under the new key makes airlock fetch the JWKS again.
    *served.lock().unwrap() = (
        200,
        json!({"keys": [jwk(&first, "k1"), jwk(&second, "k2")]}),
    );
    let (status, body) = exchange(&s, &id_token(&second, "k2")).await;
    assert_eq!(status, 200, "a rotated key is picked up: {body}");
    assert_eq!(jwks.received().len(), 2);

    // A token signed by the right key id but another key is still refused.
    let (status, _) = exchange(&s, &id_token(&key("forged"), "k2")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_failed_jwks_refresh_keeps_the_last_good_keys_and_unknown_key_refreshes_are_rate_limited()
{
    let ca = TestPki::new();
    let first = key("first key");
    let served: Served = Arc::new(Mutex::new((200, json!({"keys": [jwk(&first, "k1")]}))));
    let jwks = jwks_server(&ca, served.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = config(
        dir.path(),
        &format!("{}/.well-known/jwks", jwks.url),
        &ca.ca_cert,
    );
    let s = TestServer::start_with_env(&[("AIRLOCK_CONFIG", file.to_str().unwrap())]);

    // The issuer breaks; a token with an unknown key id makes airlock try a refresh, which fails.
    *served.lock().unwrap() = (500, json!({"error": "down"}));
    let (status, _) = exchange(&s, &id_token(&key("other"), "k9")).await;
    assert_eq!(status, 401);
    assert_eq!(jwks.received().len(), 2, "one refresh was tried");
    // The last good JWKS still verifies.
    let (status, body) = exchange(&s, &id_token(&first, "k1")).await;
    assert_eq!(status, 200, "{body}");
    // Another unknown key id within the rate limit does not fetch again.
    let (status, _) = exchange(&s, &id_token(&key("other"), "k8")).await;
    assert_eq!(status, 401);
    assert_eq!(jwks.received().len(), 2, "rate-limited");
}

#[test]
fn a_jwks_url_whose_certificate_the_rule_does_not_trust_refuses_the_start() {
    let real = TestPki::new();
    let other = TestPki::new();
    let served: Served = Arc::new(Mutex::new((200, json!({"keys": [jwk(&key("k"), "k1")]}))));
    let jwks = jwks_server(&real, served);
    let dir = tempfile::tempdir().unwrap();
    let file = config(
        dir.path(),
        &format!("{}/.well-known/jwks", jwks.url),
        &other.ca_cert,
    );
    let data = dir.path().join("data");
    let (code, stderr) = serve_refused(&data, &["--config", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("oidc rule ci-main")
            && stderr.contains("certificate is not trusted")
            && stderr.contains("ca_cert"),
        "{stderr}"
    );
    assert!(jwks.received().is_empty());
}

#[test]
fn an_oidc_rule_with_both_or_neither_jwks_source_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("airlock.toml");
    std::fs::write(
        &file,
        format!(
            "[[access.oidc]]\nname = \"ci-main\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             repositories = [\"dev/team/*\"]\n"
        ),
    )
    .unwrap();
    let (code, stderr) = serve_refused(
        &dir.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("access.oidc rule ci-main") && stderr.contains("jwks_url"),
        "{stderr}"
    );
}
