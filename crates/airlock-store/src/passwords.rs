//! Password changes and enabling a principal again.
//!
//! What holds: a new password (changed by its user or reset by an access-admin) replaces the
//! principal's `password:<id>` credential, sets or clears `principals.password_must_change`,
//! bumps the principal's `authz_epoch` (every outstanding access and refresh token fails its
//! epoch check) and revokes every live refresh-token family of the principal (so its logins end
//! even for a token check that would not compare epochs), with the audit records, in one
//! transaction. Enabling a disabled principal clears `disabled` and bumps the epoch again; it
//! never revives a family or token that disabling ended.

use airlock_core::AuditRecord;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::{Metadata, WriteTransaction, now_millis};

/// Revokes every live refresh-token family of `principal_id` inside `tx`, recording `reason`.
/// Returns how many were revoked.
pub(crate) async fn revoke_logins(
    tx: &mut WriteTransaction,
    principal_id: i64,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2
         WHERE principal_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_millis())
    .bind(reason)
    .bind(principal_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Why a password is being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// The first password of a new principal (created by an access-admin, or at installation).
    Initial {
        /// Whether its user must change it before using it (a generated installation password).
        must_change: bool,
    },
    /// The user changed it, proving the current one.
    ByUser,
    /// An access-admin reset it: the user must change it before using it.
    Reset,
}

impl PasswordChange {
    fn must_change(self) -> bool {
        match self {
            Self::Initial { must_change } => must_change,
            Self::ByUser => false,
            Self::Reset => true,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Initial { .. } => "password_set",
            Self::ByUser => "password_changed",
            Self::Reset => "password_reset",
        }
    }
}

/// Stores `secret_hash` as `principal_id`'s password inside `tx` (see
/// [`Metadata::replace_password`]), returning how many logins were revoked.
async fn store_password(
    tx: &mut WriteTransaction,
    principal_id: i64,
    secret_hash: &str,
    change: PasswordChange,
) -> Result<u64, StoreError> {
    let updated = sqlx::query(
        "UPDATE principals SET password_must_change = $1, authz_epoch = authz_epoch + 1
         WHERE id = $2",
    )
    .bind(i64::from(change.must_change()))
    .bind(principal_id)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "principal {principal_id} does not exist"
        )));
    }
    sqlx::query(
        "INSERT INTO credentials (id, principal_id, kind, secret_hash, expires_at, revoked_at, created_at)
         VALUES ($1, $2, 'password', $3, NULL, NULL, $4)
         ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash,
           expires_at = NULL, revoked_at = NULL, created_at = excluded.created_at",
    )
    .bind(format!("password:{principal_id}"))
    .bind(principal_id)
    .bind(secret_hash)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(revoke_logins(tx, principal_id, change.reason()).await?)
}

/// What the check of a user's current password read, which must still hold when the new one
/// is stored ([`Metadata::change_password_if_unchanged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedPassword<'a> {
    /// The hash the current password was verified against.
    pub secret_hash: &'a str,
    /// The principal's `authz_epoch`, read before that hash.
    pub authz_epoch: i64,
}

impl Metadata {
    /// Stores `secret_hash` (an argon2id PHC string) as `principal_id`'s password
    /// (`password:<id>`, replacing and un-revoking any earlier one), sets its must-change state
    /// from `change`, bumps its epoch and revokes its refresh-token families, appending `records`,
    /// in one transaction. Returns how many logins (refresh-token families) were revoked. Fails
    /// with [`StoreError::Conflict`] if the principal does not exist.
    pub async fn replace_password(
        &self,
        principal_id: i64,
        secret_hash: &str,
        change: PasswordChange,
        records: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = store_password(&mut tx, principal_id, secret_hash, change).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// An access-admin's reset: like [`Metadata::replace_password`] with
    /// [`PasswordChange::Reset`], but `check` is first given the role names bound to the
    /// principal, read inside the same transaction (so a grant cannot land between the check and
    /// the write); if it refuses, nothing is written and its error is returned as `Ok(Err(_))`.
    pub async fn reset_password_checked<E>(
        &self,
        principal_id: i64,
        secret_hash: &str,
        check: impl FnOnce(&[String]) -> Result<(), E>,
        records: &[AuditRecord],
    ) -> Result<Result<u64, E>, StoreError> {
        let mut tx = self.begin_write().await?;
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT role FROM role_bindings WHERE principal_id = $1 ORDER BY id",
        )
        .bind(principal_id)
        .fetch_all(&mut *tx)
        .await?;
        if let Err(refusal) = check(&roles) {
            return Ok(Err(refusal));
        }
        let revoked =
            store_password(&mut tx, principal_id, secret_hash, PasswordChange::Reset).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(Ok(revoked))
    }

    /// A user's own change of their password, verified against `verified` (what the check of
    /// the current password read): like [`Metadata::replace_password`] with
    /// [`PasswordChange::ByUser`], but only if, inside the same transaction, the principal's
    /// `authz_epoch` is still `verified.authz_epoch`, it is not disabled, and its password
    /// credential still has hash `verified.secret_hash` and is not revoked. Otherwise nothing is
    /// written and `Ok(None)` is returned: a reset, a revocation, a disabling or another change
    /// that landed while the new password was hashed is never undone. Returns how many logins
    /// were revoked.
    pub async fn change_password_if_unchanged(
        &self,
        principal_id: i64,
        verified: &VerifiedPassword<'_>,
        secret_hash: &str,
        records: &[AuditRecord],
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.begin_write().await?;
        // fetch_all, as every single-row read here (see ARCHITECTURE.md on WAL snapshots).
        let current: Vec<(i64, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT p.authz_epoch, p.disabled, c.secret_hash, c.revoked_at
             FROM principals p JOIN credentials c ON c.principal_id = p.id
             WHERE p.id = $1 AND c.id = $2 AND c.kind = 'password'",
        )
        .bind(principal_id)
        .bind(format!("password:{principal_id}"))
        .fetch_all(&mut *tx)
        .await?;
        let unchanged = current
            .first()
            .is_some_and(|(epoch, disabled, hash, revoked_at)| {
                *epoch == verified.authz_epoch
                    && *disabled == 0
                    && hash == verified.secret_hash
                    && revoked_at.is_none()
            });
        if !unchanged {
            return Ok(None);
        }
        let revoked =
            store_password(&mut tx, principal_id, secret_hash, PasswordChange::ByUser).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    /// Enables a disabled principal and bumps its epoch, appending `records`. Returns `false`
    /// (and changes nothing) if it does not exist or is not disabled.
    pub async fn enable_principal(
        &self,
        id: i64,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE principals SET disabled = 0, authz_epoch = authz_epoch + 1
             WHERE id = $1 AND disabled = 1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Vec<(crate::testing::TestStore, i64)> {
        let mut out = Vec::new();
        for metadata in crate::testing::engines().await {
            let principal = metadata
                .create_principal("alice", "user", "admin", &[])
                .await
                .unwrap();
            out.push((metadata, principal.id));
        }
        out
    }

    #[tokio::test]
    async fn a_reset_sets_must_change_bumps_the_epoch_and_revokes_every_login() {
        for (metadata, id) in store().await {
            metadata
                .replace_password(
                    id,
                    "h1",
                    PasswordChange::Initial { must_change: false },
                    &[],
                )
                .await
                .unwrap();
            let later = now_millis() + 60_000;
            for family in ["f1", "f2"] {
                metadata
                    .start_refresh_family(family, id, &format!("password:{id}"), family, later)
                    .await
                    .unwrap();
            }
            let before = metadata.principal_by_id(id).await.unwrap().unwrap();
            assert!(!before.password_must_change);
            let revoked = metadata
                .replace_password(id, "h2", PasswordChange::Reset, &[])
                .await
                .unwrap();
            assert_eq!(revoked, 2);
            let after = metadata.principal_by_id(id).await.unwrap().unwrap();
            assert!(after.password_must_change);
            assert!(after.authz_epoch > before.authz_epoch);
            assert!(!metadata.refresh_family_live("f1").await.unwrap());
            assert!(!metadata.refresh_family_live("f2").await.unwrap());
            let credential = metadata
                .credential(&format!("password:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(credential.secret_hash, "h2");

            // The user's own change clears the state.
            metadata
                .replace_password(id, "h3", PasswordChange::ByUser, &[])
                .await
                .unwrap();
            let changed = metadata.principal_by_id(id).await.unwrap().unwrap();
            assert!(!changed.password_must_change);
            assert!(changed.authz_epoch > after.authz_epoch);
        }
    }

    /// What the check of the current password reads: the epoch, then the hash.
    async fn verify(metadata: &Metadata, id: i64) -> (String, i64) {
        let epoch = metadata
            .principal_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .authz_epoch;
        let hash = metadata
            .credential(&format!("password:{id}"))
            .await
            .unwrap()
            .unwrap()
            .secret_hash;
        (hash, epoch)
    }

    async fn with_password(hash: &str) -> Vec<(crate::testing::TestStore, i64)> {
        let mut out = Vec::new();
        for (metadata, id) in store().await {
            metadata
                .replace_password(
                    id,
                    hash,
                    PasswordChange::Initial { must_change: false },
                    &[],
                )
                .await
                .unwrap();
            out.push((metadata, id));
        }
        out
    }

    #[tokio::test]
    async fn a_change_verified_before_a_reset_is_refused_and_the_reset_kept() {
        for (metadata, id) in with_password("h1").await {
            let (hash, authz_epoch) = verify(&metadata, id).await;
            // An access-admin resets while the change hashes its new password.
            metadata
                .replace_password(id, "reset", PasswordChange::Reset, &[])
                .await
                .unwrap();
            let verified = VerifiedPassword {
                secret_hash: &hash,
                authz_epoch,
            };
            let stale = metadata
                .change_password_if_unchanged(id, &verified, "h2", &[])
                .await
                .unwrap();
            assert_eq!(stale, None);
            let principal = metadata.principal_by_id(id).await.unwrap().unwrap();
            assert!(principal.password_must_change, "the reset is kept");
            let credential = metadata
                .credential(&format!("password:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(credential.secret_hash, "reset");
        }
    }

    #[tokio::test]
    async fn a_change_verified_before_a_revocation_or_disabling_is_refused() {
        for (metadata, id) in with_password("h1").await {
            let (hash, authz_epoch) = verify(&metadata, id).await;
            metadata
                .revoke_credential(&format!("password:{id}"), &[])
                .await
                .unwrap();
            let verified = VerifiedPassword {
                secret_hash: &hash,
                authz_epoch,
            };
            assert_eq!(
                metadata
                    .change_password_if_unchanged(id, &verified, "h2", &[])
                    .await
                    .unwrap(),
                None
            );
            let credential = metadata
                .credential(&format!("password:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert!(credential.revoked_at.is_some(), "still revoked");
            assert_eq!(credential.secret_hash, "h1");
            // Even with the epoch seen after the revocation, a revoked password is not revived.
            let (_, epoch) = verify(&metadata, id).await;
            let verified = VerifiedPassword {
                secret_hash: &hash,
                authz_epoch: epoch,
            };
            assert_eq!(
                metadata
                    .change_password_if_unchanged(id, &verified, "h2", &[])
                    .await
                    .unwrap(),
                None
            );
        }
        for (metadata, id) in with_password("h1").await {
            let (hash, authz_epoch) = verify(&metadata, id).await;
            assert!(metadata.disable_principal(id, &[]).await.unwrap());
            let verified = VerifiedPassword {
                secret_hash: &hash,
                authz_epoch,
            };
            assert_eq!(
                metadata
                    .change_password_if_unchanged(id, &verified, "h2", &[])
                    .await
                    .unwrap(),
                None
            );
            let credential = metadata
                .credential(&format!("password:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(credential.secret_hash, "h1");
        }
    }

    #[tokio::test]
    async fn an_unchanged_password_is_changed_once() {
        for (metadata, id) in with_password("h1").await {
            let (hash, authz_epoch) = verify(&metadata, id).await;
            let verified = VerifiedPassword {
                secret_hash: &hash,
                authz_epoch,
            };
            assert_eq!(
                metadata
                    .change_password_if_unchanged(id, &verified, "h2", &[])
                    .await
                    .unwrap(),
                Some(0)
            );
            let credential = metadata
                .credential(&format!("password:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(credential.secret_hash, "h2");
            // The same verification cannot be used twice.
            assert_eq!(
                metadata
                    .change_password_if_unchanged(id, &verified, "h3", &[])
                    .await
                    .unwrap(),
                None
            );
        }
    }

    #[tokio::test]
    async fn a_reset_checks_the_roles_bound_when_it_writes() {
        for (metadata, id) in with_password("h1").await {
            // The reset's first look saw no roles; access-admin is granted before it writes.
            metadata
                .add_binding(id, "access-admin", "*", None, "root", &[])
                .await
                .unwrap();
            let refused = metadata
                .reset_password_checked(
                    id,
                    "reset",
                    |roles| {
                        if roles.iter().any(|r| r == "access-admin") {
                            Err("an access-admin")
                        } else {
                            Ok(())
                        }
                    },
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(refused, Err("an access-admin"));
            let principal = metadata.principal_by_id(id).await.unwrap().unwrap();
            assert!(!principal.password_must_change);
            let credential = metadata
                .credential(&format!("password:{id}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(credential.secret_hash, "h1");

            let done = metadata
                .reset_password_checked(id, "reset", |_| Ok::<(), ()>(()), &[])
                .await
                .unwrap();
            assert_eq!(done, Ok(0));
            assert!(
                metadata
                    .principal_by_id(id)
                    .await
                    .unwrap()
                    .unwrap()
                    .password_must_change
            );
        }
    }

    #[tokio::test]
    async fn a_password_for_an_unknown_principal_is_a_conflict_and_stores_nothing() {
        for (metadata, _) in store().await {
            let err = metadata
                .replace_password(999, "h", PasswordChange::ByUser, &[])
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err}");
            assert!(metadata.credential("password:999").await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn disable_revokes_logins_and_enable_does_not_revive_them() {
        for (metadata, id) in store().await {
            let later = now_millis() + 60_000;
            metadata
                .start_refresh_family("f1", id, "password:1", "t1", later)
                .await
                .unwrap();
            let epoch = metadata
                .principal_by_id(id)
                .await
                .unwrap()
                .unwrap()
                .authz_epoch;
            assert!(
                !metadata.enable_principal(id, &[]).await.unwrap(),
                "not disabled"
            );
            assert!(metadata.disable_principal(id, &[]).await.unwrap());
            assert!(!metadata.refresh_family_live("f1").await.unwrap());
            assert!(metadata.enable_principal(id, &[]).await.unwrap());
            let enabled = metadata.principal_by_id(id).await.unwrap().unwrap();
            assert!(!enabled.disabled);
            assert_eq!(enabled.authz_epoch, epoch + 2);
            assert!(!metadata.refresh_family_live("f1").await.unwrap());
            assert!(!metadata.enable_principal(999, &[]).await.unwrap());
        }
    }

    /// Migration 0013 applied to a database at 0012 with principals in it keeps them, with no
    /// password to change, and the column works at once.
    #[tokio::test]
    async fn migration_0013_applies_over_a_populated_0012_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(12, &pool)
                .await
                .unwrap();
            for sql in [
                "INSERT INTO principals (id, name, kind, disabled, authz_epoch, created_at, created_by) VALUES (1, 'admin', 'user', 0, 4, 1, 'bootstrap')",
                "INSERT INTO principals (id, name, kind, disabled, authz_epoch, created_at, created_by) VALUES (2, 'gone', 'user', 1, 2, 1, 'admin')",
                "INSERT INTO credentials (id, principal_id, kind, secret_hash, created_at) VALUES ('password:1', 1, 'password', 'h', 1)",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        let metadata = Metadata::open_sqlite(&path).await.unwrap();
        let admin = metadata.principal_by_name("admin").await.unwrap().unwrap();
        assert_eq!((admin.authz_epoch, admin.password_must_change), (4, false));
        let gone = metadata.principal_by_name("gone").await.unwrap().unwrap();
        assert!(gone.disabled && !gone.password_must_change);
        metadata
            .replace_password(1, "h2", PasswordChange::Reset, &[])
            .await
            .unwrap();
        assert!(
            metadata
                .principal_by_id(1)
                .await
                .unwrap()
                .unwrap()
                .password_must_change
        );
        assert!(metadata.enable_principal(2, &[]).await.unwrap());
    }
}
