//! Backups of an embedded installation (SQLite + a local blob directory): `airlock backup`,
//! `airlock backup --verify` and `airlock restore`; and the check of a PostgreSQL installation's
//! backup (`pg_dump` + the blob store + the key-encryption key), `airlock backup --verify
//! --pg-dump` ([`verify_postgres`], `postgres.rs`).
//!
//! A backup is a directory:
//!
//! ```text
//! DEST/metadata.db             the database, a consistent snapshot (rollback-journal mode)
//! DEST/log-key ...             the data directory's keys and files (DATA_FILES), mode 0600
//! DEST/blobs/<alg>/<xx>/<hex>  every blob the snapshot references, nothing else
//! DEST/manifest.json           every file's size and SHA-256, every blob's digest and size
//! DEST/manifest.json.sha256    the manifest's own SHA-256 (`sha256sum -c` reads it)
//! ```
//!
//! Guarantees:
//! - Consistency: the database is copied as it was at one instant while the server keeps serving
//!   (`airlock_store::snapshot_sqlite`). Blobs are content-addressed and immutable, and a blob's
//!   file is complete before any row refers to it, so copying the referenced blobs afterwards
//!   copies exactly the bytes the snapshot means. The key files are read after the snapshot
//!   ([`create`]), so they are never older than the database: everything the snapshot holds that
//!   a server key signed verifies with the keys in the backup.
//! - Completeness is visible: a backup is written into `DEST.partial` and renamed to `DEST` only
//!   after the manifest and its checksum were written and everything was flushed to disk. A
//!   `.partial` directory is never verified or restored.
//! - Verification ([`verify`]) needs no server: the manifest's checksum, every listed file's
//!   SHA-256, no unlisted file, `PRAGMA integrity_check` on the snapshot, exactly the blobs the
//!   snapshot references with their digests and sizes, and the audit log in the snapshot
//!   verified against its own signed checkpoints (and a trusted checkpoint if given).
//! - Restore ([`restore`]) verifies first, writes into `DIR.restoring` and renames it to the
//!   data directory, which must not exist or be empty, so an interrupted restore never leaves a
//!   half-filled data directory a server could start on.
//! - Modes: the backup and a restored data directory are 0700, every file in them 0600.
//! - Only regular files are read from a backup: a symbolic link (or a directory or special file)
//!   where a file belongs fails verification naming it, so neither `--verify` nor `restore` ever
//!   follows a link out of the backup. Blob files in the data directory are read the same way.

mod create;
mod files;
mod manifest;
mod postgres;
mod restore;
mod verify;

use std::path::PathBuf;

pub use create::{BackupSummary, create, create_observed};
pub use manifest::{BackupManifest, ManifestBlob, ManifestFile};
pub use postgres::{
    BlobSource, BlobsChecked, PostgresBackup, VerifiedPostgresBackup, verify_postgres,
};
pub use restore::{RestoreSummary, restore};
pub use verify::{VerifiedBackup, verify};

/// The files of a data directory a backup carries besides the database and the blobs: the keys
/// airlock generated (with the rotated keys' histories, and a rotation's `.next` key should one
/// be under way), the generated initial admin password while it exists, and `--self-signed`'s
/// certificate and key. The paths are relative to the data directory.
///
/// Not carried: `metadata.db-wal` and `-shm` (the snapshot holds their content), `blobs/uploads/`
/// (upload sessions in flight; a client resumes by starting the upload again), the blob
/// directory's marker file (it names the original directory; a restored server makes its own),
/// blobs no database row refers to, and temporary files (`*.tmp`). airlock keeps no lock file in
/// the data directory. The configuration file lives outside it and is the operator's to keep.
pub const DATA_FILES: [&str; 10] = [
    "log-key",
    "token-key.pem",
    "token-key.pem.next",
    "token-keys.json",
    "attestation-key.pem",
    "attestation-key.pem.next",
    "attestation-keys.json",
    "initial-admin-password",
    "tls/self-signed.crt",
    "tls/self-signed.key",
];

/// The data files a data directory must hold to be backed up: without the log key the audit log
/// in the database could never be verified or extended.
pub const REQUIRED_DATA_FILES: [&str; 1] = ["log-key"];

/// The database file's name, in a data directory and in a backup.
pub const DATABASE_FILE: &str = "metadata.db";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest checksum's file name.
pub const MANIFEST_SUM_FILE: &str = "manifest.json.sha256";
/// The blob directory inside a backup (the local blob store's layout below it).
pub const BACKUP_BLOBS: &str = "blobs";

/// Why a backup could not be made, verified or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The source is not an airlock data directory.
    #[error(
        "{} is not an airlock data directory (it has no {DATABASE_FILE}); pass the server's --data-dir",
        dir.display()
    )]
    NotADataDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// A file every data directory has is missing.
    #[error(
        "{} is missing from the data directory: without it the audit log cannot be verified or extended; find it (an earlier backup holds it) before backing up",
        path.display()
    )]
    MissingDataFile {
        /// The file.
        path: PathBuf,
    },
    /// The backup's destination already holds something.
    #[error(
        "{} already exists and is not an empty directory: back up into a new directory (e.g. one named after today's date)",
        path.display()
    )]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// An earlier backup or restore into the same place was interrupted.
    #[error(
        "{} is left over from an interrupted backup or restore and is not complete: remove it (rm -r {}) and run the command again",
        path.display(),
        path.display()
    )]
    Interrupted {
        /// The leftover directory.
        path: PathBuf,
    },
    /// The restore target holds files.
    #[error(
        "refusing to restore into {}: it is not empty, and a restore never merges into or overwrites a data directory. Restore into a new directory (e.g. {}.restored) and start the server with --data-dir pointing at it, or move the old directory's contents away first",
        dir.display(),
        dir.display()
    )]
    RestoreTargetNotEmpty {
        /// The data directory.
        dir: PathBuf,
    },
    /// The key files kept changing while they were read (rotations back to back).
    #[error(
        "the key files in {} kept changing while they were read (key rotations under way); run the backup again",
        dir.display()
    )]
    KeysUnsettled {
        /// The data directory.
        dir: PathBuf,
    },
    /// A blob the database snapshot refers to is not in the blob directory.
    #[error(
        "blob {digest} is referenced by the database but {} is missing: the data directory is damaged (run `airlock backup --verify` on your last backup and restore it), or garbage collection deleted it while the backup ran after a manifest referencing it was pruned (run the backup again)",
        path.display()
    )]
    BlobMissing {
        /// The blob.
        digest: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// A blob file in the data directory does not hold the bytes its name says.
    #[error(
        "{} does not hold blob {digest} (its bytes hash to {found}): the blob directory is damaged; restore the blob from an earlier backup",
        path.display()
    )]
    BlobCorrupt {
        /// The blob.
        digest: String,
        /// Its file.
        path: PathBuf,
        /// What its bytes hash to.
        found: String,
    },
    /// A file airlock reads from a backup or a data directory is a symbolic link, a directory or
    /// a special file where a regular file belongs.
    #[error(
        "{} is not a regular file (a symbolic link, a directory or a special file): a backup holds only regular files, and airlock never follows a link out of it; put the file itself there",
        path.display()
    )]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// The backup failed verification.
    #[error("the backup {} is not usable: {problem}", backup.display())]
    Invalid {
        /// The backup directory.
        backup: PathBuf,
        /// The first problem found.
        problem: String,
    },
    /// The metadata lives in PostgreSQL (`database_url`), which `airlock backup` and `airlock
    /// restore` do not copy: they work on the embedded SQLite database.
    #[error(
        "the metadata is in the PostgreSQL database {url} (database_url), which airlock backup and restore do not copy: back it up with pg_dump (and restore with pg_restore or psql), together with the blob store and the data directory's keys (docs/operations.md, Backing up a PostgreSQL installation)"
    )]
    PostgresMetadata {
        /// The database URL, without credentials.
        url: String,
    },
    /// The blobs are in an S3 bucket (`blob_store`), which backup and restore do not copy.
    #[error(
        "the blobs are in {location} (blob_store), which airlock backup and restore do not copy: back the bucket up with its own tools (versioning or replication), together with the database and the data directory's keys (docs/storage.md)"
    )]
    RemoteBlobs {
        /// The blob store's location.
        location: String,
    },
    /// `pg_restore` is not installed.
    #[error(
        "pg_restore is not on PATH: install PostgreSQL's client tools of at least the dump's major version (Debian and Ubuntu: apt-get install postgresql-client; RHEL: dnf install postgresql), or put their bin directory on PATH"
    )]
    PgRestoreMissing,
    /// The scratch database a dump is restored into for verification holds tables.
    #[error(
        "the scratch database {url} is not empty (it holds {}): verification restores the dump into a database that holds no table at all and changes nothing already there. Create an empty one (CREATE DATABASE airlock_verify) and pass its URL to --scratch-database",
        tables.join(", ")
    )]
    ScratchNotEmpty {
        /// The database URL, without credentials.
        url: String,
        /// Some of its tables, as `schema.name`.
        tables: Vec<String>,
    },
    /// The key-encryption key file cannot be used.
    #[error(transparent)]
    Kek(#[from] crate::server_keys::kek::KekError),
    /// The database could not be copied or read.
    #[error(transparent)]
    Store(#[from] airlock_store::StoreError),
    /// The thread copying files stopped without an answer.
    #[error("the file copying thread failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

impl BackupError {
    /// Whether this is a refusal or a failed check (exit status 1), as opposed to an I/O or
    /// database failure (exit status 2).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            BackupError::File { .. }
                | BackupError::Store(_)
                | BackupError::Worker(_)
                | BackupError::PgRestoreMissing
                | BackupError::Kek(_)
        )
    }
}

/// `path` with `suffix` appended to its last component (`DEST` -> `DEST.partial`).
pub(crate) fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
