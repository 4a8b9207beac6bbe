//! In-process GCRA: one "theoretical arrival time" per key. Keys whose time has passed carry
//! no information and are pruned as the map grows.

use async_trait::async_trait;
use ironhand_core::ports::{Quota, RateDecision, RateLimiter};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expired keys are swept at most this often, so the sweep's cost is spread thin.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

struct State {
    tat: HashMap<String, Instant>,
    last_prune: Instant,
}

pub struct MemoryRateLimiter {
    state: Mutex<State>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                tat: HashMap::new(),
                last_prune: Instant::now(),
            }),
        }
    }
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn decide(&self, key: &str, quota: Quota, now: Instant) -> RateDecision {
        let Ok(mut state) = self.state.lock() else {
            return RateDecision::Allowed;
        };
        if now.duration_since(state.last_prune) >= PRUNE_EVERY {
            state.tat.retain(|_, tat| *tat > now);
            state.last_prune = now;
        }
        let interval = quota.emission_interval();
        let tat = state
            .tat
            .get(key)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        let new_tat = tat + interval;
        // Admit while the schedule is at most one full period ahead of now (burst = count).
        let ahead = new_tat.duration_since(now);
        if ahead > quota.period {
            return RateDecision::Limited {
                retry_after: round_up(ahead - quota.period),
            };
        }
        state.tat.insert(key.to_string(), new_tat);
        RateDecision::Allowed
    }
}

/// Waits are reported in whole seconds, rounded up, never zero.
pub(crate) fn round_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> RateDecision {
        self.decide(key, quota, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let l = MemoryRateLimiter::new();
        let q = Quota::per_minute(5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.decide("k", q, t0), RateDecision::Allowed);
        }
        match l.decide("k", q, t0) {
            RateDecision::Limited { retry_after } => {
                assert_eq!(retry_after, Duration::from_secs(12))
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        assert_eq!(l.decide("other", q, t0), RateDecision::Allowed);
        assert_eq!(
            l.decide("k", q, t0 + Duration::from_secs(12)),
            RateDecision::Allowed
        );
        assert!(matches!(
            l.decide("k", q, t0 + Duration::from_secs(12)),
            RateDecision::Limited { .. }
        ));
        // A full period later the whole burst is back.
        let later = t0 + Duration::from_secs(80);
        // By then "k" and "other" have expired and are swept.
        l.decide("sweep", q, later);
        assert_eq!(l.state.lock().map(|s| s.tat.len()).unwrap_or(0), 1);
        for _ in 0..5 {
            assert_eq!(l.decide("k", q, later), RateDecision::Allowed);
        }
    }
}
