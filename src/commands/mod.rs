//! The client commands, one module per command group; [`common`] holds what they all share
//! (server and output options, connecting, printing).

pub mod access;
pub mod account;
pub mod anomalies;
pub mod audit;
pub mod common;
pub mod evidence;
pub mod login;
pub mod promotion;
pub mod service_account_keys;
pub mod webhooks;
