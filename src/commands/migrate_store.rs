//! `airlock migrate-store`: run on the server's host against a stopped embedded installation's
//! data directory (no server connection). The work is `airlock_server::migrate_store`; this file
//! parses, prints and chooses the exit status: 0 moved and checked, 1 refused or a failed check,
//! 2 usage, I/O or connection failure.

use std::path::PathBuf;

use airlock_server::migrate_store::{self, MigrateRequest, MigrateStoreError, MigrateSummary};
use airlock_store::S3Location;
use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::commands::common::OutputFormat;
use crate::commands::outcome;

/// `airlock migrate-store`.
#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// The stopped installation's data directory (its metadata.db, blobs/ and keys).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The PostgreSQL database to fill: `postgres://USER:PASSWORD@HOST/DATABASE`. It must exist
    /// and hold no data.
    #[arg(
        long,
        value_name = "URL",
        env = "AIRLOCK_MIGRATE_TO",
        hide_env_values = true
    )]
    to: String,
    /// Also move the blobs into this bucket (`s3://BUCKET/PREFIX`), with the [s3] settings of the
    /// configuration file and the AWS_* credentials, as `airlock serve` reads them.
    #[arg(long, value_name = "S3_URL")]
    blobs: Option<String>,
    /// The configuration file whose [s3] settings apply (as `airlock serve --config`).
    #[arg(long, env = "AIRLOCK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs `airlock migrate-store`; returns the exit status.
pub async fn migrate_store(args: MigrateStoreArgs, output: OutputFormat) -> Result<u8> {
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        eprintln!(
            "airlock: --to must be a PostgreSQL URL (postgres://USER:PASSWORD@HOST/DATABASE), got {}",
            airlock_store::redact_url(&args.to)
        );
        return Ok(outcome::pending(outcome::USAGE_OR_CONNECTION));
    }
    let blob_store = match args.blobs.as_deref().map(str::parse::<S3Location>) {
        None => None,
        Some(Ok(location)) => Some(location),
        Some(Err(err)) => {
            eprintln!("airlock: --blobs: {err}");
            return Ok(outcome::pending(outcome::USAGE_OR_CONNECTION));
        }
    };
    let config = airlock_server::Config::load(args.config.as_deref(), std::env::vars())?;
    let request = MigrateRequest {
        data_dir: args.data_dir,
        database_url: args.to,
        blob_store,
        s3: config.s3.options(),
    };
    Ok(match migrate_store::migrate(&request).await {
        Ok(summary) => {
            print_summary(&request, &summary, output);
            0
        }
        Err(err) => failed(&err, output),
    })
}

fn print_summary(request: &MigrateRequest, summary: &MigrateSummary, output: OutputFormat) {
    let target = airlock_store::redact_url(&request.database_url);
    match output {
        OutputFormat::Text => {
            println!("moved {} into {target}", request.data_dir.display());
            println!(
                "  tables: {} ({} rows, counts equal on both sides)",
                summary.tables.len(),
                summary.rows()
            );
            match &request.blob_store {
                Some(location) => {
                    println!(
                        "  blobs: {} into {location} ({} copied, {} already there, {} replaced, {} bytes, each verified)",
                        summary.blobs_copied
                            + summary.blobs_present
                            + summary.blobs_replaced.len() as u64,
                        summary.blobs_copied,
                        summary.blobs_present,
                        summary.blobs_replaced.len(),
                        summary.blob_bytes
                    );
                    for digest in &summary.blobs_replaced {
                        println!("  replaced {digest}: the bucket held other bytes under its name");
                    }
                }
                None => println!("  blobs: left in {}/blobs", request.data_dir.display()),
            }
            match summary.checkpoint_size {
                Some(size) => println!(
                    "  audit log: {} entries, verified against the checkpoint of size {size}",
                    summary.audit_entries
                ),
                None => println!(
                    "  audit log: {} entries (no checkpoint signed yet)",
                    summary.audit_entries
                ),
            }
            println!("  tags: {} resolve to the same digests", summary.tags);
            println!("next: start airlock serve with the SAME data directory and:");
            println!("  database_url = \"{target}\"");
            if let Some(location) = &request.blob_store {
                println!("  blob_store = \"{location}\"");
            }
            println!(
                "  airlock serve --data-dir {} (the keys in it move into the database at the first start)",
                request.data_dir.display()
            );
        }
        OutputFormat::Json => {
            let tables: Vec<_> = summary
                .tables
                .iter()
                .map(|t| json!({"table": t.table, "rows": t.target_rows}))
                .collect();
            println!(
                "{}",
                json!({"ok": true, "data_dir": request.data_dir, "database": target,
                       "blob_store": request.blob_store.as_ref().map(ToString::to_string),
                       "tables": tables, "rows": summary.rows(),
                       "blobs": {"copied": summary.blobs_copied, "present": summary.blobs_present,
                                 "replaced": summary.blobs_replaced.iter().map(ToString::to_string).collect::<Vec<_>>(),
                                 "bytes": summary.blob_bytes},
                       "audit": {"entries": summary.audit_entries,
                                 "checkpoint_size": summary.checkpoint_size},
                       "tags": summary.tags})
            );
        }
    }
}

/// Reports `err`: exit 1 for a refusal or a failed check, 2 for I/O or a connection failure.
fn failed(err: &MigrateStoreError, output: OutputFormat) -> u8 {
    let refusal = err.is_refusal();
    let status = outcome::pending(if refusal {
        1
    } else {
        outcome::USAGE_OR_CONNECTION
    });
    eprintln!("airlock: {err}");
    if output == OutputFormat::Json {
        let code = match err {
            MigrateStoreError::Check(_) => "CHECK_FAILED",
            _ if refusal => "REFUSED",
            _ => "IO_ERROR",
        };
        println!(
            "{}",
            json!({"ok": false, "error": {"code": code, "message": err.to_string(), "remediation": ""}})
        );
    }
    status
}
