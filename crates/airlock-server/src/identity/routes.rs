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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use airlock_core::access::{RequestedScope, Role, Scope};
use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AuthError, Authenticated, Identity};
use crate::access::{Credentials, authenticate, credentials};
use crate::api::ApiError;

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
            AuthError::Forbidden(_) | AuthError::Rule(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask another access-admin, or for a role that allows this",
            ),
            AuthError::BadRequest(_) => {
                ApiError::bad_request(message, "fix the request as the message says")
            }
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
            AuthError::Signing(_) | AuthError::Hashing(_) => ApiError::internal(message),
        }
    }
}

/// Docker token endpoint errors use the registry error format, with a challenge for Basic.
fn token_error(err: AuthError) -> Response {
    let (status, code) = match &err {
        AuthError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        AuthError::BadRequest(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        AuthError::Store(store) if store.write_refusal().is_some() => {
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
        }
        AuthError::Store(_) | AuthError::Signing(_) | AuthError::Hashing(_) => {
            return ApiError::internal(err.to_string()).into_response();
        }
        _ => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
    };
    let mut response = (
        status,
        Json(json!({"errors": [{"code": code, "message": err.to_string(), "detail": null}]})),
    )
        .into_response();
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
        Ok(issued) => {
            let issued_at = airlock_core::audit::rfc3339_millis(airlock_store::now_millis());
            Json(airlock_identity::token_response(
                &issued.access,
                issued.expires_in,
                &issued_at,
                issued.refresh.as_deref(),
            ))
            .into_response()
        }
        Err(err) => token_error(err),
    }
}

/// `GET /auth/token`: Basic credentials (password or API key), or a bearer refresh token.
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

/// `POST /auth/token` form (the OAuth2 flavour oras and containerd use).
async fn token_post(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
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
            (Some(user), Some(password)) => {
                match identity
                    .authenticate_secret(&user, &password, Some(peer))
                    .await
                {
                    Ok(who) => identity.issue_tokens(&who, &scopes, offline).await,
                    Err(err) => Err(err),
                }
            }
            _ => Err(AuthError::BadRequest(
                "grant_type=password needs username and password".into(),
            )),
        },
        Some("refresh_token") => match field("refresh_token") {
            Some(token) => identity.refresh(&token, &scopes, Some(peer)).await,
            None => Err(AuthError::BadRequest(
                "grant_type=refresh_token needs refresh_token".into(),
            )),
        },
        other => Err(AuthError::BadRequest(format!(
            "unsupported grant_type {other:?}: use password or refresh_token"
        ))),
    })
}

#[derive(Deserialize)]
struct OidcRequest {
    id_token: String,
    #[serde(default)]
    scope: Vec<String>,
}

/// `POST /auth/oidc`: a CI's ID token for a short-lived builder token.
async fn oidc_exchange(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<OidcRequest>,
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

/// The authenticated caller of an API request and its audit actor.
async fn caller(
    identity: &Identity,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(Authenticated, airlock_core::Actor), ApiError> {
    let who = authenticate(identity, headers, Some(peer)).await?;
    let actor = who.actor(Some(peer));
    Ok((who, actor))
}

fn grants_json(grants: &[airlock_core::access::Grant]) -> Vec<Value> {
    grants
        .iter()
        .map(|g| {
            json!({"role": g.role.to_string(), "scope": g.scope.to_string(),
                   "expires": g.expires_at_millis.map(airlock_core::audit::rfc3339_millis)})
        })
        .collect()
}

/// Who the caller is, how it authenticated, and its roles now.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "identity",
    responses(
        (status = 200, description = "The caller and its roles", body = airlock_api::identity::WhoAmI),
        (status = 401, description = "No or invalid credentials", body = airlock_api::ErrorBody),
    )
)]
async fn whoami(caller: crate::caller::SignedIn) -> Json<airlock_api::identity::WhoAmI> {
    let who = caller.who;
    Json(airlock_api::identity::WhoAmI {
        name: who.principal.name,
        kind: who.principal.kind,
        auth_method: who.method,
        roles: role_grants(&who.grants),
    })
}

/// Grants as the API shows them.
fn role_grants(grants: &[airlock_core::access::Grant]) -> Vec<airlock_api::identity::RoleGrant> {
    grants
        .iter()
        .map(|g| airlock_api::identity::RoleGrant {
            role: g.role.to_string(),
            scope: g.scope.to_string(),
            expires: g.expires_at_millis.map(airlock_core::audit::rfc3339_millis),
        })
        .collect()
}

async fn list_principals(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (who, _) = caller(&identity, &headers, peer).await?;
    let list: Vec<Value> = identity
        .list(&who)
        .await?
        .into_iter()
        .map(|(p, grants)| json!({"name": p.name, "kind": p.kind, "disabled": p.disabled, "password_must_change": p.password_must_change, "roles": grants_json(&grants)}))
        .collect();
    Ok(Json(json!({"principals": list})).into_response())
}

#[derive(Deserialize)]
struct AddUser {
    name: String,
    password: Option<String>,
}

async fn add_user(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<AddUser>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let generated = identity
        .add_user(&who, &actor, &body.name, body.password)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": body.name, "password": generated})),
    )
        .into_response())
}

async fn disable(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    identity.disable(&who, &actor, &name).await?;
    Ok(Json(json!({"name": name, "disabled": true})).into_response())
}

#[derive(Deserialize)]
struct AddServiceAccount {
    name: String,
    expires_in_secs: u64,
}

async fn add_service_account(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<AddServiceAccount>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let (key, id, expires) = identity
        .add_service_account(&who, &actor, &body.name, body.expires_in_secs)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": body.name, "api_key": key, "key_id": id, "expires": airlock_core::audit::rfc3339_millis(expires)})),
    )
        .into_response())
}

async fn revoke_credential(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    identity.revoke_credential(&who, &actor, &id).await?;
    Ok(Json(json!({"id": id, "revoked": true})).into_response())
}

async fn list_roles(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (who, _) = caller(&identity, &headers, peer).await?;
    let wanted = params.get("principal");
    let list: Vec<Value> = identity
        .list(&who)
        .await?
        .into_iter()
        .filter(|(p, _)| wanted.is_none_or(|w| &p.name == w))
        .flat_map(|(p, grants)| {
            grants_json(&grants).into_iter().map(move |mut g| {
                g["principal"] = json!(p.name);
                g
            })
        })
        .collect();
    Ok(Json(json!({"bindings": list})).into_response())
}

#[derive(Deserialize)]
struct RoleChange {
    principal: String,
    role: String,
    scope: String,
}

fn parse_role_scope(role: &str, scope: &str) -> Result<(Role, Scope), ApiError> {
    let role = role
        .parse::<Role>()
        .map_err(|e| ApiError::bad_request(format!("{e}"), "roles: reader, developer, builder, promoter, approver, deployer, key-admin, access-admin, auditor, break-glass"))?;
    let scope = scope.parse::<Scope>().map_err(|e| {
        ApiError::bad_request(
            format!("{e}"),
            "scopes: *, a stage (prod), or a stage and repository prefix (prod/team/*)",
        )
    })?;
    Ok((role, scope))
}

async fn grant_role(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<RoleChange>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let (role, scope) = parse_role_scope(&body.role, &body.scope)?;
    identity
        .grant_role(&who, &actor, &body.principal, role, &scope)
        .await?;
    Ok(Json(json!({"principal": body.principal, "role": role.to_string(), "scope": scope.to_string(), "granted": true})).into_response())
}

async fn revoke_role(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<RoleChange>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let (role, scope) = parse_role_scope(&body.role, &body.scope)?;
    identity
        .revoke_role(&who, &actor, &body.principal, role, &scope)
        .await?;
    Ok(Json(json!({"principal": body.principal, "role": role.to_string(), "scope": scope.to_string(), "revoked": true})).into_response())
}

fn request_json(r: &airlock_store::AccessRequestRow) -> Value {
    json!({"id": r.id, "principal": r.principal, "role": r.role, "scope": r.scope,
           "duration_secs": r.duration_secs, "reason": r.reason, "status": r.status,
           "decided_by": r.decided_by, "requested": airlock_core::audit::rfc3339_millis(r.created_at),
           "expires": r.expires_at.map(airlock_core::audit::rfc3339_millis)})
}

async fn list_requests(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (who, _) = caller(&identity, &headers, peer).await?;
    let list: Vec<Value> = identity
        .access_requests(&who)
        .await?
        .iter()
        .map(request_json)
        .collect();
    Ok(Json(json!({"requests": list})).into_response())
}

#[derive(Deserialize)]
struct AccessRequestBody {
    role: String,
    scope: String,
    duration_secs: u64,
    reason: String,
}

async fn request_access(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<AccessRequestBody>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let (role, scope) = parse_role_scope(&body.role, &body.scope)?;
    let id = identity
        .request_access(&who, &actor, role, &scope, body.duration_secs, &body.reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "status": "pending"})),
    )
        .into_response())
}

async fn grant_request(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let request = identity.decide_access(&who, &actor, id, true).await?;
    Ok(Json(request_json(&request)).into_response())
}

async fn deny_request(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let request = identity.decide_access(&who, &actor, id, false).await?;
    Ok(Json(request_json(&request)).into_response())
}

async fn revoke_request(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let request = identity.revoke_access(&who, &actor, id).await?;
    Ok(Json(request_json(&request)).into_response())
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(whoami))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
