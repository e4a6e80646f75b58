//! The data directory at start: refusing a new database beside old keys.
//!
//! Guarantees:
//! - A database that holds no audit entry and no checkpoint is new. If the directory already
//!   holds a key airlock generated (log, token or attestation key), the old database was lost or
//!   moved: starting would silently begin an empty registry and audit log under the old keys. That
//!   start is refused unless the operator passes `--allow-new-database`.

use std::path::{Path, PathBuf};

use airlock_store::{Metadata, StoreError};

/// Key files airlock generates on first start; their presence means the directory was used.
pub const KEY_FILES: [&str; 3] = ["log-key", "token-key.pem", "attestation-key.pem"];

/// The database file in a data directory.
pub fn database_path(dir: &Path) -> PathBuf {
    dir.join("metadata.db")
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database is new but keys from an earlier installation are present.
    #[error(
        "the database {} is new (no audit entries, no checkpoints), but {} already holds {}: the database this installation used was lost, moved or replaced. Starting now would begin an empty registry and audit log under the old keys. Restore the database from a backup (docs/operations.md, Recovery), or, to start over on purpose with these keys, start once with --allow-new-database",
        database.display(),
        dir.display(),
        keys.join(", ")
    )]
    NewDatabaseBesideKeys {
        /// The data directory.
        dir: PathBuf,
        /// The database file.
        database: PathBuf,
        /// The key files found.
        keys: Vec<String>,
    },
}

/// The key files present in `dir`.
fn keys_present(dir: &Path) -> Vec<String> {
    KEY_FILES
        .iter()
        .filter(|name| dir.join(name).exists())
        .map(|name| name.to_string())
        .collect()
}

/// Refuses a new database in a directory that holds keys from an earlier installation, unless
/// `allow_new_database`. Call after opening the database and before anything writes to it.
pub async fn check_new_database(
    dir: &Path,
    metadata: &Metadata,
    allow_new_database: bool,
) -> Result<(), DataDirError> {
    let counts = metadata.audit_table_counts(0).await?;
    let new = counts.entries == 0 && counts.checkpoints == 0 && counts.hashes == 0;
    if !new {
        return Ok(());
    }
    let keys = keys_present(dir);
    if keys.is_empty() {
        return Ok(());
    }
    if allow_new_database {
        tracing::warn!(
            data_dir = %dir.display(),
            keys = %keys.join(", "),
            "starting a new database beside existing keys (--allow-new-database)"
        );
        return Ok(());
    }
    Err(DataDirError::NewDatabaseBesideKeys {
        dir: dir.to_path_buf(),
        database: database_path(dir),
        keys,
    })
}
