//! Web search providers behind the agent's `info_search_web` tool.
//!
//! A [`SearchProvider`] turns a query and a [`DateRange`] into a short list of
//! [`SearchResult`]s. Two providers exist: a self-hosted [SearXNG] instance and the
//! [Brave Search API]. [`provider_from_config`] builds one from a [`SearchConfig`]; with no
//! provider configured it returns `None` and the tool is simply not offered.
//!
//! Everything a provider returns is treated as hostile: only `http`/`https` links that
//! parse as URLs are kept, titles and snippets are stripped of HTML, entity-decoded,
//! cleaned of control and bidi characters, whitespace-collapsed and length-capped, and
//! the number of results is capped. Error messages never contain the API key.
//!
//! [SearXNG]: https://docs.searxng.org/dev/search_api.html
//! [Brave Search API]: https://api-dashboard.search.brave.com/app/documentation/web-search/get-started

mod brave;
mod http;
mod sanitize;
mod searxng;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use brave::{BRAVE_DEFAULT_URL, BraveProvider};
pub use sanitize::{MAX_SNIPPET_CHARS, MAX_TITLE_CHARS, sanitize_link, sanitize_text};
pub use searxng::SearxngProvider;

/// How many results are returned when [`SearchConfig::max_results`] is 0.
pub const DEFAULT_MAX_RESULTS: usize = 10;
/// Upper bound on [`SearchConfig::max_results`]; larger values are clamped.
pub const MAX_RESULTS_LIMIT: usize = 50;
/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted query, in characters (Brave rejects longer ones).
pub const MAX_QUERY_CHARS: usize = 400;

/// The `date_range` argument of `info_search_web`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateRange {
    #[default]
    All,
    PastHour,
    PastDay,
    PastWeek,
    PastMonth,
    PastYear,
}

impl DateRange {
    pub const ALL_VALUES: [DateRange; 6] = [
        DateRange::All,
        DateRange::PastHour,
        DateRange::PastDay,
        DateRange::PastWeek,
        DateRange::PastMonth,
        DateRange::PastYear,
    ];

    /// Parses the tool's strings: `all`, `past_hour`, `past_day`, `past_week`,
    /// `past_month`, `past_year` (case-insensitive, surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL_VALUES
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }

    /// The tool's string for this range (inverse of [`DateRange::parse`]).
    pub fn as_str(self) -> &'static str {
        match self {
            DateRange::All => "all",
            DateRange::PastHour => "past_hour",
            DateRange::PastDay => "past_day",
            DateRange::PastWeek => "past_week",
            DateRange::PastMonth => "past_month",
            DateRange::PastYear => "past_year",
        }
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cleaned-up search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Plain text, at most [`MAX_TITLE_CHARS`] characters.
    pub title: String,
    /// An absolute `http`/`https` URL.
    pub link: String,
    /// Plain text, at most [`MAX_SNIPPET_CHARS`] characters.
    pub snippet: String,
}

/// Why a search failed. The `Display` text is safe to show to a user or a model: it never
/// contains the API key, and provider-supplied text in it is sanitised and truncated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The search configuration is unusable (missing url/key, unknown provider, ...).
    #[error("search is misconfigured: {0}")]
    Config(String),
    /// The request itself is unusable (empty or overlong query).
    #[error("invalid search request: {0}")]
    Invalid(String),
    /// The provider answered with a non-success status.
    #[error("search provider returned HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// The provider did not answer within the configured timeout.
    #[error("search provider timed out")]
    Timeout,
    /// The provider answered with something that is not a search response.
    #[error("search provider sent an unexpected response: {0}")]
    Protocol(String),
    /// The provider could not be reached.
    #[error("could not reach search provider: {0}")]
    Connection(String),
}

#[async_trait::async_trait]
pub trait SearchProvider: Send + Sync {
    /// Searches the web. Results are already sanitised and capped.
    async fn search(&self, query: &str, range: DateRange)
    -> Result<Vec<SearchResult>, SearchError>;

    /// A short stable identifier: `"searxng"` or `"brave"`.
    fn name(&self) -> &'static str;
}

/// Search settings. `Debug` never prints the API key.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// `"searxng"` or `"brave"`; `None` (or blank) disables web search.
    pub provider: Option<String>,
    /// SearXNG: base URL of the instance (required; a path prefix is allowed).
    /// Brave: optional override of [`BRAVE_DEFAULT_URL`].
    pub url: Option<String>,
    /// Brave: the subscription token (required). Unused by SearXNG.
    pub api_key: Option<String>,
    /// Whole-request timeout (connect + response body). Must be non-zero.
    pub timeout: Duration,
    /// Results returned at most; 0 means [`DEFAULT_MAX_RESULTS`], values above
    /// [`MAX_RESULTS_LIMIT`] are clamped.
    pub max_results: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            provider: None,
            url: None,
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_results: DEFAULT_MAX_RESULTS,
        }
    }
}

impl fmt::Debug for SearchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchConfig")
            .field("provider", &self.provider)
            .field("url", &self.url.as_deref().map(http::redact_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_results", &self.max_results)
            .finish()
    }
}

impl SearchConfig {
    /// The effective result cap: 0 → [`DEFAULT_MAX_RESULTS`], clamped to
    /// [`MAX_RESULTS_LIMIT`].
    pub fn effective_max_results(&self) -> usize {
        match self.max_results {
            0 => DEFAULT_MAX_RESULTS,
            n => n.min(MAX_RESULTS_LIMIT),
        }
    }
}

/// Builds the configured provider, `Ok(None)` when no provider is set (web search off).
///
/// Errors with [`SearchError::Config`] naming what is wrong: an unknown provider, SearXNG
/// without `url`, Brave without `api_key`, a `url` that is not an absolute http(s) URL,
/// or a zero timeout.
pub fn provider_from_config(
    cfg: &SearchConfig,
) -> Result<Option<Arc<dyn SearchProvider>>, SearchError> {
    let Some(provider) = cfg
        .provider
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    if cfg.timeout.is_zero() {
        return Err(SearchError::Config(
            "search timeout must be non-zero".into(),
        ));
    }
    let provider: Arc<dyn SearchProvider> = match provider.to_ascii_lowercase().as_str() {
        "searxng" => Arc::new(SearxngProvider::new(cfg)?),
        "brave" => Arc::new(BraveProvider::new(cfg)?),
        other => {
            return Err(SearchError::Config(format!(
                "unknown search provider {:?} (expected \"searxng\" or \"brave\")",
                sanitize::truncate_chars(&sanitize_text(other), 40)
            )));
        }
    };
    Ok(Some(provider))
}

/// Trims and validates a query: non-empty, at most [`MAX_QUERY_CHARS`] characters.
pub(crate) fn check_query(query: &str) -> Result<&str, SearchError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(SearchError::Invalid("the search query is empty".into()));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(SearchError::Invalid(format!(
            "the search query is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_range_round_trips() {
        for r in DateRange::ALL_VALUES {
            assert_eq!(DateRange::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(DateRange::parse(" Past_Week "), Some(DateRange::PastWeek));
        assert_eq!(DateRange::parse("yesterday"), None);
        assert_eq!(DateRange::parse(""), None);
    }

    #[test]
    fn query_checks() {
        assert!(matches!(check_query("  "), Err(SearchError::Invalid(_))));
        assert_eq!(check_query(" rust ").ok(), Some("rust"));
        let long = "é".repeat(MAX_QUERY_CHARS + 1);
        assert!(matches!(check_query(&long), Err(SearchError::Invalid(_))));
        let ok = "é".repeat(MAX_QUERY_CHARS);
        assert!(check_query(&ok).is_ok());
    }

    #[test]
    fn debug_hides_key() {
        let cfg = SearchConfig {
            provider: Some("brave".into()),
            url: Some("https://user:pw@example.com/x".into()),
            api_key: Some("sekrit-key".into()),
            ..Default::default()
        };
        let s = format!("{cfg:?}");
        assert!(!s.contains("sekrit-key"), "{s}");
        assert!(!s.contains("pw@"), "{s}");
    }

    #[test]
    fn max_results_defaults_and_clamps() {
        let mut cfg = SearchConfig::default();
        assert_eq!(cfg.effective_max_results(), 10);
        cfg.max_results = 0;
        assert_eq!(cfg.effective_max_results(), DEFAULT_MAX_RESULTS);
        cfg.max_results = 1000;
        assert_eq!(cfg.effective_max_results(), MAX_RESULTS_LIMIT);
    }
}
