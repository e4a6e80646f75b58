//! Blob uploads: monolithic, chunked (with `Content-Range` ordering), cross-repository mount,
//! status and cancel.

use airlock_core::{Action, Digest, RepoName};
use airlock_store::UploadSession;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::upload_range;
use super::{OciError, Request, header_value};
use crate::registry::CommittedBlob;

fn upload_location(repo: &RepoName, session: &UploadSession) -> String {
    format!("/v2/{repo}/blobs/uploads/{}", session.id)
}

/// 202 with the session's location and received range.
fn session_response(repo: &RepoName, session: &UploadSession) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(upload_location(repo, session)),
    );
    headers.insert(header::RANGE, header_value(upload_range(session.size)));
    headers.insert("docker-upload-uuid", header_value(session.id.to_string()));
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

/// 201 pointing at the committed blob.
fn created_response(repo: &RepoName, blob: &CommittedBlob) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(format!("/v2/{repo}/blobs/{}", blob.digest)),
    );
    headers.insert(
        "docker-content-digest",
        header_value(blob.digest.to_string()),
    );
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    response
}

fn digest_param(request: &Request<'_>) -> Result<Option<Digest>, OciError> {
    Ok(request
        .query
        .get("digest")
        .map(|d| d.parse::<Digest>())
        .transpose()?)
}

/// Parses `Content-Range: <start>-<end>` (inclusive; `bytes ` prefix tolerated).
fn content_range(request: &Request<'_>) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = request.header(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            format!("Content-Range {value:?} is not <start>-<end>"),
        )
    };
    let spec = value.trim().trim_start_matches("bytes ").trim();
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let start = start.parse::<u64>().map_err(|_| invalid())?;
    let end = end.parse::<u64>().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    Ok(Some((start, end)))
}

/// `POST /v2/<name>/blobs/uploads/`: mount, monolithic upload, or a new session.
pub(super) async fn start(
    request: Request<'_>,
    repo: RepoName,
    body: Body,
) -> Result<Response, OciError> {
    let state = request.state;
    // A mount's source, if it names a repository: the challenge then asks for pull on it too.
    let mount_from = request
        .query
        .get("mount")
        .and(request.query.get("from"))
        .and_then(|from| from.parse::<RepoName>().ok());
    let actor = match &mount_from {
        Some(from) => {
            state
                .access
                .authorize_mount(request.headers, request.peer, &repo, from)
                .await?
        }
        None => request.authorize(Some(&repo), Action::Push).await?,
    };
    let registry = &state.registry;
    if let Some(mount) = request.query.get("mount")
        && request.query.contains_key("from")
    {
        let digest: Digest = mount.parse()?;
        // A malformed or unreadable source is not an error: the client falls back to uploading.
        if let Some(from) = &mount_from
            && request.authorize(Some(from), Action::Pull).await.is_ok()
            && let Some(blob) = registry.mount_blob(&repo, &digest, from, &actor).await?
        {
            return Ok(created_response(&repo, &blob));
        }
    }
    match digest_param(&request)? {
        Some(digest) => {
            let blob = registry
                .upload_monolithic(&repo, &digest, body.into_data_stream(), &actor)
                .await?;
            Ok(created_response(&repo, &blob))
        }
        None => {
            let session = registry.start_upload(&repo, &actor).await?;
            Ok(session_response(&repo, &session))
        }
    }
}

/// `GET /v2/<name>/blobs/uploads/<id>`: how much has been received.
pub(super) async fn status(
    request: Request<'_>,
    repo: RepoName,
    id: String,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Push).await?;
    let session = state.registry.session(&repo, &id, &actor).await?;
    let mut response = session_response(&repo, &session);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: append a chunk.
pub(super) async fn patch(
    request: Request<'_>,
    repo: RepoName,
    id: String,
    body: Body,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Push).await?;
    let range = content_range(&request)?;
    let session = state
        .registry
        .append_chunk(&repo, &id, range, body.into_data_stream(), &actor)
        .await
        .map_err(|err| with_session_location(err.into(), &repo, &id))?;
    Ok(session_response(&repo, &session))
}

/// Adds the upload's `Location` to a 416 so the client can resume.
fn with_session_location(err: OciError, repo: &RepoName, id: &str) -> OciError {
    if err.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        err.with_header(header::LOCATION, format!("/v2/{repo}/blobs/uploads/{id}"))
    } else {
        err
    }
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: last chunk (optional) and commit.
pub(super) async fn put(
    request: Request<'_>,
    repo: RepoName,
    id: String,
    body: Body,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Push).await?;
    let digest = digest_param(&request)?.ok_or_else(|| {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "the digest query parameter is required to finish an upload: PUT ...?digest=sha256:<hex>",
        )
    })?;
    let blob = state
        .registry
        .finish_upload(&repo, &id, &digest, body.into_data_stream(), &actor)
        .await?;
    Ok(created_response(&repo, &blob))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel and delete the data.
pub(super) async fn cancel(
    request: Request<'_>,
    repo: RepoName,
    id: String,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Push).await?;
    state.registry.cancel_upload(&repo, &id, &actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
