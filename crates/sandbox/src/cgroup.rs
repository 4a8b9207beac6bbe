//! Whole-sandbox limits with control groups: one cgroup per sandbox holds every process of
//! it (all shells, their background processes, the browser), with a memory limit (the
//! kernel's OOM killer acts inside the group only) and a process limit.
//!
//! * **cgroup v1** (a `memory` and a `pids` hierarchy, as on hosts with Docker's classic
//!   layout): the groups are `<hierarchy>/<server's own group>/ironhand/<sandbox>`, so they
//!   also count against whatever limit the server's own group has.
//! * **cgroup v2** (unified): the server moves itself into a leaf `<own group>/server` (the
//!   "no internal processes" rule), enables `memory` and `pids` for its children and puts
//!   sandboxes in `<own group>/ironhand/<sandbox>`. This needs the server's group to be
//!   writable (root, or systemd `Delegate=yes`).
//!
//! Only a root server manages groups. Processes enter their group before they run anything
//! of the sandbox: the launch is wrapped in `sh -c 'echo $$ > <group>/cgroup.procs; exec
//! setpriv … <program>'`, which runs as root, joins the group and drops to the sandbox's
//! host user. When groups are unavailable the per-process limits (`RLIMIT_AS`,
//! `RLIMIT_NPROC`) stay the only ones, and the provider says so once in the log.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// Where sandbox groups go, found once per provider.
#[derive(Debug, Clone)]
pub(crate) enum Cgroups {
    V1 {
        memory: PathBuf,
        pids: PathBuf,
    },
    V2 {
        base: PathBuf,
    },
    /// Not available (the reason is logged once and shown by `check`).
    Off(String),
}

const V1_ROOT: &str = "/sys/fs/cgroup";

/// Why sandbox groups cannot be set up or made (for the log and readiness).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error("the cgroup v1 {controller} controller is not mounted at {}", .hierarchy.display())]
    NotMounted {
        controller: &'static str,
        hierarchy: PathBuf,
    },
    #[error(
        "the cgroup v2 {controller} controller is not available in {} (delegate it, e.g. \
         systemd Delegate=yes)",
        .group.display()
    )]
    NotDelegated {
        controller: &'static str,
        group: PathBuf,
    },
    /// A step of the v2 set-up (`what`: "enable memory and pids"…).
    #[error("cgroup v2 set-up: {what}: {source}")]
    SetUp {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", .dir.display())]
    CreateParent {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create cgroup {}: {source}", .dir.display())]
    Create {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set {} to {value}: {source}", .file.display())]
    Set {
        file: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

impl Cgroups {
    /// Finds the cgroup layout and prepares the parent group of all sandboxes.
    pub(crate) fn discover(enabled: bool, is_root: bool) -> Self {
        if !enabled {
            return Self::Off("cgroups are turned off (sandbox cgroups = false)".into());
        }
        if !is_root {
            return Self::Off("the server does not run as root".into());
        }
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let result = if Path::new(V1_ROOT).join("cgroup.controllers").exists() {
            v2_setup(Path::new(V1_ROOT), &own)
        } else {
            v1_setup(Path::new(V1_ROOT), &own)
        };
        result.unwrap_or_else(|e| Self::Off(e.to_string()))
    }

    pub(crate) fn active(&self) -> bool {
        !matches!(self, Self::Off(_))
    }

    /// In words, for the log and readiness.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::V1 { .. } => "cgroup v1 (memory, pids)".into(),
            Self::V2 { .. } => "cgroup v2 (memory, pids)".into(),
            Self::Off(why) => format!("per-process limits only: {why}"),
        }
    }

    /// Creates (or empties and reuses) the group of sandbox `label` with its limits.
    pub(crate) fn create(
        &self,
        label: &str,
        memory_bytes: u64,
        max_processes: u64,
    ) -> Result<Option<SandboxCgroup>, CgroupError> {
        let name = group_name(label);
        let dirs: Vec<PathBuf> = match self {
            Self::Off(_) => return Ok(None),
            Self::V1 { memory, pids } => vec![memory.join(&name), pids.join(&name)],
            Self::V2 { base } => vec![base.join(&name)],
        };
        let group = SandboxCgroup {
            v2: matches!(self, Self::V2 { .. }),
            dirs,
            memory_bytes,
        };
        for dir in &group.dirs {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CgroupError::Create {
                        dir: dir.clone(),
                        source,
                    });
                }
            }
        }
        group.kill_all();
        let write = |file: PathBuf, value: String| {
            fs::write(&file, &value).map_err(|source| CgroupError::Set {
                file,
                value,
                source,
            })
        };
        if group.v2 {
            let dir = &group.dirs[0];
            write(dir.join("memory.max"), memory_bytes.to_string())?;
            // No swap: the memory limit is the sandbox's whole footprint.
            let _ = fs::write(dir.join("memory.swap.max"), "0");
            write(dir.join("pids.max"), max_processes.to_string())?;
        } else {
            write(
                group.dirs[0].join("memory.limit_in_bytes"),
                memory_bytes.to_string(),
            )?;
            // With swap accounting the swap limit equals the memory limit: no swap.
            let _ = fs::write(
                group.dirs[0].join("memory.memsw.limit_in_bytes"),
                memory_bytes.to_string(),
            );
            write(group.dirs[1].join("pids.max"), max_processes.to_string())?;
        }
        Ok(Some(group))
    }
}

/// Group names are the sandbox's label (a session id, or `.check-…`) made safe.
fn group_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The group path of `controller` in `/proc/self/cgroup` (`""` for v2's line `0::/…`).
fn own_path(own: &str, controller: &str) -> Option<String> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            names.is_empty()
        } else {
            names.split(',').any(|n| n == controller)
        };
        matches.then(|| path.trim_start_matches('/').to_string())
    })
}

fn v1_setup(root: &Path, own: &str) -> Result<Cgroups, CgroupError> {
    let mut bases = Vec::new();
    for controller in ["memory", "pids"] {
        let hierarchy = root.join(controller);
        if !hierarchy.join("cgroup.procs").exists() {
            return Err(CgroupError::NotMounted {
                controller,
                hierarchy,
            });
        }
        let path = own_path(own, controller).unwrap_or_default();
        let base = hierarchy.join(path).join("ironhand");
        match fs::create_dir(&base) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { dir: base, source }),
        }
        if controller == "memory" {
            // Limits of the sandboxes' groups count towards their parents.
            let _ = fs::write(base.join("memory.use_hierarchy"), "1");
        }
        bases.push(base);
    }
    let pids = bases.pop().unwrap_or_default();
    let memory = bases.pop().unwrap_or_default();
    Ok(Cgroups::V1 { memory, pids })
}

fn v2_setup(root: &Path, own: &str) -> Result<Cgroups, CgroupError> {
    let path = own_path(own, "").unwrap_or_default();
    let mine = root.join(&path);
    let available = fs::read_to_string(mine.join("cgroup.controllers")).unwrap_or_default();
    for c in ["memory", "pids"] {
        if !available.split_whitespace().any(|a| a == c) {
            return Err(CgroupError::NotDelegated {
                controller: c,
                group: mine,
            });
        }
    }
    let sandboxes = mine.join("ironhand");
    let already = fs::read_to_string(mine.join("cgroup.subtree_control"))
        .map(|s| s.contains("memory") && s.contains("pids"))
        .unwrap_or(false);
    if !already {
        // Leave the group to a leaf of our own so that controllers can be enabled for
        // children (no process may sit in a group that hands controllers down).
        let leaf = mine.join("server");
        let err = |what, source| CgroupError::SetUp { what, source };
        match fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err("create the server's leaf group", e)),
        }
        let procs = fs::read_to_string(mine.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = fs::write(leaf.join("cgroup.procs"), pid);
        }
        fs::write(mine.join("cgroup.subtree_control"), "+memory +pids")
            .map_err(|e| err("enable memory and pids", e))?;
    }
    match fs::create_dir(&sandboxes) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(CgroupError::CreateParent {
                dir: sandboxes,
                source,
            });
        }
    }
    fs::write(sandboxes.join("cgroup.subtree_control"), "+memory +pids").map_err(|source| {
        CgroupError::SetUp {
            what: "enable controllers for sandboxes",
            source,
        }
    })?;
    Ok(Cgroups::V2 { base: sandboxes })
}

/// One sandbox's group (one directory per v1 hierarchy, or one v2 directory).
#[derive(Debug)]
pub(crate) struct SandboxCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    memory_bytes: u64,
}

/// A group nobody holds any more (its sandbox stopped, or starting it was abandoned) goes.
impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

impl SandboxCgroup {
    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// How many processes the OOM killer has killed in the group so far.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            self.dirs[0].join("memory.events")
        } else {
            self.dirs[0].join("memory.oom_control")
        };
        read_oom_kills(&file).unwrap_or(0)
    }

    /// Kills every process left in the group.
    pub(crate) fn kill_all(&self) {
        if self.v2 && fs::write(self.dirs[0].join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for _ in 0..8 {
            let mut any = false;
            for dir in &self.dirs {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    any = true;
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
            }
            if !any {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills what is left and removes the group (best effort; logged).
    pub(crate) fn remove(&self) {
        self.kill_all();
        for dir in &self.dirs {
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
            if dir.exists() {
                tracing::warn!(group = %dir.display(), "could not remove a sandbox cgroup");
            }
        }
    }

    /// Wraps a launch so that the process joins this group, then becomes `run_as` (with no
    /// capabilities and no supplementary groups) and executes `program args…`.
    pub(crate) fn wrap(
        &self,
        setpriv: &Path,
        run_as: Option<(u32, u32)>,
        program: &Path,
        args: &[OsString],
    ) -> (PathBuf, Vec<OsString>) {
        let mut script = String::new();
        for i in 0..self.dirs.len() {
            script.push_str(&format!("echo $$ > \"${}\" || exit 125; ", i + 1));
        }
        script.push_str(&format!("shift {}; exec \"$@\"", self.dirs.len()));
        let mut out: Vec<OsString> = vec!["-c".into(), script.into(), "ih-cgroup".into()];
        out.extend(self.procs_files().into_iter().map(OsString::from));
        if let Some((uid, gid)) = run_as {
            out.push(setpriv.into());
            out.push(format!("--reuid={uid}").into());
            out.push(format!("--regid={gid}").into());
            out.push("--clear-groups".into());
            out.push("--inh-caps=-all".into());
            out.push("--".into());
        }
        out.push(program.into());
        out.extend(args.iter().cloned());
        (PathBuf::from("/bin/sh"), out)
    }
}

/// The `oom_kill` count of a `memory.events` (v2) or `memory.oom_control` (v1) file.
fn read_oom_kills(file: &Path) -> Option<u64> {
    fs::read_to_string(file).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("oom_kill"))
                .then(|| it.next()?.parse().ok())
                .flatten()
        })
    })
}

/// Inside a container: its own memory group's OOM kills and limit (the engine mounts the
/// container's group at `/sys/fs/cgroup`), when readable.
pub(crate) fn container_memory() -> Option<(u64, u64)> {
    let root = Path::new(V1_ROOT);
    let (kills, limit) = if root.join("memory.events").exists() {
        (
            read_oom_kills(&root.join("memory.events"))?,
            fs::read_to_string(root.join("memory.max")).ok()?,
        )
    } else {
        (
            read_oom_kills(&root.join("memory/memory.oom_control"))?,
            fs::read_to_string(root.join("memory/memory.limit_in_bytes")).ok()?,
        )
    };
    Some((kills, limit.trim().parse().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths_by_controller() {
        let own = "9:name=systemd:/\n4:memory:/process_api/abc\n8:pids:/\n0::/user.slice\n";
        assert_eq!(own_path(own, "memory").as_deref(), Some("process_api/abc"));
        assert_eq!(own_path(own, "pids").as_deref(), Some(""));
        assert_eq!(own_path(own, "").as_deref(), Some("user.slice"));
        assert_eq!(own_path(own, "cpu"), None);
    }

    #[test]
    fn group_names_are_safe() {
        assert_eq!(group_name(".check-abc"), "_check-abc");
        assert_eq!(group_name("a/../b"), "a____b");
    }

    #[test]
    fn set_up_failures_name_the_group_and_the_remedy() {
        let missing = CgroupError::NotDelegated {
            controller: "pids",
            group: "/sys/fs/cgroup/user.slice".into(),
        };
        assert_eq!(
            missing.to_string(),
            "the cgroup v2 pids controller is not available in /sys/fs/cgroup/user.slice \
             (delegate it, e.g. systemd Delegate=yes)"
        );
        let step = CgroupError::SetUp {
            what: "enable memory and pids",
            source: std::io::Error::from_raw_os_error(13),
        };
        assert!(
            step.to_string()
                .starts_with("cgroup v2 set-up: enable memory and pids: Permission denied"),
            "{step}"
        );
    }
}
