//! The policy input document (version 1, documented in docs/policy.md): everything a gate may
//! look at, built from stored facts only, so a decision can be replayed from the stored input.

use airlock_core::audit::rfc3339_millis;
use airlock_core::{Digest, ParsedManifest, RepoName, Tag};
use airlock_store::{
    ApprovalRow, EvidenceRow, PromotionRow, StoreError, StoredManifest, now_millis,
};
use airlock_trust::dependencies::DependencyHealth;
use airlock_trust::facts::Facts;
use airlock_trust::facts::rebuilds::Rebuilds;
use serde_json::{Value, json};

use super::{Caller, PromotionService, Result};

/// The requester part of the input, also stored with the promotion.
pub(super) fn requester_json(caller: &Caller) -> Value {
    let roles: Vec<Value> = caller
        .who
        .as_ref()
        .map(|w| {
            w.grants
                .iter()
                .filter(|g| g.is_active(now_millis()))
                .map(|g| json!({"role": g.role.to_string(), "scope": g.scope.to_string()}))
                .collect()
        })
        .unwrap_or_default();
    let source = caller
        .actor
        .source
        .as_deref()
        .map(|s| s.rsplit_once(':').map_or(s, |(host, _)| host).to_string());
    json!({
        "principal": caller.actor.principal,
        "roles": roles,
        "auth_method": caller.actor.auth_method,
        "source": source,
    })
}

/// The `evidence` object: verified items by kind, with their derived facts (and, for an SBOM, the
/// dependency-health summary of its components); rejected ones apart.
fn evidence_json(rows: &[EvidenceRow], key_scopes: &[(String, Vec<String>)]) -> Value {
    let mut signatures = Vec::new();
    let mut attestations = Vec::new();
    let mut provenance = Vec::new();
    // Each verified provenance with the key that signed it, for the rebuild agreement.
    let mut builds: Vec<(airlock_trust::facts::Provenance, String)> = Vec::new();
    let mut sboms = Vec::new();
    let mut vulnerabilities = Vec::new();
    let mut tests = Vec::new();
    let mut scorecards = Vec::new();
    let mut rejected = Vec::new();
    for row in rows {
        let verdict = &row.verdict;
        let key = verdict.key_name.clone();
        if verdict.status != "verified" {
            rejected.push(
                json!({"reason_code": verdict.reason_code, "reason": verdict.reason, "key": key}),
            );
            continue;
        }
        match verdict.kind.as_deref() {
            Some("signature") => {
                let scope = key_scopes
                    .iter()
                    .find(|(name, _)| Some(name) == key.as_ref())
                    .map(|(_, scope)| scope.clone())
                    .unwrap_or_default();
                signatures.push(
                    json!({"key": key, "key_id": verdict.key_id, "key_scope": scope,
                    "format": row.origin.format, "source": row.origin.source}),
                );
            }
            Some("attestation") => {
                attestations.push(json!({"key": key, "predicate_type": verdict.predicate_type}));
                // Facts that do not read back as what airlock stores are left out: the gate
                // then sees the evidence as missing, which fails closed.
                let Some(facts) = verdict
                    .facts
                    .as_deref()
                    .and_then(|f| serde_json::from_str::<Facts>(f).ok())
                else {
                    continue;
                };
                let mut item = match serde_json::to_value(&facts) {
                    Ok(Value::Object(mut object)) => {
                        object.remove("kind");
                        object.insert("key".into(), json!(key));
                        Value::Object(object)
                    }
                    _ => continue,
                };
                match &facts {
                    Facts::Provenance(facts) => {
                        builds.push((facts.clone(), key.clone().unwrap_or_default()));
                        provenance.push(item);
                    }
                    Facts::Sbom(sbom) => {
                        item["components"] = json!(sbom.components.len());
                        item["dependencies"] = json!(DependencyHealth::of(sbom));
                        sboms.push(item);
                    }
                    Facts::Vulnerabilities(_) => vulnerabilities.push(item),
                    Facts::TestResult(_) => tests.push(item),
                    Facts::Scorecard(_) => scorecards.push(item),
                    Facts::None => {}
                }
            }
            _ => {}
        }
    }
    let rebuilds = Rebuilds::of(builds.iter().map(|(facts, key)| (facts, key.as_str())));
    json!({
        "signatures": signatures, "provenance": provenance, "rebuilds": rebuilds, "sboms": sboms,
        "vulnerabilities": vulnerabilities, "tests": tests, "scorecards": scorecards,
        "attestations": attestations,
        "rejected": rejected,
    })
}

/// A built input document with the stored facts it was read from that a promotion uses again
/// (the attestation carries what the gate saw, without reading it a second time).
pub(super) struct Input {
    /// The input document.
    pub document: Value,
    /// The artifact's evidence, as the document's `evidence` was built from it.
    pub evidence: Vec<EvidenceRow>,
    /// The artifact's manifest in the source.
    pub artifact: StoredManifest,
}

async fn artifact_json(
    service: &PromotionService,
    source: &RepoName,
    target: &RepoName,
    digest: &Digest,
) -> Result<(Value, StoredManifest)> {
    let metadata = &service.metadata;
    let stored = metadata.manifest(source, digest).await?.ok_or_else(|| {
        super::PromotionError::NotFound(format!("{source}@{digest} is not in the registry"))
    })?;
    let annotations = ParsedManifest::parse(Some(&stored.media_type), &stored.content)
        .map(|m| m.annotations)
        .unwrap_or_default();
    let tags: Vec<String> = metadata
        .tags_of(source.as_str(), &digest.to_string())
        .await?
        .into_iter()
        .filter(|t| airlock_trust::cosign::parse_tag_scheme(t).is_none())
        .collect();
    let flags: Vec<String> = metadata
        .artifact_flags(target.as_str(), &digest.to_string())
        .await?
        .into_iter()
        .map(|f| f.flag)
        .collect();
    // The push stage the artifact came from: where its evidence is added.
    let mut origin = source.clone();
    for stage in service.stages.all() {
        if stage.mode != airlock_core::StageMode::Push {
            continue;
        }
        let candidate = source.in_stage(&stage.name);
        // The source itself was read above.
        if candidate == *source || metadata.manifest(&candidate, digest).await?.is_some() {
            origin = candidate;
            break;
        }
    }
    let document = json!({
        "repository": source.path(),
        "name": source.as_str(),
        "origin": origin.as_str(),
        "digest": digest,
        "media_type": stored.media_type,
        "size": stored.content.len(),
        "tags": tags,
        "annotations": annotations,
        "created": rfc3339_millis(stored.arrived_at),
        "pushed_by": stored.pushed_by,
        "flags": flags,
        "quarantine": metadata.quarantine(source.path(), &digest.to_string()).await?.map(|q| {
            json!({"anomaly": q.anomaly_id, "reason": q.reason})
        }),
    });
    Ok((document, stored))
}

async fn common(
    service: &PromotionService,
    row: &PromotionRow,
    action: &str,
    requester: Value,
    approvals: &[ApprovalRow],
    keys: Option<Vec<airlock_store::KeyRow>>,
) -> Result<Input> {
    let source = service.source_of(row)?;
    let target = service.target_of(row)?;
    let digest = &row.digest;
    let (artifact, stored) = artifact_json(service, &source, &target, digest).await?;
    let evidence_rows = service.evidence.evidence_for(&source, digest).await?;
    let keys = match keys {
        Some(keys) => keys,
        None => service.evidence.keys().await?.1,
    };
    let key_scopes: Vec<(String, Vec<String>)> =
        keys.into_iter().map(|k| (k.name, k.scope)).collect();
    let history: Vec<Value> = service
        .metadata
        .promotions_of(&row.repository_path, &row.digest.to_string())
        .await?
        .into_iter()
        .filter(|p| p.id != row.id)
        .map(|p| {
            json!({"stage": p.target_stage, "promotion": p.id, "state": p.state,
                   "at": rfc3339_millis(p.decided_at.unwrap_or(p.created_at)), "by": p.requested_by})
        })
        .collect();
    let freeze = service.metadata.freeze(row.target_stage.as_str()).await?;
    let approvals: Vec<Value> = approvals
        .iter()
        .map(|a| json!({"principal": a.principal, "at": rfc3339_millis(a.created_at), "comment": a.comment}))
        .collect();
    let document = json!({
        "version": airlock_policy::INPUT_VERSION,
        "now": rfc3339_millis(now_millis()),
        "action": action,
        "artifact": artifact,
        "source": {"stage": row.source_stage},
        "target": {
            "stage": row.target_stage, "repository": target.as_str(), "tags": row.tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
            "channel": row.channel.as_ref().map(Tag::as_str), "frozen": freeze.is_some(),
            "freeze_reason": freeze.map(|f| f.reason),
        },
        "evidence": evidence_json(&evidence_rows, &key_scopes),
        "history": history,
        "requester": requester,
        "approvals": approvals,
        "break_glass": {"requested": row.break_glass.is_some(), "reason": row.break_glass},
    });
    Ok(Input {
        document,
        evidence: evidence_rows,
        artifact: stored,
    })
}

/// The input for deciding promotion `row` with `approvals` so far.
pub(super) async fn build(
    service: &PromotionService,
    row: &PromotionRow,
    approvals: &[ApprovalRow],
    keys: Option<Vec<airlock_store::KeyRow>>,
) -> Result<Input> {
    let requester: Value =
        serde_json::from_str(&row.requester).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    common(service, row, "promote", requester, approvals, keys).await
}

/// The input for rolling a channel back to the artifact `row` promoted.
pub(super) async fn build_rollback(
    service: &PromotionService,
    row: &PromotionRow,
    caller: &Caller,
) -> Result<Value> {
    Ok(
        common(service, row, "rollback", requester_json(caller), &[], None)
            .await?
            .document,
    )
}

#[cfg(test)]
mod tests {
    use airlock_store::{EvidenceOrigin, EvidenceVerdict};

    use super::*;

    fn attestation(facts: Value) -> EvidenceRow {
        EvidenceRow {
            id: 1,
            origin: EvidenceOrigin {
                repository_path: "team/app".to_owned(),
                subject: "sha256:00".to_owned(),
                item: "sha256:01".to_owned(),
                format: "dsse".to_owned(),
                source: "referrer".to_owned(),
                repository: "team/app".to_owned(),
                manifest: None,
                blob: "sha256:02".to_owned(),
                signature: None,
                pushed_by: "ci".to_owned(),
            },
            verdict: EvidenceVerdict {
                status: "verified".to_owned(),
                kind: Some("attestation".to_owned()),
                reason_code: None,
                reason: None,
                key_id: Some("k".to_owned()),
                key_name: Some("ci".to_owned()),
                predicate_type: Some("https://slsa.dev/provenance/v1".to_owned()),
                facts: Some(facts.to_string()),
                keyring_version: 1,
            },
            first_seen_at: 0,
            verified_at: 0,
        }
    }

    #[test]
    fn provenance_stored_before_inputs_were_read_has_unknown_unpinned_inputs() {
        // Facts derived before airlock read provenance inputs: whether they were pinned is
        // unknown, which the policy must see as null, never as an empty list ("all pinned").
        let stored = json!({
            "kind": "provenance",
            "slsa_version": "v1",
            "builder_id": "https://github.com/actions/runner/github-hosted",
            "build_type": "https://actions.github.io/buildtypes/workflow/v1",
            "source_repository": "https://github.com/octo-org/octo-repo",
            "commit": "c27d339ee6075c1f744c5d4b200f7901aad2c369"
        });
        let evidence = evidence_json(&[attestation(stored)], &[]);
        let item = &evidence["provenance"][0];
        assert_eq!(item["key"], json!("ci"));
        assert_eq!(item.get("unpinned_inputs"), Some(&Value::Null));
    }
}
