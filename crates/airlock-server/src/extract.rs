//! Request extractors for the JSON API that answer a malformed request with the API's error body
//! (`{"error":{"code","message","remediation"}}`, as documented in the OpenAPI document) instead
//! of axum's plain-text rejections: [`ApiJson`] for bodies, [`ApiPath`] for path parameters,
//! [`ApiQuery`] for query strings. The status is axum's (400 malformed, 415 not JSON, 422 the
//! wrong shape), or 404 for a path parameter holding a NUL character.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api::ApiError;

/// Where the request shapes are documented, for remediations.
const SCHEMA: &str = "the request schemas are in GET /api/v1/openapi.json";

/// A JSON request body of type `T`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            message,
            "send the body as JSON with the header Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(_) => ApiError::bad_request(
            message,
            format!(
                "send the field the message names, with the type the request schema gives ({SCHEMA})"
            ),
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request(message, "send one well-formed JSON object as the body")
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            message,
            "send a smaller body: JSON API requests are limited to 2 MiB",
        ),
        _ => ApiError::new(
            rejection.status(),
            "BAD_REQUEST",
            message,
            "send the whole body again as one JSON object",
        ),
    }
}

/// Path parameters of type `T`.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // No name or id holds a NUL character (PostgreSQL cannot even store one): such a path
        // names nothing, on either engine.
        if parts.uri.path().contains("%00") {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "the path holds a NUL character (%00), which no name or id contains",
                "remove the %00 from the path; names and ids are listed by the matching list endpoint",
            ));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(_) => ApiError::bad_request(
            rejection.body_text(),
            format!(
                "write the path parameter in its documented type, e.g. a number for a request id ({SCHEMA})"
            ),
        ),
        _ => ApiError::internal_message(rejection.body_text()),
    }
}

/// A query string of type `T`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(
        format!("invalid query string: {}", rejection.body_text()),
        format!("give each query parameter at most once, in its documented type ({SCHEMA})"),
    )
}
