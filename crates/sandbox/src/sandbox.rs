//! One session's sandbox: its directories, its user namespace and its shells.

use crate::browser::{BrowserHandle, RunningBrowser};
use crate::cgroup::SandboxCgroup;
use crate::config::LocalSandboxConfig;
use crate::files::SessionFiles;
use crate::host::{Host, INSTALL_HINT, Network, SANDBOX_UID};
use crate::net::SessionNet;
use crate::process::ToolProcess;
use crate::shell::{Shell, ShellEnv};
use async_trait::async_trait;
use command_fds::{CommandFdExt, FdMapping};
use ironhand_core::ports::SandboxBrowser;
use ironhand_core::ports::sandbox::{
    ContentMatch, FileText, Sandbox, SandboxError, SandboxResult, ShellOutcome, WriteOptions,
};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::RwLock;
use tokio::time::Instant;

/// How long creating a session's user namespace may take.
const ANCHOR_TIMEOUT: Duration = Duration::from_secs(15);

/// The namespaces every shell of a session joins, held only as descriptors (plus the
/// network's slirp4netns).
#[derive(Debug)]
pub(crate) struct SessionNs {
    /// The session's user namespace: every shell joins it, so they share one process count
    /// (none in a container, whose processes run directly).
    pub(crate) userns: Option<OwnedFd>,
    /// `network = true`: the session's network namespace (else each shell has its own).
    pub(crate) net: Option<SessionNet>,
    /// The sandbox's cgroup (whole-sandbox memory and process limits), when available.
    pub(crate) cgroup: Option<Arc<SandboxCgroup>>,
}

impl SessionNs {
    /// A command that runs `launch` in these namespaces: its descriptors passed (the user
    /// namespace as fd 3, the network's owner and namespace as 4 and 5, then `extra`), the
    /// environment cleared, and — in a cgroup — a root wrapper that joins it and drops to
    /// the sandbox user; otherwise it starts as that user. Stdio is the caller's.
    pub(crate) fn command(
        &self,
        host: &Host,
        launch: &crate::host::Launch,
        extra: Vec<FdMapping>,
    ) -> SandboxResult<tokio::process::Command> {
        let pass = crate::host::pass_fd;
        let mut fds = Vec::new();
        if let Some(userns) = &self.userns {
            fds.push(pass(userns, 3)?);
        }
        if let Some(net) = &self.net {
            fds.push(pass(&net.owner, crate::host::NET_OWNER_FD)?);
            fds.push(pass(&net.netns, crate::host::NETNS_FD)?);
        }
        fds.extend(extra);
        let (program, args) = match &self.cgroup {
            Some(group) => group.wrap(&host.setpriv, host.run_as, &launch.program, &launch.args),
            None => (launch.program.clone(), launch.args.clone()),
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .kill_on_drop(true);
        if host.in_a_container() {
            // Its own process group: stopping it stops what it started (see `shell`).
            cmd.current_dir(ironhand_core::ports::sandbox::SANDBOX_HOME)
                .process_group(0);
        }
        if self.cgroup.is_none()
            && let Some((uid, gid)) = host.run_as
        {
            cmd.uid(uid).gid(gid);
        }
        cmd.fd_mappings(fds)
            .map_err(|e| unavailable(format!("cannot pass file descriptors: {e}")))?;
        Ok(cmd)
    }

    async fn stop(&self) {
        if let Some(net) = &self.net {
            net.stop().await;
        }
        if let Some(group) = self.cgroup.clone() {
            let _ = tokio::task::spawn_blocking(move || group.remove()).await;
        }
    }
}

fn unavailable(msg: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(msg.into())
}

/// The `local` provider's sandbox of one session (see the crate docs for the design).
pub struct LocalSandbox {
    label: String,
    env: Arc<ShellEnv>,
    shells: Mutex<HashMap<String, Arc<Shell>>>,
    next_key: AtomicU32,
    /// The session's namespaces (user namespace; with the network on, the network
    /// namespace and its slirp4netns), created on first use.
    ns: tokio::sync::Mutex<Option<Arc<SessionNs>>>,
    last_used: Mutex<Instant>,
    /// Operations hold it shared; stopping holds it exclusively.
    lifecycle: RwLock<()>,
    destroyed: AtomicBool,
    /// False after a stop emptied `/tmp` and the control files.
    dirs_ready: AtomicBool,
    /// Whether the workspace's filesystem and `/tmp` are mounted (size-limited workspaces).
    volume_ready: tokio::sync::Mutex<bool>,
    /// OOM kills in the sandbox's cgroup already reported to the model.
    ooms_reported: AtomicU64,
    /// This sandbox (for the browser handles it gives out).
    me: Weak<LocalSandbox>,
    /// The browser (Xvnc + Chromium), started on the first browser call.
    browser: tokio::sync::Mutex<Option<RunningBrowser>>,
    browser_used: Mutex<Instant>,
    /// Programs started for connectors (see the `process` module).
    processes: Mutex<Vec<Weak<ToolProcess>>>,
}

impl std::fmt::Debug for LocalSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSandbox")
            .field("session", &self.label)
            .field("dir", &self.env.dirs.base)
            .finish_non_exhaustive()
    }
}

impl LocalSandbox {
    pub(crate) fn new(
        label: &str,
        host: Arc<Host>,
        config: Arc<LocalSandboxConfig>,
    ) -> SandboxResult<Arc<Self>> {
        let dirs = host.session_dirs(&config.root_dir, label);
        dirs.create(&host)?;
        Ok(Arc::new_cyclic(|me| Self {
            label: label.to_string(),
            env: Arc::new(ShellEnv {
                host,
                config,
                dirs,
                mounts: Mutex::new(()),
                gone: AtomicBool::new(false),
            }),
            shells: Mutex::new(HashMap::new()),
            next_key: AtomicU32::new(1),
            ns: tokio::sync::Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            lifecycle: RwLock::new(()),
            destroyed: AtomicBool::new(false),
            dirs_ready: AtomicBool::new(true),
            volume_ready: tokio::sync::Mutex::new(false),
            ooms_reported: AtomicU64::new(0),
            me: me.clone(),
            browser: tokio::sync::Mutex::new(None),
            browser_used: Mutex::new(Instant::now()),
            processes: Mutex::new(Vec::new()),
        }))
    }

    pub(crate) fn env(&self) -> &Arc<ShellEnv> {
        &self.env
    }

    /// Runs a browser tool, starting the browser first when it is not running
    /// (`browser_restart` starts it afresh, then navigates).
    pub(crate) async fn browser_call(
        &self,
        function: &str,
        args: &serde_json::Value,
    ) -> SandboxResult<ironhand_browser::BrowserOutcome> {
        let _guard = self.begin().await?;
        let tools = self
            .env
            .host
            .browser
            .as_ref()
            .map_err(|why| unavailable(why.to_string()))?
            .clone();
        *self.browser_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let restart = function == ironhand_browser::RESTART_TOOL;
        let browser = {
            let mut slot = self.browser.lock().await;
            let alive = slot.as_mut().is_some_and(RunningBrowser::is_alive);
            if restart || !alive {
                if let Some(old) = slot.take() {
                    old.stop().await;
                }
                let ns = self.namespaces().await?;
                *slot = Some(self.start_browser(&ns, &tools).await?);
            }
            match slot.as_ref() {
                Some(running) => crate::browser::browser_of(running),
                None => return Err(unavailable("the browser is not running")),
            }
        };
        let outcome = if restart {
            browser.call("browser_navigate", args).await
        } else {
            browser.call(function, args).await
        };
        self.touch();
        *self.browser_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Ok(outcome)
    }

    pub(crate) async fn browser_vnc(&self) -> SandboxResult<ironhand_core::ports::VncStream> {
        if !self.browser_running() {
            return Err(unavailable("the browser is not running"));
        }
        *self.browser_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.connect_vnc_socket().await
    }

    pub(crate) fn browser_running(&self) -> bool {
        self.browser
            .try_lock()
            .map(|mut slot| slot.as_mut().is_some_and(RunningBrowser::is_alive))
            // Busy: being started or used right now.
            .unwrap_or(true)
    }

    pub(crate) fn running_browser(&self) -> Option<Arc<dyn SandboxBrowser>> {
        if !self.browser_running() {
            return None;
        }
        let sandbox = self.me.upgrade()?;
        Some(Arc::new(BrowserHandle { sandbox }))
    }

    /// Stops the browser when no browser call or new viewer came for `idle`.
    pub(crate) async fn reap_browser_if_idle(&self, idle: Duration) {
        let used = self
            .browser_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if used < idle {
            return;
        }
        let Ok(mut slot) = self.browser.try_lock() else {
            return;
        };
        if let Some(running) = slot.take() {
            tracing::debug!(session = %self.label, "stopping an idle browser");
            running.stop().await;
        }
    }

    /// The sandbox's own directory (`<root_dir>/<label>`).
    pub(crate) fn base_dir(&self) -> std::path::PathBuf {
        self.env.dirs.base.clone()
    }

    fn config(&self) -> &LocalSandboxConfig {
        &self.env.config
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Starts an operation: refused after destroy; keeps the sandbox from being reaped
    /// while it runs.
    async fn begin(&self) -> SandboxResult<tokio::sync::RwLockReadGuard<'_, ()>> {
        self.touch();
        let guard = self.lifecycle.read().await;
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(unavailable(
                "this session's sandbox was destroyed; request the session's sandbox again",
            ));
        }
        // The directories were cleaned when the sandbox stopped.
        if !self.dirs_ready.load(Ordering::SeqCst) {
            self.env.dirs.create(&self.env.host)?;
            self.dirs_ready.store(true, Ordering::SeqCst);
        }
        self.ensure_volume().await?;
        Ok(guard)
    }

    /// Mounts the size-limited workspace and `/tmp` (see the `volume` module) once.
    async fn ensure_volume(&self) -> SandboxResult<()> {
        if !self.env.host.volumes.enforced_by_filesystem() {
            return Ok(());
        }
        let mut ready = self.volume_ready.lock().await;
        if *ready {
            return Ok(());
        }
        let env = self.env.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = env.mounts.lock().unwrap_or_else(|p| p.into_inner());
            if env.gone.load(Ordering::SeqCst) {
                return Err(unavailable("this session's sandbox was destroyed"));
            }
            let owner = env.host.run_as.unwrap_or_else(|| {
                (
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                )
            });
            env.host
                .volumes
                .prepare(&env.dirs, owner)
                .map_err(|e| unavailable(format!("the workspace could not be prepared: {e}")))?;
            // The mounted roots get the workspace's owner and modes.
            env.dirs.create(&env.host)
        })
        .await
        .map_err(|e| unavailable(format!("workspace preparation failed: {e}")))??;
        *ready = true;
        Ok(())
    }

    /// What a limit of the whole sandbox did to the last command, in words: an OOM kill in
    /// its cgroup, or a write that found the workspace full.
    fn sandbox_limit(&self, out: &ShellOutcome) -> Option<String> {
        if out.running || out.limit_hit.is_some() {
            return None;
        }
        if let Ok(slot) = self.ns.try_lock()
            && let Some(group) = slot.as_ref().and_then(|ns| ns.cgroup.clone())
        {
            let kills = group.oom_kills();
            let before = self.ooms_reported.swap(kills, Ordering::SeqCst);
            if kills > before {
                return Some(format!(
                    "memory limit of the sandbox reached ({} for all its processes together): \
                     the kernel stopped a process",
                    crate::output::limit_bytes(group.memory_bytes())
                ));
            }
        }
        if self.env.host.in_a_container()
            && let Some((kills, limit)) = crate::cgroup::container_memory()
        {
            let before = self.ooms_reported.swap(kills, Ordering::SeqCst);
            if kills > before {
                return Some(format!(
                    "memory limit of the sandbox reached ({} for all its processes together): \
                     the kernel stopped a process",
                    crate::output::limit_bytes(limit)
                ));
            }
        }
        if let Some(max) = self.env.host.volumes.max_bytes()
            && out.output.contains("No space left on device")
        {
            return Some(format!(
                "No space left: the workspace limit is {}",
                crate::output::limit_bytes(max)
            ));
        }
        None
    }

    fn with_limits(&self, mut out: ShellOutcome) -> ShellOutcome {
        if let Some(limit) = self.sandbox_limit(&out) {
            out.limit_hit = Some(limit);
        }
        out
    }

    /// For the periodic check where workspaces have no filesystem of their own: stops the
    /// sandbox when its workspace is over the limit. True when it did.
    pub(crate) async fn stop_if_over_disk_limit(&self) -> bool {
        let env = self.env.clone();
        let over = tokio::task::spawn_blocking(move || env.host.volumes.over_limit(&env.dirs))
            .await
            .ok()
            .flatten();
        let Some(used) = over else {
            return false;
        };
        tracing::warn!(
            session = %self.label,
            used = %crate::output::human_bytes(used),
            "a workspace is over its size limit: stopping its sandbox"
        );
        let _guard = self.lifecycle.write().await;
        self.stop_locked().await;
        true
    }

    fn shell(&self, id: &str) -> SandboxResult<Arc<Shell>> {
        self.shells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| {
                SandboxError::Invalid(format!(
                    "no shell session '{id}': start one with shell_exec"
                ))
            })
    }

    fn shell_or_create(&self, id: &str) -> SandboxResult<Arc<Shell>> {
        if id.is_empty() || id.len() > 128 {
            return Err(SandboxError::Invalid(
                "the shell id must be 1 to 128 characters".into(),
            ));
        }
        let mut shells = self.shells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = shells.get(id) {
            return Ok(s.clone());
        }
        if shells.len() >= self.config().max_shells {
            let mut ids: Vec<&String> = shells.keys().collect();
            ids.sort();
            return Err(SandboxError::Invalid(format!(
                "too many shell sessions (at most {}): reuse one of {:?}",
                self.config().max_shells,
                ids
            )));
        }
        let key = self.next_key.fetch_add(1, Ordering::SeqCst);
        let shell = Arc::new(Shell::new(id, key, self.env.clone()));
        shells.insert(id.to_string(), shell.clone());
        Ok(shell)
    }

    async fn namespaces(&self) -> SandboxResult<Arc<SessionNs>> {
        let mut slot = self.ns.lock().await;
        if let Some(ns) = slot.as_ref() {
            let net_ok = ns.net.as_ref().is_none_or(SessionNet::helper_alive);
            if net_ok || self.has_processes() {
                if !net_ok {
                    tracing::warn!(
                        session = %self.label,
                        "slirp4netns of this sandbox ended: its shells have no network until \
                         the sandbox stops"
                    );
                }
                return Ok(ns.clone());
            }
            // Nothing runs in the broken network: start afresh.
            tracing::warn!(session = %self.label, "slirp4netns of this sandbox ended; restarting its network");
            if let Some(old) = slot.take() {
                old.stop().await;
            }
        }
        if self.env.host.in_a_container() {
            let ns = Arc::new(SessionNs {
                userns: None,
                net: None,
                cgroup: None,
            });
            *slot = Some(ns.clone());
            return Ok(ns);
        }
        let group = self.create_cgroup().await?;
        let ns = match create_namespaces(&self.env.host).await {
            Ok(ns) => Arc::new(SessionNs {
                cgroup: group,
                ..ns
            }),
            Err(e) => {
                if let Some(group) = group {
                    let _ = tokio::task::spawn_blocking(move || group.remove()).await;
                }
                return Err(e);
            }
        };
        self.ooms_reported.store(0, Ordering::SeqCst);
        *slot = Some(ns.clone());
        Ok(ns)
    }

    async fn create_cgroup(&self) -> SandboxResult<Option<Arc<SandboxCgroup>>> {
        let env = self.env.clone();
        let label = self.label.clone();
        tokio::task::spawn_blocking(move || {
            env.host
                .cgroups
                .create(&label, env.config.memory_bytes, env.config.max_processes)
        })
        .await
        .map_err(|e| unavailable(format!("cgroup set-up failed: {e}")))?
        .map(|g| g.map(Arc::new))
        .map_err(|e| unavailable(format!("the sandbox's cgroup could not be created: {e}")))
    }

    /// Stops every process (the workspace stays; `/tmp` and the control files are
    /// emptied). The next operation starts afresh.
    async fn stop_locked(&self) {
        let processes: Vec<Weak<ToolProcess>> = self
            .processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for process in processes.iter().filter_map(Weak::upgrade) {
            ironhand_core::ports::sandbox::ProcessHandle::kill(process.as_ref());
        }
        let browser = self.browser.lock().await.take();
        if let Some(running) = browser {
            running.stop().await;
        }
        let shells: Vec<Arc<Shell>> = self
            .shells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in &shells {
            s.request_kill();
        }
        for s in &shells {
            s.stop().await;
        }
        let ns = self.ns.lock().await.take();
        if let Some(ns) = ns {
            ns.stop().await;
        }
        self.dirs_ready.store(false, Ordering::SeqCst);
        let mut volume = self.volume_ready.lock().await;
        *volume = false;
        let env = self.env.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _turn = env.mounts.lock().unwrap_or_else(|p| p.into_inner());
            env.host.volumes.release(&env.dirs);
            env.dirs.clean_transient();
        })
        .await;
    }

    fn has_processes(&self) -> bool {
        self.shells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|s| s.is_alive())
            || self.live_processes() > 0
    }

    /// Connectors' programs still running (forgets the others).
    fn live_processes(&self) -> usize {
        let mut processes = self.processes.lock().unwrap_or_else(|p| p.into_inner());
        processes.retain(|p| {
            p.upgrade().is_some_and(|p| {
                ironhand_core::ports::sandbox::ProcessHandle::is_running(p.as_ref())
            })
        });
        processes.len()
    }

    /// Whether anything of it runs (shells, namespaces, the browser).
    pub(crate) fn is_live(&self) -> bool {
        self.has_processes()
            || self.ns.try_lock().map(|g| g.is_some()).unwrap_or(true)
            || self.browser.try_lock().map(|g| g.is_some()).unwrap_or(true)
    }

    pub(crate) fn idle_time(&self) -> Duration {
        self.idle_for()
    }

    /// Stops it unless something is in progress (an operation, a running command, a
    /// browser call). True when it stopped.
    pub(crate) async fn stop_if_not_busy(&self) -> bool {
        let Ok(_guard) = self.lifecycle.try_write() else {
            return false;
        };
        let running = self
            .shells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|s| s.is_running());
        if running || self.browser.try_lock().is_err() {
            return false;
        }
        self.stop_locked().await;
        true
    }

    /// Unused for `idle` and without processes (safe to forget).
    pub(crate) fn is_idle_and_stopped(&self, idle: Duration) -> bool {
        self.idle_for() >= idle
            && !self.has_processes()
            && self.ns.try_lock().is_ok_and(|g| g.is_none())
    }

    /// Stops the sandbox if it was unused for `idle` and nothing is in progress.
    pub(crate) async fn reap_if_idle(&self, idle: Duration) -> bool {
        if self.idle_for() < idle {
            return false;
        }
        let Ok(_guard) = self.lifecycle.try_write() else {
            return false; // an operation is in progress
        };
        if self.idle_for() < idle {
            return false;
        }
        let had = self.has_processes() || self.ns.lock().await.is_some();
        if had {
            self.stop_locked().await;
        }
        had
    }

    pub(crate) async fn destroy(&self, remove_workspace: bool) -> SandboxResult<()> {
        self.destroyed.store(true, Ordering::SeqCst);
        self.env.gone.store(true, Ordering::SeqCst);
        // Kill first so that operations waiting on commands end and release the lock.
        for s in self
            .shells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            s.request_kill();
        }
        let _guard = self.lifecycle.write().await;
        self.stop_locked().await;
        if remove_workspace {
            let base = self.env.dirs.base.clone();
            tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&base) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(unavailable(format!(
                    "could not remove the workspace {}: {e}",
                    base.display()
                ))),
            })
            .await
            .map_err(|e| unavailable(format!("workspace removal failed: {e}")))??;
        }
        Ok(())
    }

    /// Packs the workspace into `archive` for a snapshot, unless it is still as last marked.
    /// Holds off a stop meanwhile; never counts as use (the sandbox still idles).
    pub(crate) async fn pack_workspace(
        &self,
        archive: &std::path::Path,
    ) -> SandboxResult<Option<ironhand_core::ports::sandbox::PackedWorkspace>> {
        let _guard = self.lifecycle.read().await;
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(unavailable("this session's sandbox was destroyed"));
        }
        // A size-limited workspace is read through its mounted image.
        self.ensure_volume().await?;
        let env = self.env.clone();
        let archive = archive.to_path_buf();
        tokio::task::spawn_blocking(move || {
            crate::workspace::pack(&env.dirs, &archive, env.config.workspace_max_bytes)
        })
        .await
        .map_err(|e| unavailable(format!("packing the workspace failed: {e}")))?
        .map_err(|e| unavailable(format!("could not pack the workspace: {e}")))
    }

    /// Stops the sandbox (its processes would see their files replaced) and replaces the
    /// workspace with the snapshot in `archive`, marked `version`.
    pub(crate) async fn restore_workspace(
        &self,
        archive: &std::path::Path,
        version: i64,
    ) -> SandboxResult<ironhand_core::ports::sandbox::RestoredWorkspace> {
        for s in self
            .shells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            s.request_kill();
        }
        let _guard = self.lifecycle.write().await;
        if self.destroyed.load(Ordering::SeqCst) {
            return Err(unavailable("this session's sandbox was destroyed"));
        }
        self.stop_locked().await;
        self.env.dirs.create(&self.env.host)?;
        self.dirs_ready.store(true, Ordering::SeqCst);
        self.ensure_volume().await?;
        let env = self.env.clone();
        let archive = archive.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let limits = crate::snapshot::UnpackLimits {
                max_bytes: env.config.workspace_max_bytes,
                owner: env.host.run_as,
            };
            crate::workspace::restore(&env.dirs, &archive, version, limits)
        })
        .await
        .map_err(|e| unavailable(format!("restoring the workspace failed: {e}")))?
        .map_err(|e| unavailable(format!("could not restore the workspace: {e}")))
    }

    /// Whether it is live and unused for `idle` (the reaper's next candidate).
    pub(crate) fn is_idle_and_live(&self, idle: Duration) -> bool {
        !self.destroyed.load(Ordering::SeqCst) && self.idle_for() >= idle && self.is_live()
    }

    async fn files<T: Send + 'static>(
        &self,
        op: impl FnOnce(&SessionFiles<'_>) -> SandboxResult<T> + Send + 'static,
    ) -> SandboxResult<T> {
        let _guard = self.begin().await?;
        let env = self.env.clone();
        let result = tokio::task::spawn_blocking(move || {
            op(&SessionFiles {
                host: &env.host,
                config: &env.config,
                dirs: &env.dirs,
            })
        })
        .await
        .map_err(|e| unavailable(format!("file operation failed: {e}")))?;
        // A full workspace, said in the limit's words.
        match (result, self.env.host.volumes.max_bytes()) {
            (Err(e), Some(max)) if e.to_string().contains("No space left on device") => {
                Err(SandboxError::Invalid(format!(
                    "No space left: the workspace limit is {}",
                    crate::output::limit_bytes(max)
                )))
            }
            (result, _) => result,
        }
    }
}

/// A sandbox dropped while in use (the server or a test ending without destroying it):
/// its cgroup's processes are killed and its mounts detached, so neither outlives it.
impl Drop for LocalSandbox {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.ns.try_lock()
            && let Some(ns) = slot.take()
            && let Some(group) = ns.cgroup.clone()
        {
            group.remove();
        }
        if self.volume_ready.try_lock().is_ok_and(|ready| *ready) {
            self.env.host.volumes.release(&self.env.dirs);
        }
    }
}

/// Creates a session's user namespace (sandbox uid/gid 1000 mapped to the host user
/// bubblewrap runs as, nested user namespaces disabled) and, with the network on, its
/// network namespace with slirp4netns attached. A short-lived bubblewrap reports its
/// child's pid on fd 3; the namespace files are opened (and slirp4netns started) while that
/// child waits on stdin, then the child is released.
pub(crate) async fn create_namespaces(host: &Host) -> SandboxResult<SessionNs> {
    let launch = host.anchor_launch()?;
    let (info_r, info_w) =
        std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some((uid, gid)) = host.run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: OwnedFd::from(info_w),
        child_fd: 3,
    }])
    .map_err(|e| unavailable(format!("cannot pass file descriptors: {e}")))?;
    let spawned = cmd.spawn();
    drop(cmd);
    let mut child = spawned.map_err(|e| {
        unavailable(format!(
            "cannot start {} ({}): {e}; {INSTALL_HINT}",
            if launch.program == host.bwrap {
                "bubblewrap"
            } else {
                "unshare"
            },
            launch.program.display()
        ))
    })?;
    let mut info = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(info_r))
        .map_err(|e| unavailable(format!("cannot read from bubblewrap: {e}")))?;
    let mut ready_out = child.stdout.take();
    let read_pid = async {
        // `ready` on stdout: the child runs in the sandbox's final user namespace.
        let stdout = ready_out.as_mut()?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"ready\n") {
            match stdout.read(&mut byte).await {
                Ok(1) => line.push(byte[0]),
                _ => return None,
            }
            if line.len() > 1024 {
                return None;
            }
        }
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            if let Some(end) = data.iter().position(|b| *b == b'}') {
                let v: serde_json::Value = serde_json::from_slice(&data[..=end]).ok()?;
                return v.get("child-pid")?.as_u64();
            }
            match info.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
            if data.len() > 64 * 1024 {
                return None;
            }
        }
    };
    let pid = tokio::time::timeout(ANCHOR_TIMEOUT, read_pid)
        .await
        .ok()
        .flatten();
    let result = match pid {
        Some(pid) => match open_userns(pid).map(Some) {
            Ok(userns) => match &host.network {
                // bubblewrap itself (our child, exec'd by `unshare`) runs in the network's
                // user namespace and the new network namespace.
                Network::Slirp(tools) => match child.id() {
                    Some(anchor) => {
                        SessionNet::start(host, tools, anchor)
                            .await
                            .map(|net| SessionNs {
                                userns,
                                net: Some(net),
                                cgroup: None,
                            })
                    }
                    None => Err(unavailable("the sandbox's anchor process ended early")),
                },
                Network::Off => Ok(SessionNs {
                    userns,
                    net: None,
                    cgroup: None,
                }),
                Network::Isolated(tools) => match child.id() {
                    Some(anchor) => {
                        SessionNet::isolated(host, tools, anchor)
                            .await
                            .map(|net| SessionNs {
                                userns,
                                net: Some(net),
                                cgroup: None,
                            })
                    }
                    None => Err(unavailable("the sandbox's anchor process ended early")),
                },
                Network::Missing(msg) => Err(unavailable(msg.to_string())),
                Network::Container => Err(unavailable(
                    "internal error: a container's sandbox has no namespaces of its own",
                )),
            },
            Err(e) => Err(e),
        },
        None => {
            let _ = child.start_kill();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), stderr.read_to_string(&mut err))
                        .await;
            }
            Err(unavailable(format!(
                "bubblewrap could not create a sandbox: {}; {INSTALL_HINT} and check that \
                 user namespaces are allowed (sysctl user.max_user_namespaces, \
                 kernel.unprivileged_userns_clone, AppArmor's \
                 kernel.apparmor_restrict_unprivileged_userns)",
                if err.trim().is_empty() {
                    "no reason given"
                } else {
                    err.trim()
                }
            )))
        }
    };
    drop(child.stdin.take()); // releases the child (`read` gets end-of-file)
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    result
}

/// Opens the user namespace of process `pid` after checking that it maps the sandbox's
/// uid (the namespace the sandbox runs in, not an intermediate one).
fn open_userns(pid: u64) -> SandboxResult<OwnedFd> {
    let fd = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .map(OwnedFd::from)
        .map_err(|e| unavailable(format!("cannot open the sandbox's user namespace: {e}")))?;
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
        .map_err(|e| unavailable(format!("cannot read the sandbox's uid map: {e}")))?;
    let first = map.split_whitespace().next().unwrap_or_default();
    if first != SANDBOX_UID.to_string() {
        return Err(unavailable(format!(
            "unexpected uid map in the sandbox's user namespace: {}",
            map.trim()
        )));
    }
    Ok(fd)
}

#[async_trait]
impl Sandbox for LocalSandbox {
    async fn shell_exec(
        &self,
        shell_id: &str,
        exec_dir: &str,
        command: &str,
    ) -> SandboxResult<ShellOutcome> {
        let _guard = self.begin().await?;
        let shell = self.shell_or_create(shell_id)?;
        if shell.is_running() {
            // Answer without starting anything (the check is repeated under the shell's lock).
            return shell.exec_refused();
        }
        let ns = self.namespaces().await?;
        let out = shell.exec(&ns, exec_dir, command).await;
        self.touch();
        out.map(|o| self.with_limits(o))
    }

    async fn shell_view(&self, shell_id: &str) -> SandboxResult<ShellOutcome> {
        let _guard = self.begin().await?;
        let shell = self.shell(shell_id)?;
        Ok(self.with_limits(shell.outcome()))
    }

    async fn shell_wait(
        &self,
        shell_id: &str,
        seconds: Option<u64>,
    ) -> SandboxResult<ShellOutcome> {
        let _guard = self.begin().await?;
        let shell = self.shell(shell_id)?;
        let out = shell.wait(seconds).await;
        self.touch();
        Ok(self.with_limits(out))
    }

    async fn shell_write(
        &self,
        shell_id: &str,
        input: &str,
        press_enter: bool,
    ) -> SandboxResult<ShellOutcome> {
        let _guard = self.begin().await?;
        let shell = self.shell(shell_id)?;
        shell.write(input, press_enter).await
    }

    async fn shell_kill(&self, shell_id: &str) -> SandboxResult<ShellOutcome> {
        let _guard = self.begin().await?;
        let shell = self.shell(shell_id)?;
        Ok(shell.kill().await)
    }

    async fn file_read(
        &self,
        path: &str,
        start_line: Option<i64>,
        end_line: Option<i64>,
    ) -> SandboxResult<FileText> {
        let path = path.to_string();
        let cap = self.config().file_read_cap_bytes;
        self.files(move |f| f.read_text(&path, start_line, end_line, cap))
            .await
    }

    async fn file_write(
        &self,
        path: &str,
        content: &str,
        options: &WriteOptions,
    ) -> SandboxResult<()> {
        let (path, content, options) = (path.to_string(), content.to_string(), options.clone());
        self.files(move |f| f.write_text(&path, &content, &options))
            .await
    }

    async fn file_str_replace(&self, path: &str, old: &str, new: &str) -> SandboxResult<usize> {
        let (path, old, new) = (path.to_string(), old.to_string(), new.to_string());
        self.files(move |f| f.str_replace(&path, &old, &new)).await
    }

    async fn file_find_in_content(
        &self,
        path: &str,
        regex: &str,
    ) -> SandboxResult<Vec<ContentMatch>> {
        let (path, regex) = (path.to_string(), regex.to_string());
        self.files(move |f| f.find_in_content(&path, &regex)).await
    }

    async fn file_find_by_name(&self, dir: &str, glob: &str) -> SandboxResult<Vec<String>> {
        let (dir, glob) = (dir.to_string(), glob.to_string());
        self.files(move |f| f.find_by_name(&dir, &glob)).await
    }

    async fn put_file(&self, path: &str, bytes: &[u8]) -> SandboxResult<()> {
        let (path, bytes) = (path.to_string(), bytes.to_vec());
        self.files(move |f| f.put_bytes(&path, &bytes)).await
    }

    async fn get_file(&self, path: &str, max_bytes: u64) -> SandboxResult<Vec<u8>> {
        let path = path.to_string();
        self.files(move |f| f.get_bytes(&path, max_bytes)).await
    }

    async fn browser(&self) -> SandboxResult<Arc<dyn SandboxBrowser>> {
        if let Err(why) = &self.env.host.browser {
            return Err(unavailable(why.to_string()));
        }
        let sandbox = self
            .me
            .upgrade()
            .ok_or_else(|| unavailable("this sandbox is being dropped"))?;
        Ok(Arc::new(BrowserHandle { sandbox }))
    }

    fn running_browser(&self) -> Option<Arc<dyn SandboxBrowser>> {
        LocalSandbox::running_browser(self)
    }

    async fn spawn_process(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> SandboxResult<ironhand_core::ports::sandbox::SandboxProcess> {
        let _guard = self.begin().await?;
        if self.live_processes() >= crate::process::MAX_PROCESSES {
            return Err(SandboxError::Invalid(format!(
                "this sandbox already runs {} connector programs",
                crate::process::MAX_PROCESSES
            )));
        }
        let ns = self.namespaces().await?;
        let (process, tracked) = self.start_process(&ns, program, args, env).await?;
        self.processes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&tracked));
        self.touch();
        Ok(process)
    }

    fn keep_alive(&self) {
        self.touch();
    }
}
