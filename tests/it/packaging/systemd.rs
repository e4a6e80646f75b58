//! The systemd unit: `systemd-analyze verify` (offline: it needs no running systemd) with this
//! build's binary in place, its `security` exposure, and a stop timeout that covers the drain.

use std::path::Path;
use std::process::{Command, Output};

use super::common::*;
use super::{number_setting, repo, text};

fn unit() -> String {
    std::fs::read_to_string(repo().join("deploy/systemd/airlock.service")).expect("airlock.service")
}

fn analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("run systemd-analyze")
}

/// The unit with `binary` where it expects `/usr/local/bin/airlock`, in a temporary file.
fn unit_with_binary(binary: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("airlock.service");
    std::fs::write(&path, unit().replace("/usr/local/bin/airlock", binary)).expect("write unit");
    (temp, path)
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if !interop_tool_available("systemd-analyze", &["--version"]) {
        return;
    }
    let (_temp, path) = unit_with_binary(env!("CARGO_BIN_EXE_airlock"));
    let verified = analyze(&["verify"], &path);
    assert!(
        verified.status.success(),
        "systemd-analyze verify: {}",
        text(&verified)
    );
    assert!(verified.stderr.is_empty(), "warnings: {}", text(&verified));
    // systemd-analyze prints the exposure from 0 to 10; --threshold is in tenths.
    let security = analyze(
        &["security", "--offline=true", "--no-pager", "--threshold=20"],
        &path,
    );
    assert!(
        security.status.success(),
        "exposure above 2.0: {}",
        text(&security)
    );
    let unit = unit();
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=airlock",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(setting), "{setting}");
    }
}

#[test]
fn the_unit_check_refuses_a_broken_unit() {
    if !interop_tool_available("systemd-analyze", &["--version"]) {
        return;
    }
    let (_temp, path) = unit_with_binary("/nonexistent/airlock");
    let refused = analyze(&["verify"], &path);
    assert!(
        !refused.status.success(),
        "a missing binary passed: {}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("/nonexistent/airlock"),
        "{}",
        text(&refused)
    );
}

#[test]
fn the_stop_timeout_covers_the_drain() {
    // The defaults: [shutdown] drain_delay_secs 5, then up to timeout_secs 30 for requests in
    // flight; systemd sends SIGKILL after TimeoutStopSec.
    let defaults = airlock_server::config::ShutdownConfig::default();
    let stop = number_setting(&unit(), "TimeoutStopSec");
    assert!(
        stop > defaults.drain_delay_secs + defaults.timeout_secs,
        "TimeoutStopSec={stop}"
    );
}
