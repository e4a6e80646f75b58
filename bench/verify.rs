//! The deploy-time verification benchmark: how long `POST /api/v1/verify` takes for a request
//! naming `--images` promoted images in a registry of `--artifacts` artifacts, from the cache and
//! from the records, against the floor a registry-reading admission check pays in the same run.
//!
//! A release `airlock serve` on a fresh data directory takes the two shared blobs over HTTP and
//! stops; `--artifacts` tiny manifests are written through the store in-process (as `scale` does);
//! the server starts again and a promoter promotes `--images` of them dev -> staging. Then, in
//! `--rounds` rounds of `--samples` requests each, one at a time over loopback as the deployer:
//! - `verify (cache)`: the verification of all `--images` references against staging, with the
//!   default cache;
//! - `HEAD x N (peer)`: the same references resolved as a registry client must, one `HEAD
//!   /v2/staging/scale/app/manifests/<digest>` each, the least an admission controller that pulls
//!   from the registry (policy-controller, Connaisseur) pays before it looks at a signature;
//! - `verify (no cache)`: the same verification on the same data with `[deploy] cache_entries = 0`
//!   (the server restarted), so every reference reads its records: the cost after any change.
//!
//! Every answer is checked (`verified` true, every HEAD 200). The table shows p50 and p99 per
//! round and the ratio of each p50 to the peer's.
//!
//! Run: `cargo build --release -p airlock -p airlock-bench && ./target/release/airlock-bench
//! verify [--artifacts 100000] [--images 10] [--samples 2000] [--rounds 3]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::promote::{Latencies, load_average, ms};
use crate::scale::{Airlock, CONFIG, LAYER, load};

const PAT_PASSWORD: &str = "bench-release-phrase-0123";
const DORA_PASSWORD: &str = "bench-deploy-phrase-0123";

struct Options {
    artifacts: usize,
    images: usize,
    samples: usize,
    rounds: usize,
    airlock: PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        artifacts: 100_000,
        images: 10,
        samples: 2000,
        rounds: 3,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<usize> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--artifacts" => options.artifacts = value("--artifacts")?,
            "--images" => options.images = value("--images")?,
            "--samples" => options.samples = value("--samples")?,
            "--rounds" => options.rounds = value("--rounds")?,
            "--airlock" => {
                options.airlock = PathBuf::from(args.next().context("--airlock needs a path")?)
            }
            other => bail!(
                "unknown option {other}; usage: airlock-bench verify [--artifacts N] [--images N] [--samples N] [--rounds N] [--airlock PATH]"
            ),
        }
    }
    if options.images == 0 || options.images > 100 || options.images * 100 > options.artifacts {
        bail!("--images must be 1 to 100, and at most one in 100 of --artifacts");
    }
    if options.samples < 100 || options.rounds == 0 {
        bail!("--samples must be at least 100 and --rounds at least 1");
    }
    Ok(options)
}

/// One round's latencies of one kind of request.
struct Round {
    p50: Duration,
    p99: Duration,
}

fn round(times: Vec<Duration>) -> Round {
    let latencies = Latencies::new(times);
    Round {
        p50: latencies.quantile(0.5),
        p99: latencies.quantile(0.99),
    }
}

/// `samples` verifications of `references` against staging; each must pass.
async fn verify_round(
    http: &reqwest::Client,
    base: &str,
    references: &[String],
    samples: usize,
) -> Result<Round> {
    let body = json!({"stage": "staging", "references": references});
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let response = http
            .post(format!("{base}/api/v1/verify"))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        times.push(started.elapsed());
        if status != 200 || answer["verified"] != true {
            bail!("verify: {status} {answer:#}");
        }
    }
    Ok(round(times))
}

/// `samples` times, one `HEAD` of each digest's manifest in `staging/scale/app`, sequentially.
async fn head_round(
    http: &reqwest::Client,
    base: &str,
    digests: &[String],
    samples: usize,
) -> Result<Round> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        for digest in digests {
            let response = http
                .head(format!("{base}/v2/staging/scale/app/manifests/{digest}"))
                .header("accept", crate::scale::OCI_MANIFEST)
                .send()
                .await?;
            if response.status() != 200 {
                bail!("HEAD {digest}: {}", response.status());
            }
        }
        times.push(started.elapsed());
    }
    Ok(round(times))
}

async fn post_ok(http: &reqwest::Client, url: &str, body: Value) -> Result<()> {
    let response = http.post(url).json(&body).send().await?;
    if !response.status().is_success() {
        bail!("{url}: {} {}", response.status(), response.text().await?);
    }
    Ok(())
}

/// Runs the verification benchmark described in the module documentation.
pub async fn run() -> Result<()> {
    let options = options()?;
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().join("data");
    let bundle = crate::replicas::permissive_bundle(&scratch.path().join("bundle"))?;
    let admin = crate::client(Some(("admin", crate::BENCH_PASSWORD)))?;

    let (server, _) = Airlock::start(&options.airlock, &dir, &bundle).await?;
    let config =
        crate::push_small_blob(&admin, "airlock", &server.base, "dev/scale/app", CONFIG).await?;
    let layer =
        crate::push_small_blob(&admin, "airlock", &server.base, "dev/scale/app", LAYER).await?;
    server.stop()?;
    let (digests, took) = load(&dir, options.artifacts, options.images, &config, &layer).await?;
    eprintln!(
        "  {} artifacts loaded in {:.1} s",
        options.artifacts,
        took.as_secs_f64()
    );

    let (server, _) = Airlock::start(&options.airlock, &dir, &bundle).await?;
    let base = server.base.clone();
    for (name, password, role) in [
        ("pat", PAT_PASSWORD, "promoter"),
        ("dora", DORA_PASSWORD, "deployer"),
    ] {
        post_ok(
            &admin,
            &format!("{base}/api/v1/users"),
            json!({"name": name, "password": password}),
        )
        .await?;
        post_ok(
            &admin,
            &format!("{base}/api/v1/roles/grant"),
            json!({"principal": name, "role": role, "scope": "*"}),
        )
        .await?;
    }
    let pat = crate::client(Some(("pat", PAT_PASSWORD)))?;
    let dora = crate::client(Some(("dora", DORA_PASSWORD)))?;
    for digest in &digests {
        post_ok(
            &pat,
            &format!("{base}/api/v1/promotions"),
            json!({"source": "dev/scale/app", "reference": digest, "to": "staging"}),
        )
        .await?;
    }
    let host = base.trim_start_matches("http://");
    let references: Vec<String> = digests
        .iter()
        .map(|d| format!("{host}/staging/scale/app@{d}"))
        .collect();

    let mut cached = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..options.rounds {
        cached.push(verify_round(&dora, &base, &references, options.samples).await?);
        peer.push(head_round(&dora, &base, &digests, options.samples).await?);
    }
    server.stop()?;
    let (server, _) = Airlock::start_with_env(
        &options.airlock,
        &dir,
        &bundle,
        &[("AIRLOCK_DEPLOY__CACHE_ENTRIES", "0")],
    )
    .await?;
    let mut uncached = Vec::new();
    for _ in 0..options.rounds {
        uncached.push(verify_round(&dora, &server.base, &references, options.samples).await?);
    }
    server.stop()?;

    println!(
        "verify: {} references per request, {} artifacts, {} samples x {} rounds, load {}",
        options.images,
        options.artifacts,
        options.samples,
        options.rounds,
        load_average()
    );
    println!("| round | request | p50 (ms) | p99 (ms) | p50 / peer p50 |");
    println!("|---|---|---|---|---|");
    for (i, ((c, p), u)) in cached.iter().zip(&peer).zip(&uncached).enumerate() {
        let ratio = |r: &Round| r.p50.as_secs_f64() / p.p50.as_secs_f64();
        println!(
            "| {} | verify (cache) | {:.3} | {:.3} | {:.2} |",
            i + 1,
            ms(c.p50),
            ms(c.p99),
            ratio(c)
        );
        println!(
            "| {} | verify (no cache) | {:.3} | {:.3} | {:.2} |",
            i + 1,
            ms(u.p50),
            ms(u.p99),
            ratio(u)
        );
        println!(
            "| {} | HEAD x {} (peer) | {:.3} | {:.3} | 1.00 |",
            i + 1,
            options.images,
            ms(p.p50),
            ms(p.p99)
        );
    }
    Ok(())
}
