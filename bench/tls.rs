//! `airlock-bench tls [--blob-mib 1024] [--runs 3] [--handshake-secs 5] [--airlock PATH]`:
//! what TLS costs.
//!
//! For each run, a plaintext and a TLS airlock (the same binary, `--self-signed` for the latter,
//! an ECDSA P-256 certificate), each with a fresh data directory on the same disk, take the same
//! blob pushed as one streaming PATCH and pulled back, over HTTP/1.1 on loopback with the same
//! client code (reqwest over rustls with aws-lc-rs, no session resumption); the two modes alternate so
//! drift hits both. Printed: each run's throughput, the median and the spread (min–max), and the
//! TLS overhead of the medians. Then handshakes per second: new TCP connections with a full TLS
//! handshake (no resumption), one at a time and 8 at a time, for `--handshake-secs` each.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;

use crate::{BENCH_PASSWORD, BLOCK, Server, benchmark_blob, push_streamed_blob};

struct Options {
    blob_mib: usize,
    runs: usize,
    handshake_secs: u64,
    airlock: PathBuf,
}

fn options() -> Result<Options> {
    let mut options = Options {
        blob_mib: 1024,
        runs: 3,
        handshake_secs: 5,
        airlock: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/airlock"
        )),
    };
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--blob-mib" => options.blob_mib = value()?.parse()?,
            "--runs" => options.runs = value()?.parse()?,
            "--handshake-secs" => options.handshake_secs = value()?.parse()?,
            "--airlock" => options.airlock = value()?.into(),
            other => bail!("unknown argument {other} (airlock-bench --help lists the options)"),
        }
    }
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(options)
}

/// An airlock on loopback, plaintext or with `--self-signed`; returns it and, with TLS, the
/// certificate to trust.
fn start(binary: &Path, tls: bool) -> Result<(Server, Option<PathBuf>)> {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", BENCH_PASSWORD)
        .stdout(Stdio::piped());
    if tls {
        command.arg("--self-signed");
    }
    let mut child = command.spawn().with_context(|| {
        format!(
            "start {} (build it with cargo build --release)",
            binary.display()
        )
    })?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    // The certificate lines follow; keep reading so the server never writes to a closed pipe.
    std::thread::spawn(move || for _ in stdout.lines() {});
    let base = line
        .trim()
        .strip_prefix("airlock listening on ")
        .with_context(|| format!("unexpected airlock output {line:?}"))?
        .to_string();
    let cert = tls.then(|| dir.path().join("tls/self-signed.crt"));
    Ok((
        Server {
            name: if tls { "airlock TLS" } else { "airlock plain" },
            base,
            credentials: Some(("admin", BENCH_PASSWORD)),
            child,
            _dir: dir,
        },
        cert,
    ))
}

/// A rustls client configuration trusting only `cert`, without session resumption.
fn tls_config(cert: &Path) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(cert)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn http_client(cert: Option<&Path>) -> Result<reqwest::Client> {
    use base64::Engine as _;
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{BENCH_PASSWORD}"))
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value.parse()?);
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(cert) = cert {
        builder = builder.tls_backend_preconfigured(tls_config(cert)?);
    }
    Ok(builder.build()?)
}

/// Pushes and pulls the blob once; returns (push, pull) MiB/s.
async fn transfer(
    binary: &Path,
    tls: bool,
    mib: usize,
    base_block: &[u8],
    digest: &str,
) -> Result<(f64, f64)> {
    let (server, cert) = start(binary, tls)?;
    let http = http_client(cert.as_deref())?;
    let repo = "dev/bench/tls";
    let started = Instant::now();
    push_streamed_blob(
        &http,
        server.name,
        &server.base,
        repo,
        base_block,
        mib,
        digest,
    )
    .await?;
    let push = mib as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let response = http
        .get(format!("{}/v2/{repo}/blobs/{digest}", server.base))
        .send()
        .await?;
    let mut received = 0usize;
    let mut stream = response.bytes_stream();
    while let Some(bytes) = stream.next().await {
        received += bytes?.len();
    }
    if received != mib * BLOCK {
        bail!("{}: pulled {received} bytes", server.name);
    }
    let pull = mib as f64 / started.elapsed().as_secs_f64();
    Ok((push, pull))
}

/// Full handshakes per second with `parallel` clients connecting in a loop for `secs`.
async fn handshakes(host: &str, cert: &Path, parallel: usize, secs: u64) -> Result<f64> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(cert)?));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..parallel)
        .map(|_| {
            let connector = connector.clone();
            let host = host.to_string();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let tcp = tokio::net::TcpStream::connect(&host).await?;
                    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
                    let stream = connector.connect(name, tcp).await?;
                    drop(stream);
                    done += 1;
                }
                Ok::<_, anyhow::Error>(done)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn median_and_spread(values: &[f64]) -> (f64, f64, f64) {
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

pub async fn run() -> Result<()> {
    let options = options()?;
    let (base_block, digest) = benchmark_blob(options.blob_mib).await?;
    println!(
        "blob {} MiB over HTTP/1.1 on loopback, {} runs; plaintext and TLS alternate, each on a fresh airlock",
        options.blob_mib, options.runs
    );
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for run in 1..=options.runs {
        for (mode, figures) in [(false, &mut plain), (true, &mut tls)] {
            let (push, pull) = transfer(
                &options.airlock,
                mode,
                options.blob_mib,
                &base_block,
                &digest,
            )
            .await?;
            println!(
                "run {run} {:<9} push {push:>7.1} MiB/s  pull {pull:>7.1} MiB/s",
                if mode { "TLS" } else { "plaintext" }
            );
            figures.push((push, pull));
        }
    }
    let summary = |name: &str, figures: &[(f64, f64)]| {
        let push = median_and_spread(&figures.iter().map(|f| f.0).collect::<Vec<_>>());
        let pull = median_and_spread(&figures.iter().map(|f| f.1).collect::<Vec<_>>());
        println!(
            "{name:<9} push median {:>7.1} MiB/s ({:.1}–{:.1})  pull median {:>7.1} MiB/s ({:.1}–{:.1})",
            push.0, push.1, push.2, pull.0, pull.1, pull.2
        );
        (push.0, pull.0)
    };
    let (plain_push, plain_pull) = summary("plaintext", &plain);
    let (tls_push, tls_pull) = summary("TLS", &tls);
    println!(
        "TLS cost (median throughput lost): push {:.1}%  pull {:.1}%",
        (1.0 - tls_push / plain_push) * 100.0,
        (1.0 - tls_pull / plain_pull) * 100.0
    );

    let (server, cert) = start(&options.airlock, true)?;
    let cert = cert.context("the TLS server's certificate")?;
    let host = server.base.trim_start_matches("https://").to_string();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&cert)?));
    let probe = connector
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1")?,
            tokio::net::TcpStream::connect(&host).await?,
        )
        .await?;
    let (_, session) = probe.get_ref();
    println!(
        "negotiated: {:?}, {:?}",
        session.protocol_version().context("version")?,
        session.negotiated_cipher_suite().context("suite")?.suite()
    );
    drop(probe);
    for parallel in [1, 8] {
        let rate = handshakes(&host, &cert, parallel, options.handshake_secs).await?;
        println!("handshakes (TLS 1.3, ECDSA P-256, full, {parallel} at a time): {rate:.0}/s");
    }
    drop(server);
    Ok(())
}
