//! Web console sessions: sign-in with a password, the checks every request of a session makes,
//! and sign-out.
//!
//! A session is as strong as the token flow and no stronger: every request re-reads the
//! principal and refuses the session when the principal is disabled or locked, when its
//! authorization epoch moved since sign-in (a role granted or revoked, a password changed or
//! reset), or when the password it signed in with was revoked or expired. Sessions also end when
//! idle or old (`access.console_idle_timeout_secs`, `access.console_session_lifetime_secs`).

use airlock_core::{Actor, AuditEvent};
use airlock_identity::{NewSession, SessionTimeouts, session_id_of};
use airlock_store::{ConsoleSessionRow, now_millis};

use super::{AuthError, Authenticated, Identity, barred, record};

/// How a console session authenticates, in audit entries (`auth_method`).
pub const SESSION_AUTH: &str = "session";

/// The one answer to a cookie that signs nobody in, whatever the reason.
const NO_SESSION: &str = "no console session: sign in";

/// A signed-in console session: who, and the session's stored row (its CSRF token).
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The principal, authenticated by the session (`method` is `session`).
    pub who: Authenticated,
    /// The stored session.
    pub row: ConsoleSessionRow,
}

impl Identity {
    fn console_timeouts(&self) -> SessionTimeouts {
        SessionTimeouts {
            idle_secs: self.config.console_idle_timeout_secs,
            absolute_secs: self.config.console_session_lifetime_secs,
        }
    }

    /// Signs `user` in to the console with a password: every check of the token flow (rate
    /// limit, one argon2id verification per refusal, failures counted), then a new session and
    /// its `session.started` audit entry in one transaction. API keys are for automation and do
    /// not sign in here. Returns the cookie to set.
    pub async fn start_console_session(
        &self,
        user: &str,
        password: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(NewSession, ConsoleSession), AuthError> {
        let who = self.authenticate_secret(user, password, source).await?;
        let credential = match (&who.credential, who.method.as_str()) {
            (Some(credential), "password") => credential.clone(),
            _ => {
                return Err(AuthError::Invalid(
                    "sign in to the console with a password; API keys are for automation".into(),
                ));
            }
        };
        self.open_console_session(who, credential, source).await
    }

    /// Opens a console session for `who`, signed in with `credential` (`password:<id>`, or
    /// `oidc:<issuer>`), with its `session.started` audit entry, in one transaction.
    pub(super) async fn open_console_session(
        &self,
        who: Authenticated,
        credential: String,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(NewSession, ConsoleSession), AuthError> {
        let session = NewSession::generate();
        let now = now_millis();
        let row = ConsoleSessionRow {
            id_sha256: session.id_sha256.clone(),
            principal_id: who.principal.id,
            credential_id: credential,
            authz_epoch: who.principal.authz_epoch,
            csrf_token: session.csrf_token.clone(),
            created_at: now,
            last_seen_at: now,
        };
        let actor = Actor {
            principal: who.principal.name.clone(),
            auth_method: SESSION_AUTH.into(),
            source: source.map(|s| s.to_string()),
        };
        let forget_before = now - (self.config.console_idle_timeout_secs as i64) * 1000;
        self.metadata
            .start_console_session(
                &row,
                forget_before,
                &[record(
                    &actor,
                    AuditEvent::SessionStarted {
                        principal: who.principal.name.clone(),
                    },
                )],
            )
            .await?;
        let who = Authenticated {
            method: SESSION_AUTH.into(),
            ..who
        };
        Ok((session, ConsoleSession { who, row }))
    }

    /// The session a console cookie names, checked as every request checks it. A session that
    /// expired, or whose principal or password changed, is forgotten and refused.
    pub async fn console_session(&self, cookie: &str) -> Result<ConsoleSession, AuthError> {
        let refused = || AuthError::Invalid(NO_SESSION.into());
        let Some(id) = session_id_of(cookie) else {
            return Err(refused());
        };
        let Some(row) = self.metadata.console_session(&id).await? else {
            return Err(refused());
        };
        let now = now_millis();
        if let Err(expired) = self
            .console_timeouts()
            .check(row.created_at, row.last_seen_at, now)
        {
            self.metadata.end_console_session(&id, &[]).await?;
            return Err(AuthError::Invalid(expired.to_string()));
        }
        let principal = self.metadata.principal_by_id(row.principal_id).await?;
        let usable = match &principal {
            Some(principal) => {
                barred(principal).is_none()
                    && principal.authz_epoch == row.authz_epoch
                    && !principal.password_must_change
                    && if row.credential_id.starts_with("oidc:") {
                        self.oidc_credential_live(&row.credential_id)
                    } else {
                        self.credential_live(&row.credential_id, principal.id)
                            .await?
                    }
            }
            None => false,
        };
        let Some(principal) = principal.filter(|_| usable) else {
            self.metadata.end_console_session(&id, &[]).await?;
            return Err(AuthError::Invalid(
                "your access changed since you signed in (a role, your password, or the account itself): sign in again".into(),
            ));
        };
        self.metadata.touch_console_session(&id, now).await?;
        let who = self
            .authenticated(
                principal,
                SESSION_AUTH.into(),
                Some(row.credential_id.clone()),
                None,
                None,
            )
            .await?;
        Ok(ConsoleSession { who, row })
    }

    /// Ends `session` (sign-out) with its `session.ended` audit entry.
    pub async fn end_console_session(
        &self,
        session: &ConsoleSession,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(), AuthError> {
        let actor = session.who.actor(source);
        self.metadata
            .end_console_session(
                &session.row.id_sha256,
                &[record(
                    &actor,
                    AuditEvent::SessionEnded {
                        principal: session.who.principal.name.clone(),
                    },
                )],
            )
            .await?;
        Ok(())
    }
}
