//! OpenSSF Scorecard results: the JSON format v2 (`scorecard --format=json`, the public API's
//! answer) and the predicate of `scorecard --format=intoto`, which is the same object without
//! `repo` (the statement's subject names the repository instead).
//!
//! Read: `repo.name`, `repo.commit`, `date` (required, an RFC 3339 date-time or a `YYYY-MM-DD`
//! date, as written; anything else is refused, since policy compares dates), `scorecard.version`, `score` (required,
//! -1 to 10) and every `checks[]` entry's `name` and `score` (required, an integer from -1 to
//! 10, where -1 means inconclusive). A check named twice is refused: its score would be
//! ambiguous. `details`, `reason`, `documentation` and `metadata` are not read.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::{FactsError, MAX_ITEMS, Reader, Scorecard};

/// The lowest score scorecard gives (an inconclusive check or result).
const LOWEST: i64 = -1;
/// The highest score scorecard gives.
const HIGHEST: i64 = 10;

/// Whether `object` is recognisably a Scorecard result: a string `scorecard.version`, a
/// `checks` array and a numeric `score`.
pub(super) fn looks_like(object: &Map<String, Value>) -> bool {
    object
        .get("scorecard")
        .and_then(|scorecard| scorecard.get("version"))
        .is_some_and(Value::is_string)
        && object.get("checks").is_some_and(Value::is_array)
        && object.get("score").is_some_and(Value::is_number)
}

/// Whether `text` is an RFC 3339 date-time or a calendar date `YYYY-MM-DD`.
fn is_date(text: &str) -> bool {
    OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || Date::parse(text, format_description!("[year]-[month]-[day]")).is_ok()
}

/// Reads a Scorecard result.
pub(super) fn read(r: Reader, root: &Map<String, Value>) -> Result<Scorecard, FactsError> {
    let date = r.required_string(root, "", &["date"])?;
    if !is_date(date) {
        return Err(r.unexpected(
            "date".to_owned(),
            date,
            "an RFC 3339 date-time or a YYYY-MM-DD date",
        ));
    }
    let optional = |keys: &[&str]| -> Result<Option<String>, FactsError> {
        Ok(r.string(root, "", keys)?
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned))
    };
    let repository = optional(&["repo", "name"])?;
    let commit = optional(&["repo", "commit"])?;
    let scorecard_version = optional(&["scorecard", "version"])?;

    let score = match r.lookup(root, "", &["score"])? {
        None => return Err(r.missing("score".to_owned())),
        Some(value) => value
            .as_f64()
            .ok_or_else(|| r.wrong_type("score".to_owned(), "a number"))?,
    };
    if !(LOWEST as f64..=HIGHEST as f64).contains(&score) {
        return Err(r.unexpected(
            "score".to_owned(),
            &score.to_string(),
            "a score from -1 to 10",
        ));
    }

    let checks_value = match r.lookup(root, "", &["checks"])? {
        None => return Err(r.missing("checks".to_owned())),
        Some(Value::Array(checks)) => checks,
        Some(_) => return Err(r.wrong_type("checks".to_owned(), "an array")),
    };
    if checks_value.len() > MAX_ITEMS {
        return Err(FactsError::TooMany {
            format: r.format,
            what: "checks",
            limit: MAX_ITEMS,
        });
    }
    let mut checks = BTreeMap::new();
    for (i, check) in checks_value.iter().enumerate() {
        let at = format!("checks[{i}]");
        let check = r.element(check, &at)?;
        let name = r.required_string(check, &at, &["name"])?;
        let score_path = format!("{at}.score");
        let score = match r.lookup(check, &at, &["score"])? {
            None => return Err(r.missing(score_path)),
            Some(value) => value
                .as_i64()
                .ok_or_else(|| r.wrong_type(score_path.clone(), "an integer"))?,
        };
        if !(LOWEST..=HIGHEST).contains(&score) {
            return Err(r.unexpected(score_path, &score.to_string(), "a score from -1 to 10"));
        }
        if checks.insert(name.to_owned(), score).is_some() {
            return Err(r.unexpected(format!("{at}.name"), name, "a check not named before"));
        }
    }

    Ok(Scorecard {
        repository,
        commit,
        date: date.to_owned(),
        scorecard_version,
        score,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Facts, derive_facts, predicate_kind};
    use super::*;

    const RESULT_TYPE: &str = "https://scorecard.dev/result/v0.1";

    fn result() -> Value {
        json!({
            "date": "2026-08-01",
            "repo": {"name": "github.com/octo-org/octo-repo", "commit": "c27d339ee6075c1f744c5d4b200f7901aad2c369"},
            "scorecard": {"version": "v5.2.1", "commit": "ab2f6e92482462fe66246d9e32f642855a691dc1"},
            "score": 7.4,
            "checks": [
                {"name": "Maintained", "score": 10, "reason": "30 commit(s) in the last 90 days", "details": null,
                 "documentation": {"url": "https://github.com/ossf/scorecard/blob/main/docs/checks.md#maintained", "short": "Determines if the project is \"actively maintained\"."}},
                {"name": "Signed-Releases", "score": -1, "reason": "no releases found", "details": null,
                 "documentation": {"url": "https://github.com/ossf/scorecard/blob/main/docs/checks.md#signed-releases", "short": "Determines if the project cryptographically signs release artifacts."}},
                {"name": "Code-Review", "score": 0, "reason": "Found 0/30 approved changesets", "details": ["Warn: no reviews"],
                 "documentation": {"url": "https://github.com/ossf/scorecard/blob/main/docs/checks.md#code-review", "short": "Determines if the project requires human code review before pull requests (aka merge requests) are merged."}}
            ],
            "metadata": null
        })
    }

    fn scorecard(predicate_type: &str, predicate: &Value) -> Scorecard {
        match derive_facts(predicate_type, predicate) {
            Ok(Facts::Scorecard(scorecard)) => scorecard,
            other => panic!("expected a Scorecard result, got {other:?}"),
        }
    }

    fn refusal(predicate: &Value) -> String {
        match derive_facts(RESULT_TYPE, predicate) {
            Err(error) => error.to_string(),
            Ok(facts) => panic!("expected an error, got {facts:?}"),
        }
    }

    #[test]
    fn a_result_gives_repository_score_and_every_check() {
        let read = scorecard(RESULT_TYPE, &result());
        assert_eq!(
            read,
            Scorecard {
                repository: Some("github.com/octo-org/octo-repo".to_owned()),
                commit: Some("c27d339ee6075c1f744c5d4b200f7901aad2c369".to_owned()),
                date: "2026-08-01".to_owned(),
                scorecard_version: Some("v5.2.1".to_owned()),
                score: 7.4,
                checks: [
                    ("Code-Review", 0),
                    ("Maintained", 10),
                    ("Signed-Releases", -1)
                ]
                .into_iter()
                .map(|(name, score)| (name.to_owned(), score))
                .collect(),
            }
        );
    }

    #[test]
    fn the_in_toto_form_without_repo_and_results_under_other_types_are_read() {
        let mut predicate = result();
        if let Some(object) = predicate.as_object_mut() {
            object.remove("repo");
        }
        let read = scorecard(RESULT_TYPE, &predicate);
        assert_eq!((read.repository, read.commit), (None, None));
        assert_eq!(read.score, 7.4);

        // The family of the type, and the content under any other type.
        assert_eq!(
            scorecard("https://scorecard.dev/result/v0.2", &result()).score,
            7.4
        );
        assert_eq!(
            scorecard("https://example.com/custom", &result()).score,
            7.4
        );
        assert_eq!(predicate_kind(RESULT_TYPE), Some("scorecard"));
        assert_eq!(predicate_kind("https://scorecard.dev/results"), None);

        // Without the marks of a result, another type says nothing.
        let mut unmarked = result();
        unmarked["score"] = json!("7.4");
        assert_eq!(
            derive_facts("https://example.com/custom", &unmarked),
            Ok(Facts::None)
        );
    }

    #[test]
    fn scores_out_of_range_are_refused_by_path() {
        let cases = [
            (
                "/score",
                json!(10.5),
                "field score is \"10.5\", expected a score from -1 to 10",
            ),
            (
                "/score",
                json!(-2),
                "field score is \"-2\", expected a score from -1 to 10",
            ),
            ("/score", json!("7.4"), "field score is not a number"),
            (
                "/checks/1/score",
                json!(11),
                "field checks[1].score is \"11\", expected a score from -1 to 10",
            ),
            (
                "/checks/2/score",
                json!(-3),
                "field checks[2].score is \"-3\", expected a score from -1 to 10",
            ),
            (
                "/checks/0/score",
                json!(7.5),
                "field checks[0].score is not an integer",
            ),
            ("/checks/0/score", json!(null), "has no checks[0].score"),
        ];
        for (pointer, value, expected) in cases {
            let mut predicate = result();
            if let Some(slot) = predicate.pointer_mut(pointer) {
                *slot = value;
            }
            assert_eq!(
                refusal(&predicate),
                format!("OpenSSF Scorecard result {expected}"),
                "at {pointer}"
            );
        }
    }

    #[test]
    fn a_date_may_be_a_calendar_date_or_an_rfc_3339_date_time() {
        for date in [
            "2026-08-01",
            "2026-08-01T12:30:00Z",
            "2026-08-01T12:30:00.5+02:00",
        ] {
            let mut predicate = result();
            predicate["date"] = json!(date);
            assert_eq!(scorecard(RESULT_TYPE, &predicate).date, date);
        }
    }

    #[test]
    fn malformed_results_are_refused_by_path() {
        let cases = [
            ("/date", json!(null), "has no date"),
            ("/date", json!(20260801), "field date is not a string"),
            (
                "/date",
                json!("zzzz"),
                "field date is \"zzzz\", expected an RFC 3339 date-time or a YYYY-MM-DD date",
            ),
            (
                "/date",
                json!("2026-13-01"),
                "field date is \"2026-13-01\", expected an RFC 3339 date-time or a YYYY-MM-DD date",
            ),
            (
                "/date",
                json!("2026-08-01 12:00"),
                "field date is \"2026-08-01 12:00\", expected an RFC 3339 date-time or a YYYY-MM-DD date",
            ),
            (
                "/repo",
                json!("github.com/octo-org/octo-repo"),
                "field repo is not an object",
            ),
            (
                "/repo/name",
                json!(["github.com/octo-org/octo-repo"]),
                "field repo.name is not a string",
            ),
            (
                "/repo/commit",
                json!(1),
                "field repo.commit is not a string",
            ),
            (
                "/scorecard/version",
                json!(5),
                "field scorecard.version is not a string",
            ),
            ("/score", json!(null), "has no score"),
            ("/checks", json!(null), "has no checks"),
            (
                "/checks",
                json!({"Maintained": 10}),
                "field checks is not an array",
            ),
            (
                "/checks/1",
                json!("Maintained"),
                "field checks[1] is not an object",
            ),
            ("/checks/2/name", json!(""), "has no checks[2].name"),
            (
                "/checks/2/name",
                json!("Maintained"),
                "field checks[2].name is \"Maintained\", expected a check not named before",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut predicate = result();
            if let Some(slot) = predicate.pointer_mut(pointer) {
                *slot = value;
            }
            assert_eq!(
                refusal(&predicate),
                format!("OpenSSF Scorecard result {expected}"),
                "at {pointer}"
            );
        }
    }

    #[test]
    fn scorecard_facts_are_stored_with_their_kind_and_read_back() {
        let facts = derive_facts(RESULT_TYPE, &result()).ok();
        let stored = serde_json::to_value(&facts).ok();
        assert_eq!(
            stored.as_ref().and_then(|v| v.get("kind")),
            Some(&json!("scorecard"))
        );
        assert_eq!(
            stored
                .as_ref()
                .and_then(|v| v.pointer("/checks/Maintained")),
            Some(&json!(10))
        );
        let read_back: Option<Facts> = stored.and_then(|v| serde_json::from_value(v).ok());
        assert_eq!(read_back, facts);
    }
}
