//! The check the audit log passes before the server integrates (signs) anything at start.
//!
//! The integrator signs whatever entries lie past the newest checkpoint. If the stored tables no
//! longer agree with each other, signing would either fail forever (while writes go on being
//! acknowledged) or vouch for a history that was edited. So at start, before the first round:
//! - no checkpoint is allowed only for an empty log (no entries, no hashes): entries without any
//!   checkpoint mean the checkpoints were deleted;
//! - the newest checkpoint must be signed by this log key and match its stored root and size;
//! - every entry below the checkpoint's size must be present (no gap, none deleted);
//! - exactly the stored hashes of that size must exist (more means newer checkpoints were
//!   removed, fewer that hashes were deleted);
//! - the stored hashes must produce the checkpoint's root;
//! - the newest [`TAIL`] entries under the checkpoint must hash to their stored leaf hashes.
//!
//! With several replicas on one database another replica may sign a checkpoint while this check
//! reads (its hashes and checkpoint commit together, but the check reads the checkpoint and the
//! counts in separate queries). A failed check whose newest checkpoint has moved meanwhile is
//! therefore started over, up to [`ATTEMPTS`] times; a check that fails against a checkpoint that
//! did not move is a refusal.
//!
//! This costs O(TAIL + log n) at start; `airlock audit verify` checks every entry. It does not
//! detect a rewrite that also removed the newer checkpoints and their hashes consistently: only a
//! checkpoint saved elsewhere (`--trusted-checkpoint`) catches that.

use airlock_audit::{Hash, LogKey};
use airlock_store::Metadata;

use super::{AuditLogError, DbHashes};

/// How many of the newest checkpointed entries are re-hashed at start.
pub const TAIL: u64 = 1024;

/// How many times the check runs while other replicas keep signing checkpoints under it.
pub const ATTEMPTS: u32 = 10;

/// What to do about an inconsistent log, appended to every refusal.
const RECOVERY: &str = "airlock will not sign on top of it. Stop here: restore the database from a backup taken before the damage (docs/operations.md, Recovery) and run `airlock audit verify --data-dir DIR --trusted-checkpoint FILE` with a checkpoint saved earlier";

fn refuse(problem: String) -> AuditLogError {
    AuditLogError::Integrity(format!("{problem}; {RECOVERY}"))
}

/// Checks that entries, stored hashes and the newest checkpoint agree (see the module docs),
/// starting over when another replica signed a newer checkpoint while it read.
pub(super) async fn check(metadata: &Metadata, key: &LogKey) -> Result<(), AuditLogError> {
    let mut attempt = 1;
    loop {
        let checked = metadata.latest_checkpoint().await?.map(|c| c.size);
        let Err(err) = check_newest(metadata, key).await else {
            return Ok(());
        };
        let now = metadata.latest_checkpoint().await?.map(|c| c.size);
        if now == checked || attempt >= ATTEMPTS {
            return Err(err);
        }
        tracing::info!(
            checked = ?checked,
            now = ?now,
            "another replica signed an audit checkpoint during the start-up check; checking again"
        );
        attempt += 1;
    }
}

/// One pass of [`check`] over the newest checkpoint as it reads it.
async fn check_newest(metadata: &Metadata, key: &LogKey) -> Result<(), AuditLogError> {
    let Some(latest) = metadata.latest_checkpoint().await? else {
        let counts = metadata.audit_table_counts(0).await?;
        if counts.entries > 0 || counts.hashes > 0 {
            return Err(refuse(format!(
                "the audit log holds {} entries and {} stored hashes but no signed checkpoint: its checkpoints were deleted",
                counts.entries, counts.hashes
            )));
        }
        return Ok(());
    };
    let size = latest.size;
    let signed = airlock_audit::verify_checkpoint(&latest.note, key.verifier_key()).map_err(|e| {
        refuse(format!(
            "the newest checkpoint (size {size}) is not signed by the log key in log-key ({e}): the key or the checkpoints were replaced"
        ))
    })?;
    if signed.size != size || signed.root.0 != latest.root {
        return Err(refuse(format!(
            "the newest checkpoint's note (size {}) does not match its stored size {size} and root",
            signed.size
        )));
    }
    let counts = metadata.audit_table_counts(size).await?;
    if counts.entries_below != size {
        return Err(refuse(format!(
            "the newest checkpoint covers {size} entries but the database holds {} of them: entries were deleted",
            counts.entries_below
        )));
    }
    let expected_hashes = airlock_audit::stored_hash_count(size)?;
    if counts.hashes != expected_hashes || counts.next_hash != expected_hashes {
        return Err(refuse(format!(
            "the database holds {} stored hashes (up to index {}) but the newest checkpoint (size {size}) needs exactly {expected_hashes}: {}",
            counts.hashes,
            counts.next_hash,
            if counts.next_hash > expected_hashes {
                "newer checkpoints were removed while their hashes stayed"
            } else {
                "stored hashes were deleted"
            }
        )));
    }
    let reader = DbHashes {
        metadata: metadata.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let root = tokio::task::spawn_blocking(move || airlock_audit::tree_root(size, &reader))
        .await
        .map_err(AuditLogError::Task)?
        .map_err(|e| refuse(format!("the stored hashes cannot produce a root: {e}")))?;
    if root != Hash(latest.root) {
        return Err(refuse(format!(
            "the stored hashes do not produce the root the newest checkpoint (size {size}) signed: hashes were edited"
        )));
    }
    let start = size.saturating_sub(TAIL);
    let entries = metadata.audit_entries(start, size).await?;
    let indexes: Vec<u64> = (start..size)
        .map(|i| airlock_audit::stored_hash_index(0, i))
        .collect::<Result<_, _>>()?;
    let stored = metadata.audit_hashes(&indexes).await?;
    for (entry, stored) in entries.iter().zip(stored) {
        if stored != Some(airlock_audit::leaf_hash(&entry.entry).0) {
            return Err(refuse(format!(
                "entry {} does not match the hash the log committed to: it was altered after it was signed",
                entry.index
            )));
        }
    }
    Ok(())
}
