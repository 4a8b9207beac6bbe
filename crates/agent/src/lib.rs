//! The plan-act agent and the worker that runs it.
//!
//! A run is one user message handed to the agent. The [`worker::RunWorker`] claims queued
//! runs from the run queue, keeps their lease alive and hands each to the [`flow::Agent`],
//! which plans (`create_plan`), executes each step with tools until the model calls
//! `complete_step`, re-plans (`update_plan`) and finally writes a summary. Every step of the
//! way is an event in the session's log, and the agent's memory is saved after every tool
//! result so another worker can continue the run.

pub mod config;
pub mod context;
pub mod flow;
pub mod memory;
pub mod plan;
pub mod prompts;
pub mod tools;
pub mod worker;

pub use config::AgentConfig;
pub use flow::{Agent, RunEnd};
pub use worker::{RunWorker, WorkerConfig};
