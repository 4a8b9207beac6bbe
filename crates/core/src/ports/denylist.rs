//! Ended logins: a login (a refresh-token family, the `fam` claim of every access token it
//! issued) on this list has all of its access tokens refused, until they would have expired
//! anyway.

use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DenylistError {
    /// The backend failed or cannot be reached (the text is for the log, not for users).
    #[error("token denylist unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait TokenDenylist: Send + Sync {
    /// Refuses every access token of the login `family` for `ttl`.
    async fn deny_login(&self, family: Uuid, ttl: Duration) -> Result<(), DenylistError>;
    async fn is_login_denied(&self, family: Uuid) -> Result<bool, DenylistError>;
}
