//! Service-account API keys: several named keys per account, when each was last used, and the
//! expiry notices already sent.
//!
//! What holds: a key's name is unique among its account's keys that are not revoked (a partial
//! unique index, so two concurrent adds of one name yield one key); adding or revoking a key
//! never moves the account's `authz_epoch` (tokens name the key they descend from in their `cred`
//! claim and stop with it, while tokens of the account's other keys keep working); an expiry
//! notice is appended to the audit log in the same transaction that records it as sent, and
//! only if it was not sent before, so notices survive restarts and concurrent sweeps without
//! duplicates.

use airlock_core::AuditRecord;
use sqlx::Row;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// An API key as listed (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// The key id (the `alk_<id>_...` part).
    pub id: String,
    /// The owner.
    pub principal_id: i64,
    /// Its name.
    pub name: String,
    /// When it was made (ms).
    pub created_at: i64,
    /// When it expires (ms).
    pub expires_at: Option<i64>,
    /// When it was revoked (ms), if it was.
    pub revoked_at: Option<i64>,
    /// When it last authenticated (ms), to the minute.
    pub last_used_at: Option<i64>,
    /// Who added it (`None` for keys made before keys had names).
    pub created_by: Option<String>,
}

/// A live key inside an expiry window, with the notices already sent for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringKey {
    /// The key id.
    pub id: String,
    /// The owner's name.
    pub principal: String,
    /// The key's name.
    pub name: String,
    /// When it expires (ms).
    pub expires_at: i64,
    /// Thresholds (days) of `expiring` notices already sent.
    pub expiring_sent: Vec<u32>,
    /// Whether the `expired` notice was sent.
    pub expired_sent: bool,
}

/// A key to add (its secret only as a SHA-256 hash).
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    /// The key id.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// SHA-256 hex of the secret.
    pub secret_hash: &'a str,
    /// When it expires (ms).
    pub expires_at: i64,
    /// Who adds it.
    pub created_by: &'a str,
}

/// Which notice to record as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentNotice {
    /// `credential.expiring` for the first threshold; every listed threshold counts as sent.
    Expiring(Vec<u32>),
    /// `credential.expired`.
    Expired,
}

fn key_from_row(row: sqlx::any::AnyRow) -> ApiKeyRow {
    ApiKeyRow {
        id: row.get("id"),
        principal_id: row.get("principal_id"),
        name: row.get("name"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        revoked_at: row.get("revoked_at"),
        last_used_at: row.get("last_used_at"),
        created_by: row.get("created_by"),
    }
}

impl Metadata {
    /// Adds API key `id` named `name` (SHA-256 `secret_hash`) to `principal_id`. Fails with
    /// [`StoreError::Conflict`] when the account has a live (unrevoked) key of that name or the id
    /// exists. The account's epoch is not moved: a new key takes nothing away.
    pub async fn add_api_key(
        &self,
        principal_id: i64,
        key: NewApiKey<'_>,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let NewApiKey {
            id,
            name,
            secret_hash,
            expires_at,
            created_by,
        } = key;
        let mut tx = self.begin_write().await?;
        let taken: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM credentials
             WHERE (principal_id = $1 AND kind = 'api_key' AND name = $2 AND revoked_at IS NULL) OR id = $3",
        )
        .bind(principal_id)
        .bind(name)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if !taken.is_empty() {
            return Err(StoreError::Conflict(format!(
                "the service account already has a live key named {name}; revoke it first or choose another name"
            )));
        }
        sqlx::query(
            "INSERT INTO credentials
               (id, principal_id, kind, secret_hash, expires_at, revoked_at, created_at, name, created_by)
             VALUES ($1, $2, 'api_key', $3, $4, NULL, $5, $6, $7)",
        )
        .bind(id)
        .bind(principal_id)
        .bind(secret_hash)
        .bind(expires_at)
        .bind(now_millis())
        .bind(name)
        .bind(created_by)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every API key of `principal_id` (revoked and expired ones included), oldest first.
    pub async fn api_keys(&self, principal_id: i64) -> Result<Vec<ApiKeyRow>, StoreError> {
        Ok(sqlx::query(
            "SELECT id, principal_id, COALESCE(name, id) AS name, created_at, expires_at, revoked_at,
                    last_used_at, created_by
             FROM credentials WHERE principal_id = $1 AND kind = 'api_key' ORDER BY created_at, id",
        )
        .bind(principal_id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(key_from_row)
        .collect())
    }

    /// Up to `limit` API keys of `principal_id` made after `after` (time and key id; from the
    /// oldest when `None`), oldest first: a range of `credentials_api_keys_by_time`.
    pub async fn api_keys_page(
        &self,
        principal_id: i64,
        after: Option<&crate::TimeCursor>,
        limit: u32,
    ) -> Result<Vec<ApiKeyRow>, StoreError> {
        let (at, key) = after.map_or((i64::MIN, ""), |c| (c.at, c.key.as_str()));
        Ok(sqlx::query(
            "SELECT id, principal_id, COALESCE(name, id) AS name, created_at, expires_at, revoked_at,
                    last_used_at, created_by
             FROM credentials WHERE principal_id = $1 AND kind = 'api_key'
               AND (created_at, id) > ($2, $3)
             ORDER BY created_at, id LIMIT $4",
        )
        .bind(principal_id)
        .bind(at)
        .bind(key)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(key_from_row)
        .collect())
    }

    /// Revokes API key `id` of `principal_id` without moving the account's epoch (tokens that
    /// descend from the key stop through their `cred` claim). Returns whether it was live.
    pub async fn revoke_api_key(
        &self,
        principal_id: i64,
        id: &str,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE credentials SET revoked_at = $1
             WHERE id = $2 AND principal_id = $3 AND kind = 'api_key' AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(id)
        .bind(principal_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that API key `id` authenticated at `at` (ms), unless a use within the minute before
    /// was already recorded.
    pub async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE credentials SET last_used_at = $1
             WHERE id = $2 AND kind = 'api_key' AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(at)
        .bind(id)
        .bind(at - 60_000)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Unrevoked API keys expiring before `before` (ms) that had not yet expired at `since` (ms),
    /// with the notices already sent for each.
    pub async fn api_keys_expiring(
        &self,
        before: i64,
        since: i64,
    ) -> Result<Vec<ExpiringKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, p.name AS principal, COALESCE(c.name, c.id) AS name, c.expires_at,
                    (SELECT string_agg(CAST(n.threshold_days AS TEXT), ',')
                     FROM credential_expiry_notices n
                     WHERE n.credential_id = c.id AND n.notice = 'expiring') AS expiring_sent,
                    CASE WHEN EXISTS (SELECT 1 FROM credential_expiry_notices n
                            WHERE n.credential_id = c.id AND n.notice = 'expired')
                         THEN 1 ELSE 0 END AS expired_sent
             FROM credentials c JOIN principals p ON p.id = c.principal_id
             WHERE c.kind = 'api_key' AND c.revoked_at IS NULL
               AND c.expires_at IS NOT NULL AND c.expires_at < $1 AND c.expires_at > $2
             ORDER BY c.expires_at, c.id",
        )
        .bind(before)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let sent: Option<String> = row.get("expiring_sent");
                ExpiringKey {
                    id: row.get("id"),
                    principal: row.get("principal"),
                    name: row.get("name"),
                    expires_at: row.get("expires_at"),
                    expiring_sent: sent
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|d| d.parse().ok())
                        .collect(),
                    expired_sent: row.get::<i64, _>("expired_sent") != 0,
                }
            })
            .collect())
    }

    /// Records `notice` for key `id` as sent and appends `records`, in one transaction, unless the
    /// notice (for `expiring`: its first threshold) was sent before. Returns whether it was
    /// appended now.
    pub async fn record_expiry_notice(
        &self,
        id: &str,
        notice: &SentNotice,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let (kind, thresholds) = match notice {
            SentNotice::Expiring(thresholds) => ("expiring", thresholds.clone()),
            SentNotice::Expired => ("expired", vec![0]),
        };
        let Some(&announced) = thresholds.first() else {
            return Ok(false);
        };
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let mut announced_now = false;
        for threshold in &thresholds {
            let done = sqlx::query(
                "INSERT INTO credential_expiry_notices (credential_id, notice, threshold_days, sent_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(kind)
            .bind(i64::from(*threshold))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if *threshold == announced && done.rows_affected() == 1 {
                announced_now = true;
            }
        }
        if !announced_now {
            return Ok(false);
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use airlock_core::{Actor, AuditEvent};

    use super::*;

    fn record(event: AuditEvent) -> AuditRecord {
        AuditRecord {
            time_millis: now_millis(),
            actor: Actor::system(),
            event,
        }
    }

    fn key<'a>(id: &'a str, name: &'a str, expires_at: i64) -> NewApiKey<'a> {
        NewApiKey {
            id,
            name,
            secret_hash: "h",
            expires_at,
            created_by: "admin",
        }
    }

    async fn store_with_account() -> Vec<(crate::testing::TestStore, i64)> {
        let mut out = Vec::new();
        for meta in crate::testing::engines().await {
            let principal = meta
                .create_principal("ci", "service", "admin", &[])
                .await
                .unwrap();
            out.push((meta, principal.id));
        }
        out
    }

    #[tokio::test]
    async fn the_upgrade_names_existing_keys_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            // The schema before migration 14: two accounts, one with a revoked key and its
            // replacement made by hand, and a password.
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(12, &pool)
                .await
                .unwrap();
            for (id, name, kind) in [(1, "ci", "service"), (2, "alice", "user")] {
                sqlx::query(
                    "INSERT INTO principals (id, name, kind, created_at, created_by) VALUES ($1, $2, $3, 0, 'admin')",
                )
                .bind(id)
                .bind(name)
                .bind(kind)
                .execute(&pool)
                .await
                .unwrap();
            }
            for (id, principal, kind, revoked, created) in [
                ("aaaaaaaaaaaa", 1, "api_key", Some(5), 1),
                ("bbbbbbbbbbbb", 1, "api_key", None, 2),
                ("password:2", 2, "password", None, 1),
            ] {
                sqlx::query(
                    "INSERT INTO credentials (id, principal_id, kind, secret_hash, expires_at, revoked_at, created_at)
                     VALUES ($1, $2, $3, 'h', 100000, $4, $5)",
                )
                .bind(id)
                .bind(principal)
                .bind(kind)
                .bind(revoked)
                .bind(created)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        let keys = meta.api_keys(1).await.unwrap();
        let names: Vec<(&str, &str, Option<i64>)> = keys
            .iter()
            .map(|k| (k.id.as_str(), k.name.as_str(), k.revoked_at))
            .collect();
        assert_eq!(
            names,
            vec![
                ("aaaaaaaaaaaa", "default", Some(5)),
                ("bbbbbbbbbbbb", "bbbbbbbbbbbb", None)
            ]
        );
        assert!(meta.api_keys(2).await.unwrap().is_empty());
        // The revoked key's name is free again.
        meta.add_api_key(1, key("cccccccccccc", "default", 200000), &[])
            .await
            .unwrap();
        assert!(meta.credential("password:2").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn names_are_unique_among_live_keys_and_free_again_after_revocation() {
        for (meta, ci) in store_with_account().await {
            let epoch = meta.principal_by_id(ci).await.unwrap().unwrap().authz_epoch;
            meta.add_api_key(ci, key("aaaaaaaaaaaa", "deploy", 10), &[])
                .await
                .unwrap();
            let again = meta
                .add_api_key(ci, key("bbbbbbbbbbbb", "deploy", 10), &[])
                .await;
            assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
            assert!(meta.revoke_api_key(ci, "aaaaaaaaaaaa", &[]).await.unwrap());
            assert!(!meta.revoke_api_key(ci, "aaaaaaaaaaaa", &[]).await.unwrap());
            meta.add_api_key(ci, key("bbbbbbbbbbbb", "deploy", 10), &[])
                .await
                .unwrap();
            assert_eq!(meta.api_keys(ci).await.unwrap().len(), 2);
            // Whoever added a key (revoked ones too) vouches for the account.
            let vouchers = meta.vouchers(&["ci"]).await.unwrap();
            assert_eq!(vouchers["ci"].key_adders, vec!["admin".to_string()]);
            // Adding and revoking keys leaves the account's epoch alone.
            assert_eq!(
                meta.principal_by_id(ci).await.unwrap().unwrap().authz_epoch,
                epoch
            );
        }
    }

    #[tokio::test]
    async fn last_use_is_written_at_most_once_a_minute() {
        for (meta, ci) in store_with_account().await {
            meta.add_api_key(ci, key("aaaaaaaaaaaa", "k", 10), &[])
                .await
                .unwrap();
            meta.touch_api_key("aaaaaaaaaaaa", 1_000_000).await.unwrap();
            meta.touch_api_key("aaaaaaaaaaaa", 1_030_000).await.unwrap();
            assert_eq!(
                meta.api_keys(ci).await.unwrap()[0].last_used_at,
                Some(1_000_000)
            );
            meta.touch_api_key("aaaaaaaaaaaa", 1_060_000).await.unwrap();
            assert_eq!(
                meta.api_keys(ci).await.unwrap()[0].last_used_at,
                Some(1_060_000)
            );
        }
    }

    #[tokio::test]
    async fn an_expiry_notice_is_appended_once() {
        for (meta, ci) in store_with_account().await {
            let now = now_millis();
            meta.add_api_key(ci, key("aaaaaaaaaaaa", "k", now + 1000), &[])
                .await
                .unwrap();
            let due = meta.api_keys_expiring(now + 5000, now).await.unwrap();
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].principal, "ci");
            assert!(due[0].expiring_sent.is_empty());
            let event = || {
                record(AuditEvent::CredentialExpiring {
                    principal: "ci".into(),
                    id: "aaaaaaaaaaaa".into(),
                    name: "k".into(),
                    expires_at_millis: now + 1000,
                    days: 3,
                })
            };
            let notice = SentNotice::Expiring(vec![3, 14]);
            assert!(
                meta.record_expiry_notice("aaaaaaaaaaaa", &notice, &[event()])
                    .await
                    .unwrap()
            );
            assert!(
                !meta
                    .record_expiry_notice("aaaaaaaaaaaa", &notice, &[event()])
                    .await
                    .unwrap()
            );
            let due = meta.api_keys_expiring(now + 5000, now).await.unwrap();
            let mut sent = due[0].expiring_sent.clone();
            sent.sort_unstable();
            assert_eq!(sent, vec![3, 14]);
            assert!(!due[0].expired_sent);
            let entries: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_entries WHERE kind = 'credential.expiring'",
            )
            .fetch_one(meta.pool())
            .await
            .unwrap();
            assert_eq!(entries, 1);
        }
    }
}
