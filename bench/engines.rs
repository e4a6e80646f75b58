//! The engines benchmark: the distributed engines (PostgreSQL metadata + S3 blobs) against the
//! embedded default (SQLite + a local blob directory), measured in the same run with the same
//! client code over loopback.
//!
//! Each run starts one airlock per engine, one after the other, each fresh (its own data
//! directory; for PostgreSQL its own database, for S3 its own bucket), alternating which engine
//! goes first from run to run so both see the same machine. Against each it measures:
//! 1. one large blob pushed (POST, one streaming PATCH, PUT) and pulled back (`main.rs`'s `run`);
//! 2. N small tagged manifests pushed one after another, then pulled by tag;
//! 3. promotions/s: N images of 1 KiB, each signed twice with keys in the keyring, promoted dev ->
//!    staging through the default policy with `--in-flight` requests at a time (`promote.rs`);
//! 4. audit appends/s: concurrent writers appending one entry per transaction through the store,
//!    with the integrator signing checkpoints meanwhile (`audit.rs`), in process.
//!
//! It prints each figure's median over the runs with its range, and the ratio of the medians
//! (distributed / embedded; above 1 means the distributed engines are faster).
//!
//! PostgreSQL and S3 are the operator's: `--postgres-url` (a role that may `CREATE DATABASE`;
//! default `$AIRLOCK_TEST_POSTGRES_URL`), `--s3-endpoint` (default `$AIRLOCK_TEST_S3_ENDPOINT`)
//! with the usual `AWS_*` credentials. `scripts/test-services --benchmark` and `scripts/test-s3`
//! start local ones; `--benchmark` gives PostgreSQL the durability airlock's SQLite settings have
//! (fsync on, commits not waiting for it: WAL with `synchronous = NORMAL`), so the comparison is
//! like for like. `--server-log FILTER` sets the servers' log filter, for profiling: with
//! `warn,airlock_server::app=info,sqlx::query=debug` every statement is logged in the span of
//! its request.

use std::path::PathBuf;

use airlock_store::DatabaseLocation;
use airlock_store::test_support::TestS3;
use anyhow::{Context, Result, bail};

use crate::promote::{Airlock, SizeClass, prepare_class, promote_concurrently};
use crate::services::{BenchDatabase, random_bytes, random_suffix};

struct Options {
    runs: usize,
    blob_mib: usize,
    manifests: usize,
    promotions: usize,
    in_flight: usize,
    audit_events: u64,
    audit_writers: u64,
    airlock: PathBuf,
    postgres_url: String,
    s3: TestS3,
    /// The servers' log filter (`AIRLOCK_LOG__LEVEL`), for profiling: e.g.
    /// `warn,airlock_server::app=info,sqlx::query=debug` logs every statement in its request's span.
    server_log: Option<String>,
}

fn options() -> Result<Options> {
    let mut runs = 3;
    let mut blob_mib = 1024;
    let mut manifests = 1000;
    let mut promotions = 200;
    let mut in_flight = 8;
    let mut audit_events = 20_000;
    let mut audit_writers = 8;
    let mut airlock = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/airlock"
    ));
    let mut postgres_url = std::env::var("AIRLOCK_TEST_POSTGRES_URL").unwrap_or_default();
    let mut s3_endpoint = std::env::var("AIRLOCK_TEST_S3_ENDPOINT").unwrap_or_default();
    let mut server_log = None;
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => runs = value()?.parse()?,
            "--blob-mib" => blob_mib = value()?.parse()?,
            "--manifests" => manifests = value()?.parse()?,
            "--promotions" => promotions = value()?.parse()?,
            "--in-flight" => in_flight = value()?.parse()?,
            "--audit-events" => audit_events = value()?.parse()?,
            "--audit-writers" => audit_writers = value()?.parse()?,
            "--airlock" => airlock = value()?.into(),
            "--postgres-url" => postgres_url = value()?,
            "--s3-endpoint" => s3_endpoint = value()?,
            "--server-log" => server_log = Some(value()?),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    if postgres_url.is_empty() || s3_endpoint.is_empty() {
        bail!(
            "the engines benchmark needs PostgreSQL and S3: --postgres-url and --s3-endpoint (or eval \"$(scripts/test-services --benchmark)\" and eval \"$(scripts/test-s3)\")"
        );
    }
    if runs == 0 || promotions == 0 || manifests == 0 || audit_writers == 0 {
        bail!("--runs, --promotions, --manifests and --audit-writers must be at least 1");
    }
    Ok(Options {
        runs,
        blob_mib,
        manifests,
        promotions,
        in_flight,
        audit_events,
        audit_writers,
        airlock,
        postgres_url,
        s3: TestS3 {
            endpoint: s3_endpoint,
        },
        server_log,
    })
}

/// The two configurations compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Embedded,
    Distributed,
}

impl Engine {
    fn label(self) -> &'static str {
        match self {
            Engine::Embedded => "SQLite + local",
            Engine::Distributed => "PostgreSQL + S3",
        }
    }
}

/// A fresh PostgreSQL database and S3 bucket (the database dropped when this goes).
struct DistributedBackend {
    database: BenchDatabase,
    bucket: String,
    /// Holds the key-encryption key file.
    dir: tempfile::TempDir,
}

impl DistributedBackend {
    async fn create(options: &Options) -> Result<Self> {
        let database = BenchDatabase::create(&options.postgres_url)?;
        let bucket = format!("airlock-bench-{}", random_suffix()?);
        options.s3.create_bucket(&bucket).await?;
        let dir = tempfile::tempdir()?;
        Ok(Self {
            database,
            bucket,
            dir,
        })
    }

    /// The environment that points `airlock serve` at this backend.
    fn env(&self, s3: &TestS3) -> Result<Vec<(String, String)>> {
        use base64::Engine as _;
        let kek = self.dir.path().join("kek");
        std::fs::write(
            &kek,
            base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()?),
        )?;
        Ok(vec![
            ("AIRLOCK_DATABASE_URL".into(), self.database.url.clone()),
            ("AIRLOCK_BLOB_STORE".into(), format!("s3://{}", self.bucket)),
            ("AIRLOCK_S3__ENDPOINT".into(), s3.endpoint.clone()),
            ("AIRLOCK_S3__PATH_STYLE".into(), "true".into()),
            (
                "AIRLOCK_S3__ALLOW_HTTP".into(),
                s3.endpoint.starts_with("http://").to_string(),
            ),
            (
                "AIRLOCK_KEY_ENCRYPTION_KEY_FILE".into(),
                kek.display().to_string(),
            ),
        ])
    }
}

/// What one engine did in one run.
struct RunFigures {
    blob_push_mib_s: f64,
    blob_pull_mib_s: f64,
    manifest_push_s: f64,
    manifest_pull_s: f64,
    promotions_s: f64,
    promotion_p50_ms: f64,
    audit_appends_s: f64,
}

async fn measure(
    engine: Engine,
    options: &Options,
    base_block: &[u8],
    digest: &str,
) -> Result<RunFigures> {
    let backend = match engine {
        Engine::Embedded => None,
        Engine::Distributed => Some(DistributedBackend::create(options).await?),
    };
    let mut env = match &backend {
        Some(backend) => backend.env(&options.s3)?,
        None => Vec::new(),
    };
    if let Some(filter) = &options.server_log {
        env.push(("AIRLOCK_LOG__LEVEL".into(), filter.clone()));
    }
    let server = crate::start_airlock_with_env(&options.airlock, &env)?;
    let transfer_options = crate::Options {
        blob_mib: options.blob_mib,
        manifests: options.manifests,
        airlock: options.airlock.clone(),
        registry: PathBuf::new(),
    };
    let transfers = crate::run(&server, &transfer_options, base_block, digest).await?;
    let airlock = Airlock::set_up(server).await?;
    let (repo, digests) = prepare_class(&airlock, &SizeClass::small(), options.promotions).await?;
    let (latencies, wall) =
        promote_concurrently(&airlock, &repo, &digests, options.in_flight).await?;
    drop(airlock);
    let latencies = crate::promote::Latencies::new(latencies);

    // Audit appends in process, on a database of their own for this engine.
    let dir = tempfile::tempdir()?;
    let appends_backend = match engine {
        Engine::Embedded => None,
        Engine::Distributed => Some(DistributedBackend::create(options).await?),
    };
    let location = match &appends_backend {
        Some(backend) => DatabaseLocation::Postgres(backend.database.url.clone()),
        None => DatabaseLocation::Sqlite(dir.path().join("metadata.db")),
    };
    let (metadata, log) = crate::audit::open_at(&location, dir.path()).await?;
    let appended_events = (options.audit_events / options.audit_writers) * options.audit_writers;
    let appends = crate::audit::sustained_appends(
        &metadata,
        &log,
        options.audit_events,
        options.audit_writers,
    )
    .await?;
    metadata.close().await;

    let mib = options.blob_mib as f64;
    let n = options.manifests as f64;
    Ok(RunFigures {
        blob_push_mib_s: mib / transfers.push_blob.as_secs_f64(),
        blob_pull_mib_s: mib / transfers.pull_blob.as_secs_f64(),
        manifest_push_s: n / transfers.push_manifests.as_secs_f64(),
        manifest_pull_s: n / transfers.pull_manifests.as_secs_f64(),
        promotions_s: options.promotions as f64 / wall.as_secs_f64(),
        promotion_p50_ms: crate::promote::ms(latencies.quantile(0.5)),
        audit_appends_s: appended_events as f64 / appends.integrated.as_secs_f64(),
    })
}

/// The median of `values` (the lower middle one for an even count) and their range, as text.
fn summary(values: &[f64]) -> (f64, String) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted[(sorted.len() - 1) / 2];
    let low = sorted[0];
    let high = sorted[sorted.len() - 1];
    (middle, format!("{middle:.1} ({low:.1}-{high:.1})"))
}

/// Runs the engines benchmark described in the module documentation.
pub async fn run() -> Result<()> {
    let options = options()?;
    let (base_block, digest) = crate::benchmark_blob(options.blob_mib).await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "engines benchmark: {} runs; blob {} MiB, {} manifests, {} promotions ({} in flight), {} audit events from {} writers; {cores} cores, load average {} at start",
        options.runs,
        options.blob_mib,
        options.manifests,
        options.promotions,
        options.in_flight,
        options.audit_events,
        options.audit_writers,
        crate::promote::load_average(),
    );
    let mut embedded = Vec::new();
    let mut distributed = Vec::new();
    for run in 0..options.runs {
        let order = if run % 2 == 0 {
            [Engine::Embedded, Engine::Distributed]
        } else {
            [Engine::Distributed, Engine::Embedded]
        };
        for engine in order {
            let figures = measure(engine, &options, &base_block, &digest)
                .await
                .with_context(|| format!("run {} on {}", run + 1, engine.label()))?;
            println!(
                "run {} {:<16} blob push {:.0} MiB/s, pull {:.0} MiB/s; manifests push {:.0}/s, pull {:.0}/s; promotions {:.0}/s (p50 {:.2} ms); audit appends {:.0}/s",
                run + 1,
                engine.label(),
                figures.blob_push_mib_s,
                figures.blob_pull_mib_s,
                figures.manifest_push_s,
                figures.manifest_pull_s,
                figures.promotions_s,
                figures.promotion_p50_ms,
                figures.audit_appends_s,
            );
            match engine {
                Engine::Embedded => embedded.push(figures),
                Engine::Distributed => distributed.push(figures),
            }
        }
    }
    type Pick = fn(&RunFigures) -> f64;
    let rows: [(&str, Pick); 7] = [
        ("blob push (MiB/s)", |f| f.blob_push_mib_s),
        ("blob pull (MiB/s)", |f| f.blob_pull_mib_s),
        ("manifest push (/s)", |f| f.manifest_push_s),
        ("manifest pull (/s)", |f| f.manifest_pull_s),
        ("promotions (/s)", |f| f.promotions_s),
        ("promotion p50 (ms)", |f| f.promotion_p50_ms),
        ("audit appends (/s)", |f| f.audit_appends_s),
    ];
    println!();
    println!(
        "| {} runs, median (range) | SQLite + local directory | PostgreSQL + S3 | PostgreSQL + S3 / SQLite |",
        options.runs
    );
    println!("|---|---|---|---|");
    for (name, pick) in rows {
        let (ours, ours_text) = summary(&embedded.iter().map(pick).collect::<Vec<_>>());
        let (theirs, theirs_text) = summary(&distributed.iter().map(pick).collect::<Vec<_>>());
        println!(
            "| {name} | {ours_text} | {theirs_text} | {:.2} |",
            theirs / ours
        );
    }
    println!(
        "load average at the end: {}",
        crate::promote::load_average()
    );
    Ok(())
}
