//! TLS termination end to end with reqwest and raw rustls connections: the real binary serving
//! the certificate of a CA made here (rcgen); refusals for a wrong CA, an expired certificate and
//! a missing client certificate; certificate reload (file change, SIGHUP, a bad file); HTTP/2
//! over ALPN; the connection limits over TLS; plaintext on addresses other than loopback;
//! `--self-signed`. Real clients (skopeo, podman, ORAS, the conformance suite) are in
//! `tls_clients.rs`.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncReadExt;

/// The whole error chain of a failed request, for asserting on what the client was told.
fn error_text(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A reqwest client trusting `ca`, presenting `identity` if given, offering `alpn`, opening a new
/// connection (with a full handshake) for every request.
fn client_with(ca: &Path, identity: Option<(&Path, &Path)>, alpn: &[&[u8]]) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_client_config(ca, identity, alpn))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Opens a TLS connection to `host` trusting `ca`; returns it (handshake done).
async fn tls_connect(
    host: &str,
    ca: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(ca, None, alpn)));
    let tcp = tokio::net::TcpStream::connect(host).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await
}

/// SHA-256 (hex) of the certificate a new connection to `host` is served.
async fn served_fingerprint(host: &str, ca: &Path) -> String {
    let stream = tls_connect(host, ca, &[b"http/1.1"])
        .await
        .expect("handshake");
    let leaf = &stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0];
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(leaf.as_ref()))
}

/// `ab12...` as the server logs and prints it: `AB:12:...`.
fn colon_hex(hex: &str) -> String {
    hex.to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

fn file_fingerprint(path: &Path) -> String {
    pem_fingerprint(&std::fs::read_to_string(path).unwrap())
}

#[tokio::test]
async fn push_and_pull_over_tls_with_the_test_ca() {
    let (s, pki) = TestServer::start_tls(&[]);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let (manifest, digest) = s
        .push_image("dev/tls/app", "v1", &[b"layer over tls"])
        .await;
    let pulled = s
        .http
        .get(s.url("/v2/dev/tls/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.version(), reqwest::Version::HTTP_11);
    assert_eq!(pulled.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), manifest.as_slice());
    // The served chain is the file's: leaf, then the intermediate.
    let stream = tls_connect(&s.host, &pki.ca_cert, &[]).await.unwrap();
    assert_eq!(stream.get_ref().1.peer_certificates().unwrap().len(), 2);
}

#[tokio::test]
async fn the_token_realm_is_https_when_tls_is_on_and_public_url_unset() {
    let (s, _pki) = TestServer::start_tls(&[]);
    let challenge = s.anonymous.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(challenge.status(), 401);
    let header = challenge.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        header.contains(&format!("realm=\"{}/auth/token\"", s.base)),
        "{header}"
    );
    assert!(header.contains("realm=\"https://127.0.0.1:"), "{header}");
}

#[tokio::test]
async fn tls_1_0_and_1_1_and_plaintext_clients_are_refused() {
    let (s, _pki) = TestServer::start_tls(&[]);
    // A plaintext request to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/v2/", s.host))
        .send()
        .await;
    assert!(plain.is_err(), "plaintext was answered: {plain:?}");
    // An OpenSSL client (Python's ssl, security level 0 so it may offer them) offering only
    // TLS 1.0 or only TLS 1.1 is refused by the server with an alert (rustls answers
    // handshake_failure or protocol_version), not by the client itself.
    let (host, port) = s.host.rsplit_once(':').unwrap();
    let output = std::process::Command::new("python3")
        .args(["-W", "ignore", "-c", OLD_TLS_CLIENT, host, port])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout);
    for version in ["TLSv1", "TLSv1_1"] {
        let line = text
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(version))
            .unwrap_or_else(|| panic!("no result for {version}: {text}"));
        assert!(
            line.starts_with("REFUSED") && line.contains("_ALERT_"),
            "{version} must be refused by the server: {line}"
        );
    }
    // A TLS 1.2-only client is served.
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_file_iter(
            &_pki.ca_cert,
        )
        .unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&s.host).await.unwrap();
    let stream = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn a_client_trusting_another_ca_refuses_the_server() {
    let (s, _pki) = TestServer::start_tls(&[]);
    let other = TestPki::new();
    let err = client_with(&other.ca_cert, None, &[])
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("a server certificate from an unknown CA must be refused");
    let text = error_text(&err);
    assert!(
        text.contains("invalid peer certificate: UnknownIssuer"),
        "{text}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_by_clients_and_logged_by_the_server() {
    let pki = TestPki::new();
    let (cert, key) = pki.server_pem(-30, -1);
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    // The server starts (it logs an error), and clients refuse the certificate.
    let (s, log) = TestServer::start_tls_logged(&pki, &[]);
    assert!(log.contains("EXPIRED"), "no expiry error logged");
    let err = client_with(&pki.ca_cert, None, &[])
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("an expired certificate must be refused");
    let text = error_text(&err);
    assert!(
        text.contains("invalid peer certificate: certificate expired"),
        "{text}"
    );
}

#[tokio::test]
async fn a_certificate_close_to_expiry_is_warned_about_and_exported_as_a_metric() {
    let pki = TestPki::new();
    let (cert, key) = pki.server_pem(-1, 5);
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    let (s, log) = TestServer::start_tls_logged(&pki, &[]);
    assert!(log.contains("expires in less than 14 days"), "no warning");
    let metrics = s.http.get(s.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("airlock_tls_certificate_expiry_timestamp_seconds"))
        .unwrap_or_else(|| panic!("no expiry gauge in {text}"));
    let expiry: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let in_five_days = (time::OffsetDateTime::now_utc() + time::Duration::days(5)).unix_timestamp();
    assert!((expiry - in_five_days as f64).abs() < 120.0, "{line}");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_accepts_one_from_client_ca() {
    let pki = TestPki::new();
    let ca = pki.ca_cert.display().to_string();
    let s = TestServer::start_tls_with(&pki, &[], &[("AIRLOCK_TLS__CLIENT_CA", &ca)]);
    let (cert, key) = pki.client_files("ci-runner");

    let err = client_with(&pki.ca_cert, None, &[])
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("no client certificate must be refused");
    let text = error_text(&err);
    assert!(text.contains("CertificateRequired"), "{text}");

    let other = TestPki::new();
    let (foreign_cert, foreign_key) = other.client_files("stranger");
    let err = client_with(&pki.ca_cert, Some((&foreign_cert, &foreign_key)), &[])
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("a client certificate from another CA must be refused");
    let text = error_text(&err);
    assert!(
        text.contains("UnknownCA") || text.contains("BadCertificate"),
        "{text}"
    );

    // A certificate from client_ca passes the handshake; the request still needs credentials.
    let with_cert = client_with(&pki.ca_cert, Some((&cert, &key)), &[]);
    let response = with_cert.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = with_cert
        .get(s.url("/v2/"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn optional_client_auth_accepts_no_certificate_but_refuses_a_foreign_one() {
    let pki = TestPki::new();
    let ca = pki.ca_cert.display().to_string();
    let s = TestServer::start_tls_with(
        &pki,
        &[],
        &[
            ("AIRLOCK_TLS__CLIENT_CA", &ca),
            ("AIRLOCK_TLS__CLIENT_AUTH", "optional"),
        ],
    );
    let response = client_with(&pki.ca_cert, None, &[])
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let other = TestPki::new();
    let (foreign_cert, foreign_key) = other.client_files("stranger");
    let err = client_with(&pki.ca_cert, Some((&foreign_cert, &foreign_key)), &[])
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("a client certificate from another CA must be refused");
    assert!(
        error_text(&err).contains("UnknownCA") || error_text(&err).contains("BadCertificate"),
        "{}",
        error_text(&err)
    );
}

#[tokio::test]
async fn http2_is_negotiated_over_alpn_and_serves_pushes_and_pulls() {
    let (s, pki) = TestServer::start_tls(&[]);
    let h2 = client_with(&pki.ca_cert, None, &[b"h2", b"http/1.1"]);
    let response = h2.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 401);

    let content = b"a blob pushed over HTTP/2".repeat(1000);
    let digest = sha256(&content);
    let pushed = h2
        .post(s.url(&format!("/v2/dev/tls/h2/blobs/uploads/?digest={digest}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.version(), reqwest::Version::HTTP_2);
    assert_eq!(pushed.status(), 201);
    let pulled = h2
        .get(s.url(&format!("/v2/dev/tls/h2/blobs/{digest}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), content.as_slice());
    // A client offering only http/1.1 gets HTTP/1.1.
    let stream = tls_connect(&s.host, &pki.ca_cert, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

/// Reads until the server closes the connection; returns how long that took (or fails after 10 s).
async fn time_until_closed(mut stream: impl tokio::io::AsyncRead + Unpin) -> Duration {
    let start = Instant::now();
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for 10 s"),
        }
    }
}

#[tokio::test]
async fn silent_clients_cannot_hold_a_slot_in_the_handshake_or_idle_on_http2() {
    let (s, pki) = TestServer::start_tls(&[("AIRLOCK_LIMITS__HEADER_READ_TIMEOUT_SECS", "2")]);
    // A TCP connection that never starts the handshake is closed at the header timeout.
    let tcp = tokio::net::TcpStream::connect(&s.host).await.unwrap();
    let waited = time_until_closed(tcp).await;
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    // An HTTP/2 connection that sends no request is closed too (hyper has no header timeout for
    // HTTP/2; airlock closes a connection without a request in flight for that long).
    let h2 = tls_connect(&s.host, &pki.ca_cert, &[b"h2"]).await.unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let waited = time_until_closed(h2).await;
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    // And an idle HTTP/1.1 connection, as in plaintext.
    let h1 = tls_connect(&s.host, &pki.ca_cert, &[b"http/1.1"])
        .await
        .unwrap();
    let waited = time_until_closed(h1).await;
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_answered_503_over_tls() {
    let (s, pki) = TestServer::start_tls(&[("AIRLOCK_LIMITS__MAX_CONNECTIONS", "2")]);
    let _held: Vec<_> = futures::future::join_all(
        (0..2).map(|_| tls_connect(&s.host, &pki.ca_cert, &[b"http/1.1"])),
    )
    .await
    .into_iter()
    .map(|c| c.unwrap())
    .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = client_with(&pki.ca_cert, None, &[b"h2", b"http/1.1"])
        .get(s.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
}

/// Pushes distinct blobs over new connections until `stop`; returns (pushes, failures).
async fn push_loop(
    base: String,
    ca: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> (usize, Vec<String>) {
    let client = client_with(&ca, None, &[b"h2", b"http/1.1"]);
    let (mut pushes, mut failures) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let content = format!("rotation push {pushes} {}", uuid_like()).into_bytes();
        let digest = sha256(&content);
        let result = client
            .post(format!(
                "{base}/v2/dev/tls/rotation/blobs/uploads/?digest={digest}"
            ))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .body(content)
            .send()
            .await;
        match result {
            Ok(response) if response.status() == 201 => {}
            Ok(response) => failures.push(format!("status {}", response.status())),
            Err(err) => failures.push(error_text(&err)),
        }
        pushes += 1;
    }
    (pushes, failures)
}

fn uuid_like() -> String {
    format!("{:?}", Instant::now())
}

async fn wait_for_fingerprint(host: &str, ca: &Path, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if served_fingerprint(host, ca).await == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rotated_certificate_files_are_served_to_new_connections_with_no_failed_push() {
    let pki = TestPki::new();
    let (s, log) = TestServer::start_tls_logged(
        &pki,
        &[
            ("AIRLOCK_TLS__RELOAD_INTERVAL_SECS", "1"),
            ("AIRLOCK_LOG__LEVEL", "info"),
        ],
    );
    let first = file_fingerprint(&pki.server_cert);
    assert_eq!(served_fingerprint(&s.host, &pki.ca_cert).await, first);
    // A connection opened before the rotation keeps working after it.
    let old = client_with(&pki.ca_cert, None, &[b"http/1.1"]);
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = tokio::spawn(push_loop(s.base.clone(), pki.ca_cert.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = pki.rotate_server_files();
    assert_ne!(first, second);
    wait_for_fingerprint(&s.host, &pki.ca_cert, &second).await;
    let third = pki.rotate_server_files();
    wait_for_fingerprint(&s.host, &pki.ca_cert, &third).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (pushes, failures) = pusher.await.unwrap();
    assert!(pushes >= 10, "only {pushes} pushes ran");
    assert!(
        failures.is_empty(),
        "{} of {pushes} pushes failed: {failures:?}",
        failures.len()
    );
    assert!(
        log_shows(
            &log,
            "TLS certificate reloaded (the certificate or key file changed)"
        )
        .await
    );
    assert!(
        log.contains(&colon_hex(&third)),
        "the reload does not log the new fingerprint"
    );
    assert_eq!(old.get(s.url("/v2/")).send().await.unwrap().status(), 401);
}

/// Whether the server's log shows `text` within 5 s: the new certificate can be served a moment
/// before the line announcing it has been read from the server's stderr.
async fn log_shows(log: &common::ServerLog, text: &str) -> bool {
    for _ in 0..50 {
        if log.contains(text) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_file_keeps_the_served_one() {
    let pki = TestPki::new();
    // File polling rarely enough that only SIGHUP can explain a reload within the test.
    let (s, log) = TestServer::start_tls_logged(
        &pki,
        &[
            ("AIRLOCK_TLS__RELOAD_INTERVAL_SECS", "3600"),
            ("AIRLOCK_LOG__LEVEL", "info"),
        ],
    );
    let first = file_fingerprint(&pki.server_cert);
    let second = pki.rotate_server_files();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_fingerprint(&s.host, &pki.ca_cert).await, first);
    let hup = || {
        let status = Command::new("kill")
            .args(["-HUP", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    hup();
    wait_for_fingerprint(&s.host, &pki.ca_cert, &second).await;
    assert!(log_shows(&log, "TLS certificate reloaded (SIGHUP)").await);

    // Garbage in the certificate file: the reload fails, names the file, and the served
    // certificate stays.
    std::fs::write(&pki.server_cert, "not a certificate\n").unwrap();
    hup();
    let cert_file = pki.server_cert.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.contains("reload (SIGHUP) failed") {
        assert!(Instant::now() < deadline, "no reload failure logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log.contains(&cert_file),
        "the failure does not name {cert_file}"
    );
    assert_eq!(served_fingerprint(&s.host, &pki.ca_cert).await, second);

    // A certificate whose key is not the key file's: refused the same way.
    let (cert, _other_key) = pki.server_pem(-1, 30);
    std::fs::write(&pki.server_cert, cert).unwrap();
    hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.count("reload (SIGHUP) failed") < 2 {
        assert!(Instant::now() < deadline, "no second reload failure logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log.contains("does not fit"),
        "the key mismatch is not named"
    );
    assert_eq!(served_fingerprint(&s.host, &pki.ca_cert).await, second);
}

/// Runs `airlock serve` with `args` (and `env`); returns the exit code if it refused to start,
/// or the first stdout lines (up to `lines`) and the child if it started.
fn serve(
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    lines: usize,
) -> Result<(Vec<String>, std::process::Child), (i32, String)> {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while printed.len() < lines {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            printed.push(line);
            continue;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Err((status.code().unwrap_or(-1), stderr));
        }
        assert!(
            Instant::now() < deadline,
            "airlock neither started nor exited"
        );
    }
    Ok((printed, child))
}

#[tokio::test]
async fn plaintext_on_a_non_loopback_address_is_refused_without_insecure_listen() {
    let temp = tempfile::tempdir().unwrap();
    let refused = serve(&temp.path().join("a"), &["--listen", "0.0.0.0:0"], &[], 1);
    let Err((code, stderr)) = refused else {
        panic!("airlock served plaintext on 0.0.0.0 without --insecure-listen")
    };
    assert_ne!(code, 0);
    for fix in ["[tls]", "--self-signed", "--insecure-listen", "0.0.0.0"] {
        assert!(
            stderr.contains(fix),
            "the refusal does not name {fix}: {stderr}"
        );
    }
    assert!(
        !temp.path().join("a/metadata.db").exists(),
        "storage was opened before refusing"
    );

    let (lines, mut child) = serve(
        &temp.path().join("b"),
        &["--listen", "0.0.0.0:0", "--insecure-listen"],
        &[],
        1,
    )
    .expect("--insecure-listen starts");
    let port = lines[0].rsplit(':').next().unwrap().to_string();
    assert!(
        lines[0].starts_with("airlock listening on http://0.0.0.0:"),
        "{}",
        lines[0]
    );
    install_crypto_provider();
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/v2/"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let _ = child.kill();
    let _ = child.wait();

    // The config field does the same, and loopback needs neither.
    let (_, mut child) = serve(
        &temp.path().join("c"),
        &["--listen", "0.0.0.0:0"],
        &[("AIRLOCK_INSECURE_LISTEN", "true")],
        1,
    )
    .expect("insecure_listen = true starts");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn inconsistent_tls_settings_are_refused_at_start_naming_the_fix() {
    let pki = TestPki::new();
    let temp = tempfile::tempdir().unwrap();
    let cert = pki.server_cert.display().to_string();
    let key = pki.server_key.display().to_string();
    type Case<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 6] = [
        (
            &["--listen", "127.0.0.1:0", "--self-signed"],
            vec![("AIRLOCK_TLS__CERT", &cert), ("AIRLOCK_TLS__KEY", &key)],
            "--self-signed and [tls] exclude each other",
        ),
        (
            &["--listen", "127.0.0.1:0"],
            vec![
                ("AIRLOCK_TLS__CERT", &cert),
                ("AIRLOCK_TLS__KEY", &key),
                ("AIRLOCK_TLS__CLIENT_AUTH", "optional"),
            ],
            "needs tls.client_ca",
        ),
        (
            // `required` without a CA would silently ask no client for a certificate.
            &["--listen", "127.0.0.1:0"],
            vec![
                ("AIRLOCK_TLS__CERT", &cert),
                ("AIRLOCK_TLS__KEY", &key),
                ("AIRLOCK_TLS__CLIENT_AUTH", "required"),
            ],
            "tls.client_auth = \"required\" needs tls.client_ca",
        ),
        (
            // An interval whose timer would overflow.
            &["--listen", "127.0.0.1:0"],
            vec![
                ("AIRLOCK_TLS__CERT", &cert),
                ("AIRLOCK_TLS__KEY", &key),
                ("AIRLOCK_TLS__RELOAD_INTERVAL_SECS", "99999999999"),
            ],
            "tls.reload_interval_secs must be between 1 and",
        ),
        (
            &["--listen", "127.0.0.1:0"],
            vec![("AIRLOCK_TLS__CERT", &key), ("AIRLOCK_TLS__KEY", &key)],
            "no CERTIFICATE block",
        ),
        (
            &["--listen", "127.0.0.1:0"],
            vec![
                ("AIRLOCK_TLS__CERT", &cert),
                ("AIRLOCK_TLS__KEY", "/nonexistent/key.pem"),
            ],
            "cannot read /nonexistent/key.pem",
        ),
    ];
    for (i, (args, env, words)) in cases.into_iter().enumerate() {
        let result = serve(&temp.path().join(i.to_string()), args, &env, 1);
        let Err((code, stderr)) = result else {
            panic!("case {i} started")
        };
        assert_ne!(code, 0);
        assert!(stderr.contains(words), "case {i}: {stderr}");
    }
}

#[tokio::test]
async fn self_signed_writes_a_certificate_once_prints_its_fingerprint_and_a_pinning_client_connects()
 {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let args = ["--listen", "127.0.0.1:0", "--self-signed"];
    let (lines, mut child) = serve(&data, &args, &[], 4).expect("--self-signed starts");
    let cert = data.join("tls/self-signed.crt");
    let key = data.join("tls/self-signed.key");
    assert!(
        lines[0].starts_with("airlock listening on https://127.0.0.1:"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        format!("self-signed TLS certificate (new): {}", cert.display())
    );
    let printed = lines[2]
        .strip_prefix("SHA-256 fingerprint: ")
        .expect("fingerprint line");
    assert_eq!(
        printed.replace(':', "").to_lowercase(),
        file_fingerprint(&cert)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
    }
    // A client that pins the printed certificate (its only root) connects.
    let base = lines[0]
        .trim_start_matches("airlock listening on ")
        .to_string();
    let pinned = client_with(&cert, None, &[]);
    let answer = pinned.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let _ = child.kill();
    let _ = child.wait();

    // A restart reuses it.
    let (lines, mut child) = serve(&data, &args, &[], 3).expect("restart");
    assert_eq!(
        lines[1],
        format!("self-signed TLS certificate: {}", cert.display())
    );
    assert_eq!(lines[2], format!("SHA-256 fingerprint: {printed}"));
    let _ = child.kill();
    let _ = child.wait();

    // An expired one is replaced, and the log says so.
    let pki = TestPki::new();
    let (expired, expired_key) = pki.server_pem(-30, -1);
    std::fs::write(&cert, expired).unwrap();
    std::fs::write(&key, expired_key).unwrap();
    let (lines, mut child) = serve(&data, &args, &[], 3).expect("restart with an expired one");
    assert!(lines[1].contains("(new)"), "{lines:?}");
    assert_ne!(lines[2], format!("SHA-256 fingerprint: {printed}"));
    let _ = child.kill();
    let _ = child.wait();
}

/// A request body that sends `first` at once and then a byte every 300 ms, or nothing more.
fn slow_body(first: &'static [u8], trickle: bool) -> reqwest::Body {
    let rest = futures::stream::unfold((), move |()| async move {
        if !trickle {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), ()))
    });
    let first = futures::stream::once(async move { Ok(bytes::Bytes::from_static(first)) });
    reqwest::Body::wrap_stream(futures::StreamExt::chain(first, rest))
}

#[tokio::test]
async fn body_timeouts_hold_for_http2_requests() {
    let (s, pki) = TestServer::start_tls(&[
        ("AIRLOCK_LIMITS__REQUEST_BODY_TIMEOUT_SECS", "1"),
        ("AIRLOCK_LIMITS__BODY_TIMEOUT_SECS", "2"),
    ]);
    let h2 = client_with(&pki.ca_cert, None, &[b"h2"]);
    // A JSON API body trickled a byte at a time: 408 at the request body deadline.
    let started = Instant::now();
    let answer = h2
        .post(s.url("/api/v1/keys"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body(slow_body(b"{", true))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer.status(), 408);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("limits.request_body_timeout_secs"),
        "the answer does not name the setting"
    );
    // An upload chunk that stops sending: refused at the progress timeout, nothing staged.
    let start = h2
        .post(s.url("/v2/dev/tls/stall/blobs/uploads/"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = s.location(&start);
    let started = Instant::now();
    let answer = h2
        .patch(&location)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/octet-stream")
        .body(slow_body(b"some bytes, then silence", false))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
    assert_eq!(answer.status(), 400);
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let text = answer.text().await.unwrap();
    assert!(
        text.contains("BLOB_UPLOAD_INVALID") && text.contains("body_timeout_secs"),
        "{text}"
    );
    let status = h2
        .get(&location)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.headers()["range"],
        "0-0",
        "the stalled chunk left data staged"
    );
}

/// Offers one old TLS version at a time to `host port` and prints `ACCEPTED|REFUSED VERSION ...`.
const OLD_TLS_CLIENT: &str = r#"
import ssl, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = v
    ctx.maximum_version = v
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname="localhost") as t:
                print("ACCEPTED", v.name, t.version())
    except ssl.SSLError as e:
        print("REFUSED", v.name, e.reason)
"#;
