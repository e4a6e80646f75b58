//! The promotion transaction, as the list of its steps ([`Metadata::promote`]).
//!
//! Every step runs in the one write transaction `promote` holds, in the order listed there. A
//! step over the manifests the promotion carries (its closure: the artifact, the manifests an
//! index contains, the evidence carried with it) is one set-based statement per
//! [`LIST_CHUNK`] manifests, not one per manifest: on PostgreSQL each statement is a network round
//! trip made while every other writer waits for the write lock.

use airlock_core::{AuditEvent, AuditRecord, Digest, PromotionState, Signal, Tag};
use std::collections::HashSet;

use super::{NewManifest, PromotionWrite, PromotionWriteError, check_transition, set_tag};
use crate::anomalies::{AnomalyRow, Tripwire, anomaly_on, observe_signal_in};
use crate::audit::append;
use crate::engine::{Backend, SqlBuilder};
use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// The most manifests a promotion carries through index children (more are not followed).
const MAX_CLOSURE: usize = 10_000;

/// The most digests bound in one statement's `IN (...)` list: far below SQLite's limit of 32,766
/// bound parameters, so a statement never fails for its size.
const LIST_CHUNK: usize = 5_000;

/// A tag of the target the promotion set: the tag, the digest it names now, and the digest it
/// named before (`None`: a new tag).
type TagMove = (Tag, Digest, Option<Digest>);

impl Metadata {
    /// Promotes: in one transaction, checks the promotion is still `evaluating` under the
    /// write's claim (a cancel, a reopen or another claim meanwhile refuses it), makes the artifact
    /// and everything it carries visible in the target (rows only: manifests and blobs are
    /// shared), sets its tags and evidence tags, moves the channel tag (with history), adds the
    /// promotion attestation, marks the promotion `promoted` and appends `records`, then a
    /// `tag.moved` record for every tag of the target it created or moved.
    pub async fn promote(
        &self,
        write: &PromotionWrite,
        records: &[AuditRecord],
    ) -> Result<(), PromotionWriteError> {
        self.promote_observing(write, records, &[]).await?;
        Ok(())
    }

    /// [`Metadata::promote`], counting the anomaly `signals` the promotion gives (each with its
    /// rule's [`Tripwire`]) in the same transaction, after the promotion's own writes: a tripped
    /// rule's anomaly, action and audit entry commit with the promotion, and the promotion pays
    /// no write transaction of its own for them. A signal that cannot be stored fails the
    /// promotion (nothing is written). Returns the anomalies the signals raised.
    pub async fn promote_observing(
        &self,
        write: &PromotionWrite,
        records: &[AuditRecord],
        signals: &[(Signal, Tripwire)],
    ) -> Result<Vec<AnomalyRow>, PromotionWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let held = check_still_decided(&mut tx, write).await?;
        create_target_repository(&mut tx, write, now).await?;
        let closure = promotion_closure(&mut tx, write).await?;
        check_no_quarantine_since(&mut tx, write, &closure).await?;
        check_artifact_still_in_source(write, held)?;
        share_closure_into_target(&mut tx, write, &closure, now).await?;
        let mut moves = set_target_tags(&mut tx, write, now).await?;
        moves.extend(set_evidence_tags(&mut tx, write, now).await?);
        moves.extend(move_channel(&mut tx, write, now).await?);
        moves.extend(store_attestation(&mut tx, write, now).await?);
        copy_evidence_membership(&mut tx, write, &closure, now).await?;
        mark_promoted(&mut tx, write, now).await?;
        record_tag_moves(&mut tx, write, records, moves, now).await?;
        let mut raised = Vec::new();
        for (signal, tripwire) in signals {
            if let Some(id) = observe_signal_in(&mut tx, signal, *tripwire, now).await? {
                // Read before the commit: once the promotion is committed, nothing may fail it.
                raised.extend(anomaly_on(&mut tx, id).await?);
            }
        }
        tx.commit().await?;
        Ok(raised)
    }
}

/// What the promotion's checks read, in one statement: the promotion's state and claim, the
/// keyring version and whether the source still holds the artifact.
#[derive(sqlx::FromRow)]
struct DecidedFacts {
    state: PromotionState,
    claim: Option<String>,
    keyring: Option<i64>,
    held: i64,
}

/// Refuses unless the promotion is still `evaluating` under the write's claim and no key changed
/// since the decision read the evidence. Returns whether the source still holds the artifact
/// (checked by [`check_artifact_still_in_source`] after the quarantine check, read here to save
/// a statement).
async fn check_still_decided(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
) -> Result<bool, PromotionWriteError> {
    let facts: Option<DecidedFacts> = sqlx::query_as(
        "SELECT p.state, p.claim,
           (SELECT version FROM keyring_version WHERE id = 1) AS keyring,
           (SELECT COUNT(*) FROM repository_manifests WHERE repository = $2 AND digest = $3)
             AS held
         FROM promotions p WHERE p.id = $1",
    )
    .bind(&write.promotion_id)
    .bind(write.source.as_str())
    .bind(write.digest.to_string())
    .fetch_all(&mut *tx)
    .await
    .map_err(|err| StoreError::undecodable("promotions", err))?
    .into_iter()
    .next();
    let Some(facts) = facts else {
        return Err(PromotionWriteError::WrongState {
            id: write.promotion_id.clone(),
            state: None,
        });
    };
    check_transition(
        &write.promotion_id,
        facts.state,
        facts.claim.as_deref(),
        &[PromotionState::Evaluating],
        Some(&write.claim),
    )?;
    if facts.keyring.unwrap_or(0) != write.keyring_version {
        return Err(PromotionWriteError::KeyringMoved);
    }
    Ok(facts.held > 0)
}

/// Records the target repository, if it is new.
async fn create_target_repository(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(write.target.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The manifests the promotion carries: the artifact and, for an index, its children
/// (recursively, one statement per level, up to [`MAX_CLOSURE`]), plus the evidence manifests.
async fn promotion_closure(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
) -> Result<Vec<String>, sqlx::Error> {
    let mut closure = vec![write.digest.to_string()];
    let mut seen: HashSet<String> = closure.iter().cloned().collect();
    let mut level = 0..closure.len();
    'walk: while !level.is_empty() {
        let start = closure.len();
        for parents in closure[level.clone()].to_vec().chunks(LIST_CHUNK) {
            let mut children =
                SqlBuilder::new("SELECT DISTINCT child FROM manifest_references WHERE digest IN (");
            children
                .push_list(parents.iter().cloned())
                .push(") AND kind = 'manifest' ORDER BY child LIMIT ")
                .push_bind((MAX_CLOSURE + 1) as i64);
            let children: Vec<String> = children
                .build_query_scalar(Backend::of(tx))?
                .fetch_all(&mut *tx)
                .await?;
            for child in children {
                if seen.insert(child.clone()) {
                    closure.push(child);
                }
                if closure.len() > MAX_CLOSURE {
                    break 'walk;
                }
            }
        }
        level = start..closure.len();
    }
    for (manifest, _) in &write.evidence {
        let manifest = manifest.to_string();
        if seen.insert(manifest.clone()) {
            closure.push(manifest);
        }
    }
    Ok(closure)
}

/// Refuses if a quarantine was raised in this repository path since the decision (on the
/// artifact, what it carries, or an index that contains it): it is decided again.
async fn check_no_quarantine_since(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    closure: &[String],
) -> Result<(), PromotionWriteError> {
    let mut quarantined = SqlBuilder::new("WITH RECURSIVE up(d) AS (SELECT ");
    quarantined.push_bind(write.digest.to_string()).push(
        " COLLATE \"binary\" UNION SELECT r.digest FROM manifest_references r JOIN up ON r.child = up.d
              WHERE r.kind = 'manifest')
             SELECT COUNT(*) FROM artifact_quarantines
             WHERE (repository_path IS NULL OR repository_path = ",
    );
    quarantined
        .push_bind(write.source.path().to_string())
        .push(") AND (digest IN (SELECT d FROM up) OR digest IN (")
        .push_list(closure.iter().cloned())
        .push("))");
    let hits: i64 = quarantined
        .build_query_scalar(Backend::of(tx))?
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .next()
        .unwrap_or(0);
    if hits > 0 {
        return Err(PromotionWriteError::QuarantinedMeanwhile);
    }
    Ok(())
}

/// Refuses if retention pruned the artifact from the source since the decision read it: there
/// is nothing to make visible, and marking it promoted would be a lie. `held`: whether the
/// source holds it, read in this transaction by [`check_still_decided`].
fn check_artifact_still_in_source(
    write: &PromotionWrite,
    held: bool,
) -> Result<(), PromotionWriteError> {
    if !held {
        return Err(PromotionWriteError::ArtifactGone {
            source_repository: write.source.to_string(),
            digest: write.digest.to_string(),
        });
    }
    Ok(())
}

/// Makes every manifest of the closure the source holds, and the blobs they reference, visible
/// in the target (rows only: the bytes are shared).
async fn share_closure_into_target(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    closure: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    for manifests in closure.chunks(LIST_CHUNK) {
        let mut shared = SqlBuilder::new(
            "INSERT INTO repository_manifests (repository, digest, subject, created_at, pushed_by)
             SELECT ",
        );
        shared
            .push_bind(write.target.to_string())
            .push(", digest, subject, ")
            .push_bind(now)
            .push(", pushed_by FROM repository_manifests WHERE repository = ")
            .push_bind(write.source.to_string())
            .push(" AND digest IN (")
            .push_list(manifests.iter().cloned())
            .push(") ON CONFLICT DO NOTHING");
        shared.build(Backend::of(tx))?.execute(&mut *tx).await?;
        let mut blobs = SqlBuilder::new(
            "INSERT INTO repository_blobs (repository, digest, created_at) SELECT DISTINCT ",
        );
        blobs
            .push_bind(write.target.to_string())
            .push(", child, ")
            .push_bind(now)
            .push(" FROM manifest_references WHERE digest IN (")
            .push_list(manifests.iter().cloned())
            .push(") AND kind = 'blob' ON CONFLICT DO NOTHING");
        blobs.build(Backend::of(tx))?.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Points the requested tags at the artifact; refused if one already names another digest
/// (tags in gated stages are immutable; checked again here, since another promotion may have
/// taken the tag after this one was requested).
async fn set_target_tags(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    now: i64,
) -> Result<Vec<TagMove>, PromotionWriteError> {
    let target = write.target.as_str();
    let digest = write.digest.to_string();
    let mut moves = Vec::new();
    for tag in &write.tags {
        let previous = set_tag(tx, target, tag.as_str(), &digest, now).await?;
        // Refusing returns an error, which rolls the whole transaction back, this move included.
        if let Some(current) = &previous
            && *current != write.digest
        {
            return Err(PromotionWriteError::TagTaken {
                tag: tag.to_string(),
                digest: current.to_string(),
            });
        }
        moves.push((tag.clone(), write.digest.clone(), previous));
    }
    Ok(moves)
}

/// Points each carried evidence manifest's tag (cosign's tag scheme) at it in the target.
async fn set_evidence_tags(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    now: i64,
) -> Result<Vec<TagMove>, PromotionWriteError> {
    let mut moves = Vec::new();
    for (manifest, tag) in &write.evidence {
        if let Some(tag) = tag {
            let previous = set_tag(
                tx,
                write.target.as_str(),
                tag.as_str(),
                &manifest.to_string(),
                now,
            )
            .await?;
            moves.push((tag.clone(), manifest.clone(), previous));
        }
    }
    Ok(moves)
}

/// Moves the channel tag, if one is named, to the artifact, with its history entry.
async fn move_channel(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    now: i64,
) -> Result<Option<TagMove>, PromotionWriteError> {
    let Some(channel) = &write.channel else {
        return Ok(None);
    };
    let target = write.target.as_str();
    let digest = write.digest.to_string();
    let previous = set_tag(tx, target, channel.as_str(), &digest, now).await?;
    sqlx::query(
        "INSERT INTO channel_history (repository, tag, digest, promotion_id, action,
         moved_by, moved_at) VALUES ($1, $2, $3, $4, 'promote', $5, $6)",
    )
    .bind(target)
    .bind(channel.as_str())
    .bind(&digest)
    .bind(&write.promotion_id)
    .bind(&write.actor.principal)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(Some((channel.clone(), write.digest.clone(), previous)))
}

/// Stores the promotion attestation: a manifest with the artifact as subject, in the target
/// only, with its blobs and its tag.
async fn store_attestation(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    now: i64,
) -> Result<Option<TagMove>, PromotionWriteError> {
    let target = write.target.as_str();
    let NewManifest {
        digest,
        content,
        parsed,
        new_blobs,
        tag,
    } = &write.attestation;
    // One statement per table, whatever the number of blobs (a handful: the attestation's own
    // two and the layers it carries).
    if !new_blobs.is_empty() {
        let mut blobs = SqlBuilder::new("INSERT INTO blobs (digest, size, created_at) VALUES ");
        for (n, (blob, size)) in new_blobs.iter().enumerate() {
            blobs
                .push(if n == 0 { "(" } else { ", (" })
                .push_bind(blob.to_string())
                .push(", ")
                .push_bind(*size as i64)
                .push(", ")
                .push_bind(now)
                .push(")");
        }
        blobs.push(" ON CONFLICT DO NOTHING");
        blobs.build(Backend::of(tx))?.execute(&mut *tx).await?;
    }
    crate::metadata::insert_manifest_row(&mut *tx, digest, parsed, content, now).await?;
    if !parsed.blobs.is_empty() {
        let mut references =
            SqlBuilder::new("INSERT INTO manifest_references (digest, child, kind) VALUES ");
        let mut linked = SqlBuilder::new(
            "INSERT INTO repository_blobs (repository, digest, created_at) VALUES ",
        );
        for (n, blob) in parsed.blobs.iter().enumerate() {
            let open = if n == 0 { "(" } else { ", (" };
            references
                .push(open)
                .push_bind(digest.to_string())
                .push(", ")
                .push_bind(blob.to_string())
                .push(", 'blob')");
            linked
                .push(open)
                .push_bind(target.to_string())
                .push(", ")
                .push_bind(blob.to_string())
                .push(", ")
                .push_bind(now)
                .push(")");
        }
        references.push(" ON CONFLICT DO NOTHING");
        linked.push(" ON CONFLICT DO NOTHING");
        references.build(Backend::of(tx))?.execute(&mut *tx).await?;
        linked.build(Backend::of(tx))?.execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO repository_manifests
         (repository, digest, subject, created_at, pushed_by) VALUES ($1, $2, $3, $4, 'airlock') ON CONFLICT DO NOTHING",
    )
    .bind(target)
    .bind(digest.to_string())
    .bind(parsed.subject.as_ref().map(Digest::to_string))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let Some(tag) = tag else {
        return Ok(None);
    };
    let previous = set_tag(tx, target, tag.as_str(), &digest.to_string(), now).await?;
    Ok(Some((tag.clone(), digest.clone(), previous)))
}

/// Marks as evidence in the target what is evidence in the source, and the attestation: what
/// the promotion placed there carries no new evidence (evidence belongs to the path, and the
/// attestation is airlock's own).
async fn copy_evidence_membership(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    closure: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    for manifests in closure.chunks(LIST_CHUNK) {
        let mut evidence = SqlBuilder::new(
            "INSERT INTO evidence_manifests (repository, digest, ingested_at) SELECT ",
        );
        evidence
            .push_bind(write.target.to_string())
            .push(", digest, ")
            .push_bind(now)
            .push(" FROM evidence_manifests WHERE repository = ")
            .push_bind(write.source.to_string())
            .push(" AND digest IN (")
            .push_list(manifests.iter().cloned())
            .push(") ON CONFLICT DO NOTHING");
        evidence.build(Backend::of(tx))?.execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO evidence_manifests (repository, digest, ingested_at)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(write.target.as_str())
    .bind(write.attestation.digest.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves the promotion to `promoted`, naming its attestation, and releases its claim.
async fn mark_promoted(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE promotions SET state = $1, attestation = $2, decided_at = $3,
         evaluating_since = NULL, claim = NULL WHERE id = $4",
    )
    .bind(PromotionState::Promoted)
    .bind(write.attestation.digest.to_string())
    .bind(now)
    .bind(&write.promotion_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Appends `records`, then a `tag.moved` record for every tag of the target the promotion
/// created or moved (as a registry push records its tag): the evidence and attestation tags
/// too, not only the ones the request named.
async fn record_tag_moves(
    tx: &mut sqlx::AnyConnection,
    write: &PromotionWrite,
    records: &[AuditRecord],
    moves: Vec<TagMove>,
    now: i64,
) -> Result<(), PromotionWriteError> {
    let mut records = records.to_vec();
    for (tag, digest, previous) in moves {
        if previous.as_ref() == Some(&digest) {
            continue;
        }
        records.push(AuditRecord {
            time_millis: now,
            actor: write.actor.clone(),
            event: AuditEvent::TagMoved {
                repository: write.target.clone(),
                tag,
                digest,
                previous,
            },
        });
    }
    append(tx, &records).await?;
    Ok(())
}
