//! The CLI over TLS, against `airlock serve` terminating TLS with a CA made here: `airlock login
//! https://...` with `--ca-cert` (or `AIRLOCK_CA_CERT`) stores the CA with the login and later
//! commands use it without the flag; without the CA the CLI refuses with one sentence naming
//! the fix; `--insecure` connects and warns every time; an expired certificate is named as
//! expired; a server without a scheme is https:// unless it is on loopback.

use crate::common;

use std::path::Path;

use common::{ADMIN_PASSWORD, TestPki, TestServer};

/// Runs the CLI with its own config directory `home`.
fn cli(
    s: &TestServer,
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    s.cli_with_env(home, args, stdin, env)
}

/// `airlock login <base> -u admin --password-stdin` plus `extra` flags.
fn login(
    s: &TestServer,
    home: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut args = vec!["login", s.base.as_str(), "-u", "admin", "--password-stdin"];
    args.extend_from_slice(extra);
    cli(s, home, &args, Some(ADMIN_PASSWORD), env)
}

fn stored_login(home: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(home.join("airlock/credentials.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn login_with_ca_cert_stores_the_ca_and_later_commands_reuse_it_without_the_flag() {
    let (s, pki) = TestServer::start_tls(&[]);
    let home = tempfile::tempdir().unwrap();
    let ca = pki.ca_cert.to_str().unwrap();
    let (code, out, err) = login(&s, home.path(), &["--ca-cert", ca], &[]);
    assert_eq!(code, 0, "{out}{err}");

    let stored = stored_login(home.path());
    let entry = &stored["servers"][s.base.as_str()];
    let ca_pem = std::fs::read_to_string(&pki.ca_cert).unwrap();
    assert_eq!(
        entry["ca_cert_pem"],
        ca_pem.as_str(),
        "the PEM itself is stored"
    );
    assert!(entry.get("insecure").is_none(), "{entry}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.path().join("airlock/credentials.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The CA file may go away: the login carries it.
    let (code, out, err) = cli(&s, home.path(), &["whoami"], None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("admin"), "{out}");
    let (code, out, err) = cli(&s, home.path(), &["audit", "checkpoint"], None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("airlock"), "a signed checkpoint: {out}");
}

#[test]
fn without_the_ca_the_cli_refuses_with_a_message_naming_the_fix() {
    let (s, _pki) = TestServer::start_tls(&[]);
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = login(&s, home.path(), &[], &[]);
    assert_eq!(code, 2, "a connection error: {out}{err}");
    assert!(
        err.contains("the server's certificate is not trusted")
            && err.contains("--ca-cert FILE")
            && err.contains("AIRLOCK_CA_CERT"),
        "{err}"
    );
    assert!(
        !err.contains("error sending request") && !err.contains("client error"),
        "one sentence, not the transport's nested chain: {err}"
    );
    assert!(!home.path().join("airlock/credentials.json").exists());
}

#[test]
fn the_ca_cert_can_come_from_airlock_ca_cert() {
    let (s, pki) = TestServer::start_tls(&[]);
    let home = tempfile::tempdir().unwrap();
    let ca = pki.ca_cert.to_str().unwrap();
    let (code, out, err) = login(&s, home.path(), &[], &[("AIRLOCK_CA_CERT", ca)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(stored_login(home.path())["servers"][s.base.as_str()]["ca_cert_pem"].is_string());
    let (code, out, err) = cli(&s, home.path(), &["whoami"], None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    // A CA that did not issue the server's certificate is refused, even over a stored one.
    let other = TestPki::new();
    let (code, _, err) = cli(
        &s,
        home.path(),
        &["whoami"],
        None,
        &[("AIRLOCK_CA_CERT", other.ca_cert.to_str().unwrap())],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
}

#[test]
fn insecure_connects_without_checking_and_warns_on_every_use() {
    let (s, _pki) = TestServer::start_tls(&[]);
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = login(&s, home.path(), &["--insecure"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("WARNING") && err.contains("--insecure") && err.contains("NOT checked"),
        "{err}"
    );
    assert_eq!(
        stored_login(home.path())["servers"][s.base.as_str()]["insecure"],
        true
    );
    let (code, out, err) = cli(&s, home.path(), &["whoami"], None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("WARNING"),
        "the stored choice warns again: {err}"
    );
    // --insecure on the command line overrides AIRLOCK_CA_CERT (here a CA that would refuse).
    let other = TestPki::new();
    let (code, out, err) = cli(
        &s,
        home.path(),
        &["whoami", "--insecure"],
        None,
        &[("AIRLOCK_CA_CERT", other.ca_cert.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("WARNING"), "{err}");
}

#[test]
fn insecure_and_ca_cert_together_are_a_usage_error() {
    let (code, _, err) = common::airlock_cli(&["whoami", "--insecure", "--ca-cert", "/x.pem"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn an_expired_server_certificate_is_named_as_expired() {
    let pki = TestPki::new();
    let (cert, key) = pki.server_pem(-30, -1);
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    let s = TestServer::start_tls_with(&pki, &[], &[]);
    let home = tempfile::tempdir().unwrap();
    let ca = pki.ca_cert.to_str().unwrap();
    let (code, out, err) = login(&s, home.path(), &["--ca-cert", ca], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the server's certificate has expired"),
        "{err}"
    );
}

#[test]
fn a_tls_server_named_without_a_scheme_is_reached_over_https_but_loopback_defaults_to_http() {
    let (s, pki) = TestServer::start_tls(&[]);
    let home = tempfile::tempdir().unwrap();
    let ca = pki.ca_cert.to_str().unwrap();
    // 127.0.0.1 is loopback: without a scheme it means http://, which a TLS server does not
    // answer; https:// must be written out.
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let bare = format!("127.0.0.1:{port}");
    let (code, _, err) = cli(
        &s,
        home.path(),
        &[
            "login",
            &bare,
            "-u",
            "admin",
            "--password-stdin",
            "--ca-cert",
            ca,
        ],
        Some(ADMIN_PASSWORD),
        &[],
    );
    assert_ne!(code, 0, "{err}");
    // `localhost` too; with https:// written out it works, and the stored key is the https URL.
    let https = format!("https://localhost:{port}");
    let (code, out, err) = cli(
        &s,
        home.path(),
        &[
            "login",
            &https,
            "-u",
            "admin",
            "--password-stdin",
            "--ca-cert",
            ca,
        ],
        Some(ADMIN_PASSWORD),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(stored_login(home.path())["servers"][https.as_str()].is_object());
}

#[tokio::test]
async fn without_system_ca_certificates_the_server_starts_and_the_cli_reaches_plaintext_but_refuses_https()
 {
    // An empty trust store, as on a machine without the ca-certificates package.
    let empty = tempfile::tempdir().unwrap();
    let file = empty.path().join("none.pem");
    std::fs::write(&file, "").unwrap();
    let no_roots = [
        ("SSL_CERT_FILE", file.to_str().unwrap()),
        ("SSL_CERT_DIR", empty.path().to_str().unwrap()),
    ];
    // The server (its webhook client is built on the system roots) starts and serves.
    let plain = TestServer::start_with_env(&no_roots);
    let response = plain.anonymous.get(plain.url("/v2/")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // The CLI reaches a plaintext server.
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = login(&plain, home.path(), &[], &no_roots);
    assert_eq!(code, 0, "{out}{err}");
    // An https server whose CA is not given is refused as untrusted, naming the fix.
    let (tls, _pki) = TestServer::start_tls(&[]);
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = login(&tls, home.path(), &[], &no_roots);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("not trusted"), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
}
