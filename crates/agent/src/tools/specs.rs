//! Building a tool's JSON schema, and the schemas of the flow's own tools (the planner's
//! `create_plan`/`update_plan`, the executor's `complete_step`).

use ironhand_llm::ToolSpec;
use serde_json::{Value, json};

/// A tool whose parameters are one JSON object.
pub fn spec(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    }
}

pub fn complete_step_spec() -> ToolSpec {
    spec(
        "complete_step",
        "Report that the current step is finished (or cannot be finished).",
        json!({"success": {"type": "boolean"}, "result": {"type": "string", "description": "What the step achieved"},
               "attachments": {"type": "array", "items": {"type": "string"}, "description": "Paths of files for the user"}}),
        &["success", "result"],
    )
}

fn steps_schema() -> Value {
    json!({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "description": {"type": "string"}}, "required": ["id", "description"]}})
}

pub fn create_plan_spec() -> ToolSpec {
    spec(
        "create_plan",
        "Create the plan for the task.",
        json!({"title": {"type": "string"}, "goal": {"type": "string"}, "language": {"type": "string"}, "steps": steps_schema()}),
        &["title", "goal", "language", "steps"],
    )
}

pub fn update_plan_spec() -> ToolSpec {
    spec(
        "update_plan",
        "Replace the remaining steps; an empty list means the goal is reached.",
        json!({"steps": steps_schema()}),
        &["steps"],
    )
}
