//! Connectors: the MCP tool servers a session's agent may use. The operator configures some
//! for everyone (read-only to users); each user may add their own when the operator allows
//! it. Secrets of a connector (its environment and its HTTP headers) are sealed at rest
//! with a key of their own ([`SecretSealer`]) and never leave the server: answers show only
//! their names. [`McpService`] holds the rules; the agent's MCP tool family starts and calls
//! the servers (stdio ones inside the session's sandbox).

mod rules;
mod sealing;
mod service;

/// The storage port of users' connectors, in `ports` with the others.
pub use crate::ports::mcp_servers::McpServerStore;
pub use rules::{McpRules, valid_server_name};
pub use sealing::{SealError, SecretSealer};
pub use service::{
    ConnectorFailure, McpService, McpStatusBoard, McpTester, TestedTool, UrlPolicy, UrlRefused,
};

use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a connector is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    /// A program speaking JSON-RPC on stdin/stdout, run inside the session's sandbox.
    Stdio,
    /// The older HTTP + server-sent events transport (MCP 2024-11-05).
    Sse,
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp,
}

impl McpTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Sse => "sse",
            Self::StreamableHttp => "streamable-http",
        }
    }

    /// The API's names (docs/api.md); `http` and `streamable_http` as Claude Desktop and Cursor
    /// files spell it.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "stdio" => Some(Self::Stdio),
            "sse" => Some(Self::Sse),
            "streamable-http" | "streamable_http" | "http" => Some(Self::StreamableHttp),
            _ => None,
        }
    }
}

/// Whose connector it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum McpScope {
    /// Added by a user from the settings page; theirs only.
    User,
    /// From the server's configuration; every user's, read-only.
    Operator,
}

/// A connector with its secrets in clear: only ever in memory, on its way to a server.
#[derive(Clone, PartialEq, Eq)]
pub struct McpServerConfig {
    pub name: String,
    pub scope: McpScope,
    pub transport: McpTransport,
    /// stdio: the program (found on the sandbox's `PATH`) and its arguments.
    pub command: Option<String>,
    pub args: Vec<String>,
    /// stdio: the server's whole environment besides the sandbox's basic one (`PATH`,
    /// `HOME`, `LANG`…). Values are secrets.
    pub env: BTreeMap<String, String>,
    /// sse / streamable-http: the endpoint.
    pub url: Option<String>,
    /// sse / streamable-http: sent with every request. Values are secrets.
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    pub description: Option<String>,
}

/// Secrets stay out of logs, whatever prints a config.
impl std::fmt::Debug for McpServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerConfig")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("transport", &self.transport)
            .field("command", &self.command)
            .field("args", &self.args.len())
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .field("header_keys", &self.headers.keys().collect::<Vec<_>>())
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl McpServerConfig {
    /// What the API shows of it: everything but the secrets' values.
    pub fn view(&self, status: Option<String>) -> McpServerView {
        McpServerView {
            name: self.name.clone(),
            transport: self.transport,
            url: self.url.clone(),
            command: self.command.clone(),
            args: (self.transport == McpTransport::Stdio).then(|| self.args.clone()),
            env_keys: (self.transport == McpTransport::Stdio)
                .then(|| self.env.keys().cloned().collect()),
            header_keys: (self.transport != McpTransport::Stdio)
                .then(|| self.headers.keys().cloned().collect()),
            enabled: self.enabled,
            scope: self.scope,
            description: self.description.clone(),
            status,
        }
    }
}

/// `McpServer` of the API (docs/api.md, section Connectors (MCP)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct McpServerView {
    pub name: String,
    pub transport: McpTransport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_keys: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_keys: Option<Vec<String>>,
    pub enabled: bool,
    pub scope: McpScope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The last start or test of it on this server ("ready: 12 tools", "failed to start:
    /// …"); absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A user's connector as `PUT /mcp/servers` sends it. In `env` and `headers` a `null` value
/// keeps the stored secret of that name; a name left out is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpServerInput {
    pub name: String,
    pub transport: String,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, Option<String>>>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, Option<String>>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// A user's connector as stored: the secrets sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMcpServer {
    pub user_id: UserId,
    pub name: String,
    pub transport: String,
    /// `{command, args, url, env_keys, header_keys, description}` as JSON text.
    pub settings: String,
    /// `{env: {..}, headers: {..}}` sealed by [`SecretSealer`].
    pub secrets: String,
    pub enabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}
