//! The CLI's errors keep the server's code and the exit status every command gives it (1 for a
//! refusal or something missing, 2 for usage, connection and server failures), in text and with
//! `-o json`, also when stdout is closed.

use crate::common;

use common::TestServer;
use serde_json::Value;

/// The JSON document a command printed on stdout.
fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn audit_commands_refused_by_the_server_exit_1_with_its_code() {
    let s = TestServer::start();
    for args in [
        &["audit", "tail", "-n", "1", "-o", "json"][..],
        &["audit", "export", "-o", "json"][..],
    ] {
        let (code, out, err) = s.cli_env(args, &[("AIRLOCK_TOKEN", "not-a-token")]);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert_eq!(
            json(&out)["error"]["code"],
            "UNAUTHORIZED",
            "{args:?}: {out}"
        );
    }
}

#[test]
fn evidence_for_an_artifact_that_does_not_exist_exits_1_with_manifest_unknown() {
    let s = TestServer::start();
    let reference = format!("{}/dev/nothing-here:v1", s.host);
    let (code, out, err) = s.cli(&["evidence", &reference, "-o", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(json(&out)["error"]["code"], "MANIFEST_UNKNOWN", "{out}");
}

#[test]
fn a_registry_refusal_exits_1_with_the_registry_code() {
    let s = TestServer::start();
    let reference = format!("{}/dev/app:v1", s.host);
    let (code, out, err) = s.cli_env(
        &["evidence", &reference, "-o", "json"],
        &[("AIRLOCK_TOKEN", "not-a-token")],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(json(&out)["error"]["code"], "UNAUTHORIZED", "{out}");
}

#[test]
fn a_stored_login_the_server_refuses_on_renewal_exits_1_with_its_code_and_says_log_in_again() {
    let s = TestServer::start();
    let admin = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        admin.path(),
        &["login", &s.base, "-u", "admin", "--password-stdin"],
        Some(common::ADMIN_PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli_as(
        admin.path(),
        &["users", "add", "gone", "--password-stdin"],
        Some("a-long-enough-password-42"),
    );
    assert_eq!(code, 0, "{out}{err}");
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        home.path(),
        &["login", &s.base, "-u", "gone", "--password-stdin"],
        Some("a-long-enough-password-42"),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli_as(admin.path(), &["users", "disable", "gone"], None);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli_as(home.path(), &["whoami", "-o", "json"], None);
    assert_eq!(code, 1, "{out}{err}");
    let error = &json(&out)["error"];
    assert_ne!(error["code"], "CLI_ERROR", "{out}");
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{out}"
    );
    assert!(
        error["remediation"]
            .as_str()
            .unwrap()
            .contains("log in again"),
        "{out}"
    );
}

#[tokio::test]
async fn login_and_password_change_refusals_keep_the_server_code() {
    let s = TestServer::start();
    // What the server answers a wrong password with.
    let answer: Value = reqwest::Client::new()
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "wrong-password"),
            ("service", "airlock"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        home.path(),
        &[
            "login",
            &s.base,
            "-u",
            "admin",
            "--password-stdin",
            "-o",
            "json",
        ],
        Some("wrong-password"),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        json(&out)["error"]["code"],
        answer["errors"][0]["code"],
        "{out}"
    );

    // A wrong current password: the server's code and remediation.
    let answer: Value = reqwest::Client::new()
        .post(s.url("/api/v1/users/admin/password"))
        .json(&serde_json::json!({"current_password": "wrong-password",
                                  "new_password": "another-long-password-42"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (code, out, err) = s.cli_as(
        home.path(),
        &[
            "users",
            "passwd",
            "-u",
            "admin",
            "--password-stdin",
            "-o",
            "json",
        ],
        Some("wrong-password\nanother-long-password-42"),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(json(&out)["error"], answer["error"], "{out}");

    // A user that does not exist is exit 1 (404), like every other command's.
    let (code, out, err) = s.cli_as(
        home.path(),
        &[
            "users",
            "passwd",
            "-u",
            "nobody-here",
            "--password-stdin",
            "-o",
            "json",
        ],
        Some("wrong-password\nanother-long-password-42"),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(!json(&out)["error"]["code"].as_str().unwrap().is_empty());
}

#[test]
fn a_failed_audit_verify_prints_its_failure_as_json() {
    let s = TestServer::start();
    let other = airlock_audit::LogKey::generate("airlock/impostor").unwrap();
    let (code, out, err) = s.cli(&[
        "audit",
        "verify",
        "--log-key",
        other.verifier_key(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let answer = json(&out);
    assert_eq!(answer["ok"], false, "{out}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not signed by the log key"),
        "{out}"
    );
}

#[test]
fn audit_checkpoint_with_json_output_is_a_json_document_holding_the_note() {
    let s = TestServer::start();
    let (code, text, err) = s.cli(&["audit", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = s.cli(&["audit", "checkpoint", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let note = json(&out)["checkpoint"].as_str().unwrap().to_string();
    // The same signed note (the tree may have grown by a signature in between: compare origins).
    assert_eq!(note.lines().next(), text.lines().next(), "{out}");
    assert!(note.contains("\n\n"), "a signed note: {note:?}");
}

#[test]
fn policy_eval_takes_the_global_output_option() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"target":{"stage":"staging"}}"#).unwrap();
    let input = input.display().to_string();
    for flag in ["-o", "--output"] {
        let (code, out, err) = common::airlock_cli(&[
            "policy", "eval", "--input", &input, "--stage", "staging", flag, "json",
        ]);
        assert!(code == 0 || code == 1, "{flag}: {code} {out}{err}");
        assert!(json(&out)["allowed"].is_boolean(), "{flag}: {out}");
    }
}

#[test]
fn a_json_usage_error_names_what_is_missing() {
    let (code, out, err) = common::airlock_cli(&["-o", "json", "channels", "history", "dev/nope"]);
    assert_eq!(code, 2, "{out}{err}");
    let answer = json(&out);
    assert_eq!(answer["error"]["code"], "USAGE", "{out}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the following required arguments were not provided:"),
        "{out}"
    );
    assert!(
        message.lines().count() >= 2 && !message.ends_with(':'),
        "{out}"
    );
    assert!(!message.contains("Usage:"), "{out}");
}

/// Runs the CLI with a stdout whose reader has already gone; returns (exit code, stderr).
fn run_with_closed_stdout(
    server: Option<&TestServer>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let home = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"));
    command
        .args(args)
        .env_remove("AIRLOCK_SERVER")
        .env_remove("AIRLOCK_TOKEN")
        .env("XDG_CONFIG_HOME", home.path())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    if let Some(server) = server {
        command.env("AIRLOCK_SERVER", &server.base);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_denial_or_an_error_keeps_its_exit_status_when_stdout_is_closed() {
    // A gate's denial (no evidence for staging): exit 1, with stdout open or closed.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"target":{"stage":"staging"}}"#).unwrap();
    let input = input.display().to_string();
    for output in ["text", "json"] {
        let args = [
            "policy", "eval", "--input", &input, "--stage", "staging", "--output", output,
        ];
        let (code, out, err) = common::airlock_cli(&args);
        assert_eq!(code, 1, "a denial: {out}{err}");
        let (code, err) = run_with_closed_stdout(None, &args, &[]);
        assert_eq!(code, 1, "{output}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // An error's JSON (a refused token): exit 1 as with stdout open.
    let s = TestServer::start();
    let (code, err) = run_with_closed_stdout(
        Some(&s),
        &["whoami", "-o", "json"],
        &[("AIRLOCK_TOKEN", "not-a-token")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("UNAUTHORIZED"), "{err}");
}
