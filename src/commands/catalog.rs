//! `airlock status`: which digest is in which stage for a repository path, and by which
//! promotion.

use anyhow::Result;
use clap::Args;

use crate::commands::common::{Common, print};

/// `airlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The repository path without stage, e.g. team/app.
    path: String,
    #[command(flatten)]
    common: Common,
}

/// `airlock status`.
pub async fn status(args: StatusArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let status = api
        .get(&format!("/api/v1/status/{}", args.path.trim_matches('/')))
        .await?;
    print(&args.common, &status, |s| {
        let mut lines = Vec::new();
        for stage in s["stages"].as_array().cloned().unwrap_or_default() {
            let frozen = stage["frozen"]
                .as_str()
                .map(|r| format!(" (FROZEN: {r})"))
                .unwrap_or_default();
            lines.push(format!(
                "{}{frozen}",
                stage["repository"].as_str().unwrap_or("")
            ));
            let artifacts = stage["artifacts"].as_array().cloned().unwrap_or_default();
            if artifacts.is_empty() {
                lines.push("  -".into());
            }
            for a in artifacts {
                let tags: Vec<String> = a["tags"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect();
                lines.push(format!(
                    "  {}  tags: {}{}",
                    a["digest"].as_str().unwrap_or(""),
                    if tags.is_empty() {
                        "-".into()
                    } else {
                        tags.join(",")
                    },
                    a["promotion"]
                        .as_str()
                        .map(|p| format!("  by {p} ({})", a["promoted_by"].as_str().unwrap_or("")))
                        .unwrap_or_default()
                ));
            }
        }
        lines.join("\n")
    });
    Ok(0)
}
