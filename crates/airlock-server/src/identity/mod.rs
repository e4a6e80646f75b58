//! Identity: who a request comes from and what it may do.
//!
//! Principals authenticate with a password or an API key (HTTP Basic, on `/auth/token` or
//! directly), with a refresh token from `airlock login`, with an access token (the Docker registry
//! token flow), or with a CI's OIDC ID token (workload identity). Every check of a token also
//! checks the principal's `authz_epoch`, so a role removed, a disabled user, a password change or
//! reset, or a revoked password ends its tokens on the very next request (a role added does not:
//! tokens pick it up at their next refresh, and every request is also checked against the live
//! grants), and the credential the token descends from, so a token ends when its API key expires
//! or is revoked. Refresh tokens rotate on every use (`service/tokens.rs`).

mod api_key_routes;
pub mod jwks;
mod password_checks;
pub mod routes;
pub mod service;

pub use service::{
    AuthError, Authenticated, ConsoleSession, Identity, IdentityError, PasswordFailure,
    SESSION_AUTH,
};
