//! Service-account API keys: adding, listing and revoking named keys, recording when each was
//! last used, and the expiry notices.
//!
//! What holds:
//! - only an access-admin (`ManageAccess` everywhere) adds or revokes keys; access-admins and
//!   auditors list them. A listing never holds a secret or its hash; the secret is returned once,
//!   by the add.
//! - every key expires, at most `access.max_api_key_days` after it is added (a key added without
//!   an expiry gets exactly that).
//! - adding a key takes nothing away, so it leaves the account's epoch and tokens alone; revoking
//!   one ends exactly the tokens and refresh-token families descending from it (their `cred`
//!   claim names it), while the account's other keys and their tokens keep working.
//! - "last used" is the time of an authentication with the key (HTTP Basic, the token endpoint,
//!   or a refresh exchange of a login made with it), written at most once a minute per key and
//!   process, off the request path; uses of access tokens are not counted.
//! - `credential.expiring` is appended once per key and configured threshold, and
//!   `credential.expired` once per key that expires unrevoked (within a week of its expiry),
//!   each in the transaction that records it as sent.

use std::time::{Duration, Instant};

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::api_key::{
    ApiKeyName, DAY_MILLIS, ExpiryNotice, RequestedExpiry, expiry_notice, key_expiry,
};
use airlock_core::{Actor, AuditEvent};
use airlock_store::{ApiKeyRow, NewApiKey, PrincipalRow, SentNotice, StoreError, now_millis};

use super::{AuthError, Authenticated, Identity, conflict, record};

/// How often at most a key's last use is written.
const LAST_USE_GRANULARITY: Duration = Duration::from_secs(60);

/// How long after its expiry a key still gets its `credential.expired` notice (so the first
/// start after an upgrade does not announce every key that ever expired).
const EXPIRED_NOTICE_WINDOW_MILLIS: i64 = 7 * DAY_MILLIS;

/// A key just added: its secret (shown once) and its listing.
pub struct AddedKey {
    /// The full key text, `alk_<id>_<secret>`.
    pub secret: String,
    /// The stored key.
    pub key: ApiKeyRow,
}

impl std::fmt::Debug for AddedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddedKey")
            .field("secret", &"<redacted>")
            .field("key", &self.key)
            .finish()
    }
}

impl Identity {
    /// The service account `name`, for key administration.
    async fn service_account(&self, name: &str) -> Result<PrincipalRow, AuthError> {
        let principal = self.principal(name).await?;
        if principal.kind != "service" || principal.name.starts_with("oidc/") {
            return Err(AuthError::NotServiceAccount { name: name.into() });
        }
        Ok(principal)
    }

    /// Stores a new API key for `principal` (a service account) and returns it with its secret.
    pub(super) async fn store_new_key(
        &self,
        who: &Authenticated,
        actor: &Actor,
        principal: &PrincipalRow,
        name: &ApiKeyName,
        expiry: RequestedExpiry,
    ) -> Result<AddedKey, AuthError> {
        let expires_at = key_expiry(expiry, now_millis(), self.config.max_api_key_days)?;
        let (secret, stored) = airlock_identity::ApiKey::generate();
        self.metadata
            .add_api_key(
                principal.id,
                NewApiKey {
                    id: &stored.id,
                    name: name.as_str(),
                    secret_hash: &stored.secret_sha256,
                    expires_at,
                    created_by: &who.principal.name,
                },
                &[record(
                    actor,
                    AuditEvent::ApiKeyCreated {
                        principal: principal.name.clone(),
                        id: stored.id.clone(),
                        name: name.to_string(),
                        expires_at_millis: expires_at,
                    },
                )],
            )
            .await
            .map_err(conflict)?;
        let key = self
            .metadata
            .api_keys(principal.id)
            .await?
            .into_iter()
            .find(|k| k.id == stored.id)
            .ok_or_else(|| StoreError::Corrupt("added API key vanished".into()))?;
        Ok(AddedKey {
            secret: secret.expose().to_string(),
            key,
        })
    }

    /// Adds API key `name` to service account `account` (an access-admin).
    pub async fn add_api_key(
        &self,
        who: &Authenticated,
        actor: &Actor,
        account: &str,
        name: &ApiKeyName,
        expiry: RequestedExpiry,
    ) -> Result<AddedKey, AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let principal = self.service_account(account).await?;
        if principal.disabled {
            return Err(AuthError::Conflict(format!(
                "{account} is disabled; a disabled service account gets no new keys"
            )));
        }
        self.store_new_key(who, actor, &principal, name, expiry)
            .await
    }

    /// Up to `limit` API keys of service account `account` made after `after` (from the oldest
    /// when `None`), oldest first (access-admins and auditors).
    pub async fn api_keys(
        &self,
        who: &Authenticated,
        account: &str,
        after: Option<&airlock_store::TimeCursor>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRow>, AuthError> {
        if !who.has(Permission::ManageAccess, &PermissionTarget::Global)
            && !who.has(Permission::ReadAudit, &PermissionTarget::Global)
        {
            return Err(AuthError::Forbidden(
                "listing API keys needs access-admin or auditor".into(),
            ));
        }
        let principal = self.service_account(account).await?;
        Ok(self
            .metadata
            .api_keys_page(principal.id, after, limit)
            .await?)
    }

    /// Revokes the key of `account` whose id, or else whose live key's name, is `key`.
    pub async fn revoke_api_key(
        &self,
        who: &Authenticated,
        actor: &Actor,
        account: &str,
        key: &str,
    ) -> Result<ApiKeyRow, AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let principal = self.service_account(account).await?;
        let keys = self.metadata.api_keys(principal.id).await?;
        let found = keys
            .iter()
            .find(|k| k.id == key)
            .or_else(|| {
                keys.iter()
                    .find(|k| k.name == key && k.revoked_at.is_none())
            })
            .or_else(|| keys.iter().rev().find(|k| k.name == key))
            .cloned()
            .ok_or_else(|| {
                AuthError::NotFound(format!(
                    "{account} has no API key with id or name {key}; see airlock service-accounts keys list {account}"
                ))
            })?;
        self.revoke_key_row(actor, &principal, &found).await?;
        Ok(found)
    }

    /// Revokes `key` of `principal` (no epoch bump: see the module docs).
    pub(super) async fn revoke_key_row(
        &self,
        actor: &Actor,
        principal: &PrincipalRow,
        key: &ApiKeyRow,
    ) -> Result<(), AuthError> {
        let revoked = self
            .metadata
            .revoke_api_key(
                principal.id,
                &key.id,
                &[record(
                    actor,
                    AuditEvent::ApiKeyRevoked {
                        principal: principal.name.clone(),
                        id: key.id.clone(),
                        name: key.name.clone(),
                    },
                )],
            )
            .await?;
        if !revoked {
            return Err(AuthError::Conflict(format!(
                "API key {} ({}) of {} is already revoked",
                key.id, key.name, principal.name
            )));
        }
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// Notes that API key `id` authenticated now: written at most once a minute per key, in the
    /// background (a failure to write it never fails the authentication).
    pub(super) fn note_api_key_use(&self, id: &str) {
        let now = Instant::now();
        {
            let mut uses = self.key_uses.lock().unwrap_or_else(|e| e.into_inner());
            if uses
                .get(id)
                .is_some_and(|at| now.duration_since(*at) < LAST_USE_GRANULARITY)
            {
                return;
            }
            if uses.len() >= 10_000 {
                uses.retain(|_, at| now.duration_since(*at) < LAST_USE_GRANULARITY);
            }
            uses.insert(id.to_string(), now);
        }
        let metadata = self.metadata.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(err) = metadata.touch_api_key(&id, now_millis()).await {
                tracing::debug!(error = %err, "could not record an API key's last use");
            }
        });
    }

    /// Appends the `credential.expiring` and `credential.expired` events that are due and not yet
    /// sent (see the module docs). Returns how many were appended.
    pub async fn send_expiry_notices(&self) -> Result<usize, StoreError> {
        let thresholds = &self.config.credential_expiry_warning_days.0;
        let now = now_millis();
        let widest = thresholds.iter().copied().max().unwrap_or(0);
        let keys = self
            .metadata
            .api_keys_expiring(
                now + i64::from(widest) * DAY_MILLIS + 1,
                now - EXPIRED_NOTICE_WINDOW_MILLIS,
            )
            .await?;
        let mut sent = 0;
        for key in keys {
            let (notice, event) = match expiry_notice(key.expires_at, now, thresholds) {
                None => continue,
                Some(ExpiryNotice::Expired) if key.expired_sent => continue,
                Some(ExpiryNotice::Expired) => (
                    SentNotice::Expired,
                    AuditEvent::CredentialExpired {
                        principal: key.principal.clone(),
                        id: key.id.clone(),
                        name: key.name.clone(),
                        expires_at_millis: key.expires_at,
                    },
                ),
                Some(ExpiryNotice::Expiring { days, .. }) if key.expiring_sent.contains(&days) => {
                    continue;
                }
                Some(ExpiryNotice::Expiring { days, reached }) => {
                    let mut mark = vec![days];
                    mark.extend(reached.into_iter().filter(|d| *d != days));
                    (
                        SentNotice::Expiring(mark),
                        AuditEvent::CredentialExpiring {
                            principal: key.principal.clone(),
                            id: key.id.clone(),
                            name: key.name.clone(),
                            expires_at_millis: key.expires_at,
                            days,
                        },
                    )
                }
            };
            if self
                .metadata
                .record_expiry_notice(&key.id, &notice, &[record(&Actor::system(), event)])
                .await?
            {
                sent += 1;
            }
        }
        Ok(sent)
    }
}
