//! One delivery at a time per provider event id, on this instance: Stripe retries, and a
//! burst of deliveries of one event must cost one look at the provider, not one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub(super) struct EventTurns {
    waiting: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The turn of one delivery; the next delivery of the same event waits for its drop.
pub(super) struct EventTurn<'a> {
    turns: &'a EventTurns,
    event_id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl EventTurns {
    fn waiting(&self) -> MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until no other delivery of `event_id` is being handled here.
    pub(super) async fn take(&self, event_id: &str) -> EventTurn<'_> {
        let lock = self
            .waiting()
            .entry(event_id.to_owned())
            .or_default()
            .clone();
        EventTurn {
            turns: self,
            event_id: event_id.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for EventTurn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut waiting = self.turns.waiting();
        // Only the map holds it: nobody waits, the entry can go.
        if waiting
            .get(&self.event_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            waiting.remove(&self.event_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn deliveries_of_one_event_take_turns_and_leave_nothing_behind() {
        let turns = Arc::new(EventTurns::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (turns, inside) = (turns.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = turns.take("evt_1").await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "one at a time");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        let _other = turns.take("evt_2").await;
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(turns.waiting().len(), 1, "only evt_2 is still held");
    }
}
