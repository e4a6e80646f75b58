//! Webhooks: events leave airlock as signed CloudEvents from a durable outbox. A receiver that
//! fails gets every event exactly once after retries, in order per subject; events queued when
//! airlock is killed arrive after a restart; the HMAC verifies with the endpoint's secret and not
//! with another; deliveries that never succeed are dead-lettered; and the endpoints are managed
//! by access-admins only, with secrets that never leave the server and are erased with their
//! endpoint. Loopback, private and metadata targets are refused unless explicitly allowed.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{TestServer, client_as, post_json};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const PASSWORD: &str = "webhook-test-password-1";
const SECRET: &str = "0123456789abcdef-webhook-secret";

/// Fast retries for tests.
const FAST: [(&str, &str); 4] = [
    ("AIRLOCK_WEBHOOKS__INITIAL_BACKOFF_MS", "50"),
    ("AIRLOCK_WEBHOOKS__MAX_BACKOFF_MS", "200"),
    ("AIRLOCK_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    ("AIRLOCK_WEBHOOKS__TIMEOUT_MS", "2000"),
];

/// The test receivers listen on loopback, which webhooks refuse unless allowed.
const LOOPBACK_ALLOWED: (&str, &str) = ("AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true");

fn env_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    FAST.iter()
        .chain([&LOOPBACK_ALLOWED])
        .chain(extra)
        .copied()
        .collect()
}

/// What a test receiver saw.
#[derive(Default)]
struct Seen {
    /// Requests answered with 500 on purpose.
    failed: usize,
    /// Requests whose signature did not verify with the receiver's secret.
    bad_signatures: usize,
    /// Events accepted (2xx), in arrival order.
    accepted: Vec<Value>,
    /// Accepted events whose id had been accepted before.
    duplicates: usize,
    /// The raw body and signature header of the first accepted event.
    first: Option<(Vec<u8>, String)>,
}

struct ReceiverState {
    secret: Vec<u8>,
    fail_first: Mutex<usize>,
    seen: Mutex<Seen>,
}

/// A webhook receiver on loopback that verifies `X-Airlock-Signature` with its secret and can
/// fail its first requests.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-airlock-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.secret).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut seen = state.seen.lock().unwrap();
    if signature != expected {
        seen.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    {
        let mut fail_first = state.fail_first.lock().unwrap();
        if *fail_first > 0 {
            *fail_first -= 1;
            seen.failed += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/cloudevents+json; charset=utf-8"
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    if seen.accepted.iter().any(|e| e["id"] == event["id"]) {
        seen.duplicates += 1;
    } else {
        seen.accepted.push(event);
    }
    if seen.first.is_none() {
        seen.first = Some((body.to_vec(), signature));
    }
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start(secret: &str, fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, secret, fail_first)
    }

    async fn start_on(port: u16, secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::serve(listener, secret, 0)
    }

    fn serve(listener: tokio::net::TcpListener, secret: &str, fail_first: usize) -> Self {
        let url = format!("http://{}/hooks/airlock", listener.local_addr().unwrap());
        let state = Arc::new(ReceiverState {
            secret: secret.as_bytes().to_vec(),
            fail_first: Mutex::new(fail_first),
            seen: Mutex::new(Seen::default()),
        });
        let app = axum::Router::new()
            .route("/hooks/airlock", axum::routing::post(receive))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, task }
    }

    fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.state.seen.lock().unwrap())
    }

    /// Waits until `count` distinct events were accepted.
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            if self.seen(|s| s.accepted.len()) >= count {
                return self.seen(|s| s.accepted.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {} of {count} events",
            self.seen(|s| s.accepted.len())
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Adds a webhook as admin; returns its id.
async fn add_webhook(s: &TestServer, url: &str, events: &[&str], secret: &str) -> i64 {
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/webhooks"),
        json!({"url": url, "events": events, "secret": secret}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("secret").is_none(), "{body}");
    body["id"].as_i64().unwrap()
}

async fn deliveries(s: &TestServer, id: i64) -> Vec<Value> {
    let body: Value = s
        .http
        .get(s.url(&format!("/api/v1/webhooks/{id}/deliveries?limit=1000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["deliveries"].as_array().cloned().unwrap()
}

/// Waits until every delivery to `id` is out of `pending`; returns them.
async fn settled(s: &TestServer, id: i64) -> Vec<Value> {
    for _ in 0..200 {
        let list = deliveries(s, id).await;
        if !list.is_empty() && list.iter().all(|d| d["status"] != "pending") {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries still pending: {:#?}", deliveries(s, id).await);
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_exactly_once_and_in_order_per_subject() {
    let s = TestServer::start_with_env(&env_with(&[]));
    let receiver = Receiver::start(SECRET, 3).await;
    let id = add_webhook(&s, &receiver.url, &["tag.*", "manifest.pushed"], SECRET).await;
    // Three images, each moving the same tag: three `tag.moved` events with one subject.
    for n in 0..3 {
        s.push_image("dev/team/app", "latest", &[format!("layer {n}").as_bytes()])
            .await;
    }
    let list = settled(&s, id).await;
    assert_eq!(list.len(), 6, "3 manifest.pushed + 3 tag.moved: {list:#?}");
    assert!(list.iter().all(|d| d["status"] == "delivered"), "{list:#?}");
    let events = receiver.wait_for(6).await;
    assert_eq!(receiver.seen(|s| s.failed), 3);
    assert_eq!(
        receiver.seen(|s| s.duplicates),
        0,
        "each event accepted once"
    );
    assert_eq!(receiver.seen(|s| s.bad_signatures), 0);
    // Retried deliveries were attempted more than once, under the same CloudEvent id.
    let attempts: i64 = list.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 6 + 3, "{list:#?}");
    for event in &events {
        assert_eq!(event["specversion"], "1.0");
        assert!(event["source"].as_str().unwrap().starts_with("airlock/"));
        assert_eq!(
            event["data"]["audit_index"].to_string(),
            event["id"].as_str().unwrap()
        );
        assert_eq!(
            event["data"]["entry"]["type"],
            event["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("dev.airlock.")
        );
    }
    let tag_moves: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "dev.airlock.tag.moved")
        .map(|e| {
            assert_eq!(e["subject"], "dev/team/app:latest");
            e["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(tag_moves.len(), 3);
    assert!(
        tag_moves.windows(2).all(|w| w[0] < w[1]),
        "one subject arrives in order: {tag_moves:?}"
    );
}

#[tokio::test]
async fn events_queued_when_airlock_is_killed_arrive_after_a_restart() {
    let env = env_with(&[]);
    let mut s = TestServer::start_with_env(&env);
    // A receiver address with nobody listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hooks/airlock");
    let id = add_webhook(&s, &url, &["manifest.*", "tag.*"], SECRET).await;
    for n in 0..3 {
        s.push_image(
            "dev/team/app",
            &format!("{n}.0"),
            &[format!("layer {n}").as_bytes()],
        )
        .await;
    }
    // Attempts fail (connection refused) and stay pending.
    let mut failing = Vec::new();
    for _ in 0..100 {
        failing = deliveries(&s, id).await;
        if failing.len() == 6 && failing.iter().all(|d| d["attempts"].as_i64().unwrap() >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failing.iter().all(|d| d["status"] == "pending"),
        "{failing:#?}"
    );
    let error = failing[0]["last_error"].as_str().unwrap();
    assert!(error.contains("could not connect"), "{error}");

    s.kill_hard();
    let receiver = Receiver::start_on(port, SECRET).await;
    let data_dir = s.data_dir.clone();
    let restarted = TestServer::start_in(&data_dir, &env);
    let events = receiver.wait_for(6).await;
    assert_eq!(events.len(), 6);
    assert!(
        settled(&restarted, id)
            .await
            .iter()
            .all(|d| d["status"] == "delivered")
    );
    assert_eq!(receiver.seen(|s| s.duplicates), 0);
    drop(s);
}

#[tokio::test]
async fn signatures_verify_with_the_endpoint_secret_and_a_wrong_secret_is_detected() {
    let s = TestServer::start_with_env(&env_with(&[("AIRLOCK_WEBHOOKS__MAX_ATTEMPTS", "2")]));
    let right = Receiver::start(SECRET, 0).await;
    let wrong = Receiver::start("another-secret-entirely-0000", 0).await;
    add_webhook(&s, &right.url, &["manifest.pushed"], SECRET).await;
    let misconfigured = add_webhook(&s, &wrong.url, &["manifest.pushed"], SECRET).await;
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    right.wait_for(1).await;
    let list = settled(&s, misconfigured).await;
    assert_eq!(list[0]["status"], "dead");
    assert_eq!(list[0]["last_status"], 401);
    assert_eq!(
        wrong.seen(|s| s.bad_signatures),
        2,
        "both attempts were refused"
    );
    assert!(wrong.seen(|s| s.accepted.is_empty()));

    // An independent HMAC implementation (Python's) agrees with the signature header.
    let (body, header) = right.seen(|s| s.first.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, &body).unwrap();
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, hmac, sys; print('sha256=' + hmac.new(sys.argv[1].encode(), open(sys.argv[2], 'rb').read(), hashlib.sha256).hexdigest())",
            SECRET,
            body_file.to_str().unwrap(),
        ])
        .output()
        .expect("python3");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), header);
}

#[tokio::test]
async fn deliveries_that_never_succeed_are_dead_lettered() {
    let s = TestServer::start_with_env(&env_with(&[("AIRLOCK_WEBHOOKS__MAX_ATTEMPTS", "3")]));
    let receiver = Receiver::start(SECRET, usize::MAX).await;
    let id = add_webhook(&s, &receiver.url, &["manifest.pushed"], SECRET).await;
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    let list = settled(&s, id).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "dead");
    assert_eq!(list[0]["attempts"], 3);
    assert_eq!(list[0]["last_status"], 500);
    assert_eq!(receiver.seen(|s| s.failed), 3);
    let (code, out, err) = s.cli(&["webhooks", "deliveries", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dead") && out.contains("500"), "{out}");
    let (code, out, _) = s.cli(&[
        "webhooks",
        "deliveries",
        &id.to_string(),
        "--status",
        "pending",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("no deliveries"), "{out}");
    // Later events are not held back by a dead one of the same subject.
    *receiver.state.fail_first.lock().unwrap() = 0;
    s.push_image("dev/team/app", "2.0", &[b"layer 2"]).await;
    receiver.wait_for(1).await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
    let s = TestServer::start_with_env(&env_with(&[]));
    // Accepts connections and never answers: every attempt runs into the 2 s timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let healthy = Receiver::start(SECRET, 0).await;
    add_webhook(&s, &silent_url, &["manifest.pushed"], SECRET).await;
    add_webhook(&s, &healthy.url, &["manifest.pushed"], SECRET).await;
    s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    healthy.wait_for(1).await;
    // The silent receiver's attempt is still hanging; a new event for the healthy one must not
    // wait for it.
    let started = std::time::Instant::now();
    s.push_image("dev/team/app", "2.0", &[b"layer 2"]).await;
    healthy.wait_for(2).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the healthy receiver waited for the silent one: {:?}",
        started.elapsed()
    );
    hold.abort();
}

#[tokio::test]
async fn anomalies_reach_the_webhook() {
    let s = TestServer::start_with_env(&env_with(&[(
        "AIRLOCK_ANOMALIES__UNPROMOTED_DIGEST__THRESHOLD",
        "1",
    )]));
    let receiver = Receiver::start(SECRET, 0).await;
    add_webhook(&s, &receiver.url, &["anomaly.*"], SECRET).await;
    let (_, digest) = s.push_image("dev/team/app", "1.0", &[b"layer"]).await;
    let status = s
        .http
        .get(s.url(&format!("/v2/prod/team/app/manifests/{digest}")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let events = receiver.wait_for(1).await;
    assert_eq!(events[0]["type"], "dev.airlock.anomaly.detected");
    assert_eq!(events[0]["data"]["entry"]["details"]["alert"], true);
    assert_eq!(
        events[0]["data"]["entry"]["details"]["target"]["digest"],
        digest.as_str()
    );
    assert_eq!(events[0]["subject"], "anomaly/1");
}

#[tokio::test]
async fn only_access_admins_manage_webhooks_and_secrets_never_leave_the_server() {
    let s = TestServer::start_with_env(&env_with(&[]));
    let receiver = Receiver::start(SECRET, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let url = format!("{}?token=do-not-log-me", receiver.url);

    // The CLI: add, list, test, deliveries, remove.
    let (code, out, err) = s.cli(&[
        "webhooks",
        "add",
        &url,
        "--events",
        "promotion.*,anomaly.*",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added webhook 1"), "{out}");
    let (code, out, _) = s.cli(&["webhooks", "list", "--output", "json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed["webhooks"][0]["events"],
        json!(["promotion.*", "anomaly.*"])
    );
    let (code, out, err) = s.cli(&["webhooks", "test", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queued"), "{out}");
    let events = receiver.wait_for(1).await;
    assert_eq!(events[0]["type"], "dev.airlock.webhook.test");
    assert_eq!(events[0]["subject"], "webhook/1");

    // Bad input, each refused with what to do.
    let reader = {
        let (status, _) = post_json(
            &s.http,
            &s.url("/api/v1/users"),
            json!({"name": "auditor", "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _) = post_json(
            &s.http,
            &s.url("/api/v1/roles/grant"),
            json!({"principal": "auditor", "role": "auditor", "scope": "*"}),
        )
        .await;
        assert_eq!(status, 200);
        client_as("auditor", PASSWORD)
    };
    for (body, words) in [
        (
            json!({"url": "ftp://x/", "events": ["*"], "secret": SECRET}),
            "scheme",
        ),
        (
            json!({"url": "http://u:p@x/", "events": ["*"], "secret": SECRET}),
            "credentials",
        ),
        (
            json!({"url": "http://x/", "events": ["promo*"], "secret": SECRET}),
            "promotion.*",
        ),
        (
            json!({"url": "http://x/", "events": [], "secret": SECRET}),
            "1 to",
        ),
        (
            json!({"url": "http://x/", "events": ["*"], "secret": "short"}),
            "16 to 1024",
        ),
        (json!({"url": "http://x/", "events": ["*"]}), "secret"),
    ] {
        let (status, answer) = post_json(&s.http, &s.url("/api/v1/webhooks"), body).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{words}: {message}");
    }
    let (status, _) = post_json(
        &reader,
        &s.url("/api/v1/webhooks"),
        json!({"url": "http://x/", "events": ["*"], "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 403, "auditors read webhooks, they do not add them");
    let listing = reader.get(s.url("/api/v1/webhooks")).send().await.unwrap();
    assert_eq!(listing.status(), 200);
    let listing = listing.text().await.unwrap();
    assert!(
        !listing.contains("do-not-log-me") && listing.contains("sha256"),
        "auditors see the URL's origin and hash only: {listing}"
    );
    let (status, _) = post_json(&reader, &s.url("/api/v1/webhooks/1/test"), json!({})).await;
    assert_eq!(status, 403);

    // The secret appears in no answer and no audit entry; the URL's query is not logged.
    s.wait_for_checkpoint().await;
    let entries = s.audit_entries().await;
    let added: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "webhook.added")
        .collect();
    assert_eq!(added.len(), 1);
    let origin = receiver.url.split("/hooks").next().unwrap();
    assert_eq!(added[0]["details"]["origin"], origin);
    let log = serde_json::to_string(&entries).unwrap();
    assert!(!log.contains(SECRET) && !log.contains("do-not-log-me"));
    assert!(!out.contains(SECRET));
    let listing = s
        .http
        .get(s.url("/api/v1/webhooks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(SECRET), "{listing}");

    let (code, out, err) = s.cli(&["webhooks", "remove", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed webhook 1"));
    let (code, _, err) = s.cli(&["webhooks", "test", "1"]);
    assert_eq!(code, 1, "an unknown id is a failed check (404)");
    assert!(err.contains("no active webhook 1"), "{err}");
    let (code, out, _) = s.cli(&["webhooks", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("no webhooks"), "{out}");
}

/// The delivery of `delivery_id` to endpoint `id`, once it has been attempted.
async fn attempted(s: &TestServer, id: i64, delivery_id: i64) -> Value {
    for _ in 0..200 {
        if let Some(delivery) = deliveries(s, id)
            .await
            .into_iter()
            .find(|d| d["id"] == delivery_id && d["attempts"].as_i64().unwrap_or(0) >= 1)
        {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "delivery {delivery_id} never attempted: {:#?}",
        deliveries(s, id).await
    );
}

/// Queues a test event for endpoint `id`; returns the delivery id.
async fn queue_test_event(s: &TestServer, id: i64) -> i64 {
    let (status, body) = post_json(
        &s.http,
        &s.url(&format!("/api/v1/webhooks/{id}/test")),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["delivery"].as_i64().unwrap()
}

#[tokio::test]
async fn loopback_private_and_metadata_targets_are_refused_when_added() {
    let s = TestServer::start_with_env(&FAST);
    for target in [
        "127.0.0.1:8080",
        "[::1]",
        "169.254.169.254",
        "[fd00:ec2::254]",
        "10.1.2.3",
        "192.168.0.10",
        "100.64.0.1",
        "[::ffff:127.0.0.1]",
        "[fc00::1]",
        "0.0.0.0",
        "2130706433",
    ] {
        let (status, body) = post_json(
            &s.http,
            &s.url("/api/v1/webhooks"),
            json!({"url": format!("http://{target}/hook"), "events": ["*"], "secret": SECRET}),
        )
        .await;
        assert_eq!(status, 400, "{target}: {body}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("allow_private_targets") && message.contains("address"),
            "{target}: {message}"
        );
    }
    // The CLI shows the same reason.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let (code, _, err) = s.cli(&[
        "webhooks",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "*",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("loopback") && err.contains("allow_private_targets"),
        "{err}"
    );
    let (code, out, _) = s.cli(&["webhooks", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("no webhooks"), "{out}");
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_send_time_unless_allowed() {
    let receiver = Receiver::start(SECRET, 0).await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");

    // By default: the endpoint is accepted (a name is checked when it resolves), but nothing is
    // sent to it; the delivery records why.
    let s = TestServer::start_with_env(&FAST);
    let id = add_webhook(&s, &by_name, &["webhook.test"], SECRET).await;
    let delivery = queue_test_event(&s, id).await;
    let attempt = attempted(&s, id, delivery).await;
    assert_ne!(attempt["status"], "delivered", "{attempt:#}");
    let error = attempt["last_error"].as_str().unwrap();
    assert!(
        error.contains("localhost")
            && error.contains("loopback")
            && error.contains("allow_private_targets"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.seen(|seen| seen.accepted.len()), 0);
    assert_eq!(receiver.seen(|seen| seen.bad_signatures), 0);

    // Allowed for a lab: the same name is delivered to.
    let lab = TestServer::start_with_env(&env_with(&[]));
    let id = add_webhook(&lab, &by_name, &["webhook.test"], SECRET).await;
    queue_test_event(&lab, id).await;
    let events = receiver.wait_for(1).await;
    assert_eq!(events[0]["type"], "dev.airlock.webhook.test");
}

#[tokio::test]
async fn a_removed_webhooks_secret_is_erased_from_the_database() {
    if common::embedded_only() {
        return;
    }
    const ERASED: &str = "erase-me-when-removed-7f3a9c1e5b";
    let s = TestServer::start_with_env(&env_with(&[]));
    let receiver = Receiver::start(ERASED, 0).await;
    let id = add_webhook(&s, &receiver.url, &["webhook.test"], ERASED).await;
    queue_test_event(&s, id).await;
    receiver.wait_for(1).await;
    let files = |dir: &std::path::Path| -> Vec<u8> {
        ["metadata.db", "metadata.db-wal"]
            .iter()
            .flat_map(|name| std::fs::read(dir.join(name)).unwrap_or_default())
            .collect()
    };
    let holds = |bytes: &[u8]| bytes.windows(ERASED.len()).any(|w| w == ERASED.as_bytes());
    let stored_secret = || async {
        use sqlx::{ConnectOptions, Connection};
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(s.data_dir.join("metadata.db"))
            .connect()
            .await
            .unwrap();
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = ?")
                .bind(id)
                .fetch_one(&mut db)
                .await
                .unwrap();
        db.close().await.unwrap();
        secret
    };
    assert_eq!(
        stored_secret().await,
        ERASED.as_bytes(),
        "kept while in use"
    );
    assert!(
        holds(&files(&s.data_dir)),
        "the check below can see the secret"
    );

    let response = s
        .http
        .delete(s.url(&format!("/api/v1/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(stored_secret().await.is_empty());
    assert!(
        !holds(&files(&s.data_dir)),
        "the secret's bytes are in neither the database nor its write-ahead log"
    );
    // The delivery history stays readable.
    let history = deliveries(&s, id).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["status"], "delivered");
}
