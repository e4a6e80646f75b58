//! What every client command shares: the server, token and output options ([`Common`]),
//! connecting with the stored login or the given token ([`Common::connect`]), printing a result
//! as text or JSON ([`print`]) and reading a secret from standard input.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::client::ApiClient;

/// Server, credential and output options every command takes, before or after the subcommand
/// (`airlock --server URL users list` and `airlock users list --server URL` are the same).
#[derive(Debug, Args)]
pub struct Common {
    /// The airlock server URL. Default: the current context (the server of the last `airlock
    /// login` or `airlock context use`), else http://127.0.0.1:5000.
    #[arg(
        long,
        env = "AIRLOCK_SERVER",
        default_value_t = crate::client::default_server(),
        // The default is this user's current context: not shown, so generated man pages and
        // completion scripts do not carry the packager's server.
        hide_default_value = true,
        global = true,
        value_name = "URL"
    )]
    pub(crate) server: String,
    /// `text` (for people) or `json`: one JSON document on stdout, errors included
    /// (`{"error":{"code","message","remediation"}}`).
    #[arg(short = 'o', long, default_value = "text", global = true)]
    pub(crate) output: OutputFormat,
    /// Send this bearer token (e.g. from `airlock login --oidc --print-token`) instead of using
    /// a stored login; prefer AIRLOCK_TOKEN, since a command line is visible to other users.
    #[arg(
        long,
        env = "AIRLOCK_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<BearerToken>,
}

/// A bearer token given to the CLI: never printed (its `Debug` is redacted).
#[derive(Clone)]
pub struct BearerToken(pub(crate) String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Taken as given: clap never checks (and so never echoes) the value; [`BearerToken::validated`]
/// does, with messages that never contain it.
impl From<String> for BearerToken {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl BearerToken {
    /// The token to send: surrounding spaces and one leading `Bearer ` (any case) removed;
    /// `None` when the value is blank (as if unset); refused when only `Bearer` is left or when
    /// it still holds a space or control character. The error never contains the value (it is a
    /// secret, and errors reach CI logs).
    pub(crate) fn validated(&self) -> std::result::Result<Option<String>, &'static str> {
        let mut value = self.0.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if value.len() >= 6 && value[..6].eq_ignore_ascii_case("bearer") {
            let rest = &value[6..];
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                value = rest.trim_start();
            }
        }
        if value.is_empty() {
            return Err(
                "--token / AIRLOCK_TOKEN holds only `Bearer`: set it to the access token, or \
                 unset it to use the stored login",
            );
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "--token / AIRLOCK_TOKEN is not one word (it holds a space or control \
                 character): set it to the access token alone (the value is not shown)",
            );
        }
        Ok(Some(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::BearerToken;

    #[test]
    fn a_token_with_a_bearer_prefix_is_accepted_without_it() {
        let token = BearerToken::from("Bearer eyJ.SECRET".to_string());
        assert_eq!(token.validated(), Ok(Some("eyJ.SECRET".to_string())));
        let token = BearerToken::from("  eyJ.SECRET\n".to_string());
        assert_eq!(token.validated(), Ok(Some("eyJ.SECRET".to_string())));
    }

    #[test]
    fn a_bad_token_is_refused_without_repeating_it() {
        assert_eq!(BearerToken::from("  ".to_string()).validated(), Ok(None));
        assert!(
            BearerToken::from("Bearer ".to_string())
                .validated()
                .is_err()
        );
        for bad in [
            "eyJ SECRET",
            "Bearer eyJ SECRET",
            "eyJ\tSECRET",
            "eyJ\u{7}SECRET",
        ] {
            let err = BearerToken::from(bad.to_string())
                .validated()
                .expect_err(bad);
            assert!(!err.contains("SECRET"), "{err}");
        }
    }
}

impl Common {
    /// An API client for this server, authenticated with `--token` / `AIRLOCK_TOKEN`, else the
    /// stored login.
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
