//! Account endpoints (see `service/accounts.rs` for what holds):
//!
//! - `POST /api/v1/users/{name}/password` `{"current_password", "new_password"}`: the user
//!   changes their own password. Authenticated by the current password in the body (the one
//!   thing a password waiting to be changed can do), not by the `Authorization` header; a wrong
//!   one is a failed authentication (401, rate limited, audited).
//! - `POST /api/v1/users/{name}/reset-password` `{"password"?}`: an access-admin sets a temporary
//!   password (generated and returned once when none is given) that the user must change.
//! - `POST /api/v1/users/{name}/enable`: an access-admin enables a disabled principal.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_api::identity as api;
use axum::Json;
use axum::extract::{ConnectInfo, State};

use crate::api::ApiError;
use crate::caller::SignedIn;
use crate::extract::{ApiJson, ApiPath};
use crate::identity::Identity;

/// The user changes their own password, authenticated by the current one in the body.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/password",
    tag = "identity",
    params(("name" = String, Path, description = "The user")),
    request_body = api::ChangePasswordRequest,
    responses(
        (status = 200, description = "The password is changed; every login and token of the user ended", body = api::PasswordChanged),
        (status = 400, description = "The new password is refused by the policy or is the current one, or the principal is a service account", body = airlock_api::ErrorBody),
        (status = 401, description = "The current password is wrong, or the user is disabled or locked", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 429, description = "Too many failed authentications", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    ),
    security(())
)]
pub(super) async fn change_password(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<api::ChangePasswordRequest>,
) -> Result<Json<api::PasswordChanged>, ApiError> {
    identity
        .change_own_password(
            &name,
            &body.current_password,
            &body.new_password,
            Some(peer),
        )
        .await?;
    Ok(Json(api::PasswordChanged {
        name,
        sessions_revoked: true,
    }))
}

/// An access-admin sets a temporary password the user must change (not their own, not another
/// access-admin's).
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/reset-password",
    tag = "identity",
    params(("name" = String, Path, description = "The user")),
    request_body = api::ResetPasswordRequest,
    responses(
        (status = 200, description = "The temporary password is set", body = api::PasswordReset),
        (status = 400, description = "The password is refused by the policy, or the principal is a service account", body = airlock_api::ErrorBody),
        (status = 403, description = "Not an access-admin, or a reset separation of duties refuses", body = airlock_api::ErrorBody),
        (status = 404, description = "No such user", body = airlock_api::ErrorBody),
        (status = 415, description = "The body is not JSON", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
pub(super) async fn reset_password(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<api::ResetPasswordRequest>,
) -> Result<Json<api::PasswordReset>, ApiError> {
    let password = identity
        .reset_password(&caller.who, &caller.actor, &name, body.password)
        .await?;
    Ok(Json(api::PasswordReset {
        name,
        password,
        must_change: true,
    }))
}

/// An access-admin enables a disabled principal (its earlier logins and tokens stay revoked).
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/enable",
    tag = "identity",
    params(("name" = String, Path, description = "The user or service account")),
    responses(
        (status = 200, description = "The principal is enabled", body = api::PrincipalState),
        (status = 403, description = "Not an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such principal", body = airlock_api::ErrorBody),
        (status = 409, description = "The principal is not disabled", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
pub(super) async fn enable(
    State(identity): State<Arc<Identity>>,
    caller: SignedIn,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<api::PrincipalState>, ApiError> {
    identity.enable(&caller.who, &caller.actor, &name).await?;
    Ok(Json(api::PrincipalState {
        name,
        disabled: false,
    }))
}
