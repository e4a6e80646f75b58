//! The data directory under attack and accident: a database removed, replaced or corrupted, a
//! blob store that stops taking writes, a blob directory removed or replaced, and who may read the
//! files.

use crate::common;

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
    (status, response.json().await.unwrap_or(Value::Null))
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

#[tokio::test]
async fn removing_the_database_while_running_fails_readiness_and_refuses_writes() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    let (status, body) = readyz(&s).await;
    assert_eq!(status, 200, "{body}");

    remove_database(&s.data_dir);
    let body = readyz_becomes(&s, 503).await;
    assert_eq!(body["status"], "unavailable");
    // The other checks still pass and say so.
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    assert_eq!(
        body["checks"]["integrity_check"]["detail"],
        "PRAGMA quick_check at start: ok"
    );
    assert_eq!(body["checks"]["database_file"]["ok"], false, "{body}");
    assert!(
        body["checks"]["database_file"]["detail"]
            .as_str()
            .unwrap()
            .contains("was removed"),
        "{body}"
    );
    // Anyone may ask /readyz: it names the file, not where the data directory is.
    let data_dir = s.data_dir.to_str().unwrap();
    assert!(!body.to_string().contains(data_dir), "{body}");
    let refused = try_push_blob(&s, "dev/team/app", b"after the database was removed").await;
    assert_eq!(refused.status(), 503);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        error["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("restore the database from a backup"),
        "{error}"
    );
    // The JSON API refuses writes the same way.
    let (status, body) = common::post_json(
        &s.http,
        &s.url("/api/v1/users"),
        serde_json::json!({"name": "late", "password": "a-password-long-enough-0"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn replacing_the_database_while_running_fails_readiness_and_refuses_writes() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    let db = s.data_dir.join("metadata.db");
    let copy = s.data_dir.join("metadata.db.copy");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    let body = readyz_becomes(&s, 503).await;
    assert!(
        body["checks"]["database_file"]["detail"]
            .as_str()
            .unwrap()
            .contains("was replaced"),
        "{body}"
    );
    let refused = try_push_blob(&s, "dev/team/app", b"into the old file").await;
    assert_eq!(refused.status(), 503);
}

#[tokio::test]
async fn a_new_database_beside_old_keys_is_refused_unless_allowed() {
    if common::embedded_only() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut s = TestServer::start_in(&dir, &[]);
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    remove_database(&dir);
    s.stop();

    let (code, err) = serve_refused(&dir, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("is new"), "{err}");
    assert!(err.contains("log-key, token-key.pem"), "{err}");
    assert!(err.contains("--allow-new-database"), "{err}");
    // The refused start left nothing behind that would let the next start through.
    let (code, err) = serve_refused(&dir, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("--allow-new-database"), "{err}");

    let s = TestServer::start_in_with_args(&dir, &["--allow-new-database"], &[]);
    let (status, body) = readyz(&s).await;
    assert_eq!(status, 200, "{body}");
    // It is the new, empty registry the operator asked for.
    let missing = s
        .http
        .get(s.url("/v2/dev/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn assert_private_tree(path: &Path) {
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
            assert_private_tree(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn data_directory_database_and_blobs_are_private_after_a_push() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"layer one", b"layer two"])
        .await;
    let dir = &s.data_dir;
    assert_eq!(mode(dir), 0o700);
    for file in [
        "metadata.db",
        "metadata.db-wal",
        "metadata.db-shm",
        "log-key",
        "token-key.pem",
        "attestation-key.pem",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&dir.join("blobs")), 0o700);
    let blob_files = walk_files(&dir.join("blobs/blobs"));
    assert!(blob_files >= 3, "expected the pushed blobs on disk");
    assert_private_tree(&dir.join("blobs"));
}

#[cfg(unix)]
fn walk_files(path: &Path) -> usize {
    std::fs::read_dir(path)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { walk_files(&path) } else { 1 }
        })
        .sum()
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
    if common::embedded_only() {
        return;
    }
    let mut s = TestServer::start();
    for i in 0..4 {
        s.push_image(
            "dev/team/app",
            &format!("{i}"),
            &[format!("layer {i}").as_bytes()],
        )
        .await;
    }
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

#[tokio::test]
async fn readiness_fails_while_the_blob_store_cannot_take_writes() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start();
    s.push_blob("dev/team/app", b"before").await;
    assert_eq!(readyz(&s).await.0, 200);

    // Permissions do not stop root (CI runs as root): put a file where the upload staging
    // directory was, so writing an upload fails while the blob directory itself stays in place.
    let blobs = s.data_dir.join("blobs").join("uploads");
    let moved = s.data_dir.join("uploads.moved");
    std::fs::rename(&blobs, &moved).unwrap();
    std::fs::write(&blobs, b"not a directory").unwrap();
    let failed = try_push_blob(&s, "dev/team/app", b"nowhere to go").await;
    assert!(failed.status().is_server_error(), "{}", failed.status());
    let body = readyz_becomes(&s, 503).await;
    assert_eq!(
        body["checks"]["recent_write_failures"]["ok"], false,
        "{body}"
    );
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");

    // The staging directory is back: the probe passes, but the failed push keeps readiness down for a
    // while, so a disk that fills up between probes is still reported.
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&moved, &blobs).unwrap();
    let (status, body) = readyz(&s).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["blob_store"]["ok"], true, "{body}");
    assert_eq!(
        body["checks"]["recent_write_failures"]["ok"], false,
        "{body}"
    );
    assert!(
        body["checks"]["recent_write_failures"]["detail"]
            .as_str()
            .unwrap()
            .contains("blob store write"),
        "{body}"
    );
    assert!(
        !body.to_string().contains(s.data_dir.to_str().unwrap()),
        "{body}"
    );
}

#[tokio::test]
async fn removing_the_blob_directory_while_running_fails_readiness_and_refuses_pushes() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    assert_eq!(readyz(&s).await.0, 200);

    let blobs = s.data_dir.join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    let body = readyz_becomes(&s, 503).await;
    assert_eq!(body["checks"]["blob_store"]["ok"], false, "{body}");
    assert!(
        body["checks"]["blob_store"]["detail"]
            .as_str()
            .unwrap()
            .contains("blob directory was removed"),
        "{body}"
    );
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
    assert!(
        !body.to_string().contains(s.data_dir.to_str().unwrap()),
        "{body}"
    );
    // Asking again does not bring an empty directory back.
    assert_eq!(readyz(&s).await.0, 503);
    assert!(
        !blobs.exists(),
        "the readiness probe recreated the blob directory"
    );

    // A push is refused (not acknowledged into a new, empty directory), naming the recovery.
    let refused = try_push_blob(&s, "dev/team/app", b"after the blobs were removed").await;
    assert_eq!(refused.status(), 503);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        error["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("restore the blob directory from a backup"),
        "{error}"
    );
    // A chunked upload and the JSON API are refused too.
    let started = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 503);
    let (status, body) = common::post_json(
        &s.http,
        &s.url("/api/v1/users"),
        serde_json::json!({"name": "late", "password": "a-password-long-enough-0"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    assert!(
        !blobs.exists(),
        "a refused push recreated the blob directory"
    );
}

#[tokio::test]
async fn replacing_the_blob_directory_while_running_fails_readiness_and_refuses_pushes() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start();
    s.push_blob("dev/team/app", b"before").await;
    let blobs = s.data_dir.join("blobs");
    std::fs::rename(&blobs, s.data_dir.join("blobs.old")).unwrap();
    std::fs::create_dir(&blobs).unwrap();
    let body = readyz_becomes(&s, 503).await;
    assert!(
        body["checks"]["blob_store"]["detail"]
            .as_str()
            .unwrap()
            .contains("blob directory was replaced"),
        "{body}"
    );
    let refused = try_push_blob(&s, "dev/team/app", b"into the new directory").await;
    assert_eq!(refused.status(), 503);
}
