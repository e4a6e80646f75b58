//! `airlock anomalies list|show|resolve`: what the anomaly rules caught, and lifting what they
//! did (a lock, a quarantine, a freeze) once someone has looked.

use airlock_api::anomalies::{Anomaly, AnomalyList, ResolveAnomalyRequest};
use anyhow::Result;
use clap::Subcommand;

use crate::commands::common::{Common, print_as};

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

fn line(a: &Anomaly) -> String {
    format!(
        "{:>4}  {:<8}  {:<20}  {:<19}  {}",
        a.id,
        a.status,
        a.rule,
        format!("{}{}", a.action, if a.applied { "" } else { " (-)" }),
        a.summary
    )
}

/// The target as compact JSON with its fields in name order, as it has always printed.
fn target_text(target: &airlock_api::anomalies::AnomalyTarget) -> String {
    serde_json::to_value(target)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn details(a: &Anomaly) -> String {
    let mut out = format!(
        "anomaly {} ({}): {}\n  rule:     {} ({} of threshold {} within {} s, key {})\n  action:   {}{}\n  raised:   {}\n  target:   {}",
        a.id,
        a.status,
        a.summary,
        a.rule,
        a.observed,
        a.threshold,
        a.window_secs,
        a.key,
        a.action,
        if a.applied {
            ""
        } else {
            " (nothing to act on)"
        },
        a.created_at,
        target_text(&a.target)
    );
    if a.status == "resolved" {
        out.push_str(&format!(
            "\n  resolved: {} by {}: {}",
            a.resolved_at.as_deref().unwrap_or(""),
            a.resolved_by.as_deref().unwrap_or(""),
            a.resolution.as_deref().unwrap_or("")
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
            let body: AnomalyList = api
                .get_as(&format!("/api/v1/anomalies?status={status}&limit={limit}"))
                .await?;
            print_as(&common, &body, |b| {
                let rows: Vec<String> = b.anomalies.iter().map(line).collect();
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
            let body: Anomaly = api.get_as(&format!("/api/v1/anomalies/{id}")).await?;
            print_as(&common, &body, details);
            Ok(0)
        }
        AnomaliesCommand::Resolve { id, reason, common } => {
            let api = common.connect().await?;
            let body: Anomaly = api
                .post_as(
                    &format!("/api/v1/anomalies/{id}/resolve"),
                    &ResolveAnomalyRequest { reason },
                )
                .await?;
            print_as(&common, &body, |a| {
                format!("resolved anomaly {id}: {} lifted\n{}", a.action, details(a))
            });
            Ok(0)
        }
    }
}
