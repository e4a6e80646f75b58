//! `status`: which digest is in which stage for a repository path, by which promotion, whose
//! approvals and when, and where each channel tag of the stage moved last; for one stage
//! (`prod/team/app`), every stage (`team/app`) or every path matching a pattern (`team/*`).

use std::collections::BTreeSet;
use std::str::FromStr;

use airlock_api::catalog as api;
use airlock_core::audit::rfc3339_millis;
use airlock_core::{RepoName, StageConfig, StageMode};
use airlock_store::TimeCursor;
use airlock_trust::verify::ScopePattern;

use super::{
    CatalogError, CatalogService, DEFAULT_PAGE, Page, Result, STATUS_CHANNEL_MOVES, channel_move,
};
use crate::caller::Caller;
use crate::paging::{parse_time_cursor, time_cursor};

/// Parses a `status` cursor, `<stage>/<millis>:<digest>` (the stage one of `stages`), into the
/// stage's index and the last artifact shown of it.
fn parse_status_cursor(last: &str, stages: &[&StageConfig]) -> Result<(usize, TimeCursor)> {
    let invalid = || CatalogError::Cursor {
        value: last.chars().take(128).collect(),
    };
    let (stage, rest) = last.split_once('/').ok_or_else(invalid)?;
    let index = stages
        .iter()
        .position(|s| s.name.as_str() == stage)
        .ok_or_else(invalid)?;
    let cursor = parse_time_cursor(Some(rest))
        .map_err(|_| invalid())?
        .ok_or_else(invalid)?;
    Ok((index, cursor))
}

impl CatalogService {
    /// Splits `prod/team/app` into the stage `prod` and `team/app` when its first segment is a
    /// configured stage; otherwise the whole name is a path in every stage.
    fn split<'a>(&self, name: &'a str) -> (Option<&StageConfig>, &'a str) {
        if let Some((first, rest)) = name.split_once('/')
            && let Ok(stage) = self.stage(first)
        {
            return (Some(stage), rest);
        }
        (None, name)
    }

    /// The status of one repository: `prod/team/app` (that stage) or `team/app` (every stage),
    /// `page.limit` artifacts at a time, stage after stage in pipeline order.
    pub async fn status(
        &self,
        caller: &Caller,
        name: &str,
        page: Page,
    ) -> Result<api::RepositoryStatus> {
        let name = name.trim_matches('/');
        let (stage, path) = self.split(name);
        self.valid_path(path)?;
        let stages: Vec<&StageConfig> = match stage {
            Some(stage) => vec![stage],
            None => self.stages.all().iter().collect(),
        };
        let after = page
            .last
            .as_deref()
            .map(|last| parse_status_cursor(last, &stages))
            .transpose()?;
        let continued = after.is_some();
        let status = self
            .path_status(caller, path, &stages, after, page.limit)
            .await?;
        if continued || status.stages.iter().any(|s| !s.artifacts.is_empty()) {
            return Ok(status);
        }
        // Nothing here: is the first segment a misspelt stage in front of a real path?
        if stage.is_none()
            && let Some((first, rest)) = name.split_once('/')
            && self.valid_path(rest).is_ok()
        {
            let all: Vec<&StageConfig> = self.stages.all().iter().collect();
            let elsewhere = self.path_status(caller, rest, &all, None, 1).await?;
            if elsewhere.stages.iter().any(|s| !s.artifacts.is_empty()) {
                return Err(CatalogError::MisspeltStage {
                    name: name.to_string(),
                    stage: first.to_string(),
                    configured: self.stage_names(),
                });
            }
        }
        Err(CatalogError::NoArtifacts {
            name: name.to_string(),
        })
    }

    /// The status of every repository path matching `pattern` (`team/*`, or `prod/team/*` for
    /// one stage), a page of paths at a time.
    pub async fn status_page(
        &self,
        caller: &Caller,
        pattern: &str,
        page: Page,
    ) -> Result<api::StatusPage> {
        let pattern = pattern.trim_matches('/');
        if !pattern.contains('*') {
            let status = self.status(caller, pattern, page).await?;
            return Ok(api::StatusPage {
                pattern: pattern.to_string(),
                repositories: vec![status],
                next: None,
            });
        }
        let (stage, path_pattern) = self.split(pattern);
        let parsed =
            ScopePattern::from_str(path_pattern).map_err(|e| CatalogError::InvalidName {
                what: "pattern",
                value: pattern.to_string(),
                source: Box::new(e),
            })?;
        let prefix = path_pattern.trim_end_matches('*');
        let stages: Vec<&StageConfig> = match stage {
            Some(stage) => vec![stage],
            None => self.stages.all().iter().collect(),
        };
        // Index pages are read until `limit` paths the caller may read and one more are found,
        // or the index ends: the cursor only ever names a path the caller may read.
        let limit = page.limit as usize;
        let mut repositories: Vec<api::RepositoryStatus> = Vec::new();
        let mut cursor = page.last.clone();
        let mut more = false;
        'pages: loop {
            // The first `limit` paths of the union of every stage's first `limit` names are the
            // first `limit` paths overall.
            let mut paths = BTreeSet::new();
            let mut any_full = false;
            for stage in &stages {
                let names = self
                    .metadata
                    .repositories_page(
                        &format!("{}/{prefix}", stage.name),
                        cursor
                            .as_deref()
                            .map(|l| format!("{}/{l}", stage.name))
                            .as_deref(),
                        page.limit,
                    )
                    .await?;
                any_full |= names.len() == limit;
                paths.extend(
                    names
                        .iter()
                        .filter_map(|n| n.split_once('/').map(|(_, p)| p.to_string())),
                );
            }
            let index_ended = paths.len() <= limit && !any_full;
            let paths: Vec<String> = paths.into_iter().take(limit).collect();
            for path in paths.iter().filter(|p| parsed.matches(p)) {
                let status = self
                    .path_status(caller, path, &stages, None, DEFAULT_PAGE)
                    .await?;
                if !status.stages.iter().any(|s| !s.artifacts.is_empty()) {
                    continue;
                }
                if repositories.len() == limit {
                    more = true;
                    break 'pages;
                }
                repositories.push(status);
            }
            match paths.last() {
                Some(last) if !index_ended => cursor = Some(last.clone()),
                _ => break,
            }
        }
        let next = repositories
            .last()
            .filter(|_| more)
            .map(|status| status.repository.clone());
        if repositories.is_empty() && next.is_none() && page.last.is_none() {
            return Err(CatalogError::NoMatch {
                pattern: pattern.to_string(),
            });
        }
        Ok(api::StatusPage {
            pattern: pattern.to_string(),
            repositories,
            next,
        })
    }

    /// Checks that `path` is a repository path: at most 255 characters, each segment valid. A
    /// path too long to fit behind some stage simply holds nothing there.
    fn valid_path(&self, path: &str) -> Result<()> {
        let invalid = |source: airlock_core::Error| CatalogError::InvalidName {
            what: "repository path",
            value: path.chars().take(64).collect(),
            source: Box::new(source),
        };
        if path.len() > airlock_core::name::MAX_REPO_NAME_LEN {
            return Err(invalid(airlock_core::Error::InvalidName {
                value: path.chars().take(64).collect(),
                reason: "a repository name is at most 255 characters",
            }));
        }
        for segment in path.split('/') {
            if segment.len() < airlock_core::name::MAX_REPO_NAME_LEN - 2 {
                RepoName::from_str(&format!("x/{segment}")).map_err(invalid)?;
            }
        }
        Ok(())
    }

    /// `path` in each of `stages` the caller may read: up to `limit` artifacts after `after` (a
    /// stage and the last artifact shown of it), stage after stage, with `next` set when more
    /// follow. Each stage costs one index page, so the answer follows `limit`, not the size of
    /// the repository.
    async fn path_status(
        &self,
        caller: &Caller,
        path: &str,
        stages: &[&StageConfig],
        after: Option<(usize, TimeCursor)>,
        limit: u32,
    ) -> Result<api::RepositoryStatus> {
        let freezes = self.metadata.freezes().await?;
        let mut out = Vec::new();
        let mut remaining = limit as usize;
        let mut next = None;
        let (first_stage, mut cursor) = match after {
            Some((stage, cursor)) => (stage, Some(cursor)),
            None => (0, None),
        };
        for (index, stage) in stages.iter().enumerate().skip(first_stage) {
            let stage_cursor = cursor.take();
            if remaining == 0 {
                break;
            }
            let Ok(repo) = RepoName::from_str(&format!("{}/{path}", stage.name)) else {
                continue;
            };
            if !self.readable(caller, &repo) {
                continue;
            }
            // One entry past what the page still holds says whether this stage goes on.
            let mut page = self
                .metadata
                .artifacts_page(repo.as_str(), stage_cursor.as_ref(), remaining as u32 + 1)
                .await?;
            let stage_goes_on = page.len() > remaining;
            page.truncate(remaining);
            remaining -= page.len();
            if let Some(last) = page.last()
                && (stage_goes_on || (remaining == 0 && index + 1 < stages.len()))
            {
                next = Some(format!(
                    "{}/{}",
                    stage.name,
                    time_cursor(last.created_at, &last.digest)
                ));
            }
            // A gated stage's promotions and their approvals: two statements for the page.
            let mut promotions = match stage.mode {
                StageMode::Push => Default::default(),
                StageMode::Gated => {
                    let digests: Vec<String> = page.iter().map(|e| e.digest.clone()).collect();
                    self.metadata
                        .promotions_into(path, &digests, stage.name.as_str())
                        .await?
                }
            };
            let mut artifacts = Vec::new();
            for entry in page {
                let (promotion, approvals) = match promotions.remove(&entry.digest) {
                    Some((promotion, approvals)) => (Some(promotion), approvals),
                    None => (None, Vec::new()),
                };
                artifacts.push(api::ArtifactStatus {
                    digest: entry.digest,
                    tags: entry.tags,
                    promotion: promotion.as_ref().map(|p| p.id.clone()),
                    promoted_by: promotion.as_ref().map(|p| p.requested_by.clone()),
                    requested_at: promotion.as_ref().map(|p| rfc3339_millis(p.created_at)),
                    promoted_at: promotion
                        .as_ref()
                        .and_then(|p| p.decided_at)
                        .map(rfc3339_millis),
                    approvals: approvals
                        .into_iter()
                        .map(|a| api::ApprovalInfo {
                            principal: a.principal,
                            comment: a.comment,
                            at: rfc3339_millis(a.created_at),
                        })
                        .collect(),
                });
            }
            let mut channels = Vec::new();
            for channel in &stage.channel_tags {
                let moves = self
                    .metadata
                    .channel_moves_page(repo.as_str(), channel, None, STATUS_CHANNEL_MOVES)
                    .await?;
                channels.push(api::ChannelRecent {
                    channel: channel.clone(),
                    moves: moves.into_iter().map(|(_, m)| channel_move(m)).collect(),
                });
            }
            out.push(api::StageStatus {
                stage: stage.name.to_string(),
                repository: repo.to_string(),
                frozen: freezes
                    .iter()
                    .find(|f| f.stage == stage.name)
                    .map(|f| f.reason.clone()),
                artifacts,
                channels,
            });
        }
        Ok(api::RepositoryStatus {
            repository: path.to_string(),
            stages: out,
            next,
        })
    }
}
