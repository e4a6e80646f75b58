//! What the approvals inbox shows of a promotion's decision: who asked and how, what the
//! verified evidence said, and what the gate concluded, read from the decision's stored input
//! and result (the exact documents the policy saw and returned).

use airlock_trust::facts::Facts;
use maud::{Markup, html};
use serde_json::Value;

/// A decision's input and result, summarised for an approver.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct DecisionSummary {
    /// Who requested it, and how they signed in.
    pub requester: Option<(String, String)>,
    /// The names of the keys whose signatures verified.
    pub signed_by: Vec<String>,
    /// Each verified provenance's builder and source repository.
    pub built_by: Vec<(String, Option<String>)>,
    /// The most critical and high findings of any verified scan, if any scan was verified.
    pub vulnerabilities: Option<(u64, u64)>,
    /// Distinct licenses over the verified SBOMs, if any SBOM was verified.
    pub licenses: Option<usize>,
    /// Each verified test result.
    pub tests: Vec<String>,
    /// Evidence that was presented and rejected.
    pub rejected: usize,
    /// The quarantine holding the artifact, if any.
    pub quarantine: Option<String>,
    /// The break-glass reason, if requested so.
    pub break_glass: Option<String>,
    /// Whether the gate allowed it, and the rules that warned.
    pub allowed: bool,
    /// Rule ids of the warnings.
    pub warnings: Vec<String>,
}

/// Summarises a stored decision's `input` and `result` documents; what is missing or of
/// another shape is left out rather than guessed.
pub(crate) fn summarise(input: &Value, result: &Value) -> DecisionSummary {
    let evidence = &input["evidence"];
    let items = |kind: &str| evidence[kind].as_array().cloned().unwrap_or_default();
    let facts = |kind: &str| -> Vec<Facts> {
        items(kind)
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect()
    };
    let text = |value: &Value| value.as_str().map(str::to_string);
    let scans = facts("vulnerabilities");
    let sboms = facts("sboms");
    DecisionSummary {
        requester: text(&input["requester"]["principal"]).map(|principal| {
            (
                principal,
                text(&input["requester"]["auth_method"]).unwrap_or_default(),
            )
        }),
        signed_by: items("signatures")
            .iter()
            .filter_map(|s| text(&s["key"]))
            .collect(),
        built_by: facts("provenance")
            .into_iter()
            .filter_map(|f| match f {
                Facts::Provenance(p) => Some((p.builder_id, p.source_repository)),
                _ => None,
            })
            .collect(),
        vulnerabilities: (!scans.is_empty()).then(|| {
            scans.iter().fold((0, 0), |(critical, high), f| match f {
                Facts::Vulnerabilities(v) => (
                    critical.max(v.counts.get("critical").copied().unwrap_or(0)),
                    high.max(v.counts.get("high").copied().unwrap_or(0)),
                ),
                _ => (critical, high),
            })
        }),
        licenses: (!sboms.is_empty()).then(|| {
            sboms
                .iter()
                .flat_map(|f| match f {
                    Facts::Sbom(s) => s.licenses.clone(),
                    _ => Vec::new(),
                })
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        }),
        tests: facts("tests")
            .into_iter()
            .filter_map(|f| match f {
                Facts::TestResult(t) => Some(format!(
                    "{} ({} passed, {} failed)",
                    t.result, t.passed, t.failed
                )),
                _ => None,
            })
            .collect(),
        rejected: items("rejected").len(),
        quarantine: text(&input["artifact"]["quarantine"]["reason"]),
        break_glass: text(&input["break_glass"]["reason"]),
        allowed: result["allowed"].as_bool().unwrap_or(false),
        warnings: result["warn"]
            .as_array()
            .map(|warns| warns.iter().filter_map(|w| text(&w["rule"])).collect())
            .unwrap_or_default(),
    }
}

/// The summary as the inbox shows it.
pub(crate) fn render(summary: &DecisionSummary) -> Markup {
    html! {
        dl class="facts" {
            @if let Some((principal, method)) = &summary.requester {
                dt { "Requested by" } dd { (principal) " (signed in with " (method) ")" }
            }
            dt { "Gate" } dd {
                @if summary.allowed { "allowed" } @else { strong { "denied" } }
                @if !summary.warnings.is_empty() {
                    ", with warnings: "
                    @for (i, rule) in summary.warnings.iter().enumerate() { @if i > 0 { ", " } code { (rule) } }
                }
            }
            dt { "Signed by" } dd {
                @if summary.signed_by.is_empty() { span class="muted" { "no verified signature" } }
                @else { (summary.signed_by.join(", ")) }
            }
            dt { "Built by" } dd {
                @if summary.built_by.is_empty() { span class="muted" { "no verified provenance" } }
                @for (i, (builder, source)) in summary.built_by.iter().enumerate() {
                    @if i > 0 { br; }
                    code { (builder) }
                    @if let Some(source) = source { " from " (source) }
                }
            }
            dt { "Vulnerabilities" } dd {
                @match summary.vulnerabilities {
                    Some((critical, high)) => { (critical) " critical, " (high) " high" }
                    None => { span class="muted" { "no verified scan" } }
                }
            }
            dt { "Licenses" } dd {
                @match summary.licenses {
                    Some(n) => { (n) " distinct" }
                    None => { span class="muted" { "no verified SBOM" } }
                }
            }
            dt { "Tests" } dd {
                @if summary.tests.is_empty() { span class="muted" { "no verified test result" } }
                @else { (summary.tests.join("; ")) }
            }
            @if summary.rejected > 0 {
                dt { "Rejected evidence" } dd { strong { (summary.rejected) } " item(s) did not verify" }
            }
            @if let Some(reason) = &summary.quarantine {
                dt { "Quarantined" } dd { strong { (reason) } }
            }
            @if let Some(reason) = &summary.break_glass {
                dt { "Break-glass" } dd { strong { (reason) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_decisions_input_is_summarised_from_its_verified_facts() {
        let input = json!({
            "requester": {"principal": "rita", "auth_method": "session"},
            "artifact": {"quarantine": null},
            "break_glass": {"requested": false, "reason": null},
            "evidence": {
                "signatures": [{"key": "ci"}, {"key": "release"}],
                "provenance": [{"kind": "provenance", "slsa_version": "v1", "builder_id": "https://builder", "build_type": "t", "source_repository": "https://github.com/acme/app", "commit": null, "key": "ci"}],
                "vulnerabilities": [
                    {"kind": "vulnerabilities", "scanner": "trivy", "counts": {"critical": 0, "high": 2, "medium": 1, "low": 0, "unknown": 0}, "findings": [], "key": "ci"},
                    {"kind": "vulnerabilities", "scanner": "grype", "counts": {"critical": 1, "high": 0, "medium": 0, "low": 0, "unknown": 0}, "findings": [], "key": "ci"}
                ],
                "sboms": [],
                "tests": [{"kind": "test_result", "result": "passed", "passed": 3, "warned": 0, "failed": 0, "url": null, "key": "ci"}],
                "rejected": [{"reason_code": "unknown_key"}]
            }
        });
        let result =
            json!({"allowed": true, "deny": [], "warn": [{"rule": "prod.scorecard_minimum"}]});
        let summary = summarise(&input, &result);
        assert_eq!(
            summary.requester,
            Some(("rita".to_string(), "session".to_string()))
        );
        assert_eq!(summary.signed_by, ["ci", "release"]);
        assert_eq!(
            summary.built_by,
            [(
                "https://builder".to_string(),
                Some("https://github.com/acme/app".to_string())
            )]
        );
        assert_eq!(summary.vulnerabilities, Some((1, 2)));
        assert_eq!(summary.licenses, None, "no SBOM is not zero licenses");
        assert_eq!(summary.tests, ["passed (3 passed, 0 failed)"]);
        assert_eq!(summary.rejected, 1);
        assert!(summary.allowed);
        assert_eq!(summary.warnings, ["prod.scorecard_minimum"]);
        // A document of another shape yields an empty summary, not a guess.
        assert_eq!(
            summarise(&json!("x"), &json!(null)),
            DecisionSummary::default()
        );
    }
}
