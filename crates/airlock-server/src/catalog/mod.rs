//! The catalog: what is where. The stages and their gates, the repositories of a stage, the tags
//! of a repository, a channel tag's history, and `status` (which digest is in which stage, by
//! which promotion and whose approvals, and where each channel tag moved).
//!
//! Every read is filtered by the caller's pull rights exactly as `/v2/<name>/tags/list` decides
//! them (`Identity::grants_allow`): a principal sees no repository it cannot pull, and a
//! repository it cannot read answers as if it held nothing. Lists are paged by a cursor over an
//! index (see `airlock_store`'s `catalog` module), so a page costs the same on a large registry.

pub mod routes;
mod status;

use std::str::FromStr;
use std::sync::Arc;

use airlock_api::catalog as api;
use airlock_core::audit::rfc3339_millis;
use airlock_core::{RepoName, StageConfig, StageMode, Stages};
use airlock_store::{ChannelMove, Metadata, StoreError};

use crate::caller::Caller;
use crate::config::GateConfig;
use crate::identity::Identity;

/// Entries a list page holds unless `n` asks for fewer.
pub const DEFAULT_PAGE: u32 = 100;
/// Most entries a list page holds.
pub const MAX_PAGE: u32 = 1000;
/// Repository paths a `status` pattern page holds unless `n` asks for fewer.
pub const DEFAULT_STATUS_PAGE: u32 = 20;
/// Most repository paths a `status` pattern page holds.
pub const MAX_STATUS_PAGE: u32 = 100;
/// Channel moves `status` shows per channel tag.
pub const STATUS_CHANNEL_MOVES: u32 = 5;

/// Errors of the catalog: each names what was wrong in the request.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A stage that is not configured.
    #[error("there is no stage {stage:?}; the stages are: {}", configured.join(", "))]
    UnknownStage {
        /// The stage asked for.
        stage: String,
        /// The configured stages.
        configured: Vec<String>,
    },
    /// A stage-less path whose first segment looks like a misspelt stage: the rest of the path
    /// holds artifacts.
    #[error("{name:?} names no repository path with artifacts, and {stage:?} is not a stage; the stages are: {}", configured.join(", "))]
    MisspeltStage {
        /// The whole name asked for.
        name: String,
        /// Its first segment.
        stage: String,
        /// The configured stages.
        configured: Vec<String>,
    },
    /// A repository name, path or pattern that does not parse.
    #[error("{what} {value:?} is not valid: {source}")]
    InvalidName {
        /// What it was (`repository`, `repository path`, `pattern`).
        what: &'static str,
        /// The value asked for.
        value: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A channel history asked of a push stage.
    #[error("stage {stage} is a push stage and has no channel tags; channel tags live in the gated stages: {}", gated.join(", "))]
    NotGated {
        /// The stage asked for.
        stage: String,
        /// The gated stages.
        gated: Vec<String>,
    },
    /// A tag that is not a channel tag of its stage.
    #[error("{channel:?} is not a channel tag of stage {stage}; its channel tags are: {}", if configured.is_empty() { "none".to_string() } else { configured.join(", ") })]
    UnknownChannel {
        /// The stage.
        stage: String,
        /// The tag asked for.
        channel: String,
        /// The stage's channel tags.
        configured: Vec<String>,
    },
    /// A repository (or path, in any stage) that holds no artifacts the caller may read.
    #[error("{name} holds no artifacts you may read")]
    NoArtifacts {
        /// The repository or path asked for.
        name: String,
    },
    /// A pattern that matches no repository path the caller may read.
    #[error("no repository path you may read matches {pattern}")]
    NoMatch {
        /// The pattern.
        pattern: String,
    },
    /// A page size out of range.
    #[error("n={n} is out of range: a page holds 1 to {max} entries")]
    PageSize {
        /// The size asked for.
        n: u32,
        /// The most allowed.
        max: u32,
    },
    /// A `last` cursor that is not one this list hands out.
    #[error("last={value:?} is not a cursor of this list")]
    Cursor {
        /// The cursor asked for.
        value: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, CatalogError>;

/// A page request after parsing: `limit` entries after `last`.
#[derive(Debug, Clone)]
pub struct Page {
    /// Entries wanted.
    pub limit: u32,
    /// The cursor.
    pub last: Option<String>,
}

impl Page {
    /// `n` (default `default`, at most `max`) entries after `last`.
    pub fn new(n: Option<u32>, last: Option<String>, default: u32, max: u32) -> Result<Self> {
        let limit = n.unwrap_or(default);
        if limit == 0 || limit > max {
            return Err(CatalogError::PageSize { n: limit, max });
        }
        Ok(Self {
            limit,
            last: last.filter(|l| !l.is_empty()),
        })
    }
}

/// The catalog service: reads only.
pub struct CatalogService {
    metadata: Metadata,
    stages: Stages,
    gates: std::collections::BTreeMap<String, GateConfig>,
    identity: Arc<Identity>,
}

impl CatalogService {
    /// A catalog over `metadata` with the configured `stages` and `gates`, filtering by the
    /// rights `identity` knows.
    pub fn new(
        metadata: Metadata,
        stages: Stages,
        gates: std::collections::BTreeMap<String, GateConfig>,
        identity: Arc<Identity>,
    ) -> Self {
        Self {
            metadata,
            stages,
            gates,
            identity,
        }
    }

    fn stage_names(&self) -> Vec<String> {
        self.stages
            .all()
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    }

    fn stage(&self, name: &str) -> Result<&StageConfig> {
        self.stages
            .all()
            .iter()
            .find(|s| s.name.as_str() == name)
            .ok_or_else(|| CatalogError::UnknownStage {
                stage: name.to_string(),
                configured: self.stage_names(),
            })
    }

    /// Whether the caller may pull from `repo` (anyone, with access control off).
    fn readable(&self, caller: &Caller, repo: &RepoName) -> bool {
        match &caller.who {
            None => true,
            Some(who) => self
                .identity
                .grants_allow(who, repo, airlock_core::Action::Pull),
        }
    }

    /// Parses a stage-qualified repository name whose stage is configured.
    fn repository(&self, name: &str) -> Result<(RepoName, &StageConfig)> {
        let repo = RepoName::from_str(name).map_err(|e| CatalogError::InvalidName {
            what: "repository",
            value: name.to_string(),
            source: Box::new(e),
        })?;
        let stage = self.stage(repo.stage().as_str())?;
        Ok((repo, stage))
    }

    /// Whether `repo` holds at least one manifest.
    async fn holds_manifests(&self, repo: &RepoName) -> Result<bool> {
        let first = self
            .metadata
            .repositories_page(repo.as_str(), None, 1)
            .await?;
        Ok(first.first().is_some_and(|name| name == repo.as_str()))
    }

    /// The configured stages with their gates and freezes.
    pub async fn stages(&self) -> Result<api::StageList> {
        let freezes = self.metadata.freezes().await?;
        let stages = self
            .stages
            .all()
            .iter()
            .map(|stage| {
                let gate = (stage.mode == StageMode::Gated).then(|| {
                    let gate = self
                        .gates
                        .get(stage.name.as_str())
                        .cloned()
                        .unwrap_or_default();
                    api::GateSummary {
                        query: gate
                            .query
                            .clone()
                            .unwrap_or_else(|| format!("data.airlock.gates.{}", stage.name)),
                        approvals: gate.approvals.count,
                        approver_role: gate.approvals.role.clone(),
                        independent: independence(gate.approvals.independent).to_string(),
                        critical: gate
                            .critical
                            .iter()
                            .map(|c| api::CriticalRule {
                                repositories: c.repositories.clone(),
                                approvals: c.approvals,
                            })
                            .collect(),
                        rollback_query: gate
                            .rollback_query
                            .clone()
                            .unwrap_or_else(|| "data.airlock.rollback".to_string()),
                    }
                });
                api::StageInfo {
                    name: stage.name.to_string(),
                    kind: match stage.mode {
                        StageMode::Push => "push",
                        StageMode::Gated => "gated",
                    }
                    .to_string(),
                    from: stage.from.iter().map(|s| s.to_string()).collect(),
                    channel_tags: stage.channel_tags.clone(),
                    gate,
                    frozen: freezes.iter().find(|f| f.stage == stage.name).map(|f| {
                        api::FreezeInfo {
                            reason: f.reason.clone(),
                            by: f.frozen_by.clone(),
                            at: rfc3339_millis(f.frozen_at),
                        }
                    }),
                }
            })
            .collect();
        Ok(api::StageList { stages })
    }

    /// Repositories holding manifests, of one stage or all, that the caller may read.
    pub async fn repositories(
        &self,
        caller: &Caller,
        stage: Option<&str>,
        page: Page,
    ) -> Result<api::RepositoryPage> {
        let prefix = match stage {
            Some(stage) => format!("{}/", self.stage(stage)?.name),
            None => String::new(),
        };
        // Index pages are read until `limit` readable entries and one more are found, or the
        // index ends: the cursor only ever names an entry the caller may read (a cursor taken
        // from the raw index page would name repositories the caller may not pull).
        let limit = page.limit as usize;
        let mut repositories: Vec<api::RepositoryEntry> = Vec::new();
        let mut cursor = page.last.clone();
        let mut more = false;
        'pages: loop {
            let names = self
                .metadata
                .repositories_page(&prefix, cursor.as_deref(), page.limit)
                .await?;
            let index_ended = full_page(&names, page.limit).is_none();
            for repo in names
                .iter()
                .filter_map(|name| RepoName::from_str(name).ok())
            {
                if self.stages.stage_of(&repo).is_err() || !self.readable(caller, &repo) {
                    continue;
                }
                if repositories.len() == limit {
                    more = true;
                    break 'pages;
                }
                repositories.push(api::RepositoryEntry {
                    name: repo.to_string(),
                    stage: repo.stage().to_string(),
                    path: repo.path().to_string(),
                });
            }
            match names.last() {
                Some(last) if !index_ended => cursor = Some(last.clone()),
                _ => break,
            }
        }
        let next = repositories
            .last()
            .filter(|_| more)
            .map(|entry| entry.name.clone());
        Ok(api::RepositoryPage { repositories, next })
    }

    /// The tags of a repository the caller may read, with their digests and times.
    pub async fn tags(
        &self,
        caller: &Caller,
        repository: &str,
        page: Page,
    ) -> Result<api::TagPage> {
        let (repo, _) = self.repository(repository)?;
        let no_artifacts = || CatalogError::NoArtifacts {
            name: repo.to_string(),
        };
        if !self.readable(caller, &repo) {
            return Err(no_artifacts());
        }
        let rows = self
            .metadata
            .tags_page(repo.as_str(), page.last.as_deref(), page.limit)
            .await?;
        if rows.is_empty() && page.last.is_none() && !self.holds_manifests(&repo).await? {
            return Err(no_artifacts());
        }
        let next = rows
            .last()
            .filter(|_| rows.len() == page.limit as usize)
            .map(|t| t.name.to_string());
        Ok(api::TagPage {
            repository: repo.to_string(),
            tags: rows
                .into_iter()
                .map(|t| api::TagEntry {
                    name: t.name.to_string(),
                    digest: t.digest.to_string(),
                    updated: rfc3339_millis(t.updated_at),
                })
                .collect(),
            next,
        })
    }

    /// Every move of a channel tag in a repository the caller may read, newest first.
    pub async fn channel_history(
        &self,
        caller: &Caller,
        repository: &str,
        channel: &str,
        page: Page,
    ) -> Result<api::ChannelHistory> {
        let (repo, stage) = self.repository(repository)?;
        if stage.mode != StageMode::Gated {
            return Err(CatalogError::NotGated {
                stage: stage.name.to_string(),
                gated: self
                    .stages
                    .all()
                    .iter()
                    .filter(|s| s.mode == StageMode::Gated)
                    .map(|s| s.name.to_string())
                    .collect(),
            });
        }
        if !stage.channel_tags.iter().any(|c| c == channel) {
            return Err(CatalogError::UnknownChannel {
                stage: stage.name.to_string(),
                channel: channel.to_string(),
                configured: stage.channel_tags.clone(),
            });
        }
        let before = page
            .last
            .as_deref()
            .map(|l| {
                l.parse::<i64>().map_err(|_| CatalogError::Cursor {
                    value: l.to_string(),
                })
            })
            .transpose()?;
        if !self.readable(caller, &repo) {
            return Err(CatalogError::NoArtifacts {
                name: repo.to_string(),
            });
        }
        let rows = self
            .metadata
            .channel_moves_page(repo.as_str(), channel, before, page.limit)
            .await?;
        if rows.is_empty() && before.is_none() && !self.holds_manifests(&repo).await? {
            return Err(CatalogError::NoArtifacts {
                name: repo.to_string(),
            });
        }
        let next = rows
            .last()
            .filter(|_| rows.len() == page.limit as usize)
            .map(|(id, _)| id.to_string());
        Ok(api::ChannelHistory {
            repository: repo.to_string(),
            channel: channel.to_string(),
            moves: rows.into_iter().map(|(_, m)| channel_move(m)).collect(),
            next,
        })
    }
}

/// The last entry of a page that came back full (the next page's cursor).
fn full_page(entries: &[String], limit: u32) -> Option<&String> {
    entries.last().filter(|_| entries.len() == limit as usize)
}

fn channel_move(m: ChannelMove) -> api::ChannelMoveInfo {
    api::ChannelMoveInfo {
        digest: m.digest.to_string(),
        action: m.action,
        promotion: m.promotion_id,
        by: m.moved_by,
        at: rfc3339_millis(m.moved_at),
    }
}

fn independence(mode: airlock_core::promotion::IndependenceMode) -> &'static str {
    use airlock_core::promotion::IndependenceMode;
    match mode {
        IndependenceMode::Always => "always",
        IndependenceMode::Critical => "critical",
        IndependenceMode::Off => "off",
    }
}
