//! `airlock backup --verify --pg-dump` end to end: a server on PostgreSQL and S3 with pushes, a
//! promotion and audit entries is dumped with `pg_dump --format=custom`; the dump verifies against
//! its bucket, its key-encryption key and a checkpoint saved earlier. Fails, naming the problem: a
//! blob deleted from the bucket, a blob's bytes replaced, an audit entry altered in the dump, a
//! checkpoint of another log; a scratch database that holds tables is refused.
//!
//! Needs `AIRLOCK_TEST_BACKEND=distributed` (`scripts/test-services`, `scripts/test-s3`); under
//! the embedded default it prints a NOTICE and passes.

use crate::common;

use std::path::Path;
use std::process::Command;

use airlock_core::Digest;
use airlock_store::BlobStore;
use common::{TestServer, add_user, permissive_bundle, post_json, sha256};
use serde_json::{Value, json};

/// A new empty database on the test server; returns its URL.
fn create_database(prefix: &str) -> String {
    let admin = std::env::var("AIRLOCK_TEST_POSTGRES_URL").expect("AIRLOCK_TEST_POSTGRES_URL");
    let name = format!(
        "airlock_{prefix}_{}",
        &sha256(format!("{:?}", std::time::SystemTime::now()).as_bytes())[7..19]
    );
    let status = Command::new("psql")
        .args(["-q", &admin, "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql");
    assert!(status.success());
    CREATED.lock().unwrap().push(name.clone());
    with_database(&admin, &name)
}

/// The databases [`create_database`] made, dropped at the end of the test.
static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn drop_created_databases() {
    let admin = std::env::var("AIRLOCK_TEST_POSTGRES_URL").expect("AIRLOCK_TEST_POSTGRES_URL");
    for name in CREATED.lock().unwrap().drain(..) {
        psql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..end]),
        None => format!("{}/{name}", &base[..end]),
    }
}

/// Runs `psql -c sql` on `url`.
fn psql(url: &str, sql: &str) {
    let output = Command::new("psql")
        .args(["-q", url, "-c", sql])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `pg_dump --format=custom` of `url` into `file`.
fn pg_dump(url: &str, file: &Path) {
    let output = Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(file)
        .arg(url)
        .output()
        .expect("pg_dump");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What a verification needs besides the dump and the scratch database.
struct Backup {
    /// `--blobs` and the [s3] settings.
    blob_env: Vec<(String, String)>,
    kek: String,
    trusted: String,
}

impl Backup {
    /// Runs `airlock backup --verify --pg-dump DUMP --scratch-database URL ...` with JSON output.
    fn verify(&self, dump: &Path, scratch: &str, trusted: &str) -> (i32, Value, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["--output", "json", "backup", "--verify", "--pg-dump"])
            .arg(dump)
            .args([
                "--scratch-database",
                scratch,
                "--blobs",
                &self.blob_env[0].1,
            ])
            .args(["--key-encryption-key-file", &self.kek])
            .args(["--trusted-checkpoint", trusted])
            .envs(self.blob_env[1..].iter().cloned())
            .env_remove("AIRLOCK_DATABASE_URL")
            .output()
            .expect("run airlock");
        let stdout = String::from_utf8_lossy(&output.stdout);
        (
            output.status.code().unwrap_or(-1),
            serde_json::from_str(&stdout).unwrap_or(Value::Null),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Step 1: two images pushed, one promoted to staging, a checkpoint saved into `trusted`, then a
/// third image (so the dump's log extends the saved checkpoint). Returns the image digests.
async fn populate(s: &TestServer, trusted: &Path) -> Vec<String> {
    let mut digests = Vec::new();
    for n in 1..=2 {
        let layer = format!("layer {n} of the app").into_bytes();
        let (_, digest) = s
            .push_image("dev/team/app", &format!("v{n}"), &[&layer])
            .await;
        digests.push(digest);
    }
    let rita = add_user(s, "rita", "promotes-quietly-0123", &[("promoter", "*")]).await;
    let (status, body) = post_json(
        &rita,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digests[0], "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    s.wait_for_checkpoint().await;
    let (code, note, err) = s.cli(&["audit", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(trusted, &note).unwrap();
    let (_, digest) = s
        .push_image("dev/team/app", "v3", &[b"layer 3 of the app"])
        .await;
    digests.push(digest);
    s.wait_for_checkpoint().await;
    digests
}

/// The server's bucket, to damage and repair blobs in.
async fn bucket(blob_env: &[(String, String)]) -> BlobStore {
    let location: airlock_store::S3Location = blob_env[0].1.parse().unwrap();
    let s3 = airlock_store::test_support::TestS3::from_env().expect("S3 test server");
    BlobStore::s3(&location, &s3.options(None), std::env::vars())
        .await
        .unwrap()
}

/// Step 3: a blob deleted from the bucket, then one with other bytes: each fails naming it.
async fn damaged_blobs_fail(backup: &Backup, dump: &Path) {
    let store = bucket(&backup.blob_env).await;
    let layer = b"layer 2 of the app";
    let digest: Digest = sha256(layer).parse().unwrap();
    store.delete(&digest).await.unwrap();
    let (code, out, err) = backup.verify(dump, &create_database("v"), &backup.trusted);
    assert_eq!(code, 1, "{out:#}{err}");
    assert!(
        err.contains(&digest.to_string()) && err.contains("missing"),
        "{err}"
    );

    store
        .put_small(&digest, bytes::Bytes::from_static(b"layer 2 of the apq"))
        .await
        .unwrap();
    let (code, out, err) = backup.verify(dump, &create_database("v"), &backup.trusted);
    assert_eq!(code, 1, "{out:#}{err}");
    assert!(
        err.contains(&digest.to_string()) && err.contains("damaged"),
        "{err}"
    );
    store
        .put_small(&digest, bytes::Bytes::from_static(layer))
        .await
        .unwrap();
}

/// Step 4: a dump of a copy with one audit entry altered fails on the audit log.
fn altered_audit_entry_fails(backup: &Backup, restored: &str, work: &Path) {
    psql(
        restored,
        "UPDATE audit_entries SET entry = entry || '\\x20'::bytea WHERE idx = 2",
    );
    let tampered = work.join("tampered.dump");
    pg_dump(restored, &tampered);
    let (code, out, err) = backup.verify(&tampered, &create_database("v"), &backup.trusted);
    assert_eq!(code, 1, "{out:#}{err}");
    assert!(err.contains("audit log"), "{err}");
}

/// Step 5: a trusted checkpoint signed by another log's key fails.
fn other_logs_checkpoint_fails(backup: &Backup, dump: &Path, work: &Path) {
    let other = airlock_audit::LogKey::generate("other.example/log").unwrap();
    let note = other
        .sign_checkpoint(3, &airlock_audit::Hash([7; 32]))
        .unwrap();
    let path = work.join("other-checkpoint");
    std::fs::write(&path, note).unwrap();
    let (code, out, err) = backup.verify(dump, &create_database("v"), path.to_str().unwrap());
    assert_eq!(code, 1, "{out:#}{err}");
    assert!(err.contains("trusted checkpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_dump_verifies_with_its_bucket_and_keys_and_damage_is_named() {
    if !common::distributed() {
        eprintln!(
            "NOTICE: skipping the PostgreSQL backup test (needs AIRLOCK_TEST_BACKEND=distributed)"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&work.path().join("bundle"));
    let data_dir = work.path().join("data");
    let trusted = work.path().join("checkpoint");
    let s = TestServer::start_in(
        &data_dir,
        &[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())],
    );
    let digests = populate(&s, &trusted).await;
    let database = common::backend_env(&data_dir)[0].1.clone();
    let dump = work.path().join("airlock.dump");
    pg_dump(&database, &dump);
    let backup = Backup {
        blob_env: common::distributed_blob_env(&data_dir),
        kek: common::test_kek_file(&data_dir).display().to_string(),
        trusted: trusted.display().to_string(),
    };

    // Step 2: the dump verifies, and a scratch database holding tables is refused.
    let scratch = create_database("v");
    let (code, out, err) = backup.verify(&dump, &scratch, &backup.trusted);
    assert_eq!(code, 0, "{out:#}{err}");
    assert_eq!(out["ok"], true, "{out:#}");
    assert!(out["tables"].as_u64().unwrap() > 10, "{out:#}");
    assert!(out["audit"]["size"].as_u64().unwrap() > 0, "{out:#}");
    assert!(out["audit"]["trusted_size"].as_u64().is_some(), "{out:#}");
    // Three layers, three configs (one shared: same empty config), at least four blobs.
    assert!(out["blobs"]["count"].as_u64().unwrap() >= 4, "{out:#}");
    assert_eq!(out["server_keys_opened"], 3, "{out:#}");
    assert_eq!(digests.len(), 3);
    let (code, _, err) = backup.verify(&dump, &scratch, &backup.trusted);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not empty"), "{err}");

    damaged_blobs_fail(&backup, &dump).await;
    altered_audit_entry_fails(&backup, &scratch, work.path());
    other_logs_checkpoint_fails(&backup, &dump, work.path());
    drop(s);
    common::drop_backend_database(&data_dir);
    drop_created_databases();
}

/// Runs `airlock backup ARGS` with `env`; returns (exit code, stderr).
fn backup_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("backup")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run airlock");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Wrong combinations of the PostgreSQL verification's options are usage errors (exit 2), and a
/// missing `pg_restore` is named with the package that brings it. Needs no database.
#[test]
fn wrong_option_combinations_and_a_missing_pg_restore_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("airlock.dump");
    std::fs::write(&dump, b"PGDMP").unwrap();
    let dump = dump.to_str().unwrap();
    let scratch = "postgres://nobody@127.0.0.1:1/scratch";
    for args in [
        vec!["--pg-dump", dump, "--scratch-database", scratch],
        vec!["--verify", "--pg-dump", dump],
        vec!["--verify", "--scratch-database", scratch, "somewhere"],
        vec!["--verify", "somewhere", "--blob-dir", "blobs"],
        vec![
            "--verify",
            "somewhere",
            "--pg-dump",
            dump,
            "--scratch-database",
            scratch,
        ],
        vec![
            "--verify",
            "--pg-dump",
            dump,
            "--scratch-database",
            scratch,
            "--blobs",
            "s3://b",
            "--blob-dir",
            "blobs",
        ],
    ] {
        let (code, err) = backup_cli(&args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, err) = backup_cli(
        &[
            "--verify",
            "--pg-dump",
            dump,
            "--scratch-database",
            "mysql://x/y",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PostgreSQL URL"), "{err}");
    let (code, err) = backup_cli(
        &["--verify", "--pg-dump", dump, "--scratch-database", scratch],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("postgresql-client"), "{err}");
}
