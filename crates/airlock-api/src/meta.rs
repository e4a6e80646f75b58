//! About the server itself: its version (`/api/v1/version`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which airlock a server is: `GET /api/v1/version` (no authentication), shown by
/// `airlock version` beside the client's own version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerVersion {
    /// airlock's release version, e.g. `0.1.0` (the same as the `version` label of the
    /// `airlock_build_info` metric).
    pub version: String,
    /// The JSON API's version prefix this server answers under, `v1`.
    pub api: String,
}
