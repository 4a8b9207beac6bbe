//! `sandbox.provider = "docker"`: every session's sandbox is a container on a Docker Engine
//! (this host's socket, `DOCKER_HOST`, or a remote engine over TLS), running
//! `ironhand sandboxd` (see the `daemon` module), reached over HTTP with a token made for
//! that container alone.
//!
//! Each container gets: the configured image, user 1000:1000, **no capabilities**,
//! `no-new-privileges`, a read-only root, memory (swap included), CPU and pids limits, an
//! init process that reaps orphans, `/tmp` and `/run/ironhand` as size-limited tmpfs, the
//! session's workspace volume on `/home/ubuntu` and a small state volume (the snapshot
//! marker) on `/var/lib/ironhand-sandbox`, host name `sandbox`, and the configured network.
//!
//! One container per session and engine (`ironhand-sandbox-<session>`), shared by every
//! instance on that engine: an instance without it in hand finds it by name and reads its
//! token from the engine (whoever can ask the engine is root on its host anyway), so the
//! shell and file views work from any API instance while a worker runs the session (the
//! live view, through the synchronous `running_browser`, only from an instance that holds
//! the container already). A container is removed when no instance has used it for `idle_timeout` (its
//! daemon keeps that clock), when the session is deleted (with its volumes), and, found by
//! its labels (`io.ironhand.sandbox`, `.session`, `.deployment`, `.instance` = the
//! creator), when it stops answering: every instance's idle check and start-up removes such
//! orphans of any instance of its deployment, crashed ones included. Workspaces stay in their volumes until the session
//! goes.

use crate::client::{DaemonClient, RemoteSandbox};
use crate::wire::{DaemonLimits, LIMITS_ENV, PORT, TOKEN_ENV};
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::ports::SandboxBrowser;
use ironhand_core::ports::sandbox::{
    BrowserUnsupported, PackedWorkspace, RestoredWorkspace, Sandbox, SandboxError, SandboxProvider,
    SandboxResult,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const LABEL: &str = "io.ironhand.sandbox";
const LABEL_SESSION: &str = "io.ironhand.session";
const LABEL_INSTANCE: &str = "io.ironhand.instance";
const LABEL_DEPLOYMENT: &str = "io.ironhand.deployment";
/// Where the image's daemon keeps its state (see `daemon::DEFAULT_STATE_DIR`).
const STATE_DIR: &str = crate::daemon::DEFAULT_STATE_DIR;
/// Where a configured daemon binary is mounted.
const MOUNTED_BINARY: &str = "/opt/ironhand/sandboxd";

/// The configuration turned the browser off.
#[derive(Debug, thiserror::Error)]
#[error("the browser is turned off (sandbox browser = false)")]
struct BrowserOff;

fn unavailable(message: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(message.into())
}

/// How the server reaches a container's daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// At the container's address on its network (the engine is on this host, or its
    /// container network is routed here).
    ContainerIp,
    /// At a port the engine publishes on `host` (bound on `bind_ip` of the engine's host).
    Published { host: String, bind_ip: String },
}

/// TLS files of a remote engine (`tcp://host:2376`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376`, …; `None`: `DOCKER_HOST` or the
    /// local socket.
    pub host: Option<String>,
    pub tls: Option<DockerTls>,
    pub image: String,
    /// The daemon's command in the image.
    pub command: Vec<String>,
    /// A daemon binary on the engine's host, mounted read-only and run instead of
    /// `command` (for images without Ironhand in them; local engines only).
    pub binary: Option<PathBuf>,
    /// The container network (`bridge` by default: see docs/deployment.md for what to
    /// firewall).
    pub network: String,
    pub reach: Reach,
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids_limit: i64,
    pub tmp_bytes: u64,
    /// Docker's own init as PID 1 (reaps orphaned processes).
    pub init: bool,
    /// The instance that creates a container (a label, for the operator).
    pub instance: String,
    /// Names this deployment's containers on an engine others share too (staging and
    /// production): only these are found again and removed as orphans.
    pub deployment: String,
    pub limits: DaemonLimits,
    pub idle_timeout: Duration,
    pub start_timeout: Duration,
    pub max_live_sandboxes: usize,
    pub max_live_sandboxes_per_user: usize,
}

struct Live {
    container: String,
    sandbox: Arc<RemoteSandbox>,
    used: Arc<Mutex<Instant>>,
}

impl Live {
    fn idle(&self) -> Duration {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// See the module docs.
pub struct DockerSandboxProvider {
    docker: Docker,
    /// `docker` at the API version the engine speaks, asked once (a failed ask is retried).
    negotiated: tokio::sync::OnceCell<Docker>,
    config: Arc<DockerConfig>,
    http: reqwest::Client,
    live: Mutex<HashMap<SessionId, Arc<Live>>>,
    /// One start at a time per session.
    starting: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
    owners: Mutex<HashMap<SessionId, UserId>>,
}

impl std::fmt::Debug for DockerSandboxProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerSandboxProvider")
            .field("host", &self.config.host)
            .field("image", &self.config.image)
            .finish_non_exhaustive()
    }
}

fn engine_error(what: &str, e: bollard::errors::Error) -> SandboxError {
    unavailable(format!("the container engine refused to {what}: {e}"))
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerSandboxProvider {
    /// Connects to the engine (lazily: nothing is sent until [`SandboxProvider::check`] or
    /// the first sandbox).
    pub fn new(config: DockerConfig) -> Result<Self, SandboxError> {
        let host = config
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let docker = match &config.tls {
            Some(tls) => Docker::connect_with_ssl(
                &host,
                &tls.key,
                &tls.cert,
                &tls.ca,
                120,
                bollard::API_DEFAULT_VERSION,
            ),
            None => Docker::connect_with_host(&host),
        }
        .map_err(|e| unavailable(format!("cannot use the container engine at {host}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| unavailable(format!("no HTTP client: {e}")))?;
        Ok(Self {
            docker,
            negotiated: tokio::sync::OnceCell::new(),
            config: Arc::new(config),
            http,
            live: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
        })
    }

    /// The engine, at the API version it speaks (older engines refuse newer clients).
    async fn engine(&self) -> SandboxResult<Docker> {
        self.negotiated
            .get_or_try_init(|| self.docker.clone().negotiate_version())
            .await
            .cloned()
            .map_err(|e| unavailable(format!("the container engine does not answer: {e}")))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's container, its workspace volume and its state volume. One container
    /// per session and engine, shared by every instance that uses the engine: each finds
    /// it by name and reads its token from the engine.
    fn names(&self, session: SessionId) -> (String, String, String) {
        (
            format!("ironhand-sandbox-{session}"),
            format!("ironhand-workspace-{session}"),
            format!("ironhand-workspace-state-{session}"),
        )
    }

    /// Removes the sandbox containers on the engine that no instance uses any more: not
    /// running, not answering, or unused (by any instance) for `idle_timeout` (after a
    /// crash or a restart, the containers the instance had). Their workspaces stay in their
    /// volumes. Returns how many.
    pub async fn reap_orphans(&self) -> SandboxResult<usize> {
        let docker = self.engine().await?;
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL}=1"),
                format!("{LABEL_DEPLOYMENT}={}", self.config.deployment),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let found = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine_error("list containers", e))?;
        let known: Vec<String> = self.map().values().map(|l| l.container.clone()).collect();
        let mut removed = 0;
        for container in found {
            let Some(id) = container.id else { continue };
            if known.contains(&id) {
                continue;
            }
            let in_use = match self.connect(&docker, &id).await {
                Ok(Some((_, health))) => {
                    Duration::from_secs(health.idle_secs) < self.config.idle_timeout
                }
                Ok(None) | Err(_) => false,
            };
            if !in_use && self.remove_container(&docker, &id).await {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed sandbox containers no instance uses");
        }
        Ok(removed)
    }

    async fn remove_container(&self, docker: &Docker, id: &str) -> bool {
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(id, Some(force)).await {
            Ok(()) => true,
            Err(e) if not_found(&e) => false,
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "could not remove a sandbox container");
                false
            }
        }
    }

    /// The running container `id` (or name) as a sandbox, when its daemon answers.
    async fn connect(
        &self,
        docker: &Docker,
        id: &str,
    ) -> SandboxResult<Option<(Arc<Live>, crate::wire::Health)>> {
        let inspected = match docker.inspect_container(id, None).await {
            Ok(i) => i,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(engine_error("inspect a sandbox container", e)),
        };
        if !inspected
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let token = inspected
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .and_then(|env| {
                env.iter()
                    .find_map(|e| e.strip_prefix(&format!("{TOKEN_ENV}=")).map(str::to_string))
            });
        let (Some(token), Some(base), Some(container)) = (
            token,
            self.address(inspected.network_settings.unwrap_or_default()),
            inspected.id,
        ) else {
            return Ok(None);
        };
        let client = self.client(base, token);
        match client.health().await {
            Ok(health) => Ok(Some((self.make_live(container, client, &health), health))),
            Err(_) => Ok(None),
        }
    }

    /// Where this instance reaches a container's daemon.
    fn address(&self, settings: bollard::models::NetworkSettings) -> Option<String> {
        match &self.config.reach {
            Reach::ContainerIp => settings
                .networks
                .unwrap_or_default()
                .values()
                .filter_map(|n| n.ip_address.clone())
                .find(|ip| !ip.is_empty())
                .map(|ip| format!("http://{ip}:{PORT}")),
            Reach::Published { host, .. } => settings
                .ports
                .unwrap_or_default()
                .get(&format!("{PORT}/tcp"))
                .cloned()
                .flatten()
                .and_then(|b| b.into_iter().find_map(|b| b.host_port))
                .filter(|p| !p.is_empty())
                .map(|port| format!("http://{host}:{port}")),
        }
    }

    fn client(&self, base: String, token: String) -> DaemonClient {
        let limits = &self.config.limits;
        let longest = Duration::from_secs(
            limits
                .command_timeout_secs
                .max(limits.foreground_wait_secs)
                .max(60),
        );
        DaemonClient::new(self.http.clone(), base, token, longest)
    }

    fn make_live(
        &self,
        container: String,
        client: DaemonClient,
        health: &crate::wire::Health,
    ) -> Arc<Live> {
        let used = Arc::new(Mutex::new(Instant::now()));
        let clock = used.clone();
        let touch = Arc::new(move || {
            *clock.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        });
        let browser = if self.config.limits.browser {
            health
                .browser_unavailable
                .clone()
                .map_or(Ok(()), |why| Err(BrowserUnsupported::new(why)))
        } else {
            Err(BrowserUnsupported::new(BrowserOff))
        };
        Arc::new(Live {
            container,
            sandbox: Arc::new(RemoteSandbox::new(client, touch, browser)),
            used,
        })
    }

    /// Lets go of the session's container: removed when no instance used it for `idle`
    /// (or it does not answer), else only forgotten here (another instance uses it).
    async fn retire(&self, session: SessionId, idle: Duration) {
        let Some(live) = self.map().remove(&session) else {
            return;
        };
        let in_use = match live.sandbox.client().health().await {
            Ok(health) => Duration::from_secs(health.idle_secs) < idle,
            Err(_) => false,
        };
        if !in_use && let Ok(docker) = self.engine().await {
            self.remove_container(&docker, &live.container).await;
        }
    }

    /// Before `session`'s container starts: keeps live containers under the caps by
    /// removing the longest-idle ones (never one used in the last `foreground wait`).
    async fn make_room(&self, session: SessionId) -> SandboxResult<()> {
        let owner = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .copied();
        let caps = ironhand_sandbox::caps::LiveCaps {
            per_instance: self.config.max_live_sandboxes,
            per_user: self.config.max_live_sandboxes_per_user,
        };
        let quiet = Duration::from_secs(self.config.limits.foreground_wait_secs.max(1) * 2);
        loop {
            let owners = self
                .owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let live = self
                .map()
                .iter()
                .filter(|(id, _)| **id != session)
                .map(|(id, l)| ironhand_sandbox::caps::LiveSandbox {
                    session: *id,
                    owner: owners.get(id).copied(),
                    idle: l.idle(),
                    sandbox: (),
                })
                .collect();
            let Some((candidates, why)) = ironhand_sandbox::caps::must_make_room(caps, owner, live)
            else {
                return Ok(());
            };
            // Never one used a moment ago (a command may be in progress).
            let Some(candidate) = candidates.into_iter().find(|l| l.idle >= quiet) else {
                return Err(unavailable(why));
            };
            tracing::info!(session = %candidate.session, "let go of the longest-idle sandbox container to make room");
            self.retire(candidate.session, quiet).await;
        }
    }

    /// Removes the session's container (its volumes stay).
    async fn stop(&self, session: SessionId) {
        let live = self.map().remove(&session);
        let (name, _, _) = self.names(session);
        let target = live.map(|l| l.container.clone()).unwrap_or(name);
        if let Ok(docker) = self.engine().await {
            self.remove_container(&docker, &target).await;
        }
    }

    async fn volume_exists(&self, docker: &Docker, name: &str) -> SandboxResult<bool> {
        match docker.inspect_volume(name).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(engine_error("inspect a volume", e)),
        }
    }

    async fn start(&self, session: SessionId) -> SandboxResult<Arc<Live>> {
        let docker = self.engine().await?;
        let config = &self.config;
        let (name, workspace, state) = self.names(session);
        // A container of this session left by a crash of this instance, or by another
        // instance (which no longer owns the session's runs).
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(&name, Some(force)).await {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(engine_error("remove an old container", e)),
        }
        let labels = HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (LABEL_SESSION.to_string(), session.to_string()),
            (LABEL_INSTANCE.to_string(), config.instance.clone()),
            (LABEL_DEPLOYMENT.to_string(), config.deployment.clone()),
        ]);
        for volume in [&workspace, &state] {
            docker
                .create_volume(VolumeCreateRequest {
                    name: Some(volume.clone()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| engine_error("create the workspace volume", e))?;
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let limits = serde_json::to_string(&config.limits)
            .map_err(|e| unavailable(format!("bad sandbox limits: {e}")))?;
        let listen = format!("0.0.0.0:{PORT}");
        let mut binds = vec![
            format!(
                "{workspace}:{}:rw",
                ironhand_core::ports::sandbox::SANDBOX_HOME
            ),
            format!("{state}:{STATE_DIR}:rw"),
        ];
        let cmd = match &config.binary {
            Some(binary) => {
                binds.push(format!("{}:{MOUNTED_BINARY}:ro", binary.display()));
                vec![
                    MOUNTED_BINARY.to_string(),
                    "sandboxd".into(),
                    "--listen".into(),
                    listen,
                ]
            }
            None => {
                let mut cmd = config.command.clone();
                cmd.extend(["--listen".to_string(), listen]);
                cmd
            }
        };
        let port_key = format!("{PORT}/tcp");
        let port_bindings = match &config.reach {
            Reach::ContainerIp => None,
            Reach::Published { bind_ip, .. } => Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some(bind_ip.clone()),
                    host_port: Some(String::new()),
                }]),
            )])),
        };
        let memory = i64::try_from(config.memory_bytes).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            memory: Some(memory),
            // No swap beyond the memory limit.
            memory_swap: Some(memory),
            nano_cpus: Some((config.cpus * 1e9) as i64),
            pids_limit: Some(config.pids_limit),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            readonly_rootfs: Some(true),
            init: Some(config.init),
            tmpfs: Some(HashMap::from([
                (
                    "/tmp".to_string(),
                    format!("rw,nosuid,nodev,mode=1777,size={}", config.tmp_bytes.max(1)),
                ),
                (
                    // The shells' control files (a tmpfs on /run itself ignores `mode`).
                    "/run/ironhand".to_string(),
                    "rw,nosuid,nodev,noexec,mode=1777,size=16m".to_string(),
                ),
            ])),
            binds: Some(binds),
            network_mode: Some(config.network.clone()),
            port_bindings,
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(config.image.clone()),
            cmd: Some(cmd),
            env: Some(vec![
                format!("{TOKEN_ENV}={token}"),
                format!("{LIMITS_ENV}={limits}"),
                "HOME=/home/ubuntu".into(),
                "LANG=C.UTF-8".into(),
            ]),
            user: Some("1000:1000".into()),
            hostname: Some("sandbox".into()),
            working_dir: Some("/home/ubuntu".into()),
            labels: Some(labels),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_error("create the sandbox container", e))?;
        let id = created.id;
        let cleanup = |docker: Docker, id: String| async move {
            let force = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = docker.remove_container(&id, Some(force)).await;
        };
        if let Err(e) = docker.start_container(&id, None).await {
            cleanup(docker.clone(), id).await;
            return Err(engine_error("start the sandbox container", e));
        }
        let inspected = match docker.inspect_container(&id, None).await {
            Ok(i) => i,
            Err(e) => {
                cleanup(docker.clone(), id).await;
                return Err(engine_error("inspect the sandbox container", e));
            }
        };
        let Some(base) = self.address(inspected.network_settings.unwrap_or_default()) else {
            cleanup(docker.clone(), id).await;
            return Err(unavailable(
                "the sandbox container has no address the server can reach (check sandbox.docker.network and reach)",
            ));
        };
        let client = self.client(base, token);
        let deadline = Instant::now() + config.start_timeout;
        let health = loop {
            match client.health().await {
                Ok(h) => break h,
                Err(e) if Instant::now() >= deadline => {
                    let logs = self.logs(&docker, &id).await;
                    cleanup(docker.clone(), id).await;
                    return Err(unavailable(format!(
                        "the sandbox container did not come up in {} s: {e}{logs}",
                        config.start_timeout.as_secs()
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Ok(self.make_live(id, client, &health))
    }

    /// The end of a container's output, for a start that failed.
    async fn logs(&self, docker: &Docker, id: &str) -> String {
        use futures::StreamExt;
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail("20")
            .build();
        let mut stream = docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
            if text.len() > 4096 {
                break;
            }
        }
        if text.trim().is_empty() {
            String::new()
        } else {
            format!(" (its output: {})", text.trim())
        }
    }

    fn starting_lock(&self, session: SessionId) -> Arc<tokio::sync::Mutex<()>> {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session)
            .or_default()
            .clone()
    }

    async fn live(&self, session: SessionId) -> SandboxResult<Arc<Live>> {
        let live = self.map().get(&session).cloned();
        if let Some(live) = live
            && !live.sandbox.client().is_lost()
        {
            return Ok(live);
        }
        let lock = self.starting_lock(session);
        let _turn = lock.lock().await;
        let live = self.map().get(&session).cloned();
        if let Some(live) = live {
            if !live.sandbox.client().is_lost() {
                return Ok(live);
            }
            tracing::warn!(session = %session, "a sandbox container stopped answering: starting a new one");
            self.stop(session).await;
        }
        // Another instance's container of the session (or this one's before a restart).
        let docker = self.engine().await?;
        let (name, _, _) = self.names(session);
        if let Some((live, _)) = self.connect(&docker, &name).await? {
            self.map().insert(session, live.clone());
            return Ok(live);
        }
        self.make_room(session).await?;
        let live = self.start(session).await?;
        self.map().insert(session, live.clone());
        Ok(live)
    }
}

#[async_trait]
impl SandboxProvider for DockerSandboxProvider {
    async fn sandbox(&self, session: SessionId) -> SandboxResult<Arc<dyn Sandbox>> {
        Ok(self.live(session).await?.sandbox.clone())
    }

    async fn sandbox_for(
        &self,
        session: SessionId,
        user: UserId,
    ) -> SandboxResult<Arc<dyn Sandbox>> {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session, user);
        self.sandbox(session).await
    }

    async fn destroy(&self, session: SessionId, remove_workspace: bool) -> SandboxResult<()> {
        let lock = self.starting_lock(session);
        let _turn = lock.lock().await;
        self.stop(session).await;
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session);
        if remove_workspace {
            let docker = self.engine().await?;
            // Other instances' containers of the session (an API instance's file view)
            // hold the volumes: the session is going, so they go too.
            let filters: HashMap<String, Vec<String>> = HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_SESSION}={session}")],
            )]);
            let options = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build();
            let others = docker
                .list_containers(Some(options))
                .await
                .map_err(|e| engine_error("list containers", e))?;
            for id in others.into_iter().filter_map(|c| c.id) {
                let force = RemoveContainerOptionsBuilder::default().force(true).build();
                match docker.remove_container(&id, Some(force)).await {
                    Ok(()) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(engine_error("remove a container of the session", e)),
                }
            }
            let (_, workspace, state) = self.names(session);
            for volume in [workspace, state] {
                let force = RemoveVolumeOptionsBuilder::default().force(true).build();
                match docker.remove_volume(&volume, Some(force)).await {
                    Ok(()) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(engine_error("remove the workspace volume", e)),
                }
            }
        }
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session);
        Ok(())
    }

    async fn reap_idle(&self) -> usize {
        let idle: Vec<SessionId> = self
            .map()
            .iter()
            .filter(|(_, l)| l.idle() >= self.config.idle_timeout)
            .map(|(id, _)| *id)
            .collect();
        for session in &idle {
            let lock = self.starting_lock(*session);
            let _turn = lock.lock().await;
            self.retire(*session, self.config.idle_timeout).await;
        }
        // Containers of instances that crashed or went away.
        let orphans = match self.reap_orphans().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for orphaned sandbox containers");
                0
            }
        };
        idle.len() + orphans
    }

    async fn check(&self) -> SandboxResult<()> {
        let docker = self.engine().await?;
        docker.inspect_image(&self.config.image).await.map_err(|e| {
            if not_found(&e) {
                unavailable(format!(
                    "the sandbox image {} is not on the container engine: build it with `make sandbox-image`",
                    self.config.image
                ))
            } else {
                engine_error("inspect the sandbox image", e)
            }
        })?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "docker"
    }

    fn browser_support(&self) -> Result<(), BrowserUnsupported> {
        if self.config.limits.browser {
            Ok(())
        } else {
            Err(BrowserUnsupported::new(BrowserOff))
        }
    }

    fn running_browser(&self, session: SessionId) -> Option<Arc<dyn SandboxBrowser>> {
        let live = self.map().get(&session).cloned()?;
        live.sandbox.running_browser()
    }

    async fn workspace_version(&self, session: SessionId) -> SandboxResult<Option<i64>> {
        let live = self.map().get(&session).cloned();
        if let Some(live) = live {
            return live.sandbox.client().workspace_version().await;
        }
        let docker = self.engine().await?;
        let (_, workspace, _) = self.names(session);
        if !self.volume_exists(&docker, &workspace).await? {
            return Ok(None);
        }
        self.live(session)
            .await?
            .sandbox
            .client()
            .workspace_version()
            .await
    }

    async fn pack_workspace(
        &self,
        session: SessionId,
        archive: &Path,
    ) -> SandboxResult<Option<PackedWorkspace>> {
        let live = self.map().get(&session).cloned();
        let Some(live) = live else {
            return Ok(None);
        };
        live.sandbox
            .client()
            .pack_workspace(archive, self.config.limits.workspace_max_bytes)
            .await
    }

    async fn mark_workspace(
        &self,
        session: SessionId,
        version: i64,
        state: &str,
    ) -> SandboxResult<()> {
        self.live(session)
            .await?
            .sandbox
            .client()
            .mark_workspace(version, state)
            .await
    }

    async fn restore_workspace(
        &self,
        session: SessionId,
        archive: &Path,
        version: i64,
    ) -> SandboxResult<RestoredWorkspace> {
        self.live(session)
            .await?
            .sandbox
            .client()
            .restore_workspace(archive, version)
            .await
    }

    fn idle_sandboxes(&self) -> Vec<SessionId> {
        self.map()
            .iter()
            .filter(|(_, l)| l.idle() >= self.config.idle_timeout)
            .map(|(id, _)| *id)
            .collect()
    }
}
