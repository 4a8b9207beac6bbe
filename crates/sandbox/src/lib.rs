//! Sandbox providers. `local` ([`LocalSandboxProvider`]) isolates each session with
//! [bubblewrap](https://github.com/containers/bubblewrap) on the server's own host.
//!
//! # What a sandbox sees
//!
//! The session's workspace `<root_dir>/<session>/home` is `/home/ubuntu` (home and working
//! directory), `<root_dir>/<session>/tmp` is `/tmp` (emptied when the sandbox stops). The
//! host's `/usr`, `/bin`, `/sbin`,
//! `/lib*` and `/etc` are mounted read-only, with every file or directory under `/etc` that
//! is not world-readable (shadow files, private keys, service configs with passwords), SSH
//! host keys and [`LocalSandboxConfig::hidden_paths`] covered up; `passwd`, `group`,
//! `hosts` and `hostname` are generated (user `ubuntu`, uid/gid 1000, host `sandbox`). It
//! gets a fresh `/proc`, a minimal `/dev`, empty `/run` and `/var`, new PID, IPC, UTS (and
//! cgroup) namespaces, and always a network namespace of its own (see *Network*). Nothing
//! else of the host is visible: not the server's data, not other sessions, not `/root`. The
//! environment is built from scratch (`PATH`, `HOME`, `USER=ubuntu`, `LANG=C.UTF-8`,
//! `TERM=dumb`, …): the server's variables never reach the sandbox.
//!
//! # Process model
//!
//! A session's sandbox owns one **user namespace** (and with `network = true` one network
//! namespace, see *Network*), created on first use by a short-lived bubblewrap and then
//! held only as a file descriptor. Every shell session (by the id the
//! agent chooses) is one `bash --noprofile --norc` in its **own bubblewrap** that joins
//! that user namespace and gets its own mount and PID namespaces over the same
//! directories. So:
//!
//! * all shells of a session share the workspace, `/tmp` and one process count (the
//!   process limit is per sandbox, see below);
//! * killing a shell's bubblewrap tears down its PID namespace, so `shell_kill` and the
//!   limits stop *everything* the shell started, daemons included, and nothing else;
//! * bash is PID 1 of its namespace (`--as-pid-1`) and sets the limits before it reads any
//!   command, so no process in the sandbox escapes them (not even by ptrace);
//! * a shell does not see the other shells' processes. With `network = true` all shells of
//!   a session share one network namespace (a server started in one shell is reachable from
//!   another on `127.0.0.1`); with `network = false` they share one loopback-only namespace.
//!
//! Processes are spawned from the calling task's thread and started with
//! `--die-with-parent`, so they die with the server; call the provider from a runtime whose
//! worker threads live as long as the sandboxes (any normal tokio runtime; not from
//! `spawn_blocking`, whose threads exit when idle).
//!
//! The shell protocol (markers, stdin FIFO, state kept across a restart) is described in
//! the `shell` module. File tools run on the host (see the `files` module) and never follow
//! a symbolic link out of `/home/ubuntu` or `/tmp`. They are bounded whatever the sandbox
//! puts in its files: files are read in fixed-size chunks, no further than
//! [`LocalSandboxConfig::max_scan_bytes`], returning at most
//! [`LocalSandboxConfig::file_read_cap_bytes`]; `file_str_replace` and appending `file_write`
//! (which load the whole file) refuse files over [`LocalSandboxConfig::max_edit_bytes`];
//! `file_find_by_name` walks depth first holding one descriptor per level (at most 64).
//!
//! # Network
//!
//! A sandbox never shares the host's network namespace, so it never reaches the host's
//! loopback (`127.0.0.0/8`, `::1`: databases, caches, the server's own API and metrics
//! listeners) nor its abstract unix sockets (they belong to a network namespace).
//!
//! * `network = false`: each session gets one empty network namespace (loopback only),
//!   shared by its shells and its browser, built like the one below with nothing attached
//!   (without `unshare`, `nsenter` or `ip`: an empty namespace per shell).
//! * `network = true` (default): each session gets **one network namespace**, shared by its
//!   shells, connected to the outside by [slirp4netns](https://github.com/rootless-containers/slirp4netns)
//!   (user-mode TCP/IP: the sandbox's connections are re-made by slirp4netns from the host,
//!   as the sandbox's host user). The sandbox sees `lo` and `tap0` (`10.0.2.100/24`, gateway
//!   `10.0.2.2`, MTU 65520), and `/etc/resolv.conf` names slirp4netns's DNS forwarder
//!   `10.0.2.3` (which asks the host's resolvers). slirp4netns runs with
//!   `--disable-host-loopback` (the gateway does not lead to the host's `127.0.0.1`), in
//!   its own mount namespace with its capabilities dropped and a seccomp filter
//!   (`--enable-sandbox --enable-seccomp`). No IPv6. No inbound connections.
//!
//!   What the sandbox *can* reach is what any machine on the host's network can: the
//!   internet, and the host's and its neighbours' services on their non-loopback
//!   addresses (services bound to `0.0.0.0`, private networks, cloud metadata endpoints).
//!   Keep private services on loopback or firewall them; as root the server runs slirp4netns
//!   as [`LocalSandboxConfig::run_as_uid`], so an owner-match rule (`iptables -m owner
//!   --uid-owner 60000`) can restrict the sandboxes' egress further.
//!
//!   How it is built: the session's anchor is `unshare --user --map-root-user --net`
//!   followed by bubblewrap, so the network namespace belongs to a user namespace in which
//!   the sandbox's host user is root, one level above the session's user namespace. The
//!   provider keeps descriptors of both; slirp4netns attaches to them once per session; each
//!   shell is started by `nsenter` in that user and network namespace, running bubblewrap,
//!   which joins the session's user namespace below it and drops every capability. Sandbox
//!   processes have none, so they cannot reconfigure their network. slirp4netns is stopped
//!   with the sandbox (destroy, idle reap) and exits by itself when the server dies (its
//!   `--exit-fd` pipe closes). Should it die unexpectedly, running shells lose the
//!   network; once none runs, the next command gets a new network and slirp4netns.
//!
//!   **Fail closed:** without slirp4netns (or `unshare`/`nsenter`), or when slirp4netns
//!   cannot attach (typically `/dev/net/tun` not usable by the sandbox's host user), no
//!   sandbox starts and [`SandboxProvider::check`](ironhand_core::ports::sandbox::SandboxProvider::check)
//!   says why; there is no fallback to the host's network.
//!
//! # Limits
//!
//! Applied with `ulimit` by each shell before it runs anything: CPU time (`RLIMIT_CPU`,
//! per process; builtin loops count against the shell itself, which is then restarted),
//! address space (`RLIMIT_AS`, per process — not a per-sandbox memory budget), open files
//! (`RLIMIT_NOFILE`), processes (`RLIMIT_NPROC`), file size (`RLIMIT_FSIZE`,
//! [`LocalSandboxConfig::max_file_bytes`]: a sparse file counts at its apparent size, so
//! `truncate -s 1T` fails), no core files. Wall time and total output
//! are enforced by the host, which kills the shell. `limit_hit` says which limit stopped a
//! command (memory is inferred from the command's error output). Processes a command leaves
//! in the background outlive it (like in a terminal) until `shell_kill`, the shell's end,
//! or the sandbox's stop; they stay under the CPU, memory and process limits.
//!
//! **Processes.** `RLIMIT_NPROC` is never enforced for host uid 0, and since Linux 5.14 it
//! is counted per user namespace. Hence:
//!
//! * *server runs as root*: bubblewrap is started as the unprivileged host user
//!   [`LocalSandboxConfig::run_as_uid`] (default 60000), so the limit applies, and it is
//!   counted in the session's user namespace — per sandbox, all shells together. The
//!   workspace files belong to that user (the server, being root, can still read and write
//!   them; files the host writes are given to it). Sandboxes never run as host root, so even
//!   a file of root's that were visible by mistake would not be readable.
//! * *server runs as another user*: the sandbox runs as the server's uid. The per-namespace
//!   count still bounds each sandbox; all sandboxes also count against the server user's
//!   own `ulimit -u`, which therefore bounds the total (on kernels older than 5.14 the
//!   count is that of the whole user, shared by the server and all sandboxes — still a
//!   bound, but a fork bomb in one sandbox can then starve the others and the server).
//!
//! Either way a fork bomb stops at `max_processes` per sandbox; when a shell's output shows
//! failed forks and a count of the namespace's tasks confirms the limit is reached, the
//! provider reports `limit_hit` and kills that shell. The host-wide
//! total is at most `max_processes` × active sandboxes, which must stay well below
//! `kernel.pid_max`.
//!
//! **Whole sandbox** (root servers): a cgroup per sandbox holds memory and processes of all
//! its shells and its browser together (the `cgroup` module; without it `RLIMIT_AS` is the
//! memory limit, per process), the workspace is a filesystem of its own of
//! `workspace_max_bytes` (the `volume` module), and an iptables chain for the sandbox user
//! refuses private, link-local, loopback and host addresses (the `egress` module).
//!
//! # Browser
//!
//! The `browser` module starts Xvnc and Chromium in one more bubblewrap in the session's
//! namespaces on the first browser call, drives Chromium over a DevTools pipe and gives the
//! live view a connection to Xvnc's Unix socket.
//!
//! Requirements (`scripts/install-sandbox-deps.sh` installs and checks them): bubblewrap,
//! user namespaces allowed for the sandbox user, and — as root — `root_dir` reachable by
//! `run_as_uid`; with `network = true` also slirp4netns, util-linux's `unshare` and
//! `nsenter`, and `/dev/net/tun` readable and writable by the sandbox's host user (mode
//! 0666, as udev creates it).

mod browser;
pub mod caps;
mod cgroup;
mod config;
mod egress;
mod files;
mod host;
mod net;
mod output;
mod process;
mod provider;
mod sandbox;
mod shell;
pub mod snapshot;
mod volume;
mod workspace;

pub use config::{LocalSandboxConfig, ReadOnlyMount};
pub use egress::{InvalidAllowEntry, parse_allow as parse_egress_allow};
pub use provider::LocalSandboxProvider;
pub use sandbox::LocalSandbox;
