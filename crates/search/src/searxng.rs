//! [SearXNG](https://docs.searxng.org/dev/search_api.html): `GET {url}/search?q=…&format=json`.
//! The instance must have `json` in `search.formats` of its `settings.yml`.

use crate::http::{self, Failure};
use crate::sanitize::{build_results, json_str};
use crate::{DateRange, SearchConfig, SearchError, SearchProvider, SearchResult, check_query};
use serde_json::Value;
use std::fmt;
use url::Url;

pub struct SearxngProvider {
    client: reqwest::Client,
    endpoint: Url,
    max_results: usize,
}

impl fmt::Debug for SearxngProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearxngProvider")
            .field("endpoint", &http::redact_url(self.endpoint.as_str()))
            .field("max_results", &self.max_results)
            .finish()
    }
}

impl SearxngProvider {
    /// Needs `cfg.url` (the instance's base URL, a path prefix such as `/searx` allowed).
    pub fn new(cfg: &SearchConfig) -> Result<Self, SearchError> {
        let raw = cfg
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                SearchError::Config(
                    "the searxng provider needs a url (the instance's base URL)".into(),
                )
            })?;
        let base = http::parse_base_url(raw, "the searxng url")?;
        Ok(Self {
            client: http::build_client(cfg.timeout)?,
            endpoint: http::endpoint(&base, "/search"),
            max_results: cfg.effective_max_results(),
        })
    }

    /// SearXNG's `time_range`. It has no hour granularity, so [`DateRange::PastHour`] is
    /// sent as `day` (the narrowest range it supports); [`DateRange::All`] sends none.
    pub fn time_range(range: DateRange) -> Option<&'static str> {
        match range {
            DateRange::All => None,
            DateRange::PastHour | DateRange::PastDay => Some("day"),
            DateRange::PastWeek => Some("week"),
            DateRange::PastMonth => Some("month"),
            DateRange::PastYear => Some("year"),
        }
    }

    fn failure(&self, f: &Failure) -> SearchError {
        let mut message = http::error_message(f, None);
        match f.status {
            403 => message.push_str(
                " (is the json format enabled in the instance's settings.yml search.formats?)",
            ),
            429 => message.push_str(" (rate limited by the instance)"),
            300..=399 => message = "unexpected redirect; check the configured searxng url".into(),
            _ => {}
        }
        SearchError::Http {
            status: f.status,
            message,
        }
    }
}

#[async_trait::async_trait]
impl SearchProvider for SearxngProvider {
    async fn search(
        &self,
        query: &str,
        range: DateRange,
    ) -> Result<Vec<SearchResult>, SearchError> {
        let query = check_query(query)?;
        let mut params: Vec<(&str, &str)> = vec![("q", query), ("format", "json")];
        if let Some(tr) = Self::time_range(range) {
            params.push(("time_range", tr));
        }
        let req = self
            .client
            .get(self.endpoint.clone())
            .query(&params)
            .header(reqwest::header::ACCEPT, "application/json");
        let body = match http::get_json(req, None).await? {
            Ok(body) => body,
            Err(f) => return Err(self.failure(&f)),
        };
        let results = body
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| SearchError::Protocol("the response has no \"results\" list".into()))?;
        Ok(build_results(
            results.iter().map(|r| {
                (
                    json_str(r, "title"),
                    json_str(r, "url"),
                    json_str(r, "content"),
                )
            }),
            self.max_results,
        ))
    }

    fn name(&self) -> &'static str {
        "searxng"
    }
}
