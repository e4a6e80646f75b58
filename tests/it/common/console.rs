//! What the web console's tests share: a browser-like client that keeps no cookies (the tests
//! read and send them), reading `Set-Cookie`, the security headers every console answer
//! carries, and GETting a page with a session cookie.

use reqwest::header::{CONTENT_SECURITY_POLICY, HeaderMap, LOCATION, SET_COOKIE};

use super::TestServer;

/// A client that follows no redirect and keeps no cookies: the test reads and sends them.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// The `Set-Cookie` header setting cookie `name`.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The value a `Set-Cookie` header gives its cookie.
pub fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    pair.split_once('=')
        .unwrap_or_else(|| panic!("no name=value in {set_cookie:?}"))
        .1
        .to_string()
}

/// Every console answer carries the same security headers.
pub fn assert_secured(headers: &HeaderMap, what: &str) {
    let csp = headers
        .get(CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .expect("an ASCII header");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
}

/// GETs a console page with session cookie `cookie` (empty: none): (status, body, Location).
pub async fn get(s: &TestServer, cookie: &str, path: &str) -> (u16, String, Option<String>) {
    let response = browser()
        .get(s.url(path))
        .header("cookie", format!("airlock_session={cookie}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_secured(response.headers(), path);
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().expect("an ASCII Location").to_string());
    (
        status,
        response.text().await.expect("a page body"),
        location,
    )
}
