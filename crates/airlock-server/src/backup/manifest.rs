//! The backup's manifest: what a complete backup holds, written last.

use serde::{Deserialize, Serialize};

/// The manifest's `format` value.
pub const FORMAT: &str = "airlock-backup";
/// The manifest's version this code writes and reads.
pub const VERSION: u32 = 1;

/// `manifest.json`: every file of the backup with its size and SHA-256 (the database and the
/// data directory's files), and every blob with its digest and size. Lists are sorted, so the
/// same content gives the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The airlock version that wrote it.
    pub airlock_version: String,
    /// When the database snapshot was taken (Unix ms).
    pub created_at: i64,
    /// The audit log in the snapshot: entries appended, and the size of the newest signed
    /// checkpoint.
    pub audit: ManifestAudit,
    /// The database and the data directory's files, by path in the backup.
    pub files: Vec<ManifestFile>,
    /// Every blob the database refers to.
    pub blobs: Vec<ManifestBlob>,
}

/// The audit log a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAudit {
    /// Entries in the snapshot.
    pub entries: u64,
    /// The newest signed checkpoint's tree size.
    pub signed: u64,
}

/// A file of the backup other than a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Its path in the backup (and in a data directory), `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes (hex).
    pub sha256: String,
}

/// A blob of the backup, at `blobs/<algorithm>/<first two hex>/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestBlob {
    /// Its digest (`sha256:<hex>`), which its bytes must hash to.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}
