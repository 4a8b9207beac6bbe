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
    let mut tree = vec![server];
    let mut i = 0;
    while i < tree.len() {
        let of = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == of).map(|(p, _)| *p));
        i += 1;
    }
    let descendants = &tree[1..];
    Sandboxes {
        count,
        processes: descendants.len(),
        rss_kib: descendants.iter().filter_map(|&p| rss_kib(p)).sum(),
    }
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
