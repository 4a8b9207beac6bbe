//! The event bus port: fan-out of "something happened" messages to every instance. The
//! in-process implementation serves one process; the Redis one (pub/sub) serves a cluster.
//! Messages are hints for live delivery: whoever needs completeness (the chat stream)
//! re-reads the event log, so a message lost on a broken connection costs latency, not data.

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast;

/// The topics Ironhand publishes on.
pub mod topics {
    use crate::ids::{SessionId, UserId};

    /// A session's stored events (payload: the `StoredEvent` as JSON).
    pub fn session(id: SessionId) -> String {
        format!("session:{id}")
    }

    /// A user's session list changed (payload: the session id).
    pub fn user_sessions(id: UserId) -> String {
        format!("user-sessions:{id}")
    }

    /// A run was queued or asked to stop (payload: the run id); workers wake up on it.
    pub const RUNS: &str = "runs";

    /// Changes to a user's subscription or usage (the payload is unused: readers re-read).
    pub fn billing(id: UserId) -> String {
        format!("billing:{id}")
    }
}

/// Live messages of one topic, from the moment of subscribing. A receiver that falls
/// behind gets `RecvError::Lagged` and must catch up from the source of truth.
pub struct BusSubscription {
    pub receiver: broadcast::Receiver<Arc<str>>,
}

/// What a bus can report (its cause kept as the source, for the log).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The backend (Redis) failed or cannot be reached.
    #[error("event bus unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BusError {
    pub fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(cause))
    }
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), BusError>;
    async fn subscribe(&self, topic: &str) -> Result<BusSubscription, BusError>;
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;
}

/// The local fan-out both implementations use: one broadcast channel per topic with
/// subscribers, dropped when its last subscriber goes.
#[derive(Default)]
pub struct LocalTopics {
    channels: std::sync::Mutex<std::collections::HashMap<String, broadcast::Sender<Arc<str>>>>,
}

/// Messages a slow subscriber may fall behind before it is told it lagged.
const CHANNEL_CAPACITY: usize = 256;

impl LocalTopics {
    pub fn subscribe(&self, topic: &str) -> BusSubscription {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Channels whose subscribers have all gone are dropped here, so the map only
        // holds topics someone listens to.
        channels.retain(|_, sender| sender.receiver_count() > 0);
        let sender = channels
            .entry(topic.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0);
        BusSubscription {
            receiver: sender.subscribe(),
        }
    }

    /// Delivers to this process's subscribers of `topic`.
    pub fn deliver(&self, topic: &str, payload: Arc<str>) {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = channels.get(topic)
            && sender.send(payload).is_err()
        {
            channels.remove(topic);
        }
    }

    /// Drops channels nobody listens to any more.
    pub fn prune(&self) {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        channels.retain(|_, sender| sender.receiver_count() > 0);
    }

    pub fn subscriber_count(&self) -> usize {
        let channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        channels
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_without_subscribers_do_not_accumulate() {
        let topics = LocalTopics::default();
        for i in 0..100 {
            drop(topics.subscribe(&format!("session:{i}")));
        }
        let kept = topics.subscribe("session:last");
        let channels = topics.channels.lock().map(|c| c.len()).unwrap_or(0);
        assert_eq!(channels, 1);
        topics.deliver("session:last", Arc::from("hello"));
        let mut receiver = kept.receiver;
        assert_eq!(receiver.try_recv().ok().as_deref(), Some("hello"));
    }
}
