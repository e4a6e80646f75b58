//! `airlock backup --verify --pg-dump`: checks a PostgreSQL installation's backup (a `pg_dump
//! --format=custom` file, the blob store, the key-encryption key) without a server.
//!
//! The dump is restored with `pg_restore` into a scratch database the operator names, which must
//! hold no table at all (the restore is refused otherwise, so nothing already there is mixed with
//! the backup or changed). The restore runs in one transaction: a dump `pg_restore` cannot read
//! leaves the scratch database empty. Then, on the restored copy and in this order, stopping at
//! the first problem:
//! 1. the schema's migrations are ones this binary carries (the check `airlock serve` makes);
//! 2. the audit log verifies with the log key stored in the copy (`audit::verify_stored_log`,
//!    the code path of `airlock audit verify --data-dir` on PostgreSQL), and extends a trusted
//!    checkpoint if one is given; a trusted checkpoint also pins the key, since a copy with
//!    another log key cannot verify it;
//! 3. with a blob store, every blob the copy references is there with the recorded size and
//!    bytes hashing to its digest (streamed, memory bounded);
//! 4. with the key-encryption key, the sealed server keys open with it and the log key's public
//!    half is the stored one.
//!
//! Nothing is written to the blob store, and nothing but the restore to the database: the
//! restored copy stays in the scratch database afterwards (the output says so) for the operator
//! to inspect or drop.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use airlock_audit::{LogKey, LogReport, verify_checkpoint};
use airlock_store::{BlobStore, KeyPurpose, Metadata, S3Location, S3Options, StoreError};

use super::BackupError;
use super::files::{blocking, open_existing_regular};
use crate::server_keys::kek;

/// How many bytes of `pg_restore`'s error output a failure quotes (its last ones).
const PG_RESTORE_MESSAGE: usize = 2_000;
/// How many of a non-empty scratch database's tables the refusal names.
const TABLES_NAMED: u32 = 5;

/// Where the backup's blobs are.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// An S3 bucket (the installation's, or a copy of it), read with the `[s3]` settings.
    S3 {
        /// The bucket and prefix.
        location: S3Location,
        /// The `[s3]` settings.
        options: S3Options,
    },
    /// A directory laid out as a local blob store (`<dir>/blobs/sha256/<xx>/<hex>`), such as a
    /// bucket copied to disk.
    Directory(PathBuf),
}

impl std::fmt::Display for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3 { location, .. } => write!(f, "{location}"),
            Self::Directory(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// A PostgreSQL installation's backup to check.
#[derive(Debug, Clone)]
pub struct PostgresBackup {
    /// The `pg_dump --format=custom` file.
    pub dump: PathBuf,
    /// The empty database to restore it into (`postgres://...`).
    pub scratch_database: String,
    /// The blob store to check the referenced blobs in, if any.
    pub blobs: Option<BlobSource>,
    /// The key-encryption key file, to check the sealed server keys.
    pub key_encryption_key_file: Option<PathBuf>,
    /// A checkpoint saved earlier (its text) that the backup's log must extend.
    pub trusted_checkpoint: Option<String>,
}

/// The blobs checked.
#[derive(Debug, Clone)]
pub struct BlobsChecked {
    /// Where they were read.
    pub location: String,
    /// How many.
    pub count: u64,
    /// Their bytes, all hashed.
    pub bytes: u64,
}

/// A PostgreSQL backup that passed every check it was given the means for.
#[derive(Debug, Clone)]
pub struct VerifiedPostgresBackup {
    /// The dump file.
    pub dump: PathBuf,
    /// The scratch database, without credentials; it holds the restored copy.
    pub scratch_database: String,
    /// The newest migration the copy's schema carries.
    pub schema_version: i64,
    /// Tables restored (the migrations table not counted).
    pub tables: usize,
    /// The audit log as verified (entries up to the newest signed checkpoint).
    pub audit: LogReport,
    /// Entries appended in all, signed or not yet.
    pub audit_appended: u64,
    /// The log's verifier key, as stored in the copy.
    pub log_key: String,
    /// The trusted checkpoint's size, if one was given and the log extends it.
    pub trusted_size: Option<u64>,
    /// The blobs checked, if a blob store was given.
    pub blobs: Option<BlobsChecked>,
    /// Server keys whose sealed private halves opened, if the key-encryption key was given.
    pub keys_opened: Option<usize>,
}

fn invalid(dump: &Path, problem: impl Into<String>) -> BackupError {
    BackupError::Invalid {
        backup: dump.to_path_buf(),
        problem: problem.into(),
    }
}

/// Verifies a PostgreSQL installation's backup as the module docs say.
pub async fn verify_postgres(
    backup: &PostgresBackup,
) -> Result<VerifiedPostgresBackup, BackupError> {
    let dump = backup.dump.clone();
    blocking(move || open_existing_regular(&dump).map(drop)).await?;
    blocking(pg_restore_version).await?;
    let url = &backup.scratch_database;
    let tables = airlock_store::postgres_user_tables(url, TABLES_NAMED).await?;
    if !tables.is_empty() {
        return Err(BackupError::ScratchNotEmpty {
            url: airlock_store::redact_url(url),
            tables,
        });
    }
    let (dump, target) = (backup.dump.clone(), url.clone());
    blocking(move || pg_restore(&dump, &target)).await?;
    let (metadata, newest) =
        Metadata::open_postgres_restored(url)
            .await
            .map_err(|err| match err {
                StoreError::SchemaTooNew { .. } | StoreError::MigrationChanged { .. } => {
                    invalid(&backup.dump, err.to_string())
                }
                other => BackupError::Store(other),
            })?;
    let result = check_restored(backup, &metadata, newest).await;
    metadata.close().await;
    result
}

/// The checks on the restored copy, in the module docs' order.
async fn check_restored(
    backup: &PostgresBackup,
    metadata: &Metadata,
    newest: Option<i64>,
) -> Result<VerifiedPostgresBackup, BackupError> {
    let dump = &backup.dump;
    let Some(schema_version) = newest else {
        return Err(invalid(
            dump,
            "the restored database has no _sqlx_migrations table: this is not a dump of an airlock database",
        ));
    };
    let tables = metadata
        .postgres_tables()
        .await?
        .iter()
        .filter(|table| *table != "_sqlx_migrations")
        .count();
    // Read as stored here; with the KEK, `check_keys` authenticates every row (its MAC) and
    // checks this public half against the sealed private one.
    let Some(log_key) = metadata
        .current_server_public_key(KeyPurpose::Log, None)
        .await?
    else {
        return Err(invalid(
            dump,
            "the restored database holds no audit log key (server_keys): it was dumped before the server's first start, or the row was deleted",
        ));
    };
    let trusted = backup.trusted_checkpoint.as_deref();
    let verified = crate::audit::verify_stored_log(metadata, &log_key, trusted)
        .await
        .map_err(|err| {
            invalid(
                dump,
                format!("the audit log in the dump does not verify with its stored log key: {err}"),
            )
        })?;
    let trusted_size =
        trusted.and_then(|text| verify_checkpoint(text, &log_key).ok().map(|c| c.size));
    let blobs = match &backup.blobs {
        Some(source) => Some(check_blobs(dump, metadata, source).await?),
        None => None,
    };
    let keys_opened = match &backup.key_encryption_key_file {
        Some(path) => Some(check_keys(dump, metadata, path, &log_key).await?),
        None => None,
    };
    Ok(VerifiedPostgresBackup {
        dump: dump.clone(),
        scratch_database: airlock_store::redact_url(&backup.scratch_database),
        schema_version,
        tables,
        audit: verified.report,
        audit_appended: verified.appended,
        log_key,
        trusted_size,
        blobs,
        keys_opened,
    })
}

/// Every referenced blob is in `source` with its recorded size and digest.
async fn check_blobs(
    dump: &Path,
    metadata: &Metadata,
    source: &BlobSource,
) -> Result<BlobsChecked, BackupError> {
    let store = match source {
        BlobSource::S3 { location, options } => {
            BlobStore::s3_for_reading(location, options, std::env::vars())?
        }
        BlobSource::Directory(dir) => {
            if !dir.is_dir() {
                return Err(BackupError::File {
                    path: dir.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not a directory: pass the directory holding the blob store's blobs/",
                    ),
                });
            }
            BlobStore::local(dir)?
        }
    };
    let (mut count, mut bytes) = (0, 0);
    for blob in metadata.referenced_blobs().await? {
        let digest = &blob.digest;
        let Some((size, found)) = store.hash_blob(digest).await? else {
            return Err(invalid(
                dump,
                format!("blob {digest} is referenced by the database but missing from {source}"),
            ));
        };
        if let Some(recorded) = blob.size
            && recorded != size
        {
            return Err(invalid(
                dump,
                format!(
                    "blob {digest} in {source} has {size} bytes, the database records {recorded}"
                ),
            ));
        }
        if found != *digest {
            return Err(invalid(
                dump,
                format!("blob {digest} in {source} is damaged: its {size} bytes hash to {found}"),
            ));
        }
        count += 1;
        bytes += size;
    }
    Ok(BlobsChecked {
        location: source.to_string(),
        count,
        bytes,
    })
}

/// The sealed server keys open with the key-encryption key at `path`, and the log key's public
/// half is `log_key`. Returns how many current keys opened.
async fn check_keys(
    dump: &Path,
    metadata: &Metadata,
    path: &Path,
    log_key: &str,
) -> Result<usize, BackupError> {
    let kek = kek::read(path)?;
    let set = metadata.server_keys(&kek).await.map_err(|err| match err {
        StoreError::SealedKey { .. }
        | StoreError::ServerKeyUnauthenticated { .. }
        | StoreError::Corrupt(_) => invalid(
            dump,
            format!(
                "the server keys in the dump do not open with {}: {err}",
                path.display()
            ),
        ),
        other => BackupError::Store(other),
    })?;
    let private = set
        .current(KeyPurpose::Log)
        .and_then(|key| key.private_key.as_deref())
        .ok_or_else(|| invalid(dump, "the dump holds no current log key"))?;
    let key = LogKey::from_private_text(private)
        .map_err(|err| invalid(dump, format!("the stored log key cannot be read: {err}")))?;
    if key.verifier_key() != log_key {
        return Err(invalid(
            dump,
            format!(
                "the sealed log key's public half {} is not the stored one {log_key}: the server_keys row was altered",
                key.verifier_key()
            ),
        ));
    }
    Ok(KeyPurpose::ALL
        .into_iter()
        .filter(|purpose| set.current(*purpose).is_some())
        .count())
}

/// `pg_restore --version` runs: it is installed.
fn pg_restore_version() -> Result<(), BackupError> {
    match Command::new("pg_restore")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(BackupError::PgRestoreMissing)
        }
        Err(err) => Err(BackupError::File {
            path: PathBuf::from("pg_restore"),
            source: err,
        }),
    }
}

/// Restores `dump` into `url` in one transaction, without owners or privileges (the scratch
/// database's user owns the copy). The password travels in `PGPASSWORD`, never on the command
/// line other users can read.
fn pg_restore(dump: &Path, url: &str) -> Result<(), BackupError> {
    let (url, password) = split_password(url);
    let mut command = Command::new("pg_restore");
    command
        .args([
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            "--no-privileges",
        ])
        .arg(format!("--dbname={url}"))
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let mut child = command.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => BackupError::PgRestoreMissing,
        _ => BackupError::File {
            path: PathBuf::from("pg_restore"),
            source: err,
        },
    })?;
    // Error output is read whole (so the process never blocks on a full pipe) but only its end
    // is kept.
    let mut message = Vec::new();
    if let Some(mut stderr) = child.stderr.take() {
        let mut buffer = [0u8; 8192];
        loop {
            let read = stderr
                .read(&mut buffer)
                .map_err(|source| BackupError::File {
                    path: PathBuf::from("pg_restore"),
                    source,
                })?;
            if read == 0 {
                break;
            }
            message.extend_from_slice(&buffer[..read]);
            if message.len() > 2 * PG_RESTORE_MESSAGE {
                message.drain(..message.len() - PG_RESTORE_MESSAGE);
            }
        }
    }
    let status = child.wait().map_err(|source| BackupError::File {
        path: PathBuf::from("pg_restore"),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let start = message.len().saturating_sub(PG_RESTORE_MESSAGE);
    let text = String::from_utf8_lossy(&message[start..]);
    Err(invalid(
        dump,
        format!(
            "pg_restore could not restore it into the scratch database ({status}; nothing of it was kept): {}",
            text.trim()
        ),
    ))
}

/// `url` without the password of its userinfo, and that password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some(at) = authority.rfind('@') else {
        return (url.to_string(), None);
    };
    let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
    match userinfo.split_once(':') {
        Some((user, password)) => (
            format!("{scheme}://{user}@{host}{tail}"),
            Some(percent_decode(password)),
        ),
        None => (url.to_string(), None),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_decoded() {
        assert_eq!(
            split_password("postgres://u:p%40ss@db:5432/x?sslmode=require"),
            (
                "postgres://u@db:5432/x?sslmode=require".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://u@db/x"),
            ("postgres://u@db/x".to_string(), None)
        );
        assert_eq!(
            split_password("postgresql://db/x"),
            ("postgresql://db/x".to_string(), None)
        );
    }
}
