//! The scale benchmark: how airlock's request paths behave as a registry grows to 10k, 100k and
//! 1M artifacts.
//!
//! For each size N: a release `airlock serve` on a fresh data directory takes the two blobs every
//! artifact shares (a config and a layer, pushed over HTTP) and stops; then this process opens
//! the data directory's store in-process (`airlock_store::Metadata` over `metadata.db`, not HTTP)
//! and writes N tiny image manifests through `Metadata::load_manifests` (the checks of a push, no
//! stage rule, no audit records) in transactions of `BATCH`, 99 in 100 into one repository
//! `dev/scale/app`, one in 100 into a repository of its own `dev/scale/r<i>` (each tagged
//! `t<i>`). The load rate is printed. Then `airlock
//! serve` starts again on that directory (start-up: spawn to the first `/readyz` 200) and, over
//! HTTP as `admin`:
//! - push p50: `--pushes` manifest pushes into `dev/scale/app`, one at a time;
//! - promotion p50: `--promotions` promotions dev -> staging of loaded artifacts, one at a time,
//!   through a permissive bundle (the default bundle's common rules, no evidence);
//! - listings, p50 of `--samples` calls each: the first and a middle page (100 entries) of
//!   `/v2/dev/scale/app/tags/list`, `/api/v1/tags`, `/api/v1/repositories?stage=dev`, `/v2/_catalog`
//!   and `/api/v1/promotions`, and the first page of `/api/v1/status/scale/app`;
//! - the web console's pages, p50 of `--samples` each, as `admin` signed in through the form: the
//!   stages board (its first page of 20 repository paths, and a search for `scale/app`), the
//!   page of a promoted artifact, the approvals inbox, and the audit page (50 entries with
//!   their inclusion proofs);
//! - the server's resident memory (VmRSS) at the end and the data directory's size on disk.
//!
//! - start-up again `--startups` - 1 times on the same directory, after the rest (the column
//!   then shows the median and the range of all of them);
//! - with `--keep DIR`, the data directory of size N stays in `DIR/N` (to start another build
//!   on the same data).
//!
//! Run: `cargo build --release -p airlock -p airlock-bench && ./target/release/airlock-bench scale
//! [--artifacts 10000,100000,1000000] [--pushes 300] [--promotions 200] [--samples 30]
//! [--startups 1] [--keep DIR]`

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use airlock_core::manifest::ParsedManifest;
use airlock_core::{Digest, RepoName, Tag};
use airlock_store::{ManifestUpload, Metadata};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::promote::{Latencies, load_average, ms};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;
pub(crate) const LAYER: &[u8] = b"one tiny layer shared by every artifact of the scale benchmark";
/// The password of `pat`, the promoter the benchmark creates.
const PAT_PASSWORD: &str = "bench-release-phrase-0123";

struct Options {
    artifacts: Vec<usize>,
    pushes: usize,
    promotions: usize,
    samples: usize,
    startups: usize,
    keep: Option<PathBuf>,
    airlock: PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        artifacts: vec![10_000, 100_000, 1_000_000],
        pushes: 300,
        promotions: 200,
        samples: 30,
        startups: 1,
        keep: None,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--artifacts" => {
                options.artifacts = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--artifacts takes sizes separated by commas, e.g. 10000,100000")?
            }
            "--pushes" => options.pushes = value()?.parse()?,
            "--promotions" => options.promotions = value()?.parse()?,
            "--samples" => options.samples = value()?.parse()?,
            "--startups" => options.startups = value()?.parse::<usize>()?.max(1),
            "--keep" => options.keep = Some(value()?.into()),
            "--airlock" => options.airlock = value()?.into(),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    if options.artifacts.iter().any(|&n| n < 1000) {
        bail!("--artifacts: each size must be at least 1000");
    }
    Ok(options)
}

/// A running `airlock serve` over a data directory this benchmark keeps.
pub(crate) struct Airlock {
    child: Child,
    pub(crate) base: String,
}

impl Airlock {
    /// Starts `airlock serve` on `dir`; returns it once `/readyz` answers 200, with the time
    /// from spawning the process to that answer.
    pub(crate) async fn start(
        binary: &Path,
        dir: &Path,
        bundle: &Path,
    ) -> Result<(Self, Duration)> {
        Self::start_with_env(binary, dir, bundle, &[]).await
    }

    /// [`Airlock::start`] with extra environment (`AIRLOCK_...` settings).
    pub(crate) async fn start_with_env(
        binary: &Path,
        dir: &Path,
        bundle: &Path,
        env: &[(&str, &str)],
    ) -> Result<(Self, Duration)> {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .envs(env.iter().copied())
            .env("AIRLOCK_LOG__LEVEL", "warn")
            .env("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "0")
            .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", crate::BENCH_PASSWORD)
            .env("AIRLOCK_POLICY__BUNDLE", bundle)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (build it with cargo build --release -p airlock)",
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
        let server = Airlock { child, base };
        let probe = reqwest::Client::new();
        loop {
            if let Ok(r) = probe.get(format!("{}/readyz", server.base)).send().await
                && r.status() == 200
            {
                return Ok((server, started.elapsed()));
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("airlock was not ready within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resident memory of the server now, in MiB.
    fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS")?;
        Ok(kib / 1024.0)
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    pub(crate) fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Airlock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The manifest of loaded artifact `i`: the shared config and layer, told apart by an annotation.
fn manifest(config: &str, layer: &str, i: usize) -> Vec<u8> {
    json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": LAYER.len()}],
        "annotations": {"org.example.scale": i.to_string()},
    })
    .to_string()
    .into_bytes()
}

fn digest_of(content: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(content)))
}

/// Manifests written per transaction by the loader.
const BATCH: usize = 2000;

/// Whether loaded artifact `i` goes into a repository of its own (one in 100).
fn own_repository(i: usize) -> bool {
    i % 100 == 99
}

/// The repository loaded artifact `i` goes into.
fn repository_of(i: usize) -> String {
    if own_repository(i) {
        format!("dev/scale/r{i:07}")
    } else {
        "dev/scale/app".to_string()
    }
}

/// Writes `count` artifacts into the store of `dir` in-process; returns the digests of the first
/// `keep` artifacts of `dev/scale/app` and the load's duration.
pub(crate) async fn load(
    dir: &Path,
    count: usize,
    keep: usize,
    config: &str,
    layer: &str,
) -> Result<(Vec<String>, Duration)> {
    let metadata = Metadata::open_sqlite(&dir.join("metadata.db")).await?;
    let config_digest = Digest::from_str(config)?;
    let layer_digest = Digest::from_str(layer)?;
    let started = Instant::now();
    let mut kept = Vec::new();
    let mut report = Instant::now();
    let mut first = 0;
    while first < count {
        let last = (first + BATCH).min(count);
        let mut items = Vec::with_capacity(last - first);
        for i in first..last {
            let repo = RepoName::from_str(&repository_of(i))?;
            if own_repository(i) {
                // A new repository holds the shared blobs too (their bytes are already stored).
                for (digest, size) in [(&config_digest, CONFIG.len()), (&layer_digest, LAYER.len())]
                {
                    metadata
                        .commit_blob(&repo, digest, size as u64, &[])
                        .await?;
                }
            }
            let content = manifest(config, layer, i);
            let digest = Digest::from_str(&digest_of(&content))?;
            let parsed = ParsedManifest::parse(Some(OCI_MANIFEST), &content)?;
            let tag = Tag::from_str(&format!("t{i:07}"))?;
            if !own_repository(i) && kept.len() < keep {
                kept.push(digest.to_string());
            }
            items.push((repo, digest, parsed, content, tag));
        }
        let batch: Vec<_> = items
            .iter()
            .map(|(repo, digest, parsed, content, tag)| {
                (
                    repo.clone(),
                    ManifestUpload {
                        digest,
                        manifest: parsed,
                        content,
                    },
                    tag.clone(),
                )
            })
            .collect();
        metadata
            .load_manifests(&batch, "scale-loader")
            .await
            .map_err(|e| anyhow::anyhow!("loading artifacts {first}..{last}: {e}"))?;
        first = last;
        if report.elapsed() > Duration::from_secs(30) {
            let rate = first as f64 / started.elapsed().as_secs_f64();
            eprintln!("  loaded {first} of {count} ({rate:.0}/s)");
            report = Instant::now();
        }
    }
    let took = started.elapsed();
    metadata.close().await;
    Ok((kept, took))
}

/// p50 (ms) of `samples` GETs of `url`, each checked to answer 200.
async fn get_p50(http: &reqwest::Client, url: &str, samples: usize) -> Result<f64> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let response = http.get(url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        times.push(started.elapsed());
        if status != 200 {
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
    }
    Ok(ms(Latencies::new(times).quantile(0.5)))
}

/// A client signed in to the web console as `user`, through its sign-in form (the CSRF cookie
/// and field, then the session cookie), that follows no redirect: a page that sends it to
/// sign in again fails the measurement instead of timing the sign-in page.
async fn console_client(base: &str, user: &str, password: &str) -> Result<reqwest::Client> {
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
    };
    let form = plain.get(format!("{base}/console/login")).send().await?;
    let csrf = cookie(&form, "airlock_login_csrf").context("no CSRF cookie on the sign-in form")?;
    let signed = plain
        .post(format!("{base}/console/login"))
        .header(
            reqwest::header::COOKIE,
            format!("airlock_login_csrf={csrf}"),
        )
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf_token", &csrf),
        ])
        .send()
        .await?;
    let session = cookie(&signed, "airlock_session")
        .with_context(|| format!("console sign-in refused: {}", signed.status()))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("airlock_session={session}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()?)
}

/// The `next` cursor of the first page of `url`.
async fn first_next(http: &reqwest::Client, url: &str) -> Result<String> {
    let body: Value = http.get(url).send().await?.json().await?;
    body["next"].as_str().map(String::from).with_context(|| {
        let text = body.to_string();
        format!("{url}: no next page in {}", &text[..text.len().min(300)])
    })
}

/// Size of everything under `dir`, in bytes.
fn disk_usage(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut pending = VecDeque::from([dir.to_path_buf()]);
    while let Some(dir) = pending.pop_front() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push_back(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// One row of the result table.
struct Row {
    artifacts: usize,
    load_per_sec: f64,
    /// Every start-up measured, in order (the first right after the load).
    startups: Vec<Duration>,
    push_p50: f64,
    promotion_p50: f64,
    listings: Vec<(&'static str, f64)>,
    rss_mib: f64,
    disk_mib: f64,
}

async fn measure(options: &Options, artifacts: usize) -> Result<Row> {
    let scratch = tempfile::tempdir()?;
    let dir = match &options.keep {
        Some(keep) => keep.join(artifacts.to_string()),
        None => scratch.path().join("data"),
    };
    let bundle = crate::replicas::permissive_bundle(&scratch.path().join("bundle"))?;
    let http = crate::client(Some(("admin", crate::BENCH_PASSWORD)))?;

    // The shared blobs, pushed over HTTP into the big repository.
    let (server, _) = Airlock::start(&options.airlock, &dir, &bundle).await?;
    let config =
        crate::push_small_blob(&http, "airlock", &server.base, "dev/scale/app", CONFIG).await?;
    let layer =
        crate::push_small_blob(&http, "airlock", &server.base, "dev/scale/app", LAYER).await?;
    server.stop()?;

    let keep = options.promotions;
    let (kept, took) = load(&dir, artifacts, keep, &config, &layer).await?;
    let load_per_sec = artifacts as f64 / took.as_secs_f64();
    eprintln!(
        "  {artifacts} artifacts loaded in {:.1} s ({load_per_sec:.0}/s)",
        took.as_secs_f64()
    );

    let (server, startup) = Airlock::start(&options.airlock, &dir, &bundle).await?;
    let base = server.base.clone();
    // The admin grants `pat` the promoter role; nobody grants themselves a role.
    for (path, body) in [
        (
            "/api/v1/users",
            json!({"name": "pat", "password": PAT_PASSWORD}),
        ),
        (
            "/api/v1/roles/grant",
            json!({"principal": "pat", "role": "promoter", "scope": "*"}),
        ),
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{path}: {} {}", response.status(), response.text().await?);
        }
    }
    let pat = crate::client(Some(("pat", PAT_PASSWORD)))?;

    let mut pushes = Vec::with_capacity(options.pushes);
    for i in 0..options.pushes {
        let content = manifest(&config, &layer, artifacts + i);
        let started = Instant::now();
        let response = http
            .put(format!("{base}/v2/dev/scale/app/manifests/p{i}"))
            .header("content-type", OCI_MANIFEST)
            .body(content)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        pushes.push(started.elapsed());
        if status != 201 {
            bail!("push: {status} {}", String::from_utf8_lossy(&body));
        }
    }
    let push_p50 = ms(Latencies::new(pushes).quantile(0.5));

    let mut promotions = Vec::with_capacity(kept.len());
    for digest in &kept {
        let started = Instant::now();
        let response = pat
            .post(format!("{base}/api/v1/promotions"))
            .json(&json!({"source": "dev/scale/app", "reference": digest, "to": "staging"}))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        promotions.push(started.elapsed());
        if status != 201 {
            bail!("promotion: {status} {}", String::from_utf8_lossy(&body));
        }
    }
    let promotion_p50 = ms(Latencies::new(promotions).quantile(0.5));

    let middle_tag = format!("t{:07}", artifacts / 2);
    let middle_repo = repository_of(artifacts / 2 + 99 - (artifacts / 2) % 100);
    // Promotions come in pages of 100, or of half of them when there are fewer than 200.
    let promotions_page = (kept.len() / 2).clamp(1, 100);
    let promotions_next = first_next(
        &http,
        &format!("{base}/api/v1/promotions?n={promotions_page}"),
    )
    .await?;
    let samples = options.samples;
    let mut listings = Vec::new();
    for (name, path) in [
        (
            "v2 tags first",
            "/v2/dev/scale/app/tags/list?n=100".to_string(),
        ),
        (
            "v2 tags middle",
            format!("/v2/dev/scale/app/tags/list?n=100&last={middle_tag}"),
        ),
        (
            "api tags first",
            "/api/v1/tags?repository=dev/scale/app&n=100".to_string(),
        ),
        (
            "api tags middle",
            format!("/api/v1/tags?repository=dev/scale/app&n=100&last={middle_tag}"),
        ),
        ("v2 catalog first", "/v2/_catalog?n=100".to_string()),
        (
            "v2 catalog middle",
            format!("/v2/_catalog?n=100&last={middle_repo}"),
        ),
        (
            "api repositories first",
            "/api/v1/repositories?stage=dev&n=100".to_string(),
        ),
        (
            "api repositories middle",
            format!("/api/v1/repositories?stage=dev&n=100&last={middle_repo}"),
        ),
        (
            "promotions first",
            format!("/api/v1/promotions?n={promotions_page}"),
        ),
        (
            "promotions second",
            format!(
                "/api/v1/promotions?n={promotions_page}&last={}",
                percent_encoding::utf8_percent_encode(
                    &promotions_next,
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
        ),
        ("status first", "/api/v1/status/scale/app".to_string()),
    ] {
        listings.push((
            name,
            get_p50(&http, &format!("{base}{path}"), samples).await?,
        ));
    }
    // The web console's pages, as the admin signed in through the form.
    let console = console_client(&base, "admin", crate::BENCH_PASSWORD).await?;
    let promoted = kept.first().context("no promoted artifact to show")?;
    for (name, path) in [
        ("console board", "/console".to_string()),
        ("console board search", "/console?q=scale%2Fapp".to_string()),
        (
            "console artifact",
            format!(
                "/console/artifact?repository=dev%2Fscale%2Fapp&digest={}",
                promoted.replace(':', "%3A")
            ),
        ),
        ("console approvals", "/console/approvals".to_string()),
        ("console audit", "/console/audit".to_string()),
        ("console keyring", "/console/keys".to_string()),
        ("console access", "/console/access".to_string()),
    ] {
        listings.push((
            name,
            get_p50(&console, &format!("{base}{path}"), samples).await?,
        ));
    }
    let rss_mib = server.rss_mib()?;
    server.stop()?;
    let disk_mib = disk_usage(&dir)? as f64 / (1024.0 * 1024.0);
    let mut startups = vec![startup];
    for _ in 1..options.startups {
        let (server, startup) = Airlock::start(&options.airlock, &dir, &bundle).await?;
        server.stop()?;
        startups.push(startup);
    }
    Ok(Row {
        artifacts,
        load_per_sec,
        startups,
        push_p50,
        promotion_p50,
        listings,
        rss_mib,
        disk_mib,
    })
}

/// Runs the scale benchmark described in the module documentation.
pub async fn run() -> Result<()> {
    let options = options()?;
    println!(
        "scale: artifacts {:?}, {} pushes, {} promotions, {} samples per listing; load average {}",
        options.artifacts,
        options.pushes,
        options.promotions,
        options.samples,
        load_average()
    );
    let mut rows = Vec::new();
    for &artifacts in &options.artifacts {
        eprintln!("{artifacts} artifacts:");
        rows.push(measure(&options, artifacts).await?);
    }
    println!("load average at the end {}", load_average());
    let mut header = vec![
        "artifacts".to_string(),
        "load/s".into(),
        "start-up ms".into(),
        "push p50 ms".into(),
        "promotion p50 ms".into(),
    ];
    if let Some(row) = rows.first() {
        header.extend(row.listings.iter().map(|(name, _)| format!("{name} ms")));
    }
    header.extend(["RSS MiB".to_string(), "disk MiB".into()]);
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for row in rows {
        let mut cells = vec![
            row.artifacts.to_string(),
            format!("{:.0}", row.load_per_sec),
            startup_cell(&row.startups),
            format!("{:.2}", row.push_p50),
            format!("{:.2}", row.promotion_p50),
        ];
        cells.extend(row.listings.iter().map(|(_, v)| format!("{v:.2}")));
        cells.extend([
            format!("{:.0}", row.rss_mib),
            format!("{:.0}", row.disk_mib),
        ]);
        println!("| {} |", cells.join(" | "));
    }
    Ok(())
}

/// Start-up times as a cell: the one measured, or the median and the range of several.
fn startup_cell(startups: &[Duration]) -> String {
    let mut sorted: Vec<f64> = startups.iter().map(|d| ms(*d)).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.as_slice() {
        [] => "-".into(),
        [one] => format!("{one:.0}"),
        all => format!(
            "{:.0} ({:.0}-{:.0})",
            all[all.len() / 2],
            all[0],
            all[all.len() - 1]
        ),
    }
}
