//! Adapters for the ports of `ironhand-core`: each port a folder, its embedded and
//! scale-out implementations side by side.

pub mod denylist;
pub mod event_bus;
pub mod mailer;
pub mod payments;
pub mod rate_limit;
pub mod redis;
