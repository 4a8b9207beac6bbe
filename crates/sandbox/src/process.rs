//! Long-lived programs of a sandbox besides its shells: connectors' stdio servers (MCP).
//! Each runs in a bubblewrap of its own inside the session's namespaces — the same user and
//! network namespace, cgroup, workspace and `/tmp` as the shells — with the sandbox's basic
//! environment plus exactly the variables it was given. Its stdin and stdout belong to the
//! caller; the end of its stderr is kept for error messages. It stops when the sandbox
//! stops, when killed, or when the caller drops the last handle.
//!
//! The per-process limits of the shells apply (open files, processes, file size, no core
//! dumps; address space only without a cgroup), except the CPU-time limit: a server lives
//! as long as the sandbox and its CPU time would add up past any per-command figure. The
//! cgroup's memory and process limits hold it with the rest of the sandbox.

use crate::sandbox::{LocalSandbox, SessionNs};
use ironhand_core::ports::sandbox::{ProcessHandle, SandboxError, SandboxProcess, SandboxResult};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Child;

/// Bytes of stderr kept (the end).
const STDERR_KEEP: usize = 4096;
/// Programs of one sandbox at once.
pub(crate) const MAX_PROCESSES: usize = 16;

fn unavailable(msg: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(msg.into())
}

/// One program: the host's handle on its bubblewrap.
pub(crate) struct ToolProcess {
    child: Mutex<Option<Child>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ProcessHandle for ToolProcess {
    fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn stderr_tail(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&kept).trim().to_string()
    }

    fn kill(&self) {
        // Killing bubblewrap ends its PID namespace, and so the program and its children.
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.start_kill();
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = child.start_kill();
        }
    }
}

/// The script the program's sandbox starts with: closes the namespace descriptors, sets
/// the limits, then becomes the program (`$@`).
fn prelude(limits: &str) -> String {
    format!(
        "exec 3<&- {}<&- {}<&-\n{limits} || exit 111\numask 022\nexec \"$@\"\n",
        crate::host::NET_OWNER_FD,
        crate::host::NETNS_FD
    )
}

impl LocalSandbox {
    pub(crate) async fn start_process(
        &self,
        ns: &SessionNs,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> SandboxResult<(SandboxProcess, Arc<ToolProcess>)> {
        if program.is_empty() || program.contains('\0') || args.iter().any(|a| a.contains('\0')) {
            return Err(SandboxError::Invalid("the command is not valid".into()));
        }
        let sandbox_env = self.env();
        let cfg = &sandbox_env.config;
        let limits = format!(
            "ulimit -HS -n {files} && ulimit -HS -u {procs} && ulimit -HS -c 0 && \
             ulimit -HS -f {fsize_kib} && ulimit -HS -v {mem}",
            files = cfg.max_open_files.max(16),
            procs = cfg.max_processes.max(4),
            fsize_kib = (cfg.max_file_bytes / 1024).max(1),
            mem = if ns.cgroup.is_some() {
                "unlimited".to_string()
            } else {
                (cfg.memory_bytes / 1024).max(1024).to_string()
            },
        );
        let script = prelude(&limits);
        let mut command: Vec<&str> = vec![
            "/bin/bash",
            "--noprofile",
            "--norc",
            "-c",
            &script,
            "ih-process",
            program,
        ];
        command.extend(args.iter().map(String::as_str));
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let launch =
            sandbox_env
                .host
                .launch(&sandbox_env.dirs, ns.net.is_some(), &command, &extra)?;
        let (err_r, err_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let mut cmd = ns.command(&sandbox_env.host, &launch, Vec::new())?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_w));
        let spawned = cmd.spawn();
        drop(cmd); // the host's copy of the stderr pipe's write end
        let mut child =
            spawned.map_err(|e| unavailable(format!("cannot start `{program}`: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| unavailable("the program has no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| unavailable("the program has no stdout"))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Ok(reader) = pipe::Receiver::from_owned_fd(OwnedFd::from(err_r)) {
            tokio::spawn(keep_tail(reader, stderr.clone()));
        }
        let process = Arc::new(ToolProcess {
            child: Mutex::new(Some(child)),
            stderr,
        });
        let handle: Arc<dyn ProcessHandle> = process.clone();
        Ok((
            SandboxProcess {
                stdin: Box::new(stdin),
                stdout: Box::new(stdout),
                handle,
            },
            process,
        ))
    }
}

/// Reads a program's stderr so its pipe never fills; keeps the last bytes.
async fn keep_tail(mut reader: pipe::Receiver, keep: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEEP {
                    let cut = kept.len() - STDERR_KEEP;
                    kept.drain(..cut);
                }
            }
        }
    }
}
