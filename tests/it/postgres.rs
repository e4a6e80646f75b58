//! The metadata database setting (`database_url`): which URLs start a server, that a password in
//! the URL never reaches the log, and that backup and restore, which copy the embedded database
//! only, refuse on PostgreSQL naming `pg_dump`. The PostgreSQL cases run under
//! `AIRLOCK_TEST_BACKEND=distributed` (see tests/it/common/mod.rs) and print a notice otherwise.

use crate::common;

use std::process::{Command, Stdio};

use common::{TestServer, airlock_cli, backend_env};

/// Prints why a PostgreSQL-only test does nothing under the embedded backend; true to return.
fn postgres_only() -> bool {
    if !common::distributed() {
        eprintln!("NOTICE: PostgreSQL test skipped: set AIRLOCK_TEST_BACKEND=distributed");
        return true;
    }
    false
}

#[test]
fn a_database_url_of_another_kind_is_refused_naming_both_forms_and_hiding_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env(
            "AIRLOCK_DATABASE_URL",
            "mysql://root:s3cret-pw@db.example/airlock",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("postgres://") && stderr.contains("postgresql://"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    // Nothing was created for a database airlock cannot use.
    assert!(!dir.path().join("data").join("metadata.db").exists());
}

#[tokio::test]
async fn a_password_in_the_database_url_never_reaches_the_log() {
    if postgres_only() {
        return;
    }
    let probe = tempfile::tempdir().unwrap();
    let (_, url) = backend_env(&probe.path().join("data"))
        .into_iter()
        .next()
        .unwrap();
    // The test server trusts local connections, so any password is accepted; it must still
    // never be shown.
    let with_password = url.replacen("://postgres@", "://postgres:s3cret-pw@", 1);
    assert_ne!(with_password, url, "the test URL names the user postgres");
    let (server, log) = TestServer::start_with_log(&[
        ("AIRLOCK_DATABASE_URL", with_password.as_str()),
        ("AIRLOCK_LOG__LEVEL", "info"),
    ]);
    let response = server
        .anonymous
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(log.contains("airlock listening"));
    assert!(log.contains("***@"), "the log names the database, redacted");
    assert!(!log.contains("s3cret-pw"));
    drop(server);
    common::drop_backend_database(&probe.path().join("data"));
}

#[tokio::test]
async fn backup_and_restore_refuse_on_postgres_naming_pg_dump() {
    if postgres_only() {
        return;
    }
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    let target = dest.path().join("backup");
    let (code, out, err) = airlock_cli(&[
        "backup",
        "--data-dir",
        server.data_dir.to_str().unwrap(),
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("pg_dump") && err.contains("PostgreSQL"),
        "{err}"
    );
    assert!(!target.exists(), "nothing was written");

    let (code, out, err) = airlock_cli(&[
        "restore",
        target.to_str().unwrap(),
        "--data-dir",
        dest.path().join("restored").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("pg_dump"), "{err}");
}
