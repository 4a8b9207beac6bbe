//! One started connector: a stdio server running in a sandbox, or a session with a remote
//! server, and the tools it listed.

use futures::future::BoxFuture;
use ironhand_core::mcp::{McpScope, McpServerConfig, McpTransport};
use ironhand_core::ports::Sandbox;
use ironhand_core::ports::sandbox::{ProcessHandle, SandboxError};
use ironhand_mcp::{McpCallResult, McpClient, McpError, McpTool, Remote, RemoteTransport};
use std::sync::Arc;
use std::time::Duration;

/// Limits of talking to connectors (`[mcp]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpLimits {
    /// Starting (or reaching) a server and listing its tools.
    pub start_timeout: Duration,
    /// One tool call.
    pub call_timeout: Duration,
    /// Connectors' tools offered to the model at most (after the built-in tools).
    pub max_tools: usize,
    /// Users' remote connectors may reach loopback and private addresses.
    pub user_private_urls: bool,
}

impl Default for McpLimits {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(120),
            max_tools: 64,
            user_private_urls: false,
        }
    }
}

/// Why a connector did not start or list its tools: the status a user reads ("failed to
/// start: …").
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("failed to start: no sandbox for a stdio server")]
    NoSandbox,
    #[error("failed to start: no command configured")]
    NoCommand,
    /// The sandbox could not be had, or could not run the command.
    #[error("failed to start: {0}")]
    Sandbox(#[source] SandboxError),
    /// The server did not start or initialise: the error says "failed to start: …" itself.
    #[error(transparent)]
    Handshake(McpError),
    /// It could not be reached.
    #[error("failed to start: {0}")]
    Connect(#[source] McpError),
    #[error("failed to list its tools: {0}")]
    ListTools(#[source] McpError),
    /// The error, followed by the end of what the server wrote on stderr.
    #[error("{error} (the server said: {stderr})")]
    WithStderr {
        #[source]
        error: Box<StartError>,
        stderr: String,
    },
}

impl StartError {
    fn connecting(error: McpError) -> Self {
        match error {
            McpError::Start(_) => Self::Handshake(error),
            other => Self::Connect(other),
        }
    }

    /// This error, followed by the end of what the server wrote on stderr (bounded).
    fn with_stderr(self, stderr: &str) -> Self {
        let stderr = stderr.trim();
        if stderr.is_empty() {
            return self;
        }
        let tail: String = stderr
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Self::WithStderr {
            error: Box::new(self),
            stderr: tail,
        }
    }
}

pub(crate) struct Connector {
    /// The configuration it was started with: a changed one starts it afresh.
    pub(crate) config: McpServerConfig,
    client: McpClient,
    process: Option<Arc<dyn ProcessHandle>>,
    pub(crate) tools: Vec<McpTool>,
}

impl Connector {
    /// Starts `config` (a stdio server in `sandbox`, which must then be given) and lists
    /// its tools. The error is the status a user reads ("failed to start: …").
    pub(crate) fn start(
        config: McpServerConfig,
        sandbox: Option<Arc<dyn Sandbox>>,
        limits: McpLimits,
    ) -> BoxFuture<'static, Result<Self, StartError>> {
        // Boxed here, with everything owned: the SDK's futures are `Send`, but rustc cannot
        // prove it through the generic lifetimes of the callers' boxed (async_trait) futures.
        Box::pin(Self::started(config, sandbox, limits))
    }

    async fn started(
        config: McpServerConfig,
        sandbox: Option<Arc<dyn Sandbox>>,
        limits: McpLimits,
    ) -> Result<Self, StartError> {
        let (client, process) = match config.transport {
            McpTransport::Stdio => {
                let sandbox = sandbox.ok_or(StartError::NoSandbox)?;
                let command = config.command.as_deref().ok_or(StartError::NoCommand)?;
                let env: Vec<(String, String)> = config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let process = sandbox
                    .spawn_process(command, &config.args, &env)
                    .await
                    .map_err(StartError::Sandbox)?;
                let handle = process.handle.clone();
                match McpClient::connect_stdio(process.stdout, process.stdin, limits.start_timeout)
                    .await
                {
                    Ok(client) => (client, Some(handle)),
                    Err(error) => {
                        let said = handle.stderr_tail();
                        handle.kill();
                        return Err(StartError::connecting(error).with_stderr(&said));
                    }
                }
            }
            McpTransport::Sse | McpTransport::StreamableHttp => {
                let remote = Remote {
                    url: config.url.clone().unwrap_or_default(),
                    headers: config
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    transport: if config.transport == McpTransport::Sse {
                        RemoteTransport::Sse
                    } else {
                        RemoteTransport::StreamableHttp
                    },
                    allow_private: config.scope == McpScope::Operator || limits.user_private_urls,
                };
                let client = McpClient::connect_remote(&remote, limits.start_timeout)
                    .await
                    .map_err(StartError::connecting)?;
                (client, None)
            }
        };
        let tools = match client.list_tools(limits.start_timeout).await {
            Ok(tools) => tools,
            Err(error) => {
                let said = process
                    .as_ref()
                    .map(|p| p.stderr_tail())
                    .unwrap_or_default();
                if let Some(p) = &process {
                    p.kill();
                }
                return Err(StartError::ListTools(error).with_stderr(&said));
            }
        };
        Ok(Self {
            config,
            client,
            process,
            tools,
        })
    }

    /// Whether it can still take calls.
    pub(crate) fn is_usable(&self) -> bool {
        !self.client.is_closed() && self.process.as_ref().is_none_or(|p| p.is_running())
    }

    pub(crate) fn call(
        self: Arc<Self>,
        tool: String,
        arguments: serde_json::Value,
        limits: McpLimits,
    ) -> BoxFuture<'static, Result<McpCallResult, McpError>> {
        Box::pin(async move {
            self.client
                .call_tool(&tool, arguments, limits.call_timeout)
                .await
        })
    }

    /// What the server said on stderr lately (stdio servers), for a failed call's message.
    pub(crate) fn stderr_tail(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.stderr_tail())
            .unwrap_or_default()
    }

    pub(crate) fn stop(self) -> BoxFuture<'static, ()> {
        if let Some(p) = &self.process {
            p.kill();
        }
        Box::pin(self.client.close())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_read_as_the_status_a_user_sees() {
        assert_eq!(
            StartError::connecting(McpError::Start("it exited".into())).to_string(),
            "failed to start: it exited"
        );
        assert_eq!(
            StartError::connecting(McpError::Closed).to_string(),
            "failed to start: the connection to the MCP server is closed"
        );
        assert_eq!(
            StartError::ListTools(McpError::Closed)
                .with_stderr("  boom\n")
                .to_string(),
            "failed to list its tools: the connection to the MCP server is closed \
             (the server said: boom)"
        );
        assert_eq!(
            StartError::NoCommand.with_stderr("  ").to_string(),
            "failed to start: no command configured"
        );
        let long = "x".repeat(700);
        let said = StartError::NoSandbox.with_stderr(&long).to_string();
        assert!(said.ends_with(&format!("(the server said: {})", "x".repeat(600))));
    }
}
