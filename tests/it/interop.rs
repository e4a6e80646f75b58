//! Interop with real, independent OCI clients: skopeo (Debian) and the ORAS Python client (PyPI).
//!
//! Locally a missing client skips the test with a notice; with `AIRLOCK_INTEROP=required` (CI) a
//! missing client is a failure.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ADMIN_PASSWORD, OCI_INDEX, OCI_MANIFEST, TestServer, interop_tool_available, sha256};
use serde_json::{Value, json};

/// Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`).
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn blob(&self, media_type: &str, content: &[u8]) -> Value {
        let digest = sha256(content);
        std::fs::write(self.dir.join("blobs/sha256").join(&digest[7..]), content).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": content.len()})
    }

    /// An image with `layers` pseudo-random layers of the given sizes; returns its descriptor.
    fn image(&self, seed: u8, arch: &str, layer_sizes: &[usize]) -> Value {
        let layers: Vec<Value> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let content = gzip(&pseudo_random(
                    *size,
                    seed.wrapping_mul(31).wrapping_add(i as u8),
                ));
                self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &content)
            })
            .collect();
        let diff_ids: Vec<String> = (0..layers.len())
            .map(|i| sha256(format!("{seed}-{i}").as_bytes()))
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}))
        .unwrap();
        let config = self.blob("application/vnd.oci.image.config.v1+json", &config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}))
        .unwrap();
        let mut descriptor = self.blob(OCI_MANIFEST, &manifest);
        descriptor["platform"] = json!({"architecture": arch, "os": "linux"});
        descriptor
    }

    fn index(&self, entries: &[(Value, &str)]) {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(d, name)| {
                let mut d = d.clone();
                d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    fn read_blob(&self, digest: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("blobs/sha256").join(&digest[7..])).unwrap()
    }

    fn ref_digest(&self, name: &str) -> String {
        let index: Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} in {index}"))
    }
}

/// Real gzip, so clients that inspect layer compression copy the layer as it is.
fn gzip(content: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(content).unwrap();
    encoder.finish().unwrap()
}

fn pseudo_random(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs skopeo as `admin`.
fn skopeo(args: &[&str]) -> std::process::Output {
    skopeo_as(&format!("admin:{ADMIN_PASSWORD}"), args)
}

/// Runs skopeo with `user:password` credentials for both ends of a copy (or an inspect).
fn skopeo_as(creds: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("skopeo");
    command.arg("--insecure-policy");
    match args.split_first() {
        Some((&"copy", rest)) => {
            command
                .args(["copy", "--src-creds", creds, "--dest-creds", creds])
                .args(rest);
        }
        Some((&"inspect", rest)) => {
            command.args(["inspect", "--creds", creds]).args(rest);
        }
        _ => {
            command.args(args);
        }
    }
    command.output().expect("run skopeo")
}

fn skopeo_ok(args: &[&str]) -> Vec<u8> {
    let output = skopeo(args);
    assert!(
        output.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn skopeo_copies_a_multi_layer_image_in_and_out_unchanged() {
    if !interop_tool_available("skopeo", &["--version"]) {
        return;
    }
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let src = Layout::new(&work.path().join("src"));
    let image = src.image(1, "amd64", &[1_000, 3 * 1024 * 1024 + 17, 10, 200_000]);
    src.index(&[(image.clone(), "1")]);
    let digest = image["digest"].as_str().unwrap().to_string();

    let dest = format!("docker://{}/dev/team/app:1", s.host);
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", src.dir.display()),
        &dest,
    ]);

    // The registry serves the exact manifest bytes, by tag and by digest.
    let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert_eq!(sha256(&raw), digest, "manifest changed on the way in");
    let by_digest = format!("docker://{}/dev/team/app@{digest}", s.host);
    let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &by_digest]);
    assert_eq!(sha256(&raw), digest);
    let inspect: Value =
        serde_json::from_slice(&skopeo_ok(&["inspect", "--tls-verify=false", &dest])).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 4);

    // Pull it back out: same manifest digest, byte-identical blobs.
    let out = Layout::new(&work.path().join("out"));
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &by_digest,
        &format!("oci:{}:pulled", out.dir.display()),
    ]);
    assert_eq!(out.ref_digest("pulled"), digest);
    let manifest: Value = serde_json::from_slice(&out.read_blob(&digest)).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let d = layer["digest"].as_str().unwrap();
        assert_eq!(
            sha256(&out.read_blob(d)),
            sha256(&src.read_blob(d)),
            "layer {d}"
        );
    }

    // skopeo is refused in a gated stage, with the promotion message.
    let denied = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", src.dir.display()),
        &format!("docker://{}/prod/team/app:1", s.host),
    ]);
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("only by promotion"), "{stderr}");
}

#[tokio::test]
async fn skopeo_copies_an_image_index_with_all_platforms() {
    if !interop_tool_available("skopeo", &["--version"]) {
        return;
    }
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let src = Layout::new(&work.path().join("src"));
    let amd64 = src.image(2, "amd64", &[5_000, 70_000]);
    let arm64 = src.image(3, "arm64", &[6_000]);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd64, arm64]}))
    .unwrap();
    let index_descriptor = src.blob(OCI_INDEX, &index);
    src.index(&[(index_descriptor.clone(), "multi")]);
    let index_digest = index_descriptor["digest"].as_str().unwrap().to_string();

    let dest = format!("docker://{}/dev/team/multi:2.0", s.host);
    skopeo_ok(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", src.dir.display()),
        &dest,
    ]);
    let raw = skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert_eq!(sha256(&raw), index_digest, "index changed on the way in");
    let head = s
        .http
        .head(s.url("/v2/dev/team/multi/manifests/2.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-type"], OCI_INDEX);
    assert_eq!(
        head.headers()["docker-content-digest"],
        index_digest.as_str()
    );

    let out = Layout::new(&work.path().join("out"));
    skopeo_ok(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:multi", out.dir.display()),
    ]);
    assert_eq!(out.ref_digest("multi"), index_digest);
    for child in [&amd64, &arm64] {
        let d = child["digest"].as_str().unwrap();
        assert_eq!(sha256(&out.read_blob(d)), d);
    }
}

#[tokio::test]
async fn oras_pushes_and_pulls_an_artifact_and_its_referrer() {
    if !interop_tool_available("python3", &["-c", "import oras.client"]) {
        return;
    }
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/oras_roundtrip.py"
    );
    let output = Command::new("python3")
        .args([script, &s.host, "dev/team/bundle"])
        .arg(work.path())
        .env("AIRLOCK_USER", "admin")
        .env("AIRLOCK_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "oras script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("script prints JSON");
    assert_eq!(report["pulled"], json!(["data.bin", "report.txt"]));
    assert_eq!(report["oci_subject"], report["artifact_digest"]);

    // The artifact keeps its artifactType, and the referrers API lists the referrer under it.
    let artifact = report["artifact_digest"].as_str().unwrap();
    let manifest: Value = s
        .http
        .get(s.url(&format!("/v2/dev/team/bundle/manifests/{artifact}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["artifactType"], report["artifact_type"]);
    let referrers: Value = s
        .http
        .get(s.url(&format!(
            "/v2/dev/team/bundle/referrers/{artifact}?artifactType={}",
            report["referrer_type"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = referrers["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["digest"], report["referrer_digest"]);
    assert_eq!(listed[0]["artifactType"], report["referrer_type"]);
}

#[tokio::test]
async fn skopeo_with_credentials_follows_each_role() {
    if !interop_tool_available("skopeo", &["--version"]) {
        return;
    }
    let s = TestServer::start();
    // A builder for dev/team/*, a deployer for prod/team/*.
    let builder_home = tempfile::tempdir().unwrap();
    let mut created = Vec::new();
    for (name, role, scope) in [
        ("ci-builder", "builder", "dev/team/*"),
        ("deployer", "deployer", "prod/team/*"),
    ] {
        let (code, out, err) = s.cli(&["users", "add", name, "--output", "json"]);
        assert_eq!(code, 0, "{out}{err}");
        let user: Value = serde_json::from_str(&out).unwrap();
        created.push((name, user["password"].as_str().unwrap().to_string()));
        let (code, _, err) = s.cli(&["roles", "grant", name, role, "--scope", scope]);
        assert_eq!(code, 0, "{err}");
    }
    drop(builder_home);
    let builder = format!("ci-builder:{}", created[0].1);
    let deployer = format!("deployer:{}", created[1].1);

    let work = tempfile::tempdir().unwrap();
    let src = Layout::new(&work.path().join("src"));
    let image = src.image(9, "amd64", &[2_000]);
    src.index(&[(image, "1")]);
    let layout = format!("oci:{}:1", src.dir.display());

    // The builder pushes to dev; the deployer may not.
    let ok = skopeo_as(
        &builder,
        &[
            "copy",
            "--dest-tls-verify=false",
            &layout,
            &format!("docker://{}/dev/team/app:1", s.host),
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = skopeo_as(
        &deployer,
        &[
            "copy",
            "--dest-tls-verify=false",
            &layout,
            &format!("docker://{}/dev/team/app:2", s.host),
        ],
    );
    assert!(!refused.status.success());
    // Nobody pushes to prod, not even admin; those who may read prod learn why.
    for creds in [&builder, &deployer, &format!("admin:{ADMIN_PASSWORD}")] {
        let refused = skopeo_as(
            creds,
            &[
                "copy",
                "--dest-tls-verify=false",
                &layout,
                &format!("docker://{}/prod/team/app:1", s.host),
            ],
        );
        assert!(!refused.status.success(), "{creds} pushed to prod");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("denied") || stderr.contains("403"),
            "{stderr}"
        );
        if !creds.starts_with("ci-builder") {
            assert!(stderr.contains("only by promotion"), "{stderr}");
        }
    }
    // Reading prod: the deployer is allowed (the repository is simply empty until a promotion);
    // the builder is denied.
    let deployer_read = skopeo_as(
        &deployer,
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/prod/team/app:1", s.host),
        ],
    );
    let stderr = String::from_utf8_lossy(&deployer_read.stderr);
    assert!(stderr.contains("manifest unknown"), "{stderr}");
    let builder_read = skopeo_as(
        &builder,
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/prod/team/app:1", s.host),
        ],
    );
    let stderr = String::from_utf8_lossy(&builder_read.stderr);
    assert!(
        !stderr.contains("manifest unknown")
            && (stderr.contains("denied") || stderr.contains("unauthorized")),
        "{stderr}"
    );
    // Wrong password: refused.
    let wrong = skopeo_as(
        "ci-builder:wrong-password",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/dev/team/app:1", s.host),
        ],
    );
    assert!(!wrong.status.success());
}
