//! The token signing key (`<data_dir>/token-key.pem`) and the keys it replaced: new tokens are
//! signed by the current key (its `kid` in every token's header); a token signed by a replaced
//! key verifies until that key's overlap ends. A rotation takes effect for the next token issued
//! and checked, without a restart.

use std::path::Path;
use std::sync::{Arc, RwLock};

use airlock_identity::{
    AccessClaims, RetiredTokenKey, TokenError, TokenKey, TokenKind, TokenPublicKey, TokenVerifier,
};

use super::files::{KeyFiles, KeyHistory, RetiredKey, created_at, rotated};
use super::{ListedKey, ServerKeyError};

/// What the token keys are at one moment.
struct TokenState {
    key: TokenKey,
    verifier: TokenVerifier,
    retired: Vec<RetiredTokenKey>,
    history: KeyHistory,
    created_at: i64,
}

/// The token signing key and its replaced keys.
pub struct TokenKeys {
    files: KeyFiles,
    state: RwLock<Arc<TokenState>>,
}

fn crypto(e: impl std::fmt::Display) -> ServerKeyError {
    ServerKeyError::Key(e.to_string())
}

fn state(
    key: TokenKey,
    history: KeyHistory,
    files: &KeyFiles,
    issuer: &str,
    audience: &str,
    leeway_secs: u64,
) -> Result<TokenState, ServerKeyError> {
    let kid = key.kid().to_string();
    let mut retired = Vec::new();
    for old in history.retired.iter().filter(|r| r.key_id != kid) {
        let Some(until) = old.accepted_until else {
            continue;
        };
        retired.push(RetiredTokenKey {
            key: TokenPublicKey::from_public_pem(&old.public_key).map_err(|e| {
                ServerKeyError::Corrupt {
                    path: files.history.clone(),
                    message: format!("key {}: {e}", old.key_id),
                }
            })?,
            accepted_until_secs: (until.max(0) / 1000) as u64,
        });
    }
    Ok(TokenState {
        verifier: TokenVerifier {
            key: key.public_key().clone(),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs,
        },
        created_at: created_at(&history, files, &kid),
        key,
        retired,
        history,
    })
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
        files.recover(|pem| {
            Ok(TokenKey::from_pkcs8_pem(pem)
                .map_err(crypto)?
                .kid()
                .to_string())
        })?;
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
        let state = state(key, history, &files, issuer, audience, leeway_secs)?;
        Ok(Self {
            files,
            state: RwLock::new(Arc::new(state)),
        })
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

    /// Replaces the key with a new one; what the old key signed is accepted until
    /// `accepted_until` (Unix ms). Returns the old and the new key id. The caller serialises
    /// rotations.
    pub fn rotate(
        &self,
        now: i64,
        accepted_until: i64,
    ) -> Result<(String, String), ServerKeyError> {
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
        self.files
            .replace(&new.to_pkcs8_pem().map_err(crypto)?, &history)?;
        let next = state(
            new,
            history,
            &self.files,
            &old.verifier.issuer,
            &old.verifier.audience,
            old.verifier.leeway_secs,
        )?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok((old_id, new_id))
    }
}
