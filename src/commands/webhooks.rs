//! `airlock webhooks add|list|remove|deliveries|test`: endpoints that receive airlock's events as
//! signed CloudEvents.

use std::path::PathBuf;

use airlock_api::webhooks::{
    AddWebhookRequest, Delivery, DeliveryList, TestQueued, Webhook, WebhookList, WebhookRemoved,
};
use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::commands::common::{Common, print_as};
use crate::commands::pages::{query_value, read_pages};

/// `airlock webhooks ...`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint: events matching the patterns are POSTed to URL, signed with the secret.
    Add {
        /// Where to POST the events (https://, or http:// on a trusted network).
        url: String,
        /// Event patterns, comma-separated: `promotion.*`, `anomaly.*`, `promotion.promoted`, `*`.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// A file holding the signing secret (16 to 1024 bytes; a trailing newline is dropped).
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// A PEM file with the CA that issued the receiver's certificate (https:// only); the
        /// receiver is then verified against it alone instead of the system's roots.
        #[arg(long, value_name = "FILE")]
        receiver_ca_cert: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// List the endpoints.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Remove an endpoint (its pending deliveries are cancelled).
    Remove {
        /// The webhook id.
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Show an endpoint's deliveries: status, attempts, last error.
    Deliveries {
        /// The webhook id.
        id: i64,
        /// `pending`, `delivered`, `dead`, `cancelled` or `all`.
        #[arg(long, default_value = "all")]
        status: String,
        /// At most this many, newest first (the server answers a page at a time and this
        /// command follows its `next` cursor up to the limit).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Send a `dev.airlock.webhook.test` event to an endpoint.
    Test {
        /// The webhook id.
        id: i64,
        #[command(flatten)]
        common: Common,
    },
}

fn read_secret(path: &PathBuf) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret file {}", path.display()))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        bail!(
            "{} is empty: write a secret into it (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        );
    }
    Ok(secret.to_string())
}

/// An endpoint's event patterns, joined by `sep`.
fn patterns(w: &Webhook, sep: &str) -> String {
    w.events.join(sep)
}

fn delivery_line(d: &Delivery) -> String {
    format!(
        "{:>6}  {:<9}  {:>8}  {:<36}  {}{}",
        d.id,
        d.status,
        d.attempts,
        d.kind,
        d.subject,
        d.last_error
            .as_deref()
            .map(|e| format!("  (last error: {e})"))
            .unwrap_or_default()
    )
}

/// Runs `airlock webhooks ...`.
pub async fn webhooks(command: WebhooksCommand) -> Result<u8> {
    match command {
        WebhooksCommand::Add {
            url,
            events,
            secret_file,
            receiver_ca_cert,
            common,
        } => {
            let secret = read_secret(&secret_file)?;
            let ca_cert = match &receiver_ca_cert {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the receiver's CA {}", path.display())
                })?),
                None => None,
            };
            let api = common.connect().await?;
            let request = AddWebhookRequest {
                url,
                events,
                secret,
                ca_cert,
            };
            let body: Webhook = api.post_as("/api/v1/webhooks", &request).await?;
            print_as(&common, &body, |w| {
                format!(
                    "added webhook {}: {} receives {}",
                    w.id,
                    w.url,
                    patterns(w, ", ")
                )
            });
            Ok(0)
        }
        WebhooksCommand::List { common } => {
            let api = common.connect().await?;
            let body: WebhookList = read_pages(&api, "/api/v1/webhooks", None).await?;
            print_as(&common, &body, |b| {
                let rows: Vec<String> = b
                    .webhooks
                    .iter()
                    .map(|w| {
                        format!(
                            "{:>4}  {}  events: {}  (added by {} at {})",
                            w.id,
                            w.url,
                            patterns(w, ","),
                            w.created_by,
                            w.created_at
                        )
                    })
                    .collect();
                if rows.is_empty() {
                    "no webhooks".into()
                } else {
                    rows.join("\n")
                }
            });
            Ok(0)
        }
        WebhooksCommand::Remove { id, common } => {
            let api = common.connect().await?;
            let body: WebhookRemoved = api.delete_as(&format!("/api/v1/webhooks/{id}")).await?;
            print_as(&common, &body, |_| format!("removed webhook {id}"));
            Ok(0)
        }
        WebhooksCommand::Deliveries {
            id,
            status,
            limit,
            common,
        } => {
            let api = common.connect().await?;
            let body: DeliveryList = read_pages(
                &api,
                &format!(
                    "/api/v1/webhooks/{id}/deliveries?status={}",
                    query_value(&status)
                ),
                Some(limit),
            )
            .await?;
            print_as(&common, &body, |b| {
                let rows: Vec<String> = b.deliveries.iter().map(delivery_line).collect();
                if rows.is_empty() {
                    format!("no deliveries to webhook {id}")
                } else {
                    format!(
                        "{:>6}  {:<9}  {:>8}  {:<36}  subject\n{}",
                        "id",
                        "status",
                        "attempts",
                        "type",
                        rows.join("\n")
                    )
                }
            });
            Ok(0)
        }
        WebhooksCommand::Test { id, common } => {
            let api = common.connect().await?;
            // The test event takes no parameters: an empty JSON object.
            let body: TestQueued = api
                .post_as(
                    &format!("/api/v1/webhooks/{id}/test"),
                    &serde_json::Map::new(),
                )
                .await?;
            print_as(&common, &body, |b| {
                format!(
                    "queued a dev.airlock.webhook.test event for webhook {id} (delivery {}); `airlock webhooks deliveries {id}` shows how it went",
                    b.delivery
                )
            });
            Ok(0)
        }
    }
}
