//! The data directory under attack and accident: a database removed, replaced or corrupted, a
//! blob store that stops taking writes, and who may read the files.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestServer, serve_refused, sha256};
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// `GET /readyz`: (status, body).
async fn readyz(s: &TestServer) -> (u16, Value) {
    let response = s.anonymous.get(s.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/readyz` until it answers `status` (at most 10 s); returns the body.
async fn readyz_becomes(s: &TestServer, status: u16) -> Value {
    for _ in 0..100 {
        let (now, body) = readyz(s).await;
        if now == status {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "/readyz did not answer {status} within 10 s: {:?}",
        readyz(s).await
    );
}

/// Starts a monolithic blob upload; returns the response.
async fn try_push_blob(s: &TestServer, repo: &str, content: &[u8]) -> reqwest::Response {
    s.http
        .post(s.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(content)
        )))
        .body(content.to_vec())
        .send()
        .await
        .unwrap()
}

fn remove_database(dir: &Path) {
    for name in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("remove {name}: {err}"),
        }
    }
}

/// Overwrites the b-tree page header of the `audit_entries` table's root page, a page in the
/// middle of the file (neither the schema page nor the last one).
async fn corrupt_a_table_page(dir: &Path) {
    let file = dir.join("metadata.db");
    let mut db = SqliteConnectOptions::new()
        .filename(&file)
        .connect()
        .await
        .unwrap();
    // Everything into the main file, so the page read below is the one SQLite uses.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await
        .unwrap();
    let (page_size,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let (page_count,): (i64,) = sqlx::query_as("PRAGMA page_count")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let (root,): (i64,) =
        sqlx::query_as("SELECT rootpage FROM sqlite_master WHERE name = 'audit_entries'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    db.close().await.unwrap();
    assert!(
        1 < root && root < page_count,
        "root page {root} of {page_count}"
    );
    let mut bytes = std::fs::read(&file).unwrap();
    let offset = ((root - 1) * page_size) as usize;
    // Page type, first freeblock, cell count, content start: all nonsense.
    bytes[offset..offset + 8].copy_from_slice(&[0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x42]);
    std::fs::write(&file, bytes).unwrap();
}

#[tokio::test]
async fn a_database_corrupted_in_the_middle_is_refused_at_start_with_the_recovery_step() {
    let mut s = TestServer::start();
    for i in 0..4 {
        s.push_image(
            "dev/team/app",
            &format!("{i}"),
            &[format!("layer {i}").as_bytes()],
        )
        .await;
    }
    s.wait_for_checkpoint().await;
    s.stop();
    corrupt_a_table_page(&s.data_dir).await;

    let (code, err) = serve_refused(&s.data_dir, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("failed SQLite's integrity check (PRAGMA quick_check)"),
        "{err}"
    );
    assert!(err.contains("Restore it from your newest backup"), "{err}");
    assert!(err.contains(".recover"), "{err}");
}
