//! The `RateLimiter` port: GCRA in this process, or in Redis (Lua, Redis clock) so every
//! instance shares the same budget.

pub mod memory;
pub mod redis;

pub use memory::MemoryRateLimiter;
pub use redis::RedisRateLimiter;
