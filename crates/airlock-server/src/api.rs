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
    /// Seconds for a `Retry-After` header (the database was busy).
    retry_after_secs: Option<u64>,
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
            retry_after_secs: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, as the client reads it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do about it.
    pub fn remediation(&self) -> &str {
        &self.remediation
    }

    /// 400 for a malformed parameter.
    pub fn bad_request(message: impl Into<String>, remediation: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message, remediation)
    }

    /// A storage failure: 503 `UNAVAILABLE` with `Retry-After` when the database gave up on a
    /// time limit (busy, nothing written), 503 `UNAVAILABLE` when storage refused the write
    /// because it cannot keep it (readyz names the failing check), 400 for a text value the
    /// database cannot store (a NUL character on PostgreSQL), else 500 as
    /// [`ApiError::internal`].
    pub fn storage(err: &airlock_store::StoreError) -> Self {
        if let Some(busy) = err.busy() {
            tracing::warn!(error = %err, "database busy");
            let mut answer = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                busy.to_string(),
                "send the request again after the Retry-After delay",
            );
            answer.retry_after_secs = Some(busy.retry_after_secs());
            return answer;
        }
        if err.unstorable_text() {
            return Self::bad_request(
                airlock_store::UNSTORABLE_TEXT,
                "remove the NUL character from the request's names, reasons, labels and other text fields",
            );
        }
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

    /// 500 that hides the cause from the client and logs it with its whole source chain (a
    /// wrapped cause, such as a task's `JoinError`, reaches the log too).
    pub fn internal(cause: impl std::error::Error) -> Self {
        Self::internal_message(error_chain(&cause))
    }

    /// 500 that hides `message` (a failure that is not an error value) from the client and
    /// logs it.
    pub fn internal_message(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error");
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
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// An error and each of its causes, `: `-separated, for the server log.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
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
    bounded(
        "limit",
        limit.map(u64::from),
        u64::from(default),
        1..=1000,
        "pass a limit (--limit) from 1 to 1000",
    )
    .map(|limit| limit as u32)
}

/// A count parameter `name`: `default` when absent, refused (400 naming the range, with
/// `remediation`) outside `range`, never silently clamped.
pub fn bounded(
    name: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    remediation: &str,
) -> Result<u64, ApiError> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        return Ok(value);
    }
    Err(ApiError::bad_request(
        format!(
            "{name}={value} is outside {} to {}",
            range.start(),
            range.end()
        ),
        remediation,
    ))
}

/// Renders what axum's extractors and router answer on their own under `/api/` and `/auth/`
/// (plain-text rejections of a JSON body, query string or path, a missing `Content-Type`, an
/// oversized body, and empty `405`s) as [`ApiError`] bodies, so that every answer of the JSON API
/// has the documented `{"error":{...}}` shape and a remediation naming the fix. A body that does
/// not deserialize is `400 BAD_REQUEST` (axum says `422`), with axum's message, which names the
/// field or parameter. Answers the handlers made themselves pass through untouched.
pub async fn render_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let json_api = path.starts_with("/api/") || path.starts_with("/auth/");
    let response = next.run(request).await;
    if !json_api || !response.status().is_client_error() {
        return response;
    }
    let plain_text = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED && !plain_text {
        let has_body_type = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some();
        if has_body_type {
            return response;
        }
        let allow = response
            .headers()
            .get(axum::http::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut rendered = ApiError::new(
            status,
            "METHOD_NOT_ALLOWED",
            "this endpoint does not support the request's method",
            format!("use one of: {allow} (see GET /api/v1/openapi.json)"),
        )
        .into_response();
        if let Ok(value) = axum::http::HeaderValue::from_str(&allow) {
            rendered
                .headers_mut()
                .insert(axum::http::header::ALLOW, value);
        }
        return rendered;
    }
    if !plain_text {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    rejection(status, text).into_response()
}

/// The [`ApiError`] for a plain-text rejection with `status` and axum's `message`.
fn rejection(status: StatusCode, message: String) -> ApiError {
    const SCHEMA: &str = "GET /api/v1/openapi.json";
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "UNSUPPORTED_MEDIA_TYPE",
            message,
            "send the body as JSON with the header `Content-Type: application/json`",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "PAYLOAD_TOO_LARGE",
            message,
            "send a smaller body: JSON API calls are limited to 2 MiB",
        ),
        _ if message.starts_with("Failed to parse the request body as JSON") => {
            ApiError::bad_request(
                message,
                format!(
                    "send well-formed JSON (the message gives the line and column of the first error); the operation's request schema is in {SCHEMA}"
                ),
            )
        }
        _ if message.starts_with("Failed to deserialize the JSON body") => ApiError::bad_request(
            message,
            format!(
                "correct the field the message names (missing, misspelt, unknown or of the wrong type); the operation's request schema is in {SCHEMA}"
            ),
        ),
        _ if message.starts_with("Failed to deserialize query string") => ApiError::bad_request(
            message,
            format!(
                "correct the query parameter the message names; the operation's parameters are in {SCHEMA}"
            ),
        ),
        _ if message.starts_with("Invalid URL")
            || message.starts_with("Wrong number of path arguments") =>
        {
            ApiError::bad_request(
                message,
                format!(
                    "correct the path segment the message names; the operation's path parameters are in {SCHEMA}"
                ),
            )
        }
        _ if message.starts_with("Failed to buffer the request body") => ApiError::new(
            status,
            "BAD_REQUEST",
            message,
            "send the whole body in one request within the server's time and size limits",
        ),
        _ => ApiError::new(
            status,
            "BAD_REQUEST",
            message,
            format!("the request does not match the operation in {SCHEMA}; the message says how"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A database that gave up on a time limit (here: no free connection) is busy, not broken:
    /// 503 with `Retry-After`, and a sentence saying nothing was changed.
    #[test]
    fn a_busy_database_answers_503_with_retry_after() {
        let busy = airlock_store::StoreError::Database(sqlx::Error::PoolTimedOut);
        let response = ApiError::storage(&busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(axum::http::header::RETRY_AFTER),
            Some(&axum::http::HeaderValue::from_static("2"))
        );
        let oci =
            crate::oci::OciError::from(crate::registry::RegistryError::Store(busy)).into_response();
        assert_eq!(oci.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            oci.headers().get(axum::http::header::RETRY_AFTER),
            Some(&axum::http::HeaderValue::from_static("2"))
        );
    }

    /// Records the `error` field of every event.
    struct ErrorFields(Arc<Mutex<Vec<String>>>);

    struct ErrorField<'a>(&'a mut Option<String>);

    impl tracing::field::Visit for ErrorField<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "error" {
                *self.0 = Some(format!("{value:?}"));
            }
        }
    }

    impl tracing::Subscriber for ErrorFields {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut error = None;
            event.record(&mut ErrorField(&mut error));
            if let Some(error) = error {
                self.0.lock().unwrap().push(error);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the server key task failed")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("the task panicked")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn an_internal_error_logs_its_whole_source_chain_and_hides_it_from_the_client() {
        let logged = Arc::new(Mutex::new(Vec::new()));
        let err = tracing::subscriber::with_default(ErrorFields(logged.clone()), || {
            ApiError::internal(Outer(Middle(std::io::Error::other("disk on fire"))))
        });
        assert_eq!(
            *logged.lock().unwrap(),
            ["the server key task failed: the task panicked: disk on fire"]
        );
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.message, "internal error");
    }

    #[test]
    fn json_body_rejections_become_400_naming_the_schema() {
        let err = rejection(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body into the target type: missing field `name`".into(),
        );
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "BAD_REQUEST");
        assert!(err.message.contains("missing field `name`"));
        assert!(err.remediation.contains("field the message names"));
        let err = rejection(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`".into(),
        );
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.remediation.contains("Content-Type: application/json"));
        let err = rejection(
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string: limit: invalid digit found in string".into(),
        );
        assert!(err.remediation.contains("query parameter"));
    }
}
