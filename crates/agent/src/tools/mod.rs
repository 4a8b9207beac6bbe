//! The tools the executor is offered, by the names docs/api.md fixes (section The agent's
//! tools). Tools come in families (shell, file, message, search, browser, MCP): each family
//! brings its schemas and its handler, the [`ToolRegistry`] lists the families every
//! session gets, and a session's [`Toolbox`] routes each call to the family that offered it.
//! Each call returns `{success, message, data}` to the model and `content` for the `tool`
//! event; a tool that fails, or a name the model invented, is a failed result — never a
//! crashed run.

mod browser;
mod context;
mod family;
mod file;
mod mcp;
mod message;
mod search;
mod shell;
mod specs;
mod toolbox;

use ironhand_core::ports::sandbox::SandboxError;
use serde_json::{Value, json};

pub use browser::BrowserTools;
pub use context::ToolContext;
pub use family::ToolFamily;
pub use mcp::{McpHub, McpLimits, McpTools, PublicUrlPolicy};
pub use specs::{complete_step_spec, create_plan_spec, spec, update_plan_spec};
pub use toolbox::{ToolRegistry, Toolbox};

/// What one tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub success: bool,
    pub message: String,
    pub data: Value,
    /// The `content` of the `called` tool event (docs/api.md, SSE events, by tool group).
    pub content: Option<Value>,
}

impl ToolOutcome {
    pub fn ok(message: impl Into<String>, data: Value, content: Option<Value>) -> Self {
        Self {
            success: true,
            message: message.into(),
            data,
            content,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            data: Value::Null,
            content: None,
        }
    }

    /// The JSON text the model receives, capped at `max_chars`.
    pub fn for_model(&self, max_chars: usize) -> String {
        let text = json!({"success": self.success, "message": self.message, "data": self.data})
            .to_string();
        if text.chars().count() <= max_chars {
            return text;
        }
        // Cap the data, keep the verdict and the message readable.
        let data = crate::plan::truncate_chars(&self.data.to_string(), max_chars / 2);
        json!({
            "success": self.success,
            "message": crate::plan::truncate_chars(&self.message, max_chars / 4),
            "data": data,
            "note": "the result was too long and was cut",
        })
        .to_string()
    }
}

impl From<SandboxError> for ToolOutcome {
    fn from(error: SandboxError) -> Self {
        ToolOutcome::failed(error.to_string())
    }
}

/// The answer to a tool the session was not offered (or the model invented).
pub fn unknown_tool(function: &str) -> ToolOutcome {
    ToolOutcome::failed(format!(
        "Unknown tool `{}`. Use only the tools you were given.",
        crate::plan::truncate_chars(function, 80)
    ))
}

/// Reads a required string parameter.
pub(crate) fn required_str<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolOutcome> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolOutcome::failed(format!("Missing required string parameter `{key}`.")))
}

pub(crate) fn optional_bool(args: &Value, key: &str) -> bool {
    match args.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

pub(crate) fn optional_i64(args: &Value, key: &str) -> Option<i64> {
    match args.get(key) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_results_are_cut_but_stay_json() {
        let outcome = ToolOutcome::ok("done", json!({"output": "é".repeat(50_000)}), None);
        let text = outcome.for_model(1_000);
        let parsed: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed["success"], true);
        assert!(text.chars().count() < 1_500);
    }
}
