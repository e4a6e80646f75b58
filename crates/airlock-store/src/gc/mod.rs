//! Garbage collection's queries: which blobs no manifest references, which untagged manifests a
//! retention rule may prune, and the transactions that delete them.
//!
//! # The invariant gc relies on
//!
//! A blob's bytes are needed while any of these holds, and gc deletes a blob only when none does,
//! re-checked inside the write transaction that deletes its row:
//!
//! 1. a manifest held by some repository (`repository_manifests`, any stage) references it
//!    (`manifest_references`, kind `blob`: config and layers). Zero-copy promotion adds
//!    `repository_manifests` rows for the promoted manifest, its children and its evidence
//!    manifests, and the promotion attestation's manifest, so everything in a gated stage is
//!    referenced this way;
//! 2. an evidence row names it (`evidence.blob`: a signature payload, DSSE envelope or Sigstore
//!    bundle, also those submitted through the API, which have no `blobs` row): evidence rows are
//!    never deleted, so evidence bytes are never collected;
//! 3. it was committed or linked into a repository (upload, mount) within the grace period
//!    (`blobs.linked_at`, refreshed by every commit, so a blob uploaded again just now counts as
//!    new however old its row is): the manifest that will reference it is on its way;
//! 4. it is linked into a repository with an upload session open (`uploads`): a push is in
//!    flight there, and its manifest may reference this blob once its other blobs are in,
//!    however long they take.
//!
//! Manifests are pruned (their `repository_manifests` row removed) only from push-stage
//! repositories, only when untagged there and held there since before the retention cutoff, and
//! never when the digest is held by a gated stage, was ever promoted or has a promotion in flight
//! (a promotion `evaluating`, `pending_approval` or `promoted`: the states of the `promotions_live`
//! index), nor when it is a child of a manifest the repository holds, nor when it is evidence (a
//! referrer) about a manifest that is kept, directly or through a chain of referrers (a signature
//! of an SBOM of a tagged image).
//!
//! # Deleting a blob against concurrent pushes
//!
//! The row goes first, with a tombstone (`gc_tombstones`) in the same transaction; then the file;
//! then the tombstone. A commit of the same digest ([`crate::Metadata::commit_blob_checked`])
//! checks that its bytes are there before its transaction and, in it, that no tombstone stands
//! and no deletion of the digest finished since it looked (`bytes_check.rs`), so
//! an upload that raced gc is refused (and uploaded again by the client) rather than acknowledged
//! without bytes. A crash after the row's transaction leaves the tombstone and an orphan file: a
//! later run deletes the file and the tombstone first, once the tombstone is old enough to be an
//! interrupted run's rather than a live run's on another replica. Files in the blob store that no
//! row and no evidence names (a crash, a failed promotion's attestation) are deleted once they are
//! older than the cutoff, through the same tombstone steps (never one whose tombstone stands).
//!
//! On SQLite every write transaction holds the database's single write lock
//! (`BEGIN IMMEDIATE`), which serialises gc's re-check against pushes, mounts and promotions of
//! every replica on the same file. On a database with row-level concurrency (PostgreSQL) the same
//! order must hold: the deleting transaction locks the blob row (`SELECT ... FOR UPDATE`), so a
//! commit's upsert of that row waits for it and then finds the tombstone, and the re-check runs
//! under that lock.

pub(crate) mod bytes_check;

use airlock_core::{AuditRecord, Digest, RepoName, StageName};
use sqlx::Row;

use crate::engine::{Backend, SqlBuilder};

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::{Metadata, parse_digest};

/// A blob gc may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectableBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// An untagged manifest a retention rule may remove from a push-stage repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunableManifest {
    /// The repository it would leave.
    pub repository: RepoName,
    /// Its digest.
    pub digest: Digest,
}

/// The stages gc distinguishes: manifests are pruned in push stages only, and anything a gated
/// stage holds is kept.
#[derive(Debug, Clone)]
pub struct GcStages {
    /// Stages builders push to.
    pub push: Vec<StageName>,
    /// Stages that take content by promotion only.
    pub gated: Vec<StageName>,
}

/// The SQL condition "blob `b` is collectable at cutoff `?`" (the invariant in the module docs,
/// negated), with one bind: the cutoff in ms.
const BLOB_UNREFERENCED: &str = "COALESCE(b.linked_at, b.created_at) < $1
     AND NOT EXISTS (SELECT 1 FROM manifest_references r
                     JOIN repository_manifests rm ON rm.digest = r.digest
                     WHERE r.child = b.digest AND r.kind = 'blob')
     AND NOT EXISTS (SELECT 1 FROM evidence e WHERE e.blob = b.digest)
     AND NOT EXISTS (SELECT 1 FROM repository_blobs rb JOIN uploads u ON u.repository = rb.repository
                     WHERE rb.digest = b.digest)";

// (`BLOB_UNREFERENCED` binds the cutoff as `$1`: statements using it bind the cutoff first.)

/// Pushes "manifest `<repo>.<digest>` may be pruned on its own" for a row of
/// `repository_manifests` aliased `alias` (rules 1-5 of retention), binding the cutoff and stages.
fn push_prunable_alone(query: &mut SqlBuilder, alias: &str, cutoff: i64, stages: &GcStages) {
    query
        .push(format!("({alias}.created_at < "))
        .push_bind(cutoff)
        .push(format!(
            " AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = {alias}.repository
                                AND t.digest = {alias}.digest)
              AND NOT EXISTS (SELECT 1 FROM promotions p WHERE p.digest = {alias}.digest
                                AND p.state IN ('evaluating', 'pending_approval', 'promoted'))
              AND NOT EXISTS (SELECT 1 FROM manifest_references r
                              JOIN repository_manifests parent ON parent.digest = r.digest
                              WHERE r.child = {alias}.digest AND r.kind = 'manifest'
                                AND parent.repository = {alias}.repository)"
        ));
    push_not_in_gated(query, &format!("{alias}.digest"), stages);
    query.push(")");
}

/// Pushes "`digest_expr` is held by no gated stage's repository".
fn push_not_in_gated(query: &mut SqlBuilder, digest_expr: &str, stages: &GcStages) {
    for stage in &stages.gated {
        let prefix = format!("{stage}/");
        query
            .push(format!(
                " AND NOT EXISTS (SELECT 1 FROM repository_manifests g WHERE g.digest = {digest_expr}
                                  AND substr(g.repository, 1, "
            ))
            .push_bind(prefix.len() as i32)
            .push(") = ")
            .push_bind(prefix)
            .push(")");
    }
}

/// Pushes the whole retention condition for `repository_manifests` aliased `rm`: in a push
/// stage, prunable alone, and no manifest up its chain of subjects is kept. Walking up `rm`'s
/// subject, that subject's subject and so on within the repository (a signature of an SBOM of an
/// image), each one is kept if it has a promotion in flight or done, is held by a gated stage, or
/// is held by the repository and not prunable alone; any kept one keeps `rm`. A subject the
/// repository does not hold ends the chain.
fn push_prunable(query: &mut SqlBuilder, cutoff: i64, stages: &GcStages) {
    query.push("(");
    let mut first = true;
    for stage in &stages.push {
        let prefix = format!("{stage}/");
        query
            .push(if first { "(" } else { " OR (" })
            .push("substr(rm.repository, 1, ")
            .push_bind(prefix.len() as i32)
            .push(") = ")
            .push_bind(prefix)
            .push(")");
        first = false;
    }
    if first {
        query.push("1 = 0");
    }
    query.push(") AND ");
    push_prunable_alone(query, "rm", cutoff, stages);
    query.push(
        " AND NOT EXISTS (WITH RECURSIVE up(d) AS (
                SELECT rm.subject
                UNION SELECT s.subject FROM repository_manifests s JOIN up ON s.digest = up.d
                      WHERE s.repository = rm.repository AND s.subject IS NOT NULL)
              SELECT 1 FROM up WHERE up.d IS NOT NULL AND (
                EXISTS (SELECT 1 FROM promotions p WHERE p.digest = up.d
                        AND p.state IN ('evaluating', 'pending_approval', 'promoted'))
                OR NOT (1 = 1",
    );
    push_not_in_gated(query, "up.d", stages);
    query.push(
        ") OR EXISTS (SELECT 1 FROM repository_manifests s
                  WHERE s.repository = rm.repository AND s.digest = up.d AND NOT ",
    );
    push_prunable_alone(query, "s", cutoff, stages);
    query.push(")))");
}

impl Metadata {
    /// Blobs collectable at `cutoff_millis` (the invariant in the module docs does not hold for
    /// them), in digest order. A snapshot: [`Metadata::gc_delete_blob_row`] checks each again.
    pub async fn gc_unreferenced_blobs(
        &self,
        cutoff_millis: i64,
    ) -> Result<Vec<CollectableBlob>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT b.digest, b.size FROM blobs b WHERE {BLOB_UNREFERENCED} ORDER BY b.digest"
        )))
        .bind(cutoff_millis)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(CollectableBlob {
                    digest: parse_digest(row.get("digest"))?,
                    size: row.get::<i64, _>("size") as u64,
                })
            })
            .collect()
    }

    /// Deletes a blob's row and its repository links if it is still collectable at
    /// `cutoff_millis`, leaving a tombstone for the file, in one transaction. Returns whether it
    /// did; the caller then deletes the file and calls [`Metadata::gc_clear_tombstone`].
    pub async fn gc_delete_blob_row(
        &self,
        digest: &Digest,
        cutoff_millis: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let still: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM blobs b WHERE {BLOB_UNREFERENCED} AND b.digest = $2"
        )))
        .bind(cutoff_millis)
        .bind(digest.to_string())
        .fetch_all(&mut *tx)
        .await?;
        if still.is_empty() {
            return Ok(false);
        }
        insert_tombstone(&mut tx, digest).await?;
        sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether a file in the blob store is an orphan now: no `blobs` row and no evidence row
    /// names its digest.
    pub async fn gc_is_orphan(&self, digest: &Digest) -> Result<bool, StoreError> {
        let named: Vec<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blobs WHERE digest = $1
             UNION ALL SELECT 1 FROM evidence WHERE blob = $1 LIMIT 1",
        )
        .bind(digest.to_string())
        .fetch_all(self.pool())
        .await?;
        Ok(named.is_empty())
    }

    /// Leaves a tombstone for an orphan file if it is still an orphan and has none (checked in
    /// the same transaction). Returns whether it did; the caller then deletes the file and clears
    /// it.
    pub async fn gc_tombstone_orphan(&self, digest: &Digest) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let named: Vec<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blobs WHERE digest = $1
             UNION ALL SELECT 1 FROM evidence WHERE blob = $1 LIMIT 1",
        )
        .bind(digest.to_string())
        .fetch_all(&mut *tx)
        .await?;
        // A tombstone already standing is another run's deletion in progress (or an interrupted
        // one, finished once stale): that run clears it after deleting the file, not this one.
        if !named.is_empty() || !insert_tombstone(&mut tx, digest).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Tombstones a run left behind (it stopped between a row's deletion and its file's): those
    /// made before `before_millis`. A run in progress holds its tombstone for the moment between
    /// deleting a row and its file; finishing (and clearing) it from another replica meanwhile
    /// would let an upload of the digest through before that file deletion, so only tombstones
    /// older than any such moment are taken.
    pub async fn gc_tombstones(&self, before_millis: i64) -> Result<Vec<Digest>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT digest FROM gc_tombstones WHERE created_at < $1 ORDER BY digest",
        )
        .bind(before_millis)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(parse_digest).collect()
    }

    /// Removes a tombstone once its file is gone, recording that a deletion of the digest
    /// finished (`gc_cleared`, for commits that looked at their bytes before their transaction:
    /// `bytes_check.rs`).
    pub async fn gc_clear_tombstone(&self, digest: &Digest) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM gc_tombstones WHERE digest = $1")
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        bytes_check::record_cleared(&mut tx, digest, crate::metadata::now_millis()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Untagged manifests the retention rule may prune at `cutoff_millis` (held in their
    /// push-stage repository since before it), at most `limit`, in (repository, digest) order.
    pub async fn gc_prunable_manifests(
        &self,
        cutoff_millis: i64,
        stages: &GcStages,
        limit: u32,
    ) -> Result<Vec<PrunableManifest>, StoreError> {
        let mut query =
            SqlBuilder::new("SELECT rm.repository, rm.digest FROM repository_manifests rm WHERE ");
        push_prunable(&mut query, cutoff_millis, stages);
        query
            .push(" ORDER BY rm.repository, rm.digest LIMIT ")
            .push_bind(limit as i64);
        let rows = query.build(self.backend())?.fetch_all(self.pool()).await?;
        rows.into_iter()
            .map(|row| {
                let repository: String = row.get("repository");
                Ok(PrunableManifest {
                    repository: repository
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("repository {repository:?}")))?,
                    digest: parse_digest(row.get("digest"))?,
                })
            })
            .collect()
    }

    /// Removes an untagged manifest from its push-stage repository if the retention rule still
    /// allows it (checked again in the transaction). Returns whether it did.
    pub async fn gc_prune_manifest(
        &self,
        manifest: &PrunableManifest,
        cutoff_millis: i64,
        stages: &GcStages,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut query =
            SqlBuilder::new("DELETE FROM repository_manifests AS rm WHERE rm.repository = ");
        query
            .push_bind(manifest.repository.as_str())
            .push(" AND rm.digest = ")
            .push_bind(manifest.digest.to_string())
            .push(" AND ");
        push_prunable(&mut query, cutoff_millis, stages);
        let done = query.build(Backend::of(&tx))?.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends a gc run's audit record in its own transaction.
    pub async fn record_gc(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Inserts a tombstone for `digest`; false if one stands already.
async fn insert_tombstone(
    tx: &mut sqlx::AnyConnection,
    digest: &Digest,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO gc_tombstones (digest, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(digest.to_string())
    .bind(crate::now_millis())
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests;
