//! A user's account after it was created: changing one's own password, an access-admin's reset,
//! and enabling a disabled principal again.
//!
//! What holds:
//! - Changing a password needs the current one, checked exactly like a login
//!   ([`Identity::verify_secret`]: the rate limiter, one argon2id verification per refusal, one
//!   message for every refusal, and a wrong current password recorded as `auth.failed` and
//!   counted by the `auth_failures` anomaly rule). It is the one thing a password waiting to be
//!   changed (reset, or generated at installation) can authenticate.
//! - Every new password satisfies the password policy ([`airlock_identity::PasswordPolicy`]),
//!   and a change must differ from the current password.
//! - A change or a reset ends every login and token of the user (epoch bump and refresh-token
//!   families revoked, in the transaction that stores the new hash and its audit entry): the
//!   request that changes a password is authenticated by the current password, not by a session,
//!   so there is no session to keep; `airlock users passwd` logs in again with the new password.
//! - A reset is an access-admin's, never of their own password nor another access-admin's
//!   ([`airlock_core::access::check_password_reset`]), only of a user (service accounts have API
//!   keys), and leaves the password waiting to be changed.
//! - Once `admin`'s password is changed or reset, `<data_dir>/initial-admin-password` (the
//!   generated installation password) is removed, and the log says so.
//! - Enabling needs `ManageAccess` and does not revive the logins and tokens disabling ended.

use airlock_core::access::{Permission, PermissionTarget, Role};
use airlock_core::{Actor, AuditEvent};
use airlock_store::VerifiedPassword;

use super::secrets::Verified;
use super::{AuthError, Authenticated, Identity, PasswordFailure, hash_password, record};

/// Added to the audit reason of a refused password change.
const CHANGING: &str = "changing the password";

impl Identity {
    /// Changes user `name`'s password from `current` to `new`, for a caller at `source` who
    /// proves `current` (see the module docs).
    pub async fn change_own_password(
        &self,
        name: &str,
        current: &str,
        new: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(), AuthError> {
        let Verified {
            principal,
            method,
            secret_hash: verified_hash,
            ..
        } = self
            .verify_secret(name, current, source, Some(CHANGING))
            .await?;
        if method != "password" {
            return Err(AuthError::NoPassword {
                name: principal.name.clone(),
            });
        }
        self.policy.check(&principal.name, new)?;
        if new == current {
            return Err(AuthError::SamePassword);
        }
        let hash = hash_password(new).await?;
        let actor = Actor {
            principal: principal.name.clone(),
            auth_method: "password".into(),
            source: source.map(|s| s.to_string()),
        };
        // Stored only if nothing changed since the current password was verified (a reset, a
        // revocation, a disabling or another change while argon2 ran is never undone).
        let verified = VerifiedPassword {
            secret_hash: &verified_hash,
            authz_epoch: principal.authz_epoch,
        };
        let changed = self
            .metadata
            .change_password_if_unchanged(
                principal.id,
                &verified,
                &hash,
                &[record(
                    &actor,
                    AuditEvent::PasswordChanged {
                        principal: principal.name.clone(),
                    },
                )],
            )
            .await?;
        if changed.is_none() {
            return Err(AuthError::Conflict(
                "the password changed meanwhile (reset, revoked, or the user disabled); try again"
                    .into(),
            ));
        }
        self.forget_verified();
        self.remove_initial_password_file(&principal.name);
        Ok(())
    }

    /// An access-admin resets user `name`'s password to `password`, or to a generated one that
    /// is returned (shown once). The user must change it before using it for anything else.
    pub async fn reset_password(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
        password: Option<String>,
    ) -> Result<Option<String>, AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let principal = self.principal(name).await?;
        if principal.kind != "user" {
            return Err(AuthError::NoPassword { name: name.into() });
        }
        let roles: Vec<Role> = self
            .grants(&principal)
            .await?
            .into_iter()
            .map(|g| g.role)
            .collect();
        airlock_core::access::check_password_reset(&who.principal.name, name, &roles)?;
        if let Some(password) = &password {
            self.policy.check(name, password)?;
        }
        let generated = password.is_none();
        let password = match password {
            Some(password) => password,
            None => self
                .policy
                .generate(name)
                .map_err(PasswordFailure::Generate)?,
        };
        let hash = hash_password(&password).await?;
        // Checked again on the roles bound when the new hash is written, in that transaction: a
        // grant of access-admin that landed since the check above is not slipped past.
        let resetter = who.principal.name.as_str();
        self.metadata
            .reset_password_checked(
                principal.id,
                &hash,
                |bound: &[String]| {
                    let roles: Vec<Role> = bound.iter().filter_map(|r| r.parse().ok()).collect();
                    airlock_core::access::check_password_reset(resetter, name, &roles)
                },
                &[record(
                    actor,
                    AuditEvent::PasswordReset {
                        principal: name.into(),
                        generated,
                    },
                )],
            )
            .await??;
        self.forget_verified();
        self.remove_initial_password_file(name);
        Ok(generated.then_some(password))
    }

    /// Enables a disabled principal again. Its logins and tokens from before stay revoked.
    pub async fn enable(
        &self,
        who: &Authenticated,
        actor: &Actor,
        name: &str,
    ) -> Result<(), AuthError> {
        self.require(who, Permission::ManageAccess, &PermissionTarget::Global)?;
        let principal = self.principal(name).await?;
        if !self
            .metadata
            .enable_principal(
                principal.id,
                &[record(
                    actor,
                    AuditEvent::PrincipalEnabled {
                        principal: name.into(),
                    },
                )],
            )
            .await?
        {
            return Err(AuthError::Conflict(format!("{name} is not disabled")));
        }
        self.forget_verified();
        Ok(())
    }

    /// Drops every cached password or API key check, so the next use checks again.
    fn forget_verified(&self) {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Removes the generated installation password once `admin`'s password was replaced.
    fn remove_initial_password_file(&self, name: &str) {
        if name != "admin" {
            return;
        }
        let path = &self.initial_password_file;
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "admin's password was changed; removed the file holding the initial one"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "admin's password was changed, but the file holding the initial one could not be removed; delete it"
            ),
        }
    }
}
