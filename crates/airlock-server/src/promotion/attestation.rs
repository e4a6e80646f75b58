//! The promotion attestation: an in-toto statement signed by airlock's own ECDSA P-256 key
//! (DSSE, as cosign writes attestations), attached to the promoted artifact in the target stage as
//! cosign's `sha256-<hex>.att` manifest, which also names the artifact as its OCI 1.1 `subject`.
//! `cosign verify-attestation --key airlock-attestation.pub --type
//! https://airlock.dev/attestation/promotion/v1` accepts it.
//!
//! Beside it, in the same manifest, a SLSA Verification Summary Attestation
//! (`https://slsa.dev/verification_summary/v1`, [`verification_summary`]) signed with the same
//! key: the summary a deploy-time verifier that knows SLSA but not airlock can check.

use std::path::Path;
use std::str::FromStr;

use airlock_core::audit::rfc3339_millis;
use airlock_core::manifest::OCI_MANIFEST;
use airlock_core::{Digest, ParsedManifest, RepoName, Tag};
use airlock_store::{
    ApprovalRow, BlobStore, EvidenceRow, Metadata, NewManifest, PromotionRow, StoreError,
    StoredManifest, now_millis,
};
use airlock_trust::cosign::{self, TagSchemeKind};
use airlock_trust::intoto::{ResourceDescriptor, Statement};
use airlock_trust::keys::SigningKey;
use base64::Engine as _;
use serde_json::{Value, json};

/// The predicate type of promotion attestations.
pub const ATTESTATION_PREDICATE_TYPE: &str = "https://airlock.dev/attestation/promotion/v1";

/// The predicate type of SLSA Verification Summary Attestations (SLSA v1.0).
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";

/// The verifier a VSA names: airlock's promotion gate.
pub const VSA_VERIFIER_ID: &str = "https://airlock.dev/verifier/promotion-gate/v1";

/// Loads airlock's attestation key from `<data_dir>/attestation-key.pem`, creating it (mode
/// 0600) on first start.
pub fn load_or_create_attestation_key(data_dir: &Path) -> Result<SigningKey, String> {
    let path = data_dir.join("attestation-key.pem");
    match std::fs::read_to_string(&path) {
        Ok(pem) => airlock_trust::keys::decrypt_cosign_private_key(&pem, b"")
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            let key = SigningKey::generate_p256();
            let pem = private_key_pem(&key)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            file.write_all(pem.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the promotion attestation key");
            Ok(key)
        }
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    }
}

/// `key` as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the attestation key file's format.
pub fn private_key_pem(key: &SigningKey) -> Result<String, String> {
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// What a promotion attestation states.
pub(super) struct PromotionFacts<'a> {
    pub promotion: &'a PromotionRow,
    pub source: &'a RepoName,
    pub target: &'a RepoName,
    pub digest: &'a Digest,
    pub approvals: &'a [ApprovalRow],
    pub bundle_digest: &'a str,
    pub decision_id: &'a str,
    pub audit_index: Option<u64>,
}

/// The in-toto statement of a promotion.
pub(super) fn statement(facts: &PromotionFacts<'_>) -> Statement {
    let approvals: Vec<Value> = facts
        .approvals
        .iter()
        .map(|a| json!({"principal": a.principal, "at": rfc3339_millis(a.created_at)}))
        .collect();
    let predicate = json!({
        "promotion": facts.promotion.id,
        "source": facts.source.as_str(),
        "target": facts.target.as_str(),
        "gate": facts.promotion.target_stage,
        "policy": {"digest": facts.bundle_digest, "decision": facts.decision_id},
        "requester": facts.promotion.requested_by,
        "approvals": approvals,
        "break_glass": facts.promotion.break_glass,
        "audit_log": {"decision_entry": facts.audit_index},
        "promoted_at": rfc3339_millis(now_millis()),
    });
    Statement::new_v1(
        vec![ResourceDescriptor::for_digest(
            facts.target.as_str().to_string(),
            facts.digest,
        )],
        ATTESTATION_PREDICATE_TYPE.to_string(),
        predicate,
    )
}

/// The SLSA Verification Summary Attestation of a promotion: airlock verified the artifact's
/// evidence against the gate's policy bundle and it passed. `inputAttestations` are the
/// attestations (DSSE envelopes) the decision counted as verified; `verifiedLevels` is
/// `SLSA_BUILD_LEVEL_2` when among them is SLSA provenance (which airlock verifies only with a
/// keyring key trusted for provenance, so it is signed provenance from a build platform the
/// organisation trusts), else `SLSA_BUILD_LEVEL_0`; airlock never claims level 3, whose
/// hardened-platform requirements no attestation it reads establishes.
pub(super) fn verification_summary(
    facts: &PromotionFacts<'_>,
    evidence: &[EvidenceRow],
) -> Statement {
    let attestations: Vec<&EvidenceRow> = evidence
        .iter()
        .filter(|e| {
            e.verdict.status == "verified" && e.verdict.kind.as_deref() == Some("attestation")
        })
        .collect();
    let inputs: Vec<Value> = attestations
        .iter()
        .filter_map(|e| {
            let item = Digest::from_str(&e.origin.item).ok()?;
            Some(json!({
                "uri": format!("oci://{}@{}", e.origin.repository, e.origin.manifest.as_deref().unwrap_or(&e.origin.blob)),
                "digest": {item.algorithm().as_str(): item.hex()},
            }))
        })
        .collect();
    let provenance = attestations.iter().any(|e| {
        e.verdict
            .facts
            .as_deref()
            .and_then(|f| serde_json::from_str::<airlock_trust::facts::Facts>(f).ok())
            .is_some_and(|f| matches!(f, airlock_trust::facts::Facts::Provenance(_)))
    });
    let level = if provenance {
        "SLSA_BUILD_LEVEL_2"
    } else {
        "SLSA_BUILD_LEVEL_0"
    };
    let policy_digest = match Digest::from_str(facts.bundle_digest) {
        Ok(d) => json!({d.algorithm().as_str(): d.hex()}),
        Err(_) => json!({}),
    };
    let predicate = json!({
        "verifier": {
            "id": VSA_VERIFIER_ID,
            "version": {"airlock": env!("CARGO_PKG_VERSION")},
        },
        "timeVerified": rfc3339_millis(now_millis()),
        "resourceUri": format!("oci://{}@{}", facts.target, facts.digest),
        "policy": {
            "uri": format!("airlock:policy/gates/{}", facts.promotion.target_stage),
            "digest": policy_digest,
        },
        "inputAttestations": inputs,
        "verificationResult": "PASSED",
        "verifiedLevels": [level],
        "slsaVersion": "1.0",
    });
    Statement::new_v1(
        vec![ResourceDescriptor::for_digest(
            facts.target.as_str().to_string(),
            facts.digest,
        )],
        VSA_PREDICATE_TYPE.to_string(),
        predicate,
    )
}

/// The artifact a promotion attestation is about, as the promotion's decision read it.
pub(super) struct Subject<'a> {
    /// Its digest.
    pub digest: &'a Digest,
    /// Its manifest in the source.
    pub manifest: &'a StoredManifest,
    /// The evidence about it in its repository path.
    pub evidence: &'a [EvidenceRow],
}

/// Signs `statements` and builds the target's `sha256-<hex>.att` manifest: the attestation layers
/// of `stage_repositories` (the path in the stages before the target, with whether each is gated;
/// from push stages only attestations the subject's evidence holds as verified) plus one layer
/// per statement (the promotion attestation, the VSA), with the artifact as subject.
/// The new blobs are written to the blob store; the manifest rows are written by the promotion
/// transaction.
pub(super) async fn build_manifest(
    metadata: &Metadata,
    blobs: &BlobStore,
    key: &SigningKey,
    subject: Subject<'_>,
    stage_repositories: &[(RepoName, bool)],
    statements: &[&Statement],
) -> Result<NewManifest, StoreError> {
    let digest = subject.digest;
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let mut signed = Vec::with_capacity(statements.len());
    for statement in statements {
        let envelope = airlock_trust::verify::attest(key, statement).to_json();
        let envelope_digest = Digest::sha256_of(&envelope);
        blobs
            .put_small(&envelope_digest, bytes::Bytes::from(envelope.clone()))
            .await?;
        signed.push((
            envelope_digest,
            envelope.len(),
            statement.predicate_type.clone(),
        ));
    }
    let tag = Tag::from_str(&cosign::tag_scheme_tag(digest, TagSchemeKind::Attestation))
        .map_err(|e| corrupt(&e))?;
    // Every attestation layer recorded for the artifact's path in any earlier stage (evidence
    // belongs to the path, so what the gate counted is carried next to the artifact), once each.
    // From push stages only attestations airlock verified are carried; a gated stage's `.att`
    // was written by an earlier promotion and holds nothing else.
    // The evidence the gate counted, as the decision read it.
    let verified: Vec<&str> = subject
        .evidence
        .iter()
        .filter(|e| e.verdict.status == "verified" && e.origin.format == "dsse")
        .map(|e| e.origin.item.as_str())
        .collect();
    let mut layers: Vec<Value> = Vec::new();
    for (repository, gated) in stage_repositories {
        let Some(existing) = metadata.resolve_tag(repository, &tag).await? else {
            continue;
        };
        let Some(stored) = metadata.manifest(repository, &existing).await? else {
            continue;
        };
        let found = serde_json::from_slice::<Value>(&stored.content)
            .ok()
            .and_then(|m| m["layers"].as_array().cloned())
            .unwrap_or_default();
        for layer in found {
            let trusted = *gated
                || layer["digest"]
                    .as_str()
                    .is_some_and(|d| verified.contains(&d));
            if trusted && !layers.iter().any(|l| l["digest"] == layer["digest"]) {
                layers.push(layer);
            }
        }
    }
    for (envelope_digest, size, predicate_type) in &signed {
        layers.push(json!({
            "mediaType": cosign::DSSE_MEDIA_TYPE,
            "size": size,
            "digest": envelope_digest,
            "annotations": {
                cosign::SIGNATURE_ANNOTATION: "",
                cosign::PREDICATE_TYPE_ANNOTATION: predicate_type,
            },
        }));
    }
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {},
    }))
    .map_err(|e| corrupt(&e))?;
    let config_digest = Digest::sha256_of(&config);
    blobs
        .put_small(&config_digest, bytes::Bytes::from(config.clone()))
        .await?;
    let subject = subject.manifest;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": layers,
        "subject": {"mediaType": subject.media_type, "size": subject.content.len(), "digest": digest},
    }))
    .map_err(|e| corrupt(&e))?;
    let parsed = ParsedManifest::parse(Some(OCI_MANIFEST), &manifest).map_err(|e| corrupt(&e))?;
    Ok(NewManifest {
        digest: Digest::sha256_of(&manifest),
        content: manifest,
        parsed,
        new_blobs: signed
            .into_iter()
            .map(|(digest, size, _)| (digest, size as u64))
            .chain([(config_digest, config.len() as u64)])
            .collect(),
        tag: Some(tag),
    })
}
