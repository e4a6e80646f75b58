//! Evaluating a gate: the output contract of a policy package, and failing closed.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{LimitError, Value};
use serde::{Deserialize, Serialize};

use crate::Bundle;

/// How long one evaluation may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The rule id of the violation a failed evaluation denies with.
pub const POLICY_ERROR_RULE: &str = "airlock.policy_error";

/// Where the fail-closed behaviour is documented.
const POLICY_ERROR_DOCS: &str = "docs/policy.md#fail-closed";

/// What the fail-closed violation tells the operator to do.
const POLICY_ERROR_REMEDIATION: &str = "fix the policy bundle: run airlock policy test on it and \
     airlock policy eval --input input.json to reproduce this decision, then install the fixed \
     bundle";

/// How many units of interpreter work pass between two looks at the clock.
const TIMER_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::MIN.saturating_add(31);

/// One reason a policy denies (or warns about) a promotion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// A stable id, e.g. `prod.high_vulnerabilities`.
    pub rule: String,
    /// What is wrong, specifically (names the key, CVE ids, license...).
    pub msg: String,
    /// What to do about it.
    pub remediation: String,
    /// A link to the rule's documentation, e.g. `docs/policy.md#prod-high-vulnerabilities`.
    #[serde(default)]
    pub docs: Option<String>,
}

/// The outcome of evaluating a policy query for one promotion input.
///
/// Deterministic: the same bundle, query and input give the same decision, violations in the
/// same order (by rule, then message), so a stored decision can be replayed and compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// True iff there is no deny violation (and so no error).
    pub allowed: bool,
    /// Why the promotion is refused; empty when allowed.
    pub deny: Vec<Violation>,
    /// What is worth knowing but does not block.
    pub warn: Vec<Violation>,
    /// How many approvals the policy requires, if it says (it may raise the configured
    /// number, never lower it: that is the caller's rule).
    pub approvals: Option<u32>,
    /// Why the policy could not be evaluated, if it could not; then `deny` holds one
    /// [`POLICY_ERROR_RULE`] violation saying the same.
    pub error: Option<String>,
}

impl Decision {
    /// The decision for a policy that could not be evaluated: not allowed, with one
    /// [`POLICY_ERROR_RULE`] violation carrying `error`. Callers that cannot even build the
    /// input can use it too, so every refusal has the same shape.
    pub fn fail_closed(error: impl Into<String>) -> Decision {
        let error = error.into();
        Decision {
            allowed: false,
            deny: vec![Violation {
                rule: POLICY_ERROR_RULE.to_owned(),
                msg: error.clone(),
                remediation: POLICY_ERROR_REMEDIATION.to_owned(),
                docs: Some(POLICY_ERROR_DOCS.to_owned()),
            }],
            warn: Vec::new(),
            approvals: None,
            error: Some(error),
        }
    }
}

impl Bundle {
    /// Evaluates `query` (a package path such as `data.airlock.gates.staging`) for `input`,
    /// the promotion input document (see `docs/policy.md`), within `timeout`.
    ///
    /// Never fails: anything short of a well-formed result is a denial (see
    /// [`Decision::fail_closed`]). The query's value must be an object whose only keys are
    /// `deny` and `warn` (sets or arrays of violation objects with string `rule`, `msg` and
    /// `remediation` and an optional string `docs`) and `approvals` (a non-negative integer);
    /// an undefined value, another key, a malformed violation, an evaluation error or running
    /// out of time all fail closed.
    ///
    /// The time limit is regorus' cooperative execution timer, checked as the interpreter
    /// works, so a runaway policy stops itself on the calling thread. A single built-in call
    /// is not interrupted; should one overrun, the decision still fails closed when it
    /// returns. Evaluation is synchronous and CPU-bound (well under a millisecond for the
    /// default bundle); async callers may run it on a blocking thread.
    pub fn evaluate(&self, query: &str, input: &serde_json::Value, timeout: Duration) -> Decision {
        let started = Instant::now();
        let outcome = self.evaluate_checked(query, input, timeout);
        let elapsed = started.elapsed();
        match outcome {
            Ok(_) if elapsed > timeout => Decision::fail_closed(timeout_message(query, timeout)),
            Ok(GateResult {
                deny,
                warn,
                approvals,
            }) => Decision {
                allowed: deny.is_empty(),
                deny,
                warn,
                approvals,
                error: None,
            },
            Err(error) => Decision::fail_closed(error),
        }
    }

    fn evaluate_checked(
        &self,
        query: &str,
        input: &serde_json::Value,
        timeout: Duration,
    ) -> Result<GateResult, String> {
        if let Some(reason) = &self.unusable {
            return Err(reason.clone());
        }
        let package = package_of(query)?;
        let input = serde::Deserialize::deserialize(input)
            .map_err(|err: serde_json::Error| format!("the input is not a JSON document: {err}"))?;

        let mut engine = self.engine.clone();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: timeout,
            check_interval: TIMER_CHECK_INTERVAL,
        });
        engine.set_input(input);
        let results = engine
            .eval_query(query.to_owned(), false)
            .map_err(|err| match err.downcast_ref::<LimitError>() {
                Some(LimitError::TimeLimitExceeded { .. }) => timeout_message(query, timeout),
                _ => format!("evaluating {query} failed: {err}"),
            })?;

        let value = results
            .result
            .into_iter()
            .next()
            .and_then(|result| result.expressions.into_iter().next())
            .map(|expression| expression.value)
            .filter(|value| *value != Value::Undefined);
        let Some(value) = value else {
            return Err(if self.packages.contains(query) {
                format!("the policy at {query} is undefined")
            } else {
                format!("no policy at {query}: the bundle has no package {package}")
            });
        };
        read_result(query, &value)
    }
}

/// A gate's result that met the output contract.
struct GateResult {
    deny: Vec<Violation>,
    warn: Vec<Violation>,
    approvals: Option<u32>,
}

fn timeout_message(query: &str, timeout: Duration) -> String {
    format!(
        "evaluating {query} took longer than the {} ms allowed",
        timeout.as_millis()
    )
}

/// The package named by a query of the form `data.<identifier>(.<identifier>)*`; anything else
/// is refused rather than evaluated.
fn package_of(query: &str) -> Result<&str, String> {
    let invalid = || {
        format!(
            "invalid policy query {query:?}: expected a package path such as data.airlock.gates.prod"
        )
    };
    let package = query.strip_prefix("data.").ok_or_else(invalid)?;
    let identifier = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if package.split('.').all(identifier) {
        Ok(package)
    } else {
        Err(invalid())
    }
}

/// Checks the package document against the output contract and reads it.
fn read_result(query: &str, value: &Value) -> Result<GateResult, String> {
    let json = serde_json::to_value(value)
        .map_err(|err| format!("the result of {query} is not JSON: {err}"))?;
    let serde_json::Value::Object(fields) = json else {
        return Err(format!(
            "the result of {query} is {}, not an object with deny, warn and approvals",
            kind(&json)
        ));
    };
    let mut deny = Vec::new();
    let mut warn = Vec::new();
    let mut approvals = None;
    for (key, field) in &fields {
        match key.as_str() {
            "deny" => deny = read_violations(query, key, field)?,
            "warn" => warn = read_violations(query, key, field)?,
            "approvals" => {
                let count = field
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(
                            "{query}.approvals is {field}, not a non-negative integer of at most {}",
                            u32::MAX
                        )
                    })?;
                approvals = Some(count);
            }
            other => {
                return Err(format!(
                    "unknown field {other:?} in the result of {query}: a gate package may only \
                     define deny, warn and approvals (move helper rules to another package)"
                ));
            }
        }
    }
    Ok(GateResult {
        deny,
        warn,
        approvals,
    })
}

fn read_violations(
    query: &str,
    key: &str,
    field: &serde_json::Value,
) -> Result<Vec<Violation>, String> {
    let serde_json::Value::Array(items) = field else {
        return Err(format!(
            "{query}.{key} is {}, not a set of violations",
            kind(field)
        ));
    };
    let mut violations = items
        .iter()
        .map(|item| read_violation(item).map_err(|why| format!("{query}.{key} has {item}: {why}")))
        .collect::<Result<Vec<_>, _>>()?;
    violations.sort();
    violations.dedup();
    Ok(violations)
}

fn read_violation(item: &serde_json::Value) -> Result<Violation, String> {
    let serde_json::Value::Object(fields) = item else {
        return Err(format!("a violation must be an object, not {}", kind(item)));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !matches!(key.as_str(), "rule" | "msg" | "remediation" | "docs"))
    {
        return Err(format!(
            "unknown field {unknown:?} (a violation has rule, msg, remediation and docs)"
        ));
    }
    let text = |name: &str| match fields.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{name} must be a string, not {}", kind(other))),
        None => Err(format!("{name} is missing")),
    };
    let docs = match fields.get("docs") {
        None | Some(serde_json::Value::Null) => None,
        Some(_) => Some(text("docs")?),
    };
    Ok(Violation {
        rule: text("rule")?,
        msg: text("msg")?,
        remediation: text("remediation")?,
        docs,
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value as Json, json};

    use super::*;
    use crate::default_bundle;

    const PROD: &str = "data.airlock.gates.prod";
    const STAGING: &str = "data.airlock.gates.staging";

    fn prod_input() -> Json {
        serde_json::from_str(include_str!("../testdata/prod-input.json")).unwrap()
    }

    fn rules(violations: &[Violation]) -> BTreeSet<&str> {
        violations.iter().map(|v| v.rule.as_str()).collect()
    }

    fn gate(rego: &str) -> Bundle {
        Bundle::from_files(vec![("gate.rego".to_owned(), rego.to_owned())]).unwrap()
    }

    fn assert_fails_closed(decision: &Decision, error_contains: &str) {
        assert!(!decision.allowed, "{decision:?}");
        let error = decision.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(error_contains),
            "error {error:?} lacks {error_contains:?}"
        );
        assert_eq!(
            decision.deny,
            vec![Violation {
                rule: POLICY_ERROR_RULE.to_owned(),
                msg: error.to_owned(),
                remediation: POLICY_ERROR_REMEDIATION.to_owned(),
                docs: Some("docs/policy.md#fail-closed".to_owned()),
            }]
        );
        assert!(decision.warn.is_empty());
        assert_eq!(decision.approvals, None);
    }

    #[test]
    fn compliant_prod_promotion_is_allowed_with_one_approval() {
        let decision = default_bundle().evaluate(PROD, &prod_input(), DEFAULT_TIMEOUT);
        assert_eq!(
            decision,
            Decision {
                allowed: true,
                deny: vec![],
                warn: vec![],
                approvals: Some(1),
                error: None,
            }
        );
    }

    #[test]
    fn bare_input_is_denied_by_every_evidence_rule() {
        let input = json!({
            "version": 1,
            "artifact": {"repository": "team/app", "name": "staging/team/app", "digest": "sha256:ab", "flags": []},
        });
        let decision = default_bundle().evaluate(PROD, &input, DEFAULT_TIMEOUT);
        assert!(!decision.allowed);
        assert_eq!(decision.error, None);
        assert_eq!(
            rules(&decision.deny),
            BTreeSet::from([
                "prod.provenance_required",
                "prod.sbom_required",
                "prod.staging_first",
                "prod.tests_required",
                "prod.vulnerability_scan_required",
                "staging.signature_required",
            ])
        );
        // Sorted by rule id, then message.
        let ids: Vec<&str> = decision.deny.iter().map(|v| v.rule.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let signature = &decision.deny[ids.len() - 1];
        assert_eq!(
            signature.msg,
            "staging/team/app@sha256:ab has no verified signature"
        );
        assert_eq!(
            signature.docs.as_deref(),
            Some("docs/policy.md#staging-signature-required")
        );
    }

    #[test]
    fn empty_input_is_denied_in_every_gate() {
        let bundle = default_bundle();
        let staging = bundle.evaluate(STAGING, &json!({}), DEFAULT_TIMEOUT);
        assert_eq!(
            rules(&staging.deny),
            BTreeSet::from(["common.input_version", "staging.signature_required"])
        );
        let rollback = bundle.evaluate("data.airlock.rollback", &json!({}), DEFAULT_TIMEOUT);
        assert_eq!(
            rules(&rollback.deny),
            BTreeSet::from(["common.input_version", "rollback.signature_required"])
        );
        // Not even an object: `input.x` is undefined everywhere, which must still deny.
        let prod = bundle.evaluate(PROD, &json!("promote please"), DEFAULT_TIMEOUT);
        assert!(!prod.allowed);
        assert!(rules(&prod.deny).contains("common.input_version"));
    }

    #[test]
    fn prod_denials_name_what_is_wrong() {
        let mut input = prod_input();
        input["evidence"]["vulnerabilities"][0]["findings"] = json!([
            {"id": "CVE-2026-7", "package": "openssl", "version": "3.0.1", "severity": "critical", "fixed_version": "3.0.2"},
            {"id": "CVE-2026-8", "package": "curl", "version": "8.0", "severity": "high", "fixed_version": null},
        ]);
        input["evidence"]["vulnerabilities"][0]["counts"] =
            json!({"critical": 1, "high": 1, "medium": 0, "low": 0, "unknown": 0});
        input["evidence"]["sboms"][0]["licenses"] = json!(["MIT", "GPL-3.0-only OR AGPL-3.0-only"]);
        input["target"]["frozen"] = json!(true);
        input["target"]["freeze_reason"] = json!("release 2026.12");
        let decision = default_bundle().evaluate(PROD, &input, DEFAULT_TIMEOUT);
        let messages: Vec<(&str, &str)> = decision
            .deny
            .iter()
            .map(|v| (v.rule.as_str(), v.msg.as_str()))
            .collect();
        let artifact = "staging/team/app@sha256:9f2b1c4e6a3d8e7f0b5c2a1d4e6f8a0b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f";
        assert_eq!(
            messages,
            vec![
                (
                    "common.stage_frozen",
                    "stage prod is frozen: release 2026.12"
                ),
                (
                    "prod.critical_vulnerabilities",
                    &*format!("{artifact} has 1 critical vulnerabilities: CVE-2026-7")
                ),
                (
                    "prod.high_vulnerabilities",
                    &*format!(
                        "{artifact} has 1 unwaived high vulnerabilities, more than the 0 allowed: CVE-2026-8"
                    )
                ),
                (
                    "prod.license_not_allowed",
                    &*format!(
                        "{artifact} contains licenses that are not allowed: GPL-3.0-only OR AGPL-3.0-only (allowed: MIT, Apache-2.0, BSD-2-Clause, BSD-3-Clause, ISC, Zlib, MPL-2.0, Unicode-3.0)"
                    )
                ),
            ]
        );
    }

    #[test]
    fn decisions_are_deterministic_and_round_trip_as_json() {
        let bundle = default_bundle();
        let input = json!({"version": 1, "target": {"frozen": true}, "artifact": {"flags": ["evidence_revoked"]}});
        let first = bundle.evaluate(PROD, &input, DEFAULT_TIMEOUT);
        for _ in 0..5 {
            assert_eq!(bundle.evaluate(PROD, &input, DEFAULT_TIMEOUT), first);
        }
        let text = serde_json::to_string(&first).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), first);
        // A replay from the stored files gives the same decision.
        let replayed = Bundle::from_files(bundle.files().to_vec()).unwrap();
        assert_eq!(replayed.digest(), bundle.digest());
        assert_eq!(replayed.evaluate(PROD, &input, DEFAULT_TIMEOUT), first);
    }

    #[test]
    fn missing_package_fails_closed_naming_it() {
        let decision =
            default_bundle().evaluate("data.airlock.gates.qa", &json!({}), DEFAULT_TIMEOUT);
        assert_fails_closed(
            &decision,
            "no policy at data.airlock.gates.qa: the bundle has no package airlock.gates.qa",
        );
    }

    #[test]
    fn invalid_query_fails_closed() {
        for query in [
            "airlock.gates.prod",
            "data.airlock.gates.prod; true",
            "data.",
            "data.a[0]",
            "data.a..b",
        ] {
            let decision = default_bundle().evaluate(query, &json!({}), DEFAULT_TIMEOUT);
            assert_fails_closed(&decision, "invalid policy query");
        }
    }

    #[test]
    fn unknown_field_in_a_gate_fails_closed() {
        let bundle = gate("package g\n\ndeny contains \"x\" if false\n\nallow := true\n");
        assert_fails_closed(
            &bundle.evaluate("data.g", &json!({}), DEFAULT_TIMEOUT),
            "unknown field \"allow\" in the result of data.g",
        );
    }

    #[test]
    fn malformed_violations_fail_closed() {
        let cases = [
            (
                r#"deny contains {"rule": "r", "msg": "m"}"#,
                "remediation is missing",
            ),
            (
                r#"deny contains {"rule": "r", "msg": 7, "remediation": "x"}"#,
                "msg must be a string, not a number",
            ),
            (
                r#"warn contains {"rule": "r", "msg": "m", "remediation": "x", "severity": "high"}"#,
                "unknown field \"severity\"",
            ),
            (
                r#"deny contains "just a string""#,
                "a violation must be an object, not a string",
            ),
            (
                r#"deny := "nope""#,
                "data.g.deny is a string, not a set of violations",
            ),
            (
                r#"deny contains {"rule": "r", "msg": "m", "remediation": "x", "docs": 1}"#,
                "docs must be a string",
            ),
        ];
        for (rule, expected) in cases {
            let bundle = gate(&format!("package g\n\n{rule}\n"));
            assert_fails_closed(
                &bundle.evaluate("data.g", &json!({}), DEFAULT_TIMEOUT),
                expected,
            );
        }
    }

    #[test]
    fn approvals_must_be_a_non_negative_integer() {
        for value in ["-1", "1.5", "\"2\"", "4294967296"] {
            let bundle = gate(&format!("package g\n\napprovals := {value}\n"));
            assert_fails_closed(
                &bundle.evaluate("data.g", &json!({}), DEFAULT_TIMEOUT),
                "data.g.approvals is",
            );
        }
        let bundle = gate("package g\n\napprovals := 3\n");
        let decision = bundle.evaluate("data.g", &json!({}), DEFAULT_TIMEOUT);
        assert!(decision.allowed);
        assert_eq!(decision.approvals, Some(3));
    }

    #[test]
    fn a_result_that_is_not_an_object_fails_closed() {
        let bundle = gate("package g\n\ndeny contains \"x\" if false\n");
        assert_fails_closed(
            &bundle.evaluate("data.g.deny", &json!({}), DEFAULT_TIMEOUT),
            "the result of data.g.deny is an array, not an object",
        );
    }

    #[test]
    fn evaluation_error_fails_closed() {
        // Built-in errors are evaluation errors (regorus' strict default), not undefined.
        let bundle = gate(
            "package g\n\ndeny contains {\"rule\": \"r\", \"msg\": m, \"remediation\": \"x\"} if {\n\tm := sprintf(\"%d\", [time.parse_rfc3339_ns(input.when)])\n}\n",
        );
        let decision = bundle.evaluate("data.g", &json!({"when": "yesterday"}), DEFAULT_TIMEOUT);
        assert_fails_closed(&decision, "evaluating data.g failed");
        // Conflicting values for a complete rule are errors too.
        let bundle = gate("package g\n\napprovals := 1 if true\n\napprovals := 2 if true\n");
        assert_fails_closed(
            &bundle.evaluate("data.g", &json!({}), DEFAULT_TIMEOUT),
            "evaluating data.g failed",
        );
    }

    #[test]
    fn runaway_policy_is_stopped_by_the_timeout() {
        // 10^8 iterations that never match and allocate nothing: minutes of work unbounded.
        let bundle = gate(
            "package g\n\ndeny contains {\"rule\": \"r\", \"msg\": \"m\", \"remediation\": \"x\"} if {\n\tsome i in numbers.range(1, 10000)\n\tsome j in numbers.range(1, 10000)\n\ti * j == -1\n}\n",
        );
        let timeout = Duration::from_millis(100);
        let started = Instant::now();
        let decision = bundle.evaluate("data.g", &json!({}), timeout);
        let elapsed = started.elapsed();
        assert_fails_closed(
            &decision,
            "evaluating data.g took longer than the 100 ms allowed",
        );
        // The interpreter stopped itself, on this thread, soon after the limit.
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    }

    #[test]
    fn fail_closed_decision_serialises_with_the_documented_shape() {
        let json = serde_json::to_value(Decision::fail_closed("boom")).unwrap();
        assert_eq!(
            json,
            json!({
                "allowed": false,
                "deny": [{
                    "rule": "airlock.policy_error",
                    "msg": "boom",
                    "remediation": POLICY_ERROR_REMEDIATION,
                    "docs": "docs/policy.md#fail-closed",
                }],
                "warn": [],
                "approvals": null,
                "error": "boom",
            })
        );
    }

    #[test]
    fn unusable_bundle_fails_closed() {
        let bundle = Bundle::unusable(vec![], "broken on purpose".to_owned());
        assert_fails_closed(
            &bundle.evaluate(PROD, &prod_input(), DEFAULT_TIMEOUT),
            "broken on purpose",
        );
        assert_eq!(
            bundle.run_tests().failed,
            vec![("bundle".to_owned(), "broken on purpose".to_owned())]
        );
    }

    #[test]
    fn bundle_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Bundle>();
        assert_send_sync::<Decision>();
    }

    /// Timing loop for the per-evaluation cost; run with
    /// `cargo test -p airlock-policy --release -- --ignored --nocapture evaluation_speed`.
    #[test]
    #[ignore]
    fn evaluation_speed() {
        let bundle = default_bundle();
        let input = prod_input();
        let rounds = 2_000u32;
        for query in [PROD, STAGING] {
            assert!(bundle.evaluate(query, &input, DEFAULT_TIMEOUT).allowed);
            let started = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(bundle.evaluate(query, &input, DEFAULT_TIMEOUT));
            }
            println!("{query}: {:?} per evaluation", started.elapsed() / rounds);
        }
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(bundle.engine.clone());
        }
        println!("engine clone: {:?}", started.elapsed() / rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            let value: regorus::Value = serde::Deserialize::deserialize(&input).unwrap();
            std::hint::black_box(value);
        }
        println!("input conversion: {:?}", started.elapsed() / rounds);
        let started = Instant::now();
        let loads = 20u32;
        for _ in 0..loads {
            std::hint::black_box(default_bundle());
        }
        println!("default bundle load: {:?}", started.elapsed() / loads);
        let started = Instant::now();
        let report = bundle.run_tests();
        println!(
            "default bundle tests: {} passed, {} failed in {:?}",
            report.passed.len(),
            report.failed.len(),
            started.elapsed()
        );
    }
}
