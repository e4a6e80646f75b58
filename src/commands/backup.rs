//! `airlock backup` and `airlock restore`: run on the server's host, against its data directory
//! (no server connection). The work is `airlock_server::backup`; this file parses, prints and
//! chooses the exit status: 0 done, 1 refused or a backup that fails verification, 2 an I/O or
//! database failure.

use std::path::{Path, PathBuf};

use airlock_server::backup::{
    self, BackupError, BackupManifest, BlobSource, PostgresBackup, VerifiedPostgresBackup,
};
use airlock_store::S3Location;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use crate::commands::common::OutputFormat;
use crate::commands::outcome;

/// `airlock backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup directory to write (must not exist, or be empty), or with --verify to check.
    #[arg(value_name = "DEST", required_unless_present = "pg_dump")]
    dest: Option<PathBuf>,
    /// The server's data directory [default: the configuration's data_dir, else ./airlock-data].
    #[arg(long, value_name = "DIR", conflicts_with = "verify")]
    data_dir: Option<PathBuf>,
    /// The server's configuration file, to find its data_dir (as `airlock serve --config`);
    /// with --pg-dump, for its [s3] settings.
    #[arg(
        long,
        env = "AIRLOCK_CONFIG",
        value_name = "FILE",
        conflicts_with = "data_dir"
    )]
    config: Option<PathBuf>,
    /// Check the backup DEST instead of writing one: manifest, every file's SHA-256, the
    /// database's integrity, every referenced blob's digest, and the audit log. Exits 1 naming
    /// the first problem.
    #[arg(long)]
    verify: bool,
    /// With --verify: a checkpoint saved earlier (`airlock audit checkpoint > FILE`) that the
    /// backup's audit log must extend.
    #[arg(long, value_name = "FILE", requires = "verify")]
    trusted_checkpoint: Option<PathBuf>,
    /// With --verify: check a PostgreSQL installation's backup, this `pg_dump --format=custom`
    /// file, by restoring it into --scratch-database (docs/operations.md, "Backing up a
    /// PostgreSQL installation").
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["verify", "scratch_database"],
        conflicts_with = "dest"
    )]
    pg_dump: Option<PathBuf>,
    /// With --pg-dump: an empty PostgreSQL database to restore the dump into
    /// (`postgres://USER:PASSWORD@HOST/DATABASE`); the restored copy is left there.
    #[arg(long, value_name = "URL", requires = "pg_dump")]
    scratch_database: Option<String>,
    /// With --pg-dump: the bucket holding the backup's blobs (`s3://BUCKET/PREFIX`), read with
    /// the configuration's [s3] settings and the AWS_* credentials.
    #[arg(long, value_name = "S3_URL", requires = "pg_dump")]
    blobs: Option<String>,
    /// With --pg-dump: a directory holding the backup's blobs as a local blob store does
    /// (`DIR/blobs/sha256/<xx>/<hex>`).
    #[arg(
        long,
        value_name = "DIR",
        requires = "pg_dump",
        conflicts_with = "blobs"
    )]
    blob_dir: Option<PathBuf>,
    /// With --pg-dump: the key-encryption key file, to check that the sealed server keys open.
    #[arg(long, value_name = "FILE", requires = "pg_dump")]
    key_encryption_key_file: Option<PathBuf>,
}

/// `airlock restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory (written by `airlock backup`).
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// The data directory to restore into: must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Runs `airlock backup` (or `--verify`); returns the exit status.
pub async fn backup(args: BackupArgs, output: OutputFormat) -> Result<u8> {
    // clap skips a `requires` whose target conflicts with an argument given (DEST here).
    if args.pg_dump.is_none()
        && (args.scratch_database.is_some()
            || args.blobs.is_some()
            || args.blob_dir.is_some()
            || args.key_encryption_key_file.is_some())
    {
        eprintln!(
            "airlock: --scratch-database, --blobs, --blob-dir and --key-encryption-key-file are for --verify --pg-dump (a PostgreSQL backup)"
        );
        return Ok(outcome::pending(outcome::USAGE_OR_CONNECTION));
    }
    if args.verify {
        let trusted = args
            .trusted_checkpoint
            .as_deref()
            .map(|path| {
                std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the trusted checkpoint {}", path.display())
                })
            })
            .transpose()?;
        if let Some(dump) = args.pg_dump.clone() {
            return verify_postgres(args, dump, trusted, output).await;
        }
        let Some(dest) = args.dest.as_deref() else {
            bail!("name the backup directory to verify (DEST), or a dump with --pg-dump");
        };
        return Ok(match backup::verify(dest, trusted.as_deref()).await {
            Ok(verified) => {
                print_verified(&verified, output);
                0
            }
            Err(err) => failed(&err, output),
        });
    }
    if let Some(refused) = distributed_refusal(args.config.as_deref(), args.data_dir.is_some())? {
        return Ok(failed(&refused, output));
    }
    let data_dir = data_dir(args.data_dir, args.config.as_deref())?;
    let Some(dest) = args.dest.as_deref() else {
        bail!("name the backup directory to write (DEST)");
    };
    Ok(match backup::create(&data_dir, dest).await {
        Ok(summary) => {
            match output {
                OutputFormat::Text => {
                    println!("backup written to {}", summary.path.display());
                    print_contents(&summary.manifest);
                    if !summary.dropped_blobs.is_empty() {
                        println!(
                            "  left out: {} unreferenced blobs garbage collection deleted while the backup ran",
                            summary.dropped_blobs.len()
                        );
                    }
                }
                OutputFormat::Json => {
                    let dropped: Vec<String> = summary
                        .dropped_blobs
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    println!(
                        "{}",
                        json!({"backup": summary.path, "data_dir": data_dir,
                               "blob_bytes": summary.blob_bytes(), "manifest": summary.manifest,
                               "dropped_blobs": dropped})
                    )
                }
            }
            0
        }
        Err(err) => failed(&err, output),
    })
}

/// `airlock backup --verify --pg-dump`: checks a PostgreSQL installation's backup.
async fn verify_postgres(
    args: BackupArgs,
    dump: PathBuf,
    trusted_checkpoint: Option<String>,
    output: OutputFormat,
) -> Result<u8> {
    let Some(scratch_database) = args.scratch_database else {
        bail!("--pg-dump needs --scratch-database URL");
    };
    if !(scratch_database.starts_with("postgres://")
        || scratch_database.starts_with("postgresql://"))
    {
        eprintln!(
            "airlock: --scratch-database must be a PostgreSQL URL (postgres://USER:PASSWORD@HOST/DATABASE), got {}",
            airlock_store::redact_url(&scratch_database)
        );
        return Ok(outcome::pending(outcome::USAGE_OR_CONNECTION));
    }
    let blobs = match (args.blobs.as_deref(), args.blob_dir) {
        (Some(url), _) => match url.parse::<S3Location>() {
            Ok(location) => {
                let config =
                    airlock_server::Config::load(args.config.as_deref(), std::env::vars())?;
                Some(BlobSource::S3 {
                    location,
                    options: config.s3.options(),
                })
            }
            Err(err) => {
                eprintln!("airlock: --blobs: {err}");
                return Ok(outcome::pending(outcome::USAGE_OR_CONNECTION));
            }
        },
        (None, Some(dir)) => Some(BlobSource::Directory(dir)),
        (None, None) => None,
    };
    let request = PostgresBackup {
        dump,
        scratch_database,
        blobs,
        key_encryption_key_file: args.key_encryption_key_file,
        trusted_checkpoint,
    };
    Ok(match backup::verify_postgres(&request).await {
        Ok(verified) => {
            print_verified_postgres(&verified, output);
            0
        }
        Err(err) => failed(&err, output),
    })
}

fn print_verified_postgres(verified: &VerifiedPostgresBackup, output: OutputFormat) {
    match output {
        OutputFormat::Text => {
            println!("OK: the dump {} verifies", verified.dump.display());
            println!(
                "  schema: migration {}, {} tables restored into {}",
                verified.schema_version, verified.tables, verified.scratch_database
            );
            println!(
                "  audit log: {} entries recomputed ({} appended), {} checkpoints match (log key {})",
                verified.audit.size,
                verified.audit_appended,
                verified.audit.checkpoints_checked,
                verified.log_key
            );
            if let Some(size) = verified.trusted_size {
                println!("  extends the trusted checkpoint of size {size}");
            }
            match &verified.blobs {
                Some(blobs) => println!(
                    "  blobs: {} ({} bytes) in {}, each hashed to its digest",
                    blobs.count, blobs.bytes, blobs.location
                ),
                None => println!("  blobs: not checked (pass --blobs or --blob-dir)"),
            }
            match verified.keys_opened {
                Some(keys) => println!(
                    "  server keys: {keys} open with the key-encryption key; the log key matches"
                ),
                None => println!("  server keys: not checked (pass --key-encryption-key-file)"),
            }
            println!(
                "  the restored copy is left in {}: drop its tables (or the database) when done",
                verified.scratch_database
            );
        }
        OutputFormat::Json => println!(
            "{}",
            json!({"ok": true, "dump": verified.dump,
                   "scratch_database": verified.scratch_database,
                   "schema_version": verified.schema_version, "tables": verified.tables,
                   "audit": {"size": verified.audit.size, "appended": verified.audit_appended,
                             "checkpoints_checked": verified.audit.checkpoints_checked,
                             "log_key": verified.log_key,
                             "trusted_size": verified.trusted_size},
                   "blobs": verified.blobs.as_ref().map(|b| json!({"location": b.location,
                             "count": b.count, "bytes": b.bytes})),
                   "server_keys_opened": verified.keys_opened,
                   "restored_copy_left": true})
        ),
    }
}

/// Runs `airlock restore`; returns the exit status.
pub async fn restore(args: RestoreArgs, output: OutputFormat) -> Result<u8> {
    if let Some(refused) = distributed_refusal(None, true)? {
        return Ok(failed(&refused, output));
    }
    Ok(match backup::restore(&args.src, &args.data_dir).await {
        Ok(summary) => {
            match output {
                OutputFormat::Text => {
                    println!(
                        "restored {} into {} (verified first)",
                        summary.backup.path.display(),
                        summary.data_dir.display()
                    );
                    print_contents(&summary.backup.manifest);
                    println!(
                        "start it with: airlock serve --data-dir {}",
                        summary.data_dir.display()
                    );
                }
                OutputFormat::Json => println!(
                    "{}",
                    json!({"restored": summary.backup.path, "data_dir": summary.data_dir,
                           "manifest": summary.backup.manifest})
                ),
            }
            0
        }
        Err(err) => failed(&err, output),
    })
}

/// The refusal to back up or restore when the server's metadata is in PostgreSQL or its blobs in
/// S3: `database_url` and `blob_store` from the configuration (file and environment) or, with an
/// explicit data directory, from `AIRLOCK_DATABASE_URL` and `AIRLOCK_BLOB_STORE`.
fn distributed_refusal(config: Option<&Path>, explicit_dir: bool) -> Result<Option<BackupError>> {
    let setting = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let (url, blob_store) = if explicit_dir {
        (
            setting("AIRLOCK_DATABASE_URL"),
            setting("AIRLOCK_BLOB_STORE"),
        )
    } else {
        let config = airlock_server::Config::load(config, std::env::vars())?;
        (
            config.database_url,
            config.blob_store.map(|location| location.to_string()),
        )
    };
    if let Some(url) = url {
        return Ok(Some(BackupError::PostgresMetadata {
            url: airlock_store::redact_url(&url),
        }));
    }
    Ok(blob_store.map(|location| BackupError::RemoteBlobs { location }))
}

/// The data directory: `--data-dir`, else the configuration's (file and environment, as
/// `airlock serve` reads them).
fn data_dir(explicit: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir),
        None => Ok(airlock_server::Config::load(config, std::env::vars())?.data_dir),
    }
}

fn print_contents(manifest: &BackupManifest) {
    let bytes: u64 = manifest.blobs.iter().map(|blob| blob.size).sum();
    let files: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    println!("  files: {}", files.join(", "));
    println!("  blobs: {} ({bytes} bytes)", manifest.blobs.len());
    println!(
        "  audit log: {} entries, signed up to {}",
        manifest.audit.entries, manifest.audit.signed
    );
}

fn print_verified(verified: &backup::VerifiedBackup, output: OutputFormat) {
    match output {
        OutputFormat::Text => {
            println!("OK: the backup {} verifies", verified.path.display());
            print_contents(&verified.manifest);
            println!(
                "  verified: {} audit entries recomputed, {} checkpoints match (log key {})",
                verified.audit.size, verified.audit.checkpoints_checked, verified.verifier_key
            );
            if let Some(size) = verified.trusted_size {
                println!("  extends the trusted checkpoint of size {size}");
            }
        }
        OutputFormat::Json => println!(
            "{}",
            json!({"ok": true, "backup": verified.path, "manifest": verified.manifest,
                   "audit": {"size": verified.audit.size,
                             "checkpoints_checked": verified.audit.checkpoints_checked,
                             "log_key": verified.verifier_key,
                             "trusted_size": verified.trusted_size}})
        ),
    }
}

/// Reports `err`: exit 1 for a refusal or a backup that fails verification, 2 for I/O.
fn failed(err: &BackupError, output: OutputFormat) -> u8 {
    let status = outcome::pending(if err.is_refusal() {
        1
    } else {
        outcome::USAGE_OR_CONNECTION
    });
    let code = match err {
        BackupError::Invalid { .. } => "BACKUP_INVALID",
        BackupError::Interrupted { .. } => "BACKUP_INCOMPLETE",
        BackupError::File { .. } | BackupError::Store(_) | BackupError::Worker(_) => "IO_ERROR",
        BackupError::PgRestoreMissing | BackupError::Kek(_) => "SETUP_ERROR",
        _ => "REFUSED",
    };
    match output {
        OutputFormat::Text => eprintln!("airlock: {err}"),
        OutputFormat::Json => {
            eprintln!("airlock: {err}");
            println!(
                "{}",
                json!({"ok": false, "error": {"code": code, "message": err.to_string(), "remediation": ""}})
            );
        }
    }
    status
}
