//! The audit log's JSON API (`/api/v1/audit/*`). The C2SP tlog-tiles read API under `/log/` is
//! text and binary, specified by c2sp.org/tlog-tiles and c2sp.org/tlog-checkpoint.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/audit/checkpoint`: the newest signed checkpoint and how far the log has grown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checkpoint {
    /// The log's origin line (its name in checkpoints).
    pub origin: String,
    /// Entries appended so far, signed into a checkpoint or not yet.
    pub entries: u64,
    /// The tree size the checkpoint signs.
    pub size: u64,
    /// The tree's root hash (hex).
    pub root: String,
    /// The C2SP signed note of the checkpoint, as `/log/checkpoint` serves it.
    pub note: String,
    /// The log's verifier key (a signed-note verifier key string); pin it out of band.
    pub verifier_key: String,
}

/// Where one of the log's witnesses stands (`[[audit.witnesses]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WitnessStatus {
    /// The witness's name (its key's name).
    pub name: String,
    /// The witness's `cosignature/v1` verifier key.
    pub key: String,
    /// The largest tree size it has cosigned for this log (0 before the first).
    pub cosigned_size: u64,
    /// Why the last submission failed; absent after a cosignature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it last answered or failed (RFC 3339); absent before the first submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `GET /api/v1/audit/witnesses`: the log's witnesses and the newest checkpoint's cosignatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WitnessStatusList {
    /// The newest checkpoint's tree size.
    pub size: u64,
    /// How many witnesses cosigned the newest checkpoint.
    pub cosignatures: u64,
    /// Each configured witness.
    pub witnesses: Vec<WitnessStatus>,
}

/// One stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointNote {
    /// The tree size it signs.
    pub size: u64,
    /// The C2SP signed note.
    pub note: String,
}

/// `GET /api/v1/audit/checkpoints`: stored checkpoints, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointList {
    /// Checkpoints with a size above `after`, at most `limit`.
    pub checkpoints: Vec<CheckpointNote>,
}

/// Query of `GET /api/v1/audit/checkpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckpointsQuery {
    /// Only checkpoints of a larger tree size (default 0).
    #[serde(default, deserialize_with = "int64::optional")]
    pub after: Option<u64>,
    /// At most this many: 1 to 1000 (default 1000); others are refused.
    #[serde(default, deserialize_with = "int64::optional")]
    pub limit: Option<u64>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// Its position in the log.
    pub index: u64,
    /// The entry: `type`, time, actor, target and details (see docs/audit.md).
    pub entry: serde_json::Value,
}

/// `GET /api/v1/audit/entries`: a page of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryList {
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
    /// The index to ask for next (`start`), `null` when the page is empty.
    pub next: Option<u64>,
}

/// Query of `GET /api/v1/audit/entries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// The first index (default 0).
    #[serde(default, deserialize_with = "int64::optional")]
    pub start: Option<u64>,
    /// At most this many: 1 to 10000 (default 1000); others are refused.
    #[serde(default, deserialize_with = "int64::optional")]
    pub limit: Option<u64>,
    /// Only entries at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// The newest N entries instead of a page from `start`: 0 to 10000 (0 answers no entries,
    /// with `next` at the log's end); more is refused.
    #[serde(default, deserialize_with = "int64::optional")]
    pub newest: Option<u64>,
    /// Only entries whose type starts with this (`promotion.`, `key.added`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
}

/// `GET /api/v1/audit/proof/inclusion`: RFC 6962 inclusion proof of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The entry's index.
    pub index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The entry's RFC 6962 leaf hash (hex).
    pub leaf_hash: String,
    /// The audit path (hex), from the leaf's sibling up to the root's child.
    pub hashes: Vec<String>,
}

/// Query of `GET /api/v1/audit/proof/inclusion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The entry's index.
    #[serde(deserialize_with = "int64::required")]
    pub index: u64,
    /// The tree size (default: the newest checkpoint's).
    #[serde(default, deserialize_with = "int64::optional")]
    pub tree_size: Option<u64>,
}

/// `GET /api/v1/audit/proof/consistency`: RFC 6962 consistency proof between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub old_size: u64,
    /// The newer tree size.
    pub new_size: u64,
    /// The proof hashes (hex).
    pub hashes: Vec<String>,
}

/// Query of `GET /api/v1/audit/proof/consistency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size (at least 1).
    #[param(minimum = 1)]
    #[serde(deserialize_with = "int64::required")]
    pub from: u64,
    /// The newer tree size (default: the newest checkpoint's).
    #[serde(default, deserialize_with = "int64::optional")]
    pub to: Option<u64>,
}

/// Query numbers the schema declares as `int64` with a minimum of 0: a `u64` above `i64::MAX` is
/// refused rather than read, so the server accepts exactly what the document describes.
mod int64 {
    use serde::{Deserialize, Deserializer, de::Error};

    fn bounded<E: Error>(value: u64) -> Result<u64, E> {
        if i64::try_from(value).is_ok() {
            Ok(value)
        } else {
            Err(E::custom(format!("{value} is larger than {}", i64::MAX)))
        }
    }

    /// A required parameter.
    pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        bounded(u64::deserialize(deserializer)?)
    }

    /// An optional parameter.
    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Option::<u64>::deserialize(deserializer)?
            .map(bounded)
            .transpose()
    }
}
