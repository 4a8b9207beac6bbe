//! The sandbox's browser: TigerVNC's `Xvnc` (a virtual display that is also the VNC server)
//! and Debian's Chromium on it, in a bubblewrap of their own inside the session's sandbox —
//! the same user namespace, network namespace, cgroup, workspace and `/tmp` as the shells,
//! so the browser sees exactly what the agent's shell sees and reaches the web through the
//! sandbox's network only.
//!
//! * Chromium is driven over DevTools on a **pipe** (`--remote-debugging-pipe`: fds 3 and 4
//!   in Chromium, passed as 6 and 7 through `nsenter`/bubblewrap, which use 3–5): no
//!   debugging port exists that anything else could reach. `ironhand-browser` speaks it.
//! * Xvnc serves RFB on a **Unix socket** in the sandbox's control directory
//!   (`/run/ironhand/vnc.sock`, host `<root_dir>/<session>/run/vnc.sock`, mode 0600) and no
//!   TCP port (`-rfbport -1`). The server connects to it for the live view after checking,
//!   without following links, that it is a socket owned by the sandbox's user.
//! * Started on the first browser call; stopped after `browser_idle_timeout` without a call
//!   or a new viewer, with the sandbox, and by `browser_restart`. The profile lives in the
//!   workspace (`~/.config/ironhand-browser`), so cookies survive a restart of the browser.
//! * A `sh` is PID 1 of the browser's sandbox: it starts Xvnc, waits for its display, starts
//!   Chromium and waits for it; when Chromium ends the sandbox ends, Xvnc with it.

use crate::sandbox::{LocalSandbox, SessionNs};
use async_trait::async_trait;
use command_fds::FdMapping;
use ironhand_core::ports::browser::{BrowserOutcome, SandboxBrowser, VncStream};
use ironhand_core::ports::sandbox::{SandboxError, SandboxResult};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Child;

/// The display's (and so the page's) size.
pub(crate) const SCREEN: (u32, u32) = (1280, 800);
/// Where the profile lives, inside the sandbox.
const PROFILE_DIR: &str = "/home/ubuntu/.config/ironhand-browser";
/// The VNC socket's name in the control directory.
const VNC_SOCKET: &str = "vnc.sock";
/// How long Chromium may take to come up and open its first tab.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the browser's own output kept for an error message.
const LOG_KEEP: usize = 8 * 1024;

fn unavailable(msg: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(msg.into())
}

/// Why sandboxes get no browser (logged at start; readiness shows it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoBrowser {
    #[error("the browser is turned off (sandbox browser = false)")]
    TurnedOff,
    /// What is missing: "chromium", "tigervnc-standalone-server (Xvnc)".
    #[error(
        "{} not installed: run scripts/install-sandbox-deps.sh (apt-get install -y \
         chromium tigervnc-standalone-server fonts-noto-core fonts-noto-cjk)",
        .0.join(" and ")
    )]
    NotInstalled(Vec<&'static str>),
}

/// The programs the browser needs on the host.
#[derive(Debug, Clone)]
pub(crate) struct BrowserTools {
    pub(crate) chromium: PathBuf,
    pub(crate) xvnc: PathBuf,
}

impl BrowserTools {
    /// Finds Chromium and Xvnc, or says what is missing.
    pub(crate) fn discover(enabled: bool) -> Result<Self, NoBrowser> {
        if !enabled {
            return Err(NoBrowser::TurnedOff);
        }
        let chromium = ironhand_browser::find_chromium();
        let xvnc = ["/usr/bin/Xtigervnc", "/usr/bin/Xvnc"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        match (chromium, xvnc) {
            (Some(chromium), Some(xvnc)) => Ok(Self { chromium, xvnc }),
            (c, x) => {
                let mut missing = Vec::new();
                if c.is_none() {
                    missing.push("chromium");
                }
                if x.is_none() {
                    missing.push("tigervnc-standalone-server (Xvnc)");
                }
                Err(NoBrowser::NotInstalled(missing))
            }
        }
    }
}

/// A running browser: its sandbox process and the DevTools connection.
pub(crate) struct RunningBrowser {
    child: Child,
    browser: Arc<ironhand_browser::Browser>,
    log: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl RunningBrowser {
    pub(crate) fn is_alive(&mut self) -> bool {
        !self.browser.is_closed() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the browser's sandbox (its PID namespace goes, Xvnc and Chromium with it).
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The script PID 1 of the browser's sandbox runs: `$1` is Xvnc, the rest Chromium's
/// command line.
const LAUNCHER: &str = r#"exec 3<&- 4<&- 5<&-
ulimit -HS -c 0
mkdir -p /tmp/.X11-unix 2>/dev/null
# A browser stopped before (SIGKILL) left its display's lock and socket: start_x removes them.
xvnc=$1; w=$2; h=$3; shift 3
start_x() {
  rm -f /tmp/.X0-lock /tmp/.X11-unix/X0 /run/ironhand/vnc.sock
  "$xvnc" :0 -geometry "${w}x${h}" -depth 24 -rfbunixpath /run/ironhand/vnc.sock -rfbunixmode 0600 \
    -rfbport -1 -SecurityTypes None -nolisten tcp -AlwaysShared -desktop Browser \
    </dev/null 6<&- 7>&- &
  xpid=$!
}
start_x
i=0; tries=0
while [ ! -S /tmp/.X11-unix/X0 ] || [ ! -S /run/ironhand/vnc.sock ]; do
  if ! kill -0 "$xpid" 2>/dev/null; then
    # The display of a browser stopped a moment ago may not be gone yet: try again.
    tries=$((tries + 1))
    if [ "$tries" -gt 25 ]; then echo "Xvnc did not start" >&2; exit 1; fi
    sleep 0.2; start_x; i=0; continue
  fi
  i=$((i + 1))
  if [ "$i" -gt 200 ]; then echo "Xvnc did not start" >&2; exit 1; fi
  sleep 0.05
done
mkdir -p /home/ubuntu/.config/ironhand-browser
"$@" 3<&6 4>&7 6<&- 7>&- </dev/null &
wait $!
"#;

impl LocalSandbox {
    /// Starts Xvnc and Chromium in the sandbox's namespaces and connects to Chromium.
    pub(crate) async fn start_browser(
        &self,
        ns: &SessionNs,
        tools: &BrowserTools,
    ) -> SandboxResult<RunningBrowser> {
        let env = self.env();
        let _ = std::fs::remove_file(env.dirs.run.join(VNC_SOCKET));
        let mut opts = ironhand_browser::LaunchOptions::new(PROFILE_DIR);
        opts.window_size = SCREEN;
        let flags = ironhand_browser::launch_args(&opts);
        let (w, h) = (SCREEN.0.to_string(), SCREEN.1.to_string());
        let chromium = tools.chromium.to_string_lossy().to_string();
        let xvnc = tools.xvnc.to_string_lossy().to_string();
        let mut command: Vec<&str> = vec!["/bin/sh", "-c", LAUNCHER, "ih-browser", &xvnc, &w, &h];
        command.push(&chromium);
        command.extend(flags.iter().map(String::as_str));
        let launch =
            env.host
                .launch(&env.dirs, ns.net.is_some(), &command, &[("DISPLAY", ":0")])?;

        // DevTools pipes: Chromium reads commands on `cmd_r`, writes on `out_w`.
        let (cmd_r, cmd_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let (out_r, out_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let (log_r, log_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let fds = vec![
            FdMapping {
                parent_fd: OwnedFd::from(cmd_r),
                child_fd: 6,
            },
            FdMapping {
                parent_fd: OwnedFd::from(out_w),
                child_fd: 7,
            },
        ];
        let log_w2 = log_w
            .try_clone()
            .map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let mut cmd = ns.command(&env.host, &launch, fds)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log_w))
            .stderr(Stdio::from(log_w2));
        let spawned = cmd.spawn();
        drop(cmd); // the host's copies of the child's pipe ends
        let child = spawned.map_err(|e| unavailable(format!("cannot start the browser: {e}")))?;

        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Ok(reader) = pipe::Receiver::from_owned_fd(OwnedFd::from(log_r)) {
            tokio::spawn(drain_log(reader, log.clone()));
        }
        let reader = pipe::Receiver::from_owned_fd(OwnedFd::from(out_r))
            .map_err(|e| unavailable(format!("cannot read from the browser: {e}")))?;
        let writer = pipe::Sender::from_owned_fd(OwnedFd::from(cmd_w))
            .map_err(|e| unavailable(format!("cannot write to the browser: {e}")))?;
        let options = ironhand_browser::BrowserOptions::default();
        let connected = tokio::time::timeout(
            START_TIMEOUT,
            ironhand_browser::Browser::connect(reader, writer, options),
        )
        .await;
        let mut running = match connected {
            Ok(Ok(browser)) => RunningBrowser {
                child,
                browser: Arc::new(browser),
                log: log.clone(),
            },
            Ok(Err(e)) => {
                let text = kept_log(&log);
                drop(child);
                return Err(unavailable(format!("the browser did not start: {e}{text}")));
            }
            Err(_) => {
                let text = kept_log(&log);
                drop(child);
                return Err(unavailable(format!(
                    "the browser did not start within {} s{text}",
                    START_TIMEOUT.as_secs()
                )));
            }
        };
        if !running.is_alive() {
            let text = kept_log(&running.log);
            running.stop().await;
            return Err(unavailable(format!("the browser exited at start{text}")));
        }
        Ok(running)
    }

    /// A connection to the display's VNC socket, opened without following links and only
    /// when it is a socket of the sandbox's user.
    pub(crate) async fn connect_vnc_socket(&self) -> SandboxResult<VncStream> {
        let env = self.env();
        let path = env.dirs.run.join(VNC_SOCKET);
        let expected_uid = env
            .host
            .run_as
            .map_or_else(|| rustix::process::geteuid().as_raw(), |(u, _)| u);
        let stream = tokio::task::spawn_blocking(move || open_vnc(&path, expected_uid))
            .await
            .map_err(|e| unavailable(format!("cannot reach the browser's display: {e}")))??;
        let stream = tokio::net::UnixStream::from_std(stream)
            .map_err(|e| unavailable(format!("cannot reach the browser's display: {e}")))?;
        Ok(Box::new(stream))
    }
}

fn open_vnc(path: &Path, expected_uid: u32) -> SandboxResult<std::os::unix::net::UnixStream> {
    use rustix::fs::{FileType, Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| unavailable(format!("the browser's display is not there: {e}")))?;
    let st = rustix::fs::fstat(&fd)
        .map_err(|e| unavailable(format!("the browser's display is not usable: {e}")))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket || st.st_uid != expected_uid {
        return Err(unavailable(
            "the browser's display socket is not the one the browser made",
        ));
    }
    // Connect to exactly the inode checked above.
    let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let stream = std::os::unix::net::UnixStream::connect(&via)
        .map_err(|e| unavailable(format!("cannot connect to the browser's display: {e}")))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| unavailable(format!("cannot connect to the browser's display: {e}")))?;
    Ok(stream)
}

fn kept_log(log: &std::sync::Mutex<Vec<u8>>) -> String {
    let bytes = log.lock().unwrap_or_else(|p| p.into_inner());
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        let tail: String = text
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(" ({tail})")
    }
}

/// Reads the browser sandbox's output so its pipe never fills; keeps the start.
async fn drain_log(mut reader: pipe::Receiver, keep: Arc<std::sync::Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                tracing::trace!(output = %String::from_utf8_lossy(&buf[..n]).trim_end(), "browser");
                let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                let room = LOG_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// What the agent and the live view hold: the sandbox, whose browser it is.
pub(crate) struct BrowserHandle {
    pub(crate) sandbox: Arc<LocalSandbox>,
}

fn to_port(outcome: ironhand_browser::BrowserOutcome) -> BrowserOutcome {
    BrowserOutcome {
        success: outcome.success,
        message: outcome.message,
        data: outcome.data,
        screenshot: outcome.screenshot,
    }
}

#[async_trait]
impl SandboxBrowser for BrowserHandle {
    async fn call(&self, function: &str, args: &serde_json::Value) -> BrowserOutcome {
        match self.sandbox.browser_call(function, args).await {
            Ok(outcome) => to_port(outcome),
            Err(e) => BrowserOutcome::failed(e.to_string()),
        }
    }

    async fn connect_vnc(&self) -> SandboxResult<VncStream> {
        self.sandbox.browser_vnc().await
    }

    fn is_running(&self) -> bool {
        self.sandbox.browser_running()
    }
}

pub(crate) fn browser_of(running: &RunningBrowser) -> Arc<ironhand_browser::Browser> {
    running.browser.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_browser_says_what_to_install() {
        assert_eq!(
            BrowserTools::discover(false).expect_err("off").to_string(),
            "the browser is turned off (sandbox browser = false)"
        );
        assert_eq!(
            NoBrowser::NotInstalled(vec!["chromium", "tigervnc-standalone-server (Xvnc)"])
                .to_string(),
            "chromium and tigervnc-standalone-server (Xvnc) not installed: run \
             scripts/install-sandbox-deps.sh (apt-get install -y chromium \
             tigervnc-standalone-server fonts-noto-core fonts-noto-cjk)"
        );
    }
}
