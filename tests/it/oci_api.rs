//! The OCI Distribution API driven over HTTP against a real `airlock serve`: every endpoint, and
//! every error path a client can hit.

use crate::common;

use common::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, TestServer, error_code, sha256};
use serde_json::{Value, json};

#[tokio::test]
async fn base_endpoint_answers_with_api_version() {
    let s = TestServer::start();
    let r = s.http.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        s.http.get(s.url("/readyz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn monolithic_upload_is_readable_whole_and_by_range() {
    let s = TestServer::start();
    let content = b"0123456789abcdef".repeat(100);
    let digest = s.push_blob("dev/team/app", &content).await;

    let head = s
        .http
        .head(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "1600");
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());

    let get = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.bytes().await.unwrap().as_ref(), content.as_slice());

    let ranged = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .header("range", "bytes=16-31")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], "bytes 16-31/1600");
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &content[16..32]);

    let unsatisfiable = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */1600");

    // Blobs are scoped to repositories: another repository does not serve it without a mount.
    let other = s
        .http
        .head(s.url(&format!("/v2/dev/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn empty_blob_uploads_and_reads_back() {
    let s = TestServer::start();
    let digest = s.push_blob("dev/team/app", b"").await;
    assert_eq!(digest, sha256(b""));
    let get = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-length"], "0");
    assert!(get.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn content_range_whose_length_overflows_is_refused_not_a_crash() {
    let s = TestServer::start();
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = s.location(&start);
    // 0-18446744073709551615 is 2^64 bytes: the debug build panicked computing its length and
    // the release build wrapped it to 0, accepting an empty body.
    let huge = s
        .http
        .patch(&location)
        .header("content-range", "0-18446744073709551615")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 400);
    assert_eq!(error_code(huge).await, "SIZE_INVALID");
    let status = s.http.get(&location).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], "0-0");
}

#[tokio::test]
async fn chunked_upload_checks_order_and_reports_progress() {
    let s = TestServer::start();
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    assert_eq!(start.headers()["range"], "0-0");
    let location = s.location(&start);

    let first = s
        .http
        .patch(&location)
        .header("content-range", "0-4")
        .header("content-type", "application/octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    assert_eq!(first.headers()["range"], "0-4");
    let location = s.location(&first);

    // A chunk that skips ahead is refused with 416 and the range the server actually has.
    let skipped = s
        .http
        .patch(&location)
        .header("content-range", "10-14")
        .body("world")
        .send()
        .await
        .unwrap();
    assert_eq!(skipped.status(), 416);
    assert_eq!(skipped.headers()["range"], "0-4");
    assert!(skipped.headers().contains_key("location"));

    // A chunk whose length contradicts its Content-Range is refused and not kept.
    let short = s
        .http
        .patch(&location)
        .header("content-range", "5-20")
        .body(" wor")
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 400);
    assert_eq!(error_code(short).await, "SIZE_INVALID");

    let second = s
        .http
        .patch(&location)
        .header("content-range", "5-10")
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 202);
    let status = s.http.get(&location).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], "0-10");

    let digest = sha256(b"hello world!");
    let done = s
        .http
        .put(format!("{location}?digest={digest}"))
        .body("!")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(done.headers()["docker-content-digest"], digest.as_str());
    let get = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), b"hello world!");
    // The session is gone once the blob is committed.
    assert_eq!(s.http.get(&location).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_leaves_nothing_visible() {
    let s = TestServer::start();
    let claimed = sha256(b"something else");
    let r = s
        .http
        .post(s.url(&format!("/v2/dev/team/app/blobs/uploads/?digest={claimed}")))
        .body("actual content")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    for digest in [claimed, sha256(b"actual content")] {
        let head = s
            .http
            .head(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 404);
    }
    let uploads = s.data_dir.join("blobs/uploads");
    assert!(
        !uploads.exists() || std::fs::read_dir(&uploads).unwrap().next().is_none(),
        "staging data left in {uploads:?}"
    );

    let malformed = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/?digest=sha256:xyz"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_code(malformed).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn cancelled_upload_is_forgotten_with_its_data() {
    let s = TestServer::start();
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = s.location(&start);
    let r = s
        .http
        .patch(&location)
        .body(vec![7u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(s.http.delete(&location).send().await.unwrap().status(), 204);
    let gone = s.http.get(&location).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(error_code(gone).await, "BLOB_UPLOAD_UNKNOWN");
    let uploads = s.data_dir.join("blobs/uploads");
    assert!(!uploads.exists() || std::fs::read_dir(&uploads).unwrap().next().is_none());
    // An upload id from another repository is unknown here.
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let id = s.location(&start).rsplit('/').next().unwrap().to_string();
    let foreign = s
        .http
        .get(s.url(&format!("/v2/dev/other/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let garbage = s
        .http
        .get(s.url("/v2/dev/team/app/blobs/uploads/..%2f..%2fetc"))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 404);
}

#[tokio::test]
async fn interrupted_chunk_leaves_no_data_and_the_session_usable() {
    let s = TestServer::start();
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = s.location(&start);
    // The client dies after sending part of the chunk.
    let body = futures::stream::iter(vec![
        Ok(bytes::Bytes::from(vec![1u8; 256 * 1024])),
        Err(std::io::Error::other("client went away")),
    ]);
    let _ = s
        .http
        .patch(&location)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    // The server notices the broken body asynchronously; give it a moment to clean up.
    let id = location.rsplit('/').next().unwrap();
    let staged = s.data_dir.join("blobs/uploads").join(id);
    let mut leftovers = Vec::new();
    for _ in 0..50 {
        leftovers = std::fs::read_dir(&staged)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        if leftovers.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        leftovers.is_empty(),
        "partial chunk left data: {leftovers:?}"
    );
    let status = s.http.get(&location).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(
        status.headers()["range"],
        "0-0",
        "partial chunk must not count"
    );
    // The session still works.
    let digest = sha256(b"retry");
    let done = s
        .http
        .put(format!("{location}?digest={digest}"))
        .body("retry")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201);
}

#[tokio::test]
async fn idle_uploads_expire_and_their_data_is_deleted() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_REGISTRY__UPLOAD_EXPIRY_SECS", "1"),
        ("AIRLOCK_REGISTRY__UPLOAD_SWEEP_INTERVAL_SECS", "1"),
    ]);
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = s.location(&start);
    s.http
        .patch(&location)
        .body(vec![1u8; 4096])
        .send()
        .await
        .unwrap();
    let mut expired = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if s.http.get(&location).send().await.unwrap().status() == 404 {
            expired = true;
            break;
        }
    }
    assert!(expired, "idle upload was not expired");
    let uploads = s.data_dir.join("blobs/uploads");
    assert!(!uploads.exists() || std::fs::read_dir(&uploads).unwrap().next().is_none());
}

#[tokio::test]
async fn cross_repository_mount_links_without_upload() {
    let s = TestServer::start();
    let digest = s.push_blob("dev/team/base", b"shared layer").await;
    let mounted = s
        .http
        .post(s.url(&format!(
            "/v2/dev/team/app/blobs/uploads/?mount={digest}&from=dev/team/base"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(mounted.status(), 201);
    assert_eq!(mounted.headers()["docker-content-digest"], digest.as_str());
    let get = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(get.bytes().await.unwrap().as_ref(), b"shared layer");

    // Unknown source blob: fall back to an upload session, as the spec requires.
    let missing = sha256(b"not there");
    let fallback = s
        .http
        .post(s.url(&format!(
            "/v2/dev/team/app/blobs/uploads/?mount={missing}&from=dev/team/base"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 202);

    // A mount into a gated stage is a push, and refused.
    let gated = s
        .http
        .post(s.url(&format!(
            "/v2/prod/team/app/blobs/uploads/?mount={digest}&from=dev/team/base"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(gated.status(), 403);
    assert_eq!(error_code(gated).await, "DENIED");
}

#[tokio::test]
async fn manifests_round_trip_by_tag_and_digest_with_their_media_type() {
    let s = TestServer::start();
    let (manifest, digest) = s
        .push_image("dev/team/app", "1.0", &[b"layer one", b"layer two"])
        .await;
    for reference in ["1.0", digest.as_str()] {
        let get = s
            .http
            .get(s.url(&format!("/v2/dev/team/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
        assert_eq!(get.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(get.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(get.bytes().await.unwrap().as_ref(), manifest.as_slice());
        let head = s
            .http
            .head(s.url(&format!("/v2/dev/team/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["content-length"],
            manifest.len().to_string().as_str()
        );
    }

    // Docker schema 2 keeps its own media type.
    let config = s.push_blob("dev/team/app", b"{}").await;
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 2},
        "layers": []})).unwrap();
    let r = s
        .put_manifest("dev/team/app", "docker", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(r.status(), 201);
    let get = s
        .http
        .get(s.url("/v2/dev/team/app/manifests/docker"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["content-type"], DOCKER_MANIFEST);

    // Push by digest: the digest must match the body.
    let by_digest = s
        .put_manifest("dev/team/app", &sha256(&docker), DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(by_digest.status(), 201);
    let wrong = s
        .put_manifest("dev/team/app", &sha256(b"other"), DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(error_code(wrong).await, "DIGEST_INVALID");

    let unknown = s
        .http
        .get(s.url("/v2/dev/team/app/manifests/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_with_missing_references_is_rejected() {
    let s = TestServer::start();
    let config = s.push_blob("dev/team/app", b"{}").await;
    let missing = sha256(b"never uploaded");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 14}]})).unwrap();
    let r = s
        .put_manifest("dev/team/app", "1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&missing)
    );
    // Nothing was stored, not even the tag.
    let tags: Value = s
        .http
        .get(s.url("/v2/dev/team/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!([]));

    // An index needs its child manifests.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 5}]}))
    .unwrap();
    let r = s
        .put_manifest("dev/team/app", "idx", OCI_INDEX, &index)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn invalid_and_oversize_manifests_are_rejected() {
    // A small limit keeps the oversize body within socket buffers, so the client reads the answer.
    let s = TestServer::start_with_env(&[("AIRLOCK_REGISTRY__MAX_MANIFEST_BYTES", "1024")]);
    let r = s
        .put_manifest("dev/team/app", "1", OCI_MANIFEST, b"not json")
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let r = s.put_manifest("dev/team/app", "1", OCI_INDEX, br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let huge = vec![b' '; 1025];
    let r = s
        .put_manifest("dev/team/app", "1", OCI_MANIFEST, &huge)
        .await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
}

#[tokio::test]
async fn bad_names_and_unknown_stages_get_spec_errors() {
    let s = TestServer::start();
    for (path, status, code) in [
        ("/v2/dev/Team/app/tags/list", 400, "NAME_INVALID"),
        ("/v2/dev/team//app/tags/list", 400, "NAME_INVALID"),
        ("/v2/dev/a..b/app/tags/list", 400, "NAME_INVALID"),
        ("/v2/app/tags/list", 400, "NAME_INVALID"),
        ("/v2/qa/team/app/tags/list", 404, "NAME_UNKNOWN"),
        ("/v2/dev/never/pushed/tags/list", 404, "NAME_UNKNOWN"),
        ("/v2/dev/team/app/blobs/sha256:abc", 400, "DIGEST_INVALID"),
        (
            "/v2/dev/team/app/manifests/bad:tag:x",
            400,
            "DIGEST_INVALID",
        ),
        // No manifest can have a reference that is not a valid tag: reads get 404 (writes of
        // such a tag get 400 TAG_INVALID, see tests/it/conformance.rs).
        ("/v2/dev/team/app/manifests/.bad", 404, "MANIFEST_UNKNOWN"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(error_code(r).await, code, "{path}");
    }
    let r = s
        .http
        .post(s.url("/v2/dev/team/app/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn push_to_gated_stage_is_denied() {
    let s = TestServer::start();
    let r = s
        .http
        .post(s.url("/v2/prod/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("only by promotion")
    );

    let (manifest, _) = s.push_image("dev/team/app", "1", &[b"l"]).await;
    for stage in ["staging", "prod"] {
        let r = s
            .put_manifest(&format!("{stage}/team/app"), "1", OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), 403, "{stage}");
        assert_eq!(error_code(r).await, "DENIED");
    }
    let r = s
        .http
        .delete(s.url("/v2/prod/team/app/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "DENIED");
    // Nothing appeared in the gated stage.
    let r = s
        .http
        .get(s.url("/v2/prod/team/app/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn tags_move_in_push_stages_and_list_with_pagination() {
    let s = TestServer::start();
    let (_, first) = s.push_image("dev/team/app", "latest", &[b"a"]).await;
    let (_, second) = s.push_image("dev/team/app", "latest", &[b"b"]).await;
    assert_ne!(first, second);
    let get = s
        .http
        .head(s.url("/v2/dev/team/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["docker-content-digest"], second.as_str());

    for tag in ["c", "a", "b", "d"] {
        s.push_image("dev/team/app", tag, &[b"a"]).await;
    }
    let page = s
        .http
        .get(s.url("/v2/dev/team/app/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    let link = page.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        "</v2/dev/team/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    let body: Value = page.json().await.unwrap();
    assert_eq!(body, json!({"name": "dev/team/app", "tags": ["a", "b"]}));
    let next: Value = s
        .http
        .get(s.url("/v2/dev/team/app/tags/list?n=2&last=b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["tags"], json!(["c", "d"]));
    let rest: Value = s
        .http
        .get(s.url("/v2/dev/team/app/tags/list?last=d"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["tags"], json!(["latest"]));
    let bad = s
        .http
        .get(s.url("/v2/dev/team/app/tags/list?n=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn referrers_are_listed_and_filtered_by_artifact_type() {
    let s = TestServer::start();
    let (subject_manifest, subject) = s.push_image("dev/team/app", "1", &[b"layer"]).await;
    let empty = s.push_blob("dev/team/app", b"{}").await;
    let mut referrers = Vec::new();
    for (artifact_type, payload) in [
        ("application/vnd.example.sbom", b"sbom".as_slice()),
        ("application/vnd.example.sig", b"sig"),
    ] {
        let layer = s.push_blob("dev/team/app", payload).await;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": payload.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_manifest.len()},
            "annotations": {"org.example.kind": artifact_type}})).unwrap();
        let digest = sha256(&manifest);
        let r = s
            .put_manifest("dev/team/app", &digest, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["oci-subject"], subject.as_str());
        referrers.push((artifact_type, digest, manifest.len()));
    }
    let all = s
        .http
        .get(s.url(&format!("/v2/dev/team/app/referrers/{subject}")))
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["content-type"], OCI_INDEX);
    assert!(!all.headers().contains_key("oci-filters-applied"));
    let index: Value = all.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    let first = &index["manifests"][0];
    assert_eq!(first["digest"], referrers[0].1.as_str());
    assert_eq!(first["size"], referrers[0].2);
    assert_eq!(first["artifactType"], "application/vnd.example.sbom");
    assert_eq!(
        first["annotations"]["org.example.kind"],
        "application/vnd.example.sbom"
    );

    let filtered = s
        .http
        .get(s.url(&format!(
            "/v2/dev/team/app/referrers/{subject}?artifactType=application/vnd.example.sig"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
    let index: Value = filtered.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], referrers[1].1.as_str());

    let none: Value = s
        .http
        .get(s.url(&format!(
            "/v2/dev/team/app/referrers/{}",
            sha256(b"unknown")
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["manifests"], json!([]));
}

#[tokio::test]
async fn catalog_lists_repositories_with_pagination() {
    let s = TestServer::start();
    for repo in ["dev/b", "dev/a", "dev/c/x"] {
        s.push_blob(repo, b"x").await;
    }
    let page = s.http.get(s.url("/v2/_catalog?n=2")).send().await.unwrap();
    assert_eq!(
        page.headers()["link"],
        "</v2/_catalog?n=2&last=dev/b>; rel=\"next\""
    );
    let body: Value = page.json().await.unwrap();
    assert_eq!(body["repositories"], json!(["dev/a", "dev/b"]));
    let rest: Value = s
        .http
        .get(s.url("/v2/_catalog?n=2&last=dev/b"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["repositories"], json!(["dev/c/x"]));
}

#[tokio::test]
async fn deletes_remove_tags_manifests_and_blob_links() {
    let s = TestServer::start();
    let (_, digest) = s.push_image("dev/team/app", "1", &[b"layer"]).await;
    s.push_image("dev/team/app", "2", &[b"layer"]).await;
    // Deleting a tag leaves the manifest.
    assert_eq!(
        s.http
            .delete(s.url("/v2/dev/team/app/manifests/2"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        s.http
            .get(s.url("/v2/dev/team/app/manifests/2"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Deleting by digest removes the manifest and its tags.
    let r = s
        .http
        .delete(s.url(&format!("/v2/dev/team/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        s.http
            .get(s.url("/v2/dev/team/app/manifests/1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let again = s
        .http
        .delete(s.url(&format!("/v2/dev/team/app/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(error_code(again).await, "MANIFEST_UNKNOWN");

    let blob = sha256(b"layer");
    assert_eq!(
        s.http
            .delete(s.url(&format!("/v2/dev/team/app/blobs/{blob}")))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let r = s
        .http
        .head(s.url(&format!("/v2/dev/team/app/blobs/{blob}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn restart_keeps_all_content() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut s = TestServer::start_in(&dir, &[]);
    let (manifest, digest) = s
        .push_image("dev/team/app", "1.0", &[b"persisted layer"])
        .await;
    // An upload in progress survives too, and finishes after the restart.
    let start = s
        .http
        .post(s.url("/v2/dev/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let upload_path = start.headers()["location"].to_str().unwrap().to_string();
    s.http
        .patch(s.location(&start))
        .body("part one, ")
        .send()
        .await
        .unwrap();
    s.stop();

    let s = TestServer::start_in(&dir, &[]);
    let get = s
        .http
        .get(s.url("/v2/dev/team/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(get.bytes().await.unwrap().as_ref(), manifest.as_slice());
    let layer = s
        .http
        .get(s.url(&format!(
            "/v2/dev/team/app/blobs/{}",
            sha256(b"persisted layer")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(layer.bytes().await.unwrap().as_ref(), b"persisted layer");
    let finish = s
        .http
        .put(format!(
            "{}{upload_path}?digest={}",
            s.base,
            sha256(b"part one, part two")
        ))
        .body("part two")
        .send()
        .await
        .unwrap();
    assert_eq!(finish.status(), 201, "{}", finish.text().await.unwrap());
}

/// Pushes `manifest` by digest; returns (status, error code, message) of the answer.
async fn push_expecting_error(s: &TestServer, media_type: &str, manifest: &Value) -> (u16, String) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let r = s
        .put_manifest("dev/team/app", &sha256(&bytes), media_type, &bytes)
        .await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        format!(
            "{} {}",
            body["errors"][0]["code"].as_str().unwrap_or("-"),
            body["errors"][0]["message"].as_str().unwrap_or("-")
        ),
    )
}

#[tokio::test]
async fn descriptor_sizes_must_match_the_stored_content() {
    let s = TestServer::start();
    let (subject, subject_digest) = s.push_image("dev/team/app", "1", &[b"layer"]).await;
    let config = s.push_blob("dev/team/app", b"{}").await;
    let layer = s.push_blob("dev/team/app", b"twelve bytes").await;
    let image = |config_size: usize, layer_size: usize, subject_size: Option<usize>| {
        let mut manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/x.example",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": layer_size}]});
        if let Some(size) = subject_size {
            manifest["subject"] =
                json!({"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": size});
        }
        manifest
    };
    let cases = [
        (image(3, 12, None), "config", 3, 2, &config),
        (image(2, 13, None), "layers[0]", 13, 12, &layer),
        (
            image(2, 12, Some(subject.len() + 1)),
            "subject",
            subject.len() + 1,
            subject.len(),
            &subject_digest,
        ),
    ];
    for (manifest, field, declared, stored, digest) in cases {
        let (status, error) = push_expecting_error(&s, OCI_MANIFEST, &manifest).await;
        assert_eq!(status, 400, "{field}: {error}");
        assert!(error.starts_with("MANIFEST_INVALID "), "{field}: {error}");
        for part in [
            format!("manifest {field} declares {digest} with size {declared}"),
            format!("holds it with {stored} bytes"),
        ] {
            assert!(error.contains(&part), "{field}: {error} lacks {part:?}");
        }
    }
    // An index whose child descriptor lies about the child's size.
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": 1}]});
    let (status, error) = push_expecting_error(&s, OCI_INDEX, &index).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("manifests[0] declares") && error.contains("with size 1"),
        "{error}"
    );

    // Correct sizes pass, and so does a subject the repository does not hold (nothing to check).
    for manifest in [image(2, 12, Some(subject.len())), image(2, 12, None), {
        let mut m = image(2, 12, None);
        m["subject"] =
            json!({"mediaType": OCI_MANIFEST, "digest": sha256(b"elsewhere"), "size": 7});
        m
    }] {
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let r = s
            .put_manifest("dev/team/app", &sha256(&bytes), OCI_MANIFEST, &bytes)
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

/// A blob larger than the server's read piece (4 MiB on a local directory) downloads whole, and
/// by ranges that start, end and cross inside pieces, byte for byte; HEAD answers its size.
#[tokio::test]
async fn a_blob_of_several_read_pieces_is_served_whole_and_by_range() {
    let s = TestServer::start();
    const PIECE: usize = 4 * 1024 * 1024;
    let content: Vec<u8> = (0..2 * PIECE + 12_345)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect();
    let total = content.len();
    let digest = s.push_blob("dev/team/big", &content).await;
    let url = s.url(&format!("/v2/dev/team/big/blobs/{digest}"));

    let head = s.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], total.to_string());

    let whole = s.http.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-length"], total.to_string());
    assert!(
        whole.bytes().await.unwrap() == content,
        "the whole blob differs"
    );

    for (range, start, end) in [
        (
            format!("bytes={}-{}", PIECE - 10, PIECE + 9),
            PIECE - 10,
            PIECE + 10,
        ),
        (format!("bytes={PIECE}-"), PIECE, total),
        (format!("bytes=1-{}", 2 * PIECE), 1, 2 * PIECE + 1),
        ("bytes=-12346".to_string(), total - 12_346, total),
    ] {
        let ranged = s
            .http
            .get(&url)
            .header("range", &range)
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.status(), 206, "{range}");
        assert_eq!(
            ranged.headers()["content-range"],
            format!("bytes {start}-{}/{total}", end - 1),
            "{range}"
        );
        let body = ranged.bytes().await.unwrap();
        assert!(
            body == content[start..end],
            "{range}: {} bytes, not the blob's",
            body.len()
        );
    }
}
