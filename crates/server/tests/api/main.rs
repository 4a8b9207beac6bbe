//! HTTP tests against the real server (port 0), as an outside client would use it. One test
//! binary for link time; each test gets its own database (SQLite file or PostgreSQL
//! database) and its own Redis key prefix.

mod sse;
mod support;

mod admin;
pub mod agent;
mod auth_flow;
mod auth_providers;
mod billing;
mod cli;
mod connections;
mod connectors;
mod cookie_mode;
mod files;
mod http_basics;
mod live_view;
mod multi_instance;
mod password_reset;
mod rate_limits;
mod sessions;
mod web_app;
