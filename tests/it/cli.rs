//! The CLI's shared behaviour, end to end against real servers: contexts (the last login is the
//! default, `context list|use`), `--server` before or after the subcommand, `AIRLOCK_TOKEN` /
//! `--token`, `login --oidc`, exit statuses (0 ok, 1 refused, 2 usage or connection), JSON errors
//! on stdout, a closed stdout, completion scripts, man pages, `version` and plain logs.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ADMIN_PASSWORD, TestServer};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Runs the CLI with `home` as its config directory and no `AIRLOCK_SERVER` or `AIRLOCK_TOKEN`
/// unless `env` sets them; returns (exit code, stdout, stderr).
fn run(
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env_remove("AIRLOCK_SERVER")
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .env_remove("CI_JOB_JWT_V2")
        .env("XDG_CONFIG_HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run airlock");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{input}\n").as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait for airlock");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn login(home: &Path, server: &str, user: &str, password: &str) {
    let (code, out, err) = run(
        home,
        &["login", server, "-u", user, "--password-stdin"],
        Some(password),
        &[],
    );
    assert_eq!(code, 0, "login to {server}: {out}{err}");
}

/// The server `airlock version` talked to (it names the server it resolved).
fn resolved_server(home: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = args.to_vec();
    all.extend(["version", "-o", "json"]);
    let (code, out, err) = run(home, &all, None, env);
    assert_eq!(code, 0, "{out}{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    answer["server"]["url"].as_str().unwrap().to_string()
}

/// An access token for `user` from `/auth/token` (Basic credentials).
async fn token_for(server: &TestServer, user: &str, password: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .get(server.url("/auth/token?service=airlock"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["token"].as_str().expect("a token").to_string()
}

fn json_error(stdout: &str) -> Value {
    let document: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {stdout:?}"));
    for field in ["code", "message", "remediation"] {
        assert!(document["error"][field].is_string(), "{document}");
    }
    document
}

#[test]
fn the_last_login_is_the_default_server_and_context_use_switches_it() {
    let (one, two) = (TestServer::start(), TestServer::start());
    let home = tempfile::tempdir().unwrap();
    login(home.path(), &one.base, "admin", ADMIN_PASSWORD);
    assert_eq!(resolved_server(home.path(), &[], &[]), one.base);
    login(home.path(), &two.host, "admin", ADMIN_PASSWORD);
    assert_eq!(
        resolved_server(home.path(), &[], &[]),
        two.base,
        "the last login wins"
    );
    // Commands use the current context's login without --server.
    let (code, out, err) = run(home.path(), &["whoami"], None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("admin (user"), "{out}");

    let (code, out, _) = run(home.path(), &["context", "list"], None, &[]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("* {}  admin", two.base)), "{out}");
    assert!(out.contains(&format!("  {}  admin", one.base)), "{out}");
    let (code, out, _) = run(home.path(), &["context", "list", "-o", "json"], None, &[]);
    assert_eq!(code, 0);
    let contexts: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(contexts.as_array().unwrap().len(), 2, "{contexts}");
    assert!(!out.contains("refresh"), "no secrets in the listing: {out}");

    let (code, out, err) = run(home.path(), &["context", "use", &one.host], None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(resolved_server(home.path(), &[], &[]), one.base);
    // AIRLOCK_SERVER and --server still win over the current context.
    assert_eq!(
        resolved_server(home.path(), &[], &[("AIRLOCK_SERVER", two.base.as_str())]),
        two.base
    );
    assert_eq!(
        resolved_server(home.path(), &["--server", &two.base], &[]),
        two.base
    );

    // A context that does not exist is refused, naming the ones that do.
    let (code, _, err) = run(home.path(), &["context", "use", "127.0.0.1:1"], None, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no context http://127.0.0.1:1") && err.contains(&one.base),
        "{err}"
    );
}

#[test]
fn server_is_accepted_before_and_after_the_subcommand() {
    let server = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    login(home.path(), &server.base, "admin", ADMIN_PASSWORD);
    // A wrong AIRLOCK_SERVER proves the flag is what was used, wherever it stands.
    let wrong = [("AIRLOCK_SERVER", "http://127.0.0.1:1")];
    for args in [
        vec!["--server", &server.base, "users", "list"],
        vec!["users", "--server", &server.base, "list"],
        vec!["users", "list", "--server", &server.base],
        vec!["--server", &server.base, "audit", "tail", "-n", "1"],
        vec!["audit", "tail", "-n", "1", "--server", &server.base],
        vec!["-o", "json", "--server", &server.base, "whoami"],
    ] {
        let (code, out, err) = run(home.path(), &args, None, &wrong);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    // -o json before the subcommand applies to it.
    let (_, out, _) = run(home.path(), &["-o", "json", "whoami"], None, &[]);
    let me: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(me["name"], "admin");
    // And the environment alone works too.
    let (code, out, err) = run(
        tempfile::tempdir().unwrap().path(),
        &["version"],
        None,
        &[("AIRLOCK_SERVER", server.base.as_str())],
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn airlock_token_is_used_without_a_stored_login_and_never_printed() {
    let server = TestServer::start();
    let token = token_for(&server, "admin", ADMIN_PASSWORD).await;
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("AIRLOCK_SERVER", server.base.as_str()),
        ("AIRLOCK_TOKEN", token.as_str()),
    ];
    let (code, out, err) = run(home.path(), &["whoami"], None, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("admin (user"), "{out}");
    assert!(!out.contains(&token) && !err.contains(&token));
    assert!(
        !home.path().join("airlock/credentials.json").exists(),
        "nothing is stored"
    );
    let (code, help, _) = run(home.path(), &["whoami", "--help"], None, &env);
    assert_eq!(code, 0);
    assert!(
        help.contains("AIRLOCK_TOKEN") && !help.contains(&token),
        "{help}"
    );
    // --token works the same, and its value is not echoed on errors either.
    let (code, out, err) = run(
        home.path(),
        &["users", "list", "--token", &token, "--server", &server.base],
        None,
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Commands over the log's own endpoints send it too.
    let (code, out, err) = run(home.path(), &["audit", "tail", "-n", "1"], None, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"index\""), "{out}");
    let (code, out, err) = run(
        home.path(),
        &["whoami", "--token", "not-a-token", "--server", &server.base],
        None,
        &[],
    );
    assert_eq!(code, 1, "a refused token is a refusal: {out}{err}");
    assert!(
        err.contains("UNAUTHORIZED") && !err.contains("not-a-token"),
        "{err}"
    );
}

#[tokio::test]
async fn exit_codes_are_0_ok_1_refused_2_usage_and_2_unreachable() {
    let server = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        home.path(),
        &["whoami", "--server", &server.base],
        None,
        &[],
    );
    assert_eq!(code, 2, "no login yet: {out}{err}");
    login(home.path(), &server.base, "admin", ADMIN_PASSWORD);
    let (code, out, err) = run(
        home.path(),
        &["users", "add", "nobody", "--password-stdin"],
        Some("a-long-enough-password-42"),
        &[],
    );
    assert_eq!(code, 0, "ok: {out}{err}");
    // Refused: a user without roles lists users.
    let token = token_for(&server, "nobody", "a-long-enough-password-42").await;
    let (code, _, err) = run(
        home.path(),
        &["users", "list", "--token", &token],
        None,
        &[],
    );
    assert_eq!(code, 1, "refused: {err}");
    assert!(err.contains("FORBIDDEN"), "{err}");
    // A wrong password is a refusal too.
    let (code, _, err) = run(
        home.path(),
        &["login", &server.base, "-u", "nobody", "--password-stdin"],
        Some("not-the-password-at-all"),
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("(401): login refused"), "{err}");
    // Usage: an unknown subcommand, a missing argument, a bad flag value.
    for args in [
        vec!["users", "frobnicate"],
        vec!["roles", "grant"],
        vec!["whoami", "--output", "yaml"],
    ] {
        let (code, _, err) = run(home.path(), &args, None, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    // Connection refused, with and without a stored login for that server.
    let closed = closed_port_url();
    for args in [
        vec![
            "whoami",
            "--server",
            closed.as_str(),
            "--token",
            token.as_str(),
        ],
        vec!["version", "--server", closed.as_str()],
        vec!["audit", "tail", "--server", closed.as_str()],
    ] {
        let (code, _, err) = run(home.path(), &args, None, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("cannot reach"), "{err}");
    }
}

#[tokio::test]
async fn a_server_failure_exits_2_with_the_servers_error() {
    if common::embedded_only() {
        return;
    }
    let server = TestServer::start();
    let token = token_for(&server, "admin", ADMIN_PASSWORD).await;
    // The blob directory is replaced under the running server: every write answers 503.
    std::fs::rename(
        server.data_dir.join("blobs"),
        server.data_dir.join("blobs.moved"),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        home.path(),
        &["users", "add", "carol", "--password-stdin", "-o", "json"],
        Some("a-long-enough-password-42"),
        &[
            ("AIRLOCK_SERVER", server.base.as_str()),
            ("AIRLOCK_TOKEN", token.as_str()),
        ],
    );
    assert_eq!(code, 2, "a 5xx is not a decision: {out}{err}");
    assert!(err.contains("(503)"), "{err}");
    assert_eq!(json_error(&out)["error"]["code"], "UNAVAILABLE");
}

/// A loopback URL nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn with_json_output_errors_are_one_json_document_on_stdout() {
    let server = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    // An API refusal keeps the server's code, message and remediation.
    let (code, out, err) = run(
        home.path(),
        &[
            "-o",
            "json",
            "whoami",
            "--token",
            "bogus",
            "--server",
            &server.base,
        ],
        None,
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(json_error(&out)["error"]["code"], "UNAUTHORIZED");
    // Not logged in.
    let (code, out, _) = run(
        home.path(),
        &["whoami", "--server", &server.base, "--output", "json"],
        None,
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        json_error(&out)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not logged in")
    );
    // Connection refused.
    let (code, out, _) = run(
        home.path(),
        &["--output=json", "version", "--server", &closed_port_url()],
        None,
        &[],
    );
    assert_eq!(code, 2);
    let error = json_error(&out);
    assert_eq!(error["error"]["code"], "CONNECTION_FAILED", "{error}");
    assert!(
        error["error"]["remediation"]
            .as_str()
            .unwrap()
            .contains("--server")
    );
    // A usage error clap found.
    let (code, out, _) = run(
        home.path(),
        &["-o", "json", "users", "frobnicate"],
        None,
        &[],
    );
    assert_eq!(code, 2);
    let error = json_error(&out);
    assert_eq!(error["error"]["code"], "USAGE");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("frobnicate"),
        "{error}"
    );
    // Text output keeps stdout empty on errors.
    let (code, out, _) = run(home.path(), &["users", "frobnicate"], None, &[]);
    assert_eq!((code, out.as_str()), (2, ""));
}

/// Reads one line of `child`'s stdout, closes it, and waits (bounded) for the exit status.
fn read_one_line_then_close(mut child: std::process::Child, nudge: impl FnOnce()) -> (i32, String) {
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(!first.is_empty());
    drop(reader);
    nudge();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the command did not end after its stdout closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), err)
}

#[tokio::test]
async fn a_closed_stdout_ends_the_command_quietly() {
    let server = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    login(home.path(), &server.base, "admin", ADMIN_PASSWORD);
    // `airlock audit tail --follow | head -1`: the next entry after the reader left ends it.
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "tail", "--follow", "-n", "1"])
        .env_remove("AIRLOCK_SERVER")
        .env("XDG_CONFIG_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = read_one_line_then_close(child, || {
        for name in ["one", "two", "three"] {
            let (code, out, err) = run(
                home.path(),
                &["users", "add", name, "--password-stdin"],
                Some("a-long-enough-password-42"),
                &[],
            );
            assert_eq!(code, 0, "{out}{err}");
        }
    });
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );

    // A long answer (the bash completion script is ~200 KiB, more than a pipe holds).
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, err) = read_one_line_then_close(child, || {});
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn completion_scripts_are_printed_for_bash_zsh_and_fish_and_bash_parses_them() {
    let home = tempfile::tempdir().unwrap();
    let (code, script, err) = run(home.path(), &["completion", "bash"], None, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        script.contains("promote") && script.contains("--server"),
        "covers the tree"
    );
    let file = home.path().join("airlock.bash");
    std::fs::write(&file, &script).unwrap();
    let status = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(status.success(), "bash -n refuses the completion script");
    for (shell, marker, checker) in [
        ("zsh", "#compdef airlock", "zsh"),
        ("fish", "complete -c airlock", "fish"),
    ] {
        let (code, script, err) = run(home.path(), &["completion", shell], None, &[]);
        assert_eq!(code, 0, "{err}");
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..200.min(script.len())]
        );
        let file = home.path().join(format!("airlock.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match Command::new(checker).arg("-n").arg(&file).status() {
            Ok(status) => assert!(status.success(), "{checker} -n refuses the script"),
            Err(_) => eprintln!("note: {checker} is not installed; its script was not parsed"),
        }
    }
    let (code, _, err) = run(home.path(), &["completion", "tcsh"], None, &[]);
    assert_eq!(code, 2, "{err}");
}

/// A credential store whose current context is a server only this user knows.
fn login_somewhere(home: &Path) {
    let dir = home.join("airlock");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("credentials.json"),
        json!({"servers": {"http://127.0.0.1:4999": {"username": "u", "refresh_token": "r"}},
               "current": "http://127.0.0.1:4999"})
        .to_string(),
    )
    .unwrap();
}

#[test]
fn man_pages_are_written_for_the_command_and_every_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("man1");
    // Written by someone logged in somewhere: the pages do not carry that server.
    login_somewhere(home.path());
    let (code, _, err) = run(home.path(), &["manpages", dir.to_str().unwrap()], None, &[]);
    assert_eq!(code, 0, "{err}");
    for page in [
        "airlock.1",
        "airlock-login.1",
        "airlock-promote.1",
        "airlock-context-use.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|_| panic!("{page}"));
        assert!(text.contains(".TH"), "{page} is a man page");
    }
    let top = std::fs::read_to_string(dir.join("airlock.1")).unwrap();
    assert!(
        !top.contains("127.0.0.1:4"),
        "the writer's context leaked into the page"
    );
    assert!(
        top.contains("completion") && top.contains("\\-\\-server"),
        "{top}"
    );
}

#[tokio::test]
async fn version_shows_the_client_and_the_server_version() {
    let server = TestServer::start();
    // The endpoint needs no login.
    let response = server
        .anonymous
        .get(server.url("/api/v1/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(answer["api"], "v1");
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        home.path(),
        &["version", "--server", &server.base],
        None,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "client: airlock {v}\nserver: airlock {v} ({}, API v1)\n",
            server.base,
            v = env!("CARGO_PKG_VERSION")
        )
    );
    let (code, out, _) = run(
        home.path(),
        &["version", "--client", "-o", "json"],
        None,
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"client": env!("CARGO_PKG_VERSION")})
    );
    // The build-info metric says the same.
    let metrics = server
        .anonymous
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "airlock_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn logs_and_errors_have_no_ansi_colours_when_stderr_is_not_a_terminal() {
    // At info, every line carries a level that a terminal would colour.
    let (server, log) = TestServer::start_with_log(&[("AIRLOCK_LOG__LEVEL", "info")]);
    let (code, _, _) = server.cli(&["whoami"]);
    assert_eq!(code, 0);
    assert!(log.contains("listening"), "the server logged");
    assert!(!log.contains("\u{1b}["), "ANSI escape in the server's log");
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["users", "frobnicate"],
        vec!["whoami", "--server", &server.base],
    ] {
        let (code, _, err) = run(home.path(), &args, None, &[]);
        assert_eq!(code, 2);
        assert!(!err.contains('\u{1b}'), "ANSI escape in {err:?}");
    }
}

// ---- login --oidc ----

const ISSUER: &str = "https://ci.example";
const AUDIENCE: &str = "airlock-cli-test";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&Sha256::digest(b"cli test issuer")).unwrap()
}

fn id_token(repository: &str) -> String {
    use p256::ecdsa::signature::Signer as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("repo:{repository}"),
                        "repository": repository, "iat": now - 5, "nbf": now - 5, "exp": now + 300});
    let header = b64(json!({"alg": "ES256", "typ": "JWT", "kid": "k1"})
        .to_string()
        .as_bytes());
    let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature: p256::ecdsa::Signature = signing_key().sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

/// A server with one `[[access.oidc]]` rule, `ci`, over a JWKS file.
fn oidc_server(dir: &Path) -> TestServer {
    let point = signing_key().verifying_key().to_encoded_point(false);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
        "kid": "k1", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}]});
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let config = dir.join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[[access.oidc]]\nname = \"ci\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             jwks_file = {:?}\nclaims = {{ repository = \"team/app\" }}\n\
             repositories = [\"dev/team/*\"]\n",
            jwks_file.to_str().unwrap()
        ),
    )
    .unwrap();
    TestServer::start_with_env(&[("AIRLOCK_CONFIG", config.to_str().unwrap())])
}

/// A one-request-at-a-time stand-in for GitHub Actions' ID token service: answers
/// `{"value": token}` to a request with the right bearer token, and records each request line.
fn github_token_service(token: String) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/token?api-version=2.0",
        listener.local_addr().unwrap()
    );
    let (seen, requests) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let authorized = head
                .iter()
                .any(|h| h.eq_ignore_ascii_case("authorization: bearer request-token"));
            let _ = seen.send(head.first().cloned().unwrap_or_default());
            let (status, body) = if authorized {
                ("200 OK", json!({"value": token}).to_string())
            } else {
                ("403 Forbidden", "{}".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, requests)
}

#[test]
fn login_oidc_exchanges_a_ci_id_token_from_a_file_gitlab_or_github_for_a_builder_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = oidc_server(dir.path());
    let token = id_token("team/app");

    // --id-token-file: the token is stored as the context's token, the context becomes current.
    let home = tempfile::tempdir().unwrap();
    let file = dir.path().join("id-token");
    std::fs::write(&file, &token).unwrap();
    let (code, out, err) = run(
        home.path(),
        &[
            "login",
            &server.base,
            "--oidc",
            "--id-token-file",
            file.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("as oidc/ci") && err.contains("until it expires"),
        "{err}"
    );
    let (code, out, err) = run(home.path(), &["whoami"], None, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("oidc/ci ("), "{out}");
    assert!(out.contains("builder@dev/team/*"), "{out}");
    let stored = std::fs::read_to_string(home.path().join("airlock/credentials.json")).unwrap();
    assert!(
        !stored.contains("refresh_token"),
        "nothing long-lived is stored: {stored}"
    );
    let (_, out, _) = run(home.path(), &["context", "list"], None, &[]);
    assert!(out.contains("login: oidc"), "{out}");
    let stored = home.path().join("airlock/credentials.json");
    let mut contexts: Value =
        serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    // Once the stored token expires, commands say to log in again (nothing renews it).
    let saved = contexts.clone();
    contexts["servers"][&server.base]["access_token_expires"] = json!(1);
    std::fs::write(&stored, contexts.to_string()).unwrap();
    let (code, _, err) = run(home.path(), &["whoami"], None, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has expired") && err.contains("login") && err.contains("--oidc"),
        "{err}"
    );
    std::fs::write(&stored, saved.to_string()).unwrap();
    // A role an access-admin grants the rule's principal comes on top of builder (a CI job
    // that promotes its builds to staging), from the next exchange on.
    let (code, out, err) = server.cli(&[
        "roles",
        "grant",
        "oidc/ci",
        "promoter",
        "--scope",
        "staging/team/app",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(
        home.path(),
        &["login", "--oidc", "--id-token-file", file.to_str().unwrap()],
        None,
        &[],
    );
    assert_eq!(
        code, 0,
        "the current context's server is the default: {err}"
    );
    let (_, out, _) = run(home.path(), &["whoami"], None, &[]);
    assert!(
        out.contains("builder@dev/team/*") && out.contains("promoter@staging/team/app"),
        "{out}"
    );

    // GitLab: CI_JOB_JWT_V2, or the variable --id-token-env names; --print-token stores nothing.
    let fresh = tempfile::tempdir().unwrap();
    for (args, env) in [
        (
            vec!["--oidc", "--print-token"],
            vec![("CI_JOB_JWT_V2", token.as_str())],
        ),
        (
            vec![
                "--oidc",
                "--print-token",
                "--id-token-env",
                "AIRLOCK_ID_TOKEN",
            ],
            vec![("AIRLOCK_ID_TOKEN", token.as_str())],
        ),
    ] {
        let mut all = vec!["login", server.base.as_str()];
        all.extend(args);
        let (code, out, err) = run(fresh.path(), &all, None, &env);
        assert_eq!(code, 0, "{all:?}: {err}");
        let printed = out.trim();
        assert_eq!(printed.split('.').count(), 3, "a JWT on stdout: {out}");
        assert!(!fresh.path().join("airlock/credentials.json").exists());
        let (code, out, err) = run(
            fresh.path(),
            &["whoami", "--server", &server.base],
            None,
            &[("AIRLOCK_TOKEN", printed)],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("oidc/ci ("), "{out}");
    }

    // GitHub Actions: the token service is asked with the request token and the audience.
    let (url, requests) = github_token_service(token.clone());
    let (code, out, err) = run(
        fresh.path(),
        &[
            "login",
            &server.base,
            "--oidc",
            "--print-token",
            "--audience",
            AUDIENCE,
        ],
        None,
        &[
            ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let request = requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        request.starts_with("GET /token?api-version=2.0&audience=airlock-cli-test "),
        "{request}"
    );

    // A token no rule accepts is a refusal (exit 1); no token at all is a usage error (exit 2).
    let other = dir.path().join("other-token");
    std::fs::write(&other, id_token("someone/else")).unwrap();
    let (code, _, err) = run(
        fresh.path(),
        &[
            "login",
            &server.base,
            "--oidc",
            "--id-token-file",
            other.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[[access.oidc]]"), "{err}");
    let (code, _, err) = run(fresh.path(), &["login", &server.base, "--oidc"], None, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no CI ID token found") && err.contains("id-token: write"),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_with_a_space_is_refused_without_printing_it_and_a_bearer_prefix_is_accepted() {
    let server = TestServer::start();
    let token = token_for(&server, "admin", ADMIN_PASSWORD).await;
    let home = tempfile::tempdir().unwrap();
    // `Bearer <token>`, as copied from an Authorization header, works.
    let prefixed = format!("Bearer {token}");
    let env = [
        ("AIRLOCK_SERVER", server.base.as_str()),
        ("AIRLOCK_TOKEN", prefixed.as_str()),
    ];
    let (code, out, err) = run(home.path(), &["whoami"], None, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("admin (user"), "{out}");
    // A value with a space is refused as a usage error that never repeats it, in text and JSON,
    // from the environment and from --token.
    let secret = "eyJSECRET-PART";
    let spaced = format!("Bearer {secret} trailing");
    let env = [
        ("AIRLOCK_SERVER", server.base.as_str()),
        ("AIRLOCK_TOKEN", spaced.as_str()),
    ];
    let (code, out, err) = run(home.path(), &["whoami", "-o", "json"], None, &env);
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    assert!(err.contains("AIRLOCK_TOKEN"), "{err}");
    json_error(&out);
    let spaced = format!("{secret} x");
    let (code, out, err) = run(
        home.path(),
        &[
            "whoami",
            "--token",
            &spaced,
            "--server",
            &server.base,
            "-o",
            "json",
        ],
        None,
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
}

/// A TCP listener that records whether any connection (and so any token) arrived.
fn recording_listener() -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = arrived.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (host, arrived)
}

#[tokio::test]
async fn a_given_token_is_never_sent_to_a_server_a_reference_names() {
    let server = TestServer::start();
    let token = token_for(&server, "admin", ADMIN_PASSWORD).await;
    let home = tempfile::tempdir().unwrap();
    let (other, arrived) = recording_listener();
    let env = [
        ("AIRLOCK_SERVER", server.base.as_str()),
        ("AIRLOCK_TOKEN", token.as_str()),
    ];
    let reference = format!("{other}/dev/team/app:1");
    for args in [
        vec!["promote", reference.as_str(), "--to", "staging"],
        vec!["evidence", reference.as_str()],
    ] {
        let (code, out, err) = run(home.path(), &args, None, &env);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains(&format!("http://{other}")) && err.contains(&server.base),
            "the refusal names both servers: {err}"
        );
        assert!(!err.contains(&token), "{err}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !arrived.load(std::sync::atomic::Ordering::SeqCst),
        "nothing reached the server the reference named"
    );
    // The chosen server named in the reference is fine (a missing image is a refusal, not a
    // usage error).
    let reference = format!("{}/dev/team/app:1", server.host);
    let (code, out, err) = run(
        home.path(),
        &["promote", &reference, "--to", "staging"],
        None,
        &env,
    );
    assert_eq!(code, 1, "{out}{err}");
}

#[tokio::test]
async fn users_passwd_with_a_token_writes_no_stored_login() {
    let server = TestServer::start();
    common::add_user(&server, "erin", "first-long-password-42", &[]).await;
    let token = token_for(&server, "admin", ADMIN_PASSWORD).await;
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("AIRLOCK_SERVER", server.base.as_str()),
        ("AIRLOCK_TOKEN", token.as_str()),
    ];
    let (code, out, err) = run(
        home.path(),
        &["users", "passwd", "-u", "erin", "--password-stdin"],
        Some("first-long-password-42\nsecond-long-password-42"),
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("log in with it"), "{out}");
    assert!(
        !home.path().join("airlock/credentials.json").exists(),
        "nothing is written with a token"
    );
}

#[cfg(unix)]
#[test]
fn keys_generate_force_makes_an_existing_readable_key_file_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("release.key");
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let prefix = dir.path().join("release");
    let (code, out, err) = run(
        dir.path(),
        &[
            "keys",
            "generate",
            "--force",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ],
        None,
        &[("COSIGN_PASSWORD", "correct horse")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.contains("ENCRYPTED SIGSTORE PRIVATE KEY"), "{text}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "the overwritten private key is readable by its owner only"
    );
}
