//! `GET /api/v1/version`: the server's version, unauthenticated (a client compares it with its
//! own before it reads anything else, and a version is not a secret the registry keeps: the
//! `airlock_build_info` metric and the CLI's user agent say the same).

use axum::routing::get;
use axum::{Json, Router};

/// The routes of this area (no state).
pub fn router() -> Router {
    Router::new().route("/api/v1/version", get(version))
}

/// The server's version.
#[utoipa::path(
    get,
    path = "/api/v1/version",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The server's version", body = airlock_api::meta::ServerVersion),
    )
)]
async fn version() -> Json<airlock_api::meta::ServerVersion> {
    Json(airlock_api::meta::ServerVersion {
        version: super::VERSION.to_string(),
        api: "v1".to_string(),
    })
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(version))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}
