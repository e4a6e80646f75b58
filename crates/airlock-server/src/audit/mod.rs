//! The audit log service: the log key, the integrator that hashes appended entries and signs
//! checkpoints, and the reads behind the tlog-tiles and JSON endpoints.
//!
//! Entries are appended by storage inside the transaction of each change (see
//! `airlock_store::Metadata`); this service never appends. It turns the appended entries into a
//! verifiable log: every round it reads the entries past the newest checkpoint, computes their
//! RFC 6962 hashes, signs a C2SP checkpoint over the new tree and stores hashes and checkpoint in
//! one transaction. Rounds run several times a second while there are new entries, so a checkpoint
//! is never more than a second behind. With several replicas on one database only the leader
//! (`crate::leadership`) runs rounds; every replica serves tiles, checkpoints and proofs.

mod consistency;
pub mod routes;
mod stored;
pub mod witnesses;

pub use stored::{StoredLogError, StoredLogReport, verify_stored_entries, verify_stored_log};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock_audit::{
    AuditError, ConsistencyProof, Hash, HashReader, InclusionProof, LogKey, TilePath,
};
use airlock_store::{Metadata, StoreError, StoredCheckpoint, StoredEntry, now_millis};

/// Most entries integrated in one round (bounds the round's memory and transaction).
const BATCH: u64 = 20_000;
/// How often the integrator looks for new entries.
const ROUND_INTERVAL: Duration = Duration::from_millis(200);
/// Failed rounds in a row after which writes stop until a round succeeds again (a lone failure,
/// such as a busy database, does not stop anything).
const FAILURES_BEFORE_STOP: u32 = 3;
/// Entries per tile (C2SP tlog-tiles: height 8).
pub const TILE_WIDTH: u64 = 256;

/// Why an audit log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log math or a signature failed.
    #[error("audit log: {0}")]
    Log(#[from] AuditError),
    /// The log key file could not be read or written.
    #[error("log key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The stored log is inconsistent (an entry is missing below the newest index).
    #[error("audit log integrity: {0}")]
    Integrity(String),
    /// A hash tile beyond the newest checkpointed tree (or not a tile of it).
    #[error("{0}")]
    TileOutOfRange(#[source] AuditError),
    /// An entry bundle beyond the newest checkpointed tree.
    #[error("entry bundle {start}..{end} is beyond the checkpointed tree of {tree_size} entries")]
    EntryBundleOutOfRange {
        /// Its first entry.
        start: u64,
        /// One past its last entry.
        end: u64,
        /// The checkpointed tree size.
        tree_size: u64,
    },
    /// An inclusion proof outside the newest checkpointed tree.
    #[error("need index < tree_size <= {newest}; got index {index}, tree_size {tree_size}")]
    InclusionOutOfRange {
        /// The entry asked for.
        index: u64,
        /// The tree size asked for.
        tree_size: u64,
        /// The newest checkpoint's size.
        newest: u64,
    },
    /// A consistency proof outside the newest checkpointed tree.
    #[error("need 1 <= from <= to <= {newest}; got from {from}, to {to}")]
    ConsistencyOutOfRange {
        /// The older size asked for.
        from: u64,
        /// The newer size asked for.
        to: u64,
        /// The newest checkpoint's size.
        newest: u64,
    },
    /// A background computation could not finish.
    #[error("audit log task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The audit log service.
pub struct AuditLog {
    metadata: Metadata,
    key: LogKey,
    /// The witnesses configured to cosign the log (`[[audit.witnesses]]`).
    witnesses: Vec<crate::config::AuditWitness>,
}

/// Reads stored hashes from the database from inside `spawn_blocking` (the tlog algorithms are
/// synchronous and ask for hashes one small batch at a time).
struct DbHashes {
    metadata: Metadata,
    runtime: tokio::runtime::Handle,
}

impl HashReader for DbHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, AuditError> {
        let found = self
            .runtime
            .block_on(self.metadata.audit_hashes(indexes))
            .map_err(|e| AuditError::HashStorage(Box::new(e)))?;
        indexes
            .iter()
            .zip(found)
            .map(|(index, hash)| {
                hash.map(Hash)
                    .ok_or(AuditError::MissingStoredHash { index: *index })
            })
            .collect()
    }
}

/// Loads the log key from `path`, or generates one named `origin` and writes it there (mode 0600).
fn load_or_create_key(path: &Path, origin: &str) -> Result<(LogKey, bool), AuditLogError> {
    let key_error = |message: String| AuditLogError::KeyFile {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((LogKey::from_private_text(&text)?, false)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = LogKey::generate(origin)?;
            write_private_file(path, key.private_text().as_bytes())
                .map_err(|e| key_error(e.to_string()))?;
            Ok((key, true))
        }
        Err(err) => Err(key_error(err.to_string())),
    }
}

/// Writes a secret file readable only by its owner, failing if it already exists.
pub(crate) fn write_private_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

impl AuditLog {
    /// Opens the log over `metadata`, loading the log key from `<data_dir>/log-key` or creating it
    /// (named `origin`) on first start, checks that entries, stored hashes and the newest
    /// checkpoint agree (see `consistency`; a disagreement is [`AuditLogError::Integrity`] and
    /// the server does not start), and signs the empty checkpoint of a new log.
    pub async fn open(
        metadata: Metadata,
        data_dir: &Path,
        origin: &str,
    ) -> Result<Self, AuditLogError> {
        let path = data_dir.join("log-key");
        let (key, created) = load_or_create_key(&path, origin)?;
        if created {
            tracing::info!(path = %path.display(), verifier_key = key.verifier_key(), "generated the audit log key");
        }
        Self::open_with_key(metadata, key).await
    }

    /// [`AuditLog::open`] with the log key given (the key shared by replicas through the
    /// database, `server_keys`) instead of the data directory's file.
    pub async fn open_with_key(metadata: Metadata, key: LogKey) -> Result<Self, AuditLogError> {
        consistency::check(&metadata, &key).await?;
        let log = Self {
            metadata,
            key,
            witnesses: Vec::new(),
        };
        if log.metadata.latest_checkpoint().await?.is_none() {
            let note = log.key.sign_checkpoint(0, &Hash::EMPTY_TREE)?;
            let checkpoint = StoredCheckpoint {
                size: 0,
                root: Hash::EMPTY_TREE.0,
                note,
                created_at: now_millis(),
            };
            log.metadata.record_integration(0, &[], &checkpoint).await?;
        }
        Ok(log)
    }

    /// The public key (C2SP signed-note verifier key) that verifies this log's checkpoints.
    pub fn verifier_key(&self) -> &str {
        self.key.verifier_key()
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        self.key.origin()
    }

    /// Integrates entries appended since the newest checkpoint (up to one batch) and signs a new
    /// checkpoint. Returns the new tree size, or `None` if there was nothing to do (or another
    /// integrator got there first).
    pub async fn integrate(&self) -> Result<Option<u64>, AuditLogError> {
        let Some(latest) = self.metadata.latest_checkpoint().await? else {
            return Err(AuditLogError::Integrity("no checkpoint".into()));
        };
        let appended = self.metadata.audit_entry_count().await?;
        if appended <= latest.size {
            return Ok(None);
        }
        let end = appended.min(latest.size + BATCH);
        let entries = self.metadata.audit_entries(latest.size, end).await?;
        let mut leaves = Vec::with_capacity(entries.len());
        for (expected, entry) in (latest.size..end).zip(&entries) {
            if entry.index != expected {
                return Err(AuditLogError::Integrity(format!(
                    "entry {expected} is missing from the database"
                )));
            }
            leaves.push(airlock_audit::leaf_hash(&entry.entry));
        }
        if (leaves.len() as u64) != end - latest.size {
            return Err(AuditLogError::Integrity(format!(
                "entries {}..{end} are incomplete",
                latest.size
            )));
        }
        let reader = self.db_hashes();
        let start = latest.size;
        let (hashes, root) = tokio::task::spawn_blocking(move || {
            let hashes = airlock_audit::hashes_to_store(start, &leaves, &reader)?;
            let overlay: airlock_audit::MemoryHashes = hashes.iter().copied().collect();
            let root = airlock_audit::tree_root(
                end,
                &Overlay {
                    first: &overlay,
                    then: &reader,
                },
            )?;
            Ok::<_, AuditError>((hashes, root))
        })
        .await
        .map_err(AuditLogError::Task)??;
        let note = self.key.sign_checkpoint(end, &root)?;
        let checkpoint = StoredCheckpoint {
            size: end,
            root: root.0,
            note,
            created_at: now_millis(),
        };
        let hashes: Vec<(u64, [u8; 32])> = hashes.into_iter().map(|(i, h)| (i, h.0)).collect();
        if self
            .metadata
            .record_integration(latest.size, &hashes, &checkpoint)
            .await?
        {
            Ok(Some(end))
        } else {
            Ok(None)
        }
    }

    /// Runs integration rounds until the task is dropped, updating the log metrics. Only the
    /// replica that leads signs (see [`crate::leadership`]): each round first takes or checks
    /// leadership, and a replica that does not lead integrates nothing and never stops writes
    /// because of integration. On the leader, after [`FAILURES_BEFORE_STOP`] failed rounds in a
    /// row it stops writes (so nothing more is acknowledged that the log cannot sign; readiness
    /// fails too) until a round succeeds or it no longer leads.
    pub async fn run_integrator(self: Arc<Self>, leadership: Arc<crate::leadership::Leadership>) {
        let mut interval = tokio::time::interval(ROUND_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        // A replica that does not lead refreshes its audit gauges once per leadership check, not
        // every round: two reads five times a second per follower were most of an idle
        // follower's database work.
        let mut follower_metrics_at: Option<std::time::Instant> = None;
        loop {
            interval.tick().await;
            if !leadership.lead().await {
                if failures >= FAILURES_BEFORE_STOP {
                    tracing::warn!(
                        "this replica no longer leads: another signs the audit log; writes resume"
                    );
                    self.metadata.resume_writes();
                }
                failures = 0;
                if follower_metrics_at
                    .is_none_or(|at| at.elapsed() >= crate::leadership::CHECK_INTERVAL)
                {
                    self.update_metrics().await;
                    follower_metrics_at = Some(std::time::Instant::now());
                }
                continue;
            }
            follower_metrics_at = None;
            loop {
                match self.integrate().await {
                    Ok(Some(size)) => tracing::debug!(size, "signed audit checkpoint"),
                    Ok(None) => {
                        if failures >= FAILURES_BEFORE_STOP {
                            tracing::warn!("audit log integration works again; writes resume");
                            self.metadata.resume_writes();
                        }
                        failures = 0;
                        break;
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        tracing::error!(error = %err, failures, "audit log integration failed");
                        if failures == FAILURES_BEFORE_STOP {
                            // The reason reaches anonymous callers (/readyz, refused writes):
                            // the error itself stays in the server log, logged just above.
                            self.metadata.stop_writes(
                                "the audit log cannot sign new entries; writes are refused until it can. Check the server log; if the audit tables were edited, stop airlock and restore the database from a backup (docs/operations.md, Recovery)".into(),
                            );
                        }
                        break;
                    }
                }
            }
            self.update_metrics().await;
        }
    }

    async fn update_metrics(&self) {
        if let Ok(count) = self.metadata.audit_entry_count().await {
            metrics::gauge!(crate::metrics::AUDIT_ENTRIES).set(count as f64);
        }
        if let Ok(Some(latest)) = self.metadata.latest_checkpoint().await {
            metrics::gauge!(crate::metrics::AUDIT_CHECKPOINT_SIZE).set(latest.size as f64);
            let age = (now_millis() - latest.created_at).max(0) as f64 / 1000.0;
            metrics::gauge!(crate::metrics::AUDIT_CHECKPOINT_AGE).set(age);
        }
    }

    fn db_hashes(&self) -> DbHashes {
        DbHashes {
            metadata: self.metadata.clone(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Sets the witnesses configured to cosign the log (before the log is shared).
    pub fn set_witnesses(&mut self, witnesses: Vec<crate::config::AuditWitness>) {
        self.witnesses = witnesses;
    }

    /// The newest signed checkpoint with the cosignatures its witnesses returned appended to
    /// the note (as `/log/checkpoint` serves it).
    pub async fn latest_cosigned_checkpoint(&self) -> Result<StoredCheckpoint, AuditLogError> {
        let mut latest = self.latest_checkpoint().await?;
        for line in self.metadata.cosignatures(latest.size).await? {
            latest.note.push_str(&line);
        }
        Ok(latest)
    }

    /// Where each configured witness stands, and how many cosigned the newest checkpoint.
    pub async fn witness_statuses(
        &self,
    ) -> Result<airlock_api::audit::WitnessStatusList, AuditLogError> {
        let latest = self.latest_checkpoint().await?;
        let cosignatures = self.metadata.cosignatures(latest.size).await?.len() as u64;
        let statuses = self.metadata.witness_statuses().await?;
        let witnesses = self
            .witnesses
            .iter()
            .map(|witness| {
                let key = witness.key.trim();
                let status = statuses.iter().find(|status| status.witness == key);
                airlock_api::audit::WitnessStatus {
                    name: airlock_audit::witness_key_name(key).unwrap_or_default(),
                    key: key.to_owned(),
                    cosigned_size: status.map_or(0, |status| status.cosigned_size),
                    last_error: status.and_then(|status| status.last_error.clone()),
                    updated_at: status
                        .map(|status| airlock_core::audit::rfc3339_millis(status.updated_at)),
                }
            })
            .collect();
        Ok(airlock_api::audit::WitnessStatusList {
            size: latest.size,
            cosignatures,
            witnesses,
        })
    }

    /// The newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<StoredCheckpoint, AuditLogError> {
        self.metadata
            .latest_checkpoint()
            .await?
            .ok_or_else(|| AuditLogError::Integrity("no checkpoint".into()))
    }

    /// Every checkpoint with `size > after`, oldest first, at most `limit`.
    pub async fn checkpoints_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredCheckpoint>, AuditLogError> {
        let all = self.metadata.checkpoints().await?;
        Ok(all
            .into_iter()
            .filter(|c| c.size > after)
            .take(limit)
            .collect())
    }

    /// A tile of the newest tree: hash tiles from stored hashes, entry bundles from entries.
    pub async fn tile(&self, path: &TilePath) -> Result<Vec<u8>, AuditLogError> {
        let tree_size = self.latest_checkpoint().await?.size;
        match *path {
            TilePath::Hashes {
                level,
                index,
                width,
            } => {
                let reader = self.db_hashes();
                tokio::task::spawn_blocking(move || {
                    airlock_audit::hash_tile(level, index, width, tree_size, &reader)
                })
                .await
                .map_err(AuditLogError::Task)?
                .map_err(AuditLogError::TileOutOfRange)
            }
            TilePath::Entries { index, width } => {
                let start = index.saturating_mul(TILE_WIDTH);
                let end = start.saturating_add(u64::from(width));
                if end > tree_size {
                    return Err(AuditLogError::EntryBundleOutOfRange {
                        start,
                        end,
                        tree_size,
                    });
                }
                let entries = self.metadata.audit_entries(start, end).await?;
                if entries.len() as u64 != end - start {
                    return Err(AuditLogError::Integrity(format!(
                        "entries {start}..{end} are incomplete in the database"
                    )));
                }
                let slices: Vec<&[u8]> = entries.iter().map(|e| e.entry.as_slice()).collect();
                Ok(airlock_audit::entry_bundle(&slices)?)
            }
        }
    }

    /// Proof that entry `index` is in the tree of `tree_size` (default: the newest checkpoint).
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, AuditLogError> {
        let latest = self.latest_checkpoint().await?;
        let tree_size = tree_size.unwrap_or(latest.size);
        if tree_size > latest.size || index >= tree_size {
            return Err(AuditLogError::InclusionOutOfRange {
                index,
                tree_size,
                newest: latest.size,
            });
        }
        let reader = self.db_hashes();
        tokio::task::spawn_blocking(move || InclusionProof::prove(tree_size, index, &reader))
            .await
            .map_err(AuditLogError::Task)?
            .map_err(AuditLogError::from)
    }

    /// Proof that the tree of `old_size` is a prefix of the tree of `new_size` (default: newest).
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: Option<u64>,
    ) -> Result<ConsistencyProof, AuditLogError> {
        let latest = self.latest_checkpoint().await?;
        let new_size = new_size.unwrap_or(latest.size);
        if new_size > latest.size || old_size == 0 || old_size > new_size {
            return Err(AuditLogError::ConsistencyOutOfRange {
                from: old_size,
                to: new_size,
                newest: latest.size,
            });
        }
        let reader = self.db_hashes();
        tokio::task::spawn_blocking(move || ConsistencyProof::prove(old_size, new_size, &reader))
            .await
            .map_err(AuditLogError::Task)?
            .map_err(AuditLogError::from)
    }

    /// How many entries have been appended (signed into a checkpoint or not yet).
    pub async fn entry_count(&self) -> Result<u64, AuditLogError> {
        Ok(self.metadata.audit_entry_count().await?)
    }

    /// The newest `limit` entries of a type prefix, oldest first (`audit tail`).
    pub async fn newest_entries(
        &self,
        kind_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, AuditLogError> {
        Ok(self
            .metadata
            .audit_entries_newest(kind_prefix, limit)
            .await?)
    }

    /// The newest `limit` entries about the artifact `digest`, oldest first.
    pub async fn entries_about(
        &self,
        digest: &str,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, AuditLogError> {
        Ok(self.metadata.audit_entries_about(digest, limit).await?)
    }

    /// Entries for `audit tail` / `audit export`.
    pub async fn entries(
        &self,
        start: u64,
        since_millis: Option<i64>,
        kind_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, AuditLogError> {
        Ok(self
            .metadata
            .audit_entries_filtered(start, since_millis, kind_prefix, limit)
            .await?)
    }
}

/// Hashes from this round first, then the database.
struct Overlay<'a> {
    first: &'a airlock_audit::MemoryHashes,
    then: &'a DbHashes,
}

impl HashReader for Overlay<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, AuditError> {
        let missing: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|i| self.first.get(*i).is_none())
            .collect();
        let mut from_db = self.then.read_hashes(&missing)?.into_iter();
        indexes
            .iter()
            .map(|i| match self.first.get(*i) {
                Some(hash) => Ok(hash),
                None => from_db
                    .next()
                    .ok_or(AuditError::MissingStoredHash { index: *i }),
            })
            .collect()
    }
}
