//! What the fake sends on the wire, shaped like OpenAI's answers.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::scenario::Reply;

/// Characters per streamed text chunk and per tool-argument fragment: small, so every
/// answer arrives in several pieces and arguments split mid-JSON.
const TEXT_PIECE: usize = 4;
const ARGUMENT_PIECE: usize = 7;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A reply with its tool call ids fixed, ready to be sent streamed or whole.
pub(crate) struct Rendered {
    pub id: String,
    pub model: String,
    pub created: u64,
    pub content: Option<String>,
    /// (id, name, arguments text)
    pub calls: Vec<(String, String, String)>,
    pub finish_reason: String,
    pub prompt_tokens: u64,
}

impl Rendered {
    pub fn new(reply: &Reply, model: &str, prompt_tokens: u64) -> Self {
        let calls: Vec<(String, String, String)> = reply
            .tool_calls
            .iter()
            .map(|c| {
                let id =
                    c.id.clone()
                        .unwrap_or_else(|| format!("call_fake{:06}", next_id()));
                (id, c.name.clone(), c.arguments_text())
            })
            .collect();
        let finish_reason = reply.finish_reason.clone().unwrap_or_else(|| {
            if calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .to_string()
        });
        Self {
            id: format!("chatcmpl-fake{:06}", next_id()),
            model: model.to_string(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            content: reply.content.clone(),
            calls,
            finish_reason,
            prompt_tokens,
        }
    }

    fn completion_tokens(&self) -> u64 {
        let chars = self.content.as_deref().map_or(0, str::len)
            + self
                .calls
                .iter()
                .map(|(_, n, a)| n.len() + a.len())
                .sum::<usize>();
        chars.div_ceil(4) as u64
    }

    fn usage(&self) -> Value {
        let completion = self.completion_tokens();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    }

    /// The SSE events (`data: …\n\n`) of a streamed answer, `[DONE]` included.
    pub fn sse_events(&self, include_usage: bool) -> Vec<String> {
        let mut chunks = vec![self.chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )];
        if let Some(content) = &self.content {
            for piece in pieces(content, TEXT_PIECE) {
                chunks.push(self.chunk(json!({"content": piece}), None));
            }
        }
        for (index, (id, name, arguments)) in self.calls.iter().enumerate() {
            chunks.push(self.chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                       "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            for piece in pieces(arguments, ARGUMENT_PIECE) {
                chunks.push(self.chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    None,
                ));
            }
        }
        chunks.push(self.chunk(json!({}), Some(&self.finish_reason)));
        if include_usage {
            chunks.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            }));
        }
        let mut events: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        events.push("data: [DONE]\n\n".to_string());
        events
    }

    /// The whole `chat.completion` object of a non-streamed answer.
    pub fn completion(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content, "refusal": null});
        if !self.calls.is_empty() {
            message["tool_calls"] = self
                .calls
                .iter()
                .map(|(id, name, arguments)| {
                    json!({"id": id, "type": "function",
                           "function": {"name": name, "arguments": arguments}})
                })
                .collect();
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null,
                         "finish_reason": self.finish_reason}],
            "usage": self.usage(),
        })
    }
}

/// `text` cut every `size` characters (never inside a character).
fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// An OpenAI-style error body.
pub(crate) fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::scenario::FakeToolCall;

    #[test]
    fn tool_arguments_are_split_mid_json_and_rejoin() {
        let reply = Reply::tool_calls(vec![FakeToolCall::new(
            "create_plan",
            json!({"title": "Hello", "steps": [{"id": "1", "description": "é"}]}),
        )]);
        let r = Rendered::new(&reply, "m", 10);
        let events = r.sse_events(true);
        let mut args = String::new();
        let mut fragments = 0;
        for e in &events[..events.len() - 1] {
            let v: Value =
                serde_json::from_str(e.trim_start_matches("data: ").trim()).expect("json");
            if let Some(a) = v
                .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
            {
                args.push_str(a);
                fragments += 1;
            }
        }
        assert!(fragments > 3);
        assert_eq!(
            serde_json::from_str::<Value>(&args).expect("rejoined"),
            reply.tool_calls[0].arguments
        );
        assert_eq!(events.last().map(String::as_str), Some("data: [DONE]\n\n"));
    }
}
