//! HTTP plumbing shared by the providers: client setup, bounded body reads and turning
//! failures into [`SearchError`]s whose text is safe to show.

use crate::SearchError;
use crate::sanitize::{sanitize_text, truncate_chars};
use std::time::Duration;
use url::Url;

/// Bodies larger than this are refused (a search page is a few tens of KiB).
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;
/// Provider-supplied text in error messages is cut to this many characters.
pub(crate) const MAX_ERROR_CHARS: usize = 300;

const USER_AGENT: &str = concat!("ironhand-search/", env!("CARGO_PKG_VERSION"));

pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, SearchError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect could carry the API key header to another host; refuse them.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| {
            SearchError::Config(format!(
                "could not set up the HTTP client: {}",
                error_chain(&e.without_url())
            ))
        })
}

/// Parses a configured base URL: absolute, `http`/`https`, with a host. Query and fragment
/// are dropped; a path prefix is kept.
pub(crate) fn parse_base_url(raw: &str, what: &str) -> Result<Url, SearchError> {
    let raw = raw.trim();
    let bad = |why: &str| SearchError::Config(format!("{what} {why}"));
    let mut url = Url::parse(raw).map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// `base` with `path` appended to its path (`https://h/searx/` + `/search` →
/// `https://h/searx/search`).
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// A URL for logs/Debug: credentials removed.
pub(crate) fn redact_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            String::from(url)
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

/// Removes `secret` (if any) from `msg`.
pub(crate) fn redact(msg: String, secret: Option<&str>) -> String {
    match secret.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if msg.contains(s) => msg.replace(s, "<redacted>"),
        _ => msg,
    }
}

/// A non-2xx answer: its status and (capped) body.
pub(crate) struct Failure {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `req` and returns the parsed JSON body of a 2xx answer. A non-2xx answer is
/// returned as `Ok(Err(Failure))` so the provider can phrase its own message.
pub(crate) async fn get_json(
    req: reqwest::RequestBuilder,
    secret: Option<&str>,
) -> Result<Result<serde_json::Value, Failure>, SearchError> {
    let mut resp = req.send().await.map_err(|e| from_reqwest(e, secret))?;
    let status = resp.status();
    let body = read_capped(&mut resp, secret).await?;
    if !status.is_success() {
        return Ok(Err(Failure {
            status: status.as_u16(),
            body,
        }));
    }
    match serde_json::from_slice(&body) {
        Ok(v) => Ok(Ok(v)),
        Err(_) => Err(SearchError::Protocol(redact(
            format!("the response is not JSON: {}", excerpt(&body)),
            secret,
        ))),
    }
}

async fn read_capped(
    resp: &mut reqwest::Response,
    secret: Option<&str>,
) -> Result<Vec<u8>, SearchError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(SearchError::Protocol(format!(
            "the response is larger than {} MiB",
            MAX_BODY_BYTES >> 20
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(e, secret))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(SearchError::Protocol(format!(
                "the response is larger than {} MiB",
                MAX_BODY_BYTES >> 20
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn from_reqwest(e: reqwest::Error, secret: Option<&str>) -> SearchError {
    if e.is_timeout() {
        return SearchError::Timeout;
    }
    let protocol = e.is_body() || e.is_decode();
    let text = redact(
        truncate_chars(&error_chain(&e.without_url()), MAX_ERROR_CHARS),
        secret,
    );
    if protocol {
        SearchError::Protocol(text)
    } else {
        SearchError::Connection(text)
    }
}

/// `outer: inner: innermost`, skipping repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The best human-readable message in an error body: a JSON error's detail/message, or
/// the body's text with markup removed; sanitised and truncated.
pub(crate) fn error_message(failure: &Failure, secret: Option<&str>) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(&failure.body)
        .ok()
        .and_then(|v| json_error_text(&v));
    let text = from_json.unwrap_or_else(|| sanitize_text(&String::from_utf8_lossy(&failure.body)));
    let text = if text.is_empty() {
        reqwest::StatusCode::from_u16(failure.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no details")
            .to_string()
    } else {
        text
    };
    redact(truncate_chars(&text, MAX_ERROR_CHARS), secret)
}

fn json_error_text(v: &serde_json::Value) -> Option<String> {
    let str_at = |ptr: &str| {
        v.pointer(ptr)
            .and_then(serde_json::Value::as_str)
            .map(sanitize_text)
            .filter(|s| !s.is_empty())
    };
    let detail = [
        "/error/detail",
        "/error/message",
        "/detail",
        "/message",
        "/error",
    ]
    .into_iter()
    .find_map(str_at)?;
    match str_at("/error/code") {
        Some(code) if !detail.contains(&code) => Some(format!("{code}: {detail}")),
        _ => Some(detail),
    }
}

/// A short, sanitised excerpt of a body for error messages.
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(4 * MAX_ERROR_CHARS)];
    let text = sanitize_text(&String::from_utf8_lossy(head));
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        truncate_chars(&text, 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_prefixes() -> Result<(), SearchError> {
        let base = parse_base_url("https://h.example/searx/?x=1#f", "url")?;
        assert_eq!(
            endpoint(&base, "/search").as_str(),
            "https://h.example/searx/search"
        );
        let base = parse_base_url("http://127.0.0.1:8080", "url")?;
        assert_eq!(
            endpoint(&base, "/res/v1/web/search").as_str(),
            "http://127.0.0.1:8080/res/v1/web/search"
        );
        assert!(parse_base_url("ftp://h", "url").is_err());
        assert!(parse_base_url("not a url", "url").is_err());
        Ok(())
    }

    #[test]
    fn error_messages() {
        let f = |status: u16, body: &str| Failure {
            status,
            body: body.as_bytes().to_vec(),
        };
        let brave = r#"{"type":"ErrorResponse","error":{"id":"x","status":422,"code":"VALIDATION","detail":"Unable to validate request parameter(s)."}}"#;
        assert_eq!(
            error_message(&f(422, brave), None),
            "VALIDATION: Unable to validate request parameter(s)."
        );
        assert_eq!(
            error_message(&f(500, "<html><h1>Oops</h1> broke</html>"), None),
            "Oops broke"
        );
        assert_eq!(error_message(&f(502, ""), None), "Bad Gateway");
        assert_eq!(
            error_message(&f(401, r#"{"message":"bad key k3y"}"#), Some("k3y")),
            "bad key <redacted>"
        );
        let long = "x".repeat(10_000);
        assert!(error_message(&f(500, &long), None).chars().count() <= MAX_ERROR_CHARS);
    }
}
