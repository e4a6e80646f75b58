//! Audit log storage: entries appended inside the caller's transaction, and what the integrator
//! needs to hash them and record signed checkpoints.

use airlock_core::AuditRecord;
use sqlx::{AnyConnection, Row};

use crate::engine::{Backend, SqlBuilder};
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

/// A stored Merkle hash that is not the one expected (see [`Metadata::audit_hashes_differing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DifferingHash {
    /// Its stored-hash index.
    pub index: u64,
    /// What is stored there; `None`: nothing.
    pub stored: Option<[u8; 32]>,
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

/// How many rows the audit tables hold, to check at start that they agree with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTableCounts {
    /// Entries stored.
    pub entries: u64,
    /// Entries with an index below the size asked about.
    pub entries_below: u64,
    /// One past the highest entry index (0 when there is none).
    pub next_entry: u64,
    /// Stored hashes.
    pub hashes: u64,
    /// One past the highest stored-hash index (0 when there is none).
    pub next_hash: u64,
    /// Signed checkpoints.
    pub checkpoints: u64,
}

/// Appends `records` to the log on `conn`, which must be inside the (write-locked) transaction
/// that makes the change they describe; returns the index of the first. Indexes continue from the table itself, so concurrent
/// writers (and replicas sharing the database) get consecutive, gap-free numbers.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    records: &[AuditRecord],
) -> Result<Option<u64>, sqlx::Error> {
    // Many rows per statement: group commits and bulk writes append hundreds at once. The first
    // statement numbers its rows from the table's next index itself and returns them, with the
    // number of active webhook endpoints, so a small append (the common one) is one round trip:
    // on PostgreSQL every statement is one made while the writer lock is held, on SQLite one
    // hop to the connection's thread.
    let mut chunks = records.chunks(APPEND_CHUNK);
    let Some(first_chunk) = chunks.next() else {
        return Ok(None);
    };
    let mut insert = SqlBuilder::new(
        "INSERT INTO audit_entries (idx, entry, kind, time_millis, subject_digest)
         SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries) + v.column1,
                v.column2, v.column3, v.column4, v.column5
         FROM (VALUES ",
    );
    push_entry_rows(&mut insert, 0, first_chunk);
    insert.push(
        ") AS v
         RETURNING idx,
                   (SELECT COUNT(*) FROM webhook_endpoints WHERE removed_at IS NULL) AS endpoints",
    );
    let rows = insert
        .build(Backend::of(conn))?
        .fetch_all(&mut *conn)
        .await?;
    let mut next: Option<i64> = None;
    let mut endpoint_count: i64 = 0;
    for row in &rows {
        let index: i64 = row.try_get("idx")?;
        next = Some(next.map_or(index, |n| n.min(index)));
        endpoint_count = row.try_get("endpoints")?;
    }
    let next = next
        .ok_or_else(|| sqlx::Error::Protocol("appending audit entries returned no index".into()))?;
    for (chunk_number, chunk) in chunks.enumerate() {
        let first = next + ((chunk_number + 1) * APPEND_CHUNK) as i64;
        let mut insert = SqlBuilder::new(
            "INSERT INTO audit_entries (idx, entry, kind, time_millis, subject_digest) VALUES ",
        );
        push_entry_rows(&mut insert, first, chunk);
        insert.build(Backend::of(conn))?.execute(&mut *conn).await?;
    }
    if endpoint_count > 0 {
        let endpoints = crate::webhooks::active_endpoint_events(conn).await?;
        crate::webhooks::enqueue_for_records(conn, &endpoints, records, next).await?;
    }
    Ok(Some(next as u64))
}

/// Rows of `idx` and `entry` read newest first, as entries oldest first.
fn oldest_first(rows: Vec<sqlx::any::AnyRow>) -> Vec<StoredEntry> {
    let mut entries: Vec<StoredEntry> = rows
        .into_iter()
        .map(|row| StoredEntry {
            index: row.get::<i64, _>("idx") as u64,
            entry: row.get("entry"),
        })
        .collect();
    entries.reverse();
    entries
}

/// Entries per `INSERT` (five values each).
const APPEND_CHUNK: usize = 200;

/// Appends `(first + n, entry, kind, time, subject digest)` rows for `records` to a `VALUES`
/// list.
fn push_entry_rows(insert: &mut SqlBuilder, first: i64, records: &[AuditRecord]) {
    for (offset, record) in records.iter().enumerate() {
        insert
            .push(if offset == 0 { "(" } else { ", (" })
            .push_bind(first + offset as i64)
            .push(", ")
            .push_bind(record.canonical_json())
            .push(", ")
            .push_bind(record.event.kind())
            .push(", ")
            .push_bind(record.time_millis)
            .push(", ")
            .push_bind(record.event.subject_digest())
            .push(")");
    }
}

fn hash_from(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit hash is not 32 bytes".into()))
}

/// Events from one [`Metadata::record_events`] call, waiting for the next group commit.
pub(crate) struct PendingEvents {
    records: Vec<AuditRecord>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

impl Metadata {
    /// Records events that change no other state (e.g. a refused push). Concurrent calls are
    /// group-committed: whoever gets the writer slot appends everything queued so far in one
    /// transaction, so a burst of such events costs one commit, not one each. Returns once the
    /// caller's events are committed.
    pub async fn record_events(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let (done, committed) = tokio::sync::oneshot::channel();
        self.pending_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PendingEvents {
                records: records.to_vec(),
                done,
            });
        let mut committed = committed;
        loop {
            tokio::select! {
                // Checked first: a caller whose events another caller's group commit carried
                // returns, rather than taking the slot to commit a handful of newer events.
                biased;
                // Another caller's group commit carried these events.
                result = &mut committed => return Self::batch_result(result),
                slot = self.writer_slot() => {
                    // Callers woken by the previous commit queue their next events now: letting
                    // them run first makes this batch every writer's, not half of them.
                    tokio::task::yield_now().await;
                    let batch = std::mem::take(
                        &mut *self.pending_events.lock().unwrap_or_else(|e| e.into_inner()),
                    );
                    if batch.is_empty() {
                        continue;
                    }
                    let result = async {
                        let mut tx = self.begin_write_in(slot).await?;
                        let records: Vec<AuditRecord> =
                            batch.iter().flat_map(|p| p.records.iter().cloned()).collect();
                        append(&mut tx, &records).await?;
                        tx.commit().await
                    }
                    .await
                    .map_err(|e| e.to_string());
                    for pending in batch {
                        let _ = pending.done.send(result.clone());
                    }
                }
            }
        }
    }

    fn batch_result(
        result: Result<Result<(), String>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), StoreError> {
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Batch(message)),
            Err(_) => Err(StoreError::Batch(
                "the committing task was cancelled".into(),
            )),
        }
    }

    /// Row counts of the audit tables, with the entries below index `below` counted apart.
    pub async fn audit_table_counts(&self, below: u64) -> Result<AuditTableCounts, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM audit_entries) AS entries,
                    (SELECT COUNT(*) FROM audit_entries WHERE idx >= 0 AND idx < $1) AS entries_below,
                    (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries) AS next_entry,
                    (SELECT COUNT(*) FROM audit_hashes) AS hashes,
                    (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_hashes) AS next_hash,
                    (SELECT COUNT(*) FROM audit_checkpoints) AS checkpoints",
        )
        .bind(below as i64)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("audit table counts returned no row".into()))?;
        let count = |name: &str| row.get::<i64, _>(name).max(0) as u64;
        Ok(AuditTableCounts {
            entries: count("entries"),
            entries_below: count("entries_below"),
            next_entry: count("next_entry"),
            hashes: count("hashes"),
            next_hash: count("next_hash"),
            checkpoints: count("checkpoints"),
        })
    }

    /// How many entries the log holds (integrated or not).
    pub async fn audit_entry_count(&self) -> Result<u64, StoreError> {
        entry_count_on(&mut *self.pool().acquire().await?).await
    }

    /// Entries with `start <= index < end`, in order (at most `end - start`).
    pub async fn audit_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        entries_on(&mut *self.pool().acquire().await?, start, end).await
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
             WHERE idx >= $1 AND time_millis >= $2 AND ($3 IS NULL OR substr(kind, 1, length($4)) = $5)
             ORDER BY idx LIMIT $6",
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

    /// The newest `limit` entries whose type starts with `kind_prefix` (if given), oldest first.
    pub async fn audit_entries_newest(
        &self,
        kind_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, entry FROM audit_entries
             WHERE ($1 IS NULL OR substr(kind, 1, length($2)) = $3)
             ORDER BY idx DESC LIMIT $4",
        )
        .bind(kind_prefix)
        .bind(kind_prefix)
        .bind(kind_prefix)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(oldest_first(rows))
    }

    /// The newest `limit` entries whose subject names `digest` (an artifact's pushes, evidence
    /// and promotions), oldest first; an index walk, not a scan of the log.
    pub async fn audit_entries_about(
        &self,
        digest: &str,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, entry FROM audit_entries
             WHERE subject_digest = $1
             ORDER BY idx DESC LIMIT $2",
        )
        .bind(digest)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(oldest_first(rows))
    }

    /// Stored Merkle hashes by stored-hash index, in the order asked; `None` where absent.
    pub async fn audit_hashes(&self, indexes: &[u64]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        hashes_on(&mut *self.pool().acquire().await?, indexes).await
    }

    /// Which of `expected` (stored-hash index, hash) pairs the log does not hold as given, with
    /// what it holds there (see [`hashes_differing_on`]).
    pub async fn audit_hashes_differing(
        &self,
        expected: &[(u64, [u8; 32])],
    ) -> Result<Vec<DifferingHash>, StoreError> {
        hashes_differing_on(&mut *self.pool().acquire().await?, expected).await
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
        checkpoints_on(&mut *self.pool().acquire().await?).await
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
        let mut tx = self.begin_integration_write().await?;
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(size) FROM audit_checkpoints")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next()
            .flatten();
        // Another integrator moved the tree on, or (replicas starting together on a new
        // database) already signed the checkpoint this one would add.
        if latest.unwrap_or(0) as u64 != previous_size
            || (latest.is_some() && checkpoint.size <= previous_size)
        {
            return Ok(false);
        }
        // Many rows per statement: a round stores two hashes per entry.
        for chunk in hashes.chunks(400) {
            let mut insert = SqlBuilder::new("INSERT INTO audit_hashes (idx, hash) VALUES ");
            for (offset, (index, hash)) in chunk.iter().enumerate() {
                insert
                    .push(if offset == 0 { "(" } else { ", (" })
                    .push_bind(*index as i64)
                    .push(", ")
                    .push_bind(hash.to_vec())
                    .push(")");
            }
            insert.build(Backend::of(&tx))?.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
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

/// [`Metadata::audit_entry_count`] on one connection (or inside a transaction).
pub(crate) async fn entry_count_on(conn: &mut AnyConnection) -> Result<u64, StoreError> {
    let count: Option<i64> = sqlx::query_scalar("SELECT MAX(idx) + 1 FROM audit_entries")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .next()
        .flatten();
    Ok(count.unwrap_or(0) as u64)
}

/// [`Metadata::audit_entries`] on one connection (or inside a transaction).
pub(crate) async fn entries_on(
    conn: &mut AnyConnection,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT idx, entry FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(start as i64)
    .bind(end as i64)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| StoredEntry {
            index: row.get::<i64, _>("idx") as u64,
            entry: row.get("entry"),
        })
        .collect())
}

/// [`Metadata::audit_hashes`] on one connection (or inside a transaction).
pub(crate) async fn hashes_on(
    conn: &mut AnyConnection,
    indexes: &[u64],
) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity(indexes.len());
    // Bounded statements: both engines cap the number of bound values.
    for chunk in indexes.chunks(1000) {
        let mut query = SqlBuilder::new("SELECT idx, hash FROM audit_hashes WHERE idx IN (");
        query
            .push_list(chunk.iter().map(|index| *index as i64))
            .push(")");
        for row in query
            .build(Backend::of(conn))?
            .fetch_all(&mut *conn)
            .await?
        {
            found.insert(row.get::<i64, _>("idx") as u64, hash_from(row.get("hash"))?);
        }
    }
    Ok(indexes.iter().map(|i| found.get(i).copied()).collect())
}

/// Which of `expected` (stored-hash index, hash) pairs the log does not hold as given: each
/// index whose stored hash differs or is absent, with what is stored there (`None`: absent), in
/// increasing index order when `expected` is. The database compares, so a log that agrees (the
/// common case) sends back no rows: checking a million leaf hashes costs 500 statements, not a
/// million rows.
pub(crate) async fn hashes_differing_on(
    conn: &mut AnyConnection,
    expected: &[(u64, [u8; 32])],
) -> Result<Vec<DifferingHash>, StoreError> {
    let mut differing = Vec::new();
    // Two values per pair: 4,000 per statement, well under SQLite's limit (32,766) and
    // PostgreSQL's (65,535).
    for chunk in expected.chunks(2000) {
        // A VALUES list's columns are `column1`, `column2` on both engines.
        let mut query = SqlBuilder::new("SELECT v.column1 AS idx, h.hash FROM (VALUES ");
        for (n, (index, hash)) in chunk.iter().enumerate() {
            query
                .push(if n == 0 { "(" } else { ", (" })
                .push_bind(*index as i64)
                .push(", ")
                .push_bind(hash.to_vec())
                .push(")");
        }
        query.push(
            ") AS v LEFT JOIN audit_hashes h ON h.idx = v.column1
             WHERE h.hash IS NULL OR h.hash <> v.column2 ORDER BY v.column1",
        );
        for row in query
            .build(Backend::of(conn))?
            .fetch_all(&mut *conn)
            .await?
        {
            let stored: Option<Vec<u8>> = row.get("hash");
            differing.push(DifferingHash {
                index: row.get::<i64, _>("idx") as u64,
                stored: stored.map(hash_from).transpose()?,
            });
        }
    }
    Ok(differing)
}

/// [`Metadata::checkpoints`] on one connection (or inside a transaction).
pub(crate) async fn checkpoints_on(
    conn: &mut AnyConnection,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let rows =
        sqlx::query("SELECT size, root, note, created_at FROM audit_checkpoints ORDER BY size")
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter().map(checkpoint_from_row).collect()
}

fn checkpoint_from_row(row: sqlx::any::AnyRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: row.get::<i64, _>("size") as u64,
        root: hash_from(row.get("root"))?,
        note: row.get("note"),
        created_at: row.get("created_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(n: u64) -> AuditRecord {
        AuditRecord {
            time_millis: n as i64,
            actor: airlock_core::Actor::system(),
            event: airlock_core::AuditEvent::PushRefused {
                repository: "prod/team/app".parse().unwrap(),
                action: airlock_core::Action::Push,
                reason: format!("refusal {n}"),
            },
        }
    }

    /// An append larger than one statement numbers every entry once, in order, after what the
    /// log held, and returns the first index.
    #[tokio::test]
    async fn an_append_of_several_statements_numbers_its_entries_in_order() {
        for meta in crate::testing::engines().await {
            meta.record_events(&[refused(0), refused(1)]).await.unwrap();
            let records: Vec<AuditRecord> =
                (2..2 + 2 * APPEND_CHUNK as u64 + 50).map(refused).collect();
            let mut tx = meta.begin_write().await.unwrap();
            let first = append(&mut tx, &records).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(first, Some(2));
            let total = 2 + records.len() as u64;
            assert_eq!(meta.audit_entry_count().await.unwrap(), total);
            let stored = meta.audit_entries(0, total).await.unwrap();
            let indexes: Vec<u64> = stored.iter().map(|e| e.index).collect();
            assert_eq!(indexes, (0..total).collect::<Vec<u64>>());
            for (entry, n) in stored.iter().zip(0..) {
                assert_eq!(entry.entry, refused(n).canonical_json(), "entry {n}");
            }
            // Nothing to append: no index.
            let mut tx = meta.begin_write().await.unwrap();
            assert_eq!(append(&mut tx, &[]).await.unwrap(), None);
        }
    }

    /// An artifact's entries are found by its digest, newest `limit` of them, oldest first;
    /// entries about other subjects (or none) are not.
    #[tokio::test]
    async fn an_artifacts_entries_are_found_by_its_digest() {
        let digest = |n: u8| -> airlock_core::Digest {
            format!("sha256:{}", format!("{n:02x}").repeat(32))
                .parse()
                .unwrap()
        };
        let pushed = |n: u8, at: i64| AuditRecord {
            time_millis: at,
            actor: airlock_core::Actor::system(),
            event: airlock_core::AuditEvent::ManifestPushed {
                repository: "dev/team/app".parse().unwrap(),
                digest: digest(n),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                artifact_type: None,
                subject: None,
            },
        };
        for meta in crate::testing::engines().await {
            let records = [
                pushed(1, 0),
                refused(1),
                pushed(2, 2),
                pushed(1, 3),
                pushed(1, 4),
            ];
            meta.record_events(&records).await.unwrap();
            let about = meta
                .audit_entries_about(&digest(1).to_string(), 10)
                .await
                .unwrap();
            assert_eq!(about.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 3, 4]);
            assert_eq!(about[1].entry, records[3].canonical_json());
            let newest = meta
                .audit_entries_about(&digest(1).to_string(), 2)
                .await
                .unwrap();
            assert_eq!(newest.iter().map(|e| e.index).collect::<Vec<_>>(), [3, 4]);
            assert!(
                meta.audit_entries_about(&digest(9).to_string(), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[tokio::test]
    async fn the_database_names_the_stored_hashes_that_differ_from_those_expected() {
        for meta in crate::testing::engines().await {
            let stored: Vec<(u64, [u8; 32])> = (0..3).map(|i| (i, [i as u8 + 1; 32])).collect();
            let checkpoint = StoredCheckpoint {
                size: 2,
                root: [9; 32],
                note: "note".into(),
                created_at: 0,
            };
            assert!(
                meta.record_integration(0, &stored, &checkpoint)
                    .await
                    .unwrap()
            );
            // All as stored: nothing comes back.
            assert!(
                meta.audit_hashes_differing(&stored)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // One altered and one never stored, in a list longer than one statement.
            let mut expected: Vec<(u64, [u8; 32])> = stored.clone();
            expected[1].1 = [0xee; 32];
            expected.push((7, [7; 32]));
            expected.extend((0..2_500).map(|_| stored[0]));
            let differing = meta.audit_hashes_differing(&expected).await.unwrap();
            assert_eq!(
                differing,
                vec![
                    DifferingHash {
                        index: 1,
                        stored: Some([2; 32]),
                    },
                    DifferingHash {
                        index: 7,
                        stored: None,
                    },
                ]
            );
        }
    }
}
