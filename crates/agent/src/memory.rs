//! The agent's memory of a session: the plan, where the work stands, and the executor's
//! conversation with the model. Saved after every tool result, so a reply to a question
//! or another worker (after a crash) continues exactly here.

use ironhand_core::session::event::PlanStep;
use ironhand_llm::ChatMessage;
use serde::{Deserialize, Serialize};

/// Bumped when the shape changes incompatibly; an unknown version starts afresh.
pub const MEMORY_VERSION: u32 = 1;
/// Earlier tasks of the session kept as context for the next one.
const EARLIER_TASKS_KEPT: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Planning,
    /// Working on `steps[index]`.
    Executing {
        index: usize,
    },
    /// Paused on `message_ask_user` while on `steps[index]`; the reply answers `tool_call_id`.
    Waiting {
        index: usize,
        tool_call_id: String,
    },
    /// A step finished; the planner revises the rest.
    Updating,
    Summarizing,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub step_id: String,
    pub description: String,
    pub success: bool,
    pub result: String,
    pub attachments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlierTask {
    pub task: String,
    pub answer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentMemory {
    pub version: u32,
    /// The run this memory belongs to: a claimed run continues only its own memory.
    #[serde(default)]
    pub run_id: String,
    /// Whether the run's user message is in the event log (stored once, even on resume).
    #[serde(default)]
    pub message_stored: bool,
    pub task: String,
    pub title: String,
    pub goal: String,
    pub language: String,
    pub steps: Vec<PlanStep>,
    pub results: Vec<StepResult>,
    pub phase: Phase,
    /// The executor's conversation about the current step.
    pub messages: Vec<ChatMessage>,
    pub tool_calls_in_step: usize,
    pub steps_executed: usize,
    /// Tokens used by the current run (reset when a run starts).
    pub run_tokens: u64,
    pub planner_retries: u32,
    pub earlier: Vec<EarlierTask>,
}

impl AgentMemory {
    /// Memory for a new task, carrying the session's earlier tasks as context.
    pub fn new_task(task: &str, previous: Option<AgentMemory>) -> Self {
        let mut earlier = previous.map(|m| m.earlier_with_self()).unwrap_or_default();
        if earlier.len() > EARLIER_TASKS_KEPT {
            earlier.drain(..earlier.len() - EARLIER_TASKS_KEPT);
        }
        Self {
            version: MEMORY_VERSION,
            run_id: String::new(),
            message_stored: false,
            task: task.to_string(),
            title: String::new(),
            goal: String::new(),
            language: String::new(),
            steps: Vec::new(),
            results: Vec::new(),
            phase: Phase::Planning,
            messages: Vec::new(),
            tool_calls_in_step: 0,
            steps_executed: 0,
            run_tokens: 0,
            planner_retries: 0,
            earlier,
        }
    }

    fn earlier_with_self(self) -> Vec<EarlierTask> {
        let mut earlier = self.earlier;
        if !self.task.is_empty() {
            let answer = self
                .results
                .iter()
                .map(|r| r.result.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            earlier.push(EarlierTask {
                task: self.task,
                answer: crate::plan::truncate_chars(&answer, 2_000),
            });
        }
        earlier
    }

    pub fn from_json(value: serde_json::Value) -> Option<Self> {
        serde_json::from_value::<Self>(value)
            .ok()
            .filter(|m| m.version == MEMORY_VERSION)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
