//! Garbage collection (`airlock gc`, `POST /api/v1/gc`) end to end: the grace period, what is
//! kept (manifests in any stage, anything promoted and its referrers and evidence, uploads in
//! flight), dry runs, orphan files, retention, the audit entry, who may run it, and a push loop
//! running against gc losing nothing referenced.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use common::{OCI_MANIFEST, TestServer, post_json, sha256};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-test-password-4711";

/// A gate that denies only with the default bundle's shared rules, so unsigned test images are
/// promoted without approvals.
fn permissive_bundle(dir: &Path) -> PathBuf {
    let read = |name: &str| std::fs::read_to_string(Path::new("policies").join(name)).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let gate = |stage: &str| {
        format!(
            "package airlock.gates.{stage}\n\nimport data.airlock.lib.common_deny\n\n\
             deny contains v if some v in common_deny\n"
        )
    };
    for (name, content) in [
        ("lib.rego", read("lib.rego")),
        ("rollback.rego", read("rollback.rego")),
        ("data.json", read("data.json")),
        ("staging.rego", gate("staging")),
        ("prod.rego", gate("prod")),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
    }
    dir.to_path_buf()
}

/// Runs gc as `client`; returns the status and the answer.
async fn gc_as(s: &TestServer, client: &reqwest::Client, dry_run: bool) -> (u16, Value) {
    post_json(client, &s.url("/api/v1/gc"), json!({"dry_run": dry_run})).await
}

/// Runs gc as admin and expects it to succeed.
async fn gc(s: &TestServer, dry_run: bool) -> Value {
    let (status, body) = gc_as(s, &s.http, dry_run).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The file of blob `digest` in the data directory.
fn blob_file(s: &TestServer, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    s.data_dir
        .join("blobs/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
}

async fn blob_status(s: &TestServer, repo: &str, digest: &str) -> u16 {
    s.http
        .head(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Pulls a blob and checks its bytes hash to its digest.
async fn pull_blob_checked(s: &TestServer, repo: &str, digest: &str) {
    let response = s
        .http
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{repo}@{digest}");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256(&bytes), digest, "{repo}@{digest}");
}

/// Pulls a manifest (by tag or digest) and every blob it references, checking every digest.
async fn pull_image_checked(s: &TestServer, repo: &str, reference: &str) -> String {
    let response = s
        .http
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{repo}:{reference}");
    let bytes = response.bytes().await.unwrap();
    let digest = sha256(&bytes);
    if reference.starts_with("sha256:") {
        assert_eq!(digest, reference);
    }
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    pull_blob_checked(s, repo, manifest["config"]["digest"].as_str().unwrap()).await;
    for layer in manifest["layers"].as_array().unwrap() {
        pull_blob_checked(s, repo, layer["digest"].as_str().unwrap()).await;
    }
    digest
}

/// Pushes an image manifest over `layers` under `reference` (a tag, or `None` for by digest);
/// optionally with a subject (a referrer). Returns its digest.
async fn push_manifest(
    s: &TestServer,
    repo: &str,
    reference: Option<&str>,
    layers: &[&[u8]],
    subject: Option<&str>,
) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = s.push_blob(repo, config).await;
    let mut descriptors = Vec::new();
    for layer in layers {
        let digest = s.push_blob(repo, layer).await;
        descriptors.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": digest, "size": layer.len()}),
        );
    }
    let mut manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    });
    if let Some(subject) = subject {
        let size = s
            .http
            .get(s.url(&format!("/v2/{repo}/manifests/{subject}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
        manifest["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": size});
        manifest["artifactType"] = json!("application/vnd.example.report");
    }
    let body = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&body);
    let response = s
        .put_manifest(repo, reference.unwrap_or(&digest), OCI_MANIFEST, &body)
        .await;
    assert_eq!(
        response.status(),
        201,
        "push manifest: {}",
        response.text().await.unwrap()
    );
    digest
}

/// The `gc.collected` entries of the audit log.
async fn gc_entries(s: &TestServer) -> Vec<Value> {
    s.audit_entries()
        .await
        .into_iter()
        .filter(|e| e["type"] == "gc.collected")
        .collect()
}

#[tokio::test]
async fn an_unreferenced_blob_is_collected_after_the_grace_period_and_not_before() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_GC__GRACE_SECS", "2"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
    ]);
    let content = b"uploaded, but no manifest ever named it";
    let digest = s.push_blob("dev/team/app", content).await;
    let kept = s.push_image("dev/team/app", "1.0", &[b"a layer"]).await;

    let report = gc(&s, false).await;
    assert_eq!(
        (report["blobs"].as_u64(), report["bytes"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    assert_eq!(report["grace_secs"], 2);
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 200);

    tokio::time::sleep(Duration::from_millis(2300)).await;
    // A dry run counts it and changes nothing.
    let entries_before = s.audit_entries().await.len();
    let report = gc(&s, true).await;
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["blobs"], 1, "{report}");
    assert_eq!(report["bytes"], content.len(), "{report}");
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 200);
    assert!(common::blob_stored(&s, &digest).await);
    assert_eq!(
        s.audit_entries().await.len(),
        entries_before,
        "a dry run records nothing"
    );

    let report = gc(&s, false).await;
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["blobs"], 1, "{report}");
    assert_eq!(report["bytes"], content.len(), "{report}");
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 404);
    assert!(
        !common::blob_stored(&s, &digest).await,
        "the file is deleted with the row"
    );
    pull_image_checked(&s, "dev/team/app", "1.0").await;
    assert_eq!(
        pull_image_checked(&s, "dev/team/app", &kept.1).await,
        kept.1
    );

    // The run is one audit entry, with the principal, counts and bytes.
    let entries = gc_entries(&s).await;
    assert_eq!(entries.len(), 2, "one per real run: {entries:#?}");
    let last = &entries[1];
    assert_eq!(last["actor"]["principal"], "admin");
    assert_eq!(last["subject"], json!({"kind": "registry"}));
    assert_eq!(
        last["details"],
        json!({"blobs": 1, "bytes": content.len(), "orphan_files": 0, "orphan_bytes": 0,
               "staged_objects": 0, "staged_bytes": 0, "manifests_pruned": 0, "grace_secs": 2})
    );

    // The same bytes uploaded again are a new blob with a new grace period.
    s.push_blob("dev/team/app", content).await;
    assert_eq!(gc(&s, false).await["blobs"], 0);
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 200);
}

/// Promotes `digest` from `dev/team/app` to staging as `promoter`.
async fn promote(s: &TestServer, promoter: &reqwest::Client, digest: &str) {
    let (status, body) = post_json(
        promoter,
        &s.url("/api/v1/promotions"),
        json!({"source": "dev/team/app", "reference": digest, "to": "staging"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["promotion"]["state"], "promoted", "{body}");
}

/// Submits a DSSE envelope about `repo@subject` through the evidence API as a builder; returns
/// the envelope's digest. Its file has no blob row: only the evidence record names it.
async fn submit_evidence(s: &TestServer, repo: &str, subject: &str) -> String {
    let envelope = serde_json::to_vec(&json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64::engine::general_purpose::STANDARD.encode(b"{\"_type\":\"https://in-toto.io/Statement/v1\"}"),
        "signatures": [{"keyid": "", "sig": "AAAA"}],
    }))
    .unwrap();
    let builder = common::add_user(s, "ci", PASSWORD, &[("builder", "dev")]).await;
    let response = builder
        .post(s.url(&format!("/api/v1/artifacts/{repo}@{subject}/evidence")))
        .header("content-type", "application/json")
        .body(envelope.clone())
        .send()
        .await
        .unwrap();
    // Unsigned by any trusted key: recorded, as rejected (it is evidence all the same).
    let answer = response.text().await.unwrap();
    assert!(
        answer.contains("recorded as rejected"),
        "evidence: {answer}"
    );
    let digest = sha256(&envelope);
    assert!(common::blob_stored(s, &digest).await);
    digest
}

/// What retention and gc must keep in `dev/team/app` and staging.
struct Kept {
    /// Promoted, then its dev copy deleted.
    promoted: String,
    /// Promoted, its dev copy untagged and older than the retention.
    promoted_kept_in_dev: String,
    /// An untagged referrer in dev about `promoted`, pushed after the promotion.
    report_on_promoted: String,
    /// The envelope of evidence about `promoted`.
    envelope: String,
    /// A tagged image.
    tagged: String,
}

/// Pushes, promotes, deletes and submits evidence so that [`Kept`] holds.
async fn push_what_must_be_kept(s: &TestServer) -> Kept {
    let repo = "dev/team/app";
    let promoter = common::add_user(s, "releaser", PASSWORD, &[("promoter", "staging")]).await;
    let promoted = push_manifest(s, repo, None, &[b"promoted layer"], None).await;
    promote(s, &promoter, &promoted).await;
    let promoted_kept_in_dev =
        push_manifest(s, repo, None, &[b"second promoted layer"], None).await;
    promote(s, &promoter, &promoted_kept_in_dev).await;
    let report_on_promoted = push_manifest(
        s,
        repo,
        None,
        &[b"report about the promoted one"],
        Some(&promoted),
    )
    .await;
    let envelope = submit_evidence(s, repo, &promoted).await;
    let response = s
        .http
        .delete(s.url(&format!("/v2/{repo}/manifests/{promoted}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let tagged = push_manifest(s, repo, Some("1.0"), &[b"tagged layer"], None).await;
    Kept {
        promoted,
        promoted_kept_in_dev,
        report_on_promoted,
        envelope,
        tagged,
    }
}

/// Commits a blob into `repo` and opens an upload session there with one chunk staged, as a push
/// in flight does; returns the blob's digest and the session's URL.
async fn open_push_in_flight(s: &TestServer, repo: &str) -> (String, String) {
    let first_layer = s
        .push_blob(repo, b"first layer, manifest not yet pushed")
        .await;
    let response = s
        .http
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let session = s.location(&response);
    let response = s
        .http
        .patch(&session)
        .header("content-type", "application/octet-stream")
        .body(b"second layer, still arriving".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    (first_layer, session)
}

/// The status of a manifest GET.
async fn manifest_status(s: &TestServer, repo: &str, digest: &str) -> u16 {
    s.http
        .get(s.url(&format!("/v2/{repo}/manifests/{digest}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// What a promotion, evidence, a referrer and an upload in flight reference is kept; an old
/// untagged manifest in a push stage with its referrer, and what only they referenced, go.
#[tokio::test]
async fn gc_keeps_promoted_content_its_evidence_and_uploads_in_flight_and_prunes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = permissive_bundle(&dir.path().join("policy"));
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_POLICY__BUNDLE", bundle.to_str().unwrap()),
        ("AIRLOCK_GC__GRACE_SECS", "0"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
        ("AIRLOCK_GC__KEEP_UNTAGGED_DAYS", "0"),
    ]);
    let repo = "dev/team/app";
    let kept = push_what_must_be_kept(&s).await;
    let untagged = push_manifest(&s, repo, None, &[b"untagged layer"], None).await;
    let untagged_report = push_manifest(
        &s,
        repo,
        None,
        &[b"report about the untagged one"],
        Some(&untagged),
    )
    .await;
    let (in_flight, session) = open_push_in_flight(&s, "dev/team/inflight").await;
    let stray = s.push_blob("dev/team/other", b"stray").await;

    assert_eq!(gc(&s, true).await["manifests_pruned"], 2);
    let report = gc(&s, false).await;
    assert_eq!(report["manifests_pruned"], 2, "{report}");
    // The stray blob and the layers only the two pruned manifests referenced.
    assert_eq!(report["blobs"], 3, "{report}");
    assert_eq!(report["orphan_files"], 0, "{report}");
    assert_eq!(manifest_status(&s, repo, &untagged).await, 404);
    assert_eq!(manifest_status(&s, repo, &untagged_report).await, 404);
    assert_eq!(blob_status(&s, repo, &sha256(b"untagged layer")).await, 404);
    assert_eq!(blob_status(&s, "dev/team/other", &stray).await, 404);

    pull_image_checked(&s, "staging/team/app", &kept.promoted).await;
    pull_image_checked(&s, repo, &kept.report_on_promoted).await;
    pull_image_checked(&s, repo, &kept.tagged).await;
    pull_image_checked(&s, repo, &kept.promoted_kept_in_dev).await;
    pull_image_checked(&s, "staging/team/app", &kept.promoted_kept_in_dev).await;
    assert!(
        common::blob_stored(&s, &kept.envelope).await,
        "evidence is kept"
    );
    assert_eq!(blob_status(&s, "dev/team/inflight", &in_flight).await, 200);

    // Once the session is gone, the blob it might have needed is collected; the rest stays.
    let response = s.http.delete(&session).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(gc(&s, false).await["blobs"], 1);
    assert_eq!(blob_status(&s, "dev/team/inflight", &in_flight).await, 404);
    assert!(
        common::blob_stored(&s, &kept.envelope).await,
        "evidence is kept"
    );
    pull_image_checked(&s, "staging/team/app", &kept.promoted).await;
}

/// A crash between deleting a row and its file leaves the file: the next run deletes it, whether
/// the tombstone survived or not; a file some evidence names is never an orphan.
#[tokio::test]
async fn files_without_a_row_are_deleted_by_the_next_run() {
    if common::embedded_only() {
        return;
    }
    let mut s = TestServer::start_with_env(&[
        ("AIRLOCK_GC__GRACE_SECS", "0"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
    ]);
    let a = s
        .push_blob("dev/team/app", b"row deleted, tombstone left")
        .await;
    let b = s
        .push_blob("dev/team/app", b"row deleted, no tombstone")
        .await;
    let kept = s.push_image("dev/team/app", "1.0", &[b"kept"]).await;
    s.stop();
    for digest in [&a, &b] {
        for sql in [
            "DELETE FROM repository_blobs WHERE digest = $1",
            "DELETE FROM blobs WHERE digest = $1",
        ] {
            common::execute_on_database(&s.data_dir, sql, &[digest]).await;
        }
    }
    common::execute_on_database(
        &s.data_dir,
        "INSERT INTO gc_tombstones (digest, created_at) VALUES ($1, 0)",
        &[&a],
    )
    .await;
    let s = TestServer::start_in(
        &s.data_dir.clone(),
        &[
            ("AIRLOCK_GC__GRACE_SECS", "0"),
            ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
        ],
    );
    assert!(common::blob_stored(&s, &a).await && common::blob_stored(&s, &b).await);
    let dry = gc(&s, true).await;
    assert_eq!(dry["orphan_files"], 2, "{dry}");
    let report = gc(&s, false).await;
    assert_eq!(report["orphan_files"], 2, "{report}");
    assert_eq!(report["blobs"], 0, "{report}");
    assert!(!common::blob_stored(&s, &a).await && !common::blob_stored(&s, &b).await);
    pull_image_checked(&s, "dev/team/app", &kept.1).await;
    assert_eq!(gc(&s, false).await["orphan_files"], 0);
}

/// The upload session id in an upload URL (`.../blobs/uploads/<id>[?...]`).
fn session_id(url: &str) -> String {
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_string()
}

/// Staged upload data no session will use (a session whose row is gone, a chunk written by an
/// attempt the session did not record) is deleted; the chunks of a live session are kept, and
/// the upload still completes.
#[tokio::test]
async fn staged_upload_data_no_session_uses_is_deleted() {
    let env = [
        ("AIRLOCK_GC__GRACE_SECS", "0"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
    ];
    let s = TestServer::start_with_env(&env);
    let repo = "dev/team/app";
    let mut sessions = Vec::new();
    for body in [
        &b"kept: a live session's chunk"[..],
        b"left by a session that ended",
    ] {
        let response = s
            .http
            .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let session = s.location(&response);
        let response = s
            .http
            .patch(&session)
            .header("content-type", "application/octet-stream")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        sessions.push(s.location(&response));
    }
    let (live, ended) = (session_id(&sessions[0]), session_id(&sessions[1]));
    // The ended session: its row deleted, its data left behind (a crash between the two).
    let deleted =
        common::execute_on_database(&s.data_dir, "DELETE FROM uploads WHERE id = $1", &[&ended])
            .await;
    assert_eq!(deleted, 1);
    // The live session: a second object for its first chunk, from an attempt it never recorded
    // (on S3, a replica that lost the race for that chunk and died before deleting its object;
    // a local directory has fixed chunk names, so there it is a stray file of the same form).
    let blobs = common::blob_store_of(&s).await;
    let loser_bytes = b"the losing attempt's bytes";
    if common::distributed() {
        let mut digester = airlock_core::Digester::new(airlock_core::DigestAlgorithm::Sha256);
        let loser: Vec<Result<bytes::Bytes, std::io::Error>> =
            vec![Ok(bytes::Bytes::from_static(loser_bytes))];
        blobs
            .write_chunk(
                live.parse().expect("session id"),
                0,
                "0123abcd",
                futures::stream::iter(loser),
                &mut digester,
            )
            .await
            .expect("write the losing attempt");
    } else {
        let dir = s.data_dir.join("blobs/uploads").join(&live);
        std::fs::write(dir.join("00000000-0123abcd"), loser_bytes).unwrap();
    }
    let staged = |objects: Vec<airlock_store::StagedObject>| -> Vec<(String, u32, String)> {
        objects
            .into_iter()
            .map(|o| (o.upload.to_string(), o.chunk, o.attempt))
            .collect()
    };
    let before = staged(blobs.list_staged().await.unwrap());
    assert_eq!(before.len(), 3, "{before:?}");

    let dry = gc(&s, true).await;
    assert_eq!(dry["staged_objects"], 2, "{dry}");
    assert_eq!(
        blobs.list_staged().await.unwrap().len(),
        3,
        "a dry run deletes nothing"
    );
    let report = gc(&s, false).await;
    assert_eq!(report["staged_objects"], 2, "{report}");
    let expected_bytes =
        b"left by a session that ended".len() + b"the losing attempt's bytes".len();
    assert_eq!(report["staged_bytes"], expected_bytes, "{report}");
    let after = staged(blobs.list_staged().await.unwrap());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!((&after[0].0, after[0].1), (&live, 0), "{after:?}");
    let entries = gc_entries(&s).await;
    assert_eq!(entries.last().unwrap()["details"]["staged_objects"], 2);

    // The live session completes with the bytes it recorded, not the loser's.
    let content = b"kept: a live session's chunk";
    let digest = sha256(content);
    let separator = if sessions[0].contains('?') { '&' } else { '?' };
    let response = s
        .http
        .put(format!("{}{separator}digest={digest}", sessions[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    pull_blob_checked(&s, repo, &digest).await;
    assert_eq!(gc(&s, false).await["staged_objects"], 0);
}

#[tokio::test]
async fn only_an_access_admin_everywhere_may_run_gc() {
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_GC__GRACE_SECS", "0"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
    ]);
    let digest = s.push_blob("dev/team/app", b"garbage").await;
    let developer = common::add_user(
        &s,
        "dev-user",
        PASSWORD,
        &[("developer", "*"), ("auditor", "*")],
    )
    .await;
    let scoped = common::add_user(&s, "dev-admin", PASSWORD, &[("access-admin", "dev")]).await;
    for (client, who) in [(&developer, "developer"), (&scoped, "access-admin in dev")] {
        for dry_run in [true, false] {
            let (status, body) = gc_as(&s, client, dry_run).await;
            assert_eq!(status, 403, "{who}: {body}");
            assert_eq!(body["error"]["code"], "FORBIDDEN");
            assert!(
                body["error"]["remediation"]
                    .as_str()
                    .unwrap()
                    .contains("access-admin"),
                "{body}"
            );
        }
    }
    let (status, _) = gc_as(&s, &s.anonymous, false).await;
    assert_eq!(status, 401);
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 200);
    assert!(gc_entries(&s).await.is_empty());

    // The CLI: text with counts and bytes, and JSON.
    let (code, out, err) = s.cli(&["gc", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("gc would delete 1 unreferenced blobs, 7 bytes"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was deleted"), "{out}");
    let (code, out, err) = s.cli(&["gc", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["blobs"].as_u64(), report["bytes"].as_u64()),
        (Some(1), Some(7))
    );
    assert_eq!(report["dry_run"], false);
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 404);
    let entries = gc_entries(&s).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"]["principal"], "admin");
    let (code, out, err) = s.cli(&["gc"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("gc deleted 0 unreferenced blobs, 0 bytes"),
        "{out}"
    );
    assert!(out.contains("untagged manifests kept"), "{out}");
}

/// A push loop against a gc loop: every push is acknowledged and pulls back whole afterwards;
/// what the loop untagged and deleted is collected.
#[tokio::test]
async fn a_push_loop_during_gc_loses_nothing_referenced() {
    let s = std::sync::Arc::new(TestServer::start_with_env(&[
        ("AIRLOCK_GC__GRACE_SECS", "3"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
        ("AIRLOCK_LOG__LEVEL", "error"),
    ]));
    let pushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let collector = {
        let (s, pushing) = (s.clone(), pushing.clone());
        tokio::spawn(async move {
            let mut runs = 0u32;
            let mut collected = 0u64;
            while pushing.load(std::sync::atomic::Ordering::SeqCst) {
                let report = gc(&s, false).await;
                collected += report["blobs"].as_u64().unwrap();
                runs += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (runs, collected)
        })
    };
    let mut images = Vec::new();
    for n in 0..40u32 {
        let repo = format!("dev/team/app{}", n % 3);
        let unique = format!("layer {n} {}", "x".repeat(n as usize * 100));
        let (_, digest) = s
            .push_image(
                &repo,
                &format!("v{n}"),
                &[b"shared base layer", unique.as_bytes()],
            )
            .await;
        if n % 4 == 3 {
            // Garbage for gc: a manifest deleted by digest, its unique layer unreferenced.
            let response = s
                .http
                .delete(s.url(&format!("/v2/{repo}/manifests/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
        } else {
            images.push((repo, format!("v{n}"), digest));
        }
        if n % 10 == 9 {
            // Let some garbage age past the grace period while the loop goes on.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    pushing.store(false, std::sync::atomic::Ordering::SeqCst);
    let (runs, _) = collector.await.unwrap();
    assert!(runs >= 3, "gc ran {runs} times during the pushes");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    gc(&s, false).await;
    for (repo, tag, digest) in &images {
        assert_eq!(&pull_image_checked(&s, repo, tag).await, digest);
    }
    for n in (3..40u32).step_by(4) {
        let unique = format!("layer {n} {}", "x".repeat(n as usize * 100));
        let repo = format!("dev/team/app{}", n % 3);
        assert_eq!(
            blob_status(&s, &repo, &sha256(unique.as_bytes())).await,
            404,
            "the deleted image's layer {n} was collected"
        );
    }
}

/// With no grace period, uploads of one digest race gc collecting it: each upload is either
/// refused with 503 (gc was deleting that digest: upload again) or stored, and a blob the
/// registry says it has is always served whole, never a row without its bytes.
#[tokio::test]
async fn uploads_racing_gc_over_the_same_digest_never_leave_a_row_without_bytes() {
    let s = std::sync::Arc::new(TestServer::start_with_env(&[
        ("AIRLOCK_GC__GRACE_SECS", "0"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
        ("AIRLOCK_LOG__LEVEL", "error"),
    ]));
    let content = b"the same bytes, uploaded again and again".repeat(1000);
    let digest = sha256(&content);
    let repo = "dev/team/race";
    let pushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let collector = {
        let (s, pushing) = (s.clone(), pushing.clone());
        tokio::spawn(async move {
            let mut collected = 0;
            while pushing.load(std::sync::atomic::Ordering::SeqCst) {
                collected += gc(&s, false).await["blobs"].as_u64().unwrap();
            }
            collected
        })
    };
    let (mut stored, mut refused) = (0, 0);
    for _ in 0..150 {
        let response = s
            .http
            .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .body(content.clone())
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            201 => stored += 1,
            503 => refused += 1,
            other => panic!(
                "upload answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
        let response = s
            .http
            .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => assert_eq!(sha256(&response.bytes().await.unwrap()), digest),
            404 => {}
            other => panic!("pull answered {other}"),
        }
    }
    pushing.store(false, std::sync::atomic::Ordering::SeqCst);
    let collected = collector.await.unwrap();
    assert!(stored > 0, "stored {stored}, refused {refused}");
    assert!(collected > 0, "gc collected the blob {collected} times");
    s.push_blob(repo, &content).await;
    pull_blob_checked(&s, repo, &digest).await;
}

/// A run that fails half-way (a blob's file cannot be deleted) still records what it did, with
/// the error, in one audit entry, and leaves no tombstone behind: the digest can be uploaded
/// again at once rather than being refused until a later run.
#[tokio::test]
async fn a_failed_run_is_audited_and_leaves_no_tombstone() {
    if common::embedded_only() {
        return;
    }
    let s = TestServer::start_with_env(&[
        ("AIRLOCK_GC__GRACE_SECS", "0"),
        ("AIRLOCK_GC__UNSAFE_SHORT_PERIODS", "true"),
        ("AIRLOCK_LOG__LEVEL", "error"),
    ]);
    let content = b"a blob whose file gc cannot delete";
    let digest = s.push_blob("dev/team/app", content).await;
    // A directory where the file was: deleting it fails, whoever runs the server.
    let file = blob_file(&s, &digest);
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("keep"), b"x").unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (status, body) = gc_as(&s, &s.http, false).await;
    assert_eq!(status, 500, "{body}");
    let entries = gc_entries(&s).await;
    assert_eq!(entries.len(), 1, "the failed run is recorded: {entries:#?}");
    let details = &entries[0]["details"];
    assert_eq!(details["blobs"], 1, "its row was deleted: {details}");
    assert!(
        details["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the entry names the error: {details}"
    );

    std::fs::remove_dir_all(&file).unwrap();
    // No tombstone stands: the same bytes upload at once (push_blob expects 201, not 503).
    s.push_blob("dev/team/app", content).await;
    assert_eq!(blob_status(&s, "dev/team/app", &digest).await, 200);
    let (status, body) = gc_as(&s, &s.http, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gc_entries(&s).await.len(), 2);
}
