//! The sandbox port: where the agent's shell and file tools run. One sandbox per session,
//! created on first use. The `local` provider (bubblewrap) lives in `ironhand-sandbox`.
//!
//! Paths are sandbox paths: absolute (`/home/ubuntu/...`, `/tmp/...`) or relative to the
//! home `/home/ubuntu`. A provider resolves them inside the sandbox only and refuses any
//! that would leave it (`..`, symlinks pointing outside).

use crate::ids::SessionId;
use crate::ports::browser::SandboxBrowser;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The home directory (and working directory) of every sandbox.
pub const SANDBOX_HOME: &str = "/home/ubuntu";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The request itself is wrong (bad path, unknown shell id, no such file, bad regex…):
    /// reported to the model as a failed tool result.
    #[error("{0}")]
    Invalid(String),
    /// The sandbox could not do it (could not start, limits hit while setting up…).
    #[error("sandbox unavailable: {0}")]
    Unavailable(String),
}

pub type SandboxResult<T> = Result<T, SandboxError>;

/// Why a provider's sandboxes get no browser: readiness shows it, and the browser tools are
/// then not offered. Its text is the cause's.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct BrowserUnsupported(Arc<dyn std::error::Error + Send + Sync>);

impl BrowserUnsupported {
    /// From the cause (an error, or a sentence).
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(Arc::from(cause.into()))
    }
}

/// One command of a shell session as the user sees it in a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleRecord {
    /// The prompt shown before the command, e.g. `ubuntu@sandbox:~/project $`.
    pub ps1: String,
    pub command: String,
    /// Output so far (stdout and stderr interleaved, ANSI sequences stripped, capped).
    pub output: String,
}

/// A shell session's state after an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellOutcome {
    /// The shell session id the agent chose.
    pub id: String,
    /// `running` while the last command has not finished, `completed` after it.
    pub running: bool,
    /// Exit code of the last finished command (`None` while running or if killed by a
    /// signal).
    pub exit_code: Option<i32>,
    /// Output of the last command (capped; the cap is stated in the text when hit).
    pub output: String,
    /// Every command of this shell session so far, oldest first (bounded history).
    pub console: Vec<ConsoleRecord>,
    /// Set when a limit stopped the command: which one, in words ("wall time limit of 120 s
    /// reached", "process limit reached", "memory limit reached", "output limit reached").
    pub limit_hit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileText {
    pub path: String,
    /// The requested lines (UTF-8, lossy), capped.
    pub content: String,
    /// True when the cap cut the content; the tool says so to the model.
    pub truncated: bool,
    pub total_lines: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentMatch {
    /// 1-based line number.
    pub line: usize,
    pub text: String,
}

/// Options of `file_write`, as the tool's parameters name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub append: bool,
    pub leading_newline: bool,
    pub trailing_newline: bool,
}

#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Runs `command` in shell session `shell_id` (created on first use; cwd and
    /// environment persist between its commands) after changing to `exec_dir`. Waits up to
    /// the provider's foreground wait; a command still going then returns `running: true`.
    /// A shell whose previous command is still running refuses (Invalid).
    async fn shell_exec(
        &self,
        shell_id: &str,
        exec_dir: &str,
        command: &str,
    ) -> SandboxResult<ShellOutcome>;
    /// The shell's state and output now, without waiting.
    async fn shell_view(&self, shell_id: &str) -> SandboxResult<ShellOutcome>;
    /// Waits until the running command finishes or `seconds` pass (capped by the provider).
    async fn shell_wait(&self, shell_id: &str, seconds: Option<u64>)
    -> SandboxResult<ShellOutcome>;
    /// Writes `input` (plus a newline with `press_enter`) to the running command's stdin.
    async fn shell_write(
        &self,
        shell_id: &str,
        input: &str,
        press_enter: bool,
    ) -> SandboxResult<ShellOutcome>;
    /// Kills the running command and everything it started.
    async fn shell_kill(&self, shell_id: &str) -> SandboxResult<ShellOutcome>;

    /// Lines `start_line..end_line` (0-based, end exclusive; `None` = from start / to end).
    async fn file_read(
        &self,
        path: &str,
        start_line: Option<i64>,
        end_line: Option<i64>,
    ) -> SandboxResult<FileText>;
    /// Writes atomically (temp file + rename), creating parent directories.
    async fn file_write(
        &self,
        path: &str,
        content: &str,
        options: &WriteOptions,
    ) -> SandboxResult<()>;
    /// Replaces every occurrence of `old` in the whole file; returns how many. Zero
    /// occurrences is Invalid ("old_str not found").
    async fn file_str_replace(&self, path: &str, old: &str, new: &str) -> SandboxResult<usize>;
    /// Lines matching `regex`, capped.
    async fn file_find_in_content(
        &self,
        path: &str,
        regex: &str,
    ) -> SandboxResult<Vec<ContentMatch>>;
    /// Sandbox paths under `dir` whose file name matches `glob` (`*.py`, `**/*.md`), capped.
    async fn file_find_by_name(&self, dir: &str, glob: &str) -> SandboxResult<Vec<String>>;
    /// Copies bytes into the sandbox (attachments); parents created, atomic.
    async fn put_file(&self, path: &str, bytes: &[u8]) -> SandboxResult<()>;
    /// Reads a file's bytes out of the sandbox, refusing files over `max_bytes`.
    async fn get_file(&self, path: &str, max_bytes: u64) -> SandboxResult<Vec<u8>>;

    /// The sandbox's browser, started on first use (a provider without one says why).
    async fn browser(&self) -> SandboxResult<Arc<dyn SandboxBrowser>> {
        Err(SandboxError::Unavailable(
            "this sandbox has no browser".into(),
        ))
    }
    /// The browser if it is running now (never starts one).
    fn running_browser(&self) -> Option<Arc<dyn SandboxBrowser>> {
        None
    }

    /// Starts `program` with `args` as a process of the sandbox, with the sandbox's basic
    /// environment (`PATH`, `HOME`, `LANG`…) plus exactly `env` — nothing of the server's.
    async fn spawn_process(
        &self,
        _program: &str,
        _args: &[String],
        _env: &[(String, String)],
    ) -> SandboxResult<SandboxProcess> {
        Err(SandboxError::Unavailable(
            "this sandbox cannot run programs for connectors".into(),
        ))
    }

    /// Something outside the tools (a connector's call) used the sandbox: it is not idle.
    fn keep_alive(&self) {}
}

/// What packing a session's workspace for a snapshot did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedWorkspace {
    /// Regular files stored, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Files left out to stay within the workspace limit (the oldest), and their bytes.
    pub left_out_files: u64,
    pub left_out_bytes: u64,
    /// Sandbox paths of the newest files left out (a few).
    pub left_out: Vec<String>,
    /// The workspace's state before it was read, opaque: handed back to
    /// [`SandboxProvider::mark_workspace`] once the snapshot is stored.
    pub state: String,
}

/// What restoring a snapshot into a session's workspace did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoredWorkspace {
    pub files: u64,
    pub bytes: u64,
    /// Entries of the archive refused as unsafe or unexpected (see the provider's docs).
    pub refused: u64,
}

#[async_trait]
pub trait SandboxProvider: Send + Sync {
    /// The session's sandbox, created on first use (the workspace persists on disk between
    /// sandboxes of the same session).
    async fn sandbox(&self, session: SessionId) -> SandboxResult<Arc<dyn Sandbox>>;
    /// The session's sandbox on behalf of `user`, its owner: a provider that caps live
    /// sandboxes per user counts it as theirs.
    async fn sandbox_for(
        &self,
        session: SessionId,
        _user: crate::ids::UserId,
    ) -> SandboxResult<Arc<dyn Sandbox>> {
        self.sandbox(session).await
    }
    /// Stops the session's processes; with `remove_workspace`, deletes its files too.
    async fn destroy(&self, session: SessionId, remove_workspace: bool) -> SandboxResult<()>;
    /// Stops sandboxes idle for longer than the idle timeout (workspaces stay).
    async fn reap_idle(&self) -> usize;
    /// For readiness: can this provider start sandboxes?
    async fn check(&self) -> SandboxResult<()>;
    /// `local`, `docker`, …
    fn kind(&self) -> &'static str;
    /// Whether sandboxes get a browser (the browser tools are offered only then), or why
    /// not (shown by readiness).
    fn browser_support(&self) -> Result<(), BrowserUnsupported> {
        Err(BrowserUnsupported::new(
            "this sandbox provider has no browser",
        ))
    }
    /// The running browser of a session's live sandbox, if any (for the live view: never
    /// starts a sandbox or a browser).
    fn running_browser(&self, _session: SessionId) -> Option<Arc<dyn SandboxBrowser>> {
        None
    }

    // Workspace snapshots (see `crate::workspace`): the provider moves a session's
    // `/home/ubuntu` to and from a local archive file (tar + zstd); the service stores it.

    /// The snapshot version this instance's copy of the session's workspace was last packed
    /// as or restored from: `Some(0)` for a workspace no snapshot ever touched, `None` when
    /// this instance holds no workspace of the session.
    async fn workspace_version(&self, _session: SessionId) -> SandboxResult<Option<i64>> {
        Ok(None)
    }
    /// Packs the session's workspace into the file `archive` (bounded by the provider's
    /// workspace limit: over it, the newest files that fit). `None`, writing nothing, when
    /// this instance has not had the session's sandbox since the workspace was last marked
    /// (`mark_workspace`), or the workspace has not changed since.
    async fn pack_workspace(
        &self,
        _session: SessionId,
        _archive: &std::path::Path,
    ) -> SandboxResult<Option<PackedWorkspace>> {
        Ok(None)
    }
    /// Records that the workspace, as it was in `state` (from `pack_workspace`), is snapshot
    /// `version`.
    async fn mark_workspace(
        &self,
        _session: SessionId,
        _version: i64,
        _state: &str,
    ) -> SandboxResult<()> {
        Ok(())
    }
    /// Replaces the session's workspace on this instance with the snapshot in `archive`
    /// (stopping its sandbox here first if it runs), and marks it as `version`.
    async fn restore_workspace(
        &self,
        _session: SessionId,
        _archive: &std::path::Path,
        _version: i64,
    ) -> SandboxResult<RestoredWorkspace> {
        Err(SandboxError::Unavailable(
            "this sandbox provider cannot restore workspaces".into(),
        ))
    }
    /// Sessions whose live sandbox has been idle long enough to be stopped by the next
    /// [`SandboxProvider::reap_idle`] (their workspaces are saved first).
    fn idle_sandboxes(&self) -> Vec<SessionId> {
        Vec::new()
    }
}

/// A long-lived program started in a sandbox (an MCP stdio server): its stdin and stdout
/// are the caller's; it runs with the sandbox's namespaces, user, cgroup and workspace and
/// stops with the sandbox, when killed, or when the last [`SandboxProcess::handle`] goes.
pub struct SandboxProcess {
    pub stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    pub handle: Arc<dyn ProcessHandle>,
}

pub trait ProcessHandle: Send + Sync {
    fn is_running(&self) -> bool;
    /// The end of what it wrote to stderr (a few KiB), for error messages.
    fn stderr_tail(&self) -> String;
    /// Stops it and everything it started.
    fn kill(&self);
}
