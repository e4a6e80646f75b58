//! Opening airlock's keys at start.
//!
//! - Embedded default (no `database_url`): the data directory's key files, exactly as before
//!   keys could be shared (`files.rs`); a configured `key_encryption_key_file` is ignored with a
//!   warning.
//! - PostgreSQL: the keys in the database, sealed under the key-encryption key
//!   (`key_encryption_key_file`, required; `kek.rs`). A purpose with no key stored yet (the first
//!   start, or the first start of this release on a database an older one used) gets the data
//!   directory's key file imported (recorded as `server_key.imported`), or a new key; the install
//!   runs under the writer lock and writes only purposes still empty, so replicas starting
//!   together agree on one set. The log key's name is the log's origin, so every replica signs
//!   checkpoints under the same origin whatever its `audit.origin` says. Later starts load the
//!   stored keys; key files in the data directory that differ from them are ignored with a
//!   warning naming them (identical copies are fine).
//! - Every stored row is authenticated by its MAC (`airlock_store`'s `server_keys`) and every
//!   current key's public half must be its private half's: a row changed or added without the
//!   KEK refuses the start, naming the row. Rows an earlier release stored without MACs get them
//!   once, at the first start after the upgrade, recorded as `server_key.authenticated`.
//! - The blob store records the log's identity (`log_identity.rs`): a database without a log
//!   key over a blob store that names one, or a log key another than the one it names, refuses
//!   the start instead of starting a new log.

use std::path::Path;
use std::sync::Arc;

use airlock_audit::LogKey;
use airlock_core::{Actor, AuditEvent, AuditRecord};
use airlock_store::{BlobStore, KeyPurpose, Metadata, ServerKeyRecord, ServerKeySet, now_millis};

use super::files::{KeyFiles, created_at};
use super::shared::SharedKeys;
use super::{AttestationKeys, ServerKeyError, TokenKeys, attestation, kek, log_identity, token};
use crate::config::Config;
use crate::identity::service::{TOKEN_ISSUER, TOKEN_SERVICE};

/// The log key's file in the data directory.
const LOG_KEY_FILE: &str = "log-key";

/// airlock's keys, opened.
pub struct OpenedKeys {
    /// The audit log key when it is shared through the database; `None` on the embedded default,
    /// where the audit log loads `<data_dir>/log-key` itself.
    pub log: Option<LogKey>,
    /// The token keys.
    pub tokens: Arc<TokenKeys>,
    /// The attestation keys.
    pub attestations: Arc<AttestationKeys>,
    /// The database's keys, when they are shared.
    pub shared: Option<Arc<SharedKeys>>,
    /// Imports to record once the audit log is open: those of a first start on a new log, which
    /// holds no entry before its first checkpoint.
    pub deferred_audit: Vec<AuditRecord>,
}

/// Opens the keys as the module docs say. `origin` names a log key made now.
pub async fn open(
    config: &Config,
    metadata: &Metadata,
    blobs: &BlobStore,
    origin: &str,
) -> Result<OpenedKeys, ServerKeyError> {
    let shared_database = matches!(
        config.database_location(),
        Ok(airlock_store::DatabaseLocation::Postgres(_))
    );
    let leeway = config.access.leeway_secs;
    if !shared_database {
        if let Some(path) = &config.key_encryption_key_file {
            tracing::warn!(file = %path.display(), "key_encryption_key_file is ignored: the embedded database keeps airlock's keys as files in the data directory (the key-encryption key is for PostgreSQL, where replicas share the keys)");
        }
        let dir = &config.data_dir;
        return Ok(OpenedKeys {
            log: None,
            tokens: Arc::new(TokenKeys::open(dir, TOKEN_ISSUER, TOKEN_SERVICE, leeway)?),
            attestations: Arc::new(AttestationKeys::open(dir)?),
            shared: None,
            deferred_audit: Vec::new(),
        });
    }
    let path = config
        .key_encryption_key_file
        .as_ref()
        .ok_or(kek::KekError::NotConfigured)?;
    let kek = kek::read(path)?;
    // Read before the keys: see `log_identity`.
    let marker = log_identity::read(blobs).await?;
    // A log without its first checkpoint may hold no entry (the audit log refuses to sign on
    // top of one): on a new log what happens now is recorded once it is open.
    let log_started = metadata.audit_table_counts(0).await?.checkpoints > 0;
    let mut deferred_audit = Vec::new();
    // Trust on upgrade happens once, at the first start of a release that has row MACs: the
    // release that also writes the log identity marker into the blob store, right after this.
    // With the marker present, rows without MACs were not left by an upgrade but cleared by
    // someone who can write the database (perhaps to slip a forged key in with them): nothing
    // is authenticated, and loading the keys below refuses them.
    let authenticated = if marker.is_some() {
        0
    } else {
        metadata
            .authenticate_server_keys(&kek, |count| {
                let record = AuditRecord {
                    time_millis: now_millis(),
                    actor: Actor::system(),
                    event: AuditEvent::ServerKeyAuthenticated {
                        count: count as u64,
                    },
                };
                if log_started {
                    vec![record]
                } else {
                    deferred_audit.push(record);
                    Vec::new()
                }
            })
            .await?
    };
    if authenticated > 0 {
        tracing::warn!(
            count = authenticated,
            "gave the {authenticated} keys an earlier release stored in the database their MACs: they are trusted as found (docs/operations.md, \"Keys shared by replicas\")"
        );
    }
    let mut set = load_checked(metadata, &kek).await?;
    let missing: Vec<KeyPurpose> = KeyPurpose::ALL
        .into_iter()
        .filter(|p| set.current(*p).is_none())
        .collect();
    if missing.contains(&KeyPurpose::Log) {
        log_identity::refuse_if_marked(marker.as_ref())?;
    }
    if !missing.is_empty() {
        let (records, audit) = candidates(&missing, &config.data_dir, metadata, origin).await?;
        let in_transaction: &[(KeyPurpose, AuditRecord)] = if log_started { &audit } else { &[] };
        let installed = metadata
            .install_server_keys(&kek, &records, in_transaction)
            .await?;
        for purpose in &installed {
            let imported = audit.iter().any(|(p, _)| p == purpose);
            tracing::info!(key = %purpose, imported, "stored airlock's {purpose} key in the database, sealed under the key-encryption key");
        }
        if !log_started {
            deferred_audit.extend(
                audit
                    .into_iter()
                    .filter(|(p, _)| installed.contains(p))
                    .map(|(_, record)| record),
            );
        }
        set = load_checked(metadata, &kek).await?;
    }
    warn_about_other_files(&config.data_dir, &set);
    let log = log_key(&set)?;
    log_identity::settle(blobs, marker.as_ref(), &log).await?;
    if let Some(configured) = &config.audit.origin
        && configured != log.origin()
    {
        tracing::warn!(configured = %configured, origin = %log.origin(), "audit.origin is ignored: the log key shared through the database names the log's origin");
    }
    let shared = Arc::new(SharedKeys::new(metadata.clone(), kek, &set));
    Ok(OpenedKeys {
        log: Some(log),
        tokens: Arc::new(TokenKeys::shared(
            shared.clone(),
            &set,
            TOKEN_ISSUER,
            TOKEN_SERVICE,
            leeway,
        )?),
        attestations: Arc::new(AttestationKeys::shared(&set)?),
        shared: Some(shared),
        deferred_audit,
    })
}

/// The stored keys, each row authenticated and each current key's public half checked.
async fn load_checked(
    metadata: &Metadata,
    kek: &airlock_store::KeyEncryptionKey,
) -> Result<ServerKeySet, ServerKeyError> {
    let set = metadata.server_keys(kek).await?;
    super::shared::check_public_halves(&set)?;
    Ok(set)
}

fn log_key(set: &ServerKeySet) -> Result<LogKey, ServerKeyError> {
    let purpose = KeyPurpose::Log;
    let current = set
        .current(purpose)
        .ok_or(ServerKeyError::NotStored { purpose })?;
    let text = current
        .private_key
        .as_deref()
        .ok_or(ServerKeyError::NotStored { purpose })?;
    LogKey::from_private_text(text)
        .map_err(|e| super::shared::stored_corrupt(purpose, &current.key_id, e.to_string()))
}

/// The id of a log key: the key hash of its verifier key (`<name>+<hash>+<key>`).
fn log_key_id(key: &LogKey) -> String {
    key.verifier_key()
        .split('+')
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

type Candidates = (Vec<ServerKeyRecord>, Vec<(KeyPurpose, AuditRecord)>);

fn imported(purpose: KeyPurpose, key_id: &str, file: &str, now: i64) -> (KeyPurpose, AuditRecord) {
    (
        purpose,
        AuditRecord {
            time_millis: now,
            actor: Actor::system(),
            event: AuditEvent::ServerKeyImported {
                key: purpose.as_str().into(),
                key_id: key_id.into(),
                file: file.into(),
            },
        },
    )
}

/// The keys to install for `missing` purposes: the data directory's files where present, else
/// new keys.
async fn candidates(
    missing: &[KeyPurpose],
    data_dir: &Path,
    metadata: &Metadata,
    origin: &str,
) -> Result<Candidates, ServerKeyError> {
    let now = now_millis();
    let mut records = Vec::new();
    let mut audit = Vec::new();
    for purpose in missing {
        match purpose {
            KeyPurpose::Log => {
                let path = data_dir.join(LOG_KEY_FILE);
                let (key, from_file) = match std::fs::read_to_string(&path) {
                    Ok(text) => (
                        LogKey::from_private_text(&text).map_err(|e| ServerKeyError::Corrupt {
                            path: path.clone(),
                            message: e.to_string(),
                        })?,
                        true,
                    ),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        let counts = metadata.audit_table_counts(0).await?;
                        if counts.entries > 0 || counts.checkpoints > 0 {
                            // A replica starting at the same moment may have stored its log key
                            // and begun the log since this one read the keys: that key is the
                            // log's, loaded after the install.
                            if metadata
                                .current_server_public_key(KeyPurpose::Log, None)
                                .await?
                                .is_some()
                            {
                                continue;
                            }
                            return Err(ServerKeyError::LogKeyMissing {
                                data_dir: data_dir.to_path_buf(),
                            });
                        }
                        (
                            LogKey::generate(origin)
                                .map_err(|e| ServerKeyError::Key(e.to_string()))?,
                            false,
                        )
                    }
                    Err(source) => return Err(ServerKeyError::File { path, source }),
                };
                let key_id = log_key_id(&key);
                if from_file {
                    audit.push(imported(*purpose, &key_id, LOG_KEY_FILE, now));
                }
                records.push(ServerKeyRecord {
                    purpose: *purpose,
                    key_id,
                    public_key: key.verifier_key().to_string(),
                    private_key: Some(key.private_text().to_string()),
                    created_at: now,
                    retired_at: None,
                    accepted_until: None,
                });
            }
            KeyPurpose::Token | KeyPurpose::Attestation => {
                let (name, key_id_of, public_of, new_record): Rotatable = match purpose {
                    KeyPurpose::Token => (
                        "token-key",
                        token::key_id_of_pem,
                        token::public_pem_of,
                        token::new_record,
                    ),
                    _ => (
                        "attestation-key",
                        attestation::key_id_of_pem,
                        attestation::public_pem_of,
                        attestation::new_record,
                    ),
                };
                let files = KeyFiles::new(data_dir, name);
                match import_rotatable(*purpose, &files, key_id_of, public_of)? {
                    Some(found) => {
                        if let Some(current) = found.iter().find(|k| k.retired_at.is_none()) {
                            audit.push(imported(
                                *purpose,
                                &current.key_id,
                                &format!("{name}.pem"),
                                now,
                            ));
                        }
                        records.extend(found);
                    }
                    None => records.push(new_record(now)?),
                }
            }
        }
    }
    Ok((records, audit))
}

/// Reads something (a key id, a public half) from a private key's text.
type FromPrivate = fn(&str) -> Result<String, ServerKeyError>;

/// A rotatable key's file name, key id, public half and new-key functions.
type Rotatable = (
    &'static str,
    FromPrivate,
    FromPrivate,
    fn(i64) -> Result<ServerKeyRecord, ServerKeyError>,
);

/// The key file and its history in the data directory, as stored keys (current first), or
/// `None` if there is no key file.
fn import_rotatable(
    purpose: KeyPurpose,
    files: &KeyFiles,
    key_id_of: FromPrivate,
    public_of: FromPrivate,
) -> Result<Option<Vec<ServerKeyRecord>>, ServerKeyError> {
    if !files.key.exists() {
        return Ok(None);
    }
    files.recover(key_id_of)?;
    let pem = std::fs::read_to_string(&files.key).map_err(|source| ServerKeyError::File {
        path: files.key.clone(),
        source,
    })?;
    let key_id = key_id_of(&pem)?;
    let history = files.read_history()?;
    let mut records = vec![ServerKeyRecord {
        purpose,
        public_key: public_of(&pem)?,
        private_key: Some(pem),
        created_at: created_at(&history, files, &key_id),
        retired_at: None,
        accepted_until: None,
        key_id: key_id.clone(),
    }];
    records.extend(
        history
            .retired
            .iter()
            .filter(|r| r.key_id != key_id)
            .map(|r| ServerKeyRecord {
                purpose,
                key_id: r.key_id.clone(),
                public_key: r.public_key.clone(),
                private_key: None,
                created_at: r.created_at,
                retired_at: Some(r.retired_at),
                accepted_until: r.accepted_until,
            }),
    );
    Ok(Some(records))
}

/// Warns about key files in the data directory that are not the stored keys (they are not used).
fn warn_about_other_files(data_dir: &Path, set: &ServerKeySet) {
    let files: [(KeyPurpose, &str, FromPrivate); 3] = [
        (KeyPurpose::Log, LOG_KEY_FILE, |text| {
            LogKey::from_private_text(text)
                .map(|key| log_key_id(&key))
                .map_err(|e| ServerKeyError::Key(e.to_string()))
        }),
        (KeyPurpose::Token, "token-key.pem", token::key_id_of_pem),
        (
            KeyPurpose::Attestation,
            "attestation-key.pem",
            attestation::key_id_of_pem,
        ),
    ];
    for (purpose, name, key_id_of) in files {
        let path = data_dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let stored = set.current(purpose).map(|k| k.key_id.as_str());
        let same = key_id_of(&text).is_ok_and(|id| Some(id.as_str()) == stored);
        if !same {
            tracing::warn!(file = %path.display(), stored = stored.unwrap_or(""), "ignoring {name} in the data directory: it is not the {purpose} key stored in the database, which every replica uses (move the file away to silence this; see docs/operations.md, \"Keys shared by replicas\")");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two replicas start together on an empty database: the other one stores its log key and
    /// begins the log (a checkpoint) after this one read no keys. This one must not take the
    /// log for one whose key is missing: it makes no log key, and loads the other's.
    #[tokio::test]
    async fn a_log_begun_by_a_replica_starting_together_is_not_a_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = Metadata::open_sqlite(&dir.path().join("m.db"))
            .await
            .unwrap();
        let kek = airlock_store::KeyEncryptionKey::new([4; 32]);
        let other = LogKey::generate("airlock/other").unwrap();
        let record = ServerKeyRecord {
            purpose: KeyPurpose::Log,
            key_id: log_key_id(&other),
            public_key: other.verifier_key().to_string(),
            private_key: Some(other.private_text().to_string()),
            created_at: 1,
            retired_at: None,
            accepted_until: None,
        };
        metadata
            .install_server_keys(&kek, &[record], &[])
            .await
            .unwrap();
        crate::audit::AuditLog::open_with_key(metadata.clone(), other)
            .await
            .unwrap();
        assert!(metadata.audit_table_counts(0).await.unwrap().checkpoints > 0);

        let (records, audit) = candidates(&[KeyPurpose::Log], dir.path(), &metadata, "airlock/me")
            .await
            .unwrap();
        assert!(records.is_empty() && audit.is_empty(), "{records:?}");
    }
}
