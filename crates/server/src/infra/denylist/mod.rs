//! The `TokenDenylist` port: revoked access-token ids, in this process or in Redis (so a
//! logout on one instance is seen by every instance at once).

pub mod memory;
pub mod redis;

pub use memory::MemoryDenylist;
pub use redis::RedisDenylist;
