//! What a verified predicate says, as typed facts.
//!
//! airlock checks an attestation's signature elsewhere; once that has passed, the predicate is
//! read here exactly once, at ingestion, and the [`Facts`] are stored beside the evidence and
//! handed to policy later. Policy therefore never parses SLSA, CycloneDX, SPDX, Trivy, Grype,
//! SARIF or OpenSSF Scorecard results itself, and every evidence of a kind has the same shape.
//! Where an SBOM states a dependency graph, each component says whether it is a root, a direct
//! or a transitive dependency, and how many other components it depends on directly (the
//! `graph` submodule says which edges count); [`crate::dependencies`] summarises an SBOM's facts
//! for dependency-health gates.
//!
//! Facts stored by an older airlock are read back with the fields it did not derive at their
//! serde defaults; where a default would claim something good that was never checked, the field
//! is an `Option` and `None` means unknown ([`Provenance::unpinned_inputs`]).
//!
//! Guarantees:
//!
//! - [`derive_facts`] is a pure function of its inputs: no I/O, no clock, no randomness, and the
//!   output is deterministic (findings and licenses are sorted, duplicates removed).
//! - A predicate of a known type (or one recognisably in a known format) is either read
//!   completely or refused with a [`FactsError`] naming the field that is missing or malformed.
//!   A field this module reads that is present with the wrong JSON type is an error, never
//!   skipped (only a JSON `null` counts as absent). The one exception is SLSA v1
//!   `externalParameters`, whose shape each build type defines: it is only consulted where it
//!   has a known shape.
//! - Work is bounded: at most [`MAX_ITEMS`] components, findings, provenance inputs or
//!   Scorecard checks, at most [`MAX_RELATIONSHIPS`] dependency edges (walked breadth first,
//!   each component once, so cyclic graphs terminate), and CycloneDX components nested at most
//!   [`MAX_COMPONENT_DEPTH`] levels deep.
//! - Package URLs are not parsed here (a component's `purl` is kept as written); an invalid one
//!   is therefore never an error of the SBOM: [`crate::dependencies`] reports it.
//! - A license expression that cannot be understood is never dropped silently: it is listed in
//!   [`Sbom::invalid_licenses`] with the parser's reason, and its component's license is `None`.
//!
//! # License expressions
//!
//! Every license is normalised with the `spdx` crate into canonical SPDX expression text:
//! canonical license and exception ids, upper-case operators, single spaces, same structure and
//! order as written (e.g. `apache-2.0 or mit` becomes `Apache-2.0 OR MIT`). The accepted dialect
//! is the SPDX specification plus the leniencies that cannot change a license's meaning:
//!
//! - ids are matched case-insensitively, as SPDX 2.3 Annex D prescribes (`mit` is `MIT`);
//! - deprecated ids are accepted; GNU ids are written the current way: `GPL-2.0` becomes
//!   `GPL-2.0-only` and `GPL-2.0+` becomes `GPL-2.0-or-later`;
//! - `/` is read as `OR`, and `and`/`or`/`with` as the operators.
//!
//! The `spdx` crate's "imprecise names" (its `ParseMode::LAX` guesses such as `Apache 2`, `BSD`,
//! `gpl`) are deliberately *not* accepted: that table is a prefix match and contains guesses that
//! change the legal meaning (`BSD` becomes `BSD-2-Clause`; `gnu gpl v2` becomes
//! `GPL-3.0-only`). Such inputs are reported as invalid so that policy sees them instead of a
//! wrong id. `LicenseRef-*` (and `DocumentRef-*:LicenseRef-*`) identifiers are valid.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use spdx::error::Reason;
use spdx::lexer::{Lexer, Token};
use spdx::{ExceptionId, LicenseId, ParseError, ParseMode};

mod graph;
pub mod rebuilds;
mod scorecard;

pub use graph::MAX_RELATIONSHIPS;
use graph::{DependencyGraph, SpdxEdge};

/// The most components (SBOM), findings (vulnerability report), inputs (provenance) or checks
/// (Scorecard result) one predicate may yield.
pub const MAX_ITEMS: usize = 100_000;

/// How deep CycloneDX `components` may nest inside one another.
pub const MAX_COMPONENT_DEPTH: usize = 32;

const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";
const SPDX_DOCUMENT: &str = "https://spdx.dev/Document";
const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
/// The family of `https://scorecard.dev/result/v0.1`, the predicate type of
/// `scorecard --format=intoto`.
const SCORECARD_RESULT: &str = "https://scorecard.dev/result";

/// The facts derived from one verified predicate; what policy sees as `facts`.
///
/// Serialised with a `kind` tag (`"provenance"`, `"sbom"`, `"vulnerabilities"`, `"test_result"`,
/// `"scorecard"`, `"none"`) so that the stored form says which shape follows. Fields added
/// after the first release default when absent, so facts stored earlier still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    /// SLSA provenance: who built the artifact, how, and from which source.
    Provenance(Provenance),
    /// A software bill of materials: components and their licenses.
    Sbom(Sbom),
    /// A vulnerability scan: findings and counts per severity.
    Vulnerabilities(Vulnerabilities),
    /// An in-toto test result.
    TestResult(TestResult),
    /// An OpenSSF Scorecard result: how well a source repository follows supply-chain
    /// practices.
    Scorecard(Scorecard),
    /// The predicate type carries no derived facts (custom predicates, links, OpenVEX, ...).
    None,
}

/// Build facts from SLSA provenance v1 or v0.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `"v1"` or `"v0.2"`.
    pub slsa_version: String,
    /// The builder's id (never empty).
    pub builder_id: String,
    /// The build type (never empty).
    pub build_type: String,
    /// The source repository, without a `git+` prefix or an `@refs/...` suffix.
    pub source_repository: Option<String>,
    /// The source commit, as given by the provenance (`gitCommit` or `sha1` digest).
    pub commit: Option<String>,
    /// The source ref that was built, e.g. `refs/heads/main` or `refs/tags/v1.2.0`: the
    /// `@refs/...` suffix of the source's uri, else GitHub's `externalParameters.workflow.ref`
    /// (v1), else the suffix of `invocation.configSource.uri` (v0.2).
    #[serde(default)]
    pub source_ref: Option<String>,
    /// How many inputs the build declares: `buildDefinition.resolvedDependencies` (v1) or
    /// `materials` (v0.2).
    #[serde(default)]
    pub inputs: u64,
    /// Every input without a digest (none, an empty object, or only empty values), named by
    /// its `uri`, else its `name`, else its place (`resolvedDependencies[3]`, `materials[3]`);
    /// in document order. Always `Some` when derived now (`Some([])`: every input is pinned);
    /// `None` in facts stored before inputs were read, where whether they were pinned is
    /// unknown (the policy input then has `null`, which a gate treats as unpinned).
    #[serde(default)]
    pub unpinned_inputs: Option<Vec<String>>,
}

/// Facts from a CycloneDX (JSON, 1.4 or later) or SPDX (2.x JSON) SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sbom {
    /// `"cyclonedx"` or `"spdx"`.
    pub format: String,
    /// The document's format version, e.g. `"1.5"` (CycloneDX) or `"2.3"` (SPDX).
    pub spec_version: String,
    /// Every component (CycloneDX: depth first, nested ones after their parent; SPDX: every
    /// package), in document order.
    pub components: Vec<Component>,
    /// Sorted, distinct, normalised license expressions of the components.
    pub licenses: Vec<String>,
    /// License expressions that could not be understood, in document order.
    pub invalid_licenses: Vec<InvalidLicense>,
    /// Whether the SBOM connects at least one component to a root, so that
    /// [`Component::relationship`] `"direct"` and `"transitive"` are meaningful.
    #[serde(default)]
    pub dependency_graph: bool,
}

/// One component of an SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// The component's name.
    pub name: String,
    /// Its version, if the SBOM states one.
    pub version: Option<String>,
    /// Its package URL, if the SBOM states one.
    pub purl: Option<String>,
    /// Its normalised SPDX license expression. `None` when the SBOM states no license (or
    /// `NOASSERTION`/`NONE`), or when a stated expression is invalid (then it is listed in
    /// [`Sbom::invalid_licenses`]). Several CycloneDX license entries are joined with `AND`.
    pub license: Option<String>,
    /// What kind of component it is: CycloneDX `type` as written (`"library"`,
    /// `"application"`, `"operating-system"`, `"file"`, ...); SPDX `primaryPackagePurpose` lower
    /// case with `-` for `_` (`"operating-system"`). `None` when the SBOM does not say.
    #[serde(default)]
    pub component_type: Option<String>,
    /// Where the component sits in the SBOM's dependency graph: `"root"` (what the SBOM
    /// describes), `"direct"` (a dependency of a root), `"transitive"` (reachable from a root
    /// only through another component); `None` when the SBOM states no graph or does not
    /// connect the component to a root.
    #[serde(default)]
    pub relationship: Option<String>,
    /// How many other components of the SBOM it depends on directly, as its graph states
    /// (CycloneDX `dependencies[].dependsOn`; SPDX the edges [`Component::relationship`] is
    /// read from), counted once each whether or not the graph reaches it from a root. 0 when
    /// none is stated (and in facts stored before it was read).
    #[serde(default)]
    pub dependencies: u64,
}

impl Component {
    /// How messages name the component: its purl if it has one, else `name@version`, else
    /// its name.
    pub fn label(&self) -> String {
        component_label(&self.name, self.version.as_deref(), self.purl.as_deref())
    }
}

/// A component's purl if it has one (not blank), else `name@version`, else its name.
fn component_label(name: &str, version: Option<&str>, purl: Option<&str>) -> String {
    match (purl.filter(|purl| !purl.trim().is_empty()), version) {
        (Some(purl), _) => purl.to_owned(),
        (None, Some(version)) => format!("{name}@{version}"),
        (None, None) => name.to_owned(),
    }
}

/// A license expression from an SBOM that is not a valid SPDX expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidLicense {
    /// The component: its purl if it has one, else `name@version`, else its name.
    pub component: String,
    /// The expression exactly as the SBOM wrote it.
    pub expression: String,
    /// Why it is invalid.
    pub error: String,
}

/// Facts from a vulnerability scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vulnerabilities {
    /// The scanner's name, lower case (e.g. `"trivy"`, `"grype"`).
    pub scanner: String,
    /// Number of findings per severity; always has exactly the keys `"critical"`, `"high"`,
    /// `"medium"`, `"low"` and `"unknown"`.
    pub counts: BTreeMap<String, u64>,
    /// The findings, most severe first, then by id and package; no two share (id, package,
    /// version) — of duplicates the most severe is kept.
    pub findings: Vec<Finding>,
}

/// One vulnerability found in one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The vulnerability (or SARIF rule) id, e.g. `"CVE-2023-0286"`.
    pub id: String,
    /// The affected package (may be empty when a SARIF log names none).
    pub package: String,
    /// The installed version of the package, if known.
    pub version: Option<String>,
    /// One of `"critical"`, `"high"`, `"medium"`, `"low"`, `"unknown"`.
    pub severity: String,
    /// The version(s) fixing it, if any.
    pub fixed_version: Option<String>,
}

/// Facts from an in-toto test result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// `"passed"`, `"warned"` or `"failed"`.
    pub result: String,
    /// Number of entries in `passedTests`.
    pub passed: u64,
    /// Number of entries in `warnedTests`.
    pub warned: u64,
    /// Number of entries in `failedTests`.
    pub failed: u64,
    /// Where the full results are, if given.
    pub url: Option<String>,
}

/// Facts from an OpenSSF Scorecard result (JSON format v2, or the predicate of scorecard's
/// in-toto statement, which is the same without `repo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// The repository scored, as written (`repo.name`, e.g. `"github.com/ossf/scorecard"`);
    /// `None` when absent (scorecard's in-toto form names it in the statement's subject).
    pub repository: Option<String>,
    /// The commit scored (`repo.commit`).
    pub commit: Option<String>,
    /// When the repository was scored, as written (`date`): always an RFC 3339 date-time or a
    /// `YYYY-MM-DD` date (anything else is refused), so policy can compare dates.
    pub date: String,
    /// The version of scorecard that scored it (`scorecard.version`).
    pub scorecard_version: Option<String>,
    /// The aggregate score, -1 to 10.
    pub score: f64,
    /// Every check by name with its score: 0 to 10, or -1 when the check was inconclusive.
    pub checks: BTreeMap<String, i64>,
}

/// Why facts could not be derived from a predicate of a known type. The message names the
/// format and the field (as a path such as `components[2].licenses[0].license.id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// The predicate is not a JSON object.
    #[error("{format} predicate is not a JSON object")]
    NotAnObject {
        /// The format the predicate was read as.
        format: &'static str,
    },
    /// A required field is absent, null or empty.
    #[error("{format} has no {field}")]
    MissingField {
        /// The format the predicate was read as.
        format: &'static str,
        /// Path of the field.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{format} field {field} is not {expected}")]
    WrongType {
        /// The format the predicate was read as.
        format: &'static str,
        /// Path of the field.
        field: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A field has a value the format does not allow.
    #[error("{format} field {field} is {value:?}, expected {expected}")]
    UnexpectedValue {
        /// The format the predicate was read as.
        format: &'static str,
        /// Path of the field.
        field: String,
        /// The value found (shortened if long).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The CycloneDX document predates 1.4 (no support for its older license model).
    #[error("CycloneDX specVersion {spec_version} is older than 1.4")]
    CycloneDxTooOld {
        /// The document's `specVersion`.
        spec_version: String,
    },
    /// The SPDX document is not SPDX 2.x JSON.
    #[error("SPDX document version {version:?} is not supported (only SPDX-2.x JSON)")]
    UnsupportedSpdxVersion {
        /// The document's `spdxVersion` (shortened if long).
        version: String,
    },
    /// The cosign vuln predicate's `scanner.result` is in no known report format.
    #[error(
        "cosign vuln predicate field scanner.result is not a Trivy JSON, Grype JSON or SARIF 2.1.0 report"
    )]
    UnrecognisedVulnerabilityReport,
    /// More than [`MAX_ITEMS`] components or findings.
    #[error("{format} has more than {limit} {what}")]
    TooMany {
        /// The format the predicate was read as.
        format: &'static str,
        /// `"components"` or `"findings"`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// CycloneDX components nested more than [`MAX_COMPONENT_DEPTH`] levels deep.
    #[error("{format} nests components deeper than {limit} levels at {field}")]
    TooDeep {
        /// The format the predicate was read as.
        format: &'static str,
        /// Path of the components list that is too deep.
        field: String,
        /// The limit.
        limit: usize,
    },
}

/// Derives the facts of a verified predicate.
///
/// The format is chosen by `predicate_type` (see [`predicate_kind`]); a predicate of another
/// type is still recognised by content when it is a CycloneDX BOM (`bomFormat: "CycloneDX"`),
/// an SPDX 2.x document (`spdxVersion: "SPDX-2.x"`), a SARIF 2.1.0 log or an OpenSSF Scorecard
/// result (a string `scorecard.version`, a `checks` array and a numeric `score`). Anything else
/// yields [`Facts::None`]. A predicate in a recognised format that is malformed is an error.
pub fn derive_facts(predicate_type: &str, predicate: &Value) -> Result<Facts, FactsError> {
    let Some(format) =
        PredicateFormat::by_type(predicate_type).or_else(|| PredicateFormat::by_content(predicate))
    else {
        return Ok(Facts::None);
    };
    let reader = Reader {
        format: format.label(),
    };
    let root = predicate.as_object().ok_or(FactsError::NotAnObject {
        format: format.label(),
    })?;
    Ok(match format {
        PredicateFormat::SlsaV1 => Facts::Provenance(slsa_v1(reader, root)?),
        PredicateFormat::SlsaV02 => Facts::Provenance(slsa_v02(reader, root)?),
        PredicateFormat::CycloneDx => Facts::Sbom(cyclonedx(reader, root)?),
        PredicateFormat::Spdx => Facts::Sbom(spdx_document(reader, root)?),
        PredicateFormat::CosignVuln => Facts::Vulnerabilities(cosign_vuln(reader, root)?),
        PredicateFormat::Sarif => {
            let mut findings = FindingsBuilder::default();
            let name = sarif(reader, root, "", &mut findings)?;
            Facts::Vulnerabilities(findings.finish(name.unwrap_or_else(|| "sarif".to_owned())))
        }
        PredicateFormat::TestResult => Facts::TestResult(test_result(reader, root)?),
        PredicateFormat::Scorecard => Facts::Scorecard(scorecard::read(reader, root)?),
    })
}

/// The kind of facts a predicate type yields, for display: `"provenance"`, `"sbom"`,
/// `"vulnerabilities"`, `"test_result"` or `"scorecard"`; `None` for types without facts. Predicates recognised
/// only by content (see [`derive_facts`]) are not covered, as only the type is known here.
pub fn predicate_kind(predicate_type: &str) -> Option<&'static str> {
    PredicateFormat::by_type(predicate_type).map(PredicateFormat::kind)
}

/// The predicate formats facts are derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PredicateFormat {
    SlsaV1,
    SlsaV02,
    CycloneDx,
    Spdx,
    CosignVuln,
    Sarif,
    TestResult,
    Scorecard,
}

impl PredicateFormat {
    fn by_type(predicate_type: &str) -> Option<Self> {
        match predicate_type {
            SLSA_PROVENANCE_V1 => Some(Self::SlsaV1),
            SLSA_PROVENANCE_V02 => Some(Self::SlsaV02),
            COSIGN_VULN => Some(Self::CosignVuln),
            TEST_RESULT => Some(Self::TestResult),
            t if in_family(t, CYCLONEDX_BOM) => Some(Self::CycloneDx),
            t if in_family(t, SPDX_DOCUMENT) => Some(Self::Spdx),
            t if in_family(t, SCORECARD_RESULT) => Some(Self::Scorecard),
            t if t.to_ascii_lowercase().contains("sarif") => Some(Self::Sarif),
            _ => None,
        }
    }

    fn by_content(predicate: &Value) -> Option<Self> {
        let object = predicate.as_object()?;
        let text = |key: &str| object.get(key).and_then(Value::as_str);
        if text("bomFormat") == Some("CycloneDX") {
            Some(Self::CycloneDx)
        } else if text("spdxVersion").is_some_and(|v| v.starts_with("SPDX-2.")) {
            Some(Self::Spdx)
        } else if text("version") == Some("2.1.0")
            && object.get("runs").is_some_and(Value::is_array)
        {
            Some(Self::Sarif)
        } else if scorecard::looks_like(object) {
            Some(Self::Scorecard)
        } else {
            None
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::SlsaV1 | Self::SlsaV02 => "provenance",
            Self::CycloneDx | Self::Spdx => "sbom",
            Self::CosignVuln | Self::Sarif => "vulnerabilities",
            Self::TestResult => "test_result",
            Self::Scorecard => "scorecard",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::SlsaV1 => "SLSA v1 provenance",
            Self::SlsaV02 => "SLSA v0.2 provenance",
            Self::CycloneDx => "CycloneDX BOM",
            Self::Spdx => "SPDX document",
            Self::CosignVuln => "cosign vuln predicate",
            Self::Sarif => "SARIF log",
            Self::TestResult => "in-toto test result",
            Self::Scorecard => "OpenSSF Scorecard result",
        }
    }
}

/// `base` itself or a versioned variant of it (`base/v1.5`).
fn in_family(predicate_type: &str, base: &str) -> bool {
    predicate_type
        .strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

// ---------------------------------------------------------------------------------------------
// Reading JSON with errors that name the field.

/// Reads fields of one predicate format; every error it returns names the format and the path.
#[derive(Debug, Clone, Copy)]
struct Reader {
    format: &'static str,
}

impl Reader {
    fn missing(self, field: String) -> FactsError {
        FactsError::MissingField {
            format: self.format,
            field,
        }
    }

    fn wrong_type(self, field: String, expected: &'static str) -> FactsError {
        FactsError::WrongType {
            format: self.format,
            field,
            expected,
        }
    }

    fn unexpected(self, field: String, value: &str, expected: &'static str) -> FactsError {
        FactsError::UnexpectedValue {
            format: self.format,
            field,
            value: excerpt(value),
            expected,
        }
    }

    /// The value at `keys` below `object` (itself at `parent`); `None` if it or an object on the
    /// way is absent or null. An object on the way that is not an object is an error.
    fn lookup<'a>(
        self,
        object: &'a Map<String, Value>,
        parent: &str,
        keys: &[&str],
    ) -> Result<Option<&'a Value>, FactsError> {
        let mut current = object;
        for (i, key) in keys.iter().enumerate() {
            let value = match current.get(*key) {
                None | Some(Value::Null) => return Ok(None),
                Some(value) => value,
            };
            if i + 1 == keys.len() {
                return Ok(Some(value));
            }
            current = value
                .as_object()
                .ok_or_else(|| self.wrong_type(path(parent, &keys[..=i]), "an object"))?;
        }
        Ok(None)
    }

    fn string<'a>(
        self,
        object: &'a Map<String, Value>,
        parent: &str,
        keys: &[&str],
    ) -> Result<Option<&'a str>, FactsError> {
        match self.lookup(object, parent, keys)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.wrong_type(path(parent, keys), "a string")),
        }
    }

    /// A string that must be present and not blank.
    fn required_string<'a>(
        self,
        object: &'a Map<String, Value>,
        parent: &str,
        keys: &[&str],
    ) -> Result<&'a str, FactsError> {
        self.string(object, parent, keys)?
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| self.missing(path(parent, keys)))
    }

    fn object<'a>(
        self,
        object: &'a Map<String, Value>,
        parent: &str,
        keys: &[&str],
    ) -> Result<Option<&'a Map<String, Value>>, FactsError> {
        match self.lookup(object, parent, keys)? {
            None => Ok(None),
            Some(Value::Object(inner)) => Ok(Some(inner)),
            Some(_) => Err(self.wrong_type(path(parent, keys), "an object")),
        }
    }

    /// An array; absent or null is empty.
    fn array<'a>(
        self,
        object: &'a Map<String, Value>,
        parent: &str,
        keys: &[&str],
    ) -> Result<&'a [Value], FactsError> {
        match self.lookup(object, parent, keys)? {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.wrong_type(path(parent, keys), "an array")),
        }
    }

    /// An element of an array that must be an object.
    fn element<'a>(
        self,
        value: &'a Value,
        element_path: &str,
    ) -> Result<&'a Map<String, Value>, FactsError> {
        value
            .as_object()
            .ok_or_else(|| self.wrong_type(element_path.to_owned(), "an object"))
    }
}

/// `parent.key1.key2`, or `key1.key2` at the root.
fn path(parent: &str, keys: &[&str]) -> String {
    let tail = keys.join(".");
    if parent.is_empty() {
        tail
    } else {
        format!("{parent}.{tail}")
    }
}

/// At most 100 characters of `text`, for error messages.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 100;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// SLSA provenance.

/// Where the source came from, as far as the provenance says.
#[derive(Debug, Default)]
struct SourceRef {
    repository: Option<String>,
    commit: Option<String>,
    /// The `@refs/...` suffix of the uri the repository was taken from.
    reference: Option<String>,
}

impl SourceRef {
    /// The repository and ref named by `uri`, without a commit.
    fn from_uri(uri: &str) -> Self {
        Self {
            repository: repository_from_uri(uri),
            commit: None,
            reference: reference_from_uri(uri),
        }
    }
}

fn slsa_v1(r: Reader, root: &Map<String, Value>) -> Result<Provenance, FactsError> {
    let builder_id = r.required_string(root, "", &["runDetails", "builder", "id"])?;
    let build_type = r.required_string(root, "", &["buildDefinition", "buildType"])?;

    let list = "buildDefinition.resolvedDependencies";
    let dependencies = r.array(root, "", &["buildDefinition", "resolvedDependencies"])?;
    let inputs = build_inputs(r, dependencies, list, "resolvedDependencies")?;
    let mut source = SourceRef::default();
    for (i, dependency) in dependencies.iter().enumerate() {
        let at = format!("{list}[{i}]");
        let dependency = r.element(dependency, &at)?;
        if let Some(found) = git_source(r, dependency, &at)? {
            source = found;
            break;
        }
    }

    // externalParameters are defined by each build type, so they are only consulted where they
    // have the shape GitHub Actions (`workflow.repository`, `workflow.ref`) or a generic
    // `source` gives them; any other shape is not an error, it just says nothing about the
    // source.
    let external = root
        .get("buildDefinition")
        .and_then(|definition| definition.get("externalParameters"));
    if source.repository.is_none() {
        let workflow_repository = external
            .and_then(|external| external.pointer("/workflow/repository"))
            .and_then(Value::as_str);
        let source_parameter = external.and_then(|external| external.get("source"));
        if let Some(repository) = workflow_repository {
            source.repository = repository_from_uri(repository);
        } else if let Some(uri) = source_parameter.and_then(Value::as_str) {
            let described = SourceRef::from_uri(uri);
            source.repository = described.repository;
            source.reference = source.reference.or(described.reference);
        } else if let Some(described) = source_parameter.and_then(Value::as_object) {
            if let Some(uri) = described.get("uri").and_then(Value::as_str) {
                let named = SourceRef::from_uri(uri);
                source.repository = named.repository;
                source.reference = source.reference.or(named.reference);
            }
            if source.commit.is_none() {
                source.commit = ["gitCommit", "sha1"]
                    .iter()
                    .find_map(|algorithm| {
                        described
                            .get("digest")
                            .and_then(|digest| digest.get(*algorithm))
                            .and_then(Value::as_str)
                    })
                    .filter(|commit| !commit.is_empty())
                    .map(str::to_owned);
            }
        }
    }
    if source.reference.is_none() {
        source.reference = external
            .and_then(|external| external.pointer("/workflow/ref"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|reference| !reference.is_empty())
            .map(str::to_owned);
    }

    Ok(Provenance {
        slsa_version: "v1".to_owned(),
        builder_id: builder_id.to_owned(),
        build_type: build_type.to_owned(),
        source_repository: source.repository,
        commit: source.commit,
        source_ref: source.reference,
        inputs: inputs.count,
        unpinned_inputs: Some(inputs.unpinned),
    })
}

fn slsa_v02(r: Reader, root: &Map<String, Value>) -> Result<Provenance, FactsError> {
    let builder_id = r.required_string(root, "", &["builder", "id"])?;
    let build_type = r.required_string(root, "", &["buildType"])?;
    let materials = r.array(root, "", &["materials"])?;
    let inputs = build_inputs(r, materials, "materials", "materials")?;

    let config_path = "invocation.configSource";
    let config = match r.object(root, "", &["invocation", "configSource"])? {
        Some(config) => {
            let uri = r.string(config, config_path, &["uri"])?;
            let mut described = uri.map(SourceRef::from_uri).unwrap_or_default();
            described.commit = git_commit(r, config, config_path)?;
            Some(described)
        }
        None => None,
    };

    let source = match config {
        Some(config) if config.commit.is_some() => config,
        config => {
            let mut material_source = None;
            for (i, material) in materials.iter().enumerate() {
                let at = format!("materials[{i}]");
                let material = r.element(material, &at)?;
                if let Some(found) = git_source(r, material, &at)? {
                    material_source = Some(found);
                    break;
                }
            }
            let config = config.unwrap_or_default();
            match material_source {
                Some(mut found) => {
                    if found.repository.is_none() {
                        found.repository = config.repository;
                    }
                    if found.reference.is_none() {
                        found.reference = config.reference;
                    }
                    found
                }
                None => SourceRef {
                    commit: None,
                    ..config
                },
            }
        }
    };

    Ok(Provenance {
        slsa_version: "v0.2".to_owned(),
        builder_id: builder_id.to_owned(),
        build_type: build_type.to_owned(),
        source_repository: source.repository,
        commit: source.commit,
        source_ref: source.reference,
        inputs: inputs.count,
        unpinned_inputs: Some(inputs.unpinned),
    })
}

/// What a provenance says about the build's inputs.
#[derive(Debug, Default)]
struct BuildInputs {
    count: u64,
    unpinned: Vec<String>,
}

/// Counts the inputs (resource descriptors at `list_path`) and names those without a digest:
/// by `uri`, else `name`, else `{label}[i]`. More than [`MAX_ITEMS`] inputs are refused.
fn build_inputs(
    r: Reader,
    inputs: &[Value],
    list_path: &str,
    label: &str,
) -> Result<BuildInputs, FactsError> {
    if inputs.len() > MAX_ITEMS {
        return Err(FactsError::TooMany {
            format: r.format,
            what: "inputs",
            limit: MAX_ITEMS,
        });
    }
    let mut found = BuildInputs {
        count: inputs.len() as u64,
        unpinned: Vec::new(),
    };
    for (i, input) in inputs.iter().enumerate() {
        let at = format!("{list_path}[{i}]");
        let input = r.element(input, &at)?;
        let uri = r.string(input, &at, &["uri"])?;
        let name = r.string(input, &at, &["name"])?;
        let mut pinned = false;
        if let Some(digest) = r.object(input, &at, &["digest"])? {
            for (algorithm, value) in digest {
                match value {
                    Value::String(value) => pinned |= !value.trim().is_empty(),
                    Value::Null => {}
                    _ => {
                        return Err(r.wrong_type(format!("{at}.digest.{algorithm}"), "a string"));
                    }
                }
            }
        }
        if !pinned {
            let named = [uri, name]
                .into_iter()
                .flatten()
                .map(str::trim)
                .find(|text| !text.is_empty());
            found
                .unpinned
                .push(named.map_or_else(|| format!("{label}[{i}]"), str::to_owned));
        }
    }
    Ok(found)
}

/// A resource descriptor (`{uri, digest}`) that names a git commit, or `None` if it names none.
fn git_source(
    r: Reader,
    descriptor: &Map<String, Value>,
    at: &str,
) -> Result<Option<SourceRef>, FactsError> {
    let Some(commit) = git_commit(r, descriptor, at)? else {
        return Ok(None);
    };
    let uri = r.string(descriptor, at, &["uri"])?;
    Ok(Some(SourceRef {
        commit: Some(commit),
        ..uri.map(SourceRef::from_uri).unwrap_or_default()
    }))
}

/// `digest.gitCommit`, else `digest.sha1`.
fn git_commit(
    r: Reader,
    descriptor: &Map<String, Value>,
    at: &str,
) -> Result<Option<String>, FactsError> {
    let commit = match r.string(descriptor, at, &["digest", "gitCommit"])? {
        Some(commit) => Some(commit),
        None => r.string(descriptor, at, &["digest", "sha1"])?,
    };
    Ok(commit
        .filter(|commit| !commit.is_empty())
        .map(str::to_owned))
}

/// `git+https://host/repo@refs/heads/main` -> `refs/heads/main`; `None` without such a suffix.
fn reference_from_uri(uri: &str) -> Option<String> {
    let at = uri.find("@refs/")?;
    let reference = uri[at + 1..].trim();
    (reference.len() > "refs/".len()).then(|| reference.to_owned())
}

/// `git+https://host/repo@refs/heads/main` -> `https://host/repo`; `None` if nothing is left.
fn repository_from_uri(uri: &str) -> Option<String> {
    let uri = uri.strip_prefix("git+").unwrap_or(uri);
    let uri = uri.find("@refs/").map_or(uri, |at| &uri[..at]);
    (!uri.is_empty()).then(|| uri.to_owned())
}

// ---------------------------------------------------------------------------------------------
// SBOMs.

fn cyclonedx(r: Reader, root: &Map<String, Value>) -> Result<Sbom, FactsError> {
    if let Some(format) = r.string(root, "", &["bomFormat"])?
        && format != "CycloneDX"
    {
        return Err(r.unexpected("bomFormat".to_owned(), format, "\"CycloneDX\""));
    }
    let spec_version = r.required_string(root, "", &["specVersion"])?;
    let (major, minor) = parse_major_minor(spec_version).ok_or_else(|| {
        r.unexpected(
            "specVersion".to_owned(),
            spec_version,
            "a CycloneDX version such as \"1.5\"",
        )
    })?;
    if (major, minor) < (1, 4) {
        return Err(FactsError::CycloneDxTooOld {
            spec_version: excerpt(spec_version),
        });
    }

    let mut sbom = SbomBuilder::new(r);
    cyclonedx_components(r, root, "", 0, &mut sbom)?;
    let graph = cyclonedx_graph(r, root)?;
    Ok(sbom.finish("cyclonedx", spec_version, Some(&graph)))
}

/// The graph from `metadata.component.bom-ref` along `dependencies[].dependsOn`; without a
/// root, or without dependencies stated for it, it places no component below a root (see
/// [`graph`]). The `dependencies` are checked either way.
fn cyclonedx_graph<'a>(
    r: Reader,
    root: &'a Map<String, Value>,
) -> Result<DependencyGraph<'a>, FactsError> {
    let root_ref = r
        .string(root, "", &["metadata", "component", "bom-ref"])?
        .filter(|name| !name.is_empty());
    let mut graph = DependencyGraph::default();
    for (i, entry) in r.array(root, "", &["dependencies"])?.iter().enumerate() {
        let at = format!("dependencies[{i}]");
        let entry = r.element(entry, &at)?;
        let from = r.required_string(entry, &at, &["ref"])?;
        for (j, to) in r.array(entry, &at, &["dependsOn"])?.iter().enumerate() {
            let to = to
                .as_str()
                .ok_or_else(|| r.wrong_type(format!("{at}.dependsOn[{j}]"), "a string"))?;
            graph.edge(r.format, from, to)?;
        }
    }
    // Without a root nothing is placed, but the stated edges still count how many components
    // each one needs ([`Component::dependencies`]).
    let Some(root_ref) = root_ref else {
        return Ok(graph);
    };
    // A root without a `dependencies` entry of its own has no edge out, so it is the root and
    // no component is placed below it.
    graph.root(root_ref);
    Ok(graph)
}

/// `"1.5"` or `"1.5.0"` -> `(1, 5)`.
fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The `components` of `parent` (the BOM or a component at `parent_path`), depth first.
fn cyclonedx_components<'a>(
    r: Reader,
    parent: &'a Map<String, Value>,
    parent_path: &str,
    depth: usize,
    sbom: &mut SbomBuilder<'a>,
) -> Result<(), FactsError> {
    let components = r.array(parent, parent_path, &["components"])?;
    if components.is_empty() {
        return Ok(());
    }
    let list = path(parent_path, &["components"]);
    if depth >= MAX_COMPONENT_DEPTH {
        return Err(FactsError::TooDeep {
            format: r.format,
            field: list,
            limit: MAX_COMPONENT_DEPTH,
        });
    }
    for (i, component) in components.iter().enumerate() {
        let at = format!("{list}[{i}]");
        let component = r.element(component, &at)?;
        let name = r.required_string(component, &at, &["name"])?;
        let version = r.string(component, &at, &["version"])?;
        let purl = r.string(component, &at, &["purl"])?;
        let component_type = r.string(component, &at, &["type"])?;
        let bom_ref = r.string(component, &at, &["bom-ref"])?;
        let mut expressions = Vec::new();
        for (j, entry) in r.array(component, &at, &["licenses"])?.iter().enumerate() {
            let entry_path = format!("{at}.licenses[{j}]");
            expressions.push(cyclonedx_license(
                r,
                r.element(entry, &entry_path)?,
                &entry_path,
            )?);
        }
        sbom.add(
            NewComponent {
                name,
                version,
                purl,
                component_type: component_type.map(str::to_owned),
                key: bom_ref,
            },
            &expressions,
        )?;
        cyclonedx_components(r, component, &at, depth + 1, sbom)?;
    }
    Ok(())
}

/// The expression text of one CycloneDX license choice: `expression`, else `license.id`, else
/// `license.name`.
fn cyclonedx_license<'a>(
    r: Reader,
    entry: &'a Map<String, Value>,
    at: &str,
) -> Result<&'a str, FactsError> {
    if let Some(expression) = r.string(entry, at, &["expression"])? {
        return Ok(expression);
    }
    let Some(license) = r.object(entry, at, &["license"])? else {
        return Err(r.missing(format!("{at}.expression or {at}.license")));
    };
    let license_path = format!("{at}.license");
    match r.string(license, &license_path, &["id"])? {
        Some(id) => Ok(id),
        None => r
            .string(license, &license_path, &["name"])?
            .ok_or_else(|| r.missing(format!("{license_path}.id or {license_path}.name"))),
    }
}

fn spdx_document(r: Reader, root: &Map<String, Value>) -> Result<Sbom, FactsError> {
    let version = r.required_string(root, "", &["spdxVersion"])?;
    let spec_version = version
        .strip_prefix("SPDX-")
        .filter(|v| v.starts_with("2."))
        .ok_or_else(|| FactsError::UnsupportedSpdxVersion {
            version: excerpt(version),
        })?;

    let mut sbom = SbomBuilder::new(r);
    for (i, package) in r.array(root, "", &["packages"])?.iter().enumerate() {
        let at = format!("packages[{i}]");
        let package = r.element(package, &at)?;
        let name = r.required_string(package, &at, &["name"])?;
        let version = r.string(package, &at, &["versionInfo"])?;
        let id = r.string(package, &at, &["SPDXID"])?;
        let purpose = r.string(package, &at, &["primaryPackagePurpose"])?;

        let mut purl = None;
        for (j, reference) in r.array(package, &at, &["externalRefs"])?.iter().enumerate() {
            let reference_path = format!("{at}.externalRefs[{j}]");
            let reference = r.element(reference, &reference_path)?;
            if r.string(reference, &reference_path, &["referenceType"])? == Some("purl") {
                purl =
                    Some(r.required_string(reference, &reference_path, &["referenceLocator"])?);
                break;
            }
        }

        let stated = |key: &str| -> Result<Option<&str>, FactsError> {
            Ok(r.string(package, &at, &[key])?
                .filter(|text| !matches!(text.trim(), "NOASSERTION" | "NONE")))
        };
        let license = match stated("licenseConcluded")? {
            Some(concluded) => Some(concluded),
            None => stated("licenseDeclared")?,
        };
        sbom.add(
            NewComponent {
                name,
                version,
                purl,
                component_type: purpose
                    .map(|purpose| purpose.to_ascii_lowercase().replace('_', "-")),
                key: id,
            },
            license.as_slice(),
        )?;
    }
    let graph = spdx_graph(r, root, &sbom)?;
    Ok(sbom.finish("spdx", spec_version, Some(&graph)))
}

/// The graph from what the document describes along its relationships between packages (see
/// [`graph`]).
fn spdx_graph<'a>(
    r: Reader,
    root: &'a Map<String, Value>,
    sbom: &SbomBuilder<'a>,
) -> Result<DependencyGraph<'a>, FactsError> {
    let packages: HashSet<&str> = sbom.keys.iter().flatten().copied().collect();
    let document = r
        .string(root, "", &["SPDXID"])?
        .unwrap_or("SPDXRef-DOCUMENT");
    let mut graph = DependencyGraph::default();
    for (i, described) in r
        .array(root, "", &["documentDescribes"])?
        .iter()
        .enumerate()
    {
        let described = described
            .as_str()
            .ok_or_else(|| r.wrong_type(format!("documentDescribes[{i}]"), "a string"))?;
        if packages.contains(described) {
            graph.root(described);
        }
    }
    for (i, relationship) in r.array(root, "", &["relationships"])?.iter().enumerate() {
        let at = format!("relationships[{i}]");
        let relationship = r.element(relationship, &at)?;
        let element = r.required_string(relationship, &at, &["spdxElementId"])?;
        let kind = r.required_string(relationship, &at, &["relationshipType"])?;
        let related = r.required_string(relationship, &at, &["relatedSpdxElement"])?;
        let described = match kind {
            "DESCRIBES" if element == document => Some(related),
            "DESCRIBED_BY" if related == document => Some(element),
            _ => None,
        };
        if let Some(described) = described.filter(|id| packages.contains(id)) {
            graph.root(described);
            continue;
        }
        if !(packages.contains(element) && packages.contains(related)) {
            continue;
        }
        match SpdxEdge::of(kind) {
            Some(SpdxEdge::Forward) => graph.edge(r.format, element, related)?,
            Some(SpdxEdge::Backward) => graph.edge(r.format, related, element)?,
            None => {}
        }
    }
    Ok(graph)
}

/// A component as read, before its license is normalised and its place in the graph known.
struct NewComponent<'a> {
    name: &'a str,
    version: Option<&'a str>,
    purl: Option<&'a str>,
    component_type: Option<String>,
    /// Its name in the document's graph (CycloneDX `bom-ref`, SPDX `SPDXID`).
    key: Option<&'a str>,
}

/// Collects components and normalises their licenses.
struct SbomBuilder<'a> {
    reader: Reader,
    components: Vec<Component>,
    /// The components' names in the document's graph, by index.
    keys: Vec<Option<&'a str>>,
    licenses: BTreeSet<String>,
    invalid_licenses: Vec<InvalidLicense>,
    normaliser: LicenseNormaliser,
}

impl<'a> SbomBuilder<'a> {
    fn new(reader: Reader) -> Self {
        Self {
            reader,
            components: Vec::new(),
            keys: Vec::new(),
            licenses: BTreeSet::new(),
            invalid_licenses: Vec::new(),
            normaliser: LicenseNormaliser::default(),
        }
    }

    /// Adds a component whose license is all of `expressions` (ANDed; none means unknown).
    fn add(&mut self, component: NewComponent<'a>, expressions: &[&str]) -> Result<(), FactsError> {
        let NewComponent {
            name,
            version,
            purl,
            component_type,
            key,
        } = component;
        if self.components.len() >= MAX_ITEMS {
            return Err(FactsError::TooMany {
                format: self.reader.format,
                what: "components",
                limit: MAX_ITEMS,
            });
        }
        let mut parts: Vec<String> = Vec::with_capacity(expressions.len());
        let mut distinct = HashSet::new();
        let mut all_valid = true;
        for expression in expressions {
            match self.normaliser.normalise(expression) {
                Ok(normalised) => {
                    if distinct.insert(normalised.clone()) {
                        parts.push(normalised);
                    }
                }
                Err(error) => {
                    all_valid = false;
                    self.invalid_licenses.push(InvalidLicense {
                        component: component_label(name, version, purl),
                        expression: (*expression).to_owned(),
                        error,
                    });
                }
            }
        }
        let license = (all_valid && !parts.is_empty()).then(|| conjoin(&parts));
        if let Some(license) = &license {
            self.licenses.insert(license.clone());
        }
        self.components.push(Component {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            purl: purl.map(str::to_owned),
            license,
            component_type,
            relationship: None,
            dependencies: 0,
        });
        self.keys.push(key);
        Ok(())
    }

    /// The SBOM, each component placed in `graph` if there is one.
    fn finish(
        mut self,
        format: &str,
        spec_version: &str,
        graph: Option<&DependencyGraph<'_>>,
    ) -> Sbom {
        let mut dependency_graph = false;
        if let Some(graph) = graph {
            let places = graph.places();
            let keys: HashSet<&str> = self.keys.iter().flatten().copied().collect();
            let counts = graph.dependency_counts(&keys);
            for (component, key) in self.components.iter_mut().zip(&self.keys) {
                let place = key.and_then(|key| places.get(key));
                dependency_graph |= place.is_some_and(|place| *place != graph::Place::Root);
                component.relationship = place.map(|place| place.as_str().to_owned());
                component.dependencies = key
                    .and_then(|key| counts.get(key))
                    .copied()
                    .unwrap_or_default();
            }
        }
        Sbom {
            format: format.to_owned(),
            spec_version: spec_version.to_owned(),
            components: self.components,
            licenses: self.licenses.into_iter().collect(),
            invalid_licenses: self.invalid_licenses,
            dependency_graph,
        }
    }
}

/// Several normalised expressions joined with `AND`, parenthesising those whose top level is an
/// `OR` (which binds looser than `AND`).
fn conjoin(parts: &[String]) -> String {
    if let [single] = parts {
        return single.clone();
    }
    parts
        .iter()
        .map(|part| {
            if has_top_level_or(part) {
                format!("({part})")
            } else {
                part.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Whether a normalised expression has ` OR ` outside any parentheses.
fn has_top_level_or(expression: &str) -> bool {
    let mut depth = 0usize;
    for (at, c) in expression.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 && expression[at..].starts_with(" OR ") => return true,
            _ => {}
        }
    }
    false
}

/// Normalises license expressions, remembering results: SBOMs repeat the same few licenses
/// thousands of times.
#[derive(Debug, Default)]
struct LicenseNormaliser {
    known: HashMap<String, Result<String, String>>,
}

impl LicenseNormaliser {
    fn normalise(&mut self, expression: &str) -> Result<String, String> {
        if let Some(outcome) = self.known.get(expression) {
            return outcome.clone();
        }
        let outcome = normalise_license(expression);
        self.known.insert(expression.to_owned(), outcome.clone());
        outcome
    }
}

/// How expressions are tokenised: unknown terms come back as such (they are then matched
/// case-insensitively), imprecise names are not guessed.
const LEX_MODE: ParseMode = ParseMode {
    allow_slash_as_or_operator: true,
    allow_imprecise_license_names: false,
    allow_postfix_plus_on_gpl: true,
    allow_deprecated: true,
    allow_unknown: true,
};

/// How the canonical text is checked: the SPDX grammar, deprecated ids allowed.
const CHECK_MODE: ParseMode = ParseMode {
    allow_deprecated: true,
    ..ParseMode::STRICT
};

/// The canonical SPDX text of `expression`, or why it is not a valid expression (see the module
/// documentation for the accepted dialect).
fn normalise_license(expression: &str) -> Result<String, String> {
    let canonical = canonical_license_text(expression).map_err(|e| describe_parse_error(&e))?;
    spdx::Expression::parse_mode(&canonical, CHECK_MODE).map_err(|e| describe_parse_error(&e))?;
    Ok(canonical)
}

/// Rewrites the tokens of `expression` canonically; the structure is checked afterwards.
fn canonical_license_text(expression: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(expression.len() + 16);
    // A license id is written once we know whether a `+` follows it.
    let mut pending: Option<LicenseId> = None;
    for token in Lexer::new_mode(expression, LEX_MODE) {
        let token = token?;
        if matches!(token.token, Token::Plus) {
            match pending.take() {
                Some(id) => push_or_later(&mut out, id),
                // Not after a license id: left for the structural check to reject.
                None => out.push('+'),
            }
            continue;
        }
        if let Some(id) = pending.take() {
            push_license(&mut out, id);
        }
        match token.token {
            Token::Spdx(id) => pending = Some(id),
            Token::Unknown(term) => match resolve_case_insensitive(term) {
                Some(Term::License(id)) => pending = Some(id),
                Some(Term::Exception(id)) => out.push_str(id.name),
                None => {
                    return Err(ParseError {
                        original: expression.to_owned(),
                        span: token.span,
                        reason: Reason::UnknownTerm,
                    });
                }
            },
            Token::Exception(id) => out.push_str(id.name),
            Token::LicenseRef { doc_ref, lic_ref } => {
                if let Some(doc_ref) = doc_ref {
                    out.push_str("DocumentRef-");
                    out.push_str(doc_ref);
                    out.push(':');
                }
                out.push_str("LicenseRef-");
                out.push_str(lic_ref);
            }
            Token::AdditionRef { doc_ref, add_ref } => {
                if let Some(doc_ref) = doc_ref {
                    out.push_str("DocumentRef-");
                    out.push_str(doc_ref);
                    out.push(':');
                }
                out.push_str("AdditionRef-");
                out.push_str(add_ref);
            }
            Token::And => push_operator(&mut out, "AND"),
            Token::Or => push_operator(&mut out, "OR"),
            Token::With => push_operator(&mut out, "WITH"),
            Token::OpenParen => out.push('('),
            Token::CloseParen => out.push(')'),
            Token::Plus => out.push('+'),
        }
    }
    if let Some(id) = pending {
        push_license(&mut out, id);
    }
    Ok(out.trim().to_owned())
}

/// ` AND `, with exactly one space either side even where operators (wrongly) follow each other.
fn push_operator(out: &mut String, operator: &str) {
    if out.ends_with(' ') {
        out.pop();
    }
    out.push(' ');
    out.push_str(operator);
    out.push(' ');
}

/// A term recognised by case-insensitive matching.
#[derive(Debug, Clone, Copy)]
enum Term {
    License(LicenseId),
    Exception(ExceptionId),
}

/// The license or exception whose id equals `term` ignoring ASCII case.
fn resolve_case_insensitive(term: &str) -> Option<Term> {
    // Built once: a scan of the ~700 ids per term would make long expressions quadratic.
    static BY_LOWERCASE_ID: OnceLock<HashMap<String, Term>> = OnceLock::new();
    let by_lowercase_id = BY_LOWERCASE_ID.get_or_init(|| {
        let licenses = spdx::identifiers::LICENSES.iter().filter_map(|license| {
            spdx::license_id(license.name)
                .map(|id| (license.name.to_ascii_lowercase(), Term::License(id)))
        });
        let exceptions = spdx::identifiers::EXCEPTIONS
            .iter()
            .filter_map(|exception| {
                spdx::exception_id(exception.name)
                    .map(|id| (exception.name.to_ascii_lowercase(), Term::Exception(id)))
            });
        let mut table = HashMap::new();
        // Licenses win over exceptions; the first of ids differing only in case wins.
        for (name, term) in licenses.chain(exceptions) {
            table.entry(name).or_insert(term);
        }
        table
    });
    by_lowercase_id.get(&term.to_ascii_lowercase()).copied()
}

/// A license id without `+`; a bare GNU id (`GPL-2.0`) means `-only`.
fn push_license(out: &mut String, id: LicenseId) {
    let name = if id.is_gnu() && !id.name.ends_with("-only") && !id.name.ends_with("-or-later") {
        spdx::gnu_license_id(id.name, false).map_or(id.name, |only| only.name)
    } else {
        id.name
    };
    out.push_str(name);
}

/// A license id followed by `+`; GNU ids use their `-or-later` form instead.
fn push_or_later(out: &mut String, id: LicenseId) {
    if id.is_gnu() && !id.name.ends_with("-or-later") {
        let base = id.name.strip_suffix("-only").unwrap_or(id.name);
        if let Some(or_later) = spdx::gnu_license_id(base, true) {
            out.push_str(or_later.name);
            return;
        }
    }
    // `GPL-2.0-or-later+` and the like are left for the structural check to reject.
    out.push_str(id.name);
    out.push('+');
}

/// One line: the parser's reason, where, and in which text.
fn describe_parse_error(error: &ParseError) -> String {
    let text = excerpt(&error.original);
    match error.original.get(error.span.clone()) {
        Some(term) if !term.is_empty() => {
            format!("{} at {:?} in {:?}", error.reason, excerpt(term), text)
        }
        _ => format!("{} in {:?}", error.reason, text),
    }
}

// ---------------------------------------------------------------------------------------------
// Vulnerability reports.

/// A severity, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Unknown,
}

impl Severity {
    const ALL: [Self; 5] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Unknown,
    ];

    /// Case-insensitive; `negligible` is low, `moderate` medium, `important` high; anything
    /// else unknown.
    fn from_name(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "critical" => Self::Critical,
            "high" | "important" => Self::High,
            "medium" | "moderate" => Self::Medium,
            "low" | "negligible" => Self::Low,
            _ => Self::Unknown,
        }
    }

    /// From a CVSS base score.
    fn from_score(score: f64) -> Self {
        if score >= 9.0 {
            Self::Critical
        } else if score >= 7.0 {
            Self::High
        } else if score >= 4.0 {
            Self::Medium
        } else if score > 0.0 {
            Self::Low
        } else {
            Self::Unknown
        }
    }

    /// From a SARIF `level`.
    fn from_sarif_level(level: &str) -> Self {
        match level {
            "error" => Self::High,
            "warning" => Self::Medium,
            "note" => Self::Low,
            _ => Self::Unknown,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Unknown => "unknown",
        }
    }
}

/// Collects findings up to [`MAX_ITEMS`], then sorts, dedupes and counts them.
#[derive(Debug, Default)]
struct FindingsBuilder {
    findings: Vec<(Severity, Finding)>,
}

impl FindingsBuilder {
    fn add(
        &mut self,
        r: Reader,
        id: &str,
        package: &str,
        version: Option<&str>,
        severity: Severity,
        fixed_version: Option<String>,
    ) -> Result<(), FactsError> {
        if self.findings.len() >= MAX_ITEMS {
            return Err(FactsError::TooMany {
                format: r.format,
                what: "findings",
                limit: MAX_ITEMS,
            });
        }
        self.findings.push((
            severity,
            Finding {
                id: id.to_owned(),
                package: package.to_owned(),
                version: version.filter(|v| !v.is_empty()).map(str::to_owned),
                severity: severity.as_str().to_owned(),
                fixed_version: fixed_version.filter(|v| !v.trim().is_empty()),
            },
        ));
        Ok(())
    }

    fn finish(mut self, scanner: String) -> Vulnerabilities {
        self.findings.sort_by(|(a_severity, a), (b_severity, b)| {
            a_severity
                .cmp(b_severity)
                .then_with(|| a.id.cmp(&b.id))
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.version.cmp(&b.version))
                .then_with(|| a.fixed_version.cmp(&b.fixed_version))
        });
        let mut seen = BTreeSet::new();
        self.findings.retain(|(_, finding)| {
            seen.insert((
                finding.id.clone(),
                finding.package.clone(),
                finding.version.clone(),
            ))
        });
        let mut counts: BTreeMap<String, u64> = Severity::ALL
            .iter()
            .map(|severity| (severity.as_str().to_owned(), 0))
            .collect();
        for (severity, _) in &self.findings {
            *counts.entry(severity.as_str().to_owned()).or_default() += 1;
        }
        Vulnerabilities {
            scanner,
            counts,
            findings: self
                .findings
                .into_iter()
                .map(|(_, finding)| finding)
                .collect(),
        }
    }
}

fn cosign_vuln(r: Reader, root: &Map<String, Value>) -> Result<Vulnerabilities, FactsError> {
    let scanner = r
        .object(root, "", &["scanner"])?
        .ok_or_else(|| r.missing("scanner".to_owned()))?;
    let uri_name = r
        .string(scanner, "scanner", &["uri"])?
        .and_then(scanner_name_from_uri);
    let report = r
        .object(scanner, "scanner", &["result"])?
        .ok_or_else(|| r.missing("scanner.result".to_owned()))?;
    let at = "scanner.result";

    let mut findings = FindingsBuilder::default();
    let (report_name, default_name) = if report.contains_key("matches") {
        (grype(r, report, at, &mut findings)?, "grype")
    } else if report.contains_key("runs") {
        (sarif(r, report, at, &mut findings)?, "sarif")
    } else if report.contains_key("Results") || report.contains_key("SchemaVersion") {
        trivy(r, report, at, &mut findings)?;
        (None, "trivy")
    } else {
        return Err(FactsError::UnrecognisedVulnerabilityReport);
    };
    let scanner = report_name
        .or(uri_name)
        .unwrap_or_else(|| default_name.to_owned());
    Ok(findings.finish(scanner))
}

/// `pkg:github/aquasecurity/trivy@v0.45.0` or `https://github.com/anchore/grype` -> the tool.
fn scanner_name_from_uri(uri: &str) -> Option<String> {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let last = uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri);
    let name = last.split('@').next().unwrap_or(last).trim();
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Trivy's JSON report: `Results[].Vulnerabilities[]`.
fn trivy(
    r: Reader,
    report: &Map<String, Value>,
    at: &str,
    findings: &mut FindingsBuilder,
) -> Result<(), FactsError> {
    let results = path(at, &["Results"]);
    for (i, result) in r.array(report, at, &["Results"])?.iter().enumerate() {
        let result_path = format!("{results}[{i}]");
        let result = r.element(result, &result_path)?;
        for (j, vulnerability) in r
            .array(result, &result_path, &["Vulnerabilities"])?
            .iter()
            .enumerate()
        {
            let v_path = format!("{result_path}.Vulnerabilities[{j}]");
            let vulnerability = r.element(vulnerability, &v_path)?;
            let id = r.required_string(vulnerability, &v_path, &["VulnerabilityID"])?;
            let package = r.required_string(vulnerability, &v_path, &["PkgName"])?;
            let version = r.string(vulnerability, &v_path, &["InstalledVersion"])?;
            let severity = r
                .string(vulnerability, &v_path, &["Severity"])?
                .map_or(Severity::Unknown, Severity::from_name);
            let fixed = r.string(vulnerability, &v_path, &["FixedVersion"])?;
            findings.add(r, id, package, version, severity, fixed.map(str::to_owned))?;
        }
    }
    Ok(())
}

/// Grype's JSON report: `matches[]`. Returns the tool's name from `descriptor.name`.
fn grype(
    r: Reader,
    report: &Map<String, Value>,
    at: &str,
    findings: &mut FindingsBuilder,
) -> Result<Option<String>, FactsError> {
    let matches = path(at, &["matches"]);
    for (i, found) in r.array(report, at, &["matches"])?.iter().enumerate() {
        let m_path = format!("{matches}[{i}]");
        let found = r.element(found, &m_path)?;
        let id = r.required_string(found, &m_path, &["vulnerability", "id"])?;
        let severity = r
            .string(found, &m_path, &["vulnerability", "severity"])?
            .map_or(Severity::Unknown, Severity::from_name);
        let package = r.required_string(found, &m_path, &["artifact", "name"])?;
        let version = r.string(found, &m_path, &["artifact", "version"])?;
        let versions_path = format!("{m_path}.vulnerability.fix.versions");
        let mut fixed = Vec::new();
        for (j, version) in r
            .array(found, &m_path, &["vulnerability", "fix", "versions"])?
            .iter()
            .enumerate()
        {
            let version = version
                .as_str()
                .ok_or_else(|| r.wrong_type(format!("{versions_path}[{j}]"), "a string"))?;
            fixed.push(version);
        }
        let fixed = (!fixed.is_empty()).then(|| fixed.join(", "));
        findings.add(r, id, package, version, severity, fixed)?;
    }
    Ok(r.string(report, at, &["descriptor", "name"])?
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_ascii_lowercase))
}

/// A SARIF 2.1.0 log: every `runs[].results[]` is a finding. Returns the first run's tool name.
fn sarif(
    r: Reader,
    log: &Map<String, Value>,
    at: &str,
    findings: &mut FindingsBuilder,
) -> Result<Option<String>, FactsError> {
    let version = r.required_string(log, at, &["version"])?;
    if version != "2.1.0" {
        return Err(r.unexpected(path(at, &["version"]), version, "\"2.1.0\""));
    }
    let runs_path = path(at, &["runs"]);
    let runs = match r.lookup(log, at, &["runs"])? {
        Some(Value::Array(runs)) => runs,
        Some(_) => return Err(r.wrong_type(runs_path, "an array")),
        None => return Err(r.missing(runs_path)),
    };

    let mut tool_name = None;
    for (i, run) in runs.iter().enumerate() {
        let run_path = format!("{runs_path}[{i}]");
        let run = r.element(run, &run_path)?;
        if tool_name.is_none() {
            tool_name = r
                .string(run, &run_path, &["tool", "driver", "name"])?
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_ascii_lowercase);
        }
        let rules_path = format!("{run_path}.tool.driver.rules");
        let mut rules = SarifRules::default();
        for (k, rule) in r
            .array(run, &run_path, &["tool", "driver", "rules"])?
            .iter()
            .enumerate()
        {
            rules.add(r.element(rule, &format!("{rules_path}[{k}]"))?);
        }

        for (j, result) in r.array(run, &run_path, &["results"])?.iter().enumerate() {
            let result_path = format!("{run_path}.results[{j}]");
            let result = r.element(result, &result_path)?;
            sarif_result(r, result, &result_path, &rules, findings)?;
        }
    }
    Ok(tool_name)
}

/// A run's rules, found by `ruleIndex` or by id (the first rule with an id wins).
#[derive(Debug, Default)]
struct SarifRules<'a> {
    by_index: Vec<&'a Map<String, Value>>,
    by_id: HashMap<&'a str, &'a Map<String, Value>>,
}

impl<'a> SarifRules<'a> {
    fn add(&mut self, rule: &'a Map<String, Value>) {
        self.by_index.push(rule);
        if let Some(id) = rule.get("id").and_then(Value::as_str) {
            self.by_id.entry(id).or_insert(rule);
        }
    }

    fn find(&self, index: Option<u64>, id: Option<&str>) -> Option<&'a Map<String, Value>> {
        index
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.by_index.get(index).copied())
            .or_else(|| id.and_then(|id| self.by_id.get(id).copied()))
    }
}

fn sarif_result(
    r: Reader,
    result: &Map<String, Value>,
    at: &str,
    rules: &SarifRules<'_>,
    findings: &mut FindingsBuilder,
) -> Result<(), FactsError> {
    let rule_id = r.string(result, at, &["ruleId"])?;
    let rule_index = match r.lookup(result, at, &["ruleIndex"])? {
        None => None,
        Some(index) => Some(
            index
                .as_u64()
                .ok_or_else(|| r.wrong_type(path(at, &["ruleIndex"]), "a non-negative integer"))?,
        ),
    };
    let rule = rules.find(rule_index, rule_id);
    let id = match rule_id.filter(|id| !id.is_empty()) {
        Some(id) => id,
        None => rule
            .and_then(|rule| rule.get("id").and_then(Value::as_str))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| r.missing(path(at, &["ruleId"])))?,
    };

    let properties = r.object(result, at, &["properties"])?;
    let level = match r.string(result, at, &["level"])? {
        Some(level) => Some(level),
        None => rule.and_then(|rule| {
            rule.get("defaultConfiguration")
                .and_then(|configuration| configuration.get("level"))
                .and_then(Value::as_str)
        }),
    };
    let severity = rule
        .and_then(|rule| rule.get("properties"))
        .and_then(|properties| properties.get("security-severity"))
        .and_then(cvss_score)
        .or_else(|| {
            properties
                .and_then(|properties| properties.get("security-severity"))
                .and_then(cvss_score)
        })
        .map(Severity::from_score)
        .unwrap_or_else(|| level.map_or(Severity::Unknown, Severity::from_sarif_level));

    let message = r.string(result, at, &["message", "text"])?.unwrap_or("");
    let location = first_location_uri(r, result, at)?;
    let property = |keys: &[&str]| -> Option<&str> {
        let properties = properties?;
        keys.iter()
            .find_map(|key| properties.get(*key).and_then(Value::as_str))
    };
    let package = message_field(message, "Package")
        .or_else(|| property(&["package", "packageName", "pkgName", "PkgName"]))
        .map(str::to_owned)
        .or(location)
        .unwrap_or_default();
    let version = message_field(message, "Installed Version")
        .or_else(|| property(&["installedVersion", "version", "InstalledVersion"]));
    let fixed = message_field(message, "Fixed Version")
        .or_else(|| property(&["fixedVersion", "FixedVersion"]))
        .map(str::to_owned);
    findings.add(r, id, &package, version, severity, fixed)
}

/// A CVSS score from a SARIF `security-severity` (a string, or leniently a number) in 0..=10.
fn cvss_score(value: &Value) -> Option<f64> {
    let score = match value {
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        Value::Number(number) => number.as_f64()?,
        _ => return None,
    };
    (score.is_finite() && (0.0..=10.0).contains(&score)).then_some(score)
}

/// `Name: value` from a Trivy SARIF message (`Package: openssl\nInstalled Version: ...`).
fn message_field<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        line.trim()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    })
}

fn first_location_uri(
    r: Reader,
    result: &Map<String, Value>,
    at: &str,
) -> Result<Option<String>, FactsError> {
    let Some(first) = r.array(result, at, &["locations"])?.first() else {
        return Ok(None);
    };
    let location_path = format!("{at}.locations[0]");
    let location = r.element(first, &location_path)?;
    Ok(r.string(
        location,
        &location_path,
        &["physicalLocation", "artifactLocation", "uri"],
    )?
    .map(str::to_owned))
}

// ---------------------------------------------------------------------------------------------
// Test results.

fn test_result(r: Reader, root: &Map<String, Value>) -> Result<TestResult, FactsError> {
    let stated = r.required_string(root, "", &["result"])?;
    let result = match stated {
        "PASSED" => "passed",
        "WARNED" => "warned",
        "FAILED" => "failed",
        other => {
            return Err(r.unexpected("result".to_owned(), other, "PASSED, WARNED or FAILED"));
        }
    };
    let count = |key: &str| -> Result<u64, FactsError> {
        let tests = r.array(root, "", &[key])?;
        if let Some(i) = tests.iter().position(|test| !test.is_string()) {
            return Err(r.wrong_type(format!("{key}[{i}]"), "a string"));
        }
        Ok(tests.len() as u64)
    };
    Ok(TestResult {
        result: result.to_owned(),
        passed: count("passedTests")?,
        warned: count("warnedTests")?,
        failed: count("failedTests")?,
        url: r.string(root, "", &["url"])?.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provenance(predicate_type: &str, predicate: &Value) -> Provenance {
        match derive_facts(predicate_type, predicate) {
            Ok(Facts::Provenance(provenance)) => provenance,
            other => panic!("expected provenance, got {other:?}"),
        }
    }

    fn sbom(predicate_type: &str, predicate: &Value) -> Sbom {
        match derive_facts(predicate_type, predicate) {
            Ok(Facts::Sbom(sbom)) => sbom,
            other => panic!("expected an SBOM, got {other:?}"),
        }
    }

    fn vulnerabilities(predicate_type: &str, predicate: &Value) -> Vulnerabilities {
        match derive_facts(predicate_type, predicate) {
            Ok(Facts::Vulnerabilities(vulnerabilities)) => vulnerabilities,
            other => panic!("expected vulnerabilities, got {other:?}"),
        }
    }

    fn refusal(predicate_type: &str, predicate: &Value) -> String {
        match derive_facts(predicate_type, predicate) {
            Err(error) => error.to_string(),
            Ok(facts) => panic!("expected an error, got {facts:?}"),
        }
    }

    fn remove(value: &mut Value, key: &str) {
        if let Some(object) = value.as_object_mut() {
            object.remove(key);
        }
    }

    fn counts(
        critical: u64,
        high: u64,
        medium: u64,
        low: u64,
        unknown: u64,
    ) -> BTreeMap<String, u64> {
        [
            ("critical", critical),
            ("high", high),
            ("medium", medium),
            ("low", low),
            ("unknown", unknown),
        ]
        .into_iter()
        .map(|(name, count)| (name.to_owned(), count))
        .collect()
    }

    fn finding(
        id: &str,
        package: &str,
        version: Option<&str>,
        severity: &str,
        fixed: Option<&str>,
    ) -> Finding {
        Finding {
            id: id.to_owned(),
            package: package.to_owned(),
            version: version.map(str::to_owned),
            severity: severity.to_owned(),
            fixed_version: fixed.map(str::to_owned),
        }
    }

    // --- SLSA provenance -------------------------------------------------------------------

    fn github_actions_v1() -> Value {
        json!({
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": "refs/heads/main",
                        "repository": "https://github.com/octo-org/octo-repo",
                        "path": ".github/workflows/release.yml"
                    }
                },
                "internalParameters": {
                    "github": {"event_name": "push", "repository_id": "123", "repository_owner_id": "456"}
                },
                "resolvedDependencies": [
                    {"uri": "pkg:docker/ubuntu@22.04", "digest": {"sha256": "ab".repeat(32)}},
                    {
                        "uri": "git+https://github.com/octo-org/octo-repo@refs/heads/main",
                        "digest": {"gitCommit": "c27d339ee6075c1f744c5d4b200f7901aad2c369"}
                    }
                ]
            },
            "runDetails": {
                "builder": {"id": "https://github.com/actions/runner/github-hosted"},
                "metadata": {"invocationId": "https://github.com/octo-org/octo-repo/actions/runs/1/attempts/1"}
            }
        })
    }

    #[test]
    fn slsa_v1_github_actions_provenance_names_builder_source_and_commit() {
        let facts = provenance(SLSA_PROVENANCE_V1, &github_actions_v1());
        assert_eq!(
            facts,
            Provenance {
                slsa_version: "v1".to_owned(),
                builder_id: "https://github.com/actions/runner/github-hosted".to_owned(),
                build_type: "https://actions.github.io/buildtypes/workflow/v1".to_owned(),
                source_repository: Some("https://github.com/octo-org/octo-repo".to_owned()),
                commit: Some("c27d339ee6075c1f744c5d4b200f7901aad2c369".to_owned()),
                source_ref: Some("refs/heads/main".to_owned()),
                inputs: 2,
                unpinned_inputs: Some(Vec::new()),
            }
        );
    }

    #[test]
    fn slsa_v1_without_git_dependency_takes_repository_from_the_workflow() {
        let mut predicate = github_actions_v1();
        predicate["buildDefinition"]["resolvedDependencies"] = json!([]);
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(
            facts.source_repository.as_deref(),
            Some("https://github.com/octo-org/octo-repo")
        );
        assert_eq!(facts.commit, None);
    }

    #[test]
    fn slsa_v1_dependency_with_sha1_and_no_uri_falls_back_to_the_workflow_repository() {
        let mut predicate = github_actions_v1();
        predicate["buildDefinition"]["resolvedDependencies"] =
            json!([{"digest": {"sha1": "0123abcd"}}]);
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(
            facts.source_repository.as_deref(),
            Some("https://github.com/octo-org/octo-repo")
        );
        assert_eq!(facts.commit.as_deref(), Some("0123abcd"));
    }

    #[test]
    fn slsa_v1_source_parameter_object_gives_repository_and_commit() {
        let predicate = json!({
            "buildDefinition": {
                "buildType": "https://example.com/build/v1",
                "externalParameters": {
                    "source": {"uri": "git+https://git.example.com/app@refs/tags/v1", "digest": {"sha1": "feed"}}
                }
            },
            "runDetails": {"builder": {"id": "https://example.com/builder"}}
        });
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(
            facts.source_repository.as_deref(),
            Some("https://git.example.com/app")
        );
        assert_eq!(facts.commit.as_deref(), Some("feed"));

        let predicate = json!({
            "buildDefinition": {
                "buildType": "https://example.com/build/v1",
                "externalParameters": {"source": "git+https://git.example.com/app"}
            },
            "runDetails": {"builder": {"id": "https://example.com/builder"}}
        });
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(
            facts.source_repository.as_deref(),
            Some("https://git.example.com/app")
        );
        assert_eq!(facts.commit, None);
    }

    #[test]
    fn slsa_v1_external_parameters_of_another_shape_say_nothing_about_the_source() {
        let predicate = json!({
            "buildDefinition": {
                "buildType": "https://cloudbuild.googleapis.com/CloudBuildYaml@v0.1",
                "externalParameters": {"workflow": "cloudbuild.yaml", "source": ["a", "b"]}
            },
            "runDetails": {"builder": {"id": "https://cloudbuild.googleapis.com/GoogleHostedWorker"}}
        });
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(facts.source_repository, None);
        assert_eq!(facts.commit, None);
    }

    #[test]
    fn slsa_v1_without_builder_id_is_refused() {
        let mut predicate = github_actions_v1();
        predicate["runDetails"]["builder"] = json!({});
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance has no runDetails.builder.id"
        );
        let mut predicate = github_actions_v1();
        predicate["runDetails"]["builder"]["id"] = json!("  ");
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance has no runDetails.builder.id"
        );
    }

    #[test]
    fn slsa_v1_without_build_type_is_refused() {
        let mut predicate = github_actions_v1();
        remove(&mut predicate["buildDefinition"], "buildType");
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance has no buildDefinition.buildType"
        );
    }

    #[test]
    fn slsa_v1_fields_of_the_wrong_type_are_refused_by_path() {
        let mut predicate = github_actions_v1();
        predicate["runDetails"]["builder"]["id"] = json!(42);
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance field runDetails.builder.id is not a string"
        );
        let mut predicate = github_actions_v1();
        predicate["runDetails"] = json!("github");
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance field runDetails is not an object"
        );
        let mut predicate = github_actions_v1();
        predicate["buildDefinition"]["resolvedDependencies"][1]["digest"]["gitCommit"] =
            json!(["c27d"]);
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance field buildDefinition.resolvedDependencies[1].digest.gitCommit is not a string"
        );
        let mut predicate = github_actions_v1();
        predicate["buildDefinition"]["resolvedDependencies"] = json!({"uri": "x"});
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &predicate),
            "SLSA v1 provenance field buildDefinition.resolvedDependencies is not an array"
        );
    }

    fn slsa_v02_predicate() -> Value {
        json!({
            "builder": {"id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0"},
            "buildType": "https://github.com/slsa-framework/slsa-github-generator/container@v1",
            "invocation": {
                "configSource": {
                    "uri": "git+https://github.com/octo-org/octo-repo@refs/heads/main",
                    "digest": {"sha1": "4f2bd5e1b1b6e2a5a0c0e2d8e2b6c7a8d9e0f1a2"},
                    "entryPoint": ".github/workflows/release.yml"
                },
                "parameters": {},
                "environment": {"github_run_id": "1"}
            },
            "metadata": {"buildInvocationID": "1-1", "completeness": {"parameters": true}},
            "materials": [
                {"uri": "git+https://github.com/octo-org/octo-repo@refs/heads/main", "digest": {"sha1": "4f2bd5e1b1b6e2a5a0c0e2d8e2b6c7a8d9e0f1a2"}}
            ]
        })
    }

    #[test]
    fn slsa_v02_provenance_reads_the_config_source() {
        let facts = provenance(SLSA_PROVENANCE_V02, &slsa_v02_predicate());
        assert_eq!(
            facts,
            Provenance {
                slsa_version: "v0.2".to_owned(),
                builder_id: "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0".to_owned(),
                build_type: "https://github.com/slsa-framework/slsa-github-generator/container@v1".to_owned(),
                source_repository: Some("https://github.com/octo-org/octo-repo".to_owned()),
                commit: Some("4f2bd5e1b1b6e2a5a0c0e2d8e2b6c7a8d9e0f1a2".to_owned()),
                source_ref: Some("refs/heads/main".to_owned()),
                inputs: 1,
                unpinned_inputs: Some(Vec::new()),
            }
        );
    }

    #[test]
    fn slsa_v02_without_config_digest_falls_back_to_materials() {
        let mut predicate = slsa_v02_predicate();
        predicate["invocation"]["configSource"] =
            json!({"uri": "git+https://github.com/octo-org/config@refs/heads/main"});
        predicate["materials"] = json!([
            {"uri": "pkg:docker/golang@1.22", "digest": {"sha256": "00"}},
            {"uri": "git+https://github.com/octo-org/octo-repo@refs/tags/v2", "digest": {"gitCommit": "abc123"}}
        ]);
        let facts = provenance(SLSA_PROVENANCE_V02, &predicate);
        assert_eq!(
            facts.source_repository.as_deref(),
            Some("https://github.com/octo-org/octo-repo")
        );
        assert_eq!(facts.commit.as_deref(), Some("abc123"));

        predicate["materials"] = json!([]);
        let facts = provenance(SLSA_PROVENANCE_V02, &predicate);
        assert_eq!(
            facts.source_repository.as_deref(),
            Some("https://github.com/octo-org/config")
        );
        assert_eq!(facts.commit, None);
    }

    #[test]
    fn slsa_v02_without_builder_or_build_type_is_refused() {
        let mut predicate = slsa_v02_predicate();
        remove(&mut predicate, "builder");
        assert_eq!(
            refusal(SLSA_PROVENANCE_V02, &predicate),
            "SLSA v0.2 provenance has no builder.id"
        );
        let mut predicate = slsa_v02_predicate();
        predicate["buildType"] = Value::Null;
        assert_eq!(
            refusal(SLSA_PROVENANCE_V02, &predicate),
            "SLSA v0.2 provenance has no buildType"
        );
        let mut predicate = slsa_v02_predicate();
        predicate["materials"] = json!(["git+https://github.com/octo-org/octo-repo"]);
        predicate["invocation"]["configSource"] = json!({});
        assert_eq!(
            refusal(SLSA_PROVENANCE_V02, &predicate),
            "SLSA v0.2 provenance field materials[0] is not an object"
        );
    }

    #[test]
    fn slsa_v1_names_every_input_without_a_digest() {
        let mut predicate = github_actions_v1();
        predicate["buildDefinition"]["resolvedDependencies"] = json!([
            {"uri": "git+https://github.com/octo-org/octo-repo@refs/tags/v1.2.0", "digest": {"gitCommit": "c27d339e"}},
            {"uri": "pkg:docker/ubuntu@22.04"},
            {"uri": "https://example.com/tool.tar.gz", "digest": {}},
            {"name": "base-image", "digest": {"sha256": " ", "sha512": null}},
            {"annotations": {"note": "neither uri nor name"}},
            {"uri": "pkg:npm/left-pad@1.3.0", "digest": {"sha1": "", "sha512": "5ed0"}}
        ]);
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(facts.inputs, 6);
        assert_eq!(
            facts.unpinned_inputs.unwrap_or_default(),
            vec![
                "pkg:docker/ubuntu@22.04",
                "https://example.com/tool.tar.gz",
                "base-image",
                "resolvedDependencies[4]"
            ]
        );
        // The ref comes from the source's uri before the workflow's.
        assert_eq!(facts.source_ref.as_deref(), Some("refs/tags/v1.2.0"));
    }

    #[test]
    fn slsa_v1_source_ref_falls_back_to_the_workflow_ref() {
        let mut predicate = github_actions_v1();
        predicate["buildDefinition"]["resolvedDependencies"][1]["uri"] =
            json!("git+https://github.com/octo-org/octo-repo");
        predicate["buildDefinition"]["externalParameters"]["workflow"]["ref"] =
            json!("refs/tags/v3.0.0");
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!(facts.source_ref.as_deref(), Some("refs/tags/v3.0.0"));
        assert_eq!(facts.unpinned_inputs, Some(Vec::<String>::new()));

        predicate["buildDefinition"]["externalParameters"] = json!({"workflow": {"ref": 7}});
        predicate["buildDefinition"]["resolvedDependencies"] = json!([]);
        let facts = provenance(SLSA_PROVENANCE_V1, &predicate);
        assert_eq!((facts.source_ref, facts.inputs), (None, 0));
    }

    #[test]
    fn slsa_v1_malformed_inputs_are_refused_by_path() {
        let cases = [
            (
                json!([{"uri": "pkg:docker/ubuntu@22.04", "digest": "sha256:ab"}]),
                "SLSA v1 provenance field buildDefinition.resolvedDependencies[0].digest is not an object",
            ),
            (
                json!([{"uri": "a", "digest": {"sha256": "ab"}}, {"uri": "b", "digest": {"sha256": 12}}]),
                "SLSA v1 provenance field buildDefinition.resolvedDependencies[1].digest.sha256 is not a string",
            ),
            (
                json!([{"uri": "a", "digest": {"sha256": "ab"}}, {"uri": ["b"]}]),
                "SLSA v1 provenance field buildDefinition.resolvedDependencies[1].uri is not a string",
            ),
            (
                json!([{"name": {"full": "b"}}]),
                "SLSA v1 provenance field buildDefinition.resolvedDependencies[0].name is not a string",
            ),
            (
                json!([{"uri": "a", "digest": {"sha256": "ab"}}, "b"]),
                "SLSA v1 provenance field buildDefinition.resolvedDependencies[1] is not an object",
            ),
        ];
        for (dependencies, expected) in cases {
            let mut predicate = github_actions_v1();
            predicate["buildDefinition"]["resolvedDependencies"] = dependencies;
            assert_eq!(refusal(SLSA_PROVENANCE_V1, &predicate), expected);
        }
    }

    #[test]
    fn slsa_v02_counts_materials_and_takes_the_ref_from_the_config_source() {
        let mut predicate = slsa_v02_predicate();
        predicate["invocation"]["configSource"] =
            json!({"uri": "git+https://github.com/octo-org/octo-repo@refs/tags/v2.0.0"});
        predicate["materials"] = json!([
            {"uri": "git+https://github.com/octo-org/octo-repo", "digest": {"sha1": "4f2bd5e1"}},
            {"uri": "https://github.com/actions/checkout@v4"},
            {"digest": {"sha256": ""}}
        ]);
        let facts = provenance(SLSA_PROVENANCE_V02, &predicate);
        assert_eq!(facts.commit.as_deref(), Some("4f2bd5e1"));
        assert_eq!(facts.source_ref.as_deref(), Some("refs/tags/v2.0.0"));
        assert_eq!(facts.inputs, 3);
        assert_eq!(
            facts.unpinned_inputs.unwrap_or_default(),
            vec!["https://github.com/actions/checkout@v4", "materials[2]"]
        );

        predicate["materials"] = json!([{"uri": "x", "digest": ["sha1"]}]);
        assert_eq!(
            refusal(SLSA_PROVENANCE_V02, &predicate),
            "SLSA v0.2 provenance field materials[0].digest is not an object"
        );
    }

    #[test]
    fn more_provenance_inputs_than_the_limit_are_refused() {
        let mut predicate = slsa_v02_predicate();
        predicate["materials"] = Value::Array(vec![json!({}); MAX_ITEMS + 1]);
        assert_eq!(
            refusal(SLSA_PROVENANCE_V02, &predicate),
            format!("SLSA v0.2 provenance has more than {MAX_ITEMS} inputs")
        );
    }

    #[test]
    fn provenance_stored_before_inputs_were_read_still_deserialises() {
        let stored = json!({
            "kind": "provenance",
            "slsa_version": "v1",
            "builder_id": "https://github.com/actions/runner/github-hosted",
            "build_type": "https://actions.github.io/buildtypes/workflow/v1",
            "source_repository": "https://github.com/octo-org/octo-repo",
            "commit": "c27d339ee6075c1f744c5d4b200f7901aad2c369"
        });
        let Ok(Facts::Provenance(read)) = serde_json::from_value::<Facts>(stored) else {
            panic!("old provenance facts did not deserialise");
        };
        assert_eq!(read.source_ref, None);
        assert_eq!(read.inputs, 0);
        assert_eq!(read.unpinned_inputs, None);
        assert_eq!(
            read.commit.as_deref(),
            Some("c27d339ee6075c1f744c5d4b200f7901aad2c369")
        );
    }

    #[test]
    fn predicate_that_is_not_an_object_is_refused() {
        assert_eq!(
            refusal(SLSA_PROVENANCE_V1, &json!([1, 2])),
            "SLSA v1 provenance predicate is not a JSON object"
        );
        assert_eq!(
            refusal(TEST_RESULT, &json!("PASSED")),
            "in-toto test result predicate is not a JSON object"
        );
    }

    // --- SBOMs -----------------------------------------------------------------------------

    fn cyclonedx_1_5() -> Value {
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "version": 1,
            "metadata": {"component": {"type": "container", "name": "registry.example.com/app"}},
            "components": [
                {
                    "type": "library",
                    "name": "serde",
                    "version": "1.0.200",
                    "purl": "pkg:cargo/serde@1.0.200",
                    "licenses": [{"expression": "mit or Apache-2.0"}]
                },
                {
                    "type": "operating-system",
                    "name": "debian",
                    "version": "12.5",
                    "components": [
                        {
                            "type": "library",
                            "name": "bash",
                            "version": "5.2.15-2",
                            "purl": "pkg:deb/debian/bash@5.2.15-2",
                            "licenses": [{"license": {"id": "GPL-3.0+"}}]
                        },
                        {
                            "type": "library",
                            "name": "libfoo",
                            "version": "1.0",
                            "licenses": [{"expression": "MIT AND OR Apache-2.0"}],
                            "components": [
                                {
                                    "type": "library",
                                    "name": "libfoo-data",
                                    "licenses": [
                                        {"license": {"id": "BSD-3-Clause"}},
                                        {"license": {"name": "Apache-2.0/MIT"}}
                                    ]
                                }
                            ]
                        }
                    ]
                },
                {
                    "type": "library",
                    "name": "left-pad",
                    "version": "1.3.0",
                    "purl": "pkg:npm/left-pad@1.3.0",
                    "licenses": [{"license": {"id": "mit"}}]
                },
                {
                    "type": "library",
                    "name": "vendored",
                    "licenses": [{"license": {"name": "Apache License 2.0"}}]
                },
                {"type": "library", "name": "unlicensed"}
            ]
        })
    }

    #[test]
    fn cyclonedx_1_5_components_are_read_recursively_with_normalised_licenses() {
        let sbom = sbom("https://cyclonedx.org/bom/v1.5", &cyclonedx_1_5());
        assert_eq!(sbom.format, "cyclonedx");
        assert_eq!(sbom.spec_version, "1.5");
        let summary: Vec<(&str, Option<&str>, Option<&str>)> = sbom
            .components
            .iter()
            .map(|c| (c.name.as_str(), c.version.as_deref(), c.license.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("serde", Some("1.0.200"), Some("MIT OR Apache-2.0")),
                ("debian", Some("12.5"), None),
                ("bash", Some("5.2.15-2"), Some("GPL-3.0-or-later")),
                ("libfoo", Some("1.0"), None),
                (
                    "libfoo-data",
                    None,
                    Some("BSD-3-Clause AND (Apache-2.0 OR MIT)")
                ),
                ("left-pad", Some("1.3.0"), Some("MIT")),
                ("vendored", None, None),
                ("unlicensed", None, None),
            ]
        );
        assert_eq!(
            sbom.components[0].purl.as_deref(),
            Some("pkg:cargo/serde@1.0.200")
        );
        assert_eq!(
            sbom.licenses,
            vec![
                "BSD-3-Clause AND (Apache-2.0 OR MIT)",
                "GPL-3.0-or-later",
                "MIT",
                "MIT OR Apache-2.0"
            ]
        );
        assert_eq!(sbom.invalid_licenses.len(), 2);
        let libfoo = &sbom.invalid_licenses[0];
        assert_eq!(libfoo.component, "libfoo@1.0");
        assert_eq!(libfoo.expression, "MIT AND OR Apache-2.0");
        assert_eq!(
            libfoo.error,
            "expected one of `<license>`, `(` here at \"OR\" in \"MIT AND OR Apache-2.0\""
        );
        let vendored = &sbom.invalid_licenses[1];
        assert_eq!(vendored.component, "vendored");
        assert_eq!(vendored.expression, "Apache License 2.0");
        assert_eq!(
            vendored.error,
            "unknown term at \"Apache\" in \"Apache License 2.0\""
        );
    }

    #[test]
    fn cyclonedx_is_recognised_by_bom_format_under_any_predicate_type() {
        let sbom = sbom("https://example.com/custom-sbom/v1", &cyclonedx_1_5());
        assert_eq!(sbom.components.len(), 8);
        assert_eq!(predicate_kind("https://cyclonedx.org/bom"), Some("sbom"));
        assert_eq!(predicate_kind("https://cyclonedx.org/bomb"), None);
    }

    #[test]
    fn cyclonedx_older_than_1_4_is_refused() {
        let mut predicate = cyclonedx_1_5();
        predicate["specVersion"] = json!("1.2");
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX specVersion 1.2 is older than 1.4"
        );
        predicate["specVersion"] = json!("latest");
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM field specVersion is \"latest\", expected a CycloneDX version such as \"1.5\""
        );
        predicate["specVersion"] = json!("1.4");
        assert_eq!(
            sbom("https://cyclonedx.org/bom", &predicate).spec_version,
            "1.4"
        );
    }

    #[test]
    fn malformed_cyclonedx_is_refused_by_path() {
        let mut predicate = cyclonedx_1_5();
        remove(
            &mut predicate["components"][1]["components"][1]["components"][0],
            "name",
        );
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM has no components[1].components[1].components[0].name"
        );

        let mut predicate = cyclonedx_1_5();
        predicate["components"][0]["licenses"] =
            json!([{"license": {"url": "https://example.com/license"}}]);
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM has no components[0].licenses[0].license.id or components[0].licenses[0].license.name"
        );

        let mut predicate = cyclonedx_1_5();
        predicate["components"][0]["licenses"] = json!([{"expression": 7}]);
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM field components[0].licenses[0].expression is not a string"
        );

        let mut predicate = cyclonedx_1_5();
        predicate["bomFormat"] = json!("SPDX");
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM field bomFormat is \"SPDX\", expected \"CycloneDX\""
        );

        let mut predicate = cyclonedx_1_5();
        remove(&mut predicate, "specVersion");
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM has no specVersion"
        );
    }

    #[test]
    fn cyclonedx_nesting_deeper_than_the_limit_is_refused() {
        let mut component = json!({"name": "leaf"});
        for level in 0..=MAX_COMPONENT_DEPTH {
            component = json!({"name": format!("level-{level}"), "components": [component]});
        }
        let predicate =
            json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [component]});
        let error = refusal("https://cyclonedx.org/bom", &predicate);
        assert!(
            error.starts_with(
                "CycloneDX BOM nests components deeper than 32 levels at components[0]"
            ),
            "{error}"
        );

        let mut component = json!({"name": "leaf"});
        for level in 0..MAX_COMPONENT_DEPTH - 1 {
            component = json!({"name": format!("level-{level}"), "components": [component]});
        }
        let predicate =
            json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [component]});
        assert_eq!(
            sbom("https://cyclonedx.org/bom", &predicate)
                .components
                .len(),
            MAX_COMPONENT_DEPTH
        );
    }

    #[test]
    fn more_components_than_the_limit_are_refused() {
        let components: Vec<Value> = (0..=MAX_ITEMS)
            .map(|i| json!({"name": format!("c{i}")}))
            .collect();
        let predicate =
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components});
        assert_eq!(
            refusal("https://cyclonedx.org/bom", &predicate),
            "CycloneDX BOM has more than 100000 components"
        );
    }

    fn spdx_2_3() -> Value {
        json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "registry.example.com/app",
            "documentNamespace": "https://example.com/spdx/app-1",
            "creationInfo": {"created": "2024-05-01T00:00:00Z", "creators": ["Tool: syft-1.4.1"]},
            "packages": [
                {
                    "name": "openssl",
                    "SPDXID": "SPDXRef-Package-openssl",
                    "versionInfo": "3.0.11-1~deb12u2",
                    "downloadLocation": "NOASSERTION",
                    "licenseConcluded": "NOASSERTION",
                    "licenseDeclared": "Apache-2.0",
                    "externalRefs": [
                        {"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": "cpe:2.3:a:openssl:openssl:3.0.11:*:*:*:*:*:*:*"},
                        {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:deb/debian/openssl@3.0.11-1~deb12u2"}
                    ]
                },
                {
                    "name": "acme-sdk",
                    "SPDXID": "SPDXRef-Package-acme",
                    "versionInfo": "2.1.0",
                    "downloadLocation": "NOASSERTION",
                    "licenseConcluded": "LicenseRef-Acme-Proprietary OR GPL-2.0",
                    "licenseDeclared": "NOASSERTION"
                },
                {
                    "name": "mystery",
                    "SPDXID": "SPDXRef-Package-mystery",
                    "downloadLocation": "NOASSERTION",
                    "licenseConcluded": "NOASSERTION",
                    "licenseDeclared": "NONE"
                },
                {
                    "name": "guessed",
                    "SPDXID": "SPDXRef-Package-guessed",
                    "versionInfo": "0.1",
                    "downloadLocation": "NOASSERTION",
                    "licenseDeclared": "BSD"
                }
            ],
            "hasExtractedLicensingInfos": [
                {"licenseId": "LicenseRef-Acme-Proprietary", "extractedText": "All rights reserved."}
            ]
        })
    }

    #[test]
    fn spdx_2_3_packages_licenses_and_purls_are_read() {
        let sbom = sbom("https://spdx.dev/Document/v2.3", &spdx_2_3());
        assert_eq!(sbom.format, "spdx");
        assert_eq!(sbom.spec_version, "2.3");
        assert_eq!(
            sbom.components,
            vec![
                Component {
                    name: "openssl".to_owned(),
                    version: Some("3.0.11-1~deb12u2".to_owned()),
                    purl: Some("pkg:deb/debian/openssl@3.0.11-1~deb12u2".to_owned()),
                    license: Some("Apache-2.0".to_owned()),
                    component_type: None,
                    relationship: None,
                    dependencies: 0,
                },
                Component {
                    name: "acme-sdk".to_owned(),
                    version: Some("2.1.0".to_owned()),
                    purl: None,
                    license: Some("LicenseRef-Acme-Proprietary OR GPL-2.0-only".to_owned()),
                    component_type: None,
                    relationship: None,
                    dependencies: 0,
                },
                Component {
                    name: "mystery".to_owned(),
                    version: None,
                    purl: None,
                    license: None,
                    component_type: None,
                    relationship: None,
                    dependencies: 0,
                },
                Component {
                    name: "guessed".to_owned(),
                    version: Some("0.1".to_owned()),
                    purl: None,
                    license: None,
                    component_type: None,
                    relationship: None,
                    dependencies: 0,
                },
            ]
        );
        assert_eq!(
            sbom.licenses,
            vec!["Apache-2.0", "LicenseRef-Acme-Proprietary OR GPL-2.0-only"]
        );
        assert_eq!(
            sbom.invalid_licenses,
            vec![InvalidLicense {
                component: "guessed@0.1".to_owned(),
                expression: "BSD".to_owned(),
                error: "unknown term at \"BSD\" in \"BSD\"".to_owned(),
            }]
        );
    }

    #[test]
    fn spdx_is_recognised_by_version_and_other_versions_are_refused() {
        assert_eq!(
            sbom("https://example.com/sbom", &spdx_2_3())
                .components
                .len(),
            4
        );
        assert_eq!(predicate_kind("https://spdx.dev/Document"), Some("sbom"));

        let mut predicate = spdx_2_3();
        predicate["spdxVersion"] = json!("SPDX-3.0");
        assert_eq!(
            refusal("https://spdx.dev/Document", &predicate),
            "SPDX document version \"SPDX-3.0\" is not supported (only SPDX-2.x JSON)"
        );
        assert_eq!(
            derive_facts("https://example.com/sbom", &predicate),
            Ok(Facts::None)
        );

        let mut predicate = spdx_2_3();
        remove(&mut predicate, "spdxVersion");
        assert_eq!(
            refusal("https://spdx.dev/Document", &predicate),
            "SPDX document has no spdxVersion"
        );

        let mut predicate = spdx_2_3();
        predicate["packages"][0]["externalRefs"][1] = json!({"referenceType": "purl"});
        assert_eq!(
            refusal("https://spdx.dev/Document", &predicate),
            "SPDX document has no packages[0].externalRefs[1].referenceLocator"
        );

        let mut predicate = spdx_2_3();
        predicate["packages"][2]["name"] = json!("");
        assert_eq!(
            refusal("https://spdx.dev/Document", &predicate),
            "SPDX document has no packages[2].name"
        );
    }

    #[test]
    fn license_expressions_are_normalised_leniently_but_without_guessing() {
        let accepted = [
            ("MIT", "MIT"),
            ("mit", "MIT"),
            ("apache-2.0 or mit", "Apache-2.0 OR MIT"),
            ("Apache-2.0/MIT", "Apache-2.0 OR MIT"),
            ("  MIT   AND  Zlib ", "MIT AND Zlib"),
            ("GPL-2.0", "GPL-2.0-only"),
            ("GPL-2.0+", "GPL-2.0-or-later"),
            ("GPL-2.0-only+", "GPL-2.0-or-later"),
            ("lgpl-2.1+", "LGPL-2.1-or-later"),
            ("Apache-1.0+", "Apache-1.0+"),
            (
                "GPL-2.0 WITH classpath-exception-2.0",
                "GPL-2.0-only WITH Classpath-exception-2.0",
            ),
            (
                "(MIT OR Apache-2.0) AND BSD-3-Clause",
                "(MIT OR Apache-2.0) AND BSD-3-Clause",
            ),
            ("LicenseRef-Acme-1.0", "LicenseRef-Acme-1.0"),
            (
                "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
                "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
            ),
            ("wxWindows", "wxWindows"),
            // The crate's list has NOASSERTION as a term; SPDX documents' whole-field
            // NOASSERTION/NONE never get here (they mean "no license").
            ("NOASSERTION", "NOASSERTION"),
        ];
        for (input, expected) in accepted {
            assert_eq!(normalise_license(input).as_deref(), Ok(expected), "{input}");
        }

        let refused = [
            (
                "MIT AND OR Apache-2.0",
                "expected one of `<license>`, `(` here at \"OR\"",
            ),
            ("Apache 2", "unknown term at \"Apache\""),
            ("gnu gpl v2", "unknown term at \"gnu\""),
            ("BSD", "unknown term at \"BSD\""),
            ("MIT AND (Apache-2.0", "unclosed parens"),
            ("GPL-3.0-or-later+", "a GNU license was followed by a `+`"),
            ("", "empty expression"),
            ("NONE", "unknown term"),
            ("MIT_License", "invalid character(s)"),
        ];
        for (input, reason) in refused {
            match normalise_license(input) {
                Err(error) => assert!(error.starts_with(reason), "{input}: {error}"),
                Ok(normalised) => panic!("{input} was accepted as {normalised}"),
            }
        }
    }

    #[test]
    fn conjunctions_parenthesise_only_top_level_disjunctions() {
        let parts = [
            "MIT".to_owned(),
            "(MIT OR Zlib) AND ISC".to_owned(),
            "Apache-2.0 OR MIT".to_owned(),
        ];
        assert_eq!(
            conjoin(&parts),
            "MIT AND (MIT OR Zlib) AND ISC AND (Apache-2.0 OR MIT)"
        );
        assert!(normalise_license(&conjoin(&parts)).is_ok());
    }

    // --- Vulnerability reports -------------------------------------------------------------

    fn cosign_vuln_predicate(scanner_uri: &str, result: Value) -> Value {
        json!({
            "invocation": {"parameters": null, "uri": "https://github.com/octo-org/octo-repo/actions/runs/1", "event_id": "1", "builder.id": "github-actions"},
            "scanner": {
                "uri": scanner_uri,
                "version": "0.50.1",
                "db": {"uri": "", "version": ""},
                "result": result
            },
            "metadata": {"scanStartedOn": "2024-05-01T10:00:00Z", "scanFinishedOn": "2024-05-01T10:01:00Z"}
        })
    }

    fn trivy_report() -> Value {
        json!({
            "SchemaVersion": 2,
            "ArtifactName": "registry.example.com/app:1.0",
            "ArtifactType": "container_image",
            "Results": [
                {
                    "Target": "registry.example.com/app:1.0 (debian 12.5)",
                    "Class": "os-pkgs",
                    "Type": "debian",
                    "Vulnerabilities": [
                        {"VulnerabilityID": "CVE-2023-0286", "PkgName": "libssl3", "InstalledVersion": "3.0.11-1~deb12u2", "FixedVersion": "3.0.13-1~deb12u1", "Severity": "HIGH"},
                        {"VulnerabilityID": "CVE-2011-3374", "PkgName": "apt", "InstalledVersion": "2.6.1", "FixedVersion": "", "Severity": "LOW"},
                        {"VulnerabilityID": "CVE-2023-0286", "PkgName": "libssl3", "InstalledVersion": "3.0.11-1~deb12u2", "FixedVersion": "3.0.13-1~deb12u1", "Severity": "HIGH"}
                    ]
                },
                {"Target": "app/go.mod", "Class": "lang-pkgs", "Type": "gomod"},
                {
                    "Target": "app/package-lock.json",
                    "Class": "lang-pkgs",
                    "Type": "npm",
                    "Vulnerabilities": [
                        {"VulnerabilityID": "GHSA-xxxx-yyyy-zzzz", "PkgName": "lodash", "InstalledVersion": "4.17.20", "FixedVersion": "4.17.21", "Severity": "CRITICAL"},
                        {"VulnerabilityID": "CVE-2024-0001", "PkgName": "weird", "InstalledVersion": "1", "Severity": "Spicy"}
                    ]
                }
            ]
        })
    }

    #[test]
    fn trivy_json_in_a_cosign_vuln_predicate_is_read_sorted_and_deduplicated() {
        let predicate = cosign_vuln_predicate(
            "pkg:github/aquasecurity/trivy@244fd47e07d1004f0aed9",
            trivy_report(),
        );
        let facts = vulnerabilities(COSIGN_VULN, &predicate);
        assert_eq!(facts.scanner, "trivy");
        assert_eq!(facts.counts, counts(1, 1, 0, 1, 1));
        assert_eq!(
            facts.findings,
            vec![
                finding(
                    "GHSA-xxxx-yyyy-zzzz",
                    "lodash",
                    Some("4.17.20"),
                    "critical",
                    Some("4.17.21")
                ),
                finding(
                    "CVE-2023-0286",
                    "libssl3",
                    Some("3.0.11-1~deb12u2"),
                    "high",
                    Some("3.0.13-1~deb12u1")
                ),
                finding("CVE-2011-3374", "apt", Some("2.6.1"), "low", None),
                finding("CVE-2024-0001", "weird", Some("1"), "unknown", None),
            ]
        );
    }

    #[test]
    fn trivy_json_without_results_has_no_findings() {
        let predicate =
            cosign_vuln_predicate("", json!({"SchemaVersion": 2, "ArtifactName": "app"}));
        let facts = vulnerabilities(COSIGN_VULN, &predicate);
        assert_eq!(facts.scanner, "trivy");
        assert!(facts.findings.is_empty());
        assert_eq!(facts.counts, counts(0, 0, 0, 0, 0));
    }

    #[test]
    fn grype_json_in_a_cosign_vuln_predicate_is_read() {
        let report = json!({
            "matches": [
                {
                    "vulnerability": {"id": "CVE-2022-48174", "dataSource": "https://nvd.nist.gov/vuln/detail/CVE-2022-48174", "severity": "Critical", "fix": {"versions": ["1.36.1-r1", "1.36.1-r2"], "state": "fixed"}},
                    "artifact": {"name": "busybox", "version": "1.36.1-r0", "type": "apk", "purl": "pkg:apk/alpine/busybox@1.36.1-r0"}
                },
                {
                    "vulnerability": {"id": "CVE-2005-2541", "severity": "Negligible", "fix": {"versions": [], "state": "wont-fix"}},
                    "artifact": {"name": "tar", "version": "1.34"}
                },
                {
                    "vulnerability": {"id": "GHSA-1234", "severity": "Medium", "fix": {"versions": [], "state": "not-fixed"}},
                    "artifact": {"name": "requests", "version": "2.31.0"}
                }
            ],
            "source": {"type": "image", "target": {"userInput": "app:1.0"}},
            "descriptor": {"name": "grype", "version": "0.77.0"}
        });
        let predicate = cosign_vuln_predicate("https://github.com/anchore/grype", report);
        let facts = vulnerabilities(COSIGN_VULN, &predicate);
        assert_eq!(facts.scanner, "grype");
        assert_eq!(facts.counts, counts(1, 0, 1, 1, 0));
        assert_eq!(
            facts.findings,
            vec![
                finding(
                    "CVE-2022-48174",
                    "busybox",
                    Some("1.36.1-r0"),
                    "critical",
                    Some("1.36.1-r1, 1.36.1-r2")
                ),
                finding("GHSA-1234", "requests", Some("2.31.0"), "medium", None),
                finding("CVE-2005-2541", "tar", Some("1.34"), "low", None),
            ]
        );
    }

    fn trivy_sarif() -> Value {
        json!({
            "version": "2.1.0",
            "$schema": "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json",
            "runs": [{
                "tool": {"driver": {
                    "fullName": "Trivy Vulnerability Scanner",
                    "informationUri": "https://github.com/aquasecurity/trivy",
                    "name": "Trivy",
                    "rules": [
                        {
                            "id": "CVE-2023-0286",
                            "name": "OsPackageVulnerability",
                            "defaultConfiguration": {"level": "error"},
                            "properties": {"precision": "very-high", "security-severity": "7.4", "tags": ["vulnerability", "security", "HIGH"]}
                        },
                        {
                            "id": "CVE-2023-44487",
                            "name": "LanguageSpecificPackageVulnerability",
                            "defaultConfiguration": {"level": "warning"},
                            "properties": {"security-severity": "5.3"}
                        }
                    ]
                }},
                "results": [
                    {
                        "ruleId": "CVE-2023-0286",
                        "ruleIndex": 0,
                        "level": "error",
                        "message": {"text": "Package: libssl3\nInstalled Version: 3.0.11-1~deb12u2\nVulnerability CVE-2023-0286\nSeverity: HIGH\nFixed Version: 3.0.13-1~deb12u1\nLink: [CVE-2023-0286](https://avd.aquasec.com/nvd/cve-2023-0286)"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "library/app", "uriBaseId": "ROOTPATH"}}}]
                    },
                    {
                        "ruleId": "CVE-2023-44487",
                        "ruleIndex": 1,
                        "level": "warning",
                        "message": {"text": "Package: golang.org/x/net\nInstalled Version: v0.15.0\nVulnerability CVE-2023-44487\nSeverity: MEDIUM\nFixed Version: 0.17.0\nLink: [CVE-2023-44487](https://avd.aquasec.com/nvd/cve-2023-44487)"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/go.mod"}}}]
                    }
                ],
                "columnKind": "utf16CodeUnits"
            }]
        })
    }

    #[test]
    fn trivy_sarif_in_a_cosign_vuln_predicate_is_read() {
        let predicate =
            cosign_vuln_predicate("pkg:github/aquasecurity/trivy@0.50.1", trivy_sarif());
        let facts = vulnerabilities(COSIGN_VULN, &predicate);
        assert_eq!(facts.scanner, "trivy");
        assert_eq!(facts.counts, counts(0, 1, 1, 0, 0));
        assert_eq!(
            facts.findings,
            vec![
                finding(
                    "CVE-2023-0286",
                    "libssl3",
                    Some("3.0.11-1~deb12u2"),
                    "high",
                    Some("3.0.13-1~deb12u1")
                ),
                finding(
                    "CVE-2023-44487",
                    "golang.org/x/net",
                    Some("v0.15.0"),
                    "medium",
                    Some("0.17.0")
                ),
            ]
        );
    }

    #[test]
    fn malformed_cosign_vuln_predicates_are_refused() {
        let predicate = cosign_vuln_predicate("https://example.com/scanner", json!({"issues": []}));
        assert_eq!(
            refusal(COSIGN_VULN, &predicate),
            "cosign vuln predicate field scanner.result is not a Trivy JSON, Grype JSON or SARIF 2.1.0 report"
        );
        let mut predicate = cosign_vuln_predicate("", json!({}));
        remove(&mut predicate["scanner"], "result");
        assert_eq!(
            refusal(COSIGN_VULN, &predicate),
            "cosign vuln predicate has no scanner.result"
        );
        assert_eq!(
            refusal(COSIGN_VULN, &json!({"invocation": {}})),
            "cosign vuln predicate has no scanner"
        );

        let mut report = trivy_report();
        remove(&mut report["Results"][2]["Vulnerabilities"][0], "PkgName");
        assert_eq!(
            refusal(COSIGN_VULN, &cosign_vuln_predicate("", report)),
            "cosign vuln predicate has no scanner.result.Results[2].Vulnerabilities[0].PkgName"
        );

        let report = json!({"matches": [{"vulnerability": {"id": "CVE-1", "fix": {"versions": [1]}}, "artifact": {"name": "x"}}]});
        assert_eq!(
            refusal(COSIGN_VULN, &cosign_vuln_predicate("", report)),
            "cosign vuln predicate field scanner.result.matches[0].vulnerability.fix.versions[0] is not a string"
        );

        let mut report = trivy_sarif();
        report["version"] = json!("2.0.0");
        assert_eq!(
            refusal(COSIGN_VULN, &cosign_vuln_predicate("", report)),
            "cosign vuln predicate field scanner.result.version is \"2.0.0\", expected \"2.1.0\""
        );
    }

    #[test]
    fn more_findings_than_the_limit_are_refused() {
        let vulnerabilities: Vec<Value> = (0..=MAX_ITEMS)
            .map(|i| json!({"VulnerabilityID": format!("CVE-{i}"), "PkgName": "p"}))
            .collect();
        let report = json!({"SchemaVersion": 2, "Results": [{"Vulnerabilities": vulnerabilities}]});
        assert_eq!(
            refusal(COSIGN_VULN, &cosign_vuln_predicate("", report)),
            "cosign vuln predicate has more than 100000 findings"
        );
    }

    #[test]
    fn plain_sarif_severity_comes_from_rule_score_then_result_score_then_level() {
        let log = json!({
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "CodeQL",
                    "rules": [
                        {"id": "js/sql-injection", "properties": {"security-severity": "9.8"}},
                        {"id": "js/weak-hash", "defaultConfiguration": {"level": "note"}},
                        {"id": "js/bad-score", "properties": {"security-severity": "high"}}
                    ]
                }},
                "results": [
                    {"ruleId": "js/sql-injection", "level": "note", "message": {"text": "tainted"},
                     "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/db.js"}}}]},
                    {"ruleIndex": 1, "message": {"text": "md5"}},
                    {"ruleId": "js/bad-score", "level": "error", "message": {"text": "x"}},
                    {"ruleId": "custom/scored", "properties": {"security-severity": "4.0", "package": "left-pad", "installedVersion": "1.0.0", "fixedVersion": "1.0.1"}, "message": {"text": "y"}},
                    {"ruleId": "custom/zero", "properties": {"security-severity": "0.0"}, "message": {"text": "z"}},
                    {"ruleId": "custom/silent", "message": {"text": "w"}}
                ]
            }]
        });
        let facts = vulnerabilities("https://example.com/sarif/v2.1.0", &log);
        assert_eq!(facts.scanner, "codeql");
        assert_eq!(facts.counts, counts(1, 1, 1, 1, 2));
        assert_eq!(
            facts.findings,
            vec![
                finding("js/sql-injection", "src/db.js", None, "critical", None),
                finding("js/bad-score", "", None, "high", None),
                finding(
                    "custom/scored",
                    "left-pad",
                    Some("1.0.0"),
                    "medium",
                    Some("1.0.1")
                ),
                finding("js/weak-hash", "", None, "low", None),
                finding("custom/silent", "", None, "unknown", None),
                finding("custom/zero", "", None, "unknown", None),
            ]
        );
        assert_eq!(
            predicate_kind("https://example.com/sarif/v2.1.0"),
            Some("vulnerabilities")
        );
        // Recognised by shape under a type that does not say "sarif".
        assert_eq!(
            vulnerabilities("https://example.com/code-scan", &log)
                .findings
                .len(),
            6
        );
    }

    #[test]
    fn malformed_plain_sarif_is_refused() {
        assert_eq!(
            refusal("https://example.com/sarif", &json!({"version": "2.1.0"})),
            "SARIF log has no runs"
        );
        assert_eq!(
            refusal(
                "https://example.com/sarif",
                &json!({"version": "2.1.0", "runs": [{"results": [{"message": {"text": "x"}}]}]})
            ),
            "SARIF log has no runs[0].results[0].ruleId"
        );
        assert_eq!(
            refusal(
                "https://example.com/sarif",
                &json!({"version": "2.1.0", "runs": [{"results": [{"ruleId": "a", "ruleIndex": -1}]}]})
            ),
            "SARIF log field runs[0].results[0].ruleIndex is not a non-negative integer"
        );
        assert_eq!(
            refusal("https://example.com/sarif", &json!({"runs": []})),
            "SARIF log has no version"
        );
    }

    #[test]
    fn severities_are_normalised() {
        let cases = [
            ("CRITICAL", Severity::Critical),
            ("High", Severity::High),
            ("important", Severity::High),
            ("medium", Severity::Medium),
            ("Moderate", Severity::Medium),
            ("LOW", Severity::Low),
            ("Negligible", Severity::Low),
            ("Unknown", Severity::Unknown),
            ("severe", Severity::Unknown),
            ("", Severity::Unknown),
        ];
        for (name, expected) in cases {
            assert_eq!(Severity::from_name(name), expected, "{name}");
        }
        assert_eq!(Severity::from_score(9.0), Severity::Critical);
        assert_eq!(Severity::from_score(8.9), Severity::High);
        assert_eq!(Severity::from_score(7.0), Severity::High);
        assert_eq!(Severity::from_score(4.0), Severity::Medium);
        assert_eq!(Severity::from_score(0.1), Severity::Low);
        assert_eq!(Severity::from_score(0.0), Severity::Unknown);
        assert_eq!(cvss_score(&json!("11")), None);
        assert_eq!(cvss_score(&json!(7.5)), Some(7.5));
    }

    #[test]
    fn duplicate_findings_keep_the_most_severe() {
        let report = json!({"SchemaVersion": 2, "Results": [
            {"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "a", "InstalledVersion": "1", "Severity": "LOW"}]},
            {"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "a", "InstalledVersion": "1", "Severity": "HIGH"}]},
            {"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "a", "InstalledVersion": "2", "Severity": "LOW"}]}
        ]});
        let facts = vulnerabilities(COSIGN_VULN, &cosign_vuln_predicate("", report));
        assert_eq!(
            facts.findings,
            vec![
                finding("CVE-1", "a", Some("1"), "high", None),
                finding("CVE-1", "a", Some("2"), "low", None),
            ]
        );
        assert_eq!(facts.counts, counts(0, 1, 0, 1, 0));
    }

    // --- Test results ----------------------------------------------------------------------

    #[test]
    fn test_results_count_passed_warned_and_failed_tests() {
        let passed = json!({
            "result": "PASSED",
            "configuration": [{"name": ".github/workflows/ci.yml", "digest": {"sha256": "00"}}],
            "url": "https://github.com/octo-org/octo-repo/actions/runs/1",
            "passedTests": ["unit", "integration", "lint"],
            "warnedTests": [],
            "failedTests": []
        });
        assert_eq!(
            derive_facts(TEST_RESULT, &passed),
            Ok(Facts::TestResult(TestResult {
                result: "passed".to_owned(),
                passed: 3,
                warned: 0,
                failed: 0,
                url: Some("https://github.com/octo-org/octo-repo/actions/runs/1".to_owned()),
            }))
        );
        let failed = json!({"result": "FAILED", "configuration": [], "passedTests": ["unit"], "failedTests": ["e2e"]});
        assert_eq!(
            derive_facts(TEST_RESULT, &failed),
            Ok(Facts::TestResult(TestResult {
                result: "failed".to_owned(),
                passed: 1,
                warned: 0,
                failed: 1,
                url: None,
            }))
        );
        assert_eq!(predicate_kind(TEST_RESULT), Some("test_result"));
    }

    #[test]
    fn malformed_test_results_are_refused() {
        assert_eq!(
            refusal(TEST_RESULT, &json!({"result": "passed"})),
            "in-toto test result field result is \"passed\", expected PASSED, WARNED or FAILED"
        );
        assert_eq!(
            refusal(TEST_RESULT, &json!({"passedTests": []})),
            "in-toto test result has no result"
        );
        assert_eq!(
            refusal(
                TEST_RESULT,
                &json!({"result": "FAILED", "failedTests": ["a", {"name": "b"}]})
            ),
            "in-toto test result field failedTests[1] is not a string"
        );
        assert_eq!(
            refusal(
                TEST_RESULT,
                &json!({"result": "FAILED", "failedTests": "a"})
            ),
            "in-toto test result field failedTests is not an array"
        );
    }

    // --- Everything else -------------------------------------------------------------------

    #[test]
    fn predicates_without_facts_yield_none() {
        let openvex = json!({"@context": "https://openvex.dev/ns/v0.2.0", "statements": []});
        assert_eq!(
            derive_facts("https://openvex.dev/ns/v0.2.0", &openvex),
            Ok(Facts::None)
        );
        assert_eq!(
            derive_facts("https://example.com/custom/v1", &json!({"anything": 1})),
            Ok(Facts::None)
        );
        assert_eq!(
            derive_facts("https://in-toto.io/Link/v1", &json!({"name": "build"})),
            Ok(Facts::None)
        );
        assert_eq!(
            derive_facts("https://example.com/custom/v1", &json!("text")),
            Ok(Facts::None)
        );
        assert_eq!(predicate_kind("https://example.com/custom/v1"), None);
        assert_eq!(predicate_kind(SLSA_PROVENANCE_V1), Some("provenance"));
        assert_eq!(predicate_kind(SLSA_PROVENANCE_V02), Some("provenance"));
        assert_eq!(predicate_kind(COSIGN_VULN), Some("vulnerabilities"));
    }

    #[test]
    fn facts_are_stored_with_a_kind_tag_and_read_back() {
        let facts = derive_facts(SLSA_PROVENANCE_V1, &github_actions_v1()).ok();
        let stored = serde_json::to_value(&facts).ok();
        assert_eq!(
            stored.as_ref().and_then(|v| v.get("kind")),
            Some(&json!("provenance"))
        );
        assert_eq!(
            stored.as_ref().and_then(|v| v.get("builder_id")),
            Some(&json!("https://github.com/actions/runner/github-hosted"))
        );
        let read_back: Option<Facts> = stored.and_then(|v| serde_json::from_value(v).ok());
        assert_eq!(read_back, facts);
        assert_eq!(
            serde_json::to_value(Facts::None).ok(),
            Some(json!({"kind": "none"}))
        );
    }
}
