//! Store tests of the promotion transaction and its guards.

use std::str::FromStr;

use super::*;
use crate::metadata::ManifestUpload;

pub(super) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A stored image `repo@digest` with one config blob; returns its digest.
pub(super) async fn image(meta: &Metadata, repo: &RepoName, seed: &str) -> Digest {
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

pub(super) fn promotion(id: &str, digest: &Digest) -> PromotionRow {
    PromotionRow {
        id: id.into(),
        repository_path: "team/app".into(),
        digest: digest.clone(),
        source_stage: "dev".parse().unwrap(),
        target_stage: "staging".parse().unwrap(),
        tags: vec!["1.0".parse().unwrap()],
        channel: None,
        state: airlock_core::PromotionState::Evaluating,
        requested_by: "rita".into(),
        requester: "{}".into(),
        approvals_required: 0,
        break_glass: None,
        last_decision: None,
        attestation: None,
        created_at: 0,
        expires_at: i64::MAX,
        decided_at: None,
        evaluating_since: Some(0),
        claim: Some(format!("claim-{id}")),
    }
}

#[tokio::test]
async fn a_promotion_decided_under_an_older_keyring_or_before_a_quarantine_is_refused() {
    for meta in crate::testing::engines().await {
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
            claim: "claim-prm_1".into(),
            actor: airlock_core::Actor::system(),
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
            PromotionState::Evaluating
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
            PromotionState::Promoted
        );
    }
}

#[tokio::test]
async fn a_tag_another_promotion_took_is_refused_inside_the_transaction() {
    for meta in crate::testing::engines().await {
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
            claim: format!("claim-{id}"),
            actor: airlock_core::Actor::system(),
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

/// A write promoting `digest` from dev to staging under `claim`, with `attestation` (another
/// stored image standing in) tagged `att_tag` in the target.
pub(super) async fn write_for(
    meta: &Metadata,
    id: &str,
    digest: &Digest,
    attestation: &Digest,
    claim: &str,
    att_tag: Option<Tag>,
) -> PromotionWrite {
    let source = RepoName::from_str("dev/team/app").unwrap();
    let stored = meta.manifest(&source, attestation).await.unwrap().unwrap();
    PromotionWrite {
        promotion_id: id.into(),
        source,
        target: RepoName::from_str("staging/team/app").unwrap(),
        digest: digest.clone(),
        tags: vec![Tag::from_str("1.0").unwrap()],
        channel: None,
        evidence: Vec::new(),
        attestation: NewManifest {
            digest: attestation.clone(),
            parsed: ParsedManifest::parse(Some(MANIFEST), &stored.content).unwrap(),
            content: stored.content.clone(),
            new_blobs: Vec::new(),
            tag: att_tag,
        },
        claim: claim.into(),
        actor: airlock_core::Actor::system(),
        keyring_version: 0,
    }
}

#[tokio::test]
async fn only_the_decision_holding_the_claim_promotes_and_a_cancel_stops_it() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let target = RepoName::from_str("staging/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        let attestation = image(&meta, &source, "attestation").await;
        let mut row = promotion("prm_1", &digest);
        row.approvals_required = 1;
        meta.insert_promotion(&row).await.unwrap();
        // The first decision leaves it pending; the approval that completes the set claims it.
        let decision = |id: &str| DecisionRow {
            id: id.into(),
            promotion_id: Some("prm_1".into()),
            action: "promote".into(),
            query: "q".into(),
            bundle_digest: "b".into(),
            input: "{}".into(),
            result: "{}".into(),
            allowed: true,
            created_at: 0,
        };
        let to_pending = Transition {
            from: &[PromotionState::Evaluating],
            to: PromotionState::PendingApproval,
            required: 1,
            claim: Some("claim-prm_1"),
        };
        meta.record_decision(&decision("dec_1"), Some(to_pending), &[])
            .await
            .unwrap();
        let (_, complete) = meta
            .add_approval("prm_1", "ann", None, "claim-a", &[])
            .await
            .unwrap();
        assert!(complete);
        let claimed = meta.promotion("prm_1").await.unwrap().unwrap();
        assert_eq!(claimed.state, PromotionState::Evaluating);
        assert_eq!(claimed.claim.as_deref(), Some("claim-a"));
        assert!(claimed.evaluating_since.is_some());

        // Reopened (its decision stalled) and claimed again: the first decision holds a stale claim.
        assert!(
            meta.reopen_promotion("prm_1", Some("claim-a"), &[])
                .await
                .unwrap()
        );
        assert!(
            !meta
                .reopen_promotion("prm_1", Some("claim-a"), &[])
                .await
                .unwrap()
        );
        assert!(meta.claim_approved("prm_1", "claim-b").await.unwrap());
        let stale = write_for(&meta, "prm_1", &digest, &attestation, "claim-a", None).await;
        assert!(matches!(
            meta.promote(&stale, &[]).await,
            Err(PromotionWriteError::ClaimLost { .. })
        ));
        let stale_decision = Transition {
            from: &[PromotionState::Evaluating],
            to: PromotionState::Evaluating,
            required: 1,
            claim: Some("claim-a"),
        };
        assert!(matches!(
            meta.record_decision(&decision("dec_2"), Some(stale_decision), &[])
                .await,
            Err(PromotionWriteError::ClaimLost { .. })
        ));
        assert!(matches!(
            meta.close_promotion(
                "prm_1",
                &[PromotionState::Evaluating],
                PromotionState::Cancelled,
                Some("claim-a"),
                &[]
            )
            .await,
            Err(PromotionWriteError::ClaimLost { .. })
        ));

        // An access-admin cancels it while claim-b's decision runs: that decision cannot promote.
        meta.close_promotion(
            "prm_1",
            &[PromotionState::PendingApproval, PromotionState::Evaluating],
            PromotionState::Cancelled,
            None,
            &[],
        )
        .await
        .unwrap();
        let current = write_for(&meta, "prm_1", &digest, &attestation, "claim-b", None).await;
        assert!(matches!(
            meta.promote(&current, &[]).await,
            Err(PromotionWriteError::WrongState { ref state, .. }) if *state == Some(PromotionState::Cancelled)
        ));
        assert!(meta.manifest(&target, &digest).await.unwrap().is_none());
        let closed = meta.promotion("prm_1").await.unwrap().unwrap();
        assert_eq!((closed.state.as_str(), closed.claim), ("cancelled", None));
    }
}

#[tokio::test]
async fn stalled_promotions_are_those_evaluating_since_the_cutoff() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let old = image(&meta, &source, "old").await;
        let new = image(&meta, &source, "new").await;
        let mut stalled = promotion("prm_old", &old);
        stalled.evaluating_since = Some(1_000);
        let mut running = promotion("prm_new", &new);
        running.evaluating_since = Some(5_000);
        meta.insert_promotion(&stalled).await.unwrap();
        meta.insert_promotion(&running).await.unwrap();
        let found: Vec<String> = meta
            .stalled_promotions(2_000)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.unwrap().id)
            .collect();
        assert_eq!(found, ["prm_old"]);
    }
}

#[tokio::test]
async fn every_tag_a_promotion_sets_in_the_target_is_recorded_as_a_tag_move() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        let attestation = image(&meta, &source, "attestation").await;
        meta.insert_promotion(&promotion("prm_1", &digest))
            .await
            .unwrap();
        let att_tag = Tag::from_str(&format!("sha256-{}.att", digest.hex())).unwrap();
        let write = write_for(
            &meta,
            "prm_1",
            &digest,
            &attestation,
            "claim-prm_1",
            Some(att_tag.clone()),
        )
        .await;
        let before = meta.audit_entry_count().await.unwrap();
        meta.promote(&write, &[]).await.unwrap();
        let entries = meta.audit_entries(before, before + 10).await.unwrap();
        let moves: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| serde_json::from_slice::<serde_json::Value>(&e.entry).unwrap())
            .filter(|e| e["type"] == "tag.moved")
            .collect();
        let tags: Vec<&str> = moves
            .iter()
            .map(|e| e["subject"]["tag"].as_str().unwrap())
            .collect();
        assert_eq!(tags, ["1.0", att_tag.as_str()], "{moves:#?}");
        assert_eq!(moves[0]["subject"]["repository"], "staging/team/app");
        assert_eq!(moves[1]["details"]["digest"], attestation.to_string());
        assert_eq!(moves[1]["details"]["previous"], serde_json::Value::Null);
    }
}

/// Migration 0017 applied to a database at 0016 with decision records in it keeps them, and a
/// `reject` record (an approver's rejection) can be stored afterwards; other actions stay refused.
#[tokio::test]
async fn migration_0017_applies_over_a_populated_0016_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        crate::metadata::migrator(crate::Backend::Sqlite)
            .run_to(16, &pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO decisions (id, promotion_id, action, query, bundle_digest, input, result, allowed, created_at)
             VALUES ('dec_old', 'prm_old', 'promote', 'data.airlock.gates.prod', 'sha256:b', '{}', '{\"allowed\":true}', 1, 7)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let refused = sqlx::query(
            "INSERT INTO decisions (id, promotion_id, action, query, bundle_digest, input, result, allowed, created_at)
             VALUES ('dec_r', 'prm_old', 'reject', '', 'sha256:b', '{}', '{}', 0, 8)",
        )
        .execute(&pool)
        .await;
        assert!(refused.is_err(), "0016 refuses reject records");
        pool.close().await;
    }
    let meta = Metadata::open_sqlite(&path).await.unwrap();
    let old = meta.decision("dec_old").await.unwrap().unwrap();
    assert_eq!(
        (old.action.as_str(), old.allowed, old.created_at),
        ("promote", true, 7)
    );
    let rejection = DecisionRow {
        id: "dec_reject".into(),
        promotion_id: Some("prm_old".into()),
        action: "reject".into(),
        query: String::new(),
        bundle_digest: "sha256:b".into(),
        input: "{\"rejected_by\":\"alice\"}".into(),
        result: "{\"allowed\":false}".into(),
        allowed: false,
        created_at: 9,
    };
    meta.record_decision(&rejection, None, &[]).await.unwrap();
    assert_eq!(
        meta.decision("dec_reject").await.unwrap().unwrap().action,
        "reject"
    );
    let mut other = rejection.clone();
    other.id = "dec_other".into();
    other.action = "veto".into();
    assert!(meta.record_decision(&other, None, &[]).await.is_err());
}

/// A promotion whose artifact left the source meanwhile (pruned by retention between the
/// decision and the write) is refused: nothing is marked promoted without its artifact.
#[tokio::test]
async fn a_promotion_whose_artifact_left_the_source_is_refused() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let target = RepoName::from_str("staging/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        let attestation_digest = image(&meta, &source, "attestation").await;
        let stored = meta
            .manifest(&source, &attestation_digest)
            .await
            .unwrap()
            .unwrap();
        let write = PromotionWrite {
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
            claim: "claim-prm_1".into(),
            actor: airlock_core::Actor::system(),
            keyring_version: 0,
        };
        meta.insert_promotion(&promotion("prm_1", &digest))
            .await
            .unwrap();
        sqlx::query("DELETE FROM repository_manifests WHERE repository = $1 AND digest = $2")
            .bind(source.as_str())
            .bind(digest.to_string())
            .execute(meta.pool())
            .await
            .unwrap();
        let refused = meta.promote(&write, &[]).await;
        assert!(
            matches!(refused, Err(PromotionWriteError::ArtifactGone { .. })),
            "{refused:?}"
        );
        assert!(meta.manifest(&target, &digest).await.unwrap().is_none());
        assert_eq!(
            meta.resolve_tag(&target, &Tag::from_str("1.0").unwrap())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            meta.promotion("prm_1").await.unwrap().unwrap().state,
            PromotionState::Evaluating
        );
    }
}

/// A decision record for promotion `promotion`, evaluated with `bundle`.
fn decision(id: &str, promotion: &str, bundle: &str, allowed: bool) -> DecisionRow {
    DecisionRow {
        id: id.into(),
        promotion_id: Some(promotion.into()),
        action: "promote".into(),
        query: "data.airlock.gates.staging".into(),
        bundle_digest: bundle.into(),
        input: "{}".into(),
        result: "{}".into(),
        allowed,
        created_at: 0,
    }
}

/// The `promotion.decided` entry of `row`'s decision `decision`.
fn decided_entry(row: &PromotionRow, decision: &str, state: &str) -> AuditRecord {
    AuditRecord {
        time_millis: 0,
        actor: airlock_core::Actor::system(),
        event: airlock_core::AuditEvent::PromotionDecided {
            promotion: row.id.clone(),
            repository: RepoName::from_str("staging/team/app").unwrap(),
            digest: row.digest.clone(),
            state: state.into(),
            decision: decision.into(),
            policy: "sha256:active".into(),
            rules: Vec::new(),
            approvals_required: 0,
        },
    }
}

/// A new request is stored with its first decision in one transaction: all of it (the
/// promotion in its decided state, the decision record, the audit entry) or none of it, and of
/// two identical requests only the first.
#[tokio::test]
async fn a_request_is_stored_with_its_first_decision_or_not_at_all() {
    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        meta.activate_bundle("sha256:active").await.unwrap();
        let entries_before = meta.audit_entry_count().await.unwrap();
        let row = promotion("prm_1", &digest);
        let allowed = Transition {
            from: &[PromotionState::Evaluating],
            to: PromotionState::Evaluating,
            required: 0,
            claim: row.claim.as_deref(),
        };

        // Decided with a bundle that is no longer the one in use: refused after the promotion's
        // insert in the same transaction, which leaves nothing behind.
        let refused = meta
            .insert_decided_promotion(
                &row,
                &decision("dec_0", "prm_1", "sha256:old", true),
                allowed,
                &[decided_entry(&row, "dec_0", "allowed")],
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(PromotionWriteError::Store(StoreError::PolicyMoved { .. }))
            ),
            "{refused:?}"
        );
        assert_eq!(meta.promotion("prm_1").await.unwrap(), None);
        assert_eq!(meta.decision("dec_0").await.unwrap(), None);
        assert_eq!(meta.audit_entry_count().await.unwrap(), entries_before);

        // With the bundle in use: stored, still `evaluating` under its claim for the promotion
        // transaction, with its decision and entry.
        let index = meta
            .insert_decided_promotion(
                &row,
                &decision("dec_1", "prm_1", "sha256:active", true),
                allowed,
                &[decided_entry(&row, "dec_1", "allowed")],
            )
            .await
            .unwrap();
        assert_eq!(index, Some(entries_before));
        let stored = meta.promotion("prm_1").await.unwrap().unwrap();
        assert_eq!(stored.state, PromotionState::Evaluating);
        assert_eq!(stored.claim.as_deref(), Some("claim-prm_1"));
        assert_eq!(stored.last_decision.as_deref(), Some("dec_1"));
        assert!(meta.decision("dec_1").await.unwrap().is_some());
        assert_eq!(meta.audit_entry_count().await.unwrap(), entries_before + 1);

        // An identical request (same artifact, same stage) is refused naming the first, and
        // records nothing.
        let twin = promotion("prm_2", &digest);
        let duplicate = meta
            .insert_decided_promotion(
                &twin,
                &decision("dec_2", "prm_2", "sha256:active", true),
                Transition {
                    claim: twin.claim.as_deref(),
                    ..allowed
                },
                &[decided_entry(&twin, "dec_2", "allowed")],
            )
            .await;
        assert!(
            matches!(&duplicate, Err(PromotionWriteError::Duplicate(id)) if id == "prm_1"),
            "{duplicate:?}"
        );
        assert_eq!(meta.promotion("prm_2").await.unwrap(), None);
        assert_eq!(meta.decision("dec_2").await.unwrap(), None);
        assert_eq!(meta.audit_entry_count().await.unwrap(), entries_before + 1);

        // A denial of another artifact is stored final: decided, its claim released.
        let other = image(&meta, &source, "other").await;
        let denied_row = promotion("prm_3", &other);
        meta.insert_decided_promotion(
            &denied_row,
            &decision("dec_3", "prm_3", "sha256:active", false),
            Transition {
                to: PromotionState::Denied,
                claim: denied_row.claim.as_deref(),
                ..allowed
            },
            &[decided_entry(&denied_row, "dec_3", "denied")],
        )
        .await
        .unwrap();
        let denied = meta.promotion("prm_3").await.unwrap().unwrap();
        assert_eq!(denied.state, PromotionState::Denied);
        assert_eq!(denied.claim, None);
        assert_eq!(denied.evaluating_since, None);
        assert!(denied.decided_at.is_some());
    }
}

/// The signals a promotion gives count in its own transaction: a rule that trips raises its
/// anomaly, takes its action and appends `anomaly.detected` after the promotion's entries, all
/// committed with it; a promotion refused writes no signal either.
#[tokio::test]
async fn a_promotions_signals_count_in_its_transaction_and_not_when_it_is_refused() {
    use airlock_core::{AnomalyAction, AnomalyRule, AnomalyTarget, Signal};

    use crate::anomalies::Tripwire;

    for meta in crate::testing::engines().await {
        let source = RepoName::from_str("dev/team/app").unwrap();
        let digest = image(&meta, &source, "artifact").await;
        let attestation = image(&meta, &source, "attestation").await;
        meta.insert_promotion(&promotion("prm_1", &digest))
            .await
            .unwrap();
        let burst = Signal {
            rule: AnomalyRule::PromotionBurst,
            key: "stage:staging".into(),
            target: AnomalyTarget {
                stage: Some("staging".into()),
                ..AnomalyTarget::default()
            },
            summary: "a burst".into(),
        };
        let tripwire = Tripwire {
            threshold: 1,
            window_ms: 60_000,
            action: AnomalyAction::FreezeStage,
        };
        let signals = [(burst, tripwire)];
        // Under a claim it does not hold the promotion is refused: no signal is counted.
        let stale = write_for(&meta, "prm_1", &digest, &attestation, "other", None).await;
        assert!(matches!(
            meta.promote_observing(&stale, &[], &signals).await,
            Err(PromotionWriteError::ClaimLost { .. })
        ));
        assert!(meta.anomalies(None, None, 10).await.unwrap().is_empty());
        let write = write_for(&meta, "prm_1", &digest, &attestation, "claim-prm_1", None).await;
        let before = meta.audit_entry_count().await.unwrap();
        let raised = meta.promote_observing(&write, &[], &signals).await.unwrap();
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].rule, AnomalyRule::PromotionBurst);
        assert!(raised[0].applied);
        let freeze = meta.freeze("staging").await.unwrap().unwrap();
        assert!(freeze.reason.contains("a burst"), "{}", freeze.reason);
        let kinds: Vec<String> = meta
            .audit_entries(before, before + 10)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                serde_json::from_slice::<serde_json::Value>(&e.entry).unwrap()["type"].to_string()
            })
            .collect();
        assert!(
            kinds.iter().any(|k| k.contains("tag.moved"))
                && kinds.iter().any(|k| k.contains("anomaly.detected")),
            "{kinds:?}"
        );
        assert_eq!(
            meta.promotion("prm_1").await.unwrap().unwrap().state,
            airlock_core::PromotionState::Promoted
        );
    }
}
