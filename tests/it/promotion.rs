//! Promotions end to end: gates, approvals and separation of duties, zero-copy promotion with a
//! signed promotion attestation, races, fail-closed policy evaluation, rollback, freezes,
//! break-glass, decision replay and dry runs.
//!
//! Every test starts its own `airlock serve` through the shared harness. Evidence (signatures and
//! attestations) is made by the independent cosign implementation `tests/interop/cosign_spec.py`,
//! so the gates decide over evidence airlock did not produce itself; those tests skip with a
//! notice when Python or its libraries are missing, and fail with `AIRLOCK_INTEROP=required`.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    ADMIN_PASSWORD, OCI_MANIFEST, TestServer, client_as, cosign_spec as py,
    cosign_spec_ok as py_ok, interop_tool_available, post_json as post, python_ready, sha256,
};
use serde_json::{Value, json};

const PASSWORD: &str = "promotion-test-password-1";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
const SCORECARD: &str = "https://scorecard.dev/result/v0.1";
const PROMOTION_ATTESTATION: &str = "https://airlock.dev/attestation/promotion/v1";
const SLSA_VSA: &str = "https://slsa.dev/verification_summary/v1";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs the independent SLSA VSA checker `tests/interop/slsa_vsa.py`; returns its JSON answer
/// (exit status 0 or 1: the answer says which checks failed).
fn py_vsa(args: &[&str]) -> Value {
    let output = Command::new("python3")
        .arg("tests/interop/slsa_vsa.py")
        .args(args)
        .output()
        .expect("run python3");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "slsa_vsa.py {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The rule ids of a decision's `deny` (or `warn`) list, in the decision's order.
fn rules(violations: &Value) -> Vec<String> {
    violations
        .as_array()
        .unwrap_or_else(|| panic!("not a list of violations: {violations}"))
        .iter()
        .map(|v| v["rule"].as_str().expect("rule").to_string())
        .collect()
}

/// How many blobs the blob store holds (committed blobs only).
fn blob_files(data_dir: &Path) -> usize {
    common::stored_blob_count(data_dir)
}

fn slsa_provenance() -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/build.yml"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}}]
        },
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}, "metadata": {"invocationId": "1"}}
    })
}

fn cyclonedx_allowed_licenses() -> Value {
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [
            {"type": "library", "name": "serde", "version": "1.0.200", "purl": "pkg:cargo/serde@1.0.200",
             "licenses": [{"expression": "MIT OR Apache-2.0"}]},
            {"type": "library", "name": "zlib", "version": "1.3.1-r2", "purl": "pkg:apk/alpine/zlib@1.3.1-r2?arch=x86_64",
             "licenses": [{"license": {"id": "Zlib"}}]}
        ]
    })
}

/// A cosign `vuln` predicate holding a Trivy JSON report with only medium and low findings.
fn trivy_vuln_report() -> Value {
    json!({
        "invocation": {"parameters": null, "uri": "https://github.com/acme/app/actions/runs/1", "event_id": "1", "builder.id": "github-actions"},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@244fd47e07d1004f0aed9",
            "version": "0.50.1",
            "db": {"uri": "", "version": ""},
            "result": {
                "SchemaVersion": 2,
                "ArtifactName": "app:1.0",
                "ArtifactType": "container_image",
                "Results": [{
                    "Target": "app:1.0 (debian 12.5)", "Class": "os-pkgs", "Type": "debian",
                    "Vulnerabilities": [
                        {"VulnerabilityID": "CVE-2011-3374", "PkgName": "apt", "InstalledVersion": "2.6.1", "FixedVersion": "", "Severity": "LOW"},
                        {"VulnerabilityID": "CVE-2024-2236", "PkgName": "libgcrypt20", "InstalledVersion": "1.10.1-3", "FixedVersion": "", "Severity": "MEDIUM"}
                    ]
                }]
            }
        },
        "metadata": {"scanStartedOn": "2026-11-25T10:00:00Z", "scanFinishedOn": "2026-11-25T10:01:00Z"}
    })
}

fn passing_tests() -> Value {
    json!({
        "result": "PASSED",
        "configuration": [{"name": ".github/workflows/ci.yml", "digest": {"sha256": "00"}}],
        "url": "https://github.com/acme/app/actions/runs/1",
        "passedTests": ["unit", "integration", "e2e"],
        "warnedTests": [],
        "failedTests": []
    })
}

/// An OpenSSF Scorecard result (JSON v2, as `scorecard --format=json` writes it) for the source
/// repository [`slsa_provenance`] names, with `score` and a `Maintained` check of `maintained`.
/// It is dated a day ago, so it is never older than the default bundle's maximum age.
fn scorecard_result(score: f64, maintained: i64) -> Value {
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let date = yesterday
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "date": date,
        "repo": {"name": "github.com/acme/app", "commit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"},
        "scorecard": {"version": "v5.3.0", "commit": "c22063e786c11f9dd714d777a687ff7c4599b600"},
        "score": score,
        "checks": [
            {"name": "Maintained", "score": maintained, "reason": "30 commit(s) found in the last 90 days", "details": null,
             "documentation": {"short": "Determines if the project is \"actively maintained\".", "url": "https://github.com/ossf/scorecard/blob/main/docs/checks.md#maintained"}},
            {"name": "Pinned-Dependencies", "score": 8, "reason": "dependency not pinned by hash detected", "details": null,
             "documentation": {"short": "Determines if the project has declared and pinned the dependencies of its build process.", "url": "https://github.com/ossf/scorecard/blob/main/docs/checks.md#pinned-dependencies"}}
        ],
        "metadata": null
    })
}

/// Every purpose a CI key needs for the default prod gate.
fn ci_purposes() -> Vec<String> {
    let mut purposes = vec!["sign".to_string()];
    for t in [SLSA_V1, CYCLONEDX, COSIGN_VULN, TEST_RESULT, SCORECARD] {
        purposes.push(format!("attest:{t}"));
    }
    purposes
}

/// A gate that denies only with the default bundle's shared rules (`common.*`: input version,
/// freeze, revoked evidence, invalid break-glass), so a test can focus on one mechanism.
fn permissive_gate(stage: &str) -> String {
    format!(
        "package airlock.gates.{stage}\n\nimport data.airlock.lib.common_deny\n\n\
         deny contains v if some v in common_deny\n"
    )
}

/// Writes a bundle directory from (path, content) pairs.
fn write_bundle(dir: &Path, files: &[(&str, String)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    dir.to_path_buf()
}

/// The default bundle's helpers, settings and rollback query, with permissive gates.
fn permissive_bundle(dir: &Path) -> PathBuf {
    let read = |name: &str| std::fs::read_to_string(Path::new("policies").join(name)).unwrap();
    write_bundle(
        dir,
        &[
            ("lib.rego", read("lib.rego")),
            ("rollback.rego", read("rollback.rego")),
            ("data.json", read("data.json")),
            ("staging.rego", permissive_gate("staging")),
            ("prod.rego", permissive_gate("prod")),
        ],
    )
}

/// Pushes a one-layer image to `repo:tag` as `client`, with a source annotation; returns its
/// digest.
async fn push_image_as(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    tag: &str,
    layer: &[u8],
) -> String {
    common::push_image_as(
        s,
        client,
        repo,
        tag,
        layer,
        Some(json!({"org.opencontainers.image.source": "https://github.com/acme/app"})),
    )
    .await
}

/// The digest `repo:reference` resolves to over the OCI API (as admin), or `None` for 404.
async fn resolve(s: &TestServer, repo: &str, reference: &str) -> Option<String> {
    let response = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => Some(sha256(&response.bytes().await.unwrap())),
        404 => None,
        other => panic!(
            "GET {repo}:{reference}: {other} {}",
            response.text().await.unwrap()
        ),
    }
}

/// A test bed: a server, a scratch directory, and helpers acting as named users.
struct Bed {
    s: TestServer,
    dir: tempfile::TempDir,
}

impl Bed {
    fn start(env: &[(&str, &str)]) -> Self {
        Self {
            s: TestServer::start_with_env(env),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates user `name` (password [`PASSWORD`]) with `(role, scope)` grants made by admin.
    async fn user(&self, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
        let (status, body) = post(
            &self.s.http,
            &self.s.url("/api/v1/users"),
            json!({"name": name, "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 201, "add user {name}: {body}");
        for (role, scope) in grants {
            let (status, body) = post(
                &self.s.http,
                &self.s.url("/api/v1/roles/grant"),
                json!({"principal": name, "role": role, "scope": scope}),
            )
            .await;
            assert_eq!(status, 200, "grant {role} on {scope} to {name}: {body}");
        }
        client_as(name, PASSWORD)
    }

    /// Runs the CLI logged in as `user` (in the user's own config directory).
    fn cli(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        let home = self.path(&format!("home-{user}"));
        if !home.join("airlock/credentials.json").exists() {
            std::fs::create_dir_all(&home).unwrap();
            let (code, out, err) = self.s.cli_as(
                &home,
                &["login", &self.s.base, "-u", user, "--password-stdin"],
                Some(PASSWORD),
            );
            assert_eq!(code, 0, "login {user}: {out}{err}");
        }
        self.s.cli_as(&home, args, None)
    }

    /// Generates a P-256 key pair with the independent implementation; returns its directory.
    fn keygen(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        py_ok(&["keygen", "--out-dir", dir.to_str().unwrap()]);
        dir
    }

    /// Adds the public key in `key_dir` to the keyring as `name` with scope `team/*`.
    async fn add_key(
        &self,
        keyadmin: &reqwest::Client,
        name: &str,
        key_dir: &Path,
        purposes: &[String],
    ) {
        let pem = std::fs::read_to_string(key_dir.join("key.pub")).unwrap();
        let (status, body) = post(
            keyadmin,
            &self.s.url("/api/v1/keys"),
            json!({"name": name, "public_key": pem, "purposes": purposes, "scope": ["team/*"]}),
        )
        .await;
        assert_eq!(status, 201, "add key {name}: {body}");
    }

    fn registry_args(&self, user: &str, password: &str, repo: &str, digest: &str) -> Vec<String> {
        [
            "--registry",
            &self.s.base,
            "--user",
            user,
            "--password",
            password,
            "--repo",
            repo,
            "--digest",
            digest,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `user` pushes a cosign signature (tag scheme) of `repo@digest` made with `key_dir`.
    fn sign(&self, user: &str, repo: &str, digest: &str, key_dir: &Path) {
        let mut args = vec!["sign".to_string()];
        args.extend(self.registry_args(user, PASSWORD, repo, digest));
        args.extend([
            "--key".into(),
            key_dir.join("key.pem").display().to_string(),
        ]);
        let out = py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out["tag"], format!("sha256-{}.sig", &digest[7..]), "{out}");
    }

    /// `user` pushes a cosign attestation (tag scheme) of `repo@digest` made with `key_dir`.
    fn attest(
        &self,
        user: &str,
        repo: &str,
        digest: &str,
        key_dir: &Path,
        predicate_type: &str,
        predicate: &Value,
    ) {
        let file = self.path(&format!("predicate-{}.json", unique()));
        std::fs::write(&file, predicate.to_string()).unwrap();
        let mut args = vec!["attest".to_string()];
        args.extend(self.registry_args(user, PASSWORD, repo, digest));
        args.extend([
            "--key".into(),
            key_dir.join("key.pem").display().to_string(),
            "--predicate-type".into(),
            predicate_type.into(),
            "--predicate".into(),
            file.display().to_string(),
        ]);
        py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Signs `repo@digest` and attests everything the default prod gate asks for (a Scorecard
    /// result included, so that it gives no warning), except the test result when `tests` is
    /// false.
    fn make_prod_ready(&self, user: &str, repo: &str, digest: &str, key_dir: &Path, tests: bool) {
        self.sign(user, repo, digest, key_dir);
        self.attest(user, repo, digest, key_dir, SLSA_V1, &slsa_provenance());
        self.attest(
            user,
            repo,
            digest,
            key_dir,
            CYCLONEDX,
            &cyclonedx_allowed_licenses(),
        );
        self.attest(
            user,
            repo,
            digest,
            key_dir,
            COSIGN_VULN,
            &trivy_vuln_report(),
        );
        self.attest(
            user,
            repo,
            digest,
            key_dir,
            SCORECARD,
            &scorecard_result(9.1, 10),
        );
        if tests {
            self.attest(user, repo, digest, key_dir, TEST_RESULT, &passing_tests());
        }
    }

    /// Checks that every evidence item of `repo@digest` verified (nothing was rejected) and
    /// returns how many there are.
    async fn verified_evidence(&self, repo: &str, digest: &str) -> usize {
        let (status, body) = get(
            &self.s.http,
            &self
                .s
                .url(&format!("/api/v1/artifacts/{repo}@{digest}/evidence")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let items = body["evidence"].as_array().cloned().unwrap_or_default();
        for item in &items {
            assert_eq!(item["status"], "verified", "{item:#}");
        }
        items.len()
    }

    /// `POST /api/v1/promotions` as `client`: `source` (`dev/team/app`), `reference`, `to`, and
    /// any further fields in `extra`.
    async fn promote(
        &self,
        client: &reqwest::Client,
        source: &str,
        reference: &str,
        to: &str,
        extra: Value,
    ) -> (u16, Value) {
        let mut body = json!({"source": source, "reference": reference, "to": to});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        post(client, &self.s.url("/api/v1/promotions"), body).await
    }

    async fn approve(&self, client: &reqwest::Client, id: &str) -> (u16, Value) {
        post(
            client,
            &self.s.url(&format!("/api/v1/promotions/{id}/approve")),
            json!({"comment": "looks good"}),
        )
        .await
    }

    async fn promotion(&self, id: &str) -> Value {
        let (status, body) = get(
            &self.s.http,
            &self.s.url(&format!("/api/v1/promotions/{id}")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn promotions(&self) -> Vec<Value> {
        let (status, body) = get(
            &self.s.http,
            &self.s.url("/api/v1/promotions?repository=team/app"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["promotions"].as_array().cloned().unwrap()
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Asserts an allowed promotion response in `state` needing `approvals` approvals; returns its id.
fn expect_promotion(status: u16, body: &Value, state: &str, approvals: u64) -> String {
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["decision"]["allowed"], true, "{body:#}");
    assert_eq!(body["promotion"]["state"], state, "{body:#}");
    assert_eq!(body["approvals_required"], approvals, "{body:#}");
    assert_eq!(
        body["promotion"]["approvals_required"], approvals,
        "{body:#}"
    );
    body["promotion"]["id"].as_str().unwrap().to_string()
}

/// Asserts a policy denial (of a new promotion) with exactly the rule ids `expected`.
fn expect_denied(status: u16, body: &Value, expected: &[&str]) {
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "POLICY_DENIED", "{body:#}");
    assert_eq!(body["decision"]["allowed"], false, "{body:#}");
    assert_eq!(rules(&body["decision"]["deny"]), expected, "{body:#}");
    assert_eq!(body["promotion"]["state"], "denied", "{body:#}");
}

/// Asserts an approval refused by separation of duties (or role) with `message`.
fn expect_refused(status: u16, body: &Value, message: &str) {
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "APPROVAL_REFUSED", "{body:#}");
    assert_eq!(body["error"]["message"], message, "{body:#}");
}

/// Asserts an approval of promotion `id` refused because it is `state`, not pending: a conflict
/// with the promotion's state.
fn expect_not_pending(status: u16, body: &Value, id: &str, state: &str) {
    assert_eq!(status, 409, "{body:#}");
    assert_eq!(body["error"]["code"], "CONFLICT", "{body:#}");
    assert_eq!(
        body["error"]["message"],
        format!("promotion {id} is {state}, not pending_approval; nothing to approve"),
        "{body:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The whole path with real clients

/// Runs skopeo with `user:password` credentials (both ends of a copy, or an inspect).
fn skopeo(creds: &str, args: &[&str]) -> Vec<u8> {
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
    let output = command.output().expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn end_to_end_with_real_clients() {
    if !interop_tool_available("skopeo", &["--version"]) || !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("promoter", "prod")])
        .await;
    let alice = bed.user("alice", &[("approver", "prod")]).await;
    let admin_creds = format!("admin:{ADMIN_PASSWORD}");
    let ci_creds = format!("ci:{PASSWORD}");

    // CI pushes the image with skopeo from an OCI layout.
    let layout = bed.path("layout");
    let status = Command::new("python3")
        .arg("scripts/example-image")
        .arg(&layout)
        .arg("1.4.2")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    skopeo(
        &ci_creds,
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:1.4.2", layout.display()),
            &format!("docker://{}/dev/team/app:1.4.2", s.host),
        ],
    );
    let inspect: Value = serde_json::from_slice(&skopeo(
        &admin_creds,
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/dev/team/app:1.4.2", s.host),
        ],
    ))
    .unwrap();
    let digest = inspect["Digest"].as_str().unwrap().to_string();

    // A key admin trusts CI's key; CI signs and attests with the independent implementation,
    // everything but the test result.
    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.make_prod_ready("ci", "dev/team/app", &digest, &key, false);
    assert_eq!(bed.verified_evidence("dev/team/app", &digest).await, 5);

    // dev -> staging: no approvals, promoted at once, without copying a blob. The only new blobs
    // are the promotion attestation's envelope and config.
    let blobs_before = blob_files(&s.data_dir);
    let (status, body) = bed
        .promote(&rita, "dev/team/app", "1.4.2", "staging", json!({}))
        .await;
    let staging_id = expect_promotion(status, &body, "promoted", 0);
    assert_eq!(body["promotion"]["digest"], digest.as_str());
    assert_eq!(body["promotion"]["target"], "staging/team/app");
    assert_eq!(body["promotion"]["tags"], json!(["1.4.2"]));
    assert_eq!(body["decision"]["deny"], json!([]));
    assert_eq!(
        body["decision"]["warn"],
        json!([]),
        "an SBOM exists: no staging.sbom_missing"
    );
    // The attestation's three blobs (the promotion attestation's and the SLSA VSA's envelopes, the
    // config), and no copy of the artifact.
    assert_eq!(blob_files(&s.data_dir), blobs_before + 3);

    // staging -> prod before the test-result attestation exists: denied by exactly that rule.
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    expect_denied(status, &body, &["prod.tests_required"]);
    let msg = body["decision"]["deny"][0]["msg"].as_str().unwrap();
    assert_eq!(
        msg,
        format!("staging/team/app@{digest} has no passing test-result attestation (none attested)")
    );
    assert_eq!(
        body["decision"]["deny"][0]["docs"],
        "docs/policy.md#prod-tests-required"
    );
    assert_eq!(
        blob_files(&s.data_dir),
        blobs_before + 3,
        "a denial writes no blob"
    );

    // The gap is closed; prod now waits for the one approval the default policy requires.
    bed.attest(
        "ci",
        "dev/team/app",
        &digest,
        &key,
        TEST_RESULT,
        &passing_tests(),
    );
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    let prod_id = expect_promotion(status, &body, "pending_approval", 1);
    assert_eq!(body["promotion"]["channel"], "stable");
    assert_eq!(
        resolve(s, "prod/team/app", "1.4.2").await,
        None,
        "nothing in prod before approval"
    );

    let blobs_before = blob_files(&s.data_dir);
    let (status, body) = bed.approve(&alice, &prod_id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["decision"]["allowed"], true, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    assert_eq!(
        blob_files(&s.data_dir),
        blobs_before + 3,
        "promotion copies no blob: only its attestation's envelopes and config"
    );
    let shown = bed.promotion(&prod_id).await;
    assert_eq!(shown["state"], "promoted");
    assert_eq!(shown["requested_by"], "rita");
    assert_eq!(shown["approvals"][0]["principal"], "alice");
    assert_eq!(shown["approvals"].as_array().unwrap().len(), 1);
    let attestation = shown["attestation"].as_str().unwrap().to_string();

    // Real clients see the same digest in prod, by tag and channel, and pull it.
    for tag in ["1.4.2", "stable"] {
        let inspect: Value = serde_json::from_slice(&skopeo(
            &admin_creds,
            &[
                "inspect",
                "--tls-verify=false",
                &format!("docker://{}/prod/team/app:{tag}", s.host),
            ],
        ))
        .unwrap();
        assert_eq!(inspect["Digest"], digest.as_str(), "prod/team/app:{tag}");
    }
    let pulled = bed.path("pulled");
    skopeo(
        &admin_creds,
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/prod/team/app@{digest}", s.host),
            &format!("oci:{}:pulled", pulled.display()),
        ],
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // The promotion attestation verifies with airlock's public key in the independent
    // implementation. The prod `.att` image carries the staging promotion's attestation too
    // (evidence travels with the artifact), so two layers verify with airlock's key.
    let response = s
        .anonymous
        .get(s.url("/api/v1/attestation-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pem = response.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let pub_file = bed.path("airlock-attestation.pub");
    std::fs::write(&pub_file, &pem).unwrap();
    let mut args = vec!["verify-attestation".to_string()];
    args.extend(bed.registry_args("admin", ADMIN_PASSWORD, "prod/team/app", &digest));
    args.extend([
        "--pub".into(),
        pub_file.display().to_string(),
        "--type".into(),
        PROMOTION_ATTESTATION.into(),
    ]);
    let verified = py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(verified["verified"], 2, "{verified:#}");
    // CI's provenance travelled to prod as well and still verifies with CI's key.
    let mut args = vec!["verify-attestation".to_string()];
    args.extend(bed.registry_args("admin", ADMIN_PASSWORD, "prod/team/app", &digest));
    args.extend([
        "--pub".into(),
        key.join("key.pub").display().to_string(),
        "--type".into(),
        SLSA_V1.into(),
    ]);
    assert_eq!(
        py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())["verified"],
        1
    );

    // What the prod promotion attestation states.
    let response = s
        .http
        .get(s.url(&format!("/v2/prod/team/app/manifests/{attestation}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let manifest: Value = response.json().await.unwrap();
    assert_eq!(manifest["subject"]["digest"], digest.as_str());
    // The newest layer of a predicate type is the prod promotion's (earlier stages' come first).
    let newest_layer = |predicate_type: &str| {
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l["annotations"]["predicateType"] == predicate_type)
            .unwrap_or_else(|| panic!("no {predicate_type} layer in {manifest:#}"))
            .clone()
    };
    let blob = |layer: Value| {
        let http = s.http.clone();
        let url = s.url(&format!(
            "/v2/prod/team/app/blobs/{}",
            layer["digest"].as_str().unwrap()
        ));
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
    };
    let envelope: Value =
        serde_json::from_slice(&blob(newest_layer(PROMOTION_ATTESTATION)).await).unwrap();
    use base64::Engine as _;
    let statement: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let predicate = &statement["predicate"];
    assert_eq!(statement["predicateType"], PROMOTION_ATTESTATION);
    assert_eq!(statement["subject"][0]["digest"]["sha256"], &digest[7..]);
    assert_eq!(predicate["promotion"], prod_id.as_str());
    assert_eq!(predicate["source"], "staging/team/app");
    assert_eq!(predicate["target"], "prod/team/app");
    assert_eq!(predicate["requester"], "rita");
    assert_eq!(predicate["approvals"][0]["principal"], "alice");
    let (_, policy) = get(&s.http, &s.url("/api/v1/policy")).await;
    assert_eq!(predicate["policy"]["digest"], policy["digest"]);

    // The SLSA VSA beside it passes an independent checker written from the SLSA and in-toto
    // specifications: airlock's signature, the statement, every field, the policy bundle's
    // digest, and level 2 from CI's verified provenance. Staging's VSA travelled along.
    let vsa_file = bed.path("vsa.dsse.json");
    std::fs::write(&vsa_file, blob(newest_layer(SLSA_VSA)).await).unwrap();
    let checked = py_vsa(&[
        "check",
        "--envelope",
        &vsa_file.display().to_string(),
        "--public-key",
        &pub_file.display().to_string(),
        "--subject-digest",
        &digest,
        "--resource-uri-suffix",
        &format!("prod/team/app@{digest}"),
        "--policy-digest",
        policy["digest"].as_str().unwrap(),
        "--expect-level",
        "SLSA_BUILD_LEVEL_2",
        "--expect-result",
        "PASSED",
    ]);
    assert_eq!(checked["ok"], true, "{checked:#}");
    assert_eq!(checked["warnings"], json!([]), "{checked:#}");
    let mut args = vec!["verify-attestation".to_string()];
    args.extend(bed.registry_args("admin", ADMIN_PASSWORD, "prod/team/app", &digest));
    args.extend([
        "--pub".into(),
        pub_file.display().to_string(),
        "--type".into(),
        SLSA_VSA.into(),
    ]);
    assert_eq!(
        py_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())["verified"],
        2,
        "staging's and prod's VSAs"
    );

    // Status shows the digest in every stage, and who promoted it where.
    let (status, body) = get(&s.http, &s.url("/api/v1/status/team/app")).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["repository"], "team/app");
    let stage = |name: &str| {
        body["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["stage"] == name)
            .unwrap_or_else(|| panic!("no stage {name} in {body:#}"))
            .clone()
    };
    let artifact = |name: &str| {
        stage(name)["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["digest"] == digest.as_str())
            .unwrap_or_else(|| panic!("{digest} not in {name}: {body:#}"))
            .clone()
    };
    assert_eq!(artifact("dev")["promotion"], Value::Null);
    assert_eq!(artifact("staging")["promotion"], staging_id.as_str());
    assert_eq!(artifact("staging")["promoted_by"], "rita");
    assert_eq!(artifact("prod")["promotion"], prod_id.as_str());
    assert_eq!(artifact("prod")["promoted_by"], "rita");
    let mut prod_tags: Vec<String> = artifact("prod")["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    prod_tags.sort();
    assert_eq!(prod_tags, ["1.4.2", "stable"]);
    assert_eq!(stage("prod")["frozen"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// 2. Separation of duties

#[tokio::test]
async fn separation_of_duties_decides_who_may_approve() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "2")]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    // Everyone below except stan holds the approver role on prod: only their part in this
    // promotion keeps them from approving it.
    let paula = bed
        .user("paula", &[("developer", "dev"), ("approver", "prod")])
        .await;
    let bob = bed
        .user("bob", &[("builder", "dev"), ("approver", "prod")])
        .await;
    let rita = bed
        .user(
            "rita",
            &[
                ("promoter", "staging"),
                ("promoter", "prod"),
                ("approver", "prod"),
            ],
        )
        .await;
    let stan = bed.user("stan", &[("approver", "staging")]).await;
    let alice = bed.user("alice", &[("approver", "prod")]).await;
    let carol = bed.user("carol", &[("approver", "prod")]).await;

    // paula pushes, bob signs and attests, rita requests.
    let digest = push_image_as(s, &paula, "dev/team/app", "1.0", b"separation of duties").await;
    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.make_prod_ready("bob", "dev/team/app", &digest, &key, true);
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 2);

    let (status, body) = bed.approve(&rita, &id).await;
    expect_refused(
        status,
        &body,
        "rita requested this promotion and cannot approve it (separation of duties)",
    );
    let (status, body) = bed.approve(&paula, &id).await;
    expect_refused(
        status,
        &body,
        "paula pushed this artifact and cannot approve its promotion (separation of duties)",
    );
    let (status, body) = bed.approve(&bob, &id).await;
    expect_refused(
        status,
        &body,
        "bob built this artifact (pushed its signatures or attestations) and cannot approve its promotion (separation of duties)",
    );
    let (status, body) = bed.approve(&stan, &id).await;
    expect_refused(
        status,
        &body,
        "stan does not hold the approver role on prod/team/app; only it counts for this gate",
    );
    let shown = bed.promotion(&id).await;
    assert_eq!(shown["state"], "pending_approval");
    assert_eq!(
        shown["approvals"],
        json!([]),
        "refused approvals are not recorded"
    );

    // One eligible approver counts once.
    let (status, body) = bed.approve(&alice, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "pending_approval", "{body:#}");
    let (status, body) = bed.approve(&alice, &id).await;
    expect_refused(
        status,
        &body,
        "alice already approved this promotion; approvals must come from distinct people",
    );
    let shown = bed.promotion(&id).await;
    assert_eq!(shown["state"], "pending_approval");
    assert_eq!(shown["approvals"].as_array().unwrap().len(), 1, "{shown:#}");
    assert_eq!(resolve(s, "prod/team/app", &digest).await, None);

    // The second distinct approver completes it.
    let (status, body) = bed.approve(&carol, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    let approvers: Vec<&str> = body["promotion"]["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["principal"].as_str().unwrap())
        .collect();
    assert_eq!(approvers.len(), 2);
    assert!(
        approvers.contains(&"alice") && approvers.contains(&"carol"),
        "{approvers:?}"
    );
    assert_eq!(
        resolve(s, "prod/team/app", "stable").await.as_deref(),
        Some(digest.as_str())
    );

    // Nothing is left to approve.
    let dave = bed.user("dave", &[("approver", "prod")]).await;
    let (status, body) = bed.approve(&dave, &id).await;
    expect_not_pending(status, &body, &id, "promoted");
    let approved = s
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "promotion.approved")
        .count();
    assert_eq!(approved, 2);
}

// ---------------------------------------------------------------------------------------------
// 3. Races

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_yield_exactly_one_promotion() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"race").await;
    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.sign("ci", "dev/team/app", &digest, &key);
    // Warm the password cache so the requests race in the promotion service, not in argon2.
    assert_eq!(get(&rita, &s.url("/api/v1/promotions")).await.0, 200);

    let url = s.url("/api/v1/promotions");
    let requests = (0..50).map(|_| {
        let client = rita.clone();
        let url = url.clone();
        let digest = digest.clone();
        tokio::spawn(async move {
            post(
                &client,
                &url,
                json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
            )
            .await
        })
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let created: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created.len(), 1, "{results:#?}");
    let id = expect_promotion(201, created[0], "promoted", 0);
    for (status, body) in results.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{body:#}");
        assert_eq!(body["error"]["code"], "CONFLICT", "{body:#}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&id), "{message} does not name {id}");
    }
    let promotions = bed.promotions().await;
    assert_eq!(promotions.len(), 1, "{promotions:#?}");
    assert_eq!(promotions[0]["id"], id.as_str());
    assert_eq!(promotions[0]["state"], "promoted");
    let promoted = s
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "promotion.promoted")
        .count();
    assert_eq!(promoted, 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Fail closed

/// Starts a server with a bundle holding `gate` as the staging gate (and `env`), requests a
/// promotion of an unsigned image to staging and checks it is denied by `airlock.policy_error`
/// alone, with a message containing `expected`.
async fn assert_fails_closed(gate: &str, env: &[(&str, &str)], expected: &str) {
    let temp = tempfile::tempdir().unwrap();
    let bundle = write_bundle(
        &temp.path().join("bundle"),
        &[("staging.rego", gate.to_string())],
    );
    let bundle = bundle.to_str().unwrap().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("AIRLOCK_POLICY__BUNDLE", &bundle));
    let bed = Bed::start(&env);
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let (_, digest) = bed
        .s
        .push_image("dev/team/app", "1.0", &[b"fail closed"])
        .await;

    let started = Instant::now();
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    let took = started.elapsed();
    expect_denied(status, &body, &["airlock.policy_error"]);
    let violation = &body["decision"]["deny"][0];
    let msg = violation["msg"].as_str().unwrap();
    assert!(msg.contains(expected), "{msg:?} does not say {expected:?}");
    assert_eq!(body["decision"]["error"], msg, "{body:#}");
    assert_eq!(violation["docs"], "docs/policy.md#fail-closed");
    assert!(
        violation["remediation"]
            .as_str()
            .unwrap()
            .contains("airlock policy test"),
        "{violation}"
    );
    assert!(took < Duration::from_secs(10), "the denial took {took:?}");
    assert_eq!(resolve(&bed.s, "staging/team/app", &digest).await, None);
    // The decision record keeps the failure.
    let decision_id = body["decision_id"].as_str().unwrap();
    let (status, record) = get(
        &bed.s.http,
        &bed.s.url(&format!("/api/v1/decisions/{decision_id}")),
    )
    .await;
    assert_eq!(status, 200, "{record:#}");
    assert_eq!(record["allowed"], false);
    assert_eq!(record["result"]["error"], msg);
}

#[tokio::test]
async fn gate_evaluation_errors_deny_with_policy_error() {
    // A type error: regorus refuses `number + string` (strict built-in errors).
    assert_fails_closed(
        "package airlock.gates.staging\n\n\
         deny contains {\"rule\": \"x.size\", \"msg\": sprintf(\"%v\", [x]), \"remediation\": \"r\"} if {\n\
         \tx := input.artifact.size + \"a\"\n}\n",
        &[],
        "`add` expects numeric argument. Got `\"a\"` instead",
    )
    .await;
    // Division by zero.
    assert_fails_closed(
        "package airlock.gates.staging\n\n\
         deny contains {\"rule\": \"x.size\", \"msg\": \"m\", \"remediation\": \"r\"} if {\n\
         \tinput.artifact.size / 0 > 1\n}\n",
        &[],
        "divide by zero",
    )
    .await;
}

#[tokio::test]
async fn gate_past_the_time_limit_denies_with_policy_error() {
    // A billion-step comprehension; the cooperative timer stops it after 200 ms.
    assert_fails_closed(
        "package airlock.gates.staging\n\n\
         deny contains {\"rule\": \"slow.loop\", \"msg\": sprintf(\"%d\", [n]), \"remediation\": \"r\"} if {\n\
         \tr := numbers.range(1, 1000)\n\
         \tn := count([1 | some a in r; some b in r; some c in r; a + b + c == -1])\n\
         \tn >= 0\n}\n",
        &[("AIRLOCK_POLICY__TIMEOUT_MS", "200")],
        "evaluating data.airlock.gates.staging took longer than the 200 ms allowed",
    )
    .await;
}

#[tokio::test]
async fn gate_with_an_unknown_output_field_denies_with_policy_error() {
    assert_fails_closed(
        "package airlock.gates.staging\n\n\
         denies contains {\"rule\": \"x.y\", \"msg\": \"m\", \"remediation\": \"r\"} if true\n",
        &[],
        "unknown field \"denies\" in the result of data.airlock.gates.staging",
    )
    .await;
}

/// Runs `airlock serve` with `bundle`; returns (exit code, stderr), failing if it starts.
fn serve_with_bundle(bundle: &Path) -> (i32, String) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .env("AIRLOCK_LOG__LEVEL", "warn")
        .env("AIRLOCK_INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("AIRLOCK_POLICY__BUNDLE", bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start airlock serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stdout = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            panic!(
                "airlock serve started with bundle {}: {stdout}",
                bundle.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn server_refuses_to_start_with_an_empty_or_failing_bundle() {
    let temp = tempfile::tempdir().unwrap();
    let empty = temp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("README.md"), "no policy here\n").unwrap();
    let (code, stderr) = serve_with_bundle(&empty);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "airlock: cannot set up promotions: policy bundle {}: the policy bundle has no .rego files",
            empty.display()
        )),
        "{stderr}"
    );

    let failing = write_bundle(
        &temp.path().join("failing"),
        &[
            ("staging.rego", permissive_gate("staging")),
            ("lib.rego", std::fs::read_to_string("policies/lib.rego").unwrap()),
            (
                "staging_test.rego",
                "package airlock.gates.staging_test\n\n\
                 import data.airlock.gates.staging\n\n\
                 test_unsigned_artifacts_are_denied if {\n\
                 \tcount(staging.deny) == 1 with input as {\"version\": 1, \"target\": {\"frozen\": false}}\n}\n"
                    .to_string(),
            ),
        ],
    );
    let (code, stderr) = serve_with_bundle(&failing);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "airlock: cannot set up promotions: the policy bundle's tests fail, so it is refused: \
             data.airlock.gates.staging_test.test_unsigned_artifacts_are_denied: undefined"
        ),
        "{stderr}"
    );

    // The same verdicts from `airlock policy test`.
    let (code, out, err) = common::airlock_cli(&["policy", "test", failing.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "FAIL data.airlock.gates.staging_test.test_unsigned_artifacts_are_denied: undefined"
        ),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
    let (code, out, err) = common::airlock_cli(&["policy", "test", "policies"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("FAIL "), "{out}");
    assert!(out.contains(" passed, 0 failed (bundle sha256:"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// 5. Rollback

#[tokio::test]
async fn rollback_moves_the_channel_back_unless_the_evidence_was_revoked() {
    if !python_ready() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let bed = Bed::start(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("promoter", "prod")])
        .await;
    let frida = bed.user("frida", &[("approver", "prod")]).await;

    // Two releases, each signed by its own key.
    let first = push_image_as(s, &ci, "dev/team/app", "1.0", b"release one").await;
    let second = push_image_as(s, &ci, "dev/team/app", "2.0", b"release two").await;
    let key_a = bed.keygen("key-a");
    let key_b = bed.keygen("key-b");
    bed.add_key(&keyadmin, "key-a", &key_a, &["sign".into()])
        .await;
    bed.add_key(&keyadmin, "key-b", &key_b, &["sign".into()])
        .await;
    bed.sign("ci", "dev/team/app", &first, &key_a);
    bed.sign("ci", "dev/team/app", &second, &key_b);

    for digest in [&first, &second] {
        let (status, body) = bed
            .promote(&rita, "dev/team/app", digest, "staging", json!({}))
            .await;
        expect_promotion(status, &body, "promoted", 0);
        let (status, body) = bed
            .promote(&rita, "staging/team/app", digest, "prod", json!({}))
            .await;
        expect_promotion(status, &body, "promoted", 0);
        assert_eq!(body["promotion"]["channel"], "stable");
        assert_eq!(
            resolve(s, "prod/team/app", "stable").await.as_ref(),
            Some(digest)
        );
    }

    // Roll back, during a freeze (rolling back is how a bad release is undone during one):
    // stable names the first release again; release tags do not move.
    let (status, body) = post(
        &frida,
        &s.url("/api/v1/stages/prod/freeze"),
        json!({"reason": "incident INC-7"}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    let (code, out, err) = bed.cli(
        "rita",
        &[
            "rollback",
            "prod/team/app",
            "--channel",
            "stable",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["from"], second.as_str());
    assert_eq!(body["to"], first.as_str());
    assert_eq!(body["decision"]["allowed"], true);
    assert_eq!(
        resolve(s, "prod/team/app", "stable").await.as_ref(),
        Some(&first)
    );
    assert_eq!(
        resolve(s, "prod/team/app", "1.0").await.as_ref(),
        Some(&first)
    );
    assert_eq!(
        resolve(s, "prod/team/app", "2.0").await.as_ref(),
        Some(&second)
    );

    // Forward again to the second release, explicitly.
    let (code, out, err) = bed.cli(
        "rita",
        &[
            "rollback",
            "prod/team/app",
            "--channel",
            "stable",
            "--to",
            &second,
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        resolve(s, "prod/team/app", "stable").await.as_ref(),
        Some(&second)
    );

    // The first release's key is compromised: rolling back to it is refused.
    let (status, body) = post(
        &keyadmin,
        &s.url("/api/v1/keys/key-a/revoke"),
        json!({"reason": "laptop stolen", "compromised": true}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    let (code, out, err) = bed.cli(
        "rita",
        &[
            "rollback",
            "prod/team/app",
            "--channel",
            "stable",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["to"], first.as_str());
    assert_eq!(body["decision"]["allowed"], false);
    assert_eq!(
        rules(&body["decision"]["deny"]),
        ["common.evidence_revoked", "rollback.signature_required"],
        "{body:#}"
    );
    assert_eq!(body["error"]["code"], "POLICY_DENIED");
    assert_eq!(
        resolve(s, "prod/team/app", "stable").await.as_ref(),
        Some(&second)
    );

    let entries = s.audit_entries().await;
    let rolled_back = entries
        .iter()
        .filter(|e| e["type"] == "channel.rolled_back")
        .count();
    assert_eq!(rolled_back, 2, "a refused rollback is not a rollback");
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "channel.rollback_denied")
        .collect();
    assert_eq!(refused.len(), 1, "the refusal is recorded");
    assert_eq!(refused[0]["outcome"], "denied");
    assert_eq!(refused[0]["details"]["to"], first.as_str());
}

// ---------------------------------------------------------------------------------------------
// 6. Decision replay

#[tokio::test]
async fn denied_and_allowed_decisions_replay_identically() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"replay").await;

    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_denied(status, &body, &["staging.signature_required"]);
    let denied = body["decision_id"].as_str().unwrap().to_string();

    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.sign("ci", "dev/team/app", &digest, &key);
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
    let allowed = body["decision_id"].as_str().unwrap().to_string();

    let (_, policy) = get(&s.http, &s.url("/api/v1/policy")).await;
    for (id, was_allowed) in [(&denied, false), (&allowed, true)] {
        let (status, record) = get(&s.http, &s.url(&format!("/api/v1/decisions/{id}"))).await;
        assert_eq!(status, 200, "{record:#}");
        assert_eq!(record["allowed"], was_allowed);
        assert_eq!(record["action"], "promote");
        assert_eq!(record["query"], "data.airlock.gates.staging");
        assert_eq!(record["policy"], policy["digest"]);
        assert_eq!(record["input"]["artifact"]["digest"], digest.as_str());

        let (status, replay) = post(
            &s.http,
            &s.url(&format!("/api/v1/decisions/{id}/replay")),
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{replay:#}");
        assert_eq!(replay["identical"], true, "{replay:#}");
        assert_eq!(replay["original"], replay["replayed"]);
        assert_eq!(replay["replayed"]["allowed"], was_allowed);
        assert_eq!(replay["policy"], policy["digest"]);

        let (code, out, err) = s.cli(&["decisions", "replay", id, "--output", "json"]);
        assert_eq!(code, 0, "{out}{err}");
        let replay: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(replay["identical"], true);
    }

    let (status, body) = post(
        &s.http,
        &s.url("/api/v1/decisions/dec_0000000000000000/replay"),
        json!({}),
    )
    .await;
    assert_eq!(status, 404, "{body:#}");
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

// ---------------------------------------------------------------------------------------------
// 7. Freeze and break-glass

#[tokio::test]
async fn freeze_denies_promotions_and_break_glass_needs_two_approvals() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("promoter", "prod")])
        .await;
    let frida = bed.user("frida", &[("approver", "prod")]).await;
    let alice = bed.user("alice", &[("approver", "prod")]).await;
    let carol = bed.user("carol", &[("approver", "prod")]).await;
    let bea = bed.user("bea", &[("break-glass", "prod")]).await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"freeze").await;
    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.make_prod_ready("ci", "dev/team/app", &digest, &key, true);
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);

    // Only an approver (or access-admin) freezes.
    let reason = "release freeze for the quarterly audit";
    let (status, body) = post(
        &rita,
        &s.url("/api/v1/stages/prod/freeze"),
        json!({"reason": reason}),
    )
    .await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, body) = post(
        &frida,
        &s.url("/api/v1/stages/prod/freeze"),
        json!({"reason": reason}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["frozen"], true);

    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    expect_denied(status, &body, &["common.stage_frozen"]);
    assert_eq!(
        body["decision"]["deny"][0]["msg"],
        format!("stage prod is frozen: {reason}")
    );
    let (_, status_body) = get(&s.http, &s.url("/api/v1/status/team/app")).await;
    let prod = status_body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["stage"] == "prod")
        .unwrap()
        .clone();
    assert_eq!(prod["frozen"], reason);

    // Unfreezing restores the normal path.
    let (status, body) = post(&frida, &s.url("/api/v1/stages/prod/unfreeze"), json!({})).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["changed"], true);
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    let normal = expect_promotion(status, &body, "pending_approval", 1);
    let (status, body) = post(
        &rita,
        &s.url(&format!("/api/v1/promotions/{normal}/cancel")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["state"], "cancelled");

    // Frozen again: break-glass needs the role and a reason ...
    let (status, body) = post(
        &frida,
        &s.url("/api/v1/stages/prod/freeze"),
        json!({"reason": reason}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    let hotfix = "hotfix for the payment outage INC-4711";
    let (status, body) = bed
        .promote(
            &rita,
            "staging/team/app",
            &digest,
            "prod",
            json!({"break_glass": hotfix}),
        )
        .await;
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, body) = bed
        .promote(
            &bea,
            "staging/team/app",
            &digest,
            "prod",
            json!({"break_glass": "  "}),
        )
        .await;
    assert_eq!(status, 400, "{body:#}");

    // ... passes the freeze with a warning, and needs two approvals.
    let (status, body) = bed
        .promote(
            &bea,
            "staging/team/app",
            &digest,
            "prod",
            json!({"break_glass": hotfix}),
        )
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 2);
    assert_eq!(body["promotion"]["break_glass"], hotfix);
    assert_eq!(
        rules(&body["decision"]["warn"]),
        ["common.break_glass", "prod.rebuild_agreement"]
    );
    let (status, body) = bed.approve(&alice, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "pending_approval");
    let (status, body) = bed.approve(&carol, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    assert_eq!(
        resolve(s, "prod/team/app", "stable").await.as_deref(),
        Some(digest.as_str())
    );

    // The promotion raised an alert in the audit log; the staging one did not.
    let entries = s.audit_entries().await;
    let promoted: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "promotion.promoted")
        .collect();
    assert_eq!(promoted.len(), 2, "{promoted:#?}");
    let alerts: Vec<&&Value> = promoted
        .iter()
        .filter(|e| e["details"]["alert"] == true)
        .collect();
    assert_eq!(alerts.len(), 1, "{promoted:#?}");
    assert_eq!(alerts[0]["details"]["break_glass"], hotfix);
    assert_eq!(alerts[0]["actor"]["principal"], "carol", "{:#}", alerts[0]);
    assert!(
        alerts[0].to_string().contains(&id),
        "the alert names the promotion: {:#}",
        alerts[0]
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Dry runs

#[tokio::test]
async fn dry_run_prints_the_decision_and_changes_nothing() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    bed.user("rita", &[("promoter", "staging")]).await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"dry run").await;
    let reference = format!("{}/dev/team/app:1.0", s.host);
    let entries_before = s.audit_entries().await.len();

    let (code, out, err) = bed.cli(
        "rita",
        &[
            "promote",
            &reference,
            "--to",
            "staging",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["decision"]["allowed"], false);
    assert_eq!(
        rules(&body["decision"]["deny"]),
        ["staging.signature_required"]
    );
    assert_eq!(body["promotion"], Value::Null);
    assert_eq!(body["decision_id"], Value::Null);

    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.sign("ci", "dev/team/app", &digest, &key);
    let entries_signed = s.audit_entries().await.len();
    assert!(entries_signed > entries_before);

    let (code, out, err) = bed.cli(
        "rita",
        &[
            "promote",
            &reference,
            "--to",
            "staging",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["decision"]["allowed"], true);
    assert_eq!(body["decision"]["deny"], json!([]));
    assert_eq!(body["approvals_required"], 0);
    assert_eq!(body["promotion"], Value::Null);

    // Nothing happened: no promotion, no audit entry, no tag in staging. (The audit log is read
    // before the probe by digest: asking a gated stage for an unpromoted digest is itself an
    // anomaly airlock records.)
    assert_eq!(bed.promotions().await, Vec::<Value>::new());
    let entries = s.audit_entries().await;
    assert_eq!(resolve(s, "staging/team/app", "1.0").await, None);
    assert_eq!(resolve(s, "staging/team/app", &digest).await, None);
    assert_eq!(
        entries.len(),
        entries_signed,
        "{:#?}",
        &entries[entries_signed.min(entries.len())..]
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["type"].as_str().unwrap().starts_with("promotion."))
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Approval expiry

/// A bed with the permissive bundle, a one-second approval TTL and one approval for staging,
/// a promoter `rita`, an approver `alice`, and a pending promotion of `dev/team/app:1.0`.
/// Returns the bed, alice, rita, the digest and the promotion id.
async fn pending_with_one_second_ttl(
    temp: &Path,
) -> (Bed, reqwest::Client, reqwest::Client, String, String) {
    let bundle = permissive_bundle(&temp.join("bundle"));
    let bed = Bed::start(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_POLICY__APPROVAL_TTL_SECS", "1"),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
    ]);
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let alice = bed.user("alice", &[("approver", "staging")]).await;
    let (_, digest) = bed.s.push_image("dev/team/app", "1.0", &[b"expiry"]).await;
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (bed, alice, rita, digest, id)
}

#[tokio::test]
async fn promotions_expire_when_their_approvals_do_not_arrive_in_time() {
    let temp = tempfile::tempdir().unwrap();
    let (bed, alice, rita, digest, id) = pending_with_one_second_ttl(temp.path()).await;
    let s = &bed.s;

    let shown = bed.promotion(&id).await;
    assert_eq!(shown["state"], "expired", "{shown:#}");
    let (status, body) = bed.approve(&alice, &id).await;
    expect_not_pending(status, &body, &id, "expired");
    assert_eq!(resolve(s, "staging/team/app", &digest).await, None);

    // An expired promotion no longer blocks a new request.
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    let again = expect_promotion(status, &body, "pending_approval", 1);
    assert_ne!(again, id);
    let expired = s
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "promotion.expired")
        .count();
    assert_eq!(expired, 1);
}

#[tokio::test]
async fn a_request_after_the_approval_ttl_is_not_blocked_by_the_overdue_promotion() {
    let temp = tempfile::tempdir().unwrap();
    let (bed, _alice, rita, digest, id) = pending_with_one_second_ttl(temp.path()).await;

    // Nobody looked at the overdue promotion since it expired.
    let listed = bed.promotions().await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "expired", "{listed:#?}");
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "pending_approval", 1);
}

#[tokio::test]
async fn approving_an_overdue_promotion_is_refused_as_not_pending() {
    let temp = tempfile::tempdir().unwrap();
    let (bed, alice, rita, _digest, id) = pending_with_one_second_ttl(temp.path()).await;

    // Nobody looked at the overdue promotion since it expired. The requester too learns that
    // it expired, not that she may not approve her own request.
    let (status, body) = bed.approve(&rita, &id).await;
    expect_not_pending(status, &body, &id, "expired");
    let (status, body) = bed.approve(&alice, &id).await;
    expect_not_pending(status, &body, &id, "expired");
}

// ---------------------------------------------------------------------------------------------
// 10. Known gaps

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_final_approvals_promote_once_and_record_only_what_they_answer() {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let bed = Bed::start(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "2"),
    ]);
    let s = &bed.s;
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let mut approvers = Vec::new();
    for n in 0..6 {
        let approver = bed
            .user(&format!("approver{n}"), &[("approver", "staging")])
            .await;
        // Warm the password cache so the approvals race in the promotion service.
        assert_eq!(get(&approver, &s.url("/api/v1/promotions")).await.0, 200);
        approvers.push(approver);
    }
    // A builder pushes: admin made the approvers, so its push would make them stand-ins.
    let ci = bed.user("ci", &[("developer", "dev")]).await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"approvals").await;
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 2);
    let blobs_before = blob_files(&s.data_dir);

    let url = s.url(&format!("/api/v1/promotions/{id}/approve"));
    let tasks = approvers.iter().map(|approver| {
        let approver = approver.clone();
        let url = url.clone();
        tokio::spawn(async move { post(&approver, &url, json!({})).await })
    });
    let results: Vec<(u16, Value)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let accepted = results.iter().filter(|(status, _)| *status == 201).count();
    for (status, body) in results.iter().filter(|(status, _)| *status != 201) {
        // The approval that completed the set claimed the promotion (`evaluating`) until it was
        // promoted: later ones see either state.
        let state = if body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(" is evaluating,"))
        {
            "evaluating"
        } else {
            "promoted"
        };
        expect_not_pending(*status, body, &id, state);
    }
    let shown = bed.promotion(&id).await;
    assert_eq!(shown["state"], "promoted");
    assert_eq!(
        shown["approvals"].as_array().unwrap().len(),
        accepted,
        "only answered approvals are recorded: {shown:#}"
    );
    let entries = s.audit_entries().await;
    let count = |kind: &str| entries.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("promotion.approved"), accepted);
    assert_eq!(count("promotion.allowed"), 1, "one final decision");
    assert_eq!(count("promotion.promoted"), 1);
    assert_eq!(
        blob_files(&s.data_dir),
        blobs_before + 3,
        "one attestation's blobs (two envelopes and a config)"
    );
}

#[tokio::test]
async fn evidence_the_prod_gate_counted_is_next_to_the_artifact_in_prod() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("promoter", "prod")])
        .await;
    let alice = bed.user("alice", &[("approver", "prod")]).await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"late evidence").await;
    let key = bed.keygen("ci");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.make_prod_ready("ci", "dev/team/app", &digest, &key, false);
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
    // The test result arrives (in dev, where CI pushes) after the staging promotion.
    bed.attest(
        "ci",
        "dev/team/app",
        &digest,
        &key,
        TEST_RESULT,
        &passing_tests(),
    );
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 1);
    let (status, body) = bed.approve(&alice, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");

    let mut args = vec!["verify-attestation".to_string()];
    args.extend(bed.registry_args("admin", ADMIN_PASSWORD, "prod/team/app", &digest));
    args.extend([
        "--pub".into(),
        key.join("key.pub").display().to_string(),
        "--type".into(),
        TEST_RESULT.into(),
    ]);
    let (code, out, err) = py(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "the test result is not in prod: {out} {err}");
    assert_eq!(out["verified"], 1);
}

// ---------------------------------------------------------------------------------------------
// Review findings: what a promotion may carry, and tags taken while a promotion waited

/// A developer attaches an arbitrary image to an artifact (a manifest whose `subject` is the
/// artifact). Promotion carries signatures and attestations, never that image: it passed no gate.
#[tokio::test]
async fn promotion_carries_evidence_but_not_arbitrary_referrers() {
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(bundle_dir.path());
    let bed = Bed::start(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let promoter = bed.user("rita", &[("promoter", "*")]).await;
    let digest = push_image_as(&bed.s, &bed.s.http, "dev/team/app", "1.0", b"app").await;
    // The attached image: a real image manifest with the artifact as its subject.
    let smuggled_layer = bed.s.push_blob("dev/team/app", b"not reviewed").await;
    let config = bed.s.push_blob("dev/team/app", br#"{"os":"linux"}"#).await;
    let (_, artifact) = get(
        &bed.s.http,
        &bed.s.url(&format!("/v2/dev/team/app/manifests/{digest}")),
    )
    .await;
    assert!(artifact.is_object());
    let smuggled = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 14},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": smuggled_layer, "size": 12}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": serde_json::to_vec(&artifact).unwrap().len()},
    }))
    .unwrap();
    let smuggled_digest = sha256(&smuggled);
    let response = bed
        .s
        .put_manifest("dev/team/app", &smuggled_digest, OCI_MANIFEST, &smuggled)
        .await;
    assert_eq!(response.status(), 201);

    let (status, body) = bed
        .promote(&promoter, "dev/team/app", "1.0", "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
    assert_eq!(
        resolve(&bed.s, "staging/team/app", &digest).await,
        Some(digest.clone())
    );
    assert_eq!(
        resolve(&bed.s, "staging/team/app", &smuggled_digest).await,
        None
    );
    let response = bed
        .s
        .http
        .get(
            bed.s
                .url(&format!("/v2/staging/team/app/blobs/{smuggled_layer}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "the attached image's layer stays in dev"
    );
}

/// Two promotions of different digests asking for the same tag wait for approval; the first to be
/// approved takes the tag, and the second is refused at promotion time (the tag is immutable).
#[tokio::test]
async fn a_tag_taken_while_a_promotion_waited_is_not_moved() {
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(bundle_dir.path());
    let bed = Bed::start(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
    ]);
    let promoter = bed.user("rita", &[("promoter", "*")]).await;
    let approver = bed.user("ann", &[("approver", "*")]).await;
    let first = push_image_as(&bed.s, &bed.s.http, "dev/team/app", "a", b"first").await;
    let second = push_image_as(&bed.s, &bed.s.http, "dev/team/app", "b", b"second").await;
    let mut ids = Vec::new();
    for digest in [&first, &second] {
        let (status, body) = bed
            .promote(
                &promoter,
                "dev/team/app",
                digest,
                "staging",
                json!({"tags": ["1.0"]}),
            )
            .await;
        ids.push(expect_promotion(status, &body, "pending_approval", 1));
    }
    let (status, body) = bed.approve(&approver, &ids[1]).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    let (status, body) = bed.approve(&approver, &ids[0]).await;
    assert_eq!(status, 409, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("immutable"),
        "{body:#}"
    );
    assert_eq!(
        resolve(&bed.s, "staging/team/app", "1.0").await,
        Some(second)
    );
}

/// Rights are checked again when the last approval arrives: an approval whose approver lost the
/// role no longer counts, and a requester who lost the promoter role ends their promotion.
#[tokio::test]
async fn rights_are_checked_again_at_the_final_decision() {
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(bundle_dir.path());
    let bed = Bed::start(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "2"),
    ]);
    let promoter = bed.user("rita", &[("promoter", "*")]).await;
    let ann = bed.user("ann", &[("approver", "*")]).await;
    let bob = bed.user("bob", &[("approver", "*")]).await;
    let carl = bed.user("carl", &[("approver", "*")]).await;
    // A builder pushes: admin made the approvers, so its push would make them stand-ins.
    let ci = bed.user("ci", &[("developer", "dev")]).await;
    let revoke = |principal: &'static str, role: &'static str| {
        let s = &bed.s;
        async move {
            let (status, body) = post(
                &s.http,
                &s.url("/api/v1/roles/revoke"),
                json!({"principal": principal, "role": role, "scope": "*"}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    };

    // Ann approves, then loses the approver role: Bob's approval alone does not complete the set.
    let first = push_image_as(&bed.s, &ci, "dev/team/app", "a", b"first").await;
    let (status, body) = bed
        .promote(&promoter, "dev/team/app", &first, "staging", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 2);
    let (status, body) = bed.approve(&ann, &id).await;
    assert_eq!(status, 201, "{body:#}");
    revoke("ann", "approver").await;
    let (status, body) = bed.approve(&bob, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "pending_approval", "{body:#}");
    let (status, body) = bed.approve(&carl, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");

    // Rita requests, then loses the promoter role: the final approval ends her promotion.
    let second = push_image_as(&bed.s, &ci, "dev/team/app", "b", b"second").await;
    let (status, body) = bed
        .promote(&promoter, "dev/team/app", &second, "staging", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 2);
    let (status, _) = bed.approve(&bob, &id).await;
    assert_eq!(status, 201);
    revoke("rita", "promoter").await;
    let (status, body) = bed.approve(&carl, &id).await;
    assert_eq!(status, 403, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may no longer promote"),
        "{body:#}"
    );
    assert_eq!(bed.promotion(&id).await["state"], "cancelled");
    assert_eq!(resolve(&bed.s, "staging/team/app", &second).await, None);
}

/// A freeze holds even under a gate that forgets it: airlock applies it after the policy, and
/// replaying the decision reproduces it.
#[tokio::test]
async fn a_freeze_holds_even_when_the_gate_ignores_it() {
    let bundle_dir = tempfile::tempdir().unwrap();
    let read = |name: &str| std::fs::read_to_string(Path::new("policies").join(name)).unwrap();
    let bundle = write_bundle(
        bundle_dir.path(),
        &[
            ("lib.rego", read("lib.rego")),
            ("rollback.rego", read("rollback.rego")),
            ("data.json", read("data.json")),
            (
                "staging.rego",
                "package airlock.gates.staging\n\napprovals := 0\n".to_string(),
            ),
            (
                "prod.rego",
                "package airlock.gates.prod\n\napprovals := 0\n".to_string(),
            ),
        ],
    );
    let bed = Bed::start(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let promoter = bed.user("rita", &[("promoter", "*")]).await;
    let approver = bed.user("ann", &[("approver", "*")]).await;
    let digest = push_image_as(&bed.s, &bed.s.http, "dev/team/app", "1.0", b"app").await;
    let (status, body) = post(
        &approver,
        &bed.s.url("/api/v1/stages/staging/freeze"),
        json!({"reason": "inventory"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bed
        .promote(&promoter, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_denied(status, &body, &["airlock.stage_frozen"]);
    assert!(
        body["decision"]["deny"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("inventory"),
        "{body:#}"
    );
    let decision = body["decision_id"].as_str().unwrap().to_string();
    let (status, replay) = post(
        &bed.s.http,
        &bed.s.url(&format!("/api/v1/decisions/{decision}/replay")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["identical"], true, "{replay:#}");
    let (status, _) = post(
        &approver,
        &bed.s.url("/api/v1/stages/staging/unfreeze"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = bed
        .promote(&promoter, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
}

// ---------------------------------------------------------------------------------------------
// A final decision that cannot be made

#[tokio::test]
async fn a_claimed_promotion_whose_final_decision_fails_is_reopened_and_recorded() {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let bed = Bed::start(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
    ]);
    let rita = bed.user("rita", &[("promoter", "staging")]).await;
    let alice = bed.user("alice", &[("approver", "staging")]).await;
    let (_, digest) = bed.s.push_image("dev/team/app", "1.0", &[b"reopen"]).await;
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 1);
    // The artifact disappears from dev before the last approval: the final decision cannot
    // build its input.
    let response = bed
        .s
        .http
        .delete(bed.s.url(&format!("/v2/dev/team/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (status, body) = bed.approve(&alice, &id).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(bed.promotion(&id).await["state"], "pending_approval");
    bed.s.wait_for_checkpoint().await;
    let reopened: Vec<Value> = bed
        .s
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "promotion.reopened")
        .collect();
    assert_eq!(reopened.len(), 1, "{reopened:#?}");
    assert_eq!(reopened[0]["subject"]["id"], id.as_str());
    let reason = reopened[0]["details"]["reason"].as_str().unwrap();
    assert!(reason.contains("not in the registry"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// 12. Dependency health

/// A CycloneDX SBOM with a root, two direct dependencies and one transitive one.
fn cyclonedx_with(components: &[(&str, &str, &str)]) -> Value {
    let listed: Vec<Value> = components
        .iter()
        .map(|(name, version, purl)| {
            json!({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl,
                   "licenses": [{"expression": "MIT"}]})
        })
        .collect();
    let refs: Vec<&str> = components.iter().map(|(_, _, purl)| *purl).collect();
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "container", "name": "team/app", "bom-ref": "root"}},
        "components": listed,
        "dependencies": [{"ref": "root", "dependsOn": refs}]
    })
}

/// Dependency health end to end, with evidence made by the independent implementation: a build
/// whose SBOM has a component past its end of life and one from an unknown registry, whose
/// provenance has an unpinned input and that has no Scorecard result is denied in prod with
/// each problem explained; the rebuilt artifact with those fixed is promoted.
#[tokio::test]
async fn dependency_health_denies_with_explanations_until_the_build_is_fixed() {
    if !python_ready() {
        return;
    }
    let bed = Bed::start(&[]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("promoter", "prod")])
        .await;
    let frida = bed.user("frida", &[("approver", "prod")]).await;
    let key = bed.keygen("ci-key");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;

    // The first build: node 16 (ended 2023-09-11) as the runtime, left-pad from a registry no
    // pattern allows, a build input named by branch only, and no Scorecard result.
    let first = push_image_as(s, &ci, "dev/team/app", "1.0", b"first build").await;
    let mut provenance = slsa_provenance();
    provenance["buildDefinition"]["resolvedDependencies"]
        .as_array_mut()
        .unwrap()
        .push(json!({"uri": "git+https://github.com/acme/build-scripts@refs/heads/main"}));
    let unhealthy = cyclonedx_with(&[
        ("node", "16.20.2", "pkg:generic/node@16.20.2"),
        (
            "left-pad",
            "1.3.0",
            "pkg:npm/left-pad@1.3.0?repository_url=https://npm.mirror.example",
        ),
        ("serde", "1.0.200", "pkg:cargo/serde@1.0.200"),
    ]);
    bed.sign("ci", "dev/team/app", &first, &key);
    bed.attest("ci", "dev/team/app", &first, &key, SLSA_V1, &provenance);
    bed.attest("ci", "dev/team/app", &first, &key, CYCLONEDX, &unhealthy);
    bed.attest(
        "ci",
        "dev/team/app",
        &first,
        &key,
        COSIGN_VULN,
        &trivy_vuln_report(),
    );
    bed.attest(
        "ci",
        "dev/team/app",
        &first,
        &key,
        TEST_RESULT,
        &passing_tests(),
    );
    assert_eq!(bed.verified_evidence("dev/team/app", &first).await, 5);

    let (status, body) = bed
        .promote(&rita, "dev/team/app", &first, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &first, "prod", json!({}))
        .await;
    expect_denied(
        status,
        &body,
        &["prod.dependency_sources", "prod.end_of_life"],
    );
    let violation = |list: &str, rule: &str| -> Value {
        body["decision"][list]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["rule"] == rule)
            .cloned()
            .unwrap_or_else(|| panic!("no {rule} in {list}: {body:#}"))
    };
    let sources = violation("deny", "prod.dependency_sources");
    let message = sources["msg"].as_str().unwrap();
    for expected in ["pkg:generic", "https://npm.mirror.example"] {
        assert!(message.contains(expected), "{message}");
    }
    assert!(!message.contains("pkg:cargo"), "{message}");
    assert!(
        sources["remediation"]
            .as_str()
            .unwrap()
            .contains("allowed_dependency_sources"),
        "{sources:#}"
    );
    assert_eq!(sources["docs"], "docs/policy.md#prod-dependency-sources");
    let end_of_life = violation("deny", "prod.end_of_life");
    let message = end_of_life["msg"].as_str().unwrap();
    for expected in ["pkg:generic/node", "16.20.2", "2023-09-11"] {
        assert!(message.contains(expected), "{message}");
    }
    // Outside the critical repositories (none by default) an unpinned input, a missing
    // Scorecard result and a build no second builder reproduced are warnings, each naming what
    // to do.
    assert_eq!(
        rules(&body["decision"]["warn"]),
        [
            "prod.rebuild_agreement",
            "prod.scorecard_minimum",
            "prod.unpinned_inputs"
        ],
        "{body:#}"
    );
    let rebuild = violation("warn", "prod.rebuild_agreement");
    assert!(
        rebuild["msg"]
            .as_str()
            .unwrap()
            .contains("by 1 independent builder(s)"),
        "{rebuild:#}"
    );
    let unpinned = violation("warn", "prod.unpinned_inputs");
    assert!(
        unpinned["msg"]
            .as_str()
            .unwrap()
            .contains("git+https://github.com/acme/build-scripts@refs/heads/main"),
        "{unpinned:#}"
    );
    let scorecard = violation("warn", "prod.scorecard_minimum");
    assert!(
        scorecard["remediation"]
            .as_str()
            .unwrap()
            .contains(SCORECARD),
        "{scorecard:#}"
    );

    // The fix: a rebuild on a supported runtime with dependencies from the default registries,
    // every input pinned, a Scorecard result for the source, and a second, independent builder
    // (its own builder id and key) that built the same commit into the same digest.
    let second = push_image_as(s, &ci, "dev/team/app", "1.1", b"second build").await;
    let rebuild_key = bed.keygen("rebuild-key");
    bed.add_key(
        &keyadmin,
        "rebuilder",
        &rebuild_key,
        &[format!("attest:{SLSA_V1}")],
    )
    .await;
    let mut rebuilt = slsa_provenance();
    rebuilt["runDetails"]["builder"]["id"] = json!("https://rebuild.example.com/builder");
    bed.attest(
        "ci",
        "dev/team/app",
        &second,
        &rebuild_key,
        SLSA_V1,
        &rebuilt,
    );
    let healthy = cyclonedx_with(&[
        ("left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0"),
        ("serde", "1.0.200", "pkg:cargo/serde@1.0.200"),
    ]);
    bed.sign("ci", "dev/team/app", &second, &key);
    bed.attest(
        "ci",
        "dev/team/app",
        &second,
        &key,
        SLSA_V1,
        &slsa_provenance(),
    );
    bed.attest("ci", "dev/team/app", &second, &key, CYCLONEDX, &healthy);
    bed.attest(
        "ci",
        "dev/team/app",
        &second,
        &key,
        COSIGN_VULN,
        &trivy_vuln_report(),
    );
    bed.attest(
        "ci",
        "dev/team/app",
        &second,
        &key,
        TEST_RESULT,
        &passing_tests(),
    );
    bed.attest(
        "ci",
        "dev/team/app",
        &second,
        &key,
        SCORECARD,
        &scorecard_result(9.1, 10),
    );
    assert_eq!(bed.verified_evidence("dev/team/app", &second).await, 7);

    let (status, body) = bed
        .promote(&rita, "dev/team/app", &second, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &second, "prod", json!({}))
        .await;
    let id = expect_promotion(status, &body, "pending_approval", 1);
    assert_eq!(
        rules(&body["decision"]["warn"]),
        Vec::<String>::new(),
        "{body:#}"
    );
    let prod_decision = body["decision_id"].as_str().unwrap().to_string();
    let (status, body) = bed.approve(&frida, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    assert_eq!(
        resolve(s, "prod/team/app", "1.1").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(resolve(s, "prod/team/app", "1.0").await, None);

    // The decision input the gate saw carries the derived dependency facts.
    let (status, record) = get(
        &s.http,
        &s.url(&format!("/api/v1/decisions/{prod_decision}")),
    )
    .await;
    assert_eq!(status, 200, "{record:#}");
    let evidence = &record["input"]["evidence"];
    assert_eq!(
        evidence["sboms"][0]["dependencies"]["direct"], 2,
        "{evidence:#}"
    );
    assert_eq!(
        evidence["sboms"][0]["dependencies"]["components"], 2,
        "{evidence:#}"
    );
    assert_eq!(
        evidence["scorecards"][0]["repository"],
        "github.com/acme/app"
    );
    assert_eq!(evidence["scorecards"][0]["checks"]["Maintained"], 10);
    // ... and the rebuild agreement: two builders, two keys, one commit.
    assert_eq!(evidence["rebuilds"]["independent"], 2, "{evidence:#}");
    assert_eq!(
        evidence["rebuilds"]["commit"],
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    );
    assert_eq!(
        evidence["rebuilds"]["builders"],
        json!([
            {"builder_id": "https://github.com/actions/runner/github-hosted", "key": "ci-builder"},
            {"builder_id": "https://rebuild.example.com/builder", "key": "rebuilder"}
        ])
    );
}

/// Independent-rebuild agreement where a bundle requires it (`rebuild_agreement_repositories`):
/// one builder is denied; a second provenance signed with the same key, under another builder
/// id, is still one builder; a second builder with its own key and builder id, reproducing the
/// same digest from the same commit, lets the promotion through.
#[tokio::test]
async fn independent_rebuilds_are_required_where_the_bundle_says() {
    if !python_ready() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let bundle = temp.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    // The default bundle without its tests (they assume the default configuration).
    for entry in std::fs::read_dir("policies").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with("_test.rego") {
            std::fs::copy(&path, bundle.join(name)).unwrap();
        }
    }
    let data = std::fs::read_to_string(bundle.join("data.json")).unwrap();
    let required = data.replace(
        "\"rebuild_agreement_repositories\": []",
        "\"rebuild_agreement_repositories\": [\"team/*\"]",
    );
    assert_ne!(data, required);
    std::fs::write(bundle.join("data.json"), required).unwrap();
    let bed = Bed::start(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let s = &bed.s;
    let keyadmin = bed.user("keyadmin", &[("key-admin", "*")]).await;
    let ci = bed.user("ci", &[("builder", "dev")]).await;
    let rita = bed
        .user("rita", &[("promoter", "staging"), ("promoter", "prod")])
        .await;
    let digest = push_image_as(s, &ci, "dev/team/app", "1.0", b"one build").await;
    let key = bed.keygen("ci-key");
    bed.add_key(&keyadmin, "ci-builder", &key, &ci_purposes())
        .await;
    bed.make_prod_ready("ci", "dev/team/app", &digest, &key, true);
    let (status, body) = bed
        .promote(&rita, "dev/team/app", &digest, "staging", json!({}))
        .await;
    expect_promotion(status, &body, "promoted", 0);

    // One builder.
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    expect_denied(status, &body, &["prod.rebuild_agreement"]);
    let deny = &body["decision"]["deny"][0];
    assert!(
        deny["msg"]
            .as_str()
            .unwrap()
            .contains("https://github.com/acme/app@a1b2c3d4e5f60718293a4b5c6d7e8f9012345678 by 1 independent builder(s)"),
        "{deny:#}"
    );
    assert!(
        deny["remediation"]
            .as_str()
            .unwrap()
            .contains("second, independent builder"),
        "{deny:#}"
    );

    // The same key under another builder id: whoever holds the key wrote both.
    let mut other_id = slsa_provenance();
    other_id["runDetails"]["builder"]["id"] = json!("https://rebuild.example.com/builder");
    bed.attest("ci", "dev/team/app", &digest, &key, SLSA_V1, &other_id);
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    expect_denied(status, &body, &["prod.rebuild_agreement"]);

    // A second builder with its own key, from the same commit, to the same digest.
    let rebuild_key = bed.keygen("rebuild-key");
    bed.add_key(
        &keyadmin,
        "rebuilder",
        &rebuild_key,
        &[format!("attest:{SLSA_V1}")],
    )
    .await;
    bed.attest(
        "ci",
        "dev/team/app",
        &digest,
        &rebuild_key,
        SLSA_V1,
        &other_id,
    );
    let (status, body) = bed
        .promote(&rita, "staging/team/app", &digest, "prod", json!({}))
        .await;
    expect_promotion(status, &body, "pending_approval", 1);
    assert_eq!(
        rules(&body["decision"]["warn"]),
        Vec::<String>::new(),
        "{body:#}"
    );
    let (status, artifact) = get(
        &s.http,
        &s.url(&format!("/api/v1/artifacts/dev/team/app@{digest}")),
    )
    .await;
    assert_eq!(status, 200, "{artifact:#}");
    assert_eq!(artifact["rebuilds"]["independent"], 2, "{artifact:#}");
    assert_eq!(artifact["rebuilds"]["mismatches"], json!([]));

    // A third, independent builder builds the same commit and gets other bytes: the build does
    // not reproduce. The artifact shows it, and it is an anomaly.
    let third_key = bed.keygen("third-key");
    bed.add_key(
        &keyadmin,
        "third-builder",
        &third_key,
        &[format!("attest:{SLSA_V1}")],
    )
    .await;
    let mut third = slsa_provenance();
    third["runDetails"]["builder"]["id"] = json!("https://third.example.com/builder");
    let other = push_image_as(s, &ci, "dev/team/app", "1.0-rebuilt", b"other bytes").await;
    bed.attest("ci", "dev/team/app", &other, &third_key, SLSA_V1, &third);
    let (_, artifact) = get(
        &s.http,
        &s.url(&format!("/api/v1/artifacts/dev/team/app@{digest}")),
    )
    .await;
    let mismatches = &artifact["rebuilds"]["mismatches"];
    assert_eq!(mismatches[0]["digest"], other.as_str(), "{artifact:#}");
    assert_eq!(
        mismatches[0]["builder_id"],
        "https://third.example.com/builder"
    );
    assert_eq!(mismatches[0]["key"], "third-builder");
    assert_eq!(
        mismatches[0]["commit"],
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    );
    let (status, anomalies) = get(&s.http, &s.url("/api/v1/anomalies")).await;
    assert_eq!(status, 200, "{anomalies:#}");
    let mismatch = anomalies["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "rebuild_mismatch")
        .unwrap_or_else(|| panic!("no rebuild_mismatch anomaly: {anomalies:#}"));
    assert!(
        mismatch["summary"]
            .as_str()
            .unwrap()
            .contains("the build does not reproduce"),
        "{mismatch:#}"
    );
}

/// The independent SLSA VSA checker refuses what the specifications forbid (a wrong signature,
/// predicate type, missing field, bad level or digest), so its acceptance of airlock's VSA in
/// `end_to_end_with_real_clients` means something.
#[test]
fn the_independent_vsa_checker_refuses_what_the_specifications_forbid() {
    if !python_ready() {
        return;
    }
    let answer = py_vsa(&["selftest"]);
    assert_eq!(answer["ok"], true, "{answer:#}");
    assert!(answer["cases"].as_u64().unwrap_or(0) >= 6, "{answer:#}");
}
