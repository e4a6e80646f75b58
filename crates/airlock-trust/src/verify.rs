//! The verdict for one piece of evidence against a keyring snapshot.
//!
//! Each entry point parses the evidence completely (bounded), then finds *who* signed it by
//! trying the keyring's keys, then checks that the content is about the subject, and last that
//! the signer may vouch for it: status (compromised, revoked, retired), validity window, purpose
//! and repository scope. The signature is always checked before the key's status, so a rejection
//! for status still names the signer. Nothing here reads a clock: `seen_at_ms` is when airlock
//! first saw the evidence, in Unix milliseconds.
//!
//! When several keyring entries verify a signature (or an envelope carries several signatures),
//! the evidence counts if any of those signers passes the checks; otherwise the first signer's
//! rejection is returned, except that a compromised signer always wins so that it raises its
//! alert.

use std::fmt;
use std::str::FromStr;

use airlock_core::digest::{Digest, DigestAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::TrustError;
use crate::cosign::{
    BundleContent, COSIGN_SIGN_PREDICATE_TYPE, SigstoreBundle, SimpleSigningPayload,
    reference_repository_path,
};
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE, decode_base64, sign_envelope};
use crate::intoto::Statement;
use crate::keys::{KeyId, PublicKey, SigningKey, clip};

/// Largest base64 signature (the cosign annotation value) airlock decodes.
pub const MAX_SIGNATURE_B64_BYTES: usize = 16 * 1024;

/// Longest predicate type URI a purpose may name.
pub const MAX_PREDICATE_TYPE_BYTES: usize = 512;

// ---------------------------------------------------------------------------------------------
// The keyring as the verifier sees it
// ---------------------------------------------------------------------------------------------

/// What a key may vouch for: plain signing of artifacts, or attesting one predicate type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Signing artifacts (cosign `sign`): `sign`.
    Sign,
    /// Attesting predicates of one type: `attest:<predicate-type-uri>`.
    Attest(String),
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sign => f.write_str("sign"),
            Self::Attest(predicate_type) => write!(f, "attest:{predicate_type}"),
        }
    }
}

impl FromStr for Purpose {
    type Err = TrustError;

    fn from_str(value: &str) -> Result<Self, TrustError> {
        let invalid = |reason: &str| {
            TrustError::malformed(
                "key purpose",
                format!(
                    "{:?}: {reason}; use `sign` or `attest:<predicate type URI>`",
                    clip(value, 64)
                ),
            )
        };
        if value == "sign" {
            return Ok(Self::Sign);
        }
        let predicate_type = value
            .strip_prefix("attest:")
            .ok_or_else(|| invalid("unknown purpose"))?;
        if predicate_type.is_empty() {
            return Err(invalid("the predicate type is empty"));
        }
        if predicate_type.len() > MAX_PREDICATE_TYPE_BYTES {
            return Err(invalid("the predicate type is too long"));
        }
        if predicate_type
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("the predicate type contains whitespace"));
        }
        Ok(Self::Attest(predicate_type.to_string()))
    }
}

impl Serialize for Purpose {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

/// A repository path pattern (without the stage, since one artifact crosses stages): `*` matches
/// every path, `team/*` every path under `team/` at any depth, anything else exactly one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopePattern(String);

impl ScopePattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `repository_path` (e.g. `team/app`) is in scope.
    pub fn matches(&self, repository_path: &str) -> bool {
        if self.0 == "*" {
            return true;
        }
        match self.0.strip_suffix('*') {
            // "team/*": the prefix keeps its slash, and something must follow it.
            Some(prefix) => repository_path
                .strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty()),
            None => repository_path == self.0,
        }
    }
}

impl fmt::Display for ScopePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ScopePattern {
    type Err = TrustError;

    fn from_str(value: &str) -> Result<Self, TrustError> {
        let invalid = |reason: &str| {
            TrustError::malformed(
                "scope pattern",
                format!(
                    "{:?}: {reason}; use `*`, `team/*` or `team/app` (repository paths without the stage)",
                    clip(value, 64)
                ),
            )
        };
        if value.is_empty() {
            return Err(invalid("the pattern is empty"));
        }
        if value.len() > 255 {
            return Err(invalid("the pattern is longer than 255 characters"));
        }
        let segments: Vec<&str> = value.split('/').collect();
        let last = segments.len() - 1;
        for (index, segment) in segments.iter().enumerate() {
            if segment.is_empty() {
                return Err(invalid("a path segment is empty"));
            }
            if segment.contains('*') {
                if *segment != "*" || index != last {
                    return Err(invalid("`*` may only be the whole last segment"));
                }
                continue;
            }
            if !segment.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            }) {
                return Err(invalid(
                    "segments are lowercase letters, digits, '.', '_' and '-'",
                ));
            }
        }
        Ok(Self(value.to_string()))
    }
}

impl Serialize for ScopePattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ScopePattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum KeyStatus {
    /// In use.
    Active,
    /// No longer used for new signatures; evidence first seen up to `at_ms` stays valid.
    Retired {
        /// When the key was retired (Unix ms).
        at_ms: i64,
    },
    /// Withdrawn. If `compromised`, every signature it ever made is void; otherwise evidence
    /// first seen before `at_ms` stays valid.
    Revoked {
        /// When the key was revoked (Unix ms).
        at_ms: i64,
        /// Why, as the key admin wrote it.
        reason: String,
        /// Whether the private key is (believed) in other hands.
        compromised: bool,
    },
}

/// One trusted signer: its public key and what it may vouch for, where, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The public key's id (equal to `public_key.key_id()`).
    pub key_id: KeyId,
    /// A human name, unique in the keyring.
    pub name: String,
    /// The key.
    pub public_key: PublicKey,
    /// What it may vouch for.
    pub purposes: Vec<Purpose>,
    /// Which repository paths it may vouch for.
    pub scope: Vec<ScopePattern>,
    /// Evidence first seen before this time (Unix ms) is not accepted.
    pub not_before_ms: Option<i64>,
    /// Evidence first seen after this time (Unix ms) is not accepted.
    pub not_after_ms: Option<i64>,
    /// Its status.
    pub status: KeyStatus,
}

impl TrustedKey {
    /// An active key without a validity window.
    pub fn new(
        name: impl Into<String>,
        public_key: PublicKey,
        purposes: Vec<Purpose>,
        scope: Vec<ScopePattern>,
    ) -> Self {
        Self {
            key_id: public_key.key_id(),
            name: name.into(),
            public_key,
            purposes,
            scope,
            not_before_ms: None,
            not_after_ms: None,
            status: KeyStatus::Active,
        }
    }

    /// Whether a signature hint (DSSE `keyid`, bundle `publicKey.hint`) names this key: its hex
    /// id, the base64 of its id bytes, or its name.
    pub fn matches_hint(&self, hint: &str) -> bool {
        !hint.is_empty() && (self.name == hint || self.key_id.matches_hint(hint))
    }
}

/// A snapshot of the keyring; `version` changes whenever a key does, so verdicts can be cached
/// by (evidence digest, keyring version).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keyring {
    /// The snapshot's version.
    pub version: i64,
    /// The keys, in a stable order (the first matching signer is reported).
    pub keys: Vec<TrustedKey>,
}

impl Keyring {
    /// The key a hint names, if any (see [`TrustedKey::matches_hint`]).
    pub fn find_by_hint(&self, hint: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|key| key.matches_hint(hint))
    }
}

// ---------------------------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------------------------

/// The artifact the evidence must be about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceSubject {
    /// The repository path without the stage, e.g. `team/app`.
    pub repository_path: String,
    /// The artifact's manifest digest.
    pub digest: Digest,
}

/// What kind of evidence was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A signature (cosign simple signing, a `messageSignature` bundle, or a cosign sign/v1
    /// statement).
    Signature,
    /// An in-toto attestation.
    Attestation,
}

impl EvidenceKind {
    /// `signature` or `attestation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Attestation => "attestation",
        }
    }
}

impl fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Evidence that counts: who signed it and, for attestations, what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// Signature or attestation.
    pub kind: EvidenceKind,
    /// The signer's key id.
    pub key_id: KeyId,
    /// The signer's name in the keyring.
    pub key_name: String,
    /// The statement's predicate type (DSSE evidence only).
    pub predicate_type: Option<String>,
    /// The predicate (attestations only).
    pub predicate: Option<serde_json::Value>,
}

/// Why evidence does not count. Each message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The evidence could not be parsed.
    #[error("the evidence is malformed: {0}")]
    Malformed(String),
    /// The evidence is larger than airlock accepts.
    #[error("the evidence is larger than the {limit}-byte limit")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No key in the keyring verifies the signature.
    #[error(
        "no key in the keyring verifies this signature; add the signer's public key with `airlock keys add`"
    )]
    UnknownKey,
    /// A signature names a trusted key but does not verify with it: the evidence was altered or
    /// forged.
    #[error(
        "the signature claims key `{key_name}` ({key_id}) but does not verify with it: the evidence was altered or forged; re-sign the artifact and investigate where this copy came from"
    )]
    BadSignature {
        /// The named key's id.
        key_id: KeyId,
        /// The named key's name.
        key_name: String,
    },
    /// The signer's validity window had not begun when the evidence was first seen.
    #[error(
        "key `{key_name}` is valid only from {}, after this evidence was first seen; re-sign with a currently valid key or correct the key's validity window",
        utc(*.not_before_ms)
    )]
    KeyNotYetValid {
        /// The signer.
        key_name: String,
        /// Start of its validity window (Unix ms).
        not_before_ms: i64,
    },
    /// The signer's validity window had ended when the evidence was first seen.
    #[error(
        "key `{key_name}` expired at {}, before this evidence was first seen; re-sign with a current key, or, if the key's validity was set too short, extend it: `airlock keys update {key_name} --not-after <later time>`",
        utc(*.not_after_ms)
    )]
    KeyExpired {
        /// The signer.
        key_name: String,
        /// End of its validity window (Unix ms).
        not_after_ms: i64,
    },
    /// The signer was retired before the evidence was first seen.
    #[error(
        "key `{key_name}` was retired at {}, before this evidence was first seen; re-sign with an active key",
        utc(*.retired_at_ms)
    )]
    KeyRetired {
        /// The signer.
        key_name: String,
        /// When it was retired (Unix ms).
        retired_at_ms: i64,
    },
    /// The signer was revoked before the evidence was first seen.
    #[error(
        "key `{key_name}` was revoked ({reason}) before this evidence was first seen; re-sign with an active key"
    )]
    KeyRevoked {
        /// The signer.
        key_name: String,
        /// Why it was revoked.
        reason: String,
    },
    /// The signer is compromised: nothing it ever signed counts.
    #[error(
        "key `{key_name}` is compromised ({reason}): every signature it made is void; re-sign with an active key and investigate how this evidence was produced"
    )]
    KeyCompromised {
        /// The signer.
        key_name: String,
        /// Why it was revoked.
        reason: String,
    },
    /// The signer may not vouch for this repository.
    #[error(
        "key `{key_name}` is not trusted for repository `{repository_path}` (outside its scope); sign with a key scoped to it or widen the key's scope: `airlock keys update {key_name} --scope <pattern covering {repository_path}>` (with every pattern it should keep)"
    )]
    OutOfScope {
        /// The signer.
        key_name: String,
        /// The repository path (without stage).
        repository_path: String,
    },
    /// The signed payload is about another manifest.
    #[error("the signature is for manifest {found}, not {expected}; sign {expected} itself")]
    DigestMismatch {
        /// The subject's digest.
        expected: Digest,
        /// The digest the evidence names.
        found: String,
    },
    /// The signed payload names another repository.
    #[error(
        "the signature names `{docker_reference}`, which is not repository `{expected_path}`; sign the artifact under its own repository name"
    )]
    ReferenceMismatch {
        /// The subject's repository path (without stage).
        expected_path: String,
        /// The reference the payload names.
        docker_reference: String,
    },
    /// The DSSE payload is not an in-toto statement.
    #[error(
        "the DSSE payload type is `{found}`, expected `application/vnd.in-toto+json`; attest an in-toto statement"
    )]
    WrongPayloadType {
        /// The payload type found.
        found: String,
    },
    /// No subject of the statement is the artifact.
    #[error("the attestation's subjects do not include {digest}; attest {digest} itself")]
    SubjectMismatch {
        /// The subject's digest.
        digest: Digest,
    },
    /// The signer may not attest this predicate type.
    #[error(
        "key `{key_name}` is not trusted to attest `{predicate_type}`; give the key the purpose: `airlock keys update {key_name} --add-purpose attest:{predicate_type}` (no new key pair needed), or attest with a key that has it"
    )]
    PredicateNotAllowed {
        /// The signer.
        key_name: String,
        /// The statement's predicate type.
        predicate_type: String,
    },
    /// The signer may not sign artifacts.
    #[error(
        "key `{key_name}` lacks the `sign` purpose; sign with a signing key or give the key the purpose: `airlock keys update {key_name} --add-purpose sign`"
    )]
    NotSigning {
        /// The signer.
        key_name: String,
    },
}

impl Rejection {
    /// A stable snake_case id for the variant, for APIs, metrics and policy input.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::KeyNotYetValid { .. } => "key_not_yet_valid",
            Self::KeyExpired { .. } => "key_expired",
            Self::KeyRetired { .. } => "key_retired",
            Self::KeyRevoked { .. } => "key_revoked",
            Self::KeyCompromised { .. } => "key_compromised",
            Self::OutOfScope { .. } => "out_of_scope",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::ReferenceMismatch { .. } => "reference_mismatch",
            Self::WrongPayloadType { .. } => "wrong_payload_type",
            Self::SubjectMismatch { .. } => "subject_mismatch",
            Self::PredicateNotAllowed { .. } => "predicate_not_allowed",
            Self::NotSigning { .. } => "not_signing",
        }
    }

    /// The signer the rejection names, when verification got as far as identifying it.
    pub fn key_name(&self) -> Option<&str> {
        match self {
            Self::BadSignature { key_name, .. }
            | Self::KeyNotYetValid { key_name, .. }
            | Self::KeyExpired { key_name, .. }
            | Self::KeyRetired { key_name, .. }
            | Self::KeyRevoked { key_name, .. }
            | Self::KeyCompromised { key_name, .. }
            | Self::OutOfScope { key_name, .. }
            | Self::PredicateNotAllowed { key_name, .. }
            | Self::NotSigning { key_name } => Some(key_name),
            Self::Malformed(_)
            | Self::TooLarge { .. }
            | Self::UnknownKey
            | Self::DigestMismatch { .. }
            | Self::ReferenceMismatch { .. }
            | Self::WrongPayloadType { .. }
            | Self::SubjectMismatch { .. } => None,
        }
    }

    /// Whether this rejection is an anomaly that should raise an alert: a signature that claims
    /// a trusted key but does not verify, or evidence signed by a compromised key.
    pub fn raises_alert(&self) -> bool {
        matches!(
            self,
            Self::BadSignature { .. } | Self::KeyCompromised { .. }
        )
    }
}

impl From<TrustError> for Rejection {
    fn from(error: TrustError) -> Self {
        match error {
            TrustError::TooLarge { limit, .. } => Self::TooLarge { limit },
            other => Self::Malformed(other.to_string()),
        }
    }
}

/// The outcome of verifying one piece of evidence.
pub type Verdict = Result<Verified, Rejection>;

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Verifies a cosign simple signature (`.sig` layer or `SIGNATURE_ARTIFACT_TYPE` referrer):
/// `payload` is the layer's bytes, `signature_b64` its [`crate::cosign::SIGNATURE_ANNOTATION`].
///
/// The payload must name the subject's digest and, stage and host aside, its repository; the
/// signer needs the `sign` purpose.
pub fn verify_cosign_signature(
    keyring: &Keyring,
    subject: &EvidenceSubject,
    payload: &[u8],
    signature_b64: &str,
    seen_at_ms: i64,
) -> Verdict {
    TrustError::check_size(
        "signature annotation",
        signature_b64.len(),
        MAX_SIGNATURE_B64_BYTES,
    )?;
    let claim = SimpleSigningPayload::parse(payload)?;
    let signature = decode_base64(signature_b64.trim(), "signature annotation", "signature")?;
    let signers = find_signers(
        keyring,
        Signed::Message(payload),
        &[SignatureClaim {
            hint: "",
            sig: &signature,
        }],
    )?;
    if claim.docker_manifest_digest != subject.digest {
        return Err(Rejection::DigestMismatch {
            expected: subject.digest.clone(),
            found: claim.docker_manifest_digest.to_string(),
        });
    }
    if reference_repository_path(&claim.docker_reference).as_deref()
        != Some(subject.repository_path.as_str())
    {
        return Err(Rejection::ReferenceMismatch {
            expected_path: subject.repository_path.clone(),
            docker_reference: clip(&claim.docker_reference, 256),
        });
    }
    let signer = choose_signer(&signers, &Purpose::Sign, subject, seen_at_ms)?;
    Ok(verified(EvidenceKind::Signature, signer, None, None))
}

/// Verifies a DSSE envelope holding an in-toto statement (`.att` layer or attestation
/// referrer). The statement must name the subject's digest; the signer needs the purpose
/// `attest:<predicate type>` — or `sign` for cosign's sign/v1 statements, which are signatures.
pub fn verify_attestation(
    keyring: &Keyring,
    subject: &EvidenceSubject,
    envelope_bytes: &[u8],
    seen_at_ms: i64,
) -> Verdict {
    let envelope = Envelope::parse(envelope_bytes)?;
    verify_envelope(keyring, subject, &envelope, None, seen_at_ms)
}

/// Verifies a key-signed Sigstore bundle (cosign v3's referrer format). A `dsseEnvelope` is
/// verified as [`verify_attestation`] does; a `messageSignature` must sign the subject's SHA-256
/// digest and needs the `sign` purpose. Keyless (certificate) bundles are refused as malformed.
pub fn verify_sigstore_bundle(
    keyring: &Keyring,
    subject: &EvidenceSubject,
    bundle_bytes: &[u8],
    seen_at_ms: i64,
) -> Verdict {
    let bundle = SigstoreBundle::parse(bundle_bytes)?;
    let hint = bundle.key_hint.as_deref();
    match &bundle.content {
        BundleContent::DsseEnvelope(envelope) => {
            // The bundle specification: an envelope must carry exactly one signature.
            if envelope.signatures.len() != 1 {
                return Err(Rejection::Malformed(format!(
                    "a Sigstore bundle's DSSE envelope must carry exactly one signature, not {}",
                    envelope.signatures.len()
                )));
            }
            verify_envelope(keyring, subject, envelope, hint, seen_at_ms)
        }
        BundleContent::MessageSignature {
            sha256_digest,
            signature,
        } => {
            // The signature is checked over the artifact's own digest: the bundle's
            // `messageDigest` field is a hint the specification forbids verifying with.
            let artifact_digest: [u8; 32] = match hex::decode(subject.digest.hex()) {
                Ok(bytes) if subject.digest.algorithm() == DigestAlgorithm::Sha256 => bytes
                    .try_into()
                    .map_err(|_| Rejection::Malformed("subject digest is not 32 bytes".into()))?,
                _ => {
                    return Err(Rejection::Malformed(
                        "message signatures are verified over sha256 artifact digests only".into(),
                    ));
                }
            };
            let signers = find_signers(
                keyring,
                Signed::Prehash(&artifact_digest),
                &[SignatureClaim {
                    hint: hint.unwrap_or_default(),
                    sig: signature,
                }],
            );
            let names_subject = &artifact_digest == sha256_digest;
            let signers = match signers {
                Ok(signers) => signers,
                // A signature over another artifact: say so rather than "unknown key".
                Err(_) if !names_subject => {
                    return Err(Rejection::DigestMismatch {
                        expected: subject.digest.clone(),
                        found: format!("sha256:{}", hex::encode(sha256_digest)),
                    });
                }
                Err(rejection) => return Err(rejection),
            };
            if !names_subject {
                return Err(Rejection::DigestMismatch {
                    expected: subject.digest.clone(),
                    found: format!("sha256:{}", hex::encode(sha256_digest)),
                });
            }
            let signer = choose_signer(&signers, &Purpose::Sign, subject, seen_at_ms)?;
            Ok(verified(EvidenceKind::Signature, signer, None, None))
        }
    }
}

/// Signs `payload` as `cosign sign` does: the payload bytes to store as the layer, and the
/// base64 signature for its [`crate::cosign::SIGNATURE_ANNOTATION`].
pub fn sign_cosign_payload(key: &SigningKey, payload: &SimpleSigningPayload) -> (Vec<u8>, String) {
    let bytes = payload.to_bytes();
    let signature = STANDARD.encode(key.sign(&bytes));
    (bytes, signature)
}

/// Signs `statement` into a DSSE envelope as `cosign attest` does.
pub fn attest(key: &SigningKey, statement: &Statement) -> Envelope {
    sign_envelope(key, IN_TOTO_PAYLOAD_TYPE, &statement.to_json())
}

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

/// What the signatures cover.
#[derive(Clone, Copy)]
enum Signed<'a> {
    /// The message itself.
    Message(&'a [u8]),
    /// Only the SHA-256 digest of the message.
    Prehash(&'a [u8; 32]),
}

/// One signature and the key id its producer claimed (empty: none).
struct SignatureClaim<'a> {
    hint: &'a str,
    sig: &'a [u8],
}

fn verifies(key: &PublicKey, signed: Signed<'_>, signature: &[u8]) -> bool {
    match signed {
        Signed::Message(message) => key.verify(message, signature).is_ok(),
        Signed::Prehash(digest) => key.verify_prehash(digest, signature).is_ok(),
    }
}

/// The keyring entries that verify at least one signature, in keyring order per signature. A
/// signature whose hint names a trusted key is tried with that key only.
fn find_signers<'k>(
    keyring: &'k Keyring,
    signed: Signed<'_>,
    claims: &[SignatureClaim<'_>],
) -> Result<Vec<&'k TrustedKey>, Rejection> {
    let mut signers: Vec<&TrustedKey> = Vec::new();
    let mut claimed_but_failed: Option<&TrustedKey> = None;
    for claim in claims {
        match keyring.find_by_hint(claim.hint) {
            Some(key) => {
                if verifies(&key.public_key, signed, claim.sig) {
                    push_unique(&mut signers, key);
                } else if claimed_but_failed.is_none() {
                    claimed_but_failed = Some(key);
                }
            }
            None => {
                for key in &keyring.keys {
                    if verifies(&key.public_key, signed, claim.sig) {
                        push_unique(&mut signers, key);
                    }
                }
            }
        }
    }
    if signers.is_empty() {
        return Err(match claimed_but_failed {
            Some(key) => Rejection::BadSignature {
                key_id: key.key_id.clone(),
                key_name: key.name.clone(),
            },
            None => Rejection::UnknownKey,
        });
    }
    Ok(signers)
}

fn push_unique<'k>(signers: &mut Vec<&'k TrustedKey>, key: &'k TrustedKey) {
    if !signers.iter().any(|known| std::ptr::eq(*known, key)) {
        signers.push(key);
    }
}

fn verify_envelope(
    keyring: &Keyring,
    subject: &EvidenceSubject,
    envelope: &Envelope,
    default_hint: Option<&str>,
    seen_at_ms: i64,
) -> Verdict {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Rejection::WrongPayloadType {
            found: clip(&envelope.payload_type, 128),
        });
    }
    let statement = Statement::parse(&envelope.payload)?;
    let pae = envelope.pae();
    let claims: Vec<SignatureClaim<'_>> = envelope
        .signatures
        .iter()
        .map(|signature| SignatureClaim {
            hint: if signature.keyid.is_empty() {
                default_hint.unwrap_or_default()
            } else {
                &signature.keyid
            },
            sig: &signature.sig,
        })
        .collect();
    let signers = find_signers(keyring, Signed::Message(&pae), &claims)?;
    if !statement.names_digest(&subject.digest) {
        return Err(Rejection::SubjectMismatch {
            digest: subject.digest.clone(),
        });
    }
    let (kind, purpose) = if statement.predicate_type == COSIGN_SIGN_PREDICATE_TYPE {
        (EvidenceKind::Signature, Purpose::Sign)
    } else {
        (
            EvidenceKind::Attestation,
            Purpose::Attest(statement.predicate_type.clone()),
        )
    };
    let signer = choose_signer(&signers, &purpose, subject, seen_at_ms)?;
    let predicate = match kind {
        EvidenceKind::Attestation => Some(statement.predicate),
        EvidenceKind::Signature => None,
    };
    Ok(verified(
        kind,
        signer,
        Some(statement.predicate_type),
        predicate,
    ))
}

/// The first signer that may vouch for `purpose` on `subject` at `seen_at_ms`; otherwise the
/// first signer's rejection, or a compromised signer's if there is one.
fn choose_signer<'k>(
    signers: &[&'k TrustedKey],
    purpose: &Purpose,
    subject: &EvidenceSubject,
    seen_at_ms: i64,
) -> Result<&'k TrustedKey, Rejection> {
    let mut first_rejection = None;
    for signer in signers {
        match check_key(signer, purpose, &subject.repository_path, seen_at_ms) {
            Ok(()) => return Ok(signer),
            Err(rejection @ Rejection::KeyCompromised { .. }) => {
                first_rejection = Some(rejection);
                break;
            }
            Err(rejection) => {
                first_rejection.get_or_insert(rejection);
            }
        }
    }
    // `signers` is never empty here (find_signers refuses that), so a rejection was recorded.
    Err(first_rejection.unwrap_or(Rejection::UnknownKey))
}

/// Whether `key` may vouch for `purpose` on `repository_path` for evidence first seen at
/// `seen_at_ms`: status, then validity window, then purpose, then scope.
fn check_key(
    key: &TrustedKey,
    purpose: &Purpose,
    repository_path: &str,
    seen_at_ms: i64,
) -> Result<(), Rejection> {
    let key_name = || key.name.clone();
    match &key.status {
        KeyStatus::Active => {}
        KeyStatus::Revoked {
            reason,
            compromised: true,
            ..
        } => {
            return Err(Rejection::KeyCompromised {
                key_name: key_name(),
                reason: reason.clone(),
            });
        }
        KeyStatus::Revoked {
            at_ms,
            reason,
            compromised: false,
        } => {
            if seen_at_ms >= *at_ms {
                return Err(Rejection::KeyRevoked {
                    key_name: key_name(),
                    reason: reason.clone(),
                });
            }
        }
        KeyStatus::Retired { at_ms } => {
            if seen_at_ms > *at_ms {
                return Err(Rejection::KeyRetired {
                    key_name: key_name(),
                    retired_at_ms: *at_ms,
                });
            }
        }
    }
    if let Some(not_before_ms) = key.not_before_ms
        && seen_at_ms < not_before_ms
    {
        return Err(Rejection::KeyNotYetValid {
            key_name: key_name(),
            not_before_ms,
        });
    }
    if let Some(not_after_ms) = key.not_after_ms
        && seen_at_ms > not_after_ms
    {
        return Err(Rejection::KeyExpired {
            key_name: key_name(),
            not_after_ms,
        });
    }
    if !key.purposes.contains(purpose) {
        return Err(match purpose {
            Purpose::Sign => Rejection::NotSigning {
                key_name: key_name(),
            },
            Purpose::Attest(predicate_type) => Rejection::PredicateNotAllowed {
                key_name: key_name(),
                predicate_type: clip(predicate_type, MAX_PREDICATE_TYPE_BYTES),
            },
        });
    }
    if !key
        .scope
        .iter()
        .any(|pattern| pattern.matches(repository_path))
    {
        return Err(Rejection::OutOfScope {
            key_name: key_name(),
            repository_path: repository_path.to_string(),
        });
    }
    Ok(())
}

fn verified(
    kind: EvidenceKind,
    signer: &TrustedKey,
    predicate_type: Option<String>,
    predicate: Option<serde_json::Value>,
) -> Verified {
    Verified {
        kind,
        key_id: signer.key_id.clone(),
        key_name: signer.name.clone(),
        predicate_type,
        predicate,
    }
}

/// Unix milliseconds as an RFC 3339 UTC timestamp (`2024-03-08T18:18:20.406Z`), for messages.
fn utc(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras of 146097 days).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::{SIGSTORE_BUNDLE_MEDIA_TYPE, SimpleSigningPayload};
    use crate::dsse::EnvelopeSignature;
    use crate::intoto::ResourceDescriptor;
    use sha2::{Digest as _, Sha256};

    const REAL_PUB: &str = include_str!("../../../tests/fixtures/cosign/real_signature.pub");
    const REAL_PAYLOAD: &[u8] =
        include_bytes!("../../../tests/fixtures/cosign/real_signature.payload.json");
    const REAL_SIG_B64: &str =
        include_str!("../../../tests/fixtures/cosign/real_signature.sig.b64");
    const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
    const NOW: i64 = 1_700_000_000_000;
    const MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

    fn subject() -> EvidenceSubject {
        EvidenceSubject {
            repository_path: "team/app".into(),
            digest: Digest::sha256_of(MANIFEST),
        }
    }

    fn other_digest() -> Digest {
        Digest::sha256_of(b"another manifest")
    }

    fn trusted(name: &str, key: &SigningKey, purposes: &[&str], scope: &[&str]) -> TrustedKey {
        TrustedKey::new(
            name,
            key.public_key(),
            purposes.iter().map(|p| p.parse().unwrap()).collect(),
            scope.iter().map(|s| s.parse().unwrap()).collect(),
        )
    }

    fn keyring(keys: Vec<TrustedKey>) -> Keyring {
        Keyring { version: 7, keys }
    }

    fn signer() -> (SigningKey, Keyring) {
        let key = SigningKey::generate_p256();
        let ring = keyring(vec![trusted(
            "ci",
            &key,
            &["sign", &format!("attest:{SLSA_V1}")],
            &["team/*"],
        )]);
        (key, ring)
    }

    fn cosign_signature(key: &SigningKey, reference: &str, digest: &Digest) -> (Vec<u8>, String) {
        sign_cosign_payload(key, &SimpleSigningPayload::new(reference, digest.clone()))
    }

    fn statement(predicate_type: &str, digest: &Digest) -> Statement {
        Statement::new_v1(
            vec![ResourceDescriptor::for_digest("app", digest)],
            predicate_type,
            serde_json::json!({"buildDefinition": {"buildType": "https://example.com/ci"}}),
        )
    }

    fn attestation(key: &SigningKey, predicate_type: &str, digest: &Digest) -> Vec<u8> {
        attest(key, &statement(predicate_type, digest)).to_json()
    }

    fn verify_sig(ring: &Keyring, payload: &[u8], signature: &str, seen_at_ms: i64) -> Verdict {
        verify_cosign_signature(ring, &subject(), payload, signature, seen_at_ms)
    }

    // --- cosign simple signatures -------------------------------------------------------------

    #[test]
    fn cosign_signature_by_a_trusted_key_is_verified() {
        let (key, ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "127.0.0.1:5000/dev/team/app", &subject().digest);
        let verified = verify_sig(&ring, &payload, &signature, NOW).unwrap();
        assert_eq!(verified.kind, EvidenceKind::Signature);
        assert_eq!(verified.key_name, "ci");
        assert_eq!(verified.key_id, key.public_key().key_id());
        assert_eq!(verified.predicate_type, None);
        assert_eq!(verified.predicate, None);
    }

    #[test]
    fn signature_made_in_another_stage_still_counts() {
        let (key, ring) = signer();
        let (payload, signature) = cosign_signature(
            &key,
            "registry.example.com/prod/team/app:1.0",
            &subject().digest,
        );
        assert!(verify_sig(&ring, &payload, &signature, NOW).is_ok());
    }

    #[test]
    fn real_cosign_signature_is_attributed_to_its_key() {
        let public = PublicKey::from_pem(REAL_PUB).unwrap();
        let ring = keyring(vec![TrustedKey::new(
            "sigstore-rs-test",
            public,
            vec![Purpose::Sign],
            vec!["*".parse().unwrap()],
        )]);
        let payload = SimpleSigningPayload::parse(REAL_PAYLOAD).unwrap();
        let subject = EvidenceSubject {
            repository_path: "busybox".into(),
            digest: payload.docker_manifest_digest.clone(),
        };
        // The signature verifies; the reference has no stage segment, so it names no airlock
        // repository and is refused for that, not for the signature.
        assert_eq!(
            verify_cosign_signature(&ring, &subject, REAL_PAYLOAD, REAL_SIG_B64.trim(), NOW),
            Err(Rejection::ReferenceMismatch {
                expected_path: "busybox".into(),
                docker_reference: "registry-testing.svc.lan/busybox".into(),
            })
        );
        // One changed byte (still a valid payload) and no key verifies it.
        let tampered = String::from_utf8(REAL_PAYLOAD.to_vec())
            .unwrap()
            .replace("sha256:f3cf", "sha256:f3ce");
        assert_eq!(
            verify_cosign_signature(&ring, &subject, tampered.as_bytes(), REAL_SIG_B64, NOW),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn cosign_signature_by_an_unknown_key_is_unknown_key() {
        let (_, ring) = signer();
        let stranger = SigningKey::generate_p256();
        let (payload, signature) =
            cosign_signature(&stranger, "registry.local/dev/team/app", &subject().digest);
        let rejection = verify_sig(&ring, &payload, &signature, NOW).unwrap_err();
        assert_eq!(rejection, Rejection::UnknownKey);
        assert!(rejection.to_string().contains("airlock keys add"));
    }

    #[test]
    fn tampered_cosign_payload_is_unknown_key() {
        let (key, ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        let tampered = String::from_utf8(payload)
            .unwrap()
            .replace("registry.local/dev/team/app", "registry.local/dev/team/apq");
        assert_eq!(
            verify_sig(&ring, tampered.as_bytes(), &signature, NOW),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn cosign_signature_for_another_digest_is_digest_mismatch() {
        let (key, ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &other_digest());
        let rejection = verify_sig(&ring, &payload, &signature, NOW).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::DigestMismatch {
                expected: subject().digest,
                found: other_digest().to_string(),
            }
        );
        assert!(rejection.to_string().contains(&other_digest().to_string()));
    }

    #[test]
    fn cosign_signature_for_another_repository_is_reference_mismatch() {
        let (key, ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/other", &subject().digest);
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW),
            Err(Rejection::ReferenceMismatch {
                expected_path: "team/app".into(),
                docker_reference: "registry.local/dev/team/other".into(),
            })
        );
    }

    #[test]
    fn key_without_sign_purpose_is_not_signing() {
        let key = SigningKey::generate_p256();
        let ring = keyring(vec![trusted(
            "sbom-bot",
            &key,
            &["attest:https://cyclonedx.org/bom"],
            &["*"],
        )]);
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW),
            Err(Rejection::NotSigning {
                key_name: "sbom-bot".into()
            })
        );
    }

    #[test]
    fn key_scoped_elsewhere_is_out_of_scope() {
        let key = SigningKey::generate_p256();
        let ring = keyring(vec![trusted("other-team", &key, &["sign"], &["other/*"])]);
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW),
            Err(Rejection::OutOfScope {
                key_name: "other-team".into(),
                repository_path: "team/app".into(),
            })
        );
    }

    #[test]
    fn validity_window_is_checked_at_first_sight() {
        let (key, mut ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        ring.keys[0].not_before_ms = Some(NOW + 1);
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW),
            Err(Rejection::KeyNotYetValid {
                key_name: "ci".into(),
                not_before_ms: NOW + 1
            })
        );
        assert!(verify_sig(&ring, &payload, &signature, NOW + 1).is_ok());
        ring.keys[0].not_before_ms = None;
        ring.keys[0].not_after_ms = Some(NOW);
        assert!(verify_sig(&ring, &payload, &signature, NOW).is_ok());
        let rejection = verify_sig(&ring, &payload, &signature, NOW + 1).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::KeyExpired {
                key_name: "ci".into(),
                not_after_ms: NOW
            }
        );
        assert!(rejection.to_string().contains("2023-11-14T22:13:20.000Z"));
    }

    #[test]
    fn retired_key_keeps_evidence_seen_before_retirement() {
        let (key, mut ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        ring.keys[0].status = KeyStatus::Retired { at_ms: NOW };
        assert!(verify_sig(&ring, &payload, &signature, NOW).is_ok());
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW + 1),
            Err(Rejection::KeyRetired {
                key_name: "ci".into(),
                retired_at_ms: NOW
            })
        );
    }

    #[test]
    fn revoked_key_keeps_only_evidence_seen_before_revocation() {
        let (key, mut ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        ring.keys[0].status = KeyStatus::Revoked {
            at_ms: NOW,
            reason: "rotated".into(),
            compromised: false,
        };
        assert!(verify_sig(&ring, &payload, &signature, NOW - 1).is_ok());
        let rejection = verify_sig(&ring, &payload, &signature, NOW).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::KeyRevoked {
                key_name: "ci".into(),
                reason: "rotated".into()
            }
        );
        assert!(!rejection.raises_alert());
    }

    #[test]
    fn compromised_key_voids_every_signature() {
        let (key, mut ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        ring.keys[0].status = KeyStatus::Revoked {
            at_ms: NOW,
            reason: "leaked in CI logs".into(),
            compromised: true,
        };
        let rejection = verify_sig(&ring, &payload, &signature, NOW - 1_000_000).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::KeyCompromised {
                key_name: "ci".into(),
                reason: "leaked in CI logs".into()
            }
        );
        assert!(rejection.raises_alert());
    }

    #[test]
    fn compromised_signer_wins_over_another_signers_rejection() {
        let key = SigningKey::generate_p256();
        let mut compromised = trusted("old-entry", &key, &["sign"], &["*"]);
        compromised.status = KeyStatus::Revoked {
            at_ms: 0,
            reason: "stolen".into(),
            compromised: true,
        };
        let out_of_scope = trusted("new-entry", &key, &["sign"], &["other/*"]);
        let ring = keyring(vec![out_of_scope, compromised]);
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW)
                .unwrap_err()
                .code(),
            "key_compromised"
        );
    }

    #[test]
    fn any_acceptable_entry_for_the_signing_key_counts() {
        let key = SigningKey::generate_p256();
        let narrow = trusted("narrow", &key, &["sign"], &["other/*"]);
        let wide = trusted("wide", &key, &["sign"], &["team/app"]);
        let ring = keyring(vec![narrow, wide]);
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        assert_eq!(
            verify_sig(&ring, &payload, &signature, NOW)
                .unwrap()
                .key_name,
            "wide"
        );
    }

    #[test]
    fn malformed_cosign_evidence_is_malformed() {
        let (key, ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        assert_eq!(
            verify_sig(&ring, b"{}", &signature, NOW)
                .unwrap_err()
                .code(),
            "malformed"
        );
        assert_eq!(
            verify_sig(&ring, &payload, "not base64!", NOW)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn oversized_cosign_evidence_is_too_large() {
        let (key, ring) = signer();
        let (payload, signature) =
            cosign_signature(&key, "registry.local/dev/team/app", &subject().digest);
        assert_eq!(
            verify_sig(
                &ring,
                &payload,
                &"A".repeat(MAX_SIGNATURE_B64_BYTES + 1),
                NOW
            ),
            Err(Rejection::TooLarge {
                limit: MAX_SIGNATURE_B64_BYTES
            })
        );
        let huge = vec![b' '; crate::cosign::MAX_SIMPLE_SIGNING_BYTES + 1];
        assert_eq!(
            verify_sig(&ring, &huge, &signature, NOW),
            Err(Rejection::TooLarge {
                limit: crate::cosign::MAX_SIMPLE_SIGNING_BYTES
            })
        );
    }

    // --- attestations -------------------------------------------------------------------------

    #[test]
    fn attestation_by_a_trusted_key_is_verified_with_its_predicate() {
        let (key, ring) = signer();
        let envelope = attestation(&key, SLSA_V1, &subject().digest);
        let verified = verify_attestation(&ring, &subject(), &envelope, NOW).unwrap();
        assert_eq!(verified.kind, EvidenceKind::Attestation);
        assert_eq!(verified.key_name, "ci");
        assert_eq!(verified.predicate_type.as_deref(), Some(SLSA_V1));
        assert_eq!(
            verified.predicate.unwrap()["buildDefinition"]["buildType"],
            "https://example.com/ci"
        );
    }

    #[test]
    fn ed25519_attestation_is_verified() {
        let key = SigningKey::generate_ed25519();
        let ring = keyring(vec![trusted(
            "ed",
            &key,
            &[&format!("attest:{SLSA_V1}")],
            &["*"],
        )]);
        let envelope = attestation(&key, SLSA_V1, &subject().digest);
        assert!(verify_attestation(&ring, &subject(), &envelope, NOW).is_ok());
    }

    #[test]
    fn attestation_with_another_payload_type_is_wrong_payload_type() {
        let (key, ring) = signer();
        let envelope = sign_envelope(&key, "text/plain", b"hello").to_json();
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope, NOW),
            Err(Rejection::WrongPayloadType {
                found: "text/plain".into()
            })
        );
    }

    #[test]
    fn attestation_about_another_artifact_is_subject_mismatch() {
        let (key, ring) = signer();
        let envelope = attestation(&key, SLSA_V1, &other_digest());
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope, NOW),
            Err(Rejection::SubjectMismatch {
                digest: subject().digest
            })
        );
    }

    #[test]
    fn attestation_of_a_predicate_the_key_may_not_attest_is_refused() {
        let (key, ring) = signer();
        let envelope = attestation(&key, "https://cyclonedx.org/bom", &subject().digest);
        let rejection = verify_attestation(&ring, &subject(), &envelope, NOW).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::PredicateNotAllowed {
                key_name: "ci".into(),
                predicate_type: "https://cyclonedx.org/bom".into()
            }
        );
        // The fix is to give the existing key the purpose, not to add a new key pair.
        let message = rejection.to_string();
        assert!(
            message
                .contains("airlock keys update ci --add-purpose attest:https://cyclonedx.org/bom"),
            "{message}"
        );
        assert!(!message.contains("keys add"), "{message}");
    }

    #[test]
    fn cosign_sign_statement_is_a_signature_and_needs_sign_purpose() {
        let (key, ring) = signer();
        let envelope = attestation(&key, COSIGN_SIGN_PREDICATE_TYPE, &subject().digest);
        let verified = verify_attestation(&ring, &subject(), &envelope, NOW).unwrap();
        assert_eq!(verified.kind, EvidenceKind::Signature);
        assert_eq!(
            verified.predicate_type.as_deref(),
            Some(COSIGN_SIGN_PREDICATE_TYPE)
        );
        assert_eq!(verified.predicate, None);

        let attester = SigningKey::generate_p256();
        let ring = keyring(vec![trusted(
            "attester",
            &attester,
            &[&format!("attest:{COSIGN_SIGN_PREDICATE_TYPE}")],
            &["*"],
        )]);
        let envelope = attestation(&attester, COSIGN_SIGN_PREDICATE_TYPE, &subject().digest);
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope, NOW),
            Err(Rejection::NotSigning {
                key_name: "attester".into()
            })
        );
    }

    #[test]
    fn signature_claiming_a_trusted_key_that_does_not_verify_is_bad_signature() {
        let (key, ring) = signer();
        let forger = SigningKey::generate_p256();
        let mut envelope = attest(&forger, &statement(SLSA_V1, &subject().digest));
        let trusted_id = key.public_key().key_id();
        envelope.signatures[0].keyid = trusted_id.to_string();
        let expected = Rejection::BadSignature {
            key_id: trusted_id.clone(),
            key_name: "ci".into(),
        };
        let rejection =
            verify_attestation(&ring, &subject(), &envelope.to_json(), NOW).unwrap_err();
        assert_eq!(rejection, expected);
        assert!(rejection.raises_alert());
        // Naming the key by its name, and tampering with a genuinely signed payload, too.
        let mut envelope = attest(&key, &statement(SLSA_V1, &subject().digest));
        envelope.signatures[0].keyid = "ci".into();
        envelope.payload = statement("https://example.com/other", &subject().digest).to_json();
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope.to_json(), NOW),
            Err(expected)
        );
    }

    #[test]
    fn keyid_naming_a_trusted_key_is_used() {
        let (key, ring) = signer();
        let mut envelope = attest(&key, &statement(SLSA_V1, &subject().digest));
        envelope.signatures[0].keyid = key.public_key().key_id().to_string();
        assert!(verify_attestation(&ring, &subject(), &envelope.to_json(), NOW).is_ok());
        // An unknown key id is only a hint: every key is tried.
        envelope.signatures[0].keyid = "SHA256:something-else".into();
        assert!(verify_attestation(&ring, &subject(), &envelope.to_json(), NOW).is_ok());
    }

    #[test]
    fn second_signature_by_a_trusted_key_counts() {
        let (key, ring) = signer();
        let stranger = SigningKey::generate_p256();
        let mut envelope = attest(&stranger, &statement(SLSA_V1, &subject().digest));
        envelope.signatures.push(EnvelopeSignature {
            keyid: String::new(),
            sig: key.sign(&envelope.pae()),
        });
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope.to_json(), NOW)
                .unwrap()
                .key_name,
            "ci"
        );
    }

    #[test]
    fn attestation_by_an_unknown_key_is_unknown_key() {
        let (_, ring) = signer();
        let envelope = attestation(&SigningKey::generate_p256(), SLSA_V1, &subject().digest);
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope, NOW),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn attestation_key_checks_apply() {
        let (key, mut ring) = signer();
        let envelope = attestation(&key, SLSA_V1, &subject().digest);
        ring.keys[0].scope = vec!["elsewhere/app".parse().unwrap()];
        assert_eq!(
            verify_attestation(&ring, &subject(), &envelope, NOW)
                .unwrap_err()
                .code(),
            "out_of_scope"
        );
    }

    #[test]
    fn malformed_or_oversized_envelopes_are_refused() {
        let (key, ring) = signer();
        assert_eq!(
            verify_attestation(&ring, &subject(), b"{", NOW)
                .unwrap_err()
                .code(),
            "malformed"
        );
        let not_a_statement = sign_envelope(&key, IN_TOTO_PAYLOAD_TYPE, b"{}").to_json();
        assert_eq!(
            verify_attestation(&ring, &subject(), &not_a_statement, NOW)
                .unwrap_err()
                .code(),
            "malformed"
        );
        let huge = vec![b' '; crate::dsse::MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            verify_attestation(&ring, &subject(), &huge, NOW),
            Err(Rejection::TooLarge {
                limit: crate::dsse::MAX_ENVELOPE_BYTES
            })
        );
    }

    // --- Sigstore bundles ---------------------------------------------------------------------

    fn message_bundle(hint: &str, digest: &[u8], signature: &[u8]) -> Vec<u8> {
        serde_json::json!({
            "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(digest)},
                "signature": STANDARD.encode(signature),
            }
        })
        .to_string()
        .into_bytes()
    }

    fn dsse_bundle(hint: &str, envelope: &Envelope) -> Vec<u8> {
        let envelope: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap();
        serde_json::json!({
            "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": hint}},
            "dsseEnvelope": envelope,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn message_signature_bundle_over_the_manifest_is_a_signature() {
        let (key, ring) = signer();
        let digest = Sha256::digest(MANIFEST);
        let bundle = message_bundle("", &digest, &key.sign(MANIFEST));
        let verified = verify_sigstore_bundle(&ring, &subject(), &bundle, NOW).unwrap();
        assert_eq!(verified.kind, EvidenceKind::Signature);
        assert_eq!(verified.key_name, "ci");
        // With the hint Sigstore tools write: base64 of the key id bytes.
        let hint = STANDARD.encode(key.public_key().key_id().to_bytes());
        let bundle = message_bundle(&hint, &digest, &key.sign(MANIFEST));
        assert!(verify_sigstore_bundle(&ring, &subject(), &bundle, NOW).is_ok());
    }

    #[test]
    fn message_signature_bundle_for_another_digest_is_digest_mismatch() {
        let (key, ring) = signer();
        let other = b"another manifest";
        let bundle = message_bundle("", &Sha256::digest(other), &key.sign(other));
        assert_eq!(
            verify_sigstore_bundle(&ring, &subject(), &bundle, NOW),
            Err(Rejection::DigestMismatch {
                expected: subject().digest,
                found: other_digest().to_string(),
            })
        );
    }

    #[test]
    fn message_signature_bundle_with_a_bad_signature_for_its_hint_is_bad_signature() {
        let (key, ring) = signer();
        let forger = SigningKey::generate_p256();
        let bundle = message_bundle(
            key.public_key().key_id().as_str(),
            &Sha256::digest(MANIFEST),
            &forger.sign(MANIFEST),
        );
        assert_eq!(
            verify_sigstore_bundle(&ring, &subject(), &bundle, NOW)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        let bundle = message_bundle("", &Sha256::digest(MANIFEST), &forger.sign(MANIFEST));
        assert_eq!(
            verify_sigstore_bundle(&ring, &subject(), &bundle, NOW),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn message_signature_bundle_needs_sign_purpose() {
        let key = SigningKey::generate_p256();
        let ring = keyring(vec![trusted("att", &key, &["attest:x"], &["*"])]);
        let bundle = message_bundle("", &Sha256::digest(MANIFEST), &key.sign(MANIFEST));
        assert_eq!(
            verify_sigstore_bundle(&ring, &subject(), &bundle, NOW),
            Err(Rejection::NotSigning {
                key_name: "att".into()
            })
        );
    }

    #[test]
    fn dsse_bundle_is_verified_like_an_attestation() {
        let (key, ring) = signer();
        let envelope = attest(&key, &statement(SLSA_V1, &subject().digest));
        let bundle = dsse_bundle("", &envelope);
        let verified = verify_sigstore_bundle(&ring, &subject(), &bundle, NOW).unwrap();
        assert_eq!(verified.kind, EvidenceKind::Attestation);
        assert_eq!(verified.predicate_type.as_deref(), Some(SLSA_V1));
        let sign = attest(
            &key,
            &statement(COSIGN_SIGN_PREDICATE_TYPE, &subject().digest),
        );
        let verified =
            verify_sigstore_bundle(&ring, &subject(), &dsse_bundle("", &sign), NOW).unwrap();
        assert_eq!(verified.kind, EvidenceKind::Signature);
        // The bundle hint names the key for signatures without a keyid.
        let forger = SigningKey::generate_p256();
        let forged = attest(&forger, &statement(SLSA_V1, &subject().digest));
        let bundle = dsse_bundle("ci", &forged);
        assert_eq!(
            verify_sigstore_bundle(&ring, &subject(), &bundle, NOW)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
    }

    #[test]
    fn keyless_bundle_is_malformed_with_a_remedy() {
        let (_, ring) = signer();
        let bundle = serde_json::json!({
            "mediaType": SIGSTORE_BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"certificate": {"rawBytes": "AAAA"}},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode([0u8; 32])},
                "signature": "AAAA",
            }
        })
        .to_string();
        let rejection =
            verify_sigstore_bundle(&ring, &subject(), bundle.as_bytes(), NOW).unwrap_err();
        assert_eq!(rejection.code(), "malformed");
        assert!(rejection.to_string().contains("sign with a key"));
    }

    #[test]
    fn oversized_bundle_is_too_large() {
        let (_, ring) = signer();
        let huge = vec![b' '; crate::cosign::MAX_BUNDLE_BYTES + 1];
        assert_eq!(
            verify_sigstore_bundle(&ring, &subject(), &huge, NOW),
            Err(Rejection::TooLarge {
                limit: crate::cosign::MAX_BUNDLE_BYTES
            })
        );
    }

    // --- keyring model ------------------------------------------------------------------------

    #[test]
    fn purposes_parse_display_and_serialize() {
        assert_eq!("sign".parse::<Purpose>().unwrap(), Purpose::Sign);
        let attest: Purpose = format!("attest:{SLSA_V1}").parse().unwrap();
        assert_eq!(attest, Purpose::Attest(SLSA_V1.into()));
        assert_eq!(attest.to_string(), format!("attest:{SLSA_V1}"));
        assert_eq!(
            serde_json::to_string(&attest).unwrap(),
            format!("\"attest:{SLSA_V1}\"")
        );
        assert_eq!(
            serde_json::from_str::<Purpose>("\"sign\"").unwrap(),
            Purpose::Sign
        );
        for bad in ["", "Sign", "attest", "attest:", "attest:a b", "verify"] {
            assert!(bad.parse::<Purpose>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_patterns_match_as_documented() {
        let pattern = |s: &str| s.parse::<ScopePattern>().unwrap();
        assert!(pattern("*").matches("team/app"));
        assert!(pattern("*").matches("app"));
        assert!(pattern("team/*").matches("team/app"));
        assert!(pattern("team/*").matches("team/sub/app"));
        assert!(!pattern("team/*").matches("team"));
        assert!(!pattern("team/*").matches("team2/app"));
        assert!(!pattern("team/*").matches("other/team/app"));
        assert!(pattern("team/app").matches("team/app"));
        assert!(!pattern("team/app").matches("team/app2"));
        assert!(!pattern("team/app").matches("team/app/sub"));
        assert!(pattern("a/b/*").matches("a/b/c"));
    }

    #[test]
    fn scope_patterns_are_validated() {
        for good in ["*", "team/*", "team/app", "a.b/c_d/e-f", "team/sub/*"] {
            let pattern: ScopePattern = good.parse().unwrap();
            assert_eq!(pattern.as_str(), good);
            let json = serde_json::to_string(&pattern).unwrap();
            assert_eq!(
                serde_json::from_str::<ScopePattern>(&json).unwrap(),
                pattern
            );
        }
        for bad in [
            "",
            "/",
            "team/",
            "/team",
            "team//app",
            "*/app",
            "team/*/app",
            "team/a*",
            "te*m",
            "Team/app",
            "team/app ",
            "**",
        ] {
            assert!(bad.parse::<ScopePattern>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_status_serializes_with_a_tag() {
        let status = KeyStatus::Revoked {
            at_ms: 5,
            reason: "r".into(),
            compromised: true,
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "revoked", "at_ms": 5, "reason": "r", "compromised": true})
        );
        assert_eq!(serde_json::from_value::<KeyStatus>(json).unwrap(), status);
        assert_eq!(
            serde_json::to_value(KeyStatus::Active).unwrap(),
            serde_json::json!({"status": "active"})
        );
    }

    #[test]
    fn rejection_codes_are_distinct_snake_case() {
        let digest = subject().digest;
        let key_id = SigningKey::generate_p256().public_key().key_id();
        let all = [
            Rejection::Malformed("x".into()),
            Rejection::TooLarge { limit: 1 },
            Rejection::UnknownKey,
            Rejection::BadSignature {
                key_id,
                key_name: "k".into(),
            },
            Rejection::KeyNotYetValid {
                key_name: "k".into(),
                not_before_ms: 0,
            },
            Rejection::KeyExpired {
                key_name: "k".into(),
                not_after_ms: 0,
            },
            Rejection::KeyRetired {
                key_name: "k".into(),
                retired_at_ms: 0,
            },
            Rejection::KeyRevoked {
                key_name: "k".into(),
                reason: "r".into(),
            },
            Rejection::KeyCompromised {
                key_name: "k".into(),
                reason: "r".into(),
            },
            Rejection::OutOfScope {
                key_name: "k".into(),
                repository_path: "p".into(),
            },
            Rejection::DigestMismatch {
                expected: digest.clone(),
                found: "f".into(),
            },
            Rejection::ReferenceMismatch {
                expected_path: "p".into(),
                docker_reference: "r".into(),
            },
            Rejection::WrongPayloadType { found: "t".into() },
            Rejection::SubjectMismatch { digest },
            Rejection::PredicateNotAllowed {
                key_name: "k".into(),
                predicate_type: "p".into(),
            },
            Rejection::NotSigning {
                key_name: "k".into(),
            },
        ];
        let codes: std::collections::BTreeSet<&str> = all.iter().map(Rejection::code).collect();
        assert_eq!(codes.len(), all.len());
        for rejection in &all {
            assert!(
                rejection
                    .code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!(!rejection.to_string().is_empty());
        }
    }

    #[test]
    fn signing_helpers_round_trip() {
        let (key, ring) = signer();
        let payload = SimpleSigningPayload::new("localhost:5000/dev/team/app", subject().digest);
        let (bytes, signature) = sign_cosign_payload(&key, &payload);
        assert_eq!(SimpleSigningPayload::parse(&bytes).unwrap(), payload);
        assert!(verify_cosign_signature(&ring, &subject(), &bytes, &signature, NOW).is_ok());
        let envelope = attest(&key, &statement(SLSA_V1, &subject().digest));
        assert_eq!(envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
        assert_eq!(envelope.signatures[0].keyid, "");
        assert!(verify_attestation(&ring, &subject(), &envelope.to_json(), NOW).is_ok());
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(NOW), "2023-11-14T22:13:20.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(utc(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }
}
