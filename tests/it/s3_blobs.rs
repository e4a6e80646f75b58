//! Blobs on S3 end to end (`blob_store = "s3://..."`, the test server of `scripts/test-s3`): OCI
//! uploads of any chunk size, pulls by digest and ranges, a digest mismatch leaving nothing,
//! gc, and `[s3] redirect` (307 to a presigned URL after the access check, followed by skopeo).
//!
//! Without `AIRLOCK_TEST_S3_ENDPOINT` these tests skip with a notice; with
//! `AIRLOCK_INTEROP=required` (CI) they fail instead.

use crate::common;

use airlock_store::test_support::TestS3;
use airlock_store::{BlobStore, S3Location};
use common::{ADMIN_PASSWORD, ServerLog, TestServer, add_user, create_test_bucket, sha256};
use serde_json::json;

/// A server whose blobs are in a fresh bucket, with `[s3] redirect` as given and its log
/// collected; `None` (with a notice) when there is no test server and none is required.
fn start_on_s3(redirect: bool, env: &[(&str, &str)]) -> Option<(TestServer, ServerLog, String)> {
    let server = match TestS3::from_env() {
        Ok(server) => server,
        Err(err) if std::env::var("AIRLOCK_INTEROP").as_deref() == Ok("required") => {
            panic!("AIRLOCK_INTEROP=required: {err}")
        }
        Err(err) => {
            eprintln!("NOTICE: skipping S3 test: {err}");
            return None;
        }
    };
    let bucket = TestS3::fresh_bucket_name();
    create_test_bucket(&server, &bucket);
    let location = format!("s3://{bucket}/registry");
    let redirect = redirect.to_string();
    let mut all = vec![
        ("AIRLOCK_BLOB_STORE", location.as_str()),
        ("AIRLOCK_S3__ENDPOINT", server.endpoint.as_str()),
        ("AIRLOCK_S3__PATH_STYLE", "true"),
        ("AIRLOCK_S3__ALLOW_HTTP", "true"),
        ("AIRLOCK_S3__REDIRECT", redirect.as_str()),
        ("AIRLOCK_LOG__LEVEL", "info"),
    ];
    all.extend_from_slice(env);
    let (s, log) = TestServer::start_with_log(&all);
    Some((s, log, location))
}

/// The same bucket as the server sees it, to look at what is stored.
async fn bucket_view(location: &str) -> BlobStore {
    let server = TestS3::from_env().unwrap();
    let location: S3Location = location.parse().unwrap();
    BlobStore::s3(&location, &server.options(None), std::env::vars())
        .await
        .unwrap()
}

/// `total` pseudo-random bytes.
fn content(total: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9u32 ^ u32::from(seed);
    (0..total)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Uploads `bytes` to `repo` in PATCH chunks of `chunk` bytes and a PUT with the digest (the
/// last chunk in the PUT's body when `last_in_put`); returns the PUT's status.
async fn chunked_upload(
    s: &TestServer,
    repo: &str,
    bytes: &[u8],
    chunk: usize,
    last_in_put: bool,
    digest: &str,
) -> u16 {
    let response = s
        .http
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let mut location = s.location(&response);
    let pieces: Vec<&[u8]> = bytes.chunks(chunk).collect();
    let (patched, put_body) = match (last_in_put, pieces.split_last()) {
        (true, Some((last, rest))) => (rest.to_vec(), last.to_vec()),
        _ => (pieces, Vec::new()),
    };
    let mut offset = 0;
    for piece in patched {
        let response = s
            .http
            .patch(&location)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{offset}-{}", offset + piece.len() - 1),
            )
            .body(piece.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "PATCH at {offset}");
        location = s.location(&response);
        offset += piece.len();
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    s.http
        .put(format!("{location}{separator}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(put_body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Fetches blob `digest` of `repo` as admin (following no redirect) with an optional range.
async fn get_blob(
    s: &TestServer,
    repo: &str,
    digest: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn uploads_of_any_chunk_size_are_pulled_back_by_digest_from_s3() {
    let Some((s, _log, location)) = start_on_s3(false, &[]) else {
        return;
    };
    let repo = "dev/team/chunks";
    // (name, size, chunk size, last chunk sent with the PUT)
    let cases = [
        ("1-byte chunks", 7, 1, false),
        ("100 KiB chunks", 350 * 1024 + 5, 100 * 1024, false),
        ("7 MiB chunks", 15 * 1024 * 1024 + 3, 7 * 1024 * 1024, false),
        (
            "PATCH then PUT with the last chunk",
            300 * 1024,
            200 * 1024,
            true,
        ),
        ("monolithic PUT", 6 * 1024 * 1024, 6 * 1024 * 1024, true),
    ];
    let mut digests = Vec::new();
    for (n, (name, size, chunk, last_in_put)) in cases.into_iter().enumerate() {
        let bytes = content(size, n as u8);
        let digest = sha256(&bytes);
        let status = chunked_upload(&s, repo, &bytes, chunk, last_in_put, &digest).await;
        assert_eq!(status, 201, "{name}");
        let pulled = get_blob(&s, repo, &digest, None).await;
        assert_eq!(pulled.status(), 200, "{name}");
        assert_eq!(sha256(&pulled.bytes().await.unwrap()), digest, "{name}");
        let range = get_blob(&s, repo, &digest, Some("bytes=3-5")).await;
        assert_eq!(range.status(), 206, "{name}");
        assert_eq!(range.bytes().await.unwrap(), bytes[3..6], "{name}");
        digests.push(digest);
    }
    // One request with ?digest= (POST), as many clients push small blobs.
    let small = content(1000, 9);
    let digest = sha256(&small);
    let response = s
        .http
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    digests.push(digest);

    // The bytes are in the bucket, under the configured prefix, nowhere on local disk.
    let bucket = bucket_view(&location).await;
    let stored: Vec<String> = bucket
        .list_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.digest.to_string())
        .collect();
    for digest in &digests {
        assert!(stored.contains(digest), "{digest} not in the bucket");
    }
    assert!(!s.data_dir.join("blobs/blobs").exists());
}

#[tokio::test]
async fn a_digest_mismatch_on_s3_leaves_no_blob() {
    let Some((s, _log, location)) = start_on_s3(false, &[]) else {
        return;
    };
    let repo = "dev/team/mismatch";
    let bytes = content(3 * 1024 * 1024, 1);
    let claimed = sha256(b"other bytes");
    let status = chunked_upload(&s, repo, &bytes, 1024 * 1024, false, &claimed).await;
    assert_eq!(status, 400);
    for digest in [&claimed, &sha256(&bytes)] {
        assert_eq!(get_blob(&s, repo, digest, None).await.status(), 404);
    }
    assert!(
        bucket_view(&location)
            .await
            .list_blobs()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn gc_on_s3_deletes_unreferenced_blobs_and_keeps_the_rest() {
    let Some((s, _log, location)) = start_on_s3(
        false,
        &[
            ("AIRLOCK_GC__GRACE_SECS", "0"),
            ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
        ],
    ) else {
        return;
    };
    let layer = content(200_000, 3);
    let image = common::push_image_as(&s, &s.http, "dev/team/app", "1", &layer, None).await;
    let stray = s.push_blob("dev/team/other", b"stray bytes").await;
    let (status, report) =
        common::post_json(&s.http, &s.url("/api/v1/gc"), json!({"dry_run": false})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["blobs"], 1, "{report}");
    let stored: Vec<String> = bucket_view(&location)
        .await
        .list_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.digest.to_string())
        .collect();
    assert!(!stored.contains(&stray), "{stored:?}");
    assert!(stored.contains(&sha256(&layer)), "{stored:?}");
    let manifest = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/manifests/{image}")))
        .header("accept", common::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
}

#[tokio::test]
async fn redirects_go_to_the_bucket_only_after_the_access_check() {
    let Some((s, log, _)) = start_on_s3(true, &[]) else {
        return;
    };
    let layer = content(2 * 1024 * 1024, 4);
    let digest = sha256(&layer);
    common::push_image_as(&s, &s.http, "dev/team/app", "1", &layer, None).await;

    let redirected = get_blob(&s, "dev/team/app", &digest, None).await;
    assert_eq!(redirected.status(), 307);
    assert_eq!(
        redirected.headers()["docker-content-digest"],
        digest.as_str()
    );
    let target = redirected.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let endpoint = std::env::var("AIRLOCK_TEST_S3_ENDPOINT").unwrap();
    assert!(target.starts_with(&endpoint), "{target}");
    assert!(target.contains("X-Amz-Expires=300"), "{target}");
    // The URL works without credentials, for the whole blob and for a range.
    let fetched = reqwest::get(&target).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(sha256(&fetched.bytes().await.unwrap()), digest);
    let part = reqwest::Client::new()
        .get(&target)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), layer[10..20]);
    // HEAD is answered by airlock.
    let head = s
        .http
        .head(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        layer.len().to_string().as_str()
    );

    // No pull right, or no credentials: refused, and no URL handed out.
    let outsider = add_user(
        &s,
        "outsider",
        "lantern-quiet-harbor-27",
        &[("developer", "dev/other/*")],
    )
    .await;
    let outsider = outsider
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(outsider.status().as_u16(), 401 | 403),
        "{}",
        outsider.status()
    );
    assert!(outsider.headers().get("location").is_none());
    let anonymous = s
        .anonymous
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().get("location").is_none());

    // Logged with who and what, never the signature or the secret.
    assert!(
        log.contains("blob download redirected"),
        "no redirect logged"
    );
    assert!(
        log.contains(&digest) && log.contains("principal=admin"),
        "redirect log lacks principal or digest"
    );
    assert_eq!(log.count("blob download redirected"), 1);
    assert!(!log.contains("X-Amz-Signature"));
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    assert!(!log.contains(&secret));
}

/// skopeo pushes through the S3-backed server and pulls back through its redirects (it follows
/// the 307 to the bucket) into a `dir:` layout, byte for byte.
#[tokio::test]
async fn skopeo_pushes_and_pulls_through_a_redirecting_s3_server() {
    if !common::interop_tool_available("skopeo", &["--version"]) {
        return;
    }
    let Some((s, log, _)) = start_on_s3(true, &[]) else {
        return;
    };
    let layer = content(3 * 1024 * 1024 + 17, 5);
    let digest = common::push_image_as(&s, &s.http, "dev/team/app", "1", &layer, None).await;
    let work = tempfile::tempdir().unwrap();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let skopeo = |args: &[&str]| {
        let output = std::process::Command::new("skopeo")
            .arg("--insecure-policy")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "skopeo {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let pulled = work.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-creds",
        &creds,
        "--src-tls-verify=false",
        &format!("docker://{}/dev/team/app@{digest}", s.host),
        &format!("dir:{}", pulled.display()),
    ]);
    let layer_file = pulled.join(&sha256(&layer)[7..]);
    assert_eq!(std::fs::read(&layer_file).unwrap(), layer);
    assert!(
        log.count("blob download redirected") >= 2,
        "skopeo's blob GETs were not redirected"
    );
    // And push it back under another name: the upload goes into the bucket.
    skopeo(&[
        "copy",
        "--dest-creds",
        &creds,
        "--dest-tls-verify=false",
        &format!("dir:{}", pulled.display()),
        &format!("docker://{}/dev/team/copy:1", s.host),
    ]);
    let copied = get_blob(&s, "dev/team/copy", &sha256(&layer), None).await;
    assert_eq!(copied.status(), 307);
    let bytes = reqwest::get(copied.headers()["location"].to_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes, layer);
}

/// podman pulls an image through the redirecting server (its layer and config from the bucket)
/// into a storage of its own; the image was pushed by skopeo from `scripts/example-image`.
#[tokio::test]
async fn podman_pulls_through_a_redirecting_s3_server() {
    if !common::interop_tool_available("podman", &["--version"])
        || !common::interop_tool_available("skopeo", &["--version"])
    {
        return;
    }
    let Some((s, log, _)) = start_on_s3(true, &[]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let made = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/example-image"
    ))
    .arg(&layout)
    .arg("1")
    .output()
    .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let pushed = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--dest-creds",
            &creds,
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{}/dev/team/hello:1", s.host))
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let storage = work.path().join("storage");
    let podman = |args: &[&str]| {
        std::process::Command::new("podman")
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap()
    };
    let pulled = podman(&[
        "pull",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("{}/dev/team/hello:1", s.host),
    ]);
    assert!(
        pulled.status.success(),
        "podman pull: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(
        log.count("blob download redirected") >= 2,
        "podman's blob GETs were not redirected"
    );
    let listed = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("/dev/team/hello:1"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
}
