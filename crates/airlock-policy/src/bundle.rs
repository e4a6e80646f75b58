//! Policy bundles: a set of `.rego` modules and `.json` data files, identified by a digest,
//! compiled once when loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::Path;

use regorus::{Engine, PolicyLengthConfig, Value};
use sha2::{Digest, Sha256};

use crate::PolicyError;

/// The most `.rego` and `.json` files a bundle may have.
pub const MAX_BUNDLE_FILES: usize = 1_000;

/// The largest file a bundle may have, in bytes (4 MiB).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// How deep [`Bundle::load`] descends into sub-directories.
pub const MAX_DIRECTORY_DEPTH: usize = 32;

/// A policy bundle: Rego v1 modules plus JSON data, compiled and ready to evaluate.
///
/// A bundle is identified by its [`digest`](Bundle::digest), a hash of its files, so a decision
/// can name the exact policy it was made with and be replayed later from the stored
/// [`files`](Bundle::files) through [`Bundle::from_files`].
///
/// - `.rego` files are modules in Rego v1 syntax; their package names may be anything, and
///   several files may share a package.
/// - `.json` files hold a JSON object that is merged into `data` at the file's directory path:
///   `data.json` at the root is merged at `data`, `airlock/config/waivers.json` at
///   `data.airlock.config`. Two files must not set the same key to different values.
///
/// Compiling happens once, in the constructor; evaluation clones the compiled engine, which is
/// cheap (its modules and data are shared, reference counted). A `Bundle` is `Send + Sync` and
/// `Clone`.
#[derive(Clone)]
pub struct Bundle {
    /// The files, sorted by path.
    pub(crate) files: Vec<(String, String)>,
    pub(crate) digest: String,
    /// Every module and data file loaded, prepared for evaluation (no input set).
    pub(crate) engine: Engine,
    /// Package paths with the `data.` prefix, e.g. `data.airlock.gates.prod`.
    pub(crate) packages: BTreeSet<String>,
    /// Test rules as `data.<package>.<rule>`, sorted.
    pub(crate) tests: Vec<String>,
    /// Set only for [`crate::default_bundle`] if the embedded policies did not compile (a bug
    /// that the crate's tests rule out): every evaluation then fails closed with this reason.
    pub(crate) unusable: Option<String>,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("digest", &self.digest)
            .field(
                "files",
                &self.files.iter().map(|(path, _)| path).collect::<Vec<_>>(),
            )
            .field("packages", &self.packages)
            .field("unusable", &self.unusable)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Loads every `.rego` and `.json` file under `dir`, recursively, and compiles them.
    ///
    /// Other files (a README, say) are ignored, and so are entries whose name starts with `.`
    /// (`.git`, and the `..data` directories of a Kubernetes ConfigMap volume, whose files are
    /// reached through symbolic links at the top). Symbolic links to files are followed;
    /// symbolic links to directories are not. At most [`MAX_BUNDLE_FILES`] files of at most
    /// [`MAX_FILE_BYTES`] each, at most [`MAX_DIRECTORY_DEPTH`] directories deep.
    ///
    /// This is the only function of the crate that touches the file system.
    pub fn load(dir: &Path) -> Result<Bundle, PolicyError> {
        let mut files = Vec::new();
        collect_files(dir, "", 0, &mut files)?;
        Bundle::from_files(files)
    }

    /// Builds a bundle from `(path, content)` pairs, as [`Bundle::files`] returns them: paths
    /// are relative, `/`-separated, and end in `.rego` or `.json`.
    pub fn from_files(mut files: Vec<(String, String)>) -> Result<Bundle, PolicyError> {
        if files.len() > MAX_BUNDLE_FILES {
            return Err(PolicyError::TooManyFiles {
                limit: MAX_BUNDLE_FILES,
            });
        }
        for (path, content) in &files {
            check_path(path)?;
            if !is_policy(path) && !is_data(path) {
                return Err(PolicyError::UnsupportedFile { path: path.clone() });
            }
            let size = content.len() as u64;
            if size > MAX_FILE_BYTES {
                return Err(PolicyError::FileTooLarge {
                    path: path.clone(),
                    size,
                    limit: MAX_FILE_BYTES,
                });
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = files.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(PolicyError::DuplicatePath {
                path: pair[0].0.clone(),
            });
        }
        let compiled = compile(&files)?;
        Ok(Bundle {
            digest: digest_of(&files),
            files,
            engine: compiled.engine,
            packages: compiled.packages,
            tests: compiled.tests,
            unusable: None,
        })
    }

    /// A bundle whose every evaluation fails closed with `reason`; see [`Bundle::unusable`].
    pub(crate) fn unusable(mut files: Vec<(String, String)>, reason: String) -> Bundle {
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Bundle {
            digest: digest_of(&files),
            files,
            engine: Engine::new(),
            packages: BTreeSet::new(),
            tests: Vec::new(),
            unusable: Some(reason),
        }
    }

    /// The bundle's identity: `sha256:<lower-case hex>` of its files sorted by path, hashing
    /// for each file its path (UTF-8), one `0x00` byte, the content's length in bytes as an
    /// 8-byte big-endian integer, and the content. The same files give the same digest
    /// wherever they were loaded from.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The bundle's files as `(path, content)`, sorted by path: what the server stores to
    /// replay a decision with [`Bundle::from_files`].
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// The packages the bundle's modules declare, as `data.`-prefixed paths
    /// (`data.airlock.gates.prod`), sorted.
    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.packages.iter().map(String::as_str)
    }

    /// The waivers the bundle's data lists at `data.airlock.config.waivers` (the default
    /// bundle's convention), for showing which findings they accept. An entry without a string
    /// `id` and `expires` is left out: the gates decide what a malformed waiver means (the
    /// default bundle's waive nothing and warn). Empty when the bundle has no such list.
    pub fn waivers(&self) -> Vec<Waiver> {
        let mut engine = self.engine.clone();
        let Ok(results) = engine.eval_query(WAIVERS_QUERY.to_owned(), false) else {
            return Vec::new();
        };
        let Some(value) = results
            .result
            .into_iter()
            .next()
            .and_then(|result| result.expressions.into_iter().next())
            .map(|expression| expression.value)
        else {
            return Vec::new();
        };
        match serde_json::to_value(&value) {
            Ok(serde_json::Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Where a bundle's data lists its waivers.
const WAIVERS_QUERY: &str = "data.airlock.config.waivers";

/// An accepted exception from a bundle's data (`data.airlock.config.waivers`): `id` (a
/// vulnerability id, or what `rule` names) is accepted until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Waiver {
    /// What it waives: a vulnerability id such as `CVE-2026-8`, or what its rule's findings
    /// are named by.
    pub id: String,
    /// The rule it is scoped to; `None` waives a high vulnerability (`prod.high_vulnerabilities`).
    #[serde(default)]
    pub rule: Option<String>,
    /// Until when it counts, as written (RFC 3339 in a well-formed bundle).
    pub expires: String,
    /// Why it was granted.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Waiver {
    /// Whether it waives vulnerability findings (no rule, or `prod.high_vulnerabilities`).
    pub fn covers_vulnerabilities(&self) -> bool {
        self.rule
            .as_deref()
            .is_none_or(|rule| rule == "prod.high_vulnerabilities")
    }
}

/// What compiling a bundle's files produces.
struct Compiled {
    engine: Engine,
    packages: BTreeSet<String>,
    tests: Vec<String>,
}

/// Parses every module, merges every data file and prepares the engine for evaluation, so that
/// every evaluation only clones it.
fn compile(files: &[(String, String)]) -> Result<Compiled, PolicyError> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    let defaults = PolicyLengthConfig::default();
    engine.set_policy_length_config(PolicyLengthConfig {
        max_file_bytes: NonZeroUsize::new(MAX_FILE_BYTES as usize)
            .unwrap_or(defaults.max_file_bytes),
        ..defaults
    });

    let mut packages = BTreeMap::new();
    let mut tests = BTreeSet::new();
    for (path, content) in files.iter().filter(|(path, _)| is_policy(path)) {
        let package = engine
            .add_policy(path.clone(), content.clone())
            .map_err(|err| PolicyError::Parse {
                path: path.clone(),
                message: err.to_string(),
            })?;
        for rule in test_rule_candidates(content) {
            // The source scan may be fooled (a raw string line starting with "test_"); only
            // rules the parser also saw are kept.
            if engine
                .has_declared_rule_rooted_at(path, rule)
                .unwrap_or(false)
            {
                tests.insert(format!("{package}.{rule}"));
            }
        }
        if let Some(first) = packages.insert(package.clone(), path.clone()) {
            return Err(PolicyError::SplitPackage {
                package: package.strip_prefix("data.").unwrap_or(&package).to_owned(),
                first,
                second: path.clone(),
            });
        }
    }
    if packages.is_empty() {
        return Err(PolicyError::NoPolicies);
    }

    for (path, content) in files.iter().filter(|(path, _)| is_data(path)) {
        let data_error = |message: String| PolicyError::Data {
            path: path.clone(),
            message,
        };
        let json: serde_json::Value = serde_json::from_str(content)
            .map_err(|err| data_error(format!("not valid JSON: {err}")))?;
        if !json.is_object() {
            return Err(data_error("must hold a JSON object".to_owned()));
        }
        // Nest the object under the file's directories: a/b/data.json -> {"a": {"b": ...}}.
        let mut document = json;
        for directory in path.split('/').rev().skip(1) {
            document = serde_json::Value::Object(serde_json::Map::from_iter([(
                directory.to_owned(),
                document,
            )]));
        }
        let value = Value::from_json_str(&document.to_string())
            .map_err(|err| data_error(err.to_string()))?;
        engine
            .add_data(value)
            .map_err(|err| data_error(err.to_string()))?;
    }

    // Preparing analyses every module (unsafe variables, recursion, schedules); doing it here
    // makes such errors load errors and leaves clones ready to evaluate.
    engine
        .eval_query("true".to_owned(), false)
        .map_err(|err| PolicyError::Compile {
            message: err.to_string(),
        })?;

    Ok(Compiled {
        engine,
        packages: packages.into_keys().collect(),
        tests: tests.into_iter().collect(),
    })
}

/// Rule names of the form `test_<word characters>` that start a line: how `opa test` spells a
/// test, and how the bundle's tests are found (rule heads are written at the start of a line).
fn test_rule_candidates(source: &str) -> impl Iterator<Item = &str> {
    source.lines().filter_map(|line| {
        if !line.starts_with("test_") {
            return None;
        }
        let end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(line.len());
        Some(&line[..end])
    })
}

fn digest_of(files: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (path, content) in files {
        hasher.update(path.as_bytes());
        hasher.update([0u8]);
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content.as_bytes());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

fn is_policy(path: &str) -> bool {
    path.ends_with(".rego")
}

fn is_data(path: &str) -> bool {
    path.ends_with(".json")
}

/// A bundle path is relative, `/`-separated, and has no empty, `.` or `..` components.
fn check_path(path: &str) -> Result<(), PolicyError> {
    let invalid = |reason| PolicyError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("it is empty"));
    }
    if path.contains('\\') {
        return Err(invalid("it contains '\\'; use '/'"));
    }
    if path.contains('\0') {
        return Err(invalid("it contains a NUL character"));
    }
    if path.starts_with('/') {
        return Err(invalid("it is absolute"));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(invalid("it has an empty, '.' or '..' component"));
    }
    Ok(())
}

fn collect_files(
    dir: &Path,
    prefix: &str,
    depth: usize,
    files: &mut Vec<(String, String)>,
) -> Result<(), PolicyError> {
    let io_error = |path: &Path, source| PolicyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(|err| io_error(dir, err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| io_error(dir, err))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(PolicyError::InvalidPath {
                path: entry.path().display().to_string(),
                reason: "its name is not UTF-8",
            });
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let relative = format!("{prefix}{name}");
        let file_type = entry.file_type().map_err(|err| io_error(&path, err))?;
        if file_type.is_dir() {
            if depth + 1 > MAX_DIRECTORY_DEPTH {
                return Err(PolicyError::TooDeep {
                    path: relative,
                    limit: MAX_DIRECTORY_DEPTH,
                });
            }
            collect_files(&path, &format!("{relative}/"), depth + 1, files)?;
            continue;
        }
        if !is_policy(name) && !is_data(name) {
            continue;
        }
        // Follows a symbolic link; a link to a directory is skipped.
        let metadata = fs::metadata(&path).map_err(|err| io_error(&path, err))?;
        if !metadata.is_file() {
            continue;
        }
        if files.len() == MAX_BUNDLE_FILES {
            return Err(PolicyError::TooManyFiles {
                limit: MAX_BUNDLE_FILES,
            });
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(PolicyError::FileTooLarge {
                path: relative,
                size: metadata.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|err| io_error(&path, err))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(PolicyError::FileTooLarge {
                path: relative,
                size: bytes.len() as u64,
                limit: MAX_FILE_BYTES,
            });
        }
        let content = String::from_utf8(bytes).map_err(|_| PolicyError::NotUtf8 {
            path: relative.clone(),
        })?;
        files.push((relative, content));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::{DEFAULT_TIMEOUT, default_bundle};

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(path, content)| ((*path).to_owned(), (*content).to_owned()))
            .collect()
    }

    fn repo_policies() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
    }

    #[test]
    fn waivers_are_read_from_the_bundle_data_and_malformed_ones_left_out() {
        let bundle = Bundle::from_files(files(&[
            ("p.rego", "package p\n"),
            (
                "airlock/config/waivers.json",
                r#"{"waivers": [
                    {"id": "CVE-2026-8", "expires": "2026-12-31T23:59:59Z", "reason": "not reachable"},
                    {"id": "pkg:generic/tool", "rule": "prod.dependency_sources", "expires": "2027-01-01T00:00:00Z"},
                    {"id": 7, "expires": "2026-12-31T23:59:59Z"},
                    "not an object"
                ]}"#,
            ),
        ]))
        .unwrap();
        let waivers = bundle.waivers();
        assert_eq!(waivers.len(), 2, "{waivers:?}");
        assert_eq!(waivers[0].id, "CVE-2026-8");
        assert_eq!(waivers[0].reason.as_deref(), Some("not reachable"));
        assert!(waivers[0].covers_vulnerabilities());
        assert_eq!(waivers[1].rule.as_deref(), Some("prod.dependency_sources"));
        assert!(!waivers[1].covers_vulnerabilities());
        // The default bundle ships none; a bundle without the list has none.
        assert!(default_bundle().waivers().is_empty());
        let bare = Bundle::from_files(files(&[("p.rego", "package p\n")])).unwrap();
        assert!(bare.waivers().is_empty());
    }

    #[test]
    fn digest_hashes_sorted_paths_and_length_prefixed_contents() {
        let bundle =
            Bundle::from_files(files(&[("b.rego", "package b\n"), ("a/data.json", "{}")])).unwrap();
        let mut expected = Sha256::new();
        for (path, content) in [("a/data.json", "{}"), ("b.rego", "package b\n")] {
            expected.update(path.as_bytes());
            expected.update([0]);
            expected.update((content.len() as u64).to_be_bytes());
            expected.update(content.as_bytes());
        }
        assert_eq!(
            bundle.digest(),
            format!("sha256:{}", hex::encode(expected.finalize()))
        );
        assert_eq!(bundle.files()[0].0, "a/data.json");
        // Moving bytes between path and content changes the digest.
        let other = Bundle::from_files(files(&[("b.rego", "package b\n"), ("a/data.jso", "n{}")]));
        assert!(other.is_err(), "a/data.jso is not a bundle file");
    }

    #[test]
    fn repository_policies_are_the_default_bundle() {
        // Also proves that default::FILES lists every file of policies/.
        let loaded = Bundle::load(&repo_policies()).unwrap();
        assert_eq!(loaded.digest(), default_bundle().digest());
        assert_eq!(loaded.files(), default_bundle().files());
    }

    #[test]
    fn parse_error_names_the_file_and_line() {
        let err = Bundle::from_files(files(&[
            ("ok.rego", "package ok\n\nx := 1\n"),
            (
                "gates/bad.rego",
                "package bad\n\ndeny contains x if {\n\tx := \n}\n",
            ),
        ]))
        .unwrap_err();
        let PolicyError::Parse { path, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, "gates/bad.rego");
        assert!(message.contains("gates/bad.rego:4:"), "{message}");
    }

    #[test]
    fn rego_v0_syntax_is_refused() {
        let err = Bundle::from_files(files(&[(
            "v0.rego",
            "package v0\n\ndeny[msg] { msg := \"x\" }\n",
        )]))
        .unwrap_err();
        assert!(matches!(err, PolicyError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn compile_errors_are_load_errors() {
        let err =
            Bundle::from_files(files(&[("u.rego", "package u\n\nx if y == 1\n")])).unwrap_err();
        assert!(
            matches!(err, PolicyError::Compile { .. } | PolicyError::Parse { .. }),
            "{err:?}"
        );
        // regorus resolves function names only when it evaluates a call: a call to a function
        // that does not exist (or a built-in left out of the build) fails that evaluation.
        let bundle = Bundle::from_files(files(&[(
            "f.rego",
            "package f\n\ndeny contains x if x := http.send({\"method\": \"get\", \"url\": \"http://x\"})\n",
        )]))
        .unwrap();
        let decision = bundle.evaluate("data.f", &json!({}), DEFAULT_TIMEOUT);
        assert!(!decision.allowed);
        let error = decision.error.unwrap_or_default();
        assert!(error.contains("http.send"), "{error}");
    }

    #[test]
    fn bundle_without_policies_is_refused() {
        assert!(matches!(
            Bundle::from_files(vec![]),
            Err(PolicyError::NoPolicies)
        ));
        assert!(matches!(
            Bundle::from_files(files(&[("data.json", "{}")])),
            Err(PolicyError::NoPolicies)
        ));
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("README.md"), "no policies here").unwrap();
        assert!(matches!(
            Bundle::load(dir.path()),
            Err(PolicyError::NoPolicies)
        ));
    }

    #[test]
    fn data_files_merge_at_their_directory_path() {
        let bundle = Bundle::from_files(files(&[
            ("data.json", r#"{"airlock": {"config": {"a": 1}}}"#),
            ("airlock/config/more.json", r#"{"b": 2}"#),
            (
                "g.rego",
                "package g\n\ndeny contains {\"rule\": \"seen\", \"msg\": sprintf(\"%v %v\", [data.airlock.config.a, data.airlock.config.b]), \"remediation\": \"-\"}\n",
            ),
        ]))
        .unwrap();
        let decision = bundle.evaluate("data.g", &json!({}), DEFAULT_TIMEOUT);
        assert_eq!(decision.deny[0].msg, "1 2", "{decision:?}");
    }

    #[test]
    fn data_files_must_be_objects_without_conflicts() {
        let policy = ("g.rego", "package g\n");
        for (data, expected) in [("[1]", "must hold a JSON object"), ("{", "not valid JSON")] {
            let err = Bundle::from_files(files(&[policy, ("data.json", data)])).unwrap_err();
            assert!(
                matches!(&err, PolicyError::Data { path, .. } if path == "data.json"),
                "{err:?}"
            );
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = Bundle::from_files(files(&[
            policy,
            ("data.json", r#"{"x": {"y": 1}}"#),
            ("x/data.json", r#"{"y": 2}"#),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, PolicyError::Data { path, .. } if path == "x/data.json"),
            "{err:?}"
        );
    }

    #[test]
    fn bad_paths_and_files_are_refused() {
        let policy = "package p\n";
        for path in [
            "",
            "/abs.rego",
            "a/../b.rego",
            "./a.rego",
            "a//b.rego",
            "a\\b.rego",
        ] {
            let err = Bundle::from_files(files(&[(path, policy)])).unwrap_err();
            assert!(
                matches!(err, PolicyError::InvalidPath { .. }),
                "{path}: {err:?}"
            );
        }
        let err =
            Bundle::from_files(files(&[("README.md", "hi"), ("p.rego", policy)])).unwrap_err();
        assert!(
            matches!(err, PolicyError::UnsupportedFile { .. }),
            "{err:?}"
        );
        let err = Bundle::from_files(files(&[("p.rego", policy), ("p.rego", policy)])).unwrap_err();
        assert!(matches!(err, PolicyError::DuplicatePath { .. }), "{err:?}");
        let big = "#".repeat(MAX_FILE_BYTES as usize + 1);
        let err = Bundle::from_files(files(&[("p.rego", &big)])).unwrap_err();
        assert!(matches!(err, PolicyError::FileTooLarge { .. }), "{err:?}");
        let many: Vec<(String, String)> = (0..=MAX_BUNDLE_FILES)
            .map(|i| (format!("p{i}.rego"), format!("package p{i}\n")))
            .collect();
        assert!(matches!(
            Bundle::from_files(many),
            Err(PolicyError::TooManyFiles { .. })
        ));
    }

    #[test]
    fn a_package_split_across_files_is_refused() {
        let err = Bundle::from_files(files(&[
            ("lib/a.rego", "package lib\n\nx := 1\n"),
            ("lib/b.rego", "package lib\n\ny := 2\n"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "lib/b.rego declares package lib, which lib/a.rego declares too: airlock requires \
             each package in one file (merge them; see docs/policy.md#one-file-per-package)"
        );
    }

    /// Why packages must not be split: regorus 0.14 evaluates a default-only rule of the second
    /// file of a package as undefined when the rule is reached from another package. Should
    /// this test start failing after a regorus upgrade, the bug is fixed and
    /// [`PolicyError::SplitPackage`] can go.
    #[test]
    fn regorus_still_misevaluates_defaults_in_split_packages() {
        let mut engine = Engine::new();
        for (path, rego) in [
            ("a1.rego", "package a\n\nz := 1\n"),
            (
                "a2.rego",
                "package a\n\nm := concat(\"\", [\"x\", d]) if input.version == 1\n\ndefault d := \"D\"\n",
            ),
            ("b.rego", "package b\n\nimport data.a\n\nr := a.m\n"),
        ] {
            engine.add_policy(path.to_owned(), rego.to_owned()).unwrap();
        }
        engine.set_input(Value::from_json_str(r#"{"version": 1}"#).unwrap());
        assert_eq!(
            engine.eval_rule("data.a.m".to_owned()).unwrap(),
            Value::from("xD")
        );
        assert_eq!(
            engine.eval_rule("data.b.r".to_owned()).unwrap(),
            Value::Undefined
        );
    }

    #[test]
    fn load_reads_policy_and_data_files_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("gates/staging")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(
            root.join("gates/staging/gate.rego"),
            "package airlock.gates.staging\n",
        )
        .unwrap();
        fs::write(root.join("gates/data.json"), r#"{"k": 1}"#).unwrap();
        fs::write(root.join("README.md"), "ignored").unwrap();
        fs::write(root.join(".git/x.rego"), "not rego").unwrap();
        fs::write(root.join(".hidden.rego"), "not rego").unwrap();
        let bundle = Bundle::load(root).unwrap();
        let paths: Vec<&str> = bundle.files().iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["gates/data.json", "gates/staging/gate.rego"]);
        assert_eq!(
            bundle.packages().collect::<Vec<_>>(),
            ["data.airlock.gates.staging"]
        );
        // The same files from memory give the same bundle.
        let again = Bundle::from_files(bundle.files().to_vec()).unwrap();
        assert_eq!(again.digest(), bundle.digest());
    }

    #[cfg(unix)]
    #[test]
    fn load_follows_file_links_but_not_directory_links() {
        // The layout of a Kubernetes ConfigMap volume.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("..2026_11_25/sub")).unwrap();
        fs::write(root.join("..2026_11_25/gate.rego"), "package g\n").unwrap();
        std::os::unix::fs::symlink("..2026_11_25", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/gate.rego", root.join("gate.rego")).unwrap();
        std::os::unix::fs::symlink("..2026_11_25/sub", root.join("loop")).unwrap();
        let bundle = Bundle::load(root).unwrap();
        let paths: Vec<&str> = bundle.files().iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["gate.rego"]);
    }

    #[test]
    fn load_enforces_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("p.rego"), "package p\n").unwrap();
        fs::write(
            dir.path().join("big.json"),
            vec![b' '; MAX_FILE_BYTES as usize + 1],
        )
        .unwrap();
        assert!(matches!(
            Bundle::load(dir.path()),
            Err(PolicyError::FileTooLarge { .. })
        ));
        fs::remove_file(dir.path().join("big.json")).unwrap();
        fs::write(dir.path().join("bin.json"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            Bundle::load(dir.path()),
            Err(PolicyError::NotUtf8 { .. })
        ));

        let deep = tempfile::tempdir().unwrap();
        let mut path = deep.path().to_owned();
        for _ in 0..=MAX_DIRECTORY_DEPTH {
            path.push("d");
        }
        fs::create_dir_all(&path).unwrap();
        assert!(matches!(
            Bundle::load(deep.path()),
            Err(PolicyError::TooDeep { .. })
        ));

        let missing = deep.path().join("nope");
        assert!(matches!(
            Bundle::load(&missing),
            Err(PolicyError::Io { .. })
        ));
    }

    #[test]
    fn test_rules_are_found_by_name_at_the_start_of_a_line() {
        let bundle = Bundle::from_files(files(&[(
            "p_test.rego",
            "package p_test\n\ntest_a if true\n\ntest_b := 1\n\n  test_indented if true\n\nnot_a_test if true\n\ndoc := `\ntest_in_a_string\n`\n",
        )]))
        .unwrap();
        assert_eq!(bundle.tests, ["data.p_test.test_a", "data.p_test.test_b"]);
    }

    #[test]
    fn debug_output_is_short() {
        let text = format!("{:?}", default_bundle());
        assert!(
            text.contains("sha256:") && text.contains("prod.rego"),
            "{text}"
        );
        assert!(text.len() < 1_000, "{text}");
    }
}
