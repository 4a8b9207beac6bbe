//! The tools the executor is offered, by the names api.md fixes. Each call returns
//! `{success, message, data}` to the model and `content` for the `tool` event; a tool that
//! fails, or a name the model invented, is a failed result — never a crashed run.

mod file;
mod message;
mod search;
mod shell;
mod specs;

use ironhand_core::files::FileService;
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::ports::sandbox::SandboxError;
use ironhand_core::ports::{Sandbox, SandboxProvider};
use ironhand_llm::ToolSpec;
use ironhand_search::SearchProvider;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::OnceCell;

pub use specs::{complete_step_spec, create_plan_spec, update_plan_spec};

/// What one tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub success: bool,
    pub message: String,
    pub data: Value,
    /// The `content` of the `called` tool event (api.md, by tool group).
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

/// The tool group a function belongs to (the `name` of `tool` events).
pub fn group_of(function: &str) -> &'static str {
    if function.starts_with("shell_") {
        "shell"
    } else if function.starts_with("file_") {
        "file"
    } else if function.starts_with("message_") {
        "message"
    } else if function.starts_with("browser_") {
        "browser"
    } else if function.starts_with("info_search") {
        "search"
    } else if function.starts_with("mcp__") {
        "mcp"
    } else {
        "unknown"
    }
}

/// Largest file a write copies to the session's files on the spot (a bigger one is copied
/// when the agent names it in a result, up to `files.max_agent_file_bytes`).
const KEEP_ON_WRITE_BYTES: u64 = 4 * 1024 * 1024;

/// The executor's tools for one session. The sandbox is started on first use.
pub struct Toolbox {
    session: SessionId,
    user: UserId,
    sandboxes: Arc<dyn SandboxProvider>,
    sandbox: OnceCell<Arc<dyn Sandbox>>,
    search: Option<Arc<dyn SearchProvider>>,
    files: Arc<FileService>,
}

impl Toolbox {
    pub fn new(
        session: SessionId,
        user: UserId,
        sandboxes: Arc<dyn SandboxProvider>,
        search: Option<Arc<dyn SearchProvider>>,
        files: Arc<FileService>,
    ) -> Self {
        Self {
            session,
            user,
            sandboxes,
            sandbox: OnceCell::new(),
            search,
            files,
        }
    }

    /// Every tool offered to the executor (search only when a provider is configured),
    /// plus `complete_step`.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut specs = specs::sandbox_tools();
        specs.extend(specs::message_tools());
        if self.search.is_some() {
            specs.push(specs::search_tool());
        }
        specs.push(complete_step_spec());
        specs
    }

    /// The session's sandbox, started on first use.
    pub async fn sandbox(&self) -> Result<&Arc<dyn Sandbox>, SandboxError> {
        self.sandbox
            .get_or_try_init(|| self.sandboxes.sandbox(self.session))
            .await
    }

    /// Kills the command a cancelled shell tool call was waiting on (bounded in time).
    pub async fn interrupt(&self, function: &str, args: &Value) {
        if group_of(function) != "shell" || function == "shell_kill_process" {
            return;
        }
        let (Some(sandbox), Some(id)) =
            (self.sandbox.get(), args.get("id").and_then(Value::as_str))
        else {
            return;
        };
        let kill = sandbox.shell_kill(id);
        if let Ok(Err(error)) = tokio::time::timeout(std::time::Duration::from_secs(5), kill).await
        {
            tracing::debug!(%error, "could not kill the interrupted command");
        }
    }

    /// Keeps the session's file list current: a file the agent wrote is copied to the file
    /// store (replacing the previous copy). A failure (too large, over quota) only skips it.
    async fn keep_file(&self, sandbox: &dyn Sandbox, path: &str) {
        if let Err(why) = self
            .files
            .copy_out_of_sandbox(self.user, self.session, sandbox, path, KEEP_ON_WRITE_BYTES)
            .await
        {
            tracing::info!(why, "a written file was not copied to the session's files");
        }
    }

    /// Copies files the agent names (a result's attachments) to the session's files;
    /// returns their `FileInfo`s and, for each one that failed, a sentence.
    pub async fn collect(&self, paths: &[String]) -> (Vec<Value>, Vec<String>) {
        let mut infos = Vec::new();
        let mut failures = Vec::new();
        if paths.is_empty() {
            return (infos, failures);
        }
        let sandbox = match self.sandbox().await {
            Ok(sandbox) => sandbox.clone(),
            Err(error) => {
                failures.push(format!("the sandbox is unavailable ({error})"));
                return (infos, failures);
            }
        };
        for path in paths {
            match self
                .files
                .copy_out_of_sandbox(self.user, self.session, sandbox.as_ref(), path, u64::MAX)
                .await
            {
                Ok(file) => infos.push(file.info(None)),
                Err(why) => failures.push(format!(
                    "{} ({why})",
                    crate::plan::truncate_chars(path, 200)
                )),
            }
        }
        (infos, failures)
    }

    /// Runs a sandbox or search tool. `message_*` and `complete_step` are the flow's own.
    pub async fn call(&self, function: &str, args: &Value) -> ToolOutcome {
        match group_of(function) {
            "shell" => match self.sandbox().await {
                Ok(sandbox) => shell::call(sandbox.as_ref(), function, args).await,
                Err(error) => error.into(),
            },
            "file" => match self.sandbox().await {
                Ok(sandbox) => {
                    let outcome = file::call(sandbox.as_ref(), function, args).await;
                    if outcome.success
                        && matches!(function, "file_write" | "file_str_replace")
                        && let Some(path) = args.get("file").and_then(Value::as_str)
                    {
                        self.keep_file(sandbox.as_ref(), path).await;
                    }
                    outcome
                }
                Err(error) => error.into(),
            },
            "search" if function == "info_search_web" => match &self.search {
                Some(provider) => search::call(provider.as_ref(), args).await,
                None => ToolOutcome::failed("Web search is not configured on this server."),
            },
            "message" => message::call(function, args),
            _ => ToolOutcome::failed(format!(
                "Unknown tool `{}`. Use only the tools you were given.",
                crate::plan::truncate_chars(function, 80)
            )),
        }
    }
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

    #[test]
    fn groups_follow_the_contract() {
        assert_eq!(group_of("shell_exec"), "shell");
        assert_eq!(group_of("file_read"), "file");
        assert_eq!(group_of("info_search_web"), "search");
        assert_eq!(group_of("message_ask_user"), "message");
        assert_eq!(group_of("rm_rf"), "unknown");
    }
}
