//! The keyring and access pages.
//!
//! - `GET /console/keys`: the trusted keys with their status, purposes, scope and validity (every
//!   signed-in person, as `GET /api/v1/keys`);
//! - `GET /console/access`: just-in-time access requests, newest first (everyone for access-admins
//!   and auditors, one's own for anyone else, as `GET /api/v1/access-requests`), with grant and
//!   deny forms for access-admins; and, for access-admins and auditors, the principals with their
//!   active grants (as `GET /api/v1/users`);
//! - `POST /console/access-requests/{id}/grant|deny`: decides a request through
//!   [`crate::identity::Identity::decide_access`], the API's own rules (an access-admin, never
//!   one's own request, separation of duties for the role granted), audited as the person's with
//!   `auth_method: session`.

use std::net::SocketAddr;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_store::{AccessRequestRow, KeyRow, PrincipalRow};
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::pages::{layout, millis, short};
use super::{ConsoleState, CsrfForm, Signed, csrf_refused, page, refusal};
use crate::api::ApiError;
use crate::identity::ConsoleSession;

/// Keys the keyring page shows at most (oldest first).
const KEYS_SHOWN: u32 = 200;
/// Access requests the access page shows at most (newest first).
const REQUESTS_SHOWN: u32 = 100;
/// Principals per page of the access page.
const PRINCIPALS_PAGE: u32 = 50;

pub(super) async fn keys(State(state): State<ConsoleState>, Signed(session): Signed) -> Response {
    match state.evidence.keys_page(None, KEYS_SHOWN + 1).await {
        Ok((version, mut rows)) => {
            let more = rows.len() > KEYS_SHOWN as usize;
            rows.truncate(KEYS_SHOWN as usize);
            page(StatusCode::OK, keys_page(&session, version, &rows, more))
        }
        Err(err) => refusal(&session, "Keyring", ApiError::from(err)),
    }
}

/// Query of the access page.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct AccessQuery {
    /// The last principal of the previous page.
    after: Option<String>,
    /// The request just decided.
    decided: Option<i64>,
    /// Its status now.
    status: Option<String>,
}

pub(super) async fn access(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Query(query): Query<AccessQuery>,
) -> Response {
    let requests = match state
        .identity
        .access_requests_page(&session.who, None, REQUESTS_SHOWN)
        .await
    {
        Ok(rows) => rows,
        Err(err) => return refusal(&session, "Access", ApiError::from(err)),
    };
    let reads_principals = session
        .who
        .has(Permission::ManageAccess, &PermissionTarget::Global)
        || session
            .who
            .has(Permission::ReadAudit, &PermissionTarget::Global);
    let principals = if reads_principals {
        match state
            .identity
            .principals_page(&session.who, query.after.as_deref(), PRINCIPALS_PAGE + 1)
            .await
        {
            Ok(rows) => Some(rows),
            Err(err) => return refusal(&session, "Access", ApiError::from(err)),
        }
    } else {
        None
    };
    let notice = match (query.decided, query.status.as_deref()) {
        (Some(id), Some(status @ ("granted" | "denied"))) => {
            Some(format!("Access request {id} is {status}."))
        }
        _ => None,
    };
    let may_decide = session
        .who
        .has(Permission::ManageAccess, &PermissionTarget::Global);
    page(
        StatusCode::OK,
        access_page(
            &session,
            &requests,
            principals.as_deref(),
            may_decide,
            notice.as_deref(),
        ),
    )
}

pub(super) async fn grant(
    state: State<ConsoleState>,
    peer: ConnectInfo<SocketAddr>,
    session: Signed,
    id: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    decide(state, peer, session, id, form, true).await
}

pub(super) async fn deny(
    state: State<ConsoleState>,
    peer: ConnectInfo<SocketAddr>,
    session: Signed,
    id: Path<String>,
    form: Form<CsrfForm>,
) -> Response {
    decide(state, peer, session, id, form, false).await
}

async fn decide(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
    grant: bool,
) -> Response {
    if !airlock_identity::csrf_token_matches(&form.csrf_token, &session.row.csrf_token) {
        return csrf_refused(&session);
    }
    let Ok(id) = id.parse::<i64>() else {
        return page(
            StatusCode::NOT_FOUND,
            super::pages::refusal(
                &session,
                "No such access request",
                &format!("{id:?} is not an access request id."),
                "Pick the request from the access page.",
            ),
        );
    };
    let actor = session.who.actor(Some(peer));
    match state
        .identity
        .decide_access(&session.who, &actor, id, grant)
        .await
    {
        Ok(row) => Redirect::to(&format!(
            "/console/access?decided={id}&status={}",
            row.status
        ))
        .into_response(),
        Err(err) => refusal(
            &session,
            if grant { "Not granted" } else { "Not denied" },
            ApiError::from(err),
        ),
    }
}

fn keys_page(session: &ConsoleSession, version: i64, keys: &[KeyRow], more: bool) -> Markup {
    layout(
        "Keyring",
        Some(session),
        html! {
            h1 { "Keyring" }
            p {
                "The keys whose signatures and attestations airlock trusts, for what and where. "
                "Keyring version " strong { (version) } "; every change re-verifies the evidence it touches."
            }
            @if keys.is_empty() {
                p class="muted" { "No key is trusted yet: a key-admin adds one with airlock keys add." }
            } @else {
                table {
                    caption class="visually-hidden" { "Trusted keys" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Purposes" }
                        th scope="col" { "Scope" } th scope="col" { "Valid" } th scope="col" { "Added" }
                    } }
                    tbody {
                        @for key in keys {
                            tr {
                                td { strong { (key.name) } br; span class="digest muted" title=(key.key_id) { (short(&key.key_id)) } br; span class="muted" { (key.algorithm) } }
                                td {
                                    span class=(match key.status.as_str() { "active" => "badge push", "retired" => "badge", _ => "badge frozen" }) { (key.status) }
                                    @if key.compromised { " " span class="badge frozen" { "compromised" } }
                                    @if let Some(reason) = &key.status_reason {
                                        br; span class="muted" { (reason) @if let Some(at) = key.status_at { " (" (millis(at)) ")" } }
                                    }
                                }
                                td { @for purpose in &key.purposes { code { (purpose) } br; } }
                                td { @for scope in &key.scope { code { (scope) } " " } }
                                td {
                                    @match (key.not_before, key.not_after) {
                                        (None, None) => { "always" }
                                        (from, until) => {
                                            @if let Some(from) = from { "from " (millis(from)) " " }
                                            @if let Some(until) = until { "until " (millis(until)) }
                                        }
                                    }
                                }
                                td { (millis(key.created_at)) br; span class="muted" { "by " (key.created_by) } }
                            }
                        }
                    }
                }
                @if more {
                    p class="muted" { "The first " (KEYS_SHOWN) " keys are shown; airlock keys list pages through all of them." }
                }
            }
        },
    )
}

fn access_page(
    session: &ConsoleSession,
    requests: &[AccessRequestRow],
    principals: Option<&[(PrincipalRow, Vec<airlock_core::access::Grant>)]>,
    may_decide: bool,
    notice: Option<&str>,
) -> Markup {
    layout(
        "Access",
        Some(session),
        html! {
            h1 { "Access" }
            @if let Some(notice) = notice {
                p class="notice" role="status" { (notice) }
            }
            section class="card" aria-labelledby="requests" {
                h2 id="requests" { "Just-in-time access requests" }
                @if !may_decide {
                    p class="muted" { "Your own requests; an access-admin grants or denies them. Ask with airlock access request ROLE --scope SCOPE --for 1h --reason …" }
                }
                @if requests.is_empty() {
                    p class="muted" { "No access request yet." }
                }
                @for request in requests {
                    (request_card(session, request, may_decide))
                }
            }
            @if let Some(principals) = principals {
                (principals_section(principals))
            }
        },
    )
}

fn request_card(session: &ConsoleSession, request: &AccessRequestRow, may_decide: bool) -> Markup {
    let heading = format!(
        "Request {}: {} as {} on {}",
        request.id, request.principal, request.role, request.scope
    );
    html! {
        div class="stage" {
            h3 {
                span { (heading) }
                span class=(match request.status.as_str() { "pending" => "badge gated", "granted" => "badge push", _ => "badge frozen" }) { (request.status) }
            }
            p { "For " (duration(request.duration_secs)) ": " (request.reason) }
            p class="muted" {
                "Asked " (millis(request.created_at))
                @if let Some(by) = &request.decided_by { " · decided by " strong { (by) } }
                @if let Some(until) = request.expires_at { " · the grant ends " (millis(until)) }
            }
            @if may_decide && request.status == "pending" {
                @if request.principal == session.who.principal.name {
                    p class="muted" { "This is your own request: another access-admin decides it." }
                }
                div class="decide" {
                    form method="post" action=(format!("/console/access-requests/{}/grant", request.id)) {
                        input type="hidden" name="csrf_token" value=(session.row.csrf_token);
                        button type="submit" aria-label=(format!("Grant request {}", request.id)) { "Grant" }
                    }
                    form method="post" action=(format!("/console/access-requests/{}/deny", request.id)) {
                        input type="hidden" name="csrf_token" value=(session.row.csrf_token);
                        button class="quiet" type="submit" aria-label=(format!("Deny request {}", request.id)) { "Deny" }
                    }
                }
            }
        }
    }
}

fn principals_section(principals: &[(PrincipalRow, Vec<airlock_core::access::Grant>)]) -> Markup {
    let shown = &principals[..principals.len().min(PRINCIPALS_PAGE as usize)];
    let next = (principals.len() > PRINCIPALS_PAGE as usize)
        .then(|| shown.last().map(|(row, _)| row.name.clone()))
        .flatten();
    html! {
        section class="card" aria-labelledby="principals" {
            h2 id="principals" { "Principals and their grants" }
            table {
                caption class="visually-hidden" { "Principals" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "State" } th scope="col" { "Grants" } } }
                tbody {
                    @for (row, grants) in shown {
                        tr {
                            td { strong { (row.name) } }
                            td { (row.kind) }
                            td {
                                @if row.disabled { span class="badge frozen" { "disabled" } }
                                @else if row.locked_by.is_some() { span class="badge frozen" { "locked" } }
                                @else { span class="badge push" { "active" } }
                                @if row.password_must_change { br; span class="muted" { "must change password" } }
                            }
                            td {
                                @if grants.is_empty() { span class="muted" { "none" } }
                                @for grant in grants {
                                    code { (grant.role.to_string()) " on " (grant.scope.to_string()) }
                                    @if let Some(until) = grant.expires_at_millis { " until " (millis(until)) }
                                    br;
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                nav class="pager" aria-label="Pages" {
                    a class="button" href=(format!("/console/access?after={}", super::pages::query_value(&next))) { "Next page" }
                }
            }
        }
    }
}

/// A duration in seconds, in the largest whole unit.
fn duration(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}
