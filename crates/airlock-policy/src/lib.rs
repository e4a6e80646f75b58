//! airlock's policy: Rego bundles, fail-closed evaluation and the bundle's own tests.
//!
//! A promotion is allowed only if the gate of its target stage says so. A gate is a Rego
//! package in a policy [`Bundle`] (a directory of Rego v1 modules and JSON data, identified by
//! its digest); the promotion service builds the input document (version [`INPUT_VERSION`],
//! documented in `docs/policy.md`) and asks [`Bundle::evaluate`] for a [`Decision`]:
//!
//! - the package must define only `deny` and `warn` (sets of [`Violation`]s: rule id, message,
//!   remediation, docs link) and optionally `approvals` (how many approvals it requires);
//! - evaluation never returns an error: a missing package, a malformed result, an evaluation
//!   error or a timeout is a denial ([`Decision::fail_closed`]);
//! - decisions are deterministic, so a stored decision can be replayed bit for bit from the
//!   stored bundle files ([`Bundle::files`], [`Bundle::from_files`]).
//!
//! [`Bundle::run_tests`] runs a bundle's `test_*` rules (`airlock policy test`), since regorus,
//! the Rego engine used here, has no test runner of its own. [`default_bundle`] is the baseline
//! policy shipped in the binary (the repository's `policies/` directory).
//!
//! Only [`Bundle::load`] touches the file system; nothing here uses the network.

#![forbid(unsafe_code)]

mod bundle;
mod decision;
mod default;
mod error;
mod testing;

pub use bundle::{Bundle, MAX_BUNDLE_FILES, MAX_DIRECTORY_DEPTH, MAX_FILE_BYTES, Waiver};
pub use decision::{DEFAULT_TIMEOUT, Decision, POLICY_ERROR_RULE, Violation};
pub use default::default_bundle;
pub use error::PolicyError;
pub use testing::{TEST_TIMEOUT, TestReport};

/// The version of the promotion input document this crate's callers build and the default
/// bundle reads (`input.version`).
pub const INPUT_VERSION: u32 = 1;
