//! The shell family: commands in named shell sessions of the session's sandbox.

use super::{
    ToolContext, ToolFamily, ToolOutcome, optional_bool, optional_i64, required_str, spec,
};
use async_trait::async_trait;
use ironhand_core::ports::Sandbox;
use ironhand_core::ports::sandbox::{SANDBOX_HOME, ShellOutcome};
use ironhand_llm::ToolSpec;
use serde_json::{Value, json};
use std::time::Duration;

pub struct ShellTools;

#[async_trait]
impl ToolFamily for ShellTools {
    fn group(&self) -> &'static str {
        "shell"
    }

    async fn specs(&self, _context: &ToolContext) -> Vec<ToolSpec> {
        let shell_id = json!({"type": "string", "description": "Shell session id; commands of one id share cwd and environment"});
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
        ]
    }

    async fn call(&self, context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        match context.sandbox().await {
            Ok(sandbox) => run(sandbox.as_ref(), function, args).await,
            Err(error) => error.into(),
        }
    }

    /// Kills the command a cancelled call was waiting on.
    async fn interrupt(&self, context: &ToolContext, function: &str, args: &Value) {
        if function == "shell_kill_process" {
            return;
        }
        let (Some(sandbox), Some(id)) = (
            context.started_sandbox(),
            args.get("id").and_then(Value::as_str),
        ) else {
            return;
        };
        let kill = sandbox.shell_kill(id);
        if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(5), kill).await {
            tracing::debug!(%error, "could not kill the interrupted command");
        }
    }
}

async fn run(sandbox: &dyn Sandbox, function: &str, args: &Value) -> ToolOutcome {
    let id = match required_str(args, "id") {
        Ok(id) if !id.trim().is_empty() && id.len() <= 64 => id,
        Ok(_) => return ToolOutcome::failed("`id` must be a short non-empty name."),
        Err(failed) => return failed,
    };
    let result = match function {
        "shell_exec" => {
            let command = match required_str(args, "command") {
                Ok(c) => c,
                Err(failed) => return failed,
            };
            let dir = args
                .get("exec_dir")
                .and_then(Value::as_str)
                .unwrap_or(SANDBOX_HOME);
            sandbox.shell_exec(id, dir, command).await
        }
        "shell_view" => sandbox.shell_view(id).await,
        "shell_wait" => {
            let seconds = optional_i64(args, "seconds").map(|s| s.clamp(0, 3_600) as u64);
            sandbox.shell_wait(id, seconds).await
        }
        "shell_write_to_process" => {
            let input = match required_str(args, "input") {
                Ok(i) => i,
                Err(failed) => return failed,
            };
            sandbox
                .shell_write(id, input, optional_bool(args, "press_enter"))
                .await
        }
        "shell_kill_process" => sandbox.shell_kill(id).await,
        other => return ToolOutcome::failed(format!("Unknown tool `{other}`.")),
    };
    match result {
        Ok(outcome) => describe(outcome),
        Err(error) => error.into(),
    }
}

fn describe(outcome: ShellOutcome) -> ToolOutcome {
    let message = if let Some(limit) = &outcome.limit_hit {
        format!("The command was stopped: {limit}.")
    } else if outcome.running {
        "The command is still running. Use shell_wait to wait for it or shell_view to see its output.".to_string()
    } else {
        match outcome.exit_code {
            Some(code) => format!("The command finished with exit code {code}."),
            None => "The command was killed by a signal.".to_string(),
        }
    };
    let success = outcome.limit_hit.is_none() && (outcome.running || outcome.exit_code == Some(0));
    let data = json!({
        "id": outcome.id,
        "status": if outcome.running { "running" } else { "completed" },
        "exit_code": outcome.exit_code,
        "output": outcome.output,
    });
    // The event shows this command; the whole shell history is one `/shell` view away
    // (repeating it in every event made histories grow quadratically).
    let latest: Vec<_> = outcome.console.last().cloned().into_iter().collect();
    let content = json!({ "console": latest });
    ToolOutcome {
        success,
        message,
        data,
        content: Some(content),
    }
}
