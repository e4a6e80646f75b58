//! HTTP/2 idleness: hyper has no header timeout for HTTP/2, so each HTTP/2 connection counts its
//! requests in flight (from the request header to the end of the response body) and
//! `serve_connection` closes one that has had none for `limits.header_read_timeout`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Requests in flight on an HTTP/2 connection, and since when it has had none.
pub(super) struct Activity {
    state: Mutex<(usize, Instant)>,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new((0, Instant::now())),
        }
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub(super) fn idle_for(&self) -> Duration {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 > 0 {
            Duration::ZERO
        } else {
            state.1.elapsed()
        }
    }
}

/// One request in flight, from its header to the end of its response body.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(super) fn start(activity: Arc<Activity>) -> Self {
        activity.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}

/// A response body that keeps its request counted as in flight until it is done or dropped.
pub(super) struct TrackedBody {
    pub(super) inner: Body,
    pub(super) _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
