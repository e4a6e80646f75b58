//! Request bodies under the limits: the progress timeout and the overall deadline
//! ([`ProgressTimeout`]), and reading the small unread rest of a body the handler answered
//! without reading ([`drain_unread`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use super::{BodyStalled, BodyTooSlow};

/// The overall deadline of a body that is not an upload's.
pub(super) struct Deadline {
    pub(super) limit: Duration,
    /// Started when the request header arrived.
    pub(super) timer: Pin<Box<tokio::time::Sleep>>,
    /// Set when the body failed for missing the deadline, so the answer can say so.
    pub(super) missed: Arc<AtomicBool>,
}

/// A request body that fails with [`BodyStalled`] when it delivers nothing for `timeout` while
/// it is being polled, and, with a [`Deadline`], with [`BodyTooSlow`] when the reader waits for
/// more after the deadline passed. The clocks matter only while the reader waits for the client,
/// so a handler that reads late is not penalised for data already received.
pub(super) struct ProgressTimeout {
    /// `None` only while being dropped.
    inner: Option<Incoming>,
    timeout: Duration,
    /// Armed when a poll finds no data; cleared when data arrives.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    overall: Option<Deadline>,
    /// Where the unread rest of the body goes when the handler drops it without a failure.
    unread: Option<tokio::sync::oneshot::Sender<Incoming>>,
    failed: bool,
}

impl ProgressTimeout {
    pub(super) fn new(
        inner: Incoming,
        timeout: Duration,
        overall: Option<Deadline>,
        unread: Option<tokio::sync::oneshot::Sender<Incoming>>,
    ) -> Self {
        Self {
            inner: Some(inner),
            timeout,
            deadline: None,
            overall,
            unread,
            failed: false,
        }
    }
}

impl Drop for ProgressTimeout {
    fn drop(&mut self) {
        if let (Some(inner), Some(unread)) = (self.inner.take(), self.unread.take())
            && !self.failed
            && !http_body::Body::is_end_stream(&inner)
        {
            let _ = unread.send(inner);
        }
    }
}

/// The most of an unread request body read after the answer (see [`drain_unread`]).
const MAX_UNREAD_DRAIN: u64 = 256 * 1024;

/// How long reading an unread request body after the answer may take.
const UNREAD_DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and discards what is left of a request body the handler answered without reading
/// (a 401 to an upload sent before credentials, say), if it is at most [`MAX_UNREAD_DRAIN`],
/// before the answer goes out. Otherwise HTTP/1.1 must close the connection while the client is
/// still sending, and a client that writes the whole body before reading (Python's requests
/// over TLS) sees a broken connection instead of the answer.
pub(super) async fn drain_unread(mut body: Incoming) {
    use http_body_util::BodyExt as _;
    if http_body::Body::size_hint(&body).lower() > MAX_UNREAD_DRAIN {
        return;
    }
    let _ = tokio::time::timeout(UNREAD_DRAIN_TIME, async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > MAX_UNREAD_DRAIN {
                break;
            }
        }
    })
    .await;
}

impl http_body::Body for ProgressTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                this.failed |= matches!(frame, Some(Err(_)));
                Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)))
            }
            Poll::Pending => {
                if let Some(overall) = &mut this.overall
                    && overall.timer.as_mut().poll(cx).is_ready()
                {
                    overall.missed.store(true, Ordering::Relaxed);
                    this.failed = true;
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
                        this.failed = true;
                        Poll::Ready(Some(Err(axum::Error::new(BodyStalled(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}
