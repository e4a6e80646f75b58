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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::error::StoreError;
use crate::health::{DatabaseFile, DatabaseHealth, FailureLog};
use crate::metadata::Metadata;

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

impl Metadata {
    /// Opens a database copy (a backup's snapshot) read-only: no migration, no write. The
    /// methods that read work as on a live database; every write fails.
    pub async fn open_sqlite_read_only(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let file = DatabaseFile::opened(path)?;
        Ok(Self::from_parts(
            pool,
            std::sync::Arc::new(DatabaseHealth {
                file,
                stopped: std::sync::Mutex::new(Some("opened read-only".into())),
                failures: FailureLog::default(),
                integrity: String::new(),
            }),
        ))
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
             SELECT DISTINCT blob, NULL FROM evidence
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
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES (?, 5, 0)")
            .bind(digest.to_string())
            .execute(live.pool())
            .await
            .unwrap();

        let copy = dir.path().join("copy.db");
        snapshot_sqlite(&dir.path().join("live.db"), &copy)
            .await
            .unwrap();
        // The live database keeps working after the snapshot.
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES (?, 6, 0)")
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
}
