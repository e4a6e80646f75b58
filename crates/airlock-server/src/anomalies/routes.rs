//! HTTP endpoints of anomalies:
//!
//! - `GET /api/v1/anomalies?status=open|resolved|all&n=N&last=CURSOR` (`limit` is `n`'s older
//!   name)
//! - `GET /api/v1/anomalies/{id}`
//! - `POST /api/v1/anomalies/{id}/resolve` with `{"reason": ".."}`

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::anomalies as api;
use airlock_store::AnomalyRow;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Anomalies, AnomalyError, AnomalyStatus};
use crate::api::{ApiError, json_body, query};
use crate::caller::Caller;
use crate::identity::Identity;
use crate::paging::{DEFAULT_PAGE, MAX_PAGE, PageError, page_size};

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
        let answer = |status: StatusCode, code: &'static str, remediation: &str| {
            ApiError::new(status, code, message.clone(), remediation)
        };
        match err {
            AnomalyError::ReadForbidden { .. } => answer(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "ask an access-admin for the auditor role (airlock access request)",
            ),
            AnomalyError::ResolveForbidden { .. } => answer(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "ask an access-admin to resolve it: airlock anomalies resolve needs the access-admin role",
            ),
            AnomalyError::ResolveOwn { .. } => answer(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "ask another access-admin: nobody resolves an anomaly about themselves",
            ),
            AnomalyError::Unknown { .. } => answer(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "list anomalies with `airlock anomalies list`",
            ),
            AnomalyError::AlreadyResolved { .. } => answer(
                StatusCode::CONFLICT,
                "CONFLICT",
                "nothing to do; `airlock anomalies show ID` shows who resolved it",
            ),
            AnomalyError::ReasonMissing => answer(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "say why with --reason (\"reason\" in the request); it is recorded in the audit log",
            ),
            AnomalyError::ReasonTooLong { .. } => answer(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "shorten the reason; link to a ticket for the details",
            ),
            AnomalyError::Store(err) => ApiError::storage(&err),
        }
    }
}

fn time(millis: i64) -> String {
    airlock_core::audit::rfc3339_millis(millis)
}

/// An anomaly as the API shows it.
pub fn anomaly_view(row: &AnomalyRow) -> api::Anomaly {
    api::Anomaly {
        id: row.id,
        rule: row.rule.as_str().to_string(),
        key: row.key.clone(),
        action: row.action.as_str().to_string(),
        applied: row.applied,
        summary: row.summary.clone(),
        target: api::AnomalyTarget {
            principal: row.target.principal.clone(),
            repository: row
                .target
                .repository
                .as_ref()
                .map(|r| r.as_str().to_string()),
            digest: row.target.digest.as_ref().map(|d| d.to_string()),
            stage: row.target.stage.clone(),
            source: row.target.source.clone(),
        },
        observed: row.observed,
        threshold: row.threshold,
        window_secs: row.window_secs,
        status: row.status.clone(),
        created_at: time(row.created_at),
        resolved_at: row.resolved_at.map(time),
        resolved_by: row.resolved_by.clone(),
        resolution: row.resolution.clone(),
    }
}

/// Anomalies, newest first (needs access-admin or auditor with access control on).
#[utoipa::path(
    operation_id = "list_anomalies",
    get,
    path = "/api/v1/anomalies",
    tag = "anomalies",
    params(api::AnomalyListQuery),
    responses(
        (status = 200, description = "The anomalies", body = api::AnomalyList),
        (status = 400, description = "status is not open, resolved or all, n (limit) is not a number from 1 to 1000, or last is not a cursor of this list", body = ErrorBody),
        (status = 403, description = "The caller may not read anomalies", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AnomalyState>,
    caller: Caller,
    params: Result<Query<api::AnomalyListQuery>, QueryRejection>,
) -> Result<Json<api::AnomalyList>, ApiError> {
    let params = query(
        params,
        "pass status=open, resolved or all, and n (or limit) as a number from 1 to 1000",
    )?;
    let status = match params.status {
        None | Some(api::AnomalyStatusFilter::All) => None,
        Some(api::AnomalyStatusFilter::Open) => Some(AnomalyStatus::Open),
        Some(api::AnomalyStatusFilter::Resolved) => Some(AnomalyStatus::Resolved),
    };
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
    let before = match params.last.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(last) => Some(last.parse::<i64>().map_err(|_| PageError::Cursor {
            value: last.chars().take(128).collect(),
        })?),
    };
    // One row past the page says whether another page follows.
    let mut rows = state
        .anomalies
        .list(caller.who.as_ref(), status, before, limit + 1)
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.id.to_string())
    } else {
        None
    };
    Ok(Json(api::AnomalyList {
        anomalies: rows.iter().map(anomaly_view).collect(),
        next,
    }))
}

fn anomaly_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            format!("{text:?} is not an anomaly id"),
            "anomaly ids are numbers; list them with `airlock anomalies list`",
        )
    })
}

/// One anomaly (needs access-admin or auditor with access control on).
#[utoipa::path(
    operation_id = "show_anomaly",
    get,
    path = "/api/v1/anomalies/{id}",
    tag = "anomalies",
    params(("id" = i64, Path, description = "The anomaly's id")),
    responses(
        (status = 200, description = "The anomaly", body = api::Anomaly),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 403, description = "The caller may not read anomalies", body = ErrorBody),
        (status = 404, description = "No anomaly has this id", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AnomalyState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<api::Anomaly>, ApiError> {
    let row = state
        .anomalies
        .show(caller.who.as_ref(), anomaly_id(&id)?)
        .await?;
    Ok(Json(anomaly_view(&row)))
}

/// Resolves an open anomaly and undoes its action (needs access-admin; never the principal the
/// anomaly is about).
#[utoipa::path(
    operation_id = "resolve_anomaly",
    post,
    path = "/api/v1/anomalies/{id}/resolve",
    tag = "anomalies",
    params(("id" = i64, Path, description = "The anomaly's id")),
    request_body = api::ResolveAnomalyRequest,
    responses(
        (status = 200, description = "The anomaly, resolved", body = api::Anomaly),
        (status = 400, description = "The id is not a number, or the reason is missing or too long", body = ErrorBody),
        (status = 403, description = "Not an access-admin, or the anomaly is about the caller", body = ErrorBody),
        (status = 404, description = "No anomaly has this id", body = ErrorBody),
        (status = 409, description = "Already resolved", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn resolve(
    State(state): State<AnomalyState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<api::Anomaly>, ApiError> {
    let id = anomaly_id(&id)?;
    let body: api::ResolveAnomalyRequest = json_body(
        &body,
        "resolution",
        "send {\"reason\": \"..\"} saying why the anomaly is resolved",
    )?;
    let row = state
        .anomalies
        .resolve(caller.who.as_ref(), &caller.actor, id, &body.reason)
        .await?;
    Ok(Json(anomaly_view(&row)))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(list, show, resolve))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<AnomalyState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &AnomalyState) -> Self {
        state.identity.clone()
    }
}
