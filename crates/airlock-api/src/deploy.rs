//! Deploy-time verification (`POST /api/v1/verify`): whether each image a deployment names was
//! promoted into a stage, by which promotion, and whether that still holds now.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A request to verify image references against a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The stage the images are deployed from (`prod`).
    pub stage: String,
    /// Image references as a deployment names them: `airlock.example.com/prod/team/app@sha256:...`
    /// (the host is compared with the server's `registry_hosts` when those are set),
    /// `airlock.example.com/team/app@sha256:...` (the stage is the request's), or a tag where
    /// the server allows tags.
    pub references: Vec<String>,
    /// Also require each digest to be where its promotion's channel tag points now (not rolled
    /// back from, not superseded).
    #[serde(default)]
    pub current: bool,
}

/// The answer: one result per reference, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyAnswer {
    /// The stage verified against.
    pub stage: String,
    /// Whether every reference passed.
    pub verified: bool,
    /// One result per reference.
    pub results: Vec<VerifyResult>,
}

/// What airlock's records say about one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResult {
    /// The reference as given.
    pub reference: String,
    /// Whether it passed every check.
    pub verified: bool,
    /// The repository it was checked in (`prod/team/app`), once the reference parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The digest checked (the tag's, for a tag reference the server allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The promotion that brought it into the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<VerifiedPromotion>,
    /// The signed promotion attestation, as a reference a deploy-time tool can fetch and verify
    /// with airlock's attestation key (`cosign verify-attestation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// Why it did not pass; empty when it did.
    #[serde(default)]
    pub failures: Vec<VerifyFailure>,
}

/// The promotion a verified digest came in by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifiedPromotion {
    /// `prm_<hex>`.
    pub id: String,
    /// The decision record that allowed it (`airlock decisions show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The stage it came from.
    pub from: String,
    /// Who asked for it.
    pub requested_by: String,
    /// Who approved it, oldest first.
    pub approvals: Vec<String>,
    /// When it was decided (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<String>,
    /// The break-glass reason, for an emergency promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// Set when the digest is a manifest of an index that was promoted (a platform's image):
    /// the index's digest, which the promotion names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_index: Option<String>,
}

/// One reason a reference did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyFailure {
    /// A stable code: `REFERENCE_INVALID`, `REGISTRY_UNKNOWN`, `STAGE_MISMATCH`, `DENIED`,
    /// `TAG_REFUSED`, `TAG_UNKNOWN`, `NOT_PROMOTED`, `NOT_IN_STAGE`, `EVIDENCE_REVOKED`,
    /// `QUARANTINED`, `NOT_CURRENT`.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub remediation: String,
}

/// A request for a deploy token: pull-only access to named repositories of one stage, for a
/// cluster's `imagePullSecret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployTokenRequest {
    /// The stage the images are pulled from (`prod`).
    pub stage: String,
    /// Repository paths in that stage, without the stage (`team/app`); 1 to 20.
    pub repositories: Vec<String>,
    /// Lifetime in seconds (default 600; at most the server's `max_token_ttl_secs`).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A deploy token. The token is shown once; airlock keeps only its id.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployTokenAnswer {
    /// The token: a bearer token for `/v2`, or the password (with `username`) of Basic
    /// credentials, as a Docker config or `imagePullSecret` holds them.
    pub token: String,
    /// The user name to send with it: the principal it was issued to.
    pub username: String,
    /// Its id, as the audit log's `deploy_token.issued` entry names it.
    pub id: String,
    /// The repositories it may pull from, with their stage.
    pub repositories: Vec<String>,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

impl std::fmt::Debug for DeployTokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployTokenAnswer")
            .field("token", &"<redacted>")
            .field("username", &self.username)
            .field("id", &self.id)
            .field("repositories", &self.repositories)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What one workload of a deployment runs now (`POST /api/v1/deployments`), as a CD system or
/// an operator reports it. A report replaces the workload's earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentReport {
    /// Where it runs: a cluster, a region (1 to 253 printable characters).
    pub environment: String,
    /// What runs the images, e.g. `shop/deployment/checkout` (1 to 253 printable characters).
    pub workload: String,
    /// The stage it deploys from.
    pub stage: String,
    /// Every image reference it runs (empty: it runs nothing any more).
    pub images: Vec<String>,
}

/// The answer to a deployment report: each image verified against the stage, with `current`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentAnswer {
    /// Where it runs.
    pub environment: String,
    /// What runs the images.
    pub workload: String,
    /// The stage it deploys from.
    pub stage: String,
    /// One result per image, in the report's order.
    pub images: Vec<VerifyResult>,
    /// How many images were never promoted into the stage (each an anomaly signal `drift`).
    pub unpromoted: usize,
}

/// Query of `GET /api/v1/drift`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    /// Only this environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Reported images checked per page (default 100, at most 1000).
    #[serde(default)]
    pub n: Option<u32>,
    /// The `next` of the previous page.
    #[serde(default)]
    pub last: Option<String>,
}

/// A page of drift: reported images that are not what was promoted, or not current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftPage {
    /// Each reported image that drifted, in (environment, workload, reference) order.
    pub drift: Vec<DriftEntry>,
    /// How many reported images this page checked (drifted or not).
    pub checked: usize,
    /// The cursor of the next page, while more reported images follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One reported image that is not what its stage holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftEntry {
    /// Where it runs.
    pub environment: String,
    /// What runs it.
    pub workload: String,
    /// The stage it should come from.
    pub stage: String,
    /// The image reference as reported.
    pub reference: String,
    /// `unpromoted` (never promoted into the stage), `behind` (promoted, but its channel has
    /// moved on: a newer release or a rollback), or `unverified` (promoted, but its evidence was
    /// voided, it is quarantined, or the reference is a tag or from elsewhere).
    pub kind: String,
    /// Who reported it, and when (RFC 3339).
    pub reported_by: String,
    /// When it was reported.
    pub reported_at: String,
    /// Every check it failed, with the fix.
    pub failures: Vec<VerifyFailure>,
}
