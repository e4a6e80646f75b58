//! The check a commit of bytes written outside the database makes against garbage collection,
//! without asking the blob store while it holds the writer lock.
//!
//! An upload, a mount or a submitted evidence document links a file of the blob store into the
//! database. gc deletes a file in three steps (row and tombstone; file; tombstone cleared, see the
//! module above), so a commit must not record a file that a deletion removed. Looking at the file
//! inside the write transaction would hold the writer lock (every writer of every replica) for a
//! network round trip to S3, so the look happens first and the transaction re-checks cheaply:
//!
//! 1. read the digest's `gc_cleared` row (how many deletions of it have finished);
//! 2. look at the bytes in the blob store (`bytes_present`): gone means collected;
//! 3. in the write transaction: a tombstone standing means a deletion is under way (refused); a
//!    `gc_cleared` row other than in step 1 means a deletion finished since, possibly after step
//!    2 saw the bytes: the transaction is dropped and the steps run again (at most
//!    [`ATTEMPTS`] times, then the commit is refused and the client uploads again).
//!
//! Why this is enough: the bytes seen in step 2 can vanish before step 3 only through a deletion
//! whose file step comes after step 2. Its tombstone then stands from before step 2 until its
//! clear; the clear comes after the file step, so either it has not happened by step 3 (the
//! tombstone stands there) or it happened between steps 1 and 3 (the row moved).

use airlock_core::Digest;

use crate::error::StoreError;
use crate::metadata::{Metadata, WriteTransaction};

/// How many times a commit looks at its bytes again when a deletion of the same digest finished
/// while it looked.
pub(crate) const ATTEMPTS: usize = 3;

/// How long a `gc_cleared` row is kept: far longer than any commit takes between its two reads.
pub(crate) const CLEARED_KEPT_MILLIS: i64 = 3_600_000;

/// How many deletions of `digest` have finished (recently), as `gc_cleared` says.
async fn clears(
    connection: &mut sqlx::AnyConnection,
    digest: &Digest,
) -> Result<Option<i64>, StoreError> {
    let rows: Vec<i64> = sqlx::query_scalar("SELECT clears FROM gc_cleared WHERE digest = $1")
        .bind(digest.to_string())
        .fetch_all(connection)
        .await?;
    Ok(rows.into_iter().next())
}

/// Records, in the transaction that clears `digest`'s tombstone, that a deletion of it finished,
/// and prunes rows older than [`CLEARED_KEPT_MILLIS`].
pub(crate) async fn record_cleared(
    connection: &mut sqlx::AnyConnection,
    digest: &Digest,
    now_millis: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM gc_cleared WHERE cleared_at < $1")
        .bind(now_millis - CLEARED_KEPT_MILLIS)
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "INSERT INTO gc_cleared (digest, clears, cleared_at) VALUES ($1, 1, $2)
         ON CONFLICT (digest) DO UPDATE SET clears = gc_cleared.clears + 1,
                                            cleared_at = excluded.cleared_at",
    )
    .bind(digest.to_string())
    .bind(now_millis)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

impl Metadata {
    /// The write transaction of a commit that links `digest`'s bytes, written outside the
    /// database: `bytes_present` is asked before the transaction begins, and the transaction is
    /// handed back only once it has checked, under the writer lock, that no deletion of `digest`
    /// stands or finished since (the module docs). Refuses with [`StoreError::BlobCollected`]
    /// when the bytes are gone or being deleted.
    pub(crate) async fn begin_bytes_commit<F, Fut>(
        &self,
        digest: &Digest,
        bytes_present: F,
    ) -> Result<WriteTransaction, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        for _ in 0..ATTEMPTS {
            self.check_before_write()?;
            let seen = {
                let mut connection = self.pool().acquire().await?;
                clears(&mut connection, digest).await?
            };
            if !bytes_present().await? {
                return Err(StoreError::BlobCollected(digest.to_string()));
            }
            let mut tx = self.begin_write().await?;
            let tombstone: Vec<i64> =
                sqlx::query_scalar("SELECT 1 FROM gc_tombstones WHERE digest = $1")
                    .bind(digest.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
            if !tombstone.is_empty() {
                return Err(StoreError::BlobCollected(digest.to_string()));
            }
            if clears(&mut tx, digest).await? == seen {
                return Ok(tx);
            }
            // A deletion of this digest finished while the bytes were looked at: drop the
            // transaction (and the writer lock) and look again.
        }
        Err(StoreError::BlobCollected(digest.to_string()))
    }
}
