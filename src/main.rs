//! The `airlock` command: the server (`airlock serve`) and, as later capabilities land, the CLI
//! for promotions, keys, policy and the audit log. This file only parses arguments and wires the
//! library crates together.
#![forbid(unsafe_code)]

mod client;
mod commands;
mod oci_client;

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_server::{Config, LogFormat};
use clap::{CommandFactory, Parser, Subcommand};
use commands::{
    access, anomalies, audit, backup, catalog, completion, context, deploy, evidence, gc, login,
    migrate_store, outcome, promotion, version, webhooks, witness,
};
use tracing_subscriber::EnvFilter;

/// airlock: a secure artifact promotion pipeline.
///
/// An OCI registry whose repositories live in ordered stages (dev -> staging -> prod). Builders push
/// to push stages with any OCI client; gated stages receive artifacts only by promotion.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    common: commands::common::Common,
}

/// How the client commands verify an https:// server (docs/tls.md, "Clients").
#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// Trust only this CA (a PEM file) for the server's certificate, instead of the system's
    /// roots; also AIRLOCK_CA_CERT (which --insecure overrides). `airlock login` stores it with
    /// the server's entry for later commands.
    #[arg(long, value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
    /// Do not check the server's certificate at all. Lab use only: anyone on the network path
    /// can read and change the connection (a warning is printed on every use).
    #[arg(long, global = true, conflicts_with = "ca_cert")]
    insecure: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry server.
    ///
    /// With no configuration, stores metadata in SQLite and blobs in ./airlock-data/ and listens on
    /// 127.0.0.1:5000 with the stages dev (push) -> staging (gated) -> prod (gated).
    Serve(ServeArgs),
    /// Read, export, prove and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Log in to a server: stores a refresh credential (mode 0600) for the other commands and
    /// makes the server the current context; `--oidc` exchanges a CI job's ID token instead.
    Login(login::LoginArgs),
    /// Show who you are logged in as, and your roles.
    Whoami(commands::common::Common),
    /// Manage users.
    #[command(subcommand)]
    Users(access::UsersCommand),
    /// Manage service accounts and their API keys.
    #[command(subcommand)]
    ServiceAccounts(access::ServiceAccountsCommand),
    /// Grant, revoke and list roles.
    #[command(subcommand)]
    Roles(access::RolesCommand),
    /// Just-in-time access: request, grant, deny, list.
    #[command(subcommand)]
    Access(access::AccessCommand),
    /// The keyring of trusted signer keys: generate, add, list, update, retire, revoke; and
    /// airlock's own keys: rotate-server.
    #[command(subcommand)]
    Keys(evidence::KeysCommand),
    /// Sign an artifact as cosign does (simple signing, tag scheme or --referrer).
    Sign(evidence::SignArgs),
    /// Attest to an artifact as cosign does (in-toto statement in a DSSE envelope).
    Attest(evidence::AttestArgs),
    /// Show an artifact's signatures and attestations: verified or rejected, and why.
    Evidence(evidence::EvidenceArgs),
    /// Promote an artifact into a gated stage through its gate (--dry-run, --wait).
    Promote(promotion::PromoteArgs),
    /// Approve a pending promotion.
    Approve(promotion::ApproveArgs),
    /// List, show and cancel promotions.
    #[command(subcommand)]
    Promotions(promotion::PromotionsCommand),
    /// Which digest is in which stage for a repository path, and by which promotion.
    Status(catalog::StatusArgs),
    /// Verify that deployed image references were promoted into a stage and still stand.
    Verify(deploy::VerifyArgs),
    /// Issue a pull-only token for named repositories, e.g. as a Kubernetes imagePullSecret.
    DeployToken(deploy::DeployTokenArgs),
    /// Report what runs where (from CD or by hand).
    #[command(subcommand)]
    Deployments(deploy::DeploymentsCommand),
    /// List running images that were never promoted into their stage, or are behind it.
    Drift(deploy::DriftArgs),
    /// Move a channel tag back to an earlier promoted digest.
    Rollback(promotion::RollbackArgs),
    /// Freeze a gated stage: promotions into it are refused (break-glass excepted).
    Freeze(promotion::FreezeArgs),
    /// Lift a stage freeze.
    Unfreeze(promotion::UnfreezeArgs),
    /// Show and replay decision records.
    #[command(subcommand)]
    Decisions(promotion::DecisionsCommand),
    /// Test and evaluate policy bundles; show or reload the server's.
    #[command(subcommand)]
    Policy(promotion::PolicyCommand),
    /// What the anomaly rules caught; resolve one to lift its lock, quarantine or freeze.
    #[command(subcommand)]
    Anomalies(anomalies::AnomaliesCommand),
    /// Endpoints that receive airlock's events as signed CloudEvents.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// The stages, their gates and freezes.
    Stages(catalog::StagesArgs),
    /// Repositories holding artifacts that you may pull (of one stage, or all).
    Repos(catalog::ReposArgs),
    /// The tags of a repository, with their digests and times.
    Tags(catalog::TagsArgs),
    /// Channel tags: their history.
    #[command(subcommand)]
    Channels(catalog::ChannelsCommand),
    /// The servers you logged in to (contexts) and which one commands use by default.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Write the man pages (airlock.1 and one per subcommand) into a directory.
    Manpages(completion::ManpagesArgs),
    /// Show this client's version and the server's.
    Version(version::VersionArgs),
    /// Garbage collection: delete blobs no manifest references (after a grace period), and old
    /// untagged manifests in push stages with keep_untagged_days (access-admin everywhere).
    Gc(gc::GcArgs),
    /// Back up the server's data directory (database snapshot, referenced blobs, keys) while it
    /// runs; `--verify DEST` checks a backup (docs/operations.md, "Backup and restore").
    Backup(backup::BackupArgs),
    /// Restore a verified backup into a new, empty data directory.
    Restore(backup::RestoreArgs),
    /// Move a stopped embedded installation to PostgreSQL (--to) and its blobs to S3 (--blobs),
    /// checking the copy (docs/operations.md, "Moving to PostgreSQL and S3").
    MigrateStore(migrate_store::MigrateStoreArgs),
    /// Run airlock as a witness of other transparency logs (c2sp.org/tlog-witness), or print a
    /// witness's key.
    #[command(subcommand)]
    Witness(witness::WitnessCommand),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file (every field is optional; see docs/configuration.md).
    #[arg(long, env = "AIRLOCK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the database, blobs and keys [default: ./airlock-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:5000 or 0.0.0.0:5000 (port 0 picks a free port). An
    /// address other than loopback needs [tls], --self-signed or --insecure-listen.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Log line format on stderr: `text` or `json` [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Start even though the database is new while the data directory holds keys (log, token or
    /// attestation key) from an earlier installation. Without it such a start is refused: the
    /// old database was lost, and starting would begin an empty registry and audit log under the
    /// old keys. Pass it once, on purpose, after reading docs/operations.md (Recovery).
    #[arg(long)]
    allow_new_database: bool,
    /// Serve plaintext HTTP on an address that is not loopback (e.g. behind a TLS-terminating
    /// proxy on a trusted network). Without it, and without [tls] or --self-signed, such an
    /// address is refused. Same as `insecure_listen = true`.
    #[arg(long)]
    insecure_listen: bool,
    /// Serve TLS with a self-signed certificate, made once in the data directory (tls/) for the
    /// listen address and localhost and reused later; its path and SHA-256 fingerprint are
    /// printed. For trying TLS out; use [tls] with a CA's certificate in production.
    #[arg(long, conflicts_with = "insecure_listen")]
    self_signed: bool,
}

fn main() -> ExitCode {
    // One crypto provider for every TLS use in the process (server, clients, webhooks): aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return ExitCode::from(outcome::report_usage_error(&err)),
    };
    // A client command whose reader went away ends quietly; the server keeps the default (a
    // server that cannot print its address should not look like a clean exit).
    if !matches!(cli.command, Command::Serve(_)) {
        outcome::exit_quietly_when_stdout_closes();
    }
    outcome::set_output(cli.common.output);
    // The token is checked here, not by clap: clap's errors repeat the value, and it is a secret.
    let token = match cli
        .common
        .token
        .as_ref()
        .map(|token| token.validated())
        .transpose()
    {
        Ok(token) => token.flatten(),
        Err(message) => return ExitCode::from(outcome::report_error(&anyhow::anyhow!(message))),
    };
    client::set_bearer_token(token, &cli.common.server);
    if cli.tls.insecure && matches!(cli.command, Command::Serve(_)) {
        eprintln!(
            "airlock: --insecure is for client commands (do not check the server's certificate); \
             to serve plaintext HTTP on a non-loopback address use `airlock serve --insecure-listen`"
        );
        return ExitCode::from(2);
    }
    // AIRLOCK_CA_CERT is read here rather than by clap, so that --insecure on the command line
    // overrides it instead of conflicting with it.
    let ca_cert = cli
        .tls
        .ca_cert
        .clone()
        .or_else(|| std::env::var_os("AIRLOCK_CA_CERT").map(PathBuf::from))
        .filter(|path| !cli.tls.insecure && !path.as_os_str().is_empty());
    client::set_tls_options(client::TlsOptions {
        ca_cert,
        insecure: cli.tls.insecure,
    });
    match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Audit(command) => run_client(audit::run(command)),
        Command::Login(args) => run_client(login::login(args, &cli.common)),
        Command::Whoami(common) => run_client(access::whoami(common)),
        Command::Users(command) => run_client(access::users(command)),
        Command::ServiceAccounts(command) => run_client(access::service_accounts(command)),
        Command::Roles(command) => run_client(access::roles(command)),
        Command::Access(command) => run_client(access::access(command)),
        Command::Keys(command) => run_client(evidence::keys(command)),
        Command::Sign(args) => run_client(evidence::sign(args)),
        Command::Attest(args) => run_client(evidence::attest(args)),
        Command::Evidence(args) => run_client(evidence::evidence(args)),
        Command::Promote(args) => run_client(promotion::promote(args)),
        Command::Approve(args) => run_client(promotion::approve(args)),
        Command::Promotions(command) => run_client(promotion::promotions(command)),
        Command::Status(args) => run_client(catalog::status(args)),
        Command::Verify(args) => run_client(deploy::verify(args)),
        Command::DeployToken(args) => run_client(deploy::deploy_token(args)),
        Command::Deployments(command) => run_client(deploy::deployments(command)),
        Command::Drift(args) => run_client(deploy::drift(args)),
        Command::Rollback(args) => run_client(promotion::rollback(args)),
        Command::Freeze(args) => run_client(promotion::freeze(args)),
        Command::Unfreeze(args) => run_client(promotion::unfreeze(args)),
        Command::Decisions(command) => run_client(promotion::decisions(command)),
        Command::Policy(command) => run_client(promotion::policy(command)),
        Command::Anomalies(command) => run_client(anomalies::anomalies(command)),
        Command::Webhooks(command) => run_client(webhooks::webhooks(command)),
        Command::Stages(args) => run_client(catalog::stages(args)),
        Command::Repos(args) => run_client(catalog::repos(args)),
        Command::Tags(args) => run_client(catalog::tags(args)),
        Command::Channels(command) => run_client(catalog::channels(command)),
        Command::Context(command) => run_client(context::context(command, &cli.common)),
        Command::Completion(args) => {
            run_client(async { completion::completion(args, Cli::command()) })
        }
        Command::Manpages(args) => run_client(async { completion::manpages(args, Cli::command()) }),
        Command::Version(args) => run_client(version::version(args, &cli.common)),
        Command::Gc(args) => run_client(gc::gc(args)),
        Command::Backup(args) => run_client(backup::backup(args, cli.common.output)),
        Command::Restore(args) => run_client(backup::restore(args, cli.common.output)),
        Command::MigrateStore(args) => {
            run_client(migrate_store::migrate_store(args, cli.common.output))
        }
        Command::Witness(witness::WitnessCommand::Serve(args)) => run_witness(args),
        Command::Witness(witness::WitnessCommand::Key(args)) => {
            run_client(async { witness::key(args).map(|()| 0) })
        }
    }
}

/// `airlock witness serve`: the witness alone, until SIGTERM or SIGINT.
fn run_witness(args: witness::ServeArgs) -> ExitCode {
    let config = match witness::config_of(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("airlock: {err:#}");
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    init_logging(&Config::default());
    let Some(runtime) = small_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(async { witness::serve(args, config, shutdown_signals()).await }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("airlock: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A two-worker runtime for client commands and the witness; `None` (said on stderr) if it
/// cannot start.
fn small_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            eprintln!("airlock: cannot start the async runtime: {err}");
            None
        }
    }
}

/// Runs a client command on a small runtime; its error is reported as `commands::outcome` says
/// (exit 1 for a refusal, 2 for a usage or connection error), a failed check returns its own
/// status.
fn run_client(command: impl std::future::Future<Output = anyhow::Result<u8>>) -> ExitCode {
    let Some(runtime) = small_runtime() else {
        return ExitCode::from(2);
    };
    match runtime.block_on(command) {
        Ok(status) => ExitCode::from(status),
        Err(err) => ExitCode::from(outcome::report_error(&err)),
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let mut config = match Config::load(args.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("airlock: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    config.allow_new_database = args.allow_new_database;
    config.insecure_listen |= args.insecure_listen;
    config.self_signed = args.self_signed;
    // Everything the server creates in the data directory (blob files and directories, upload
    // chunks, the database if SQLite creates it) is for this user only, whatever umask the
    // server was started with. Set before any thread starts.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if let Ok(password) = std::env::var("AIRLOCK_INITIAL_ADMIN_PASSWORD") {
        config.access.initial_admin_password = Some(airlock_server::config::Secret(password));
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("airlock: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(async { airlock_server::serve(config, shutdown_signals()).await }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "airlock failed");
            eprintln!("airlock: {err}");
            ExitCode::from(err.exit_status())
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a file, a pipe or journald gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Listens for SIGTERM and SIGINT (ctrl-c) from now on; the returned future resolves on the first
/// one, which starts the graceful shutdown. A second signal exits the process at once with status
/// 128 + the signal's number, as a shell reports a process killed by it, without waiting for
/// requests in flight (the database stays consistent: every change is one transaction).
/// Must be called inside the runtime.
fn shutdown_signals() -> impl std::future::Future<Output = ()> {
    let (first, first_received) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut signals = Signals::listen();
        let name = signals.next().await;
        tracing::info!(
            signal = name,
            "{name} received: shutting down gracefully; send it again to exit at once"
        );
        let _ = first.send(());
        let name = signals.next().await;
        tracing::warn!(
            signal = name,
            "{name} received again: exiting at once without waiting for requests in flight"
        );
        let code = match name {
            "SIGINT" => 130,
            _ => 143,
        };
        std::process::exit(code);
    });
    async move {
        // The sender only goes away with the runtime.
        let _ = first_received.await;
    }
}

/// The shutdown signals, registered once so that none is lost between the first and the second
/// (and the default action, ending the process, never applies once airlock listens).
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let terminate = signal(SignalKind::terminate());
            let interrupt = signal(SignalKind::interrupt());
            for (name, result) in [("SIGTERM", &terminate), ("SIGINT", &interrupt)] {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "cannot listen for {name}: it will not shut airlock down gracefully");
                }
            }
            Self {
                terminate: terminate.ok(),
                interrupt: interrupt.ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the next signal; returns its name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
                let received = match signal {
                    Some(signal) => signal.recv().await.is_some(),
                    None => false,
                };
                if !received {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                () = recv(&mut self.terminate) => "SIGTERM",
                () = recv(&mut self.interrupt) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            "ctrl-c"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks over the whole tree (global options shared by every
    /// subcommand, no duplicate flags), which otherwise run only for the subcommand parsed.
    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
