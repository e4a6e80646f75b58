//! The policy bundle every replica must decide promotions with (migration 0020): the digest the
//! last replica to load a bundle (at start or on a reload) recorded. The bundles themselves are
//! stored by digest with [`Metadata::save_bundle`].

use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

impl Metadata {
    /// Records `digest` as the bundle every replica must decide with.
    pub async fn activate_bundle(&self, digest: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO active_policy (id, digest, activated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET digest = excluded.digest,
               activated_at = excluded.activated_at",
        )
        .bind(digest)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The digest of the bundle every replica must decide with (`None` before any was recorded).
    pub async fn active_bundle(&self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT digest FROM active_policy WHERE id = 1")
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next(),
        )
    }
}

/// Checks, inside the transaction `tx` that records a decision, that the policy bundle it was
/// decided with (`decided`) is still the one in use: another replica may have activated a new
/// bundle between the decision's check and its write. Decisions not made by the policy (`query`
/// empty, such as a reviewer's rejection) and databases with no bundle recorded pass.
pub(crate) async fn check_decided_with_active(
    tx: &mut sqlx::AnyConnection,
    decided: &str,
    query: &str,
) -> Result<(), StoreError> {
    if query.is_empty() {
        return Ok(());
    }
    let active: Option<String> =
        sqlx::query_scalar("SELECT digest FROM active_policy WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
    match active {
        Some(active) if active != decided => Err(StoreError::PolicyMoved {
            decided: decided.to_string(),
            active,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::Metadata;

    #[tokio::test]
    async fn the_last_bundle_activated_is_the_active_one() {
        for meta in crate::testing::engines().await {
            assert_eq!(meta.active_bundle().await.unwrap(), None);
            meta.activate_bundle("sha256:aa").await.unwrap();
            meta.activate_bundle("sha256:bb").await.unwrap();
            assert_eq!(
                meta.active_bundle().await.unwrap().as_deref(),
                Some("sha256:bb")
            );
        }
    }

    #[tokio::test]
    async fn migration_20_applies_over_the_previous_schema_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(18, &pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO policy_bundles (digest, files, created_at) VALUES ('sha256:aa', '[]', 1)",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        assert_eq!(
            meta.bundle_files("sha256:aa").await.unwrap().as_deref(),
            Some("[]")
        );
        assert_eq!(meta.active_bundle().await.unwrap(), None);
        meta.activate_bundle("sha256:aa").await.unwrap();
        assert_eq!(
            meta.active_bundle().await.unwrap().as_deref(),
            Some("sha256:aa")
        );
    }

    fn decision(id: &str, bundle: &str, query: &str) -> crate::DecisionRow {
        crate::DecisionRow {
            id: id.into(),
            promotion_id: None,
            action: "rollback".into(),
            query: query.into(),
            bundle_digest: bundle.into(),
            input: "{}".into(),
            result: "{}".into(),
            allowed: false,
            created_at: 1,
        }
    }

    /// A decision made with a bundle that is no longer the active one is refused in its own
    /// transaction (nothing recorded); one made with the active bundle, or not by the policy,
    /// is recorded.
    #[tokio::test]
    async fn a_decision_is_recorded_only_with_the_active_bundle() {
        for meta in crate::testing::engines().await {
            meta.activate_bundle("sha256:aa").await.unwrap();
            meta.activate_bundle("sha256:bb").await.unwrap();
            let stale = decision("dec_stale", "sha256:aa", "data.airlock.gates.prod");
            match meta.record_decision(&stale, None, &[]).await {
                Err(crate::PromotionWriteError::Store(crate::StoreError::PolicyMoved {
                    decided,
                    active,
                })) => assert_eq!(
                    (decided.as_str(), active.as_str()),
                    ("sha256:aa", "sha256:bb")
                ),
                other => panic!("expected PolicyMoved, got {other:?}"),
            }
            assert!(meta.decision("dec_stale").await.unwrap().is_none());
            let current = decision("dec_current", "sha256:bb", "data.airlock.gates.prod");
            meta.record_decision(&current, None, &[]).await.unwrap();
            assert!(meta.decision("dec_current").await.unwrap().is_some());
            let rejected = decision("dec_reject", "sha256:aa", "");
            meta.record_decision(&rejected, None, &[]).await.unwrap();
            assert!(meta.decision("dec_reject").await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn a_rollback_is_recorded_only_with_the_active_bundle() {
        let (old, new) = (
            format!("sha256:{}", "1".repeat(64)),
            format!("sha256:{}", "2".repeat(64)),
        );
        for meta in crate::testing::engines().await {
            let mut tx = meta.begin_write().await.unwrap();
            sqlx::query("INSERT INTO repositories (name, created_at) VALUES ('prod/a', 1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            for digest in [&old, &new] {
                sqlx::query(
                    "INSERT INTO manifests (digest, media_type, annotations, size, content, created_at)
                     VALUES ($1, 'application/vnd.oci.image.manifest.v1+json', '{}', 2, $2, 1)",
                )
                .bind(digest)
                .bind(b"{}".to_vec())
                .execute(&mut *tx)
                .await
                .unwrap();
                sqlx::query(
                    "INSERT INTO repository_manifests (repository, digest, created_at, pushed_by)
                     VALUES ('prod/a', $1, 1, 'tester')",
                )
                .bind(digest)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO tags (repository, name, digest, updated_at) VALUES ('prod/a', 'live', $1, 1)",
            )
            .bind(&new)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            meta.activate_bundle("sha256:aa").await.unwrap();
            meta.activate_bundle("sha256:bb").await.unwrap();
            let rollback = |decision| crate::Rollback {
                repository: "prod/a",
                tag: "live",
                from: &new,
                to: &old,
                by: "tester",
                decision,
                records: &[],
            };
            let stale = decision("dec_stale_rb", "sha256:aa", "data.airlock.rollback.prod");
            match meta.roll_back(rollback(&stale)).await {
                Err(crate::PromotionWriteError::Store(crate::StoreError::PolicyMoved {
                    decided,
                    ..
                })) => assert_eq!(decided, "sha256:aa"),
                other => panic!("expected PolicyMoved, got {other:?}"),
            }
            assert!(meta.decision("dec_stale_rb").await.unwrap().is_none());
            let tag: String = sqlx::query_scalar(
                "SELECT digest FROM tags WHERE repository = 'prod/a' AND name = 'live'",
            )
            .fetch_one(meta.pool())
            .await
            .unwrap();
            assert_eq!(tag, new, "a refused rollback moves nothing");
            let current = decision("dec_current_rb", "sha256:bb", "data.airlock.rollback.prod");
            meta.roll_back(rollback(&current)).await.unwrap();
            assert!(meta.decision("dec_current_rb").await.unwrap().is_some());
        }
    }
}
