//! The catalog: what is where. The stages and their gates, the repositories of a stage, the tags
//! of a repository, a channel tag's history, and `status` (which digest is in which stage, by
//! which promotion).
//!
//! Every read is filtered by the caller's rights in the routes: a principal sees only what it
//! may pull.

pub mod routes;

use airlock_core::Stages;
use airlock_store::{Metadata, StoreError};
use serde_json::{Value, json};

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The catalog service: reads only.
pub struct CatalogService {
    metadata: Metadata,
    stages: Stages,
}

impl CatalogService {
    /// A catalog over `metadata` with the configured `stages`.
    pub fn new(metadata: Metadata, stages: Stages) -> Self {
        Self { metadata, stages }
    }

    /// Which digest is in which stage for `path`, and by which promotion.
    pub async fn status(&self, path: &str) -> Result<Value, CatalogError> {
        let mut stages = Vec::new();
        for stage in self.stages.all() {
            let repo = format!("{}/{path}", stage.name);
            let artifacts = self.metadata.artifacts_in(&repo).await?;
            let promotions = self
                .metadata
                .promotions(Some("promoted"), Some(path), 1000)
                .await?;
            let freeze = self.metadata.freeze(stage.name.as_str()).await?;
            let list: Vec<Value> = artifacts
                .into_iter()
                .map(|(digest, tags)| {
                    let by = promotions
                        .iter()
                        .find(|p| p.digest == digest && p.target_stage == stage.name.as_str());
                    json!({"digest": digest, "tags": tags,
                           "promotion": by.map(|p| p.id.clone()),
                           "promoted_by": by.map(|p| p.requested_by.clone())})
                })
                .collect();
            stages.push(json!({"stage": stage.name.as_str(), "repository": repo,
                "frozen": freeze.as_ref().map(|f| f.reason.clone()), "artifacts": list}));
        }
        Ok(json!({"repository": path, "stages": stages}))
    }
}
