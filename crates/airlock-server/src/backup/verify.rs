//! `airlock backup --verify SRC`: checks a backup without a server, stopping at the first problem
//! and naming the file it lies in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use airlock_audit::{LogKey, LogReport, verify_checkpoint};
use airlock_core::{Digest, DigestAlgorithm};
use airlock_store::{Metadata, local_blob_file};

use super::files::{blocking, file_error, hash_file, list_files, under};
use super::manifest::{self, BackupManifest};
use super::{
    BackupError, DATA_FILES, DATABASE_FILE, MANIFEST_FILE, MANIFEST_SUM_FILE, with_suffix,
};

/// A backup that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedBackup {
    /// The backup directory.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: BackupManifest,
    /// The audit log in it, as verified (entries up to the newest signed checkpoint).
    pub audit: LogReport,
    /// The log's verifier key (from the backup's `log-key`).
    pub verifier_key: String,
    /// The trusted checkpoint's size, if one was given and the log extends it.
    pub trusted_size: Option<u64>,
}

fn invalid(backup: &Path, problem: impl Into<String>) -> BackupError {
    BackupError::Invalid {
        backup: backup.to_path_buf(),
        problem: problem.into(),
    }
}

/// Verifies the backup at `backup` (see the `backup` module docs for every check). With
/// `trusted_checkpoint` (a signed checkpoint's text saved earlier), the audit log in the backup
/// must also extend it.
pub async fn verify(
    backup: &Path,
    trusted_checkpoint: Option<&str>,
) -> Result<VerifiedBackup, BackupError> {
    if backup
        .file_name()
        .is_some_and(|name| name.to_string_lossy().ends_with(".partial"))
    {
        return Err(BackupError::Interrupted {
            path: backup.to_path_buf(),
        });
    }
    if !backup.is_dir() {
        let partial = with_suffix(backup, ".partial");
        if partial.exists() {
            return Err(BackupError::Interrupted { path: partial });
        }
        return Err(invalid(backup, "it does not exist or is not a directory"));
    }
    let manifest = read_manifest(backup)?;
    let root = backup.to_path_buf();
    let checked = manifest.clone();
    blocking(move || check_files(&root, &checked)).await?;
    let database = backup.join(DATABASE_FILE);
    let unreadable = |err: airlock_store::StoreError| {
        invalid(backup, format!("{DATABASE_FILE} cannot be read: {err}"))
    };
    let metadata = Metadata::open_sqlite_read_only(&database)
        .await
        .map_err(unreadable)?;
    let result = check_database(backup, &metadata, &manifest, trusted_checkpoint).await;
    metadata.close().await;
    let (audit, verifier_key, trusted_size) = result?;
    Ok(VerifiedBackup {
        path: backup.to_path_buf(),
        manifest,
        audit,
        verifier_key,
        trusted_size,
    })
}

/// Whether the backup's file `relative` (at `path`) is there: `Ok(false)` if nothing is, a failed
/// verification naming it if a link, directory or special file stands where a file belongs.
fn present(backup: &Path, path: &Path, relative: &str) -> Result<bool, BackupError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(_) => Err(invalid(
            backup,
            format!(
                "{relative} is not a regular file (a symbolic link, a directory or a special file): a backup holds only regular files, and verification never follows a link out of it"
            ),
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(file_error(path)(err)),
    }
}

/// Reads `manifest.json`, checks it against `manifest.json.sha256` and parses it.
fn read_manifest(backup: &Path) -> Result<BackupManifest, BackupError> {
    let path = backup.join(MANIFEST_FILE);
    let sum_path = backup.join(MANIFEST_SUM_FILE);
    present(backup, &path, MANIFEST_FILE)?;
    present(backup, &sum_path, MANIFEST_SUM_FILE)?;
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid(
                backup,
                format!(
                    "{MANIFEST_FILE} is missing: the backup was not finished (a backup writes it last) or this is not an airlock backup"
                ),
            ));
        }
        Err(err) => return Err(file_error(&path)(err)),
    };
    let recorded = match std::fs::read_to_string(&sum_path) {
        Ok(text) => text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid(
                backup,
                format!("{MANIFEST_SUM_FILE} is missing: the backup was not finished"),
            ));
        }
        Err(err) => return Err(file_error(&sum_path)(err)),
    };
    let actual = Digest::sha256_of(&bytes);
    if actual.hex() != recorded {
        return Err(invalid(
            backup,
            format!(
                "{MANIFEST_FILE} was changed after the backup was written: its SHA-256 is {}, {MANIFEST_SUM_FILE} records {recorded}",
                actual.hex()
            ),
        ));
    }
    let manifest: BackupManifest = serde_json::from_slice(&bytes)
        .map_err(|err| invalid(backup, format!("{MANIFEST_FILE} cannot be read: {err}")))?;
    if manifest.format != manifest::FORMAT || manifest.version != manifest::VERSION {
        return Err(invalid(
            backup,
            format!(
                "{MANIFEST_FILE} is format {:?} version {}; this airlock reads {:?} version {}",
                manifest.format,
                manifest.version,
                manifest::FORMAT,
                manifest::VERSION
            ),
        ));
    }
    Ok(manifest)
}

/// Every file listed is present with its SHA-256, every blob with its digest and size, and
/// nothing else is in the backup.
fn check_files(backup: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let mut expected = BTreeSet::from([MANIFEST_FILE.to_string(), MANIFEST_SUM_FILE.to_string()]);
    if !manifest.files.iter().any(|file| file.path == DATABASE_FILE) {
        return Err(invalid(
            backup,
            format!("{MANIFEST_FILE} lists no {DATABASE_FILE}"),
        ));
    }
    for file in &manifest.files {
        if file.path != DATABASE_FILE && !DATA_FILES.contains(&file.path.as_str()) {
            return Err(invalid(
                backup,
                format!(
                    "{MANIFEST_FILE} lists {:?}, which is no file an airlock backup holds",
                    file.path
                ),
            ));
        }
        let path = under(backup, &file.path);
        if !present(backup, &path, &file.path)? {
            return Err(invalid(
                backup,
                format!("{} is listed in {MANIFEST_FILE} but missing", file.path),
            ));
        }
        let (size, digest) = hash_file(&path, DigestAlgorithm::Sha256)?;
        if size != file.size || digest.hex() != file.sha256 {
            return Err(invalid(
                backup,
                format!(
                    "{} is damaged: {size} bytes with SHA-256 {}, {MANIFEST_FILE} records {} bytes with {}",
                    file.path,
                    digest.hex(),
                    file.size,
                    file.sha256
                ),
            ));
        }
        expected.insert(file.path.clone());
    }
    for blob in &manifest.blobs {
        let digest = Digest::from_str(&blob.digest).map_err(|err| {
            invalid(
                backup,
                format!("{MANIFEST_FILE} lists the blob {:?}: {err}", blob.digest),
            )
        })?;
        let path = local_blob_file(backup, &digest);
        let relative = relative_path(backup, &path);
        if !present(backup, &path, &relative)? {
            return Err(invalid(
                backup,
                format!("blob {digest} is missing ({relative})"),
            ));
        }
        let (size, found) = hash_file(&path, digest.algorithm())?;
        if found != digest || size != blob.size {
            return Err(invalid(
                backup,
                format!(
                    "blob {digest} is damaged ({relative}: {size} bytes hashing to {found}; {MANIFEST_FILE} records {} bytes)",
                    blob.size
                ),
            ));
        }
        expected.insert(relative);
    }
    if let Some(extra) = list_files(backup)?
        .into_iter()
        .find(|file| !expected.contains(file))
    {
        return Err(invalid(
            backup,
            format!("{extra} is not listed in {MANIFEST_FILE}: the backup was changed"),
        ));
    }
    Ok(())
}

fn relative_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The snapshot's integrity, its blobs against the manifest's, and its audit log.
async fn check_database(
    backup: &Path,
    metadata: &Metadata,
    manifest: &BackupManifest,
    trusted_checkpoint: Option<&str>,
) -> Result<(LogReport, String, Option<u64>), BackupError> {
    let unreadable = |err: airlock_store::StoreError| {
        invalid(backup, format!("{DATABASE_FILE} cannot be read: {err}"))
    };
    let problems = metadata.integrity_check().await.map_err(unreadable)?;
    if problems != ["ok"] {
        return Err(invalid(
            backup,
            format!(
                "{DATABASE_FILE} fails SQLite's integrity check: {}",
                problems.join("; ")
            ),
        ));
    }
    let listed: BTreeMap<&str, u64> = manifest
        .blobs
        .iter()
        .map(|blob| (blob.digest.as_str(), blob.size))
        .collect();
    let referenced = metadata.referenced_blobs().await.map_err(unreadable)?;
    for blob in &referenced {
        let digest = blob.digest.to_string();
        match listed.get(digest.as_str()) {
            None => {
                return Err(invalid(
                    backup,
                    format!(
                        "blob {digest} is referenced by {DATABASE_FILE} but not listed in {MANIFEST_FILE}"
                    ),
                ));
            }
            Some(size) if blob.size.is_some_and(|recorded| recorded != *size) => {
                return Err(invalid(
                    backup,
                    format!(
                        "blob {digest} has {size} bytes in {MANIFEST_FILE} but {DATABASE_FILE} records {:?}",
                        blob.size
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if listed.len() != referenced.len() {
        let known: BTreeSet<String> = referenced.iter().map(|b| b.digest.to_string()).collect();
        let extra = listed
            .keys()
            .find(|digest| !known.contains(**digest))
            .map_or_else(String::new, |digest| digest.to_string());
        return Err(invalid(
            backup,
            format!("{MANIFEST_FILE} lists blob {extra}, which {DATABASE_FILE} does not reference"),
        ));
    }
    check_audit_log(backup, metadata, trusted_checkpoint).await
}

/// Verifies the snapshot's audit log with the backup's own log key (`audit::verify_stored_log`).
async fn check_audit_log(
    backup: &Path,
    metadata: &Metadata,
    trusted_checkpoint: Option<&str>,
) -> Result<(LogReport, String, Option<u64>), BackupError> {
    let key_path = backup.join("log-key");
    let private = std::fs::read_to_string(&key_path).map_err(file_error(&key_path))?;
    let key = LogKey::from_private_text(&private)
        .map_err(|err| invalid(backup, format!("log-key cannot be read: {err}")))?;
    let verifier_key = key.verifier_key().to_string();
    let verified = crate::audit::verify_stored_log(metadata, &verifier_key, trusted_checkpoint)
        .await
        .map_err(|err| {
            invalid(
                backup,
                format!("the audit log in {DATABASE_FILE} does not verify with log-key: {err}"),
            )
        })?;
    let trusted_size = match trusted_checkpoint {
        Some(text) => verify_checkpoint(text, &verifier_key).ok().map(|c| c.size),
        None => None,
    };
    Ok((verified.report, verifier_key, trusted_size))
}
