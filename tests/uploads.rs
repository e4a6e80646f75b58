//! Upload sessions under attack: they belong to the principal that opened them.

mod common;

use common::{TestServer, client_as, error_code, post_json, sha256};

const PASSWORD: &str = "upload-test-password-0123";

/// Creates `name` with the builder role on `dev/team/*`; returns its client.
async fn builder(s: &TestServer, name: &str) -> reqwest::Client {
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/users"),
        serde_json::json!({"name": name, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "create {name}: {body}");
    let (status, body) = post_json(
        &s.http,
        &s.url("/api/v1/roles/grant"),
        serde_json::json!({"principal": name, "role": "builder", "scope": "dev/team/*"}),
    )
    .await;
    assert_eq!(status, 200, "grant builder to {name}: {body}");
    client_as(name, PASSWORD)
}

/// Opens an upload session in `dev/team/app` as `client`; returns its absolute URL.
async fn open_session(s: &TestServer, client: &reqwest::Client) -> String {
    let start = client
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    s.location(&start)
}

#[tokio::test]
async fn upload_session_is_unknown_to_another_principal() {
    let s = TestServer::start();
    let alice = builder(&s, "alice").await;
    let mallory = builder(&s, "mallory").await;
    let location = open_session(&s, &alice).await;
    let first = alice
        .patch(&location)
        .header("content-range", "0-4")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);

    // Mallory may push to the repository, knows the session id, and still sees no session: the
    // same answer as for an id that never existed.
    let nowhere = s.url("/v2/dev/team/app/blobs/uploads/00000000-0000-4000-8000-000000000000");
    for url in [location.as_str(), nowhere.as_str()] {
        let attempts = [
            mallory.get(url),
            mallory
                .patch(url)
                .header("content-range", "5-9")
                .body("evil!"),
            mallory
                .put(format!("{url}?digest={}", sha256(b"helloevil!")))
                .body(""),
            mallory.delete(url),
        ];
        for attempt in attempts {
            let response = attempt.send().await.unwrap();
            assert_eq!(response.status(), 404, "{url}");
            assert_eq!(error_code(response).await, "BLOB_UPLOAD_UNKNOWN");
        }
    }

    // Alice's session is untouched: five bytes, and it finishes with her content only.
    let status = alice.get(&location).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], "0-4");
    let digest = sha256(b"hello world");
    let done = alice
        .put(format!("{location}?digest={digest}"))
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
}
