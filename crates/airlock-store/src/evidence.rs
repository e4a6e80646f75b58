//! Evidence storage: the keyring, every signature and attestation seen for an artifact with its
//! verdict, which evidence manifests were ingested, and flags on artifacts whose evidence was
//! voided. Values are stored as the trust layer renders them (ids, PEM, JSON); this module only
//! keeps them consistent: a keyring change, the verdicts it changes and their audit records commit
//! together.

use airlock_core::AuditRecord;
use sqlx::Row;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::{Metadata, now_millis};

/// A trusted key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Hex SHA-256 of the SPKI DER.
    pub key_id: String,
    /// Unique, human-chosen name.
    pub name: String,
    /// Signature algorithm (`ecdsa-p256-sha256`, ...).
    pub algorithm: String,
    /// SPKI PEM.
    pub public_key: String,
    /// `sign` and `attest:<predicate type>` entries.
    pub purposes: Vec<String>,
    /// Repository path patterns (without the stage).
    pub scope: Vec<String>,
    /// Start of validity (ms).
    pub not_before: Option<i64>,
    /// End of validity (ms).
    pub not_after: Option<i64>,
    /// `active`, `retired` or `revoked`.
    pub status: String,
    /// When the status last changed (ms).
    pub status_at: Option<i64>,
    /// Why it was retired or revoked.
    pub status_reason: Option<String>,
    /// Revoked because the private key is compromised.
    pub compromised: bool,
    /// When it was added (ms).
    pub created_at: i64,
    /// Who added it.
    pub created_by: String,
}

/// The verdict part of an evidence row: what verification concluded, under which keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceVerdict {
    /// `verified`, `rejected` or `revoked`.
    pub status: String,
    /// `signature` or `attestation`, once known.
    pub kind: Option<String>,
    /// Stable rejection code.
    pub reason_code: Option<String>,
    /// Human-readable rejection reason.
    pub reason: Option<String>,
    /// The signer, when identified.
    pub key_id: Option<String>,
    /// The signer's name, when identified.
    pub key_name: Option<String>,
    /// The in-toto predicate type, for attestations.
    pub predicate_type: Option<String>,
    /// Derived facts (JSON), for verified attestations.
    pub facts: Option<String>,
    /// The keyring version the verdict was made under.
    pub keyring_version: i64,
}

/// Where a piece of evidence came from and what is needed to verify it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceOrigin {
    /// Repository path without the stage (`team/app`).
    pub repository_path: String,
    /// The artifact digest the evidence is about.
    pub subject: String,
    /// The item's identity (see the schema).
    pub item: String,
    /// `cosign`, `dsse` or `sigstore-bundle`.
    pub format: String,
    /// `tag`, `referrer` or `api`.
    pub source: String,
    /// The repository it arrived in (with the stage).
    pub repository: String,
    /// The manifest that carried it.
    pub manifest: Option<String>,
    /// Payload, envelope or bundle blob digest.
    pub blob: String,
    /// cosign's base64 signature annotation.
    pub signature: Option<String>,
    /// Who pushed it.
    pub pushed_by: String,
}

/// A stored piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRow {
    /// Database id.
    pub id: i64,
    /// Where it came from.
    pub origin: EvidenceOrigin,
    /// The current verdict.
    pub verdict: EvidenceVerdict,
    /// When airlock first saw it (ms): the time key validity is judged at.
    pub first_seen_at: i64,
    /// When the verdict was made (ms).
    pub verified_at: i64,
}

/// A new verdict for an existing evidence row (after a keyring change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceUpdate {
    /// The row.
    pub id: i64,
    /// Its new verdict.
    pub verdict: EvidenceVerdict,
}

/// A flag raised on an artifact in a repository (e.g. `evidence_revoked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFlag {
    /// Full repository name.
    pub repository: String,
    /// Artifact digest.
    pub digest: String,
    /// The flag.
    pub flag: String,
    /// Why.
    pub reason: String,
}

/// A change to the keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Add a key.
    Add(KeyRow),
    /// Change a key's status.
    Status {
        /// The key id.
        key_id: String,
        /// `retired` or `revoked`.
        status: String,
        /// When (ms).
        at: i64,
        /// Why.
        reason: String,
        /// Revoked because compromised.
        compromised: bool,
    },
    /// Change what a key may vouch for: its purposes, scope and end of validity (the public key,
    /// name, start of validity and status stay). The keyring version guards it like every change.
    Update {
        /// The key id.
        key_id: String,
        /// The new purposes.
        purposes: Vec<String>,
        /// The new scope.
        scope: Vec<String>,
        /// The new end of validity.
        not_after: Option<i64>,
    },
}

/// Evidence to store: the item, its verdict, when it was first seen (ms) and the audit record
/// appended if the item is new.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    /// Where the item came from.
    pub origin: EvidenceOrigin,
    /// Its verdict.
    pub verdict: EvidenceVerdict,
    /// When it was first seen (ms).
    pub first_seen_at: i64,
    /// Its `evidence.recorded` record, appended only if the item is new.
    pub record: Option<AuditRecord>,
}

/// Why a keyring change, or evidence verified against the keyring, was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyringWriteError {
    /// A key with this name or id is already in the keyring.
    #[error("the keyring already holds a key with this {0}")]
    Duplicate(&'static str),
    /// The key changed since it was read (status already changed).
    #[error("the key changed meanwhile; read it again")]
    Conflict,
    /// The keyring moved on since the caller read it.
    #[error("the keyring changed meanwhile (version {found}, expected {expected})")]
    VersionMoved {
        /// The version the caller worked from.
        expected: i64,
        /// The version found.
        found: i64,
    },
    /// Evidence was recorded after the caller's scan of the evidence rows (see
    /// [`Metadata::change_keyring_after_scan`]).
    #[error(
        "evidence arrived while the keyring change re-verified the evidence (scanned up to row {scanned_up_to}); try again"
    )]
    EvidenceArrived {
        /// The highest row id the caller's scan covered.
        scanned_up_to: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for KeyringWriteError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// The keyring's version as `executor` sees it (0 before the first change).
async fn keyring_version<'c, E>(executor: E) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    Ok(
        sqlx::query_scalar("SELECT version FROM keyring_version WHERE id = 1")
            .fetch_all(executor)
            .await?
            .into_iter()
            .next()
            .unwrap_or(0),
    )
}

/// Refuses with [`KeyringWriteError::VersionMoved`] unless the keyring is at `expected` in the
/// transaction `tx` (under the writer lock: no keyring change commits until it does).
async fn require_keyring_version(
    tx: &mut sqlx::AnyConnection,
    expected: i64,
) -> Result<(), KeyringWriteError> {
    let found = keyring_version(&mut *tx).await?;
    if found != expected {
        return Err(KeyringWriteError::VersionMoved { expected, found });
    }
    Ok(())
}

fn json_list(text: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn key_from_row(row: sqlx::any::AnyRow) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        key_id: row.get("key_id"),
        name: row.get("name"),
        algorithm: row.get("algorithm"),
        public_key: row.get("public_key"),
        purposes: json_list(row.get("purposes"), "key purposes")?,
        scope: json_list(row.get("scope"), "key scope")?,
        not_before: row.get("not_before"),
        not_after: row.get("not_after"),
        status: row.get("status"),
        status_at: row.get("status_at"),
        status_reason: row.get("status_reason"),
        compromised: row.get::<i64, _>("compromised") != 0,
        created_at: row.get("created_at"),
        created_by: row.get("created_by"),
    })
}

fn evidence_from_row(row: sqlx::any::AnyRow) -> EvidenceRow {
    EvidenceRow {
        id: row.get("id"),
        origin: EvidenceOrigin {
            repository_path: row.get("repository_path"),
            subject: row.get("subject"),
            item: row.get("item"),
            format: row.get("format"),
            source: row.get("source"),
            repository: row.get("repository"),
            manifest: row.get("manifest"),
            blob: row.get("blob"),
            signature: row.get("signature"),
            pushed_by: row.get("pushed_by"),
        },
        verdict: EvidenceVerdict {
            status: row.get("status"),
            kind: row.get("kind"),
            reason_code: row.get("reason_code"),
            reason: row.get("reason"),
            key_id: row.get("key_id"),
            key_name: row.get("key_name"),
            predicate_type: row.get("predicate_type"),
            facts: row.get("facts"),
            keyring_version: row.get("keyring_version"),
        },
        first_seen_at: row.get("first_seen_at"),
        verified_at: row.get("verified_at"),
    }
}

const EVIDENCE_COLUMNS: &str = "id, repository_path, subject, item, format, source, repository, \
     manifest, blob, signature, status, kind, reason_code, reason, key_id, key_name, \
     predicate_type, facts, keyring_version, first_seen_at, verified_at, pushed_by";

async fn update_verdicts(
    tx: &mut sqlx::AnyConnection,
    updates: &[EvidenceUpdate],
    now: i64,
) -> Result<(), sqlx::Error> {
    for update in updates {
        let v = &update.verdict;
        sqlx::query(
            "UPDATE evidence SET status = $1, kind = $2, reason_code = $3, reason = $4, key_id = $5,
             key_name = $6, predicate_type = $7, facts = $8, keyring_version = $9, verified_at = $10
             WHERE id = $11",
        )
        .bind(&v.status)
        .bind(&v.kind)
        .bind(&v.reason_code)
        .bind(&v.reason)
        .bind(&v.key_id)
        .bind(&v.key_name)
        .bind(&v.predicate_type)
        .bind(&v.facts)
        .bind(v.keyring_version)
        .bind(now)
        .bind(update.id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

impl Metadata {
    /// Every key in the keyring, oldest first, and the keyring's version.
    pub async fn keyring(&self) -> Result<(i64, Vec<KeyRow>), StoreError> {
        self.keyring_rows(None).await
    }

    /// The keyring's version and up to `limit` of its keys after `after` (time added and name;
    /// from the oldest when `None`), oldest first, read in one statement: a range of
    /// `trusted_keys_by_time`.
    pub async fn keyring_page(
        &self,
        after: Option<&crate::TimeCursor>,
        limit: u32,
    ) -> Result<(i64, Vec<KeyRow>), StoreError> {
        self.keyring_rows(Some((after, limit))).await
    }

    /// The keyring's version and its keys in `(created_at, name)` order; with a page (cursor and
    /// limit), only those after its cursor, at most its limit. One statement, so one round trip
    /// and one snapshot: the version with the keys it counts (one row per key, or one row of
    /// NULLs when there is none).
    async fn keyring_rows(
        &self,
        page: Option<(Option<&crate::TimeCursor>, u32)>,
    ) -> Result<(i64, Vec<KeyRow>), StoreError> {
        let keys = match page {
            None => "trusted_keys",
            Some(_) => {
                "(SELECT * FROM trusted_keys WHERE (created_at, name) > ($1, $2)
                  ORDER BY created_at, name LIMIT $3)"
            }
        };
        let sql = format!(
            "SELECT v.keyring_version, k.*
             FROM (SELECT COALESCE(MAX(version), 0) AS keyring_version FROM keyring_version
                   WHERE id = 1) v
             LEFT JOIN {keys} k ON 1 = 1
             ORDER BY k.created_at, k.name"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some((after, limit)) = page {
            let (at, name) = after.map_or((i64::MIN, ""), |c| (c.at, c.key.as_str()));
            query = query.bind(at).bind(name).bind(i64::from(limit));
        }
        let rows = query.fetch_all(self.pool()).await?;
        let version: i64 = match rows.first() {
            Some(row) => row.try_get("keyring_version")?,
            None => 0,
        };
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            if row.try_get::<Option<String>, _>("key_id")?.is_some() {
                keys.push(key_from_row(row)?);
            }
        }
        Ok((version, keys))
    }

    /// Applies a keyring change together with the verdicts it changes, the flags it raises and
    /// their audit records, in one transaction, provided the keyring is still at
    /// `expected_version` (the version the verdicts were computed against). Returns the new
    /// keyring version.
    pub async fn change_keyring(
        &self,
        expected_version: i64,
        change: &KeyChange,
        updates: &[EvidenceUpdate],
        flags: &[ArtifactFlag],
        records: &[AuditRecord],
    ) -> Result<i64, KeyringWriteError> {
        self.change_keyring_after_scan(expected_version, None, change, updates, flags, records)
            .await
    }

    /// [`Metadata::change_keyring`] for a caller whose `updates` come from a scan of the
    /// evidence rows up to id `scanned_up_to`: refused with
    /// [`KeyringWriteError::EvidenceArrived`] if a row with a higher id was recorded since
    /// (another replica verified it against the keyring before this change, so the scan must
    /// cover it too). Rows are recorded under the writer lock, so their ids grow in commit order.
    pub async fn change_keyring_after_scan(
        &self,
        expected_version: i64,
        scanned_up_to: Option<i64>,
        change: &KeyChange,
        updates: &[EvidenceUpdate],
        flags: &[ArtifactFlag],
        records: &[AuditRecord],
    ) -> Result<i64, KeyringWriteError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        require_keyring_version(&mut tx, expected_version).await?;
        if let Some(scanned_up_to) = scanned_up_to {
            let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM evidence")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .unwrap_or(0);
            if newest > scanned_up_to {
                return Err(KeyringWriteError::EvidenceArrived { scanned_up_to });
            }
        }
        match change {
            KeyChange::Add(key) => {
                let clash: Vec<(String, String)> = sqlx::query_as(
                    "SELECT key_id, name FROM trusted_keys WHERE key_id = $1 OR name = $2",
                )
                .bind(&key.key_id)
                .bind(&key.name)
                .fetch_all(&mut *tx)
                .await?;
                if let Some((id, _)) = clash.first() {
                    return Err(KeyringWriteError::Duplicate(if id == &key.key_id {
                        "public key"
                    } else {
                        "name"
                    }));
                }
                let purposes = serde_json::to_string(&key.purposes)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let scope = serde_json::to_string(&key.scope)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO trusted_keys (key_id, name, algorithm, public_key, purposes, scope,
                     not_before, not_after, status, status_at, status_reason, compromised,
                     created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&key.key_id)
                .bind(&key.name)
                .bind(&key.algorithm)
                .bind(&key.public_key)
                .bind(purposes)
                .bind(scope)
                .bind(key.not_before)
                .bind(key.not_after)
                .bind(&key.status)
                .bind(key.status_at)
                .bind(&key.status_reason)
                .bind(key.compromised as i64)
                .bind(key.created_at)
                .bind(&key.created_by)
                .execute(&mut *tx)
                .await?;
            }
            KeyChange::Status {
                key_id,
                status,
                at,
                reason,
                compromised,
            } => {
                // Revocation is final; retirement may still become revocation.
                let changed = sqlx::query(
                    "UPDATE trusted_keys SET status = $1, status_at = $2, status_reason = $3,
                     compromised = $4 WHERE key_id = $5 AND status != 'revoked'",
                )
                .bind(status)
                .bind(at)
                .bind(reason)
                .bind(*compromised as i64)
                .bind(key_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed != 1 {
                    return Err(KeyringWriteError::Conflict);
                }
            }
            KeyChange::Update {
                key_id,
                purposes,
                scope,
                not_after,
            } => {
                let json = |value: &Vec<String>| {
                    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
                };
                let changed = sqlx::query(
                    "UPDATE trusted_keys SET purposes = $1, scope = $2, not_after = $3 WHERE key_id = $4",
                )
                .bind(json(purposes)?)
                .bind(json(scope)?)
                .bind(not_after)
                .bind(key_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed != 1 {
                    return Err(KeyringWriteError::Conflict);
                }
            }
        }
        let version = expected_version + 1;
        sqlx::query("UPDATE keyring_version SET version = $1 WHERE id = 1")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        update_verdicts(&mut tx, updates, now).await?;
        for flag in flags {
            sqlx::query(
                "INSERT INTO artifact_flags (repository, digest, flag, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&flag.repository)
            .bind(&flag.digest)
            .bind(&flag.flag)
            .bind(&flag.reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Stores newly seen evidence (items already known for the same artifact are left as they
    /// are, and their audit records are not appended: two replicas ingesting the same manifest
    /// record it once), marks the manifest that carried them as ingested, and appends the audit
    /// records of the items inserted, in one transaction, provided the keyring is still at
    /// `keyring_version` (the version the verdicts were computed against; otherwise
    /// [`KeyringWriteError::VersionMoved`] and nothing is written: verify again). Returns the ids
    /// of the rows inserted, in order (`None` for known items).
    pub async fn record_evidence(
        &self,
        keyring_version: i64,
        manifest: Option<(&str, &str)>,
        items: &[NewEvidence],
    ) -> Result<Vec<Option<i64>>, KeyringWriteError> {
        self.record_evidence_checked(keyring_version, manifest, items, None, || async {
            Ok(true)
        })
        .await
    }

    /// [`Metadata::record_evidence`] for evidence whose bytes were just written to the blob
    /// store as `blob` with no `blobs` row (a document submitted through the API): as
    /// [`Metadata::commit_blob_checked`] does (`bytes_present` asked before the transaction, the
    /// tombstone and finished deletions checked in it), refuses with
    /// [`StoreError::BlobCollected`] if gc is deleting that file or the file is gone, so no
    /// evidence row is left without its bytes. Once the row is in, gc no longer takes the file
    /// for an orphan.
    pub async fn record_evidence_checked<F, Fut>(
        &self,
        keyring_version: i64,
        manifest: Option<(&str, &str)>,
        items: &[NewEvidence],
        blob: Option<&airlock_core::Digest>,
        bytes_present: F,
    ) -> Result<Vec<Option<i64>>, KeyringWriteError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        let now = now_millis();
        let mut tx = match blob {
            Some(blob) => self.begin_bytes_commit(blob, bytes_present).await?,
            None => self.begin_write().await?,
        };
        // Under the writer lock no keyring change can commit until this transaction does: a
        // verdict computed against an older keyring (another replica revoked a key meanwhile)
        // is never stored.
        if !items.is_empty() {
            require_keyring_version(&mut tx, keyring_version).await?;
        }
        let mut ids = Vec::with_capacity(items.len());
        let mut records = Vec::new();
        for NewEvidence {
            origin,
            verdict,
            first_seen_at,
            record,
        } in items
        {
            let inserted: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO evidence (repository_path, subject, item, format, source, repository,
                 manifest, blob, signature, status, kind, reason_code, reason, key_id, key_name,
                 predicate_type, facts, keyring_version, first_seen_at, verified_at, pushed_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
                 ON CONFLICT (repository_path, subject, item) DO NOTHING
                 RETURNING id",
            )
            .bind(&origin.repository_path)
            .bind(&origin.subject)
            .bind(&origin.item)
            .bind(&origin.format)
            .bind(&origin.source)
            .bind(&origin.repository)
            .bind(&origin.manifest)
            .bind(&origin.blob)
            .bind(&origin.signature)
            .bind(&verdict.status)
            .bind(&verdict.kind)
            .bind(&verdict.reason_code)
            .bind(&verdict.reason)
            .bind(&verdict.key_id)
            .bind(&verdict.key_name)
            .bind(&verdict.predicate_type)
            .bind(&verdict.facts)
            .bind(verdict.keyring_version)
            .bind(first_seen_at)
            .bind(now)
            .bind(&origin.pushed_by)
            .fetch_all(&mut *tx)
            .await?;
            let id = inserted.into_iter().next();
            if id.is_some() {
                records.extend(record.iter().cloned());
            }
            ids.push(id);
        }
        if let Some((repository, digest)) = manifest {
            sqlx::query(
                "INSERT INTO evidence_manifests (repository, digest, ingested_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(repository)
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM evidence_pending WHERE repository = $1 AND digest = $2")
                .bind(repository)
                .bind(digest)
                .execute(&mut *tx)
                .await?;
        }
        append(&mut tx, &records).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Whether an evidence item is already stored for this artifact.
    pub async fn evidence_known(
        &self,
        repository_path: &str,
        subject: &str,
        item: &str,
    ) -> Result<bool, StoreError> {
        Ok(!sqlx::query_scalar::<_, i64>(
            "SELECT id FROM evidence WHERE repository_path = $1 AND subject = $2 AND item = $3",
        )
        .bind(repository_path)
        .bind(subject)
        .bind(item)
        .fetch_all(self.pool())
        .await?
        .is_empty())
    }

    /// Every piece of evidence about `subject` in `repository_path`, in the order it arrived.
    pub async fn evidence_for(
        &self,
        repository_path: &str,
        subject: &str,
    ) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE subject = $1 AND repository_path = $2
             ORDER BY id"
        )))
        .bind(subject)
        .bind(repository_path)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(evidence_from_row).collect())
    }

    /// The newest `limit` verified SLSA provenance attestations of `repository_path` (any
    /// subject), newest first: an index range (migration 0032), whatever the repository holds.
    pub async fn recent_provenance(
        &self,
        repository_path: &str,
        limit: u32,
    ) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE repository_path = $1
               AND kind = 'attestation'
               AND predicate_type IN ('https://slsa.dev/provenance/v1', 'https://slsa.dev/provenance/v0.2')
               AND status = 'verified'
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(repository_path)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(evidence_from_row).collect())
    }

    /// Up to `limit` evidence rows with an id above `after`, in id order (for re-verification).
    pub async fn evidence_page(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(evidence_from_row).collect())
    }

    /// Stores new verdicts for existing rows (a re-verification that found the keyring moved).
    pub async fn update_evidence(
        &self,
        updates: &[EvidenceUpdate],
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        update_verdicts(&mut tx, updates, now).await?;
        append(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every repository (with its stage) that holds the manifest `digest`.
    pub async fn repositories_holding(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT repository FROM repository_manifests WHERE digest = $1 ORDER BY repository",
        )
        .bind(digest)
        .fetch_all(self.pool())
        .await?)
    }

    /// Flags raised on `digest` in `repository`.
    pub async fn artifact_flags(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<ArtifactFlag>, StoreError> {
        let rows = sqlx::query(
            "SELECT repository, digest, flag, reason FROM artifact_flags
             WHERE repository = $1 AND digest = $2 ORDER BY flag",
        )
        .bind(repository)
        .bind(digest)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ArtifactFlag {
                repository: row.get("repository"),
                digest: row.get("digest"),
                flag: row.get("flag"),
                reason: row.get("reason"),
            })
            .collect())
    }

    /// Manifests that may carry evidence (they have a subject, or a tag like cosign's
    /// `sha256-*.sig|.att` points at them) but were not ingested yet, oldest first: what a crash
    /// between the push and the ingestion left behind, or an ingestion that failed. Read from
    /// `evidence_pending`, which the push's transaction fills and the ingestion's empties, so the
    /// cost follows what is pending, not the size of the store.
    pub async fn uningested_evidence_manifests(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT repository, digest FROM evidence_pending ORDER BY created_at, repository, digest",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    /// Forgets a pending manifest the evidence service has dealt with without recording it:
    /// one that is gone, that does not parse, or that turned out not to be evidence.
    pub async fn clear_evidence_pending(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM evidence_pending WHERE repository = $1 AND digest = $2")
            .bind(repository)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tags pointing at `digest` in `repository`.
    pub async fn tags_of(&self, repository: &str, digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository = $1 AND digest = $2 ORDER BY name",
        )
        .bind(repository)
        .bind(digest)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A push of a manifest that may be evidence (a subject, a cosign-style tag) leaves it
    /// pending in the push's transaction; recording its evidence clears it in the recording's;
    /// an image tagged `v1` is never pending.
    #[tokio::test]
    async fn a_pushed_evidence_manifest_is_pending_until_its_evidence_is_recorded() {
        use std::str::FromStr as _;

        use airlock_core::{Digest, ParsedManifest, RepoName, Tag};

        use crate::metadata::ManifestUpload;

        const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
        for meta in crate::testing::engines().await {
            let repo = RepoName::from_str("dev/team/app").unwrap();
            let config_digest = Digest::sha256_of(b"{}");
            meta.commit_blob(&repo, &config_digest, 2, &[])
                .await
                .unwrap();
            let image = format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":2}},\"layers\":[]}}"
            );
            let image_digest = Digest::sha256_of(image.as_bytes());
            let referrer = format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":2}},\"layers\":[],\"subject\":{{\"mediaType\":\"{MANIFEST}\",\"digest\":\"{image_digest}\",\"size\":{}}}}}",
                image.len()
            );
            let signature = format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config_digest}\",\"size\":2}},\"layers\":[],\"annotations\":{{\"sig\":\"1\"}}}}"
            );
            let sig_tag = format!("sha256-{}.sig", image_digest.hex());
            let mut digests = Vec::new();
            for (content, tag) in [
                (&image, Some("v1".to_string())),
                (&referrer, None),
                (&signature, Some(sig_tag)),
            ] {
                let digest = Digest::sha256_of(content.as_bytes());
                let parsed = ParsedManifest::parse(Some(MANIFEST), content.as_bytes()).unwrap();
                let upload = ManifestUpload {
                    digest: &digest,
                    manifest: &parsed,
                    content: content.as_bytes(),
                };
                let tag = tag.map(|t| Tag::from_str(&t).unwrap());
                meta.put_manifest(&repo, upload, tag.as_ref(), "ci", |_| Ok(vec![]))
                    .await
                    .unwrap();
                digests.push(digest.to_string());
            }
            let pending = meta.uningested_evidence_manifests().await.unwrap();
            let mut pending_digests: Vec<String> = pending.into_iter().map(|(_, d)| d).collect();
            pending_digests.sort();
            let mut expected = vec![digests[1].clone(), digests[2].clone()];
            expected.sort();
            assert_eq!(pending_digests, expected);
            meta.record_evidence(0, Some((repo.as_str(), &digests[1])), &[])
                .await
                .unwrap();
            let pending = meta.uningested_evidence_manifests().await.unwrap();
            assert_eq!(pending, [(repo.to_string(), digests[2].clone())]);
        }
    }

    /// Migration 0025 over a database holding manifests: `evidence_pending` starts with exactly
    /// the manifests the start-up pass used to find by reading every manifest (a subject or a
    /// cosign-style tag, not ingested), and nothing else.
    #[tokio::test]
    async fn migration_0025_carries_over_what_was_waiting_for_ingestion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .foreign_keys(false);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            crate::metadata::migrator(crate::Backend::Sqlite)
                .run_to(24, &pool)
                .await
                .unwrap();
            // a: a referrer never ingested; b: a referrer ingested; c: an image; d: tagged like a
            // cosign signature, never ingested; e: the same in another repository, ingested.
            sqlx::raw_sql(
                "INSERT INTO repository_manifests (repository, digest, subject, created_at) VALUES
                   ('dev/app', 'sha256:a', 'sha256:c', 1), ('dev/app', 'sha256:b', 'sha256:c', 2),
                   ('dev/app', 'sha256:c', NULL, 3), ('dev/app', 'sha256:d', NULL, 4),
                   ('dev/other', 'sha256:e', NULL, 5);
                 INSERT INTO tags (repository, name, digest, updated_at) VALUES
                   ('dev/app', 'v1', 'sha256:c', 3), ('dev/app', 'sha256-c.sig', 'sha256:d', 4),
                   ('dev/other', 'sha256-c.att', 'sha256:e', 5);
                 INSERT INTO evidence_manifests (repository, digest, ingested_at) VALUES
                   ('dev/app', 'sha256:b', 2), ('dev/other', 'sha256:e', 5);",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let meta = Metadata::open_sqlite(&path).await.unwrap();
        let pending = meta.uningested_evidence_manifests().await.unwrap();
        let expected = [("dev/app", "sha256:a"), ("dev/app", "sha256:d")];
        assert_eq!(
            pending,
            expected.map(|(r, d)| (r.to_string(), d.to_string()))
        );
        meta.clear_evidence_pending("dev/app", "sha256:a")
            .await
            .unwrap();
        assert_eq!(meta.uningested_evidence_manifests().await.unwrap().len(), 1);
    }

    fn key() -> KeyRow {
        KeyRow {
            key_id: "ab".repeat(32),
            name: "ci".into(),
            algorithm: "ecdsa-p256-sha256".into(),
            public_key: "PEM".into(),
            purposes: vec!["sign".into()],
            scope: vec!["team/*".into()],
            not_before: Some(1),
            not_after: None,
            status: "active".into(),
            status_at: None,
            status_reason: None,
            compromised: false,
            created_at: 1,
            created_by: "keyadmin".into(),
        }
    }

    #[tokio::test]
    async fn a_key_update_changes_purposes_scope_and_not_after_under_the_version_guard() {
        for metadata in crate::testing::engines().await {
            let version = metadata
                .change_keyring(0, &KeyChange::Add(key()), &[], &[], &[])
                .await
                .unwrap();
            let update = KeyChange::Update {
                key_id: key().key_id,
                purposes: vec!["sign".into(), "attest:https://cyclonedx.org/bom".into()],
                scope: vec!["team/app".into()],
                not_after: Some(99),
            };
            // Worked out from an older keyring: refused, nothing changed.
            assert!(matches!(
                metadata
                    .change_keyring(version - 1, &update, &[], &[], &[])
                    .await,
                Err(KeyringWriteError::VersionMoved { .. })
            ));
            assert_eq!(metadata.keyring().await.unwrap().1, vec![key()]);
            let next = metadata
                .change_keyring(version, &update, &[], &[], &[])
                .await
                .unwrap();
            assert_eq!(next, version + 1);
            let (stored_version, rows) = metadata.keyring().await.unwrap();
            assert_eq!(stored_version, next);
            let expected = KeyRow {
                purposes: vec!["sign".into(), "attest:https://cyclonedx.org/bom".into()],
                scope: vec!["team/app".into()],
                not_after: Some(99),
                ..key()
            };
            assert_eq!(rows, vec![expected]);
            // An update of a key that is not there is a conflict.
            let missing = KeyChange::Update {
                key_id: "cd".repeat(32),
                purposes: vec!["sign".into()],
                scope: vec!["*".into()],
                not_after: None,
            };
            assert!(matches!(
                metadata.change_keyring(next, &missing, &[], &[], &[]).await,
                Err(KeyringWriteError::Conflict)
            ));
        }
    }

    fn new_evidence(keyring_version: i64) -> NewEvidence {
        let subject = airlock_core::Digest::sha256_of(b"image");
        NewEvidence {
            origin: EvidenceOrigin {
                repository_path: "team/app".into(),
                subject: subject.to_string(),
                item: "sha256:item".into(),
                format: "dsse".into(),
                source: "api".into(),
                repository: "dev/team/app".into(),
                manifest: None,
                blob: "sha256:item".into(),
                signature: None,
                pushed_by: "ci".into(),
            },
            verdict: EvidenceVerdict {
                status: "verified".into(),
                kind: None,
                reason_code: None,
                reason: None,
                key_id: Some(key().key_id),
                key_name: Some("ci".into()),
                predicate_type: None,
                facts: None,
                keyring_version,
            },
            first_seen_at: 1,
            record: Some(AuditRecord {
                time_millis: 1,
                actor: airlock_core::Actor::system(),
                event: airlock_core::AuditEvent::EvidenceRecorded {
                    repository: "dev/team/app".parse().unwrap(),
                    subject,
                    item: "sha256:item".into(),
                    format: "dsse".into(),
                    status: "verified".into(),
                    key_name: Some("ci".into()),
                    predicate_type: None,
                    reason: None,
                },
            }),
        }
    }

    /// A verdict computed against a keyring another replica changed meanwhile (a key revoked)
    /// is refused, and an item two replicas record is stored and audited once.
    #[tokio::test]
    async fn evidence_is_stored_only_over_the_keyring_it_was_verified_against_and_once() {
        for metadata in crate::testing::engines().await {
            let version = metadata
                .change_keyring(0, &KeyChange::Add(key()), &[], &[], &[])
                .await
                .unwrap();
            let revoked = KeyChange::Status {
                key_id: key().key_id,
                status: "revoked".into(),
                at: 2,
                reason: "leaked".into(),
                compromised: true,
            };
            let after = metadata
                .change_keyring(version, &revoked, &[], &[], &[])
                .await
                .unwrap();
            let entries = metadata.audit_entry_count().await.unwrap();
            let stale = metadata
                .record_evidence(version, None, &[new_evidence(version)])
                .await;
            assert!(
                matches!(
                    stale,
                    Err(KeyringWriteError::VersionMoved { expected, found })
                        if expected == version && found == after
                ),
                "{stale:?}"
            );
            assert!(metadata.evidence_page(0, 10).await.unwrap().is_empty());
            assert_eq!(metadata.audit_entry_count().await.unwrap(), entries);

            let ids = metadata
                .record_evidence(after, None, &[new_evidence(after)])
                .await
                .unwrap();
            assert!(ids[0].is_some());
            let again = metadata
                .record_evidence(after, None, &[new_evidence(after)])
                .await
                .unwrap();
            assert_eq!(again, vec![None], "already recorded");
            assert_eq!(
                metadata.audit_entry_count().await.unwrap(),
                entries + 1,
                "one evidence.recorded entry"
            );
        }
    }

    /// A revocation whose re-verification scanned the evidence before another replica recorded
    /// a new item (verified against the keyring before the revocation) is refused, so the item
    /// cannot stay verified by the revoked key; a scan that covers it commits.
    #[tokio::test]
    async fn a_keyring_change_is_refused_when_evidence_arrived_after_its_scan() {
        for metadata in crate::testing::engines().await {
            let version = metadata
                .change_keyring(0, &KeyChange::Add(key()), &[], &[], &[])
                .await
                .unwrap();
            // The revoking replica scans: nothing yet.
            let scanned = metadata
                .evidence_page(0, 500)
                .await
                .unwrap()
                .last()
                .map_or(0, |row| row.id);
            // Another replica records an item verified under the current keyring.
            metadata
                .record_evidence(version, None, &[new_evidence(version)])
                .await
                .unwrap();
            let revoked = KeyChange::Status {
                key_id: key().key_id,
                status: "revoked".into(),
                at: 2,
                reason: "leaked".into(),
                compromised: true,
            };
            let refused = metadata
                .change_keyring_after_scan(version, Some(scanned), &revoked, &[], &[], &[])
                .await;
            assert!(
                matches!(refused, Err(KeyringWriteError::EvidenceArrived { scanned_up_to }) if scanned_up_to == scanned),
                "{refused:?}"
            );
            assert_eq!(
                metadata.keyring().await.unwrap().0,
                version,
                "nothing changed"
            );
            // Scanning on from where it stopped covers the new item: the change commits.
            let rows = metadata.evidence_page(scanned, 500).await.unwrap();
            assert_eq!(rows.len(), 1);
            let next = metadata
                .change_keyring_after_scan(version, Some(rows[0].id), &revoked, &[], &[], &[])
                .await
                .unwrap();
            assert_eq!(next, version + 1);
        }
    }
}
