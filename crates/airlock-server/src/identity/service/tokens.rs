//! Tokens: issuing access and refresh tokens, checking them on every use, and rotating refresh
//! tokens.
//!
//! What holds for every token use:
//! - the JWT checks of [`airlock_identity::TokenVerifier`] (signature, EdDSA only, issuer,
//!   audience, time window, kind);
//! - the principal exists, is neither disabled nor locked, has no reset password waiting to be
//!   changed (for a token from a password login), and its `authz_epoch` is the token's;
//! - the credential the token descends from (its `cred` claim: the password or API key of the
//!   login) still exists, belongs to the principal, and is neither expired nor revoked; only a
//!   token from an OIDC exchange (`auth = oidc`) has none;
//! - a token that descends from a refresh-token family (its `fam` claim) is refused once that
//!   family is revoked.
//!
//! Refresh tokens rotate: [`Identity::refresh`] spends the presented token and returns its
//! successor in the same family; a spent token presented again revokes the family and counts as
//! a failed authentication (`auth.failed`, and the `auth_failures` anomaly signal).

use airlock_core::access::{GrantedAccess, RequestedScope};
use airlock_identity::{AccessClaims, AccessEntry, TokenKind};
use airlock_store::{PrincipalRow, RefreshRotation, now_millis};

use super::{
    AuthError, Authenticated, Counts, Identity, TOKEN_ISSUER, TOKEN_SERVICE, barred, now_secs,
};

/// The tokens of one answer of the token endpoint (`Debug` shows no token).
pub struct IssuedTokens {
    /// The access token.
    pub access: String,
    /// The refresh token, when one was asked for or a refresh token was exchanged.
    pub refresh: Option<String>,
    /// The access token's lifetime in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access", &"<redacted>")
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The `auth` claim of tokens from an OIDC exchange, the only tokens without a credential.
const OIDC_AUTH: &str = "oidc";

impl Identity {
    /// Verifies an access token and everything it descends from (see the module docs).
    pub async fn authenticate_token(
        &self,
        token: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<Authenticated, AuthError> {
        let (claims, principal) = self.check_token(token, TokenKind::Access, source).await?;
        if let Some(family) = &claims.fam
            && !self.metadata.refresh_family_live(family).await?
        {
            return Err(self
                .fail(
                    &claims.sub,
                    None,
                    source,
                    "token of a revoked login (one of its refresh tokens was reused); log in again",
                    Counts::Nothing,
                )
                .await);
        }
        self.authenticated(
            principal,
            format!("token:{}", claims.auth),
            claims.cred,
            claims.fam,
            Some(claims.access),
        )
        .await
    }

    /// Exchanges refresh token `token` for an access token holding the granted subset of
    /// `requested` and the refresh token that replaces it. The presented token is spent; presented
    /// again, it revokes every refresh token of its login.
    pub async fn refresh(
        &self,
        token: &str,
        requested: &[RequestedScope],
        source: Option<std::net::SocketAddr>,
    ) -> Result<IssuedTokens, AuthError> {
        let (claims, principal) = self.check_token(token, TokenKind::Refresh, source).await?;
        // Read before the token is spent: a storage error here leaves it unspent, so the
        // client's retry is not taken for a reuse (which would revoke its login).
        let grants = self.grants(&principal).await?;
        let next_jti = uuid::Uuid::new_v4().to_string();
        let expires_at = now_millis() + (self.config.refresh_lifetime_secs as i64) * 1000;
        let refusal = match self
            .metadata
            .rotate_refresh_token(&claims.jti, &next_jti, expires_at)
            .await?
        {
            RefreshRotation::Rotated {
                family,
                credential_id,
            } => {
                if claims.cred.as_deref() != Some(credential_id.as_str()) {
                    // Signed by this server, so never expected: refuse rather than guess.
                    ("refresh token does not match its login", Counts::SourceOnly)
                } else {
                    if !credential_id.starts_with("password:") {
                        self.note_api_key_use(&credential_id);
                    }
                    let who = Authenticated {
                        principal,
                        method: format!("token:{}", claims.auth),
                        grants,
                        token_access: None,
                        credential: claims.cred,
                        refresh_family: Some(family.clone()),
                    };
                    return self.sign_tokens(&who, requested, Some((next_jti, family)));
                }
            }
            RefreshRotation::Reused { .. } => (
                "refresh token reused: it was exchanged before, so every refresh token of its login is revoked; log in again",
                Counts::PrincipalAndSource,
            ),
            RefreshRotation::Revoked => (
                "refresh token revoked (a refresh token of its login was reused); log in again",
                Counts::Nothing,
            ),
            RefreshRotation::Unknown => (
                "refresh token unknown to this server; log in again",
                Counts::SourceOnly,
            ),
        };
        let (reason, counts) = refusal;
        Err(self.fail(&claims.sub, None, source, reason, counts).await)
    }

    /// The checks every token use shares: the JWT, the principal (exists, not barred, same
    /// epoch) and the credential the token descends from.
    async fn check_token(
        &self,
        token: &str,
        kind: TokenKind,
        source: Option<std::net::SocketAddr>,
    ) -> Result<(AccessClaims, PrincipalRow), AuthError> {
        let claims = match self.token_keys.verify_fresh(token, now_secs(), kind).await {
            Ok(claims) => claims,
            Err(err) => {
                return Err(self
                    .fail(
                        "unknown",
                        None,
                        source,
                        &format!("token rejected: {err}"),
                        Counts::SourceOnly,
                    )
                    .await);
            }
        };
        let Some(principal) = self.metadata.principal_by_name(&claims.sub).await? else {
            return Err(self
                .fail(
                    &claims.sub,
                    None,
                    source,
                    "token for an unknown principal",
                    Counts::SourceOnly,
                )
                .await);
        };
        if let Some(reason) = barred(&principal) {
            self.fail(&claims.sub, None, source, &reason, Counts::Nothing)
                .await;
            return Err(AuthError::Barred(reason));
        }
        if principal.authz_epoch as u64 != claims.epoch {
            return Err(self
                .fail(
                    &claims.sub,
                    None,
                    source,
                    "token issued before a change to the principal's access; get a new one",
                    Counts::Nothing,
                )
                .await);
        }
        let credential_ok = match &claims.cred {
            Some(credential) => self.credential_live(credential, principal.id).await?,
            None => claims.auth == OIDC_AUTH,
        };
        if !credential_ok {
            return Err(self
                .fail(
                    &claims.sub,
                    None,
                    source,
                    "the password or API key this token descends from expired or was revoked; log in again",
                    Counts::Nothing,
                )
                .await);
        }
        // A reset bumps the epoch, so a token from before it failed above: this refuses only a
        // token somehow issued while the password waits to be changed.
        if principal.password_must_change && claims.auth == "password" {
            return Err(AuthError::PasswordChangeRequired {
                principal: principal.name,
            });
        }
        Ok((claims, principal))
    }

    /// Issues an access token for `who` holding the granted subset of `requested`, and with
    /// `with_refresh` a refresh token that starts a new family (a login with offline access;
    /// only for a caller that authenticated with a stored credential).
    pub async fn issue_tokens(
        &self,
        who: &Authenticated,
        requested: &[RequestedScope],
        with_refresh: bool,
    ) -> Result<IssuedTokens, AuthError> {
        let refresh = match (&who.credential, with_refresh) {
            (Some(credential), true) => {
                let family = uuid::Uuid::new_v4().to_string();
                let jti = uuid::Uuid::new_v4().to_string();
                let expires_at = now_millis() + (self.config.refresh_lifetime_secs as i64) * 1000;
                self.metadata
                    .start_refresh_family(&family, who.principal.id, credential, &jti, expires_at)
                    .await?;
                Some((jti, family))
            }
            _ => None,
        };
        self.sign_tokens(who, requested, refresh)
    }

    /// Signs the access token (and the refresh token `refresh`, its jti and family, if given).
    fn sign_tokens(
        &self,
        who: &Authenticated,
        requested: &[RequestedScope],
        refresh: Option<(String, String)>,
    ) -> Result<IssuedTokens, AuthError> {
        let granted: Vec<GrantedAccess> =
            airlock_core::access::grant_scopes(requested, &who.grants, &self.stages, now_millis());
        let access = granted
            .into_iter()
            .map(|g| AccessEntry {
                resource_type: g.resource_type,
                name: g.name,
                actions: g.actions,
            })
            .collect();
        let auth = who.method.trim_start_matches("token:").to_string();
        let family = refresh
            .as_ref()
            .map(|(_, family)| family.clone())
            .or_else(|| who.refresh_family.clone());
        let now = now_secs();
        let claims = |kind, lifetime: u64, jti: String, access| AccessClaims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_SERVICE.into(),
            sub: who.principal.name.clone(),
            exp: now + lifetime,
            nbf: now,
            iat: now,
            jti,
            access,
            epoch: who.principal.authz_epoch as u64,
            auth: auth.clone(),
            kind,
            cred: who.credential.clone(),
            fam: family.clone(),
        };
        let sign =
            |claims: &AccessClaims| self.token_keys.issue(claims).map_err(AuthError::Signing);
        let lifetime = self.config.token_lifetime_secs;
        let access = sign(&claims(
            TokenKind::Access,
            lifetime,
            uuid::Uuid::new_v4().to_string(),
            access,
        ))?;
        let refresh = match refresh {
            Some((jti, _)) => Some(sign(&claims(
                TokenKind::Refresh,
                self.config.refresh_lifetime_secs,
                jti,
                Vec::new(),
            ))?),
            None => None,
        };
        Ok(IssuedTokens {
            access,
            refresh,
            expires_in: lifetime,
        })
    }
}
