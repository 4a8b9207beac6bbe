//! The `EventBus` port: live fan-out of stored events and wake-ups, within this process or
//! across instances through Redis pub/sub.

pub mod memory;
pub mod redis;

pub use memory::MemoryBus;
pub use redis::RedisBus;
