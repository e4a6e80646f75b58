//! Verifying a stored audit log offline, from a database alone (a stopped server's, a backup's
//! snapshot): every stored checkpoint must be signed by the log key, and the entries up to the
//! newest one must recompute to its tree and to every other checkpoint's (and to a trusted
//! checkpoint's, if given), with the stored leaf hashes agreeing.

use airlock_audit::{
    AuditError, Hash, LogReport, VerifiedCheckpoint, VerifyError, verify_checkpoint,
};
use airlock_store::{AuditLogReader, StoreError};

/// Entries read per query.
const PAGE: u64 = 50_000;

/// A stored log that verified.
#[derive(Debug, Clone)]
pub struct StoredLogReport {
    /// What `verify_log` found: the entries recomputed and the checkpoints matched.
    pub report: LogReport,
    /// Entries appended in all, signed or not yet.
    pub appended: u64,
    /// The newest signed checkpoint's tree size.
    pub signed: u64,
}

/// Why a stored log did not verify.
#[derive(Debug, thiserror::Error)]
pub enum StoredLogError {
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored checkpoint is not signed by the log key.
    #[error("the stored checkpoint of size {size} is not signed by the log key: {source}")]
    CheckpointSignature {
        /// Its tree size.
        size: u64,
        /// Why.
        source: AuditError,
    },
    /// The trusted checkpoint is not signed by the log key.
    #[error("the trusted checkpoint is not signed by the log key: {0}")]
    TrustedSignature(#[source] AuditError),
    /// No checkpoint at all: airlock signs one on its first start, so they were deleted.
    #[error("the database has no signed checkpoint ({appended} entries)")]
    NoCheckpoint {
        /// Entries appended.
        appended: u64,
    },
    /// The entries do not recompute to the checkpoints.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// An index beyond what the log math supports.
    #[error("{0}")]
    Log(#[from] AuditError),
}

/// Verifies the log stored in `metadata` (a database, or a transaction's view of one) against
/// `verifier_key` (and `trusted`, a checkpoint saved earlier, already parsed), over the entries
/// up to the newest signed checkpoint.
pub async fn verify_stored_log(
    metadata: &impl AuditLogReader,
    verifier_key: &str,
    trusted: Option<&str>,
) -> Result<StoredLogReport, StoredLogError> {
    let mut checkpoints: Vec<VerifiedCheckpoint> = Vec::new();
    for stored in metadata.checkpoints().await? {
        let checkpoint = verify_checkpoint(&stored.note, verifier_key).map_err(|source| {
            StoredLogError::CheckpointSignature {
                size: stored.size,
                source,
            }
        })?;
        checkpoints.push(checkpoint);
    }
    let appended = metadata.audit_entry_count().await?;
    let Some(signed) = checkpoints.iter().map(|c| c.size).max() else {
        return Err(StoredLogError::NoCheckpoint { appended });
    };
    if let Some(text) = trusted {
        checkpoints
            .push(verify_checkpoint(text, verifier_key).map_err(StoredLogError::TrustedSignature)?);
    }
    let mut entries = Vec::new();
    let mut leaf_hashes = Vec::new();
    let mut start = 0;
    while start < signed {
        let end = (start + PAGE).min(signed);
        for entry in metadata.audit_entries(start, end).await? {
            entries.push((entry.index, entry.entry));
        }
        let indexes = (start..end)
            .map(|i| airlock_audit::stored_hash_index(0, i))
            .collect::<Result<Vec<u64>, _>>()?;
        leaf_hashes.extend(
            metadata
                .audit_hashes(&indexes)
                .await?
                .into_iter()
                .map(|hash| hash.map(Hash)),
        );
        start = end;
    }
    let lookup = |index: u64| leaf_hashes.get(index as usize).copied().flatten();
    let report = airlock_audit::verify_log(entries, Some(&lookup), &checkpoints)?;
    Ok(StoredLogReport {
        report,
        appended,
        signed,
    })
}
