//! airlock's own rotatable keys (`/api/v1/server-keys`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One of airlock's keys, current or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerKey {
    /// The key id (the `kid` of what it signs).
    pub key_id: String,
    /// Its public half (PEM).
    pub public_key: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// When it stopped signing (RFC 3339); `null` for the current key.
    pub retired_at: Option<String>,
    /// Until when what it signed is accepted (RFC 3339); `null` when that does not end.
    pub accepted_until: Option<String>,
    /// `current` or `retired`.
    pub status: String,
}

/// `GET /api/v1/server-keys`: the token and attestation keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerKeyList {
    /// The token signing keys.
    pub token: Vec<ServerKey>,
    /// The promotion attestation keys.
    pub attestation: Vec<ServerKey>,
}

/// `POST /api/v1/server-keys/{key}/rotate`; the body may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Seconds the old token key stays accepted (at least `access.token_lifetime_secs`; default:
    /// the refresh token lifetime). Not for the attestation key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_secs: Option<u64>,
}

/// The answer to a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rotation {
    /// `token` or `attestation`.
    pub key: String,
    /// The key that signed until now.
    pub old_key_id: String,
    /// The key that signs from now on.
    pub new_key_id: String,
    /// Until when what the old key signed is accepted (RFC 3339; token key).
    pub old_accepted_until: Option<String>,
    /// Present when logins made before the rotation end at `old_accepted_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}
