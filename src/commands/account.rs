//! `airlock users passwd|reset-password|enable`: a user's account after it was created.
//!
//! `passwd` reads the current and the new password from standard input (never from the command
//! line), sends them to `POST /api/v1/users/{name}/password` (which needs no stored login: a
//! password waiting to be changed cannot log in), and then logs in again with the new password,
//! because the change ended every login of the user. It stores that login when the server had no
//! stored login or one of the same user; a stored login of someone else is left alone.

use std::io::Read;

use airlock_api::identity as api;
use anyhow::{Context, Result, bail};

use crate::client::{ApiError, CredentialLock, CredentialStore, StoredLogin, normalize_server};
use crate::commands::access::NoBody;
use crate::commands::common::{Common, print_as};

/// Reads the current and the new password, one per line, from standard input.
fn read_two_passwords() -> Result<(String, String)> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    match (lines.next(), lines.next()) {
        (Some(current), Some(new)) if !current.is_empty() && !new.is_empty() => {
            Ok((current.to_string(), new.to_string()))
        }
        _ => bail!(
            "standard input must hold two lines: the current password, then the new one, e.g. printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | airlock users passwd -u NAME --password-stdin"
        ),
    }
}

/// The error of an API answer that is not a success, as every command reports it: the server's
/// code, message and remediation, exit 1 for a refusal or an unknown user, 2 otherwise.
fn api_failure(status: u16, body: Option<airlock_api::ErrorBody>) -> anyhow::Error {
    let body = body
        .and_then(|body| serde_json::to_value(body).ok())
        .unwrap_or(serde_json::Value::Null);
    ApiError::from_answer(status, &body).into()
}

/// `airlock users passwd`.
pub async fn passwd(username: Option<String>, password_stdin: bool, common: Common) -> Result<u8> {
    if !password_stdin {
        bail!(
            "pass the current and the new password on standard input, one per line, with --password-stdin (passwords never go on the command line)"
        );
    }
    let server = normalize_server(&common.server);
    let stored = CredentialStore::load()?.servers.remove(&server);
    let username = match (username, &stored) {
        (Some(name), _) => name,
        (None, Some(login)) => login.username.clone(),
        (None, None) => bail!("name the user with -u NAME (there is no stored login for {server})"),
    };
    let (current, new) = read_two_passwords()?;
    // The TLS choice: the flags, else the one stored with the login to this server.
    let trust = crate::client::trust_for(stored.as_ref())?;
    let http = crate::client::build_http_client(&trust, reqwest::header::HeaderMap::new())?;
    let response = http
        .post(format!("{server}/api/v1/users/{username}/password"))
        .json(&api::ChangePasswordRequest {
            current_password: current,
            new_password: new.clone(),
        })
        .send()
        .await
        .map_err(|e| crate::client::connection_error(&server, e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(api_failure(status, response.json().await.ok()));
    }
    let changed: api::PasswordChanged = response.json().await.context(
        "the server's answer to the password change is not what this client expects: \
         use an airlock CLI of the server's version (`airlock version` shows both)",
    )?;
    // Every login of the user ended with the change: log in again with the new password.
    // With --token / AIRLOCK_TOKEN nothing is stored: no new login is written.
    let relogin = !crate::client::token_given()
        && stored
            .as_ref()
            .is_none_or(|login| login.username == username);
    let note = if relogin {
        let refresh_token = crate::client::login(&server, &trust, &username, &new).await?;
        let _lock = CredentialLock::acquire()?;
        let mut store = CredentialStore::load()?;
        store.servers.insert(
            server.clone(),
            // The TLS choice stored with the earlier login stays; flags given to this command
            // apply to it only.
            match &stored {
                Some(earlier) => StoredLogin {
                    refresh_token,
                    ..earlier.clone()
                },
                None => StoredLogin::new(&username, refresh_token, &trust),
            },
        );
        store.save()?;
        format!("logged in to {server} as {username} with the new password")
    } else {
        format!("log in with it: airlock login {server} -u {username} --password-stdin")
    };
    print_as(&common, &changed, |_| {
        format!(
            "changed the password of {username}; every other login and token of {username} ended; {note}"
        )
    });
    Ok(0)
}

/// `airlock users reset-password`.
pub async fn reset_password(name: String, password_stdin: bool, common: Common) -> Result<u8> {
    let password = if password_stdin {
        Some(crate::commands::common::read_stdin_secret()?)
    } else {
        None
    };
    let client = common.connect().await?;
    let done: api::PasswordReset = client
        .post_as(
            &format!("/api/v1/users/{name}/reset-password"),
            &api::ResetPasswordRequest { password },
        )
        .await?;
    print_as(&common, &done, |v| {
        let then = format!(
            "{name} must change it before anything else: airlock users passwd -u {name} --password-stdin"
        );
        match &v.password {
            Some(pw) => format!(
                "reset the password of {name}; temporary password (shown once): {pw}\n{then}"
            ),
            None => format!("reset the password of {name}\n{then}"),
        }
    });
    Ok(0)
}

/// `airlock users enable`.
pub async fn enable(name: String, common: Common) -> Result<u8> {
    let client = common.connect().await?;
    let done: api::PrincipalState = client
        .post_as(&format!("/api/v1/users/{name}/enable"), &NoBody {})
        .await?;
    print_as(&common, &done, |_| {
        format!("enabled {name}; it logs in again (its earlier logins and tokens stay revoked)")
    });
    Ok(0)
}
