//! Content-addressed blob bytes in an `object_store`.
//!
//! Layout: `blobs/<algorithm>/<first two hex>/<hex>` for committed blobs and
//! `uploads/<session id>/<chunk number>` for upload data. A blob path is only ever written by
//! [`BlobStore::commit_upload`] after the digest was verified, so a visible blob is always whole
//! and correct. Bytes stream through in bounded pieces in both directions.
//!
//! Memory per upload is bounded: on a local directory a chunk goes straight to its file through
//! one [`LOCAL_WRITE_BUFFER`]-sized buffer and several chunks are joined by the kernel
//! (`std::io::copy`), so a parallel upload costs well under 1 MiB of server memory (`local.rs`);
//! on S3 (`s3.rs`) every chunk is an object of its own and several are joined at commit through
//! one multipart upload of [`PART_SIZE`] parts with [`PARTS_IN_FLIGHT`] parts in flight
//! (`remote.rs` says why). A chunk that fails leaves nothing behind, and no staging directory if
//! it was the first.
//!
//! A local store remembers which directory it opened (device and inode): if that directory is
//! removed or replaced while the server runs, chunk writes, commits, small documents and the
//! readiness probe are
//! refused with [`crate::WriteRefusal`] rather than recreating an empty directory and
//! acknowledging pushes while every earlier blob is gone.

mod local;
mod remote;
mod s3;
#[cfg(test)]
mod tests;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use airlock_core::{Digest, DigestAlgorithm, Digester};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;

use crate::error::StoreError;
use local::{
    file_stream, join_local_chunks, remove_dir_if_empty, remove_file_if_present, write_local_chunk,
};
pub use s3::{CREDENTIAL_VARIABLES, REDIRECT_TTL_SECS, S3Location, S3LocationError, S3Options};

/// A stream of blob bytes, as served to clients.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why a chunk was not stored. Either way nothing of it stays staged.
#[derive(Debug, thiserror::Error)]
pub enum ChunkWriteError {
    /// The request body broke off: the client went away, or sent nothing for too long.
    #[error("the request body broke off: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<std::io::Error> for ChunkWriteError {
    fn from(err: std::io::Error) -> Self {
        Self::Store(err.into())
    }
}

impl From<object_store::Error> for ChunkWriteError {
    fn from(err: object_store::Error) -> Self {
        Self::Store(err.into())
    }
}

/// A byte range of a blob, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// A committed blob's file as the blob store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlobFile {
    /// The digest its path names.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (ms since the epoch).
    pub modified_millis: i64,
}

/// An object staged for an upload session (`uploads/<session>/<chunk>[-<attempt>]`) as the blob
/// store lists it, for garbage collection's sweep of staged data no session records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// The session its path names.
    pub upload: Uuid,
    /// The chunk number its name starts with.
    pub chunk: u32,
    /// The attempt its name carries after the chunk number (empty for a fixed chunk name).
    pub attempt: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (ms since the epoch).
    pub modified_millis: i64,
}

impl StagedObject {
    /// Whether `session_attempts` (an upload session's recorded attempts, one per chunk in
    /// order) names this object as its chunk's bytes.
    pub fn is_recorded_in(&self, session_attempts: &[String]) -> bool {
        usize::try_from(self.chunk)
            .ok()
            .and_then(|chunk| session_attempts.get(chunk))
            .is_some_and(|recorded| *recorded == self.attempt)
    }
}

/// What [`BlobStore::copy_blob_from`] did, with the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCopy {
    /// The bytes were copied and verified.
    Copied(u64),
    /// The target held the blob already, with the same size and bytes hashing to its digest.
    AlreadyThere(u64),
    /// The target held an object under the blob's name whose bytes are not the blob (a damaged
    /// or foreign object): it was replaced by the source's verified bytes.
    Replaced(u64),
}

/// How many bytes are buffered before a part is handed to the object store.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload; with [`PART_SIZE`] this bounds an upload's memory to ~24 MiB on
/// a remote object store.
const PARTS_IN_FLIGHT: usize = 2;
/// The one buffer a chunk written to a local file passes through (bytes are copied into it and
/// written on the blocking pool while the next piece arrives).
const LOCAL_WRITE_BUFFER: usize = 256 * 1024;

/// Blob bytes behind the `object_store` abstraction: a local directory, or an S3 bucket.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Presigns blob GETs when redirects to the bucket are on.
    redirects: Option<s3::Redirects>,
    /// Root directory when the store is local, to remove staging leftovers an abort can miss.
    local_root: Option<PathBuf>,
    /// The local root as opened, to refuse writes once it is removed or replaced.
    opened_root: Option<crate::health::BlobDirectory>,
    /// Writes of blob bytes that failed on the storage side, for readiness.
    failures: crate::health::FailureLog,
}

/// Where the audit log identity marker is kept, relative to the blob store's root.
pub const LOG_IDENTITY_PATH: &str = "airlock/log-identity.json";
/// The most bytes of the log identity marker read.
pub const LOG_IDENTITY_LIMIT: u64 = 64 * 1024;

fn blob_path(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from(format!(
        "blobs/{}/{}/{}",
        digest.algorithm().as_str(),
        &hex[..2],
        hex
    ))
}

/// Where a local blob store rooted at `root` keeps the committed blob `digest`
/// (`<root>/blobs/<algorithm>/<first two hex>/<hex>`): backups copy these files.
pub fn local_blob_file(root: &FsPath, digest: &Digest) -> PathBuf {
    root.join(blob_path(digest).as_ref())
}

/// Where chunk `chunk` of `upload` is staged by the attempt named `attempt`: every attempt writes
/// an object (or, in a local directory, a file) of its own (`uploads/<session>/<n>-<attempt>`),
/// so two replicas writing the same chunk of one upload at once (on S3, or on one directory
/// shared by replicas on PostgreSQL) never write the same object, and the attempt recorded with
/// the upload's new size (one compare-and-set) names exactly the bytes that size counts. The
/// loser deletes its object. An empty `attempt` is the fixed name `uploads/<session>/<n>` of
/// sessions recorded before attempts had names.
fn chunk_path(upload: Uuid, chunk: u32, attempt: &str) -> Path {
    if attempt.is_empty() {
        Path::from(format!("uploads/{upload}/{chunk:08}"))
    } else {
        Path::from(format!("uploads/{upload}/{chunk:08}-{attempt}"))
    }
}

/// How many bytes one ranged GET of [`BlobStore::digest_upload`] asks for.
const READ_RANGE: u64 = 8 * 1024 * 1024;

fn io_error(err: object_store::Error) -> std::io::Error {
    std::io::Error::other(err)
}

impl BlobStore {
    /// A blob store in a local directory, created if missing.
    pub fn local(root: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            opened_root: Some(crate::health::BlobDirectory::opened(&root)?),
            local_root: Some(root),
            redirects: None,
            failures: Default::default(),
        })
    }

    /// A blob store in an S3 bucket, under the location's prefix, with credentials from `env`
    /// (only [`CREDENTIAL_VARIABLES`] are read). Checked before it is returned: a one-byte object is
    /// written and deleted, so a wrong endpoint, region, bucket or credential fails here, at start,
    /// with [`StoreError::BlobStoreUnusable`] naming the location.
    pub async fn s3(
        location: &S3Location,
        options: &S3Options,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StoreError> {
        let unusable = |source: StoreError| StoreError::BlobStoreUnusable {
            location: location.to_string(),
            source: Box::new(source),
        };
        let (store, redirects) = s3::build(location, options, env).map_err(unusable)?;
        let blobs = Self {
            store,
            redirects,
            local_root: None,
            opened_root: None,
            failures: Default::default(),
        };
        blobs.probe_write().await.map_err(unusable)?;
        Ok(blobs)
    }

    /// A blob store in an S3 bucket opened only to read it (checking a backup of it): as
    /// [`BlobStore::s3`] but without the test write, so read-only credentials do; a wrong
    /// endpoint or credential shows at the first read instead.
    pub fn s3_for_reading(
        location: &S3Location,
        options: &S3Options,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StoreError> {
        let (store, _) =
            s3::build(location, options, env).map_err(|source| StoreError::BlobStoreUnusable {
                location: location.to_string(),
                source: Box::new(source),
            })?;
        Ok(Self::from_object_store(store))
    }

    /// A blob store over any `object_store` backend.
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            redirects: None,
            local_root: None,
            opened_root: None,
            failures: Default::default(),
        }
    }

    /// Whether blob writes can be kept: fails when the local blob directory opened at start was
    /// removed or replaced (one `stat`). Always passes for other backends.
    pub fn writable(&self) -> Result<(), crate::WriteRefusal> {
        match &self.opened_root {
            Some(root) => root.check(),
            None => Ok(()),
        }
    }

    /// [`BlobStore::writable`] as a storage error (503 for clients).
    fn check_writable(&self) -> Result<(), StoreError> {
        self.writable()
            .map_err(|refusal| StoreError::Io(std::io::Error::other(refusal)))
    }

    /// A new, unique name for one attempt at writing a chunk ([`chunk_path`]).
    pub fn chunk_attempt(&self) -> String {
        Uuid::new_v4().simple().to_string()
    }

    /// Streams one upload chunk into staging as attempt `attempt` ([`BlobStore::chunk_attempt`]),
    /// feeding `digester` as bytes pass. Returns the chunk's length; an empty body stores nothing.
    /// On any error the partial chunk is discarded (with the session's staging directory when this
    /// was its first chunk) and nothing becomes visible.
    pub async fn write_chunk<S, E>(
        &self,
        upload: Uuid,
        chunk: u32,
        attempt: &str,
        body: S,
        digester: &mut Digester,
    ) -> Result<u64, ChunkWriteError>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.check_writable()?;
        if let Some(root) = &self.local_root {
            let dir = root.join("uploads").join(upload.to_string());
            let file = root.join(chunk_path(upload, chunk, attempt).as_ref());
            let result = write_local_chunk(&dir, &file, body, digester).await;
            if let Err(ChunkWriteError::Store(err)) = &result {
                // A storage failure (a full disk), not a client's broken body: readiness hears it.
                self.failures.record("blob store write", err);
            }
            if result.is_err() || matches!(result, Ok(0)) {
                remove_file_if_present(&file).await?;
                if chunk == 0 {
                    remove_dir_if_empty(&dir).await?;
                }
            }
            return result;
        }
        let result = remote::write_chunk(
            self.store.as_ref(),
            &chunk_path(upload, chunk, attempt),
            body,
            digester,
        )
        .await;
        if let Err(ChunkWriteError::Store(err)) = &result {
            self.failures.record("blob store write", err);
        }
        result
    }

    /// Writes and deletes a one-byte object, to learn whether the store takes writes now (a
    /// full disk, a directory that is gone, replaced or read-only). For readiness. A local blob
    /// directory that was removed or replaced fails with [`crate::WriteRefusal`] before anything
    /// is written (so the probe does not recreate it).
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        let probe = Path::from(format!("readiness-probe-{}", Uuid::new_v4()));
        self.store
            .put(&probe, PutPayload::from_static(b"1"))
            .await?;
        self.store.delete(&probe).await?;
        Ok(())
    }

    /// The audit log identity marker (`airlock/log-identity.json`, beside the blobs), if one is
    /// stored: written once by a server on a shared database so that a replica started on a lost
    /// or another database notices that this blob store belongs to another log. At most
    /// [`LOG_IDENTITY_LIMIT`] bytes are read; a larger object is refused as corrupt.
    pub async fn log_identity(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let path = Path::from(LOG_IDENTITY_PATH);
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if result.meta.size > LOG_IDENTITY_LIMIT {
            return Err(StoreError::Corrupt(format!(
                "{LOG_IDENTITY_PATH} in the blob store holds {} bytes, more than a log identity",
                result.meta.size
            )));
        }
        Ok(Some(result.bytes().await?.to_vec()))
    }

    /// Deletes the object at `path` under the prefix, as an operator deletes one by hand (tests).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn delete_path_for_tests(&self, path: &str) -> Result<(), StoreError> {
        Ok(self.store.delete(&Path::from(path)).await?)
    }

    /// Stores the audit log identity marker ([`BlobStore::log_identity`]), replacing any.
    pub async fn put_log_identity(&self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.check_writable()?;
        self.store
            .put(
                &Path::from(LOG_IDENTITY_PATH),
                PutPayload::from_bytes(Bytes::from(bytes)),
            )
            .await?;
        Ok(())
    }

    /// Failed writes of blob bytes (storage side, not a client's broken upload), for readiness.
    pub fn write_failures(&self) -> &crate::health::FailureLog {
        &self.failures
    }

    /// Deletes one staged chunk that was written but not accepted (its length contradicted the
    /// client's `Content-Range`, or another replica recorded a chunk at the same offset first),
    /// with the staging directory when it was the first chunk.
    pub async fn discard_chunk(
        &self,
        upload: Uuid,
        chunk: u32,
        attempt: &str,
    ) -> Result<(), StoreError> {
        match self.store.delete(&chunk_path(upload, chunk, attempt)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        if chunk == 0
            && let Some(root) = &self.local_root
        {
            remove_dir_if_empty(&root.join("uploads").join(upload.to_string())).await?;
        }
        Ok(())
    }

    /// Recomputes an upload's digest from its staged chunks `attempts` (each chunk's attempt, in
    /// order), used when this process does not hold the running hash (another replica took a
    /// chunk, a restart, another algorithm). Each chunk is read in ranged GETs of [`READ_RANGE`]
    /// bytes, hashed as they arrive: memory stays bounded however large the chunk.
    pub async fn digest_upload(
        &self,
        upload: Uuid,
        attempts: &[String],
        algorithm: DigestAlgorithm,
    ) -> Result<Digest, StoreError> {
        let mut digester = Digester::new(algorithm);
        for (chunk, attempt) in (0u32..).zip(attempts) {
            let location = chunk_path(upload, chunk, attempt);
            let size = self.store.head(&location).await?.size;
            let mut start = 0;
            while start < size {
                let end = (start + READ_RANGE).min(size);
                let options = GetOptions {
                    range: Some(GetRange::Bounded(start..end)),
                    ..GetOptions::default()
                };
                let mut stream = self.store.get_opts(&location, options).await?.into_stream();
                while let Some(bytes) = stream.try_next().await? {
                    digester.update(&bytes);
                }
                start = end;
            }
        }
        Ok(digester.finish())
    }

    /// Makes a verified upload visible as `digest`. On a local directory a single chunk (the
    /// common case) is renamed and several are joined by the kernel; on S3 a single chunk is
    /// copied by the bucket and several are joined through one multipart upload that re-hashes
    /// the bytes and is aborted unless they are `digest` (`remote.rs`). Staging data is removed
    /// afterwards.
    ///
    /// `attempts` names each recorded chunk's attempt, in order. Chunk objects are never written
    /// twice under one name, so the bytes copied are the bytes the caller verified.
    pub async fn commit_upload(
        &self,
        upload: Uuid,
        attempts: &[String],
        digest: &Digest,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        let target = blob_path(digest);
        match (attempts, &self.local_root) {
            ([], _) => {
                self.store.put(&target, PutPayload::new()).await?;
            }
            ([attempt], Some(_)) => {
                self.store
                    .rename(&chunk_path(upload, 0, attempt), &target)
                    .await?;
            }
            (_, Some(root)) => {
                let parts = (0u32..)
                    .zip(attempts)
                    .map(|(chunk, attempt)| chunk_path(upload, chunk, attempt))
                    .collect();
                join_local_chunks(root.clone(), upload, parts, target).await?;
            }
            ([attempt], None)
                if self.store.head(&chunk_path(upload, 0, attempt)).await?.size
                    <= remote::MAX_SINGLE_COPY =>
            {
                self.store
                    .copy(&chunk_path(upload, 0, attempt), &target)
                    .await?;
            }
            (_, None) => {
                let parts: Vec<Path> = (0u32..)
                    .zip(attempts)
                    .map(|(n, attempt)| chunk_path(upload, n, attempt))
                    .collect();
                remote::join_chunks(self.store.as_ref(), &parts, &target, digest).await?;
            }
        }
        self.discard_upload(upload, attempts).await
    }

    /// Deletes an upload's staged data (cancel, failed verification, expiry): the chunks
    /// `attempts` names and, on S3, whatever else is under the session's prefix.
    pub async fn discard_upload(
        &self,
        upload: Uuid,
        attempts: &[String],
    ) -> Result<(), StoreError> {
        for (chunk, attempt) in (0u32..).zip(attempts) {
            match self.store.delete(&chunk_path(upload, chunk, attempt)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if let Some(root) = &self.local_root {
            let dir = root.join("uploads").join(upload.to_string());
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        } else {
            // A chunk written by a process that died before recording it, or by the loser of a
            // race for the same offset, is not among `attempts`: whatever is left under the
            // session's prefix goes too.
            let prefix = Path::from(format!("uploads/{upload}"));
            let left: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            for object in left {
                match self.store.delete(&object.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(())
    }

    /// The stored size of a committed blob, or `None` if its bytes are absent.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self.store.head(&blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Streams a committed blob, or a range of it.
    pub async fn read(
        &self,
        digest: &Digest,
        range: Option<BlobRange>,
    ) -> Result<ByteStream, StoreError> {
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end)),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&blob_path(digest), options).await?;
        match result.payload {
            // A local file: read it in large pieces (object_store's own stream reads 8 KiB at a
            // time, which caps downloads at a fraction of what the disk and socket can do).
            object_store::GetResultPayload::File(file, _) => Ok(file_stream(file, result.range)),
            object_store::GetResultPayload::Stream(stream) => Ok(stream.map_err(io_error).boxed()),
        }
    }

    /// Stores a small document (e.g. an evidence envelope from the API) as blob `digest`. The
    /// caller has checked that `bytes` hash to `digest`; content addressing makes rewriting the
    /// same digest harmless.
    pub async fn put_small(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError> {
        self.check_writable()?;
        self.store
            .put(&blob_path(digest), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Reads a whole blob into memory if it is at most `limit` bytes (`Ok(None)` if larger), for
    /// documents that must be parsed whole, such as signature payloads and DSSE envelopes.
    pub async fn read_bounded(
        &self,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.size(digest).await? {
            None => Err(StoreError::Corrupt(format!("blob {digest} has no bytes"))),
            Some(size) if size > limit => Ok(None),
            Some(size) => {
                let mut stream = self.read(digest, None).await?;
                let mut out = Vec::with_capacity(size as usize);
                while let Some(piece) = stream.try_next().await? {
                    if out.len() + piece.len() > limit as usize {
                        return Ok(None);
                    }
                    out.extend_from_slice(&piece);
                }
                Ok(Some(out))
            }
        }
    }

    /// Every committed blob file: its digest, size and last modification (ms since the epoch),
    /// for garbage collection's sweep of files no row names. Paths that are not a blob's (a
    /// stray file) are skipped. The listing is held in memory: about 100 bytes per blob.
    pub async fn list_blobs(&self) -> Result<Vec<StoredBlobFile>, StoreError> {
        let prefix = Path::from("blobs");
        let mut listing = self.store.list(Some(&prefix));
        let mut files = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            let parts: Vec<&str> = meta.location.as_ref().split('/').collect();
            let [_, algorithm, _, hex] = parts.as_slice() else {
                continue;
            };
            let Ok(digest) = format!("{algorithm}:{hex}").parse::<Digest>() else {
                continue;
            };
            if blob_path(&digest) != meta.location {
                continue;
            }
            files.push(StoredBlobFile {
                digest,
                size: meta.size,
                modified_millis: meta.last_modified.timestamp_millis(),
            });
        }
        files.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(files)
    }

    /// Every object staged for an upload session ([`StagedObject`]), sorted by session and chunk.
    /// Paths under `uploads/` that are not a chunk's name are skipped. The listing is held in
    /// memory: about 100 bytes per staged chunk.
    pub async fn list_staged(&self) -> Result<Vec<StagedObject>, StoreError> {
        let prefix = Path::from("uploads");
        let mut listing = self.store.list(Some(&prefix));
        let mut staged = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            let parts: Vec<&str> = meta.location.as_ref().split('/').collect();
            let [_, session, name] = parts.as_slice() else {
                continue;
            };
            let Ok(upload) = session.parse::<Uuid>() else {
                continue;
            };
            let (number, attempt) = name.split_once('-').unwrap_or((name, ""));
            let Ok(chunk) = number.parse::<u32>() else {
                continue;
            };
            if chunk_path(upload, chunk, attempt) != meta.location {
                continue;
            }
            staged.push(StagedObject {
                upload,
                chunk,
                attempt: attempt.to_string(),
                size: meta.size,
                modified_millis: meta.last_modified.timestamp_millis(),
            });
        }
        staged
            .sort_by(|a, b| (a.upload, a.chunk, &a.attempt).cmp(&(b.upload, b.chunk, &b.attempt)));
        Ok(staged)
    }

    /// Deletes one staged object (already gone: nothing to do).
    pub async fn delete_staged(&self, object: &StagedObject) -> Result<(), StoreError> {
        match self
            .store
            .delete(&chunk_path(object.upload, object.chunk, &object.attempt))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Whether blob downloads are redirected to presigned URLs ([`BlobStore::presigned_get`]).
    pub fn redirects_downloads(&self) -> bool {
        self.redirects.is_some()
    }

    /// A URL that fetches the committed blob `digest` straight from the bucket, without
    /// credentials, for the configured lifetime: `None` unless the store is S3 with redirects
    /// on. Contains a signature: hand it to the client, never log it.
    pub async fn presigned_get(&self, digest: &Digest) -> Result<Option<String>, StoreError> {
        match &self.redirects {
            Some(redirects) => Ok(Some(
                redirects.presign(&blob_path(digest)).await?.to_string(),
            )),
            None => Ok(None),
        }
    }

    /// Copies the committed blob `digest` from `source` into this store, for `airlock
    /// migrate-store`: skipped when this store holds it already with the source's size and
    /// bytes hashing to `digest` (streamed); else streamed (memory bounded by the multipart part
    /// size) and hashed on the way, and written only if the bytes are `digest` (a damaged file is
    /// [`StoreError::Corrupt`], a missing one [`StoreError::Corrupt`] too, naming the digest),
    /// replacing whatever object held the name ([`BlobCopy::Replaced`]).
    pub async fn copy_blob_from(
        &self,
        source: &BlobStore,
        digest: &Digest,
    ) -> Result<BlobCopy, StoreError> {
        self.check_writable()?;
        let Some(size) = source.size(digest).await? else {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} is recorded but its file is missing from the source blob store"
            )));
        };
        let present = self.size(digest).await?;
        if present == Some(size) && self.hash_blob(digest).await? == Some((size, digest.clone())) {
            return Ok(BlobCopy::AlreadyThere(size));
        }
        let body = source.read(digest, None).await?;
        let written =
            remote::write_verified(self.store.as_ref(), body, &blob_path(digest), digest).await?;
        Ok(match present {
            Some(_) => BlobCopy::Replaced(written),
            None => BlobCopy::Copied(written),
        })
    }

    /// The size of the committed blob `digest` as stored and the digest its bytes hash to (with
    /// `digest`'s algorithm), or `None` if its bytes are absent: for checks that the bytes are
    /// the blob (backup verification, `airlock migrate-store`). The bytes are streamed and
    /// hashed as they arrive, never held whole in memory.
    pub async fn hash_blob(&self, digest: &Digest) -> Result<Option<(u64, Digest)>, StoreError> {
        let mut stream = match self.read(digest, None).await {
            Ok(stream) => stream,
            Err(StoreError::Blob(object_store::Error::NotFound { .. })) => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut digester = Digester::new(digest.algorithm());
        let mut size = 0u64;
        while let Some(bytes) = stream.try_next().await? {
            size += bytes.len() as u64;
            digester.update(&bytes);
        }
        Ok(Some((size, digester.finish())))
    }

    /// Deletes a committed blob's bytes.
    pub async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match self.store.delete(&blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}
