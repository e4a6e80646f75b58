//! Packaging (`deploy/`, docs/deploy.md), checked with the tools that consume it:
//! - `packaging/image.rs`: the container image `deploy/image/build.sh` makes with buildah from
//!   this test's binary is reproducible, is pushed into a running airlock, pulled back by digest
//!   with skopeo, and holds the same manifest digest, the same binary, the libraries `ldd`
//!   names, a non-root user owning `/data` and the OCI labels;
//! - `packaging/podman.rs`: where podman can run containers on this machine, the image runs with
//!   its own command and answers `/healthz` and `/readyz` over its self-signed TLS, and stops
//!   cleanly on SIGTERM (where it cannot, that part is skipped with the reason printed);
//! - `packaging/kubernetes.rs`: the manifests validate against the Kubernetes schemas
//!   (`kubernetes-validate --strict`), broken copies are refused, the drain fits the grace
//!   period, the ConfigMap loads as airlock's configuration;
//! - `packaging/systemd.rs`: the unit passes `systemd-analyze verify`, its `security` exposure
//!   stays low, and its stop timeout covers the drain.
//!
//! Every tool is an interop tool: missing, its test skips with a NOTICE, unless
//! `AIRLOCK_INTEROP=required` (CI), where it fails.

use crate::common;
mod image;
mod kubernetes;
mod podman;
mod systemd;

use std::path::PathBuf;
use std::process::Output;

/// The repository's root (where `deploy/` is).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command's status and output, for assertion messages.
fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The number in the first `key = N` or `key: N` line of `text` (comments excluded).
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
