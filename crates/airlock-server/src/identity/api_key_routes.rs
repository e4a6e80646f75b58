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

use std::sync::Arc;

use airlock_api::identity as api;
use airlock_core::api_key::{ApiKeyName, RequestedExpiry};
use airlock_core::audit::rfc3339_millis;
use airlock_store::{ApiKeyRow, now_millis};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::Identity;
use crate::api::ApiError;
use crate::caller::SignedIn;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::paging::{
    DEFAULT_PAGE, MAX_PAGE, page_size, parse_time_cursor, split_page, time_cursor,
};
use axum::extract::State;

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
fn api_key(account: &str, key: &ApiKeyRow) -> api::ApiKey {
    let now = now_millis();
    let status = if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    api::ApiKey {
        account: account.to_string(),
        id: key.id.clone(),
        name: key.name.clone(),
        created: rfc3339_millis(key.created_at),
        expires: key.expires_at.map(rfc3339_millis),
        last_used: key.last_used_at.map(rfc3339_millis),
        revoked: key.revoked_at.map(rfc3339_millis),
        status: status.into(),
        created_by: key.created_by.clone(),
    }
}

/// A service account's keys, live and ended, oldest first, a page at a time (never a secret or
/// its hash).
#[utoipa::path(
    operation_id = "service_account_list_keys",
    get,
    path = "/api/v1/service-accounts/{name}/keys",
    tag = "identity",
    params(("name" = String, Path, description = "The service account"), airlock_api::catalog::PageQuery),
    responses(
        (status = 200, description = "A page of keys", body = api::ApiKeyList),
        (status = 400, description = "The principal is not a service account, a page size out of range, a cursor this list did not hand out, or a malformed query", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin (or the account itself)", body = airlock_api::ErrorBody),
        (status = 404, description = "No such account", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
pub(super) async fn list_keys(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(account): ApiPath<String>,
    ApiQuery(query): ApiQuery<airlock_api::catalog::PageQuery>,
) -> Result<Json<api::ApiKeyList>, ApiError> {
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let after = parse_time_cursor(query.last.as_deref())?;
    // One row past the page says whether another page follows.
    let rows = identity
        .api_keys(&caller.who, &account, after.as_ref(), limit + 1)
        .await?;
    let (rows, next) = split_page(rows, limit, |k| time_cursor(k.created_at, &k.id));
    let keys = rows.iter().map(|k| api_key(&account, k)).collect();
    Ok(Json(api::ApiKeyList {
        account,
        keys,
        next,
    }))
}

fn requested_expiry(body: &api::AddApiKeyRequest) -> Result<RequestedExpiry, ApiError> {
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

/// Adds a named key to a service account; its secret is answered this once.
#[utoipa::path(
    operation_id = "service_account_add_key",
    post,
    path = "/api/v1/service-accounts/{name}/keys",
    tag = "identity",
    params(("name" = String, Path, description = "The service account")),
    request_body = api::AddApiKeyRequest,
    responses(
        (status = 201, description = "The key and its secret", body = api::ApiKeyAdded),
        (status = 400, description = "An invalid key name or expiry, or the principal is not a service account", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such account", body = airlock_api::ErrorBody),
        (status = 409, description = "A live key has this name", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
pub(super) async fn add_key(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(account): ApiPath<String>,
    ApiJson(body): ApiJson<api::AddApiKeyRequest>,
) -> Result<(StatusCode, Json<api::ApiKeyAdded>), ApiError> {
    let name: ApiKeyName =
        body.name
            .parse()
            .map_err(|e: airlock_core::api_key::InvalidKeyName| {
                ApiError::bad_request(e.to_string(), "name the key, e.g. ci-2026")
            })?;
    let expiry = requested_expiry(&body)?;
    let added = identity
        .add_api_key(&caller.who, &caller.actor, &account, &name, expiry)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::ApiKeyAdded {
            key: api_key(&account, &added.key),
            api_key: added.secret,
        }),
    ))
}

/// Revokes one key (by id, or by the name of a live key); the account's other keys keep working.
#[utoipa::path(
    operation_id = "service_account_revoke_key",
    post,
    path = "/api/v1/service-accounts/{name}/keys/{key}/revoke",
    tag = "identity",
    params(
        ("name" = String, Path, description = "The service account"),
        ("key" = String, Path, description = "The key id, or the name of a live key"),
    ),
    responses(
        (status = 200, description = "The key is revoked", body = api::ApiKeyRevoked),
        (status = 400, description = "The principal is not a service account", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such account or key", body = airlock_api::ErrorBody),
        (status = 409, description = "The key is already revoked", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
pub(super) async fn revoke_key(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath((account, key)): ApiPath<(String, String)>,
) -> Result<Json<api::ApiKeyRevoked>, ApiError> {
    let revoked = identity
        .revoke_api_key(&caller.who, &caller.actor, &account, &key)
        .await?;
    Ok(Json(api::ApiKeyRevoked {
        account,
        id: revoked.id,
        name: revoked.name,
        revoked: true,
    }))
}
