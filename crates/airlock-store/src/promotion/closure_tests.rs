//! Store tests of the set-based promotion steps: promoting an artifact that carries many
//! manifests writes exactly the rows the earlier one-statement-per-manifest steps wrote.

use super::tests::{MANIFEST, image, promotion, write_for};
use super::*;
use crate::metadata::ManifestUpload;
use std::str::FromStr;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Stores `content` of media type `media_type` in `repo`; returns its digest.
async fn put(meta: &Metadata, repo: &RepoName, media_type: &str, content: &str) -> Digest {
    let digest = Digest::sha256_of(content.as_bytes());
    let parsed = ParsedManifest::parse(Some(media_type), content.as_bytes()).unwrap();
    meta.put_manifest(
        repo,
        ManifestUpload {
            digest: &digest,
            manifest: &parsed,
            content: content.as_bytes(),
        },
        None,
        "tester",
        |_| Ok(vec![]),
    )
    .await
    .unwrap();
    digest
}

/// An index in `repo` over `children` fresh images (each with its own config blob); returns the
/// index digest and the children.
async fn index_of(meta: &Metadata, repo: &RepoName, children: usize) -> (Digest, Vec<Digest>) {
    let mut digests = Vec::new();
    let mut entries = Vec::new();
    for n in 0..children {
        let child = image(meta, repo, &format!("child-{n}")).await;
        let size = meta
            .manifest(repo, &child)
            .await
            .unwrap()
            .unwrap()
            .content
            .len();
        entries.push(format!(
            "{{\"mediaType\":\"{MANIFEST}\",\"digest\":\"{child}\",\"size\":{size}}}"
        ));
        digests.push(child);
    }
    let content = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{INDEX}\",\"manifests\":[{}]}}",
        entries.join(",")
    );
    (put(meta, repo, INDEX, &content).await, digests)
}

/// What the earlier promotion steps wrote into `target` for the manifests `closure` of
/// `source`: one statement per manifest, as they were before the steps became set-based.
async fn share_one_by_one(meta: &Metadata, source: &str, target: &str, closure: &[Digest]) {
    sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, 1)")
        .bind(target)
        .execute(meta.pool())
        .await
        .unwrap();
    for manifest in closure {
        let manifest = manifest.to_string();
        sqlx::query(
            "INSERT INTO repository_manifests
             (repository, digest, subject, created_at, pushed_by)
             SELECT $1, digest, subject, $2, pushed_by FROM repository_manifests
             WHERE repository = $3 AND digest = $4 ON CONFLICT DO NOTHING",
        )
        .bind(target)
        .bind(1_i64)
        .bind(source)
        .bind(&manifest)
        .execute(meta.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO repository_blobs (repository, digest, created_at)
             SELECT $1, child, $2 FROM manifest_references WHERE digest = $3 AND kind = 'blob' ON CONFLICT DO NOTHING",
        )
        .bind(target)
        .bind(1_i64)
        .bind(&manifest)
        .execute(meta.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO evidence_manifests (repository, digest, ingested_at)
             SELECT $1, digest, $2 FROM evidence_manifests WHERE repository = $3 AND digest = $4 ON CONFLICT DO NOTHING",
        )
        .bind(target)
        .bind(1_i64)
        .bind(source)
        .bind(&manifest)
        .execute(meta.pool())
        .await
        .unwrap();
    }
}

/// The rows of `repository` in the tables a promotion writes, without times, sorted; `skip`
/// (the attestation and its config blob, which the earlier steps did not share) left out.
async fn rows_of(meta: &Metadata, repository: &str, skip: &[String]) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, columns) in [
        (
            "repository_manifests",
            "digest || ' ' || COALESCE(subject, '-') || ' ' || COALESCE(pushed_by, '-')",
        ),
        ("repository_blobs", "digest"),
        ("evidence_manifests", "digest"),
    ] {
        let found: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT digest, {columns} FROM {table} WHERE repository = $1"
        )))
        .bind(repository)
        .fetch_all(meta.pool())
        .await
        .unwrap();
        rows.extend(
            found
                .into_iter()
                .filter(|(digest, _)| !skip.contains(digest))
                .map(|(_, row)| format!("{table}: {row}")),
        );
    }
    rows.sort();
    rows
}

/// Promotes an index of `children` images carrying two evidence manifests (one tagged) and
/// checks the target holds what the one-by-one steps write, plus the tags.
async fn promote_and_compare(meta: &Metadata, children: usize) {
    let source = RepoName::from_str("dev/team/app").unwrap();
    let (artifact, child_digests) = if children == 0 {
        (image(meta, &source, "artifact").await, Vec::new())
    } else {
        index_of(meta, &source, children).await
    };
    let signature = image(meta, &source, "signature").await;
    let sbom = image(meta, &source, "sbom").await;
    // Evidence in the source: the signature, and one child (evidence membership is copied for
    // everything the promotion carries).
    let mut evidence_in_source = vec![signature.clone()];
    evidence_in_source.extend(child_digests.first().cloned());
    for manifest in &evidence_in_source {
        sqlx::query(
            "INSERT INTO evidence_manifests (repository, digest, ingested_at) VALUES ($1, $2, 7)",
        )
        .bind(source.as_str())
        .bind(manifest.to_string())
        .execute(meta.pool())
        .await
        .unwrap();
    }
    let attestation = image(meta, &source, "attestation").await;
    meta.insert_promotion(&promotion("prm_1", &artifact))
        .await
        .unwrap();
    let signature_tag = Tag::from_str(&format!("sha256-{}.sig", artifact.hex())).unwrap();
    let mut write = write_for(meta, "prm_1", &artifact, &attestation, "claim-prm_1", None).await;
    write.evidence = vec![
        (signature.clone(), Some(signature_tag.clone())),
        (sbom.clone(), None),
    ];
    meta.promote(&write, &[]).await.unwrap();

    let mut closure = vec![artifact.clone()];
    closure.extend(child_digests.iter().cloned());
    closure.extend([signature.clone(), sbom.clone()]);
    share_one_by_one(meta, source.as_str(), "qa/team/app", &closure).await;
    let attestation_rows = [
        attestation.to_string(),
        Digest::sha256_of(b"{\"seed\":\"attestation\"}").to_string(),
    ];
    let promoted = rows_of(meta, "staging/team/app", &attestation_rows).await;
    let one_by_one = rows_of(meta, "qa/team/app", &[]).await;
    // The artifact, each child, both evidence manifests: a manifest row and a config blob each
    // (the index has no blob); evidence membership for the source's two evidence manifests.
    let blobs = closure.len() - usize::from(children > 0);
    assert_eq!(
        promoted.len(),
        closure.len() + blobs + evidence_in_source.len()
    );
    assert_eq!(promoted, one_by_one, "{children} children");
    let mut tags = meta
        .tags(&RepoName::from_str("staging/team/app").unwrap(), 100, None)
        .await
        .unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0".to_string(), signature_tag.to_string()]);
    assert_eq!(
        meta.promotion("prm_1").await.unwrap().unwrap().state,
        PromotionState::Promoted
    );
}

#[tokio::test]
async fn a_promotion_of_one_manifest_writes_what_the_one_by_one_steps_wrote() {
    for meta in crate::testing::engines().await {
        promote_and_compare(&meta, 0).await;
    }
}

#[tokio::test]
async fn a_promotion_of_an_index_of_fifty_writes_what_the_one_by_one_steps_wrote() {
    for meta in crate::testing::engines().await {
        promote_and_compare(&meta, 50).await;
    }
}
