//! Identity and access control end to end, against a real `airlock serve`: the role -> permission
//! table over HTTP, every way a token or credential is refused (each leaving nothing behind but
//! its audit record), immediate revocation, rate limiting, separation of duties, OIDC workload
//! identity, the CLI, and the audit trail of access changes.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airlock_identity::{AccessClaims, TokenKey, TokenKind};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestServer, claims_of, client_as, error_code, sha256};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The password every test user gets (at least 12 characters).
const PASSWORD: &str = "user-password-0123";

// ---- helpers ----------------------------------------------------------------------------------

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A client that sends `Authorization: Bearer <token>` on every request.
fn client_bearer(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// POSTs JSON to the API with `client`; returns the status and the JSON body.
async fn api_post(
    s: &TestServer,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = client.post(s.url(path)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn api_get(s: &TestServer, client: &reqwest::Client, path: &str) -> (u16, Value) {
    let response = client.get(s.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates user `name` with [`PASSWORD`] as admin; returns a client with its Basic credentials.
async fn add_user(s: &TestServer, name: &str) -> reqwest::Client {
    let (status, body) = api_post(
        s,
        &s.http,
        "/api/v1/users",
        json!({"name": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "create user {name}: {body}");
    client_as(name, PASSWORD)
}

/// Grants `role` in `scope` to `principal` as admin.
async fn grant(s: &TestServer, principal: &str, role: &str, scope: &str) {
    let (status, body) = api_post(
        s,
        &s.http,
        "/api/v1/roles/grant",
        json!({"principal": principal, "role": role, "scope": scope}),
    )
    .await;
    assert_eq!(
        status, 200,
        "grant {role} in {scope} to {principal}: {body}"
    );
}

/// Asserts an API error answer: status and `error.code`; returns the message.
fn api_error(status: u16, body: &Value, expected_status: u16, code: &str) -> String {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["remediation"].is_string(), "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// `GET /auth/token` with `client`'s credentials for `scopes`; asserts success, returns the body.
async fn fetch_token(s: &TestServer, client: &reqwest::Client, scopes: &[&str]) -> Value {
    let mut url = s.url("/auth/token?service=airlock");
    for scope in scopes {
        url.push_str("&scope=");
        url.push_str(scope);
    }
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "token request: {body}");
    body
}

/// The server's token signing key (its data directory's file, or the key stored in its
/// database).
async fn server_key(s: &TestServer) -> TokenKey {
    let pem = common::server_private_key(&s.data_dir, "token-key.pem").await;
    TokenKey::from_pkcs8_pem(&pem).unwrap()
}

/// Uploads `content` monolithically to `repo` with `client`.
async fn push_blob_as(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    content: &[u8],
) -> reqwest::Response {
    client
        .post(s.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(content)
        )))
        .body(content.to_vec())
        .send()
        .await
        .unwrap()
}

/// Whether admin finds the blob with `content` in `repo`.
async fn blob_exists(s: &TestServer, repo: &str, content: &[u8]) -> bool {
    let response = s
        .http
        .head(s.url(&format!("/v2/{repo}/blobs/{}", sha256(content))))
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("HEAD blob as admin: {other}"),
    }
}

/// Whether admin finds tag `tag` in `repo`.
async fn tag_exists(s: &TestServer, repo: &str, tag: &str) -> bool {
    let response = s
        .http
        .head(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("HEAD manifest as admin: {other}"),
    }
}

/// Content no other push in the test binary uses.
fn unique_content(label: &str) -> Vec<u8> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{label} #{} {:?}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        Instant::now()
    )
    .into_bytes()
}

/// Pushes a one-layer image tagged `tag` with `client`; returns the manifest PUT's status.
async fn push_image_as(s: &TestServer, client: &reqwest::Client, repo: &str, tag: &str) -> u16 {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = unique_content("layer");
    for blob in [&config[..], &layer] {
        let response = push_blob_as(s, client, repo, blob).await;
        if response.status() != 201 {
            return response.status().as_u16();
        }
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": common::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    client
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("content-type", common::OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Asserts that `client` cannot push a blob to `repo`: `401 UNAUTHORIZED` with a challenge naming
/// the token realm and scope, nothing stored, and no audit entries but `auth.failed`, which are
/// returned.
async fn assert_push_unauthorized(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
) -> Vec<Value> {
    let before = s.audit_entries().await.len();
    let content = unique_content("must not be stored");
    let response = push_blob_as(s, client, repo, &content).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(&format!(
            "Bearer realm=\"{}/auth/token\",service=\"airlock\",scope=\"repository:{repo}:pull,push\"",
            s.base
        )),
        "{challenge}"
    );
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
    assert!(!blob_exists(s, repo, &content).await);
    let new = s.audit_entries().await[before..].to_vec();
    assert!(
        new.iter().all(|e| e["type"] == "auth.failed"),
        "a refused push left more than its audit record: {new:#?}"
    );
    new
}

/// Asserts `entries` is exactly one `auth.failed` for `principal` whose reason contains `reason`.
fn assert_one_failure(entries: &[Value], principal: &str, reason: &str) {
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let entry = &entries[0];
    assert_eq!(entry["type"], "auth.failed");
    assert_eq!(entry["outcome"], "denied");
    assert_eq!(entry["subject"]["name"], principal, "{entry}");
    assert_eq!(entry["actor"]["auth_method"], "failed");
    let why = entry["details"]["reason"].as_str().unwrap();
    assert!(why.contains(reason), "reason {why:?} lacks {reason:?}");
}

/// Waits for the next minute if fewer than `secs` seconds are left in this one, so that failures
/// counted "per minute" in the test all fall into the same minute.
async fn keep_within_one_minute(secs: u64) {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = 60_000 - millis % 60_000;
    if left < secs * 1000 {
        tokio::time::sleep(Duration::from_millis(left + 200)).await;
    }
}

/// `auth.failed` entries about `principal`.
async fn failures_of(s: &TestServer, principal: &str) -> usize {
    s.audit_entries()
        .await
        .iter()
        .filter(|e| e["type"] == "auth.failed" && e["subject"]["name"] == principal)
        .count()
}

// ---- 1. the permission table ------------------------------------------------------------------

#[tokio::test]
async fn permission_table_holds_over_http() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"table layer"]).await;
    // role: (pull dev, push dev, delete dev, pull prod), from airlock-core's `permissions`.
    let table = [
        ("reader", [true, false, false, true]),
        ("developer", [true, true, true, true]),
        ("builder", [true, true, false, false]),
        ("promoter", [true, false, false, true]),
        ("approver", [true, false, false, true]),
        ("deployer", [false, false, false, true]),
        ("key-admin", [false, false, false, false]),
        ("access-admin", [false, false, false, false]),
        ("auditor", [true, false, false, true]),
        ("break-glass", [false, false, false, false]),
    ];
    let missing = sha256(b"no such manifest");
    for (role, expected) in table {
        let name = format!("u-{role}");
        let user = add_user(&s, &name).await;
        grant(&s, &name, role, "*").await;

        let pull_dev = user
            .get(s.url("/v2/dev/team/app/tags/list"))
            .send()
            .await
            .unwrap();
        let push_dev = user
            .post(s.url("/v2/dev/team/app/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        let delete_dev = user
            .delete(s.url(&format!("/v2/dev/team/app/manifests/{missing}")))
            .send()
            .await
            .unwrap();
        let pull_prod = user
            .get(s.url("/v2/prod/team/app/manifests/1.0"))
            .send()
            .await
            .unwrap();
        let push_prod = user
            .post(s.url("/v2/prod/team/app/blobs/uploads/"))
            .send()
            .await
            .unwrap();

        let allowed = |response: reqwest::Response,
                       ok_status: u16,
                       ok_code: Option<&'static str>| async move {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == 403 {
                assert_eq!(body["errors"][0]["code"], "DENIED", "{role}: {body}");
                false
            } else {
                assert_eq!(status, ok_status, "{role}: {body}");
                if let Some(code) = ok_code {
                    assert_eq!(body["errors"][0]["code"], code, "{role}: {body}");
                }
                true
            }
        };
        let actual = [
            allowed(pull_dev, 200, None).await,
            allowed(push_dev, 202, None).await,
            allowed(delete_dev, 404, Some("MANIFEST_UNKNOWN")).await,
            allowed(pull_prod, 404, Some("MANIFEST_UNKNOWN")).await,
        ];
        assert_eq!(
            actual, expected,
            "{role}: [pull dev, push dev, delete dev, pull prod]"
        );

        // Nobody pushes into prod: the stage rule refuses it whatever the role.
        assert_eq!(push_prod.status(), 403, "{role}");
        let body: Value = push_prod.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "DENIED", "{role}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("only by promotion"),
            "{role}: {body}"
        );
    }
    // The image admin pushed is untouched by all of that.
    assert!(tag_exists(&s, "dev/team/app", "1.0").await);
}

#[tokio::test]
async fn requests_without_credentials_get_a_token_challenge() {
    let s = TestServer::start();
    let base = s.anonymous.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(base.status(), 401);
    assert_eq!(
        base.headers()["www-authenticate"],
        format!("Bearer realm=\"{}/auth/token\",service=\"airlock\"", s.base).as_str()
    );
    let push = s
        .anonymous
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 401);
    assert_eq!(
        push.headers()["www-authenticate"],
        format!(
            "Bearer realm=\"{}/auth/token\",service=\"airlock\",scope=\"repository:dev/team/app:pull,push\"",
            s.base
        )
        .as_str()
    );
    assert_eq!(error_code(push).await, "UNAUTHORIZED");
    let pull = s
        .anonymous
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 401);
    assert!(
        pull.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with("scope=\"repository:dev/team/app:pull\"")
    );
    let token = s
        .anonymous
        .get(s.url("/auth/token?service=airlock"))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 401);
}

#[tokio::test]
async fn token_endpoint_grants_only_the_allowed_subset() {
    let s = TestServer::start();
    let dev = add_user(&s, "dev").await;
    grant(&s, "dev", "developer", "*").await;

    let body = fetch_token(
        &s,
        &dev,
        &[
            "repository:dev/team/app:pull,push",
            "repository:prod/team/app:pull,push",
            "repository:qa/team/app:pull",
        ],
    )
    .await;
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().contains('T'));
    assert!(body.get("refresh_token").is_none());
    let token = body["token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["iss"], "airlock");
    assert_eq!(claims["aud"], "airlock");
    assert_eq!(claims["sub"], "dev");
    assert_eq!(claims["kind"], "access");
    assert_eq!(
        claims["access"],
        json!([
            {"type": "repository", "name": "dev/team/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "prod/team/app", "actions": ["pull"]},
        ])
    );
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], server_key(&s).await.kid());

    // The token pushes where it says, and nowhere else.
    let with_token = client_bearer(token);
    assert_eq!(
        push_image_as(&s, &with_token, "dev/team/app", "1").await,
        201
    );
    let other = unique_content("other");
    let outside = push_blob_as(&s, &with_token, "dev/team/other", &other).await;
    assert_eq!(outside.status(), 401);
    assert!(
        outside.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    assert!(!blob_exists(&s, "dev/team/other", &other).await);

    // The OAuth2 form flavour, with a refresh token that gets new access tokens.
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "dev"),
            ("password", PASSWORD),
            ("service", "airlock"),
            ("access_type", "offline"),
            ("scope", "repository:dev/team/app:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(claims_of(refresh)["kind"], "refresh");
    assert_eq!(claims_of(refresh)["access"], json!([]));
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", "airlock"),
            ("scope", "repository:dev/team/app:pull,delete"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        claims_of(body["token"].as_str().unwrap())["access"],
        json!([{"type": "repository", "name": "dev/team/app", "actions": ["pull", "delete"]}])
    );
}

// ---- 2. token and credential rejections -------------------------------------------------------

/// A server with user `dev` (developer on `*`), the claims of a genuine token of theirs for
/// `dev/team/app` (pull, push), and the server's signing key.
struct Crafting {
    s: TestServer,
    key: TokenKey,
    claims: AccessClaims,
    genuine: String,
}

async fn crafting() -> Crafting {
    let s = TestServer::start();
    let dev = add_user(&s, "dev").await;
    grant(&s, "dev", "developer", "*").await;
    let body = fetch_token(&s, &dev, &["repository:dev/team/app:pull,push"]).await;
    let genuine = body["token"].as_str().unwrap().to_string();
    let claims: AccessClaims = serde_json::from_value(claims_of(&genuine)).unwrap();
    let key = server_key(&s).await;
    // Control: these claims re-signed with the key from the data directory are accepted, so each
    // rejection below is caused by the one thing the test changes.
    let control = key
        .issue(&AccessClaims {
            jti: "control".into(),
            ..claims.clone()
        })
        .unwrap();
    let response = push_blob_as(&s, &client_bearer(&control), "dev/team/app", b"control").await;
    assert_eq!(response.status(), 201);
    Crafting {
        s,
        key,
        claims,
        genuine,
    }
}

impl Crafting {
    /// The genuine claims changed by `edit`, signed with the server's key.
    fn sign(&self, edit: impl FnOnce(&mut AccessClaims)) -> String {
        let mut claims = self.claims.clone();
        edit(&mut claims);
        self.key.issue(&claims).unwrap()
    }

    async fn assert_rejected(&self, token: &str, reason: &str) {
        let entries =
            assert_push_unauthorized(&self.s, &client_bearer(token), "dev/team/app").await;
        assert_one_failure(&entries, "unknown", reason);
    }
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let c = crafting().await;
    let now = now_secs();
    let token = c.sign(|claims| {
        claims.iat = now - 4000;
        claims.nbf = now - 4000;
        claims.exp = now - 3600;
    });
    c.assert_rejected(&token, "expired").await;
}

#[tokio::test]
async fn not_yet_valid_token_is_rejected() {
    let c = crafting().await;
    let now = now_secs();
    let token = c.sign(|claims| {
        claims.nbf = now + 3600;
        claims.exp = now + 3900;
    });
    c.assert_rejected(&token, "not valid before").await;
}

#[tokio::test]
async fn token_for_another_audience_is_rejected() {
    let c = crafting().await;
    let token = c.sign(|claims| claims.aud = "another-registry".into());
    c.assert_rejected(&token, "audience").await;
}

#[tokio::test]
async fn token_from_another_issuer_is_rejected() {
    let c = crafting().await;
    let token = c.sign(|claims| claims.iss = "someone-else".into());
    c.assert_rejected(&token, "issuer").await;
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let c = crafting().await;
    let s = &c.s;
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "dev"),
            ("password", PASSWORD),
            ("access_type", "offline"),
            ("scope", "repository:dev/team/app:pull,push"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    c.assert_rejected(refresh, "refresh token cannot be used")
        .await;
    // Nor does a refresh token with registry access crafted into it pass, nor an access token
    // stand in for a refresh token.
    let crafted = c.sign(|claims| claims.kind = TokenKind::Refresh);
    assert_push_unauthorized(s, &client_bearer(&crafted), "dev/team/app").await;
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", c.genuine.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "UNAUTHORIZED");
}

#[tokio::test]
async fn token_signed_by_another_key_is_rejected() {
    let c = crafting().await;
    let stranger = TokenKey::generate();
    let token = stranger.issue(&c.claims).unwrap();
    keep_within_one_minute(3).await;
    c.assert_rejected(&token, "unknown key id").await;
    // The stranger's signature under the server's own header (its key id) does not verify.
    let header = c.genuine.split('.').next().unwrap();
    let mut parts = token.split('.').skip(1);
    let forged = format!(
        "{header}.{}.{}",
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    let entries = assert_push_unauthorized(&c.s, &client_bearer(&forged), "dev/team/app").await;
    assert!(
        entries.is_empty(),
        "one auth.failed per principal per minute"
    );
}

#[tokio::test]
async fn unsigned_alg_none_token_is_rejected() {
    let c = crafting().await;
    let header = b64(json!({"alg": "none", "typ": "JWT", "kid": c.key.kid()})
        .to_string()
        .as_bytes());
    let payload = c.genuine.split('.').nth(1).unwrap();
    c.assert_rejected(&format!("{header}.{payload}."), "\"none\" is not allowed")
        .await;
    // Nor with the genuine signature left in place.
    let signature = c.genuine.split('.').nth(2).unwrap();
    assert_push_unauthorized(
        &c.s,
        &client_bearer(&format!("{header}.{payload}.{signature}")),
        "dev/team/app",
    )
    .await;
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[tokio::test]
async fn hs256_token_keyed_with_the_public_key_is_rejected() {
    let c = crafting().await;
    let header = b64(json!({"alg": "HS256", "typ": "JWT", "kid": c.key.kid()})
        .to_string()
        .as_bytes());
    let payload = c.genuine.split('.').nth(1).unwrap();
    let input = format!("{header}.{payload}");
    let public_pem = c.key.public_key().to_public_pem().unwrap();
    let mut tokens = Vec::new();
    for secret in [public_pem.as_bytes(), &c.key.public_key().as_bytes()[..]] {
        let signature = b64(&hmac_sha256(secret, input.as_bytes()));
        tokens.push(format!("{input}.{signature}"));
    }
    c.assert_rejected(&tokens[0], "\"HS256\" is not allowed")
        .await;
    assert_push_unauthorized(&c.s, &client_bearer(&tokens[1]), "dev/team/app").await;
}

#[tokio::test]
async fn tampered_claims_are_rejected() {
    let c = crafting().await;
    let mut claims = claims_of(&c.genuine);
    claims["access"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "repository", "name": "dev/team/other", "actions": ["pull", "push"]}));
    let mut parts = c.genuine.split('.');
    let header = parts.next().unwrap();
    let signature = parts.nth(1).unwrap();
    let tampered = format!(
        "{header}.{}.{signature}",
        b64(claims.to_string().as_bytes())
    );
    let entries = assert_push_unauthorized(&c.s, &client_bearer(&tampered), "dev/team/other").await;
    assert_one_failure(&entries, "unknown", "signature is invalid");
    // Claiming to be someone else fails the same way.
    let mut claims = claims_of(&c.genuine);
    claims["sub"] = json!("admin");
    let tampered = format!(
        "{header}.{}.{signature}",
        b64(claims.to_string().as_bytes())
    );
    assert_push_unauthorized(&c.s, &client_bearer(&tampered), "dev/team/app").await;
}

#[tokio::test]
async fn scope_escalation_yields_no_push_to_prod() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"escalation"]).await;
    let dev = add_user(&s, "dev").await;
    grant(&s, "dev", "developer", "*").await;
    let body = fetch_token(&s, &dev, &["repository:prod/team/app:pull,push,delete,*"]).await;
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        claims_of(token)["access"],
        json!([{"type": "repository", "name": "prod/team/app", "actions": ["pull"]}])
    );
    let with_token = client_bearer(token);
    // Pulling prod is what the token allows.
    let pull = with_token
        .get(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 404);
    assert_eq!(error_code(pull).await, "MANIFEST_UNKNOWN");

    let before = s.audit_entries().await.len();
    let content = unique_content("escalation");
    let push = push_blob_as(&s, &with_token, "prod/team/app", &content).await;
    assert_eq!(push.status(), 403);
    let body: Value = push.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("only by promotion")
    );
    let manifest = with_token
        .put(s.url("/v2/prod/team/app/manifests/1.0"))
        .header("content-type", common::OCI_MANIFEST)
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 403);
    let delete = with_token
        .delete(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 403);
    assert!(!blob_exists(&s, "prod/team/app", &content).await);
    assert!(!tag_exists(&s, "prod/team/app", "1.0").await);
    let new = s.audit_entries().await[before..].to_vec();
    assert!(!new.is_empty());
    assert!(
        new.iter()
            .all(|e| e["type"] == "push.refused" && e["actor"]["principal"] == "dev"),
        "{new:#?}"
    );

    // A builder asking for prod gets nothing there at all.
    let builder = add_user(&s, "ci").await;
    grant(&s, "ci", "builder", "*").await;
    let body = fetch_token(
        &s,
        &builder,
        &["repository:prod/team/app:pull", "repository:dev/team/app:*"],
    )
    .await;
    assert_eq!(
        claims_of(body["token"].as_str().unwrap())["access"],
        json!([{"type": "repository", "name": "dev/team/app", "actions": ["pull", "push"]}])
    );
    let pull = client_bearer(body["token"].as_str().unwrap())
        .get(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 403);
    assert_eq!(error_code(pull).await, "DENIED");
}

#[tokio::test]
async fn revoked_api_key_is_rejected() {
    let s = TestServer::start();
    let (status, body) = api_post(
        &s,
        &s.http,
        "/api/v1/service-accounts",
        json!({"name": "ci", "expires_in_secs": 86_400}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let api_key = body["api_key"].as_str().unwrap().to_string();
    let key_id = body["key_id"].as_str().unwrap().to_string();
    assert!(api_key.starts_with(&format!("alk_{key_id}_")));
    grant(&s, "ci", "builder", "dev/team/*").await;
    let basic = client_as("ci", &api_key);
    assert_eq!(push_image_as(&s, &basic, "dev/team/app", "1").await, 201);
    let token = fetch_token(&s, &basic, &["repository:dev/team/app:pull,push"]).await;
    let with_token = client_bearer(token["token"].as_str().unwrap());
    assert_eq!(
        push_blob_as(&s, &with_token, "dev/team/app", &unique_content("ok"))
            .await
            .status(),
        201
    );

    keep_within_one_minute(3).await;
    let (status, body) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/credentials/{key_id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entries = assert_push_unauthorized(&s, &basic, "dev/team/app").await;
    assert_one_failure(&entries, "ci", "revoked");
    // Tokens obtained with the key die with it, and it gets no new ones.
    assert_push_unauthorized(&s, &with_token, "dev/team/app").await;
    let response = basic
        .get(s.url("/auth/token?service=airlock&scope=repository:dev/team/app:pull"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(failures_of(&s, "ci").await, 1);
    // Revoking twice is a conflict, not a second record.
    let (status, body) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/credentials/{key_id}/revoke"),
        json!({}),
    )
    .await;
    api_error(status, &body, 409, "CONFLICT");
}

#[tokio::test]
async fn disabled_user_is_rejected() {
    let s = TestServer::start();
    let dan = add_user(&s, "dan").await;
    grant(&s, "dan", "developer", "dev").await;
    let token = fetch_token(&s, &dan, &["repository:dev/team/app:pull,push"]).await;
    let (status, body) = api_post(&s, &s.http, "/api/v1/users/dan/disable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let entries = assert_push_unauthorized(&s, &dan, "dev/team/app").await;
    assert_one_failure(&entries, "dan", "disabled");
    assert_push_unauthorized(
        &s,
        &client_bearer(token["token"].as_str().unwrap()),
        "dev/team/app",
    )
    .await;
    let response = dan
        .get(s.url("/auth/token?service=airlock&scope=repository:dev/team/app:pull"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, body) = api_get(&s, &dan, "/api/v1/whoami").await;
    api_error(status, &body, 401, "UNAUTHORIZED");
    let (_, users) = api_get(&s, &s.http, "/api/v1/users").await;
    let listed = users["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "dan")
        .unwrap()
        .clone();
    assert_eq!(listed["disabled"], true);
    // An admin cannot lock itself out.
    let (status, body) = api_post(&s, &s.http, "/api/v1/users/admin/disable", json!({})).await;
    api_error(status, &body, 400, "BAD_REQUEST");
}

#[tokio::test]
async fn token_issued_before_a_role_change_is_rejected() {
    let s = TestServer::start();
    let dev = add_user(&s, "dev").await;
    grant(&s, "dev", "developer", "*").await;
    let token = fetch_token(&s, &dev, &["repository:dev/team/app:pull,push"]).await;
    let with_token = client_bearer(token["token"].as_str().unwrap());
    assert_eq!(
        push_image_as(&s, &with_token, "dev/team/app", "1").await,
        201
    );

    let (status, body) = api_post(
        &s,
        &s.http,
        "/api/v1/roles/revoke",
        json!({"principal": "dev", "role": "developer", "scope": "*"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entries = assert_push_unauthorized(&s, &with_token, "dev/team/app").await;
    assert_one_failure(&entries, "dev", "issued before a change");
    let pull = with_token
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 401);
    // A new token authenticates but carries nothing: dev may no longer push.
    let token = fetch_token(&s, &dev, &["repository:dev/team/app:pull,push"]).await;
    assert_eq!(
        claims_of(token["token"].as_str().unwrap())["access"],
        json!([])
    );
    let content = unique_content("after revoke");
    let push = push_blob_as(
        &s,
        &client_bearer(token["token"].as_str().unwrap()),
        "dev/team/app",
        &content,
    )
    .await;
    assert_eq!(push.status(), 403);
    assert_eq!(error_code(push).await, "DENIED");
    assert!(!blob_exists(&s, "dev/team/app", &content).await);

    // Granting a role only adds rights: older tokens stay valid (the epoch moves only when
    // rights narrow) but carry no more than they were issued with, so the client is asked to
    // fetch a token for the scope, and that one carries the new right.
    let token = fetch_token(&s, &dev, &["repository:dev/team/app:pull"]).await;
    grant(&s, "dev", "reader", "dev").await;
    let pull = client_bearer(token["token"].as_str().unwrap())
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 401);
    assert!(
        pull.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope"),
        "{:?}",
        pull.headers()
    );
    let token = fetch_token(&s, &dev, &["repository:dev/team/app:pull"]).await;
    let pull = client_bearer(token["token"].as_str().unwrap())
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 200);
}

#[tokio::test]
async fn expired_jit_grant_gives_no_access() {
    let s = TestServer::start();
    let jit = add_user(&s, "jit").await;
    let (status, body) = api_post(
        &s,
        &jit,
        "/api/v1/access-requests",
        json!({"role": "developer", "scope": "dev/team/app", "duration_secs": 2, "reason": "INC-1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (status, body) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/access-requests/{id}/grant"),
        json!({}),
    )
    .await;
    let granted_at = Instant::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "granted");
    assert_eq!(body["decided_by"], "admin");

    let token = fetch_token(&s, &jit, &["repository:dev/team/app:pull,push"]).await;
    let with_token = client_bearer(token["token"].as_str().unwrap());
    assert_eq!(
        push_blob_as(&s, &jit, "dev/team/app", &unique_content("during"))
            .await
            .status(),
        201
    );
    assert_eq!(
        push_blob_as(&s, &with_token, "dev/team/app", &unique_content("during"))
            .await
            .status(),
        201
    );
    assert!(
        granted_at.elapsed() < Duration::from_secs(2),
        "the test was too slow to use the grant"
    );

    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(granted_at.elapsed())).await;
    let content = unique_content("after");
    let push = push_blob_as(&s, &jit, "dev/team/app", &content).await;
    assert_eq!(push.status(), 403);
    assert_eq!(error_code(push).await, "DENIED");
    assert!(!blob_exists(&s, "dev/team/app", &content).await);
    // A token obtained while the grant lasted must not outlive it.
    let content = unique_content("after, by token");
    let push = push_blob_as(&s, &with_token, "dev/team/app", &content).await;
    let status = push.status().as_u16();
    assert!(
        status == 401 || status == 403,
        "a token from an expired just-in-time grant still pushes: {status}"
    );
    assert!(!blob_exists(&s, "dev/team/app", &content).await);
    let (_, roles) = api_get(&s, &s.http, "/api/v1/roles?principal=jit").await;
    assert_eq!(roles["bindings"], json!([]));
}

#[tokio::test]
async fn nobody_decides_their_own_access_request() {
    let s = TestServer::start();
    let ada = add_user(&s, "ada").await;
    grant(&s, "ada", "access-admin", "*").await;
    let (status, body) = api_post(
        &s,
        &ada,
        "/api/v1/access-requests",
        json!({"role": "deployer", "scope": "prod", "duration_secs": 3600, "reason": "INC-2"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let before = s.audit_entries().await.len();
    for verb in ["grant", "deny"] {
        let (status, body) = api_post(
            &s,
            &ada,
            &format!("/api/v1/access-requests/{id}/{verb}"),
            json!({}),
        )
        .await;
        let message = api_error(status, &body, 403, "FORBIDDEN");
        assert!(message.contains("own access request"), "{message}");
    }
    assert_eq!(s.audit_entries().await.len(), before);
    let (_, list) = api_get(&s, &s.http, "/api/v1/access-requests").await;
    assert_eq!(list["requests"][0]["status"], "pending");
    let (_, roles) = api_get(&s, &s.http, "/api/v1/roles?principal=ada").await;
    assert_eq!(roles["bindings"].as_array().unwrap().len(), 1);
    let pull = ada
        .get(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 403);
    // Someone else may.
    let (status, body) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/access-requests/{id}/grant"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pull = ada
        .get(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 404);
    // A decided request stays decided.
    let (status, body) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/access-requests/{id}/deny"),
        json!({}),
    )
    .await;
    api_error(status, &body, 409, "CONFLICT");
}

#[tokio::test]
async fn nobody_grants_themselves_a_role() {
    let s = TestServer::start();
    let ada = add_user(&s, "ada").await;
    grant(&s, "ada", "access-admin", "*").await;
    let before = s.audit_entries().await.len();
    for (client, name) in [(&s.http, "admin"), (&ada, "ada")] {
        for role in ["reader", "break-glass"] {
            let (status, body) = api_post(
                &s,
                client,
                "/api/v1/roles/grant",
                json!({"principal": name, "role": role, "scope": "*"}),
            )
            .await;
            let message = api_error(status, &body, 403, "FORBIDDEN");
            assert!(message.contains("grants themselves"), "{message}");
        }
    }
    assert_eq!(s.audit_entries().await.len(), before);
    let (_, roles) = api_get(&s, &s.http, "/api/v1/roles?principal=admin").await;
    let held: Vec<&str> = roles["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["access-admin", "developer", "auditor"]);
    // Granting each other is fine; without access-admin nobody grants anything.
    let (status, _) = api_post(
        &s,
        &ada,
        "/api/v1/roles/grant",
        json!({"principal": "admin", "role": "reader", "scope": "dev"}),
    )
    .await;
    assert_eq!(status, 200);
    let bob = add_user(&s, "bob").await;
    let (status, body) = api_post(
        &s,
        &bob,
        "/api/v1/roles/grant",
        json!({"principal": "ada", "role": "reader", "scope": "dev"}),
    )
    .await;
    api_error(status, &body, 403, "FORBIDDEN");
}

#[tokio::test]
async fn key_admin_and_approver_are_mutually_exclusive() {
    let s = TestServer::start();
    add_user(&s, "keys").await;
    add_user(&s, "appr").await;
    grant(&s, "keys", "key-admin", "*").await;
    grant(&s, "appr", "approver", "prod").await;
    let before = s.audit_entries().await.len();
    for (name, role, scope) in [("keys", "approver", "prod"), ("appr", "key-admin", "*")] {
        let (status, body) = api_post(
            &s,
            &s.http,
            "/api/v1/roles/grant",
            json!({"principal": name, "role": role, "scope": scope}),
        )
        .await;
        let message = api_error(status, &body, 403, "FORBIDDEN");
        assert!(
            message.contains("key-admin")
                && message.contains("approver")
                && message.contains("mutually exclusive"),
            "{message}"
        );
    }
    assert_eq!(s.audit_entries().await.len(), before);
    // Not through a just-in-time request either.
    let keys = client_as("keys", PASSWORD);
    let (status, body) = api_post(
        &s,
        &keys,
        "/api/v1/access-requests",
        json!({"role": "approver", "scope": "prod", "duration_secs": 600, "reason": "CHG-3"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (status, body) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/access-requests/{id}/grant"),
        json!({}),
    )
    .await;
    api_error(status, &body, 403, "FORBIDDEN");
    let (_, roles) = api_get(&s, &s.http, "/api/v1/roles?principal=keys").await;
    assert_eq!(
        roles["bindings"],
        json!([{"principal": "keys", "role": "key-admin", "scope": "*", "expires": null}])
    );
}

// ---- OIDC workload identity -------------------------------------------------------------------

const OIDC_ISSUER: &str = "https://ci.example";
const OIDC_AUDIENCE: &str = "airlock-test";

fn es256_token(key: &p256::ecdsa::SigningKey, kid: &str, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer as _;
    let header = b64(json!({"alg": "ES256", "typ": "JWT", "kid": kid})
        .to_string()
        .as_bytes());
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn ci_claims() -> Value {
    let now = now_secs();
    json!({
        "iss": OIDC_ISSUER, "aud": OIDC_AUDIENCE, "sub": "repo:team/app:ref:refs/heads/main",
        "repository": "team/app", "ref": "refs/heads/main",
        "iat": now - 5, "nbf": now - 5, "exp": now + 300, "jti": "ci-run-1",
    })
}

async fn exchange(s: &TestServer, id_token: &str, scopes: &[&str]) -> reqwest::Response {
    s.anonymous
        .post(s.url("/auth/oidc"))
        .json(&json!({"id_token": id_token, "scope": scopes}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn oidc_tokens_from_the_trusted_workflow_push_and_others_are_refused() {
    let config_dir = tempfile::tempdir().unwrap();
    let key =
        p256::ecdsa::SigningKey::from_slice(&Sha256::digest(b"airlock oidc test key")).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "ci-1",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    }]});
    let jwks_file = config_dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let config_file = config_dir.path().join("airlock.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[access.oidc]]\nname = \"ci-main\"\nissuer = \"{OIDC_ISSUER}\"\naudience = \"{OIDC_AUDIENCE}\"\n\
             jwks_file = {:?}\nclaims = {{ repository = \"team/app\", ref = \"refs/heads/main\" }}\n\
             repositories = [\"dev/team/*\"]\n",
            jwks_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let s = TestServer::start_with_env(&[("AIRLOCK_CONFIG", config_file.to_str().unwrap())]);

    let scopes = [
        "repository:dev/team/app:pull,push",
        "repository:dev/other/app:pull,push",
        "repository:prod/team/app:pull",
    ];
    let response = exchange(&s, &es256_token(&key, "ci-1", &ci_claims()), &scopes).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "oidc/ci-main");
    assert_eq!(claims["auth"], "oidc");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "dev/team/app", "actions": ["pull", "push"]}])
    );
    let with_token = client_bearer(token);
    assert_eq!(
        push_image_as(&s, &with_token, "dev/team/app", "ci").await,
        201
    );
    assert!(tag_exists(&s, "dev/team/app", "ci").await);
    let content = unique_content("oidc outside its repositories");
    assert_eq!(
        push_blob_as(&s, &with_token, "dev/other/app", &content)
            .await
            .status(),
        403
    );
    assert!(!blob_exists(&s, "dev/other/app", &content).await);

    // Refused: an issuer without a trust rule, a claim that does not match, a key not in the
    // JWKS. Each gets 401 and nothing else happens.
    let untrusted = es256_token(&key, "ci-1", &{
        let mut c = ci_claims();
        c["iss"] = json!("https://evil.example");
        c
    });
    let other_branch = es256_token(&key, "ci-1", &{
        let mut c = ci_claims();
        c["ref"] = json!("refs/heads/feature");
        c
    });
    let stranger = p256::ecdsa::SigningKey::from_slice(&Sha256::digest(b"stranger")).unwrap();
    let unknown_key = es256_token(&stranger, "ci-1", &ci_claims());
    keep_within_one_minute(3).await;
    let before = s.audit_entries().await.len();
    for (id_token, reason) in [
        (&untrusted, "untrusted issuer"),
        (&other_branch, "does not match"),
        (&unknown_key, "signature is invalid"),
    ] {
        let response = exchange(&s, id_token, &scopes).await;
        assert_eq!(response.status(), 401, "{reason}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{body}"
        );
    }
    let new = s.audit_entries().await[before..].to_vec();
    assert_one_failure(&new[..1], "oidc", "untrusted issuer");
    assert_one_failure(&new[1..], "oidc/ci-main", "does not match");
    // The refused tokens got nothing that pushes.
    assert_push_unauthorized(&s, &client_bearer(&other_branch), "dev/team/app").await;
}

// ---- 3. immediate revocation ------------------------------------------------------------------

#[tokio::test]
async fn disabling_a_user_revokes_its_token_on_the_next_request() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"revocation"]).await;
    let dev = add_user(&s, "dev").await;
    grant(&s, "dev", "developer", "*").await;
    let token = fetch_token(&s, &dev, &["repository:dev/team/app:pull,push"]).await;
    let with_token = client_bearer(token["token"].as_str().unwrap());
    let tags = with_token
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);
    keep_within_one_minute(3).await;
    let (status, _) = api_post(&s, &s.http, "/api/v1/users/dev/disable", json!({})).await;
    assert_eq!(status, 200);
    let tags = with_token
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 401);
    assert_eq!(error_code(tags).await, "UNAUTHORIZED");
    assert_push_unauthorized(&s, &with_token, "dev/team/app").await;
    assert_eq!(failures_of(&s, "dev").await, 1);
}

// ---- 4. rate limiting -------------------------------------------------------------------------

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited() {
    let s = TestServer::start();
    add_user(&s, "victim").await;
    // Failures are counted per minute: keep the attempts inside one.
    keep_within_one_minute(10).await;
    let token_url = s.url("/auth/token?service=airlock&scope=repository:dev/team/app:pull");
    let wrong = client_as("victim", "not-the-password-0");
    for attempt in 1..=10 {
        let response = wrong.get(&token_url).send().await.unwrap();
        assert_eq!(response.status(), 401, "attempt {attempt}");
        assert_eq!(error_code(response).await, "UNAUTHORIZED");
    }
    let response = wrong.get(&token_url).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(error_code(response).await, "TOOMANYREQUESTS");
    // Even the right password is refused until the minute is over, on every entry point.
    let right = client_as("victim", PASSWORD);
    let response = right.get(&token_url).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(error_code(response).await, "TOOMANYREQUESTS");
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "victim"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let response = right
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(error_code(response).await, "TOOMANYREQUESTS");
    // One audit entry for the principal in that minute, however many attempts.
    assert_eq!(failures_of(&s, "victim").await, 1);
}

// ---- 5. the CLI -------------------------------------------------------------------------------

#[tokio::test]
async fn cli_manages_users_service_accounts_and_jit_access() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"cli"]).await;

    let (code, out, err) = s.cli(&["users", "add", "carol", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["name"], "carol");
    let carol_password = created["password"].as_str().unwrap().to_string();
    let (status, me) = api_get(&s, &client_as("carol", &carol_password), "/api/v1/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "carol");
    assert_eq!(me["roles"], json!([]));

    let (code, out, err) = s.cli(&[
        "service-accounts",
        "add",
        "ci",
        "--expires",
        "30d",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_string();
    assert!(api_key.starts_with("alk_"));
    let (code, out, err) = s.cli(&["roles", "grant", "ci", "reader", "--scope", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    let ci = client_as("ci", &api_key);
    let tags = ci
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);
    let tags: Value = tags.json().await.unwrap();
    assert_eq!(tags["tags"], json!(["1.0"]));
    let manifest = ci
        .get(s.url("/v2/dev/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let push = ci
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 403);

    // Keys must expire within access.max_api_key_days (365), and a refusal creates nothing.
    let (code, out, err) = s.cli(&["service-accounts", "add", "ci2", "--expires", "400d"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("365 days"), "{err}");
    let (_, users) = api_get(&s, &s.http, "/api/v1/users").await;
    assert!(
        !users["principals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "ci2"),
        "{users}"
    );

    // A second access-admin asks for prod access; only someone else may grant it.
    let (code, out, err) = s.cli(&["users", "add", "dora", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let dora_password = serde_json::from_str::<Value>(&out).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, err) = s.cli(&["roles", "grant", "dora", "access-admin", "--scope", "*"]);
    assert_eq!(code, 0, "{out}{err}");
    let dora_home = tempfile::tempdir().unwrap();
    let (code, out, err) = s.cli_as(
        dora_home.path(),
        &["login", &s.base, "-u", "dora", "--password-stdin"],
        Some(&dora_password),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli_as(
        dora_home.path(),
        &[
            "access",
            "request",
            "deployer",
            "--scope",
            "prod/team/app",
            "--for",
            "1h",
            "--reason",
            "INC-42",
            "--output",
            "json",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let request: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(request["status"], "pending");
    let id = request["id"].as_i64().unwrap().to_string();
    let (code, out, err) = s.cli_as(dora_home.path(), &["access", "grant", &id], None);
    assert_eq!(code, 1, "self-approval must be refused: {out}{err}");
    assert!(err.contains("own access request"), "{err}");

    let (code, out, err) = s.cli(&["access", "grant", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("dora holds deployer in prod/team/app"),
        "{out}"
    );
    let (code, out, err) = s.cli(&["roles", "list", "dora"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.contains("deployer"))
        .unwrap_or_else(|| panic!("no deployer binding in {out}"));
    assert!(
        line.contains("dora") && line.contains("prod/team/app") && line.contains("until"),
        "{line}"
    );
    let (code, out, err) = s.cli(&["access", "list", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["requests"][0]["status"], "granted");
    assert_eq!(list["requests"][0]["decided_by"], "admin");
    assert_eq!(list["requests"][0]["reason"], "INC-42");
    assert_eq!(list["requests"][0]["duration_secs"], 3600);
    let pull = client_as("dora", &dora_password)
        .get(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 404);
    assert_eq!(error_code(pull).await, "MANIFEST_UNKNOWN");

    // The grant can be ended early: the binding disappears at once and the request says so.
    let (code, out, err) = s.cli(&["access", "revoke", &id]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli(&["roles", "list", "dora"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("deployer"), "{out}");
    let (_, out, _) = s.cli(&["access", "list", "--output", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["requests"][0]["status"], "revoked");
    let (code, _, _) = s.cli(&["access", "revoke", &id]);
    assert_eq!(code, 1, "revoking twice is a conflict");
    let pull = client_as("dora", &dora_password)
        .get(s.url("/v2/prod/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        pull.status(),
        403,
        "the revoked grant must end access at once"
    );
}

// ---- 6. the audit trail -----------------------------------------------------------------------

#[tokio::test]
async fn access_changes_are_audited_with_their_actor() {
    let s = TestServer::start();
    let before = s.audit_entries().await.len();
    let erin = add_user(&s, "erin").await;
    grant(&s, "erin", "developer", "dev").await;
    let (status, _) = api_post(
        &s,
        &s.http,
        "/api/v1/roles/revoke",
        json!({"principal": "erin", "role": "developer", "scope": "dev"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, robot) = api_post(
        &s,
        &s.http,
        "/api/v1/service-accounts",
        json!({"name": "robot", "expires_in_secs": 3600}),
    )
    .await;
    assert_eq!(status, 201);
    let key_id = robot["key_id"].as_str().unwrap().to_string();
    let (status, _) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/credentials/{key_id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let mut ids = Vec::new();
    for reason in ["CHG-7", "CHG-8"] {
        let (status, body) = api_post(
            &s,
            &erin,
            "/api/v1/access-requests",
            json!({"role": "reader", "scope": "prod/team/app", "duration_secs": 600, "reason": reason}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    let (status, _) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/access-requests/{}/grant", ids[0]),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = api_post(
        &s,
        &s.http,
        &format!("/api/v1/access-requests/{}/deny", ids[1]),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = api_post(&s, &s.http, "/api/v1/users/erin/disable", json!({})).await;
    assert_eq!(status, 200);

    let entries = s.audit_entries().await[before..].to_vec();
    let summary: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["actor"]["principal"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("principal.created", "admin"),
        ("credential.created", "admin"),
        ("role.granted", "admin"),
        ("role.revoked", "admin"),
        ("principal.created", "admin"),
        ("credential.created", "admin"),
        ("credential.revoked", "admin"),
        ("access.requested", "erin"),
        ("access.requested", "erin"),
        ("access.decided", "admin"),
        ("role.granted", "admin"),
        ("access.decided", "admin"),
        ("principal.disabled", "admin"),
    ]
    .map(|(t, a)| (t.to_string(), a.to_string()));
    assert_eq!(summary, expected);
    for entry in &entries {
        assert_eq!(entry["outcome"], "success", "{entry}");
        assert_eq!(entry["actor"]["auth_method"], "password", "{entry}");
        assert!(
            entry["actor"]["source"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{entry}"
        );
    }
    let subject = |i: usize| entries[i]["subject"].clone();
    assert_eq!(subject(0), json!({"kind": "principal", "name": "erin"}));
    assert_eq!(entries[1]["details"]["credential"], "password");
    assert_eq!(entries[2]["details"]["role"], "developer");
    assert_eq!(entries[2]["details"]["scope"], "dev");
    assert_eq!(entries[2]["details"]["expires"], Value::Null);
    assert_eq!(
        entries[3]["details"],
        json!({"role": "developer", "scope": "dev"})
    );
    assert_eq!(subject(4)["name"], "robot");
    assert_eq!(entries[4]["details"]["kind"], "service");
    assert_eq!(entries[5]["details"]["credential"], "api_key");
    assert_eq!(entries[5]["details"]["id"], key_id.as_str());
    assert!(entries[5]["details"]["expires"].is_string());
    assert_eq!(subject(6), json!({"kind": "principal", "name": "robot"}));
    assert_eq!(entries[6]["details"]["id"], key_id.as_str());
    assert_eq!(subject(7), json!({"kind": "access_request", "id": ids[0]}));
    assert_eq!(
        entries[7]["details"],
        json!({"principal": "erin", "role": "reader", "scope": "prod/team/app", "duration_secs": 600, "reason": "CHG-7"})
    );
    assert_eq!(subject(9), json!({"kind": "access_request", "id": ids[0]}));
    assert_eq!(
        entries[9]["details"],
        json!({"principal": "erin", "decision": "granted"})
    );
    assert_eq!(subject(10)["name"], "erin");
    assert_eq!(entries[10]["details"]["access_request"], ids[0]);
    assert!(entries[10]["details"]["expires"].is_string());
    assert_eq!(subject(11), json!({"kind": "access_request", "id": ids[1]}));
    assert_eq!(entries[11]["details"]["decision"], "denied");
    assert_eq!(subject(12), json!({"kind": "principal", "name": "erin"}));

    // Auditing needs the auditor or access-admin role.
    let (status, body) = api_get(
        &s,
        &add_user(&s, "nosy").await,
        "/api/v1/audit/entries?limit=10",
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_refused_user_creation_leaves_nothing_behind() {
    let s = TestServer::start();
    let before = s.audit_entries().await.len();
    let (status, body) = api_post(
        &s,
        &s.http,
        "/api/v1/users",
        json!({"name": "shorty", "password": "short"}),
    )
    .await;
    api_error(status, &body, 400, "PASSWORD_POLICY");
    let (status, body) = api_post(&s, &s.http, "/api/v1/users", json!({"name": "Bad Name"})).await;
    api_error(status, &body, 400, "BAD_REQUEST");
    let (_, users) = api_get(&s, &s.http, "/api/v1/users").await;
    let names: Vec<&str> = users["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin"]);
    assert_eq!(s.audit_entries().await.len(), before);
    // The name is still free.
    add_user(&s, "shorty").await;
}
