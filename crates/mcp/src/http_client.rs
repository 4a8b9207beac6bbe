//! The HTTP clients for remote servers: timeouts, the URL and DNS policy on every hop, no
//! proxy, redirects only within the server's origin (so its headers, which often hold a
//! key, never follow a redirect elsewhere).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use reqwest_013::{Client, redirect};
use url::Url;

use crate::McpError;
use crate::error::Diagnostics;
use crate::policy::{PublicOnlyResolver, check_url};

/// Time to establish a TCP (and TLS) connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence on a request's response before it fails. Tool calls over streamable
/// HTTP may answer with an event stream that stays quiet while the tool works; each call
/// also has its own deadline.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// TCP keep-alive for long-lived event streams (notices a vanished server without a read
/// timeout that would end an idle stream).
const KEEPALIVE: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 5;

/// Which client to build: one for requests (connect and read timeouts) and one for a legacy
/// SSE session's event stream (connect timeout and keep-alive; an idle stream is normal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Requests,
    EventStream,
}

/// Builds a client for a server at `origin` (after [`check_url`]).
pub(crate) fn client(
    origin: &Url,
    allow_private: bool,
    purpose: Purpose,
    diagnostics: &Arc<Diagnostics>,
) -> Result<Client, McpError> {
    let origin = origin.origin();
    let policy = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        if attempt.url().origin() != origin {
            return attempt
                .error("a redirect to another origin (the server's headers stay with the server)");
        }
        match check_url(attempt.url().as_str(), allow_private) {
            Ok(_) => attempt.follow(),
            Err(refused) => attempt.error(refused.to_string()),
        }
    });
    let mut builder = Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(KEEPALIVE)
        .redirect(policy)
        // A proxy would resolve names itself, out of the DNS policy's reach.
        .no_proxy()
        .user_agent(concat!("ironhand-mcp/", env!("CARGO_PKG_VERSION")));
    if purpose == Purpose::Requests {
        builder = builder.read_timeout(READ_TIMEOUT);
    }
    if !allow_private {
        builder = builder.dns_resolver(PublicOnlyResolver::noting_refusals(diagnostics.clone()));
    }
    builder
        .build()
        .map_err(|e| McpError::Start(format!("cannot build the HTTP client: {e}")))
}

/// The configured headers as a header map. Names are checked; values are never shown.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, McpError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| McpError::Start(format!("`{name}` is not a valid HTTP header name")))?;
        // Framing and protocol headers are the transport's own.
        if matches!(
            header.as_str(),
            "host"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
                | "connection"
                | "accept"
                | "mcp-session-id"
                | "last-event-id"
        ) {
            return Err(McpError::Start(format!(
                "header `{name}` is set by the MCP transport and cannot be configured"
            )));
        }
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            McpError::Start(format!(
                "the value of header `{name}` is not a valid HTTP header value"
            ))
        })?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_stay_out_of_errors() {
        let error = header_map(&[("Authorization".into(), "Bearer sec\nret".into())])
            .expect_err("a newline is not allowed in a header value");
        assert!(!error.to_string().contains("sec"), "{error}");
        assert!(header_map(&[("bad name".into(), "x".into())]).is_err());
        assert!(header_map(&[("Accept".into(), "x".into())]).is_err());
        let map = header_map(&[("X-Api-Key".into(), " k ".into())]).expect("valid");
        assert_eq!(map.get("x-api-key").map(|v| v.as_bytes()), Some(&b"k"[..]));
    }
}
