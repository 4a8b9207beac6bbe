use std::time::Duration;

/// What went wrong talking to the model. `Display` is a sentence safe to show a user: it
/// never contains the API key nor a whole response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error(
        "no language model is configured: set the LLM base URL and model (and an API key if the provider needs one)"
    )]
    NotConfigured,
    #[error("the language model settings are invalid: {0}")]
    Config(String),
    #[error("the model provider is rate limiting requests (HTTP 429): {message}")]
    RateLimited {
        /// What the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("the model provider failed (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("the model provider rejected the request (HTTP {status}): {message}")]
    Client { status: u16, message: String },
    #[error("the model provider did not answer in time")]
    Timeout,
    #[error("the model provider stopped sending its answer midway (stalled)")]
    Stalled,
    #[error("the model provider sent an answer that could not be understood: {0}")]
    Protocol(String),
    #[error("could not reach the model provider: {0}")]
    Connection(String),
}

impl LlmError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout
                | Self::Stalled
                | Self::Connection(_)
        )
    }

    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Config(_) => "config",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server_error",
            Self::Client { .. } => "client_error",
            Self::Timeout => "timeout",
            Self::Stalled => "stalled",
            Self::Protocol(_) => "protocol_error",
            Self::Connection(_) => "connection_error",
        }
    }
}

/// Longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 200;

/// Makes a provider's text fit for a user-facing error: the API key removed, one line,
/// truncated.
pub(crate) fn sanitize(message: &str, api_key: Option<&str>) -> String {
    let mut text = message.to_string();
    if let Some(key) = api_key.filter(|k| k.len() >= 4) {
        text = text.replace(key, "[redacted]");
    }
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = one_line.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else if one_line.is_empty() {
        "no details given".to_string()
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_redacts_the_key_and_truncates() {
        let s = sanitize(
            "Incorrect API key provided: sk-secret-123",
            Some("sk-secret-123"),
        );
        assert_eq!(s, "Incorrect API key provided: [redacted]");
        let long = sanitize(&"x".repeat(1000), None);
        assert!(long.chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert_eq!(sanitize("  ", None), "no details given");
    }
}
