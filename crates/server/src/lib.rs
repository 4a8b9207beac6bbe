//! The `ironhand` server: HTTP routes and middleware, infrastructure adapters, config and
//! the command line. Business rules live in `ironhand-core`, storage in `ironhand-db`.

pub mod agent_setup;
pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod infra;
pub mod jobs;
pub mod routes;
pub mod secrets;
pub mod services;
pub mod telemetry;
pub mod web_app;

pub use app::{AppState, router, serve};
pub use config::Settings;
