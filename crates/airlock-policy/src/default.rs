//! The default policy bundle, embedded from the repository's `policies/` directory so the
//! binary works without it.

use crate::Bundle;

/// Embeds `policies/<path>` under its bundle path.
macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        [$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/", $path)))),*]
    };
}

/// Every file of `policies/`; a test checks that the list matches the directory.
pub(crate) const FILES: [(&str, &str); 10] = embed![
    "data.json",
    "fixtures_test.rego",
    "lib.rego",
    "lib_test.rego",
    "prod.rego",
    "prod_test.rego",
    "rollback.rego",
    "rollback_test.rego",
    "staging.rego",
    "staging_test.rego",
];

/// The baseline policy shipped with airlock: gates `data.airlock.gates.staging` and
/// `data.airlock.gates.prod`, the rollback query `data.airlock.rollback`, their helpers
/// (`data.airlock.lib`), configuration (`data.airlock.config`) and tests. See
/// `docs/policy.md` for what each rule requires.
///
/// The crate's tests guarantee that it compiles and that its tests pass. Were it ever not to
/// compile, the bundle returned would fail every evaluation closed with the compile error
/// rather than panic.
pub fn default_bundle() -> Bundle {
    let files: Vec<(String, String)> = FILES
        .iter()
        .map(|(path, content)| ((*path).to_owned(), (*content).to_owned()))
        .collect();
    match Bundle::from_files(files.clone()) {
        Ok(bundle) => bundle,
        Err(err) => Bundle::unusable(
            files,
            format!("the built-in policy bundle is broken: {err}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule id the default bundle can produce, as written in its sources.
    fn rule_ids() -> std::collections::BTreeSet<String> {
        let mut ids = std::collections::BTreeSet::new();
        for (path, content) in FILES {
            if path.ends_with("_test.rego") || !path.ends_with(".rego") {
                continue;
            }
            for piece in content.split('"').skip(1).step_by(2) {
                let Some((scope, name)) = piece.split_once('.') else {
                    continue;
                };
                if ["common", "staging", "prod", "rollback"].contains(&scope)
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    ids.insert(piece.to_owned());
                }
            }
        }
        ids
    }

    #[test]
    fn every_rule_id_has_its_anchor_in_the_policy_docs() {
        let docs = include_str!("../../../docs/policy.md");
        let ids = rule_ids();
        assert!(ids.len() >= 20, "{ids:?}");
        for id in ids {
            let anchor = id.replace(['.', '_'], "-");
            assert!(
                docs.contains(&format!("<a id=\"{anchor}\"></a>")),
                "docs/policy.md has no anchor {anchor} for rule {id}"
            );
        }
        for anchor in ["fail-closed", "one-file-per-package"] {
            assert!(
                docs.contains(&format!("<a id=\"{anchor}\"></a>")),
                "{anchor}"
            );
        }
    }

    #[test]
    fn default_bundle_has_the_gates_and_its_input_version() {
        let bundle = default_bundle();
        let packages: Vec<&str> = bundle.packages().collect();
        for gate in [
            "data.airlock.gates.staging",
            "data.airlock.gates.prod",
            "data.airlock.rollback",
        ] {
            assert!(packages.contains(&gate), "{packages:?}");
        }
        let lib = FILES
            .iter()
            .find(|(path, _)| *path == "lib.rego")
            .map(|(_, c)| *c)
            .unwrap_or("");
        assert!(lib.contains(&format!(
            "supported_input_version := {}",
            crate::INPUT_VERSION
        )));
    }
}
