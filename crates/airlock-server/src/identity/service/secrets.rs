//! Authentication with a user name and a password or API key (HTTP Basic, the token endpoint's
//! password grant), and the recording and rate limiting of failed authentications.
//!
//! What holds: every refusal of a name and secret runs exactly one argon2id verification (of the
//! stored password hash, or of a dummy hash when there is none to check: an unknown name, an API
//! key, a principal without a password) and answers with [`SECRET_REFUSED`], so neither the time
//! nor the words of an answer tell which user names exist. API keys are checked by SHA-256, so
//! only an accepted key is answered without argon2. Every refusal writes once: the failure's
//! counts, its audit entry and its anomaly signals are one transaction on every path (a path
//! with fewer signals must not answer sooner). Only whoever presents a disabled or locked
//! principal's valid secret learns that it is barred. Failures are limited per (presented name,
//! client address) and per client address (`access.max_failures_per_minute`,
//! `access.max_failures_per_source_per_minute`).

use std::time::{Duration, Instant};

use airlock_core::{Actor, AuditEvent};
use airlock_store::{PrincipalRow, StoreError, now_millis};
use sha2::{Digest as _, Sha256};

use super::{
    AuthError, Authenticated, CachedCredential, Counts, Identity, barred, credential_is_live,
    record,
};

/// What a client is told when a user name and secret are refused: the same words whichever
/// part was wrong, so the answer does not tell which user names exist (the audit log records
/// the precise reason).
const SECRET_REFUSED: &str = "unknown user, or wrong password or API key (API keys also stop working when they expire or are revoked)";

/// An argon2id hash of a random password (same parameters as real ones), computed once, for
/// refusals that have no real hash to check.
pub(super) fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        airlock_identity::hash_password(&airlock_identity::generate_password()).unwrap_or_default()
    })
}

/// A secret checked by [`Identity::verify_secret`], with what the check read.
pub(super) struct Verified {
    /// The principal, read before its credential.
    pub(super) principal: PrincipalRow,
    /// `password` or `api_key`.
    pub(super) method: &'static str,
    /// The credential the secret matched.
    pub(super) credential_id: String,
    /// The stored hash the secret was verified against.
    pub(super) secret_hash: String,
}

impl Identity {
    /// Runs one argon2id verification against a hash nothing matches: the cost of a password
    /// check, spent on refusals that had no real hash to check, so every refusal takes as long.
    /// It takes the same path as real checks (the password-check threads).
    async fn spend_password_check(&self, secret: &str) {
        let _ = self
            .password_checks
            .verify(secret.to_string(), dummy_password_hash().to_string())
            .await;
    }

    fn minute() -> i64 {
        now_millis() / 60_000
    }

    /// Records a failed authentication: the metric, then in one write transaction on every path
    /// the per-minute counts (for `principal`, the audit label, and for the user `name` as
    /// presented, the rate limiter's key), one `auth.failed` audit entry per principal per
    /// minute, and the anomaly signals `counts` names.
    pub(super) async fn fail(
        &self,
        principal: &str,
        name: Option<&str>,
        source: Option<std::net::SocketAddr>,
        reason: &str,
        counts: Counts,
    ) -> AuthError {
        metrics::counter!(crate::metrics::AUTH_FAILURES).increment(1);
        let source_text = source
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let actor = Actor {
            principal: principal.to_string(),
            auth_method: "failed".into(),
            source: source.map(|s| s.to_string()),
        };
        let entry = record(
            &actor,
            AuditEvent::AuthenticationFailed {
                principal: principal.to_string(),
                reason: reason.to_string(),
            },
        );
        let address = source.map(|s| s.ip().to_string());
        let signals = match counts {
            Counts::PrincipalAndSource => self
                .anomalies
                .authentication_failure_signals(Some(principal), address.as_deref()),
            Counts::SourceOnly => self
                .anomalies
                .authentication_failure_signals(None, address.as_deref()),
            Counts::Nothing => Vec::new(),
        };
        // One write transaction whatever the reason and the signals, so no refusal path
        // answers measurably sooner than another.
        match self
            .metadata
            .record_auth_failure(
                principal,
                name,
                &source_text,
                now_millis(),
                &[entry],
                &signals,
            )
            .await
        {
            Ok(raised) => raised
                .iter()
                .for_each(|anomaly| self.anomalies.raised(anomaly)),
            Err(err) => {
                tracing::error!(error = %err, "could not record an authentication failure");
                if !signals.is_empty() {
                    self.anomalies
                        .observe_failed(&err, airlock_core::AnomalyRule::AuthFailures);
                }
            }
        }
        AuthError::Invalid(reason.to_string())
    }

    /// Refuses (429) a check of user `name` from `source` once this minute has seen
    /// `max_failures_per_minute` failures for that name from that address, or
    /// `max_failures_per_source_per_minute` from that address in all. Keyed by (name, address),
    /// a user failing from a shared address (NAT, a proxy) does not block the others there.
    async fn check_rate(
        &self,
        name: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(), AuthError> {
        let source_text = source
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let (by_name, by_source) = self
            .metadata
            .auth_failures(name, &source_text, Self::minute())
            .await?;
        if by_name >= i64::from(self.config.max_failures_per_minute)
            || by_source >= i64::from(self.config.max_failures_per_source_per_minute)
        {
            return Err(AuthError::RateLimited);
        }
        Ok(())
    }

    /// Checks a user name with a password or an API key (as Docker clients send them in Basic
    /// auth). Results are cached for a minute by a hash of the pair, so argon2 runs once; a
    /// cached result still re-checks the principal and the credential on every use.
    ///
    /// Every refusal costs one argon2id verification and answers with the same message, whether
    /// the name is unknown, the principal disabled, the password wrong or an API key unknown,
    /// wrong, expired or revoked: neither time nor words tell which names exist. A right
    /// password that must be changed first is refused with
    /// [`AuthError::PasswordChangeRequired`] (it is not a failure).
    pub async fn authenticate_secret(
        &self,
        user: &str,
        secret: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<Authenticated, AuthError> {
        let cache_key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(secret.as_bytes())
            .finalize()
            .into();
        let cached = {
            let cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(&cache_key)
                .filter(|c| c.until > Instant::now())
                .map(|c| {
                    (
                        c.principal_id,
                        c.method,
                        c.credential_id.clone(),
                        c.authz_epoch,
                        c.secret_hash.clone(),
                    )
                })
        };
        if let Some((principal_id, method, credential_id, authz_epoch, secret_hash)) = cached {
            // Still re-check the principal and the credential: revocation and expiry are
            // immediate, and a changed password (new epoch, new hash) is never the cached one.
            if let Some(principal) = self.metadata.principal_by_id(principal_id).await?
                && principal.authz_epoch == authz_epoch
                && barred(&principal).is_none()
                && !principal.password_must_change
                && self
                    .credential_unchanged(&credential_id, principal.id, &secret_hash)
                    .await?
            {
                if method == "api_key" {
                    self.note_api_key_use(&credential_id);
                }
                return self
                    .authenticated(principal, method.into(), Some(credential_id), None, None)
                    .await;
            }
        }
        let Verified {
            principal,
            method,
            credential_id,
            secret_hash,
        } = self.verify_secret(user, secret, source, None).await?;
        // A password to change authenticates nothing but its change (accounts.rs); only whoever
        // presented it learns so.
        if principal.password_must_change && method == "password" {
            return Err(AuthError::PasswordChangeRequired {
                principal: principal.name,
            });
        }
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                cache_key,
                CachedCredential {
                    principal_id: principal.id,
                    method,
                    credential_id: credential_id.clone(),
                    authz_epoch: principal.authz_epoch,
                    secret_hash,
                    until: Instant::now() + Duration::from_secs(60),
                },
            );
        if method == "api_key" {
            self.note_api_key_use(&credential_id);
        }
        self.authenticated(principal, method.into(), Some(credential_id), None, None)
            .await
    }

    /// Whether credential `id` is still `principal_id`'s, live, and has hash `secret_hash`
    /// (what a cached check verified).
    async fn credential_unchanged(
        &self,
        id: &str,
        principal_id: i64,
        secret_hash: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.metadata.credential(id).await?.is_some_and(|c| {
            c.principal_id == principal_id
                && c.secret_hash == secret_hash
                && credential_is_live(&c, now_millis())
        }))
    }

    /// Checks user `user`'s `secret` (password or API key) with every guarantee of the module
    /// docs (rate limit, one argon2id verification per refusal, one message for every refusal,
    /// failures recorded and counted), returning the principal, the method (`password` or
    /// `api_key`) and the credential id. `purpose`, if given, is added to the audit reason of a
    /// refusal (e.g. a wrong current password at a password change).
    pub(super) async fn verify_secret(
        &self,
        user: &str,
        secret: &str,
        source: Option<std::net::SocketAddr>,
        purpose: Option<&str>,
    ) -> Result<Verified, AuthError> {
        let reason_for = |reason: &str| match purpose {
            Some(purpose) => format!("{reason} ({purpose})"),
            None => reason.to_string(),
        };
        let user = &*storable_name(user);
        self.check_rate(user, source).await?;
        let principal = self.metadata.principal_by_name(user).await?;
        let checked = self.check_secret(principal.as_ref(), secret).await?;
        let Some(principal) = principal else {
            self.fail(
                "unknown",
                Some(user),
                source,
                &reason_for("unknown user"),
                Counts::SourceOnly,
            )
            .await;
            return Err(AuthError::Invalid(SECRET_REFUSED.into()));
        };
        let barred = barred(&principal);
        let (method, credential_id, secret_hash) = match checked {
            Ok(found) => found,
            Err(reason) => {
                // A barred principal's failures are not counted (it is already acted on).
                let counts = if barred.is_some() {
                    Counts::Nothing
                } else {
                    Counts::PrincipalAndSource
                };
                self.fail(user, Some(user), source, &reason_for(&reason), counts)
                    .await;
                return Err(AuthError::Invalid(SECRET_REFUSED.into()));
            }
        };
        // Only whoever knows the secret learns that the principal is disabled or locked.
        if let Some(reason) = barred {
            self.fail(
                user,
                Some(user),
                source,
                &reason_for(&reason),
                Counts::Nothing,
            )
            .await;
            return Err(AuthError::Barred(reason));
        }
        Ok(Verified {
            principal,
            method,
            credential_id,
            secret_hash,
        })
    }

    /// Checks `secret` against `principal`'s credentials: `Ok((method, credential id))`, or
    /// `Err(reason)` for the audit log. Every refusal costs exactly one argon2id verification (of
    /// the password's hash, or of a dummy hash when there is none to check); only an accepted API
    /// key (a SHA-256 check) is answered without one.
    async fn check_secret(
        &self,
        principal: Option<&PrincipalRow>,
        secret: &str,
    ) -> Result<Result<(&'static str, String, String), String>, StoreError> {
        let now = now_millis();
        if secret.starts_with("alk_") {
            let refusal = match airlock_identity::parse_api_key(secret) {
                Err(_) => "malformed API key".to_string(),
                Ok((key_id, key_secret)) => {
                    // Looked up even for an unknown name, so both paths read the same rows.
                    let credential = self.metadata.credential(key_id).await?;
                    match (principal, credential) {
                        (None, _) => "unknown user".into(),
                        (Some(_), None) => "unknown API key".into(),
                        (Some(p), Some(c)) if c.principal_id != p.id || c.kind != "api_key" => {
                            "API key of another principal".into()
                        }
                        (Some(_), Some(c)) if !credential_is_live(&c, now) => {
                            "API key revoked or expired".into()
                        }
                        (Some(_), Some(c))
                            if !airlock_identity::verify_api_key(key_secret, &c.secret_hash) =>
                        {
                            "wrong API key secret".into()
                        }
                        (Some(_), Some(c)) => {
                            return Ok(Ok(("api_key", c.id, c.secret_hash)));
                        }
                    }
                }
            };
            self.spend_password_check(secret).await;
            return Ok(Err(refusal));
        }
        let password = match principal {
            Some(p) => {
                self.metadata
                    .credential(&format!("password:{}", p.id))
                    .await?
            }
            None => None,
        };
        let Some(credential) = password else {
            self.spend_password_check(secret).await;
            let reason = if principal.is_some() {
                "the principal has no password"
            } else {
                "unknown user"
            };
            return Ok(Err(reason.into()));
        };
        let matches = self
            .password_checks
            .verify(secret.to_string(), credential.secret_hash.clone())
            .await;
        if !matches {
            return Ok(Err("wrong password".into()));
        }
        if !credential_is_live(&credential, now) {
            return Ok(Err("password revoked or expired".into()));
        }
        Ok(Ok(("password", credential.id, credential.secret_hash)))
    }
}

/// A presented user name as the database can hold it, for looking it up and counting its
/// failures: a NUL character (U+0000), which PostgreSQL's `text` cannot hold and no principal's
/// name contains, becomes U+FFFD. The name still finds no principal and its failures are still
/// counted and rate-limited, alike on both engines, instead of failing the request.
fn storable_name(user: &str) -> std::borrow::Cow<'_, str> {
    if user.contains('\0') {
        std::borrow::Cow::Owned(user.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(user)
    }
}

#[cfg(test)]
mod tests {
    use airlock_store::{Metadata, PasswordChange};

    use super::*;
    use crate::config::Config;

    const OLD: &str = "old-tall-lamp-orbit";
    const NEW: &str = "new-tall-lamp-orbit";

    /// A check of the old password that started before a change can put its result in the
    /// cache after the change cleared it. Simulated deterministically: the old password is
    /// cached, then the new one is stored without clearing the cache (as if that entry had
    /// been inserted just after the change). The entry must not let the old password in.
    #[tokio::test]
    async fn an_old_password_cached_across_a_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = Metadata::open_sqlite(&dir.path().join("metadata.db"))
            .await
            .unwrap();
        let config = Config::default();
        let stages = config.stages().unwrap();
        let anomalies = crate::anomalies::Anomalies::new(
            metadata.clone(),
            config.anomalies.clone(),
            stages.clone(),
        );
        let identity = Identity::open(
            metadata.clone(),
            dir.path(),
            config.access.clone(),
            stages,
            Some(OLD.into()),
            anomalies,
            std::sync::Arc::new(
                crate::server_keys::TokenKeys::open(dir.path(), "airlock", "airlock", 60).unwrap(),
            ),
        )
        .await
        .unwrap();
        let admin = identity
            .authenticate_secret("admin", OLD, None)
            .await
            .unwrap();
        let hash = super::super::hash_password(NEW).await.unwrap();
        metadata
            .replace_password(admin.principal.id, &hash, PasswordChange::ByUser, &[])
            .await
            .unwrap();
        let refused = identity.authenticate_secret("admin", OLD, None).await;
        assert!(
            matches!(refused, Err(AuthError::Invalid(_))),
            "{:?}",
            refused.map(|a| a.principal.name)
        );
        identity
            .authenticate_secret("admin", NEW, None)
            .await
            .unwrap();
    }
}
