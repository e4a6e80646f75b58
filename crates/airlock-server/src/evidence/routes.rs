//! HTTP endpoints of the keyring and of artifact evidence.
//!
//! - `GET /api/v1/keys`, `POST /api/v1/keys`, `POST /api/v1/keys/{name}/retire|revoke`: the
//!   keyring (changes need `manage-keys` everywhere); `PATCH /api/v1/keys/{name}` changes a key's
//!   purposes, scope and end of validity (`manage-keys` in a scope holding the key's scope, before
//!   and after, in every stage).
//! - `GET /api/v1/artifacts/{stage}/{path}@{digest}`: the artifact, its tags, flags and evidence;
//!   `GET .../evidence` the evidence alone; `POST .../evidence` a DSSE envelope (or Sigstore
//!   bundle) for CI tools that do not speak OCI (needs `attest` on the repository).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::{Action, Actor, Digest, RepoName};
use airlock_store::{EvidenceRow, KeyRow};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{EvidenceError, EvidenceService, KeyAuthority, KeyUpdate, NewKey, StatusChange};
use crate::access::authenticate;
use crate::api::ApiError;
use crate::identity::{Authenticated, Identity};

/// State of the evidence routes.
#[derive(Clone)]
pub struct EvidenceState {
    /// The evidence service.
    pub evidence: Arc<EvidenceService>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The keyring and evidence routes.
pub fn router(state: EvidenceState) -> Router {
    Router::new()
        .route("/api/v1/keys", get(list_keys).post(add_key))
        .route("/api/v1/keys/{name}", axum::routing::patch(update_key))
        .route("/api/v1/keys/{name}/retire", post(retire_key))
        .route("/api/v1/keys/{name}/revoke", post(revoke_key))
        .route("/api/v1/artifacts/{*reference}", any(artifact))
        .layer(DefaultBodyLimit::max(
            airlock_trust::dsse::MAX_ENVELOPE_BYTES + 1024,
        ))
        .with_state(state)
}

impl From<EvidenceError> for ApiError {
    fn from(err: EvidenceError) -> Self {
        let message = err.to_string();
        match err {
            EvidenceError::BadRequest(_) => {
                ApiError::bad_request(message, "fix the request as the message says")
            }
            EvidenceError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                message,
                "check the name or reference (airlock keys list)",
            ),
            EvidenceError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                message,
                "list the keyring (airlock keys list) and retry",
            ),
            EvidenceError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                message,
                "ask a key-admin whose scope covers the key (airlock whoami shows your grants)",
            ),
            EvidenceError::Store(err) => ApiError::storage(&err),
        }
    }
}

/// The caller, or an anonymous actor when access control is off.
async fn caller(
    identity: &Identity,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(Option<Authenticated>, Actor), ApiError> {
    if !identity.enabled() {
        return Ok((None, Actor::anonymous(Some(peer.to_string()))));
    }
    let who = authenticate(identity, headers, Some(peer)).await?;
    let actor = who.actor(Some(peer));
    Ok((Some(who), actor))
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        format!("you may not {what}"),
        "ask an access-admin for a role that allows it (airlock access request)",
    )
}

fn require_key_admin(who: &Option<Authenticated>) -> Result<(), ApiError> {
    match who {
        Some(who) if !who.has(Permission::ManageKeys, &PermissionTarget::Global) => Err(forbidden(
            "change the keyring: that needs the key-admin role",
        )),
        _ => Ok(()),
    }
}

/// Where the caller may administer keys: everywhere with a global `key-admin` grant (or with
/// access control off), else within its scoped `key-admin` grants; refused without any.
fn key_authority(who: &Option<Authenticated>) -> Result<KeyAuthority, ApiError> {
    let Some(who) = who else {
        return Ok(KeyAuthority::Everywhere);
    };
    if who.has(Permission::ManageKeys, &PermissionTarget::Global) {
        return Ok(KeyAuthority::Everywhere);
    }
    let now = airlock_store::now_millis();
    let scoped: Vec<_> = who
        .grants
        .iter()
        .filter(|g| {
            g.is_active(now)
                && airlock_core::access::permissions(g.role).contains(&Permission::ManageKeys)
        })
        .cloned()
        .collect();
    if scoped.is_empty() {
        return Err(forbidden(
            "change the keyring: that needs the key-admin role",
        ));
    }
    Ok(KeyAuthority::Grants(scoped))
}

fn rfc3339(millis: Option<i64>) -> Value {
    json!(millis.map(airlock_core::audit::rfc3339_millis))
}

fn key_json(key: &KeyRow) -> Value {
    json!({
        "key_id": key.key_id,
        "name": key.name,
        "algorithm": key.algorithm,
        "public_key": key.public_key,
        "purposes": key.purposes,
        "scope": key.scope,
        "not_before": rfc3339(key.not_before),
        "not_after": rfc3339(key.not_after),
        "status": key.status,
        "status_changed": rfc3339(key.status_at),
        "status_reason": key.status_reason,
        "compromised": key.compromised,
        "created": rfc3339(Some(key.created_at)),
        "created_by": key.created_by,
    })
}

/// The JSON form of a stored evidence item, as the API and `airlock evidence` show it.
pub fn evidence_json(row: &EvidenceRow) -> Value {
    let facts: Value = row
        .verdict
        .facts
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "item": row.origin.item,
        "status": row.verdict.status,
        "kind": row.verdict.kind,
        "format": row.origin.format,
        "source": row.origin.source,
        "repository": row.origin.repository,
        "manifest": row.origin.manifest,
        "key_id": row.verdict.key_id,
        "key_name": row.verdict.key_name,
        "predicate_type": row.verdict.predicate_type,
        "reason_code": row.verdict.reason_code,
        "reason": row.verdict.reason,
        "facts": facts,
        "keyring_version": row.verdict.keyring_version,
        "first_seen": rfc3339(Some(row.first_seen_at)),
        "verified_at": rfc3339(Some(row.verified_at)),
        "pushed_by": row.origin.pushed_by,
    })
}

async fn list_keys(
    State(state): State<EvidenceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state.identity, &headers, peer).await?;
    let (version, keys) = state.evidence.keys().await?;
    let keys: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(Json(json!({"keyring_version": version, "keys": keys})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKey {
    name: String,
    public_key: String,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    purposes: Vec<String>,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|e| {
                    ApiError::bad_request(
                        format!("{field} is not an RFC 3339 time: {e}"),
                        "write it like 2026-12-31T23:59:59Z",
                    )
                })
        })
        .transpose()
}

async fn add_key(
    State(state): State<EvidenceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    require_key_admin(&who)?;
    let body: AddKey = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("invalid key request: {e}"),
            "send {\"name\", \"public_key\" (PEM), \"purposes\", \"scope\"}",
        )
    })?;
    let new = NewKey {
        not_before: parse_time("not_before", body.not_before.as_deref())?,
        not_after: parse_time("not_after", body.not_after.as_deref())?,
        name: body.name,
        public_key_pem: body.public_key,
        algorithm: body.algorithm,
        purposes: body.purposes,
        scope: body.scope,
    };
    let key = state.evidence.add_key(new, &actor).await?;
    Ok((StatusCode::CREATED, Json(key_json(&key))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateKey {
    #[serde(default)]
    add_purposes: Vec<String>,
    #[serde(default)]
    remove_purposes: Vec<String>,
    #[serde(default)]
    scope: Option<Vec<String>>,
    #[serde(default)]
    not_after: Option<String>,
}

async fn update_key(
    State(state): State<EvidenceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let authority = key_authority(&who)?;
    let body: UpdateKey = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("invalid key update: {e}"),
            "send {\"add_purposes\": [...], \"remove_purposes\": [...], \"scope\": [...], \"not_after\": \"2027-12-31T23:59:59Z\"} (at least one)",
        )
    })?;
    let update = KeyUpdate {
        not_after: parse_time("not_after", body.not_after.as_deref())?,
        add_purposes: body.add_purposes,
        remove_purposes: body.remove_purposes,
        scope: body.scope,
    };
    let key = state
        .evidence
        .update_key(&name, update, &authority, &actor)
        .await?;
    Ok(Json(key_json(&key)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    compromised: bool,
}

async fn change_status(
    state: EvidenceState,
    peer: SocketAddr,
    headers: HeaderMap,
    name: String,
    body: Bytes,
    revoke: bool,
) -> Result<Response, ApiError> {
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    require_key_admin(&who)?;
    let body: StatusBody = if body.is_empty() {
        StatusBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                format!("invalid request: {e}"),
                "send {\"reason\": \"...\", \"compromised\": false}",
            )
        })?
    };
    let change = match (revoke, body.compromised) {
        (false, _) => StatusChange::Retire,
        (true, false) => StatusChange::Revoke,
        (true, true) => StatusChange::Compromised,
    };
    let key = state
        .evidence
        .change_status(&name, change, &body.reason, &actor)
        .await?;
    Ok(Json(key_json(&key)).into_response())
}

async fn retire_key(
    State(state): State<EvidenceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_status(state, peer, headers, name, body, false).await
}

async fn revoke_key(
    State(state): State<EvidenceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    change_status(state, peer, headers, name, body, true).await
}

/// `{stage}/{path}@{digest}[/evidence]`, parsed.
fn parse_artifact_path(text: &str) -> Result<(RepoName, Digest, bool), ApiError> {
    let bad = |message: String| {
        ApiError::bad_request(
            message,
            "address an artifact as /api/v1/artifacts/<stage>/<repository>@sha256:<hex>",
        )
    };
    let (text, evidence) = match text.strip_suffix("/evidence") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (name, digest) = text
        .rsplit_once('@')
        .ok_or_else(|| bad(format!("{text:?} has no @digest")))?;
    let repo = RepoName::from_str(name).map_err(|e| bad(e.to_string()))?;
    let digest = Digest::from_str(digest).map_err(|e| bad(e.to_string()))?;
    Ok((repo, digest, evidence))
}

async fn artifact(
    State(state): State<EvidenceState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (repo, digest, evidence_only) = parse_artifact_path(&reference)?;
    let (who, actor) = caller(&state.identity, &headers, peer).await?;
    let allowed = |action: Action| match &who {
        Some(who) => state.identity.grants_allow(who, &repo, action),
        None => true,
    };
    match (method, evidence_only) {
        (Method::GET, _) => {
            if !allowed(Action::Pull) {
                return Err(forbidden(&format!("read {repo}")));
            }
            let Some(stored) = state.evidence.artifact(&repo, &digest).await? else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    format!("{repo}@{digest} is not in the registry"),
                    "check the stage, repository and digest (skopeo inspect shows the digest)",
                ));
            };
            let evidence: Vec<Value> = state
                .evidence
                .evidence_for(&repo, &digest)
                .await?
                .iter()
                .map(evidence_json)
                .collect();
            if evidence_only {
                return Ok(Json(json!({"evidence": evidence})).into_response());
            }
            let flags: Vec<Value> = state
                .evidence
                .flags(&repo, &digest)
                .await?
                .iter()
                .map(|f| json!({"flag": f.flag, "reason": f.reason}))
                .collect();
            Ok(Json(json!({
                "repository": repo.as_str(),
                "digest": digest,
                "media_type": stored.media_type,
                "size": stored.size,
                "tags": stored.tags,
                "flags": flags,
                "evidence": evidence,
            }))
            .into_response())
        }
        (Method::POST, true) => {
            if !who.as_ref().is_none_or(|w| {
                w.has(
                    Permission::Attest,
                    &PermissionTarget::Repository(repo.clone()),
                )
            }) {
                return Err(forbidden(&format!(
                    "add evidence to {repo}: that needs the builder role (attest)"
                )));
            }
            let row = state.evidence.submit(&repo, &digest, body, &actor).await?;
            if row.verdict.status == "verified" {
                Ok((StatusCode::CREATED, Json(evidence_json(&row))).into_response())
            } else {
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "EVIDENCE_REJECTED",
                    format!(
                        "the evidence was recorded as {}: {}",
                        row.verdict.status,
                        row.verdict.reason.clone().unwrap_or_default()
                    ),
                    "sign with a key in the keyring whose purposes and scope cover this artifact (airlock keys list)",
                ))
            }
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "use GET for an artifact or its evidence, POST to .../evidence to add evidence",
            "see docs/evidence.md",
        )),
    }
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<EvidenceState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &EvidenceState) -> Self {
        state.identity.clone()
    }
}
