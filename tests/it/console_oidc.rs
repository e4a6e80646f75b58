//! Signing in to the web console with OpenID Connect (authorization code flow with PKCE S256),
//! tested over HTTP as a browser and an identity provider see it.
//!
//! The test plays both the browser and the identity provider: one HTTPS responder serves the
//! provider's JWKS (`/jwks`) and token endpoint (`/token`), and checks on its own what RFC 7636
//! asks of a token request (the verifier hashes to the challenge, the code is known and unused,
//! the redirect URI is the one the flow started with) before it issues an ES256 ID token. The
//! tests cover a sign-in that maps the person's groups to roles, callbacks and ID tokens that
//! must be refused (another state, no flow cookie, another nonce, a forged signature, another
//! audience, a replay, a refusal by the provider), roles that follow group changes at the next
//! sign-in, and local accounts that an OIDC sign-in may not take over.

use crate::common;
use crate::tls_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::console::{assert_secured, browser, cookie_value, get, set_cookie};
use common::{TestPki, TestServer, add_user, get_json};
use p256::ecdsa::SigningKey;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tls_support::{HttpsResponder, Received};

/// The identity provider's issuer (`iss` of its ID tokens).
const ISSUER: &str = "https://idp.example";
/// airlock's client id at the provider (`aud` of the ID tokens it accepts).
const CLIENT_ID: &str = "airlock-console";
/// The key id of the provider's signing key in its JWKS.
const KID: &str = "idp-key-1";
/// The label of the sign-in button.
const BUTTON_LABEL: &str = "Sign in with Example SSO";
/// The cookie that carries a sign-in flow from `/console/oidc/start` to the callback.
const FLOW_COOKIE: &str = "airlock_oidc_flow";
/// The console's session cookie.
const SESSION_COOKIE: &str = "airlock_session";
const JSON: &str = "application/json";

/// What the provider's HTTPS responder answers: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A P-256 signing key derived from `seed`.
fn key(seed: &str) -> SigningKey {
    SigningKey::from_slice(&Sha256::digest(seed.as_bytes())).expect("a valid P-256 scalar")
}

/// The public JWK of `key` under `kid`.
fn jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
           "x": b64(point.x().expect("an uncompressed point has x")),
           "y": b64(point.y().expect("an uncompressed point has y"))})
}

/// A compact JWS (ES256, header `kid` = [`KID`]) over `claims`, signed by `key`.
fn sign_jwt(key: &SigningKey, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer as _;
    let header = b64(json!({"alg": "ES256", "typ": "JWT", "kid": KID})
        .to_string()
        .as_bytes());
    let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

/// The name/value pairs of an `application/x-www-form-urlencoded` text.
fn form_pairs(text: &str) -> HashMap<String, String> {
    Url::parse(&format!("http://form.invalid/?{text}"))
        .expect("a form-encoded text fits a query")
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// What the provider issued for one authorization code.
struct Grant {
    /// The flow's `code_challenge` (S256).
    challenge: String,
    /// The flow's `redirect_uri`.
    redirect_uri: String,
    /// The flow's `client_id`.
    client_id: String,
    /// The ID token's claims.
    claims: Value,
    /// The key that signs the ID token (the JWKS key, or a forger's).
    key: SigningKey,
    /// Whether the code was redeemed (or a redemption was tried).
    used: bool,
}

/// The provider's shared state: the codes it issued and the token requests it refused (why).
#[derive(Default)]
struct IdpState {
    grants: HashMap<String, Grant>,
    issued: u64,
    refusals: Vec<String>,
}

/// A sign-in flow as `/console/oidc/start` began it: the authorization request's parameters and
/// the flow cookie.
struct Flow {
    state: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
    client_id: String,
    /// The value of the flow cookie.
    cookie: String,
}

/// The identity provider: an HTTPS responder for `/jwks` and `/token`, the codes it issued and
/// its signing key.
struct Idp {
    pki: TestPki,
    responder: HttpsResponder,
    state: Arc<Mutex<IdpState>>,
    key: SigningKey,
}

impl Idp {
    /// Starts the provider (before the server: airlock fetches the JWKS at start).
    fn start() -> Self {
        let pki = TestPki::new();
        let key = key("the identity provider's signing key");
        let state = Arc::new(Mutex::new(IdpState::default()));
        let jwks = json!({"keys": [jwk(&key, KID)]}).to_string();
        let shared = state.clone();
        let responder = HttpsResponder::start(&pki, move |request| {
            let path = request.path.split('?').next().unwrap_or_default();
            match (request.method.as_str(), path) {
                ("GET", "/jwks") => (200, JSON, jwks.clone().into_bytes()),
                ("POST", "/token") => token_endpoint(&shared, &request.body),
                _ => (
                    404,
                    JSON,
                    json!({"error": "not_found"}).to_string().into_bytes(),
                ),
            }
        });
        Self {
            pki,
            responder,
            state,
            key,
        }
    }

    fn lock(&self) -> MutexGuard<'_, IdpState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A configuration file in `dir` with `[access.console_oidc]` pointing at this provider.
    fn config(&self, dir: &Path) -> PathBuf {
        let url = &self.responder.url;
        let ca = self.pki.ca_cert.to_str().expect("a UTF-8 path");
        let file = dir.join("airlock.toml");
        std::fs::write(
            &file,
            format!(
                r#"[access.console_oidc]
issuer = "{ISSUER}"
client_id = "{CLIENT_ID}"
authorization_endpoint = "{url}/authorize"
token_endpoint = "{url}/token"
jwks_url = "{url}/jwks"
ca_cert = {ca:?}
scopes = ["openid", "profile", "groups"]
username_claim = "preferred_username"
groups_claim = "groups"
button_label = "{BUTTON_LABEL}"

[access.console_oidc.groups]
"release-managers" = ["approver:prod"]
"builders" = ["developer:dev/team/*"]
"#
            ),
        )
        .expect("write the configuration file");
        file
    }

    /// The ID token claims of `user` in `groups` for `flow`.
    fn claims(&self, flow: &Flow, user: &str, groups: &[&str]) -> Value {
        let now = now();
        json!({
            "iss": ISSUER, "aud": CLIENT_ID, "sub": format!("idp-subject-{user}"),
            "iat": now - 5, "exp": now + 300, "nonce": flow.nonce,
            "preferred_username": user, "groups": groups,
        })
    }

    /// Logs `user` (in `groups`) in for `flow`, as the provider's login page would: returns the
    /// authorization code, whose ID token has the usual claims with `claims_overrides` (an
    /// object) laid over them, signed by the JWKS key.
    fn issue(&self, flow: &Flow, user: &str, groups: &[&str], claims_overrides: Value) -> String {
        let mut claims = self.claims(flow, user, groups);
        let object = claims.as_object_mut().expect("the claims are an object");
        for (name, value) in claims_overrides
            .as_object()
            .expect("the overrides are an object")
        {
            object.insert(name.clone(), value.clone());
        }
        self.issue_signed_by(flow, claims, &self.key)
    }

    /// Like [`Idp::issue`] with exactly `claims`, signed by `key` (under [`KID`]).
    fn issue_signed_by(&self, flow: &Flow, claims: Value, key: &SigningKey) -> String {
        let mut state = self.lock();
        state.issued += 1;
        let code = format!("idp-code-{}", state.issued);
        state.grants.insert(
            code.clone(),
            Grant {
                challenge: flow.challenge.clone(),
                redirect_uri: flow.redirect_uri.clone(),
                client_id: flow.client_id.clone(),
                claims,
                key: key.clone(),
                used: false,
            },
        );
        code
    }

    /// The requests the provider received on `path`.
    fn requests_to(&self, path: &str) -> Vec<Received> {
        self.responder
            .received()
            .into_iter()
            .filter(|request| request.path.split('?').next() == Some(path))
            .collect()
    }

    /// Why the provider refused token requests, so far.
    fn refusals(&self) -> Vec<String> {
        self.lock().refusals.clone()
    }
}

/// The token endpoint: redeems a code for an ID token, or answers `invalid_grant`.
fn token_endpoint(state: &Mutex<IdpState>, body: &[u8]) -> Answer {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    match redeem(&mut state.grants, body) {
        Ok(id_token) => (
            200,
            JSON,
            json!({"access_token": "x", "token_type": "Bearer", "id_token": id_token,
                   "expires_in": 300})
            .to_string()
            .into_bytes(),
        ),
        Err(reason) => {
            let answer = json!({"error": "invalid_grant", "error_description": reason})
                .to_string()
                .into_bytes();
            state.refusals.push(reason);
            (400, JSON, answer)
        }
    }
}

/// Checks a token request on the provider's side (RFC 6749 §4.1.3, RFC 7636 §4.6): returns
/// the ID token, or why the request is refused.
fn redeem(grants: &mut HashMap<String, Grant>, body: &[u8]) -> Result<String, String> {
    let form = form_pairs(&String::from_utf8_lossy(body));
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let grant_type = field("grant_type");
    if grant_type != "authorization_code" {
        return Err(format!("grant_type is {grant_type:?}"));
    }
    let code = field("code");
    let grant = grants
        .get_mut(&code)
        .ok_or_else(|| format!("unknown code {code:?}"))?;
    if grant.used {
        return Err(format!("code {code:?} was already used"));
    }
    grant.used = true;
    let client_id = field("client_id");
    if client_id != grant.client_id {
        return Err(format!(
            "client_id {client_id:?} is not the flow's {:?}",
            grant.client_id
        ));
    }
    let redirect_uri = field("redirect_uri");
    if redirect_uri != grant.redirect_uri {
        return Err(format!(
            "redirect_uri {redirect_uri:?} is not the flow's {:?}",
            grant.redirect_uri
        ));
    }
    // RFC 7636 §4.1: 43 to 128 unreserved characters.
    let verifier = field("code_verifier");
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return Err(format!("code_verifier {verifier:?} is malformed"));
    }
    // RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge.
    let computed = b64(&Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        return Err(format!(
            "the verifier hashes to {computed:?}, not the challenge {:?}",
            grant.challenge
        ));
    }
    Ok(sign_jwt(&grant.key, &grant.claims))
}

/// Starts a flow as the sign-in button does (`GET /console/oidc/start`) and checks the
/// authorization request it redirects to and the flow cookie it sets.
async fn start_flow(s: &TestServer, idp: &Idp) -> Flow {
    let response = browser()
        .get(s.url("/console/oidc/start"))
        .send()
        .await
        .expect("GET /console/oidc/start");
    assert_secured(response.headers(), "/console/oidc/start");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 303, "{body}");

    let location = headers
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location: {headers:?}"))
        .to_str()
        .expect("an ASCII Location")
        .to_string();
    let endpoint = format!("{}/authorize?", idp.responder.url);
    assert!(location.starts_with(&endpoint), "{location}");
    let query: HashMap<String, String> = Url::parse(&location)
        .unwrap_or_else(|e| panic!("{location}: {e}"))
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let param = |name: &str| query.get(name).cloned().unwrap_or_default();
    assert_eq!(param("response_type"), "code", "{location}");
    assert_eq!(param("client_id"), CLIENT_ID, "{location}");
    assert_eq!(param("code_challenge_method"), "S256", "{location}");
    let scope = param("scope");
    for wanted in ["openid", "profile", "groups"] {
        assert!(
            scope.split_whitespace().any(|given| given == wanted),
            "scope {scope:?} lacks {wanted}: {location}"
        );
    }
    let (state, nonce, challenge) = (param("state"), param("nonce"), param("code_challenge"));
    assert!(!state.is_empty(), "no state: {location}");
    assert!(!nonce.is_empty(), "no nonce: {location}");
    assert!(!challenge.is_empty(), "no code_challenge: {location}");
    assert_ne!(state, nonce, "state and nonce are independent: {location}");
    let redirect_uri = param("redirect_uri");
    assert!(
        redirect_uri.ends_with("/console/oidc/callback"),
        "{location}"
    );

    let flow_cookie = set_cookie(&headers, FLOW_COOKIE)
        .unwrap_or_else(|| panic!("no {FLOW_COOKIE} cookie: {headers:?}"));
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/console/oidc",
        "Max-Age=600",
    ] {
        assert!(flow_cookie.contains(attribute), "{flow_cookie}");
    }
    let cookie = cookie_value(&flow_cookie);
    assert!(!cookie.is_empty(), "{flow_cookie}");
    Flow {
        state,
        nonce,
        challenge,
        redirect_uri,
        client_id: param("client_id"),
        cookie,
    }
}

/// What the callback answered.
#[derive(Debug)]
struct Callback {
    status: u16,
    location: Option<String>,
    content_type: String,
    /// The `Set-Cookie` of the session cookie, if any.
    session_header: Option<String>,
    /// The session cookie's value, if one with a value was set.
    session: Option<String>,
    /// The `Set-Cookie` of the flow cookie, if any.
    flow_header: Option<String>,
    /// The page: the callback's, or for a redirect to the sign-in page, that page.
    page: String,
}

/// GETs `/console/oidc/callback?<query>`, with the flow cookie if given.
async fn callback(s: &TestServer, query: &[(&str, &str)], flow_cookie: Option<&str>) -> Callback {
    let mut url = Url::parse(&s.url("/console/oidc/callback")).expect("the callback URL");
    url.query_pairs_mut().extend_pairs(query);
    let mut request = browser().get(url);
    if let Some(cookie) = flow_cookie {
        request = request.header("cookie", format!("{FLOW_COOKIE}={cookie}"));
    }
    let response = request.send().await.expect("GET the callback");
    assert_secured(response.headers(), "the callback");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let session_header = set_cookie(&headers, SESSION_COOKIE);
    let session = session_header
        .as_deref()
        .map(cookie_value)
        .filter(|value| !value.is_empty());
    let flow_header = set_cookie(&headers, FLOW_COOKIE);
    let mut page = response.text().await.unwrap_or_default();
    if let Some(target) = location.as_deref()
        && status == 303
        && target.starts_with("/console/login")
    {
        page = browser()
            .get(s.url(target))
            .send()
            .await
            .expect("GET the sign-in page")
            .text()
            .await
            .unwrap_or_default();
    }
    Callback {
        status,
        location,
        content_type,
        session_header,
        session,
        flow_header,
        page,
    }
}

/// Returns to the callback from the provider with `code` for `flow`, flow cookie and all.
async fn complete(s: &TestServer, flow: &Flow, code: &str) -> Callback {
    callback(
        s,
        &[("code", code), ("state", flow.state.as_str())],
        Some(flow.cookie.as_str()),
    )
    .await
}

/// The callback refused the sign-in: a 4xx page or a redirect to the sign-in page, and no
/// session cookie with a value.
fn assert_refused(answer: &Callback, what: &str) {
    assert!(
        answer.session.is_none(),
        "{what}: a session cookie was set: {answer:?}"
    );
    let to_login = answer.status == 303
        && answer
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/console/login"));
    assert!(
        to_login || (400..500).contains(&answer.status),
        "{what}: not refused: {answer:?}"
    );
}

/// Signs `user` in through the provider with `groups`: the session cookie, or `None` when
/// airlock refused. A sign-in that succeeds is checked as the spec describes it (a 200 HTML
/// page, the session cookie's attributes, the flow cookie cleared).
async fn oidc_sign_in(s: &TestServer, idp: &Idp, user: &str, groups: &[&str]) -> Option<String> {
    let flow = start_flow(s, idp).await;
    let code = idp.issue(&flow, user, groups, json!({}));
    let answer = complete(s, &flow, &code).await;
    let session = answer.session.clone()?;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.content_type.starts_with("text/html"), "{answer:?}");
    let header = answer.session_header.as_deref().unwrap_or_default();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(header.contains(attribute), "{header}");
    }
    let cleared = answer
        .flow_header
        .as_deref()
        .unwrap_or_else(|| panic!("the callback clears the flow cookie: {answer:?}"));
    assert!(
        cookie_value(cleared).is_empty() || cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    Some(session)
}

/// The audit entries whose type starts with `kind` (as admin).
async fn audit(s: &TestServer, kind: &str) -> Vec<Value> {
    let (status, page) = get_json(
        &s.http,
        &s.url(&format!("/api/v1/audit/entries?type={kind}&limit=100")),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {page}"))
        .iter()
        .map(|e| e["entry"].clone())
        .collect()
}

/// The (role, scope) of the `role.granted` or `role.revoked` entries about `principal`.
fn roles_in(entries: &[Value], principal: &str) -> Vec<(String, String)> {
    entries
        .iter()
        .filter(|e| e["subject"]["name"] == principal)
        .map(|e| {
            (
                e["details"]["role"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["details"]["scope"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn approver_prod() -> Vec<(String, String)> {
    vec![("approver".to_string(), "prod".to_string())]
}

/// How many `session.started` entries `principal` has.
async fn sessions_started(s: &TestServer, principal: &str) -> usize {
    audit(s, "session.")
        .await
        .iter()
        .filter(|e| e["type"] == "session.started" && e["actor"]["principal"] == principal)
        .count()
}

/// The user `name` in `GET /api/v1/users` (as admin).
async fn user(s: &TestServer, name: &str) -> Value {
    let (status, list) = get_json(&s.http, &s.url("/api/v1/users?n=100")).await;
    assert_eq!(status, 200, "{list}");
    list["principals"]
        .as_array()
        .unwrap_or_else(|| panic!("no principals: {list}"))
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no user {name}: {list}"))
}

/// A provider and a server configured to sign in through it.
fn start() -> (Idp, TestServer, tempfile::TempDir) {
    let idp = Idp::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = idp.config(dir.path());
    let s = TestServer::start_with_env(&[("AIRLOCK_CONFIG", file.to_str().expect("a UTF-8 path"))]);
    (idp, s, dir)
}

#[tokio::test]
async fn a_person_signs_in_with_oidc_and_gets_the_roles_of_their_groups() {
    let (idp, s, _dir) = start();
    assert!(
        !idp.requests_to("/jwks").is_empty(),
        "airlock fetches the JWKS at start"
    );

    // The sign-in page offers the provider's button.
    let (status, page, _) = get(&s, "", "/console/login").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(BUTTON_LABEL), "{page}");
    assert!(page.contains("href=\"/console/oidc/start\""), "{page}");

    let cookie = oidc_sign_in(&s, &idp, "alice", &["release-managers"])
        .await
        .unwrap_or_else(|| panic!("alice signs in; provider refusals: {:?}", idp.refusals()));
    assert!(idp.refusals().is_empty(), "{:?}", idp.refusals());
    let (status, board, _) = get(&s, &cookie, "/console").await;
    assert_eq!(status, 200, "{board}");
    assert!(
        board.contains("Signed in as <strong>alice</strong>"),
        "{board}"
    );

    // One token request, with the PKCE verifier.
    let token_requests = idp.requests_to("/token");
    assert_eq!(token_requests.len(), 1, "{token_requests:?}");
    let body = String::from_utf8_lossy(&token_requests[0].body).into_owned();
    assert!(body.contains("code_verifier="), "{body}");

    // Her group's roles, and only those, were granted; the session is in the audit log.
    let granted = audit(&s, "role.granted").await;
    assert_eq!(roles_in(&granted, "alice"), approver_prod(), "{granted:?}");
    assert_eq!(sessions_started(&s, "alice").await, 1);

    // She is a user of airlock now, with that role.
    let alice = user(&s, "alice").await;
    assert!(
        alice["roles"]
            .as_array()
            .unwrap_or_else(|| panic!("no roles: {alice}"))
            .iter()
            .any(|r| r["role"] == "approver" && r["scope"] == "prod"),
        "{alice}"
    );
}

#[tokio::test]
async fn a_callback_with_another_state_or_a_forged_token_is_refused() {
    let (idp, s, _dir) = start();
    let tokens = || idp.requests_to("/token").len();

    // Another state than the flow's: refused before the code is redeemed.
    let flow = start_flow(&s, &idp).await;
    let code = idp.issue(&flow, "dave", &["builders"], json!({}));
    let before = tokens();
    let answer = callback(
        &s,
        &[("code", code.as_str()), ("state", "not-the-flows-state")],
        Some(flow.cookie.as_str()),
    )
    .await;
    assert_refused(&answer, "another state");
    assert_eq!(tokens(), before, "the token endpoint was not called");

    // No flow cookie: refused the same way.
    let flow = start_flow(&s, &idp).await;
    let code = idp.issue(&flow, "dave", &["builders"], json!({}));
    let answer = callback(
        &s,
        &[("code", code.as_str()), ("state", flow.state.as_str())],
        None,
    )
    .await;
    assert_refused(&answer, "no flow cookie");
    assert_eq!(tokens(), before, "the token endpoint was not called");

    // ID tokens the provider hands over but airlock must not accept: another nonce, a
    // signature by a key not in the JWKS (under the JWKS key's id), another audience.
    let forger = key("a forger's key");
    for (what, overrides, signer) in [
        ("another nonce", json!({"nonce": "another-nonce"}), None),
        ("a forged signature", json!({}), Some(&forger)),
        ("another audience", json!({"aud": "another-client"}), None),
    ] {
        let flow = start_flow(&s, &idp).await;
        let code = match signer {
            None => idp.issue(&flow, "dave", &["builders"], overrides),
            Some(forged_key) => {
                let claims = idp.claims(&flow, "dave", &["builders"]);
                idp.issue_signed_by(&flow, claims, forged_key)
            }
        };
        let before = tokens();
        let answer = complete(&s, &flow, &code).await;
        assert_eq!(tokens(), before + 1, "{what}: the code was redeemed");
        assert!(
            idp.refusals().is_empty(),
            "{what}: the provider issued the token: {:?}",
            idp.refusals()
        );
        assert_refused(&answer, what);
    }
    assert_eq!(
        sessions_started(&s, "dave").await,
        0,
        "no refused callback started a session"
    );

    // A callback that succeeded cannot be replayed: the browser's flow cookie is cleared, and
    // an old copy of it sent again only reaches the provider, which refuses a used code.
    let flow = start_flow(&s, &idp).await;
    let code = idp.issue(&flow, "dave", &["builders"], json!({}));
    let first = complete(&s, &flow, &code).await;
    let dave = first.session.clone().unwrap_or_else(|| {
        panic!(
            "dave signs in: {first:?}; provider refusals: {:?}",
            idp.refusals()
        )
    });
    assert_eq!(get(&s, &dave, "/console").await.0, 200);
    let replay = complete(&s, &flow, &code).await;
    assert_refused(&replay, "a replayed callback");
    assert!(
        idp.refusals().iter().any(|r| r.contains("already used")),
        "the provider refused the used code: {:?}",
        idp.refusals()
    );
    assert_eq!(sessions_started(&s, "dave").await, 1);

    // The provider refused the sign-in: the page says so, and nothing is redeemed.
    let flow = start_flow(&s, &idp).await;
    let before = tokens();
    let answer = callback(
        &s,
        &[
            ("error", "access_denied"),
            ("error_description", "The user said <b>no</b>"),
            ("state", flow.state.as_str()),
        ],
        Some(flow.cookie.as_str()),
    )
    .await;
    assert_refused(&answer, "a refusal by the provider");
    assert_eq!(tokens(), before, "the token endpoint was not called");
    let page = answer.page.to_lowercase();
    assert!(
        page.contains("refused") && page.contains("provider"),
        "{answer:?}"
    );
    assert!(
        !answer.page.contains("<b>no</b>"),
        "the provider's text is escaped: {answer:?}"
    );
}

#[tokio::test]
async fn group_changes_apply_at_the_next_sign_in_and_local_accounts_are_not_taken_over() {
    let (idp, s, _dir) = start();

    // bob is a release manager: approver on prod.
    let first = oidc_sign_in(&s, &idp, "bob", &["release-managers"])
        .await
        .unwrap_or_else(|| panic!("bob signs in; provider refusals: {:?}", idp.refusals()));
    assert_eq!(get(&s, &first, "/console").await.0, 200);
    let granted = audit(&s, "role.granted").await;
    assert_eq!(roles_in(&granted, "bob"), approver_prod(), "{granted:?}");

    // He left the group: the next sign-in revokes the role, which ends his first session.
    let _ = oidc_sign_in(&s, &idp, "bob", &[]).await;
    assert!(idp.refusals().is_empty(), "{:?}", idp.refusals());
    let revoked = audit(&s, "role.revoked").await;
    assert_eq!(roles_in(&revoked, "bob"), approver_prod(), "{revoked:?}");
    let (status, _, location) = get(&s, &first, "/console").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/console/login?reason=ended"));

    // A local account is not taken over by an OIDC sign-in of the same name.
    let carol = add_user(&s, "carol", "lamp-orbit-tall-river", &[]).await;
    let flow = start_flow(&s, &idp).await;
    let code = idp.issue(&flow, "carol", &["builders"], json!({}));
    let answer = complete(&s, &flow, &code).await;
    assert_refused(&answer, "a sign-in as a local account");
    assert!(
        answer.page.to_lowercase().contains("already exists"),
        "{answer:?}"
    );
    assert_eq!(sessions_started(&s, "carol").await, 0);
    let granted = audit(&s, "role.granted").await;
    assert!(roles_in(&granted, "carol").is_empty(), "{granted:?}");
    // Her password still signs her in, with no roles from the provider's groups.
    let (status, whoami) = get_json(&carol, &s.url("/api/v1/whoami")).await;
    assert_eq!(status, 200, "{whoami}");
    assert_eq!(whoami["name"], "carol", "{whoami}");
    assert_eq!(whoami["roles"], json!([]), "{whoami}");
}

#[tokio::test]
async fn a_mapping_to_a_stage_that_does_not_exist_refuses_the_start() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = idp.config(dir.path());
    let text = std::fs::read_to_string(&file).expect("the configuration");
    std::fs::write(&file, text.replace("\"approver:prod\"", "\"approver:qa\""))
        .expect("rewrite the configuration");
    let data = dir.path().join("data");
    let (code, output) =
        common::serve_refused(&data, &["--config", file.to_str().expect("a UTF-8 path")]);
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("access.console_oidc.groups.\"release-managers\"") && output.contains("qa"),
        "{output}"
    );
}
