//! What the provider learns about the host once: where bubblewrap (and, with the network
//! on, slirp4netns, `unshare` and `nsenter`) are, which user the sandboxes run as, which
//! parts of `/etc` must be hidden, and the command lines that build a sandbox.

use crate::cgroup::Cgroups;
use crate::config::LocalSandboxConfig;
use crate::egress::Egress;
use crate::volume::Volumes;
use ironhand_core::ports::sandbox::{SANDBOX_HOME, SandboxError};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The user and group every sandbox process has inside (`ubuntu`).
pub(crate) const SANDBOX_UID: u32 = 1000;
pub(crate) const SANDBOX_GID: u32 = 1000;
pub(crate) const HOSTNAME: &str = "sandbox";
/// Where a shell's control files appear inside the sandbox.
pub(crate) const CONTROL_DIR: &str = "/run/ironhand";

pub(crate) const INSTALL_HINT: &str =
    "install bubblewrap (apt-get install -y bubblewrap) or run scripts/install-sandbox-deps.sh";
pub(crate) const NET_INSTALL_HINT: &str = "the sandbox network (network = true) needs slirp4netns \
     (apt-get install -y slirp4netns) and util-linux's unshare and nsenter, or run \
     scripts/install-sandbox-deps.sh; or set network = false";
/// The sandbox's DNS server: slirp4netns forwards it to the host's resolvers.
pub(crate) const SLIRP_DNS: &str = "10.0.2.3";
/// The sandbox's network interface (slirp4netns's tap device).
pub(crate) const SLIRP_TAP: &str = "tap0";
/// In a shell's `nsenter`: the descriptors of the network namespace's owning user
/// namespace and of the network namespace (the session's user namespace is fd 3).
pub(crate) const NET_OWNER_FD: i32 = 4;
pub(crate) const NETNS_FD: i32 = 5;

const TOP_LEVEL: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Walking `/etc` stops after this many entries (it has about a thousand normally).
const ETC_WALK_LIMIT: usize = 50_000;

#[derive(Debug)]
enum TopLevel {
    Symlink(PathBuf, PathBuf),
    Bind(PathBuf),
}

/// The programs the shared network of a session needs.
#[derive(Debug)]
pub(crate) struct NetTools {
    pub(crate) slirp4netns: PathBuf,
    pub(crate) unshare: PathBuf,
    pub(crate) nsenter: PathBuf,
}

/// The programs of a session-wide network namespace without a connection.
#[derive(Debug)]
pub(crate) struct IsoTools {
    pub(crate) unshare: PathBuf,
    pub(crate) nsenter: PathBuf,
    /// iproute2's `ip`, to bring the namespace's loopback up.
    pub(crate) ip: PathBuf,
}

/// How sandboxes reach the network.
#[derive(Debug)]
pub(crate) enum Network {
    /// `network = false` without `unshare`/`nsenter`/`ip`: every shell gets its own empty
    /// network namespace.
    Off,
    /// `network = false`: one empty network namespace per session (loopback only), shared
    /// by its shells and its browser, made like `Slirp`'s but with nothing attached.
    Isolated(IsoTools),
    /// `network = true`: one network namespace per session, connected to the outside by
    /// slirp4netns (see the crate docs).
    Slirp(NetTools),
    /// `network = true` but something it needs is missing: no sandbox starts (never a
    /// fallback to the host's network).
    Missing(NetToolsMissing),
    /// Inside a container (`ironhand sandboxd`, [`LocalSandboxConfig::container`]): the
    /// container is the sandbox; processes run directly, in its own network.
    Container,
}

/// What the sandbox network (`network = true`) lacks, with the install hint.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum NetToolsMissing {
    #[error("slirp4netns not found at {}: {hint}", .0.display(), hint = NET_INSTALL_HINT)]
    NotAt(PathBuf),
    /// The programs not found: "slirp4netns", "unshare", "nsenter".
    #[error("{} not installed: {hint}", .0.join(", "), hint = NET_INSTALL_HINT)]
    NotInstalled(Vec<&'static str>),
}

/// A program and its arguments.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// The whole environment of the program (bubblewrap sets its own with `--setenv`).
    pub(crate) env: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) bwrap: PathBuf,
    pub(crate) network: Network,
    /// `Some((uid, gid))` when the server is root: bubblewrap is started as this user.
    pub(crate) run_as: Option<(u32, u32)>,
    /// Whole-sandbox memory and process limits (see the `cgroup` module).
    pub(crate) cgroups: Cgroups,
    /// util-linux's `setpriv`, which drops from root to the sandbox user after a process
    /// joined its cgroup.
    pub(crate) setpriv: PathBuf,
    /// Size-limited workspaces (see the `volume` module).
    pub(crate) volumes: Volumes,
    /// What the sandboxes may reach on the network (see the `egress` module).
    pub(crate) egress: Egress,
    /// Chromium and Xvnc for the sandboxes' browser, or why there is none.
    pub(crate) browser: Result<crate::browser::BrowserTools, crate::browser::NoBrowser>,
    /// bubblewrap ≥ 0.8 can forbid new user namespaces inside the sandbox.
    disable_userns: bool,
    /// The generated `/etc` files (passwd, group, hosts, hostname, resolv.conf).
    etc_dir: PathBuf,
    top_level: Vec<TopLevel>,
    mask_files: Vec<PathBuf>,
    mask_dirs: Vec<PathBuf>,
    /// `(generated file name, path inside the sandbox)`.
    etc_binds: Vec<(String, PathBuf)>,
    resolv_bind: Option<PathBuf>,
    /// `(host directory, path in the sandbox)`: the configured read-only mounts.
    extra_mounts: Vec<(PathBuf, String)>,
}

fn unavailable(msg: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(msg.into())
}

impl Host {
    pub(crate) fn discover(config: &LocalSandboxConfig) -> Result<Self, SandboxError> {
        if config.container {
            return Self::in_container(config);
        }
        let bwrap = find_bwrap(config.bwrap_path.as_deref())?;
        let version = bwrap_version(&bwrap);
        let disable_userns = version.is_none_or(|v| v >= (0, 8));
        if !disable_userns {
            tracing::warn!(
                ?version,
                "bubblewrap older than 0.8: processes in the sandbox can create user namespaces"
            );
        }
        let is_root = rustix::process::geteuid().is_root();
        let run_as = is_root.then_some((config.run_as_uid, config.run_as_gid));
        if run_as.is_some_and(|(u, g)| u == 0 || g == 0) {
            return Err(unavailable(
                "sandbox run_as_uid/run_as_gid must not be 0: the sandbox never runs as root",
            ));
        }

        let root = &config.root_dir;
        fs::create_dir_all(root).map_err(|e| {
            unavailable(format!(
                "cannot create sandbox root_dir {}: {e}",
                root.display()
            ))
        })?;
        if let Some((uid, _)) = run_as {
            fs::set_permissions(root, fs::Permissions::from_mode(0o711)).map_err(|e| {
                unavailable(format!(
                    "cannot chmod sandbox root_dir {}: {e}",
                    root.display()
                ))
            })?;
            check_traversable(root, uid)?;
        }

        let etc_dir = root.join(".etc");
        fs::create_dir_all(&etc_dir)
            .and_then(|()| fs::set_permissions(&etc_dir, fs::Permissions::from_mode(0o755)))
            .map_err(|e| unavailable(format!("cannot create {}: {e}", etc_dir.display())))?;
        let mut etc_binds = Vec::new();
        let generated: [(&str, String); 4] = [
            (
                "passwd",
                format!(
                    "root:x:0:0:root:/root:/usr/sbin/nologin\nubuntu:x:{SANDBOX_UID}:{SANDBOX_GID}:ubuntu:{SANDBOX_HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                ),
            ),
            (
                "group",
                format!("root:x:0:\nubuntu:x:{SANDBOX_GID}:\nnogroup:x:65534:\n"),
            ),
            (
                "hosts",
                format!(
                    "127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                ),
            ),
            ("hostname", format!("{HOSTNAME}\n")),
        ];
        for (name, content) in generated {
            write_world_readable(&etc_dir.join(name), content.as_bytes())?;
            if let Some(target) = etc_target(name) {
                etc_binds.push((name.to_string(), target));
            }
        }
        // Only slirp4netns's DNS forwarder is reachable from a sandbox.
        let resolv_bind = if config.network {
            write_world_readable(
                &etc_dir.join("resolv.conf"),
                format!("nameserver {SLIRP_DNS}\n").as_bytes(),
            )?;
            etc_target("resolv.conf")
        } else {
            None
        };
        let network = if config.network {
            match find_net_tools(config.slirp4netns_path.as_deref()) {
                Ok(tools) => Network::Slirp(tools),
                Err(missing) => {
                    tracing::warn!(%missing, "the sandbox network is unavailable");
                    Network::Missing(missing)
                }
            }
        } else {
            match (
                find_program("unshare"),
                find_program("nsenter"),
                find_program("ip"),
            ) {
                (Some(unshare), Some(nsenter), Some(ip)) => Network::Isolated(IsoTools {
                    unshare,
                    nsenter,
                    ip,
                }),
                _ => {
                    tracing::warn!(
                        "network = false without util-linux's unshare/nsenter or iproute2's ip: \
                         each shell gets its own loopback (the browser cannot reach servers \
                         the shells start)"
                    );
                    Network::Off
                }
            }
        };

        let setpriv = find_program("setpriv").unwrap_or_else(|| PathBuf::from("/usr/bin/setpriv"));
        let mut cgroups = Cgroups::discover(config.cgroups, is_root);
        if cgroups.active() && !is_executable(&setpriv) {
            cgroups = Cgroups::Off("util-linux's setpriv is missing".into());
        }
        match &cgroups {
            Cgroups::Off(why) => tracing::warn!(
                %why,
                "sandbox cgroups unavailable: memory and processes are limited per process only \
                 (RLIMIT_AS, RLIMIT_NPROC)"
            ),
            other => {
                tracing::info!(cgroups = ?other, "whole-sandbox memory and process limits by cgroup")
            }
        }
        let browser = crate::browser::BrowserTools::discover(config.browser);
        if let Err(why) = &browser {
            tracing::warn!(%why, "sandboxes have no browser: the browser tools are not offered");
        }
        let volumes = Volumes::discover(config.workspace_max_bytes, config.tmp_max_bytes, is_root);
        let egress = if config.network {
            Egress::install(config, run_as)
        } else {
            Egress::NotNeeded
        };

        let mut top_level = Vec::new();
        for name in TOP_LEVEL {
            let path = Path::new("/").join(name);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = fs::read_link(&path) {
                        top_level.push(TopLevel::Symlink(target, path));
                    }
                }
                Ok(m) if m.is_dir() => top_level.push(TopLevel::Bind(path)),
                _ => {}
            }
        }

        let (mut mask_files, mut mask_dirs) = etc_masks(Path::new("/etc"));
        for extra in &config.hidden_paths {
            let Ok(real) = fs::canonicalize(extra) else {
                continue;
            };
            if !(real.starts_with("/etc") || real.starts_with("/usr")) {
                continue; // not visible in the sandbox anyway
            }
            match fs::metadata(&real) {
                Ok(m) if m.is_dir() => mask_dirs.push(real),
                Ok(_) => mask_files.push(real),
                Err(_) => {}
            }
        }
        // Anything under a hidden directory needs no mask of its own (and could not get one:
        // the empty directory has no mount point for it).
        mask_dirs.sort();
        mask_dirs.dedup();
        let outer: Vec<PathBuf> = mask_dirs.clone();
        let under_other = |p: &Path| outer.iter().any(|d| p != d && p.starts_with(d));
        mask_dirs.retain(|d| !under_other(d));
        mask_files.retain(|f| !under_other(f));
        mask_files.sort();
        mask_files.dedup();

        Ok(Self {
            bwrap,
            network,
            run_as,
            cgroups,
            setpriv,
            volumes,
            egress,
            browser,
            disable_userns,
            etc_dir,
            top_level,
            mask_files,
            mask_dirs,
            etc_binds,
            resolv_bind,
            extra_mounts: read_only_mounts(&config.read_only_mounts)?,
        })
    }

    /// The host of `ironhand sandboxd` in a session's container: no bubblewrap, no
    /// namespaces of its own, no cgroup, filter or mounts (the container and its engine
    /// provide them: see the `docker` provider). Refuses to run as root.
    fn in_container(config: &LocalSandboxConfig) -> Result<Self, SandboxError> {
        if rustix::process::geteuid().is_root() {
            return Err(unavailable(
                "sandboxd must not run as root: start its container as the sandbox user (1000)",
            ));
        }
        fs::create_dir_all(&config.root_dir).map_err(|e| {
            unavailable(format!(
                "cannot create sandbox root_dir {}: {e}",
                config.root_dir.display()
            ))
        })?;
        let browser = crate::browser::BrowserTools::discover(config.browser);
        if let Err(why) = &browser {
            tracing::warn!(%why, "this sandbox has no browser");
        }
        Ok(Self {
            bwrap: PathBuf::new(),
            network: Network::Container,
            run_as: None,
            cgroups: Cgroups::Off("the container's own cgroup limits the whole sandbox".into()),
            setpriv: PathBuf::new(),
            volumes: Volumes::discover(config.workspace_max_bytes, config.tmp_max_bytes, false),
            egress: Egress::Unfiltered(
                "the container's network decides what the sandbox reaches".into(),
            ),
            browser,
            disable_userns: false,
            etc_dir: PathBuf::new(),
            top_level: Vec::new(),
            mask_files: Vec::new(),
            mask_dirs: Vec::new(),
            etc_binds: Vec::new(),
            resolv_bind: None,
            extra_mounts: Vec::new(),
        })
    }

    /// Whether this is a container's sandboxd (see [`Network::Container`]).
    pub(crate) fn in_a_container(&self) -> bool {
        matches!(self.network, Network::Container)
    }

    /// The directories of a sandbox on this host: under `root_dir`, or in a container the
    /// container's own `/home/ubuntu`, `/tmp` and control directory.
    pub(crate) fn session_dirs(&self, root: &Path, label: &str) -> SessionDirs {
        if self.in_a_container() {
            SessionDirs {
                base: root.to_path_buf(),
                home: PathBuf::from(SANDBOX_HOME),
                tmp: PathBuf::from("/tmp"),
                run: PathBuf::from(CONTROL_DIR),
                shared_roots: true,
            }
        } else {
            SessionDirs::new(root, label)
        }
    }

    /// Arguments shared by the anchor and the shells: the read-only system directories.
    fn system_args(&self, args: &mut Vec<OsString>) {
        push(args, ["--ro-bind", "/usr", "/usr"]);
        for t in &self.top_level {
            match t {
                TopLevel::Symlink(target, path) => {
                    args.push("--symlink".into());
                    args.push(target.into());
                    args.push(path.into());
                }
                TopLevel::Bind(path) => {
                    args.push("--ro-bind".into());
                    args.push(path.into());
                    args.push(path.into());
                }
            }
        }
    }

    /// Refuses to start anything when the network is on but cannot be isolated.
    pub(crate) fn require_network(&self) -> Result<(), SandboxError> {
        if let crate::egress::Egress::Failed(why) = &self.egress {
            return Err(unavailable(why.clone()));
        }
        match &self.network {
            Network::Missing(msg) => Err(unavailable(msg.to_string())),
            Network::Off | Network::Isolated(_) | Network::Slirp(_) | Network::Container => Ok(()),
        }
    }

    /// The process that creates a session's namespaces. bubblewrap writes its child's pid
    /// as JSON to fd 3; the child prints `ready` once it runs in the final user namespace
    /// (bubblewrap sets up in an outer one, then enters a nested one with uid 1000 and
    /// further namespaces disabled) and then waits for its stdin to close.
    ///
    /// With the network on, `unshare` first creates a user namespace in which the sandbox's
    /// host user is root, with a new network namespace: bubblewrap (our child, as that root)
    /// builds the session's user namespace under it, and slirp4netns and the shells' `nsenter`
    /// enter the network namespace through it. bubblewrap keeps no capabilities for the
    /// sandbox (`--cap-drop ALL`).
    pub(crate) fn anchor_launch(&self) -> Result<Launch, SandboxError> {
        match &self.network {
            Network::Off => Ok(Launch {
                program: self.bwrap.clone(),
                args: self.anchor_args(false),
                env: Vec::new(),
            }),
            Network::Slirp(NetTools { unshare, .. })
            | Network::Isolated(IsoTools { unshare, .. }) => {
                let mut args: Vec<OsString> = Vec::new();
                push(&mut args, ["--user", "--map-root-user", "--net", "--"]);
                args.push(self.bwrap.clone().into());
                args.extend(self.anchor_args(true));
                Ok(Launch {
                    program: unshare.clone(),
                    args,
                    env: Vec::new(),
                })
            }
            Network::Missing(msg) => Err(unavailable(msg.to_string())),
            Network::Container => Err(unavailable(
                "internal error: a container's sandbox has no namespaces of its own",
            )),
        }
    }

    fn anchor_args(&self, as_root: bool) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        push(
            &mut args,
            [
                "--unshare-user",
                "--uid",
                &SANDBOX_UID.to_string(),
                "--gid",
                &SANDBOX_GID.to_string(),
            ],
        );
        if self.disable_userns {
            args.push("--disable-userns".into());
        }
        if as_root {
            push(&mut args, ["--cap-drop", "ALL"]);
        }
        push(
            &mut args,
            [
                "--die-with-parent",
                "--new-session",
                "--clearenv",
                "--info-fd",
                "3",
            ],
        );
        self.system_args(&mut args);
        push(
            &mut args,
            ["--dev", "/dev", "--", "/bin/sh", "-c", "echo ready; read x"],
        );
        args
    }

    /// A shell's sandbox: joins the session's user namespace (fd 3) and gets fresh mount,
    /// PID, IPC and UTS namespaces. With `shared_net` (network on) it runs in the session's
    /// network namespace: `nsenter` enters it through its owning user namespace (fds 4 and
    /// 5) and executes bubblewrap there, which then joins the session's user namespace
    /// below it. Otherwise the shell gets its own empty network namespace.
    pub(crate) fn shell_launch(
        &self,
        dirs: &SessionDirs,
        shared_net: bool,
    ) -> Result<Launch, SandboxError> {
        self.launch(
            dirs,
            shared_net,
            &["/bin/bash", "--noprofile", "--norc", "-s"],
            &[],
        )
    }

    /// Like [`Self::shell_launch`] for any program: `command` runs as PID 1 of a sandbox
    /// with the same view, namespaces and environment as the shells (plus `extra_env`).
    pub(crate) fn launch(
        &self,
        dirs: &SessionDirs,
        shared_net: bool,
        command: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<Launch, SandboxError> {
        match (&self.network, shared_net) {
            (Network::Container, _) => {
                let (program, rest) = command
                    .split_first()
                    .ok_or_else(|| unavailable("internal error: nothing to launch"))?;
                Ok(Launch {
                    program: PathBuf::from(program),
                    args: rest.iter().map(OsString::from).collect(),
                    env: sandbox_env()
                        .into_iter()
                        .chain(extra_env.iter().copied())
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                })
            }
            (Network::Off, false) => Ok(Launch {
                program: self.bwrap.clone(),
                args: self.shell_args(dirs, false, command, extra_env),
                env: Vec::new(),
            }),
            (
                Network::Slirp(NetTools { nsenter, .. })
                | Network::Isolated(IsoTools { nsenter, .. }),
                true,
            ) => {
                let mut args: Vec<OsString> = vec![
                    "--preserve-credentials".into(),
                    format!("--user=/proc/self/fd/{NET_OWNER_FD}").into(),
                    format!("--net=/proc/self/fd/{NETNS_FD}").into(),
                    "--".into(),
                    self.bwrap.clone().into(),
                ];
                args.extend(self.shell_args(dirs, true, command, extra_env));
                Ok(Launch {
                    program: nsenter.clone(),
                    args,
                    env: Vec::new(),
                })
            }
            (Network::Missing(msg), _) => Err(unavailable(msg.to_string())),
            _ => Err(unavailable(
                "internal error: the session's namespaces do not match the network setting",
            )),
        }
    }

    fn shell_args(
        &self,
        dirs: &SessionDirs,
        shared_net: bool,
        command: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Vec<OsString> {
        let uid = SANDBOX_UID.to_string();
        let gid = SANDBOX_GID.to_string();
        let mut args: Vec<OsString> = Vec::new();
        push(
            &mut args,
            [
                "--userns",
                "3",
                "--uid",
                &uid,
                "--gid",
                &gid,
                "--unshare-pid",
                // bash is PID 1: no bubblewrap process runs inside the sandbox without the
                // limits (a sandbox process could otherwise ptrace it and fork from it).
                "--as-pid-1",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-cgroup-try",
                "--hostname",
                HOSTNAME,
                "--die-with-parent",
                "--new-session",
                "--clearenv",
            ],
        );
        if shared_net {
            // bubblewrap runs as root of the network's user namespace: nothing of that
            // reaches the sandbox.
            push(&mut args, ["--cap-drop", "ALL"]);
        } else {
            args.push("--unshare-net".into());
        }
        for (k, v) in sandbox_env().into_iter().chain(extra_env.iter().copied()) {
            push(&mut args, ["--setenv", k, v]);
        }
        self.system_args(&mut args);
        push(&mut args, ["--ro-bind", "/etc", "/etc"]);
        for f in &self.mask_files {
            args.push("--ro-bind".into());
            args.push("/dev/null".into());
            args.push(f.into());
        }
        for d in &self.mask_dirs {
            args.push("--tmpfs".into());
            args.push(d.into());
            args.push("--remount-ro".into());
            args.push(d.into());
        }
        push(&mut args, ["--proc", "/proc", "--dev", "/dev"]);
        push(&mut args, ["--tmpfs", "/run"]);
        for (name, target) in &self.etc_binds {
            args.push("--ro-bind".into());
            args.push(self.etc_dir.join(name).into());
            args.push(target.into());
        }
        if shared_net && let Some(target) = &self.resolv_bind {
            args.push("--ro-bind".into());
            args.push(self.etc_dir.join("resolv.conf").into());
            args.push(target.into());
        }
        push(
            &mut args,
            ["--tmpfs", "/var", "--symlink", "../tmp", "/var/tmp"],
        );
        args.push("--bind".into());
        args.push(dirs.run.as_os_str().into());
        args.push(CONTROL_DIR.into());
        args.push("--bind".into());
        args.push(dirs.tmp.as_os_str().into());
        args.push("/tmp".into());
        args.push("--bind".into());
        args.push(dirs.home.as_os_str().into());
        args.push(SANDBOX_HOME.into());
        for (host, path) in &self.extra_mounts {
            args.push("--ro-bind".into());
            args.push(host.into());
            args.push(path.into());
        }
        push(&mut args, ["--chdir", SANDBOX_HOME, "--"]);
        push(&mut args, command.iter().copied());
        args
    }

    /// Gives a file or directory the host can write to the sandbox's user (root mode).
    pub(crate) fn chown_fd(&self, fd: impl std::os::fd::AsFd) -> std::io::Result<()> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::fchown(fd, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }

    pub(crate) fn chown_path(&self, path: &Path) -> std::io::Result<()> {
        match self.run_as {
            Some((uid, gid)) => std::os::unix::fs::lchown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }
}

/// The host directories of one session.
#[derive(Debug, Clone)]
pub(crate) struct SessionDirs {
    pub(crate) base: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) run: PathBuf,
    /// In a container: `home`, `tmp` and `run` are the container's own directories (made
    /// by its engine), emptied rather than removed, their modes left as they are.
    pub(crate) shared_roots: bool,
}

impl SessionDirs {
    pub(crate) fn new(root: &Path, session: &str) -> Self {
        let base = root.join(session);
        Self {
            home: base.join("home"),
            tmp: base.join("tmp"),
            run: base.join("run"),
            base,
            shared_roots: false,
        }
    }

    /// Removes `/tmp` and the control directory at a stop (in a container: empties them).
    pub(crate) fn clean_transient(&self) {
        for d in [&self.tmp, &self.run] {
            let result = if self.shared_roots {
                empty_dir(d)
            } else {
                fs::remove_dir_all(d)
            };
            if let Err(e) = result
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %d.display(), error = %e, "could not clean a sandbox directory");
            }
        }
    }

    /// Creates the directories (owned by the sandbox user, reachable by bubblewrap).
    pub(crate) fn create(&self, host: &Host) -> Result<(), SandboxError> {
        let err = |p: &Path, e: std::io::Error| {
            unavailable(format!(
                "cannot prepare sandbox directory {}: {e}",
                p.display()
            ))
        };
        if self.shared_roots {
            for dir in [&self.base, &self.home, &self.tmp, &self.run] {
                fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
            }
            return Ok(());
        }
        for (dir, mode, owned) in [
            (&self.base, 0o711, false),
            // Private to the sandbox's user (and root): other host users must not read
            // workspaces, whose paths are guessable.
            (&self.home, 0o700, true),
            (&self.tmp, 0o700, true),
            (&self.run, 0o700, true),
        ] {
            match fs::symlink_metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(err(dir, std::io::Error::other("not a directory"))),
                Err(_) => fs::create_dir(dir).map_err(|e| err(dir, e))?,
            }
            if owned {
                host.chown_path(dir).map_err(|e| err(dir, e))?;
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| err(dir, e))?;
        }
        Ok(())
    }
}

/// Removes what `dir` holds, keeping `dir` (a mount point in a container).
fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The configured read-only mounts, checked: an existing host directory, shown at a plain
/// absolute path under `/opt/`.
fn read_only_mounts(
    mounts: &[crate::config::ReadOnlyMount],
) -> Result<Vec<(PathBuf, String)>, SandboxError> {
    let mut out = Vec::new();
    for m in mounts {
        let plain = m.path.starts_with("/opt/")
            && m.path.len() > "/opt/".len()
            && Path::new(&m.path).components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
        if !plain {
            return Err(unavailable(format!(
                "sandbox read-only mount `{}`: the path in the sandbox must be under /opt/",
                m.path
            )));
        }
        let host = fs::canonicalize(&m.host).map_err(|e| {
            unavailable(format!("sandbox read-only mount {}: {e}", m.host.display()))
        })?;
        if !host.is_dir() {
            return Err(unavailable(format!(
                "sandbox read-only mount {}: not a directory",
                host.display()
            )));
        }
        out.push((host, m.path.trim_end_matches('/').to_string()));
    }
    Ok(out)
}

/// The environment of every sandbox process: nothing of the server's.
pub(crate) fn sandbox_env() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "PATH",
            "/home/ubuntu/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", SANDBOX_HOME),
        ("USER", "ubuntu"),
        ("LOGNAME", "ubuntu"),
        ("SHELL", "/bin/bash"),
        ("HOSTNAME", HOSTNAME),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
        ("TMPDIR", "/tmp"),
        ("PAGER", "cat"),
        ("GIT_PAGER", "cat"),
        ("NO_COLOR", "1"),
        ("PYTHONUNBUFFERED", "1"),
        ("DEBIAN_FRONTEND", "noninteractive"),
    ]
}

/// A copy of `fd` to be `child_fd` in a child process.
pub(crate) fn pass_fd(
    fd: &std::os::fd::OwnedFd,
    child_fd: i32,
) -> Result<command_fds::FdMapping, SandboxError> {
    fd.try_clone()
        .map(|parent_fd| command_fds::FdMapping {
            parent_fd,
            child_fd,
        })
        .map_err(|e| unavailable(format!("cannot pass a namespace: {e}")))
}

fn push<'a>(args: &mut Vec<OsString>, items: impl IntoIterator<Item = &'a str>) {
    args.extend(items.into_iter().map(OsString::from));
}

/// `name` in the usual system directories, then in the server's `PATH`.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    candidates.into_iter().find(|p| is_executable(p))
}

/// The programs of the sandbox network, or what is missing (with the install hint).
fn find_net_tools(slirp_configured: Option<&Path>) -> Result<NetTools, NetToolsMissing> {
    let slirp4netns = match slirp_configured {
        Some(p) if is_executable(p) => Some(p.to_path_buf()),
        Some(p) => return Err(NetToolsMissing::NotAt(p.to_path_buf())),
        None => find_program("slirp4netns"),
    };
    let (unshare, nsenter) = (find_program("unshare"), find_program("nsenter"));
    match (slirp4netns, unshare, nsenter) {
        (Some(slirp4netns), Some(unshare), Some(nsenter)) => Ok(NetTools {
            slirp4netns,
            unshare,
            nsenter,
        }),
        (slirp, unshare, nsenter) => {
            let missing: Vec<&'static str> = [
                ("slirp4netns", slirp.is_none()),
                ("unshare", unshare.is_none()),
                ("nsenter", nsenter.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(n, _)| *n)
            .collect();
            Err(NetToolsMissing::NotInstalled(missing))
        }
    }
}

fn find_bwrap(configured: Option<&Path>) -> Result<PathBuf, SandboxError> {
    if let Some(p) = configured {
        return if is_executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(unavailable(format!(
                "bubblewrap not found at {}: {INSTALL_HINT}",
                p.display()
            )))
        };
    }
    let mut candidates: Vec<PathBuf> = ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join("bwrap"))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("bwrap")));
    }
    candidates
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            unavailable(format!(
                "bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
            ))
        })
}

/// `(major, minor)` from `bwrap --version` ("bubblewrap 0.8.0").
fn bwrap_version(bwrap: &Path) -> Option<(u32, u32)> {
    let out = std::process::Command::new(bwrap)
        .arg("--version")
        .env_clear()
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// With bubblewrap running as `uid`, every ancestor of the root dir must let it pass.
fn check_traversable(root: &Path, uid: u32) -> Result<(), SandboxError> {
    let root = fs::canonicalize(root)
        .map_err(|e| unavailable(format!("sandbox root_dir {}: {e}", root.display())))?;
    for dir in root.ancestors() {
        let m = fs::metadata(dir)
            .map_err(|e| unavailable(format!("sandbox root_dir {}: {e}", dir.display())))?;
        let ok = m.mode() & 0o001 != 0 || (m.uid() == uid && m.mode() & 0o100 != 0);
        if !ok {
            return Err(unavailable(format!(
                "sandbox root_dir {}: bubblewrap runs as uid {uid}, which cannot enter {} \
                 (mode {:o}); run `chmod o+x {}` or choose another root_dir",
                root.display(),
                dir.display(),
                m.mode() & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

fn write_world_readable(path: &Path, content: &[u8]) -> Result<(), SandboxError> {
    fs::write(path, content)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o644)))
        .map_err(|e| unavailable(format!("cannot write {}: {e}", path.display())))
}

/// Where a generated `/etc/<name>` must be mounted: the file itself, or what its symlink
/// points to when that is under `/etc` or `/run` (e.g. systemd-resolved's stub file).
fn etc_target(name: &str) -> Option<PathBuf> {
    let path = Path::new("/etc").join(name);
    let meta = fs::symlink_metadata(&path).ok()?;
    if meta.is_file() {
        return Some(path);
    }
    let real = fs::canonicalize(&path).ok()?;
    (real.starts_with("/etc") || real.starts_with("/run")).then_some(real)
}

/// Files and directories under `etc` that must not be visible: everything not
/// world-readable (shadow files, private keys, service configs with passwords) plus
/// well-known secrets even when their mode is too open.
fn etc_masks(etc: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![(etc.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > ETC_WALK_LIMIT {
                return (files, dirs);
            }
            let path = entry.path();
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue;
            };
            let mode = m.mode();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if m.is_dir() {
                if mode & 0o005 != 0o005 {
                    dirs.push(path);
                } else if depth < 12 {
                    stack.push((path, depth + 1));
                }
            } else if m.is_file() {
                let secret_name = matches!(
                    name.as_ref(),
                    "shadow" | "shadow-" | "gshadow" | "gshadow-" | "opasswd"
                ) || (name.starts_with("ssh_host_") && !name.ends_with(".pub"));
                if mode & 0o004 == 0 || secret_name {
                    files.push(path);
                }
            }
        }
    }
    (files, dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_shadow() {
        let (files, _) = etc_masks(Path::new("/etc"));
        if Path::new("/etc/shadow").exists() {
            assert!(files.iter().any(|f| f == Path::new("/etc/shadow")));
        }
    }

    #[test]
    fn missing_network_tools_are_named_with_the_hint() {
        assert_eq!(
            NetToolsMissing::NotInstalled(vec!["slirp4netns", "nsenter"]).to_string(),
            format!("slirp4netns, nsenter not installed: {NET_INSTALL_HINT}")
        );
        assert_eq!(
            NetToolsMissing::NotAt("/opt/slirp4netns".into()).to_string(),
            format!("slirp4netns not found at /opt/slirp4netns: {NET_INSTALL_HINT}")
        );
    }
}
