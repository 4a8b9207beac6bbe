//! Scenarios: what the fake model answers, entry by entry. See the module docs of
//! [`crate::llm`] and `crates/fakes/scenarios/README.md` for the JSON format.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// An ordered list of responses; each request of a conversation takes the next one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    pub description: Option<String>,
    pub responses: Vec<Response>,
}

/// One entry of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// An assistant answer: text, tool calls, or both.
    Reply(Reply),
    /// `body` sent as is (`text/event-stream` to a streaming request, else
    /// `application/json`, unless `content_type` says otherwise).
    Raw {
        body: String,
        content_type: Option<String>,
        status: u16,
        delay_ms: u64,
    },
    /// Literal SSE lines, each sent as its own write followed by `\n` (write `""` for the
    /// blank line that ends an event). For shapes real providers send that the fake's own
    /// rendering does not.
    RawStream { lines: Vec<String>, delay_ms: u64 },
    /// Answers HTTP `status` with an OpenAI-style error `times` times, then moves on.
    Status {
        status: u16,
        retry_after: Option<u64>,
        times: u32,
        message: Option<String>,
        delay_ms: u64,
    },
    /// Waits `ms` before the next entry's answer (consumed together with it).
    Delay { ms: u64 },
    /// Streams the first `after_chunks` chunks of the next reply, then drops the connection.
    /// Consumed once; the next request gets that reply whole.
    Disconnect { after_chunks: usize },
    /// Sends headers and `: keep-alive` comments every 200 ms but no data for `seconds`,
    /// then closes the stream.
    Stall { seconds: f64 },
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<FakeToolCall>,
    /// Defaults to `tool_calls` when there are calls, else `stop`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Answer 400 unless the request offers every one of these tools (catches a scenario
    /// that drifted from the agent's protocol).
    #[serde(default)]
    pub expect_tools: Vec<String>,
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeToolCall {
    /// Generated (`call_…`) when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// A JSON value is sent as its JSON text; a string is sent verbatim (so a scenario can
    /// send invalid JSON arguments).
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl Reply {
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: Some(content.into()),
            ..Self::default()
        }
    }

    pub fn tool_calls(calls: Vec<FakeToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::default()
        }
    }
}

impl FakeToolCall {
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        Self {
            id: None,
            name: name.into(),
            arguments,
        }
    }

    /// The arguments as the model would send them.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl Response {
    pub fn text(content: impl Into<String>) -> Self {
        Self::Reply(Reply::text(content))
    }

    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::Reply(Reply::tool_calls(vec![FakeToolCall::new(name, arguments)]))
    }

    pub fn tool_calls(calls: Vec<FakeToolCall>) -> Self {
        Self::Reply(Reply::tool_calls(calls))
    }

    pub fn raw(body: impl Into<String>) -> Self {
        Self::Raw {
            body: body.into(),
            content_type: None,
            status: 200,
            delay_ms: 0,
        }
    }

    pub fn raw_stream<S: Into<String>>(lines: impl IntoIterator<Item = S>) -> Self {
        Self::RawStream {
            lines: lines.into_iter().map(Into::into).collect(),
            delay_ms: 0,
        }
    }

    pub fn status(status: u16, times: u32) -> Self {
        Self::Status {
            status,
            retry_after: None,
            times,
            message: None,
            delay_ms: 0,
        }
    }

    pub fn rate_limited(retry_after_seconds: u64, times: u32) -> Self {
        Self::Status {
            status: 429,
            retry_after: Some(retry_after_seconds),
            times,
            message: None,
            delay_ms: 0,
        }
    }

    pub fn delay(ms: u64) -> Self {
        Self::Delay { ms }
    }

    pub fn disconnect(after_chunks: usize) -> Self {
        Self::Disconnect { after_chunks }
    }

    pub fn stall(seconds: f64) -> Self {
        Self::Stall { seconds }
    }
}

impl Scenario {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry.
    pub fn then(mut self, response: Response) -> Self {
        self.responses.push(response);
        self
    }

    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ScenarioError(format!("not JSON: {e}")))?;
        Self::from_value(value)
    }

    /// `{"description"?, "responses": [...]}` or a bare `[...]`.
    pub fn from_value(value: Value) -> Result<Self, ScenarioError> {
        let (description, entries) = match value {
            Value::Array(entries) => (None, entries),
            Value::Object(mut obj) => {
                let description = obj
                    .remove("description")
                    .and_then(|d| d.as_str().map(str::to_string));
                let entries = match obj.remove("responses") {
                    Some(Value::Array(entries)) => entries,
                    _ => return Err(ScenarioError("`responses` must be a list".into())),
                };
                if let Some(extra) = obj.keys().next() {
                    return Err(ScenarioError(format!("unknown field `{extra}`")));
                }
                (description, entries)
            }
            _ => return Err(ScenarioError("a scenario is an object or a list".into())),
        };
        let responses = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                parse_entry(e).map_err(|err| ScenarioError(format!("response {}: {err}", i + 1)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            description,
            responses,
        })
    }
}

fn parse_entry(entry: Value) -> Result<Response, String> {
    let Value::Object(mut obj) = entry else {
        return Err("each response is a JSON object".into());
    };
    obj.remove("comment");
    let from = |obj: serde_json::Map<String, Value>| Value::Object(obj);
    let err = |e: serde_json::Error| e.to_string();
    if let Some(fault) = obj.remove("fault") {
        let fault = fault.as_str().unwrap_or_default().to_string();
        let body = from(obj);
        return match fault.as_str() {
            "status" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct F {
                    status: u16,
                    #[serde(default)]
                    retry_after: Option<u64>,
                    #[serde(default = "one")]
                    times: u32,
                    #[serde(default)]
                    message: Option<String>,
                    #[serde(default)]
                    delay_ms: u64,
                }
                let f: F = serde_json::from_value(body).map_err(err)?;
                Ok(Response::Status {
                    status: f.status,
                    retry_after: f.retry_after,
                    times: f.times.max(1),
                    message: f.message,
                    delay_ms: f.delay_ms,
                })
            }
            "delay" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct F {
                    ms: u64,
                }
                let f: F = serde_json::from_value(body).map_err(err)?;
                Ok(Response::Delay { ms: f.ms })
            }
            "disconnect" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct F {
                    #[serde(default)]
                    after_chunks: usize,
                }
                let f: F = serde_json::from_value(body).map_err(err)?;
                Ok(Response::Disconnect {
                    after_chunks: f.after_chunks,
                })
            }
            "stall" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct F {
                    seconds: f64,
                }
                let f: F = serde_json::from_value(body).map_err(err)?;
                Ok(Response::Stall {
                    seconds: f.seconds.max(0.0),
                })
            }
            other => Err(format!(
                "unknown fault `{other}` (status, delay, disconnect or stall)"
            )),
        };
    }
    if obj.contains_key("raw") {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct R {
            raw: String,
            #[serde(default)]
            content_type: Option<String>,
            #[serde(default = "ok")]
            status: u16,
            #[serde(default)]
            delay_ms: u64,
        }
        let r: R = serde_json::from_value(from(obj)).map_err(err)?;
        return Ok(Response::Raw {
            body: r.raw,
            content_type: r.content_type,
            status: r.status,
            delay_ms: r.delay_ms,
        });
    }
    if obj.contains_key("raw_stream") {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct R {
            raw_stream: Vec<String>,
            #[serde(default)]
            delay_ms: u64,
        }
        let r: R = serde_json::from_value(from(obj)).map_err(err)?;
        return Ok(Response::RawStream {
            lines: r.raw_stream,
            delay_ms: r.delay_ms,
        });
    }
    if !obj.contains_key("content") && !obj.contains_key("tool_calls") {
        return Err("expected `content`, `tool_calls`, `raw`, `raw_stream` or `fault`".into());
    }
    let reply: Reply = serde_json::from_value(from(obj)).map_err(err)?;
    Ok(Response::Reply(reply))
}

fn one() -> u32 {
    1
}

fn ok() -> u16 {
    200
}

/// A scenario file or definition that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// The scenarios a fake server knows, by name, and the one used when a conversation names
/// none.
#[derive(Debug, Clone, Default)]
pub struct FakeLlmScenarios {
    pub(crate) scenarios: HashMap<String, Scenario>,
    pub(crate) default: Option<String>,
    /// Where to look for a scenario asked for by name but not loaded yet (files added or
    /// edited while the server runs).
    pub(crate) dir: Option<PathBuf>,
}

impl FakeLlmScenarios {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `*.json` in `dir`, named by file stem.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ScenarioError(format!("cannot read {}: {e}", dir.display())))?;
        let mut scenarios = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            scenarios.insert(name.to_string(), load_file(&path)?);
        }
        Ok(Self {
            scenarios,
            default: None,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// The scenarios shipped in `crates/fakes/scenarios`.
    pub fn bundled() -> Result<Self, ScenarioError> {
        Self::from_dir(Self::bundled_dir())
    }

    pub fn bundled_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
    }

    pub fn with(mut self, name: impl Into<String>, scenario: Scenario) -> Self {
        self.scenarios.insert(name.into(), scenario);
        self
    }

    pub fn with_default(mut self, name: impl Into<String>) -> Self {
        self.default = Some(name.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scenarios.keys().cloned().collect();
        names.sort();
        names
    }

    /// A loaded scenario, or `NAME.json` from the directory if there is one.
    pub(crate) fn find(&mut self, name: &str) -> Result<Option<&Scenario>, ScenarioError> {
        if !self.scenarios.contains_key(name)
            && let Some(dir) = &self.dir
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !name.starts_with('.')
        {
            let path = dir.join(format!("{name}.json"));
            if path.is_file() {
                let scenario = load_file(&path)?;
                self.scenarios.insert(name.to_string(), scenario);
            }
        }
        Ok(self.scenarios.get(name))
    }
}

fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError(format!("cannot read {}: {e}", path.display())))?;
    Scenario::from_json(&text).map_err(|e| ScenarioError(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_kind_parses() {
        let s = Scenario::from_json(
            r#"{"description": "d", "responses": [
                {"content": "hi", "comment": "why"},
                {"tool_calls": [{"name": "f", "arguments": {"a": 1}}], "content": "x", "delay_ms": 5},
                {"raw": "not json at all"},
                {"raw_stream": ["data: [DONE]", ""]},
                {"fault": "status", "status": 429, "retry_after": 1, "times": 2},
                {"fault": "delay", "ms": 10},
                {"fault": "disconnect", "after_chunks": 3},
                {"fault": "stall", "seconds": 0.5}
            ]}"#,
        )
        .expect("valid scenario");
        assert_eq!(s.responses.len(), 8);
        assert_eq!(s.responses[0], Response::text("hi"));
        assert!(matches!(
            s.responses[4],
            Response::Status {
                status: 429,
                times: 2,
                retry_after: Some(1),
                ..
            }
        ));
    }

    #[test]
    fn mistakes_are_reported_with_their_position() {
        let e = Scenario::from_json(r#"[{"content": "a"}, {"contnet": "b"}]"#).expect_err("typo");
        assert!(e.0.contains("response 2"), "{e}");
        let e = Scenario::from_json(r#"[{"fault": "explode"}]"#).expect_err("bad fault");
        assert!(e.0.contains("unknown fault"), "{e}");
        let e = Scenario::from_json(r#"[{"content": "a", "extra": 1}]"#).expect_err("unknown");
        assert!(e.0.contains("extra"), "{e}");
    }

    #[test]
    fn bundled_scenarios_load() {
        let all = FakeLlmScenarios::bundled().expect("bundled scenarios are valid");
        for name in ["two_steps", "garbage", "always_500", "stall"] {
            assert!(all.get(name).is_some(), "missing {name}");
        }
    }
}
