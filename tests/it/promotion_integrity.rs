//! Promotion guarantees an attack review found broken or weak: a crash during the final decision
//! no longer wedges a promotion, a principal who ever pushed a digest never approves it, promotion
//! tags cannot squat digest-derived or channel tags (and every tag a promotion moves is audited),
//! and stand-in accounts made by a party of a promotion (its requester, an approver, a pusher or
//! builder of the artifact) do not count toward its approvals.
//!
//! Every test starts its own `airlock serve` with a permissive policy bundle (the default
//! bundle's shared rules, gates without evidence requirements), so they need no signing tools.

use crate::common;

use common::permissive_bundle;

use std::path::Path;

use common::{OCI_MANIFEST, TestServer, client_as, post_json as post, sha256};
use serde_json::{Value, json};

const PASSWORD: &str = "integrity-test-password-1";

/// A server over `data` with the permissive bundle in `temp` and `env`.
fn start(temp: &Path, data: &Path, env: &[(&str, &str)]) -> TestServer {
    let bundle = permissive_bundle(&temp.join("bundle"));
    let mut all = vec![("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap())];
    all.extend_from_slice(env);
    TestServer::start_in(data, &all)
}

/// `creator` (a client of an access-admin) creates user `name` and grants it `grants`.
async fn user(
    s: &TestServer,
    creator: &reqwest::Client,
    name: &str,
    grants: &[(&str, &str)],
) -> reqwest::Client {
    let (status, body) = post(
        creator,
        &s.url("/api/v1/users"),
        json!({"name": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "add user {name}: {body}");
    for (role, scope) in grants {
        grant(s, creator, name, role, scope).await;
    }
    client_as(name, PASSWORD)
}

async fn grant(s: &TestServer, granter: &reqwest::Client, name: &str, role: &str, scope: &str) {
    let (status, body) = post(
        granter,
        &s.url("/api/v1/roles/grant"),
        json!({"principal": name, "role": role, "scope": scope}),
    )
    .await;
    assert_eq!(status, 200, "grant {role} on {scope} to {name}: {body}");
}

/// Pushes a one-layer image to `repo:tag` as `client`; returns its digest.
async fn push_as(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    tag: &str,
    layer: &[u8],
) -> String {
    common::push_image_as(s, client, repo, tag, layer, None).await
}

async fn put_manifest(
    s: &TestServer,
    client: &reqwest::Client,
    repo: &str,
    reference: &str,
    manifest: &[u8],
) {
    let response = client
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "push manifest: {}",
        response.text().await.unwrap()
    );
}

/// Requests the promotion of `source@digest` into `to` as `client`, with `extra` fields.
async fn promote(
    s: &TestServer,
    client: &reqwest::Client,
    source: &str,
    digest: &str,
    to: &str,
    extra: Value,
) -> (u16, Value) {
    let mut body = json!({"source": source, "reference": digest, "to": to});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    post(client, &s.url("/api/v1/promotions"), body).await
}

async fn approve(s: &TestServer, client: &reqwest::Client, id: &str) -> (u16, Value) {
    post(
        client,
        &s.url(&format!("/api/v1/promotions/{id}/approve")),
        json!({}),
    )
    .await
}

async fn state(s: &TestServer, id: &str) -> Value {
    let response = s
        .http
        .get(s.url(&format!("/api/v1/promotions/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The id of a promotion answer in `state`.
fn promotion_id(status: u16, body: &Value, expected: &str) -> String {
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], expected, "{body:#}");
    body["promotion"]["id"].as_str().unwrap().to_string()
}

fn refused(status: u16, body: &Value) -> String {
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"]["code"], "APPROVAL_REFUSED", "{body:#}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// Leaves promotion `id` as a crash during its decision would: `evaluating`, claimed by a
/// decision that no longer runs, since `since_millis`.
async fn wedge(data: &Path, id: &str, since_millis: i64) {
    let done = common::execute_on_database(
        data,
        &format!(
            "UPDATE promotions SET state = 'evaluating', evaluating_since = {since_millis},
             claim = 'clm_dead' WHERE id = $1"
        ),
        &[id],
    )
    .await;
    assert_eq!(done, 1);
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// A crash during the final decision

#[tokio::test]
async fn one_stalled_promotion_that_cannot_be_recovered_does_not_hold_back_the_others() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let env = [("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1")];
    let mut s = start(temp.path(), &data, &env);
    let rita = user(&s, &s.http, "rita", &[("promoter", "staging")]).await;
    let broken = push_as(&s, &s.http, "dev/team/app", "1.0", b"broken").await;
    let fine = push_as(&s, &s.http, "dev/team/app", "2.0", b"fine").await;
    let (status, body) = promote(&s, &rita, "dev/team/app", &broken, "staging", json!({})).await;
    let broken_id = promotion_id(status, &body, "pending_approval");
    let (status, body) = promote(&s, &rita, "dev/team/app", &fine, "staging", json!({})).await;
    let fine_id = promotion_id(status, &body, "pending_approval");
    s.stop();

    // Both stalled; the older one (recovered first) holds a digest that no longer parses.
    wedge(&data, &broken_id, now_millis() - 7_200_000).await;
    wedge(&data, &fine_id, now_millis() - 3_600_000).await;
    common::execute_on_database(
        &data,
        "UPDATE promotions SET digest = 'not-a-digest' WHERE id = $1",
        &[&broken_id],
    )
    .await;

    let s = start(temp.path(), &data, &env);
    assert_eq!(state(&s, &fine_id).await["state"], "cancelled");
}

#[tokio::test]
async fn a_promotion_a_crash_left_evaluating_is_reopened_at_start_and_can_be_promoted() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let env = [("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1")];
    let mut s = start(temp.path(), &data, &env);
    let rita = user(&s, &s.http, "rita", &[("promoter", "staging")]).await;
    let alice = user(&s, &s.http, "alice", &[("approver", "staging")]).await;
    let claimed = push_as(&s, &s.http, "dev/team/app", "1.0", b"claimed").await;
    let fresh = push_as(&s, &s.http, "dev/team/app", "2.0", b"fresh").await;
    let (status, body) = promote(&s, &rita, "dev/team/app", &claimed, "staging", json!({})).await;
    let approved_id = promotion_id(status, &body, "pending_approval");
    let (status, body) = promote(&s, &rita, "dev/team/app", &fresh, "staging", json!({})).await;
    let fresh_id = promotion_id(status, &body, "pending_approval");
    s.stop();

    // The crash: alice's approval completed the set and claimed the promotion; a new request
    // was being decided. Both an hour ago, far past policy.decision_timeout_secs.
    common::execute_on_database(
        &data,
        &format!(
            "INSERT INTO approvals (promotion_id, principal, comment, created_at)
             VALUES ($1, 'alice', NULL, {})",
            now_millis() - 3_600_000
        ),
        &[&approved_id],
    )
    .await;
    wedge(&data, &approved_id, now_millis() - 3_600_000).await;
    wedge(&data, &fresh_id, now_millis() - 3_600_000).await;

    let s = start(temp.path(), &data, &env);
    // Reopened with its approval kept; the one never approved is cancelled.
    let shown = state(&s, &approved_id).await;
    assert_eq!(shown["state"], "pending_approval", "{shown:#}");
    assert_eq!(shown["approvals"][0]["principal"], "alice", "{shown:#}");
    assert_eq!(state(&s, &fresh_id).await["state"], "cancelled");
    let entries = s.audit_entries().await;
    let reopened: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "promotion.reopened")
        .collect();
    assert_eq!(reopened.len(), 1, "{reopened:#?}");
    assert_eq!(reopened[0]["subject"]["id"], approved_id.as_str());
    assert!(
        reopened[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("decision_timeout_secs"),
        "{reopened:#?}"
    );

    // alice asks for the final decision again: promoted, once.
    let (status, body) = approve(&s, &alice, &approved_id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
    assert_eq!(body["promotion"]["approvals"].as_array().unwrap().len(), 1);
    // The cancelled request no longer blocks a new one.
    let (status, body) = promote(&s, &rita, "dev/team/app", &fresh, "staging", json!({})).await;
    promotion_id(status, &body, "pending_approval");
    let promoted = s
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "promotion.promoted")
        .count();
    assert_eq!(promoted, 1);
}

#[tokio::test]
async fn an_access_admin_cancels_a_promotion_while_it_is_evaluating() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let env = [("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1")];
    let mut s = start(temp.path(), &data, &env);
    let rita = user(&s, &s.http, "rita", &[("promoter", "staging")]).await;
    let alice = user(&s, &s.http, "alice", &[("approver", "staging")]).await;
    let digest = push_as(&s, &s.http, "dev/team/app", "1.0", b"cancel").await;
    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    let id = promotion_id(status, &body, "pending_approval");
    s.stop();
    // A decision is running (it started just now, within the timeout, so nothing recovers it).
    wedge(&data, &id, now_millis()).await;

    let s = start(temp.path(), &data, &env);
    assert_eq!(state(&s, &id).await["state"], "evaluating");
    let (status, body) = approve(&s, &alice, &id).await;
    assert_eq!(status, 409, "{body:#}");
    let (status, body) = post(
        &s.http,
        &s.url(&format!("/api/v1/promotions/{id}/cancel")),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["state"], "cancelled", "{body:#}");
    // The request can be made again at once.
    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    promotion_id(status, &body, "pending_approval");
}

// ---------------------------------------------------------------------------------------------
// Pushers never approve

#[tokio::test]
async fn a_principal_who_ever_pushed_the_digest_cannot_approve_it_after_a_delete_and_re_push() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let s = start(
        temp.path(),
        &data,
        &[("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "1")],
    );
    let alice = user(
        &s,
        &s.http,
        "alice",
        &[("developer", "dev"), ("approver", "staging")],
    )
    .await;
    let bob = user(&s, &s.http, "bob", &[("developer", "dev")]).await;
    let rita = user(&s, &s.http, "rita", &[("promoter", "staging")]).await;
    let digest = push_as(&s, &alice, "dev/team/app", "1.0", b"pushed twice").await;
    let response = s
        .http
        .delete(s.url(&format!("/v2/dev/team/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let again = push_as(&s, &bob, "dev/team/app", "1.0", b"pushed twice").await;
    assert_eq!(again, digest, "the same bytes, the same digest");

    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    let id = promotion_id(status, &body, "pending_approval");
    let (status, body) = approve(&s, &alice, &id).await;
    assert_eq!(
        refused(status, &body),
        "alice pushed this artifact and cannot approve its promotion (separation of duties)"
    );
    assert_eq!(state(&s, &id).await["state"], "pending_approval");
}

// ---------------------------------------------------------------------------------------------
// Promotion tags

#[tokio::test]
async fn promotion_tags_may_not_squat_cosign_or_channel_tags() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let s = start(temp.path(), &data, &[]);
    let rita = user(&s, &s.http, "rita", &[("promoter", "*")]).await;
    let digest = push_as(&s, &s.http, "dev/team/app", "1.0", b"squat").await;
    let other = push_as(&s, &s.http, "dev/team/app", "2.0", b"victim").await;
    let squat = format!("sha256-{}.sig", &other[7..]);
    for tags in [
        json!([squat]),
        json!([format!("sha256-{}", &other[7..])]),
        json!(["1.0", format!("sha256-{}.att", &other[7..])]),
    ] {
        let (status, body) = promote(
            &s,
            &rita,
            "dev/team/app",
            &digest,
            "staging",
            json!({"tags": tags}),
        )
        .await;
        assert_eq!(status, 400, "{body:#}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("digest-derived tag") && message.contains("release tag"),
            "{message}"
        );
    }
    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    promotion_id(status, &body, "promoted");
    let (status, body) = promote(
        &s,
        &rita,
        "staging/team/app",
        &digest,
        "prod",
        json!({"tags": ["1.0", "stable"]}),
    )
    .await;
    assert_eq!(status, 400, "{body:#}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("channel tag of stage prod") && message.contains("--channel stable"),
        "{message}"
    );
    // The refused requests set nothing naming the other digest; only the promoted artifact's own
    // attestation tag is there.
    let response = s
        .http
        .get(s.url("/v2/staging/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    let listed: Value = response.json().await.unwrap();
    assert_eq!(
        listed["tags"],
        json!(["1.0", format!("sha256-{}.att", &digest[7..])]),
        "{listed}"
    );
}

#[tokio::test]
async fn every_tag_a_promotion_moves_in_a_gated_stage_is_in_the_audit_log() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let s = start(temp.path(), &data, &[]);
    let rita = user(&s, &s.http, "rita", &[("promoter", "*")]).await;
    let digest = push_as(&s, &s.http, "dev/team/app", "1.0", b"carried").await;
    // A cosign tag-scheme signature manifest (its layer is carried, whether or not it verifies).
    let payload = br#"{"critical":{}}"#;
    let config = b"{}";
    for blob in [&payload[..], &config[..]] {
        let response = s
            .http
            .post(s.url(&format!(
                "/v2/dev/team/app/blobs/uploads/?digest={}",
                sha256(blob)
            )))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let signature = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sha256(payload), "size": payload.len(),
                    "annotations": {"dev.cosignproject.cosign/signature": "AAAA"}}],
    }))
    .unwrap();
    let sig_tag = format!("sha256-{}.sig", &digest[7..]);
    put_manifest(&s, &s.http, "dev/team/app", &sig_tag, &signature).await;

    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    promotion_id(status, &body, "promoted");
    let (status, body) = promote(&s, &rita, "staging/team/app", &digest, "prod", json!({})).await;
    promotion_id(status, &body, "promoted");

    let entries = s.audit_entries().await;
    let moved = |repository: &str| -> Vec<String> {
        let mut tags: Vec<String> = entries
            .iter()
            .filter(|e| e["type"] == "tag.moved" && e["subject"]["repository"] == repository)
            .map(|e| e["subject"]["tag"].as_str().unwrap().to_string())
            .collect();
        tags.sort();
        tags
    };
    let att_tag = format!("sha256-{}.att", &digest[7..]);
    let mut expected = vec!["1.0".to_string(), att_tag.clone(), sig_tag.clone()];
    expected.sort();
    assert_eq!(moved("staging/team/app"), expected);
    let mut expected = vec!["1.0".to_string(), "stable".to_string(), att_tag, sig_tag];
    expected.sort();
    assert_eq!(moved("prod/team/app"), expected);
    let promoted = entries
        .iter()
        .find(|e| e["type"] == "tag.moved" && e["subject"]["tag"] == "stable")
        .unwrap();
    assert_eq!(promoted["actor"]["principal"], "rita");
    assert_eq!(promoted["details"]["digest"], digest.as_str());
}

// ---------------------------------------------------------------------------------------------
// Stand-in approvers

#[tokio::test]
async fn stand_ins_an_access_admin_made_cannot_complete_her_m_of_n() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let s = start(
        temp.path(),
        &data,
        &[("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "2")],
    );
    // eve is an access-admin who may also promote; ann and carl are approvers admin made.
    let eve = user(
        &s,
        &s.http,
        "eve",
        &[("access-admin", "*"), ("promoter", "staging")],
    )
    .await;
    let ann = user(&s, &s.http, "ann", &[("approver", "staging")]).await;
    let carl = user(&s, &s.http, "carl", &[("approver", "staging")]).await;
    // eve makes two stand-ins with the approver role, and gives admin's dave the role too.
    let s1 = user(&s, &eve, "s1", &[("approver", "staging")]).await;
    let s2 = user(&s, &eve, "s2", &[("approver", "*")]).await;
    let dave = user(&s, &s.http, "dave", &[]).await;
    grant(&s, &eve, "dave", "approver", "staging").await;
    // A builder pushes (admin, who made every other account, is no party).
    let ci = user(&s, &s.http, "ci", &[("developer", "dev")]).await;

    let digest = push_as(&s, &ci, "dev/team/app", "1.0", b"m of n").await;
    let (status, body) = promote(&s, &eve, "dev/team/app", &digest, "staging", json!({})).await;
    let id = promotion_id(status, &body, "pending_approval");
    let (status, body) = approve(&s, &s1, &id).await;
    assert_eq!(
        refused(status, &body),
        "s1 was created by eve, who requested this promotion; approvals must come from people whose accounts and approver roles were not created or granted by another party of the promotion (separation of duties)"
    );
    let (status, body) = approve(&s, &s2, &id).await;
    assert!(refused(status, &body).starts_with("s2 was created by eve"));
    let (status, body) = approve(&s, &dave, &id).await;
    assert!(
        refused(status, &body)
            .starts_with("dave holds its approver role on the target only by grant of eve"),
        "{body:#}"
    );
    assert_eq!(state(&s, &id).await["approvals"], json!([]));

    // Independent approvers complete it.
    let (status, body) = approve(&s, &ann, &id).await;
    assert_eq!(status, 201, "{body:#}");
    let (status, body) = approve(&s, &carl, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
}

#[tokio::test]
async fn an_approver_and_her_stand_in_count_once() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let s = start(
        temp.path(),
        &data,
        &[("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "2")],
    );
    let eve = user(
        &s,
        &s.http,
        "eve",
        &[("access-admin", "*"), ("approver", "staging")],
    )
    .await;
    let rita = user(&s, &s.http, "rita", &[("promoter", "staging")]).await;
    let s1 = user(&s, &eve, "s1", &[("approver", "staging")]).await;
    // A builder pushes (admin, who made eve and rita, is no party).
    let ci = user(&s, &s.http, "ci", &[("developer", "dev")]).await;
    let digest = push_as(&s, &ci, "dev/team/app", "1.0", b"count once").await;
    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    let id = promotion_id(status, &body, "pending_approval");
    // The stand-in first, then its creator: refused for having made it.
    let (status, body) = approve(&s, &s1, &id).await;
    assert_eq!(status, 201, "{body:#}");
    let (status, body) = approve(&s, &eve, &id).await;
    assert!(
        refused(status, &body).starts_with("eve created s1, who approved this promotion"),
        "{body:#}"
    );
    assert_eq!(state(&s, &id).await["state"], "pending_approval");

    // With the rule off for the gate, the same pair completes it.
    let other = push_as(&s, &ci, "dev/team/app", "2.0", b"rule off").await;
    let mut s = s;
    s.stop();
    let s = start(
        temp.path(),
        &data,
        &[
            ("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "2"),
            ("AIRLOCK_GATES__STAGING__APPROVALS__INDEPENDENT", "off"),
        ],
    );
    let (status, body) = promote(&s, &rita, "dev/team/app", &other, "staging", json!({})).await;
    let id = promotion_id(status, &body, "pending_approval");
    assert_eq!(approve(&s, &s1, &id).await.0, 201);
    let (status, body) = approve(&s, &eve, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
}

#[tokio::test]
async fn stand_ins_made_by_the_pusher_cannot_approve_her_build() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let s = start(
        temp.path(),
        &data,
        &[("AIRLOCK_GATES__STAGING__APPROVALS__COUNT", "2")],
    );
    // pam is an access-admin who also builds: she pushes the image, makes two stand-ins with the
    // approver role and gives admin's dave the role too. rita, who requests, is honest.
    let pam = user(
        &s,
        &s.http,
        "pam",
        &[("access-admin", "*"), ("developer", "dev")],
    )
    .await;
    let rita = user(&s, &s.http, "rita", &[("promoter", "staging")]).await;
    let ann = user(&s, &s.http, "ann", &[("approver", "staging")]).await;
    let carl = user(&s, &s.http, "carl", &[("approver", "staging")]).await;
    let digest = push_as(&s, &pam, "dev/team/app", "1.0", b"pam's build").await;
    let s1 = user(&s, &pam, "s1", &[("approver", "staging")]).await;
    let s2 = user(&s, &pam, "s2", &[("approver", "*")]).await;
    let dave = user(&s, &s.http, "dave", &[]).await;
    grant(&s, &pam, "dave", "approver", "staging").await;

    let (status, body) = promote(&s, &rita, "dev/team/app", &digest, "staging", json!({})).await;
    let id = promotion_id(status, &body, "pending_approval");
    let (status, body) = approve(&s, &s1, &id).await;
    assert_eq!(
        refused(status, &body),
        "s1 was created by pam, who pushed or built this artifact; approvals must come from people whose accounts and approver roles were not created or granted by another party of the promotion (separation of duties)"
    );
    let (status, body) = approve(&s, &s2, &id).await;
    assert!(refused(status, &body).starts_with("s2 was created by pam"));
    let (status, body) = approve(&s, &dave, &id).await;
    assert!(
        refused(status, &body)
            .starts_with("dave holds its approver role on the target only by grant of pam"),
        "{body:#}"
    );
    assert_eq!(state(&s, &id).await["approvals"], json!([]));
    assert_eq!(state(&s, &id).await["state"], "pending_approval");

    // Independent approvers complete it.
    let (status, body) = approve(&s, &ann, &id).await;
    assert_eq!(status, 201, "{body:#}");
    let (status, body) = approve(&s, &carl, &id).await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body:#}");
}
