//! HTTP endpoints of promotions, approvals, rollbacks, freezes, decisions and the policy bundle.
//!
//! - `POST /api/v1/promotions` (request or `dry_run`), `GET /api/v1/promotions`,
//!   `GET /api/v1/promotions/{id}`, `POST /api/v1/promotions/{id}/approve|cancel`
//! - `POST /api/v1/rollbacks`, `POST /api/v1/stages/{stage}/freeze|unfreeze`
//! - `GET /api/v1/decisions/{id}`, `POST /api/v1/decisions/{id}/replay`
//! - `GET /api/v1/policy`, `POST /api/v1/policy/reload`, `GET /api/v1/attestation-key` (PEM of
//!   the current key; with `Accept: application/json` the current and every replaced key)

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::{Digest, Reference, RepoName, StageName, Tag};
use airlock_store::{ApprovalRow, PromotionRow};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, Outcome, PromoteRequest, PromotionError, PromotionService};
use crate::access::authenticate;
use crate::api::ApiError;
use crate::identity::Identity;

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

impl From<PromotionError> for ApiError {
    fn from(err: PromotionError) -> Self {
        let message = err.to_string();
        match err {
            PromotionError::BadRequest(_) => {
                ApiError::bad_request(message, "fix the request as the message says")
            }
            PromotionError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask an access-admin for the role (airlock access request)",
            ),
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
                "look at the current state (airlock promotions list, airlock status)",
            ),
            PromotionError::KeyringMoved => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                message,
                "the keyring is being changed; retry in a moment",
            ),
            PromotionError::Policy(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "POLICY_INVALID",
                message,
                "fix the policy bundle; `airlock policy test DIR` runs its tests",
            ),
            PromotionError::Store(err) => ApiError::storage(&err),
        }
    }
}

async fn caller(
    identity: &Identity,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Caller, ApiError> {
    if !identity.enabled() {
        return Ok(Caller {
            who: None,
            actor: airlock_core::Actor::anonymous(Some(peer.to_string())),
        });
    }
    let who = authenticate(identity, headers, Some(peer)).await?;
    let actor = who.actor(Some(peer));
    Ok(Caller {
        who: Some(who),
        actor,
    })
}

/// Whether the caller may read `repository` (pull, or pull in a gated stage): promotions and
/// decisions are shown only for repositories the caller can read.
fn readable(state: &PromotionState, caller: &Caller, repository: &str) -> bool {
    match (&caller.who, RepoName::from_str(repository)) {
        (None, _) => true,
        (Some(who), Ok(repo)) => {
            state
                .identity
                .grants_allow(who, &repo, airlock_core::Action::Pull)
        }
        (Some(_), Err(_)) => false,
    }
}

fn promotion_readable(state: &PromotionState, caller: &Caller, row: &PromotionRow) -> bool {
    readable(
        state,
        caller,
        &format!("{}/{}", row.target_stage, row.repository_path),
    ) || readable(
        state,
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

/// The JSON form of a promotion.
pub fn promotion_json(row: &PromotionRow, approvals: &[ApprovalRow]) -> Value {
    let approvals: Vec<Value> = approvals
        .iter()
        .map(|a| json!({"principal": a.principal, "comment": a.comment, "at": time(a.created_at)}))
        .collect();
    json!({
        "id": row.id,
        "state": row.state,
        "source": format!("{}/{}", row.source_stage, row.repository_path),
        "target": format!("{}/{}", row.target_stage, row.repository_path),
        "digest": row.digest,
        "tags": row.tags,
        "channel": row.channel,
        "requested_by": row.requested_by,
        "approvals_required": row.approvals_required,
        "approvals": approvals,
        "break_glass": row.break_glass,
        "decision": row.last_decision,
        "attestation": row.attestation,
        "created": time(row.created_at),
        "expires": time(row.expires_at),
        "decided": row.decided_at.map(time),
    })
}

async fn outcome_response(state: &PromotionState, outcome: Outcome) -> Result<Response, ApiError> {
    let promotion = match &outcome.promotion {
        Some(row) => {
            let approvals = state
                .promotions
                .metadata
                .approvals(&row.id)
                .await
                .map_err(ApiError::internal)?;
            promotion_json(row, &approvals)
        }
        None => Value::Null,
    };
    let body = json!({
        "promotion": promotion,
        "decision": outcome.decision,
        "decision_id": outcome.decision_id,
        "approvals_required": outcome.approvals_required,
    });
    let denied = !outcome.decision.allowed;
    if denied {
        let rules: Vec<String> = outcome
            .decision
            .deny
            .iter()
            .map(|v| v.rule.clone())
            .collect();
        let mut body = body;
        body["error"] = json!({
            "code": "POLICY_DENIED",
            "message": format!("the gate denied the promotion: {}", rules.join(", ")),
            "remediation": "fix each violation as its remediation says, then promote again",
        });
        return Ok((StatusCode::FORBIDDEN, Json(body)).into_response());
    }
    let status = if outcome.promotion.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    /// `dev/team/app`.
    source: String,
    /// A tag or `sha256:` digest in the source.
    reference: String,
    /// The target stage.
    to: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    break_glass: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message, "see docs/promotion.md for the request format")
}

async fn request(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let body: RequestBody = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("invalid promotion request: {e}")))?;
    let source = RepoName::from_str(&body.source).map_err(|e| bad(e.to_string()))?;
    let reference = Reference::from_str(&body.reference).map_err(|e| bad(e.to_string()))?;
    let target_stage = StageName::from_str(&body.to).map_err(|e| bad(e.to_string()))?;
    let tags = body
        .tags
        .map(|tags| {
            tags.iter()
                .map(|t| Tag::from_str(t).map_err(|e| bad(e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let channel = body
        .channel
        .map(|c| Tag::from_str(&c).map_err(|e| bad(e.to_string())))
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
            &caller,
        )
        .await?;
    outcome_response(&state, outcome).await
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    repository: Option<String>,
}

async fn list(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let rows = state
        .promotions
        .list(query.state.as_deref(), query.repository.as_deref())
        .await?;
    let list: Vec<Value> = rows
        .iter()
        .filter(|r| promotion_readable(&state, &caller, r))
        .map(|r| promotion_json(r, &[]))
        .collect();
    Ok(Json(json!({"promotions": list})).into_response())
}

async fn show(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let (row, approvals) = state.promotions.show(&id).await?;
    if !promotion_readable(&state, &caller, &row) {
        return Err(not_visible("such promotion"));
    }
    let mut body = promotion_json(&row, &approvals);
    if let Some(decision) = &row.last_decision {
        let record = state.promotions.decision(decision).await?;
        body["decision_result"] = serde_json::from_str(&record.result).unwrap_or(Value::Null);
    }
    Ok(Json(body).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    #[serde(default)]
    comment: Option<String>,
}

async fn approve(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let body: ApproveBody = if body.is_empty() {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid approval: {e}")))?
    };
    let outcome = state.promotions.approve(&id, body.comment, &caller).await?;
    outcome_response(&state, outcome).await
}

async fn cancel(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let row = state.promotions.cancel(&id, &caller).await?;
    Ok(Json(promotion_json(&row, &[])).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    repository: String,
    channel: String,
    #[serde(default)]
    to: Option<String>,
}

async fn rollback(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let body: RollbackBody =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid rollback: {e}")))?;
    let repo = RepoName::from_str(&body.repository).map_err(|e| bad(e.to_string()))?;
    let channel = Tag::from_str(&body.channel).map_err(|e| bad(e.to_string()))?;
    let to = body
        .to
        .map(|d| Digest::from_str(&d).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let (from, to, decision) = state
        .promotions
        .rollback(&repo, &channel, to, &caller)
        .await?;
    let body = json!({"repository": repo.as_str(), "channel": channel.as_str(), "from": from, "to": to, "decision": decision});
    if decision.allowed {
        Ok(Json(body).into_response())
    } else {
        let mut body = body;
        body["error"] = json!({"code": "POLICY_DENIED",
            "message": format!("the rollback gate denied rolling {repo}:{channel} back to {to}"),
            "remediation": "roll back to another digest (--to), or promote a fixed artifact"});
        Ok((StatusCode::FORBIDDEN, Json(body)).into_response())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    reason: String,
}

async fn freeze(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(stage): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let body: FreezeBody = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("a freeze needs {{\"reason\"}}: {e}")))?;
    let stage = StageName::from_str(&stage).map_err(|e| bad(e.to_string()))?;
    state
        .promotions
        .set_freeze(&stage, Some(&body.reason), &caller)
        .await?;
    Ok(
        Json(json!({"stage": stage.as_str(), "frozen": true, "reason": body.reason}))
            .into_response(),
    )
}

async fn unfreeze(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(stage): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let stage = StageName::from_str(&stage).map_err(|e| bad(e.to_string()))?;
    let changed = state.promotions.set_freeze(&stage, None, &caller).await?;
    Ok(Json(json!({"stage": stage.as_str(), "frozen": false, "changed": changed})).into_response())
}

async fn decision(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let record = state.promotions.decision(&id).await?;
    if !decision_readable(&state, &caller, &record) {
        return Err(not_visible("such decision"));
    }
    Ok(Json(json!({
        "id": record.id, "promotion": record.promotion_id, "action": record.action,
        "query": record.query, "policy": record.bundle_digest, "allowed": record.allowed,
        "input": serde_json::from_str::<Value>(&record.input).unwrap_or(Value::Null),
        "result": serde_json::from_str::<Value>(&record.result).unwrap_or(Value::Null),
        "created": time(record.created_at),
    }))
    .into_response())
}

async fn replay(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    let record = state.promotions.decision(&id).await?;
    if !decision_readable(&state, &caller, &record) {
        return Err(not_visible("such decision"));
    }
    let (record, replayed, identical) = state.promotions.replay(&id).await?;
    let original: Value = serde_json::from_str(&record.result).unwrap_or(Value::Null);
    Ok(Json(
        json!({"id": record.id, "policy": record.bundle_digest, "identical": identical,
                   "original": original, "replayed": replayed}),
    )
    .into_response())
}

async fn policy(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state.identity, &headers, peer).await?;
    Ok(Json(state.promotions.policy_info()).into_response())
}

async fn reload(
    State(state): State<PromotionState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state.identity, &headers, peer).await?;
    if !caller.has(Permission::ManageAccess, &PermissionTarget::Global) {
        return Err(PromotionError::Forbidden(
            "reloading the policy needs the access-admin role".into(),
        )
        .into());
    }
    let digest = state.promotions.reload_policy(&caller.actor).await?;
    Ok(Json(json!({"digest": digest})).into_response())
}

/// The current attestation public key as PEM (what `cosign verify-attestation --key` and
/// `airlock keys export-attestation-key` read); with `Accept: application/json`, the current key
/// and every key it replaced, so attestations signed before a rotation can be verified.
async fn attestation_key(State(state): State<PromotionState>, headers: HeaderMap) -> Response {
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        let keys = state.promotions.attestation_keys();
        let listed: Vec<Value> = keys
            .iter()
            .map(crate::server_keys::routes::listed_json)
            .collect();
        return Json(json!({
            "current": keys.first().map(|k| k.key_id.clone()),
            "keys": listed,
        }))
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
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<PromotionState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &PromotionState) -> Self {
        state.identity.clone()
    }
}
