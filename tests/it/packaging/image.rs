//! The container image: built by `deploy/image/build.sh` from this test's binary, pushed into a
//! running airlock with buildah, pulled back by digest with skopeo, and compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};

use super::common::*;
use super::{repo, text};

/// The image's labels as the test builds it.
const SOURCE: &str = "https://example.com/airlock.git";
const REVISION: &str = "0123456789abcdef";
/// 2026-01-01T00:00:00Z.
const EPOCH: &str = "1767225600";

pub fn file_sha256(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("hash");
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Container tools (buildah, skopeo, podman) with their own storage under one temporary
/// directory, so parallel tests and the machine's own images never meet.
pub struct Containers {
    dir: tempfile::TempDir,
}

impl Containers {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.path().join("storage").display(),
            dir.path().join("run").display()
        );
        std::fs::write(dir.path().join("storage.conf"), conf).expect("storage.conf");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("CONTAINERS_STORAGE_CONF", self.path().join("storage.conf"))
            .env("TMPDIR", self.path().join("tmp"));
        command
    }

    /// podman with this storage, the given OCI runtime, cgroupfs and file events (no systemd or
    /// journald needed).
    pub fn podman(&self, runtime: Option<&str>, args: &[&str]) -> Output {
        let mut command = self.command("podman");
        if let Some(runtime) = runtime {
            command.args(["--runtime", runtime]);
        }
        command
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .output()
            .expect("run podman")
    }
}

/// Builds the image from `binary` as `tag`; returns its ID.
fn build(containers: &Containers, binary: &str, tag: &str) -> String {
    let built = containers
        .command(repo().join("deploy/image/build.sh").to_str().expect("path"))
        .args([binary, tag])
        .env("AIRLOCK_IMAGE_SOURCE", SOURCE)
        .env("AIRLOCK_IMAGE_REVISION", REVISION)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("run build.sh");
    assert!(built.status.success(), "build.sh: {}", text(&built));
    let image_id = String::from_utf8_lossy(&built.stdout)
        .lines()
        .last()
        .expect("build.sh prints the image ID")
        .to_string();
    assert_eq!(image_id.len(), 64, "image ID {image_id:?}");
    image_id
}

/// Pushes `tag` to `reference:v1` in `server` with the test credentials (plaintext loopback)
/// and returns the manifest digest buildah reports, checked against the registry's.
async fn push(containers: &Containers, server: &TestServer, tag: &str, reference: &str) -> String {
    let digest_file = containers.path().join("digest");
    let pushed = containers
        .command("buildah")
        .args([
            "push",
            "--tls-verify=false",
            "--creds",
            &format!("admin:{ADMIN_PASSWORD}"),
            "--digestfile",
        ])
        .arg(&digest_file)
        .arg(tag)
        .arg(format!("docker://{reference}:v1"))
        .output()
        .expect("run buildah push");
    assert!(pushed.status.success(), "buildah push: {}", text(&pushed));
    let digest = std::fs::read_to_string(&digest_file)
        .expect("digest file")
        .trim()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest:?}");
    let repository = reference.split_once('/').expect("host/repository").1;
    let head = server
        .http
        .head(server.url(&format!("/v2/{repository}/manifests/v1")))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .expect("HEAD manifest");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
    digest
}

/// The image's configuration and the files of its layers, unpacked.
struct PulledImage {
    config: serde_json::Value,
    root: PathBuf,
    /// `tar -tv` of every layer, numeric owners.
    listing: String,
}

/// Pulls `reference` (by digest) into a `dir:` layout with skopeo, checks the manifest's bytes
/// hash to `digest` and every blob to its digest, and unpacks every layer with tar.
fn pull_by_digest(containers: &Containers, reference: &str, digest: &str) -> PulledImage {
    let out = containers.path().join("pulled");
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let copied = containers
        .command("skopeo")
        .args(["copy", "--src-tls-verify=false", "--src-creds", &creds])
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", out.display()))
        .output()
        .expect("run skopeo");
    assert!(copied.status.success(), "skopeo copy: {}", text(&copied));
    let manifest = std::fs::read(out.join("manifest.json")).expect("manifest.json");
    assert_eq!(sha256(&manifest), digest, "the pulled manifest's digest");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    let blob = |digest: &str| out.join(digest.trim_start_matches("sha256:"));
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    assert_eq!(file_sha256(&blob(config_digest)), config_digest);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(config_digest)).expect("config blob"))
            .expect("config JSON");
    let root = containers.path().join("unpacked");
    std::fs::create_dir_all(&root).expect("unpacked");
    let mut listing = String::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("layer digest");
        let path = blob(digest);
        assert_eq!(file_sha256(&path), digest, "layer bytes");
        let listed = Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&path)
            .output()
            .expect("run tar");
        assert!(listed.status.success(), "tar -t: {}", text(&listed));
        listing.push_str(&String::from_utf8_lossy(&listed.stdout));
        let unpacked = Command::new("tar")
            .args(["--no-same-owner", "-xf"])
            .arg(&path)
            .arg("-C")
            .arg(&root)
            .output()
            .expect("run tar");
        assert!(unpacked.status.success(), "tar -x: {}", text(&unpacked));
    }
    PulledImage {
        config,
        root,
        listing,
    }
}

/// The files `ldd` says the binary loads (the loader included, the vDSO not).
fn ldd_libraries(binary: &str) -> Vec<String> {
    let output = Command::new("ldd").arg(binary).output().expect("run ldd");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
                [path, ..] if path.starts_with('/') => Some(path.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// The files: the same binary, its libraries, CA roots, the user, `/data` owned by it.
fn check_files(image: &PulledImage, binary: &str) {
    assert_eq!(
        file_sha256(&image.root.join("usr/local/bin/airlock")),
        file_sha256(Path::new(binary)),
        "the binary in the image is the one built"
    );
    for library in ldd_libraries(binary) {
        let inside = image.root.join(library.trim_start_matches('/'));
        assert!(inside.is_file(), "{library} (named by ldd) is in the image");
    }
    assert!(
        image
            .root
            .join("etc/ssl/certs/ca-certificates.crt")
            .metadata()
            .is_ok_and(|m| m.len() > 1000),
        "CA roots"
    );
    let passwd = std::fs::read_to_string(image.root.join("etc/passwd")).expect("/etc/passwd");
    assert!(passwd.contains("airlock:x:65532:65532:"), "{passwd}");
    assert!(
        image
            .listing
            .lines()
            .any(|line| line.starts_with("drwx------ 65532/65532") && line.ends_with(" data/")),
        "/data is the airlock user's, 0700:\n{}",
        image.listing
    );
}

/// The configuration: user, command, port, volume, labels, time.
fn check_config(image: &PulledImage) {
    let config = &image.config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/airlock"])
    );
    assert_eq!(
        config["Cmd"],
        serde_json::json!([
            "serve",
            "--data-dir",
            "/data",
            "--listen",
            "0.0.0.0:5000",
            "--self-signed"
        ])
    );
    assert!(config["ExposedPorts"]["5000/tcp"].is_object(), "{config}");
    assert!(config["Volumes"]["/data"].is_object(), "{config}");
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.revision"], REVISION);
    assert_eq!(labels["org.opencontainers.image.source"], SOURCE);
    assert_eq!(image.config["created"], "2026-01-01T00:00:00Z");
}

#[tokio::test]
async fn the_image_goes_through_airlock_by_digest_and_runs() {
    if !interop_tool_available("buildah", &["--version"])
        || !interop_tool_available("skopeo", &["--version"])
        || !interop_tool_available("tar", &["--version"])
    {
        return;
    }
    let binary = env!("CARGO_BIN_EXE_airlock");
    let containers = Containers::new();
    let tag = format!("localhost/airlock-packaging:{}", std::process::id());
    let image_id = build(&containers, binary, &tag);
    // The same inputs give the same image.
    assert_eq!(
        build(&containers, binary, &tag),
        image_id,
        "a rebuild differs"
    );

    let server = TestServer::start();
    let reference = format!("{}/dev/packaging/airlock", server.host);
    let digest = push(&containers, &server, &tag, &reference).await;
    let image = pull_by_digest(&containers, &format!("{reference}@{digest}"), &digest);
    check_files(&image, binary);
    check_config(&image);

    super::podman::run_image(&containers, &tag).await;
}
