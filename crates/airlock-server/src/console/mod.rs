//! The web console: server-rendered HTML pages for release managers, approvers and auditors.
//!
//! - `GET /` redirects here; `GET /console` is the stages board (what is in each stage of each
//!   repository path the signed-in person may read, paged, with a search);
//! - `GET /console/artifact?repository=&digest=` is an artifact's page: its evidence and what
//!   it says (summaries of vulnerabilities with the policy's waivers, licenses, provenance,
//!   tests), every promotion of it with its decision's violations and approvals (the API's
//!   views, under the API's read rules) and, for audit readers, its audit entries with proofs
//!   ([`artifact`]);
//! - `GET /console/audit` is the audit log's tail (auditors and access-admins, as the API) with
//!   the newest signed checkpoint, each entry's bytes and inclusion proof, which the page's script
//!   checks in the browser (WebCrypto: the checkpoint's Ed25519 signature, each leaf hash and
//!   proof, and with `GET /console/audit/consistency` that the log extends the checkpoint the
//!   browser saw last), not trusting the server's word; `GET /console/audit/export` downloads
//!   the entries of the filter as JSON Lines;
//! - `GET /console/approvals` is the approvals inbox (promotions pending approval that the person
//!   may read), with `POST /console/promotions/{id}/approve|reject`, which go through the
//!   promotion service exactly as the API's do (separation of duties, the final re-decision) and
//!   show its refusals with the API's words; `GET /console/approvals/events` tells an open inbox
//!   (server-sent events) when the promotions waiting change;
//! - `GET /console/anomalies` lists anomalies (access-admins and auditors, as the API), with
//!   `POST /console/anomalies/{id}/resolve` for access-admins;
//! - `GET /console/keys` (the keyring) and `GET /console/access` (access requests with their
//!   grant and deny forms, principals and grants), see [`access`];
//! - `GET|POST /console/login` signs in with a password, `GET /console/oidc/start|callback`
//!   with the configured OpenID Connect provider ([`sign_in_oidc`]); `POST /console/logout`
//!   signs out;
//! - `GET /console/assets/*`: the stylesheet, built into the binary.
//!
//! Every page goes through the same services, and the same read rules, as the JSON API. A
//! session is a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS, path `/console`)
//! checked on every request ([`Identity::console_session`]); every form carries a CSRF token (the
//! session's, or before sign-in a token bound to a cookie of its own). Every answer carries a
//! strict Content-Security-Policy (nothing but this origin; no inline script or style),
//! `X-Frame-Options: DENY` and `Cache-Control: no-store`.

mod access;
mod artifact;
mod decision_summary;
mod pages;
mod sign_in_oidc;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use crate::api::ApiError;
use crate::caller::Caller;
use crate::catalog::{CatalogError, CatalogService, Page};
use crate::identity::{AuthError, ConsoleSession, Identity};
use crate::promotion::PromotionService;

/// The session cookie's name.
const SESSION_COOKIE: &str = "airlock_session";
/// The cookie binding the sign-in form's CSRF token before there is a session.
const LOGIN_CSRF_COOKIE: &str = "airlock_login_csrf";
/// Where the console lives; its cookies are scoped to it.
const CONSOLE_PATH: &str = "/console";
/// Repository paths per board page.
const BOARD_PAGE: u32 = 20;
/// Pending promotions the approvals inbox reads at most.
const INBOX_PAGE: u32 = 100;

/// The Content-Security-Policy of every console answer: this origin only, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// State of the console routes.
#[derive(Clone)]
pub struct ConsoleState {
    /// Who is signed in.
    pub identity: Arc<Identity>,
    /// What is in each stage.
    pub catalog: Arc<CatalogService>,
    /// Promotions and their approvals.
    pub promotions: Arc<PromotionService>,
    /// Anomalies and their resolution.
    pub anomalies: Arc<crate::anomalies::Anomalies>,
    /// Evidence.
    pub evidence: Arc<crate::evidence::EvidenceService>,
    /// The audit log.
    pub audit: Arc<crate::audit::AuditLog>,
    /// Whether airlock serves TLS: cookies are then `Secure`.
    pub secure_cookies: bool,
}

/// The console routes.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(CONSOLE_PATH) }))
        .route("/console", get(board))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console/oidc/start", get(sign_in_oidc::start))
        .route("/console/oidc/callback", get(sign_in_oidc::callback))
        .route("/console/artifact", get(artifact::artifact))
        .route("/console/approvals", get(approvals))
        .route("/console/approvals/events", get(approvals_events))
        .route(
            "/console/promotions/{id}/approve",
            axum::routing::post(approve),
        )
        .route(
            "/console/promotions/{id}/reject",
            axum::routing::post(reject),
        )
        .route("/console/anomalies", get(anomalies))
        .route(
            "/console/anomalies/{id}/resolve",
            axum::routing::post(resolve_anomaly),
        )
        .route("/console/keys", get(access::keys))
        .route("/console/access", get(access::access))
        .route(
            "/console/access-requests/{id}/grant",
            axum::routing::post(access::grant),
        )
        .route(
            "/console/access-requests/{id}/deny",
            axum::routing::post(access::deny),
        )
        .route("/console/audit", get(audit_page))
        .route("/console/audit/consistency", get(audit_consistency))
        .route("/console/audit/export", get(audit_export))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .route("/console/{*rest}", axum::routing::any(unknown_page))
        .layer(axum::middleware::from_fn(html_rejections))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Adds the console's security headers to every answer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// 404 for a console address that is no page.
async fn unknown_page() -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::notice(
            "No such page",
            "The console has no page at this address.",
            None,
        ),
    )
}

/// The most of a rejection's text [`html_rejections`] reads.
const REJECTION_TEXT_LIMIT: usize = 4096;

/// Turns the extractors' plain-text rejections (a form of the wrong content type or missing a
/// field, a malformed query) and bodiless answers such as `405` into a console page that says
/// what was wrong: a person sees a page, not a line of text.
async fn html_rejections(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, REJECTION_TEXT_LIMIT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let text = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "This address does not take that kind of request: use the console's links and forms."
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "The form was not sent as a form (application/x-www-form-urlencoded): send it from the console's page. Nothing was changed."
        }
        _ => {
            "The request was malformed, so nothing was changed: go back, reload the page and try again."
        }
    };
    let mut rendered = page(
        status,
        pages::notice(
            "Not understood",
            text,
            Some(&detail).filter(|d| !d.is_empty()).map(String::as_str),
        ),
    );
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        rendered.headers_mut().insert(header::ALLOW, allow.clone());
    }
    rendered
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("assets/console.js"),
    )
        .into_response()
}

/// The value of cookie `name` in the request, if sent.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .and_then(|cookie| cookie.value_raw())
        .filter(|value| !value.is_empty())
}

impl ConsoleState {
    /// A console cookie: `HttpOnly`, `SameSite=Strict`, scoped to the console, `Secure` under
    /// TLS; `max_age` `None` for a browser-session cookie.
    fn cookie(&self, name: &'static str, value: String, max_age: Option<i64>) -> HeaderValue {
        let mut cookie = Cookie::build((name, value))
            .path(CONSOLE_PATH)
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure_cookies)
            .build();
        if let Some(secs) = max_age {
            cookie.set_max_age(cookie::time::Duration::seconds(secs));
        }
        HeaderValue::from_str(&cookie.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The signed-in session of a request, or why there is none.
    async fn session(&self, headers: &HeaderMap) -> Result<ConsoleSession, AuthError> {
        let cookie = cookie_value(headers, SESSION_COOKIE)
            .ok_or_else(|| AuthError::Invalid("not signed in".into()))?;
        self.identity.console_session(cookie).await
    }
}

/// The signed-in session of a console request; a request without one is sent to the sign-in
/// page, which says why.
pub(crate) struct Signed(ConsoleSession);

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        state
            .session(&parts.headers)
            .await
            .map(Self)
            .map_err(|err| to_login(state, &err))
    }
}

/// An answer for a request whose session did not check out: the sign-in page says why.
fn to_login(state: &ConsoleState, err: &AuthError) -> Response {
    let mut response = Redirect::to(&format!(
        "/console/login?reason={}",
        match err {
            AuthError::Invalid(message) if message == "not signed in" => "signed-out",
            _ => "ended",
        }
    ))
    .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookie(SESSION_COOKIE, String::new(), Some(0)),
    );
    response
}

/// A page with `status`.
fn page(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
struct LoginQuery {
    /// Why the sign-in page is shown (`ended`, `signed-out`).
    reason: Option<String>,
}

async fn login_form(
    State(state): State<ConsoleState>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let notice = match query.reason.as_deref() {
        Some("ended") => {
            Some("Your session ended: it expired, or your access changed. Sign in again.")
        }
        Some("out") => Some("You signed out."),
        _ => None,
    };
    login_page(&state, StatusCode::OK, None, notice)
}

/// The sign-in page with a fresh CSRF token bound to a cookie of its own.
pub(super) fn login_page(
    state: &ConsoleState,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let csrf = airlock_identity::NewSession::generate().csrf_token;
    let mut response = page(
        status,
        pages::login(&csrf, state.identity.console_oidc_label(), error, notice),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookie(LOGIN_CSRF_COOKIE, csrf, None),
    );
    response
}

/// The sign-in form (a missing field is an empty one, refused on the page).
#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
}

async fn login(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let bound = cookie_value(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if bound.is_empty() || !airlock_identity::csrf_token_matches(&form.csrf_token, bound) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some(
                "The sign-in form expired or did not come from this page (CSRF check). Sign in again from this form.",
            ),
            None,
        );
    }
    if form.username.trim().is_empty() || form.password.is_empty() {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some("Enter your user name and your password."),
            None,
        );
    }
    match state
        .identity
        .start_console_session(form.username.trim(), &form.password, Some(peer))
        .await
    {
        Ok((session, _)) => {
            let mut response = Redirect::to(CONSOLE_PATH).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                state.cookie(SESSION_COOKIE, session.cookie, None),
            );
            headers.append(
                header::SET_COOKIE,
                state.cookie(LOGIN_CSRF_COOKIE, String::new(), Some(0)),
            );
            response
        }
        Err(err) => {
            let (status, message) = sign_in_refusal(&err);
            login_page(&state, status, Some(&message), None)
        }
    }
}

/// The status and words for a refused sign-in.
fn sign_in_refusal(err: &AuthError) -> (StatusCode, String) {
    match err {
        AuthError::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins from this address: wait a minute and try again.".into(),
        ),
        AuthError::PasswordChangeRequired { principal } => (
            StatusCode::FORBIDDEN,
            format!(
                "The password of {principal} must be changed before it signs in: airlock users passwd -u {principal}"
            ),
        ),
        AuthError::Barred(reason) => (StatusCode::FORBIDDEN, format!("{reason}.")),
        AuthError::Invalid(message) => (StatusCode::UNAUTHORIZED, message.clone()),
        AuthError::Store(store) if store.busy().is_some() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is busy: try again in a moment.".into(),
        ),
        other => {
            tracing::error!(error = %other, "console sign-in failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed on the server; the server log has the cause.".into(),
            )
        }
    }
}

/// A form that carries only the session's CSRF token (missing: empty, refused).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CsrfForm {
    pub(super) csrf_token: String,
}

async fn logout(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !airlock_identity::csrf_token_matches(&form.csrf_token, &session.row.csrf_token) {
        return csrf_refused(&session);
    }
    if let Err(err) = state
        .identity
        .end_console_session(&session, Some(peer))
        .await
    {
        return failure(&session, &err.to_string());
    }
    let mut response = Redirect::to("/console/login?reason=out").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookie(SESSION_COOKIE, String::new(), Some(0)),
    );
    response
}

/// 403 for a form without the session's CSRF token.
pub(super) fn csrf_refused(session: &ConsoleSession) -> Response {
    page(
        StatusCode::FORBIDDEN,
        pages::message(
            session,
            "Refused",
            "The form did not carry this session's CSRF token, so it may not have come from this console. Nothing was changed: go back, reload the page and send it again.",
        ),
    )
}

/// 500 with the cause logged, not shown.
fn failure(session: &ConsoleSession, cause: &str) -> Response {
    tracing::error!(error = %cause, "console request failed");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(
            session,
            "Something failed",
            "The server could not complete this page; its log has the cause. Try again in a moment.",
        ),
    )
}

/// Query of the stages board.
#[derive(Debug, Deserialize)]
struct BoardQuery {
    /// A repository path (`team/app`) or pattern (`team/*`); empty: every path.
    q: Option<String>,
    /// The cursor of the page (`next` of the previous one).
    last: Option<String>,
}

async fn board(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    Query(query): Query<BoardQuery>,
) -> Response {
    let caller = caller_of(&session, peer);
    let search = query.q.as_deref().map(str::trim).unwrap_or_default();
    let pattern = if search.is_empty() { "*" } else { search };
    let stages = match state.catalog.stages().await {
        Ok(stages) => stages,
        Err(err) => return failure(&session, &err.to_string()),
    };
    let page_request = match Page::new(Some(BOARD_PAGE), query.last.clone(), BOARD_PAGE, BOARD_PAGE)
    {
        Ok(page_request) => page_request,
        Err(err) => return board_refusal(&session, search, &stages, &err),
    };
    let glance = match glance(&state, &session, peer, &stages).await {
        Ok(glance) => glance,
        Err(cause) => return failure(&session, &cause),
    };
    match state
        .catalog
        .status_page(&caller, pattern, page_request)
        .await
    {
        Ok(found) => page(
            StatusCode::OK,
            pages::board(&session, search, &stages, &found, &glance),
        ),
        // The whole board with nothing on it is not an error: the page says so.
        Err(CatalogError::NoMatch { .. }) if search.is_empty() => page(
            StatusCode::OK,
            pages::board(
                &session,
                search,
                &stages,
                &airlock_api::catalog::StatusPage {
                    pattern: pattern.to_string(),
                    repositories: Vec::new(),
                    next: None,
                },
                &glance,
            ),
        ),
        Err(err) => board_refusal(&session, search, &stages, &err),
    }
}

/// Quarantines the board reads at most.
const GLANCE_QUARANTINES: u32 = 100;

/// What the board shows at a glance: what waits for approval and what is quarantined, of what
/// the person may read.
#[derive(Default)]
pub(crate) struct Glance {
    /// Promotions pending approval the person may read, newest first.
    pub pending: Vec<airlock_store::PromotionRow>,
    /// Quarantines in force in repository paths the person may pull from (one without a path,
    /// which holds a digest everywhere, for those who read anomalies).
    pub quarantines: Vec<airlock_store::ActiveQuarantine>,
}

impl Glance {
    /// The quarantine holding `digest` in repository path `path`, if any is shown.
    pub fn quarantine(&self, path: &str, digest: &str) -> Option<&airlock_store::ActiveQuarantine> {
        self.quarantines.iter().find(|q| {
            q.digest == digest
                && q.quarantine
                    .repository_path
                    .as_deref()
                    .is_none_or(|held| held == path)
        })
    }
}

async fn glance(
    state: &ConsoleState,
    session: &ConsoleSession,
    peer: SocketAddr,
    stages: &airlock_api::catalog::StageList,
) -> Result<Glance, String> {
    use std::str::FromStr as _;
    let pending = pending_readable(state, session, peer)
        .await
        .map_err(|err| err.to_string())?;
    let reads_anomalies = crate::anomalies::Anomalies::readable_by(&session.who);
    let quarantines = state
        .anomalies
        .quarantines(GLANCE_QUARANTINES)
        .await
        .map_err(|err| err.to_string())?
        .into_iter()
        .filter(|q| match &q.quarantine.repository_path {
            Some(path) => stages.stages.iter().any(|stage| {
                airlock_core::RepoName::from_str(&format!("{}/{path}", stage.name)).is_ok_and(
                    |repo| {
                        state.identity.registry_allows(
                            &session.who,
                            &repo,
                            airlock_core::access::Action::Pull,
                        )
                    },
                )
            }),
            None => reads_anomalies,
        })
        .collect();
    Ok(Glance {
        pending,
        quarantines,
    })
}

/// The board with what was wrong with the search (a malformed pattern, nothing found).
fn board_refusal(
    session: &ConsoleSession,
    search: &str,
    stages: &airlock_api::catalog::StageList,
    err: &CatalogError,
) -> Response {
    let status = match err {
        CatalogError::Store(store) => return failure(session, &store.to_string()),
        CatalogError::NoArtifacts { .. } | CatalogError::NoMatch { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let empty = airlock_api::catalog::StatusPage {
        pattern: search.to_string(),
        repositories: Vec::new(),
        next: None,
    };
    page(
        status,
        pages::board_with_error(session, search, stages, &empty, &err.to_string()),
    )
}

/// The caller of a console request: the session's principal, as the services see it.
fn caller_of(session: &ConsoleSession, peer: SocketAddr) -> Caller {
    Caller {
        actor: session.who.actor(Some(peer)),
        who: Some(session.who.clone()),
        peer,
    }
}

/// A refusal or failure from a service, with the API's words (message and remediation).
fn refusal(session: &ConsoleSession, title: &str, err: ApiError) -> Response {
    if err.status().is_server_error() {
        // The cause was logged when the error was made; the page does not show it.
        return page(
            err.status(),
            pages::message(
                session,
                "Something failed",
                "The server could not complete this; its log has the cause. Nothing was changed: try again in a moment.",
            ),
        );
    }
    page(
        err.status(),
        pages::refusal(session, title, err.message(), err.remediation()),
    )
}

/// Query of the approvals inbox: what the last action did.
#[derive(Debug, Deserialize)]
struct InboxQuery {
    /// The promotion acted on.
    id: Option<String>,
    /// `approved` or `rejected`.
    done: Option<String>,
    /// The promotion's state after it.
    state: Option<String>,
}

async fn approvals(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    Query(query): Query<InboxQuery>,
) -> Response {
    let pending = match pending_readable(&state, &session, peer).await {
        Ok(rows) => rows,
        Err(err) => return refusal(&session, "Approvals", ApiError::from(err)),
    };
    let stages = match state.catalog.stages().await {
        Ok(stages) => stages,
        Err(err) => return failure(&session, &err.to_string()),
    };
    let mut shown = Vec::new();
    for row in pending {
        let (row, approvals) = match state.promotions.show(&row.id).await {
            Ok(found) => found,
            Err(err) => return refusal(&session, "Approvals", ApiError::from(err)),
        };
        let summary = match &row.last_decision {
            Some(id) => match state.promotions.decision(id).await {
                Ok(record) => Some(decision_summary::summarise(
                    &serde_json::from_str(&record.input).unwrap_or_default(),
                    &serde_json::from_str(&record.result).unwrap_or_default(),
                )),
                Err(err) => return refusal(&session, "Approvals", ApiError::from(err)),
            },
            None => None,
        };
        let waits_for = waits_for(&session, &stages, &row, &approvals);
        shown.push(pages::Pending {
            row,
            approvals,
            summary,
            waits_for,
        });
    }
    let notice = match (query.done.as_deref(), &query.id, &query.state) {
        (Some(done @ ("approved" | "rejected")), Some(id), Some(now)) => Some(format!(
            "You {done} {id}; it is now {}.",
            now.replace('_', " ")
        )),
        _ => None,
    };
    page(
        StatusCode::OK,
        pages::approvals(&session, &shown, notice.as_deref()),
    )
}

/// Whom a pending promotion waits for, as far as the person's roles tell: `None` when it waits
/// for them (they hold the stage's approver role on its target, did not request it and have
/// not approved it), else why it waits for someone else. The promotion service decides (it also
/// refuses those who pushed or built the artifact); this only sorts the inbox.
fn waits_for(
    session: &ConsoleSession,
    stages: &airlock_api::catalog::StageList,
    row: &airlock_store::PromotionRow,
    approvals: &[airlock_store::ApprovalRow],
) -> Option<String> {
    use std::str::FromStr as _;
    let me = &session.who.principal.name;
    if &row.requested_by == me {
        return Some("you requested it; another approver decides it".into());
    }
    if approvals.iter().any(|a| &a.principal == me) {
        return Some("you approved it; it waits for more approvals".into());
    }
    let role = stages
        .stages
        .iter()
        .find(|stage| stage.name == row.target_stage.as_str())
        .and_then(|stage| stage.gate.as_ref())
        .and_then(|gate| airlock_core::access::Role::from_str(&gate.approver_role).ok());
    let target =
        airlock_core::RepoName::from_str(&format!("{}/{}", row.target_stage, row.repository_path));
    let now = airlock_store::now_millis();
    let holds =
        match (role, &target) {
            (Some(role), Ok(target)) => session.who.grants.iter().any(|grant| {
                grant.role == role && grant.is_active(now) && grant.scope.covers(target)
            }),
            _ => false,
        };
    (!holds).then(|| {
        format!(
            "you do not hold the approver role on {}/{}",
            row.target_stage, row.repository_path
        )
    })
}

/// The approve and reject forms.
#[derive(Deserialize, Default)]
#[serde(default)]
struct DecideForm {
    csrf_token: String,
    /// The approval's comment, or the rejection's reason.
    text: String,
}

/// The session and its caller for an action on promotion `id`, or the page that refuses it: a
/// wrong CSRF token, or a promotion the person may not read (the
/// same 404 as an unknown id).
async fn acting_on(
    state: &ConsoleState,
    session: ConsoleSession,
    peer: SocketAddr,
    form: &DecideForm,
    id: &str,
) -> Result<(ConsoleSession, crate::promotion::Caller), Response> {
    if !airlock_identity::csrf_token_matches(&form.csrf_token, &session.row.csrf_token) {
        return Err(csrf_refused(&session));
    }
    let caller = crate::promotion::Caller::from(caller_of(&session, peer));
    let readable = match state.promotions.show(id).await {
        Ok((row, _)) => {
            crate::promotion::routes::promotion_readable(&state.identity, &caller, &row)
        }
        Err(crate::promotion::PromotionError::NotFound(_)) => false,
        Err(err) => return Err(refusal(&session, "Approvals", ApiError::from(err))),
    };
    if !readable {
        return Err(page(
            StatusCode::NOT_FOUND,
            pages::refusal(
                &session,
                "No such promotion",
                &format!("There is no promotion {id} you may read."),
                "Check the id; you need pull access to its repository.",
            ),
        ));
    }
    Ok((session, caller))
}

/// Back to the inbox, saying what the action did.
fn done(action: &str, id: &str, now: &str) -> Response {
    Redirect::to(&format!(
        "/console/approvals?done={action}&id={}&state={}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(now.as_bytes()).collect::<String>()
    ))
    .into_response()
}

async fn approve(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let (session, caller) = match acting_on(&state, session, peer, &form, &id).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let comment = Some(form.text.trim().to_string()).filter(|c| !c.is_empty());
    match state.promotions.approve(&id, comment, &caller).await {
        Ok(outcome) => {
            let now = outcome
                .promotion
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |row| row.state.to_string());
            done("approved", &id, &now)
        }
        Err(err) => refusal(&session, "Approval refused", ApiError::from(err)),
    }
}

async fn reject(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    let (session, caller) = match acting_on(&state, session, peer, &form, &id).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    match state
        .promotions
        .reject(&id, form.text.trim(), &caller)
        .await
    {
        Ok(row) => done("rejected", &id, &row.state.to_string()),
        Err(err) => refusal(&session, "Rejection refused", ApiError::from(err)),
    }
}

/// Anomalies the anomalies page shows at most.
const ANOMALIES_PAGE: u32 = 100;

/// Query of the anomalies page.
#[derive(Debug, Deserialize)]
struct AnomaliesQuery {
    /// `all` for resolved ones too; otherwise the open ones.
    status: Option<String>,
    /// The anomaly just resolved.
    resolved: Option<i64>,
}

async fn anomalies(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Query(query): Query<AnomaliesQuery>,
) -> Response {
    let all = query.status.as_deref() == Some("all");
    let status = (!all).then_some(crate::anomalies::AnomalyStatus::Open);
    match state
        .anomalies
        .list(Some(&session.who), status, None, ANOMALIES_PAGE)
        .await
    {
        Ok(rows) => {
            let notice = query
                .resolved
                .map(|id| format!("Anomaly {id} is resolved; its action was undone."));
            let may_resolve = crate::anomalies::Anomalies::resolvable_by(&session.who);
            page(
                StatusCode::OK,
                pages::anomalies(&session, &rows, all, may_resolve, notice.as_deref()),
            )
        }
        Err(err) => refusal(&session, "Anomalies", ApiError::from(err)),
    }
}

async fn resolve_anomaly(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Signed(session): Signed,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    if !airlock_identity::csrf_token_matches(&form.csrf_token, &session.row.csrf_token) {
        return csrf_refused(&session);
    }
    let Ok(id) = id.parse::<i64>() else {
        return page(
            StatusCode::NOT_FOUND,
            pages::refusal(
                &session,
                "No such anomaly",
                &format!("{id:?} is not an anomaly id."),
                "Pick the anomaly from the list.",
            ),
        );
    };
    let actor = session.who.actor(Some(peer));
    match state
        .anomalies
        .resolve(Some(&session.who), &actor, id, &form.text)
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/anomalies?resolved={id}")).into_response(),
        Err(err) => refusal(&session, "Not resolved", ApiError::from(err)),
    }
}

/// Entries the audit page shows at most.
const AUDIT_PAGE: u32 = 50;

/// Query of the audit page.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    /// An event type or prefix (`promotion.`, `auth.failed`).
    r#type: String,
}

/// An entry as the audit page shows it: its bytes and, once a checkpoint covers it, its
/// inclusion proof in that checkpoint's tree.
pub(crate) struct ShownEntry {
    /// Its index.
    pub index: u64,
    /// The exact bytes the leaf commits to.
    pub bytes: Vec<u8>,
    /// The audit path (hex), `None` for an entry no checkpoint covers yet.
    pub proof: Option<Vec<String>>,
}

async fn audit_page(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Query(query): Query<AuditQuery>,
) -> Response {
    if let Err(err) = crate::audit::routes::check_audit_reader(&Some(session.who.clone())) {
        return refusal(&session, "Audit log", err);
    }
    let kind = Some(query.r#type.trim()).filter(|k| !k.is_empty());
    let loaded = async {
        let checkpoint = state.audit.latest_checkpoint().await?;
        let stored = state.audit.newest_entries(kind, AUDIT_PAGE).await?;
        let entries = with_proofs(&state.audit, &checkpoint, stored).await?;
        Ok::<_, crate::audit::AuditLogError>((checkpoint, entries))
    }
    .await;
    match loaded {
        Ok((checkpoint, entries)) => page(
            StatusCode::OK,
            pages::audit(
                &session,
                &checkpoint,
                state.audit.verifier_key(),
                query.r#type.trim(),
                &entries,
            ),
        ),
        Err(err) => refusal(&session, "Audit log", ApiError::from(err)),
    }
}

/// `stored` entries (oldest first) with their inclusion proofs in `checkpoint`'s tree, where it
/// covers them.
pub(crate) async fn with_proofs(
    audit: &crate::audit::AuditLog,
    checkpoint: &airlock_store::StoredCheckpoint,
    stored: Vec<airlock_store::StoredEntry>,
) -> Result<Vec<ShownEntry>, crate::audit::AuditLogError> {
    let mut entries = Vec::with_capacity(stored.len());
    for entry in stored {
        let proof = if entry.index < checkpoint.size {
            let proof = audit
                .inclusion_proof(entry.index, Some(checkpoint.size))
                .await?;
            Some(proof.hashes.iter().map(|h| h.to_hex()).collect())
        } else {
            None
        };
        entries.push(ShownEntry {
            index: entry.index,
            bytes: entry.entry,
            proof,
        });
    }
    Ok(entries)
}

/// Entries an export reads per database query.
const EXPORT_BATCH: u32 = 1000;

/// The audit log's entries of a type prefix as JSON Lines, streamed in batches: each line is
/// `{"entry":<the exact bytes the leaf commits to>,"index":N}`, as `airlock audit export`
/// prints them. Audit readers only.
async fn audit_export(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Query(query): Query<AuditQuery>,
) -> Response {
    if let Err(err) = crate::audit::routes::check_audit_reader(&Some(session.who.clone())) {
        return refusal(&session, "Audit log", err);
    }
    let kind = Some(query.r#type.trim().to_string()).filter(|k| !k.is_empty());
    let audit = state.audit.clone();
    let stream = futures::stream::unfold(Some(0u64), move |start| {
        let audit = audit.clone();
        let kind = kind.clone();
        async move {
            let start = start?;
            match audit
                .entries(start, None, kind.as_deref(), EXPORT_BATCH)
                .await
            {
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let next = batch.last().map(|entry| entry.index + 1);
                    let mut lines = Vec::new();
                    for entry in batch {
                        lines.extend_from_slice(b"{\"entry\":");
                        lines.extend_from_slice(&entry.entry);
                        lines.extend_from_slice(
                            format!(",\"index\":{}}}\n", entry.index).as_bytes(),
                        );
                    }
                    Some((Ok::<_, std::io::Error>(lines), next))
                }
                Err(err) => {
                    tracing::error!(error = %err, "console audit export failed");
                    Some((
                        Err(std::io::Error::other("reading the audit log failed")),
                        None,
                    ))
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"airlock-audit.jsonl\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Query of the consistency proof the audit page's script asks for.
#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// A consistency proof between two checkpoints, for the audit page's script (JSON).
async fn audit_consistency(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<ConsistencyQuery>,
) -> Response {
    let session = match state.session(&headers).await {
        Ok(session) => session,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    if let Err(err) = crate::audit::routes::check_audit_reader(&Some(session.who)) {
        return err.into_response();
    }
    match state
        .audit
        .consistency_proof(query.from, Some(query.to))
        .await
    {
        Ok(proof) => axum::Json(airlock_api::audit::ConsistencyProof {
            old_size: proof.old_size,
            new_size: proof.new_size,
            hashes: proof.hashes.iter().map(|h| h.to_hex()).collect(),
        })
        .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// How often an open inbox's event stream looks for a change.
const INBOX_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The promotions pending approval that `session`'s principal may read, newest first (at most
/// [`INBOX_PAGE`]).
async fn pending_readable(
    state: &ConsoleState,
    session: &ConsoleSession,
    peer: SocketAddr,
) -> Result<Vec<airlock_store::PromotionRow>, crate::promotion::PromotionError> {
    let caller = crate::promotion::Caller::from(caller_of(session, peer));
    Ok(state
        .promotions
        .list(Some("pending_approval"), None, None, INBOX_PAGE)
        .await?
        .into_iter()
        .filter(|row| crate::promotion::routes::promotion_readable(&state.identity, &caller, row))
        .collect())
}

/// The ids of the promotions pending approval that `session`'s principal may read.
async fn pending_ids(
    state: &ConsoleState,
    session: &ConsoleSession,
    peer: SocketAddr,
) -> Result<Vec<String>, crate::promotion::PromotionError> {
    Ok(pending_readable(state, session, peer)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect())
}

/// A short fingerprint of the pending promotions a page showed (their ids, in order), which the
/// page hands its event stream so that a change between the page and the stream is not missed.
pub(crate) fn pending_fingerprint(ids: &[String]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(ids.join("\n").as_bytes());
    hex::encode(&digest[..8])
}

/// Query of the inbox's event stream.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct EventsQuery {
    /// The [`pending_fingerprint`] of what the page showed; absent: what is pending when the
    /// stream opens.
    shown: Option<String>,
}

/// Server-sent events for an open approvals inbox: `changed` (with how many are waiting) when
/// the promotions waiting for approval that the person may read differ from what the page
/// showed (at once, if they changed before the stream opened), then at each later change. The
/// session is checked again at every look, so a revoked or expired session's stream ends.
async fn approvals_events(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let Some(cookie) = cookie_value(&headers, SESSION_COOKIE).map(str::to_string) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(session) = state.identity.console_session(&cookie).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let shown = match query.shown {
        Some(shown) => shown,
        None => match pending_ids(&state, &session, peer).await {
            Ok(ids) => pending_fingerprint(&ids),
            Err(err) => return ApiError::from(err).into_response(),
        },
    };
    let stream = futures::stream::unfold(
        (state, cookie, shown, true),
        move |(state, cookie, last, first_look)| async move {
            let mut first_look = first_look;
            loop {
                if !first_look {
                    tokio::time::sleep(INBOX_POLL).await;
                }
                first_look = false;
                let session = state.identity.console_session(&cookie).await.ok()?;
                let Ok(now) = pending_ids(&state, &session, peer).await else {
                    continue;
                };
                let fingerprint = pending_fingerprint(&now);
                if fingerprint != last {
                    let event = Event::default()
                        .event("changed")
                        .data(now.len().to_string());
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (state, cookie, fingerprint, false),
                    ));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
