//! The OpenAPI contract, checked by tools airlock did not write, against a running server:
//! `openapi-spec-validator` (PyPI) accepts `/api/v1/openapi.json` as OpenAPI 3.1, and
//! `schemathesis` (PyPI, v4) exercises every operation the document lists with a logged-in
//! admin's token: no answer is a server error, and every answer has a documented status, content
//! type and schema. The operations are whatever the served document holds, not a list here, so
//! each newly documented route is fuzzed as soon as it is documented.
//!
//! Locally a missing tool skips with a notice; with `AIRLOCK_INTEROP=required` (CI) it fails.

use crate::common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The fuzzing account: a second admin, so that nothing the fuzzer does to `admin` (whose name
/// is guessable) ends the run, with the roles that reach the most code. Its name appears nowhere
/// in the document, so name-addressed operations (disable, reset-password, roles/revoke, ...)
/// do not hit it except by a chance that random strings make negligible.
const FUZZER: &str = "contract-fuzzer";
const FUZZER_PASSWORD: &str = "many-random-requests-0123";
const FUZZER_ROLES: &[&str] = &[
    "access-admin",
    "developer",
    "auditor",
    "key-admin",
    "promoter",
];

/// Operations left out of the run (templated paths, passed as `--exclude-path`), each because it
/// can take the fuzzing account's own access away and turn the rest of the run into 401s:
/// - `POST /api/v1/credentials/{id}/revoke`: credential ids are guessable (`password:1` is
///   admin's password, `password:2` the fuzzing account's); in a trial run the fuzzer revoked
///   both within seconds.
/// - `POST /api/v1/roles/revoke`, `POST /api/v1/users/{name}/disable`,
///   `POST /api/v1/access-requests/{id}/revoke`: the stateful phase feeds names and ids from
///   earlier answers (`GET /api/v1/users` lists the fuzzing account) into these, and a run
///   revoked the account's own roles (its token was then "issued before a change to the
///   principal's access").
const LOCKOUT_OPERATIONS: &[&str] = &[
    "/api/v1/credentials/{id}/revoke",
    "/api/v1/roles/revoke",
    "/api/v1/users/{name}/disable",
    "/api/v1/access-requests/{id}/revoke",
];

/// Upper bound on the schemathesis run. Its `--max-time` is a budget it always spends in full
/// (fuzzing repeats until the time is up), so the run is bounded by `--max-examples` per
/// operation instead, and this watchdog fails the test if it still takes too long.
const SCHEMATHESIS_DEADLINE: Duration = Duration::from_secs(170);

/// Fetches the served OpenAPI document.
async fn document(s: &TestServer) -> (String, Value) {
    let response = s
        .anonymous
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).expect("the document is JSON");
    (text, doc)
}

/// `METHOD path` of every operation in the document.
fn operations(doc: &Value) -> Vec<String> {
    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, _) in item.as_object().into_iter().flatten() {
            if METHODS.contains(&method.as_str()) {
                operations.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn openapi_spec_validator_accepts_the_served_document_as_openapi_3_1() {
    if !interop_tool_available("openapi-spec-validator", &["--version"]) {
        return;
    }
    let s = TestServer::start();
    let (text, doc) = document(&s).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert!(!operations(&doc).is_empty());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let output = Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openapi-spec-validator: {said}");
    assert!(said.contains(": OK"), "{said}");
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer_in_any_operation() {
    if !interop_tool_available("schemathesis", &["--version"]) {
        return;
    }
    // Denied promotions lock their requester by default; a fuzzer asks for many.
    let s =
        TestServer::start_with_env(&[("AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__ACTION", "alert")]);
    let grants: Vec<(&str, &str)> = FUZZER_ROLES.iter().map(|role| (*role, "*")).collect();
    add_user(&s, FUZZER, FUZZER_PASSWORD, &grants).await;
    // Something to find: an image in dev.
    s.push_image("dev/team/app", "1.0", &[b"a layer"]).await;
    let token: Value = client_as(FUZZER, FUZZER_PASSWORD)
        .get(s.url("/auth/token?service=airlock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token").to_string();
    let (_, doc) = document(&s).await;
    let documented = operations(&doc);

    let reports = tempfile::tempdir().unwrap();
    let mut command = Command::new("schemathesis");
    command
        .arg("run")
        .arg(s.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "10",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            // The artifact routes' `{reference}` is `<repository>@<digest>` or `<repository>:<tag>`:
            // few random strings fit that pattern, which trips this generation health check.
            "--suppress-health-check",
            "filter_too_much",
            "--no-color",
        ])
        .arg("--report-dir")
        .arg(reports.path())
        // Its cache (`.schemathesis/`) goes where it runs: not into the work tree.
        .current_dir(reports.path());
    for path in LOCKOUT_OPERATIONS {
        command.args(["--exclude-path", path]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCHEMATHESIS_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("schemathesis ran longer than {SCHEMATHESIS_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut said = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert!(
        status.success(),
        "schemathesis found problems (exit {status}):\n{said}"
    );
    // It did test the operations: every documented one, less the excluded ones.
    let tested = said
        .lines()
        .find_map(|line| line.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no count of tested operations in:\n{said}"));
    let excluded = documented
        .iter()
        .filter(|op| {
            LOCKOUT_OPERATIONS
                .iter()
                .any(|path| op.split_once(' ').is_some_and(|(_, p)| p == *path))
        })
        .count();
    assert_eq!(tested, documented.len() - excluded, "{said}");
    // The account is still the fuzzer's, with the token the run used: the run was not cut short
    // by a lockout or a change to its own access.
    let (status, whoami) = get_json(&s, &token, "/api/v1/whoami").await;
    assert_eq!(status, 200, "the fuzzing account lost its access: {whoami}");
    eprintln!(
        "schemathesis: {tested} operations in {:?}",
        started.elapsed()
    );
}

/// GET `path` with a bearer token on a new connection (a pooled one may have been idle longer
/// than the server keeps it open while schemathesis ran); (status, JSON body).
async fn get_json(s: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = fresh
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_json_api_requests_get_the_error_body_with_a_remediation() {
    let s = TestServer::start();
    let url = s.url("/api/v1/roles/grant");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            s.http
                .post(&url)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "BAD_REQUEST",
            "well-formed JSON",
        ),
        (
            s.http.post(&url).json(&json!({"role": "developer"})),
            400,
            "BAD_REQUEST",
            "field the message names",
        ),
        (
            s.http.post(&url).body("{}"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type: application/json",
        ),
        (
            s.http.put(s.url("/api/v1/whoami")),
            405,
            "METHOD_NOT_ALLOWED",
            "GET",
        ),
    ];
    for (request, status, code, remediation) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{code}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(
            body["error"]["remediation"]
                .as_str()
                .is_some_and(|r| r.contains(remediation)),
            "{body}"
        );
    }
    // What handlers answer themselves, and everything outside the JSON API, is left alone.
    let metrics = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}
