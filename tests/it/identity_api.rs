//! The identity and server-key API as a contract: scopes on stages that are not configured are
//! refused naming the configured ones, malformed requests answer the documented error body with
//! a remediation true for the case, the token endpoint keeps the registry error format, and the
//! OpenAPI document lists every identity and server-key route.

use crate::common;

use common::TestServer;
use serde_json::{Value, json};

/// POSTs JSON as `admin`; the status and the JSON body (`null` when the body is not JSON).
async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = s.http.post(s.url(path)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn error_text(body: &Value) -> (String, String, String) {
    let text = |field: &str| {
        body["error"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (text("code"), text("message"), text("remediation"))
}

#[tokio::test]
async fn granting_a_role_on_a_stage_that_does_not_exist_is_refused_naming_the_stages() {
    let s = TestServer::start();
    let (status, _) = post(
        &s,
        "/api/v1/users",
        json!({"name": "dana", "password": "correct-horse-battery-9"}),
    )
    .await;
    assert_eq!(status, 201);

    for scope in ["prdo", "prdo/team/*", "stagin/app"] {
        let (status, body) = post(
            &s,
            "/api/v1/roles/grant",
            json!({"principal": "dana", "role": "reader", "scope": scope}),
        )
        .await;
        assert_eq!(status, 400, "{scope}: {body}");
        let (code, message, remediation) = error_text(&body);
        assert_eq!(code, "STAGE_UNKNOWN", "{body}");
        let stage = scope.split('/').next().unwrap();
        assert!(message.contains(&format!("{stage:?}")), "{message}");
        assert!(message.contains("dev, staging, prod"), "{message}");
        assert!(remediation.contains("configured stage"), "{remediation}");
    }

    // Nothing was bound: dana holds no role.
    let roles: Value = s
        .http
        .get(s.url("/api/v1/roles?principal=dana"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(roles["bindings"], json!([]), "{roles}");

    // A configured stage is granted as before.
    let (status, body) = post(
        &s,
        "/api/v1/roles/grant",
        json!({"principal": "dana", "role": "reader", "scope": "prod/team/*"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The CLI shows the refusal and exits 2 (a usage error: the scope is mistyped).
    let (code, out, err) = s.cli(&["roles", "grant", "dana", "reader", "--scope", "prdo"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("STAGE_UNKNOWN") && err.contains("dev, staging, prod"),
        "{err}"
    );
}

#[tokio::test]
async fn an_access_request_on_a_stage_that_does_not_exist_is_refused_naming_the_stages() {
    let s = TestServer::start();
    let (status, body) = post(
        &s,
        "/api/v1/access-requests",
        json!({"role": "promoter", "scope": "prdo", "duration_secs": 600, "reason": "INC-1"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (code, message, _) = error_text(&body);
    assert_eq!(code, "STAGE_UNKNOWN");
    assert!(message.contains("dev, staging, prod"), "{message}");

    let list: Value = s
        .http
        .get(s.url("/api/v1/access-requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["requests"], json!([]), "nothing was filed: {list}");

    let (status, _) = post(
        &s,
        "/api/v1/access-requests",
        json!({"role": "promoter", "scope": "prod", "duration_secs": 600, "reason": "INC-1"}),
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn removing_a_role_is_not_refused_for_its_stage() {
    // A binding on a stage taken out of the configuration must stay removable: revoke does not
    // check the stage, it answers that the binding does not exist.
    let s = TestServer::start();
    let (status, body) = post(
        &s,
        "/api/v1/roles/revoke",
        json!({"principal": "admin", "role": "reader", "scope": "qa"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_text(&body).0, "NOT_FOUND");
}

#[tokio::test]
async fn malformed_requests_answer_the_api_error_body() {
    let s = TestServer::start();

    // Not JSON at all.
    let response = s
        .http
        .post(s.url("/api/v1/roles/grant"))
        .header("content-type", "text/plain")
        .body("principal=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.expect("a JSON error body");
    let (code, _, remediation) = error_text(&body);
    assert_eq!(code, "UNSUPPORTED_MEDIA_TYPE");
    assert!(remediation.contains("application/json"), "{remediation}");

    // JSON of the wrong shape: 400, as in every other area.
    let (status, body) = post(&s, "/api/v1/roles/grant", json!({"principal": "admin"})).await;
    assert_eq!(status, 400, "{body}");
    let (code, message, remediation) = error_text(&body);
    assert_eq!(code, "BAD_REQUEST");
    assert!(message.contains("role"), "{message}");
    assert!(remediation.contains("openapi.json"), "{remediation}");

    // An unknown field where the request refuses them.
    let (status, body) = post(
        &s,
        "/api/v1/service-accounts/nobody/keys",
        json!({"name": "k", "expire_days": 3}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_text(&body).0, "BAD_REQUEST");

    // A path parameter of the wrong type.
    let (status, body) = post(&s, "/api/v1/access-requests/first/grant", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (code, _, remediation) = error_text(&body);
    assert_eq!(code, "BAD_REQUEST");
    assert!(remediation.contains("number"), "{remediation}");
}

#[tokio::test]
async fn refusals_name_the_fix_for_their_case() {
    let s = TestServer::start();

    let (status, body) = post(&s, "/api/v1/users/admin/disable", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (_, message, remediation) = error_text(&body);
    assert!(message.contains("cannot disable yourself"), "{message}");
    assert!(
        remediation.contains("another access-admin"),
        "{remediation}"
    );

    let (status, body) = post(
        &s,
        "/api/v1/service-accounts",
        json!({"name": "ci", "expires_in_secs": 3600}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&s, "/api/v1/users/ci/reset-password", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (_, message, remediation) = error_text(&body);
    assert!(message.contains("ci is a service account"), "{message}");
    assert!(
        remediation.contains("airlock service-accounts keys add ci"),
        "{remediation}"
    );

    let (status, body) = post(
        &s,
        "/api/v1/service-accounts/admin/keys",
        json!({"name": "k"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_text(&body).2.contains("airlock service-accounts add"),
        "{body}"
    );

    let (status, body) = post(
        &s,
        "/api/v1/access-requests",
        json!({"role": "promoter", "scope": "prod", "duration_secs": 0, "reason": "INC-1"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).2.contains("--for"), "{body}");

    let (status, body) = post(
        &s,
        "/api/v1/access-requests",
        json!({"role": "promoter", "scope": "prod", "duration_secs": 60, "reason": " "}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).2.contains("--reason"), "{body}");

    let (status, body) = post(&s, "/api/v1/users", json!({"name": "Bad Name"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).2.contains("lowercase"), "{body}");
}

#[tokio::test]
async fn the_token_endpoint_answers_a_body_that_is_not_a_form_in_the_registry_format() {
    let s = TestServer::start();
    let response = s
        .anonymous
        .post(s.url("/auth/token"))
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("application/x-www-form-urlencoded"),
        "{body}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_identity_and_server_key_route() {
    let s = TestServer::start();
    let doc: Value = s
        .anonymous
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = [
        ("/auth/token", "get"),
        ("/auth/token", "post"),
        ("/auth/oidc", "post"),
        ("/api/v1/whoami", "get"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{name}/disable", "post"),
        ("/api/v1/users/{name}/enable", "post"),
        ("/api/v1/users/{name}/password", "post"),
        ("/api/v1/users/{name}/reset-password", "post"),
        ("/api/v1/service-accounts", "post"),
        ("/api/v1/service-accounts/{name}/keys", "get"),
        ("/api/v1/service-accounts/{name}/keys", "post"),
        ("/api/v1/service-accounts/{name}/keys/{key}/revoke", "post"),
        ("/api/v1/credentials/{id}/revoke", "post"),
        ("/api/v1/roles", "get"),
        ("/api/v1/roles/grant", "post"),
        ("/api/v1/roles/revoke", "post"),
        ("/api/v1/access-requests", "get"),
        ("/api/v1/access-requests", "post"),
        ("/api/v1/access-requests/{id}/grant", "post"),
        ("/api/v1/access-requests/{id}/deny", "post"),
        ("/api/v1/access-requests/{id}/revoke", "post"),
        ("/api/v1/server-keys", "get"),
        ("/api/v1/server-keys/{key}/rotate", "post"),
    ];
    for (path, method) in routes {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{method} {path} documents no success"
        );
        assert!(
            responses.keys().any(|code| code.starts_with('4')),
            "{method} {path} documents no refusal"
        );
    }
    // The token response is documented as the Docker token format.
    let token = &doc["components"]["schemas"]["TokenResponse"]["properties"];
    for field in [
        "token",
        "access_token",
        "expires_in",
        "issued_at",
        "refresh_token",
    ] {
        assert!(token[field].is_object(), "TokenResponse lacks {field}");
    }
}

#[tokio::test]
async fn server_key_rotation_refusals_name_the_fix() {
    let s = TestServer::start();
    let password = "correct-horse-battery-9";
    let (status, _) = post(
        &s,
        "/api/v1/users",
        json!({"name": "keys", "password": password}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = post(
        &s,
        "/api/v1/roles/grant",
        json!({"principal": "keys", "role": "key-admin", "scope": "*"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let keys = common::client_as("keys", password);
    let rotate = |key: &'static str, body: Value| {
        let keys = keys.clone();
        let url = s.url(&format!("/api/v1/server-keys/{key}/rotate"));
        async move {
            let response = keys.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, body) = rotate("token", json!({"overlap_secs": 1})).await;
    assert_eq!(status, 400, "{body}");
    let (_, message, remediation) = error_text(&body);
    assert!(message.contains("access-token lifetime"), "{message}");
    assert!(
        remediation.contains("--overlap") && remediation.contains("or more"),
        "{remediation}"
    );

    let (status, body) = rotate("attestation", json!({"overlap_secs": 60})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).2.contains("drop --overlap"), "{body}");

    let (status, body) = rotate("tokn", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (_, message, remediation) = error_text(&body);
    assert!(message.contains("\"tokn\""), "{message}");
    assert!(
        remediation.contains("airlock keys rotate-server token"),
        "{remediation}"
    );

    // The admin (no key-admin) is refused with the request that would allow it.
    let (status, body) = post(&s, "/api/v1/server-keys/token/rotate", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        error_text(&body)
            .2
            .contains("airlock access request key-admin"),
        "{body}"
    );
}

#[tokio::test]
async fn separation_of_duties_refusals_name_who_can_do_it() {
    let s = TestServer::start();
    let (status, body) = post(
        &s,
        "/api/v1/roles/grant",
        json!({"principal": "admin", "role": "promoter", "scope": "prod"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        error_text(&body)
            .2
            .contains("another access-admin grants it"),
        "{body}"
    );

    let (status, filed) = post(
        &s,
        "/api/v1/access-requests",
        json!({"role": "promoter", "scope": "prod", "duration_secs": 600, "reason": "INC-7"}),
    )
    .await;
    assert_eq!(status, 201, "{filed}");
    let id = filed["id"].as_i64().unwrap();
    let (status, body) = post(
        &s,
        &format!("/api/v1/access-requests/{id}/grant"),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        error_text(&body).2.contains("airlock access grant|deny"),
        "{body}"
    );

    let (status, body) = post(&s, "/api/v1/users/admin/reset-password", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        error_text(&body)
            .2
            .contains("airlock users passwd -u admin"),
        "{body}"
    );
}
