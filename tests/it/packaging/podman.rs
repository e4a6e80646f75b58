//! Running the image with podman, where this machine can run containers.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::common::*;
use super::image::Containers;
use super::text;

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

/// How containers are run here: the OCI runtime, and the arguments every `podman run` takes.
struct Runner {
    runtime: Option<&'static str>,
    args: Vec<String>,
}

/// Finds a way to run `image` that works on this machine (runtime, cgroups, rlimits, port
/// publishing), or says why there is none.
fn runner(containers: &Containers, image: &str, publish: &str) -> Result<Runner, String> {
    // crun refuses a hybrid cgroup v1/v2 layout with controllers on v2 ("cgroups in hybrid mode
    // not supported"); runc runs there, so it is tried first when installed.
    let runc = Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let runtimes: &[Option<&'static str>] = if runc { &[Some("runc"), None] } else { &[None] };
    // podman's default limits for a container (1048576 files, 4194304 processes) are more than
    // a root without CAP_SYS_RESOURCE may set (setrlimit fails with EPERM), and podman starts
    // conmon with at most 32768 processes: ask for what fits under both.
    let nofile = hard_limit("Max open files").min(8192);
    let nproc = hard_limit("Max processes").min(4096);
    let args: Vec<String> = [
        "-p",
        publish,
        "--ulimit",
        &format!("nofile={nofile}:{nofile}"),
        "--ulimit",
        &format!("nproc={nproc}:{nproc}"),
    ]
    .map(str::to_string)
    .to_vec();
    let mut reasons = Vec::new();
    for &runtime in runtimes {
        let mut probe = vec!["run", "--rm"];
        probe.extend(args.iter().map(String::as_str));
        probe.extend([image, "--version"]);
        let output = containers.podman(runtime, &probe);
        if output.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                format!("airlock {}", env!("CARGO_PKG_VERSION"))
            );
            return Ok(Runner { runtime, args });
        }
        reasons.push(format!(
            "runtime {}: {}",
            runtime.unwrap_or("default"),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Err(reasons.join("; "))
}

/// A container started with `podman run -d`, removed however the test ends.
struct RunningContainer<'a> {
    containers: &'a Containers,
    runtime: Option<&'static str>,
    name: String,
}

impl RunningContainer<'_> {
    fn podman(&self, args: &[&str]) -> std::process::Output {
        self.containers.podman(self.runtime, args)
    }

    fn logs(&self) -> String {
        let output = self.podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// The host directory of the container's `/data` volume.
    fn data_volume(&self) -> PathBuf {
        let format = "{{range .Mounts}}{{.Source}}{{end}}";
        let inspect = self.podman(&["inspect", "--format", format, &self.name]);
        assert!(
            inspect.status.success(),
            "podman inspect: {}",
            text(&inspect)
        );
        PathBuf::from(String::from_utf8_lossy(&inspect.stdout).trim())
    }
}

impl Drop for RunningContainer<'_> {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-f", "-v", &self.name]);
    }
}

/// Runs the image with its own command where podman can run containers here, and checks
/// `/healthz` and `/readyz` over the self-signed certificate it made, the owner of what it
/// wrote, and a graceful stop. Where it cannot, prints why and returns.
pub async fn run_image(containers: &Containers, image: &str) {
    if !interop_tool_available("podman", &["--version"]) {
        return;
    }
    let port = free_port();
    let runner = match runner(containers, image, &format!("127.0.0.1:{port}:5000")) {
        Ok(runner) => runner,
        Err(reasons) => {
            eprintln!(
                "NOTICE: podman cannot run containers on this machine, so the image was built, pushed and pulled but not run: {reasons}"
            );
            return;
        }
    };

    // The image's own command: TLS with a self-signed certificate on 0.0.0.0:5000, confined as
    // deploy/kubernetes/deployment.yaml confines it: a read-only root file system (only /data
    // and /tmp writable), no capabilities, no privilege escalation.
    let name = format!("airlock-packaging-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend([
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
    ]);
    args.extend(runner.args.iter().map(String::as_str));
    args.push(image);
    let run = containers.podman(runner.runtime, &args);
    assert!(run.status.success(), "podman run: {}", text(&run));
    let container = RunningContainer {
        containers,
        runtime: runner.runtime,
        name: name.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !container
        .logs()
        .contains("airlock listening on https://0.0.0.0:5000")
    {
        assert!(
            Instant::now() < deadline,
            "airlock did not start: {}",
            container.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let confined = container.podman(&[
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
        &name,
    ]);
    assert!(
        String::from_utf8_lossy(&confined.stdout).starts_with("true "),
        "read-only root: {}",
        text(&confined)
    );

    // What it wrote in the /data volume is the airlock user's.
    let volume = container.data_volume();
    let cert = volume.join("tls/self-signed.crt");
    for file in [&cert, &volume.join("metadata.db")] {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        assert_eq!(
            metadata.uid(),
            65532,
            "{file:?} written by the airlock user"
        );
    }

    // /healthz and /readyz through the published port, trusting only that certificate.
    let client = https_client(&cert, false);
    for (path, body) in [("/healthz", "ok"), ("/readyz", "\"ready\"")] {
        let answer = client
            .get(format!("https://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}; logs: {}", container.logs()));
        assert_eq!(answer.status(), 200, "{path}");
        let text = answer.text().await.expect("body");
        assert!(text.contains(body), "{path}: {text}");
    }

    // SIGTERM (the image's stop signal) drains and exits 0.
    let stopped = container.podman(&["stop", "-t", "30", &name]);
    assert!(stopped.status.success(), "podman stop: {}", text(&stopped));
    let exit = container.podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&exit.stdout).trim(),
        "0",
        "exit status after SIGTERM; logs: {}",
        container.logs()
    );
    eprintln!(
        "podman ran the image (runtime {})",
        runner.runtime.unwrap_or("default")
    );
}
