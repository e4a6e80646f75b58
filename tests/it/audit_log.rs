//! The tamper-evident audit log, end to end: every change is recorded, the log verifies with the
//! `airlock audit` CLI against a running server and offline, and every kind of tampering is
//! detected and named.

use crate::common;

use std::path::Path;

use common::{BOOTSTRAP_ENTRIES, OCI_MANIFEST, TestServer, airlock_cli, sha256};
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

fn types(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// A server with some history: pushes, a tag move, deletes and refused pushes.
async fn server_with_history() -> TestServer {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"layer a"]).await;
    s.push_image("dev/team/app", "1.0", &[b"layer b"]).await;
    s.http
        .delete(s.url("/v2/dev/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    let refused = s
        .http
        .post(s.url("/v2/prod/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    s.wait_for_checkpoint().await;
    s
}

#[tokio::test]
async fn every_change_is_recorded_with_actor_subject_and_outcome() {
    let s = server_with_history().await;
    let all = s.audit_entries().await;
    // A new server first records creating admin (the principal, its password, three roles) and
    // loading its policy bundle.
    assert_eq!(
        types(&all[..BOOTSTRAP_ENTRIES]),
        [
            "principal.created",
            "credential.created",
            "role.granted",
            "role.granted",
            "role.granted",
            "policy.loaded"
        ]
    );
    let entries = all[BOOTSTRAP_ENTRIES..].to_vec();
    let kinds = types(&entries);
    assert_eq!(
        kinds,
        [
            // config + layer a, the manifest, the new tag
            "blob.pushed",
            "blob.pushed",
            "manifest.pushed",
            "tag.moved",
            // the config again (a re-push is still a push) + layer b, the manifest, the tag move
            "blob.pushed",
            "blob.pushed",
            "manifest.pushed",
            "tag.moved",
            "tag.deleted",
            "push.refused",
        ]
    );
    let moved = &entries[7];
    assert_eq!(moved["subject"]["tag"], "1.0");
    assert_eq!(
        moved["details"]["previous"],
        entries[3]["details"]["digest"]
    );
    assert_eq!(moved["actor"]["principal"], "admin");
    assert_eq!(moved["actor"]["auth_method"], "password");
    assert!(
        moved["actor"]["source"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let refused = &entries[9];
    assert_eq!(refused["outcome"], "denied");
    assert_eq!(refused["subject"]["repository"], "prod/team/app");
    assert!(
        refused["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("only by promotion")
    );
    // A failed write records nothing: a manifest with a missing blob.
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"absent"), "size": 6},
        "layers": []})).unwrap();
    let r = s
        .put_manifest("dev/team/app", "2.0", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(s.audit_entries().await.len(), BOOTSTRAP_ENTRIES + 10);
}

#[tokio::test]
async fn the_log_verifies_online_offline_and_against_a_trusted_checkpoint() {
    let mut s = server_with_history().await;
    let key = s
        .http
        .get(s.url("/log/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = key.trim();
    let work = tempfile::tempdir().unwrap();
    let trusted = work.path().join("checkpoint");
    let (code, note, _) = s.cli(&["audit", "checkpoint"]);
    assert_eq!(code, 0);
    std::fs::write(&trusted, &note).unwrap();

    // More history after the trusted checkpoint.
    s.push_image("dev/team/other", "1", &[b"more"]).await;
    s.wait_for_checkpoint().await;
    let trusted_arg = trusted.to_str().unwrap();
    let (code, out, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        key,
        "--trusted-checkpoint",
        trusted_arg,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok: 20 entries verified"), "{out}");
    assert!(
        out.contains("extends the trusted checkpoint of size 16"),
        "{out}"
    );

    // An inclusion proof a third party can check.
    let (code, out, err) = s.cli(&["audit", "prove", "10"]);
    assert_eq!(code, 0, "{err}");
    let proof: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(proof["index"], 10);
    assert_eq!(proof["entry"]["type"], "blob.pushed");
    let inclusion = airlock_audit::InclusionProof {
        index: 10,
        tree_size: proof["tree_size"].as_u64().unwrap(),
        leaf_hash: serde_json::from_value(proof["leaf_hash"].clone()).unwrap(),
        hashes: serde_json::from_value(proof["hashes"].clone()).unwrap(),
    };
    let checkpoint =
        airlock_audit::verify_checkpoint(proof["checkpoint"].as_str().unwrap(), key).unwrap();
    let entry = hex::decode(proof["entry_bytes_hex"].as_str().unwrap()).unwrap();
    inclusion.verify_entry(&entry, &checkpoint).unwrap();

    s.stop();
    let dir = s.data_dir.to_str().unwrap().to_string();
    let (code, out, err) = airlock_cli(&[
        "audit",
        "verify",
        "--data-dir",
        &dir,
        "--log-key",
        key,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["size"], 20);
}

#[tokio::test]
async fn tail_and_export_read_the_log_with_filters() {
    let s = server_with_history().await;
    let (code, out, err) = s.cli(&["audit", "tail", "-n", "2", "--filter", "tag"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["entry"]["type"], "tag.moved");
    assert_eq!(lines[1]["entry"]["type"], "tag.deleted");
    assert_eq!(lines[1]["index"], BOOTSTRAP_ENTRIES + 8);

    let (code, out, err) = s.cli(&["audit", "export", "--since", "1h"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), BOOTSTRAP_ENTRIES + 10);
    let (_, out, _) = s.cli(&["audit", "export", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(out.lines().count(), 0);
    let (code, _, err) = s.cli(&["audit", "export", "--since", "last tuesday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_refused() {
    let s = server_with_history().await;
    let other = airlock_audit::LogKey::generate("airlock/impostor").unwrap();
    let (code, _, err) = s.cli(&["audit", "verify", "--log-key", other.verifier_key()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not signed by the log key"), "{err}");

    // A trusted checkpoint from another log (same origin, other key) is refused too.
    let key = s
        .http
        .get(s.url("/log/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let origin = key.split('+').next().unwrap();
    let forged = airlock_audit::LogKey::generate(origin).unwrap();
    let note = forged
        .sign_checkpoint(1, &airlock_audit::Hash([7; 32]))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("forged");
    std::fs::write(&file, note).unwrap();
    let (code, _, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        key.trim(),
        "--trusted-checkpoint",
        file.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not signed by the log key"), "{err}");
}

#[tokio::test]
async fn a_forked_log_is_detected() {
    // Server A's history, and a checkpoint from it.
    let a = server_with_history().await;
    let (_, trusted_note, _) = a.cli(&["audit", "checkpoint"]);
    let key = a
        .http
        .get(a.url("/log/key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let trusted = work.path().join("checkpoint");
    std::fs::write(&trusted, &trusted_note).unwrap();

    // Server B holds the same key but a different history of the same length and more.
    let dir_b = work.path().join("b");
    std::fs::create_dir_all(&dir_b).unwrap();
    std::fs::write(
        dir_b.join("log-key"),
        common::server_private_key(&a.data_dir, "log-key").await,
    )
    .unwrap();
    let b = TestServer::start_in_with_args(&dir_b, &["--allow-new-database"], &[]);
    for i in 0..12 {
        b.push_blob("dev/forked/app", format!("other history {i}").as_bytes())
            .await;
    }
    b.wait_for_checkpoint().await;
    let (code, _, err) = b.cli(&[
        "audit",
        "verify",
        "--log-key",
        key.trim(),
        "--trusted-checkpoint",
        trusted.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not consistent with the trusted checkpoint"),
        "{err}"
    );
}

/// Runs offline verification of `dir`; returns (exit code, stderr).
fn verify_offline(dir: &Path) -> (i32, String) {
    let (code, out, err) = airlock_cli(&["audit", "verify", "--data-dir", dir.to_str().unwrap()]);
    (code, format!("{out}{err}"))
}

/// Runs offline verification of `dir`, which must fail naming `problem`.
fn assert_offline_verify_fails_naming(dir: &Path, problem: &str) {
    let (code, out) = verify_offline(dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(problem), "{out}");
}

async fn database(dir: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(dir.join("metadata.db"))
        .connect()
        .await
        .unwrap()
}

/// A stopped server's data directory with a checkpointed history of 15 entries.
async fn stopped_history() -> (TestServer, std::path::PathBuf) {
    let mut s = server_with_history().await;
    s.stop();
    let dir = s.data_dir.clone();
    let (code, out) = verify_offline(&dir);
    assert_eq!(code, 0, "{out}");
    (s, dir)
}

#[tokio::test]
async fn a_modified_entry_is_detected_and_named() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query(r#"UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), '"time"', '"tlme"') AS BLOB) WHERE idx = 3"#)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "entry 3 was altered");
}

#[tokio::test]
async fn a_running_server_serving_an_altered_entry_is_caught() {
    if common::embedded_only() {
        return;
    }
    let s = server_with_history().await;
    let mut db = database(&s.data_dir).await;
    sqlx::query("UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'push.refused', 'push.allowed') AS BLOB) WHERE idx = 15")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let (code, out, err) = s.cli(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("entry 15 was altered"), "{err}");
}

#[tokio::test]
async fn a_deleted_entry_is_detected_and_named() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query("DELETE FROM audit_entries WHERE idx = 5")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "entry 5 is missing");
}

#[tokio::test]
async fn reordered_entries_are_detected() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query("UPDATE audit_entries SET idx = -1 WHERE idx = 2")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_entries SET idx = 2 WHERE idx = 6")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_entries SET idx = 6 WHERE idx = -1")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "entry 2 was altered");
}

#[tokio::test]
async fn an_inserted_entry_is_detected() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    // Make room at index 4 by shifting the later entries up, then slip a forged entry in.
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT idx FROM audit_entries WHERE idx >= 4 ORDER BY idx DESC")
            .fetch_all(&mut db)
            .await
            .unwrap();
    for (idx,) in rows {
        sqlx::query("UPDATE audit_entries SET idx = idx + 1 WHERE idx = ?")
            .bind(idx)
            .execute(&mut db)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO audit_entries (idx, entry, kind, time_millis) VALUES (4, CAST('{\"type\":\"forged\"}' AS BLOB), 'forged', 0)")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "entry 4 was altered");
}

#[tokio::test]
async fn an_entry_rewritten_with_its_hash_breaks_the_signed_checkpoint() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    let (entry,): (Vec<u8>,) = sqlx::query_as("SELECT entry FROM audit_entries WHERE idx = 7")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let original = String::from_utf8(entry).unwrap();
    let forged = original.replace("\"v\":1", "\"v\":2").into_bytes();
    assert_ne!(
        forged,
        original.into_bytes(),
        "the forgery must change the entry"
    );
    let leaf = airlock_audit::leaf_hash(&forged);
    let stored_index = airlock_audit::stored_hash_index(0, 7).unwrap();
    sqlx::query("UPDATE audit_entries SET entry = ? WHERE idx = 7")
        .bind(&forged)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_hashes SET hash = ? WHERE idx = ?")
        .bind(leaf.0.as_slice())
        .bind(stored_index as i64)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let (code, out) = verify_offline(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not match its signed checkpoint"),
        "{out}"
    );
}

#[tokio::test]
async fn metrics_cover_requests_bytes_and_the_log() {
    let s = server_with_history().await;
    // The log gauges are refreshed after each integration round.
    let mut text = String::new();
    for _ in 0..50 {
        text = s
            .http
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("airlock_audit_log_entries 16") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for needle in [
        "airlock_http_requests_total{route=\"v2_manifest\",method=\"PUT\",status=\"201\"} 2",
        "airlock_http_requests_total{route=\"v2_upload_start\",method=\"POST\",status=\"403\"} 1",
        "airlock_http_request_duration_seconds_bucket{route=\"v2_manifest\"",
        "airlock_registry_bytes_received_total",
        "airlock_audit_log_entries 16",
        "airlock_audit_checkpoint_age_seconds",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// Starts `airlock serve` over `dir`, expecting the refusal to name `problem`.
fn start_refused_naming(dir: &Path, problem: &str) {
    let (code, err) = common::serve_refused(dir, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(problem), "{err}");
    assert!(err.contains("restore the database from a backup"), "{err}");
}

#[tokio::test]
async fn a_log_whose_newest_checkpoint_was_dropped_is_refused_at_start() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query(
        "DELETE FROM audit_checkpoints WHERE size = (SELECT MAX(size) FROM audit_checkpoints)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    start_refused_naming(
        &dir,
        "newer checkpoints were removed while their hashes stayed",
    );
}

#[tokio::test]
async fn a_log_without_checkpoints_is_refused_at_start_and_by_verify() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query("DELETE FROM audit_checkpoints")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_hashes")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    start_refused_naming(
        &dir,
        "but no signed checkpoint: its checkpoints were deleted",
    );
    let (code, out) = verify_offline(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has no signed checkpoint"), "{out}");
    assert!(out.contains("Do not start airlock on it"), "{out}");
    assert!(!out.contains("start airlock once"), "{out}");
}

#[tokio::test]
async fn an_altered_signed_entry_at_the_tail_is_refused_at_start() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query("UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'push.refused', 'push.allowed') AS BLOB) WHERE idx = 15")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    start_refused_naming(
        &dir,
        "entry 15 does not match the hash the log committed to",
    );
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_refused_at_start() {
    let (s, dir) = stopped_history().await;
    let other = airlock_audit::LogKey::generate("airlock/other").unwrap();
    if common::distributed() {
        // The stored log key goes; the other key below is imported in its place at start.
        common::execute_on_database(&dir, "DELETE FROM server_keys WHERE purpose = 'log'", &[])
            .await;
        // The blob store's log identity marker still names the old log, so the start is
        // refused before any checkpoint is read (tests/it/log_identity.rs)...
        std::fs::write(dir.join("log-key"), other.private_text()).unwrap();
        let (code, err) = common::serve_refused(&dir, &[]);
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("log-identity.json"), "{err}");
        // ...and once the marker is deleted by hand (the documented way to begin a new log on
        // purpose), the checkpoints refuse the other key.
        common::blob_store_of(&s)
            .await
            .delete_path_for_tests(airlock_store::LOG_IDENTITY_PATH)
            .await
            .unwrap();
    } else {
        std::fs::remove_file(dir.join("log-key")).unwrap();
        std::fs::write(dir.join("log-key"), other.private_text()).unwrap();
    }
    start_refused_naming(&dir, "is not signed by the log key");
}

#[tokio::test]
async fn verify_require_signed_fails_on_entries_after_the_newest_checkpoint() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    let mut db = database(&dir).await;
    sqlx::query("INSERT INTO audit_entries (idx, entry, kind, time_millis) VALUES (16, CAST('{\"type\":\"forged\"}' AS BLOB), 'forged', 0)")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    // Without the flag the signed part verifies and the unsigned entry is only noted.
    let (code, out) = verify_offline(&dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 entries after the newest"), "{out}");
    let (code, out, err) = airlock_cli(&[
        "audit",
        "verify",
        "--data-dir",
        dir.to_str().unwrap(),
        "--require-signed",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("FAILED: 1 entries after the newest signed checkpoint (size 16) are covered by no signature"),
        "{err}"
    );
}

/// Polls `/readyz` until it answers `status` (at most 10 s); returns the body.
async fn readyz_becomes(s: &TestServer, status: u16) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let response = s.anonymous.get(s.url("/readyz")).send().await.unwrap();
        let now = response.status().as_u16();
        last = response.json().await.unwrap_or(Value::Null);
        if now == status {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("/readyz did not answer {status} within 10 s: {last}");
}

#[tokio::test]
async fn writes_stop_while_the_audit_log_cannot_be_signed_and_resume_after() {
    if common::embedded_only() {
        return;
    }
    let s = server_with_history().await;
    // A stored hash where the next integration must write one: every round now fails.
    let next = airlock_audit::stored_hash_count(16).unwrap() as i64;
    let mut db = database(&s.data_dir).await;
    sqlx::query("INSERT INTO audit_hashes (idx, hash) VALUES (?, zeroblob(32))")
        .bind(next)
        .execute(&mut db)
        .await
        .unwrap();
    s.push_blob("dev/team/app", b"appended, never signed").await;
    let body = readyz_becomes(&s, 503).await;
    let detail = body["checks"]["database_file"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("the audit log cannot sign new entries"),
        "{body}"
    );
    // /readyz needs no credentials: the database's error text stays in the server log.
    assert!(!detail.contains("constraint"), "{body}");
    let refused = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    // A login writes (its refresh token), so it is refused the same way, not with a 500.
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        home.path(),
        &["login", &s.base, "-u", "admin", "--password-stdin"],
        Some(common::ADMIN_PASSWORD),
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("503") && err.contains("writes are stopped"),
        "{err}"
    );
    // The log is checked offline instead, while the server runs.
    let data_dir = s.data_dir.to_str().unwrap();
    let (code, _, err) = airlock_cli(&[
        "audit",
        "verify",
        "--require-signed",
        "--data-dir",
        data_dir,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("covered by no signature"), "{err}");

    // Repaired: the integrator signs again and writes resume.
    sqlx::query("DELETE FROM audit_hashes WHERE idx = ?")
        .bind(next)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    readyz_becomes(&s, 200).await;
    s.push_blob("dev/team/app", b"after the repair").await;
    s.wait_for_checkpoint().await;
    let (code, out, err) = s.cli(&["audit", "verify", "--require-signed"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Offline verification reads the log a page at a time: a log of several pages verifies, and an
/// entry altered in a later page (not the first) is still found and named.
#[tokio::test]
async fn a_modified_entry_pages_into_a_long_log_is_detected_and_named() {
    if common::embedded_only() {
        return;
    }
    let (_s, dir) = stopped_history().await;
    // Forty thousand more entries, signed: more than two pages of the offline verifier.
    let metadata = airlock_store::Metadata::open_sqlite(&dir.join("metadata.db"))
        .await
        .unwrap();
    let actor = airlock_core::Actor {
        principal: "ci".into(),
        auth_method: "token".into(),
        source: None,
    };
    let records: Vec<airlock_core::AuditRecord> = (0..10_000)
        .map(|_| airlock_core::AuditRecord {
            time_millis: airlock_store::now_millis(),
            actor: actor.clone(),
            event: airlock_core::AuditEvent::PushRefused {
                repository: "prod/team/app".parse().unwrap(),
                action: airlock_core::Action::Push,
                reason: "stage prod is gated".into(),
            },
        })
        .collect();
    for _ in 0..4 {
        metadata.record_events(&records).await.unwrap();
    }
    let log = airlock_server::audit::AuditLog::open(metadata.clone(), &dir, "unused")
        .await
        .unwrap();
    while log.integrate().await.unwrap().is_some() {}
    metadata.close().await;
    let (code, out) = verify_offline(&dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("entries verified"), "{out}");

    let mut db = database(&dir).await;
    let (original,): (Vec<u8>,) =
        sqlx::query_as("SELECT entry FROM audit_entries WHERE idx = 35000")
            .fetch_one(&mut db)
            .await
            .unwrap();
    sqlx::query("UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'gated', 'open') AS BLOB) WHERE idx = 35000")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "entry 35000 was altered");

    // The entries intact, a stored leaf hash changed (what tiles would serve) in a later page:
    // named by its entry. Then one removed: named as missing.
    let mut db = database(&dir).await;
    sqlx::query("UPDATE audit_entries SET entry = ? WHERE idx = 35000")
        .bind(&original)
        .execute(&mut db)
        .await
        .unwrap();
    let leaf_of = |index: u64| airlock_audit::stored_hash_index(0, index).unwrap() as i64;
    sqlx::query("UPDATE audit_hashes SET hash = zeroblob(32) WHERE idx = ?")
        .bind(leaf_of(30_001))
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "entry 30001 was altered");

    let mut db = database(&dir).await;
    sqlx::query("DELETE FROM audit_hashes WHERE idx = ?")
        .bind(leaf_of(20_000))
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_offline_verify_fails_naming(&dir, "no stored leaf hash for entry 20000");
}
