//! The witness's HTTP interface (c2sp.org/tlog-witness), under the prefix `/witness`:
//!
//! - `POST /witness/add-checkpoint`: `old N`, consistency proof lines, an empty line and the
//!   checkpoint; `200` with the cosignature line, or `400`/`403`/`404`/`409`/`422` as the spec
//!   says (`409` answers with the size this witness last cosigned, `text/x.tlog.size`)
//! - `GET /witness/<origin hash>/checkpoint`: the newest checkpoint it cosigned for that log
//! - `GET /witness/key`: its verifier key
//!
//! These are the protocol's own text formats, not airlock's JSON API, so they are not in the
//! OpenAPI document (as `/v2/` is not); errors are one line of plain text naming the problem.

use std::sync::Arc;

use airlock_audit::{MAX_ADD_CHECKPOINT_BYTES, TLOG_SIZE_CONTENT_TYPE, WitnessRefusal};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{WitnessError, WitnessService};

/// The witness routes.
pub fn router(witness: Arc<WitnessService>) -> Router {
    Router::new()
        .route(
            "/witness/add-checkpoint",
            post(add_checkpoint).layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_BYTES)),
        )
        .route("/witness/key", get(key))
        .route("/witness/{origin_hash}/checkpoint", get(checkpoint))
        .with_state(witness)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn add_checkpoint(State(witness): State<Arc<WitnessService>>, body: Bytes) -> Response {
    match witness.add_checkpoint(&body).await {
        Ok(line) => text(StatusCode::OK, "text/plain; charset=utf-8", line),
        Err(WitnessError::Refused(WitnessRefusal::Conflict { cosigned_size, .. })) => text(
            StatusCode::CONFLICT,
            TLOG_SIZE_CONTENT_TYPE,
            format!("{cosigned_size}\n"),
        ),
        Err(err) => {
            let status =
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(error = %err, "witness request failed");
            }
            text(status, "text/plain; charset=utf-8", format!("{err}\n"))
        }
    }
}

async fn key(State(witness): State<Arc<WitnessService>>) -> Response {
    text(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        format!("{}\n", witness.verifier_key()),
    )
}

async fn checkpoint(
    State(witness): State<Arc<WitnessService>>,
    Path(origin_hash): Path<String>,
) -> Response {
    match witness.checkpoint(&origin_hash).await {
        Ok(Some(note)) => text(StatusCode::OK, "text/plain; charset=utf-8", note),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "this witness has cosigned no checkpoint of a log whose origin hashes to that (lowercase hex SHA-256 of the origin line)\n".into(),
        ),
        Err(err) => {
            tracing::error!(error = %err, "reading a witnessed checkpoint failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the witness's storage failed\n".into(),
            )
        }
    }
}
