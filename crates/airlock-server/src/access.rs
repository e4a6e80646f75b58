//! The access check every registry request passes through before it reaches the registry service.
//!
//! Today airlock runs open: every caller is anonymous and every action is allowed by access control
//! (stage rules still refuse pushes into gated stages). Authentication and scoped roles replace the
//! body of [`AccessControl::authorize`] without changing any handler: each handler already calls it
//! exactly once with the repository and the action it is about to perform.

use std::net::SocketAddr;

use airlock_core::{Action, Actor, RepoName};
use axum::http::HeaderMap;

use crate::oci::OciError;

/// Who made a request, as far as access control has established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal's name (`anonymous` when no credentials were presented).
    pub name: String,
    /// How it authenticated (`anonymous` when it did not).
    pub auth_method: String,
}

impl Principal {
    /// The audit log's view of this principal acting from `peer`.
    pub fn actor(&self, peer: Option<SocketAddr>) -> Actor {
        Actor {
            principal: self.name.clone(),
            auth_method: self.auth_method.clone(),
            source: peer.map(|p| p.to_string()),
        }
    }
}

/// What a request is allowed to do.
#[derive(Debug, Clone, Default)]
pub struct AccessControl {
    _private: (),
}

impl AccessControl {
    /// Open access: every request is anonymous and allowed.
    pub fn open() -> Self {
        Self::default()
    }

    /// Decides whether the request may perform `action` on `repo` (`None`: the registry as a whole,
    /// e.g. the catalog) and returns the principal it acts as.
    pub async fn authorize(
        &self,
        _headers: &HeaderMap,
        _repo: Option<&RepoName>,
        _action: Action,
    ) -> Result<Principal, OciError> {
        Ok(Principal {
            name: "anonymous".to_string(),
            auth_method: "anonymous".to_string(),
        })
    }
}
