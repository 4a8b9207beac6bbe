//! Stores an event, then announces it. The order is the streaming guarantee: a reader that
//! hears about event N can always read it (and everything before it) from the log.

use crate::error::DomainError;
use crate::ids::{SessionId, UserId};
use crate::ports::event_bus::topics;
use crate::ports::sessions::NewEvent;
use crate::ports::{EventBus, Store};
use crate::session::{AgentEvent, StoredEvent};
use crate::text;
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Clone)]
pub struct EventPublisher {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
}

impl EventPublisher {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>) -> Self {
        Self { store, bus }
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// Appends `event` to the session's log and publishes it. A failed publish is only
    /// logged: readers catch up from the log.
    pub async fn publish(
        &self,
        session_id: SessionId,
        user_id: UserId,
        event: &AgentEvent,
    ) -> Result<StoredEvent, DomainError> {
        // Model and tool output may hold NUL characters, which storage refuses (`text`).
        let mut data = event.data();
        text::strip_nul(&mut data);
        let latest_message = event.latest_message().map(text::without_nul);
        let stored = self
            .store
            .append_event(&NewEvent {
                session_id,
                event: event.name(),
                data: &data,
                now: OffsetDateTime::now_utc(),
                latest_message: latest_message.as_deref(),
                count_unread: event.counts_unread(),
            })
            .await?;
        match serde_json::to_string(&stored) {
            Ok(payload) => {
                if let Err(error) = self
                    .bus
                    .publish(&topics::session(session_id), &payload)
                    .await
                {
                    tracing::warn!(%error, session_id = %session_id, "event bus publish failed");
                }
            }
            Err(error) => tracing::error!(%error, "event not serialisable"),
        }
        if event.changes_session_list() {
            self.sessions_changed(user_id, session_id).await;
        }
        Ok(stored)
    }

    /// Tells the user's open session lists to refresh.
    pub async fn sessions_changed(&self, user_id: UserId, session_id: SessionId) {
        if let Err(error) = self
            .bus
            .publish(&topics::user_sessions(user_id), &session_id.to_string())
            .await
        {
            tracing::warn!(%error, "event bus publish failed");
        }
    }

    /// Tells the session's open streams it was deleted (a message that is not an event).
    pub async fn session_gone(&self, session_id: SessionId) {
        if let Err(error) = self
            .bus
            .publish(&topics::session(session_id), "deleted")
            .await
        {
            tracing::warn!(%error, "event bus publish failed");
        }
    }

    /// Wakes the workers (a run was queued) or tells them to stop one (`cancel:<run id>`).
    pub async fn signal_workers(&self, message: &str) {
        if let Err(error) = self.bus.publish(topics::RUNS, message).await {
            tracing::warn!(%error, "event bus publish failed");
        }
    }
}
