//! HTTP endpoints of the keyring and of artifact evidence.
//!
//! - `GET /api/v1/keys`, `POST /api/v1/keys`, `POST /api/v1/keys/{name}/retire|revoke`: the
//!   keyring (changes need `manage-keys` everywhere); `PATCH /api/v1/keys/{name}` changes a key's
//!   purposes, scope and end of validity (`manage-keys` in a scope holding the key's scope, before
//!   and after, in every stage).
//! - `GET /api/v1/artifacts/{stage}/{path}@{digest}`: the artifact, its tags, flags and evidence;
//!   `GET .../evidence` the evidence alone; `POST .../evidence` a DSSE envelope (or Sigstore
//!   bundle) for CI tools that do not speak OCI (needs `attest` on the repository).

use std::str::FromStr;
use std::sync::Arc;

use airlock_api::ErrorBody;
use airlock_api::evidence as api;
use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::{Action, Digest, RepoName};
use airlock_store::{EvidenceRow, KeyRow};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};

use super::{EvidenceError, EvidenceService, KeyAuthority, KeyUpdate, NewKey, StatusChange};
use crate::api::{ApiError, json_body};
use crate::caller::Caller;
use crate::extract::ApiQuery;
use crate::identity::{Authenticated, Identity};
use crate::paging::{
    DEFAULT_PAGE, MAX_PAGE, page_size, parse_time_cursor, split_page, time_cursor,
};

/// State of the evidence routes.
#[derive(Clone)]
pub struct EvidenceState {
    /// The evidence service.
    pub evidence: Arc<EvidenceService>,
    /// Who is calling.
    pub identity: Arc<Identity>,
}

/// The keyring and evidence routes.
pub fn router(state: EvidenceState) -> Router {
    Router::new()
        .route("/api/v1/keys", get(list_keys).post(add_key))
        .route("/api/v1/keys/{name}", axum::routing::patch(update_key))
        .route("/api/v1/keys/{name}/retire", post(retire_key))
        .route("/api/v1/keys/{name}/revoke", post(revoke_key))
        .route("/api/v1/artifacts/{*reference}", any(artifact))
        .layer(DefaultBodyLimit::max(
            airlock_trust::dsse::MAX_ENVELOPE_BYTES + 1024,
        ))
        .with_state(state)
}

impl From<EvidenceError> for ApiError {
    fn from(err: EvidenceError) -> Self {
        use EvidenceError as E;
        let message = err.to_string();
        let bad = |remediation: String| ApiError::bad_request(message.clone(), remediation);
        let status = |status: StatusCode, code: &'static str, remediation: String| {
            ApiError::new(status, code, message.clone(), remediation)
        };
        const PURPOSES: &str = "a purpose is `sign` or `attest:<predicate type URI>` (e.g. attest:https://slsa.dev/provenance/v1)";
        match err {
            E::KeyUnknown { .. } => status(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "check the key name: airlock keys list shows every key".into(),
            ),
            E::ArtifactUnknown { repo, .. } => status(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!(
                    "push the artifact to {repo} first, or check the stage, repository and digest (skopeo inspect shows the digest)"
                ),
            ),
            E::DocumentTooLarge { limit, .. } => bad(format!(
                "send one DSSE envelope or Sigstore bundle of at most {limit} bytes per request"
            )),
            E::DocumentNotJson(_) => bad(
                "send the DSSE envelope or Sigstore bundle JSON as the body, as written by the signing tool".into(),
            ),
            E::NotAnEnvelope(_) => bad(format!(
                "send a DSSE envelope ({{\"payloadType\", \"payload\", \"signatures\"}}) or a Sigstore bundle whose mediaType is one of {}",
                airlock_trust::cosign::SIGSTORE_BUNDLE_MEDIA_TYPES.join(", ")
            )),
            E::BundleMediaType { .. } => bad(
                "write the bundle with a Sigstore client that produces one of these media types (cosign v2.4+ writes the v0.3 one)".into(),
            ),
            E::PublicKey(_) => bad(
                "send the public key as SPKI PEM (the cosign.pub file): ECDSA P-256/P-384, Ed25519 or RSA of 2048 bits or more; --algorithm only for rsa-pss-sha256".into(),
            ),
            E::KeyName { .. } => bad("choose a name such as ci-2026 (airlock keys add NAME ...)".into()),
            E::Purpose { .. } => bad(PURPOSES.into()),
            E::NoPurpose => bad("give --purpose sign and/or --purpose attest:<predicate type>".into()),
            E::Scope { .. } | E::NoScope => bad(
                "give --scope 'team/*' (repository paths without the stage), or --scope '*' for all".into(),
            ),
            E::Validity { .. } => bad("give a --not-after later than the key's not_before (airlock keys list shows it)".into()),
            E::NothingToChange => bad("give --add-purpose, --remove-purpose, --scope or --not-after".into()),
            E::Unchanged { .. } => bad("nothing to do: airlock keys list shows the key as it is".into()),
            E::PurposeNotHeld { .. } => bad("remove only purposes the key has: airlock keys list shows each key's purposes".into()),
            E::PurposeHeld { purpose, .. } => bad(format!("drop --add-purpose {purpose}: the key already has it")),
            E::NoPurposeLeft { name } => bad(format!(
                "keep at least one purpose, or retire the key (airlock keys retire {name} --reason ...)"
            )),
            E::ReasonMissing => bad("give --reason (\"reason\" in the request): it is recorded in the audit log".into()),
            E::NameTaken { .. } => status(
                StatusCode::CONFLICT,
                "CONFLICT",
                "pick another name: airlock keys list shows the names in use".into(),
            ),
            E::KeyPresent { .. } => status(
                StatusCode::CONFLICT,
                "CONFLICT",
                "the key is already trusted under that name; change it with airlock keys update instead of adding it again".into(),
            ),
            E::KeyStatus { .. } => status(
                StatusCode::CONFLICT,
                "CONFLICT",
                "nothing to do: airlock keys list shows the key's status".into(),
            ),
            E::KeyRevoked { .. } => status(
                StatusCode::CONFLICT,
                "CONFLICT",
                "add a new key (airlock keys add) instead of changing a revoked one".into(),
            ),
            E::KeyringMoved(_) => status(
                StatusCode::CONFLICT,
                "CONFLICT",
                "someone changed the keyring at the same time: list it (airlock keys list) and retry".into(),
            ),
            E::KeyOutsideAuthority { .. } => status(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "ask a key-admin whose scope covers the key in every stage (airlock whoami shows your grants)".into(),
            ),
            E::ScopeOutsideAuthority { .. } => status(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "give a scope your key-admin grants cover in every stage (airlock whoami shows your grants)".into(),
            ),
            E::Store(airlock_store::StoreError::BlobCollected(_)) => status(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "submit it again: garbage collection was deleting an earlier copy of these bytes".into(),
            ),
            E::Store(err) => ApiError::storage(&err),
        }
    }
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        format!("you may not {what}"),
        "ask an access-admin for a role that allows it (airlock access request)",
    )
}

fn require_key_admin(who: &Option<Authenticated>) -> Result<(), ApiError> {
    match who {
        Some(who) if !who.has(Permission::ManageKeys, &PermissionTarget::Global) => Err(forbidden(
            "change the keyring: that needs the key-admin role",
        )),
        _ => Ok(()),
    }
}

/// Where the caller may administer keys: everywhere with a global `key-admin` grant (or with
/// access control off), else within its scoped `key-admin` grants; refused without any.
fn key_authority(who: &Option<Authenticated>) -> Result<KeyAuthority, ApiError> {
    let Some(who) = who else {
        return Ok(KeyAuthority::Everywhere);
    };
    if who.has(Permission::ManageKeys, &PermissionTarget::Global) {
        return Ok(KeyAuthority::Everywhere);
    }
    let now = airlock_store::now_millis();
    let scoped: Vec<_> = who
        .grants
        .iter()
        .filter(|g| {
            g.is_active(now)
                && airlock_core::access::permissions(g.role).contains(&Permission::ManageKeys)
        })
        .cloned()
        .collect();
    if scoped.is_empty() {
        return Err(forbidden(
            "change the keyring: that needs the key-admin role",
        ));
    }
    Ok(KeyAuthority::Grants(scoped))
}

fn rfc3339(millis: Option<i64>) -> Option<String> {
    millis.map(airlock_core::audit::rfc3339_millis)
}

fn key_view(key: &KeyRow) -> api::Key {
    api::Key {
        key_id: key.key_id.clone(),
        name: key.name.clone(),
        algorithm: key.algorithm.clone(),
        public_key: key.public_key.clone(),
        purposes: key.purposes.clone(),
        scope: key.scope.clone(),
        not_before: rfc3339(key.not_before),
        not_after: rfc3339(key.not_after),
        status: key.status.clone(),
        status_changed: rfc3339(key.status_at),
        status_reason: key.status_reason.clone(),
        compromised: key.compromised,
        created: rfc3339(Some(key.created_at)),
        created_by: key.created_by.clone(),
    }
}

/// A stored evidence item as the API and `airlock evidence` show it.
pub fn evidence_view(row: &EvidenceRow) -> api::EvidenceItem {
    let facts = row
        .verdict
        .facts
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or(serde_json::Value::Null);
    api::EvidenceItem {
        id: row.id,
        item: row.origin.item.clone(),
        status: row.verdict.status.clone(),
        kind: row.verdict.kind.clone(),
        format: row.origin.format.clone(),
        source: row.origin.source.clone(),
        repository: row.origin.repository.clone(),
        manifest: row.origin.manifest.clone(),
        key_id: row.verdict.key_id.clone(),
        key_name: row.verdict.key_name.clone(),
        predicate_type: row.verdict.predicate_type.clone(),
        reason_code: row.verdict.reason_code.clone(),
        reason: row.verdict.reason.clone(),
        facts,
        keyring_version: row.verdict.keyring_version,
        first_seen: rfc3339(Some(row.first_seen_at)),
        verified_at: rfc3339(Some(row.verified_at)),
        pushed_by: row.origin.pushed_by.clone(),
    }
}

/// The keyring, every key whatever its status, oldest first, a page at a time (any signed-in
/// caller).
#[utoipa::path(
    operation_id = "list_keys",
    get,
    path = "/api/v1/keys",
    tag = "evidence",
    params(airlock_api::catalog::PageQuery),
    responses(
        (status = 200, description = "A page of the keyring and its version", body = api::Keyring),
        (status = 400, description = "A page size out of range, a cursor this list did not hand out, or a malformed query", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn list_keys(
    State(state): State<EvidenceState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<airlock_api::catalog::PageQuery>,
) -> Result<Json<api::Keyring>, ApiError> {
    let limit = page_size(query.n, DEFAULT_PAGE, MAX_PAGE)?;
    let after = parse_time_cursor(query.last.as_deref())?;
    // One row past the page says whether another page follows.
    let (version, keys) = state.evidence.keys_page(after.as_ref(), limit + 1).await?;
    let (keys, next) = split_page(keys, limit, |k| time_cursor(k.created_at, &k.name));
    Ok(Json(api::Keyring {
        keyring_version: version,
        keys: keys.iter().map(key_view).collect(),
        next,
    }))
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|e| {
                    ApiError::bad_request(
                        format!("{field} is not an RFC 3339 time: {e}"),
                        "write it like 2026-12-31T23:59:59Z",
                    )
                })
        })
        .transpose()
}

/// Adds a public key to the keyring (`key-admin` everywhere) and re-verifies evidence no key
/// could verify so far.
#[utoipa::path(
    operation_id = "add_key",
    post,
    path = "/api/v1/keys",
    tag = "evidence",
    request_body = api::AddKeyRequest,
    responses(
        (status = 201, description = "The key as added", body = api::Key),
        (status = 400, description = "The request, key, name, purposes, scope or times are invalid", body = ErrorBody),
        (status = 403, description = "Not a key-admin everywhere", body = ErrorBody),
        (status = 409, description = "The name or the public key is already in the keyring", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn add_key(
    State(state): State<EvidenceState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<api::Key>), ApiError> {
    require_key_admin(&caller.who)?;
    let body: api::AddKeyRequest = json_body(
        &body,
        "key request",
        "send {\"name\", \"public_key\" (PEM), \"purposes\", \"scope\"}",
    )?;
    let new = NewKey {
        not_before: parse_time("not_before", body.not_before.as_deref())?,
        not_after: parse_time("not_after", body.not_after.as_deref())?,
        name: body.name,
        public_key_pem: body.public_key,
        algorithm: body.algorithm,
        purposes: body.purposes,
        scope: body.scope,
    };
    let key = state.evidence.add_key(new, &caller.actor).await?;
    Ok((StatusCode::CREATED, Json(key_view(&key))))
}

/// Changes a key's purposes, scope and end of validity (`key-admin` in a scope holding the
/// key's scope, before and after, in every stage); re-verifies what the key signed.
#[utoipa::path(
    operation_id = "update_key",
    patch,
    path = "/api/v1/keys/{name}",
    tag = "evidence",
    params(("name" = String, Path, description = "The key's name")),
    request_body = api::UpdateKeyRequest,
    responses(
        (status = 200, description = "The key as changed", body = api::Key),
        (status = 400, description = "Nothing to change, or a purpose, scope or time is invalid", body = ErrorBody),
        (status = 403, description = "The key or the new scope is outside the caller's key-admin grants", body = ErrorBody),
        (status = 404, description = "No key of that name", body = ErrorBody),
        (status = 409, description = "The key is revoked, or the keyring changed meanwhile", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn update_key(
    State(state): State<EvidenceState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<api::Key>, ApiError> {
    let authority = key_authority(&caller.who)?;
    let body: api::UpdateKeyRequest = json_body(
        &body,
        "key update",
        "send {\"add_purposes\": [...], \"remove_purposes\": [...], \"scope\": [...], \"not_after\": \"2027-12-31T23:59:59Z\"} (at least one)",
    )?;
    let update = KeyUpdate {
        not_after: parse_time("not_after", body.not_after.as_deref())?,
        add_purposes: body.add_purposes,
        remove_purposes: body.remove_purposes,
        scope: body.scope,
    };
    let key = state
        .evidence
        .update_key(&name, update, &authority, &caller.actor)
        .await?;
    Ok(Json(key_view(&key)))
}

async fn change_status(
    state: EvidenceState,
    caller: Caller,
    name: String,
    body: Bytes,
    revoke: bool,
) -> Result<Json<api::Key>, ApiError> {
    require_key_admin(&caller.who)?;
    let body: api::KeyStatusRequest = if body.is_empty() {
        api::KeyStatusRequest::default()
    } else {
        json_body(
            &body,
            "request",
            "send {\"reason\": \"...\", \"compromised\": false}",
        )?
    };
    let change = match (revoke, body.compromised) {
        (false, _) => StatusChange::Retire,
        (true, false) => StatusChange::Revoke,
        (true, true) => StatusChange::Compromised,
    };
    let key = state
        .evidence
        .change_status(&name, change, &body.reason, &caller.actor)
        .await?;
    Ok(Json(key_view(&key)))
}

/// Retires a key (`key-admin` everywhere): it verifies nothing new, what it verified still counts.
#[utoipa::path(
    operation_id = "retire_key",
    post,
    path = "/api/v1/keys/{name}/retire",
    tag = "evidence",
    params(("name" = String, Path, description = "The key's name")),
    request_body(content = api::KeyStatusRequest, description = "Why (`reason` is required)"),
    responses(
        (status = 200, description = "The key, retired", body = api::Key),
        (status = 400, description = "No reason given, or the body is not the request", body = ErrorBody),
        (status = 403, description = "Not a key-admin everywhere", body = ErrorBody),
        (status = 404, description = "No key of that name", body = ErrorBody),
        (status = 409, description = "The key is already retired or revoked, or changed meanwhile", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn retire_key(
    State(state): State<EvidenceState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<api::Key>, ApiError> {
    change_status(state, caller, name, body, false).await
}

/// Revokes a key (`key-admin` everywhere): what it verified stops counting, and gated copies
/// are flagged; with `compromised`, everything it ever signed.
#[utoipa::path(
    operation_id = "revoke_key",
    post,
    path = "/api/v1/keys/{name}/revoke",
    tag = "evidence",
    params(("name" = String, Path, description = "The key's name")),
    request_body(content = api::KeyStatusRequest, description = "Why (`reason` is required), and whether the private key is compromised"),
    responses(
        (status = 200, description = "The key, revoked", body = api::Key),
        (status = 400, description = "No reason given, or the body is not the request", body = ErrorBody),
        (status = 403, description = "Not a key-admin everywhere", body = ErrorBody),
        (status = 404, description = "No key of that name", body = ErrorBody),
        (status = 409, description = "The key is already revoked, or changed meanwhile", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn revoke_key(
    State(state): State<EvidenceState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<api::Key>, ApiError> {
    change_status(state, caller, name, body, true).await
}

/// `{stage}/{path}@{digest}[/evidence]`, parsed.
fn parse_artifact_path(text: &str) -> Result<(RepoName, Digest, bool), ApiError> {
    let bad = |message: String| {
        ApiError::bad_request(
            message,
            "address an artifact as /api/v1/artifacts/<stage>/<repository>@sha256:<hex>",
        )
    };
    let (text, evidence) = match text.strip_suffix("/evidence") {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let (name, digest) = text
        .rsplit_once('@')
        .ok_or_else(|| bad(format!("{text:?} has no @digest")))?;
    let repo = RepoName::from_str(name).map_err(|e| bad(e.to_string()))?;
    let digest = Digest::from_str(digest).map_err(|e| bad(e.to_string()))?;
    Ok((repo, digest, evidence))
}

/// `/api/v1/artifacts/{*reference}`: one route for the artifact, its evidence and new evidence;
/// each is documented as its own operation below.
async fn artifact(
    State(state): State<EvidenceState>,
    method: Method,
    Path(reference): Path<String>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let allow = if reference.ends_with("/evidence") {
        "GET, POST"
    } else {
        "GET"
    };
    if method != Method::GET && !(method == Method::POST && allow == "GET, POST") {
        return Ok(method_not_allowed(allow));
    }
    let (repo, digest, evidence_only) = parse_artifact_path(&reference)?;
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "BODY_UNREADABLE",
            format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ),
            format!(
                "send at most {} bytes: one DSSE envelope or Sigstore bundle per request",
                airlock_trust::dsse::MAX_ENVELOPE_BYTES
            ),
        )
    })?;
    match (method, evidence_only) {
        (Method::GET, false) => Ok(show_artifact(&state, &caller, &repo, &digest)
            .await?
            .into_response()),
        (Method::GET, true) => Ok(show_evidence(&state, &caller, &repo, &digest)
            .await?
            .into_response()),
        (Method::POST, true) => Ok(add_evidence(&state, &caller, &repo, &digest, body)
            .await?
            .into_response()),
        _ => Ok(method_not_allowed(allow)),
    }
}

/// 405 with the methods the path takes in `Allow` (RFC 9110 section 15.5.6).
fn method_not_allowed(allow: &'static str) -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "use GET for an artifact or its evidence, POST to .../evidence to add evidence",
        "GET /api/v1/artifacts/<stage>/<repository>@<digest>[/evidence], or POST .../evidence with a DSSE envelope or Sigstore bundle (docs/evidence.md)",
    );
    ([(axum::http::header::ALLOW, allow)], error).into_response()
}

/// Refuses a caller without pull rights on `repo` with the same 404 as an artifact that is not
/// there (as the catalog and promotions answer), so a read tells such a caller nothing about
/// what the repository holds.
fn require_pull(
    state: &EvidenceState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
) -> Result<(), ApiError> {
    match &caller.who {
        Some(who) if !state.identity.grants_allow(who, repo, Action::Pull) => {
            Err(artifact_unknown(repo, digest))
        }
        _ => Ok(()),
    }
}

/// 404 for an artifact that is not in `repo`, or that the caller may not read.
fn artifact_unknown(repo: &RepoName, digest: &Digest) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        format!("{repo}@{digest} is not in the registry"),
        "check the stage, repository and digest (skopeo inspect shows the digest); reading an artifact needs pull access to its repository",
    )
}

async fn evidence_items(
    state: &EvidenceState,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Vec<api::EvidenceItem>, ApiError> {
    Ok(state
        .evidence
        .evidence_for(repo, digest)
        .await?
        .iter()
        .map(evidence_view)
        .collect())
}

async fn stored_artifact(
    state: &EvidenceState,
    repo: &RepoName,
    digest: &Digest,
) -> Result<super::ArtifactInfo, ApiError> {
    state
        .evidence
        .artifact(repo, digest)
        .await?
        .ok_or_else(|| artifact_unknown(repo, digest))
}

/// An artifact (needs pull on the repository): its media type, size, tags, flags and evidence.
#[utoipa::path(
    operation_id = "show_artifact",
    get,
    path = "/api/v1/artifacts/{reference}",
    tag = "evidence",
    params(("reference" = String, Path, pattern = r"^[a-z0-9]+(/[a-z0-9]+)+@sha256:[a-f0-9]{64}$",
        description = "`<stage>/<repository>@sha256:<hex>`, e.g. `dev/team/app@sha256:...`; the slashes may be sent as they are or percent-encoded")),
    responses(
        (status = 200, description = "The artifact", body = api::Artifact),
        (status = 400, description = "The reference is not `<stage>/<repository>@<digest>`", body = ErrorBody),
        (status = 404, description = "The repository does not hold the artifact, or the caller may not pull from it (the same answer)", body = ErrorBody),
        (status = 405, description = "Neither GET nor POST to `.../evidence`", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn show_artifact(
    state: &EvidenceState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Json<api::Artifact>, ApiError> {
    Ok(Json(artifact_view(state, caller, repo, digest).await?))
}

/// An artifact as the API shows it, for a caller who may pull it (the web console shows the
/// same): the same 404 for one the caller may not pull as for one that is not there.
pub(crate) async fn artifact_view(
    state: &EvidenceState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
) -> Result<api::Artifact, ApiError> {
    require_pull(state, caller, repo, digest)?;
    let stored = stored_artifact(state, repo, digest).await?;
    let evidence = evidence_items(state, repo, digest).await?;
    let flags = state
        .evidence
        .flags(repo, digest)
        .await?
        .into_iter()
        .map(|f| api::ArtifactFlag {
            flag: f.flag,
            reason: f.reason,
        })
        .collect();
    let (agreement, mismatches) = state.evidence.rebuilds(repo, digest).await?;
    Ok(api::Artifact {
        repository: repo.as_str().to_string(),
        digest: digest.to_string(),
        media_type: stored.media_type,
        size: stored.size as u64,
        tags: stored.tags,
        flags,
        evidence,
        rebuilds: api::RebuildAgreement {
            independent: agreement.independent,
            source_repository: agreement.source_repository,
            commit: agreement.commit,
            builders: agreement
                .builders
                .into_iter()
                .map(|b| api::RebuildBuilder {
                    builder_id: b.builder_id,
                    key: b.key,
                })
                .collect(),
            mismatches: mismatches
                .into_iter()
                .map(|m| api::RebuildMismatch {
                    digest: m.digest,
                    builder_id: m.builder_id,
                    key: m.key,
                    source_repository: m.source_repository,
                    commit: m.commit,
                })
                .collect(),
        },
    })
}

/// An artifact's evidence (needs pull on the repository): every item under its repository
/// path, in every stage, with its verdict.
#[utoipa::path(
    operation_id = "show_artifact_evidence",
    get,
    path = "/api/v1/artifacts/{reference}/evidence",
    tag = "evidence",
    params(("reference" = String, Path, pattern = r"^[a-z0-9]+(/[a-z0-9]+)+@sha256:[a-f0-9]{64}$",
        description = "`<stage>/<repository>@sha256:<hex>`; the slashes may be sent as they are or percent-encoded")),
    responses(
        (status = 200, description = "The evidence", body = api::EvidenceList),
        (status = 400, description = "The reference is not `<stage>/<repository>@<digest>`", body = ErrorBody),
        (status = 404, description = "The repository does not hold the artifact, or the caller may not pull from it (the same answer)", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
    )
)]
async fn show_evidence(
    state: &EvidenceState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Json<api::EvidenceList>, ApiError> {
    require_pull(state, caller, repo, digest)?;
    stored_artifact(state, repo, digest).await?;
    Ok(Json(api::EvidenceList {
        evidence: evidence_items(state, repo, digest).await?,
    }))
}

/// Adds evidence for CI tools that do not speak OCI (needs `attest` on the repository): a DSSE
/// envelope, or a key-signed Sigstore bundle whose `mediaType` is
/// `application/vnd.dev.sigstore.bundle+json;version=0.1`, `...;version=0.2` or
/// `application/vnd.dev.sigstore.bundle.v0.3+json`. It is verified at once and kept either way.
#[utoipa::path(
    operation_id = "add_artifact_evidence",
    post,
    path = "/api/v1/artifacts/{reference}/evidence",
    tag = "evidence",
    params(("reference" = String, Path, pattern = r"^[a-z0-9]+(/[a-z0-9]+)+@sha256:[a-f0-9]{64}$",
        description = "`<stage>/<repository>@sha256:<hex>`; the slashes may be sent as they are or percent-encoded")),
    request_body(content = Object, content_type = "application/json",
        description = "A DSSE envelope (`payloadType`, `payload`, `signatures`) or a Sigstore bundle (v0.1, v0.2 or v0.3)"),
    responses(
        (status = 201, description = "Verified and recorded", body = api::EvidenceItem),
        (status = 400, description = "Not a DSSE envelope or a Sigstore bundle of a known media type, or too large; nothing is stored", body = ErrorBody),
        (status = 403, description = "The caller may not attest in the repository", body = ErrorBody),
        (status = 404, description = "The repository does not hold the artifact", body = ErrorBody),
        (status = 413, description = "The body is larger than an envelope may be", body = ErrorBody),
        (status = 422, description = "Recorded, but rejected or revoked: the message says why", body = ErrorBody),
        (status = 500, description = "Storage failed", body = ErrorBody),
        (status = 503, description = "Storage cannot keep writes now", body = ErrorBody),
    )
)]
async fn add_evidence(
    state: &EvidenceState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
    body: Bytes,
) -> Result<(StatusCode, Json<api::EvidenceItem>), ApiError> {
    if !caller.who.as_ref().is_none_or(|w| {
        w.has(
            Permission::Attest,
            &PermissionTarget::Repository(repo.clone()),
        )
    }) {
        return Err(forbidden(&format!(
            "add evidence to {repo}: that needs the builder role (attest)"
        )));
    }
    let row = state
        .evidence
        .submit(repo, digest, body, &caller.actor)
        .await?;
    if row.verdict.status == "verified" {
        Ok((StatusCode::CREATED, Json(evidence_view(&row))))
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "EVIDENCE_REJECTED",
            format!(
                "the evidence was recorded as {}: {}",
                row.verdict.status,
                row.verdict.reason.clone().unwrap_or_default()
            ),
            "sign with a key in the keyring whose purposes and scope cover this artifact (airlock keys list)",
        ))
    }
}

/// This area's part of the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        list_keys,
        add_key,
        update_key,
        retire_key,
        revoke_key,
        show_artifact,
        show_evidence,
        add_evidence
    ))]
    struct Api;
    <Api as utoipa::OpenApi>::openapi()
}

impl axum::extract::FromRef<EvidenceState> for Arc<crate::identity::Identity> {
    fn from_ref(state: &EvidenceState) -> Self {
        state.identity.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    /// Every keyring, artifact, audit, anomaly and webhook route is in the OpenAPI document with
    /// its operations, and no two operations share an id (clients generate names from them).
    #[test]
    fn every_evidence_audit_anomaly_and_webhook_route_is_documented_once() {
        let doc = crate::openapi::document();
        let json = serde_json::to_value(&doc).expect("the document serializes");
        let paths = json["paths"].as_object().expect("paths");
        for (path, methods) in [
            ("/api/v1/keys", &["get", "post"][..]),
            ("/api/v1/keys/{name}", &["patch"]),
            ("/api/v1/keys/{name}/retire", &["post"]),
            ("/api/v1/keys/{name}/revoke", &["post"]),
            ("/api/v1/artifacts/{reference}", &["get"]),
            ("/api/v1/artifacts/{reference}/evidence", &["get", "post"]),
            ("/api/v1/audit/checkpoint", &["get"]),
            ("/api/v1/audit/checkpoints", &["get"]),
            ("/api/v1/audit/entries", &["get"]),
            ("/api/v1/audit/proof/inclusion", &["get"]),
            ("/api/v1/audit/proof/consistency", &["get"]),
            ("/log/checkpoint", &["get"]),
            ("/log/key", &["get"]),
            ("/log/tile/{tile}", &["get"]),
            ("/api/v1/anomalies", &["get"]),
            ("/api/v1/anomalies/{id}", &["get"]),
            ("/api/v1/anomalies/{id}/resolve", &["post"]),
            ("/api/v1/webhooks", &["get", "post"]),
            ("/api/v1/webhooks/{id}", &["delete"]),
            ("/api/v1/webhooks/{id}/deliveries", &["get"]),
            ("/api/v1/webhooks/{id}/test", &["post"]),
        ] {
            for method in methods {
                let operation = &paths[path][*method];
                assert!(operation.is_object(), "{method} {path} is not documented");
                // `/log/key` answers a constant; everything else can fail.
                assert!(
                    path == "/log/key"
                        || operation["responses"]
                            .as_object()
                            .is_some_and(|r| r.keys().any(|status| !status.starts_with('2'))),
                    "{method} {path} documents no error answer"
                );
            }
        }
        let mut ids = HashSet::new();
        for (path, methods) in paths {
            for (method, operation) in methods.as_object().expect("methods") {
                if let Some(id) = operation["operationId"].as_str() {
                    assert!(
                        ids.insert(id.to_string()),
                        "{method} {path}: operationId {id} is taken"
                    );
                }
            }
        }
        // Every schema a parameter or body names exists.
        let text = json.to_string();
        let schemas = json["components"]["schemas"].as_object().expect("schemas");
        for reference in text.split("#/components/schemas/").skip(1) {
            let name: String = reference.chars().take_while(|c| *c != '"').collect();
            assert!(
                schemas.contains_key(&name),
                "schema {name} is referenced but missing"
            );
        }
    }
}
