//! Every SQLite migration applied over a database that holds data in every table the earlier
//! migrations made: the database is brought up one version at a time, rows written at each
//! version as that version's schema stores them, and after the last migration every row is read
//! back through the store's own API. (0009, 0012, 0013, 0015, 0017 and 0018 also have their own
//! focused tests beside the code they serve.)

use std::str::FromStr as _;

use airlock_core::{Digest, RepoName, Tag};
use sqlx::SqlitePool;

use crate::Metadata;

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn manifest_digest() -> String {
    Digest::sha256_of(MANIFEST.as_bytes()).to_string()
}

const CONFIG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const UPLOAD: &str = "6f1c1e8e-8f7b-4b43-9d0a-2a3c4c5d6e7f";

async fn run(pool: &SqlitePool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The rows written at `version`, in that version's schema.
async fn populate(pool: &SqlitePool, version: i64) {
    let manifest = manifest_digest();
    match version {
        1 => {
            run(pool, &format!(
                "INSERT INTO blobs (digest, size, created_at) VALUES ('{CONFIG}', 2, 1);
                 INSERT INTO repositories (name, created_at) VALUES ('dev/team/app', 1);
                 INSERT INTO repository_blobs (repository, digest, created_at) VALUES ('dev/team/app', '{CONFIG}', 1);
                 INSERT INTO manifests (digest, media_type, artifact_type, subject, annotations, size, content, created_at)
                   VALUES ('{manifest}', 'application/vnd.oci.image.manifest.v1+json', NULL, NULL, '{{}}', {}, CAST('{MANIFEST}' AS BLOB), 1);
                 INSERT INTO manifest_references (digest, child, kind) VALUES ('{manifest}', '{CONFIG}', 'blob');
                 INSERT INTO repository_manifests (repository, digest, subject, created_at) VALUES ('dev/team/app', '{manifest}', NULL, 1);
                 INSERT INTO tags (repository, name, digest, updated_at) VALUES ('dev/team/app', 'v1', '{manifest}', 1);
                 INSERT INTO uploads (id, repository, size, chunks, created_at, updated_at) VALUES ('{UPLOAD}', 'dev/team/app', 0, 0, 1, 1);",
                MANIFEST.len()
            )).await;
        }
        2 => {
            run(pool,
                "INSERT INTO audit_entries (idx, entry, kind, time_millis) VALUES (0, CAST('{\"subject\":{\"digest\":\"sha256:0a\",\"kind\":\"artifact\"},\"type\":\"manifest.pushed\"}' AS BLOB), 'manifest.pushed', 2);
                 INSERT INTO audit_entries (idx, entry, kind, time_millis) VALUES (1, CAST('{\"type\":\"push.refused\"}' AS BLOB), 'push.refused', 2);
                 INSERT INTO audit_hashes (idx, hash) VALUES (0, zeroblob(32));
                 INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES (1, zeroblob(32), 'note', 2);",
            ).await;
        }
        3 => {
            run(pool,
                "INSERT INTO principals (id, name, kind, disabled, authz_epoch, created_at, created_by) VALUES (7, 'alice', 'user', 0, 3, 3, 'admin');
                 INSERT INTO credentials (id, principal_id, kind, secret_hash, expires_at, revoked_at, created_at) VALUES ('pw_alice', 7, 'password', '$argon2id$old', NULL, NULL, 3);
                 INSERT INTO role_bindings (id, principal_id, role, scope, expires_at, granted_by, access_request_id, created_at) VALUES (1, 7, 'promoter', 'team/*', NULL, 'admin', NULL, 3);
                 INSERT INTO access_requests (id, principal_id, role, scope, duration_secs, reason, status, decided_by, decided_at, created_at) VALUES (1, 7, 'approver', 'team/*', 3600, 'release', 'pending', NULL, NULL, 3);
                 INSERT INTO auth_failures (principal, source, minute, count) VALUES ('alice', '10.0.0.1', 5, 2);",
            ).await;
        }
        4 => {
            run(pool, &format!(
                "INSERT INTO trusted_keys (key_id, name, algorithm, public_key, purposes, scope, not_before, not_after, status, status_at, status_reason, compromised, created_at, created_by)
                   VALUES ('abcd', 'ci', 'ecdsa-p256-sha256', 'PEM', '[\"sign\"]', '[\"team/*\"]', NULL, NULL, 'active', NULL, NULL, 0, 4, 'kim');
                 UPDATE keyring_version SET version = 3 WHERE id = 1;
                 INSERT INTO evidence (id, repository_path, subject, item, format, source, repository, manifest, blob, signature, status, kind, reason_code, reason, key_id, key_name, predicate_type, facts, keyring_version, first_seen_at, verified_at, pushed_by)
                   VALUES (1, 'team/app', '{manifest}', 'sha256:item', 'cosign', 'tag', 'dev/team/app', NULL, '{CONFIG}', 'c2ln', 'verified', 'signature', NULL, NULL, 'abcd', 'ci', NULL, NULL, 3, 4, 4, 'ci-bot');
                 INSERT INTO evidence_manifests (repository, digest, ingested_at) VALUES ('dev/team/app', '{manifest}', 4);
                 INSERT INTO artifact_flags (repository, digest, flag, reason, created_at) VALUES ('dev/team/app', '{manifest}', 'evidence_revoked', 'key revoked', 4);"
            )).await;
        }
        5 => {
            run(pool, &format!(
                "INSERT INTO promotions (id, repository_path, digest, source_stage, target_stage, tags, channel, state, requested_by, requester, approvals_required, break_glass, last_decision, attestation, created_at, expires_at, decided_at)
                   VALUES ('prm_old', 'team/app', '{manifest}', 'dev', 'staging', '[\"v1\"]', NULL, 'pending_approval', 'alice', '{{}}', 1, NULL, 'dec_old', NULL, 5, 999999, NULL);
                 INSERT INTO approvals (promotion_id, principal, comment, created_at) VALUES ('prm_old', 'bob', 'ok', 5);
                 INSERT INTO decisions (id, promotion_id, action, query, bundle_digest, input, result, allowed, created_at)
                   VALUES ('dec_old', 'prm_old', 'promote', 'data.airlock.gates.staging', 'sha256:b', '{{}}', '{{\"allowed\":false}}', 0, 5);
                 INSERT INTO policy_bundles (digest, files, created_at) VALUES ('sha256:b', '[[\"gates.rego\",\"package x\"]]', 5);
                 INSERT INTO channel_history (id, repository, tag, digest, promotion_id, action, moved_by, moved_at)
                   VALUES (1, 'staging/team/app', 'stable', '{manifest}', 'prm_old', 'promote', 'alice', 5);
                 INSERT INTO stage_freezes (stage, reason, frozen_by, frozen_at) VALUES ('prod', 'release week', 'rm', 5);"
            )).await;
        }
        6 => {
            run(pool,
                "INSERT INTO anomaly_signals (rule, key, at) VALUES ('auth_failures', 'alice', 6);
                 INSERT INTO anomalies (id, rule, key, action, applied, summary, target, observed, threshold, window_secs, status, created_at, resolved_at, resolved_by, resolution)
                   VALUES (1, 'auth_failures', 'alice', 'lock_principal', 1, '5 failures', '{\"principal\":\"alice\"}', 5, 5, 60, 'open', 6, NULL, NULL, NULL);
                 INSERT INTO principal_locks (principal, anomaly_id, created_at) VALUES ('alice', 1, 6);
                 UPDATE principals SET locked_by = 1 WHERE name = 'alice';",
            ).await;
        }
        7 => {
            run(pool,
                "INSERT INTO webhook_endpoints (id, url, events, secret, created_by, created_at, removed_at)
                   VALUES (1, 'https://hooks.example/airlock', '[\"promotion.*\"]', zeroblob(32), 'admin', 7, NULL);
                 INSERT INTO webhook_deliveries (id, endpoint_id, event_type, subject, audit_index, data, time_millis, status, attempts, next_attempt_at, lease_until, last_status, last_error, created_at, delivered_at)
                   VALUES (1, 1, 'tag.moved', 'dev/team/app', 0, NULL, 7, 'pending', 0, 7, NULL, NULL, NULL, 7, NULL);",
            ).await;
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_migration_applies_over_a_database_holding_data_in_every_earlier_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    let migrator = crate::metadata::migrator(crate::Backend::Sqlite);
    let last = migrator.iter().map(|m| m.version).max().unwrap();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        // Up to the version before the last: each step applies one migration over the rows
        // written so far, then writes the rows that version's schema adds. The last migration
        // is applied by opening the store, as a new binary does.
        for version in 1..last {
            migrator
                .run_to(version, &pool)
                .await
                .unwrap_or_else(|e| panic!("migration {version} over a populated database: {e}"));
            populate(&pool, version).await;
        }
        pool.close().await;
    }
    let meta = Metadata::open_sqlite(&path).await.unwrap();

    // 0001: the registry.
    let repo = RepoName::from_str("dev/team/app").unwrap();
    let manifest = Digest::from_str(&manifest_digest()).unwrap();
    assert_eq!(
        meta.resolve_tag(&repo, &Tag::from_str("v1").unwrap())
            .await
            .unwrap(),
        Some(manifest.clone())
    );
    let stored = meta.manifest(&repo, &manifest).await.unwrap().unwrap();
    assert_eq!(stored.content, MANIFEST.as_bytes());
    assert_eq!(
        meta.blob_size(&Digest::from_str(CONFIG).unwrap())
            .await
            .unwrap(),
        Some(2)
    );
    let upload = meta
        .upload(uuid::Uuid::from_str(UPLOAD).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(upload.size, 0);

    // 0002 and 0016: the audit log, filtered by kind through 0016's index.
    assert_eq!(meta.audit_entry_count().await.unwrap(), 2);
    assert_eq!(meta.latest_checkpoint().await.unwrap().unwrap().size, 1);
    let refused = meta
        .audit_entries_filtered(0, None, Some("push."), 10)
        .await
        .unwrap();
    assert_eq!(refused.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
    // 0028: entries found by their subject's digest, including those written before it.
    let about = meta.audit_entries_about("sha256:0a", 10).await.unwrap();
    assert_eq!(about.iter().map(|e| e.index).collect::<Vec<_>>(), vec![0]);
    // 0029: the verification version starts at 0 and moves with the next change it watches;
    // 0030: no deployment was reported before.
    let version = meta.verify_version().await.unwrap();
    assert_eq!(version, 0);
    sqlx::query("UPDATE keyring_version SET version = version WHERE id = 1")
        .execute(meta.pool())
        .await
        .unwrap();
    assert!(meta.verify_version().await.unwrap() > version);
    assert!(
        meta.deployments_page(None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // 0031: no witness has cosigned yet, and this installation witnesses no log yet.
    assert!(meta.witness_statuses().await.unwrap().is_empty());
    assert!(meta.cosignatures(0).await.unwrap().is_empty());
    assert_eq!(meta.witnessed_log("any.test/log").await.unwrap(), None);
    // 0032: provenance read newest first by repository path, over evidence stored before it.
    assert!(
        meta.recent_provenance("team/app", 10)
            .await
            .unwrap()
            .iter()
            .all(|row| row.verdict.status == "verified")
    );

    // 0003: access.
    let alice = meta.principal_by_name("alice").await.unwrap().unwrap();
    assert_eq!((alice.id, alice.authz_epoch), (7, 3));
    let bindings = meta.bindings(7).await.unwrap();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].role, "promoter");
    assert_eq!(
        meta.credential("pw_alice")
            .await
            .unwrap()
            .unwrap()
            .secret_hash,
        "$argon2id$old"
    );
    assert_eq!(
        meta.access_requests(Some("pending")).await.unwrap().len(),
        1
    );

    // 0004: the keyring and evidence.
    let (version, keys) = meta.keyring().await.unwrap();
    assert_eq!(version, 3);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].purposes, ["sign"]);
    let evidence = meta
        .evidence_for("team/app", &manifest.to_string())
        .await
        .unwrap();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].verdict.status, "verified");
    assert_eq!(evidence[0].verdict.key_name.as_deref(), Some("ci"));

    // 0005 (and 0010's promotion integrity columns, 0017's decision actions): promotions.
    let promotion = meta.promotion("prm_old").await.unwrap().unwrap();
    assert_eq!(
        promotion.state,
        airlock_core::PromotionState::PendingApproval
    );
    assert_eq!(promotion.tags, ["v1".parse::<Tag>().unwrap()]);
    assert_eq!(meta.approvals("prm_old").await.unwrap().len(), 1);
    assert!(!meta.decision("dec_old").await.unwrap().unwrap().allowed);
    assert!(meta.bundle_files("sha256:b").await.unwrap().is_some());
    assert_eq!(
        meta.channel_history("staging/team/app", "stable")
            .await
            .unwrap()
            .len(),
        1
    );
    // A manifest pushed before 0005 has no recorded pusher.
    assert_eq!(
        meta.pushed_by("dev/team/app", &manifest.to_string())
            .await
            .unwrap(),
        None
    );
    let freezes = meta.freezes().await.unwrap();
    assert_eq!(freezes.len(), 1);
    assert_eq!(freezes[0].stage.as_str(), "prod");

    // 0006: anomalies.
    let anomaly = meta.anomaly(1).await.unwrap().unwrap();
    assert_eq!(anomaly.status, "open");
    assert_eq!(anomaly.target.principal.as_deref(), Some("alice"));

    // 0007 (and 0015's CA column): webhooks.
    let hooks = meta.webhooks().await.unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].ca_cert, None);
    let deliveries = meta.deliveries(1, Some("pending"), 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].audit_index, Some(0));
}
