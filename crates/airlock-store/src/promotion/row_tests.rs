//! Store tests of the typed promotion rows: a stored value that does not parse as its type is
//! reported as corrupt metadata naming the table, the column and the value, never a panic.

use super::tests::{image, promotion};
use super::*;
use std::str::FromStr;

/// The message of a `StoreError::Corrupt`, or a failure naming what came instead.
fn corrupt_message<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Corrupt(message)) => message,
        other => panic!("expected corrupt metadata, got {other:?}"),
    }
}

/// Sets promotion `id`'s state to `bogus` behind the schema's back (its CHECK constraint lists
/// the states): what a manual edit or a damaged row looks like.
async fn write_bogus_state(meta: &Metadata, id: &str) {
    let mut connection = meta.pool().acquire().await.unwrap();
    let (off, on) = match meta.backend() {
        crate::Backend::Sqlite => (
            "PRAGMA ignore_check_constraints = ON",
            "PRAGMA ignore_check_constraints = OFF",
        ),
        crate::Backend::Postgres => (
            "ALTER TABLE promotions DROP CONSTRAINT promotions_state_check",
            "SELECT 1",
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(off))
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query("UPDATE promotions SET state = 'bogus' WHERE id = $1")
        .bind(id)
        .execute(&mut *connection)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(on))
        .execute(&mut *connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stored_state_that_is_no_state_reads_as_corrupt_naming_it() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        meta.insert_promotion(&promotion("prm_1", &digest))
            .await
            .unwrap();
        write_bogus_state(&meta, "prm_1").await;

        let message = corrupt_message(meta.promotion("prm_1").await);
        assert!(message.contains("promotions.state"), "{message}");
        assert!(message.contains("\"bogus\""), "{message}");
        let listed = corrupt_message(meta.promotions_page(None, None, None, 10).await);
        assert_eq!(listed, message);
        // A state change reads the state first: refused as corrupt, nothing changed.
        match meta
            .close_promotion(
                "prm_1",
                &[PromotionState::Evaluating],
                PromotionState::Cancelled,
                None,
                &[],
            )
            .await
        {
            Err(PromotionWriteError::Store(StoreError::Corrupt(closing))) => {
                assert!(closing.contains("promotions.state"), "{closing}");
                assert!(closing.contains("\"bogus\""), "{closing}");
            }
            other => panic!("expected corrupt metadata, got {other:?}"),
        }
        let state: String = sqlx::query_scalar("SELECT state FROM promotions WHERE id = 'prm_1'")
            .fetch_one(meta.pool())
            .await
            .unwrap();
        assert_eq!(state, "bogus");
    }
}

#[tokio::test]
async fn a_stored_digest_or_stage_that_does_not_parse_reads_as_corrupt_naming_it() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        meta.insert_promotion(&promotion("prm_1", &digest))
            .await
            .unwrap();
        sqlx::query("UPDATE promotions SET digest = 'sha256:short' WHERE id = 'prm_1'")
            .execute(meta.pool())
            .await
            .unwrap();
        let message = corrupt_message(meta.promotion("prm_1").await);
        assert!(message.contains("promotions.digest"), "{message}");
        assert!(message.contains("\"sha256:short\""), "{message}");

        sqlx::query(
            "INSERT INTO stage_freezes (stage, reason, frozen_by, frozen_at) VALUES ('Bad Stage', 'r', 'x', 1)",
        )
        .execute(meta.pool())
        .await
        .unwrap();
        let message = corrupt_message(meta.freezes().await);
        assert!(message.contains("stage_freezes.stage"), "{message}");
        assert!(message.contains("\"Bad Stage\""), "{message}");
    }
}

#[tokio::test]
async fn a_stalled_promotion_that_does_not_parse_is_an_error_in_its_place_naming_it() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let broken = image(&meta, &source, "broken").await;
        let fine = image(&meta, &source, "fine").await;
        let mut first = promotion("prm_broken", &broken);
        first.evaluating_since = Some(1_000);
        let mut second = promotion("prm_fine", &fine);
        second.evaluating_since = Some(1_500);
        meta.insert_promotion(&first).await.unwrap();
        meta.insert_promotion(&second).await.unwrap();
        sqlx::query("UPDATE promotions SET digest = 'not-a-digest' WHERE id = 'prm_broken'")
            .execute(meta.pool())
            .await
            .unwrap();
        let stalled = meta.stalled_promotions(2_000).await.unwrap();
        assert_eq!(stalled.len(), 2);
        let mut stalled = stalled.into_iter();
        let message = corrupt_message(stalled.next().unwrap());
        assert!(message.contains("promotions.digest"), "{message}");
        assert!(message.contains("prm_broken"), "{message}");
        assert_eq!(stalled.next().unwrap().unwrap().id, "prm_fine");
    }
}
