//! What deploy-time verification reads: for one artifact in one repository of a stage, the
//! promotion that brought it there (or brought an index holding it), its approvals, the flags and
//! quarantine on it and where its channel tag points now; and the `verify_version` counter
//! (migration 0029) whose triggers bump it in the same transaction as any change to those.
//! And what deployments report running where (`deployments`, migration 0030).

use airlock_core::{AuditRecord, Digest, RepoName};
use sqlx::Row;

use crate::anomalies::QuarantineRow;
use crate::audit::append;
use crate::error::StoreError;
use crate::evidence::ArtifactFlag;
use crate::metadata::Metadata;
use crate::promotion::{ApprovalRow, PromotionRow, promotion_from_row};

/// What airlock's records say about one artifact in one repository, read for a deploy-time check.
#[derive(Debug, Clone)]
pub struct DeployRecord {
    /// Whether the repository holds the manifest now.
    pub in_repository: bool,
    /// The promotion that brought this digest into the repository's stage, if one did.
    pub promotion: Option<PromotionRow>,
    /// Without one: the newest promotion of an index holding this manifest, if one did.
    pub via_index: Option<PromotionRow>,
    /// The approvals of whichever promotion is set, oldest first.
    pub approvals: Vec<ApprovalRow>,
    /// Flags raised on the artifact in this repository (`evidence_revoked`).
    pub flags: Vec<ArtifactFlag>,
    /// The quarantine holding it in this repository path, if any.
    pub quarantine: Option<QuarantineRow>,
    /// Where the promotion's channel tag points now, when it moved one and the tag still exists.
    pub channel_digest: Option<String>,
}

impl Metadata {
    /// The counter every change a deploy-time answer depends on bumps (migration 0029's
    /// triggers): read it before the records, so an answer is never kept under a newer version
    /// than the state it was computed from.
    pub async fn verify_version(&self) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM verify_version WHERE id = 1")
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next();
        version.ok_or_else(|| StoreError::Corrupt("verify_version has no row".to_string()))
    }

    /// What the records say about `digest` in `repo`: each read on an index (the live
    /// promotions' unique index, `manifest_references_by_child`, the primary keys), so the cost
    /// does not grow with the registry.
    pub async fn deploy_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<DeployRecord, StoreError> {
        let path = repo.path();
        let stage = repo.stage();
        let digest_text = digest.to_string();
        let in_repository = sqlx::query(
            "SELECT 1 AS one FROM repository_manifests WHERE repository = $1 AND digest = $2",
        )
        .bind(repo.as_str())
        .bind(&digest_text)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .is_some();
        let promotion = sqlx::query(
            "SELECT * FROM promotions WHERE repository_path = $1 AND digest = $2
               AND target_stage = $3 AND state IN ('evaluating', 'pending_approval', 'promoted')
               AND state = 'promoted'",
        )
        .bind(path)
        .bind(&digest_text)
        .bind(stage.as_str())
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .map(promotion_from_row)
        .transpose()?;
        let via_index = match promotion {
            Some(_) => None,
            None => sqlx::query(
                "SELECT * FROM promotions WHERE repository_path = $1 AND target_stage = $2
                   AND state = 'promoted'
                   AND digest IN (SELECT digest FROM manifest_references
                                  WHERE child = $3 AND kind = 'manifest')
                 ORDER BY decided_at DESC, id LIMIT 1",
            )
            .bind(path)
            .bind(stage.as_str())
            .bind(&digest_text)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(promotion_from_row)
            .transpose()?,
        };
        let chosen = promotion.as_ref().or(via_index.as_ref());
        let approvals = match chosen {
            Some(promotion) => self.approvals(&promotion.id).await?,
            None => Vec::new(),
        };
        let channel_digest = match chosen.and_then(|p| p.channel.as_ref()) {
            Some(channel) => {
                sqlx::query_scalar("SELECT digest FROM tags WHERE repository = $1 AND name = $2")
                    .bind(repo.as_str())
                    .bind(channel.as_str())
                    .fetch_all(self.pool())
                    .await?
                    .into_iter()
                    .next()
            }
            None => None,
        };
        let flags = self.artifact_flags(repo.as_str(), &digest_text).await?;
        let quarantine = self.quarantine(path, &digest_text).await?;
        Ok(DeployRecord {
            in_repository,
            promotion,
            via_index,
            approvals,
            flags,
            quarantine,
            channel_digest,
        })
    }
}

/// One image a deployment reported running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    /// Where it runs (a cluster, a region: the reporter's name for it).
    pub environment: String,
    /// What runs it (`namespace/kind/name`, or the reporter's name for it).
    pub workload: String,
    /// The stage it deploys from.
    pub stage: String,
    /// The image reference as the workload names it.
    pub reference: String,
    /// Who reported it.
    pub reported_by: String,
    /// When (ms).
    pub reported_at: i64,
}

impl Metadata {
    /// Replaces what `workload` in `environment` runs with `references` (none: it runs nothing
    /// any more), appending `records`, in one transaction.
    pub async fn report_deployment(
        &self,
        environment: &str,
        workload: &str,
        stage: &str,
        references: &[String],
        reported_by: &str,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let now = crate::metadata::now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM deployments WHERE environment = $1 AND workload = $2")
            .bind(environment)
            .bind(workload)
            .execute(&mut *tx)
            .await?;
        for reference in references {
            sqlx::query(
                "INSERT INTO deployments (environment, workload, stage, reference, reported_by,
                 reported_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(environment)
            .bind(workload)
            .bind(stage)
            .bind(reference)
            .bind(reported_by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` reported images after the cursor `after` (environment, workload,
    /// reference), of one environment or all, in that order: a keyset page of the primary key.
    pub async fn deployments_page(
        &self,
        environment: Option<&str>,
        after: Option<(&str, &str, &str)>,
        limit: u32,
    ) -> Result<Vec<DeploymentRow>, StoreError> {
        let (e, w, r) = after.unwrap_or(("", "", ""));
        let rows = sqlx::query(
            "SELECT environment, workload, stage, reference, reported_by, reported_at
               FROM deployments
              WHERE ($1 = '' OR environment = $1)
                AND (environment > $2 OR (environment = $2 AND (workload > $3
                     OR (workload = $3 AND reference > $4))))
              ORDER BY environment, workload, reference LIMIT $5",
        )
        .bind(environment.unwrap_or(""))
        .bind(e)
        .bind(w)
        .bind(r)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DeploymentRow {
                environment: row.get("environment"),
                workload: row.get("workload"),
                stage: row.get("stage"),
                reference: row.get("reference"),
                reported_by: row.get("reported_by"),
                reported_at: row.get("reported_at"),
            })
            .collect())
    }
}
