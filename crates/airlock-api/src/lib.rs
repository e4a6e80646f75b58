//! airlock's JSON API (`/api/v1`): the request and response types the server answers with and the
//! CLI reads, one module per area, each deriving its OpenAPI schema (`utoipa::ToSchema`) so the
//! document at `/api/v1/openapi.json`, the server and the CLI cannot disagree.
//!
//! Types here are plain data: no I/O, no validation beyond what serde's shape gives (the server
//! parses names, digests and scopes into `airlock-core` types at its edge).
#![forbid(unsafe_code)]

pub mod anomalies;
pub mod audit;
pub mod catalog;
pub mod deploy;
pub mod error;
pub mod evidence;
pub mod gc;
pub mod identity;
pub mod meta;
pub mod promotion;
pub mod server_keys;
pub mod webhooks;

pub use error::{ErrorBody, ErrorDetail};
