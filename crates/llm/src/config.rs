use std::fmt;
use std::time::Duration;

/// Where and how to reach the model. `Debug` never prints the API key.
#[derive(Clone)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1`; requests go to `{base_url}/chat/completions` (a
    /// query string such as Azure's `?api-version=…` is kept after the path).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Connect plus time until the response headers arrive.
    pub request_timeout: Duration,
    /// Longest gap between two SSE data events; keep-alive comments do not count.
    pub stall_timeout: Duration,
    /// One attempt, end to end.
    pub total_timeout: Duration,
    pub max_retries: u32,
    pub retry_base_delay: Duration,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// The model's context window in tokens, for the caller's trimming.
    pub context_window: usize,
}

impl LlmConfig {
    /// A config with production defaults for everything but the endpoint.
    pub fn new(
        base_url: impl Into<String>,
        api_key: Option<String>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            model: model.into(),
            request_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(500),
            max_output_tokens: None,
            temperature: None,
            context_window: 128_000,
        }
    }
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("request_timeout", &self.request_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("temperature", &self.temperature)
            .field("context_window", &self.context_window)
            .finish()
    }
}
