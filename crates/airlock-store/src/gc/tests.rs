use std::borrow::Cow;
use std::collections::BTreeMap;

use airlock_core::ParsedManifest;
use sqlx::migrate::Migration;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::*;
use crate::metadata::migrator;
use crate::{ManifestUpload, StoreError};

fn image(blobs: Vec<Digest>) -> ParsedManifest {
    ParsedManifest {
        kind: airlock_core::ManifestKind::Image,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        blobs,
        manifests: Vec::new(),
        subject: None,
        annotations: BTreeMap::new(),
        layers: Vec::new(),
        declared_sizes: Vec::new(),
    }
}

fn stages() -> GcStages {
    GcStages {
        push: vec!["dev".parse().unwrap()],
        gated: vec!["staging".parse().unwrap(), "prod".parse().unwrap()],
    }
}

async fn open() -> Vec<crate::testing::TestStore> {
    crate::testing::engines().await
}

/// A commit of a digest gc is deleting (its tombstone stands), or whose bytes are gone, is
/// refused and records nothing; once the tombstone is cleared and the bytes are there, it goes
/// through and counts as newly linked.
#[tokio::test]
async fn a_commit_racing_gc_is_refused_and_records_nothing() {
    for meta in open().await {
        let repo: RepoName = "dev/team/app".parse().unwrap();
        let blob = Digest::sha256_of(b"layer");
        meta.commit_blob(&repo, &blob, 5, &[]).await.unwrap();
        let later = crate::now_millis() + 1;
        assert_eq!(meta.gc_unreferenced_blobs(later).await.unwrap().len(), 1);
        assert!(meta.gc_delete_blob_row(&blob, later).await.unwrap());
        assert_eq!(
            meta.gc_tombstones(i64::MAX).await.unwrap(),
            vec![blob.clone()]
        );
        assert!(
            meta.gc_tombstones(0).await.unwrap().is_empty(),
            "a fresh tombstone is a run's own"
        );

        let refused = meta
            .commit_blob_checked(&repo, &blob, 5, &[], || async { Ok(true) })
            .await;
        assert!(
            matches!(refused, Err(StoreError::BlobCollected(_))),
            "{refused:?}"
        );
        assert_eq!(meta.blob_size(&blob).await.unwrap(), None);

        meta.gc_clear_tombstone(&blob).await.unwrap();
        let refused = meta
            .commit_blob_checked(&repo, &blob, 5, &[], || async { Ok(false) })
            .await;
        assert!(
            matches!(refused, Err(StoreError::BlobCollected(_))),
            "{refused:?}"
        );
        assert_eq!(meta.blob_in_repository(&repo, &blob).await.unwrap(), None);

        meta.commit_blob_checked(&repo, &blob, 5, &[], || async { Ok(true) })
            .await
            .unwrap();
        assert_eq!(
            meta.blob_in_repository(&repo, &blob).await.unwrap(),
            Some(5)
        );
        // Linked just now: younger than any cutoff before now.
        assert!(
            meta.gc_unreferenced_blobs(crate::now_millis() - 1000)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// The bytes are looked at before the write transaction: a deletion of the same digest that
/// finishes while they are looked at (after they were seen) is noticed in the transaction, and
/// the commit looks again rather than record a blob whose file is gone; bytes there on the second
/// look (uploaded again) commit.
#[tokio::test]
async fn a_deletion_finished_while_the_bytes_were_looked_at_is_caught() {
    for meta in open().await {
        let repo: RepoName = "dev/team/app".parse().unwrap();
        let blob = Digest::sha256_of(b"layer");
        meta.commit_blob(&repo, &blob, 5, &[]).await.unwrap();
        let later = crate::now_millis() + 1;
        let looks = std::sync::atomic::AtomicUsize::new(0);
        // First look: the bytes are there, then gc deletes the row, the file and its tombstone
        // before the commit's transaction. Second look: the file is gone.
        let refused = meta
            .commit_blob_checked(&repo, &blob, 5, &[], || async {
                if looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    assert!(meta.gc_delete_blob_row(&blob, later).await.unwrap());
                    meta.gc_clear_tombstone(&blob).await.unwrap();
                    Ok(true)
                } else {
                    Ok(false)
                }
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::BlobCollected(_))),
            "{refused:?}"
        );
        assert_eq!(looks.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(meta.blob_size(&blob).await.unwrap(), None);

        // The same race, but the bytes were uploaded again by the second look: committed.
        meta.commit_blob(&repo, &blob, 5, &[]).await.unwrap();
        let later = crate::now_millis() + 1;
        let looks = std::sync::atomic::AtomicUsize::new(0);
        meta.commit_blob_checked(&repo, &blob, 5, &[], || async {
            if looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                assert!(meta.gc_delete_blob_row(&blob, later).await.unwrap());
                meta.gc_clear_tombstone(&blob).await.unwrap();
            }
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!(looks.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            meta.blob_in_repository(&repo, &blob).await.unwrap(),
            Some(5)
        );
    }
}

/// Migration 21 over a populated schema 18: gc's tables keep their rows and a cleared tombstone
/// is recorded in the new table; an upload session's chunks keep their fixed names.
#[tokio::test]
async fn migration_0021_applies_over_a_populated_0018_database() {
    let dir = tempfile::tempdir().unwrap();
    let upload = uuid::Uuid::new_v4();
    let path = dir.path().join("m.db");
    let blob = Digest::sha256_of(b"old");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        let mut before = migrator(crate::Backend::Sqlite);
        let previous: Vec<Migration> = before
            .migrations
            .iter()
            .filter(|m| m.version <= 18)
            .cloned()
            .collect();
        before.migrations = Cow::Owned(previous);
        before.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO gc_tombstones (digest, created_at) VALUES ($1, 5)")
            .bind(blob.to_string())
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO uploads (id, repository, principal, size, chunks, created_at, updated_at)
             VALUES ($1, 'dev/team/app', 'tester', 10, 2, 1, 1)",
        )
        .bind(upload.to_string())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let meta = Metadata::open_sqlite(&path).await.unwrap();
    assert_eq!(meta.gc_tombstones(10).await.unwrap(), vec![blob.clone()]);
    meta.gc_clear_tombstone(&blob).await.unwrap();
    assert!(meta.gc_tombstones(i64::MAX).await.unwrap().is_empty());
    let clears: Vec<i64> = sqlx::query_scalar("SELECT clears FROM gc_cleared WHERE digest = $1")
        .bind(blob.to_string())
        .fetch_all(meta.pool())
        .await
        .unwrap();
    assert_eq!(clears, vec![1]);

    // A session recorded before: its two chunks have fixed names; a new chunk adds its attempt.
    let session = meta.upload(upload).await.unwrap().unwrap();
    assert_eq!(session.chunk_attempts, vec![String::new(), String::new()]);
    assert!(meta.record_chunk(upload, 10, 15, 3, "a1").await.unwrap());
    let session = meta.upload(upload).await.unwrap().unwrap();
    assert_eq!(session.chunk_attempts, vec!["", "", "a1"]);
}

/// A blob re-checked in the deleting transaction: a manifest pushed after the listing keeps it.
#[tokio::test]
async fn the_delete_rechecks_references_made_after_the_listing() {
    for meta in open().await {
        let repo: RepoName = "dev/team/app".parse().unwrap();
        let blob = Digest::sha256_of(b"layer");
        meta.commit_blob(&repo, &blob, 5, &[]).await.unwrap();
        let cutoff = crate::now_millis() + 1;
        let listed = meta.gc_unreferenced_blobs(cutoff).await.unwrap();
        assert_eq!(listed[0].digest, blob);
        let digest = Digest::sha256_of(b"manifest");
        meta.put_manifest(
            &repo,
            ManifestUpload {
                digest: &digest,
                manifest: &image(vec![blob.clone()]),
                content: b"manifest",
            },
            None,
            "tester",
            |_| Ok(vec![]),
        )
        .await
        .unwrap();
        assert!(!meta.gc_delete_blob_row(&blob, cutoff).await.unwrap());
        assert_eq!(
            meta.blob_in_repository(&repo, &blob).await.unwrap(),
            Some(5)
        );
        assert!(meta.gc_tombstones(i64::MAX).await.unwrap().is_empty());
        // Untagged and older than a later cutoff, so retention may prune it; then the blob goes.
        let later = crate::now_millis() + 1;
        let prunable = meta
            .gc_prunable_manifests(later, &stages(), 10)
            .await
            .unwrap();
        assert_eq!(prunable.len(), 1);
        assert!(
            meta.gc_prune_manifest(&prunable[0], later, &stages())
                .await
                .unwrap()
        );
        assert!(meta.gc_delete_blob_row(&blob, later).await.unwrap());
    }
}

/// Migration 18 over a populated schema 17: existing blobs get `linked_at` from `created_at`, so
/// their grace period is where it was, and gc's tables are usable at once.
#[tokio::test]
async fn migration_0018_applies_over_a_populated_0017_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        let mut before = migrator(crate::Backend::Sqlite);
        let previous: Vec<Migration> = before
            .migrations
            .iter()
            .filter(|m| m.version < 18)
            .cloned()
            .collect();
        before.migrations = Cow::Owned(previous);
        before.run(&pool).await.unwrap();
        for (digest, created) in [
            (Digest::sha256_of(b"old"), 1_000),
            (Digest::sha256_of(b"new"), i64::MAX / 2),
        ] {
            sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES ($1, 3, $2)")
                .bind(digest.to_string())
                .bind(created)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    let meta = Metadata::open_sqlite(&path).await.unwrap();
    let collectable = meta.gc_unreferenced_blobs(2_000).await.unwrap();
    assert_eq!(
        collectable,
        vec![CollectableBlob {
            digest: Digest::sha256_of(b"old"),
            size: 3
        }]
    );
    assert!(meta.gc_tombstones(i64::MAX).await.unwrap().is_empty());
}

/// A promotion of `digest` from dev to staging in `state`.
fn promotion_in(id: &str, digest: &Digest, state: &str) -> crate::PromotionRow {
    crate::PromotionRow {
        id: id.into(),
        repository_path: "team/app".into(),
        digest: digest.clone(),
        source_stage: "dev".parse().unwrap(),
        target_stage: "staging".parse().unwrap(),
        tags: vec!["1.0".parse().unwrap()],
        channel: None,
        state: state.parse().unwrap(),
        requested_by: "rita".into(),
        requester: "{}".into(),
        approvals_required: 1,
        break_glass: None,
        last_decision: None,
        attestation: None,
        created_at: 0,
        expires_at: i64::MAX,
        decided_at: None,
        evaluating_since: None,
        claim: None,
    }
}

/// An untagged old build with a promotion in flight (evaluating or waiting for approval) keeps
/// its place in the push stage, and so do its referrers; once the promotion is denied, it is
/// prunable again.
#[tokio::test]
async fn a_promotion_in_flight_keeps_its_artifact_from_retention() {
    for meta in open().await {
        let repo: RepoName = "dev/team/app".parse().unwrap();
        let digest = Digest::sha256_of(b"build");
        meta.put_manifest(
            &repo,
            ManifestUpload {
                digest: &digest,
                manifest: &image(Vec::new()),
                content: b"build",
            },
            None,
            "tester",
            |_| Ok(vec![]),
        )
        .await
        .unwrap();
        let signature = Digest::sha256_of(b"signature");
        let mut referrer = image(Vec::new());
        referrer.subject = Some(digest.clone());
        meta.put_manifest(
            &repo,
            ManifestUpload {
                digest: &signature,
                manifest: &referrer,
                content: b"signature",
            },
            None,
            "tester",
            |_| Ok(vec![]),
        )
        .await
        .unwrap();
        let later = crate::now_millis() + 1;
        for state in ["evaluating", "pending_approval"] {
            let id = format!("prm_{state}");
            meta.insert_promotion(&promotion_in(&id, &digest, state))
                .await
                .unwrap();
            assert_eq!(
                meta.gc_prunable_manifests(later, &stages(), 10)
                    .await
                    .unwrap(),
                Vec::new(),
                "a promotion {state} keeps the artifact and its referrer"
            );
            for d in [&digest, &signature] {
                let manifest = PrunableManifest {
                    repository: repo.clone(),
                    digest: d.clone(),
                };
                assert!(
                    !meta
                        .gc_prune_manifest(&manifest, later, &stages())
                        .await
                        .unwrap()
                );
            }
            sqlx::query("UPDATE promotions SET state = 'denied' WHERE id = $1")
                .bind(&id)
                .execute(meta.pool())
                .await
                .unwrap();
        }
        assert_eq!(
            meta.gc_prunable_manifests(later, &stages(), 10)
                .await
                .unwrap()
                .len(),
            2,
            "with no promotion in flight both are prunable"
        );
    }
}

/// Pushes `content` as an image manifest to `repo` with `subject` and `tag`; returns its digest.
async fn push(
    meta: &Metadata,
    repo: &RepoName,
    content: &[u8],
    subject: Option<&Digest>,
    tag: Option<&str>,
) -> Digest {
    let digest = Digest::sha256_of(content);
    let mut manifest = image(Vec::new());
    manifest.subject = subject.cloned();
    let tag: Option<airlock_core::Tag> = tag.map(|t| t.parse().unwrap());
    meta.put_manifest(
        repo,
        ManifestUpload {
            digest: &digest,
            manifest: &manifest,
            content,
        },
        tag.as_ref(),
        "tester",
        |_| Ok(vec![]),
    )
    .await
    .unwrap();
    digest
}

/// A referrer of a referrer of a kept manifest is kept: tagged I, an untagged old SBOM S about
/// I, an untagged old signature SIG about S. Once I's tag goes, the whole chain is prunable.
#[tokio::test]
async fn a_referrer_of_a_kept_referrer_is_kept() {
    for meta in open().await {
        let repo: RepoName = "dev/team/app".parse().unwrap();
        let image_digest = push(&meta, &repo, b"image", None, Some("1.0")).await;
        let sbom = push(&meta, &repo, b"sbom", Some(&image_digest), None).await;
        let signature = push(&meta, &repo, b"signature", Some(&sbom), None).await;
        let later = crate::now_millis() + 1;
        assert_eq!(
            meta.gc_prunable_manifests(later, &stages(), 10)
                .await
                .unwrap(),
            Vec::new(),
            "the image is tagged, so its SBOM and the SBOM's signature are kept"
        );
        for digest in [&sbom, &signature] {
            let manifest = PrunableManifest {
                repository: repo.clone(),
                digest: digest.clone(),
            };
            assert!(
                !meta
                    .gc_prune_manifest(&manifest, later, &stages())
                    .await
                    .unwrap(),
                "{digest} pruned"
            );
        }
        sqlx::query("DELETE FROM tags WHERE repository = $1")
            .bind(repo.as_str())
            .execute(meta.pool())
            .await
            .unwrap();
        let prunable = meta
            .gc_prunable_manifests(later, &stages(), 10)
            .await
            .unwrap();
        assert_eq!(prunable.len(), 3, "{prunable:?}");
    }
}

/// Evidence submitted through the API (bytes written, no `blobs` row) is refused while gc is
/// deleting its file or once the file is gone, and, once recorded, its file is no orphan.
#[tokio::test]
async fn submitted_evidence_is_refused_while_gc_deletes_its_bytes() {
    for meta in open().await {
        let blob = Digest::sha256_of(b"envelope");
        let item = crate::NewEvidence {
            origin: crate::EvidenceOrigin {
                repository_path: "team/app".into(),
                subject: Digest::sha256_of(b"image").to_string(),
                item: blob.to_string(),
                format: "dsse".into(),
                source: "api".into(),
                repository: "dev/team/app".into(),
                manifest: None,
                blob: blob.to_string(),
                signature: None,
                pushed_by: "tester".into(),
            },
            verdict: crate::EvidenceVerdict {
                status: "rejected".into(),
                kind: None,
                reason_code: None,
                reason: None,
                key_id: None,
                key_name: None,
                predicate_type: None,
                facts: None,
                keyring_version: 0,
            },
            first_seen_at: 0,
            record: None,
        };
        let items = vec![item];
        assert!(meta.gc_tombstone_orphan(&blob).await.unwrap());
        let refused = meta
            .record_evidence_checked(0, None, &items, Some(&blob), || async { Ok(true) })
            .await;
        assert!(
            matches!(
                refused,
                Err(crate::KeyringWriteError::Store(StoreError::BlobCollected(
                    _
                )))
            ),
            "{refused:?}"
        );
        meta.gc_clear_tombstone(&blob).await.unwrap();
        let refused = meta
            .record_evidence_checked(0, None, &items, Some(&blob), || async { Ok(false) })
            .await;
        assert!(
            matches!(
                refused,
                Err(crate::KeyringWriteError::Store(StoreError::BlobCollected(
                    _
                )))
            ),
            "{refused:?}"
        );
        assert!(
            meta.gc_is_orphan(&blob).await.unwrap(),
            "nothing was recorded"
        );
        meta.record_evidence_checked(0, None, &items, Some(&blob), || async { Ok(true) })
            .await
            .unwrap();
        assert!(!meta.gc_is_orphan(&blob).await.unwrap());
        assert!(!meta.gc_tombstone_orphan(&blob).await.unwrap());
    }
}
