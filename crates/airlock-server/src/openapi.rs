//! The OpenAPI 3.1 document of the JSON API, served at `GET /api/v1/openapi.json`: assembled
//! from each area's routes (`<area>::routes::openapi()`, derived with utoipa from the handlers and
//! the `airlock-api` types), so it cannot drift from the code.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::ApiError;

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

/// The answers every API operation can give without listing them itself: an authenticated one
/// 401 (no or invalid credentials), 403 (`PASSWORD_CHANGE_REQUIRED` from the `Caller` and
/// `SignedIn` extractors, or the operation's own refusal) and 429 (rate-limited
/// authentication); one with a request body 413 (over the request body limit). Added to each
/// `/api/` operation that does not list the status already.
struct CommonResponses;

impl CommonResponses {
    const AUTHENTICATED: [(&'static str, &'static str); 3] = [
        ("401", "No or invalid credentials"),
        (
            "403",
            "The caller must change its password first (PASSWORD_CHANGE_REQUIRED), or may not do this",
        ),
        (
            "429",
            "Too many failed authentications from this client or for this principal; retry later",
        ),
    ];
    const WITH_BODY: (&'static str, &'static str) = (
        "413",
        "The request body is larger than the server accepts (PAYLOAD_TOO_LARGE)",
    );

    /// Whether `operation` needs credentials: it inherits the document's requirement or lists
    /// requirements none of which is the empty (anonymous) one.
    fn authenticated(operation: &utoipa::openapi::path::Operation) -> bool {
        operation.security.as_ref().is_none_or(|requirements| {
            !requirements.is_empty()
                && !requirements
                    .contains(&utoipa::openapi::security::SecurityRequirement::default())
        })
    }

    fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::Content::new(Some(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))),
            )
            .build()
            .into()
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ];
            for operation in operations.into_iter().flatten() {
                let mut wanted = Vec::new();
                if Self::authenticated(operation) {
                    wanted.extend(Self::AUTHENTICATED);
                }
                if operation.request_body.is_some() {
                    wanted.push(Self::WITH_BODY);
                }
                for (status, description) in wanted {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| Self::error_response(description));
                }
            }
        }
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
        crate::gc::routes::openapi(),
        crate::deploy::routes::openapi(),
    ] {
        doc.merge(part);
    }
    CommonResponses.modify(&mut doc);
    doc
}

/// `GET /api/v1/openapi.json` (no authentication: the contract is public, the data is not).
pub fn router() -> Router {
    Router::new().route("/api/v1/openapi.json", get(serve))
}

async fn serve() -> Response {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    let rendered = DOCUMENT.get_or_init(|| document().to_json().map_err(|err| err.to_string()));
    match rendered {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response(),
        Err(err) => {
            ApiError::internal_message(format!("cannot render the OpenAPI document: {err}"))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// Every authenticated API operation lists 401, 403 and 429, and every one with a request
    /// body 413, each with a body; the public ones (the document itself, log tiles) list none of
    /// the authentication answers.
    #[test]
    fn every_operation_lists_the_answers_authentication_and_body_limits_can_give() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut authenticated = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = &operation["responses"];
                let anonymous = operation["security"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|req| req == &serde_json::json!({})));
                if path.starts_with("/api/") && !anonymous {
                    authenticated += 1;
                    for status in ["401", "403", "429"] {
                        assert!(
                            responses[status]["content"]["application/json"]["schema"].is_object(),
                            "{method} {path} lacks {status}"
                        );
                    }
                }
                if path.starts_with("/api/") && operation.get("requestBody").is_some() {
                    assert!(
                        responses["413"]["content"]["application/json"].is_object(),
                        "{method} {path} lacks 413"
                    );
                }
            }
        }
        assert!(
            authenticated > 50,
            "{authenticated} authenticated operations"
        );
        // Log tiles are public (hash tiles; entry bundles need the auditor role).
        for public in ["/log/tile/{tile}", "/log/checkpoint", "/log/key"] {
            let security = doc["paths"][public]["get"]["security"].as_array().unwrap();
            assert!(security.contains(&serde_json::json!({})), "{public}");
        }
        assert!(
            doc["paths"]["/log/checkpoint"]["get"]["responses"]
                .get("401")
                .is_none()
        );
        // The token endpoint's GET always needs credentials.
        let token = &doc["paths"]["/auth/token"]["get"];
        assert!(
            !token["security"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({})),
            "{token}"
        );
    }

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
