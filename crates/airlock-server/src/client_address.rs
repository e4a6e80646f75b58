//! The one place a request's client address is decided.
//!
//! [`resolve`] runs before every handler. When the TCP peer is one of `access.trusted_proxies`,
//! it takes the client from `X-Forwarded-For` (the right-most address that is not a trusted
//! proxy, see [`airlock_core::TrustedProxies::client_address`]) and replaces the request's
//! `ConnectInfo<SocketAddr>` with it (port 0: a forwarded address carries none), so the rate
//! limiter, the audit actor's source, anomaly signals and the policy input all see the same
//! address. From any other peer the header is ignored and the peer is the client. The TCP peer
//! stays available as [`TcpPeer`].

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_core::TrustedProxies;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// The TCP peer of a request, whoever it forwarded for.
#[derive(Debug, Clone, Copy)]
pub struct TcpPeer(pub SocketAddr);

/// Middleware: sets `ConnectInfo<SocketAddr>` to the client address (see the module docs).
pub async fn resolve(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        request.extensions_mut().insert(TcpPeer(peer));
        if proxies.trusts(peer.ip()) {
            // Bytes that are not text become U+FFFD, so such a hop is malformed (the walk stops
            // there) instead of the whole value being dropped: a proxy appends the address it
            // saw to the client's line, and dropping the line would make the proxy the client.
            let forwarded: Vec<String> = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            let client = proxies.client_address(peer.ip(), forwarded.iter().map(String::as_str));
            let client = if client == peer.ip() {
                peer
            } else {
                SocketAddr::new(client, 0)
            };
            request.extensions_mut().insert(ConnectInfo(client));
        }
    }
    next.run(request).await
}
