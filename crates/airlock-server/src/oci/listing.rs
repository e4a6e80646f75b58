//! Listings: tags (paginated), referrers (filterable, paginated), catalog (paginated).
//!
//! Every listing answers a page and, when more may follow, a `Link: <...>; rel="next"` header
//! (RFC 5988) with the URL of the next page, as the distribution spec allows for all three. Tags
//! and the catalog page by `n` and `last` (the spec's parameters): `n` above 10,000 is answered
//! with 10,000 entries and the `Link` header, never cut silently. Referrers page by `n` (at most
//! 1,000, the default) and an opaque `last` cursor (`<millis>:<digest>`, the arrival of the
//! page's last referrer), which only the `Link` header hands out; each page is a complete image
//! index.

use airlock_core::{Action, Digest, RepoName};
use airlock_store::TimeCursor;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{OciError, Request, header_value};
use crate::paging::{parse_time_cursor, split_page, time_cursor};

/// Most entries one listing page returns, whatever `n` asks for.
const MAX_PAGE: u32 = 10_000;

/// A page request: `n` entries after `last`.
struct Page<'a> {
    limit: u32,
    last: Option<&'a str>,
}

fn page<'a>(request: &Request<'a>) -> Result<Page<'a>, OciError> {
    Ok(Page {
        limit: page_limit(request.query.get("n").map(String::as_str))?,
        last: request.query.get("last").map(String::as_str),
    })
}

/// The entries a page of tags or repositories holds: `n`, at most [`MAX_PAGE`] (a full page of
/// that many carries the `Link` to the rest, see [`paged`]).
fn page_limit(n: Option<&str>) -> Result<u32, OciError> {
    Ok(match n {
        None => MAX_PAGE,
        Some(n) => n.parse::<u32>().map_err(|_| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n={n:?} is not a non-negative integer"),
            )
        })?,
    }
    .min(MAX_PAGE))
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

/// Most referrers one page of `GET /v2/<name>/referrers/<digest>` holds, and the default.
const MAX_REFERRERS_PAGE: u32 = 1000;

/// The referrers page asked for: `n` (1 to [`MAX_REFERRERS_PAGE`]) after the cursor `last`.
fn referrers_page(request: &Request<'_>) -> Result<(u32, Option<TimeCursor>), OciError> {
    let limit = match request.query.get("n") {
        None => MAX_REFERRERS_PAGE,
        Some(n) => match n.parse::<u32>() {
            Ok(n) if (1..=MAX_REFERRERS_PAGE).contains(&n) => n,
            _ => {
                return Err(OciError::new(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_NUMBER_INVALID",
                    format!("n={n:?} is not a page size from 1 to {MAX_REFERRERS_PAGE}"),
                ));
            }
        },
    };
    let last = parse_time_cursor(request.query.get("last").map(String::as_str)).map_err(|_| {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "PAGINATION_CURSOR_INVALID",
            "last is not a cursor of this list: follow the Link header of the previous page",
        )
    })?;
    Ok((limit, last))
}

/// `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is `digest`,
/// a page at a time.
pub(super) async fn referrers(
    request: Request<'_>,
    repo: RepoName,
    subject: Digest,
) -> Result<Response, OciError> {
    let state = request.state;
    request.authorize(Some(&repo), Action::Pull).await?;
    let artifact_type = request.query.get("artifactType").map(String::as_str);
    let (limit, last) = referrers_page(&request)?;
    // One row past the page says whether another page follows.
    let rows = state
        .registry
        .referrers_page(&repo, &subject, artifact_type, last.as_ref(), limit + 1)
        .await?;
    let (rows, next) = split_page(rows, limit, |(at, row)| {
        time_cursor(*at, &row.digest.to_string())
    });
    let manifests: Vec<Value> = rows
        .into_iter()
        .map(|(_, row)| {
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
    if let Some(next) = next {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("n", &limit.to_string());
        query.append_pair("last", &next);
        if let Some(artifact_type) = artifact_type {
            query.append_pair("artifactType", artifact_type);
        }
        headers.insert(
            header::LINK,
            header_value(format!(
                "</v2/{repo}/referrers/{subject}?{}>; rel=\"next\"",
                query.finish()
            )),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_above_the_cap_is_answered_with_a_full_page_and_a_link_to_the_rest() {
        let limit = page_limit(Some("20000")).unwrap();
        assert_eq!(limit, MAX_PAGE);
        let tags: Vec<String> = (0..limit).map(|i| format!("t{i:05}")).collect();
        let response = paged(json!({"tags": tags}), &tags, limit, "/v2/dev/app/tags/list");
        assert_eq!(
            response.headers()[header::LINK],
            "</v2/dev/app/tags/list?n=10000&last=t09999>; rel=\"next\""
        );
        let partial = &tags[..10];
        let response = paged(
            json!({"tags": partial}),
            partial,
            limit,
            "/v2/dev/app/tags/list",
        );
        assert!(response.headers().get(header::LINK).is_none());
        assert!(page_limit(Some("x")).is_err());
    }
}
