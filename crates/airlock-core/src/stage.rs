//! Stages and their rules: which accept pushes, which tags may move, where deletion is allowed.
//!
//! A push stage (`dev`) takes content from builders; a gated stage (`staging`, `prod`) takes content
//! only by promotion from the stages in its `from` list, keeps its tags immutable (except configured
//! channel tags, which move only by promotion or rollback) and refuses deletion.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::Error;
use crate::name::{RepoName, StageName, Tag};

/// How content enters a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageMode {
    /// Open to pushes; tags move.
    Push,
    /// Content arrives only by promotion; tags are immutable.
    Gated,
}

/// One configured stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// The stage name, the first segment of its repository names.
    pub name: StageName,
    /// Push or gated.
    pub mode: StageMode,
    /// Stages whose artifacts may be promoted into this one (gated stages only).
    #[serde(default)]
    pub from: Vec<StageName>,
    /// Movable tags of a gated stage (e.g. `stable`), moved only by promotion or rollback.
    #[serde(default)]
    pub channel_tags: Vec<String>,
}

/// The ordered, validated list of stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    stages: Vec<StageConfig>,
}

impl Stages {
    /// Validates an ordered stage list: unique names, at least one push stage, gated stages promote
    /// only from stages listed before them, push stages have no `from`, channel tags are valid tags.
    pub fn new(stages: Vec<StageConfig>) -> Result<Self, Error> {
        let invalid = |msg: String| Err(Error::InvalidStageConfig(msg));
        if stages.is_empty() {
            return invalid("at least one stage is required".into());
        }
        if !stages.iter().any(|s| s.mode == StageMode::Push) {
            return invalid("at least one stage needs mode = \"push\" so content can enter".into());
        }
        for (index, stage) in stages.iter().enumerate() {
            let earlier = &stages[..index];
            if earlier.iter().any(|s| s.name == stage.name) {
                return invalid(format!("stage {} is listed twice", stage.name));
            }
            match stage.mode {
                StageMode::Push if !stage.from.is_empty() => {
                    return invalid(format!(
                        "push stage {} must not have `from`; only gated stages receive promotions",
                        stage.name
                    ));
                }
                StageMode::Push if !stage.channel_tags.is_empty() => {
                    return invalid(format!(
                        "push stage {} must not have `channel_tags`; its tags already move",
                        stage.name
                    ));
                }
                StageMode::Gated if stage.from.is_empty() => {
                    return invalid(format!(
                        "gated stage {} needs `from = [..]` naming the stages it promotes from",
                        stage.name
                    ));
                }
                _ => {}
            }
            for source in &stage.from {
                if !earlier.iter().any(|s| &s.name == source) {
                    return invalid(format!(
                        "stage {} lists {source} in `from`, but {source} is not a stage listed before it",
                        stage.name
                    ));
                }
            }
            for tag in &stage.channel_tags {
                if tag.parse::<Tag>().is_err() {
                    return invalid(format!(
                        "channel tag {tag:?} of stage {} is not a valid tag",
                        stage.name
                    ));
                }
            }
        }
        Ok(Self { stages })
    }

    /// `dev` (push) -> `staging` (gated, from dev) -> `prod` (gated, from staging, channel `stable`).
    pub fn default_pipeline() -> Vec<StageConfig> {
        let stage = |name: &str, mode, from: &[&str], channel_tags: &[&str]| StageConfig {
            name: StageName(name.to_string()),
            mode,
            from: from.iter().map(|s| StageName(s.to_string())).collect(),
            channel_tags: channel_tags.iter().map(|s| s.to_string()).collect(),
        };
        vec![
            stage("dev", StageMode::Push, &[], &[]),
            stage("staging", StageMode::Gated, &["dev"], &[]),
            stage("prod", StageMode::Gated, &["staging"], &["stable"]),
        ]
    }

    /// All stages in order.
    pub fn all(&self) -> &[StageConfig] {
        &self.stages
    }

    /// The stage a repository lives in, or [`Error::UnknownStage`].
    pub fn stage_of(&self, repo: &RepoName) -> Result<&StageConfig, Error> {
        let stage = repo.stage();
        self.stages
            .iter()
            .find(|s| s.name == stage)
            .ok_or_else(|| Error::UnknownStage(stage.as_str().to_string()))
    }

    fn first_push_stage(&self) -> String {
        self.stages
            .iter()
            .find(|s| s.mode == StageMode::Push)
            .map(|s| s.name.to_string())
            .unwrap_or_default()
    }

    /// May a client push blobs, manifests or tags into `repo`? Only push stages say yes.
    pub fn check_push(&self, repo: &RepoName) -> Result<(), Error> {
        let stage = self.stage_of(repo)?;
        match stage.mode {
            StageMode::Push => Ok(()),
            StageMode::Gated => Err(Error::PushToGatedStage {
                stage: stage.name.clone(),
                push_stage: self.first_push_stage(),
            }),
        }
    }

    /// May a client delete content in `repo`? Only in push stages.
    pub fn check_delete(&self, repo: &RepoName) -> Result<(), Error> {
        let stage = self.stage_of(repo)?;
        match stage.mode {
            StageMode::Push => Ok(()),
            StageMode::Gated => Err(Error::DeleteInGatedStage(stage.name.clone())),
        }
    }

    /// May `tag` in `repo`, currently at `current`, be pointed at `new`? Tags move freely in push
    /// stages; in gated stages a tag is set once, except channel tags (moved by promotion/rollback).
    pub fn check_tag_move(
        &self,
        repo: &RepoName,
        tag: &Tag,
        current: Option<&Digest>,
        new: &Digest,
    ) -> Result<(), Error> {
        let stage = self.stage_of(repo)?;
        match (stage.mode, current) {
            (StageMode::Push, _) | (StageMode::Gated, None) => Ok(()),
            (StageMode::Gated, Some(current)) if current == new => Ok(()),
            (StageMode::Gated, Some(_)) if stage.channel_tags.iter().any(|c| c == tag.as_str()) => {
                Ok(())
            }
            (StageMode::Gated, Some(current)) => Err(Error::ImmutableTag {
                stage: stage.name.clone(),
                tag: tag.to_string(),
                current: current.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages() -> Stages {
        Stages::new(Stages::default_pipeline()).unwrap()
    }

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn default_pipeline_is_valid() {
        let s = stages();
        assert_eq!(s.all().len(), 3);
        assert!(s.check_push(&repo("dev/team/app")).is_ok());
    }

    #[test]
    fn push_to_gated_stage_is_denied() {
        let err = stages().check_push(&repo("prod/team/app")).unwrap_err();
        assert!(matches!(err, Error::PushToGatedStage { .. }));
        assert!(err.to_string().contains("only by promotion"));
    }

    #[test]
    fn unknown_stage_is_reported() {
        assert_eq!(
            stages().check_push(&repo("qa/team/app")),
            Err(Error::UnknownStage("qa".into()))
        );
    }

    #[test]
    fn gated_tags_are_immutable_but_channel_tags_move() {
        let s = stages();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let prod = repo("prod/team/app");
        let v1: Tag = "1.0".parse().unwrap();
        let stable: Tag = "stable".parse().unwrap();
        assert!(s.check_tag_move(&prod, &v1, None, &a).is_ok());
        assert!(s.check_tag_move(&prod, &v1, Some(&a), &a).is_ok());
        assert!(matches!(
            s.check_tag_move(&prod, &v1, Some(&a), &b),
            Err(Error::ImmutableTag { .. })
        ));
        assert!(s.check_tag_move(&prod, &stable, Some(&a), &b).is_ok());
        assert!(
            s.check_tag_move(&repo("dev/team/app"), &v1, Some(&a), &b)
                .is_ok()
        );
    }

    #[test]
    fn delete_in_gated_stage_is_refused() {
        let s = stages();
        assert!(s.check_delete(&repo("dev/x/y")).is_ok());
        assert!(matches!(
            s.check_delete(&repo("staging/x/y")),
            Err(Error::DeleteInGatedStage(_))
        ));
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_field_named() {
        let mut cfg = Stages::default_pipeline();
        cfg[1].from = vec!["prod".parse().unwrap()];
        let err = Stages::new(cfg).unwrap_err().to_string();
        assert!(err.contains("from"), "{err}");

        let mut cfg = Stages::default_pipeline();
        cfg[2].name = "dev".parse().unwrap();
        assert!(Stages::new(cfg).is_err());

        let mut cfg = Stages::default_pipeline();
        cfg.remove(0);
        assert!(Stages::new(cfg).is_err());

        let mut cfg = Stages::default_pipeline();
        cfg[2].channel_tags = vec!["bad tag".into()];
        assert!(Stages::new(cfg).is_err());
    }
}
