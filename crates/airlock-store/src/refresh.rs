//! Refresh-token families and rotation.
//!
//! A login with offline access starts a family (`refresh_families`) bound to the principal and
//! the credential the login used. Every refresh token is a row of `refresh_tokens` keyed by its
//! `jti`. [`Metadata::rotate_refresh_token`] spends a token and records its successor in one
//! transaction, so of two concurrent exchanges of the same token exactly one succeeds; a token
//! presented after it was spent revokes its whole family (OAuth 2.0 Security BCP, refresh token
//! rotation with reuse detection).

use sqlx::Row;

use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// What [`Metadata::rotate_refresh_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was live: it is spent now and its successor is recorded.
    Rotated {
        /// The family both tokens belong to.
        family: String,
        /// The credential the family's login used.
        credential_id: String,
    },
    /// The token had already been spent: the family is revoked now.
    Reused {
        /// The family that was revoked.
        family: String,
    },
    /// The token's family was revoked earlier (by a reuse).
    Revoked,
    /// No such token is recorded (issued before rotation existed, or by another database).
    Unknown,
}

impl Metadata {
    /// Starts a refresh-token family for `principal_id`'s login with `credential_id`, recording
    /// its first token `jti` (valid until `expires_at`, ms). Also forgets tokens that expired.
    pub async fn start_refresh_family(
        &self,
        family: &str,
        principal_id: i64,
        credential_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_families (id, principal_id, credential_id, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(family)
        .bind(principal_id)
        .bind(credential_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (jti, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(jti)
        .bind(family)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Exchanges refresh token `jti` for its successor `next_jti` (valid until
    /// `next_expires_at`, ms): spends the token and records the successor if the token is live;
    /// revokes the family if the token was spent before. One transaction.
    pub async fn rotate_refresh_token(
        &self,
        jti: &str,
        next_jti: &str,
        next_expires_at: i64,
    ) -> Result<RefreshRotation, StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(
            "SELECT t.family_id, t.spent_at, f.revoked_at, f.credential_id
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
             WHERE t.jti = $1",
        )
        .bind(jti)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next() else {
            return Ok(RefreshRotation::Unknown);
        };
        let family: String = row.get("family_id");
        if row.get::<Option<i64>, _>("revoked_at").is_some() {
            return Ok(RefreshRotation::Revoked);
        }
        if row.get::<Option<i64>, _>("spent_at").is_some() {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = 'reuse'
                 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&family)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RefreshRotation::Reused { family });
        }
        sqlx::query("UPDATE refresh_tokens SET spent_at = $1 WHERE jti = $2")
            .bind(now)
            .bind(jti)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (jti, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(next_jti)
        .bind(&family)
        .bind(now)
        .bind(next_expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshRotation::Rotated {
            family,
            credential_id: row.get("credential_id"),
        })
    }

    /// Whether refresh-token family `family` is live (recorded and not revoked).
    pub async fn refresh_family_live(&self, family: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM refresh_families WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Vec<(crate::testing::TestStore, i64)> {
        let mut out = Vec::new();
        for metadata in crate::testing::engines().await {
            let principal = metadata
                .create_principal("svc", "service", "test", &[])
                .await
                .unwrap();
            out.push((metadata, principal.id));
        }
        out
    }

    /// Migration 0009 applied to a database at 0008 with principals, credentials and counted
    /// failures in it keeps them, and its tables work at once.
    #[tokio::test]
    async fn migration_0009_applies_over_a_populated_0008_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            let mut up_to_8 = crate::metadata::migrator(crate::Backend::Sqlite);
            up_to_8.migrations = up_to_8
                .migrations
                .iter()
                .filter(|m| m.version <= 8)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            up_to_8.run(&pool).await.unwrap();
            for sql in [
                "INSERT INTO principals (id, name, kind, created_at, created_by) VALUES (7, 'ci', 'service', 1, 'admin')",
                "INSERT INTO credentials (id, principal_id, kind, secret_hash, expires_at, created_at) VALUES ('key1', 7, 'api_key', 'ab', 99, 1)",
                "INSERT INTO auth_failures (principal, source, minute, count) VALUES ('ci', '10.0.0.1', 5, 3)",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        let metadata = Metadata::open_sqlite(&path).await.unwrap();
        let credential = metadata.credential("key1").await.unwrap().unwrap();
        assert_eq!(
            (credential.principal_id, credential.expires_at),
            (7, Some(99))
        );
        assert_eq!(
            metadata.auth_failures("ci", "10.0.0.1", 5).await.unwrap(),
            (0, 3),
            "per-source totals carry over; per-name counts start empty"
        );
        let later = now_millis() + 60_000;
        metadata
            .start_refresh_family("fam", 7, "key1", "t1", later)
            .await
            .unwrap();
        assert!(matches!(
            metadata
                .rotate_refresh_token("t1", "t2", later)
                .await
                .unwrap(),
            RefreshRotation::Rotated { .. }
        ));
    }

    #[tokio::test]
    async fn a_refresh_token_rotates_once_and_its_reuse_revokes_the_family() {
        for (metadata, principal) in store().await {
            let later = now_millis() + 60_000;
            metadata
                .start_refresh_family("fam", principal, "key1", "t1", later)
                .await
                .unwrap();
            assert!(metadata.refresh_family_live("fam").await.unwrap());
            assert_eq!(
                metadata
                    .rotate_refresh_token("t1", "t2", later)
                    .await
                    .unwrap(),
                RefreshRotation::Rotated {
                    family: "fam".into(),
                    credential_id: "key1".into()
                }
            );
            // t1 again: a reuse; the family (and with it t2) is revoked.
            assert_eq!(
                metadata
                    .rotate_refresh_token("t1", "t3", later)
                    .await
                    .unwrap(),
                RefreshRotation::Reused {
                    family: "fam".into()
                }
            );
            assert!(!metadata.refresh_family_live("fam").await.unwrap());
            assert_eq!(
                metadata
                    .rotate_refresh_token("t2", "t4", later)
                    .await
                    .unwrap(),
                RefreshRotation::Revoked
            );
            assert_eq!(
                metadata
                    .rotate_refresh_token("nope", "t5", later)
                    .await
                    .unwrap(),
                RefreshRotation::Unknown
            );
            assert!(!metadata.refresh_family_live("other").await.unwrap());
        }
    }
}
