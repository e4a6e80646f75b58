//! in-toto Statements v0.1 and v1: which artifacts (subjects) a predicate speaks about.
//!
//! Only the envelope of the claim is typed here: `_type`, subjects with their digests, the
//! predicate type. The predicate stays JSON for [`crate::facts`] to read once it is verified.

use std::collections::BTreeMap;

use airlock_core::digest::Digest;
use serde::Deserialize;

use crate::TrustError;
use crate::dsse::{MAX_ENVELOPE_BYTES, json_string};

/// The `_type` of an in-toto Statement v0.1.
pub const STATEMENT_V01_TYPE: &str = "https://in-toto.io/Statement/v0.1";

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_V1_TYPE: &str = "https://in-toto.io/Statement/v1";

/// Largest statement airlock parses: a statement is a DSSE payload, so the envelope's limit.
pub const MAX_STATEMENT_BYTES: usize = MAX_ENVELOPE_BYTES;

const WHAT: &str = "in-toto statement";

/// Which Statement layer version a statement declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementVersion {
    /// `https://in-toto.io/Statement/v0.1` (cosign's default, SLSA v0.2 era).
    V01,
    /// `https://in-toto.io/Statement/v1`.
    V1,
}

impl StatementVersion {
    /// The `_type` URI of this version.
    pub fn type_uri(self) -> &'static str {
        match self {
            Self::V01 => STATEMENT_V01_TYPE,
            Self::V1 => STATEMENT_V1_TYPE,
        }
    }
}

/// One subject of a statement: a name and its digests by algorithm (`{"sha256": "<hex>"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceDescriptor {
    /// The subject's name (free-form; empty when absent).
    #[serde(default)]
    pub name: String,
    /// Digests by algorithm name, hex-encoded.
    pub digest: BTreeMap<String, String>,
}

/// A parsed in-toto statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The declared version.
    pub version: StatementVersion,
    /// What the statement is about (never empty once parsed).
    pub subjects: Vec<ResourceDescriptor>,
    /// The predicate's type URI (never empty once parsed).
    pub predicate_type: String,
    /// The predicate, unparsed (`null` when absent).
    pub predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct WireStatement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

impl Statement {
    /// Parses a statement. Refuses input above [`MAX_STATEMENT_BYTES`], other `_type`s, missing
    /// or empty subjects, subjects without digests, and a missing or empty `predicateType`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        TrustError::check_size(WHAT, bytes.len(), MAX_STATEMENT_BYTES)?;
        let wire: WireStatement = serde_json::from_slice(bytes)
            .map_err(|e| TrustError::malformed(WHAT, e.to_string()))?;
        let version = match wire.kind.as_str() {
            STATEMENT_V01_TYPE => StatementVersion::V01,
            STATEMENT_V1_TYPE => StatementVersion::V1,
            other => {
                return Err(TrustError::malformed(
                    WHAT,
                    format!(
                        "_type {:?} is not {STATEMENT_V01_TYPE} or {STATEMENT_V1_TYPE}",
                        crate::keys::truncate(other)
                    ),
                ));
            }
        };
        if wire.subject.is_empty() {
            return Err(TrustError::malformed(WHAT, "the statement has no subject"));
        }
        if wire.subject.iter().any(|subject| subject.digest.is_empty()) {
            return Err(TrustError::malformed(WHAT, "a subject has no digest"));
        }
        if wire.predicate_type.is_empty() {
            return Err(TrustError::malformed(WHAT, "predicateType is empty"));
        }
        Ok(Self {
            version,
            subjects: wire.subject,
            predicate_type: wire.predicate_type,
            predicate: wire.predicate,
        })
    }

    /// A v1 statement.
    pub fn new_v1(
        subjects: Vec<ResourceDescriptor>,
        predicate_type: impl Into<String>,
        predicate: serde_json::Value,
    ) -> Self {
        Self {
            version: StatementVersion::V1,
            subjects,
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// The statement as JSON, fields in the conventional order
    /// (`_type`, `subject`, `predicateType`, `predicate`).
    pub fn to_json(&self) -> Vec<u8> {
        let subjects = self
            .subjects
            .iter()
            .map(|subject| {
                let digest = serde_json::Value::Object(
                    subject
                        .digest
                        .iter()
                        .map(|(algorithm, hex)| {
                            (algorithm.clone(), serde_json::Value::String(hex.clone()))
                        })
                        .collect(),
                );
                format!(
                    "{{\"name\":{},\"digest\":{digest}}}",
                    json_string(&subject.name)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{{\"_type\":{},\"subject\":[{subjects}],\"predicateType\":{},\"predicate\":{}}}",
            json_string(self.version.type_uri()),
            json_string(&self.predicate_type),
            self.predicate
        )
        .into_bytes()
    }

    /// Whether some subject names `digest`: its digest map has the algorithm's key (e.g.
    /// `sha256`) with the same hex, compared case-insensitively.
    pub fn names_digest(&self, digest: &Digest) -> bool {
        let algorithm = digest.algorithm().as_str();
        self.subjects.iter().any(|subject| {
            subject
                .digest
                .get(algorithm)
                .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
        })
    }
}

impl ResourceDescriptor {
    /// A subject naming one artifact by its digest.
    pub fn for_digest(name: impl Into<String>, digest: &Digest) -> Self {
        Self {
            name: name.into(),
            digest: BTreeMap::from([(
                digest.algorithm().as_str().to_string(),
                digest.hex().to_string(),
            )]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
    }

    #[test]
    fn v1_statement_round_trips() {
        let statement = Statement::new_v1(
            vec![ResourceDescriptor::for_digest("team/app", &digest())],
            "https://slsa.dev/provenance/v1",
            serde_json::json!({"buildDefinition": {"buildType": "x"}}),
        );
        let json = statement.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with(
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"team/app","digest":{"sha256":"abab"#
        ));
        assert_eq!(Statement::parse(&json).unwrap(), statement);
    }

    #[test]
    fn v01_statement_is_read() {
        let json = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicate":{{"builder":{{"id":"ci"}}}}}}"#,
            "AB".repeat(32)
        );
        let statement = Statement::parse(json.as_bytes()).unwrap();
        assert_eq!(statement.version, StatementVersion::V01);
        assert_eq!(statement.predicate["builder"]["id"], "ci");
        assert!(
            statement.names_digest(&digest()),
            "hex compares case-insensitively"
        );
    }

    #[test]
    fn names_digest_needs_the_same_algorithm_and_hex() {
        let other: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let statement = Statement::new_v1(
            vec![ResourceDescriptor {
                name: String::new(),
                digest: BTreeMap::from([("sha512".to_string(), "ab".repeat(32))]),
            }],
            "p",
            serde_json::Value::Null,
        );
        assert!(!statement.names_digest(&digest()));
        let statement = Statement::new_v1(
            vec![
                ResourceDescriptor::for_digest("a", &other),
                ResourceDescriptor::for_digest("b", &digest()),
            ],
            "p",
            serde_json::Value::Null,
        );
        assert!(statement.names_digest(&digest()));
        assert!(statement.names_digest(&other));
    }

    #[test]
    fn other_statement_types_are_refused() {
        let json = br#"{"_type":"https://in-toto.io/Statement/v2","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"p"}"#;
        assert!(matches!(
            Statement::parse(json),
            Err(TrustError::Malformed { reason, .. }) if reason.contains("Statement/v2")
        ));
    }

    #[test]
    fn missing_or_empty_subjects_and_predicate_types_are_refused() {
        for (json, needle) in [
            (
                &br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"p"}"#[..],
                "subject",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"p"}"#,
                "no subject",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{}}],"predicateType":"p"}"#,
                "no digest",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}]}"#,
                "predicateType",
            ),
            (
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],"predicateType":""}"#,
                "predicateType is empty",
            ),
        ] {
            match Statement::parse(json) {
                Err(TrustError::Malformed { reason, .. }) => {
                    assert!(reason.contains(needle), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let json = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],"predicateType":"a","predicateType":"b"}"#;
        assert!(matches!(
            Statement::parse(json),
            Err(TrustError::Malformed { .. })
        ));
    }

    #[test]
    fn oversized_statement_is_refused() {
        assert!(matches!(
            Statement::parse(&vec![b' '; MAX_STATEMENT_BYTES + 1]),
            Err(TrustError::TooLarge { .. })
        ));
    }
}
