//! In-process denylist: a map from an ended login to the moment it can be forgotten.

use async_trait::async_trait;
use ironhand_core::ports::{DenylistError, TokenDenylist};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Default)]
pub struct MemoryDenylist {
    until: Mutex<HashMap<Uuid, Instant>>,
}

impl MemoryDenylist {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> DenylistError {
    DenylistError::Unavailable("denylist lock poisoned".into())
}

#[async_trait]
impl TokenDenylist for MemoryDenylist {
    async fn deny_login(&self, family: Uuid, ttl: Duration) -> Result<(), DenylistError> {
        let now = Instant::now();
        let mut map = self.until.lock().map_err(poisoned)?;
        map.retain(|_, until| *until > now);
        let until = map.entry(family).or_insert(now);
        *until = (*until).max(now + ttl);
        Ok(())
    }

    async fn is_login_denied(&self, family: Uuid) -> Result<bool, DenylistError> {
        let map = self.until.lock().map_err(poisoned)?;
        Ok(map
            .get(&family)
            .is_some_and(|until| *until > Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn denied_until_ttl() {
        let d = MemoryDenylist::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(!d.is_login_denied(a).await.expect("check"));
        d.deny_login(a, Duration::from_millis(500))
            .await
            .expect("deny");
        assert!(d.is_login_denied(a).await.expect("check"));
        assert!(!d.is_login_denied(b).await.expect("check"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!d.is_login_denied(a).await.expect("check"));
    }
}
