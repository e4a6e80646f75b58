//! `airlock context list|use`: the servers this user has logged in to (one context each, with
//! its user and TLS choice) and which one is current, i.e. used without `--server` or
//! `AIRLOCK_SERVER`. `airlock login` adds a context and makes it current.

use anyhow::{Result, bail};
use clap::Subcommand;
use serde::Serialize;

use crate::client::{CredentialLock, CredentialStore, StoredLogin, normalize_server};
use crate::commands::common::{Common, print_as};

/// `airlock context`.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List the contexts (`*` marks the current one).
    List,
    /// Make a context current: later commands use its server without `--server`.
    Use {
        /// The context: its server as `airlock login` was given it, e.g. 127.0.0.1:5000 or
        /// https://registry.example.
        name: String,
    },
}

/// One context as `airlock context list -o json` prints it (no secrets).
#[derive(Debug, Serialize)]
struct ContextView {
    /// The server URL (the context's name).
    server: String,
    /// Who is logged in there.
    username: String,
    /// Whether commands use it without `--server`.
    current: bool,
    /// How the server's certificate is checked: `system`, `private-ca` or `insecure`.
    tls: &'static str,
    /// `password` (a renewed refresh credential) or `oidc` (a short-lived CI token).
    login: &'static str,
}

fn view(server: &str, login: &StoredLogin, current: Option<&str>) -> ContextView {
    ContextView {
        server: server.to_string(),
        username: login.username.clone(),
        current: current == Some(server),
        tls: if login.insecure {
            "insecure"
        } else if login.ca_cert_pem.is_some() {
            "private-ca"
        } else {
            "system"
        },
        login: if login.access_token.is_some() {
            "oidc"
        } else {
            "password"
        },
    }
}

/// `airlock context ...`.
pub async fn context(command: ContextCommand, common: &Common) -> Result<u8> {
    match command {
        ContextCommand::List => {
            let store = CredentialStore::load()?;
            let contexts: Vec<ContextView> = store
                .servers
                .iter()
                .map(|(server, login)| view(server, login, store.current.as_deref()))
                .collect();
            print_as(common, &contexts, |contexts| {
                if contexts.is_empty() {
                    return "no contexts: log in with `airlock login SERVER -u NAME --password-stdin`"
                        .to_string();
                }
                contexts
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}  {} (login: {}, tls: {})",
                            if c.current { "*" } else { " " },
                            c.server,
                            c.username,
                            c.login,
                            c.tls
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        ContextCommand::Use { name } => {
            let server = normalize_server(&name);
            let _lock = CredentialLock::acquire()?;
            let mut store = CredentialStore::load()?;
            let Some(login) = store.servers.get(&server) else {
                let known: Vec<&str> = store.servers.keys().map(String::as_str).collect();
                bail!(
                    "there is no context {server}: log in to it first (`airlock login {server} -u \
                     NAME --password-stdin`){}",
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(", or use one of: {}", known.join(", "))
                    }
                );
            };
            let shown = view(&server, login, Some(&server));
            store.current = Some(server);
            store.save()?;
            print_as(common, &shown, |c| {
                format!("now using {} as {}", c.server, c.username)
            });
            Ok(0)
        }
    }
}
