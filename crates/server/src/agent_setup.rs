//! Builds the agent side from settings: the model client, web search, the sandbox
//! provider, the event publisher, the session service and the agent itself.

use crate::config::Settings;
use anyhow::Context;
use ironhand_agent::tools::{McpHub, McpLimits, McpTools, PublicUrlPolicy, ToolRegistry};
use ironhand_core::mcp::{McpService, SecretSealer, UrlPolicy};

use ironhand_agent::{Agent, AgentConfig, WorkerConfig};
use ironhand_core::ports::{EventBus, SandboxProvider, Store};
use ironhand_core::session::{EventPublisher, SessionService};
use ironhand_core::workspace::{WorkspaceSettings, WorkspaceSnapshots};
use ironhand_llm::{ChatModel, LlmClient, LlmConfig};
use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
use ironhand_sandboxd::DockerSandboxProvider;
use ironhand_search::{SearchConfig, SearchProvider, provider_from_config};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct AgentParts {
    /// This instance's id: its worker's id and the holder of its sandboxes.
    pub instance_id: String,
    pub sessions: Arc<SessionService>,
    pub sandboxes: Arc<dyn SandboxProvider>,
    pub files: Arc<ironhand_core::files::FileService>,
    pub billing: Arc<ironhand_core::billing::BillingService>,
    pub workspaces: Arc<WorkspaceSnapshots>,
    pub mcp: Arc<McpService>,
    pub agent: Arc<Agent>,
    pub llm_model: Option<String>,
    pub search_provider: Option<&'static str>,
}

fn model(settings: &Settings) -> anyhow::Result<Option<Arc<dyn ChatModel>>> {
    let l = &settings.llm;
    let (Some(base_url), Some(model)) = (&l.base_url, &l.model) else {
        tracing::warn!(
            "LLM_BASE_URL / LLM_MODEL are not set: chats will explain how to configure a model"
        );
        return Ok(None);
    };
    let config = LlmConfig {
        base_url: base_url.clone(),
        api_key: l.api_key.as_ref().map(|k| k.expose_secret().to_string()),
        model: model.clone(),
        request_timeout: Duration::from_secs(l.request_timeout_secs),
        stall_timeout: Duration::from_secs(l.stall_timeout_secs),
        total_timeout: Duration::from_secs(l.total_timeout_secs),
        max_retries: l.max_retries,
        retry_base_delay: Duration::from_millis(500),
        max_output_tokens: l.max_output_tokens,
        temperature: l.temperature,
        context_window: l.context_window,
    };
    let client = LlmClient::new(config).map_err(|e| anyhow::anyhow!("llm: {e}"))?;
    Ok(Some(Arc::new(client)))
}

fn search(settings: &Settings) -> anyhow::Result<Option<Arc<dyn SearchProvider>>> {
    let s = &settings.search;
    let config = SearchConfig {
        provider: s.provider.clone().filter(|p| !p.is_empty()),
        url: s.url.clone(),
        api_key: s.api_key.as_ref().map(|k| k.expose_secret().to_string()),
        timeout: Duration::from_secs(s.timeout_secs),
        max_results: s.max_results,
    };
    provider_from_config(&config).map_err(|e| anyhow::anyhow!("search: {e}"))
}

/// Where workspaces live: `sandbox.root_dir`, else `<data_dir>/sandboxes`. A server running
/// as root runs sandboxes as an unprivileged user, who must be able to pass through every
/// parent directory; when the data dir sits somewhere private (e.g. under `/root`), the
/// workspaces move to `/var/lib/ironhand/sandboxes/<data dir hash>` instead of failing.
fn sandbox_root(settings: &Settings) -> anyhow::Result<PathBuf> {
    if let Some(root) = &settings.sandbox.root_dir {
        return Ok(root.clone());
    }
    let data_dir = &settings.server.data_dir;
    let preferred = data_dir.join("sandboxes");
    let running_as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let canonical = std::fs::canonicalize(data_dir)
        .with_context(|| format!("data directory {}", data_dir.display()))?;
    let private_parent = canonical
        .ancestors()
        .any(|dir| std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 == 0));
    if !running_as_root || !private_parent {
        return Ok(preferred);
    }
    let hash = hex::encode(&Sha256::digest(canonical.display().to_string().as_bytes())[..8]);
    let fallback = PathBuf::from("/var/lib/ironhand/sandboxes").join(hash);
    tracing::warn!(
        data_dir = %canonical.display(),
        workspaces = %fallback.display(),
        "the data directory is not reachable for the sandbox user (a parent lacks o+x): keeping workspaces elsewhere; set sandbox.root_dir to choose"
    );
    Ok(fallback)
}

/// The local provider's settings: the `[sandbox]` section, with the config file the server
/// loaded added to the paths a sandbox must not see.
fn sandbox_config(settings: &Settings, root: PathBuf) -> LocalSandboxConfig {
    let b = &settings.sandbox;
    LocalSandboxConfig {
        root_dir: root,
        network: b.network,
        foreground_wait: Duration::from_secs(b.foreground_wait_secs),
        command_timeout: Duration::from_secs(b.command_timeout_secs),
        cpu_seconds: b.cpu_seconds,
        memory_bytes: b.memory_mb * 1024 * 1024,
        max_processes: b.max_processes,
        max_open_files: b.max_open_files,
        output_cap_bytes: b.output_cap_kib * 1024,
        idle_timeout: Duration::from_secs(b.idle_timeout_secs),
        cgroups: b.cgroups,
        workspace_max_bytes: b.workspace_max_bytes,
        tmp_max_bytes: b.tmp_max_bytes,
        egress_filter: b.egress_filter,
        egress_allow: b.egress_allow.clone(),
        max_live_sandboxes: b.max_live_sandboxes,
        max_live_sandboxes_per_user: b.max_live_sandboxes_per_user,
        browser: b.browser,
        browser_idle_timeout: Duration::from_secs(b.browser_idle_timeout_secs.max(1)),
        run_as_uid: b.run_as_uid,
        run_as_gid: b.run_as_gid,
        hidden_paths: b
            .hidden_paths
            .iter()
            .cloned()
            .chain(settings.config_file.clone())
            .collect(),
        read_only_mounts: settings
            .mcp
            .packages_dir
            .iter()
            .map(|dir| ironhand_sandbox::ReadOnlyMount {
                host: dir.clone(),
                path: "/opt/mcp".into(),
            })
            .collect(),
        ..LocalSandboxConfig::default()
    }
}

/// Connectors: the operator's from the settings, users' sealed with their own key.
pub fn mcp_service(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Arc<McpService>> {
    let m = &settings.mcp;
    let key = crate::secrets::mcp_secrets_key(settings)?;
    let operator = m.operator_servers().map_err(anyhow::Error::msg)?;
    let policy: Option<Arc<dyn UrlPolicy>> =
        (!m.user_private_urls).then(|| Arc::new(PublicUrlPolicy) as Arc<dyn UrlPolicy>);
    if !operator.is_empty() {
        tracing::info!(
            connectors = %operator.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            "operator connectors"
        );
    }
    Ok(Arc::new(McpService::new(
        store,
        SecretSealer::new(key.expose_secret().as_bytes()),
        m.rules(),
        operator,
        policy,
    )))
}

pub fn sandbox_provider(settings: &Settings) -> anyhow::Result<Arc<dyn SandboxProvider>> {
    if settings.sandbox.provider == "docker" {
        let config = settings.docker_sandbox_config();
        tracing::info!(image = %config.image, network = %config.network, instance = %config.instance, "sandboxes in containers");
        let provider = Arc::new(
            DockerSandboxProvider::new(config).map_err(|e| anyhow::anyhow!("sandbox: {e}"))?,
        );
        // The containers an earlier run of this instance left (their workspaces stay).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let reaper = provider.clone();
            runtime.spawn(async move {
                if let Err(e) = reaper.reap_orphans().await {
                    tracing::warn!(error = %e, "could not look for orphaned sandbox containers");
                }
            });
        }
        return Ok(provider);
    }
    let root = sandbox_root(settings)?;
    std::fs::create_dir_all(&root)
        .with_context(|| format!("could not create {}", root.display()))?;
    let provider = LocalSandboxProvider::new(sandbox_config(settings, root))
        .map_err(|e| anyhow::anyhow!("sandbox: {e}"))?;
    tracing::info!(containment = %provider.containment(), "sandboxes");
    Ok(Arc::new(provider))
}

pub fn build(
    settings: &Settings,
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
) -> anyhow::Result<AgentParts> {
    let model = model(settings)?;
    let search = search(settings)?;
    let sandboxes = sandbox_provider(settings)?;
    let files = crate::services::file_service(settings, store.clone())?;
    let instance_id = format!("worker-{}", uuid::Uuid::new_v4());
    let workspaces = Arc::new(WorkspaceSnapshots::new(
        store.clone(),
        files.clone(),
        sandboxes.clone(),
        instance_id.clone(),
        WorkspaceSettings {
            snapshots: settings.workspace_snapshots(),
            max_bytes: settings.sandbox.workspace_max_bytes,
            scratch_dir: workspace_scratch_dir(settings),
        },
    ));
    let billing = crate::services::billing_service(settings, store.clone(), bus.clone())?;
    let publisher = EventPublisher::new(store.clone(), bus);
    let sessions = Arc::new(SessionService::new(
        store.clone(),
        publisher.clone(),
        sandboxes.clone(),
        billing.clone(),
        files.clone(),
    ));
    let a = &settings.agent;
    let config = AgentConfig {
        max_steps: a.max_steps,
        max_tool_calls_per_step: a.max_tool_calls_per_step,
        max_run_tokens: a.max_run_tokens,
        max_run_time: Duration::from_secs(a.max_run_minutes * 60),
        ..AgentConfig::default()
    };
    let llm_model = model.as_ref().map(|m| m.model().to_string());
    let search_provider = search.as_ref().map(|s| s.name());
    let mut tools = ToolRegistry::builtin(search);
    match sandboxes.browser_support() {
        Ok(()) => tools = tools.with(ironhand_agent::tools::BrowserTools),
        Err(why) => tracing::warn!(%why, "the browser tools are not offered"),
    }
    let mcp = mcp_service(settings, store.clone())?;
    let m = &settings.mcp;
    let hub = McpHub::new(
        mcp.clone(),
        sandboxes.clone(),
        McpLimits {
            start_timeout: Duration::from_secs(m.start_timeout_secs),
            call_timeout: Duration::from_secs(m.call_timeout_secs),
            max_tools: m.max_tools,
            user_private_urls: m.user_private_urls,
        },
    );
    tools = tools.with(McpTools::new(hub));
    let agent = Arc::new(Agent::new(
        model,
        store,
        publisher,
        sandboxes.clone(),
        tools,
        files.clone(),
        config,
    ));
    Ok(AgentParts {
        instance_id,
        sessions,
        sandboxes,
        files,
        billing,
        workspaces,
        mcp,
        agent,
        llm_model,
        search_provider,
    })
}

/// The worker of this instance (`instance_id` from [`AgentParts`]).
pub fn worker_config(settings: &Settings, instance_id: &str) -> WorkerConfig {
    WorkerConfig {
        worker_id: instance_id.to_string(),
        max_concurrent_runs: settings.agent.max_concurrent_runs,
        lease: Duration::from_secs(settings.agent.run_lease_secs),
        affinity_wait: Duration::from_secs(settings.agent.affinity_wait_secs),
        ..WorkerConfig::default()
    }
}

/// Where workspace archives wait on their way to and from the file store (local disk,
/// whatever the store; leftovers of a crash are removed by the upkeep job).
pub fn workspace_scratch_dir(settings: &Settings) -> PathBuf {
    settings.server.data_dir.join("tmp").join("workspaces")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn settings_in(data_dir: &std::path::Path) -> Settings {
        let mut s = Settings::default();
        s.server.data_dir = data_dir.to_path_buf();
        s
    }

    #[test]
    fn workspaces_sit_in_the_data_dir_when_the_sandbox_user_can_reach_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let root = sandbox_root(&settings_in(dir.path())).expect("root");
        assert_eq!(root, dir.path().join("sandboxes"));
    }

    #[test]
    fn a_private_data_dir_moves_workspaces_out_only_for_a_root_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let root = sandbox_root(&settings_in(&data)).expect("root");
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if as_root {
            assert!(
                root.starts_with("/var/lib/ironhand/sandboxes"),
                "{}",
                root.display()
            );
            assert_eq!(
                root,
                sandbox_root(&settings_in(&data)).expect("again"),
                "stable per data dir"
            );
        } else {
            assert_eq!(root, data.join("sandboxes"));
        }
    }

    #[test]
    fn the_loaded_config_file_is_hidden_from_sandboxes_with_the_configured_paths() {
        let mut s = Settings::default();
        s.sandbox.hidden_paths = vec![PathBuf::from("/etc/ironhand/extra")];
        s.config_file = Some(PathBuf::from("/etc/ironhand/ironhand.toml"));
        let config = sandbox_config(&s, PathBuf::from("/srv/w"));
        assert_eq!(
            config.hidden_paths,
            [
                PathBuf::from("/etc/ironhand/extra"),
                PathBuf::from("/etc/ironhand/ironhand.toml")
            ]
        );
        assert_eq!(config.memory_bytes, s.sandbox.memory_mb * 1024 * 1024);
    }

    #[test]
    fn an_explicit_root_dir_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings_in(dir.path());
        s.sandbox.root_dir = Some(PathBuf::from("/srv/workspaces"));
        assert_eq!(
            sandbox_root(&s).expect("root"),
            PathBuf::from("/srv/workspaces")
        );
    }
}
