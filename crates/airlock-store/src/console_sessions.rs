//! Web console sessions (`console_sessions`), stored by the SHA-256 of their cookie.
//!
//! Starting and ending a session each write its audit entry in the same transaction. Using a
//! session refreshes its `last_seen_at` at most once a minute ([`TOUCH_INTERVAL_MILLIS`]), so
//! reading pages does not write on every request.

use sqlx::Row;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::Metadata;
use airlock_core::AuditRecord;

/// How stale `last_seen_at` may get before a use of the session refreshes it.
pub const TOUCH_INTERVAL_MILLIS: i64 = 60_000;

/// A stored console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    /// Lowercase hex SHA-256 of the cookie value.
    pub id_sha256: String,
    /// Whose session it is.
    pub principal_id: i64,
    /// The credential the sign-in used (`password:<id>`).
    pub credential_id: String,
    /// The principal's authorization epoch at sign-in.
    pub authz_epoch: i64,
    /// The CSRF token every form of the session carries.
    pub csrf_token: String,
    /// When it started (ms).
    pub created_at: i64,
    /// When it was last used (ms, refreshed at most once a minute).
    pub last_seen_at: i64,
}

impl Metadata {
    /// Records a new session and its audit entries (`records`) in one transaction, forgetting
    /// sessions last used before `forget_before` (ms) on the way.
    pub async fn start_console_session(
        &self,
        session: &ConsoleSessionRow,
        forget_before: i64,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE last_seen_at < $1")
            .bind(forget_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions
               (id_sha256, principal_id, credential_id, authz_epoch, csrf_token, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id_sha256)
        .bind(session.principal_id)
        .bind(&session.credential_id)
        .bind(session.authz_epoch)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session stored under `id_sha256`, if any.
    pub async fn console_session(
        &self,
        id_sha256: &str,
    ) -> Result<Option<ConsoleSessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id_sha256, principal_id, credential_id, authz_epoch, csrf_token, created_at, last_seen_at
             FROM console_sessions WHERE id_sha256 = $1",
        )
        .bind(id_sha256)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next();
        row.map(|row| {
            Ok(ConsoleSessionRow {
                id_sha256: row.try_get("id_sha256")?,
                principal_id: row.try_get("principal_id")?,
                credential_id: row.try_get("credential_id")?,
                authz_epoch: row.try_get("authz_epoch")?,
                csrf_token: row.try_get("csrf_token")?,
                created_at: row.try_get("created_at")?,
                last_seen_at: row.try_get("last_seen_at")?,
            })
        })
        .transpose()
        .map_err(|e| StoreError::undecodable("console_sessions", e))
    }

    /// Records a use of session `id_sha256` at `now` (ms) if its `last_seen_at` is older than
    /// [`TOUCH_INTERVAL_MILLIS`]; otherwise writes nothing.
    pub async fn touch_console_session(&self, id_sha256: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = $1 WHERE id_sha256 = $2 AND last_seen_at < $3",
        )
        .bind(now)
        .bind(id_sha256)
        .bind(now - TOUCH_INTERVAL_MILLIS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets session `id_sha256` (signed out, expired or no longer valid), appending
    /// `records` in the same transaction only if the session existed. Returns whether it did.
    pub async fn end_console_session(
        &self,
        id_sha256: &str,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            append(&mut tx, records).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::engines;

    fn session(id: &str, principal_id: i64, now: i64) -> ConsoleSessionRow {
        ConsoleSessionRow {
            id_sha256: id.to_string(),
            principal_id,
            credential_id: format!("password:{principal_id}"),
            authz_epoch: 1,
            csrf_token: "csrf".into(),
            created_at: now,
            last_seen_at: now,
        }
    }

    #[tokio::test]
    async fn sessions_start_refresh_and_end_once() {
        for store in engines().await {
            let meta = &store.metadata;
            let admin = meta
                .create_principal("kim", "user", "test", &[])
                .await
                .unwrap();
            let entries = meta.audit_entry_count().await.unwrap();
            let started = AuditRecord {
                time_millis: 1,
                actor: airlock_core::Actor::system(),
                event: airlock_core::AuditEvent::SessionStarted {
                    principal: "kim".into(),
                },
            };
            meta.start_console_session(&session("old", admin.id, 1_000), 0, &[])
                .await
                .unwrap();
            meta.start_console_session(&session("new", admin.id, 500_000), 2_000, &[started])
                .await
                .unwrap();
            // The stale one was forgotten when the new one started; the audit entry went in.
            assert_eq!(meta.console_session("old").await.unwrap(), None);
            assert_eq!(meta.audit_entry_count().await.unwrap(), entries + 1);
            let stored = meta.console_session("new").await.unwrap().unwrap();
            assert_eq!(stored, session("new", admin.id, 500_000));
            // Touched only when a minute has passed.
            meta.touch_console_session("new", 530_000).await.unwrap();
            let stored = meta.console_session("new").await.unwrap().unwrap();
            assert_eq!(stored.last_seen_at, 500_000);
            meta.touch_console_session("new", 561_000).await.unwrap();
            let stored = meta.console_session("new").await.unwrap().unwrap();
            assert_eq!(stored.last_seen_at, 561_000);
            // Ended once: a second end finds nothing and appends nothing.
            let ended = AuditRecord {
                time_millis: 2,
                actor: airlock_core::Actor::system(),
                event: airlock_core::AuditEvent::SessionEnded {
                    principal: "kim".into(),
                },
            };
            assert!(
                meta.end_console_session("new", std::slice::from_ref(&ended))
                    .await
                    .unwrap()
            );
            assert!(!meta.end_console_session("new", &[ended]).await.unwrap());
            assert_eq!(meta.audit_entry_count().await.unwrap(), entries + 2);
            assert_eq!(meta.console_session("new").await.unwrap(), None);
        }
    }
}
