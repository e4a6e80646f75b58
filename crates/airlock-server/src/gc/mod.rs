//! Garbage collection (`airlock gc`, `POST /api/v1/gc`): mark and sweep of blobs no manifest
//! references, and the retention rule for untagged manifests in push stages.
//!
//! It runs inside the server, on the same database and blob store as concurrent pushes. What it
//! may delete, and why that is safe against pushes in flight, is stated once, in
//! `airlock_store`'s `gc` module (the invariant and the tombstone steps); this service orders the
//! steps of a run, checks who may start one and records it:
//!
//! 1. finish deletions an interrupted run left (tombstones: the row gone, the file not yet);
//! 2. prune untagged manifests from push-stage repositories older than `keep_untagged_days`
//!    (repeated while a pass prunes something, so an index's children and its referrers go in the
//!    same run as the index);
//! 3. delete each blob no manifest, evidence or upload in flight references and that was last
//!    committed or linked before the grace period: the row (re-checked in its transaction), then
//!    the file;
//! 4. delete files no row names that are older than the grace period (a crash between a row's
//!    deletion and its file's, a failed write);
//! 5. delete objects staged for upload sessions that no session will use, older than the grace
//!    period: every object of a session whose row is gone (a crash, or a failed deletion, between
//!    a session's end and its data's), and in a live session an object for a chunk the session
//!    recorded from another attempt (the loser of a race between replicas that died before
//!    deleting its object). An object past a live session's recorded chunks may still be
//!    streaming in: it stays, and goes with its session;
//! 6. append one audit entry with the counts and bytes (a dry run changes nothing and records
//!    nothing: it is not a change anyone can see). A run that fails half-way records what it did
//!    until then, with the error, before it reports the error.
//!
//! A run is a task of its own, not part of the request that started it: a client that
//! disconnects or times out does not stop it between a row's deletion and its file's, nor before
//! its audit entry. A file whose deletion fails has its tombstone cleared all the same (it is then
//! a file no row names, which a later run deletes), so uploads of that digest are not refused.
//!
//! Only one run at a time per process (a second is refused with 409); runs on other replicas
//! are harmless, since every deletion re-checks its condition in its own transaction.
//!
//! Who may run it: a principal with `manage-access` everywhere (scope `*`), the administrator's
//! permission (the bootstrap `admin` holds it): gc deletes data from every repository and stage,
//! so it needs a registry-wide administrative grant, not a repository's `delete`.

pub mod routes;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use airlock_api::gc::GcReport;
use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::{Actor, AuditEvent, AuditRecord, StageMode, Stages};
use airlock_store::{BlobStore, GcStages, Metadata, StoreError, now_millis};
use uuid::Uuid;

use crate::config::GcConfig;
use crate::identity::Authenticated;

/// How old a tombstone must be before a run finishes it as an interrupted run's: far longer than
/// the moment between a row's deletion and its file's in a run that is alive (on another replica).
const STALE_TOMBSTONE_MILLIS: i64 = 10 * 60 * 1000;

/// Manifests listed per retention pass, and passes per run at most.
const PRUNE_BATCH: u32 = 10_000;
const PRUNE_PASSES: usize = 16;

/// Why a gc run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The caller may not run gc.
    #[error(
        "{principal} may not run garbage collection: that needs the access-admin role everywhere (scope *)"
    )]
    Forbidden {
        /// The caller.
        principal: String,
    },
    /// Another run is in progress, in this process or on another replica.
    #[error(
        "a garbage-collection run is already in progress (on this server or another replica of it); wait for it to finish and run gc again"
    )]
    Running,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's cross-replica lock was lost (its connection failed or did not answer), so
    /// another replica may be collecting: the run stopped before its next delete.
    #[error(
        "the garbage-collection run stopped: its lock on the database was lost (the connection failed or did not answer), so another replica may be running gc; what it deleted so far is recorded. Run gc again once the database is reachable"
    )]
    LockLost,
    /// The run's task ended without a result (it panicked, or the server is shutting down).
    #[error("the garbage-collection run stopped: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// How long a run goes on deleting after its last check that it still holds its lock.
const LOCK_RECHECK: Duration = Duration::from_secs(1);

/// A run's cross-replica lock ([`airlock_store::SessionLockKey::GarbageCollection`]), checked
/// again before deletes: a run whose lock was lost (a failed or hung connection: another replica
/// may have taken it) stops instead of deleting alongside another run.
struct RunLock {
    lock: airlock_store::SessionLock,
    checked: std::time::Instant,
}

impl RunLock {
    /// Checks that the run still holds its lock (at most once per [`LOCK_RECHECK`]; in
    /// between, the last check stands). Returns `true` to read as a condition.
    async fn still_held(&mut self) -> Result<bool, GcError> {
        if self.checked.elapsed() < LOCK_RECHECK {
            return Ok(true);
        }
        match self.lock.hold().await {
            Ok(true) => {
                self.checked = std::time::Instant::now();
                Ok(true)
            }
            Ok(false) => Err(GcError::LockLost),
            Err(err) => {
                tracing::error!(error = %err, "garbage collection lost its lock on the database");
                Err(GcError::LockLost)
            }
        }
    }
}

/// The garbage collector.
pub struct Collector {
    metadata: Metadata,
    blobs: BlobStore,
    stages: GcStages,
    config: GcConfig,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Collector {
    /// A collector over the registry's storage, with the stage list and `[gc]` settings.
    pub fn new(metadata: Metadata, blobs: BlobStore, stages: &Stages, config: GcConfig) -> Self {
        let of_mode = |mode: StageMode| {
            stages
                .all()
                .iter()
                .filter(|s| s.mode == mode)
                .map(|s| s.name.clone())
                .collect()
        };
        Self {
            metadata,
            blobs,
            stages: GcStages {
                push: of_mode(StageMode::Push),
                gated: of_mode(StageMode::Gated),
            },
            config,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Runs garbage collection for `who` (`None` with access control off), or with `dry_run`
    /// only counts what it would delete.
    pub async fn run(
        self: &Arc<Self>,
        who: Option<&Authenticated>,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<GcReport, GcError> {
        if let Some(who) = who
            && !who.has(Permission::ManageAccess, &PermissionTarget::Global)
        {
            return Err(GcError::Forbidden {
                principal: who.principal.name.clone(),
            });
        }
        let Ok(running) = self.running.clone().try_lock_owned() else {
            return Err(GcError::Running);
        };
        // One run at a time across every replica on the database, too.
        let mut exclusive = self
            .metadata
            .session_lock(airlock_store::SessionLockKey::GarbageCollection);
        if !exclusive.hold().await? {
            return Err(GcError::Running);
        }
        let collector = Arc::clone(self);
        let actor = actor.clone();
        // Awaited, not aborted, when the request is dropped (see the module docs).
        let run = tokio::spawn(async move {
            let _running = running;
            let mut lock = RunLock {
                lock: exclusive,
                checked: std::time::Instant::now(),
            };
            let report = collector
                .run_at(now_millis(), &actor, dry_run, &mut lock)
                .await;
            lock.lock.release().await;
            report
        });
        run.await?
    }

    /// One run as of `now_millis` (the clock is an argument so tests can move it). A real run
    /// is recorded also when a step fails, with what it did until then and the error.
    async fn run_at(
        &self,
        now_millis: i64,
        actor: &Actor,
        dry_run: bool,
        lock: &mut RunLock,
    ) -> Result<GcReport, GcError> {
        let mut report = GcReport {
            dry_run,
            grace_secs: self.config.grace_secs,
            keep_untagged_days: self.config.keep_untagged_days,
            ..GcReport::default()
        };
        let outcome = self.sweep(now_millis, dry_run, &mut report, lock).await;
        if dry_run {
            tracing::info!(?report, "garbage collection dry run");
            return outcome.map(|()| report);
        }
        let error = outcome.as_ref().err().map(ToString::to_string);
        match &error {
            None => tracing::info!(?report, "garbage collection"),
            Some(error) => tracing::error!(?report, %error, "garbage collection failed"),
        }
        let recorded = self
            .metadata
            .record_gc(&[AuditRecord {
                time_millis: now_millis,
                actor: actor.clone(),
                event: AuditEvent::GarbageCollected {
                    blobs: report.blobs,
                    bytes: report.bytes,
                    orphan_files: report.orphan_files,
                    orphan_bytes: report.orphan_bytes,
                    staged_objects: report.staged_objects,
                    staged_bytes: report.staged_bytes,
                    manifests_pruned: report.manifests_pruned,
                    grace_secs: report.grace_secs,
                    error,
                },
            }])
            .await;
        match (outcome, recorded) {
            (Ok(()), recorded) => recorded.map(|()| report).map_err(GcError::from),
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(audit)) => {
                tracing::error!(error = %audit, "the failed garbage-collection run could not be recorded");
                Err(err)
            }
        }
    }

    /// The steps of a run (module docs), counting into `report` as they go.
    async fn sweep(
        &self,
        now_millis: i64,
        dry_run: bool,
        report: &mut GcReport,
        lock: &mut RunLock,
    ) -> Result<(), GcError> {
        let grace = Duration::from_secs(self.config.grace_secs);
        let grace_millis = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_millis.saturating_sub(grace_millis);
        if !dry_run {
            self.finish_tombstones(
                now_millis.saturating_sub(STALE_TOMBSTONE_MILLIS),
                report,
                lock,
            )
            .await?;
        }
        if let Some(days) = self.config.keep_untagged_days {
            let manifest_cutoff =
                now_millis.saturating_sub(i64::from(days).saturating_mul(86_400_000));
            self.prune(manifest_cutoff, dry_run, report, lock).await?;
        }
        for blob in self.metadata.gc_unreferenced_blobs(cutoff).await? {
            if dry_run {
                report.blobs += 1;
                report.bytes += blob.size;
            } else if lock.still_held().await?
                && self
                    .metadata
                    .gc_delete_blob_row(&blob.digest, cutoff)
                    .await?
            {
                // The row is gone: counted even if its file's deletion fails.
                report.blobs += 1;
                report.bytes += blob.size;
                self.delete_file(&blob.digest).await?;
            }
        }
        for file in self.blobs.list_blobs().await? {
            if file.modified_millis >= cutoff || !self.metadata.gc_is_orphan(&file.digest).await? {
                continue;
            }
            if dry_run {
                report.orphan_files += 1;
                report.orphan_bytes += file.size;
            } else if lock.still_held().await?
                && self.metadata.gc_tombstone_orphan(&file.digest).await?
            {
                self.delete_file(&file.digest).await?;
                report.orphan_files += 1;
                report.orphan_bytes += file.size;
            }
        }
        self.sweep_staged(cutoff, dry_run, report).await
    }

    /// Deletes staged upload objects last written before `cutoff` that no session will use (step
    /// 5 of the module docs). A session's row, once gone, never comes back (ids are random), and a
    /// chunk position a live session recorded from another attempt is never recorded again (the
    /// record is a compare-and-set on the session's size), so neither check can be undone by a
    /// write in flight.
    async fn sweep_staged(
        &self,
        cutoff: i64,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), GcError> {
        let mut sessions: HashMap<Uuid, Option<Vec<String>>> = HashMap::new();
        for object in self.blobs.list_staged().await? {
            if object.modified_millis >= cutoff {
                continue;
            }
            let attempts = match sessions.entry(object.upload) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(
                    self.metadata
                        .upload(object.upload)
                        .await?
                        .map(|session| session.chunk_attempts),
                ),
            };
            let unused = match attempts {
                None => true,
                Some(attempts) => {
                    usize::try_from(object.chunk).is_ok_and(|chunk| chunk < attempts.len())
                        && !object.is_recorded_in(attempts)
                }
            };
            if !unused {
                continue;
            }
            if !dry_run {
                self.blobs.delete_staged(&object).await?;
                tracing::info!(upload = %object.upload, chunk = object.chunk, attempt = %object.attempt, bytes = object.size, "deleted staged upload data no session uses");
            }
            report.staged_objects += 1;
            report.staged_bytes += object.size;
        }
        Ok(())
    }

    /// Deletes a tombstoned file, then clears its tombstone, also when the deletion failed: the
    /// file is then one no row names, which a later run deletes, and an upload of the digest
    /// meanwhile is checked for its bytes as usual, rather than refused until a run ten minutes
    /// later finishes the tombstone.
    async fn delete_file(&self, digest: &airlock_core::Digest) -> Result<(), GcError> {
        let deleted = self.blobs.delete(digest).await;
        let cleared = self.metadata.gc_clear_tombstone(digest).await;
        deleted?;
        cleared?;
        Ok(())
    }

    /// Deletes the files of rows an interrupted run deleted (tombstones made before
    /// `before_millis`), and clears their tombstones.
    async fn finish_tombstones(
        &self,
        before_millis: i64,
        report: &mut GcReport,
        lock: &mut RunLock,
    ) -> Result<(), GcError> {
        for digest in self.metadata.gc_tombstones(before_millis).await? {
            lock.still_held().await?;
            // A row for the digest (a promotion's attestation written since) keeps the file.
            if self.metadata.gc_is_orphan(&digest).await? {
                if let Some(size) = self.blobs.size(&digest).await? {
                    report.orphan_files += 1;
                    report.orphan_bytes += size;
                }
                self.delete_file(&digest).await?;
            } else {
                self.metadata.gc_clear_tombstone(&digest).await?;
            }
        }
        Ok(())
    }

    /// Applies the retention rule: removes untagged manifests held in push-stage repositories
    /// since before `cutoff`. A dry run counts the first pass only (what is prunable now).
    async fn prune(
        &self,
        cutoff: i64,
        dry_run: bool,
        report: &mut GcReport,
        lock: &mut RunLock,
    ) -> Result<(), GcError> {
        for _ in 0..PRUNE_PASSES {
            let candidates = self
                .metadata
                .gc_prunable_manifests(cutoff, &self.stages, PRUNE_BATCH)
                .await?;
            if dry_run {
                report.manifests_pruned = candidates.len() as u64;
                return Ok(());
            }
            let mut this_pass = 0;
            for manifest in &candidates {
                lock.still_held().await?;
                if self
                    .metadata
                    .gc_prune_manifest(manifest, cutoff, &self.stages)
                    .await?
                {
                    tracing::info!(repository = %manifest.repository, digest = %manifest.digest, "pruned untagged manifest");
                    this_pass += 1;
                    report.manifests_pruned += 1;
                }
            }
            if this_pass == 0 {
                break;
            }
        }
        Ok(())
    }
}
