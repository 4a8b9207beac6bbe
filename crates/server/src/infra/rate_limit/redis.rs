//! GCRA in Redis: one Lua script, timed by the Redis clock so instances with skewed clocks
//! still agree. The key holds the theoretical arrival time in microseconds.

use crate::infra::redis::RedisHandle;
use async_trait::async_trait;
use ironhand_core::ports::{Quota, RateDecision, RateLimiter};
use std::time::Duration;

const GCRA: &str = r#"
local period = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
"#;

pub struct RedisRateLimiter {
    redis: RedisHandle,
    script: redis::Script,
}

impl RedisRateLimiter {
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis,
            script: redis::Script::new(GCRA),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> RateDecision {
        let mut conn = self.redis.conn.clone();
        let result: Result<i64, _> = self
            .script
            .key(self.redis.key(&format!("rl:{key}")))
            .arg(quota.period.as_micros() as u64)
            .arg(quota.emission_interval().as_micros() as u64)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok(0) => RateDecision::Allowed,
            Ok(wait_us) => RateDecision::Limited {
                retry_after: super::memory::round_up(Duration::from_micros(wait_us.max(1) as u64)),
            },
            Err(e) => {
                // Availability over strictness: a Redis outage must not lock everyone out.
                tracing::error!(error = %e, "rate limiter unavailable; allowing the request");
                metrics::counter!("rate_limiter_errors_total").increment(1);
                RateDecision::Allowed
            }
        }
    }
}
