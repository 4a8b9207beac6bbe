//! Redis denylist: `SET <prefix>deny:<jti> 1 PX <ttl>`; every instance checks the same key.

use crate::infra::redis::RedisHandle;
use async_trait::async_trait;
use ironhand_core::ports::TokenDenylist;
use std::time::Duration;

pub struct RedisDenylist {
    redis: RedisHandle,
}

impl RedisDenylist {
    pub fn new(redis: RedisHandle) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl TokenDenylist for RedisDenylist {
    async fn deny(&self, jti: &str, ttl: Duration) -> Result<(), String> {
        let mut conn = self.redis.conn.clone();
        redis::cmd("SET")
            .arg(self.redis.key(&format!("deny:{jti}")))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn is_denied(&self, jti: &str) -> Result<bool, String> {
        let mut conn = self.redis.conn.clone();
        redis::cmd("EXISTS")
            .arg(self.redis.key(&format!("deny:{jti}")))
            .query_async::<bool>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
}
