//! Promotions, approvals, rejections, rollbacks, freezes, decision records and the policy bundle.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{ErrorBody, ErrorDetail};

/// `POST /api/v1/promotions`: request a promotion (or, with `dry_run`, only evaluate the gate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionRequest {
    /// The source repository with its stage, e.g. `dev/team/app`.
    #[schema(
        pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$",
        max_length = 255
    )]
    pub source: String,
    /// The artifact in the source: a tag or a `sha256:` digest.
    #[schema(
        pattern = r"^([A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"
    )]
    pub reference: String,
    /// The target stage (a gated stage whose `from` lists the source's stage).
    #[schema(pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")]
    pub to: String,
    /// Tags to set in the target; `null`: the artifact's tags in the source.
    #[serde(default)]
    #[schema(value_type = Option<Vec<TagName>>)]
    pub tags: Option<Vec<String>>,
    /// The channel tag to move; `null`: the target stage's first channel tag.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]
    pub channel: Option<String>,
    /// Evaluate the gate only: nothing is recorded or changed.
    #[serde(default)]
    pub dry_run: bool,
    /// An emergency promotion's reason (needs the break-glass role).
    #[serde(default)]
    #[schema(pattern = r"\S")]
    pub break_glass: Option<String>,
}

/// A tag: 1-128 characters of `[A-Za-z0-9._-]`, not starting with `.` or `-` (the schema of the
/// tags a promotion request names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagName(pub String);

impl utoipa::PartialSchema for TagName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"))
            .description(Some(
                "A tag: 1-128 characters of [A-Za-z0-9._-], not starting with '.' or '-'.",
            ))
            .into()
    }
}

impl ToSchema for TagName {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("TagName")
    }
}

/// One policy violation (a deny or a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Violation {
    /// A stable rule id, e.g. `prod.high_vulnerabilities` or `airlock.rejected`.
    pub rule: String,
    /// What is wrong, specifically.
    pub msg: String,
    /// What to do about it.
    pub remediation: String,
    /// Where the rule is documented.
    #[serde(default)]
    pub docs: Option<String>,
}

/// A gate's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    /// Whether the gate allows it (no deny violation).
    pub allowed: bool,
    /// Why it is refused; empty when allowed.
    pub deny: Vec<Violation>,
    /// What is worth knowing but does not block.
    pub warn: Vec<Violation>,
    /// How many approvals the policy asks for, if it says.
    #[serde(default)]
    pub approvals: Option<u32>,
    /// Why the policy could not be evaluated, if it could not (then `deny` says the same).
    #[serde(default)]
    pub error: Option<String>,
}

/// An approval of a promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// Who approved.
    pub principal: String,
    /// The approver's comment.
    pub comment: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// A promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Promotion {
    /// Its id, `prm_...`.
    pub id: String,
    /// `evaluating`, `pending_approval`, `promoted`, `denied` (by the gate, or rejected by an
    /// approver: the decision says which), `expired` or `cancelled`.
    pub state: String,
    /// The source repository with its stage.
    pub source: String,
    /// The target repository with its stage.
    pub target: String,
    /// The artifact's digest.
    pub digest: String,
    /// The tags it sets in the target.
    pub tags: Vec<String>,
    /// The channel tag it moves, if any.
    pub channel: Option<String>,
    /// Who requested it.
    pub requested_by: String,
    /// How many approvals it needs.
    pub approvals_required: u32,
    /// The approvals so far (empty in lists).
    pub approvals: Vec<Approval>,
    /// The break-glass reason, for an emergency promotion.
    pub break_glass: Option<String>,
    /// The last decision record's id (`airlock decisions show`).
    pub decision: Option<String>,
    /// The promotion attestation's digest, once promoted.
    pub attestation: Option<String>,
    /// When it was requested (RFC 3339).
    pub created: String,
    /// When its approvals are due (RFC 3339).
    pub expires: String,
    /// When it was decided finally (RFC 3339), if it was.
    pub decided: Option<String>,
    /// The last decision's result (`GET /api/v1/promotions/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_result: Option<Decision>,
}

/// The answer to a promotion request, dry run or approval. A denial answers 403 with this body
/// and `error` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionOutcome {
    /// The promotion (`null` for a dry run).
    pub promotion: Option<Promotion>,
    /// The gate's decision.
    pub decision: Decision,
    /// The decision record (`null` for a dry run).
    pub decision_id: Option<String>,
    /// Approvals required.
    pub approvals_required: u32,
    /// Set when the gate denied it: `POLICY_DENIED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `GET /api/v1/promotions`: a page of the promotions the caller may read, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromotionList {
    /// The promotions on this page. A page may hold fewer than `n` when some were hidden from
    /// the caller, so follow `next` until it is `null`.
    pub promotions: Vec<Promotion>,
    /// The cursor of the next (older) page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// Filters of `GET /api/v1/promotions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromotionListQuery {
    /// Only promotions in this state (any other value is refused with 400, naming the states).
    #[param(value_type = Option<PromotionStateName>)]
    pub state: Option<String>,
    /// Only this repository path, without stage (`team/app`).
    pub repository: Option<String>,
    /// Entries per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// The states of a promotion, as a list filter names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromotionStateName {
    /// The gate is being evaluated.
    Evaluating,
    /// The gate allowed it; approvals are missing.
    PendingApproval,
    /// The artifact is in the target stage.
    Promoted,
    /// The gate refused it, or an approver rejected it.
    Denied,
    /// Its approvals did not arrive in time.
    Expired,
    /// Its requester withdrew it.
    Cancelled,
}

/// `POST /api/v1/promotions/{id}/approve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// A comment recorded with the approval.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /api/v1/promotions/{id}/reject`: an eligible approver's recorded denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (recorded in the decision record and the audit log; the requester reads it).
    #[schema(pattern = r"\S")]
    pub reason: String,
}

/// `POST /api/v1/rollbacks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The repository with its (gated) stage, e.g. `prod/team/app`.
    #[schema(
        pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$",
        max_length = 255
    )]
    pub repository: String,
    /// The channel tag to move back.
    #[schema(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]
    pub channel: String,
    /// The digest to move it to; `null`: the one it named before.
    #[serde(default)]
    #[schema(pattern = r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")]
    pub to: Option<String>,
}

/// The answer to a rollback. A denial answers 403 with this body and `error` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RollbackOutcome {
    /// The repository.
    pub repository: String,
    /// The channel tag.
    pub channel: String,
    /// The digest it named.
    pub from: String,
    /// The digest it names now (or would have).
    pub to: String,
    /// The rollback gate's decision.
    pub decision: Decision,
    /// Set when the gate denied it: `POLICY_DENIED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `POST /api/v1/stages/{stage}/freeze`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeRequest {
    /// Why (shown to everyone whose promotion the freeze refuses).
    #[schema(pattern = r"\S")]
    pub reason: String,
}

/// A stage's freeze after a freeze or unfreeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FreezeState {
    /// The stage.
    pub stage: String,
    /// Whether it is frozen now.
    pub frozen: bool,
    /// The freeze's reason (after a freeze).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether an unfreeze lifted a freeze (`false`: it was not frozen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
}

/// `GET /api/v1/decisions/{id}`: a decision record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionRecord {
    /// Its id, `dec_...`.
    pub id: String,
    /// The promotion it decided, if any.
    pub promotion: Option<String>,
    /// `promote`, `rollback` or `reject` (an approver's rejection, not a policy evaluation).
    pub action: String,
    /// The policy query evaluated (empty for a rejection).
    pub query: String,
    /// The policy bundle's digest.
    pub policy: String,
    /// Whether it allowed.
    pub allowed: bool,
    /// The input document (see docs/policy.md).
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The result.
    pub result: Decision,
    /// When (RFC 3339).
    pub created: String,
}

/// `POST /api/v1/decisions/{id}/replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replay {
    /// The decision record.
    pub id: String,
    /// The bundle digest it was evaluated with (and is again).
    pub policy: String,
    /// Whether the replayed result equals the stored one.
    pub identical: bool,
    /// The stored result.
    pub original: Decision,
    /// The result now.
    pub replayed: Decision,
}

/// `GET /api/v1/policy`: the bundle the server uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    /// The bundle's digest.
    pub digest: String,
    /// Its files.
    pub files: Vec<String>,
}

/// `POST /api/v1/policy/reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReloaded {
    /// The digest of the bundle now in use.
    pub digest: String,
}

/// `GET /api/v1/attestation-key` with `Accept: application/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttestationKeys {
    /// The current key's id.
    pub current: Option<String>,
    /// The current key and every key it replaced, newest first.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// A 403 answer to a promotion request or approval: the gate's denial (the outcome, with
/// `error.code` `POLICY_DENIED`) or a refusal before any decision (an error body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PromotionRefused {
    /// The gate denied it.
    Denied(Box<PromotionOutcome>),
    /// The caller may not do it.
    Refused(ErrorBody),
}

/// A 403 answer to a rollback: the rollback gate's denial (with `error.code` `POLICY_DENIED`) or
/// a refusal before any decision (an error body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RollbackRefused {
    /// The rollback gate denied it.
    Denied(RollbackOutcome),
    /// The caller may not do it.
    Refused(ErrorBody),
}
