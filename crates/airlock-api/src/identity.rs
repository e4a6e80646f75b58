//! Identity and access: users, service accounts and their API keys, roles, just-in-time access requests, `whoami`, passwords.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A role held on a scope, possibly until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleGrant {
    /// The role, e.g. `promoter`.
    pub role: String,
    /// What it covers: `*`, a stage (`prod`) or a repository pattern (`prod/team/*`).
    pub scope: String,
    /// When the grant ends (RFC 3339), for just-in-time grants; `null` for standing ones.
    pub expires: Option<String>,
}

/// `GET /api/v1/whoami`: the caller, how it authenticated and its roles now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The principal's name.
    pub name: String,
    /// `user` or `service-account`.
    pub kind: String,
    /// How this request authenticated: `password`, `api_key`, `token` or `oidc`.
    pub auth_method: String,
    /// The caller's active grants.
    pub roles: Vec<RoleGrant>,
}
