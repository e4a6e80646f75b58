//! Slow, idle and too many connections: a header that never completes and an idle keep-alive
//! connection are closed after the header timeout, and connections beyond the cap are refused
//! with 503 and reported in the log (once per interval, not once per connection). A request body
//! that is not an upload's must arrive in full within the request body timeout (408 and closed
//! otherwise) and is bounded in size; an upload chunk may take longer while it keeps delivering.

use crate::common;

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

/// Sends `header`, then trickles one byte of body every 300 ms until the server ends the
/// connection; returns how long that took (from the header) and what the server sent. Fails if
/// the connection is still open after `limit`.
async fn trickle_body(host: &str, header: &str, limit: Duration) -> (Duration, String) {
    let stream = TcpStream::connect(host).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(header.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        // Until the end of the stream or a reset (the server closes with body bytes unread).
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    trickler.abort();
    assert!(
        read.is_ok(),
        "the server kept a trickled request body open for {limit:?} (got so far: {})",
        String::from_utf8_lossy(&received)
    );
    (
        started.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

#[tokio::test]
async fn a_trickled_request_body_is_cut_off_at_the_request_body_timeout() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_LIMITS__REQUEST_BODY_TIMEOUT_SECS", "1"),
        ("AIRLOCK_LIMITS__BODY_TIMEOUT_SECS", "30"),
    ]);
    // A login form that claims 2 MB and arrives a byte at a time, without credentials.
    let (waited, answer) = trickle_body(
        &s.host,
        "POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 2000000\r\n\r\n",
        Duration::from_secs(8),
    )
    .await;
    assert!(
        waited >= Duration::from_millis(800),
        "closed after {waited:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("limits.request_body_timeout_secs"),
        "{answer}"
    );

    // The same for the JSON API and a manifest (not an upload), with credentials.
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("admin:{}", common::ADMIN_PASSWORD),
    );
    for (target, content_type) in [
        ("/api/v1/keys", "application/json"),
        (
            "/v2/dev/team/app/manifests/v1",
            "application/vnd.oci.image.manifest.v1+json",
        ),
    ] {
        let (waited, answer) = trickle_body(
            &s.host,
            &format!("{} {target} HTTP/1.1\r\nhost: x\r\nauthorization: Basic {basic}\r\ncontent-type: {content_type}\r\ncontent-length: 100000\r\n\r\n", if target.starts_with("/v2/") { "PUT" } else { "POST" }),
            Duration::from_secs(8),
        )
        .await;
        assert!(
            waited >= Duration::from_millis(800),
            "{target}: closed after {waited:?}"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{target}: {answer}");
    }

    // A form or JSON body is also bounded in size (2 MiB): a larger one is refused once 2 MiB
    // arrived.
    for (target, content_type) in [
        ("/auth/token", "application/x-www-form-urlencoded"),
        ("/api/v1/users", "application/json"),
    ] {
        let stream = TcpStream::connect(&s.host).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let header = format!(
            "POST {target} HTTP/1.1\r\nhost: x\r\nauthorization: Basic {basic}\r\ncontent-type: {content_type}\r\ncontent-length: 3000000\r\n\r\n"
        );
        // The writer stays open after sending: a half-closed connection ends the request.
        let sender = tokio::spawn(async move {
            writer.write_all(header.as_bytes()).await?;
            writer.write_all(&vec![b'a'; 3_000_000]).await?;
            Ok::<_, std::io::Error>(writer)
        });
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(8), reader.read(&mut answer))
            .await
            .expect("an answer")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{target}: {answer}");
        sender.abort();
    }

    // The server itself is fine.
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn an_upload_chunk_may_take_longer_than_the_request_body_timeout() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_LIMITS__REQUEST_BODY_TIMEOUT_SECS", "1"),
        ("AIRLOCK_LIMITS__BODY_TIMEOUT_SECS", "30"),
    ]);
    let started = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("admin:{}", common::ADMIN_PASSWORD),
    );
    // Eight bytes over about 2.4 s: slower than the request body timeout, never stalled.
    let mut stream = TcpStream::connect(&s.host).await.unwrap();
    stream
        .write_all(format!("PATCH {location} HTTP/1.1\r\nhost: x\r\nauthorization: Basic {basic}\r\ncontent-type: application/octet-stream\r\ncontent-length: 8\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    for byte in b"abcdefgh" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    let (_, answer) = closed_within(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains("range: 0-7"), "{answer}");
}
