//! The lists paged after promotions, status and anomalies, end to end: users, role bindings,
//! access requests, a service account's API keys, the keyring, webhooks, an endpoint's deliveries
//! and `/v2` referrers, each walked page by page (every entry exactly once, in the list's order,
//! the same as one large page), a bad `n` or `last` answered 400 with its code, and the CLI
//! printing whole lists by following `next`.

use crate::common;

use std::collections::HashSet;

use common::{OCI_MANIFEST, TestServer, get_json, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "list-paging-password-1";

/// The entries of `field` of every page of `url` (`n` per page) as admin, following `next`.
async fn walk(s: &TestServer, url: &str, field: &str, n: u32) -> Vec<Value> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut entries = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..200 {
        let page_url = match &last {
            None => format!("{url}{separator}n={n}"),
            Some(last) => format!("{url}{separator}n={n}&last={}", common::urlencode(last)),
        };
        let (status, body) = get_json(&s.http, &s.url(&page_url)).await;
        assert_eq!(status, 200, "{page_url}: {body:#}");
        let page = body[field].as_array().unwrap();
        assert!(page.len() <= n as usize, "{page_url}: {body:#}");
        entries.extend(page.iter().cloned());
        match body["next"].as_str() {
            Some(next) => last = Some(next.to_string()),
            None => return entries,
        }
    }
    panic!("paging {url} does not end");
}

/// Walks `url` with several page sizes and checks each walk equals the single large page, has
/// no entry twice (by `key`), and holds at least `at_least` entries; returns the entries.
async fn check_walks(
    s: &TestServer,
    url: &str,
    field: &str,
    key: impl Fn(&Value) -> String,
    at_least: usize,
) -> Vec<Value> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let (status, all) = get_json(&s.http, &s.url(&format!("{url}{separator}n=1000"))).await;
    assert_eq!(status, 200, "{all:#}");
    assert_eq!(all["next"], Value::Null, "{all:#}");
    let all = all[field].as_array().unwrap().clone();
    assert!(all.len() >= at_least, "{url}: {} entries", all.len());
    let keys: Vec<String> = all.iter().map(&key).collect();
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "{url}: an entry twice in {keys:?}"
    );
    for n in [1, 2, 3] {
        let walked: Vec<String> = walk(s, url, field, n).await.iter().map(&key).collect();
        assert_eq!(walked, keys, "{url} with n={n}");
    }
    all
}

/// The 400 code of each `url`.
async fn check_refusals(s: &TestServer, cases: &[(&str, &str)]) {
    for (url, code) in cases {
        let (status, body) = get_json(&s.http, &s.url(url)).await;
        assert_eq!(status, 400, "{url}: {body:#}");
        assert_eq!(body["error"]["code"], *code, "{url}: {body:#}");
        assert!(
            body["error"]["remediation"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{url}: {body:#}"
        );
    }
}

#[tokio::test]
async fn users_roles_and_access_requests_walk_in_order_once_each() {
    let s = TestServer::start();
    let mut clients = Vec::new();
    for i in 0..5 {
        // Created out of name order, so the list's order is the name's, not the creation's.
        let name = format!("user{}", (i * 3) % 5);
        let client = common::add_user(
            &s,
            &name,
            PASSWORD,
            &[("reader", "dev"), ("developer", "dev/team/*")],
        )
        .await;
        clients.push((name, client));
    }

    let users = check_walks(
        &s,
        "/api/v1/users",
        "principals",
        |p| p["name"].as_str().unwrap().to_string(),
        6,
    )
    .await;
    let names: Vec<&str> = users.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"user4"), "{names:?}");

    let binding_key = |b: &Value| {
        format!(
            "{} {} {}",
            b["principal"].as_str().unwrap(),
            b["role"].as_str().unwrap(),
            b["scope"].as_str().unwrap()
        )
    };
    let bindings = check_walks(&s, "/api/v1/roles", "bindings", binding_key, 11).await;
    let principals: Vec<&str> = bindings
        .iter()
        .map(|b| b["principal"].as_str().unwrap())
        .collect();
    let mut sorted = principals.clone();
    sorted.sort();
    assert_eq!(principals, sorted, "bindings by principal name");
    let user2 = check_walks(
        &s,
        "/api/v1/roles?principal=user2",
        "bindings",
        binding_key,
        2,
    )
    .await;
    assert_eq!(user2.len(), 2, "{user2:#?}");
    assert_eq!(
        user2[0]["role"], "reader",
        "bindings in the order they were made"
    );

    for (name, client) in &clients {
        for scope in ["staging", "prod"] {
            let (status, body) = post(
                client,
                &s.url("/api/v1/access-requests"),
                json!({"role": "reader", "scope": scope, "duration_secs": 3600,
                       "reason": format!("{name} needs {scope}")}),
            )
            .await;
            assert_eq!(status, 201, "{body:#}");
        }
    }
    let requests = check_walks(
        &s,
        "/api/v1/access-requests",
        "requests",
        |r| r["id"].to_string(),
        10,
    )
    .await;
    let ids: Vec<i64> = requests.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);
    // Someone without access-admin or auditor pages through their own requests only.
    let (name, client) = &clients[0];
    let (status, page) = get_json(client, &s.url("/api/v1/access-requests?n=1")).await;
    assert_eq!(status, 200, "{page:#}");
    assert_eq!(page["requests"][0]["principal"], name.as_str(), "{page:#}");
    let next = page["next"].as_str().expect("a second page").to_string();
    let (_, rest) = get_json(
        client,
        &s.url(&format!("/api/v1/access-requests?n=1&last={next}")),
    )
    .await;
    assert_eq!(rest["requests"][0]["principal"], name.as_str(), "{rest:#}");
    assert_eq!(rest["next"], Value::Null, "{rest:#}");

    check_refusals(
        &s,
        &[
            ("/api/v1/users?n=0", "PAGINATION_NUMBER_INVALID"),
            ("/api/v1/users?n=1001", "PAGINATION_NUMBER_INVALID"),
            ("/api/v1/users?last=a%20b", "PAGINATION_CURSOR_INVALID"),
            ("/api/v1/roles?n=1001", "PAGINATION_NUMBER_INVALID"),
            ("/api/v1/roles?last=user1", "PAGINATION_CURSOR_INVALID"),
            ("/api/v1/roles?last=x%3Auser1", "PAGINATION_CURSOR_INVALID"),
            ("/api/v1/access-requests?n=0", "PAGINATION_NUMBER_INVALID"),
            (
                "/api/v1/access-requests?last=abc",
                "PAGINATION_CURSOR_INVALID",
            ),
        ],
    )
    .await;

    // The CLI prints every entry, following `next` (more bindings than one page would be
    // needed to tell; the walk above shows the pages, this shows the CLI reads them whole).
    let (code, out, err) = s.cli(&["roles", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["bindings"].as_array().unwrap().len(), bindings.len());
    assert_eq!(listed["next"], Value::Null);
    let (code, out, err) = s.cli(&["users", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["principals"].as_array().unwrap().len(), users.len());
}

#[tokio::test]
async fn keys_api_keys_webhooks_and_deliveries_walk_in_order_once_each() {
    let s = TestServer::start_with_env(&[("AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")]);
    let keyadmin = common::add_user(&s, "keyadmin", PASSWORD, &[("key-admin", "*")]).await;
    for i in 0..5 {
        let pem = airlock_trust::keys::SigningKey::generate_p256()
            .public_key()
            .to_pem();
        let (status, body) = post(
            &keyadmin,
            &s.url("/api/v1/keys"),
            json!({"name": format!("k{i}"), "public_key": pem, "purposes": ["sign"], "scope": ["team/*"]}),
        )
        .await;
        assert_eq!(status, 201, "{body:#}");
    }
    let keys = check_walks(
        &s,
        "/api/v1/keys",
        "keys",
        |k| k["name"].as_str().unwrap().to_string(),
        5,
    )
    .await;
    let names: Vec<&str> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["k0", "k1", "k2", "k3", "k4"], "oldest first");

    let (status, body) = post(
        &s.http,
        &s.url("/api/v1/service-accounts"),
        json!({"name": "ci", "expires_in_secs": 30 * 86_400}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    for i in 0..4 {
        let (status, body) = post(
            &s.http,
            &s.url("/api/v1/service-accounts/ci/keys"),
            json!({"name": format!("key{i}"), "expires_in_secs": 86_400}),
        )
        .await;
        assert_eq!(status, 201, "{body:#}");
    }
    let api_keys = check_walks(
        &s,
        "/api/v1/service-accounts/ci/keys",
        "keys",
        |k| k["id"].as_str().unwrap().to_string(),
        5,
    )
    .await;
    assert_eq!(api_keys[0]["name"], "default", "oldest first");
    assert_eq!(api_keys[4]["name"], "key3", "oldest first");

    let mut hooks = Vec::new();
    for i in 0..5 {
        let (status, body) = post(
            &s.http,
            &s.url("/api/v1/webhooks"),
            json!({"url": format!("http://127.0.0.1:9/hook{i}"), "events": ["webhook.test"],
                   "secret": "list-paging-webhook-secret"}),
        )
        .await;
        assert_eq!(status, 201, "{body:#}");
        hooks.push(body["id"].as_i64().unwrap());
    }
    let removed = hooks[1];
    let response = s
        .http
        .delete(s.url(&format!("/api/v1/webhooks/{removed}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listed = check_walks(
        &s,
        "/api/v1/webhooks",
        "webhooks",
        |w| w["id"].to_string(),
        4,
    )
    .await;
    let ids: Vec<i64> = listed.iter().map(|w| w["id"].as_i64().unwrap()).collect();
    let active: Vec<i64> = hooks.iter().copied().filter(|id| *id != removed).collect();
    assert_eq!(ids, active, "the active endpoints by id");

    let hook = hooks[0];
    for _ in 0..5 {
        let response = s
            .http
            .post(s.url(&format!("/api/v1/webhooks/{hook}/test")))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    let deliveries = check_walks(
        &s,
        &format!("/api/v1/webhooks/{hook}/deliveries"),
        "deliveries",
        |d| d["id"].to_string(),
        5,
    )
    .await;
    let ids: Vec<i64> = deliveries
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);

    check_refusals(
        &s,
        &[
            ("/api/v1/keys?n=0", "PAGINATION_NUMBER_INVALID"),
            ("/api/v1/keys?last=k1", "PAGINATION_CURSOR_INVALID"),
            (
                "/api/v1/service-accounts/ci/keys?n=1001",
                "PAGINATION_NUMBER_INVALID",
            ),
            (
                "/api/v1/service-accounts/ci/keys?last=key1",
                "PAGINATION_CURSOR_INVALID",
            ),
            ("/api/v1/webhooks?n=0", "PAGINATION_NUMBER_INVALID"),
            ("/api/v1/webhooks?last=-4", "PAGINATION_CURSOR_INVALID"),
            (
                &format!("/api/v1/webhooks/{hook}/deliveries?n=1001"),
                "PAGINATION_NUMBER_INVALID",
            ),
            (
                &format!("/api/v1/webhooks/{hook}/deliveries?last=newest"),
                "PAGINATION_CURSOR_INVALID",
            ),
            (
                &format!("/api/v1/webhooks/{hook}/deliveries?n=5&limit=5"),
                "BAD_REQUEST",
            ),
        ],
    )
    .await;

    // The CLI stops at --limit, following `next` as far as it needs.
    let (code, out, err) = s.cli(&[
        "webhooks",
        "deliveries",
        &hook.to_string(),
        "--limit",
        "3",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let cli_ids: Vec<i64> = listed["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(cli_ids, ids[..3]);
    let (code, out, err) = s.cli(&["keys", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 5);
}

/// The `Link` header's URL (path and query) with `rel="next"`, if any.
fn next_link(response: &reqwest::Response) -> Option<String> {
    let link = response
        .headers()
        .get("link")?
        .to_str()
        .unwrap()
        .to_string();
    let url = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    Some(url.to_string())
}

#[tokio::test]
async fn referrers_page_through_the_link_header_once_each_oldest_first() {
    let s = TestServer::start();
    let repo = "dev/team/app";
    let (subject_bytes, subject) = s.push_image(repo, "1.0", &[b"the subject"]).await;
    let config = b"{}";
    let config_digest = s.push_blob(repo, config).await;
    let mut pushed = Vec::new();
    for i in 0..5 {
        let artifact_type = if i % 2 == 0 {
            "application/vnd.example.sbom+json"
        } else {
            "application/vnd.example.sig"
        };
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject,
                        "size": subject_bytes.len()},
            "annotations": {"n": i.to_string()},
        }))
        .unwrap();
        let digest = common::sha256(&manifest);
        let response = s.put_manifest(repo, &digest, OCI_MANIFEST, &manifest).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        pushed.push((digest, artifact_type));
    }

    let walk_links = |first: String| {
        let s = &s;
        async move {
            let mut digests = Vec::new();
            let mut url = Some(first);
            let mut pages = 0;
            while let Some(page) = url {
                pages += 1;
                assert!(pages < 20, "paging does not end");
                let response = s.http.get(s.url(&page)).send().await.unwrap();
                assert_eq!(response.status(), 200, "{page}");
                url = next_link(&response);
                let index: Value = response.json().await.unwrap();
                assert_eq!(
                    index["mediaType"],
                    "application/vnd.oci.image.index.v1+json"
                );
                for m in index["manifests"].as_array().unwrap() {
                    digests.push(m["digest"].as_str().unwrap().to_string());
                }
            }
            (digests, pages)
        }
    };
    let all: Vec<String> = pushed.iter().map(|(d, _)| d.clone()).collect();
    let (one_page, pages) = walk_links(format!("/v2/{repo}/referrers/{subject}")).await;
    assert_eq!(
        (one_page.clone(), pages),
        (all.clone(), 1),
        "the default page holds them"
    );
    for n in [1, 2, 4] {
        let (walked, pages) = walk_links(format!("/v2/{repo}/referrers/{subject}?n={n}")).await;
        assert_eq!(walked, all, "n={n}");
        assert_eq!(pages, 5usize.div_ceil(n), "n={n}");
    }
    // The filter is kept across pages (its `+` encoded in the Link).
    let sboms: Vec<String> = pushed
        .iter()
        .filter(|(_, t)| t.ends_with("+json"))
        .map(|(d, _)| d.clone())
        .collect();
    let (walked, pages) = walk_links(format!(
        "/v2/{repo}/referrers/{subject}?n=1&artifactType=application%2Fvnd.example.sbom%2Bjson"
    ))
    .await;
    assert_eq!(walked, sboms);
    assert_eq!(pages, 3);

    for (query, code) in [
        ("n=0", "PAGINATION_NUMBER_INVALID"),
        ("n=1001", "PAGINATION_NUMBER_INVALID"),
        ("n=x", "PAGINATION_NUMBER_INVALID"),
        ("last=sha256", "PAGINATION_CURSOR_INVALID"),
    ] {
        let response = s
            .http
            .get(s.url(&format!("/v2/{repo}/referrers/{subject}?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(common::error_code(response).await, code, "{query}");
    }
}
