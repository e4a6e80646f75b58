//! Facts and dependency health from real documents: a CycloneDX and an SPDX SBOM that npm wrote
//! for a project depending on Express 4.21.2, and a Scorecard result the scorecard action
//! published (fixtures/ORIGIN.md says where each comes from). The expected values were read off
//! the documents with `jq`/`python3` and `npm ls`, not off airlock's output.

use airlock_trust::dependencies::{DependencyHealth, DependencySource, Duplicate};
use airlock_trust::facts::{Facts, Sbom, Scorecard, derive_facts};
use serde_json::Value;

const CYCLONEDX: &str = include_str!("fixtures/express-4.21.2.cdx.json");
const SPDX: &str = include_str!("fixtures/express-4.21.2.spdx.json");
const SCORECARD: &str = include_str!("fixtures/ossf-tests-scorecard-action.scorecard.json");

fn document(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => panic!("fixture is not JSON: {error}"),
    }
}

fn sbom(predicate_type: &str, text: &str) -> Sbom {
    match derive_facts(predicate_type, &document(text)) {
        Ok(Facts::Sbom(sbom)) => sbom,
        other => panic!("expected an SBOM, got {other:?}"),
    }
}

/// The names of the components with this relationship.
fn related<'a>(sbom: &'a Sbom, relationship: &str) -> Vec<&'a str> {
    sbom.components
        .iter()
        .filter(|component| component.relationship.as_deref() == Some(relationship))
        .map(|component| component.name.as_str())
        .collect()
}

/// What both SBOMs of the project say: 72 npm packages below the project, `express` the only
/// direct one (package.json), `ms` and `encodeurl` at two versions each. `root_purl` is the
/// project's own purl when the SBOM lists the project as a component (SPDX describes it): a root
/// with a purl is not counted but is source-checked and listed among the packages.
fn assert_express_dependency_health(
    health: &DependencyHealth,
    root_purl: Option<&str>,
    first_purls: [&str; 3],
) {
    let root = u64::from(root_purl.is_some());
    if let Some((package, version)) = root_purl.and_then(|purl| purl.split_once('@')) {
        assert_eq!(
            health.packages.get(package),
            Some(&vec![version.to_owned()])
        );
    }
    assert_eq!(health.components, 72);
    assert_eq!(health.direct, Some(1));
    assert_eq!(health.transitive, Some(71));
    assert_eq!(
        (health.exempt, health.unidentified, health.unversioned),
        (0, 0, 0)
    );
    assert!(health.unidentifiable.is_empty());
    assert_eq!(
        health.sources,
        vec![DependencySource {
            source: "pkg:npm".to_owned(),
            repository_url: None,
            components: 72 + root,
            examples: first_purls.map(str::to_owned).to_vec(),
        }]
    );
    assert_eq!(health.packages.len(), 70 + root as usize);
    assert_eq!(
        health.packages.get("pkg:npm/express"),
        Some(&vec!["4.21.2".to_owned()])
    );
    assert_eq!(
        health.duplicates,
        vec![
            Duplicate {
                package: "pkg:npm/encodeurl".to_owned(),
                versions: vec!["1.0.4".to_owned(), "2.0.3".to_owned()],
            },
            Duplicate {
                package: "pkg:npm/ms".to_owned(),
                versions: vec!["2.0.0".to_owned(), "2.1.3".to_owned()],
            },
        ]
    );
}

#[test]
fn npm_cyclonedx_sbom_of_an_express_project() {
    let sbom = sbom("https://cyclonedx.org/bom", CYCLONEDX);
    assert_eq!(
        (sbom.format.as_str(), sbom.spec_version.as_str()),
        ("cyclonedx", "1.5")
    );
    // The project itself is metadata.component, not one of the 72 components.
    assert_eq!(sbom.components.len(), 72);
    assert!(related(&sbom, "root").is_empty());
    assert!(sbom.dependency_graph);
    assert_eq!(related(&sbom, "direct"), vec!["express"]);
    assert_eq!(related(&sbom, "transitive").len(), 71);
    assert!(
        sbom.components
            .iter()
            .all(|component| component.component_type.as_deref() == Some("library"))
    );
    let ms: Vec<_> = sbom
        .components
        .iter()
        .filter(|component| component.name == "ms")
        .map(|component| (component.purl.as_deref(), component.relationship.as_deref()))
        .collect();
    assert_eq!(
        ms,
        vec![
            (Some("pkg:npm/ms@2.0.0"), Some("transitive")),
            (Some("pkg:npm/ms@2.1.3"), Some("transitive"))
        ]
    );
    assert_eq!(sbom.licenses, vec!["BSD-3-Clause", "ISC", "MIT"]);
    assert!(sbom.invalid_licenses.is_empty());

    assert_express_dependency_health(
        &DependencyHealth::of(&sbom),
        None,
        [
            "pkg:npm/accepts@1.3.8",
            "pkg:npm/array-flatten@1.1.1",
            "pkg:npm/async-function@1.0.0",
        ],
    );
}

#[test]
fn npm_spdx_sbom_of_an_express_project() {
    let sbom = sbom("https://spdx.dev/Document", SPDX);
    assert_eq!(
        (sbom.format.as_str(), sbom.spec_version.as_str()),
        ("spdx", "2.3")
    );
    // The project is the first of 73 packages, the one the document describes.
    assert_eq!(sbom.components.len(), 73);
    assert_eq!(related(&sbom, "root"), vec!["sbom-express"]);
    assert_eq!(
        sbom.components[0].component_type.as_deref(),
        Some("library")
    );
    assert!(
        sbom.components[1..]
            .iter()
            .all(|component| component.component_type.is_none())
    );
    assert!(sbom.dependency_graph);
    assert_eq!(related(&sbom, "direct"), vec!["express"]);
    assert_eq!(related(&sbom, "transitive").len(), 71);
    assert_eq!(sbom.licenses, vec!["BSD-3-Clause", "ISC", "MIT"]);

    assert_express_dependency_health(
        &DependencyHealth::of(&sbom),
        Some("pkg:npm/sbom-express@1.0.0"),
        [
            "pkg:npm/sbom-express@1.0.0",
            "pkg:npm/accepts@1.3.8",
            "pkg:npm/array-flatten@1.1.1",
        ],
    );
}

#[test]
fn scorecard_action_result() {
    let expected_checks = [
        ("Binary-Artifacts", 10),
        ("Branch-Protection", 0),
        ("CI-Tests", -1),
        ("CII-Best-Practices", 0),
        ("Code-Review", 0),
        ("Contributors", 10),
        ("Dangerous-Workflow", 10),
        ("Dependency-Update-Tool", 10),
        ("Fuzzing", 0),
        ("License", 0),
        ("Maintained", 10),
        ("Packaging", -1),
        ("Pinned-Dependencies", 8),
        ("SAST", 0),
        ("Security-Policy", 0),
        ("Signed-Releases", -1),
        ("Token-Permissions", 0),
        ("Vulnerabilities", 10),
        ("Webhooks", -1),
    ];
    let expected = Scorecard {
        repository: Some("github.com/ossf-tests/scorecard-action".to_owned()),
        commit: Some("f76817e2accba1ada9bb77339e2d226c192eb120".to_owned()),
        date: "2022-07-14".to_owned(),
        scorecard_version: Some("v4.3.1".to_owned()),
        score: 5.2,
        checks: expected_checks
            .into_iter()
            .map(|(name, score)| (name.to_owned(), score))
            .collect(),
    };
    // As `scorecard --format=json` writes it, under the in-toto predicate type.
    assert_eq!(
        derive_facts("https://scorecard.dev/result/v0.1", &document(SCORECARD)),
        Ok(Facts::Scorecard(expected.clone()))
    );
    // Recognised by its content under a type of the attester's choosing.
    assert_eq!(
        derive_facts("https://example.com/scorecard", &document(SCORECARD)),
        Ok(Facts::Scorecard(expected.clone()))
    );
    // The in-toto form: the same without `repo`.
    let mut in_toto = document(SCORECARD);
    if let Some(object) = in_toto.as_object_mut() {
        object.remove("repo");
    }
    assert_eq!(
        derive_facts("https://scorecard.dev/result/v0.1", &in_toto),
        Ok(Facts::Scorecard(Scorecard {
            repository: None,
            commit: None,
            ..expected
        }))
    );
}
