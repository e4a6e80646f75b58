//! HTTP endpoints of promotions, approvals, rejections, rollbacks, freezes, decisions and the
//! policy bundle, answering with the `airlock_api::promotion` types.
//!
//! - `POST /api/v1/promotions` (request or `dry_run`), `GET /api/v1/promotions`,
//!   `GET /api/v1/promotions/{id}`, `POST /api/v1/promotions/{id}/approve|reject|cancel`
//! - `POST /api/v1/rollbacks`, `POST /api/v1/stages/{stage}/freeze|unfreeze`
//! - `GET /api/v1/decisions/{id}`, `POST /api/v1/decisions/{id}/replay`
//! - `GET /api/v1/policy`, `POST /api/v1/policy/reload`, `GET /api/v1/attestation-key` (PEM of
//!   the current key; with `Accept: application/json` the current and every replaced key)

use std::str::FromStr;
use std::sync::Arc;

use airlock_api::ErrorDetail;
use airlock_api::promotion as api;
use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::{Digest, Reference, RepoName, StageName, Tag};
use airlock_store::{ApprovalRow, PromotionRow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Caller, Outcome, PromoteRequest, PromotionError, PromotionService};
use crate::api::ApiError;
use crate::caller::Caller as ApiCaller;
use crate::identity::Identity;
use crate::paging::{DEFAULT_PAGE, MAX_PAGE, page_size, parse_time_cursor, time_cursor};

/// State of the promotion routes.
#[derive(Clone)]
pub struct PromotionState {
    /// The promotion service.
    pub promotions: Arc<PromotionService>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The promotion routes.
pub fn router(state: PromotionState) -> Router {
    Router::new()
        .route("/api/v1/promotions", get(list).post(request))
        .route("/api/v1/promotions/{id}", get(show))
        .route("/api/v1/promotions/{id}/approve", post(approve))
        .route("/api/v1/promotions/{id}/reject", post(reject))
        .route("/api/v1/promotions/{id}/cancel", post(cancel))
        .route("/api/v1/rollbacks", post(rollback))
        .route("/api/v1/stages/{stage}/freeze", post(freeze))
        .route("/api/v1/stages/{stage}/unfreeze", post(unfreeze))
        .route("/api/v1/decisions/{id}", get(decision))
        .route("/api/v1/decisions/{id}/replay", post(replay))
        .route("/api/v1/policy", get(policy))
        .route("/api/v1/policy/reload", post(reload))
        .route("/api/v1/attestation-key", get(attestation_key))
        .with_state(state)
}

impl From<ApiCaller> for Caller {
    fn from(caller: ApiCaller) -> Self {
        Self {
            who: caller.who,
            actor: caller.actor,
        }
    }
}

impl From<PromotionError> for ApiError {
    fn from(err: PromotionError) -> Self {
        let message = err.to_string();
        match err {
            PromotionError::BadRequest { remediation, .. } => {
                ApiError::bad_request(message, remediation)
            }
            PromotionError::UnknownStage { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "STAGE_UNKNOWN",
                message,
                "name one of the configured stages (the message lists them)",
            ),
            PromotionError::UnknownState { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                message,
                "filter by one of the states the message lists (--state)",
            ),
            PromotionError::Forbidden { remediation, .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message, remediation)
            }
            PromotionError::Approval(airlock_core::ApprovalRefusal::NotPending { .. }) => {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "CONFLICT",
                    message,
                    "the promotion is closed; request it again with `airlock promote`",
                )
            }
            PromotionError::Approval(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "APPROVAL_REFUSED",
                message,
                "another eligible approver must approve",
            ),
            PromotionError::RejectionRefused(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "REJECTION_REFUSED",
                message,
                "an eligible approver (the gate's role on the target; not the requester, a pusher or a builder) must reject it",
            ),
            PromotionError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "check the name, digest or id",
            ),
            PromotionError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                message,
                "look at the current state (airlock promotions show ID, airlock status)",
            ),
            PromotionError::NotReplayable { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "NOT_REPLAYABLE",
                message,
                "replay a decision made by a gate (action promote or rollback); `airlock decisions show` prints this one",
            ),
            PromotionError::KeyringMoved => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                message,
                "the keyring is being changed; retry in a moment",
            ),
            PromotionError::PolicyMismatch { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "POLICY_MISMATCH",
                message,
                "deploy the same policy directory to every replica, then reload the policy (airlock policy reload, or SIGHUP to each airlock serve)",
            ),
            PromotionError::InvalidBundle { .. } | PromotionError::BundleTestsFail { .. } => {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "POLICY_INVALID",
                    message,
                    "fix the policy bundle; `airlock policy test DIR` runs its tests",
                )
            }
            PromotionError::GateRole { ref stage, .. } => {
                tracing::error!(error = %err, "gate configuration");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "CONFIG_INVALID",
                    message,
                    format!(
                        "an operator sets [gates.{stage}].approvals.role to a role airlock knows (e.g. approver) and restarts airlock"
                    ),
                )
            }
            PromotionError::Stages(_) => ApiError::internal(&err),
            PromotionError::Evidence(ref cause) => {
                tracing::error!(error = %cause, "evidence service failed during a promotion");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "EVIDENCE_UNAVAILABLE",
                    "the artifact's evidence could not be read, so the promotion was not decided",
                    "retry; if it fails again, an operator finds the cause in the server log under this request's id",
                )
            }
            PromotionError::Store(err) => ApiError::storage(&err),
        }
    }
}

/// Whether the caller may read `repository` (pull, or pull in a gated stage): promotions and
/// decisions are shown only for repositories the caller can read.
fn readable(state: &PromotionState, caller: &Caller, repository: &str) -> bool {
    may_pull(&state.identity, caller, repository)
}

/// Whether `caller` may pull `repository` (everyone may with access control off).
fn may_pull(identity: &Identity, caller: &Caller, repository: &str) -> bool {
    match (&caller.who, RepoName::from_str(repository)) {
        (None, _) => true,
        (Some(who), Ok(repo)) => identity.grants_allow(who, &repo, airlock_core::Action::Pull),
        (Some(_), Err(_)) => false,
    }
}

/// A promotion is readable with pull access to its source or its target repository (the web
/// console lists promotions by the same rule).
pub(crate) fn promotion_readable(identity: &Identity, caller: &Caller, row: &PromotionRow) -> bool {
    may_pull(
        identity,
        caller,
        &format!("{}/{}", row.target_stage, row.repository_path),
    ) || may_pull(
        identity,
        caller,
        &format!("{}/{}", row.source_stage, row.repository_path),
    )
}

/// A decision is readable with pull access to the repository it decided about.
fn decision_readable(
    state: &PromotionState,
    caller: &Caller,
    record: &airlock_store::DecisionRow,
) -> bool {
    let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
    ["/target/repository", "/artifact/name"]
        .iter()
        .any(|pointer| {
            input
                .pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|repo| readable(state, caller, repo))
        })
}

/// Refuses, with the same 404 as `show`, a caller who may not read promotion `id`, before any
/// state or eligibility check could tell them about it; `admin_passes` lets an access-admin
/// through (cancelling).
async fn require_readable(
    state: &PromotionState,
    caller: &Caller,
    id: &str,
    admin_passes: bool,
) -> Result<(), ApiError> {
    if admin_passes && caller.has(Permission::ManageAccess, &PermissionTarget::Global) {
        return Ok(());
    }
    let (row, _) = state.promotions.show(id).await?;
    if !promotion_readable(&state.identity, caller, &row) {
        return Err(not_visible("such promotion"));
    }
    Ok(())
}

fn not_visible(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no {what} you may read"),
        "check the id; you need pull access to its repository",
    )
}

fn time(millis: i64) -> String {
    airlock_core::audit::rfc3339_millis(millis)
}

/// A stored decision result (written by airlock as a [`airlock_policy::Decision`]), as the API
/// and the web console show it.
pub(crate) fn stored_decision(text: &str) -> Result<api::Decision, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::storage(&airlock_store::StoreError::Corrupt(format!(
            "a stored decision result does not parse: {e}"
        )))
    })
}

/// A policy decision as the API shows it.
fn decision_view(decision: &airlock_policy::Decision) -> api::Decision {
    let violations = |list: &[airlock_policy::Violation]| {
        list.iter()
            .map(|v| api::Violation {
                rule: v.rule.clone(),
                msg: v.msg.clone(),
                remediation: v.remediation.clone(),
                docs: v.docs.clone(),
            })
            .collect()
    };
    api::Decision {
        allowed: decision.allowed,
        deny: violations(&decision.deny),
        warn: violations(&decision.warn),
        approvals: decision.approvals,
        error: decision.error.clone(),
    }
}

/// A promotion as the API shows it.
pub fn promotion_view(row: &PromotionRow, approvals: &[ApprovalRow]) -> api::Promotion {
    api::Promotion {
        id: row.id.clone(),
        state: row.state.to_string(),
        source: format!("{}/{}", row.source_stage, row.repository_path),
        target: format!("{}/{}", row.target_stage, row.repository_path),
        digest: row.digest.to_string(),
        tags: row.tags.iter().map(Tag::to_string).collect(),
        channel: row.channel.as_ref().map(Tag::to_string),
        requested_by: row.requested_by.clone(),
        approvals_required: row.approvals_required,
        approvals: approvals
            .iter()
            .map(|a| api::Approval {
                principal: a.principal.clone(),
                comment: a.comment.clone(),
                at: time(a.created_at),
            })
            .collect(),
        break_glass: row.break_glass.clone(),
        decision: row.last_decision.clone(),
        attestation: row.attestation.clone(),
        created: time(row.created_at),
        expires: time(row.expires_at),
        decided: row.decided_at.map(time),
        decision_result: None,
    }
}

/// Reads a JSON request body as `T`, answering 400 naming `what` the body should be.
fn json_body<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    crate::api::json_body(
        body,
        what,
        "send the JSON body docs/promotion.md describes for this request (GET /api/v1/openapi.json has its schema)",
    )
}

fn bad_field(field: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        format!("{field}: {err}"),
        format!("correct the request's `{field}`"),
    )
}

async fn outcome_response(
    state: &PromotionState,
    outcome: Outcome,
) -> Result<(StatusCode, Json<api::PromotionOutcome>), ApiError> {
    let promotion = match &outcome.promotion {
        Some(row) => {
            let approvals = state
                .promotions
                .metadata
                .approvals(&row.id)
                .await
                .map_err(|e| ApiError::storage(&e))?;
            Some(promotion_view(row, &approvals))
        }
        None => None,
    };
    let denied = !outcome.decision.allowed;
    let error = denied.then(|| {
        let rules: Vec<String> = outcome
            .decision
            .deny
            .iter()
            .map(|v| v.rule.clone())
            .collect();
        ErrorDetail {
            code: "POLICY_DENIED".into(),
            message: format!("the gate denied the promotion: {}", rules.join(", ")),
            remediation: "fix each violation as its remediation says, then promote again".into(),
        }
    });
    let status = if denied {
        StatusCode::FORBIDDEN
    } else if promotion.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(api::PromotionOutcome {
            promotion,
            decision: decision_view(&outcome.decision),
            decision_id: outcome.decision_id,
            approvals_required: outcome.approvals_required,
            error,
        }),
    ))
}

/// Request a promotion, or with `dry_run` only evaluate the target's gate.
#[utoipa::path(
    post,
    path = "/api/v1/promotions",
    tag = "promotion",
    request_body = api::PromotionRequest,
    responses(
        (status = 200, description = "Dry run: the gate's decision (allowed)", body = api::PromotionOutcome),
        (status = 201, description = "Promoted, or pending approval", body = api::PromotionOutcome),
        (status = 400, description = "Malformed request, a stage that is not configured (STAGE_UNKNOWN names the configured ones), wrong stage flow, bad tag or channel", body = airlock_api::ErrorBody),
        (status = 403, description = "Denied by the gate (the outcome with `error` POLICY_DENIED) or no promoter role (an error body)", body = api::PromotionRefused),
        (status = 404, description = "The artifact is not in the source repository", body = airlock_api::ErrorBody),
        (status = 409, description = "A live promotion of the artifact exists, or a target tag names another digest", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage or the evidence service failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn request(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<api::PromotionOutcome>), ApiError> {
    let body: api::PromotionRequest = json_body(&body, "promotion request")?;
    let source = RepoName::from_str(&body.source).map_err(|e| bad_field("source", e))?;
    let reference = Reference::from_str(&body.reference).map_err(|e| bad_field("reference", e))?;
    let target_stage = StageName::from_str(&body.to).map_err(|e| bad_field("to", e))?;
    let tags = body
        .tags
        .map(|tags| {
            tags.iter()
                .map(|t| Tag::from_str(t).map_err(|e| bad_field("tags", e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let channel = body
        .channel
        .map(|c| Tag::from_str(&c).map_err(|e| bad_field("channel", e)))
        .transpose()?;
    let outcome = state
        .promotions
        .request(
            PromoteRequest {
                source,
                reference,
                target_stage,
                tags,
                channel,
                dry_run: body.dry_run,
                break_glass: body.break_glass,
            },
            &caller.into(),
        )
        .await?;
    outcome_response(&state, outcome).await
}

/// Promotions the caller may read, newest first, a page at a time (`n`, `last`, `next`).
#[utoipa::path(
    get,
    path = "/api/v1/promotions",
    tag = "promotion",
    params(api::PromotionListQuery),
    responses(
        (status = 200, description = "A page of promotions", body = api::PromotionList),
        (status = 400, description = "Unknown state filter (the message lists the states), a page size out of range, a cursor this list did not hand out, or a malformed query", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn list(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    query: Result<Query<api::PromotionListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<api::PromotionList>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(
            format!("invalid query: {}", e.body_text()),
            format!(
                "give each of `state`, `repository`, `n` and `last` at most once, `n` a whole number from 1 to {MAX_PAGE}"
            ),
        )
    })?;
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let before = parse_time_cursor(query.last.as_deref())?;
    let caller = Caller::from(caller);
    // One row past the page says whether another page follows.
    let mut rows = state
        .promotions
        .list(
            query.state.as_deref(),
            query.repository.as_deref(),
            before.as_ref(),
            limit + 1,
        )
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| time_cursor(r.created_at, &r.id))
    } else {
        None
    };
    let promotions = rows
        .iter()
        .filter(|r| promotion_readable(&state.identity, &caller, r))
        .map(|r| promotion_view(r, &[]))
        .collect();
    Ok(Json(api::PromotionList { promotions, next }))
}

/// A promotion with its approvals and its last decision's result.
#[utoipa::path(
    get,
    path = "/api/v1/promotions/{id}",
    tag = "promotion",
    params(("id" = String, Path, description = "The promotion id (prm_...)")),
    responses(
        (status = 200, description = "The promotion", body = api::Promotion),
        (status = 404, description = "No such promotion the caller may read", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn show(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<api::Promotion>, ApiError> {
    let caller = Caller::from(caller);
    let (row, approvals) = state.promotions.show(&id).await?;
    if !promotion_readable(&state.identity, &caller, &row) {
        return Err(not_visible("such promotion"));
    }
    let mut promotion = promotion_view(&row, &approvals);
    if let Some(decision) = &row.last_decision {
        let record = state.promotions.decision(decision).await?;
        promotion.decision_result = Some(stored_decision(&record.result)?);
    }
    Ok(Json(promotion))
}

/// Approve a promotion pending approval; the approval completing the set decides it again and
/// promotes it.
#[utoipa::path(
    post,
    path = "/api/v1/promotions/{id}/approve",
    tag = "promotion",
    params(("id" = String, Path, description = "The promotion id (prm_...)")),
    request_body(content = api::ApproveRequest, description = "Optional: an empty body approves without a comment"),
    responses(
        (status = 201, description = "Approved: still pending approval, or decided again and promoted", body = api::PromotionOutcome),
        (status = 400, description = "Malformed body", body = airlock_api::ErrorBody),
        (status = 403, description = "Denied by the gate at the final decision, or refused by separation of duties (APPROVAL_REFUSED)", body = api::PromotionRefused),
        (status = 404, description = "No such promotion the caller may read (the same answer for an unknown id and one whose repository the caller may not pull)", body = airlock_api::ErrorBody),
        (status = 409, description = "The promotion is not pending approval", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage or the evidence service failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn approve(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<api::PromotionOutcome>), ApiError> {
    let body: api::ApproveRequest = if body.is_empty() {
        api::ApproveRequest::default()
    } else {
        json_body(&body, "approval")?
    };
    let caller = Caller::from(caller);
    require_readable(&state, &caller, &id, false).await?;
    let outcome = state.promotions.approve(&id, body.comment, &caller).await?;
    outcome_response(&state, outcome).await
}

/// Reject a promotion pending approval: an eligible approver's recorded denial (the same
/// separation of duties as approving). The promotion ends `denied`; its decision record names
/// who rejected it and why.
#[utoipa::path(
    post,
    path = "/api/v1/promotions/{id}/reject",
    tag = "promotion",
    params(("id" = String, Path, description = "The promotion id (prm_...)")),
    request_body = api::RejectRequest,
    responses(
        (status = 200, description = "Rejected: the promotion, now denied", body = api::Promotion),
        (status = 400, description = "Malformed body or an empty reason", body = airlock_api::ErrorBody),
        (status = 403, description = "The caller may not reject it (REJECTION_REFUSED names the rule)", body = airlock_api::ErrorBody),
        (status = 404, description = "No such promotion the caller may read (the same answer for an unknown id and one whose repository the caller may not pull)", body = airlock_api::ErrorBody),
        (status = 409, description = "The promotion is not pending approval (the message names its state)", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage or the evidence service failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn reject(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<api::Promotion>, ApiError> {
    let body: api::RejectRequest = json_body(&body, "rejection (it needs {\"reason\"})")?;
    let caller = Caller::from(caller);
    require_readable(&state, &caller, &id, false).await?;
    let row = state.promotions.reject(&id, &body.reason, &caller).await?;
    show_promotion(&state, row).await
}

/// The promotion with its approvals and last decision's result.
async fn show_promotion(
    state: &PromotionState,
    row: PromotionRow,
) -> Result<Json<api::Promotion>, ApiError> {
    let approvals = state
        .promotions
        .metadata
        .approvals(&row.id)
        .await
        .map_err(|e| ApiError::storage(&e))?;
    let mut promotion = promotion_view(&row, &approvals);
    if let Some(decision) = &row.last_decision {
        let record = state.promotions.decision(decision).await?;
        promotion.decision_result = Some(stored_decision(&record.result)?);
    }
    Ok(Json(promotion))
}

/// Cancel a promotion pending approval (or still evaluating): its requester or an access-admin.
#[utoipa::path(
    post,
    path = "/api/v1/promotions/{id}/cancel",
    tag = "promotion",
    params(("id" = String, Path, description = "The promotion id (prm_...)")),
    responses(
        (status = 200, description = "Cancelled", body = api::Promotion),
        (status = 403, description = "Neither its requester nor an access-admin", body = airlock_api::ErrorBody),
        (status = 404, description = "No such promotion the caller may read (the same answer for an unknown id and one whose repository the caller may not pull)", body = airlock_api::ErrorBody),
        (status = 409, description = "The promotion is already closed", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn cancel(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<api::Promotion>, ApiError> {
    let caller = Caller::from(caller);
    require_readable(&state, &caller, &id, true).await?;
    let row = state.promotions.cancel(&id, &caller).await?;
    Ok(Json(promotion_view(&row, &[])))
}

/// Move a channel tag back to an earlier digest, through the rollback gate.
#[utoipa::path(
    post,
    path = "/api/v1/rollbacks",
    tag = "promotion",
    request_body = api::RollbackRequest,
    responses(
        (status = 200, description = "Rolled back", body = api::RollbackOutcome),
        (status = 400, description = "Malformed request, a stage that is not configured (STAGE_UNKNOWN), or not a channel tag", body = airlock_api::ErrorBody),
        (status = 403, description = "Denied by the rollback gate (the outcome with `error` POLICY_DENIED) or no promoter role (an error body)", body = api::RollbackRefused),
        (status = 404, description = "The channel or digest is unknown", body = airlock_api::ErrorBody),
        (status = 409, description = "Nothing to roll back to", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage or the evidence service failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn rollback(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<api::RollbackOutcome>), ApiError> {
    let body: api::RollbackRequest = json_body(&body, "rollback")?;
    let repo = RepoName::from_str(&body.repository).map_err(|e| bad_field("repository", e))?;
    let channel = Tag::from_str(&body.channel).map_err(|e| bad_field("channel", e))?;
    let to = body
        .to
        .map(|d| Digest::from_str(&d).map_err(|e| bad_field("to", e)))
        .transpose()?;
    let (from, to, decision) = state
        .promotions
        .rollback(&repo, &channel, to, &caller.into())
        .await?;
    let error = (!decision.allowed).then(|| ErrorDetail {
        code: "POLICY_DENIED".into(),
        message: format!("the rollback gate denied rolling {repo}:{channel} back to {to}"),
        remediation: "roll back to another digest (--to), or promote a fixed artifact".into(),
    });
    let status = if decision.allowed {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    Ok((
        status,
        Json(api::RollbackOutcome {
            repository: repo.to_string(),
            channel: channel.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            decision: decision_view(&decision),
            error,
        }),
    ))
}

/// Freeze a gated stage: promotions into it are denied (except break-glass) until unfrozen.
#[utoipa::path(
    post,
    path = "/api/v1/stages/{stage}/freeze",
    tag = "promotion",
    params(("stage" = String, Path, description = "A gated stage", pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")),
    request_body = api::FreezeRequest,
    responses(
        (status = 200, description = "Frozen", body = api::FreezeState),
        (status = 400, description = "Malformed body, empty reason, a stage that is not configured (STAGE_UNKNOWN), or not a gated stage", body = airlock_api::ErrorBody),
        (status = 403, description = "Needs the approver role on the stage (or access-admin)", body = airlock_api::ErrorBody),
        (status = 409, description = "The stage is frozen by an anomaly", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn freeze(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(stage): Path<String>,
    body: Bytes,
) -> Result<Json<api::FreezeState>, ApiError> {
    let body: api::FreezeRequest = json_body(&body, "freeze (it needs {\"reason\"})")?;
    let stage = StageName::from_str(&stage).map_err(|e| bad_field("stage", e))?;
    state
        .promotions
        .set_freeze(&stage, Some(&body.reason), &caller.into())
        .await?;
    Ok(Json(api::FreezeState {
        stage: stage.to_string(),
        frozen: true,
        reason: Some(body.reason),
        changed: None,
    }))
}

/// Lift a stage's freeze.
#[utoipa::path(
    post,
    path = "/api/v1/stages/{stage}/unfreeze",
    tag = "promotion",
    params(("stage" = String, Path, description = "A gated stage", pattern = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")),
    responses(
        (status = 200, description = "Not frozen (any more)", body = api::FreezeState),
        (status = 400, description = "A stage that is not configured (STAGE_UNKNOWN), or not a gated stage", body = airlock_api::ErrorBody),
        (status = 403, description = "Needs the approver role on the stage (or access-admin)", body = airlock_api::ErrorBody),
        (status = 409, description = "The stage is frozen by an anomaly", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn unfreeze(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(stage): Path<String>,
) -> Result<Json<api::FreezeState>, ApiError> {
    let stage = StageName::from_str(&stage).map_err(|e| bad_field("stage", e))?;
    let changed = state
        .promotions
        .set_freeze(&stage, None, &caller.into())
        .await?;
    Ok(Json(api::FreezeState {
        stage: stage.to_string(),
        frozen: false,
        reason: None,
        changed: Some(changed),
    }))
}

/// A decision record: its input, policy digest and result.
#[utoipa::path(
    get,
    path = "/api/v1/decisions/{id}",
    tag = "promotion",
    params(("id" = String, Path, description = "The decision id (dec_...)")),
    responses(
        (status = 200, description = "The decision record", body = api::DecisionRecord),
        (status = 404, description = "No such decision the caller may read", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn decision(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<api::DecisionRecord>, ApiError> {
    let caller = Caller::from(caller);
    let record = state.promotions.decision(&id).await?;
    if !decision_readable(&state, &caller, &record) {
        return Err(not_visible("such decision"));
    }
    Ok(Json(api::DecisionRecord {
        result: stored_decision(&record.result)?,
        input: serde_json::from_str(&record.input).unwrap_or(Value::Null),
        id: record.id,
        promotion: record.promotion_id,
        action: record.action,
        query: record.query,
        policy: record.bundle_digest,
        allowed: record.allowed,
        created: time(record.created_at),
    }))
}

/// Re-evaluate a gate's decision with its stored input and bundle.
#[utoipa::path(
    post,
    path = "/api/v1/decisions/{id}/replay",
    tag = "promotion",
    params(("id" = String, Path, description = "The decision id (dec_...)")),
    responses(
        (status = 200, description = "The stored and the replayed result", body = api::Replay),
        (status = 404, description = "No such decision the caller may read, or its bundle is not stored", body = airlock_api::ErrorBody),
        (status = 409, description = "The record is an approver's rejection, not a gate's decision", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
    )
)]
async fn replay(
    State(state): State<PromotionState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<api::Replay>, ApiError> {
    let caller = Caller::from(caller);
    let record = state.promotions.decision(&id).await?;
    if !decision_readable(&state, &caller, &record) {
        return Err(not_visible("such decision"));
    }
    let (record, replayed, identical) = state.promotions.replay(&id).await?;
    Ok(Json(api::Replay {
        original: stored_decision(&record.result)?,
        replayed: decision_view(&replayed),
        id: record.id,
        policy: record.bundle_digest,
        identical,
    }))
}

/// The policy bundle the server uses.
#[utoipa::path(
    get,
    path = "/api/v1/policy",
    tag = "promotion",
    responses(
        (status = 200, description = "Its digest and files", body = api::PolicyInfo),
    )
)]
async fn policy(State(state): State<PromotionState>, _caller: ApiCaller) -> Json<api::PolicyInfo> {
    Json(state.promotions.policy_info())
}

/// Reload the policy bundle from its directory (access-admin); a bundle that fails to load or
/// whose tests fail is refused and the current one stays.
#[utoipa::path(
    post,
    path = "/api/v1/policy/reload",
    tag = "promotion",
    responses(
        (status = 200, description = "The bundle now in use", body = api::PolicyReloaded),
        (status = 403, description = "Needs the access-admin role", body = airlock_api::ErrorBody),
        (status = 422, description = "The bundle does not load or its tests fail (POLICY_INVALID)", body = airlock_api::ErrorBody),
        (status = 500, description = "Storage failed", body = airlock_api::ErrorBody),
        (status = 503, description = "Storage cannot keep writes", body = airlock_api::ErrorBody),
    )
)]
async fn reload(
    State(state): State<PromotionState>,
    caller: ApiCaller,
) -> Result<Json<api::PolicyReloaded>, ApiError> {
    let caller = Caller::from(caller);
    if !caller.has(Permission::ManageAccess, &PermissionTarget::Global) {
        return Err(PromotionError::Forbidden {
            message: "reloading the policy needs the access-admin role".into(),
            remediation: "ask an access-admin to reload it (airlock policy reload)",
        }
        .into());
    }
    let digest = state.promotions.reload_policy(&caller.actor).await?;
    Ok(Json(api::PolicyReloaded { digest }))
}

/// The current attestation public key as PEM (what `cosign verify-attestation --key` and
/// `airlock keys export-attestation-key` read); with `Accept: application/json`, the current key
/// and every key it replaced, so attestations signed before a rotation can be verified.
#[utoipa::path(
    get,
    path = "/api/v1/attestation-key",
    tag = "promotion",
    security(()),
    responses(
        (status = 200, description = "The current key (PEM), or with Accept: application/json every key",
         content(
            (String = "application/x-pem-file"),
            (api::AttestationKeys = "application/json"),
         )),
    )
)]
async fn attestation_key(State(state): State<PromotionState>, headers: HeaderMap) -> Response {
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        let keys = state.promotions.attestation_keys();
        return Json(api::AttestationKeys {
            current: keys.first().map(|k| k.key_id.clone()),
            keys: keys
                .iter()
                .map(crate::server_keys::routes::listed_json)
                .collect(),
        })
        .into_response();
    }
    (
        [("content-type", "application/x-pem-file")],
        state.promotions.attestation_public_key(),
    )
        .into_response()
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            request, list, show, approve, reject, cancel, rollback, freeze, unfreeze, decision,
            replay, policy, reload, attestation_key
        ),
        components(schemas(api::PromotionStateName, api::TagName)),
        tags((name = "promotion", description = "Promotions through the gates, approvals and rejections, rollbacks, freezes, decision records and the policy bundle"))
    )]
    struct Api;
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    // A denial's body is an outcome that also carries `error`, so it matches the error body's
    // schema too: these answers are "any of", not "exactly one of".
    if let Some(components) = doc.components.as_mut() {
        for name in ["PromotionRefused", "RollbackRefused"] {
            if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::OneOf(one_of))) =
                components.schemas.get(name).cloned()
            {
                let mut any_of = utoipa::openapi::schema::AnyOf::new();
                any_of.items = one_of.items;
                any_of.description = one_of.description;
                components.schemas.insert(
                    name.to_string(),
                    utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::AnyOf(any_of)),
                );
            }
        }
    }
    doc
}

impl axum::extract::FromRef<PromotionState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &PromotionState) -> Self {
        state.identity.clone()
    }
}

#[cfg(test)]
mod tests;
