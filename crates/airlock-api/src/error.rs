//! The error body every `/api/v1` failure answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": {...}}`: the body of every JSON API error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: ErrorDetail,
}

/// One API error: a stable code, what went wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `FORBIDDEN`, `NOT_FOUND`, `POLICY_DENIED`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// What to do about it, true for this error.
    pub remediation: String,
}
