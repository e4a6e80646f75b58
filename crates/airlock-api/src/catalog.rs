//! What is where: stages, repositories, tags, channels and their history, and an artifact's status across stages.
//!
//! Every list is filtered by the caller's rights (a principal sees only repositories it may
//! pull) and paged: `n` entries after the cursor `last`; `next` is the cursor of the following
//! page, `null` on the last one. A page may hold fewer than `n` entries when some were hidden by
//! the rights filter, so a client follows `next` until it is `null`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/stages`: the configured stages in pipeline order (a short list from the
/// configuration, never paged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageList {
    /// The stages, in the order artifacts move through them.
    pub stages: Vec<StageInfo>,
}

/// One stage: how content enters it, its gate and whether it is frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageInfo {
    /// The stage name, the first segment of its repository names (`prod`).
    pub name: String,
    /// `push` (builders push into it) or `gated` (content arrives only by promotion).
    pub kind: String,
    /// The stages whose artifacts may be promoted into this one (empty for a push stage).
    pub from: Vec<String>,
    /// The movable channel tags of a gated stage (`stable`), moved only by promotion or rollback.
    pub channel_tags: Vec<String>,
    /// The gate deciding promotions into a gated stage; `null` for a push stage.
    pub gate: Option<GateSummary>,
    /// The freeze on the stage, `null` when promotions into it are open.
    pub frozen: Option<FreezeInfo>,
}

/// What a gate asks of a promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GateSummary {
    /// The Rego query that decides (`data.airlock.gates.prod`).
    pub query: String,
    /// Approvals every promotion needs (the policy may ask for more).
    pub approvals: u32,
    /// The role approvers must hold on the target repository.
    pub approver_role: String,
    /// When approvals must be independent: `always`, `critical` or `off`.
    pub independent: String,
    /// Repository path patterns that need more approvals, with how many.
    pub critical: Vec<CriticalRule>,
    /// The Rego query that decides rollbacks in the stage.
    pub rollback_query: String,
}

/// Repositories that need more approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CriticalRule {
    /// Repository path patterns without the stage (`team/payments/*`).
    pub repositories: Vec<String>,
    /// Approvals they need.
    pub approvals: u32,
}

/// A stage freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FreezeInfo {
    /// Why the stage is frozen.
    pub reason: String,
    /// Who froze it (`anomaly-detector` for an automatic freeze).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Paging of a list: at most `n` entries after the cursor `last`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// `GET /api/v1/repositories` query: an optional stage and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepositoriesQuery {
    /// Only this stage (`prod`); all stages when unset.
    #[param(pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")]
    pub stage: Option<String>,
    /// Entries per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page (a repository name).
    pub last: Option<String>,
}

/// `GET /api/v1/repositories`: repositories holding at least one manifest, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryPage {
    /// The repositories on this page.
    pub repositories: Vec<RepositoryEntry>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    pub next: Option<String>,
}

/// One repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryEntry {
    /// The stage-qualified name (`prod/team/app`).
    pub name: String,
    /// Its stage (`prod`).
    pub stage: String,
    /// Its path without the stage (`team/app`).
    pub path: String,
}

/// `GET /api/v1/tags` query: the repository and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagsQuery {
    /// The stage-qualified repository (`prod/team/app`).
    #[param(
        pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$",
        max_length = 255
    )]
    pub repository: String,
    /// Entries per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page (a tag).
    pub last: Option<String>,
}

/// `GET /api/v1/tags`: a repository's tags by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagPage {
    /// The repository (`prod/team/app`).
    pub repository: String,
    /// The tags on this page.
    pub tags: Vec<TagEntry>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    pub next: Option<String>,
}

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagEntry {
    /// The tag.
    pub name: String,
    /// The manifest it names.
    pub digest: String,
    /// When it was last set (RFC 3339).
    pub updated: String,
}

/// `GET /api/v1/channels/history` query: the repository, the channel tag and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChannelHistoryQuery {
    /// The stage-qualified repository in a gated stage (`prod/team/app`).
    #[param(
        pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$",
        max_length = 255
    )]
    pub repository: String,
    /// A channel tag of that stage (`stable`).
    #[param(pattern = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")]
    pub channel: String,
    /// Entries per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// `GET /api/v1/channels/history`: every move of a channel tag, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelHistory {
    /// The repository (`prod/team/app`).
    pub repository: String,
    /// The channel tag.
    pub channel: String,
    /// The moves on this page, newest first.
    pub moves: Vec<ChannelMoveInfo>,
    /// The cursor of the next (older) page (`last=`), `null` on the last page.
    pub next: Option<String>,
}

/// One move of a channel tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelMoveInfo {
    /// The digest the tag was moved to.
    pub digest: String,
    /// `promote` or `rollback`.
    pub action: String,
    /// The promotion that moved it (`null` for a rollback).
    pub promotion: Option<String>,
    /// Who moved it: who completed the promotion (its requester, or the approver whose
    /// approval completed it), or who rolled back.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// `GET /api/v1/status` query: a repository name, path or pattern, and paging for patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// `prod/team/app` (that stage only), `team/app` (every stage) or a pattern `team/*`.
    #[param(
        pattern = r"^(\*|[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*(/\*)?)$",
        max_length = 255
    )]
    pub repository: String,
    /// For a pattern: repository paths per page (default 20, at most 100). For one repository:
    /// artifacts per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page (for a pattern, a repository path; for one
    /// repository, the `next` of its status).
    pub last: Option<String>,
}

/// `GET /api/v1/status/{path}` query: paging of the repository's artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusPathQuery {
    /// Artifacts per page (default 100, at most 1000), counted over every stage shown.
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// `GET /api/v1/status/{path}`: which digest is in which stage for one repository path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepositoryStatus {
    /// The repository path without stage (`team/app`).
    pub repository: String,
    /// The stages the caller may read, in pipeline order (one, for a stage-qualified name). A
    /// page holds at most `n` artifacts, stage after stage: a stage may show again on the next
    /// page with the rest of its artifacts, and later stages may only show on a later page.
    pub stages: Vec<StageStatus>,
    /// The cursor of the page with the next artifacts (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /api/v1/status?repository=team/*`: the status of every repository path matching a
/// pattern, paged by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusPage {
    /// The pattern asked for.
    pub pattern: String,
    /// The matching repository paths on this page, by path, each with its first page of
    /// artifacts (follow its own `next` on `GET /api/v1/status/{path}` for the rest).
    pub repositories: Vec<RepositoryStatus>,
    /// The cursor of the next page (`last=`), `null` on the last page.
    pub next: Option<String>,
}

/// One stage of a repository path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageStatus {
    /// The stage.
    pub stage: String,
    /// The stage-qualified repository (`prod/team/app`).
    pub repository: String,
    /// Why the stage is frozen, `null` when it is not.
    pub frozen: Option<String>,
    /// The artifacts in the repository on this page (not signatures or attestations), oldest
    /// first.
    pub artifacts: Vec<ArtifactStatus>,
    /// The recent moves of each channel tag of the stage (gated stages).
    pub channels: Vec<ChannelRecent>,
}

/// One artifact in one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactStatus {
    /// Its digest.
    pub digest: String,
    /// Its tags in this repository.
    pub tags: Vec<String>,
    /// The promotion that brought it into this stage (`null` when it was pushed).
    pub promotion: Option<String>,
    /// Who requested that promotion.
    pub promoted_by: Option<String>,
    /// When that promotion was requested (RFC 3339).
    pub requested_at: Option<String>,
    /// When it was promoted (RFC 3339).
    pub promoted_at: Option<String>,
    /// Who approved that promotion, and when.
    pub approvals: Vec<ApprovalInfo>,
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalInfo {
    /// The approver.
    pub principal: String,
    /// Their comment.
    pub comment: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// The most recent moves of one channel tag (newest first; `airlock channels history` has all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelRecent {
    /// The channel tag.
    pub channel: String,
    /// Its latest moves, newest first (at most 5).
    pub moves: Vec<ChannelMoveInfo>,
}
