//! Two `airlock serve` replicas on one PostgreSQL database and one bucket keep the invariants a
//! single process kept: one replica signs audit checkpoints and another takes over within
//! seconds of its death, a webhook is delivered once while both run, a replica deciding with
//! another policy bundle than the others refuses, an API key revoked on one replica is refused on
//! the other at once, and a signing key revoked on one replica counts for the other's next
//! verdict. (The race of a verdict computed just before another replica's revocation is tested
//! in the store: `evidence_is_stored_only_over_the_keyring_it_was_verified_against_and_once`.)
//!
//! Distributed only (`AIRLOCK_TEST_BACKEND=distributed`, with `scripts/test-services` and
//! `scripts/test-s3`): on the embedded default one process serves the data directory.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, add_user, client_as, permissive_bundle, post_json};
use serde_json::{Value, json};

/// Whether this run has the shared engines; prints why not otherwise.
fn replicas_possible() -> bool {
    if !common::distributed() {
        eprintln!(
            "NOTICE: replica tests need AIRLOCK_TEST_BACKEND=distributed (PostgreSQL and S3); skipped"
        );
        return false;
    }
    true
}

/// Waits up to `limit` for `check` to hold.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn one_replica_signs_checkpoints_and_another_takes_over_within_seconds_of_its_death() {
    if !replicas_possible() {
        return;
    }
    let mut a = TestServer::start();
    a.wait_for_checkpoint().await;
    let b = TestServer::start_sharing(&a, &[]);
    assert!(
        eventually(Duration::from_secs(5), || a.leads()).await,
        "the first replica leads"
    );
    assert!(!b.leads().await, "only one replica leads");

    // What the follower writes, the leader signs; the follower never leads meanwhile.
    b.push_blob("dev/team/app", b"written through the follower")
        .await;
    let signed = b.wait_for_checkpoint().await;
    assert!(!b.leads().await);

    // The leader dies without a word: the follower takes over and signs the next entries.
    a.kill_hard();
    let killed = Instant::now();
    b.push_blob("dev/team/app", b"written after the leader died")
        .await;
    let after = b.wait_for_checkpoint().await;
    assert!(after > signed, "{after} > {signed}");
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "the next checkpoint took {:?}",
        killed.elapsed()
    );
    assert!(b.leads().await, "the survivor leads");
    let (code, out, err) = b.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "one tree, signed by both: {out}{err}");
}

/// A webhook receiver that records each request's delivery id on arrival and answers only after
/// `delay` (so the sending replica holds the delivery's lease while another replica starts).
struct SlowReceiver {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowReceiver {
    async fn start(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let recorded = recorded.clone();
                async move {
                    let id = headers
                        .get("x-airlock-delivery")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("?")
                        .to_string();
                    recorded.lock().unwrap().push(id);
                    tokio::time::sleep(delay).await;
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// Several threads: the receiver keeps answering while a replica starts (which blocks one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_delivered_once_while_a_replica_starts_during_the_attempt() {
    if !replicas_possible() {
        return;
    }
    let env = [("AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")];
    let receiver = SlowReceiver::start(Duration::from_secs(5)).await;
    let a = TestServer::start_with_env(&env);
    let (status, body) = post_json(
        &a.http,
        &a.url("/api/v1/webhooks"),
        json!({"url": receiver.url, "events": ["promotion.*"], "secret": "a shared webhook secret"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let endpoint = body["id"].as_i64().unwrap();
    let (status, body) = post_json(
        &a.http,
        &a.url(&format!("/api/v1/webhooks/{endpoint}/test")),
        json!({}),
    )
    .await;
    assert!(status == 201 || status == 202 || status == 200, "{body}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            !receiver.seen().is_empty()
        })
        .await,
        "the first replica sends the delivery"
    );
    // While the first attempt is in flight (its lease held), a second replica starts.
    let b = TestServer::start_sharing(&a, &env);
    let delivery = || async {
        let list: Value = b
            .http
            .get(b.url(&format!("/api/v1/webhooks/{endpoint}/deliveries")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["deliveries"][0].clone()
    };
    let delivered = eventually(Duration::from_secs(20), || async {
        delivery().await["status"] == "delivered"
    })
    .await;
    assert!(delivered, "the delivery is recorded as delivered");
    assert_eq!(delivery().await["attempts"], 1, "{}", delivery().await);
    // Room for a second attempt, had the lease been taken from the live replica.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.seen().len(),
        1,
        "one attempt reached the receiver: {:?}",
        receiver.seen()
    );
}

/// The digest of the policy bundle `s` decides with.
async fn policy_digest(s: &TestServer) -> String {
    let body: Value = s
        .http
        .get(s.url("/api/v1/policy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["digest"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_replica_with_another_policy_bundle_refuses_decisions_until_its_directory_matches() {
    if !replicas_possible() {
        return;
    }
    let policies = tempfile::tempdir().unwrap();
    let first = permissive_bundle(&policies.path().join("first"));
    let second = permissive_bundle(&policies.path().join("second"));
    let extra = "package airlock.extra\n\nnote := \"deployed later\"\n";
    std::fs::write(second.join("extra.rego"), extra).unwrap();
    let a = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", first.to_str().unwrap())]);
    let (_, digest) = a.push_image("dev/team/app", "1.0", &[b"one layer"]).await;
    let rita = add_user(
        &a,
        "rita",
        "promotes-to-staging-0123",
        &[("promoter", "staging")],
    )
    .await;
    let old = policy_digest(&a).await;
    // The second replica loads another bundle last: it is the one in use.
    let b = TestServer::start_sharing(&a, &[("AIRLOCK_POLICY__BUNDLE", second.to_str().unwrap())]);
    let new = policy_digest(&b).await;
    assert_ne!(old, new);

    let request = json!({"source": "dev/team/app", "reference": digest, "to": "staging"});
    let (status, body) = post_json(&rita, &a.url("/api/v1/promotions"), request.clone()).await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string();
    assert!(text.contains("POLICY_MISMATCH"), "{text}");
    assert!(text.contains(&old) && text.contains(&new), "{text}");
    assert!(text.contains("same policy directory"), "{text}");

    // The first replica's directory gets the same files: its next decision adopts the bundle.
    std::fs::write(first.join("extra.rego"), extra).unwrap();
    let (status, body) = post_json(&rita, &a.url("/api/v1/promotions"), request).await;
    assert_ne!(status, 503, "{body}");
    assert!(status < 300, "{status} {body}");
    assert_eq!(policy_digest(&a).await, new);
}

/// A replica that starts with a bundle the replicas have moved on from (a stale pod, a rolled-back
/// ReplicaSet) does not make it the bundle in use again: it refuses decisions itself, and the
/// replicas with the newer bundle keep deciding with it.
#[tokio::test]
async fn a_replica_starting_with_a_replaced_bundle_does_not_bring_it_back() {
    if !replicas_possible() {
        return;
    }
    let policies = tempfile::tempdir().unwrap();
    let first = permissive_bundle(&policies.path().join("first"));
    let second = permissive_bundle(&policies.path().join("second"));
    std::fs::write(
        second.join("extra.rego"),
        "package airlock.extra\n\nnote := \"deployed later\"\n",
    )
    .unwrap();
    let a = TestServer::start_with_env(&[("AIRLOCK_POLICY__BUNDLE", first.to_str().unwrap())]);
    let (_, one) = a.push_image("dev/team/app", "1.0", &[b"one layer"]).await;
    let (_, two) = a.push_image("dev/team/app", "2.0", &[b"two layers"]).await;
    let rita = add_user(
        &a,
        "rita",
        "promotes-to-staging-0123",
        &[("promoter", "staging")],
    )
    .await;
    let old = policy_digest(&a).await;
    // The rollout: a replica with the new directory makes its bundle the one in use.
    let b = TestServer::start_sharing(&a, &[("AIRLOCK_POLICY__BUNDLE", second.to_str().unwrap())]);
    let new = policy_digest(&b).await;
    assert_ne!(old, new);
    // A stale replica (the old directory) starts after it.
    let stale =
        TestServer::start_sharing(&a, &[("AIRLOCK_POLICY__BUNDLE", first.to_str().unwrap())]);
    let request =
        |digest: &str| json!({"source": "dev/team/app", "reference": digest, "to": "staging"});
    let (status, body) = post_json(&rita, &stale.url("/api/v1/promotions"), request(&one)).await;
    assert_eq!(status, 503, "the stale replica refuses: {body}");
    assert!(body.to_string().contains("POLICY_MISMATCH"), "{body}");
    let (status, body) = post_json(&rita, &b.url("/api/v1/promotions"), request(&two)).await;
    assert!(status < 300, "the new bundle stays in use: {status} {body}");
}

#[tokio::test]
async fn an_api_key_revoked_on_one_replica_is_refused_on_the_other_at_once() {
    if !replicas_possible() {
        return;
    }
    let a = TestServer::start();
    let b = TestServer::start_sharing(&a, &[]);
    let (status, body) = post_json(
        &a.http,
        &a.url("/api/v1/service-accounts"),
        json!({"name": "ci", "expires_in_secs": 30 * 86_400}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_json(
        &a.http,
        &a.url("/api/v1/roles/grant"),
        json!({"principal": "ci", "role": "builder", "scope": "dev/team/*"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_json(
        &a.http,
        &a.url("/api/v1/service-accounts/ci/keys"),
        json!({"name": "first", "expires_in_secs": 7 * 86_400}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let ci = client_as("ci", body["api_key"].as_str().unwrap());
    let start_upload = |s: &TestServer| {
        let request = ci.post(s.url("/v2/dev/team/app/blobs/uploads/"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Accepted on the second replica (twice: the second use is its credential cache's).
    assert_eq!(start_upload(&b).await, 202);
    assert_eq!(start_upload(&b).await, 202);

    let (status, body) = post_json(
        &a.http,
        &a.url("/api/v1/service-accounts/ci/keys/first/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(start_upload(&b).await, 401, "refused on the other replica");
    assert_eq!(start_upload(&a).await, 401);
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_counts_for_the_next_verdict_on_the_other() {
    if !replicas_possible() {
        return;
    }
    let a = TestServer::start();
    let b = TestServer::start_sharing(&a, &[]);
    let keyadmin = add_user(
        &a,
        "keyadmin",
        "keeps-the-keyring-0123",
        &[("key-admin", "*")],
    )
    .await;
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("release");
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["keys", "generate", "--output-key-prefix"])
        .arg(&prefix)
        .env("COSIGN_PASSWORD", "")
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let public_pem = std::fs::read_to_string(keys.path().join("release.pub")).unwrap();
    let (status, body) = post_json(
        &keyadmin,
        &a.url("/api/v1/keys"),
        json!({"name": "release", "public_key": public_pem, "purposes": ["sign"], "scope": ["team/*"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = prefix.with_extension("key");
    let sign = |s: &TestServer, digest: &str| {
        let reference = format!("{}/dev/team/app@{digest}", s.host);
        let (code, out, err) = s.cli_env(
            &[
                "sign",
                &reference,
                "--key",
                key.to_str().unwrap(),
                "--output",
                "json",
            ],
            &[("COSIGN_PASSWORD", "")],
        );
        let signed: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
        (code, signed["evidence"][0].clone())
    };
    // Verified on the second replica while the key is trusted.
    let (_, first) = b.push_image("dev/team/app", "1.0", &[b"first"]).await;
    let (code, verdict) = sign(&b, &first);
    assert_eq!(
        (code, verdict["status"].as_str()),
        (0, Some("verified")),
        "{verdict:#}"
    );

    // Revoked on the first replica: the second replica's next verdict rejects the key.
    let (status, body) = post_json(
        &keyadmin,
        &a.url("/api/v1/keys/release/revoke"),
        json!({"reason": "the key leaked", "compromised": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, second) = b.push_image("dev/team/app", "2.0", &[b"second"]).await;
    let (code, verdict) = sign(&b, &second);
    assert_eq!(
        code, 1,
        "a refused signature fails the command: {verdict:#}"
    );
    assert_eq!(verdict["status"], "revoked", "{verdict:#}");
    assert_eq!(verdict["reason_code"], "key_compromised", "{verdict:#}");
}
