//! OpenSSF Scorecard results: the JSON format v2 (`scorecard --format=json`, the public API's
//! answer) and the predicate of `scorecard --format=intoto`, which is the same object without
//! `repo` (the statement's subject names the repository instead).
//!
//! Read: `repo.name`, `repo.commit`, `date` (required), `scorecard.version`, `score` (required,
//! -1 to 10) and every `checks[]` entry's `name` and `score` (required, an integer from -1 to
//! 10, where -1 means inconclusive). A check named twice is refused: its score would be
//! ambiguous. `details`, `reason`, `documentation` and `metadata` are not read.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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

/// Reads a Scorecard result.
pub(super) fn read(r: Reader, root: &Map<String, Value>) -> Result<Scorecard, FactsError> {
    let date = r.required_string(root, "", &["date"])?;
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
