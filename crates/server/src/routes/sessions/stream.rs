//! The live streams: a session's events (chat) and a user's session list.
//!
//! The chat stream subscribes first, then replays the log after the cursor, then forwards
//! live events with a higher sequence number; a gap in what the bus delivers (lag, a lost
//! Redis message) is filled from the log, so the client sees every event once, in order.

use super::dto::ListSessionItem;
use crate::app::AppState;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::ports::event_bus::topics;
use ironhand_core::session::StoredEvent;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Comment lines keep proxies, and our own idle timeout, from closing a quiet stream.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How often a following stream re-reads the log in case a live message was lost.
const SAFETY_POLL: Duration = Duration::from_secs(5);
/// The session list is re-sent at least this often.
const LIST_REFRESH: Duration = Duration::from_secs(30);
const REPLAY_PAGE: i64 = 500;
/// Longest wait for the closing event of a run that has just ended.
const CLOSING_EVENT_WAIT: Duration = Duration::from_secs(3);

pub(crate) type SseItem = Result<Event, Infallible>;

/// How often a stream sends a comment line: every 15 s, or more often when
/// `server.idle_timeout_secs` is short, so a live stream is never idle.
pub(crate) fn ping_every(state: &AppState) -> Duration {
    let idle = Duration::from_secs(state.settings.server.idle_timeout_secs);
    PING_EVERY.min(idle / 3).max(Duration::from_millis(100))
}

/// Wraps a channel as an SSE response with the headers of docs/api.md (SSE events), pinging
/// every `ping`. When the client goes away the receiver is dropped and the pumping task ends
/// on its next send.
pub(crate) fn sse_response(mut receiver: mpsc::Receiver<SseItem>, ping: Duration) -> Response {
    let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(ping).text("ping"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn to_sse(state: &AppState, event: &StoredEvent) -> SseItem {
    let mut data = event.wire_data();
    state.files.sign_event_data(&event.event, &mut data);
    Ok(Event::default()
        .id(event.event_id())
        .event(event.event.clone())
        .data(data.to_string()))
}

/// Open streams per user on this instance, at most `limit` each (`server.max_streams_per_user`):
/// every stream costs a task, a subscription and database reads.
pub struct StreamSlots {
    limit: usize,
    /// The `rule` label of a refusal in `rate_limit_rejections_total`.
    rule: &'static str,
    open: std::sync::Mutex<std::collections::HashMap<UserId, usize>>,
}

/// One open stream; gives its slot back when the stream ends.
pub struct StreamSlot {
    slots: std::sync::Arc<StreamSlots>,
    user_id: UserId,
}

impl StreamSlots {
    pub fn new(limit: usize) -> Self {
        Self::for_rule(limit, "open_streams")
    }

    /// Slots of another kind of long-lived connection, counted under `rule`.
    pub fn for_rule(limit: usize, rule: &'static str) -> Self {
        Self {
            limit,
            rule,
            open: std::sync::Mutex::default(),
        }
    }

    /// A slot for another stream of `user_id`, or a 429 when they hold too many.
    pub fn acquire(
        self: &std::sync::Arc<Self>,
        user_id: UserId,
    ) -> Result<StreamSlot, ironhand_core::DomainError> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(user_id).or_insert(0);
        if *count >= self.limit {
            metrics::counter!("rate_limit_rejections_total", "rule" => self.rule).increment(1);
            return Err(ironhand_core::DomainError::RateLimited {
                retry_after: Duration::from_secs(5),
            });
        }
        *count += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            user_id,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

/// Streams the session's events after `cursor`; with `follow`, goes on with live events
/// until no run of the session is active any more.
pub fn chat_stream(
    state: AppState,
    session_id: SessionId,
    cursor: i64,
    slot: StreamSlot,
) -> Response {
    let (sender, receiver) = mpsc::channel::<SseItem>(64);
    let ping = ping_every(&state);
    tokio::spawn(async move {
        let _slot = slot;
        metrics::gauge!("ironhand_sse_subscribers").increment(1.0);
        let mut last = cursor;
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let before = last;
            match pump_session(&state, session_id, &mut last, &sender).await {
                Ok(()) => break,
                // A storage hiccup (a pool out of connections under load, a database
                // restart) must not end a stream before its run: pick up where it was.
                Err(reason @ ("storage error" | "bus unavailable")) => {
                    if last > before {
                        failing_since = None;
                    }
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > STORAGE_RETRY_FOR || sender.is_closed() {
                        tracing::warn!(session_id = %session_id, reason, "chat stream ended: storage unavailable");
                        break;
                    }
                    tracing::info!(session_id = %session_id, reason, "chat stream retrying");
                    tokio::time::sleep(STORAGE_RETRY_PAUSE).await;
                }
                Err(reason) => {
                    tracing::debug!(session_id = %session_id, reason, "chat stream ended");
                    break;
                }
            }
        }
        metrics::gauge!("ironhand_sse_subscribers").decrement(1.0);
    });
    sse_response(receiver, ping)
}

/// How long a chat stream keeps retrying storage that fails, and how often.
const STORAGE_RETRY_FOR: Duration = Duration::from_secs(120);
const STORAGE_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Sends every stored event after `*last`, advancing it. Returns whether one of them
/// ended a run.
async fn catch_up(
    state: &AppState,
    session_id: SessionId,
    last: &mut i64,
    sender: &mpsc::Sender<SseItem>,
) -> Result<bool, &'static str> {
    let mut ended = false;
    loop {
        let page = state
            .store
            .events_after(session_id, *last, REPLAY_PAGE)
            .await
            .map_err(|_| "storage error")?;
        for event in &page {
            sender
                .send(to_sse(state, event))
                .await
                .map_err(|_| "client gone")?;
            *last = event.seq;
            ended |= event.ends_stream();
        }
        if (page.len() as i64) < REPLAY_PAGE {
            return Ok(ended);
        }
    }
}

async fn run_active(state: &AppState, session_id: SessionId) -> Result<bool, &'static str> {
    state
        .store
        .active_run(session_id)
        .await
        .map(|run| run.is_some())
        .map_err(|_| "storage error")
}

/// Sends what is left once no run is active. A run records its outcome before storing its
/// closing `done`/`wait`, so right after a run ends the stream waits briefly for that event.
async fn drain_to_end(
    state: &AppState,
    session_id: SessionId,
    last: &mut i64,
    sender: &mpsc::Sender<SseItem>,
) -> Result<(), &'static str> {
    catch_up(state, session_id, last, sender).await?;
    let just_finished = state
        .store
        .latest_run(session_id)
        .await
        .map_err(|_| "storage error")?
        .and_then(|run| run.finished_at)
        .is_some_and(|at| OffsetDateTime::now_utc() - at < time::Duration::seconds(10));
    if !just_finished {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + CLOSING_EVENT_WAIT;
    loop {
        let newest = state
            .store
            .events_after(session_id, (*last - 1).max(0), 1)
            .await
            .map_err(|_| "storage error")?;
        if newest
            .first()
            .is_some_and(|e| e.seq == *last && e.ends_stream())
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        catch_up(state, session_id, last, sender).await?;
    }
}

async fn pump_session(
    state: &AppState,
    session_id: SessionId,
    last: &mut i64,
    sender: &mpsc::Sender<SseItem>,
) -> Result<(), &'static str> {
    // Subscribe before replaying, so nothing stored meanwhile is missed.
    let mut live = state
        .bus
        .subscribe(&topics::session(session_id))
        .await
        .map_err(|_| "bus unavailable")?
        .receiver;
    catch_up(state, session_id, last, sender).await?;
    if !run_active(state, session_id).await? {
        return drain_to_end(state, session_id, last, sender).await;
    }
    let mut poll = tokio::time::interval(SAFETY_POLL);
    poll.tick().await;
    loop {
        let ended = tokio::select! {
            _ = state.stopping.cancelled() => return Ok(()),
            _ = sender.closed() => return Err("client gone"),
            _ = poll.tick() => catch_up(state, session_id, last, sender).await? || !run_active(state, session_id).await?,
            message = live.recv() => match message {
                Ok(payload) => match serde_json::from_str::<StoredEvent>(&payload) {
                    Ok(event) if event.seq <= *last => false,
                    Ok(event) if event.seq == *last + 1 => {
                        sender.send(to_sse(state, &event)).await.map_err(|_| "client gone")?;
                        *last = event.seq;
                        event.ends_stream()
                    }
                    Ok(_) => catch_up(state, session_id, last, sender).await?,
                    // Not an event: the session was deleted, or something to re-check.
                    Err(_) => catch_up(state, session_id, last, sender).await? || !run_active(state, session_id).await?,
                },
                Err(RecvError::Lagged(_)) => catch_up(state, session_id, last, sender).await?,
                Err(RecvError::Closed) => return Err("bus closed"),
            },
        };
        if ended && !run_active(state, session_id).await? {
            return drain_to_end(state, session_id, last, sender).await;
        }
    }
}

/// The user's session list: at once, after every change, and at least every 30 s.
pub fn session_list_stream(state: AppState, user_id: UserId, slot: StreamSlot) -> Response {
    let (sender, receiver) = mpsc::channel::<SseItem>(8);
    let ping = ping_every(&state);
    tokio::spawn(async move {
        let _slot = slot;
        metrics::gauge!("ironhand_sse_subscribers").increment(1.0);
        let _ = pump_list(&state, user_id, &sender).await;
        metrics::gauge!("ironhand_sse_subscribers").decrement(1.0);
    });
    sse_response(receiver, ping)
}

async fn pump_list(
    state: &AppState,
    user_id: UserId,
    sender: &mpsc::Sender<SseItem>,
) -> Result<(), ()> {
    let mut changes = state
        .bus
        .subscribe(&topics::user_sessions(user_id))
        .await
        .map_err(|_| ())?
        .receiver;
    let mut refresh = tokio::time::interval(LIST_REFRESH);
    loop {
        let sessions = state
            .sessions
            .list(user_id, 100, None)
            .await
            .map_err(|_| ())?;
        let items: Vec<ListSessionItem> = sessions.iter().map(ListSessionItem::from).collect();
        let event = Event::default()
            .event("sessions")
            .data(json!({ "sessions": items }).to_string());
        sender.send(Ok(event)).await.map_err(|_| ())?;
        refresh.reset();
        tokio::select! {
            _ = state.stopping.cancelled() => return Ok(()),
            _ = sender.closed() => return Err(()),
            _ = refresh.tick() => {}
            message = changes.recv() => {
                if matches!(message, Err(RecvError::Closed)) {
                    return Err(());
                }
                // Coalesce a burst of changes into one refresh.
                tokio::time::sleep(Duration::from_millis(200)).await;
                while changes.try_recv().is_ok() {}
            }
        }
    }
}
