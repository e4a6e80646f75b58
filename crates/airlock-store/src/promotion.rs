//! Promotion storage: requests and their states, approvals, decision records, policy bundles by
//! digest, channel tag history, stage freezes, and the zero-copy promotion itself — one
//! transaction that makes an artifact, its referrers and its promotion attestation visible in the
//! target repository by adding rows, never bytes.

use airlock_core::{AuditRecord, Digest, ParsedManifest, RepoName, Tag};
use sqlx::Row;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// A promotion as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionRow {
    /// `prm_<hex>`.
    pub id: String,
    /// Repository path without stage.
    pub repository_path: String,
    /// The artifact.
    pub digest: String,
    /// Where it comes from.
    pub source_stage: String,
    /// Where it goes.
    pub target_stage: String,
    /// Tags to set in the target.
    pub tags: Vec<String>,
    /// Channel tag to move in the target.
    pub channel: Option<String>,
    /// Lifecycle state.
    pub state: String,
    /// Who asked.
    pub requested_by: String,
    /// The requester's context at request time (JSON).
    pub requester: String,
    /// Approvals needed.
    pub approvals_required: u32,
    /// Break-glass reason.
    pub break_glass: Option<String>,
    /// The latest decision record.
    pub last_decision: Option<String>,
    /// The promotion attestation manifest.
    pub attestation: Option<String>,
    /// When requested (ms).
    pub created_at: i64,
    /// When pending approvals expire (ms).
    pub expires_at: i64,
    /// When it reached a final state (ms).
    pub decided_at: Option<i64>,
}

/// An approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    /// The approver.
    pub principal: String,
    /// Their comment.
    pub comment: Option<String>,
    /// When (ms).
    pub created_at: i64,
}

/// A decision record: enough to replay the evaluation bit for bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    /// `dec_<hex>`.
    pub id: String,
    /// The promotion it decided, if any.
    pub promotion_id: Option<String>,
    /// `promote` or `rollback`.
    pub action: String,
    /// The Rego query.
    pub query: String,
    /// The bundle it was evaluated with.
    pub bundle_digest: String,
    /// The input document (JSON).
    pub input: String,
    /// The result (JSON).
    pub result: String,
    /// Whether the gate allowed it.
    pub allowed: bool,
    /// When (ms).
    pub created_at: i64,
}

/// One move of a channel tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMove {
    /// The digest the tag was moved to.
    pub digest: String,
    /// The promotion that moved it (none for a rollback).
    pub promotion_id: Option<String>,
    /// `promote` or `rollback`.
    pub action: String,
    /// Who moved it.
    pub moved_by: String,
    /// When (ms).
    pub moved_at: i64,
}

/// A stage freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeRow {
    /// The stage.
    pub stage: String,
    /// Why.
    pub reason: String,
    /// Who froze it.
    pub frozen_by: String,
    /// When (ms).
    pub frozen_at: i64,
    /// The anomaly that froze it, if one did (only resolving it lifts the freeze).
    pub anomaly_id: Option<i64>,
}

/// A channel tag moved back by a rollback.
#[derive(Debug, Clone, Copy)]
pub struct Rollback<'a> {
    /// The repository (with stage).
    pub repository: &'a str,
    /// The channel tag.
    pub tag: &'a str,
    /// The digest it must still name.
    pub from: &'a str,
    /// The digest it will name.
    pub to: &'a str,
    /// Who rolls back.
    pub by: &'a str,
    /// The rollback's decision record.
    pub decision: &'a DecisionRow,
    /// Audit records.
    pub records: &'a [AuditRecord],
}

/// A document airlock writes into the registry during a promotion (the attestation manifest).
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its bytes.
    pub content: Vec<u8>,
    /// What it references (parsed from `content`).
    pub parsed: ParsedManifest,
    /// Blobs it introduces (already written to the blob store): digest and size.
    pub new_blobs: Vec<(Digest, u64)>,
    /// The tag to point at it in the target (cosign's `sha256-<hex>.att`).
    pub tag: Option<Tag>,
}

/// Everything one promotion writes.
#[derive(Debug, Clone)]
pub struct PromotionWrite {
    /// The promotion.
    pub promotion_id: String,
    /// Source repository (with stage).
    pub source: RepoName,
    /// Target repository (with stage).
    pub target: RepoName,
    /// The artifact.
    pub digest: Digest,
    /// Tags to point at the artifact in the target.
    pub tags: Vec<Tag>,
    /// A channel tag to move (with history).
    pub channel: Option<Tag>,
    /// Evidence manifests of the source to carry over (signature referrers and cosign's
    /// tag-scheme signature manifest), each with the tag to point at it in the target. Only these
    /// are carried, and nothing they reference as a manifest: the caller checked they hold
    /// nothing but evidence.
    pub evidence: Vec<(Digest, Option<Tag>)>,
    /// The promotion attestation.
    pub attestation: NewManifest,
    /// The keyring version the decision's evidence was read under: if a key changed since (a
    /// compromise, say), the promotion is refused and decided again.
    pub keyring_version: i64,
    /// Who promotes (channel history).
    pub actor: String,
}

/// Why a promotion write was refused.
#[derive(Debug, thiserror::Error)]
pub enum PromotionWriteError {
    /// Another live promotion of this artifact to this stage exists.
    #[error("promotion {0} of this artifact to this stage already exists")]
    Duplicate(String),
    /// The promotion is not in a state that allows the change.
    #[error("promotion {id} is {state}")]
    WrongState {
        /// The promotion.
        id: String,
        /// Its state.
        state: String,
    },
    /// The approver already approved.
    #[error("already approved")]
    AlreadyApproved,
    /// A tag of the target already names another digest (tags in gated stages are immutable).
    #[error("tag {tag} already names {digest} in the target; tags in gated stages are immutable")]
    TagTaken {
        /// The tag.
        tag: String,
        /// The digest it names.
        digest: String,
    },
    /// The keyring changed after the decision read the evidence.
    #[error("the keyring changed during the decision")]
    KeyringMoved,
    /// An anomaly quarantined the artifact (or something it carries) after the decision read it.
    #[error("the artifact was quarantined during the decision")]
    QuarantinedMeanwhile,
    /// A channel tag moved meanwhile.
    #[error("the channel tag moved meanwhile; read it again")]
    ChannelMoved,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PromotionWriteError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

fn promotion_from_row(row: sqlx::sqlite::SqliteRow) -> Result<PromotionRow, StoreError> {
    let tags: String = row.get("tags");
    Ok(PromotionRow {
        id: row.get("id"),
        repository_path: row.get("repository_path"),
        digest: row.get("digest"),
        source_stage: row.get("source_stage"),
        target_stage: row.get("target_stage"),
        tags: serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt(format!("promotion tags: {e}")))?,
        channel: row.get("channel"),
        state: row.get("state"),
        requested_by: row.get("requested_by"),
        requester: row.get("requester"),
        approvals_required: row.get::<i64, _>("approvals_required") as u32,
        break_glass: row.get("break_glass"),
        last_decision: row.get("last_decision"),
        attestation: row.get("attestation"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        decided_at: row.get("decided_at"),
    })
}

fn decision_from_row(row: sqlx::sqlite::SqliteRow) -> DecisionRow {
    DecisionRow {
        id: row.get("id"),
        promotion_id: row.get("promotion_id"),
        action: row.get("action"),
        query: row.get("query"),
        bundle_digest: row.get("bundle_digest"),
        input: row.get("input"),
        result: row.get("result"),
        allowed: row.get::<i64, _>("allowed") != 0,
        created_at: row.get("created_at"),
    }
}

async fn insert_decision(
    tx: &mut sqlx::SqliteConnection,
    decision: &DecisionRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO decisions (id, promotion_id, action, query, bundle_digest, input, result,
         allowed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&decision.id)
    .bind(&decision.promotion_id)
    .bind(&decision.action)
    .bind(&decision.query)
    .bind(&decision.bundle_digest)
    .bind(&decision.input)
    .bind(&decision.result)
    .bind(decision.allowed as i64)
    .bind(decision.created_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn current_state(
    tx: &mut sqlx::SqliteConnection,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT state FROM promotions WHERE id = ?")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next(),
    )
}

async fn set_tag(
    tx: &mut sqlx::SqliteConnection,
    repo: &str,
    tag: &str,
    digest: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tags (repository, name, digest, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (repository, name) DO UPDATE SET digest = excluded.digest,
         updated_at = excluded.updated_at",
    )
    .bind(repo)
    .bind(tag)
    .bind(digest)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Metadata {
    /// Stores a new promotion in state `evaluating`. Refused with the existing id if a live
    /// promotion (evaluating, pending or promoted) of the same artifact to the same stage exists.
    pub async fn insert_promotion(&self, row: &PromotionRow) -> Result<(), PromotionWriteError> {
        let mut tx = self.begin_write().await?;
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM promotions WHERE repository_path = ? AND digest = ? AND target_stage = ?
             AND state IN ('evaluating', 'pending_approval', 'promoted')",
        )
        .bind(&row.repository_path)
        .bind(&row.digest)
        .bind(&row.target_stage)
        .fetch_all(&mut *tx)
        .await?;
        if let Some(id) = existing.into_iter().next() {
            return Err(PromotionWriteError::Duplicate(id));
        }
        let tags =
            serde_json::to_string(&row.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO promotions (id, repository_path, digest, source_stage, target_stage, tags,
             channel, state, requested_by, requester, approvals_required, break_glass,
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.id)
        .bind(&row.repository_path)
        .bind(&row.digest)
        .bind(&row.source_stage)
        .bind(&row.target_stage)
        .bind(tags)
        .bind(&row.channel)
        .bind(&row.state)
        .bind(&row.requested_by)
        .bind(&row.requester)
        .bind(row.approvals_required as i64)
        .bind(&row.break_glass)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One promotion.
    pub async fn promotion(&self, id: &str) -> Result<Option<PromotionRow>, StoreError> {
        sqlx::query("SELECT * FROM promotions WHERE id = ?")
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(promotion_from_row)
            .transpose()
    }

    /// Promotions, newest first, optionally of one state and/or one repository path.
    pub async fn promotions(
        &self,
        state: Option<&str>,
        repository_path: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PromotionRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM promotions WHERE (? IS NULL OR state = ?)
             AND (? IS NULL OR repository_path = ?) ORDER BY created_at DESC, id LIMIT ?",
        )
        .bind(state)
        .bind(state)
        .bind(repository_path)
        .bind(repository_path)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(promotion_from_row)
        .collect()
    }

    /// Every promotion of one artifact (any stage), oldest first: its history.
    pub async fn promotions_of(
        &self,
        repository_path: &str,
        digest: &str,
    ) -> Result<Vec<PromotionRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM promotions WHERE repository_path = ? AND digest = ?
             ORDER BY created_at, id",
        )
        .bind(repository_path)
        .bind(digest)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(promotion_from_row)
        .collect()
    }

    /// The approvals of a promotion, oldest first.
    pub async fn approvals(&self, promotion_id: &str) -> Result<Vec<ApprovalRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal, comment, created_at FROM approvals WHERE promotion_id = ?
             ORDER BY created_at, principal",
        )
        .bind(promotion_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ApprovalRow {
                principal: row.get("principal"),
                comment: row.get("comment"),
                created_at: row.get("created_at"),
            })
            .collect())
    }

    /// Records a decision and moves the promotion (if any) from one of `from` to `to` with the
    /// required approvals, appending `records`, in one transaction. Returns the audit log index
    /// of the first record.
    pub async fn record_decision(
        &self,
        decision: &DecisionRow,
        transition: Option<(&[&str], &str, u32)>,
        records: &[AuditRecord],
    ) -> Result<Option<u64>, PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        if let (Some(id), Some((from, to, required))) = (&decision.promotion_id, transition) {
            let state = current_state(&mut tx, id).await?.unwrap_or_default();
            if !from.contains(&state.as_str()) {
                return Err(PromotionWriteError::WrongState {
                    id: id.clone(),
                    state,
                });
            }
            let final_state = !matches!(to, "evaluating" | "pending_approval");
            sqlx::query(
                "UPDATE promotions SET state = ?, approvals_required = ?, last_decision = ?,
                 decided_at = CASE WHEN ? THEN ? ELSE decided_at END WHERE id = ?",
            )
            .bind(to)
            .bind(required as i64)
            .bind(&decision.id)
            .bind(final_state)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        insert_decision(&mut tx, decision).await?;
        let index = append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(index)
    }

    /// Adds an approval to a pending promotion; returns the approvals now recorded and whether
    /// they complete the set (then the promotion is `evaluating`, claimed by this caller).
    pub async fn add_approval(
        &self,
        promotion_id: &str,
        principal: &str,
        comment: Option<&str>,
        records: &[AuditRecord],
    ) -> Result<(u32, bool), PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let state = current_state(&mut tx, promotion_id)
            .await?
            .unwrap_or_default();
        if state != "pending_approval" {
            return Err(PromotionWriteError::WrongState {
                id: promotion_id.into(),
                state,
            });
        }
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO approvals (promotion_id, principal, comment, created_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(promotion_id)
        .bind(principal)
        .bind(comment)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(PromotionWriteError::AlreadyApproved);
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE promotion_id = ?")
                .bind(promotion_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .unwrap_or(0);
        // The approval that completes the set claims the promotion for its final decision, in
        // the same transaction: concurrent approvals after it find it no longer pending.
        let required: i64 =
            sqlx::query_scalar("SELECT approvals_required FROM promotions WHERE id = ?")
                .bind(promotion_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .unwrap_or(0);
        let complete = count >= required;
        if complete {
            sqlx::query("UPDATE promotions SET state = 'evaluating' WHERE id = ?")
                .bind(promotion_id)
                .execute(&mut *tx)
                .await?;
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok((count as u32, complete))
    }

    /// Puts a claimed promotion (`evaluating`) back to `pending_approval`, when its final
    /// decision could not be made.
    /// `records` are appended only if it was still claimed.
    pub async fn reopen_promotion(
        &self,
        id: &str,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let reopened = sqlx::query(
            "UPDATE promotions SET state = 'pending_approval' WHERE id = ? AND state = 'evaluating'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if reopened > 0 {
            append(&mut tx, records).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves a promotion from one of `from` to the final state `to` (expired, cancelled, denied)
    /// with its audit records.
    pub async fn close_promotion(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        records: &[AuditRecord],
    ) -> Result<(), PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let state = current_state(&mut tx, id).await?.unwrap_or_default();
        if !from.contains(&state.as_str()) {
            return Err(PromotionWriteError::WrongState {
                id: id.into(),
                state,
            });
        }
        sqlx::query("UPDATE promotions SET state = ?, decided_at = ? WHERE id = ?")
            .bind(to)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Pending promotions whose approvals expired at `now`.
    pub async fn expired_promotions(&self, now: i64) -> Result<Vec<PromotionRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM promotions WHERE state IN ('pending_approval', 'evaluating')
             AND expires_at <= ? ORDER BY expires_at",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(promotion_from_row)
        .collect()
    }

    /// Who pushed `digest` into `repo`.
    pub async fn pushed_by(&self, repo: &str, digest: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT pushed_by FROM repository_manifests WHERE repository = ? AND digest = ?",
        )
        .bind(repo)
        .bind(digest)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .flatten())
    }

    /// When `digest` first arrived in `repo` (ms).
    pub async fn manifest_arrived_at(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT created_at FROM repository_manifests WHERE repository = ? AND digest = ?",
        )
        .bind(repo)
        .bind(digest)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next())
    }

    /// Stores a policy bundle's files under its digest (idempotent).
    pub async fn save_bundle(&self, digest: &str, files_json: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT OR IGNORE INTO policy_bundles (digest, files, created_at) VALUES (?, ?, ?)",
        )
        .bind(digest)
        .bind(files_json)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stored bundle's files (JSON), by digest.
    pub async fn bundle_files(&self, digest: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT files FROM policy_bundles WHERE digest = ?")
                .bind(digest)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next(),
        )
    }

    /// A decision record.
    pub async fn decision(&self, id: &str) -> Result<Option<DecisionRow>, StoreError> {
        Ok(sqlx::query("SELECT * FROM decisions WHERE id = ?")
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(decision_from_row))
    }

    /// The moves of a channel tag, oldest first.
    pub async fn channel_history(
        &self,
        repo: &str,
        tag: &str,
    ) -> Result<Vec<ChannelMove>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, promotion_id, action, moved_by, moved_at FROM channel_history
             WHERE repository = ? AND tag = ? ORDER BY id",
        )
        .bind(repo)
        .bind(tag)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ChannelMove {
                digest: row.get("digest"),
                promotion_id: row.get("promotion_id"),
                action: row.get("action"),
                moved_by: row.get("moved_by"),
                moved_at: row.get("moved_at"),
            })
            .collect())
    }

    /// The freeze on `stage`, if any.
    pub async fn freeze(&self, stage: &str) -> Result<Option<FreezeRow>, StoreError> {
        Ok(sqlx::query(
            "SELECT stage, reason, frozen_by, frozen_at, anomaly_id FROM stage_freezes WHERE stage = ?",
        )
        .bind(stage)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next()
        .map(|row| FreezeRow {
            stage: row.get("stage"),
            reason: row.get("reason"),
            frozen_by: row.get("frozen_by"),
            frozen_at: row.get("frozen_at"),
            anomaly_id: row.get("anomaly_id"),
        }))
    }

    /// Freezes (`Some(reason)`) or unfreezes (`None`) a stage with its audit records. Returns
    /// whether anything changed; a freeze set by an anomaly is neither replaced nor lifted here.
    pub async fn set_freeze(
        &self,
        stage: &str,
        freeze: Option<(&str, &str)>,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = match freeze {
            Some((reason, by)) => sqlx::query(
                "INSERT INTO stage_freezes (stage, reason, frozen_by, frozen_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (stage) DO UPDATE SET reason = excluded.reason,
                 frozen_by = excluded.frozen_by, frozen_at = excluded.frozen_at
                 WHERE stage_freezes.anomaly_id IS NULL",
            )
            .bind(stage)
            .bind(reason)
            .bind(by)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            // A freeze an anomaly set is lifted only by resolving the anomaly.
            None => sqlx::query("DELETE FROM stage_freezes WHERE stage = ? AND anomaly_id IS NULL")
                .bind(stage)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        if changed > 0 {
            append(&mut tx, records).await?;
        }
        tx.commit().await?;
        Ok(changed > 0)
    }

    /// The manifests a promotion carries: the artifact and, for an index, its children
    /// (recursively), plus the given evidence manifests.
    async fn promotion_closure(
        tx: &mut sqlx::SqliteConnection,
        digest: &str,
        evidence: &[(Digest, Option<Tag>)],
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut closure = vec![digest.to_string()];
        let mut next = 0;
        while next < closure.len() {
            let current = closure[next].clone();
            next += 1;
            let children: Vec<String> = sqlx::query_scalar(
                "SELECT child FROM manifest_references WHERE digest = ? AND kind = 'manifest'",
            )
            .bind(&current)
            .fetch_all(&mut *tx)
            .await?;
            for child in children {
                if !closure.contains(&child) {
                    closure.push(child);
                }
            }
            if closure.len() > 10_000 {
                break;
            }
        }
        for (manifest, _) in evidence {
            let manifest = manifest.to_string();
            if !closure.contains(&manifest) {
                closure.push(manifest);
            }
        }
        Ok(closure)
    }

    /// Promotes: in one transaction, checks the promotion is still `pending_approval` or
    /// `evaluating`, makes the artifact and everything it carries visible in the target (rows
    /// only: manifests and blobs are shared), sets its tags and evidence tags, moves the channel
    /// tag (with history), adds the promotion attestation, marks the promotion `promoted` and
    /// appends `records`.
    pub async fn promote(
        &self,
        write: &PromotionWrite,
        records: &[AuditRecord],
    ) -> Result<(), PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let state = current_state(&mut tx, &write.promotion_id)
            .await?
            .unwrap_or_default();
        if !matches!(state.as_str(), "pending_approval" | "evaluating") {
            return Err(PromotionWriteError::WrongState {
                id: write.promotion_id.clone(),
                state,
            });
        }
        let keyring: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM keyring_version WHERE id = 1")
                .fetch_all(&mut *tx)
                .await?;
        if keyring.first().copied().unwrap_or(0) != write.keyring_version {
            return Err(PromotionWriteError::KeyringMoved);
        }
        let source = write.source.as_str();
        let target = write.target.as_str();
        sqlx::query("INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)")
            .bind(target)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let closure =
            Self::promotion_closure(&mut tx, &write.digest.to_string(), &write.evidence).await?;
        // The decision saw no quarantine; one raised since in this repository path (on the
        // artifact, what it carries, or an index that contains it) sends the promotion back to
        // be decided again.
        let mut quarantined = sqlx::QueryBuilder::new("WITH RECURSIVE up(d) AS (SELECT ");
        quarantined.push_bind(write.digest.to_string()).push(
            " UNION SELECT r.digest FROM manifest_references r JOIN up ON r.child = up.d
                  WHERE r.kind = 'manifest')
                 SELECT COUNT(*) FROM artifact_quarantines
                 WHERE (repository_path IS NULL OR repository_path = ",
        );
        quarantined
            .push_bind(write.source.path().to_string())
            .push(") AND (digest IN (SELECT d FROM up) OR digest IN (");
        let mut list = quarantined.separated(", ");
        for manifest in &closure {
            list.push_bind(manifest.clone());
        }
        quarantined.push("))");
        let hits: i64 = quarantined
            .build_query_scalar()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next()
            .unwrap_or(0);
        if hits > 0 {
            return Err(PromotionWriteError::QuarantinedMeanwhile);
        }
        for manifest in &closure {
            sqlx::query(
                "INSERT OR IGNORE INTO repository_manifests
                 (repository, digest, subject, created_at, pushed_by)
                 SELECT ?, digest, subject, ?, pushed_by FROM repository_manifests
                 WHERE repository = ? AND digest = ?",
            )
            .bind(target)
            .bind(now)
            .bind(source)
            .bind(manifest)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT OR IGNORE INTO repository_blobs (repository, digest, created_at)
                 SELECT ?, child, ? FROM manifest_references WHERE digest = ? AND kind = 'blob'",
            )
            .bind(target)
            .bind(now)
            .bind(manifest)
            .execute(&mut *tx)
            .await?;
        }
        let digest = write.digest.to_string();
        // Tags in gated stages are immutable: checked again here, inside the transaction, since
        // another promotion may have taken the tag after this one was requested.
        for tag in &write.tags {
            let current: Vec<String> =
                sqlx::query_scalar("SELECT digest FROM tags WHERE repository = ? AND name = ?")
                    .bind(target)
                    .bind(tag.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
            if let Some(current) = current.into_iter().next()
                && current != digest
            {
                return Err(PromotionWriteError::TagTaken {
                    tag: tag.to_string(),
                    digest: current,
                });
            }
            set_tag(&mut tx, target, tag.as_str(), &digest, now).await?;
        }
        for (manifest, tag) in &write.evidence {
            if let Some(tag) = tag {
                set_tag(&mut tx, target, tag.as_str(), &manifest.to_string(), now).await?;
            }
        }
        if let Some(channel) = &write.channel {
            set_tag(&mut tx, target, channel.as_str(), &digest, now).await?;
            sqlx::query(
                "INSERT INTO channel_history (repository, tag, digest, promotion_id, action,
                 moved_by, moved_at) VALUES (?, ?, ?, ?, 'promote', ?, ?)",
            )
            .bind(target)
            .bind(channel.as_str())
            .bind(&digest)
            .bind(&write.promotion_id)
            .bind(&write.actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The promotion attestation: a manifest with the artifact as subject, in the target only.
        let att = &write.attestation;
        for (blob, size) in &att.new_blobs {
            sqlx::query("INSERT OR IGNORE INTO blobs (digest, size, created_at) VALUES (?, ?, ?)")
                .bind(blob.to_string())
                .bind(*size as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let annotations = serde_json::to_string(&att.parsed.annotations)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT OR IGNORE INTO manifests
             (digest, media_type, artifact_type, subject, annotations, size, content, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(att.digest.to_string())
        .bind(&att.parsed.media_type)
        .bind(att.parsed.artifact_type.as_deref())
        .bind(att.parsed.subject.as_ref().map(Digest::to_string))
        .bind(annotations)
        .bind(att.content.len() as i64)
        .bind(&att.content)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for blob in &att.parsed.blobs {
            sqlx::query(
                "INSERT OR IGNORE INTO manifest_references (digest, child, kind) VALUES (?, ?, 'blob')",
            )
            .bind(att.digest.to_string())
            .bind(blob.to_string())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT OR IGNORE INTO repository_blobs (repository, digest, created_at) VALUES (?, ?, ?)",
            )
            .bind(target)
            .bind(blob.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT OR IGNORE INTO repository_manifests
             (repository, digest, subject, created_at, pushed_by) VALUES (?, ?, ?, ?, 'airlock')",
        )
        .bind(target)
        .bind(att.digest.to_string())
        .bind(att.parsed.subject.as_ref().map(Digest::to_string))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(tag) = &att.tag {
            set_tag(&mut tx, target, tag.as_str(), &att.digest.to_string(), now).await?;
        }
        // What the promotion placed in the target carries no new evidence: its evidence is the
        // source's (evidence belongs to the path), and the attestation is airlock's own.
        let attestation_digest = att.digest.to_string();
        for manifest in &closure {
            sqlx::query(
                "INSERT OR IGNORE INTO evidence_manifests (repository, digest, ingested_at)
                 SELECT ?, digest, ? FROM evidence_manifests WHERE repository = ? AND digest = ?",
            )
            .bind(target)
            .bind(now)
            .bind(source)
            .bind(manifest)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT OR IGNORE INTO evidence_manifests (repository, digest, ingested_at)
             VALUES (?, ?, ?)",
        )
        .bind(target)
        .bind(&attestation_digest)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE promotions SET state = 'promoted', attestation = ?, decided_at = ? WHERE id = ?",
        )
        .bind(att.digest.to_string())
        .bind(now)
        .bind(&write.promotion_id)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a channel tag back (a rollback), with its decision record and audit records;
    /// refused if the tag no longer points at `rollback.from`.
    pub async fn roll_back(&self, rollback: Rollback<'_>) -> Result<(), PromotionWriteError> {
        let Rollback {
            repository: repo,
            tag,
            from,
            to,
            by,
            decision,
            records,
        } = rollback;
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let current: Vec<String> =
            sqlx::query_scalar("SELECT digest FROM tags WHERE repository = ? AND name = ?")
                .bind(repo)
                .bind(tag)
                .fetch_all(&mut *tx)
                .await?;
        if current.first().map(String::as_str) != Some(from) {
            return Err(PromotionWriteError::ChannelMoved);
        }
        set_tag(&mut tx, repo, tag, to, now).await?;
        sqlx::query(
            "INSERT INTO channel_history (repository, tag, digest, promotion_id, action, moved_by,
             moved_at) VALUES (?, ?, ?, NULL, 'rollback', ?, ?)",
        )
        .bind(repo)
        .bind(tag)
        .bind(to)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_decision(&mut tx, decision).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The digests `repo` holds that are not referrers (artifacts), with their tags, oldest first.
    pub async fn artifacts_in(&self, repo: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let digests: Vec<String> = sqlx::query_scalar(
            "SELECT digest FROM repository_manifests rm WHERE repository = ? AND subject IS NULL
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = rm.repository
                 AND t.digest = rm.digest AND t.name LIKE 'sha256-%')
             AND NOT EXISTS (SELECT 1 FROM evidence_manifests em WHERE em.repository = rm.repository
                 AND em.digest = rm.digest)
             ORDER BY created_at, digest",
        )
        .bind(repo)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(digests.len());
        for digest in digests {
            let tags = self.tags_of(repo, &digest).await?;
            out.push((digest, tags));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::metadata::ManifestUpload;

    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// A stored image `repo@digest` with one config blob; returns its digest.
    async fn image(meta: &Metadata, repo: &RepoName, seed: &str) -> Digest {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let config_digest = Digest::sha256_of(config.as_bytes());
        meta.commit_blob(repo, &config_digest, config.len() as u64, &[])
            .await
            .unwrap();
        let content = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":{}}},\"layers\":[]}}",
            config.len()
        );
        let digest = Digest::sha256_of(content.as_bytes());
        let parsed = ParsedManifest::parse(Some(MANIFEST), content.as_bytes()).unwrap();
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

    fn promotion(id: &str, digest: &Digest) -> PromotionRow {
        PromotionRow {
            id: id.into(),
            repository_path: "team/app".into(),
            digest: digest.to_string(),
            source_stage: "dev".into(),
            target_stage: "staging".into(),
            tags: vec!["1.0".into()],
            channel: None,
            state: "evaluating".into(),
            requested_by: "rita".into(),
            requester: "{}".into(),
            approvals_required: 0,
            break_glass: None,
            last_decision: None,
            attestation: None,
            created_at: 0,
            expires_at: i64::MAX,
            decided_at: None,
        }
    }

    #[tokio::test]
    async fn a_promotion_decided_under_an_older_keyring_or_before_a_quarantine_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&dir.path().join("m.db"))
            .await
            .unwrap();
        let source = RepoName::from_str("dev/team/app").unwrap();
        let target = RepoName::from_str("staging/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        // The attestation stands in as another small image manifest held by the source.
        let attestation_digest = image(&meta, &source, "attestation").await;
        let stored = meta
            .manifest(&source, &attestation_digest)
            .await
            .unwrap()
            .unwrap();
        let write = |keyring_version| PromotionWrite {
            promotion_id: "prm_1".into(),
            source: source.clone(),
            target: target.clone(),
            digest: digest.clone(),
            tags: vec![Tag::from_str("1.0").unwrap()],
            channel: None,
            evidence: Vec::new(),
            attestation: NewManifest {
                digest: attestation_digest.clone(),
                parsed: ParsedManifest::parse(Some(MANIFEST), &stored.content).unwrap(),
                content: stored.content.clone(),
                new_blobs: Vec::new(),
                tag: None,
            },
            actor: "rita".into(),
            keyring_version,
        };
        meta.insert_promotion(&promotion("prm_1", &digest))
            .await
            .unwrap();
        // An anomaly quarantined the artifact after the decision: refused, nothing visible.
        let quarantine = airlock_core::Signal {
            rule: airlock_core::AnomalyRule::TamperedEvidence,
            key: format!("artifact:team/app@{digest}"),
            target: airlock_core::AnomalyTarget {
                repository: Some(source.clone()),
                digest: Some(digest.clone()),
                ..airlock_core::AnomalyTarget::default()
            },
            summary: "tampered".into(),
        };
        let tripwire = crate::Tripwire {
            threshold: 1,
            window_ms: 60_000,
            action: airlock_core::AnomalyAction::QuarantineArtifact,
        };
        let anomaly = meta
            .observe_signal(&quarantine, tripwire, now_millis())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            meta.promote(&write(0), &[]).await,
            Err(PromotionWriteError::QuarantinedMeanwhile)
        ));
        assert!(meta.manifest(&target, &digest).await.unwrap().is_none());
        meta.resolve_anomaly(
            anomaly.id,
            "false alarm",
            &airlock_core::Actor::system(),
            now_millis(),
        )
        .await
        .unwrap();
        // The decision read the evidence under another keyring version than the current one (a key
        // changed meanwhile): refused, and nothing becomes visible in the target.
        assert!(matches!(
            meta.promote(&write(-1), &[]).await,
            Err(PromotionWriteError::KeyringMoved)
        ));
        assert!(meta.manifest(&target, &digest).await.unwrap().is_none());
        assert_eq!(
            meta.promotion("prm_1").await.unwrap().unwrap().state,
            "evaluating"
        );
        // Decided under the current keyring: promoted, by rows only.
        meta.promote(&write(0), &[]).await.unwrap();
        assert!(meta.manifest(&target, &digest).await.unwrap().is_some());
        assert_eq!(
            meta.resolve_tag(&target, &Tag::from_str("1.0").unwrap())
                .await
                .unwrap(),
            Some(digest.clone())
        );
        assert_eq!(
            meta.promotion("prm_1").await.unwrap().unwrap().state,
            "promoted"
        );
    }

    #[tokio::test]
    async fn a_tag_another_promotion_took_is_refused_inside_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_sqlite(&dir.path().join("m.db"))
            .await
            .unwrap();
        let source = RepoName::from_str("dev/team/app").unwrap();
        let target = RepoName::from_str("staging/team/app").unwrap();
        let first = image(&meta, &source, "first").await;
        let second = image(&meta, &source, "second").await;
        let stored = meta.manifest(&source, &second).await.unwrap().unwrap();
        let write = |id: &str, digest: &Digest| PromotionWrite {
            promotion_id: id.into(),
            source: source.clone(),
            target: target.clone(),
            digest: digest.clone(),
            tags: vec![Tag::from_str("1.0").unwrap()],
            channel: None,
            evidence: Vec::new(),
            attestation: NewManifest {
                digest: second.clone(),
                parsed: ParsedManifest::parse(Some(MANIFEST), &stored.content).unwrap(),
                content: stored.content.clone(),
                new_blobs: Vec::new(),
                tag: None,
            },
            actor: "rita".into(),
            keyring_version: 0,
        };
        meta.insert_promotion(&promotion("prm_a", &first))
            .await
            .unwrap();
        meta.insert_promotion(&promotion("prm_b", &second))
            .await
            .unwrap();
        meta.promote(&write("prm_b", &second), &[]).await.unwrap();
        assert!(matches!(
            meta.promote(&write("prm_a", &first), &[]).await,
            Err(PromotionWriteError::TagTaken { .. })
        ));
        assert_eq!(
            meta.resolve_tag(&target, &Tag::from_str("1.0").unwrap())
                .await
                .unwrap(),
            Some(second)
        );
    }
}
