//! Settings of the agent side: the model, web search, the sandbox, run budgets, the worker
//! and session retention.

use super::Settings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// OpenAI-compatible base URL, e.g. `https://api.openai.com/v1` (`LLM_BASE_URL`).
    /// Unset: the server runs, and a chat explains how to configure a model.
    pub base_url: Option<String>,
    /// `LLM_API_KEY`; optional for local servers (vLLM, llama.cpp, Ollama).
    pub api_key: Option<SecretString>,
    /// `LLM_MODEL`.
    pub model: Option<String>,
    /// Context window of the model, in tokens (conversations are trimmed to fit).
    pub context_window: usize,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// Time to the response headers.
    pub request_timeout_secs: u64,
    /// Longest gap between two streamed events (keep-alive comments do not count).
    pub stall_timeout_secs: u64,
    /// Longest time of one attempt.
    pub total_timeout_secs: u64,
    pub max_retries: u32,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            model: None,
            context_window: 128_000,
            max_output_tokens: None,
            temperature: None,
            request_timeout_secs: 60,
            stall_timeout_secs: 90,
            total_timeout_secs: 600,
            max_retries: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// `searxng` or `brave` (`SEARCH_PROVIDER`); unset = no web search tool.
    pub provider: Option<String>,
    /// `SEARCH_URL`: the SearXNG instance, or an override of Brave's API base.
    pub url: Option<String>,
    /// `SEARCH_API_KEY` (Brave).
    pub api_key: Option<SecretString>,
    pub timeout_secs: u64,
    pub max_results: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            provider: None,
            url: None,
            api_key: None,
            timeout_secs: 15,
            max_results: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// `local` (bubblewrap on this host) or `docker` (a container per session, see
    /// `[sandbox.docker]`).
    pub provider: String,
    /// The `docker` provider's engine, image and network.
    pub docker: super::docker::DockerSettings,
    /// Where session workspaces live; unset = `<data_dir>/sandboxes` (or, for a root server
    /// whose data dir is under a private directory, `/var/lib/ironhand/sandboxes/<hash>`).
    pub root_dir: Option<std::path::PathBuf>,
    /// Host paths to hide inside sandboxes besides the built-in list (files under `/etc`
    /// that only root may read, SSH host keys) and the config file the server loaded.
    pub hidden_paths: Vec<std::path::PathBuf>,
    /// Whether commands may reach the network.
    pub network: bool,
    /// How long a command runs in the foreground before the agent gets `running`.
    pub foreground_wait_secs: u64,
    /// Wall time, CPU time and memory of one command; processes and open files per sandbox.
    pub command_timeout_secs: u64,
    pub cpu_seconds: u64,
    pub memory_mb: u64,
    pub max_processes: u64,
    pub max_open_files: u64,
    /// Output kept per command, in KiB.
    pub output_cap_kib: usize,
    /// A sandbox idle this long is stopped (its workspace stays).
    pub idle_timeout_secs: u64,
    /// Whole-sandbox memory and process limits with a cgroup per sandbox (root servers).
    pub cgroups: bool,
    /// Size of each workspace (`/home/ubuntu`) in bytes; 0 = no limit.
    pub workspace_max_bytes: u64,
    /// Size of each sandbox's `/tmp` (a tmpfs counted in its memory) in bytes.
    pub tmp_max_bytes: u64,
    /// Refuse sandbox connections to private, link-local, loopback and host addresses.
    pub egress_filter: bool,
    /// CIDRs or addresses, optionally with `:port`, the egress filter lets through.
    pub egress_allow: Vec<String>,
    /// Live sandboxes (with processes) on this instance, and per user; a new one stops the
    /// longest-idle live sandbox first, never a busy one.
    pub max_live_sandboxes: usize,
    pub max_live_sandboxes_per_user: usize,
    /// Give sandboxes a browser (Chromium on Xvnc) when both are installed.
    pub browser: bool,
    /// A browser without a call or a new viewer for this long is stopped.
    pub browser_idle_timeout_secs: u64,
    /// The unprivileged host uid/gid sandboxes run as when the server is root.
    pub run_as_uid: u32,
    pub run_as_gid: u32,
    /// Save each session's workspace to the file store at the end of its runs (and before
    /// an idle stop), and restore it on the instance that runs the session next. Unset: on
    /// with PostgreSQL (several instances), off with SQLite (one instance).
    pub workspace_snapshots: Option<bool>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            provider: "local".into(),
            docker: super::docker::DockerSettings::default(),
            root_dir: None,
            hidden_paths: Vec::new(),
            network: true,
            foreground_wait_secs: 10,
            command_timeout_secs: 600,
            cpu_seconds: 300,
            memory_mb: 4096,
            max_processes: 256,
            max_open_files: 1024,
            output_cap_kib: 64,
            idle_timeout_secs: 30 * 60,
            cgroups: true,
            workspace_max_bytes: 1024 * 1024 * 1024,
            tmp_max_bytes: 512 * 1024 * 1024,
            egress_filter: true,
            egress_allow: Vec::new(),
            max_live_sandboxes: 64,
            max_live_sandboxes_per_user: 4,
            browser: true,
            browser_idle_timeout_secs: 300,
            run_as_uid: 60000,
            run_as_gid: 60000,
            workspace_snapshots: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    pub max_steps: usize,
    pub max_tool_calls_per_step: usize,
    pub max_run_tokens: u64,
    pub max_run_minutes: u64,
    /// Runs one process executes at once.
    pub max_concurrent_runs: usize,
    /// Seconds a worker's claim on a run lasts without a heartbeat.
    pub run_lease_secs: u64,
    /// Run the worker inside `serve` (turn off when dedicated `ironhand worker`s run).
    pub embedded_worker: bool,
    /// Seconds a run of a session whose sandbox lives on another instance is left to that
    /// instance before this one claims it (0: no preference).
    pub affinity_wait_secs: u64,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_steps: 20,
            max_tool_calls_per_step: 40,
            max_run_tokens: 2_000_000,
            max_run_minutes: 60,
            max_concurrent_runs: 8,
            run_lease_secs: 30,
            embedded_worker: true,
            affinity_wait_secs: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Sessions idle longer than this are deleted with their files and sandbox (0 = keep).
    pub retention_days: u64,
    /// How often the cleanup job runs.
    pub cleanup_interval_secs: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            retention_days: 90,
            cleanup_interval_secs: 3600,
        }
    }
}

impl Settings {
    /// Whether workspaces are saved to the file store and restored elsewhere
    /// (`sandbox.workspace_snapshots`, by default only with PostgreSQL).
    pub fn workspace_snapshots(&self) -> bool {
        self.sandbox
            .workspace_snapshots
            .unwrap_or_else(|| !self.database_url().starts_with("sqlite:"))
    }

    /// Problems in the agent-side settings, each naming its key.
    pub(super) fn validate_agent(&self, problems: &mut Vec<String>) {
        let l = &self.llm;
        if let Some(url) = &l.base_url {
            let scheme = url::Url::parse(url).map(|u| u.scheme().to_string());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                problems.push(format!("llm.base_url (LLM_BASE_URL): `{url}` is not an http(s) URL like https://api.openai.com/v1"));
            }
            if l.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                problems.push("llm.model (LLM_MODEL): required when llm.base_url is set".into());
            }
        }
        if l.context_window < 4_096 {
            problems.push("llm.context_window: must be at least 4096 tokens".into());
        }
        if l.request_timeout_secs == 0 || l.stall_timeout_secs == 0 || l.total_timeout_secs == 0 {
            problems.push("llm.*_timeout_secs: must be at least 1".into());
        }
        let s = &self.search;
        if s.timeout_secs == 0 || s.max_results == 0 {
            problems.push("search.timeout_secs and search.max_results: must be at least 1".into());
        }
        match s
            .provider
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") => {}
            Some("searxng") if s.url.is_none() => {
                problems.push("search.url (SEARCH_URL): required for the searxng provider".into())
            }
            Some("brave")
                if s.api_key
                    .as_ref()
                    .is_none_or(|k| k.expose_secret().is_empty()) =>
            {
                problems
                    .push("search.api_key (SEARCH_API_KEY): required for the brave provider".into())
            }
            Some("searxng" | "brave") => {}
            Some(other) => problems.push(format!(
                "search.provider (SEARCH_PROVIDER): `{other}` must be searxng or brave"
            )),
        }
        match self.sandbox.provider.as_str() {
            "local" => {}
            "docker" => self.sandbox.docker.validate(problems),
            other => problems.push(format!(
                "sandbox.provider: `{other}` must be local or docker"
            )),
        }
        let b = &self.sandbox;
        if b.output_cap_kib < 4 || b.foreground_wait_secs == 0 {
            problems.push("sandbox.output_cap_kib must be at least 4 and sandbox.foreground_wait_secs at least 1".into());
        }
        if b.command_timeout_secs == 0
            || b.cpu_seconds == 0
            || b.memory_mb < 64
            || b.max_processes < 8
            || b.max_open_files < 64
        {
            problems.push("sandbox limits: command_timeout_secs and cpu_seconds ≥ 1, memory_mb ≥ 64, max_processes ≥ 8, max_open_files ≥ 64".into());
        }
        if b.max_live_sandboxes == 0 || b.max_live_sandboxes_per_user == 0 {
            problems.push(
                "sandbox.max_live_sandboxes and max_live_sandboxes_per_user: at least 1".into(),
            );
        }
        if b.run_as_uid == 0 || b.run_as_gid == 0 {
            problems.push(
                "sandbox.run_as_uid and run_as_gid: never 0 (sandboxes never run as root)".into(),
            );
        }
        if b.workspace_max_bytes != 0 && b.workspace_max_bytes < 16 * 1024 * 1024 {
            problems.push("sandbox.workspace_max_bytes: 0 (no limit) or at least 16 MiB".into());
        }
        for entry in &b.egress_allow {
            if let Err(e) = ironhand_sandbox::parse_egress_allow(entry) {
                problems.push(format!("sandbox.{e}"));
            }
        }
        let a = &self.agent;
        if a.max_steps == 0
            || a.max_tool_calls_per_step == 0
            || a.max_run_minutes == 0
            || a.max_run_tokens == 0
        {
            problems.push("agent.max_*: every budget must be at least 1".into());
        }
        if a.max_concurrent_runs == 0 {
            problems.push("agent.max_concurrent_runs: must be at least 1".into());
        }
        if a.run_lease_secs < 3 {
            problems.push("agent.run_lease_secs: must be at least 3".into());
        }
        if a.affinity_wait_secs >= a.run_lease_secs {
            problems
                .push("agent.affinity_wait_secs: must be shorter than agent.run_lease_secs".into());
        }
        if self.sessions.cleanup_interval_secs == 0 {
            problems.push("sessions.cleanup_interval_secs: must be at least 1".into());
        }
    }
}
