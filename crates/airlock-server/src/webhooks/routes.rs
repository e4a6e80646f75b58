//! HTTP endpoints of webhooks:
//!
//! - `POST /api/v1/webhooks` with `{"url", "events": [..], "secret", "ca_cert"?}` (`ca_cert`:
//!   PEM of the CA an `https://` receiver's certificate must chain to), `GET /api/v1/webhooks`
//! - `DELETE /api/v1/webhooks/{id}`
//! - `GET /api/v1/webhooks/{id}/deliveries?status=&limit=`
//! - `POST /api/v1/webhooks/{id}/test`

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::webhooks as api;
use airlock_store::{DeliveryRow, WebhookRow};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::{WebhookError, Webhooks};
use crate::api::{ApiError, json_body, query};
use crate::caller::Caller;
use crate::extract::ApiQuery;
use crate::identity::Identity;
use crate::paging::{DEFAULT_PAGE, MAX_PAGE, page_size, parse_id_cursor, split_page};

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
        use super::UrlProblem as U;
        let message = err.to_string();
        let bad = |remediation: &str| ApiError::bad_request(message.clone(), remediation);
        match err {
            WebhookError::Forbidden { read: true, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask an access-admin for the auditor role (airlock access request), or an access-admin to look",
            ),
            WebhookError::Forbidden { read: false, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask an access-admin to make the change",
            ),
            WebhookError::Unknown { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "list webhooks with `airlock webhooks list`",
            ),
            WebhookError::Url(U::TooLong { .. }) => {
                bad("use a shorter URL; put no tokens in it, the HMAC signature authenticates")
            }
            WebhookError::Url(U::NotAUrl { .. } | U::Scheme { .. } | U::NoHost) => {
                bad("give the receiver's full URL, e.g. https://hooks.example.com/airlock")
            }
            WebhookError::Url(U::Credentials) => bad(
                "drop user:password from the URL; the receiver checks the X-Airlock-Signature HMAC with the secret",
            ),
            WebhookError::Target(_) => bad(
                "give a public receiver, or have the operator set [webhooks] allow_private_targets = true",
            ),
            WebhookError::CaCertNeedsHttps => {
                bad("use an https:// URL with --receiver-ca-cert, or leave the CA out")
            }
            WebhookError::CaCertTooLong { .. } => {
                bad("send only the CA certificate(s) the receiver's certificate chains to")
            }
            WebhookError::CaCert(_) => {
                bad("send PEM certificates (-----BEGIN CERTIFICATE-----) of the receiver's CA")
            }
            WebhookError::EventCount { .. } => {
                bad("give --events with 1 to 64 patterns, e.g. promotion.* or anomaly.*")
            }
            WebhookError::EventPattern { .. } => bad(
                "write event patterns as a type (promotion.promoted), a prefix (promotion.*) or *",
            ),
            WebhookError::SecretLength { .. } => bad(
                "generate one with `openssl rand -hex 32 > secret` and pass --secret-file secret",
            ),
            WebhookError::DeliveryStatus { .. } => {
                bad("use status=pending, delivered, dead, cancelled or all")
            }
            WebhookError::Store(err) => ApiError::storage(&err),
        }
    }
}

fn time(millis: i64) -> String {
    airlock_core::audit::rfc3339_millis(millis)
}

/// An endpoint as the API shows it (never its secret). `full_url` is for access-admins: others
/// see only the URL's origin and a SHA-256 of it, since paths and queries often carry tokens.
pub fn webhook_view(row: &WebhookRow, full_url: bool) -> api::Webhook {
    let url = if full_url {
        row.url.clone()
    } else {
        super::redacted_url(&row.url)
    };
    api::Webhook {
        id: row.id,
        url,
        events: row.events.clone(),
        created_by: row.created_by.clone(),
        created_at: time(row.created_at),
        ca_cert: row.ca_cert.clone(),
    }
}

/// A delivery as the API shows it.
pub fn delivery_view(row: &DeliveryRow) -> api::Delivery {
    api::Delivery {
        id: row.id,
        webhook: row.endpoint_id,
        kind: airlock_core::webhook::event_type(&row.event_type),
        subject: row.subject.clone(),
        event_id: row
            .audit_index
            .map_or_else(|| format!("delivery-{}", row.id), |i| i.to_string()),
        status: row.status.clone(),
        attempts: row.attempts,
        next_attempt_at: (row.status == "pending").then(|| time(row.next_attempt_at)),
        last_status: row.last_status,
        last_error: row.last_error.clone(),
        created_at: time(row.created_at),
        delivered_at: row.delivered_at.map(time),
    }
}

fn webhook_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            format!("{text:?} is not a webhook id"),
            "webhook ids are numbers; list them with `airlock webhooks list`",
        )
    })
}

/// Adds an endpoint (needs access-admin). The answer shows the full URL, never the secret.
#[utoipa::path(
    operation_id = "add_webhook",
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = api::AddWebhookRequest,
    responses(
        (status = 201, description = "The endpoint as added", body = api::Webhook),
        (status = 400, description = "The URL, target, CA, event patterns or secret are not acceptable", body = ErrorBody),
        (status = 403, description = "Not an access-admin", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn add(
    State(state): State<WebhookState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<api::Webhook>), ApiError> {
    let body: api::AddWebhookRequest = json_body(
        &body,
        "webhook: a webhook needs {\"url\", \"events\", \"secret\"}",
        "send the endpoint URL, its event patterns and its signing secret",
    )?;
    let row = state
        .webhooks
        .add(
            caller.who.as_ref(),
            &caller.actor,
            &body.url,
            &body.events,
            &body.secret,
            body.ca_cert.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(webhook_view(&row, true))))
}

/// The active endpoints by id, a page at a time (needs access-admin, or auditor: auditors see
/// redacted URLs).
#[utoipa::path(
    operation_id = "list_webhooks",
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    params(airlock_api::catalog::PageQuery),
    responses(
        (status = 200, description = "A page of endpoints", body = api::WebhookList),
        (status = 400, description = "A page size out of range, a cursor this list did not hand out, or a malformed query", body = ErrorBody),
        (status = 403, description = "Neither access-admin nor auditor", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<WebhookState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<airlock_api::catalog::PageQuery>,
) -> Result<Json<api::WebhookList>, ApiError> {
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let after = parse_id_cursor(query.last.as_deref())?;
    // One row past the page says whether another page follows.
    let rows = state
        .webhooks
        .list(
            caller.who.as_ref(),
            &caller.actor.principal,
            after,
            limit + 1,
        )
        .await?;
    let (rows, next) = split_page(rows, limit, |row| row.id.to_string());
    let full_url = Webhooks::manages(caller.who.as_ref());
    Ok(Json(api::WebhookList {
        webhooks: rows.iter().map(|row| webhook_view(row, full_url)).collect(),
        next,
    }))
}

/// Removes an endpoint (needs access-admin); its pending deliveries are cancelled.
#[utoipa::path(
    operation_id = "remove_webhook",
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Removed", body = api::WebhookRemoved),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 403, description = "Not an access-admin", body = ErrorBody),
        (status = 404, description = "No active endpoint has this id", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<WebhookState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<api::WebhookRemoved>, ApiError> {
    let id = webhook_id(&id)?;
    state
        .webhooks
        .remove(caller.who.as_ref(), &caller.actor, id)
        .await?;
    Ok(Json(api::WebhookRemoved { id, removed: true }))
}

/// Deliveries to an endpoint, removed ones too, newest first, a page at a time (needs
/// access-admin or auditor).
#[utoipa::path(
    operation_id = "list_webhook_deliveries",
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id"), api::DeliveryListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = api::DeliveryList),
        (status = 400, description = "The id is not a number, status is not a delivery state, n (limit) is not a number from 1 to 1000, or last is not a cursor of this list", body = ErrorBody),
        (status = 403, description = "Neither access-admin nor auditor", body = ErrorBody),
        (status = 404, description = "No endpoint has this id", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn deliveries(
    State(state): State<WebhookState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<api::DeliveryListQuery>, QueryRejection>,
) -> Result<Json<api::DeliveryList>, ApiError> {
    let id = webhook_id(&id)?;
    let params = query(
        params,
        "pass status=pending, delivered, dead, cancelled or all, and n (or limit) as a number from 1 to 1000",
    )?;
    let limit = match (params.n, params.limit) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "both n and limit were given",
                "give the page size once, as n (limit is its older name)",
            ));
        }
        // The older name keeps its older answer to a bad value.
        (None, Some(limit)) => crate::api::list_limit(Some(limit), DEFAULT_PAGE)?,
        (n, None) => page_size(n, DEFAULT_PAGE, MAX_PAGE)?,
    };
    let before = parse_id_cursor(params.last.as_deref())?;
    let status = params.status.and_then(|s| match s {
        api::DeliveryStatusFilter::Pending => Some("pending"),
        api::DeliveryStatusFilter::Delivered => Some("delivered"),
        api::DeliveryStatusFilter::Dead => Some("dead"),
        api::DeliveryStatusFilter::Cancelled => Some("cancelled"),
        api::DeliveryStatusFilter::All => None,
    });
    let rows = state
        .webhooks
        .deliveries(
            caller.who.as_ref(),
            &caller.actor.principal,
            id,
            status,
            before,
            limit + 1,
        )
        .await?;
    let (rows, next) = split_page(rows, limit, |row| row.id.to_string());
    Ok(Json(api::DeliveryList {
        webhook: id,
        deliveries: rows.iter().map(delivery_view).collect(),
        next,
    }))
}

/// Queues a `dev.airlock.webhook.test` event for one endpoint (needs access-admin).
#[utoipa::path(
    operation_id = "test_webhook",
    post,
    path = "/api/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "Queued; the delivery id says where to look", body = api::TestQueued),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 403, description = "Not an access-admin", body = ErrorBody),
        (status = 404, description = "No active endpoint has this id", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn test(
    State(state): State<WebhookState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<api::TestQueued>), ApiError> {
    let id = webhook_id(&id)?;
    let delivery = state
        .webhooks
        .test(caller.who.as_ref(), &caller.actor, id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(api::TestQueued {
            webhook: id,
            delivery,
            kind: "dev.airlock.webhook.test".into(),
        }),
    ))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(add, list, remove, deliveries, test))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<WebhookState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &WebhookState) -> Self {
        state.identity.clone()
    }
}
