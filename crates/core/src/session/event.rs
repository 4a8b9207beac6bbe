//! The events of a session as docs/api.md names them (section SSE events). Built here, stored
//! in the event log, then streamed: `name()` is the SSE event name and `data()` its fields
//! (the log adds `event_id` and `timestamp`).

use crate::session::takeover::TakeoverStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub id: String,
    pub description: String,
    pub status: StepStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolStatus {
    Calling,
    Called,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// `role` is `user` or `assistant`; `attachments` are `FileInfo` objects.
    Message {
        role: &'static str,
        content: String,
        attachments: Vec<Value>,
        /// The client's idempotency key, kept on the user's message so a retried POST can
        /// find where its run's events start.
        client_message_id: Option<String>,
    },
    MessageDelta {
        delta: String,
        /// The model's answer restarted (a retried request): text streamed so far is void.
        reset: bool,
    },
    Tool {
        tool_call_id: String,
        /// The tool group: `shell`, `file`, `search`, `message`, `browser`, `mcp`.
        name: String,
        function: String,
        args: Value,
        status: ToolStatus,
        content: Option<Value>,
    },
    Step(PlanStep),
    Plan {
        steps: Vec<PlanStep>,
    },
    Title {
        title: String,
    },
    Error {
        error: String,
    },
    Wait,
    /// The user took the browser over from the live view, or handed it back.
    Takeover {
        status: TakeoverStatus,
    },
    Done,
}

impl AgentEvent {
    pub fn user_message(content: &str, client_message_id: Option<&str>) -> Self {
        Self::Message {
            role: "user",
            content: content.to_string(),
            attachments: Vec::new(),
            client_message_id: client_message_id.map(str::to_string),
        }
    }

    pub fn assistant_message(content: &str) -> Self {
        Self::assistant_message_with(content, Vec::new())
    }

    /// An assistant message with files (`FileInfo` objects, signed URLs added when read).
    pub fn assistant_message_with(content: &str, attachments: Vec<Value>) -> Self {
        Self::Message {
            role: "assistant",
            content: content.to_string(),
            attachments,
            client_message_id: None,
        }
    }

    /// The user's message with the files they attached.
    pub fn user_message_with(
        content: &str,
        client_message_id: Option<&str>,
        attachments: Vec<Value>,
    ) -> Self {
        Self::Message {
            role: "user",
            content: content.to_string(),
            attachments,
            client_message_id: client_message_id.map(str::to_string),
        }
    }

    pub fn error(sentence: impl Into<String>) -> Self {
        Self::Error {
            error: sentence.into(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::MessageDelta { .. } => "message_delta",
            Self::Tool { .. } => "tool",
            Self::Step(_) => "step",
            Self::Plan { .. } => "plan",
            Self::Title { .. } => "title",
            Self::Error { .. } => "error",
            Self::Wait => "wait",
            Self::Takeover { .. } => "takeover",
            Self::Done => "done",
        }
    }

    pub fn data(&self) -> Value {
        match self {
            Self::Message {
                role,
                content,
                attachments,
                client_message_id,
            } => {
                let mut data =
                    json!({"role": role, "content": content, "attachments": attachments});
                if let Some(id) = client_message_id {
                    data["client_message_id"] = Value::String(id.clone());
                }
                data
            }
            Self::MessageDelta { delta, reset } => {
                let mut data = json!({"role": "assistant", "delta": delta});
                if *reset {
                    data["reset"] = Value::Bool(true);
                }
                data
            }
            Self::Tool {
                tool_call_id,
                name,
                function,
                args,
                status,
                content,
            } => {
                let mut data = json!({
                    "tool_call_id": tool_call_id, "name": name, "function": function,
                    "args": args, "status": status,
                });
                if let Some(content) = content {
                    data["content"] = content.clone();
                }
                data
            }
            Self::Step(step) => {
                json!({"id": step.id, "description": step.description, "status": step.status})
            }
            Self::Plan { steps } => json!({ "steps": steps }),
            Self::Title { title } => json!({ "title": title }),
            Self::Error { error } => json!({ "error": error }),
            Self::Takeover { status } => json!({ "status": status.as_str() }),
            Self::Wait | Self::Done => json!({}),
        }
    }

    /// What the session list shows as its latest message, for `message` events.
    pub fn latest_message(&self) -> Option<&str> {
        match self {
            Self::Message { content, .. } => Some(content.as_str()),
            _ => None,
        }
    }

    /// Assistant messages count as unread until the owner opens the session.
    pub fn counts_unread(&self) -> bool {
        matches!(
            self,
            Self::Message {
                role: "assistant",
                ..
            }
        )
    }

    /// Events that change what the session list shows.
    pub fn changes_session_list(&self) -> bool {
        matches!(
            self,
            Self::Message { .. }
                | Self::Title { .. }
                | Self::Wait
                | Self::Done
                | Self::Error { .. }
        )
    }
}
