//! HTTP endpoints of identity and access.
//!
//! - `GET /auth/token?service=airlock&scope=...` with Basic credentials, and `POST /auth/token`
//!   with a form (`grant_type=password` or `refresh_token`, as oras and containerd send): the
//!   Docker registry token flow. `access_type=offline` (or `offline_token=true`) adds a refresh
//!   token (not for `client_id=docker`: Docker Engine keeps the first refresh token it gets and
//!   never stores the rotated one). Exchanging a refresh token always returns its successor.
//! - `POST /auth/oidc` with `{"id_token", "scope"}`: workload identity for CI.
//! - `/api/v1/users`, `/api/v1/service-accounts`, `/api/v1/credentials/{id}`, `/api/v1/roles`,
//!   `/api/v1/access-requests`: administration, authenticated like registry requests (a service
//!   account's keys, `/api/v1/service-accounts/{name}/keys`, are in `api_key_routes.rs`).
//! - `/api/v1/users/{name}/password` (the user, by the current password),
//!   `/api/v1/users/{name}/reset-password` and `/api/v1/users/{name}/enable` (an access-admin):
//!   in `routes/accounts.rs`.

mod accounts;

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_api::identity as api;
use airlock_core::access::{AccessRuleViolation, RequestedScope, Role, Scope};
use airlock_core::audit::rfc3339_millis;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};

use super::{AuthError, Identity};
use crate::access::{Credentials, credentials};
use crate::api::ApiError;
use crate::caller::SignedIn;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::service::looks_like_token;
use crate::paging::{
    DEFAULT_PAGE, MAX_PAGE, name_seq_cursor, page_size, parse_id_cursor, parse_name_cursor,
    parse_name_seq_cursor, split_page,
};

/// The identity routes.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/auth/token", get(token_get).post(token_post))
        .route("/auth/oidc", post(oidc_exchange))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(list_principals).post(add_user))
        .route("/api/v1/users/{name}/disable", post(disable))
        .route(
            "/api/v1/users/{name}/password",
            post(accounts::change_password),
        )
        .route(
            "/api/v1/users/{name}/reset-password",
            post(accounts::reset_password),
        )
        .route("/api/v1/users/{name}/enable", post(accounts::enable))
        .route("/api/v1/service-accounts", post(add_service_account))
        .route("/api/v1/credentials/{id}/revoke", post(revoke_credential))
        .route("/api/v1/roles", get(list_roles))
        .route("/api/v1/roles/grant", post(grant_role))
        .route("/api/v1/roles/revoke", post(revoke_role))
        .route(
            "/api/v1/access-requests",
            get(list_requests).post(request_access),
        )
        .route("/api/v1/access-requests/{id}/grant", post(grant_request))
        .route("/api/v1/access-requests/{id}/deny", post(deny_request))
        .route("/api/v1/access-requests/{id}/revoke", post(revoke_request))
        .merge(super::api_key_routes::routes())
        .with_state(identity)
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::Missing | AuthError::Invalid(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                message,
                "log in with `airlock login URL -u NAME --password-stdin` or send a bearer token from /auth/token",
            ),
            AuthError::Barred(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                message,
                "logging in again does not help: an access-admin enables a disabled principal again (airlock users enable), and a locked one is unlocked when an access-admin resolves its anomaly (airlock anomalies resolve)",
            ),
            AuthError::PasswordChangeRequired { ref principal } => ApiError::new(
                StatusCode::FORBIDDEN,
                "PASSWORD_CHANGE_REQUIRED",
                message,
                format!(
                    "change the password first: airlock users passwd -u {principal} --password-stdin (or POST /api/v1/users/{principal}/password with current_password and new_password)"
                ),
            ),
            AuthError::Policy(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "PASSWORD_POLICY",
                message,
                "choose another password: long enough (access.password_min_length), not a common one, not containing the user name",
            ),
            AuthError::RateLimited => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                message,
                "wait a minute before trying again",
            ),
            AuthError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask an access-admin for a role that allows this (airlock access request ROLE --scope SCOPE --for 1h --reason ...)",
            ),
            AuthError::Rule(ref rule) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message.clone(),
                rule_remediation(rule),
            ),
            AuthError::TokenRequest(_) => ApiError::bad_request(
                message,
                "send grant_type=password with username and password, or grant_type=refresh_token with refresh_token, form-encoded",
            ),
            AuthError::UnknownStage { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "STAGE_UNKNOWN",
                message,
                "name a configured stage in the scope (the message lists them), or `*` for every stage",
            ),
            AuthError::InvalidName { .. } => ApiError::bad_request(
                message,
                "choose a name of lowercase letters, digits, '-', '_' or '.', e.g. ci-builder",
            ),
            AuthError::NoPassword { ref name } => ApiError::bad_request(
                message.clone(),
                format!(
                    "service accounts authenticate with API keys: airlock service-accounts keys add {name} --name KEY (or revoke one with airlock service-accounts keys revoke)"
                ),
            ),
            AuthError::NotServiceAccount { .. } => ApiError::bad_request(
                message,
                "name a service account (airlock users list shows kinds), or create one with airlock service-accounts add NAME --expires 90d",
            ),
            AuthError::SamePassword => ApiError::bad_request(
                message,
                "choose a new password different from the current one",
            ),
            AuthError::DisableSelf => ApiError::bad_request(
                message,
                "name another principal; if your own account must be disabled, another access-admin does it",
            ),
            AuthError::Expiry(airlock_core::api_key::LifetimeError::NotInFuture) => {
                ApiError::bad_request(
                    message,
                    "give an expiry in the future (--expires-in DAYS or --expires-at DATE)",
                )
            }
            AuthError::Expiry(airlock_core::api_key::LifetimeError::TooLong { max_days }) => {
                ApiError::bad_request(
                    message,
                    format!(
                        "give an expiry at most {max_days} days ahead, or have an operator raise access.max_api_key_days"
                    ),
                )
            }
            AuthError::GrantDuration { max_secs } => ApiError::bad_request(
                message,
                format!(
                    "ask for a duration between 1s and {max_secs}s, e.g. --for 1h (an operator sets the bound, access.max_grant_secs)"
                ),
            ),
            AuthError::ReasonRequired => ApiError::bad_request(
                message,
                "say why with --reason, e.g. the incident or change ticket",
            ),
            AuthError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "check the name or id (airlock users list, airlock access list)",
            ),
            AuthError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                message,
                "the object already exists or changed meanwhile",
            ),
            AuthError::Store(err) => ApiError::storage(&err),
            AuthError::Signing(_) | AuthError::Hashing(_) | AuthError::StoredRole { .. } => {
                ApiError::internal(&err)
            }
        }
    }
}

/// What to do about a separation-of-duties refusal.
fn rule_remediation(rule: &AccessRuleViolation) -> String {
    match rule {
        AccessRuleViolation::SelfGrant { .. } => {
            "another access-admin grants it (airlock roles grant)".into()
        }
        AccessRuleViolation::MutuallyExclusive { held, .. } => format!(
            "revoke {held} from the principal first (airlock roles revoke), or grant the role to someone else; the exclusive pairs are access.exclusive_roles"
        ),
        AccessRuleViolation::SelfApproval { .. } => {
            "another access-admin grants or denies it (airlock access grant|deny ID)".into()
        }
        AccessRuleViolation::SelfPasswordReset { principal } => format!(
            "change your own password with the current one: airlock users passwd -u {principal} --password-stdin"
        ),
        AccessRuleViolation::AccessAdminPasswordReset { target, .. } => format!(
            "{target} changes it with airlock users passwd; if it is lost, revoke {target}'s access-admin role first (airlock roles revoke {target} access-admin --scope '*'), then reset"
        ),
    }
}

/// Docker token endpoint errors use the registry error format, with a challenge for Basic.
/// `413` in the registry error format: a token request body over the 2 MiB request limit.
fn token_too_large() -> Response {
    let body = api::TokenErrorBody {
        errors: vec![api::TokenError {
            code: "SIZE_INVALID".into(),
            message: "the token request body is larger than 2 MiB: send only the form fields (grant_type and its fields)".into(),
            detail: None,
        }],
    };
    (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response()
}

fn token_error(err: AuthError) -> Response {
    let (status, code) = match &err {
        AuthError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        AuthError::TokenRequest(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        AuthError::Store(store) if store.write_refusal().is_some() => {
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        }
        AuthError::Store(_) | AuthError::Signing(_) | AuthError::Hashing(_) => {
            return ApiError::from(err).into_response();
        }
        _ => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
    };
    let body = api::TokenErrorBody {
        errors: vec![api::TokenError {
            code: code.into(),
            message: err.to_string(),
            detail: None,
        }],
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"airlock\""),
        );
    }
    response
}

fn parse_scopes(raw: &[String]) -> Vec<RequestedScope> {
    // Clients may send several `scope` parameters or one space-separated list; malformed scopes
    // are ignored (they are never granted), as the Docker token spec allows.
    raw.iter()
        .flat_map(|s| s.split(' '))
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<RequestedScope>().ok())
        .collect()
}

fn query_values(raw: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whether a client that asked for offline access gets a refresh token. Refresh tokens rotate,
/// so only a client that stores the successor of each one may hold them: Docker Engine
/// (`client_id=docker`) keeps the first one it gets, so it gets none and keeps its password or
/// API key in its credential store instead, as with a registry that issues no refresh tokens.
fn offline_allowed(client_id: Option<&str>) -> bool {
    client_id != Some("docker")
}

fn token_body(issued: Result<super::service::IssuedTokens, AuthError>) -> Response {
    match issued {
        Ok(issued) => Json(api::TokenResponse {
            token: issued.access.clone(),
            access_token: issued.access,
            expires_in: issued.expires_in,
            issued_at: rfc3339_millis(airlock_store::now_millis()),
            refresh_token: issued.refresh,
        })
        .into_response(),
        Err(err) => token_error(err),
    }
}

/// `GET /auth/token`: the Docker registry token flow, with Basic credentials (a password or an
/// API key) or a bearer refresh token.
#[utoipa::path(
    get,
    path = "/auth/token",
    tag = "identity",
    params(api::TokenQuery),
    responses(
        (status = 200, description = "An access token for the granted part of the scopes", body = api::TokenResponse),
        (status = 401, description = "No or invalid credentials (with a Basic challenge)", body = api::TokenErrorBody),
        (status = 429, description = "Too many failed authentications", body = api::TokenErrorBody),
        (status = 500, description = "The token could not be issued", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage refuses writes", body = api::TokenErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
async fn token_get(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let scopes = parse_scopes(&query_values(query.as_deref(), "scope"));
    let offline = query_values(query.as_deref(), "offline_token")
        .iter()
        .any(|v| v == "true")
        && offline_allowed(
            query_values(query.as_deref(), "client_id")
                .first()
                .map(String::as_str),
        );
    token_body(match credentials(&headers) {
        Ok(Some(Credentials::Basic(user, secret))) if looks_like_token(&secret) => {
            identity
                .exchange_deploy_token(&user, &secret, &scopes, Some(peer))
                .await
        }
        Ok(Some(Credentials::Basic(user, secret))) => {
            match identity
                .authenticate_secret(&user, &secret, Some(peer))
                .await
            {
                Ok(who) => identity.issue_tokens(&who, &scopes, offline).await,
                Err(err) => Err(err),
            }
        }
        Ok(Some(Credentials::Bearer(token))) => identity.refresh(&token, &scopes, Some(peer)).await,
        Ok(None) => Err(AuthError::Missing),
        Err(err) => Err(err),
    })
}

/// `POST /auth/token`: the OAuth2 form flavour of the token flow that oras and containerd use.
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "identity",
    request_body(content = api::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token for the granted part of the scopes", body = api::TokenResponse),
        (status = 400, description = "An unsupported grant_type or a missing field", body = api::TokenErrorBody),
        (status = 413, description = "The body is larger than 2 MiB (SIZE_INVALID)", body = api::TokenErrorBody),
        (status = 401, description = "Invalid credentials or refresh token", body = api::TokenErrorBody),
        (status = 429, description = "Too many failed authentications", body = api::TokenErrorBody),
        (status = 500, description = "The token could not be issued", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage refuses writes", body = api::TokenErrorBody),
    ),
    security(())
)]
async fn token_post(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return token_too_large();
        }
        Err(rejection) => {
            return token_error(AuthError::TokenRequest(format!(
                "the body is not a form ({}): send Content-Type: application/x-www-form-urlencoded with grant_type and its fields",
                rejection.body_text()
            )));
        }
    };
    let field = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let scope_values: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let scopes = parse_scopes(&scope_values);
    let offline = field("access_type").as_deref() == Some("offline")
        && offline_allowed(field("client_id").as_deref());
    token_body(match field("grant_type").as_deref() {
        Some("password") => match (field("username"), field("password")) {
            (Some(user), Some(password)) if looks_like_token(&password) => {
                identity
                    .exchange_deploy_token(&user, &password, &scopes, Some(peer))
                    .await
            }
            (Some(user), Some(password)) => {
                match identity
                    .authenticate_secret(&user, &password, Some(peer))
                    .await
                {
                    Ok(who) => identity.issue_tokens(&who, &scopes, offline).await,
                    Err(err) => Err(err),
                }
            }
            _ => Err(AuthError::TokenRequest(
                "grant_type=password needs username and password".into(),
            )),
        },
        Some("refresh_token") => match field("refresh_token") {
            Some(token) => identity.refresh(&token, &scopes, Some(peer)).await,
            None => Err(AuthError::TokenRequest(
                "grant_type=refresh_token needs refresh_token".into(),
            )),
        },
        other => Err(AuthError::TokenRequest(format!(
            "unsupported grant_type {other:?}: use password or refresh_token"
        ))),
    })
}

/// `POST /auth/oidc`: a CI's OIDC ID token for a short-lived token (workload identity).
#[utoipa::path(
    post,
    path = "/auth/oidc",
    tag = "identity",
    request_body = api::OidcExchangeRequest,
    responses(
        (status = 200, description = "An access token for the granted part of the scopes", body = api::TokenResponse),
        (status = 400, description = "The body is not well-formed JSON", body = airlock_api::ErrorBody),
        (status = 401, description = "The ID token is invalid or no trust rule matches it", body = api::TokenErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 429, description = "Too many failed authentications", body = api::TokenErrorBody),
        (status = 500, description = "The token could not be issued", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage refuses writes", body = api::TokenErrorBody),
    ),
    security(())
)]
async fn oidc_exchange(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<api::OidcExchangeRequest>,
) -> Response {
    match identity
        .authenticate_oidc(&request.id_token, Some(peer))
        .await
    {
        Ok(who) => token_body(
            identity
                .issue_tokens(&who, &parse_scopes(&request.scope), false)
                .await,
        ),
        Err(err) => token_error(err),
    }
}

/// Who the caller is, how it authenticated, and its roles now.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "identity",
    responses(
        (status = 200, description = "The caller and its roles", body = api::WhoAmI),
        (status = 403, description = "The password must be changed first", body = airlock_api::ErrorBody),
    )
)]
async fn whoami(caller: SignedIn) -> Json<api::WhoAmI> {
    let who = caller.who;
    Json(api::WhoAmI {
        name: who.principal.name,
        kind: who.principal.kind,
        auth_method: who.method,
        roles: role_grants(&who.grants),
    })
}

/// Grants as the API shows them.
fn role_grants(grants: &[airlock_core::access::Grant]) -> Vec<api::RoleGrant> {
    grants
        .iter()
        .map(|g| api::RoleGrant {
            role: g.role.to_string(),
            scope: g.scope.to_string(),
            expires: g.expires_at_millis.map(rfc3339_millis),
        })
        .collect()
}

/// The users and service accounts with their roles, by name, a page at a time (access-admin or
/// auditor).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "identity",
    params(airlock_api::catalog::PageQuery),
    responses(
        (status = 200, description = "A page of principals", body = api::PrincipalList),
        (status = 400, description = "A page size out of range, a cursor this list did not hand out, or a malformed query", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin or auditor", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn list_principals(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiQuery(query): ApiQuery<airlock_api::catalog::PageQuery>,
) -> Result<Json<api::PrincipalList>, ApiError> {
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let after = parse_name_cursor(query.last.as_deref())?;
    // One row past the page says whether another page follows.
    let rows = identity
        .principals_page(&caller.who, after.as_deref(), limit + 1)
        .await?;
    let (rows, next) = split_page(rows, limit, |(p, _)| p.name.clone());
    let principals = rows
        .into_iter()
        .map(|(p, grants)| api::Principal {
            name: p.name,
            kind: p.kind,
            disabled: p.disabled,
            password_must_change: p.password_must_change,
            roles: role_grants(&grants),
        })
        .collect();
    Ok(Json(api::PrincipalList { principals, next }))
}

/// Creates a user (access-admin); a generated password is answered once.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "identity",
    request_body = api::AddUserRequest,
    responses(
        (status = 201, description = "The user was created", body = api::UserAdded),
        (status = 400, description = "An invalid name or a password the policy refuses", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 409, description = "The name is taken", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn add_user(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiJson(body): ApiJson<api::AddUserRequest>,
) -> Result<(StatusCode, Json<api::UserAdded>), ApiError> {
    let password = identity
        .add_user(&caller.who, &caller.actor, &body.name, body.password)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::UserAdded {
            name: body.name,
            password,
        }),
    ))
}

/// Disables a principal (access-admin); its tokens stop working at once.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/disable",
    tag = "identity",
    params(("name" = String, Path, description = "The user or service account")),
    responses(
        (status = 200, description = "The principal is disabled", body = api::PrincipalState),
        (status = 400, description = "The caller tried to disable itself", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such principal", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn disable(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<api::PrincipalState>, ApiError> {
    identity.disable(&caller.who, &caller.actor, &name).await?;
    Ok(Json(api::PrincipalState {
        name,
        disabled: true,
    }))
}

/// Creates a service account and its first API key (access-admin), answered once.
#[utoipa::path(
    post,
    path = "/api/v1/service-accounts",
    tag = "identity",
    request_body = api::AddServiceAccountRequest,
    responses(
        (status = 201, description = "The account and its key", body = api::ServiceAccountAdded),
        (status = 400, description = "An invalid name or expiry", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 409, description = "The name is taken", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn add_service_account(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiJson(body): ApiJson<api::AddServiceAccountRequest>,
) -> Result<(StatusCode, Json<api::ServiceAccountAdded>), ApiError> {
    let (api_key, key_id, expires) = identity
        .add_service_account(&caller.who, &caller.actor, &body.name, body.expires_in_secs)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::ServiceAccountAdded {
            name: body.name,
            api_key,
            key_id,
            expires: rfc3339_millis(expires),
        }),
    ))
}

/// Revokes a credential: an API key id, or `password:<id>` (access-admin).
#[utoipa::path(
    post,
    path = "/api/v1/credentials/{id}/revoke",
    tag = "identity",
    params(("id" = String, Path, description = "The credential id (an API key's id)")),
    responses(
        (status = 200, description = "The credential is revoked", body = api::CredentialRevoked),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such credential", body = airlock_api::ErrorBody),
        (status = 409, description = "Already revoked", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn revoke_credential(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::CredentialRevoked>, ApiError> {
    identity
        .revoke_credential(&caller.who, &caller.actor, &id)
        .await?;
    Ok(Json(api::CredentialRevoked { id, revoked: true }))
}

/// Active role bindings, of one principal if asked, by principal, a page at a time
/// (access-admin or auditor).
#[utoipa::path(
    get,
    path = "/api/v1/roles",
    tag = "identity",
    params(api::RolesQuery),
    responses(
        (status = 200, description = "A page of bindings", body = api::RoleBindingList),
        (status = 400, description = "A page size out of range, a cursor this list did not hand out, or a malformed query", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin or auditor", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn list_roles(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiQuery(query): ApiQuery<api::RolesQuery>,
) -> Result<Json<api::RoleBindingList>, ApiError> {
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let after = parse_name_seq_cursor(query.last.as_deref())?;
    // One row past the page says whether another page follows.
    let rows = identity
        .bindings_page(
            &caller.who,
            query.principal.as_deref(),
            after.as_ref().map(|c| (c.name.as_str(), c.seq)),
            limit + 1,
        )
        .await?;
    let (rows, next) = split_page(rows, limit, |b| name_seq_cursor(b.seq, &b.principal));
    let bindings = rows
        .into_iter()
        .filter_map(|b| {
            let grant = b.grant?;
            Some(api::RoleBinding {
                principal: b.principal,
                role: grant.role.to_string(),
                scope: grant.scope.to_string(),
                expires: grant.expires_at_millis.map(rfc3339_millis),
            })
        })
        .collect();
    Ok(Json(api::RoleBindingList { bindings, next }))
}

fn parse_role_scope(role: &str, scope: &str) -> Result<(Role, Scope), ApiError> {
    let role = role.parse::<Role>().map_err(|e| {
        ApiError::bad_request(
            e.to_string(),
            "name a role: reader, developer, builder, promoter, approver, deployer, key-admin, access-admin, auditor, break-glass",
        )
    })?;
    let scope = scope.parse::<Scope>().map_err(|e| {
        ApiError::bad_request(
            e.to_string(),
            "write the scope as *, a stage (prod), or a stage and repository prefix (prod/team/*)",
        )
    })?;
    Ok((role, scope))
}

/// Binds a role in a scope to a principal (access-admin; separation of duties applies).
#[utoipa::path(
    post,
    path = "/api/v1/roles/grant",
    tag = "identity",
    request_body = api::RoleChangeRequest,
    responses(
        (status = 200, description = "The role is granted", body = api::RoleGranted),
        (status = 400, description = "An unknown role, a malformed scope, or a scope on a stage that is not configured", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin, or separation of duties refuses it", body = airlock_api::ErrorBody),
        (status = 404, description = "No such principal", body = airlock_api::ErrorBody),
        (status = 409, description = "The binding exists", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn grant_role(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiJson(body): ApiJson<api::RoleChangeRequest>,
) -> Result<Json<api::RoleGranted>, ApiError> {
    let (role, scope) = parse_role_scope(&body.role, &body.scope)?;
    identity
        .grant_role(&caller.who, &caller.actor, &body.principal, role, &scope)
        .await?;
    Ok(Json(api::RoleGranted {
        principal: body.principal,
        role: role.to_string(),
        scope: scope.to_string(),
        granted: true,
    }))
}

/// Removes a role binding (access-admin). A binding on a stage no longer configured can still
/// be removed.
#[utoipa::path(
    post,
    path = "/api/v1/roles/revoke",
    tag = "identity",
    request_body = api::RoleChangeRequest,
    responses(
        (status = 200, description = "The role is revoked", body = api::RoleRevoked),
        (status = 400, description = "An unknown role or a malformed scope", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such principal, or it does not hold the role there", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn revoke_role(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiJson(body): ApiJson<api::RoleChangeRequest>,
) -> Result<Json<api::RoleRevoked>, ApiError> {
    let (role, scope) = parse_role_scope(&body.role, &body.scope)?;
    identity
        .revoke_role(&caller.who, &caller.actor, &body.principal, role, &scope)
        .await?;
    Ok(Json(api::RoleRevoked {
        principal: body.principal,
        role: role.to_string(),
        scope: scope.to_string(),
        revoked: true,
    }))
}

fn access_request(r: &airlock_store::AccessRequestRow) -> api::AccessRequest {
    api::AccessRequest {
        id: r.id,
        principal: r.principal.clone(),
        role: r.role.clone(),
        scope: r.scope.clone(),
        duration_secs: r.duration_secs,
        reason: r.reason.clone(),
        status: r.status.clone(),
        decided_by: r.decided_by.clone(),
        requested: rfc3339_millis(r.created_at),
        expires: r.expires_at.map(rfc3339_millis),
    }
}

/// Access requests, newest first, a page at a time: all for an access-admin or auditor, else
/// the caller's own.
#[utoipa::path(
    get,
    path = "/api/v1/access-requests",
    tag = "identity",
    params(airlock_api::catalog::PageQuery),
    responses(
        (status = 200, description = "A page of requests", body = api::AccessRequestList),
        (status = 400, description = "A page size out of range, a cursor this list did not hand out, or a malformed query", body = airlock_api::ErrorBody),
        (status = 403, description = "The password must be changed first", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn list_requests(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiQuery(query): ApiQuery<airlock_api::catalog::PageQuery>,
) -> Result<Json<api::AccessRequestList>, ApiError> {
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let before = parse_id_cursor(query.last.as_deref())?;
    // One row past the page says whether another page follows.
    let rows = identity
        .access_requests_page(&caller.who, before, limit + 1)
        .await?;
    let (rows, next) = split_page(rows, limit, |r| r.id.to_string());
    Ok(Json(api::AccessRequestList {
        requests: rows.iter().map(access_request).collect(),
        next,
    }))
}

/// Files a just-in-time request for a role by the caller.
#[utoipa::path(
    post,
    path = "/api/v1/access-requests",
    tag = "identity",
    request_body = api::NewAccessRequest,
    responses(
        (status = 201, description = "The request is pending", body = api::AccessRequestFiled),
        (status = 400, description = "An unknown role, a malformed scope, a scope on a stage that is not configured, a duration out of bounds, or no reason", body = airlock_api::ErrorBody),
        (status = 403, description = "The password must be changed first", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn request_access(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiJson(body): ApiJson<api::NewAccessRequest>,
) -> Result<(StatusCode, Json<api::AccessRequestFiled>), ApiError> {
    let (role, scope) = parse_role_scope(&body.role, &body.scope)?;
    let id = identity
        .request_access(
            &caller.who,
            &caller.actor,
            role,
            &scope,
            body.duration_secs,
            &body.reason,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::AccessRequestFiled {
            id,
            status: "pending".into(),
        }),
    ))
}

/// Grants a pending request (access-admin, not the requester).
#[utoipa::path(
    post,
    path = "/api/v1/access-requests/{id}/grant",
    tag = "identity",
    params(("id" = i64, Path, description = "The request id")),
    responses(
        (status = 200, description = "The request, granted", body = api::AccessRequest),
        (status = 400, description = "The id is not a number", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin, or the requester", body = airlock_api::ErrorBody),
        (status = 404, description = "No such request", body = airlock_api::ErrorBody),
        (status = 409, description = "The request is not pending", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn grant_request(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    let request = identity
        .decide_access(&caller.who, &caller.actor, id, true)
        .await?;
    Ok(Json(access_request(&request)))
}

/// Denies a pending request (access-admin, not the requester).
#[utoipa::path(
    post,
    path = "/api/v1/access-requests/{id}/deny",
    tag = "identity",
    params(("id" = i64, Path, description = "The request id")),
    responses(
        (status = 200, description = "The request, denied", body = api::AccessRequest),
        (status = 400, description = "The id is not a number", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin, or the requester", body = airlock_api::ErrorBody),
        (status = 404, description = "No such request", body = airlock_api::ErrorBody),
        (status = 409, description = "The request is not pending", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn deny_request(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    let request = identity
        .decide_access(&caller.who, &caller.actor, id, false)
        .await?;
    Ok(Json(access_request(&request)))
}

/// Ends a granted request early (access-admin); its binding is removed at once.
#[utoipa::path(
    post,
    path = "/api/v1/access-requests/{id}/revoke",
    tag = "identity",
    params(("id" = i64, Path, description = "The request id")),
    responses(
        (status = 200, description = "The request, revoked", body = api::AccessRequest),
        (status = 400, description = "The id is not a number", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such request", body = airlock_api::ErrorBody),
        (status = 409, description = "The request is not granted", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn revoke_request(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    let request = identity
        .revoke_access(&caller.who, &caller.actor, id)
        .await?;
    Ok(Json(access_request(&request)))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            token_get,
            token_post,
            oidc_exchange,
            whoami,
            list_principals,
            add_user,
            disable,
            accounts::change_password,
            accounts::reset_password,
            accounts::enable,
            add_service_account,
            revoke_credential,
            list_roles,
            grant_role,
            revoke_role,
            list_requests,
            request_access,
            grant_request,
            deny_request,
            revoke_request,
            super::api_key_routes::list_keys,
            super::api_key_routes::add_key,
            super::api_key_routes::revoke_key,
        ),
        tags((name = "identity", description = "Users, service accounts and their API keys, roles, just-in-time access requests, and the Docker registry token flow"))
    )]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
