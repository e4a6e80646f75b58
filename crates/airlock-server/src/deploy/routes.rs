//! HTTP endpoints of deploy-time verification:
//!
//! - `POST /api/v1/verify`: whether each image reference was promoted into a stage and still
//!   stands (always `200` with one result per reference; `verified` says whether all passed)
//! - `POST /api/v1/deploy-tokens`: a pull-only token for named repositories, for an
//!   `imagePullSecret` (`201`)
//! - `POST /api/v1/deployments`: what a workload runs now, verified (`drift` signals)
//! - `GET /api/v1/drift?environment=&n=&last=`: reported images that drifted, a page at a time
//! - `POST /admission/v1/validate`: the Kubernetes ValidatingAdmissionWebhook (`admission.rs`),
//!   routed only when `[deploy.admission]` is set

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::deploy as api;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{DeployError, DeployService, Reader};
use crate::api::ApiError;
use crate::caller::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::identity::Identity;

/// State of the deploy routes.
#[derive(Clone)]
pub struct DeployState {
    /// The verification service.
    pub deploy: Arc<DeployService>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The deploy routes (the admission webhook only when configured).
pub fn router(state: DeployState) -> Router {
    let router = Router::new()
        .route("/api/v1/verify", post(verify))
        .route("/api/v1/deploy-tokens", post(deploy_token))
        .route("/api/v1/deployments", post(report_deployment))
        .route("/api/v1/drift", get(drift));
    let router = if state.deploy.config().admission.is_some() {
        router.route(
            "/admission/v1/validate",
            post(super::admission::validate)
                .layer(DefaultBodyLimit::max(super::admission::MAX_REVIEW_BYTES)),
        )
    } else {
        router
    };
    router.with_state(state)
}

impl From<DeployError> for ApiError {
    fn from(err: DeployError) -> Self {
        let err = match err {
            DeployError::Auth(auth) => return ApiError::from(auth),
            other => other,
        };
        let message = err.to_string();
        match &err {
            DeployError::UnknownStage { configured, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "STAGE_UNKNOWN",
                message,
                format!(
                    "verify against one of the configured stages ({}); `airlock stages` lists them",
                    configured.join(", ")
                ),
            ),
            DeployError::NoReferences => ApiError::new(
                StatusCode::BAD_REQUEST,
                "REFERENCE_INVALID",
                message,
                "name at least one image: {\"stage\":\"prod\",\"references\":[\"HOST/prod/team/app@sha256:...\"]}",
            ),
            DeployError::TooManyReferences { max, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "TOO_MANY_REFERENCES",
                message,
                format!("split the references into requests of at most {max}"),
            ),
            DeployError::AccessControlOff => ApiError::new(
                StatusCode::BAD_REQUEST,
                "ACCESS_CONTROL_OFF",
                message,
                "pull without credentials, or turn access control on ([access] enabled = true)",
            ),
            DeployError::TokenRepositories { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "REPOSITORIES_INVALID",
                message,
                format!(
                    "name 1 to {} repository paths, e.g. {{\"stage\":\"prod\",\"repositories\":[\"team/app\"]}}; ask for several tokens for more",
                    super::MAX_TOKEN_REPOSITORIES
                ),
            ),
            DeployError::InvalidRepository { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                message,
                "write each repository as its path without the stage: lowercase segments separated by `/`, e.g. team/app",
            ),
            DeployError::NotPullable { repository } => ApiError::new(
                StatusCode::FORBIDDEN,
                "DENIED",
                message.clone(),
                format!(
                    "ask an access-admin for the deployer role on {repository} (airlock access request deployer --scope {repository} --for 1h --reason ...)"
                ),
            ),
            DeployError::TokenLifetime { max, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "TTL_INVALID",
                message,
                format!(
                    "ask for 1 to {max} seconds (airlock deploy-token --ttl 10m); a longer lifetime is [deploy] max_token_ttl_secs"
                ),
            ),
            DeployError::Auth(_) => ApiError::internal_message(message),
            DeployError::InvalidReport { field, .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "REPORT_INVALID",
                message.clone(),
                match *field {
                    "images" => "list each image reference as the workload names it (at most 4096 characters)".to_string(),
                    _ => format!("give {field} as a short printable name, e.g. prod-eu or shop/deployment/checkout"),
                },
            ),
            DeployError::PageSize { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                message,
                "ask for n between 1 and 1000",
            ),
            DeployError::Cursor { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_CURSOR_INVALID",
                message,
                "pass the `next` value of the previous page as `last`, or leave `last` out for the first page",
            ),
            DeployError::Store(store) => ApiError::storage(store),
        }
    }
}

/// Verifies image references against a stage: each must be a digest promoted into it (or a
/// manifest of an index that was), in a repository the caller may pull from, with its evidence
/// standing, not quarantined and, with `current`, where its channel tag points now. Each result
/// names its promotion, decision and signed attestation, or every check it failed with the fix.
#[utoipa::path(
    post,
    path = "/api/v1/verify",
    tag = "deploy",
    request_body = api::VerifyRequest,
    responses(
        (status = 200, description = "One result per reference; `verified` is true only if all passed", body = api::VerifyAnswer),
        (status = 400, description = "A malformed body, an unknown stage, no references or too many", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn verify(
    State(state): State<DeployState>,
    caller: Caller,
    ApiJson(request): ApiJson<api::VerifyRequest>,
) -> Result<Json<api::VerifyAnswer>, ApiError> {
    Ok(Json(
        state
            .deploy
            .verify(Reader::Caller(&caller), &request)
            .await?,
    ))
}

/// Issues a deploy token: pull only, from the named repositories of one stage (each of which the
/// caller may pull from), for at most `[deploy] max_token_ttl_secs`. It ends early when the
/// caller's roles change, or the password, API key or login it came from is revoked. Recorded as
/// `deploy_token.issued` (never the token). A deploy token cannot call the JSON API.
#[utoipa::path(
    post,
    path = "/api/v1/deploy-tokens",
    tag = "deploy",
    request_body = api::DeployTokenRequest,
    responses(
        (status = 201, description = "The token (shown once)", body = api::DeployTokenAnswer),
        (status = 400, description = "A malformed body, an unknown stage, a bad repository list or lifetime, or access control off", body = ErrorBody),
        (status = 401, description = "Not authenticated, or authenticated with a deploy token", body = ErrorBody),
        (status = 403, description = "The caller may not pull from a named repository", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 500, description = "Storage failed or the token could not be signed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn deploy_token(
    State(state): State<DeployState>,
    caller: Caller,
    ApiJson(request): ApiJson<api::DeployTokenRequest>,
) -> Result<(StatusCode, Json<api::DeployTokenAnswer>), ApiError> {
    let answer = state.deploy.issue_token(&caller, &request).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Records what one workload of a deployment runs now (replacing its earlier report), verifying
/// each image against the stage with `current`; an image never promoted there is a `drift`
/// anomaly signal. The caller must be able to pull from every repository named (the deployer
/// role). Recorded as `deployment.reported`.
#[utoipa::path(
    post,
    path = "/api/v1/deployments",
    tag = "deploy",
    request_body = api::DeploymentReport,
    responses(
        (status = 200, description = "Recorded; each image's verification", body = api::DeploymentAnswer),
        (status = 400, description = "A malformed body, an unknown stage, a bad name or reference, or too many images", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller may not pull from a named repository", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn report_deployment(
    State(state): State<DeployState>,
    caller: Caller,
    ApiJson(report): ApiJson<api::DeploymentReport>,
) -> Result<Json<api::DeploymentAnswer>, ApiError> {
    Ok(Json(state.deploy.report(&caller, &report).await?))
}

/// Drift: reported images checked against their stages now, a page at a time; those never
/// promoted there (`unpromoted`), behind their channel (`behind`) or no longer standing
/// (`unverified`) are listed with every failed check and its fix. Images in repositories the
/// caller may not pull from are not shown.
#[utoipa::path(
    get,
    path = "/api/v1/drift",
    tag = "deploy",
    params(api::DriftQuery),
    responses(
        (status = 200, description = "A page of drift", body = api::DriftPage),
        (status = 400, description = "A bad page size or cursor", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this client or for this name", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage is unavailable", body = ErrorBody),
    )
)]
async fn drift(
    State(state): State<DeployState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<api::DriftQuery>,
) -> Result<Json<api::DriftPage>, ApiError> {
    Ok(Json(state.deploy.drift(&caller, &query).await?))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(verify, deploy_token, report_deployment, drift))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<DeployState> for Arc<Identity> {
    fn from_ref(state: &DeployState) -> Self {
        state.identity.clone()
    }
}
