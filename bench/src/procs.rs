//! Memory and process counts from /proc.

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parent of a process, from `/proc/PID/stat` (the field after the parenthesised name).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn comm(pid: u32) -> Option<String> {
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

pub fn sandboxes(server: u32) -> Sandboxes {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
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
