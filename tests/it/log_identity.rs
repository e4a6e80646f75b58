//! The audit log's identity recorded in the blob store (`airlock/log-identity.json`) on a shared
//! database: a replica started on a lost (dropped and recreated) database, or on another
//! installation's database, over a blob store that already belongs to a log refuses to start
//! instead of beginning a new log, on S3 and on a local blob directory; a missing marker is
//! written again from the database's log key.
//!
//! Runs under `AIRLOCK_TEST_BACKEND=distributed` only (PostgreSQL and S3 test services).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;

fn distributed_only() -> bool {
    if !common::distributed() {
        eprintln!(
            "NOTICE: the log identity marker needs AIRLOCK_TEST_BACKEND=distributed; skipped"
        );
        return true;
    }
    false
}

fn serve(data_dir: &Path, env: &[(String, String)], stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("AIRLOCK_KEY_ENCRYPTION_KEY_FILE")
        .env_remove("AIRLOCK_BLOB_STORE")
        .envs(env.iter().cloned())
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Runs `airlock serve` over `data_dir` with `env` and expects it to refuse to start: returns
/// its stderr.
fn refused_start(data_dir: &Path, env: &[(String, String)]) -> String {
    let mut child = serve(data_dir, env, Stdio::piped());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("airlock serve started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The database and the S3 bucket of the server over `dir`.
fn database_and_bucket_of(dir: &Path) -> Vec<(String, String)> {
    let mut env = common::backend_env(dir);
    env.extend(common::distributed_blob_env(dir));
    env
}

/// A replica on a dropped and recreated database over the same bucket is refused, naming the
/// marker, the log and the fixes; so is one on another installation's database over that bucket.
#[tokio::test]
async fn a_lost_or_another_database_over_an_s3_bucket_refuses_the_start() {
    if distributed_only() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let first = temp.path().join("first");
    let second = temp.path().join("second");
    let mut a = TestServer::start_in(&first, &[]);
    let verifier = a
        .anonymous
        .get(a.url("/log/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let origin = verifier.trim().split('+').next().unwrap().to_string();
    a.stop();

    // The database is lost: dropped and created again, empty.
    common::drop_backend_database(&first);
    let stderr = refused_start(&first, &database_and_bucket_of(&first));
    assert!(
        stderr.contains("the database holds no audit log key"),
        "{stderr}"
    );
    assert!(stderr.contains("airlock/log-identity.json"), "{stderr}");
    assert!(stderr.contains(&origin), "{stderr}");
    assert!(stderr.contains("Restore the database"), "{stderr}");

    // Another installation's database over the first one's bucket.
    let mut b = TestServer::start_in(&second, &[]);
    b.stop();
    let mut mixed = common::backend_env(&second);
    mixed.extend(common::distributed_blob_env(&first));
    let stderr = refused_start(&second, &mixed);
    assert!(
        stderr.contains("belong to different installations"),
        "{stderr}"
    );
    assert!(stderr.contains(&origin), "{stderr}");

    common::drop_backend_database(&first);
    common::drop_backend_database(&second);
}

fn marker_file(dir: &Path) -> PathBuf {
    dir.join("blobs/airlock/log-identity.json")
}

/// Starts a server over `dir` (its PostgreSQL database, blobs in the data directory) until the
/// marker is written; returns the marker.
fn run_until_marked(dir: &Path) -> Value {
    let mut child = serve(dir, &common::backend_env(dir), Stdio::inherit());
    let deadline = Instant::now() + Duration::from_secs(60);
    let marker = loop {
        if let Ok(bytes) = std::fs::read(marker_file(dir))
            && let Ok(marker) = serde_json::from_slice::<Value>(&bytes)
        {
            break marker;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not write {}", marker_file(dir).display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    marker
}

/// The same over a local blob directory: the marker is written at the first start, written
/// again (the same) when it is missing while the database holds the keys, and a dropped and
/// recreated database is refused.
#[tokio::test]
async fn a_lost_database_over_a_local_blob_directory_refuses_the_start() {
    if distributed_only() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("local");
    let marker = run_until_marked(&dir);
    let public_key = marker["public_key"].as_str().unwrap().to_string();
    assert!(public_key.starts_with(marker["origin"].as_str().unwrap()));

    std::fs::remove_file(marker_file(&dir)).unwrap();
    let again = run_until_marked(&dir);
    assert_eq!(
        again, marker,
        "the marker is written again from the stored key"
    );

    common::drop_backend_database(&dir);
    let stderr = refused_start(&dir, &common::backend_env(&dir));
    assert!(
        stderr.contains("the database holds no audit log key"),
        "{stderr}"
    );
    assert!(stderr.contains(&public_key), "{stderr}");
    common::drop_backend_database(&dir);
}
