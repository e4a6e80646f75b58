//! cosign's formats: the simple-signing payload, media types and annotations, the tag scheme
//! (`sha256-<hex>.sig|.att|.sbom`), `--type` shorthands, and key-signed Sigstore bundles.
//!
//! Everything here parses bytes into typed values (bounded); whether the result is trusted is
//! decided in [`crate::verify`].

use airlock_core::digest::Digest;
use serde::Deserialize;

use crate::TrustError;
use crate::dsse::{Envelope, MAX_ENVELOPE_BYTES, WireEnvelope, decode_base64};
use crate::keys::truncate;

/// Media type of cosign's simple-signing payload (the layer of a `.sig` manifest).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Layer annotation holding the base64 signature over the simple-signing payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Media type of a DSSE envelope (the layers of a `.att` manifest).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// Media type (and OCI 1.1 `artifactType`) of a Sigstore bundle v0.3, as cosign v3 attaches it.
pub const SIGSTORE_BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The Sigstore bundle media types of protobuf-specs `sigstore_bundle.proto`: v0.1 and v0.2 in
/// their parameter form, v0.3 in its own. [`is_sigstore_bundle_media_type`] accepts these (and
/// later v0.3+ minor and patch versions in the v0.3 form); both the referrer path and the
/// evidence API use it, so what one accepts the other does.
pub const SIGSTORE_BUNDLE_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    SIGSTORE_BUNDLE_MEDIA_TYPE,
];

/// `artifactType` of a cosign simple signature attached as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// `artifactType` cosign gives attestations (DSSE envelopes) attached as OCI 1.1 referrers: the
/// in-toto media type, describing the statement rather than its envelope. Use
/// [`is_attestation_artifact_type`] to recognise them, which also accepts [`DSSE_MEDIA_TYPE`].
pub const ATTESTATION_ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";

/// Layer annotation naming the predicate type of a `.att` layer.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// Manifest annotation of a bundle referrer: `message-signature` or `dsse-envelope`.
pub const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";

/// Manifest annotation of a bundle referrer naming the in-toto predicate type it carries.
pub const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// Predicate type of the statement cosign v3 signs when it signs an image in the bundle format:
/// such an attestation is a signature.
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

/// The `critical.type` of every cosign simple-signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// Largest simple-signing payload airlock parses.
pub const MAX_SIMPLE_SIGNING_BYTES: usize = 64 * 1024;

/// Largest Sigstore bundle airlock parses: an envelope at its limit, base64-encoded, plus room
/// for verification material.
pub const MAX_BUNDLE_BYTES: usize = MAX_ENVELOPE_BYTES / 3 * 4 + 1024 * 1024;

/// Whether an OCI `artifactType` (or layer media type) marks a cosign attestation.
pub fn is_attestation_artifact_type(artifact_type: &str) -> bool {
    artifact_type == ATTESTATION_ARTIFACT_TYPE || artifact_type == DSSE_MEDIA_TYPE
}

// ---------------------------------------------------------------------------------------------
// Simple signing
// ---------------------------------------------------------------------------------------------

/// cosign's simple-signing payload: the claim "this reference has this manifest digest".
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleSigningPayload {
    /// `critical.identity.docker-reference`: the repository the signer named (no tag).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: the signed manifest.
    pub docker_manifest_digest: Digest,
    /// `optional`: free-form annotations the signer added (`-a key=value`), if any.
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct WirePayload {
    critical: WireCritical,
    #[serde(default)]
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct WireCritical {
    identity: WireIdentity,
    image: WireImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct WireIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct WireImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl SimpleSigningPayload {
    /// Parses a payload (at most [`MAX_SIMPLE_SIGNING_BYTES`]). Requires `critical.type` to be
    /// [`SIMPLE_SIGNING_TYPE`], a well-formed `critical.image.docker-manifest-digest` and a
    /// non-empty `critical.identity.docker-reference`; `optional` must be an object or null.
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        const WHAT: &str = "simple-signing payload";
        TrustError::check_size(WHAT, bytes.len(), MAX_SIMPLE_SIGNING_BYTES)?;
        let wire: WirePayload = serde_json::from_slice(bytes)
            .map_err(|e| TrustError::malformed(WHAT, e.to_string()))?;
        if wire.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(TrustError::malformed(
                WHAT,
                format!(
                    "critical.type is {:?}, expected {SIMPLE_SIGNING_TYPE:?}",
                    truncate(&wire.critical.kind)
                ),
            ));
        }
        let docker_manifest_digest = wire
            .critical
            .image
            .docker_manifest_digest
            .parse::<Digest>()
            .map_err(|e| {
                TrustError::malformed(WHAT, format!("critical.image.docker-manifest-digest: {e}"))
            })?;
        if wire.critical.identity.docker_reference.is_empty() {
            return Err(TrustError::malformed(
                WHAT,
                "critical.identity.docker-reference is empty",
            ));
        }
        Ok(Self {
            docker_reference: wire.critical.identity.docker_reference,
            docker_manifest_digest,
            optional: wire.optional,
        })
    }

    /// A payload for `docker_reference` (a repository, e.g. `registry:5000/dev/team/app`) and
    /// `digest`, without optional annotations.
    pub fn new(docker_reference: impl Into<String>, digest: Digest) -> Self {
        Self {
            docker_reference: docker_reference.into(),
            docker_manifest_digest: digest,
            optional: None,
        }
    }

    /// The payload exactly as cosign writes it (keys sorted, no whitespace):
    /// `{"critical":{"identity":{"docker-reference":".."},"image":{"docker-manifest-digest":".."},
    /// "type":"cosign container image signature"},"optional":null}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let optional = match &self.optional {
            Some(map) => serde_json::Value::Object(map.clone()),
            None => serde_json::Value::Null,
        };
        format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":{}}},\"image\":{{\"docker-manifest-digest\":\"{}\"}},\"type\":\"{SIMPLE_SIGNING_TYPE}\"}},\"optional\":{optional}}}",
            crate::dsse::json_string(&self.docker_reference),
            self.docker_manifest_digest,
        )
        .into_bytes()
    }
}

// ---------------------------------------------------------------------------------------------
// Tag scheme, predicate types, references
// ---------------------------------------------------------------------------------------------

/// What a cosign tag-scheme tag (`<alg>-<hex>.<suffix>`) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagSchemeKind {
    /// `.sig`: simple signatures.
    Signature,
    /// `.att`: DSSE attestations.
    Attestation,
    /// `.sbom`: an SBOM attached with `cosign attach sbom` (unsigned by itself).
    Sbom,
}

impl TagSchemeKind {
    /// The tag suffix without the dot.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Signature => "sig",
            Self::Attestation => "att",
            Self::Sbom => "sbom",
        }
    }
}

/// Reads a tag-scheme tag such as `sha256-<64 hex>.sig` into the digest it points at and the
/// kind of evidence; `None` for any other tag.
pub fn parse_tag_scheme(tag: &str) -> Option<(Digest, TagSchemeKind)> {
    let (name, suffix) = tag.rsplit_once('.')?;
    let kind = [
        TagSchemeKind::Signature,
        TagSchemeKind::Attestation,
        TagSchemeKind::Sbom,
    ]
    .into_iter()
    .find(|kind| kind.suffix() == suffix)?;
    let (algorithm, hex) = name.split_once('-')?;
    let digest = format!("{algorithm}:{hex}").parse::<Digest>().ok()?;
    Some((digest, kind))
}

/// The tag-scheme tag for `digest` and `kind`, e.g. `sha256-<hex>.att`.
pub fn tag_scheme_tag(digest: &Digest, kind: TagSchemeKind) -> String {
    format!(
        "{}-{}.{}",
        digest.algorithm().as_str(),
        digest.hex(),
        kind.suffix()
    )
}

/// The predicate type URI for a cosign `--type` value: its shorthands (`slsaprovenance`,
/// `slsaprovenance02`, `slsaprovenance1`, `link`, `spdx`, `spdxjson`, `cyclonedx`, `vuln`,
/// `openvex`, `custom`) map to their URIs; anything else is taken as a URI and returned as given.
pub fn predicate_type_for(cosign_type: &str) -> String {
    match cosign_type {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "link" => "https://in-toto.io/Link/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other => other,
    }
    .to_string()
}

/// The repository path (without registry host and stage) that a signed `docker-reference`
/// names: `127.0.0.1:5000/dev/team/app:1.0` gives `team/app`.
///
/// The first component is a registry host when it contains `.` or `:` or is `localhost` and more
/// components follow (Docker's rule); a `@digest` and a `:tag` are removed; then the first path
/// segment, the airlock stage, is dropped. `None` when nothing is left or a segment is empty.
pub fn reference_repository_path(docker_reference: &str) -> Option<String> {
    let without_digest = docker_reference
        .split_once('@')
        .map_or(docker_reference, |(name, _)| name);
    let mut segments: Vec<&str> = without_digest.split('/').collect();
    if segments.len() > 1 {
        let first = segments[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            segments.remove(0);
        }
    }
    if let Some(last) = segments.last_mut()
        && let Some((name, _tag)) = last.split_once(':')
    {
        *last = name;
    }
    if segments.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    if segments.len() < 2 {
        return None;
    }
    Some(segments[1..].join("/"))
}

// ---------------------------------------------------------------------------------------------
// Sigstore bundles
// ---------------------------------------------------------------------------------------------

/// A parsed key-signed Sigstore bundle (v0.1 to v0.3). Transparency-log entries and timestamps
/// are not read: airlock's trust comes from its keyring, not from Rekor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreBundle {
    /// The bundle's `mediaType`.
    pub media_type: String,
    /// `verificationMaterial.publicKey.hint`, if given and not empty: names the signer's key,
    /// but only as a hint.
    pub key_hint: Option<String>,
    /// What was signed.
    pub content: BundleContent,
}

/// The signed content of a Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleContent {
    /// `messageSignature`: a signature over an artifact known by its SHA-256 digest.
    MessageSignature {
        /// `messageDigest.digest` (algorithm `SHA2_256`).
        sha256_digest: [u8; 32],
        /// The signature over that digest.
        signature: Vec<u8>,
    },
    /// `dsseEnvelope`: a DSSE envelope, verified like an attestation.
    DsseEnvelope(Envelope),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBundle {
    #[serde(alias = "media_type")]
    media_type: String,
    #[serde(default, alias = "verification_material")]
    verification_material: Option<WireMaterial>,
    #[serde(default, alias = "message_signature")]
    message_signature: Option<WireMessageSignature>,
    #[serde(default, alias = "dsse_envelope")]
    dsse_envelope: Option<WireEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMaterial {
    #[serde(default, alias = "public_key")]
    public_key: Option<WirePublicKeyIdentifier>,
    #[serde(default, alias = "x509_certificate_chain")]
    x509_certificate_chain: Option<serde_json::Value>,
    #[serde(default)]
    certificate: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WirePublicKeyIdentifier {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessageSignature {
    #[serde(default, alias = "message_digest")]
    message_digest: Option<WireHashOutput>,
    signature: String,
}

#[derive(Deserialize)]
struct WireHashOutput {
    algorithm: String,
    digest: String,
}

/// Whether `media_type` is a Sigstore bundle media type: `...bundle+json;version=0.1|0.2`, or
/// `...bundle.v0.<minor>[.<patch>]+json` with minor >= 3 (see [`SIGSTORE_BUNDLE_MEDIA_TYPES`]).
/// The one test of "is this a bundle" for an OCI layer, a bundle's `mediaType` and the
/// evidence API.
pub fn is_sigstore_bundle_media_type(media_type: &str) -> bool {
    if let Some(version) =
        media_type.strip_prefix("application/vnd.dev.sigstore.bundle+json;version=")
    {
        return matches!(version, "0.1" | "0.2");
    }
    let Some(version) = media_type
        .strip_prefix("application/vnd.dev.sigstore.bundle.v0.")
        .and_then(|rest| rest.strip_suffix("+json"))
    else {
        return false;
    };
    let mut parts = version.split('.');
    let minor = parts.next().unwrap_or_default();
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    numeric(minor)
        && minor.parse::<u32>().is_ok_and(|minor| minor >= 3)
        && parts.clone().count() <= 1
        && parts.all(numeric)
}

impl SigstoreBundle {
    /// Parses a bundle (at most [`MAX_BUNDLE_BYTES`]). Requires a Sigstore bundle media type,
    /// key material (`verificationMaterial.publicKey`; bundles carrying only a certificate are
    /// keyless and refused), and exactly one of `messageSignature` (SHA-256 digest) and
    /// `dsseEnvelope`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        const WHAT: &str = "sigstore bundle";
        TrustError::check_size(WHAT, bytes.len(), MAX_BUNDLE_BYTES)?;
        let wire: WireBundle = serde_json::from_slice(bytes)
            .map_err(|e| TrustError::malformed(WHAT, e.to_string()))?;
        if !is_sigstore_bundle_media_type(&wire.media_type) {
            return Err(TrustError::malformed(
                WHAT,
                format!(
                    "mediaType {:?} is not a Sigstore bundle media type such as {SIGSTORE_BUNDLE_MEDIA_TYPE}",
                    truncate(&wire.media_type)
                ),
            ));
        }
        let material = wire
            .verification_material
            .ok_or_else(|| TrustError::malformed(WHAT, "the bundle has no verificationMaterial"))?;
        let key_hint = match material.public_key {
            Some(key) => key.hint.filter(|hint| !hint.is_empty()),
            None if material.certificate.is_some() || material.x509_certificate_chain.is_some() => {
                return Err(TrustError::malformed(
                    WHAT,
                    "keyless (certificate) bundles are not supported; sign with a key",
                ));
            }
            None => {
                return Err(TrustError::malformed(
                    WHAT,
                    "verificationMaterial has no publicKey",
                ));
            }
        };
        let content = match (wire.message_signature, wire.dsse_envelope) {
            (Some(message), None) => {
                let digest = message.message_digest.ok_or_else(|| {
                    TrustError::malformed(WHAT, "messageSignature has no messageDigest")
                })?;
                if digest.algorithm != "SHA2_256" {
                    return Err(TrustError::malformed(
                        WHAT,
                        format!(
                            "messageDigest.algorithm {:?} is not supported; expected SHA2_256",
                            truncate(&digest.algorithm)
                        ),
                    ));
                }
                let sha256_digest: [u8; 32] =
                    decode_base64(&digest.digest, WHAT, "messageDigest.digest")?
                        .try_into()
                        .map_err(|_| {
                            TrustError::malformed(WHAT, "messageDigest.digest is not 32 bytes")
                        })?;
                let signature =
                    decode_base64(&message.signature, WHAT, "messageSignature.signature")?;
                if signature.is_empty() {
                    return Err(TrustError::malformed(
                        WHAT,
                        "messageSignature.signature is empty",
                    ));
                }
                BundleContent::MessageSignature {
                    sha256_digest,
                    signature,
                }
            }
            (None, Some(envelope)) => BundleContent::DsseEnvelope(Envelope::from_wire(envelope)?),
            (Some(_), Some(_)) => {
                return Err(TrustError::malformed(
                    WHAT,
                    "the bundle has both messageSignature and dsseEnvelope",
                ));
            }
            (None, None) => {
                return Err(TrustError::malformed(
                    WHAT,
                    "the bundle has neither messageSignature nor dsseEnvelope",
                ));
            }
        };
        Ok(Self {
            media_type: wire.media_type,
            key_hint,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_PAYLOAD: &[u8] =
        include_bytes!("../../../tests/fixtures/cosign/real_signature.payload.json");

    fn digest(byte: &str) -> Digest {
        format!("sha256:{}", byte.repeat(32)).parse().unwrap()
    }

    #[test]
    fn real_payload_parses_and_reserialises_byte_for_byte() {
        let payload = SimpleSigningPayload::parse(REAL_PAYLOAD).unwrap();
        assert_eq!(payload.docker_reference, "registry-testing.svc.lan/busybox");
        assert_eq!(
            payload.docker_manifest_digest.to_string(),
            "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"
        );
        assert_eq!(payload.optional, None);
        assert_eq!(payload.to_bytes(), REAL_PAYLOAD);
        let rebuilt = SimpleSigningPayload::new(
            payload.docker_reference.clone(),
            payload.docker_manifest_digest.clone(),
        );
        assert_eq!(rebuilt.to_bytes(), REAL_PAYLOAD);
    }

    #[test]
    fn optional_annotations_round_trip() {
        let mut payload = SimpleSigningPayload::new("localhost:5000/dev/app", digest("ab"));
        let mut optional = serde_json::Map::new();
        optional.insert("sig".into(), "v1".into());
        payload.optional = Some(optional);
        let bytes = payload.to_bytes();
        assert!(bytes.ends_with(br#""optional":{"sig":"v1"}}"#));
        assert_eq!(SimpleSigningPayload::parse(&bytes).unwrap(), payload);
    }

    #[test]
    fn payload_with_another_type_is_malformed() {
        let text = String::from_utf8(REAL_PAYLOAD.to_vec())
            .unwrap()
            .replace("cosign container image signature", "something else");
        assert!(matches!(
            SimpleSigningPayload::parse(text.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("critical.type")
        ));
    }

    #[test]
    fn payload_with_a_bad_digest_or_missing_fields_is_malformed() {
        for json in [
            &br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:xyz"},"type":"cosign container image signature"}}"#[..],
            br#"{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"sha256:abababababababababababababababababababababababababababababababab"},"type":"cosign container image signature"}}"#,
            br#"{"critical":{"image":{"docker-manifest-digest":"sha256:abababababababababababababababababababababababababababababababab"},"type":"cosign container image signature"}}"#,
            br#"{"critical":{"identity":{"docker-reference":"r"},"type":"cosign container image signature"}}"#,
            br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:abababababababababababababababababababababababababababababababab"}}}"#,
            br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:abababababababababababababababababababababababababababababababab"},"type":"cosign container image signature"},"optional":"x"}"#,
            b"null",
        ] {
            assert!(
                matches!(SimpleSigningPayload::parse(json), Err(TrustError::Malformed { .. })),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn oversized_payload_is_refused() {
        assert!(matches!(
            SimpleSigningPayload::parse(&vec![b' '; MAX_SIMPLE_SIGNING_BYTES + 1]),
            Err(TrustError::TooLarge { .. })
        ));
    }

    #[test]
    fn tag_scheme_tags_parse_and_format() {
        let d = digest("ab");
        for kind in [
            TagSchemeKind::Signature,
            TagSchemeKind::Attestation,
            TagSchemeKind::Sbom,
        ] {
            let tag = tag_scheme_tag(&d, kind);
            assert_eq!(tag, format!("sha256-{}.{}", "ab".repeat(32), kind.suffix()));
            assert_eq!(parse_tag_scheme(&tag), Some((d.clone(), kind)));
        }
    }

    #[test]
    fn other_tags_are_not_tag_scheme_tags() {
        let hex = "ab".repeat(32);
        for tag in [
            "latest".to_string(),
            format!("sha256-{hex}"),
            format!("sha256-{hex}.txt"),
            format!("sha256-{}.sig", &hex[1..]),
            format!("sha256-{}.sig", hex.to_uppercase()),
            format!("md5-{hex}.sig"),
            format!("sha256:{hex}.sig"),
            "v1.sig".to_string(),
        ] {
            assert_eq!(parse_tag_scheme(&tag), None, "{tag}");
        }
    }

    #[test]
    fn cosign_type_shorthands_map_to_predicate_types() {
        for (shorthand, uri) in [
            ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
            ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
            ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
            ("link", "https://in-toto.io/Link/v1"),
            ("spdx", "https://spdx.dev/Document"),
            ("spdxjson", "https://spdx.dev/Document"),
            ("cyclonedx", "https://cyclonedx.org/bom"),
            ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
            ("openvex", "https://openvex.dev/ns"),
            ("custom", "https://cosign.sigstore.dev/attestation/v1"),
            ("https://example.com/test/v1", "https://example.com/test/v1"),
        ] {
            assert_eq!(predicate_type_for(shorthand), uri);
        }
    }

    #[test]
    fn reference_repository_path_strips_host_tag_digest_and_stage() {
        let hex = "ab".repeat(32);
        for (reference, expected) in [
            ("127.0.0.1:5000/dev/team/app", Some("team/app")),
            ("localhost:5000/dev/app:1.0", Some("app")),
            ("localhost/prod/team/app", Some("team/app")),
            ("registry.example.com/staging/a/b/c", Some("a/b/c")),
            ("dev/team/app", Some("team/app")),
            ("dev/team/app:latest", Some("team/app")),
            (
                &format!("host:5000/dev/team/app@sha256:{hex}"),
                Some("team/app"),
            ),
            (
                &format!("host:5000/dev/team/app:v1@sha256:{hex}"),
                Some("team/app"),
            ),
            ("registry-testing.svc.lan/busybox", None),
            ("app", None),
            ("localhost:5000/dev", None),
            ("host:5000/dev//app", None),
            ("", None),
        ] {
            assert_eq!(
                reference_repository_path(reference).as_deref(),
                expected,
                "{reference}"
            );
        }
    }

    #[test]
    fn attestation_artifact_types_are_recognised() {
        assert!(is_attestation_artifact_type(ATTESTATION_ARTIFACT_TYPE));
        assert!(is_attestation_artifact_type(DSSE_MEDIA_TYPE));
        assert!(!is_attestation_artifact_type(SIGNATURE_ARTIFACT_TYPE));
    }

    fn message_bundle(material: &str) -> String {
        format!(
            r#"{{"mediaType":"{SIGSTORE_BUNDLE_MEDIA_TYPE}","verificationMaterial":{material},"messageSignature":{{"messageDigest":{{"algorithm":"SHA2_256","digest":"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="}},"signature":"MEUCIQ=="}}}}"#
        )
    }

    #[test]
    fn key_signed_message_bundle_parses() {
        let bundle =
            SigstoreBundle::parse(message_bundle(r#"{"publicKey":{"hint":"abc"}}"#).as_bytes())
                .unwrap();
        assert_eq!(bundle.key_hint.as_deref(), Some("abc"));
        assert_eq!(
            bundle.content,
            BundleContent::MessageSignature {
                sha256_digest: [0xab; 32],
                signature: vec![0x30, 0x45, 0x02, 0x21],
            }
        );
        let bundle =
            SigstoreBundle::parse(message_bundle(r#"{"publicKey":{}}"#).as_bytes()).unwrap();
        assert_eq!(bundle.key_hint, None);
    }

    #[test]
    fn keyless_bundle_is_refused() {
        for material in [
            r#"{"certificate":{"rawBytes":"AAAA"}}"#,
            r#"{"x509CertificateChain":{"certificates":[{"rawBytes":"AAAA"}]}}"#,
        ] {
            assert!(matches!(
                SigstoreBundle::parse(message_bundle(material).as_bytes()),
                Err(TrustError::Malformed { reason, .. }) if reason.contains("keyless")
            ));
        }
    }

    #[test]
    fn bundle_without_key_material_or_content_is_malformed() {
        assert!(matches!(
            SigstoreBundle::parse(message_bundle("{}").as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("publicKey")
        ));
        let json = format!(
            r#"{{"mediaType":"{SIGSTORE_BUNDLE_MEDIA_TYPE}","verificationMaterial":{{"publicKey":{{}}}}}}"#
        );
        assert!(matches!(
            SigstoreBundle::parse(json.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("neither")
        ));
        let json = format!(
            r#"{{"mediaType":"{SIGSTORE_BUNDLE_MEDIA_TYPE}","verificationMaterial":{{"publicKey":{{}}}},"messageSignature":{{"signature":"AQ=="}},"dsseEnvelope":{{"payloadType":"t","payload":"","signatures":[{{"sig":"AQ=="}}]}}}}"#
        );
        assert!(matches!(
            SigstoreBundle::parse(json.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("both")
        ));
        let json = format!(
            r#"{{"mediaType":"{SIGSTORE_BUNDLE_MEDIA_TYPE}","verificationMaterial":{{"publicKey":{{}}}},"messageSignature":{{"signature":"AQ=="}}}}"#
        );
        assert!(matches!(
            SigstoreBundle::parse(json.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("messageDigest")
        ));
    }

    #[test]
    fn bundle_media_types_are_checked() {
        assert!(is_sigstore_bundle_media_type(SIGSTORE_BUNDLE_MEDIA_TYPE));
        assert!(is_sigstore_bundle_media_type(
            "application/vnd.dev.sigstore.bundle.v0.3.1+json"
        ));
        assert!(is_sigstore_bundle_media_type(
            "application/vnd.dev.sigstore.bundle.v0.4+json"
        ));
        assert!(is_sigstore_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=0.2"
        ));
        assert!(!is_sigstore_bundle_media_type(
            "application/vnd.dev.sigstore.bundle.v0.2+json"
        ));
        assert!(!is_sigstore_bundle_media_type(
            "application/vnd.dev.sigstore.bundle.v0.+json"
        ));
        assert!(!is_sigstore_bundle_media_type("application/json"));
        assert!(
            SIGSTORE_BUNDLE_MEDIA_TYPES
                .iter()
                .all(|t| is_sigstore_bundle_media_type(t))
        );
        assert!(!is_sigstore_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=0.3"
        ));
        let json = message_bundle(r#"{"publicKey":{}}"#)
            .replace(SIGSTORE_BUNDLE_MEDIA_TYPE, "application/json");
        assert!(matches!(
            SigstoreBundle::parse(json.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("mediaType")
        ));
    }

    #[test]
    fn bundle_with_another_digest_algorithm_is_refused() {
        let json = message_bundle(r#"{"publicKey":{}}"#).replace("SHA2_256", "SHA2_384");
        assert!(matches!(
            SigstoreBundle::parse(json.as_bytes()),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("SHA2_384")
        ));
    }

    #[test]
    fn oversized_bundle_is_refused() {
        assert!(matches!(
            SigstoreBundle::parse(&vec![b' '; MAX_BUNDLE_BYTES + 1]),
            Err(TrustError::TooLarge { .. })
        ));
    }
}
