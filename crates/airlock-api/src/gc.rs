//! Garbage collection (`POST /api/v1/gc`): what a run deleted, or would delete.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A request to run garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Only count what would be deleted; change nothing (and record nothing in the audit log).
    #[serde(default)]
    pub dry_run: bool,
}

/// What a garbage-collection run deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GcReport {
    /// Whether this was a dry run (nothing was deleted).
    pub dry_run: bool,
    /// Blobs no manifest, evidence or upload in flight references, older than the grace period.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files in the blob store that no row names (left by a crash), older than the grace period.
    pub orphan_files: u64,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// Objects staged for upload sessions that no session will use (a session that ended
    /// without deleting its data, a chunk written by the loser of a race), older than the grace
    /// period.
    #[serde(default)]
    pub staged_objects: u64,
    /// Their bytes.
    #[serde(default)]
    pub staged_bytes: u64,
    /// Untagged manifests removed from push-stage repositories by `keep_untagged_days`.
    pub manifests_pruned: u64,
    /// The grace period the run kept younger blobs for, in seconds.
    pub grace_secs: u64,
    /// The retention rule in force, in days (absent: untagged manifests are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_untagged_days: Option<u32>,
}
