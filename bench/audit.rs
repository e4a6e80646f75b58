//! The audit log benchmark: sustained appends and whole-log verification.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::{Action, Actor, AuditEvent, AuditRecord};
use airlock_server::audit::AuditLog;
use airlock_store::{DatabaseLocation, Metadata, now_millis};
use anyhow::{Context, Result, bail};

/// GNU time, which measures the verifier's peak resident memory.
const GNU_TIME: &str = "/usr/bin/time";
/// What the bench's `/usr/bin/time -f` format prints before the peak RSS.
const RSS_MARKER: &str = "airlock-bench peak rss KiB: ";

struct Options {
    events: u64,
    writers: u64,
    verify_entries: u64,
    airlock: PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        events: 100_000,
        writers: 8,
        verify_entries: 1_000_000,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--events" => options.events = value()?.parse()?,
            "--writers" => options.writers = value()?.parse()?,
            "--verify-entries" => options.verify_entries = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    Ok(options)
}

/// A typical entry: a refused push names a repository, an action and a reason.
fn record(i: u64) -> AuditRecord {
    AuditRecord {
        time_millis: now_millis(),
        actor: Actor {
            principal: format!("ci-builder-{}", i % 17),
            auth_method: "token".into(),
            source: Some("10.0.0.7:51234".into()),
        },
        event: AuditEvent::PushRefused {
            repository: format!("prod/team-{}/app", i % 97)
                .parse()
                .expect("valid name"),
            action: Action::Push,
            reason: "stage prod is gated: artifacts reach prod only by promotion".into(),
        },
    }
}

async fn open(dir: &std::path::Path) -> Result<(Metadata, Arc<AuditLog>)> {
    open_at(&DatabaseLocation::Sqlite(dir.join("metadata.db")), dir).await
}

/// The audit log over the database at `location`, its key in `dir`.
pub(crate) async fn open_at(
    location: &DatabaseLocation,
    dir: &std::path::Path,
) -> Result<(Metadata, Arc<AuditLog>)> {
    let metadata = Metadata::open(location).await?;
    let log = Arc::new(AuditLog::open(metadata.clone(), dir, "airlock/bench").await?);
    Ok((metadata, log))
}

/// Until the newest checkpoint covers `size` entries.
async fn wait_integrated(metadata: &Metadata, size: u64) -> Result<()> {
    loop {
        let latest = metadata.latest_checkpoint().await?.map_or(0, |c| c.size);
        if latest >= size {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How long sustained appends took.
pub(crate) struct Appends {
    /// Until every writer's last transaction committed.
    pub(crate) appended: Duration,
    /// Until a signed checkpoint covered every entry.
    pub(crate) integrated: Duration,
}

/// `events` audit entries (rounded down to a multiple of `writers`) from `writers` concurrent
/// writers, one transaction per event, with the integrator signing checkpoints meanwhile.
pub(crate) async fn sustained_appends(
    metadata: &Metadata,
    log: &Arc<AuditLog>,
    events: u64,
    writers: u64,
) -> Result<Appends> {
    let before = metadata.audit_entry_count().await? as u64;
    let leadership = Arc::new(airlock_server::leadership::Leadership::new(metadata));
    let integrator = tokio::spawn(log.clone().run_integrator(leadership));
    let started = Instant::now();
    let per_writer = events / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let metadata = metadata.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                metadata
                    .record_events(&[record(w * per_writer + i)])
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let appended = started.elapsed();
    wait_integrated(metadata, before + per_writer * writers).await?;
    let integrated = started.elapsed();
    integrator.abort();
    Ok(Appends {
        appended,
        integrated,
    })
}

pub async fn run() -> Result<()> {
    let options = options()?;
    println!(
        "audit log benchmark; load average {} at start",
        crate::promote::load_average()
    );

    // 1. Sustained appends: concurrent writers, one transaction per event, integrator running.
    let dir = tempfile::tempdir()?;
    let (metadata, log) = open(dir.path()).await?;
    let total = (options.events / options.writers) * options.writers;
    let appends = sustained_appends(&metadata, &log, options.events, options.writers).await?;
    println!(
        "appends: {total} events from {} concurrent writers (group commit): appended in {:.2} s ({:.0} events/s), all signed into a checkpoint after {:.2} s ({:.0} events/s sustained)",
        options.writers,
        appends.appended.as_secs_f64(),
        total as f64 / appends.appended.as_secs_f64(),
        appends.integrated.as_secs_f64(),
        total as f64 / appends.integrated.as_secs_f64(),
    );

    // 2. Verification of a large log with the real CLI.
    let dir = tempfile::tempdir()?;
    let (metadata, log) = open(dir.path()).await?;
    let batch: Vec<AuditRecord> = (0..10_000).map(record).collect();
    let mut written = 0;
    let write_started = Instant::now();
    while written < options.verify_entries {
        let n = (options.verify_entries - written).min(batch.len() as u64) as usize;
        metadata.record_events(&batch[..n]).await?;
        written += n as u64;
    }
    println!(
        "bulk: {} entries appended in transactions of 10,000 in {:.2} s ({:.0} entries/s)",
        options.verify_entries,
        write_started.elapsed().as_secs_f64(),
        options.verify_entries as f64 / write_started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    while log.integrate().await?.is_some() {}
    let integrate = started.elapsed();
    metadata.close().await;
    // GNU time reports the verifier's peak resident memory (`%M`, KiB) on stderr.
    let gnu_time = std::path::Path::new(GNU_TIME);
    let mut command = if gnu_time.exists() {
        let mut command = std::process::Command::new(gnu_time);
        command
            .args(["-f", &format!("{RSS_MARKER}%M")])
            .arg(&options.airlock);
        command
    } else {
        std::process::Command::new(&options.airlock)
    };
    command
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path());
    let started = Instant::now();
    let output = command.output().with_context(|| {
        format!(
            "run {} (cargo build --release first)",
            options.airlock.display()
        )
    })?;
    let verify = started.elapsed();
    if !output.status.success() {
        bail!("verify failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    let peak_rss = String::from_utf8_lossy(&output.stderr)
        .lines()
        .find_map(|line| line.strip_prefix(RSS_MARKER)?.trim().parse::<u64>().ok())
        .map_or_else(
            || format!("not measured ({GNU_TIME} missing)"),
            |kib| format!("{:.0} MiB", kib as f64 / 1024.0),
        );
    println!(
        "verify: `airlock audit verify --data-dir` over {} entries took {:.2} s, peak RSS {peak_rss} (integrating them took {:.2} s)",
        options.verify_entries,
        verify.as_secs_f64(),
        integrate.as_secs_f64()
    );
    println!(
        "load average at the end: {}",
        crate::promote::load_average()
    );
    Ok(())
}
