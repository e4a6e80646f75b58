//! airlock's keys shared through PostgreSQL are authenticated row by row: a token key row added
//! by someone who can write the database but has no key-encryption key is refused. A token
//! signed with the forged key is rejected, the server says which row it refused, and the keys it
//! already holds keep working.
//!
//! Runs under `AIRLOCK_TEST_BACKEND=distributed` only (PostgreSQL and S3 test services).

use crate::common;

use std::time::{Duration, Instant};

use airlock_identity::{AccessClaims, TokenKey};
use base64::Engine as _;
use common::{ServerLog, TestServer};
use serde_json::Value;

/// An access token for admin from `s`.
async fn token(s: &TestServer) -> String {
    let body: Value = s
        .http
        .get(s.url("/auth/token?client_id=tampering-test"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// The claims of a JWT (read, not verified).
fn claims(token: &str) -> AccessClaims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
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

/// Waits up to 10 s for a log line containing every one of `parts`.
async fn logged(log: &ServerLog, parts: &[&str]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if log.contains(parts[0]) && parts.iter().all(|p| log.contains(p)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A second token key row forged by raw SQL (a retired key whose acceptance window is open,
/// with and without a MAC copied from a genuine row): the token it signs is rejected, the server
/// logs the refused row by purpose and id, and genuine tokens still pass.
#[tokio::test]
async fn a_token_key_row_forged_in_the_database_is_refused() {
    if !common::distributed() {
        eprintln!("NOTICE: shared server keys need AIRLOCK_TEST_BACKEND=distributed; skipped");
        return;
    }
    let (s, log) = TestServer::start_with_log(&[]);
    let genuine = token(&s).await;
    assert_eq!(whoami(&s, &genuine).await, 200);

    let forged = TokenKey::generate();
    let kid = forged.kid().to_string();
    let public = forged.public_key().to_public_pem().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let inserted = common::execute_on_database(
        &s.data_dir,
        "INSERT INTO server_keys (purpose, key_id, public_key, created_at, retired_at,
                                  accepted_until)
         VALUES ('token', $1, $2, CAST($3 AS BIGINT), CAST($3 AS BIGINT),
                 CAST($3 AS BIGINT) + 3600000)",
        &[&kid, &public, &now_ms.to_string()],
    )
    .await;
    assert_eq!(inserted, 1);
    let mut claims = claims(&genuine);
    claims.jti = format!("{}-forged", claims.jti);
    let forged_token = forged.issue(&claims).unwrap();

    // The unknown kid makes the server reload the keys, which refuses the forged row.
    assert_eq!(whoami(&s, &forged_token).await, 401);
    assert!(
        logged(&log, &[&format!("token key {kid} is refused"), "no MAC"]).await,
        "the server did not log the refused row"
    );

    // A genuine row's MAC copied onto the forged row, and the version moved so every replica
    // reloads: still refused, by the poll as well.
    common::execute_on_database(
        &s.data_dir,
        "UPDATE server_keys SET mac = (SELECT mac FROM server_keys
                                       WHERE purpose = 'token' AND retired_at IS NULL)
         WHERE key_id = $1",
        &[&kid],
    )
    .await;
    common::execute_on_database(
        &s.data_dir,
        "UPDATE server_keys_version SET version = version + 1 WHERE id = 1",
        &[],
    )
    .await;
    assert!(
        logged(
            &log,
            &[&format!("token key {kid} is refused"), "MAC does not match"]
        )
        .await,
        "the poll did not log the refused row"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(whoami(&s, &forged_token).await, 401);
    assert_eq!(whoami(&s, &genuine).await, 200);
}

/// Clearing every row's MAC, with a forged row among them, does not pass for an upgrade from a
/// release without MACs: the blob store's log identity marker says this installation started
/// on a release with them, so the next start authenticates nothing and refuses the rows. Only
/// without the marker (the first start of that release) are MAC-less rows trusted as found.
#[tokio::test]
async fn clearing_every_mac_does_not_authenticate_a_forged_row_at_the_next_start() {
    if !common::distributed() {
        eprintln!("NOTICE: shared server keys need AIRLOCK_TEST_BACKEND=distributed; skipped");
        return;
    }
    let mut s = TestServer::start();
    let genuine = token(&s).await;
    assert_eq!(whoami(&s, &genuine).await, 200);
    s.stop();
    let forged = TokenKey::generate();
    let kid = forged.kid().to_string();
    let public = forged.public_key().to_public_pem().unwrap();
    common::execute_on_database(
        &s.data_dir,
        "INSERT INTO server_keys (purpose, key_id, public_key, created_at, retired_at,
                                  accepted_until)
         VALUES ('token', $1, $2, 1, 1, 9000000000000)",
        &[&kid, &public],
    )
    .await;
    common::execute_on_database(&s.data_dir, "UPDATE server_keys SET mac = NULL", &[]).await;
    let (code, err) = common::serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("is refused"), "{err}");

    // The same rows without the forged one and without the marker: the first start of a
    // release with MACs over an older one's rows, which it authenticates.
    common::execute_on_database(
        &s.data_dir,
        "DELETE FROM server_keys WHERE key_id = $1",
        &[&kid],
    )
    .await;
    common::blob_store_of(&s)
        .await
        .delete_path_for_tests(airlock_store::LOG_IDENTITY_PATH)
        .await
        .unwrap();
    let s = TestServer::start_in(&s.data_dir.clone(), &[]);
    assert_eq!(whoami(&s, &genuine).await, 200);
}
