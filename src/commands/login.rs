//! `airlock login`: exchanges a name and password (or API key) for a refresh credential and
//! stores it, with the server's TLS choice, as a context for the other commands, and makes it the
//! current context. `--oidc` exchanges a CI job's ID token instead ([`crate::commands::oidc`]).

use anyhow::{Result, bail};
use clap::Args;

use crate::client::{CredentialStore, StoredLogin, normalize_server};
use crate::commands::common::{Common, read_stdin_secret};
use crate::commands::oidc::{self, OidcArgs};

/// `airlock login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, e.g. https://registry.example or 127.0.0.1:5000 (without a scheme: https://,
    /// or http:// for a loopback host) [default: --server, AIRLOCK_SERVER or the current
    /// context]. The TLS choice (--ca-cert, --insecure) is stored with the login and used by
    /// later commands for this server.
    #[arg(id = "login_server", value_name = "SERVER")]
    server: Option<String>,
    /// User (or service account) name.
    #[arg(
        short = 'u',
        long,
        required_unless_present = "oidc",
        conflicts_with = "oidc"
    )]
    username: Option<String>,
    /// Read the password (or API key) from standard input.
    #[arg(long, conflicts_with = "oidc")]
    password_stdin: bool,
    #[command(flatten)]
    oidc: OidcArgs,
}

/// `airlock login`: stores a refresh credential for the server and makes it current.
pub async fn login(args: LoginArgs, common: &Common) -> Result<u8> {
    let server = normalize_server(args.server.as_deref().unwrap_or(&common.server));
    if args.oidc.oidc {
        return oidc::login(&server, &args.oidc).await;
    }
    let Some(username) = args.username else {
        bail!("name the user with -u NAME (or use --oidc in a CI job)");
    };
    if !args.password_stdin {
        bail!(
            "pass the password on standard input with --password-stdin (it never goes on the command line)"
        );
    }
    let password = read_stdin_secret()?;
    // The TLS choice: the flags, else the one stored with an earlier login to this server.
    let earlier = CredentialStore::load()?.servers.remove(&server);
    let trust = crate::client::trust_for(earlier.as_ref())?;
    let refresh_token = crate::client::login(&server, &trust, &username, &password).await?;
    let _lock = crate::client::CredentialLock::acquire()?;
    let mut store = CredentialStore::load()?;
    store.servers.insert(
        server.clone(),
        StoredLogin::new(&username, refresh_token, &trust),
    );
    store.current = Some(server.clone());
    store.save()?;
    eprintln!(
        "logged in to {server} as {username} (credentials in {})",
        crate::client::credentials_path()?.display()
    );
    Ok(0)
}
