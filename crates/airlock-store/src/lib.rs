//! airlock's storage layer.
//!
//! [`Metadata`] keeps everything small and relational (repositories, manifests, tags, blob links,
//! upload sessions, identities, the audit log, the keyring and evidence) in SQL through sqlx's `Any` driver: SQLite in WAL mode is the embedded default, PostgreSQL the
//! shared engine for several replicas (see `engine`). [`BlobStore`]
//! keeps blob bytes in an `object_store` (a local directory by default), content-addressed so one
//! copy serves every stage and repository. Neither knows about HTTP.
#![forbid(unsafe_code)]

mod access;
mod active_policy;
mod anomalies;
mod api_keys;
mod audit;
mod audit_reader;
mod backup;
mod blobs;
mod catalog;
mod console_sessions;
mod deploy;
mod engine;
mod error;
mod evidence;
mod gc;
mod health;
mod metadata;
mod migrate;
mod passwords;
#[cfg(test)]
mod postgres_tests;
mod promotion;
mod refresh;
mod refusals;
mod schema;
mod separation;
mod server_keys;
mod session_lock;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod upgrade_tests;
mod webhooks;
mod witness;

pub use access::{AccessRequestRow, BindingRow, CredentialRow, PrincipalBindingRow, PrincipalRow};
pub use anomalies::{ActiveQuarantine, AnomalyRow, QuarantineRow, ResolveError, Tripwire};
pub use api_keys::{ApiKeyRow, ExpiringKey, NewApiKey, SentNotice};
pub use audit::{AuditTableCounts, DifferingHash, StoredCheckpoint, StoredEntry};
pub use audit_reader::{AuditLogReader, TransactionReader};
pub use backup::{
    ReferencedBlob, blobs_gone_live, drop_unreferenced_blobs, postgres_user_tables, snapshot_sqlite,
};
pub use blobs::{
    BlobCopy, BlobRange, BlobStore, ByteStream, CREDENTIAL_VARIABLES, ChunkWriteError,
    LOG_IDENTITY_PATH, REDIRECT_TTL_SECS, S3Location, S3LocationError, S3Options, StagedObject,
    StoredBlobFile, local_blob_file,
};
pub use catalog::{ArtifactEntry, TagRow, TimeCursor};
pub use console_sessions::{ConsoleSessionRow, TOUCH_INTERVAL_MILLIS};
pub use deploy::{DeployRecord, DeploymentRow};
pub use engine::{Backend, DatabaseBusy, DatabaseLocation, POSTGRES_TIMEOUTS, redact_url};
pub use error::{StoreError, UNSTORABLE_TEXT};
pub use evidence::{
    ArtifactFlag, EvidenceOrigin, EvidenceRow, EvidenceUpdate, EvidenceVerdict, KeyChange, KeyRow,
    KeyringWriteError, NewEvidence,
};
pub use gc::{CollectableBlob, GcStages, PrunableManifest};
pub use health::{FailureLog, RecentFailure, WriteRefusal, secure_database_file};
pub use metadata::{
    ManifestUpload, ManifestWriteError, Metadata, ReferrerRow, StoredManifest, TagMove,
    UploadSession, now_millis,
};
pub use migrate::{MigrateError, TableCopy};
pub use passwords::{PasswordChange, VerifiedPassword};
pub use promotion::{
    ApprovalRow, ChannelMove, DecisionRow, FreezeRow, NewManifest, PromotionRow, PromotionWrite,
    PromotionWriteError, Rollback, Transition,
};
pub use refresh::RefreshRotation;
pub use refusals::REFUSED_PUSH_ENTRIES_PER_MINUTE;
pub use separation::Contributors;
pub use server_keys::{KeyEncryptionKey, KeyPurpose, ServerKeyRecord, ServerKeySet};
pub use session_lock::{SessionLock, SessionLockKey};
pub use webhooks::{AttemptOutcome, DeliveryRow, DueDelivery, WebhookRow};
pub use witness::{WitnessStatusRow, WitnessedLogRow};
