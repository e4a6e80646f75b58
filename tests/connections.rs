//! Slow, idle and too many connections: a header that never completes and an idle keep-alive
//! connection are closed after the header timeout, and connections beyond the cap are refused
//! with 503 and reported in the log (once per interval, not once per connection).

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits until the server closes `stream`; returns how long that took and what it sent.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {limit:?}"
    );
    (
        started.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

#[tokio::test]
async fn half_sent_header_and_idle_connections_are_closed_after_the_header_timeout() {
    let s = TestServer::start_with_env(&[("AIRLOCK_LIMITS__HEADER_READ_TIMEOUT_SECS", "1")]);

    // Half a request header, then nothing.
    let mut slow = TcpStream::connect(&s.host).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let (waited, _) = closed_within(&mut slow, Duration::from_secs(10)).await;
    assert!(
        waited >= Duration::from_millis(800),
        "closed after {waited:?}"
    );

    // A connection that never sends anything.
    let mut silent = TcpStream::connect(&s.host).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(10)).await;

    // A keep-alive connection that goes idle after a complete request.
    let mut idle = TcpStream::connect(&s.host).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = closed_within(&mut idle, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The server itself is fine.
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_with_503_and_logged_once() {
    let (s, log) = TestServer::start_with_log(&[("AIRLOCK_LIMITS__MAX_CONNECTIONS", "2")]);
    // Two clients hold every slot without sending anything.
    let holders = [
        TcpStream::connect(&s.host).await.unwrap(),
        TcpStream::connect(&s.host).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;

    for _ in 0..5 {
        let mut extra = TcpStream::connect(&s.host).await.unwrap();
        extra
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (_, answer) = closed_within(&mut extra, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(answer.contains("limits.max_connections"), "{answer}");
    }
    let mut logged = false;
    for _ in 0..50 {
        if log.contains("connection limit reached") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "the server did not log that it reached its limit");
    assert_eq!(
        log.count("connection limit reached"),
        1,
        "five refusals within the interval are one log line"
    );

    // A freed slot serves again.
    drop(holders);
    let mut served = false;
    for _ in 0..50 {
        if let Ok(response) = s.anonymous.get(s.url("/healthz")).send().await
            && response.status() == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "the server did not serve again after slots were freed"
    );
}

#[tokio::test]
async fn a_flood_of_idle_connections_meets_the_cap_before_the_descriptor_limit() {
    // 400 files: the cap becomes 400 - 256 = 144 connections, whatever max_connections says.
    let (s, log) = TestServer::start_with_open_files_limit(400, &[]);
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.push(TcpStream::connect(&s.host).await.unwrap());
    }
    // A new client gets an answer (503), not a connection stuck in the accept queue. (Refusals
    // in progress are bounded; give the ones for the flood time to finish.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut extra = TcpStream::connect(&s.host).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (_, answer) = closed_within(&mut extra, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    // Once the flood is gone the server works, files and all: it never ran out of descriptors.
    drop(flood);
    let mut pushed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = s
            .http
            .post(s.url(&format!(
                "/v2/dev/team/app/blobs/uploads/?digest={}",
                common::sha256(b"after the flood")
            )))
            .body("after the flood")
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 201
        {
            pushed = true;
            break;
        }
    }
    assert!(pushed, "the server did not recover after the flood");
    assert!(
        !log.contains("accepting a connection failed"),
        "the server ran out of file descriptors"
    );
    assert!(
        log.contains("serving at most 144 connections"),
        "the server did not say it lowered the cap"
    );
}
