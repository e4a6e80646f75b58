//! Deploy tokens: pull-only access tokens for named repositories, for a cluster's
//! `imagePullSecret` (`airlock deploy-token`).
//!
//! A deploy token is an access token (`auth` claim `deploy`) whose `access` lists `pull` on
//! exactly the repositories asked for, each of which its principal may pull from now. It carries
//! the principal's `authz_epoch`, credential and login (refresh-token family) like any token, so
//! a role change, a revoked password or API key, or a revoked login ends it at once; and it never
//! outlives its `exp`:
//! - as a bearer token on `/v2` it allows what its `access` lists and nothing else;
//! - as the password of Basic credentials (what a container runtime sends from a Docker config),
//!   the token endpoint exchanges it for a token holding the requested part of its `access`,
//!   expiring no later than it does, with no refresh token; `/v2` accepts it the same way;
//! - the JSON API and the console refuse it (`access::api_caller`): it carries its principal's
//!   roles, and must not act with them.

use airlock_core::access::RequestedScope;
use airlock_core::{AuditEvent, RepoName};
use airlock_identity::{AccessClaims, AccessEntry, TokenKind};
use airlock_store::now_millis;

use super::tokens::IssuedTokens;
use super::{
    AuthError, Authenticated, Counts, Identity, TOKEN_ISSUER, TOKEN_SERVICE, now_secs, record,
};

/// The `auth` claim of a deploy token.
pub const DEPLOY_AUTH: &str = "deploy";

/// A deploy token as issued (`Debug` shows no token).
pub struct DeployToken {
    /// The token.
    pub token: String,
    /// Its id (the `jti`), as the audit log names it.
    pub id: String,
    /// When it expires (ms).
    pub expires_at_millis: i64,
}

impl std::fmt::Debug for DeployToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployToken")
            .field("token", &"<redacted>")
            .field("id", &self.id)
            .field("expires_at_millis", &self.expires_at_millis)
            .finish()
    }
}

/// Whether `secret` has the shape of a signed token (three base64url parts, a JSON header), so a
/// Basic password is checked as a deploy token rather than a password. No password policy-valid
/// password is refused by this: one that happens to look like a token still fails as a token.
pub fn looks_like_token(secret: &str) -> bool {
    secret.starts_with("eyJ")
        && secret.split('.').count() == 3
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Identity {
    /// Issues a deploy token for `who` pulling from `repositories` for `ttl_secs`, and records
    /// `deploy_token.issued`. The caller checked that `who` may pull from each and that the
    /// lifetime is within bounds; a caller that is itself a deploy token is refused here.
    pub async fn issue_deploy_token(
        &self,
        who: &Authenticated,
        repositories: &[RepoName],
        ttl_secs: u64,
        source: Option<std::net::SocketAddr>,
    ) -> Result<DeployToken, AuthError> {
        if is_deploy_token(who) {
            return Err(AuthError::Invalid(
                "a deploy token cannot issue deploy tokens; log in with your own credentials"
                    .into(),
            ));
        }
        let now = now_secs();
        let id = uuid::Uuid::new_v4().to_string();
        let claims = AccessClaims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_SERVICE.into(),
            sub: who.principal.name.clone(),
            exp: now + ttl_secs,
            nbf: now,
            iat: now,
            jti: id.clone(),
            access: repositories
                .iter()
                .map(|repo| AccessEntry {
                    resource_type: "repository".into(),
                    name: repo.to_string(),
                    actions: vec!["pull".into()],
                })
                .collect(),
            epoch: who.principal.authz_epoch as u64,
            auth: DEPLOY_AUTH.into(),
            kind: TokenKind::Access,
            cred: who.credential.clone(),
            fam: who.refresh_family.clone(),
        };
        let token = self.token_keys.issue(&claims).map_err(AuthError::Signing)?;
        let expires_at_millis = (claims.exp as i64) * 1000;
        self.metadata
            .record_events(&[record(
                &who.actor(source),
                AuditEvent::DeployTokenIssued {
                    principal: who.principal.name.clone(),
                    id: id.clone(),
                    repositories: repositories.iter().map(|r| r.to_string()).collect(),
                    expires_at_millis,
                },
            )])
            .await?;
        Ok(DeployToken {
            token,
            id,
            expires_at_millis,
        })
    }

    /// Authenticates Basic credentials whose password is a deploy token of `user`.
    pub async fn authenticate_deploy_token(
        &self,
        user: &str,
        token: &str,
        source: Option<std::net::SocketAddr>,
    ) -> Result<Authenticated, AuthError> {
        let who = self.authenticate_token(token, source).await?;
        if !is_deploy_token(&who) || who.principal.name != user {
            return Err(self
                .fail(
                    user,
                    None,
                    source,
                    "a token as a password must be a deploy token of the user named with it",
                    Counts::SourceOnly,
                )
                .await);
        }
        Ok(who)
    }

    /// The token endpoint's answer to Basic credentials whose password is a deploy token: the
    /// requested part of its access, expiring when it does, without a refresh token.
    pub async fn exchange_deploy_token(
        &self,
        user: &str,
        token: &str,
        requested: &[RequestedScope],
        source: Option<std::net::SocketAddr>,
    ) -> Result<IssuedTokens, AuthError> {
        let who = self.authenticate_deploy_token(user, token, source).await?;
        let parent = self
            .token_keys
            .verify_fresh(token, now_secs(), TokenKind::Access)
            .await
            .map_err(|err| AuthError::Invalid(format!("token rejected: {err}")))?;
        let held = who.token_access.clone().unwrap_or_default();
        let access =
            airlock_core::access::grant_scopes(requested, &who.grants, &self.stages, now_millis())
                .into_iter()
                .filter_map(|granted| {
                    let allowed = held.iter().find(|h| {
                        h.resource_type == granted.resource_type && h.name == granted.name
                    })?;
                    let actions: Vec<String> = granted
                        .actions
                        .into_iter()
                        .filter(|a| allowed.actions.contains(a))
                        .collect();
                    (!actions.is_empty()).then_some(AccessEntry {
                        resource_type: granted.resource_type,
                        name: granted.name,
                        actions,
                    })
                })
                .collect();
        let now = now_secs();
        let exp = (now + self.config.token_lifetime_secs).min(parent.exp);
        let claims = AccessClaims {
            iss: TOKEN_ISSUER.into(),
            aud: TOKEN_SERVICE.into(),
            sub: who.principal.name.clone(),
            exp,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
            epoch: who.principal.authz_epoch as u64,
            auth: DEPLOY_AUTH.into(),
            kind: TokenKind::Access,
            cred: parent.cred,
            fam: parent.fam,
        };
        let access = self.token_keys.issue(&claims).map_err(AuthError::Signing)?;
        Ok(IssuedTokens {
            access,
            refresh: None,
            expires_in: exp.saturating_sub(now),
        })
    }
}

/// Whether `who` authenticated with a deploy token.
pub fn is_deploy_token(who: &Authenticated) -> bool {
    who.method == format!("token:{DEPLOY_AUTH}")
}

#[cfg(test)]
mod tests {
    use super::looks_like_token;

    #[test]
    fn only_three_base64url_parts_with_a_json_header_look_like_a_token() {
        assert!(looks_like_token(
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkb3JhIn0.c2ln-_"
        ));
        assert!(!looks_like_token("correct horse battery staple"));
        assert!(!looks_like_token(
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkb3JhIn0"
        ));
        assert!(!looks_like_token("eyJ.a.b c"));
        assert!(!looks_like_token("alk_0123_secret"));
    }
}
