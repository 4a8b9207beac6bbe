//! The SQL of the session ports (`SessionStore`, `EventLog`, `RunQueue`, `AgentMemoryStore`,
//! `JobLock`), shared by both backends like `impl_store!`. `impl_session_store!(Type, Row,
//! claim_lock)` implements them for a store type with `reader()` and `writer()` pools;
//! `claim_lock` is appended to the claim's sub-select (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, empty on SQLite, whose single writer serialises claims anyway).
//!
//! Times are integer Unix milliseconds in these tables; JSON is stored as text.

use sqlx::types::JsonValue;
use time::OffsetDateTime;

/// Unix milliseconds (rounded down) of `t`.
pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_ms(ms: i64) -> Result<OffsetDateTime, sqlx::Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn from_opt_ms(ms: Option<i64>) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    ms.map(from_ms).transpose()
}

pub(crate) fn parse_json(text: &str) -> Result<JsonValue, sqlx::Error> {
    text.parse::<JsonValue>()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn decode_err(what: &str, raw: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} `{raw}`").into())
}

macro_rules! session_columns {
    () => {
        "id, user_id, title, status, latest_message, latest_message_at, unread_message_count, is_shared, last_seq, created_at, updated_at"
    };
}

macro_rules! run_columns {
    () => {
        "id, session_id, user_id, kind, status, message, attachments, client_message_id, attempts, cancel_requested, lease_owner, lease_expires_at, created_at, started_at, finished_at"
    };
}

/// The condition of a claimable run, given the placeholder of now.
macro_rules! claimable {
    ($now:literal) => {
        concat!(
            "(status = 'queued' OR (status = 'running' AND lease_expires_at < ",
            $now,
            "))"
        )
    };
}

/// The condition of a run `claimable!` by an instance, given the placeholders of now, of
/// the instance and of the time before which runs held elsewhere are anyone's: not a queued
/// run of a session whose sandbox another instance holds, unless it waited long enough.
macro_rules! claimable_here {
    ($now:literal, $instance:literal, $others_after:literal) => {
        concat!(
            claimable!($now),
            " AND (status = 'running' OR created_at <= ",
            $others_after,
            " OR NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = runs.session_id
                             AND s.sandbox_instance <> ",
            $instance,
            "))"
        )
    };
}

macro_rules! impl_session_store {
    ($store:ty, $row:ty, $claim_lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use ironhand_core::billing::RunMeter;
            use ironhand_core::error::{StoreError, StoreResult};
            use ironhand_core::ids::{RunId, SessionId, UserId};
            use ironhand_core::ports::sessions::{
                AgentMemoryStore, Claimant, EventLog, JobLock, LeaseState, ListCursor, NewEvent, RunQueue,
                SessionStore,
            };
            use ironhand_core::session::{
                Run, RunKind, RunStatus, Session, SessionStatus, StartRun, StoredEvent,
            };
            use sqlx::Row as _;
            use sqlx::types::JsonValue;
            use time::OffsetDateTime;
            use $crate::sessions::{decode_err, from_ms, from_opt_ms, parse_json, to_ms};
            use $crate::store_err;

            type Tx<'c> = sqlx::Transaction<'c, <$row as sqlx::Row>::Database>;

            fn session_from_row(row: &$row) -> Result<Session, sqlx::Error> {
                let status: String = row.try_get("status")?;
                Ok(Session {
                    id: SessionId(row.try_get("id")?),
                    user_id: UserId(row.try_get("user_id")?),
                    title: row.try_get("title")?,
                    status: SessionStatus::parse(&status)
                        .ok_or_else(|| decode_err("session status", &status))?,
                    latest_message: row.try_get("latest_message")?,
                    latest_message_at: from_opt_ms(row.try_get("latest_message_at")?)?,
                    unread_message_count: row.try_get("unread_message_count")?,
                    is_shared: row.try_get("is_shared")?,
                    last_seq: row.try_get("last_seq")?,
                    created_at: from_ms(row.try_get("created_at")?)?,
                    updated_at: from_ms(row.try_get("updated_at")?)?,
                })
            }

            fn event_from_row(row: &$row) -> Result<StoredEvent, sqlx::Error> {
                let data: String = row.try_get("data")?;
                Ok(StoredEvent {
                    session_id: SessionId(row.try_get("session_id")?),
                    seq: row.try_get("seq")?,
                    event: row.try_get("event")?,
                    data: parse_json(&data)?,
                    created_at: from_ms(row.try_get("created_at")?)?,
                })
            }

            fn run_from_row(row: &$row) -> Result<Run, sqlx::Error> {
                let kind: String = row.try_get("kind")?;
                let status: String = row.try_get("status")?;
                let attachments: String = row.try_get("attachments")?;
                Ok(Run {
                    id: RunId(row.try_get("id")?),
                    session_id: SessionId(row.try_get("session_id")?),
                    user_id: UserId(row.try_get("user_id")?),
                    kind: RunKind::parse(&kind).ok_or_else(|| decode_err("run kind", &kind))?,
                    status: RunStatus::parse(&status)
                        .ok_or_else(|| decode_err("run status", &status))?,
                    message: row.try_get("message")?,
                    attachments: parse_json(&attachments)?,
                    client_message_id: row.try_get("client_message_id")?,
                    attempts: row.try_get("attempts")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                    lease_owner: row.try_get("lease_owner")?,
                    lease_expires_at: from_opt_ms(row.try_get("lease_expires_at")?)?,
                    created_at: from_ms(row.try_get("created_at")?)?,
                    started_at: from_opt_ms(row.try_get("started_at")?)?,
                    finished_at: from_opt_ms(row.try_get("finished_at")?)?,
                })
            }

            fn one_run(row: Option<$row>) -> StoreResult<Option<Run>> {
                row.as_ref().map(run_from_row).transpose().map_err(store_err)
            }

            /// Why `start_run`'s insert did nothing: the run it duplicates, or the active run
            /// that makes the session busy. `None` when neither is there any more (the
            /// conflicting run finished meanwhile): the caller tries again.
            async fn classify_start_conflict(
                tx: &mut Tx<'_>,
                run: &Run,
            ) -> StoreResult<Option<StartRun>> {
                if let Some(client_id) = run.client_message_id.as_deref() {
                    let row = sqlx::query(concat!(
                        "SELECT ", run_columns!(), " FROM runs WHERE session_id = $1 AND client_message_id = $2"
                    ))
                    .bind(run.session_id.0)
                    .bind(client_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(store_err)?;
                    if let Some(existing) = one_run(row)? {
                        return Ok(Some(StartRun::Duplicate(existing)));
                    }
                }
                let active: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM runs WHERE session_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(run.session_id.0)
                .fetch_optional(&mut **tx)
                .await
                .map_err(store_err)?;
                if active.is_some() {
                    return Ok(Some(StartRun::Busy));
                }
                // The same run stored twice (a retried call with the same id).
                let row = sqlx::query(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1"))
                    .bind(run.id.0)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(store_err)?;
                match one_run(row)? {
                    Some(existing) if existing.session_id == run.session_id => {
                        Ok(Some(StartRun::Duplicate(existing)))
                    }
                    Some(_) => Err(StoreError::Conflict("runs_pkey".into())),
                    None => Ok(None),
                }
            }

            /// Counts the run on the subscription (a conditional update: under the limit and
            /// in the period the caller saw) and checks the user's runs in progress. The
            /// update locks the subscription row, so a user's concurrent starts meter one at
            /// a time. `Some(refusal)` when the run may not start.
            async fn apply_meter(
                tx: &mut Tx<'_>,
                run: &Run,
                meter: &RunMeter,
            ) -> StoreResult<Option<StartRun>> {
                let counted: Option<i32> = sqlx::query_scalar(
                    "UPDATE subscriptions SET monthly_agent_runs = monthly_agent_runs + $2
                     WHERE user_id = $1 AND period_version = $3
                       AND (NOT $4 OR NOT $5 OR monthly_agent_runs_limit < 0
                            OR monthly_agent_runs < monthly_agent_runs_limit)
                     RETURNING 1",
                )
                .bind(run.user_id.0)
                .bind(i64::from(meter.count))
                .bind(meter.period_version)
                .bind(meter.count)
                .bind(meter.enforce_limit)
                .fetch_optional(&mut **tx)
                .await
                .map_err(store_err)?;
                if counted.is_none() {
                    return Ok(Some(StartRun::LimitReached));
                }
                let active: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM runs WHERE user_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(run.user_id.0)
                .fetch_one(&mut **tx)
                .await
                .map_err(store_err)?;
                if active > meter.max_active_runs {
                    return Ok(Some(StartRun::TooManyActive));
                }
                Ok(None)
            }

            #[async_trait]
            impl SessionStore for $store {
                /// Stores the session with no events (`last_seq` 0, whatever `s` says).
                async fn create_session(&self, s: &Session) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO sessions (id, user_id, title, status, latest_message, latest_message_at,
                            unread_message_count, is_shared, last_seq, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)",
                    )
                    .bind(s.id.0)
                    .bind(s.user_id.0)
                    .bind(s.title.as_deref())
                    .bind(s.status.as_str())
                    .bind(s.latest_message.as_deref())
                    .bind(s.latest_message_at.map(to_ms))
                    .bind(s.unread_message_count)
                    .bind(s.is_shared)
                    .bind(to_ms(s.created_at))
                    .bind(to_ms(s.updated_at))
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                    Ok(())
                }

                async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>> {
                    let row = sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1"))
                        .bind(id.0)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(store_err)?;
                    row.as_ref().map(session_from_row).transpose().map_err(store_err)
                }

                async fn list_sessions(
                    &self,
                    user_id: UserId,
                    limit: i64,
                    before: Option<ListCursor>,
                ) -> StoreResult<Vec<Session>> {
                    let rows = match before {
                        None => sqlx::query(concat!(
                            "SELECT ", session_columns!(), " FROM sessions WHERE user_id = $1
                             ORDER BY updated_at DESC, id DESC LIMIT $2"
                        ))
                        .bind(user_id.0)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await,
                        Some(ListCursor { updated_at, session_id: None }) => sqlx::query(concat!(
                            "SELECT ", session_columns!(), " FROM sessions WHERE user_id = $1 AND updated_at < $3
                             ORDER BY updated_at DESC, id DESC LIMIT $2"
                        ))
                        .bind(user_id.0)
                        .bind(limit)
                        .bind(to_ms(updated_at))
                        .fetch_all(self.reader())
                        .await,
                        Some(ListCursor { updated_at, session_id: Some(after) }) => sqlx::query(concat!(
                            "SELECT ", session_columns!(), " FROM sessions WHERE user_id = $1
                               AND (updated_at < $3 OR (updated_at = $3 AND id < $4))
                             ORDER BY updated_at DESC, id DESC LIMIT $2"
                        ))
                        .bind(user_id.0)
                        .bind(limit)
                        .bind(to_ms(updated_at))
                        .bind(after.0)
                        .fetch_all(self.reader())
                        .await,
                    }
                    .map_err(store_err)?;
                    rows.iter().map(session_from_row).collect::<Result<_, _>>().map_err(store_err)
                }

                async fn set_session_title(&self, id: SessionId, title: &str, now: OffsetDateTime) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET title = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(title)
                        .bind(to_ms(now))
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(())
                }

                async fn set_session_status(
                    &self,
                    id: SessionId,
                    status: SessionStatus,
                    now: OffsetDateTime,
                ) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET status = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(status.as_str())
                        .bind(to_ms(now))
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(())
                }

                async fn set_session_shared(&self, id: SessionId, shared: bool) -> StoreResult<bool> {
                    let done = sqlx::query("UPDATE sessions SET is_shared = $2 WHERE id = $1")
                        .bind(id.0)
                        .bind(shared)
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn clear_unread(&self, id: SessionId) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET unread_message_count = 0 WHERE id = $1")
                        .bind(id.0)
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(())
                }

                async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
                    // Runs first, then the session (events and memory follow by ON DELETE
                    // CASCADE): the order `start_run` and `finish_run` lock them in, so a
                    // deletion racing a worker's finish cannot deadlock on PostgreSQL.
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // The session's files go with it; their bytes are removed after commit
                    // by whoever collects the blob garbage (so a crash leaks nothing).
                    sqlx::query(
                        "INSERT INTO blob_garbage (storage_key, created_at)
                         SELECT storage_key, $2 FROM files WHERE session_id = $1
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id.0)
                    .bind(to_ms(OffsetDateTime::now_utc()))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    sqlx::query("DELETE FROM files WHERE session_id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    sqlx::query("DELETE FROM runs WHERE session_id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    // Locks the session's row before its workspace snapshot is read, as
                    // `record_snapshot` does: a snapshot recorded meanwhile is either seen
                    // here (its key queued) or refused there.
                    sqlx::query("UPDATE sessions SET sandbox_instance = NULL WHERE id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    sqlx::query(
                        "INSERT INTO blob_garbage (storage_key, created_at)
                         SELECT storage_key, $2 FROM workspace_snapshots WHERE session_id = $1
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id.0)
                    .bind(to_ms(OffsetDateTime::now_utc()))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    tx.commit().await.map_err(store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn idle_sessions(
                    &self,
                    idle_before: OffsetDateTime,
                    limit: i64,
                ) -> StoreResult<Vec<(SessionId, UserId)>> {
                    let rows = sqlx::query(
                        "SELECT id, user_id FROM sessions WHERE updated_at < $1 ORDER BY updated_at, id LIMIT $2",
                    )
                    .bind(to_ms(idle_before))
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await
                    .map_err(store_err)?;
                    rows.iter()
                        .map(|r| Ok((SessionId(r.try_get("id")?), UserId(r.try_get("user_id")?))))
                        .collect::<Result<_, sqlx::Error>>()
                        .map_err(store_err)
                }
            }

            #[async_trait]
            impl EventLog for $store {
                async fn append_event(&self, e: &NewEvent<'_>) -> StoreResult<StoredEvent> {
                    let now = to_ms(e.now);
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // Takes the row lock: concurrent appends to the session wait here, so
                    // each gets the next number.
                    let seq: Option<i64> = sqlx::query_scalar(
                        "UPDATE sessions SET last_seq = last_seq + 1, updated_at = $2,
                            latest_message = COALESCE($3, latest_message),
                            latest_message_at = CASE WHEN $3 IS NULL THEN latest_message_at ELSE $2 END,
                            unread_message_count = unread_message_count + CASE WHEN $4 THEN 1 ELSE 0 END
                         WHERE id = $1 RETURNING last_seq",
                    )
                    .bind(e.session_id.0)
                    .bind(now)
                    .bind(e.latest_message)
                    .bind(e.count_unread)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    let Some(seq) = seq else {
                        return Err(StoreError::Backend(format!(
                            "append_event: session {} does not exist",
                            e.session_id
                        )));
                    };
                    sqlx::query(
                        "INSERT INTO session_events (session_id, seq, event, data, created_at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(e.session_id.0)
                    .bind(seq)
                    .bind(e.event)
                    .bind(e.data.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    tx.commit().await.map_err(store_err)?;
                    Ok(StoredEvent {
                        session_id: e.session_id,
                        seq,
                        event: e.event.to_owned(),
                        data: e.data.clone(),
                        created_at: from_ms(now).map_err(store_err)?,
                    })
                }

                async fn events_after(
                    &self,
                    session_id: SessionId,
                    after_seq: i64,
                    limit: i64,
                ) -> StoreResult<Vec<StoredEvent>> {
                    let rows = sqlx::query(
                        "SELECT session_id, seq, event, data, created_at FROM session_events
                         WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(session_id.0)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await
                    .map_err(store_err)?;
                    rows.iter().map(event_from_row).collect::<Result<_, _>>().map_err(store_err)
                }

                async fn latest_event(
                    &self,
                    session_id: SessionId,
                    event: &str,
                ) -> StoreResult<Option<StoredEvent>> {
                    let row = sqlx::query(
                        "SELECT session_id, seq, event, data, created_at FROM session_events
                         WHERE session_id = $1 AND event = $2 ORDER BY seq DESC LIMIT 1",
                    )
                    .bind(session_id.0)
                    .bind(event)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(store_err)?;
                    row.as_ref().map(event_from_row).transpose().map_err(store_err)
                }
            }

            #[async_trait]
            impl RunQueue for $store {
                async fn start_run(&self, run: &Run, meter: Option<&RunMeter>) -> StoreResult<StartRun> {
                    // The insert comes first and the session row is locked last, as in
                    // `finish_run` (run, then session), so the two never deadlock.
                    for _ in 0..3 {
                        let mut tx = self.writer().begin().await.map_err(store_err)?;
                        // Either unique index (same client message, or another active run)
                        // turns the insert into a no-op, even against a concurrent start.
                        let row = sqlx::query(concat!(
                            "INSERT INTO runs (", run_columns!(), ")
                             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, 0, FALSE, NULL, NULL, $8, NULL, NULL)
                             ON CONFLICT DO NOTHING
                             RETURNING ", run_columns!()
                        ))
                        .bind(run.id.0)
                        .bind(run.session_id.0)
                        .bind(run.user_id.0)
                        .bind(run.kind.as_str())
                        .bind(&run.message)
                        .bind(run.attachments.to_string())
                        .bind(run.client_message_id.as_deref())
                        .bind(to_ms(run.created_at))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_err)?;
                        if let Some(stored) = one_run(row)? {
                            if let Some(meter) = meter
                                && let Some(refused) = apply_meter(&mut tx, run, meter).await?
                            {
                                tx.rollback().await.map_err(store_err)?;
                                return Ok(refused);
                            }
                            sqlx::query("UPDATE sessions SET status = 'running' WHERE id = $1")
                                .bind(run.session_id.0)
                                .execute(&mut *tx)
                                .await
                                .map_err(store_err)?;
                            tx.commit().await.map_err(store_err)?;
                            return Ok(StartRun::Started(stored));
                        }
                        if let Some(outcome) = classify_start_conflict(&mut tx, run).await? {
                            return Ok(outcome);
                        }
                    }
                    Ok(StartRun::Busy)
                }

                async fn claim_run(
                    &self,
                    worker: &str,
                    claimant: Claimant<'_>,
                    now: OffsetDateTime,
                    lease_until: OffsetDateTime,
                ) -> StoreResult<Option<Run>> {
                    for _ in 0..3 {
                        let row = sqlx::query(concat!(
                            "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $3,
                                attempts = attempts + 1, started_at = COALESCE(started_at, $2)
                             WHERE id = (SELECT id FROM runs WHERE ", claimable_here!("$2", "$4", "$5"), "
                                         ORDER BY created_at, id LIMIT 1 ", $claim_lock, ")
                               AND ", claimable!("$2"), "
                             RETURNING ", run_columns!()
                        ))
                        .bind(worker)
                        .bind(to_ms(now))
                        .bind(to_ms(lease_until))
                        .bind(claimant.instance)
                        .bind(to_ms(claimant.others_after))
                        .fetch_optional(self.writer())
                        .await
                        .map_err(store_err)?;
                        if let Some(run) = one_run(row)? {
                            return Ok(Some(run));
                        }
                        // Lost a race for the oldest run (or nothing is claimable here).
                        let left: Option<i32> = sqlx::query_scalar(concat!(
                            "SELECT 1 FROM runs WHERE ", claimable_here!("$1", "$2", "$3"), " LIMIT 1"
                        ))
                        .bind(to_ms(now))
                        .bind(claimant.instance)
                        .bind(to_ms(claimant.others_after))
                        .fetch_optional(self.reader())
                        .await
                        .map_err(store_err)?;
                        if left.is_none() {
                            return Ok(None);
                        }
                    }
                    Ok(None)
                }

                async fn renew_lease(
                    &self,
                    run_id: RunId,
                    worker: &str,
                    lease_until: OffsetDateTime,
                ) -> StoreResult<LeaseState> {
                    let renewed: Option<bool> = sqlx::query_scalar(
                        "UPDATE runs SET lease_expires_at = $3
                         WHERE id = $1 AND status = 'running' AND lease_owner = $2
                         RETURNING cancel_requested",
                    )
                    .bind(run_id.0)
                    .bind(worker)
                    .bind(to_ms(lease_until))
                    .fetch_optional(self.writer())
                    .await
                    .map_err(store_err)?;
                    if let Some(cancel_requested) = renewed {
                        return Ok(LeaseState { held: true, cancel_requested });
                    }
                    let cancel_requested: Option<bool> =
                        sqlx::query_scalar("SELECT cancel_requested FROM runs WHERE id = $1")
                            .bind(run_id.0)
                            .fetch_optional(self.reader())
                            .await
                            .map_err(store_err)?;
                    Ok(LeaseState { held: false, cancel_requested: cancel_requested.unwrap_or(false) })
                }

                async fn finish_run(
                    &self,
                    run_id: RunId,
                    worker: Option<&str>,
                    status: RunStatus,
                    session_status: SessionStatus,
                    now: OffsetDateTime,
                ) -> StoreResult<bool> {
                    if status == RunStatus::Running {
                        return Err(StoreError::Backend(
                            "finish_run: `running` is not an end state (claim_run starts runs)".into(),
                        ));
                    }
                    let finished_at = (status != RunStatus::Queued).then_some(to_ms(now));
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    let session_id: Option<uuid::Uuid> = match worker {
                        Some(worker) => sqlx::query_scalar(
                            "UPDATE runs SET status = $2, lease_owner = NULL, lease_expires_at = NULL, finished_at = $3
                             WHERE id = $1 AND status = 'running' AND lease_owner = $4
                             RETURNING session_id",
                        )
                        .bind(run_id.0)
                        .bind(status.as_str())
                        .bind(finished_at)
                        .bind(worker)
                        .fetch_optional(&mut *tx)
                        .await,
                        None => sqlx::query_scalar(
                            "UPDATE runs SET status = $2, lease_owner = NULL, lease_expires_at = NULL, finished_at = $3
                             WHERE id = $1 AND status = 'queued'
                             RETURNING session_id",
                        )
                        .bind(run_id.0)
                        .bind(status.as_str())
                        .bind(finished_at)
                        .fetch_optional(&mut *tx)
                        .await,
                    }
                    .map_err(store_err)?;
                    let Some(session_id) = session_id else {
                        return Ok(false);
                    };
                    sqlx::query("UPDATE sessions SET status = $2 WHERE id = $1")
                        .bind(session_id)
                        .bind(session_status.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    tx.commit().await.map_err(store_err)?;
                    Ok(true)
                }

                async fn request_cancel(&self, session_id: SessionId) -> StoreResult<Option<Run>> {
                    let row = sqlx::query(concat!(
                        "UPDATE runs SET cancel_requested = TRUE
                         WHERE session_id = $1 AND status IN ('queued', 'running')
                         RETURNING ", run_columns!()
                    ))
                    .bind(session_id.0)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(store_err)?;
                    one_run(row)
                }

                async fn active_run(&self, session_id: SessionId) -> StoreResult<Option<Run>> {
                    let row = sqlx::query(concat!(
                        "SELECT ", run_columns!(), " FROM runs WHERE session_id = $1 AND status IN ('queued', 'running')"
                    ))
                    .bind(session_id.0)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(store_err)?;
                    one_run(row)
                }

                async fn latest_run(&self, session_id: SessionId) -> StoreResult<Option<Run>> {
                    let row = sqlx::query(concat!(
                        "SELECT ", run_columns!(), " FROM runs WHERE session_id = $1
                         ORDER BY created_at DESC, id DESC LIMIT 1"
                    ))
                    .bind(session_id.0)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(store_err)?;
                    one_run(row)
                }

                async fn run_by_id(&self, id: RunId) -> StoreResult<Option<Run>> {
                    let row = sqlx::query(concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1"))
                        .bind(id.0)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(store_err)?;
                    one_run(row)
                }
            }

            #[async_trait]
            impl AgentMemoryStore for $store {
                async fn save_memory(
                    &self,
                    session_id: SessionId,
                    memory: &JsonValue,
                    now: OffsetDateTime,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO agent_memory (session_id, memory, updated_at) VALUES ($1, $2, $3)
                         ON CONFLICT (session_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at",
                    )
                    .bind(session_id.0)
                    .bind(memory.to_string())
                    .bind(to_ms(now))
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                    Ok(())
                }

                async fn load_memory(&self, session_id: SessionId) -> StoreResult<Option<JsonValue>> {
                    let text: Option<String> =
                        sqlx::query_scalar("SELECT memory FROM agent_memory WHERE session_id = $1")
                            .bind(session_id.0)
                            .fetch_optional(self.reader())
                            .await
                            .map_err(store_err)?;
                    text.as_deref().map(parse_json).transpose().map_err(store_err)
                }
            }

            #[async_trait]
            impl JobLock for $store {
                async fn try_lock(
                    &self,
                    name: &str,
                    holder: &str,
                    now: OffsetDateTime,
                    until: OffsetDateTime,
                ) -> StoreResult<bool> {
                    // Inserts a free lock; takes over an expired one or extends our own. A
                    // lock someone else holds is left alone (no row affected).
                    let done = sqlx::query(
                        "INSERT INTO job_locks (name, holder, expires_at) VALUES ($1, $2, $4)
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE job_locks.expires_at < $3 OR job_locks.holder = excluded.holder",
                    )
                    .bind(name)
                    .bind(holder)
                    .bind(to_ms(now))
                    .bind(to_ms(until))
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn unlock(&self, name: &str, holder: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM job_locks WHERE name = $1 AND holder = $2")
                        .bind(name)
                        .bind(holder)
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(())
                }
            }
        };
    };
}
