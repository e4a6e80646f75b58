//! The promotion attestation key and the keys it replaced: new promotion attestations are signed
//! by the current key; every replaced key stays listed (its public half, when it was made and
//! retired), without end, so an attestation signed before a rotation keeps verifying with the key
//! that signed it.
//!
//! The keys live in the data directory (`attestation-key.pem` and `attestation-keys.json`) on the
//! embedded default, and in the database, shared by every replica, on PostgreSQL (`shared`).

use std::path::Path;
use std::sync::{Arc, RwLock};

use airlock_store::{KeyPurpose, ServerKeyRecord, ServerKeySet};
use airlock_trust::keys::SigningKey;

use super::files::{KeyFiles, KeyHistory, RetiredKey, created_at, rotated};
use super::shared::{history_of, stored_corrupt};
use super::{ListedKey, ServerKeyError};

struct AttestationState {
    /// The version of the stored key set it was made from (0 for the data directory's files): a
    /// set read earlier never replaces one read later.
    version: i64,
    key: Arc<SigningKey>,
    history: KeyHistory,
    created_at: i64,
}

/// The promotion attestation key and its replaced keys.
pub struct AttestationKeys {
    /// The data directory's files; `None` when the keys are shared through the database.
    files: Option<KeyFiles>,
    state: RwLock<Arc<AttestationState>>,
}

fn key_id(key: &SigningKey) -> String {
    key.public_key().key_id().to_string()
}

/// Reads an attestation key's private PEM.
pub(super) fn read_key(pem: &str) -> Result<SigningKey, ServerKeyError> {
    airlock_trust::keys::decrypt_cosign_private_key(pem, b"")
        .map_err(|e| ServerKeyError::Key(e.to_string()))
}

/// The key id of an attestation key's private PEM.
pub(super) fn key_id_of_pem(pem: &str) -> Result<String, ServerKeyError> {
    Ok(key_id(&read_key(pem)?))
}

/// The public PEM of an attestation key's private PEM.
pub(super) fn public_pem_of(pem: &str) -> Result<String, ServerKeyError> {
    Ok(read_key(pem)?.public_key().to_pem())
}

/// A new attestation key made at `now`, as stored.
pub(super) fn new_record(now: i64) -> Result<ServerKeyRecord, ServerKeyError> {
    let key = SigningKey::generate_p256();
    Ok(ServerKeyRecord {
        purpose: KeyPurpose::Attestation,
        key_id: key_id(&key),
        public_key: key.public_key().to_pem(),
        private_key: Some(crate::promotion::private_key_pem(&key).map_err(ServerKeyError::Key)?),
        created_at: now,
        retired_at: None,
        accepted_until: None,
    })
}

fn state_from_set(set: &ServerKeySet) -> Result<AttestationState, ServerKeyError> {
    let purpose = KeyPurpose::Attestation;
    let current = set
        .current(purpose)
        .ok_or(ServerKeyError::NotStored { purpose })?;
    let pem = current
        .private_key
        .as_deref()
        .ok_or(ServerKeyError::NotStored { purpose })?;
    let key = read_key(pem).map_err(|e| stored_corrupt(purpose, &current.key_id, e.to_string()))?;
    Ok(AttestationState {
        version: set.version,
        key: Arc::new(key),
        history: history_of(set, purpose),
        created_at: current.created_at,
    })
}

impl AttestationKeys {
    /// Loads (or, on first start, creates with mode 0600) the attestation key in `data_dir`,
    /// with the keys it replaced.
    pub fn open(data_dir: &Path) -> Result<Self, ServerKeyError> {
        let files = KeyFiles::new(data_dir, "attestation-key");
        files.recover(key_id_of_pem)?;
        let key = crate::promotion::load_or_create_attestation_key(data_dir)
            .map_err(ServerKeyError::Key)?;
        let history = files.read_history()?;
        let created_at = created_at(&history, &files, &key_id(&key));
        Ok(Self {
            files: Some(files),
            state: RwLock::new(Arc::new(AttestationState {
                version: 0,
                key: Arc::new(key),
                history,
                created_at,
            })),
        })
    }

    /// The attestation keys stored in the database (`set`), for a server on PostgreSQL.
    pub(super) fn shared(set: &ServerKeySet) -> Result<Self, ServerKeyError> {
        Ok(Self {
            files: None,
            state: RwLock::new(Arc::new(state_from_set(set)?)),
        })
    }

    /// Takes the stored keys of `set` as the current state (after another replica rotated).
    pub(super) fn apply(&self, set: &ServerKeySet) -> Result<(), ServerKeyError> {
        let next = state_from_set(set)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        // A set read before a newer one was applied never replaces it.
        if next.version < state.version {
            return Ok(());
        }
        if key_id(&next.key) != key_id(&state.key) {
            tracing::info!(old = %key_id(&state.key), new = %key_id(&next.key), "attestation key changed in the database; signing with the new key");
        }
        *state = Arc::new(next);
        Ok(())
    }

    fn current_state(&self) -> Arc<AttestationState> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key new attestations are signed with.
    pub fn current(&self) -> Arc<SigningKey> {
        self.current_state().key.clone()
    }

    /// The current key and every key it replaced, newest first.
    pub fn listing(&self) -> Vec<ListedKey> {
        let state = self.current_state();
        let current_id = key_id(&state.key);
        let mut keys = vec![ListedKey {
            key_id: current_id.clone(),
            public_key: state.key.public_key().to_pem(),
            created_at: state.created_at,
            retired_at: None,
            accepted_until: None,
        }];
        keys.extend(
            state
                .history
                .retired
                .iter()
                .rev()
                .filter(|r| r.key_id != current_id)
                .map(|r| ListedKey {
                    key_id: r.key_id.clone(),
                    public_key: r.public_key.clone(),
                    created_at: r.created_at,
                    retired_at: Some(r.retired_at),
                    accepted_until: r.accepted_until,
                }),
        );
        keys
    }

    /// Replaces the key in the data directory with a new P-256 key; the old one stays listed.
    /// Returns the old and the new key id. The caller serialises rotations. Shared keys rotate
    /// through the database instead (`ServerKeys`).
    pub fn rotate(&self, now: i64) -> Result<(String, String), ServerKeyError> {
        let Some(files) = &self.files else {
            return Err(ServerKeyError::Key(
                "the shared attestation keys rotate through the database".into(),
            ));
        };
        let old = self.current_state();
        let new = SigningKey::generate_p256();
        let old_id = key_id(&old.key);
        let new_id = key_id(&new);
        let history = rotated(
            old.history.clone(),
            RetiredKey {
                key_id: old_id.clone(),
                public_key: old.key.public_key().to_pem(),
                created_at: old.created_at,
                retired_at: now,
                accepted_until: None,
            },
            &new_id,
            now,
        );
        let pem = crate::promotion::private_key_pem(&new).map_err(ServerKeyError::Key)?;
        files.replace(&pem, &history)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(AttestationState {
            version: 0,
            key: Arc::new(new),
            history,
            created_at: now,
        });
        Ok((old_id, new_id))
    }
}
