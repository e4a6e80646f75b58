//! The OCI Distribution Spec v1.1 API under `/v2/`.
//!
//! One axum route catches `/v2/*`; [`route::OciRoute::parse`] turns the path into a typed route and
//! [`dispatch`] sends it, by method, to a thin handler that authorizes once, calls the
//! [`Registry`](crate::registry::Registry) and renders the result. Every failure is rendered by
//! [`OciError`].

mod blobs;
mod error;
mod listing;
mod manifests;
pub mod route;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use std::collections::HashMap;

pub use error::OciError;
use route::OciRoute;

use crate::access::AccessControl;
use crate::registry::Registry;

/// What OCI handlers need: the registry service and access control.
#[derive(Clone)]
pub struct OciState {
    /// The registry service.
    pub registry: Arc<Registry>,
    /// Access control, consulted once per request.
    pub access: Arc<AccessControl>,
    /// Evidence ingestion for signature and attestation manifests.
    pub evidence: Arc<crate::evidence::EvidenceService>,
    /// Quarantines and the unpromoted-digest rule on pulls from gated stages.
    pub anomalies: Arc<crate::anomalies::Anomalies>,
}

/// Query parameters of OCI requests, kept raw and parsed by each handler into typed values.
pub(crate) type QueryParams = HashMap<String, String>;

/// The `/v2` router.
pub fn router(state: OciState) -> Router {
    Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(state)
}

async fn base(
    State(state): State<OciState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if !matches!(method, Method::GET | Method::HEAD) {
        return with_api_version(OciError::method_not_allowed("GET, HEAD").into_response());
    }
    with_api_version(match state.access.check_base(&headers, Some(peer)).await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response(),
        Err(err) => err.into_response(),
    })
}

fn with_api_version(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn dispatch(
    State(state): State<OciState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    method: Method,
    Path(rest): Path<String>,
    Query(query): Query<QueryParams>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let route = OciRoute::parse(&rest)?;
        let request = Request {
            state: &state,
            headers: &headers,
            query: &query,
            peer: Some(peer),
        };
        match (route, method) {
            (OciRoute::Base, Method::GET | Method::HEAD) => {
                state.access.check_base(&headers, Some(peer)).await?;
                Ok(axum::Json(serde_json::json!({})).into_response())
            }
            (OciRoute::Catalog, Method::GET) => listing::catalog(request).await,
            (OciRoute::Tags(repo), Method::GET) => listing::tags(request, repo).await,
            (OciRoute::Referrers(repo, subject), Method::GET) => {
                listing::referrers(request, repo, subject).await
            }
            (OciRoute::Manifest(repo, reference), Method::GET) => {
                manifests::get(request, repo, reference, true).await
            }
            (OciRoute::Manifest(repo, reference), Method::HEAD) => {
                manifests::get(request, repo, reference, false).await
            }
            (OciRoute::Manifest(repo, reference), Method::PUT) => {
                manifests::put(request, repo, reference, body).await
            }
            (OciRoute::Manifest(repo, reference), Method::DELETE) => {
                manifests::delete(request, repo, reference).await
            }
            (OciRoute::ManifestWithInvalidTag(repo, tag), Method::GET | Method::HEAD) => {
                manifests::get_invalid_tag(request, repo, tag).await
            }
            (OciRoute::ManifestWithInvalidTag(_, tag), Method::PUT | Method::DELETE) => {
                Err(airlock_core::Error::InvalidTag(tag).into())
            }
            (OciRoute::Blob(repo, digest), Method::GET) => {
                blobs::get(request, repo, digest, true).await
            }
            (OciRoute::Blob(repo, digest), Method::HEAD) => {
                blobs::get(request, repo, digest, false).await
            }
            (OciRoute::Blob(repo, digest), Method::DELETE) => {
                blobs::delete(request, repo, digest).await
            }
            (OciRoute::UploadStart(repo), Method::POST) => {
                uploads::start(request, repo, body).await
            }
            (OciRoute::Upload(repo, id), Method::GET) => uploads::status(request, repo, id).await,
            (OciRoute::Upload(repo, id), Method::PATCH) => {
                uploads::patch(request, repo, id, body).await
            }
            (OciRoute::Upload(repo, id), Method::PUT) => {
                uploads::put(request, repo, id, body).await
            }
            (OciRoute::Upload(repo, id), Method::DELETE) => {
                uploads::cancel(request, repo, id).await
            }
            (route, _) => Err(OciError::method_not_allowed(allowed_methods(&route))),
        }
    }
    .await;
    with_api_version(result.unwrap_or_else(IntoResponse::into_response))
}

fn allowed_methods(route: &OciRoute) -> &'static str {
    match route {
        OciRoute::Base | OciRoute::Catalog | OciRoute::Tags(_) | OciRoute::Referrers(..) => "GET",
        OciRoute::Manifest(..) | OciRoute::ManifestWithInvalidTag(..) => "GET, HEAD, PUT, DELETE",
        OciRoute::Blob(..) => "GET, HEAD, DELETE",
        OciRoute::UploadStart(_) => "POST",
        OciRoute::Upload(..) => "GET, PATCH, PUT, DELETE",
    }
}

/// The parts of a request every handler reads.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    pub state: &'a OciState,
    pub headers: &'a HeaderMap,
    pub query: &'a QueryParams,
    /// The client's address, for the audit log.
    pub peer: Option<std::net::SocketAddr>,
}

impl Request<'_> {
    /// Authorizes `action` on `repo` (one call per request) and returns the acting principal as
    /// the audit log records it.
    pub async fn authorize(
        &self,
        repo: Option<&airlock_core::RepoName>,
        action: airlock_core::Action,
    ) -> Result<airlock_core::Actor, OciError> {
        self.state
            .access
            .authorize(self.headers, self.peer, repo, action)
            .await
    }

    /// A header as text, if present and valid.
    pub fn header(&self, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Builds a header value from text that is known to be ASCII (digests, numbers, our own paths).
pub(crate) fn header_value(value: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(value.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}
