//! What airlock believes about an artifact, and why.
//!
//! Pure functions, no I/O:
//!
//! - [`keys`]: public keys (ECDSA P-256/P-384, Ed25519, RSA), their ids, signing keys, and
//!   cosign's encrypted private key files;
//! - [`cosign`]: cosign's simple-signing payload, media types and tag scheme;
//! - [`dsse`]: DSSE envelopes and their pre-authentication encoding;
//! - [`intoto`]: in-toto Statements v0.1 and v1;
//! - [`verify`]: the keyring as the verifier sees it, and the verdict for one piece of evidence;
//! - [`facts`]: what a verified predicate says (provenance, SBOM components and licenses,
//!   vulnerabilities, test results, Scorecard results), derived once at ingestion;
//! - [`dependencies`]: what an SBOM's facts say about the health of the dependencies (sources,
//!   unidentifiable components, duplicates, direct and transitive counts).

#![forbid(unsafe_code)]

pub mod cosign;
pub mod dependencies;
pub mod dsse;
mod error;
pub mod facts;
pub mod intoto;
pub mod keys;
pub mod verify;

pub use error::TrustError;
