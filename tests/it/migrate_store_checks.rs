//! `airlock migrate-store`'s checks: a copy whose audit log does not verify is rolled back inside
//! its transaction (the target stays empty, and the move succeeds once the cause is fixed), and
//! an object already in the bucket under a blob's name with the right size but other bytes is
//! replaced, the output naming it.
//!
//! Needs `AIRLOCK_TEST_POSTGRES_URL` (`scripts/test-services`) and `AIRLOCK_TEST_S3_ENDPOINT`
//! (`scripts/test-s3`); without them it prints a NOTICE and passes. The source is embedded
//! whatever `AIRLOCK_TEST_BACKEND` says.

use crate::common;

use std::path::Path;
use std::process::Command;

use airlock_core::Digest;
use airlock_store::test_support::TestS3;
use common::{TestServer, sha256};
use sqlx::Connection as _;

/// The services the move needs, or `None` (with a NOTICE) when they are not running.
fn services() -> Option<(String, TestS3)> {
    let postgres = std::env::var("AIRLOCK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    match (postgres, TestS3::from_env()) {
        (Some(url), Ok(s3)) => Some((url, s3)),
        _ => {
            eprintln!(
                "NOTICE: skipping migrate-store check tests (needs AIRLOCK_TEST_POSTGRES_URL and AIRLOCK_TEST_S3_ENDPOINT)"
            );
            None
        }
    }
}

/// A new empty database on the test server; returns its URL.
fn create_database(admin: &str) -> String {
    let name = format!(
        "airlock_mc_{}",
        &sha256(format!("{:?}", std::time::SystemTime::now()).as_bytes())[7..23]
    );
    let status = Command::new("psql")
        .args(["-q", admin, "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql");
    assert!(status.success());
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..end]),
        None => format!("{}/{name}", &base[..end]),
    }
}

/// Runs `airlock migrate-store` on `data_dir` into `url` and `s3://bucket/moved`.
fn migrate(data_dir: &Path, url: &str, bucket: &str, s3: &TestS3) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["migrate-store", "--data-dir"])
        .arg(data_dir)
        .args(["--to", url, "--blobs", &format!("s3://{bucket}/moved")])
        .env_remove("AIRLOCK_DATABASE_URL")
        .env_remove("AIRLOCK_BLOB_STORE")
        .env("AIRLOCK_S3__ENDPOINT", &s3.endpoint)
        .env("AIRLOCK_S3__PATH_STYLE", "true")
        .env("AIRLOCK_S3__ALLOW_HTTP", "true")
        .output()
        .expect("run airlock");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An embedded installation in `data_dir` with one image pushed and its log checkpointed,
/// stopped.
async fn installation(data_dir: &Path, layer: &[u8]) {
    let mut s = TestServer::start_embedded_in(data_dir, &[]);
    s.push_image("dev/team/app", "v1", &[layer]).await;
    s.wait_for_checkpoint().await;
    s.stop();
}

/// The moved bucket (`s3://bucket/moved`).
async fn moved_bucket(bucket: &str, s3: &TestS3) -> airlock_store::BlobStore {
    let location: airlock_store::S3Location = format!("s3://{bucket}/moved").parse().unwrap();
    airlock_store::BlobStore::s3(&location, &s3.options(None), std::env::vars())
        .await
        .unwrap()
}

/// Sets audit entry `idx`'s bytes in the embedded database of `data_dir`; returns the old ones.
async fn set_audit_entry(data_dir: &Path, idx: i64, entry: &[u8]) -> Vec<u8> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", data_dir.join("metadata.db").display());
    let mut connection = sqlx::AnyConnection::connect(&url).await.unwrap();
    let old: Vec<u8> = sqlx::query_scalar("SELECT entry FROM audit_entries WHERE idx = $1")
        .bind(idx)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_entries SET entry = $1 WHERE idx = $2")
        .bind(entry.to_vec())
        .bind(idx)
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    old
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_audit_log_fails_its_check_is_rolled_back_and_the_target_stays_empty() {
    let Some((admin, s3)) = services() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    installation(&data_dir, b"a layer to move").await;
    let url = create_database(&admin);
    let bucket = TestS3::fresh_bucket_name();
    common::create_test_bucket(&s3, &bucket);

    let original = set_audit_entry(&data_dir, 1, b"{\"rewritten\":true}").await;
    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("check of the copy failed"), "{err}");
    assert!(err.contains("audit log"), "{err}");
    assert!(err.contains("still empty"), "{err}");
    let target = airlock_store::Metadata::open_postgres(&url).await.unwrap();
    assert_eq!(target.audit_entry_count().await.unwrap(), 0);
    target.refuse_if_holding_data().await.unwrap();
    target.close().await;

    set_audit_entry(&data_dir, 1, &original).await;
    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified against the checkpoint"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_in_the_bucket_with_the_right_size_but_other_bytes_is_replaced() {
    let Some((admin, s3)) = services() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let layer = b"a layer to move";
    installation(&data_dir, layer).await;
    let url = create_database(&admin);
    let bucket = TestS3::fresh_bucket_name();
    common::create_test_bucket(&s3, &bucket);
    let digest: Digest = sha256(layer).parse().unwrap();
    let store = moved_bucket(&bucket, &s3).await;
    // Same size, other bytes: a size check alone would keep it.
    store
        .put_small(&digest, bytes::Bytes::from_static(b"a layer to mova"))
        .await
        .unwrap();

    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 replaced"), "{out}");
    assert!(out.contains(&format!("replaced {digest}")), "{out}");
    assert_eq!(
        store.hash_blob(&digest).await.unwrap(),
        Some((layer.len() as u64, digest.clone()))
    );
}
