//! The conversation as the agent sees it, independent of any provider's wire format.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A function call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Raw JSON text as the model produced it (`{}` when the model sent nothing).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An assistant turn that called tools (content is whatever text came with the calls).
    pub fn assistant_with_tools(content: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.filter(|c| !c.is_empty()),
            tool_calls,
            tool_call_id: None,
        }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    Auto,
    Required,
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// The model's whole answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    /// `None` when the provider sent none (or an empty string).
    pub finish_reason: Option<String>,
    /// From the provider when it reported usage, otherwise estimated.
    pub usage: Usage,
}

/// What a caller watching the answer arrive receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A piece of assistant text, in order.
    TextDelta(String),
    /// The attempt failed after deltas were sent and is being retried: discard the deltas
    /// received so far.
    Restart,
}

/// Per-message overhead of the chat format (role markers, separators), in tokens.
const MESSAGE_OVERHEAD: usize = 4;

/// A cheap token estimate for context trimming: about one token per four bytes of text
/// (bytes rather than chars, which also roughly fits non-Latin scripts) plus a per-message
/// overhead.
pub fn estimate_tokens(messages: &[ChatMessage]) -> usize {
    let text_tokens = |s: &str| s.len().div_ceil(4);
    3 + messages
        .iter()
        .map(|m| {
            MESSAGE_OVERHEAD
                + m.content.as_deref().map_or(0, text_tokens)
                + m.tool_call_id.as_deref().map_or(0, text_tokens)
                + m.tool_calls
                    .iter()
                    .map(|c| 3 + text_tokens(&c.name) + text_tokens(&c.arguments))
                    .sum::<usize>()
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_grows_with_text_and_counts_tool_calls() {
        let short = estimate_tokens(&[ChatMessage::user("hi")]);
        let long = estimate_tokens(&[ChatMessage::user("x".repeat(400))]);
        assert!(long >= short + 99, "{short} {long}");
        let with_call = estimate_tokens(&[ChatMessage::assistant_with_tools(
            None,
            vec![ToolCall {
                id: "c1".into(),
                name: "shell_exec".into(),
                arguments: "{\"command\": \"ls -la\"}".into(),
            }],
        )]);
        assert!(with_call > short);
    }

    #[test]
    fn messages_round_trip_through_serde() {
        let m = ChatMessage::tool_result("call_1", "ok");
        let json = serde_json::to_string(&m).expect("serialise");
        assert_eq!(
            json,
            r#"{"role":"tool","content":"ok","tool_call_id":"call_1"}"#
        );
        let back: ChatMessage = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, m);
    }
}
