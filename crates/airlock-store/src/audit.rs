//! Audit log storage: entries appended inside the caller's transaction, and what the integrator
//! needs to hash them and record signed checkpoints.

use airlock_core::AuditRecord;
use sqlx::{Row, SqliteConnection};

use crate::error::StoreError;
use crate::metadata::Metadata;

/// An entry as stored: its index and canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position in the log, from 0.
    pub index: u64,
    /// The canonical JSON the Merkle leaf commits to.
    pub entry: Vec<u8>,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it covers.
    pub size: u64,
    /// The root hash.
    pub root: [u8; 32],
    /// The signed note text.
    pub note: String,
    /// When it was signed (ms).
    pub created_at: i64,
}

/// Appends `records` to the log on `conn`, which must be inside the transaction that makes the
/// change they describe. Indexes come from the table itself under the write lock, so concurrent
/// writers (and replicas sharing the database) get consecutive, gap-free numbers.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    records: &[AuditRecord],
) -> Result<(), sqlx::Error> {
    for record in records {
        sqlx::query(
            "INSERT INTO audit_entries (idx, entry, kind, time_millis)
             SELECT COALESCE(MAX(idx) + 1, 0), ?, ?, ? FROM audit_entries",
        )
        .bind(record.canonical_json())
        .bind(record.event.kind())
        .bind(record.time_millis)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn hash_from(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit hash is not 32 bytes".into()))
}

impl Metadata {
    /// Records events that change no other state (e.g. a refused push), in their own transaction.
    pub async fn record_events(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many entries the log holds (integrated or not).
    pub async fn audit_entry_count(&self) -> Result<u64, StoreError> {
        let count: Option<i64> = sqlx::query_scalar("SELECT MAX(idx) + 1 FROM audit_entries")
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .flatten();
        Ok(count.unwrap_or(0) as u64)
    }

    /// Entries with `start <= index < end`, in order (at most `end - start`).
    pub async fn audit_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, entry FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
        )
        .bind(start as i64)
        .bind(end as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredEntry {
                index: row.get::<i64, _>("idx") as u64,
                entry: row.get("entry"),
            })
            .collect())
    }

    /// Up to `limit` entries from `start` on whose time is at least `since_millis` and whose type
    /// starts with `kind_prefix` (both optional), for `audit tail` and `audit export`.
    pub async fn audit_entries_filtered(
        &self,
        start: u64,
        since_millis: Option<i64>,
        kind_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, entry FROM audit_entries
             WHERE idx >= ? AND time_millis >= ? AND (? IS NULL OR substr(kind, 1, length(?)) = ?)
             ORDER BY idx LIMIT ?",
        )
        .bind(start as i64)
        .bind(since_millis.unwrap_or(i64::MIN))
        .bind(kind_prefix)
        .bind(kind_prefix)
        .bind(kind_prefix)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredEntry {
                index: row.get::<i64, _>("idx") as u64,
                entry: row.get("entry"),
            })
            .collect())
    }

    /// Stored Merkle hashes by stored-hash index, in the order asked; `None` where absent.
    pub async fn audit_hashes(&self, indexes: &[u64]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        let wanted =
            serde_json::to_string(indexes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows = sqlx::query(
            "SELECT idx, hash FROM audit_hashes WHERE idx IN (SELECT value FROM json_each(?))",
        )
        .bind(wanted)
        .fetch_all(self.pool())
        .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            found.insert(row.get::<i64, _>("idx") as u64, hash_from(row.get("hash"))?);
        }
        Ok(indexes.iter().map(|i| found.get(i).copied()).collect())
    }

    /// The newest checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT size, root, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next();
        row.map(checkpoint_from_row).transpose()
    }

    /// Every checkpoint, oldest first (verification walks them to bracket a rewritten entry).
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows =
            sqlx::query("SELECT size, root, note, created_at FROM audit_checkpoints ORDER BY size")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter().map(checkpoint_from_row).collect()
    }

    /// Stores the hashes of newly integrated entries and the checkpoint over them, atomically, if no
    /// other integrator got there first (the latest checkpoint must still be at `previous_size`).
    /// Returns whether this integration was recorded.
    pub async fn record_integration(
        &self,
        previous_size: u64,
        hashes: &[(u64, [u8; 32])],
        checkpoint: &StoredCheckpoint,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(size) FROM audit_checkpoints")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next()
            .flatten();
        if latest.unwrap_or(0) as u64 != previous_size {
            return Ok(false);
        }
        for (index, hash) in hashes {
            sqlx::query("INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)")
                .bind(*index as i64)
                .bind(hash.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(checkpoint.size as i64)
        .bind(checkpoint.root.as_slice())
        .bind(&checkpoint.note)
        .bind(checkpoint.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn checkpoint_from_row(row: sqlx::sqlite::SqliteRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: row.get::<i64, _>("size") as u64,
        root: hash_from(row.get("root"))?,
        note: row.get("note"),
        created_at: row.get("created_at"),
    })
}
