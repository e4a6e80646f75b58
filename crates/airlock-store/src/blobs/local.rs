//! The local directory's fast paths: chunks written to plain files through one bounded buffer,
//! joined by the kernel, and blob files read in large pieces on the blocking pool.

use std::path::{Path as FsPath, PathBuf};

use airlock_core::Digester;
use bytes::Bytes;
use futures::stream::StreamExt;
use object_store::path::Path;
use uuid::Uuid;

use super::{ByteStream, ChunkWriteError, LOCAL_WRITE_BUFFER};
use crate::error::StoreError;

/// Bytes read from a local blob file per blocking read.
const READ_SIZE: u64 = 2 * 1024 * 1024;

/// Streams `range` of a local file in [`READ_SIZE`] pieces, each read on the blocking pool.
pub(super) fn file_stream(file: std::fs::File, range: std::ops::Range<u64>) -> ByteStream {
    use std::io::{Read, Seek, SeekFrom};
    let state = (file, range.start, range.end, false);
    futures::stream::try_unfold(state, |(mut file, position, end, seeked)| async move {
        if position >= end {
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || {
            if !seeked {
                file.seek(SeekFrom::Start(position))?;
            }
            let want = (end - position).min(READ_SIZE) as usize;
            let mut buffer = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buffer[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob file is shorter than its recorded size",
                ));
            }
            buffer.truncate(filled);
            Ok(Some((
                Bytes::from(buffer),
                (file, position + filled as u64, end, true),
            )))
        })
        .await
        .map_err(std::io::Error::other)?
    })
    .boxed()
}

/// Writes a chunk body to `file` (created on the first byte, in `dir`) through one bounded buffer.
pub(super) async fn write_local_chunk<S, E>(
    dir: &FsPath,
    file: &FsPath,
    body: S,
    digester: &mut Digester,
) -> Result<u64, ChunkWriteError>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    use tokio::io::AsyncWriteExt;
    let mut body = std::pin::pin!(body);
    let mut out: Option<tokio::fs::File> = None;
    let mut written = 0u64;
    while let Some(next) = body.next().await {
        let bytes = next.map_err(|err| ChunkWriteError::Body(Box::new(err)))?;
        if bytes.is_empty() {
            continue;
        }
        let target = match &mut out {
            Some(target) => target,
            None => {
                tokio::fs::create_dir_all(dir).await?;
                let mut created = tokio::fs::File::create(file).await?;
                created.set_max_buf_size(LOCAL_WRITE_BUFFER);
                out.insert(created)
            }
        };
        digester.update(&bytes);
        target.write_all(&bytes).await?;
        written += bytes.len() as u64;
    }
    if let Some(mut target) = out {
        // Waits for the last write on the blocking pool and reports its error, if any.
        target.flush().await?;
    }
    Ok(written)
}

pub(super) async fn remove_file_if_present(path: &FsPath) -> Result<(), StoreError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Removes the directory `path` if it is empty (another attempt's chunk may be in it: replicas on
/// PostgreSQL may share the directory).
pub(super) async fn remove_dir_if_empty(path: &FsPath) -> Result<(), StoreError> {
    match tokio::fs::remove_dir(path).await {
        Ok(()) => Ok(()),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Joins a local upload's chunk files `parts` (in order) into the blob at `target`: the kernel
/// copies the bytes (`copy_file_range` where available) into a staging file of this join's own
/// (two replicas sharing the directory never write one file) that is renamed into place, so the
/// blob appears whole or not at all and no chunk passes through user-space memory.
pub(super) async fn join_local_chunks(
    root: PathBuf,
    upload: Uuid,
    parts: Vec<Path>,
    target: Path,
) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        let dir = root.join("uploads").join(upload.to_string());
        let joined = dir.join(format!("joined-{}", Uuid::new_v4().simple()));
        let mut out = std::fs::File::create(&joined)?;
        for part in &parts {
            let mut part = std::fs::File::open(root.join(part.as_ref()))?;
            std::io::copy(&mut part, &mut out)?;
        }
        out.sync_data()?;
        drop(out);
        let destination = root.join(target.as_ref());
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&joined, &destination)?;
        Ok(())
    })
    .await
    .map_err(|err| StoreError::Io(std::io::Error::other(err)))?
}
