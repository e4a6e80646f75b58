//! `airlock gc [--dry-run]`: garbage collection on the server (`POST /api/v1/gc`): blobs no
//! manifest references, files no row names and, with `keep_untagged_days`, old untagged
//! manifests in push stages. Needs access-admin everywhere.

use airlock_api::gc::{GcReport, GcRequest};
use anyhow::Result;
use clap::Args;

use crate::commands::common::{Common, print_as};

/// `airlock gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only count what would be deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    common: Common,
}

/// Bytes for people: `1.5 MiB (1572864 bytes)`.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

fn report_text(report: &GcReport) -> String {
    let (verb, done) = if report.dry_run {
        ("would delete", "dry run: nothing was deleted")
    } else {
        ("deleted", "recorded in the audit log (gc.collected)")
    };
    let retention = match report.keep_untagged_days {
        Some(days) => format!(
            "{} untagged manifests older than {days} days {}",
            report.manifests_pruned,
            if report.dry_run {
                "would be pruned"
            } else {
                "pruned"
            }
        ),
        None => "untagged manifests kept (keep_untagged_days is unset)".to_string(),
    };
    format!(
        "gc {verb} {} unreferenced blobs, {}\ngc {verb} {} orphan files, {}\ngc {verb} {} staged upload objects no session uses, {}\n{retention}\ngrace period: {} s\n{done}",
        report.blobs,
        bytes_text(report.bytes),
        report.orphan_files,
        bytes_text(report.orphan_bytes),
        report.staged_objects,
        bytes_text(report.staged_bytes),
        report.grace_secs,
    )
}

/// Runs `airlock gc`.
pub async fn gc(args: GcArgs) -> Result<u8> {
    let api = args.common.connect().await?;
    let report: GcReport = api
        .post_as(
            "/api/v1/gc",
            &GcRequest {
                dry_run: args.dry_run,
            },
        )
        .await?;
    print_as(&args.common, &report, report_text);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_binary_units_with_the_exact_count() {
        assert_eq!(bytes_text(12), "12 bytes");
        assert_eq!(bytes_text(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(bytes_text(3 << 30), "3.0 GiB (3221225472 bytes)");
    }
}
