//! Graceful shutdown against the real binary: on SIGTERM `/readyz` fails at once while requests
//! are still served for `shutdown.drain_delay_secs`; then new connections are refused, a request
//! in flight (a large upload sent slowly) still completes and is committed, and the process exits
//! 0. A second signal exits at once; `shutdown.timeout_secs` bounds a request that never ends.

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The drain delay the tests run with: long enough to observe, short enough to wait out.
const DRAIN_DELAY_SECS: u64 = 3;

const BLOCK: usize = 64 * 1024;
/// 16 MiB in 64 KiB blocks: half sent before SIGTERM, half after new connections are refused.
const BLOCKS: usize = 256;

fn block(index: usize) -> bytes::Bytes {
    bytes::Bytes::from(
        (0..BLOCK)
            .map(|i| (i * 31 + index * 7) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// A client that opens a new connection for every request, so each request proves the server
/// still accepts connections.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Polls `/readyz` (new connections) for up to 2 s until it answers 503; returns the body.
async fn readyz_turns_draining(s: &TestServer) -> Value {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let response = fresh_client().get(s.url("/readyz")).send().await.unwrap();
        if response.status() == 503 {
            return response.json().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {} 2 s after the signal",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An upload sent as one streamed `PUT` whose body the test feeds block by block.
struct SlowUpload {
    feed: tokio::sync::mpsc::Sender<bytes::Bytes>,
    response: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
}

/// Starts a monolithic upload of [`BLOCKS`] blocks to `repo` and sends `sent` blocks of it.
async fn start_upload(s: &TestServer, repo: &str, digest: &str, sent: usize) -> SlowUpload {
    let start = s
        .http
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = s.location(&start);
    let (feed, blocks) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    let body = futures::stream::unfold(blocks, |mut blocks| async move {
        blocks
            .recv()
            .await
            .map(|block| (Ok::<_, std::io::Error>(block), blocks))
    });
    let request = s
        .http
        .put(format!("{location}?digest={digest}"))
        .body(reqwest::Body::wrap_stream(body));
    let response = tokio::spawn(request.send());
    for i in 0..sent {
        feed.send(block(i)).await.unwrap();
    }
    SlowUpload { feed, response }
}

fn whole_blob_digest() -> String {
    let mut hash = Sha256::new();
    for i in 0..BLOCKS {
        hash.update(block(i));
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// Polls for up to `limit` until a new TCP connection to the server is refused; returns when.
fn wait_until_refused(s: &TestServer, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        match std::net::TcpStream::connect(&s.host) {
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
                return Instant::now();
            }
            Ok(_) => assert!(
                Instant::now() < deadline,
                "new connections are still accepted {} s after the drain began",
                limit.as_secs()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sigterm_fails_readiness_first_and_finishes_an_upload_in_flight() {
    let delay = DRAIN_DELAY_SECS.to_string();
    let mut s = TestServer::start_with_env(&[("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", &delay)]);
    let ready = fresh_client().get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let digest = whole_blob_digest();

    // Half of a 16 MiB blob is on its way when SIGTERM arrives.
    let upload = start_upload(&s, "dev/drain/big", &digest, BLOCKS / 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.signal("TERM");
    let signalled = Instant::now();

    // Readiness fails at once, with the reason...
    let body = readyz_turns_draining(&s).await;
    assert_eq!(body["status"], "draining", "{body}");
    assert_eq!(body["checks"]["draining"]["ok"], false, "{body}");
    // ...while new connections are still accepted and answered during the delay.
    let v2 = fresh_client().get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(v2.status(), 401, "GET /v2/ during the drain delay");
    // Clients are told not to reuse the connection, which is about to close.
    assert_eq!(v2.headers()["connection"], "close");
    assert!(
        signalled.elapsed() < Duration::from_secs(DRAIN_DELAY_SECS),
        "the checks above took longer than the drain delay; they proved nothing"
    );

    // After the delay new connections are refused, while the upload is still in flight.
    let refused = wait_until_refused(&s, Duration::from_secs(DRAIN_DELAY_SECS + 10));
    assert!(
        refused - signalled >= Duration::from_secs(DRAIN_DELAY_SECS) - Duration::from_millis(100),
        "connections were refused {:?} after SIGTERM, before the {DRAIN_DELAY_SECS} s drain delay",
        refused - signalled
    );
    assert!(s.wait_exit(Duration::ZERO).is_none(), "exited mid-upload");

    // The rest of the blob arrives; the upload completes and its digest is committed.
    for i in BLOCKS / 2..BLOCKS {
        upload.feed.send(block(i)).await.unwrap();
    }
    drop(upload.feed);
    let done = upload.response.await.unwrap().unwrap();
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
    assert_eq!(done.headers()["docker-content-digest"], digest.as_str());

    // Then the server exits 0.
    let status = s
        .wait_exit(Duration::from_secs(30))
        .expect("airlock exited after the upload finished");
    assert!(status.success(), "exit status {status}");

    // The blob is there after a restart.
    let again = TestServer::start_in(&s.data_dir, &[]);
    let head = again
        .http
        .head(again.url(&format!("/v2/dev/drain/big/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        (BLOCKS * BLOCK).to_string().as_str()
    );
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let mut s = TestServer::start_with_env(&[("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "600")]);
    s.signal("TERM");
    readyz_turns_draining(&s).await;
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(5))
        .expect("airlock exited within 5 s of the second SIGTERM, not after the 600 s drain");
    // 128 + 15, as a shell reports a process ended by SIGTERM.
    assert_eq!(status.code(), Some(143), "exit status {status}");
}

#[tokio::test]
async fn the_shutdown_timeout_bounds_a_request_that_never_finishes() {
    let mut s = TestServer::start_with_env(&[
        ("AIRLOCK_SHUTDOWN__DRAIN_DELAY_SECS", "0"),
        ("AIRLOCK_SHUTDOWN__TIMEOUT_SECS", "1"),
    ]);
    // A body that stalls (within the 60 s progress timeout): the request would hold the server.
    let upload = start_upload(&s, "dev/drain/stalled", &whole_blob_digest(), 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SIGINT (ctrl-c) shuts down as SIGTERM does.
    s.signal("INT");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("airlock exited once shutdown.timeout_secs ran out");
    assert!(status.success(), "exit status {status}");
    // The stalled request was cut off, not answered as if complete.
    match upload.response.await.unwrap() {
        Err(_) => {}
        Ok(response) => assert_ne!(response.status(), 201),
    }
    drop(upload.feed);
}
