//! Hostile input over HTTP: thousands of malformed paths, query strings and headers against every
//! endpoint family. Nothing may answer 5xx (a server error would mean an unhandled input) and the
//! server must stay healthy.

mod common;

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
