//! Paged lists end to end: `GET /api/v1/promotions`, `GET /api/v1/status/{path}` and
//! `GET /api/v1/anomalies` walked page
//! by page (every entry exactly once, in order), the CLI following `next`, a bad `n` or `last`
//! answered 400 naming the fix, and the server's memory flat over many `status` calls.

use crate::common;

use std::collections::HashSet;

use common::{OCI_MANIFEST, TestServer, get_json, permissive_bundle, post_json as post};
use serde_json::{Value, json};

/// A server with the permissive policy bundle (promotions to staging are promoted at once), and
/// a client of `rita`, a promoter.
async fn start(temp: &tempfile::TempDir) -> (TestServer, reqwest::Client) {
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let rita = common::add_user(&s, "rita", PROBER_PASSWORD, &[("promoter", "*")]).await;
    (s, rita)
}

/// Pushes `count` distinct small artifacts into `repo` (one shared config and layer, manifests
/// told apart by an annotation), tagged `v<i>`; returns their digests in push order.
async fn push_artifacts(s: &TestServer, repo: &str, count: usize) -> Vec<String> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"one shared layer";
    let config_digest = s.push_blob(repo, config).await;
    let layer_digest = s.push_blob(repo, layer).await;
    let mut digests = Vec::with_capacity(count);
    for i in 0..count {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer.len()}],
            "annotations": {"n": i.to_string()},
        }))
        .unwrap();
        let response = s
            .put_manifest(repo, &format!("v{i}"), OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        digests.push(common::sha256(&manifest));
    }
    digests
}

/// Promotes `digest` of `dev/<path>` to staging as `promoter`; returns the promotion id.
async fn promote(s: &TestServer, promoter: &reqwest::Client, path: &str, digest: &str) -> String {
    let (status, body) = post(
        promoter,
        &s.url("/api/v1/promotions"),
        json!({"source": format!("dev/{path}"), "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    body["promotion"]["id"].as_str().unwrap().to_string()
}

/// Every page of `url` (`n` per page), following `next`: the pages' bodies.
async fn walk(s: &TestServer, url: &str, n: u32) -> Vec<Value> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut pages = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page_url = match &last {
            None => format!("{url}{separator}n={n}"),
            Some(last) => format!("{url}{separator}n={n}&last={}", common::urlencode(last)),
        };
        let (status, body) = get_json(&s.http, &s.url(&page_url)).await;
        assert_eq!(status, 200, "{page_url}: {body:#}");
        let next = body["next"].as_str().map(String::from);
        pages.push(body);
        assert!(pages.len() < 100, "paging does not end");
        match next {
            Some(next) => last = Some(next),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn walking_the_promotion_pages_returns_each_promotion_once_newest_first() {
    let temp = tempfile::tempdir().unwrap();
    let (s, rita) = start(&temp).await;
    let app = push_artifacts(&s, "dev/team/app", 5).await;
    let other = push_artifacts(&s, "dev/team/other", 2).await;
    let mut ids = Vec::new();
    for digest in &app {
        ids.push(promote(&s, &rita, "team/app", digest).await);
    }
    for digest in &other {
        ids.push(promote(&s, &rita, "team/other", digest).await);
    }

    for n in [1, 2, 3, 7, 100] {
        let pages = walk(&s, "/api/v1/promotions", n).await;
        let listed: Vec<String> = pages
            .iter()
            .flat_map(|p| p["promotions"].as_array().unwrap().clone())
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed.len(), ids.len(), "n={n}: {listed:?}");
        assert_eq!(
            listed.iter().collect::<HashSet<_>>(),
            ids.iter().collect::<HashSet<_>>(),
            "n={n}"
        );
        for page in &pages[..pages.len() - 1] {
            assert_eq!(page["promotions"].as_array().unwrap().len(), n as usize);
        }
        // Newest first: the order requests were made, reversed (ties broken by id, same order
        // on every page size).
        let created: Vec<String> = pages
            .iter()
            .flat_map(|p| p["promotions"].as_array().unwrap().clone())
            .map(|p| p["created"].as_str().unwrap().to_string())
            .collect();
        let mut sorted = created.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(created, sorted, "n={n}");
    }

    // Filters page the same way.
    let pages = walk(&s, "/api/v1/promotions?repository=team/app", 2).await;
    let listed: HashSet<String> = pages
        .iter()
        .flat_map(|p| p["promotions"].as_array().unwrap().clone())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids[..5].iter().cloned().collect::<HashSet<_>>());
    let pages = walk(
        &s,
        "/api/v1/promotions?state=promoted&repository=team/other",
        1,
    )
    .await;
    let listed: HashSet<String> = pages
        .iter()
        .flat_map(|p| p["promotions"].as_array().unwrap().clone())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids[5..].iter().cloned().collect::<HashSet<_>>());
    let (status, body) = get_json(&s.http, &s.url("/api/v1/promotions?state=denied")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"promotions": [], "next": null}));

    // The CLI follows `next` to the end, or stops at --limit.
    let (code, out, err) = s.cli(&["promotions", "list", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["promotions"].as_array().unwrap().len(), ids.len());
    assert_eq!(cli["next"], Value::Null);
    let (code, out, err) = s.cli(&["promotions", "list", "--limit", "3", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cli["promotions"].as_array().unwrap().len(), 3);
    assert!(cli["next"].is_string(), "{cli:#}");
}

#[tokio::test]
async fn walking_the_status_pages_returns_each_artifact_once_stage_after_stage() {
    let temp = tempfile::tempdir().unwrap();
    let (s, rita) = start(&temp).await;
    let dev = push_artifacts(&s, "dev/team/app", 7).await;
    for digest in &dev[..3] {
        promote(&s, &rita, "team/app", digest).await;
    }
    let mut expected: Vec<(String, String)> =
        dev.iter().map(|d| ("dev".to_string(), d.clone())).collect();
    expected.extend(dev[..3].iter().map(|d| ("staging".to_string(), d.clone())));

    for n in [1, 2, 3, 7, 10, 100] {
        let pages = walk(&s, "/api/v1/status/team/app", n).await;
        let mut listed = Vec::new();
        for page in &pages {
            assert_eq!(page["repository"], "team/app");
            let mut on_page = 0;
            for stage in page["stages"].as_array().unwrap() {
                for artifact in stage["artifacts"].as_array().unwrap() {
                    listed.push((
                        stage["stage"].as_str().unwrap().to_string(),
                        artifact["digest"].as_str().unwrap().to_string(),
                    ));
                    on_page += 1;
                }
            }
            assert!(on_page <= n as usize, "n={n}: {page:#}");
        }
        // Oldest first within a stage, the stages in pipeline order, each artifact once.
        assert_eq!(listed, expected, "n={n}");
    }

    // The pattern form's single-repository answer and a stage-qualified name page alike.
    let pages = walk(&s, "/api/v1/status/staging/team/app", 2).await;
    assert_eq!(pages.len(), 2);
    let (status, body) = get_json(&s.http, &s.url("/api/v1/status?repository=team/app&n=4")).await;
    assert_eq!(status, 200, "{body:#}");
    let first = &body["repositories"][0];
    assert_eq!(first["stages"][0]["artifacts"].as_array().unwrap().len(), 4);
    assert!(first["next"].is_string(), "{body:#}");

    // The CLI shows the whole status by default, one page with --limit.
    let (code, out, err) = s.cli(&["status", "team/app", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let whole: Value = serde_json::from_str(&out).unwrap();
    let count: usize = whole["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stage| stage["artifacts"].as_array().unwrap().len())
        .sum();
    assert_eq!(count, expected.len(), "{whole:#}");
    assert_eq!(whole["next"], Value::Null);
    let (code, out, err) = s.cli(&["status", "team/app", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("more: airlock status 'team/app' --last dev/"),
        "{err}"
    );
    assert!(out.contains(&dev[0]) && !out.contains(&dev[2]), "{out}");
}

#[tokio::test]
async fn a_bad_page_size_or_cursor_is_a_400_naming_the_fix() {
    let temp = tempfile::tempdir().unwrap();
    let (s, rita) = start(&temp).await;
    let dev = push_artifacts(&s, "dev/team/app", 1).await;
    promote(&s, &rita, "team/app", &dev[0]).await;

    for (url, code, names) in [
        (
            "/api/v1/promotions?n=0",
            "PAGINATION_NUMBER_INVALID",
            "1 and 1000",
        ),
        (
            "/api/v1/promotions?n=1001",
            "PAGINATION_NUMBER_INVALID",
            "1 and 1000",
        ),
        (
            "/api/v1/promotions?last=nonsense",
            "PAGINATION_CURSOR_INVALID",
            "`next`",
        ),
        (
            "/api/v1/promotions?last=12:",
            "PAGINATION_CURSOR_INVALID",
            "`next`",
        ),
        ("/api/v1/promotions?n=many", "BAD_REQUEST", "whole number"),
        (
            "/api/v1/status/team/app?n=1001",
            "PAGINATION_NUMBER_INVALID",
            "1 and 1000",
        ),
        (
            "/api/v1/status/team/app?last=prod",
            "PAGINATION_CURSOR_INVALID",
            "`next`",
        ),
        (
            "/api/v1/status/team/app?last=nostage/1:sha256:00",
            "PAGINATION_CURSOR_INVALID",
            "`next`",
        ),
        (
            "/api/v1/status/staging/team/app?last=dev/1:sha256:00",
            "PAGINATION_CURSOR_INVALID",
            "`next`",
        ),
        (
            "/api/v1/status?repository=team/*&n=101",
            "PAGINATION_NUMBER_INVALID",
            "1 and 100",
        ),
    ] {
        let (status, body) = get_json(&s.http, &s.url(url)).await;
        assert_eq!(status, 400, "{url}: {body:#}");
        assert_eq!(body["error"]["code"], code, "{url}: {body:#}");
        let text = body.to_string();
        assert!(text.contains(names), "{url}: {body:#}");
    }
}

/// `status` of a repository with many artifacts answers a bounded page, and the server's
/// resident memory after 100 such calls is within 16 MiB of what it was after the first ten
/// (no growth with the number of calls).
#[tokio::test]
async fn server_memory_stays_flat_over_100_status_calls_on_a_large_repository() {
    const ARTIFACTS: usize = 600;
    const BOUND_KIB: u64 = 16 * 1024;
    let temp = tempfile::tempdir().unwrap();
    let (s, _) = start(&temp).await;
    push_artifacts(&s, "dev/big/app", ARTIFACTS).await;
    let url = s.url("/api/v1/status/big/app");
    for _ in 0..10 {
        let (status, body) = get_json(&s.http, &url).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(
            body["stages"][0]["artifacts"].as_array().unwrap().len(),
            100
        );
        assert!(body["next"].is_string());
    }
    let before = s.rss_kib();
    for _ in 0..100 {
        let (status, _) = get_json(&s.http, &url).await;
        assert_eq!(status, 200);
    }
    let after = s.rss_kib();
    assert!(
        after <= before + BOUND_KIB,
        "RSS grew from {before} KiB to {after} KiB over 100 status calls"
    );
}

#[tokio::test]
async fn walking_the_anomaly_pages_returns_each_anomaly_once_newest_first() {
    let s = TestServer::start_with_env(&[("AIRLOCK_ANOMALIES__UNPROMOTED_DIGEST__THRESHOLD", "1")]);
    let digest = push_artifacts(&s, "dev/team/app", 1).await.remove(0);
    // One open anomaly per principal that asks prod for a digest never promoted there.
    for i in 0..5 {
        let name = format!("prober{i}");
        let prober = common::add_user(&s, &name, PROBER_PASSWORD, &[("deployer", "prod")]).await;
        let status = prober
            .get(s.url(&format!("/v2/prod/team/app/manifests/{digest}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404);
    }
    let (status, all) = get_json(&s.http, &s.url("/api/v1/anomalies?n=1000")).await;
    assert_eq!(status, 200, "{all:#}");
    assert_eq!(all["next"], Value::Null);
    let ids: Vec<i64> = all["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{all:#}");
    for n in [1, 2, 5] {
        let pages = walk(&s, "/api/v1/anomalies?status=open", n).await;
        let walked: Vec<i64> = pages
            .iter()
            .flat_map(|p| p["anomalies"].as_array().unwrap().clone())
            .map(|a| a["id"].as_i64().unwrap())
            .collect();
        assert_eq!(walked, ids, "n={n}");
    }
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);
    for (url, code) in [
        ("/api/v1/anomalies?n=0", "PAGINATION_NUMBER_INVALID"),
        ("/api/v1/anomalies?n=1001", "PAGINATION_NUMBER_INVALID"),
        ("/api/v1/anomalies?last=x", "PAGINATION_CURSOR_INVALID"),
        ("/api/v1/anomalies?n=5&limit=5", "BAD_REQUEST"),
    ] {
        let (status, body) = get_json(&s.http, &s.url(url)).await;
        assert_eq!(status, 400, "{url}: {body:#}");
        assert_eq!(body["error"]["code"], code, "{url}: {body:#}");
    }
}

const PROBER_PASSWORD: &str = "paging-test-password-1";
