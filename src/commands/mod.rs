//! The client commands, one module per command group; [`common`] holds what they all share
//! (server, token and output options, connecting, printing) and [`outcome`] how errors
//! and exit statuses reach the caller.

pub mod access;
pub mod account;
pub mod anomalies;
pub mod audit;
pub mod backup;
pub mod catalog;
pub mod common;
pub mod completion;
pub mod context;
pub mod deploy;
pub mod evidence;
pub mod gc;
pub mod login;
pub mod migrate_store;
pub mod oidc;
pub mod outcome;
pub mod pages;
pub mod promotion;
pub mod service_account_keys;
pub mod version;
pub mod webhooks;
pub mod witness;
