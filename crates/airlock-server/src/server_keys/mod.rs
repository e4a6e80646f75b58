//! airlock's own keys and their rotation (`airlock keys rotate-server`).
//!
//! - The token signing key ([`TokenKeys`]): a rotation makes a new key sign every token from
//!   then on; tokens the old key signed (access and refresh tokens alike: both are JWTs signed
//!   by this key) stay valid until the overlap ends, at least the access-token lifetime and by
//!   default the refresh-token lifetime (plus the clock leeway), so no login ends. A shorter
//!   overlap ends the logins whose refresh tokens were issued before the rotation, and the answer
//!   says so.
//! - The promotion attestation key ([`AttestationKeys`]): new attestations are signed by the new
//!   key; every replaced key stays listed at `GET /api/v1/attestation-key` so older attestations
//!   keep verifying.
//! - The audit log key is never rotated in place: its public key is the log's identity, so a new
//!   key is a new log (docs/operations.md, "Starting a new audit log"). The request is refused.
//!
//! On the embedded default the keys are files in the data directory (`files.rs`); on PostgreSQL
//! they live in the database, sealed under the key-encryption key and shared by every replica
//! (`bootstrap.rs` opens them, `shared.rs` keeps replicas in step: a version polled every
//! [`POLL_INTERVAL`], and a reload when a token names a key this replica does not know). A
//! rotation takes effect at once for the replica that made it, within a poll for the others, and
//! is recorded as `server_key.rotated` with the old and the new key id (on PostgreSQL in the
//! transaction that stores the new key).

pub mod routes;

mod attestation;
mod bootstrap;
mod files;
pub mod kek;
mod log_identity;
mod shared;
mod token;

use std::path::PathBuf;
use std::sync::Arc;

use airlock_core::{Actor, AuditEvent, AuditRecord};
use airlock_store::{KeyPurpose, Metadata, StoreError, now_millis};

pub use attestation::AttestationKeys;
pub use bootstrap::{OpenedKeys, open};
pub use shared::{POLL_INTERVAL, SharedKeys};
pub use token::TokenKeys;

/// Why a server key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerKeyError {
    /// A key name that is not `token`, `attestation` or `log`.
    #[error("unknown server key {name:?}: rotate `token` or `attestation`")]
    UnknownKey {
        /// The name given (at most 32 characters of it).
        name: String,
    },
    /// An overlap was given for the attestation key, which keeps every replaced key listed.
    #[error(
        "the attestation key takes no overlap: every replaced attestation key stays listed at /api/v1/attestation-key, so older attestations keep verifying"
    )]
    OverlapForAttestation,
    /// A token-key overlap shorter than an access token lives.
    #[error(
        "an overlap of {overlap_secs} s is shorter than the access-token lifetime ({access_secs} s, access.token_lifetime_secs): tokens issued a moment ago would stop working early"
    )]
    OverlapTooShort {
        /// The overlap asked for.
        overlap_secs: u64,
        /// `access.token_lifetime_secs`.
        access_secs: u64,
    },
    /// A token-key overlap too long to represent.
    #[error("an overlap of {overlap_secs} s is too long")]
    OverlapTooLong {
        /// The overlap asked for.
        overlap_secs: u64,
    },
    /// The audit log key was asked to rotate.
    #[error(
        "the audit log key is never rotated in place: its public key is the log's identity (the origin every checkpoint and every verifier names), so a new key means a new log. Follow docs/operations.md, \"Starting a new audit log\": archive the data directory's log and log-key, then start a new log with a new origin"
    )]
    LogKey,
    /// A key file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key or history file holds something that is not what airlock wrote.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key could not be made, read or encoded.
    #[error("server key: {0}")]
    Key(String),
    /// The key-encryption key is missing or unusable.
    #[error(transparent)]
    Kek(#[from] kek::KekError),
    /// A key stored in the database does not parse as its purpose's key.
    #[error(
        "the {purpose} key {key_id} stored in the database is not a valid key ({message}); restore the database from a backup (docs/operations.md, Recovery)"
    )]
    StoredKey {
        /// What it is for.
        purpose: KeyPurpose,
        /// Its id.
        key_id: String,
        /// What is wrong.
        message: String,
    },
    /// No current key of a purpose is stored after the install.
    #[error(
        "no current {purpose} key is stored in the database; restore the database from a backup (docs/operations.md, Recovery)"
    )]
    NotStored {
        /// What it is for.
        purpose: KeyPurpose,
    },
    /// The database holds an audit log but no log key, and the data directory has none to import.
    #[error(
        "the database holds an audit log but no log key, and {} has no log-key file to import: the log's checkpoints can only be signed by the key that signed them. Put the log-key file this installation used into the data directory and start again (it is imported once, then shared through the database), or restore the database from a backup (docs/operations.md, Recovery)",
        data_dir.display()
    )]
    LogKeyMissing {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// The database has no log key, but the blob store's identity marker names a log.
    #[error(
        "the database holds no audit log key, but the blob store's {path} names the log {origin} (key {public_key}): the database was lost or replaced, or database_url names another database than the one this blob store belongs to. Starting would begin a new audit log over this one's data. Restore the database from its backup (docs/operations.md, Recovery) or point database_url at the right database; only to start a new audit log on purpose, delete {path} from the blob store first"
    )]
    LogIdentityWithoutKey {
        /// The marker's path in the blob store.
        path: &'static str,
        /// The marker's log origin (at most 200 characters).
        origin: String,
        /// The marker's log verifier key (at most 200 characters).
        public_key: String,
    },
    /// The database's log key is not the one the blob store's marker names.
    #[error(
        "the database's audit log key ({database}) is not the one the blob store's {path} names ({marker}): this database and this blob store belong to different installations (a wrong database_url, or a wrong blob_store bucket or prefix). Point both at the same installation's database and blob store"
    )]
    LogIdentityMismatch {
        /// The marker's path in the blob store.
        path: &'static str,
        /// The key the marker names (at most 200 characters).
        marker: String,
        /// The database's log verifier key.
        database: String,
    },
    /// The blob store's log identity marker is not what airlock writes.
    #[error(
        "the blob store's {path} is not a log identity airlock wrote ({message}): restore it from a backup of the blob store, or delete it to have it written again from the database's log key"
    )]
    LogIdentityMarker {
        /// The marker's path in the blob store.
        path: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The blocking task that makes the new key died.
    #[error("the key rotation task failed")]
    Task(#[source] tokio::task::JoinError),
    /// Storage failed (the audit record).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key as the listings show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedKey {
    /// Its id.
    pub key_id: String,
    /// Its public half (PEM).
    pub public_key: String,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When it was replaced (Unix ms), if it was.
    pub retired_at: Option<i64>,
    /// Until when what it signed is accepted (Unix ms), for a replaced token key.
    pub accepted_until: Option<i64>,
}

/// Which of airlock's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKey {
    /// The token signing key.
    Token,
    /// The promotion attestation key.
    Attestation,
    /// The audit log key (never rotated in place).
    Log,
}

impl std::str::FromStr for ServerKey {
    type Err = ServerKeyError;

    fn from_str(text: &str) -> Result<Self, ServerKeyError> {
        match text {
            "token" => Ok(Self::Token),
            "attestation" => Ok(Self::Attestation),
            "log" => Ok(Self::Log),
            _ => Err(ServerKeyError::UnknownKey {
                name: text.chars().take(32).collect(),
            }),
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// `token` or `attestation`.
    pub key: &'static str,
    /// The key that signed until now.
    pub old_key_id: String,
    /// The key that signs from now on.
    pub new_key_id: String,
    /// Until when what the old key signed is accepted (token key).
    pub old_accepted_until: Option<i64>,
    /// Refresh tokens issued before the rotation outlive the overlap: those logins end then.
    pub logins_end: bool,
}

/// Token lifetimes a token-key rotation's overlap is measured against.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Access tokens (`access.token_lifetime_secs`): the shortest overlap allowed.
    pub access_secs: u64,
    /// Refresh tokens (`access.refresh_lifetime_secs`).
    pub refresh_secs: u64,
    /// Clock leeway (`access.leeway_secs`).
    pub leeway_secs: u64,
}

/// The rotation service over airlock's keys.
pub struct ServerKeys {
    metadata: Metadata,
    tokens: Arc<TokenKeys>,
    attestations: Arc<AttestationKeys>,
    /// The database's keys, when replicas share them.
    shared: Option<Arc<SharedKeys>>,
    lifetimes: TokenLifetimes,
    /// One rotation at a time.
    lock: tokio::sync::Mutex<()>,
}

impl ServerKeys {
    /// The service over the key holders the identity and promotion services use (`keys`, from
    /// [`open`]).
    pub fn new(metadata: Metadata, keys: &OpenedKeys, lifetimes: TokenLifetimes) -> Self {
        Self {
            metadata,
            tokens: keys.tokens.clone(),
            attestations: keys.attestations.clone(),
            shared: keys.shared.clone(),
            lifetimes,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Keeps this replica's keys in step with the database's (shared keys only; returns at once
    /// otherwise): every [`POLL_INTERVAL`] it reads the stored version and reloads on a change.
    pub async fn follow_database(self: Arc<Self>) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match shared.version().await {
                Ok(version) if version != shared.seen_version() => {
                    if let Err(err) = self.reload(&shared).await {
                        tracing::error!(error = %err, "reloading airlock's keys from the database failed");
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "reading the stored keys' version failed")
                }
            }
        }
    }

    /// Loads the stored keys into the key holders.
    async fn reload(&self, shared: &SharedKeys) -> Result<(), ServerKeyError> {
        let set = shared.load().await?;
        self.tokens.apply(&set)?;
        self.attestations.apply(&set)?;
        shared.saw_version(set.version);
        Ok(())
    }

    /// A rotation of shared keys: the new key and the old one's retirement in one database
    /// transaction with its audit entry, then this replica reloads.
    async fn rotate_shared(
        &self,
        shared: &SharedKeys,
        key: &'static str,
        new: airlock_store::ServerKeyRecord,
        old_accepted_until: Option<i64>,
        actor: &Actor,
    ) -> Result<(String, String), ServerKeyError> {
        let new_key_id = new.key_id.clone();
        let old_key_id = shared
            .rotate(&new, old_accepted_until, |old| {
                vec![AuditRecord {
                    time_millis: new.created_at,
                    actor: actor.clone(),
                    event: AuditEvent::ServerKeyRotated {
                        key: key.into(),
                        old_key_id: old.into(),
                        new_key_id: new.key_id.clone(),
                        old_accepted_until_millis: old_accepted_until,
                    },
                }]
            })
            .await?;
        self.reload(shared).await?;
        Ok((old_key_id, new_key_id))
    }

    /// The token keys (current first).
    pub fn token_keys(&self) -> Result<Vec<ListedKey>, ServerKeyError> {
        self.tokens.listing()
    }

    /// The attestation keys (current first).
    pub fn attestation_keys(&self) -> Vec<ListedKey> {
        self.attestations.listing()
    }

    /// Replaces `key` with a new key and records it. `overlap_secs` (token key only): how long
    /// tokens signed by the old key stay valid.
    pub async fn rotate(
        &self,
        key: ServerKey,
        overlap_secs: Option<u64>,
        actor: &Actor,
    ) -> Result<Rotation, ServerKeyError> {
        let _guard = self.lock.lock().await;
        let now = now_millis();
        let rotation = match key {
            ServerKey::Log => return Err(ServerKeyError::LogKey),
            ServerKey::Attestation => {
                if overlap_secs.is_some() {
                    return Err(ServerKeyError::OverlapForAttestation);
                }
                let (old_key_id, new_key_id) = match &self.shared {
                    Some(shared) => {
                        let new = attestation::new_record(now)?;
                        self.rotate_shared(shared, "attestation", new, None, actor)
                            .await?
                    }
                    None => {
                        let attestations = self.attestations.clone();
                        tokio::task::spawn_blocking(move || attestations.rotate(now))
                            .await
                            .map_err(ServerKeyError::Task)??
                    }
                };
                Rotation {
                    key: "attestation",
                    old_key_id,
                    new_key_id,
                    old_accepted_until: None,
                    logins_end: false,
                }
            }
            ServerKey::Token => {
                let lifetimes = self.lifetimes;
                let overlap = overlap_secs
                    .unwrap_or(lifetimes.refresh_secs.saturating_add(lifetimes.leeway_secs));
                if overlap < lifetimes.access_secs {
                    return Err(ServerKeyError::OverlapTooShort {
                        overlap_secs: overlap,
                        access_secs: lifetimes.access_secs,
                    });
                }
                let overlap_ms = i64::try_from(overlap)
                    .ok()
                    .and_then(|secs| secs.checked_mul(1000))
                    .and_then(|ms| now.checked_add(ms))
                    .ok_or(ServerKeyError::OverlapTooLong {
                        overlap_secs: overlap,
                    })?;
                let (old_key_id, new_key_id) = match &self.shared {
                    Some(shared) => {
                        let new = token::new_record(now)?;
                        self.rotate_shared(shared, "token", new, Some(overlap_ms), actor)
                            .await?
                    }
                    None => {
                        let tokens = self.tokens.clone();
                        tokio::task::spawn_blocking(move || tokens.rotate(now, overlap_ms))
                            .await
                            .map_err(ServerKeyError::Task)??
                    }
                };
                Rotation {
                    key: "token",
                    old_key_id,
                    new_key_id,
                    old_accepted_until: Some(overlap_ms),
                    logins_end: overlap < lifetimes.refresh_secs,
                }
            }
        };
        tracing::warn!(key = rotation.key, old = %rotation.old_key_id, new = %rotation.new_key_id, "server key rotated");
        if self.shared.is_some() {
            // Recorded in the rotation's own transaction.
            return Ok(rotation);
        }
        self.metadata
            .record_events(&[AuditRecord {
                time_millis: now,
                actor: actor.clone(),
                event: AuditEvent::ServerKeyRotated {
                    key: rotation.key.into(),
                    old_key_id: rotation.old_key_id.clone(),
                    new_key_id: rotation.new_key_id.clone(),
                    old_accepted_until_millis: rotation.old_accepted_until,
                },
            }])
            .await?;
        Ok(rotation)
    }
}
