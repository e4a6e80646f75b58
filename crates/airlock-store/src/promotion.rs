//! Promotion storage: requests and their states, approvals, decision records, policy bundles by
//! digest, channel tag history, stage freezes, and the zero-copy promotion itself — one
//! transaction that makes an artifact, its referrers and its promotion attestation visible in the
//! target repository by adding rows, never bytes.
//!
//! A promotion in `evaluating` carries a claim: the decision that put it there (a new request, or
//! the approval that completed its set). Every change out of `evaluating` names the claim it
//! holds, so a decision whose promotion was meanwhile cancelled, reopened or claimed again can
//! neither decide nor promote it.

use airlock_core::{
    Actor, AuditRecord, Digest, ParsedManifest, PromotionState, RepoName, StageName, Tag,
};
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
    pub digest: Digest,
    /// Where it comes from.
    pub source_stage: StageName,
    /// Where it goes.
    pub target_stage: StageName,
    /// Tags to set in the target.
    pub tags: Vec<Tag>,
    /// Channel tag to move in the target.
    pub channel: Option<Tag>,
    /// Lifecycle state.
    pub state: PromotionState,
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
    /// When it last entered `evaluating` (ms), while it is there.
    pub evaluating_since: Option<i64>,
    /// The claim of the decision running it, while it is `evaluating`.
    pub claim: Option<String>,
}

/// A promotion's change of state after a decision, made only if it is in one of `from` and, when
/// it is `evaluating`, still holds `claim`.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The states it may be in.
    pub from: &'a [PromotionState],
    /// The state it moves to.
    pub to: PromotionState,
    /// The approvals it needs.
    pub required: u32,
    /// The claim the deciding caller holds (`None`: whatever the claim).
    pub claim: Option<&'a str>,
}

/// An approval.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChannelMove {
    /// The digest the tag was moved to.
    pub digest: Digest,
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FreezeRow {
    /// The stage.
    pub stage: StageName,
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
    /// The claim of the decision that allowed it: the promotion must still be `evaluating`
    /// under this claim (not cancelled, reopened or claimed by another decision meanwhile).
    pub claim: String,
    /// Who promotes (channel history, and the tag moves recorded in the audit log).
    pub actor: Actor,
}

/// Why a promotion write was refused.
#[derive(Debug, thiserror::Error)]
pub enum PromotionWriteError {
    /// Another live promotion of this artifact to this stage exists.
    #[error("promotion {0} of this artifact to this stage already exists")]
    Duplicate(String),
    /// The promotion is not in a state that allows the change.
    #[error("promotion {id} is {}", state.map_or("missing", PromotionState::as_str))]
    WrongState {
        /// The promotion.
        id: String,
        /// Its state (`None`: there is no such promotion).
        state: Option<PromotionState>,
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
    /// The artifact is no longer held by the source repository (retention pruned it after the
    /// decision read it), so there is nothing to make visible in the target.
    #[error(
        "{digest} is no longer in {source_repository} (garbage collection's retention pruned it); push it again and request a new promotion"
    )]
    ArtifactGone {
        /// The source repository.
        source_repository: String,
        /// The artifact.
        digest: String,
    },
    /// A channel tag moved meanwhile.
    #[error("the channel tag moved meanwhile; read it again")]
    ChannelMoved,
    /// The promotion is `evaluating` under another decision's claim: it was reopened (its
    /// decision stalled) and claimed again, so this decision may no longer decide it.
    #[error(
        "promotion {id} is being decided by another request (it was reopened after its decision stalled); look at airlock promotions show {id}"
    )]
    ClaimLost {
        /// The promotion.
        id: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PromotionWriteError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// Reads a promotion: every column through its type, so a stored value that does not parse is
/// [`StoreError::Corrupt`] naming the column and the value. `tags` is a JSON list of tags and
/// `approvals_required` an integer column, hence no derived mapping.
pub(crate) fn promotion_from_row(row: sqlx::any::AnyRow) -> Result<PromotionRow, StoreError> {
    let id: String = row.try_get("id")?;
    typed_promotion(&row).map_err(|err| match err {
        StoreError::Corrupt(what) => StoreError::Corrupt(format!("{what} (promotion {id})")),
        other => other,
    })
}

fn typed_promotion(row: &sqlx::any::AnyRow) -> Result<PromotionRow, StoreError> {
    let column = |err| StoreError::undecodable("promotions", err);
    let tags: String = row.try_get("tags").map_err(column)?;
    let approvals_required: i64 = row.try_get("approvals_required").map_err(column)?;
    Ok(PromotionRow {
        id: row.try_get("id").map_err(column)?,
        repository_path: row.try_get("repository_path").map_err(column)?,
        digest: row.try_get("digest").map_err(column)?,
        source_stage: row.try_get("source_stage").map_err(column)?,
        target_stage: row.try_get("target_stage").map_err(column)?,
        tags: parse_tags(&tags)?,
        channel: row.try_get("channel").map_err(column)?,
        state: row.try_get("state").map_err(column)?,
        requested_by: row.try_get("requested_by").map_err(column)?,
        requester: row.try_get("requester").map_err(column)?,
        approvals_required: u32::try_from(approvals_required).map_err(|_| {
            StoreError::Corrupt(format!(
                "promotions.approvals_required holds {approvals_required}, not a count"
            ))
        })?,
        break_glass: row.try_get("break_glass").map_err(column)?,
        last_decision: row.try_get("last_decision").map_err(column)?,
        attestation: row.try_get("attestation").map_err(column)?,
        created_at: row.try_get("created_at").map_err(column)?,
        expires_at: row.try_get("expires_at").map_err(column)?,
        decided_at: row.try_get("decided_at").map_err(column)?,
        evaluating_since: row.try_get("evaluating_since").map_err(column)?,
        claim: row.try_get("claim").map_err(column)?,
    })
}

/// `promotions.tags`: a JSON list of tags.
fn parse_tags(stored: &str) -> Result<Vec<Tag>, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("promotions.tags holds {stored:?}: {e}"))
    };
    serde_json::from_str::<Vec<String>>(stored)
        .map_err(|e| corrupt(&e))?
        .iter()
        .map(|tag| tag.parse::<Tag>().map_err(|e| corrupt(&e)))
        .collect()
}

fn decision_from_row(row: sqlx::any::AnyRow) -> DecisionRow {
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

/// Stores a decision record, after checking in the same transaction that the policy bundle it
/// was decided with is still the active one (another replica may have activated a new bundle
/// since): every decision, a promotion's or a rollback's, is recorded only under the bundle in use.
async fn insert_decision(
    tx: &mut sqlx::AnyConnection,
    decision: &DecisionRow,
) -> Result<(), StoreError> {
    crate::active_policy::check_decided_with_active(
        &mut *tx,
        &decision.bundle_digest,
        &decision.query,
    )
    .await?;
    sqlx::query(
        "INSERT INTO decisions (id, promotion_id, action, query, bundle_digest, input, result,
         allowed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    tx: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<PromotionState>, StoreError> {
    sqlx::query("SELECT state FROM promotions WHERE id = $1")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .first()
        .map(|row| row.try_get("state"))
        .transpose()
        .map_err(|err| StoreError::undecodable("promotions", err))
}

/// Checks that promotion `id` is in one of `from` and, if it is `evaluating` and `claim` is
/// given, that the claim is still that one. Returns its state.
async fn check_state(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    from: &[PromotionState],
    claim: Option<&str>,
) -> Result<PromotionState, PromotionWriteError> {
    let row: Option<(PromotionState, Option<String>)> =
        sqlx::query("SELECT state, claim FROM promotions WHERE id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .next()
            .map(|row| Ok((row.try_get("state")?, row.try_get("claim")?)))
            .transpose()
            .map_err(|err| StoreError::undecodable("promotions", err))?;
    let Some((state, current)) = row else {
        return Err(PromotionWriteError::WrongState {
            id: id.into(),
            state: None,
        });
    };
    check_transition(id, state, current.as_deref(), from, claim)?;
    Ok(state)
}

/// Checks that promotion `id`, in `state` under claim `current`, may move on from one of `from`
/// for the caller holding `claim` (see [`check_state`]).
fn check_transition(
    id: &str,
    state: PromotionState,
    current: Option<&str>,
    from: &[PromotionState],
    claim: Option<&str>,
) -> Result<(), PromotionWriteError> {
    if !from.contains(&state) {
        return Err(PromotionWriteError::WrongState {
            id: id.into(),
            state: Some(state),
        });
    }
    if state == PromotionState::Evaluating
        && let Some(claim) = claim
        && current != Some(claim)
    {
        return Err(PromotionWriteError::ClaimLost { id: id.into() });
    }
    Ok(())
}

/// Points `tag` of `repo` at `digest`; returns the digest it named before (`None`: new tag).
async fn set_tag(
    tx: &mut sqlx::AnyConnection,
    repo: &str,
    tag: &str,
    digest: &str,
    now: i64,
) -> Result<Option<Digest>, StoreError> {
    let previous = sqlx::query("SELECT digest FROM tags WHERE repository = $1 AND name = $2")
        .bind(repo)
        .bind(tag)
        .fetch_all(&mut *tx)
        .await?
        .first()
        .map(|row| row.try_get("digest"))
        .transpose()
        .map_err(|err| StoreError::undecodable("tags", err))?;
    sqlx::query(
        "INSERT INTO tags (repository, name, digest, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository, name) DO UPDATE SET digest = excluded.digest,
         updated_at = excluded.updated_at",
    )
    .bind(repo)
    .bind(tag)
    .bind(digest)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(previous)
}

/// Stores `row` as a new promotion, unless a live promotion (evaluating, pending or promoted) of
/// the same artifact to the same stage exists ([`PromotionWriteError::Duplicate`] with its id).
async fn insert_promotion_in(
    tx: &mut sqlx::AnyConnection,
    row: &PromotionRow,
) -> Result<(), PromotionWriteError> {
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM promotions WHERE repository_path = $1 AND digest = $2 AND target_stage = $3
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
    let tags = serde_json::to_string(&row.tags.iter().map(Tag::as_str).collect::<Vec<_>>())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO promotions (id, repository_path, digest, source_stage, target_stage, tags,
         channel, state, requested_by, requester, approvals_required, break_glass,
         created_at, expires_at, evaluating_since, claim)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&row.id)
    .bind(&row.repository_path)
    .bind(&row.digest)
    .bind(&row.source_stage)
    .bind(&row.target_stage)
    .bind(tags)
    .bind(&row.channel)
    .bind(row.state)
    .bind(&row.requested_by)
    .bind(&row.requester)
    .bind(row.approvals_required as i64)
    .bind(&row.break_glass)
    .bind(row.created_at)
    .bind(row.expires_at)
    .bind(row.evaluating_since)
    .bind(&row.claim)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves promotion `id` to `transition.to` after decision `decision_id` (its state already
/// checked): a final state records when it was decided, and only `evaluating` keeps the claim.
async fn apply_transition(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    decision_id: &str,
    transition: Transition<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let to = transition.to;
    let final_state = to.is_final();
    let still_claimed = to == PromotionState::Evaluating;
    sqlx::query(
        "UPDATE promotions SET state = $1, approvals_required = $2, last_decision = $3,
         decided_at = CASE WHEN $4 THEN $5 ELSE decided_at END,
         evaluating_since = CASE WHEN $6 THEN evaluating_since ELSE NULL END,
         claim = CASE WHEN $7 THEN claim ELSE NULL END WHERE id = $8",
    )
    .bind(to)
    .bind(transition.required as i64)
    .bind(decision_id)
    .bind(final_state)
    .bind(now)
    .bind(still_claimed)
    .bind(still_claimed)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a pending promotion to `evaluating` under `claim`, for its final decision.
async fn claim_for_decision(
    tx: &mut sqlx::AnyConnection,
    promotion_id: &str,
    claim: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE promotions SET state = 'evaluating', evaluating_since = $1, claim = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(claim)
    .bind(promotion_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Metadata {
    /// Stores a new promotion in state `evaluating` (claimed by `row.claim`, since
    /// `row.evaluating_since`). Refused with the existing id if a live promotion (evaluating,
    /// pending or promoted) of the same artifact to the same stage exists.
    pub async fn insert_promotion(&self, row: &PromotionRow) -> Result<(), PromotionWriteError> {
        let mut tx = self.begin_write().await?;
        insert_promotion_in(&mut tx, row).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new promotion together with its first decision, in one transaction: the
    /// promotion as [`Metadata::insert_promotion`] would (refused with the existing id if a live
    /// promotion of the same artifact to the same stage exists, so of concurrent identical
    /// requests exactly one is stored), then `transition` and the decision record with `records`
    /// as [`Metadata::record_decision`] would. Returns the audit log index of the first record.
    /// Nothing is stored unless all of it is.
    pub async fn insert_decided_promotion(
        &self,
        row: &PromotionRow,
        decision: &DecisionRow,
        transition: Transition<'_>,
        records: &[AuditRecord],
    ) -> Result<Option<u64>, PromotionWriteError> {
        // The promotion's state is the row's own until this transaction stores it: the
        // transition's state check needs no read.
        check_transition(
            &row.id,
            row.state,
            row.claim.as_deref(),
            transition.from,
            transition.claim,
        )?;
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        insert_promotion_in(&mut tx, row).await?;
        apply_transition(&mut tx, &row.id, &decision.id, transition, now).await?;
        insert_decision(&mut tx, decision).await?;
        let index = append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(index)
    }

    /// One promotion.
    pub async fn promotion(&self, id: &str) -> Result<Option<PromotionRow>, StoreError> {
        sqlx::query("SELECT * FROM promotions WHERE id = $1")
            .bind(id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .map(promotion_from_row)
            .transpose()
    }

    /// Every promotion of one artifact (any stage), oldest first: its history.
    pub async fn promotions_of(
        &self,
        repository_path: &str,
        digest: &str,
    ) -> Result<Vec<PromotionRow>, StoreError> {
        sqlx::query(
            "SELECT * FROM promotions WHERE repository_path = $1 AND digest = $2
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
        Ok(sqlx::query_as(
            "SELECT principal, comment, created_at FROM approvals WHERE promotion_id = $1
             ORDER BY created_at, principal",
        )
        .bind(promotion_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records a decision and makes the promotion's (if any) `transition`, appending `records`,
    /// in one transaction. Returns the audit log index of the first record.
    pub async fn record_decision(
        &self,
        decision: &DecisionRow,
        transition: Option<Transition<'_>>,
        records: &[AuditRecord],
    ) -> Result<Option<u64>, PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        if let (Some(id), Some(transition)) = (&decision.promotion_id, transition) {
            check_state(&mut tx, id, transition.from, transition.claim).await?;
            apply_transition(&mut tx, id, &decision.id, transition, now).await?;
        }
        insert_decision(&mut tx, decision).await?;
        let index = append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(index)
    }

    /// Adds an approval to a pending promotion; returns the approvals now recorded and whether
    /// they complete the set (then the promotion is `evaluating`, claimed by this caller under
    /// `claim`).
    pub async fn add_approval(
        &self,
        promotion_id: &str,
        principal: &str,
        comment: Option<&str>,
        claim: &str,
        records: &[AuditRecord],
    ) -> Result<(u32, bool), PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let state = current_state(&mut tx, promotion_id).await?;
        if state != Some(PromotionState::PendingApproval) {
            return Err(PromotionWriteError::WrongState {
                id: promotion_id.into(),
                state,
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO approvals (promotion_id, principal, comment, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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
            sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE promotion_id = $1")
                .bind(promotion_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .unwrap_or(0);
        // The approval that completes the set claims the promotion for its final decision, in
        // the same transaction: concurrent approvals after it find it no longer pending.
        let required: i64 =
            sqlx::query_scalar("SELECT approvals_required FROM promotions WHERE id = $1")
                .bind(promotion_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .unwrap_or(0);
        let complete = count >= required;
        if complete {
            claim_for_decision(&mut tx, promotion_id, claim, now).await?;
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok((count as u32, complete))
    }

    /// Claims a pending promotion whose approvals already complete its set (one that was reopened
    /// after its final decision could not be made) for a new final decision under `claim`.
    /// Returns whether it was claimed (`false`: approvals are still missing).
    pub async fn claim_approved(
        &self,
        promotion_id: &str,
        claim: &str,
    ) -> Result<bool, PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        check_state(
            &mut tx,
            promotion_id,
            &[PromotionState::PendingApproval],
            None,
        )
        .await?;
        let complete: Vec<i64> = sqlx::query_scalar(
            "SELECT 1 FROM promotions p WHERE id = $1 AND
             (SELECT COUNT(*) FROM approvals a WHERE a.promotion_id = p.id) >= p.approvals_required",
        )
        .bind(promotion_id)
        .fetch_all(&mut *tx)
        .await?;
        if complete.is_empty() {
            return Ok(false);
        }
        claim_for_decision(&mut tx, promotion_id, claim, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Puts a claimed promotion (`evaluating`) back to `pending_approval` with its approvals,
    /// when its final decision could not be made or stalled. Only if it is still `evaluating`
    /// and, when `claim` is given, still under that claim; `records` are appended only then.
    /// Returns whether it was reopened.
    pub async fn reopen_promotion(
        &self,
        id: &str,
        claim: Option<&str>,
        records: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let reopened = sqlx::query(
            "UPDATE promotions SET state = 'pending_approval', evaluating_since = NULL,
             claim = NULL WHERE id = $1 AND state = 'evaluating' AND ($2 IS NULL OR claim = $3)",
        )
        .bind(id)
        .bind(claim)
        .bind(claim)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if reopened > 0 {
            append(&mut tx, records).await?;
        }
        tx.commit().await?;
        Ok(reopened > 0)
    }

    /// Moves a promotion from one of `from` to the final state `to` (expired, cancelled, denied)
    /// with its audit records. An `evaluating` promotion must still hold `claim`, when given
    /// (`None` closes it whatever decision runs it: that decision can then no longer promote).
    pub async fn close_promotion(
        &self,
        id: &str,
        from: &[PromotionState],
        to: PromotionState,
        claim: Option<&str>,
        records: &[AuditRecord],
    ) -> Result<(), PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        check_state(&mut tx, id, from, claim).await?;
        sqlx::query(
            "UPDATE promotions SET state = $1, decided_at = $2, evaluating_since = NULL,
             claim = NULL WHERE id = $3",
        )
        .bind(to)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Promotions `evaluating` since `cutoff` or earlier: their decision stalled (the process
    /// running it stopped, or it hangs), oldest first. Each is read on its own: one whose stored
    /// values do not parse is an error in its place (naming it), so a sweep can go on with the
    /// others.
    pub async fn stalled_promotions(
        &self,
        cutoff: i64,
    ) -> Result<Vec<Result<PromotionRow, StoreError>>, StoreError> {
        Ok(sqlx::query(
            "SELECT * FROM promotions WHERE state = 'evaluating'
             AND COALESCE(evaluating_since, created_at) <= $1 ORDER BY evaluating_since",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(promotion_from_row)
        .collect())
    }

    /// Pending promotions whose approvals expired at `now`, each read on its own (as
    /// [`Metadata::stalled_promotions`]).
    pub async fn expired_promotions(
        &self,
        now: i64,
    ) -> Result<Vec<Result<PromotionRow, StoreError>>, StoreError> {
        Ok(sqlx::query(
            "SELECT * FROM promotions WHERE state IN ('pending_approval', 'evaluating')
             AND expires_at <= $1 ORDER BY expires_at",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(promotion_from_row)
        .collect())
    }

    /// Who pushed `digest` into `repo`.
    pub async fn pushed_by(&self, repo: &str, digest: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT pushed_by FROM repository_manifests WHERE repository = $1 AND digest = $2",
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
            "SELECT created_at FROM repository_manifests WHERE repository = $1 AND digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .next())
    }

    /// Stores a policy bundle's files under its digest (idempotent). Returns whether this call
    /// stored them (`false`: already stored, perhaps by another replica starting at once).
    pub async fn save_bundle(&self, digest: &str, files_json: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO policy_bundles (digest, files, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(files_json)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted > 0)
    }

    /// A stored bundle's files (JSON), by digest.
    pub async fn bundle_files(&self, digest: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT files FROM policy_bundles WHERE digest = $1")
                .bind(digest)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .next(),
        )
    }

    /// A decision record.
    pub async fn decision(&self, id: &str) -> Result<Option<DecisionRow>, StoreError> {
        Ok(sqlx::query("SELECT * FROM decisions WHERE id = $1")
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
        sqlx::query_as(
            "SELECT digest, promotion_id, action, moved_by, moved_at FROM channel_history
             WHERE repository = $1 AND tag = $2 ORDER BY id",
        )
        .bind(repo)
        .bind(tag)
        .fetch_all(self.pool())
        .await
        .map_err(|err| StoreError::undecodable("channel_history", err))
    }

    /// The freeze on `stage`, if any.
    pub async fn freeze(&self, stage: &str) -> Result<Option<FreezeRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT stage, reason, frozen_by, frozen_at, anomaly_id FROM stage_freezes WHERE stage = $1",
        )
        .bind(stage)
        .fetch_all(self.pool())
        .await
        .map_err(|err| StoreError::undecodable("stage_freezes", err))?
        .into_iter()
        .next())
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
                "INSERT INTO stage_freezes (stage, reason, frozen_by, frozen_at) VALUES ($1, $2, $3, $4)
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
            None => sqlx::query("DELETE FROM stage_freezes WHERE stage = $1 AND anomaly_id IS NULL")
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
            sqlx::query_scalar("SELECT digest FROM tags WHERE repository = $1 AND name = $2")
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
             moved_at) VALUES ($1, $2, $3, NULL, 'rollback', $4, $5)",
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
}

mod promote;

#[cfg(test)]
mod closure_tests;
#[cfg(test)]
mod deploy_tests;
#[cfg(test)]
mod row_tests;
#[cfg(test)]
mod tests;
