//! Configuration of the local (bubblewrap) sandbox provider.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of [`crate::LocalSandboxProvider`]. Every limit applies per sandbox (one per
/// session) or per command as documented on the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSandboxConfig {
    /// Directory holding one directory per session: `<root_dir>/<session_id>/home` is the
    /// sandbox's `/home/ubuntu` (kept until the session is destroyed with its workspace),
    /// `<root_dir>/<session_id>/tmp` its private `/tmp` (emptied whenever the sandbox
    /// stops), `<root_dir>/<session_id>/run` the shells' control files. Created if missing.
    /// When the server runs as root, every ancestor of this directory must be traversable
    /// (`o+x`) by [`Self::run_as_uid`], because bubblewrap runs as that user.
    pub root_dir: PathBuf,
    /// The bubblewrap binary; `None` looks for `bwrap` in `/usr/bin`, `/usr/local/bin`,
    /// `/bin` and then the server's `PATH`.
    pub bwrap_path: Option<PathBuf>,
    /// `true` (default): the sandbox reaches the outside world (the agent can install
    /// packages and fetch pages) through its own network namespace, one per session, shared
    /// by its shells and connected by slirp4netns: the host's loopback (services listening
    /// on `127.0.0.1`/`::1`) and its abstract unix sockets are not reachable. Needs
    /// slirp4netns; without it no sandbox starts (see the crate docs). `false`: every
    /// shell gets its own empty network namespace (loopback only).
    pub network: bool,
    /// The slirp4netns binary (`network = true`); `None` looks for `slirp4netns` in
    /// `/usr/bin`, `/usr/local/bin`, `/bin`, `/usr/sbin`, `/sbin` and then the server's `PATH`.
    pub slirp4netns_path: Option<PathBuf>,
    /// How long `shell_exec` waits for the command before returning `running: true`
    /// (default 10 s).
    pub foreground_wait: Duration,
    /// The longest `shell_wait` waits, whatever the model asked (default 60 s).
    pub max_wait: Duration,
    /// Wall time per command; the command and everything it started in its shell are
    /// killed when it is reached (default 600 s).
    pub command_timeout: Duration,
    /// CPU time per process in seconds (`RLIMIT_CPU`; the process gets `SIGXCPU`, one
    /// second later `SIGKILL`). Default 300.
    pub cpu_seconds: u64,
    /// Memory of the whole sandbox in bytes (every process of it together, the browser and
    /// `/tmp` included), enforced by its cgroup: past it the kernel's OOM killer stops a
    /// process of that sandbox only. Where cgroups are unavailable (see [`Self::cgroups`])
    /// this is the address space of each process instead (`RLIMIT_AS`). Default 4 GiB.
    pub memory_bytes: u64,
    /// Processes and threads per sandbox, all shells together (its cgroup's `pids.max`, and
    /// `RLIMIT_NPROC` counted per user namespace; see the crate docs). Default 256.
    pub max_processes: u64,
    /// Put each sandbox in a cgroup of its own (root servers; v1 or v2) for the
    /// whole-sandbox memory and process limits. Default true; when unavailable the
    /// per-process limits remain and the log says why.
    pub cgroups: bool,
    /// `ironhand sandboxd` in a session's container: the container is the sandbox, so
    /// processes run directly (no bubblewrap, namespaces, cgroup or egress filter of our
    /// own: the container engine provides them), in the container's `/home/ubuntu` and
    /// `/tmp`; `root_dir` then only holds the workspace's snapshot marker.
    pub container: bool,
    /// Size of a session's workspace (`/home/ubuntu`) in bytes: a root server gives it its
    /// own loop-mounted filesystem of this size, so writes past it fail with "No space
    /// left"; otherwise a periodic check stops sandboxes over it. 0 = no limit.
    /// Default 1 GiB.
    pub workspace_max_bytes: u64,
    /// Size of a sandbox's `/tmp` (a `tmpfs`, counted in its memory) when the workspace is
    /// a loop-mounted filesystem. 0 = a plain directory. Default 512 MiB.
    pub tmp_max_bytes: u64,
    /// Refuse connections from sandboxes to private, link-local, loopback and the host's
    /// own addresses (root servers; see the `egress` module). Default true.
    pub egress_filter: bool,
    /// What the egress filter lets through anyway: `CIDR` or address, optionally `:port`
    /// (`10.0.5.0/24`, `10.0.5.7:5432`, `[fd00::7]:443`).
    pub egress_allow: Vec<String>,
    /// Give sandboxes a browser (Chromium on an Xvnc display, see the `browser` module)
    /// when Chromium and Xvnc are installed. Default true.
    pub browser: bool,
    /// A browser without a call (or a new viewer) for this long is stopped; the next call
    /// starts it again with the same profile. Default 300 s.
    pub browser_idle_timeout: Duration,
    /// Open files per process (`RLIMIT_NOFILE`). Default 1024.
    pub max_open_files: u64,
    /// Output kept per command in bytes: the first and the last half of this; the middle is
    /// dropped and the text says so. Default 64 KiB.
    pub output_cap_bytes: usize,
    /// A command whose output exceeds this many bytes in total is killed
    /// (`limit_hit`: output limit). Default 256 MiB.
    pub output_stop_bytes: u64,
    /// Most bytes `file_read` returns; the result says when it was truncated. Default 256 KiB.
    pub file_read_cap_bytes: usize,
    /// Most bytes of a file the host reads for `file_read` (to count its lines) and
    /// `file_find_in_content` (to search it): beyond this a read's `total_lines` counts only
    /// the lines seen so far, a search looks no further, and `file_read` with negative line
    /// numbers (counted from the end) is refused. Default 256 MiB.
    pub max_scan_bytes: u64,
    /// Largest file `file_str_replace` and `file_write` with `append` accept (both load the
    /// whole file into the server's memory); larger files are refused with a message
    /// pointing to the shell. Default 32 MiB.
    pub max_edit_bytes: u64,
    /// Largest file a sandbox process may write or extend (`RLIMIT_FSIZE`, `ulimit -f`; a
    /// write beyond it fails and the process gets `SIGXFSZ`). Sparse files count at their
    /// apparent size. Default 1 GiB.
    pub max_file_bytes: u64,
    /// A sandbox unused for this long is stopped by `reap_idle` (its workspace stays).
    /// Default 30 min.
    pub idle_timeout: Duration,
    /// Live sandboxes (with processes) on this server at once. Starting one more first stops
    /// the longest-idle live sandbox (never one with a command or browser call in progress);
    /// when all are busy the new one is refused. Default 64.
    pub max_live_sandboxes: usize,
    /// Live sandboxes of one user at once, the same way. Default 4.
    pub max_live_sandboxes_per_user: usize,
    /// Console records kept per shell session (default 50).
    pub history_len: usize,
    /// Shell session ids per sandbox (default 16).
    pub max_shells: usize,
    /// When the server runs as root, bubblewrap and everything in the sandbox run as this
    /// unprivileged host uid/gid (pick one no other program uses; default 60000). Files of
    /// the workspace are owned by it. Ignored when the server is not root: the sandbox then
    /// runs as the server's own uid.
    pub run_as_uid: u32,
    /// See [`Self::run_as_uid`]. Default 60000.
    pub run_as_gid: u32,
    /// Host paths under `/etc` (or `/usr`) to hide from the sandbox in addition to the
    /// automatic ones (every file or directory under `/etc` that is not world-readable,
    /// shadow files, SSH host keys). Put the server's own config file here when it lives
    /// under `/etc` and is world-readable.
    pub hidden_paths: Vec<PathBuf>,
    /// Host directories every sandbox sees read-only, each at a path under `/opt/` (e.g.
    /// connectors' programs installed once by the operator: `node_modules` of MCP servers).
    /// The sandbox's user must be able to read them.
    pub read_only_mounts: Vec<ReadOnlyMount>,
}

/// A host directory shown read-only inside every sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyMount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the sandbox sees it: an absolute path under `/opt/`.
    pub path: String,
}

impl Default for LocalSandboxConfig {
    fn default() -> Self {
        Self {
            root_dir: PathBuf::from("/var/lib/ironhand/sandboxes"),
            bwrap_path: None,
            network: true,
            slirp4netns_path: None,
            foreground_wait: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            command_timeout: Duration::from_secs(600),
            cpu_seconds: 300,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            max_processes: 256,
            cgroups: true,
            container: false,
            workspace_max_bytes: 1024 * 1024 * 1024,
            tmp_max_bytes: 512 * 1024 * 1024,
            egress_filter: true,
            egress_allow: Vec::new(),
            browser: true,
            browser_idle_timeout: Duration::from_secs(300),
            max_open_files: 1024,
            output_cap_bytes: 64 * 1024,
            output_stop_bytes: 256 * 1024 * 1024,
            file_read_cap_bytes: 256 * 1024,
            max_scan_bytes: 256 * 1024 * 1024,
            max_edit_bytes: 32 * 1024 * 1024,
            max_file_bytes: 1024 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30 * 60),
            max_live_sandboxes: 64,
            max_live_sandboxes_per_user: 4,
            history_len: 50,
            max_shells: 16,
            run_as_uid: 60000,
            run_as_gid: 60000,
            hidden_paths: Vec::new(),
            read_only_mounts: Vec::new(),
        }
    }
}
