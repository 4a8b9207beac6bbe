//! `[sandbox.docker]`: the `docker` sandbox provider (a container per session on a Docker
//! Engine, see `ironhand_sandboxd::docker`). The container's memory, processes, `/tmp` and
//! workspace limits are the `[sandbox]` section's own.

use super::Settings;
use ironhand_sandboxd::DockerConfig;
use ironhand_sandboxd::docker::{DockerTls, Reach};
use ironhand_sandboxd::wire::DaemonLimits;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerSettings {
    /// The engine: `unix:///var/run/docker.sock`, `tcp://host:2376`; unset: `DOCKER_HOST`,
    /// else the local socket.
    pub host: Option<String>,
    /// TLS files for a remote engine (all three, or none).
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The sandbox image (`make sandbox-image` builds `ironhand-sandbox:<version>`).
    pub image: String,
    /// The daemon's command in the image (`--listen` is added).
    pub command: Vec<String>,
    /// A daemon binary on the engine's host, mounted into the container and run instead of
    /// `command` (for an image without Ironhand in it; local engines only).
    pub binary: Option<PathBuf>,
    /// The network the containers join (`bridge`, or one the operator made and firewalled:
    /// see docs/deployment.md).
    pub network: String,
    /// How the server reaches a container: `container-ip` (the engine is on this host) or
    /// `published` (a port the engine publishes on `published_bind_ip`, reached at
    /// `published_host`).
    pub reach: String,
    pub published_host: String,
    pub published_bind_ip: String,
    /// CPUs per container.
    pub cpus: f64,
    /// Docker's init as PID 1 (reaps orphaned processes).
    pub init: bool,
    /// The instance that creates a container, as a label (unset: the host name).
    pub instance: Option<String>,
    /// Tells this deployment's containers from others' on a shared engine (staging and
    /// production): an instance removes only this deployment's orphaned containers.
    pub deployment: String,
    /// How long a new container may take to answer.
    pub start_timeout_secs: u64,
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            host: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            image: format!("ironhand-sandbox:{}", env!("CARGO_PKG_VERSION")),
            command: vec!["ironhand".into(), "sandboxd".into()],
            binary: None,
            network: "bridge".into(),
            reach: "container-ip".into(),
            published_host: "127.0.0.1".into(),
            published_bind_ip: "127.0.0.1".into(),
            cpus: 1.0,
            init: true,
            instance: None,
            deployment: "ironhand".into(),
            start_timeout_secs: 60,
        }
    }
}

impl DockerSettings {
    /// Problems, each naming its key.
    pub(super) fn validate(&self, problems: &mut Vec<String>) {
        let tls = [&self.tls_ca, &self.tls_cert, &self.tls_key];
        if tls.iter().any(|t| t.is_some()) && !tls.iter().all(|t| t.is_some()) {
            problems
                .push("sandbox.docker.tls_ca, tls_cert and tls_key: set all three or none".into());
        }
        if self.image.trim().is_empty() {
            problems.push("sandbox.docker.image: required".into());
        }
        if self.command.is_empty() && self.binary.is_none() {
            problems.push(
                "sandbox.docker.command: required unless sandbox.docker.binary is set".into(),
            );
        }
        if !matches!(self.reach.as_str(), "container-ip" | "published") {
            problems.push(format!(
                "sandbox.docker.reach: `{}` must be container-ip or published",
                self.reach
            ));
        }
        if !(self.cpus > 0.0 && self.cpus <= 256.0) {
            problems.push("sandbox.docker.cpus: between 0.01 and 256".into());
        }
        if self.deployment.is_empty()
            || !self
                .deployment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems
                .push("sandbox.docker.deployment: letters, digits, `-`, `_` and `.` only".into());
        }
        if self.start_timeout_secs == 0 {
            problems.push("sandbox.docker.start_timeout_secs: at least 1".into());
        }
    }
}

impl Settings {
    /// The `docker` provider's configuration from `[sandbox]` and `[sandbox.docker]`.
    pub fn docker_sandbox_config(&self) -> DockerConfig {
        let b = &self.sandbox;
        let d = &b.docker;
        let tls = match (&d.tls_ca, &d.tls_cert, &d.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(DockerTls {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        let reach = if d.reach == "published" {
            Reach::Published {
                host: d.published_host.clone(),
                bind_ip: d.published_bind_ip.clone(),
            }
        } else {
            Reach::ContainerIp
        };
        let memory_bytes = b.memory_mb * 1024 * 1024;
        DockerConfig {
            host: d.host.clone(),
            tls,
            image: d.image.clone(),
            command: d.command.clone(),
            binary: d.binary.clone(),
            network: d.network.clone(),
            reach,
            memory_bytes,
            cpus: d.cpus,
            pids_limit: i64::try_from(b.max_processes).unwrap_or(i64::MAX),
            tmp_bytes: b.tmp_max_bytes,
            init: d.init,
            instance: d.instance.clone().unwrap_or_else(host_name),
            deployment: d.deployment.clone(),
            limits: DaemonLimits {
                foreground_wait_secs: b.foreground_wait_secs,
                command_timeout_secs: b.command_timeout_secs,
                cpu_seconds: b.cpu_seconds,
                memory_bytes,
                // The container's pids limit: a fork failure near it is the process limit.
                max_processes: b.max_processes,
                max_open_files: b.max_open_files,
                output_cap_bytes: b.output_cap_kib * 1024,
                workspace_max_bytes: b.workspace_max_bytes,
                browser: b.browser,
                browser_idle_timeout_secs: b.browser_idle_timeout_secs,
            },
            idle_timeout: Duration::from_secs(b.idle_timeout_secs),
            start_timeout: Duration::from_secs(d.start_timeout_secs),
            max_live_sandboxes: b.max_live_sandboxes,
            max_live_sandboxes_per_user: b.max_live_sandboxes_per_user,
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ironhand".into())
}
