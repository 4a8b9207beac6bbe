//! The MCP family: connectors' tools offered to the model as `mcp__<server>__<tool>`.
//!
//! * Which connectors a run gets is the [`McpService`]'s rule (the operator's, then the
//!   user's own, enabled ones). They are started when a run first asks for the tool list:
//!   stdio servers inside the session's sandbox (its namespaces, user, cgroup and workspace,
//!   with exactly their configured environment), remote ones from the server with their
//!   headers and a timeout.
//! * The [`McpHub`] keeps each session's started connectors for the sandbox's life (a stdio
//!   server dies with its sandbox) and starts one again, once per call, when it died. A
//!   connector that failed to start is left out for a minute; its status says why.
//! * Results: text joined; images, audio and binary resources saved as session files and
//!   named in the text; the whole capped like every tool result.

mod connector;
mod naming;
mod urls;

pub use connector::McpLimits;
pub use urls::PublicUrlPolicy;

use super::{ToolContext, ToolFamily, ToolOutcome};
use async_trait::async_trait;
use connector::{Connector, StartError};
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::mcp::{
    ConnectorFailure, McpServerConfig, McpService, McpTester, McpTransport, TestedTool,
};
use ironhand_core::ports::SandboxProvider;
use ironhand_llm::ToolSpec;
use ironhand_mcp::{McpCallResult, McpContent, McpError};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A connector that failed to start is not tried again for this long (each step asks).
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// A session's connectors unused this long are stopped and forgotten.
const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Characters of a result kept for the `tool` event (the model's copy is capped apart).
const MAX_EVENT_RESULT: usize = 16_000;

#[derive(Default)]
struct SessionState {
    connectors: HashMap<String, Arc<Connector>>,
    failed: HashMap<String, (McpServerConfig, Instant)>,
    /// Offered tool name → (connector, the server's own tool name).
    offered: HashMap<String, (String, String)>,
}

struct SessionConnectors {
    state: tokio::sync::Mutex<SessionState>,
    last_used: Mutex<Instant>,
}

/// Every session's started connectors on this server.
pub struct McpHub {
    service: Arc<McpService>,
    sandboxes: Arc<dyn SandboxProvider>,
    limits: McpLimits,
    sessions: Mutex<HashMap<SessionId, Arc<SessionConnectors>>>,
}

impl McpHub {
    /// Also makes itself the service's tester (`POST /mcp/servers/{name}/test`).
    pub fn new(
        service: Arc<McpService>,
        sandboxes: Arc<dyn SandboxProvider>,
        limits: McpLimits,
    ) -> Arc<Self> {
        let hub = Arc::new(Self {
            service: service.clone(),
            sandboxes,
            limits,
            sessions: Mutex::new(HashMap::new()),
        });
        let tester: Arc<dyn McpTester> = hub.clone();
        service.set_tester(Arc::downgrade(&tester));
        hub
    }

    fn session(&self, session: SessionId) -> Arc<SessionConnectors> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Forget sessions nobody used for a while (their stdio servers stop with them).
        sessions.retain(|_, s| {
            s.last_used
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                < SESSION_IDLE
        });
        let entry = sessions.entry(session).or_insert_with(|| {
            Arc::new(SessionConnectors {
                state: tokio::sync::Mutex::new(SessionState::default()),
                last_used: Mutex::new(Instant::now()),
            })
        });
        *entry.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        entry.clone()
    }

    /// Starts `config` for the session in `context`, recording its status.
    async fn start(
        &self,
        context: &ToolContext,
        config: &McpServerConfig,
    ) -> Result<Connector, StartError> {
        let sandbox = if config.transport == McpTransport::Stdio {
            match context.sandbox().await {
                Ok(sandbox) => Some(sandbox.clone()),
                Err(e) => return Err(StartError::Sandbox(e)),
            }
        } else {
            None
        };
        let started = Connector::start(config.clone(), sandbox, self.limits).await;
        let statuses = self.service.statuses();
        match &started {
            Ok(c) => {
                tracing::info!(server = %config.name, tools = c.tools.len(), "connector started");
                statuses.set(
                    context.user,
                    &config.name,
                    format!("ready: {} tools", c.tools.len()),
                );
            }
            Err(why) => {
                tracing::warn!(server = %config.name, session = %context.session, %why, "connector did not start");
                statuses.set(context.user, &config.name, why.to_string());
            }
        }
        started
    }

    /// The session's connectors brought in line with what the run gets now, and their
    /// tools as specs.
    async fn offer(&self, context: &ToolContext) -> Vec<ToolSpec> {
        let servers = match self.service.servers_for_run(context.user).await {
            Ok(servers) => servers,
            Err(error) => {
                tracing::warn!(%error, "the connectors of a run could not be read");
                return Vec::new();
            }
        };
        let session = self.session(context.session);
        let mut state = session.state.lock().await;
        state.offered.clear();
        // Connectors no longer configured (removed, disabled, changed) stop.
        let wanted: HashMap<&str, &McpServerConfig> =
            servers.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = state
            .connectors
            .iter()
            .filter(|(name, c)| {
                wanted.get(name.as_str()).is_none_or(|w| **w != c.config) || !c.is_usable()
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(old) = state.connectors.remove(&name)
                && let Some(old) = Arc::into_inner(old)
            {
                old.stop().await;
            }
        }
        state.failed.retain(|name, (config, at)| {
            wanted.get(name.as_str()) == Some(&&*config) && at.elapsed() < RETRY_AFTER
        });

        let mut specs = Vec::new();
        let mut taken = HashSet::new();
        let mut cut = 0usize;
        for config in &servers {
            if !state.connectors.contains_key(&config.name)
                && !state.failed.contains_key(&config.name)
            {
                match self.start(context, config).await {
                    Ok(c) => {
                        state.connectors.insert(config.name.clone(), Arc::new(c));
                    }
                    Err(_) => {
                        state
                            .failed
                            .insert(config.name.clone(), (config.clone(), Instant::now()));
                    }
                }
            }
            let Some(connector) = state.connectors.get(&config.name).cloned() else {
                continue;
            };
            for tool in &connector.tools {
                if specs.len() >= self.limits.max_tools {
                    cut += 1;
                    continue;
                }
                let name = naming::tool_name(&config.name, &tool.name, &taken);
                taken.insert(name.clone());
                state
                    .offered
                    .insert(name.clone(), (config.name.clone(), tool.name.clone()));
                specs.push(ToolSpec {
                    name,
                    description: naming::description(&config.name, &tool.description),
                    parameters: naming::parameters(&tool.input_schema),
                });
            }
        }
        if cut > 0 {
            tracing::warn!(
                session = %context.session,
                offered = specs.len(),
                left_out = cut,
                "connectors offer more tools than mcp.max_tools: the rest are not offered"
            );
        }
        specs
    }

    async fn call(&self, context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        let session = self.session(context.session);
        let mut state = session.state.lock().await;
        let Some((server, tool)) = state.offered.get(function).cloned() else {
            return super::unknown_tool(function);
        };
        let arguments = match args {
            Value::Object(_) => args.clone(),
            Value::Null => json!({}),
            _ => return ToolOutcome::failed("The arguments must be a JSON object."),
        };
        if let Some(sandbox) = context.started_sandbox() {
            sandbox.keep_alive();
        }
        let mut restarted = false;
        loop {
            let connector = match state.connectors.get(&server).cloned() {
                Some(c) if c.is_usable() => c,
                other => {
                    // Gone (the server died, the sandbox stopped): start it once again.
                    let config = match other {
                        Some(c) => c.config.clone(),
                        None => match self.config_of(context.user, &server).await {
                            Some(config) => config,
                            None => {
                                return ToolOutcome::failed(format!(
                                    "The connector `{server}` is no longer available."
                                ));
                            }
                        },
                    };
                    if restarted {
                        return ToolOutcome::failed(format!(
                            "The connector `{server}` stopped and could not be started again."
                        ));
                    }
                    restarted = true;
                    match self.start(context, &config).await {
                        Ok(c) => {
                            let c = Arc::new(c);
                            state.connectors.insert(server.clone(), c.clone());
                            c
                        }
                        Err(why) => {
                            state.connectors.remove(&server);
                            return ToolOutcome::failed(format!(
                                "The connector `{server}` is not available: {why}"
                            ));
                        }
                    }
                }
            };
            match connector
                .clone()
                .call(tool.clone(), arguments.clone(), self.limits)
                .await
            {
                Ok(result) => return self.outcome(context, &server, &tool, result).await,
                Err(McpError::Closed) if !restarted => {
                    tracing::info!(%server, "connector closed during a call; starting it again");
                    state.connectors.remove(&server);
                    continue;
                }
                Err(error) => {
                    let said = connector.stderr_tail();
                    let mut message = format!("The connector `{server}` failed: {error}");
                    if !said.is_empty() && matches!(error, McpError::Closed) {
                        let tail: String = said
                            .chars()
                            .rev()
                            .take(400)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        message.push_str(&format!(" (it said: {tail})"));
                    }
                    return ToolOutcome::failed(message);
                }
            }
        }
    }

    async fn config_of(&self, user: UserId, name: &str) -> Option<McpServerConfig> {
        self.service
            .servers_for_run(user)
            .await
            .ok()?
            .into_iter()
            .find(|s| s.name == name)
    }

    /// The model's and the event's view of a result; binary parts kept as session files.
    async fn outcome(
        &self,
        context: &ToolContext,
        server: &str,
        tool: &str,
        result: McpCallResult,
    ) -> ToolOutcome {
        let mut parts: Vec<String> = Vec::new();
        let mut files: Vec<Value> = Vec::new();
        for (n, block) in result.content.into_iter().enumerate() {
            let binary = match block {
                McpContent::Text(text) => {
                    parts.push(text);
                    None
                }
                McpContent::Link { uri, name } => {
                    parts.push(format!("[resource link: {name} <{uri}>]"));
                    None
                }
                McpContent::Resource {
                    uri,
                    text: Some(text),
                    ..
                } => {
                    parts.push(format!("[resource {uri}]\n{text}"));
                    None
                }
                McpContent::Resource {
                    uri,
                    mime_type,
                    blob: Some(blob),
                    ..
                } => Some((mime_type.unwrap_or_default(), blob, Some(uri))),
                McpContent::Resource { uri, .. } => {
                    parts.push(format!("[resource {uri}: empty]"));
                    None
                }
                McpContent::Image { mime_type, data } | McpContent::Audio { mime_type, data } => {
                    Some((mime_type, data, None))
                }
            };
            if let Some((mime, bytes, uri)) = binary {
                let name = format!("{server}-{tool}-{}.{}", n + 1, extension(&mime));
                match context
                    .files
                    .store_generated(context.user, context.session, &name, bytes)
                    .await
                {
                    Ok(file) => {
                        parts.push(format!(
                            "[{} saved as the session file `{}`{}]",
                            if mime.is_empty() {
                                "data"
                            } else {
                                mime.as_str()
                            },
                            file.filename,
                            uri.map(|u| format!(" from {u}")).unwrap_or_default()
                        ));
                        files.push(file.info(None));
                    }
                    Err(why) => parts.push(format!("[{mime} content not kept: {why}]")),
                }
            }
        }
        let text = ironhand_core::text::without_nul(&parts.join("\n")).into_owned();
        let mut data = json!({ "result": text });
        if !files.is_empty() {
            data["files"] = Value::Array(files);
        }
        if let Some(structured) = result.structured {
            data["structured"] = structured;
        }
        let shown: String = text.chars().take(MAX_EVENT_RESULT).collect();
        let content = Some(json!({ "result": shown }));
        if result.is_error {
            ToolOutcome {
                success: false,
                message: format!("The connector `{server}` reported an error."),
                data,
                content,
            }
        } else {
            ToolOutcome::ok(format!("`{tool}` of `{server}` answered."), data, content)
        }
    }
}

fn extension(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/mpeg" => "mp3",
        "application/pdf" => "pdf",
        "application/json" => "json",
        m if m.starts_with("text/") => "txt",
        _ => "bin",
    }
}

#[async_trait]
impl McpTester for McpHub {
    async fn list_tools(
        &self,
        user: UserId,
        server: &McpServerConfig,
    ) -> Result<Vec<TestedTool>, ConnectorFailure> {
        // A stdio server is tried in a sandbox of its own, removed afterwards.
        let scratch = SessionId::new();
        let sandbox = if server.transport == McpTransport::Stdio {
            Some(
                self.sandboxes
                    .sandbox_for(scratch, user)
                    .await
                    .map_err(|e| ConnectorFailure::new(StartError::Sandbox(e)))?,
            )
        } else {
            None
        };
        let started = Connector::start(server.clone(), sandbox.clone(), self.limits).await;
        match &started {
            Ok(c) => {
                tracing::info!(server = %server.name, tools = c.tools.len(), "connector tested")
            }
            Err(why) => tracing::info!(server = %server.name, %why, "connector test failed"),
        }
        let tools = match started {
            Ok(connector) => {
                let tools = connector
                    .tools
                    .iter()
                    .map(|t| TestedTool {
                        name: t.name.clone(),
                        description: t
                            .description
                            .chars()
                            .take(naming::MAX_DESCRIPTION)
                            .collect(),
                    })
                    .collect();
                connector.stop().await;
                Ok(tools)
            }
            Err(why) => Err(ConnectorFailure::new(why)),
        };
        if sandbox.is_some()
            && let Err(e) = self.sandboxes.destroy(scratch, true).await
        {
            tracing::warn!(error = %e, "a connector test's sandbox was not removed");
        }
        tools
    }
}

/// The family the registry holds: every session's connectors through the hub.
pub struct McpTools {
    hub: Arc<McpHub>,
}

impl McpTools {
    pub fn new(hub: Arc<McpHub>) -> Self {
        Self { hub }
    }
}

#[async_trait]
impl ToolFamily for McpTools {
    fn group(&self) -> &'static str {
        "mcp"
    }

    async fn specs(&self, context: &ToolContext) -> Vec<ToolSpec> {
        self.hub.offer(context).await
    }

    async fn call(&self, context: &ToolContext, function: &str, args: &Value) -> ToolOutcome {
        self.hub.call(context, function, args).await
    }
}
