//! The web console in a real browser: tests/browser/console.py drives Debian's chromium headless
//! with Playwright (PyPI) and checks pages with axe-core (npm), as scripts/setup installs them;
//! tests/browser/release.py takes an image skopeo pushed through the default policy (denied
//! unsigned, signed by the independent cosign implementation, approved by a second person).
//! Screenshots of the pages go to `target/console-screenshots/`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    ADMIN_PASSWORD, TestServer, add_user, interop_tool_available, permissive_bundle, post_json,
};
use serde_json::json;

/// Where scripts/setup installs axe-core (`AIRLOCK_AXE_CORE` overrides).
const AXE_CORE: &str = "/usr/local/lib/airlock-test/node_modules/axe-core/axe.min.js";
const PASSWORD: &str = "lamp-orbit-tall-river";

fn axe_core() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("AIRLOCK_AXE_CORE").unwrap_or_else(|_| AXE_CORE.into()));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("AIRLOCK_INTEROP").as_deref() == Ok("required") {
        panic!(
            "axe-core is required (AIRLOCK_INTEROP=required) but {} is missing; scripts/setup installs it",
            path.display()
        );
    }
    eprintln!(
        "NOTICE: skipping browser test: axe-core is not at {}",
        path.display()
    );
    None
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    if !interop_tool_available("chromium", &["--version"])
        || !interop_tool_available("python3", &["-c", "import playwright.sync_api"])
    {
        return;
    }
    let Some(axe) = axe_core() else {
        return;
    };
    // A permissive policy and one approval on staging: promotions wait for a person.
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("bundle"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
        ("AIRLOCK_ANOMALIES__AUTH_FAILURES__THRESHOLD", "3"),
        ("AIRLOCK_ANOMALIES__AUTH_FAILURES__ACTION", "lock_principal"),
    ]);
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"one"]).await;
    let (_, second) = s.push_image("dev/team/app", "2.0", &[b"one more"]).await;
    s.push_image("dev/other/secret", "1.0", &[b"two"]).await;
    add_user(&s, "ada", PASSWORD, &[("developer", "dev/team/app")]).await;
    let rita = add_user(
        &s,
        "rita",
        PASSWORD,
        &[("promoter", "staging"), ("approver", "staging")],
    )
    .await;
    add_user(&s, "ann", PASSWORD, &[("approver", "staging")]).await;
    // Three wrong passwords lock mallory: an open anomaly for the admin to resolve.
    let mallory = add_user(&s, "mallory", PASSWORD, &[("reader", "*")]).await;
    let wrong = common::client_as("mallory", "not-her-password");
    for _ in 0..3 {
        let status = wrong
            .get(s.url("/v2/_catalog"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let catalog = s.url("/v2/_catalog");
    assert_eq!(mallory.get(&catalog).send().await.unwrap().status(), 401);
    let (status, body) = post_json(
        &rita,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let promotion = body["promotion"]["id"].as_str().unwrap().to_string();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.py");
    let base = s.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base.trim_end_matches('/'))
            .args([ADMIN_PASSWORD, PASSWORD, &promotion, &second])
            .arg(&shots)
            .arg(&axe)
            .output()
            .expect("run tests/browser/console.py")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{said}");
    // Every scenario ran and passed.
    assert_eq!(
        said.lines().filter(|l| l.starts_with("ok: ")).count(),
        24,
        "{said}"
    );
    // The anomaly the browser resolved no longer locks mallory.
    assert_eq!(mallory.get(&catalog).send().await.unwrap().status(), 200);
    eprintln!("{said}");
}

/// Writes an OCI image layout holding one small image tagged `tag` into `dir`; returns the
/// image's manifest digest.
fn oci_layout(dir: &Path, tag: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    // An empty tar archive (two zero blocks) as the one layer.
    let (layer, layer_size) = put(&[0u8; 1024]);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    });
    let (config, config_size) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest
}

#[tokio::test]
async fn a_release_goes_through_the_console_under_the_default_policy() {
    if !interop_tool_available("chromium", &["--version"])
        || !interop_tool_available("python3", &["-c", "import playwright.sync_api"])
        || !interop_tool_available("skopeo", &["--version"])
        || !common::python_ready()
    {
        return;
    }
    // The default policy bundle; one approval on staging.
    let s = TestServer::start_with_env(&[("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1")]);
    add_user(&s, "ci", PASSWORD, &[("developer", "dev/team/*")]).await;
    add_user(
        &s,
        "rita",
        PASSWORD,
        &[
            ("promoter", "staging"),
            ("approver", "staging"),
            ("reader", "dev/team/*"),
        ],
    )
    .await;
    add_user(&s, "ann", PASSWORD, &[("approver", "staging")]).await;
    let kim = add_user(&s, "kim", PASSWORD, &[("key-admin", "*")]).await;
    let work = tempfile::tempdir().unwrap();
    let key_dir = work.path().join("key");
    std::fs::create_dir_all(&key_dir).unwrap();
    common::cosign_spec_ok(&["keygen", "--out-dir", key_dir.to_str().unwrap()]);
    let pem = std::fs::read_to_string(key_dir.join("key.pub")).unwrap();
    let (status, body) = post_json(
        &kim,
        &s.url("/api/v1/keys"),
        json!({"name": "release-ci", "public_key": pem, "purposes": ["sign", "attest:https://cyclonedx.org/bom"], "scope": ["team/*"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The builder pushes with skopeo.
    let layout = work.path().join("layout");
    let written = oci_layout(&layout, "1.0");
    let pushed = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--dest-creds",
            &format!("ci:{PASSWORD}"),
            "--dest-tls-verify=false",
            &format!("oci:{}:1.0", layout.display()),
            &format!("docker://{}/dev/team/app:1.0", s.host),
        ])
        .output()
        .expect("run skopeo");
    assert!(
        pushed.status.success(),
        "skopeo push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    // What the registry holds under the tag (skopeo may have re-encoded the manifest).
    let head = s
        .http
        .head(s.url("/v2/dev/team/app/manifests/1.0"))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let digest = head.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    eprintln!("skopeo pushed {digest} (the layout's manifest: {written})");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/release.py");
    let base = s.url("");
    let key = key_dir.join("key.pem");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base.trim_end_matches('/'))
            .args([PASSWORD, &digest])
            .arg(&key)
            .arg(&shots)
            .output()
            .expect("run tests/browser/release.py")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{said}");
    assert_eq!(
        said.lines().filter(|l| l.starts_with("ok: ")).count(),
        4,
        "{said}"
    );
    eprintln!("{said}");
}
