//! Crash safety: airlock killed with SIGKILL in the middle of a burst of pushes comes back with a
//! log that verifies, where every acknowledged push has its entry and every entry its change.

use crate::common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::{TestServer, sha256};

#[tokio::test]
async fn kill_9_during_a_burst_loses_no_entry_and_no_change() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut s = TestServer::start_in(&dir, &[]);
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut writers = Vec::new();
    for writer in 0..8 {
        let http = s.http.clone();
        let base = s.base.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let content = format!("writer {writer} blob {i}");
                let digest = sha256(content.as_bytes());
                let url = format!("{base}/v2/dev/crash/app/blobs/uploads/?digest={digest}");
                match http.post(url).body(content).send().await {
                    Ok(r) if r.status() == 201 => {
                        acknowledged.lock().unwrap().insert(digest);
                    }
                    _ => break, // the server is gone
                }
            }
        }));
    }
    // Let the burst run, then crash the server mid-flight.
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.kill_hard();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let s = TestServer::start_in(&dir, &[]);
    s.wait_for_checkpoint().await;
    let (code, out, err) = s.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");

    let recorded: BTreeSet<String> = s
        .audit_entries()
        .await
        .iter()
        .filter(|e| e["type"] == "blob.pushed")
        .map(|e| e["subject"]["digest"].as_str().unwrap().to_string())
        .collect();
    let unrecorded: Vec<_> = acknowledged.difference(&recorded).collect();
    assert!(
        unrecorded.is_empty(),
        "acknowledged pushes without an entry: {unrecorded:?}"
    );
    for digest in &recorded {
        let head = s
            .http
            .head(s.url(&format!("/v2/dev/crash/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.status(),
            200,
            "entry for {digest} but the blob is not in the repository"
        );
    }
    eprintln!(
        "{} pushes acknowledged before the crash, {} recorded",
        acknowledged.len(),
        recorded.len()
    );
}
