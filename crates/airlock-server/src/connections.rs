//! Accepting and serving HTTP/1.1 connections under limits, so that slow, idle or too many clients
//! cannot exhaust file descriptors or hold requests open forever.
//!
//! What holds ([`ConnectionLimits`], configured in `[limits]`):
//! - At most `max_connections` connections are served at once (fewer if the process may not open
//!   that many files: the cap is lowered to the open-files limit minus a reserve for storage, with
//!   a warning at start). A connection beyond the cap is
//!   answered `503 Service Unavailable` with `Retry-After` and closed without reaching the
//!   application; a warning is logged at most once per [`REFUSAL_LOG_INTERVAL`] with the number
//!   refused since the last one.
//! - A connection must deliver a complete request header within `header_read_timeout` of opening
//!   or of finishing its previous response (so this is also the keep-alive idle timeout);
//!   otherwise it is closed.
//! - A request body that delivers nothing for `body_timeout` while the handler waits for it ends
//!   with an error ([`BodyStalled`]); the handler fails the request (an upload keeps nothing of the
//!   chunk) and the connection is closed after the response. Time the handler spends elsewhere
//!   (waiting for an upload slot, writing to disk) does not count.
//! - Every request body except an upload's (`POST`, `PATCH`, `PUT` under
//!   `/v2/<name>/blobs/uploads/`) must also arrive in full within `request_body_timeout` of its
//!   header ([`BodyTooSlow`]): a body trickled a byte at a time cannot hold a connection longer.
//!   Such a request is answered `408 Request Timeout` naming the setting, and the connection is
//!   closed. Upload bodies are only bounded by the progress timeout above, since a large blob over
//!   a slow link may take long; uploading needs credentials.
//!
//! Not covered: a client that reads a response slowly holds its connection (and one slot of the
//! cap) until it finishes or disconnects. There is no cap per client address, so a client with
//! push credentials can hold up to `max_connections` connections with slow but progressing
//! uploads.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_service::Service;

/// How often, at most, the "connection limit reached" warning is logged.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Connections being refused at once; beyond this a refused connection is closed without an
/// answer (so refusing cannot itself use up file descriptors).
const MAX_REFUSING: usize = 64;

/// The most a connection buffers of what the client sends (request headers, and body bytes not
/// yet handed to the handler): hyper's default is about 400 KiB, which under hundreds of parallel
/// uploads is most of the server's memory. A request header larger than this is refused with 431.
const READ_BUFFER: usize = 64 * 1024;

/// How long a refused connection is given to take its 503.
const REFUSAL_GRACE: Duration = Duration::from_millis(500);

/// The limits every connection is served under.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Deadline for a complete request header, from connection start or the previous response.
    pub header_read_timeout: Duration,
    /// Longest a request body may go without delivering data while it is being read.
    pub body_timeout: Duration,
    /// Longest a request body that is not an upload's may take in all, from its header.
    pub request_body_timeout: Duration,
}

/// A request body delivered nothing for the configured time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body sent no data for {} s (limits.body_timeout_secs)",
    .0.as_secs()
)]
pub struct BodyStalled(pub Duration);

/// A request body (not an upload's) did not arrive in full within the configured time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body did not arrive in full within {} s of the request header (limits.request_body_timeout_secs)",
    .0.as_secs()
)]
pub struct BodyTooSlow(pub Duration);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for open
/// connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ConnectionLimits {
        max_connections: within_descriptor_limit(limits.max_connections),
        ..limits
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let refusals = RefusalLog::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Typically EMFILE: the process is out of file descriptors. Back off instead of
                    // spinning; open connections finish and free some.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.note(limits.max_connections);
            if let Ok(refusing) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let deadline =
                (!is_upload_body(request.method(), request.uri().path())).then(|| Deadline {
                    limit: limits.request_body_timeout,
                    timer: Box::pin(tokio::time::sleep(limits.request_body_timeout)),
                    missed: Arc::new(AtomicBool::new(false)),
                });
            let missed = deadline.as_ref().map(|d| d.missed.clone());
            let path_is_oci = request.uri().path().starts_with("/v2/");
            let mut request = request
                .map(|body| Body::new(ProgressTimeout::new(body, limits.body_timeout, deadline)));
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                let response = app.call(request).await.unwrap_or_else(|e| match e {});
                // Whatever the handler made of the failed body (extractors answer 400 in their
                // own words), the client learns which limit it hit.
                if missed.is_some_and(|missed| missed.load(Ordering::Relaxed)) {
                    return Ok::<_, Infallible>(too_slow(path_is_oci, limits.request_body_timeout));
                }
                Ok(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(READ_BUFFER)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Whether a request's body is an upload's (`POST`, `PATCH`, `PUT` under
/// `/v2/<name>/blobs/uploads/`), which only the progress timeout bounds. A path with
/// percent-escapes is never one (upload paths need none), so an escaped path cannot be read as an
/// upload here and as another endpoint by the router.
fn is_upload_body(method: &Method, path: &str) -> bool {
    use crate::oci::route::OciRoute;
    if !matches!(*method, Method::POST | Method::PATCH | Method::PUT) || path.contains('%') {
        return false;
    }
    path.strip_prefix("/v2/").is_some_and(|rest| {
        matches!(
            OciRoute::parse(rest),
            Ok(OciRoute::UploadStart(_) | OciRoute::Upload(..))
        )
    })
}

/// The answer to a request whose body missed [`ConnectionLimits::request_body_timeout`]: 408,
/// in the OCI error format under `/v2/` and the JSON API format elsewhere, closing the connection.
fn too_slow(oci: bool, limit: Duration) -> axum::response::Response {
    let message = BodyTooSlow(limit).to_string();
    let body = if oci {
        serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": message, "detail": null}]})
    } else {
        serde_json::json!({"error": {"code": "REQUEST_TIMEOUT", "message": message,
            "remediation": "send the whole request body without pausing, or ask the operator to raise limits.request_body_timeout_secs"}})
    };
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        axum::Json(body),
    )
        .into_response()
}

/// File descriptors the server needs besides client connections (database, blob files, refused
/// connections being answered), roughly.
const OTHER_DESCRIPTORS: u64 = 256;

/// The connection cap to enforce: `max_connections`, or less when the process may not open that
/// many files (Linux: the soft limit in `/proc/self/limits`), so the cap, not running out of file
/// descriptors, is what stops a flood of connections. Says so in the log when it lowers the cap.
fn within_descriptor_limit(max_connections: usize) -> usize {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return max_connections;
    };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok());
    match soft {
        Some(soft) if soft < max_connections as u64 + OTHER_DESCRIPTORS => {
            let cap = soft.saturating_sub(OTHER_DESCRIPTORS).max(16) as usize;
            tracing::warn!(
                open_files = soft,
                max_connections,
                cap,
                "the process may open only {soft} files, too few for limits.max_connections ({max_connections}) plus {OTHER_DESCRIPTORS} for storage: serving at most {cap} connections; raise ulimit -n (LimitNOFILE) to allow more"
            );
            cap.min(max_connections)
        }
        _ => max_connections,
    }
}

/// Answers a connection over the cap with 503 and closes it. The request is read (briefly) before
/// closing, so the client sees the answer rather than a reset.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"the server is at its connection limit (limits.max_connections); retry shortly","detail":null}]}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Counts refused connections and logs them at most once per [`REFUSAL_LOG_INTERVAL`].
#[derive(Default)]
struct RefusalLog {
    /// When the last warning was logged, and connections refused since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    fn note(&self, limit: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        let due = state
            .0
            .is_none_or(|last| last.elapsed() >= REFUSAL_LOG_INTERVAL);
        if due {
            tracing::warn!(
                limit,
                refused = state.1,
                "connection limit reached (limits.max_connections = {limit}): refused {} connection(s) with 503 since the last report; raise the limit (and ulimit -n) or look for clients holding idle connections",
                state.1
            );
            *state = (Some(Instant::now()), 0);
        }
    }
}

/// The overall deadline of a body that is not an upload's.
struct Deadline {
    limit: Duration,
    /// Started when the request header arrived.
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Set when the body failed for missing the deadline, so the answer can say so.
    missed: Arc<AtomicBool>,
}

/// A request body that fails with [`BodyStalled`] when it delivers nothing for `timeout` while
/// it is being polled, and, with a [`Deadline`], with [`BodyTooSlow`] when the reader waits for
/// more after the deadline passed. The clocks matter only while the reader waits for the client,
/// so a handler that reads late is not penalised for data already received.
struct ProgressTimeout {
    inner: Incoming,
    timeout: Duration,
    /// Armed when a poll finds no data; cleared when data arrives.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    overall: Option<Deadline>,
}

impl ProgressTimeout {
    fn new(inner: Incoming, timeout: Duration, overall: Option<Deadline>) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            overall,
        }
    }
}

impl http_body::Body for ProgressTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)))
            }
            Poll::Pending => {
                if let Some(overall) = &mut this.overall
                    && overall.timer.as_mut().poll(cx).is_ready()
                {
                    overall.missed.store(true, Ordering::Relaxed);
                    let limit = overall.limit;
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow(limit)))));
                }
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.deadline = None;
                        Poll::Ready(Some(Err(axum::Error::new(BodyStalled(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
