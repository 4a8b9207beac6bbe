//! What `ironhand sandboxd` and its client say to each other: JSON bodies of the sandbox
//! operations (the port's own types where they are serialisable), the error body, and the
//! limits the provider hands a container's daemon.
//!
//! Every route is under `/v1/`, authenticated by `Authorization: Bearer <token>` (the
//! sandbox's own token, made by the provider for that container only).

use ironhand_core::ports::sandbox::SandboxError;
use serde::{Deserialize, Serialize};

/// The response header of `POST /v1/workspace/pack` that carries its [`PackReport`] as
/// JSON (the body is the archive).
pub const PACK_REPORT_HEADER: &str = "x-ironhand-pack-report";

/// The environment variable that carries the daemon's token.
pub const TOKEN_ENV: &str = "IRONHAND_SANDBOXD_TOKEN";
/// The environment variable that carries [`DaemonLimits`] as JSON.
pub const LIMITS_ENV: &str = "IRONHAND_SANDBOXD_LIMITS";
/// The port the daemon listens on in its container.
pub const PORT: u16 = 7070;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// `invalid` (the request is wrong: a failed tool result) or `unavailable`.
    pub kind: String,
    pub message: String,
}

impl ErrorBody {
    pub fn of(error: &SandboxError) -> Self {
        match error {
            SandboxError::Invalid(m) => Self {
                kind: "invalid".into(),
                message: m.clone(),
            },
            SandboxError::Unavailable(m) => Self {
                kind: "unavailable".into(),
                message: m.clone(),
            },
        }
    }

    pub fn into_error(self) -> SandboxError {
        if self.kind == "invalid" {
            SandboxError::Invalid(self.message)
        } else {
            SandboxError::Unavailable(self.message)
        }
    }
}

/// The limits of the local provider's code inside the container (the container's own
/// memory, pids and CPU limits are the engine's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DaemonLimits {
    pub foreground_wait_secs: u64,
    pub command_timeout_secs: u64,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub max_processes: u64,
    pub max_open_files: u64,
    pub output_cap_bytes: usize,
    pub workspace_max_bytes: u64,
    pub browser: bool,
    pub browser_idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub version: String,
    /// Seconds since the last request other than this one (any instance's).
    pub idle_secs: u64,
    /// `None` when the browser works here, else why not.
    pub browser_unavailable: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellExec {
    pub shell_id: String,
    pub exec_dir: String,
    pub command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellRef {
    pub shell_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellWait {
    pub shell_id: String,
    pub seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellWrite {
    pub shell_id: String,
    pub input: String,
    pub press_enter: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRead {
    pub path: String,
    pub start_line: Option<i64>,
    pub end_line: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileWrite {
    pub path: String,
    pub content: String,
    pub append: bool,
    pub leading_newline: bool,
    pub trailing_newline: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileReplace {
    pub path: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replaced {
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindInContent {
    pub path: String,
    pub regex: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindByName {
    pub dir: String,
    pub glob: String,
}

/// Query of `PUT`/`GET /v1/file/bytes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BytesQuery {
    pub path: String,
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserCall {
    pub function: String,
    pub args: serde_json::Value,
}

/// [`ironhand_core::ports::BrowserOutcome`] on the wire (the screenshot in base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserResult {
    pub success: bool,
    pub message: String,
    pub data: serde_json::Value,
    pub screenshot: Option<String>,
}

/// A program for a connector (`spawn_process`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpawnQuery {
    /// JSON of [`Spawn`] (a query parameter: the request is a WebSocket upgrade).
    pub spec: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spawn {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// What a pack put in the archive (the body; `204` when nothing changed since the mark).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackReport {
    pub files: u64,
    pub bytes: u64,
    pub left_out_files: u64,
    pub left_out_bytes: u64,
    pub left_out: Vec<String>,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreQuery {
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restored {
    pub files: u64,
    pub bytes: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mark {
    pub version: i64,
    pub state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub version: Option<i64>,
}

/// The last message of a process's WebSocket: it ended, with the end of its stderr.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessEnded {
    pub stderr_tail: String,
}
