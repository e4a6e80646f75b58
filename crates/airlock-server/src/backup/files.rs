//! File operations a backup and a restore share: private files and directories, copies that hash
//! what they copy, and listing a backup's files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use airlock_core::{Digest, DigestAlgorithm, Digester};

use super::BackupError;

/// Bytes read per call while copying or hashing.
const BUFFER: usize = 1024 * 1024;
/// How deep a backup's directory tree may go (`blobs/<alg>/<xx>/<hex>` is 4 deep).
const MAX_DEPTH: usize = 8;
/// How many files a listing stops at with an error (bounded work on a directory handed to us).
const MAX_FILES: usize = 10_000_000;

/// An I/O error on `path`.
pub(crate) fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `path` for reading if it is a regular file itself, never through a symbolic link:
/// `Ok(None)` if nothing is there, [`BackupError::NotRegularFile`] for a link, a directory or a
/// special file. The opened file is checked to be the one examined, so a link swapped in between
/// is refused too.
pub(crate) fn open_regular(path: &Path) -> Result<Option<std::fs::File>, BackupError> {
    let examined = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(file_error(path)(err)),
    };
    let not_regular = || BackupError::NotRegularFile {
        path: path.to_path_buf(),
    };
    if !examined.is_file() {
        return Err(not_regular());
    }
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(file_error(path)(err)),
    };
    let opened = file.metadata().map_err(file_error(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (opened.dev(), opened.ino()) != (examined.dev(), examined.ino()) {
            return Err(not_regular());
        }
    }
    if !opened.is_file() {
        return Err(not_regular());
    }
    Ok(Some(file))
}

/// [`open_regular`], a missing file being an error too.
pub(crate) fn open_existing_regular(path: &Path) -> Result<std::fs::File, BackupError> {
    open_regular(path)?
        .ok_or_else(|| file_error(path)(std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, BackupError>
where
    F: FnOnce() -> Result<T, BackupError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}

/// Creates `path` and any missing parents with mode 0700.
pub(crate) fn create_private_dir_all(path: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(file_error(path))
}

/// Creates the directory `path`, which must not exist (another backup or restore may be writing
/// it), with mode 0700; its parent is created if missing.
pub(crate) fn create_new_private_dir(path: &Path) -> Result<(), BackupError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(file_error(parent))?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(BackupError::Interrupted {
                path: path.to_path_buf(),
            })
        }
        Err(err) => Err(file_error(path)(err)),
    }
}

/// Creates `path`, which must not exist, with mode 0600.
pub(crate) fn create_private_file(path: &Path) -> Result<std::fs::File, BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(file_error(path))
}

/// Sets `path`'s mode to 0600 (a file SQLite created).
pub(crate) fn make_private(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(file_error(path))?;
    }
    Ok(())
}

/// Writes `bytes` to the new file `path` (mode 0600), flushed to disk.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    if let Some(parent) = path.parent() {
        create_private_dir_all(parent)?;
    }
    let mut file = create_private_file(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(file_error(path))
}

/// Copies `source` (a regular file, not a link) to the new file `target` (mode 0600, parents
/// 0700), flushed to disk; returns its size and its digest under `algorithm`.
pub(crate) fn copy_hashing(
    source: &Path,
    target: &Path,
    algorithm: DigestAlgorithm,
) -> Result<(u64, Digest), BackupError> {
    let input = open_existing_regular(source)?;
    copy_opened(input, source, target, algorithm)
}

/// [`copy_hashing`] from `input`, already opened from `source`.
pub(crate) fn copy_opened(
    mut input: std::fs::File,
    source: &Path,
    target: &Path,
    algorithm: DigestAlgorithm,
) -> Result<(u64, Digest), BackupError> {
    if let Some(parent) = target.parent() {
        create_private_dir_all(parent)?;
    }
    let mut output = create_private_file(target)?;
    let mut digester = Digester::new(algorithm);
    let mut buffer = vec![0u8; BUFFER];
    let mut size = 0u64;
    loop {
        let read = input.read(&mut buffer).map_err(file_error(source))?;
        if read == 0 {
            break;
        }
        digester.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(file_error(target))?;
        size += read as u64;
    }
    output.sync_all().map_err(file_error(target))?;
    Ok((size, digester.finish()))
}

/// The size of `path` (a regular file, not a link) and its digest under `algorithm`.
pub(crate) fn hash_file(
    path: &Path,
    algorithm: DigestAlgorithm,
) -> Result<(u64, Digest), BackupError> {
    let mut input = open_existing_regular(path)?;
    let mut digester = Digester::new(algorithm);
    let mut buffer = vec![0u8; BUFFER];
    let mut size = 0u64;
    loop {
        let read = input.read(&mut buffer).map_err(file_error(path))?;
        if read == 0 {
            return Ok((size, digester.finish()));
        }
        digester.update(&buffer[..read]);
        size += read as u64;
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
pub(crate) fn sync_dir(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(file_error(path))
}

/// Flushes every directory under `root` (and `root`), so the files in them survive a crash.
pub(crate) fn sync_tree(root: &Path) -> Result<(), BackupError> {
    for dir in directories(root)? {
        sync_dir(&dir)?;
    }
    sync_dir(root)
}

fn directories(root: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(file_error(&dir))? {
            let entry = entry.map_err(file_error(&dir))?;
            let kind = entry.file_type().map_err(file_error(&entry.path()))?;
            if kind.is_dir() && depth < MAX_DEPTH {
                found.push(entry.path());
                pending.push((entry.path(), depth + 1));
            }
        }
    }
    Ok(found)
}

/// Whether `path` does not exist (`None`), is an empty directory (`Some(true)`), or is anything
/// else (`Some(false)`).
pub(crate) fn empty_dir(path: &Path) -> Result<Option<bool>, BackupError> {
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(file_error(path)(err)),
        Ok(meta) if !meta.is_dir() => Ok(Some(false)),
        Ok(_) => {
            let mut entries = std::fs::read_dir(path).map_err(file_error(path))?;
            Ok(Some(entries.next().is_none()))
        }
    }
}

/// Every entry under `root` that is not a directory (files, and links or other oddities, which a
/// backup never holds), as `/`-separated paths relative to `root`, sorted. A tree deeper than a
/// backup's is reported as its deepest directory.
pub(crate) fn list_files(root: &Path) -> Result<Vec<String>, BackupError> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(file_error(&dir))? {
            let entry = entry.map_err(file_error(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = format!("{prefix}{name}");
            let kind = entry.file_type().map_err(file_error(&entry.path()))?;
            if kind.is_dir() && depth < MAX_DEPTH {
                pending.push((entry.path(), format!("{relative}/"), depth + 1));
            } else {
                found.push(relative);
            }
            if found.len() > MAX_FILES {
                return Err(BackupError::File {
                    path: root.to_path_buf(),
                    source: std::io::Error::other(format!(
                        "more than {MAX_FILES} files: not a backup"
                    )),
                });
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `relative` (`/`-separated) under `root`.
pub(crate) fn under(root: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .fold(root.to_path_buf(), |path, part| path.join(part))
}
