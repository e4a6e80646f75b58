//! The storage error.

/// A storage operation failed. None of these are the client's fault; the server answers 500 and
/// logs the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("metadata migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Blob(#[from] object_store::Error),
    /// Local file system I/O failed.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The change conflicts with what is stored (a duplicate name, a request no longer pending).
    #[error("{0}")]
    Conflict(String),
    /// A group commit that carried this caller's writes failed.
    #[error("batched write failed: {0}")]
    Batch(String),
    /// A blob's commit met garbage collection deleting the same digest (its bytes were removed
    /// or are being removed); nothing was recorded and the client uploads the blob again.
    #[error(
        "blob {0} was being garbage-collected while it was committed; nothing was recorded: upload it again"
    )]
    BlobCollected(String),
    /// A server key's sealed private half did not open (`server_keys`): the key-encryption key
    /// is not the one it was sealed with, or the row was changed. Names the key, never its bytes.
    #[error(
        "the stored {purpose} key {key_id} cannot be opened with this key-encryption key: key_encryption_key_file is not the file the keys were sealed with (every replica needs the same one), or the server_keys row was altered. Point key_encryption_key_file (AIRLOCK_KEY_ENCRYPTION_KEY_FILE) at the original KEK file, or restore the database from a backup (docs/operations.md, Recovery)"
    )]
    SealedKey {
        /// `log`, `token` or `attestation`.
        purpose: &'static str,
        /// The key's id.
        key_id: String,
    },
    /// A `server_keys` row is not authenticated by its MAC: it was added or changed by someone
    /// who could write the database but has no key-encryption key, or the KEK is another one.
    /// The key is never used. Names the row, never its bytes.
    #[error(
        "the stored {purpose} key {key_id} is refused: {reason}. The server_keys row was added or changed outside airlock (by someone with write access to the database but not the key-encryption key), or key_encryption_key_file is not the file the keys were sealed with. Restore the database from a backup taken before the change (docs/operations.md, Recovery), or point key_encryption_key_file (AIRLOCK_KEY_ENCRYPTION_KEY_FILE) at the original KEK file"
    )]
    ServerKeyUnauthenticated {
        /// `log`, `token` or `attestation`.
        purpose: &'static str,
        /// The key's id (at most 64 characters of it).
        key_id: String,
        /// What is wrong with the row.
        reason: &'static str,
    },
    /// The policy bundle in use changed (another replica activated another one) while a
    /// decision was being made with the previous one: the decision was not recorded.
    #[error(
        "the decision was made with policy bundle {decided}, but the bundle in use is now {active} (another replica loaded it meanwhile); nothing was recorded: retry"
    )]
    PolicyMoved {
        /// The bundle the decision was made with.
        decided: String,
        /// The bundle in use.
        active: String,
    },
    /// A cross-replica lock's connection did not answer in time: the lock counts as lost.
    #[error(
        "the database connection holding a cross-replica lock did not answer within {secs} s; the lock counts as lost (check the database's health and the network to it)"
    )]
    LockTimedOut {
        /// The time limit, in seconds.
        secs: u64,
    },
    /// A stored value could not be read back (corruption or a manual edit).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer airlock than this binary: this binary does not know
    /// its schema, so it must not read or write it.
    #[error(
        "the database schema is at migration {database}, but this airlock binary knows migrations up to {binary} only: a newer airlock release has migrated it, and an older binary does not run on a newer schema. Upgrade airlock to the release that migrated the database (or a newer one), or restore the backup taken before the upgrade (docs/operations.md, Upgrading)"
    )]
    SchemaTooNew {
        /// The newest migration applied to the database.
        database: i64,
        /// The newest migration this binary carries.
        binary: i64,
    },
    /// A migration applied to the database is not the binary's migration of that version (its
    /// SQL was edited after release, or the database was migrated by a build from another
    /// branch).
    #[error(
        "migration {version} ({description}) applied to this database differs from the migration {version} this airlock binary carries: the database was migrated by a different build of airlock (a migration edited after release, or another branch). airlock does not start on a schema it cannot vouch for. Run the airlock release that migrated the database, or restore a backup made by a release (docs/operations.md, Upgrading)"
    )]
    MigrationChanged {
        /// The migration's version.
        version: i64,
        /// Its description, as the database recorded it.
        description: String,
    },
    /// SQLite's integrity check found the database damaged; nothing was written to it.
    #[error(
        "the database {} failed SQLite's integrity check (PRAGMA quick_check): {problems}. airlock does not start on a damaged database. Restore it from your newest backup (docs/operations.md, Recovery); without a backup, `sqlite3 {} .recover | sqlite3 recovered.db` copies the readable rows into a new file, which you then move in place of the database (removing its -wal and -shm files) and check with `airlock audit verify --data-dir` before starting",
        path.display(),
        path.display()
    )]
    IntegrityCheck {
        /// The database file.
        path: std::path::PathBuf,
        /// What the check reported (up to 20 problems).
        problems: String,
    },
    /// The S3 blob store could not be set up or did not take a test write at start.
    #[error(
        "blob store {location} cannot be used: {source}. Check blob_store, [s3] endpoint, region, path_style and allow_http, that the bucket exists, and the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (docs/storage.md)"
    )]
    BlobStoreUnusable {
        /// The `s3://` location.
        location: String,
        /// Why.
        #[source]
        source: Box<StoreError>,
    },
}

/// What a client hears when a value it sent holds a character the database cannot store
/// ([`StoreError::unstorable_text`]).
pub const UNSTORABLE_TEXT: &str = "a text value in the request contains the NUL character (U+0000, sent as \\u0000 or %00), which the metadata database cannot store; nothing was changed";

impl StoreError {
    /// A failed read of `table`: a column whose stored value does not parse as its type is
    /// [`StoreError::Corrupt`] naming the table, the column and the value; anything else is the
    /// database's error.
    pub(crate) fn undecodable(table: &str, err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::ColumnDecode { index, source } => StoreError::Corrupt(format!(
                "{table}.{} holds {source}",
                index.trim_matches('"')
            )),
            other => StoreError::Database(other),
        }
    }

    /// Whether a blob's bytes were not found (garbage collection deleted them after the row was
    /// read): the blob is unknown, as if the row had been gone already.
    pub fn is_missing_blob(&self) -> bool {
        match self {
            StoreError::Blob(object_store::Error::NotFound { .. }) => true,
            StoreError::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The time limit behind this error when the database gave up waiting (a lock not granted,
    /// a statement or an idle transaction past its limit, no free connection): nothing was
    /// written and the request can be sent again, so clients hear 503 with `Retry-After`.
    pub fn busy(&self) -> Option<crate::DatabaseBusy> {
        match self {
            StoreError::Database(err) => crate::DatabaseBusy::of(err),
            StoreError::Migration(sqlx::migrate::MigrateError::Execute(err)) => {
                crate::DatabaseBusy::of(err)
            }
            _ => None,
        }
    }

    /// Whether the database refused a text value it cannot hold: PostgreSQL's `text` has no NUL
    /// character (U+0000; SQLSTATE `22021`). Nothing was written; the value came from the client,
    /// so it hears 400 naming [`UNSTORABLE_TEXT`], not 500.
    pub fn unstorable_text(&self) -> bool {
        let err = match self {
            StoreError::Database(err)
            | StoreError::Migration(sqlx::migrate::MigrateError::Execute(err)) => err,
            _ => return false,
        };
        matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("22021"))
    }

    /// The refusal behind this error when storage refused a write because it cannot keep it (the
    /// database file or the blob directory removed or replaced, writes stopped): the client should
    /// hear 503, not 500.
    pub fn write_refusal(&self) -> Option<&crate::WriteRefusal> {
        match self {
            StoreError::Database(sqlx::Error::Io(io)) | StoreError::Io(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<crate::WriteRefusal>()),
            _ => None,
        }
    }
}
