//! In-process bus: a publish reaches this process's subscribers only.

use async_trait::async_trait;
use ironhand_core::ports::event_bus::{BusSubscription, LocalTopics};
use ironhand_core::ports::{BusError, EventBus};
use std::sync::Arc;

#[derive(Default)]
pub struct MemoryBus {
    topics: LocalTopics,
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), BusError> {
        self.topics.deliver(topic, Arc::from(payload));
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<BusSubscription, BusError> {
        Ok(self.topics.subscribe(topic))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
