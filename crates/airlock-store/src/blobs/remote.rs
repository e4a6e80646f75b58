//! Uploads on a remote object store (S3): each chunk an object, joined at commit.
//!
//! An OCI client sends a blob in chunks of any size (1 byte, 100 KiB, 7 MiB, or all at once),
//! one request each, and with several replicas each request may reach another process. S3's
//! multipart parts must be at least 5 MiB except the last, so a chunk cannot simply become a part.
//! The CNCF distribution registry's S3 driver keeps one multipart upload open per session and,
//! when a chunk arrives after a short last part, reads that part back and uploads it again with
//! the new bytes. airlock keeps every chunk as its own object (`uploads/<session>/<n>-<attempt>`)
//! instead and joins them once, at commit:
//! - every attempt at a chunk writes an object of its own, and the attempt is recorded with the
//!   session's new size in one compare-and-set: when two replicas write chunk `n` of one session
//!   at once, the loser's compare-and-set fails and it deletes its object, and the recorded size
//!   counts exactly the winner's bytes (with one name per chunk, the loser's bytes could replace
//!   the winner's under the size the winner recorded);
//! - a request holds nothing between requests, so any replica can take the next chunk, and a
//!   crash loses only the chunk in flight (the client resumes from the recorded size);
//! - no byte is uploaded twice while the session is open (re-uploading the short tail costs
//!   quadratic traffic for many small chunks);
//! - a chunk is written with one `PUT` when it is smaller than [`PART_SIZE`], else through a
//!   multipart upload of [`PART_SIZE`] parts;
//! - the commit of a one-chunk upload (what skopeo, podman and containerd send) is a server-side
//!   copy of an object no one writes again, verified before it by the running hash of the
//!   process that took the chunk or, in another process, by a streaming read in ranged GETs
//!   hashed as they arrive (`BlobStore::digest_upload`, memory bounded); the commit of several chunks streams them, in order, into one multipart upload of the
//!   blob's path with [`PART_SIZE`] parts ([`WriteMultipart`] buffers to the part size, at most
//!   [`PARTS_IN_FLIGHT`] parts in flight), hashing what it copies: if the bytes read back do not
//!   hash to the verified digest the multipart upload is aborted. The blob's object appears only
//!   when S3 completes the multipart upload, whole, or not at all.
//!
//! The price: a multi-chunk upload's bytes are read back from the bucket once at commit. A
//! crash during a commit leaves an incomplete multipart upload that S3 never shows; a bucket
//! lifecycle rule (`AbortIncompleteMultipartUpload`) removes its parts (docs/storage.md).

use airlock_core::{Digest, Digester};
use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::{ChunkWriteError, PART_SIZE, PARTS_IN_FLIGHT};
use crate::error::StoreError;

/// The largest object S3 copies in one `CopyObject` request (5 GiB); a larger one-chunk upload
/// is joined by streaming instead.
pub(super) const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// Streams one chunk body to the object `location`: buffered up to [`PART_SIZE`] and written
/// with one `PUT` if the body ends by then, else through a multipart upload that is aborted if
/// the body breaks off or storage fails. Feeds `digester`; returns the length (0 stores nothing).
pub(super) async fn write_chunk<S, E>(
    store: &dyn ObjectStore,
    location: &Path,
    body: S,
    digester: &mut Digester,
) -> Result<u64, ChunkWriteError>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut body = std::pin::pin!(body);
    let mut head: Vec<Bytes> = Vec::new();
    let mut written = 0u64;
    // The first PART_SIZE bytes: most chunks end here and take a single request.
    while (written as usize) < PART_SIZE {
        match body.next().await {
            None => {
                if written > 0 {
                    store
                        .put(location, PutPayload::from_iter(head))
                        .await
                        .map_err(StoreError::from)?;
                }
                return Ok(written);
            }
            Some(Err(err)) => return Err(ChunkWriteError::Body(Box::new(err))),
            Some(Ok(bytes)) => {
                digester.update(&bytes);
                written += bytes.len() as u64;
                head.push(bytes);
            }
        }
    }
    let handle = store
        .put_multipart(location)
        .await
        .map_err(StoreError::from)?;
    let mut writer = WriteMultipart::new_with_chunk_size(handle, PART_SIZE);
    for bytes in head {
        writer.put(bytes);
    }
    while let Some(next) = body.next().await {
        let bytes = match next {
            Ok(bytes) => bytes,
            Err(err) => {
                let _ = writer.abort().await;
                return Err(ChunkWriteError::Body(Box::new(err)));
            }
        };
        if let Err(err) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = writer.abort().await;
            return Err(StoreError::from(err).into());
        }
        digester.update(&bytes);
        written += bytes.len() as u64;
        writer.put(bytes);
    }
    writer.finish().await.map_err(StoreError::from)?;
    Ok(written)
}

/// Joins the chunk objects `chunks` (in order) into the object `target` through one multipart
/// upload, hashing the bytes as they pass: unless they hash to `digest`, or if anything fails,
/// the multipart upload is aborted and `target` is not written.
pub(super) async fn join_chunks(
    store: &dyn ObjectStore,
    chunks: &[Path],
    target: &Path,
    digest: &Digest,
) -> Result<(), StoreError> {
    let handle = store.put_multipart(target).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(handle, PART_SIZE);
    let mut digester = Digester::new(digest.algorithm());
    let copied = async {
        for chunk in chunks {
            let mut stream = store.get(chunk).await?.into_stream();
            while let Some(bytes) = stream.try_next().await? {
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                digester.update(&bytes);
                writer.put(bytes);
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let joined = match copied {
        Ok(()) => digester.finish(),
        Err(err) => {
            let _ = writer.abort().await;
            return Err(err);
        }
    };
    if &joined != digest {
        let _ = writer.abort().await;
        return Err(StoreError::Corrupt(format!(
            "the staged chunks of blob {digest} read back as {joined}: nothing was committed"
        )));
    }
    writer.finish().await?;
    Ok(())
}

/// Streams `body` into the object `target` through one multipart upload of [`PART_SIZE`] parts
/// (at most [`PARTS_IN_FLIGHT`] in flight), hashing the bytes as they pass: unless they hash to
/// `digest`, or if anything fails, the multipart upload is aborted and `target` is not written.
/// Returns the length.
pub(super) async fn write_verified(
    store: &dyn ObjectStore,
    mut body: super::ByteStream,
    target: &Path,
    digest: &Digest,
) -> Result<u64, StoreError> {
    let handle = store.put_multipart(target).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(handle, PART_SIZE);
    let mut digester = Digester::new(digest.algorithm());
    let mut written = 0u64;
    let copied = async {
        while let Some(bytes) = body.try_next().await? {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            digester.update(&bytes);
            written += bytes.len() as u64;
            writer.put(bytes);
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let read = match copied {
        Ok(()) => digester.finish(),
        Err(err) => {
            let _ = writer.abort().await;
            return Err(err);
        }
    };
    if &read != digest {
        let _ = writer.abort().await;
        return Err(StoreError::Corrupt(format!(
            "the bytes stored as blob {digest} hash to {read}: the file is damaged, nothing was copied"
        )));
    }
    writer.finish().await?;
    Ok(written)
}
