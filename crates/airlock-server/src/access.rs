//! The access check every registry request passes through before it reaches the registry service.
//!
//! With access control on (the default), a request must carry credentials: a bearer token from
//! `/auth/token` (the Docker registry token flow every OCI client speaks), or HTTP Basic with a
//! password or API key. Without them it gets `401` and a `WWW-Authenticate: Bearer realm=...,
//! service="airlock",scope="repository:<name>:<actions>"` challenge; with credentials that do not
//! allow the action it gets `403 DENIED`. With access control off every caller is anonymous.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_core::{Action, Actor, RepoName};
use axum::http::{HeaderMap, StatusCode, header};

use crate::identity::{AuthError, Authenticated, Identity};
use crate::oci::OciError;

/// What a request is allowed to do.
#[derive(Clone)]
pub struct AccessControl {
    identity: Option<Arc<Identity>>,
}

/// Credentials found in a request's `Authorization` header.
pub enum Credentials {
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic base64(user:secret)`.
    Basic(String, String),
}

/// Reads the `Authorization` header (strictly: unknown schemes and malformed values are errors).
pub fn credentials(headers: &HeaderMap) -> Result<Option<Credentials>, AuthError> {
    use base64::Engine as _;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("the Authorization header is not text".into()))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Ok(Some(Credentials::Bearer(rest.trim().to_string()))),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| AuthError::Invalid("malformed Basic credentials".into()))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| AuthError::Invalid("malformed Basic credentials".into()))?;
            let (user, secret) = text
                .split_once(':')
                .ok_or_else(|| AuthError::Invalid("malformed Basic credentials".into()))?;
            Ok(Some(Credentials::Basic(
                user.to_string(),
                secret.to_string(),
            )))
        }
        _ => Err(AuthError::Invalid(format!(
            "unsupported authorization scheme {scheme:?}; use Bearer or Basic"
        ))),
    }
}

/// Authenticates whatever credentials the request carries.
pub async fn authenticate(
    identity: &Identity,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Authenticated, AuthError> {
    match credentials(headers)? {
        None => Err(AuthError::Missing),
        Some(Credentials::Bearer(token)) => identity.authenticate_token(&token, peer).await,
        Some(Credentials::Basic(user, secret))
            if crate::identity::service::looks_like_token(&secret) =>
        {
            identity
                .authenticate_deploy_token(&user, &secret, peer)
                .await
        }
        Some(Credentials::Basic(user, secret)) => {
            identity.authenticate_secret(&user, &secret, peer).await
        }
    }
}

/// Authenticates a JSON API or identity request's credentials: as [`authenticate`], except
/// that a deploy token is refused (it pulls images only; it must not act with its principal's
/// roles).
pub async fn authenticate_api(
    identity: &Identity,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Authenticated, AuthError> {
    let who = authenticate(identity, headers, peer).await?;
    if crate::identity::service::is_deploy_token(&who) {
        return Err(AuthError::Invalid(
            "a deploy token pulls images only; the JSON API needs your own login (airlock login)"
                .into(),
        ));
    }
    Ok(who)
}

/// Who is calling a JSON API endpoint: the authenticated principal (`None` when access control
/// is off) and the audit actor.
pub async fn api_caller(
    identity: &Identity,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(Option<Authenticated>, airlock_core::Actor), AuthError> {
    if !identity.enabled() {
        return Ok((None, airlock_core::Actor::anonymous(Some(peer.to_string()))));
    }
    let who = authenticate_api(identity, headers, Some(peer)).await?;
    let actor = who.actor(Some(peer));
    Ok((Some(who), actor))
}

impl AccessControl {
    /// Open access: every request is anonymous and allowed (stage rules still apply).
    pub fn open() -> Self {
        Self { identity: None }
    }

    /// Access control by `identity` (open if its configuration disables it).
    pub fn with_identity(identity: Arc<Identity>) -> Self {
        if identity.enabled() {
            Self {
                identity: Some(identity),
            }
        } else {
            Self { identity: None }
        }
    }

    /// `GET /v2/`: any valid credentials pass; without them the answer is the `401` challenge that
    /// tells clients where to get tokens.
    pub async fn check_base(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<(), OciError> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        match authenticate(identity, headers, peer).await {
            Ok(_) => Ok(()),
            Err(AuthError::RateLimited) => Err(OciError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many failed authentications for this user or address; retry in a minute",
            )),
            Err(AuthError::Store(err)) => Err(crate::registry::RegistryError::Store(err).into()),
            Err(err) => {
                Err(
                    OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", err.to_string())
                        .with_header(header::WWW_AUTHENTICATE, base_challenge(identity)),
                )
            }
        }
    }

    /// Decides whether the request may perform `action` on `repo` (`None`: the registry as a
    /// whole, e.g. the catalog) and returns who it acts as, for the audit log.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        repo: Option<&RepoName>,
        action: Action,
    ) -> Result<Actor, OciError> {
        self.authorize_with_challenge(headers, peer, repo, action, None)
            .await
    }

    /// Like [`AccessControl::authorize`] for a push to `repo` that mounts a blob from `from`:
    /// the same decision, but a `401` challenge also asks for pull on `from` (as the CNCF
    /// distribution registry does), so a client that fetches a token for the challenge gets one
    /// that lets the mount happen. The mount itself is still checked against `from` separately.
    pub async fn authorize_mount(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        repo: &RepoName,
        from: &RepoName,
    ) -> Result<Actor, OciError> {
        self.authorize_with_challenge(headers, peer, Some(repo), Action::Push, Some(from))
            .await
    }

    async fn authorize_with_challenge(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        repo: Option<&RepoName>,
        action: Action,
        also_pull: Option<&RepoName>,
    ) -> Result<Actor, OciError> {
        let Some(identity) = &self.identity else {
            return Ok(Actor::anonymous(peer.map(|p| p.to_string())));
        };
        let challenge = |error: Option<&str>| challenge(identity, repo, action, also_pull, error);
        let who = match authenticate(identity, headers, peer).await {
            Ok(who) => who,
            Err(AuthError::Missing) => {
                return Err(OciError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required: log in (e.g. skopeo --creds, oras login, airlock login) or send a token from /auth/token",
                )
                .with_header(header::WWW_AUTHENTICATE, challenge(None)));
            }
            Err(AuthError::RateLimited) => {
                return Err(OciError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "too many failed authentications for this user or address; retry in a minute",
                ));
            }
            Err(AuthError::Store(err)) => {
                return Err(crate::registry::RegistryError::Store(err).into());
            }
            Err(err) => {
                return Err(OciError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    err.to_string(),
                )
                .with_header(header::WWW_AUTHENTICATE, challenge(Some("invalid_token"))));
            }
        };
        // Writes into a gated stage are refused for everyone by the stage rule, which explains
        // that artifacts arrive only by promotion and records the attempt, and an unknown stage is
        // NAME_UNKNOWN for everyone: let authenticated callers reach those answers rather than a
        // less helpful access error. Neither path reads or changes anything.
        if let Some(repo) = repo
            && identity.refused_by_stage_rules(repo, action)
        {
            return Ok(who.actor(peer));
        }
        let allowed = match repo {
            Some(repo) => identity.registry_allows(&who, repo, action),
            None => identity.catalog_allowed(&who),
        };
        if allowed {
            return Ok(who.actor(peer));
        }
        // A token that lacks the scope, held by someone whose roles would allow it: ask the client
        // to fetch a token for this scope. Otherwise the answer is no.
        if who.token_access.is_some()
            && repo.is_some_and(|repo| identity.grants_allow(&who, repo, action))
        {
            return Err(OciError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "the token does not cover this repository and action; request a token for it",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                challenge(Some("insufficient_scope")),
            ));
        }
        let what = repo.map_or("the catalog".to_string(), |r| r.to_string());
        Err(OciError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!(
                "{} may not {} {what}; ask an access-admin for a role that allows it (airlock roles grant)",
                who.principal.name,
                action.as_str()
            ),
        ))
    }
}

/// The base of the token realm: `access.public_url`, which `serve` sets to the listening address
/// when the configuration leaves it unset. Never taken from a request header, so a client cannot
/// point the challenge (and the credentials a client sends to the realm) elsewhere.
fn realm_base(identity: &Identity) -> String {
    identity
        .public_url()
        .unwrap_or("http://127.0.0.1:5000")
        .trim_end_matches('/')
        .to_string()
}

fn base_challenge(identity: &Identity) -> String {
    format!(
        "Bearer realm=\"{}/auth/token\",service=\"{}\"",
        realm_base(identity),
        crate::identity::service::TOKEN_SERVICE
    )
}

/// The `WWW-Authenticate` challenge pointing clients at the token endpoint; `also_pull` (the
/// source of a mount) adds a second, space-separated scope.
fn challenge(
    identity: &Identity,
    repo: Option<&RepoName>,
    action: Action,
    also_pull: Option<&RepoName>,
    error: Option<&str>,
) -> String {
    let base = realm_base(identity);
    let mut scope = match repo {
        Some(repo) => {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            format!("repository:{repo}:{actions}")
        }
        None => "registry:catalog:*".to_string(),
    };
    if let Some(from) = also_pull.filter(|from| Some(*from) != repo) {
        scope.push_str(&format!(" repository:{from}:pull"));
    }
    let mut value = format!(
        "Bearer realm=\"{base}/auth/token\",service=\"{}\",scope=\"{scope}\"",
        crate::identity::service::TOKEN_SERVICE
    );
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    value
}
