//! What can go wrong loading a policy bundle.

use std::path::PathBuf;

/// A policy bundle could not be loaded or compiled. Evaluation never returns this: it fails
/// closed with a [`crate::Decision`] instead.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading the bundle directory or one of its files failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The bundle has more policy and data files than [`crate::MAX_BUNDLE_FILES`].
    #[error("the policy bundle has more than {limit} .rego and .json files")]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
    /// A file is larger than [`crate::MAX_FILE_BYTES`].
    #[error("{path} is {size} bytes, more than the {limit} bytes a policy bundle file may have")]
    FileTooLarge {
        /// The file's path in the bundle.
        path: String,
        /// Its size in bytes (at least; reading stops past the limit).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bundle directory nests deeper than [`crate::MAX_DIRECTORY_DEPTH`].
    #[error("{path} is nested more than {limit} directories deep in the policy bundle")]
    TooDeep {
        /// The directory's path in the bundle.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A file's path is not a relative, `/`-separated path without `.` or `..` components.
    #[error("invalid policy bundle path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files have the same path.
    #[error("the policy bundle has {path} twice")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// A file given to [`crate::Bundle::from_files`] is neither `.rego` nor `.json`.
    #[error("{path} is neither a .rego policy nor a .json data file")]
    UnsupportedFile {
        /// The path.
        path: String,
    },
    /// A file is not UTF-8 text.
    #[error("{path} is not UTF-8 text")]
    NotUtf8 {
        /// The path.
        path: String,
    },
    /// A `.rego` file does not parse as Rego v1.
    #[error("{path}: {message}")]
    Parse {
        /// The file's path in the bundle.
        path: String,
        /// The parser's message; it names the line and column.
        message: String,
    },
    /// Two `.rego` files declare the same package. regorus 0.14 can evaluate a `default` rule
    /// of such a package as undefined when another package refers to it, which could make a
    /// deny rule silently not fire, so airlock requires one file per package.
    #[error(
        "{second} declares package {package}, which {first} declares too: airlock requires \
         each package in one file (merge them; see docs/policy.md#one-file-per-package)"
    )]
    SplitPackage {
        /// The package, e.g. `airlock.lib`.
        package: String,
        /// The file declaring it first (in path order).
        first: String,
        /// The other file.
        second: String,
    },
    /// A `.json` data file is not a JSON object, or conflicts with another data file.
    #[error("data file {path}: {message}")]
    Data {
        /// The file's path in the bundle.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The modules parsed but do not compile together (e.g. an unsafe variable, a recursive
    /// rule, a call to an unknown function).
    #[error("the policy bundle does not compile: {message}")]
    Compile {
        /// regorus' message.
        message: String,
    },
    /// The bundle has no `.rego` file.
    #[error("the policy bundle has no .rego files")]
    NoPolicies,
}
