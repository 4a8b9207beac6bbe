//! The legacy "HTTP+SSE" transport (MCP 2024-11-05), which rmcp 3.11 no longer ships:
//!
//! 1. `GET` the SSE URL (`Accept: text/event-stream`); the first `endpoint` event names the
//!    URL to `POST` to, relative to the SSE URL and required to be on the same origin;
//! 2. every client message is `POST`ed there as JSON (the server answers 202);
//! 3. every server message arrives as a `message` event on the stream.
//!
//! The event stream is read inside [`Transport::receive`], so the transport owns no task:
//! dropping it ends the session. The session does not survive its stream (this transport
//! has no resumption), so the end of the stream is the end of the connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE};
use reqwest_013::Client;
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use url::Url;

use crate::MAX_MESSAGE_BYTES;
use crate::error::{Diagnostics, from_reqwest};
use crate::event_stream::{EventDecoder, SseEvent};
use crate::policy::redact_url;
use crate::{McpError, http_client};

/// Longest time one `POST` of a message may take (the server only acknowledges it).
const POST_TIMEOUT: Duration = Duration::from_secs(60);

type ByteStream = BoxStream<'static, Result<Bytes, reqwest_013::Error>>;

/// Why sending a message failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SseSendError {
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Http(McpError),
    #[error("the server answered the message POST with HTTP {0}")]
    Status(u16),
    #[error("the session is closed")]
    Closed,
}

/// An open legacy SSE session.
pub(crate) struct SseTransport {
    stream: Option<ByteStream>,
    decoder: EventDecoder,
    post: Client,
    endpoint: Url,
    headers: HeaderMap,
    diagnostics: Arc<Diagnostics>,
}

/// Opens the event stream and waits for the `endpoint` event (the caller bounds the time).
pub(crate) async fn connect(
    url: &Url,
    headers: HeaderMap,
    allow_private: bool,
    diagnostics: Arc<Diagnostics>,
) -> Result<SseTransport, McpError> {
    let shown = redact_url(url);
    let stream_client = http_client::client(
        url,
        allow_private,
        http_client::Purpose::EventStream,
        &diagnostics,
    )?;
    let post = http_client::client(
        url,
        allow_private,
        http_client::Purpose::Requests,
        &diagnostics,
    )?;
    let response = stream_client
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(from_reqwest)?;
    let status = response.status();
    if !status.is_success() {
        return Err(McpError::Http(format!(
            "GET {shown} answered HTTP {}",
            status.as_u16()
        )));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.starts_with("text/event-stream") {
        return Err(McpError::Protocol(format!(
            "GET {shown} answered `{}` instead of an event stream (is it an SSE endpoint?)",
            if content_type.is_empty() {
                "no content type"
            } else {
                &content_type
            }
        )));
    }
    let mut stream: ByteStream = response.bytes_stream().boxed();
    let mut decoder = EventDecoder::new(MAX_MESSAGE_BYTES);
    let endpoint = loop {
        if let Some(event) = decoder.next_event() {
            if event.event == "endpoint" {
                break event.data;
            }
            tracing::debug!(url = %shown, event = %event.event, "mcp sse: event before `endpoint` ignored");
            continue;
        }
        match stream.next().await {
            Some(Ok(chunk)) => decoder
                .feed(&chunk)
                .map_err(|e| McpError::Protocol(e.to_string()))?,
            Some(Err(e)) => return Err(from_reqwest(e)),
            None => {
                return Err(McpError::Protocol(format!(
                    "{shown} closed its event stream without naming the message endpoint"
                )));
            }
        }
    };
    let endpoint = endpoint_url(url, endpoint.trim())?;
    tracing::debug!(url = %shown, endpoint = %redact_url(&endpoint), "mcp sse: session open");
    Ok(SseTransport {
        stream: Some(stream),
        decoder,
        post,
        endpoint,
        headers,
        diagnostics,
    })
}

/// Resolves the `endpoint` event's URL against the SSE URL; it must stay on its origin.
pub(crate) fn endpoint_url(sse_url: &Url, endpoint: &str) -> Result<Url, McpError> {
    let resolved = sse_url
        .join(endpoint)
        .map_err(|e| McpError::Protocol(format!("the endpoint event is not a URL: {e}")))?;
    if resolved.origin() != sse_url.origin() {
        return Err(McpError::Refused(format!(
            "the server named a message endpoint on another origin ({}); it must be on {}",
            resolved.origin().ascii_serialization(),
            sse_url.origin().ascii_serialization()
        )));
    }
    Ok(resolved)
}

impl SseTransport {
    fn end(&mut self, reason: String) {
        tracing::debug!(endpoint = %redact_url(&self.endpoint), %reason, "mcp sse: session ended");
        self.diagnostics.closed_because(reason);
        self.stream = None;
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseSendError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let closed = self.stream.is_none();
        let request = serde_json::to_vec(&item).map(|body| {
            self.post
                .post(self.endpoint.clone())
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .timeout(POST_TIMEOUT)
                .body(body)
        });
        async move {
            if closed {
                return Err(SseSendError::Closed);
            }
            let response = request?
                .send()
                .await
                .map_err(|e| SseSendError::Http(from_reqwest(e)))?;
            let status = response.status();
            // The body is only an acknowledgement ("Accepted"); not read.
            drop(response);
            if status.is_success() {
                Ok(())
            } else {
                Err(SseSendError::Status(status.as_u16()))
            }
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            while let Some(SseEvent { event, data }) = self.decoder.next_event() {
                if event != "message" {
                    continue;
                }
                match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
                    Ok(message) => return Some(message),
                    Err(e) => {
                        tracing::debug!(error = %e, "mcp sse: ignored a message that is not JSON-RPC");
                    }
                }
            }
            let stream = self.stream.as_mut()?;
            match stream.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = self.decoder.feed(&chunk) {
                        self.end(e.to_string());
                        return None;
                    }
                }
                Some(Err(e)) => {
                    self.end(format!("the event stream failed: {}", from_reqwest(e)));
                    return None;
                }
                None => {
                    self.end("the server closed the event stream".into());
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.stream = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_stay_on_the_origin() {
        let sse = Url::parse("http://127.0.0.1:8000/sse").expect("url");
        assert_eq!(
            endpoint_url(&sse, "/messages/?session_id=abc")
                .expect("same origin")
                .as_str(),
            "http://127.0.0.1:8000/messages/?session_id=abc"
        );
        assert_eq!(
            endpoint_url(&sse, "messages?s=1")
                .expect("relative")
                .as_str(),
            "http://127.0.0.1:8000/messages?s=1"
        );
        for elsewhere in [
            "http://169.254.169.254/latest",
            "//evil.example/x",
            "https://127.0.0.1:8000/messages",
            "http://127.0.0.1:8001/messages",
        ] {
            assert!(
                matches!(endpoint_url(&sse, elsewhere), Err(McpError::Refused(_))),
                "{elsewhere}"
            );
        }
    }
}
