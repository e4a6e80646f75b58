//! The replica benchmark: one `airlock serve` against three, each time behind haproxy (the
//! configuration `tests/it/replicas/haproxy.cfg`, round robin), on PostgreSQL + S3 (the services of
//! `scripts/test-services` and `scripts/test-s3`, named by the same environment variables as the
//! tests: `AIRLOCK_TEST_POSTGRES_URL`, `AIRLOCK_TEST_S3_ENDPOINT`, `AWS_*`).
//!
//! Each run starts a fresh cluster (its own database and bucket; replica 1 first, the others with
//! its key files, as the tests do), pushes a config and a layer, then measures with `--in-flight`
//! requests at a time through haproxy:
//! 1. `--manifests` manifest pushes (each a distinct manifest, tagged), as admin (HTTP Basic);
//! 2. `--promotions` promotions dev -> staging of those manifests, as `pat` (promoter), through a
//!    permissive bundle (the default bundle's common rules, no evidence required), so the figure
//!    is the promotion machinery (request, decision, promotion, attestation, audit), not
//!    signature verification (`airlock-bench promote` measures that).
//!
//! The promotions are measured in two halves, and the CPU per promotion of the second is also
//! printed apart: the first half pays each replica's warm-up (prepared statements per pooled
//! connection, caches), which three replicas pay three times.
//!
//! For each phase it prints requests per second and the CPU the replicas spent per request: the
//! sum over the replicas of utime + stime from `/proc/PID/stat`, before and after the phase,
//! divided by the requests (haproxy's, and PostgreSQL's and the S3 server's, printed apart; the
//! services are found through `AIRLOCK_TEST_SERVICES_DIR` and `AIRLOCK_TEST_S3_PID`). Before
//! the phases it measures what the replicas spend idle for 3 s (CPU per second). haproxy checks
//! `/readyz` every 2 s here, as the Kubernetes probe in `deploy/` does, not every 200 ms as in
//! the tests. One and three replicas alternate
//! run by run so that load from elsewhere hits both; the summary gives the median and the spread
//! (min-max) of `--runs` runs.
//!
//! Run: `eval "$(scripts/test-services)"; eval "$(scripts/test-s3)";
//! ./target/release/airlock-bench replicas [--runs 5] [--in-flight 8] [--manifests 400]
//! [--promotions 200] [--perf DIR [--perf-args ARGS]]` (build with `cargo build --release -p
//! airlock -p airlock-bench`). With `--perf DIR`, `perf record ARGS` (default `-F 999`) samples
//! the replicas over each second half into `DIR/replicas-N-run-R.data`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::json;

use crate::services::{BenchDatabase, random_suffix};
use crate::{BENCH_PASSWORD, client, push_small_blob};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const PAT_PASSWORD: &str = "bench-release-phrase-0123";
const ORIGIN: &str = "airlock.bench/replicas";

struct Options {
    runs: usize,
    in_flight: usize,
    manifests: usize,
    promotions: usize,
    airlock: PathBuf,
    /// Where `perf record` writes a profile of the replicas over each run's second half of
    /// promotions (`--perf DIR`), when set.
    perf: Option<PathBuf>,
    /// What `perf record` samples (`--perf-args`, split on spaces): `-F 999` (CPU time) unless
    /// set, e.g. `-e context-switches --call-graph dwarf` for where threads block.
    perf_args: Vec<String>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        runs: 5,
        in_flight: 8,
        manifests: 400,
        promotions: 200,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
        perf: None,
        perf_args: vec!["-F".into(), "999".into()],
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => options.runs = value()?.parse()?,
            "--in-flight" => options.in_flight = value()?.parse()?,
            "--manifests" => options.manifests = value()?.parse()?,
            "--promotions" => options.promotions = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            "--perf" => options.perf = Some(value()?.into()),
            "--perf-args" => {
                options.perf_args = value()?.split_whitespace().map(str::to_string).collect()
            }
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    if options.runs == 0 || options.in_flight == 0 || options.manifests == 0 {
        bail!("--runs, --in-flight and --manifests must be at least 1");
    }
    if options.promotions > options.manifests {
        bail!("--promotions cannot exceed --manifests (each promotion takes one pushed manifest)");
    }
    Ok(options)
}

/// CPU time of process `pid` so far (utime + stime), in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Ok(fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?)
}

/// Context switches so far of every thread of process `pid` (`voluntary_ctxt_switches` and
/// `nonvoluntary_ctxt_switches` of each `/proc/PID/task/TID/status`; a thread that ended meanwhile
/// no longer counts).
fn context_switches(pid: u32) -> Result<u64> {
    let mut sum = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(value) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                sum += value.trim().parse::<u64>()?;
            }
        }
    }
    Ok(sum)
}

/// The replicas' context switches so far.
fn replicas_switches(cluster: &Cluster) -> Result<u64> {
    cluster
        .replicas
        .iter()
        .map(|c| context_switches(c.id()))
        .sum()
}

/// CPU time of process `pid` and its children (PostgreSQL's backends under the postmaster).
fn tree_ticks(pid: u32) -> Result<u64> {
    let mut sum = cpu_ticks(pid)?;
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
    for child in children.split_whitespace() {
        // A backend that exited meanwhile no longer counts: the figure is a lower bound.
        sum += cpu_ticks(child.parse()?).unwrap_or(0);
    }
    Ok(sum)
}

/// The services' processes (PostgreSQL's postmaster and the S3 test server), from the variables
/// `scripts/test-services` and `scripts/test-s3` print; empty when unknown.
fn service_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    if let Ok(dir) = std::env::var("AIRLOCK_TEST_SERVICES_DIR")
        && let Ok(text) = std::fs::read_to_string(Path::new(&dir).join("pg/data/postmaster.pid"))
        && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
    {
        pids.push(pid);
    }
    if let Some(pid) = std::env::var("AIRLOCK_TEST_S3_PID")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        pids.push(pid);
    }
    pids
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub(crate) fn ticks_per_second() -> Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

/// One cluster: replicas and haproxy, a database and a bucket of their own.
struct Cluster {
    replicas: Vec<Child>,
    haproxy: Child,
    base: String,
    /// Dropped after the replicas have stopped (`Drop` runs before the fields drop).
    _database: BenchDatabase,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.haproxy.kill();
        let _ = self.haproxy.wait();
        for child in &mut self.replicas {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A bundle with the default bundle's common rules and gates that require nothing else.
pub(crate) fn permissive_bundle(dir: &Path) -> Result<PathBuf> {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    std::fs::create_dir_all(dir)?;
    for name in ["lib.rego", "rollback.rego", "data.json"] {
        std::fs::copy(policies.join(name), dir.join(name))?;
    }
    for stage in ["staging", "prod"] {
        std::fs::write(
            dir.join(format!("{stage}.rego")),
            format!(
                "package airlock.gates.{stage}\n\nimport data.airlock.lib.common_deny\n\n\
                 deny contains v if some v in common_deny\n"
            ),
        )?;
    }
    Ok(dir.to_path_buf())
}

/// Starts `airlock serve` in `dir` with `env`; returns the child and its base URL.
fn start_replica(binary: &Path, dir: &Path, env: &[(String, String)]) -> Result<(Child, String)> {
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {} (cargo build --release)", binary.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("airlock listening on ")
        .with_context(|| format!("unexpected airlock output {line:?}"))?
        .to_string();
    Ok((child, base))
}

async fn wait_ok(url: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not answer 200 within 30 s")
}

/// Starts `n` replicas on a fresh database and bucket, and haproxy in front of them.
async fn start_cluster(options: &Options, n: usize, run: usize) -> Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let admin_url = std::env::var("AIRLOCK_TEST_POSTGRES_URL").context(
        "AIRLOCK_TEST_POSTGRES_URL: start PostgreSQL with eval \"$(scripts/test-services)\"",
    )?;
    let s3 = airlock_store::test_support::TestS3::from_env()
        .context("the S3 test server: eval \"$(scripts/test-s3)\"")?;
    let database = BenchDatabase::create(&admin_url)?;
    let bucket = format!("airlock-bench-{}-{n}-{run}", random_suffix()?);
    s3.create_bucket(&bucket).await?;
    let lb_port = free_port()?;
    let stats_port = free_port()?;
    let base = format!("http://127.0.0.1:{lb_port}");
    let kek = dir.path().join("key-encryption-key");
    std::fs::write(&kek, "YmVuY2gta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=\n")?;
    let bundle = permissive_bundle(&dir.path().join("bundle"))?;
    let env: Vec<(String, String)> = [
        ("AIRLOCK_DATABASE_URL", database.url.clone()),
        ("AIRLOCK_BLOB_STORE", format!("s3://{bucket}")),
        ("AIRLOCK_S3__ENDPOINT", s3.endpoint.clone()),
        ("AIRLOCK_S3__PATH_STYLE", "true".into()),
        ("AIRLOCK_S3__ALLOW_HTTP", "true".into()),
        ("AIRLOCK_AUDIT__ORIGIN", ORIGIN.into()),
        ("AIRLOCK_KEY_ENCRYPTION_KEY_FILE", kek.display().to_string()),
        ("AIRLOCK_ACCESS__PUBLIC_URL", base.clone()),
        ("AIRLOCK_POLICY__BUNDLE", bundle.display().to_string()),
        ("AIRLOCK_INITIAL_ADMIN_PASSWORD", BENCH_PASSWORD.into()),
        ("AIRLOCK_LOG__LEVEL", "error".into()),
        // Bursts of promotions are what this measures, not an anomaly.
        (
            "AIRLOCK_ANOMALIES__PROMOTION_BURST__THRESHOLD",
            "1000000".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut replicas = Vec::new();
    let mut servers = String::new();
    for i in 1..=n {
        let data = dir.path().join(format!("r{i}"));
        if i > 1 {
            std::fs::create_dir_all(&data)?;
            for name in airlock_server::data_dir::KEY_FILES {
                let from = dir.path().join("r1").join(name);
                if from.exists() {
                    std::fs::copy(&from, data.join(name))?;
                }
            }
        }
        let (child, replica) = start_replica(&options.airlock, &data, &env)?;
        replicas.push(child);
        wait_ok(&format!("{replica}/readyz")).await?;
        servers.push_str(&format!(
            "    server r{i} {}\n",
            replica.trim_start_matches("http://")
        ));
    }
    let config = include_str!("../tests/it/replicas/haproxy.cfg")
        .replace("@LB_PORT@", &lb_port.to_string())
        .replace("@STATS_PORT@", &stats_port.to_string())
        .replace("    log stderr format raw local0 info\n", "")
        // Health checks every 2 s (as the Kubernetes readiness probe in deploy/), not the tests'
        // 200 ms: each /readyz writes a byte to the blob store, and three replicas checked five
        // times a second would be measured as the cost of replicas.
        .replace(
            "inter 200ms fastinter 100ms downinter 200ms",
            "inter 2s fastinter 1s downinter 2s",
        )
        + &servers;
    let config_path = dir.path().join("haproxy.cfg");
    std::fs::write(&config_path, config)?;
    let haproxy = Command::new("haproxy")
        .args(["-db", "-q", "-f"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start haproxy (Debian's haproxy package; scripts/setup installs it)")?;
    let cluster = Cluster {
        replicas,
        haproxy,
        base,
        _database: database,
        _dir: dir,
    };
    // haproxy needs its first health checks (rise 2) before it routes to every replica.
    tokio::time::sleep(Duration::from_millis(800)).await;
    wait_ok(&format!("{}/readyz", cluster.base)).await?;
    Ok(cluster)
}

/// What one phase measured.
#[derive(Clone, Copy)]
struct Phase {
    per_second: f64,
    /// Replica CPU per request, in milliseconds.
    cpu_ms: f64,
    /// haproxy CPU per request, in milliseconds.
    haproxy_cpu_ms: f64,
    /// PostgreSQL's and the S3 server's CPU per request, in milliseconds.
    services_cpu_ms: f64,
    /// Context switches of the replicas' threads per request (voluntary and not).
    switches: f64,
}

/// Runs `requests` (futures yielding Ok on success), `in_flight` at a time, measuring the cluster.
async fn measure<F>(
    cluster: &Cluster,
    ticks: f64,
    in_flight: usize,
    requests: Vec<F>,
) -> Result<Phase>
where
    F: std::future::Future<Output = Result<()>>,
{
    let count = requests.len() as f64;
    let services = service_pids();
    let cpu = |cluster: &Cluster| -> Result<[u64; 3]> {
        let mut replicas = 0;
        for child in &cluster.replicas {
            replicas += cpu_ticks(child.id())?;
        }
        let mut others = 0;
        for pid in &services {
            others += tree_ticks(*pid)?;
        }
        Ok([replicas, cpu_ticks(cluster.haproxy.id())?, others])
    };
    let before = cpu(cluster)?;
    let switches_before = replicas_switches(cluster)?;
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(requests)
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = cpu(cluster)?;
    let switches = replicas_switches(cluster)?.saturating_sub(switches_before) as f64 / count;
    if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
        return Err(err);
    }
    let per_request = |i: usize| after[i].saturating_sub(before[i]) as f64 / ticks * 1000.0 / count;
    Ok(Phase {
        per_second: count / elapsed,
        cpu_ms: per_request(0),
        haproxy_cpu_ms: per_request(1),
        services_cpu_ms: per_request(2),
        switches,
    })
}

/// One run against `n` replicas: (manifest pushes, promotions, the replicas' idle CPU in ms per
/// second).
async fn run_once(
    options: &Options,
    n: usize,
    run: usize,
    ticks: f64,
) -> Result<(Phase, Promotions, f64)> {
    let cluster = start_cluster(options, n, run).await?;
    let base = cluster.base.clone();
    let admin = client(Some(("admin", BENCH_PASSWORD)))?;
    let r = admin
        .post(format!("{base}/api/v1/users"))
        .json(&json!({"name": "pat", "password": PAT_PASSWORD}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("create pat: {} {}", r.status(), r.text().await?);
    }
    let r = admin
        .post(format!("{base}/api/v1/roles/grant"))
        .json(&json!({"principal": "pat", "role": "promoter", "scope": "staging"}))
        .send()
        .await?;
    if r.status() != 200 {
        bail!("grant promoter to pat: {} {}", r.status(), r.text().await?);
    }
    let pat = client(Some(("pat", PAT_PASSWORD)))?;
    let repo = "dev/bench/app";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"replica benchmark layer";
    let config_digest = push_small_blob(&admin, "airlock", &base, repo, config).await?;
    let layer_digest = push_small_blob(&admin, "airlock", &base, repo, layer).await?;
    // Every replica checks each password once (argon2id), then from its cache: warm them all.
    for _ in 0..n * 2 {
        admin.get(format!("{base}/v2/")).send().await?;
        pat.get(format!("{base}/api/v1/promotions")).send().await?;
    }

    let manifests: Vec<Vec<u8>> = (0..options.manifests)
        .map(|i| {
            serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
                "annotations": {"bench.index": i.to_string()},
            }))
            .expect("manifest JSON")
        })
        .collect();
    let digests: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(m))
            )
        })
        .collect();
    // What the replicas spend doing nothing (integrator rounds, health checks, housekeeping).
    let idle_before = replicas_ticks(&cluster)?;
    tokio::time::sleep(IDLE).await;
    let idle_ms_per_s = (replicas_ticks(&cluster)?.saturating_sub(idle_before)) as f64 / ticks
        * 1000.0
        / IDLE.as_secs_f64();
    let pushes = manifests
        .into_iter()
        .enumerate()
        .map(|(i, manifest)| {
            let (http, url) = (admin.clone(), format!("{base}/v2/{repo}/manifests/v{i}"));
            async move {
                let r = http
                    .put(url)
                    .header("content-type", OCI_MANIFEST)
                    .body(manifest)
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("manifest push: {} {}", r.status(), r.text().await?);
                }
                Ok(())
            }
        })
        .collect();
    let pushed = measure(&cluster, ticks, options.in_flight, pushes).await?;
    let mut promotions: Vec<_> = digests
        .into_iter()
        .take(options.promotions)
        .map(|digest| {
            let (http, url) = (pat.clone(), format!("{base}/api/v1/promotions"));
            async move {
                let r = http
                    .post(url)
                    .json(&json!({"source": repo, "reference": digest, "to": "staging"}))
                    .send()
                    .await?;
                if r.status() != 201 {
                    bail!("promotion: {} {}", r.status(), r.text().await?);
                }
                Ok(())
            }
        })
        .collect();
    // Two halves measured apart: the first pays each replica's warm-up (a connection's first
    // use of each statement prepares it, caches fill), the second is the steady state.
    let second_half = promotions.split_off(promotions.len() / 2);
    let first = measure(&cluster, ticks, options.in_flight, promotions).await?;
    let profile = match &options.perf {
        Some(dir) => Some(Profile::start(
            &cluster,
            &options.perf_args,
            &dir.join(format!("replicas-{n}-run-{}.data", run + 1)),
        )?),
        None => None,
    };
    let second = measure(&cluster, ticks, options.in_flight, second_half).await?;
    if let Some(profile) = profile {
        profile.stop()?;
    }
    drop(cluster);
    Ok((pushed, Promotions { first, second }, idle_ms_per_s))
}

/// `perf record` sampling the replicas (user and kernel stacks off; symbols only), so the two
/// cluster sizes can be compared symbol by symbol per promotion:
/// `perf report -i DIR/replicas-N-run-R.data --no-children --sort symbol`.
struct Profile {
    perf: Child,
}

impl Profile {
    /// Starts sampling every replica of `cluster` into `output`.
    fn start(cluster: &Cluster, args: &[String], output: &Path) -> Result<Self> {
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let pids: Vec<String> = cluster
            .replicas
            .iter()
            .map(|c| c.id().to_string())
            .collect();
        let perf = Command::new("perf")
            .args(["record", "--quiet"])
            .args(args)
            .arg("-o")
            .arg(output)
            .args(["-p", &pids.join(",")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start perf (Debian's linux-perf package)")?;
        // perf attaches to every thread before it samples.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self { perf })
    }

    /// Stops sampling (SIGINT, as Ctrl-C: perf writes its header and exits).
    fn stop(mut self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("could not stop perf ({status})");
        }
        self.perf.wait()?;
        Ok(())
    }
}

/// The promotions phase, in two halves measured apart.
#[derive(Clone, Copy)]
struct Promotions {
    first: Phase,
    second: Phase,
}

impl Promotions {
    /// Both halves as one phase (each half holds about as many requests).
    fn whole(&self) -> Phase {
        let (a, b) = (self.first, self.second);
        Phase {
            // Equal counts: the rate over both is the harmonic mean of the two rates.
            per_second: 2.0 / (1.0 / a.per_second + 1.0 / b.per_second),
            cpu_ms: (a.cpu_ms + b.cpu_ms) / 2.0,
            haproxy_cpu_ms: (a.haproxy_cpu_ms + b.haproxy_cpu_ms) / 2.0,
            services_cpu_ms: (a.services_cpu_ms + b.services_cpu_ms) / 2.0,
            switches: (a.switches + b.switches) / 2.0,
        }
    }
}

/// How long the idle CPU of the replicas is measured.
const IDLE: Duration = Duration::from_secs(3);

/// The replicas' CPU so far, in clock ticks.
fn replicas_ticks(cluster: &Cluster) -> Result<u64> {
    cluster.replicas.iter().map(|c| cpu_ticks(c.id())).sum()
}

/// Median and (min, max) of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

fn line(what: &str, values: &[f64], unit: &str, decimals: usize) -> String {
    let (median, min, max) = spread(values);
    format!("{what:<34} {median:>9.decimals$} {unit} ({min:.decimals$}-{max:.decimals$})")
}

/// `airlock-bench replicas`.
pub async fn run() -> Result<()> {
    let options = options()?;
    let ticks = ticks_per_second()?;
    println!(
        "1 vs 3 replicas behind haproxy on PostgreSQL + S3; {} runs alternating, {} in flight, {} manifest pushes then {} promotions per run",
        options.runs, options.in_flight, options.manifests, options.promotions
    );
    let mut figures: [Vec<(Phase, Phase)>; 2] = [Vec::new(), Vec::new()];
    let mut idle_figures: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut steady: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 0..options.runs {
        let order = if run % 2 == 0 { [1, 3] } else { [3, 1] };
        for n in order {
            let (pushed, halves, idle) = run_once(&options, n, run, ticks).await?;
            let promoted = halves.whole();
            println!(
                "run {} replicas={n}: idle replicas {idle:.1} ms CPU per second",
                run + 1
            );
            idle_figures[usize::from(n == 3)].push(idle);
            println!(
                "run {} replicas={n}: manifest pushes {:.0}/s (CPU each: replicas {:.2} ms, haproxy {:.2} ms, PostgreSQL + S3 {:.2} ms), promotions {:.0}/s (replicas {:.2} ms, haproxy {:.2} ms, PostgreSQL + S3 {:.2} ms)",
                run + 1,
                pushed.per_second,
                pushed.cpu_ms,
                pushed.haproxy_cpu_ms,
                pushed.services_cpu_ms,
                promoted.per_second,
                promoted.cpu_ms,
                promoted.haproxy_cpu_ms,
                promoted.services_cpu_ms
            );
            println!(
                "run {} replicas={n}: promotions, first half {:.0}/s (replicas {:.2} ms CPU each), second half {:.0}/s (replicas {:.2} ms)",
                run + 1,
                halves.first.per_second,
                halves.first.cpu_ms,
                halves.second.per_second,
                halves.second.cpu_ms
            );
            println!(
                "run {} replicas={n}: context switches of the replicas per request: manifest push {:.1}, promotion {:.1}",
                run + 1,
                pushed.switches,
                promoted.switches
            );
            steady[usize::from(n == 3)].push(halves.second.cpu_ms);
            figures[usize::from(n == 3)].push((pushed, promoted));
        }
    }
    println!("median (min-max) of {} runs:", options.runs);
    let mut medians = [[0.0; 4]; 2];
    for (i, n) in [1, 3].into_iter().enumerate() {
        let runs = &figures[i];
        let pick = |f: fn(&(Phase, Phase)) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        let rows = [
            (
                format!("{n} replica(s): manifest pushes"),
                pick(|r| r.0.per_second),
                "/s",
                0,
            ),
            (
                format!("{n} replica(s): CPU per manifest push"),
                pick(|r| r.0.cpu_ms),
                "ms",
                2,
            ),
            (
                format!("{n} replica(s): promotions"),
                pick(|r| r.1.per_second),
                "/s",
                0,
            ),
            (
                format!("{n} replica(s): CPU per promotion"),
                pick(|r| r.1.cpu_ms),
                "ms",
                2,
            ),
        ];
        for (j, (what, values, unit, decimals)) in rows.iter().enumerate() {
            println!("{}", line(what, values, unit, *decimals));
            medians[i][j] = spread(values).0;
        }
        println!(
            "{}",
            line(
                &format!("{n} replica(s): haproxy CPU per request"),
                &runs
                    .iter()
                    .map(|r| (r.0.haproxy_cpu_ms + r.1.haproxy_cpu_ms) / 2.0)
                    .collect::<Vec<_>>(),
                "ms",
                3
            )
        );
        println!(
            "{}",
            line(
                &format!("{n} replica(s): CPU per promotion, 2nd half"),
                &steady[i],
                "ms",
                2
            )
        );
        println!(
            "{}",
            line(
                &format!("{n} replica(s): context switches per promotion"),
                &runs.iter().map(|r| r.1.switches).collect::<Vec<_>>(),
                "",
                1
            )
        );
        println!(
            "{}",
            line(
                &format!("{n} replica(s): idle CPU, ms per second"),
                &idle_figures[i],
                "ms",
                1
            )
        );
        for (what, pick) in [
            (
                "manifest push",
                (|r: &(Phase, Phase)| r.0.services_cpu_ms) as fn(&(Phase, Phase)) -> f64,
            ),
            ("promotion", |r: &(Phase, Phase)| r.1.services_cpu_ms),
        ] {
            println!(
                "{}",
                line(
                    &format!("{n} replica(s): PostgreSQL + S3 CPU per {what}"),
                    &runs.iter().map(pick).collect::<Vec<_>>(),
                    "ms",
                    2
                )
            );
        }
    }
    println!(
        "3 vs 1 replicas (medians): manifest pushes {:.2}x, promotions {:.2}x throughput; CPU per manifest push {:.2}x, per promotion {:.2}x ({:.2}x in the second half)",
        medians[1][0] / medians[0][0],
        medians[1][2] / medians[0][2],
        medians[1][1] / medians[0][1],
        medians[1][3] / medians[0][3],
        spread(&steady[1]).0 / spread(&steady[0]).0,
    );
    Ok(())
}
