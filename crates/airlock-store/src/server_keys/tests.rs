use std::borrow::Cow;

use airlock_core::{Actor, AuditEvent, AuditRecord};
use sqlx::migrate::Migration;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::*;
use crate::metadata::migrator;

fn key(purpose: KeyPurpose, id: &str, private: Option<&str>) -> ServerKeyRecord {
    ServerKeyRecord {
        purpose,
        key_id: id.into(),
        public_key: format!("public {id}"),
        private_key: private.map(String::from),
        created_at: 10,
        retired_at: private.is_none().then_some(5),
        accepted_until: None,
    }
}

fn imported(purpose: KeyPurpose, id: &str) -> (KeyPurpose, AuditRecord) {
    (
        purpose,
        AuditRecord {
            time_millis: 1,
            actor: Actor::system(),
            event: AuditEvent::ServerKeyImported {
                key: purpose.as_str().into(),
                key_id: id.into(),
                file: "log-key".into(),
            },
        },
    )
}

fn first_keys() -> Vec<ServerKeyRecord> {
    vec![
        key(KeyPurpose::Log, "l1", Some("log private")),
        key(KeyPurpose::Token, "t0", None),
        key(KeyPurpose::Token, "t1", Some("token private")),
        key(KeyPurpose::Attestation, "a1", Some("attestation private")),
    ]
}

/// Keys are installed once per purpose (a second replica's install changes nothing), read back
/// with their private halves under the same KEK, and a rotation retires the old key (dropping
/// its private half), moves the version and appends its audit entry in the same transaction.
#[tokio::test]
async fn keys_install_once_and_rotate_with_the_version() {
    let kek = KeyEncryptionKey::new([1; 32]);
    for meta in crate::testing::engines().await {
        assert_eq!(meta.server_keys_version().await.unwrap(), 0);
        let installed = meta
            .install_server_keys(&kek, &first_keys(), &[imported(KeyPurpose::Log, "l1")])
            .await
            .unwrap();
        assert_eq!(installed, KeyPurpose::ALL);
        assert_eq!(meta.audit_entry_count().await.unwrap(), 1);
        let other = vec![key(KeyPurpose::Log, "l2", Some("another"))];
        assert!(
            meta.install_server_keys(&kek, &other, &[imported(KeyPurpose::Log, "l2")])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(meta.audit_entry_count().await.unwrap(), 1);
        assert_eq!(
            meta.current_server_public_key(KeyPurpose::Log)
                .await
                .unwrap()
                .as_deref(),
            Some("public l1")
        );
        let set = meta.server_keys(&kek).await.unwrap();
        assert_eq!(set.version, 1);
        assert_eq!(set.keys.len(), 4);
        let log = set.current(KeyPurpose::Log).unwrap();
        assert_eq!(log.private_key.as_deref(), Some("log private"));
        assert_eq!(
            set.retired(KeyPurpose::Token)
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>(),
            ["t0"]
        );

        let mut next = key(KeyPurpose::Token, "t2", Some("newer"));
        next.created_at = 20;
        let old = meta
            .rotate_server_key(&kek, &next, Some(99), |old| {
                vec![AuditRecord {
                    time_millis: 20,
                    actor: Actor::system(),
                    event: AuditEvent::ServerKeyRotated {
                        key: "token".into(),
                        old_key_id: old.into(),
                        new_key_id: "t2".into(),
                        old_accepted_until_millis: Some(99),
                    },
                }]
            })
            .await
            .unwrap();
        assert_eq!(old, "t1");
        assert_eq!(meta.audit_entry_count().await.unwrap(), 2);
        let set = meta.server_keys(&kek).await.unwrap();
        assert_eq!(set.version, 2);
        assert_eq!(set.current(KeyPurpose::Token).unwrap().key_id, "t2");
        let t1 = set.keys.iter().find(|k| k.key_id == "t1").unwrap();
        assert_eq!(
            (t1.retired_at, t1.accepted_until, t1.private_key.is_none()),
            (Some(20), Some(99), true)
        );
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sealed_private FROM server_keys WHERE key_id = 't1'")
                .fetch_one(meta.pool())
                .await
                .unwrap();
        assert!(sealed.is_none(), "a retired key keeps no private half");
    }
}

async fn sealed_of(meta: &Metadata, key_id: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT sealed_private FROM server_keys WHERE key_id = $1")
        .bind(key_id)
        .fetch_one(meta.pool())
        .await
        .unwrap()
}

async fn set_sealed(meta: &Metadata, key_id: &str, sealed: Vec<u8>) {
    sqlx::query("UPDATE server_keys SET sealed_private = $1 WHERE key_id = $2")
        .bind(sealed)
        .bind(key_id)
        .execute(meta.pool())
        .await
        .unwrap();
}

fn refused(result: Result<ServerKeySet, StoreError>, purpose: &str, key_id: &str) {
    match result {
        Err(StoreError::SealedKey {
            purpose: p,
            key_id: k,
        }) => {
            assert_eq!((p, k.as_str()), (purpose, key_id));
        }
        other => panic!("expected SealedKey for {purpose} {key_id}, got {other:?}"),
    }
}

/// What is stored is sealed: the private half is not in the row in clear, another KEK opens
/// nothing, one changed byte is refused, and sealed bytes moved to another key's row (another
/// purpose and id in the additional data) are refused; the error carries no key material.
#[tokio::test]
async fn sealed_keys_refuse_another_kek_a_changed_byte_and_another_row() {
    let kek = KeyEncryptionKey::new([1; 32]);
    for meta in crate::testing::engines().await {
        meta.install_server_keys(&kek, &first_keys(), &[])
            .await
            .unwrap();
        let sealed = sealed_of(&meta, "t1").await;
        assert!(
            !sealed
                .windows(b"token private".len())
                .any(|w| w == b"token private"),
            "the private half is stored in clear"
        );

        let wrong = KeyEncryptionKey::new([2; 32]);
        refused(meta.server_keys(&wrong).await, "attestation", "a1");

        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        set_sealed(&meta, "t1", tampered).await;
        let err = meta.server_keys(&kek).await;
        refused(err, "token", "t1");
        set_sealed(&meta, "t1", sealed.clone()).await;
        assert!(meta.server_keys(&kek).await.is_ok());

        // The token key's sealed bytes in the attestation key's row.
        let attestation = sealed_of(&meta, "a1").await;
        set_sealed(&meta, "a1", sealed.clone()).await;
        let err = meta.server_keys(&kek).await.unwrap_err();
        assert!(!err.to_string().contains("private"), "{err}");
        refused(Err(err), "attestation", "a1");
        set_sealed(&meta, "a1", attestation).await;
        assert_eq!(
            meta.server_keys(&kek)
                .await
                .unwrap()
                .current(KeyPurpose::Attestation)
                .unwrap()
                .private_key
                .as_deref(),
            Some("attestation private")
        );
    }
}

/// Migration 19 over a populated schema 18: the key tables start empty at version 0 and the
/// rows already there stay.
#[tokio::test]
async fn migration_0019_applies_over_a_populated_0018_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        let mut before = migrator(crate::Backend::Sqlite);
        let previous: Vec<Migration> = before
            .migrations
            .iter()
            .filter(|m| m.version < 19)
            .cloned()
            .collect();
        before.migrations = Cow::Owned(previous);
        before.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, linked_at) VALUES ('sha256:00', 3, 1, 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let meta = Metadata::open_sqlite(&path).await.unwrap();
    let blobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
        .fetch_one(meta.pool())
        .await
        .unwrap();
    assert_eq!(blobs, 1);
    assert_eq!(meta.server_keys_version().await.unwrap(), 0);
    let kek = KeyEncryptionKey::new([3; 32]);
    assert!(meta.server_keys(&kek).await.unwrap().keys.is_empty());
    meta.install_server_keys(&kek, &first_keys(), &[])
        .await
        .unwrap();
    assert_eq!(meta.server_keys_version().await.unwrap(), 1);
}

/// The same on PostgreSQL: its migration 19 over a schema at 18 with rows in it.
#[tokio::test]
async fn postgres_migration_0019_applies_over_a_populated_0018_database() {
    let Some(admin) = crate::testing::postgres_admin_url() else {
        return;
    };
    let database = crate::testing::create_database(&admin).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await
        .unwrap();
    migrator(crate::Backend::Postgres)
        .run_to(18, &pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO blobs (digest, size, created_at, linked_at) VALUES ('sha256:00', 3, 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let meta = Metadata::open_postgres(&database.url).await.unwrap();
    let blobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
        .fetch_one(meta.pool())
        .await
        .unwrap();
    assert_eq!(blobs, 1);
    let kek = KeyEncryptionKey::new([3; 32]);
    meta.install_server_keys(&kek, &first_keys(), &[])
        .await
        .unwrap();
    assert_eq!(meta.server_keys(&kek).await.unwrap().version, 1);
    meta.close().await;
}
