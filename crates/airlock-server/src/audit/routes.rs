//! HTTP endpoints of the audit log.
//!
//! C2SP tlog-tiles read API, for standard tlog clients and witnesses: `GET /log/checkpoint`,
//! `GET /log/tile/<L>/<N>[.p/<W>]`, `GET /log/tile/entries/<N>[.p/<W>]`; plus `GET /log/key` (the
//! verifier key, for convenience: verifiers should pin it out of band). JSON under
//! `/api/v1/audit/`: `checkpoint`, `checkpoints`, `entries`, `proof/inclusion`,
//! `proof/consistency`.

use std::collections::HashMap;
use std::sync::Arc;

use airlock_audit::TilePath;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{AuditLog, AuditLogError};
use crate::api::ApiError;

type Params = Query<HashMap<String, String>>;

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
    let who = crate::access::authenticate(&state.identity, headers, Some(peer)).await?;
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
        .route("/api/v1/audit/entries", get(entries))
        .route("/api/v1/audit/proof/inclusion", get(inclusion))
        .route("/api/v1/audit/proof/consistency", get(consistency))
        .with_state(state)
}

impl From<AuditLogError> for ApiError {
    fn from(err: AuditLogError) -> Self {
        match err {
            AuditLogError::OutOfRange(message) => ApiError::new(
                StatusCode::NOT_FOUND,
                "OUT_OF_RANGE",
                message,
                "ask for indexes and sizes within the newest checkpoint (GET /api/v1/audit/checkpoint)",
            ),
            other => ApiError::internal(other),
        }
    }
}

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                ApiError::bad_request(
                    format!("{name}={v:?} is not a non-negative integer"),
                    format!("pass {name} as a decimal number"),
                )
            })
        })
        .transpose()
}

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

async fn checkpoint_note(State(state): State<AuditState>) -> Result<Response, ApiError> {
    Ok(text(state.log.latest_checkpoint().await?.note, "no-store"))
}

async fn verifier_key(State(state): State<AuditState>) -> Response {
    text(format!("{}\n", state.log.verifier_key()), "no-cache")
}

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

async fn checkpoint_json(State(state): State<AuditState>) -> Result<Response, ApiError> {
    let log = &state.log;
    let latest = log.latest_checkpoint().await?;
    let entries = log.entry_count().await?;
    Ok(axum::Json(json!({
        "origin": log.origin(),
        "entries": entries,
        "size": latest.size,
        "root": hex::encode(latest.root),
        "note": latest.note,
        "verifier_key": log.verifier_key(),
    }))
    .into_response())
}

async fn checkpoints_json(
    State(state): State<AuditState>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let log = &state.log;
    let after = number::<u64>(&params, "after")?.unwrap_or(0);
    let limit = number::<usize>(&params, "limit")?.unwrap_or(1000).min(1000);
    let checkpoints = log.checkpoints_after(after, limit).await?;
    let list: Vec<Value> = checkpoints
        .into_iter()
        .map(|c| json!({"size": c.size, "note": c.note}))
        .collect();
    Ok(axum::Json(json!({ "checkpoints": list })).into_response())
}

async fn entries(
    State(state): State<AuditState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    require_audit_reader(&state, &headers, peer).await?;
    let log = &state.log;
    let start = number::<u64>(&params, "start")?.unwrap_or(0);
    let limit = number::<u32>(&params, "limit")?.unwrap_or(1000).min(10_000);
    let since = number::<i64>(&params, "since_ms")?;
    let newest = number::<u32>(&params, "newest")?;
    let kind = params.get("type").map(String::as_str);
    let entries = match newest {
        Some(n) => log.newest_entries(kind, n.min(10_000)).await?,
        None => log.entries(start, since, kind, limit).await?,
    };
    let next = match (entries.last(), newest) {
        (Some(last), _) => Some(last.index + 1),
        // Nothing matched the newest-N query: continue from the end of the log.
        (None, Some(_)) => Some(log.entry_count().await?),
        (None, None) => None,
    };
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let entry: Value = serde_json::from_slice(&e.entry).unwrap_or(Value::Null);
            json!({"index": e.index, "entry": entry})
        })
        .collect();
    Ok(axum::Json(json!({"entries": list, "next": next})).into_response())
}

async fn inclusion(
    State(state): State<AuditState>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let log = &state.log;
    let index = number::<u64>(&params, "index")?.ok_or_else(|| {
        ApiError::bad_request(
            "index is required",
            "GET /api/v1/audit/proof/inclusion?index=N[&tree_size=M]",
        )
    })?;
    let tree_size = number::<u64>(&params, "tree_size")?;
    Ok(axum::Json(log.inclusion_proof(index, tree_size).await?).into_response())
}

async fn consistency(
    State(state): State<AuditState>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let log = &state.log;
    let from = number::<u64>(&params, "from")?.ok_or_else(|| {
        ApiError::bad_request(
            "from is required",
            "GET /api/v1/audit/proof/consistency?from=OLD[&to=NEW]",
        )
    })?;
    let to = number::<u64>(&params, "to")?;
    Ok(axum::Json(log.consistency_proof(from, to).await?).into_response())
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi()]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<AuditState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &AuditState) -> Self {
        state.identity.clone()
    }
}
