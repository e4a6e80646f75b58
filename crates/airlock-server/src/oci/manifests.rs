//! Manifests by tag or digest: push (bounded, verified), get/head, delete.

use airlock_core::{Action, Reference, RepoName, StageMode};
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::{OciError, Request, header_value};
use crate::registry::RegistryError;

/// Reads a manifest body, refusing (before or while reading) anything above `limit` bytes.
async fn read_bounded(
    request: &Request<'_>,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, OciError> {
    let too_large = || OciError::from(RegistryError::ManifestTooLarge { limit });
    if let Some(length) = request.header(header::CONTENT_LENGTH)
        && length.parse::<u64>().is_ok_and(|n| n > limit as u64)
    {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            format!("could not read the manifest body: {err}"),
        )),
    }
}

/// `PUT /v2/<name>/manifests/<reference>`.
pub(super) async fn put(
    request: Request<'_>,
    repo: RepoName,
    reference: Reference,
    body: Body,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Push).await?;
    let registry = &state.registry;
    // Refuse gated stages before reading a byte of the body.
    registry.check_write(&repo, Action::Push, &actor).await?;
    let content = read_bounded(&request, body, registry.limits().max_manifest_bytes).await?;
    let pushed = registry
        .put_manifest(
            &repo,
            &reference,
            request.header(header::CONTENT_TYPE),
            &content,
            &actor,
        )
        .await?;
    // The manifest is committed; its evidence (if it carries any) is verified now so that it is
    // visible as soon as the push returns. A failure here is logged, not returned: the push did
    // happen, and the next start ingests whatever was missed.
    if let Err(err) = state
        .evidence
        .ingest_manifest(
            &repo,
            &pushed.digest,
            &pushed.manifest,
            pushed.tag.as_ref(),
            &actor,
        )
        .await
    {
        tracing::error!(repository = %repo, digest = %pushed.digest, error = %err, "evidence ingestion failed");
    }
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(format!("/v2/{repo}/manifests/{}", pushed.digest)),
    );
    headers.insert(
        "docker-content-digest",
        header_value(pushed.digest.to_string()),
    );
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    if let Some(subject) = &pushed.subject {
        headers.insert("oci-subject", header_value(subject.to_string()));
    }
    Ok(response)
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>`.
pub(super) async fn get(
    request: Request<'_>,
    repo: RepoName,
    reference: Reference,
    with_body: bool,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Pull).await?;
    let gated = state
        .registry
        .stages()
        .stage_of(&repo)
        .is_ok_and(|stage| stage.mode == StageMode::Gated);
    let manifest = match state.registry.manifest(&repo, &reference).await {
        Ok(manifest) => manifest,
        Err(err) => {
            // Only promotions put digests into gated stages: asking one for a digest it never
            // received is probing (or a deployment pointed at an unpromoted build).
            if let (true, RegistryError::ManifestUnknown(_), Reference::Digest(digest)) =
                (gated, &err, &reference)
            {
                state
                    .anomalies
                    .unpromoted_digest_requested(
                        &actor.principal,
                        actor.source.as_deref(),
                        &repo,
                        digest,
                    )
                    .await;
            }
            return Err(err.into());
        }
    };
    if gated && let Some(quarantine) = &manifest.quarantine {
        metrics::counter!(crate::metrics::QUARANTINE_REFUSALS).increment(1);
        return Err(OciError::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!(
                "{repo}@{} is quarantined by anomaly {}: {}; an access-admin lifts it with `airlock anomalies resolve {} --reason ..`",
                manifest.digest, quarantine.anomaly_id, quarantine.reason, quarantine.anomaly_id
            ),
        ));
    }
    let length = manifest.content.len();
    let mut response = if with_body {
        Body::from(manifest.content).into_response()
    } else {
        Body::empty().into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header_value(&manifest.media_type));
    headers.insert(header::CONTENT_LENGTH, header_value(length.to_string()));
    headers.insert(
        "docker-content-digest",
        header_value(manifest.digest.to_string()),
    );
    headers.insert(
        header::ETAG,
        header_value(format!("\"{}\"", manifest.digest)),
    );
    Ok(response)
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>` with a reference that is not a valid tag: after
/// the same authorization as any read, `404 MANIFEST_UNKNOWN`, since no manifest can have it.
pub(super) async fn get_invalid_tag(
    request: Request<'_>,
    repo: RepoName,
    tag: String,
) -> Result<Response, OciError> {
    request.authorize(Some(&repo), Action::Pull).await?;
    Err(OciError::new(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        format!(
            "no manifest {repo}:{tag}: {tag:?} is not a valid tag (1-128 characters of [a-zA-Z0-9._-], not starting with '.' or '-'), so nothing can be stored under it; check the reference"
        ),
    ))
}

/// `DELETE /v2/<name>/manifests/<reference>`: a tag, or a manifest with its tags.
pub(super) async fn delete(
    request: Request<'_>,
    repo: RepoName,
    reference: Reference,
) -> Result<Response, OciError> {
    let state = request.state;
    let actor = request.authorize(Some(&repo), Action::Delete).await?;
    state
        .registry
        .delete_manifest(&repo, &reference, &actor)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
