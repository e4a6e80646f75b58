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
    /// A stored value could not be read back (corruption or a manual edit).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
}
