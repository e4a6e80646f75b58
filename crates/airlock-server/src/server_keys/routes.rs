//! HTTP endpoints of airlock's own keys.
//!
//! - `POST /api/v1/server-keys/{token|attestation|log}/rotate` `{"overlap_secs": N}`: rotate
//!   (needs `manage-keys` everywhere; `log` is refused with the documented procedure).
//! - `GET /api/v1/server-keys`: the current and replaced public keys of both (anyone
//!   authenticated).
//!
//! `GET /api/v1/attestation-key` (in the promotion routes) serves the attestation keys too.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::audit::rfc3339_millis;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ListedKey, ServerKey, ServerKeyError, ServerKeys};
use crate::access::authenticate;
use crate::api::ApiError;
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
            ServerKeyError::BadRequest(_) => {
                ApiError::bad_request(message, "fix the request as the message says")
            }
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

/// A listed key as JSON (times in RFC 3339).
pub fn listed_json(key: &ListedKey) -> Value {
    json!({
        "key_id": key.key_id,
        "public_key": key.public_key,
        "created": rfc3339_millis(key.created_at),
        "retired_at": key.retired_at.map(rfc3339_millis),
        "accepted_until": key.accepted_until.map(rfc3339_millis),
        "status": if key.retired_at.is_some() { "retired" } else { "current" },
    })
}

async fn list(
    State(state): State<ServerKeyState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.identity.enabled() {
        authenticate(&state.identity, &headers, Some(peer)).await?;
    }
    let tokens: Vec<Value> = state.keys.token_keys()?.iter().map(listed_json).collect();
    let attestations: Vec<Value> = state
        .keys
        .attestation_keys()
        .iter()
        .map(listed_json)
        .collect();
    Ok(Json(json!({"token": tokens, "attestation": attestations})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    overlap_secs: Option<u64>,
}

async fn rotate(
    State(state): State<ServerKeyState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = if state.identity.enabled() {
        let who = authenticate(&state.identity, &headers, Some(peer)).await?;
        if !who.has(Permission::ManageKeys, &PermissionTarget::Global) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "you may not rotate airlock's keys: that needs the key-admin role everywhere (scope *)",
                "ask an access-admin for a role that allows it (airlock access request)",
            ));
        }
        who.actor(Some(peer))
    } else {
        airlock_core::Actor::anonymous(Some(peer.to_string()))
    };
    let key = ServerKey::from_str(&key)?;
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                format!("invalid rotation request: {e}"),
                "send {} or {\"overlap_secs\": 3600}",
            )
        })?
    };
    let rotation = state.keys.rotate(key, body.overlap_secs, &actor).await?;
    let mut answer = json!({
        "key": rotation.key,
        "old_key_id": rotation.old_key_id,
        "new_key_id": rotation.new_key_id,
        "old_accepted_until": rotation.old_accepted_until.map(rfc3339_millis),
    });
    if rotation.logins_end {
        answer["notice"] = json!(format!(
            "refresh tokens issued before this rotation stop working at {}: logins made before it (airlock login, offline access) must log in again then",
            rotation
                .old_accepted_until
                .map(rfc3339_millis)
                .unwrap_or_default()
        ));
    }
    Ok(Json(answer).into_response())
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<ServerKeyState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &ServerKeyState) -> Self {
        state.identity.clone()
    }
}
