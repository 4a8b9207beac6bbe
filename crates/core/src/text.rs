//! The one rule for NUL characters in text that is stored. PostgreSQL cannot hold a NUL in
//! a text column (SQLite can), so both backends get the same rule: input from a user that
//! holds one is refused (422, naming the field: the server's body and query parsing), and
//! what a model or a tool produces has its NULs removed before it is stored (the event
//! publisher, the session title).

use serde_json::Value;
use std::borrow::Cow;

/// `text` without NUL characters; borrowed when it holds none.
pub fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

/// Removes NUL characters from every string and every key in `value`.
pub fn strip_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (key, item) in entries {
                    map.insert(without_nul(&key).into_owned(), item);
                }
            }
            map.values_mut().for_each(strip_nul);
        }
        _ => {}
    }
}

/// Where the first NUL character in `value` is (in a string or a key), as a path like
/// `attachments[0].filename`; `None` when there is none.
pub fn find_nul(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &str) -> Option<String> {
        let at = |key: &str| {
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
                "body".into()
            } else {
                path.into()
            }),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{path}[{i}]"))),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                if key.contains('\0') {
                    Some(at(&key.replace('\0', "\\u0000")))
                } else {
                    walk(item, &at(key))
                }
            }),
            _ => None,
        }
    }
    walk(value, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_removed_everywhere_and_found_by_path() {
        let mut value = json!({"a\u{0}": ["x", "y\u{0}z"], "b": {"c": "ok"}});
        assert_eq!(find_nul(&value).as_deref(), Some("a\\u0000"));
        strip_nul(&mut value);
        assert_eq!(value, json!({"a": ["x", "yz"], "b": {"c": "ok"}}));
        assert_eq!(find_nul(&value), None);
        assert_eq!(
            find_nul(&json!({"message": "hi", "attachments": [{"filename": "a\u{0}"}]})).as_deref(),
            Some("attachments[0].filename")
        );
        assert_eq!(without_nul("a\u{0}b"), "ab");
        assert!(matches!(without_nul("ab"), Cow::Borrowed("ab")));
    }
}
