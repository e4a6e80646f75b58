//! HTTP endpoints of deploy-time verification:
//!
//! - `POST /api/v1/verify`: whether each image reference was promoted into a stage and still
//!   stands (always `200` with one result per reference; `verified` says whether all passed)
//! - `POST /admission/v1/validate`: the Kubernetes ValidatingAdmissionWebhook (`admission.rs`),
//!   routed only when `[deploy.admission]` is set

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::deploy as api;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use super::{DeployError, DeployService, Reader};
use crate::api::ApiError;
use crate::caller::Caller;
use crate::extract::ApiJson;
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
    let router = Router::new().route("/api/v1/verify", post(verify));
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

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(verify))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<DeployState> for Arc<Identity> {
    fn from_ref(state: &DeployState) -> Self {
        state.identity.clone()
    }
}
