//! airlock's own keys in the database, for replicas that share them (PostgreSQL): the audit log
//! key, the token signing keys and the promotion attestation keys, current and retired.
//!
//! Guarantees:
//! - A private half is stored only sealed under the key-encryption key ([`KeyEncryptionKey`],
//!   `sealing`), bound to its purpose and key id; a row whose sealed bytes were changed, copied
//!   from another row, or sealed under another KEK is refused with [`StoreError::SealedKey`],
//!   which names the key but carries nothing of it. A retired key keeps its public half only.
//! - Every row carries a MAC over all its columns under a key derived from the KEK (`mac`):
//!   every read and every write checks it in constant time, and a row whose MAC does not match,
//!   or that has none, is refused with [`StoreError::ServerKeyUnauthenticated`] naming the row;
//!   so whoever can write the database without the KEK cannot swap a public half, extend an
//!   acceptance window, revive a retired key or add one. Rows written before the MACs existed
//!   (migration 22) get theirs once, while no row has one
//!   ([`Metadata::authenticate_server_keys`]): trust on upgrade.
//! - At most one current key per purpose (a unique index). [`Metadata::install_server_keys`]
//!   writes the keys of a purpose only while it has no current key, under the writer lock, so of
//!   replicas starting at once on an empty table exactly one installs and all load the same keys.
//! - Every change bumps one version number ([`Metadata::server_keys_version`]) in the same
//!   transaction, with its audit entries: a replica that sees the number move reloads the keys.
//!
//! The embedded default keeps its keys as files in the data directory and never uses this.

mod mac;
mod sealing;
#[cfg(test)]
mod tests;

use airlock_core::AuditRecord;
use sqlx::Row;

pub use sealing::KeyEncryptionKey;

use crate::audit::append;
use crate::error::StoreError;
use crate::metadata::Metadata;

/// What a server key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPurpose {
    /// The audit log key (signs checkpoints; never rotated in place).
    Log,
    /// A token signing key.
    Token,
    /// A promotion attestation key.
    Attestation,
}

impl KeyPurpose {
    /// Every purpose, in the order keys are installed.
    pub const ALL: [KeyPurpose; 3] = [Self::Log, Self::Token, Self::Attestation];

    /// The stored name: `log`, `token` or `attestation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Token => "token",
            Self::Attestation => "attestation",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

impl std::fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server key, its private half opened (current keys) or absent (retired keys).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerKeyRecord {
    /// What it is for.
    pub purpose: KeyPurpose,
    /// Its id (unique within the purpose).
    pub key_id: String,
    /// Its public half as airlock publishes it (PEM, or the log's verifier key).
    pub public_key: String,
    /// Its private half in the text form airlock reads (PEM, or the log's private key text):
    /// present for the current key of each purpose only.
    pub private_key: Option<String>,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When it was replaced (Unix ms), for a retired key.
    pub retired_at: Option<i64>,
    /// Until when what it signed is accepted (Unix ms), for a retired token key.
    pub accepted_until: Option<i64>,
}

impl std::fmt::Debug for ServerKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeyRecord")
            .field("purpose", &self.purpose)
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "redacted"),
            )
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("accepted_until", &self.accepted_until)
            .finish()
    }
}

/// Every stored server key, as of one version.
#[derive(Debug, Clone)]
pub struct ServerKeySet {
    /// The version read before the keys (a change committed in between shows as a newer version
    /// at the next poll).
    pub version: i64,
    /// The keys, by purpose, oldest first within a purpose.
    pub keys: Vec<ServerKeyRecord>,
}

impl ServerKeySet {
    /// The current key of `purpose`, if one is stored.
    pub fn current(&self, purpose: KeyPurpose) -> Option<&ServerKeyRecord> {
        self.keys
            .iter()
            .find(|k| k.purpose == purpose && k.retired_at.is_none())
    }

    /// The retired keys of `purpose`, oldest first.
    pub fn retired(&self, purpose: KeyPurpose) -> impl Iterator<Item = &ServerKeyRecord> {
        self.keys
            .iter()
            .filter(move |k| k.purpose == purpose && k.retired_at.is_some())
    }
}

fn sealed_key_error(purpose: KeyPurpose, key_id: &str) -> StoreError {
    StoreError::SealedKey {
        purpose: purpose.as_str(),
        key_id: key_id.chars().take(64).collect(),
    }
}

fn unauthenticated(purpose: KeyPurpose, key_id: &str, reason: &'static str) -> StoreError {
    StoreError::ServerKeyUnauthenticated {
        purpose: purpose.as_str(),
        key_id: key_id.chars().take(64).collect(),
        reason,
    }
}

/// Why a row's MAC does not match.
const MAC_MISMATCH: &str = "its MAC does not match the row";
/// Why a row without a MAC is refused.
const MAC_MISSING: &str = "it has no MAC (airlock writes one with every row: a row without was added or cleared outside airlock)";

/// One `server_keys` row as stored, its private half still sealed.
struct StoredRow {
    purpose: KeyPurpose,
    key_id: String,
    public_key: String,
    sealed_private: Option<Vec<u8>>,
    created_at: i64,
    retired_at: Option<i64>,
    accepted_until: Option<i64>,
    mac: Option<Vec<u8>>,
}

/// Every row of `server_keys`, every column, in a fixed order.
const SELECT_ALL: &str = "SELECT purpose, key_id, public_key, sealed_private, created_at,
        retired_at, accepted_until, mac
 FROM server_keys ORDER BY purpose, created_at, key_id";
/// The current row of purpose `$1`, every column.
const SELECT_CURRENT: &str = "SELECT purpose, key_id, public_key, sealed_private, created_at,
        retired_at, accepted_until, mac
 FROM server_keys WHERE purpose = $1 AND retired_at IS NULL";

impl StoredRow {
    fn read(row: &sqlx::any::AnyRow) -> Result<Self, StoreError> {
        let purpose_text: String = row.try_get("purpose")?;
        let Some(purpose) = KeyPurpose::parse(&purpose_text) else {
            return Err(StoreError::Corrupt(format!(
                "server_keys: unknown purpose {:?}",
                purpose_text.chars().take(32).collect::<String>()
            )));
        };
        Ok(Self {
            purpose,
            key_id: row.try_get("key_id")?,
            public_key: row.try_get("public_key")?,
            sealed_private: row.try_get("sealed_private")?,
            created_at: row.try_get("created_at")?,
            retired_at: row.try_get("retired_at")?,
            accepted_until: row.try_get("accepted_until")?,
            mac: row.try_get("mac")?,
        })
    }

    fn fields(&self) -> mac::RowFields<'_> {
        mac::RowFields {
            purpose: self.purpose,
            key_id: &self.key_id,
            public_key: &self.public_key,
            sealed_private: self.sealed_private.as_deref(),
            created_at: self.created_at,
            retired_at: self.retired_at,
            accepted_until: self.accepted_until,
        }
    }

    /// Checks the row's MAC under `kek`: a missing or wrong one refuses the row.
    fn authenticate(&self, kek: &KeyEncryptionKey) -> Result<(), StoreError> {
        let Some(tag) = &self.mac else {
            return Err(unauthenticated(self.purpose, &self.key_id, MAC_MISSING));
        };
        mac::verify_row(kek, &self.fields(), tag)
            .map_err(|_| unauthenticated(self.purpose, &self.key_id, MAC_MISMATCH))
    }

    /// The row's MAC under `kek`.
    fn mac(&self, kek: &KeyEncryptionKey) -> Result<Vec<u8>, StoreError> {
        mac::row_mac(kek, &self.fields()).map_err(|_| sealed_key_error(self.purpose, &self.key_id))
    }
}

async fn insert(
    tx: &mut sqlx::AnyConnection,
    kek: &KeyEncryptionKey,
    key: &ServerKeyRecord,
) -> Result<(), StoreError> {
    let sealed = match &key.private_key {
        Some(private) => Some(
            sealing::seal(kek, key.purpose, &key.key_id, private.as_bytes())
                .map_err(|_| sealed_key_error(key.purpose, &key.key_id))?,
        ),
        None => None,
    };
    let row = StoredRow {
        purpose: key.purpose,
        key_id: key.key_id.clone(),
        public_key: key.public_key.clone(),
        sealed_private: sealed,
        created_at: key.created_at,
        retired_at: key.retired_at,
        accepted_until: key.accepted_until,
        mac: None,
    };
    let mac = row.mac(kek)?;
    sqlx::query(
        "INSERT INTO server_keys
         (purpose, key_id, public_key, sealed_private, created_at, retired_at, accepted_until, mac)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (purpose, key_id) DO NOTHING",
    )
    .bind(row.purpose.as_str())
    .bind(&row.key_id)
    .bind(&row.public_key)
    .bind(row.sealed_private)
    .bind(row.created_at)
    .bind(row.retired_at)
    .bind(row.accepted_until)
    .bind(mac)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn bump_version(tx: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE server_keys_version SET version = version + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Metadata {
    /// The version of the stored server keys: it changes with every install or rotation.
    pub async fn server_keys_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT version FROM server_keys_version WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The public half of the current key of `purpose`, if one is stored: for tools that
    /// verify, such as `airlock audit verify`. With `kek` the row's MAC is checked first (a
    /// missing or wrong one is [`StoreError::ServerKeyUnauthenticated`]); without, the public
    /// half is read as stored (it is in clear), vouched for by nothing.
    pub async fn current_server_public_key(
        &self,
        purpose: KeyPurpose,
        kek: Option<&KeyEncryptionKey>,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(SELECT_CURRENT)
            .bind(purpose.as_str())
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let row = StoredRow::read(&row)?;
        if let Some(kek) = kek {
            row.authenticate(kek)?;
        }
        Ok(Some(row.public_key))
    }

    /// Every stored server key, current keys' private halves opened with `kek`.
    pub async fn server_keys(&self, kek: &KeyEncryptionKey) -> Result<ServerKeySet, StoreError> {
        let version = self.server_keys_version().await?;
        let rows = sqlx::query(SELECT_ALL).fetch_all(self.pool()).await?;
        let rows = rows
            .iter()
            .map(StoredRow::read)
            .collect::<Result<Vec<_>, _>>()?;
        // The current keys' private halves first: a KEK that opens none of them is the wrong
        // KEK (every row's MAC would fail too), which the sealing error names.
        let mut opened = Vec::with_capacity(rows.len());
        for row in &rows {
            opened.push(match (&row.sealed_private, row.retired_at) {
                (Some(sealed), None) => {
                    let private = sealing::open(kek, row.purpose, &row.key_id, sealed)
                        .map_err(|_| sealed_key_error(row.purpose, &row.key_id))?;
                    Some(
                        String::from_utf8(private)
                            .map_err(|_| sealed_key_error(row.purpose, &row.key_id))?,
                    )
                }
                _ => None,
            });
        }
        for row in &rows {
            row.authenticate(kek)?;
            if row.retired_at.is_none() && row.sealed_private.is_none() {
                return Err(sealed_key_error(row.purpose, &row.key_id));
            }
        }
        let keys = rows
            .into_iter()
            .zip(opened)
            .map(|(row, private_key)| ServerKeyRecord {
                purpose: row.purpose,
                key_id: row.key_id,
                public_key: row.public_key,
                private_key,
                created_at: row.created_at,
                retired_at: row.retired_at,
                accepted_until: row.accepted_until,
            })
            .collect();
        Ok(ServerKeySet { version, keys })
    }

    /// Installs `keys` (current and retired, sealing current ones' private halves with `kek`)
    /// for each purpose that has no current key yet, with the `audit` records of that purpose,
    /// in one transaction under the writer lock. Returns the purposes installed; a purpose
    /// another replica installed first is left as it is.
    pub async fn install_server_keys(
        &self,
        kek: &KeyEncryptionKey,
        keys: &[ServerKeyRecord],
        audit: &[(KeyPurpose, AuditRecord)],
    ) -> Result<Vec<KeyPurpose>, StoreError> {
        let mut tx = self.begin_write().await?;
        let present: Vec<String> =
            sqlx::query_scalar("SELECT purpose FROM server_keys WHERE retired_at IS NULL")
                .fetch_all(&mut *tx)
                .await?;
        let mut installed = Vec::new();
        for purpose in KeyPurpose::ALL {
            let given = keys.iter().any(|k| k.purpose == purpose);
            if !given || present.iter().any(|p| p == purpose.as_str()) {
                continue;
            }
            for key in keys.iter().filter(|k| k.purpose == purpose) {
                insert(&mut tx, kek, key).await?;
            }
            installed.push(purpose);
        }
        if installed.is_empty() {
            return Ok(installed);
        }
        bump_version(&mut tx).await?;
        let records: Vec<AuditRecord> = audit
            .iter()
            .filter(|(purpose, _)| installed.contains(purpose))
            .map(|(_, record)| record.clone())
            .collect();
        append(&mut tx, &records).await?;
        tx.commit().await?;
        Ok(installed)
    }

    /// Replaces the current key of `new.purpose` by `new` (sealed with `kek`): the old one is
    /// retired at `new.created_at`, what it signed accepted until `accepted_until`, its private
    /// half dropped; the version moves and `audit(old_key_id)` is appended, in one transaction.
    /// Returns the old key's id.
    pub async fn rotate_server_key(
        &self,
        kek: &KeyEncryptionKey,
        new: &ServerKeyRecord,
        accepted_until: Option<i64>,
        audit: impl FnOnce(&str) -> Vec<AuditRecord>,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        let old = sqlx::query(SELECT_CURRENT)
            .bind(new.purpose.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(old) = old else {
            return Err(StoreError::Conflict(format!(
                "no current {} key is stored to replace",
                new.purpose
            )));
        };
        // The row is retired as it is: a changed one is refused, not given a fresh MAC.
        let mut old = StoredRow::read(&old)?;
        old.authenticate(kek)?;
        old.retired_at = Some(new.created_at);
        old.accepted_until = accepted_until;
        old.sealed_private = None;
        let mac = old.mac(kek)?;
        sqlx::query(
            "UPDATE server_keys
             SET retired_at = $1, accepted_until = $2, sealed_private = NULL, mac = $3
             WHERE purpose = $4 AND key_id = $5",
        )
        .bind(old.retired_at)
        .bind(old.accepted_until)
        .bind(mac)
        .bind(old.purpose.as_str())
        .bind(&old.key_id)
        .execute(&mut *tx)
        .await?;
        let old = old.key_id;
        insert(&mut tx, kek, new).await?;
        bump_version(&mut tx).await?;
        append(&mut tx, &audit(&old)).await?;
        tx.commit().await?;
        Ok(old)
    }

    /// Gives the rows written before rows had MACs (migration 22) their MACs, once: only while
    /// no row has one yet (trust on upgrade). A row without a MAC next to rows with theirs was
    /// added or cleared outside airlock and is refused. Every current key's sealed half must open
    /// under `kek` first (so a wrong KEK authenticates nothing). Runs under the writer lock with
    /// `audit(count)` in the same transaction; returns how many rows it authenticated.
    pub async fn authenticate_server_keys(
        &self,
        kek: &KeyEncryptionKey,
        audit: impl FnOnce(usize) -> Vec<AuditRecord>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(SELECT_ALL).fetch_all(&mut *tx).await?;
        let rows = rows
            .iter()
            .map(StoredRow::read)
            .collect::<Result<Vec<_>, _>>()?;
        if rows.iter().all(|row| row.mac.is_some()) {
            return Ok(0);
        }
        if rows.iter().any(|row| row.mac.is_some()) {
            for row in &rows {
                row.authenticate(kek)?;
            }
        }
        for row in &rows {
            if let (Some(sealed), None) = (&row.sealed_private, row.retired_at) {
                sealing::open(kek, row.purpose, &row.key_id, sealed)
                    .map_err(|_| sealed_key_error(row.purpose, &row.key_id))?;
            }
            sqlx::query("UPDATE server_keys SET mac = $1 WHERE purpose = $2 AND key_id = $3")
                .bind(row.mac(kek)?)
                .bind(row.purpose.as_str())
                .bind(&row.key_id)
                .execute(&mut *tx)
                .await?;
        }
        append(&mut tx, &audit(rows.len())).await?;
        tx.commit().await?;
        Ok(rows.len())
    }
}
