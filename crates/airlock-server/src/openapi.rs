//! The OpenAPI 3.1 document of the JSON API, served at `GET /api/v1/openapi.json`: assembled
//! from each area's routes (`<area>::routes::openapi()`, derived with utoipa from the handlers and
//! the `airlock-api` types), so it cannot drift from the code.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's frame: title, version, the error schema and the two ways to authenticate.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "airlock API",
        description = "airlock's JSON API: identity and access, keys and evidence, promotions, \
                       the audit log, anomalies and webhooks. Every error answers \
                       `{\"error\":{\"code\",\"message\",\"remediation\"}}`. The OCI \
                       Distribution API under /v2/ is specified by the OCI distribution-spec."
    ),
    components(schemas(airlock_api::ErrorBody, airlock_api::ErrorDetail)),
    modifiers(&Authentication),
    security(("bearer" = []), ("basic" = []))
)]
struct Frame;

/// Bearer tokens (from `/auth/token`) and HTTP basic (a password or an API key).
struct Authentication;

impl Modify for Authentication {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Frame::openapi();
    for part in [
        crate::identity::routes::openapi(),
        crate::server_keys::routes::openapi(),
        crate::evidence::routes::openapi(),
        crate::promotion::routes::openapi(),
        crate::audit::routes::openapi(),
        crate::anomalies::routes::openapi(),
        crate::webhooks::routes::openapi(),
        crate::catalog::routes::openapi(),
        crate::meta::routes::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

/// `GET /api/v1/openapi.json` (no authentication: the contract is public, the data is not).
pub fn router() -> Router {
    Router::new().route("/api/v1/openapi.json", get(serve))
}

async fn serve() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        document().to_json().unwrap_or_else(|err| {
            format!("{{\"error\":\"cannot render the OpenAPI document: {err}\"}}")
        })
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}
