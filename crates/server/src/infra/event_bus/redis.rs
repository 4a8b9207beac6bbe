//! Redis bus: `PUBLISH <prefix>bus:<topic>`; every instance holds one pattern subscription
//! (`<prefix>bus:*`) and fans messages out to its local subscribers. The subscription
//! reconnects on its own; what it misses while down, readers recover from the event log.

use crate::infra::redis::{RedisHandle, RedisSetupError};
use async_trait::async_trait;
use futures::StreamExt;
use ironhand_core::ports::event_bus::{BusSubscription, LocalTopics};
use ironhand_core::ports::{BusError, EventBus};
use std::sync::Arc;
use std::time::Duration;

pub struct RedisBus {
    redis: RedisHandle,
    topics: Arc<LocalTopics>,
    listener: tokio::task::JoinHandle<()>,
}

impl RedisBus {
    /// Opens the pattern subscription before returning, so nothing published afterwards is
    /// missed by this instance.
    pub async fn start(redis: RedisHandle, url: &str) -> Result<Self, RedisSetupError> {
        let client = redis::Client::open(url).map_err(RedisSetupError::Url)?;
        let pattern = redis.key("bus:*");
        let strip = redis.key("bus:");
        let topics = Arc::new(LocalTopics::default());
        let first = subscribe(&client, &pattern).await?;
        let listener = tokio::spawn(listen(client, pattern, strip, first, topics.clone()));
        Ok(Self {
            redis,
            topics,
            listener,
        })
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn subscribe(
    client: &redis::Client,
    pattern: &str,
) -> Result<redis::aio::PubSub, RedisSetupError> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(RedisSetupError::PubSub)?;
    pubsub
        .psubscribe(pattern)
        .await
        .map_err(RedisSetupError::Subscribe)?;
    Ok(pubsub)
}

async fn listen(
    client: redis::Client,
    pattern: String,
    strip: String,
    first: redis::aio::PubSub,
    topics: Arc<LocalTopics>,
) {
    let mut pubsub = Some(first);
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &pattern).await {
                Ok(p) => {
                    tracing::info!("redis event bus resubscribed");
                    p
                }
                Err(error) => {
                    tracing::warn!(%error, "redis event bus: retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let mut messages = current.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(topic) = message.get_channel_name().strip_prefix(strip.as_str()) else {
                continue;
            };
            let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
                continue;
            };
            topics.deliver(topic, Arc::from(payload));
        }
        tracing::warn!("redis event bus connection lost");
        topics.prune();
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), BusError> {
        let mut conn = self.redis.conn.clone();
        redis::cmd("PUBLISH")
            .arg(self.redis.key(&format!("bus:{topic}")))
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(BusError::unavailable)
    }

    async fn subscribe(&self, topic: &str) -> Result<BusSubscription, BusError> {
        Ok(self.topics.subscribe(topic))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
