//! Real, independent clients over TLS with a CA made by the test: skopeo and podman (Go,
//! containers/image; `--cert-dir` holding the CA as `ca.crt`), the ORAS Python client (requests,
//! `tls_verify=CA`), and the OCI conformance suite (Go, `SSL_CERT_FILE`). Each pushes and pulls
//! with the right CA, and refuses a server whose certificate is from another CA or expired, with
//! the certificate problem named in its error.
//!
//! Locally a missing client skips with a notice; with `AIRLOCK_INTEROP=required` (CI) it fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::json;

/// A one-layer image in an OCI layout whose layer is a real gzipped tar with the right diff_id,
/// as podman checks it when it stores the image.
fn image_layout(dir: &Path) -> String {
    use std::io::Write;
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("hello.txt"), "hello over TLS\n").unwrap();
    let tar = dir.join("layer.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg("hello.txt")
        .status()
        .expect("run tar");
    assert!(status.success());
    let tar = std::fs::read(&tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let blob = |content: &[u8]| {
        let digest = sha256(content);
        std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), content).unwrap();
        digest
    };
    let layer_digest = blob(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        "config": {}
    }))
    .unwrap();
    let config_digest = blob(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_digest = blob(&manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    manifest_digest
}

/// A directory with `ca` as `ca.crt`, as containers/image's `--cert-dir` expects.
fn cert_dir(parent: &Path, ca: &Path) -> PathBuf {
    let dir = parent.join(format!("certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    dir
}

fn creds() -> String {
    format!("admin:{ADMIN_PASSWORD}")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn skopeo_copy(certs: &Path, from: &str, to: &str) -> Output {
    let creds = creds();
    let mut command = Command::new("skopeo");
    command.args(["--insecure-policy", "copy"]);
    if from.starts_with("docker://") {
        command
            .arg("--src-cert-dir")
            .arg(certs)
            .args(["--src-creds", &creds]);
    }
    if to.starts_with("docker://") {
        command
            .arg("--dest-cert-dir")
            .arg(certs)
            .args(["--dest-creds", &creds]);
    }
    command.args([from, to]).output().expect("run skopeo")
}

/// Runs podman with its own storage under `root` (vfs, so it works as root in a container).
fn podman(root: &Path, args: &[&str]) -> Output {
    Command::new("podman")
        .arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .args(args)
        .env("TMPDIR", root)
        .output()
        .expect("run podman")
}

fn oras(host: &str, repo: &str, work: &Path, ca: &Path) -> Output {
    Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/oras_tls.py"
        ))
        .args([host, repo])
        .arg(work)
        .arg(ca)
        .env("AIRLOCK_USER", "admin")
        .env("AIRLOCK_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run python3")
}

fn skopeo_ready() -> bool {
    interop_tool_available("skopeo", &["--version"])
}

fn podman_ready() -> bool {
    interop_tool_available("podman", &["--version"])
}

fn oras_ready() -> bool {
    interop_tool_available("python3", &["-c", "import oras.client"])
}

async fn manifest_digest(s: &TestServer, repo: &str, tag: &str) -> String {
    let response = s
        .http
        .head(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{repo}:{tag} is not in the registry"
    );
    response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn skopeo_copies_an_image_in_and_out_over_tls() {
    if !skopeo_ready() {
        return;
    }
    let (s, pki) = TestServer::start_tls(&[]);
    let work = tempfile::tempdir().unwrap();
    let digest = image_layout(work.path());
    let certs = cert_dir(work.path(), &pki.ca_cert);
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    let remote = format!("docker://{}/dev/tls/skopeo:v1", s.host);
    let pushed = skopeo_copy(&certs, &layout, &remote);
    assert!(pushed.status.success(), "skopeo push: {}", text(&pushed));
    assert_eq!(manifest_digest(&s, "dev/tls/skopeo", "v1").await, digest);
    let out = format!("oci:{}:v1", work.path().join("out").display());
    let pulled = skopeo_copy(&certs, &remote, &out);
    assert!(pulled.status.success(), "skopeo pull: {}", text(&pulled));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("out/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
}

#[tokio::test]
async fn podman_pulls_and_pushes_over_tls() {
    if !podman_ready() || !skopeo_ready() {
        return;
    }
    let (s, pki) = TestServer::start_tls(&[]);
    let work = tempfile::tempdir().unwrap();
    let digest = image_layout(work.path());
    let certs = cert_dir(work.path(), &pki.ca_cert);
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    let seeded = skopeo_copy(
        &certs,
        &layout,
        &format!("docker://{}/dev/tls/seed:v1", s.host),
    );
    assert!(seeded.status.success(), "skopeo seed: {}", text(&seeded));
    let certs = certs.display().to_string();
    let creds = creds();
    let image = format!("{}/dev/tls/seed:v1", s.host);
    let pulled = podman(
        work.path(),
        &["pull", "--cert-dir", &certs, "--creds", &creds, &image],
    );
    assert!(pulled.status.success(), "podman pull: {}", text(&pulled));
    let target = format!("docker://{}/dev/tls/podman:v1", s.host);
    let pushed = podman(
        work.path(),
        &[
            "push",
            "--cert-dir",
            &certs,
            "--creds",
            &creds,
            &image,
            &target,
        ],
    );
    assert!(pushed.status.success(), "podman push: {}", text(&pushed));
    // podman may rewrite the manifest (its own media type), so compare the layer it carries.
    let manifest: serde_json::Value = s
        .http
        .get(s.url("/v2/dev/tls/podman/manifests/v1"))
        .header("accept", format!("{OCI_MANIFEST}, {DOCKER_MANIFEST}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let original: serde_json::Value = s
        .http
        .get(s.url(&format!("/v2/dev/tls/seed/manifests/{digest}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        manifest["layers"][0]["digest"],
        original["layers"][0]["digest"]
    );
}

#[tokio::test]
async fn oras_pushes_and_pulls_over_tls() {
    if !oras_ready() {
        return;
    }
    let (s, pki) = TestServer::start_tls(&[]);
    let work = tempfile::tempdir().unwrap();
    let output = oras(&s.host, "dev/tls/oras", work.path(), &pki.ca_cert);
    assert!(output.status.success(), "oras: {}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["pulled"], json!(["payload.bin"]));
    manifest_digest(&s, "dev/tls/oras", "tls").await;
}

/// Every client against `s` trusting `ca`: each must fail, and its error must contain one of
/// the `expected` phrases for its kind (Go, Python).
fn every_client_refuses(s: &TestServer, ca: &Path, go_expected: &str, python_expected: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    image_layout(work.path());
    let certs = cert_dir(work.path(), ca);
    if skopeo_ready() {
        let layout = format!("oci:{}:v1", work.path().join("layout").display());
        let output = skopeo_copy(
            &certs,
            &layout,
            &format!("docker://{}/dev/tls/no:v1", s.host),
        );
        assert!(!output.status.success(), "skopeo accepted the server");
        assert!(
            text(&output).contains(go_expected),
            "skopeo: {}",
            text(&output)
        );
    }
    if podman_ready() {
        let certs = certs.display().to_string();
        let image = format!("{}/dev/tls/no:v1", s.host);
        let output = podman(
            work.path(),
            &["pull", "--cert-dir", &certs, "--creds", &creds(), &image],
        );
        assert!(!output.status.success(), "podman accepted the server");
        assert!(
            text(&output).contains(go_expected),
            "podman: {}",
            text(&output)
        );
    }
    if oras_ready() {
        let output = oras(&s.host, "dev/tls/no", &work.path().join("oras"), ca);
        assert!(!output.status.success(), "oras accepted the server");
        let said = text(&output);
        assert!(
            said.contains("CERTIFICATE_VERIFY_FAILED")
                && python_expected.iter().any(|p| said.contains(p)),
            "oras: {said}"
        );
    }
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_by_every_client() {
    let (s, _pki) = TestServer::start_tls(&[]);
    let other = TestPki::new();
    every_client_refuses(
        &s,
        &other.ca_cert,
        "x509: certificate signed by unknown authority",
        &[
            "unable to get local issuer certificate",
            "unable to get issuer certificate",
        ],
    );
    // And reqwest (rustls), as the CLI and tests use it.
    let err = https_client(&other.ca_cert, false)
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("refused");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused_by_every_client() {
    let pki = TestPki::new();
    let (cert, key) = pki.server_pem(-30, -1);
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    let s = TestServer::start_tls_with(&pki, &[], &[]);
    every_client_refuses(
        &s,
        &pki.ca_cert,
        "x509: certificate has expired or is not yet valid",
        &["certificate has expired"],
    );
    let err = https_client(&pki.ca_cert, false)
        .get(s.url("/v2/"))
        .send()
        .await
        .expect_err("refused");
    assert!(format!("{err:?}").contains("Expired"), "{err:?}");
}

/// Runs the OCI conformance suite (`../shared/tools/oci-conformance/run`) against `base`,
/// trusting `ca` if given; returns (passed, the names of the failed specs). The suite's client
/// does not verify the server's certificate (it passes with any), so this checks the protocol
/// over TLS; verification is what the other clients here check.
fn conformance(base: &str, ca: Option<&Path>, report: &Path) -> (u32, Vec<String>) {
    let run = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tools/oci-conformance/run"
    ));
    let mut command = Command::new(run);
    command
        .args([
            base,
            "dev/conformance",
            "admin",
            ADMIN_PASSWORD,
            "dev/other",
        ])
        .env("OCI_REPORT_DIR", report);
    if let Some(ca) = ca {
        command.env("SSL_CERT_FILE", ca);
    }
    let output = command.output().expect("run the conformance suite");
    let said = text(&output);
    let passed = said
        .lines()
        .find_map(|l| {
            l.split(" Passed")
                .next()
                .filter(|_| l.contains(" Passed |"))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pass count in the suite's output: {said}"));
    let mut failed: Vec<String> = said
        .lines()
        .filter(|l| l.trim_start().starts_with("[FAIL]"))
        .map(|l| l.trim().to_string())
        .collect();
    failed.sort();
    failed.dedup();
    (passed, failed)
}

#[tokio::test]
async fn the_oci_conformance_suite_passes_over_tls_as_over_plaintext() {
    let run = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tools/oci-conformance/run"
    ));
    if !run.exists() {
        assert_ne!(
            std::env::var("AIRLOCK_INTEROP").as_deref(),
            Ok("required"),
            "the conformance suite is required but {} is missing",
            run.display()
        );
        eprintln!("NOTICE: skipping: {} is missing", run.display());
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let plain = TestServer::start();
    let (tls, pki) = TestServer::start_tls(&[]);
    let (plain_passed, plain_failed) = conformance(&plain.base, None, &work.path().join("plain"));
    let (tls_passed, tls_failed) =
        conformance(&tls.base, Some(&pki.ca_cert), &work.path().join("tls"));
    eprintln!("conformance: plaintext {plain_passed} passed, TLS {tls_passed} passed");
    assert!(plain_passed > 0);
    assert_eq!(tls_passed, plain_passed, "TLS failed: {tls_failed:#?}");
    assert_eq!(tls_failed, plain_failed);
}
