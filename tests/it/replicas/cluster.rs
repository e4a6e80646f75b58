//! The cluster harness: N real `airlock serve` replicas on one PostgreSQL database and one S3
//! bucket, behind haproxy (Debian's package, on the generated `haproxy.cfg` beside this file).
//!
//! - Every replica has a data directory of its own and the same shared settings: the database,
//!   the bucket, the audit origin, the key-encryption key file, the public URL (haproxy's, so the
//!   token realm clients are sent to is the load balancer), the policy bundle and a 2 s drain
//!   delay. Replica 1 starts first; the key files it generated are copied into the others' data
//!   directories before they start (until the server keys live in the database).
//! - Replicas listen on ports chosen at their first start and keep them when restarted, so the
//!   haproxy configuration never changes.
//! - Each replica's and haproxy's log (stderr) is echoed with a `[r1]`/`[haproxy]` prefix and
//!   kept, so a test can name the line that shows a failure.
//! - One cluster runs at a time in a test process ([`Cluster::start`] holds a lock): three debug
//!   replicas are all this machine's two cores can serve.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::common::{self, ADMIN_PASSWORD, ServerLog};

/// The audit origin every replica of a test cluster shares.
pub const ORIGIN: &str = "airlock.test/replicas";

/// Seconds a replica keeps serving after SIGTERM while `/readyz` fails (longer than haproxy needs
/// to take it out of rotation: `fall 2` x `inter 200ms`).
pub const DRAIN_DELAY_SECS: u64 = 2;

static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// Whether the cluster tests can run here: `AIRLOCK_TEST_BACKEND=distributed` (else a notice)
/// and haproxy installed (else a notice, or a failure under `AIRLOCK_INTEROP=required`). The
/// PostgreSQL and S3 services are required by the distributed backend itself.
pub fn available() -> bool {
    if !common::distributed() {
        eprintln!(
            "NOTICE: replica tests run only with AIRLOCK_TEST_BACKEND=distributed (PostgreSQL + S3: scripts/test-services, scripts/test-s3)"
        );
        return false;
    }
    common::interop_tool_available("haproxy", &["-v"])
}

/// One `airlock serve` of the cluster.
pub struct Replica {
    /// `r1`, `r2`, ...
    pub name: String,
    /// Its own data directory.
    pub dir: PathBuf,
    /// The port it listens on (fixed after the first start).
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its log (stderr), across restarts.
    pub log: ServerLog,
    child: Option<Child>,
}

impl Replica {
    /// The URL of `path` on this replica, bypassing haproxy.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether the process is running.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// Replicas behind haproxy.
pub struct Cluster {
    /// The replicas, `r1` first.
    pub replicas: Vec<Replica>,
    /// haproxy's address: `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT` (for skopeo and oras).
    pub host: String,
    /// A client authenticating as `admin` with HTTP Basic on every request.
    pub http: reqwest::Client,
    /// haproxy's log (only abnormal requests are logged).
    pub haproxy_log: ServerLog,
    env: Vec<(String, String)>,
    haproxy: Option<Child>,
    stats: String,
    /// The directory the cluster's database and bucket are named after.
    shared: PathBuf,
    temp: tempfile::TempDir,
    _one: MutexGuard<'static, ()>,
}

/// A free loopback port (bound, then released for the caller to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Echoes `reader`'s lines with `prefix` and keeps them in `log`.
fn collect(reader: impl std::io::Read + Send + 'static, prefix: String, log: ServerLog) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            eprintln!("[{prefix}] {line}");
            log.push(line);
        }
    });
}

impl Cluster {
    /// Starts `n` replicas (replica 1 first, the others with its key files) and haproxy in front,
    /// and waits until haproxy sees every replica up. `env` is added to every replica's.
    pub fn start(n: usize, env: &[(&str, &str)]) -> Self {
        let one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        common::install_crypto_provider();
        let temp = tempfile::tempdir().expect("temp dir");
        let shared = temp.path().join("cluster");
        let lb_port = free_port();
        let stats_port = free_port();
        let base = format!("http://127.0.0.1:{lb_port}");
        let kek = temp.path().join("key-encryption-key");
        std::fs::write(&kek, format!("{}\n", base64_of(&random_bytes(32)))).expect("KEK file");
        let bundle = common::permissive_bundle(&temp.path().join("bundle"));
        let mut shared_env: Vec<(String, String)> = common::backend_env(&shared);
        shared_env.extend(common::distributed_blob_env(&shared));
        for (key, value) in [
            ("AIRLOCK_AUDIT__ORIGIN", ORIGIN.to_string()),
            ("AIRLOCK_KEY_ENCRYPTION_KEY_FILE", kek.display().to_string()),
            ("AIRLOCK_ACCESS__PUBLIC_URL", base.clone()),
            ("AIRLOCK_POLICY__BUNDLE", bundle.display().to_string()),
            (
                "AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS",
                DRAIN_DELAY_SECS.to_string(),
            ),
            ("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
            ("AIRLOCK_LOG__LEVEL", "warn".to_string()),
        ] {
            shared_env.push((key.to_string(), value));
        }
        for (key, value) in env {
            shared_env.push((key.to_string(), value.to_string()));
        }
        let mut cluster = Self {
            replicas: Vec::new(),
            host: base.trim_start_matches("http://").to_string(),
            base,
            http: common::client_as("admin", ADMIN_PASSWORD),
            haproxy_log: ServerLog::default(),
            env: shared_env,
            haproxy: None,
            stats: format!("http://127.0.0.1:{stats_port}/stats;csv"),
            shared,
            temp,
            _one: one,
        };
        for i in 1..=n {
            let name = format!("r{i}");
            let dir = cluster.temp.path().join(&name);
            if i > 1 {
                cluster.copy_key_files(&dir);
            }
            let mut replica = Replica {
                name,
                dir,
                port: 0,
                base: String::new(),
                log: ServerLog::default(),
                child: None,
            };
            cluster.spawn(&mut replica);
            wait_ready(&replica);
            cluster.replicas.push(replica);
        }
        cluster.start_haproxy(lb_port, stats_port);
        cluster.wait_all_up();
        cluster
    }

    /// Copies replica 1's key files (those it has) into `dir`, creating it.
    fn copy_key_files(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("data dir");
        for name in airlock_server::data_dir::KEY_FILES {
            let from = self.replicas[0].dir.join(name);
            if from.exists() {
                std::fs::copy(&from, dir.join(name)).expect("copy key file");
            }
        }
    }

    /// Starts `replica` (on its port, or a new one on the first start) and waits for its address.
    fn spawn(&self, replica: &mut Replica) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", replica.port)])
            .arg("--data-dir")
            .arg(&replica.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start airlock serve");
        collect(
            child.stderr.take().expect("stderr"),
            replica.name.clone(),
            replica.log.clone(),
        );
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} printed no listen address within 60 s", replica.name));
        let base = line
            .strip_prefix("airlock listening on ")
            .unwrap_or_else(|| panic!("{}: unexpected first line {line:?}", replica.name))
            .to_string();
        replica.port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the listen address");
        replica.base = base;
        replica.child = Some(child);
    }

    fn start_haproxy(&mut self, lb_port: u16, stats_port: u16) {
        let mut config = include_str!("haproxy.cfg")
            .replace("@LB_PORT@", &lb_port.to_string())
            .replace("@STATS_PORT@", &stats_port.to_string());
        for replica in &self.replicas {
            config.push_str(&format!(
                "    server {} 127.0.0.1:{}\n",
                replica.name, replica.port
            ));
        }
        let path = self.temp.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let check = Command::new("haproxy")
            .args(["-c", "-q", "-f"])
            .arg(&path)
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy refuses the generated configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haproxy");
        collect(
            child.stderr.take().expect("stderr"),
            "haproxy".into(),
            self.haproxy_log.clone(),
        );
        self.haproxy = Some(child);
    }

    /// haproxy's view of each replica: (name, status), e.g. `("r1", "UP")`.
    pub fn backend_status(&self) -> Vec<(String, String)> {
        let Some((200, csv)) = get(&self.stats) else {
            return Vec::new();
        };
        let mut lines = csv.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        let at = |name: &str| columns.iter().position(|c| *c == name);
        let (Some(px), Some(sv), Some(status)) = (at("pxname"), at("svname"), at("status")) else {
            return Vec::new();
        };
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|f| {
                f.get(px) == Some(&"replicas") && f.get(sv).is_some_and(|s| s.starts_with('r'))
            })
            .map(|f| (f[sv].to_string(), f[status].to_string()))
            .collect()
    }

    /// Waits up to 30 s until haproxy reports replica `name` with `status` (`UP`, `DOWN`).
    pub fn wait_status(&self, name: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.backend_status();
            if seen.iter().any(|(n, s)| n == name && s == status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy does not report {name} {status} after 30 s: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_all_up(&self) {
        for replica in &self.replicas {
            self.wait_status(&replica.name, "UP");
        }
    }

    /// The URL of `path` through haproxy.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILLs replica `i` (0-based), as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            child.kill().expect("SIGKILL airlock");
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM to replica `i` and waits (up to the drain delay and 30 s) for it to exit 0.
    pub fn stop(&mut self, i: usize) {
        let replica = &mut self.replicas[i];
        let mut child = replica.child.take().expect("replica running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", replica.name);
        let deadline = Instant::now() + Duration::from_secs(DRAIN_DELAY_SECS + 30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for airlock") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit after SIGTERM",
                replica.name
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM",
            replica.name
        );
    }

    /// Starts replica `i` again on its port and data directory and waits until it is ready and
    /// haproxy has it back in rotation.
    pub fn restart(&mut self, i: usize) {
        let mut replica = std::mem::replace(
            &mut self.replicas[i],
            Replica {
                name: String::new(),
                dir: PathBuf::new(),
                port: 0,
                base: String::new(),
                log: ServerLog::default(),
                child: None,
            },
        );
        assert!(replica.child.is_none(), "{} is still running", replica.name);
        self.spawn(&mut replica);
        wait_ready(&replica);
        self.replicas[i] = replica;
        self.wait_status(&self.replicas[i].name, "UP");
    }

    /// The replicas that are running.
    pub fn running(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().filter(|r| r.running())
    }

    /// The log lines of every replica at level ERROR, prefixed with the replica's name.
    pub fn error_lines(&self) -> Vec<String> {
        self.replicas
            .iter()
            .flat_map(|r| {
                r.log
                    .lines()
                    .into_iter()
                    .filter(|l| l.contains("ERROR"))
                    .map(move |l| format!("[{}] {l}", r.name))
            })
            .collect()
    }

    /// Runs the `airlock` CLI logged in as admin against `server` (haproxy or one replica).
    pub fn cli(&self, server: &str, args: &[&str]) -> (i32, String, String) {
        let home = self.temp.path().join("cli-home");
        let run = |args: &[&str], stdin: Option<&str>| {
            use std::io::Write as _;
            let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
                .args(args)
                .env("XDG_CONFIG_HOME", &home)
                .env("AIRLOCK_SERVER", server)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run airlock");
            if let Some(input) = stdin {
                let mut pipe = child.stdin.take().expect("stdin");
                pipe.write_all(format!("{input}\n").as_bytes())
                    .expect("write stdin");
            }
            drop(child.stdin.take());
            let output = child.wait_with_output().expect("wait for airlock");
            (
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        let (code, out, err) = run(
            &["login", server, "-u", "admin", "--password-stdin"],
            Some(ADMIN_PASSWORD),
        );
        assert_eq!(code, 0, "airlock login {server}: {out}{err}");
        run(args, None)
    }

    /// A scratch directory that lives as long as the cluster.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.temp.path().join(name);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.haproxy.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        common::drop_backend_database(&self.shared);
    }
}

/// Waits up to 60 s for `replica`'s `/readyz` to answer 200.
fn wait_ready(replica: &Replica) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if get(&replica.url("/readyz")).is_some_and(|(status, _)| status == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} is not ready 60 s after starting",
            replica.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking `GET` of `url` (`http://HOST:PORT/PATH`) over a new connection, for the waits
/// above (which run outside any runtime): (status, body), or `None` if it failed.
fn get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some((status, body.to_string()));
    }
    // haproxy's stats page comes chunked even to HTTP/1.0.
    let (mut rest, mut decoded) = (body, String::new());
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some((status, decoded));
        }
        decoded.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
