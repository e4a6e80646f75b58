//! The evidence service: the keyring, and every signature and attestation about an artifact,
//! verified when it arrives and again when the keyring changes.
//!
//! Evidence arrives three ways: an OCI 1.1 referrer (a manifest with a `subject`), a cosign
//! tag-scheme manifest (`sha256-<hex>.sig` / `.att`), or `POST /api/v1/artifacts/.../evidence`.
//! Each item is verified against the keyring by [`airlock_trust::verify`] and stored with its
//! verdict; a rejected item is stored too, with the reason, and never counts. Verdicts are made
//! under a mutex shared with keyring changes, so within a process no verdict is ever computed
//! against a keyring that a concurrent change is replacing. Across replicas the mutex does not
//! reach: every verdict is stored only if the keyring is still at the version it was computed
//! against, checked inside the storing transaction (which holds the database's writer lock, as a
//! keyring change does), and is computed again otherwise; a keyring change likewise commits only
//! over the version its re-verification read.

mod key_update;
pub mod routes;

pub use key_update::{KeyAuthority, KeyUpdate};

use std::str::FromStr;
use std::sync::Arc;

use airlock_core::{
    Actor, AuditEvent, AuditRecord, Digest, ParsedManifest, RepoName, StageMode, Stages, Tag,
};
use airlock_store::{
    ArtifactFlag, BlobStore, EvidenceOrigin, EvidenceRow, EvidenceUpdate, EvidenceVerdict,
    KeyChange, KeyRow, KeyringWriteError, Metadata, NewEvidence, StoreError, now_millis,
};
use airlock_trust::TrustError;
use airlock_trust::cosign::{self, TagSchemeKind};
use airlock_trust::dsse;
use airlock_trust::facts::rebuilds::{Mismatch, Rebuilds, mismatches};
use airlock_trust::facts::{Facts, Provenance};
use airlock_trust::keys::{KeyAlgorithm, PublicKey};
use airlock_trust::verify::{
    self, EvidenceKind, EvidenceSubject, KeyStatus, Keyring, Purpose, Rejection, ScopePattern,
    TrustedKey, Verified,
};

/// Largest cosign simple-signing payload read for verification.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// Why an evidence or keyring operation failed: each variant names what failed, with the data
/// the API's message and remediation are made from.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No key of this name is in the keyring.
    #[error("no key named {name:?} in the keyring (airlock keys list)")]
    KeyUnknown {
        /// The name asked for.
        name: String,
    },
    /// The repository does not hold the artifact evidence was posted for.
    #[error("{repo}@{digest} is not in the registry; push the artifact first")]
    ArtifactUnknown {
        /// The repository.
        repo: RepoName,
        /// The artifact's digest.
        digest: Digest,
    },
    /// The posted document is larger than an envelope may be.
    #[error("the envelope has {size} bytes; the limit is {limit}")]
    DocumentTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The posted document is not JSON.
    #[error("the body is not JSON: {0}")]
    DocumentNotJson(#[source] serde_json::Error),
    /// The posted document is neither a Sigstore bundle nor a DSSE envelope.
    #[error("not a DSSE envelope: {0}")]
    NotAnEnvelope(#[source] TrustError),
    /// The posted document calls itself a Sigstore bundle of a media type airlock does not read.
    #[error(
        "mediaType {media_type:?} is not a Sigstore bundle media type airlock reads; it reads {}",
        cosign::SIGSTORE_BUNDLE_MEDIA_TYPES.join(", ")
    )]
    BundleMediaType {
        /// The document's `mediaType`.
        media_type: String,
    },
    /// The public key (or the algorithm forced on it) is not usable.
    #[error("the public key: {0}")]
    PublicKey(#[source] TrustError),
    /// The key name is not a short identifier.
    #[error("key name {name:?} must be 1-64 characters of letters, digits, '-', '_' and '.'")]
    KeyName {
        /// The name given.
        name: String,
    },
    /// A purpose is not `sign` or `attest:<predicate type>`.
    #[error("purpose {purpose:?}: {source}")]
    Purpose {
        /// The purpose given.
        purpose: String,
        /// Why it is not one.
        #[source]
        source: TrustError,
    },
    /// A scope pattern is not a repository path pattern.
    #[error("scope {pattern:?}: {source}")]
    Scope {
        /// The pattern given.
        pattern: String,
        /// Why it is not one.
        #[source]
        source: TrustError,
    },
    /// A new key without any purpose.
    #[error(
        "a key needs at least one purpose: --purpose sign and/or --purpose attest:<predicate type>"
    )]
    NoPurpose,
    /// A key without any scope.
    #[error(
        "a key needs a scope: --scope 'team/*' (repository paths without the stage), or --scope '*' for all"
    )]
    NoScope,
    /// The end of validity is not after its start.
    #[error(
        "not_after must be later than the key's not_before ({})",
        airlock_core::audit::rfc3339_millis(*not_before)
    )]
    Validity {
        /// The start of validity (ms).
        not_before: i64,
    },
    /// An update that names nothing to change.
    #[error("nothing to change: give --add-purpose, --remove-purpose, --scope or --not-after")]
    NothingToChange,
    /// An update that would leave the key as it is.
    #[error("key {name} already has these purposes, scope and validity; nothing to change")]
    Unchanged {
        /// The key.
        name: String,
    },
    /// Removing a purpose the key does not have.
    #[error(
        "key {name} does not have the purpose {purpose:?} (it has {}); airlock keys list shows each key's purposes",
        held.join(", ")
    )]
    PurposeNotHeld {
        /// The key.
        name: String,
        /// The purpose to remove.
        purpose: String,
        /// The purposes it has.
        held: Vec<String>,
    },
    /// Adding a purpose the key already has.
    #[error("key {name} already has the purpose {purpose:?}; drop --add-purpose {purpose}")]
    PurposeHeld {
        /// The key.
        name: String,
        /// The purpose to add.
        purpose: String,
    },
    /// Removing the key's last purpose.
    #[error(
        "key {name} would have no purpose left; keep one, or retire the key (airlock keys retire {name})"
    )]
    NoPurposeLeft {
        /// The key.
        name: String,
    },
    /// Retiring or revoking without a reason.
    #[error("give a reason (--reason), it is recorded in the audit log")]
    ReasonMissing,
    /// A key name already in the keyring.
    #[error("a key named {name} is already in the keyring; pick another name")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// A public key already in the keyring under another name.
    #[error("this public key is already in the keyring as {existing}")]
    KeyPresent {
        /// The name it has there.
        existing: String,
    },
    /// The key is already retired (retire) or revoked (any change).
    #[error("key {name} is already {status}")]
    KeyStatus {
        /// The key.
        name: String,
        /// `retired` or `revoked`.
        status: String,
    },
    /// A revoked key cannot be changed.
    #[error("key {name} is revoked; a revoked key cannot be changed (add a new key)")]
    KeyRevoked {
        /// The key.
        name: String,
    },
    /// The keyring changed while the change was being made.
    #[error("the keyring changed meanwhile: {0}")]
    KeyringMoved(#[source] KeyringWriteError),
    /// The key's present scope reaches beyond the caller's key-admin grants.
    #[error(
        "key {key} has scope {pattern:?}, which your key-admin grants do not cover in every stage; ask a key-admin whose scope covers it"
    )]
    KeyOutsideAuthority {
        /// The key.
        key: String,
        /// Its pattern outside the grants.
        pattern: String,
    },
    /// A new scope reaches beyond the caller's key-admin grants.
    #[error(
        "scope {pattern:?} reaches beyond your key-admin grants (in some stage); give a scope your grants cover"
    )]
    ScopeOutsideAuthority {
        /// The pattern outside the grants.
        pattern: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<KeyringWriteError> for EvidenceError {
    fn from(err: KeyringWriteError) -> Self {
        match err {
            KeyringWriteError::Store(err) => Self::Store(err),
            other => Self::KeyringMoved(other),
        }
    }
}

type Result<T, E = EvidenceError> = std::result::Result<T, E>;

/// A key to add, as the API receives it.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Unique name.
    pub name: String,
    /// SPKI PEM.
    pub public_key_pem: String,
    /// Forced algorithm (RSA-PSS), if any.
    pub algorithm: Option<String>,
    /// `sign`, `attest:<uri>`.
    pub purposes: Vec<String>,
    /// Repository path patterns.
    pub scope: Vec<String>,
    /// Start of validity (ms).
    pub not_before: Option<i64>,
    /// End of validity (ms).
    pub not_after: Option<i64>,
}

/// The status change of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// Retire: signatures seen so far stay valid.
    Retire,
    /// Revoke: signatures seen from now on are refused.
    Revoke,
    /// Revoke as compromised: every signature the key ever made is void.
    Compromised,
}

/// An artifact as the evidence API shows it.
#[derive(Debug, Clone)]
pub struct ArtifactInfo {
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: usize,
    /// Tags pointing at it in the repository.
    pub tags: Vec<String>,
}

/// One evidence item found in a manifest or request, before verification.
struct Candidate {
    origin: EvidenceOrigin,
    /// The bytes to verify (`None`: larger than the limit).
    bytes: Option<Vec<u8>>,
}

/// The evidence service.
pub struct EvidenceService {
    metadata: Metadata,
    blobs: BlobStore,
    stages: Stages,
    /// Serialises verdicts with keyring changes (see the module docs).
    lock: tokio::sync::Mutex<()>,
    /// Told about evidence that names a trusted key but does not verify (tampering).
    anomalies: Arc<crate::anomalies::Anomalies>,
}

fn slug(kind: EvidenceKind) -> &'static str {
    match kind {
        EvidenceKind::Signature => "signature",
        EvidenceKind::Attestation => "attestation",
    }
}

/// Turns a stored key into the verifier's view of it.
fn trusted_key(row: &KeyRow) -> Result<TrustedKey, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("key {}: {what}: {e}", row.name))
    };
    let algorithm = KeyAlgorithm::from_str(&row.algorithm).map_err(|e| corrupt("algorithm", &e))?;
    let public_key = PublicKey::from_pem_with_algorithm(&row.public_key, algorithm)
        .map_err(|e| corrupt("public key", &e))?;
    let purposes = row
        .purposes
        .iter()
        .map(|p| Purpose::from_str(p).map_err(|e| corrupt("purpose", &e)))
        .collect::<Result<_, _>>()?;
    let scope = row
        .scope
        .iter()
        .map(|p| ScopePattern::from_str(p).map_err(|e| corrupt("scope", &e)))
        .collect::<Result<_, _>>()?;
    let status = match row.status.as_str() {
        "active" => KeyStatus::Active,
        "retired" => KeyStatus::Retired {
            at_ms: row.status_at.unwrap_or(0),
        },
        "revoked" => KeyStatus::Revoked {
            at_ms: row.status_at.unwrap_or(0),
            reason: row.status_reason.clone().unwrap_or_default(),
            compromised: row.compromised,
        },
        other => return Err(corrupt("status", &other)),
    };
    Ok(TrustedKey {
        key_id: public_key.key_id(),
        name: row.name.clone(),
        public_key,
        purposes,
        scope,
        not_before_ms: row.not_before,
        not_after_ms: row.not_after,
        status,
    })
}

fn keyring_from(version: i64, rows: &[KeyRow]) -> Result<Keyring, StoreError> {
    Ok(Keyring {
        version,
        keys: rows.iter().map(trusted_key).collect::<Result<_, _>>()?,
    })
}

/// The stored form of a verdict, with facts derived from a verified attestation. A predicate of a
/// known type that cannot be read turns the verdict into a rejection: its facts would be missing
/// from policy, so it must not count.
fn stored_verdict(verdict: verify::Verdict, keyring: &Keyring) -> EvidenceVerdict {
    let keyring_version = keyring.version;
    match verdict {
        Ok(Verified {
            kind,
            key_id,
            key_name,
            predicate_type,
            predicate,
        }) => {
            let facts = match (&predicate_type, &predicate) {
                (Some(predicate_type), Some(predicate)) => {
                    match airlock_trust::facts::derive_facts(predicate_type, predicate) {
                        Ok(facts) => serde_json::to_string(&facts).ok(),
                        Err(err) => {
                            return EvidenceVerdict {
                                status: "rejected".into(),
                                kind: Some(slug(kind).into()),
                                reason_code: Some("malformed_predicate".into()),
                                reason: Some(format!(
                                    "the {predicate_type} predicate cannot be read: {err}"
                                )),
                                key_id: Some(key_id.to_string()),
                                key_name: Some(key_name),
                                predicate_type: Some(predicate_type.clone()),
                                facts: None,
                                keyring_version,
                            };
                        }
                    }
                }
                _ => None,
            };
            EvidenceVerdict {
                status: "verified".into(),
                kind: Some(slug(kind).into()),
                reason_code: None,
                reason: None,
                key_id: Some(key_id.to_string()),
                key_name: Some(key_name),
                predicate_type,
                facts,
                keyring_version,
            }
        }
        Err(rejection) => {
            let status = if matches!(rejection, Rejection::KeyCompromised { .. }) {
                "revoked"
            } else {
                "rejected"
            };
            let key_name = rejection.key_name().map(String::from);
            let key_id = match &rejection {
                Rejection::BadSignature { key_id, .. } => Some(key_id.to_string()),
                _ => key_name.as_ref().and_then(|name| {
                    keyring
                        .keys
                        .iter()
                        .find(|k| &k.name == name)
                        .map(|k| k.key_id.to_string())
                }),
            };
            EvidenceVerdict {
                status: status.into(),
                kind: None,
                reason_code: Some(rejection.code().into()),
                reason: Some(rejection.to_string()),
                key_id,
                key_name,
                predicate_type: None,
                facts: None,
                keyring_version,
            }
        }
    }
}

impl EvidenceService {
    /// The service over the registry's storage.
    pub fn new(
        metadata: Metadata,
        blobs: BlobStore,
        stages: Stages,
        anomalies: Arc<crate::anomalies::Anomalies>,
    ) -> Self {
        Self {
            metadata,
            blobs,
            stages,
            lock: tokio::sync::Mutex::new(()),
            anomalies,
        }
    }

    async fn keyring(&self) -> Result<Keyring> {
        let (version, rows) = self.metadata.keyring().await?;
        Ok(keyring_from(version, &rows)?)
    }

    /// The keyring as stored, oldest key first, with its version.
    pub async fn keys(&self) -> Result<(i64, Vec<KeyRow>)> {
        Ok(self.metadata.keyring().await?)
    }

    /// The keyring's version and up to `limit` of its keys after `after` (time added and name;
    /// from the oldest when `None`), oldest first.
    pub async fn keys_page(
        &self,
        after: Option<&airlock_store::TimeCursor>,
        limit: u32,
    ) -> Result<(i64, Vec<KeyRow>)> {
        Ok(self.metadata.keyring_page(after, limit).await?)
    }

    /// Verifies one item against `keyring`, judging key validity at `first_seen_at`.
    fn verify_item(
        keyring: &Keyring,
        origin: &EvidenceOrigin,
        bytes: Option<&[u8]>,
        first_seen_at: i64,
    ) -> EvidenceVerdict {
        let subject = match Digest::from_str(&origin.subject) {
            Ok(digest) => EvidenceSubject {
                repository_path: origin.repository_path.clone(),
                digest,
            },
            Err(err) => {
                return stored_verdict(
                    Err(Rejection::Malformed(format!("subject digest: {err}"))),
                    keyring,
                );
            }
        };
        let Some(bytes) = bytes else {
            let limit = if origin.format == "cosign" {
                MAX_PAYLOAD_BYTES as usize
            } else {
                dsse::MAX_ENVELOPE_BYTES
            };
            return stored_verdict(Err(Rejection::TooLarge { limit }), keyring);
        };
        let verdict = match origin.format.as_str() {
            "cosign" => verify::verify_cosign_signature(
                keyring,
                &subject,
                bytes,
                origin.signature.as_deref().unwrap_or_default(),
                first_seen_at,
            ),
            "sigstore-bundle" => {
                verify::verify_sigstore_bundle(keyring, &subject, bytes, first_seen_at)
            }
            _ => verify::verify_attestation(keyring, &subject, bytes, first_seen_at),
        };
        stored_verdict(verdict, keyring)
    }

    /// Reads an evidence blob whole if it is within the limit of its format.
    async fn read_item(&self, format: &str, blob: &str) -> Result<Option<Vec<u8>>> {
        let digest = Digest::from_str(blob)
            .map_err(|e| StoreError::Corrupt(format!("evidence blob digest: {e}")))?;
        let limit = if format == "cosign" {
            MAX_PAYLOAD_BYTES
        } else {
            dsse::MAX_ENVELOPE_BYTES as u64
        };
        Ok(self.blobs.read_bounded(&digest, limit).await?)
    }

    /// The evidence items a manifest carries, if it is an evidence manifest: a referrer (it has a
    /// `subject`) or a cosign tag-scheme manifest. Layers of other media types (an unsigned SBOM
    /// attached with oras, say) are not evidence and are ignored.
    async fn candidates(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &ParsedManifest,
        tags: &[String],
        pushed_by: &str,
    ) -> Result<Vec<Candidate>> {
        let (subject, source) = match &manifest.subject {
            Some(subject) => (subject.clone(), "referrer"),
            None => {
                let from_tag = tags.iter().find_map(|t| {
                    cosign::parse_tag_scheme(t).filter(|(_, kind)| {
                        matches!(kind, TagSchemeKind::Signature | TagSchemeKind::Attestation)
                    })
                });
                match from_tag {
                    Some((subject, _)) => (subject, "tag"),
                    None => return Ok(Vec::new()),
                }
            }
        };
        let mut found = Vec::new();
        for layer in &manifest.layers {
            let format = match layer.media_type.as_str() {
                cosign::SIMPLE_SIGNING_MEDIA_TYPE => "cosign",
                cosign::DSSE_MEDIA_TYPE => "dsse",
                t if cosign::is_sigstore_bundle_media_type(t) => "sigstore-bundle",
                _ => continue,
            };
            let signature = if format == "cosign" {
                match layer.annotations.get(cosign::SIGNATURE_ANNOTATION) {
                    Some(sig) => Some(sig.clone()),
                    None => continue,
                }
            } else {
                None
            };
            let item = match &signature {
                // The same payload can carry several signatures; each is its own item.
                Some(sig) => {
                    Digest::sha256_of(format!("{}\n{sig}", layer.digest).as_bytes()).to_string()
                }
                None => layer.digest.to_string(),
            };
            let bytes = self.read_item(format, &layer.digest.to_string()).await?;
            found.push(Candidate {
                origin: EvidenceOrigin {
                    repository_path: repo.path().to_string(),
                    subject: subject.to_string(),
                    item,
                    format: format.into(),
                    source: source.into(),
                    repository: repo.as_str().into(),
                    manifest: Some(digest.to_string()),
                    blob: layer.digest.to_string(),
                    signature,
                    pushed_by: pushed_by.into(),
                },
                bytes,
            });
        }
        Ok(found)
    }

    /// Verifies and stores new candidates (under the lock), with one audit record each. The
    /// store refuses verdicts computed against a keyring another replica changed meanwhile; they
    /// are computed again against the new one (a few times, then the error stands).
    async fn record(
        &self,
        manifest: Option<(&RepoName, &Digest)>,
        candidates: Vec<Candidate>,
        actor: &Actor,
        submitted: Option<&Digest>,
    ) -> Result<()> {
        let _guard = self.lock.lock().await;
        let mut attempts = 0;
        let (keyring, items, ids) = loop {
            attempts += 1;
            let keyring = self.keyring().await?;
            let items = self.verdicts(&keyring, &candidates, actor).await?;
            match self
                .store_verdicts(&keyring, manifest, &items, submitted)
                .await
            {
                Err(KeyringWriteError::VersionMoved { expected, found }) if attempts < 3 => {
                    tracing::info!(
                        expected,
                        found,
                        "the keyring changed while evidence was verified; verifying it again"
                    );
                }
                Err(err) => return Err(err.into()),
                Ok(ids) => break (keyring, items, ids),
            }
        };
        // Only the items this call inserted: another replica may have recorded the same ones.
        let items: Vec<NewEvidence> = items
            .into_iter()
            .zip(ids)
            .filter_map(|(item, id)| id.map(|_| item))
            .collect();
        for NewEvidence {
            origin, verdict, ..
        } in &items
        {
            metrics::counter!(crate::metrics::EVIDENCE_ITEMS, "format" => origin.format.clone(), "status" => verdict.status.clone())
                .increment(1);
            // `bad_signature`: the evidence names a trusted key that does not verify it. It
            // counts as tampering only where that key could have signed: a forgery naming a key
            // outside its scope claims nothing the key vouches for (the anomaly service checks
            // the other half, the artifact's lineage).
            if verdict.reason_code.as_deref() == Some("bad_signature")
                && let (Ok(repository), Ok(subject)) = (
                    RepoName::from_str(&origin.repository),
                    Digest::from_str(&origin.subject),
                )
            {
                if !key_covers(&keyring, verdict.key_id.as_deref(), &origin.repository_path) {
                    tracing::warn!(%repository, %subject, key = verdict.key_name.as_deref().unwrap_or("?"),
                        "a bad signature naming a key whose scope does not cover the repository: rejected, not counted as tampering");
                    continue;
                }
                self.anomalies
                    .evidence_tampered(
                        &repository,
                        &subject,
                        &origin.pushed_by,
                        verdict.key_name.as_deref().unwrap_or("?"),
                    )
                    .await;
            }
        }
        // A verified provenance whose source revision another digest of the path was also built
        // from: the rebuild did not reproduce the artifact.
        let mut checked: Vec<(String, String)> = Vec::new();
        for NewEvidence {
            origin, verdict, ..
        } in &items
        {
            let provenance = verdict.status == "verified"
                && verdict
                    .predicate_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("https://slsa.dev/provenance/"));
            let target = (origin.repository.clone(), origin.subject.clone());
            if !provenance || checked.contains(&target) {
                continue;
            }
            checked.push(target);
            let (Ok(repository), Ok(subject)) = (
                RepoName::from_str(&origin.repository),
                Digest::from_str(&origin.subject),
            ) else {
                continue;
            };
            match self.rebuilds(&repository, &subject).await {
                Ok((_, found)) => {
                    let mut seen: Vec<&str> = Vec::new();
                    for mismatch in &found {
                        if !seen.contains(&mismatch.digest.as_str()) {
                            seen.push(&mismatch.digest);
                            self.anomalies
                                .rebuild_mismatch(&repository, &subject, mismatch)
                                .await;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, %repository, %subject, "checking rebuilds of the same source revision failed")
                }
            }
        }
        Ok(())
    }

    /// The verdicts of the candidates not yet stored, against `keyring`, each with its audit
    /// record.
    async fn verdicts(
        &self,
        keyring: &Keyring,
        candidates: &[Candidate],
        actor: &Actor,
    ) -> Result<Vec<NewEvidence>> {
        let now = now_millis();
        let mut items = Vec::new();
        for candidate in candidates {
            let origin = &candidate.origin;
            if self
                .metadata
                .evidence_known(&origin.repository_path, &origin.subject, &origin.item)
                .await?
            {
                continue;
            }
            let verdict = Self::verify_item(keyring, origin, candidate.bytes.as_deref(), now);
            let record = match (
                RepoName::from_str(&origin.repository),
                Digest::from_str(&origin.subject),
            ) {
                (Ok(repository), Ok(subject)) => Some(AuditRecord {
                    time_millis: now,
                    actor: actor.clone(),
                    event: AuditEvent::EvidenceRecorded {
                        repository,
                        subject,
                        item: origin.item.clone(),
                        format: origin.format.clone(),
                        status: verdict.status.clone(),
                        key_name: verdict.key_name.clone(),
                        predicate_type: verdict.predicate_type.clone(),
                        reason: verdict.reason.clone(),
                    },
                }),
                _ => None,
            };
            items.push(NewEvidence {
                origin: origin.clone(),
                verdict,
                first_seen_at: now,
                record,
            });
        }
        Ok(items)
    }

    /// Stores `items` if the keyring is still `keyring`'s version, returning the ids inserted.
    async fn store_verdicts(
        &self,
        keyring: &Keyring,
        manifest: Option<(&RepoName, &Digest)>,
        items: &[NewEvidence],
        submitted: Option<&Digest>,
    ) -> std::result::Result<Vec<Option<i64>>, KeyringWriteError> {
        let manifest_key = manifest.map(|(r, d)| (r.as_str().to_string(), d.to_string()));
        // A submitted document's bytes have no `blobs` row: checked against gc in the
        // transaction that records the row referencing them.
        let blobs = &self.blobs;
        self.metadata
            .record_evidence_checked(
                keyring.version,
                manifest_key.as_ref().map(|(r, d)| (r.as_str(), d.as_str())),
                items,
                submitted,
                || async move {
                    match submitted {
                        Some(blob) => Ok(blobs.size(blob).await?.is_some()),
                        None => Ok(true),
                    }
                },
            )
            .await
    }

    /// Ingests the evidence a just-pushed manifest carries (nothing if it carries none).
    pub async fn ingest_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &ParsedManifest,
        tag: Option<&Tag>,
        actor: &Actor,
    ) -> Result<()> {
        let mut tags = self
            .metadata
            .tags_of(repo.as_str(), &digest.to_string())
            .await?;
        if let Some(tag) = tag {
            tags.push(tag.as_str().to_string());
        }
        let tag_scheme = tags.iter().any(|t| {
            cosign::parse_tag_scheme(t).is_some_and(|(_, kind)| {
                matches!(kind, TagSchemeKind::Signature | TagSchemeKind::Attestation)
            })
        });
        if manifest.subject.is_none() && !tag_scheme {
            // Not an evidence manifest (an image, an index, an unsigned artifact).
            return Ok(());
        }
        let candidates = self
            .candidates(repo, digest, manifest, &tags, &actor.principal)
            .await?;
        self.record(Some((repo, digest)), candidates, actor, None)
            .await?;
        Ok(())
    }

    /// Ingests evidence manifests a crash left un-ingested (run at start).
    pub async fn ingest_pending(&self) -> Result<usize> {
        let pending = self.metadata.uningested_evidence_manifests().await?;
        let count = pending.len();
        let system = Actor {
            principal: "airlock".into(),
            auth_method: "system".into(),
            source: None,
        };
        for (repository, digest_text) in pending {
            if let (Ok(repo), Ok(digest)) = (
                RepoName::from_str(&repository),
                Digest::from_str(&digest_text),
            ) && let Some(stored) = self.metadata.manifest(&repo, &digest).await?
                && let Ok(parsed) = ParsedManifest::parse(Some(&stored.media_type), &stored.content)
            {
                self.ingest_manifest(&repo, &digest, &parsed, None, &system)
                    .await?;
            }
            // Recorded (the ingestion's transaction already removed it), not evidence after all,
            // or gone: nothing is left to finish for this manifest.
            self.metadata
                .clear_evidence_pending(&repository, &digest_text)
                .await?;
        }
        Ok(count)
    }

    /// Verifies and stores a DSSE envelope (or a Sigstore bundle) submitted through the API for
    /// `subject` in `repo`. The document is stored as a blob so it can be verified again later.
    /// Malformed documents are refused without storing anything.
    pub async fn submit(
        &self,
        repo: &RepoName,
        subject: &Digest,
        document: bytes::Bytes,
        actor: &Actor,
    ) -> Result<EvidenceRow> {
        if document.len() > dsse::MAX_ENVELOPE_BYTES {
            return Err(EvidenceError::DocumentTooLarge {
                size: document.len(),
                limit: dsse::MAX_ENVELOPE_BYTES,
            });
        }
        if self.metadata.manifest(repo, subject).await?.is_none() {
            return Err(EvidenceError::ArtifactUnknown {
                repo: repo.clone(),
                digest: subject.clone(),
            });
        }
        let probe: serde_json::Value =
            serde_json::from_slice(&document).map_err(EvidenceError::DocumentNotJson)?;
        let media_type = probe.get("mediaType").and_then(|m| m.as_str());
        let format = if media_type.is_some_and(cosign::is_sigstore_bundle_media_type) {
            "sigstore-bundle"
        } else if let Some(media_type) =
            media_type.filter(|t| t.starts_with("application/vnd.dev.sigstore.bundle"))
        {
            return Err(EvidenceError::BundleMediaType {
                media_type: media_type.to_string(),
            });
        } else {
            dsse::Envelope::parse(&document).map_err(EvidenceError::NotAnEnvelope)?;
            "dsse"
        };
        let blob = Digest::sha256_of(&document);
        // Kept by digest so the envelope can be verified again when the keyring changes; the
        // evidence row is what references it.
        self.blobs.put_small(&blob, document.clone()).await?;
        let origin = EvidenceOrigin {
            repository_path: repo.path().to_string(),
            subject: subject.to_string(),
            item: blob.to_string(),
            format: format.into(),
            source: "api".into(),
            repository: repo.as_str().into(),
            manifest: None,
            blob: blob.to_string(),
            signature: None,
            pushed_by: actor.principal.clone(),
        };
        self.record(
            None,
            vec![Candidate {
                origin: origin.clone(),
                bytes: Some(document.to_vec()),
            }],
            actor,
            Some(&blob),
        )
        .await?;
        self.metadata
            .evidence_for(&origin.repository_path, &origin.subject)
            .await?
            .into_iter()
            .find(|row| row.origin.item == origin.item)
            .ok_or_else(|| StoreError::Corrupt("submitted evidence was not stored".into()).into())
    }

    /// Every piece of evidence about `digest` under `repo`'s path (all stages share it).
    pub async fn evidence_for(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<EvidenceRow>> {
        Ok(self
            .metadata
            .evidence_for(repo.path(), &digest.to_string())
            .await?)
    }

    /// The artifact `digest` in `repo`, if the repository holds it.
    pub async fn artifact(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ArtifactInfo>> {
        let Some(stored) = self.metadata.manifest(repo, digest).await? else {
            return Ok(None);
        };
        Ok(Some(ArtifactInfo {
            media_type: stored.media_type,
            size: stored.content.len(),
            tags: self
                .metadata
                .tags_of(repo.as_str(), &digest.to_string())
                .await?,
        }))
    }

    /// The independent-rebuild agreement of `digest` in `repo`'s repository path, and the other
    /// digests of that path that its verified provenance's source revisions were also built
    /// into (among the newest [`RECENT_PROVENANCE`] provenance of the path).
    pub async fn rebuilds(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<(Rebuilds, Vec<Mismatch>)> {
        let path = repo.path();
        let digest = digest.to_string();
        let own: Vec<(Provenance, String)> = self
            .metadata
            .evidence_for(path, &digest)
            .await?
            .iter()
            .filter(|row| row.verdict.status == "verified")
            .filter_map(provenance_of)
            .collect();
        let recent: Vec<(String, Provenance, String)> = self
            .metadata
            .recent_provenance(path, RECENT_PROVENANCE)
            .await?
            .iter()
            .filter_map(|row| {
                provenance_of(row).map(|(facts, key)| (row.origin.subject.clone(), facts, key))
            })
            .collect();
        let agreement = Rebuilds::of(own.iter().map(|(facts, key)| (facts, key.as_str())));
        let found = mismatches(
            &digest,
            own.iter().map(|(facts, key)| (facts, key.as_str())),
            recent
                .iter()
                .map(|(subject, facts, key)| (subject.as_str(), facts, key.as_str())),
        );
        Ok((agreement, found))
    }

    /// Flags raised on `digest` in `repo` (e.g. `evidence_revoked`).
    pub async fn flags(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<ArtifactFlag>> {
        Ok(self
            .metadata
            .artifact_flags(repo.as_str(), &digest.to_string())
            .await?)
    }

    /// Adds a key to the keyring and re-verifies evidence that no key could verify so far.
    pub async fn add_key(&self, new: NewKey, actor: &Actor) -> Result<KeyRow> {
        let public_key = match &new.algorithm {
            Some(algorithm) => {
                let algorithm =
                    KeyAlgorithm::from_str(algorithm).map_err(EvidenceError::PublicKey)?;
                PublicKey::from_pem_with_algorithm(&new.public_key_pem, algorithm)
            }
            None => PublicKey::from_pem(&new.public_key_pem),
        }
        .map_err(EvidenceError::PublicKey)?;
        validate_key_name(&new.name)?;
        if new.purposes.is_empty() {
            return Err(EvidenceError::NoPurpose);
        }
        for purpose in &new.purposes {
            Purpose::from_str(purpose).map_err(|source| EvidenceError::Purpose {
                purpose: purpose.clone(),
                source,
            })?;
        }
        if new.scope.is_empty() {
            return Err(EvidenceError::NoScope);
        }
        for pattern in &new.scope {
            ScopePattern::from_str(pattern).map_err(|source| EvidenceError::Scope {
                pattern: pattern.clone(),
                source,
            })?;
        }
        if let (Some(from), Some(until)) = (new.not_before, new.not_after)
            && until <= from
        {
            return Err(EvidenceError::Validity { not_before: from });
        }
        let now = now_millis();
        let row = KeyRow {
            key_id: public_key.key_id().to_string(),
            name: new.name.clone(),
            algorithm: public_key.algorithm().as_str().into(),
            public_key: public_key.to_pem(),
            purposes: new.purposes.clone(),
            scope: new.scope.clone(),
            not_before: new.not_before,
            not_after: new.not_after,
            status: "active".into(),
            status_at: None,
            status_reason: None,
            compromised: false,
            created_at: now,
            created_by: actor.principal.clone(),
        };
        let record = AuditEvent::KeyAdded {
            key_id: row.key_id.clone(),
            name: row.name.clone(),
            algorithm: row.algorithm.clone(),
            purposes: row.purposes.clone(),
            scope: row.scope.clone(),
            not_before_millis: row.not_before,
            not_after_millis: row.not_after,
        };
        self.change_keyring(
            KeyChange::Add(row.clone()),
            record,
            Affected::Rejected,
            actor,
        )
        .await?;
        Ok(row)
    }

    /// Retires or revokes the key named `name`.
    pub async fn change_status(
        &self,
        name: &str,
        change: StatusChange,
        reason: &str,
        actor: &Actor,
    ) -> Result<KeyRow> {
        let (_, rows) = self.metadata.keyring().await?;
        let row = rows
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| EvidenceError::KeyUnknown {
                name: name.to_string(),
            })?
            .clone();
        if row.status == "revoked" {
            return Err(EvidenceError::KeyStatus {
                name: name.to_string(),
                status: row.status.clone(),
            });
        }
        if row.status == "retired" && change == StatusChange::Retire {
            return Err(EvidenceError::KeyStatus {
                name: name.to_string(),
                status: row.status.clone(),
            });
        }
        if reason.trim().is_empty() {
            return Err(EvidenceError::ReasonMissing);
        }
        let status = if change == StatusChange::Retire {
            "retired"
        } else {
            "revoked"
        };
        let compromised = change == StatusChange::Compromised;
        let key_change = KeyChange::Status {
            key_id: row.key_id.clone(),
            status: status.into(),
            at: now_millis(),
            reason: reason.into(),
            compromised,
        };
        let event = AuditEvent::KeyStatusChanged {
            key_id: row.key_id.clone(),
            name: row.name.clone(),
            status: status.into(),
            reason: reason.into(),
            compromised,
        };
        self.change_keyring(key_change, event, Affected::OfKey(&row.key_id), actor)
            .await?;
        let (_, rows) = self.metadata.keyring().await?;
        rows.into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| StoreError::Corrupt("changed key vanished".into()).into())
    }

    /// Applies a keyring change: computes the keyring after it, re-verifies the evidence whose
    /// verdict it can change (every rejected item for an added key, every item of the key for a
    /// status change), and commits the change, the new verdicts, any `evidence_revoked` flags on
    /// artifacts in gated stages and the audit records together.
    async fn change_keyring(
        &self,
        change: KeyChange,
        event: AuditEvent,
        affected: Affected<'_>,
        actor: &Actor,
    ) -> Result<()> {
        let guard = self.lock.lock().await;
        let keyring = self.metadata.keyring().await?;
        self.change_keyring_locked(&guard, keyring, change, event, affected, actor)
            .await
    }

    /// [`Self::change_keyring`] for a caller that already holds the lock (`_guard`) and read
    /// `keyring` (its version and rows) under it, so that it can check the key it changes and
    /// compute the change under the same lock as the write (a change computed from a row read
    /// before the lock could undo a concurrent one). The write is refused if the keyring's
    /// version moved since `keyring` was read (another process on the same database).
    async fn change_keyring_locked(
        &self,
        _guard: &tokio::sync::MutexGuard<'_, ()>,
        keyring: (i64, Vec<KeyRow>),
        change: KeyChange,
        event: AuditEvent,
        affected: Affected<'_>,
        actor: &Actor,
    ) -> Result<()> {
        let (version, mut rows) = keyring;
        match &change {
            KeyChange::Add(row) => {
                if rows.iter().any(|r| r.name == row.name) {
                    return Err(EvidenceError::NameTaken {
                        name: row.name.clone(),
                    });
                }
                if let Some(existing) = rows.iter().find(|r| r.key_id == row.key_id) {
                    return Err(EvidenceError::KeyPresent {
                        existing: existing.name.clone(),
                    });
                }
                rows.push(row.clone())
            }
            KeyChange::Status {
                key_id,
                status,
                at,
                reason,
                compromised,
            } => {
                for row in rows.iter_mut().filter(|r| &r.key_id == key_id) {
                    row.status = status.clone();
                    row.status_at = Some(*at);
                    row.status_reason = Some(reason.clone());
                    row.compromised = *compromised;
                }
            }
            KeyChange::Update {
                key_id,
                purposes,
                scope,
                not_after,
            } => {
                for row in rows.iter_mut().filter(|r| &r.key_id == key_id) {
                    row.purposes = purposes.clone();
                    row.scope = scope.clone();
                    row.not_after = *not_after;
                }
            }
        }
        let next = keyring_from(version + 1, &rows)?;
        let now = now_millis();
        let mut records = vec![AuditRecord {
            time_millis: now,
            actor: actor.clone(),
            event,
        }];
        let mut updates = Vec::new();
        let mut flags = Vec::new();
        // Another replica may record evidence (verified against the keyring as it stands) while
        // this scan runs: the write is refused if a row past the scan arrived, and the scan goes
        // on from where it stopped, so no row escapes the change's re-verification.
        let mut after = 0;
        let mut rounds = 0;
        loop {
            loop {
                let page = self.metadata.evidence_page(after, 500).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for row in page {
                    let of_key = |key_id: &str| row.verdict.key_id.as_deref() == Some(key_id);
                    let candidate = match affected {
                        Affected::Rejected => row.verdict.status == "rejected",
                        Affected::OfKey(key_id) => of_key(key_id),
                        Affected::RejectedAndOfKey(key_id) => {
                            row.verdict.status == "rejected" || of_key(key_id)
                        }
                    };
                    if !candidate {
                        continue;
                    }
                    let bytes = self.read_item(&row.origin.format, &row.origin.blob).await?;
                    let verdict =
                        Self::verify_item(&next, &row.origin, bytes.as_deref(), row.first_seen_at);
                    if verdict.status == row.verdict.status && verdict.reason == row.verdict.reason
                    {
                        continue;
                    }
                    let Ok(subject) = Digest::from_str(&row.origin.subject) else {
                        continue;
                    };
                    records.push(AuditRecord {
                        time_millis: now,
                        actor: actor.clone(),
                        event: AuditEvent::EvidenceReverified {
                            repository_path: row.origin.repository_path.clone(),
                            subject: subject.clone(),
                            item: row.origin.item.clone(),
                            from: row.verdict.status.clone(),
                            to: verdict.status.clone(),
                            reason: verdict.reason.clone(),
                        },
                    });
                    // Evidence that counted and no longer does (a compromised key, or a key that
                    // lost the purpose, scope or validity that covered it): gated copies are flagged.
                    if row.verdict.status == "verified" && verdict.status != "verified" {
                        self.flag_gated(
                            &row,
                            &subject,
                            &verdict,
                            now,
                            actor,
                            &mut flags,
                            &mut records,
                        )
                        .await?;
                    }
                    updates.push(EvidenceUpdate {
                        id: row.id,
                        verdict,
                    });
                }
            }
            match self
                .metadata
                .change_keyring_after_scan(
                    version,
                    Some(after),
                    &change,
                    &updates,
                    &flags,
                    &records,
                )
                .await
            {
                Err(KeyringWriteError::EvidenceArrived { .. }) if rounds < 10 => rounds += 1,
                outcome => {
                    outcome?;
                    break;
                }
            }
        }
        for update in &updates {
            metrics::counter!(crate::metrics::EVIDENCE_REVERIFIED, "status" => update.verdict.status.clone())
                .increment(1);
        }
        Ok(())
    }

    /// Flags every copy of the artifact in a gated stage whose evidence a compromised key voided,
    /// with an alert record for each.
    #[allow(clippy::too_many_arguments)]
    async fn flag_gated(
        &self,
        row: &EvidenceRow,
        subject: &Digest,
        verdict: &EvidenceVerdict,
        now: i64,
        actor: &Actor,
        flags: &mut Vec<ArtifactFlag>,
        records: &mut Vec<AuditRecord>,
    ) -> Result<()> {
        for repository in self
            .metadata
            .repositories_holding(&row.origin.subject)
            .await?
        {
            let Ok(repo) = RepoName::from_str(&repository) else {
                continue;
            };
            if repo.path() != row.origin.repository_path {
                continue;
            }
            let gated = self
                .stages
                .stage_of(&repo)
                .is_ok_and(|stage| stage.mode == StageMode::Gated);
            if !gated
                || flags
                    .iter()
                    .any(|f| f.repository == repository && f.digest == row.origin.subject)
            {
                continue;
            }
            let reason = verdict.reason.clone().unwrap_or_default();
            flags.push(ArtifactFlag {
                repository: repository.clone(),
                digest: row.origin.subject.clone(),
                flag: "evidence_revoked".into(),
                reason: reason.clone(),
            });
            records.push(AuditRecord {
                time_millis: now,
                actor: actor.clone(),
                event: AuditEvent::EvidenceRevoked {
                    repository: repo,
                    digest: subject.clone(),
                    key_name: verdict.key_name.clone().unwrap_or_default(),
                    reason,
                },
            });
        }
        Ok(())
    }
}

/// Which stored items a keyring change can give another verdict.
#[derive(Debug, Clone, Copy)]
enum Affected<'a> {
    /// Rejected items (a key was added).
    Rejected,
    /// The items of this key (its status changed).
    OfKey(&'a str),
    /// Rejected items and the items of this key (what it may vouch for changed).
    RejectedAndOfKey(&'a str),
}

/// Whether the key with id `key_id` is in `keyring` and its scope covers `repository_path`.
fn key_covers(keyring: &Keyring, key_id: Option<&str>, repository_path: &str) -> bool {
    keyring.keys.iter().any(|key| {
        Some(key.key_id.to_string().as_str()) == key_id
            && key
                .scope
                .iter()
                .any(|pattern| pattern.matches(repository_path))
    })
}

/// Key names are short identifiers that read well in the CLI and in policy.
fn validate_key_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(EvidenceError::KeyName {
            name: name.to_string(),
        })
    }
}

/// A shared handle to the service.
pub type SharedEvidence = Arc<EvidenceService>;

/// How many of a repository path's newest provenance attestations a rebuild check reads.
pub const RECENT_PROVENANCE: u32 = 1000;

/// The provenance facts of a verified evidence row, with the name of the key that signed it.
fn provenance_of(row: &EvidenceRow) -> Option<(Provenance, String)> {
    match serde_json::from_str::<Facts>(row.verdict.facts.as_deref()?).ok()? {
        Facts::Provenance(facts) => Some((facts, row.verdict.key_name.clone().unwrap_or_default())),
        _ => None,
    }
}
