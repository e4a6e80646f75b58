//! The registry service: OCI distribution semantics over stages, independent of HTTP.
//!
//! Handlers call one method per operation. Each method applies the stage rules from
//! [`airlock_core::Stages`] before touching storage, and returns a [`RegistryError`] that says
//! exactly what was wrong; the HTTP layer maps it to an OCI error code in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_core::{
    Action, Actor, AuditEvent, AuditRecord, Digest, DigestAlgorithm, Digester, ParsedManifest,
    Reference, RepoName, Stages, Tag,
};
use airlock_store::{
    BlobRange, BlobStore, ByteStream, ChunkWriteError, ManifestWriteError, Metadata, ReferrerRow,
    StoreError, StoredManifest, TagMove, UploadSession, now_millis,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A name, digest, manifest or stage rule was violated.
    #[error(transparent)]
    Rule(#[from] airlock_core::Error),
    /// The repository has no such blob.
    #[error("blob {0} is not in this repository")]
    BlobUnknown(Digest),
    /// No upload session with this id in this repository.
    #[error(
        "upload session {0} is unknown or expired in this repository; start a new upload with POST /v2/<name>/blobs/uploads/"
    )]
    UploadUnknown(String),
    /// A chunk did not start where the session ends.
    #[error(
        "chunk starts at byte {got} but the upload has {expected} bytes; resume from byte {expected}"
    )]
    ChunkOutOfOrder {
        /// The session's size.
        expected: u64,
        /// Where the chunk claimed to start.
        got: u64,
    },
    /// A chunk's length differed from its `Content-Range`.
    #[error("chunk has {actual} bytes but Content-Range announced {announced}")]
    ChunkSizeMismatch {
        /// Bytes announced.
        announced: u64,
        /// Bytes received.
        actual: u64,
    },
    /// The uploaded content does not hash to the digest the client named.
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch {
        /// What the client claimed.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// No such manifest (or tag) in the repository.
    #[error("manifest {0} is not in this repository")]
    ManifestUnknown(String),
    /// A manifest references content the repository does not hold.
    #[error("manifest references {missing} which is not in this repository; push it first")]
    ManifestReferenceUnknown {
        /// The first missing digest.
        missing: Digest,
        /// How many were missing.
        count: usize,
    },
    /// As many upload bodies as the limit allows are streaming; none finished within the wait.
    #[error(
        "{limit} uploads are in progress, the most this registry accepts at once (limits.max_concurrent_uploads); retry in {retry_after_secs} s"
    )]
    TooManyUploads {
        /// The configured limit.
        limit: usize,
        /// When to retry, in seconds.
        retry_after_secs: u64,
    },
    /// The chunk's body broke off (client gone, or no data within the body timeout). Nothing of
    /// it was kept; the session still holds `resume_at` bytes.
    #[error(
        "{reason}; nothing of this chunk was kept: resume the upload from byte {resume_at} or start a new one"
    )]
    UploadInterrupted {
        /// Why the body ended.
        reason: String,
        /// Bytes the session holds.
        resume_at: u64,
    },
    /// A manifest's descriptor declares a size other than that of the content it names.
    #[error(
        "manifest {field} declares {digest} with size {declared}, but the repository holds it with {stored} bytes; set the descriptor's size to {stored}"
    )]
    DescriptorSizeMismatch {
        /// Which descriptor (`config`, `layers[1]`, `manifests[0]`, `subject`).
        field: airlock_core::DescriptorField,
        /// The content it names.
        digest: Digest,
        /// The size it declares.
        declared: u64,
        /// The stored size.
        stored: u64,
    },
    /// The manifest is larger than the configured limit.
    #[error("manifest exceeds the {limit}-byte limit")]
    ManifestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The repository has never been pushed to.
    #[error("repository {0} is not known")]
    RepositoryUnknown(RepoName),
    /// The requested byte range lies outside the blob.
    #[error("range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// The blob size.
        size: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Limits the registry enforces.
#[derive(Debug, Clone)]
pub struct RegistryLimits {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Upload sessions idle longer than this are cancelled by the sweep.
    pub upload_expiry: Duration,
    /// Upload bodies (PATCH, PUT, monolithic POST) streamed at once.
    pub max_concurrent_uploads: usize,
    /// How long an upload waits for a slot before it is refused with 429.
    pub upload_queue_wait: Duration,
}

/// A blob that was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// The result of a manifest push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its subject, echoed in `OCI-Subject`.
    pub subject: Option<Digest>,
    /// What happened to the tag, if one was pushed.
    pub tag_move: Option<TagMove>,
    /// The tag pushed, if any.
    pub tag: Option<Tag>,
    /// The parsed manifest, for evidence ingestion.
    pub manifest: ParsedManifest,
}

/// The state an upload session keeps in memory between requests: the running hash (so finishing
/// a multi-gigabyte upload does not read it back) behind a lock that serialises this process's
/// chunks of the session. `None` once the hash cannot be resumed (e.g. after a restart);
/// finishing then rehashes.
type UploadState = Arc<tokio::sync::Mutex<Option<HashedPrefix>>>;

/// A running hash and how many of the upload's bytes it has seen. It is used only while that
/// count is the session's recorded size: with several replicas a chunk may have been appended by
/// another process, and this process's hash then no longer covers the upload (finishing
/// rehashes what the store holds).
#[derive(Clone)]
struct HashedPrefix {
    digester: Digester,
    bytes: u64,
}

/// The registry service.
pub struct Registry {
    metadata: Metadata,
    blobs: BlobStore,
    stages: Stages,
    limits: RegistryLimits,
    uploads: Mutex<HashMap<Uuid, UploadState>>,
    /// Told about every refused push (the `refused_pushes` rule); set once at start.
    anomalies: std::sync::OnceLock<Arc<crate::anomalies::Anomalies>>,
    /// One permit per upload body being streamed ([`RegistryLimits::max_concurrent_uploads`]).
    upload_slots: tokio::sync::Semaphore,
}

impl Registry {
    /// A registry over the given storage and stages.
    pub fn new(
        metadata: Metadata,
        blobs: BlobStore,
        stages: Stages,
        limits: RegistryLimits,
    ) -> Self {
        Self {
            metadata,
            blobs,
            stages,
            upload_slots: tokio::sync::Semaphore::new(limits.max_concurrent_uploads),
            limits,
            uploads: Mutex::new(HashMap::new()),
            anomalies: std::sync::OnceLock::new(),
        }
    }

    /// Reports refused pushes to `anomalies` from now on (the detector is built after the
    /// registry, over the registry's storage). A second call changes nothing.
    pub fn report_refusals_to(&self, anomalies: Arc<crate::anomalies::Anomalies>) {
        let _ = self.anomalies.set(anomalies);
    }

    /// The configured stages.
    pub fn stages(&self) -> &Stages {
        &self.stages
    }

    /// The configured limits.
    pub fn limits(&self) -> &RegistryLimits {
        &self.limits
    }

    /// The blob store (evidence reads signature payloads and envelopes from it).
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The metadata store (readiness checks).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn upload_state(&self, id: Uuid) -> UploadState {
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        uploads
            .entry(id)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
            .clone()
    }

    fn forget_upload(&self, id: Uuid) {
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// An audit record of `event` by `actor`, now.
    fn record(actor: &Actor, event: AuditEvent) -> AuditRecord {
        AuditRecord {
            time_millis: now_millis(),
            actor: actor.clone(),
            event,
        }
    }

    /// Applies the stage rule for a write (`Push` or `Delete`) to `repo`. A write refused because
    /// the stage is gated is recorded before the error is returned: in the audit log once per
    /// principal, repository and minute, and at most
    /// [`airlock_store::REFUSED_PUSH_ENTRIES_PER_MINUTE`] times per principal and minute across
    /// repositories (a client retrying in a loop, or naming a new repository each time, cannot
    /// flood the log), and every time as a `refused_pushes` anomaly signal.
    pub async fn check_write(&self, repo: &RepoName, action: Action, actor: &Actor) -> Result<()> {
        let rule = match action {
            Action::Delete => self.stages.check_delete(repo),
            Action::Push | Action::Pull => self.stages.check_push(repo),
        };
        match rule {
            Ok(()) => Ok(()),
            Err(
                err @ (airlock_core::Error::PushToGatedStage { .. }
                | airlock_core::Error::DeleteInGatedStage(_)),
            ) => {
                let refusal = Self::record(
                    actor,
                    AuditEvent::PushRefused {
                        repository: repo.clone(),
                        action,
                        reason: err.to_string(),
                    },
                );
                self.metadata
                    .record_refused_push(
                        &actor.principal,
                        repo.as_str(),
                        now_millis() / 60_000,
                        &[refusal],
                    )
                    .await?;
                metrics::counter!(crate::metrics::PUSH_REFUSALS).increment(1);
                if let Some(anomalies) = self.anomalies.get() {
                    anomalies.push_refused(actor, repo).await;
                }
                Err(err.into())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Fails with `UnknownStage` unless the repository's stage exists (every read checks this).
    fn check_readable(&self, repo: &RepoName) -> Result<()> {
        self.stages.stage_of(repo)?;
        Ok(())
    }

    // ---- uploads ----

    /// Starts an upload session in a push stage, owned by `actor`'s principal.
    pub async fn start_upload(&self, repo: &RepoName, actor: &Actor) -> Result<UploadSession> {
        self.check_write(repo, Action::Push, actor).await?;
        let id = Uuid::new_v4();
        self.metadata
            .create_upload(id, repo, &actor.principal)
            .await?;
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Arc::new(tokio::sync::Mutex::new(Some(HashedPrefix {
                    digester: Digester::new(DigestAlgorithm::Sha256),
                    bytes: 0,
                }))),
            );
        self.session(repo, &id.to_string(), actor).await
    }

    /// Uploads a blob in one request (POST with `?digest=`): a session that lives only for this
    /// request and is cancelled, with its data, if the upload fails.
    pub async fn upload_monolithic<S, E>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: S,
        actor: &Actor,
    ) -> Result<CommittedBlob>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let session = self.start_upload(repo, actor).await?;
        let id = session.id.to_string();
        let result = self.finish_upload(repo, &id, digest, body, actor).await;
        if result.is_err()
            && let Ok(session) = self.session(repo, &id, actor).await
            && let Err(err) = self.discard(&session).await
        {
            tracing::warn!(upload = %session.id, error = %err, "cancelling a failed one-request upload failed");
        }
        result
    }

    /// An upload session of `repo` by its id as sent in the URL. A session opened by another
    /// principal is unknown, exactly as a session that does not exist (so its existence leaks
    /// nothing).
    pub async fn session(&self, repo: &RepoName, id: &str, actor: &Actor) -> Result<UploadSession> {
        let unknown = || RegistryError::UploadUnknown(id.chars().take(64).collect());
        let uuid: Uuid = id.parse().map_err(|_| unknown())?;
        match self.metadata.upload(uuid).await? {
            Some(session)
                if session.repository == repo.as_str()
                    && session.principal.as_deref() == Some(actor.principal.as_str()) =>
            {
                Ok(session)
            }
            _ => Err(unknown()),
        }
    }

    /// Waits (at most [`RegistryLimits::upload_queue_wait`]) for a slot to stream an upload body.
    async fn upload_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let refused = || RegistryError::TooManyUploads {
            limit: self.limits.max_concurrent_uploads,
            retry_after_secs: self.limits.upload_queue_wait.as_secs().max(1),
        };
        match tokio::time::timeout(self.limits.upload_queue_wait, self.upload_slots.acquire()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(refused()),
        }
    }

    /// Appends a chunk to an upload. `range` is the `Content-Range` the client sent, if any; a
    /// chunk that does not start at the current end of the upload is refused without being read.
    /// A chunk that fails (broken body, storage error, length other than announced) leaves
    /// nothing staged; the session keeps the chunks accepted before it.
    pub async fn append_chunk<S, E>(
        &self,
        repo: &RepoName,
        id: &str,
        range: Option<(u64, u64)>,
        body: S,
        actor: &Actor,
    ) -> Result<UploadSession>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.stages.check_push(repo)?;
        let session = self.session(repo, id, actor).await?;
        let _slot = self.upload_slot().await?;
        let state = self.upload_state(session.id);
        let mut digester = state.lock().await;
        // Re-read under the session lock: a concurrent chunk may have landed meanwhile.
        let session = self.session(repo, id, actor).await?;
        if let Some((start, _)) = range
            && start != session.size
        {
            return Err(RegistryError::ChunkOutOfOrder {
                expected: session.size,
                got: start,
            });
        }
        // A hash that does not cover exactly the recorded bytes is stale (another replica took a
        // chunk of this session): drop it, and finishing rehashes.
        let resumable = digester
            .clone()
            .filter(|prefix| prefix.bytes == session.size)
            .map(|prefix| prefix.digester);
        let attempt = self.blobs.chunk_attempt();
        let (written, hashed) = self
            .write_chunk(&session, &attempt, body, resumable)
            .await?;
        if let Some((start, end)) = range {
            let announced = end.saturating_sub(start).saturating_add(1);
            if written != announced {
                self.blobs
                    .discard_chunk(session.id, session.chunks, &attempt)
                    .await?;
                return Err(RegistryError::ChunkSizeMismatch {
                    announced,
                    actual: written,
                });
            }
        }
        if written > 0 {
            metrics::counter!(crate::metrics::REGISTRY_BYTES_IN).increment(written);
            let recorded = self
                .metadata
                .record_chunk(
                    session.id,
                    session.size,
                    session.size + written,
                    session.chunks + 1,
                    &attempt,
                )
                .await?;
            if !recorded {
                // Another replica recorded a chunk at this offset first: this attempt's object
                // is nobody's (a fixed-name chunk on a local directory is never raced: one
                // process holds the session's lock).
                if !attempt.is_empty() {
                    self.blobs
                        .discard_chunk(session.id, session.chunks, &attempt)
                        .await?;
                }
                return Err(RegistryError::ChunkOutOfOrder {
                    expected: session.size,
                    got: session.size,
                });
            }
            *digester = hashed.map(|digester| HashedPrefix {
                digester,
                bytes: session.size + written,
            });
        }
        self.session(repo, id, actor).await
    }

    /// Writes one chunk, hashing with a copy of the session's hasher so a failed chunk leaves the
    /// session's hash untouched.
    async fn write_chunk<S, E>(
        &self,
        session: &UploadSession,
        attempt: &str,
        body: S,
        digester: Option<Digester>,
    ) -> Result<(u64, Option<Digester>)>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        // Without a resumable hash the bytes still need hashing only at the end; use a throwaway.
        let mut working = digester
            .clone()
            .unwrap_or_else(|| Digester::new(DigestAlgorithm::Sha256));
        let written = self
            .blobs
            .write_chunk(session.id, session.chunks, attempt, body, &mut working)
            .await
            .map_err(|err| match err {
                ChunkWriteError::Body(reason) => RegistryError::UploadInterrupted {
                    reason: reason.to_string(),
                    resume_at: session.size,
                },
                ChunkWriteError::Store(err) => RegistryError::Store(err),
            })?;
        Ok((written, digester.map(|_| working)))
    }

    /// Finishes an upload: appends the optional last chunk, verifies the digest, commits the blob
    /// and links it into the repository. On a digest mismatch the session is cancelled and its
    /// data deleted (as the distribution registry does): the client starts a new upload.
    pub async fn finish_upload<S, E>(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: S,
        actor: &Actor,
    ) -> Result<CommittedBlob>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let session = self.append_chunk(repo, id, None, body, actor).await?;
        let state = self.upload_state(session.id);
        let digester = state.lock().await;
        let session = self.session(repo, id, actor).await?;
        let actual = match digester.as_ref() {
            Some(prefix)
                if prefix.bytes == session.size
                    && prefix.digester.algorithm() == digest.algorithm() =>
            {
                prefix.digester.clone().finish()
            }
            _ => {
                self.blobs
                    .digest_upload(session.id, &session.chunk_attempts, digest.algorithm())
                    .await?
            }
        };
        if &actual != digest {
            self.discard(&session).await?;
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        self.blobs
            .commit_upload(session.id, &session.chunk_attempts, digest)
            .await?;
        let pushed = Self::record(
            actor,
            AuditEvent::BlobPushed {
                repository: repo.clone(),
                digest: digest.clone(),
                size: session.size,
                mounted_from: None,
            },
        );
        // Garbage collection may have deleted this digest's file since it was renamed into place
        // (an old copy of the same bytes was being collected): the commit looks at the bytes
        // before its transaction, checks gc's deletions in it, and refuses rather than
        // acknowledge a blob without bytes.
        let committed = self
            .metadata
            .commit_blob_checked(repo, digest, session.size, &[pushed], || async {
                Ok(self.blobs.size(digest).await?.is_some())
            })
            .await;
        if let Err(StoreError::BlobCollected(_)) = &committed {
            self.metadata.delete_upload(session.id).await?;
            self.forget_upload(session.id);
        }
        committed?;
        self.metadata.delete_upload(session.id).await?;
        drop(digester);
        self.forget_upload(session.id);
        Ok(CommittedBlob {
            digest: digest.clone(),
            size: session.size,
        })
    }

    /// Cancels an upload and deletes its data.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str, actor: &Actor) -> Result<()> {
        let session = self.session(repo, id, actor).await?;
        let state = self.upload_state(session.id);
        let _guard = state.lock().await;
        self.discard(&session).await
    }

    async fn discard(&self, session: &UploadSession) -> Result<()> {
        self.blobs
            .discard_upload(session.id, &session.chunk_attempts)
            .await?;
        self.metadata.delete_upload(session.id).await?;
        self.forget_upload(session.id);
        Ok(())
    }

    /// Cancels upload sessions idle longer than the configured expiry. Returns how many.
    ///
    /// Each session's row is deleted only if it is still idle (no chunk was recorded since it
    /// was listed, on this replica or another), and its chunks only after that, so a sweep racing
    /// a chunk, or a second sweep, changes nothing. A chunk still streaming in on this replica
    /// holds its session back; one streaming on another replica for longer than the expiry finds
    /// its session gone when it ends, and the client starts the upload again.
    pub async fn sweep_expired_uploads(&self) -> Result<usize> {
        let cutoff = now_millis() - self.limits.upload_expiry.as_millis() as i64;
        let idle = self.metadata.idle_uploads(cutoff).await?;
        let mut expired = 0;
        for session in &idle {
            // Never pull data from under a chunk that is still streaming in.
            let state = self.upload_state(session.id);
            let Ok(_busy) = state.try_lock() else {
                continue;
            };
            if !self.metadata.delete_idle_upload(session.id, cutoff).await? {
                continue;
            }
            tracing::info!(upload = %session.id, repository = %session.repository, bytes = session.size, "expiring idle upload");
            self.blobs
                .discard_upload(session.id, &session.chunk_attempts)
                .await?;
            self.forget_upload(session.id);
            expired += 1;
        }
        Ok(expired)
    }

    /// Links a blob that `from` holds into `repo` without transferring bytes. Returns `None` when
    /// `from` does not hold it, in which case the client falls back to a normal upload.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
        actor: &Actor,
    ) -> Result<Option<CommittedBlob>> {
        self.check_write(repo, Action::Push, actor).await?;
        if self.stages.stage_of(from).is_err() {
            return Ok(None);
        }
        match self.metadata.blob_in_repository(from, digest).await? {
            Some(size) => {
                let mounted = Self::record(
                    actor,
                    AuditEvent::BlobPushed {
                        repository: repo.clone(),
                        digest: digest.clone(),
                        size,
                        mounted_from: Some(from.clone()),
                    },
                );
                match self
                    .metadata
                    .commit_blob_checked(repo, digest, size, &[mounted], || async {
                        Ok(self.blobs.size(digest).await?.is_some())
                    })
                    .await
                {
                    Ok(()) => {}
                    // Collected since it was looked up: the client uploads it instead.
                    Err(StoreError::BlobCollected(_)) => return Ok(None),
                    Err(err) => return Err(err.into()),
                }
                Ok(Some(CommittedBlob {
                    digest: digest.clone(),
                    size,
                }))
            }
            None => Ok(None),
        }
    }

    // ---- blobs ----

    /// The size of a blob `repo` can serve.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        self.check_readable(repo)?;
        self.metadata
            .blob_in_repository(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
    }

    /// Streams a blob (or a range of it) and its full size.
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<BlobRange>,
    ) -> Result<(u64, ByteStream)> {
        let size = self.blob_size(repo, digest).await?;
        if let Some(range) = range
            && (range.start >= range.end || range.end > size)
        {
            return Err(RegistryError::RangeNotSatisfiable { size });
        }
        // Collected by gc between the row's lookup and opening the bytes: unknown, as a moment
        // later.
        let stream = match self.blobs.read(digest, range).await {
            Ok(stream) => stream,
            Err(err) if err.is_missing_blob() => {
                return Err(RegistryError::BlobUnknown(digest.clone()));
            }
            Err(err) => return Err(err.into()),
        };
        let stream = stream
            .inspect_ok(|bytes| {
                metrics::counter!(crate::metrics::REGISTRY_BYTES_OUT).increment(bytes.len() as u64)
            })
            .boxed();
        Ok((size, stream))
    }

    /// Where a client may fetch a blob `repo` can serve straight from the bucket (a presigned
    /// URL, `[s3] redirect`), or `None` when airlock serves it itself. The caller has checked
    /// access; the URL carries a signature and must not be logged.
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        if !self.blobs.redirects_downloads() {
            return Ok(None);
        }
        self.blob_size(repo, digest).await?;
        Ok(self.blobs.presigned_get(digest).await?)
    }

    /// Removes a blob from a repository of a push stage. The bytes stay while other repositories
    /// (or other stages) still reference them.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest, actor: &Actor) -> Result<()> {
        self.check_write(repo, Action::Delete, actor).await?;
        let deleted = Self::record(
            actor,
            AuditEvent::BlobDeleted {
                repository: repo.clone(),
                digest: digest.clone(),
            },
        );
        if self.metadata.unlink_blob(repo, digest, &[deleted]).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.clone()))
        }
    }

    // ---- manifests ----

    /// Stores a manifest pushed to `repo` under `reference` (a tag, or the digest of `content`).
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        content: &[u8],
        actor: &Actor,
    ) -> Result<PushedManifest> {
        self.check_write(repo, Action::Push, actor).await?;
        if content.len() > self.limits.max_manifest_bytes {
            return Err(RegistryError::ManifestTooLarge {
                limit: self.limits.max_manifest_bytes,
            });
        }
        let parsed = ParsedManifest::parse(content_type, content)?;
        let (digest, tag) = match reference {
            Reference::Digest(claimed) => {
                let mut digester = Digester::new(claimed.algorithm());
                digester.update(content);
                let actual = digester.finish();
                if &actual != claimed {
                    return Err(RegistryError::DigestMismatch {
                        expected: claimed.clone(),
                        actual,
                    });
                }
                (actual, None)
            }
            Reference::Tag(tag) => (Digest::sha256_of(content), Some(tag)),
        };
        let tag_move = self
            .metadata
            .put_manifest(
                repo,
                airlock_store::ManifestUpload {
                    digest: &digest,
                    manifest: &parsed,
                    content,
                },
                tag,
                &actor.principal,
                |current| {
                    let mut records = vec![Self::record(
                        actor,
                        AuditEvent::ManifestPushed {
                            repository: repo.clone(),
                            digest: digest.clone(),
                            media_type: parsed.media_type.clone(),
                            artifact_type: parsed.artifact_type.clone(),
                            subject: parsed.subject.clone(),
                        },
                    )];
                    if let Some(tag) = tag {
                        self.stages.check_tag_move(repo, tag, current, &digest)?;
                        if current != Some(&digest) {
                            records.push(Self::record(
                                actor,
                                AuditEvent::TagMoved {
                                    repository: repo.clone(),
                                    tag: tag.clone(),
                                    digest: digest.clone(),
                                    previous: current.cloned(),
                                },
                            ));
                        }
                    }
                    Ok(records)
                },
            )
            .await
            .map_err(|err| match err {
                ManifestWriteError::MissingReferences(missing) => {
                    RegistryError::ManifestReferenceUnknown {
                        count: missing.len(),
                        missing: missing.into_iter().next().unwrap_or(digest.clone()),
                    }
                }
                ManifestWriteError::SizeMismatch {
                    field,
                    digest,
                    declared,
                    stored,
                } => RegistryError::DescriptorSizeMismatch {
                    field,
                    digest,
                    declared,
                    stored,
                },
                ManifestWriteError::Rule(rule) => RegistryError::Rule(rule),
                ManifestWriteError::Store(store) => RegistryError::Store(store),
            })?;
        Ok(PushedManifest {
            digest,
            subject: parsed.subject.clone(),
            tag_move,
            tag: tag.cloned(),
            manifest: parsed,
        })
    }

    /// Resolves a tag or digest to the digest it names in `repo`.
    async fn resolve(&self, repo: &RepoName, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Digest(digest) => Ok(digest.clone()),
            Reference::Tag(tag) => self
                .metadata
                .resolve_tag(repo, tag)
                .await?
                .ok_or_else(|| RegistryError::ManifestUnknown(tag.to_string())),
        }
    }

    /// A manifest by tag or digest.
    pub async fn manifest(&self, repo: &RepoName, reference: &Reference) -> Result<StoredManifest> {
        self.check_readable(repo)?;
        let digest = self.resolve(repo, reference).await?;
        self.metadata
            .manifest(repo, &digest)
            .await?
            .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_string()))
    }

    /// Deletes a tag, or a manifest (with its tags) by digest, in a push stage.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        actor: &Actor,
    ) -> Result<()> {
        self.check_write(repo, Action::Delete, actor).await?;
        let deleted = match reference {
            Reference::Tag(tag) => {
                self.metadata
                    .delete_tag(repo, tag, |digest| {
                        vec![Self::record(
                            actor,
                            AuditEvent::TagDeleted {
                                repository: repo.clone(),
                                tag: tag.clone(),
                                digest: digest.clone(),
                            },
                        )]
                    })
                    .await?
            }
            Reference::Digest(digest) => {
                let deleted = Self::record(
                    actor,
                    AuditEvent::ManifestDeleted {
                        repository: repo.clone(),
                        digest: digest.clone(),
                    },
                );
                self.metadata
                    .delete_manifest(repo, digest, &[deleted])
                    .await?
            }
        };
        if deleted {
            Ok(())
        } else {
            Err(RegistryError::ManifestUnknown(reference.to_string()))
        }
    }

    // ---- listings ----

    /// A page of tags.
    pub async fn tags(
        &self,
        repo: &RepoName,
        limit: u32,
        last: Option<&str>,
    ) -> Result<Vec<String>> {
        self.check_readable(repo)?;
        if !self.metadata.repository_exists(repo).await? {
            return Err(RegistryError::RepositoryUnknown(repo.clone()));
        }
        Ok(self.metadata.tags(repo, limit, last).await?)
    }

    /// Up to `limit` manifests in `repo` whose subject is `subject` (optionally of one artifact
    /// type) after `after`, oldest first, each with its arrival time (ms).
    pub async fn referrers_page(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&airlock_store::TimeCursor>,
        limit: u32,
    ) -> Result<Vec<(i64, ReferrerRow)>> {
        self.check_readable(repo)?;
        Ok(self
            .metadata
            .referrers_page(repo, subject, artifact_type, after, limit)
            .await?)
    }

    /// A page of repository names.
    pub async fn catalog(&self, limit: u32, last: Option<&str>) -> Result<Vec<String>> {
        Ok(self.metadata.catalog(limit, last).await?)
    }
}
