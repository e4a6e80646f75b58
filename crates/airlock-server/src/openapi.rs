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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Operation ids name client functions in generated SDKs and must be unique in the whole
    /// document (openapi-spec-validator refuses a duplicate); each area names its own.
    #[test]
    fn every_operation_id_is_unique_across_areas() {
        let doc = super::document();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, item) in &doc.paths.paths {
            let operations = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
                ("head", &item.head),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    let id = operation.operation_id.clone().unwrap_or_default();
                    seen.entry(id).or_default().push(format!("{method} {path}"));
                }
            }
        }
        let duplicates: Vec<_> = seen.iter().filter(|(_, uses)| uses.len() > 1).collect();
        assert!(
            duplicates.is_empty(),
            "duplicate operation ids: {duplicates:?}"
        );
        assert!(seen.len() > 60, "{} operations", seen.len());
    }
}
