//! The local directory's fast paths: chunks written to plain files through one bounded buffer,
//! joined by the kernel, and blob files read in large pieces on the blocking pool, one piece
//! ahead of the socket.

use std::path::{Path as FsPath, PathBuf};

use airlock_core::Digester;
use bytes::Bytes;
use futures::stream::StreamExt;
use object_store::path::Path;
use uuid::Uuid;

use super::{ByteStream, ChunkWriteError, LOCAL_WRITE_BUFFER};
use crate::error::StoreError;

/// Bytes read from a local blob file per blocking read: one piece of the response body.
pub(super) const READ_SIZE: u64 = 4 * 1024 * 1024;

/// Streams `range` of a local file in [`READ_SIZE`] pieces, each read on the blocking pool
/// straight into the buffer that becomes the body's `Bytes` (no zeroing, no copy), with the
/// next piece read while the current one is sent: at most two pieces per download are in memory.
pub(super) fn file_stream(file: std::fs::File, range: std::ops::Range<u64>) -> ByteStream {
    let reader = PieceReader {
        ahead: None,
        idle: Some(file),
        seeked: false,
        next: range.start,
        end: range.end,
    };
    futures::stream::try_unfold(reader, |mut reader| async move {
        let Some(piece) = reader.next_piece().await? else {
            return Ok(None);
        };
        // Read ahead: the next piece is on its way while this one is written to the socket.
        reader.start_read();
        Ok(Some((piece, reader)))
    })
    .boxed()
}

/// A piece being read on the blocking pool: the file comes back with the bytes.
type PieceRead = tokio::task::JoinHandle<std::io::Result<(std::fs::File, Bytes)>>;

/// The state of one local download: the file (idle, or inside the read in flight) and where the
/// next read starts.
struct PieceReader {
    /// The read in flight, if any.
    ahead: Option<PieceRead>,
    /// The file, when no read is in flight.
    idle: Option<std::fs::File>,
    /// Whether the file's cursor is at `next` (set after the first read).
    seeked: bool,
    /// Where the next read (not yet started) begins.
    next: u64,
    /// One past the last byte to send.
    end: u64,
}

impl PieceReader {
    /// Starts reading the next piece on the blocking pool, unless one is in flight or the range
    /// is done.
    fn start_read(&mut self) {
        if self.ahead.is_some() || self.next >= self.end {
            return;
        }
        let Some(file) = self.idle.take() else {
            return;
        };
        let position = self.next;
        let want = (self.end - position).min(READ_SIZE);
        let seek = !self.seeked;
        self.seeked = true;
        self.next = position + want;
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            read_piece(file, seek.then_some(position), want)
        }));
    }

    /// The next piece, or `None` once the range is sent.
    async fn next_piece(&mut self) -> std::io::Result<Option<Bytes>> {
        self.start_read();
        let Some(read) = self.ahead.take() else {
            return Ok(None);
        };
        let (file, piece) = read.await.map_err(std::io::Error::other)??;
        self.idle = Some(file);
        Ok(Some(piece))
    }
}

/// Reads `want` bytes (from `seek`, if given, else from the file's cursor) into a buffer of
/// exactly that size that becomes the piece. `Read::read_to_end` fills the buffer's spare
/// capacity without zeroing it first. A file that ends early is an error.
fn read_piece(
    mut file: std::fs::File,
    seek: Option<u64>,
    want: u64,
) -> std::io::Result<(std::fs::File, Bytes)> {
    use std::io::{Read, Seek, SeekFrom};
    if let Some(position) = seek {
        file.seek(SeekFrom::Start(position))?;
    }
    let capacity = usize::try_from(want).map_err(std::io::Error::other)?;
    let mut buffer = Vec::with_capacity(capacity);
    (&mut file).take(want).read_to_end(&mut buffer)?;
    if buffer.len() != capacity {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "blob file is shorter than its recorded size",
        ));
    }
    Ok((file, Bytes::from(buffer)))
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
