//! Budgets of one run. Hitting one ends the run with a clear error.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Most plan steps one run may execute.
    pub max_steps: usize,
    /// Most tool calls while working on one step.
    pub max_tool_calls_per_step: usize,
    /// Most LLM tokens (prompt + completion) one run may use.
    pub max_run_tokens: u64,
    /// Longest wall time of one run.
    pub max_run_time: Duration,
    /// Largest tool result text handed back to the model, in characters.
    pub max_tool_result_chars: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_steps: 20,
            max_tool_calls_per_step: 40,
            max_run_tokens: 2_000_000,
            max_run_time: Duration::from_secs(60 * 60),
            max_tool_result_chars: 20_000,
        }
    }
}
