//! The token signing key and the keys it replaced: new tokens are signed by the current key (its
//! `kid` in every token's header); a token signed by a replaced key verifies until that key's
//! overlap ends. A rotation takes effect for the next token issued and checked, without a
//! restart.
//!
//! The keys live in the data directory (`token-key.pem` and its history `token-keys.json`) on
//! the embedded default, and in the database, shared by every replica, on PostgreSQL
//! (`shared`): there a token naming a `kid` this replica does not know yet makes it reload the
//! keys (at most once a second), so a token signed by a key another replica just made is accepted
//! before the next poll.

use std::path::Path;
use std::sync::{Arc, RwLock};

use airlock_identity::{
    AccessClaims, RetiredTokenKey, TokenError, TokenKey, TokenKind, TokenPublicKey, TokenVerifier,
};
use airlock_store::{KeyPurpose, ServerKeyRecord, ServerKeySet};

use super::files::{KeyFiles, KeyHistory, RetiredKey, created_at, rotated};
use super::shared::{SharedKeys, history_of, stored_corrupt};
use super::{ListedKey, ServerKeyError};

/// What the token keys are at one moment.
struct TokenState {
    /// The version of the stored key set it was made from (0 for the data directory's files): a
    /// set read earlier never replaces one read later.
    version: i64,
    key: TokenKey,
    verifier: TokenVerifier,
    retired: Vec<RetiredTokenKey>,
    history: KeyHistory,
    created_at: i64,
}

/// Where the keys are kept.
enum Source {
    /// The data directory's files (the embedded default).
    Files(KeyFiles),
    /// The database, shared by every replica (PostgreSQL).
    Shared(Arc<SharedKeys>),
}

/// The token signing key and its replaced keys.
pub struct TokenKeys {
    source: Source,
    state: RwLock<Arc<TokenState>>,
}

fn crypto(e: impl std::fmt::Display) -> ServerKeyError {
    ServerKeyError::Key(e.to_string())
}

/// The verifier's settings: issuer, audience, leeway.
struct Checks<'a> {
    issuer: &'a str,
    audience: &'a str,
    leeway_secs: u64,
}

fn state(
    key: TokenKey,
    history: KeyHistory,
    created_at: i64,
    checks: &Checks<'_>,
    corrupt: &dyn Fn(&str, String) -> ServerKeyError,
) -> Result<TokenState, ServerKeyError> {
    let kid = key.kid().to_string();
    let mut retired = Vec::new();
    for old in history.retired.iter().filter(|r| r.key_id != kid) {
        let Some(until) = old.accepted_until else {
            continue;
        };
        retired.push(RetiredTokenKey {
            key: TokenPublicKey::from_public_pem(&old.public_key)
                .map_err(|e| corrupt(&old.key_id, e.to_string()))?,
            accepted_until_secs: (until.max(0) / 1000) as u64,
        });
    }
    Ok(TokenState {
        version: 0,
        verifier: TokenVerifier {
            key: key.public_key().clone(),
            issuer: checks.issuer.into(),
            audience: checks.audience.into(),
            leeway_secs: checks.leeway_secs,
        },
        created_at,
        key,
        retired,
        history,
    })
}

/// The state the stored keys of `set` give.
fn state_from_set(set: &ServerKeySet, checks: &Checks<'_>) -> Result<TokenState, ServerKeyError> {
    let purpose = KeyPurpose::Token;
    let current = set
        .current(purpose)
        .ok_or(ServerKeyError::NotStored { purpose })?;
    let pem = current
        .private_key
        .as_deref()
        .ok_or(ServerKeyError::NotStored { purpose })?;
    let key = TokenKey::from_pkcs8_pem(pem)
        .map_err(|e| stored_corrupt(purpose, &current.key_id, e.to_string()))?;
    let mut state = state(
        key,
        history_of(set, purpose),
        current.created_at,
        checks,
        &|key_id, message| stored_corrupt(purpose, key_id, message),
    )?;
    state.version = set.version;
    Ok(state)
}

/// A new token key made at `now`, as stored.
pub(super) fn new_record(now: i64) -> Result<ServerKeyRecord, ServerKeyError> {
    let key = TokenKey::generate();
    Ok(ServerKeyRecord {
        purpose: KeyPurpose::Token,
        key_id: key.kid().to_string(),
        public_key: key.public_key().to_public_pem().map_err(crypto)?,
        private_key: Some(key.to_pkcs8_pem().map_err(crypto)?),
        created_at: now,
        retired_at: None,
        accepted_until: None,
    })
}

/// The key id of a token key's private PEM.
pub(super) fn key_id_of_pem(pem: &str) -> Result<String, ServerKeyError> {
    Ok(TokenKey::from_pkcs8_pem(pem)
        .map_err(crypto)?
        .kid()
        .to_string())
}

/// The public PEM of a token key's private PEM.
pub(super) fn public_pem_of(pem: &str) -> Result<String, ServerKeyError> {
    TokenKey::from_pkcs8_pem(pem)
        .map_err(crypto)?
        .public_key()
        .to_public_pem()
        .map_err(crypto)
}

impl TokenKeys {
    /// Loads (or, on first start, creates with mode 0600) the token key in `data_dir`, with the
    /// keys it replaced; tokens must carry `issuer` and `audience`, and times are checked with
    /// `leeway_secs` of tolerance.
    pub fn open(
        data_dir: &Path,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
    ) -> Result<Self, ServerKeyError> {
        let files = KeyFiles::new(data_dir, "token-key");
        files.recover(key_id_of_pem)?;
        let key = match std::fs::read_to_string(&files.key) {
            Ok(pem) => TokenKey::from_pkcs8_pem(&pem).map_err(crypto)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = TokenKey::generate();
                files.create(&key.to_pkcs8_pem().map_err(crypto)?)?;
                key
            }
            Err(source) => {
                return Err(ServerKeyError::File {
                    path: files.key.clone(),
                    source,
                });
            }
        };
        let history = files.read_history()?;
        let made = created_at(&history, &files, key.kid());
        let checks = Checks {
            issuer,
            audience,
            leeway_secs,
        };
        let state = state(key, history, made, &checks, &|key_id, message| {
            ServerKeyError::Corrupt {
                path: files.history.clone(),
                message: format!("key {key_id}: {message}"),
            }
        })?;
        Ok(Self {
            source: Source::Files(files),
            state: RwLock::new(Arc::new(state)),
        })
    }

    /// The token keys stored in the database (`set`, loaded by `shared`), for a server on
    /// PostgreSQL.
    pub(super) fn shared(
        shared: Arc<SharedKeys>,
        set: &ServerKeySet,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
    ) -> Result<Self, ServerKeyError> {
        let checks = Checks {
            issuer,
            audience,
            leeway_secs,
        };
        let state = state_from_set(set, &checks)?;
        Ok(Self {
            source: Source::Shared(shared),
            state: RwLock::new(Arc::new(state)),
        })
    }

    /// Takes the stored keys of `set` as the current state (after another replica rotated).
    pub(super) fn apply(&self, set: &ServerKeySet) -> Result<(), ServerKeyError> {
        let old = self.current();
        let checks = Checks {
            issuer: &old.verifier.issuer,
            audience: &old.verifier.audience,
            leeway_secs: old.verifier.leeway_secs,
        };
        let next = state_from_set(set, &checks)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        // A reload that read the keys before a newer one was applied (an unknown-kid reload
        // racing the poll) must not bring back a retired key as the current one.
        if next.version < state.version {
            return Ok(());
        }
        if next.key.kid() != state.key.kid() {
            tracing::info!(old = %state.key.kid(), new = %next.key.kid(), "token signing key changed in the database; signing with the new key");
        }
        *state = Arc::new(next);
        Ok(())
    }

    fn current(&self) -> Arc<TokenState> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Signs `claims` with the current key.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, airlock_identity::IdentityError> {
        self.current().key.issue(claims)
    }

    /// Verifies `token` with the key its `kid` names: the current one, or a replaced one within
    /// its overlap.
    pub fn verify(
        &self,
        token: &str,
        now_secs: u64,
        kind: TokenKind,
    ) -> Result<AccessClaims, TokenError> {
        let state = self.current();
        state
            .verifier
            .verify_with_retired(token, now_secs, kind, &state.retired)
    }

    /// [`TokenKeys::verify`]; when the keys are shared and the token names a key this replica
    /// does not know, reloads the keys from the database first (at most once a second, whoever
    /// asks) and tries again: another replica may have just rotated.
    pub async fn verify_fresh(
        &self,
        token: &str,
        now_secs: u64,
        kind: TokenKind,
    ) -> Result<AccessClaims, TokenError> {
        match self.verify(token, now_secs, kind) {
            Err(TokenError::UnknownKeyId(kid)) => {
                let Source::Shared(shared) = &self.source else {
                    return Err(TokenError::UnknownKeyId(kid));
                };
                if !shared.may_reload_now() {
                    return Err(TokenError::UnknownKeyId(kid));
                }
                match shared.load().await {
                    Ok(set) => {
                        if let Err(err) = self.apply(&set) {
                            tracing::error!(error = %err, "reloading the shared token keys failed");
                        }
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "reloading the shared token keys failed")
                    }
                }
                self.verify(token, now_secs, kind)
            }
            other => other,
        }
    }

    /// The current key's id.
    pub fn kid(&self) -> String {
        self.current().key.kid().to_string()
    }

    /// The current key and the keys it replaced, newest first.
    pub fn listing(&self) -> Result<Vec<ListedKey>, ServerKeyError> {
        let state = self.current();
        let mut keys = vec![ListedKey {
            key_id: state.key.kid().to_string(),
            public_key: state.key.public_key().to_public_pem().map_err(crypto)?,
            created_at: state.created_at,
            retired_at: None,
            accepted_until: None,
        }];
        keys.extend(state.history.retired.iter().rev().map(|r| ListedKey {
            key_id: r.key_id.clone(),
            public_key: r.public_key.clone(),
            created_at: r.created_at,
            retired_at: Some(r.retired_at),
            accepted_until: r.accepted_until,
        }));
        Ok(keys)
    }

    /// Replaces the key in the data directory with a new one; what the old key signed is
    /// accepted until `accepted_until` (Unix ms). Returns the old and the new key id. The caller
    /// serialises rotations. Shared keys rotate through the database instead (`ServerKeys`).
    pub fn rotate(
        &self,
        now: i64,
        accepted_until: i64,
    ) -> Result<(String, String), ServerKeyError> {
        let Source::Files(files) = &self.source else {
            return Err(ServerKeyError::Key(
                "the shared token keys rotate through the database".into(),
            ));
        };
        let old = self.current();
        let new = TokenKey::generate();
        let old_id = old.key.kid().to_string();
        let new_id = new.kid().to_string();
        let history = rotated(
            old.history.clone(),
            RetiredKey {
                key_id: old_id.clone(),
                public_key: old.key.public_key().to_public_pem().map_err(crypto)?,
                created_at: old.created_at,
                retired_at: now,
                accepted_until: Some(accepted_until),
            },
            &new_id,
            now,
        );
        files.replace(&new.to_pkcs8_pem().map_err(crypto)?, &history)?;
        let checks = Checks {
            issuer: &old.verifier.issuer,
            audience: &old.verifier.audience,
            leeway_secs: old.verifier.leeway_secs,
        };
        let next = state(new, history, now, &checks, &|key_id, message| {
            ServerKeyError::Corrupt {
                path: files.history.clone(),
                message: format!("key {key_id}: {message}"),
            }
        })?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok((old_id, new_id))
    }
}
