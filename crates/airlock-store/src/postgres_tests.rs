//! Store tests of what is PostgreSQL's own: its migrations, the schema checks on it, and the
//! advisory lock that serialises writers across processes. Each runs when
//! `AIRLOCK_TEST_POSTGRES_URL` is set (see `testing`) and returns otherwise.

use std::str::FromStr;

use airlock_core::{Action, Actor, AuditEvent, AuditRecord, Digest, RepoName};
use sqlx::any::AnyPoolOptions;

use crate::testing::{create_database, create_database_with, postgres_admin_url};
use crate::{Backend, Metadata, StoreError};

/// Stores a one-config image in `repo` (a repository holding a manifest).
async fn image(meta: &Metadata, repo: &RepoName, seed: usize) {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let config = format!("{{\"seed\":{seed}}}");
    let config_digest = Digest::sha256_of(config.as_bytes());
    meta.commit_blob(repo, &config_digest, config.len() as u64, &[])
        .await
        .unwrap();
    let content = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":{}}},\"layers\":[]}}",
        config.len()
    );
    let digest = Digest::sha256_of(content.as_bytes());
    let parsed = airlock_core::ParsedManifest::parse(Some(MANIFEST), content.as_bytes()).unwrap();
    meta.put_manifest(
        repo,
        crate::ManifestUpload {
            digest: &digest,
            manifest: &parsed,
            content: content.as_bytes(),
        },
        None,
        "tester",
        |_| Ok(vec![]),
    )
    .await
    .unwrap();
}

fn refused(repository: &str, at: i64) -> AuditRecord {
    AuditRecord {
        time_millis: at,
        actor: Actor::system(),
        event: AuditEvent::PushRefused {
            repository: repository.parse().unwrap(),
            action: Action::Push,
            reason: "gated".into(),
        },
    }
}

/// Migrations 0001..0017 applied to an empty PostgreSQL database, rows written into the main
/// tables as the release at 0017 wrote them, then 0018 and the rest applied by opening the
/// store: every row reads back through the store, and the schema accepts what 0017 allowed.
#[tokio::test]
async fn postgres_migrations_apply_in_order_and_keep_the_rows_of_the_main_tables() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = create_database(&admin).await;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await
        .unwrap();
    crate::metadata::migrator(Backend::Postgres)
        .run_to(17, &pool)
        .await
        .unwrap();
    let layer = Digest::sha256_of(b"layer");
    let manifest = Digest::sha256_of(b"{}");
    for (sql, binds) in [
        (
            "INSERT INTO repositories (name, created_at) VALUES ('dev/team/app', 1)",
            vec![],
        ),
        (
            "INSERT INTO blobs (digest, size, created_at) VALUES ($1, 5, 2)",
            vec![layer.to_string()],
        ),
        (
            "INSERT INTO repository_blobs (repository, digest, created_at) VALUES ('dev/team/app', $1, 2)",
            vec![layer.to_string()],
        ),
        (
            "INSERT INTO manifests (digest, media_type, annotations, size, content, created_at)
             VALUES ($1, 'application/vnd.oci.image.manifest.v1+json', '{}', 2, '\\x7b7d'::bytea, 3)",
            vec![manifest.to_string()],
        ),
        (
            "INSERT INTO manifest_references (digest, child, kind) VALUES ($1, $2, 'blob')",
            vec![manifest.to_string(), layer.to_string()],
        ),
        (
            "INSERT INTO repository_manifests (repository, digest, created_at, pushed_by)
             VALUES ('dev/team/app', $1, 3, 'pat')",
            vec![manifest.to_string()],
        ),
        (
            "INSERT INTO tags (repository, name, digest, updated_at) VALUES ('dev/team/app', '1.0', $1, 4)",
            vec![manifest.to_string()],
        ),
        (
            "INSERT INTO principals (name, kind, created_at, created_by, password_must_change)
             VALUES ('pat', 'user', 5, 'admin', 1)",
            vec![],
        ),
        (
            "INSERT INTO promotions (id, repository_path, digest, source_stage, target_stage, tags,
             state, requested_by, requester, created_at, expires_at)
             VALUES ('p1', 'team/app', $1, 'dev', 'staging', '[\"1.0\"]', 'denied', 'pat', '{}', 6, 7)",
            vec![manifest.to_string()],
        ),
        (
            "INSERT INTO decisions (id, promotion_id, action, query, bundle_digest, input, result,
             allowed, created_at) VALUES ('d1', 'p1', 'reject', '', '', '{}', '{}', 0, 8)",
            vec![],
        ),
    ] {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            query = query.bind(bind);
        }
        query.execute(&pool).await.unwrap();
    }
    pool.close().await;

    let meta = Metadata::open_postgres(&database.url).await.unwrap();
    assert_eq!(meta.backend(), Backend::Postgres);
    let repo = RepoName::from_str("dev/team/app").unwrap();
    assert_eq!(meta.tags(&repo, 10, None).await.unwrap(), ["1.0"]);
    let stored = meta.manifest(&repo, &manifest).await.unwrap().unwrap();
    assert_eq!(stored.content, b"{}");
    let pat = meta.principal_by_name("pat").await.unwrap().unwrap();
    assert!(pat.password_must_change);
    let promotion = meta.promotion("p1").await.unwrap().unwrap();
    assert_eq!(
        (promotion.state.as_str(), promotion.tags),
        ("denied", vec!["1.0".parse().unwrap()])
    );
    // 0018's blob link time was filled from the creation time, and the blob is still linked.
    let linked: i64 = sqlx::query_scalar("SELECT linked_at FROM blobs WHERE digest = $1")
        .bind(layer.to_string())
        .fetch_one(meta.pool())
        .await
        .unwrap();
    assert_eq!(linked, 2);
    // The store writes through the migrated schema: an audited commit lands after the rows.
    meta.commit_blob(&repo, &layer, 5, &[refused("dev/team/app", 9)])
        .await
        .unwrap();
    assert_eq!(meta.audit_entry_count().await.unwrap(), 1);
    // The append-only record refuses changes on PostgreSQL too (its trigger).
    sqlx::query(
        "INSERT INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
         VALUES ('team/app', 'sha256:00', 'pat', 'push', 1)",
    )
    .execute(meta.pool())
    .await
    .unwrap();
    let deleted = sqlx::query("DELETE FROM artifact_contributors")
        .execute(meta.pool())
        .await
        .unwrap_err();
    assert!(deleted.to_string().contains("append-only"), "{deleted}");
    meta.close().await;
}

/// A database migrated by a newer binary is refused on PostgreSQL as on SQLite, and the refusal
/// writes nothing.
#[tokio::test]
async fn a_postgres_database_migrated_by_a_newer_binary_is_refused() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = create_database(&admin).await;
    let meta = Metadata::open_postgres(&database.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from a newer release', TRUE, '\\x00'::bytea, 1)",
    )
    .execute(meta.pool())
    .await
    .unwrap();
    meta.close().await;
    for _ in 0..2 {
        match Metadata::open_postgres(&database.url).await {
            Err(StoreError::SchemaTooNew { database, .. }) => assert_eq!(database, 9999),
            Err(other) => panic!("expected SchemaTooNew, got {other:?}"),
            Ok(_) => panic!("the database opened"),
        }
    }
}

/// Two stores on one PostgreSQL database (two replicas) appending audit entries at once: the
/// advisory lock serialises their write transactions, so the log's indexes stay gap-free and
/// unique and no append fails.
#[tokio::test]
async fn writers_in_two_processes_serialise_on_the_advisory_lock() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = create_database(&admin).await;
    let first = Metadata::open_postgres(&database.url).await.unwrap();
    let second = Metadata::open_postgres(&database.url).await.unwrap();
    let repo = RepoName::from_str("dev/team/app").unwrap();
    let mut tasks = Vec::new();
    for n in 0..40_i64 {
        let meta = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let blob = Digest::sha256_of(format!("blob {n}").as_bytes());
            meta.commit_blob(&repo, &blob, 6, &[refused("dev/team/app", n)])
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let entries = first.audit_entries(0, 100).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (0..40).collect::<Vec<u64>>());
    first.close().await;
    second.close().await;
}

/// On a database whose default collation is a language's (ICU `en-US`, which orders punctuation
/// its own way), names still compare byte by byte as on SQLite: the tables' text is `COLLATE "binary"`,
/// so a prefix range and its cursor pages hold exactly the names that start with the prefix, in
/// byte order.
#[tokio::test]
async fn names_compare_byte_by_byte_whatever_the_database_collation() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = create_database_with(
        &admin,
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    )
    .await;
    let meta = Metadata::open_postgres(&database.url).await.unwrap();
    // Byte order puts '-' < '.' < '_' < letters; en-US puts '_' before '-' and '.'.
    let names = [
        "dev/ab", "dev/a_b", "dev/a.b", "dev/a-b", "dev/a", "dev0/x", "dev-x/y",
    ];
    for (n, name) in names.iter().enumerate() {
        let repo = RepoName::from_str(name).unwrap();
        image(&meta, &repo, n).await;
    }
    let mut pages = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = meta
            .repositories_page("dev/", last.as_deref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        last = page.last().cloned();
        pages.extend(page);
    }
    assert_eq!(pages, ["dev/a", "dev/a-b", "dev/a.b", "dev/a_b", "dev/ab"]);
    meta.close().await;
}

/// Every pooled connection carries the time limits of `POSTGRES_TIMEOUTS`, except one the URL's
/// `options` sets (which wins); a writer that cannot get the writer lock within `lock_timeout`
/// fails with a busy error (503 with `Retry-After` for clients), not a hang or a 500, and the
/// next write goes through once the lock is free.
#[tokio::test]
async fn a_writer_waits_for_the_writer_lock_no_longer_than_lock_timeout() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = create_database(&admin).await;
    let separator = if database.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}options=-c%20lock_timeout%3D1s", database.url);
    let meta = Metadata::open_postgres(&url).await.unwrap();
    for (setting, expected) in [
        ("lock_timeout", "1s"),
        ("idle_in_transaction_session_timeout", "1min"),
        ("statement_timeout", "2min"),
    ] {
        let shown: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_all(meta.pool())
            .await
            .unwrap();
        assert_eq!(shown, vec![expected.to_string()], "{setting}");
    }

    // Another process holds the writer lock (a transaction stuck under it).
    let options: sqlx::postgres::PgConnectOptions = database.url.parse().unwrap();
    let mut holder = sqlx::ConnectOptions::connect(&options).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(crate::engine::WRITER_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let repo: RepoName = "dev/team/app".parse().unwrap();
    let started = std::time::Instant::now();
    let refused = meta
        .create_upload(uuid::Uuid::new_v4(), &repo, "tester")
        .await;
    let waited = started.elapsed();
    let err = refused.expect_err("the writer lock is held elsewhere");
    assert_eq!(err.busy(), Some(crate::DatabaseBusy::LockTimeout), "{err}");
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(10),
        "waited {waited:?}"
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(crate::engine::WRITER_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    meta.create_upload(uuid::Uuid::new_v4(), &repo, "tester")
        .await
        .unwrap();
    meta.close().await;
}

/// A transaction abandoned under the writer lock (its client stopped talking) is ended by the
/// server after `idle_in_transaction_session_timeout`, which frees the lock for every other
/// writer: the store's next write goes through instead of waiting for ever.
#[tokio::test]
async fn an_abandoned_transaction_frees_the_writer_lock() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let database = create_database(&admin).await;
    let separator = if database.url.contains('?') { '&' } else { '?' };
    // A short idle limit for the test (the default is a minute).
    let url = format!(
        "{}{separator}options=-c%20idle_in_transaction_session_timeout%3D1s",
        database.url
    );
    let meta = Metadata::open_postgres(&url).await.unwrap();
    // A write transaction of this store, abandoned (never committed, never dropped) while it
    // holds the writer lock, as a process that hangs would leave it.
    let abandoned = meta.begin_write().await.unwrap();
    let other = Metadata::open_postgres(&database.url).await.unwrap();
    let repo: RepoName = "dev/team/app".parse().unwrap();
    let started = std::time::Instant::now();
    other
        .create_upload(uuid::Uuid::new_v4(), &repo, "tester")
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
    let ended = abandoned.commit().await;
    assert!(ended.is_err(), "the server ended the abandoned transaction");
    other.close().await;
    meta.close().await;
}

/// An embedded database with a manifest, a principal and audit entries, copied into an empty
/// PostgreSQL database: every table has as many rows on both sides, reads give the same answers,
/// the next id a table hands out does not collide with a copied one, and a second copy into the
/// now-populated database is refused naming a table.
#[tokio::test]
async fn an_embedded_database_copies_into_an_empty_postgres_database_once() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = Metadata::open_sqlite(&dir.path().join("m.db"))
        .await
        .unwrap();
    let repo = RepoName::from_str("dev/team/app").unwrap();
    image(&source, &repo, 1).await;
    source
        .create_principal("alice", "user", "admin", &[refused("dev/team/app", 7)])
        .await
        .unwrap();
    source
        .record_events(&[refused("dev/team/app", 8), refused("dev/team/app", 9)])
        .await
        .unwrap();
    let database = create_database(&admin).await;
    let target = Metadata::open_postgres(&database.url).await.unwrap();

    let copies = source
        .copy_into_postgres(&target, |_, _| Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(copies.len() > 30, "{copies:?}");
    for copy in &copies {
        assert_eq!(copy.source_rows, copy.target_rows, "{copy:?}");
    }
    let rows = |table: &str| {
        copies
            .iter()
            .find(|c| c.table == table)
            .map(|c| c.target_rows)
    };
    assert_eq!(rows("principals"), Some(1));
    assert_eq!(rows("audit_entries"), Some(3));
    assert_eq!(rows("manifests"), Some(1));
    assert_eq!(
        source.audit_entries(0, 10).await.unwrap(),
        target.audit_entries(0, 10).await.unwrap()
    );
    assert_eq!(
        source.repositories_page("dev/", None, 10).await.unwrap(),
        target.repositories_page("dev/", None, 10).await.unwrap()
    );
    let alice = target.principal_by_name("alice").await.unwrap().unwrap();
    let bob = target
        .create_principal("bob", "user", "admin", &[])
        .await
        .unwrap();
    assert!(bob.id > alice.id, "{} after {}", bob.id, alice.id);

    let again = source
        .copy_into_postgres(&target, |_, _| Box::pin(async { Ok(()) }))
        .await;
    assert!(
        matches!(again, Err(crate::MigrateError::TargetNotEmpty { .. })),
        "{again:?}"
    );
    target.close().await;
}

/// A check of the copy sees the uncommitted rows (counts, audit log, tags) through the copy's own
/// transaction; when it fails, nothing is committed and the target stays empty, so the same
/// copy can run again.
#[tokio::test]
async fn a_failed_check_of_the_copy_leaves_the_target_empty() {
    use crate::AuditLogReader as _;
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = Metadata::open_sqlite(&dir.path().join("m.db"))
        .await
        .unwrap();
    let repo = RepoName::from_str("dev/team/app").unwrap();
    image(&source, &repo, 1).await;
    source
        .record_events(&[refused("dev/team/app", 8), refused("dev/team/app", 9)])
        .await
        .unwrap();
    let database = create_database(&admin).await;
    let target = Metadata::open_postgres(&database.url).await.unwrap();

    let source_tags = source.tag_digests().await.unwrap();
    let refused_copy = source
        .copy_into_postgres(&target, move |copies, copied| {
            Box::pin(async move {
                let audit = copies.iter().find(|c| c.table == "audit_entries");
                assert_eq!(audit.map(|c| c.target_rows), Some(2));
                assert_eq!(copied.audit_entry_count().await.unwrap(), 2);
                assert_eq!(copied.audit_entries(0, 2).await.unwrap().len(), 2);
                assert_eq!(copied.tag_digests().await.unwrap(), source_tags);
                Err("the check found a problem".to_string())
            })
        })
        .await;
    assert!(
        matches!(&refused_copy, Err(crate::MigrateError::CheckFailed(m)) if m == "the check found a problem"),
        "{refused_copy:?}"
    );
    assert_eq!(target.audit_entry_count().await.unwrap(), 0);
    assert!(target.tag_digests().await.unwrap().is_empty());
    target.refuse_if_holding_data().await.unwrap();

    let copies = source
        .copy_into_postgres(&target, |_, _| Box::pin(async { Ok(()) }))
        .await
        .unwrap();
    assert!(copies.iter().all(|c| c.source_rows == c.target_rows));
    assert_eq!(target.audit_entry_count().await.unwrap(), 2);
    target.close().await;
}
