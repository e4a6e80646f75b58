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

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::caller;
use crate::api::ApiError;
use crate::identity::Identity;

/// The body of a password change.
#[derive(Deserialize)]
pub(super) struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// The answer to a password change.
#[derive(Serialize)]
struct PasswordChanged {
    name: String,
    /// Always true: every login and token of the user ended.
    sessions_revoked: bool,
}

/// `POST /api/v1/users/{name}/password`.
pub(super) async fn change_password(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Json(body): Json<ChangePassword>,
) -> Result<Response, ApiError> {
    identity
        .change_own_password(
            &name,
            &body.current_password,
            &body.new_password,
            Some(peer),
        )
        .await?;
    Ok(Json(PasswordChanged {
        name,
        sessions_revoked: true,
    })
    .into_response())
}

/// The body of a reset: the temporary password, or none to have one generated.
#[derive(Deserialize)]
pub(super) struct ResetPassword {
    #[serde(default)]
    password: Option<String>,
}

/// The answer to a reset.
#[derive(Serialize)]
struct PasswordReset {
    name: String,
    /// The generated temporary password (shown once), or `null` when the request gave one.
    password: Option<String>,
    /// Always true: the user must change it before using it for anything else.
    must_change: bool,
}

/// `POST /api/v1/users/{name}/reset-password`.
pub(super) async fn reset_password(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<ResetPassword>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    let password = identity
        .reset_password(&who, &actor, &name, body.password)
        .await?;
    Ok(Json(PasswordReset {
        name,
        password,
        must_change: true,
    })
    .into_response())
}

/// The answer to enabling a principal.
#[derive(Serialize)]
struct Enabled {
    name: String,
    disabled: bool,
}

/// `POST /api/v1/users/{name}/enable`.
pub(super) async fn enable(
    State(identity): State<Arc<Identity>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&identity, &headers, peer).await?;
    identity.enable(&who, &actor, &name).await?;
    Ok(Json(Enabled {
        name,
        disabled: false,
    })
    .into_response())
}
