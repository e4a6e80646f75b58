//! The promotion benchmark: how long a promotion dev -> staging takes through the default policy
//! bundle, for a 1 KiB artifact and a large one (default 1 GiB), and how that compares with the
//! way teams promote today, `skopeo copy` between two repositories of the distribution registry.
//!
//! For each size class one layer blob is pushed, then N distinct images referencing it (each with
//! its own small config), each signed twice in cosign's tag scheme with two P-256 keys in the
//! keyring, so every gate decision sees two verified signatures. Each image is then promoted by
//! `pat` (a promoter) with `POST /api/v1/promotions`, timed as the client sees it: from sending
//! the request to having read the whole response. A first set goes one at a time (latency
//! percentiles), alternating between the size classes so that both see the same database size
//! and the same load from anything else on the machine; a second set with several requests in
//! flight (promotions per second), in halves ordered A B B A for the same reason. The server's
//! own mean request time and gate evaluation time come from its `/metrics`; its CPU time per
//! promotion (user + system of the server process, from `/proc/PID/stat`, over each phase divided
//! by the promotions of the phase) from the kernel.
//!
//! The peer runs afterwards in the same process: `docker-registry` with a fresh data directory,
//! the same image (layer, config, manifest) pushed into `dev/app-<class>`, and `skopeo copy` of it
//! into a new `prod/...` repository, timed as a process run (median of several runs). skopeo
//! reuses blobs it knows about: when its blob-info cache remembers that the registry holds the
//! layer, it asks the registry to mount it across repositories instead of copying the bytes. So it
//! is measured twice: with an empty cache (a fresh CI job: every byte flows through skopeo) and
//! with a cache that knows the source (the layer is mounted, only config and manifest are copied).
//! As root, skopeo keeps its cache in /var/lib/containers/cache whatever HOME says, so the runs
//! are made as `nobody` (with `setpriv`) with a HOME, runtime directory and auth file of their
//! own (so a root-only `/run/containers` does not stop them); the system cache is untouched.
//!
//! `--server-log FILTER` sets airlock's log filter, for profiling: with
//! `warn,airlock_server::app=info,sqlx::query=debug` every statement is logged (on stderr) in the
//! span of its request, so the statements of one promotion request can be counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use airlock_core::Digest;
use airlock_trust::cosign::{
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SimpleSigningPayload,
};
use airlock_trust::keys::SigningKey;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{BLOCK, push_small_blob, push_streamed_blob};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Passwords of the users the benchmark creates.
const KIM_PASSWORD: &str = "bench-keyring-phrase-0123";
const PAT_PASSWORD: &str = "bench-release-phrase-0123";

struct Options {
    blob_mib: usize,
    sequential: usize,
    concurrent: usize,
    in_flight: usize,
    skopeo_runs: usize,
    airlock: PathBuf,
    registry: PathBuf,
    skopeo: PathBuf,
    /// The server's log filter (`AIRLOCK_LOG__LEVEL`), for profiling.
    server_log: Option<String>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        blob_mib: 1024,
        sequential: 200,
        concurrent: 200,
        in_flight: 8,
        skopeo_runs: 3,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
        registry: PathBuf::from("/usr/bin/docker-registry"),
        skopeo: PathBuf::from("/usr/bin/skopeo"),
        server_log: None,
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--blob-mib" => options.blob_mib = value()?.parse()?,
            "--sequential" => options.sequential = value()?.parse()?,
            "--concurrent" => options.concurrent = value()?.parse()?,
            "--in-flight" => options.in_flight = value()?.parse()?,
            "--skopeo-runs" => options.skopeo_runs = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            "--registry" => options.registry = value()?.into(),
            "--skopeo" => options.skopeo = value()?.into(),
            "--server-log" => options.server_log = Some(value()?),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    if [
        options.blob_mib,
        options.sequential,
        options.concurrent,
        options.in_flight,
        options.skopeo_runs,
    ]
    .contains(&0)
    {
        bail!("every count must be at least 1");
    }
    Ok(options)
}

/// The layer every image of a size class references.
enum LayerContent {
    /// Held in memory (the 1 KiB class).
    Small(Vec<u8>),
    /// The streamed benchmark blob of `mib` MiB generated from its first block.
    Streamed { base_block: Vec<u8>, mib: usize },
}

/// One size class: its name in repository paths, how to print it, and its layer.
pub(crate) struct SizeClass {
    /// `1kib`, `1gib` (a repository path segment).
    slug: String,
    /// `1 KiB`, `1 GiB`.
    label: String,
    layer: LayerContent,
    layer_digest: String,
    layer_size: u64,
}

impl SizeClass {
    pub(crate) fn small() -> Self {
        let content: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 251) as u8).collect();
        let layer_digest = format!("sha256:{}", hex::encode(Sha256::digest(&content)));
        SizeClass {
            slug: "1kib".into(),
            label: "1 KiB".into(),
            layer_size: content.len() as u64,
            layer: LayerContent::Small(content),
            layer_digest,
        }
    }

    async fn large(mib: usize) -> Result<Self> {
        let (base_block, layer_digest) = crate::benchmark_blob(mib).await?;
        let (slug, label) = if mib.is_multiple_of(1024) {
            (format!("{}gib", mib / 1024), format!("{} GiB", mib / 1024))
        } else {
            (format!("{mib}mib"), format!("{mib} MiB"))
        };
        Ok(SizeClass {
            slug,
            label,
            layer: LayerContent::Streamed { base_block, mib },
            layer_digest,
            layer_size: (mib * BLOCK) as u64,
        })
    }

    async fn push_layer(
        &self,
        http: &reqwest::Client,
        server: &str,
        base: &str,
        repo: &str,
    ) -> Result<()> {
        match &self.layer {
            LayerContent::Small(content) => {
                push_small_blob(http, server, base, repo, content).await?;
            }
            LayerContent::Streamed { base_block, mib } => {
                push_streamed_blob(
                    http,
                    server,
                    base,
                    repo,
                    base_block,
                    *mib,
                    &self.layer_digest,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Pushes image `n` of `class` (its own config, the shared layer) as `repo:tag`; returns the
/// manifest digest.
async fn push_image(
    http: &reqwest::Client,
    server: &str,
    base: &str,
    repo: &str,
    tag: &str,
    class: &SizeClass,
    n: usize,
) -> Result<String> {
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "n": n}))?;
    let config_digest = push_small_blob(http, server, base, repo, &config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": class.layer_digest, "size": class.layer_size}],
    }))?;
    put_manifest(http, server, base, repo, tag, &manifest).await?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(&manifest))))
}

async fn put_manifest(
    http: &reqwest::Client,
    server: &str,
    base: &str,
    repo: &str,
    reference: &str,
    manifest: &[u8],
) -> Result<()> {
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_vec())
        .send()
        .await?;
    if r.status() != 201 {
        bail!(
            "{server}: manifest push {repo}:{reference} failed: {} {}",
            r.status(),
            r.text().await?
        );
    }
    Ok(())
}

/// Signs `subject` in `repo` with every key, as `cosign sign --key` does in the tag scheme: the
/// simple-signing payload blob, and a `sha256-<hex>.sig` manifest with one layer per signature.
async fn push_signatures(
    http: &reqwest::Client,
    base: &str,
    host: &str,
    repo: &str,
    subject: &str,
    keys: &[SigningKey],
    empty_config: &str,
) -> Result<()> {
    let payload = SimpleSigningPayload::new(format!("{host}/{repo}"), Digest::from_str(subject)?);
    let mut layers = Vec::new();
    let mut payload_bytes = Vec::new();
    for key in keys {
        let (bytes, signature) = airlock_trust::verify::sign_cosign_payload(key, &payload);
        layers.push(json!({
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "digest": format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            "size": bytes.len(),
            "annotations": {SIGNATURE_ANNOTATION: signature},
        }));
        payload_bytes = bytes;
    }
    push_small_blob(http, "airlock", base, repo, &payload_bytes).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": empty_config, "size": 2},
        "layers": layers,
    }))?;
    let hex = subject.strip_prefix("sha256:").context("subject digest")?;
    put_manifest(
        http,
        "airlock",
        base,
        repo,
        &format!("sha256-{hex}.sig"),
        &manifest,
    )
    .await
}

/// Sends `body` to `url` as the client's principal; fails unless the status is `expected`.
async fn post_json(http: &reqwest::Client, url: &str, body: Value, expected: u16) -> Result<Value> {
    let r = http.post(url).json(&body).send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    if status != expected {
        bail!("POST {url} {body}: {status} {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Latency percentiles (nearest rank) of a set of requests.
pub(crate) struct Latencies(Vec<Duration>);

impl Latencies {
    pub(crate) fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Latencies(samples)
    }

    pub(crate) fn quantile(&self, q: f64) -> Duration {
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }

    fn mean(&self) -> Duration {
        self.0.iter().sum::<Duration>() / self.0.len().max(1) as u32
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sums and counts of the server's own timings, from `/metrics`.
#[derive(Default, Clone, Copy)]
struct ServerTimes {
    policy_sum: f64,
    policy_count: f64,
    api_post_sum: f64,
    api_post_count: f64,
}

impl ServerTimes {
    async fn scrape(http: &reqwest::Client, base: &str) -> Result<Self> {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let mut times = ServerTimes::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let api_post = name.contains("route=\"api\"") && name.contains("method=\"POST\"");
            match name.split('{').next() {
                Some("airlock_policy_evaluation_seconds_sum") => times.policy_sum += value,
                Some("airlock_policy_evaluation_seconds_count") => times.policy_count += value,
                Some("airlock_http_request_duration_seconds_sum") if api_post => {
                    times.api_post_sum += value
                }
                Some("airlock_http_request_duration_seconds_count") if api_post => {
                    times.api_post_count += value
                }
                _ => {}
            }
        }
        Ok(times)
    }

    /// Mean gate evaluation and mean server-side request time (ms) between two scrapes.
    fn means_since(&self, before: &ServerTimes) -> (f64, f64) {
        let mean = |sum: f64, count: f64| {
            if count > 0.0 {
                sum / count * 1000.0
            } else {
                0.0
            }
        };
        (
            mean(
                self.policy_sum - before.policy_sum,
                self.policy_count - before.policy_count,
            ),
            mean(
                self.api_post_sum - before.api_post_sum,
                self.api_post_count - before.api_post_count,
            ),
        )
    }
}

/// What airlock did for one size class.
struct AirlockFigures {
    sequential: Latencies,
    concurrent: Latencies,
    concurrent_wall: Duration,
}

/// The server's own view of the promotions (all size classes together): the timings of the
/// sequential ones, and its CPU time in each phase.
struct ServerView {
    /// Mean gate evaluation (ms), from `airlock_policy_evaluation_seconds`.
    policy_mean_ms: f64,
    /// Mean time the server spent on a promotion request (ms), from
    /// `airlock_http_request_duration_seconds`.
    request_mean_ms: f64,
    /// The server process's CPU time (user + system, from `/proc/PID/stat`) over the
    /// one-at-a-time phase, per promotion (ms).
    cpu_sequential_ms: f64,
    /// The same over the phase with several requests in flight.
    cpu_concurrent_ms: f64,
}

/// The benchmarked airlock with its three principals.
pub(crate) struct Airlock {
    server: crate::Server,
    host: String,
    admin: reqwest::Client,
    pat: reqwest::Client,
    keys: Vec<SigningKey>,
}

async fn start_airlock(options: &Options) -> Result<Airlock> {
    let env: Vec<(String, String)> = options
        .server_log
        .iter()
        .map(|filter| ("AIRLOCK_LOG__LEVEL".to_string(), filter.clone()))
        .collect();
    Airlock::set_up(crate::start_airlock_with_env(&options.airlock, &env)?).await
}

impl Airlock {
    /// Creates the benchmark's principals and signing keys on a started airlock.
    pub(crate) async fn set_up(server: crate::Server) -> Result<Airlock> {
        let base = server.base.clone();
        let host = base
            .strip_prefix("http://")
            .context("airlock base URL")?
            .to_string();
        let admin = crate::client(server.credentials)?;
        // The admin creates the users and grants the roles; nobody grants themselves a role.
        for (name, password, role) in [
            ("kim", KIM_PASSWORD, "key-admin"),
            ("pat", PAT_PASSWORD, "promoter"),
        ] {
            post_json(
                &admin,
                &format!("{base}/api/v1/users"),
                json!({"name": name, "password": password}),
                201,
            )
            .await?;
            post_json(
                &admin,
                &format!("{base}/api/v1/roles/grant"),
                json!({"principal": name, "role": role, "scope": "*"}),
                200,
            )
            .await?;
        }
        let kim = crate::client(Some(("kim", KIM_PASSWORD)))?;
        let keys = vec![SigningKey::generate_p256(), SigningKey::generate_p256()];
        for (i, key) in keys.iter().enumerate() {
            post_json(
                &kim,
                &format!("{base}/api/v1/keys"),
                json!({"name": format!("bench-signer-{i}"), "public_key": key.public_key().to_pem(),
                   "purposes": ["sign"], "scope": ["*"]}),
                201,
            )
            .await?;
        }
        let pat = crate::client(Some(("pat", PAT_PASSWORD)))?;
        Ok(Airlock {
            server,
            host,
            admin,
            pat,
            keys,
        })
    }
}

/// One timed promotion of `digest` from `source` to staging; checks that it was promoted.
async fn promote_once(
    http: &reqwest::Client,
    base: &str,
    source: &str,
    digest: &str,
) -> Result<Duration> {
    let body = json!({"source": source, "reference": digest, "to": "staging"});
    let started = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/promotions"))
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.bytes().await?;
    let elapsed = started.elapsed();
    let reply: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
    if status != 201 || reply["promotion"]["state"] != "promoted" {
        bail!(
            "promotion of {source}@{digest} was not promoted: {status} {}",
            String::from_utf8_lossy(&text)
        );
    }
    Ok(elapsed)
}

/// Pushes the layer of `class` and `total` images referencing it, each signed twice; checks
/// that the first one has two verified signatures. Returns the repository and image digests.
pub(crate) async fn prepare_class(
    airlock: &Airlock,
    class: &SizeClass,
    total: usize,
) -> Result<(String, Vec<String>)> {
    let base = &airlock.server.base;
    let admin = &airlock.admin;
    let repo = format!("dev/bench/{}", class.slug);
    let started = Instant::now();
    class.push_layer(admin, "airlock", base, &repo).await?;
    let empty_config = push_small_blob(admin, "airlock", base, &repo, b"{}").await?;
    let mut digests = Vec::with_capacity(total);
    for n in 0..total {
        let digest = push_image(admin, "airlock", base, &repo, &format!("v{n}"), class, n).await?;
        push_signatures(
            admin,
            base,
            &airlock.host,
            &repo,
            &digest,
            &airlock.keys,
            &empty_config,
        )
        .await?;
        digests.push(digest);
    }
    println!(
        "airlock {}: pushed the layer and {total} images, each signed twice, in {:.1} s",
        class.label,
        started.elapsed().as_secs_f64()
    );
    let evidence: Value = admin
        .get(format!(
            "{base}/api/v1/artifacts/{repo}@{}/evidence",
            digests[0]
        ))
        .send()
        .await?
        .json()
        .await?;
    let verified = evidence["evidence"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| e["status"] == "verified" && e["kind"] == "signature")
                .count()
        })
        .unwrap_or(0);
    if verified != 2 {
        bail!(
            "{repo}@{} has {verified} verified signatures, expected 2: {evidence}",
            digests[0]
        );
    }
    Ok((repo, digests))
}

/// Promotes `digests` from `repo` with `in_flight` requests at a time; returns each request's
/// latency and the wall time of the whole set.
pub(crate) async fn promote_concurrently(
    airlock: &Airlock,
    repo: &str,
    digests: &[String],
    in_flight: usize,
) -> Result<(Vec<Duration>, Duration)> {
    let base = &airlock.server.base;
    let started = Instant::now();
    let latencies = futures::stream::iter(digests)
        .map(|digest| promote_once(&airlock.pat, base, repo, digest))
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok((latencies, started.elapsed()))
}

/// Prepares every size class, then promotes: one at a time, alternating between the classes so
/// that they share the same conditions (database size, load from other work on the machine);
/// then with several in flight, in the order A B B A by halves for the same reason.
async fn bench_airlock(
    airlock: &Airlock,
    classes: &[SizeClass],
    options: &Options,
) -> Result<(Vec<AirlockFigures>, ServerView)> {
    let base = &airlock.server.base;
    let admin = &airlock.admin;
    let total = options.sequential + options.concurrent;
    let mut prepared = Vec::new();
    for class in classes {
        prepared.push(prepare_class(airlock, class, total).await?);
    }

    // The promoter's credentials are checked once with argon2id and then cached; warm that.
    let whoami = airlock
        .pat
        .get(format!("{base}/api/v1/whoami"))
        .send()
        .await?;
    if !whoami.status().is_success() {
        bail!("whoami as pat: {}", whoami.status());
    }

    let pid = airlock.server.child.id();
    let tick_ms = 1000.0 / crate::replicas::ticks_per_second()?;

    // (a) One at a time.
    let before = ServerTimes::scrape(admin, base).await?;
    let ticks_before = crate::replicas::cpu_ticks(pid)?;
    let mut sequential: Vec<Vec<Duration>> = classes.iter().map(|_| Vec::new()).collect();
    for i in 0..options.sequential {
        let mut order: Vec<usize> = (0..classes.len()).collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for c in order {
            let (repo, digests) = &prepared[c];
            sequential[c].push(promote_once(&airlock.pat, base, repo, &digests[i]).await?);
        }
    }
    let ticks_sequential = crate::replicas::cpu_ticks(pid)? - ticks_before;
    let after = ServerTimes::scrape(admin, base).await?;
    let (policy_mean_ms, request_mean_ms) = after.means_since(&before);

    // (b) Several in flight.
    let half = options.sequential + options.concurrent / 2;
    let mut concurrent: Vec<(Vec<Duration>, Duration)> = classes
        .iter()
        .map(|_| (Vec::new(), Duration::ZERO))
        .collect();
    let mut order: Vec<(usize, std::ops::Range<usize>)> = (0..classes.len())
        .map(|c| (c, options.sequential..half))
        .collect();
    order.extend((0..classes.len()).rev().map(|c| (c, half..total)));
    let ticks_before = crate::replicas::cpu_ticks(pid)?;
    for (c, range) in order {
        let (repo, digests) = &prepared[c];
        let (latencies, wall) =
            promote_concurrently(airlock, repo, &digests[range], options.in_flight).await?;
        concurrent[c].0.extend(latencies);
        concurrent[c].1 += wall;
    }
    let ticks_concurrent = crate::replicas::cpu_ticks(pid)? - ticks_before;

    // The promoted artifacts are in staging, and so is their layer, without a copy.
    for (class, (_, digests)) in classes.iter().zip(&prepared) {
        let staging = format!("staging/bench/{}", class.slug);
        let manifest = admin
            .get(format!("{base}/v2/{staging}/manifests/{}", digests[0]))
            .header("accept", OCI_MANIFEST)
            .send()
            .await?;
        let layer = admin
            .head(format!("{base}/v2/{staging}/blobs/{}", class.layer_digest))
            .send()
            .await?;
        if manifest.status() != 200 || layer.status() != 200 {
            bail!(
                "{staging}@{}: manifest {}, layer {} after promotion",
                digests[0],
                manifest.status(),
                layer.status()
            );
        }
    }
    let figures = sequential
        .into_iter()
        .zip(concurrent)
        .map(|(sequential, (concurrent, wall))| AirlockFigures {
            sequential: Latencies::new(sequential),
            concurrent: Latencies::new(concurrent),
            concurrent_wall: wall,
        })
        .collect();
    Ok((
        figures,
        ServerView {
            policy_mean_ms,
            request_mean_ms,
            cpu_sequential_ms: ticks_sequential as f64 * tick_ms
                / (options.sequential * classes.len()) as f64,
            cpu_concurrent_ms: ticks_concurrent as f64 * tick_ms
                / (options.concurrent * classes.len()) as f64,
        },
    ))
}

/// How skopeo runs: as the current user, or, as root, as `nobody` through `setpriv` (so that
/// its blob-info cache follows HOME instead of living in /var/lib/containers/cache).
///
/// Every path skopeo would otherwise derive from the user is given explicitly, inside a home the
/// run owns ([`SkopeoHome`]): `HOME`, `XDG_RUNTIME_DIR` and the auth file (`REGISTRY_AUTH_FILE`
/// and `--authfile`). Without them skopeo running as `nobody` looks for its auth file under
/// `/run/containers/<uid>` and fails where that directory is root-only.
pub(crate) struct Skopeo {
    binary: PathBuf,
    setpriv: Option<PathBuf>,
}

/// The uid and gid of `nobody`, whom skopeo runs as when the benchmark runs as root.
const NOBODY: u32 = 65534;

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A home directory for skopeo runs (they share its blob-info cache), with the runtime directory
/// and auth file skopeo uses, all owned by the user skopeo runs as.
pub(crate) struct SkopeoHome {
    dir: tempfile::TempDir,
}

impl SkopeoHome {
    /// `HOME`.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `XDG_RUNTIME_DIR`.
    fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `REGISTRY_AUTH_FILE` and `--authfile`.
    fn auth_file(&self) -> PathBuf {
        self.dir.path().join("auth.json")
    }
}

impl Skopeo {
    pub(crate) fn find(binary: &Path) -> Result<Option<Self>> {
        if !binary.exists() {
            eprintln!(
                "NOTICE: {} not found; install skopeo for the comparison",
                binary.display()
            );
            return Ok(None);
        }
        let setpriv = if effective_uid() == Some(0) {
            let setpriv = PathBuf::from("/usr/bin/setpriv");
            if !setpriv.exists() {
                bail!(
                    "running as root, skopeo would share /var/lib/containers/cache between runs; install util-linux (setpriv) or run as another user"
                );
            }
            Some(setpriv)
        } else {
            None
        };
        Ok(Some(Skopeo {
            binary: binary.to_path_buf(),
            setpriv,
        }))
    }

    /// A home for skopeo runs that share one blob-info cache, with an empty auth file and a
    /// runtime directory (mode 0700), owned by the user skopeo runs as.
    pub(crate) fn home(&self) -> Result<SkopeoHome> {
        use std::os::unix::fs::PermissionsExt;
        let home = SkopeoHome {
            dir: tempfile::tempdir()?,
        };
        std::fs::create_dir(home.runtime_dir())?;
        std::fs::set_permissions(home.runtime_dir(), std::fs::Permissions::from_mode(0o700))?;
        std::fs::write(home.auth_file(), "{\"auths\":{}}\n")?;
        std::fs::set_permissions(home.auth_file(), std::fs::Permissions::from_mode(0o600))?;
        if self.setpriv.is_some() {
            for path in [
                home.path().to_path_buf(),
                home.runtime_dir(),
                home.auth_file(),
            ] {
                std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY))
                    .with_context(|| format!("chown {} to nobody", path.display()))?;
            }
        }
        Ok(home)
    }

    /// A directory skopeo may write into (`dir:` targets), removed when dropped.
    pub(crate) fn scratch_dir(&self) -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        if self.setpriv.is_some() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY))?;
        }
        Ok(dir)
    }

    /// Times one `skopeo copy` from `source` to `target` (docker:// references) with `home`.
    async fn copy(&self, home: &SkopeoHome, source: &str, target: &str) -> Result<Duration> {
        self.run_copy(
            home,
            &[
                "--src-tls-verify=false".into(),
                "--dest-tls-verify=false".into(),
                format!("docker://{source}"),
                format!("docker://{target}"),
            ],
        )
        .await
    }

    /// Times one `skopeo copy <args>` with `home`, failing with skopeo's error output.
    pub(crate) async fn run_copy(&self, home: &SkopeoHome, args: &[String]) -> Result<Duration> {
        let mut command = match &self.setpriv {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args([
                    format!("--reuid={NOBODY}"),
                    format!("--regid={NOBODY}"),
                    "--clear-groups".into(),
                    "--".into(),
                ])
                .arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", home.runtime_dir())
            .env("REGISTRY_AUTH_FILE", home.auth_file())
            .arg("copy")
            .arg("--authfile")
            .arg(home.auth_file())
            .args(args);
        let (elapsed, output) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let output = command.output();
            (started.elapsed(), output)
        })
        .await?;
        let output = output.context("run skopeo")?;
        if !output.status.success() {
            bail!(
                "skopeo copy {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(elapsed)
    }
}

/// skopeo copy medians for one size class: with an empty blob-info cache, and with one that
/// knows where the layer is.
struct SkopeoFigures {
    cold: Duration,
    warm: Duration,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn bench_skopeo_class(
    distribution: &crate::Server,
    skopeo: &Skopeo,
    class: &SizeClass,
    options: &Options,
) -> Result<SkopeoFigures> {
    let http = crate::client(None)?;
    let base = &distribution.base;
    let host = base.strip_prefix("http://").context("registry URL")?;
    let repo = format!("dev/app-{}", class.slug);
    class.push_layer(&http, "distribution", base, &repo).await?;
    push_image(&http, "distribution", base, &repo, "1", class, 0).await?;
    let source = format!("{host}/{repo}:1");

    // A fresh CI job: nothing cached, every byte of the layer goes through skopeo.
    let mut cold = Vec::new();
    for run in 1..=options.skopeo_runs {
        let home = skopeo.home()?;
        let target = format!("{host}/prod/app-{}-cold{run}:1", class.slug);
        cold.push(skopeo.copy(&home, &source, &target).await?);
    }
    // A cache that knows the source repository holds the layer (as after pushing it with skopeo
    // from the same machine): skopeo asks the registry to mount the layer across repositories.
    let home = skopeo.home()?;
    let primer = format!("{host}/prod/app-{}-primer:1", class.slug);
    skopeo.copy(&home, &source, &primer).await?;
    let mut warm = Vec::new();
    for run in 1..=options.skopeo_runs {
        let target = format!("{host}/prod/app-{}-warm{run}:1", class.slug);
        warm.push(skopeo.copy(&home, &source, &target).await?);
    }
    println!(
        "skopeo copy {}: empty cache {} ms, cache knows the layer {} ms",
        class.label,
        cold.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join("/"),
        warm.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join("/"),
    );
    Ok(SkopeoFigures {
        cold: median(cold),
        warm: median(warm),
    })
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the promotion benchmark described in the module documentation.
pub async fn run() -> Result<()> {
    let options = options()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "promotion benchmark: {} sequential + {} concurrent ({} in flight) promotions per size class; {cores} cores, load average {} at start",
        options.sequential,
        options.concurrent,
        options.in_flight,
        load_average()
    );
    let classes = [
        SizeClass::small(),
        SizeClass::large(options.blob_mib).await?,
    ];

    let airlock = start_airlock(&options).await?;
    let (ours, server) = bench_airlock(&airlock, &classes, &options).await?;
    for (class, figures) in classes.iter().zip(&ours) {
        println!(
            "airlock {}: one at a time p50 {:.2} ms p90 {:.2} ms p99 {:.2} ms max {:.2} ms mean {:.2} ms; {} in flight: {:.0} promotions/s, p50 {:.2} ms",
            class.label,
            ms(figures.sequential.quantile(0.5)),
            ms(figures.sequential.quantile(0.9)),
            ms(figures.sequential.quantile(0.99)),
            ms(figures.sequential.max()),
            ms(figures.sequential.mean()),
            options.in_flight,
            options.concurrent as f64 / figures.concurrent_wall.as_secs_f64(),
            ms(figures.concurrent.quantile(0.5)),
        );
    }
    println!(
        "airlock server side, promotions one at a time: mean {:.2} ms per request, of which gate evaluation {:.2} ms",
        server.request_mean_ms, server.policy_mean_ms
    );
    println!(
        "airlock server CPU (user + system) per promotion: {:.2} ms one at a time, {:.2} ms with {} in flight",
        server.cpu_sequential_ms, server.cpu_concurrent_ms, options.in_flight
    );
    drop(airlock);

    let mut theirs: Vec<Option<SkopeoFigures>> = classes.iter().map(|_| None).collect();
    if let Some(skopeo) = Skopeo::find(&options.skopeo)?
        && let Some(distribution) = crate::start_distribution(&options.registry).await?
    {
        for (class, slot) in classes.iter().zip(theirs.iter_mut()) {
            *slot = Some(bench_skopeo_class(&distribution, &skopeo, class, &options).await?);
        }
    }

    println!();
    println!(
        "| artifact | promotion p50 | p90 | p99 | max | promotions/s ({} in flight) | skopeo copy, empty cache | skopeo copy, cache knows the layer | skopeo (empty cache) / airlock p50 | skopeo (cache) / airlock p50 |",
        options.in_flight
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for ((class, ours), theirs) in classes.iter().zip(&ours).zip(&theirs) {
        let p50 = ours.sequential.quantile(0.5);
        let (cold, warm, cold_ratio, warm_ratio) = match theirs {
            Some(t) => (
                format!("{:.0} ms", ms(t.cold)),
                format!("{:.0} ms", ms(t.warm)),
                format!("{:.0}x", t.cold.as_secs_f64() / p50.as_secs_f64()),
                format!("{:.0}x", t.warm.as_secs_f64() / p50.as_secs_f64()),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {cold} | {warm} | {cold_ratio} | {warm_ratio} |",
            class.label,
            ms(p50),
            ms(ours.sequential.quantile(0.9)),
            ms(ours.sequential.quantile(0.99)),
            ms(ours.sequential.max()),
            options.concurrent as f64 / ours.concurrent_wall.as_secs_f64(),
        );
    }
    println!(
        "airlock p50 {} / {}: {:.2}",
        classes[1].label,
        classes[0].label,
        ours[1].sequential.quantile(0.5).as_secs_f64()
            / ours[0].sequential.quantile(0.5).as_secs_f64()
    );
    println!("load average at the end: {}", load_average());
    Ok(())
}
