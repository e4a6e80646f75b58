//! The shared test harness: starts the real `airlock serve` binary, exactly as a user does, on an
//! ephemeral port with a temporary data directory, and offers a small OCI client on top of reqwest.
#![allow(dead_code)]

pub mod console;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `admin` password every test server starts with (AIRLOCK_INITIAL_ADMIN_PASSWORD).
pub const ADMIN_PASSWORD: &str = "test-admin-password-0123";

/// Audit entries a new server writes on first start: creating `admin` (principal, password, three
/// roles) and loading the policy bundle.
pub const BOOTSTRAP_ENTRIES: usize = 6;

/// A running `airlock serve`.
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The data directory (kept alive by `_temp` unless given by the caller).
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// A client that authenticates as `admin` (HTTP Basic on every request).
    pub http: reqwest::Client,
    /// A client without credentials.
    pub anonymous: reqwest::Client,
    /// The CLI's config directory for this server (holds `airlock login`'s credentials).
    cli_home: tempfile::TempDir,
}

impl TestServer {
    /// A server with a fresh data directory.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// A server with a fresh data directory and extra environment (e.g. `AIRLOCK_REGISTRY__...`).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let mut server = Self::start_in(&dir, env);
        server._temp = Some(temp);
        server
    }

    /// A server over an existing data directory (restart tests).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_in_with_args(data_dir, &[], env)
    }

    /// A server over `data_dir` with extra `airlock serve` arguments (e.g. `--allow-new-database`;
    /// a `--listen` among them replaces the default ephemeral port).
    pub fn start_in_with_args(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command.arg("serve");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .envs(distributed_blob_env(data_dir))
            .env("AIRLOCK_LOG__LEVEL", "warn")
            // Stopped servers exit at once (tests/it/drain.rs sets a delay).
            .env("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "0")
            .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(backend_env(data_dir))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start airlock serve");
        Self::attach(child, data_dir.to_path_buf(), None)
    }

    /// Waits for a started `airlock serve` to print its address and wraps it.
    fn attach(mut child: Child, data_dir: PathBuf, temp: Option<tempfile::TempDir>) -> Self {
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("airlock printed its listen address");
        let base = line
            .strip_prefix("airlock listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let host = base.trim_start_matches("http://").to_string();
        Self {
            child: Some(child),
            base,
            host,
            data_dir,
            _temp: temp,
            http: client_as("admin", ADMIN_PASSWORD),
            anonymous: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cli_home: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs the `airlock` CLI against this server, logged in as `admin` (logs in on first use).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_env(args, &[])
    }

    /// Like [`TestServer::cli`], with extra environment variables.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let home = self.cli_home.path();
        if !home.join("airlock/credentials.json").exists() {
            let (code, out, err) = self.cli_as(
                home,
                &["login", &self.base, "-u", "admin", "--password-stdin"],
                Some(ADMIN_PASSWORD),
            );
            assert_eq!(code, 0, "airlock login failed: {out}{err}");
        }
        self.cli_with_env(home, args, None, env)
    }

    /// Runs the CLI with `home` as its config directory, optionally feeding `stdin`.
    pub fn cli_as(&self, home: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        self.cli_with_env(home, args, stdin, &[])
    }

    /// Like [`TestServer::cli_as`], with extra environment variables (e.g. `COSIGN_PASSWORD`).
    pub fn cli_with_env(
        &self,
        home: &Path,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .envs(backend_env(&self.data_dir))
            .envs(env.iter().copied())
            .env("XDG_CONFIG_HOME", home)
            .env("AIRLOCK_SERVER", &self.base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run airlock");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{input}\n").as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("wait for airlock");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops the server with SIGTERM (graceful) and waits for it to exit successfully.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let status = child.wait().expect("wait for airlock");
            assert!(
                status.success(),
                "airlock exited with {status} after SIGTERM"
            );
        }
    }

    /// Kills the server with SIGKILL (no graceful shutdown), as a crash would.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL airlock");
            let _ = child.wait();
        }
    }

    /// Resident memory of the server now, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Peak resident memory of the server so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Resolves a `Location` header (relative or absolute) against the server.
    pub fn location(&self, response: &reqwest::Response) -> String {
        let location = response.headers()["location"].to_str().unwrap().to_string();
        if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        }
    }

    /// Uploads a blob monolithically; returns its digest.
    pub async fn push_blob(&self, repo: &str, content: &[u8]) -> String {
        let digest = sha256(content);
        let response = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            201,
            "push blob: {}",
            response.text().await.unwrap()
        );
        digest
    }

    /// Pushes a manifest; returns the response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Pushes a config and layers and an image manifest tagged `tag`; returns (manifest bytes, digest).
    pub async fn push_image(&self, repo: &str, tag: &str, layers: &[&[u8]]) -> (Vec<u8>, String) {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = self.push_blob(repo, config).await;
        let mut descriptors = Vec::new();
        for layer in layers {
            let digest = self.push_blob(repo, layer).await;
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest, "size": layer.len()}));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let response = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(
            response.status(),
            201,
            "push manifest: {}",
            response.text().await.unwrap()
        );
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The data directory goes with this server: so does its PostgreSQL database.
        if self._temp.is_some() {
            drop_backend_database(&self.data_dir);
        }
    }
}

/// A client that sends HTTP Basic credentials on every request.
pub fn client_as(user: &str, password: &str) -> reqwest::Client {
    use base64::Engine as _;
    install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&value).expect("header"),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client")
}

pub fn sha256(content: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(content)))
}

/// The OCI error code of an error response body.
pub async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["errors"][0]["code"]
        .as_str()
        .expect("errors[0].code")
        .to_string()
}

/// Whether interop tests must run (CI sets `AIRLOCK_INTEROP=required`) or may skip when a client
/// is missing. Returns `false` (skip, with a notice) only when not required.
pub fn interop_tool_available(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("AIRLOCK_INTEROP").as_deref() == Ok("required") {
            panic!(
                "{tool} is required (AIRLOCK_INTEROP=required) but `{tool} {}` failed; .ci/run installs it",
                probe.join(" ")
            );
        }
        eprintln!(
            "NOTICE: skipping interop test: {tool} is not installed (set AIRLOCK_INTEROP=required to make this a failure)"
        );
    }
    ok
}

/// Runs the `airlock` CLI with `args`; returns (exit code, stdout, stderr).
pub fn airlock_cli(args: &[&str]) -> (i32, String, String) {
    // A command run on a server's data directory reaches its database the way the server does.
    let backend = args
        .iter()
        .position(|arg| *arg == "--data-dir")
        .and_then(|i| args.get(i + 1))
        .map(|dir| backend_env(Path::new(dir)))
        .unwrap_or_default();
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .envs(backend)
        .env_remove("AIRLOCK_SERVER")
        .output()
        .expect("run airlock");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl TestServer {
    /// Waits until the newest signed checkpoint covers every appended audit entry.
    pub async fn wait_for_checkpoint(&self) -> u64 {
        for _ in 0..100 {
            let checkpoint: serde_json::Value = self
                .http
                .get(self.url("/api/v1/audit/checkpoint"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let size = checkpoint["size"].as_u64().unwrap();
            if size == checkpoint["entries"].as_u64().unwrap() {
                return size;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the audit log was not checkpointed within 10 s");
    }

    /// Every audit entry (parsed), in order.
    pub async fn audit_entries(&self) -> Vec<serde_json::Value> {
        let page: serde_json::Value = self
            .http
            .get(self.url("/api/v1/audit/entries?limit=10000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["entry"].clone())
            .collect()
    }
}

/// Whether the independent cosign/DSSE implementation (`tests/interop/cosign_spec.py`) can run:
/// Python with `cryptography`, PyNaCl and `securesystemslib` (required in CI, see
/// [`interop_tool_available`]).
pub fn python_ready() -> bool {
    interop_tool_available(
        "python3",
        &["-c", "import cryptography, nacl, securesystemslib"],
    )
}

/// Runs the independent cosign implementation; returns (exit code, stdout JSON, stderr).
pub fn cosign_spec(args: &[&str]) -> (i32, serde_json::Value, String) {
    let output = Command::new("python3")
        .arg("tests/interop/cosign_spec.py")
        .args(args)
        .env("COSIGN_PASSWORD", "")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    (
        output.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// [`cosign_spec`], asserting success; returns its JSON output.
pub fn cosign_spec_ok(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = cosign_spec(args);
    assert_eq!(code, 0, "cosign_spec.py {args:?} failed: {err}");
    out
}

/// GETs `url`; returns the status and the JSON answer (null if none).
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value` for a query string.
pub fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// POSTs JSON; returns the status and the JSON answer (null if none).
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Runs `airlock serve` over `data_dir` with extra `args`, expecting it to refuse to start;
/// returns (exit code, stderr). Fails the test if the server starts listening instead.
pub fn serve_refused(data_dir: &Path, args: &[&str]) -> (i32, String) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(distributed_blob_env(data_dir))
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(backend_env(data_dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start airlock serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(line) = rx.try_recv()
            && line.starts_with("airlock listening")
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("airlock started ({line}) but should have refused");
        }
        if let Some(status) = child.try_wait().expect("wait for airlock") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "airlock neither started nor exited within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.code().unwrap_or(-1), stderr)
}

/// The lines a server wrote to stderr (its log), collected as they arrive.
#[derive(Clone, Default)]
pub struct ServerLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl ServerLog {
    /// Whether some line so far contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|line| line.contains(text))
    }

    /// How many lines so far contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }
}

impl TestServer {
    /// Like [`TestServer::start_with_env`], but also collects the server's log (stderr), which
    /// is still echoed to the test's stderr.
    pub fn start_with_log(env: &[(&str, &str)]) -> (Self, ServerLog) {
        Self::start_logged(Command::new(env!("CARGO_BIN_EXE_airlock")), env)
    }

    /// Like [`TestServer::start_with_log`], with the server allowed to open at most `files` files
    /// (`ulimit -n`).
    pub fn start_with_open_files_limit(files: u32, env: &[(&str, &str)]) -> (Self, ServerLog) {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {files} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_airlock"),
        ]);
        Self::start_logged(command, env)
    }

    fn start_logged(mut command: Command, env: &[(&str, &str)]) -> (Self, ServerLog) {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .envs(distributed_blob_env(&dir))
            .env("AIRLOCK_LOG__LEVEL", "warn")
            .env("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "0")
            .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(backend_env(&dir))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start airlock serve");
        let log = ServerLog::default();
        let stderr = child.stderr.take().expect("stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let server = Self::attach(child, dir, Some(temp));
        (server, log)
    }
}

/// Pushes a one-layer image (a fixed config, `layer`) to `repo:tag` as `client`, with
/// `annotations` on the manifest if given; returns the manifest's digest.
pub async fn push_image_as(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    tag: &str,
    layer: &[u8],
    annotations: Option<serde_json::Value>,
) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let mut descriptors = Vec::new();
    for content in [&config[..], layer] {
        let digest = sha256(content);
        let response = client
            .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            201,
            "push blob: {}",
            response.text().await.unwrap()
        );
        descriptors.push((digest, content.len()));
    }
    let mut manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": descriptors[0].0, "size": descriptors[0].1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": descriptors[1].0, "size": descriptors[1].1}],
    });
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let response = client
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "push manifest: {}",
        response.text().await.unwrap()
    );
    sha256(&manifest)
}

/// A test PKI made with rcgen, as PEM files in a temporary directory: a root CA (what clients
/// trust), an intermediate CA that issues server certificates (so served chains have two
/// certificates), and client certificates issued by the root (for `tls.client_ca`).
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The root CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// The server's chain (leaf for `localhost`, `127.0.0.1` and `::1`, then the intermediate).
    pub server_cert: PathBuf,
    /// The server's key (PEM).
    pub server_key: PathBuf,
    root: rcgen::Issuer<'static, rcgen::KeyPair>,
    intermediate: rcgen::Issuer<'static, rcgen::KeyPair>,
    intermediate_pem: String,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A new root and intermediate, and a server certificate valid for 30 days.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("airlock test root CA {}", unique()),
        );
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca.self_signed(&ca_key).expect("CA cert").pem();
        let root = rcgen::Issuer::new(ca, ca_key);
        let mid_key = rcgen::KeyPair::generate().expect("intermediate key");
        let mut mid = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        mid.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        mid.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("airlock test intermediate CA {}", unique()),
        );
        mid.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let intermediate_pem = mid.signed_by(&mid_key, &root).expect("intermediate").pem();
        let intermediate = rcgen::Issuer::new(mid, mid_key);
        let ca_cert = dir.path().join("ca.pem");
        std::fs::write(&ca_cert, ca_pem).expect("write CA");
        let pki = Self {
            server_cert: dir.path().join("server.crt"),
            server_key: dir.path().join("server.key"),
            dir,
            ca_cert,
            root,
            intermediate,
            intermediate_pem,
        };
        let (cert, key) = pki.server_pem(-1, 30);
        std::fs::write(&pki.server_cert, cert).expect("write server cert");
        std::fs::write(&pki.server_key, key).expect("write server key");
        pki
    }

    /// The temporary directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new server chain (PEM: leaf, intermediate) and key for `localhost`, `127.0.0.1` and
    /// `::1`, valid from `from_days` to `to_days` days from now (negative: in the past).
    pub fn server_pem(&self, from_days: i64, to_days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "airlock test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from_days);
        params.not_after = now + time::Duration::days(to_days);
        let leaf = params
            .signed_by(&key, &self.intermediate)
            .expect("server cert");
        (
            format!("{}{}", leaf.pem(), self.intermediate_pem),
            key.serialize_pem(),
        )
    }

    /// A client certificate and key (PEM files named `<name>.crt`/`<name>.key`) issued by the
    /// root CA, for mutual TLS.
    pub fn client_files(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("client key");
        let mut params =
            rcgen::CertificateParams::new(vec![format!("{name}.clients.test")]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let cert = params.signed_by(&key, &self.root).expect("client cert");
        let (cert_path, key_path) = (
            self.dir.path().join(format!("{name}.crt")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write client cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write client key");
        (cert_path, key_path)
    }

    /// Replaces the server's certificate and key files with a new pair (written next to them,
    /// then renamed over them, cert first); returns the new leaf's SHA-256 fingerprint.
    pub fn rotate_server_files(&self) -> String {
        let (cert, key) = self.server_pem(-1, 30);
        let fingerprint = pem_fingerprint(&cert);
        let (new_cert, new_key) = (
            self.dir.path().join("server.crt.new"),
            self.dir.path().join("server.key.new"),
        );
        std::fs::write(&new_cert, cert).expect("write cert");
        std::fs::write(&new_key, key).expect("write key");
        std::fs::rename(&new_cert, &self.server_cert).expect("rename cert");
        std::fs::rename(&new_key, &self.server_key).expect("rename key");
        fingerprint
    }
}

/// A name part no other test PKI shares (CAs with equal names would be confused by clients).
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// SHA-256 fingerprint (lower-case hex) of the first certificate in a PEM text.
pub fn pem_fingerprint(pem: &str) -> String {
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM");
    hex::encode(Sha256::digest(der.as_ref()))
}

/// A rustls client configuration trusting only `ca_cert`, optionally presenting a client
/// certificate, offering ALPN `alpn`.
pub fn tls_client_config(
    ca_cert: &Path,
    identity: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_cert).expect("read CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                rustls_pki_types::CertificateDer::pem_file_iter(cert)
                    .expect("read client cert")
                    .map(|c| c.expect("client cert PEM"))
                    .collect(),
                rustls_pki_types::PrivateKeyDer::from_pem_file(key).expect("client key"),
            )
            .expect("client identity"),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// An HTTPS client trusting only `ca_cert` (HTTP/1.1), sending admin's Basic credentials when
/// `admin` is set.
pub fn https_client(ca_cert: &Path, admin: bool) -> reqwest::Client {
    https_client_with(ca_cert, admin.then_some(("admin", ADMIN_PASSWORD)))
}

/// A client trusting `ca_cert` that sends `user`'s Basic credentials on every request.
pub fn https_client_as(ca_cert: &Path, user: &str, password: &str) -> reqwest::Client {
    https_client_with(ca_cert, Some((user, password)))
}

fn https_client_with(ca_cert: &Path, credentials: Option<(&str, &str)>) -> reqwest::Client {
    use base64::Engine as _;
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls_client_config(ca_cert, None, &[b"http/1.1"]));
    if let Some((user, password)) = credentials {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&value).expect("header"),
        );
        builder = builder.default_headers(headers);
    }
    builder.build().expect("https client")
}

impl TestServer {
    /// A server terminating TLS with a new [`TestPki`]'s server certificate; `base` is
    /// `https://127.0.0.1:PORT` and `http`/`anonymous` trust the PKI's CA. Keep the PKI alive as
    /// long as the server (its files are in its temporary directory).
    pub fn start_tls(env: &[(&str, &str)]) -> (Self, TestPki) {
        let pki = TestPki::new();
        let server = Self::start_tls_with(&pki, &[], env);
        (server, pki)
    }

    /// A server terminating TLS with `pki`'s server certificate files, with extra `airlock
    /// serve` arguments and environment (e.g. `AIRLOCK_TLS__CLIENT_CA`).
    pub fn start_tls_with(pki: &TestPki, args: &[&str], env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let cert = pki.server_cert.display().to_string();
        let key = pki.server_key.display().to_string();
        let mut all = vec![
            ("AIRLOCK_TLS__CERT", cert.as_str()),
            ("AIRLOCK_TLS__KEY", key.as_str()),
        ];
        all.extend_from_slice(env);
        let mut server = Self::start_in_with_args(&dir, args, &all);
        server._temp = Some(temp);
        server.trust_tls(&pki.ca_cert);
        server
    }

    /// Like [`TestServer::start_tls_with`], also collecting the server's log.
    pub fn start_tls_logged(pki: &TestPki, env: &[(&str, &str)]) -> (Self, ServerLog) {
        let cert = pki.server_cert.display().to_string();
        let key = pki.server_key.display().to_string();
        let mut all = vec![
            ("AIRLOCK_TLS__CERT", cert.as_str()),
            ("AIRLOCK_TLS__KEY", key.as_str()),
        ];
        all.extend_from_slice(env);
        let (mut server, log) =
            Self::start_logged(Command::new(env!("CARGO_BIN_EXE_airlock")), &all);
        server.trust_tls(&pki.ca_cert);
        (server, log)
    }

    /// Points `host`, `http` and `anonymous` at an `https://` server whose chain ends at
    /// `ca_cert`.
    fn trust_tls(&mut self, ca_cert: &Path) {
        assert!(
            self.base.starts_with("https://"),
            "a TLS server announces https://, got {}",
            self.base
        );
        self.host = self.base.trim_start_matches("https://").to_string();
        self.http = https_client(ca_cert, true);
        self.anonymous = https_client(ca_cert, false);
    }
}

/// Installs aws-lc-rs as the test process's rustls provider (the build's one provider);
/// every harness client calls it, so tests need not.
pub fn install_crypto_provider() {
    airlock_server::outbound_tls::install_crypto_provider();
}
impl TestServer {
    /// A server with a fresh data directory started without `AIRLOCK_INITIAL_ADMIN_PASSWORD`, so
    /// airlock generates admin's password into `<data_dir>/initial-admin-password`; also collects
    /// the server's log. Its `http` client (admin with [`ADMIN_PASSWORD`]) does not authenticate.
    pub fn start_with_generated_admin_password() -> (Self, ServerLog) {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .envs(distributed_blob_env(&dir))
            .env("AIRLOCK_LOG__LEVEL", "info")
            .env("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "0")
            .env_remove("AIRLOCK_INITIAL_ADMIN_PASSWORD")
            .envs(backend_env(&dir))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start airlock serve");
        let log = ServerLog::default();
        let stderr = child.stderr.take().expect("stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        (Self::attach(child, dir, Some(temp)), log)
    }
}

/// A policy bundle (in `dir`) with the default bundle's common rules only, so promotions wait for
/// approvals alone (tests of approvals, keys and separation of duties).
pub fn permissive_bundle(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["lib.rego", "rollback.rego", "data.json"] {
        std::fs::copy(Path::new("policies").join(name), dir.join(name)).unwrap();
    }
    for stage in ["staging", "prod"] {
        std::fs::write(
            dir.join(format!("{stage}.rego")),
            format!(
                "package airlock.gates.{stage}\n\nimport data.airlock.lib.common_deny\n\n\
                 deny contains v if some v in common_deny\n"
            ),
        )
        .unwrap();
    }
    dir.to_path_buf()
}

/// Admin creates user `name` with `password` and the role `grants` (role, scope); returns a
/// client sending the user's Basic credentials.
pub async fn add_user(
    s: &TestServer,
    name: &str,
    password: &str,
    grants: &[(&str, &str)],
) -> reqwest::Client {
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/users"),
        serde_json::json!({"name": name, "password": password}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (role, scope) in grants {
        let (status, body) = post_json(
            &s.http,
            &s.url("/api/v1/roles/grant"),
            serde_json::json!({"principal": name, "role": role, "scope": scope}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    client_as(name, password)
}

impl TestServer {
    /// Sends `signal` (`TERM`, `INT`, ...) to the server process, which keeps running (see
    /// [`TestServer::wait_exit`]).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the server process to exit; returns its status, or `None` if it
    /// is still running (it then stays attached, and is killed when the server is dropped).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait for airlock") {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The blob-store half of `AIRLOCK_TEST_BACKEND=distributed` (the contract's test switch): the
/// environment that gives a server over `data_dir` its own bucket on the S3 test server
/// (`scripts/test-s3`), the same bucket whenever the same data directory starts again (restart
/// tests). Empty in the embedded default; with `distributed` but no `AIRLOCK_TEST_S3_ENDPOINT`
/// the test fails rather than running embedded.
pub fn distributed_blob_env(data_dir: &Path) -> Vec<(String, String)> {
    if !distributed() {
        return Vec::new();
    }
    let server = airlock_store::test_support::TestS3::from_env()
        .unwrap_or_else(|err| panic!("AIRLOCK_TEST_BACKEND=distributed: {err}"));
    let bucket = format!(
        "airlock-t-{}",
        &sha256(data_dir.to_string_lossy().as_bytes())[7..23]
    );
    create_test_bucket(&server, &bucket);
    vec![
        ("AIRLOCK_BLOB_STORE".into(), format!("s3://{bucket}")),
        ("AIRLOCK_S3__ENDPOINT".into(), server.endpoint.clone()),
        ("AIRLOCK_S3__PATH_STYLE".into(), "true".into()),
        ("AIRLOCK_S3__ALLOW_HTTP".into(), "true".into()),
    ]
}

/// Creates `bucket` on the S3 test server from synchronous code (which may run inside a test's
/// runtime, so on a thread of its own).
pub fn create_test_bucket(server: &airlock_store::test_support::TestS3, bucket: &str) {
    let (server, name) = (server.clone(), bucket.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(server.create_bucket(&name))
    })
    .join()
    .expect("bucket thread")
    .unwrap_or_else(|err| panic!("{err}"));
}

/// Whether the bytes of blob `digest` are stored for server `s`: its file in the data directory,
/// or under `AIRLOCK_TEST_BACKEND=distributed` its object in the server's bucket.
pub async fn blob_stored(s: &TestServer, digest: &str) -> bool {
    let digest: airlock_core::Digest = digest.parse().expect("digest");
    if !distributed() {
        return airlock_store::local_blob_file(&s.data_dir.join("blobs"), &digest).exists();
    }
    blob_store_of(s)
        .await
        .size(&digest)
        .await
        .expect("head")
        .is_some()
}

/// The blob store the server `s` uses: its data directory's `blobs/`, or under
/// `AIRLOCK_TEST_BACKEND=distributed` its bucket.
pub async fn blob_store_of(s: &TestServer) -> airlock_store::BlobStore {
    if !distributed() {
        return airlock_store::BlobStore::local(&s.data_dir.join("blobs")).expect("blob directory");
    }
    let env = distributed_blob_env(&s.data_dir);
    let location: airlock_store::S3Location = env[0].1.parse().expect("location");
    let server = airlock_store::test_support::TestS3::from_env().expect("S3 test server");
    airlock_store::BlobStore::s3(&location, &server.options(None), std::env::vars())
        .await
        .expect("bucket")
}

/// How many committed blobs the server over `data_dir` stores: files under its `blobs/blobs/`, or
/// under `AIRLOCK_TEST_BACKEND=distributed` objects in its bucket.
pub fn stored_blob_count(data_dir: &Path) -> usize {
    if !distributed() {
        fn walk(dir: &Path) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { walk(&p) } else { 1 })
                .sum()
        }
        return walk(&data_dir.join("blobs").join("blobs"));
    }
    let env = distributed_blob_env(data_dir);
    let location: airlock_store::S3Location = env[0].1.parse().expect("location");
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let server = airlock_store::test_support::TestS3::from_env().expect("S3");
                airlock_store::BlobStore::s3(&location, &server.options(None), std::env::vars())
                    .await
                    .expect("bucket")
                    .list_blobs()
                    .await
                    .expect("list")
                    .len()
            })
    })
    .join()
    .expect("listing thread")
}

/// `AIRLOCK_TEST_BACKEND`: `embedded` (the default: SQLite and blobs in the data directory) or
/// `distributed` (every server gets `AIRLOCK_DATABASE_URL`, a PostgreSQL database of its own on
/// the server `AIRLOCK_TEST_POSTGRES_URL` names, and `AIRLOCK_BLOB_STORE`, a bucket of its own on
/// the S3 test server; start them with `scripts/test-services` and `scripts/test-s3`).
pub fn distributed() -> bool {
    match std::env::var("AIRLOCK_TEST_BACKEND").as_deref() {
        Ok("distributed") => true,
        Ok("embedded") | Ok("") | Err(_) => false,
        Ok(other) => panic!("AIRLOCK_TEST_BACKEND={other}: use embedded or distributed"),
    }
}

/// For a test that inspects or damages the SQLite files or the blob directory itself: under
/// `AIRLOCK_TEST_BACKEND=distributed` prints the notice and returns true (the test returns).
pub fn embedded_only() -> bool {
    if distributed() {
        eprintln!("NOTICE: embedded-only test skipped under AIRLOCK_TEST_BACKEND=distributed");
        return true;
    }
    false
}

/// The PostgreSQL server for distributed tests; fails the test when it is missing (never a
/// silent fallback to the embedded engines).
fn test_postgres_url() -> String {
    match std::env::var("AIRLOCK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "AIRLOCK_TEST_BACKEND=distributed needs AIRLOCK_TEST_POSTGRES_URL: eval \"$(scripts/test-services)\""
        ),
    }
}

/// The database of the server over `data_dir`: one per data directory, named after its path,
/// so a server restarted over the same directory finds its database again.
fn backend_database_name(data_dir: &Path) -> String {
    let path = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let hash = sha256(path.as_os_str().as_encoded_bytes());
    format!("airlock_t_{}", &hash["sha256:".len()..][..32])
}

/// `url` with its database replaced by `name`.
fn postgres_url_with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let end = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Runs `sql` on the test PostgreSQL server with `psql`; returns whether it succeeded.
fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args(["-q", &test_postgres_url(), "-c", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The environment that points a server (or the CLI) over `data_dir` at the backend under test:
/// nothing when embedded; `AIRLOCK_DATABASE_URL` (its database created on first use) when
/// distributed.
pub fn backend_env(data_dir: &Path) -> Vec<(String, String)> {
    if !distributed() {
        return Vec::new();
    }
    let admin = test_postgres_url();
    let name = backend_database_name(data_dir);
    let exists = Command::new("psql")
        .args([
            "-qAt",
            &admin,
            "-c",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ])
        .output()
        .expect("run psql (Debian's postgresql-client)");
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        // Two servers started over one directory at once may race here: one creates it.
        psql(&format!("CREATE DATABASE {name}"));
    }
    vec![
        (
            "AIRLOCK_DATABASE_URL".to_string(),
            postgres_url_with_database(&admin, &name),
        ),
        (
            "AIRLOCK_KEY_ENCRYPTION_KEY_FILE".to_string(),
            test_kek_file(data_dir).display().to_string(),
        ),
    ]
}

/// The key-encryption key file of the server over `data_dir` (distributed only): beside the data
/// directory (`<data_dir>.kek`), 32 random bytes in base64, made on first use, so a server
/// restarted over the same directory opens the keys it sealed.
pub fn test_kek_file(data_dir: &Path) -> PathBuf {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut name = data_dir.as_os_str().to_owned();
    name.push(".kek");
    let path = PathBuf::from(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the KEK file's directory");
    }
    if path.exists() {
        return path;
    }
    use std::io::Read as _;
    let mut kek = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut kek))
        .expect("read /dev/urandom");
    // Written aside and linked into place, so a server started at the same moment over the same
    // directory never reads a half-written file; of two such, one link wins.
    let temp = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    let mut file = std::fs::File::create(&temp).expect("create the KEK file");
    writeln!(
        file,
        "{}",
        base64::engine::general_purpose::STANDARD.encode(kek)
    )
    .expect("write the KEK file");
    let _ = std::fs::hard_link(&temp, &path);
    let _ = std::fs::remove_file(&temp);
    path
}

/// Drops the database of the server over `data_dir` (distributed only), closing its
/// connections.
pub fn drop_backend_database(data_dir: &Path) {
    if distributed() {
        let name = backend_database_name(data_dir);
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// Runs `sql` (`$1`, `$2`, ... bound to `binds`, as text) on the metadata database of the server
/// over `data_dir`, whichever the backend (SQLite in the data directory, or its PostgreSQL
/// database): for tests that set up a state no API makes (a crash left behind, a promotion
/// written directly). Returns the rows affected.
pub async fn execute_on_database(data_dir: &Path, sql: &str, binds: &[&str]) -> u64 {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let url = match backend_env(data_dir).into_iter().next() {
        Some((_, url)) => url,
        None => format!("sqlite://{}", data_dir.join("metadata.db").display()),
    };
    let mut connection = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for bind in binds {
        query = query.bind(bind.to_string());
    }
    let done = query.execute(&mut connection).await.expect("execute");
    connection.close().await.expect("close");
    done.rows_affected()
}

/// The key files of a data directory that replicas of one installation share (copied from the
/// first replica's data directory into the others' before they start).
pub const KEY_FILES: [&str; 5] = [
    "log-key",
    "token-key.pem",
    "attestation-key.pem",
    "token-keys.json",
    "attestation-keys.json",
];

impl TestServer {
    /// Another replica of `other`: an `airlock serve` with a data directory of its own, over the
    /// same database and blob store (under `AIRLOCK_TEST_BACKEND=distributed`: the same
    /// PostgreSQL database and bucket), with a copy of `other`'s key files, as replicas are
    /// started. `env` comes last (e.g. a policy bundle of its own).
    pub fn start_sharing(other: &TestServer, env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).expect("data dir");
        for name in KEY_FILES {
            let from = other.data_dir.join(name);
            if from.exists() {
                std::fs::copy(&from, dir.join(name)).expect("copy a key file");
            }
        }
        let mut shared = backend_env(&other.data_dir);
        shared.extend(distributed_blob_env(&other.data_dir));
        let mut all: Vec<(&str, &str)> = shared
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(env);
        let mut server = Self::start_in(&dir, &all);
        server._temp = Some(temp);
        server
    }

    /// Whether this server's `/metrics` says it leads (`airlock_replica_leader 1`).
    pub async fn leads(&self) -> bool {
        let text = self
            .anonymous
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .any(|line| line.trim() == "airlock_replica_leader 1")
    }
}

impl TestServer {
    /// A server over `data_dir` on the embedded engines whatever `AIRLOCK_TEST_BACKEND` says
    /// (SQLite and blobs in the data directory): for tests that start from an embedded
    /// installation (`tests/it/migrate_store.rs`).
    pub fn start_embedded_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("AIRLOCK_DATABASE_URL")
            .env_remove("AIRLOCK_BLOB_STORE")
            .env_remove("AIRLOCK_KEY_ENCRYPTION_KEY_FILE")
            .env("AIRLOCK_LOG__LEVEL", "warn")
            .env("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "0")
            .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start airlock serve");
        Self::attach(child, data_dir.to_path_buf(), None)
    }
}

impl ServerLog {
    /// Adds a line (for harnesses that collect a process's log themselves).
    pub fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The private key file `name` (`log-key`, `token-key.pem`, `attestation-key.pem`) of the server
/// over `data_dir`, as text: the file in the data directory on the embedded default; under
/// `AIRLOCK_TEST_BACKEND=distributed` the key stored in its database, opened with its KEK file.
/// For tests that sign as the server or move its key elsewhere.
pub async fn server_private_key(data_dir: &Path, name: &str) -> String {
    if !distributed() {
        return std::fs::read_to_string(data_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    use base64::Engine as _;
    let purpose = match name {
        "log-key" => airlock_store::KeyPurpose::Log,
        "token-key.pem" => airlock_store::KeyPurpose::Token,
        "attestation-key.pem" => airlock_store::KeyPurpose::Attestation,
        other => panic!("no server key file {other}"),
    };
    let env = backend_env(data_dir);
    let url = &env[0].1;
    let text = std::fs::read_to_string(test_kek_file(data_dir)).expect("KEK file");
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("KEK base64")
        .try_into()
        .expect("32 bytes");
    let metadata = airlock_store::Metadata::open_postgres(url)
        .await
        .expect("open the server's database");
    let keys = metadata
        .server_keys(&airlock_store::KeyEncryptionKey::new(bytes))
        .await
        .expect("stored keys");
    metadata.close().await;
    keys.current(purpose)
        .and_then(|key| key.private_key.clone())
        .unwrap_or_else(|| panic!("no stored {name}"))
}

/// A client that sends `token` as its bearer token on every request.
pub fn bearer(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// The claims of a JWT, read without checking it (the server checks; a test reads).
pub fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
