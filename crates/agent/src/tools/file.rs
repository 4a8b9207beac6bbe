//! The file tools over the session's sandbox.

use super::{ToolOutcome, optional_bool, optional_i64, required_str};
use ironhand_core::ports::Sandbox;
use ironhand_core::ports::sandbox::WriteOptions;
use serde_json::{Value, json};

/// The file text a `tool` event shows at most (the model gets its own cap).
const EVENT_CONTENT_CHARS: usize = 20_000;

fn shown(text: &str) -> Value {
    json!({ "content": crate::plan::truncate_chars(text, EVENT_CONTENT_CHARS) })
}

pub async fn call(sandbox: &dyn Sandbox, function: &str, args: &Value) -> ToolOutcome {
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
