//! `airlock login`: exchanges a name and password (or API key) for a refresh credential and
//! stores it, with the server's TLS choice, for the other commands.

use anyhow::{Result, bail};
use clap::Args;

use crate::client::{CredentialStore, StoredLogin, normalize_server};
use crate::commands::common::read_stdin_secret;

/// `airlock login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, e.g. https://registry.example or 127.0.0.1:5000 (without a scheme: https://,
    /// or http:// for a loopback host). The TLS choice (--ca-cert, --insecure) is stored with
    /// the login and used by later commands for this server.
    server: String,
    /// User (or service account) name.
    #[arg(short = 'u', long)]
    username: String,
    /// Read the password (or API key) from standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// `airlock login`: stores a refresh credential for the server.
pub async fn login(args: LoginArgs) -> Result<u8> {
    if !args.password_stdin {
        bail!(
            "pass the password on standard input with --password-stdin (it never goes on the command line)"
        );
    }
    let password = read_stdin_secret()?;
    let server = normalize_server(&args.server);
    // The TLS choice: the flags, else the one stored with an earlier login to this server.
    let earlier = CredentialStore::load()?.servers.remove(&server);
    let trust = crate::client::trust_for(earlier.as_ref())?;
    let refresh_token = crate::client::login(&server, &trust, &args.username, &password).await?;
    let _lock = crate::client::CredentialLock::acquire()?;
    let mut store = CredentialStore::load()?;
    store.servers.insert(
        server.clone(),
        StoredLogin::new(&args.username, refresh_token, &trust),
    );
    store.save()?;
    eprintln!(
        "logged in to {server} as {} (credentials in {})",
        args.username,
        crate::client::credentials_path()?.display()
    );
    Ok(0)
}
