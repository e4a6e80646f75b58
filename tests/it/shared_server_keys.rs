//! airlock's own keys shared by replicas through PostgreSQL: two `airlock serve` processes over
//! one database (separate data directories, the second without any key file) accept each
//! other's tokens and sign checkpoints and attestations that verify with the same public keys;
//! a token-key rotation on one is honoured by the other within seconds; a wrong or missing
//! key-encryption key refuses the start, naming the fix; an embedded installation's key files are
//! imported on the first PostgreSQL start (the log keeps its public key).
//!
//! Runs under `AIRLOCK_TEST_BACKEND=distributed` only (PostgreSQL and S3 test services).

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{OCI_MANIFEST, TestServer, post_json as post};
use serde_json::{Value, json};

/// Key files the embedded default writes into the data directory.
const KEY_FILES: [&str; 5] = [
    "log-key",
    "token-key.pem",
    "attestation-key.pem",
    "token-keys.json",
    "attestation-keys.json",
];

fn distributed_only() -> bool {
    if !common::distributed() {
        eprintln!("NOTICE: shared server keys need AIRLOCK_TEST_BACKEND=distributed; skipped");
        return true;
    }
    false
}

/// The environment that puts a server on the database, bucket and KEK of the server over
/// `first`.
fn shared_with(first: &Path) -> Vec<(String, String)> {
    let mut env = common::backend_env(first);
    env.extend(common::distributed_blob_env(first));
    env
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
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

/// An access token for admin from `s`.
async fn token(s: &TestServer) -> String {
    let body: Value = s
        .http
        .get(s.url("/auth/token?client_id=shared-keys-test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// The status of `GET /api/v1/whoami` on `s` with bearer `token`.
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

async fn text(s: &TestServer, path: &str) -> String {
    let response = s.anonymous.get(s.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

/// The log's verifier key as `s` serves it.
async fn log_key(s: &TestServer) -> String {
    text(s, "/log/key").await.trim().to_string()
}

/// The newest checkpoint `s` serves, verified with `verifier_key`: (origin, size).
async fn verified_checkpoint(s: &TestServer, verifier_key: &str) -> (String, u64) {
    let note = text(s, "/log/checkpoint").await;
    let verified = airlock_audit::verify_checkpoint(&note, verifier_key)
        .unwrap_or_else(|e| panic!("checkpoint of {} does not verify: {e}\n{note}", s.base));
    (verified.origin, verified.size)
}

/// The attestation public key (PEM) `s` serves.
async fn attestation_pem(s: &TestServer) -> String {
    text(s, "/api/v1/attestation-key").await
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

/// Promotes `digest` from dev/team/app to staging on `s` as `promoter`; returns the
/// attestation's DSSE envelope.
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

fn key_files_in(dir: &Path) -> Vec<&'static str> {
    KEY_FILES
        .into_iter()
        .filter(|name| dir.join(name).exists())
        .collect()
}

/// Waits until the newest checkpoint of `s` covers at least `size` entries.
async fn checkpoint_reaching(s: &TestServer, verifier_key: &str, size: u64) -> (String, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = verified_checkpoint(s, verifier_key).await;
        if seen.1 >= size || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two replicas on one database: the second, started without key files, uses the first's keys
/// for tokens, checkpoints and attestations, writes no key file, and follows a token-key
/// rotation made on the first.
#[tokio::test]
async fn two_replicas_share_their_keys_and_follow_a_rotation() {
    if distributed_only() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let bundle = common::permissive_bundle(&temp.path().join("bundle"));
    let bundle_env = ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap());
    let first_dir = temp.path().join("first");
    let second_dir = temp.path().join("second");
    let a = TestServer::start_in(&first_dir, &[bundle_env]);
    let mut env = shared_with(&first_dir);
    env.push(("AIRLOCK_POLICY__BUNDLE".into(), bundle_env.1.into()));
    let b = TestServer::start_in(&second_dir, &as_refs(&env));

    // Neither writes key files: the keys are in the database.
    assert!(
        key_files_in(&first_dir).is_empty(),
        "{:?}",
        key_files_in(&first_dir)
    );
    assert!(
        key_files_in(&second_dir).is_empty(),
        "{:?}",
        key_files_in(&second_dir)
    );

    let verifier = tokens_and_checkpoints_are_shared(&a, &b).await;
    attestations_verify_with_the_shared_key(&a, &b).await;
    a_rotation_on_one_replica_reaches_the_other(&a, &b).await;
    // The log key never changed.
    assert_eq!(log_key(&b).await, verifier);
    drop(b);
    drop(a);
    common::drop_backend_database(&second_dir);
    common::drop_backend_database(&first_dir);
}

/// Tokens from either replica work on the other; both serve the same log key and sign
/// checkpoints of one log under one origin. Returns the log's verifier key.
async fn tokens_and_checkpoints_are_shared(a: &TestServer, b: &TestServer) -> String {
    let from_a = token(a).await;
    let from_b = token(b).await;
    assert_eq!(
        kid(&from_a),
        kid(&from_b),
        "both sign with the one token key"
    );
    assert_eq!(whoami(b, &from_a).await, 200);
    assert_eq!(whoami(a, &from_b).await, 200);

    let verifier = log_key(a).await;
    assert_eq!(log_key(b).await, verifier);
    a.push_image("dev/team/app", "a", &[b"from a"]).await;
    b.push_image("dev/team/app", "b", &[b"from b"]).await;
    let entries = a.audit_entries().await.len() as u64;
    let (origin_a, size_a) = checkpoint_reaching(a, &verifier, entries).await;
    let (origin_b, size_b) = checkpoint_reaching(b, &verifier, entries).await;
    assert_eq!(origin_a, origin_b, "one origin on every replica");
    assert!(
        size_a >= entries && size_b >= entries,
        "{size_a} {size_b} {entries}"
    );
    verifier
}

/// A promotion on either replica is attested by the one attestation key both publish.
async fn attestations_verify_with_the_shared_key(a: &TestServer, b: &TestServer) {
    let pem = attestation_pem(a).await;
    assert_eq!(attestation_pem(b).await, pem);
    let (_, first) = a.push_image("dev/team/app", "1.0", &[b"first"]).await;
    let (_, second) = a.push_image("dev/team/app", "2.0", &[b"second"]).await;
    let promoter = common::add_user(
        a,
        "rita",
        "shared-keys-password-1",
        &[("promoter", "staging")],
    )
    .await;
    assert!(signed_by(&promote(a, &promoter, &first).await, &pem));
    assert!(signed_by(&promote(b, &promoter, &second).await, &pem));
}

/// A token-key rotation on `a`: a token signed by the new key is accepted by `b` at once (an
/// unknown `kid` makes it reload), and within a few seconds `b` signs with the new key itself.
async fn a_rotation_on_one_replica_reaches_the_other(a: &TestServer, b: &TestServer) {
    let keyadmin = common::add_user(
        a,
        "keyadmin",
        "shared-keys-password-1",
        &[("key-admin", "*")],
    )
    .await;
    let old = token(b).await;
    let (status, rotated) = post(
        &keyadmin,
        &a.url("/api/v1/server-keys/token/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_kid = rotated["new_key_id"].as_str().unwrap().to_string();
    assert_eq!(rotated["old_key_id"], kid(&old).as_str());

    // `b` signs with the new key after its poll (at most a couple of seconds).
    let deadline = Instant::now() + Duration::from_secs(8);
    let signed = loop {
        let fresh = token(b).await;
        if kid(&fresh) == new_kid || Instant::now() > deadline {
            break fresh;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        kid(&signed),
        new_kid,
        "replica b still signs with the old key"
    );
    assert_eq!(whoami(a, &signed).await, 200);
    // The old key's tokens stay valid through the overlap, on both.
    assert_eq!(whoami(a, &old).await, 200);
    assert_eq!(whoami(b, &old).await, 200);

    // Rotated again on `a`: `b` accepts the newest key's token at once, before any poll.
    let (status, again) = post(
        &keyadmin,
        &a.url("/api/v1/server-keys/token/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    let newest = token(a).await;
    assert_eq!(kid(&newest), again["new_key_id"].as_str().unwrap());
    assert_eq!(whoami(b, &newest).await, 200);
    let listing: Value = b
        .http
        .get(b.url("/api/v1/server-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listing["token"][0]["key_id"], again["new_key_id"],
        "{listing:#}"
    );
    assert_eq!(listing["token"].as_array().unwrap().len(), 3, "{listing:#}");
    let rotations = a
        .audit_entries()
        .await
        .iter()
        .filter(|e| e["type"] == "server_key.rotated")
        .count();
    assert_eq!(rotations, 2);
}

/// Runs `airlock serve` over `data_dir` with `env` and expects it to refuse to start: returns
/// its stderr.
fn refused_start(data_dir: &Path, env: &[(String, String)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("AIRLOCK_KEY_ENCRYPTION_KEY_FILE")
        .envs(env.iter().cloned())
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("airlock serve started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A replica with another KEK, or none, does not start; the refusal names the fix and shows no
/// key material.
#[tokio::test]
async fn a_wrong_or_missing_key_encryption_key_refuses_the_start() {
    if distributed_only() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let first_dir = temp.path().join("first");
    let a = TestServer::start_in(&first_dir, &[]);
    let shared = shared_with(&first_dir);

    let other_kek = temp.path().join("other.kek");
    let other_text = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    std::fs::write(&other_kek, format!("{other_text}\n")).unwrap();
    let mut wrong = shared.clone();
    wrong.retain(|(k, _)| k != "AIRLOCK_KEY_ENCRYPTION_KEY_FILE");
    wrong.push((
        "AIRLOCK_KEY_ENCRYPTION_KEY_FILE".into(),
        other_kek.display().to_string(),
    ));
    let stderr = refused_start(&temp.path().join("wrong"), &wrong);
    assert!(
        stderr.contains("cannot be opened with this key-encryption key"),
        "{stderr}"
    );
    assert!(stderr.contains("key_encryption_key_file"), "{stderr}");
    let real = std::fs::read_to_string(common::test_kek_file(&first_dir)).unwrap();
    for secret in [other_text.as_str(), real.trim()] {
        assert!(!stderr.contains(secret), "key material in: {stderr}");
    }

    let mut missing = shared.clone();
    missing.retain(|(k, _)| k != "AIRLOCK_KEY_ENCRYPTION_KEY_FILE");
    let stderr = refused_start(&temp.path().join("missing"), &missing);
    assert!(
        stderr.contains("head -c 32 /dev/urandom | base64"),
        "{stderr}"
    );

    let short = temp.path().join("short.kek");
    std::fs::write(
        &short,
        base64::engine::general_purpose::STANDARD.encode([1u8; 16]),
    )
    .unwrap();
    let mut malformed = missing.clone();
    malformed.push((
        "AIRLOCK_KEY_ENCRYPTION_KEY_FILE".into(),
        short.display().to_string(),
    ));
    let stderr = refused_start(&temp.path().join("short"), &malformed);
    assert!(stderr.contains("holds 16 bytes, not 32"), "{stderr}");

    // The replica with the right KEK still works.
    assert_eq!(whoami(&a, &token(&a).await).await, 200);
    drop(a);
    common::drop_backend_database(&first_dir);
}

/// An embedded installation's key files are imported on its first start on PostgreSQL: the
/// log's public key, the attestation key and the token key with its history stay what they were
/// (tokens the embedded server issued, before and after a rotation, still work), the import is
/// audited, and a second replica without the files uses the imported keys.
#[tokio::test]
async fn key_files_are_imported_on_the_first_postgres_start() {
    if distributed_only() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut embedded = TestServer::start_embedded_in(&dir, &[]);
    let verifier = log_key(&embedded).await;
    let pem = attestation_pem(&embedded).await;
    let old_token = token(&embedded).await;
    // A rotated token key: its history file comes along, and the replaced key's tokens stay
    // valid through the overlap after the move.
    let keyadmin = common::add_user(
        &embedded,
        "keyadmin",
        "shared-keys-password-1",
        &[("key-admin", "*")],
    )
    .await;
    let (status, rotated) = post(
        &keyadmin,
        &embedded.url("/api/v1/server-keys/token/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_token = token(&embedded).await;
    embedded.stop();
    drop(embedded);
    assert_eq!(
        key_files_in(&dir),
        [
            "log-key",
            "token-key.pem",
            "attestation-key.pem",
            "token-keys.json"
        ]
    );

    // The PostgreSQL database is new while the directory holds keys: started on purpose.
    let on_postgres = TestServer::start_in_with_args(&dir, &["--allow-new-database"], &[]);
    assert_eq!(log_key(&on_postgres).await, verifier);
    assert_eq!(attestation_pem(&on_postgres).await, pem);
    assert_eq!(kid(&token(&on_postgres).await), kid(&new_token));
    assert_eq!(whoami(&on_postgres, &new_token).await, 200);
    assert_eq!(whoami(&on_postgres, &old_token).await, 200);
    let listing: Value = on_postgres
        .http
        .get(on_postgres.url("/api/v1/server-keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listing["token"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kid(&new_token), kid(&old_token)], "{listing:#}");
    assert!(
        listing["token"][1]["accepted_until"].is_string(),
        "{listing:#}"
    );
    let imported: Vec<String> = on_postgres
        .audit_entries()
        .await
        .iter()
        .filter(|e| e["type"] == "server_key.imported")
        .map(|e| {
            e["subject"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        imported,
        ["log", "token", "attestation"],
        "imported entries"
    );

    let second_dir = temp.path().join("second");
    let second = TestServer::start_in(&second_dir, &as_refs(&shared_with(&dir)));
    assert_eq!(log_key(&second).await, verifier);
    assert_eq!(whoami(&second, &old_token).await, 200);
    let (_, size) = checkpoint_reaching(&second, &verifier, 1).await;
    assert!(size >= 1);
    drop(second);
    drop(on_postgres);
    common::drop_backend_database(&second_dir);
    common::drop_backend_database(&dir);
}
