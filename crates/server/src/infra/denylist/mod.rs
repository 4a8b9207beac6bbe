//! The `TokenDenylist` port: ended logins, whose access tokens are refused, in this process
//! or in Redis (so a logout on one instance is seen by every instance at once).

pub mod memory;
pub mod redis;

pub use memory::MemoryDenylist;
pub use redis::RedisDenylist;
