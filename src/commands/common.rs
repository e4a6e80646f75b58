//! What every client command shares: the server and output options ([`Common`]), connecting
//! with the stored login ([`Common::connect`]), printing a result as text or JSON ([`print`]) and
//! reading a secret from standard input.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crate::client::ApiClient;

/// Server and output options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// airlock server URL.
    #[arg(
        long,
        env = "AIRLOCK_SERVER",
        default_value = "http://127.0.0.1:5000",
        global = true
    )]
    pub(crate) server: String,
    /// `text` or `json` (one JSON document on stdout).
    #[arg(long, default_value = "text", global = true)]
    pub(crate) output: OutputFormat,
}

impl Common {
    /// An API client for this server, authenticated with the stored login.
    pub(crate) async fn connect(&self) -> Result<ApiClient> {
        ApiClient::connect(&self.server).await
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Prints `value` as one JSON document, or as `text` renders it for people.
pub(crate) fn print(common: &Common, value: &Value, text: impl FnOnce(&Value) -> String) {
    match common.output {
        OutputFormat::Json => println!("{value}"),
        OutputFormat::Text => println!("{}", text(value)),
    }
}

/// Prints the API answer `value` as one JSON document, or as `text` renders it for people.
pub(crate) fn print_as<T: serde::Serialize>(
    common: &Common,
    value: &T,
    text: impl FnOnce(&T) -> String,
) {
    match common.output {
        OutputFormat::Json => match serde_json::to_string(value) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("airlock: cannot render the answer as JSON: {err}"),
        },
        OutputFormat::Text => println!("{}", text(value)),
    }
}

/// Reads a secret (a password) from standard input, without its trailing newline.
pub(crate) fn read_stdin_secret() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        bail!(
            "standard input was empty: pipe the password in, e.g. echo \"$PW\" | airlock login ..."
        );
    }
    Ok(secret)
}
