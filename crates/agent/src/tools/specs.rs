//! JSON schemas of the tools, by the names and parameters api.md fixes.

use ironhand_llm::ToolSpec;
use serde_json::{Value, json};

fn spec(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    }
}

pub fn sandbox_tools() -> Vec<ToolSpec> {
    let shell_id = json!({"type": "string", "description": "Shell session id; commands of one id share cwd and environment"});
    let sudo = json!({"type": "boolean", "description": "Unused: the sandbox has no sudo"});
    vec![
        spec(
            "shell_exec",
            "Run a shell command in a shell session. Long commands return while still running; then use shell_wait or shell_view.",
            json!({"id": shell_id, "exec_dir": {"type": "string", "description": "Absolute directory to run in, e.g. /home/ubuntu"}, "command": {"type": "string"}}),
            &["id", "exec_dir", "command"],
        ),
        spec(
            "shell_view",
            "Show the output and state of a shell session.",
            json!({"id": shell_id}),
            &["id"],
        ),
        spec(
            "shell_wait",
            "Wait for the running command of a shell session to finish.",
            json!({"id": shell_id, "seconds": {"type": "integer", "description": "Longest wait in seconds"}}),
            &["id"],
        ),
        spec(
            "shell_write_to_process",
            "Write input to the running command of a shell session.",
            json!({"id": shell_id, "input": {"type": "string"}, "press_enter": {"type": "boolean"}}),
            &["id", "input", "press_enter"],
        ),
        spec(
            "shell_kill_process",
            "Kill the running command of a shell session.",
            json!({"id": shell_id}),
            &["id"],
        ),
        spec(
            "file_read",
            "Read a text file, optionally a range of lines (0-based, end exclusive).",
            json!({"file": {"type": "string"}, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}, "sudo": sudo}),
            &["file"],
        ),
        spec(
            "file_write",
            "Write (or append to) a text file; parent directories are created.",
            json!({"file": {"type": "string"}, "content": {"type": "string"}, "append": {"type": "boolean"},
                   "leading_newline": {"type": "boolean"}, "trailing_newline": {"type": "boolean"}, "sudo": sudo}),
            &["file", "content"],
        ),
        spec(
            "file_str_replace",
            "Replace every occurrence of a string in a file.",
            json!({"file": {"type": "string"}, "old_str": {"type": "string"}, "new_str": {"type": "string"}, "sudo": sudo}),
            &["file", "old_str", "new_str"],
        ),
        spec(
            "file_find_in_content",
            "Find the lines of a file that match a regular expression.",
            json!({"file": {"type": "string"}, "regex": {"type": "string"}, "sudo": sudo}),
            &["file", "regex"],
        ),
        spec(
            "file_find_by_name",
            "Find files under a directory whose name matches a glob.",
            json!({"path": {"type": "string"}, "glob": {"type": "string"}}),
            &["path", "glob"],
        ),
    ]
}

pub fn message_tools() -> Vec<ToolSpec> {
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

pub fn search_tool() -> ToolSpec {
    spec(
        "info_search_web",
        "Search the web.",
        json!({"query": {"type": "string"}, "date_range": {"type": "string",
            "enum": ["all", "past_hour", "past_day", "past_week", "past_month", "past_year"]}}),
        &["query"],
    )
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
