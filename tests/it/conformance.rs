//! The OCI distribution-spec v1.1.1 conformance suite (`../shared/tools/oci-conformance/run`, an
//! independent Go client) against airlock, read from the suite's JUnit report:
//!
//! 1. the push stage `dev`, all four workflows (pull, push, content discovery, content
//!    management), as admin, cross-mounting into a second repository;
//! 2. the gated stage `prod`, the pull workflow, as a deployer (pull rights on prod only), over
//!    content that got there the only way content gets into a gated stage: pushed to `dev`, then
//!    promoted to `staging` and `prod` through the API; the suite is pointed at it with
//!    `OCI_TAG_NAME`, `OCI_MANIFEST_DIGEST` and `OCI_BLOB_DIGEST`.
//!
//! Nothing may fail. Some specs of this suite version come in pairs of which exactly one can run
//! (`RunOnlyIf(x)` / `RunOnlyIfNot(x)`), so a run always reports a few as skipped; the tests name
//! every allowed skip with its reason and fail on any other.
//!
//! Locally a missing suite skips with a notice; with `AIRLOCK_INTEROP=required` (CI) it fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SUITE: &str = "OCI Distribution Conformance Tests";

/// Specs the dev run skips, each because its alternative ran and passed:
const DEV_RUN_ALTERNATIVES: &[&str] = &[
    // Runs only when the pull setup is skipped (content given by environment variables): the
    // prod run below runs it.
    "Pull Setup Get tag name from environment",
    // Runs only when the mount answered 202; airlock mounts (201), so its alternative "GET
    // request to test digest within cross-mount namespace should return 200" runs.
    "Push Cross-Repository Blob Mount Cross-mounting of nonexistent blob should yield session id",
    // airlock mounts only from the repository named in `from` (a mount without it would let
    // any pusher probe other repositories for a digest), so OCI_AUTOMATIC_CROSSMOUNT=0 and the
    // "automatic content discovery disabled should return a 202" spec runs instead.
    "Push Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery enabled should return a 201",
    // Runs only with OCI_TAG_LIST (tags given instead of pushed); the push variant ran.
    "Content Discovery Setup Populate registry with test tags (no push)",
];

/// Pull specs the prod run skips: nobody pushes into or deletes from a gated stage, so the
/// pull workflow's setup and teardown (which the dev run passes) give way to content named by
/// environment variables.
const PROD_RUN_SETUP_AND_TEARDOWN: &[&str] = &[
    "Pull Setup Populate registry with test blob",
    "Pull Setup Populate registry with test blob",
    "Pull Setup Populate registry with test layer",
    "Pull Setup Populate registry with test manifest",
    "Pull Setup Populate registry with test manifest",
    "Pull Teardown Delete manifest[0] created in setup",
    "Pull Teardown Delete manifest[1] created in setup",
    "Pull Teardown Delete config[0] blob created in setup",
    "Pull Teardown Delete config[1] blob created in setup",
    "Pull Teardown Delete layer blob created in setup",
];

/// The suite's runner, or `None` (with a notice) when it is missing and not required.
fn suite() -> Option<PathBuf> {
    let run = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tools/oci-conformance/run"
    ));
    if run.exists() {
        return Some(run);
    }
    assert_ne!(
        std::env::var("AIRLOCK_INTEROP").as_deref(),
        Ok("required"),
        "the OCI conformance suite is required (AIRLOCK_INTEROP=required) but {} is missing",
        run.display()
    );
    eprintln!(
        "NOTICE: skipping: {} is missing (set AIRLOCK_INTEROP=required to make this a failure)",
        run.display()
    );
    None
}

/// One spec's outcome in the JUnit report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Spec {
    /// The spec's full name without the suite's prefix, e.g. `Pull Setup Populate ...`.
    name: String,
    /// `passed`, `failed`, `skipped`, ... as the report says.
    status: String,
}

/// What one run of the suite reported.
#[derive(Debug)]
struct Report {
    /// The suite's exit status.
    exit_ok: bool,
    /// Every spec of the suite, in report order.
    specs: Vec<Spec>,
    /// The suite's console output (for failure messages).
    output: String,
}

impl Report {
    /// Names of the specs with `status`, sorted.
    fn with_status(&self, status: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .specs
            .iter()
            .filter(|s| s.status == status)
            .map(|s| s.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The specs that did not pass or skip, with the suite's output.
    fn assert_nothing_failed(&self) {
        let failed: Vec<&Spec> = self
            .specs
            .iter()
            .filter(|s| s.status != "passed" && s.status != "skipped")
            .collect();
        assert!(
            failed.is_empty() && self.exit_ok,
            "the conformance suite failed: {failed:#?}\n{}",
            self.output
        );
    }
}

/// Runs the suite against `namespace` on `base` as `user`, with extra environment `env`.
fn run_suite(
    run: &Path,
    base: &str,
    namespace: &str,
    (user, password): (&str, &str),
    crossmount: Option<&str>,
    env: &[(&str, &str)],
) -> Report {
    let reports = tempfile::tempdir().unwrap();
    let mut command = Command::new(run);
    command.args([base, namespace, user, password]);
    if let Some(crossmount) = crossmount {
        command.arg(crossmount);
    }
    command
        .env("OCI_REPORT_DIR", reports.path())
        .envs(env.iter().copied());
    let output = command.output().expect("run the conformance suite");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let junit = std::fs::read_to_string(reports.path().join("junit.xml"))
        .unwrap_or_else(|e| panic!("no junit.xml from the suite ({e}): {said}"));
    let specs = parse_junit(&junit);
    assert!(!specs.is_empty(), "no specs in the suite's report: {said}");
    Report {
        exit_ok: output.status.success(),
        specs,
        output: said,
    }
}

/// The suite's specs from a ginkgo JUnit report (`<testcase name=".." status="..">`), leaving
/// out the report's own entries (e.g. the HTML reporter).
fn parse_junit(xml: &str) -> Vec<Spec> {
    xml.split("<testcase ")
        .skip(1)
        .filter_map(|case| {
            let head = case.split('>').next()?;
            let name = unescape(attribute(head, "name")?);
            let status = attribute(head, "status")?.to_string();
            let name = name.strip_prefix(SUITE)?.trim_start().to_string();
            Some(Spec { name, status })
        })
        .collect()
}

/// The value of `name="..."` in a tag's attributes (`head`: the text after the tag's name).
fn attribute<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = if head.starts_with(&key) {
        key.len()
    } else {
        head.find(&format!(" {key}"))? + key.len() + 1
    };
    let len = head[start..].find('"')?;
    Some(&head[start..start + len])
}

/// Undoes XML escaping of an attribute value.
fn unescape(value: &str) -> String {
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

#[test]
fn junit_reports_are_read_with_names_unescaped_and_the_suite_prefix_removed() {
    let xml = r#"<testsuites><testsuite name="conformance tests">
<testcase name="OCI Distribution Conformance Tests Push Cross-Repository Blob Mount POST request to mount another repository&#39;s blob should return 201 or 202" classname="conformance tests" status="passed" time="0.1"></testcase>
<testcase name="OCI Distribution Conformance Tests Content Discovery Teardown Delete created manifest &amp; associated tags" classname="conformance tests" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
<testcase name="OCI Distribution Conformance Tests Pull Pull manifests GET nonexistent manifest should return 404" classname="conformance tests" status="failed" time="0"><failure message="Expected 400 to equal 404"></failure></testcase>
<testcase name="html custom reporter" classname="conformance tests" status="passed" time="0"></testcase>
</testsuite></testsuites>"#;
    assert_eq!(
        parse_junit(xml),
        vec![
            Spec {
                name: "Push Cross-Repository Blob Mount POST request to mount another repository's blob should return 201 or 202".into(),
                status: "passed".into()
            },
            Spec {
                name: "Content Discovery Teardown Delete created manifest & associated tags"
                    .into(),
                status: "skipped".into()
            },
            Spec {
                name: "Pull Pull manifests GET nonexistent manifest should return 404".into(),
                status: "failed".into()
            },
        ]
    );
}

#[test]
fn the_conformance_suite_passes_every_workflow_in_dev_and_the_pull_workflow_in_prod_as_a_deployer()
{
    let Some(run) = suite() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);

    // 1. dev: all four workflows, as admin, cross-mounting into dev/conformance-mount.
    let dev = run_suite(
        &run,
        &s.base,
        "dev/conformance",
        ("admin", ADMIN_PASSWORD),
        Some("dev/conformance-mount"),
        &[("OCI_AUTOMATIC_CROSSMOUNT", "0")],
    );
    dev.assert_nothing_failed();
    assert_eq!(
        dev.with_status("skipped"),
        sorted(DEV_RUN_ALTERNATIVES),
        "only the alternatives of specs that ran may be skipped in dev\n{}",
        dev.output
    );
    for workflow in [
        "Pull ",
        "Push ",
        "Content Discovery ",
        "Content Management ",
    ] {
        assert!(
            dev.with_status("passed")
                .iter()
                .any(|name| name.starts_with(workflow)),
            "no {workflow}spec ran"
        );
    }
    // The alternatives of the skipped mount specs are the ones that passed.
    for ran in [
        "Push Cross-Repository Blob Mount GET request to test digest within cross-mount namespace should return 200",
        "Push Cross-Repository Blob Mount Cross-mounting without from, and automatic content discovery disabled should return a 202",
    ] {
        assert!(
            dev.with_status("passed").contains(&ran.to_string()),
            "{ran} did not pass\n{}",
            dev.output
        );
    }

    // 2. prod: content arrives by promotion; a deployer pulls it.
    let (config_digest, manifest_digest) = runtime.block_on(promote_to_prod(&s));
    let prod = run_suite(
        &run,
        &s.base,
        "prod/conformance/app",
        ("deployer", "pull-only-words-0123"),
        None,
        &[
            ("OCI_TEST_PUSH", "0"),
            ("OCI_TEST_CONTENT_DISCOVERY", "0"),
            ("OCI_TEST_CONTENT_MANAGEMENT", "0"),
            ("OCI_TAG_NAME", "v1"),
            ("OCI_MANIFEST_DIGEST", &manifest_digest),
            ("OCI_BLOB_DIGEST", &config_digest),
        ],
    );
    prod.assert_nothing_failed();
    let pull_skipped: Vec<String> = prod
        .with_status("skipped")
        .into_iter()
        .filter(|name| name.starts_with("Pull "))
        .collect();
    assert_eq!(
        pull_skipped,
        sorted(PROD_RUN_SETUP_AND_TEARDOWN),
        "only the pull workflow's setup and teardown may be skipped in prod\n{}",
        prod.output
    );
    let prod_passed = prod.with_status("passed");
    assert!(
        prod_passed.contains(&"Pull Setup Get tag name from environment".to_string()),
        "{}",
        prod.output
    );
    // Every pull spec that is not setup or teardown passed against prod, as in dev.
    let dev_pull_checks: Vec<String> = dev
        .with_status("passed")
        .into_iter()
        .filter(|n| n.starts_with("Pull ") && !n.starts_with("Pull Setup"))
        .filter(|n| !n.starts_with("Pull Teardown"))
        .collect();
    assert!(dev_pull_checks.len() >= 10, "{dev_pull_checks:#?}");
    for check in &dev_pull_checks {
        assert!(
            prod_passed.contains(check),
            "{check} passed in dev but not in prod\n{}",
            prod.output
        );
    }
    // Across both runs every spec passed somewhere, except the three whose alternative is
    // what airlock does (named in DEV_RUN_ALTERNATIVES).
    let never_ran: Vec<String> = dev
        .with_status("skipped")
        .into_iter()
        .filter(|name| !prod_passed.contains(name))
        .collect();
    let alternatives: Vec<&str> = DEV_RUN_ALTERNATIVES
        .iter()
        .copied()
        .filter(|name| *name != "Pull Setup Get tag name from environment")
        .collect();
    assert_eq!(never_ran, sorted(&alternatives));

    eprintln!(
        "conformance: dev {} passed, {} skipped; prod (pull, deployer) {} passed",
        dev.with_status("passed").len(),
        dev.with_status("skipped").len(),
        prod_passed.len()
    );
}

/// Pushes an image to `dev/conformance/app:v1` as admin, promotes it to staging and prod as a
/// promoter (a permissive bundle: the gates only check their common rules), and adds the
/// `deployer` user with pull rights on `prod/conformance/*` only; returns the image's (config
/// digest, manifest digest).
async fn promote_to_prod(s: &TestServer) -> (String, String) {
    let (_, manifest_digest) = s.push_image("dev/conformance/app", "v1", &[b"layer"]).await;
    let config_digest = sha256(br#"{"architecture":"amd64","os":"linux"}"#);
    let release = add_user(
        s,
        "release",
        "promotion-words-0123",
        &[("promoter", "staging"), ("promoter", "prod")],
    )
    .await;
    for (source, to) in [
        ("dev/conformance/app", "staging"),
        ("staging/conformance/app", "prod"),
    ] {
        let (status, body) = post_json(
            &release,
            &s.url("/api/v1/promotions"),
            serde_json::json!({"source": source, "reference": manifest_digest, "to": to}),
        )
        .await;
        assert_eq!(status, 201, "{body:#}");
        assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    }
    add_user(
        s,
        "deployer",
        "pull-only-words-0123",
        &[("deployer", "prod/conformance/*")],
    )
    .await;
    (config_digest, manifest_digest)
}

/// A bearer token for `scope` (space-separated scopes, as a challenge gives them) as `user`.
async fn token_for(s: &TestServer, user: &reqwest::Client, scope: &str) -> String {
    let scope = scope.replace(' ', "%20");
    let response = user
        .get(s.url(&format!("/auth/token?service=airlock&scope={scope}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"].as_str().expect("token").to_string()
}

/// The `scope="..."` of a `401` answer's `WWW-Authenticate` challenge.
fn challenged_scope(response: &reqwest::Response) -> String {
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    challenge
        .split_once("scope=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(scope, _)| scope.to_string())
        .unwrap_or_else(|| panic!("no scope in {challenge}"))
}

#[tokio::test]
async fn a_manifest_read_by_a_reference_that_is_no_valid_tag_is_unknown_and_a_write_of_it_invalid()
{
    let s = TestServer::start();
    s.push_image("dev/team/app", "1", &[b"layer"]).await;
    for reference in [".INVALID_MANIFEST_NAME", "-dash", "a%20b"] {
        let url = s.url(&format!("/v2/dev/team/app/manifests/{reference}"));
        let get = s.http.get(&url).send().await.unwrap();
        assert_eq!(get.status(), 404, "GET {reference}");
        let body: serde_json::Value = get.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN", "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("is not a valid tag"),
            "{body}"
        );
        let head = s.http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 404, "HEAD {reference}");
        // Reads are authorized like any other: no credentials, a challenge.
        let anonymous = s.anonymous.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(challenged_scope(&anonymous), "repository:dev/team/app:pull");
        // Writing such a tag is a client error naming the tag rule.
        let put = s
            .put_manifest("dev/team/app", reference, OCI_MANIFEST, b"{}")
            .await;
        assert_eq!(put.status(), 400, "PUT {reference}");
        assert_eq!(error_code(put).await, "TAG_INVALID");
        let delete = s.http.delete(&url).send().await.unwrap();
        assert_eq!(delete.status(), 400, "DELETE {reference}");
        assert_eq!(error_code(delete).await, "TAG_INVALID");
    }
    // A malformed digest stays a malformed digest.
    let r = s
        .http
        .get(s.url("/v2/dev/team/app/manifests/sha256:totallywrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn a_mount_challenge_asks_for_pull_on_the_source_so_its_token_lets_the_mount_happen() {
    let s = TestServer::start();
    let blob = b"mounted across repositories";
    let digest = s.push_blob("dev/team/source", blob).await;
    let mount = s.url(&format!(
        "/v2/dev/team/target/blobs/uploads/?mount={digest}&from=dev/team/source"
    ));
    let challenged = s.anonymous.post(&mount).send().await.unwrap();
    assert_eq!(challenged.status(), 401);
    let scope = challenged_scope(&challenged);
    assert_eq!(
        scope,
        "repository:dev/team/target:pull,push repository:dev/team/source:pull"
    );
    // A token for exactly what the challenge asked for mounts (201, no upload session).
    let token = token_for(&s, &s.http, &scope).await;
    let mounted = s
        .anonymous
        .post(&mount)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(mounted.status(), 201);
    assert_eq!(
        mounted.headers()["location"],
        format!("/v2/dev/team/target/blobs/{digest}").as_str()
    );
    // A token for the target alone falls back to an upload session (202), as the spec allows.
    let digest_b = s.push_blob("dev/team/source", b"not mounted").await;
    let target_only = token_for(&s, &s.http, "repository:dev/team/target:pull,push").await;
    let fallback = s
        .anonymous
        .post(s.url(&format!(
            "/v2/dev/team/target/blobs/uploads/?mount={digest_b}&from=dev/team/source"
        )))
        .bearer_auth(&target_only)
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 202);
    // A user who may push to the target but not read the source is never given the source: the
    // token endpoint leaves that scope out, and the mount falls back to an upload.
    let pusher = add_user(
        &s,
        "pusher",
        "target-only-words-0123",
        &[("builder", "dev/team/target")],
    )
    .await;
    let token = token_for(&s, &pusher, &scope).await;
    let fallback = s
        .anonymous
        .post(&mount)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 202);
    // Without `from` the challenge names the target only.
    let plain = s
        .anonymous
        .post(s.url(&format!(
            "/v2/dev/team/target/blobs/uploads/?mount={digest}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenged_scope(&plain),
        "repository:dev/team/target:pull,push"
    );
}
