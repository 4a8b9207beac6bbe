//! The file family: text files in the session's sandbox. A file the agent writes is also
//! kept in the session's files, so the user's file list stays current.

use super::{
    ToolContext, ToolFamily, ToolOutcome, optional_bool, optional_i64, required_str, spec,
};
use async_trait::async_trait;
use ironhand_core::ports::Sandbox;
use ironhand_core::ports::sandbox::WriteOptions;
use ironhand_llm::ToolSpec;
use serde_json::{Value, json};

/// The file text a `tool` event shows at most (the model gets its own cap).
const EVENT_CONTENT_CHARS: usize = 20_000;

/// Largest file a write copies to the session's files on the spot (a bigger one is copied
/// when the agent names it in a result, up to `files.max_agent_file_bytes`).
const KEEP_ON_WRITE_BYTES: u64 = 4 * 1024 * 1024;

pub struct FileTools;

#[async_trait]
impl ToolFamily for FileTools {
    fn group(&self) -> &'static str {
        "file"
    }

    async fn specs(&self, _context: &ToolContext) -> Vec<ToolSpec> {
        let sudo = json!({"type": "boolean", "description": "Unused: the sandbox has no sudo"});
        vec![
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

    async fn call(&self, context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        let sandbox = match context.sandbox().await {
            Ok(sandbox) => sandbox,
            Err(error) => return error.into(),
        };
        let outcome = run(sandbox.as_ref(), function, args).await;
        if outcome.success
            && matches!(function, "file_write" | "file_str_replace")
            && let Some(path) = args.get("file").and_then(Value::as_str)
        {
            keep_file(context, sandbox.as_ref(), path).await;
        }
        outcome
    }
}

/// Keeps the session's file list current: a file the agent wrote is copied to the file
/// store (replacing the previous copy). A failure (too large, over quota) only skips it.
async fn keep_file(context: &ToolContext, sandbox: &dyn Sandbox, path: &str) {
    if let Err(why) = context
        .files
        .copy_out_of_sandbox(
            context.user,
            context.session,
            sandbox,
            path,
            KEEP_ON_WRITE_BYTES,
        )
        .await
    {
        tracing::info!(%why, "a written file was not copied to the session's files");
    }
}

fn shown(text: &str) -> Value {
    json!({ "content": crate::plan::truncate_chars(text, EVENT_CONTENT_CHARS) })
}

async fn run(sandbox: &dyn Sandbox, function: &str, args: &Value) -> ToolOutcome {
    if function == "file_find_by_name" {
        let (dir, glob) = match (required_str(args, "path"), required_str(args, "glob")) {
            (Ok(d), Ok(g)) => (d, g),
            (Err(failed), _) | (_, Err(failed)) => return failed,
        };
        return match sandbox.file_find_by_name(dir, glob).await {
            Ok(paths) => {
                let listing = paths.join("\n");
                ToolOutcome::ok(
                    format!("{} file(s) found.", paths.len()),
                    json!({"files": paths}),
                    Some(shown(&listing)),
                )
            }
            Err(error) => error.into(),
        };
    }
    let file = match required_str(args, "file") {
        Ok(f) => f,
        Err(failed) => return failed,
    };
    match function {
        "file_read" => {
            let (start, end) = (
                optional_i64(args, "start_line"),
                optional_i64(args, "end_line"),
            );
            match sandbox.file_read(file, start, end).await {
                Ok(read) => {
                    let message = if read.truncated {
                        format!(
                            "Read {} (the content was cut at the read limit; read a smaller line range to see more).",
                            read.path
                        )
                    } else {
                        format!("Read {}.", read.path)
                    };
                    ToolOutcome::ok(
                        message,
                        json!({"content": read.content, "truncated": read.truncated, "total_lines": read.total_lines}),
                        Some(shown(&read.content)),
                    )
                }
                Err(error) => error.into(),
            }
        }
        "file_write" => {
            let content = match required_str(args, "content") {
                Ok(c) => c,
                Err(failed) => return failed,
            };
            let options = WriteOptions {
                append: optional_bool(args, "append"),
                leading_newline: optional_bool(args, "leading_newline"),
                trailing_newline: optional_bool(args, "trailing_newline"),
            };
            match sandbox.file_write(file, content, &options).await {
                Ok(()) => ToolOutcome::ok(
                    format!("Wrote {file}."),
                    json!({"file": file}),
                    Some(shown(content)),
                ),
                Err(error) => error.into(),
            }
        }
        "file_str_replace" => {
            let (old, new) = match (required_str(args, "old_str"), required_str(args, "new_str")) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(failed), _) | (_, Err(failed)) => return failed,
            };
            match sandbox.file_str_replace(file, old, new).await {
                Ok(count) => ToolOutcome::ok(
                    format!("Replaced {count} occurrence(s) in {file}."),
                    json!({"file": file, "replaced": count}),
                    Some(shown(new)),
                ),
                Err(error) => error.into(),
            }
        }
        "file_find_in_content" => {
            let regex = match required_str(args, "regex") {
                Ok(r) => r,
                Err(failed) => return failed,
            };
            match sandbox.file_find_in_content(file, regex).await {
                Ok(matches) => {
                    let listing = matches
                        .iter()
                        .map(|m| format!("{}: {}", m.line, m.text))
                        .collect::<Vec<_>>()
                        .join("\n");
                    ToolOutcome::ok(
                        format!("{} matching line(s).", matches.len()),
                        json!({"matches": matches}),
                        Some(shown(&listing)),
                    )
                }
                Err(error) => error.into(),
            }
        }
        other => ToolOutcome::failed(format!("Unknown tool `{other}`.")),
    }
}
