//! `airlock backup DEST`: a consistent backup of a data directory whose server may be running.
//!
//! Order matters: the database snapshot first, then the blobs it references, then the key files
//! (never older than the snapshot), then the manifest, then the rename that makes it a backup.
//!
//! Garbage collection may run meanwhile. A blob whose file is gone when it is copied is left out
//! of the backup (its row dropped from the backup's private snapshot before the snapshot is
//! hashed, and counted in [`BackupSummary::dropped_blobs`]) only if gc deleted it: the live
//! database no longer holds it (no row, or a gc tombstone), and nothing in the snapshot needs its
//! bytes (no manifest a repository holds references it, no evidence names it). The backup is then
//! the state the live database reached when gc deleted it. Any other missing blob fails the
//! backup.

use std::path::{Path, PathBuf};

use airlock_core::{Digest, DigestAlgorithm};
use airlock_store::{
    Metadata, ReferencedBlob, blobs_gone_live, drop_unreferenced_blobs, local_blob_file,
    now_millis, snapshot_sqlite,
};

use super::files::{
    blocking, copy_opened, create_new_private_dir, create_private_file, empty_dir, file_error,
    hash_file, make_private, open_regular, sync_dir, sync_tree, under, write_private,
};
use super::manifest::{self, BackupManifest, ManifestAudit, ManifestBlob, ManifestFile};
use super::{
    BackupError, DATA_FILES, DATABASE_FILE, MANIFEST_FILE, MANIFEST_SUM_FILE, REQUIRED_DATA_FILES,
    with_suffix,
};

/// Each data file's name and content (`None`: absent).
type DataFileReads = Vec<(&'static str, Option<Vec<u8>>)>;

/// How often the key files are read in search of two identical reads in a row.
const KEY_READ_ATTEMPTS: usize = 6;

/// What a backup holds.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// The backup directory.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: BackupManifest,
    /// Blobs the snapshot held that garbage collection deleted before they were copied, and
    /// nothing in the snapshot referenced: left out, their rows dropped from the snapshot.
    pub dropped_blobs: Vec<Digest>,
}

impl BackupSummary {
    /// The blobs' total size in bytes.
    pub fn blob_bytes(&self) -> u64 {
        self.manifest.blobs.iter().map(|blob| blob.size).sum()
    }
}

/// Backs up the data directory `data_dir` into `dest`, which must not exist or be an empty
/// directory (see the module docs of `backup` for what is copied and what is guaranteed).
pub async fn create(data_dir: &Path, dest: &Path) -> Result<BackupSummary, BackupError> {
    create_observed(data_dir, dest, std::future::ready(())).await
}

/// [`create`], awaiting `after_snapshot` once the database snapshot is taken and before any blob
/// is copied. Tests change the live data directory there (as a gc run would) to check what a
/// backup does with changes that land between its snapshot and its copies.
#[doc(hidden)]
pub async fn create_observed(
    data_dir: &Path,
    dest: &Path,
    after_snapshot: impl Future<Output = ()>,
) -> Result<BackupSummary, BackupError> {
    let database = data_dir.join(DATABASE_FILE);
    if !database.is_file() {
        return Err(BackupError::NotADataDirectory {
            dir: data_dir.to_path_buf(),
        });
    }
    for required in REQUIRED_DATA_FILES {
        let path = under(data_dir, required);
        if !path.is_file() {
            return Err(BackupError::MissingDataFile { path });
        }
    }
    let partial = with_suffix(dest, ".partial");
    if empty_dir(&partial)?.is_some() {
        return Err(BackupError::Interrupted { path: partial });
    }
    if empty_dir(dest)? == Some(false) {
        return Err(BackupError::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    create_new_private_dir(&partial)?;
    let written = fill(data_dir, &partial, dest, after_snapshot).await;
    if written.is_err() {
        // Best effort: the error is what the operator needs to see; a leftover `.partial` is
        // refused by the next run with the command that removes it.
        let _ = std::fs::remove_dir_all(&partial);
    }
    written
}

/// Writes the backup into `partial` and renames it to `dest`.
async fn fill(
    data_dir: &Path,
    partial: &Path,
    dest: &Path,
    after_snapshot: impl Future<Output = ()>,
) -> Result<BackupSummary, BackupError> {
    // 1. The database, as it is at this instant.
    let snapshot = partial.join(DATABASE_FILE);
    drop(create_private_file(&snapshot)?);
    let created_at = now_millis();
    snapshot_sqlite(&data_dir.join(DATABASE_FILE), &snapshot).await?;
    make_private(&snapshot)?;
    let metadata = Metadata::open_sqlite_read_only(&snapshot).await?;
    let referenced = metadata.referenced_blobs().await;
    let entries = metadata.audit_entry_count().await;
    let signed = metadata.latest_checkpoint().await;
    metadata.close().await;
    let (referenced, entries) = (referenced?, entries?);
    let signed = signed?.map_or(0, |checkpoint| checkpoint.size);
    after_snapshot.await;

    // 2. The blobs it references (off the runtime); those gc deleted meanwhile are left out.
    let store_root = data_dir.join("blobs");
    let (blobs, missing) = {
        let (store_root, partial) = (store_root.clone(), partial.to_path_buf());
        blocking(move || copy_blobs(&store_root, &partial, &referenced)).await?
    };
    let dropped_blobs = drop_collected(&data_dir.join(DATABASE_FILE), &snapshot, &missing).await?;
    if let Some(blob) = missing
        .iter()
        .find(|blob| !dropped_blobs.contains(&blob.digest))
    {
        return Err(BackupError::BlobMissing {
            digest: blob.digest.to_string(),
            path: local_blob_file(&store_root, &blob.digest),
        });
    }

    // 3. The key files, 4. the manifest, all off the runtime.
    let data_dir = data_dir.to_path_buf();
    let partial = partial.to_path_buf();
    let dest = dest.to_path_buf();
    blocking(move || {
        let mut files = copy_data_files(&data_dir, &partial)?;
        let (size, digest) = hash_file(&snapshot, DigestAlgorithm::Sha256)?;
        files.push(ManifestFile {
            path: DATABASE_FILE.into(),
            size,
            sha256: digest.hex().to_string(),
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = BackupManifest {
            format: manifest::FORMAT.into(),
            version: manifest::VERSION,
            airlock_version: env!("CARGO_PKG_VERSION").into(),
            created_at,
            audit: ManifestAudit { entries, signed },
            files,
            blobs,
        };
        write_manifest(&partial, &manifest)?;
        sync_tree(&partial)?;
        std::fs::rename(&partial, &dest).map_err(file_error(&dest))?;
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(BackupSummary {
            path: dest,
            manifest,
            dropped_blobs,
        })
    })
    .await
}

/// Of the `missing` blobs, drops from the `snapshot` those gc deleted after it was taken (the
/// live database at `live` no longer holds them) and the snapshot does not need; returns them.
async fn drop_collected(
    live: &Path,
    snapshot: &Path,
    missing: &[ReferencedBlob],
) -> Result<Vec<Digest>, BackupError> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let digests: Vec<Digest> = missing.iter().map(|blob| blob.digest.clone()).collect();
    let collected = blobs_gone_live(live, &digests).await?;
    Ok(drop_unreferenced_blobs(snapshot, &collected).await?)
}

/// Copies every referenced blob from the local blob store at `store_root` into `backup`,
/// checking each file's digest (and size, where the database records one) on the way. Returns
/// the manifest's entries and the blobs whose files are missing (not copied, not listed).
fn copy_blobs(
    store_root: &Path,
    backup: &Path,
    referenced: &[ReferencedBlob],
) -> Result<(Vec<ManifestBlob>, Vec<ReferencedBlob>), BackupError> {
    let mut blobs = Vec::with_capacity(referenced.len());
    let mut missing = Vec::new();
    for blob in referenced {
        let source = local_blob_file(store_root, &blob.digest);
        // Opened once: a file gc unlinks after this is still read whole.
        let Some(input) = open_regular(&source)? else {
            missing.push(blob.clone());
            continue;
        };
        let target = local_blob_file(backup, &blob.digest);
        let (size, found) = copy_opened(input, &source, &target, blob.digest.algorithm())?;
        if found != blob.digest || blob.size.is_some_and(|recorded| recorded != size) {
            return Err(BackupError::BlobCorrupt {
                digest: blob.digest.to_string(),
                path: source,
                found: format!("{found} ({size} bytes)"),
            });
        }
        blobs.push(ManifestBlob {
            digest: blob.digest.to_string(),
            size,
        });
    }
    Ok((blobs, missing))
}

/// The data files present, as they all were at one instant: read until two reads in a row agree.
///
/// A key rotation replaces files one after another (`files.rs` in `server_keys`), and a rotated
/// key is new, so a file never returns to an earlier content. If every file read the same twice,
/// no file changed between its two reads; those intervals all contain the moment the first read
/// ended, so the contents are the files' state at that moment: a state airlock opens (finishing or
/// undoing a rotation it interrupted).
fn settled_data_files(data_dir: &Path) -> Result<Vec<(&'static str, Vec<u8>)>, BackupError> {
    let read_all = || -> Result<DataFileReads, BackupError> {
        DATA_FILES
            .iter()
            .map(|name| {
                let path = under(data_dir, name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok((*name, Some(bytes))),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok((*name, None)),
                    Err(err) => Err(file_error(&path)(err)),
                }
            })
            .collect()
    };
    let mut previous = read_all()?;
    for _ in 1..KEY_READ_ATTEMPTS {
        let next = read_all()?;
        if next == previous {
            return Ok(next
                .into_iter()
                .filter_map(|(name, bytes)| bytes.map(|bytes| (name, bytes)))
                .collect());
        }
        previous = next;
    }
    Err(BackupError::KeysUnsettled {
        dir: data_dir.to_path_buf(),
    })
}

/// Writes the data files into `backup` (mode 0600) and returns their manifest entries.
fn copy_data_files(data_dir: &Path, backup: &Path) -> Result<Vec<ManifestFile>, BackupError> {
    let files = settled_data_files(data_dir)?;
    for required in REQUIRED_DATA_FILES {
        if !files.iter().any(|(name, _)| *name == required) {
            return Err(BackupError::MissingDataFile {
                path: under(data_dir, required),
            });
        }
    }
    files
        .into_iter()
        .map(|(name, bytes)| {
            write_private(&under(backup, name), &bytes)?;
            Ok(ManifestFile {
                path: name.into(),
                size: bytes.len() as u64,
                sha256: airlock_core::Digest::sha256_of(&bytes).hex().to_string(),
            })
        })
        .collect()
}

/// Writes `manifest.json` and then its checksum file.
fn write_manifest(backup: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let path = backup.join(MANIFEST_FILE);
    let mut bytes = serde_json::to_vec_pretty(manifest).map_err(|err| BackupError::File {
        path: path.clone(),
        source: std::io::Error::other(err),
    })?;
    bytes.push(b'\n');
    write_private(&path, &bytes)?;
    let sum = airlock_core::Digest::sha256_of(&bytes);
    write_private(
        &backup.join(MANIFEST_SUM_FILE),
        format!("{}  {MANIFEST_FILE}\n", sum.hex()).as_bytes(),
    )
}
