//! HTTP endpoints of the catalog: `GET /api/v1/status/{path}`.

use std::str::FromStr;
use std::sync::Arc;

use airlock_core::RepoName;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{CatalogError, CatalogService};
use crate::api::ApiError;
use crate::caller::Caller;
use crate::identity::Identity;

/// State of the catalog routes.
#[derive(Clone)]
pub struct CatalogState {
    /// The catalog service.
    pub catalog: Arc<CatalogService>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The catalog routes.
pub fn router(state: CatalogState) -> Router {
    Router::new()
        .route("/api/v1/status/{*path}", get(status))
        .with_state(state)
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Store(err) => ApiError::storage(&err),
        }
    }
}

/// Whether the caller may read `repository`: pull rights on it (anyone with access control off).
fn readable(state: &CatalogState, caller: &Caller, repository: &str) -> bool {
    match (&caller.who, RepoName::from_str(repository)) {
        (None, _) => true,
        (Some(who), Ok(repo)) => {
            state
                .identity
                .grants_allow(who, &repo, airlock_core::Action::Pull)
        }
        (Some(_), Err(_)) => false,
    }
}

async fn status(
    State(state): State<CatalogState>,
    caller: Caller,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let mut status = state.catalog.status(path.trim_matches('/')).await?;
    if let Some(stages) = status["stages"].as_array_mut() {
        stages.retain(|s| readable(&state, &caller, s["repository"].as_str().unwrap_or("")));
    }
    Ok(Json(status).into_response())
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<CatalogState> for Arc<Identity> {
    fn from_ref(state: &CatalogState) -> Self {
        state.identity.clone()
    }
}
