//! The bundle's own tests: rules named `test_*`, as `opa test` runs them.

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{LimitError, Value};
use serde::{Deserialize, Serialize};

use crate::Bundle;

/// How long one test rule may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of [`Bundle::run_tests`]: test rules as `data.<package>.<rule>`, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// Tests that evaluated to `true`.
    pub passed: Vec<String>,
    /// Tests that did not, each with the reason (undefined, another value, or an error).
    pub failed: Vec<(String, String)>,
}

impl TestReport {
    /// True when no test failed (a bundle without tests passes).
    pub fn all_passed(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Bundle {
    /// Evaluates every test rule of the bundle with no input and reports which pass.
    ///
    /// A test rule is a rule whose name starts with `test_`, written at the start of a line
    /// (found by scanning each module's source for `^test_\w+`, then confirmed against the
    /// parsed module). It passes iff it evaluates to `true`; undefined (some condition in its
    /// body did not hold), any other value, or an error is a failure. Tests set the input and
    /// data they need with `with input as {...}` and `with data.x as ...`. Each test runs on a
    /// fresh clone of the compiled bundle, within [`TEST_TIMEOUT`].
    pub fn run_tests(&self) -> TestReport {
        let mut report = TestReport::default();
        if let Some(reason) = &self.unusable {
            report.failed.push(("bundle".to_owned(), reason.clone()));
            return report;
        }
        for test in &self.tests {
            match self.run_test(test) {
                Ok(()) => report.passed.push(test.clone()),
                Err(why) => report.failed.push((test.clone(), why)),
            }
        }
        report
    }

    fn run_test(&self, test: &str) -> Result<(), String> {
        let mut engine = self.engine.clone();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: TEST_TIMEOUT,
            check_interval: NonZeroU32::MIN.saturating_add(31),
        });
        let value = engine.eval_rule(test.to_owned()).map_err(|err| {
            match err.downcast_ref::<LimitError>() {
                Some(LimitError::TimeLimitExceeded { .. }) => {
                    format!("took longer than {} s", TEST_TIMEOUT.as_secs())
                }
                _ => format!("error: {err}"),
            }
        })?;
        match value {
            Value::Bool(true) => Ok(()),
            Value::Undefined => Err("undefined: a condition in its body did not hold".to_owned()),
            other => Err(format!(
                "evaluated to {}, not true",
                serde_json::to_string(&other).unwrap_or_else(|_| "a value".to_owned())
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_test_outcome_is_reported_with_its_reason() {
        let bundle = Bundle::from_files(vec![
            ("data.json".to_owned(), r#"{"limits": {"max": 3}}"#.to_owned()),
            (
                "gate.rego".to_owned(),
                "package gate\n\ntoo_many if input.n > data.limits.max\n".to_owned(),
            ),
            (
                "gate_test.rego".to_owned(),
                [
                    "package gate_test",
                    "",
                    "import data.gate",
                    "",
                    "test_with_input if gate.too_many with input as {\"n\": 4}",
                    "",
                    "test_with_data if gate.too_many with input as {\"n\": 2} with data.limits.max as 1",
                    "",
                    "test_undefined if gate.too_many with input as {\"n\": 1}",
                    "",
                    "test_false := false",
                    "",
                    "test_not_boolean := 7",
                    "",
                    "test_error if 1 / 0 == 1",
                ]
                .join("\n"),
            ),
        ])
        .unwrap();
        let report = bundle.run_tests();
        assert_eq!(
            report.passed,
            [
                "data.gate_test.test_with_data",
                "data.gate_test.test_with_input"
            ]
        );
        let failed: Vec<(&str, &str)> = report
            .failed
            .iter()
            .map(|(test, why)| (test.as_str(), why.as_str()))
            .collect();
        assert_eq!(failed.len(), 4, "{failed:?}");
        assert!(
            failed[0].0 == "data.gate_test.test_error" && failed[0].1.starts_with("error: "),
            "{failed:?}"
        );
        assert_eq!(
            failed[1],
            ("data.gate_test.test_false", "evaluated to false, not true")
        );
        assert_eq!(
            failed[2],
            (
                "data.gate_test.test_not_boolean",
                "evaluated to 7, not true"
            )
        );
        assert_eq!(
            failed[3],
            (
                "data.gate_test.test_undefined",
                "undefined: a condition in its body did not hold"
            )
        );
        assert!(!report.all_passed());
    }

    #[test]
    fn default_bundle_tests_all_pass() {
        let report = crate::default_bundle().run_tests();
        assert_eq!(report.failed, Vec::<(String, String)>::new());
        assert!(report.passed.len() >= 60, "{}", report.passed.len());
    }
}
