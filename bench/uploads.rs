//! `airlock-bench uploads [--parallel 200] [--mib 100] [--airlock PATH] [--registry PATH]`:
//! server memory under many parallel uploads.
//!
//! Each of `--parallel` clients pushes its own `--mib` MiB blob at the same time (POST, one
//! streaming PATCH, PUT `?digest=`), against airlock and then, in the same run, against the CNCF
//! distribution registry when it is installed. The server's resident memory is sampled every
//! 100 ms; reported are its peak (`VmHWM`), its resident memory once every upload finished, and the
//! wall time. Both servers get a fresh data directory on the same disk and the same client code.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::{BLOCK, Server, client, location, start_airlock, start_distribution};

struct Options {
    parallel: usize,
    mib: usize,
    airlock: std::path::PathBuf,
    registry: std::path::PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        parallel: 200,
        mib: 100,
        airlock: std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
        registry: std::path::PathBuf::from("/usr/bin/docker-registry"),
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--parallel" => options.parallel = value()?.parse()?,
            "--mib" => options.mib = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            "--registry" => options.registry = value()?.into(),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    Ok(options)
}

/// A memory figure of process `pid` from `/proc/<pid>/status`, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Pushes upload `index`'s blob: `mib` distinct 1 MiB blocks, hashed as they are sent.
async fn push_one(http: &reqwest::Client, server: &Server, index: usize, mib: usize) -> Result<()> {
    let base = &server.base;
    let repo = "dev/bench/parallel";
    let start = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await?;
    if start.status() != 202 {
        bail!("{}: upload {index} start: {}", server.name, start.status());
    }
    let upload = location(base, &start)?;
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
    let feed = hasher.clone();
    let blocks = futures::stream::iter(0..mib).map(move |block| {
        let mut bytes = vec![(index % 251) as u8; BLOCK];
        bytes[..8].copy_from_slice(&(index as u64).to_le_bytes());
        bytes[8..16].copy_from_slice(&(block as u64).to_le_bytes());
        feed.lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(&bytes);
        Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))
    });
    let patched = http
        .patch(&upload)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(blocks))
        .send()
        .await?;
    if patched.status() != 202 {
        bail!(
            "{}: upload {index} PATCH: {}",
            server.name,
            patched.status()
        );
    }
    let upload = location(base, &patched)?;
    let digest = {
        let hasher = hasher.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!("sha256:{}", hex::encode(hasher.finalize()))
    };
    let separator = if upload.contains('?') { '&' } else { '?' };
    let done = http
        .put(format!("{upload}{separator}digest={digest}"))
        .send()
        .await?;
    if done.status() != 201 {
        bail!(
            "{}: upload {index} PUT: {} {}",
            server.name,
            done.status(),
            done.text().await?
        );
    }
    Ok(())
}

struct Figures {
    wall: Duration,
    peak_kib: u64,
    after_kib: u64,
}

async fn measure(server: &Server, options: &Options) -> Result<Figures> {
    let pid = server.child.id();
    let http = client(server.credentials)?;
    let started = Instant::now();
    let uploads = futures::future::join_all(
        (0..options.parallel).map(|i| push_one(&http, server, i, options.mib)),
    );
    let mut uploads = std::pin::pin!(uploads);
    let mut sampled_peak = 0u64;
    let results = loop {
        tokio::select! {
            results = &mut uploads => break results,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                sampled_peak = sampled_peak.max(proc_status_kib(pid, "VmRSS:").unwrap_or(0));
            }
        }
    };
    let wall = started.elapsed();
    for result in results {
        result?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak_kib = proc_status_kib(pid, "VmHWM:")
        .unwrap_or(0)
        .max(sampled_peak);
    let after_kib = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    Ok(Figures {
        wall,
        peak_kib,
        after_kib,
    })
}

fn report(name: &str, options: &Options, figures: &Figures) {
    let total_mib = (options.parallel * options.mib) as f64;
    println!(
        "{name:<13} peak RSS {:>6.0} MiB  RSS after {:>6.0} MiB  {} x {} MiB in {:.1} s ({:.0} MiB/s)",
        figures.peak_kib as f64 / 1024.0,
        figures.after_kib as f64 / 1024.0,
        options.parallel,
        options.mib,
        figures.wall.as_secs_f64(),
        total_mib / figures.wall.as_secs_f64(),
    );
}

/// Runs the parallel-upload benchmark.
pub async fn run() -> Result<()> {
    let options = options()?;
    println!(
        "{} parallel uploads of {} MiB each; each registry runs alone with a fresh data directory",
        options.parallel, options.mib
    );
    let airlock = start_airlock(&options.airlock)?;
    let ours = measure(&airlock, &options).await?;
    drop(airlock);
    report("airlock", &options, &ours);

    let Some(distribution) = start_distribution(&options.registry).await? else {
        return Ok(());
    };
    let theirs = measure(&distribution, &options).await?;
    drop(distribution);
    report("distribution", &options, &theirs);
    println!(
        "ratio airlock/distribution peak RSS {:.2} (<1 = airlock uses less)",
        ours.peak_kib as f64 / theirs.peak_kib.max(1) as f64
    );
    Ok(())
}
