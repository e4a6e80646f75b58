//! About the server itself: which version it is (`GET /api/v1/version`). Nothing here needs
//! authentication or storage.

pub mod routes;

/// airlock's release version, from the workspace's `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
