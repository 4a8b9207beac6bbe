//! The browser of a session's sandbox: a real Chromium the agent drives with the browser
//! tools (docs/api.md, The agent's tools) and the user watches, and can take over, through a VNC
//! stream. Started lazily by the sandbox on the first browser call; see the `local`
//! provider (`ironhand-sandbox`) for where it runs.

use crate::ports::sandbox::SandboxResult;
use async_trait::async_trait;
use serde_json::Value;

/// What one browser tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserOutcome {
    pub success: bool,
    /// For the model: what happened, in words.
    pub message: String,
    /// For the model: URL, title, the numbered interactive elements, the page as text.
    pub data: Value,
    /// A JPEG of the viewport after the call, when a page exists.
    pub screenshot: Option<Vec<u8>>,
}

impl BrowserOutcome {
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            data: Value::Null,
            screenshot: None,
        }
    }
}

/// A byte stream to the browser's VNC server (plain RFB).
pub type VncStream = Box<dyn VncIo>;

pub trait VncIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> VncIo for T {}

#[async_trait]
pub trait SandboxBrowser: Send + Sync {
    /// Runs one browser tool (`browser_view`, `browser_navigate`, …, `browser_restart`).
    /// Never fails as a call: a bad index, URL or page is a failed outcome.
    async fn call(&self, function: &str, args: &Value) -> BrowserOutcome;
    /// A new connection to the browser's display (RFB). Several may be open at once.
    async fn connect_vnc(&self) -> SandboxResult<VncStream>;
    /// Whether its processes still run.
    fn is_running(&self) -> bool;
}
