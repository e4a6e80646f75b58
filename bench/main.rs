//! `airlock-bench`: pushes and pulls a large blob and many small manifests against airlock and, in
//! the same run, against the CNCF distribution registry (`docker-registry` from Debian) when it is
//! installed, then prints throughput and the airlock/distribution ratio.
//!
//! Run: `cargo build --release --workspace && ./target/release/airlock-bench [--blob-mib 1024] [--manifests 1000]`
//! Both registries get a fresh data directory on the same disk and are driven by the same client
//! code over loopback, one at a time, so the ratio compares the servers, not the client.
//!
//! `airlock-bench audit [--events 100000] [--writers 8] [--verify-entries 1000000]` measures the audit log:
//! sustained appends (concurrent writers recording events, group-committed, with the integrator
//! hashing and signing checkpoints concurrently) and `airlock audit verify --data-dir` over a log
//! of the given size.
//!
//! `airlock-bench promote [--blob-mib 1024] [--sequential 200] [--concurrent 200]` measures
//! promotion latency and throughput for a 1 KiB and a large artifact, each with two verified
//! signatures, and in the same run `skopeo copy` of the same image between two repositories of
//! the distribution registry (see `promote.rs`).
//!
//! `airlock-bench pull [--blob-mib 1024] [--runs 5]` measures downloads with real clients: `curl`
//! GET of a large blob and `skopeo copy` of a large image to `dir:`, airlock against the
//! distribution registry, alternating, in the same run (see `pull.rs`).
//!
//! `airlock-bench uploads [--parallel 200] [--mib 100]` measures server memory (peak RSS) while many
//! clients upload at once, against airlock and the distribution registry (see `uploads.rs`).
//!
//! `airlock-bench engines [--runs 3] [--blob-mib 1024] [--manifests 1000] [--promotions 200]`
//! measures the distributed engines (PostgreSQL + S3) against the embedded default (SQLite + a
//! local directory) in the same run (see `engines.rs`).
//!
//! `airlock-bench replicas [--runs 5] [--in-flight 8] [--manifests 400] [--promotions 200]`
//! measures manifest pushes and promotions per second, and the CPU each costs, through haproxy in
//! front of one and of three replicas on PostgreSQL + S3 (see `replicas.rs`).
//!
//! `airlock-bench scale [--artifacts 10000,100000,1000000] [--pushes 300] [--promotions 200]`
//! loads N tiny artifacts through the store in-process, then measures pushes, promotions, paged
//! listings, `status`, start-up time, RSS and disk over HTTP at each size (see `scale.rs`).
//!
//! `airlock-bench verify [--artifacts 100000] [--images 10] [--samples 2000] [--rounds 3]` measures
//! deploy-time verification from the cache and from the records against the registry `HEAD`s a
//! registry-reading admission check pays, in the same run (see `verify.rs`).
//!
//! `airlock-bench tls [--blob-mib 1024] [--runs 3]` measures blob push/pull over TLS against
//! plaintext in the same run, and TLS handshakes per second (see `tls.rs`).

mod anomalies;
mod audit;
mod engines;
mod promote;
mod pull;
mod replicas;
mod scale;
mod services;
mod tls;
mod uploads;
mod verify;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

const BLOCK: usize = 1024 * 1024;
/// The `admin` password of the benchmarked airlock (access control stays on, as deployed).
const BENCH_PASSWORD: &str = "bench-admin-password-0123";

struct Options {
    blob_mib: usize,
    manifests: usize,
    airlock: PathBuf,
    registry: PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        blob_mib: 1024,
        manifests: 1000,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
        registry: PathBuf::from("/usr/bin/docker-registry"),
    };
    let mut args = std::env::args().skip(1).skip_while(|a| a == "audit");
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--blob-mib" => options.blob_mib = value()?.parse()?,
            "--manifests" => options.manifests = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            "--registry" => options.registry = value()?.into(),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    Ok(options)
}

/// A registry process on loopback with its own data directory.
struct Server {
    name: &'static str,
    base: String,
    /// Basic credentials to send, if the registry needs them.
    credentials: Option<(&'static str, &'static str)>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_airlock(binary: &Path) -> Result<Server> {
    start_airlock_with_env(binary, &[])
}

/// [`start_airlock`] with extra environment (e.g. `AIRLOCK_DATABASE_URL` for PostgreSQL).
fn start_airlock_with_env(binary: &Path, env: &[(String, String)]) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", BENCH_PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "start {} (build it with cargo build --release)",
                binary.display()
            )
        })?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("airlock listening on ")
        .with_context(|| format!("unexpected airlock output {line:?}"))?
        .to_string();
    Ok(Server {
        name: "airlock",
        base,
        credentials: Some(("admin", BENCH_PASSWORD)),
        child,
        _dir: dir,
    })
}

async fn start_distribution(binary: &Path) -> Result<Option<Server>> {
    if !binary.exists() {
        eprintln!(
            "NOTICE: {} not found; install Debian's docker-registry for the comparison",
            binary.display()
        );
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )?;
    let child = Command::new(binary)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let server = Server {
        name: "distribution",
        base,
        credentials: None,
        child,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{}/v2/", server.base))
            .send()
            .await
            .is_ok()
        {
            return Ok(Some(server));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("docker-registry did not come up")
}

/// The benchmark blob: `mib` distinct 1 MiB blocks generated on the fly.
fn blob_stream(
    base: &[u8],
    mib: usize,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + use<> {
    let base = base.to_vec();
    futures::stream::iter(0..mib).map(move |i| {
        let mut block = base.clone();
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Ok(bytes::Bytes::from(block))
    })
}

/// The first block of the benchmark blob of `mib` MiB, and the blob's digest.
async fn benchmark_blob(mib: usize) -> Result<(Vec<u8>, String)> {
    let base_block: Vec<u8> = (0..BLOCK).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut hasher = Sha256::new();
    let mut stream = std::pin::pin!(blob_stream(&base_block, mib));
    while let Some(block) = stream.next().await {
        hasher.update(block?);
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    Ok((base_block, digest))
}

fn location(base: &str, response: &reqwest::Response) -> Result<String> {
    let location = response
        .headers()
        .get("location")
        .context("no Location")?
        .to_str()?;
    Ok(if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    })
}

/// An HTTP client sending HTTP Basic `credentials` with every request, if given.
fn client(credentials: Option<(&str, &str)>) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some((user, password)) = credentials {
        use base64::Engine as _;
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        headers.insert(reqwest::header::AUTHORIZATION, value.parse()?);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// Pushes the `mib` MiB benchmark blob (digest `digest`) into `repo`: POST, one streaming
/// PATCH, PUT.
async fn push_streamed_blob(
    http: &reqwest::Client,
    server: &str,
    base: &str,
    repo: &str,
    base_block: &[u8],
    mib: usize,
    digest: &str,
) -> Result<()> {
    let start = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    let upload = location(base, &start)?;
    let patched = http
        .patch(&upload)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(blob_stream(base_block, mib)))
        .send()
        .await?;
    let upload = location(base, &patched)?;
    let separator = if upload.contains('?') { '&' } else { '?' };
    let done = http
        .put(format!("{upload}{separator}digest={digest}"))
        .send()
        .await?;
    if done.status() != 201 {
        bail!(
            "{server}: blob push failed with {}: {}",
            done.status(),
            done.text().await?
        );
    }
    Ok(())
}

/// Pushes a small blob into `repo` (POST, then PUT with the content); returns its digest.
async fn push_small_blob(
    http: &reqwest::Client,
    server: &str,
    base: &str,
    repo: &str,
    content: &[u8],
) -> Result<String> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(content)));
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    let upload = location(base, &r)?;
    let separator = if upload.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{upload}{separator}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(content.to_vec())
        .send()
        .await?;
    if r.status() != 201 {
        bail!("{server}: small blob push failed: {}", r.status());
    }
    Ok(digest)
}

struct Figures {
    push_blob: Duration,
    pull_blob: Duration,
    push_manifests: Duration,
    pull_manifests: Duration,
}

async fn run(
    server: &Server,
    options: &Options,
    base_block: &[u8],
    digest: &str,
) -> Result<Figures> {
    let http = client(server.credentials)?;
    let base = &server.base;
    let repo = "dev/bench/app";

    // 1. One large blob: POST, one streaming PATCH, PUT.
    let started = Instant::now();
    push_streamed_blob(
        &http,
        server.name,
        base,
        repo,
        base_block,
        options.blob_mib,
        digest,
    )
    .await?;
    let push_blob = started.elapsed();

    let started = Instant::now();
    let response = http
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await?;
    let mut received = 0usize;
    let mut stream = response.bytes_stream();
    while let Some(bytes) = stream.next().await {
        received += bytes?.len();
    }
    if received != options.blob_mib * BLOCK {
        bail!("{}: pulled {received} bytes", server.name);
    }
    let pull_blob = started.elapsed();

    // 2. Many small manifests, each tagged, referencing one config and one layer.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"small layer";
    let mut refs = Vec::new();
    for content in [config.as_slice(), layer.as_slice()] {
        let d = push_small_blob(&http, server.name, base, repo, content).await?;
        refs.push((d, content.len()));
    }
    let manifests: Vec<Vec<u8>> = (0..options.manifests)
        .map(|i| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": refs[0].0, "size": refs[0].1},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": refs[1].0, "size": refs[1].1}],
                "annotations": {"bench.index": i.to_string()},
            }))
            .expect("manifest JSON")
        })
        .collect();
    let started = Instant::now();
    for (i, manifest) in manifests.iter().enumerate() {
        let r = http
            .put(format!("{base}/v2/{repo}/manifests/v{i}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await?;
        if r.status() != 201 {
            bail!(
                "{}: manifest push failed: {} {}",
                server.name,
                r.status(),
                r.text().await?
            );
        }
    }
    let push_manifests = started.elapsed();
    let started = Instant::now();
    for i in 0..options.manifests {
        let r = http
            .get(format!("{base}/v2/{repo}/manifests/v{i}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await?;
        if r.status() != 200 {
            bail!("{}: manifest pull failed: {}", server.name, r.status());
        }
        r.bytes().await?;
    }
    let pull_manifests = started.elapsed();
    Ok(Figures {
        push_blob,
        pull_blob,
        push_manifests,
        pull_manifests,
    })
}

fn report(name: &str, options: &Options, f: &Figures) {
    let mib = options.blob_mib as f64;
    let n = options.manifests as f64;
    println!(
        "{name:<13} blob push {:>8.1} MiB/s  blob pull {:>8.1} MiB/s  manifest push {:>7.0}/s  manifest pull {:>7.0}/s",
        mib / f.push_blob.as_secs_f64(),
        mib / f.pull_blob.as_secs_f64(),
        n / f.push_manifests.as_secs_f64(),
        n / f.pull_manifests.as_secs_f64(),
    );
}

/// What `airlock-bench --help` prints: each benchmark with its options (defaults in each module).
const USAGE: &str = "\
usage: airlock-bench [BENCHMARK] [OPTIONS]   (figures and commands: docs/benchmarks.md)

  (none)     blob and manifest push/pull against docker-registry
             --blob-mib N --manifests N --airlock PATH --registry PATH
  audit      sustained audit appends, and `audit verify` of a large log
             --events N --writers N --verify-entries N --airlock PATH
  promote    promotion latency, throughput and CPU, against `skopeo copy`
             --blob-mib N --sequential N --concurrent N --in-flight N --skopeo-runs N
             --airlock PATH --registry PATH --skopeo PATH --server-log FILTER
  pull       curl GET and skopeo pulls against docker-registry
             --blob-mib N --runs N --airlock PATH --registry PATH --skopeo PATH --curl PATH
  uploads    server memory while many clients upload at once
             --parallel N --mib N --airlock PATH --registry PATH
  engines    PostgreSQL + S3 against the embedded default
             --runs N --blob-mib N --manifests N --promotions N --in-flight N
             --audit-events N --audit-writers N --airlock PATH --postgres-url URL
             --server-log FILTER
  replicas   one replica against three behind haproxy, on PostgreSQL + S3
             --runs N --in-flight N --manifests N --promotions N --airlock PATH
             --perf DIR --perf-args ARGS
  scale      10k to 1M artifacts: pushes, promotions, listings, status, start-up
             --artifacts N,N,... --pushes N --promotions N --samples N --startups N
             --keep DIR --airlock PATH
  anomalies  what the anomaly rules add to the request path
             --samples N --preload N --quarantines N
  tls        blob transfer over TLS against plaintext, handshakes per second
             --blob-mib N --runs N --handshake-secs N --airlock PATH
";

#[tokio::main]
async fn main() -> Result<()> {
    // aws-lc-rs is the one crypto provider of the whole build.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if std::env::args()
        .skip(1)
        .any(|arg| matches!(arg.as_str(), "--help" | "-h" | "help"))
    {
        print!("{USAGE}");
        return Ok(());
    }
    match std::env::args().nth(1).as_deref() {
        Some("tls") => return tls::run().await,
        Some("audit") => return audit::run().await,
        Some("engines") => return engines::run().await,
        Some("anomalies") => return anomalies::run().await,
        Some("promote") => return promote::run().await,
        Some("pull") => return pull::run().await,
        Some("uploads") => return uploads::run().await,
        Some("replicas") => return replicas::run().await,
        Some("scale") => return scale::run().await,
        Some("verify") => return verify::run().await,
        _ => {}
    }
    let options = options()?;
    let (base_block, digest) = benchmark_blob(options.blob_mib).await?;
    println!(
        "blob {} MiB, {} manifests; each registry runs alone with a fresh data directory",
        options.blob_mib, options.manifests
    );

    let airlock = start_airlock(&options.airlock)?;
    let ours = run(&airlock, &options, &base_block, &digest).await?;
    drop(airlock);
    report("airlock", &options, &ours);

    let Some(distribution) = start_distribution(&options.registry).await? else {
        return Ok(());
    };
    let theirs = run(&distribution, &options, &base_block, &digest).await?;
    drop(distribution);
    report("distribution", &options, &theirs);

    // Throughput ratio airlock/distribution: above 1.0 means airlock is faster.
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "ratio airlock/distribution (throughput, >1 = airlock faster): blob push {:.2}  blob pull {:.2}  manifest push {:.2}  manifest pull {:.2}",
        ratio(ours.push_blob, theirs.push_blob),
        ratio(ours.pull_blob, theirs.pull_blob),
        ratio(ours.push_manifests, theirs.push_manifests),
        ratio(ours.pull_manifests, theirs.pull_manifests),
    );
    Ok(())
}
