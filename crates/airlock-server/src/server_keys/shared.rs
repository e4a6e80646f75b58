//! airlock's keys shared by replicas through the database (PostgreSQL): loading them, noticing
//! a change another replica made, and the helpers that turn stored rows into the key holders'
//! state. What is stored and how it is sealed is `airlock_store`'s `server_keys`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use airlock_audit::LogKey;
use airlock_core::AuditRecord;
use airlock_store::{KeyEncryptionKey, KeyPurpose, Metadata, ServerKeyRecord, ServerKeySet};

use super::files::{CurrentKey, KeyHistory, RetiredKey};
use super::{ServerKeyError, attestation, token};

/// How often a replica looks at the stored keys' version.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The least time between two reloads a token with an unknown `kid` triggers.
const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The database's keys and the KEK that opens them.
pub struct SharedKeys {
    metadata: Metadata,
    kek: KeyEncryptionKey,
    /// The version this replica's key holders reflect (set by `ServerKeys`' reloads).
    seen_version: AtomicI64,
    /// When a token with an unknown `kid` last made this replica reload.
    last_forced_reload: Mutex<Option<Instant>>,
}

impl SharedKeys {
    /// The keys of `metadata`'s database, opened with `kek`; `set` is what was loaded at start.
    pub fn new(metadata: Metadata, kek: KeyEncryptionKey, set: &ServerKeySet) -> Self {
        Self {
            metadata,
            kek,
            seen_version: AtomicI64::new(set.version),
            last_forced_reload: Mutex::new(None),
        }
    }

    /// Every stored key, each row authenticated by its MAC and each current key's public half
    /// checked against its private half ([`check_public_halves`]).
    pub async fn load(&self) -> Result<ServerKeySet, ServerKeyError> {
        let set = self.metadata.server_keys(&self.kek).await?;
        check_public_halves(&set)?;
        Ok(set)
    }

    /// The stored keys' version now.
    pub async fn version(&self) -> Result<i64, ServerKeyError> {
        Ok(self.metadata.server_keys_version().await?)
    }

    /// The version the key holders reflect.
    pub fn seen_version(&self) -> i64 {
        self.seen_version.load(Ordering::Acquire)
    }

    /// Records that the key holders reflect `version`.
    pub fn saw_version(&self, version: i64) {
        self.seen_version.store(version, Ordering::Release);
    }

    /// Whether a reload for a token naming an unknown key may run now (at most one a second, so
    /// tokens with made-up `kid`s cannot hammer the database).
    pub fn may_reload_now(&self) -> bool {
        let mut last = self
            .last_forced_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < FORCED_RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Replaces the current key of `new.purpose` by `new` in the database (see
    /// `Metadata::rotate_server_key`). Returns the old key's id.
    pub async fn rotate(
        &self,
        new: &ServerKeyRecord,
        accepted_until: Option<i64>,
        audit: impl FnOnce(&str) -> Vec<AuditRecord>,
    ) -> Result<String, ServerKeyError> {
        Ok(self
            .metadata
            .rotate_server_key(&self.kek, new, accepted_until, audit)
            .await?)
    }
}

/// The stored keys of `purpose` as a key history (what the file-based holders keep).
pub(super) fn history_of(set: &ServerKeySet, purpose: KeyPurpose) -> KeyHistory {
    KeyHistory {
        current: set.current(purpose).map(|k| CurrentKey {
            key_id: k.key_id.clone(),
            created_at: k.created_at,
        }),
        retired: set
            .retired(purpose)
            .map(|k| RetiredKey {
                key_id: k.key_id.clone(),
                public_key: k.public_key.clone(),
                created_at: k.created_at,
                retired_at: k.retired_at.unwrap_or(k.created_at),
                accepted_until: k.accepted_until,
            })
            .collect(),
    }
}

/// A stored key that does not parse as what its purpose says.
pub(super) fn stored_corrupt(purpose: KeyPurpose, key_id: &str, message: String) -> ServerKeyError {
    ServerKeyError::StoredKey {
        purpose,
        key_id: key_id.chars().take(64).collect(),
        message,
    }
}

/// Checks that each key with a private half stores that private half's public half: a stored
/// public half that is another key's would make verifiers trust what this key never signed.
pub(super) fn check_public_halves(set: &ServerKeySet) -> Result<(), ServerKeyError> {
    for key in &set.keys {
        let Some(private) = key.private_key.as_deref() else {
            continue;
        };
        let public = match key.purpose {
            KeyPurpose::Log => LogKey::from_private_text(private)
                .map(|log| log.verifier_key().to_string())
                .map_err(|e| e.to_string()),
            KeyPurpose::Token => token::public_pem_of(private).map_err(|e| e.to_string()),
            KeyPurpose::Attestation => {
                attestation::public_pem_of(private).map_err(|e| e.to_string())
            }
        };
        match public {
            Ok(public) if public == key.public_key => {}
            Ok(_) => {
                return Err(stored_corrupt(
                    key.purpose,
                    &key.key_id,
                    "its stored public half is not the public half of its private key".into(),
                ));
            }
            Err(message) => return Err(stored_corrupt(key.purpose, &key.key_id, message)),
        }
    }
    Ok(())
}
