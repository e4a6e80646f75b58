//! Console sign-in with the configured OpenID Connect provider.
//!
//! - `GET /console/oidc/start` sends the browser to the provider's authorization endpoint with a
//!   new flow (state, nonce, PKCE challenge) and keeps the flow in a cookie of its own:
//!   `HttpOnly`, `SameSite=Lax` (the provider's redirect back is a top-level navigation from
//!   another site, which a `Strict` cookie would not survive), path `/console/oidc`, ten
//!   minutes, `Secure` under TLS.
//! - `GET /console/oidc/callback` finishes it ([`crate::identity::Identity::finish_console_oidc`])
//!   and clears the flow cookie whatever happens, so a flow is used once. On success it sets the
//!   session cookie and answers a page that moves on to the board itself: the session cookie is
//!   `SameSite=Strict`, and a redirect chain that began at the provider would not carry it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use maud::html;
use serde::Deserialize;

use super::{CONSOLE_PATH, ConsoleState, SESSION_COOKIE, cookie_value, login_page, page};

/// The cookie holding a sign-in flow between the redirect and the callback.
const FLOW_COOKIE: &str = "airlock_oidc_flow";
/// Where the flow cookie is sent.
const FLOW_PATH: &str = "/console/oidc";
/// How long a sign-in at the provider may take.
const FLOW_SECS: i64 = 600;

/// The flow cookie with `value` (empty with `max_age` 0 to clear it).
fn flow_cookie(state: &ConsoleState, value: String, max_age: i64) -> HeaderValue {
    let cookie = Cookie::build((FLOW_COOKIE, value))
        .path(FLOW_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The redirect URI of this request's sign-in: the configured one, else this server's address
/// as the browser used it.
fn redirect_uri(state: &ConsoleState, headers: &HeaderMap) -> Option<String> {
    if let Some(configured) = state.identity.console_oidc_redirect_url() {
        return Some(configured);
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plausible = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    plausible.then(|| {
        format!(
            "{}://{host}/console/oidc/callback",
            if state.secure_cookies {
                "https"
            } else {
                "http"
            }
        )
    })
}

pub(super) async fn start(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some(redirect) = redirect_uri(&state, &headers) else {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some(
                "The request names no usable host, so the provider could not send you back: set access.console_oidc.redirect_url.",
            ),
            None,
        );
    };
    match state.identity.begin_console_oidc(&redirect) {
        Ok((location, flow)) => {
            let mut response = Redirect::to(&location).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                flow_cookie(&state, flow.to_cookie(), FLOW_SECS),
            );
            response
        }
        Err(err) => login_page(&state, StatusCode::NOT_FOUND, Some(&err.to_string()), None),
    }
}

/// What the provider sends back (OAuth 2.0 §4.1.2, §4.1.2.1).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub(super) async fn callback(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let mut response = finish(&state, peer, &headers, query).await;
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(&state, String::new(), 0));
    response
}

async fn finish(
    state: &ConsoleState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: CallbackQuery,
) -> Response {
    let refused =
        |status: StatusCode, message: &str| login_page(state, status, Some(message), None);
    if let Some(error) = &query.error {
        return refused(
            StatusCode::FORBIDDEN,
            &format!(
                "The provider refused the sign-in: {error}{}",
                query
                    .error_description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        );
    }
    let Some(flow) =
        cookie_value(headers, FLOW_COOKIE).and_then(airlock_identity::SignInFlow::from_cookie)
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or it took longer than ten minutes: sign in again.",
        );
    };
    let (Some(code), Some(returned_state)) = (&query.code, &query.state) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The provider sent you back without a code: sign in again.",
        );
    };
    match state
        .identity
        .finish_console_oidc(&flow, code, returned_state, Some(peer))
        .await
    {
        Ok((session, _)) => {
            let mut response = page(
                StatusCode::OK,
                html! {
                    (maud::DOCTYPE)
                    html lang="en" {
                        head {
                            meta charset="utf-8";
                            meta http-equiv="refresh" content=(format!("0;url={CONSOLE_PATH}"));
                            title { "Signed in · airlock" }
                            link rel="stylesheet" href="/console/assets/console.css";
                        }
                        body {
                            main id="main" {
                                p { "You are signed in. " a href=(CONSOLE_PATH) { "Continue to the stages board" } }
                            }
                        }
                    }
                },
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                state.cookie(SESSION_COOKIE, session.cookie, None),
            );
            response
        }
        Err(err) => {
            let (status, message) = super::sign_in_refusal(&err);
            refused(status, &message)
        }
    }
}
