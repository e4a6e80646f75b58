//! `airlock migrate-store` end to end: an embedded installation with pushes, a signature and
//! promotions is stopped and moved to PostgreSQL and S3; started on them over the same data
//! directory, it serves every tag, blob, promotion, evidence item and audit entry, and its log
//! extends a checkpoint saved before the move. Refused: a running installation, a damaged blob
//! file (nothing filled), and a second move into the filled database.
//!
//! Needs `AIRLOCK_TEST_POSTGRES_URL` (`scripts/test-services`) and `AIRLOCK_TEST_S3_ENDPOINT`
//! (`scripts/test-s3`); without them it prints a NOTICE and passes, unless
//! `AIRLOCK_INTEROP=required`. The source is embedded whatever `AIRLOCK_TEST_BACKEND` says.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{OCI_MANIFEST, TestServer, add_user, permissive_bundle, post_json, sha256};
use serde_json::{Value, json};

const FIXTURE_KEY: &str = "tests/fixtures/cosign/cosign_generated_encrypted_empty_private.key";
const KEYADMIN_PASSWORD: &str = "rotates-keys-0123";

/// The services the move needs, or `None` (with a NOTICE) when they are not running.
fn services() -> Option<(String, airlock_store::test_support::TestS3)> {
    let postgres = std::env::var("AIRLOCK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let s3 = airlock_store::test_support::TestS3::from_env();
    match (postgres, s3) {
        (Some(url), Ok(s3)) => Some((url, s3)),
        (postgres, s3) => {
            let missing = format!(
                "PostgreSQL: {}, S3: {}",
                if postgres.is_some() {
                    "set"
                } else {
                    "AIRLOCK_TEST_POSTGRES_URL unset"
                },
                s3.err().map_or("set".to_string(), |e| e.to_string())
            );
            assert!(
                std::env::var("AIRLOCK_INTEROP").as_deref() != Ok("required"),
                "AIRLOCK_INTEROP=required but the services are missing ({missing}): eval \"$(scripts/test-services)\" and eval \"$(scripts/test-s3)\""
            );
            eprintln!("NOTICE: skipping migrate-store test ({missing})");
            None
        }
    }
}

/// A new empty database on the test server; returns its URL.
fn create_database(admin: &str) -> String {
    let name = format!(
        "airlock_m_{}",
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
    let mut url = format!("{}/{name}", &base[..end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// The digest `repo:tag` resolves to (its bytes checked against it).
async fn resolve(s: &TestServer, repo: &str, tag: &str) -> String {
    let response = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{repo}:{tag}");
    let digest = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(sha256(&response.bytes().await.unwrap()), digest);
    digest
}

/// Every tag of `repos` -> its digest.
async fn all_tags(s: &TestServer, repos: &[&str]) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for repo in repos {
        let list: Value = s
            .http
            .get(s.url(&format!("/v2/{repo}/tags/list")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for tag in list["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().unwrap();
            tags.insert(format!("{repo}:{tag}"), resolve(s, repo, tag).await);
        }
    }
    tags
}

/// Pulls every blob of manifest `digest` in `repo`, checking each against its digest; returns them.
async fn pull_blobs(s: &TestServer, repo: &str, digest: &str) -> Vec<String> {
    let manifest: Value = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{digest}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        blobs.push(layer["digest"].as_str().unwrap().to_string());
    }
    for blob in &blobs {
        let response = s
            .http
            .get(s.url(&format!("/v2/{repo}/blobs/{blob}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{repo}@{blob}");
        assert_eq!(&sha256(&response.bytes().await.unwrap()), blob);
    }
    blobs
}

/// Step 1: three images in dev, a signature on the first, two promoted to staging.
async fn populate(s: &TestServer, work: &Path) -> Vec<String> {
    let mut digests = Vec::new();
    for n in 1..=3 {
        let layer = format!("layer {n} of the app").into_bytes();
        let (_, digest) = s
            .push_image("dev/team/app", &format!("v{n}"), &[&layer, b"shared base"])
            .await;
        digests.push(digest);
    }
    add_user(s, "kim", KEYADMIN_PASSWORD, &[("key-admin", "*")]).await;
    let home = work.join("kim-home");
    std::fs::create_dir_all(&home).unwrap();
    let (code, out, err) = s.cli_as(
        &home,
        &["login", &s.base, "-u", "kim", "--password-stdin"],
        Some(KEYADMIN_PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli_with_env(
        &home,
        &[
            "keys",
            "add",
            "ci",
            "--key",
            FIXTURE_KEY,
            "--purpose",
            "sign",
            "--scope",
            "team/*",
        ],
        None,
        &[("COSIGN_PASSWORD", "")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let reference = format!("{}/dev/team/app@{}", s.host, digests[0]);
    let (code, out, err) = s.cli_env(
        &["sign", &reference, "--key", FIXTURE_KEY, "--output", "json"],
        &[("COSIGN_PASSWORD", "")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let signed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(signed["evidence"][0]["status"], "verified", "{signed:#}");
    let rita = add_user(s, "rita", "promotes-quietly-0123", &[("promoter", "*")]).await;
    for digest in &digests[..2] {
        let (status, body) = post_json(
            &rita,
            &s.url("/api/v1/promotions"),
            json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
        )
        .await;
        assert_eq!(status, 201, "{body:#}");
        assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    }
    digests
}

/// Runs `airlock migrate-store` on `data_dir` into `url` and `bucket`.
fn migrate(
    data_dir: &Path,
    url: &str,
    bucket: &str,
    s3: &airlock_store::test_support::TestS3,
) -> (i32, String, String) {
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

/// The promotions the server lists.
async fn promotions(s: &TestServer) -> Vec<Value> {
    let body: Value = s
        .http
        .get(s.url("/api/v1/promotions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["promotions"].as_array().cloned().unwrap_or_default()
}

/// The evidence items of `repo@digest`.
async fn evidence(s: &TestServer, repo: &str, digest: &str) -> Value {
    let response = s
        .http
        .get(s.url(&format!("/api/v1/artifacts/{repo}@{digest}/evidence")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_installation_moves_to_postgres_and_s3_with_its_tags_blobs_and_audit_log() {
    let Some((admin_url, s3)) = services() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&work.path().join("bundle"));
    let bundle_env = ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap());
    let data_dir = work.path().join("data");
    let trusted = work.path().join("checkpoint");
    let url = create_database(&admin_url);
    let bucket = airlock_store::test_support::TestS3::fresh_bucket_name();
    common::create_test_bucket(&s3, &bucket);

    let mut source = TestServer::start_embedded_in(&data_dir, &[bundle_env]);
    let digests = populate(&source, work.path()).await;
    let tags = all_tags(&source, &["dev/team/app", "staging/team/app"]).await;
    assert!(tags.keys().any(|t| t.starts_with("staging/")), "{tags:?}");
    let promoted = promotions(&source).await;
    assert!(promoted.len() >= 2, "{promoted:#?}");
    let signed = evidence(&source, "dev/team/app", &digests[0]).await;
    source.wait_for_checkpoint().await;
    let (code, note, err) = source.cli(&["audit", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&trusted, &note).unwrap();
    let entries = source.audit_entries().await;

    // A running installation is refused: the server holds the data directory's lock.
    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("is in use"), "{err}");
    source.stop();
    drop(source);

    // A damaged blob file stops the move before the database is filled, naming the blob.
    let layer = sha256(b"layer 3 of the app");
    let file = airlock_store::local_blob_file(&data_dir.join("blobs"), &layer.parse().unwrap());
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"not the layer").unwrap();
    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&layer), "{err}");
    std::fs::write(&file, &good).unwrap();

    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("next: start airlock serve"), "{out}");
    assert!(out.contains("already there"), "{out}");

    // Into the same (now filled) database again: refused, naming the fix.
    let (code, out, err) = migrate(&data_dir, &url, &bucket, &s3);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("already holds data"), "{err}");

    // Started on PostgreSQL and S3 over the same data directory.
    let kek = work.path().join("kek");
    std::fs::write(&kek, "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n").unwrap();
    let blob_store = format!("s3://{bucket}/moved");
    let moved = TestServer::start_in(
        &data_dir,
        &[
            bundle_env,
            ("AIRLOCK_DATABASE_URL", &url),
            ("AIRLOCK_BLOB_STORE", &blob_store),
            ("AIRLOCK_S3__ENDPOINT", &s3.endpoint),
            ("AIRLOCK_S3__PATH_STYLE", "true"),
            ("AIRLOCK_S3__ALLOW_HTTP", "true"),
            ("AIRLOCK_KEY_ENCRYPTION_KEY_FILE", kek.to_str().unwrap()),
        ],
    );
    assert_eq!(
        all_tags(&moved, &["dev/team/app", "staging/team/app"]).await,
        tags
    );
    for (name, digest) in &tags {
        let repo = name.split_once(':').unwrap().0;
        pull_blobs(&moved, repo, digest).await;
    }
    let after = promotions(&moved).await;
    assert_eq!(after.len(), promoted.len());
    assert_eq!(evidence(&moved, "dev/team/app", &digests[0]).await, signed);
    let moved_entries = moved.audit_entries().await;
    assert_eq!(moved_entries[..entries.len()], entries[..]);
    assert!(
        moved_entries.iter().any(|e| e["type"] == "store.migrated"),
        "{:#?}",
        &moved_entries[entries.len()..]
    );
    moved.wait_for_checkpoint().await;
    let (code, out, err) = moved.cli(&[
        "audit",
        "verify",
        "--trusted-checkpoint",
        trusted.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("extends the trusted checkpoint"), "{out}");
}

/// Usage errors exit 2 before anything is touched (a target that is not PostgreSQL, a bucket URL
/// that is not `s3://`); a directory holding no embedded database exits 1 naming `--data-dir`.
/// None of these need the services.
#[test]
fn usage_errors_exit_2_and_a_directory_without_a_database_exits_1() {
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .arg("migrate-store")
            .args(args)
            .env_remove("AIRLOCK_DATABASE_URL")
            .output()
            .expect("run airlock");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let dir = work.path().to_str().unwrap();
    let (code, err) = run(&["--data-dir", dir, "--to", "mysql://root:s3cret@db/airlock"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("postgres://") && !err.contains("s3cret"),
        "{err}"
    );
    let (code, err) = run(&[
        "--data-dir",
        dir,
        "--to",
        "postgres://db/airlock",
        "--blobs",
        "https://bucket",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["--data-dir", dir]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["--data-dir", dir, "--to", "postgres://127.0.0.1:1/airlock"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds no embedded database"), "{err}");
}
