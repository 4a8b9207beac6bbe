//! The embedded blob store: objects are files under a root directory, one per key.
//!
//! Writes go to a temp file in the destination directory, are fsynced and then renamed over
//! the key, so a reader sees the old object or the new one, never half of one. Directories
//! are created 0700 and files 0600: the bytes are users' private files.

use crate::key::validate_key;
use async_trait::async_trait;
use bytes::Bytes;
use ironhand_core::ports::blob_store::{BlobError, BlobStore, ByteStream};
use std::io::{self, Read, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Bytes per chunk of a download stream.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Keeps objects under `root`, created on first write if missing.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Runs blocking file work off the async workers.
    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
    ) -> Result<T, BlobError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| BlobError::Unavailable(format!("local store task failed: {e}")))?
    }
}

fn io_err(what: &str, e: io::Error) -> BlobError {
    BlobError::Unavailable(format!("local store: {what}: {e}"))
}

fn create_dirs(dir: &Path) -> Result<(), BlobError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("creating directory", e))
}

/// Writes an object atomically: `fill` writes the content into a 0600 temp file beside the
/// destination, which is fsynced and renamed over it (and the directory fsynced).
fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> Result<(), BlobError> {
    let dir = dest
        .parent()
        .ok_or_else(|| BlobError::Unavailable("local store: key has no parent".into()))?;
    create_dirs(dir)?;
    // The `.` prefix keeps temp names out of the key alphabet.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| io_err("creating temp file", e))?;
    fill(tmp.as_file_mut()).map_err(|e| io_err("writing", e))?;
    tmp.as_file().sync_all().map_err(|e| io_err("syncing", e))?;
    tmp.persist(dest)
        .map_err(|e| io_err("renaming into place", e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Makes the rename durable; a failure here leaves a complete object, so ignore it.
        let _ = d.sync_all();
    }
    Ok(())
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put_file(
        &self,
        key: &str,
        source: &Path,
        size: u64,
        _sha256_hex: &str,
    ) -> Result<(), BlobError> {
        let dest = self.path_of(key)?;
        let source = source.to_path_buf();
        Self::blocking(move || {
            let mut src = std::fs::File::open(&source).map_err(|e| io_err("opening source", e))?;
            write_atomically(&dest, |tmp| {
                // `io::copy` between files uses copy_file_range: no user-space buffer at all.
                let copied = io::copy(&mut (&mut src).take(size.saturating_add(1)), tmp)?;
                if copied != size {
                    return Err(io::Error::other(format!(
                        "source holds {copied} bytes, expected {size}"
                    )));
                }
                Ok(())
            })
        })
        .await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes, _sha256_hex: &str) -> Result<(), BlobError> {
        let dest = self.path_of(key)?;
        Self::blocking(move || write_atomically(&dest, |tmp| tmp.write_all(&bytes))).await
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream, BlobError> {
        let path = self.path_of(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(io_err("opening", e)),
        };
        let meta = file.metadata().await.map_err(|e| io_err("stat", e))?;
        if !meta.is_file() {
            // A key that is a prefix of other keys is a directory here, not an object.
            return Err(BlobError::NotFound);
        }
        let Some((start, end)) = range else {
            return Ok(Box::pin(ReaderStream::with_capacity(file, CHUNK)));
        };
        if start > end || start >= meta.len() {
            return Err(BlobError::Unavailable(format!(
                "local store: range {start}-{end} not satisfiable for {} bytes",
                meta.len()
            )));
        }
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| io_err("seeking", e))?;
        let reader = file.take(end - start + 1);
        Ok(Box::pin(ReaderStream::with_capacity(reader, CHUNK)))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("deleting", e)),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        let root = self.root.clone();
        Self::blocking(move || {
            create_dirs(&root)?;
            let mut probe = tempfile::Builder::new()
                .prefix(".probe-")
                .tempfile_in(&root)
                .map_err(|e| io_err("creating probe", e))?;
            probe
                .write_all(b"probe")
                .map_err(|e| io_err("writing probe", e))?;
            probe.close().map_err(|e| io_err("removing probe", e))
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}
