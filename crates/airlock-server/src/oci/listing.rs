//! Listings: tags (paginated), referrers (filterable), catalog (paginated).

use airlock_core::{Action, Digest, RepoName};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{OciError, Request, header_value};

/// Most entries one listing page returns, whatever `n` asks for.
const MAX_PAGE: u32 = 10_000;

/// A page request: `n` entries after `last`.
struct Page<'a> {
    limit: u32,
    last: Option<&'a str>,
}

fn page<'a>(request: &Request<'a>) -> Result<Page<'a>, OciError> {
    let limit = match request.query.get("n") {
        None => MAX_PAGE,
        Some(n) => n.parse::<u32>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n={n:?} is not a non-negative integer"),
            )
        })?,
    }
    .min(MAX_PAGE);
    Ok(Page {
        limit,
        last: request.query.get("last").map(String::as_str),
    })
}

/// Renders a page, adding `Link: <...>; rel="next"` when it is full.
fn paged(body: Value, entries: &[String], limit: u32, next_base: &str) -> Response {
    let mut response = axum::Json(body).into_response();
    if limit > 0
        && entries.len() == limit as usize
        && let Some(last) = entries.last()
    {
        response.headers_mut().insert(
            header::LINK,
            header_value(format!("<{next_base}?n={limit}&last={last}>; rel=\"next\"")),
        );
    }
    response
}

/// `GET /v2/<name>/tags/list`.
pub(super) async fn tags(request: Request<'_>, repo: RepoName) -> Result<Response, OciError> {
    let state = request.state;
    request.authorize(Some(&repo), Action::Pull).await?;
    let page = page(&request)?;
    let tags = state.registry.tags(&repo, page.limit, page.last).await?;
    Ok(paged(
        json!({"name": repo.as_str(), "tags": tags}),
        &tags,
        page.limit,
        &format!("/v2/{repo}/tags/list"),
    ))
}

/// `GET /v2/_catalog`.
pub(super) async fn catalog(request: Request<'_>) -> Result<Response, OciError> {
    let state = request.state;
    request.authorize(None, Action::Pull).await?;
    let page = page(&request)?;
    let repositories = state.registry.catalog(page.limit, page.last).await?;
    Ok(paged(
        json!({"repositories": repositories}),
        &repositories,
        page.limit,
        "/v2/_catalog",
    ))
}

/// `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is `digest`.
pub(super) async fn referrers(
    request: Request<'_>,
    repo: RepoName,
    subject: Digest,
) -> Result<Response, OciError> {
    let state = request.state;
    request.authorize(Some(&repo), Action::Pull).await?;
    let artifact_type = request.query.get("artifactType").map(String::as_str);
    let rows = state
        .registry
        .referrers(&repo, &subject, artifact_type)
        .await?;
    let manifests: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let mut descriptor = Map::new();
            descriptor.insert("mediaType".into(), row.media_type.into());
            descriptor.insert("digest".into(), row.digest.to_string().into());
            descriptor.insert("size".into(), row.size.into());
            if let Some(artifact_type) = row.artifact_type {
                descriptor.insert("artifactType".into(), artifact_type.into());
            }
            if !row.annotations.is_empty() {
                descriptor.insert("annotations".into(), json!(row.annotations));
            }
            Value::Object(descriptor)
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": airlock_core::manifest::OCI_INDEX,
        "manifests": manifests,
    });
    let mut response = axum::Json(index).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header_value(airlock_core::manifest::OCI_INDEX),
    );
    if artifact_type.is_some() {
        headers.insert("oci-filters-applied", header_value("artifactType"));
    }
    Ok(response)
}
