//! `airlock witness ...`: run airlock as a witness of other transparency logs
//! (c2sp.org/tlog-witness), and print a witness's verifier key.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

/// Witness commands.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Serve a witness alone: it cosigns a log's checkpoints only when they extend what it
    /// cosigned before, and never rolls back (state in DIR/witness.db, key in DIR/witness-key).
    ///
    /// Logs submit to `http://ADDR/witness/add-checkpoint`. `airlock serve` with `[witness]`
    /// set serves the same endpoints beside the registry (over TLS when it has `[tls]`).
    Serve(ServeArgs),
    /// Print a witness's verifier key (for logs' `[[audit.witnesses]]` and `audit verify
    /// --witness`), from the data directory of `witness serve` or of `airlock serve`.
    Key(KeyArgs),
}

/// `witness serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The witness's name, which is also its key's name (e.g. `witness.example.com/w1`); fixed
    /// for life once its key is made.
    #[arg(long)]
    name: String,
    /// A log to witness: its verifier key (`origin+id+base64`), or a file holding it. Repeat
    /// for several logs.
    #[arg(long = "log", value_name = "KEY", required = true)]
    logs: Vec<String>,
    /// Where the witness keeps its key and database.
    #[arg(long, value_name = "DIR", default_value = "./airlock-witness")]
    data_dir: PathBuf,
    /// The address to listen on (plaintext HTTP: the protocol's answers are signed, but put a TLS
    /// proxy in front of a witness reached over a network).
    #[arg(long, default_value = "127.0.0.1:5050")]
    listen: SocketAddr,
    /// Allow listening on a non-loopback address in plaintext.
    #[arg(long)]
    insecure_listen: bool,
}

/// `witness key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The witness's data directory.
    #[arg(long, value_name = "DIR", default_value = "./airlock-witness")]
    data_dir: PathBuf,
}

/// What a witness name must look like.
const NAME_RULE: &str = "a witness name is non-empty, without whitespace, '+' or control characters (e.g. witness.example.com/w1)";

/// The witness configuration `witness serve`'s arguments give.
pub fn config_of(args: &ServeArgs) -> Result<airlock_server::config::WitnessConfig> {
    if !args.listen.ip().is_loopback() && !args.insecure_listen {
        bail!(
            "refusing to serve plaintext HTTP on {}: listen on a loopback address behind a TLS proxy, or pass --insecure-listen",
            args.listen
        );
    }
    airlock_audit::WitnessKey::check_name(&args.name)
        .map_err(|_| anyhow::anyhow!("--name {:?}: {NAME_RULE}", args.name))?;
    let logs = args
        .logs
        .iter()
        .map(|value| {
            let key = crate::commands::audit::read_key_arg(value)?;
            // Named as the user gave it, not as the configuration field it becomes.
            airlock_audit::log_key_origin(&key).map_err(|e| {
                anyhow::anyhow!("--log {value}: {e}; give a log's verifier key (GET /log/key on an airlock server) or a file holding it")
            })?;
            Ok(key)
        })
        .collect::<Result<Vec<_>>>()?;
    let config = airlock_server::config::WitnessConfig {
        name: Some(args.name.clone()),
        logs,
    };
    config.check().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// Serves the witness until `shutdown` resolves.
pub async fn serve(
    args: ServeArgs,
    config: airlock_server::config::WitnessConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    airlock_server::witness::serve_alone(args.listen, &args.data_dir, &config, shutdown).await?;
    Ok(())
}

/// Prints the verifier key of the witness whose data directory `args` names.
pub fn key(args: KeyArgs) -> Result<()> {
    let path = args.data_dir.join(airlock_server::witness::KEY_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the witness key {} (a witness makes it on its first start)",
            path.display()
        )
    })?;
    let key = airlock_audit::WitnessKey::from_private_text(&text)
        .with_context(|| format!("{} is not a witness key", path.display()))?;
    println!("{}", key.verifier_key());
    Ok(())
}
