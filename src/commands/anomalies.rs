//! `airlock anomalies list|show|resolve`: what the anomaly rules caught, and lifting what they
//! did (a lock, a quarantine, a freeze) once someone has looked.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::commands::common::{Common, print};

/// `airlock anomalies ...`.
#[derive(Debug, Subcommand)]
pub enum AnomaliesCommand {
    /// List anomalies, newest first.
    List {
        /// `open`, `resolved` or `all`.
        #[arg(long, default_value = "open")]
        status: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Show one anomaly with what it is about and what was done.
    Show {
        /// The anomaly id.
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Resolve an anomaly: lifts its lock, quarantine or freeze (access-admin; never the
    /// principal it is about).
    Resolve {
        /// The anomaly id.
        id: i64,
        /// Why it is resolved (recorded in the audit log).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
}

fn line(a: &Value) -> String {
    format!(
        "{:>4}  {:<8}  {:<20}  {:<19}  {}",
        a["id"].as_i64().unwrap_or_default(),
        a["status"].as_str().unwrap_or(""),
        a["rule"].as_str().unwrap_or(""),
        format!(
            "{}{}",
            a["action"].as_str().unwrap_or(""),
            if a["applied"] == true { "" } else { " (-)" }
        ),
        a["summary"].as_str().unwrap_or("")
    )
}

fn details(a: &Value) -> String {
    let mut out = format!(
        "anomaly {} ({}): {}\n  rule:     {} ({} of threshold {} within {} s, key {})\n  action:   {}{}\n  raised:   {}\n  target:   {}",
        a["id"],
        a["status"].as_str().unwrap_or(""),
        a["summary"].as_str().unwrap_or(""),
        a["rule"].as_str().unwrap_or(""),
        a["observed"],
        a["threshold"],
        a["window_secs"],
        a["key"].as_str().unwrap_or(""),
        a["action"].as_str().unwrap_or(""),
        if a["applied"] == true {
            ""
        } else {
            " (nothing to act on)"
        },
        a["created_at"].as_str().unwrap_or(""),
        a["target"]
    );
    if a["status"] == "resolved" {
        out.push_str(&format!(
            "\n  resolved: {} by {}: {}",
            a["resolved_at"].as_str().unwrap_or(""),
            a["resolved_by"].as_str().unwrap_or(""),
            a["resolution"].as_str().unwrap_or("")
        ));
    }
    out
}

/// Runs `airlock anomalies ...`.
pub async fn anomalies(command: AnomaliesCommand) -> Result<u8> {
    match command {
        AnomaliesCommand::List {
            status,
            limit,
            common,
        } => {
            let api = common.connect().await?;
            let body = api
                .get(&format!("/api/v1/anomalies?status={status}&limit={limit}"))
                .await?;
            print(&common, &body, |b| {
                let rows: Vec<String> = b["anomalies"]
                    .as_array()
                    .map(|list| list.iter().map(line).collect())
                    .unwrap_or_default();
                if rows.is_empty() {
                    format!("no {status} anomalies")
                } else {
                    format!(
                        "{:>4}  {:<8}  {:<20}  {:<19}  summary\n{}",
                        "id",
                        "status",
                        "rule",
                        "action",
                        rows.join("\n")
                    )
                }
            });
            Ok(0)
        }
        AnomaliesCommand::Show { id, common } => {
            let api = common.connect().await?;
            let body = api.get(&format!("/api/v1/anomalies/{id}")).await?;
            print(&common, &body, details);
            Ok(0)
        }
        AnomaliesCommand::Resolve { id, reason, common } => {
            let api = common.connect().await?;
            let body = api
                .post(
                    &format!("/api/v1/anomalies/{id}/resolve"),
                    &json!({ "reason": reason }),
                )
                .await?;
            print(&common, &body, |a| {
                format!(
                    "resolved anomaly {id}: {} lifted\n{}",
                    a["action"].as_str().unwrap_or(""),
                    details(a)
                )
            });
            Ok(0)
        }
    }
}
