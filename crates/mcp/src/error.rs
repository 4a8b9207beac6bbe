//! [`McpError`] and the translation of the SDK's, the HTTP client's and the transports'
//! errors into it. Messages name URLs without their query and never carry header values.

use std::error::Error as StdError;
use std::time::Duration;

use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpError;

use crate::policy::BlockedAddress;

/// What can go wrong talking to an MCP server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server could not be started or initialised (it exited, refused `initialize`,
    /// answered with something that is not MCP, or the configuration is unusable).
    #[error("failed to start: {0}")]
    Start(String),
    /// No answer within the caller's time limit.
    #[error("{what} timed out after {secs:.1} s")]
    Timeout { what: String, secs: f64 },
    /// The server broke the protocol, or a request was malformed before it was sent.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered a request with a JSON-RPC error.
    #[error("the server answered with error {code}: {message}")]
    Rpc { code: i32, message: String },
    /// The connection is gone (the server exited, closed its stdout or its event stream).
    #[error("the connection to the MCP server is closed")]
    Closed,
    /// The URL policy refused the server's address.
    #[error("refused: {0}")]
    Refused(String),
    /// An HTTP failure talking to a remote server.
    #[error("HTTP error: {0}")]
    Http(String),
}

impl McpError {
    pub(crate) fn timeout(what: impl Into<String>, limit: Duration) -> Self {
        Self::Timeout {
            what: what.into(),
            secs: limit.as_secs_f64(),
        }
    }
}

/// Longest server-supplied text kept in an error.
const MAX_ERROR_TEXT: usize = 2000;

pub(crate) fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The next error down the chain. The SDK's HTTP error wraps the client's error without
/// naming it as its source; this looks through that wrapper.
fn next_source<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(StreamableHttpError::Client(inner)) =
        error.downcast_ref::<StreamableHttpError<reqwest_013::Error>>()
    {
        return Some(inner);
    }
    error.source()
}

/// The error and its sources, `a: b: c`, without repeating a source whose text its parent
/// already shows.
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = next_source(error);
    while let Some(current) = source {
        let part = current.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = next_source(current);
    }
    truncate(&text)
}

/// The URL policy's resolver refused the address somewhere down this chain.
fn blocked(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(blocked) = e.downcast_ref::<BlockedAddress>() {
            return Some(blocked.0.clone());
        }
        current = next_source(e);
    }
    None
}

/// A reqwest error, without the URL it carries (a query string may hold a key).
pub(crate) fn from_reqwest(error: reqwest_013::Error) -> McpError {
    if let Some(refused) = blocked(&error) {
        return McpError::Refused(refused);
    }
    McpError::Http(chain(&error.without_url()))
}

/// A transport's error (stdio pipe, HTTP client) surfaced by the SDK.
fn from_transport(
    error: &(dyn StdError + 'static),
    stdio: bool,
    diagnostics: Option<&Diagnostics>,
) -> McpError {
    if let Some(refused) = blocked(error).or_else(|| diagnostics.and_then(Diagnostics::refusal)) {
        return McpError::Refused(refused);
    }
    if stdio {
        // Writing to a server whose stdin is gone.
        return McpError::Closed;
    }
    let text = chain(error);
    McpError::Http(match diagnostics {
        Some(d) => d.scrub(text),
        None => text,
    })
}

/// What a transport noticed about its server that explains a failure better than "closed":
/// why it closed the connection, and (stdio) how many lines of output were not JSON-RPC.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    reason: std::sync::Mutex<Option<String>>,
    refused: std::sync::Mutex<Option<String>>,
    non_json_lines: std::sync::atomic::AtomicU64,
    /// A remote server's URL as configured and as shown (without its query).
    url: Option<(String, String)>,
}

impl Diagnostics {
    /// Diagnostics for a remote server: its URL is replaced by the shown form in errors.
    pub(crate) fn for_url(full: &str, shown: &str) -> Self {
        Self {
            url: (full != shown).then(|| (full.to_owned(), shown.to_owned())),
            ..Self::default()
        }
    }

    /// Records that the DNS policy refused an address (the SDK may lose the error's cause).
    pub(crate) fn refused(&self, reason: &str) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }

    /// An HTTP failure caused by the DNS policy becomes the refusal it is.
    pub(crate) fn refusal_or(&self, error: McpError) -> McpError {
        match (error, self.refusal()) {
            (McpError::Http(_), Some(refused)) => McpError::Refused(refused),
            (error, _) => error,
        }
    }

    fn refusal(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `text` without the configured URL's query string.
    pub(crate) fn scrub(&self, text: String) -> String {
        match &self.url {
            Some((full, shown)) if text.contains(full.as_str()) => {
                text.replace(full.as_str(), shown)
            }
            _ => text,
        }
    }

    /// Records why the transport closed; the first reason wins.
    pub(crate) fn closed_because(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason.into());
        }
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn saw_non_json_line(&self) {
        self.non_json_lines
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn non_json_lines(&self) -> u64 {
        self.non_json_lines
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Applies [`Diagnostics::scrub`] to an error's text.
fn scrubbed(error: McpError, diagnostics: Option<&Diagnostics>) -> McpError {
    let Some(d) = diagnostics else {
        return error;
    };
    match error {
        McpError::Start(text) => McpError::Start(d.scrub(text)),
        McpError::Protocol(text) => McpError::Protocol(d.scrub(text)),
        McpError::Http(text) => McpError::Http(d.scrub(text)),
        McpError::Rpc { code, message } => McpError::Rpc {
            code,
            message: d.scrub(message),
        },
        other => other,
    }
}

pub(crate) fn from_initialize(
    error: ClientInitializeError,
    stdio: bool,
    diagnostics: Option<&Diagnostics>,
) -> McpError {
    scrubbed(initialize_error(error, stdio, diagnostics), diagnostics)
}

fn initialize_error(
    error: ClientInitializeError,
    stdio: bool,
    diagnostics: Option<&Diagnostics>,
) -> McpError {
    let closed_because = || diagnostics.and_then(Diagnostics::reason);
    match error {
        ClientInitializeError::TransportError { error, .. } => {
            if let Some(reason) = closed_because() {
                return McpError::Start(reason);
            }
            match from_transport(error.error.as_ref(), stdio, diagnostics) {
                McpError::Closed => McpError::Start(
                    "the server closed its stdin before `initialize` could be sent (did it exit?)"
                        .into(),
                ),
                other => other,
            }
        }
        ClientInitializeError::ConnectionClosed(_) => {
            McpError::Start(closed_because().unwrap_or_else(|| {
                if stdio {
                    "the server closed its output before answering `initialize` (did it exit?)"
                        .into()
                } else {
                    "the server closed the connection before answering `initialize`".into()
                }
            }))
        }
        ClientInitializeError::JsonRpcError(data) => McpError::Start(format!(
            "the server refused `initialize` with error {}: {}",
            data.code.0,
            truncate(&data.message)
        )),
        ClientInitializeError::Cancelled => McpError::Closed,
        other => McpError::Start(truncate(&other.to_string())),
    }
}

pub(crate) fn from_service(
    error: ServiceError,
    stdio: bool,
    diagnostics: Option<&Diagnostics>,
) -> McpError {
    scrubbed(service_error(error, stdio, diagnostics), diagnostics)
}

fn service_error(error: ServiceError, stdio: bool, diagnostics: Option<&Diagnostics>) -> McpError {
    match error {
        ServiceError::McpError(data) => McpError::Rpc {
            code: data.code.0,
            message: truncate(&data.message),
        },
        ServiceError::TransportSend(error) => {
            match from_transport(error.error.as_ref(), stdio, diagnostics) {
                McpError::Closed => diagnostics
                    .and_then(Diagnostics::reason)
                    .map_or(McpError::Closed, McpError::Protocol),
                other => other,
            }
        }
        ServiceError::TransportClosed | ServiceError::Cancelled { .. } => diagnostics
            .and_then(Diagnostics::reason)
            .map_or(McpError::Closed, McpError::Protocol),
        ServiceError::Timeout { timeout } => McpError::timeout("the request", timeout),
        ServiceError::UnexpectedResponse => {
            McpError::Protocol("the server answered with an unexpected result type".into())
        }
        other => McpError::Protocol(truncate(&other.to_string())),
    }
}
