//! Staging an upload: the request body is streamed into a private temp file while its size
//! is counted against the limit, its SHA-256 computed and its first bytes kept for sniffing.
//! Nothing but one chunk and the 8 KiB head is ever in memory, whatever the body's size.

use sha2::{Digest, Sha256};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// How many leading bytes are kept for content sniffing.
pub const HEAD_LEN: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The body is larger than the limit; the rest of it need not be read.
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("staging the upload failed: {0}")]
    Io(#[from] io::Error),
}

/// An upload being received. Dropping it removes the temp file.
pub struct Staging {
    file: tokio::fs::File,
    path: TempPath,
    limit: u64,
    size: u64,
    hasher: Sha256,
    head: Vec<u8>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("path", &self.path)
            .field("limit", &self.limit)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Staging {
    /// Creates a 0600 temp file in `dir` (which must exist) for a body of at most `max_bytes`.
    pub async fn new(dir: &Path, max_bytes: u64) -> Result<Self, StagingError> {
        let dir = dir.to_path_buf();
        let named = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(".upload-")
                .permissions(std::fs::Permissions::from_mode(0o600))
                .tempfile_in(dir)
        })
        .await
        .map_err(io::Error::other)??;
        let (file, path) = named.into_parts();
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            path,
            limit: max_bytes,
            size: 0,
            hasher: Sha256::new(),
            head: Vec::with_capacity(HEAD_LEN),
        })
    }

    /// Appends a chunk, or refuses it (writing none of it) when the total would pass the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StagingError> {
        let len = chunk.len() as u64;
        if self.size.saturating_add(len) > self.limit {
            return Err(StagingError::TooLarge { limit: self.limit });
        }
        self.file.write_all(chunk).await?;
        self.size += len;
        self.hasher.update(chunk);
        let room = HEAD_LEN - self.head.len();
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes the file and hands over the staged upload. No fsync: a staged file is only a
    /// source for the store (which makes its own copy durable) and is gone after a crash
    /// either way.
    pub async fn finish(mut self) -> Result<Staged, StagingError> {
        self.file.flush().await?;
        Ok(Staged {
            path: self.path,
            size: self.size,
            sha256_hex: hex::encode(self.hasher.finalize()),
            head: self.head,
        })
    }
}

/// A complete upload in a temp file, removed when this is dropped unless it is
/// [persisted](Staged::persist) or [kept](Staged::keep).
#[derive(Debug)]
pub struct Staged {
    path: TempPath,
    pub size: u64,
    pub sha256_hex: String,
    /// The first [`HEAD_LEN`] bytes (fewer for a smaller file), for [`crate::sniff::classify`].
    pub head: Vec<u8>,
}

impl Staged {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file to `dest` (same filesystem), which then owns it.
    pub fn persist(self, dest: &Path) -> Result<(), StagingError> {
        self.path
            .persist(dest)
            .map_err(|e| StagingError::Io(e.error))
    }

    /// Stops removing the file on drop and returns its path; the caller now cleans it up.
    pub fn keep(self) -> Result<PathBuf, StagingError> {
        self.path.keep().map_err(|e| StagingError::Io(e.error))
    }
}
