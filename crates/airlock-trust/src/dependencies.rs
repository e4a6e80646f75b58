//! What an SBOM says about the health of an artifact's dependencies, as policy sees it.
//!
//! [`DependencyHealth::of`] summarises the facts of one SBOM ([`Sbom`]): how many components,
//! how many direct and transitive ones (where the SBOM states a graph), which components cannot
//! be identified (no valid package URL, no version), where the components come from (their
//! purl type, namespace and `repository_url`) and which packages appear at several versions.
//!
//! Guarantees: a pure, deterministic function of the facts (sources, packages, versions and
//! duplicates are sorted; lists taken "in document order" follow the SBOM's components); work is
//! linear in the number of components (at most [`crate::facts::MAX_ITEMS`]); an invalid package
//! URL never fails the summary, it is reported in [`DependencyHealth::unidentifiable`] with the
//! parser's reason so that a gate sees it.
//!
//! Components that are roots (what the SBOM describes: the artifact itself) are not counted.
//! Components whose type has no package source ([`EXEMPT_TYPES`]: an operating system, a file,
//! data, ...) are counted in [`DependencyHealth::exempt`] and not source-checked: they are in no
//! source, nor unidentified, nor unversioned. Their packages, where they have a valid purl, are
//! still listed in [`DependencyHealth::packages`].
//!
//! Package URLs are parsed with the `packageurl` crate, which applies the purl specification's
//! per-type rules (e.g. a `pkg:cargo` purl may not have a namespace; npm and PyPI names are
//! lower-cased). A "package" is the canonical purl without version, qualifiers and subpath
//! (`pkg:npm/%40types/node`); a "source" is the same without the name (`pkg:npm/%40types`,
//! `pkg:cargo`), beside the purl's `repository_url` qualifier.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use packageurl::PackageUrl;
use serde::{Deserialize, Serialize};

use crate::facts::{Component, Sbom};

/// How many [`Unidentifiable`] components are listed at most.
pub const MAX_UNIDENTIFIABLE: usize = 20;

/// How many example purls a [`DependencySource`] lists at most.
pub const MAX_EXAMPLES: usize = 3;

/// Component types that have no package source, so are not source-checked (CycloneDX
/// component types, and the SPDX 2.3 primary package purposes as [`Component::component_type`]
/// writes them).
pub const EXEMPT_TYPES: &[&str] = &[
    "operating-system",
    "file",
    "data",
    "device",
    "firmware",
    "machine-learning-model",
    "cryptographic-asset",
];

/// What an SBOM says about the health of an artifact's dependencies, derived from its facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyHealth {
    /// Every component except roots.
    pub components: u64,
    /// Components that are direct dependencies of a root; `None` unless the SBOM states a
    /// dependency graph ([`Sbom::dependency_graph`]).
    pub direct: Option<u64>,
    /// Components reachable from a root only through another component; `None` unless the SBOM
    /// states a dependency graph.
    pub transitive: Option<u64>,
    /// Components of a type with no package source ([`EXEMPT_TYPES`]), not source-checked.
    pub exempt: u64,
    /// Checked components without a valid package URL.
    pub unidentified: u64,
    /// Checked components with a valid package URL but no version (neither in the purl nor in
    /// the component).
    pub unversioned: u64,
    /// The first [`MAX_UNIDENTIFIABLE`] unidentified or unversioned components, in document
    /// order.
    pub unidentifiable: Vec<Unidentifiable>,
    /// Where the checked components with a valid purl come from, sorted by `source`, then
    /// `repository_url` (none first).
    pub sources: Vec<DependencySource>,
    /// Every package (with a valid purl) and its distinct versions, sorted. A package whose
    /// components state no version has an empty list.
    pub packages: BTreeMap<String, Vec<String>>,
    /// The packages with more than one version, sorted by package.
    pub duplicates: Vec<Duplicate>,
}

/// A component whose source or version cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unidentifiable {
    /// The component: its purl if it has one, else `name@version`, else its name.
    pub component: String,
    /// `"no package URL"`, `"invalid package URL: <the parser's reason>"` or `"no version"`.
    pub reason: String,
}

/// One place components come from: a purl type and namespace, and a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencySource {
    /// `pkg:TYPE` or `pkg:TYPE/NAMESPACE`, canonical (lower-case type, namespace as the purl
    /// specification canonicalises and encodes it), without name and version.
    pub source: String,
    /// The purls' `repository_url` qualifier; `None` means the type's default registry.
    pub repository_url: Option<String>,
    /// How many components come from here.
    pub components: u64,
    /// The first [`MAX_EXAMPLES`] purls from here as the SBOM writes them, in document order.
    pub examples: Vec<String>,
}

/// A package that the SBOM lists at several versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// The package: the canonical purl without version, qualifiers and subpath.
    pub package: String,
    /// Its distinct versions, sorted.
    pub versions: Vec<String>,
}

/// What one component's purl says, if it is valid.
struct Identity {
    package: String,
    source: String,
    repository_url: Option<String>,
    version: Option<String>,
}

impl DependencyHealth {
    /// Summarises the components of `sbom` (see the module documentation).
    pub fn of(sbom: &Sbom) -> Self {
        let mut health = Self {
            components: 0,
            direct: sbom.dependency_graph.then_some(0),
            transitive: sbom.dependency_graph.then_some(0),
            exempt: 0,
            unidentified: 0,
            unversioned: 0,
            unidentifiable: Vec::new(),
            sources: Vec::new(),
            packages: BTreeMap::new(),
            duplicates: Vec::new(),
        };
        let mut sources: BTreeMap<(String, Option<String>), DependencySource> = BTreeMap::new();
        let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

        for component in &sbom.components {
            match component.relationship.as_deref() {
                Some("root") => continue,
                Some("direct") => increment(&mut health.direct),
                Some("transitive") => increment(&mut health.transitive),
                _ => {}
            }
            health.components += 1;
            let exempt = component
                .component_type
                .as_deref()
                .is_some_and(|kind| EXEMPT_TYPES.contains(&kind));
            let identity = match identify(component) {
                Ok(identity) => identity,
                Err(reason) => {
                    if exempt {
                        health.exempt += 1;
                    } else {
                        health.unidentified += 1;
                        health.note(component, reason);
                    }
                    continue;
                }
            };
            let versions = packages.entry(identity.package).or_default();
            versions.extend(identity.version.iter().cloned());
            if exempt {
                health.exempt += 1;
                continue;
            }
            if identity.version.is_none() {
                health.unversioned += 1;
                health.note(component, "no version".to_owned());
            }
            let source = sources
                .entry((identity.source.clone(), identity.repository_url.clone()))
                .or_insert_with(|| DependencySource {
                    source: identity.source,
                    repository_url: identity.repository_url,
                    components: 0,
                    examples: Vec::new(),
                });
            source.components += 1;
            if source.examples.len() < MAX_EXAMPLES
                && let Some(purl) = &component.purl
            {
                source.examples.push(purl.clone());
            }
        }

        health.sources = sources.into_values().collect();
        health.duplicates = packages
            .iter()
            .filter(|(_, versions)| versions.len() > 1)
            .map(|(package, versions)| Duplicate {
                package: package.clone(),
                versions: versions.iter().cloned().collect(),
            })
            .collect();
        health.packages = packages
            .into_iter()
            .map(|(package, versions)| (package, versions.into_iter().collect()))
            .collect();
        health
    }

    /// Lists an unidentifiable component, up to [`MAX_UNIDENTIFIABLE`].
    fn note(&mut self, component: &Component, reason: String) {
        if self.unidentifiable.len() < MAX_UNIDENTIFIABLE {
            self.unidentifiable.push(Unidentifiable {
                component: component.label(),
                reason,
            });
        }
    }
}

fn increment(count: &mut Option<u64>) {
    if let Some(count) = count {
        *count += 1;
    }
}

/// The package, source and version of a component, or why it has no valid purl.
fn identify(component: &Component) -> Result<Identity, String> {
    let written = component
        .purl
        .as_deref()
        .map(str::trim)
        .filter(|purl| !purl.is_empty())
        .ok_or_else(|| "no package URL".to_owned())?;
    let purl =
        PackageUrl::from_str(written).map_err(|error| format!("invalid package URL: {error}"))?;
    let repository_url = purl
        .qualifiers()
        .get("repository_url")
        .map(|url| url.to_string());
    let version = purl
        .version()
        .or(component.version.as_deref())
        .map(str::trim)
        .filter(|version| !version.is_empty())
        .map(str::to_owned);
    let mut bare = purl;
    bare.without_version().without_subpath().clear_qualifiers();
    let package = bare.to_string();
    // The name is encoded with its `/`s, so the last `/` ends the type and namespace.
    let source = package
        .rfind('/')
        .map_or_else(|| package.clone(), |at| package[..at].to_owned());
    Ok(Identity {
        package,
        source,
        repository_url,
        version,
    })
}
