//! Registry metadata in SQL: repositories, blob links, manifests, tags, referrers, upload sessions.
//!
//! Every write that changes what a client can see runs in one transaction, so a manifest, its
//! references and its tag appear together or not at all.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock_core::{AuditRecord, Digest, ParsedManifest, RepoName, Tag};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Row, SqlStr};
use uuid::Uuid;

use crate::audit::append;
use crate::engine::{
    Backend, DatabaseLocation, SqlBuilder, WRITER_LOCK_KEY, postgres_timeouts_sql, sqlite_options,
    sqlite_settings,
};
use crate::error::StoreError;
use crate::health::{DatabaseFile, DatabaseHealth, FailureLog, WriteChecks, WriteRefusal};

/// The schema migrations of `backend`, embedded in the binary, applied in order at start.
///
/// Each version exists for both engines with the same description and the same resulting schema
/// in the engine's types: `migrations/NNNN_*.sql` for SQLite (never edited once released: their
/// checksums are recorded in every installed database) and `migrations/postgres/NNNN_*.sql` for
/// PostgreSQL.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    // (version, description, SQLite SQL, PostgreSQL SQL)
    let all: [(i64, &'static str, &'static str, &'static str); 32] = [
        (
            1,
            "registry",
            include_str!("../migrations/0001_registry.sql"),
            include_str!("../migrations/postgres/0001_registry.sql"),
        ),
        (
            2,
            "audit",
            include_str!("../migrations/0002_audit.sql"),
            include_str!("../migrations/postgres/0002_audit.sql"),
        ),
        (
            3,
            "access",
            include_str!("../migrations/0003_access.sql"),
            include_str!("../migrations/postgres/0003_access.sql"),
        ),
        (
            4,
            "evidence",
            include_str!("../migrations/0004_evidence.sql"),
            include_str!("../migrations/postgres/0004_evidence.sql"),
        ),
        (
            5,
            "promotions",
            include_str!("../migrations/0005_promotions.sql"),
            include_str!("../migrations/postgres/0005_promotions.sql"),
        ),
        (
            6,
            "anomalies",
            include_str!("../migrations/0006_anomalies.sql"),
            include_str!("../migrations/postgres/0006_anomalies.sql"),
        ),
        (
            7,
            "webhooks",
            include_str!("../migrations/0007_webhooks.sql"),
            include_str!("../migrations/postgres/0007_webhooks.sql"),
        ),
        (
            8,
            "manifest parents",
            include_str!("../migrations/0008_manifest_parents.sql"),
            include_str!("../migrations/postgres/0008_manifest_parents.sql"),
        ),
        (
            9,
            "refresh tokens",
            include_str!("../migrations/0009_refresh_tokens.sql"),
            include_str!("../migrations/postgres/0009_refresh_tokens.sql"),
        ),
        (
            10,
            "promotion integrity",
            include_str!("../migrations/0010_promotion_integrity.sql"),
            include_str!("../migrations/postgres/0010_promotion_integrity.sql"),
        ),
        (
            11,
            "upload owner",
            include_str!("../migrations/0011_upload_owner.sql"),
            include_str!("../migrations/postgres/0011_upload_owner.sql"),
        ),
        (
            12,
            "scoped quarantines, refused pushes",
            include_str!("../migrations/0012_scoped_quarantines_refused_pushes.sql"),
            include_str!("../migrations/postgres/0012_scoped_quarantines_refused_pushes.sql"),
        ),
        (
            13,
            "password must change",
            include_str!("../migrations/0013_password_must_change.sql"),
            include_str!("../migrations/postgres/0013_password_must_change.sql"),
        ),
        (
            14,
            "service account keys",
            include_str!("../migrations/0014_service_account_keys.sql"),
            include_str!("../migrations/postgres/0014_service_account_keys.sql"),
        ),
        (
            15,
            "webhook ca cert",
            include_str!("../migrations/0015_webhook_ca_cert.sql"),
            include_str!("../migrations/postgres/0015_webhook_ca_cert.sql"),
        ),
        (
            16,
            "audit kind index",
            include_str!("../migrations/0016_audit_kind_index.sql"),
            include_str!("../migrations/postgres/0016_audit_kind_index.sql"),
        ),
        (
            17,
            "promotion rejections",
            include_str!("../migrations/0017_promotion_rejections.sql"),
            include_str!("../migrations/postgres/0017_promotion_rejections.sql"),
        ),
        (
            18,
            "gc",
            include_str!("../migrations/0018_gc.sql"),
            include_str!("../migrations/postgres/0018_gc.sql"),
        ),
        (
            19,
            "server keys",
            include_str!("../migrations/0019_server_keys.sql"),
            include_str!("../migrations/postgres/0019_server_keys.sql"),
        ),
        (
            20,
            "active policy",
            include_str!("../migrations/0020_active_policy.sql"),
            include_str!("../migrations/postgres/0020_active_policy.sql"),
        ),
        (
            21,
            "gc cleared, chunk attempts",
            include_str!("../migrations/0021_gc_cleared_chunk_attempts.sql"),
            include_str!("../migrations/postgres/0021_gc_cleared_chunk_attempts.sql"),
        ),
        (
            22,
            "server key macs",
            include_str!("../migrations/0022_server_key_macs.sql"),
            include_str!("../migrations/postgres/0022_server_key_macs.sql"),
        ),
        (
            23,
            "list paging",
            include_str!("../migrations/0023_list_paging.sql"),
            include_str!("../migrations/postgres/0023_list_paging.sql"),
        ),
        (
            24,
            "referrers index",
            include_str!("../migrations/0024_referrers_index.sql"),
            include_str!("../migrations/postgres/0024_referrers_index.sql"),
        ),
        (
            25,
            "pending evidence",
            include_str!("../migrations/0025_pending_evidence.sql"),
            include_str!("../migrations/postgres/0025_pending_evidence.sql"),
        ),
        (
            26,
            "list paging indexes",
            include_str!("../migrations/0026_list_paging_indexes.sql"),
            include_str!("../migrations/postgres/0026_list_paging_indexes.sql"),
        ),
        (
            27,
            "console sessions",
            include_str!("../migrations/0027_console_sessions.sql"),
            include_str!("../migrations/postgres/0027_console_sessions.sql"),
        ),
        (
            28,
            "audit subject digest",
            include_str!("../migrations/0028_audit_subject_digest.sql"),
            include_str!("../migrations/postgres/0028_audit_subject_digest.sql"),
        ),
        (
            29,
            "verify version",
            include_str!("../migrations/0029_verify_version.sql"),
            include_str!("../migrations/postgres/0029_verify_version.sql"),
        ),
        (
            30,
            "deployments",
            include_str!("../migrations/0030_deployments.sql"),
            include_str!("../migrations/postgres/0030_deployments.sql"),
        ),
        (
            31,
            "witness",
            include_str!("../migrations/0031_witness.sql"),
            include_str!("../migrations/postgres/0031_witness.sql"),
        ),
        (
            32,
            "provenance by repository",
            include_str!("../migrations/0032_provenance_by_repository.sql"),
            include_str!("../migrations/postgres/0032_provenance_by_repository.sql"),
        ),
    ];
    Migrator::with_migrations(
        all.into_iter()
            .map(|(version, description, sqlite, postgres)| {
                let sql = match backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                };
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// An upload session in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// The session id, also the staging directory name.
    pub id: Uuid,
    /// The repository the upload belongs to.
    pub repository: String,
    /// The principal that opened the session, the only one that may use it (`None` for sessions
    /// opened before sessions had owners: nobody may use those).
    pub principal: Option<String>,
    /// Bytes received so far.
    pub size: u64,
    /// Chunks staged so far.
    pub chunks: u32,
    /// The attempt that wrote each of them, in order (`BlobStore::chunk_attempt`; empty for a
    /// fixed chunk name): `chunks` entries.
    pub chunk_attempts: Vec<String>,
    /// When the session started (ms).
    pub created_at: i64,
    /// When the last chunk arrived (ms).
    pub updated_at: i64,
}

/// A manifest document as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// The media type it is served with.
    pub media_type: String,
    /// The exact bytes that were pushed.
    pub content: Vec<u8>,
    /// When it arrived in this repository (ms).
    pub arrived_at: i64,
    /// Who pushed it into this repository (`airlock` for what a promotion placed there; `None`
    /// for rows from before pushers were recorded).
    pub pushed_by: Option<String>,
    /// The quarantine in this repository's path on its digest, or on an index that contains it
    /// (at any depth), if an anomaly set one
    /// (read in the same query, so the check every pull from a gated stage makes costs no extra
    /// round trip).
    pub quarantine: Option<crate::anomalies::QuarantineRow>,
}

/// One entry of a referrers listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerRow {
    /// The referrer manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A manifest being pushed: its digest, parsed form and exact bytes.
#[derive(Debug, Clone, Copy)]
pub struct ManifestUpload<'a> {
    /// The digest of `content`.
    pub digest: &'a Digest,
    /// What `content` references.
    pub manifest: &'a ParsedManifest,
    /// The exact bytes pushed.
    pub content: &'a [u8],
}

/// What a manifest push did to its tag, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagMove {
    /// The tag is new.
    Created,
    /// The tag moved away from this digest.
    Moved {
        /// The digest the tag pointed to before.
        from: Digest,
    },
    /// The tag already pointed to this digest.
    Unchanged,
}

/// Why a manifest could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestWriteError {
    /// Referenced blobs or manifests are not in the repository.
    #[error("manifest references content missing from the repository: {0:?}")]
    MissingReferences(Vec<Digest>),
    /// A descriptor declares a size other than that of the content the repository holds.
    #[error(
        "{field} declares {digest} with size {declared}, but the stored content has {stored} bytes"
    )]
    SizeMismatch {
        /// Which descriptor.
        field: airlock_core::DescriptorField,
        /// The content it names.
        digest: Digest,
        /// The size it declares.
        declared: u64,
        /// The size of the stored content.
        stored: u64,
    },
    /// A stage rule refused the tag move.
    #[error(transparent)]
    Rule(airlock_core::Error),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ManifestWriteError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// The metadata store.
///
/// Single-row reads use `fetch_all`, never `fetch_optional`/`fetch_one`: with SQLite, a statement
/// that is dropped before it steps to the end stays active and pins its connection's WAL read
/// snapshot, so a later read on that pooled connection could miss a write that already committed
/// (sqlx issue #2543). Running every statement to completion releases the snapshot at once.
///
/// Queries are written once, for both engines, through sqlx's `Any` driver (see [`Backend`] and
/// `ARCHITECTURE.md`): `$N` placeholders, SQL both SQLite and PostgreSQL accept, integers as
/// `BIGINT` (`i64`) and flags as integers compared to 0/1.
#[derive(Clone)]
pub struct Metadata {
    pool: AnyPool,
    /// The engine behind the pool.
    backend: Backend,
    /// Serialises this process's write transactions before they reach the database, so
    /// concurrent writers queue here instead of in SQLite's busy handler (which sleeps and
    /// retries) or on PostgreSQL's advisory lock.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Events waiting to be appended by [`Metadata::record_events`] (group commit).
    pub(crate) pending_events: std::sync::Arc<std::sync::Mutex<Vec<crate::audit::PendingEvents>>>,
    /// The database file's identity, the stop switch and recent failures (see `health`).
    health: std::sync::Arc<DatabaseHealth>,
}

/// A write transaction holding the process-wide writer slot until it commits or drops.
pub struct WriteTransaction {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _slot: tokio::sync::OwnedMutexGuard<()>,
    health: std::sync::Arc<DatabaseHealth>,
    checks: WriteChecks,
}

impl WriteTransaction {
    /// Commits the transaction and frees the writer slot. Refuses (rolling back) if the database
    /// file was removed or replaced, or writes were stopped, since the transaction began; a
    /// failed commit is remembered for readiness.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        let WriteTransaction {
            tx, health, checks, ..
        } = self;
        health
            .check(checks, true)
            .map_err(WriteRefusal::into_sqlx)?;
        tx.commit()
            .await
            .inspect_err(|err| health.failures.record("database commit", err))
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// SQLite's result codes for a damaged file: `SQLITE_CORRUPT` (and its extended codes) and
/// `SQLITE_NOTADB`.
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;

/// An error from opening or checking the database, as [`StoreError::IntegrityCheck`] when SQLite
/// says the file is damaged (a bad page can fail the check itself rather than be listed by it).
fn damaged(path: &Path, err: sqlx::Error) -> StoreError {
    let code = match &err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()),
        _ => None,
    };
    match code {
        Some(code) if code & 0xff == SQLITE_CORRUPT || code & 0xff == SQLITE_NOTADB => {
            StoreError::IntegrityCheck {
                path: path.to_path_buf(),
                problems: err.to_string(),
            }
        }
        _ => err.into(),
    }
}

pub(crate) fn parse_digest(value: String) -> Result<Digest, StoreError> {
    Digest::from_str(&value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_annotations(value: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt(format!("annotations: {e}")))
}

async fn ensure_repository(
    tx: &mut sqlx::AnyConnection,
    repo: &RepoName,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(repo.as_str())
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Stores manifest `digest` (its parsed fields and exact bytes) unless it is already stored: the
/// one `INSERT INTO manifests` that a push and a promotion's attestation share.
pub(crate) async fn insert_manifest_row(
    tx: &mut AnyConnection,
    digest: &Digest,
    manifest: &ParsedManifest,
    content: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    let annotations = serde_json::to_string(&manifest.annotations)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO manifests
         (digest, media_type, artifact_type, subject, annotations, size, content, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(digest.to_string())
    .bind(&manifest.media_type)
    .bind(manifest.artifact_type.as_deref())
    .bind(manifest.subject.as_ref().map(Digest::to_string))
    .bind(annotations)
    .bind(content.len() as i64)
    .bind(content)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A subject's referrers in a repository, oldest first (`$3`/`$4`: an artifact type or NULL).
pub(crate) const REFERRERS: &str =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
     FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
     WHERE rm.repository = $1 AND rm.subject = $2
       AND ($3 IS NULL OR m.artifact_type = $4)
     ORDER BY rm.created_at, rm.digest";

/// A page of a subject's referrers in a repository after a cursor (`$3`/`$4`: arrival time and
/// digest), oldest first (`$5`/`$6`: an artifact type or NULL; `$7`: the limit): a range of
/// `repository_manifests_by_subject`, which holds the digest as part of the table's key.
const REFERRERS_PAGE: &str =
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations, rm.created_at
     FROM repository_manifests rm JOIN manifests m ON m.digest = rm.digest
     WHERE rm.repository = $1 AND rm.subject = $2 AND (rm.created_at, rm.digest) > ($3, $4)
       AND ($5 IS NULL OR m.artifact_type = $6)
     ORDER BY rm.created_at, rm.digest LIMIT $7";

impl Metadata {
    /// Opens the metadata database `location` names: [`Metadata::open_sqlite`] or
    /// [`Metadata::open_postgres`].
    pub async fn open(location: &DatabaseLocation) -> Result<Self, StoreError> {
        match location {
            DatabaseLocation::Sqlite(path) => Self::open_sqlite(path).await,
            DatabaseLocation::Postgres(url) => Self::open_postgres(url).await,
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` in WAL mode, runs SQLite's
    /// `PRAGMA quick_check` (a corrupt database is refused with [`StoreError::IntegrityCheck`]
    /// before anything is written to it), refuses a schema this binary does not know
    /// ([`StoreError::SchemaTooNew`], [`StoreError::MigrationChanged`]) and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        // The file is created here, never by a connection: the pool opens connections on demand,
        // and one opened after the database was removed must fail rather than start an empty
        // database at the path.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let options = sqlite_options(path, false)?;
        // One connection first puts a new file into WAL mode: switching needs an exclusive lock,
        // and the pool's first connections racing to switch a new file could answer "database is
        // locked" (SQLite does not wait for that lock). The mode is stored in the file, so the
        // pool's connections find it set.
        let mut first: AnyConnection = sqlx::ConnectOptions::connect(&options)
            .await
            .map_err(|e| damaged(path, e))?;
        sqlite_settings(&mut first)
            .await
            .map_err(|e| damaged(path, e))?;
        let migrator = migrator(Backend::Sqlite);
        // A schema this binary does not know is refused before the pool opens: a pooled
        // connection that read the old schema could keep stale column lists for `SELECT *` once
        // migrations change it.
        crate::schema::check_applied(&mut first, Backend::Sqlite, &migrator)
            .await
            .map_err(|e| match e {
                StoreError::Database(e) => damaged(path, e),
                other => other,
            })?;
        sqlx::Connection::close(first)
            .await
            .map_err(|e| damaged(path, e))?;
        // Connections stay open for the life of the pool: SQLite deletes the write-ahead log when
        // the last one closes, and the WAL's existence is how a removed WAL is noticed.
        //
        // No ping before handing out a connection: on SQLite a ping is only a message to the
        // connection's worker thread and back (it never touches the file), so it cannot find a
        // broken connection, but it doubled the thread hops of every pooled statement. (sqlx
        // still pings once when a connection goes back to the pool, which waits for anything the
        // last user left running, such as a rollback.)
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A connection to a local file does not go stale: no ping before each use (one
            // worker round trip fewer per transaction; removal of the file is checked apart).
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|connection, _| Box::pin(sqlite_settings(connection)))
            .connect_with(options)
            .await
            .map_err(|e| damaged(path, e))?;
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(20)")
            .fetch_all(&pool)
            .await
            .map_err(|e| damaged(path, e))?;
        if problems != ["ok"] {
            pool.close().await;
            return Err(StoreError::IntegrityCheck {
                path: path.to_path_buf(),
                problems: problems.join("; "),
            });
        }
        migrator.run(&pool).await?;
        let file = DatabaseFile::opened(path)?;
        Ok(Self::from_parts(
            pool,
            Backend::Sqlite,
            std::sync::Arc::new(DatabaseHealth {
                file: Some(file),
                stopped: Default::default(),
                failures: FailureLog::default(),
                integrity: "ok".into(),
            }),
        ))
    }

    /// Opens the PostgreSQL database at `url` (`postgres://` or `postgresql://`; TLS as the URL's
    /// `sslmode` says), refuses a schema this binary does not know ([`StoreError::SchemaTooNew`],
    /// [`StoreError::MigrationChanged`]) and applies migrations (sqlx holds an advisory lock while
    /// it migrates, so replicas starting together migrate once).
    ///
    /// Write transactions serialise across every process on the database with one advisory
    /// lock (see [`Metadata::begin_write`]); every pooled connection gets the time limits of
    /// [`crate::POSTGRES_TIMEOUTS`], so a stuck or abandoned transaction cannot hold that lock for
    /// long (a limit reached is [`StoreError::busy`]). The database-file and write-ahead-log checks of the
    /// embedded engine do not apply; readiness rests on `SELECT 1` and failed commits.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let migrator = migrator(Backend::Postgres);
        let timeouts = postgres_timeouts_sql(url)?;
        // Migrations run on this first connection, without the time limits: a migration may
        // rewrite a large table, and replicas starting together wait for sqlx's migration lock.
        let mut first: AnyConnection = sqlx::ConnectOptions::connect(&options).await?;
        crate::schema::check_applied(&mut first, Backend::Postgres, &migrator).await?;
        migrator.run(&mut first).await?;
        sqlx::Connection::close(first).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                let timeouts = timeouts.clone();
                Box::pin(async move {
                    if !timeouts.is_empty() {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(timeouts))
                            .execute(&mut *connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self::from_parts(
            pool,
            Backend::Postgres,
            std::sync::Arc::new(DatabaseHealth {
                file: None,
                stopped: Default::default(),
                failures: FailureLog::default(),
                integrity: "ok".into(),
            }),
        ))
    }

    /// A `Metadata` over an open pool, for the other ways of opening a database (a backup's
    /// read-only snapshot, `backup.rs`).
    pub(crate) fn from_parts(
        pool: AnyPool,
        backend: Backend,
        health: std::sync::Arc<DatabaseHealth>,
    ) -> Self {
        Self {
            pool,
            backend,
            writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            pending_events: Default::default(),
            health,
        }
    }

    /// The engine holding the metadata.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What `PRAGMA quick_check` answered when the database was opened (a database that failed
    /// it is never opened).
    pub fn integrity_at_open(&self) -> &str {
        &self.health.integrity
    }

    /// Whether writes can be made and kept: the database file at the path is the one opened and
    /// writes were not stopped. Every write transaction checks this (and that the write-ahead log
    /// exists) once it has begun and before it commits.
    pub fn writable(&self) -> Result<(), WriteRefusal> {
        self.health.check(WriteChecks::All, false)
    }

    /// Refuses every write transaction (except the audit log's integration) with `reason` until
    /// [`Metadata::resume_writes`].
    pub fn stop_writes(&self, reason: String) {
        *self
            .health
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// Lifts [`Metadata::stop_writes`].
    pub fn resume_writes(&self) {
        *self
            .health
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Failed commits, for readiness.
    pub fn write_failures(&self) -> &FailureLog {
        &self.health.failures
    }

    /// Checks the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The connection pool, for the other modules of this crate.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction that holds the database's single writer lock from its first
    /// statement, so a transaction that reads before it writes cannot act on a stale read when
    /// another writer commits in between. Writers of this process queue for the slot first.
    ///
    /// - SQLite: `BEGIN IMMEDIATE` takes SQLite's write lock at once.
    /// - PostgreSQL: the transaction's first statement is `pg_advisory_xact_lock` on one fixed key
    ///   ([`WRITER_LOCK_KEY`]), held until commit or rollback. Every write transaction of every
    ///   process and replica on the database takes it, so writes serialise exactly as they do on
    ///   SQLite: the audit log's append (gap-free indexes), keyring verdicts and promotions keep
    ///   their invariants unchanged. Statements after the lock run under READ COMMITTED and so see
    ///   every transaction committed before the lock was granted.
    pub(crate) async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        let slot = self.writer.clone().lock_owned().await;
        self.begin_write_in(slot).await
    }

    /// The write checks (database file, write-ahead log, stop switch) for a caller about to
    /// read on a pooled connection ahead of a write: with the write-ahead log removed under a
    /// running server such a read would break the connection and leave the pool waiting for a
    /// new one that cannot open, where the write's own transaction refuses at once. The pool
    /// keeps a connection open for the store's lifetime, so the log exists whenever it is intact.
    pub(crate) fn check_before_write(&self) -> Result<(), sqlx::Error> {
        self.health
            .check(WriteChecks::All, true)
            .map_err(WriteRefusal::into_sqlx)
    }

    /// The writer slot, for callers that batch work before opening the transaction.
    pub(crate) async fn writer_slot(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }

    /// Opens a write transaction in a slot already held.
    pub(crate) async fn begin_write_in(
        &self,
        slot: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<WriteTransaction, sqlx::Error> {
        self.begin_checked(slot, WriteChecks::All).await
    }

    /// A write transaction for the audit log's integration, which proceeds while writes are
    /// stopped (the database file is still checked).
    pub(crate) async fn begin_integration_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        let slot = self.writer.clone().lock_owned().await;
        self.begin_checked(slot, WriteChecks::FileOnly).await
    }

    async fn begin_checked(
        &self,
        slot: tokio::sync::OwnedMutexGuard<()>,
        checks: WriteChecks,
    ) -> Result<WriteTransaction, sqlx::Error> {
        // Before a connection is taken (a new one could not even open a removed file), and
        // again inside the transaction, where the write-ahead log must exist too.
        self.health
            .check(checks, false)
            .map_err(WriteRefusal::into_sqlx)?;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                    .bind(WRITER_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        // Dropping `tx` on a refusal rolls it back.
        self.health
            .check(checks, true)
            .map_err(WriteRefusal::into_sqlx)?;
        Ok(WriteTransaction {
            tx,
            _slot: slot,
            health: self.health.clone(),
            checks,
        })
    }

    /// Closes the pool, waiting for connections to finish (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Records a verified blob and links it into `repo`, with its audit records, in one
    /// transaction.
    pub async fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        self.commit_blob_checked(repo, digest, size, records, || async { Ok(true) })
            .await
    }

    /// [`Metadata::commit_blob`] for a caller that wrote (or mounts) the blob's bytes: it refuses
    /// with [`StoreError::BlobCollected`], before anything is written, when `bytes_present` says
    /// the file is gone (collected between the caller's write and this commit) or garbage
    /// collection is deleting this digest's file (a tombstone stands) or finished deleting it
    /// since `bytes_present` looked. `bytes_present` is asked before the write transaction
    /// begins, never while it holds the writer lock (`gc/bytes_check.rs`). Either way the client
    /// uploads the blob again; nothing was acknowledged. The commit also refreshes the blob's
    /// `linked_at`, from which gc's grace period counts.
    pub async fn commit_blob_checked<F, Fut>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        records: &[AuditRecord],
        bytes_present: F,
    ) -> Result<(), StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        let now = now_millis();
        let mut tx = self.begin_bytes_commit(digest, bytes_present).await?;
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, linked_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (digest) DO UPDATE SET linked_at = excluded.linked_at",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        ensure_repository(&mut tx, repo, now).await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a blob is known at all (in any repository), with its size.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .next();
        Ok(size.map(|s| s as u64))
    }

    /// The size of a blob if `repo` may serve it.
    pub async fn blob_in_repository(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository = $1 AND rb.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next();
        Ok(size.map(|s| s as u64))
    }

    /// Removes a blob's link from a repository, recording `records` if it was linked. Returns
    /// whether it was linked.
    pub async fn unlink_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts an upload session owned by `principal`.
    pub async fn create_upload(
        &self,
        id: Uuid,
        repo: &RepoName,
        principal: &str,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO uploads (id, repository, principal, size, chunks, created_at, updated_at)
             VALUES ($1, $2, $3, 0, 0, $4, $5)",
        )
        .bind(id.to_string())
        .bind(repo.as_str())
        .bind(principal)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An upload session by id.
    pub async fn upload(&self, id: Uuid) -> Result<Option<UploadSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, repository, principal, size, chunks, chunk_attempts, created_at, updated_at FROM uploads
             WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next();
        row.map(upload_from_row).transpose()
    }

    /// Records a staged chunk, written by `attempt`, if the session is still at `expected_size`
    /// (one compare-and-set against a concurrent writer, which records the size and the attempt
    /// together). Returns whether the record was made; if not, the caller deletes its chunk.
    pub async fn record_chunk(
        &self,
        id: Uuid,
        expected_size: u64,
        new_size: u64,
        new_chunks: u32,
        attempt: &str,
    ) -> Result<bool, StoreError> {
        if attempt.contains(',') {
            return Err(StoreError::Corrupt(format!(
                "chunk attempt {attempt:?} contains a comma"
            )));
        }
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, chunks = $2, updated_at = $3,
                    chunk_attempts = chunk_attempts || $4
             WHERE id = $5 AND size = $6",
        )
        .bind(new_size as i64)
        .bind(new_chunks as i64)
        .bind(now_millis())
        .bind(format!("{attempt},"))
        .bind(id.to_string())
        .bind(expected_size as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends an upload session.
    pub async fn delete_upload(&self, id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes upload session `id` if it is still idle since before `cutoff_millis` (no chunk
    /// recorded since the sweep listed it). Returns whether it was deleted.
    pub async fn delete_idle_upload(
        &self,
        id: Uuid,
        cutoff_millis: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM uploads WHERE id = $1 AND updated_at < $2")
            .bind(id.to_string())
            .bind(cutoff_millis)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Upload sessions idle since before `cutoff_millis`, for the expiry sweep.
    pub async fn idle_uploads(&self, cutoff_millis: i64) -> Result<Vec<UploadSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, repository, principal, size, chunks, chunk_attempts, created_at, updated_at FROM uploads
             WHERE updated_at < $1 LIMIT 1000",
        )
        .bind(cutoff_millis)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(upload_from_row).collect()
    }

    /// Stores a manifest in `repo` (and points `tag` at it), after checking inside the same
    /// transaction that every referenced blob and manifest is in the repository. `decide` sees the
    /// tag's current digest (if a tag is pushed), applies the stage rule and returns the audit
    /// records to append with the change; an error from it aborts the write.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        upload: ManifestUpload<'_>,
        tag: Option<&Tag>,
        pushed_by: &str,
        decide: impl FnOnce(Option<&Digest>) -> Result<Vec<AuditRecord>, airlock_core::Error>,
    ) -> Result<Option<TagMove>, ManifestWriteError> {
        let mut tx = self.begin_write().await?;
        let tag_move = insert_manifest(&mut tx, repo, upload, tag, pushed_by, decide).await?;
        tx.commit().await?;
        Ok(tag_move)
    }

    /// Loads many manifests, each tagged, into repositories in one transaction, with the same
    /// checks as [`Metadata::put_manifest`] but no stage rule and no audit records: for filling a
    /// stopped installation's store with test or benchmark data fast (`airlock-bench scale`),
    /// never for a client's push.
    #[cfg(feature = "test-support")]
    pub async fn load_manifests(
        &self,
        batch: &[(RepoName, ManifestUpload<'_>, Tag)],
        pushed_by: &str,
    ) -> Result<(), ManifestWriteError> {
        let mut tx = self.begin_write().await?;
        for (repo, upload, tag) in batch {
            let upload = ManifestUpload {
                digest: upload.digest,
                manifest: upload.manifest,
                content: upload.content,
            };
            insert_manifest(&mut tx, repo, upload, Some(tag), pushed_by, |_| {
                Ok(Vec::new())
            })
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The digest a tag points to in `repo`.
    pub async fn resolve_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<Digest>, StoreError> {
        let digest: Option<String> =
            sqlx::query_scalar("SELECT digest FROM tags WHERE repository = $1 AND name = $2")
                .bind(repo.as_str())
                .bind(tag.as_str())
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .next();
        digest.map(parse_digest).transpose()
    }

    /// A manifest held by `repo`.
    pub async fn manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StoreError> {
        let row = sqlx::query(
            "WITH RECURSIVE up(d) AS (SELECT $2 COLLATE \"binary\" UNION SELECT r.digest FROM manifest_references r
                                      JOIN up ON r.child = up.d WHERE r.kind = 'manifest')
             SELECT m.media_type, m.content, rm.created_at, rm.pushed_by, q.anomaly_id, q.reason,
                    q.repository_path
             FROM repository_manifests rm
             JOIN manifests m ON m.digest = rm.digest
             LEFT JOIN (SELECT anomaly_id, reason, repository_path FROM artifact_quarantines
                        WHERE digest IN (SELECT d FROM up)
                          AND (repository_path IS NULL OR repository_path = $3)
                        ORDER BY anomaly_id DESC LIMIT 1) q ON 1 = 1
             WHERE rm.repository = $1 AND rm.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .bind(repo.path())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next();
        Ok(row.map(|row| {
            let anomaly_id: Option<i64> = row.get("anomaly_id");
            StoredManifest {
                digest: digest.clone(),
                media_type: row.get("media_type"),
                content: row.get("content"),
                arrived_at: row.get("created_at"),
                pushed_by: row.get("pushed_by"),
                quarantine: anomaly_id.map(|anomaly_id| crate::anomalies::QuarantineRow {
                    anomaly_id,
                    reason: row.get("reason"),
                    repository_path: row.get("repository_path"),
                }),
            }
        }))
    }

    /// Removes a manifest and every tag pointing to it from `repo`, recording `records` if it was
    /// there. Returns whether it was there.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM tags WHERE repository = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        let done =
            sqlx::query("DELETE FROM repository_manifests WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a tag (the manifest stays), recording what `records_for` builds from the digest the
    /// tag pointed to. Returns whether the tag existed.
    pub async fn delete_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        records_for: impl FnOnce(&Digest) -> Vec<AuditRecord>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> = sqlx::query_scalar(
            "DELETE FROM tags WHERE repository = $1 AND name = $2 RETURNING digest",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next();
        let Some(current) = current else {
            return Ok(false);
        };
        let records = records_for(&parse_digest(current)?);
        append(&mut tx, &records).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether anything was ever pushed to `repo`.
    pub async fn repository_exists(&self, repo: &RepoName) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .next();
        Ok(found.is_some())
    }

    /// Up to `limit` tags of `repo` in lexical order, after `last` if given.
    pub async fn tags(
        &self,
        repo: &RepoName,
        limit: u32,
        last: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type: one
    /// search of `repository_manifests_by_subject` (migration 0024), whatever the repository's
    /// size.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRow>, StoreError> {
        let rows = sqlx::query(REFERRERS)
            .bind(repo.as_str())
            .bind(subject.to_string())
            .bind(artifact_type)
            .bind(artifact_type)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(ReferrerRow {
                    digest: parse_digest(row.get("digest"))?,
                    media_type: row.get("media_type"),
                    size: row.get::<i64, _>("size") as u64,
                    artifact_type: row.get("artifact_type"),
                    annotations: parse_annotations(row.get("annotations"))?,
                })
            })
            .collect()
    }

    /// Up to `limit` manifests in `repo` whose subject is `subject` (optionally of one artifact
    /// type) that arrived after `after` (arrival time and digest; from the first when `None`),
    /// oldest first, each with its arrival time (ms) for the next page's cursor.
    pub async fn referrers_page(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&crate::TimeCursor>,
        limit: u32,
    ) -> Result<Vec<(i64, ReferrerRow)>, StoreError> {
        let (at, digest) = after.map_or((i64::MIN, ""), |c| (c.at, c.key.as_str()));
        let rows = sqlx::query(REFERRERS_PAGE)
            .bind(repo.as_str())
            .bind(subject.to_string())
            .bind(at)
            .bind(digest)
            .bind(artifact_type)
            .bind(artifact_type)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    row.get("created_at"),
                    ReferrerRow {
                        digest: parse_digest(row.get("digest"))?,
                        media_type: row.get("media_type"),
                        size: row.get::<i64, _>("size") as u64,
                        artifact_type: row.get("artifact_type"),
                        annotations: parse_annotations(row.get("annotations"))?,
                    },
                ))
            })
            .collect()
    }

    /// Up to `limit` repository names in lexical order, after `last` if given.
    pub async fn catalog(&self, limit: u32, last: Option<&str>) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
        )
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Each of `chunks` chunks' attempt from the recorded list (`attempt,` per chunk recorded since
/// attempts were kept; the chunks before those have the fixed name, an empty attempt).
fn chunk_attempts(chunks: i64, recorded: &str) -> Vec<String> {
    let listed: Vec<String> = recorded.split_terminator(',').map(String::from).collect();
    let fixed = usize::try_from(chunks)
        .unwrap_or(0)
        .saturating_sub(listed.len());
    std::iter::repeat_n(String::new(), fixed)
        .chain(listed)
        .collect()
}

fn upload_from_row(row: sqlx::any::AnyRow) -> Result<UploadSession, StoreError> {
    let id: String = row.get("id");
    Ok(UploadSession {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("upload id {id:?}")))?,
        repository: row.get("repository"),
        principal: row.get("principal"),
        size: row.get::<i64, _>("size") as u64,
        chunks: row.get::<i64, _>("chunks") as u32,
        chunk_attempts: chunk_attempts(
            row.get::<i64, _>("chunks"),
            &row.get::<String, _>("chunk_attempts"),
        ),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// The digests among `digests` that `repo` holds, each with its stored size (`None` when the
/// size is unknown), read by `select` (a statement up to `WHERE ... repository = `, selecting
/// the digest and the size; `digest_column` names the digest it filters on) in statements of at
/// most 1,000 digests.
async fn held_with_sizes<'a>(
    tx: &mut sqlx::AnyConnection,
    select: &str,
    digest_column: &str,
    repo: &RepoName,
    digests: impl Iterator<Item = &'a Digest>,
) -> Result<HashMap<String, Option<i64>>, StoreError> {
    let digests: Vec<String> = digests.map(Digest::to_string).collect();
    let mut held = HashMap::with_capacity(digests.len());
    for chunk in digests.chunks(1000) {
        let mut query = SqlBuilder::new(select);
        query
            .push_bind(repo.as_str())
            .push(" AND ")
            .push(digest_column)
            .push(" IN (")
            .push_list(chunk.iter().cloned())
            .push(")");
        for row in query.build(Backend::of(tx))?.fetch_all(&mut *tx).await? {
            held.insert(row.get::<String, _>(0), row.get::<Option<i64>, _>(1));
        }
    }
    Ok(held)
}

/// The body of a manifest write inside `tx` (see [`Metadata::put_manifest`]): checks that every
/// referenced blob and manifest is in `repo` and every declared size matches, asks `decide`,
/// and writes the manifest, its references, the repository row, the contributions, the tag and
/// the audit records `decide` returned.
/// Whether a tag may be cosign's signature or attestation tag (`sha256-<hex>.sig|.att`), whose
/// manifest the evidence service reads: a superset of what it accepts (it parses the tag).
fn may_name_evidence(tag: &str) -> bool {
    tag.starts_with("sha256-") && (tag.ends_with(".sig") || tag.ends_with(".att"))
}

async fn insert_manifest(
    tx: &mut sqlx::AnyConnection,
    repo: &RepoName,
    upload: ManifestUpload<'_>,
    tag: Option<&Tag>,
    pushed_by: &str,
    decide: impl FnOnce(Option<&Digest>) -> Result<Vec<AuditRecord>, airlock_core::Error>,
) -> Result<Option<TagMove>, ManifestWriteError> {
    let ManifestUpload {
        digest,
        manifest,
        content,
    } = upload;
    let now = now_millis();
    // What the repository holds of what the manifest names, with sizes: one statement per
    // kind (and per 1,000 digests), not one per reference.
    use airlock_core::DescriptorField as F;
    let blob_digests = manifest.blobs.iter().chain(
        manifest
            .declared_sizes
            .iter()
            .filter(|d| matches!(d.field, F::Config | F::Layer(_)))
            .map(|d| &d.digest),
    );
    let blobs = held_with_sizes(
        &mut *tx,
        "SELECT rb.digest, b.size FROM repository_blobs rb LEFT JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository = ",
        "rb.digest",
        repo,
        blob_digests,
    )
    .await?;
    let manifest_digests = manifest.manifests.iter().chain(
        manifest
            .declared_sizes
            .iter()
            .filter(|d| matches!(d.field, F::Manifest(_) | F::Subject))
            .map(|d| &d.digest),
    );
    let manifests = held_with_sizes(
        &mut *tx,
        "SELECT rm.digest, m.size FROM repository_manifests rm
         LEFT JOIN manifests m ON m.digest = rm.digest WHERE rm.repository = ",
        "rm.digest",
        repo,
        manifest_digests,
    )
    .await?;
    let missing: Vec<Digest> = manifest
        .blobs
        .iter()
        .filter(|blob| !blobs.contains_key(&blob.to_string()))
        .chain(
            manifest
                .manifests
                .iter()
                .filter(|child| !manifests.contains_key(&child.to_string())),
        )
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ManifestWriteError::MissingReferences(missing));
    }
    for declared in &manifest.declared_sizes {
        // A subject the repository does not hold (yet) has no size to check.
        let held = match declared.field {
            F::Config | F::Layer(_) => &blobs,
            F::Manifest(_) | F::Subject => &manifests,
        };
        if let Some(Some(stored)) = held.get(&declared.digest.to_string())
            && *stored as u64 != declared.size
        {
            return Err(ManifestWriteError::SizeMismatch {
                field: declared.field,
                digest: declared.digest.clone(),
                declared: declared.size,
                stored: *stored as u64,
            });
        }
    }
    let current = match tag {
        None => None,
        Some(tag) => {
            let current: Option<String> =
                sqlx::query_scalar("SELECT digest FROM tags WHERE repository = $1 AND name = $2")
                    .bind(repo.as_str())
                    .bind(tag.as_str())
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .next();
            current.map(parse_digest).transpose()?
        }
    };
    let records = decide(current.as_ref()).map_err(ManifestWriteError::Rule)?;
    let tag_move = tag.map(|_| match current {
        None => TagMove::Created,
        Some(from) if &from == digest => TagMove::Unchanged,
        Some(from) => TagMove::Moved { from },
    });
    insert_manifest_row(&mut *tx, digest, manifest, content, now).await?;
    let references: Vec<(&Digest, &str)> = manifest
        .blobs
        .iter()
        .map(|d| (d, "blob"))
        .chain(manifest.manifests.iter().map(|d| (d, "manifest")))
        .collect();
    // Three values per row: 300 rows stay far below both engines' bound-value limits.
    for chunk in references.chunks(300) {
        let mut insert =
            SqlBuilder::new("INSERT INTO manifest_references (digest, child, kind) VALUES ");
        for (row, (child, kind)) in chunk.iter().enumerate() {
            insert
                .push(if row == 0 { "(" } else { ", (" })
                .push_bind(digest.to_string())
                .push(", ")
                .push_bind(child.to_string())
                .push(", ")
                .push_bind(kind.to_string())
                .push(")");
        }
        insert.push(" ON CONFLICT DO NOTHING");
        insert.build(Backend::of(tx))?.execute(&mut *tx).await?;
    }
    ensure_repository(&mut *tx, repo, now).await?;
    sqlx::query(
        "INSERT INTO repository_manifests
         (repository, digest, subject, created_at, pushed_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(repo.as_str())
    .bind(digest.to_string())
    .bind(manifest.subject.as_ref().map(Digest::to_string))
    .bind(now)
    .bind(pushed_by)
    .execute(&mut *tx)
    .await?;
    crate::separation::record_contributions(&mut *tx, repo, digest, manifest, tag, pushed_by, now)
        .await?;
    if manifest.subject.is_some() || tag.is_some_and(|t| may_name_evidence(t.as_str())) {
        // Ingested after this transaction commits; the row says so until the ingestion's
        // transaction removes it, so a crash in between is finished at the next start.
        sqlx::query(
            "INSERT INTO evidence_pending (repository, digest, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(tag) = tag {
        sqlx::query(
            "INSERT INTO tags (repository, name, digest, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (repository, name) DO UPDATE SET digest = excluded.digest,
             updated_at = excluded.updated_at",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    append(&mut *tx, &records).await?;
    Ok(tag_move)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(blobs: Vec<Digest>) -> ParsedManifest {
        ParsedManifest {
            kind: airlock_core::ManifestKind::Image,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: None,
            blobs,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
            layers: Vec::new(),
            declared_sizes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn refused_tag_move_writes_nothing() {
        for meta in crate::testing::engines().await {
            let repo: RepoName = "prod/team/app".parse().unwrap();
            let tag: Tag = "1.0".parse().unwrap();
            let blob = Digest::sha256_of(b"layer");
            meta.commit_blob(&repo, &blob, 5, &[]).await.unwrap();
            let first = Digest::sha256_of(b"first");
            let moved = meta
                .put_manifest(
                    &repo,
                    ManifestUpload {
                        digest: &first,
                        manifest: &manifest(vec![blob.clone()]),
                        content: b"first",
                    },
                    Some(&tag),
                    "tester",
                    |_| Ok(vec![]),
                )
                .await
                .unwrap();
            assert_eq!(moved, Some(TagMove::Created));

            let second = Digest::sha256_of(b"second");
            let refused = meta
                .put_manifest(
                    &repo,
                    ManifestUpload {
                        digest: &second,
                        manifest: &manifest(vec![blob]),
                        content: b"second",
                    },
                    Some(&tag),
                    "tester",
                    |current| {
                        assert_eq!(current, Some(&first));
                        Err(airlock_core::Error::InvalidTag(
                            "immutable in this test".into(),
                        ))
                    },
                )
                .await;
            assert!(matches!(refused, Err(ManifestWriteError::Rule(_))));
            // The tag did not move and the refused manifest is not in the repository.
            assert_eq!(meta.resolve_tag(&repo, &tag).await.unwrap(), Some(first));
            assert_eq!(meta.manifest(&repo, &second).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn missing_references_are_all_reported_and_nothing_is_written() {
        for meta in crate::testing::engines().await {
            let repo: RepoName = "dev/team/app".parse().unwrap();
            let missing = vec![Digest::sha256_of(b"a"), Digest::sha256_of(b"b")];
            let digest = Digest::sha256_of(b"m");
            let result = meta
                .put_manifest(
                    &repo,
                    ManifestUpload {
                        digest: &digest,
                        manifest: &manifest(missing.clone()),
                        content: b"m",
                    },
                    None,
                    "tester",
                    |_| Ok(vec![]),
                )
                .await;
            match result {
                Err(ManifestWriteError::MissingReferences(reported)) => {
                    assert_eq!(reported, missing)
                }
                other => panic!("expected missing references, got {other:?}"),
            }
            assert!(!meta.repository_exists(&repo).await.unwrap());
        }
    }

    /// Migration 11 from the schema before it, with a session in progress: the session survives
    /// with no owner (so nobody may use it), and new sessions record theirs.
    #[tokio::test]
    async fn upload_owner_migration_keeps_sessions_without_an_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let old = uuid::Uuid::new_v4();
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with(options)
                .await
                .unwrap();
            let mut before = migrator(crate::Backend::Sqlite);
            let previous: Vec<Migration> = before
                .migrations
                .iter()
                .filter(|m| m.version < 11)
                .cloned()
                .collect();
            before.migrations = Cow::Owned(previous);
            before.run(&pool).await.unwrap();
            sqlx::query(
                "INSERT INTO uploads (id, repository, size, chunks, created_at, updated_at)
                 VALUES ($1, 'dev/team/app', 5, 1, 1, 1)",
            )
            .bind(old.to_string())
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        let session = meta.upload(old).await.unwrap().unwrap();
        assert_eq!((session.principal, session.size), (None, 5));
        let new = uuid::Uuid::new_v4();
        let repo: RepoName = "dev/team/app".parse().unwrap();
        meta.create_upload(new, &repo, "alice").await.unwrap();
        let session = meta.upload(new).await.unwrap().unwrap();
        assert_eq!(session.principal.as_deref(), Some("alice"));
    }
}
