//! HTTP endpoints of service-account API keys (authenticated like every `/api/v1` request; the
//! service checks who may do what):
//!
//! - `GET /api/v1/service-accounts/{name}/keys`: the account's keys (id, name, created, expires,
//!   last used, revoked, status, who added it), never a secret or its hash.
//! - `POST /api/v1/service-accounts/{name}/keys` with `{"name", "expires_in_secs"?,
//!   "expires_at"?}` (RFC 3339; neither: the maximum lifetime): 201 with the key, its secret
//!   shown this once.
//! - `POST /api/v1/service-accounts/{name}/keys/{key}/revoke`: `key` is the key id, or the name
//!   of a live key.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_core::api_key::{ApiKeyName, RequestedExpiry};
use airlock_core::audit::rfc3339_millis;
use airlock_store::{ApiKeyRow, now_millis};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Identity;
use crate::access::authenticate;
use crate::api::ApiError;

/// The API key routes (state: the identity service).
pub(super) fn routes() -> Router<Arc<Identity>> {
    Router::new()
        .route(
            "/api/v1/service-accounts/{name}/keys",
            get(list_keys).post(add_key),
        )
        .route(
            "/api/v1/service-accounts/{name}/keys/{key}/revoke",
            post(revoke_key),
        )
}

/// A key as the API shows it.
fn key_json(account: &str, key: &ApiKeyRow) -> Value {
    let now = now_millis();
    let status = if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "account": account,
        "id": key.id,
        "name": key.name,
        "created": rfc3339_millis(key.created_at),
        "expires": key.expires_at.map(rfc3339_millis),
        "last_used": key.last_used_at.map(rfc3339_millis),
        "revoked": key.revoked_at.map(rfc3339_millis),
        "status": status,
        "created_by": key.created_by,
    })
}

async fn list_keys(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    let who = authenticate(&identity, &headers, Some(peer)).await?;
    let keys: Vec<Value> = identity
        .api_keys(&who, &account)
        .await?
        .iter()
        .map(|k| key_json(&account, k))
        .collect();
    Ok(Json(json!({"account": account, "keys": keys})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKey {
    name: String,
    expires_in_secs: Option<u64>,
    expires_at: Option<String>,
}

fn requested_expiry(body: &AddKey) -> Result<RequestedExpiry, ApiError> {
    match (body.expires_in_secs, body.expires_at.as_deref()) {
        (None, None) => Ok(RequestedExpiry::Default),
        (Some(secs), None) => Ok(RequestedExpiry::In(secs)),
        (None, Some(text)) => {
            let at =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                    ApiError::bad_request(
                        format!("expires_at {text:?} is not an RFC 3339 time"),
                        "give a time such as 2027-01-31T00:00:00Z",
                    )
                })?;
            let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| {
                ApiError::bad_request(
                    format!("expires_at {text:?} is out of range"),
                    "give a time such as 2027-01-31T00:00:00Z",
                )
            })?;
            Ok(RequestedExpiry::At(millis))
        }
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give expires_in_secs or expires_at, not both",
            "drop one of the two fields",
        )),
    }
}

async fn add_key(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(account): Path<String>,
    Json(body): Json<AddKey>,
) -> Result<Response, ApiError> {
    let who = authenticate(&identity, &headers, Some(peer)).await?;
    let actor = who.actor(Some(peer));
    let name: ApiKeyName =
        body.name
            .parse()
            .map_err(|e: airlock_core::api_key::InvalidKeyName| {
                ApiError::bad_request(e.to_string(), "name the key, e.g. ci-2026")
            })?;
    let expiry = requested_expiry(&body)?;
    let added = identity
        .add_api_key(&who, &actor, &account, &name, expiry)
        .await?;
    let mut answer = key_json(&account, &added.key);
    answer["api_key"] = json!(added.secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn revoke_key(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((account, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let who = authenticate(&identity, &headers, Some(peer)).await?;
    let actor = who.actor(Some(peer));
    let revoked = identity
        .revoke_api_key(&who, &actor, &account, &key)
        .await?;
    Ok(
        Json(json!({"account": account, "id": revoked.id, "name": revoked.name, "revoked": true}))
            .into_response(),
    )
}
