//! Where an SBOM's components sit in its dependency graph: root, direct or transitive.
//!
//! Both SBOM formats name their elements (CycloneDX `bom-ref`, SPDX `SPDXID`) and state edges
//! between the names; this module collects the edges of either format into one graph and walks
//! it breadth first from the roots, so that each component gets its shortest distance from a
//! root: 0 is `"root"`, 1 `"direct"`, more `"transitive"`. The walk visits each node once, so
//! cycles terminate, and the graph has at most [`MAX_RELATIONSHIPS`] edges. The same edges
//! also say how many other components each component needs directly, whether or not a root
//! reaches it ([`super::Component::dependencies`]).
//!
//! What counts as an edge "A needs B":
//!
//! - CycloneDX: `dependencies[].dependsOn` (`ref` needs each of `dependsOn`). The root is
//!   `metadata.component.bom-ref`; without it, or without a `dependencies` entry for it, the
//!   document states no graph from the root and no component is called direct or transitive
//!   (even if other entries connect components: which of them the artifact needs directly is not
//!   said, and is not guessed).
//! - SPDX 2.x: the roots are what the document describes (`documentDescribes`, `DESCRIBES` from
//!   the document, `DESCRIBED_BY` the document). Edges: `A DEPENDS_ON B`; `B DEPENDENCY_OF A`
//!   and its kinds `BUILD_`, `DEV_`, `OPTIONAL_`, `PROVIDED_`, `RUNTIME_`, `TEST_DEPENDENCY_OF`
//!   (all say "B is a dependency of A"; npm writes dev and optional dependencies so, and a
//!   component the SBOM lists is part of the artifact's dependencies whatever its kind); `B
//!   PREREQUISITE_FOR A` and `A HAS_PREREQUISITE B` (npm writes peer dependencies so); `A
//!   CONTAINS B` and `B CONTAINED_BY A` (syft has the described image or directory contain its
//!   packages). Other types (`DEPENDENCY_MANIFEST_OF`, which relates a manifest file, the link,
//!   tool, generation, variant and file relationships) say nothing about needing a package and
//!   are not read. Only edges between packages of the document count.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{FactsError, MAX_ITEMS};

/// The most edges (CycloneDX `dependsOn` entries, SPDX relationships) one SBOM may state.
pub const MAX_RELATIONSHIPS: usize = 10 * MAX_ITEMS;

/// A component's place in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Root,
    Direct,
    Transitive,
}

impl Place {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Direct => "direct",
            Self::Transitive => "transitive",
        }
    }
}

/// A directed graph over element names ("A needs B"), with roots.
#[derive(Debug, Default)]
pub(super) struct DependencyGraph<'a> {
    nodes: HashMap<&'a str, usize>,
    edges: Vec<Vec<usize>>,
    edge_count: usize,
    roots: Vec<usize>,
}

impl<'a> DependencyGraph<'a> {
    fn node(&mut self, name: &'a str) -> usize {
        let next = self.nodes.len();
        let node = *self.nodes.entry(name).or_insert(next);
        if node == next {
            self.edges.push(Vec::new());
        }
        node
    }

    /// Records that `from` needs `to`; more than [`MAX_RELATIONSHIPS`] edges are refused.
    pub(super) fn edge(
        &mut self,
        format: &'static str,
        from: &'a str,
        to: &'a str,
    ) -> Result<(), FactsError> {
        if self.edge_count >= MAX_RELATIONSHIPS {
            return Err(FactsError::TooMany {
                format,
                what: "relationships",
                limit: MAX_RELATIONSHIPS,
            });
        }
        self.edge_count += 1;
        let from = self.node(from);
        let to = self.node(to);
        self.edges[from].push(to);
        Ok(())
    }

    /// Makes `name` a root.
    pub(super) fn root(&mut self, name: &'a str) {
        let node = self.node(name);
        self.roots.push(node);
    }

    /// The place of every named element reachable from a root (breadth first, so the shortest
    /// distance decides; each node is visited once).
    pub(super) fn places(&self) -> HashMap<&'a str, Place> {
        let mut distance: Vec<Option<u8>> = vec![None; self.edges.len()];
        let mut queue = VecDeque::new();
        for &root in &self.roots {
            if distance[root].is_none() {
                distance[root] = Some(0);
                queue.push_back(root);
            }
        }
        while let Some(node) = queue.pop_front() {
            let next = distance[node].map_or(2, |d| d.saturating_add(1).min(2));
            for &to in &self.edges[node] {
                if distance[to].is_none() {
                    distance[to] = Some(next);
                    queue.push_back(to);
                }
            }
        }
        self.nodes
            .iter()
            .filter_map(|(name, &node)| {
                let place = match distance[node]? {
                    0 => Place::Root,
                    1 => Place::Direct,
                    _ => Place::Transitive,
                };
                Some((*name, place))
            })
            .collect()
    }
}

impl<'a> DependencyGraph<'a> {
    /// For each element of `components` that needs others: how many distinct other elements
    /// of `components` it needs directly (its edges to names that are no component, or to
    /// itself, are not counted).
    pub(super) fn dependency_counts(&self, components: &HashSet<&str>) -> HashMap<&'a str, u64> {
        let mut names = vec![""; self.edges.len()];
        for (name, &node) in &self.nodes {
            names[node] = name;
        }
        let is_component: Vec<bool> = names.iter().map(|name| components.contains(name)).collect();
        let mut counts = HashMap::new();
        for (node, targets) in self.edges.iter().enumerate() {
            if !is_component[node] || targets.is_empty() {
                continue;
            }
            let mut needed: Vec<usize> = targets
                .iter()
                .copied()
                .filter(|&to| to != node && is_component[to])
                .collect();
            needed.sort_unstable();
            needed.dedup();
            if !needed.is_empty() {
                counts.insert(names[node], needed.len() as u64);
            }
        }
        counts
    }
}

/// How an SPDX relationship type reads as an edge, if it is one (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpdxEdge {
    /// `A TYPE B`: A needs B.
    Forward,
    /// `A TYPE B`: B needs A.
    Backward,
}

impl SpdxEdge {
    pub(super) fn of(relationship_type: &str) -> Option<Self> {
        match relationship_type {
            "DEPENDS_ON" | "HAS_PREREQUISITE" | "CONTAINS" => Some(Self::Forward),
            "DEPENDENCY_OF"
            | "BUILD_DEPENDENCY_OF"
            | "DEV_DEPENDENCY_OF"
            | "OPTIONAL_DEPENDENCY_OF"
            | "PROVIDED_DEPENDENCY_OF"
            | "RUNTIME_DEPENDENCY_OF"
            | "TEST_DEPENDENCY_OF"
            | "PREREQUISITE_FOR"
            | "CONTAINED_BY" => Some(Self::Backward),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Component, Facts, Sbom, derive_facts};
    use super::MAX_RELATIONSHIPS;

    const CYCLONEDX: &str = "https://cyclonedx.org/bom";
    const SPDX: &str = "https://spdx.dev/Document";

    fn read_sbom(predicate_type: &str, predicate: &Value) -> Sbom {
        match derive_facts(predicate_type, predicate) {
            Ok(Facts::Sbom(sbom)) => sbom,
            other => panic!("expected an SBOM, got {other:?}"),
        }
    }

    fn refusal(predicate_type: &str, predicate: &Value) -> String {
        match derive_facts(predicate_type, predicate) {
            Err(error) => error.to_string(),
            Ok(facts) => panic!("expected an error, got {facts:?}"),
        }
    }

    /// Each component's name and relationship.
    fn places(sbom: &Sbom) -> Vec<(&str, Option<&str>)> {
        sbom.components
            .iter()
            .map(|component| (component.name.as_str(), component.relationship.as_deref()))
            .collect()
    }

    /// app -> web -> {http, log}; http -> log; log -> web (a cycle); orphan unconnected.
    fn cyclonedx_graph() -> Value {
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "metadata": {"component": {"bom-ref": "app", "type": "application", "name": "app"}},
            "components": [
                {"bom-ref": "web", "type": "library", "name": "web", "version": "1.0.0", "purl": "pkg:npm/web@1.0.0"},
                {"bom-ref": "http", "type": "library", "name": "http", "version": "2.0.0", "purl": "pkg:npm/http@2.0.0"},
                {"bom-ref": "log", "type": "framework", "name": "log", "version": "3.0.0", "purl": "pkg:npm/log@3.0.0"},
                {"bom-ref": "orphan", "name": "orphan"},
                {"bom-ref": "app", "type": "application", "name": "app"}
            ],
            "dependencies": [
                {"ref": "app", "dependsOn": ["web"]},
                {"ref": "web", "dependsOn": ["http", "log"]},
                {"ref": "http", "dependsOn": ["log"]},
                {"ref": "log", "dependsOn": ["web", "elsewhere"]},
                {"ref": "orphan"}
            ]
        })
    }

    #[test]
    fn cyclonedx_places_components_from_the_metadata_component_and_survives_cycles() {
        let sbom = read_sbom(CYCLONEDX, &cyclonedx_graph());
        assert!(sbom.dependency_graph);
        assert_eq!(
            places(&sbom),
            vec![
                ("web", Some("direct")),
                ("http", Some("transitive")),
                ("log", Some("transitive")),
                ("orphan", None),
                ("app", Some("root")),
            ]
        );
        // Distinct components each depends on; `elsewhere` is no component.
        let needs: Vec<u64> = sbom.components.iter().map(|c| c.dependencies).collect();
        assert_eq!(needs, vec![2, 1, 1, 0, 1]);
        let types: Vec<Option<&str>> = sbom
            .components
            .iter()
            .map(|component| component.component_type.as_deref())
            .collect();
        assert_eq!(
            types,
            vec![
                Some("library"),
                Some("library"),
                Some("framework"),
                None,
                Some("application")
            ]
        );
    }

    #[test]
    fn cyclonedx_without_a_stated_root_says_nothing_about_direct_or_transitive() {
        // No bom-ref on the metadata component: the other entries still connect components,
        // but which are direct is not said.
        let mut predicate = cyclonedx_graph();
        predicate["metadata"]["component"] = json!({"type": "application", "name": "app"});
        let sbom = read_sbom(CYCLONEDX, &predicate);
        assert!(!sbom.dependency_graph);
        assert!(sbom.components.iter().all(|c| c.relationship.is_none()));

        // A root without a dependencies entry: it is the root, nothing is below it.
        let mut predicate = cyclonedx_graph();
        predicate["dependencies"]
            .as_array_mut()
            .map(|entries| entries.remove(0));
        let sbom = read_sbom(CYCLONEDX, &predicate);
        assert!(!sbom.dependency_graph);
        assert_eq!(
            places(&sbom),
            vec![
                ("web", None),
                ("http", None),
                ("log", None),
                ("orphan", None),
                ("app", Some("root")),
            ]
        );

        // A root stated to depend on nothing: nothing is connected either.
        let mut predicate = cyclonedx_graph();
        predicate["dependencies"][0]["dependsOn"] = json!([]);
        let sbom = read_sbom(CYCLONEDX, &predicate);
        assert!(!sbom.dependency_graph);

        // No metadata and no dependencies at all.
        let mut predicate = cyclonedx_graph();
        if let Some(object) = predicate.as_object_mut() {
            object.remove("metadata");
            object.remove("dependencies");
        }
        let sbom = read_sbom(CYCLONEDX, &predicate);
        assert!(!sbom.dependency_graph);
        assert!(sbom.components.iter().all(|c| c.relationship.is_none()));
    }

    #[test]
    fn malformed_cyclonedx_graphs_are_refused_by_path() {
        let cases: [(&str, Value, &str); 7] = [
            (
                "/dependencies",
                json!({"ref": "app"}),
                "field dependencies is not an array",
            ),
            (
                "/dependencies/1",
                json!("web"),
                "field dependencies[1] is not an object",
            ),
            (
                "/dependencies/2/ref",
                json!(null),
                "has no dependencies[2].ref",
            ),
            (
                "/dependencies/0/dependsOn",
                json!("web"),
                "field dependencies[0].dependsOn is not an array",
            ),
            (
                "/dependencies/1/dependsOn/1",
                json!({"ref": "log"}),
                "field dependencies[1].dependsOn[1] is not a string",
            ),
            (
                "/metadata/component",
                json!("app"),
                "field metadata.component is not an object",
            ),
            (
                "/components/2/type",
                json!(["library"]),
                "field components[2].type is not a string",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut predicate = cyclonedx_graph();
            if let Some(slot) = predicate.pointer_mut(pointer) {
                *slot = value;
            }
            assert_eq!(
                refusal(CYCLONEDX, &predicate),
                format!("CycloneDX BOM {expected}"),
                "at {pointer}"
            );
        }
        let mut predicate = cyclonedx_graph();
        predicate["components"][0]["bom-ref"] = json!(1);
        assert_eq!(
            refusal(CYCLONEDX, &predicate),
            "CycloneDX BOM field components[0].bom-ref is not a string"
        );
    }

    #[test]
    fn more_relationships_than_the_limit_are_refused() {
        let mut predicate = cyclonedx_graph();
        predicate["dependencies"][1]["dependsOn"] =
            Value::Array(vec![json!("http"); MAX_RELATIONSHIPS]);
        assert_eq!(
            refusal(CYCLONEDX, &predicate),
            format!("CycloneDX BOM has more than {MAX_RELATIONSHIPS} relationships")
        );
    }

    fn package(id: &str, name: &str, extra: Value) -> Value {
        let mut package = json!({"SPDXID": id, "name": name, "downloadLocation": "NOASSERTION"});
        if let (Some(package), Value::Object(extra)) = (package.as_object_mut(), extra) {
            package.extend(extra);
        }
        package
    }

    fn relationship(element: &str, kind: &str, related: &str) -> Value {
        json!({"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related})
    }

    /// The document describes `image` (syft's way: it CONTAINS its packages) and `app` (npm's
    /// way: dependencies are DEPENDENCY_OF their dependants).
    fn spdx_graph() -> Value {
        json!({
            "spdxVersion": "SPDX-2.3",
            "SPDXID": "SPDXRef-DOCUMENT",
            "documentDescribes": ["SPDXRef-image"],
            "packages": [
                package("SPDXRef-image", "registry.example.com/app", json!({"primaryPackagePurpose": "CONTAINER"})),
                package("SPDXRef-os", "debian", json!({"primaryPackagePurpose": "OPERATING_SYSTEM", "versionInfo": "12"})),
                package("SPDXRef-app", "app", json!({"primaryPackagePurpose": "APPLICATION"})),
                package("SPDXRef-express", "express", json!({"primaryPackagePurpose": "LIBRARY"})),
                package("SPDXRef-debug", "debug", json!({})),
                package("SPDXRef-ms", "ms", json!({})),
                package("SPDXRef-peer", "peer", json!({})),
                package("SPDXRef-dev", "dev", json!({})),
                package("SPDXRef-tool", "tool", json!({})),
                package("SPDXRef-orphan", "orphan", json!({}))
            ],
            "files": [{"SPDXID": "SPDXRef-file", "fileName": "./package.json"}],
            "relationships": [
                relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image"),
                relationship("SPDXRef-app", "DESCRIBED_BY", "SPDXRef-DOCUMENT"),
                relationship("SPDXRef-image", "CONTAINS", "SPDXRef-os"),
                relationship("SPDXRef-express", "DEPENDENCY_OF", "SPDXRef-app"),
                relationship("SPDXRef-express", "DEPENDS_ON", "SPDXRef-debug"),
                relationship("SPDXRef-debug", "DEPENDS_ON", "SPDXRef-ms"),
                relationship("SPDXRef-ms", "DEPENDS_ON", "SPDXRef-debug"),
                relationship("SPDXRef-peer", "PREREQUISITE_FOR", "SPDXRef-ms"),
                relationship("SPDXRef-dev", "DEV_DEPENDENCY_OF", "SPDXRef-app"),
                relationship("SPDXRef-tool", "BUILD_TOOL_OF", "SPDXRef-app"),
                relationship("SPDXRef-file", "DEPENDENCY_MANIFEST_OF", "SPDXRef-orphan"),
                relationship("SPDXRef-app", "DEPENDS_ON", "SPDXRef-file")
            ]
        })
    }

    #[test]
    fn spdx_places_packages_from_what_the_document_describes() {
        let sbom = read_sbom(SPDX, &spdx_graph());
        assert!(sbom.dependency_graph);
        assert_eq!(
            places(&sbom),
            vec![
                ("registry.example.com/app", Some("root")),
                ("debian", Some("direct")),
                ("app", Some("root")),
                ("express", Some("direct")),
                ("debug", Some("transitive")),
                ("ms", Some("transitive")),
                ("peer", Some("transitive")),
                ("dev", Some("direct")),
                ("tool", None),
                ("orphan", None),
            ]
        );
        // How many packages each needs directly (only edges between packages count).
        let needs: Vec<(&str, u64)> = sbom
            .components
            .iter()
            .map(|component| (component.name.as_str(), component.dependencies))
            .collect();
        assert_eq!(
            needs,
            vec![
                ("registry.example.com/app", 1),
                ("debian", 0),
                ("app", 2),
                ("express", 1),
                ("debug", 1),
                ("ms", 2),
                ("peer", 0),
                ("dev", 0),
                ("tool", 0),
                ("orphan", 0),
            ]
        );
        let purposes: Vec<Option<&str>> = sbom
            .components
            .iter()
            .take(4)
            .map(|component| component.component_type.as_deref())
            .collect();
        assert_eq!(
            purposes,
            vec![
                Some("container"),
                Some("operating-system"),
                Some("application"),
                Some("library")
            ]
        );
    }

    #[test]
    fn spdx_without_anything_described_states_no_graph() {
        let mut predicate = spdx_graph();
        if let Some(object) = predicate.as_object_mut() {
            object.remove("documentDescribes");
        }
        predicate["relationships"]
            .as_array_mut()
            .map(|relationships| relationships.drain(..2).count());
        let sbom = read_sbom(SPDX, &predicate);
        assert!(!sbom.dependency_graph);
        assert!(sbom.components.iter().all(|c| c.relationship.is_none()));
    }

    #[test]
    fn malformed_spdx_graphs_are_refused_by_path() {
        let cases: [(&str, Value, &str); 7] = [
            (
                "/documentDescribes",
                json!("SPDXRef-image"),
                "field documentDescribes is not an array",
            ),
            (
                "/documentDescribes/0",
                json!(1),
                "field documentDescribes[0] is not a string",
            ),
            (
                "/relationships",
                json!({}),
                "field relationships is not an array",
            ),
            (
                "/relationships/3",
                json!([]),
                "field relationships[3] is not an object",
            ),
            (
                "/relationships/4/relationshipType",
                json!(null),
                "has no relationships[4].relationshipType",
            ),
            (
                "/relationships/5/relatedSpdxElement",
                json!(5),
                "field relationships[5].relatedSpdxElement is not a string",
            ),
            (
                "/packages/2/primaryPackagePurpose",
                json!(true),
                "field packages[2].primaryPackagePurpose is not a string",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut predicate = spdx_graph();
            if let Some(slot) = predicate.pointer_mut(pointer) {
                *slot = value;
            }
            assert_eq!(
                refusal(SPDX, &predicate),
                format!("SPDX document {expected}"),
                "at {pointer}"
            );
        }
        let mut predicate = spdx_graph();
        predicate["packages"][0]["SPDXID"] = json!(["SPDXRef-image"]);
        assert_eq!(
            refusal(SPDX, &predicate),
            "SPDX document field packages[0].SPDXID is not a string"
        );
    }

    #[test]
    fn sboms_stored_before_the_graph_was_read_still_deserialise() {
        let stored = json!({
            "kind": "sbom",
            "format": "cyclonedx",
            "spec_version": "1.5",
            "components": [
                {"name": "left-pad", "version": "1.3.0", "purl": "pkg:npm/left-pad@1.3.0", "license": "MIT"}
            ],
            "licenses": ["MIT"],
            "invalid_licenses": []
        });
        let Ok(Facts::Sbom(read)) = serde_json::from_value::<Facts>(stored) else {
            panic!("old SBOM facts did not deserialise");
        };
        assert!(!read.dependency_graph);
        assert_eq!(
            read.components,
            vec![Component {
                name: "left-pad".to_owned(),
                version: Some("1.3.0".to_owned()),
                purl: Some("pkg:npm/left-pad@1.3.0".to_owned()),
                license: Some("MIT".to_owned()),
                component_type: None,
                relationship: None,
                dependencies: 0,
            }]
        );
    }
}
