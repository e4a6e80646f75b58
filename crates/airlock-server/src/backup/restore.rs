//! `airlock restore SRC --data-dir DIR`: a verified backup into a new data directory.
//!
//! The data directory must not exist or be empty: a restore never merges into or overwrites one.
//! Everything is written into `DIR.restoring` (0700, files 0600), each file hashed again as it is
//! copied, and renamed to `DIR` at the end. The restored database has its audit entries and
//! checkpoints, so the start-up check that refuses a new database beside old keys
//! (`data_dir::check_new_database`) accepts it, and `airlock serve --data-dir DIR` starts on it.

use std::path::{Path, PathBuf};

use airlock_core::{Digest, DigestAlgorithm};
use airlock_store::local_blob_file;
use std::str::FromStr;

use super::files::{
    blocking, copy_hashing, create_new_private_dir, create_private_dir_all, empty_dir, file_error,
    sync_dir, sync_tree, under,
};
use super::verify::VerifiedBackup;
use super::{BackupError, verify, with_suffix};

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    /// The data directory written.
    pub data_dir: PathBuf,
    /// The backup, as verified before it was copied.
    pub backup: VerifiedBackup,
}

/// Verifies the backup at `backup`, then restores it into `data_dir`, which must not exist or be
/// an empty directory.
pub async fn restore(backup: &Path, data_dir: &Path) -> Result<RestoreSummary, BackupError> {
    if empty_dir(data_dir)? == Some(false) {
        return Err(BackupError::RestoreTargetNotEmpty {
            dir: data_dir.to_path_buf(),
        });
    }
    let staging = with_suffix(data_dir, ".restoring");
    if empty_dir(&staging)?.is_some() {
        return Err(BackupError::Interrupted { path: staging });
    }
    let verified = verify(backup, None).await?;
    create_new_private_dir(&staging)?;
    let source = backup.to_path_buf();
    let target = data_dir.to_path_buf();
    let checked = verified.clone();
    let written = blocking(move || {
        let result = copy_into(&source, &staging, &target, &checked);
        if result.is_err() {
            // Best effort: a leftover `.restoring` is refused next time with the command that
            // removes it.
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    })
    .await;
    written.map(|()| RestoreSummary {
        data_dir: data_dir.to_path_buf(),
        backup: verified,
    })
}

/// Copies the backup's files into `staging` (created empty by the caller), checking each against the manifest again, and
/// renames `staging` to `data_dir`.
fn copy_into(
    backup: &Path,
    staging: &Path,
    data_dir: &Path,
    verified: &VerifiedBackup,
) -> Result<(), BackupError> {
    let changed = |what: &str| BackupError::Invalid {
        backup: backup.to_path_buf(),
        problem: format!("{what} changed while it was being restored"),
    };
    for file in &verified.manifest.files {
        let (size, digest) = copy_hashing(
            &under(backup, &file.path),
            &under(staging, &file.path),
            DigestAlgorithm::Sha256,
        )?;
        if size != file.size || digest.hex() != file.sha256 {
            return Err(changed(&file.path));
        }
    }
    let store_root = staging.join("blobs");
    for blob in &verified.manifest.blobs {
        let digest = Digest::from_str(&blob.digest).map_err(|_| changed(&blob.digest))?;
        let (size, found) = copy_hashing(
            &local_blob_file(backup, &digest),
            &local_blob_file(&store_root, &digest),
            digest.algorithm(),
        )?;
        if size != blob.size || found != digest {
            return Err(changed(&blob.digest));
        }
    }
    create_private_dir_all(&store_root)?;
    sync_tree(staging)?;
    // An empty directory at `data_dir` is replaced by the rename.
    std::fs::rename(staging, data_dir).map_err(file_error(data_dir))?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}
