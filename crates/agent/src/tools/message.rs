//! The message family: `message_notify_user` and `message_ask_user`. Calling one only
//! validates it; what it does to the run (a `message` event, a pause for the reply) is the
//! step loop's business.

use super::{ToolContext, ToolFamily, ToolOutcome, required_str, spec};
use async_trait::async_trait;
use ironhand_llm::ToolSpec;
use serde_json::{Value, json};

pub struct MessageTools;

#[async_trait]
impl ToolFamily for MessageTools {
    fn group(&self) -> &'static str {
        "message"
    }

    async fn specs(&self, _context: &ToolContext) -> Vec<ToolSpec> {
        vec![
            spec(
                "message_notify_user",
                "Tell the user something without waiting for an answer.",
                json!({"text": {"type": "string"}}),
                &["text"],
            ),
            spec(
                "message_ask_user",
                "Ask the user a question and wait for the answer.",
                json!({"text": {"type": "string"}, "attachments": {"type": "array", "items": {"type": "string"}},
                       "suggest_user_takeover": {"type": "string", "enum": ["none", "browser"]}}),
                &["text"],
            ),
        ]
    }

    async fn call(&self, _context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        match function {
            "message_notify_user" | "message_ask_user" => match required_str(args, "text") {
                Ok(text) if !text.trim().is_empty() => {
                    ToolOutcome::ok("Delivered to the user.", json!({}), None)
                }
                Ok(_) => ToolOutcome::failed("`text` must not be empty."),
                Err(failed) => failed,
            },
            other => ToolOutcome::failed(format!("Unknown tool `{other}`.")),
        }
    }
}
