//! A fake web search API answering in both the SearXNG and the Brave shape, for tests of
//! `ironhand-search` and of the agent's `info_search_web` tool.
//!
//! - `GET /search?q=…&format=json[&time_range=…]` — SearXNG (`403` unless `format=json`).
//! - `GET /res/v1/web/search?q=…[&count=…][&freshness=…]` — Brave (`401` with a Brave-style
//!   JSON error unless `X-Subscription-Token` is [`FakeSearch::brave_key`]).
//!
//! For any query `q` both answer with the same canned list ([`FakeSearch::canned`]): three
//! good results whose titles contain `q`, one of them with an overlong title, one with
//! HTML/entities and an overlong snippet, mixed with entries a client must drop (a
//! `javascript:` link, a relative link, a missing link, a non-string link, a duplicate).
//! The query `no results` yields an empty list (Brave leaves out `web`, as it does).
//!
//! Every request is recorded ([`FakeSearch::requests`]); [`FakeSearch::fail_with`],
//! [`FakeSearch::respond_raw`] and [`FakeSearch::set_delay`] make it misbehave.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The subscription token the Brave endpoint accepts.
pub const BRAVE_KEY: &str = "fake-brave-key-5f2c9a";

/// The query for which both endpoints return no results.
pub const NO_RESULTS_QUERY: &str = "no results";

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `/search` or `/res/v1/web/search` (or whatever else was asked for).
    pub path: String,
    /// The raw query string, as sent.
    pub query: String,
    /// The decoded query parameters, in order.
    pub params: Vec<(String, String)>,
    /// The `X-Subscription-Token` header, if any.
    pub token: Option<String>,
}

impl RecordedRequest {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One entry of the canned list, before the provider-specific JSON shape.
#[derive(Debug, Clone, PartialEq)]
pub struct CannedEntry {
    pub title: String,
    /// A JSON value on purpose: some entries have a missing (`Null`) or non-string link.
    pub link: Value,
    pub snippet: String,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<RecordedRequest>>,
    failure: Mutex<Option<u16>>,
    raw: Mutex<Option<(u16, String, String)>>,
    delay: Mutex<Duration>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct FakeSearch {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for FakeSearch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSearch {
    /// Starts the server on `127.0.0.1:<free port>`; it stops when dropped.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start() -> Self {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("FakeSearch: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("FakeSearch: no local address: {e}"),
        };
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/search", get(searxng))
            .route("/res/v1/web/search", get(brave))
            .fallback(not_found)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(
                listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app,
            )
            .await
            {
                tracing::warn!("FakeSearch stopped: {e}");
            }
        });
        Self { addr, inner, task }
    }

    /// The base URL, e.g. `http://127.0.0.1:43210` (no trailing slash). Use it as the
    /// SearXNG `url` or as the Brave `url` override.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token the Brave endpoint accepts ([`BRAVE_KEY`]).
    pub fn brave_key(&self) -> &'static str {
        BRAVE_KEY
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    /// Makes both endpoints answer `status` from now on: Brave with its JSON
    /// `ErrorResponse` body, SearXNG with an HTML error page.
    pub fn fail_with(&self, status: u16) {
        *lock(&self.inner.failure) = Some(status);
    }

    /// Makes both endpoints answer exactly `status`, `content_type` and `body` from now on
    /// (after the Brave token check). Takes precedence over [`FakeSearch::fail_with`].
    pub fn respond_raw(&self, status: u16, content_type: &str, body: impl Into<String>) {
        *lock(&self.inner.raw) = Some((status, content_type.to_string(), body.into()));
    }

    /// Makes every answer wait `delay` first (a slow provider).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.inner.delay) = delay;
    }

    /// Back to normal answers with no delay (recorded requests are kept).
    pub fn reset(&self) {
        *lock(&self.inner.failure) = None;
        *lock(&self.inner.raw) = None;
        *lock(&self.inner.delay) = Duration::ZERO;
    }

    /// The canned list both endpoints return for `query`, hostile entries included.
    pub fn canned(query: &str) -> Vec<CannedEntry> {
        if query == NO_RESULTS_QUERY {
            return Vec::new();
        }
        let slug: String = query
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let first = format!("https://example.com/{slug}");
        let entry = |title: String, link: Value, snippet: String| CannedEntry {
            title,
            link,
            snippet,
        };
        vec![
            entry(
                format!("{query} — Official site"),
                json!(first),
                format!("Everything about <strong>{query}</strong> &amp; friends."),
            ),
            entry(
                format!("Click here: {query}"),
                json!("javascript:alert(document.cookie)"),
                "<img src=x onerror=alert(1)>".to_string(),
            ),
            entry(
                format!("{query} {}", "extremely long title ".repeat(30)),
                json!(format!("https://docs.example.org/{slug}?page=1&lang=en")),
                format!("Learn\n\t{query}   step\u{202E} by\u{200B} step"),
            ),
            entry(
                format!("{query} relative"),
                json!("/relative/link"),
                String::new(),
            ),
            entry(
                format!("{query} no link"),
                Value::Null,
                "no url".to_string(),
            ),
            entry(format!("{query} numeric link"), json!(42), String::new()),
            entry(
                format!("<b>{query}</b> news &amp; updates"),
                json!(format!("http://news.example.net/{slug}")),
                format!(
                    "<script>alert('xss')</script>Latest on <em>{query}</em>. {}",
                    "more ".repeat(200)
                ),
            ),
            entry(
                format!("{query} duplicate"),
                json!(first),
                "dup".to_string(),
            ),
        ]
    }
}

fn record(inner: &Inner, uri: &Uri, params: Vec<(String, String)>, headers: &HeaderMap) {
    let token = headers
        .get("x-subscription-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    lock(&inner.requests).push(RecordedRequest {
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        params,
        token,
    });
}

async fn misbehave(inner: &Inner) -> Option<Response> {
    let delay = *lock(&inner.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let raw = lock(&inner.raw).clone();
    raw.map(|(status, ct, body)| {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, ct)],
            body,
        )
            .into_response()
    })
}

fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn searxng(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    record(&inner, &uri, params.clone(), &headers);
    if let Some(resp) = misbehave(&inner).await {
        return resp;
    }
    if let Some(status) = *lock(&inner.failure) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let page = format!(
            "<!DOCTYPE html><html><head><title>{status}</title><style>h1{{color:red}}</style></head>\
             <body><h1>{status}</h1><p>SearXNG &mdash; something went wrong</p></body></html>"
        );
        return (status, [(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    if first(&params, "format") != Some("json") {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>403 Forbidden</h1></body></html>",
        )
            .into_response();
    }
    let query = first(&params, "q").unwrap_or("").to_string();
    let results: Vec<Value> = FakeSearch::canned(&query)
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut r = json!({
                "title": e.title,
                "content": e.snippet,
                "engine": "fake",
                "score": 1.0 / (i as f64 + 1.0),
            });
            if !e.link.is_null() {
                r["url"] = e.link;
            }
            r
        })
        .collect();
    axum::Json(json!({
        "query": query,
        "number_of_results": results.len(),
        "results": results,
        "answers": [],
        "suggestions": [],
        "unresponsive_engines": [],
    }))
    .into_response()
}

fn brave_error(status: StatusCode, code: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "type": "ErrorResponse",
            "error": {
                "id": "00000000-0000-0000-0000-000000000000",
                "status": status.as_u16(),
                "code": code,
                "detail": detail,
                "meta": { "component": "fake" },
            },
            "time": 0,
        })),
    )
        .into_response()
}

async fn brave(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    record(&inner, &uri, params.clone(), &headers);
    let token_ok = headers
        .get("x-subscription-token")
        .is_some_and(|v| v.as_bytes() == BRAVE_KEY.as_bytes());
    if !token_ok {
        return brave_error(
            StatusCode::UNAUTHORIZED,
            "SUBSCRIPTION_TOKEN_INVALID",
            "The provided subscription token is invalid.",
        );
    }
    if let Some(resp) = misbehave(&inner).await {
        return resp;
    }
    if let Some(status) = *lock(&inner.failure) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return brave_error(status, "FAKE_FAILURE", "The fake was told to fail.");
    }
    let query = first(&params, "q").unwrap_or("").to_string();
    let results: Vec<Value> = FakeSearch::canned(&query)
        .into_iter()
        .map(|e| {
            let mut r = json!({
                "type": "search_result",
                "title": e.title,
                "description": e.snippet,
                "is_source_local": false,
                "language": "en",
                "age": "2 days ago",
            });
            if !e.link.is_null() {
                r["url"] = e.link;
            }
            r
        })
        .collect();
    let mut body = json!({
        "type": "search",
        "query": { "original": query, "more_results_available": false },
        "mixed": { "type": "mixed", "main": [] },
    });
    if !results.is_empty() {
        body["web"] = json!({ "type": "search", "results": results, "family_friendly": true });
    }
    axum::Json(body).into_response()
}

async fn not_found(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap) -> Response {
    record(&inner, &uri, Vec::new(), &headers);
    (StatusCode::NOT_FOUND, "not found").into_response()
}
