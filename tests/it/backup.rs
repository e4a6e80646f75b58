//! `airlock backup`, `backup --verify` and `restore` against the real server: an online backup
//! taken while pushes run, a wipe and a restore that brings back every tag, blob and audit entry
//! (the restored log extends a checkpoint saved before the backup), tampered and interrupted
//! backups refused, and a restore never written over a data directory.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{
    OCI_MANIFEST, TestServer, add_user, airlock_cli, permissive_bundle, post_json, sha256,
};
use serde_json::json;

/// What a repository's tags resolve to: (repository, tag) -> manifest digest.
type Tags = BTreeMap<(String, String), String>;

/// The pushes the loop had acknowledged: (tag, manifest digest).
type Acked = Arc<Mutex<Vec<(String, String)>>>;

fn start(data_dir: &Path, bundle: &Path) -> TestServer {
    TestServer::start_in(
        data_dir,
        &[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())],
    )
}

fn cli(args: &[&str]) -> (i32, String, String) {
    airlock_cli(args)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The digest `repo:tag` resolves to, or `None` when the tag is unknown.
async fn resolve(s: &TestServer, repo: &str, tag: &str) -> Option<String> {
    let response = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert_eq!(response.status(), 200, "{repo}:{tag}");
    let digest = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap();
    assert_eq!(sha256(&body), digest, "{repo}:{tag} serves its digest");
    Some(digest)
}

/// Every tag of `repos` and the digest it resolves to.
async fn all_tags(s: &TestServer, repos: &[&str]) -> Tags {
    let mut tags = Tags::new();
    for repo in repos {
        let list: serde_json::Value = s
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
            let digest = resolve(s, repo, tag).await.unwrap();
            tags.insert((repo.to_string(), tag.to_string()), digest);
        }
    }
    tags
}

/// Pulls every blob `repo`'s manifest `digest` names and checks its bytes against its digest.
async fn pull_blobs(s: &TestServer, repo: &str, digest: &str) -> usize {
    let manifest: serde_json::Value = s
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
    for layer in manifest["layers"].as_array().unwrap() {
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
    blobs.len()
}

/// Step 1: three images in dev, two of them promoted to staging; returns every tag.
async fn populate(s: &TestServer) -> Tags {
    let mut digests = Vec::new();
    for n in 1..=3 {
        let layer = format!("layer {n} of the app").into_bytes();
        let (_, digest) = s
            .push_image("dev/team/app", &format!("v{n}"), &[&layer, b"shared base"])
            .await;
        digests.push(digest);
    }
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
    let tags = all_tags(s, &["dev/team/app", "staging/team/app"]).await;
    assert!(
        tags.keys().any(|(repo, _)| repo == "staging/team/app"),
        "the promotions tagged staging: {tags:?}"
    );
    tags
}

/// Pushes a one-layer image as `http` to `base`; returns its manifest digest.
async fn push_one(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let mut descriptors = Vec::new();
    for content in [&config[..], layer] {
        let digest = sha256(content);
        let response = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        descriptors.push(json!({"digest": digest, "size": content.len()}));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": descriptors[0]["digest"], "size": descriptors[0]["size"]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": descriptors[1]["digest"], "size": descriptors[1]["size"]}],
    }))
    .unwrap();
    let response = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    sha256(&manifest)
}

/// Step 2: pushes `dev/team/loop:l<n>` until `stop`; returns what each acknowledged tag holds.
fn push_loop(s: &TestServer, stop: Arc<AtomicBool>) -> (Acked, tokio::task::JoinHandle<()>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (http, base) = (s.http.clone(), s.base.clone());
    let record = acked.clone();
    let task = tokio::spawn(async move {
        let mut n = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let tag = format!("l{n}");
            let layer = format!("loop layer {n}").into_bytes();
            let digest = push_one(&http, &base, "dev/team/loop", &tag, &layer).await;
            record.lock().unwrap().push((tag, digest));
            n += 1;
        }
    });
    (acked, task)
}

/// Step 3: `airlock backup` while the push loop runs; returns the pushes acknowledged before it
/// started, and all of them.
async fn backup_during_pushes(
    s: &TestServer,
    dest: &Path,
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, task) = push_loop(s, stop.clone());
    while acked.lock().unwrap().len() < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = acked.lock().unwrap().clone();
    let args = [
        "backup".to_string(),
        path(dest).to_string(),
        "--data-dir".into(),
        path(&s.data_dir).to_string(),
    ];
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("backup written to"), "{out}");
    // Pushes go on after the backup, and are not in it.
    let after = acked.lock().unwrap().len();
    while acked.lock().unwrap().len() < after + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    let all = acked.lock().unwrap().clone();
    (before, all)
}

/// Rotates the attestation key (as a key-admin), so the data directory holds a key history.
async fn rotate_attestation_key(s: &TestServer) {
    let keyadmin = add_user(s, "kim", "rotates-keys-0123", &[("key-admin", "*")]).await;
    let (status, body) = post_json(
        &keyadmin,
        &s.url("/api/v1/server-keys/attestation/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Saves the server's newest checkpoint (covering every entry so far) to `file`.
async fn save_checkpoint(s: &TestServer, file: &Path) {
    s.wait_for_checkpoint().await;
    let (code, note, err) = s.cli(&["audit", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(file, &note).unwrap();
}

/// What the installation held when its backup was taken.
struct Before {
    tags: Tags,
    keys: BTreeMap<String, Vec<u8>>,
    entries: Vec<serde_json::Value>,
    /// Loop pushes acknowledged before the backup began.
    pushed_before: Vec<(String, String)>,
    /// Every loop push acknowledged.
    pushed_all: Vec<(String, String)>,
}

/// Step 4: the restored server holds every tag at its digest, every blob, every key file, every
/// audit entry, and its log extends the checkpoint saved before the backup.
async fn check_restored(r: &TestServer, before: &Before, trusted: &Path) {
    assert_eq!(key_files(&r.data_dir), before.keys);
    let restored = all_tags(r, &["dev/team/app", "staging/team/app"]).await;
    assert_eq!(restored, before.tags);
    let mut blobs = 0;
    for ((repo, _), digest) in &before.tags {
        blobs += pull_blobs(r, repo, digest).await;
    }
    assert!(blobs >= 15, "{blobs}");
    // Every push acknowledged before the backup began is back; whatever else of the loop made it
    // into the snapshot holds what was pushed under its tag.
    for (tag, digest) in &before.pushed_before {
        assert_eq!(
            resolve(r, "dev/team/loop", tag).await.as_ref(),
            Some(digest)
        );
        pull_blobs(r, "dev/team/loop", digest).await;
    }
    let pushed: BTreeMap<String, String> = before.pushed_all.iter().cloned().collect();
    for ((_, tag), digest) in all_tags(r, &["dev/team/loop"]).await {
        assert_eq!(pushed.get(&tag), Some(&digest), "dev/team/loop:{tag}");
    }

    let entries = r.audit_entries().await;
    assert!(entries.len() >= before.entries.len());
    assert_eq!(entries[..before.entries.len()], before.entries[..]);
    r.wait_for_checkpoint().await;
    let (code, out, err) = r.cli(&["audit", "verify", "--trusted-checkpoint", path(trusted)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("extends the trusted checkpoint"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restored_into_a_wiped_directory_brings_back_tags_blobs_and_the_audit_log()
{
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&work.path().join("bundle"));
    let data_dir = work.path().join("data");
    let dest = work.path().join("backup");
    let trusted = work.path().join("checkpoint");

    let mut s = start(&data_dir, &bundle);
    let tags = populate(&s).await;
    rotate_attestation_key(&s).await;
    save_checkpoint(&s, &trusted).await;
    let entries = s.audit_entries().await;
    let (pushed_before, pushed_all) = backup_during_pushes(&s, &dest).await;
    let keys = key_files(&data_dir);
    assert!(keys.contains_key("attestation-keys.json"), "{keys:?}");
    let before = Before {
        tags,
        keys,
        entries,
        pushed_before,
        pushed_all,
    };

    let (code, out, err) = cli(&[
        "backup",
        "--verify",
        path(&dest),
        "--trusted-checkpoint",
        path(&trusted),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("extends the trusted checkpoint"), "{out}");
    assert_private(&dest);

    // Wipe: the server and its whole data directory are gone.
    s.stop();
    drop(s);
    std::fs::remove_dir_all(&data_dir).unwrap();

    let (code, out, err) = cli(&["restore", path(&dest), "--data-dir", path(&data_dir)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("airlock serve --data-dir {}", data_dir.display())),
        "{out}"
    );
    assert_private(&data_dir);
    let r = start(&data_dir, &bundle);
    check_restored(&r, &before, &trusted).await;
}

/// The data directory's key files and their bytes.
fn key_files(data_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    [
        "log-key",
        "token-key.pem",
        "token-keys.json",
        "attestation-key.pem",
        "attestation-keys.json",
    ]
    .into_iter()
    .filter_map(|name| {
        std::fs::read(data_dir.join(name))
            .ok()
            .map(|bytes| (name.to_string(), bytes))
    })
    .collect()
}

/// Every file and directory under `dir` is for its owner only (0600 files, 0700 directories).
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let mode = std::fs::metadata(&current).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", current.display());
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", entry.path().display());
            }
        }
    }
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A backup of a server holding one image; returns the backup and the image's layer digest.
async fn one_image_backup(work: &Path) -> (PathBuf, String) {
    let s = TestServer::start();
    s.push_image("dev/team/app", "v1", &[b"the only layer"])
        .await;
    let dest = work.join("backup");
    let (code, out, err) = cli(&["backup", path(&dest), "--data-dir", path(&s.data_dir)]);
    assert_eq!(code, 0, "{out}{err}");
    (dest, sha256(b"the only layer"))
}

fn blob_file(backup: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    backup.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn verify_fails(backup: &Path, expected: &[&str]) {
    let (code, out, err) = cli(&["backup", "--verify", path(backup)]);
    assert_eq!(code, 1, "{out}{err}");
    for text in expected {
        assert!(err.contains(text), "{text:?} in {err}");
    }
}

#[tokio::test]
async fn a_tampered_backup_fails_verification_naming_the_file_and_is_not_restored() {
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (backup, layer) = one_image_backup(work.path()).await;
    let (code, out, err) = cli(&["backup", "--verify", path(&backup)]);
    assert_eq!(code, 0, "{out}{err}");

    // A flipped byte in a blob.
    let flipped = work.path().join("flipped");
    copy_tree(&backup, &flipped);
    let file = blob_file(&flipped, &layer);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    verify_fails(
        &flipped,
        &[&format!("blob {layer} is damaged"), &layer[7..]],
    );
    let (code, _, err) = cli(&[
        "restore",
        path(&flipped),
        "--data-dir",
        path(&work.path().join("restored")),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is damaged"), "{err}");
    assert!(!work.path().join("restored").exists());

    // A deleted blob.
    let deleted = work.path().join("deleted");
    copy_tree(&backup, &deleted);
    std::fs::remove_file(blob_file(&deleted, &layer)).unwrap();
    verify_fails(&deleted, &[&format!("blob {layer} is missing")]);

    // An edited manifest.
    let edited = work.path().join("edited");
    copy_tree(&backup, &edited);
    let manifest = std::fs::read_to_string(edited.join("manifest.json")).unwrap();
    std::fs::write(
        edited.join("manifest.json"),
        manifest.replace("\"version\": 1", "\"version\": 1 "),
    )
    .unwrap();
    verify_fails(&edited, &["manifest.json was changed"]);

    // A manifest edited consistently (its checksum rewritten) that drops a blob: the blob file is
    // unlisted, and the database still references it.
    let dropped = work.path().join("dropped");
    copy_tree(&backup, &dropped);
    let mut parsed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dropped.join("manifest.json")).unwrap()).unwrap();
    parsed["blobs"]
        .as_array_mut()
        .unwrap()
        .retain(|blob| blob["digest"] != layer.as_str());
    let bytes = serde_json::to_vec_pretty(&parsed).unwrap();
    std::fs::write(dropped.join("manifest.json"), &bytes).unwrap();
    std::fs::write(
        dropped.join("manifest.json.sha256"),
        format!("{}  manifest.json\n", &sha256(&bytes)[7..]),
    )
    .unwrap();
    verify_fails(&dropped, &["is not listed in manifest.json", &layer[7..]]);

    // A damaged database file.
    let damaged = work.path().join("damaged");
    copy_tree(&backup, &damaged);
    let mut bytes = std::fs::read(damaged.join("metadata.db")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(damaged.join("metadata.db"), bytes).unwrap();
    verify_fails(&damaged, &["metadata.db is damaged"]);
}

#[tokio::test]
async fn restore_refuses_a_non_empty_directory_and_an_interrupted_backup() {
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (backup, _) = one_image_backup(work.path()).await;

    // Never into a directory that holds anything.
    let occupied = work.path().join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "keep me").unwrap();
    let (code, out, err) = cli(&["restore", path(&backup), "--data-dir", path(&occupied)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not empty"), "{err}");
    assert!(err.contains("Restore into a new directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(occupied.join("notes.txt")).unwrap(),
        "keep me"
    );
    // An empty directory is fine.
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, out, err) = cli(&["restore", path(&backup), "--data-dir", path(&empty)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(empty.join("metadata.db").is_file());

    // A backup is never written into a non-empty destination either.
    let (code, _, err) = cli(&["backup", path(&occupied), "--data-dir", path(&empty)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");

    // An interrupted backup: killed before its manifest was written and before the rename.
    let interrupted = work.path().join("nightly");
    let partial = work.path().join("nightly.partial");
    copy_tree(&backup, &partial);
    std::fs::remove_file(partial.join("manifest.json")).unwrap();
    std::fs::remove_file(partial.join("manifest.json.sha256")).unwrap();
    let target = work.path().join("from-partial");
    for source in [&interrupted, &partial] {
        let (code, out, err) = cli(&["restore", path(source), "--data-dir", path(&target)]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("nightly.partial"), "{err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(!target.exists());
    }
    verify_fails(&partial, &["interrupted"]);
    // Renamed by hand, it still is no backup: it has no manifest.
    let renamed = work.path().join("renamed");
    std::fs::rename(&partial, &renamed).unwrap();
    verify_fails(&renamed, &["manifest.json is missing"]);
    std::fs::rename(&renamed, &partial).unwrap();
    // The next backup to the same name says how to clear the leftover.
    let (code, _, err) = cli(&["backup", path(&interrupted), "--data-dir", path(&empty)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("rm -r {}", partial.display())),
        "{err}"
    );
}

#[tokio::test]
async fn a_backup_killed_midway_leaves_a_partial_directory_that_is_never_taken_for_a_backup() {
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    // A large blob, so the backup is still copying when it is killed.
    let large: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s.push_image("dev/team/big", "v1", &[&large]).await;
    let dest = work.path().join("nightly");
    let partial = work.path().join("nightly.partial");
    let mut backup = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["backup", path(&dest), "--data-dir", path(&s.data_dir)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the snapshot is written, while the blobs are copied.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !partial.join("metadata.db").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    backup.kill().unwrap();
    backup.wait().unwrap();
    assert!(
        !dest.exists(),
        "a killed backup is never renamed into place"
    );
    assert!(partial.is_dir());

    let target = work.path().join("restored");
    for source in [&dest, &partial] {
        let (code, out, err) = cli(&["restore", path(source), "--data-dir", path(&target)]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(!target.exists());
    }
    verify_fails(&dest, &["nightly.partial", "interrupted"]);
    // After the leftover is removed, the same backup succeeds.
    std::fs::remove_dir_all(&partial).unwrap();
    let (code, out, err) = cli(&["backup", path(&dest), "--data-dir", path(&s.data_dir)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("blobs: 2 (33554469 bytes)"), "{out}");
}

/// What gc does to a blob in the live data directory: the row goes with a tombstone in one
/// transaction, then the file (the tombstone is left standing, as at a run's last step).
async fn gc_deletes(data_dir: &Path, digest: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join("metadata.db"))
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    for statement in [
        "INSERT INTO gc_tombstones (digest, created_at) VALUES (?, 0)",
        "DELETE FROM repository_blobs WHERE digest = ?",
        "DELETE FROM blobs WHERE digest = ?",
    ] {
        sqlx::query(statement)
            .bind(digest)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
    // The blob store is `<data dir>/blobs`, laid out as a backup is.
    std::fs::remove_file(blob_file(&data_dir.join("blobs"), digest)).unwrap();
}

#[tokio::test]
async fn gc_deleting_an_unreferenced_blob_during_a_backup_leaves_it_out_and_the_backup_verifies() {
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    let (_, image) = s
        .push_image("dev/team/app", "v1", &[b"a referenced layer"])
        .await;
    // Uploaded, never referenced by a manifest: what gc collects.
    let loose = s
        .push_blob("dev/team/app", b"a blob no manifest names")
        .await;
    s.wait_for_checkpoint().await;

    let dest = work.path().join("backup");
    let summary = airlock_server::backup::create_observed(
        &s.data_dir,
        &dest,
        gc_deletes(&s.data_dir, &loose),
    )
    .await
    .unwrap();
    let listed: Vec<&str> = summary
        .manifest
        .blobs
        .iter()
        .map(|blob| blob.digest.as_str())
        .collect();
    assert!(!listed.contains(&loose.as_str()), "{listed:?}");
    assert_eq!(
        summary
            .dropped_blobs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        std::slice::from_ref(&loose)
    );
    assert!(listed.contains(&sha256(b"a referenced layer").as_str()));
    assert!(!blob_file(&dest, &loose).exists());
    let (code, out, err) = cli(&["backup", "--verify", path(&dest)]);
    assert_eq!(code, 0, "{out}{err}");

    // Restored, the image is whole and the dropped blob is simply not there.
    let restored = work.path().join("restored");
    let (code, out, err) = cli(&["restore", path(&dest), "--data-dir", path(&restored)]);
    assert_eq!(code, 0, "{out}{err}");
    let r = TestServer::start_in(&restored, &[]);
    assert_eq!(pull_blobs(&r, "dev/team/app", &image).await, 2);
    let response = r
        .http
        .head(r.url(&format!("/v2/dev/team/app/blobs/{loose}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_referenced_blob_gone_during_a_backup_fails_it() {
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let s = TestServer::start();
    s.push_image("dev/team/app", "v1", &[b"a referenced layer"])
        .await;
    let layer = sha256(b"a referenced layer");
    s.wait_for_checkpoint().await;

    // Even with its live row gone and a tombstone standing, the snapshot's manifest needs it.
    let dest = work.path().join("backup");
    let err = airlock_server::backup::create_observed(
        &s.data_dir,
        &dest,
        gc_deletes(&s.data_dir, &layer),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, airlock_server::backup::BackupError::BlobMissing { ref digest, .. } if *digest == layer),
        "{err}"
    );
    assert!(err.is_refusal());
    assert!(!dest.exists());
    assert!(!work.path().join("backup.partial").exists());
}

/// Replaces `file` with a symbolic link to a copy of its bytes outside the backup.
fn replace_with_link(file: &Path, outside: &Path) {
    std::fs::copy(file, outside).unwrap();
    std::fs::remove_file(file).unwrap();
    std::os::unix::fs::symlink(outside, file).unwrap();
}

#[tokio::test]
async fn a_backup_with_a_symlinked_blob_or_key_file_is_refused_naming_the_file() {
    // `airlock backup` copies the data directory's blob files.
    if common::embedded_only() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (backup, layer) = one_image_backup(work.path()).await;
    let hex = &layer[7..];

    // The link points at the very bytes the manifest records: only the link itself is wrong.
    let linked_blob = work.path().join("linked-blob");
    copy_tree(&backup, &linked_blob);
    replace_with_link(
        &blob_file(&linked_blob, &layer),
        &work.path().join("layer-bytes"),
    );
    let blob_path = format!("blobs/sha256/{}/{hex}", &hex[..2]);
    verify_fails(&linked_blob, &[&blob_path, "not a regular file"]);

    let linked_key = work.path().join("linked-key");
    copy_tree(&backup, &linked_key);
    replace_with_link(
        &linked_key.join("log-key"),
        &work.path().join("log-key-bytes"),
    );
    verify_fails(&linked_key, &["log-key", "not a regular file"]);

    for source in [&linked_blob, &linked_key] {
        let target = work.path().join("restored");
        let (code, out, err) = cli(&["restore", path(source), "--data-dir", path(&target)]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("not a regular file"), "{err}");
        assert!(!target.exists());
        assert!(!work.path().join("restored.restoring").exists());
    }
}

/// With the blobs in S3 (`blob_store`), backup and restore refuse before writing anything and
/// say to back the bucket up with its own tools: they copy only the data directory's blob files.
#[test]
fn backup_and_restore_refuse_when_the_blobs_are_in_s3() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let target = work.path().join("backup");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .env_remove("AIRLOCK_DATABASE_URL")
            .env_remove("AIRLOCK_SERVER")
            .env("AIRLOCK_BLOB_STORE", "s3://airlock-blobs/prod")
            .output()
            .expect("run airlock");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "backup",
        "--data-dir",
        data_dir.to_str().unwrap(),
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("s3://airlock-blobs/prod") && err.contains("blob_store"),
        "{err}"
    );
    assert!(
        !target.exists() && !data_dir.exists(),
        "nothing was written"
    );
    let (code, err) = run(&[
        "restore",
        target.to_str().unwrap(),
        "--data-dir",
        work.path().join("restored").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("blob_store"), "{err}");
    assert!(!work.path().join("restored").exists());
}
