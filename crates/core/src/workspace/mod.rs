//! Workspaces that follow the session. A session's sandbox lives on one instance, but its
//! runs may be claimed by another (a follow-up message, a run resumed after a crash). So at
//! the end of every run, and before an idle sandbox is stopped, the instance packs the
//! workspace (`/home/ubuntu`) into the file store as the session's latest snapshot; an
//! instance about to run a session whose local copy is older restores that snapshot first.
//! Runs prefer the instance that holds the session's sandbox (see `RunQueue::claim_run`), so
//! snapshots are the hand-over path, not the hot path.
//!
//! [`WorkspaceSnapshots`] holds the rules; the sandbox provider packs and unpacks
//! (`SandboxProvider::{pack_workspace, restore_workspace}`), the blob store keeps the bytes
//! under `workspaces/<session>/<uuid>`, and [`WorkspaceStore`] records which snapshot is the
//! latest and which instance holds the session's sandbox.

mod service;

/// The storage port of snapshots, in `ports` with the others.
pub use crate::ports::workspaces::WorkspaceStore;
pub use service::{SavedWorkspace, TakeOver, WorkspaceSettings, WorkspaceSnapshots};

use crate::error::StoreError;
use crate::ids::SessionId;
use crate::ports::blob_store::BlobError;
use crate::ports::sandbox::SandboxError;
use time::OffsetDateTime;

/// A stored snapshot of a session's workspace (only the latest is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSnapshot {
    pub session_id: SessionId,
    /// 1 for the session's first snapshot, one more for each after it.
    pub version: i64,
    /// The blob store key of the archive (tar + zstd).
    pub storage_key: String,
    /// Bytes of the archive, and its SHA-256.
    pub size: i64,
    pub sha256: String,
    /// Regular files in it, and their bytes before compression.
    pub files: i64,
    pub bytes: i64,
    /// Files left out to stay within the workspace limit, and their bytes.
    pub left_out_files: i64,
    pub left_out_bytes: i64,
    /// The instance that made it.
    pub instance: String,
    pub created_at: OffsetDateTime,
}

/// Why a workspace could not be saved or brought here.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("the file store failed: {0}")]
    Blobs(#[source] BlobError),
    #[error("the database failed: {0}")]
    Store(#[from] StoreError),
    #[error("the sandbox failed: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("a local file failed: {0}")]
    Io(#[from] std::io::Error),
}
