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
//! Components that are roots (what the SBOM describes: the artifact itself, and in SPDX every
//! described package) are not counted in [`DependencyHealth::components`], `direct` or
//! `transitive`. A root that names a package URL is otherwise identified like any component: it
//! is source-checked (in [`DependencyHealth::sources`]), listed in
//! [`DependencyHealth::packages`], and unidentified or unversioned when its purl is invalid or
//! has no version; so a second described package cannot escape the checks. A root that names no
//! package URL is skipped silently (the artifact itself usually has none).
//! Components whose type has no package source ([`EXEMPT_TYPES`]: an operating system, a file,
//! data, ...) and that name no package URL are counted in [`DependencyHealth::exempt`] and not
//! source-checked: they are in no source, nor unidentified, nor unversioned. A component that
//! does name a package URL is checked whatever its type, so a type cannot hide a package from
//! the source check (an invalid purl on such a component is unidentified, like any other).
//! Likewise exempt is a component that names no package URL, has no version and depends on at
//! least one other component of the SBOM ([`Component::dependencies`]): it only groups others,
//! as trivy's one `application` per lock file or binary (`app/package-lock.json`) does; the
//! components under it are checked as usual.
//!
//! Package URLs are parsed with the `packageurl` crate, which applies the purl specification's
//! per-type rules (e.g. a `pkg:cargo` purl may not have a namespace; npm and PyPI names are
//! lower-cased). A "package" is the canonical purl without version, qualifiers and subpath
//! (`pkg:npm/%40types/node`); a "source" is the same without the name (`pkg:npm/%40types`,
//! `pkg:cargo`), beside the registry the package comes from: the purl's `repository_url`
//! qualifier, else the origin of its `download_url` or `vcs_url` qualifier (see
//! [`DependencySource::repository_url`]), since those say where the package really came from.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use packageurl::PackageUrl;
use serde::{Deserialize, Serialize};

use crate::facts::{Component, Sbom};

/// How many [`Unidentifiable`] components are listed at most.
pub const MAX_UNIDENTIFIABLE: usize = 20;

/// How many example purls a [`DependencySource`] lists at most.
pub const MAX_EXAMPLES: usize = 3;

/// Component types that have no package source, so are not source-checked when they name no
/// package URL (CycloneDX component types, and the SPDX 2.3 primary package purposes as
/// [`Component::component_type`] writes them).
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
    /// Every component except roots (roots that name a package URL are still checked and
    /// listed in `sources` and `packages`).
    pub components: u64,
    /// Components that are direct dependencies of a root; `None` unless the SBOM states a
    /// dependency graph ([`Sbom::dependency_graph`]).
    pub direct: Option<u64>,
    /// Components reachable from a root only through another component; `None` unless the SBOM
    /// states a dependency graph.
    pub transitive: Option<u64>,
    /// Components that name no package URL and either are of a type with no package source
    /// ([`EXEMPT_TYPES`]) or only group others (no version, and depend on at least one other
    /// component of the SBOM); not source-checked.
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
    /// `"no package URL"`, `"invalid package URL: <the parser's reason>"`,
    /// `"unreadable download_url: <value>"`, `"unreadable vcs_url: <value>"` or
    /// `"no version"`.
    pub reason: String,
}

/// One place components come from: a purl type and namespace, and a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencySource {
    /// `pkg:TYPE` or `pkg:TYPE/NAMESPACE`, canonical (lower-case type, namespace as the purl
    /// specification canonicalises and encodes it), without name and version.
    pub source: String,
    /// The registry the components come from: the purl's `repository_url` qualifier as
    /// written; else the origin (`scheme://host[:port]`, scheme and host lower-cased) of its
    /// `download_url` qualifier; else the origin of its `vcs_url` qualifier (after a `git+`
    /// prefix; an scp-like `git@host:path` gives `ssh://host`). `None` means the type's default
    /// registry. So `pkg:npm/d@1?download_url=https://evil.example/d.tgz` is from
    /// `pkg:npm` at `https://evil.example`, which a plain `pkg:npm` pattern does not allow. A
    /// `download_url` or `vcs_url` with no readable origin makes the component unidentified.
    pub repository_url: Option<String>,
    /// How many components come from here (roots that name a package URL included).
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
                // A root is not a dependency, so it is not counted; but one that names a
                // package URL (a described runtime, a second described package) is checked
                // like any component. A root without one is the artifact itself.
                Some("root") if !names_a_purl(component) => continue,
                Some("root") => {}
                Some("direct") => {
                    increment(&mut health.direct);
                    health.components += 1;
                }
                Some("transitive") => {
                    increment(&mut health.transitive);
                    health.components += 1;
                }
                _ => health.components += 1,
            }
            let exempt = component
                .component_type
                .as_deref()
                .is_some_and(|kind| EXEMPT_TYPES.contains(&kind));
            let identity = match identify(component) {
                Ok(identity) => identity,
                Err(reason) => {
                    if (exempt || groups_others(component)) && !names_a_purl(component) {
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

/// Whether the component only groups others: it has no version and depends on at least one
/// other component of the SBOM (what trivy writes for a lock file or a binary). Callers check
/// that it names no package URL.
fn groups_others(component: &Component) -> bool {
    component.dependencies > 0
        && component
            .version
            .as_deref()
            .is_none_or(|version| version.trim().is_empty())
}

/// Whether the component writes a package URL at all (valid or not).
fn names_a_purl(component: &Component) -> bool {
    component
        .purl
        .as_deref()
        .is_some_and(|purl| !purl.trim().is_empty())
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
    let repository_url = registry(&purl)?;
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

/// Where a purl's package really comes from: its `repository_url` qualifier as written, else
/// the origin of its `download_url`, else of its `vcs_url`; `None` (the type's default
/// registry) when it has none of them. A `download_url` or `vcs_url` without a readable origin
/// is an error (the reason), since the package's source then cannot be checked.
fn registry(purl: &PackageUrl) -> Result<Option<String>, String> {
    let qualifier = |key: &str| {
        purl.qualifiers()
            .get(key)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    if let Some(url) = qualifier("repository_url") {
        return Ok(Some(url));
    }
    if let Some(url) = qualifier("download_url") {
        return origin(&url)
            .map(Some)
            .ok_or_else(|| format!("unreadable download_url: {url}"));
    }
    if let Some(url) = qualifier("vcs_url") {
        let bare = url.strip_prefix("git+").unwrap_or(&url);
        return origin(bare)
            .or_else(|| scp_origin(bare))
            .map(Some)
            .ok_or_else(|| format!("unreadable vcs_url: {url}"));
    }
    Ok(None)
}

/// The origin of a URL, `scheme://host[:port]` as written but with scheme and host lower-cased
/// (user information dropped); `None` when it has no scheme, host or a valid port.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let mut letters = scheme.chars();
    if !letters.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !letters.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, at)| at);
    let (host, port) = match host_port.rsplit_once(':') {
        // A `:` inside brackets belongs to an IPv6 address, not a port.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (host_port, None),
    };
    host_name(host)?;
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let port = port.map(|port| format!(":{port}")).unwrap_or_default();
    Some(format!(
        "{}://{}{port}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    ))
}

/// The origin of an scp-like git address, `[user@]host:path`: `ssh://host`.
fn scp_origin(address: &str) -> Option<String> {
    let (before, path) = address.split_once(':')?;
    let host = before.rsplit_once('@').map_or(before, |(_, host)| host);
    if path.is_empty() || before.contains('/') || path.starts_with("//") {
        return None;
    }
    host_name(host)?;
    Some(format!("ssh://{}", host.to_ascii_lowercase()))
}

/// `Some(())` when `host` is a plausible host: a name or IPv4 address (letters, digits, `-`,
/// `.`, `_`), or a bracketed IPv6 address.
fn host_name(host: &str) -> Option<()> {
    let valid = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    valid.then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(
        name: &str,
        version: Option<&str>,
        purl: Option<&str>,
        component_type: Option<&str>,
        relationship: Option<&str>,
    ) -> Component {
        Component {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            purl: purl.map(str::to_owned),
            license: None,
            component_type: component_type.map(str::to_owned),
            relationship: relationship.map(str::to_owned),
            dependencies: 0,
        }
    }

    fn sbom(dependency_graph: bool, components: Vec<Component>) -> Sbom {
        Sbom {
            format: "cyclonedx".to_owned(),
            spec_version: "1.6".to_owned(),
            components,
            licenses: Vec::new(),
            invalid_licenses: Vec::new(),
            dependency_graph,
        }
    }

    fn unidentifiable(component: &str, reason: &str) -> Unidentifiable {
        Unidentifiable {
            component: component.to_owned(),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn roots_are_not_counted_and_direct_and_transitive_follow_the_graph() {
        let components = vec![
            component(
                "app",
                Some("1.0.0"),
                Some("pkg:npm/app@1.0.0"),
                Some("application"),
                Some("root"),
            ),
            component(
                "express",
                Some("4.21.2"),
                Some("pkg:npm/express@4.21.2"),
                Some("library"),
                Some("direct"),
            ),
            component(
                "debug",
                Some("2.6.9"),
                Some("pkg:npm/debug@2.6.9"),
                Some("library"),
                Some("transitive"),
            ),
            component(
                "ms",
                Some("2.0.0"),
                Some("pkg:npm/ms@2.0.0"),
                None,
                Some("transitive"),
            ),
            component(
                "loose",
                Some("1.0.0"),
                Some("pkg:npm/loose@1.0.0"),
                None,
                None,
            ),
        ];
        let health = DependencyHealth::of(&sbom(true, components.clone()));
        assert_eq!(health.components, 4);
        assert_eq!((health.direct, health.transitive), (Some(1), Some(2)));
        // The root names a purl, so it is checked (source, package) though not counted.
        assert!(health.packages.contains_key("pkg:npm/app"));
        assert_eq!(health.sources.len(), 1);
        assert_eq!(health.sources[0].components, 5);

        // Without a graph, direct and transitive are unknown, not zero.
        let health = DependencyHealth::of(&sbom(false, components));
        assert_eq!((health.direct, health.transitive), (None, None));
        assert_eq!(health.components, 4);
    }

    #[test]
    fn every_described_package_that_names_a_purl_is_checked_but_not_counted() {
        // An SPDX document may describe several packages: each is a root. A second root that
        // is a runtime (`pkg:generic/node`) must still reach the source and end-of-life checks.
        let document = serde_json::json!({
            "spdxVersion": "SPDX-2.3",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "x",
            "dataLicense": "CC0-1.0",
            "documentDescribes": ["SPDXRef-app", "SPDXRef-node"],
            "packages": [
                {"SPDXID": "SPDXRef-app", "name": "app", "versionInfo": "1.0"},
                {"SPDXID": "SPDXRef-node", "name": "node", "versionInfo": "16.20.2",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                   "referenceType": "purl", "referenceLocator": "pkg:generic/node@16.20.2"}]},
                {"SPDXID": "SPDXRef-lib", "name": "left-pad", "versionInfo": "1.3.0",
                 "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER",
                   "referenceType": "purl", "referenceLocator": "pkg:npm/left-pad@1.3.0"}]}
            ],
            "relationships": [{"spdxElementId": "SPDXRef-app", "relationshipType": "DEPENDS_ON",
                               "relatedSpdxElement": "SPDXRef-lib"}]
        });
        let Ok(crate::facts::Facts::Sbom(sbom)) =
            crate::facts::derive_facts("https://spdx.dev/Document", &document)
        else {
            panic!("the SPDX document did not give SBOM facts");
        };
        let health = DependencyHealth::of(&sbom);
        // Roots are not counted; the purl-less root (the artifact itself) is skipped silently.
        assert_eq!(health.components, 1);
        assert_eq!((health.direct, health.transitive), (Some(1), Some(0)));
        assert_eq!((health.unidentified, health.unversioned), (0, 0));
        let sources: Vec<(&str, u64)> = health
            .sources
            .iter()
            .map(|s| (s.source.as_str(), s.components))
            .collect();
        assert_eq!(sources, [("pkg:generic", 1), ("pkg:npm", 1)]);
        assert_eq!(
            health.packages.get("pkg:generic/node"),
            Some(&vec!["16.20.2".to_owned()])
        );
        assert!(health.packages.contains_key("pkg:npm/left-pad"));
    }

    #[test]
    fn a_root_with_an_invalid_purl_is_unidentified() {
        let health = DependencyHealth::of(&sbom(
            true,
            vec![
                component("app", Some("1.0"), None, Some("application"), Some("root")),
                component("tool", Some("2.0"), Some("tool@2.0"), None, Some("root")),
                component(
                    "lib",
                    Some("1.0"),
                    Some("pkg:npm/lib@1.0"),
                    None,
                    Some("direct"),
                ),
            ],
        ));
        assert_eq!(health.components, 1);
        assert_eq!(health.unidentified, 1);
        assert_eq!(health.unidentifiable.len(), 1);
        assert_eq!(health.unidentifiable[0].component, "tool@2.0");
    }

    #[test]
    fn components_without_a_valid_purl_or_a_version_are_unidentifiable() {
        let health = DependencyHealth::of(&sbom(
            false,
            vec![
                component("vendored", Some("0.3"), None, Some("library"), None),
                component("mystery", None, Some("  "), None, None),
                component(
                    "bad-scheme",
                    Some("1.0"),
                    Some("npm/left-pad@1.3.0"),
                    None,
                    None,
                ),
                component(
                    "bad-namespace",
                    Some("1.0"),
                    Some("pkg:cargo/rust-lang/serde@1.0.200"),
                    None,
                    None,
                ),
                component("no-version", None, Some("pkg:pypi/requests"), None, None),
                component(
                    "component-version",
                    Some("2.31.0"),
                    Some("pkg:pypi/urllib3"),
                    None,
                    None,
                ),
                component(
                    "fine",
                    Some("1.3.0"),
                    Some("pkg:npm/left-pad@1.3.0"),
                    None,
                    None,
                ),
            ],
        ));
        assert_eq!(health.components, 7);
        assert_eq!((health.unidentified, health.unversioned), (4, 1));
        assert_eq!(
            health.unidentifiable,
            vec![
                unidentifiable("vendored@0.3", "no package URL"),
                unidentifiable("mystery", "no package URL"),
                unidentifiable("npm/left-pad@1.3.0", "invalid package URL: missing scheme"),
                unidentifiable(
                    "pkg:cargo/rust-lang/serde@1.0.200",
                    "invalid package URL: no namespace allowed for type \"cargo\""
                ),
                unidentifiable("pkg:pypi/requests", "no version"),
            ]
        );
        // The version of a component is its purl's, else its own.
        assert_eq!(
            health.packages.get("pkg:pypi/urllib3"),
            Some(&vec!["2.31.0".to_owned()])
        );
        assert_eq!(health.packages.get("pkg:pypi/requests"), Some(&Vec::new()));
    }

    #[test]
    fn at_most_twenty_unidentifiable_components_are_listed() {
        let components = (0..25)
            .map(|i| component(&format!("c{i}"), None, None, None, None))
            .collect();
        let health = DependencyHealth::of(&sbom(false, components));
        assert_eq!(health.unidentified, 25);
        assert_eq!(health.unidentifiable.len(), MAX_UNIDENTIFIABLE);
        assert_eq!(health.unidentifiable[19].component, "c19");
    }

    #[test]
    fn components_of_a_type_without_a_package_source_are_exempt_unless_they_name_a_purl() {
        let health = DependencyHealth::of(&sbom(
            false,
            vec![
                component("debian", Some("12"), None, Some("operating-system"), None),
                component("firmware.bin", None, None, Some("firmware"), None),
                component(
                    "model",
                    Some("1"),
                    Some("pkg:huggingface/acme/model@abc"),
                    Some("machine-learning-model"),
                    None,
                ),
                component("blob", None, Some("not a purl"), Some("file"), None),
                component(
                    "openssl",
                    Some("3.0.11"),
                    Some("pkg:deb/debian/openssl@3.0.11?arch=amd64&distro=debian-12"),
                    Some("library"),
                    None,
                ),
            ],
        ));
        assert_eq!(health.components, 5);
        // Only the two that name no package are exempt; the model's purl is source-checked and
        // the file's invalid purl is unidentified, as for any other type.
        assert_eq!(
            (health.exempt, health.unidentified, health.unversioned),
            (2, 1, 0)
        );
        assert_eq!(health.unidentifiable.len(), 1);
        assert_eq!(health.unidentifiable[0].component, "not a purl");
        assert!(
            health.unidentifiable[0]
                .reason
                .starts_with("invalid package URL"),
            "{:?}",
            health.unidentifiable[0]
        );
        let sources: Vec<&str> = health.sources.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(sources, ["pkg:deb/debian", "pkg:huggingface/acme"]);
        assert!(health.packages.contains_key("pkg:huggingface/acme/model"));
    }

    /// What trivy writes for an image: the OS, and one purl-less, version-less `application`
    /// per lock file or binary that only groups the packages found in it.
    fn trivy_image() -> serde_json::Value {
        serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "metadata": {"component": {
                "bom-ref": "pkg:oci/app@sha256%3Aabc?repository_url=ghcr.io%2Facme%2Fapp",
                "type": "container", "name": "ghcr.io/acme/app"}},
            "components": [
                {"bom-ref": "os", "type": "operating-system", "name": "alpine", "version": "3.20.3"},
                {"bom-ref": "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=3.20.3",
                 "type": "library", "name": "musl", "version": "1.2.5-r0",
                 "purl": "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=3.20.3"},
                {"bom-ref": "lock", "type": "application", "name": "app/package-lock.json"},
                {"bom-ref": "pkg:npm/ws@8.18.3", "type": "library", "name": "ws",
                 "version": "8.18.3", "purl": "pkg:npm/ws@8.18.3"},
                {"bom-ref": "bin", "type": "application", "name": "usr/local/bin/app"},
                {"bom-ref": "cobra", "type": "library", "name": "github.com/spf13/cobra",
                 "version": "v1.8.0"},
                {"bom-ref": "empty", "type": "application", "name": "usr/local/bin/empty"}
            ],
            "dependencies": [
                {"ref": "pkg:oci/app@sha256%3Aabc?repository_url=ghcr.io%2Facme%2Fapp",
                 "dependsOn": ["os", "lock", "bin", "empty"]},
                {"ref": "os", "dependsOn": ["pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=3.20.3"]},
                {"ref": "lock", "dependsOn": ["pkg:npm/ws@8.18.3"]},
                {"ref": "bin", "dependsOn": ["cobra", "cobra"]},
                {"ref": "empty", "dependsOn": ["somewhere-else"]}
            ]
        })
    }

    #[test]
    fn a_purl_less_version_less_component_that_groups_others_is_exempt() {
        let Ok(crate::facts::Facts::Sbom(sbom)) =
            crate::facts::derive_facts("https://cyclonedx.org/bom", &trivy_image())
        else {
            panic!("the CycloneDX document did not give SBOM facts");
        };
        let health = DependencyHealth::of(&sbom);
        assert_eq!(health.components, 7);
        // The OS (its type) and the lock file and binary that group packages are exempt; the
        // binary's package without a purl, and the application grouping nothing of the SBOM,
        // are still unidentified.
        assert_eq!(health.exempt, 3);
        assert_eq!(health.unidentified, 2);
        let unidentified: Vec<&str> = health
            .unidentifiable
            .iter()
            .map(|u| u.component.as_str())
            .collect();
        assert_eq!(
            unidentified,
            ["github.com/spf13/cobra@v1.8.0", "usr/local/bin/empty"]
        );
        let sources: Vec<&str> = health.sources.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(sources, ["pkg:apk/alpine", "pkg:npm"]);
    }

    #[test]
    fn sources_are_canonical_split_by_registry_and_sorted() {
        let health = DependencyHealth::of(&sbom(
            false,
            vec![
                component("a", None, Some("pkg:npm/a@1.0.0"), None, None),
                component(
                    "evil",
                    None,
                    Some("pkg:npm/evil@1.0.0?repository_url=https://npm.evil.example"),
                    None,
                    None,
                ),
                component(
                    "node",
                    None,
                    Some("pkg:NPM/%40types/node@20.1.0"),
                    None,
                    None,
                ),
                component("b", None, Some("pkg:npm/b@1.0.0"), None, None),
                component("c", None, Some("pkg:npm/c@1.0.0"), None, None),
                component("d", None, Some("pkg:npm/d@1.0.0"), None, None),
                component("serde", None, Some("pkg:cargo/serde@1.0.200"), None, None),
                component(
                    "gin",
                    None,
                    Some("pkg:golang/github.com/gin-gonic/gin@v1.9.1"),
                    None,
                    None,
                ),
                component(
                    "requests",
                    None,
                    Some("pkg:pypi/Requests@2.31.0"),
                    None,
                    None,
                ),
            ],
        ));
        let sources: Vec<(&str, Option<&str>, u64)> = health
            .sources
            .iter()
            .map(|s| (s.source.as_str(), s.repository_url.as_deref(), s.components))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("pkg:cargo", None, 1),
                ("pkg:golang/github.com/gin-gonic", None, 1),
                ("pkg:npm", None, 4),
                ("pkg:npm", Some("https://npm.evil.example"), 1),
                ("pkg:npm/%40types", None, 1),
                ("pkg:pypi", None, 1),
            ]
        );
        // The first three purls as written, in document order.
        assert_eq!(
            health.sources[2].examples,
            vec!["pkg:npm/a@1.0.0", "pkg:npm/b@1.0.0", "pkg:npm/c@1.0.0"]
        );
        let packages: Vec<&str> = health.packages.keys().map(String::as_str).collect();
        assert_eq!(
            packages,
            vec![
                "pkg:cargo/serde",
                "pkg:golang/github.com/gin-gonic/gin",
                "pkg:npm/%40types/node",
                "pkg:npm/a",
                "pkg:npm/b",
                "pkg:npm/c",
                "pkg:npm/d",
                "pkg:npm/evil",
                "pkg:pypi/requests",
            ]
        );
    }

    #[test]
    fn a_download_or_vcs_url_is_where_the_package_comes_from() {
        let purls = [
            "pkg:npm/a@1.0.0?download_url=https://Evil.Example/a.tgz",
            "pkg:npm/b@1.0.0?download_url=https://user:pw@npm.evil.example:8443/b.tgz",
            "pkg:npm/c@1.0.0?repository_url=https://npm.corp.example&download_url=https://evil.example/c.tgz",
            "pkg:generic/d@1.0.0?vcs_url=git%2Bhttps://github.com/acme/d.git%40v1",
            "pkg:generic/e@1.0.0?vcs_url=git@github.com:acme/e.git",
            "pkg:generic/f@1.0.0?download_url=evil.tgz",
            "pkg:generic/g@1.0.0?vcs_url=https://",
            "pkg:npm/h@1.0.0",
        ];
        let components = purls
            .iter()
            .map(|purl| component("x", None, Some(purl), None, None))
            .collect();
        let health = DependencyHealth::of(&sbom(false, components));
        let sources: Vec<(&str, Option<&str>, u64)> = health
            .sources
            .iter()
            .map(|s| (s.source.as_str(), s.repository_url.as_deref(), s.components))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("pkg:generic", Some("https://github.com"), 1),
                ("pkg:generic", Some("ssh://github.com"), 1),
                ("pkg:npm", None, 1),
                ("pkg:npm", Some("https://evil.example"), 1),
                ("pkg:npm", Some("https://npm.corp.example"), 1),
                ("pkg:npm", Some("https://npm.evil.example:8443"), 1),
            ]
        );
        assert_eq!(health.unidentified, 2);
        assert_eq!(
            health.unidentifiable,
            vec![
                unidentifiable(
                    "pkg:generic/f@1.0.0?download_url=evil.tgz",
                    "unreadable download_url: evil.tgz"
                ),
                unidentifiable(
                    "pkg:generic/g@1.0.0?vcs_url=https://",
                    "unreadable vcs_url: https://"
                ),
            ]
        );
    }

    #[test]
    fn packages_at_several_versions_are_duplicates() {
        let health = DependencyHealth::of(&sbom(
            false,
            vec![
                component("ms", None, Some("pkg:npm/ms@2.1.3"), None, None),
                component("ms", None, Some("pkg:npm/ms@2.0.0"), None, None),
                component("ms", None, Some("pkg:npm/ms@2.1.3"), None, None),
                component("debug", None, Some("pkg:npm/debug@2.6.9"), None, None),
                component("Django", None, Some("pkg:pypi/django@4.2.1"), None, None),
                component("django", Some("5.0"), Some("pkg:pypi/Django"), None, None),
            ],
        ));
        assert_eq!(
            health.duplicates,
            vec![
                Duplicate {
                    package: "pkg:npm/ms".to_owned(),
                    versions: vec!["2.0.0".to_owned(), "2.1.3".to_owned()],
                },
                Duplicate {
                    package: "pkg:pypi/django".to_owned(),
                    versions: vec!["4.2.1".to_owned(), "5.0".to_owned()],
                },
            ]
        );
        assert_eq!(
            health.packages.get("pkg:npm/debug"),
            Some(&vec!["2.6.9".to_owned()])
        );
    }

    #[test]
    fn the_summary_is_stored_as_json_and_read_back() {
        let health = DependencyHealth::of(&sbom(
            true,
            vec![component(
                "a",
                None,
                Some("pkg:npm/a@1.0.0"),
                None,
                Some("direct"),
            )],
        ));
        let stored = serde_json::to_value(&health).ok();
        assert_eq!(
            stored.as_ref().and_then(|v| v.get("direct")),
            Some(&serde_json::json!(1))
        );
        let read_back: Option<DependencyHealth> =
            stored.and_then(|v| serde_json::from_value(v).ok());
        assert_eq!(read_back, Some(health));
    }
}
