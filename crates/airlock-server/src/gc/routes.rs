//! HTTP endpoint of garbage collection: `POST /api/v1/gc` with `{"dry_run": bool}` (an empty body
//! is a real run).

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::gc as api;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use super::{Collector, GcError};
use crate::api::{ApiError, json_body};
use crate::caller::Caller;
use crate::identity::Identity;

/// State of the gc route.
#[derive(Clone)]
pub struct GcState {
    /// The collector.
    pub collector: Arc<Collector>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The gc route.
pub fn router(state: GcState) -> Router {
    Router::new()
        .route("/api/v1/gc", post(run))
        .with_state(state)
}

impl From<GcError> for ApiError {
    fn from(err: GcError) -> Self {
        match &err {
            GcError::Forbidden { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                err.to_string(),
                "ask an administrator to run it, or an access-admin for access-admin in scope * (airlock access request access-admin --scope '*' --for 1h --reason ...)",
            ),
            GcError::Running => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                err.to_string(),
                "wait for it to finish; its result is in the audit log (airlock audit list --kind gc.collected)",
            ),
            GcError::LockLost => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                err.to_string(),
                "run gc again once the database is reachable; its result so far is in the audit log (airlock audit list --kind gc.collected)",
            ),
            GcError::Store(store) => ApiError::storage(store),
            GcError::Interrupted(cause) => ApiError::internal(cause),
        }
    }
}

/// Runs garbage collection: deletes blobs no manifest references (older than the grace period),
/// files no row names, and, with `keep_untagged_days`, old untagged manifests in push stages.
/// Needs access-admin everywhere. A dry run only counts.
#[utoipa::path(
    operation_id = "run_gc",
    post,
    path = "/api/v1/gc",
    tag = "gc",
    request_body(content = Option<api::GcRequest>, description = "May be empty (a real run)"),
    responses(
        (status = 200, description = "What was (or, in a dry run, would be) deleted", body = api::GcReport),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 403, description = "Not an access-admin everywhere", body = ErrorBody),
        (status = 409, description = "A run is already in progress", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn run(
    State(state): State<GcState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<api::GcReport>, ApiError> {
    let request: api::GcRequest = if body.is_empty() {
        api::GcRequest::default()
    } else {
        json_body(
            &body,
            "gc request",
            "send an empty body, {\"dry_run\": false} or {\"dry_run\": true}",
        )?
    };
    let report = state
        .collector
        .run(caller.who.as_ref(), &caller.actor, request.dry_run)
        .await?;
    Ok(Json(report))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(run))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<GcState> for Arc<Identity> {
    fn from_ref(state: &GcState) -> Self {
        state.identity.clone()
    }
}
