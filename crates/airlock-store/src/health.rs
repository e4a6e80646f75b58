//! What storage knows about its own health: whether the database file it writes is still the one
//! at its path, what SQLite's integrity check said at open, which real writes failed recently,
//! and a switch the server throws to stop writes it could not stand behind.
//!
//! Guarantees:
//! - Every write transaction checks, once it has begun and again just before it commits, that
//!   the database file at the configured path is the file this process opened (same device and
//!   inode) and that its write-ahead log still exists. A database removed (`rm metadata.db*`) or
//!   replaced while airlock runs therefore stops every write with [`WriteRefusal`] instead of
//!   acknowledging changes into an unlinked file that the next start would not see.
//! - The local blob directory is checked the same way (same device and inode as at open, and its
//!   marker file `.airlock-blob-directory` still there as it was) before
//!   every chunk is written, before every blob is committed, and by the readiness probe: a blob
//!   directory removed (`rm -rf blobs`) or replaced while airlock runs stops blob writes with
//!   [`WriteRefusal`] instead of silently recreating an empty directory.
//! - While writes are stopped ([`crate::Metadata::stop_writes`]), write transactions are refused
//!   too, except the audit log's own integration (so it can recover).
//! - Failed commits (a full disk, an I/O error) are remembered for readiness
//!   ([`FailureLog`]); they do not stop writes by themselves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a write was refused before it reached the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefusal {
    /// The database file is no longer at its path.
    #[error(
        "the database file {} was removed while airlock was running, so writes are refused (they would be lost at the next start); stop airlock, restore the database from a backup (docs/operations.md, Recovery) and start it again",
        file_name(path)
    )]
    DatabaseRemoved {
        /// The database path.
        path: PathBuf,
    },
    /// Another file now sits at the database path.
    #[error(
        "the database file {} was replaced by another file while airlock was running, so writes are refused (airlock still holds the old file open); stop airlock, put the intended database in place and start it again",
        file_name(path)
    )]
    DatabaseReplaced {
        /// The database path.
        path: PathBuf,
    },
    /// The write-ahead log was removed while connections were open.
    #[error(
        "the write-ahead log {} was removed while airlock was running, so writes are refused (recent changes live only in that file); stop airlock, restore the database from a backup (docs/operations.md, Recovery) and start it again",
        file_name(path)
    )]
    WalRemoved {
        /// The WAL path.
        path: PathBuf,
    },
    /// The local blob directory is no longer at its path.
    #[error(
        "the blob directory was removed while airlock was running, so blob writes are refused (the blobs stored before are gone with it); stop airlock, restore the blob directory from a backup (docs/operations.md, Recovery) and start it again"
    )]
    BlobDirectoryRemoved,
    /// Another directory (or file) now sits at the local blob directory's path, or its marker
    /// file is gone.
    #[error(
        "the blob directory was replaced (or removed and created again) while airlock was running, so blob writes are refused (blobs stored before may be missing from it); stop airlock, restore the blob directory from a backup (docs/operations.md, Recovery) and start it again"
    )]
    BlobDirectoryReplaced,
    /// The server stopped writes.
    #[error("writes are stopped: {reason}")]
    Stopped {
        /// Why, with what to do about it.
        reason: String,
    },
}

/// The file name alone: refusals reach clients, who need not learn the data directory's path.
fn file_name(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
}

impl WriteRefusal {
    /// The refusal as the database error a write transaction returns.
    pub(crate) fn into_sqlx(self) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::other(self))
    }
}

/// The database file as opened, to notice when the path no longer leads to it.
#[derive(Debug)]
pub(crate) struct DatabaseFile {
    path: PathBuf,
    wal: PathBuf,
    /// (device, inode) when the database was opened; `None` where the platform has no inodes.
    identity: Option<(u64, u64)>,
}

/// The (device, inode) of the file or directory at `path`; `None` where the platform has no
/// inodes.
#[cfg(unix)]
pub(crate) fn identity_of(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(Some((meta.dev(), meta.ino())))
}

#[cfg(not(unix))]
pub(crate) fn identity_of(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    std::fs::metadata(path).map(|_| None)
}

impl DatabaseFile {
    /// Records the identity of the database at `path`, which the caller has just opened.
    pub(crate) fn opened(path: &Path) -> std::io::Result<Self> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Self {
            path: path.to_path_buf(),
            wal: PathBuf::from(wal),
            identity: identity_of(path)?,
        })
    }

    /// Checks the path still leads to the opened file and, with `wal`, that its write-ahead log
    /// exists: ask for that only inside a transaction, when a connection is surely open (SQLite
    /// removes the WAL when the last connection closes).
    pub(crate) fn check(&self, wal: bool) -> Result<(), WriteRefusal> {
        match identity_of(&self.path) {
            Ok(now) if now == self.identity => {}
            Ok(_) => {
                return Err(WriteRefusal::DatabaseReplaced {
                    path: self.path.clone(),
                });
            }
            Err(_) => {
                return Err(WriteRefusal::DatabaseRemoved {
                    path: self.path.clone(),
                });
            }
        }
        if wal && !self.wal.exists() {
            return Err(WriteRefusal::WalRemoved {
                path: self.wal.clone(),
            });
        }
        Ok(())
    }
}

/// The file a local blob directory holds to be recognised: a directory removed and created
/// again can get the same inode number, but not this file.
pub(crate) const BLOB_DIRECTORY_MARKER: &str = ".airlock-blob-directory";

/// The local blob directory as opened, to notice when the path no longer leads to it.
#[derive(Debug, Clone)]
pub(crate) struct BlobDirectory {
    path: PathBuf,
    marker: PathBuf,
    /// (device, inode) of the directory and of its marker file when the store was opened; `None`
    /// where the platform has no inodes.
    identity: (FileIdentity, FileIdentity),
}

/// (device, inode), or `None` where the platform has no inodes.
type FileIdentity = Option<(u64, u64)>;

impl BlobDirectory {
    /// Records the identity of the directory at `path`, which exists, creating its marker file
    /// (mode 0600) if missing.
    pub(crate) fn opened(path: &Path) -> std::io::Result<Self> {
        let marker = path.join(BLOB_DIRECTORY_MARKER);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&marker)?;
        Ok(Self {
            identity: (identity_of(path)?, identity_of(&marker)?),
            path: path.to_path_buf(),
            marker,
        })
    }

    /// Checks the path still leads to the directory opened, with its marker file (two `stat`s).
    pub(crate) fn check(&self) -> Result<(), WriteRefusal> {
        let directory = match identity_of(&self.path) {
            Ok(now) => now,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(WriteRefusal::BlobDirectoryRemoved);
            }
            // Unreadable (permissions, I/O): the writes that follow report the real error.
            Err(_) => return Ok(()),
        };
        match identity_of(&self.marker) {
            Ok(marker) if (directory, marker) == self.identity => Ok(()),
            Ok(_) => Err(WriteRefusal::BlobDirectoryReplaced),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(WriteRefusal::BlobDirectoryReplaced)
            }
            Err(_) => Ok(()),
        }
    }
}

/// A storage write that failed recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentFailure {
    /// How long ago.
    pub ago: Duration,
    /// Which kind of write failed (`database commit`, `blob store write`), safe to show anyone.
    pub what: &'static str,
    /// The error, for the server log (it can name paths).
    pub error: String,
}

/// A failed write as remembered.
#[derive(Debug)]
struct Failure {
    at: Instant,
    what: &'static str,
    error: String,
}

/// The newest failure of a real write, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct FailureLog(Arc<Mutex<Option<Failure>>>);

impl FailureLog {
    /// Remembers (and logs) a failed write of kind `what`.
    pub(crate) fn record(&self, what: &'static str, error: impl std::fmt::Display) {
        tracing::error!(%error, "{what} failed");
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failure {
            at: Instant::now(),
            what,
            error: error.to_string(),
        });
    }

    /// The newest failure if it happened within `window`.
    pub fn within(&self, window: Duration) -> Option<RecentFailure> {
        let newest = self.0.lock().unwrap_or_else(|e| e.into_inner());
        newest.as_ref().and_then(|failure| {
            let ago = failure.at.elapsed();
            (ago <= window).then(|| RecentFailure {
                ago,
                what: failure.what,
                error: failure.error.clone(),
            })
        })
    }
}

/// The health state a [`crate::Metadata`] and its clones share.
#[derive(Debug)]
pub(crate) struct DatabaseHealth {
    /// The SQLite database file; `None` on PostgreSQL, which has no file of airlock's to watch.
    pub(crate) file: Option<DatabaseFile>,
    pub(crate) stopped: Mutex<Option<String>>,
    pub(crate) failures: FailureLog,
    /// The result of `PRAGMA quick_check` at open (`ok`).
    pub(crate) integrity: String,
}

/// Which checks a write transaction makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteChecks {
    /// The database file and the stop switch.
    All,
    /// Only the database file (the audit log's integration, which must be able to recover).
    FileOnly,
}

impl DatabaseHealth {
    /// Checks the file (and, with `in_transaction`, its WAL) and, for [`WriteChecks::All`], the
    /// stop switch.
    pub(crate) fn check(
        &self,
        checks: WriteChecks,
        in_transaction: bool,
    ) -> Result<(), WriteRefusal> {
        if let Some(file) = &self.file {
            file.check(in_transaction)?;
        }
        if checks == WriteChecks::All
            && let Some(reason) = self
                .stopped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        {
            return Err(WriteRefusal::Stopped { reason });
        }
        Ok(())
    }
}

/// Creates the database file with mode 0600 if it does not exist yet, so SQLite (which gives the
/// `-wal` and `-shm` files the database file's mode) never creates any of them readable by
/// others, whatever the process umask. An existing database and its companions are set to 0600.
/// The server calls this before [`crate::Metadata::open_sqlite`]; read-only tools do not.
pub fn secure_database_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use airlock_core::{Digest, RepoName};

    use crate::{Metadata, StoreError, StoredCheckpoint};

    async fn open(dir: &tempfile::TempDir) -> Metadata {
        Metadata::open_sqlite(&dir.path().join("m.db"))
            .await
            .unwrap()
    }

    async fn write(meta: &Metadata, content: &[u8]) -> Result<(), StoreError> {
        let repo: RepoName = "dev/team/app".parse().unwrap();
        meta.commit_blob(&repo, &Digest::sha256_of(content), 1, &[])
            .await
    }

    #[tokio::test]
    async fn writes_are_refused_once_the_database_file_is_removed_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let meta = open(&dir).await;
        write(&meta, b"before").await.unwrap();
        let path = dir.path().join("m.db");
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::rename(&copy, &path).unwrap();
        let refused = write(&meta, b"replaced").await.unwrap_err();
        assert!(refused.to_string().contains("was replaced"), "{refused}");
        assert!(meta.writable().is_err());

        std::fs::remove_file(&path).unwrap();
        let refused = write(&meta, b"removed").await.unwrap_err();
        assert!(refused.to_string().contains("was removed"), "{refused}");
    }

    #[tokio::test]
    async fn upload_session_writes_are_refused_once_the_database_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let meta = open(&dir).await;
        let repo: airlock_core::RepoName = "dev/team/app".parse().unwrap();
        let session = uuid::Uuid::new_v4();
        meta.create_upload(session, &repo, "admin").await.unwrap();
        std::fs::remove_file(dir.path().join("m.db")).unwrap();
        let refused = meta
            .create_upload(uuid::Uuid::new_v4(), &repo, "admin")
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("was removed"), "{refused}");
        let refused = meta.record_chunk(session, 0, 5, 1, "").await.unwrap_err();
        assert!(refused.to_string().contains("was removed"), "{refused}");
        let refused = meta.delete_upload(session).await.unwrap_err();
        assert!(refused.to_string().contains("was removed"), "{refused}");
    }

    #[tokio::test]
    async fn a_removed_wal_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = open(&dir).await;
        write(&meta, b"before").await.unwrap();
        std::fs::remove_file(dir.path().join("m.db-wal")).unwrap();
        let refused = write(&meta, b"after").await.unwrap_err();
        assert!(refused.to_string().contains("write-ahead log"), "{refused}");
    }

    #[tokio::test]
    async fn stopped_writes_refuse_changes_but_not_the_audit_integration() {
        let dir = tempfile::tempdir().unwrap();
        let meta = open(&dir).await;
        meta.stop_writes("the test says so".into());
        let refused = write(&meta, b"stopped").await.unwrap_err();
        assert!(
            refused.to_string().contains("the test says so"),
            "{refused}"
        );
        let checkpoint = StoredCheckpoint {
            size: 0,
            root: [0; 32],
            note: "note".into(),
            created_at: 0,
        };
        assert!(meta.record_integration(0, &[], &checkpoint).await.unwrap());
        meta.resume_writes();
        write(&meta, b"resumed").await.unwrap();
        assert_eq!(meta.integrity_at_open(), "ok");
    }
}
