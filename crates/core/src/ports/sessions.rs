//! Storage ports of sessions: the sessions themselves, their event log, the run queue, the
//! agent's persisted memory and cluster-wide job locks. `ironhand-db` implements them for
//! SQLite and PostgreSQL.
//!
//! Every time column of these tables is stored as integer Unix milliseconds on both
//! backends, so comparisons in SQL (leases, retention, paging) are numeric.

use crate::billing::RunMeter;
use crate::error::StoreResult;
use crate::ids::{RunId, SessionId, UserId};
use crate::session::{Run, RunStatus, Session, SessionStatus, StartRun, StoredEvent};
use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

/// Where the next page of a session list starts: strictly after the session with this
/// last activity and id (the list is ordered by both, newest first, so ties never skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub updated_at: OffsetDateTime,
    /// Without it, only sessions strictly older than `updated_at` follow.
    pub session_id: Option<SessionId>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// The user's sessions, most recent activity (`updated_at`, then id) first; with
    /// `before`, only those after that cursor (the next page). At most `limit`.
    async fn list_sessions(
        &self,
        user_id: UserId,
        limit: i64,
        before: Option<ListCursor>,
    ) -> StoreResult<Vec<Session>>;
    async fn set_session_title(
        &self,
        id: SessionId,
        title: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn set_session_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// False when the session does not exist.
    async fn set_session_shared(&self, id: SessionId, shared: bool) -> StoreResult<bool>;
    async fn clear_unread(&self, id: SessionId) -> StoreResult<()>;
    /// Deletes the session with its events, runs and memory. False when it did not exist.
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool>;
    /// Sessions whose last activity is before `idle_before` (oldest first, at most `limit`),
    /// for the retention job.
    async fn idle_sessions(
        &self,
        idle_before: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<(SessionId, UserId)>>;
}

/// An event to append, with what it changes on the session row.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub session_id: SessionId,
    pub event: &'a str,
    pub data: &'a Value,
    pub now: OffsetDateTime,
    /// For `message` events: becomes the session's `latest_message` (and `_at` = now).
    pub latest_message: Option<&'a str>,
    /// For assistant messages: adds one to the unread count.
    pub count_unread: bool,
}

#[async_trait]
pub trait EventLog: Send + Sync {
    /// In one transaction: takes the session's next sequence number, stores the event and
    /// updates the session's activity (`updated_at`, latest message, unread count).
    /// Concurrent appends to one session get distinct, gap-free numbers.
    async fn append_event(&self, event: &NewEvent<'_>) -> StoreResult<StoredEvent>;
    /// Events with `seq > after_seq`, ascending, at most `limit`.
    async fn events_after(
        &self,
        session_id: SessionId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// The session's newest event named `event` (e.g. the latest `takeover`), if any. Walks
    /// the `(session_id, seq)` key backwards, so it costs at most the session's own events.
    async fn latest_event(
        &self,
        session_id: SessionId,
        event: &str,
    ) -> StoreResult<Option<StoredEvent>>;
}

/// Whether a worker still holds a run, and whether someone asked to stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    pub held: bool,
    pub cancel_requested: bool,
}

/// Who is claiming a run, for affinity: a run of a session whose sandbox another instance
/// holds (`WorkspaceStore::hold_sandbox`) is left to that instance until it was created
/// before `others_after`; runs whose lease expired (their worker died) and runs of sessions
/// nobody holds are anyone's.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    /// This instance (its worker id).
    pub instance: &'a str,
    /// Runs of sessions held elsewhere are claimable here once created at or before this.
    pub others_after: OffsetDateTime,
}

impl<'a> Claimant<'a> {
    /// Claims as `instance`, leaving runs held elsewhere to their instance for `wait`.
    pub fn new(instance: &'a str, now: OffsetDateTime, wait: std::time::Duration) -> Self {
        Self {
            instance,
            others_after: now - wait,
        }
    }
}

#[async_trait]
pub trait RunQueue: Send + Sync {
    /// In one transaction: when the session already has a run with the same
    /// `client_message_id`, returns it (`Duplicate`); when another run of the session is
    /// queued or running, `Busy`; otherwise stores `run` as queued and sets the session's
    /// status to `running`. With a `meter`, in the same transaction: counts the run on the
    /// user's subscription with a conditional update (so at most `limit` runs start in a
    /// period, whatever the concurrency) and checks the user's runs in progress; a refusal
    /// stores nothing (`LimitReached`, `TooManyActive`).
    async fn start_run(&self, run: &Run, meter: Option<&RunMeter>) -> StoreResult<StartRun>;
    /// Claims the oldest queued run, or a running one whose lease expired before `now`, that
    /// `claimant` may take (see [`Claimant`]), with a conditional update so two workers never
    /// claim the same run: status `running`, lease to `worker` until `lease_until`,
    /// attempts + 1, `started_at` set if unset.
    async fn claim_run(
        &self,
        worker: &str,
        claimant: Claimant<'_>,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> StoreResult<Option<Run>>;
    /// Extends the lease if `worker` still holds the run.
    async fn renew_lease(
        &self,
        run_id: RunId,
        worker: &str,
        lease_until: OffsetDateTime,
    ) -> StoreResult<LeaseState>;
    /// Ends the run (only while `worker` holds it, or, with `worker: None`, while it is
    /// queued) with `status`, clears the lease, sets `finished_at` (unless `status` is
    /// `queued`, which hands it back to the queue) and the session's status, in one
    /// transaction. False when the run was not in that state.
    async fn finish_run(
        &self,
        run_id: RunId,
        worker: Option<&str>,
        status: RunStatus,
        session_status: SessionStatus,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Asks the session's active run to stop: sets `cancel_requested`. Returns that run.
    async fn request_cancel(&self, session_id: SessionId) -> StoreResult<Option<Run>>;
    /// The session's queued or running run.
    async fn active_run(&self, session_id: SessionId) -> StoreResult<Option<Run>>;
    /// The session's most recent run, whatever its status.
    async fn latest_run(&self, session_id: SessionId) -> StoreResult<Option<Run>>;
    async fn run_by_id(&self, id: RunId) -> StoreResult<Option<Run>>;
}

#[async_trait]
pub trait AgentMemoryStore: Send + Sync {
    /// Replaces the session's agent memory (plan, position, conversation with the model).
    async fn save_memory(
        &self,
        session_id: SessionId,
        memory: &Value,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn load_memory(&self, session_id: SessionId) -> StoreResult<Option<Value>>;
}

#[async_trait]
pub trait JobLock: Send + Sync {
    /// Takes the named lock for `holder` until `until` if it is free, expired or already
    /// held by `holder`. True when `holder` now holds it.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<bool>;
    async fn unlock(&self, name: &str, holder: &str) -> StoreResult<()>;
}
