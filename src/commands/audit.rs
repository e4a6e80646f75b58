//! `airlock audit ...`: read, export, prove and verify the audit log, against a server (over its
//! tlog-tiles and JSON endpoints) or offline from a data directory.

use std::path::{Path, PathBuf};

use crate::commands::common::{Common, OutputFormat};
use airlock_api::audit::EntryList;
use airlock_audit::{
    ConsistencyProof, CosignedCheckpoint, FULL_TILE_WIDTH, Hash, InclusionProof, LogReport,
    LogVerifier, TilePath, VerifiedCheckpoint, VerifyError, verify_checkpoint,
    verify_cosigned_checkpoint,
};
use airlock_store::Metadata;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Exit status for a check that ran and failed (a verification failure), as opposed to a usage
/// or connection error.
pub const CHECK_FAILED: u8 = 1;

/// The URL of `path` on the server `common` names.
fn url(common: &Common, path: &str) -> String {
    format!(
        "{}{}",
        crate::client::normalize_server(&common.server),
        path
    )
}

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the log from its entries and check it against its signed checkpoint.
    ///
    /// Downloads every entry (or reads them from --data-dir), recomputes every leaf hash and the
    /// Merkle tree, and checks the signed checkpoint (and every earlier checkpoint). With
    /// --trusted-checkpoint, also checks that the log still extends that checkpoint (no fork, no
    /// rewrite). Exits 1 and names the first bad entry if the log was altered.
    Verify(VerifyArgs),
    /// Print the newest entries; --follow keeps printing new ones.
    Tail(TailArgs),
    /// Print entries as JSON lines, e.g. `airlock audit export --since 24h > events.jsonl`.
    Export(ExportArgs),
    /// Print an inclusion proof for entry INDEX that a third party can check (RFC 6962).
    Prove(ProveArgs),
    /// Print the newest signed checkpoint (save it to pass as --trusted-checkpoint later).
    Checkpoint(CheckpointArgs),
}

/// `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The server (`--server`, ignored with --data-dir) and output format.
    #[command(flatten)]
    common: Common,
    /// Verify offline from a data directory instead of a server (stop the server first, or accept
    /// that entries written meanwhile are not covered).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A checkpoint saved earlier (`airlock audit checkpoint > FILE`); the log must extend it.
    #[arg(long, value_name = "FILE")]
    trusted_checkpoint: Option<PathBuf>,
    /// The log's verifier key (`name+id+base64`), or a file holding it. Without it the key the
    /// server presents (or the data directory's own key) is used, with a warning.
    #[arg(long, value_name = "KEY")]
    log_key: Option<String>,
    /// Fail if any entry lies after the newest signed checkpoint. Such entries carry no signature
    /// yet (a running server signs within a second; against a server this waits up to 5 s for
    /// that), so anyone with access to the database could have written them.
    #[arg(long)]
    require_signed: bool,
    /// A witness's cosignature/v1 verifier key (`name+id+base64`), or a file holding it; repeat
    /// for several. The newest checkpoint must then carry valid cosignatures by
    /// --min-witnesses of them: a log rewritten or rolled back after a witnessed checkpoint
    /// cannot get its new history cosigned, so it fails here. Against a server this waits up to
    /// 10 s for the witnesses to cosign the newest checkpoint.
    #[arg(long = "witness", value_name = "KEY")]
    witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned the newest checkpoint (default: all).
    #[arg(long, value_name = "K", requires = "witnesses")]
    min_witnesses: Option<usize>,
}

/// What `audit verify --witness` requires of the newest checkpoint.
struct WitnessRequirement {
    /// The witnesses' verifier keys.
    keys: Vec<String>,
    /// How many of them must have cosigned.
    min: usize,
}

impl WitnessRequirement {
    /// The requirement the arguments state, if any.
    fn of(args: &VerifyArgs) -> Result<Option<WitnessRequirement>> {
        if args.witnesses.is_empty() {
            return Ok(None);
        }
        let keys = args
            .witnesses
            .iter()
            .map(|value| {
                let key = read_key_arg(value)?;
                airlock_audit::witness_key_name(&key)
                    .map_err(|e| anyhow!("--witness {value}: {e}"))?;
                Ok(key)
            })
            .collect::<Result<Vec<_>>>()?;
        let min = args.min_witnesses.unwrap_or(keys.len());
        if min == 0 || min > keys.len() {
            bail!(
                "--min-witnesses {min}: give a number from 1 to the {} --witness keys given",
                keys.len()
            );
        }
        Ok(Some(WitnessRequirement { keys, min }))
    }

    /// The cosigned checkpoint, if `note` carries enough valid cosignatures; `Err` holds the
    /// checkpoint as far as it verified (or the failure, if a cosignature is invalid).
    fn check(
        &self,
        note: &str,
        log_key: &str,
    ) -> std::result::Result<CosignedCheckpoint, WitnessShortfall> {
        match verify_cosigned_checkpoint(note, log_key, &self.keys) {
            Ok(cosigned) if cosigned.cosignatures.len() >= self.min => Ok(cosigned),
            Ok(cosigned) => Err(WitnessShortfall::TooFew(cosigned)),
            Err(err) => Err(WitnessShortfall::Invalid(err.to_string())),
        }
    }

    /// The failure for a newest checkpoint without enough cosignatures, with what the log says
    /// about each missing witness (`statuses`, when it could be read).
    fn too_few(
        &self,
        cosigned: &CosignedCheckpoint,
        statuses: &[airlock_api::audit::WitnessStatus],
    ) -> String {
        let missing: Vec<String> = self
            .keys
            .iter()
            .filter_map(|key| airlock_audit::witness_key_name(key).ok())
            .filter(|name| !cosigned.cosignatures.iter().any(|c| &c.witness == name))
            .collect();
        let mut message = format!(
            "the newest checkpoint (size {}) carries {} of the {} witness cosignatures required (missing: {}): no witness vouches that it extends the history it cosigned before",
            cosigned.checkpoint.size,
            cosigned.cosignatures.len(),
            self.min,
            missing.join(", ")
        );
        for name in &missing {
            if let Some(status) = statuses.iter().find(|status| &status.name == name) {
                message.push_str(&format!(
                    "; the log says witness {name} last cosigned size {}",
                    status.cosigned_size
                ));
                if let Some(error) = &status.last_error {
                    message.push_str(&format!(" and since answered: {error}"));
                }
            }
        }
        message.push_str(". If a witness refused the log's newer checkpoints as inconsistent, the log was rewritten or rolled back after the checkpoint it cosigned: compare with the witness's own copy (GET <witness>/<sha256 of the origin>/checkpoint) and restore from a backup; if a witness is merely down, verify again once it answers");
        message
    }
}

/// Why the newest checkpoint does not meet the witness requirement.
enum WitnessShortfall {
    /// Too few valid cosignatures (the checkpoint itself verified).
    TooFew(CosignedCheckpoint),
    /// The log signature or a trusted witness's cosignature does not verify.
    Invalid(String),
}

/// The success line for the witnesses that cosigned `cosigned`.
fn witnessed_line(cosigned: &CosignedCheckpoint) -> String {
    let names: Vec<&str> = cosigned
        .cosignatures
        .iter()
        .map(|c| c.witness.as_str())
        .collect();
    format!(
        "ok: the checkpoint of size {} is cosigned by {} witness(es): {}",
        cosigned.checkpoint.size,
        names.len(),
        names.join(", ")
    )
}

/// `audit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    server: Common,
    /// How many of the newest (matching) entries to show (0 to 10000).
    #[arg(short = 'n', long, default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    lines: u64,
    /// Keep polling for new entries.
    #[arg(long)]
    follow: bool,
    /// Only entries whose type starts with this, e.g. `manifest` or `push.refused`.
    #[arg(long)]
    filter: Option<String>,
}

/// `audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    server: Common,
    /// Only entries at or after this time: RFC 3339 (`2026-11-25T00:00:00Z`) or an age (`30m`,
    /// `24h`, `7d`).
    #[arg(long)]
    since: Option<String>,
    /// Only entries whose type starts with this.
    #[arg(long)]
    filter: Option<String>,
}

/// `audit prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    #[command(flatten)]
    server: Common,
    /// The entry index.
    index: u64,
}

/// `audit checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    server: Common,
}

/// Runs an audit command; returns the process exit status.
pub async fn run(command: AuditCommand) -> Result<u8> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Tail(args) => tail(args).await.map(|()| 0),
        AuditCommand::Export(args) => export(args).await.map(|()| 0),
        AuditCommand::Prove(args) => prove(args).await,
        AuditCommand::Checkpoint(args) => {
            let note = get_text(
                &client_for(&args.server.server).await?,
                &url(&args.server, "/log/checkpoint"),
            )
            .await?;
            match args.server.output {
                OutputFormat::Text => print!("{note}"),
                OutputFormat::Json => println!("{}", json!({ "checkpoint": note })),
            }
            Ok(0)
        }
    }
}

async fn client_for(server: &str) -> Result<reqwest::Client> {
    crate::client::ApiClient::http_for(server).await
}

async fn get(http: &reqwest::Client, url: &str) -> Result<reqwest::Response> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| crate::client::connection_error(url, e))?;
    if !response.status().is_success() {
        // The server's error (its code, message and remediation) and the exit status every
        // command gives it: 1 for a refusal or something missing, 2 otherwise.
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        return Err(crate::client::ApiError::from_answer(status, &body).into());
    }
    Ok(response)
}

async fn get_text(http: &reqwest::Client, url: &str) -> Result<String> {
    Ok(get(http, url).await?.text().await?)
}

/// GET `url` as the API type `T`.
async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T> {
    get(http, url).await?.json().await.with_context(|| {
        format!(
            "the server's answer to {url} is not what this client expects: \
             use an airlock CLI of the server's version"
        )
    })
}

/// An inclusion proof as the API sends it, as the verifier reads it.
fn inclusion_proof(proof: airlock_api::audit::InclusionProof) -> Result<InclusionProof> {
    Ok(InclusionProof {
        index: proof.index,
        tree_size: proof.tree_size,
        leaf_hash: Hash::from_hex(&proof.leaf_hash)?,
        hashes: hashes(&proof.hashes)?,
    })
}

/// A consistency proof as the API sends it, as the verifier reads it.
fn consistency_proof(proof: airlock_api::audit::ConsistencyProof) -> Result<ConsistencyProof> {
    Ok(ConsistencyProof {
        old_size: proof.old_size,
        new_size: proof.new_size,
        hashes: hashes(&proof.hashes)?,
    })
}

fn hashes(hex: &[String]) -> Result<Vec<Hash>> {
    hex.iter()
        .map(|h| Hash::from_hex(h).map_err(|e| anyhow!("a proof hash {h:?} is not a hash: {e}")))
        .collect()
}

async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    Ok(get(http, url).await?.bytes().await?.to_vec())
}

/// A verifier key given inline or as a file.
pub(crate) fn read_key_arg(value: &str) -> Result<String> {
    let path = Path::new(value);
    if path.is_file() {
        Ok(std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_string())
    } else {
        Ok(value.trim().to_string())
    }
}

fn describe(error: &VerifyError) -> String {
    match error {
        VerifyError::MissingEntry { index } => {
            format!("entry {index} is missing: the log was altered (an entry was deleted)")
        }
        VerifyError::EntryAltered { index } => format!(
            "entry {index} was altered: its content does not match the hash the log committed to"
        ),
        VerifyError::RootMismatch {
            size,
            last_good_size,
        } => format!(
            "the log does not match its signed checkpoint of size {size}: entries {last_good_size}..{size} were rewritten (the first bad entry is at or after {last_good_size})"
        ),
        VerifyError::Truncated {
            have,
            checkpoint_size,
        } => format!(
            "the log was truncated: {have} entries, but a signed checkpoint covers {checkpoint_size}"
        ),
        other => other.to_string(),
    }
}

fn report_result(
    result: std::result::Result<LogReport, VerifyError>,
    checkpoint: &VerifiedCheckpoint,
    trusted: Option<&VerifiedCheckpoint>,
    witnessed: Option<&CosignedCheckpoint>,
    output: OutputFormat,
) -> u8 {
    match (result, output) {
        (Ok(report), OutputFormat::Text) => {
            println!(
                "ok: {} entries verified; root {} matches the checkpoint signed by {} ({} checkpoints checked)",
                report.size, report.root, checkpoint.origin, report.checkpoints_checked
            );
            if let Some(trusted) = trusted {
                println!(
                    "ok: the log extends the trusted checkpoint of size {} (consistency proof verified)",
                    trusted.size
                );
            }
            if let Some(witnessed) = witnessed {
                println!("{}", witnessed_line(witnessed));
            }
            0
        }
        (Ok(report), OutputFormat::Json) => {
            println!(
                "{}",
                json!({"ok": true, "size": report.size, "root": report.root.to_hex(), "origin": checkpoint.origin,
                       "checkpoints_checked": report.checkpoints_checked, "trusted_size": trusted.map(|t| t.size),
                       "witnesses": witnessed.map(|w| w.cosignatures.iter().map(|c| c.witness.clone()).collect::<Vec<_>>())})
            );
            0
        }
        (Err(error), output) => report_failure(&describe(&error), output),
    }
}

/// The failure (or note) for entries past the newest signed checkpoint.
fn unsigned_entries(appended: u64, signed: u64) -> String {
    format!(
        "{} entries after the newest signed checkpoint (size {signed}) are covered by no signature: a running airlock signs new entries within a second, so these were written just before it stopped, while it could not sign, or by someone editing the database",
        appended - signed
    )
}

/// Prints a failed check in the requested format; returns [`CHECK_FAILED`].
fn report_failure(message: &str, output: OutputFormat) -> u8 {
    crate::commands::outcome::pending(CHECK_FAILED);
    match output {
        OutputFormat::Text => eprintln!("FAILED: {message}"),
        OutputFormat::Json => println!("{}", json!({"ok": false, "error": message})),
    }
    CHECK_FAILED
}

/// Waits up to 10 s for the server's newest checkpoint to carry the cosignatures `requirement`
/// asks for (witnesses are asked within a second of each checkpoint); returns the cosigned
/// checkpoint, or the failure naming what is missing and what the log says about it.
async fn wait_until_witnessed(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    requirement: &WitnessRequirement,
    mut note: String,
) -> Result<std::result::Result<CosignedCheckpoint, String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match requirement.check(&note, key) {
            Ok(cosigned) => return Ok(Ok(cosigned)),
            Err(WitnessShortfall::Invalid(err)) => {
                return Ok(Err(format!(
                    "the server's checkpoint fails its witness check: {err}"
                )));
            }
            Err(WitnessShortfall::TooFew(cosigned)) if std::time::Instant::now() >= deadline => {
                let statuses: Vec<airlock_api::audit::WitnessStatus> =
                    get_json::<airlock_api::audit::WitnessStatusList>(
                        http,
                        &format!("{base}/api/v1/audit/witnesses"),
                    )
                    .await
                    .map(|list| list.witnesses)
                    .unwrap_or_default();
                return Ok(Err(requirement.too_few(&cosigned, &statuses)));
            }
            Err(WitnessShortfall::TooFew(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                note = get_text(http, &format!("{base}/log/checkpoint")).await?;
            }
        }
    }
}

/// What the database says about the log's witnesses, for a failure message (empty if unread).
async fn stored_witness_statuses(metadata: &Metadata) -> Vec<airlock_api::audit::WitnessStatus> {
    metadata
        .witness_statuses()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|row| airlock_api::audit::WitnessStatus {
            name: airlock_audit::witness_key_name(&row.witness).unwrap_or_default(),
            key: row.witness,
            cosigned_size: row.cosigned_size,
            last_error: row.last_error,
            updated_at: None,
        })
        .collect()
}

/// Waits up to 5 s for the server's newest checkpoint to cover the entries it held when asked;
/// returns the failure if it does not.
async fn wait_until_signed(http: &reqwest::Client, base: &str) -> Result<Option<String>> {
    let url = format!("{base}/api/v1/audit/checkpoint");
    let first: airlock_api::audit::Checkpoint = get_json(http, &url).await?;
    let appended = first.entries;
    let mut signed = first.size;
    for _ in 0..50 {
        if signed >= appended {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        signed = get_json::<airlock_api::audit::Checkpoint>(http, &url)
            .await?
            .size;
    }
    Ok(Some(unsigned_entries(appended, signed)))
}

fn verify_trusted(args: &VerifyArgs, key: &str) -> Result<Option<VerifiedCheckpoint>> {
    args.trusted_checkpoint
        .as_ref()
        .map(|path| {
            let note = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            verify_checkpoint(&note, key).map_err(|e| {
                anyhow!(
                    "the trusted checkpoint {} is not signed by the log key: {e}",
                    path.display()
                )
            })
        })
        .transpose()
}

async fn verify(args: VerifyArgs) -> Result<u8> {
    match &args.data_dir {
        Some(dir) => verify_offline(&args, dir).await,
        None => verify_server(&args).await,
    }
}

async fn verify_server(args: &VerifyArgs) -> Result<u8> {
    let http = client_for(&args.common.server).await?;
    let base = crate::client::normalize_server(&args.common.server);
    let key = match &args.log_key {
        Some(value) => read_key_arg(value)?,
        None => {
            eprintln!("warning: trusting the log key the server presents; pin it with --log-key");
            get_text(&http, &format!("{base}/log/key"))
                .await?
                .trim()
                .to_string()
        }
    };
    if args.require_signed
        && let Some(unsigned) = wait_until_signed(&http, &base).await?
    {
        return Ok(report_failure(&unsigned, args.common.output));
    }
    let note = get_text(&http, &format!("{base}/log/checkpoint")).await?;
    let checkpoint = match verify_checkpoint(&note, &key) {
        Ok(checkpoint) => checkpoint,
        Err(err) => {
            return Ok(report_failure(
                &format!("the server's checkpoint is not signed by the log key: {err}"),
                args.common.output,
            ));
        }
    };
    let (checkpoint, witnessed) = match WitnessRequirement::of(args)? {
        None => (checkpoint, None),
        Some(requirement) => {
            match wait_until_witnessed(&http, &base, &key, &requirement, note).await? {
                Ok(cosigned) => (cosigned.checkpoint.clone(), Some(cosigned)),
                Err(failure) => return Ok(report_failure(&failure, args.common.output)),
            }
        }
    };
    let trusted = verify_trusted(args, &key)?;
    let mut checkpoints = vec![checkpoint.clone()];
    let mut after = 0u64;
    loop {
        let page: airlock_api::audit::CheckpointList = get_json(
            &http,
            &format!("{base}/api/v1/audit/checkpoints?after={after}"),
        )
        .await?;
        if page.checkpoints.is_empty() {
            break;
        }
        for item in &page.checkpoints {
            let older = verify_checkpoint(&item.note, &key)
                .map_err(|e| anyhow!("a stored checkpoint is not signed by the log key: {e}"))?;
            after = older.size;
            if older.size <= checkpoint.size {
                checkpoints.push(older);
            }
        }
    }
    if let Some(trusted) = &trusted {
        if trusted.size > checkpoint.size {
            return Ok(report_failure(
                &format!(
                    "the server's log ({} entries) is shorter than the trusted checkpoint ({} entries): it was truncated or forked",
                    checkpoint.size, trusted.size
                ),
                args.common.output,
            ));
        }
        checkpoints.push(trusted.clone());
        if trusted.size > 0 {
            let proof = consistency_proof(
                get_json(
                    &http,
                    &format!(
                        "{base}/api/v1/audit/proof/consistency?from={}&to={}",
                        trusted.size, checkpoint.size
                    ),
                )
                .await?,
            )?;
            if let Err(err) = proof.verify(trusted, &checkpoint) {
                return Ok(report_failure(
                    &format!(
                        "the log is not consistent with the trusted checkpoint of size {} (forked or rewritten): {err}",
                        trusted.size
                    ),
                    args.common.output,
                ));
            }
        }
    }

    // Download entries and leaf hashes tile by tile (c2sp.org/tlog-tiles), verifying each tile
    // as it arrives: memory stays at one tile however long the log.
    let size = checkpoint.size;
    let report = |result| {
        report_result(
            result,
            &checkpoint,
            trusted.as_ref(),
            witnessed.as_ref(),
            args.common.output,
        )
    };
    let mut verifier = match LogVerifier::new(&checkpoints) {
        Ok(verifier) => verifier,
        Err(error) => return Ok(report(Err(error))),
    };
    let full = u64::from(FULL_TILE_WIDTH);
    for tile in 0..size.div_ceil(full) {
        let width = (size - tile * full).min(full) as u16;
        let bundle = get_bytes(
            &http,
            &format!(
                "{base}/log/{}",
                TilePath::Entries { index: tile, width }.to_path()
            ),
        )
        .await?;
        let hashes = get_bytes(
            &http,
            &format!(
                "{base}/log/{}",
                TilePath::Hashes {
                    level: 0,
                    index: tile,
                    width
                }
                .to_path()
            ),
        )
        .await?;
        let leaf_hashes = hashes
            .chunks(32)
            .map(|chunk| {
                <[u8; 32]>::try_from(chunk)
                    .map(Hash)
                    .map_err(|_| anyhow!("a hash tile has a partial hash"))
            })
            .collect::<Result<Vec<Hash>>>()?;
        for (offset, entry) in airlock_audit::parse_entry_bundle(&bundle)?
            .into_iter()
            .enumerate()
        {
            let stored = leaf_hashes.get(offset).copied();
            if let Err(error) = verifier.push_checked(tile * full + offset as u64, &entry, stored) {
                return Ok(report(Err(error)));
            }
        }
    }
    Ok(report(verifier.finish()))
}

async fn verify_offline(args: &VerifyArgs, dir: &Path) -> Result<u8> {
    // The metadata is in PostgreSQL when the server's AIRLOCK_DATABASE_URL says so; else the
    // embedded database in the data directory.
    let postgres = match std::env::var("AIRLOCK_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => None,
    };
    let metadata = match &postgres {
        Some(url) => Metadata::open_postgres(url).await.with_context(|| {
            format!(
                "cannot open the PostgreSQL database {} (AIRLOCK_DATABASE_URL)",
                airlock_store::redact_url(url)
            )
        })?,
        None => {
            let database = dir.join("metadata.db");
            if !database.exists() {
                bail!(
                    "{} does not exist: is {} an airlock data directory?",
                    database.display(),
                    dir.display()
                );
            }
            Metadata::open_sqlite(&database).await?
        }
    };
    let key = match &args.log_key {
        Some(value) => read_key_arg(value)?,
        // On PostgreSQL the log key lives in the database; its public half is stored in clear.
        None if postgres.is_some() => {
            // With the key-encryption key at hand the row's MAC is checked: a public key
            // swapped in the database is refused rather than trusted.
            let kek = match std::env::var_os("AIRLOCK_KEY_ENCRYPTION_KEY_FILE") {
                Some(path) if !path.is_empty() => Some(
                    airlock_server::server_keys::kek::read(Path::new(&path))
                        .context("AIRLOCK_KEY_ENCRYPTION_KEY_FILE")?,
                ),
                _ => None,
            };
            let Some(stored) = metadata
                .current_server_public_key(airlock_store::KeyPurpose::Log, kek.as_ref())
                .await?
            else {
                bail!("the database holds no log key; pass --log-key");
            };
            if kek.is_none() {
                eprintln!(
                    "warning: using the log key stored in the database, unauthenticated; pin the published key with --log-key (or set AIRLOCK_KEY_ENCRYPTION_KEY_FILE to check the stored key's MAC)"
                );
            } else {
                eprintln!(
                    "warning: using the log key stored in the database (its MAC checked); pin the published key with --log-key"
                );
            }
            stored
        }
        None => {
            let path = dir.join("log-key");
            let private = std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read the log key {}; pass --log-key", path.display())
            })?;
            eprintln!(
                "warning: using the data directory's own log key; pin the published key with --log-key"
            );
            airlock_audit::LogKey::from_private_text(&private)?
                .verifier_key()
                .to_string()
        }
    };
    let stored = metadata.checkpoints().await?;
    let mut checkpoints = Vec::with_capacity(stored.len());
    for stored in &stored {
        match verify_checkpoint(&stored.note, &key) {
            Ok(checkpoint) => checkpoints.push(checkpoint),
            Err(err) => {
                return Ok(report_failure(
                    &format!(
                        "the stored checkpoint of size {} is not signed by the log key: {err}",
                        stored.size
                    ),
                    args.common.output,
                ));
            }
        }
    }
    let Some(latest) = checkpoints.iter().max_by_key(|c| c.size).cloned() else {
        let appended = metadata.audit_entry_count().await?;
        metadata.close().await;
        return Ok(report_failure(
            &format!(
                "the database has no signed checkpoint ({appended} entries): airlock signs an empty checkpoint on its very first start, so the checkpoints were deleted or this is not a database airlock ran on. Do not start airlock on it (it would sign whatever entries are there); restore the database from a backup and verify it against a checkpoint saved earlier (--trusted-checkpoint)"
            ),
            args.common.output,
        ));
    };
    let witnessed = match WitnessRequirement::of(args)? {
        None => None,
        Some(requirement) => {
            let mut note = stored
                .iter()
                .find(|stored| stored.size == latest.size)
                .map(|stored| stored.note.clone())
                .unwrap_or_default();
            for line in metadata.cosignatures(latest.size).await? {
                note.push_str(&line);
            }
            match requirement.check(&note, &key) {
                Ok(cosigned) => Some(cosigned),
                Err(shortfall) => {
                    let statuses = stored_witness_statuses(&metadata).await;
                    metadata.close().await;
                    let message = match shortfall {
                        WitnessShortfall::TooFew(cosigned) => {
                            requirement.too_few(&cosigned, &statuses)
                        }
                        WitnessShortfall::Invalid(err) => {
                            format!("the newest checkpoint fails its witness check: {err}")
                        }
                    };
                    return Ok(report_failure(&message, args.common.output));
                }
            }
        }
    };
    let trusted = verify_trusted(args, &key)?;
    if let Some(trusted) = &trusted {
        checkpoints.push(trusted.clone());
    }
    // Entries past the newest checkpoint are not covered by a signature yet (the server signs
    // them within a second while it runs); say so rather than vouch for them.
    let appended = metadata.audit_entry_count().await?;
    if appended > latest.size {
        let unsigned = unsigned_entries(appended, latest.size);
        if args.require_signed {
            metadata.close().await;
            return Ok(report_failure(&unsigned, args.common.output));
        }
        eprintln!("note: {unsigned}; --require-signed makes this a failure");
    }
    // Streamed a page at a time: memory stays small however long the log.
    let result =
        match airlock_server::audit::verify_stored_entries(&metadata, &checkpoints, latest.size)
            .await
        {
            Ok(report) => Ok(report),
            Err(airlock_server::audit::StoredLogError::Verify(error)) => Err(error),
            Err(error) => {
                metadata.close().await;
                return Err(error.into());
            }
        };
    metadata.close().await;
    Ok(report_result(
        result,
        &latest,
        trusted.as_ref(),
        witnessed.as_ref(),
        args.common.output,
    ))
}

async fn print_entries(
    http: &reqwest::Client,
    server: &Common,
    mut start: u64,
    since_ms: Option<i64>,
    filter: Option<&str>,
    follow: bool,
) -> Result<()> {
    loop {
        let mut url = url(
            server,
            &format!("/api/v1/audit/entries?start={start}&limit=1000"),
        );
        if let Some(since) = since_ms {
            url.push_str(&format!("&since_ms={since}"));
        }
        if let Some(filter) = filter {
            url.push_str(&format!("&type={filter}"));
        }
        let page: EntryList = get_json(http, &url).await?;
        for entry in &page.entries {
            println!("{}", entry_line(entry));
        }
        match page.next {
            Some(next) => start = next,
            None if follow => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            None => return Ok(()),
        }
    }
}

async fn tail(args: TailArgs) -> Result<()> {
    let http = client_for(&args.server.server).await?;
    let mut url = url(
        &args.server,
        &format!("/api/v1/audit/entries?newest={}", args.lines),
    );
    if let Some(filter) = &args.filter {
        url.push_str(&format!("&type={filter}"));
    }
    let page: EntryList = get_json(&http, &url).await?;
    for entry in &page.entries {
        println!("{}", entry_line(entry));
    }
    if !args.follow {
        return Ok(());
    }
    let next = page.next.unwrap_or(0);
    print_entries(
        &http,
        &args.server,
        next,
        None,
        args.filter.as_deref(),
        true,
    )
    .await
}

/// One entry as `audit export|tail` print it: one line of JSON, keys in name order.
fn entry_line(entry: &airlock_api::audit::Entry) -> String {
    serde_json::to_value(entry)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Parses `--since`: RFC 3339, or an age such as `30m`, `24h`, `7d`.
fn parse_since(value: &str, now_ms: i64) -> Result<i64> {
    if let Ok(time) =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
    {
        return Ok((time.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let amount: i64 = number.parse().map_err(|_| {
        anyhow!(
            "--since {value:?}: use RFC 3339 (2026-11-25T00:00:00Z) or an age like 30m, 24h, 7d"
        )
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {value:?}: the age unit must be s, m, h or d"),
    };
    Ok(now_ms - amount * unit_ms)
}

async fn export(args: ExportArgs) -> Result<()> {
    let http = client_for(&args.server.server).await?;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, airlock_store::now_millis()))
        .transpose()?;
    print_entries(&http, &args.server, 0, since, args.filter.as_deref(), false).await
}

async fn prove(args: ProveArgs) -> Result<u8> {
    let http = client_for(&args.server.server).await?;
    let key = get_text(&http, &url(&args.server, "/log/key"))
        .await?
        .trim()
        .to_string();
    let note = get_text(&http, &url(&args.server, "/log/checkpoint")).await?;
    let checkpoint = verify_checkpoint(&note, &key)
        .map_err(|e| anyhow!("the server's checkpoint does not verify with its own key: {e}"))?;
    if args.index >= checkpoint.size {
        bail!(
            "entry {} is not covered by the newest checkpoint ({} entries) yet; retry in a second",
            args.index,
            checkpoint.size
        );
    }
    let proof = inclusion_proof(
        get_json(
            &http,
            &url(
                &args.server,
                &format!(
                    "/api/v1/audit/proof/inclusion?index={}&tree_size={}",
                    args.index, checkpoint.size
                ),
            ),
        )
        .await?,
    )?;
    let full = u64::from(FULL_TILE_WIDTH);
    let tile = args.index / full;
    let width = (checkpoint.size - tile * full).min(full) as u16;
    let bundle = get_bytes(
        &http,
        &url(
            &args.server,
            &format!(
                "/log/{}",
                TilePath::Entries { index: tile, width }.to_path()
            ),
        ),
    )
    .await?;
    let entry = airlock_audit::parse_entry_bundle(&bundle)?
        .into_iter()
        .nth((args.index % full) as usize)
        .ok_or_else(|| anyhow!("the entry bundle does not hold entry {}", args.index))?;
    if let Err(err) = proof.verify_entry(&entry, &checkpoint) {
        return Ok(report_failure(
            &format!("the server's inclusion proof does not verify: {err}"),
            args.server.output,
        ));
    }
    let entry_json: Value = serde_json::from_slice(&entry).unwrap_or(Value::Null);
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "index": proof.index,
            "tree_size": proof.tree_size,
            "entry": entry_json,
            "entry_bytes_hex": hex::encode(&entry),
            "leaf_hash": proof.leaf_hash,
            "hashes": proof.hashes,
            "checkpoint": note,
            "verifier_key": key,
            "how_to_check": "leaf = SHA-256(0x00 || entry bytes); fold the hashes per RFC 9162 section 2.1.3.2 to the root in the checkpoint; verify the checkpoint note with the verifier key (c2sp.org/signed-note)",
        }))?
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_and_ages() {
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z", 0).unwrap(),
            1_767_225_600_000
        );
        assert_eq!(
            parse_since("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert!(parse_since("2w", 0).is_err());
        assert!(parse_since("yesterday", 0).is_err());
    }
}
