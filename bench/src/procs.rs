//! Memory and process counts from /proc.

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parent of a process, from `/proc/PID/stat` (the field after the parenthesised name).
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

pub fn comm(pid: u32) -> Option<String> {
    Some(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// The server's sandboxes: its `bwrap` children (one per live shell), and every process
/// the server started (bubblewrap, the shells and what they run, slirp4netns for sandbox
/// networks) with their resident memory, in KiB.
pub struct Sandboxes {
    pub count: usize,
    pub processes: usize,
    pub rss_kib: u64,
}

/// Every process id in `/proc`.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn sandboxes(server: u32) -> Sandboxes {
    let pids = all_pids();
    let parents: Vec<(u32, u32)> = pids.iter().filter_map(|&p| Some((p, parent(p)?))).collect();
    let count = parents
        .iter()
        .filter(|(p, pp)| *pp == server && comm(*p).is_some_and(|c| c == "bwrap"))
        .count();
    let descendants = descendants_in(server, &parents);
    Sandboxes {
        count,
        processes: descendants.len(),
        rss_kib: descendants.iter().filter_map(|&p| rss_kib(p)).sum(),
    }
}

/// Every process below `pid` (children, theirs, and so on), zombies included.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .iter()
        .filter_map(|&p| Some((p, parent(p)?)))
        .collect();
    descendants_in(pid, &parents)
}

fn descendants_in(pid: u32, parents: &[(u32, u32)]) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let of = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == of).map(|(p, _)| *p));
        i += 1;
    }
    tree.split_off(1)
}

/// `/proc` counts CPU time in clock ticks of `USER_HZ`, which is 100 per second on every
/// architecture Linux runs the server on (x86-64, arm64).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time (user + system) from `/proc/PID/stat`, in seconds: the process's own, all its
/// threads, and its children's that it waited for (`cutime + cstime`: the counters that
/// `getrusage(RUSAGE_CHILDREN)` reads, which take in their own waited-for children too).
/// The kernel keeps them in nanoseconds and rounds each down to a tick when read.
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub own: f64,
    pub children: f64,
}

pub fn cpu(pid: u32) -> Option<Cpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 14 to 17 of proc(5): utime, stime, cutime, cstime (field 3 is the first here).
    let ticks: Vec<f64> = after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|t| t.parse().ok())
        .collect();
    let [utime, stime, cutime, cstime] = ticks[..] else {
        return None;
    };
    Some(Cpu {
        own: (utime + stime) / TICKS_PER_SEC,
        children: (cutime + cstime) / TICKS_PER_SEC,
    })
}

/// Bytes a process has written with `write` and friends (`wchar` of `/proc/PID/io`): files
/// and pipes, page cache or not; not sockets, which it sends to.
pub fn written_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:")?.trim().parse().ok())
}

/// A process's arguments (`/proc/PID/cmdline`).
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The memory cgroup of a process: the v1 `memory` line of `/proc/PID/cgroup`, else the
/// v2 line (`0::`), as `(v2, path)`.
pub fn memory_cgroup(pid: u32) -> Option<(bool, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let field = |line: &str| -> Option<(String, String)> {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        Some((names.to_string(), path.to_string()))
    };
    let lines: Vec<(String, String)> = text.lines().filter_map(field).collect();
    if let Some((_, path)) = lines
        .iter()
        .find(|(names, _)| names.split(',').any(|n| n == "memory"))
    {
        return Some((false, path.clone()));
    }
    lines
        .iter()
        .find(|(names, _)| names.is_empty())
        .map(|(_, path)| (true, path.clone()))
}

/// The memory a group of processes holds, in KiB: resident (RSS, and the file-backed part
/// of it), proportional (PSS: each shared page split between the processes mapping it)
/// and unique (USS: pages no other process maps).
#[derive(Default, Clone, Copy)]
pub struct Memory {
    pub processes: usize,
    pub rss_kib: u64,
    pub rss_file_kib: u64,
    pub pss_kib: u64,
    /// PSS of file-backed pages (binaries, libraries, fonts, mapped data files).
    pub pss_file_kib: u64,
    /// PSS of anonymous and shared-memory (`memfd`, tmpfs, SysV) pages.
    pub pss_anon_shmem_kib: u64,
    pub uss_kib: u64,
}

impl Memory {
    /// One process, from `/proc/PID/smaps_rollup` and `/proc/PID/status`.
    pub fn of(pid: u32) -> Option<Memory> {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |text: &str, key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Some(Memory {
            processes: 1,
            rss_kib: kib(&rollup, "Rss:"),
            rss_file_kib: kib(&status, "RssFile:"),
            pss_kib: kib(&rollup, "Pss:"),
            pss_file_kib: kib(&rollup, "Pss_File:"),
            pss_anon_shmem_kib: kib(&rollup, "Pss_Anon:") + kib(&rollup, "Pss_Shmem:"),
            uss_kib: kib(&rollup, "Private_Clean:") + kib(&rollup, "Private_Dirty:"),
        })
    }

    pub fn add(&mut self, other: &Memory) {
        self.processes += other.processes;
        self.rss_kib += other.rss_kib;
        self.rss_file_kib += other.rss_file_kib;
        self.pss_kib += other.pss_kib;
        self.pss_file_kib += other.pss_file_kib;
        self.pss_anon_shmem_kib += other.pss_anon_shmem_kib;
        self.uss_kib += other.uss_kib;
    }
}

/// Stops a server: SIGTERM first (it then stops its sandboxes, which unmounts their
/// workspaces), up to `grace` for it to exit, then SIGKILL.
pub fn stop(child: &mut std::process::Child, grace: std::time::Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Unmounts (lazily, deepest first) whatever is still mounted under `dir`: a server that
/// died before stopping its sandboxes leaves their workspace volumes mounted, and every
/// mount in the host's namespace makes each later sandbox's new mount namespace slower to
/// build. Returns how many there were.
pub fn unmount_under(dir: &std::path::Path) -> usize {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        // Octal escapes (`\040` for a space) are kept: such a path is not one of ours.
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in &points {
        let _ = std::process::Command::new("umount")
            .args(["-l", p])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    points.len()
}
