//! Webhooks over TLS: an `https://` endpoint is delivered to when its receiver's certificate
//! chains to the endpoint's `ca_cert`, and never when it does not (each attempt is recorded as
//! a failure naming the certificate problem, retried, then dead-lettered). Without a `ca_cert`
//! the system's roots apply, which do not include a test CA. The guarded resolver still refuses
//! loopback for https targets unless private targets are allowed.

use crate::common;
use crate::tls_support;

use std::time::Duration;

use common::{TestPki, TestServer, post_json};
use serde_json::{Value, json};
use tls_support::{HttpsResponder, ca_pem};

const SECRET: &str = "0123456789abcdef-webhook-secret";

/// Fast retries, three attempts, loopback receivers allowed.
const ENV: [(&str, &str); 6] = [
    ("AIRLOCK_WEBHOOKS__INITIAL_BACKOFF_MS", "50"),
    ("AIRLOCK_WEBHOOKS__MAX_BACKOFF_MS", "100"),
    ("AIRLOCK_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    ("AIRLOCK_WEBHOOKS__TIMEOUT_MS", "2000"),
    ("AIRLOCK_WEBHOOKS__MAX_ATTEMPTS", "3"),
    ("AIRLOCK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
];

/// A receiver that accepts every event.
fn receiver(pki: &TestPki) -> HttpsResponder {
    HttpsResponder::start(pki, |_| (204, "text/plain", Vec::new()))
}

/// Adds an endpoint for `webhook.test` events; returns its id.
async fn add(s: &TestServer, url: &str, ca_cert: Option<&str>) -> (u16, Value) {
    post_json(
        &s.http,
        &s.url("/api/v1/webhooks"),
        json!({"url": url, "events": ["webhook.test"], "secret": SECRET, "ca_cert": ca_cert}),
    )
    .await
}

/// Queues a test event for `id` and waits until its delivery is out of `pending`.
async fn send_test_event(s: &TestServer, id: i64) -> Value {
    let response = s
        .http
        .post(s.url(&format!("/api/v1/webhooks/{id}/test")))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    for _ in 0..200 {
        let body: Value = s
            .http
            .get(s.url(&format!("/api/v1/webhooks/{id}/deliveries")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(delivery) = body["deliveries"].as_array().and_then(|list| {
            list.iter()
                .find(|d| d["type"] == "dev.airlock.webhook.test")
        }) && delivery["status"] != "pending"
        {
            return delivery.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the test event is still pending");
}

#[tokio::test]
async fn an_https_webhook_is_delivered_when_its_receiver_chains_to_the_endpoint_ca() {
    let s = TestServer::start_with_env(&ENV);
    let ca = TestPki::new();
    let hooks = receiver(&ca);
    let url = format!("{}/hooks/airlock", hooks.url);
    let (status, body) = add(&s, &url, Some(&ca_pem(&ca))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["ca_cert"],
        ca_pem(&ca).trim(),
        "the endpoint keeps its CA"
    );
    let id = body["id"].as_i64().unwrap();

    let delivery = send_test_event(&s, id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery:#}");
    assert_eq!(delivery["attempts"], 1, "{delivery:#}");
    let received = hooks.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/hooks/airlock");
    let event: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(event["type"], "dev.airlock.webhook.test");
}

#[tokio::test]
async fn an_https_webhook_with_the_wrong_ca_is_retried_and_never_delivered() {
    let s = TestServer::start_with_env(&ENV);
    let real = TestPki::new();
    let other = TestPki::new();
    let hooks = receiver(&real);
    let (status, body) = add(&s, &format!("{}/hook", hooks.url), Some(&ca_pem(&other))).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();

    let delivery = send_test_event(&s, id).await;
    assert_eq!(delivery["status"], "dead", "{delivery:#}");
    assert_eq!(
        delivery["attempts"], 3,
        "retried until max_attempts: {delivery:#}"
    );
    let error = delivery["last_error"].as_str().unwrap();
    assert!(
        error.contains("TLS") && error.contains("certificate is not trusted"),
        "the failure names the certificate problem: {error}"
    );
    assert!(delivery["last_status"].is_null(), "{delivery:#}");
    assert!(hooks.received().is_empty(), "nothing reached the receiver");
    assert!(hooks.failed_handshakes() >= 3);
}

#[tokio::test]
async fn an_https_webhook_without_a_ca_uses_the_system_roots_which_refuse_a_private_ca() {
    let s = TestServer::start_with_env(&ENV);
    let ca = TestPki::new();
    let hooks = receiver(&ca);
    let (status, body) = add(&s, &format!("{}/hook", hooks.url), None).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["ca_cert"].is_null(), "{body}");
    let delivery = send_test_event(&s, body["id"].as_i64().unwrap()).await;
    assert_eq!(delivery["status"], "dead", "{delivery:#}");
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .contains("certificate is not trusted"),
        "{delivery:#}"
    );
    assert!(hooks.received().is_empty());
}

#[tokio::test]
async fn an_https_webhook_to_loopback_is_refused_by_the_resolver_unless_allowed() {
    // The defaults: private targets refused.
    let s = TestServer::start_with_env(&ENV[..5]);
    let ca = TestPki::new();
    let hooks = receiver(&ca);
    // A literal loopback address is refused when the endpoint is added.
    let literal = format!("https://127.0.0.1:{}/hook", hooks.address.port());
    let (status, body) = add(&s, &literal, Some(&ca_pem(&ca))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("loopback"), "{body}");
    // A name is checked where it resolves, at every send, for https as for http.
    let (status, body) = add(&s, &format!("{}/hook", hooks.url), Some(&ca_pem(&ca))).await;
    assert_eq!(status, 201, "{body}");
    let delivery = send_test_event(&s, body["id"].as_i64().unwrap()).await;
    assert_eq!(delivery["status"], "dead", "{delivery:#}");
    let error = delivery["last_error"].as_str().unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert!(hooks.received().is_empty());
    assert_eq!(hooks.failed_handshakes(), 0, "no connection was made");
}

#[tokio::test]
async fn a_webhook_ca_cert_must_be_pem_and_needs_an_https_url() {
    let s = TestServer::start_with_env(&ENV);
    let ca = TestPki::new();
    let (status, body) = add(&s, "http://localhost:9/hook", Some(&ca_pem(&ca))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("only to an https://"), "{body}");
    let (status, body) = add(&s, "https://localhost:9/hook", Some("not a certificate")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("CERTIFICATE"), "{body}");
}

#[tokio::test]
async fn the_cli_adds_an_https_webhook_with_the_receivers_ca() {
    let s = TestServer::start_with_env(&ENV);
    let ca = TestPki::new();
    let hooks = receiver(&ca);
    let secret = ca.dir().join("hook.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let url = format!("{}/hook", hooks.url);
    let (code, out, err) = s.cli(&[
        "webhooks",
        "add",
        &url,
        "--events",
        "webhook.test",
        "--secret-file",
        secret.to_str().unwrap(),
        "--receiver-ca-cert",
        ca.ca_cert.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(added["ca_cert"], ca_pem(&ca).trim());
    let delivery = send_test_event(&s, added["id"].as_i64().unwrap()).await;
    assert_eq!(delivery["status"], "delivered", "{delivery:#}");
    assert_eq!(hooks.received().len(), 1);
}
