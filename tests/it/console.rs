//! The web console over HTTP: sign-in and sign-out with CSRF tokens, the session cookie's
//! attributes, the security headers on every answer, the stages board under the API's read
//! rules, and sessions that end when the signed-in person's access changes.

use crate::common;

use common::console::{assert_secured, browser, cookie_value, get, set_cookie};
use common::{ADMIN_PASSWORD, TestServer, add_user, post_json};
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::json;

/// The value of the hidden `csrf_token` field in a page.
fn csrf_field(page: &str) -> String {
    let at = page
        .find("name=\"csrf_token\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + "name=\"csrf_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A signed-in browser: its session cookie and the session's CSRF token.
struct Signed {
    cookie: String,
    csrf: String,
}

/// Signs `user` in through the form, as a browser does.
async fn sign_in(s: &TestServer, user: &str, password: &str) -> Signed {
    let client = browser();
    let form = client.get(s.url("/console/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert_secured(form.headers(), "the sign-in page");
    let login_cookie = set_cookie(form.headers(), "airlock_login_csrf").expect("a CSRF cookie");
    assert!(login_cookie.contains("HttpOnly"), "{login_cookie}");
    assert!(login_cookie.contains("SameSite=Strict"), "{login_cookie}");
    let csrf = csrf_field(&form.text().await.unwrap());
    assert_eq!(cookie_value(&login_cookie), csrf);
    let signed = client
        .post(s.url("/console/login"))
        .header("cookie", format!("airlock_login_csrf={csrf}"))
        .form(&[
            ("username", user),
            ("password", password),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "{}", signed.text().await.unwrap());
    assert_eq!(signed.headers()[LOCATION], "/console");
    let session = set_cookie(signed.headers(), "airlock_session").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attribute), "{session}");
    }
    // Plaintext HTTP on loopback: not `Secure` (the browser would not send it back).
    assert!(!session.contains("Secure"), "{session}");
    let cookie = cookie_value(&session);
    let board = get(s, &cookie, "/console").await;
    assert_eq!(board.0, 200, "{}", board.1);
    Signed {
        csrf: csrf_field(&board.1),
        cookie,
    }
}

/// Signs out with the form, carrying `csrf`: (status, body).
async fn sign_out(s: &TestServer, cookie: &str, csrf: &str) -> (u16, String) {
    let response = browser()
        .post(s.url("/console/logout"))
        .header("cookie", format!("airlock_session={cookie}"))
        .form(&[("csrf_token", csrf)])
        .send()
        .await
        .unwrap();
    assert_secured(response.headers(), "sign-out");
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn sign_in_shows_the_board_and_sign_out_ends_the_session() {
    let s = TestServer::start();
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"a layer"]).await;

    // The root and the board send a stranger to the sign-in page.
    let root = browser().get(s.url("/")).send().await.unwrap();
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()[LOCATION], "/console");
    let (status, _, location) = get(&s, "", "/console").await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some("/console/login?reason=signed-out")
    );

    // A wrong password is refused on the page, with the API's one message for every refusal.
    let client = browser();
    let form = client.get(s.url("/console/login")).send().await.unwrap();
    let csrf = csrf_field(&form.text().await.unwrap());
    let refused = client
        .post(s.url("/console/login"))
        .header("cookie", format!("airlock_login_csrf={csrf}"))
        .form(&[
            ("username", "admin"),
            ("password", "not-the-password"),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(set_cookie(refused.headers(), "airlock_session").is_none());
    assert_secured(refused.headers(), "a refused sign-in");
    let page = refused.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");

    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (status, board, _) = get(&s, &admin.cookie, "/console").await;
    assert_eq!(status, 200);
    assert!(board.contains("team/app"), "{board}");
    assert!(board.contains(&digest[..19]), "{board}");
    assert!(board.contains(">1.0<"), "{board}");
    assert!(board.contains("Signed in as"), "{board}");
    // Search: a pattern, a path, and one that finds nothing.
    let (status, found, _) = get(&s, &admin.cookie, "/console?q=team%2F*").await;
    assert_eq!(status, 200);
    assert!(found.contains("team/app"), "{found}");
    let (status, missing, _) = get(&s, &admin.cookie, "/console?q=team%2Fnothing").await;
    assert_eq!(status, 404);
    assert!(missing.contains("role=\"alert\""), "{missing}");
    // The stylesheet is served from the binary, under the same headers.
    let css = browser()
        .get(s.url("/console/assets/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_secured(css.headers(), "the stylesheet");
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    // Sign-out needs the session's CSRF token: without it nothing changes.
    let (status, page) = sign_out(&s, &admin.cookie, "forged").await;
    assert_eq!(status, 403, "{page}");
    let no_field = browser()
        .post(s.url("/console/logout"))
        .header("cookie", format!("airlock_session={}", admin.cookie))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_field.status(),
        403,
        "a form without the field is refused on the page"
    );
    assert!(no_field.text().await.unwrap().contains("CSRF token"));
    assert_eq!(get(&s, &admin.cookie, "/console").await.0, 200);
    let (status, _) = sign_out(&s, &admin.cookie, &admin.csrf).await;
    assert_eq!(status, 303);
    let (status, _, location) = get(&s, &admin.cookie, "/console").await;
    assert_eq!(status, 303, "a signed-out session signs nobody in");
    assert_eq!(location.as_deref(), Some("/console/login?reason=ended"));

    // Both ends are in the audit log, by the session.
    let entries = s.audit_entries().await;
    let kinds: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("session."))
        .collect();
    assert_eq!(kinds, ["session.started", "session.ended"], "{entries:?}");
    let started = entries
        .iter()
        .find(|e| e["type"] == "session.started")
        .unwrap();
    assert_eq!(started["actor"]["auth_method"], "session", "{started}");
    assert_eq!(started["actor"]["principal"], "admin", "{started}");
}

#[tokio::test]
async fn sign_in_without_the_forms_csrf_token_is_refused() {
    let s = TestServer::start();
    let client = browser();
    for (cookie, token) in [("", "anything"), ("one", "another"), ("same", "")] {
        let mut request = client.post(s.url("/console/login")).form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", token),
        ]);
        if !cookie.is_empty() {
            request = request.header("cookie", format!("airlock_login_csrf={cookie}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "cookie {cookie:?}, token {token:?}");
        assert!(set_cookie(response.headers(), "airlock_session").is_none());
        assert_secured(response.headers(), "a forged sign-in");
    }
    let entries = s.audit_entries().await;
    assert!(
        !entries.iter().any(|e| e["type"] == "session.started"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn the_board_shows_only_what_the_person_may_read_and_one_session_cannot_act_for_another() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"one"]).await;
    s.push_image("dev/other/secret", "1.0", &[b"two"]).await;
    add_user(
        &s,
        "ada",
        "lamp-orbit-tall-river",
        &[("developer", "dev/team/app")],
    )
    .await;
    let ada = sign_in(&s, "ada", "lamp-orbit-tall-river").await;
    let (status, board, _) = get(&s, &ada.cookie, "/console").await;
    assert_eq!(status, 200);
    assert!(board.contains("team/app"), "{board}");
    assert!(!board.contains("other/secret"), "{board}");
    assert!(
        board.contains("Signed in as <strong>ada</strong>"),
        "{board}"
    );

    // Ada's CSRF token does not sign the admin out.
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (status, _) = sign_out(&s, &admin.cookie, &ada.csrf).await;
    assert_eq!(status, 403);
    assert_eq!(get(&s, &admin.cookie, "/console").await.0, 200);
    // A made-up cookie signs nobody in.
    let (status, _, _) = get(
        &s,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/console",
    )
    .await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn a_change_to_the_persons_access_ends_their_open_session() {
    let s = TestServer::start();
    add_user(
        &s,
        "ada",
        "lamp-orbit-tall-river",
        &[("developer", "dev/team/app")],
    )
    .await;
    let ada = sign_in(&s, "ada", "lamp-orbit-tall-river").await;
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/roles/revoke"),
        json!({"principal": "ada", "role": "developer", "scope": "dev/team/app"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, location) = get(&s, &ada.cookie, "/console").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/console/login?reason=ended"));
    // Forgotten: signing in again starts a new session, the old cookie stays dead.
    let again = sign_in(&s, "ada", "lamp-orbit-tall-river").await;
    assert_ne!(again.cookie, ada.cookie);
    assert_eq!(get(&s, &ada.cookie, "/console").await.0, 303);

    // A disabled account's session ends too.
    let (status, body) = post_json(&s.http, &s.url("/api/v1/users/ada/disable"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&s, &again.cookie, "/console").await.0, 303);
}

#[tokio::test]
async fn an_idle_session_ends() {
    let s = TestServer::start_with_env(&[("AIRLOCK_ACCESS__CONSOLE_IDLE_TIMEOUT_SECS", "1")]);
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, location) = get(&s, &admin.cookie, "/console").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/console/login?reason=ended"));
    let (status, page, _) = get(&s, "", "/console/login?reason=ended").await;
    assert_eq!(status, 200);
    assert!(page.contains("Your session ended"), "{page}");
}

/// POSTs a console form with a session cookie: (status, page, Location).
async fn post_form(
    s: &TestServer,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let response = browser()
        .post(s.url(path))
        .header("cookie", format!("airlock_session={cookie}"))
        .form(fields)
        .send()
        .await
        .unwrap();
    assert_secured(response.headers(), path);
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.text().await.unwrap(), location)
}

#[tokio::test]
async fn approvers_decide_promotions_in_the_inbox_under_the_apis_rules() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::permissive_bundle(&dir.path().join("bundle"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
    ]);
    const PASSWORD: &str = "lamp-orbit-tall-river";
    let ci = add_user(&s, "ci", PASSWORD, &[("developer", "dev")]).await;
    let rita = add_user(
        &s,
        "rita",
        PASSWORD,
        &[("promoter", "staging"), ("approver", "staging")],
    )
    .await;
    add_user(&s, "ann", PASSWORD, &[("approver", "staging")]).await;
    add_user(&s, "otto", PASSWORD, &[("approver", "staging/other/*")]).await;
    let mut ids = Vec::new();
    for (tag, layer) in [("1.0", b"first".as_slice()), ("2.0", b"second".as_slice())] {
        let digest = common::push_image_as(&s, &ci, "dev/team/app", tag, layer, None).await;
        let (status, body) = post_json(
            &rita,
            &s.url("/api/v1/promotions"),
            json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["promotion"]["state"], "pending_approval", "{body}");
        ids.push(body["promotion"]["id"].as_str().unwrap().to_string());
    }

    // Rita sees both, and may not approve what she requested: the API's refusal, on the page.
    let rita_session = sign_in(&s, "rita", PASSWORD).await;
    let (status, inbox, _) = get(&s, &rita_session.cookie, "/console/approvals").await;
    assert_eq!(status, 200);
    assert!(
        inbox.contains(&ids[0]) && inbox.contains(&ids[1]),
        "{inbox}"
    );
    assert!(inbox.contains("You requested this promotion"), "{inbox}");
    // Both wait for someone else: she requested them.
    assert!(inbox.contains("<h2>Waiting for you (0)</h2>"), "{inbox}");
    assert!(inbox.contains("<h2>Waiting for others (2)</h2>"), "{inbox}");
    // Each card says what the gate saw, from the decision's stored input and result.
    assert!(inbox.contains("What the gate saw"), "{inbox}");
    assert!(
        inbox.contains("<dt>Requested by</dt><dd>rita (signed in with password)</dd>"),
        "{inbox}"
    );
    assert!(inbox.contains("<dt>Gate</dt><dd>allowed"), "{inbox}");
    assert!(inbox.contains("no verified signature"), "{inbox}");
    assert!(inbox.contains("no verified scan"), "{inbox}");
    // The board shows both waiting, at a glance, and nothing quarantined.
    let (_, board, _) = get(&s, &rita_session.cookie, "/console").await;
    assert!(
        board.contains("Waiting for approval</span><span class=\"badge gated\">2</span>"),
        "{board}"
    );
    assert!(board.contains("requested by rita"), "{board}");
    assert!(
        board.contains("No artifact you may read is quarantined."),
        "{board}"
    );
    let (status, refused, _) = post_form(
        &s,
        &rita_session.cookie,
        &format!("/console/promotions/{}/approve", ids[0]),
        &[("csrf_token", &rita_session.csrf), ("text", "")],
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("What to do"), "{refused}");
    assert!(refused.contains("rita"), "{refused}");

    // Otto may not read team/app: nothing in his inbox or on his board, and approving is the
    // unknown-id 404.
    let otto = sign_in(&s, "otto", PASSWORD).await;
    let (_, inbox, _) = get(&s, &otto.cookie, "/console/approvals").await;
    assert!(!inbox.contains(&ids[0]), "{inbox}");
    let (_, board, _) = get(&s, &otto.cookie, "/console").await;
    assert!(
        board.contains("Nothing you may read waits for approval."),
        "{board}"
    );
    let (status, _, _) = post_form(
        &s,
        &otto.cookie,
        &format!("/console/promotions/{}/approve", ids[0]),
        &[("csrf_token", &otto.csrf)],
    )
    .await;
    assert_eq!(status, 404);

    // Ann: both wait for her (an approver on staging who neither requested nor approved them).
    let ann = sign_in(&s, "ann", PASSWORD).await;
    let (_, inbox, _) = get(&s, &ann.cookie, "/console/approvals").await;
    assert!(inbox.contains("<h2>Waiting for you (2)</h2>"), "{inbox}");
    assert!(!inbox.contains("Waiting for others"), "{inbox}");
    // Ann: a form without her CSRF token changes nothing; with it, the approval promotes.
    let path = format!("/console/promotions/{}/approve", ids[0]);
    let (status, _, _) = post_form(
        &s,
        &ann.cookie,
        &path,
        &[("csrf_token", &rita_session.csrf)],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, location) = post_form(
        &s,
        &ann.cookie,
        &path,
        &[("csrf_token", &ann.csrf), ("text", "looks good")],
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert_eq!(
        location,
        format!(
            "/console/approvals?done=approved&id={}&state=promoted",
            ids[0]
        )
    );
    let (_, inbox, _) = get(&s, &ann.cookie, &location).await;
    assert!(inbox.contains("it is now promoted"), "{inbox}");
    // Decided, it left the inbox; the other one waits.
    assert!(
        !inbox.contains(&format!("/console/promotions/{}/approve", ids[0])),
        "{inbox}"
    );
    assert!(
        inbox.contains(&format!("/console/promotions/{}/approve", ids[1])),
        "{inbox}"
    );
    let (status, shown) =
        common::get_json(&s.http, &s.url(&format!("/api/v1/promotions/{}", ids[0]))).await;
    assert_eq!(status, 200);
    assert_eq!(shown["state"], "promoted", "{shown}");
    assert_eq!(shown["approvals"][0]["principal"], "ann", "{shown}");
    assert_eq!(shown["approvals"][0]["comment"], "looks good", "{shown}");

    // A rejection needs a reason; with one, the promotion ends denied.
    let reject = format!("/console/promotions/{}/reject", ids[1]);
    let (status, refused, _) = post_form(
        &s,
        &ann.cookie,
        &reject,
        &[("csrf_token", &ann.csrf), ("text", " ")],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, _, location) = post_form(
        &s,
        &ann.cookie,
        &reject,
        &[("csrf_token", &ann.csrf), ("text", "not this one")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.unwrap().ends_with("&state=denied"));

    // Both decisions are audited as Ann's, by session.
    let entries = s.audit_entries().await;
    for kind in ["promotion.approved", "promotion.rejected"] {
        let entry = entries
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {entries:?}"));
        assert_eq!(entry["actor"]["principal"], "ann", "{entry}");
        assert_eq!(entry["actor"]["auth_method"], "session", "{entry}");
    }
}

#[tokio::test]
async fn anomalies_are_listed_for_auditors_and_resolved_by_access_admins() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_ANOMALIES__AUTH_FAILURES__THRESHOLD", "3"),
        ("AIRLOCK_ANOMALIES__AUTH_FAILURES__ACTION", "lock_principal"),
    ]);
    const PASSWORD: &str = "lamp-orbit-tall-river";
    let alice = add_user(&s, "alice", PASSWORD, &[("reader", "*")]).await;
    add_user(&s, "audrey", PASSWORD, &[("auditor", "*")]).await;
    add_user(&s, "dev", PASSWORD, &[("developer", "dev")]).await;
    let wrong = common::client_as("alice", "not-her-password");
    for _ in 0..3 {
        let status = wrong
            .get(s.url("/v2/_catalog"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    assert_eq!(
        alice
            .get(s.url("/v2/_catalog"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "alice is locked"
    );

    // A developer has no anomalies link, and the page refuses with the API's words.
    let dev = sign_in(&s, "dev", PASSWORD).await;
    let (_, board, _) = get(&s, &dev.cookie, "/console").await;
    assert!(!board.contains("/console/anomalies"), "{board}");
    let (status, refused, _) = get(&s, &dev.cookie, "/console/anomalies").await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused.contains("What to do"), "{refused}");

    // An auditor reads them, without the form that resolves them.
    let audrey = sign_in(&s, "audrey", PASSWORD).await;
    let (status, list, _) = get(&s, &audrey.cookie, "/console/anomalies").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("auth_failures") && list.contains("lock_principal"),
        "{list}"
    );
    assert!(!list.contains("/resolve\""), "{list}");

    // The admin resolves the lock on alice: a reason is needed, and it undoes the lock.
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (_, list, _) = get(&s, &admin.cookie, "/console/anomalies").await;
    let (status, body) = common::get_json(&s.http, &s.url("/api/v1/anomalies?status=open")).await;
    assert_eq!(status, 200);
    let id = body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "principal:alice")
        .unwrap_or_else(|| panic!("no anomaly about alice: {body}"))["id"]
        .as_i64()
        .unwrap();
    let path = format!("/console/anomalies/{id}/resolve");
    assert!(list.contains(&path), "{list}");
    let (status, refused, _) = post_form(
        &s,
        &admin.cookie,
        &path,
        &[("csrf_token", &admin.csrf), ("text", "")],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let (status, _, _) = post_form(&s, &admin.cookie, &path, &[("text", "forged")]).await;
    assert_eq!(status, 403);
    let (status, _, location) = post_form(
        &s,
        &admin.cookie,
        &path,
        &[
            ("csrf_token", &admin.csrf),
            ("text", "alice forgot her password"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, list, _) = get(&s, &admin.cookie, &location.unwrap()).await;
    assert!(
        list.contains(&format!("Anomaly {id} is resolved")),
        "{list}"
    );
    assert_eq!(
        alice
            .get(s.url("/v2/_catalog"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let entries = s.audit_entries().await;
    let resolved = entries
        .iter()
        .find(|e| e["type"] == "anomaly.resolved")
        .unwrap_or_else(|| panic!("no anomaly.resolved in {entries:?}"));
    assert_eq!(resolved["actor"]["principal"], "admin", "{resolved}");
    assert_eq!(resolved["actor"]["auth_method"], "session", "{resolved}");
}

#[tokio::test]
async fn an_artifacts_page_shows_its_promotions_with_the_gates_words() {
    let s = TestServer::start();
    const PASSWORD: &str = "lamp-orbit-tall-river";
    let ci = add_user(&s, "ci", PASSWORD, &[("developer", "dev")]).await;
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "staging")]).await;
    add_user(&s, "otto", PASSWORD, &[("developer", "dev/other/*")]).await;
    let digest = common::push_image_as(&s, &ci, "dev/team/app", "1.0", b"unsigned", None).await;
    // The default gate denies an unsigned artifact, saying what to do.
    let (status, body) = post_json(
        &rita,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(body["promotion"]["state"], "denied", "{status} {body}");
    assert_eq!(
        body["decision"]["deny"][0]["rule"], "staging.signature_required",
        "{body}"
    );

    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (_, board, _) = get(&s, &admin.cookie, "/console").await;
    let href = format!(
        "/console/artifact?repository=dev%2Fteam%2Fapp&amp;digest={}",
        digest.replace(':', "%3A")
    );
    assert!(
        board.contains(&href),
        "the board links the artifact: {board}"
    );
    let path = href.replace("&amp;", "&");
    let (status, page, _) = get(&s, &admin.cookie, &path).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&digest), "{page}");
    assert!(page.contains("dev → staging"), "{page}");
    assert!(page.contains("The gate denied it"), "{page}");
    assert!(page.contains("staging.signature_required"), "{page}");
    assert!(page.contains("What to do: sign it: airlock sign"), "{page}");
    assert!(
        page.contains("docs/policy.md#staging-signature-required"),
        "{page}"
    );
    assert!(
        page.contains("No signature or attestation names this artifact."),
        "{page}"
    );

    // Someone who may not pull it gets the API's 404, as for an artifact that is not there.
    let otto = sign_in(&s, "otto", PASSWORD).await;
    let (status, page, _) = get(&s, &otto.cookie, &path).await;
    assert_eq!(status, 404, "{page}");
    assert!(!page.contains("dev → staging"), "{page}");
    let (status, _, _) = get(
        &s,
        &admin.cookie,
        "/console/artifact?repository=dev%2Fteam%2Fapp&digest=nope",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_audit_page_carries_what_the_browser_needs_to_verify_the_log() {
    let s = TestServer::start();
    const PASSWORD: &str = "lamp-orbit-tall-river";
    add_user(&s, "audrey", PASSWORD, &[("auditor", "*")]).await;
    add_user(&s, "dev", PASSWORD, &[("developer", "dev")]).await;
    let size = s.wait_for_checkpoint().await;
    let audrey = sign_in(&s, "audrey", PASSWORD).await;
    let (status, page, _) = get(&s, &audrey.cookie, "/console/audit").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<script src=\"/console/assets/console.js\" defer>"),
        "{page}"
    );
    assert!(page.contains("data-note=\""), "{page}");
    let key = reqwest::get(s.url("/log/key"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("data-key=\"{}\"", key.trim())),
        "{page}"
    );
    assert!(
        page.contains("data-proof=\""),
        "entries in the checkpoint carry proofs: {page}"
    );
    // A consistency proof for the page's script, only within a session that may read the log.
    let proof = browser()
        .get(s.url(&format!("/console/audit/consistency?from=1&to={size}")))
        .header("cookie", format!("airlock_session={}", audrey.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(proof.status(), 200);
    let proof: serde_json::Value = proof.json().await.unwrap();
    assert_eq!(proof["old_size"], 1);
    assert_eq!(proof["new_size"], size);
    let anonymous = browser()
        .get(s.url(&format!("/console/audit/consistency?from=1&to={size}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let script = browser()
        .get(s.url("/console/assets/console.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_secured(script.headers(), "the script");
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    // A developer sees no link, and the page and the proofs refuse.
    let dev = sign_in(&s, "dev", PASSWORD).await;
    let (_, board, _) = get(&s, &dev.cookie, "/console").await;
    assert!(!board.contains("href=\"/console/audit\""), "{board}");
    let (status, _, _) = get(&s, &dev.cookie, "/console/audit").await;
    assert_eq!(status, 403);
    let refused = browser()
        .get(s.url(&format!("/console/audit/consistency?from=1&to={size}")))
        .header("cookie", format!("airlock_session={}", dev.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn an_open_inbox_hears_when_a_promotion_starts_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::permissive_bundle(&dir.path().join("bundle"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1"),
    ]);
    const PASSWORD: &str = "lamp-orbit-tall-river";
    let ci = add_user(&s, "ci", PASSWORD, &[("developer", "dev")]).await;
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "staging")]).await;
    add_user(&s, "ann", PASSWORD, &[("approver", "staging")]).await;
    let ann = sign_in(&s, "ann", PASSWORD).await;
    let refused = browser()
        .get(s.url("/console/approvals/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let mut events = browser()
        .get(s.url("/console/approvals/events"))
        .header("cookie", format!("airlock_session={}", ann.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let digest = common::push_image_as(&s, &ci, "dev/team/app", "1.0", b"live", None).await;
    let (status, body) = post_json(
        &rita,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut heard = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !heard.contains("event: changed\ndata: 1\n") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .unwrap_or_else(|_| panic!("no change heard within 20 s: {heard:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended: {heard:?}"));
        heard.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(events);

    // A page opened before a change whose stream opens only after it (a slow browser): the
    // stream compares with what the page showed, so it tells at once.
    let (_, inbox, _) = get(&s, &ann.cookie, "/console/approvals").await;
    let at = inbox
        .find("data-events=\"")
        .unwrap_or_else(|| panic!("{inbox}"))
        + "data-events=\"".len();
    let events_path = inbox[at..inbox[at..].find('"').unwrap() + at].replace("&amp;", "&");
    assert!(
        events_path.starts_with("/console/approvals/events?shown="),
        "{events_path}"
    );
    let digest = common::push_image_as(&s, &ci, "dev/team/app", "2.0", b"later", None).await;
    let (status, body) = post_json(
        &rita,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut events = browser()
        .get(s.url(&events_path))
        .header("cookie", format!("airlock_session={}", ann.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut heard = String::new();
    while !heard.contains("event: changed\ndata: 2\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), events.chunk())
            .await
            .unwrap_or_else(|_| panic!("not told at once: {heard:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended: {heard:?}"));
        heard.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A cosign `vuln` predicate holding a Trivy report with one critical, two high and one medium
/// finding.
fn trivy_report_with_highs() -> serde_json::Value {
    let finding = |id: &str, package: &str, severity: &str, fixed: &str| json!({"VulnerabilityID": id, "PkgName": package, "InstalledVersion": "1.0", "FixedVersion": fixed, "Severity": severity});
    json!({
        "invocation": {"parameters": null, "uri": "https://ci.example/runs/1", "event_id": "1", "builder.id": "ci"},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@244fd47e07d1004f0aed9",
            "version": "0.50.1",
            "db": {"uri": "", "version": ""},
            "result": {
                "SchemaVersion": 2, "ArtifactName": "app:1.0", "ArtifactType": "container_image",
                "Results": [{
                    "Target": "app:1.0 (debian 12.5)", "Class": "os-pkgs", "Type": "debian",
                    "Vulnerabilities": [
                        finding("CVE-2026-0001", "openssl", "CRITICAL", "3.0.14"),
                        finding("CVE-2026-1111", "zlib", "HIGH", "1.3.2"),
                        finding("CVE-2026-2222", "curl", "HIGH", ""),
                        finding("CVE-2026-3333", "apt", "MEDIUM", "")
                    ]
                }]
            }
        },
        "metadata": {"scanStartedOn": "2026-11-25T10:00:00Z", "scanFinishedOn": "2026-11-25T10:01:00Z"}
    })
}

#[tokio::test]
async fn an_artifacts_page_summarises_its_evidence_and_proves_its_audit_entries() {
    if !common::python_ready() {
        return;
    }
    const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
    const CYCLONEDX: &str = "https://cyclonedx.org/bom";
    const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
    let dir = tempfile::tempdir().unwrap();
    // The bundle's data waives one high vulnerability until 2099; another waiver has expired.
    let bundle = common::permissive_bundle(&dir.path().join("bundle"));
    let data_path = bundle.join("data.json");
    let mut data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&data_path).unwrap()).unwrap();
    data["airlock"]["config"]["waivers"] = json!([
        {"id": "CVE-2026-1111", "expires": "2099-01-01T00:00:00Z", "reason": "zlib's inflate is not reachable"},
        {"id": "CVE-2026-2222", "expires": "2020-01-01T00:00:00Z", "reason": "old exception"}
    ]);
    std::fs::write(&data_path, data.to_string()).unwrap();
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    const PASSWORD: &str = "lamp-orbit-tall-river";
    add_user(&s, "dora", PASSWORD, &[("developer", "dev")]).await;
    let kim = add_user(&s, "kim", PASSWORD, &[("key-admin", "*")]).await;

    let key_dir = dir.path().join("key");
    std::fs::create_dir_all(&key_dir).unwrap();
    common::cosign_spec_ok(&["keygen", "--out-dir", key_dir.to_str().unwrap()]);
    let pem = std::fs::read_to_string(key_dir.join("key.pub")).unwrap();
    let purposes: Vec<String> = [SLSA_V1, CYCLONEDX, COSIGN_VULN]
        .iter()
        .map(|t| format!("attest:{t}"))
        .collect();
    let (status, body) = post_json(
        &kim,
        &s.url("/api/v1/keys"),
        json!({"name": "ci", "public_key": pem, "purposes": purposes, "scope": ["team/*"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"summarised"]).await;
    let predicates = [
        (
            SLSA_V1,
            json!({
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/build.yml"}},
                    "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}}]
                },
                "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}, "metadata": {"invocationId": "1"}}
            }),
        ),
        (
            CYCLONEDX,
            json!({
                "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
                "components": [
                    {"type": "library", "name": "serde", "version": "1.0.200", "purl": "pkg:cargo/serde@1.0.200",
                     "licenses": [{"expression": "MIT OR Apache-2.0"}]},
                    {"type": "library", "name": "odd", "version": "1", "licenses": [{"expression": "gnu gpl v2"}]}
                ]
            }),
        ),
        (COSIGN_VULN, trivy_report_with_highs()),
    ];
    for (n, (predicate_type, predicate)) in predicates.iter().enumerate() {
        let file = dir.path().join(format!("predicate-{n}.json"));
        std::fs::write(&file, predicate.to_string()).unwrap();
        common::cosign_spec_ok(&[
            "attest",
            "--registry",
            &s.base,
            "--user",
            "admin",
            "--password",
            ADMIN_PASSWORD,
            "--repo",
            "dev/team/app",
            "--digest",
            &digest,
            "--key",
            key_dir.join("key.pem").to_str().unwrap(),
            "--predicate-type",
            predicate_type,
            "--predicate",
            file.to_str().unwrap(),
        ]);
    }
    let size = s.wait_for_checkpoint().await;

    let path = format!(
        "/console/artifact?repository=dev%2Fteam%2Fapp&digest={}",
        digest.replace(':', "%3A")
    );
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (status, page, _) = get(&s, &admin.cookie, &path).await;
    assert_eq!(status, 200, "{page}");
    // Vulnerabilities by severity, with each high one's waiver as the bundle states it.
    assert!(page.contains("Vulnerabilities (trivy)"), "{page}");
    let row = |id: &str| -> String {
        let start = page
            .find(&format!("<code>{id}</code>"))
            .unwrap_or_else(|| panic!("{id} is listed: {page}"));
        let end = page[start..].find("</tr>").unwrap() + start;
        page[start..end].to_string()
    };
    assert!(row("CVE-2026-0001").contains("critical"), "{page}");
    assert!(row("CVE-2026-0001").contains("3.0.14"), "{page}");
    assert!(row("CVE-2026-0001").contains("none"), "{page}");
    assert!(
        row("CVE-2026-1111").contains("waived</span> until 2099-01-01T00:00:00Z"),
        "{}",
        row("CVE-2026-1111")
    );
    assert!(
        row("CVE-2026-1111").contains("zlib&#39;s inflate is not reachable")
            || row("CVE-2026-1111").contains("zlib's inflate is not reachable"),
        "{}",
        row("CVE-2026-1111")
    );
    assert!(
        row("CVE-2026-2222").contains("expired</span> on 2020-01-01T00:00:00Z"),
        "{}",
        row("CVE-2026-2222")
    );
    assert!(
        !page.contains("<code>CVE-2026-3333</code>"),
        "only critical and high findings are listed one by one: {page}"
    );
    // Licenses, with the expression airlock could not understand named.
    assert!(page.contains("Licenses (cyclonedx 1.5 SBOM)"), "{page}");
    assert!(page.contains("<code>MIT OR Apache-2.0</code>"), "{page}");
    assert!(page.contains("<code>gnu gpl v2</code>"), "{page}");
    // Provenance: builder, source and ref, commit.
    assert!(page.contains("Provenance (SLSA v1)"), "{page}");
    // One builder built it: the rebuild agreement says so, with the revision.
    assert!(page.contains("Independent rebuilds"), "{page}");
    assert!(
        page.contains("1 independent builder (distinct builder ids and keys) built this digest from <code>https://github.com/acme/app@a1b2c3d4e5f60718293a4b5c6d7e8f9012345678</code>"),
        "{page}"
    );
    assert!(
        page.contains("https://github.com/actions/runner/github-hosted"),
        "{page}"
    );
    assert!(page.contains("https://github.com/acme/app"), "{page}");
    assert!(page.contains("refs/heads/main"), "{page}");
    assert!(
        page.contains("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
        "{page}"
    );
    // Its audit entries, each with an inclusion proof in the checkpoint the page carries.
    assert!(page.contains("Its audit entries"), "{page}");
    assert!(page.contains("id=\"log\""), "{page}");
    let entries = page.matches("class=\"entry card\"").count();
    assert!(entries >= 4, "a push and three evidence entries: {page}");
    assert!(page.contains("manifest.pushed"), "{page}");
    assert_eq!(page.matches("evidence.verified").count(), 3, "{page}");
    let covered: u64 = page
        .split("It covers <strong>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the checkpoint's size: {page}"));
    assert!(covered >= size, "{covered} < {size}");
    assert!(page.contains("data-proof=\""), "{page}");
    assert!(
        !page.contains("blob.pushed"),
        "only entries about this digest: {page}"
    );

    // A developer who may pull it sees the summaries but not the audit log.
    let dora = sign_in(&s, "dora", PASSWORD).await;
    let (status, page, _) = get(&s, &dora.cookie, &path).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Vulnerabilities (trivy)"), "{page}");
    assert!(
        page.contains("Only auditors and access-admins read the audit log."),
        "{page}"
    );
    assert!(!page.contains("data-proof="), "{page}");

    // The audit page's export: the filter's entries as JSON Lines, each the exact leaf bytes.
    let response = browser()
        .get(s.url("/console/audit/export?type=evidence."))
        .header("cookie", format!("airlock_session={}", admin.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_secured(response.headers(), "the export");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    let body = response.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let (status, api) = common::get_json(
        &s.http,
        &s.url("/api/v1/audit/entries?type=evidence.&limit=1000"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        lines,
        api["entries"].as_array().unwrap().clone(),
        "the export holds what the API lists"
    );
    assert!(lines.len() >= 3, "{body}");
    let response = browser()
        .get(s.url("/console/audit/export"))
        .header("cookie", format!("airlock_session={}", dora.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn the_keyring_and_access_pages_show_what_each_may_read_and_access_admins_decide_requests() {
    let s = TestServer::start();
    const PASSWORD: &str = "lamp-orbit-tall-river";
    let jo = add_user(&s, "jo", PASSWORD, &[("developer", "dev")]).await;
    let kim = add_user(&s, "kim", PASSWORD, &[("key-admin", "*")]).await;
    add_user(&s, "audrey", PASSWORD, &[("auditor", "*")]).await;
    let pem = std::fs::read_to_string("tests/fixtures/cosign/real_signature.pub").unwrap();
    let (status, body) = post_json(
        &kim,
        &s.url("/api/v1/keys"),
        json!({"name": "release-ci", "public_key": pem, "purposes": ["sign"], "scope": ["team/*"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Everyone signed in reads the keyring, as GET /api/v1/keys.
    let jo_session = sign_in(&s, "jo", PASSWORD).await;
    let (status, page, _) = get(&s, &jo_session.cookie, "/console/keys").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<strong>release-ci</strong>"), "{page}");
    assert!(page.contains("<code>sign</code>"), "{page}");
    assert!(page.contains("<code>team/*</code>"), "{page}");
    assert!(page.contains(">active</span>"), "{page}");
    assert!(page.contains("href=\"/console/keys\""), "{page}");

    // Jo asks for a role for an hour; her access page lists her request, without forms, and
    // no principals.
    let (status, body) = post_json(
        &jo,
        &s.url("/api/v1/access-requests"),
        json!({"role": "promoter", "scope": "staging/team/*", "duration_secs": 3600, "reason": "INC-42 hotfix"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap_or_else(|| panic!("{body}"));
    let (status, page, _) = get(&s, &jo_session.cookie, "/console/access").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("Request {id}: jo as promoter on staging/team/*")),
        "{page}"
    );
    assert!(page.contains("For 1 h: INC-42 hotfix"), "{page}");
    assert!(!page.contains("/grant\""), "{page}");
    assert!(!page.contains("Principals and their grants"), "{page}");

    // An auditor reads every request and the principals with their grants, and decides nothing.
    let audrey = sign_in(&s, "audrey", PASSWORD).await;
    let (_, page, _) = get(&s, &audrey.cookie, "/console/access").await;
    assert!(page.contains(&format!("Request {id}: jo")), "{page}");
    assert!(page.contains("Principals and their grants"), "{page}");
    assert!(page.contains("<code>key-admin on *</code>"), "{page}");
    assert!(!page.contains("/grant\""), "{page}");
    let (status, page, _) = post_form(
        &s,
        &audrey.cookie,
        &format!("/console/access-requests/{id}/grant"),
        &[("csrf_token", &audrey.csrf)],
    )
    .await;
    assert_eq!(status, 403, "{page}");

    // The admin (an access-admin) decides it; a form without the session's token is refused.
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (_, page, _) = get(&s, &admin.cookie, "/console/access").await;
    assert!(
        page.contains(&format!("action=\"/console/access-requests/{id}/grant\"")),
        "{page}"
    );
    let (status, _, _) = post_form(
        &s,
        &admin.cookie,
        &format!("/console/access-requests/{id}/grant"),
        &[("csrf_token", "forged")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, location) = post_form(
        &s,
        &admin.cookie,
        &format!("/console/access-requests/{id}/grant"),
        &[("csrf_token", &admin.csrf)],
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert_eq!(
        location,
        format!("/console/access?decided={id}&status=granted")
    );
    let (_, page, _) = get(&s, &admin.cookie, &location).await;
    assert!(
        page.contains(&format!("Access request {id} is granted.")),
        "{page}"
    );
    assert!(page.contains("decided by <strong>admin</strong>"), "{page}");
    // Jo holds the role now. A grant only adds to her access, so her open session goes on
    // (a session reads the person's grants on every request; a revocation ends it) and shows
    // the request granted.
    let (status, page, _) = get(&s, &jo_session.cookie, "/console/access").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(">granted</span>"), "{page}");
    let (status, whoami) = common::get_json(&jo, &s.url("/api/v1/whoami")).await;
    assert_eq!(status, 200);
    assert!(whoami.to_string().contains("staging/team/*"), "{whoami}");
    // Deciding it again is refused in the API's words.
    let (status, page, _) = post_form(
        &s,
        &admin.cookie,
        &format!("/console/access-requests/{id}/deny"),
        &[("csrf_token", &admin.csrf)],
    )
    .await;
    assert!((400..500).contains(&status), "{status} {page}");
    assert!(page.contains("What to do"), "{page}");
    // The decision is the admin's, from the console.
    let (_, entries) = common::get_json(
        &s.http,
        &s.url("/api/v1/audit/entries?type=access.decided&limit=10"),
    )
    .await;
    let decided = &entries["entries"][0]["entry"];
    assert_eq!(decided["actor"]["principal"], "admin", "{entries}");
    assert_eq!(decided["actor"]["auth_method"], "session", "{entries}");
}

#[tokio::test]
async fn the_board_shows_each_channels_history_and_quarantines_at_a_glance() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::permissive_bundle(&dir.path().join("bundle"));
    let bundle_env = ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap());
    let no_approvals = ("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "0");
    let mut s = TestServer::start_with_env(&[bundle_env, no_approvals]);
    const PASSWORD: &str = "lamp-orbit-tall-river";
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let mut digests = Vec::new();
    for (tag, layer) in [("1.0", b"first".as_slice()), ("2.0", b"second".as_slice())] {
        let (_, digest) = s.push_image("dev/team/app", tag, &[layer]).await;
        // Through staging to prod, moving prod's channel tag.
        for (source, to) in [("dev/team/app", "staging"), ("staging/team/app", "prod")] {
            let mut request = json!({"source": source, "reference": digest, "to": to});
            if to == "prod" {
                request["channel"] = json!("stable");
            }
            let (status, body) = post_json(&rita, &s.url("/api/v1/promotions"), request).await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["promotion"]["state"], "promoted", "{body}");
        }
        digests.push(digest);
    }
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (_, board, _) = get(&s, &admin.cookie, "/console").await;
    let history = board
        .split("<summary>History of stable</summary>")
        .nth(1)
        .unwrap_or_else(|| panic!("the channel's history: {board}"));
    let history = &history[..history.find("</details>").unwrap()];
    // Newest first: the move to 2.0's digest, then the move to 1.0's, each linking its page.
    let newest = history.find(&digests[1][..19]).expect("the newest move");
    let oldest = history.find(&digests[0][..19]).expect("the first move");
    assert!(newest < oldest, "{history}");
    assert_eq!(history.matches("by rita at").count(), 2, "{history}");
    assert!(
        history.contains("href=\"/console/artifact?repository=prod%2Fteam%2Fapp"),
        "{history}"
    );
    assert!(
        board.contains("No artifact you may read is quarantined."),
        "{board}"
    );

    // Restarted with a rule that quarantines what is promoted off hours: the next request
    // quarantines the artifact, and the board shows it at a glance and beside the artifact.
    s.stop();
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let hours = format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24);
    let s = TestServer::start_in(
        &s.data_dir.clone(),
        &[
            bundle_env,
            no_approvals,
            ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__ENABLED", "true"),
            ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__DAYS", "*"),
            ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__HOURS", &hours),
            (
                "AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__ACTION",
                "quarantine_artifact",
            ),
        ],
    );
    let (_, held) = s.push_image("dev/team/app", "3.0", &[b"third"]).await;
    let (status, body) = post_json(
        &common::client_as("rita", PASSWORD),
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": held, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let (_, board, _) = get(&s, &admin.cookie, "/console").await;
    let glance = board
        .split("Quarantined</span>")
        .nth(1)
        .unwrap_or_else(|| panic!("{board}"));
    assert!(
        glance.starts_with("<span class=\"badge frozen\">1</span>"),
        "{glance}"
    );
    assert!(glance.contains(&held[..19]), "{glance}");
    assert!(glance.contains(" in team/app"), "{glance}");
    assert!(
        board.contains(">quarantined</span>"),
        "the artifact is marked on its repository's card: {board}"
    );
    // Someone who may not pull team/app does not see the quarantine.
    add_user(&s, "otto", PASSWORD, &[("developer", "dev/other/*")]).await;
    let otto = sign_in(&s, "otto", PASSWORD).await;
    let (_, board, _) = get(&s, &otto.cookie, "/console").await;
    assert!(
        board.contains("No artifact you may read is quarantined."),
        "{board}"
    );
}

#[tokio::test]
async fn unknown_addresses_and_malformed_requests_get_console_pages() {
    let s = TestServer::start();
    let admin = sign_in(&s, "admin", ADMIN_PASSWORD).await;
    let html = |headers: &HeaderMap| {
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    };
    // An address the console does not have: a page, with the headers of every page.
    for path in ["/console/nothing-here", "/console/assets/missing.js"] {
        let response = browser().get(s.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_secured(response.headers(), path);
        assert!(html(response.headers()), "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("No such page"), "{page}");
    }
    // A form sent as JSON: refused with a page that says so, and nothing changes.
    let response = browser()
        .post(s.url("/console/logout"))
        .header("cookie", format!("airlock_session={}", admin.cookie))
        .json(&json!({"csrf_token": admin.csrf}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_secured(response.headers(), "a JSON form");
    assert!(html(response.headers()));
    let page = response.text().await.unwrap();
    assert!(page.contains("was not sent as a form"), "{page}");
    let (status, _, _) = get(&s, &admin.cookie, "/console").await;
    assert_eq!(status, 200, "the session goes on");
    // A method the address does not take: 405 with Allow, as a page.
    let response = browser()
        .get(s.url("/console/logout"))
        .header("cookie", format!("airlock_session={}", admin.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(html(response.headers()));
    assert_eq!(response.headers()["allow"], "POST");
    // A malformed query: a page naming what was wrong.
    let (status, page, _) = get(&s, &admin.cookie, "/console/audit/consistency?from=x&to=1").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Not understood"), "{page}");
}
