//! A fake OpenAI-compatible chat-completions server driven by scenarios, so tests run the
//! real LLM client and the real agent against scripted model answers.
//!
//! # Routing a request to its scripted answer
//!
//! The **conversation** of a request is the full text of its first `user` message. A
//! `[scenario:NAME]` token in that text picks the scenario (a file `NAME.json` of the
//! scenarios directory, or one registered in code); without a token the server's default
//! scenario is used. Each conversation keeps its own cursor and takes one entry per request,
//! so tests running in parallel with different first messages do not interfere. Past the
//! end the server answers HTTP 400 `scenario NAME exhausted`; an unknown name gets HTTP 400
//! `unknown scenario NAME`.
//!
//! # Scenario JSON
//!
//! A file is `{"description": "…", "responses": [ENTRY, …]}` (or just `[ENTRY, …]`). Every
//! entry may carry a `"comment"` (ignored). Entries:
//!
//! | entry | the server answers |
//! |---|---|
//! | `{"content": "text"}` | assistant text, streamed in 4-character chunks |
//! | `{"tool_calls": [{"name": "f", "arguments": {…}, "id"?: "…"}], "content"?: "…"}` | tool calls (ids generated when absent), arguments streamed in 7-character fragments split mid-JSON; a string `arguments` is sent verbatim |
//! | `{"raw": "not json at all", "content_type"?: "…", "status"?: 200}` | that body as is |
//! | `{"raw_stream": ["data: {…}", "", "data: [DONE]", ""]}` | those SSE lines, each followed by `\n` |
//! | `{"fault": "status", "status": 500, "retry_after"?: 1, "times"?: 1, "message"?: "…"}` | that HTTP status with an OpenAI error body `times` times, then the next entry |
//! | `{"fault": "delay", "ms": 500}` | nothing by itself: the next entry's answer is sent `ms` later |
//! | `{"fault": "disconnect", "after_chunks": 3}` | the first 3 chunks of the next reply, then a dropped connection (once) |
//! | `{"fault": "stall", "seconds": 2}` | headers and `: keep-alive` comments every 200 ms, no data, then the stream closes |
//!
//! Replies also take `"finish_reason"` (default `tool_calls` or `stop`), `"delay_ms"`, and
//! `"expect_tools": ["create_plan"]` (answer 400 unless the request offers those tools, to
//! catch a scenario that drifted from the agent). Streaming follows OpenAI: a role chunk,
//! content chunks, per tool call a chunk with `index`/`id`/`name` then argument fragments,
//! a chunk with `finish_reason`, a usage chunk when `stream_options.include_usage`, then
//! `data: [DONE]`. A request without `stream: true` gets one `chat.completion` JSON.

mod render;
mod scenario;

pub use scenario::{FakeLlmScenarios, FakeToolCall, Reply, Response, Scenario, ScenarioError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures::StreamExt;
use futures::stream;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use render::{Rendered, error_body};

/// A request the fake received, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    pub path: String,
    /// The JSON body (`Value::String` of the raw text when it was not JSON).
    pub body: Value,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// The first user message's text: the conversation this request belongs to.
    pub conversation: String,
    /// The scenario the conversation uses, when one was found.
    pub scenario: Option<String>,
}

impl ReceivedRequest {
    pub fn has_authorization(&self) -> bool {
        self.authorization.is_some()
    }

    /// Names of the tools offered to the model.
    pub fn tool_names(&self) -> Vec<String> {
        offered_tools(&self.body)
    }

    pub fn offers_tool(&self, name: &str) -> bool {
        self.tool_names().iter().any(|t| t == name)
    }

    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    pub fn is_streaming(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

#[derive(Debug, Default)]
struct Cursor {
    position: usize,
    /// How many times the current `status` fault has answered.
    served: u32,
}

#[derive(Default)]
struct Inner {
    scenarios: FakeLlmScenarios,
    api_key: Option<String>,
    conversations: HashMap<String, Cursor>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    requests: Mutex<Vec<ReceivedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake server; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl FakeLlm {
    /// Serves on `127.0.0.1` on a free port.
    pub async fn start(scenarios: FakeLlmScenarios) -> std::io::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), scenarios).await
    }

    pub async fn bind(addr: SocketAddr, scenarios: FakeLlmScenarios) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                scenarios,
                ..Inner::default()
            }),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/models", get(models))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(
                listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app,
            )
            .await
            {
                tracing::warn!(error = %e, "fake llm server stopped");
            }
        })
        .abort_handle();
        Ok(Self { addr, shared, task })
    }

    /// The base URL clients are configured with, ending in `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests of conversations whose first user message contains `marker`.
    pub fn requests_for(&self, marker: &str) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.conversation.contains(marker))
            .collect()
    }

    pub fn add_scenario(&self, name: impl Into<String>, scenario: Scenario) {
        lock(&self.shared.inner)
            .scenarios
            .scenarios
            .insert(name.into(), scenario);
    }

    /// The scenario for conversations that name none.
    pub fn with_default(self, name: impl Into<String>) -> Self {
        self.set_default(Some(name.into()));
        self
    }

    pub fn set_default(&self, name: Option<String>) {
        lock(&self.shared.inner).scenarios.default = name;
    }

    /// Answer 401 unless the request carries `Authorization: Bearer <key>`.
    pub fn require_api_key(self, key: impl Into<String>) -> Self {
        lock(&self.shared.inner).api_key = Some(key.into());
        self
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to send for one request, decided under the lock.
enum Action {
    Reply {
        scenario: String,
        entry: usize,
        reply: Reply,
    },
    Raw {
        body: String,
        content_type: Option<String>,
        status: u16,
    },
    RawStream(Vec<String>),
    Status {
        status: u16,
        retry_after: Option<u64>,
        message: String,
    },
    Disconnect {
        reply: Option<Reply>,
        after_chunks: usize,
    },
    Stall(Duration),
}

type Refusal = (StatusCode, String);

impl Inner {
    fn next_action(
        &mut self,
        conversation: &str,
        name: Option<String>,
    ) -> Result<(Action, Duration), Refusal> {
        let name = name.or_else(|| self.scenarios.default.clone()).ok_or((
            StatusCode::BAD_REQUEST,
            "no scenario: put [scenario:NAME] in the first user message or start the fake with a default scenario".to_string(),
        ))?;
        let scenario = match self.scenarios.find(&name) {
            Ok(Some(s)) => s,
            Ok(None) => return Err((StatusCode::BAD_REQUEST, format!("unknown scenario {name}"))),
            Err(e) => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("scenario {name} is invalid: {e}"),
                ));
            }
        };
        let cursor = self
            .conversations
            .entry(conversation.to_string())
            .or_default();
        let mut delay = Duration::ZERO;
        loop {
            let entry = cursor.position;
            let Some(response) = scenario.responses.get(entry) else {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!(
                        "scenario {name} exhausted (it has {} responses)",
                        scenario.responses.len()
                    ),
                ));
            };
            let ms = Duration::from_millis;
            let action = match response {
                Response::Delay { ms: wait } => {
                    delay += ms(*wait);
                    cursor.position += 1;
                    continue;
                }
                Response::Status {
                    status,
                    retry_after,
                    times,
                    message,
                    delay_ms,
                } => {
                    cursor.served += 1;
                    let served = cursor.served;
                    if served >= *times {
                        cursor.position += 1;
                        cursor.served = 0;
                    }
                    delay += ms(*delay_ms);
                    Action::Status {
                        status: *status,
                        retry_after: *retry_after,
                        message: message.clone().unwrap_or_else(|| {
                            format!("the fake model was told to answer HTTP {status} ({served} of {times})")
                        }),
                    }
                }
                Response::Reply(reply) => {
                    cursor.position += 1;
                    delay += ms(reply.delay_ms);
                    Action::Reply {
                        scenario: name.clone(),
                        entry: entry + 1,
                        reply: reply.clone(),
                    }
                }
                Response::Raw {
                    body,
                    content_type,
                    status,
                    delay_ms,
                } => {
                    cursor.position += 1;
                    delay += ms(*delay_ms);
                    Action::Raw {
                        body: body.clone(),
                        content_type: content_type.clone(),
                        status: *status,
                    }
                }
                Response::RawStream { lines, delay_ms } => {
                    cursor.position += 1;
                    delay += ms(*delay_ms);
                    Action::RawStream(lines.clone())
                }
                Response::Disconnect { after_chunks } => {
                    cursor.position += 1;
                    let reply = scenario.responses[entry + 1..]
                        .iter()
                        .find_map(|r| match r {
                            Response::Reply(reply) => Some(reply.clone()),
                            _ => None,
                        });
                    Action::Disconnect {
                        reply,
                        after_chunks: *after_chunks,
                    }
                }
                Response::Stall { seconds } => {
                    cursor.position += 1;
                    Action::Stall(Duration::from_secs_f64(*seconds))
                }
            };
            return Ok((action, delay));
        }
    }
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let conversation = parsed.as_ref().map(first_user_text).unwrap_or_default();
    let token = scenario_token(&conversation);
    let (api_key, scenario) = {
        let inner = lock(&shared.inner);
        let scenario = token.clone().or_else(|| inner.scenarios.default.clone());
        (inner.api_key.clone(), scenario)
    };
    lock(&shared.requests).push(ReceivedRequest {
        path: uri.path().to_string(),
        body: parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        authorization: authorization.clone(),
        conversation: conversation.clone(),
        scenario,
    });
    if let Some(key) = api_key
        && authorization.as_deref() != Some(format!("Bearer {key}").as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    let Some(request) = parsed else {
        return error(
            StatusCode::BAD_REQUEST,
            "the request body is not JSON",
            "invalid_request_error",
            None,
        );
    };
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_string();
    let prompt_tokens = (body.len() as u64).div_ceil(4);

    let decided = lock(&shared.inner).next_action(&conversation, token);
    let (action, delay) = match decided {
        Ok(d) => d,
        Err((status, message)) => return error(status, &message, "invalid_request_error", None),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match action {
        Action::Reply {
            scenario,
            entry,
            reply,
        } => {
            let offered = offered_tools(&request);
            let missing: Vec<&String> = reply
                .expect_tools
                .iter()
                .filter(|t| !offered.contains(t))
                .collect();
            if !missing.is_empty() {
                let message = format!(
                    "scenario {scenario} response {entry} expects the tools {missing:?} but the request offered {offered:?}"
                );
                return error(
                    StatusCode::BAD_REQUEST,
                    &message,
                    "invalid_request_error",
                    None,
                );
            }
            let rendered = Rendered::new(&reply, &model, prompt_tokens);
            if streaming {
                sse(stream::iter(rendered.sse_events(include_usage).into_iter().map(Ok)).boxed())
            } else {
                json_response(StatusCode::OK, &rendered.completion())
            }
        }
        Action::Raw {
            body,
            content_type,
            status,
        } => {
            let content_type = content_type.unwrap_or_else(|| {
                if streaming {
                    "text/event-stream"
                } else {
                    "application/json"
                }
                .to_string()
            });
            let mut response =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            response
        }
        Action::RawStream(lines) => {
            sse(stream::iter(lines.into_iter().map(|l| Ok(format!("{l}\n")))).boxed())
        }
        Action::Status {
            status,
            retry_after,
            message,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (kind, code) = match status.as_u16() {
                429 => ("requests", Some("rate_limit_exceeded")),
                400..=499 => ("invalid_request_error", None),
                _ => ("server_error", None),
            };
            let mut response = error(status, &message, kind, code);
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        Action::Disconnect {
            reply,
            after_chunks,
        } => {
            let rendered = reply.map(|r| Rendered::new(&r, &model, prompt_tokens));
            let broken = || {
                Err(std::io::Error::other(
                    "the fake model dropped the connection",
                ))
            };
            // A short pause lets the sent chunks reach the client before the reset.
            let pause = stream::once(tokio::time::sleep(Duration::from_millis(30)))
                .filter_map(|_| async { None });
            if streaming {
                let events = rendered
                    .map(|r| r.sse_events(include_usage))
                    .unwrap_or_default();
                let sent = events.into_iter().take(after_chunks).map(Ok);
                sse(stream::iter(sent)
                    .chain(pause)
                    .chain(stream::once(async move { broken() }))
                    .boxed())
            } else {
                let text = rendered
                    .map(|r| r.completion().to_string())
                    .unwrap_or_default();
                let half: String = text.chars().take(text.chars().count() / 2).collect();
                let body = stream::once(async move { Ok(half) })
                    .chain(pause)
                    .chain(stream::once(async move { broken() }));
                let mut response = Body::from_stream(body).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
        }
        Action::Stall(length) => {
            let end = tokio::time::Instant::now() + length;
            let comments = stream::unfold(true, move |first| async move {
                if !first {
                    let now = tokio::time::Instant::now();
                    if now >= end {
                        return None;
                    }
                    tokio::time::sleep((end - now).min(Duration::from_millis(200))).await;
                    if tokio::time::Instant::now() >= end {
                        return None;
                    }
                }
                Some((Ok(": keep-alive\n\n".to_string()), false))
            });
            sse(comments.boxed())
        }
    }
}

type Frames = futures::stream::BoxStream<'static, Result<String, std::io::Error>>;

fn sse(frames: Frames) -> axum::response::Response {
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_response(status: StatusCode, body: &Value) -> axum::response::Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> axum::response::Response {
    json_response(status, &error_body(message, kind, code))
}

async fn models() -> axum::response::Response {
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "ironhand-fakes"}]}),
    )
}

async fn not_found(uri: Uri) -> axum::response::Response {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "the fake model serves /v1/chat/completions, not {}",
            uri.path()
        ),
        "invalid_request_error",
        None,
    )
}

/// The text of the first `user` message (string content, or the text parts of a list).
fn first_user_text(body: &Value) -> String {
    let Some(message) = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
    else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `NAME` from the first `[scenario:NAME]` in `text`.
fn scenario_token(text: &str) -> Option<String> {
    let start = text.find("[scenario:")? + "[scenario:".len();
    let end = text[start..].find(']')?;
    let name = text[start..start + end].trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn offered_tools(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_token_is_found_anywhere_in_the_message() {
        assert_eq!(
            scenario_token("please [scenario: two_steps] do it"),
            Some("two_steps".into())
        );
        assert_eq!(scenario_token("no token"), None);
        assert_eq!(scenario_token("[scenario:]"), None);
    }

    /// One HTTP/1.1 POST over a raw socket; the response as text, read until `stop_after`.
    async fn post(fake: &FakeLlm, body: &Value, extra: &str, stop_after: Duration) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.to_string();
        let mut socket = tokio::net::TcpStream::connect(fake.addr())
            .await
            .expect("connect");
        let request = format!(
            "POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(stop_after, socket.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    fn user(text: &str) -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": text}]})
    }

    #[tokio::test]
    async fn non_streaming_requests_get_one_completion_and_keys_are_checked() {
        let scenarios = FakeLlmScenarios::new().with(
            "s",
            Scenario::new()
                .then(Response::tool_call("create_plan", json!({"title": "t"})))
                .then(Response::text("bye")),
        );
        let fake = FakeLlm::start(scenarios)
            .await
            .expect("start")
            .with_default("s")
            .require_api_key("k1");
        let refused = post(&fake, &user("hi"), "", Duration::from_secs(5)).await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
        let answer = post(
            &fake,
            &user("hi"),
            "Authorization: Bearer k1\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let json_start = answer.find("\r\n\r\n").expect("body") + 4;
        let completion: Value =
            serde_json::from_str(&answer[json_start..]).expect("one JSON completion");
        assert_eq!(completion["object"], json!("chat.completion"));
        let call = &completion["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], json!("create_plan"));
        assert_eq!(call["function"]["arguments"], json!("{\"title\":\"t\"}"));
        assert_eq!(
            completion["choices"][0]["finish_reason"],
            json!("tool_calls")
        );
        assert_eq!(fake.requests().len(), 2);
        assert!(!fake.requests()[0].has_authorization());
    }

    #[tokio::test]
    async fn a_stall_sends_keep_alives_and_no_data() {
        let fake = FakeLlm::start(
            FakeLlmScenarios::new().with("s", Scenario::new().then(Response::stall(0.7))),
        )
        .await
        .expect("start");
        let mut body = user("[scenario:s] hi");
        body["stream"] = json!(true);
        let started = std::time::Instant::now();
        let answer = post(&fake, &body, "", Duration::from_secs(5)).await;
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(answer.contains("text/event-stream"), "{answer}");
        assert!(answer.matches(": keep-alive").count() >= 3, "{answer}");
        assert!(!answer.contains("data:"), "{answer}");
    }

    #[test]
    fn conversation_is_the_first_user_message() {
        let body = json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "later"},
        ]});
        assert_eq!(first_user_text(&body), "a\nb");
    }
}
