//! The data directory at start: its lock (one process at a time), its permissions, and refusing
//! a new database beside old keys.
//!
//! Guarantees:
//! - At every start the data directory is set to mode 0700, the database (`metadata.db`, created
//!   0600 if missing, and its `-wal`/`-shm` files) and the key files (with the rotated keys'
//!   histories, [`KEY_FILES`]) to 0600, and the blob
//!   directories to 0700,
//!   whatever the umask. SQLite gives the `-wal` and `-shm` files it creates the database file's
//!   mode, so they are 0600 too. (`airlock serve` also sets its umask to 0077, so blob files and
//!   directories created later are 0600/0700.)
//! - A database that holds no audit entry and no checkpoint is new. If the directory already
//!   holds a key airlock generated (log, token or attestation key), the old database was lost or
//!   moved: starting would silently begin an empty registry and audit log under the old keys. That
//!   start is refused unless the operator passes `--allow-new-database`.

use std::path::{Path, PathBuf};

use airlock_store::{DatabaseLocation, Metadata, StoreError};

/// Key files airlock generates (on first start, or when a key is rotated: the histories of the
/// token and attestation keys); their presence means the directory was used.
pub const KEY_FILES: [&str; 5] = [
    "log-key",
    "token-key.pem",
    "attestation-key.pem",
    "token-keys.json",
    "attestation-keys.json",
];

/// The database file in a data directory.
pub fn database_path(dir: &Path) -> PathBuf {
    dir.join("metadata.db")
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Creating the directory or setting a mode failed.
    #[error("cannot prepare {}: {source}", path.display())]
    Files {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process (a running `airlock serve`, or `airlock migrate-store`) holds the data
    /// directory's lock.
    #[error(
        "the data directory {} is in use: a running airlock serve (or migrate-store) holds its lock file {LOCK_FILE}. Stop that process first (systemctl stop airlock, or SIGTERM), then run this again",
        dir.display()
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
    },
    /// The database is new but keys from an earlier installation are present.
    #[error(
        "the database {} is new (no audit entries, no checkpoints), but {} already holds {}: the database this installation used was lost, moved or replaced. Starting now would begin an empty registry and audit log under the old keys. Restore the database from a backup (docs/operations.md, Recovery), or, to start over on purpose with these keys, start once with --allow-new-database",
        database,
        dir.display(),
        keys.join(", ")
    )]
    NewDatabaseBesideKeys {
        /// The data directory.
        dir: PathBuf,
        /// The database (its file, or its URL without credentials).
        database: String,
        /// The key files found.
        keys: Vec<String>,
    },
}

/// The file in a data directory that `airlock serve` holds an exclusive lock on (`flock`) for as
/// long as it runs, and `airlock migrate-store` for as long as it copies: neither starts while
/// the other has the directory. The lock goes with the process, however it ends.
pub const LOCK_FILE: &str = "airlock.lock";

/// An exclusive lock on a data directory ([`LOCK_FILE`]), released when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Takes the data directory's lock (creating the directory and the lock file if missing), or
/// fails with [`DataDirError::InUse`] at once when another process holds it.
pub fn lock(dir: &Path) -> Result<DataDirLock, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let files = |source| DataDirError::Files {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(files)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(files)?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::InUse {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(files(source)),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), DataDirError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataDirError::Files {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), DataDirError> {
    Ok(())
}

/// Creates the data directory if needed and sets the modes described in the module docs, before
/// the database is opened.
pub fn prepare(dir: &Path, location: &DatabaseLocation) -> Result<(), DataDirError> {
    let files = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataDirError::Files { path, source }
    };
    std::fs::create_dir_all(dir).map_err(files(dir))?;
    set_mode(dir, 0o700)?;
    // The embedded database's file is created here with its mode; PostgreSQL has no file here.
    if let DatabaseLocation::Sqlite(database) = location {
        airlock_store::secure_database_file(database).map_err(files(database))?;
    }
    for blobs in ["blobs", "blobs/blobs", "blobs/uploads"] {
        set_mode(&dir.join(blobs), 0o700)?;
    }
    for secret in KEY_FILES.iter().chain(&["initial-admin-password"]) {
        set_mode(&dir.join(secret), 0o600)?;
    }
    Ok(())
}

/// The file in the data directory holding the replica's id (see [`replica_id`]).
pub const REPLICA_ID_FILE: &str = "replica-id";

/// This replica's id: made at first start and kept in the data directory as
/// [`REPLICA_ID_FILE`]. It marks the webhook delivery leases this replica holds, so a restart
/// over the same directory releases those its previous run left, and never another replica's.
/// Each replica has a data directory of its own: the file is never copied into another's.
pub fn replica_id(dir: &Path) -> Result<String, DataDirError> {
    let path = dir.join(REPLICA_ID_FILE);
    let files = |source| DataDirError::Files {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(files(err)),
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(&path, format!("{id}\n")).map_err(files)?;
    Ok(id)
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
    location: &DatabaseLocation,
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
        database: match location {
            DatabaseLocation::Sqlite(path) => path.display().to_string(),
            DatabaseLocation::Postgres(url) => airlock_store::redact_url(url),
        },
        keys,
    })
}
