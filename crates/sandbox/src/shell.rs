//! One shell session: a long-lived `bash` in its own bubblewrap sandbox (its own PID
//! namespace inside the session's user namespace), driven over a line protocol.
//!
//! * bash reads its *script* from its stdin, a pipe only the host writes to. Each command is
//!   sent as one line that decodes the command text (hex escapes, so no quoting issues),
//!   changes to `exec_dir`, `eval`s it in the shell itself (cwd, variables, functions
//!   persist) with stdin redirected from the shell's FIFO, then prints an end marker with a
//!   random per-command token, the exit status and `$PWD`.
//! * The command's stdin is the FIFO `/run/ironhand/<key>.in`; `shell_write` writes there.
//!   Input the command did not read is drained before the next command, so it can never
//!   be taken for shell code.
//! * stdout and stderr of everything in the shell go to one pipe, read by a task that
//!   keeps the capped output of the current command and finds the end marker.
//! * Killing (`shell_kill`, wall-time limit, process or output limit) kills the shell's
//!   bubblewrap, which tears down its PID namespace: every process the shell started dies,
//!   daemons included. The next command starts a new shell, restoring the working
//!   directory and exported variables saved after the last finished command.
//! * In a container (`ironhand sandboxd`) there is no bubblewrap: bash runs directly as the
//!   leader of its own process group, and killing kills that group. A process that leaves
//!   the group (`setsid`) lives on until the sandbox's container stops; the container's
//!   pids and memory limits hold it either way.

use crate::config::LocalSandboxConfig;
use crate::files::prompt_dir;
use crate::host::{CONTROL_DIR, Host, NET_OWNER_FD, NETNS_FD, SessionDirs};
use crate::output::{MARK, OutputBuf, Scanner, human_bytes};
use crate::sandbox::SessionNs;
use ironhand_core::ports::sandbox::{
    ConsoleRecord, SANDBOX_HOME, SandboxError, SandboxResult, ShellOutcome,
};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// How long a new shell may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `shell_write` may wait for the command to make room in its input pipe.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kill may take to be confirmed.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of output kept from a shell that failed to start.
const STARTUP_KEEP: usize = 16 * 1024;
/// Exit status of a process killed by `SIGXCPU` (the CPU-time limit).
const SIGXCPU_STATUS: i32 = 128 + 24;
/// Exit status of a process killed by `SIGXFSZ` (the file-size limit).
const SIGXFSZ_STATUS: i32 = 128 + 25;
const FORK_FAILURES: &[&[u8]] = &[
    b"fork: retry: Resource temporarily unavailable",
    b"fork: Resource temporarily unavailable",
    b"Cannot fork",
];
const MEMORY_FAILURES: &[&str] = &[
    "memoryerror",
    "cannot allocate memory",
    "bad_alloc",
    "out of memory",
    "memory allocation of",
    "failed to allocate",
];

/// What every shell of a sandbox needs to start.
pub(crate) struct ShellEnv {
    pub(crate) host: Arc<Host>,
    pub(crate) config: Arc<LocalSandboxConfig>,
    pub(crate) dirs: SessionDirs,
    /// Mounting and unmounting the workspace take turns (they run on blocking threads that
    /// outlive a cancelled caller).
    pub(crate) mounts: Mutex<()>,
    /// Set by destroy: nothing is mounted any more.
    pub(crate) gone: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Record {
    token: String,
    ps1: String,
    command: String,
    out: OutputBuf,
    running: bool,
    exit_code: Option<i32>,
    limit_hit: Option<String>,
}

impl Record {
    fn console(&self) -> ConsoleRecord {
        ConsoleRecord {
            ps1: self.ps1.clone(),
            command: self.command.clone(),
            output: self.out.render(!self.running),
        }
    }
}

#[derive(Debug)]
struct State {
    /// Generation of the current (or last) shell process.
    generation: u64,
    alive: bool,
    ready_marker: Vec<u8>,
    ready: bool,
    startup: Vec<u8>,
    kill: Option<Arc<Notify>>,
    kill_requested: bool,
    scanner: Option<Scanner>,
    history: VecDeque<Record>,
    /// Working directory after the last finished command.
    cwd: String,
    /// The last bytes seen, to find a fork failure message split across reads.
    carry: Vec<u8>,
    watchdog: Option<tokio::task::AbortHandle>,
    /// Whether a shell process was ever started (then a new one restores the state).
    started_once: bool,
}

struct Shared {
    id: String,
    config: Arc<LocalSandboxConfig>,
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

/// The host's ends of a running shell process.
struct ProcIo {
    generation: u64,
    stdin: ChildStdin,
    input: pipe::Sender,
    input_drain: OwnedFd,
}

pub(crate) struct Shell {
    key: u32,
    env: Arc<ShellEnv>,
    shared: Arc<Shared>,
    ctl: tokio::sync::Mutex<Option<ProcIo>>,
}

fn unavailable(msg: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(msg.into())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn request_kill(st: &mut State) {
        if st.alive {
            st.kill_requested = true;
            if let Some(k) = &st.kill {
                k.notify_one();
            }
        }
    }

    /// Output from the shell process of generation `generation`. Returns whether it
    /// contains a fork failure (to be checked against the process count).
    fn feed(&self, generation: u64, data: &[u8]) -> bool {
        let mut st = self.lock();
        if st.generation != generation {
            return false;
        }
        if !st.ready {
            st.startup.extend_from_slice(data);
            if let Some(pos) = memchr::memmem::find(&st.startup, &st.ready_marker) {
                st.ready = true;
                let at = pos + st.ready_marker.len();
                let rest = st.startup.split_off(at);
                st.startup.clear();
                drop(st);
                self.bump();
                return !rest.is_empty() && self.feed(generation, &rest);
            }
            if st.startup.len() > STARTUP_KEEP {
                let cut = st.startup.len() - STARTUP_KEEP;
                st.startup.drain(..cut);
            }
            return false;
        }
        let fork_failure = Self::fork_failure_seen(&mut st, data);
        Self::route(&self.config, &mut st, data);
        drop(st);
        self.bump();
        fork_failure
    }

    /// Output of a ready shell: to the running command (finding its end marker) or, when
    /// nothing runs, to the last record (output of background processes).
    fn route(cfg: &LocalSandboxConfig, st: &mut State, data: &[u8]) {
        let Some(scanner) = st.scanner.as_mut() else {
            if let Some(rec) = st.history.back_mut() {
                rec.out.push(data);
            }
            return;
        };
        let scanned = scanner.feed(data);
        let Some(rec) = st.history.back_mut() else {
            return;
        };
        rec.out.push(&scanned.output);
        if let Some((rc, pwd)) = scanned.end {
            rec.running = false;
            rec.exit_code = Some(rc);
            if rec.limit_hit.is_none() {
                rec.limit_hit = limit_from_exit(cfg, rc, &rec.out);
            }
            rec.out.push(&scanned.after);
            st.scanner = None;
            if let Some(w) = st.watchdog.take() {
                w.abort();
            }
            if !pwd.is_empty() {
                st.cwd = pwd;
            }
        } else if rec.out.total() > cfg.output_stop_bytes && rec.limit_hit.is_none() {
            rec.limit_hit = Some(format!(
                "output limit of {} reached",
                human_bytes(cfg.output_stop_bytes)
            ));
            Self::request_kill(st);
        }
    }

    /// Whether `data` (or its junction with the previous output) has a shell's message
    /// for a failed fork.
    fn fork_failure_seen(st: &mut State, data: &[u8]) -> bool {
        let mut junction = std::mem::take(&mut st.carry);
        junction.extend_from_slice(&data[..data.len().min(64)]);
        let hit = FORK_FAILURES.iter().any(|p| {
            memchr::memmem::find(data, p).is_some() || memchr::memmem::find(&junction, p).is_some()
        });
        st.carry = data[data.len().saturating_sub(64)..].to_vec();
        hit
    }

    /// The sandbox is at its process limit and this shell's output shows failed forks (a
    /// fork bomb never ends by itself): the limit is reported and the shell's processes
    /// are killed.
    fn process_limit_reached(&self, generation: u64) {
        let mut st = self.lock();
        if st.generation != generation || !st.alive {
            return;
        }
        if let Some(rec) = st.history.back_mut()
            && rec.limit_hit.is_none()
        {
            rec.limit_hit = Some(format!(
                "process limit of {} processes reached: the shell's processes were killed",
                self.config.max_processes
            ));
        }
        Self::request_kill(&mut st);
        drop(st);
        self.bump();
    }

    /// The shell process of `generation` has exited (`status`: bubblewrap's exit code).
    fn ended(&self, generation: u64, status: Option<i32>) {
        let mut st = self.lock();
        if st.generation != generation {
            return;
        }
        st.alive = false;
        st.kill = None;
        if let Some(w) = st.watchdog.take() {
            w.abort();
        }
        let pending = st.scanner.take().map(|mut s| s.take_pending());
        let killed = st.kill_requested;
        let cfg = self.config.clone();
        if let Some(rec) = st.history.back_mut()
            && rec.running
        {
            if let Some(p) = pending {
                rec.out.push(&p);
            }
            rec.running = false;
            if killed {
                rec.exit_code = None;
                if !rec.out.at_line_start() {
                    rec.out.push_str("\n");
                }
                rec.out.push_str("[killed]\n");
            } else {
                rec.exit_code = status;
                if rec.limit_hit.is_none()
                    && let Some(code) = status
                {
                    rec.limit_hit = limit_from_exit(&cfg, code, &rec.out);
                }
            }
        }
        drop(st);
        self.bump();
    }
}

/// A limit that explains an exit status (CPU time) or a failure's output (memory).
fn limit_from_exit(cfg: &LocalSandboxConfig, code: i32, out: &OutputBuf) -> Option<String> {
    if code == SIGXCPU_STATUS {
        return Some(format!("CPU time limit of {} s reached", cfg.cpu_seconds));
    }
    if code == SIGXFSZ_STATUS {
        return Some(format!(
            "file size limit of {} reached",
            human_bytes(cfg.max_file_bytes)
        ));
    }
    if code != 0 {
        let text = out.render(true).to_lowercase();
        if MEMORY_FAILURES.iter().any(|p| text.contains(p)) {
            return Some(format!(
                "memory limit reached ({} of address space per process)",
                human_bytes(cfg.memory_bytes)
            ));
        }
    }
    None
}

/// `'...'`-safe text for bash's `printf %b`: every byte that is not plainly safe becomes
/// `\xHH` (so quotes, backslashes, newlines and non-ASCII bytes all pass unchanged).
fn escape_for_printf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b" ,._+:@%/=-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Where a command will run, for its prompt: `exec_dir` as `cd` would take it.
fn target_dir(cwd: &str, exec_dir: &str) -> String {
    let joined = if exec_dir.is_empty() {
        cwd.to_string()
    } else if let Some(rest) = exec_dir.strip_prefix('~') {
        format!("{SANDBOX_HOME}{rest}")
    } else if exec_dir.starts_with('/') {
        exec_dir.to_string()
    } else {
        format!("{cwd}/{exec_dir}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl Shell {
    pub(crate) fn new(id: &str, key: u32, env: Arc<ShellEnv>) -> Self {
        let (version, _) = watch::channel(0u64);
        let config = env.config.clone();
        Self {
            key,
            env,
            shared: Arc::new(Shared {
                id: id.to_string(),
                config,
                state: Mutex::new(State {
                    generation: 0,
                    alive: false,
                    ready_marker: Vec::new(),
                    ready: false,
                    startup: Vec::new(),
                    kill: None,
                    kill_requested: false,
                    scanner: None,
                    history: VecDeque::new(),
                    cwd: SANDBOX_HOME.to_string(),
                    carry: Vec::new(),
                    watchdog: None,
                    started_once: false,
                }),
                version,
            }),
            ctl: tokio::sync::Mutex::new(None),
        }
    }

    fn config(&self) -> &LocalSandboxConfig {
        &self.env.config
    }

    pub(crate) fn is_running(&self) -> bool {
        self.shared.lock().history.back().is_some_and(|r| r.running)
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.shared.lock().alive
    }

    pub(crate) fn outcome(&self) -> ShellOutcome {
        let st = self.shared.lock();
        let last = st.history.back();
        let running = last.is_some_and(|r| r.running);
        ShellOutcome {
            id: self.shared.id.clone(),
            running,
            exit_code: last.and_then(|r| if r.running { None } else { r.exit_code }),
            output: last
                .map(|r| match st.scanner.as_ref().map(Scanner::pending) {
                    // Bytes that might begin the end marker are shown while it runs.
                    Some(pending) if r.running && !pending.is_empty() => {
                        let mut out = r.out.clone();
                        out.push(pending);
                        out.render(false)
                    }
                    _ => r.out.render(!running),
                })
                .unwrap_or_default(),
            console: st.history.iter().map(Record::console).collect(),
            limit_hit: last.and_then(|r| r.limit_hit.clone()),
        }
    }

    /// Waits until the running command finished or `deadline` passed.
    async fn wait_until_done(&self, deadline: Instant) {
        let mut rx = self.shared.version.subscribe();
        loop {
            if !self.is_running() {
                return;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Waits until the shell process is gone or `deadline` passed.
    async fn wait_until_dead(&self, deadline: Instant) {
        let mut rx = self.shared.version.subscribe();
        loop {
            if !self.is_alive() {
                return;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    pub(crate) async fn exec(
        &self,
        ns: &SessionNs,
        exec_dir: &str,
        command: &str,
    ) -> SandboxResult<ShellOutcome> {
        if command.contains('\0') || exec_dir.contains('\0') {
            return Err(SandboxError::Invalid(
                "the command contains a NUL character".into(),
            ));
        }
        if command.trim().is_empty() {
            return Err(SandboxError::Invalid("the command is empty".into()));
        }
        let foreground_deadline = Instant::now() + self.config().foreground_wait;
        {
            let mut ctl = self.ctl.lock().await;
            if self.is_running() {
                return Err(self.busy_error());
            }
            let io = self.ensure_process(&mut ctl, ns).await?;
            drain(&io.input_drain);

            let token = new_token();
            let exec_dir = match exec_dir.strip_prefix('~') {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    format!("{SANDBOX_HOME}{rest}")
                }
                _ => exec_dir.to_string(),
            };
            let fifo = format!("{CONTROL_DIR}/{}.in", self.key);
            let env_file = format!("{CONTROL_DIR}/{}.env", self.key);
            let cd = if exec_dir.is_empty() {
                String::new()
            } else {
                format!(
                    "builtin printf -v __ih_d %b '{}'; builtin cd -- \"$__ih_d\" && ",
                    escape_for_printf(&exec_dir)
                )
            };
            // fd 62 is the shell's own copy of the output pipe (see the prelude): commands
            // do not get it, the end marker always goes there, and a command that closed
            // stdout or stderr gets them back.
            //
            // The token is written literally into the marker's `printf`, which bash parses
            // with the rest of the line before `eval` runs the command: it is in no variable,
            // file or argument list the command can read. (A command that deliberately takes
            // over the shell itself — a function named `builtin`, a DEBUG trap — can still
            // see it; it then only ends its own record early: the shell runs on like a
            // background job, under the same limits, until the next command's watchdog,
            // `shell_kill` or the sandbox's stop.)
            let line = format!(
                "builtin printf -v __ih_c %b '{cmd}'; {cd}builtin eval \"$__ih_c\" 0<'{fifo}' 62>&-; \
                 __ih_r=$?; [[ -e /proc/$$/fd/1 ]] || exec 1>&62; [[ -e /proc/$$/fd/2 ]] || exec 2>&62; \
                 {{ builtin export -p >'{env_file}'; }} 2>/dev/null; \
                 builtin printf '\\n{mark}{token} %s %s\\x1e\\n' \"$__ih_r\" \"$PWD\" >&62\n",
                cmd = escape_for_printf(command),
                mark = "\\x1eIH",
            );
            {
                let mut st = self.shared.lock();
                let ps1 = format!(
                    "ubuntu@sandbox:{} $",
                    prompt_dir(&target_dir(&st.cwd, &exec_dir))
                );
                st.scanner = Some(Scanner::new(&token));
                st.history.push_back(Record {
                    token: token.clone(),
                    ps1,
                    command: command.to_string(),
                    out: OutputBuf::new(self.config().output_cap_bytes),
                    running: true,
                    exit_code: None,
                    limit_hit: None,
                });
                while st.history.len() > self.config().history_len.max(1) {
                    st.history.pop_front();
                }
                st.watchdog = Some(self.start_watchdog(token.clone()));
            }
            self.shared.bump();
            let sent =
                tokio::time::timeout(WRITE_TIMEOUT, io.stdin.write_all(line.as_bytes())).await;
            if !matches!(sent, Ok(Ok(()))) {
                let mut st = self.shared.lock();
                if let Some(rec) = st.history.back_mut()
                    && rec.running
                    && rec.token == token
                {
                    rec.running = false;
                    rec.out
                        .push_str("[the shell ended before the command started; run it again]\n");
                }
                st.scanner = None;
                Shared::request_kill(&mut st);
            }
        }
        self.wait_until_done(foreground_deadline).await;
        Ok(self.outcome())
    }

    pub(crate) fn exec_refused(&self) -> SandboxResult<ShellOutcome> {
        Err(self.busy_error())
    }

    fn busy_error(&self) -> SandboxError {
        let st = self.shared.lock();
        let cmd = st
            .history
            .back()
            .map(|r| r.command.clone())
            .unwrap_or_default();
        SandboxError::Invalid(format!(
            "shell '{}' is still running `{}`: use shell_wait or shell_view to follow it, \
             shell_write_to_process to give it input, or shell_kill_process to stop it \
             (or use another shell id)",
            self.shared.id,
            truncate_chars(&cmd, 200)
        ))
    }

    fn start_watchdog(&self, token: String) -> tokio::task::AbortHandle {
        let shared = self.shared.clone();
        let limit = self.config().command_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            let mut st = shared.lock();
            let st = &mut *st;
            if let Some(rec) = st.history.back_mut()
                && rec.running
                && rec.token == token
            {
                if rec.limit_hit.is_none() {
                    rec.limit_hit = Some(format!(
                        "wall time limit of {} s reached",
                        limit.as_secs_f64()
                    ));
                }
                Shared::request_kill(st);
            }
        })
        .abort_handle()
    }

    pub(crate) async fn wait(&self, seconds: Option<u64>) -> ShellOutcome {
        let max = self.config().max_wait;
        let wait = seconds.map_or(max, |s| Duration::from_secs(s).min(max));
        self.wait_until_done(Instant::now() + wait).await;
        self.outcome()
    }

    pub(crate) async fn write(
        &self,
        input: &str,
        press_enter: bool,
    ) -> SandboxResult<ShellOutcome> {
        let mut ctl = self.ctl.lock().await;
        if !self.is_running() {
            return Err(SandboxError::Invalid(format!(
                "no command is running in shell '{}' to write to; start one with shell_exec",
                self.shared.id
            )));
        }
        let Some(io) = ctl.as_mut() else {
            return Err(SandboxError::Invalid(format!(
                "shell '{}' has no running process",
                self.shared.id
            )));
        };
        let mut data = input.as_bytes().to_vec();
        if press_enter {
            data.push(b'\n');
        }
        match tokio::time::timeout(WRITE_TIMEOUT, io.input.write_all(&data)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(SandboxError::Invalid(format!(
                    "could not write to the process: {e}"
                )));
            }
            Err(_) => {
                return Err(SandboxError::Invalid(
                    "the process is not reading its input (its input buffer is full)".into(),
                ));
            }
        }
        drop(ctl);
        // Give the process a moment to react, as a person at a terminal would see it.
        self.wait_until_done(Instant::now() + Duration::from_millis(500))
            .await;
        Ok(self.outcome())
    }

    /// Kills the shell's processes (the running command and everything it started).
    pub(crate) async fn kill(&self) -> ShellOutcome {
        self.request_kill();
        self.wait_until_dead(Instant::now() + KILL_TIMEOUT).await;
        self.outcome()
    }

    pub(crate) fn request_kill(&self) {
        let mut st = self.shared.lock();
        Shared::request_kill(&mut st);
    }

    pub(crate) async fn stop(&self) {
        self.request_kill();
        self.wait_until_dead(Instant::now() + KILL_TIMEOUT).await;
        *self.ctl.lock().await = None;
    }

    /// The running shell process, started (with the previous state restored) if needed.
    async fn ensure_process<'a>(
        &self,
        ctl: &'a mut Option<ProcIo>,
        ns: &SessionNs,
    ) -> SandboxResult<&'a mut ProcIo> {
        if self.shared.lock().kill_requested {
            // A kill is on its way (a limit was hit after the last command): let it finish
            // rather than hand the next command to a dying shell.
            self.wait_until_dead(Instant::now() + KILL_TIMEOUT).await;
        }
        let current = {
            let st = self.shared.lock();
            ctl.as_ref()
                .is_some_and(|io| io.generation == st.generation && st.alive && !st.kill_requested)
        };
        if !current {
            *ctl = None;
            let io = self.spawn(ns).await?;
            *ctl = Some(io);
        }
        ctl.as_mut()
            .ok_or_else(|| unavailable("the shell process is gone"))
    }

    async fn spawn(&self, ns: &SessionNs) -> SandboxResult<ProcIo> {
        let env = &self.env;
        let cfg = self.config();
        let launch = env.host.shell_launch(&env.dirs, ns.net.is_some())?;
        // In a container the process limit is the container's: every task it shows counts.
        let userns_ino = ns
            .userns
            .as_ref()
            .map(|userns| rustix::fs::fstat(userns).map(|st| st.st_ino).unwrap_or(0));
        let group = env.host.in_a_container();
        let (input, input_drain) = self.make_fifo()?;
        let (out_r, out_w) =
            std::io::pipe().map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let out_w2 = out_w
            .try_clone()
            .map_err(|e| unavailable(format!("cannot create a pipe: {e}")))?;
        let mut cmd = ns.command(&env.host, &launch, Vec::new())?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(out_w2));
        let spawned = cmd.spawn();
        drop(cmd); // closes the host's copies of the pipe's write end
        let mut child = spawned.map_err(|e| {
            unavailable(format!(
                "cannot start the sandbox shell ({}): {e}; {}",
                launch.program.display(),
                crate::host::INSTALL_HINT
            ))
        })?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| unavailable("bubblewrap has no stdin"))?;
        let out = pipe::Receiver::from_owned_fd(OwnedFd::from(out_r))
            .map_err(|e| unavailable(format!("cannot read the shell's output: {e}")))?;

        let ready_token = new_token();
        let kill = Arc::new(Notify::new());
        let (generation, restore) = {
            let mut st = self.shared.lock();
            st.generation += 1;
            st.alive = true;
            st.ready = false;
            st.ready_marker = format!("{MARK}READY{ready_token}\x1e\n").into_bytes();
            st.startup.clear();
            st.kill = Some(kill.clone());
            st.kill_requested = false;
            st.scanner = None;
            st.carry.clear();
            let restore = st.started_once.then(|| st.cwd.clone());
            st.started_once = true;
            (st.generation, restore)
        };
        tokio::spawn(read_output(
            self.shared.clone(),
            generation,
            child,
            out,
            kill,
            userns_ino,
            group,
        ));

        // The namespace descriptors bubblewrap was given stay open in bash: close them
        // before anything else runs.
        let mut prelude = format!(
            "exec 3<&- {NET_OWNER_FD}<&- {NETNS_FD}<&-\n\
             ulimit -S -t {cpu} && ulimit -H -t {cpu_hard} && ulimit -HS -v {mem_kib} && \
             ulimit -HS -n {files} && {procs}ulimit -HS -c 0 && \
             ulimit -HS -f {fsize_kib} || exit 111\n\
             exec 62>&1\numask 022\nPS1='\\u@\\h:\\w \\$ '\nbuiltin cd -- {SANDBOX_HOME}\n",
            cpu = cfg.cpu_seconds.max(1),
            cpu_hard = cfg.cpu_seconds.max(1) + 1,
            // With a cgroup (or a container's) the memory limit is the whole sandbox's;
            // address space stays free (a browser reserves far more than it uses).
            mem_kib = if ns.cgroup.is_some() || group {
                "unlimited".to_string()
            } else {
                (cfg.memory_bytes / 1024).max(1024).to_string()
            },
            files = cfg.max_open_files.max(16),
            // In a container RLIMIT_NPROC would count the uid across every container of
            // the host: its pids limit bounds the sandbox instead.
            procs = if group {
                String::new()
            } else {
                format!("ulimit -HS -u {} && ", cfg.max_processes.max(4))
            },
            fsize_kib = (cfg.max_file_bytes / 1024).max(1),
        );
        if let Some(cwd) = restore {
            prelude.push_str(&format!(
                "{{ . '{CONTROL_DIR}/{key}.env'; }} >/dev/null 2>&1; builtin printf -v __ih_d %b '{dir}'; \
                 builtin cd -- \"$__ih_d\" >/dev/null 2>&1\n",
                key = self.key,
                dir = escape_for_printf(&cwd),
            ));
        }
        prelude.push_str(&format!(
            "builtin printf '\\x1eIHREADY%s\\x1e\\n' {ready_token} >&62\n"
        ));
        let mut io = ProcIo {
            generation,
            stdin,
            input,
            input_drain,
        };
        let written = io.stdin.write_all(prelude.as_bytes()).await;

        let mut rx = self.shared.version.subscribe();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            {
                let st = self.shared.lock();
                if st.generation != generation {
                    return Err(unavailable("the shell was replaced while starting"));
                }
                if st.ready && st.alive {
                    break;
                }
                if !st.alive || written.is_err() {
                    let text = String::from_utf8_lossy(&st.startup).trim().to_string();
                    return Err(unavailable(format!(
                        "the sandbox shell could not start: {}{}",
                        if text.is_empty() {
                            "bubblewrap exited"
                        } else {
                            &text
                        },
                        if text.contains("bwrap") {
                            format!(" ({})", crate::host::INSTALL_HINT)
                        } else {
                            String::new()
                        }
                    )));
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                self.request_kill();
                return Err(unavailable("the sandbox shell did not start in time"));
            }
        }
        Ok(io)
    }

    /// Creates the shell's input FIFO (fresh for every shell process) and opens it for the
    /// host: read-write and non-blocking, so opening never waits and the command never sees
    /// end-of-file while the shell lives.
    fn make_fifo(&self) -> SandboxResult<(pipe::Sender, OwnedFd)> {
        let run = &self.env.dirs.run;
        let err = |e: std::io::Error| unavailable(format!("cannot create the shell's input: {e}"));
        let dir = rustix::fs::openat(
            CWD,
            run,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let name = format!("{}.in", self.key);
        match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(err(e.into())),
        }
        rustix::fs::mknodat(
            &dir,
            name.as_str(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| err(e.into()))?;
        let fd = rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
            return Err(unavailable("the shell's input is not a FIFO"));
        }
        self.env.host.chown_fd(&fd).map_err(err)?;
        let drain_fd = fd.try_clone().map_err(err)?;
        let sender = pipe::Sender::from_owned_fd(fd).map_err(err)?;
        Ok((sender, drain_fd))
    }
}

/// Discards input left in the FIFO by an earlier command.
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 8192];
    for _ in 0..4096 {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Tasks (processes and threads) in the user namespace with inode `ino`: what
/// `RLIMIT_NPROC` counts for the sandbox. `None`: every task this process sees (in a
/// container, the container's, which its pids limit counts).
fn count_tasks_in_userns(ino: Option<u64>) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut tasks = 0usize;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let path = entry.path();
        if ino
            .is_none_or(|ino| std::fs::metadata(path.join("ns/user")).is_ok_and(|m| m.ino() == ino))
        {
            let threads = std::fs::read_to_string(path.join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Threads:"))
                        .and_then(|n| n.trim().parse::<usize>().ok())
                })
                .unwrap_or(1);
            tasks += threads;
        }
    }
    tasks
}

fn truncate_chars(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Reads a shell process's output until it ends; owns the process (kills it on request).
async fn read_output(
    shared: Arc<Shared>,
    generation: u64,
    mut child: Child,
    mut out: pipe::Receiver,
    kill: Arc<Notify>,
    userns_ino: Option<u64>,
    group: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_count: Option<Instant> = None;
    // In a container, bash leads a process group of its own (see the module docs).
    let leader = if group { child.id() } else { None };
    let kill_group = || {
        if let Some(pid) = leader.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    };
    loop {
        tokio::select! {
            _ = kill.notified() => {
                kill_group();
                let _ = child.start_kill();
            }
            r = out.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let fork_failure = shared.feed(generation, &buf[..n]);
                    // Confirm with the real count (at most once a second), so that output
                    // merely quoting such a message does not kill the shell.
                    if fork_failure && last_count.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        last_count = Some(Instant::now());
                        let limit = shared.config.max_processes;
                        let count = tokio::task::spawn_blocking(move || count_tasks_in_userns(userns_ino))
                            .await
                            .unwrap_or(0);
                        if count as u64 * 10 >= limit * 9 {
                            shared.process_limit_reached(generation);
                        }
                    }
                }
            },
        }
    }
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(s)) => s.code(),
        _ => {
            kill_group();
            let _ = child.start_kill();
            child.wait().await.ok().and_then(|s| s.code())
        }
    };
    // What the shell left running goes with it, as a PID namespace's would.
    kill_group();
    shared.ended(generation, status);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_everything() {
        let e = escape_for_printf("echo 'a' \"b\" \\ é\n$X");
        assert!(!e.contains('\''));
        assert!(!e.contains('\n'));
        assert!(e.starts_with("echo\\x20") || e.starts_with("echo "));
    }

    #[test]
    fn target_dirs() {
        assert_eq!(target_dir("/home/ubuntu", ""), "/home/ubuntu");
        assert_eq!(target_dir("/home/ubuntu", "p/q"), "/home/ubuntu/p/q");
        assert_eq!(target_dir("/home/ubuntu/p", ".."), "/home/ubuntu");
        assert_eq!(target_dir("/home/ubuntu", "/tmp/"), "/tmp");
        assert_eq!(target_dir("/tmp", "~/x"), "/home/ubuntu/x");
    }
}
