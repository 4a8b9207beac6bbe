//! In-process denylist: a map from `jti` to the moment it can be forgotten.

use async_trait::async_trait;
use ironhand_core::ports::TokenDenylist;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct MemoryDenylist {
    until: Mutex<HashMap<String, Instant>>,
}

impl MemoryDenylist {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TokenDenylist for MemoryDenylist {
    async fn deny(&self, jti: &str, ttl: Duration) -> Result<(), String> {
        let now = Instant::now();
        let mut map = self
            .until
            .lock()
            .map_err(|_| "denylist lock poisoned".to_string())?;
        map.retain(|_, until| *until > now);
        map.insert(jti.to_string(), now + ttl);
        Ok(())
    }

    async fn is_denied(&self, jti: &str) -> Result<bool, String> {
        let map = self
            .until
            .lock()
            .map_err(|_| "denylist lock poisoned".to_string())?;
        Ok(map.get(jti).is_some_and(|until| *until > Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn denied_until_ttl() {
        let d = MemoryDenylist::new();
        assert!(!d.is_denied("a").await.expect("check"));
        d.deny("a", Duration::from_millis(500)).await.expect("deny");
        assert!(d.is_denied("a").await.expect("check"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!d.is_denied("a").await.expect("check"));
    }
}
