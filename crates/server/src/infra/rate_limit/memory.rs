//! In-process GCRA: one "theoretical arrival time" per key. Keys whose time has passed carry
//! no information and are pruned as the map grows.

use async_trait::async_trait;
use ironhand_core::ports::{Quota, RateDecision, RateLimiter};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PRUNE_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct MemoryRateLimiter {
    tat: Mutex<HashMap<String, Instant>>,
}

impl MemoryRateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn decide(&self, key: &str, quota: Quota, now: Instant) -> RateDecision {
        let Ok(mut map) = self.tat.lock() else {
            return RateDecision::Allowed;
        };
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, tat| *tat > now);
        }
        let interval = quota.emission_interval();
        let tat = map.get(key).copied().filter(|t| *t > now).unwrap_or(now);
        let new_tat = tat + interval;
        // Admit while the schedule is at most one full period ahead of now (burst = count).
        let allow_at = new_tat.checked_sub(quota.period).unwrap_or(now);
        if allow_at > now {
            return RateDecision::Limited {
                retry_after: round_up(allow_at - now),
            };
        }
        map.insert(key.to_string(), new_tat);
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
        for _ in 0..5 {
            assert_eq!(l.decide("k", q, later), RateDecision::Allowed);
        }
    }
}
