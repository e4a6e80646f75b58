//! `airlock version`: this client's version and the server's (`GET /api/v1/version`, which
//! needs no login).

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::client::{CredentialStore, build_http_client, connection_error, normalize_server};
use crate::commands::common::{Common, OutputFormat, print_as};

/// `airlock version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only this client's version; do not ask a server.
    #[arg(long)]
    client: bool,
}

/// What `airlock version -o json` prints.
#[derive(Debug, Serialize)]
struct Versions {
    /// This CLI's version.
    client: String,
    /// The server asked, and its answer (absent with `--client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerAnswer>,
}

#[derive(Debug, Serialize)]
struct ServerAnswer {
    /// The server's URL.
    url: String,
    /// Its version.
    version: String,
    /// Its API version.
    api: String,
}

/// `airlock version`: exit 0 with both versions, 2 if the server cannot be asked (the client's
/// version is printed first either way, in text output).
pub async fn version(args: VersionArgs, common: &Common) -> Result<u8> {
    let client = env!("CARGO_PKG_VERSION").to_string();
    if args.client {
        print_as(
            common,
            &Versions {
                client,
                server: None,
            },
            |v| format!("client: airlock {}", v.client),
        );
        return Ok(0);
    }
    if common.output == OutputFormat::Text {
        println!("client: airlock {client}");
    }
    let server = normalize_server(&common.server);
    let store = CredentialStore::load().unwrap_or_default();
    let trust = crate::client::trust_for(store.servers.get(&server))?;
    let http = build_http_client(&trust, reqwest::header::HeaderMap::new())?;
    let response = http
        .get(format!("{server}/api/v1/version"))
        .send()
        .await
        .map_err(|e| connection_error(&server, e))?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(crate::client::ApiError::from_answer(status, &body).into());
    }
    let answer: airlock_api::meta::ServerVersion = serde_json::from_value(body).map_err(|_| {
        anyhow::anyhow!(
            "{server} answered /api/v1/version with something else than a version: is it an \
                 airlock server older than this client? (`airlock version --client` shows only \
                 this one)"
        )
    })?;
    let versions = Versions {
        client,
        server: Some(ServerAnswer {
            url: server,
            version: answer.version,
            api: answer.api,
        }),
    };
    match common.output {
        OutputFormat::Json => print_as(common, &versions, |_| String::new()),
        OutputFormat::Text => {
            if let Some(server) = &versions.server {
                println!(
                    "server: airlock {} ({}, API {})",
                    server.version, server.url, server.api
                );
            }
        }
    }
    Ok(0)
}
