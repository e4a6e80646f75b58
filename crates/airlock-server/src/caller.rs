//! Who is calling a JSON API route: the one extractor every `/api/v1` handler takes instead of
//! authenticating by hand.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::access::{api_caller, authenticate_api};
use crate::api::ApiError;
use crate::identity::{Authenticated, Identity};

/// The caller of an API request, authenticated from its `Authorization` header (bearer token,
/// basic password or API key). With access control off (`[access] enabled = false`) every caller
/// is anonymous: `who` is `None` and the services apply no role checks.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal, `None` only when access control is off.
    pub who: Option<Authenticated>,
    /// The audit actor: the principal (or anonymous) and the client address.
    pub actor: airlock_core::Actor,
    /// The client address (after trusted proxies).
    pub peer: SocketAddr,
}

/// A caller who must be signed in even when access control is off (the identity routes: there is
/// no "anonymous" user to change a password for).
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The authenticated principal.
    pub who: Authenticated,
    /// The audit actor.
    pub actor: airlock_core::Actor,
    /// The client address (after trusted proxies).
    pub peer: SocketAddr,
}

fn peer(parts: &Parts) -> Result<SocketAddr, ApiError> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .ok_or_else(|| ApiError::internal_message("request without a client address (ConnectInfo)"))
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Identity>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let identity = Arc::<Identity>::from_ref(state);
        let peer = peer(parts)?;
        let (who, actor) = api_caller(&identity, &parts.headers, peer).await?;
        Ok(Self { who, actor, peer })
    }
}

impl<S> FromRequestParts<S> for SignedIn
where
    Arc<Identity>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let identity = Arc::<Identity>::from_ref(state);
        let peer = peer(parts)?;
        let who = authenticate_api(&identity, &parts.headers, Some(peer)).await?;
        let actor = who.actor(Some(peer));
        Ok(Self { who, actor, peer })
    }
}
