//! airlock's HTTP server.
//!
//! [`app::serve`] opens storage, builds the [`registry::Registry`] service and serves the OCI
//! Distribution API ([`oci`]) plus health endpoints, over plaintext HTTP/1.1 or TLS ([`tls`],
//! HTTP/2 or HTTP/1.1) under the limits of [`connections`]. Requests pass through request-id and
//! tracing middleware, then [`access::AccessControl`], then a thin handler that calls the service.
#![forbid(unsafe_code)]

pub mod access;
pub mod anomalies;
pub mod api;
pub mod app;
pub mod audit;
pub mod backup;
pub mod caller;
pub mod catalog;
pub mod client_address;
pub mod config;
pub mod connections;
pub mod console;
pub mod data_dir;
pub mod deploy;
pub mod evidence;
pub mod extract;
pub mod gc;
pub mod identity;
pub mod leadership;
pub mod meta;
pub mod metrics;
pub mod migrate_store;
pub mod oci;
pub mod openapi;
pub mod outbound_tls;
pub mod paging;
pub mod promotion;
pub mod readiness;
pub mod registry;
pub mod server_keys;
pub mod tls;
pub mod webhooks;
pub mod witness;

pub use app::{ServeError, serve};
pub use config::{Config, LogFormat};
