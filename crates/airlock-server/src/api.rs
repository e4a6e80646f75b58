//! The JSON API's error body, `{"error":{"code","message","remediation"}}`: the one place API
//! failures become responses (the OCI API under `/v2/` has its own format in `oci::OciError`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A JSON API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    remediation: String,
}

impl ApiError {
    /// An error with a status, a stable code, what went wrong and what to do about it.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            remediation: remediation.into(),
        }
    }

    /// 400 for a malformed parameter.
    pub fn bad_request(message: impl Into<String>, remediation: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message, remediation)
    }

    /// A storage failure: 503 `UNAVAILABLE` when storage refused the write because it cannot
    /// keep it (readyz names the failing check), else 500 as [`ApiError::internal`].
    pub fn storage(err: &airlock_store::StoreError) -> Self {
        match err.write_refusal() {
            Some(refusal) => {
                tracing::error!(error = %refusal, "write refused");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    refusal.to_string(),
                    "an operator must fix the storage and restart airlock; GET /readyz shows the failing check",
                )
            }
            None => Self::internal(err),
        }
    }

    /// 500 that hides the cause from the client and logs it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
            "retry later; the server log has the cause under this request's id",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = airlock_api::ErrorBody {
            error: airlock_api::ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                remediation: self.remediation,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Reads a JSON request body as the API type `T`; a body that is not one answers 400 with `what`
/// and the serde error (which names the field), and `remediation` saying what to send.
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    remediation: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}"), remediation))
}

/// Reads a query string as the API type `T`; one that does not fit answers 400 naming the
/// parameter, with `remediation` saying what to send.
pub fn query<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
    remediation: &str,
) -> Result<T, ApiError> {
    query
        .map(|axum::extract::Query(q)| q)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text(), remediation))
}

/// A list's `limit` parameter: `default` when absent, refused outside 1 to 1000.
pub fn list_limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match limit.unwrap_or(default) {
        limit @ 1..=1000 => Ok(limit),
        other => Err(ApiError::bad_request(
            format!("limit={other} is outside 1 to 1000"),
            "pass a limit (--limit) from 1 to 1000",
        )),
    }
}
