//! Readiness (`GET /readyz`) and the write guard in front of every route.
//!
//! `/readyz` answers 200 only when every check passes, 503 otherwise; the JSON body lists each
//! check with `ok` and a `detail` naming the problem:
//! - `database`: the database answers a query;
//! - `database_file`: the file at the database path is the one opened at start, and writes were
//!   not stopped (e.g. because the audit log cannot be signed);
//! - `integrity_check`: what `PRAGMA quick_check` said at start (a failed check never starts);
//! - `blob_store`: the local blob directory is the one opened at start, and a one-byte object can
//!   be written to and deleted from the blob store now;
//! - `recent_write_failures`: no commit to the database and no write of blob bytes failed in the
//!   last [`FAILURE_WINDOW`] (a full disk shows here even between probes).
//!
//! Once shutdown has begun ([`Draining`]), `/readyz` answers 503 with `status` `draining` and a
//! single `draining` check, without probing storage: a load balancer stops sending requests while
//! the server still serves them (see [`crate::connections`] for the phases of a shutdown).
//!
//! The write guard refuses every request that is not `GET`, `HEAD` or `OPTIONS` (logins under
//! `/auth/` excepted, so the CLI can still read) with 503 while
//! [`airlock_store::Metadata::writable`] or [`airlock_store::BlobStore::writable`] fails (the
//! database file or the local blob directory removed or replaced, writes stopped), in the OCI error format under `/v2/` and the JSON
//! API format elsewhere. Storage repeats the check inside each write transaction (and before each
//! blob chunk and commit), so a write that races the guard is refused before it commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::registry::Registry;

/// How long a failed write keeps readiness failing.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(30);

fn check(checks: &mut Map<String, Value>, name: &str, result: Result<String, String>) -> bool {
    let (ok, detail) = match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    checks.insert(name.into(), json!({"ok": ok, "detail": detail}));
    ok
}

/// Whether the server is shutting down: set once, when the first SIGTERM or SIGINT arrives, and
/// never cleared. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks the server as shutting down: from now on `/readyz` answers 503.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct ReadinessState {
    /// Storage, whose checks `/readyz` runs.
    pub registry: Arc<Registry>,
    /// Set when shutdown begins.
    pub draining: Draining,
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<ReadinessState>) -> Response {
    if state.draining.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "draining", "checks": {"draining": {"ok": false,
                "detail": "airlock is shutting down: requests in flight finish and new ones are still served until shutdown.drain_delay_secs ends; send new requests elsewhere"}}})),
        )
            .into_response();
    }
    let registry = state.registry;
    let metadata = registry.metadata();
    let mut checks = Map::new();
    let mut ready = check(
        &mut checks,
        "database",
        metadata
            .ping()
            .await
            .map(|()| "answers".to_string())
            .map_err(|e| e.to_string()),
    );
    ready &= check(
        &mut checks,
        "database_file",
        metadata
            .writable()
            .map(|()| "the file opened at start, writable".to_string())
            .map_err(|e| e.to_string()),
    );
    ready &= check(
        &mut checks,
        "integrity_check",
        Ok(format!(
            "PRAGMA quick_check at start: {}",
            metadata.integrity_at_open()
        )),
    );
    ready &= check(
        &mut checks,
        "blob_store",
        registry
            .blobs()
            .probe_write()
            .await
            .map(|()| "accepts writes".to_string())
            .map_err(|e| {
                tracing::error!(error = %e, "the blob store refused the readiness probe");
                match e.write_refusal() {
                    // Names no path, and says what to do.
                    Some(refusal) => refusal.to_string(),
                    None => "a test write failed (the server log has the error)".to_string(),
                }
            }),
    );
    let recent = metadata
        .write_failures()
        .within(FAILURE_WINDOW)
        .or_else(|| registry.blobs().write_failures().within(FAILURE_WINDOW));
    ready &= check(
        &mut checks,
        "recent_write_failures",
        match recent {
            None => Ok(format!("none in the last {} s", FAILURE_WINDOW.as_secs())),
            Some(failure) => Err(format!(
                "a {} failed {} s ago (the server log has the error)",
                failure.what,
                failure.ago.as_secs()
            )),
        },
    );
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        let failing: Vec<&String> = checks
            .iter()
            .filter(|(_, c)| c["ok"] == false)
            .map(|(name, _)| name)
            .collect();
        tracing::warn!(?failing, "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        axum::Json(json!({"status": word, "checks": checks})),
    )
        .into_response()
}

/// Middleware: refuses writes with 503 while storage cannot keep them.
pub async fn refuse_writes_when_storage_fails(
    State(registry): State<Arc<Registry>>,
    request: Request,
    next: Next,
) -> Response {
    // Reads pass, so operators can still read the log and registry to diagnose. Logins
    // (`/auth/...`) pass this guard, but what they write (a rotated refresh token) is refused by
    // storage itself, which answers 503 as this guard does. Deploy-time verification is a read
    // sent as a POST: refusing it would stop every deployment while the registry cannot write.
    let path = request.uri().path();
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || path.starts_with("/auth/")
        || path == "/api/v1/verify"
        || path == "/admission/v1/validate"
    {
        return next.run(request).await;
    }
    let writable = registry
        .metadata()
        .writable()
        .and_then(|()| registry.blobs().writable());
    let Err(refusal) = writable else {
        return next.run(request).await;
    };
    tracing::error!(error = %refusal, method = %request.method(), "write refused");
    let message = refusal.to_string();
    let body = if request.uri().path().starts_with("/v2/") {
        json!({"errors": [{"code": "UNAVAILABLE", "message": message, "detail": null}]})
    } else {
        json!({"error": {"code": "UNAVAILABLE", "message": message,
            "remediation": "an operator must fix the storage and restart airlock; GET /readyz shows the failing check"}})
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}
