//! The Kubernetes manifests: valid against the Kubernetes schemas (kubernetes-validate, which
//! bundles them: no cluster or network), broken copies refused, the drain and probes matched to
//! the grace period, the ConfigMap a configuration airlock loads, placeholders in the templates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common::*;
use super::{number_setting, repo, text};

fn manifests() -> PathBuf {
    repo().join("deploy/kubernetes")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(manifests().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
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

fn validator_ready() -> bool {
    interop_tool_available("kubernetes-validate", &["--version"])
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    if !validator_ready() {
        return;
    }
    let dir = manifests();
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
        "admission-webhook.yaml",
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
}

#[test]
fn the_schema_check_refuses_broken_manifests() {
    if !validator_ready() {
        return;
    }
    // A wrong type, a misspelt field, a value of the wrong kind, a field in the wrong place,
    // each named in the refusal.
    let deployment = read("deployment.yaml");
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
    // And a file that is not YAML.
    let path = temp.path().join("not-yaml.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: [Service\n").expect("write");
    let output = kubernetes_validate(&[path]);
    assert!(
        !output.status.success(),
        "broken YAML accepted: {}",
        text(&output)
    );
}

#[test]
fn the_drain_fits_the_grace_period_and_the_probes_see_it() {
    // readyz fails for drain_delay_secs while requests are served, then requests in flight get
    // timeout_secs; Kubernetes sends SIGKILL after terminationGracePeriodSeconds.
    let config = read("configmap.yaml");
    let deployment = read("deployment.yaml");
    let drain = number_setting(&config, "drain_delay_secs");
    let timeout = number_setting(&config, "timeout_secs");
    let grace = number_setting(&deployment, "terminationGracePeriodSeconds");
    assert!(
        grace > drain + timeout,
        "grace {grace} <= drain {drain} + timeout {timeout}"
    );
    // The readiness probe notices the drain before the socket closes.
    let readiness = deployment
        .split("readinessProbe:")
        .nth(1)
        .expect("a readiness probe");
    assert!(readiness.contains("path: /readyz"), "{readiness}");
    let period = number_setting(readiness, "periodSeconds");
    let failures = number_setting(readiness, "failureThreshold");
    assert!(
        period * failures < drain,
        "readiness notices the drain in time"
    );
    let liveness = deployment
        .split("livenessProbe:")
        .nth(1)
        .expect("a liveness probe");
    assert!(liveness.contains("path: /healthz"), "{liveness}");
    // A rolling update never goes below the replicas, and the budget keeps two.
    assert!(deployment.contains("replicas: 3"));
    assert!(deployment.contains("maxUnavailable: 0"));
    assert!(read("poddisruptionbudget.yaml").contains("minAvailable: 2"));
}

/// The ConfigMap's `airlock.toml` text (the block under `airlock.toml: |`).
fn configmap_toml() -> String {
    let configmap = read("configmap.yaml");
    let mut lines = configmap
        .lines()
        .skip_while(|l| l.trim() != "airlock.toml: |");
    lines.next().expect("data.airlock.toml");
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect()
}

#[test]
fn the_configmap_is_a_configuration_airlock_loads() {
    let table: toml::Table = configmap_toml().parse().expect("airlock.toml is TOML");
    // The replicated setup: S3 blobs, PostgreSQL from the environment (the URL holds a
    // password), the keys' directory, TLS, the URL clients use.
    assert!(
        table["blob_store"]
            .as_str()
            .is_some_and(|s| s.starts_with("s3://")),
        "{table}"
    );
    assert!(!table.contains_key("database_url"), "environment only");
    assert_eq!(table["data_dir"].as_str(), Some("/data/airlock"));
    assert!(table.contains_key("tls"), "TLS in airlock");
    assert!(
        table["access"]["public_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("airlock.toml");
    std::fs::write(&path, table.to_string()).expect("write");
    if let Err(error) = airlock_server::config::Config::load(Some(&path), Vec::new()) {
        panic!("airlock refuses the ConfigMap's airlock.toml: {error}");
    }
}

#[test]
fn the_secret_templates_hold_placeholders_only() {
    for file in yaml_files(&manifests().join("secrets")) {
        let template = std::fs::read_to_string(&file).expect("template");
        assert!(template.contains("REPLACE_ME"), "{}", file.display());
        assert!(
            !template.contains("PRIVATE+KEY+airlock"),
            "{}",
            file.display()
        );
        assert!(
            !template.contains("\ndata:"),
            "{}: stringData only",
            file.display()
        );
    }
}
