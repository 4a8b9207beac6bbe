//! The storage port of workspace snapshots: the latest snapshot of each session and which
//! instance holds its sandbox.

use crate::error::StoreResult;
use crate::ids::SessionId;
use crate::workspace::WorkspaceSnapshot;
use async_trait::async_trait;

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// The session's latest snapshot.
    async fn latest_snapshot(&self, session: SessionId) -> StoreResult<Option<WorkspaceSnapshot>>;
    /// In one transaction, and only while `snapshot.instance` holds the session's sandbox:
    /// stores `snapshot` as the session's latest, numbered one after the previous one (its
    /// own `version` is ignored), and queues the previous one's key for blob removal. The
    /// stored record; `None` when the session is gone or another instance holds its sandbox
    /// (then nothing is stored).
    async fn record_snapshot(
        &self,
        snapshot: &WorkspaceSnapshot,
    ) -> StoreResult<Option<WorkspaceSnapshot>>;
    /// Records `instance` as the one holding the session's sandbox: its runs are claimed
    /// there first.
    async fn hold_sandbox(&self, session: SessionId, instance: &str) -> StoreResult<()>;
    /// Forgets that `instance` holds the sandbox of `session`, or of every session with
    /// `None` (an instance shutting down). How many it held.
    async fn release_sandbox(&self, session: Option<SessionId>, instance: &str)
    -> StoreResult<u64>;
    /// The instance holding the session's sandbox, if any.
    async fn sandbox_holder(&self, session: SessionId) -> StoreResult<Option<String>>;
}
