//! The `local` provider: one bubblewrap sandbox per session.

use crate::config::LocalSandboxConfig;
use crate::host::{Host, INSTALL_HINT, Network, SLIRP_TAP};
use crate::sandbox::LocalSandbox;
use async_trait::async_trait;
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::ports::sandbox::{
    BrowserUnsupported, PackedWorkspace, RestoredWorkspace, Sandbox, SandboxError, SandboxProvider,
    SandboxResult,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sandboxes of sessions on this host, isolated with bubblewrap. See the crate docs.
pub struct LocalSandboxProvider {
    host: Arc<Host>,
    config: Arc<LocalSandboxConfig>,
    sandboxes: Mutex<HashMap<SessionId, Arc<LocalSandbox>>>,
    /// Who each session's sandbox belongs to (for the per-user cap).
    owners: Mutex<HashMap<SessionId, UserId>>,
}

impl std::fmt::Debug for LocalSandboxProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSandboxProvider")
            .field("root_dir", &self.config.root_dir)
            .field("bwrap", &self.host.bwrap)
            .field("run_as", &self.host.run_as)
            .finish_non_exhaustive()
    }
}

impl LocalSandboxProvider {
    /// Finds bubblewrap, prepares `root_dir` and the sandbox's view of `/etc`. Starts no
    /// process (use [`SandboxProvider::check`] for that).
    pub fn new(config: LocalSandboxConfig) -> Result<Self, SandboxError> {
        let host = Host::discover(&config)?;
        host.volumes.release_stale(&config.root_dir);
        Ok(Self {
            host: Arc::new(host),
            config: Arc::new(config),
            sandboxes: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
        })
    }

    /// How this host contains sandboxes (memory and processes, workspace size, egress), in
    /// words: logged at start and shown by readiness.
    pub fn containment(&self) -> String {
        format!(
            "memory/processes: {}; disk: {}; egress: {}",
            self.host.cgroups.describe(),
            self.host.volumes.describe(),
            self.host.egress.describe()
        )
    }

    pub fn config(&self) -> &LocalSandboxConfig {
        &self.config
    }

    /// The host directory of a session's `/home/ubuntu`.
    pub fn workspace_dir(&self, session: SessionId) -> std::path::PathBuf {
        self.host
            .session_dirs(&self.config.root_dir, &session.to_string())
            .home
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<LocalSandbox>>> {
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owner(&self, session: SessionId) -> Option<UserId> {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .copied()
    }

    /// Before `session`'s sandbox comes to life: keeps live sandboxes under the caps (per
    /// instance, and per user when the owner is known) by stopping the longest-idle ones;
    /// refuses when every one over the cap is busy.
    async fn make_room(&self, session: SessionId) -> SandboxResult<()> {
        let owner = self.owner(session);
        let caps = crate::caps::LiveCaps {
            per_instance: self.config.max_live_sandboxes,
            per_user: self.config.max_live_sandboxes_per_user,
        };
        for _ in 0..self.config.max_live_sandboxes.max(1) + 1 {
            let live: Vec<_> = self
                .map()
                .iter()
                .filter(|(id, s)| **id != session && s.is_live())
                .map(|(id, s)| (*id, s.clone()))
                .collect();
            let live = live
                .into_iter()
                .map(|(id, s)| crate::caps::LiveSandbox {
                    session: id,
                    owner: self.owner(id),
                    idle: s.idle_time(),
                    sandbox: s,
                })
                .collect();
            let Some((candidates, why)) = crate::caps::must_make_room(caps, owner, live) else {
                return Ok(());
            };
            let mut stopped = false;
            for candidate in candidates {
                if candidate.sandbox.stop_if_not_busy().await {
                    tracing::info!(session = %candidate.session, "stopped the longest-idle sandbox to make room");
                    stopped = true;
                    break;
                }
            }
            if !stopped {
                return Err(SandboxError::Unavailable(why));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SandboxProvider for LocalSandboxProvider {
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

    async fn sandbox(&self, session: SessionId) -> SandboxResult<Arc<dyn Sandbox>> {
        self.host.require_network()?;
        let existing = self.map().get(&session).cloned();
        if existing.as_ref().is_none_or(|s| !s.is_live()) {
            self.make_room(session).await?;
        }
        let mut map = self.map();
        if let Some(s) = map.get(&session) {
            return Ok(s.clone());
        }
        let sandbox =
            LocalSandbox::new(&session.to_string(), self.host.clone(), self.config.clone())?;
        map.insert(session, sandbox.clone());
        Ok(sandbox)
    }

    async fn destroy(&self, session: SessionId, remove_workspace: bool) -> SandboxResult<()> {
        let existing = self.map().remove(&session);
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session);
        match existing {
            Some(sandbox) => sandbox.destroy(remove_workspace).await,
            None if remove_workspace => {
                let dirs = self
                    .host
                    .session_dirs(&self.config.root_dir, &session.to_string());
                let host = self.host.clone();
                tokio::task::spawn_blocking(move || {
                    // Left mounted by a server that did not stop cleanly.
                    host.volumes.release(&dirs);
                    let base = dirs.base;
                    match std::fs::remove_dir_all(&base) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(SandboxError::Unavailable(format!(
                            "could not remove the workspace {}: {e}",
                            base.display()
                        ))),
                    }
                })
                .await
                .map_err(|e| SandboxError::Unavailable(format!("workspace removal failed: {e}")))?
            }
            None => Ok(()),
        }
    }

    async fn reap_idle(&self) -> usize {
        let all: Vec<(SessionId, Arc<LocalSandbox>)> =
            self.map().iter().map(|(k, v)| (*k, v.clone())).collect();
        let mut stopped = 0;
        for (_, sandbox) in &all {
            sandbox
                .reap_browser_if_idle(self.config.browser_idle_timeout)
                .await;
            if sandbox.reap_if_idle(self.config.idle_timeout).await
                || sandbox.stop_if_over_disk_limit().await
            {
                stopped += 1;
            }
        }
        drop(all);
        // Forget idle sandboxes nobody else holds (a holder keeps using the same object,
        // which starts its processes again when used).
        let idle = self.config.idle_timeout;
        self.map()
            .retain(|_, s| Arc::strong_count(s) > 1 || !s.is_idle_and_stopped(idle));
        stopped
    }

    async fn check(&self) -> SandboxResult<()> {
        if !self.host.bwrap.exists() {
            return Err(SandboxError::Unavailable(format!(
                "bubblewrap is missing at {}: {INSTALL_HINT}",
                self.host.bwrap.display()
            )));
        }
        self.host.require_network()?;
        let label = format!(".check-{}", uuid::Uuid::new_v4().simple());
        let guard = CheckSandbox(Some(LocalSandbox::new(
            &label,
            self.host.clone(),
            self.config.clone(),
        )?));
        let Some(sandbox) = guard.0.clone() else {
            return Err(SandboxError::Unavailable("no test sandbox".into()));
        };
        // With the network on, the sandbox must have slirp4netns's interface.
        let (command, expected) = match self.host.network {
            Network::Slirp(_) => (
                format!(
                    "echo \"$(id -un)@$(hostname)\"; grep -q '^ *{SLIRP_TAP}:' /proc/net/dev && echo network"
                ),
                "ubuntu@sandbox\nnetwork",
            ),
            _ => (
                "echo \"$(id -un)@$(hostname)\"".to_string(),
                "ubuntu@sandbox",
            ),
        };
        let run = async {
            let out = sandbox.shell_exec("check", "", &command).await?;
            if out.running || out.exit_code != Some(0) || out.output.trim() != expected {
                return Err(SandboxError::Unavailable(format!(
                    "the sandbox test command did not work (exit code {:?}): {}",
                    out.exit_code,
                    out.output.trim()
                )));
            }
            Ok(())
        };
        let result = match tokio::time::timeout(Duration::from_secs(30), run).await {
            Ok(r) => r,
            Err(_) => Err(SandboxError::Unavailable(
                "starting a test sandbox took longer than 30 s".into(),
            )),
        };
        drop(sandbox);
        guard.destroy().await;
        result.map_err(|e| match e {
            SandboxError::Unavailable(m) | SandboxError::Invalid(m)
                if !m.contains("install-sandbox-deps") =>
            {
                SandboxError::Unavailable(format!("{m} ({INSTALL_HINT})"))
            }
            e => e,
        })
    }

    fn browser_support(&self) -> Result<(), BrowserUnsupported> {
        self.host
            .browser
            .as_ref()
            .map(|_| ())
            .map_err(|why| BrowserUnsupported::new(why.clone()))
    }

    fn running_browser(
        &self,
        session: SessionId,
    ) -> Option<Arc<dyn ironhand_core::ports::SandboxBrowser>> {
        let sandbox = self.map().get(&session).cloned()?;
        sandbox.running_browser()
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    async fn workspace_version(&self, session: SessionId) -> SandboxResult<Option<i64>> {
        let dirs = self
            .host
            .session_dirs(&self.config.root_dir, &session.to_string());
        tokio::task::spawn_blocking(move || crate::workspace::version(&dirs))
            .await
            .map_err(|e| SandboxError::Unavailable(format!("reading the workspace failed: {e}")))
    }

    async fn pack_workspace(
        &self,
        session: SessionId,
        archive: &Path,
    ) -> SandboxResult<Option<PackedWorkspace>> {
        // Without a sandbox here since the last mark, nothing here changed the workspace.
        let Some(sandbox) = self.map().get(&session).cloned() else {
            return Ok(None);
        };
        sandbox.pack_workspace(archive).await
    }

    async fn mark_workspace(
        &self,
        session: SessionId,
        version: i64,
        state: &str,
    ) -> SandboxResult<()> {
        let dirs = self
            .host
            .session_dirs(&self.config.root_dir, &session.to_string());
        let state = state.to_string();
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || {
            // A snapshot given up before this instance ever had the session: the (empty)
            // workspace counts as that version.
            if !dirs.base.is_dir() {
                dirs.create(&host)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            crate::workspace::write_marker(&dirs, version, &state)
        })
        .await
        .map_err(|e| SandboxError::Unavailable(format!("marking the workspace failed: {e}")))?
        .map_err(|e| SandboxError::Unavailable(format!("could not mark the workspace: {e}")))
    }

    async fn restore_workspace(
        &self,
        session: SessionId,
        archive: &Path,
        version: i64,
    ) -> SandboxResult<RestoredWorkspace> {
        let sandbox = {
            let mut map = self.map();
            match map.get(&session) {
                Some(s) => s.clone(),
                None => {
                    let s = LocalSandbox::new(
                        &session.to_string(),
                        self.host.clone(),
                        self.config.clone(),
                    )?;
                    map.insert(session, s.clone());
                    s
                }
            }
        };
        sandbox.restore_workspace(archive, version).await
    }

    fn idle_sandboxes(&self) -> Vec<SessionId> {
        let idle = self.config.idle_timeout;
        self.map()
            .iter()
            .filter(|(_, s)| s.is_idle_and_live(idle))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The throw-away sandbox of [`SandboxProvider::check`]: destroyed (processes and directory)
/// even when the check's future is dropped half-way, e.g. by a caller's timeout.
struct CheckSandbox(Option<Arc<LocalSandbox>>);

impl CheckSandbox {
    async fn destroy(mut self) {
        // Taken only once done: dropped half-way, `Drop` destroys it again.
        if let Some(sandbox) = self.0.as_ref() {
            let _ = sandbox.destroy(true).await;
        }
        self.0 = None;
    }
}

impl Drop for CheckSandbox {
    fn drop(&mut self) {
        let Some(sandbox) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = sandbox.destroy(true).await;
                });
            }
            Err(_) => {
                // No runtime left to stop processes with (they die with the server):
                // remove the directory at least.
                let _ = std::fs::remove_dir_all(sandbox.base_dir());
            }
        }
    }
}
