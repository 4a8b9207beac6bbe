//! The names and schemas connectors' tools get before the model sees them: docs/api.md's
//! `mcp__<server>__<tool>`, in the characters models accept (`A-Z a-z 0-9 _ -`, at most 64),
//! one name per tool, descriptions capped, schemas that are JSON-schema objects.

use serde_json::{Value, json};
use std::collections::HashSet;

/// Longest tool name the model APIs accept.
pub(crate) const MAX_TOOL_NAME: usize = 64;
/// Longest description passed on (server descriptions can be pages long).
pub(crate) const MAX_DESCRIPTION: usize = 1024;

fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `mcp__<server>__<tool>` sanitised and cut to 64 characters, made unique among `taken`
/// by a numbered suffix (which the caller records).
pub(crate) fn tool_name(server: &str, tool: &str, taken: &HashSet<String>) -> String {
    let base: String = format!("mcp__{}__{}", sanitize(server), sanitize(tool))
        .chars()
        .take(MAX_TOOL_NAME)
        .collect();
    if !taken.contains(&base) {
        return base;
    }
    for n in 2.. {
        let suffix = format!("_{n}");
        let head: String = base.chars().take(MAX_TOOL_NAME - suffix.len()).collect();
        let candidate = format!("{head}{suffix}");
        if !taken.contains(&candidate) {
            return candidate;
        }
    }
    base
}

/// The description the model reads: the server's, capped, saying whose tool it is.
pub(crate) fn description(server: &str, text: &str) -> String {
    let text = text.trim();
    let capped: String = text.chars().take(MAX_DESCRIPTION).collect();
    let cut = if capped.len() < text.len() { "…" } else { "" };
    if capped.is_empty() {
        format!("A tool of the `{server}` connector.")
    } else {
        format!("{capped}{cut} (connector `{server}`)")
    }
}

/// The server's input schema when it is an object schema; otherwise an empty object schema
/// (the model may then send only `{}`).
pub(crate) fn parameters(schema: &Value) -> Value {
    match schema {
        Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("object") => {
            schema.clone()
        }
        Value::Object(map) if !map.contains_key("type") && map.contains_key("properties") => {
            let mut map = map.clone();
            map.insert("type".into(), json!("object"));
            Value::Object(map)
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_models_accept_and_never_repeat() {
        let mut taken = HashSet::new();
        let a = tool_name("files", "read_file", &taken);
        assert_eq!(a, "mcp__files__read_file");
        taken.insert(a);
        // `read.file` and `read file` both sanitise to `read_file`.
        let b = tool_name("files", "read.file", &taken);
        assert_eq!(b, "mcp__files__read_file_2");
        taken.insert(b);
        assert_eq!(
            tool_name("files", "read file", &taken),
            "mcp__files__read_file_3"
        );

        let long = tool_name("a-very-long-server-name-indeed", &"x".repeat(80), &taken);
        assert_eq!(long.len(), MAX_TOOL_NAME);
        taken.insert(long.clone());
        let again = tool_name("a-very-long-server-name-indeed", &"x".repeat(90), &taken);
        assert_eq!(again.len(), MAX_TOOL_NAME);
        assert!(again.ends_with("_2") && again != long);
        assert!(
            tool_name("ünï", "日本", &HashSet::new())
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }

    #[test]
    fn descriptions_and_schemas_are_made_safe() {
        let d = description("s", &"word ".repeat(1000));
        assert!(d.chars().count() < MAX_DESCRIPTION + 40 && d.contains("… (connector `s`)"));
        assert_eq!(description("s", "  "), "A tool of the `s` connector.");
        assert_eq!(
            parameters(&json!({"type": "object", "properties": {"a": {}}})),
            json!({"type": "object", "properties": {"a": {}}})
        );
        assert_eq!(
            parameters(&json!({"properties": {"a": {}}})),
            json!({"type": "object", "properties": {"a": {}}})
        );
        assert_eq!(
            parameters(&json!("nonsense")),
            json!({"type": "object", "properties": {}})
        );
    }
}
