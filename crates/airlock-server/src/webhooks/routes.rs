//! HTTP endpoints of webhooks:
//!
//! - `POST /api/v1/webhooks` with `{"url", "events": [..], "secret", "ca_cert"?}` (`ca_cert`:
//!   PEM of the CA an `https://` receiver's certificate must chain to), `GET /api/v1/webhooks`
//! - `DELETE /api/v1/webhooks/{id}`
//! - `GET /api/v1/webhooks/{id}/deliveries?status=&limit=`
//! - `POST /api/v1/webhooks/{id}/test`

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_store::{DeliveryRow, WebhookRow};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{WebhookError, Webhooks};
use crate::access::api_caller;
use crate::api::ApiError;
use crate::identity::{Authenticated, Identity};

/// State of the webhook routes.
#[derive(Clone)]
pub struct WebhookState {
    /// The service.
    pub webhooks: Arc<Webhooks>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The webhook routes.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(add))
        .route("/api/v1/webhooks/{id}", delete(remove))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/api/v1/webhooks/{id}/test", post(test))
        .with_state(state)
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        let message = err.to_string();
        match err {
            WebhookError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask an access-admin",
            ),
            WebhookError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "list webhooks with `airlock webhooks list`",
            ),
            WebhookError::BadRequest(_) => {
                ApiError::bad_request(message, "fix the request as the message says")
            }
            WebhookError::Store(err) => ApiError::storage(&err),
        }
    }
}

fn time(millis: i64) -> String {
    airlock_core::audit::rfc3339_millis(millis)
}

/// The JSON form of an endpoint (never its secret). `full_url` is for access-admins: others see
/// only the URL's origin and a SHA-256 of it, since paths and queries often carry tokens.
pub fn webhook_json(row: &WebhookRow, full_url: bool) -> Value {
    let url = if full_url {
        row.url.clone()
    } else {
        super::redacted_url(&row.url)
    };
    json!({"id": row.id, "url": url, "events": row.events, "created_by": row.created_by,
           "created_at": time(row.created_at), "ca_cert": row.ca_cert})
}

/// The JSON form of a delivery.
pub fn delivery_json(row: &DeliveryRow) -> Value {
    json!({
        "id": row.id,
        "webhook": row.endpoint_id,
        "type": airlock_core::webhook::event_type(&row.event_type),
        "subject": row.subject,
        "event_id": row.audit_index.map_or_else(|| format!("delivery-{}", row.id), |i| i.to_string()),
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": (row.status == "pending").then(|| time(row.next_attempt_at)),
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": time(row.created_at),
        "delivered_at": row.delivered_at.map(time),
    })
}

async fn caller(
    identity: &Identity,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(Option<Authenticated>, airlock_core::Actor), ApiError> {
    Ok(api_caller(identity, headers, peer).await?)
}

fn webhook_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            format!("{text:?} is not a webhook id"),
            "webhook ids are numbers; list them with `airlock webhooks list`",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    url: String,
    events: Vec<String>,
    secret: String,
    #[serde(default)]
    ca_cert: Option<String>,
}

async fn add(
    State(state): State<WebhookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let body: AddBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("a webhook needs {{\"url\", \"events\", \"secret\"}}: {e}"),
            "send the endpoint URL, its event patterns and its signing secret",
        )
    })?;
    let row = state
        .webhooks
        .add(
            who.as_ref(),
            &actor,
            &body.url,
            &body.events,
            &body.secret,
            body.ca_cert.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(webhook_json(&row, true))).into_response())
}

async fn list(
    State(state): State<WebhookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let rows = state.webhooks.list(who.as_ref(), &actor.principal).await?;
    let full_url = super::Webhooks::manages(who.as_ref());
    let webhooks: Vec<Value> = rows.iter().map(|row| webhook_json(row, full_url)).collect();
    Ok(Json(json!({ "webhooks": webhooks })).into_response())
}

async fn remove(
    State(state): State<WebhookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let id = webhook_id(&id)?;
    state.webhooks.remove(who.as_ref(), &actor, id).await?;
    Ok(Json(json!({"id": id, "removed": true})).into_response())
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn deliveries(
    State(state): State<WebhookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let id = webhook_id(&id)?;
    let status = query.status.as_deref().filter(|s| *s != "all");
    let rows = state
        .webhooks
        .deliveries(
            who.as_ref(),
            &actor.principal,
            id,
            status,
            query.limit.unwrap_or(100),
        )
        .await?;
    let list: Vec<Value> = rows.iter().map(delivery_json).collect();
    Ok(Json(json!({"webhook": id, "deliveries": list})).into_response())
}

async fn test(
    State(state): State<WebhookState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let id = webhook_id(&id)?;
    let delivery = state.webhooks.test(who.as_ref(), &actor, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"webhook": id, "delivery": delivery, "type": "dev.airlock.webhook.test"})),
    )
        .into_response())
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<WebhookState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &WebhookState) -> Self {
        state.identity.clone()
    }
}
