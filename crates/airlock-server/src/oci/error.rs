//! The one place where failures become OCI error responses (`{"errors":[{code,message,detail}]}`).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::RegistryError;

use super::route::RouteError;

/// An OCI error response: status, spec error code, a message that names the fix, extra headers.
#[derive(Debug)]
pub struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl OciError {
    /// An error with the given status, OCI code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header (e.g. `Range` on a 416).
    pub fn with_header(mut self, name: HeaderName, value: String) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value) {
            self.headers.push((name, value));
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The OCI error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 405 for a method the endpoint does not support.
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("method not supported on this endpoint; use one of {allowed}"),
        )
        .with_header(header::ALLOW, allowed.to_string())
    }
}

impl From<airlock_core::Error> for OciError {
    fn from(err: airlock_core::Error) -> Self {
        use airlock_core::Error as E;
        let (status, code) = match &err {
            E::InvalidDigest { .. } | E::UnsupportedDigestAlgorithm(_) => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
            }
            E::InvalidName { .. } => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            E::InvalidTag(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            E::UnknownStage(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::InvalidManifest(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::PushToGatedStage { .. } | E::ImmutableTag { .. } | E::DeleteInGatedStage(_) => {
                (StatusCode::FORBIDDEN, "DENIED")
            }
            E::InvalidStageConfig(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        };
        Self::new(status, code, err.to_string())
    }
}

impl From<RouteError> for OciError {
    fn from(err: RouteError) -> Self {
        match err {
            RouteError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no OCI distribution endpoint at this path; see https://github.com/opencontainers/distribution-spec",
            ),
            RouteError::Invalid(err) => err.into(),
        }
    }
}

impl From<RegistryError> for OciError {
    fn from(err: RegistryError) -> Self {
        use RegistryError as R;
        let message = err.to_string();
        match err {
            R::Rule(rule) => rule.into(),
            R::BlobUnknown(_) => Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", message),
            R::UploadUnknown(_) => Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", message),
            R::ChunkOutOfOrder { expected, .. } => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                message,
            )
            .with_header(header::RANGE, upload_range(expected)),
            R::ChunkSizeMismatch { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "SIZE_INVALID", message)
            }
            R::DigestMismatch { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
            }
            R::TooManyUploads {
                retry_after_secs, ..
            } => Self::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", message)
                .with_header(header::RETRY_AFTER, retry_after_secs.to_string()),
            R::UploadInterrupted { resume_at, .. } => {
                Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message)
                    .with_header(header::RANGE, upload_range(resume_at))
            }
            R::ManifestUnknown(_) => Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", message),
            R::ManifestReferenceUnknown { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", message)
            }
            R::DescriptorSizeMismatch { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
            }
            R::ManifestTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID", message)
            }
            R::RepositoryUnknown(_) => Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", message),
            R::RangeNotSatisfiable { size } => {
                Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID", message)
                    .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
            }
            R::Store(airlock_store::StoreError::BlobCollected(_)) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
            }
            R::Store(store) if store.busy().is_some() => {
                tracing::warn!(error = %store, "database busy");
                let (message, retry_after) = store.busy().map_or_else(
                    || (store.to_string(), 1),
                    |busy| (busy.to_string(), busy.retry_after_secs()),
                );
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
                    .with_header(header::RETRY_AFTER, retry_after.to_string())
            }
            // Only a manifest carries free text to a text column (its artifact type; annotations
            // are stored as escaped JSON).
            R::Store(store) if store.unstorable_text() => Self::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!(
                    "{}: remove it from the manifest's artifactType and media types",
                    airlock_store::UNSTORABLE_TEXT
                ),
            ),
            R::Store(store) if store.write_refusal().is_some() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                store.to_string(),
            ),
            R::Store(store) => {
                tracing::error!(error = %store, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    "internal storage error; nothing was changed, retry later or ask an operator to check the server log",
                )
            }
        }
    }
}

/// The `Range` header value of an upload holding `size` bytes (`0-<last byte>`).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(code = self.code, message = %self.message, "request refused");
        }
        let body =
            json!({"errors": [{"code": self.code, "message": self.message, "detail": null}]});
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}
