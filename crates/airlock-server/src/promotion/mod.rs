//! The promotion service: gates, approvals, zero-copy promotion, rollback, freezes, decision
//! replay and the policy bundle.
//!
//! A request is decided by the target stage's gate: the Rego query over the input document
//! ([`input`]) built from the artifact, its verified evidence, its promotion history, the requester
//! and the approvals so far. A denial changes nothing but the promotion's state and its records. An
//! allowed promotion that needs approvals waits; when the last approval arrives it is decided
//! again with the evidence and keyring of that moment, and promoted in one metadata transaction
//! with a signed promotion attestation. Every decision is stored with its input and bundle digest
//! so it can be replayed.

mod attestation;
mod input;
pub mod routes;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::promotion::{
    StalledRecovery, check_approver, check_promotion_tag, required_approvals, stalled_recovery,
};
use airlock_core::{
    Actor, ApprovalRefusal, AuditEvent, AuditRecord, Digest, ParsedManifest, PromotionParties,
    PromotionState, Reference, RepoName, Role, StageMode, StageName, Stages, Tag,
};
use airlock_policy::{Bundle, Decision};
use airlock_store::{
    BlobStore, DecisionRow, Metadata, PromotionRow, PromotionWriteError, StoreError, TimeCursor,
    Transition, now_millis,
};
use serde_json::{Value, json};

pub use attestation::{
    ATTESTATION_PREDICATE_TYPE, load_or_create_attestation_key, private_key_pem,
};

use crate::config::{Config, GateConfig};
use crate::evidence::EvidenceService;
use crate::identity::Authenticated;

/// Why a promotion operation failed. Each variant keeps what failed (and its cause), so the HTTP
/// status follows the cause: a storage failure stays a storage failure, not a policy error.
#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// How to fix it.
        remediation: &'static str,
    },
    /// The request names a stage the configuration does not have.
    #[error("there is no stage {stage}; configured stages: {}", configured.join(", "))]
    UnknownStage {
        /// The stage as the request spelled it.
        stage: String,
        /// The configured stages, in order.
        configured: Vec<String>,
    },
    /// A promotion list was filtered by a state that does not exist.
    #[error(
        "there is no promotion state {given:?}; states: {}",
        PromotionState::ALL.map(PromotionState::as_str).join(", ")
    )]
    UnknownState {
        /// The state as the request spelled it.
        given: String,
    },
    /// The caller may not do this.
    #[error("{message}")]
    Forbidden {
        /// What was refused and which role it needs.
        message: String,
        /// How to get the right (who to ask, which role on what).
        remediation: &'static str,
    },
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// An approval was refused by separation of duties or role rules.
    #[error(transparent)]
    Approval(#[from] ApprovalRefusal),
    /// A rejection was refused: rejecting needs the same eligibility as approving.
    #[error("rejecting needs the same eligibility as approving: {0}")]
    RejectionRefused(#[source] ApprovalRefusal),
    /// The policy bundle could not be loaded (it does not parse or compile).
    #[error("policy bundle {}: {source}", path.display())]
    InvalidBundle {
        /// The bundle directory.
        path: std::path::PathBuf,
        /// Why it could not be loaded.
        #[source]
        source: airlock_policy::PolicyError,
    },
    /// The policy bundle loaded, but its own `test_*` rules fail.
    #[error("the policy bundle's tests fail, so it is refused: {}", failed.join("; "))]
    BundleTestsFail {
        /// Each failing test with why.
        failed: Vec<String>,
    },
    /// A decision record is a person's rejection, not a policy evaluation: nothing to replay.
    #[error(
        "decision {id} records {principal}'s rejection, not a policy evaluation; there is nothing to replay"
    )]
    NotReplayable {
        /// The decision record.
        id: String,
        /// Who rejected.
        principal: String,
    },
    /// The configuration names an approver role airlock does not know.
    #[error("[gates.{stage}].approvals.role: {source}")]
    GateRole {
        /// The gate's stage.
        stage: String,
        /// The unknown role.
        #[source]
        source: airlock_core::access::UnknownRole,
    },
    /// The configured stages are invalid.
    #[error("the stage configuration is invalid: {0}")]
    Stages(#[source] crate::config::ConfigError),
    /// The evidence service failed while the artifact's evidence or the keyring was read.
    #[error("reading the artifact's evidence failed: {0}")]
    Evidence(#[source] crate::evidence::EvidenceError),
    /// The keyring changed while a promotion was being decided (it is decided again).
    #[error("the keyring kept changing while the promotion was decided; retry")]
    KeyringMoved,
    /// This replica's policy bundle is not the one every replica must decide with (another
    /// replica loaded another bundle last), and re-reading its policy directory did not give it.
    #[error(
        "this replica's policy bundle is {loaded}, but the bundle in use is {active} (another replica loaded it last); re-reading this replica's policy directory did not give that bundle, so the decision is refused"
    )]
    PolicyMismatch {
        /// The digest of this replica's bundle.
        loaded: String,
        /// The digest of the bundle in use.
        active: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::evidence::EvidenceError> for PromotionError {
    fn from(err: crate::evidence::EvidenceError) -> Self {
        match err {
            crate::evidence::EvidenceError::Store(err) => Self::Store(err),
            other => Self::Evidence(other),
        }
    }
}

impl PromotionError {
    fn forbidden(message: impl Into<String>, remediation: &'static str) -> Self {
        Self::Forbidden {
            message: message.into(),
            remediation,
        }
    }

    fn bad_request(message: impl Into<String>, remediation: &'static str) -> Self {
        Self::BadRequest {
            message: message.into(),
            remediation,
        }
    }
}

impl From<PromotionWriteError> for PromotionError {
    fn from(err: PromotionWriteError) -> Self {
        match err {
            PromotionWriteError::Store(StoreError::PolicyMoved { decided, active }) => {
                Self::PolicyMismatch {
                    loaded: decided,
                    active,
                }
            }
            PromotionWriteError::Store(err) => Self::Store(err),
            // Both mean "decided on facts that changed": the promotion is decided again.
            PromotionWriteError::KeyringMoved | PromotionWriteError::QuarantinedMeanwhile => {
                Self::KeyringMoved
            }
            PromotionWriteError::Duplicate(id) => Self::Conflict(format!(
                "promotion {id} of this artifact to this stage already exists (airlock promotions show {id})"
            )),
            other => Self::Conflict(other.to_string()),
        }
    }
}

type Result<T, E = PromotionError> = std::result::Result<T, E>;

/// Who is asking, as the service needs it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal (`None` when access control is off).
    pub who: Option<Authenticated>,
    /// The audit actor.
    pub actor: Actor,
}

impl Caller {
    fn name(&self) -> &str {
        &self.actor.principal
    }

    fn has(&self, permission: Permission, target: &PermissionTarget) -> bool {
        self.who.as_ref().is_none_or(|w| w.has(permission, target))
    }
}

/// A promotion request.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    /// The source repository (with stage).
    pub source: RepoName,
    /// The artifact: a tag or digest in the source.
    pub reference: Reference,
    /// The target stage.
    pub target_stage: StageName,
    /// Tags to set in the target (default: the artifact's tags in the source).
    pub tags: Option<Vec<Tag>>,
    /// Channel tag to move (default: the target stage's first channel tag, if any).
    pub channel: Option<Tag>,
    /// Evaluate only.
    pub dry_run: bool,
    /// Emergency promotion reason (needs the break-glass role).
    pub break_glass: Option<String>,
}

/// The outcome of a request, approval or dry run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The promotion (`None` for a dry run).
    pub promotion: Option<PromotionRow>,
    /// The gate's decision.
    pub decision: Decision,
    /// The decision record id (`None` for a dry run).
    pub decision_id: Option<String>,
    /// Approvals required.
    pub approvals_required: u32,
}

/// The rules airlock applies on top of any policy, as a function of the input alone (so replay
/// reproduces them), even if a custom gate forgets them: freezes and quarantines.
fn with_service_rules(decision: Decision, input: &Value) -> Decision {
    with_quarantine(with_freeze(decision, input), input)
}

/// A quarantined artifact moves nowhere: not by promotion, not by rollback, not by break-glass.
fn with_quarantine(mut decision: Decision, input: &Value) -> Decision {
    let quarantine = &input["artifact"]["quarantine"];
    let policy_saw_it = decision
        .deny
        .iter()
        .any(|v| v.rule.ends_with("quarantined"));
    if quarantine.is_object() && !policy_saw_it {
        let anomaly = &quarantine["anomaly"];
        decision.deny.push(airlock_policy::Violation {
            rule: "airlock.quarantined".into(),
            msg: format!(
                "the artifact is quarantined by anomaly {anomaly}: {}",
                quarantine["reason"].as_str().unwrap_or("no reason recorded")
            ),
            remediation: format!(
                "investigate the anomaly (airlock anomalies show {anomaly}); an access-admin lifts the quarantine with `airlock anomalies resolve {anomaly} --reason ..`"
            ),
            docs: Some("docs/anomalies.md#quarantine".into()),
        });
        decision
            .deny
            .sort_by(|a, b| (&a.rule, &a.msg).cmp(&(&b.rule, &b.msg)));
        decision.allowed = false;
    }
    decision
}

/// A promotion into a frozen stage is denied unless it is a break-glass promotion.
fn with_freeze(mut decision: Decision, input: &Value) -> Decision {
    let promoting = input["action"] == "promote";
    let frozen = input["target"]["frozen"] == true;
    let break_glass = input["break_glass"]["requested"] == true;
    let policy_saw_it = decision
        .deny
        .iter()
        .any(|v| v.rule.ends_with("stage_frozen"));
    if promoting && frozen && !break_glass && !policy_saw_it {
        let stage = input["target"]["stage"]
            .as_str()
            .unwrap_or("the target stage");
        let reason = input["target"]["freeze_reason"]
            .as_str()
            .unwrap_or("no reason given");
        decision.deny.push(airlock_policy::Violation {
            rule: "airlock.stage_frozen".into(),
            msg: format!("stage {stage} is frozen: {reason}"),
            remediation: format!(
                "wait until the freeze on {stage} is lifted (airlock unfreeze), or promote with break-glass"
            ),
            docs: Some("docs/promotion.md#freezes".into()),
        });
        decision
            .deny
            .sort_by(|a, b| (&a.rule, &a.msg).cmp(&(&b.rule, &b.msg)));
        decision.allowed = false;
    }
    decision
}

/// What the final decision fixed, for the promotion it allows.
struct Decided<'a> {
    bundle_digest: &'a str,
    decision_id: &'a str,
    audit_index: Option<u64>,
    keyring_version: i64,
    /// The artifact's evidence the decision saw.
    evidence: &'a [airlock_store::EvidenceRow],
    /// The artifact's manifest in the source, as the decision read it.
    artifact: &'a airlock_store::StoredManifest,
}

/// The policy bundle in use and where it came from.
struct LoadedPolicy {
    bundle: Arc<Bundle>,
    source: Option<std::path::PathBuf>,
}

/// The promotion service.
pub struct PromotionService {
    metadata: Metadata,
    blobs: BlobStore,
    stages: Stages,
    config: Config,
    evidence: Arc<EvidenceService>,
    policy: RwLock<LoadedPolicy>,
    attestation_keys: Arc<crate::server_keys::AttestationKeys>,
    identity: Arc<crate::identity::Identity>,
    anomalies: Arc<crate::anomalies::Anomalies>,
}

/// The decision shown for an approval that did not yet complete the set (the gate allowed the
/// promotion when it was requested; it is decided again when the last approval arrives).
fn pending_decision() -> Decision {
    Decision {
        allowed: true,
        deny: Vec::new(),
        warn: Vec::new(),
        approvals: None,
        error: None,
    }
}

fn random_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Loads and tests a bundle: a bundle whose tests fail is refused.
fn load_bundle(path: Option<&Path>) -> Result<Bundle> {
    let bundle = match path {
        Some(path) => Bundle::load(path).map_err(|source| PromotionError::InvalidBundle {
            path: path.to_path_buf(),
            source,
        })?,
        None => airlock_policy::default_bundle(),
    };
    let report = bundle.run_tests();
    if !report.failed.is_empty() {
        let failed: Vec<String> = report
            .failed
            .iter()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        return Err(PromotionError::BundleTestsFail { failed });
    }
    Ok(bundle)
}

impl PromotionService {
    /// Opens the service: loads the policy bundle (refusing one whose tests fail) and records it.
    pub async fn open(
        metadata: Metadata,
        blobs: BlobStore,
        config: Config,
        evidence: Arc<EvidenceService>,
        attestation_keys: Arc<crate::server_keys::AttestationKeys>,
        identity: Arc<crate::identity::Identity>,
        anomalies: Arc<crate::anomalies::Anomalies>,
    ) -> Result<Self> {
        let stages = config.stages().map_err(PromotionError::Stages)?;
        let bundle = load_bundle(config.policy.bundle.as_deref())?;
        let service = Self {
            metadata,
            blobs,
            stages,
            policy: RwLock::new(LoadedPolicy {
                bundle: Arc::new(bundle),
                source: config.policy.bundle.clone(),
            }),
            config,
            evidence,
            attestation_keys,
            identity,
            anomalies,
        };
        let first_seen = service.record_bundle(&Actor::system()).await?;
        // Starting never brings back a bundle the replicas have moved on from: with several
        // replicas (PostgreSQL), a bundle stored before that is not the one in use is an old
        // policy directory (a stale pod, a rolled-back ReplicaSet), and activating it would
        // downgrade every replica's gate. It stays inactive (this replica refuses decisions,
        // naming both digests) until the directory matches or `airlock policy reload` makes it
        // the one in use on purpose. A bundle never seen before is a rollout, and is activated.
        let digest = service.bundle().digest().to_string();
        let active = service.metadata.active_bundle().await?;
        let superseded = service.metadata.backend() == airlock_store::Backend::Postgres
            && !first_seen
            && active.as_deref().is_some_and(|active| active != digest);
        if superseded {
            tracing::error!(loaded = %digest, active = ?active, "this replica's policy bundle was in use before and has been replaced: it is not activated again at start; promotions are refused here until the policy directory matches the bundle in use, or `airlock policy reload` activates it on purpose");
        } else {
            service.activate(&service.bundle()).await?;
        }
        Ok(service)
    }

    /// Records `bundle` as the one every replica must decide with (the last to load one wins).
    async fn activate(&self, bundle: &Bundle) -> Result<()> {
        self.metadata.activate_bundle(bundle.digest()).await?;
        Ok(())
    }

    /// The bundle to decide with: this replica's, if it is the one in use (the database names
    /// it). Otherwise the policy directory is read again (another replica loaded a new bundle
    /// from its copy of the same directory): if that gives the bundle in use it replaces this
    /// replica's, else the decision is refused ([`PromotionError::PolicyMismatch`]: fail
    /// closed). With one replica the bundle in use is always its own.
    async fn bundle_in_use(&self) -> Result<Arc<Bundle>> {
        let bundle = self.bundle();
        let loaded = bundle.digest().to_string();
        let Some(active) = self.metadata.active_bundle().await? else {
            return Ok(bundle);
        };
        if active == loaded {
            return Ok(bundle);
        }
        let source = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .source
            .clone();
        let reread = match load_bundle(source.as_deref()) {
            Ok(reread) => reread,
            Err(err) => {
                tracing::error!(error = %err, %loaded, %active, "another replica loaded another policy bundle, and this replica's policy directory does not load");
                return Err(PromotionError::PolicyMismatch { loaded, active });
            }
        };
        if reread.digest() != active {
            tracing::error!(%loaded, %active, reread = %reread.digest(), "another replica decides with another policy bundle: decisions are refused here until every replica has the same policy directory");
            return Err(PromotionError::PolicyMismatch { loaded, active });
        }
        let reread = Arc::new(reread);
        self.policy
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .bundle = reread.clone();
        tracing::info!(from = %loaded, to = %active, "policy bundle reloaded: another replica loaded it");
        Ok(reread)
    }

    /// The waivers of this replica's policy bundle (see [`Bundle::waivers`]), for pages that
    /// show which findings are accepted.
    pub fn waivers(&self) -> Vec<airlock_policy::Waiver> {
        self.bundle().waivers()
    }

    fn bundle(&self) -> Arc<Bundle> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .bundle
            .clone()
    }

    /// Stores the current bundle by digest (for replay) and records that it was loaded. Returns
    /// whether the database had never stored it before.
    async fn record_bundle(&self, actor: &Actor) -> Result<bool> {
        let bundle = self.bundle();
        let files = serde_json::to_string(bundle.files())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let digest = bundle.digest().to_string();
        let stored_before = self.metadata.bundle_files(&digest).await?.is_some();
        // Recorded by whoever stores the bundle first: replicas starting together record it once.
        if !stored_before && self.metadata.save_bundle(&digest, &files).await? {
            self.metadata
                .record_events(&[AuditRecord {
                    time_millis: now_millis(),
                    actor: actor.clone(),
                    event: AuditEvent::PolicyLoaded {
                        digest,
                        files: bundle.files().len(),
                    },
                }])
                .await?;
        }
        Ok(!stored_before)
    }

    /// Reloads the bundle from its directory (SIGHUP or the API). A bundle that fails to parse or
    /// whose tests fail is refused and the current one stays. Returns the digest in use.
    pub async fn reload_policy(&self, actor: &Actor) -> Result<String> {
        let source = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .source
            .clone();
        let bundle = load_bundle(source.as_deref())?;
        let digest = bundle.digest().to_string();
        self.policy
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .bundle = Arc::new(bundle);
        self.record_bundle(actor).await?;
        self.activate(&self.bundle()).await?;
        Ok(digest)
    }

    /// The bundle in use: digest and file names.
    pub fn policy_info(&self) -> airlock_api::promotion::PolicyInfo {
        let bundle = self.bundle();
        airlock_api::promotion::PolicyInfo {
            digest: bundle.digest().to_string(),
            files: bundle.files().iter().map(|(p, _)| p.clone()).collect(),
        }
    }

    /// The attestation public key (SPKI PEM), for `cosign verify-attestation --key`.
    pub fn attestation_public_key(&self) -> String {
        self.attestation_keys.current().public_key().to_pem()
    }

    /// The current attestation key and every key it replaced, newest first.
    pub fn attestation_keys(&self) -> Vec<crate::server_keys::ListedKey> {
        self.attestation_keys.listing()
    }

    fn gate(&self, stage: &StageName) -> GateConfig {
        self.config.gate(stage.as_str())
    }

    /// The role the gate of `stage` asks approvers (and rejecters) to hold.
    fn gate_role(&self, stage: &str) -> Result<Role> {
        Role::from_str(&self.config.gate(stage).approvals.role).map_err(|source| {
            PromotionError::GateRole {
                stage: stage.to_string(),
                source,
            }
        })
    }

    fn gate_query(&self, stage: &StageName) -> String {
        self.gate(stage)
            .query
            .unwrap_or_else(|| format!("data.airlock.gates.{}", stage.as_str()))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.policy.timeout_ms)
    }

    /// Evaluates `query` with the bundle in use ([`Self::bundle_in_use`]), returning the
    /// decision and the bundle's digest.
    async fn evaluate(&self, query: String, input: Value) -> Result<(Decision, String)> {
        let bundle = self.bundle_in_use().await?;
        let digest = bundle.digest().to_string();
        let timeout = self.timeout();
        let started = std::time::Instant::now();
        let decision = tokio::task::spawn_blocking(move || {
            let decision = bundle.evaluate(&query, &input, timeout);
            with_service_rules(decision, &input)
        })
        .await
        .unwrap_or_else(|e| Decision::fail_closed(format!("policy evaluation panicked: {e}")));
        metrics::histogram!(crate::metrics::POLICY_EVALUATION)
            .record(started.elapsed().as_secs_f64());
        Ok((decision, digest))
    }

    /// The configured stage named `name`, or [`PromotionError::UnknownStage`] naming them all.
    fn stage_config(&self, name: &StageName) -> Result<&airlock_core::StageConfig> {
        self.stages
            .all()
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| PromotionError::UnknownStage {
                stage: name.to_string(),
                configured: self
                    .stages
                    .all()
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect(),
            })
    }

    /// Checks the stage flow (both stages exist, `target` is gated and accepts `source`) and
    /// returns the target repository.
    fn target_repository(&self, source: &RepoName, target: &StageName) -> Result<RepoName> {
        let source_stage = source.stage();
        self.stage_config(&source_stage)?;
        let target_stage = self.stage_config(target)?;
        if target_stage.mode != StageMode::Gated {
            return Err(PromotionError::bad_request(
                format!("stage {target} is a push stage; promotions go into gated stages"),
                "promote into a gated stage (--to): one whose [[stages]] entry has mode = \"gated\"",
            ));
        }
        if !target_stage.from.contains(&source_stage) {
            let from: Vec<String> = target_stage.from.iter().map(|s| s.to_string()).collect();
            return Err(PromotionError::bad_request(
                format!(
                    "stage {target} accepts promotions only from {}; promote {} there first",
                    from.join(", "),
                    source.path()
                ),
                "promote the artifact from a stage the target accepts (its `from` list), one stage at a time",
            ));
        }
        Ok(source.in_stage(target))
    }

    /// Requests (or, with `dry_run`, only evaluates) a promotion.
    pub async fn request(&self, request: PromoteRequest, caller: &Caller) -> Result<Outcome> {
        let target = self.target_repository(&request.source, &request.target_stage)?;
        let needed = if request.break_glass.is_some() {
            Permission::BreakGlass
        } else {
            Permission::Promote
        };
        if !caller.has(needed, &PermissionTarget::Repository(target.clone())) {
            return Err(PromotionError::forbidden(
                format!(
                    "{} may not promote into {target}: that needs the {} role on it",
                    caller.name(),
                    if needed == Permission::BreakGlass {
                        "break-glass"
                    } else {
                        "promoter"
                    }
                ),
                "ask an access-admin for the role on the target repository (or just in time: airlock access request ROLE --scope REPOSITORY --for 1h --reason ..)",
            ));
        }
        if let Some(reason) = &request.break_glass
            && reason.trim().is_empty()
        {
            return Err(PromotionError::bad_request(
                "a break-glass promotion needs a reason",
                "give the emergency's reason with --break-glass REASON",
            ));
        }
        let digest = match &request.reference {
            Reference::Digest(digest) => {
                if self
                    .metadata
                    .manifest(&request.source, digest)
                    .await?
                    .is_none()
                {
                    return Err(PromotionError::NotFound(format!(
                        "{}@{digest} is not in the registry",
                        request.source
                    )));
                }
                digest.clone()
            }
            Reference::Tag(tag) => self
                .metadata
                .resolve_tag(&request.source, tag)
                .await?
                .ok_or_else(|| {
                    PromotionError::NotFound(format!(
                        "{}:{tag} is not in the registry",
                        request.source
                    ))
                })?,
        };
        let stage_config = self
            .stages
            .all()
            .iter()
            .find(|s| s.name == request.target_stage)
            .cloned();
        let channel_tags = stage_config
            .as_ref()
            .map(|s| s.channel_tags.clone())
            .unwrap_or_default();
        // Digest-derived tags (cosign's `sha256-<hex>.sig`) and channel tags are not the
        // request's to set: a squatted one would later be re-pointed by airlock itself.
        let tags = match request.tags.clone() {
            Some(tags) => {
                for tag in &tags {
                    check_promotion_tag(tag, &request.target_stage, &channel_tags)
                        .map_err(|e| {
                            PromotionError::bad_request(
                                e.to_string(),
                                "leave that tag out of --tag: airlock sets digest-derived and channel tags itself",
                            )
                        })?;
                }
                tags
            }
            // The source's tags, without those (they are left behind, not refused).
            None => self
                .metadata
                .tags_of(request.source.as_str(), &digest.to_string())
                .await?
                .into_iter()
                .filter_map(|t| Tag::from_str(&t).ok())
                .filter(|t| check_promotion_tag(t, &request.target_stage, &channel_tags).is_ok())
                .collect(),
        };
        let channel = match (&request.channel, stage_config) {
            (Some(channel), Some(stage)) => {
                if !stage.channel_tags.iter().any(|c| c == channel.as_str()) {
                    return Err(PromotionError::bad_request(
                        format!(
                            "{channel} is not a channel tag of stage {}; its channel tags: {}",
                            stage.name,
                            stage.channel_tags.join(", ")
                        ),
                        "name one of the stage's channel tags with --channel, or leave --channel out",
                    ));
                }
                Some(channel.clone())
            }
            (None, Some(stage)) => stage
                .channel_tags
                .first()
                .and_then(|c| Tag::from_str(c).ok()),
            _ => None,
        };
        // Tags in gated stages are immutable: a tag already naming another digest is a conflict.
        for tag in &tags {
            if channel.as_ref() == Some(tag) {
                continue;
            }
            if let Some(current) = self.metadata.resolve_tag(&target, tag).await?
                && current != digest
            {
                return Err(PromotionError::Conflict(format!(
                    "{target}:{tag} already names {current}; tags in gated stages are immutable: promote with other --tag values"
                )));
            }
        }
        // An overdue pending promotion must not block a new request for the same artifact.
        self.expire_overdue().await?;
        let now = now_millis();
        let mut row = PromotionRow {
            id: random_id("prm"),
            repository_path: request.source.path().to_string(),
            digest: digest.clone(),
            source_stage: request.source.stage(),
            target_stage: request.target_stage.clone(),
            tags: tags.clone(),
            channel: channel.clone(),
            state: PromotionState::Evaluating,
            requested_by: caller.name().to_string(),
            requester: input::requester_json(caller).to_string(),
            approvals_required: 0,
            break_glass: request.break_glass.clone(),
            last_decision: None,
            attestation: None,
            created_at: now,
            expires_at: now + (self.config.policy.approval_ttl_secs as i64) * 1000,
            decided_at: None,
            evaluating_since: Some(now),
            claim: Some(random_id("clm")),
        };
        if request.dry_run {
            let input = self.input_for(&row, &[], None).await?;
            let (decision, _) = self
                .evaluate(self.gate_query(&request.target_stage), input.document)
                .await?;
            let required = self.required_for(&row, &decision);
            return Ok(Outcome {
                promotion: None,
                decision,
                decision_id: None,
                approvals_required: required,
            });
        }
        self.anomalies
            .promotion_requested(crate::anomalies::PromotionEvent {
                requester: &row.requested_by,
                repository: &target,
                digest: &digest,
                break_glass: row.break_glass.as_deref(),
            })
            .await;
        // The promotion is stored with its first decision, in one transaction (which also
        // refuses a decision made with another bundle than the one in use).
        let mut stored = false;
        let outcome = self.decide(&mut row, caller, &mut stored).await;
        if outcome.is_err() && stored {
            // Never leave a promotion stuck in `evaluating`: it would block the artifact. It ends
            // as cancelled (it could not be decided), with its audit entry.
            let records = [AuditRecord {
                time_millis: now_millis(),
                actor: Actor::system(),
                event: AuditEvent::PromotionClosed {
                    promotion: row.id.clone(),
                    repository: target.clone(),
                    digest: digest.clone(),
                    state: PromotionState::Cancelled.to_string(),
                },
            }];
            let _ = self
                .metadata
                .close_promotion(
                    &row.id,
                    &[PromotionState::Evaluating],
                    PromotionState::Cancelled,
                    row.claim.as_deref(),
                    &records,
                )
                .await;
        }
        outcome
    }

    fn required_for(&self, row: &PromotionRow, decision: &Decision) -> u32 {
        let gate = self.config.gate(row.target_stage.as_str());
        let critical = gate
            .critical
            .iter()
            .filter(|c| {
                c.repositories.iter().any(|p| {
                    airlock_trust::verify::ScopePattern::from_str(p)
                        .is_ok_and(|p| p.matches(&row.repository_path))
                })
            })
            .map(|c| c.approvals)
            .max();
        required_approvals(
            gate.approvals.count,
            critical,
            decision.approvals,
            row.break_glass.is_some(),
        )
    }

    async fn input_for(
        &self,
        row: &PromotionRow,
        approvals: &[airlock_store::ApprovalRow],
        keys: Option<Vec<airlock_store::KeyRow>>,
    ) -> Result<input::Input> {
        input::build(self, row, approvals, keys).await
    }

    /// Decides `row` (first request or after its last approval), recording the decision, and
    /// promotes it when allowed and approved.
    /// A principal's grants now (`None` when access control is off: nothing to check). A
    /// disabled or deleted principal has none.
    async fn current_grants(&self, name: &str) -> Result<Option<Vec<airlock_core::Grant>>> {
        if !self.identity.enabled() {
            return Ok(None);
        }
        match self.metadata.principal_by_name(name).await? {
            Some(principal) if !principal.disabled && principal.locked_by.is_none() => {
                Ok(Some(self.identity.grants(&principal).await?))
            }
            _ => Ok(Some(Vec::new())),
        }
    }

    /// Checks, at the moment of decision, that the requester still may promote (or break glass)
    /// into the target, and keeps only the approvals whose approvers are still eligible (role on
    /// the target, not requester, pusher or builder). Rights are not frozen at request time:
    /// revocation is immediate, for promotions too.
    async fn revalidate(
        &self,
        row: &PromotionRow,
        approvals: Vec<airlock_store::ApprovalRow>,
    ) -> Result<Vec<airlock_store::ApprovalRow>> {
        let target = self.target_of(row)?;
        let needed = if row.break_glass.is_some() {
            Permission::BreakGlass
        } else {
            Permission::Promote
        };
        if let Some(grants) = self.current_grants(&row.requested_by).await? {
            let allowed = airlock_core::access::has_permission(
                &grants,
                needed,
                &PermissionTarget::Repository(target.clone()),
                now_millis(),
            );
            if !allowed {
                return Err(PromotionError::forbidden(
                    format!(
                        "{} requested this promotion but may no longer promote into {target}; request it again with the right role",
                        row.requested_by
                    ),
                    "the promotion is cancelled: its requester needs the promoter role on the target again, then requests it anew (airlock promote)",
                ));
            }
        }
        if !self.identity.enabled() || approvals.is_empty() {
            return Ok(approvals);
        }
        let role = self.gate_role(row.target_stage.as_str())?;
        // Oldest first, each checked against the requester and the approvals kept before it: a
        // stand-in of an earlier approver does not count, the earlier approver does.
        let mut valid: Vec<airlock_store::ApprovalRow> = Vec::new();
        for approval in approvals {
            let earlier: Vec<String> = valid.iter().map(|a| a.principal.clone()).collect();
            let parties = self.parties(row, earlier, &approval.principal).await?;
            let grants = self
                .current_grants(&approval.principal)
                .await?
                .unwrap_or_default();
            if check_approver(
                &approval.principal,
                &grants,
                role,
                &target,
                &parties,
                now_millis(),
            )
            .is_ok()
            {
                valid.push(approval);
            }
        }
        Ok(valid)
    }

    /// [`Self::revalidate`], cancelling the promotion (recorded) when its requester lost the right
    /// to promote.
    async fn revalidate_or_cancel(
        &self,
        row: &PromotionRow,
        approvals: Vec<airlock_store::ApprovalRow>,
    ) -> Result<Vec<airlock_store::ApprovalRow>> {
        match self.revalidate(row, approvals).await {
            Ok(approvals) => Ok(approvals),
            Err(err) => {
                // The requester lost the right to promote: the promotion ends here, recorded.
                let records = [AuditRecord {
                    time_millis: now_millis(),
                    actor: Actor::system(),
                    event: AuditEvent::PromotionClosed {
                        promotion: row.id.clone(),
                        repository: self.target_of(row)?,
                        digest: row.digest.clone(),
                        state: PromotionState::Cancelled.to_string(),
                    },
                }];
                self.metadata
                    .close_promotion(
                        &row.id,
                        &[PromotionState::Evaluating],
                        PromotionState::Cancelled,
                        row.claim.as_deref(),
                        &records,
                    )
                    .await?;
                Err(err)
            }
        }
    }

    /// The parties of `row` separation of duties looks at when `candidate` approves after
    /// `approvers`: every principal that ever pushed the artifact (or a manifest it contains) or
    /// evidence about it into a repository of its path, and, when the gate needs independent
    /// approvals, who vouched for the requester, the approvers, the pushers and builders and the
    /// candidate.
    async fn parties(
        &self,
        row: &PromotionRow,
        approvers: Vec<String>,
        candidate: &str,
    ) -> Result<PromotionParties> {
        let source = self.source_of(row)?;
        let digest = row.digest.clone();
        let contributors = self
            .metadata
            .contributors(&row.repository_path, &row.digest.to_string())
            .await?;
        let mut pushers = contributors.pushers;
        if let Some(latest) = self
            .metadata
            .pushed_by(source.as_str(), &row.digest.to_string())
            .await?
        {
            pushers.push(latest);
        }
        pushers.sort();
        pushers.dedup();
        let mut builders = self.builders(&source, &digest).await?;
        builders.extend(contributors.builders);
        builders.sort();
        builders.dedup();
        let independence = if self.independence_applies(row) {
            let mut names: Vec<&str> = vec![row.requested_by.as_str(), candidate];
            names.extend(approvers.iter().map(String::as_str));
            names.extend(pushers.iter().chain(&builders).map(String::as_str));
            names.sort_unstable();
            names.dedup();
            Some(self.metadata.vouchers(&names).await?)
        } else {
            None
        };
        Ok(PromotionParties {
            requester: row.requested_by.clone(),
            pushers,
            builders,
            approvers,
            independence,
        })
    }

    /// Whether the gate of `row` needs independent approvals for it
    /// (`[gates.<stage>].approvals.independent`).
    fn independence_applies(&self, row: &PromotionRow) -> bool {
        let gate = self.config.gate(row.target_stage.as_str());
        let critical = gate.critical.iter().any(|c| {
            c.repositories.iter().any(|p| {
                airlock_trust::verify::ScopePattern::from_str(p)
                    .is_ok_and(|p| p.matches(&row.repository_path))
            })
        });
        gate.approvals
            .independent
            .applies(critical, row.approvals_required)
    }

    /// Who pushed the artifact's signatures and attestations.
    async fn builders(&self, source: &RepoName, digest: &Digest) -> Result<Vec<String>> {
        let mut builders: Vec<String> = self
            .evidence
            .evidence_for(source, digest)
            .await?
            .into_iter()
            .map(|e| e.origin.pushed_by)
            .filter(|p| p != "airlock")
            .collect();
        builders.sort();
        builders.dedup();
        Ok(builders)
    }

    /// Decides `row`, again if the keyring changed between reading the evidence and promoting:
    /// a key revoked as compromised meanwhile must not let its evidence through. `stored` says
    /// whether `row` is stored yet: a new request's row is stored with its first decision (and
    /// `stored` set once it is).
    async fn decide(
        &self,
        row: &mut PromotionRow,
        caller: &Caller,
        stored: &mut bool,
    ) -> Result<Outcome> {
        for _ in 0..3 {
            match self.decide_once(row, caller, stored).await {
                Err(PromotionError::KeyringMoved) => continue,
                other => return other,
            }
        }
        Err(PromotionError::KeyringMoved)
    }

    async fn decide_once(
        &self,
        row: &mut PromotionRow,
        caller: &Caller,
        stored: &mut bool,
    ) -> Result<Outcome> {
        // Read before the evidence: a change after this point makes the promotion retry.
        let (keyring_version, keys) = self.evidence.keys().await?;
        let approvals = if !*stored {
            // A new request has no approvals, and its requester's right to promote into the
            // target was checked on this very request, with the grants it holds now.
            Vec::new()
        } else {
            let approvals = self.metadata.approvals(&row.id).await?;
            self.revalidate_or_cancel(row, approvals).await?
        };
        let input::Input {
            document,
            evidence,
            artifact,
        } = self.input_for(row, &approvals, Some(keys)).await?;
        let stored_input = document.to_string();
        // A frozen stage or a quarantined artifact denies whatever the requester does: retrying
        // against it is not misbehaviour.
        let blocked =
            document["target"]["frozen"] == true || document["artifact"]["quarantine"].is_object();
        let query = self.gate_query(&row.target_stage);
        let (decision, bundle_digest) = self.evaluate(query.clone(), document).await?;
        let required = self.required_for(row, &decision);
        let decision_id = random_id("dec");
        let now = now_millis();
        let record = DecisionRow {
            id: decision_id.clone(),
            promotion_id: Some(row.id.clone()),
            action: "promote".into(),
            query,
            bundle_digest: bundle_digest.clone(),
            input: stored_input,
            result: serde_json::to_string(&decision)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            allowed: decision.allowed,
            created_at: now,
        };
        // Decisions are made from `evaluating`: a new request, or one claimed by the approval
        // that completed its set.
        let from = &[PromotionState::Evaluating];
        let approved = approvals.len() as u32 >= required;
        let state = if !decision.allowed {
            PromotionState::Denied
        } else if approved {
            PromotionState::Evaluating
        } else {
            PromotionState::PendingApproval
        };
        let audit_state = match state {
            PromotionState::Denied | PromotionState::PendingApproval => state.as_str(),
            _ => "allowed",
        };
        let target = self.target_of(row)?;
        let digest = row.digest.clone();
        let records = [AuditRecord {
            time_millis: now,
            actor: caller.actor.clone(),
            event: AuditEvent::PromotionDecided {
                promotion: row.id.clone(),
                repository: target.clone(),
                digest: digest.clone(),
                state: audit_state.into(),
                decision: decision_id.clone(),
                policy: bundle_digest.clone(),
                rules: decision.deny.iter().map(|v| v.rule.clone()).collect(),
                approvals_required: required,
            },
        }];
        // An allowed, approved promotion stays `evaluating` (or `pending_approval`) until the
        // promotion transaction itself moves it to `promoted`.
        let transition = Transition {
            from,
            to: state,
            required,
            claim: row.claim.as_deref(),
        };
        let index = if *stored {
            self.metadata
                .record_decision(&record, Some(transition), &records)
                .await?
        } else {
            let index = self
                .metadata
                .insert_decided_promotion(row, &record, transition, &records)
                .await?;
            *stored = true;
            index
        };
        row.state = state;
        row.approvals_required = required;
        row.last_decision = Some(decision_id.clone());
        if decision.allowed && approved {
            self.promote(
                row,
                &approvals,
                Decided {
                    bundle_digest: &bundle_digest,
                    decision_id: &decision_id,
                    audit_index: index,
                    keyring_version,
                    evidence: &evidence,
                    artifact: &artifact,
                },
                caller,
            )
            .await?;
        }
        let event = crate::anomalies::PromotionEvent {
            requester: &row.requested_by,
            repository: &target,
            digest: &digest,
            break_glass: row.break_glass.as_deref(),
        };
        // A promotion's own signals were counted in its transaction (`promote`).
        if !decision.allowed && !blocked {
            let rules: Vec<String> = decision.deny.iter().map(|v| v.rule.clone()).collect();
            self.anomalies.promotion_denied(event, &rules).await;
        }
        let outcome = if decision.allowed && approved {
            PromotionState::Promoted
        } else {
            state
        };
        metrics::counter!(crate::metrics::PROMOTIONS, "stage" => row.target_stage.to_string(), "outcome" => outcome.to_string())
            .increment(1);
        let promotion = self.metadata.promotion(&row.id).await?;
        Ok(Outcome {
            promotion,
            decision,
            decision_id: Some(decision_id),
            approvals_required: required,
        })
    }

    fn target_of(&self, row: &PromotionRow) -> Result<RepoName> {
        RepoName::from_str(&format!("{}/{}", row.target_stage, row.repository_path))
            .map_err(|e| StoreError::Corrupt(e.to_string()).into())
    }

    fn source_of(&self, row: &PromotionRow) -> Result<RepoName> {
        RepoName::from_str(&format!("{}/{}", row.source_stage, row.repository_path))
            .map_err(|e| StoreError::Corrupt(e.to_string()).into())
    }

    /// The promotion transaction, with the signed attestation.
    async fn promote(
        &self,
        row: &PromotionRow,
        approvals: &[airlock_store::ApprovalRow],
        decided: Decided<'_>,
        caller: &Caller,
    ) -> Result<()> {
        let Decided {
            bundle_digest,
            decision_id,
            audit_index,
            keyring_version,
            evidence: decided_evidence,
            artifact,
        } = decided;
        let source = self.source_of(row)?;
        let target = self.target_of(row)?;
        let digest = row.digest.clone();
        let evidence = self.evidence_manifests(&source, &digest).await?;
        let facts = attestation::PromotionFacts {
            promotion: row,
            source: &source,
            target: &target,
            digest: &digest,
            approvals,
            bundle_digest,
            decision_id,
            audit_index,
        };
        let statement = attestation::statement(&facts);
        let summary = attestation::verification_summary(&facts, decided_evidence);
        // The path in every stage before the target, in pipeline order.
        let stage_repositories: Vec<(RepoName, bool)> = self
            .stages
            .all()
            .iter()
            .take_while(|s| s.name != row.target_stage)
            .map(|s| (source.in_stage(&s.name), s.mode == StageMode::Gated))
            .collect();
        let attestation = attestation::build_manifest(
            &self.metadata,
            &self.blobs,
            &self.attestation_keys.current(),
            attestation::Subject {
                digest: &digest,
                manifest: artifact,
                evidence: decided_evidence,
            },
            &stage_repositories,
            &[&statement, &summary],
        )
        .await?;
        let write = airlock_store::PromotionWrite {
            promotion_id: row.id.clone(),
            source: source.clone(),
            target: target.clone(),
            digest: digest.clone(),
            tags: self.settable_tags(row),
            channel: row.channel.clone(),
            evidence,
            attestation: attestation.clone(),
            claim: row.claim.clone().ok_or_else(|| {
                PromotionError::Conflict(format!(
                    "promotion {} is not claimed by this decision; look at airlock promotions show {}",
                    row.id, row.id
                ))
            })?,
            actor: caller.actor.clone(),
            keyring_version,
        };
        let mut tags: Vec<String> = write.tags.iter().map(|t| t.to_string()).collect();
        if let Some(channel) = &row.channel {
            tags.push(channel.to_string());
        }
        let records = [AuditRecord {
            time_millis: now_millis(),
            actor: caller.actor.clone(),
            event: AuditEvent::Promoted {
                promotion: row.id.clone(),
                repository: target,
                digest,
                source,
                tags,
                attestation: attestation.digest.clone(),
                break_glass: row.break_glass.clone(),
            },
        }];
        // The burst (and break-glass) signals count in the promotion's own transaction.
        let signals = self
            .anomalies
            .promotion_signals(crate::anomalies::PromotionEvent {
                requester: &row.requested_by,
                repository: &write.target,
                digest: &write.digest,
                break_glass: row.break_glass.as_deref(),
            });
        let raised = self
            .metadata
            .promote_observing(&write, &records, &signals)
            .await?;
        for anomaly in &raised {
            self.anomalies.raised(anomaly);
        }
        Ok(())
    }

    /// The evidence manifests a promotion carries from `source`: signature and attestation
    /// referrers of the artifact and cosign's `sha256-<hex>.sig` manifest, each only if it is an
    /// image manifest whose layers are all evidence (simple-signing payloads, DSSE envelopes,
    /// Sigstore bundles). Anything else a user attached passed no gate and stays behind.
    async fn evidence_manifests(
        &self,
        source: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<(Digest, Option<Tag>)>> {
        use airlock_trust::cosign;
        let is_evidence = |stored: &airlock_store::StoredManifest| {
            ParsedManifest::parse(Some(&stored.media_type), &stored.content).is_ok_and(|m| {
                m.kind == airlock_core::ManifestKind::Image
                    && !m.layers.is_empty()
                    && m.layers.iter().all(|l| {
                        matches!(
                            l.media_type.as_str(),
                            cosign::SIMPLE_SIGNING_MEDIA_TYPE | cosign::DSSE_MEDIA_TYPE
                        ) || cosign::is_sigstore_bundle_media_type(&l.media_type)
                    })
            })
        };
        let mut carried = Vec::new();
        for referrer in self.metadata.referrers(source, digest, None).await? {
            if let Some(stored) = self.metadata.manifest(source, &referrer.digest).await?
                && is_evidence(&stored)
            {
                carried.push((referrer.digest, None));
            }
        }
        let tag = Tag::from_str(&cosign::tag_scheme_tag(
            digest,
            cosign::TagSchemeKind::Signature,
        ))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(signatures) = self.metadata.resolve_tag(source, &tag).await?
            && let Some(stored) = self.metadata.manifest(source, &signatures).await?
            && is_evidence(&stored)
        {
            carried.push((signatures, Some(tag)));
        }
        Ok(carried)
    }

    /// Approves a pending promotion; the last approval decides it again and promotes.
    pub async fn approve(
        &self,
        id: &str,
        comment: Option<String>,
        caller: &Caller,
    ) -> Result<Outcome> {
        let mut row = self.promotion(id).await?;
        if self.expire_if_due(&row).await? {
            row = self.promotion(id).await?;
        }
        let state = row.state;
        if state != PromotionState::PendingApproval {
            return Err(ApprovalRefusal::NotPending {
                id: id.to_string(),
                state,
            }
            .into());
        }
        let target = self.target_of(&row)?;
        let role = self.gate_role(row.target_stage.as_str())?;
        let digest = row.digest.clone();
        let approvers: Vec<String> = self
            .metadata
            .approvals(id)
            .await?
            .into_iter()
            .map(|a| a.principal)
            .collect();
        // A promotion reopened with its set complete (its final decision could not be made, or
        // stalled): an approver who already approved may ask for the final decision again.
        let resume = approvers.len() as u32 >= row.approvals_required
            && approvers.iter().any(|a| a == caller.name());
        let others: Vec<String> = if resume {
            approvers
                .into_iter()
                .filter(|a| a != caller.name())
                .collect()
        } else {
            approvers
        };
        let parties = self.parties(&row, others, caller.name()).await?;
        let grants = caller
            .who
            .as_ref()
            .map(|w| w.grants.clone())
            .unwrap_or_default();
        if caller.who.is_some() {
            check_approver(
                caller.name(),
                &grants,
                role,
                &target,
                &parties,
                now_millis(),
            )?;
        }
        let claim = random_id("clm");
        let not_pending = |err| match err {
            PromotionWriteError::AlreadyApproved => {
                PromotionError::Approval(ApprovalRefusal::AlreadyApproved {
                    principal: caller.name().to_string(),
                })
            }
            PromotionWriteError::WrongState { id, state } => {
                PromotionError::Approval(ApprovalRefusal::NotPending {
                    id,
                    state: state.unwrap_or(PromotionState::Evaluating),
                })
            }
            other => other.into(),
        };
        let complete = if resume {
            self.metadata
                .claim_approved(id, &claim)
                .await
                .map_err(not_pending)?
        } else {
            let records = [AuditRecord {
                time_millis: now_millis(),
                actor: caller.actor.clone(),
                event: AuditEvent::PromotionApproved {
                    promotion: row.id.clone(),
                    repository: target,
                    digest,
                    comment: comment.clone(),
                },
            }];
            self.metadata
                .add_approval(id, caller.name(), comment.as_deref(), &claim, &records)
                .await
                .map_err(not_pending)?
                .1
        };
        if complete {
            // This call completed the set and claimed the promotion (`evaluating`): decide it
            // again now, and put it back if that cannot be done.
            row.state = PromotionState::Evaluating;
            row.claim = Some(claim.clone());
            let outcome = self.decide(&mut row, caller, &mut true).await;
            if let Err(err) = &outcome {
                let records: Vec<AuditRecord> = match self.target_of(&row) {
                    Ok(repository) => vec![AuditRecord {
                        time_millis: now_millis(),
                        actor: Actor::system(),
                        event: AuditEvent::PromotionReopened {
                            promotion: row.id.clone(),
                            repository,
                            digest: row.digest.clone(),
                            reason: format!("the final decision could not be made: {err}"),
                        },
                    }],
                    _ => Vec::new(),
                };
                if let Err(reopen) = self
                    .metadata
                    .reopen_promotion(id, Some(&claim), &records)
                    .await
                {
                    tracing::error!(promotion = %id, error = %reopen, "could not reopen a claimed promotion");
                }
            }
            return outcome;
        }
        let decision_id = row.last_decision.clone();
        Ok(Outcome {
            promotion: self.metadata.promotion(id).await?,
            decision: pending_decision(),
            decision_id,
            approvals_required: row.approvals_required,
        })
    }

    async fn promotion(&self, id: &str) -> Result<PromotionRow> {
        self.metadata.promotion(id).await?.ok_or_else(|| {
            PromotionError::NotFound(format!(
                "no promotion {id} (airlock promotions list shows them)"
            ))
        })
    }

    /// Closes `row` as expired if its approvals are overdue.
    async fn expire_if_due(&self, row: &PromotionRow) -> Result<bool> {
        // A claimed promotion (`evaluating`) past its deadline was left by a crash or a failed
        // final decision: it expires too, so it cannot block the artifact forever.
        let open = matches!(
            row.state,
            PromotionState::PendingApproval | PromotionState::Evaluating
        );
        if !open || row.expires_at > now_millis() {
            return Ok(false);
        }
        let target = self.target_of(row)?;
        let digest = row.digest.clone();
        let records = [AuditRecord {
            time_millis: now_millis(),
            actor: Actor::system(),
            event: AuditEvent::PromotionClosed {
                promotion: row.id.clone(),
                repository: target,
                digest,
                state: PromotionState::Expired.to_string(),
            },
        }];
        match self
            .metadata
            .close_promotion(
                &row.id,
                &[PromotionState::PendingApproval, PromotionState::Evaluating],
                PromotionState::Expired,
                None,
                &records,
            )
            .await
        {
            Ok(()) | Err(PromotionWriteError::WrongState { .. }) => Ok(true),
            Err(err) => Err(err.into()),
        }
    }

    /// Expires every overdue pending promotion (the periodic sweep).
    pub async fn expire_overdue(&self) -> Result<usize> {
        let overdue = self.metadata.expired_promotions(now_millis()).await?;
        let count = overdue.len();
        for row in overdue {
            self.expire_if_due(&row?).await?;
        }
        Ok(count)
    }

    /// Reopens or cancels every promotion left `evaluating` longer than
    /// `policy.decision_timeout_secs` (see [`stalled_recovery`]): at start-up, and periodically for
    /// a replica that stopped mid-decision. A promotion with approvals goes back to
    /// `pending_approval` with all of them (`promotion.reopened`); one that never got an approval
    /// is cancelled so it can be requested again. Neither promotes, and the stalled decision, if it
    /// is still running somewhere, has lost its claim and can no longer promote. Returns how many
    /// were recovered.
    pub async fn recover_stalled(&self) -> Result<usize> {
        let timeout = (self.config.policy.decision_timeout_secs as i64).saturating_mul(1000);
        let stalled = self
            .metadata
            .stalled_promotions(now_millis().saturating_sub(timeout))
            .await?;
        let mut recovered = 0;
        for row in stalled {
            // One row that cannot be recovered (a stored value that no longer parses, a storage
            // error) must not hold back the others: log it and go on; the next sweep retries.
            let row = match row {
                Ok(row) => row,
                Err(err) => {
                    tracing::error!(error = %err, "a stalled promotion cannot be read");
                    continue;
                }
            };
            match self.recover_one(&row).await {
                Ok(true) => recovered += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::error!(promotion = %row.id, error = %err, "recovering a stalled promotion failed")
                }
            }
        }
        Ok(recovered)
    }

    /// Recovers one stalled promotion (see [`PromotionService::recover_stalled`]); `false` when
    /// another decision or a cancel got to it first.
    async fn recover_one(&self, row: &PromotionRow) -> Result<bool> {
        let repository = self.target_of(row)?;
        let digest = row.digest.clone();
        let approvals = self.metadata.approvals(&row.id).await?.len();
        let done = match stalled_recovery(approvals) {
            StalledRecovery::Reopen => {
                let records = [AuditRecord {
                    time_millis: now_millis(),
                    actor: Actor::system(),
                    event: AuditEvent::PromotionReopened {
                        promotion: row.id.clone(),
                        repository,
                        digest,
                        reason: format!(
                            "its final decision did not finish within policy.decision_timeout_secs ({} s): the server deciding it stopped; its {approvals} approval(s) are kept, and an approver approves again to decide it",
                            self.config.policy.decision_timeout_secs
                        ),
                    },
                }];
                self.metadata
                    .reopen_promotion(&row.id, row.claim.as_deref(), &records)
                    .await?
            }
            StalledRecovery::Cancel => {
                let records = [AuditRecord {
                    time_millis: now_millis(),
                    actor: Actor::system(),
                    event: AuditEvent::PromotionClosed {
                        promotion: row.id.clone(),
                        repository,
                        digest,
                        state: PromotionState::Cancelled.to_string(),
                    },
                }];
                match self
                    .metadata
                    .close_promotion(
                        &row.id,
                        &[PromotionState::Evaluating],
                        PromotionState::Cancelled,
                        row.claim.as_deref(),
                        &records,
                    )
                    .await
                {
                    Ok(()) => true,
                    Err(
                        PromotionWriteError::WrongState { .. }
                        | PromotionWriteError::ClaimLost { .. },
                    ) => false,
                    Err(err) => return Err(err.into()),
                }
            }
        };
        if done {
            tracing::warn!(promotion = %row.id, approvals, "recovered a promotion whose decision stalled");
        }
        Ok(done)
    }

    /// The tags of `row` the promotion sets: those [`check_promotion_tag`] allows (a promotion
    /// requested before that check existed may name others; they are left out, not set).
    fn settable_tags(&self, row: &PromotionRow) -> Vec<Tag> {
        let stage = &row.target_stage;
        let channel_tags = self
            .stages
            .all()
            .iter()
            .find(|s| s.name == *stage)
            .map(|s| s.channel_tags.clone())
            .unwrap_or_default();
        row.tags
            .iter()
            .filter(|t| match check_promotion_tag(t, stage, &channel_tags) {
                Ok(()) => true,
                Err(refusal) => {
                    tracing::warn!(promotion = %row.id, %refusal, "tag left out of the promotion");
                    false
                }
            })
            .cloned()
            .collect()
    }

    /// Cancels a promotion that is pending approval, or still `evaluating` (its decision then
    /// can no longer promote it): its requester, or an access-admin.
    pub async fn cancel(&self, id: &str, caller: &Caller) -> Result<PromotionRow> {
        let row = self.promotion(id).await?;
        if row.requested_by != caller.name()
            && !caller.has(Permission::ManageAccess, &PermissionTarget::Global)
        {
            return Err(PromotionError::forbidden(
                "only the requester (or an access-admin) cancels a promotion",
                "ask its requester (airlock promotions show ID names them); an approver who wants it stopped rejects it (airlock promotions reject ID --reason ..)",
            ));
        }
        let records = [AuditRecord {
            time_millis: now_millis(),
            actor: caller.actor.clone(),
            event: AuditEvent::PromotionClosed {
                promotion: row.id.clone(),
                repository: self.target_of(&row)?,
                digest: row.digest.clone(),
                state: PromotionState::Cancelled.to_string(),
            },
        }];
        self.metadata
            .close_promotion(
                id,
                &[PromotionState::PendingApproval, PromotionState::Evaluating],
                PromotionState::Cancelled,
                None,
                &records,
            )
            .await?;
        self.promotion(id).await
    }

    /// Rejects a promotion pending approval: a recorded denial by a person eligible to approve it
    /// (the gate's role on the target; not its requester, a pusher or a builder of the artifact;
    /// independent where the gate asks for it: [`check_approver`]). The promotion ends `denied`
    /// with a decision record (action `reject`) naming who rejected it and why as its last
    /// decision, and `promotion.rejected` is appended in the same transaction.
    pub async fn reject(&self, id: &str, reason: &str, caller: &Caller) -> Result<PromotionRow> {
        if reason.trim().is_empty() {
            return Err(PromotionError::bad_request(
                "a rejection needs a reason",
                "say why with --reason TEXT (the requester reads it in `airlock promotions show`)",
            ));
        }
        let mut row = self.promotion(id).await?;
        if self.expire_if_due(&row).await? {
            row = self.promotion(id).await?;
        }
        let not_pending = |state: Option<PromotionState>| {
            let state = state.map_or("missing", PromotionState::as_str);
            PromotionError::Conflict(format!(
                "promotion {id} is {state}, not pending_approval; only a promotion waiting for approvals can be rejected"
            ))
        };
        if row.state != PromotionState::PendingApproval {
            return Err(not_pending(Some(row.state)));
        }
        let target = self.target_of(&row)?;
        let source = self.source_of(&row)?;
        let digest = row.digest.clone();
        let role = self.gate_role(row.target_stage.as_str())?;
        // An approver may change their mind: their own approval does not make them ineligible.
        let others: Vec<String> = self
            .metadata
            .approvals(id)
            .await?
            .into_iter()
            .map(|a| a.principal)
            .filter(|a| a != caller.name())
            .collect();
        let parties = self.parties(&row, others, caller.name()).await?;
        if let Some(who) = &caller.who {
            check_approver(
                caller.name(),
                &who.grants,
                role,
                &target,
                &parties,
                now_millis(),
            )
            .map_err(PromotionError::RejectionRefused)?;
        }
        let now = now_millis();
        let decision = Decision {
            allowed: false,
            deny: vec![airlock_policy::Violation {
                rule: "airlock.rejected".into(),
                msg: format!("{} rejected the promotion: {reason}", caller.name()),
                remediation:
                    "address the rejection, then request the promotion again (airlock promote)"
                        .into(),
                docs: Some("docs/promotion.md#rejecting-a-promotion".into()),
            }],
            warn: Vec::new(),
            approvals: None,
            error: None,
        };
        let input = json!({
            "action": "reject",
            "promotion": row.id,
            "artifact": {"name": source.as_str(), "digest": row.digest},
            "target": {"repository": target.as_str(), "stage": row.target_stage},
            "rejected_by": caller.name(),
            "reason": reason,
        });
        let decision_id = random_id("dec");
        let record = DecisionRow {
            id: decision_id.clone(),
            promotion_id: Some(row.id.clone()),
            action: "reject".into(),
            query: String::new(),
            bundle_digest: self.bundle().digest().to_string(),
            input: input.to_string(),
            result: serde_json::to_string(&decision)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            allowed: false,
            created_at: now,
        };
        let records = [AuditRecord {
            time_millis: now,
            actor: caller.actor.clone(),
            event: AuditEvent::PromotionRejected {
                promotion: row.id.clone(),
                repository: target,
                digest,
                reason: reason.to_string(),
                decision: decision_id,
            },
        }];
        let transition = Transition {
            from: &[PromotionState::PendingApproval],
            to: PromotionState::Denied,
            required: row.approvals_required,
            claim: None,
        };
        self.metadata
            .record_decision(&record, Some(transition), &records)
            .await
            .map_err(|err| match err {
                PromotionWriteError::WrongState { state, .. } => not_pending(state),
                other => other.into(),
            })?;
        metrics::counter!(crate::metrics::PROMOTIONS, "stage" => row.target_stage.to_string(), "outcome" => "rejected")
            .increment(1);
        self.promotion(id).await
    }

    /// A promotion with its approvals.
    pub async fn show(&self, id: &str) -> Result<(PromotionRow, Vec<airlock_store::ApprovalRow>)> {
        let row = self.promotion(id).await?;
        if self.expire_if_due(&row).await? {
            let row = self.promotion(id).await?;
            return Ok((row, self.metadata.approvals(id).await?));
        }
        Ok((row, self.metadata.approvals(id).await?))
    }

    /// Up to `limit` promotions before the cursor `before` (from the newest when `None`),
    /// newest first, optionally of one state and one repository path.
    pub async fn list(
        &self,
        state: Option<&str>,
        path: Option<&str>,
        before: Option<&TimeCursor>,
        limit: u32,
    ) -> Result<Vec<PromotionRow>> {
        let state = state
            .map(|given| {
                PromotionState::from_str(given).map_err(|_| PromotionError::UnknownState {
                    given: given.to_string(),
                })
            })
            .transpose()?;
        self.expire_overdue().await?;
        Ok(self
            .metadata
            .promotions_page(state, path, before, limit)
            .await?)
    }

    /// A decision record.
    pub async fn decision(&self, id: &str) -> Result<DecisionRow> {
        self.metadata
            .decision(id)
            .await?
            .ok_or_else(|| PromotionError::NotFound(format!("no decision {id}")))
    }

    /// Re-evaluates a stored decision with its stored input and bundle; returns the replayed
    /// decision and whether it is identical.
    pub async fn replay(&self, id: &str) -> Result<(DecisionRow, Decision, bool)> {
        let record = self.decision(id).await?;
        if record.action == "reject" {
            let input: Value = serde_json::from_str(&record.input)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            return Err(PromotionError::NotReplayable {
                id: record.id,
                principal: input["rejected_by"]
                    .as_str()
                    .unwrap_or("a person")
                    .to_string(),
            });
        }
        let files = self
            .metadata
            .bundle_files(&record.bundle_digest)
            .await?
            .ok_or_else(|| {
                PromotionError::NotFound(format!("bundle {} is not stored", record.bundle_digest))
            })?;
        let files: Vec<(String, String)> =
            serde_json::from_str(&files).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let bundle = Bundle::from_files(files).map_err(|e| {
            StoreError::Corrupt(format!(
                "stored policy bundle {} does not load: {e}",
                record.bundle_digest
            ))
        })?;
        if bundle.digest() != record.bundle_digest {
            return Err(StoreError::Corrupt(format!(
                "stored policy bundle {} does not hash to its digest",
                record.bundle_digest
            ))
            .into());
        }
        let input: Value =
            serde_json::from_str(&record.input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let query = record.query.clone();
        let timeout = self.timeout();
        let replayed = tokio::task::spawn_blocking(move || {
            let decision = bundle.evaluate(&query, &input, timeout);
            with_service_rules(decision, &input)
        })
        .await
        .unwrap_or_else(|e| Decision::fail_closed(format!("replay panicked: {e}")));
        let original: Value =
            serde_json::from_str(&record.result).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let identical = serde_json::to_value(&replayed).ok() == Some(original);
        Ok((record, replayed, identical))
    }

    /// Moves channel tag `channel` of `repo` back to `to` (default: the digest it named before the
    /// current one), if the rollback gate allows the target digest today.
    pub async fn rollback(
        &self,
        repo: &RepoName,
        channel: &Tag,
        to: Option<Digest>,
        caller: &Caller,
    ) -> Result<(Digest, Digest, Decision)> {
        if !caller.has(
            Permission::Promote,
            &PermissionTarget::Repository(repo.clone()),
        ) {
            return Err(PromotionError::forbidden(
                format!(
                    "{} may not roll back {repo}: that needs the promoter role on it",
                    caller.name()
                ),
                "ask an access-admin for the promoter role on the repository (or just in time: airlock access request promoter --scope REPOSITORY --for 1h --reason ..)",
            ));
        }
        let stage = self.stage_config(&repo.stage())?;
        if !stage.channel_tags.iter().any(|c| c == channel.as_str()) {
            return Err(PromotionError::bad_request(
                format!(
                    "{channel} is not a channel tag of stage {}; only channel tags move (its channel tags: {})",
                    stage.name,
                    if stage.channel_tags.is_empty() {
                        "none".to_string()
                    } else {
                        stage.channel_tags.join(", ")
                    }
                ),
                "name one of the stage's channel tags with --channel",
            ));
        }
        let current = self
            .metadata
            .resolve_tag(repo, channel)
            .await?
            .ok_or_else(|| {
                PromotionError::NotFound(format!(
                    "{repo}:{channel} does not exist; nothing to roll back"
                ))
            })?;
        let history = self
            .metadata
            .channel_history(repo.as_str(), channel.as_str())
            .await?;
        let target = match to {
            Some(digest) => digest,
            None => {
                // Walk back through the promotions that moved the channel: the one before the
                // promotion of the current digest. (A second rollback keeps going back; it never
                // returns to the release that was rolled away from.)
                let promoted: Vec<&Digest> = history
                    .iter()
                    .filter(|m| m.action == "promote")
                    .map(|m| &m.digest)
                    .collect();
                let position = promoted
                    .iter()
                    .rposition(|d| **d == current)
                    .unwrap_or(promoted.len());
                let previous = promoted[..position]
                    .iter()
                    .rev()
                    .copied()
                    .find(|d| **d != current)
                    .ok_or_else(|| {
                        PromotionError::Conflict(format!(
                            "{repo}:{channel} has no earlier digest to roll back to"
                        ))
                    })?;
                previous.clone()
            }
        };
        if target == current {
            return Err(PromotionError::Conflict(format!(
                "{repo}:{channel} already names {target}"
            )));
        }
        let promoted = self
            .metadata
            .promotions_of(repo.path(), &target.to_string())
            .await?
            .into_iter()
            .find(|p| p.state == PromotionState::Promoted && p.target_stage == repo.stage());
        let Some(promotion) = promoted else {
            return Err(PromotionError::Conflict(format!(
                "{target} was never promoted into {repo}; roll back only to a digest promoted there"
            )));
        };
        let mut row = promotion.clone();
        row.channel = Some(channel.clone());
        let input = input::build_rollback(self, &row, caller).await?;
        let query = self
            .gate(&repo.stage())
            .rollback_query
            .unwrap_or_else(|| "data.airlock.rollback".into());
        let (decision, bundle_digest) = self.evaluate(query.clone(), input.clone()).await?;
        let decision_id = random_id("dec");
        let record = DecisionRow {
            id: decision_id.clone(),
            promotion_id: None,
            action: "rollback".into(),
            query,
            bundle_digest,
            input: input.to_string(),
            result: serde_json::to_string(&decision)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            allowed: decision.allowed,
            created_at: now_millis(),
        };
        if !decision.allowed {
            let records = [AuditRecord {
                time_millis: now_millis(),
                actor: caller.actor.clone(),
                event: AuditEvent::RollbackDenied {
                    repository: repo.clone(),
                    channel: channel.clone(),
                    to: target.clone(),
                    decision: decision_id,
                    rules: decision.deny.iter().map(|v| v.rule.clone()).collect(),
                },
            }];
            self.metadata
                .record_decision(&record, None, &records)
                .await?;
            return Ok((current, target, decision));
        }
        let records = [AuditRecord {
            time_millis: now_millis(),
            actor: caller.actor.clone(),
            event: AuditEvent::RolledBack {
                repository: repo.clone(),
                channel: channel.clone(),
                from: current.clone(),
                to: target.clone(),
                decision: decision_id,
            },
        }];
        self.metadata
            .roll_back(airlock_store::Rollback {
                repository: repo.as_str(),
                tag: channel.as_str(),
                from: &current.to_string(),
                to: &target.to_string(),
                by: caller.name(),
                decision: &record,
                records: &records,
            })
            .await?;
        Ok((current, target, decision))
    }

    /// Freezes (with a reason) or unfreezes a gated stage.
    pub async fn set_freeze(
        &self,
        stage: &StageName,
        reason: Option<&str>,
        caller: &Caller,
    ) -> Result<bool> {
        if self.stage_config(stage)?.mode != StageMode::Gated {
            return Err(PromotionError::bad_request(
                format!("{stage} is not a gated stage; only gated stages are frozen"),
                "freeze a gated stage (the stages promotions go into)",
            ));
        }
        let allowed = caller.has(Permission::Approve, &PermissionTarget::Stage(stage.clone()))
            || caller.has(Permission::ManageAccess, &PermissionTarget::Global);
        if !allowed {
            return Err(PromotionError::forbidden(
                format!("freezing {stage} needs the approver role on it (or access-admin)"),
                "ask an approver of the whole stage or an access-admin to do it, or for the approver role on the stage",
            ));
        }
        if let Some(reason) = reason
            && reason.trim().is_empty()
        {
            return Err(PromotionError::bad_request(
                "a freeze needs a reason",
                "say why with --reason TEXT (everyone refused by the freeze sees it)",
            ));
        }
        if let Some(freeze) = self.metadata.freeze(stage.as_str()).await?
            && let Some(anomaly) = freeze.anomaly_id
        {
            return Err(PromotionError::Conflict(format!(
                "{stage} is frozen by anomaly {anomaly} ({}); it stays frozen until an access-admin resolves it: airlock anomalies resolve {anomaly} --reason ..",
                freeze.reason
            )));
        }
        let records = [AuditRecord {
            time_millis: now_millis(),
            actor: caller.actor.clone(),
            event: AuditEvent::StageFreezeChanged {
                stage: stage.to_string(),
                frozen: reason.is_some(),
                reason: reason.unwrap_or("unfrozen").to_string(),
            },
        }];
        Ok(self
            .metadata
            .set_freeze(stage.as_str(), reason.map(|r| (r, caller.name())), &records)
            .await?)
    }
}
