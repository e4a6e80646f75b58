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

/// A user or service account with its roles (`GET /api/v1/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Principal {
    /// The principal's name.
    pub name: String,
    /// `user` or `service-account`.
    pub kind: String,
    /// Whether it is disabled (it cannot authenticate; `airlock users enable` undoes it).
    pub disabled: bool,
    /// Whether its password was reset and must be changed before it is used for anything else.
    pub password_must_change: bool,
    /// Its active grants.
    pub roles: Vec<RoleGrant>,
}

/// `GET /api/v1/users`: a page of the users and service accounts, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrincipalList {
    /// The principals on this page, by name.
    pub principals: Vec<Principal>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/users`: a new user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddUserRequest {
    /// The user name.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    /// The initial password; `null` or absent to have one generated (and returned once).
    #[serde(default)]
    pub password: Option<String>,
}

/// The answer to `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserAdded {
    /// The user name.
    pub name: String,
    /// The generated initial password (shown this once), or `null` when the request gave one.
    pub password: Option<String>,
}

/// The answer to disabling (`POST /api/v1/users/{name}/disable`) or enabling
/// (`POST /api/v1/users/{name}/enable`) a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrincipalState {
    /// The principal's name.
    pub name: String,
    /// Whether it is disabled now.
    pub disabled: bool,
}

/// `POST /api/v1/service-accounts`: a new service account with its first API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddServiceAccountRequest {
    /// The account name.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    /// Seconds until the first key expires (bounded by `access.max_api_key_days`).
    #[schema(minimum = 1)]
    pub expires_in_secs: u64,
}

/// The answer to `POST /api/v1/service-accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceAccountAdded {
    /// The account name.
    pub name: String,
    /// The API key (`alk_<id>_<secret>`), shown this once.
    pub api_key: String,
    /// The key's id (the `<id>` part), for `airlock service-accounts revoke-key`.
    pub key_id: String,
    /// When the key expires (RFC 3339).
    pub expires: String,
}

/// The answer to `POST /api/v1/credentials/{id}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialRevoked {
    /// The credential's id.
    pub id: String,
    /// Always true: the credential and every token descending from it no longer work.
    pub revoked: bool,
}

/// Query of `GET /api/v1/roles`.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
pub struct RolesQuery {
    /// Only this principal's bindings.
    pub principal: Option<String>,
    /// Bindings per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// A role bound to a principal in a scope (`GET /api/v1/roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleBinding {
    /// Who holds it.
    pub principal: String,
    /// The role.
    pub role: String,
    /// Where it applies: `*`, a stage or a stage and repository pattern.
    pub scope: String,
    /// When it ends (RFC 3339) for a just-in-time grant; `null` for a standing one.
    pub expires: Option<String>,
}

/// `GET /api/v1/roles`: a page of the active role bindings, by principal name, each principal's
/// in the order they were made (an OIDC trust rule's, from the configuration, first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleBindingList {
    /// The bindings on this page. A page may hold fewer than `n` (a stored binding that no
    /// longer parses is left out), so follow `next` until it is `null`.
    pub bindings: Vec<RoleBinding>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/roles/grant` and `POST /api/v1/roles/revoke`: a role binding to add or remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleChangeRequest {
    /// Who.
    pub principal: String,
    /// The role: `reader`, `developer`, `builder`, `promoter`, `approver`, `deployer`,
    /// `key-admin`, `access-admin`, `auditor` or `break-glass`.
    #[schema(
        pattern = r"^(reader|developer|builder|promoter|approver|deployer|key-admin|access-admin|auditor|break-glass)$"
    )]
    pub role: String,
    /// Where: `*`, a configured stage (`prod`), or a stage and repositories (`prod/team/*`).
    #[schema(
        pattern = r"^(\*|[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*(/\*)?)$",
        max_length = 257
    )]
    pub scope: String,
}

/// The answer to `POST /api/v1/roles/grant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleGranted {
    /// Who.
    pub principal: String,
    /// The role, as the server spells it.
    pub role: String,
    /// The scope, as the server spells it.
    pub scope: String,
    /// Always true.
    pub granted: bool,
}

/// The answer to `POST /api/v1/roles/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleRevoked {
    /// Who.
    pub principal: String,
    /// The role, as the server spells it.
    pub role: String,
    /// The scope, as the server spells it.
    pub scope: String,
    /// Always true.
    pub revoked: bool,
}

/// A just-in-time access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessRequest {
    /// Its id.
    pub id: i64,
    /// Who asked.
    pub principal: String,
    /// The role asked for.
    pub role: String,
    /// The scope asked for.
    pub scope: String,
    /// For how long (seconds).
    pub duration_secs: i64,
    /// Why (an incident or change ticket).
    pub reason: String,
    /// `pending`, `granted`, `denied` or `revoked`.
    pub status: String,
    /// Who granted, denied or revoked it; `null` while pending.
    pub decided_by: Option<String>,
    /// When it was asked (RFC 3339).
    pub requested: String,
    /// When the grant ends (RFC 3339), once granted; else `null`.
    pub expires: Option<String>,
}

/// `GET /api/v1/access-requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestList {
    /// The requests on this page the caller may see (an access-admin sees all, others their
    /// own), newest first.
    pub requests: Vec<AccessRequest>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/access-requests`: ask for a role for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewAccessRequest {
    /// The role.
    #[schema(
        pattern = r"^(reader|developer|builder|promoter|approver|deployer|key-admin|access-admin|auditor|break-glass)$"
    )]
    pub role: String,
    /// Where: `*`, a configured stage, or a stage and repositories.
    #[schema(
        pattern = r"^(\*|[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*(/\*)?)$",
        max_length = 257
    )]
    pub scope: String,
    /// For how long (seconds, bounded by `access.max_grant_secs`).
    #[schema(minimum = 1)]
    pub duration_secs: u64,
    /// Why (an incident or change ticket).
    #[schema(pattern = r"\S")]
    pub reason: String,
}

/// The answer to `POST /api/v1/access-requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestFiled {
    /// The request's id, for `airlock access grant ID`.
    pub id: i64,
    /// Always `pending`.
    pub status: String,
}

/// `POST /api/v1/users/{name}/password`: the user changes their own password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password (this authenticates the request).
    pub current_password: String,
    /// The new password (checked against the password policy).
    pub new_password: String,
}

/// The answer to a password change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PasswordChanged {
    /// The user.
    pub name: String,
    /// Always true: every login and token of the user ended.
    pub sessions_revoked: bool,
}

/// `POST /api/v1/users/{name}/reset-password`: an access-admin sets a temporary password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    /// The temporary password; `null` or absent to have one generated (and returned once).
    #[serde(default)]
    pub password: Option<String>,
}

/// The answer to a password reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PasswordReset {
    /// The user.
    pub name: String,
    /// The generated temporary password (shown once), or `null` when the request gave one.
    pub password: Option<String>,
    /// Always true: the user must change it before using it for anything else.
    pub must_change: bool,
}

/// A service account's API key as listings show it (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// The service account.
    pub account: String,
    /// The key id (the `<id>` of `alk_<id>_<secret>`).
    pub id: String,
    /// The key's name, unique among the account's live keys.
    pub name: String,
    /// When it was added (RFC 3339).
    pub created: String,
    /// When it expires (RFC 3339).
    pub expires: Option<String>,
    /// When it last authenticated (RFC 3339); `null` if never.
    pub last_used: Option<String>,
    /// When it was revoked (RFC 3339); `null` if it was not.
    pub revoked: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// Who added it.
    pub created_by: Option<String>,
}

/// `GET /api/v1/service-accounts/{name}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// The service account.
    pub account: String,
    /// Its keys on this page, live and ended, oldest first.
    pub keys: Vec<ApiKey>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/service-accounts/{name}/keys`: a new named key. Give `expires_in_secs` or
/// `expires_at`, or neither for the maximum lifetime (`access.max_api_key_days`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddApiKeyRequest {
    /// The key's name, e.g. `ci-2026`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    /// Seconds until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    /// When it expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// The answer to `POST /api/v1/service-accounts/{name}/keys`: the key and its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyAdded {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The API key (`alk_<id>_<secret>`), shown this once.
    pub api_key: String,
}

/// The answer to `POST /api/v1/service-accounts/{name}/keys/{key}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyRevoked {
    /// The service account.
    pub account: String,
    /// The key id.
    pub id: String,
    /// The key's name.
    pub name: String,
    /// Always true: the key and every token descending from it no longer work.
    pub revoked: bool,
}

/// Query of `GET /auth/token` (the Docker registry token flow) with Basic credentials (a password
/// or an API key) or a bearer refresh token.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The service the token is for (`airlock`); informational.
    pub service: Option<String>,
    /// A scope such as `repository:dev/app:pull,push` (repeatable, or space-separated).
    /// Malformed scopes are ignored: they are never granted.
    pub scope: Option<String>,
    /// `true` to get a refresh token too (never for `client_id=docker`).
    pub offline_token: Option<String>,
    /// The client's name, e.g. `docker`.
    pub client_id: Option<String>,
    /// The account name the client logs in as; informational.
    pub account: Option<String>,
}

/// `POST /auth/token` form (`application/x-www-form-urlencoded`), the OAuth2 flavour oras and
/// containerd use: a password grant or a refresh-token grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "grant_type")]
pub enum TokenForm {
    /// `grant_type=password`: a user's password or a service account's API key.
    #[serde(rename = "password")]
    Password {
        /// The user or service account.
        username: String,
        /// Its password or API key.
        password: String,
        /// Space-separated scopes such as `repository:dev/app:pull,push` (the field may repeat).
        scope: Option<String>,
        /// The service the token is for (`airlock`); informational.
        service: Option<String>,
        /// The client's name, e.g. `docker`.
        client_id: Option<String>,
        /// `offline` to get a refresh token too (never for `client_id=docker`).
        access_type: Option<String>,
    },
    /// `grant_type=refresh_token`: a refresh token, exchanged for its successor.
    #[serde(rename = "refresh_token")]
    RefreshToken {
        /// The refresh token.
        refresh_token: String,
        /// Space-separated scopes such as `repository:dev/app:pull,push` (the field may repeat).
        scope: Option<String>,
        /// The service the token is for (`airlock`); informational.
        service: Option<String>,
        /// The client's name, e.g. `docker`.
        client_id: Option<String>,
    },
}

/// `POST /auth/oidc`: a CI's OIDC ID token exchanged for a short-lived token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OidcExchangeRequest {
    /// The ID token (a JWT from a configured issuer).
    pub id_token: String,
    /// Scopes such as `repository:dev/app:pull,push`.
    #[serde(default)]
    pub scope: Vec<String>,
}

/// The Docker registry token response of `/auth/token` and `/auth/oidc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT), for `Authorization: Bearer`.
    pub token: String,
    /// The same token (the OAuth2 name).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
    /// A refresh token, when offline access was asked for and allowed; it rotates on every use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The registry error format `/auth/token` and `/auth/oidc` answer failures with (as the OCI
/// distribution API does): `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenErrorBody {
    /// The errors (one).
    pub errors: Vec<TokenError>,
}

/// One token endpoint error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenError {
    /// `UNAUTHORIZED`, `UNSUPPORTED`, `SIZE_INVALID`, `TOOMANYREQUESTS` or `UNAVAILABLE`.
    pub code: String,
    /// What went wrong (never which part of a credential was wrong).
    pub message: String,
    /// Always `null`.
    pub detail: Option<serde_json::Value>,
}
