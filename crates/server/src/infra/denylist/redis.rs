//! Redis denylist: `SET <prefix>deny:login:<family> 1 PX <ttl>`; every instance checks the
//! same key.

use crate::infra::redis::RedisHandle;
use async_trait::async_trait;
use ironhand_core::ports::{DenylistError, TokenDenylist};
use std::time::Duration;
use uuid::Uuid;

pub struct RedisDenylist {
    redis: RedisHandle,
}

impl RedisDenylist {
    pub fn new(redis: RedisHandle) -> Self {
        Self { redis }
    }

    fn key(&self, family: Uuid) -> String {
        self.redis.key(&format!("deny:login:{}", family.simple()))
    }
}

fn unavailable(e: redis::RedisError) -> DenylistError {
    DenylistError::Unavailable(e.to_string())
}

#[async_trait]
impl TokenDenylist for RedisDenylist {
    async fn deny_login(&self, family: Uuid, ttl: Duration) -> Result<(), DenylistError> {
        let mut conn = self.redis.conn.clone();
        redis::cmd("SET")
            .arg(self.key(family))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn is_login_denied(&self, family: Uuid) -> Result<bool, DenylistError> {
        let mut conn = self.redis.conn.clone();
        redis::cmd("EXISTS")
            .arg(self.key(family))
            .query_async::<bool>(&mut conn)
            .await
            .map_err(unavailable)
    }
}
