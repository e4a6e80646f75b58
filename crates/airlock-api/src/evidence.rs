//! The keyring (`/api/v1/keys`) and an artifact's evidence (`/api/v1/artifacts/...`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A public key in the keyring: what it may vouch for, where, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Key {
    /// Hex SHA-256 of the key's SubjectPublicKeyInfo (DER).
    pub key_id: String,
    /// The key's unique name.
    pub name: String,
    /// Signature algorithm, e.g. `ecdsa-p256-sha256`, `ed25519`, `rsa-pss-sha256`.
    pub algorithm: String,
    /// The public key as SPKI PEM.
    pub public_key: String,
    /// What it may sign: `sign` (image signatures) and `attest:<predicate type>`.
    pub purposes: Vec<String>,
    /// Repository path patterns it covers, without the stage (`team/*`, `*`).
    pub scope: Vec<String>,
    /// Start of validity (RFC 3339), if any.
    pub not_before: Option<String>,
    /// End of validity (RFC 3339), if any.
    pub not_after: Option<String>,
    /// `active`, `retired` or `revoked`.
    pub status: String,
    /// When the status last changed (RFC 3339), `null` while active since it was added.
    pub status_changed: Option<String>,
    /// Why it was retired or revoked.
    pub status_reason: Option<String>,
    /// Revoked because its private key is compromised (everything it signed stops counting).
    pub compromised: bool,
    /// When it was added (RFC 3339).
    pub created: Option<String>,
    /// Who added it.
    pub created_by: String,
}

/// `GET /api/v1/keys`: a page of the keyring, oldest key first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Keyring {
    /// The keyring's version; every change moves it. Pages read at different versions may
    /// disagree: start again from the first page if it moved while following `next`.
    pub keyring_version: i64,
    /// The keys on this page, whatever their status.
    pub keys: Vec<Key>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/keys`: a key to add (needs `key-admin` everywhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKeyRequest {
    /// A unique name: letters, digits, `-`, `_`, `.`, at most 64.
    pub name: String,
    /// The public key as SPKI PEM (a `cosign.pub`).
    pub public_key: String,
    /// Forces the algorithm where the PEM does not say it (`rsa-pss-sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// `sign` and/or `attest:<predicate type>`; at least one.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Repository path patterns without the stage (`team/*`, `*`); at least one.
    #[serde(default)]
    pub scope: Vec<String>,
    /// Start of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// End of validity (RFC 3339), later than `not_before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// `PATCH /api/v1/keys/{name}`: changes to a key's purposes, scope and end of validity (at
/// least one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// Purposes to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_purposes: Vec<String>,
    /// Purposes to remove (the key keeps at least one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_purposes: Vec<String>,
    /// The new scope, replacing the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    /// The new end of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// `POST /api/v1/keys/{name}/retire|revoke`: why (the body may be empty for neither field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyStatusRequest {
    /// Why the key is retired or revoked; required, recorded in the audit log.
    #[serde(default)]
    pub reason: String,
    /// With `revoke`: the private key is compromised, so nothing it ever signed counts.
    #[serde(default)]
    pub compromised: bool,
}

/// One piece of evidence about an artifact and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceItem {
    /// The item's row id.
    pub id: i64,
    /// What identifies it: the envelope's or bundle's digest, or a cosign payload and signature.
    pub item: String,
    /// `verified`, `rejected` or `revoked`.
    pub status: String,
    /// `signature` or `attestation`, once known.
    pub kind: Option<String>,
    /// `cosign`, `dsse` or `sigstore-bundle`.
    pub format: String,
    /// How it arrived: `tag` (cosign tag scheme), `referrer` (OCI 1.1) or `api`.
    pub source: String,
    /// The repository it was pushed to or posted for (`<stage>/<path>`).
    pub repository: String,
    /// The manifest that carried it, `null` for the evidence API.
    pub manifest: Option<String>,
    /// The key that verified it (or that it names).
    pub key_id: Option<String>,
    /// That key's name.
    pub key_name: Option<String>,
    /// The in-toto predicate type of an attestation.
    pub predicate_type: Option<String>,
    /// A rejection's stable code (`unknown_key`, `bad_signature`, `malformed`, ...).
    pub reason_code: Option<String>,
    /// A rejection's message.
    pub reason: Option<String>,
    /// What a verified predicate says (builder, licenses, vulnerabilities, tests), or `null`.
    pub facts: serde_json::Value,
    /// The keyring version the verdict was reached under.
    pub keyring_version: i64,
    /// When airlock first saw it (RFC 3339).
    pub first_seen: Option<String>,
    /// When the verdict was reached (RFC 3339).
    pub verified_at: Option<String>,
    /// Who pushed or posted it.
    pub pushed_by: String,
}

/// `GET /api/v1/artifacts/{stage}/{path}@{digest}/evidence`: the evidence alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceList {
    /// Every item about the artifact under its repository path, in every stage.
    pub evidence: Vec<EvidenceItem>,
}

/// A flag raised on an artifact in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactFlag {
    /// The flag, e.g. `evidence_revoked`.
    pub flag: String,
    /// Why it was raised.
    pub reason: String,
}

/// `GET /api/v1/artifacts/{stage}/{path}@{digest}`: an artifact, its tags, flags and evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    /// The repository (`<stage>/<path>`).
    pub repository: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// Tags pointing at it in the repository.
    pub tags: Vec<String>,
    /// Flags raised on it here.
    pub flags: Vec<ArtifactFlag>,
    /// Its evidence.
    pub evidence: Vec<EvidenceItem>,
    /// Independent rebuilds: which builders agree on this digest, and which other digests the
    /// same source revision was built into.
    pub rebuilds: RebuildAgreement,
}

/// An artifact's independent-rebuild agreement (`prod.rebuild_agreement` in docs/policy.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RebuildAgreement {
    /// How many independent builders (distinct builder ids and signing keys) built this digest
    /// from one source revision.
    pub independent: u64,
    /// That revision's source repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    /// That revision's commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The builders counted.
    pub builders: Vec<RebuildBuilder>,
    /// Other digests of the repository path built from a source revision this one was built
    /// from: rebuilds that did not reproduce it.
    pub mismatches: Vec<RebuildMismatch>,
}

/// One builder of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RebuildBuilder {
    /// The builder id its provenance names.
    pub builder_id: String,
    /// The keyring key that signed its provenance.
    pub key: String,
}

/// Another digest of the same source revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RebuildMismatch {
    /// The other digest.
    pub digest: String,
    /// The builder id of its provenance.
    pub builder_id: String,
    /// The key that signed it.
    pub key: String,
    /// The shared source repository.
    pub source_repository: String,
    /// The shared commit.
    pub commit: String,
}
