//! `airlock migrate-store`: moves a stopped embedded installation (SQLite in the data directory,
//! blobs in its `blobs/`) to PostgreSQL and, optionally, S3 (docs/operations.md, "Moving to
//! PostgreSQL and S3").
//!
//! The order, and what each step guarantees:
//! 1. the data directory's lock is taken (`data_dir::lock`): a running server holds it, so a
//!    live installation is refused, and a server started meanwhile refuses to start;
//! 2. the target database is migrated and refused if it holds data;
//! 3. with `--blobs`, every blob the database refers to is streamed into the bucket and verified
//!    against its digest on the way (a damaged file stops the move before the database is
//!    filled, naming it; a blob already in the bucket is skipped when its bytes hash to its
//!    digest, so a re-run after a failure resumes, and replaced, with a warning naming it, when
//!    they do not);
//! 4. the target database is filled in one transaction (`Metadata::copy_into_postgres`), all or
//!    nothing;
//! 5. checks, inside that transaction before it commits, each failing with
//!    [`MigrateStoreError::Check`] and rolling the copy back (the target stays empty): equal row
//!    counts per table; the copied audit log verifies with the installation's log key and
//!    extends the source's newest checkpoint (same size, same root); every tag resolves to the
//!    same digest;
//! 6. one `store.migrated` audit entry is appended on the target.
//!
//! The source is opened (and migrated to this binary's schema, as `airlock serve` would) but not
//! otherwise changed: until the operator starts the server on the new engines, the embedded
//! installation is intact and can be started again as it was.

use std::path::{Path, PathBuf};

use airlock_core::{Actor, AuditEvent, AuditRecord};
use airlock_store::{
    AuditLogReader, BlobCopy, BlobStore, Metadata, MigrateError, S3Location, S3Options, StoreError,
    StoredCheckpoint, TableCopy, TransactionReader,
};

use crate::data_dir::{DataDirError, database_path};

/// What to move, and where.
#[derive(Debug, Clone)]
pub struct MigrateRequest {
    /// The stopped installation's data directory.
    pub data_dir: PathBuf,
    /// The PostgreSQL database to fill (`postgres://...`).
    pub database_url: String,
    /// The bucket for the blobs; `None` leaves them in the data directory.
    pub blob_store: Option<S3Location>,
    /// The `[s3]` settings.
    pub s3: S3Options,
}

/// What was moved.
#[derive(Debug, Clone)]
pub struct MigrateSummary {
    /// Every table with its rows on both sides, in copy order.
    pub tables: Vec<TableCopy>,
    /// Blobs copied into the bucket.
    pub blobs_copied: u64,
    /// Blobs the bucket held already, their bytes verified.
    pub blobs_present: u64,
    /// Objects the bucket held under a blob's name whose bytes were not the blob: replaced by
    /// the verified bytes (the command names each).
    pub blobs_replaced: Vec<airlock_core::Digest>,
    /// Bytes of all the blobs (copied or present).
    pub blob_bytes: u64,
    /// The audit log's size and the checkpoint it was checked against (`None` before any
    /// checkpoint was signed).
    pub audit_entries: u64,
    /// The size of the source's newest checkpoint the target was verified against.
    pub checkpoint_size: Option<u64>,
    /// Tags checked to resolve to the same digest.
    pub tags: u64,
}

impl MigrateSummary {
    /// Rows copied, over every table.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.target_rows).sum()
    }
}

/// Why nothing, or not everything, was moved.
#[derive(Debug, thiserror::Error)]
pub enum MigrateStoreError {
    /// The data directory is in use, or cannot be read.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The data directory holds no embedded database.
    #[error(
        "{} holds no embedded database (metadata.db): pass the data directory of the installation to move with --data-dir",
        dir.display()
    )]
    NoDatabase {
        /// The data directory.
        dir: PathBuf,
    },
    /// The copy was refused or failed (nothing of it was kept in the target).
    #[error(transparent)]
    Copy(#[from] MigrateError),
    /// A blob could not be copied (the move stops; a re-run resumes, skipping blobs already in
    /// the bucket).
    #[error("blob {digest}: {source}")]
    Blob {
        /// The blob.
        digest: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log key could not be read.
    #[error("cannot read the audit log key {}: {reason}", path.display())]
    LogKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A check of the copy failed before it was committed: the copy was rolled back.
    #[error(
        "check of the copy failed: {0}. Nothing was committed: the target database is still empty. Find the cause in the source (`airlock audit verify --data-dir` checks its audit log), then run migrate-store again"
    )]
    Check(String),
}

impl MigrateStoreError {
    /// Whether this is a refusal or a failed check (exit 1) rather than an I/O or connection
    /// failure (exit 2).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::DataDir(DataDirError::InUse { .. })
                | Self::NoDatabase { .. }
                | Self::Copy(
                    MigrateError::TargetNotEmpty { .. }
                        | MigrateError::SchemaMismatch { .. }
                        | MigrateError::WrongEngines { .. }
                        | MigrateError::ForeignKeyCycle(_)
                )
                | Self::Blob {
                    source: StoreError::Corrupt(_),
                    ..
                }
                | Self::Check(_)
        )
    }
}

/// Moves the installation as the module docs say.
pub async fn migrate(request: &MigrateRequest) -> Result<MigrateSummary, MigrateStoreError> {
    let dir = &request.data_dir;
    let _lock = crate::data_dir::lock(dir)?;
    let database = database_path(dir);
    if !database.is_file() {
        return Err(MigrateStoreError::NoDatabase { dir: dir.clone() });
    }
    let source = Metadata::open_sqlite(&database).await?;
    let target = Metadata::open_postgres(&request.database_url).await?;
    let result = move_and_check(request, &source, &target).await;
    source.close().await;
    target.close().await;
    result
}

async fn move_and_check(
    request: &MigrateRequest,
    source: &Metadata,
    target: &Metadata,
) -> Result<MigrateSummary, MigrateStoreError> {
    target.refuse_if_holding_data().await?;
    // What the copy is checked against, read before anything moves (a missing log key stops
    // the move here, with nothing done).
    let expected = Expected::read(&request.data_dir, source).await?;
    // Blobs first: a damaged file stops the move before the database is filled, so the same
    // command can run again once the file is restored (copied blobs are skipped then).
    let blobs = match &request.blob_store {
        Some(location) => copy_blobs(request, location, source).await?,
        None => BlobCounts::default(),
    };
    let audit_entries = expected.entries;
    let checkpoint_size = expected.latest.as_ref().map(|c| c.size);
    let tags = expected.tags.len() as u64;
    let tables = source
        .copy_into_postgres(target, move |tables, copied| {
            Box::pin(async move { check_copy(tables, copied, &expected).await })
        })
        .await
        .map_err(|err| match err {
            MigrateError::CheckFailed(problem) => MigrateStoreError::Check(problem),
            other => MigrateStoreError::Copy(other),
        })?;
    let summary = MigrateSummary {
        tables,
        blobs_copied: blobs.copied,
        blobs_present: blobs.present,
        blobs_replaced: blobs.replaced,
        blob_bytes: blobs.bytes,
        audit_entries,
        checkpoint_size,
        tags,
    };
    target
        .record_events(&[AuditRecord {
            time_millis: airlock_store::now_millis(),
            actor: Actor::system(),
            event: AuditEvent::StoreMigrated {
                tables: summary.tables.len() as u64,
                rows: summary.rows(),
                blobs: summary.blobs_copied
                    + summary.blobs_present
                    + summary.blobs_replaced.len() as u64,
                bytes: blobs.bytes,
                blob_store: request.blob_store.as_ref().map(ToString::to_string),
            },
        }])
        .await?;
    Ok(summary)
}

/// What [`copy_blobs`] did.
#[derive(Debug, Default)]
struct BlobCounts {
    copied: u64,
    present: u64,
    replaced: Vec<airlock_core::Digest>,
    bytes: u64,
}

/// Streams every blob the source refers to into the bucket.
async fn copy_blobs(
    request: &MigrateRequest,
    location: &S3Location,
    source: &Metadata,
) -> Result<BlobCounts, MigrateStoreError> {
    let local = BlobStore::local(&request.data_dir.join("blobs"))?;
    let bucket = BlobStore::s3(location, &request.s3, std::env::vars()).await?;
    let mut counts = BlobCounts::default();
    for blob in source.referenced_blobs().await? {
        let outcome = bucket
            .copy_blob_from(&local, &blob.digest)
            .await
            .map_err(|source| MigrateStoreError::Blob {
                digest: blob.digest.to_string(),
                source,
            })?;
        let size = match outcome {
            BlobCopy::Copied(size) => {
                counts.copied += 1;
                size
            }
            BlobCopy::AlreadyThere(size) => {
                counts.present += 1;
                size
            }
            BlobCopy::Replaced(size) => {
                tracing::warn!(digest = %blob.digest, bucket = %location, "the bucket held an object under this blob's name whose bytes are not the blob; replaced it with the data directory's verified bytes");
                counts.replaced.push(blob.digest.clone());
                size
            }
        };
        if let Some(recorded) = blob.size
            && recorded != size
        {
            return Err(MigrateStoreError::Check(format!(
                "blob {} has {size} bytes but the database records {recorded}",
                blob.digest
            )));
        }
        counts.bytes += size;
    }
    Ok(counts)
}

/// What the source holds that the copy must hold too.
struct Expected {
    /// Audit entries appended.
    entries: u64,
    /// The newest checkpoint, if one was signed.
    latest: Option<StoredCheckpoint>,
    /// The log's verifier key (from the data directory's `log-key`).
    verifier_key: String,
    /// Every tag with its digest.
    tags: Vec<(String, String, String)>,
}

impl Expected {
    async fn read(dir: &Path, source: &Metadata) -> Result<Self, MigrateStoreError> {
        let path = dir.join("log-key");
        let key_error = |reason: String| MigrateStoreError::LogKey {
            path: path.clone(),
            reason,
        };
        let private = std::fs::read_to_string(&path).map_err(|e| key_error(e.to_string()))?;
        let key = airlock_audit::LogKey::from_private_text(&private)
            .map_err(|e| key_error(e.to_string()))?;
        Ok(Self {
            entries: source.audit_entry_count().await?,
            latest: source.latest_checkpoint().await?,
            verifier_key: key.verifier_key().to_string(),
            tags: source.tag_digests().await?,
        })
    }
}

/// The checks of the uncommitted copy, inside its transaction: equal row counts per table; the
/// copied audit log verifies with the installation's log key against the source's newest
/// checkpoint (which the copy must hold too, same size and root); every tag resolves to the same
/// digest. The first problem found, as a sentence.
async fn check_copy(
    tables: &[TableCopy],
    copied: &TransactionReader<'_>,
    expected: &Expected,
) -> Result<(), String> {
    if let Some(table) = tables.iter().find(|t| t.source_rows != t.target_rows) {
        return Err(format!(
            "table {} has {} rows in the source and {} in the target",
            table.table, table.source_rows, table.target_rows
        ));
    }
    let unreadable = |err: StoreError| format!("the copy cannot be read back: {err}");
    if copied.audit_entry_count().await.map_err(unreadable)? != expected.entries {
        return Err("the audit logs hold different numbers of entries".into());
    }
    if let Some(latest) = &expected.latest {
        let newest = copied
            .checkpoints()
            .await
            .map_err(unreadable)?
            .into_iter()
            .max_by_key(|c| c.size);
        if newest.map(|c| (c.size, c.root)) != Some((latest.size, latest.root)) {
            return Err(format!(
                "the target's newest checkpoint is not the source's (size {})",
                latest.size
            ));
        }
        crate::audit::verify_stored_log(copied, &expected.verifier_key, Some(&latest.note))
            .await
            .map_err(|err| {
                format!(
                    "the copied audit log does not verify against the source's checkpoint of size {}: {err}",
                    latest.size
                )
            })?;
    }
    if copied.tag_digests().await.map_err(unreadable)? != expected.tags {
        return Err("the tags do not resolve to the same digests in the target".into());
    }
    Ok(())
}
