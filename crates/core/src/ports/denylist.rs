//! Revoked access tokens (by `jti`), remembered until they would have expired anyway.

use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait TokenDenylist: Send + Sync {
    async fn deny(&self, jti: &str, ttl: Duration) -> Result<(), String>;
    async fn is_denied(&self, jti: &str) -> Result<bool, String>;
}
