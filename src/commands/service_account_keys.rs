//! `airlock service-accounts keys add|list|revoke`: a service account's named API keys, through
//! `/api/v1/service-accounts/{name}/keys`.

use airlock_api::identity as api;
use anyhow::{Result, anyhow};
use clap::Subcommand;

use crate::commands::access::NoBody;
use crate::commands::common::{Common, print_as};
use crate::commands::pages::read_pages;

/// `airlock service-accounts keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a named API key to a service account and print its secret once.
    Add {
        /// The service account.
        account: String,
        /// The key's name (unique among the account's live keys), e.g. ci-2026.
        #[arg(long)]
        name: String,
        /// Days until the key expires (e.g. 90 or 90d). Neither this nor --expires-at: the
        /// maximum, access.max_api_key_days.
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// The date (2027-01-31, midnight UTC) or RFC 3339 time at which the key expires.
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List a service account's keys: id, name, created, expires, last used, status.
    List {
        /// The service account.
        account: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke one key (by id, or by the name of a live key); the account's other keys keep
    /// working.
    Revoke {
        /// The service account.
        account: String,
        /// The key id or name.
        key: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `--expires-in`: a whole number of days, optionally with a `d`.
fn expires_in_secs(value: &str) -> Result<u64> {
    let days: u64 =
        value.trim().trim_end_matches('d').parse().map_err(|_| {
            anyhow!("--expires-in {value:?} is not a number of days, e.g. 90 or 90d")
        })?;
    days.checked_mul(86_400)
        .ok_or_else(|| anyhow!("--expires-in {value:?} is too large"))
}

/// `--expires-at`: a date (midnight UTC) or an RFC 3339 time, as RFC 3339.
fn expires_at(value: &str) -> Result<String> {
    let value = value.trim();
    let text = if value.len() == 10 {
        format!("{value}T00:00:00Z")
    } else {
        value.to_string()
    };
    time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).map_err(
        |_| anyhow!("--expires-at {value:?} is not a date: use 2027-01-31 or 2027-01-31T12:00:00Z"),
    )?;
    Ok(text)
}

fn key_line(key: &api::ApiKey) -> String {
    format!(
        "{:<14} {:<24} {:<8} created {:<24} expires {:<24} last used {}",
        key.id,
        key.name,
        key.status,
        key.created,
        key.expires.as_deref().unwrap_or("-"),
        key.last_used.as_deref().unwrap_or("-")
    )
}

/// Runs `airlock service-accounts keys ...`.
pub async fn keys(command: KeysCommand) -> Result<u8> {
    match command {
        KeysCommand::Add {
            account,
            name,
            expires_in,
            expires_at: at,
            common,
        } => {
            let request = api::AddApiKeyRequest {
                name,
                expires_in_secs: expires_in.as_deref().map(expires_in_secs).transpose()?,
                expires_at: at.as_deref().map(expires_at).transpose()?,
            };
            let client = common.connect().await?;
            let added: api::ApiKeyAdded = client
                .post_as(
                    &format!("/api/v1/service-accounts/{account}/keys"),
                    &request,
                )
                .await?;
            print_as(&common, &added, |v| {
                format!(
                    "added key {} ({}) to {account}; expires {}. The key is shown once:\n{}",
                    v.key.name,
                    v.key.id,
                    v.key.expires.as_deref().unwrap_or("?"),
                    v.api_key
                )
            });
        }
        KeysCommand::List { account, common } => {
            let client = common.connect().await?;
            let list: api::ApiKeyList = read_pages(
                &client,
                &format!("/api/v1/service-accounts/{account}/keys"),
                None,
            )
            .await?;
            print_as(&common, &list, |v| {
                if v.keys.is_empty() {
                    format!("{account} has no API keys")
                } else {
                    v.keys.iter().map(key_line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        KeysCommand::Revoke {
            account,
            key,
            common,
        } => {
            let client = common.connect().await?;
            let done: api::ApiKeyRevoked = client
                .post_as(
                    &format!("/api/v1/service-accounts/{account}/keys/{key}/revoke"),
                    &NoBody {},
                )
                .await?;
            print_as(&common, &done, |v| {
                format!(
                    "revoked key {} ({}) of {account}; its tokens no longer work, the account's other keys do",
                    v.name, v.id
                )
            });
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_flags_parse_days_and_dates() {
        assert_eq!(expires_in_secs("90").unwrap(), 90 * 86_400);
        assert_eq!(expires_in_secs("2d").unwrap(), 2 * 86_400);
        assert!(expires_in_secs("2h").is_err());
        assert_eq!(expires_at("2027-01-31").unwrap(), "2027-01-31T00:00:00Z");
        assert_eq!(
            expires_at("2027-01-31T12:00:00Z").unwrap(),
            "2027-01-31T12:00:00Z"
        );
        assert!(expires_at("31/01/2027").is_err());
    }
}
