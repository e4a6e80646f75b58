//! The domain error: what was wrong with a name, digest, manifest or stage rule.

use crate::name::StageName;

/// A domain rule that an input broke. Each variant says exactly what failed; the server maps
/// them to OCI error codes in one place.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The digest string is not `algorithm:hex` with a supported algorithm and the right length.
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest {
        /// The rejected input (truncated).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The digest names an algorithm airlock does not implement.
    #[error("unsupported digest algorithm {0:?}: use sha256 or sha512")]
    UnsupportedDigestAlgorithm(String),
    /// The repository name does not match the OCI distribution grammar.
    #[error("invalid repository name {value:?}: {reason}")]
    InvalidName {
        /// The rejected input (truncated).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The tag does not match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error(
        "invalid tag {0:?}: a tag is 1-128 characters of [a-zA-Z0-9._-] and may not start with '.' or '-'"
    )]
    InvalidTag(String),
    /// The repository's first path segment is not a configured stage.
    #[error(
        "unknown stage {0:?}: repository names start with a configured stage, e.g. dev/team/app"
    )]
    UnknownStage(String),
    /// The manifest is not a well-formed OCI or Docker manifest.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// Content was pushed into a gated stage, which only receives artifacts by promotion.
    #[error(
        "stage {stage} is gated: artifacts reach {stage} only by promotion, push to a push stage such as {push_stage} instead"
    )]
    PushToGatedStage {
        /// The gated stage.
        stage: StageName,
        /// A stage that accepts pushes, to name in the remediation.
        push_stage: String,
    },
    /// A tag in a gated stage already points at another manifest.
    #[error("tag {tag} in gated stage {stage} is immutable and already points to {current}")]
    ImmutableTag {
        /// The gated stage.
        stage: StageName,
        /// The tag.
        tag: String,
        /// Its current digest.
        current: String,
    },
    /// Deletion was attempted in a gated stage.
    #[error(
        "deleting in gated stage {0} is not allowed: content there is the record of what was promoted"
    )]
    DeleteInGatedStage(StageName),
    /// The stage configuration is inconsistent.
    #[error("invalid stage configuration: {0}")]
    InvalidStageConfig(String),
}

/// Shortens untrusted input before it is echoed back in an error message.
pub(crate) fn truncated(value: &str) -> String {
    const MAX: usize = 80;
    if value.len() <= MAX {
        value.to_string()
    } else {
        let mut end = MAX;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &value[..end])
    }
}
