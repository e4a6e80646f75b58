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
            meta.current_server_public_key(KeyPurpose::Log, None)
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

fn unauthenticated_row(result: Result<ServerKeySet, StoreError>, purpose: &str, key_id: &str) {
    match result {
        Err(StoreError::ServerKeyUnauthenticated {
            purpose: p,
            key_id: k,
            ..
        }) => assert_eq!((p, k.as_str()), (purpose, key_id)),
        other => panic!("expected ServerKeyUnauthenticated for {purpose} {key_id}, got {other:?}"),
    }
}

/// Runs `sql` with text `binds` on `meta`'s database.
async fn execute(meta: &Metadata, sql: &'static str, binds: &[&str]) {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.execute(meta.pool()).await.unwrap();
}

/// Every row is authenticated by its MAC: a public half swapped, an acceptance window extended,
/// a retired key revived, a row inserted (with or without a MAC copied from another row) and a
/// MAC cleared are each refused naming the row, by the full read and by the rotation; undoing
/// the change makes the keys readable again. The public half read for verifiers is checked too
/// when the KEK is given.
#[tokio::test]
async fn a_row_changed_or_added_without_the_kek_is_refused() {
    let kek = KeyEncryptionKey::new([1; 32]);
    for meta in crate::testing::engines().await {
        meta.install_server_keys(&kek, &first_keys(), &[])
            .await
            .unwrap();
        assert!(meta.server_keys(&kek).await.is_ok());

        // A forged public half for the retired token key (the one verifiers use).
        execute(
            &meta,
            "UPDATE server_keys SET public_key = 'attacker' WHERE key_id = 't0'",
            &[],
        )
        .await;
        unauthenticated_row(meta.server_keys(&kek).await, "token", "t0");
        execute(
            &meta,
            "UPDATE server_keys SET public_key = 'public t0' WHERE key_id = 't0'",
            &[],
        )
        .await;
        assert!(meta.server_keys(&kek).await.is_ok());

        // An extended acceptance window.
        execute(
            &meta,
            "UPDATE server_keys SET accepted_until = 9999999999999 WHERE key_id = 't0'",
            &[],
        )
        .await;
        unauthenticated_row(meta.server_keys(&kek).await, "token", "t0");
        execute(
            &meta,
            "UPDATE server_keys SET accepted_until = NULL WHERE key_id = 't0'",
            &[],
        )
        .await;

        // A retired key made current again (after the current one is moved aside).
        execute(
            &meta,
            "UPDATE server_keys SET retired_at = 1 WHERE key_id = 't1'",
            &[],
        )
        .await;
        execute(
            &meta,
            "UPDATE server_keys SET retired_at = NULL WHERE key_id = 't0'",
            &[],
        )
        .await;
        unauthenticated_row(meta.server_keys(&kek).await, "token", "t0");
        execute(
            &meta,
            "UPDATE server_keys SET retired_at = 5 WHERE key_id = 't0'",
            &[],
        )
        .await;
        execute(
            &meta,
            "UPDATE server_keys SET retired_at = NULL WHERE key_id = 't1'",
            &[],
        )
        .await;
        assert!(meta.server_keys(&kek).await.is_ok());

        // An inserted history row, first without a MAC, then with another row's.
        execute(
            &meta,
            "INSERT INTO server_keys (purpose, key_id, public_key, created_at, retired_at,
                                      accepted_until)
             VALUES ('token', 'forged', 'attacker', 1, 2, 9999999999999)",
            &[],
        )
        .await;
        unauthenticated_row(meta.server_keys(&kek).await, "token", "forged");
        // Other rows' MACs: the start's upgrade step does not authenticate the newcomer.
        let err = meta
            .authenticate_server_keys(&kek, |_| Vec::new())
            .await
            .err();
        assert!(
            matches!(&err, Some(StoreError::ServerKeyUnauthenticated { key_id, .. }) if key_id == "forged"),
            "{err:?}"
        );
        execute(
            &meta,
            "UPDATE server_keys SET mac = (SELECT mac FROM server_keys WHERE key_id = 't0')
             WHERE key_id = 'forged'",
            &[],
        )
        .await;
        unauthenticated_row(meta.server_keys(&kek).await, "token", "forged");
        execute(
            &meta,
            "DELETE FROM server_keys WHERE key_id = 'forged'",
            &[],
        )
        .await;
        assert!(meta.server_keys(&kek).await.is_ok());

        // A cleared MAC on the current log key: refused by the read, the verifier's public
        // half (with the KEK) and a rotation of another purpose is unaffected.
        let log_mac: Vec<u8> =
            sqlx::query_scalar("SELECT mac FROM server_keys WHERE key_id = 'l1'")
                .fetch_one(meta.pool())
                .await
                .unwrap();
        execute(
            &meta,
            "UPDATE server_keys SET mac = NULL WHERE key_id = 'l1'",
            &[],
        )
        .await;
        let err = meta.server_keys(&kek).await;
        let message = err
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            message.contains("log key l1") && message.contains("no MAC"),
            "{message}"
        );
        unauthenticated_row(err, "log", "l1");
        assert!(matches!(
            meta.current_server_public_key(KeyPurpose::Log, Some(&kek))
                .await,
            Err(StoreError::ServerKeyUnauthenticated { .. })
        ));
        assert_eq!(
            meta.current_server_public_key(KeyPurpose::Log, None)
                .await
                .unwrap()
                .as_deref(),
            Some("public l1")
        );
        sqlx::query("UPDATE server_keys SET mac = $1 WHERE key_id = 'l1'")
            .bind(log_mac)
            .execute(meta.pool())
            .await
            .unwrap();
        assert_eq!(
            meta.current_server_public_key(KeyPurpose::Log, Some(&kek))
                .await
                .unwrap()
                .as_deref(),
            Some("public l1")
        );

        // A rotation does not re-authenticate a changed current row.
        execute(
            &meta,
            "UPDATE server_keys SET public_key = 'attacker' WHERE key_id = 'a1'",
            &[],
        )
        .await;
        let next = key(KeyPurpose::Attestation, "a2", Some("next"));
        let err = meta
            .rotate_server_key(&kek, &next, None, |_| Vec::new())
            .await
            .err();
        assert!(
            matches!(&err, Some(StoreError::ServerKeyUnauthenticated { key_id, .. }) if key_id == "a1"),
            "{err:?}"
        );
        execute(
            &meta,
            "UPDATE server_keys SET public_key = 'public a1' WHERE key_id = 'a1'",
            &[],
        )
        .await;
        meta.rotate_server_key(&kek, &next, None, |_| Vec::new())
            .await
            .unwrap();
        assert_eq!(
            meta.server_keys(&kek)
                .await
                .unwrap()
                .current(KeyPurpose::Attestation)
                .unwrap()
                .key_id,
            "a2"
        );
    }
}

/// Writes `first_keys()` as a binary before migration 22 did: sealed, without MACs.
async fn insert_unauthenticated_keys(pool: &sqlx::AnyPool, kek: &KeyEncryptionKey) {
    for key in first_keys() {
        let sealed = key
            .private_key
            .as_ref()
            .map(|p| sealing::seal(kek, key.purpose, &key.key_id, p.as_bytes()).unwrap());
        sqlx::query(
            "INSERT INTO server_keys
             (purpose, key_id, public_key, sealed_private, created_at, retired_at, accepted_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.purpose.as_str())
        .bind(&key.key_id)
        .bind(&key.public_key)
        .bind(sealed)
        .bind(key.created_at)
        .bind(key.retired_at)
        .bind(key.accepted_until)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE server_keys_version SET version = 1 WHERE id = 1")
        .execute(pool)
        .await
        .unwrap();
}

/// After migration 22 over keys written at schema 21: they are refused until authenticated;
/// a wrong KEK authenticates nothing; the right one gives every row its MAC once, with one
/// audit entry carrying the count, and a second call does nothing.
async fn keys_of_schema_21_are_authenticated_once(meta: &Metadata, kek: &KeyEncryptionKey) {
    unauthenticated_row(meta.server_keys(kek).await, "attestation", "a1");
    let wrong = KeyEncryptionKey::new([9; 32]);
    assert!(matches!(
        meta.authenticate_server_keys(&wrong, |_| Vec::new()).await,
        Err(StoreError::SealedKey { .. })
    ));
    let before = meta.audit_entry_count().await.unwrap();
    let mut counted = None;
    let count = meta
        .authenticate_server_keys(kek, |count| {
            counted = Some(count);
            vec![imported(KeyPurpose::Log, "l1").1]
        })
        .await
        .unwrap();
    assert_eq!((count, counted), (4, Some(4)));
    assert_eq!(meta.audit_entry_count().await.unwrap(), before + 1);
    let set = meta.server_keys(kek).await.unwrap();
    assert_eq!(set.keys.len(), 4);
    assert_eq!(
        set.current(KeyPurpose::Token)
            .unwrap()
            .private_key
            .as_deref(),
        Some("token private")
    );
    assert_eq!(
        meta.authenticate_server_keys(kek, |_| panic!("authenticated twice"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(meta.audit_entry_count().await.unwrap(), before + 1);
}

/// Migration 22 over a SQLite database at schema 21 holding keys (and other rows).
#[tokio::test]
async fn migration_0022_applies_over_keys_stored_at_0021() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let kek = KeyEncryptionKey::new([3; 32]);
    {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        migrator(crate::Backend::Sqlite)
            .run_to(21, &pool)
            .await
            .unwrap();
        insert_unauthenticated_keys(&pool, &kek).await;
        pool.close().await;
    }
    let meta = Metadata::open_sqlite(&path).await.unwrap();
    keys_of_schema_21_are_authenticated_once(&meta, &kek).await;
}

/// The same on PostgreSQL.
#[tokio::test]
async fn postgres_migration_0022_applies_over_keys_stored_at_0021() {
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
        .run_to(21, &pool)
        .await
        .unwrap();
    let kek = KeyEncryptionKey::new([3; 32]);
    insert_unauthenticated_keys(&pool, &kek).await;
    pool.close().await;
    let meta = Metadata::open_postgres(&database.url).await.unwrap();
    keys_of_schema_21_are_authenticated_once(&meta, &kek).await;
    meta.close().await;
}
