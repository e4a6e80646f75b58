//! Hostile input over HTTP: thousands of malformed paths, query strings and headers against every
//! endpoint family. Nothing may answer 5xx (a server error would mean an unhandled input) and the
//! server must stay healthy.

use crate::common;

use common::TestServer;

/// A small deterministic generator, so a failure reproduces.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// A short string of characters that matter to parsers.
    fn garbage(&mut self) -> String {
        const ALPHABET: &[u8] = b"aZ09:._-/%x.p+=&?sha256\\\"' \t";
        let len = self.next() % 24;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .map(|c| if c == ' ' || c == '\t' { '%' } else { c })
            .collect()
    }
}

#[tokio::test]
async fn malformed_requests_never_cause_server_errors() {
    let s = TestServer::start();
    let (_, digest) = s.push_image("dev/team/app", "1", &[b"layer"]).await;
    s.wait_for_checkpoint().await;
    let mut rng = Xorshift(0x5eed_1234_abcd_9876);
    let templates = [
        "/v2/{g}",
        "/v2/dev/{g}/manifests/{g}",
        "/v2/dev/team/app/manifests/{g}",
        "/v2/dev/team/app/blobs/{g}",
        "/v2/dev/team/app/blobs/uploads/{g}",
        "/v2/dev/team/app/referrers/{g}",
        "/v2/dev/team/app/tags/list?n={g}&last={g}",
        "/v2/_catalog?n={g}&last={g}",
        "/v2/dev/team/app/blobs/uploads/?mount={g}&from={g}",
        "/v2/dev/team/app/blobs/uploads/?digest={g}",
        "/log/tile/{g}",
        "/log/tile/0/{g}",
        "/log/tile/entries/{g}",
        "/api/v1/audit/entries?start={g}&limit={g}&type={g}&newest={g}",
        "/api/v1/audit/proof/inclusion?index={g}&tree_size={g}",
        "/api/v1/audit/proof/consistency?from={g}&to={g}",
        "/api/v1/audit/checkpoints?after={g}&limit={g}",
    ];
    let methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"];
    let mut failures = Vec::new();
    let mut sent = 0;
    for _ in 0..1500 {
        let template = rng.pick(&templates);
        let mut path = String::new();
        for (i, part) in template.split("{g}").enumerate() {
            if i > 0 {
                path.push_str(&rng.garbage());
            }
            path.push_str(part);
        }
        let method: reqwest::Method = rng.pick(&methods).parse().unwrap();
        let mut request = s.http.request(method.clone(), s.url(&path));
        match rng.next() % 4 {
            0 => request = request.header("content-range", rng.garbage()),
            1 => request = request.header("range", format!("bytes={}", rng.garbage())),
            2 => {
                request = request
                    .header("content-type", rng.garbage())
                    .body(rng.garbage())
            }
            _ => {}
        }
        let Ok(response) = request.send().await else {
            continue; // the client refused to build the request (invalid URL or header)
        };
        sent += 1;
        if response.status().is_server_error() {
            failures.push(format!("{method} {path} -> {}", response.status()));
        }
    }
    assert!(sent > 1000, "only {sent} requests could be sent");
    assert!(
        failures.is_empty(),
        "server errors:\n{}",
        failures.join("\n")
    );
    // Still healthy, and the content is intact.
    assert_eq!(
        s.http.get(s.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let head = s
        .http
        .head(s.url("/v2/dev/team/app/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
}

/// A NUL character (U+0000) is valid in JSON strings and form values but PostgreSQL's `text`
/// cannot hold it. A user name holding one is an unknown user (401) on both engines; any other
/// text field holding one is stored on SQLite and refused with 400 naming the character on
/// PostgreSQL, never a 500, and nothing is left half-written.
#[tokio::test]
async fn nul_characters_in_text_inputs_never_cause_server_errors() {
    let s = TestServer::start();
    let anonymous = reqwest::Client::new();
    // The token endpoint's form and Basic auth, as a fuzzer found it.
    let response = anonymous
        .post(s.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("service", "airlock"),
            ("username", "ad\0min"),
            ("password", "whatever-it-is"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{}", response.text().await.unwrap());
    let response = common::client_as("ad\0min", common::ADMIN_PASSWORD)
        .get(s.url("/auth/token?service=airlock"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{}", response.text().await.unwrap());
    let response = s
        .http
        .get(s.url("/auth/token?service=airlock"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the real admin still signs in");

    // A name in an API path names nothing.
    let response = s
        .http
        .post(s.url("/api/v1/users/ad%00min/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let said: serde_json::Value = response.json().await.unwrap();
    assert_eq!(said["error"]["code"], "NOT_FOUND", "{said}");

    // A free-text field of the JSON API.
    let (status, body) = common::post_json(
        &s.http,
        &s.url("/api/v1/access-requests"),
        serde_json::json!({"role": "developer", "scope": "dev/team/app", "duration_secs": 60, "reason": "INC-\u{0}1"}),
    )
    .await;
    let (_, listed) = common::get_json(&s.http, &s.url("/api/v1/access-requests")).await;
    let requests = listed["requests"].as_array().expect("a list").len();
    if common::distributed() {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("NUL character"), "{message}");
        assert_eq!(requests, 0, "nothing was stored: {listed}");
    } else {
        assert_eq!(status, 201, "{body}");
        assert_eq!(requests, 1, "{listed}");
    }

    // Manifests: annotations are stored as JSON (escaped), so a NUL in one is kept on both
    // engines; an artifact type is stored as it is.
    let config = s.push_blob("dev/team/app", b"{}").await;
    let manifest = |artifact_type: &str, note: &str| {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": common::OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2}],
            "annotations": {"org.example.note": note},
        });
        serde_json::to_vec(&manifest).unwrap()
    };
    for (tag, body) in [
        (
            "annotated",
            manifest("application/vnd.example+json", "a\u{0}b"),
        ),
        (
            "typed",
            manifest("application/vnd.example\u{0}+json", "note"),
        ),
    ] {
        let response = s
            .put_manifest("dev/team/app", tag, common::OCI_MANIFEST, &body)
            .await;
        let status = response.status().as_u16();
        let said = response.text().await.unwrap();
        let refused = tag == "typed" && common::distributed();
        if refused {
            assert_eq!(status, 400, "{said}");
            assert!(
                said.contains("MANIFEST_INVALID") && said.contains("NUL character"),
                "{said}"
            );
        } else {
            assert_eq!(status, 201, "{tag}: {said}");
        }
        let found = s
            .http
            .head(s.url(&format!("/v2/dev/team/app/manifests/{tag}")))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(found, if refused { 404 } else { 200 }, "{tag}");
    }
}
