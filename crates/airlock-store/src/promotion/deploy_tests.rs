//! Store tests of what deploy-time verification reads (`deploy.rs`) and of migration 0029's
//! `verify_version` triggers.

use std::str::FromStr;

use super::tests::{image, promotion, write_for};
use super::*;

/// Runs `sql` on `meta` and returns how far it moved `verify_version`.
async fn bump_of(meta: &Metadata, sql: &str) -> i64 {
    let before = meta.verify_version().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(meta.pool())
        .await
        .unwrap();
    meta.verify_version().await.unwrap() - before
}

/// Promotes `digest` from dev to staging of `team/app`, moving the channel tag `stable`.
async fn promote_on_channel(meta: &Metadata, digest: &Digest, attestation: &Digest) {
    let mut row = promotion("prm_1", digest);
    row.channel = Some(Tag::from_str("stable").unwrap());
    meta.insert_promotion(&row).await.unwrap();
    let mut write = write_for(meta, "prm_1", digest, attestation, "claim-prm_1", None).await;
    write.channel = row.channel.clone();
    meta.promote(&write, &[]).await.unwrap();
}

#[tokio::test]
async fn a_promotion_is_read_back_with_its_channel_and_moves_the_version() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let target = RepoName::from_str("staging/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        let other = image(&meta, &source, "other").await;
        let attestation = image(&meta, &source, "attestation").await;

        let unpromoted = meta.deploy_record(&target, &digest).await.unwrap();
        assert!(!unpromoted.in_repository);
        assert!(unpromoted.promotion.is_none() && unpromoted.via_index.is_none());

        let before = meta.verify_version().await.unwrap();
        promote_on_channel(&meta, &digest, &attestation).await;
        assert!(meta.verify_version().await.unwrap() > before);

        let record = meta.deploy_record(&target, &digest).await.unwrap();
        assert!(record.in_repository);
        let promoted = record.promotion.expect("the promotion");
        assert_eq!(promoted.id, "prm_1");
        assert_eq!(promoted.state, airlock_core::PromotionState::Promoted);
        assert_eq!(
            record.channel_digest.as_deref(),
            Some(digest.to_string().as_str())
        );
        assert!(record.flags.is_empty() && record.quarantine.is_none());

        // The same digest in the source stage was never promoted there.
        let in_dev = meta.deploy_record(&source, &digest).await.unwrap();
        assert!(in_dev.in_repository && in_dev.promotion.is_none());
        // Another digest is not in the target at all.
        let absent = meta.deploy_record(&target, &other).await.unwrap();
        assert!(!absent.in_repository && absent.promotion.is_none());
    }
}

#[tokio::test]
async fn every_change_an_answer_reads_moves_the_version_in_its_statement() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let target = RepoName::from_str("staging/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        let attestation = image(&meta, &source, "attestation").await;
        promote_on_channel(&meta, &digest, &attestation).await;
        let d = digest.to_string();

        let flag = format!(
            "INSERT INTO artifact_flags (repository, digest, flag, reason, created_at)
             VALUES ('staging/team/app', '{d}', 'evidence_revoked', 'key k compromised', 0)"
        );
        assert!(bump_of(&meta, &flag).await >= 1);
        let record = meta.deploy_record(&target, &digest).await.unwrap();
        assert_eq!(record.flags.len(), 1);
        assert_eq!(record.flags[0].flag, "evidence_revoked");
        assert!(bump_of(&meta, "DELETE FROM artifact_flags").await >= 1);

        let channel = format!(
            "INSERT INTO channel_history (repository, tag, digest, promotion_id, action, moved_by,
             moved_at) VALUES ('staging/team/app', 'stable', '{d}', NULL, 'rollback', 'ops', 0)"
        );
        assert!(bump_of(&meta, &channel).await >= 1);
        assert!(
            bump_of(
                &meta,
                "UPDATE keyring_version SET version = version + 1 WHERE id = 1"
            )
            .await
                >= 1
        );
        assert!(
            bump_of(
                &meta,
                "DELETE FROM tags WHERE repository = 'staging/team/app'"
            )
            .await
                >= 1
        );
        // Writes that cannot change an answer leave it alone: a push into a push stage.
        let before = meta.verify_version().await.unwrap();
        image(&meta, &source, "later push").await;
        assert_eq!(meta.verify_version().await.unwrap(), before);
    }
}
