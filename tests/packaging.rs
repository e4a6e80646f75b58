//! Packaging (`deploy/`, docs/deploy.md), checked with the tools that consume it:
//! - the container image `deploy/image/build.sh` makes with buildah from this test's binary is
//!   pushed into a running airlock, pulled back by digest with skopeo, and holds the same
//!   manifest digest, the same binary, the libraries `ldd` names, a non-root user owning `/data`
//!   and the OCI labels; then, where podman can run containers on this machine, the image runs
//!   with its own command and answers `/healthz` over its self-signed TLS (otherwise that part
//!   is skipped with the reason printed);
//! - the Kubernetes manifests validate against the Kubernetes schemas (`kubernetes-validate
//!   --strict`), broken copies are refused, and the drain settings fit the grace period;
//! - the systemd unit passes `systemd-analyze verify` and its `security` exposure stays low.
//!
//! Every tool is an interop tool: missing, the test skips with a NOTICE, unless
//! `AIRLOCK_INTEROP=required` (CI), where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest as _, Sha256};

/// The repository's root (where `deploy/` is).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn file_sha256(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("hash");
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Container tools (buildah, skopeo, podman) with their own storage under one temporary
/// directory, so parallel tests and the machine's own images never meet.
struct Containers {
    dir: tempfile::TempDir,
}

impl Containers {
    fn new() -> Self {
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("CONTAINERS_STORAGE_CONF", self.path().join("storage.conf"))
            .env("TMPDIR", self.path().join("tmp"));
        command
    }

    /// podman with this storage, the given OCI runtime, cgroupfs and file events (no systemd or
    /// journald needed).
    fn podman(&self, runtime: Option<&str>, args: &[&str]) -> Output {
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

/// The hard limit of `name` ("Max open files") in `/proc/self/limits`.
fn hard_limit(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .expect("/proc/self/limits")
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line[name.len()..].split_whitespace().nth(1))
        .map(|hard| hard.parse().unwrap_or(u64::MAX))
        .unwrap_or_else(|| panic!("{name} in /proc/self/limits"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Removes a container however the test ends.
struct RunningContainer<'a> {
    containers: &'a Containers,
    runtime: Option<String>,
    name: String,
}

impl Drop for RunningContainer<'_> {
    fn drop(&mut self) {
        let _ = self
            .containers
            .podman(self.runtime.as_deref(), &["rm", "-f", "-v", &self.name]);
    }
}

/// The image's configuration and the files of its layers, unpacked.
struct PulledImage {
    config: serde_json::Value,
    root: PathBuf,
    listing: String,
}

/// Pulls `reference` (by digest) into a `dir:` layout with skopeo, checks the manifest's bytes
/// hash to `digest`, and unpacks every layer with tar.
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

#[tokio::test]
async fn the_image_goes_through_airlock_by_digest_and_runs() {
    if !interop_tool_available("buildah", &["--version"])
        || !interop_tool_available("skopeo", &["--version"])
        || !interop_tool_available("tar", &["--version"])
    {
        return;
    }
    let started = Instant::now();
    let binary = env!("CARGO_BIN_EXE_airlock");
    let containers = Containers::new();
    let tag = format!("localhost/airlock-packaging:{}", std::process::id());

    // Build from the test binary, with a source label and a fixed time.
    let built = containers
        .command(repo().join("deploy/image/build.sh").to_str().expect("path"))
        .args([binary, &tag])
        .env("AIRLOCK_IMAGE_SOURCE", "https://example.com/airlock.git")
        .env("AIRLOCK_IMAGE_REVISION", "0123456789abcdef")
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .expect("run build.sh");
    assert!(built.status.success(), "build.sh: {}", text(&built));
    let image_id = String::from_utf8_lossy(&built.stdout)
        .lines()
        .last()
        .expect("build.sh prints the image ID")
        .to_string();
    assert_eq!(image_id.len(), 64, "image ID {image_id:?}");

    // Push it into airlock with the test credentials (plaintext loopback server).
    let server = TestServer::start();
    let digest_file = containers.path().join("digest");
    let reference = format!("{}/dev/packaging/airlock", server.host);
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
        .arg(&tag)
        .arg(format!("docker://{reference}:v1"))
        .output()
        .expect("run buildah push");
    assert!(pushed.status.success(), "buildah push: {}", text(&pushed));
    let digest = std::fs::read_to_string(&digest_file)
        .expect("digest file")
        .trim()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest:?}");
    let head = server
        .http
        .head(server.url("/v2/dev/packaging/airlock/manifests/v1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .expect("HEAD manifest");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());

    // Pull it back by digest: the same manifest, the same binary.
    let image = pull_by_digest(&containers, &format!("{reference}@{digest}"), &digest);
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
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        "0123456789abcdef"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://example.com/airlock.git"
    );
    assert_eq!(image.config["created"], "2026-01-01T00:00:00Z");

    run_with_podman(&containers, &tag).await;
    eprintln!("image test took {:?}", started.elapsed());
}

/// Runs the image with its own command where podman can run containers here, and checks
/// `/healthz` and `/readyz` over the self-signed certificate it made, the owner of what it wrote,
/// and a graceful stop. Where it cannot, says why and returns.
async fn run_with_podman(containers: &Containers, image: &str) {
    if !interop_tool_available("podman", &["--version"]) {
        return;
    }
    // crun refuses a hybrid cgroup v1/v2 layout with controllers on v2 ("cgroups in hybrid mode
    // not supported"); runc runs there, so it is tried first when installed.
    let runc = Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let runtimes: Vec<Option<&str>> = if runc {
        vec![Some("runc"), None]
    } else {
        vec![None]
    };
    // podman's default limits for a container (1048576 files, 4194304 processes) are more than
    // a root without CAP_SYS_RESOURCE may set (setrlimit fails with EPERM), and podman starts
    // conmon with at most 32768 processes: ask for what fits under both.
    let nofile = hard_limit("Max open files").min(8192);
    let nproc = hard_limit("Max processes").min(4096);
    let ulimits = [
        "--ulimit".to_string(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".to_string(),
        format!("nproc={nproc}:{nproc}"),
    ];
    let ulimits: Vec<&str> = ulimits.iter().map(String::as_str).collect();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:5000");

    // Can this machine run a container at all (runtime, cgroups, port publishing)?
    let mut chosen = None;
    let mut reasons = Vec::new();
    for runtime in runtimes {
        let mut args = vec!["run", "--rm", "-p", &publish];
        args.extend(&ulimits);
        args.extend([image, "--version"]);
        let probe = containers.podman(runtime, &args);
        if probe.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&probe.stdout).trim(),
                format!("airlock {}", env!("CARGO_PKG_VERSION"))
            );
            chosen = Some(runtime);
            break;
        }
        reasons.push(format!(
            "runtime {}: {}",
            runtime.unwrap_or("default"),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    let Some(runtime) = chosen else {
        eprintln!(
            "NOTICE: podman cannot run containers on this machine, so the image was built, pushed and pulled but not run: {}",
            reasons.join("; ")
        );
        return;
    };

    // The image's own command: TLS with a self-signed certificate on 0.0.0.0:5000.
    let name = format!("airlock-packaging-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name, "-p", &publish];
    args.extend(&ulimits);
    args.push(image);
    let run = containers.podman(runtime, &args);
    assert!(run.status.success(), "podman run: {}", text(&run));
    let running = RunningContainer {
        containers,
        runtime: runtime.map(str::to_string),
        name: name.clone(),
    };
    let logs = || {
        let output = containers.podman(runtime, &["logs", &name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logs().contains("airlock listening on https://0.0.0.0:5000") {
        assert!(
            Instant::now() < deadline,
            "airlock did not start: {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The certificate it made is in the /data volume, owned by the airlock user.
    let inspect = containers.podman(
        runtime,
        &[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Source}}{{end}}",
            &name,
        ],
    );
    assert!(
        inspect.status.success(),
        "podman inspect: {}",
        text(&inspect)
    );
    let volume = PathBuf::from(String::from_utf8_lossy(&inspect.stdout).trim());
    let cert = volume.join("tls/self-signed.crt");
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(&cert).expect("the self-signed certificate in /data");
        assert_eq!(metadata.uid(), 65532, "written by the airlock user");
        assert_eq!(
            std::fs::metadata(volume.join("metadata.db"))
                .expect("db")
                .uid(),
            65532
        );
    }
    // /healthz and /readyz through the published port, trusting only that certificate.
    let client = https_client(&cert, false);
    for (path, body) in [("/healthz", "ok"), ("/readyz", "\"ready\"")] {
        let answer = client
            .get(format!("https://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}; logs: {}", logs()));
        assert_eq!(answer.status(), 200, "{path}");
        let text = answer.text().await.expect("body");
        assert!(text.contains(body), "{path}: {text}");
    }
    // SIGTERM (the image's stop signal) drains and exits 0.
    let stopped = containers.podman(runtime, &["stop", "-t", "30", &name]);
    assert!(stopped.status.success(), "podman stop: {}", text(&stopped));
    let exit = containers.podman(
        runtime,
        &["inspect", "--format", "{{.State.ExitCode}}", &name],
    );
    assert_eq!(
        String::from_utf8_lossy(&exit.stdout).trim(),
        "0",
        "exit status after SIGTERM; logs: {}",
        logs()
    );
    drop(running);
    eprintln!(
        "podman ran the image (runtime {})",
        runtime.unwrap_or("default")
    );
}

/// Every YAML file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn kubernetes_validate(files: &[PathBuf]) -> Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

/// The value of `key = N` in `text` (the first such line, comments excluded).
fn number_setting(text: &str, key: &str) -> u64 {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.split_once(['=', ':'])?;
            (name.trim() == key).then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("{key} in {text}"))
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas_and_broken_ones_do_not() {
    if !interop_tool_available("kubernetes-validate", &["--version"]) {
        return;
    }
    let dir = repo().join("deploy/kubernetes");
    let files = yaml_files(&dir);
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&dir)
                .expect("under dir")
                .display()
                .to_string()
        })
        .collect();
    for expected in [
        "configmap.yaml",
        "deployment.yaml",
        "namespace.yaml",
        "poddisruptionbudget.yaml",
        "service.yaml",
        "secrets/airlock-env.yaml",
        "secrets/airlock-keys.yaml",
        "secrets/airlock-tls.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let output = kubernetes_validate(&files);
    assert!(
        output.status.success(),
        "kubernetes-validate: {}",
        text(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for file in &files {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&*file.to_string_lossy()) && l.contains("passed")),
            "{} passed: {stdout}",
            file.display()
        );
    }

    // The checker refuses what is wrong: a wrong type, a misspelt field, a field in the wrong
    // place, broken YAML.
    let deployment = std::fs::read_to_string(dir.join("deployment.yaml")).expect("deployment");
    let temp = tempfile::tempdir().expect("temp dir");
    let broken = [
        ("replicas: 3", "replicas: \"three\"", "spec.replicas"),
        (
            "terminationGracePeriodSeconds: 45",
            "terminationGracePeriodSecond: 45",
            "terminationGracePeriodSecond",
        ),
        (
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: yes please",
            "readOnlyRootFilesystem",
        ),
        (
            "      containers:",
            "      containers:\n        - {}\n      container:",
            "container",
        ),
    ];
    for (index, (from, to, named)) in broken.iter().enumerate() {
        assert!(deployment.contains(from), "{from}");
        let path = temp.path().join(format!("broken-{index}.yaml"));
        std::fs::write(&path, deployment.replacen(from, to, 1)).expect("write");
        let output = kubernetes_validate(&[path]);
        assert!(
            !output.status.success(),
            "{to:?} accepted: {}",
            text(&output)
        );
        assert!(text(&output).contains(named), "{to:?}: {}", text(&output));
    }
    let path = temp.path().join("not-yaml.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: [Service\n").expect("write");
    assert!(
        !kubernetes_validate(&[path]).status.success(),
        "broken YAML accepted"
    );

    // The drain fits in the grace period: readyz fails for drain_delay_secs, then requests in
    // flight get timeout_secs, and Kubernetes sends SIGKILL after the grace period. The
    // readiness probe notices within the drain delay.
    let config = std::fs::read_to_string(dir.join("configmap.yaml")).expect("configmap");
    let drain = number_setting(&config, "drain_delay_secs");
    let timeout = number_setting(&config, "timeout_secs");
    let grace = number_setting(&deployment, "terminationGracePeriodSeconds");
    assert!(
        grace > drain + timeout,
        "grace {grace} <= drain {drain} + timeout {timeout}"
    );
    let readiness = deployment
        .split("readinessProbe:")
        .nth(1)
        .expect("a readiness probe");
    assert!(readiness.contains("path: /readyz"));
    let period = number_setting(readiness, "periodSeconds");
    let failures = number_setting(readiness, "failureThreshold");
    assert!(
        period * failures < drain,
        "readiness notices the drain in time"
    );
    assert!(
        deployment.contains("path: /healthz"),
        "liveness on /healthz"
    );
    // No real secret in the templates.
    for file in files.iter().filter(|f| f.starts_with(dir.join("secrets"))) {
        let template = std::fs::read_to_string(file).expect("template");
        assert!(template.contains("REPLACE_ME"), "{}", file.display());
        assert!(
            !template.contains("PRIVATE+KEY+airlock"),
            "{}",
            file.display()
        );
    }
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if !interop_tool_available("systemd-analyze", &["--version"]) {
        return;
    }
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/airlock.service"))
        .expect("airlock.service");
    // Verify the unit as installed, with this build's binary where the unit expects it.
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("airlock.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/airlock", env!("CARGO_BIN_EXE_airlock")),
    )
    .expect("write unit");
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    assert!(
        verified.status.success(),
        "systemd-analyze verify: {}",
        text(&verified)
    );
    assert!(verified.stderr.is_empty(), "warnings: {}", text(&verified));
    // Exposure 0-10 as systemd-analyze prints it; the threshold is in tenths.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", "--threshold=20"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze security");
    assert!(
        security.status.success(),
        "exposure above 2.0: {}",
        text(&security)
    );
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=airlock",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(setting), "{setting}");
    }
    // A broken copy is refused, so the check above can fail.
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/airlock", "/nonexistent/airlock"),
    )
    .expect("write unit");
    let refused = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    assert!(
        !refused.status.success(),
        "a missing binary passed: {}",
        text(&refused)
    );
    // The stop timeout covers the default drain (5 s delay + 30 s for requests in flight).
    let stop = number_setting(&unit, "TimeoutStopSec");
    assert!(stop > 5 + 30, "TimeoutStopSec={stop}");
}
