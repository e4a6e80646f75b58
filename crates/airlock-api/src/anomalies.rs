//! Anomalies (`/api/v1/anomalies`): what the detector saw, what it did, and resolving it.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Who and what an anomaly is about (the fields that apply are present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AnomalyTarget {
    /// The principal that acted (or that an authentication named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The repository involved (`<stage>/<path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The artifact involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The gated stage involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An anomaly: a rule's threshold reached, and the action taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    /// Its id.
    pub id: i64,
    /// The rule, e.g. `auth_failures`, `denial_burst`, `tampered_evidence`.
    pub rule: String,
    /// What the rule counted by, e.g. `principal:ci-bot`.
    pub key: String,
    /// The action: `alert`, `lock_principal`, `quarantine_artifact` or `freeze_stage`.
    pub action: String,
    /// Whether the action was taken (an alert is always "applied").
    pub applied: bool,
    /// One line saying what happened.
    pub summary: String,
    /// Who and what it is about.
    pub target: AnomalyTarget,
    /// Signals observed in the window.
    pub observed: u32,
    /// The rule's threshold.
    pub threshold: u32,
    /// The rule's window in seconds.
    pub window_secs: u64,
    /// `open` or `resolved`.
    pub status: String,
    /// When it was detected (RFC 3339).
    pub created_at: String,
    /// When it was resolved (RFC 3339).
    pub resolved_at: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Why it was resolved.
    pub resolution: Option<String>,
}

/// `GET /api/v1/anomalies`: a page of anomalies, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AnomalyList {
    /// The anomalies on this page.
    pub anomalies: Vec<Anomaly>,
    /// The cursor of the next (older) page (`last=`), `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// Which anomalies to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyStatusFilter {
    /// Not resolved yet.
    Open,
    /// Resolved.
    Resolved,
    /// Both.
    All,
}

/// Query of `GET /api/v1/anomalies`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyListQuery {
    /// `open`, `resolved` or `all` (default `all`).
    #[param(inline)]
    pub status: Option<AnomalyStatusFilter>,
    /// Entries per page (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub n: Option<u32>,
    /// The older name of `n` (give one of them).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub last: Option<String>,
}

/// `POST /api/v1/anomalies/{id}/resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveAnomalyRequest {
    /// Why the anomaly is resolved (1 to 1000 bytes, not only spaces); recorded in the audit
    /// log.
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}
