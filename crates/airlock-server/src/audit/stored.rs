//! Verifying a stored audit log offline, from a database alone (a stopped server's, a backup's
//! snapshot): every stored checkpoint must be signed by the log key, and the entries up to the
//! newest one must recompute to its tree and to every other checkpoint's (and to a trusted
//! checkpoint's, if given), with the stored leaf hashes agreeing.
//!
//! The entries are streamed: read a page at a time ([`PAGE`] entries and their leaf hashes), the
//! next page read while the current one is hashed on the blocking pool, so memory stays at two
//! pages and the tree's frontier however long the log ([`verify_stored_entries`]).

use airlock_audit::{
    AuditError, Hash, LogReport, LogVerifier, VerifiedCheckpoint, VerifyError, verify_checkpoint,
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
/// (already verified), reading [`PAGE`] entries at a time: the next page is read while the
/// current one is hashed, and nothing but two pages and the tree's frontier is held.
pub async fn verify_stored_entries(
    metadata: &impl AuditLogReader,
    checkpoints: &[VerifiedCheckpoint],
    count: u64,
) -> Result<LogReport, StoredLogError> {
    let mut verifier = LogVerifier::new(checkpoints)?;
    let mut start = 0;
    let mut page = match count {
        0 => None,
        _ => Some(read_page(metadata, 0, PAGE.min(count)).await?),
    };
    while let Some(current) = page.take() {
        let end = (start + PAGE).min(count);
        let hashing = tokio::task::spawn_blocking(move || verify_page(verifier, start, current));
        let next = async {
            if end < count {
                read_page(metadata, end, (end + PAGE).min(count))
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        };
        let (hashed, next) = tokio::join!(hashing, next);
        verifier = hashed.map_err(|err| StoredLogError::Interrupted(err.to_string()))??;
        page = next?;
        start = end;
    }
    Ok(verifier.finish()?)
}

/// One page of the log: the entries with `start <= index < end` as stored, and the stored leaf
/// hash of each index in the range (`None` where absent).
struct Page {
    entries: Vec<StoredEntry>,
    leaf_hashes: Vec<Option<Hash>>,
}

async fn read_page(
    metadata: &impl AuditLogReader,
    start: u64,
    end: u64,
) -> Result<Page, StoredLogError> {
    let entries = metadata.audit_entries(start, end).await?;
    let indexes = (start..end)
        .map(|i| airlock_audit::stored_hash_index(0, i))
        .collect::<Result<Vec<u64>, _>>()?;
    let leaf_hashes = metadata
        .audit_hashes(&indexes)
        .await?
        .into_iter()
        .map(|hash| hash.map(Hash))
        .collect();
    Ok(Page {
        entries,
        leaf_hashes,
    })
}

/// Pushes a page starting at index `start` through `verifier`.
fn verify_page(
    mut verifier: LogVerifier,
    start: u64,
    page: Page,
) -> Result<LogVerifier, VerifyError> {
    for entry in &page.entries {
        let stored = entry
            .index
            .checked_sub(start)
            .and_then(|offset| page.leaf_hashes.get(usize::try_from(offset).ok()?))
            .copied()
            .flatten();
        verifier.push_checked(entry.index, &entry.entry, stored)?;
    }
    Ok(verifier)
}
