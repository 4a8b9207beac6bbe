//! The OpenAI chat-completions wire format: the request body we send and a lenient reading
//! of what comes back (streamed chunks or a whole completion).
//!
//! Responses are read from `serde_json::Value` rather than strict types: "OpenAI-compatible"
//! servers send empty `finish_reason`s, `usage: {}`, numbers as strings, content as part
//! lists, tool calls without `index` or `id`, and extra fields of their own.

use serde_json::{Map, Value, json};
use std::time::Duration;

use crate::error::{LlmError, sanitize};
use crate::types::{ChatMessage, ChatRequest, Role, ToolCall, ToolChoice, Usage};

/// Request options some providers reject; each is dropped (or switched) once a provider
/// says so, and stays that way for the client's life.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quirks {
    pub no_stream_options: bool,
    pub max_completion_tokens: bool,
    pub no_temperature: bool,
}

pub(crate) struct BodyOptions<'a> {
    pub model: &'a str,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub quirks: Quirks,
}

pub(crate) fn request_body(request: &ChatRequest, opts: &BodyOptions<'_>) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(opts.model));
    body.insert(
        "messages".into(),
        Value::Array(request.messages.iter().map(wire_message).collect()),
    );
    body.insert("stream".into(), json!(true));
    if !opts.quirks.no_stream_options {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = request.tool_choice {
            let choice = match choice {
                ToolChoice::Auto => "auto",
                ToolChoice::Required => "required",
                ToolChoice::None => "none",
            };
            body.insert("tool_choice".into(), json!(choice));
        }
    }
    if let Some(max) = opts.max_output_tokens {
        let key = if opts.quirks.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(key.into(), json!(max));
    }
    if let Some(t) = opts.temperature.filter(|_| !opts.quirks.no_temperature) {
        body.insert("temperature".into(), json!(t));
    }
    Value::Object(body)
}

fn wire_message(m: &ChatMessage) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    let content = match (m.content.as_deref(), m.tool_calls.is_empty()) {
        // An assistant turn that only called tools has null content on the wire.
        (None | Some(""), false) => Value::Null,
        (Some(c), _) => json!(c),
        (None, true) => json!(""),
    };
    out.insert("content".into(), content);
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    Value::Object(out)
}

#[derive(Debug, Default)]
struct PartialCall {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
}

/// The answer being put together from chunks (or from one whole completion).
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    pub content: String,
    calls: Vec<PartialCall>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// Chunks that parsed as completion objects.
    pub chunks: usize,
}

impl Assembly {
    /// Folds one chunk (or a whole completion) in; returns the text it added, for streaming
    /// to the caller. An `error` object from the provider becomes the matching error.
    pub fn apply(&mut self, v: &Value, api_key: Option<&str>) -> Result<Option<String>, LlmError> {
        let Some(obj) = v.as_object() else {
            return Err(LlmError::Protocol(
                "a streamed chunk is not a JSON object".into(),
            ));
        };
        if let Some(err) = obj.get("error").filter(|e| !e.is_null()) {
            return Err(error_from_body(err, None, None, api_key));
        }
        self.chunks += 1;
        if let Some(usage) = obj.get("usage").and_then(parse_usage) {
            self.usage = Some(usage);
        }
        let mut text = String::new();
        let choices = obj.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            // Only the first choice matters; we never ask for `n > 1`.
            if choice.get("index").and_then(as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice
                .get("delta")
                .filter(|d| d.is_object())
                .or_else(|| choice.get("message"));
            if let Some(delta) = delta {
                if let Some(piece) = delta.get("content").and_then(content_text) {
                    text.push_str(&piece);
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    let several = calls.len() > 1;
                    for (position, call) in calls.iter().enumerate() {
                        self.add_tool_delta(call, several.then_some(position));
                    }
                }
            } else if let Some(piece) = choice.get("text").and_then(Value::as_str) {
                text.push_str(piece);
            }
            if let Some(reason) = choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                self.finish_reason = Some(reason.to_string());
            }
        }
        if text.is_empty() {
            Ok(None)
        } else {
            self.content.push_str(&text);
            Ok(Some(text))
        }
    }

    fn add_tool_delta(&mut self, delta: &Value, position: Option<usize>) {
        let index = delta.get("index").and_then(as_u64);
        let id = delta
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let function = delta.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let arguments = function.and_then(|f| f.get("arguments"));

        let by_id = |calls: &[PartialCall], id: &str| calls.iter().position(|c| c.id == id);
        let slot = match (index, id) {
            (Some(i), _) => match self.calls.iter().rposition(|c| c.index == Some(i)) {
                // Same index but a different id: a provider that numbers every call 0.
                Some(s)
                    if id.is_some_and(|id| {
                        !self.calls[s].id.is_empty() && self.calls[s].id != id
                    }) =>
                {
                    None
                }
                found => found,
            },
            (None, Some(id)) => by_id(&self.calls, id),
            (None, None) => match position {
                Some(p) => (p < self.calls.len()).then_some(p),
                None => self.calls.len().checked_sub(1),
            },
        };
        let slot = match slot {
            Some(s) => s,
            None => {
                self.calls.push(PartialCall {
                    index,
                    ..PartialCall::default()
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[slot];
        if let Some(id) = id
            && call.id.is_empty()
        {
            call.id = id.to_string();
        }
        if let Some(name) = name
            && call.name != name
        {
            // A name split across deltas arrives in pieces; a repeated whole name is skipped.
            call.name.push_str(name);
        }
        match arguments {
            Some(Value::String(s)) => call.arguments.push_str(s),
            Some(v @ (Value::Object(_) | Value::Array(_))) => {
                call.arguments.push_str(&v.to_string())
            }
            _ => {}
        }
    }

    /// The finished tool calls: unnamed ones dropped, missing ids generated, empty
    /// arguments made `{}`.
    pub fn tool_calls(&mut self) -> Vec<ToolCall> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .filter(|c| {
                if c.name.is_empty() {
                    tracing::warn!("the model sent a tool call without a name; ignoring it");
                }
                !c.name.is_empty()
            })
            .map(|c| ToolCall {
                id: if c.id.is_empty() {
                    // Unique across processes: a resumed conversation keeps earlier ids.
                    format!("call_gen_{}", uuid::Uuid::new_v4().simple())
                } else {
                    c.id
                },
                name: c.name,
                arguments: if c.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    c.arguments
                },
            })
            .collect()
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text of a `content` field: a string, or a list of `{type: "text", text}` parts.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
                .collect(),
        ),
        _ => None,
    }
}

/// `None` for a missing, null or empty (`{}`) usage.
fn parse_usage(v: &Value) -> Option<Usage> {
    let get = |k: &str| v.get(k).and_then(as_u64);
    let prompt = get("prompt_tokens").or_else(|| get("input_tokens"));
    let completion = get("completion_tokens").or_else(|| get("output_tokens"));
    let total = get("total_tokens");
    if prompt.is_none() && completion.is_none() && total.is_none() {
        return None;
    }
    let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: total.filter(|t| *t > 0).unwrap_or(prompt + completion),
    })
}

/// An error from the provider, from its `error` value (an object or a string) and the HTTP
/// status when there was one (`None` inside a stream).
pub(crate) fn error_from_body(
    err: &Value,
    http_status: Option<u16>,
    retry_after: Option<Duration>,
    api_key: Option<&str>,
) -> LlmError {
    let raw_message = match err {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string()),
        other => other.to_string(),
    };
    let message = sanitize(&raw_message, api_key);
    let code = err
        .get("code")
        .or_else(|| err.get("status"))
        .and_then(as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    let label = |k: &str| {
        err.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (kind, code_label) = (label("type"), label("code"));
    let status = http_status.or(code);
    // Out of credit is reported as 429 by OpenAI but waiting will not help.
    if kind == "insufficient_quota" || code_label == "insufficient_quota" {
        return LlmError::Client {
            status: status.unwrap_or(429),
            message,
        };
    }
    let rate_limited = kind.contains("rate_limit") || code_label.contains("rate_limit");
    match status {
        Some(429) => LlmError::RateLimited {
            retry_after,
            message,
        },
        _ if rate_limited => LlmError::RateLimited {
            retry_after,
            message,
        },
        Some(s) if (400..500).contains(&s) => LlmError::Client { status: s, message },
        // An error inside a stream without a code is the provider's upstream failing.
        s => LlmError::Server {
            status: s.unwrap_or(502),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(chunks: &[Value]) -> Assembly {
        let mut a = Assembly::default();
        for c in chunks {
            a.apply(c, None).expect("chunk");
        }
        a
    }

    #[test]
    fn tool_calls_without_index_or_id_or_arguments() {
        let mut a = apply_all(&[
            json!({"choices":[{"delta":{"tool_calls":[{"function":{"name":"shell_","arguments":""}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"function":{"name":"exec","arguments":"{\"a\""}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"function":{"arguments":": 1}"}}]},"finish_reason":""}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"id":"x2","function":{"name":"noop"}}]}}],"usage":{}}),
        ]);
        let calls = a.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "shell_exec");
        assert_eq!(calls[0].arguments, "{\"a\": 1}");
        assert!(calls[0].id.starts_with("call_gen_"));
        assert_eq!(calls[1].id, "x2");
        assert_eq!(calls[1].arguments, "{}");
        assert_eq!(a.finish_reason, None);
        assert_eq!(a.usage, None);
    }

    #[test]
    fn same_index_with_new_id_is_a_new_call_and_object_arguments_are_text() {
        let mut a = apply_all(&[
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":{"x":1}}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}),
        ]);
        let calls = a.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, "{\"x\":1}");
        assert_eq!(calls[1].name, "g");
    }

    #[test]
    fn errors_map_by_status_and_code() {
        let e = error_from_body(&json!({"message":"slow down","code":429}), None, None, None);
        assert!(matches!(e, LlmError::RateLimited { .. }));
        let e = error_from_body(
            &json!({"message":"bad","type":"invalid_request_error"}),
            Some(400),
            None,
            None,
        );
        assert!(matches!(e, LlmError::Client { status: 400, .. }));
        let e = error_from_body(&json!("upstream died"), None, None, None);
        assert!(matches!(e, LlmError::Server { status: 502, .. }));
        let e = error_from_body(
            &json!({"message":"pay","type":"insufficient_quota"}),
            Some(429),
            None,
            None,
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn usage_in_strings_and_missing_total() {
        let u = parse_usage(&json!({"prompt_tokens":"10","completion_tokens":5})).expect("usage");
        assert_eq!(u.total_tokens, 15);
    }
}
