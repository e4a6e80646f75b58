//! HTTP endpoints of airlock's own keys.
//!
//! - `POST /api/v1/server-keys/{token|attestation|log}/rotate` `{"overlap_secs": N}`: rotate
//!   (needs `manage-keys` everywhere; `log` is refused with the documented procedure).
//! - `GET /api/v1/server-keys`: the current and replaced public keys of both (anyone
//!   authenticated).
//!
//! `GET /api/v1/attestation-key` (in the promotion routes) serves the attestation keys too.

use std::str::FromStr;
use std::sync::Arc;

use airlock_api::server_keys as api;
use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::audit::rfc3339_millis;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::{ListedKey, ServerKey, ServerKeyError, ServerKeys};
use crate::api::ApiError;
use crate::caller::Caller;
use crate::extract::ApiPath;
use crate::identity::Identity;

/// State of the server-key routes.
#[derive(Clone)]
pub struct ServerKeyState {
    /// The rotation service.
    pub keys: Arc<ServerKeys>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The server-key routes.
pub fn router(state: ServerKeyState) -> Router {
    Router::new()
        .route("/api/v1/server-keys", get(list))
        .route("/api/v1/server-keys/{key}/rotate", post(rotate))
        .with_state(state)
}

impl From<ServerKeyError> for ApiError {
    fn from(err: ServerKeyError) -> Self {
        let message = err.to_string();
        match err {
            ServerKeyError::UnknownKey { .. } => ApiError::bad_request(
                message,
                "name the key to rotate: airlock keys rotate-server token (or attestation)",
            ),
            ServerKeyError::OverlapForAttestation => ApiError::bad_request(
                message,
                "drop --overlap (overlap_secs) when rotating the attestation key",
            ),
            ServerKeyError::OverlapTooShort { access_secs, .. } => ApiError::bad_request(
                message,
                format!("give --overlap {access_secs}s or more (overlap_secs >= {access_secs})"),
            ),
            ServerKeyError::OverlapTooLong { .. } => ApiError::bad_request(
                message,
                "give a shorter --overlap, or none for the refresh-token lifetime",
            ),
            ServerKeyError::LogKey => ApiError::new(
                StatusCode::CONFLICT,
                "LOG_KEY_NOT_ROTATABLE",
                message,
                "see docs/operations.md, \"Starting a new audit log\"",
            ),
            ServerKeyError::Store(err) => ApiError::storage(&err),
            other => ApiError::internal(other),
        }
    }
}

/// A listed key as the API shows it (times in RFC 3339).
pub fn listed_key(key: &ListedKey) -> api::ServerKey {
    api::ServerKey {
        key_id: key.key_id.clone(),
        public_key: key.public_key.clone(),
        created: rfc3339_millis(key.created_at),
        retired_at: key.retired_at.map(rfc3339_millis),
        accepted_until: key.accepted_until.map(rfc3339_millis),
        status: if key.retired_at.is_some() {
            "retired"
        } else {
            "current"
        }
        .into(),
    }
}

/// A listed key as JSON, for routes that still build their answers by hand.
pub fn listed_json(key: &ListedKey) -> Value {
    serde_json::to_value(listed_key(key)).unwrap_or(Value::Null)
}

/// The current and replaced token and attestation keys (anyone authenticated).
#[utoipa::path(
    operation_id = "server_keys_list",
    get,
    path = "/api/v1/server-keys",
    tag = "server-keys",
    responses(
        (status = 200, description = "The keys", body = api::ServerKeyList),
        (status = 403, description = "The password must be changed first", body = airlock_api::ErrorBody),
        (status = 500, description = "A key file cannot be read", body = airlock_api::ErrorBody),
    )
)]
async fn list(
    State(state): State<ServerKeyState>,
    _caller: Caller,
) -> Result<Json<api::ServerKeyList>, ApiError> {
    let token = state.keys.token_keys()?.iter().map(listed_key).collect();
    let attestation = state
        .keys
        .attestation_keys()
        .iter()
        .map(listed_key)
        .collect();
    Ok(Json(api::ServerKeyList { token, attestation }))
}

/// Replaces the token or attestation key (key-admin everywhere); the log key is refused with the
/// documented procedure.
#[utoipa::path(
    operation_id = "server_keys_rotate",
    post,
    path = "/api/v1/server-keys/{key}/rotate",
    tag = "server-keys",
    params(("key" = String, Path, description = "`token`, `attestation` or `log`")),
    request_body(content = Option<api::RotateRequest>, description = "May be empty"),
    responses(
        (status = 200, description = "The key was replaced", body = api::Rotation),
        (status = 400, description = "An unknown key, a malformed body, or an overlap out of bounds", body = airlock_api::ErrorBody),
        (status = 403, description = "Not a key-admin everywhere", body = airlock_api::ErrorBody),
        (status = 409, description = "The log key is never rotated in place", body = airlock_api::ErrorBody),
        (status = 500, description = "The new key could not be made or stored", body = airlock_api::ErrorBody),
    )
)]
async fn rotate(
    State(state): State<ServerKeyState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    body: Bytes,
) -> Result<Json<api::Rotation>, ApiError> {
    if let Some(who) = &caller.who
        && !who.has(Permission::ManageKeys, &PermissionTarget::Global)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "you may not rotate airlock's keys: that needs the key-admin role everywhere (scope *)",
            "ask an access-admin for key-admin in scope * (airlock access request key-admin --scope '*' --for 1h --reason ...)",
        ));
    }
    let key = ServerKey::from_str(&key)?;
    let body: api::RotateRequest = if body.is_empty() {
        api::RotateRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                format!("invalid rotation request: {e}"),
                "send an empty body, {} or {\"overlap_secs\": 3600}",
            )
        })?
    };
    let rotation = state
        .keys
        .rotate(key, body.overlap_secs, &caller.actor)
        .await?;
    let old_accepted_until = rotation.old_accepted_until.map(rfc3339_millis);
    let notice = rotation.logins_end.then(|| {
        format!(
            "refresh tokens issued before this rotation stop working at {}: logins made before it (airlock login, offline access) must log in again then",
            old_accepted_until.clone().unwrap_or_default()
        )
    });
    Ok(Json(api::Rotation {
        key: rotation.key.to_string(),
        old_key_id: rotation.old_key_id,
        new_key_id: rotation.new_key_id,
        old_accepted_until,
        notice,
    }))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(list, rotate),
        tags((name = "server-keys", description = "airlock's own rotatable keys: the token signing key and the promotion attestation key"))
    )]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<ServerKeyState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &ServerKeyState) -> Self {
        state.identity.clone()
    }
}
