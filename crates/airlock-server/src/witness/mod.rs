//! airlock as a witness of other transparency logs (c2sp.org/tlog-witness; `[witness]`).
//!
//! For each configured log (one verifier key per origin) the witness keeps the newest checkpoint
//! it cosigned (`witnessed_logs`). It cosigns a submitted checkpoint only if the checkpoint is
//! signed by that log's key and a consistency proof shows it extends what it cosigned before;
//! the check and the update are one compare-and-swap, so it never rolls back, even under
//! concurrent requests. Its key is `<data_dir>/witness-key`, made on first start.
//!
//! `routes` serves `POST /witness/add-checkpoint` and `GET /witness/<origin hash>/checkpoint`,
//! on `airlock serve` when `[witness]` is set, and alone under `airlock witness serve`.

pub mod routes;

use std::collections::BTreeMap;
use std::path::Path;

use airlock_audit::{
    AddCheckpoint, AuditError, Hash, WitnessKey, WitnessRefusal, WitnessedTree,
    check_add_checkpoint, checkpoint_origin_unverified, log_key_origin, origin_hash,
    verify_checkpoint,
};
use airlock_store::{Metadata, StoreError, WitnessedLogRow};

use crate::config::WitnessConfig;

/// The file in the data directory holding the witness's private key (mode 0600).
pub const KEY_FILE: &str = "witness-key";

/// Why the witness did not cosign, each with the status c2sp.org/tlog-witness gives it.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The request or its checkpoint is malformed (400).
    #[error("{0}")]
    Malformed(#[source] AuditError),
    /// The checkpoint's origin is not a log this witness witnesses (404).
    #[error(
        "this witness does not witness the log {origin:?}: its operator must add the log's verifier key to [witness] logs"
    )]
    UnknownOrigin {
        /// The checkpoint's origin.
        origin: String,
    },
    /// The checkpoint carries no valid signature by the log's key (403).
    #[error(
        "the checkpoint is not validly signed by the key this witness trusts for {origin}: {source}"
    )]
    NotSignedByLog {
        /// The checkpoint's origin.
        origin: String,
        /// What failed.
        #[source]
        source: AuditError,
    },
    /// The checkpoint is not consistent with what this witness cosigned (400, 409 or 422).
    #[error(transparent)]
    Refused(#[from] WitnessRefusal),
    /// The witness's records could not be read or written (500).
    #[error("the witness's storage failed: {0}")]
    Store(#[from] StoreError),
    /// Signing the cosignature failed (500).
    #[error("signing the cosignature failed: {0}")]
    Signing(#[source] AuditError),
}

impl WitnessError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) => 400,
            WitnessError::UnknownOrigin { .. } => 404,
            WitnessError::NotSignedByLog { .. } => 403,
            WitnessError::Refused(refusal) => refusal.status(),
            WitnessError::Store(_) | WitnessError::Signing(_) => 500,
        }
    }
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessStartError {
    /// The key file could not be read or written.
    #[error("witness key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The witness's database could not be opened.
    #[error("the witness database: {0}")]
    Store(#[from] StoreError),
    /// Listening or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The database file of a witness served alone.
pub const DATABASE_FILE: &str = "witness.db";

/// Serves only the witness (`airlock witness serve`) on `listen`, with its own SQLite database
/// and key in `data_dir`, until `shutdown` resolves. Prints `airlock witness listening on
/// http://ADDR` and the witness's verifier key on stdout once the socket is bound.
pub async fn serve_alone(
    listen: std::net::SocketAddr,
    data_dir: &Path,
    config: &WitnessConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WitnessStartError> {
    std::fs::create_dir_all(data_dir)?;
    let metadata = Metadata::open_sqlite(&data_dir.join(DATABASE_FILE)).await?;
    let Some(witness) = WitnessService::open(config, data_dir, metadata.clone())? else {
        return Err(WitnessStartError::Config(
            "a witness needs a name (--name, e.g. witness.example.com/w1)".into(),
        ));
    };
    let key = witness.verifier_key().to_owned();
    let app = routes::router(std::sync::Arc::new(witness))
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "airlock witness listening");
    println!("airlock witness listening on http://{addr}");
    println!("witness key: {key}");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    metadata.close().await;
    Ok(served?)
}

/// The witness: its key, the logs it trusts and its records.
pub struct WitnessService {
    key: WitnessKey,
    /// Log verifier keys by origin.
    logs: BTreeMap<String, String>,
    metadata: Metadata,
}

impl WitnessService {
    /// Opens the witness `config` describes over `metadata`, loading its key from the data
    /// directory or making one named `config.name` on first start. `None` when `[witness]` names
    /// no witness.
    pub fn open(
        config: &WitnessConfig,
        data_dir: &Path,
        metadata: Metadata,
    ) -> Result<Option<WitnessService>, WitnessStartError> {
        let Some(name) = &config.name else {
            return Ok(None);
        };
        let path = data_dir.join(KEY_FILE);
        let key_error = |message: String| WitnessStartError::KeyFile {
            path: path.clone(),
            message,
        };
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => {
                WitnessKey::from_private_text(&text).map_err(|e| key_error(e.to_string()))?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = WitnessKey::generate(name).map_err(|e| key_error(e.to_string()))?;
                crate::audit::write_private_file(&path, key.private_text().as_bytes())
                    .map_err(|e| key_error(e.to_string()))?;
                tracing::info!(path = %path.display(), verifier_key = key.verifier_key(), "generated the witness key");
                key
            }
            Err(err) => return Err(key_error(err.to_string())),
        };
        if key.name() != name {
            return Err(key_error(format!(
                "the key is named {:?} but witness.name is {name:?}: a witness keeps its name for life (logs pin it); set witness.name back, or move the key file away to start a new witness",
                key.name()
            )));
        }
        let mut logs = BTreeMap::new();
        for vkey in &config.logs {
            let origin = log_key_origin(vkey)
                .map_err(|e| WitnessStartError::Config(format!("witness.logs: {vkey:?}: {e}")))?;
            logs.insert(origin, vkey.trim().to_owned());
        }
        Ok(Some(WitnessService {
            key,
            logs,
            metadata,
        }))
    }

    /// The witness's public verifier key, for logs and verifiers to pin.
    pub fn verifier_key(&self) -> &str {
        self.key.verifier_key()
    }

    /// Handles an `add-checkpoint` request body; returns the cosignature line on success.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, WitnessError> {
        let request = AddCheckpoint::parse(body).map_err(WitnessError::Malformed)?;
        let origin =
            checkpoint_origin_unverified(&request.checkpoint).map_err(WitnessError::Malformed)?;
        let Some(log_key) = self.logs.get(&origin) else {
            return Err(WitnessError::UnknownOrigin { origin });
        };
        let checkpoint = verify_checkpoint(&request.checkpoint, log_key).map_err(|source| {
            WitnessError::NotSignedByLog {
                origin: origin.clone(),
                source,
            }
        })?;
        let stored = self.metadata.witnessed_log(&origin).await?;
        let cosigned = stored
            .as_ref()
            .map_or(WitnessedTree::EMPTY, |row| WitnessedTree {
                size: row.size,
                root: Hash(row.root),
            });
        if let Err(refusal) = check_add_checkpoint(&request, &checkpoint, &cosigned) {
            if refusal.status() == 422 {
                // Possible evidence of a misbehaving log: kept in the server log.
                tracing::warn!(%origin, size = checkpoint.size, cosigned_size = cosigned.size, %refusal, "witness refused an inconsistent checkpoint");
            }
            return Err(refusal.into());
        }
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let line = self
            .key
            .cosign(&request.checkpoint, timestamp)
            .map_err(WitnessError::Signing)?;
        let row = WitnessedLogRow {
            size: checkpoint.size,
            root: checkpoint.root.0,
            checkpoint: format!("{}{line}", request.checkpoint),
        };
        let moved = self
            .metadata
            .advance_witnessed_log(&origin, stored.as_ref().map(|row| row.size), &row)
            .await?;
        if !moved {
            // Another request moved the record between the read and the swap: answer as if this
            // one had come second, with the size it moved to.
            let now = self.metadata.witnessed_log(&origin).await?;
            return Err(WitnessRefusal::Conflict {
                old_size: request.old_size,
                cosigned_size: now.map_or(0, |row| row.size),
            }
            .into());
        }
        Ok(line)
    }

    /// The newest checkpoint cosigned for the log whose origin hashes to `hash` (lowercase hex
    /// SHA-256), with this witness's cosignature; `None` if it never cosigned one.
    pub async fn checkpoint(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let Some(origin) = self.logs.keys().find(|origin| origin_hash(origin) == hash) else {
            return Ok(None);
        };
        Ok(self
            .metadata
            .witnessed_log(origin)
            .await?
            .map(|row| row.checkpoint))
    }
}
