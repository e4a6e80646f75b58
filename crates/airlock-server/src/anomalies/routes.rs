//! HTTP endpoints of anomalies:
//!
//! - `GET /api/v1/anomalies?status=open|resolved|all&limit=N`
//! - `GET /api/v1/anomalies/{id}`
//! - `POST /api/v1/anomalies/{id}/resolve` with `{"reason": ".."}`

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_store::AnomalyRow;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Anomalies, AnomalyError};
use crate::access::api_caller;
use crate::api::ApiError;
use crate::identity::{Authenticated, Identity};

/// State of the anomaly routes.
#[derive(Clone)]
pub struct AnomalyState {
    /// The detector and its records.
    pub anomalies: Arc<Anomalies>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The anomaly routes.
pub fn router(state: AnomalyState) -> Router {
    Router::new()
        .route("/api/v1/anomalies", get(list))
        .route("/api/v1/anomalies/{id}", get(show))
        .route("/api/v1/anomalies/{id}/resolve", post(resolve))
        .with_state(state)
}

impl From<AnomalyError> for ApiError {
    fn from(err: AnomalyError) -> Self {
        let message = err.to_string();
        match err {
            AnomalyError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask another access-admin (airlock anomalies resolve needs access-admin and may not be run by the principal the anomaly is about)",
            ),
            AnomalyError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "list anomalies with `airlock anomalies list`",
            ),
            AnomalyError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                message,
                "nothing to do; `airlock anomalies show ID` shows who resolved it",
            ),
            AnomalyError::BadRequest(_) => {
                ApiError::bad_request(message, "fix the request as the message says")
            }
            AnomalyError::Store(err) => ApiError::storage(&err),
        }
    }
}

fn time(millis: i64) -> String {
    airlock_core::audit::rfc3339_millis(millis)
}

/// The JSON form of an anomaly.
pub fn anomaly_json(row: &AnomalyRow) -> Value {
    json!({
        "id": row.id,
        "rule": row.rule.as_str(),
        "key": row.key,
        "action": row.action.as_str(),
        "applied": row.applied,
        "summary": row.summary,
        "target": row.target,
        "observed": row.observed,
        "threshold": row.threshold,
        "window_secs": row.window_secs,
        "status": row.status,
        "created_at": time(row.created_at),
        "resolved_at": row.resolved_at.map(time),
        "resolved_by": row.resolved_by,
        "resolution": row.resolution,
    })
}

async fn caller(
    identity: &Identity,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(Option<Authenticated>, airlock_core::Actor), ApiError> {
    Ok(api_caller(identity, headers, peer).await?)
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AnomalyState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (who, _) = caller(&state.identity, &headers, peer).await?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(status) => Some(status),
    };
    let rows = state
        .anomalies
        .list(who.as_ref(), status, query.limit.unwrap_or(100))
        .await?;
    let anomalies: Vec<Value> = rows.iter().map(anomaly_json).collect();
    Ok(Json(json!({ "anomalies": anomalies })).into_response())
}

fn anomaly_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            format!("{text:?} is not an anomaly id"),
            "anomaly ids are numbers; list them with `airlock anomalies list`",
        )
    })
}

async fn show(
    State(state): State<AnomalyState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (who, _) = caller(&state.identity, &headers, peer).await?;
    let row = state.anomalies.show(who.as_ref(), anomaly_id(&id)?).await?;
    Ok(Json(anomaly_json(&row)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    reason: String,
}

async fn resolve(
    State(state): State<AnomalyState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let id = anomaly_id(&id)?;
    let body: ResolveBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("resolving needs {{\"reason\": \"..\"}}: {e}"),
            "say why the anomaly is resolved",
        )
    })?;
    let row = state
        .anomalies
        .resolve(who.as_ref(), &actor, id, &body.reason)
        .await?;
    Ok(Json(anomaly_json(&row)).into_response())
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<AnomalyState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &AnomalyState) -> Self {
        state.identity.clone()
    }
}
