//! The download benchmark: a large blob fetched with `curl` and a large image pulled with
//! `skopeo copy`, from airlock and from the distribution registry in the same run.
//!
//! Both registries run side by side, each with a fresh data directory on the same disk, and get
//! the same image: one layer of `--blob-mib` MiB (default 1 GiB), a small config and a manifest,
//! in `dev/bench/app:v1`. Each blob is fetched once unmeasured first, so both are served from a
//! warm page cache. Then, `--runs` times (default 5), alternating which registry goes first (A B,
//! B A, ...) so both see the same load from anything else on the machine:
//!
//! - `curl -o /dev/null` of the layer's URL (for airlock with a bearer token for
//!   `repository:dev/bench/app:pull` from `/auth/token`, fetched before the timed run, as a
//!   registry client holds one), timed as a process run;
//! - `skopeo copy docker://<registry>/dev/bench/app:v1 dir:<scratch>` (for airlock with
//!   `--src-creds`, so skopeo goes through the token flow itself), timed as a process run, the
//!   scratch directory removed after each run. skopeo runs as in `promote.rs` (as `nobody` when
//!   the benchmark runs as root, with its own HOME, runtime directory and auth file).
//!
//! Printed: every run, then per tool the median and min-max of each registry's MiB/s and the
//! ratio airlock/distribution of the medians (above 1: airlock is faster) with the min-max of the
//! per-round ratios.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::promote::{Skopeo, load_average};
use crate::{BLOCK, Server, push_small_blob, push_streamed_blob};

const REPO: &str = "dev/bench/app";
const TAG: &str = "v1";

struct Options {
    blob_mib: usize,
    runs: usize,
    airlock: PathBuf,
    registry: PathBuf,
    skopeo: PathBuf,
    curl: PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        blob_mib: 1024,
        runs: 5,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
        registry: PathBuf::from("/usr/bin/docker-registry"),
        skopeo: PathBuf::from("/usr/bin/skopeo"),
        curl: PathBuf::from("/usr/bin/curl"),
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--blob-mib" => options.blob_mib = value()?.parse()?,
            "--runs" => options.runs = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            "--registry" => options.registry = value()?.into(),
            "--skopeo" => options.skopeo = value()?.into(),
            "--curl" => options.curl = value()?.into(),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(options)
}

/// Pushes the benchmark image (the streamed layer, a config, a manifest tagged [`TAG`]).
async fn push_image(server: &Server, base_block: &[u8], mib: usize, digest: &str) -> Result<()> {
    let http = crate::client(server.credentials)?;
    let base = &server.base;
    push_streamed_blob(&http, server.name, base, REPO, base_block, mib, digest).await?;
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux"}))?;
    let config_digest = push_small_blob(&http, server.name, base, REPO, &config).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": mib * BLOCK}],
    }))?;
    let r = http
        .put(format!("{base}/v2/{REPO}/manifests/{TAG}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await?;
    if r.status() != 201 {
        bail!("{}: manifest push failed: {}", server.name, r.status());
    }
    Ok(())
}

/// The `Authorization` header curl sends: a pull token from airlock's token endpoint, none for
/// the distribution registry (it runs without authentication).
async fn authorization(server: &Server) -> Result<Option<String>> {
    if server.credentials.is_none() {
        return Ok(None);
    }
    let http = crate::client(server.credentials)?;
    let response = http
        .get(format!(
            "{}/auth/token?service=airlock&scope=repository:{REPO}:pull",
            server.base
        ))
        .send()
        .await?;
    if response.status() != 200 {
        bail!(
            "{}: token request failed: {}",
            server.name,
            response.status()
        );
    }
    let body: serde_json::Value = response.json().await?;
    let token = body["token"].as_str().context("no token in the answer")?;
    Ok(Some(format!("Authorization: Bearer {token}")))
}

/// Times one `curl -o /dev/null` of the layer, checking the status and the size received.
async fn curl_once(options: &Options, server: &Server, digest: &str) -> Result<Duration> {
    let header = authorization(server).await?;
    let mut command = Command::new(&options.curl);
    command.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
    ]);
    if let Some(header) = header {
        command.arg("-H").arg(header);
    }
    command.arg(format!("{}/v2/{REPO}/blobs/{digest}", server.base));
    let (elapsed, output) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = command.output();
        (started.elapsed(), output)
    })
    .await?;
    let output = output.context("run curl")?;
    let printed = String::from_utf8_lossy(&output.stdout);
    let expected = format!("200 {}", options.blob_mib * BLOCK);
    if !output.status.success() || printed.trim() != expected {
        bail!(
            "{}: curl printed {printed:?} (expected {expected:?}): {}",
            server.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

/// Times one `skopeo copy docker://... dir:...` of the image.
async fn skopeo_once(skopeo: &Skopeo, server: &Server) -> Result<Duration> {
    let home = skopeo.home()?;
    let scratch = skopeo.scratch_dir()?;
    let host = server
        .base
        .strip_prefix("http://")
        .context("registry URL")?;
    let mut args = vec!["--src-tls-verify=false".to_string()];
    if let Some((user, password)) = server.credentials {
        args.push(format!("--src-creds={user}:{password}"));
    }
    args.push(format!("docker://{host}/{REPO}:{TAG}"));
    args.push(format!("dir:{}", scratch.path().join("image").display()));
    skopeo.run_copy(&home, &args).await
}

/// Median and min-max of a set of figures.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Spread {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Spread {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }
}

/// Prints one tool's figures: each registry's MiB/s and the ratio airlock/distribution.
fn report(tool: &str, mib: usize, ours: &[Duration], theirs: &[Duration]) {
    let rate = |d: &Duration| mib as f64 / d.as_secs_f64();
    let a = Spread::of(ours.iter().map(rate).collect());
    let d = Spread::of(theirs.iter().map(rate).collect());
    let rounds = Spread::of(
        ours.iter()
            .zip(theirs)
            .map(|(o, t)| t.as_secs_f64() / o.as_secs_f64())
            .collect(),
    );
    println!(
        "| {tool} | {:.0} MiB/s ({:.0}-{:.0}) | {:.0} MiB/s ({:.0}-{:.0}) | {:.2} (rounds {:.2}-{:.2}) |",
        a.median,
        a.min,
        a.max,
        d.median,
        d.min,
        d.max,
        a.median / d.median,
        rounds.min,
        rounds.max,
    );
}

/// Runs the download benchmark described in the module documentation.
pub async fn run() -> Result<()> {
    let options = options()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "download benchmark: {} MiB blob, {} rounds per tool, registries alternating; {cores} cores, load average {} at start",
        options.blob_mib,
        options.runs,
        load_average()
    );
    let (base_block, digest) = crate::benchmark_blob(options.blob_mib).await?;
    let airlock = crate::start_airlock(&options.airlock)?;
    let Some(distribution) = crate::start_distribution(&options.registry).await? else {
        bail!("the comparison needs docker-registry");
    };
    let servers = [&airlock, &distribution];
    for server in servers {
        push_image(server, &base_block, options.blob_mib, &digest).await?;
        // Warm the page cache with the blob's file.
        curl_once(&options, server, &digest).await?;
    }
    let order = |round: usize| {
        if round.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        }
    };

    let mut curl: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..options.runs {
        for i in order(round) {
            let elapsed = curl_once(&options, servers[i], &digest).await?;
            println!(
                "curl {} round {}: {:.0} ms",
                servers[i].name,
                round + 1,
                elapsed.as_secs_f64() * 1000.0
            );
            curl[i].push(elapsed);
        }
    }

    let mut skopeo_times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let skopeo = Skopeo::find(&options.skopeo)?;
    if let Some(skopeo) = &skopeo {
        for round in 0..options.runs {
            for i in order(round) {
                let elapsed = skopeo_once(skopeo, servers[i]).await?;
                println!(
                    "skopeo {} round {}: {:.0} ms",
                    servers[i].name,
                    round + 1,
                    elapsed.as_secs_f64() * 1000.0
                );
                skopeo_times[i].push(elapsed);
            }
        }
    }

    println!();
    println!(
        "| {} MiB | airlock median (min-max) | distribution median (min-max) | airlock/distribution |",
        options.blob_mib
    );
    println!("|---|---|---|---|");
    report("curl GET", options.blob_mib, &curl[0], &curl[1]);
    if skopeo.is_some() {
        report(
            "skopeo copy to dir:",
            options.blob_mib,
            &skopeo_times[0],
            &skopeo_times[1],
        );
    }
    println!("load average at the end: {}", load_average());
    println!("layer {digest} ({} bytes)", options.blob_mib * BLOCK);
    Ok(())
}
