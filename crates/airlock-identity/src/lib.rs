//! Who is calling airlock, and how they prove it.
//!
//! This crate holds every credential airlock understands, as pure functions with no I/O:
//!
//! - [`password`]: argon2id password hashes (PHC strings) for human users, and the random
//!   password generated for the initial admin;
//! - [`password_policy`]: what a new password must satisfy (length, a deny list of common
//!   passwords, not the user name);
//! - [`api_key`]: long-lived API keys (`alk_<id>_<secret>`) for automation, stored as a SHA-256
//!   digest and compared in constant time;
//! - [`access_token`]: short-lived registry access tokens, EdDSA-signed JWTs compatible with the
//!   Docker registry token specification, and the `GET /auth/token` response body;
//! - [`console_session`]: web console sessions, a random cookie stored as a SHA-256 digest, with
//!   a CSRF token and idle and absolute timeouts;
//! - [`oidc`]: workload identity, i.e. CI ID tokens (GitHub Actions and the like) verified against
//!   the issuer's JWKS and an operator-written [`TrustRule`].
//!
//! Every verifier follows the same shape: bound the input, parse it into typed values, verify the
//! signature, then check the typed claims; each rejection is its own error variant so the server
//! can answer with a precise message. Secrets are never printed by `Debug` and are compared in
//! constant time. Wall-clock time is always passed in by the caller (`now_secs`), so verification
//! is deterministic and testable.

#![forbid(unsafe_code)]

pub mod access_token;
pub mod api_key;
pub mod console_session;
mod error;
mod jwt;
pub mod oidc;
pub mod password;
pub mod password_policy;
pub mod sign_in_flow;

pub use access_token::{
    AccessClaims, AccessEntry, RetiredTokenKey, TokenError, TokenKey, TokenKind, TokenPublicKey,
    TokenVerifier, token_response,
};
pub use api_key::{ApiKey, ApiKeyRecord, ApiKeySecret, parse_api_key, verify_api_key};
pub use console_session::{
    NewSession, SessionExpired, SessionTimeouts, csrf_token_matches, session_id_of,
};
pub use error::IdentityError;
pub use jwt::MAX_TOKEN_BYTES;
pub use oidc::{Jwks, OidcError, OidcIdentity, TrustRule, select_rule, verify_id_token};
pub use password::{
    PasswordMemory, generate_password, generate_password_of, hash_password, verify_password,
    verify_password_in,
};
pub use password_policy::{
    GENERATE_ATTEMPTS, GenerationFailed, MAX_PASSWORD_BYTES, MinPasswordLength, PasswordPolicy,
    PasswordRejected, is_common_password,
};
pub use sign_in_flow::{SignInFlow, pkce_challenge};
