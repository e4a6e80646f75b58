//! Deploy-time verification: is what a deployment names exactly what was promoted?
//!
//! `DeployService::verify` answers, for each image reference, from airlock's own records: the
//! promotion that brought the digest into the stage (or brought an index holding it), the flags a
//! compromised key left on it, its quarantine, and, when asked, whether its channel tag still
//! points at it. Answers are cached under the store's `verify_version` (see `cache.rs`), so a
//! verification costs one read when nothing changed and is never stale when something did.
//! The routes are `POST /api/v1/verify` (`routes.rs`) and the Kubernetes admission webhook
//! (`admission.rs`).

pub mod admission;
mod cache;
pub mod routes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use airlock_api::deploy as api;
use airlock_core::AuditEvent;
use airlock_core::audit::rfc3339_millis;
use airlock_core::image_ref::ImageRef;
use airlock_core::{Action, Digest, RepoName, StageConfig, StageMode, Stages};
use airlock_store::{DeployRecord, DeploymentRow, Metadata, PromotionRow, StoreError};

use crate::anomalies::Anomalies;
use crate::caller::Caller;
use crate::config::DeployConfig;
use crate::identity::{Authenticated, Identity};
use cache::{CacheKey, VerifyCache};

/// Errors of a verification request as a whole (each reference's own problems are failures in
/// its result, not errors).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A stage that is not configured.
    #[error("there is no stage {stage:?}; the stages are: {}", configured.join(", "))]
    UnknownStage {
        /// The stage asked for.
        stage: String,
        /// The configured stages.
        configured: Vec<String>,
    },
    /// A request naming no reference.
    #[error("the request names no image reference")]
    NoReferences,
    /// More references than one request may name.
    #[error("the request names {count} image references; at most {max} are checked at once")]
    TooManyReferences {
        /// How many it named.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A deploy token asked of a server without access control: there is nothing to scope.
    #[error("access control is off ([access] enabled = false): registry pulls need no token")]
    AccessControlOff,
    /// A deploy token for no repository, or for more than [`MAX_TOKEN_REPOSITORIES`].
    #[error(
        "a deploy token names 1 to {MAX_TOKEN_REPOSITORIES} repositories; the request names {count}"
    )]
    TokenRepositories {
        /// How many the request named.
        count: usize,
    },
    /// A repository path that does not parse.
    #[error("{path:?} is not a repository path of stage {stage}: {reason}")]
    InvalidRepository {
        /// The stage.
        stage: String,
        /// The path given.
        path: String,
        /// Why.
        reason: String,
    },
    /// A repository the caller may not pull from.
    #[error("you may not pull from {repository}, so no token of yours may")]
    NotPullable {
        /// The repository with its stage.
        repository: String,
    },
    /// A lifetime of 0 or over the configured maximum.
    #[error("a deploy token lives 1 to {max} seconds; the request asks for {ttl}")]
    TokenLifetime {
        /// The lifetime asked for.
        ttl: u64,
        /// `[deploy] max_token_ttl_secs`.
        max: u64,
    },
    /// A deployment report's field that is not acceptable.
    #[error("{field}: {reason}")]
    InvalidReport {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A drift page size out of range.
    #[error("n={n} is out of range: a page checks 1 to 1000 reported images")]
    PageSize {
        /// The size asked for.
        n: u32,
    },
    /// A `last` that is not a cursor `GET /api/v1/drift` handed out.
    #[error("last={value:?} is not a cursor of the drift list")]
    Cursor {
        /// The value given.
        value: String,
    },
    /// The token could not be issued (the caller is itself a deploy token, or signing failed).
    #[error(transparent)]
    Auth(#[from] crate::identity::AuthError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// References of one verification checked at once (each holds a pooled database connection
/// while it reads).
const CONCURRENT_CHECKS: usize = 4;

/// Most repositories one deploy token names.
pub const MAX_TOKEN_REPOSITORIES: usize = 20;

/// A deploy token's lifetime when the request names none, in seconds.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 600;

/// The deploy-time verification service.
pub struct DeployService {
    metadata: Metadata,
    stages: Stages,
    identity: Arc<Identity>,
    anomalies: Arc<Anomalies>,
    config: DeployConfig,
    cache: VerifyCache,
}

/// Who a verification reads for: a caller (filtered by their pull rights) or airlock itself
/// (the admission webhook, which the API server calls without an airlock identity).
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    /// A caller of the API.
    Caller(&'a Caller),
    /// airlock on its own behalf.
    Airlock,
}

impl DeployService {
    /// The service over `metadata` and the configured stages.
    pub fn new(
        metadata: Metadata,
        stages: Stages,
        identity: Arc<Identity>,
        anomalies: Arc<Anomalies>,
        config: DeployConfig,
    ) -> Self {
        let cache = VerifyCache::new(config.cache_entries);
        Self {
            metadata,
            stages,
            identity,
            anomalies,
            config,
            cache,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DeployConfig {
        &self.config
    }

    fn stage(&self, name: &str) -> Result<&StageConfig, DeployError> {
        self.stages
            .all()
            .iter()
            .find(|s| s.name.as_str() == name)
            .ok_or_else(|| DeployError::UnknownStage {
                stage: name.to_string(),
                configured: self.stage_names(),
            })
    }

    fn stage_names(&self) -> Vec<String> {
        self.stages
            .all()
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    }

    /// Verifies `request.references` against `request.stage` for `reader`.
    pub async fn verify(
        &self,
        reader: Reader<'_>,
        request: &api::VerifyRequest,
    ) -> Result<api::VerifyAnswer, DeployError> {
        let started = Instant::now();
        let stage = self.stage(&request.stage)?;
        if request.references.is_empty() {
            return Err(DeployError::NoReferences);
        }
        if request.references.len() > self.config.max_references {
            return Err(DeployError::TooManyReferences {
                count: request.references.len(),
                max: self.config.max_references,
            });
        }
        // Read before any record: an answer is kept under a version no newer than its state.
        let version = self.metadata.verify_version().await?;
        let who = match reader {
            Reader::Caller(caller) => caller.who.as_ref(),
            Reader::Airlock => None,
        };
        // The references are independent reads: a few at a time, each on its own pooled
        // connection, in the request's order.
        let checks: Vec<_> = request
            .references
            .iter()
            .map(|reference| self.verify_one(who, stage, reference, request.current, version))
            .collect();
        let results: Vec<api::VerifyResult> = futures::stream::iter(checks)
            .buffered(CONCURRENT_CHECKS)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        metrics::histogram!(crate::metrics::VERIFY_DURATION)
            .record(started.elapsed().as_secs_f64());
        Ok(api::VerifyAnswer {
            stage: stage.name.to_string(),
            verified: results.iter().all(|r| r.verified),
            results,
        })
    }

    async fn verify_one(
        &self,
        who: Option<&Authenticated>,
        stage: &StageConfig,
        reference: &str,
        current: bool,
        version: i64,
    ) -> Result<api::VerifyResult, DeployError> {
        let mut result = self
            .check_reference(who, stage, reference, current, version)
            .await?;
        result.reference = reference.to_string();
        Ok(result)
    }

    async fn check_reference(
        &self,
        who: Option<&Authenticated>,
        stage: &StageConfig,
        reference: &str,
        current: bool,
        version: i64,
    ) -> Result<api::VerifyResult, DeployError> {
        let target = match self.target(stage, reference) {
            Ok(target) => target,
            Err(failure) => return Ok(failed(None, None, failure)),
        };
        let Target { repo, image } = target;
        let repository = Some(repo.to_string());
        if let Some(who) = who
            && !self.identity.grants_allow(who, &repo, Action::Pull)
        {
            return Ok(failed(
                repository,
                None,
                failure(
                    "DENIED",
                    format!(
                        "you may not pull from {repo}, so airlock does not tell you what it holds"
                    ),
                    format!(
                        "verify with a principal that may pull from {repo} (the deployer role on stage {})",
                        stage.name
                    ),
                ),
            ));
        }
        let digest = match image.digest() {
            Some(digest) => digest.clone(),
            None => match self.digest_of_tag(stage, &repo, &image).await? {
                Ok(digest) => digest,
                Err(failure) => return Ok(failed(repository, None, failure)),
            },
        };
        let key = CacheKey {
            repository: repo.to_string(),
            digest: digest.to_string(),
            current,
        };
        if let Some(answer) = self.cache.get(version, &key) {
            metrics::counter!(crate::metrics::VERIFY_CACHE, "result" => "hit").increment(1);
            return Ok(answer);
        }
        metrics::counter!(crate::metrics::VERIFY_CACHE, "result" => "miss").increment(1);
        let record = self.metadata.deploy_record(&repo, &digest).await?;
        let answer = judge(stage, &repo, &digest, &record, current);
        self.cache.put(version, key, answer.clone());
        Ok(answer)
    }

    /// The repository and image a reference names in `stage`: a leading stage segment must be
    /// `stage` itself; without one the whole path is taken in `stage`.
    fn target(&self, stage: &StageConfig, reference: &str) -> Result<Target, api::VerifyFailure> {
        let image = ImageRef::from_str(reference).map_err(|err| {
            failure(
                "REFERENCE_INVALID",
                format!("{reference:?} is not an image reference: {err}"),
                "write it as HOST/STAGE/PATH@sha256:<digest>, e.g. airlock.example.com/prod/team/app@sha256:...",
            )
        })?;
        let hosts = &self.config.registry_hosts.0;
        if !hosts.is_empty() && !image.host().is_some_and(|h| hosts.iter().any(|k| k == h)) {
            return Err(failure(
                "REGISTRY_UNKNOWN",
                format!(
                    "{reference} is pulled from {}, not from airlock ({})",
                    image
                        .host()
                        .unwrap_or("the container runtime's default registry"),
                    hosts.join(", ")
                ),
                format!(
                    "pull it from airlock: {}/{}",
                    hosts[0],
                    image_path_and_reference(&image)
                ),
            ));
        }
        let path = image.path();
        let (named_stage, rest) = match path.split_once('/') {
            Some((first, rest)) if self.stages.all().iter().any(|s| s.name.as_str() == first) => {
                (Some(first), rest)
            }
            _ => (None, path),
        };
        if let Some(named) = named_stage
            && named != stage.name.as_str()
        {
            return Err(failure(
                "STAGE_MISMATCH",
                format!(
                    "{reference} is pulled from stage {named}, not from {}",
                    stage.name
                ),
                format!(
                    "pull it from the stage it was promoted into: {}",
                    in_stage(&image, stage, rest)
                ),
            ));
        }
        let repo = RepoName::from_str(&format!("{}/{rest}", stage.name)).map_err(|err| {
            failure(
                "REFERENCE_INVALID",
                format!(
                    "{reference:?} names no repository of stage {}: {err}",
                    stage.name
                ),
                "write the repository path as lowercase segments separated by `/`, e.g. team/app",
            )
        })?;
        Ok(Target { repo, image })
    }

    /// Issues a deploy token for the caller: pull only, from the named repositories of one
    /// stage, each of which the caller may pull from now (see `identity`'s `deploy_tokens`).
    pub async fn issue_token(
        &self,
        caller: &Caller,
        request: &api::DeployTokenRequest,
    ) -> Result<api::DeployTokenAnswer, DeployError> {
        let Some(who) = &caller.who else {
            return Err(DeployError::AccessControlOff);
        };
        let stage = self.stage(&request.stage)?;
        let count = request.repositories.len();
        if count == 0 || count > MAX_TOKEN_REPOSITORIES {
            return Err(DeployError::TokenRepositories { count });
        }
        let ttl = request.ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        let max = self.config.max_token_ttl_secs;
        if ttl == 0 || ttl > max {
            return Err(DeployError::TokenLifetime { ttl, max });
        }
        let mut repositories = Vec::with_capacity(count);
        for path in &request.repositories {
            let path = path.trim_matches('/');
            let repo = RepoName::from_str(&format!("{}/{path}", stage.name)).map_err(|err| {
                DeployError::InvalidRepository {
                    stage: stage.name.to_string(),
                    path: path.to_string(),
                    reason: err.to_string(),
                }
            })?;
            if !self.identity.grants_allow(who, &repo, Action::Pull) {
                return Err(DeployError::NotPullable {
                    repository: repo.to_string(),
                });
            }
            if !repositories.contains(&repo) {
                repositories.push(repo);
            }
        }
        let issued = self
            .identity
            .issue_deploy_token(who, &repositories, ttl, Some(caller.peer))
            .await?;
        Ok(api::DeployTokenAnswer {
            token: issued.token,
            username: who.principal.name.clone(),
            id: issued.id,
            repositories: repositories.iter().map(|r| r.to_string()).collect(),
            expires_at: rfc3339_millis(issued.expires_at_millis),
        })
    }

    /// Records what `report.workload` in `report.environment` runs, verifying each image against
    /// the stage (with `current`); each image never promoted there is a `drift` anomaly signal.
    /// The caller must be able to pull from every repository named.
    pub async fn report(
        &self,
        caller: &Caller,
        report: &api::DeploymentReport,
    ) -> Result<api::DeploymentAnswer, DeployError> {
        for (field, value) in [
            ("environment", &report.environment),
            ("workload", &report.workload),
        ] {
            if value.is_empty() || value.len() > 253 || value.chars().any(char::is_control) {
                return Err(DeployError::InvalidReport {
                    field,
                    reason: format!("{value:?} must be 1 to 253 printable characters"),
                });
            }
        }
        if let Some(long) = report
            .images
            .iter()
            .find(|r| r.is_empty() || r.len() > airlock_core::image_ref::MAX_IMAGE_REF_LEN)
        {
            return Err(DeployError::InvalidReport {
                field: "images",
                reason: format!(
                    "an image reference of {} characters; each is 1 to {}",
                    long.len(),
                    airlock_core::image_ref::MAX_IMAGE_REF_LEN
                ),
            });
        }
        let images: Vec<String> = report.images.iter().fold(Vec::new(), |mut unique, image| {
            if !unique.contains(image) {
                unique.push(image.clone());
            }
            unique
        });
        let results = if images.is_empty() {
            self.stage(&report.stage)?;
            Vec::new()
        } else {
            let answer = self
                .verify(
                    Reader::Caller(caller),
                    &api::VerifyRequest {
                        stage: report.stage.clone(),
                        references: images.clone(),
                        current: true,
                    },
                )
                .await?;
            answer.results
        };
        if let Some(denied) = results
            .iter()
            .find(|r| r.failures.iter().any(|f| f.code == "DENIED"))
        {
            return Err(DeployError::NotPullable {
                repository: denied.repository.clone().unwrap_or_default(),
            });
        }
        let unpromoted: Vec<&api::VerifyResult> =
            results.iter().filter(|r| never_promoted(r)).collect();
        let reporter = caller.actor.principal.clone();
        self.metadata
            .report_deployment(
                &report.environment,
                &report.workload,
                &report.stage,
                &images,
                &reporter,
                &[airlock_core::AuditRecord {
                    time_millis: airlock_store::now_millis(),
                    actor: caller.actor.clone(),
                    event: AuditEvent::DeploymentReported {
                        environment: report.environment.clone(),
                        workload: report.workload.clone(),
                        stage: report.stage.clone(),
                        images: images.clone(),
                        unpromoted: unpromoted.len(),
                    },
                }],
            )
            .await?;
        for result in &unpromoted {
            if let (Some(repository), Some(digest)) = (&result.repository, &result.digest)
                && let (Ok(repository), Ok(digest)) =
                    (RepoName::from_str(repository), Digest::from_str(digest))
            {
                self.anomalies
                    .drift_reported(
                        &reporter,
                        &report.environment,
                        &report.workload,
                        &repository,
                        &digest,
                    )
                    .await;
            }
        }
        Ok(api::DeploymentAnswer {
            environment: report.environment.clone(),
            workload: report.workload.clone(),
            stage: report.stage.clone(),
            unpromoted: unpromoted.len(),
            images: results,
        })
    }

    /// A page of drift: the reported images (`n` per page, of one environment or all) checked
    /// against their stages now, those that fail listed with why. Images in repositories the
    /// caller may not pull from are checked but not shown.
    pub async fn drift(
        &self,
        caller: &Caller,
        query: &api::DriftQuery,
    ) -> Result<api::DriftPage, DeployError> {
        let n = query.n.unwrap_or(100);
        if n == 0 || n > 1000 {
            return Err(DeployError::PageSize { n });
        }
        let cursor = match query.last.as_deref().filter(|l| !l.is_empty()) {
            Some(last) => Some(parse_cursor(last).ok_or_else(|| DeployError::Cursor {
                value: last.to_string(),
            })?),
            None => None,
        };
        let rows = self
            .metadata
            .deployments_page(
                query.environment.as_deref(),
                cursor
                    .as_ref()
                    .map(|(e, w, r)| (e.as_str(), w.as_str(), r.as_str())),
                n,
            )
            .await?;
        let mut drift = Vec::new();
        for row in &rows {
            let request = api::VerifyRequest {
                stage: row.stage.clone(),
                references: vec![row.reference.clone()],
                current: true,
            };
            let answer = match self.verify(Reader::Caller(caller), &request).await {
                Ok(answer) => answer,
                // A stage removed from the configuration since the report.
                Err(DeployError::UnknownStage { .. }) => continue,
                Err(err) => return Err(err),
            };
            let Some(result) = answer.results.into_iter().next() else {
                continue;
            };
            if result.verified || result.failures.iter().any(|f| f.code == "DENIED") {
                continue;
            }
            drift.push(drift_entry(row, result));
        }
        let next = rows
            .last()
            .filter(|_| rows.len() == n as usize)
            .map(cursor_of);
        Ok(api::DriftPage {
            drift,
            checked: rows.len(),
            next,
        })
    }

    /// The digest a tag reference stands for, where tags are accepted.
    async fn digest_of_tag(
        &self,
        stage: &StageConfig,
        repo: &RepoName,
        image: &ImageRef,
    ) -> Result<Result<Digest, api::VerifyFailure>, DeployError> {
        let Some(tag) = image.tag() else {
            return Ok(Err(failure(
                "TAG_REFUSED",
                format!("{image} names neither a tag nor a digest"),
                "name the digest the deployment must run: NAME@sha256:<digest>",
            )));
        };
        let hosts = &self.config.registry_hosts.0;
        if !image.host().is_some_and(|h| hosts.iter().any(|k| k == h)) {
            return Ok(Err(failure(
                "TAG_REFUSED",
                format!(
                    "{image} names a tag of {}, which airlock cannot tell is airlock: a tag names nothing outside its registry",
                    image
                        .host()
                        .unwrap_or("the container runtime's default registry")
                ),
                "name the digest (NAME@sha256:<digest>), or list the host names airlock is pulled by in [deploy] registry_hosts",
            )));
        }
        let resolved = self.metadata.resolve_tag(repo, tag).await?;
        if stage.mode == StageMode::Gated && !self.config.allow_tags {
            let pin = match &resolved {
                Some(digest) => format!(
                    "pin the digest the tag names now: {}@{digest}",
                    image_name(image)
                ),
                None => "name the digest the deployment must run: NAME@sha256:<digest>".to_string(),
            };
            return Ok(Err(failure(
                "TAG_REFUSED",
                format!(
                    "{image} names a tag, and stage {} verifies digests only: a tag can move after the check",
                    stage.name
                ),
                pin,
            )));
        }
        Ok(resolved.ok_or_else(|| {
            failure(
                "TAG_UNKNOWN",
                format!("{repo} has no tag {tag}"),
                format!("check the tag with `airlock tags {repo}`, or name a digest"),
            )
        }))
    }
}

/// Whether a result says the digest was never promoted into the stage (or is not there).
fn never_promoted(result: &api::VerifyResult) -> bool {
    result
        .failures
        .iter()
        .any(|f| f.code == "NOT_PROMOTED" || f.code == "NOT_IN_STAGE")
}

fn drift_entry(row: &DeploymentRow, result: api::VerifyResult) -> api::DriftEntry {
    let kind = if never_promoted(&result) {
        "unpromoted"
    } else if result.failures.iter().all(|f| f.code == "NOT_CURRENT") {
        "behind"
    } else {
        "unverified"
    };
    api::DriftEntry {
        environment: row.environment.clone(),
        workload: row.workload.clone(),
        stage: row.stage.clone(),
        reference: row.reference.clone(),
        kind: kind.to_string(),
        reported_by: row.reported_by.clone(),
        reported_at: rfc3339_millis(row.reported_at),
        failures: result.failures,
    }
}

/// A drift cursor: the row's key, hex-encoded (names and references may hold any character).
fn cursor_of(row: &DeploymentRow) -> String {
    hex::encode(format!(
        "{}\0{}\0{}",
        row.environment, row.workload, row.reference
    ))
}

fn parse_cursor(value: &str) -> Option<(String, String, String)> {
    let text = String::from_utf8(hex::decode(value).ok()?).ok()?;
    let mut parts = text.split('\0');
    let (e, w, r) = (parts.next()?, parts.next()?, parts.next()?);
    parts
        .next()
        .is_none()
        .then(|| (e.to_string(), w.to_string(), r.to_string()))
}

/// A parsed reference and the repository it names in the stage checked.
struct Target {
    repo: RepoName,
    image: ImageRef,
}

/// The answer for `digest` in `repo` from its records: every check that failed, or none.
fn judge(
    stage: &StageConfig,
    repo: &RepoName,
    digest: &Digest,
    record: &DeployRecord,
    current: bool,
) -> api::VerifyResult {
    let mut failures = Vec::new();
    let promotion = record.promotion.as_ref().or(record.via_index.as_ref());
    match (stage.mode, promotion) {
        (StageMode::Gated, None) => failures.push(failure(
            "NOT_PROMOTED",
            format!("{digest} was never promoted into {repo}"),
            format!(
                "promote it through stage {}'s gate: airlock promote {}@{digest} --to {}",
                stage.name,
                repo.path(),
                stage.name
            ),
        )),
        (StageMode::Push, _) if !record.in_repository => failures.push(failure(
            "NOT_IN_STAGE",
            format!("{repo} does not hold {digest}"),
            format!("push it to {repo} first, or deploy a digest it holds"),
        )),
        _ => {}
    }
    if promotion.is_some() && !record.in_repository {
        failures.push(failure(
            "NOT_IN_STAGE",
            format!("{digest} was promoted into {repo} but is no longer there"),
            format!("promote it again, or deploy a digest {repo} holds"),
        ));
    }
    for flag in &record.flags {
        failures.push(failure(
            "EVIDENCE_REVOKED",
            format!("the evidence {digest} was promoted on was voided: {}", flag.reason),
            "sign and attest it again with a trusted key and promote it again, or roll the channel back to a digest whose evidence stands",
        ));
    }
    if let Some(quarantine) = &record.quarantine {
        failures.push(failure(
            "QUARANTINED",
            format!(
                "{digest} is quarantined by anomaly {}: {}",
                quarantine.anomaly_id, quarantine.reason
            ),
            format!(
                "an auditor investigates and resolves it: airlock anomalies resolve {}",
                quarantine.anomaly_id
            ),
        ));
    }
    if current
        && let Some(promotion) = promotion
        && let Some(channel) = &promotion.channel
        && record.channel_digest.as_deref() != Some(digest.to_string().as_str())
    {
        failures.push(failure(
            "NOT_CURRENT",
            match &record.channel_digest {
                Some(now) => format!(
                    "channel {channel} of {repo} points at {now}, not {digest}: rolled back from or superseded"
                ),
                None => format!("channel {channel} of {repo} no longer exists"),
            },
            match &record.channel_digest {
                Some(now) => format!("deploy {repo}@{now}, the channel's digest"),
                None => format!("promote a digest into {repo} with --channel {channel}"),
            },
        ));
    }
    api::VerifyResult {
        reference: String::new(),
        verified: failures.is_empty(),
        repository: Some(repo.to_string()),
        digest: Some(digest.to_string()),
        promotion: promotion.map(|p| verified_promotion(p, record, digest)),
        attestation: promotion
            .and_then(|p| p.attestation.as_ref())
            .map(|att| format!("{repo}@{att}")),
        failures,
    }
}

fn verified_promotion(
    promotion: &PromotionRow,
    record: &DeployRecord,
    digest: &Digest,
) -> api::VerifiedPromotion {
    api::VerifiedPromotion {
        id: promotion.id.clone(),
        decision: promotion.last_decision.clone(),
        from: promotion.source_stage.to_string(),
        requested_by: promotion.requested_by.clone(),
        approvals: record
            .approvals
            .iter()
            .map(|a| a.principal.clone())
            .collect(),
        promoted_at: promotion.decided_at.map(rfc3339_millis),
        break_glass: promotion.break_glass.clone(),
        via_index: (promotion.digest != *digest).then(|| promotion.digest.to_string()),
    }
}

fn failure(
    code: &str,
    message: impl Into<String>,
    remediation: impl Into<String>,
) -> api::VerifyFailure {
    api::VerifyFailure {
        code: code.to_string(),
        message: message.into(),
        remediation: remediation.into(),
    }
}

fn failed(
    repository: Option<String>,
    digest: Option<String>,
    failure: api::VerifyFailure,
) -> api::VerifyResult {
    api::VerifyResult {
        reference: String::new(),
        verified: false,
        repository,
        digest,
        promotion: None,
        attestation: None,
        failures: vec![failure],
    }
}

/// `image` without its host: `PATH[:TAG][@DIGEST]`.
fn image_path_and_reference(image: &ImageRef) -> String {
    let mut name = image.path().to_string();
    if let Some(tag) = image.tag() {
        name.push(':');
        name.push_str(tag.as_str());
    }
    if let Some(digest) = image.digest() {
        name.push('@');
        name.push_str(&digest.to_string());
    }
    name
}

/// `image` without its tag and digest: `HOST/PATH`.
fn image_name(image: &ImageRef) -> String {
    match image.host() {
        Some(host) => format!("{host}/{}", image.path()),
        None => image.path().to_string(),
    }
}

/// `image` pulled from `stage` instead: `HOST/STAGE/REST[:TAG][@DIGEST]`.
fn in_stage(image: &ImageRef, stage: &StageConfig, rest: &str) -> String {
    let suffix = image_path_and_reference(image);
    let suffix = &suffix[image.path().len()..];
    match image.host() {
        Some(host) => format!("{host}/{}/{rest}{suffix}", stage.name),
        None => format!("{}/{rest}{suffix}", stage.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_store::{ArtifactFlag, QuarantineRow};

    fn stages() -> Vec<StageConfig> {
        Stages::default_pipeline()
    }

    fn promoted(digest: &Digest, channel: Option<&str>) -> PromotionRow {
        PromotionRow {
            id: "prm_1".into(),
            repository_path: "team/app".into(),
            digest: digest.clone(),
            source_stage: "staging".parse().unwrap(),
            target_stage: "prod".parse().unwrap(),
            tags: Vec::new(),
            channel: channel.map(|c| c.parse().unwrap()),
            state: airlock_core::PromotionState::Promoted,
            requested_by: "rita".into(),
            requester: "{}".into(),
            approvals_required: 0,
            break_glass: None,
            last_decision: Some("dec_1".into()),
            attestation: Some("sha256:aa".into()),
            created_at: 0,
            expires_at: 0,
            decided_at: Some(0),
            evaluating_since: None,
            claim: None,
        }
    }

    fn record(promotion: Option<PromotionRow>) -> DeployRecord {
        DeployRecord {
            in_repository: true,
            promotion,
            via_index: None,
            approvals: Vec::new(),
            flags: Vec::new(),
            quarantine: None,
            channel_digest: None,
        }
    }

    fn codes(result: &api::VerifyResult) -> Vec<&str> {
        result.failures.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn every_failed_check_is_named_and_a_clean_record_passes() {
        let stages = stages();
        let prod = stages.iter().find(|s| s.name.as_str() == "prod").unwrap();
        let dev = stages.iter().find(|s| s.name.as_str() == "dev").unwrap();
        let repo: RepoName = "prod/team/app".parse().unwrap();
        let digest = Digest::sha256_of(b"artifact");
        let newer = Digest::sha256_of(b"newer");

        let mut clean = record(Some(promoted(&digest, Some("stable"))));
        clean.channel_digest = Some(digest.to_string());
        let passed = judge(prod, &repo, &digest, &clean, true);
        assert!(passed.verified, "{passed:?}");
        assert_eq!(
            passed.attestation.as_deref(),
            Some("prod/team/app@sha256:aa")
        );

        assert_eq!(
            codes(&judge(prod, &repo, &digest, &record(None), false)),
            ["NOT_PROMOTED"]
        );

        let mut everything = record(Some(promoted(&digest, Some("stable"))));
        everything.in_repository = false;
        everything.channel_digest = Some(newer.to_string());
        everything.flags.push(ArtifactFlag {
            repository: repo.to_string(),
            digest: digest.to_string(),
            flag: "evidence_revoked".into(),
            reason: "key k compromised".into(),
        });
        everything.quarantine = Some(QuarantineRow {
            anomaly_id: 7,
            reason: "pulls of a digest never promoted".into(),
            repository_path: Some("team/app".into()),
        });
        let failed = judge(prod, &repo, &digest, &everything, true);
        assert_eq!(
            codes(&failed),
            [
                "NOT_IN_STAGE",
                "EVIDENCE_REVOKED",
                "QUARANTINED",
                "NOT_CURRENT"
            ]
        );
        assert!(
            failed.failures[2]
                .remediation
                .contains("anomalies resolve 7")
        );
        assert!(failed.failures[3].remediation.contains(&newer.to_string()));
        // Not asked for the current digest: the channel is not compared.
        let not_asked = judge(prod, &repo, &digest, &everything, false);
        assert!(!codes(&not_asked).contains(&"NOT_CURRENT"));

        // A push stage needs the artifact there, not a promotion.
        let dev_repo: RepoName = "dev/team/app".parse().unwrap();
        assert!(judge(dev, &dev_repo, &digest, &record(None), false).verified);
        let mut absent = record(None);
        absent.in_repository = false;
        assert_eq!(
            codes(&judge(dev, &dev_repo, &digest, &absent, false)),
            ["NOT_IN_STAGE"]
        );

        // A platform manifest of a promoted index names the index.
        let mut child = record(None);
        child.via_index = Some(promoted(&newer, None));
        let via = judge(prod, &repo, &digest, &child, true);
        assert!(via.verified, "{via:?}");
        assert_eq!(
            via.promotion.unwrap().via_index.as_deref(),
            Some(newer.to_string().as_str())
        );
    }
}
