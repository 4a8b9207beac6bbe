//! One started connector: a stdio server running in a sandbox, or a session with a remote
//! server, and the tools it listed.

use futures::future::BoxFuture;
use ironhand_core::mcp::{McpScope, McpServerConfig, McpTransport};
use ironhand_core::ports::Sandbox;
use ironhand_core::ports::sandbox::ProcessHandle;
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
    ) -> BoxFuture<'static, Result<Self, String>> {
        // Boxed here, with everything owned: the SDK's futures are `Send`, but rustc cannot
        // prove it through the generic lifetimes of the callers' boxed (async_trait) futures.
        Box::pin(Self::started(config, sandbox, limits))
    }

    async fn started(
        config: McpServerConfig,
        sandbox: Option<Arc<dyn Sandbox>>,
        limits: McpLimits,
    ) -> Result<Self, String> {
        let (client, process) = match config.transport {
            McpTransport::Stdio => {
                let sandbox = sandbox.ok_or("failed to start: no sandbox for a stdio server")?;
                let command = config
                    .command
                    .as_deref()
                    .ok_or("failed to start: no command configured")?;
                let env: Vec<(String, String)> = config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let process = sandbox
                    .spawn_process(command, &config.args, &env)
                    .await
                    .map_err(|e| format!("failed to start: {e}"))?;
                let handle = process.handle.clone();
                match McpClient::connect_stdio(process.stdout, process.stdin, limits.start_timeout)
                    .await
                {
                    Ok(client) => (client, Some(handle)),
                    Err(error) => {
                        let said = handle.stderr_tail();
                        handle.kill();
                        return Err(with_stderr(start_error(error), &said));
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
                    .map_err(start_error)?;
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
                return Err(with_stderr(
                    format!("failed to list its tools: {error}"),
                    &said,
                ));
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

fn start_error(error: McpError) -> String {
    match error {
        McpError::Start(_) => error.to_string(),
        other => format!("failed to start: {other}"),
    }
}

/// The error, followed by the end of what the server wrote on stderr (bounded).
fn with_stderr(message: String, stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        return message;
    }
    let tail: String = stderr
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{message} (the server said: {tail})")
}
