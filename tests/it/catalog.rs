//! The catalog end to end: `airlock stages`, `repos`, `tags`, `channels history` and `status`
//! and their API routes, paging, the pull-rights filter, and the errors that name a mistake.

use crate::common;

use common::{TestServer, add_user, permissive_bundle, post_json as post};
use serde_json::{Value, json};

const PASSWORD: &str = "catalog-test-password-1";

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn names(list: &Value, field: &str, key: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {list:#}"))
        .iter()
        .map(|entry| entry[key].as_str().unwrap().to_string())
        .collect()
}

/// A server with the permissive policy bundle, where prod needs one approval.
fn start(temp: &tempfile::TempDir) -> TestServer {
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GATES__PROD__APPROVALS__COUNT", "1"),
    ])
}

/// Promotes `digest` from `source` to `to` as `client`; returns the promotion id.
async fn promote(
    s: &TestServer,
    client: &reqwest::Client,
    source: &str,
    digest: &str,
    to: &str,
) -> String {
    let (status, body) = post(
        client,
        &s.url("/api/v1/promotions"),
        json!({"source": source, "reference": digest, "to": to}),
    )
    .await;
    assert!(status == 201, "promote {source} -> {to}: {status} {body:#}");
    body["promotion"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn stages_lists_each_stage_with_its_kind_sources_gate_channels_and_freeze() {
    let temp = tempfile::tempdir().unwrap();
    let s = start(&temp);
    let (status, body) = post(
        &s.http,
        &s.url("/api/v1/stages/prod/freeze"),
        json!({"reason": "release freeze"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = get(&s.http, &s.url("/api/v1/stages")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body, "stages", "name"), ["dev", "staging", "prod"]);
    let dev = &body["stages"][0];
    assert_eq!(
        (dev["kind"].as_str(), &dev["gate"]),
        (Some("push"), &Value::Null)
    );
    let prod = &body["stages"][2];
    assert_eq!(prod["kind"], "gated");
    assert_eq!(prod["from"], json!(["staging"]));
    assert_eq!(prod["channel_tags"], json!(["stable"]));
    assert_eq!(prod["gate"]["query"], "data.airlock.gates.prod");
    assert_eq!(prod["gate"]["approvals"], 1);
    assert_eq!(prod["gate"]["approver_role"], "approver");
    assert_eq!(prod["frozen"]["reason"], "release freeze");
    assert_eq!(prod["frozen"]["by"], "admin");
    assert_eq!(body["stages"][1]["frozen"], Value::Null);

    let (code, out, err) = s.cli(&["stages"]);
    assert_eq!(code, 0, "{err}");
    let prod_line = out.lines().find(|l| l.starts_with("prod")).unwrap();
    assert!(
        prod_line.contains("gated") && prod_line.contains("from: staging"),
        "{out}"
    );
    assert!(prod_line.contains("FROZEN: release freeze"), "{out}");
    let (code, out, _) = s.cli(&["stages", "--output", "json"]);
    assert_eq!(code, 0);
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["stages"][2]["gate"]["approvals"], 1);
}

#[tokio::test]
async fn repos_lists_repositories_holding_artifacts_a_page_at_a_time() {
    let s = TestServer::start();
    for repo in ["dev/team/a", "dev/team/b", "dev/team/c"] {
        s.push_image(repo, "1.0", &[repo.as_bytes()]).await;
    }
    // An upload alone leaves a repository without artifacts: it is not listed.
    s.push_blob("dev/team/empty", b"only a blob").await;

    let (status, page) = get(&s.http, &s.url("/api/v1/repositories?stage=dev&n=2")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        names(&page, "repositories", "name"),
        ["dev/team/a", "dev/team/b"]
    );
    assert_eq!(page["repositories"][0]["stage"], "dev");
    assert_eq!(page["repositories"][0]["path"], "team/a");
    assert_eq!(page["next"], "dev/team/b");
    let (_, rest) = get(
        &s.http,
        &s.url("/api/v1/repositories?stage=dev&n=2&last=dev/team/b"),
    )
    .await;
    assert_eq!(names(&rest, "repositories", "name"), ["dev/team/c"]);
    assert_eq!(rest["next"], Value::Null);
    let (_, prod) = get(&s.http, &s.url("/api/v1/repositories?stage=prod")).await;
    assert_eq!(prod["repositories"], json!([]));

    let (code, out, err) = s.cli(&["repos", "dev", "-n", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["dev/team/a", "dev/team/b"]
    );
    assert!(
        err.contains("more: airlock repos dev --last dev/team/b"),
        "{err}"
    );
    let (code, out, _) = s.cli(&["repos"]);
    assert_eq!((code, out.lines().count()), (0, 3), "{out}");
}

#[tokio::test]
async fn list_requests_with_a_typo_are_refused_naming_the_mistake() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    for (path, code, needle) in [
        (
            "/api/v1/repositories?stage=prdo",
            "STAGE_UNKNOWN",
            "dev, staging, prod",
        ),
        (
            "/api/v1/repositories?n=0",
            "PAGINATION_NUMBER_INVALID",
            "1 to 1000",
        ),
        (
            "/api/v1/repositories?n=ten",
            "BAD_REQUEST",
            "invalid query string",
        ),
        (
            "/api/v1/tags?repository=prdo/team/app",
            "STAGE_UNKNOWN",
            "dev, staging, prod",
        ),
        ("/api/v1/tags?repository=Team", "NAME_INVALID", "Team"),
        (
            "/api/v1/channels/history?repository=prod/team/app&channel=latest",
            "CHANNEL_UNKNOWN",
            "stable",
        ),
        (
            "/api/v1/channels/history?repository=dev/team/app&channel=stable",
            "STAGE_NOT_GATED",
            "staging, prod",
        ),
        (
            "/api/v1/channels/history?repository=prod/team/app&channel=stable&last=x",
            "PAGINATION_CURSOR_INVALID",
            "\"x\"",
        ),
        (
            "/api/v1/status/team/*",
            "BAD_REQUEST",
            "/api/v1/status?repository=team/*",
        ),
    ] {
        let (status, body) = get(&s.http, &s.url(path)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        let text = format!(
            "{} {}",
            body["error"]["message"].as_str().unwrap(),
            body["error"]["remediation"].as_str().unwrap()
        );
        assert!(text.contains(needle), "{path}: {body}");
    }
    let (code, _, err) = s.cli(&["repos", "prdo"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("there is no stage \"prdo\"; the stages are: dev, staging, prod"),
        "{err}"
    );
    let (code, _, err) = s.cli(&["channels", "history", "prod/team/app", "latest"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("its channel tags are: stable"), "{err}");
}

#[tokio::test]
async fn tags_lists_each_tag_with_its_digest_and_time_a_page_at_a_time() {
    let s = TestServer::start();
    s.push_image("dev/team/app", "1.0", &[b"one"]).await;
    let (_, one) = s.push_image("dev/team/app", "1.1", &[b"two"]).await;
    s.push_image("dev/team/app", "latest", &[b"two"]).await;

    let (status, page) = get(&s.http, &s.url("/api/v1/tags?repository=dev/team/app&n=2")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["repository"], "dev/team/app");
    assert_eq!(names(&page, "tags", "name"), ["1.0", "1.1"]);
    assert_eq!(page["tags"][1]["digest"], one.as_str());
    assert!(
        page["tags"][1]["updated"].as_str().unwrap().ends_with('Z'),
        "{page}"
    );
    assert_eq!(page["next"], "1.1");
    let (_, rest) = get(
        &s.http,
        &s.url("/api/v1/tags?repository=dev/team/app&n=2&last=1.1"),
    )
    .await;
    assert_eq!(names(&rest, "tags", "name"), ["latest"]);
    assert_eq!(rest["tags"][0]["digest"], one.as_str());
    assert_eq!(rest["next"], Value::Null);

    let (code, out, err) = s.cli(&["tags", "dev/team/app"]);
    assert_eq!(code, 0, "{err}");
    let latest = out.lines().find(|l| l.starts_with("latest")).unwrap();
    assert!(latest.contains(&one), "{out}");
    // A repository holding nothing is a failed check that names it.
    let (status, body) = get(&s.http, &s.url("/api/v1/tags?repository=dev/team/ap")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        "dev/team/ap holds no artifacts you may read"
    );
    let (code, _, err) = s.cli(&["tags", "dev/team/ap"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("airlock repos"), "{err}");
}

#[tokio::test]
async fn a_principal_sees_only_the_repositories_it_may_pull() {
    let s = TestServer::start();
    s.push_image("dev/team/a", "1.0", &[b"a"]).await;
    s.push_image("dev/team/b", "1.0", &[b"b"]).await;
    let rui = add_user(&s, "rui", PASSWORD, &[("reader", "dev/team/a")]).await;

    let (_, page) = get(&rui, &s.url("/api/v1/repositories")).await;
    assert_eq!(names(&page, "repositories", "name"), ["dev/team/a"]);
    let (status, _) = get(&rui, &s.url("/api/v1/tags?repository=dev/team/a")).await;
    assert_eq!(status, 200);
    // Another repository answers exactly like one that does not exist.
    let (status, hidden) = get(&rui, &s.url("/api/v1/tags?repository=dev/team/b")).await;
    let (_, missing) = get(&rui, &s.url("/api/v1/tags?repository=dev/team/zz")).await;
    assert_eq!(status, 404);
    assert_eq!(
        hidden["error"]["message"]
            .as_str()
            .unwrap()
            .replace("team/b", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("team/zz", "X")
    );
    let (status, _) = get(&rui, &s.url("/api/v1/status/team/b")).await;
    assert_eq!(status, 404);
    let (status, body) = get(&rui, &s.url("/api/v1/status?repository=team/*")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body, "repositories", "repository"), ["team/a"]);
    let (_, a) = get(&rui, &s.url("/api/v1/status/team/a")).await;
    assert_eq!(names(&a, "stages", "repository"), ["dev/team/a"]);

    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = s.cli_as(
        home.path(),
        &["login", &s.base, "-u", "rui", "--password-stdin"],
        Some(PASSWORD),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = s.cli_as(home.path(), &["repos"], None);
    assert_eq!((code, out.trim()), (0, "dev/team/a"), "{err}");
    let (code, _, err) = s.cli_as(home.path(), &["status", "team/b"], None);
    assert_eq!(code, 1, "{err}");
    // The admin sees both.
    let (_, all) = get(&s.http, &s.url("/api/v1/repositories")).await;
    assert_eq!(all["repositories"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn status_shows_approvers_promotion_times_and_channel_history_per_stage() {
    let temp = tempfile::tempdir().unwrap();
    let s = start(&temp);
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let alice = add_user(&s, "alice", PASSWORD, &[("approver", "prod")]).await;
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"release"]).await;
    promote(&s, &rita, "dev/team/app", &digest, "staging").await;
    let id = promote(&s, &rita, "staging/team/app", &digest, "prod").await;
    let (status, body) = post(
        &alice,
        &s.url(&format!("/api/v1/promotions/{id}/approve")),
        json!({"comment": "looks good"}),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");

    let (status, body) = get(&s.http, &s.url("/api/v1/status/prod/team/app")).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["repository"], "team/app");
    assert_eq!(names(&body, "stages", "stage"), ["prod"]);
    let artifact = &body["stages"][0]["artifacts"][0];
    assert_eq!(artifact["digest"], digest.as_str());
    assert_eq!(
        (
            artifact["promotion"].as_str(),
            artifact["promoted_by"].as_str()
        ),
        (Some(id.as_str()), Some("rita"))
    );
    assert!(
        artifact["requested_at"].is_string() && artifact["promoted_at"].is_string(),
        "{artifact}"
    );
    assert_eq!(artifact["approvals"][0]["principal"], "alice");
    assert_eq!(artifact["approvals"][0]["comment"], "looks good");
    let stable = &body["stages"][0]["channels"][0];
    assert_eq!(stable["channel"], "stable");
    assert_eq!(stable["moves"][0]["digest"], digest.as_str());
    assert_eq!(stable["moves"][0]["action"], "promote");
    assert_eq!(stable["moves"][0]["promotion"], id.as_str());

    let (_, all) = get(&s.http, &s.url("/api/v1/status/team/app")).await;
    assert_eq!(names(&all, "stages", "stage"), ["dev", "staging", "prod"]);
    let (code, out, err) = s.cli(&["status", "team/app"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("by {id} (rita)")), "{out}");
    assert!(
        out.contains("approved by alice at ") && out.contains(": looks good"),
        "{out}"
    );
    assert!(out.contains("channel stable:"), "{out}");

    let (status, history) = get(
        &s.http,
        &s.url("/api/v1/channels/history?repository=prod/team/app&channel=stable"),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    // The approval that completed the set moved the tag.
    assert_eq!(history["moves"][0]["by"], "alice");
    assert_eq!(history["next"], Value::Null);
    let (code, out, err) = s.cli(&["channels", "history", "prod/team/app", "stable"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("promote") && out.contains(&digest) && out.contains(&id),
        "{out}"
    );
}

#[tokio::test]
async fn channel_history_is_newest_first_a_page_at_a_time() {
    let temp = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&temp.path().join("bundle"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let rita = add_user(&s, "rita", PASSWORD, &[("promoter", "*")]).await;
    let mut digests = Vec::new();
    for version in ["1", "2", "3"] {
        let (_, digest) = s
            .push_image("dev/team/app", version, &[version.as_bytes()])
            .await;
        promote(&s, &rita, "dev/team/app", &digest, "staging").await;
        promote(&s, &rita, "staging/team/app", &digest, "prod").await;
        digests.push(digest);
    }
    let url = "/api/v1/channels/history?repository=prod/team/app&channel=stable&n=2";
    let (status, first) = get(&s.http, &s.url(url)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        names(&first, "moves", "digest"),
        [digests[2].clone(), digests[1].clone()]
    );
    let next = first["next"].as_str().unwrap().to_string();
    let (_, second) = get(&s.http, &s.url(&format!("{url}&last={next}"))).await;
    assert_eq!(names(&second, "moves", "digest"), [digests[0].clone()]);
    assert_eq!(second["next"], Value::Null);
    let (code, _, err) = s.cli(&["channels", "history", "prod/team/app", "stable", "-n", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("--last {next}")), "{err}");
}

#[tokio::test]
async fn status_takes_a_stage_qualified_name_a_path_or_a_pattern_and_names_typos() {
    let s = TestServer::start();
    for repo in ["dev/team/a", "dev/team/b", "dev/other/c"] {
        s.push_image(repo, "1.0", &[repo.as_bytes()]).await;
    }
    let (status, page) = get(&s.http, &s.url("/api/v1/status?repository=team/*&n=1")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page, "repositories", "repository"), ["team/a"]);
    assert_eq!(page["next"], "team/a");
    let (_, rest) = get(
        &s.http,
        &s.url("/api/v1/status?repository=team/*&n=1&last=team/a"),
    )
    .await;
    assert_eq!(names(&rest, "repositories", "repository"), ["team/b"]);
    let (_, dev_only) = get(&s.http, &s.url("/api/v1/status?repository=dev/team/*")).await;
    assert_eq!(
        names(&dev_only["repositories"][0], "stages", "stage"),
        ["dev"]
    );
    // The same answer through the path with `/` percent-encoded, as an OpenAPI client sends it.
    let (status, encoded) = get(&s.http, &s.url("/api/v1/status/team%2Fa")).await;
    assert_eq!((status, &encoded["repository"]), (200, &json!("team/a")));

    let (code, out, err) = s.cli(&["status", "team/*", "-n", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dev/team/a") && !out.contains("dev/team/b"),
        "{out}"
    );
    assert!(err.contains("--last team/a"), "{err}");
    // A path with no artifacts anywhere: 404 naming it, exit 1.
    let (status, body) = get(&s.http, &s.url("/api/v1/status/team/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "team/nope holds no artifacts you may read"
    );
    let (code, _, err) = s.cli(&["status", "team/nope"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = s.cli(&["status", "prod/team/a"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("prod/team/a holds no artifacts"), "{err}");
    let (code, _, err) = s.cli(&["status", "nothing/*"]);
    assert_eq!(code, 1, "{err}");
    // A misspelt stage in front of a real path: 400 naming the stages, exit 2.
    let (status, body) = get(&s.http, &s.url("/api/v1/status/prdo/team/a")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "STAGE_UNKNOWN");
    let (code, _, err) = s.cli(&["status", "prdo/team/a"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the stages are: dev, staging, prod"), "{err}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_catalog_route() {
    let s = TestServer::start();
    let (status, doc) = get(&s.anonymous, &s.url("/api/v1/openapi.json")).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/stages",
        "/api/v1/repositories",
        "/api/v1/tags",
        "/api/v1/channels/history",
        "/api/v1/status",
        "/api/v1/status/{path}",
    ] {
        let operation = &doc["paths"][path]["get"];
        assert_eq!(operation["tags"], json!(["catalog"]), "{path}");
        assert!(operation["responses"]["200"].is_object(), "{path}");
        assert!(operation["responses"]["401"].is_object(), "{path}");
    }
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn paging_cursors_never_name_a_repository_the_principal_may_not_pull() {
    let s = TestServer::start();
    for repo in [
        "dev/team-a/one",
        "dev/team-b/secret",
        "dev/team-b/secret2",
        "dev/team-a/two",
        "dev/team-c/hidden",
        "dev/team-a/zz",
    ] {
        s.push_image(repo, "1.0", &[repo.as_bytes()]).await;
    }
    let alice = add_user(&s, "alice", PASSWORD, &[("reader", "dev/team-a/*")]).await;
    let walks = [
        ("/api/v1/repositories?n=1", "repositories", "name"),
        ("/api/v1/repositories?stage=dev&n=2", "repositories", "name"),
        (
            "/api/v1/status?repository=*&n=1",
            "repositories",
            "repository",
        ),
        (
            "/api/v1/status?repository=dev/*&n=2",
            "repositories",
            "repository",
        ),
    ];
    for (first, field, key) in walks {
        let mut seen = Vec::new();
        let mut url = first.to_string();
        for _ in 0..20 {
            let (status, page) = get(&alice, &s.url(&url)).await;
            assert_eq!(status, 200, "{url}: {page}");
            let mut all = Vec::new();
            strings(&page, &mut all);
            for text in &all {
                assert!(
                    !text.contains("team-b") && !text.contains("team-c"),
                    "{url} names an unreadable repository: {page:#}"
                );
            }
            seen.extend(names(&page, field, key));
            match page["next"].as_str() {
                Some(next) => {
                    assert_eq!(seen.last().map(String::as_str), Some(next), "{page:#}");
                    url = format!("{first}&last={next}");
                }
                None => break,
            }
        }
        let expected: Vec<String> = ["team-a/one", "team-a/two", "team-a/zz"]
            .iter()
            .map(|p| {
                if key == "name" {
                    format!("dev/{p}")
                } else {
                    p.to_string()
                }
            })
            .collect();
        assert_eq!(seen, expected, "{first}");
    }
    // The cursor of a page that ends the readable entries is absent, even with more
    // unreadable entries after it.
    let (_, page) = get(&alice, &s.url("/api/v1/repositories?n=3")).await;
    assert_eq!(page["next"], Value::Null, "{page:#}");
}
