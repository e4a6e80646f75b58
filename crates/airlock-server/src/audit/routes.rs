//! HTTP endpoints of the audit log.
//!
//! C2SP tlog-tiles read API, for standard tlog clients and witnesses: `GET /log/checkpoint`,
//! `GET /log/tile/<L>/<N>[.p/<W>]`, `GET /log/tile/entries/<N>[.p/<W>]`; plus `GET /log/key` (the
//! verifier key, for convenience: verifiers should pin it out of band). JSON under
//! `/api/v1/audit/`: `checkpoint`, `checkpoints`, `entries`, `proof/inclusion`,
//! `proof/consistency`, `witnesses`.

use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::audit as api;
use airlock_audit::TilePath;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{AuditLog, AuditLogError};
use crate::api::{ApiError, query};
use crate::caller::Caller;
use crate::identity::Authenticated;

/// What the audit routes need: the log, and identity to guard entry contents.
#[derive(Clone)]
pub struct AuditState {
    log: Arc<AuditLog>,
    identity: Arc<crate::identity::Identity>,
}

/// Entries name principals, addresses and repositories: reading them needs the `ReadAudit`
/// permission (auditor, access-admin) when access control is on. Checkpoints, hashes and proofs
/// stay public so witnesses and verifiers can follow the log.
async fn require_audit_reader(
    state: &AuditState,
    headers: &axum::http::HeaderMap,
    peer: std::net::SocketAddr,
) -> Result<(), ApiError> {
    if !state.identity.enabled() {
        return Ok(());
    }
    let who = crate::access::authenticate_api(&state.identity, headers, Some(peer)).await?;
    check_audit_reader(&Some(who))
}

/// Whether `who` may read entries (anyone with access control off); the web console asks too.
pub(crate) fn check_audit_reader(who: &Option<Authenticated>) -> Result<(), ApiError> {
    let Some(who) = who else {
        return Ok(());
    };
    if who.has(
        airlock_core::access::Permission::ReadAudit,
        &airlock_core::access::PermissionTarget::Global,
    ) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!("{} may not read audit entries", who.principal.name),
            "ask an access-admin for the auditor role",
        ))
    }
}

/// The audit log routes.
pub fn router(log: Arc<AuditLog>, identity: Arc<crate::identity::Identity>) -> Router {
    let state = AuditState { log, identity };
    Router::new()
        .route("/log/checkpoint", get(checkpoint_note))
        .route("/log/key", get(verifier_key))
        .route("/log/tile/{*path}", get(tile))
        .route("/api/v1/audit/checkpoint", get(checkpoint_json))
        .route("/api/v1/audit/checkpoints", get(checkpoints_json))
        .route("/api/v1/audit/witnesses", get(witnesses_json))
        .route("/api/v1/audit/entries", get(entries))
        .route("/api/v1/audit/proof/inclusion", get(inclusion))
        .route("/api/v1/audit/proof/consistency", get(consistency))
        .with_state(state)
}

impl From<AuditLogError> for ApiError {
    fn from(err: AuditLogError) -> Self {
        let message = err.to_string();
        match err {
            AuditLogError::InclusionOutOfRange { .. }
            | AuditLogError::ConsistencyOutOfRange { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "OUT_OF_RANGE",
                message,
                "ask for indexes and sizes within the newest checkpoint (GET /api/v1/audit/checkpoint shows its size)",
            ),
            AuditLogError::TileOutOfRange(_) | AuditLogError::EntryBundleOutOfRange { .. } => {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "OUT_OF_RANGE",
                    message,
                    "ask only for tiles of the tree the newest checkpoint signs (GET /log/checkpoint); a tile beyond it does not exist yet",
                )
            }
            AuditLogError::Store(err) => ApiError::storage(&err),
            other => ApiError::internal(other),
        }
    }
}

const NUMBERS: &str = "pass each parameter as a decimal, non-negative number";

/// The most checkpoints one `GET /api/v1/audit/checkpoints` answers.
pub const MAX_CHECKPOINTS: u64 = 1000;
/// The most entries one `GET /api/v1/audit/entries` answers (`limit`, `newest`).
pub const MAX_ENTRIES: u64 = 10_000;

fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// The newest checkpoint as a C2SP signed note (c2sp.org/tlog-checkpoint), for tlog clients and
/// witnesses. Public.
#[utoipa::path(
    operation_id = "log_checkpoint",
    get,
    path = "/log/checkpoint",
    tag = "audit",
    security(()),
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 500, description = "The log has no checkpoint or storage failed", body = ErrorBody),
    )
)]
async fn checkpoint_note(State(state): State<AuditState>) -> Result<Response, ApiError> {
    Ok(text(
        state.log.latest_cosigned_checkpoint().await?.note,
        "no-store",
    ))
}

/// The log's verifier key (a signed-note verifier key line). Public; verifiers should pin it
/// out of band rather than trust this answer.
#[utoipa::path(
    operation_id = "log_key",
    get,
    path = "/log/key",
    tag = "audit",
    security(()),
    responses(
        (status = 200, description = "The verifier key and a newline", body = String, content_type = "text/plain; charset=utf-8"),
    )
)]
async fn verifier_key(State(state): State<AuditState>) -> Response {
    text(format!("{}\n", state.log.verifier_key()), "no-cache")
}

/// A tile of the newest tree (c2sp.org/tlog-tiles): a hash tile `<L>/<N>[.p/<W>]` (public) or
/// an entry bundle `entries/<N>[.p/<W>]` (needs the auditor role with access control on), `<N>`
/// in the tlog-tiles path encoding (`x001/234`).
#[utoipa::path(
    operation_id = "log_tile",
    get,
    path = "/log/tile/{tile}",
    tag = "audit",
    security((), ("bearer" = []), ("basic" = [])),
    params(("tile" = String, Path,
        description = "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`; several path segments")),
    responses(
        (status = 200, description = "The tile's bytes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 401, description = "An entry bundle without credentials", body = ErrorBody),
        (status = 403, description = "An entry bundle for a caller without the auditor role", body = ErrorBody),
        (status = 404, description = "Not a tile path, or beyond the newest checkpoint", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn tile(
    State(state): State<AuditState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let log = &state.log;
    let tile = TilePath::parse(&format!("tile/{path}")).map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("not a tile path: {e}"),
            "tile paths are /log/tile/<L>/<N>[.p/<W>] or /log/tile/entries/<N>[.p/<W>] (c2sp.org/tlog-tiles)",
        )
    })?;
    if matches!(tile, TilePath::Entries { .. }) {
        require_audit_reader(&state, &headers, peer).await?;
    }
    let data = log.tile(&tile).await?;
    // Full tiles never change; partial ones are replaced by wider ones as the log grows.
    let full = match tile {
        TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => {
            width == airlock_audit::FULL_TILE_WIDTH
        }
    };
    let cache = if full {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        data,
    )
        .into_response())
}

/// The newest checkpoint, its tree and how many entries were appended. Public.
#[utoipa::path(
    operation_id = "audit_checkpoint",
    get,
    path = "/api/v1/audit/checkpoint",
    tag = "audit",
    security(()),
    responses(
        (status = 200, description = "The newest checkpoint", body = api::Checkpoint),
        (status = 500, description = "The log has no checkpoint or storage failed", body = ErrorBody),
    )
)]
async fn checkpoint_json(
    State(state): State<AuditState>,
) -> Result<Json<api::Checkpoint>, ApiError> {
    let log = &state.log;
    let latest = log.latest_cosigned_checkpoint().await?;
    let entries = log.entry_count().await?;
    Ok(Json(api::Checkpoint {
        origin: log.origin().to_string(),
        entries,
        size: latest.size,
        root: hex::encode(latest.root),
        note: latest.note,
        verifier_key: log.verifier_key().to_string(),
    }))
}

/// The log's witnesses: the size each last cosigned and why it last refused, if it did. Public,
/// like the checkpoints they cosign.
#[utoipa::path(
    operation_id = "audit_witnesses",
    get,
    path = "/api/v1/audit/witnesses",
    tag = "audit",
    security(()),
    responses(
        (status = 200, description = "The witnesses and the newest checkpoint's cosignatures", body = api::WitnessStatusList),
        (status = 500, description = "The log has no checkpoint or storage failed", body = ErrorBody),
    )
)]
async fn witnesses_json(
    State(state): State<AuditState>,
) -> Result<Json<api::WitnessStatusList>, ApiError> {
    Ok(Json(state.log.witness_statuses().await?))
}

/// Stored checkpoints after a tree size, oldest first (for following the log). Public.
#[utoipa::path(
    operation_id = "audit_checkpoints",
    get,
    path = "/api/v1/audit/checkpoints",
    tag = "audit",
    security(()),
    params(api::CheckpointsQuery),
    responses(
        (status = 200, description = "The checkpoints", body = api::CheckpointList),
        (status = 400, description = "A parameter is not a non-negative number, or limit is outside 1 to 1000", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn checkpoints_json(
    State(state): State<AuditState>,
    params: Result<Query<api::CheckpointsQuery>, QueryRejection>,
) -> Result<Json<api::CheckpointList>, ApiError> {
    let params = query(params, NUMBERS)?;
    let after = params.after.unwrap_or(0);
    let limit = crate::api::bounded(
        "limit",
        params.limit,
        MAX_CHECKPOINTS,
        1..=MAX_CHECKPOINTS,
        "pass limit from 1 to 1000, and continue with after= the last checkpoint's size",
    )? as usize;
    let checkpoints = state.log.checkpoints_after(after, limit).await?;
    Ok(Json(api::CheckpointList {
        checkpoints: checkpoints
            .into_iter()
            .map(|c| api::CheckpointNote {
                size: c.size,
                note: c.note,
            })
            .collect(),
    }))
}

/// A page of entries (needs the auditor or access-admin role with access control on): from
/// `start`, or the newest `newest`, optionally since a time and of a type prefix.
#[utoipa::path(
    operation_id = "audit_entries",
    get,
    path = "/api/v1/audit/entries",
    tag = "audit",
    params(api::EntriesQuery),
    responses(
        (status = 200, description = "The entries and where to continue", body = api::EntryList),
        (status = 400, description = "A parameter is not a number of its kind, limit is outside 1 to 10000, or newest above 10000", body = ErrorBody),
        (status = 403, description = "The caller may not read audit entries", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn entries(
    State(state): State<AuditState>,
    caller: Caller,
    params: Result<Query<api::EntriesQuery>, QueryRejection>,
) -> Result<Json<api::EntryList>, ApiError> {
    check_audit_reader(&caller.who)?;
    let params = query(params, NUMBERS)?;
    let log = &state.log;
    let kind = params.kind.as_deref();
    let entries = match params.newest {
        // 0 is no entries and `next` at the log's end: where `audit tail -n 0 --follow` starts.
        Some(n) => {
            let n = crate::api::bounded(
                "newest",
                Some(n),
                0,
                0..=MAX_ENTRIES,
                "pass newest from 0 to 10000 (airlock audit tail -n), or page through older entries with start= and limit=",
            )?;
            log.newest_entries(kind, n as u32).await?
        }
        None => {
            let limit = crate::api::bounded(
                "limit",
                params.limit,
                1000,
                1..=MAX_ENTRIES,
                "pass limit from 1 to 10000, and continue with start= the answer's next",
            )?;
            log.entries(
                params.start.unwrap_or(0),
                params.since_ms,
                kind,
                limit as u32,
            )
            .await?
        }
    };
    let next = match (entries.last(), params.newest) {
        (Some(last), _) => Some(last.index + 1),
        // Nothing matched the newest-N query: continue from the end of the log.
        (None, Some(_)) => Some(log.entry_count().await?),
        (None, None) => None,
    };
    Ok(Json(api::EntryList {
        entries: entries
            .into_iter()
            .map(|e| api::Entry {
                index: e.index,
                entry: serde_json::from_slice(&e.entry).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
        next,
    }))
}

/// RFC 6962 inclusion proof of an entry in a tree (default: the newest checkpoint's). Public.
#[utoipa::path(
    operation_id = "audit_inclusion_proof",
    get,
    path = "/api/v1/audit/proof/inclusion",
    tag = "audit",
    security(()),
    params(api::InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = api::InclusionProof),
        (status = 400, description = "index missing, or a parameter is not a non-negative number", body = ErrorBody),
        (status = 404, description = "The index or tree size is beyond the newest checkpoint", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn inclusion(
    State(state): State<AuditState>,
    params: Result<Query<api::InclusionQuery>, QueryRejection>,
) -> Result<Json<api::InclusionProof>, ApiError> {
    let params = query(
        params,
        "GET /api/v1/audit/proof/inclusion?index=N[&tree_size=M], each a decimal, non-negative number",
    )?;
    let proof = state
        .log
        .inclusion_proof(params.index, params.tree_size)
        .await?;
    Ok(Json(api::InclusionProof {
        index: proof.index,
        tree_size: proof.tree_size,
        leaf_hash: proof.leaf_hash.to_hex(),
        hashes: proof.hashes.iter().map(|h| h.to_hex()).collect(),
    }))
}

/// RFC 6962 consistency proof from an older tree size to a newer one (default: the newest
/// checkpoint's). Public.
#[utoipa::path(
    operation_id = "audit_consistency_proof",
    get,
    path = "/api/v1/audit/proof/consistency",
    tag = "audit",
    security(()),
    params(api::ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = api::ConsistencyProof),
        (status = 400, description = "from missing, or a parameter is not a non-negative number", body = ErrorBody),
        (status = 404, description = "The sizes are not 1 <= from <= to <= the newest checkpoint's", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn consistency(
    State(state): State<AuditState>,
    params: Result<Query<api::ConsistencyQuery>, QueryRejection>,
) -> Result<Json<api::ConsistencyProof>, ApiError> {
    let params = query(
        params,
        "GET /api/v1/audit/proof/consistency?from=OLD[&to=NEW], each a decimal, non-negative number",
    )?;
    let proof = state.log.consistency_proof(params.from, params.to).await?;
    Ok(Json(api::ConsistencyProof {
        old_size: proof.old_size,
        new_size: proof.new_size,
        hashes: proof.hashes.iter().map(|h| h.to_hex()).collect(),
    }))
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        checkpoint_note,
        verifier_key,
        tile,
        checkpoint_json,
        checkpoints_json,
        witnesses_json,
        entries,
        inclusion,
        consistency
    ))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<AuditState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &AuditState) -> Self {
        state.identity.clone()
    }
}
