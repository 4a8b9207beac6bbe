//! [Brave Search API](https://api-dashboard.search.brave.com/app/documentation/web-search/get-started):
//! `GET {base}/res/v1/web/search?q=…` with the `X-Subscription-Token` header.

use crate::http::{self, Failure};
use crate::sanitize::{build_results, json_str};
use crate::{DateRange, SearchConfig, SearchError, SearchProvider, SearchResult, check_query};
use serde_json::Value;
use std::fmt;
use url::Url;

/// The public Brave Search API; `SearchConfig::url` overrides it (e.g. in tests).
pub const BRAVE_DEFAULT_URL: &str = "https://api.search.brave.com";
/// Brave's maximum `count`.
const BRAVE_MAX_COUNT: usize = 20;

pub struct BraveProvider {
    client: reqwest::Client,
    endpoint: Url,
    api_key: String,
    max_results: usize,
}

impl fmt::Debug for BraveProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BraveProvider")
            .field("endpoint", &http::redact_url(self.endpoint.as_str()))
            .field("api_key", &"<redacted>")
            .field("max_results", &self.max_results)
            .finish()
    }
}

impl BraveProvider {
    /// Needs `cfg.api_key`; `cfg.url` optionally replaces [`BRAVE_DEFAULT_URL`].
    pub fn new(cfg: &SearchConfig) -> Result<Self, SearchError> {
        let api_key = cfg
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                SearchError::Config(
                    "the brave provider needs an api_key (subscription token)".into(),
                )
            })?;
        if api_key.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(SearchError::Config(
                "the brave api_key contains characters that cannot be sent in a header".into(),
            ));
        }
        let raw = cfg
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(BRAVE_DEFAULT_URL);
        let base = http::parse_base_url(raw, "the brave url")?;
        Ok(Self {
            client: http::build_client(cfg.timeout)?,
            endpoint: http::endpoint(&base, "/res/v1/web/search"),
            api_key: api_key.to_string(),
            max_results: cfg.effective_max_results(),
        })
    }

    /// Brave's `freshness`. It has no hour granularity, so [`DateRange::PastHour`] is sent
    /// as `pd` (past day); [`DateRange::All`] sends none.
    pub fn freshness(range: DateRange) -> Option<&'static str> {
        match range {
            DateRange::All => None,
            DateRange::PastHour | DateRange::PastDay => Some("pd"),
            DateRange::PastWeek => Some("pw"),
            DateRange::PastMonth => Some("pm"),
            DateRange::PastYear => Some("py"),
        }
    }

    fn failure(&self, f: &Failure) -> SearchError {
        let mut message = http::error_message(f, Some(&self.api_key));
        match f.status {
            401 | 403 => message.push_str(" (check the brave api_key)"),
            429 => message.push_str(" (rate limit or quota exceeded)"),
            300..=399 => message = "unexpected redirect; check the configured brave url".into(),
            _ => {}
        }
        SearchError::Http {
            status: f.status,
            message,
        }
    }
}

#[async_trait::async_trait]
impl SearchProvider for BraveProvider {
    async fn search(
        &self,
        query: &str,
        range: DateRange,
    ) -> Result<Vec<SearchResult>, SearchError> {
        let query = check_query(query)?;
        let count = self.max_results.min(BRAVE_MAX_COUNT).to_string();
        let mut params: Vec<(&str, &str)> = vec![("q", query), ("count", &count)];
        if let Some(fresh) = Self::freshness(range) {
            params.push(("freshness", fresh));
        }
        let req = self
            .client
            .get(self.endpoint.clone())
            .query(&params)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Subscription-Token", &self.api_key);
        let body = match http::get_json(req, Some(&self.api_key)).await? {
            Ok(body) => body,
            Err(f) => return Err(self.failure(&f)),
        };
        if !body.is_object() {
            return Err(SearchError::Protocol(
                "the response is not a JSON object".into(),
            ));
        }
        if body.get("type").and_then(Value::as_str) == Some("ErrorResponse") {
            let f = Failure {
                status: 200,
                body: serde_json::to_vec(&body).unwrap_or_default(),
            };
            return Err(SearchError::Protocol(http::error_message(
                &f,
                Some(&self.api_key),
            )));
        }
        // Brave leaves out `web` when there are no web results.
        let results = match body.pointer("/web/results") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(results)) => results,
            Some(_) => {
                return Err(SearchError::Protocol(
                    "\"web.results\" is not a list".into(),
                ));
            }
        };
        Ok(build_results(
            results.iter().map(|r| {
                (
                    json_str(r, "title"),
                    json_str(r, "url"),
                    json_str(r, "description"),
                )
            }),
            self.max_results,
        ))
    }

    fn name(&self) -> &'static str {
        "brave"
    }
}
