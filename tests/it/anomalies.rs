//! Anomaly response: every rule trips at its threshold and not below, its action holds from the
//! very next request, windows survive a restart, and resolving restores access and is recorded.

use crate::common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{
    OCI_MANIFEST, TestServer, client_as, cosign_spec_ok, post_json, python_ready, sha256,
};
use serde_json::{Value, json};

const PASSWORD: &str = "anomaly-test-password-1";
const REPO: &str = "dev/team/app";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A gate that denies only with the default bundle's shared rules, so promotions of unsigned
/// test images are allowed.
fn permissive_bundle(dir: &Path) -> PathBuf {
    let read = |name: &str| std::fs::read_to_string(Path::new("policies").join(name)).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let gate = |stage: &str| {
        format!(
            "package airlock.gates.{stage}\n\nimport data.airlock.lib.common_deny\n\n\
             deny contains v if some v in common_deny\n"
        )
    };
    for (name, content) in [
        ("lib.rego", read("lib.rego")),
        ("rollback.rego", read("rollback.rego")),
        ("data.json", read("data.json")),
        ("staging.rego", gate("staging")),
        ("prod.rego", gate("prod")),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
    }
    dir.to_path_buf()
}

/// Allowed hours (UTC) that exclude now: two hours ahead, so that crossing an hour boundary
/// during a test changes nothing.
fn hours_excluding_now() -> String {
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24)
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates user `name` (password [`PASSWORD`]) with `(role, scope)` grants.
async fn user(s: &TestServer, name: &str, grants: &[(&str, &str)]) -> reqwest::Client {
    common::add_user(s, name, PASSWORD, grants).await
}

/// An access token for `user` (the Docker token flow), and a client that sends only it.
async fn bearer_client(s: &TestServer, user: &str) -> reqwest::Client {
    let (status, body) = get(
        &client_as(user, PASSWORD),
        &s.url(&format!(
            "/auth/token?service=airlock&scope=repository:{REPO}:pull"
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn promote(s: &TestServer, client: &reqwest::Client, digest: &str, to: &str) -> (u16, Value) {
    let source = if to == "prod" {
        "staging/team/app"
    } else {
        REPO
    };
    post_json(
        client,
        &s.url("/api/v1/promotions"),
        json!({"source": source, "reference": digest, "to": to}),
    )
    .await
}

/// A user who may promote into every gated stage (created on first use).
async fn releaser(s: &TestServer) -> reqwest::Client {
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/users"),
        json!({"name": "releaser", "password": PASSWORD}),
    )
    .await;
    if status == 201 {
        for stage in ["staging", "prod"] {
            let (status, body) = post_json(
                &s.http,
                &s.url("/api/v1/roles/grant"),
                json!({"principal": "releaser", "role": "promoter", "scope": stage}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    } else {
        assert_eq!(status, 409, "{body}");
    }
    client_as("releaser", PASSWORD)
}

async fn anomalies(s: &TestServer, status: &str) -> Vec<Value> {
    let (code, body) = get(
        &s.http,
        &s.url(&format!("/api/v1/anomalies?status={status}")),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["anomalies"].as_array().cloned().unwrap()
}

/// The open anomalies raised by `rule`.
async fn open_of(s: &TestServer, rule: &str) -> Vec<Value> {
    anomalies(s, "open")
        .await
        .into_iter()
        .filter(|a| a["rule"] == rule)
        .collect()
}

async fn resolve(
    s: &TestServer,
    client: &reqwest::Client,
    id: &Value,
    reason: &str,
) -> (u16, Value) {
    post_json(
        client,
        &s.url(&format!("/api/v1/anomalies/{id}/resolve")),
        json!({ "reason": reason }),
    )
    .await
}

/// The audit entries of `kind`.
async fn audit_of(s: &TestServer, kind: &str) -> Vec<Value> {
    s.wait_for_checkpoint().await;
    s.audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// A pull of the manifest `digest` from `repo` as `client`: the status.
async fn pull(s: &TestServer, client: &reqwest::Client, repo: &str, digest: &str) -> u16 {
    client
        .get(s.url(&format!("/v2/{repo}/manifests/{digest}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn denied_promotions_lock_the_requester_at_the_threshold_until_resolved() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__THRESHOLD", "3"),
        (
            "AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__ACTION",
            "lock_principal",
        ),
    ]);
    let mallory = user(&s, "mallory", &[("promoter", "staging"), ("reader", "*")]).await;
    let (_, digest) = s.push_image(REPO, "1.0", &[b"unsigned layer"]).await;
    let token_client = bearer_client(&s, "mallory").await;

    // Two denials (staging requires a signature): below the threshold, nothing happens.
    for _ in 0..2 {
        let (status, body) = promote(&s, &mallory, &digest, "staging").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "POLICY_DENIED", "{body}");
    }
    assert!(open_of(&s, "denied_promotions").await.is_empty());
    assert_eq!(pull(&s, &token_client, REPO, &digest).await, 200);

    // The third trips the rule: the anomaly is recorded and audited, and the lock holds on the
    // very next request, for the outstanding token and for the password.
    let (status, _) = promote(&s, &mallory, &digest, "staging").await;
    assert_eq!(status, 403);
    let open = open_of(&s, "denied_promotions").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    let anomaly = &open[0];
    assert_eq!(anomaly["action"], "lock_principal");
    assert_eq!(anomaly["applied"], true);
    assert_eq!(anomaly["observed"], 3);
    assert_eq!(anomaly["target"]["principal"], "mallory");
    assert_eq!(pull(&s, &token_client, REPO, &digest).await, 401);
    let (status, body) = get(&mallory, &s.url("/api/v1/promotions")).await;
    assert_eq!(status, 401, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("locked by anomaly"), "{body}");
    let detected = audit_of(&s, "anomaly.detected").await;
    assert_eq!(detected.len(), 1, "{detected:#?}");
    assert_eq!(detected[0]["details"]["alert"], true);
    assert_eq!(detected[0]["subject"]["id"], anomaly["id"]);

    // Resolving restores access (with a new token) and is recorded.
    let (status, body) = resolve(&s, &s.http, &anomaly["id"], "false alarm: policy typo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["resolved_by"], "admin");
    let (status, _) = get(&mallory, &s.url("/api/v1/promotions")).await;
    assert_eq!(status, 200);
    assert_eq!(
        pull(&s, &bearer_client(&s, "mallory").await, REPO, &digest).await,
        200
    );
    let resolved = audit_of(&s, "anomaly.resolved").await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["actor"]["principal"], "admin");
    assert_eq!(resolved[0]["details"]["reason"], "false alarm: policy typo");
    // The window restarts: one more denial does not lock again.
    promote(&s, &mallory, &digest, "staging").await;
    assert!(open_of(&s, "denied_promotions").await.is_empty());
    let (status, _) = resolve(&s, &s.http, &anomaly["id"], "again").await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn authentication_failures_lock_the_named_principal_and_alert_on_the_source() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_ANOMALIES__AUTH_FAILURES__THRESHOLD", "3"),
        ("AIRLOCK_ANOMALIES__AUTH_FAILURES__ACTION", "lock_principal"),
    ]);
    let alice = user(&s, "alice", &[("reader", "*")]).await;
    let wrong = client_as("alice", "not-her-password");
    let catalog = s.url("/v2/_catalog");
    for _ in 0..2 {
        assert_eq!(wrong.get(&catalog).send().await.unwrap().status(), 401);
    }
    assert_eq!(alice.get(&catalog).send().await.unwrap().status(), 200);
    assert!(open_of(&s, "auth_failures").await.is_empty());

    assert_eq!(wrong.get(&catalog).send().await.unwrap().status(), 401);
    let response = alice.get(&catalog).send().await.unwrap();
    assert_eq!(response.status(), 401, "the right password no longer works");
    let open = open_of(&s, "auth_failures").await;
    let by_principal: Vec<&Value> = open
        .iter()
        .filter(|a| a["key"] == "principal:alice")
        .collect();
    let by_source: Vec<&Value> = open
        .iter()
        .filter(|a| a["key"].as_str().unwrap().starts_with("source:"))
        .collect();
    assert_eq!(by_principal.len(), 1, "{open:#?}");
    assert_eq!(by_principal[0]["applied"], true);
    // A source address is no one principal: that anomaly alerts and locks nobody.
    assert_eq!(by_source.len(), 1, "{open:#?}");
    assert_eq!(by_source[0]["applied"], false);
    assert_eq!(by_source[0]["target"]["source"], "127.0.0.1");

    let (status, _) = resolve(
        &s,
        &s.http,
        &by_principal[0]["id"],
        "alice forgot her password",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(alice.get(&catalog).send().await.unwrap().status(), 200);

    // Tokens anyone can forge name no one: they count for their source, never for alice.
    let forged = format!(
        "Bearer {}.{}.c2lnbmF0dXJl",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"alice"}"#)
    );
    for _ in 0..5 {
        let status = s
            .anonymous
            .get(&catalog)
            .header("authorization", &forged)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    assert!(
        open_of(&s, "auth_failures")
            .await
            .iter()
            .all(|a| a["key"] != "principal:alice"),
        "forged tokens must not lock alice"
    );
    assert_eq!(alice.get(&catalog).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn windows_survive_a_restart() {
    let env = [("AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__THRESHOLD", "3")];
    let mut s = TestServer::start_with_env(&env);
    let mallory = user(&s, "mallory", &[("promoter", "staging")]).await;
    let (_, digest) = s.push_image(REPO, "1.0", &[b"unsigned layer"]).await;
    for _ in 0..2 {
        assert_eq!(promote(&s, &mallory, &digest, "staging").await.0, 403);
    }
    s.stop();
    let data_dir = s.data_dir.clone();
    let s2 = TestServer::start_in(&data_dir, &env);
    assert!(open_of(&s2, "denied_promotions").await.is_empty());
    assert_eq!(promote(&s2, &mallory, &digest, "staging").await.0, 403);
    let open = open_of(&s2, "denied_promotions").await;
    assert_eq!(open.len(), 1, "the two denials before the restart counted");
    assert_eq!(open[0]["observed"], 3);
    drop(s);
}

#[tokio::test]
async fn a_burst_of_promotions_freezes_the_stage_until_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_ANOMALIES__PROMOTION_BURST__THRESHOLD", "2"),
        ("AIRLOCK_ANOMALIES__PROMOTION_BURST__ACTION", "freeze_stage"),
        ("AIRLOCK_ANOMALIES__DENIED_PROMOTIONS__THRESHOLD", "1"),
    ]);
    let mut digests = Vec::new();
    for n in 0..3 {
        let (_, digest) = s
            .push_image(REPO, &format!("{n}.0"), &[format!("layer {n}").as_bytes()])
            .await;
        digests.push(digest);
    }
    let (status, body) = promote(&s, &releaser(&s).await, &digests[0], "staging").await;
    assert_eq!(status, 201, "{body}");
    assert!(open_of(&s, "promotion_burst").await.is_empty());
    let (status, body) = promote(&s, &releaser(&s).await, &digests[1], "staging").await;
    assert_eq!(status, 201, "{body}");
    let open = open_of(&s, "promotion_burst").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["key"], "stage:staging");
    assert_eq!(open[0]["applied"], true);

    let (status, body) = promote(&s, &releaser(&s).await, &digests[2], "staging").await;
    assert_eq!(status, 403, "{body}");
    let rules: Vec<&str> = body["decision"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.iter().any(|r| r.ends_with("stage_frozen")),
        "{body:#}"
    );
    assert_eq!(audit_of(&s, "stage.frozen").await.len(), 1);
    // A denial by the freeze itself is not the requester's doing: it locks nobody.
    assert!(open_of(&s, "denied_promotions").await.is_empty());

    let (status, _) = resolve(&s, &s.http, &open[0]["id"], "release day").await;
    assert_eq!(status, 200);
    assert_eq!(audit_of(&s, "stage.unfrozen").await.len(), 1);
    let (status, body) = promote(&s, &releaser(&s).await, &digests[2], "staging").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_freeze_set_by_an_anomaly_is_lifted_only_by_resolving_it() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_ANOMALIES__PROMOTION_BURST__THRESHOLD", "1"),
        ("AIRLOCK_ANOMALIES__PROMOTION_BURST__ACTION", "freeze_stage"),
    ]);
    let (_, digest) = s.push_image(REPO, "1.0", &[b"layer"]).await;
    assert_eq!(
        promote(&s, &releaser(&s).await, &digest, "staging").await.0,
        201
    );
    let open = open_of(&s, "promotion_burst").await;
    assert_eq!(open.len(), 1);
    // Neither unfreezing nor re-freezing by hand takes the freeze away from the anomaly.
    for (path, body) in [
        ("/api/v1/stages/staging/unfreeze", json!({})),
        (
            "/api/v1/stages/staging/freeze",
            json!({"reason": "mine now"}),
        ),
    ] {
        let (status, answer) = post_json(&s.http, &s.url(path), body).await;
        assert_eq!(status, 409, "{path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("anomalies resolve"), "{message}");
    }
    assert_eq!(resolve(&s, &s.http, &open[0]["id"], "checked").await.0, 200);
    let (status, body) = get(&s.http, &s.url("/api/v1/status/team/app")).await;
    assert_eq!(status, 200, "{body}");
    let staging = body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["stage"] == "staging")
        .cloned()
        .unwrap();
    assert_eq!(staging["frozen"], Value::Null, "{body:#}");
}

#[tokio::test]
async fn pulling_an_unpromoted_digest_from_a_gated_stage_alerts() {
    let s = TestServer::start_with_env(&[("AIRLOCK_ANOMALIES__UNPROMOTED_DIGEST__THRESHOLD", "2")]);
    let deployer = user(&s, "deployer", &[("deployer", "prod")]).await;
    let (_, digest) = s.push_image(REPO, "1.0", &[b"never promoted"]).await;
    // Pulls by tag and pulls from push stages are not probes.
    assert_eq!(pull(&s, &deployer, "prod/team/app", "1.0").await, 404);
    assert_eq!(pull(&s, &deployer, "prod/team/app", &digest).await, 404);
    assert!(open_of(&s, "unpromoted_digest").await.is_empty());
    assert_eq!(pull(&s, &deployer, "prod/team/app", &digest).await, 404);
    let open = open_of(&s, "unpromoted_digest").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["action"], "alert");
    assert_eq!(open[0]["target"]["principal"], "deployer");
    assert_eq!(open[0]["target"]["digest"], digest.as_str());
    assert_eq!(open[0]["target"]["stage"], "prod");
    // An alert locks nobody.
    assert_eq!(pull(&s, &deployer, "prod/team/app", "1.0").await, 404);
}

#[tokio::test]
async fn promotions_outside_the_allowed_hours_alert() {
    let hours = hours_excluding_now();
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__ENABLED", "true"),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__DAYS", "*"),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__HOURS", &hours),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__THRESHOLD", "2"),
    ]);
    let (_, first) = s.push_image(REPO, "1.0", &[b"one"]).await;
    let (_, second) = s.push_image(REPO, "2.0", &[b"two"]).await;
    assert_eq!(
        promote(&s, &releaser(&s).await, &first, "staging").await.0,
        201
    );
    assert!(open_of(&s, "off_hours_promotion").await.is_empty());
    assert_eq!(
        promote(&s, &releaser(&s).await, &second, "staging").await.0,
        201
    );
    let open = open_of(&s, "off_hours_promotion").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert!(open[0]["summary"].as_str().unwrap().contains(&hours));

    // Within the allowed hours nothing is raised.
    let all_day = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__ENABLED", "true"),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__DAYS", "*"),
        (
            "AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__HOURS",
            "00:00-24:00",
        ),
        ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__THRESHOLD", "1"),
    ]);
    let (_, digest) = all_day.push_image(REPO, "1.0", &[b"one"]).await;
    assert_eq!(
        promote(&all_day, &releaser(&all_day).await, &digest, "staging")
            .await
            .0,
        201
    );
    assert!(open_of(&all_day, "off_hours_promotion").await.is_empty());
}

#[tokio::test]
async fn only_another_access_admin_resolves_and_only_with_a_reason() {
    let s = TestServer::start_with_env(&[("AIRLOCK_ANOMALIES__UNPROMOTED_DIGEST__THRESHOLD", "1")]);
    let second_admin = user(
        &s,
        "second-admin",
        &[("access-admin", "*"), ("reader", "*")],
    )
    .await;
    let auditor = user(&s, "auditor", &[("auditor", "*")]).await;
    let reader = user(&s, "reader", &[("reader", "*")]).await;
    let (_, digest) = s.push_image(REPO, "1.0", &[b"layer"]).await;
    // An alert about second-admin (it asked prod for an unpromoted digest).
    assert_eq!(pull(&s, &second_admin, "prod/team/app", &digest).await, 404);
    let open = open_of(&s, "unpromoted_digest").await;
    assert_eq!(open.len(), 1);
    let id = &open[0]["id"];

    let (status, body) = resolve(&s, &second_admin, id, "it was me, testing").await;
    assert_eq!(
        status, 403,
        "the principal an anomaly is about never resolves it: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another access-admin")
    );
    let (status, _) = resolve(&s, &auditor, id, "looked fine").await;
    assert_eq!(status, 403, "auditors read, they do not resolve");
    let (status, _) = get(&auditor, &s.url(&format!("/api/v1/anomalies/{id}"))).await;
    assert_eq!(status, 200);
    let (status, _) = get(&reader, &s.url("/api/v1/anomalies")).await;
    assert_eq!(status, 403);
    let (status, body) = resolve(&s, &s.http, id, "   ").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = resolve(&s, &s.http, &json!(999), "no such").await;
    assert_eq!(status, 404);
    let (status, _) = get(&s.http, &s.url("/api/v1/anomalies/abc")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&s.http, &s.url("/api/v1/anomalies?status=bogus")).await;
    assert_eq!(status, 400);

    // The CLI: list, show, resolve.
    let (code, out, err) = s.cli(&["anomalies", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("unpromoted_digest"), "{out}");
    let (code, out, err) = s.cli(&["anomalies", "show", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("second-admin"), "{out}");
    let (code, out, err) = s.cli(&[
        "anomalies",
        "resolve",
        &id.to_string(),
        "--reason",
        "checked with second-admin",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resolved anomaly"), "{out}");
    let (code, _, err) = s.cli(&["anomalies", "resolve", &id.to_string(), "--reason", "x"]);
    assert_eq!(code, 1, "a second resolution is refused");
    assert!(err.contains("already resolved"), "{err}");
    let (code, out, _) = s.cli(&[
        "anomalies",
        "list",
        "--status",
        "resolved",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed["anomalies"][0]["resolution"],
        "checked with second-admin"
    );
}

#[tokio::test]
async fn a_break_glass_promotion_always_raises_an_anomaly() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let oncall = user(&s, "oncall", &[("break-glass", "staging"), ("reader", "*")]).await;
    let approver1 = user(&s, "approver1", &[("approver", "staging")]).await;
    let approver2 = user(&s, "approver2", &[("approver", "staging")]).await;
    // A builder pushes: admin made the approvers, so its push would make them stand-ins.
    let ci = user(&s, "ci", &[("developer", "dev")]).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = push_blob_as(&s, &ci, REPO, config).await;
    let layer_digest = push_blob_as(&s, &ci, REPO, b"hotfix").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": 6}],
    }))
    .unwrap();
    assert_eq!(put_manifest_as(&s, &ci, REPO, &manifest).await, 201);
    let digest = sha256(&manifest);
    let (status, body) = post_json(
        &oncall,
        &s.url("/api/v1/promotions"),
        json!({"source": REPO, "reference": digest, "to": "staging", "break_glass": "outage INC-42"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["promotion"]["id"].as_str().unwrap().to_string();
    assert!(
        open_of(&s, "break_glass").await.is_empty(),
        "not yet promoted"
    );
    for approver in [&approver1, &approver2] {
        let (status, body) = post_json(
            approver,
            &s.url(&format!("/api/v1/promotions/{id}/approve")),
            json!({"comment": "ok"}),
        )
        .await;
        assert!(status == 200 || status == 201, "{body}");
    }
    let open = open_of(&s, "break_glass").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert!(open[0]["summary"].as_str().unwrap().contains("INC-42"));
    assert_eq!(open[0]["target"]["principal"], "oncall");
}

/// Flips one byte inside the DSSE signature of a bundle.
fn with_flipped_signature(bundle: &Value) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bundle = bundle.clone();
    let sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = engine.decode(sig).unwrap();
    // Inside r of the DER signature (past the sequence and integer headers).
    bytes[10] ^= 0x01;
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = engine.encode(bytes).into();
    bundle
}

/// Adds a trusted key `name` scoped to `scope` (made by the independent Python signer) and
/// returns a DSSE bundle naming it, about `digest` in [`REPO`], with one byte of its signature
/// flipped: what a forger who knows the key id but not the private key can produce.
async fn forged_bundle(
    s: &TestServer,
    keyadmin: &reqwest::Client,
    dir: &Path,
    name: &str,
    scope: &str,
    digest: &str,
) -> Vec<u8> {
    let key_dir = dir.join(name);
    cosign_spec_ok(&["keygen", "--out-dir", key_dir.to_str().unwrap()]);
    let public_key = std::fs::read_to_string(key_dir.join("key.pub")).unwrap();
    let (status, body) = post_json(
        keyadmin,
        &s.url("/api/v1/keys"),
        json!({"name": name, "public_key": public_key,
               "purposes": ["sign", format!("attest:{SLSA_V1}")], "scope": [scope]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let predicate = dir.join("provenance.json");
    std::fs::write(
        &predicate,
        json!({"buildDefinition": {}, "runDetails": {"builder": {"id": "https://ci.example/"}}})
            .to_string(),
    )
    .unwrap();
    // A bundle naming the key (as cosign v3 writes it), then one byte of its signature flipped.
    let honest = cosign_spec_ok(&[
        "bundle",
        "--registry",
        &s.base,
        "--user",
        "admin",
        "--password",
        common::ADMIN_PASSWORD,
        "--repo",
        REPO,
        "--digest",
        digest,
        "--key",
        key_dir.join("key.pem").to_str().unwrap(),
        "--mode",
        "dsse",
        "--predicate-type",
        SLSA_V1,
        "--predicate",
        predicate.to_str().unwrap(),
        "--no-push",
        "--hint-from-key",
        "--dsse-keyid",
        "",
    ])["bundle"]
        .clone();
    serde_json::to_vec(&with_flipped_signature(&honest)).unwrap()
}

/// Uploads a blob as `client`; returns its digest.
async fn push_blob_as(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    content: &[u8],
) -> String {
    let digest = sha256(content);
    let response = client
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .body(content.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    digest
}

/// Pushes a manifest as `client`; returns the status.
async fn put_manifest_as(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    manifest: &[u8],
) -> u16 {
    client
        .put(s.url(&format!("/v2/{repo}/manifests/{}", sha256(manifest))))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Pushes `bundle` as a referrer of the manifest `subject` (`subject_size` bytes) into `repo`
/// as `client`; returns the status of the referrer's push.
async fn push_bundle_referrer(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    subject: &str,
    subject_size: usize,
    bundle: &[u8],
) -> u16 {
    let layer = push_blob_as(s, client, repo, bundle).await;
    let config = push_blob_as(s, client, repo, b"{}").await;
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": layer, "size": bundle.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
    }))
    .unwrap();
    put_manifest_as(s, client, repo, &referrer).await
}

#[tokio::test]
async fn a_tampered_signature_quarantines_the_artifact() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let keyadmin = user(&s, "keyadmin", &[("key-admin", "*")]).await;
    let (manifest, digest) = s.push_image(REPO, "1.0", &[b"release"]).await;
    assert_eq!(
        promote(&s, &releaser(&s).await, &digest, "staging").await.0,
        201
    );
    assert_eq!(pull(&s, &s.http, "staging/team/app", &digest).await, 200);
    // The CI key, trusted for team/*, named by a bundle with a flipped signature byte.
    let tampered = forged_bundle(&s, &keyadmin, dir.path(), "ci", "team/*", &digest).await;

    // Pushed where the artifact is not (a builder of another repository naming its digest), the
    // forgery is rejected but quarantines nothing.
    let status = push_bundle_referrer(
        &s,
        &s.http,
        "dev/other/app",
        &digest,
        manifest.len(),
        &tampered,
    )
    .await;
    assert_eq!(status, 201);
    assert!(open_of(&s, "tampered_evidence").await.is_empty());
    assert_eq!(pull(&s, &s.http, "staging/team/app", &digest).await, 200);
    // In the artifact's own lineage, it quarantines the artifact there.
    let status = push_bundle_referrer(&s, &s.http, REPO, &digest, manifest.len(), &tampered).await;
    assert_eq!(status, 201);

    let open = open_of(&s, "tampered_evidence").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["action"], "quarantine_artifact");
    assert_eq!(open[0]["applied"], true);
    assert_eq!(open[0]["target"]["digest"], digest.as_str());
    // The quarantine names the repository: it holds team/app's artifact in every stage.
    assert_eq!(open[0]["target"]["repository"], REPO);
    assert_eq!(open[0]["key"], format!("artifact:team/app@{digest}"));
    assert!(
        open[0]["summary"]
            .as_str()
            .unwrap()
            .contains("claims trusted key ci")
    );

    // The very next requests: no pull from a gated stage, no promotion, no rollback past it.
    let response = s
        .http
        .get(s.url(&format!("/v2/staging/team/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("quarantined"),
        "{body}"
    );
    assert_eq!(
        pull(&s, &s.http, "staging/team/app", "1.0").await,
        403,
        "by tag too"
    );
    assert_eq!(
        pull(&s, &s.http, REPO, &digest).await,
        200,
        "dev stays readable for forensics"
    );
    let (status, body) = promote(&s, &releaser(&s).await, &digest, "prod").await;
    assert_eq!(status, 403, "{body}");
    let rules: Vec<&str> = body["decision"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["airlock.quarantined"], "{body:#}");

    // Resolving lifts the quarantine: not by admin, who pushed the tampered evidence, but by
    // another access-admin.
    assert_eq!(open[0]["target"]["principal"], "admin");
    let (status, _) = resolve(&s, &s.http, &open[0]["id"], "it was fine").await;
    assert_eq!(status, 403);
    let secops = user(&s, "secops", &[("access-admin", "*")]).await;
    let (status, _) = resolve(&s, &secops, &open[0]["id"], "re-signed from a clean build").await;
    assert_eq!(status, 200);
    assert_eq!(pull(&s, &s.http, "staging/team/app", &digest).await, 200);
    let (status, body) = promote(&s, &releaser(&s).await, &digest, "prod").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_forged_signature_next_to_a_copy_in_another_tenants_repository_quarantines_nothing_of_ours()
 {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())]);
    let keyadmin = user(&s, "keyadmin", &[("key-admin", "*")]).await;
    // team/app@D, promoted to prod.
    let layer: &[u8] = b"release";
    let (manifest, digest) = s.push_image(REPO, "1.0", &[layer]).await;
    let releaser = releaser(&s).await;
    assert_eq!(promote(&s, &releaser, &digest, "staging").await.0, 201);
    assert_eq!(promote(&s, &releaser, &digest, "prod").await.0, 201);
    assert_eq!(pull(&s, &s.http, "prod/team/app", &digest).await, 200);
    let ci = forged_bundle(&s, &keyadmin, dir.path(), "ci", "team/*", &digest).await;

    // A builder of dev/evil/* only pushes the same bytes into its own repository, then a DSSE
    // bundle naming the team's CI key (whose scope does not cover evil/x) with a bad signature.
    let mallory = user(&s, "mallory", &[("builder", "dev/evil/*")]).await;
    let evil = "dev/evil/x";
    push_blob_as(
        &s,
        &mallory,
        evil,
        br#"{"architecture":"amd64","os":"linux"}"#,
    )
    .await;
    push_blob_as(&s, &mallory, evil, layer).await;
    assert_eq!(put_manifest_as(&s, &mallory, evil, &manifest).await, 201);
    let status = push_bundle_referrer(&s, &mallory, evil, &digest, manifest.len(), &ci).await;
    assert_eq!(status, 201);
    assert!(open_of(&s, "tampered_evidence").await.is_empty());
    for repo in ["staging/team/app", "prod/team/app"] {
        assert_eq!(pull(&s, &s.http, repo, &digest).await, 200, "{repo}");
    }

    // Even naming a key trusted everywhere, the forgery is about evil/x's copy: it quarantines
    // that lineage only, and team/app's artifact stays pullable from its gated stages.
    let any = forged_bundle(&s, &keyadmin, dir.path(), "any", "*", &digest).await;
    let status = push_bundle_referrer(&s, &mallory, evil, &digest, manifest.len(), &any).await;
    assert_eq!(status, 201);
    let open = open_of(&s, "tampered_evidence").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["target"]["repository"], evil);
    assert_eq!(open[0]["key"], format!("artifact:evil/x@{digest}"));
    for repo in ["staging/team/app", "prod/team/app"] {
        assert_eq!(pull(&s, &s.http, repo, &digest).await, 200, "{repo}");
    }
}

/// Starts an upload into `repo` as `client`; returns the status.
async fn start_upload(s: &TestServer, client: &reqwest::Client, repo: &str) -> u16 {
    client
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn refused_pushes_are_logged_once_per_minute_and_trip_their_rule_at_the_threshold() {
    let s = TestServer::start();
    let nobody = user(&s, "nobody", &[]).await;
    // A principal with no roles pushing into a gated stage in a loop: the default threshold is 20.
    for _ in 0..19 {
        assert_eq!(start_upload(&s, &nobody, "prod/team/app").await, 403);
    }
    assert!(
        open_of(&s, "refused_pushes").await.is_empty(),
        "below the threshold"
    );
    assert_eq!(start_upload(&s, &nobody, "prod/team/app").await, 403);
    let open = open_of(&s, "refused_pushes").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["action"], "alert");
    assert_eq!(open[0]["observed"], 20);
    assert_eq!(open[0]["target"]["principal"], "nobody");
    assert_eq!(open[0]["target"]["repository"], "prod/team/app");
    assert_eq!(open[0]["target"]["source"], "127.0.0.1");
    for _ in 20..300 {
        assert_eq!(start_upload(&s, &nobody, "prod/team/app").await, 403);
    }

    // 300 refusals: one audit entry per principal, repository and minute (two if the loop
    // crossed a minute), and one anomaly.
    let refused: Vec<Value> = audit_of(&s, "push.refused")
        .await
        .into_iter()
        .filter(|e| e["actor"]["principal"] == "nobody")
        .collect();
    assert!(
        (1..=2).contains(&refused.len()),
        "{} push.refused entries: {refused:#?}",
        refused.len()
    );
    let detected: Vec<Value> = audit_of(&s, "anomaly.detected")
        .await
        .into_iter()
        .filter(|e| e["subject"]["rule"] == "refused_pushes")
        .collect();
    assert_eq!(detected.len(), 1, "{detected:#?}");
    assert_eq!(detected[0]["details"]["observed"], 20);
    assert_eq!(open_of(&s, "refused_pushes").await.len(), 1);
}

#[tokio::test]
async fn refused_pushes_into_many_repositories_are_logged_at_most_ten_per_principal_and_minute() {
    let s = TestServer::start();
    let nobody = user(&s, "nobody", &[]).await;
    // The repository name is the client's choice: one per request would otherwise give one audit
    // entry per request again.
    for n in 0..100 {
        let repo = format!("prod/x/{n}");
        assert_eq!(start_upload(&s, &nobody, &repo).await, 403, "{repo}");
    }
    let refused: Vec<Value> = audit_of(&s, "push.refused")
        .await
        .into_iter()
        .filter(|e| e["actor"]["principal"] == "nobody")
        .collect();
    // Ten per principal and minute (twenty if the loop crossed a minute).
    assert!(
        (10..=20).contains(&refused.len()),
        "{} push.refused entries: {refused:#?}",
        refused.len()
    );
    assert_eq!(
        refused[0]["subject"]["repository"], "prod/x/0",
        "{refused:#?}"
    );
    // The anomaly rule still counts every refusal: it trips once, at its threshold of 20.
    let open = open_of(&s, "refused_pushes").await;
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["observed"], 20);
    assert_eq!(open[0]["target"]["principal"], "nobody");
}

#[tokio::test]
async fn a_quarantined_index_holds_its_children_too() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let bundle_env = ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap());
    let mut s = TestServer::start_with_env(&[bundle_env]);
    // A two-platform index in dev, promoted to staging.
    let mut children = Vec::new();
    for platform in ["amd64", "arm64"] {
        let (manifest, digest) = s
            .push_image(REPO, &format!("1.0-{platform}"), &[platform.as_bytes()])
            .await;
        children.push(
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                             "platform": {"os": "linux", "architecture": platform}}),
        );
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}))
    .unwrap();
    let response = s
        .put_manifest(
            REPO,
            "1.0",
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await;
    assert_eq!(response.status(), 201);
    let index_digest = sha256(&index);
    let child = children[0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        promote(&s, &releaser(&s).await, &index_digest, "staging")
            .await
            .0,
        201
    );
    assert_eq!(pull(&s, &s.http, "staging/team/app", &child).await, 200);

    // Restarted with a rule that quarantines what is promoted off hours, the next request for
    // the index quarantines it.
    s.stop();
    let hours = hours_excluding_now();
    let s = TestServer::start_in(
        &s.data_dir.clone(),
        &[
            bundle_env,
            ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__ENABLED", "true"),
            ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__DAYS", "*"),
            ("AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__HOURS", &hours),
            (
                "AIRLOCK_ANOMALIES__OFF_HOURS_PROMOTION__ACTION",
                "quarantine_artifact",
            ),
        ],
    );
    let releaser = client_as("releaser", PASSWORD);
    let source_staging = post_json(
        &releaser,
        &s.url("/api/v1/promotions"),
        json!({"source": "staging/team/app", "reference": index_digest, "to": "prod"}),
    )
    .await;
    assert_eq!(
        source_staging.0, 403,
        "quarantined before its own decision: {}",
        source_staging.1
    );
    assert_eq!(open_of(&s, "off_hours_promotion").await.len(), 1);
    // The index and each child, by digest, from the gated stage: refused.
    assert_eq!(
        pull(&s, &s.http, "staging/team/app", &index_digest).await,
        403
    );
    assert_eq!(pull(&s, &s.http, "staging/team/app", &child).await, 403);
    // A child cannot be promoted on its own either.
    let (status, body) = post_json(
        &releaser,
        &s.url("/api/v1/promotions"),
        json!({"source": REPO, "reference": child, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("airlock.quarantined"), "{body:#}");
}
