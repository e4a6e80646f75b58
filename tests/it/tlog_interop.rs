//! The audit log checked by an independent verifier: `../shared/tools/tlogverify` (Go, over
//! `golang.org/x/mod/sumdb/note` and `sumdb/tlog`) reads `/log/key`, the signed checkpoint, every
//! entry bundle and the hash tiles of a log of more than 700 entries (two full 256-entry tiles
//! and a partial one), recomputes the root, proves every entry's inclusion from the tiles, checks
//! a consistency proof from the oldest checkpoint and the server's JSON proofs, and refuses a
//! tampered checkpoint.
//!
//! Locally a missing verifier skips with a notice; with `AIRLOCK_INTEROP=required` (CI) it fails.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use futures::StreamExt as _;

/// Blob pushes the test makes: each appends one audit entry (`blob.pushed`).
const PUSHES: usize = 720;

/// The verifier, or `None` (with a notice) when it is missing and not required.
fn tlogverify() -> Option<PathBuf> {
    let tool = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tools/tlogverify/tlogverify"
    ));
    if tool.exists() {
        return Some(tool);
    }
    assert_ne!(
        std::env::var("AIRLOCK_INTEROP").as_deref(),
        Ok("required"),
        "tlogverify is required (AIRLOCK_INTEROP=required) but {} is missing",
        tool.display()
    );
    eprintln!(
        "NOTICE: skipping: {} is missing (set AIRLOCK_INTEROP=required to make this a failure)",
        tool.display()
    );
    None
}

/// A bearer token for push and pull on `repo` (cheaper per request than Basic, which checks
/// the password every time).
async fn push_token(s: &TestServer, repo: &str) -> String {
    let response = s
        .http
        .get(s.url(&format!(
            "/auth/token?service=airlock&scope=repository:{repo}:pull,push"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn tlogverify_accepts_a_log_of_more_than_700_entries_with_full_and_partial_tiles() {
    let Some(tool) = tlogverify() else { return };
    let s = TestServer::start();
    let repo = "dev/tlog/app";
    let token = push_token(&s, repo).await;
    let pushed: Vec<u16> = futures::stream::iter(0..PUSHES)
        .map(|i| {
            let content = format!("audit log entry {i}").into_bytes();
            let url = s.url(&format!(
                "/v2/{repo}/blobs/uploads/?digest={}",
                sha256(&content)
            ));
            let request = s.anonymous.post(url).bearer_auth(&token).body(content);
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(pushed.iter().all(|status| *status == 201), "{pushed:?}");

    let size = s.wait_for_checkpoint().await as usize;
    assert!(size >= BOOTSTRAP_ENTRIES + PUSHES, "{size}");
    assert!(
        size > 700 && !size.is_multiple_of(256) && size / 256 >= 2,
        "{size}"
    );

    let output = Command::new(&tool)
        .arg(&s.base)
        .env("TLOG_AUTH", format!("admin:{ADMIN_PASSWORD}"))
        .output()
        .expect("run tlogverify");
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tlogverify failed:\n{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!said.contains("FAIL"), "{said}");
    // Every part was looked at: both full entry bundles and the partial one, every index.
    let partial = format!("/log/tile/entries/002.p/{}", size - 512);
    for needle in [
        "PASS entry bundle /log/tile/entries/000 ",
        "PASS entry bundle /log/tile/entries/001 ",
        &format!("PASS entry bundle {partial} "),
        "PASS root recomputed from all entry bundles == checkpoint root",
        &format!("PASS tile-based inclusion proofs verified for {size}/{size} indices"),
        "PASS tampered checkpoint rejected",
        "verifies with tlog.CheckTree",
        "verifies with tlog.CheckRecord",
    ] {
        assert!(said.contains(needle), "no {needle:?} in:\n{said}");
    }
    let summary = said
        .lines()
        .find(|line| line.starts_with("summary: "))
        .unwrap_or_else(|| panic!("no summary in:\n{said}"));
    assert!(summary.contains(" 0 failed"), "{summary}");
    eprintln!("tlogverify over {size} entries: {summary}");
}
