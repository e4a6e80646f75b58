//! Manifest parsing: from bytes and a `Content-Type` to what a registry must know about a manifest.
//!
//! OCI image manifests and indexes and their Docker schema 2 equivalents are accepted. The result
//! lists every blob and child manifest the registry must hold before the manifest is accepted, the
//! `subject` (for the referrers API) and the artifact type.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::Error;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI empty descriptor's media type, which makes `artifactType` mandatory.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Every manifest media type airlock stores, for `Accept` negotiation and error messages.
pub const SUPPORTED_MEDIA_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Whether a manifest describes one artifact or lists others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image (or artifact) manifest: config plus layers.
    Image,
    /// An index / manifest list: references to other manifests.
    Index,
}

/// What the registry needs to know about a manifest it is asked to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// Image or index.
    pub kind: ManifestKind,
    /// The media type the manifest is served with.
    pub media_type: String,
    /// `artifactType`, or for image manifests without one the config media type (as the
    /// referrers API defines it).
    pub artifact_type: Option<String>,
    /// Blobs that must exist in the repository: config and layers (non-distributable layers
    /// with external `urls` excluded).
    pub blobs: Vec<Digest>,
    /// Manifests that must exist in the repository (children of an index).
    pub manifests: Vec<Digest>,
    /// The manifest this one refers to, for the referrers API.
    pub subject: Option<Digest>,
    /// Manifest annotations, returned in referrers listings.
    pub annotations: BTreeMap<String, String>,
    /// The layers of an image manifest, in order (empty for an index): what evidence ingestion
    /// reads signatures and attestations from.
    pub layers: Vec<Layer>,
    /// The size every descriptor declares (config, layers, child manifests, subject), which the
    /// registry checks against what it stores. External layers (with `urls`) are not listed.
    pub declared_sizes: Vec<DeclaredSize>,
}

/// Where in a manifest a descriptor sits, for error messages (`config`, `layers[2]`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorField {
    /// The image manifest's `config`.
    Config,
    /// `layers[i]`.
    Layer(usize),
    /// `manifests[i]` of an index.
    Manifest(usize),
    /// The `subject`.
    Subject,
}

impl std::fmt::Display for DescriptorField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config => f.write_str("config"),
            Self::Layer(i) => write!(f, "layers[{i}]"),
            Self::Manifest(i) => write!(f, "manifests[{i}]"),
            Self::Subject => f.write_str("subject"),
        }
    }
}

/// A descriptor's digest and the size it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredSize {
    /// Which descriptor.
    pub field: DescriptorField,
    /// The content it names.
    pub digest: Digest,
    /// The size it declares, in bytes.
    pub size: u64,
}

impl DeclaredSize {
    fn of(field: DescriptorField, descriptor: &Descriptor) -> Result<Self, Error> {
        Ok(Self {
            field,
            digest: digest_of(descriptor)?,
            size: descriptor.size(),
        })
    }
}

/// One layer descriptor of an image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer blob.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its declared size.
    pub size: u64,
    /// Its annotations (cosign keeps signatures here).
    pub annotations: BTreeMap<String, String>,
}

/// The fields read before choosing the full schema.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidManifest(msg.into())
}

fn digest_of(descriptor: &Descriptor) -> Result<Digest, Error> {
    descriptor.digest().to_string().parse()
}

/// Media type without parameters (`; charset=...`), lower-cased.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

fn is_image_type(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

fn is_external_layer(descriptor: &Descriptor) -> bool {
    descriptor
        .urls()
        .as_ref()
        .is_some_and(|urls| !urls.is_empty())
}

impl ParsedManifest {
    /// Parses manifest bytes sent with `content_type` (the request's `Content-Type`, if any).
    ///
    /// The `mediaType` field, when present, must agree with the header; when the header is absent
    /// or generic, the field or the document's shape decides.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, Error> {
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a JSON manifest: {e}")))?;
        if probe.schema_version != Some(2) {
            return Err(invalid(
                "schemaVersion must be 2 (Docker schema 1 manifests are not supported; convert the image with skopeo or docker)",
            ));
        }
        let header = content_type.map(essence).filter(|h| {
            !h.is_empty() && h != "application/json" && h != "application/octet-stream"
        });
        let field = probe.media_type.as_deref().map(essence);
        let media_type = match (header, field) {
            (Some(h), Some(f)) if h != f => {
                return Err(invalid(format!(
                    "Content-Type {h} does not match the manifest's mediaType {f}"
                )));
            }
            (Some(h), _) => h,
            (None, Some(f)) => f,
            (None, None) if probe.manifests.is_some() => OCI_INDEX.to_string(),
            (None, None) if probe.config.is_some() => OCI_MANIFEST.to_string(),
            (None, None) => {
                return Err(invalid(
                    "cannot tell the manifest type: set Content-Type or mediaType",
                ));
            }
        };
        if is_index_type(&media_type) {
            Self::parse_index(media_type, bytes)
        } else if is_image_type(&media_type) {
            Self::parse_image(media_type, bytes)
        } else {
            Err(invalid(format!(
                "unsupported manifest media type {media_type}; supported: {}",
                SUPPORTED_MEDIA_TYPES.join(", ")
            )))
        }
    }

    fn parse_image(media_type: String, bytes: &[u8]) -> Result<Self, Error> {
        let manifest: ImageManifest = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a valid image manifest: {e}")))?;
        let config = manifest.config();
        let config_type = config.media_type().to_string();
        if config_type == OCI_EMPTY && manifest.artifact_type().is_none() {
            return Err(invalid(
                "artifactType is required when the config is the empty descriptor",
            ));
        }
        let mut blobs = vec![digest_of(config)?];
        let mut declared_sizes = vec![DeclaredSize::of(DescriptorField::Config, config)?];
        let mut layers = Vec::with_capacity(manifest.layers().len());
        for (i, layer) in manifest.layers().iter().enumerate() {
            if !is_external_layer(layer) {
                blobs.push(digest_of(layer)?);
                declared_sizes.push(DeclaredSize::of(DescriptorField::Layer(i), layer)?);
            }
            layers.push(Layer {
                digest: digest_of(layer)?,
                media_type: layer.media_type().to_string(),
                size: layer.size(),
                annotations: layer
                    .annotations()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            });
        }
        let artifact_type = manifest
            .artifact_type()
            .as_ref()
            .map(|t| t.to_string())
            .or(Some(config_type));
        if let Some(subject) = manifest.subject() {
            declared_sizes.push(DeclaredSize::of(DescriptorField::Subject, subject)?);
        }
        Ok(Self {
            kind: ManifestKind::Image,
            media_type,
            artifact_type,
            blobs,
            manifests: Vec::new(),
            subject: manifest.subject().as_ref().map(digest_of).transpose()?,
            annotations: manifest
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            layers,
            declared_sizes,
        })
    }

    fn parse_index(media_type: String, bytes: &[u8]) -> Result<Self, Error> {
        let index: ImageIndex = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a valid image index: {e}")))?;
        let manifests = index
            .manifests()
            .iter()
            .map(digest_of)
            .collect::<Result<_, _>>()?;
        let mut declared_sizes = index
            .manifests()
            .iter()
            .enumerate()
            .map(|(i, child)| DeclaredSize::of(DescriptorField::Manifest(i), child))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(subject) = index.subject() {
            declared_sizes.push(DeclaredSize::of(DescriptorField::Subject, subject)?);
        }
        Ok(Self {
            kind: ManifestKind::Index,
            media_type,
            artifact_type: index.artifact_type().as_ref().map(|t| t.to_string()),
            blobs: Vec::new(),
            manifests,
            subject: index.subject().as_ref().map(digest_of).transpose()?,
            annotations: index
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            layers: Vec::new(),
            declared_sizes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D2}","size":3}}]{extra}}}"#
        )
    }

    #[test]
    fn image_manifest_lists_its_blobs() {
        let m = ParsedManifest::parse(Some(OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(
            m.blobs,
            vec![D1.parse().unwrap(), D2.parse::<Digest>().unwrap()]
        );
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(m.subject.is_none());
    }

    #[test]
    fn subject_and_artifact_type_are_read() {
        let extra = format!(
            r#","artifactType":"application/x.test","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":9}},"annotations":{{"a":"b"}}"#
        );
        let m = ParsedManifest::parse(None, image(&extra).as_bytes()).unwrap();
        assert_eq!(m.subject, Some(D1.parse().unwrap()));
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.test"));
        assert_eq!(m.annotations.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn declared_sizes_name_each_descriptor() {
        let extra = format!(
            r#","artifactType":"application/x.test","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":9}}"#
        );
        let m = ParsedManifest::parse(None, image(&extra).as_bytes()).unwrap();
        let listed: Vec<(String, u64)> = m
            .declared_sizes
            .iter()
            .map(|d| (d.field.to_string(), d.size))
            .collect();
        assert_eq!(
            listed,
            [
                ("config".to_string(), 2),
                ("layers[0]".to_string(), 3),
                ("subject".to_string(), 9)
            ]
        );
    }

    #[test]
    fn index_lists_child_manifests() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":5}}]}}"#
        );
        let m = ParsedManifest::parse(Some(OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests, vec![D1.parse().unwrap()]);
    }

    #[test]
    fn mismatched_content_type_is_rejected() {
        let err = ParsedManifest::parse(Some(OCI_INDEX), image("").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn malformed_manifests_are_rejected() {
        for body in [
            "",
            "{",
            "[]",
            r#"{"schemaVersion":1}"#,
            r#"{"schemaVersion":2}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
            r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#,
        ] {
            assert!(
                ParsedManifest::parse(None, body.as_bytes()).is_err(),
                "{body:?} should be rejected"
            );
        }
    }

    #[test]
    fn empty_config_needs_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_EMPTY}","digest":"{D1}","size":2}},"layers":[]}}"#
        );
        assert!(ParsedManifest::parse(None, body.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = ParsedManifest::parse(None, &bytes);
        }
    }
}
