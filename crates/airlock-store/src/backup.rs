//! The database side of backups: a consistent snapshot of a live SQLite database, and reading a
//! snapshot without changing it.
//!
//! Guarantees:
//! - [`snapshot_sqlite`] writes the whole database as it was at one instant (one read
//!   transaction, `VACUUM INTO`) into a new, self-contained file (rollback-journal mode, no
//!   `-wal`/`-shm` beside it), while the server keeps reading and writing: in WAL mode a reader
//!   never blocks writers, and writers never change what the reader sees.
//! - [`Metadata::open_sqlite_read_only`] opens such a copy read-only: no migration runs, nothing
//!   is written, the file's bytes stay what the backup's manifest says they are.
//! - Garbage collection running during a backup: [`blobs_gone_live`] tells which blobs the live
//!   database no longer holds (gc deleted their rows after the snapshot), and
//!   [`drop_unreferenced_blobs`] removes such a blob's row from the backup's private snapshot
//!   only when nothing in the snapshot needs its bytes (no manifest a repository holds references
//!   it, no evidence names it), so the snapshot never names a blob the backup lacks and a
//!   referenced blob is never dropped.
//!
//! `VACUUM INTO` rather than SQLite's online backup API (`sqlite3_backup_*`): sqlx does not expose
//! the backup API, and reaching it through the raw handle needs `unsafe` FFI, which this crate
//! forbids. `VACUUM INTO` is one SQL statement through the driver the server already uses, copies
//! inside a single read transaction (so it never restarts when the server writes, as the backup
//! API does when another connection changes the source), and leaves no free pages in the copy.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use airlock_core::Digest;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

use crate::error::StoreError;
use crate::health::{DatabaseFile, DatabaseHealth, FailureLog};
use crate::metadata::Metadata;

/// Up to `limit` tables (or other relations that hold rows) in any schema of the PostgreSQL
/// database `url` other than PostgreSQL's own, as `schema.name`, sorted: a scratch database a
/// dump is restored into for verification must have none.
pub async fn postgres_user_tables(url: &str, limit: u32) -> Result<Vec<String>, StoreError> {
    sqlx::any::install_default_drivers();
    let options = sqlx::any::AnyConnectOptions::from_str(url)?;
    let mut connection: sqlx::AnyConnection = ConnectOptions::connect(&options).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(n.nspname || '.' || c.relname AS TEXT) FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%'
         ORDER BY 1 LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut connection)
    .await?;
    connection.close().await?;
    Ok(tables)
}

/// A blob the database refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReferencedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size as the database records it (`None` for a document airlock keeps by digest
    /// without a `blobs` row: an evidence envelope added through the API).
    pub size: Option<u64>,
}

/// Writes a consistent snapshot of the SQLite database at `source` (which a server may be using)
/// to `target`, which must not exist or be empty; `target` is left in rollback-journal mode, a
/// single self-contained file.
pub async fn snapshot_sqlite(source: &Path, target: &Path) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(source)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut connection = options.connect().await?;
    let target_name = target.to_str().ok_or_else(|| {
        StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not valid UTF-8", target.display()),
        ))
    })?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(target_name)
        .execute(&mut connection)
        .await;
    connection.close().await?;
    copied?;
    // The copy keeps the source's journal mode on some SQLite versions: make it one file.
    let copy = SqliteConnectOptions::new()
        .filename(target)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete)
        .connect()
        .await?;
    copy.close().await?;
    Ok(())
}

/// Which of `digests` the live database at `source` (which a server may be using) no longer
/// holds: no `blobs` row, or a gc tombstone standing (gc deletes the row and leaves the tombstone
/// in one transaction before it deletes the file). Sorted, without duplicates.
pub async fn blobs_gone_live(source: &Path, digests: &[Digest]) -> Result<Vec<Digest>, StoreError> {
    let mut connection = SqliteConnectOptions::new()
        .filename(source)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?;
    let mut gone = Vec::new();
    for digest in digests {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blobs WHERE digest = $1
               AND NOT EXISTS (SELECT 1 FROM gc_tombstones WHERE digest = $1)",
        )
        .bind(digest.to_string())
        .fetch_optional(&mut connection)
        .await?;
        if held.is_none() {
            gone.push(digest.clone());
        }
    }
    connection.close().await?;
    gone.sort();
    gone.dedup();
    Ok(gone)
}

/// Removes from the snapshot at `snapshot` (a backup's private copy, never a live database) the
/// rows of those `digests` nothing in the snapshot needs: no manifest a repository holds
/// references the blob (`manifest_references` kind `blob`, as gc's mark rule) and no evidence row
/// names it. Its `repository_blobs` links go with its `blobs` row, in one transaction. Returns
/// the digests dropped, sorted; a digest still referenced is left as it is (the caller's error).
pub async fn drop_unreferenced_blobs(
    snapshot: &Path,
    digests: &[Digest],
) -> Result<Vec<Digest>, StoreError> {
    let mut connection = SqliteConnectOptions::new()
        .filename(snapshot)
        .create_if_missing(false)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Delete)
        .connect()
        .await?;
    let mut tx = connection.begin().await?;
    let mut dropped = Vec::new();
    for digest in digests {
        let needed: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM manifest_references r
               JOIN repository_manifests rm ON rm.digest = r.digest
              WHERE r.child = $1 AND r.kind = 'blob'
             UNION ALL
             SELECT 1 FROM evidence WHERE blob = $1
             LIMIT 1",
        )
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if needed.is_some() {
            continue;
        }
        sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 1 {
            dropped.push(digest.clone());
        }
    }
    tx.commit().await?;
    connection.close().await?;
    dropped.sort();
    dropped.dedup();
    Ok(dropped)
}

impl Metadata {
    /// Opens a database copy (a backup's snapshot) read-only: no migration, no write. The
    /// methods that read work as on a live database; every write fails.
    pub async fn open_sqlite_read_only(path: &Path) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options = crate::engine::sqlite_options(path, true)?;
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let file = DatabaseFile::opened(path)?;
        Ok(Self::from_parts(
            pool,
            crate::Backend::Sqlite,
            std::sync::Arc::new(DatabaseHealth {
                file: Some(file),
                stopped: std::sync::Mutex::new(Some("opened read-only".into())),
                failures: FailureLog::default(),
                integrity: String::new(),
            }),
        ))
    }

    /// Opens a restored PostgreSQL copy (a `pg_dump` restored into a scratch database) to check
    /// it: no migration runs and nothing is written. A schema this binary does not know is refused
    /// as [`Metadata::open_postgres`] refuses it ([`StoreError::SchemaTooNew`],
    /// [`StoreError::MigrationChanged`]). Returns the newest migration applied, `None` when the
    /// database carries no migrations table (it is no airlock database).
    pub async fn open_postgres_restored(url: &str) -> Result<(Self, Option<i64>), StoreError> {
        sqlx::any::install_default_drivers();
        let options = sqlx::any::AnyConnectOptions::from_str(url)?;
        let mut first: sqlx::AnyConnection = ConnectOptions::connect(&options).await?;
        let migrator = crate::metadata::migrator(crate::Backend::Postgres);
        crate::schema::check_applied(&mut first, crate::Backend::Postgres, &migrator).await?;
        let tracked: Option<String> = sqlx::query_scalar(
            "SELECT CAST(tablename AS TEXT) FROM pg_catalog.pg_tables
             WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'",
        )
        .fetch_optional(&mut first)
        .await?;
        let newest = match tracked {
            Some(_) => {
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(&mut first)
                    .await?
            }
            None => None,
        };
        first.close().await?;
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let metadata = Self::from_parts(
            pool,
            crate::Backend::Postgres,
            std::sync::Arc::new(DatabaseHealth {
                file: None,
                stopped: std::sync::Mutex::new(Some("opened to verify a restored copy".into())),
                failures: FailureLog::default(),
                integrity: String::new(),
            }),
        );
        Ok((metadata, newest))
    }

    /// The tables of this PostgreSQL database's current schema, sorted (the migrations table
    /// included).
    pub async fn postgres_tables(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(tablename AS TEXT) FROM pg_catalog.pg_tables
             WHERE schemaname = current_schema() ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// SQLite's full `PRAGMA integrity_check` (up to 100 problems): `["ok"]` for a sound file.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check(100)")
            .fetch_all(self.pool())
            .await?)
    }

    /// Every blob the database refers to, sorted by digest: the committed blobs (`blobs`, with
    /// their sizes) and the evidence documents kept by digest without a `blobs` row.
    pub async fn referenced_blobs(&self) -> Result<Vec<ReferencedBlob>, StoreError> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT digest, size FROM blobs
             UNION
             SELECT DISTINCT blob, CAST(NULL AS BIGINT) FROM evidence
              WHERE blob NOT IN (SELECT digest FROM blobs)
             ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(digest, size)| {
                let parsed = Digest::from_str(&digest)
                    .map_err(|err| StoreError::Corrupt(format!("blob digest {digest:?}: {err}")))?;
                let size = size
                    .map(|size| {
                        u64::try_from(size).map_err(|_| {
                            StoreError::Corrupt(format!("blob {digest} has size {size}"))
                        })
                    })
                    .transpose()?;
                Ok(ReferencedBlob {
                    digest: parsed,
                    size,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_of_a_live_database_opens_read_only_and_lists_its_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let live = Metadata::open_sqlite(&dir.path().join("live.db"))
            .await
            .unwrap();
        let digest = Digest::sha256_of(b"layer");
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES ($1, 5, 0)")
            .bind(digest.to_string())
            .execute(live.pool())
            .await
            .unwrap();

        let copy = dir.path().join("copy.db");
        snapshot_sqlite(&dir.path().join("live.db"), &copy)
            .await
            .unwrap();
        // The live database keeps working after the snapshot.
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES ($1, 6, 0)")
            .bind(Digest::sha256_of(b"later").to_string())
            .execute(live.pool())
            .await
            .unwrap();

        let snapshot = Metadata::open_sqlite_read_only(&copy).await.unwrap();
        assert_eq!(snapshot.integrity_check().await.unwrap(), ["ok"]);
        assert_eq!(
            snapshot.referenced_blobs().await.unwrap(),
            [ReferencedBlob {
                digest,
                size: Some(5)
            }]
        );
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(snapshot.pool())
            .await
            .unwrap();
        assert_eq!(mode, "delete");
        assert!(
            sqlx::query("DELETE FROM blobs")
                .execute(snapshot.pool())
                .await
                .is_err(),
            "a read-only snapshot refuses writes"
        );
        assert!(!dir.path().join("copy.db-wal").exists());
    }

    /// Runs `statements` (each binding the digests of `binds` in order) on `metadata`.
    async fn run(metadata: &Metadata, statements: &[(&str, Vec<String>)]) {
        for (statement, binds) in statements {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(*statement));
            for bind in binds {
                query = query.bind(bind.clone());
            }
            query.execute(metadata.pool()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn only_blobs_the_snapshot_does_not_need_are_dropped_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let live_path = dir.path().join("live.db");
        let live = Metadata::open_sqlite(&live_path).await.unwrap();
        let [layer, envelope, loose, orphaned_layer] =
            [&b"layer"[..], b"envelope", b"loose", b"pruned"].map(Digest::sha256_of);
        let (manifest, pruned) = (Digest::sha256_of(b"m"), Digest::sha256_of(b"p"));
        let d = |digest: &Digest| digest.to_string();
        let mut statements = vec![(
            "INSERT INTO repositories (name, created_at) VALUES ('dev/app', 0)",
            vec![],
        )];
        for blob in [&layer, &envelope, &loose, &orphaned_layer] {
            statements.push((
                "INSERT INTO blobs (digest, size, created_at) VALUES ($1, 1, 0)",
                vec![d(blob)],
            ));
            statements.push((
                "INSERT INTO repository_blobs (repository, digest, created_at) VALUES ('dev/app', $1, 0)",
                vec![d(blob)],
            ));
        }
        for (digest, child) in [(&manifest, &layer), (&pruned, &orphaned_layer)] {
            statements.push((
                "INSERT INTO manifests (digest, media_type, annotations, size, content, created_at)
                 VALUES ($1, 'application/vnd.oci.image.manifest.v1+json', '{}', 1, x'7b7d', 0)",
                vec![d(digest)],
            ));
            statements.push((
                "INSERT INTO manifest_references (digest, child, kind) VALUES ($1, $2, 'blob')",
                vec![d(digest), d(child)],
            ));
        }
        // Only `manifest` is held by a repository: `pruned` was removed by retention.
        statements.push((
            "INSERT INTO repository_manifests (repository, digest, created_at) VALUES ('dev/app', $1, 0)",
            vec![d(&manifest)],
        ));
        statements.push((
            "INSERT INTO evidence (repository_path, subject, item, format, source, repository,
                                   blob, status, keyring_version, first_seen_at, verified_at,
                                   pushed_by)
             VALUES ('team/app', $1, 'item', 'dsse', 'api', 'dev/team/app', $2, 'rejected', 0, 0,
                     0, 'tester')",
            vec![d(&manifest), d(&envelope)],
        ));
        run(&live, &statements).await;

        let copy = dir.path().join("copy.db");
        snapshot_sqlite(&live_path, &copy).await.unwrap();
        // gc, after the snapshot: `loose` goes with a tombstone, `orphaned_layer` entirely.
        run(
            &live,
            &[
                (
                    "INSERT INTO gc_tombstones (digest, created_at) VALUES ($1, 0)",
                    vec![d(&loose)],
                ),
                (
                    "DELETE FROM repository_blobs WHERE digest IN ($1, $2)",
                    vec![d(&loose), d(&orphaned_layer)],
                ),
                (
                    "DELETE FROM blobs WHERE digest IN ($1, $2)",
                    vec![d(&loose), d(&orphaned_layer)],
                ),
            ],
        )
        .await;
        live.close().await;

        let all = [
            layer.clone(),
            envelope.clone(),
            loose.clone(),
            orphaned_layer.clone(),
        ];
        let mut expected_gone = vec![loose.clone(), orphaned_layer.clone()];
        expected_gone.sort();
        assert_eq!(
            blobs_gone_live(&live_path, &all).await.unwrap(),
            expected_gone
        );
        // Asked about every blob, the snapshot gives up only those nothing in it needs.
        assert_eq!(
            drop_unreferenced_blobs(&copy, &all).await.unwrap(),
            expected_gone
        );
        let snapshot = Metadata::open_sqlite_read_only(&copy).await.unwrap();
        let kept: Vec<Digest> = snapshot
            .referenced_blobs()
            .await
            .unwrap()
            .into_iter()
            .map(|blob| blob.digest)
            .collect();
        let mut expected_kept = vec![layer, envelope];
        expected_kept.sort();
        assert_eq!(kept, expected_kept);
        assert_eq!(snapshot.integrity_check().await.unwrap(), ["ok"]);
        let links: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repository_blobs")
            .fetch_one(snapshot.pool())
            .await
            .unwrap();
        assert_eq!(links, 2);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(snapshot.pool())
            .await
            .unwrap();
        assert_eq!(mode, "delete");
    }
}
