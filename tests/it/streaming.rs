//! Blobs stream through airlock: a 1 GiB blob goes up in two chunks and comes back down while the
//! server's peak memory stays far below the blob size.

use crate::common;

use common::TestServer;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

const CHUNK: usize = 1024 * 1024;
/// 1 GiB in total, sent as two PATCH requests of 512 MiB (exercising the multi-chunk commit).
const CHUNKS_PER_PATCH: usize = 512;
const PEAK_RSS_LIMIT_KIB: u64 = 200 * 1024;

/// 1 MiB blocks, each distinct (its index is stamped into its first bytes), cheap to generate.
fn block(base: &[u8], index: usize) -> bytes::Bytes {
    let mut block = base.to_vec();
    block[..8].copy_from_slice(&(index as u64).to_le_bytes());
    bytes::Bytes::from(block)
}

#[tokio::test]
async fn one_gib_blob_streams_up_and_down_in_bounded_memory() {
    let s = TestServer::start();
    let base: Vec<u8> = (0..CHUNK).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut expected = Sha256::new();
    for i in 0..2 * CHUNKS_PER_PATCH {
        expected.update(block(&base, i));
    }
    let digest = format!("sha256:{}", hex::encode(expected.finalize()));

    let start = s
        .http
        .post(s.url("/v2/dev/big/blob/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let mut location = s.location(&start);
    for part in 0..2 {
        let base = base.clone();
        let body = futures::stream::iter(0..CHUNKS_PER_PATCH)
            .map(move |i| Ok::<_, std::io::Error>(block(&base, part * CHUNKS_PER_PATCH + i)));
        let r = s
            .http
            .patch(&location)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        location = s.location(&r);
    }
    let done = s
        .http
        .put(format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());

    let response = s
        .http
        .get(s.url(&format!("/v2/dev/big/blob/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.content_length(),
        Some((2 * CHUNKS_PER_PATCH * CHUNK) as u64)
    );
    let mut received = Sha256::new();
    let mut length = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.unwrap();
        length += bytes.len() as u64;
        received.update(&bytes);
    }
    assert_eq!(length, (2 * CHUNKS_PER_PATCH * CHUNK) as u64);
    assert_eq!(
        format!("sha256:{}", hex::encode(received.finalize())),
        digest
    );

    let peak = s.peak_rss_kib();
    eprintln!(
        "server peak RSS after a 1 GiB upload and download: {} MiB",
        peak / 1024
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "server peak RSS {peak} KiB is not far below the 1 GiB blob"
    );
}
