//! The HTTP client: one `complete` call is up to `1 + max_retries` attempts, each a
//! streamed POST to `{base_url}/chat/completions` watched by three clocks (headers, gaps
//! between events, whole attempt).

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::LlmConfig;
use crate::error::{LlmError, sanitize};
use crate::sse::{Parsed, SseParser};
use crate::types::{ChatRequest, Completion, StreamEvent, Usage, estimate_tokens};
use crate::wire::{Assembly, BodyOptions, Quirks, error_from_body, request_body};

/// Anything that answers chat requests: the real client, or a test double.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Sends the conversation and returns the whole answer. Text deltas go to `events` as
    /// they arrive (with `Restart` before a retry that follows sent deltas).
    async fn complete(
        &self,
        request: &ChatRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, LlmError>;

    fn model(&self) -> &str;

    fn context_window(&self) -> usize;
}

/// Longest wait a provider's `Retry-After` can impose on us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest backoff between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most of an error body we read.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
    url: String,
    /// Azure wants the key in `api-key`; everyone else in `Authorization`.
    azure: bool,
    quirks: Mutex<Quirks>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        if config.base_url.trim().is_empty() || config.model.trim().is_empty() {
            return Err(LlmError::NotConfigured);
        }
        let url = chat_url(config.base_url.trim());
        let parsed = reqwest::Url::parse(&url)
            .map_err(|_| LlmError::Config("the LLM base URL is not a valid URL".into()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::Config(
                "the LLM base URL must start with http:// or https://".into(),
            ));
        }
        let azure = parsed
            .host_str()
            .is_some_and(|h| h.ends_with(".azure.com") || h.ends_with(".azure-api.net"));
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            config,
            http,
            url,
            azure,
            quirks: Mutex::new(Quirks::default()),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn quirks(&self) -> Quirks {
        *self.quirks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn api_key(&self) -> Option<&str> {
        self.config.api_key.as_deref().filter(|k| !k.is_empty())
    }

    /// One attempt, including the immediate re-send when the provider rejects an optional
    /// parameter.
    async fn attempt(
        &self,
        request: &ChatRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
        sent_deltas: &mut bool,
    ) -> Result<Completion, LlmError> {
        loop {
            let quirks = self.quirks();
            let body = request_body(
                request,
                &BodyOptions {
                    model: &self.config.model,
                    max_output_tokens: self.config.max_output_tokens,
                    temperature: self.config.temperature,
                    quirks,
                },
            );
            let mut http = self
                .http
                .post(&self.url)
                .header(ACCEPT, "text/event-stream, application/json")
                .json(&body);
            if let Some(key) = self.api_key() {
                http = http.bearer_auth(key);
                if self.azure {
                    http = http.header("api-key", key);
                }
            }
            let response =
                match tokio::time::timeout(self.config.request_timeout, http.send()).await {
                    Err(_) => return Err(LlmError::Timeout),
                    Ok(Err(e)) => return Err(self.transport_error(&e)),
                    Ok(Ok(r)) => r,
                };
            let status = response.status();
            if !status.is_success() {
                let headers = response.headers().clone();
                let text = read_capped(response, self.config.request_timeout).await;
                if status.as_u16() == 400 && self.drop_rejected_option(&text, quirks) {
                    continue;
                }
                return Err(self.http_error(status.as_u16(), &headers, &text));
            }
            let event_stream = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.contains("event-stream"));
            return if event_stream {
                self.read_stream(response, request, events, sent_deltas)
                    .await
            } else {
                self.read_whole(response, request, events, sent_deltas)
                    .await
            };
        }
    }

    /// When a 400 names an optional parameter we sent, stop sending it; true if changed.
    fn drop_rejected_option(&self, body: &str, sent: Quirks) -> bool {
        let text = body.to_ascii_lowercase();
        let mut quirks = self.quirks.lock().unwrap_or_else(|e| e.into_inner());
        let before = *quirks;
        if !sent.no_stream_options && text.contains("stream_options") {
            quirks.no_stream_options = true;
        } else if self.config.max_output_tokens.is_some()
            && !sent.max_completion_tokens
            && text.contains("max_tokens")
            && text.contains("max_completion_tokens")
        {
            quirks.max_completion_tokens = true;
        } else if self.config.temperature.is_some()
            && !sent.no_temperature
            && text.contains("temperature")
            && (text.contains("unsupported") || text.contains("not support"))
        {
            quirks.no_temperature = true;
        }
        let changed = quirks.no_stream_options != before.no_stream_options
            || quirks.max_completion_tokens != before.max_completion_tokens
            || quirks.no_temperature != before.no_temperature;
        if changed {
            tracing::info!(model = %self.config.model, quirks = ?*quirks, "the LLM provider rejected an optional parameter; sending without it");
        }
        changed
    }

    fn http_error(&self, status: u16, headers: &HeaderMap, body: &str) -> LlmError {
        let retry_after = (status == 429).then(|| retry_after(headers)).flatten();
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let err = parsed.as_ref().and_then(|v| {
            v.get("error")
                .filter(|e| !e.is_null())
                .or_else(|| v.get("detail"))
                .or_else(|| v.get("message"))
        });
        match err {
            Some(err) => error_from_body(err, Some(status), retry_after, self.api_key()),
            None => {
                let message = if body.trim().is_empty() {
                    "no details given".to_string()
                } else {
                    sanitize(body, self.api_key())
                };
                match status {
                    429 => LlmError::RateLimited {
                        retry_after,
                        message,
                    },
                    400..=499 => LlmError::Client { status, message },
                    _ => LlmError::Server { status, message },
                }
            }
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> LlmError {
        if e.is_timeout() {
            return LlmError::Timeout;
        }
        // The chain carries the useful part ("connection refused"); the URL is left out.
        let mut text = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(err) = source {
            let part = err.to_string();
            if !text.contains(&part) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&part);
            }
            source = err.source();
        }
        let text = text.replace(self.url.as_str(), "the model URL");
        LlmError::Connection(sanitize(&text, self.api_key()))
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        request: &ChatRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
        sent_deltas: &mut bool,
    ) -> Result<Completion, LlmError> {
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        let mut answer = Assembly::default();
        let stall = self.config.stall_timeout;
        let mut deadline = tokio::time::Instant::now() + stall;
        loop {
            let next = tokio::time::timeout_at(deadline, body.next())
                .await
                .map_err(|_| LlmError::Stalled)?;
            let (parsed, ended) = match next {
                Some(Ok(bytes)) => (parser.feed(&bytes), false),
                Some(Err(_)) => {
                    return Err(LlmError::Connection(
                        "the connection broke while the answer was streaming".into(),
                    ));
                }
                None => (parser.finish(), true),
            };
            if parsed.data_lines > 0 {
                deadline = tokio::time::Instant::now() + stall;
            }
            if self.apply_events(parsed, &mut answer, events, sent_deltas)? {
                return Ok(self.finish(answer, request));
            }
            if ended {
                break;
            }
        }
        // No `[DONE]`: lenient if the answer said it was finished.
        if answer.finish_reason.is_some() {
            return Ok(self.finish(answer, request));
        }
        if answer.chunks == 0 && parser.stray_lines > 0 {
            return Err(LlmError::Protocol(
                "the response is not a server-sent event stream".into(),
            ));
        }
        Err(LlmError::Connection(
            "the stream ended before the answer was complete".into(),
        ))
    }

    /// Applies parsed events; true once `[DONE]` arrives.
    fn apply_events(
        &self,
        parsed: Parsed,
        answer: &mut Assembly,
        events: Option<&UnboundedSender<StreamEvent>>,
        sent_deltas: &mut bool,
    ) -> Result<bool, LlmError> {
        for data in parsed.events {
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(true);
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data)
                .map_err(|_| LlmError::Protocol("a streamed chunk is not valid JSON".into()))?;
            if let Some(text) = answer.apply(&chunk, self.api_key())?
                && let Some(tx) = events
            {
                *sent_deltas = true;
                // A caller that stopped listening still gets the whole completion.
                let _ = tx.send(StreamEvent::TextDelta(text));
            }
        }
        Ok(false)
    }

    /// A server that ignored `stream: true` (or answered with something else).
    async fn read_whole(
        &self,
        response: reqwest::Response,
        request: &ChatRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
        sent_deltas: &mut bool,
    ) -> Result<Completion, LlmError> {
        let bytes = response.bytes().await.map_err(|_| {
            LlmError::Connection("the connection broke while the answer was arriving".into())
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let trimmed = text.trim_start();
        if trimmed.starts_with("data:") || trimmed.starts_with(':') {
            // An event stream with the wrong content type.
            let mut parser = SseParser::default();
            let mut answer = Assembly::default();
            let mut parsed = parser.feed(&bytes);
            parsed.events.extend(parser.finish().events);
            let done = self.apply_events(parsed, &mut answer, events, sent_deltas)?;
            if done || answer.finish_reason.is_some() {
                return Ok(self.finish(answer, request));
            }
            return Err(LlmError::Connection(
                "the stream ended before the answer was complete".into(),
            ));
        }
        let value: Value = serde_json::from_str(trimmed).map_err(|_| {
            LlmError::Protocol("the response is neither an event stream nor JSON".into())
        })?;
        let mut answer = Assembly::default();
        let text = answer.apply(&value, self.api_key())?;
        if answer.chunks > 0 && value.get("choices").and_then(Value::as_array).is_none() {
            return Err(LlmError::Protocol("the response has no `choices`".into()));
        }
        if let (Some(text), Some(tx)) = (text, events) {
            *sent_deltas = true;
            let _ = tx.send(StreamEvent::TextDelta(text));
        }
        Ok(self.finish(answer, request))
    }

    fn finish(&self, mut answer: Assembly, request: &ChatRequest) -> Completion {
        let tool_calls = answer.tool_calls();
        let usage = answer.usage.unwrap_or_else(|| {
            let tools: usize = request
                .tools
                .iter()
                .map(|t| {
                    (t.name.len() + t.description.len() + t.parameters.to_string().len())
                        .div_ceil(4)
                })
                .sum();
            let prompt = (estimate_tokens(&request.messages) + tools) as u64;
            let produced = answer.content.len()
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.len())
                    .sum::<usize>();
            let completion = produced.div_ceil(4) as u64;
            Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: prompt + completion,
            }
        });
        Completion {
            content: answer.content,
            tool_calls,
            finish_reason: answer.finish_reason,
            usage,
        }
    }

    fn backoff(&self, retry: u32, error: &LlmError) -> Duration {
        if let LlmError::RateLimited {
            retry_after: Some(wait),
            ..
        } = error
        {
            return (*wait).min(MAX_RETRY_AFTER);
        }
        let exp = self
            .config
            .retry_base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(MAX_BACKOFF);
        // Jitter in [50%, 100%] so that many runs retrying at once spread out.
        let noise = RandomState::new().hash_one(Instant::now()) % 1000;
        exp.mul_f64(0.5 + noise as f64 / 2000.0)
    }
}

#[async_trait]
impl ChatModel for LlmClient {
    async fn complete(
        &self,
        request: &ChatRequest,
        events: Option<&UnboundedSender<StreamEvent>>,
    ) -> Result<Completion, LlmError> {
        let mut retry = 0;
        loop {
            let started = Instant::now();
            let mut sent_deltas = false;
            tracing::debug!(model = %self.config.model, attempt = retry + 1, messages = request.messages.len(), tools = request.tools.len(), "llm request");
            let outcome = tokio::time::timeout(
                self.config.total_timeout,
                self.attempt(request, events, &mut sent_deltas),
            )
            .await
            .unwrap_or(Err(LlmError::Timeout));
            let label = match &outcome {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            metrics::counter!("ironhand_llm_requests_total", "outcome" => label).increment(1);
            metrics::histogram!("ironhand_llm_request_seconds")
                .record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(completion) => {
                    metrics::counter!("ironhand_llm_tokens_total", "kind" => "prompt")
                        .increment(completion.usage.prompt_tokens);
                    metrics::counter!("ironhand_llm_tokens_total", "kind" => "completion")
                        .increment(completion.usage.completion_tokens);
                    tracing::debug!(model = %self.config.model, attempt = retry + 1, tokens = completion.usage.total_tokens, tool_calls = completion.tool_calls.len(), "llm answer");
                    return Ok(completion);
                }
                Err(error) if error.is_retryable() && retry < self.config.max_retries => {
                    let delay = self.backoff(retry, &error);
                    retry += 1;
                    tracing::warn!(model = %self.config.model, attempt = retry, error = %error, delay_ms = delay.as_millis() as u64, "llm attempt failed; retrying");
                    if sent_deltas && let Some(tx) = events {
                        let _ = tx.send(StreamEvent::Restart);
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    tracing::warn!(model = %self.config.model, attempt = retry + 1, error = %error, "llm request failed");
                    return Err(error);
                }
            }
        }
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn context_window(&self) -> usize {
        self.config.context_window
    }
}

/// `{base_url}/chat/completions`, keeping a query string (Azure's `api-version`) at the end.
fn chat_url(base: &str) -> String {
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let path = path.trim_end_matches('/');
    let path = if path.ends_with("/chat/completions") {
        path.to_string()
    } else {
        format!("{path}/chat/completions")
    };
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// `Retry-After` (seconds) or OpenAI's `retry-after-ms`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
        .map(|d| d.min(MAX_RETRY_AFTER))
}

/// The start of an error body, as text, without waiting forever for it.
async fn read_capped(response: reqwest::Response, limit: Duration) -> String {
    let mut out = Vec::new();
    let mut body = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = body.next().await {
            out.extend_from_slice(&chunk);
            if out.len() >= MAX_ERROR_BODY {
                out.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limit, read).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_url_joins_paths_and_keeps_queries() {
        assert_eq!(
            chat_url("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(chat_url("http://h/v1/"), "http://h/v1/chat/completions");
        assert_eq!(
            chat_url("https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21"),
            "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn empty_settings_mean_not_configured() {
        let err = LlmClient::new(LlmConfig::new("", None, "m")).expect_err("no url");
        assert_eq!(err, LlmError::NotConfigured);
        let err = LlmClient::new(LlmConfig::new("ftp://x", None, "m")).expect_err("bad scheme");
        assert!(matches!(err, LlmError::Config(_)));
    }

    #[test]
    fn config_debug_hides_the_key() {
        let c = LlmConfig::new("http://h/v1", Some("sk-very-secret".into()), "m");
        assert!(!format!("{c:?}").contains("sk-very-secret"));
    }
}
