//! `promote --wait` outlives one access token: with a stored login the CLI renews its token and
//! keeps waiting; with `AIRLOCK_TOKEN` (which cannot be renewed) it says the token expired and
//! exits 2, not 1 (which would read as a denial).
//!
//! Each test starts its own `airlock serve` with 2-second access tokens, no clock leeway, a
//! permissive policy bundle and one approval on staging.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestServer, client_as, permissive_bundle, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "renewal-test-password-1";

fn start(dir: &Path) -> TestServer {
    let bundle = permissive_bundle(&dir.join("bundle"));
    TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
        ("AIRLOCK_ACCESS__TOKEN_LIFETIME_SECS", "2"),
        ("AIRLOCK_ACCESS__LEEWAY_SECS", "0"),
    ])
}

/// Runs `promote dev/team/app:1.0 --to staging --wait --timeout 60s` in a thread with `home` as
/// the config directory and `env` added.
fn promote_waiting(
    s: &TestServer,
    home: PathBuf,
    env: Vec<(String, String)>,
) -> std::thread::JoinHandle<(i32, String, String)> {
    let base = s.base.clone();
    let reference = format!("{}/dev/team/app:1.0", s.host);
    std::thread::spawn(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args([
                "promote",
                &reference,
                "--to",
                "staging",
                "--wait",
                "--timeout",
                "60s",
            ])
            .env_remove("AIRLOCK_TOKEN")
            .env("XDG_CONFIG_HOME", &home)
            .env("AIRLOCK_SERVER", &base)
            .envs(env)
            .output()
            .expect("run airlock");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
}

/// Waits until a promotion is pending approval; returns its id.
async fn wait_pending(s: &TestServer) -> String {
    for _ in 0..200 {
        let list: Value = s
            .http
            .get(s.url("/api/v1/promotions?state=pending_approval"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if let Some(id) = list["promotions"][0]["id"].as_str() {
            return id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no promotion became pending");
}

#[tokio::test]
async fn promote_wait_renews_its_token_and_sees_an_approval_after_the_first_token_expired() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    common::add_user(&s, "rita", PASSWORD, &[("promoter", "staging")]).await;
    common::add_user(&s, "alice", PASSWORD, &[("approver", "staging")]).await;
    common::push_image_as(&s, &s.http, "dev/team/app", "1.0", b"renewed", None).await;
    let home = dir.path().join("home-rita");
    std::fs::create_dir_all(&home).unwrap();
    let (code, out, err) = s.cli_as(
        &home,
        &["login", &s.base, "-u", "rita", "--password-stdin"],
        Some(PASSWORD),
    );
    assert_eq!(code, 0, "{out}{err}");

    let waiting = promote_waiting(&s, home, Vec::new());
    let id = wait_pending(&s).await;
    // The waiting command's first token has expired (2 s lifetime, no leeway) before approval.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = post(
        &client_as("alice", PASSWORD),
        &s.url(&format!("/api/v1/promotions/{id}/approve")),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (code, out, err) = waiting.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("PROMOTED dev/team/app -> staging/team/app ({id})")),
        "{out}"
    );
}

#[tokio::test]
async fn promote_wait_with_a_given_token_reports_its_expiry_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    common::add_user(&s, "rita", PASSWORD, &[("promoter", "staging")]).await;
    common::push_image_as(&s, &s.http, "dev/team/app", "1.0", b"expiring", None).await;
    let answer: Value = client_as("rita", PASSWORD)
        .get(s.url("/auth/token?service=airlock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["token"].as_str().expect("a token").to_string();
    let home = dir.path().join("home-ci");
    let waiting = promote_waiting(
        &s,
        home.clone(),
        vec![("AIRLOCK_TOKEN".to_string(), token.clone())],
    );
    let (code, out, err) = waiting.join().unwrap();
    assert_eq!(code, 2, "an expired token is not a denial: {out}{err}");
    assert!(
        err.contains("expired while waiting") && err.contains("airlock promotions show"),
        "{err}"
    );
    assert!(!err.contains(&token) && !out.contains(&token));
    assert!(!home.join("airlock/credentials.json").exists());
}
