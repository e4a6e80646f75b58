//! The promotion attestation key (`<data_dir>/attestation-key.pem`) and the keys it replaced:
//! new promotion attestations are signed by the current key; every replaced key stays listed
//! (its public half, when it was made and retired), without end, so an attestation signed
//! before a rotation keeps verifying with the key that signed it.

use std::path::Path;
use std::sync::{Arc, RwLock};

use airlock_trust::keys::SigningKey;

use super::files::{KeyFiles, KeyHistory, RetiredKey, created_at, rotated};
use super::{ListedKey, ServerKeyError};

struct AttestationState {
    key: Arc<SigningKey>,
    history: KeyHistory,
    created_at: i64,
}

/// The promotion attestation key and its replaced keys.
pub struct AttestationKeys {
    files: KeyFiles,
    state: RwLock<Arc<AttestationState>>,
}

fn key_id(key: &SigningKey) -> String {
    key.public_key().key_id().to_string()
}

fn read_key(pem: &str) -> Result<SigningKey, ServerKeyError> {
    airlock_trust::keys::decrypt_cosign_private_key(pem, b"")
        .map_err(|e| ServerKeyError::Key(e.to_string()))
}

impl AttestationKeys {
    /// Loads (or, on first start, creates with mode 0600) the attestation key in `data_dir`,
    /// with the keys it replaced.
    pub fn open(data_dir: &Path) -> Result<Self, ServerKeyError> {
        let files = KeyFiles::new(data_dir, "attestation-key");
        files.recover(|pem| Ok(key_id(&read_key(pem)?)))?;
        let key = crate::promotion::load_or_create_attestation_key(data_dir)
            .map_err(ServerKeyError::Key)?;
        let history = files.read_history()?;
        let created_at = created_at(&history, &files, &key_id(&key));
        Ok(Self {
            files,
            state: RwLock::new(Arc::new(AttestationState {
                key: Arc::new(key),
                history,
                created_at,
            })),
        })
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

    /// Replaces the key with a new P-256 key; the old one stays listed. Returns the old and the
    /// new key id. The caller serialises rotations.
    pub fn rotate(&self, now: i64) -> Result<(String, String), ServerKeyError> {
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
        self.files.replace(&pem, &history)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(AttestationState {
            key: Arc::new(new),
            history,
            created_at: now,
        });
        Ok((old_id, new_id))
    }
}
