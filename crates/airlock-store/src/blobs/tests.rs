//! The blob store on a local directory, and on S3 when a test server is given.

use super::*;

/// `n` chunks under their fixed names.
fn fixed(n: usize) -> Vec<String> {
    vec![String::new(); n]
}

/// `bytes` as a request body in pieces of 64 KiB.
fn owned(bytes: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(64 * 1024)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    futures::stream::iter(pieces)
}

fn chunks(
    parts: &[&'static [u8]],
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p)))
            .collect::<Vec<_>>(),
    )
}

async fn read_all(store: &BlobStore, digest: &Digest, range: Option<BlobRange>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = store.read(digest, range).await.unwrap();
    while let Some(b) = s.try_next().await.unwrap() {
        out.extend_from_slice(&b);
    }
    out
}

#[tokio::test]
async fn a_removed_or_replaced_blob_directory_refuses_writes_and_is_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = BlobStore::local(&root).unwrap();
    store.probe_write().await.unwrap();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    store
        .write_chunk(Uuid::new_v4(), 0, "", chunks(&[b"kept"]), &mut d)
        .await
        .unwrap();

    std::fs::remove_dir_all(&root).unwrap();
    let refused = store.probe_write().await.unwrap_err();
    assert!(
        matches!(
            refused.write_refusal(),
            Some(crate::WriteRefusal::BlobDirectoryRemoved)
        ),
        "{refused}"
    );
    let refused = store
        .write_chunk(Uuid::new_v4(), 0, "", chunks(&[b"lost"]), &mut d)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("was removed"), "{refused}");
    let digest = Digest::sha256_of(b"doc");
    assert!(
        store
            .put_small(&digest, Bytes::from_static(b"doc"))
            .await
            .is_err()
    );
    assert!(!root.exists(), "a refused write recreated the directory");

    std::fs::create_dir(&root).unwrap();
    let refused = store.probe_write().await.unwrap_err();
    assert!(
        matches!(
            refused.write_refusal(),
            Some(crate::WriteRefusal::BlobDirectoryReplaced)
        ),
        "{refused}"
    );
    assert!(
        store
            .commit_upload(Uuid::new_v4(), &[], &digest)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn chunked_upload_commits_concatenation_and_cleans_staging() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let id = Uuid::new_v4();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    store
        .write_chunk(id, 0, "", chunks(&[b"hello ", b"big "]), &mut d)
        .await
        .unwrap();
    store
        .write_chunk(id, 1, "", chunks(&[b"world"]), &mut d)
        .await
        .unwrap();
    let digest = d.finish();
    assert_eq!(digest, Digest::sha256_of(b"hello big world"));
    assert_eq!(
        store
            .digest_upload(id, &fixed(2), DigestAlgorithm::Sha256)
            .await
            .unwrap(),
        digest
    );
    store.commit_upload(id, &fixed(2), &digest).await.unwrap();
    assert_eq!(read_all(&store, &digest, None).await, b"hello big world");
    assert_eq!(
        read_all(&store, &digest, Some(BlobRange { start: 6, end: 9 })).await,
        b"big"
    );
    assert_eq!(store.size(&digest).await.unwrap(), Some(15));
    assert!(!dir.path().join("uploads").join(id.to_string()).exists());
}

#[tokio::test]
async fn single_chunk_upload_is_renamed_and_discard_removes_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let id = Uuid::new_v4();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    store
        .write_chunk(id, 0, "", chunks(&[b"abc"]), &mut d)
        .await
        .unwrap();
    let digest = d.finish();
    store.commit_upload(id, &fixed(1), &digest).await.unwrap();
    assert_eq!(read_all(&store, &digest, None).await, b"abc");

    let other = Uuid::new_v4();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    store
        .write_chunk(other, 0, "", chunks(&[b"xyz"]), &mut d)
        .await
        .unwrap();
    store.discard_upload(other, &fixed(1)).await.unwrap();
    assert!(!dir.path().join("uploads").join(other.to_string()).exists());
    assert_eq!(store.size(&Digest::sha256_of(b"xyz")).await.unwrap(), None);
}

// ---- the same store on S3, when a test server is given (`eval "$(scripts/test-s3)"`) ----

/// A blob store in a fresh bucket of the test server (under a prefix), or `None` (with a notice)
/// when there is none and `AIRLOCK_INTEROP` does not require one.
async fn s3_store(redirect_ttl: Option<std::time::Duration>) -> Option<BlobStore> {
    use crate::test_support::TestS3;
    let server = match TestS3::from_env() {
        Ok(server) => server,
        Err(err) if std::env::var("AIRLOCK_INTEROP").as_deref() == Ok("required") => {
            panic!("AIRLOCK_INTEROP=required: {err}")
        }
        Err(err) => {
            eprintln!("NOTICE: skipping S3 test: {err}");
            return None;
        }
    };
    let bucket = TestS3::fresh_bucket_name();
    server.create_bucket(&bucket).await.unwrap();
    let location: S3Location = format!("s3://{bucket}/airlock").parse().unwrap();
    Some(
        BlobStore::s3(&location, &server.options(redirect_ttl), std::env::vars())
            .await
            .unwrap(),
    )
}

/// `total` bytes of a pattern that differs per position (so a misplaced part shows).
fn pattern(total: usize) -> Vec<u8> {
    (0..total)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// Uploads `content` in chunks of `chunk` bytes, each chunk's body in pieces of at most 64 KiB
/// (as a client's body arrives), and commits it.
async fn upload_in_chunks(store: &BlobStore, content: &[u8], chunk: usize) -> Digest {
    let id = Uuid::new_v4();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    let mut count = 0;
    for piece in content.chunks(chunk) {
        let body: Vec<Result<Bytes, std::io::Error>> = piece
            .chunks(64 * 1024)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let written = store
            .write_chunk(id, count, "", futures::stream::iter(body), &mut d)
            .await
            .unwrap();
        assert_eq!(written, piece.len() as u64);
        count += 1;
    }
    let digest = d.finish();
    assert_eq!(digest, Digest::sha256_of(content));
    store
        .commit_upload(id, &fixed(count as usize), &digest)
        .await
        .unwrap();
    let staged: Vec<_> = store
        .store
        .list(Some(&Path::from(format!("uploads/{id}"))))
        .try_collect()
        .await
        .unwrap();
    assert!(staged.is_empty(), "staging left behind: {staged:?}");
    digest
}

#[tokio::test]
async fn s3_uploads_of_any_chunk_size_commit_the_exact_bytes() {
    let Some(store) = s3_store(None).await else {
        return;
    };
    let cases: [(&str, usize, usize); 5] = [
        ("1-byte chunks", 5, 1),
        ("100 KiB chunks", 350 * 1024, 100 * 1024),
        (
            "7 MiB chunks (parts of 8 MiB cut across them)",
            15 * 1024 * 1024 + 3,
            7 * 1024 * 1024,
        ),
        (
            "one chunk over the part size (multipart chunk, copied)",
            9 * 1024 * 1024,
            9 * 1024 * 1024,
        ),
        ("one small chunk", 1000, 1000),
    ];
    for (name, total, chunk) in cases {
        let content = pattern(total);
        let digest = upload_in_chunks(&store, &content, chunk).await;
        assert_eq!(
            store.size(&digest).await.unwrap(),
            Some(total as u64),
            "{name}"
        );
        assert!(
            read_all(&store, &digest, None).await == content,
            "{name}: bytes differ"
        );
        let range = BlobRange {
            start: total as u64 / 3,
            end: total as u64 / 3 + 2,
        };
        assert_eq!(
            read_all(&store, &digest, Some(range)).await,
            content[range.start as usize..range.end as usize],
            "{name}: range"
        );
    }
    let listed = store.list_blobs().await.unwrap();
    assert_eq!(listed.len(), 5);
    let now = crate::now_millis();
    assert!(
        listed
            .iter()
            .all(|f| (now - f.modified_millis).abs() < 10 * 60 * 1000),
        "last-modified times from the bucket: {listed:?}"
    );
    store.delete(&listed[0].digest).await.unwrap();
    assert_eq!(store.size(&listed[0].digest).await.unwrap(), None);
    assert_eq!(store.list_blobs().await.unwrap().len(), 4);
}

#[tokio::test]
async fn s3_join_that_reads_back_other_bytes_commits_nothing() {
    let Some(store) = s3_store(None).await else {
        return;
    };
    let id = Uuid::new_v4();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    for (n, part) in [b"first ".as_slice(), b"second"].into_iter().enumerate() {
        store
            .write_chunk(id, n as u32, "", chunks(&[part]), &mut d)
            .await
            .unwrap();
    }
    let claimed = Digest::sha256_of(b"something else");
    let err = store
        .commit_upload(id, &fixed(2), &claimed)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was committed"), "{err}");
    assert_eq!(store.size(&claimed).await.unwrap(), None);
    let pending: Vec<_> = store
        .store
        .list(Some(&Path::from("blobs")))
        .try_collect()
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

/// A body that yields `good` bytes and then breaks off, as a client that goes away.
fn broken_body(good: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::iter(vec![
        Ok(Bytes::from(pattern(good))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ])
}

#[tokio::test]
async fn s3_broken_chunks_leave_no_object() {
    let Some(store) = s3_store(None).await else {
        return;
    };
    let id = Uuid::new_v4();
    for (n, good) in [(0u32, 1000usize), (1, PART_SIZE + 1000)] {
        let mut d = Digester::new(DigestAlgorithm::Sha256);
        let err = store
            .write_chunk(id, n, "", broken_body(good), &mut d)
            .await
            .unwrap_err();
        assert!(matches!(err, ChunkWriteError::Body(_)), "{err}");
    }
    let left: Vec<_> = store.store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn s3_presigned_urls_serve_the_blob_without_credentials() {
    let Some(store) = s3_store(Some(std::time::Duration::from_secs(60))).await else {
        return;
    };
    let content = pattern(300 * 1024);
    let digest = upload_in_chunks(&store, &content, 128 * 1024).await;
    let url = store.presigned_get(&digest).await.unwrap().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap() == content);
    let part = client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), content[10..20]);
    // Signed for GET: the same URL does not delete or overwrite.
    let put = client.put(&url).body("x").send().await.unwrap();
    assert!(put.status().is_client_error(), "{}", put.status());
    assert_eq!(
        store.size(&digest).await.unwrap(),
        Some(content.len() as u64)
    );

    let plain = s3_store(None).await.unwrap();
    assert_eq!(plain.presigned_get(&digest).await.unwrap(), None);
}

/// Wrong credentials fail when the store opens, naming the location and never the secret. (A
/// bucket that does not exist fails the same way on S3, but the test server creates buckets on
/// first write, so that is not checked here: docs/storage.md.)
#[tokio::test]
async fn s3_wrong_credentials_fail_at_open_naming_the_location() {
    use crate::test_support::TestS3;
    let Ok(server) = TestS3::from_env() else {
        eprintln!("NOTICE: skipping S3 test: AIRLOCK_TEST_S3_ENDPOINT is not set");
        return;
    };
    let bucket = TestS3::fresh_bucket_name();
    server.create_bucket(&bucket).await.unwrap();
    let location: S3Location = format!("s3://{bucket}/airlock").parse().unwrap();
    let wrong = [
        ("AWS_ACCESS_KEY_ID".to_string(), "wrong-key".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "wrong-secret".to_string(),
        ),
    ];
    let Err(err) = BlobStore::s3(&location, &server.options(None), wrong).await else {
        panic!("a store with wrong credentials opened");
    };
    assert!(matches!(err, StoreError::BlobStoreUnusable { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("s3://{bucket}/airlock")),
        "{message}"
    );
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
    assert!(!message.contains("wrong-secret"), "{message}");
}

/// A chunk a dying process wrote but never recorded (not in the session's count) is removed
/// with the session.
#[tokio::test]
async fn s3_discarding_an_upload_removes_unrecorded_chunks_too() {
    let Some(store) = s3_store(None).await else {
        return;
    };
    let id = Uuid::new_v4();
    let mut d = Digester::new(DigestAlgorithm::Sha256);
    for n in 0..3 {
        store
            .write_chunk(id, n, "", chunks(&[b"piece"]), &mut d)
            .await
            .unwrap();
    }
    store.discard_upload(id, &fixed(2)).await.unwrap();
    let left: Vec<_> = store.store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// `airlock migrate-store`'s blob copy from a local directory into S3: a blob larger than one
/// part arrives whole and is then skipped as already there; a damaged file is refused and leaves
/// no object behind.
#[tokio::test]
async fn s3_copy_from_a_local_store_verifies_each_blob() {
    let Some(target) = s3_store(None).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = BlobStore::local(dir.path()).unwrap();
    let content = pattern(PART_SIZE + 1234);
    let digest = upload_in_chunks(&source, &content, content.len()).await;
    assert_eq!(
        target.copy_blob_from(&source, &digest).await.unwrap(),
        BlobCopy::Copied(content.len() as u64)
    );
    assert_eq!(read_all(&target, &digest, None).await, content);
    assert_eq!(
        target.copy_blob_from(&source, &digest).await.unwrap(),
        BlobCopy::AlreadyThere(content.len() as u64)
    );

    let damaged = upload_in_chunks(&source, b"evidence bytes", 64).await;
    std::fs::write(local_blob_file(dir.path(), &damaged), b"evidence byteZ").unwrap();
    let refused = target.copy_blob_from(&source, &damaged).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    assert_eq!(target.size(&damaged).await.unwrap(), None);

    let missing = Digest::sha256_of(b"never stored");
    let refused = target.copy_blob_from(&source, &missing).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
}

/// Two replicas (two blob stores on one bucket, one database) append chunk 0 of the same upload
/// at once, with different bytes and lengths: each writes its own object, the first to record
/// wins the compare-and-set with its attempt, the loser deletes its object, and the blob
/// committed (by the loser's process, which holds no running hash: a streaming read in ranged
/// GETs verifies it) is exactly the winner's bytes.
#[tokio::test]
async fn s3_two_replicas_racing_for_one_chunk_commit_the_winners_bytes() {
    let Some(first) = s3_store(None).await else {
        return;
    };
    let second = BlobStore::from_object_store(first.store.clone());
    two_replicas_race_for_one_chunk(first, second).await;
}

/// The same race on one local directory shared by two replicas (on PostgreSQL): each attempt
/// writes a file of its own, the loser's deletion leaves the winner's file (and the session's
/// directory) in place.
#[tokio::test]
async fn local_two_replicas_racing_for_one_chunk_commit_the_winners_bytes() {
    let shared = tempfile::tempdir().unwrap();
    let first = BlobStore::local(shared.path()).unwrap();
    let second = BlobStore::local(shared.path()).unwrap();
    two_replicas_race_for_one_chunk(first, second).await;
}

async fn two_replicas_race_for_one_chunk(first: BlobStore, second: BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let meta = crate::Metadata::open_sqlite(&dir.path().join("m.db"))
        .await
        .unwrap();
    let repo: airlock_core::RepoName = "dev/team/app".parse().unwrap();
    let id = Uuid::new_v4();
    meta.create_upload(id, &repo, "tester").await.unwrap();

    // The winner's chunk spans two read ranges; the loser's is shorter and different.
    let winner_bytes = pattern(READ_RANGE as usize + 4321);
    let loser_bytes = b"the loser's bytes".to_vec();
    let (a, b) = (first.chunk_attempt(), second.chunk_attempt());
    assert_ne!(a, b);
    let mut da = Digester::new(DigestAlgorithm::Sha256);
    let mut db = Digester::new(DigestAlgorithm::Sha256);
    let (written_a, written_b) = tokio::join!(
        first.write_chunk(id, 0, &a, owned(&winner_bytes), &mut da),
        second.write_chunk(id, 0, &b, owned(&loser_bytes), &mut db),
    );
    let (written_a, written_b) = (written_a.unwrap(), written_b.unwrap());
    assert!(
        meta.record_chunk(id, 0, written_a, 1, &a).await.unwrap(),
        "the first record wins"
    );
    assert!(
        !meta.record_chunk(id, 0, written_b, 1, &b).await.unwrap(),
        "the second finds the size moved"
    );
    second.discard_chunk(id, 0, &b).await.unwrap();
    assert!(matches!(
        first.store.head(&chunk_path(id, 0, &b)).await,
        Err(object_store::Error::NotFound { .. })
    ));

    let session = meta.upload(id).await.unwrap().unwrap();
    assert_eq!(session.size, winner_bytes.len() as u64);
    assert_eq!(session.chunk_attempts, vec![a.clone()]);
    let digest = second
        .digest_upload(id, &session.chunk_attempts, DigestAlgorithm::Sha256)
        .await
        .unwrap();
    assert_eq!(digest, Digest::sha256_of(&winner_bytes));
    second
        .commit_upload(id, &session.chunk_attempts, &digest)
        .await
        .unwrap();
    assert_eq!(read_all(&first, &digest, None).await, winner_bytes);
    let staged: Vec<_> = first
        .store
        .list(Some(&Path::from(format!("uploads/{id}"))))
        .try_collect()
        .await
        .unwrap();
    assert!(staged.is_empty(), "{staged:?}");
}

/// A local blob of several read pieces (and a partial last one) streams whole and by any range,
/// including ranges that start, end or cross inside a piece, and no piece exceeds the read size.
#[tokio::test]
async fn local_reads_of_several_pieces_serve_every_range_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let piece = local::READ_SIZE;
    let content = pattern(2 * piece as usize + 12_345);
    let total = content.len() as u64;
    let digest = upload_in_chunks(&store, &content, content.len()).await;
    assert_eq!(read_all(&store, &digest, None).await, content);
    for (start, end) in [
        (0, 1),
        (piece - 10, piece + 10),
        (piece, 2 * piece),
        (1, total),
        (2 * piece + 1, total),
        (total - 1, total),
    ] {
        let got = read_all(&store, &digest, Some(BlobRange { start, end })).await;
        assert!(
            got == content[start as usize..end as usize],
            "range {start}..{end}: {} bytes, not the blob's",
            got.len()
        );
    }
    let mut stream = store.read(&digest, None).await.unwrap();
    let mut pieces = 0;
    while let Some(bytes) = stream.try_next().await.unwrap() {
        assert!(
            bytes.len() as u64 <= piece,
            "a piece of {} bytes",
            bytes.len()
        );
        pieces += 1;
    }
    assert_eq!(pieces, 3);
}

/// A local blob file cut short while it is being read (damaged storage) ends the download with
/// an error, never with a body that merely stops early.
#[tokio::test]
async fn a_local_blob_file_cut_short_while_read_fails_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::local(dir.path()).unwrap();
    let piece = local::READ_SIZE as usize;
    let content = pattern(3 * piece);
    let digest = upload_in_chunks(&store, &content, content.len()).await;
    let mut stream = store.read(&digest, None).await.unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(first.as_ref(), &content[..piece]);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(local_blob_file(
            &dir.path().canonicalize().unwrap(),
            &digest,
        ))
        .unwrap();
    file.set_len(piece as u64 + 5).unwrap();
    let mut received = first.len();
    let failed = loop {
        match stream.try_next().await {
            Ok(Some(bytes)) => received += bytes.len(),
            Ok(None) => break false,
            Err(err) => break err.kind() == std::io::ErrorKind::UnexpectedEof,
        }
    };
    assert!(
        failed,
        "the stream ended without an error after {received} bytes"
    );
    assert!(received < content.len());
}
