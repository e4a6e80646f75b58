//! The audit log's identity recorded in the blob store (`airlock/log-identity.json`), for
//! servers on a shared database (PostgreSQL): the log key lives in the database, so a replica
//! started on an empty database (the database was lost, or `database_url` names the wrong one)
//! would otherwise make a new log key and silently start a new log over the old one's blobs.
//!
//! Guarantees, checked at every start before any key is made:
//! - The database has no log key but the blob store names one: the start is refused, naming the
//!   marker's log (restore the database, or delete the marker to start a new log on purpose).
//! - The database's log key is not the one the marker names: refused (a database and a blob
//!   store of two installations).
//! - No marker yet (the first start, or the first start of this release): written from the
//!   database's log key. Replicas starting together write the same bytes.
//!
//! The marker is read before the keys are loaded, so a replica that finds none while another
//! one installs the first keys loads those keys, never refuses them.

use airlock_audit::LogKey;
use airlock_store::{BlobStore, LOG_IDENTITY_PATH};
use serde::{Deserialize, Serialize};

use super::ServerKeyError;

/// What the marker records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogIdentity {
    /// The log's origin (the log key's name).
    pub origin: String,
    /// The log's verifier key (`<origin>+<hash>+<key>`), as `/log/key` serves it.
    pub public_key: String,
}

impl LogIdentity {
    /// The identity of the log signed by `key`.
    pub fn of(key: &LogKey) -> Self {
        Self {
            origin: key.origin().to_string(),
            public_key: key.verifier_key().to_string(),
        }
    }
}

/// At most this many characters of a marker's field are shown in an error.
const SHOWN: usize = 200;

fn shown(text: &str) -> String {
    text.chars().take(SHOWN).collect()
}

/// The marker in `blobs`, if there is one.
pub async fn read(blobs: &BlobStore) -> Result<Option<LogIdentity>, ServerKeyError> {
    let Some(bytes) = blobs.log_identity().await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ServerKeyError::LogIdentityMarker {
            path: LOG_IDENTITY_PATH,
            message: e.to_string(),
        })
}

/// Refuses a start on a database without a log key over a blob store whose marker names a log.
pub fn refuse_if_marked(marker: Option<&LogIdentity>) -> Result<(), ServerKeyError> {
    match marker {
        Some(marker) => Err(ServerKeyError::LogIdentityWithoutKey {
            path: LOG_IDENTITY_PATH,
            origin: shown(&marker.origin),
            public_key: shown(&marker.public_key),
        }),
        None => Ok(()),
    }
}

/// Checks the database's log key `key` against the marker read at start (`marker`), or writes
/// the marker when there is none.
pub async fn settle(
    blobs: &BlobStore,
    marker: Option<&LogIdentity>,
    key: &LogKey,
) -> Result<(), ServerKeyError> {
    let identity = LogIdentity::of(key);
    match marker {
        Some(marker) if *marker == identity => Ok(()),
        Some(marker) => Err(ServerKeyError::LogIdentityMismatch {
            path: LOG_IDENTITY_PATH,
            marker: shown(&marker.public_key),
            database: identity.public_key,
        }),
        None => {
            let bytes = serde_json::to_vec_pretty(&identity)
                .map_err(|e| ServerKeyError::Key(e.to_string()))?;
            blobs.put_log_identity(bytes).await?;
            tracing::info!(origin = %identity.origin, marker = LOG_IDENTITY_PATH, "recorded the audit log's identity in the blob store");
            Ok(())
        }
    }
}
