//! Blob reads (with `Range`, or a redirect to the bucket with `[s3] redirect`) and deletes.

use airlock_core::{Action, Digest, RepoName};
use airlock_store::BlobRange;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{OciError, Request, header_value};

/// A parsed `Range: bytes=...` request: one range, resolved against the blob size.
fn parse_range(value: &str, size: u64) -> Result<BlobRange, OciError> {
    let unsatisfiable = || {
        OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_INVALID",
            format!("Range {value:?} cannot be served: send one range bytes=start-end within the blob's {size} bytes"),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(unsatisfiable());
    }
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| unsatisfiable());
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        (true, true) => return Err(unsatisfiable()),
        // bytes=-N: the last N bytes.
        (true, false) => {
            let n = number(end)?.min(size);
            BlobRange {
                start: size - n,
                end: size,
            }
        }
        (false, true) => BlobRange {
            start: number(start)?,
            end: size,
        },
        (false, false) => BlobRange {
            start: number(start)?,
            end: number(end)?.saturating_add(1).min(size),
        },
    };
    if range.start >= range.end {
        return Err(unsatisfiable());
    }
    Ok(range)
}

/// `GET`/`HEAD /v2/<name>/blobs/<digest>`.
pub(super) async fn get(
    request: Request<'_>,
    repo: RepoName,
    digest: Digest,
    with_body: bool,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Pull).await?;
    let size = state.registry.blob_size(&repo, &digest).await?;
    // `[s3] redirect`: the bytes come from the bucket. GET only, as distribution does: a HEAD
    // is answered here, where it costs nothing.
    if with_body && let Some(location) = state.registry.blob_redirect(&repo, &digest).await? {
        tracing::info!(
            principal = %actor.principal,
            client = actor.source.as_deref().unwrap_or("-"),
            repository = %repo,
            %digest,
            "blob download redirected to the blob store"
        );
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, header_value(location));
        headers.insert("docker-content-digest", header_value(digest.to_string()));
        return Ok(response);
    }
    let range = request
        .header(header::RANGE)
        .map(|value| parse_range(value, size))
        .transpose()?;
    let mut response = if !with_body {
        Body::empty().into_response()
    } else {
        let (_, stream) = state.registry.read_blob(&repo, &digest, range).await?;
        Body::from_stream(stream).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header_value("application/octet-stream"),
    );
    headers.insert("docker-content-digest", header_value(digest.to_string()));
    headers.insert(header::ACCEPT_RANGES, header_value("bytes"));
    headers.insert(header::ETAG, header_value(format!("\"{digest}\"")));
    match range {
        Some(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_LENGTH,
                header_value((range.end - range.start).to_string()),
            );
            headers.insert(
                header::CONTENT_RANGE,
                header_value(format!("bytes {}-{}/{size}", range.start, range.end - 1)),
            );
        }
        None => {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, header_value(size.to_string()));
        }
    }
    Ok(response)
}

/// `DELETE /v2/<name>/blobs/<digest>`.
pub(super) async fn delete(
    request: Request<'_>,
    repo: RepoName,
    digest: Digest,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Delete).await?;
    state.registry.delete_blob(&repo, &digest, &actor).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_size() {
        let r = |s| parse_range(s, 100).map(|r| (r.start, r.end)).ok();
        assert_eq!(r("bytes=0-9"), Some((0, 10)));
        assert_eq!(r("bytes=90-"), Some((90, 100)));
        assert_eq!(r("bytes=-10"), Some((90, 100)));
        assert_eq!(r("bytes=95-200"), Some((95, 100)));
        assert_eq!(r("bytes=100-"), None);
        assert_eq!(r("bytes=5-1"), None);
        assert_eq!(r("bytes=0-1,5-6"), None);
        assert_eq!(r("items=0-1"), None);
        assert_eq!(r("bytes=x-1"), None);
    }
}
