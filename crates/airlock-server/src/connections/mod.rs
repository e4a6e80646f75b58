//! Accepting and serving HTTP connections (HTTP/1.1, and HTTP/2 over TLS) under limits, so that slow, idle or too many clients
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
//! - With TLS, the handshake must finish within `header_read_timeout` of the connection's
//!   arrival; ALPN then picks HTTP/2 or HTTP/1.1. A connection over the cap gets its 503 over TLS.
//! - HTTP/2 has no header timeout in hyper: a connection without a request in flight for
//!   `header_read_timeout` is closed ([`http2`]); at most [`MAX_HTTP2_STREAMS`] requests run on one
//!   connection. The body limits above hold per request.
//! - An HTTP/1.1 request answered before its body was read has a small rest of the body read
//!   first ([`body::drain_unread`]), so the client gets the answer rather than a reset.
//!
//! Shutdown ([`Shutdown`], configured in `[shutdown]`) runs in phases, each logged:
//! 1. When the signal arrives, [`Draining`] is set: `/readyz` answers 503 while connections are
//!    still accepted and every request is served, for `drain_delay`, so a load balancer that polls
//!    `/readyz` stops sending traffic before anything is refused. HTTP/1.1 responses in this phase
//!    carry `Connection: close`, so clients and proxies open their next request elsewhere rather
//!    than reuse a connection about to close.
//! 2. The listening socket is closed (new connections are refused by the kernel) and every open
//!    connection is asked to finish: an idle one closes at once, one with a request in flight after
//!    its response (HTTP/2: GOAWAY, streams in flight finish).
//! 3. Connections still open after `timeout` are dropped, and their requests fail.
//!
//! Not covered: a client that reads a response slowly holds its connection (and one slot of the
//! cap) until it finishes or disconnects. There is no cap per client address, so a client with
//! push credentials can hold up to `max_connections` connections with slow but progressing
//! uploads.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::readiness::Draining;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_service::Service;

mod body;
mod http2;

use body::{Deadline, ProgressTimeout, drain_unread};
use http2::{Activity, InFlight, TrackedBody};

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

/// When and how the server stops (the phases are in the module docs).
pub struct Shutdown<F> {
    /// Resolves when shutdown is asked for (the first SIGTERM or SIGINT).
    pub signal: F,
    /// Set when `signal` resolves; `/readyz` reads it.
    pub draining: Draining,
    /// How long connections are still accepted and served after the signal.
    pub drain_delay: Duration,
    /// How long open connections get to finish once the listening socket is closed.
    pub timeout: Duration,
}

/// What open connections are asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Keep serving.
    Serving,
    /// Finish the request in flight, then close.
    Finish,
    /// Close now: the shutdown timeout ran out.
    Drop,
}

/// Serves `app` on `listener` until `shutdown.signal` resolves, then drains (see the module docs):
/// readiness fails while requests are still served for `drain_delay`, then the socket is closed
/// and open connections get `timeout` to finish. With `tls`, every connection is a TLS connection
/// (its handshake bounded by `header_read_timeout`) speaking HTTP/2 or HTTP/1.1 as ALPN chose;
/// without, plaintext HTTP/1.1.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: Shutdown<impl Future<Output = ()> + Send + 'static>,
) -> std::io::Result<()> {
    let limits = ConnectionLimits {
        max_connections: within_descriptor_limit(limits.max_connections),
        ..limits
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let refusals = RefusalLog::default();
    let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
    // Refusals answer in HTTP/1.1, so their handshakes offer only that.
    let refusal_acceptor = tls.map(|config| {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    // Every connection holds a receiver that tells it when to finish or to close, and the
    // sender's `closed()` resolves once every connection has ended.
    let (stop, stopping) = tokio::sync::watch::channel(Stop::Serving);
    let Shutdown {
        signal,
        draining,
        drain_delay,
        timeout,
    } = shutdown;
    let mut signal = std::pin::pin!(signal);
    let mut drain_ends = std::pin::pin!(tokio::time::sleep(Duration::from_secs(365 * 24 * 3600)));
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
            () = &mut signal, if !draining.is_draining() => {
                draining.start();
                tracing::info!(
                    drain_delay_secs = drain_delay.as_secs(),
                    "shutdown: draining; /readyz answers 503 and requests are still served for {} s (shutdown.drain_delay_secs)",
                    drain_delay.as_secs()
                );
                drain_ends.as_mut().reset(tokio::time::Instant::now() + drain_delay);
                continue;
            }
            () = drain_ends.as_mut(), if draining.is_draining() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.note(limits.max_connections);
            if let Ok(refusing) = refusing.clone().try_acquire_owned() {
                let acceptor = refusal_acceptor.clone();
                tokio::spawn(async move {
                    refuse(stream, acceptor).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let stopping = stopping.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            let (io, protocol): (Box<dyn Io>, Protocol) = match acceptor {
                None => (Box::new(stream), Protocol::Http1),
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let protocol = match tls.get_ref().1.alpn_protocol() {
                                Some(b"h2") => Protocol::Http2,
                                _ => Protocol::Http1,
                            };
                            (Box::new(tls), protocol)
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not finished within limits.header_read_timeout_secs");
                            return;
                        }
                    }
                }
            };
            if let Err(err) =
                serve_connection(io, protocol, app, limits, peer, stopping, draining).await
            {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = |slots: &Semaphore| limits.max_connections - slots.available_permits();
    tracing::info!(
        open_connections = open(&slots),
        timeout_secs = timeout.as_secs(),
        "shutdown: no longer accepting connections; open connections get {} s (shutdown.timeout_secs) to finish their requests",
        timeout.as_secs()
    );
    stop.send_replace(Stop::Finish);
    drop(stopping);
    if tokio::time::timeout(timeout, stop.closed()).await.is_err() {
        tracing::warn!(
            open_connections = open(&slots),
            "shutdown: connections still open after shutdown.timeout_secs ({} s) are closed; their requests fail",
            timeout.as_secs()
        );
        stop.send_replace(Stop::Drop);
        stop.closed().await;
    }
    tracing::info!("shutdown: every connection closed");
    Ok(())
}

/// A connection's byte stream: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// Only over TLS, when ALPN chose `h2`.
    Http2,
}

/// The most concurrent requests (streams) one HTTP/2 connection may carry.
const MAX_HTTP2_STREAMS: u32 = 100;

/// Serves HTTP on one connection until the client closes it, a limit closes it, or `stopping`
/// says so ([`Stop::Finish`]: in-flight requests finish first; [`Stop::Drop`]: at once). While
/// `draining`, HTTP/1.1 responses close the connection after them.
async fn serve_connection(
    io: Box<dyn Io>,
    protocol: Protocol,
    app: Router,
    limits: ConnectionLimits,
    peer: std::net::SocketAddr,
    mut stopping: tokio::sync::watch::Receiver<Stop>,
    draining: Draining,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // HTTP/1.1 has hyper's header-read timeout for idle connections; HTTP/2 has none, so requests
    // in flight are counted and an HTTP/2 connection without one for that long is closed.
    let activity = (protocol == Protocol::Http2).then(|| Arc::new(Activity::new()));
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let deadline =
            (!is_upload_body(request.method(), request.uri().path())).then(|| Deadline {
                limit: limits.request_body_timeout,
                timer: Box::pin(tokio::time::sleep(limits.request_body_timeout)),
                missed: Arc::new(AtomicBool::new(false)),
            });
        let missed = deadline.as_ref().map(|d| d.missed.clone());
        let path_is_oci = request.uri().path().starts_with("/v2/");
        // HTTP/2 refuses an unread body per stream; HTTP/1.1 reads a small rest of it.
        let (unread_tx, unread) = match protocol {
            Protocol::Http1 => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                (Some(tx), Some(rx))
            }
            Protocol::Http2 => (None, None),
        };
        let mut request = request.map(|body| {
            Body::new(ProgressTimeout::new(
                body,
                limits.body_timeout,
                deadline,
                unread_tx,
            ))
        });
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        let in_flight = tracked
            .as_ref()
            .map(|activity| InFlight::start(activity.clone()));
        let draining = draining.clone();
        async move {
            let response = app.call(request).await.unwrap_or_else(|e| match e {});
            if let Some(rest) = unread.and_then(|mut unread| unread.try_recv().ok()) {
                drain_unread(rest).await;
            }
            // Whatever the handler made of the failed body (extractors answer 400 in their
            // own words), the client learns which limit it hit.
            let mut response = if missed.is_some_and(|missed| missed.load(Ordering::Relaxed)) {
                too_slow(path_is_oci, limits.request_body_timeout)
            } else {
                response
            };
            if protocol == Protocol::Http1 && draining.is_draining() {
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(match in_flight {
                // The request counts as in flight until its response body is done.
                Some(in_flight) => response.map(|body| {
                    Body::new(TrackedBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }),
                None => response,
            })
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_HTTP2_STREAMS)
        .max_header_list_size(READ_BUFFER as u32)
        // Flow-control windows bound what a connection buffers of request bodies, as READ_BUFFER
        // does for HTTP/1.1 (hyper's default is 1 MiB per connection).
        .initial_stream_window_size(HTTP2_WINDOW)
        .initial_connection_window_size(HTTP2_WINDOW)
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    };
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    let mut idle_check =
        tokio::time::interval(limits.header_read_timeout.min(Duration::from_secs(1)));
    // An idle HTTP/2 connection is asked to close (GOAWAY); one that has not even sent its
    // preface cannot be, so it is dropped when this runs out.
    let mut give_up = std::pin::pin!(tokio::time::sleep(Duration::from_secs(365 * 24 * 3600)));
    loop {
        tokio::select! {
            result = connection.as_mut() => return result,
            changed = stopping.changed() => {
                // The sender is gone only once the server has stopped waiting for connections.
                if changed.is_err() {
                    return Ok(());
                }
                match *stopping.borrow_and_update() {
                    Stop::Serving => {}
                    Stop::Finish => {
                        if !closing {
                            closing = true;
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    Stop::Drop => return Ok(()),
                }
            }
            _ = idle_check.tick(), if !closing && activity.is_some() => {
                if activity.as_ref().is_some_and(|a| a.idle_for() >= limits.header_read_timeout) {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                    give_up.as_mut().reset(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
                }
            }
            () = give_up.as_mut() => {
                // A stream accepted just before the GOAWAY may still be running (its body and
                // response are bounded by their own timeouts): let it finish.
                if activity.as_ref().is_some_and(|a| a.idle_for().is_zero()) {
                    give_up.as_mut().reset(tokio::time::Instant::now() + IDLE_CLOSE_GRACE);
                } else {
                    return Ok(());
                }
            }
        }
    }
}

/// The HTTP/2 flow-control window, per stream and per connection: what a client may send ahead
/// of the handler reading it.
const HTTP2_WINDOW: u32 = 256 * 1024;

/// How long an idle HTTP/2 connection asked to close may take before it is dropped (while no
/// request is in flight).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

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

/// Answers a connection over the cap with 503 (over TLS when `tls` is given: the handshake
/// counts against the same grace period) and closes it. The request is read (briefly) before
/// closing, so the client sees the answer rather than a reset.
async fn refuse(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        match tls {
            None => answer_refusal(stream).await,
            Some(acceptor) => {
                // A TLS client sends its request right after the handshake; answering before it
                // arrives would look to the client like a response to nothing.
                let mut stream = acceptor.accept(stream).await?;
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await?;
                answer_refusal(stream).await
            }
        }
    })
    .await;
}

async fn answer_refusal(mut stream: impl Io) -> std::io::Result<()> {
    const BODY: &str = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"the server is at its connection limit (limits.max_connections); retry shortly","detail":null}]}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
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
