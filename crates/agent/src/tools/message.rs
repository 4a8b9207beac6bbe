//! `message_notify_user` (the flow turns it into a `message` event) and the validation of
//! `message_ask_user` (the flow pauses the run on it).

use super::{ToolOutcome, required_str};
use serde_json::{Value, json};

pub fn call(function: &str, args: &Value) -> ToolOutcome {
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
