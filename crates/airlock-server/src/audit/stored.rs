//! Verifying a stored audit log offline, from a database alone (a stopped server's, a backup's
//! snapshot): every stored checkpoint must be signed by the log key, and the entries up to the
//! newest one must recompute to its tree and to every other checkpoint's (and to a trusted
//! checkpoint's, if given), with the stored leaf hashes agreeing.
//!
//! The entries are streamed: read a page at a time ([`PAGE`] entries), the next page read while
//! the current one is hashed on the blocking pool and its leaf hashes compared by the database
//! with the stored ones, so memory stays at two pages and the tree's frontier however long the
//! log ([`verify_stored_entries`]).

use std::collections::HashMap;

use airlock_audit::{
    AuditError, Hash, LogReport, LogVerifier, VerifiedCheckpoint, VerifyError, leaf_hash,
    verify_checkpoint,
};
use airlock_store::{AuditLogReader, StoreError, StoredEntry};

/// Entries read per query (a page of typical entries is a few MiB).
const PAGE: u64 = 16_384;

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
    /// The task hashing a page of entries did not finish (the runtime is shutting down).
    #[error("the verification was interrupted: {0}")]
    Interrupted(String),
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
    let report = verify_stored_entries(metadata, &checkpoints, signed).await?;
    Ok(StoredLogReport {
        report,
        appended,
        signed,
    })
}

/// Verifies the stored entries `0..count` and their stored leaf hashes against `checkpoints`
/// (already verified), [`PAGE`] entries at a time: a page's leaf hashes are computed on the
/// blocking pool and handed to the database, which names the stored ones that differ (none, in a
/// log that agrees), while the next page is read; nothing but two pages and the tree's frontier
/// is held.
pub async fn verify_stored_entries(
    metadata: &impl AuditLogReader,
    checkpoints: &[VerifiedCheckpoint],
    count: u64,
) -> Result<LogReport, StoredLogError> {
    let mut verifier = LogVerifier::new(checkpoints)?;
    let mut start = 0;
    let mut page = match count {
        0 => None,
        _ => Some(metadata.audit_entries(0, PAGE.min(count)).await?),
    };
    while let Some(entries) = page.take() {
        let end = (start + PAGE).min(count);
        let checking = verify_page(metadata, verifier, entries);
        let next = async {
            if end < count {
                metadata
                    .audit_entries(end, (end + PAGE).min(count))
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        };
        let (checked, next) = tokio::join!(checking, next);
        verifier = checked?;
        page = next?;
        start = end;
    }
    Ok(verifier.finish()?)
}

/// Pushes a page of entries through `verifier`, each with the leaf hash stored for it.
async fn verify_page(
    metadata: &impl AuditLogReader,
    verifier: LogVerifier,
    entries: Vec<StoredEntry>,
) -> Result<LogVerifier, StoredLogError> {
    let interrupted = |err: tokio::task::JoinError| StoredLogError::Interrupted(err.to_string());
    let (entries, leaves) = tokio::task::spawn_blocking(move || {
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(&e.entry)).collect();
        (entries, leaves)
    })
    .await
    .map_err(interrupted)?;
    let expected = entries
        .iter()
        .zip(&leaves)
        .map(|(entry, leaf)| Ok((airlock_audit::stored_hash_index(0, entry.index)?, leaf.0)))
        .collect::<Result<Vec<(u64, [u8; 32])>, AuditError>>()?;
    // Where the stored hash differs (or is missing), the verifier is given what is stored and
    // reports it in entry order; everywhere else the database found the computed hash stored.
    let differing: HashMap<u64, Option<Hash>> = metadata
        .audit_hashes_differing(&expected)
        .await?
        .into_iter()
        .map(|differing| (differing.index, differing.stored.map(Hash)))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut verifier = verifier;
        for ((entry, leaf), (stored_index, _)) in entries.iter().zip(leaves).zip(&expected) {
            let stored = match differing.get(stored_index) {
                Some(stored) => *stored,
                None => Some(leaf),
            };
            verifier.push_leaf_checked(entry.index, leaf, stored)?;
        }
        Ok(verifier)
    })
    .await
    .map_err(interrupted)?
}
