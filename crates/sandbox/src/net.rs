//! `network = true`: a session's network namespace and the slirp4netns process that
//! connects it to the outside world (see the crate docs for the model).
//!
//! slirp4netns runs on the host as the sandbox's host user, outside every sandbox
//! namespace except for the tap device it opens inside the session's network namespace.
//! Connections the sandbox makes are re-made by it from the host's network namespace;
//! `--disable-host-loopback` refuses those to the host's loopback (`10.0.2.2`, the gateway,
//! would otherwise be `127.0.0.1` of the host), and the sandbox's own `127.0.0.1` is its own
//! loopback. `10.0.2.3` forwards DNS to the host's resolvers. IPv6 stays off.

use crate::host::{Host, IsoTools, NetTools, SLIRP_TAP};
use command_fds::{CommandFdExt, FdMapping};
use ironhand_core::ports::sandbox::{SandboxError, SandboxResult};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Child;

/// How long slirp4netns may take to attach.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopped slirp4netns may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of slirp4netns's error output kept for messages.
const STDERR_KEEP: usize = 4096;

fn unavailable(msg: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(msg.into())
}

/// A session's network namespace, held open by descriptors, and its slirp4netns.
pub(crate) struct SessionNet {
    /// The user namespace that owns the network namespace (the sandbox's host user is root
    /// in it). The shells' bubblewrap runs there to enter the network namespace.
    pub(crate) owner: OwnedFd,
    pub(crate) netns: OwnedFd,
    helper: Mutex<Option<Child>>,
    /// The write end of slirp4netns's `--exit-fd` pipe: slirp4netns exits when it closes,
    /// also when the server dies without stopping it. `None` for an isolated namespace.
    _exit: Option<OwnedFd>,
    /// `network = false`: nothing is attached (no helper to watch).
    isolated: bool,
}

impl std::fmt::Debug for SessionNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionNet")
            .field("helper", &self.helper_pid())
            .finish_non_exhaustive()
    }
}

impl SessionNet {
    /// Opens the namespaces of `pid` (a process of the session's anchor that runs in the
    /// owning user namespace and the new network namespace) and starts slirp4netns on them.
    /// Returns once the sandbox's interface is configured.
    pub(crate) async fn start(host: &Host, tools: &NetTools, pid: u32) -> SandboxResult<Self> {
        let (owner, netns) = open_namespaces(host, pid)?;
        let (ready_r, ready_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let (exit_r, exit_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let mut cmd = tokio::process::Command::new(&tools.slirp4netns);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
            "--ready-fd=3",
            "--exit-fd=4",
        ])
        .arg(pid.to_string())
        .arg(SLIRP_TAP)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        if let Some((uid, gid)) = host.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.fd_mappings(vec![
            FdMapping {
                parent_fd: OwnedFd::from(ready_w),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: OwnedFd::from(exit_r),
                child_fd: 4,
            },
        ])
        .map_err(|e| unavailable(format!("cannot pass file descriptors: {e}")))?;
        let spawned = cmd.spawn();
        drop(cmd); // closes the host's copies of the pipe ends slirp4netns got
        let mut child = spawned.map_err(|e| {
            unavailable(format!(
                "cannot start slirp4netns ({}): {e}; {}",
                tools.slirp4netns.display(),
                crate::host::NET_INSTALL_HINT
            ))
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let drain = child
            .stderr
            .take()
            .map(|stderr| tokio::spawn(drain_stderr(stderr, errors.clone())));
        let mut ready = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(ready_r))
            .map_err(|e| unavailable(format!("cannot read from slirp4netns: {e}")))?;
        let mut byte = [0u8; 1];
        let ok = matches!(
            tokio::time::timeout(START_TIMEOUT, ready.read(&mut byte)).await,
            Ok(Ok(1))
        );
        if !ok {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
            if let Some(d) = drain {
                let _ = tokio::time::timeout(Duration::from_secs(2), d).await;
            }
            let text = String::from_utf8_lossy(&errors.lock().unwrap_or_else(|p| p.into_inner()))
                .trim()
                .to_string();
            let advice = if text.contains("/dev/net/tun") {
                format!(
                    "; /dev/net/tun must exist and be readable and writable by the sandbox's \
                     host user {} (the mode udev gives it is 0666: chmod 0666 /dev/net/tun, \
                     or run scripts/install-sandbox-deps.sh)",
                    host.run_as.map_or_else(
                        || rustix::process::geteuid().as_raw().to_string(),
                        |(u, _)| u.to_string()
                    )
                )
            } else {
                format!("; {}", crate::host::NET_INSTALL_HINT)
            };
            return Err(unavailable(format!(
                "slirp4netns could not connect the sandbox's network: {}{advice}",
                if text.is_empty() {
                    "no reason given"
                } else {
                    &text
                }
            )));
        }
        Ok(Self {
            owner,
            netns,
            helper: Mutex::new(Some(child)),
            _exit: Some(OwnedFd::from(exit_w)),
            isolated: false,
        })
    }

    /// `network = false`: opens the namespaces of `pid` like [`Self::start`] and brings
    /// the loopback up; nothing connects the namespace to the outside.
    pub(crate) async fn isolated(host: &Host, tools: &IsoTools, pid: u32) -> SandboxResult<Self> {
        let (owner, netns) = open_namespaces(host, pid)?;
        let pass = crate::host::pass_fd;
        let mut cmd = tokio::process::Command::new(&tools.nsenter);
        cmd.args([
            "--preserve-credentials".to_string(),
            format!("--user=/proc/self/fd/{}", crate::host::NET_OWNER_FD),
            format!("--net=/proc/self/fd/{}", crate::host::NETNS_FD),
            "--".to_string(),
        ])
        .arg(&tools.ip)
        .args(["link", "set", "lo", "up"])
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        if let Some((uid, gid)) = host.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.fd_mappings(vec![
            pass(&owner, crate::host::NET_OWNER_FD)?,
            pass(&netns, crate::host::NETNS_FD)?,
        ])
        .map_err(|e| unavailable(format!("cannot pass file descriptors: {e}")))?;
        let out = tokio::time::timeout(START_TIMEOUT, cmd.output())
            .await
            .map_err(|_| unavailable("bringing up the sandbox's loopback timed out"))?
            .map_err(|e| unavailable(format!("cannot bring up the sandbox's loopback: {e}")))?;
        if !out.status.success() {
            return Err(unavailable(format!(
                "cannot bring up the sandbox's loopback: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Self {
            owner,
            netns,
            helper: Mutex::new(None),
            _exit: None,
            isolated: true,
        })
    }

    fn helper_pid(&self) -> Option<u32> {
        self.helper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(Child::id)
    }

    /// Whether slirp4netns still runs (the network works).
    pub(crate) fn helper_alive(&self) -> bool {
        if self.isolated {
            return true;
        }
        self.helper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops slirp4netns and waits for it.
    pub(crate) async fn stop(&self) {
        let child = self.helper.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.start_kill();
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(pid = ?child.id(), "slirp4netns did not exit after SIGKILL");
            }
        }
    }
}

/// Opens the user and network namespaces of `pid` after checking that the user namespace
/// is the expected one (the sandbox's host user mapped to root) and that the network
/// namespace is not the host's.
fn open_namespaces(host: &Host, pid: u32) -> SandboxResult<(OwnedFd, OwnedFd)> {
    let open = |what: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{what}"))
            .map(OwnedFd::from)
            .map_err(|e| unavailable(format!("cannot open the sandbox's {what} namespace: {e}")))
    };
    let owner = open("user")?;
    let netns = open("net")?;
    let ino = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|st| (st.st_dev, st.st_ino)).ok();
    let host_net = std::fs::metadata("/proc/self/ns/net")
        .map(|m| (m.dev(), m.ino()))
        .ok();
    if ino(&netns).is_none() || ino(&netns) == host_net {
        return Err(unavailable(
            "the sandbox did not get its own network namespace; refusing to start it on the \
             host's network",
        ));
    }
    let host_uid = host
        .run_as
        .map_or_else(|| rustix::process::geteuid().as_raw(), |(u, _)| u);
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
        .map_err(|e| unavailable(format!("cannot read the sandbox's uid map: {e}")))?;
    let fields: Vec<&str> = map.split_whitespace().collect();
    if fields != ["0", &host_uid.to_string(), "1"] {
        return Err(unavailable(format!(
            "unexpected uid map in the sandbox network's user namespace: {}",
            map.trim()
        )));
    }
    Ok((owner, netns))
}

/// Reads slirp4netns's error output until it exits: keeps the start for error messages,
/// logs it, and never lets the pipe fill up.
async fn drain_stderr(mut stderr: tokio::process::ChildStderr, keep: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                tracing::debug!(output = %text.trim_end(), "slirp4netns");
                let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                let room = STDERR_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
