//! [`McpClient`]: one initialised session with one MCP server, over stdio, streamable HTTP
//! or legacy HTTP+SSE, with a deadline on every request.

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
    PaginatedRequestParams, ProtocolVersion,
};
use rmcp::service::{RunningService, serve_client};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::content::McpCallResult;
use crate::error::{Diagnostics, from_initialize, from_service};
use crate::policy::{check_url, redact_url};
use crate::stdio::GuardedReader;
use crate::{MAX_MESSAGE_BYTES, McpError, http_client, sse};

/// Most pages `list_tools` follows.
pub const MAX_TOOL_PAGES: usize = 20;
/// Most tools `list_tools` returns.
pub const MAX_TOOLS: usize = 1000;
/// How long `close` waits for the session to wind down.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a remote server is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteTransport {
    /// The legacy HTTP+SSE transport (MCP 2024-11-05): `GET` an event stream, `POST` to the
    /// endpoint it names.
    Sse,
    /// Streamable HTTP (MCP 2025-03-26 and later): one URL, `POST` per message.
    StreamableHttp,
}

/// A remote MCP server.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    /// Sent with every request (typically `Authorization`); secrets, never logged.
    pub headers: Vec<(String, String)>,
    pub transport: RemoteTransport,
    /// Allow loopback and private addresses (a server on this host or the local network).
    pub allow_private: bool,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("transport", &self.transport)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    pub name: String,
    pub description: String,
    /// The JSON schema of its arguments (an object schema).
    pub input_schema: serde_json::Value,
}

/// An initialised session with an MCP server. `Send + Sync`: share it behind an `Arc` and
/// call it concurrently. Dropping it ends the session and its tasks.
pub struct McpClient {
    service: RunningService<RoleClient, ClientConfig>,
    stdio: bool,
    diagnostics: Arc<Diagnostics>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("server", &self.server_name())
            .field("stdio", &self.stdio)
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("ironhand", env!("CARGO_PKG_VERSION")),
    )
    // The newest revision that still has the `initialize` handshake every server speaks.
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// The SDK's `initialize` handshake, boxed as a `Send` future where its types are concrete:
/// rustc cannot prove the SDK's futures `Send` for every lifetime when they are awaited
/// deep inside callers' boxed (async_trait) futures.
type Initializing = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    RunningService<RoleClient, ClientConfig>,
                    rmcp::service::ClientInitializeError,
                >,
            > + Send,
    >,
>;

impl McpClient {
    /// Initialises over a byte stream pair (a stdio server's stdout, stdin) within `timeout`.
    pub async fn connect_stdio<R, W>(read: R, write: W, timeout: Duration) -> Result<Self, McpError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let diagnostics = Arc::new(Diagnostics::default());
        let read = GuardedReader::new(read, MAX_MESSAGE_BYTES, diagnostics.clone());
        // Our guard ends the connection first; the SDK's own bound is a backstop.
        let transport = AsyncRwTransport::new_client(read, write)
            .with_max_line_length(MAX_MESSAGE_BYTES.saturating_mul(2));
        let serving: Initializing = Box::pin(serve_client(client_config(), transport));
        let started = tokio::time::timeout(timeout, serving).await;
        let service = match started {
            Ok(Ok(service)) => service,
            Ok(Err(error)) => {
                let error = from_initialize(error, true, Some(&diagnostics));
                return Err(with_non_json_note(error, &diagnostics));
            }
            Err(_) => {
                let garbage = diagnostics.non_json_lines();
                return Err(if garbage > 0 {
                    McpError::Start(format!(
                        "no answer to `initialize` within {:.1} s, and the server wrote {garbage} \
                         line(s) to stdout that are not JSON-RPC (an MCP stdio server must keep \
                         stdout for the protocol and log to stderr)",
                        timeout.as_secs_f64()
                    ))
                } else {
                    McpError::timeout("initialize", timeout)
                });
            }
        };
        tracing::debug!(server = ?server_name(&service), "mcp: stdio server initialised");
        Ok(Self {
            service,
            stdio: true,
            diagnostics,
        })
    }

    /// Initialises with a remote server (streamable HTTP or legacy SSE), its headers sent on
    /// every request, within `timeout`. The URL policy applies first ([`check_url`]), then on
    /// every resolution and redirect.
    pub async fn connect_remote(remote: &Remote, timeout: Duration) -> Result<Self, McpError> {
        let url = check_url(&remote.url, remote.allow_private)?;
        let headers = http_client::header_map(&remote.headers)?;
        let shown = redact_url(&url);
        let diagnostics = Arc::new(Diagnostics::for_url(url.as_str(), &shown));
        let connecting = async {
            match remote.transport {
                RemoteTransport::StreamableHttp => {
                    let client = http_client::client(
                        &url,
                        remote.allow_private,
                        http_client::Purpose::Requests,
                        &diagnostics,
                    )?;
                    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                        .custom_headers(
                            headers
                                .into_iter()
                                .filter_map(|(k, v)| Some((k?, v)))
                                .collect(),
                        )
                        .max_sse_event_size(MAX_MESSAGE_BYTES)
                        .max_json_response_size(MAX_MESSAGE_BYTES);
                    let transport = StreamableHttpClientTransport::with_client(client, config);
                    let serving: Initializing = Box::pin(serve_client(client_config(), transport));
                    serving
                        .await
                        .map_err(|e| from_initialize(e, false, Some(&diagnostics)))
                }
                RemoteTransport::Sse => {
                    let transport =
                        sse::connect(&url, headers, remote.allow_private, diagnostics.clone())
                            .await
                            .map_err(|e| diagnostics.refusal_or(e))?;
                    let serving: Initializing = Box::pin(serve_client(client_config(), transport));
                    serving
                        .await
                        .map_err(|e| from_initialize(e, false, Some(&diagnostics)))
                }
            }
        };
        let service = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(service)) => service,
            Ok(Err(error)) => {
                tracing::debug!(url = %shown, %error, "mcp: remote server did not initialise");
                return Err(error);
            }
            Err(_) => {
                return Err(McpError::timeout(
                    format!("initialize with {shown}"),
                    timeout,
                ));
            }
        };
        tracing::debug!(url = %shown, server = ?server_name(&service), "mcp: remote server initialised");
        Ok(Self {
            service,
            stdio: false,
            diagnostics,
        })
    }

    /// The server's name from its `initialize` answer.
    pub fn server_name(&self) -> Option<String> {
        server_name(&self.service)
    }

    /// Every tool, following pagination cursors (at most [`MAX_TOOL_PAGES`] pages and
    /// [`MAX_TOOLS`] tools; more are dropped with a warning), all within `timeout`.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<McpTool>, McpError> {
        // An owned peer in a boxed `Send` future: the SDK's request futures borrow the peer
        // in a way rustc cannot prove `Send` for every lifetime when awaited deep inside
        // other boxed futures (async_trait), so they never hold a borrow of `self` here.
        let peer = self.service.peer().clone();
        let stdio = self.stdio;
        let diagnostics = self.diagnostics.clone();
        let server = self.server_name();
        let listing: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<McpTool>, McpError>> + Send>,
        > = Box::pin(async move {
            let mut tools = Vec::new();
            let mut cursor: Option<String> = None;
            for page in 0..MAX_TOOL_PAGES {
                let params = cursor
                    .take()
                    .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
                let result = peer
                    .list_tools(params)
                    .await
                    .map_err(|e| from_service(e, stdio, Some(&diagnostics)))?;
                for tool in result.tools {
                    if tools.len() >= MAX_TOOLS {
                        tracing::warn!(server = ?server, "mcp: more than {MAX_TOOLS} tools; the rest are ignored");
                        return Ok(tools);
                    }
                    tools.push(McpTool {
                        name: tool.name.into_owned(),
                        description: tool.description.map(|d| d.into_owned()).unwrap_or_default(),
                        input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
                    });
                }
                match result.next_cursor {
                    Some(next) if !next.is_empty() => cursor = Some(next),
                    _ => return Ok(tools),
                }
                if page + 1 == MAX_TOOL_PAGES {
                    tracing::warn!(server = ?server, "mcp: more than {MAX_TOOL_PAGES} pages of tools; the rest are ignored");
                }
            }
            Ok(tools)
        });
        tokio::time::timeout(timeout, listing)
            .await
            .map_err(|_| McpError::timeout("tools/list", timeout))?
    }

    /// Calls a tool; `arguments` must be a JSON object (anything else is a
    /// [`McpError::Protocol`] without a call). A tool's own failure is a result with
    /// `is_error`; a JSON-RPC error answer is [`McpError::Rpc`] (servers report an unknown
    /// tool or invalid arguments either way). At the deadline the call is abandoned and
    /// cancelled with the server ([`McpError::Timeout`]); the session stays usable.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: serde_json::Value,
        timeout: Duration,
    ) -> Result<McpCallResult, McpError> {
        let serde_json::Value::Object(arguments) = arguments else {
            return Err(McpError::Protocol(format!(
                "the arguments of `{name}` must be a JSON object"
            )));
        };
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        // Dropping the request on timeout sends the server `notifications/cancelled`. (An
        // owned peer in a boxed `Send` future, as in `list_tools`.)
        let peer = self.service.peer().clone();
        let call: std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<rmcp::model::CallToolResult, rmcp::ServiceError>,
                    > + Send,
            >,
        > = Box::pin(async move { peer.call_tool(params).await });
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(result)) => Ok(result.into()),
            Ok(Err(error)) => Err(self.error(error)),
            Err(_) => Err(McpError::timeout(format!("tools/call `{name}`"), timeout)),
        }
    }

    /// Whether the session is gone (the server exited, closed its stdout or its stream).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// Ends the session (closes the transport: a stdio server sees its stdin close; the
    /// caller still owns and reaps the process).
    pub async fn close(mut self) {
        if tokio::time::timeout(CLOSE_TIMEOUT, self.service.close())
            .await
            .is_err()
        {
            tracing::debug!("mcp: the session did not wind down in time; dropped");
        }
    }

    fn error(&self, error: rmcp::ServiceError) -> McpError {
        from_service(error, self.stdio, Some(&self.diagnostics))
    }
}

fn server_name(service: &RunningService<RoleClient, ClientConfig>) -> Option<String> {
    service
        .peer()
        .peer_info()
        .and_then(|info| info.server_info.as_ref().map(|s| s.name.clone()))
}

/// Adds "the server wrote N non-JSON lines" to a failed start when it did.
fn with_non_json_note(error: McpError, diagnostics: &Diagnostics) -> McpError {
    let garbage = diagnostics.non_json_lines();
    match error {
        McpError::Start(message) if garbage > 0 => McpError::Start(format!(
            "{message}; it wrote {garbage} line(s) to stdout that are not JSON-RPC"
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn client_is_send_and_sync() {
        assert_send_sync::<McpClient>();
    }

    /// The futures can be spawned (they are never polled here).
    #[allow(dead_code)]
    fn futures_are_send(client: &McpClient, remote: &Remote) {
        fn is_send<T: Send>(_: T) {}
        let limit = Duration::from_secs(1);
        let (read, write) = tokio::io::duplex(16);
        is_send(McpClient::connect_stdio(read, write, limit));
        is_send(McpClient::connect_remote(remote, limit));
        is_send(client.list_tools(limit));
        is_send(client.call_tool("x", serde_json::json!({}), limit));
    }

    /// As `async_trait` (and a spawned task) use them: inside a boxed `Send` future with
    /// borrowed arguments, where the compiler proves `Send` for every lifetime.
    #[allow(dead_code)]
    fn boxed_futures_are_send<'a>(
        client: &'a McpClient,
        remote: &'a Remote,
        name: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let limit = Duration::from_secs(1);
            let _ = McpClient::connect_remote(remote, limit).await;
            let (read, write) = tokio::io::duplex(16);
            let _ = McpClient::connect_stdio(read, write, limit).await;
            let _ = client.list_tools(limit).await;
            let _ = client.call_tool(name, serde_json::json!({}), limit).await;
            if let Ok(owned) = McpClient::connect_remote(remote, limit).await {
                owned.close().await;
            }
        })
    }

    #[test]
    fn remote_debug_hides_header_values() {
        let remote = Remote {
            url: "https://example.com/mcp".into(),
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            transport: RemoteTransport::StreamableHttp,
            allow_private: false,
        };
        let shown = format!("{remote:?}");
        assert!(
            shown.contains("Authorization") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
