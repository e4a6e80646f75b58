//! Anomaly response: turns what the other services observe (a denied promotion, a failed
//! authentication, a tampered signature, a pull of an unpromoted digest, a promotion at night, a
//! burst of promotions, a break-glass promotion, a refused push) into signals, counts them against the configured
//! rules and takes the rules' actions, before the observing request returns, so an action holds
//! from the very next request.
//!
//! Counting happens in the database (`airlock_store::Metadata::observe_signal`): one indexed insert
//! and count per signal, in one transaction with the anomaly, its action and its audit entry. A
//! completed promotion's signals ([`Anomalies::promotion_signals`]) are counted the same way inside
//! the promotion's own transaction (`Metadata::promote_observing`).
//! Signals are rare events (refusals and promotions), so the common request path (a pull of a
//! promoted artifact) pays nothing but a left join in the manifest query it makes anyway.

pub mod routes;

use std::sync::Arc;

use airlock_core::access::{Permission, PermissionTarget};
use airlock_core::{
    Actor, AllowedHours, AnomalyRule, AnomalyTarget, Digest, RepoName, Signal, StageMode, Stages,
};
use airlock_store::{AnomalyRow, Metadata, ResolveError, StoreError, Tripwire, now_millis};

use crate::config::AnomalyConfig;
use crate::identity::Authenticated;

/// Why an anomaly request failed.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    /// The caller may not read anomalies.
    #[error("{principal} may not read anomalies: that needs the access-admin or auditor role")]
    ReadForbidden {
        /// The caller.
        principal: String,
    },
    /// The caller may not resolve anomalies.
    #[error("{principal} may not resolve anomalies: that needs the access-admin role")]
    ResolveForbidden {
        /// The caller.
        principal: String,
    },
    /// The caller is the principal the anomaly is about.
    #[error("anomaly {id} is about {principal}; another access-admin must resolve it")]
    ResolveOwn {
        /// The anomaly.
        id: i64,
        /// The caller, whom it is about.
        principal: String,
    },
    /// No anomaly has this id.
    #[error("there is no anomaly {id}")]
    Unknown {
        /// The id asked for.
        id: i64,
    },
    /// The anomaly is already resolved.
    #[error("anomaly {id} is already resolved")]
    AlreadyResolved {
        /// The anomaly.
        id: i64,
    },
    /// Resolving without a reason.
    #[error("resolving an anomaly needs a reason (--reason)")]
    ReasonMissing,
    /// A reason over the limit.
    #[error("the reason is longer than {limit} bytes")]
    ReasonTooLong {
        /// The limit.
        limit: usize,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ResolveError> for AnomalyError {
    fn from(err: ResolveError) -> Self {
        match err {
            ResolveError::NotFound(id) => Self::Unknown { id },
            ResolveError::AlreadyResolved(id) => Self::AlreadyResolved { id },
            ResolveError::Store(err) => Self::Store(err),
        }
    }
}

/// The longest reason a resolution may give.
pub const MAX_REASON_BYTES: usize = 1000;

/// Which anomalies to list, besides all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyStatus {
    /// Not resolved yet.
    Open,
    /// Resolved.
    Resolved,
}

/// A promotion event, as the promotion rules need it.
#[derive(Debug, Clone, Copy)]
pub struct PromotionEvent<'a> {
    /// Who requested the promotion.
    pub requester: &'a str,
    /// The target repository.
    pub repository: &'a RepoName,
    /// The artifact.
    pub digest: &'a Digest,
    /// The break-glass reason, for an emergency promotion.
    pub break_glass: Option<&'a str>,
}

impl PromotionEvent<'_> {
    /// What an anomaly about this promotion is about.
    fn target(&self) -> AnomalyTarget {
        AnomalyTarget {
            principal: Some(self.requester.to_string()),
            repository: Some(self.repository.clone()),
            digest: Some(self.digest.clone()),
            stage: Some(self.repository.stage().to_string()),
            source: None,
        }
    }
}

/// The anomaly detector and the anomaly records behind `airlock anomalies`.
pub struct Anomalies {
    metadata: Metadata,
    config: AnomalyConfig,
    stages: Stages,
    hours: Option<AllowedHours>,
}

impl Anomalies {
    /// A detector for `config` (already validated).
    pub fn new(metadata: Metadata, config: AnomalyConfig, stages: Stages) -> Arc<Self> {
        let hours = config.off_hours_promotion.allowed_hours().ok();
        Arc::new(Self {
            metadata,
            config,
            stages,
            hours,
        })
    }

    /// The newest `limit` quarantines in force, newest first.
    pub async fn quarantines(
        &self,
        limit: u32,
    ) -> Result<Vec<airlock_store::ActiveQuarantine>, StoreError> {
        self.metadata.quarantines(limit).await
    }

    /// Counts `signal` under its rule (if enabled) and takes the rule's action when it trips.
    /// Never fails the observing request: a storage failure is logged and counted.
    pub async fn observe(&self, signal: Signal) -> Option<AnomalyRow> {
        let tripwire = self.tripwire(signal.rule)?;
        match self
            .metadata
            .observe_signal(&signal, tripwire, now_millis())
            .await
        {
            Ok(Some(anomaly)) => {
                self.raised(&anomaly);
                Some(anomaly)
            }
            Ok(None) => None,
            Err(err) => {
                self.observe_failed(&err, signal.rule);
                None
            }
        }
    }

    /// `rule`'s settings as storage counts them, or `None` when the rule is disabled.
    fn tripwire(&self, rule: AnomalyRule) -> Option<Tripwire> {
        let config = self.config.rule(rule);
        if !config.enabled && rule != AnomalyRule::BreakGlass {
            return None;
        }
        Some(Tripwire {
            threshold: config.threshold,
            window_ms: (config.window_secs as i64).saturating_mul(1000),
            action: config.action,
        })
    }

    /// Counts and logs an anomaly that storage raised.
    pub fn raised(&self, anomaly: &AnomalyRow) {
        metrics::counter!(crate::metrics::ANOMALIES, "rule" => anomaly.rule.as_str(), "action" => anomaly.action.as_str())
            .increment(1);
        tracing::warn!(
            anomaly = anomaly.id,
            rule = %anomaly.rule,
            key = %anomaly.key,
            action = %anomaly.action,
            applied = anomaly.applied,
            "anomaly detected: {}",
            anomaly.summary
        );
    }

    /// Counts and logs a signal of `rule` that storage could not record.
    pub fn observe_failed(&self, err: &StoreError, rule: AnomalyRule) {
        metrics::counter!(crate::metrics::ANOMALY_ERRORS).increment(1);
        tracing::error!(error = %err, rule = %rule, "could not record an anomaly signal");
    }

    /// A promotion was denied for `requester`.
    pub async fn promotion_denied(&self, event: PromotionEvent<'_>, rules: &[String]) {
        let stage = event.repository.stage().to_string();
        // airlock's own rules (a freeze, a quarantine, a policy error) are not the requester's
        // doing: retries against them must not lock anyone.
        let by_policy = rules.iter().any(|rule| !rule.starts_with("airlock."));
        if !by_policy || !self.config.denied_promotions.watches(&stage) {
            return;
        }
        self.observe(Signal {
            rule: AnomalyRule::DeniedPromotions,
            key: format!("principal:{}", event.requester),
            target: event.target(),
            summary: format!(
                "promotion of {}@{} requested by {} was denied ({})",
                event.repository,
                event.digest,
                event.requester,
                rules.join(", ")
            ),
        })
        .await;
    }

    /// A promotion was requested (checked against the allowed hours).
    pub async fn promotion_requested(&self, event: PromotionEvent<'_>) {
        let stage = event.repository.stage().to_string();
        let config = &self.config.off_hours_promotion;
        let Some(hours) = &self.hours else {
            return;
        };
        let now = now_millis();
        if !config.enabled || !config.watches(&stage) || hours.allows(now) {
            return;
        }
        self.observe(Signal {
            rule: AnomalyRule::OffHoursPromotion,
            key: format!("principal:{}", event.requester),
            target: event.target(),
            summary: format!(
                "{} requested a promotion of {}@{} at {} UTC, outside the allowed hours ({} {})",
                event.requester,
                event.repository,
                event.digest,
                airlock_core::audit::rfc3339_millis(now),
                config.days.as_deref().unwrap_or("*"),
                config.hours.as_deref().unwrap_or("00:00-24:00"),
            ),
        })
        .await;
    }

    /// The signals a promotion gives, each with its rule's settings: a burst of promotions
    /// (counted per stage) and a break-glass promotion (which always alerts). The promotion
    /// counts them in its own transaction (`Metadata::promote_observing`) and reports what they
    /// raised with [`Anomalies::raised`].
    pub fn promotion_signals(&self, event: PromotionEvent<'_>) -> Vec<(Signal, Tripwire)> {
        let stage = event.repository.stage().to_string();
        let target = event.target();
        let mut signals = Vec::new();
        if let Some(reason) = event.break_glass
            && self.config.break_glass.watches(&stage)
        {
            signals.push(Signal {
                rule: AnomalyRule::BreakGlass,
                key: format!("principal:{}", event.requester),
                target: target.clone(),
                summary: format!(
                    "break-glass promotion of {}@{} by {}: {reason}",
                    event.repository, event.digest, event.requester
                ),
            });
        }
        if self.config.promotion_burst.watches(&stage) {
            let config = &self.config.promotion_burst;
            signals.push(Signal {
                rule: AnomalyRule::PromotionBurst,
                key: format!("stage:{stage}"),
                target: AnomalyTarget {
                    principal: None,
                    ..target
                },
                summary: format!(
                    "{} promotions into {stage} within {} s (the last: {}@{} by {})",
                    config.threshold,
                    config.window_secs,
                    event.repository,
                    event.digest,
                    event.requester
                ),
            });
        }
        signals
            .into_iter()
            .filter_map(|signal| {
                let tripwire = self.tripwire(signal.rule)?;
                Some((signal, tripwire))
            })
            .collect()
    }

    /// The signals of an authentication that failed from `source`, with a wrong secret for
    /// `principal` (`None` when no principal can be held to it: an unknown name, a forged or
    /// unverified token): one per principal and one per source address, each with the rule's
    /// settings, for storage to count in the transaction that records the failure (so every
    /// refusal writes once, whichever signals it carries). Empty when the rule is disabled.
    pub fn authentication_failure_signals(
        &self,
        principal: Option<&str>,
        source: Option<&str>,
    ) -> Vec<(Signal, Tripwire)> {
        let Some(tripwire) = self.tripwire(AnomalyRule::AuthFailures) else {
            return Vec::new();
        };
        let mut signals = Vec::with_capacity(2);
        if let Some(principal) = principal.filter(|p| *p != "unknown") {
            signals.push((
                Signal {
                    rule: AnomalyRule::AuthFailures,
                    key: format!("principal:{principal}"),
                    target: AnomalyTarget {
                        principal: Some(principal.to_string()),
                        source: source.map(str::to_string),
                        ..AnomalyTarget::default()
                    },
                    summary: format!(
                        "{} failed authentications for {principal} within {} s",
                        self.config.auth_failures.threshold, self.config.auth_failures.window_secs
                    ),
                },
                tripwire,
            ));
        }
        if let Some(source) = source {
            signals.push((
                Signal {
                    rule: AnomalyRule::AuthFailures,
                    key: format!("source:{source}"),
                    // No principal: a source address is not one principal to lock.
                    target: AnomalyTarget {
                        source: Some(source.to_string()),
                        ..AnomalyTarget::default()
                    },
                    summary: format!(
                        "{} failed authentications from {source} within {} s",
                        self.config.auth_failures.threshold, self.config.auth_failures.window_secs
                    ),
                },
                tripwire,
            ));
        }
        signals
    }

    /// `actor` was refused a push (or delete) into `repository` by the stage rules.
    pub async fn push_refused(&self, actor: &Actor, repository: &RepoName) {
        let config = &self.config.refused_pushes;
        self.observe(Signal {
            rule: AnomalyRule::RefusedPushes,
            key: format!("principal:{}", actor.principal),
            target: AnomalyTarget {
                principal: Some(actor.principal.clone()),
                repository: Some(repository.clone()),
                // The address, as `auth_failures` records it (the actor's carries the port).
                source: actor.source.as_deref().map(|source| {
                    source
                        .parse::<std::net::SocketAddr>()
                        .map_or_else(|_| source.to_string(), |addr| addr.ip().to_string())
                }),
                ..AnomalyTarget::default()
            },
            summary: format!(
                "{} pushes into gated stages refused for {} within {} s (the last into {repository})",
                config.threshold, actor.principal, config.window_secs
            ),
        })
        .await;
    }

    /// Evidence for `digest` pushed to `repository` names trusted key `key_name`, whose scope
    /// covers `repository`, but does not verify with it. The caller checks the scope; this
    /// checks the lineage: the signal counts only if the artifact is in `repository`'s lineage
    /// (a repository of the same path in any stage holds it, or a promotion of that path moved
    /// it), and a quarantine it causes holds the artifact in that path only. Otherwise anyone
    /// who can push somewhere could quarantine another tenant's artifact by pushing the same
    /// bytes and a forged signature next to them.
    pub async fn evidence_tampered(
        &self,
        repository: &RepoName,
        digest: &Digest,
        pushed_by: &str,
        key_name: &str,
    ) {
        let lineage: Vec<RepoName> = self
            .stages
            .all()
            .iter()
            .map(|stage| repository.in_stage(&stage.name))
            .collect();
        match self
            .metadata
            .artifact_in_lineage(repository.path(), &lineage, digest)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%repository, %digest, "tampered evidence about an artifact not in its repository's lineage: rejected, not counted");
                return;
            }
            Err(err) => {
                metrics::counter!(crate::metrics::ANOMALY_ERRORS).increment(1);
                tracing::error!(error = %err, "could not check tampered evidence's subject");
                return;
            }
        }
        self.observe(Signal {
            rule: AnomalyRule::TamperedEvidence,
            // Per lineage: an open anomaly about another repository's copy of the same bytes
            // must not swallow this one's signals.
            key: format!("artifact:{}@{digest}", repository.path()),
            target: AnomalyTarget {
                principal: Some(pushed_by.to_string()),
                repository: Some(repository.clone()),
                digest: Some(digest.clone()),
                stage: None,
                source: None,
            },
            summary: format!(
                "evidence pushed by {pushed_by} for {repository}@{digest} claims trusted key {key_name} but does not verify with it: altered or forged"
            ),
        })
        .await;
    }

    /// `principal` asked a gated stage for `digest`, which was never promoted into `repository`.
    pub async fn unpromoted_digest_requested(
        &self,
        principal: &str,
        source: Option<&str>,
        repository: &RepoName,
        digest: &Digest,
    ) {
        let stage = repository.stage();
        let gated = self
            .stages
            .stage_of(repository)
            .is_ok_and(|s| s.mode == StageMode::Gated);
        if !gated {
            return;
        }
        self.observe(Signal {
            rule: AnomalyRule::UnpromotedDigest,
            key: format!("principal:{principal}"),
            target: AnomalyTarget {
                principal: Some(principal.to_string()),
                repository: Some(repository.clone()),
                digest: Some(digest.clone()),
                stage: Some(stage.to_string()),
                source: source.map(str::to_string),
            },
            summary: format!(
                "{principal} asked for {repository}@{digest}, which was never promoted into {stage}"
            ),
        })
        .await;
    }

    /// A deployment in `environment` reported running `repository@digest`, which was never
    /// promoted into `repository`'s stage.
    pub async fn drift_reported(
        &self,
        reporter: &str,
        environment: &str,
        workload: &str,
        repository: &RepoName,
        digest: &Digest,
    ) {
        let stage = repository.stage();
        self.observe(Signal {
            rule: AnomalyRule::Drift,
            key: format!("stage:{stage}"),
            target: AnomalyTarget {
                principal: None,
                repository: Some(repository.clone()),
                digest: Some(digest.clone()),
                stage: Some(stage.to_string()),
                source: None,
            },
            summary: format!(
                "{reporter} reported {workload} in {environment} running {repository}@{digest}, which was never promoted into {stage}"
            ),
        })
        .await;
    }

    /// Verified provenance of `repository@digest` names a source revision another digest of the
    /// repository path was also built from (`mismatch`): the rebuild did not reproduce it.
    pub async fn rebuild_mismatch(
        &self,
        repository: &RepoName,
        digest: &Digest,
        mismatch: &airlock_trust::facts::rebuilds::Mismatch,
    ) {
        self.observe(Signal {
            rule: AnomalyRule::RebuildMismatch,
            key: format!("revision:{}@{}", mismatch.source_repository, mismatch.commit),
            target: AnomalyTarget {
                principal: None,
                repository: Some(repository.clone()),
                digest: Some(digest.clone()),
                stage: Some(repository.stage().to_string()),
                source: None,
            },
            summary: format!(
                "{}@{} was built into {repository}@{digest} and, by {} (key {}), into {}: the build does not reproduce",
                mismatch.source_repository,
                mismatch.commit,
                mismatch.builder_id,
                mismatch.key,
                mismatch.digest
            ),
        })
        .await;
    }

    /// Up to `limit` anomalies with ids below `before` (from the newest when `None`), newest
    /// first (`status`: `open`, `resolved` or `None` for all). Needs `access-admin` or `auditor`.
    pub async fn list(
        &self,
        who: Option<&Authenticated>,
        status: Option<AnomalyStatus>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>, AnomalyError> {
        Self::require_reader(who)?;
        let status = status.map(|s| match s {
            AnomalyStatus::Open => "open",
            AnomalyStatus::Resolved => "resolved",
        });
        Ok(self.metadata.anomalies(status, before, limit).await?)
    }

    /// One anomaly. Needs `access-admin` or `auditor`.
    pub async fn show(
        &self,
        who: Option<&Authenticated>,
        id: i64,
    ) -> Result<AnomalyRow, AnomalyError> {
        Self::require_reader(who)?;
        self.metadata
            .anomaly(id)
            .await?
            .ok_or(AnomalyError::Unknown { id })
    }

    /// Resolves an open anomaly, undoing its action. Only an `access-admin` may, and never the
    /// principal the anomaly is about.
    pub async fn resolve(
        &self,
        who: Option<&Authenticated>,
        actor: &Actor,
        id: i64,
        reason: &str,
    ) -> Result<AnomalyRow, AnomalyError> {
        if let Some(who) = who
            && !Self::resolvable_by(who)
        {
            return Err(AnomalyError::ResolveForbidden {
                principal: actor.principal.clone(),
            });
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AnomalyError::ReasonMissing);
        }
        if reason.len() > MAX_REASON_BYTES {
            return Err(AnomalyError::ReasonTooLong {
                limit: MAX_REASON_BYTES,
            });
        }
        let anomaly = self
            .metadata
            .anomaly(id)
            .await?
            .ok_or(AnomalyError::Unknown { id })?;
        if anomaly.target.principal.as_deref() == Some(actor.principal.as_str()) {
            return Err(AnomalyError::ResolveOwn {
                id,
                principal: actor.principal.clone(),
            });
        }
        let resolved = self
            .metadata
            .resolve_anomaly(id, reason, actor, now_millis())
            .await?;
        metrics::counter!(crate::metrics::ANOMALIES_RESOLVED, "rule" => resolved.rule.as_str())
            .increment(1);
        Ok(resolved)
    }

    /// Forgets signals older than the longest window (run periodically).
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let longest = self
            .config
            .rules()
            .iter()
            .map(|(_, c)| c.window_secs)
            .max()
            .unwrap_or(3600) as i64;
        self.metadata
            .prune_anomaly_signals(now_millis() - longest.saturating_mul(1000))
            .await
    }

    fn require_reader(who: Option<&Authenticated>) -> Result<(), AnomalyError> {
        match who {
            Some(who) if !Self::readable_by(who) => Err(AnomalyError::ReadForbidden {
                principal: who.principal.name.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `who` may read anomalies: an `access-admin` or an `auditor`.
    pub fn readable_by(who: &Authenticated) -> bool {
        who.has(Permission::ManageAccess, &PermissionTarget::Global)
            || who.has(Permission::ReadAudit, &PermissionTarget::Global)
    }

    /// Whether `who` may resolve anomalies: an `access-admin`.
    pub fn resolvable_by(who: &Authenticated) -> bool {
        who.has(Permission::ManageAccess, &PermissionTarget::Global)
    }
}
