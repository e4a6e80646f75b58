//! HTTP endpoints of the catalog (every one a read, filtered by the caller's pull rights):
//!
//! - `GET /api/v1/stages`: the stages, their gates and freezes
//! - `GET /api/v1/repositories?stage=&n=&last=`: repositories holding artifacts
//! - `GET /api/v1/tags?repository=&n=&last=`: a repository's tags with digests and times
//! - `GET /api/v1/channels/history?repository=&channel=&n=&last=`: a channel tag's moves
//! - `GET /api/v1/status/{path}` (the path may contain `/`; an OpenAPI client sends it
//!   percent-encoded, `team%2Fapp`) and `GET /api/v1/status?repository=&n=&last=` (also for
//!   patterns such as `team/*`, paged)

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::catalog as api;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::{
    CatalogError, CatalogService, DEFAULT_PAGE, DEFAULT_STATUS_PAGE, MAX_PAGE, MAX_STATUS_PAGE,
    Page,
};
use crate::api::ApiError;
use crate::caller::Caller;
use crate::extract::{ApiPath, ApiQuery};
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
        .route("/api/v1/stages", get(stages))
        .route("/api/v1/repositories", get(repositories))
        .route("/api/v1/tags", get(tags))
        .route("/api/v1/channels/history", get(channel_history))
        .route("/api/v1/status", get(status_query))
        .route("/api/v1/status/{*path}", get(status))
        .with_state(state)
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        let message = err.to_string();
        let bad = |code: &'static str, remediation: String| {
            ApiError::new(StatusCode::BAD_REQUEST, code, message.clone(), remediation)
        };
        match &err {
            CatalogError::UnknownStage { configured, .. }
            | CatalogError::MisspeltStage { configured, .. } => bad(
                "STAGE_UNKNOWN",
                format!(
                    "use one of the configured stages ({}); `airlock stages` lists them",
                    configured.join(", ")
                ),
            ),
            CatalogError::InvalidName { what, .. } => bad(
                "NAME_INVALID",
                match *what {
                    "pattern" => "write the pattern as `team/*` (a path prefix ending in `*`), optionally after a stage: `prod/team/*`".to_string(),
                    "repository path" => "write the path as lowercase segments separated by `/`, e.g. `team/app`".to_string(),
                    _ => "write the repository with its stage, e.g. `prod/team/app`; `airlock repos` lists them".to_string(),
                },
            ),
            CatalogError::NotGated { .. } => bad(
                "STAGE_NOT_GATED",
                "name the repository in a gated stage, e.g. `prod/team/app`".to_string(),
            ),
            CatalogError::UnknownChannel { configured, .. } => bad(
                "CHANNEL_UNKNOWN",
                if configured.is_empty() {
                    "this stage has no channel tags; `airlock tags REPO` lists its tags".to_string()
                } else {
                    format!("use one of: {}", configured.join(", "))
                },
            ),
            CatalogError::PageSize { max, .. } => bad(
                "PAGINATION_NUMBER_INVALID",
                format!("ask for n between 1 and {max}"),
            ),
            CatalogError::Cursor { .. } => bad(
                "PAGINATION_CURSOR_INVALID",
                "pass the `next` value of the previous page as `last`, or leave `last` out for the first page".to_string(),
            ),
            CatalogError::NoArtifacts { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "check the name against `airlock repos` (it lists what you may read); you need pull access to the repository",
            ),
            CatalogError::NoMatch { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "check the pattern against `airlock repos` (it lists what you may read)",
            ),
            CatalogError::Store(err) => ApiError::storage(err),
        }
    }
}

/// The configured stages in pipeline order, each with its gate and freeze.
#[utoipa::path(
    get,
    path = "/api/v1/stages",
    tag = "catalog",
    responses(
        (status = 200, description = "The stages", body = api::StageList),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn stages(
    State(state): State<CatalogState>,
    _caller: Caller,
) -> Result<Json<api::StageList>, ApiError> {
    Ok(Json(state.catalog.stages().await?))
}

/// Repositories holding artifacts (of one stage, or all), by name, that the caller may pull.
#[utoipa::path(
    get,
    path = "/api/v1/repositories",
    tag = "catalog",
    params(api::RepositoriesQuery),
    responses(
        (status = 200, description = "A page of repositories", body = api::RepositoryPage),
        (status = 400, description = "Unknown stage or page size out of range", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn repositories(
    State(state): State<CatalogState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<api::RepositoriesQuery>,
) -> Result<Json<api::RepositoryPage>, ApiError> {
    let page = Page::new(query.n, query.last, DEFAULT_PAGE, MAX_PAGE)?;
    Ok(Json(
        state
            .catalog
            .repositories(&caller, query.stage.as_deref(), page)
            .await?,
    ))
}

/// The tags of a stage-qualified repository, by name, with their digests and times.
#[utoipa::path(
    get,
    path = "/api/v1/tags",
    tag = "catalog",
    params(api::TagsQuery),
    responses(
        (status = 200, description = "A page of tags", body = api::TagPage),
        (status = 400, description = "Invalid repository name, unknown stage or page size out of range", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 404, description = "The repository holds no artifacts the caller may read", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn tags(
    State(state): State<CatalogState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<api::TagsQuery>,
) -> Result<Json<api::TagPage>, ApiError> {
    let page = Page::new(query.n, query.last, DEFAULT_PAGE, MAX_PAGE)?;
    Ok(Json(
        state.catalog.tags(&caller, &query.repository, page).await?,
    ))
}

/// Every move of a channel tag (promotions and rollbacks), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/channels/history",
    tag = "catalog",
    params(api::ChannelHistoryQuery),
    responses(
        (status = 200, description = "A page of moves", body = api::ChannelHistory),
        (status = 400, description = "Invalid repository name, unknown stage, a push stage, a tag that is not a channel tag, or a bad page", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 404, description = "The repository holds no artifacts the caller may read", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn channel_history(
    State(state): State<CatalogState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<api::ChannelHistoryQuery>,
) -> Result<Json<api::ChannelHistory>, ApiError> {
    let page = Page::new(query.n, query.last, DEFAULT_PAGE, MAX_PAGE)?;
    Ok(Json(
        state
            .catalog
            .channel_history(&caller, &query.repository, &query.channel, page)
            .await?,
    ))
}

/// Which digest is in which stage for one repository: `prod/team/app` (that stage only) or
/// `team/app` (every stage the caller may read), with promotions, approvals and channel moves.
#[utoipa::path(
    get,
    path = "/api/v1/status/{path}",
    tag = "catalog",
    params(("path" = String, Path, description = "`prod/team/app` or `team/app`; the `/` may be sent as `%2F`", pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$", max_length = 255), api::StatusPathQuery),
    responses(
        (status = 200, description = "A page of the repository's status", body = api::RepositoryStatus),
        (status = 400, description = "Invalid name, a pattern (use `GET /api/v1/status?repository=`), an unknown stage, or a bad page", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 404, description = "No artifacts the caller may read under that name", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn status(
    State(state): State<CatalogState>,
    caller: Caller,
    ApiPath(path): ApiPath<String>,
    ApiQuery(query): ApiQuery<api::StatusPathQuery>,
) -> Result<Json<api::RepositoryStatus>, ApiError> {
    let page = Page::new(query.n, query.last, DEFAULT_PAGE, MAX_PAGE)?;
    if path.contains('*') {
        return Err(ApiError::bad_request(
            format!("{path:?} is a pattern"),
            format!(
                "ask GET /api/v1/status?repository={} for the paged status of every match",
                path.trim_matches('/')
            ),
        ));
    }
    Ok(Json(state.catalog.status(&caller, &path, page).await?))
}

/// The status of a repository (`prod/team/app`, `team/app`) or of every repository path matching
/// a pattern (`team/*`, `prod/team/*`), a page of paths at a time.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "catalog",
    params(api::StatusQuery),
    responses(
        (status = 200, description = "A page of repository statuses", body = api::StatusPage),
        (status = 400, description = "Invalid name or pattern, unknown stage or page size out of range", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 404, description = "No artifacts the caller may read under that name or pattern", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn status_query(
    State(state): State<CatalogState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<api::StatusQuery>,
) -> Result<Json<api::StatusPage>, ApiError> {
    // A pattern pages repository paths; one repository pages its artifacts.
    let page = if query.repository.contains('*') {
        Page::new(query.n, query.last, DEFAULT_STATUS_PAGE, MAX_STATUS_PAGE)?
    } else {
        Page::new(query.n, query.last, DEFAULT_PAGE, MAX_PAGE)?
    };
    Ok(Json(
        state
            .catalog
            .status_page(&caller, &query.repository, page)
            .await?,
    ))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(stages, repositories, tags, channel_history, status, status_query))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<CatalogState> for Arc<Identity> {
    fn from_ref(state: &CatalogState) -> Self {
        state.identity.clone()
    }
}
