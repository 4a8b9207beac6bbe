//! The browser section: Chromium on Xvnc in a session's sandbox (`crates/sandbox/src/browser.rs`),
//! driven through `ironhand_sandbox::LocalSandboxProvider` in the bench process itself — no
//! server, no model. Times the first `browser_navigate` of fresh sessions (the call starts
//! the browser), then warm navigations in one session, and the memory of that one live
//! browser three ways (RSS, PSS, the sandbox cgroup's own figure).

use crate::agent::pct;
use crate::agent::report::{mib, ms};
use crate::procs::{self, Memory};
use ironhand_core::ids::SessionId;
use ironhand_core::ports::SandboxBrowser;
use ironhand_core::ports::sandbox::{Sandbox, SandboxProvider, WriteOptions};
use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The section's heading; `--only browser` replaces the report from it to the next `## `.
pub const HEADING: &str = "## Browser in the sandbox";
/// The targets.
const COLD_P50_TARGET: Duration = Duration::from_millis(1500);
const MEMORY_TARGET_KIB: u64 = 250 * 1024;
/// Longest one navigation may take before it counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the sandbox's `python3 -m http.server` listens (the sandbox's own loopback).
const PORT: u16 = 8765;
const PAGE: &str = "<!doctype html><html><head><title>Bench page</title></head><body>\
<h1>Ironhand bench</h1><p>A small page served inside the sandbox.</p>\
<input name=q placeholder=Search><button onclick=\"document.getElementById('out').textContent='clicked'\">Press</button>\
<a href=\"/\">Home</a><p id=out>not yet</p></body></html>";
/// The launcher's `$0` (crates/sandbox/src/browser.rs): marks the browser's processes.
const LAUNCHER_NAME: &str = "ih-browser";

fn page_url() -> String {
    format!("http://127.0.0.1:{PORT}/")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Page,
    Blank,
}

impl Target {
    fn url(self) -> String {
        match self {
            Target::Page => page_url(),
            Target::Blank => "about:blank".into(),
        }
    }

    fn label(self) -> String {
        match self {
            Target::Page => format!("page served in the sandbox (`{}`)", page_url()),
            Target::Blank => "`about:blank`".into(),
        }
    }
}

struct TimeRow {
    target: Target,
    cold: bool,
    samples: Vec<Duration>,
    errors: Vec<String>,
}

impl TimeRow {
    fn new(target: Target, cold: bool) -> Self {
        Self {
            target,
            cold,
            samples: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn record(&mut self, result: Result<Duration, String>) {
        match result {
            Ok(d) => self.samples.push(d),
            Err(e) => self.errors.push(e),
        }
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.samples.clone();
        v.sort();
        v
    }
}

/// The sandbox cgroup's own figures, in bytes.
struct CgroupMemory {
    v2: bool,
    usage: u64,
    peak: Option<u64>,
    anon: u64,
    cache: u64,
    shmem: u64,
}

struct MemoryRow {
    when: String,
    browser: Memory,
    by_kind: BTreeMap<String, Memory>,
    rest: Memory,
    cgroup: Option<CgroupMemory>,
    /// Chromium processes on the host outside this sandbox (they share pages with it).
    other_chromium: usize,
}

pub struct Report {
    date: String,
    machine: String,
    load: String,
    load_end: String,
    containment: String,
    memory_limit: u64,
    cold: usize,
    warm: usize,
    sandbox_start: Vec<Duration>,
    rows: Vec<TimeRow>,
    memory: Vec<MemoryRow>,
    failures: Vec<String>,
}

/// What the section found: measured, or why the browser is not there.
pub enum Outcome {
    Measured(Box<Report>),
    Unavailable(String),
}

/// The provider on a directory of its own. Fields drop in order: the provider (unmounting
/// workspaces) before the directory.
struct Env {
    provider: LocalSandboxProvider,
    _dir: tempfile::TempDir,
}

fn setup() -> anyhow::Result<Env> {
    let dir = tempfile::Builder::new()
        .prefix("ironhand-bench-browser")
        .tempdir()?;
    // bubblewrap may run as another user (the bench is root): it must reach root_dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let config = LocalSandboxConfig {
        root_dir: dir.path().join("root"),
        network: true,
        ..LocalSandboxConfig::default()
    };
    let provider = LocalSandboxProvider::new(config)?;
    Ok(Env {
        provider,
        _dir: dir,
    })
}

async fn shell(sb: &Arc<dyn Sandbox>, id: &str, dir: &str, cmd: &str) -> Result<String, String> {
    let mut out = sb
        .shell_exec(id, dir, cmd)
        .await
        .map_err(|e| format!("shell: {e}"))?;
    if out.running {
        out = sb
            .shell_wait(id, Some(30))
            .await
            .map_err(|e| format!("shell: {e}"))?;
    }
    if out.running || out.exit_code != Some(0) {
        return Err(format!(
            "`{cmd}` ended with {:?}: {}",
            out.exit_code,
            out.output.trim()
        ));
    }
    Ok(out.output)
}

/// Starts the session's sandbox (timed: its first shell command), writes the page and
/// serves it, waiting until it answers.
async fn prepare(sb: &Arc<dyn Sandbox>) -> Result<Duration, String> {
    let started = Instant::now();
    shell(sb, "web", "", "true").await?;
    let sandbox_start = started.elapsed();
    sb.file_write("site/index.html", PAGE, &WriteOptions::default())
        .await
        .map_err(|e| format!("file_write: {e}"))?;
    shell(
        sb,
        "web",
        "/home/ubuntu/site",
        &format!("python3 -m http.server {PORT} --bind 127.0.0.1 >/dev/null 2>&1 &"),
    )
    .await?;
    let ready = shell(
        sb,
        "web",
        "",
        &format!(
            "for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{PORT}) 2>/dev/null && echo ready && break; sleep 0.05; done"
        ),
    )
    .await?;
    if ready.trim() != "ready" {
        return Err("the page server did not answer within 10 s".into());
    }
    Ok(sandbox_start)
}

/// One `browser_navigate`, timed from the call to its result.
async fn navigate(browser: &Arc<dyn SandboxBrowser>, target: Target) -> Result<Duration, String> {
    let args = serde_json::json!({ "url": target.url() });
    let started = Instant::now();
    let outcome = tokio::time::timeout(CALL_TIMEOUT, browser.call("browser_navigate", &args))
        .await
        .map_err(|_| format!("no result within {CALL_TIMEOUT:?}"))?;
    let elapsed = started.elapsed();
    if !outcome.success {
        return Err(crate::sse::truncate(&outcome.message, 200));
    }
    if target == Target::Page && !outcome.data.to_string().contains("Ironhand bench") {
        return Err("the page's text is not in the result".into());
    }
    Ok(elapsed)
}

/// One fresh session: its sandbox and page server, then the timed first navigation (which
/// starts the browser); the session is destroyed with its workspace after.
async fn cold_once(
    env: &Env,
    target: Target,
    sandbox_start: &mut Vec<Duration>,
) -> Result<Duration, String> {
    let session = SessionId::new();
    let result = async {
        let sb = env
            .provider
            .sandbox(session)
            .await
            .map_err(|e| format!("sandbox: {e}"))?;
        sandbox_start.push(prepare(&sb).await?);
        let browser = sb.browser().await.map_err(|e| format!("browser: {e}"))?;
        if env.provider.running_browser(session).is_some() {
            return Err("the browser was already running before the first call".into());
        }
        navigate(&browser, target).await
    }
    .await;
    let _ = env.provider.destroy(session, true).await;
    result
}

pub async fn run(cold: usize, warm: usize) -> anyhow::Result<Outcome> {
    let load = crate::load_average();
    let env = setup()?;
    if let Err(why) = env.provider.browser_support() {
        return Ok(Outcome::Unavailable(why.to_string()));
    }
    env.provider.check().await?;
    let mut report = Report {
        date: time::OffsetDateTime::now_utc().date().to_string(),
        machine: crate::machine(),
        load,
        load_end: String::new(),
        containment: env.provider.containment(),
        memory_limit: env.provider.config().memory_bytes,
        cold,
        warm,
        sandbox_start: Vec::new(),
        rows: Vec::new(),
        memory: Vec::new(),
        failures: Vec::new(),
    };

    // Cold: the page and about:blank alternate, so drift in the machine's load hits both.
    let mut cold_rows = [
        TimeRow::new(Target::Page, true),
        TimeRow::new(Target::Blank, true),
    ];
    for i in 0..cold {
        for row in &mut cold_rows {
            let result = cold_once(&env, row.target, &mut report.sandbox_start).await;
            eprintln!(
                "browser: cold {} {}/{cold}: {}",
                row.target.url(),
                i + 1,
                match &result {
                    Ok(d) => ms(*d),
                    Err(e) => format!("error: {e}"),
                }
            );
            row.record(result);
        }
    }

    // Warm: one session, its browser started by a first navigation to the page.
    let mut warm_rows = [
        TimeRow::new(Target::Page, false),
        TimeRow::new(Target::Blank, false),
    ];
    let session = SessionId::new();
    let measured = async {
        let sb = env
            .provider
            .sandbox(session)
            .await
            .map_err(|e| format!("sandbox: {e}"))?;
        prepare(&sb).await?;
        settle().await;
        report.memory.push(measure(
            session,
            "sandbox before the browser (its shell and the page server)".into(),
        ));
        let browser = sb.browser().await.map_err(|e| format!("browser: {e}"))?;
        let first = navigate(&browser, Target::Page).await?;
        eprintln!("browser: warm session's first navigation: {}", ms(first));
        settle().await;
        report.memory.push(measure(
            session,
            "after the first navigation (browser started, page loaded)".into(),
        ));
        for _ in 0..warm {
            for row in &mut warm_rows {
                row.record(navigate(&browser, row.target).await);
            }
        }
        navigate(&browser, Target::Page).await?;
        settle().await;
        report.memory.push(measure(
            session,
            format!("after {} navigations, on the page", 2 + 2 * warm),
        ));
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = measured {
        report
            .failures
            .push(format!("warm navigations and memory: {e}"));
    }
    let _ = env.provider.destroy(session, true).await;
    report.rows.extend(cold_rows);
    report.rows.extend(warm_rows);
    for row in &report.rows {
        for e in &row.errors {
            let kind = if row.cold { "cold" } else { "warm" };
            report
                .failures
                .push(format!("{kind} navigation to {}: {e}", row.target.url()));
        }
    }
    report.load_end = crate::load_average();
    Ok(Outcome::Measured(Box::new(report)))
}

/// Lets Chromium finish what follows a load (its processes come up lazily) before memory
/// is read.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1000)).await;
}

/// The processes of a session's sandbox: every process in its cgroup
/// (`…/ironhand/<session>`), or without cgroups the bench's own descendants (one sandbox
/// lives at a time here). With the cgroup's directory and whether it is v2.
fn sandbox_processes(session: &str) -> (Vec<u32>, Option<(PathBuf, bool)>) {
    let suffix = format!("/ironhand/{session}");
    let mut members = Vec::new();
    let mut group = None;
    for pid in procs::all_pids() {
        if let Some((v2, path)) = procs::memory_cgroup(pid)
            && path.ends_with(&suffix)
        {
            members.push(pid);
            let dir = if v2 {
                PathBuf::from(format!("/sys/fs/cgroup{path}"))
            } else {
                PathBuf::from(format!("/sys/fs/cgroup/memory{path}"))
            };
            group = Some((dir, v2));
        }
    }
    if !members.is_empty() {
        return (members, group);
    }
    let me = std::process::id();
    let all: Vec<(u32, u32)> = procs::all_pids()
        .into_iter()
        .filter_map(|p| Some((p, procs::parent(p)?)))
        .collect();
    let mut tree = vec![me];
    let mut i = 0;
    while i < tree.len() {
        let of = tree[i];
        tree.extend(all.iter().filter(|(_, pp)| *pp == of).map(|(p, _)| *p));
        i += 1;
    }
    tree.remove(0);
    (tree, None)
}

/// What a browser process is, for the breakdown. Chromium's child processes rewrite their
/// command line into one space-separated string, so flags are looked for inside arguments.
fn kind(pid: u32) -> String {
    let args = procs::cmdline(pid);
    let comm = procs::comm(pid).unwrap_or_default();
    if args.iter().any(|a| a == LAUNCHER_NAME) {
        return if comm == "sh" {
            "launcher (`sh`, PID 1 of the browser's sandbox)".into()
        } else {
            format!("`{comm}` (the browser's sandbox set-up)")
        };
    }
    let flag = |name: &str| -> Option<String> {
        args.iter()
            .flat_map(|a| a.split_whitespace())
            .find_map(|w| w.strip_prefix(name).map(str::to_string))
    };
    if comm == "chromium" {
        return match flag("--type=") {
            Some(t) => {
                let sub = flag("--utility-sub-type=")
                    .map(|s| format!(" ({})", s.split('.').next().unwrap_or_default()))
                    .unwrap_or_default();
                format!("Chromium {t}{sub}")
            }
            None => "Chromium browser (main)".into(),
        };
    }
    format!("`{comm}`")
}

fn cgroup_memory(dir: PathBuf, v2: bool) -> Option<CgroupMemory> {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let stat_of = |key: &str| -> u64 {
        stat.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0)
    };
    Some(if v2 {
        CgroupMemory {
            usage: read("memory.current")?,
            peak: read("memory.peak"),
            anon: stat_of("anon"),
            cache: stat_of("file"),
            shmem: stat_of("shmem"),
            v2,
        }
    } else {
        CgroupMemory {
            usage: read("memory.usage_in_bytes")?,
            peak: read("memory.max_usage_in_bytes"),
            anon: stat_of("total_rss"),
            cache: stat_of("total_cache"),
            shmem: stat_of("total_shmem"),
            v2,
        }
    })
}

/// The memory of the session's sandbox now: the browser's processes (the launcher, its
/// sandbox set-up and everything under it) apart from the rest (shells, the page server).
fn measure(session: SessionId, when: String) -> MemoryRow {
    let (pids, group) = sandbox_processes(&session.to_string());
    let set: HashSet<u32> = pids.iter().copied().collect();
    let parents: HashMap<u32, u32> = pids
        .iter()
        .filter_map(|&p| Some((p, procs::parent(p)?)))
        .collect();
    let marked: HashSet<u32> = pids
        .iter()
        .copied()
        .filter(|&p| procs::cmdline(p).iter().any(|a| a == LAUNCHER_NAME))
        .collect();
    let is_browser = |pid: u32| {
        let mut p = pid;
        for _ in 0..64 {
            if marked.contains(&p) {
                return true;
            }
            match parents.get(&p) {
                Some(&pp) if set.contains(&pp) => p = pp,
                _ => return false,
            }
        }
        false
    };
    let mut row = MemoryRow {
        when,
        browser: Memory::default(),
        by_kind: BTreeMap::new(),
        rest: Memory::default(),
        cgroup: group.and_then(|(dir, v2)| cgroup_memory(dir, v2)),
        other_chromium: procs::all_pids()
            .into_iter()
            .filter(|p| !set.contains(p))
            .filter(|&p| procs::comm(p).is_some_and(|c| c.starts_with("chrom")))
            .count(),
    };
    for &pid in &pids {
        let Some(m) = Memory::of(pid) else { continue };
        if is_browser(pid) {
            row.browser.add(&m);
            row.by_kind.entry(kind(pid)).or_default().add(&m);
        } else {
            row.rest.add(&m);
        }
    }
    row
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn bytes_mib(b: u64) -> String {
    mib(b / 1024)
}

fn met(yes: bool) -> &'static str {
    if yes { "**yes**" } else { "**no**" }
}

impl Report {
    /// Problems that are bugs (failed navigations), not missed targets.
    pub fn problems(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|f| format!("browser: {f}"))
            .collect()
    }

    pub fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "{HEADING}\n")?;
        writeln!(
            out,
            "`bench/src/browser.rs`; `ironhand-bench --only browser` runs this section alone and \
replaces it in the report. Chromium on an Xvnc display in a session's bubblewrap sandbox \
(`crates/sandbox/src/browser.rs`), driven over its DevTools pipe, through \
`ironhand_sandbox::LocalSandboxProvider` in the bench process itself: no server, no model. \
The sandboxes have the provider's defaults (network on through slirp4netns, a memory limit of \
{limit} per sandbox; {containment}). Every session first starts its sandbox (its first shell \
command, timed apart below), writes a small page (title, heading, text, an input, a button, a \
link) and serves it with `python3 -m http.server` on the sandbox's own loopback, waiting \
until it answers. A navigation's result is what the model gets: URL, title, the numbered \
interactive elements, the page as text, and a JPEG screenshot of the viewport.\n",
            limit = bytes_mib(self.memory_limit),
            containment = self.containment,
        )?;
        writeln!(
            out,
            "- Measured on {} on {}; load average (1, 5, 15 min) when the section started: {}, \
when it ended: {}. Other work on the machine shows in every time below (Chromium's start \
wants both cores).",
            self.date, self.machine, self.load, self.load_end
        )?;
        writeln!(
            out,
            "- **Cold**: {} fresh sessions per URL (the page and `about:blank` alternating), each \
timing its first `browser_navigate` from the call to its result: the call starts Xvnc and \
Chromium (an empty profile in the workspace), connects over DevTools, opens the tab and loads \
the URL. Each session is then destroyed with its workspace. Chromium's files stay in the \
host's page cache after the first start, so *cold* is a new browser, not a cold disk.",
            self.cold
        )?;
        writeln!(
            out,
            "- **Warm**: one session whose browser a first navigation started, then {} \
navigations to the page and {} to `about:blank`, alternating (each a new document).",
            self.warm, self.warm
        )?;
        writeln!(
            out,
            "- Percentiles are nearest-rank over the samples of a row (with {} samples, p95 is \
the {}).\n",
            self.cold,
            if self.cold > 0 && (self.cold as f64 * 0.95) as usize + 1 >= self.cold {
                "slowest"
            } else {
                "second slowest or below"
            }
        )?;
        writeln!(
            out,
            "### Time from `browser_navigate` to its result\n\n| URL | browser | samples | errors | p50 | p95 | max | target | met |\n|---|---|---:|---:|---:|---:|---:|---|---|"
        )?;
        for row in &self.rows {
            let v = row.sorted();
            let (p50, p95) = (pct(&v, 0.50), pct(&v, 0.95));
            let max = v.last().copied().unwrap_or_default();
            let (target, is_met) = if row.cold {
                (
                    format!("p50 ≤ {}", secs(COLD_P50_TARGET)),
                    met(!v.is_empty() && p50 <= COLD_P50_TARGET).to_string(),
                )
            } else {
                ("none set".into(), "—".into())
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {target} | {is_met} |",
                row.target.label(),
                if row.cold {
                    "cold (started by this call)"
                } else {
                    "warm (same session)"
                },
                v.len(),
                row.errors.len(),
                ms(p50),
                ms(p95),
                ms(max),
            )?;
        }
        let mut starts = self.sandbox_start.clone();
        starts.sort();
        let p50_of = |target: Target, cold: bool| {
            self.rows
                .iter()
                .find(|r| r.target == target && r.cold == cold && !r.samples.is_empty())
                .map(|r| pct(&r.sorted(), 0.50))
        };
        if let (Some(cold), Some(warm)) = (p50_of(Target::Page, true), p50_of(Target::Page, false))
        {
            writeln!(
                out,
                "\nStarting the browser is most of a cold call: the page's cold p50 less its warm \
p50 is {}.",
                ms(cold.saturating_sub(warm))
            )?;
        }
        writeln!(
            out,
            "For comparison, starting a session's sandbox (its first shell command, `true`; not \
in the times above): p50 {}, p95 {} over {} sessions.\n",
            ms(pct(&starts, 0.50)),
            ms(pct(&starts, 0.95)),
            starts.len()
        )?;
        self.write_memory(out)?;
        for failure in &self.failures {
            writeln!(out, "- Not measured: {failure}")?;
        }
        if !self.failures.is_empty() {
            writeln!(out)?;
        }
        Ok(())
    }

    fn write_memory(&self, out: &mut String) -> std::fmt::Result {
        if self.memory.is_empty() {
            return Ok(());
        }
        let group = self.memory.iter().find_map(|r| r.cgroup.as_ref());
        let (usage_file, peak_file) = match group {
            Some(c) if c.v2 => ("memory.current", "memory.peak"),
            _ => ("memory.usage_in_bytes", "memory.max_usage_in_bytes"),
        };
        let target = mib(MEMORY_TARGET_KIB);
        writeln!(
            out,
            "### Memory of one live browser (the warm session)\n\n| when | browser processes | RSS | PSS | of it files | of it anonymous + shared memory | USS | rest of the sandbox: processes, PSS | sandbox cgroup `{usage_file}` | of it anonymous / page cache (of which shmem) | PSS ≤ {target} |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        )?;
        for row in &self.memory {
            let (cg, split) = match &row.cgroup {
                Some(c) => (
                    bytes_mib(c.usage),
                    format!(
                        "{} / {} ({})",
                        bytes_mib(c.anon),
                        bytes_mib(c.cache),
                        bytes_mib(c.shmem)
                    ),
                ),
                None => ("no cgroup".into(), "—".into()),
            };
            let is_met = if row.browser.processes > 0 {
                met(row.browser.pss_kib <= MEMORY_TARGET_KIB)
            } else {
                "—"
            };
            let b = &row.browser;
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {}, {} | {cg} | {split} | {is_met} |",
                row.when,
                b.processes,
                mib(b.rss_kib),
                mib(b.pss_kib),
                mib(b.pss_file_kib),
                mib(b.pss_anon_shmem_kib),
                mib(b.uss_kib),
                row.rest.processes,
                mib(row.rest.pss_kib),
            )?;
        }
        let Some(row) = self.memory.iter().find(|r| r.browser.processes > 0) else {
            return Ok(());
        };
        writeln!(
            out,
            "\nThe browser's processes {}:\n\n| process | count | RSS | of it file-backed | PSS | of it files | of it anonymous + shared memory | USS |\n|---|---:|---:|---:|---:|---:|---:|---:|",
            row.when
        )?;
        for (kind, m) in &row.by_kind {
            writeln!(
                out,
                "| {kind} | {} | {} | {} | {} | {} | {} | {} |",
                m.processes,
                mib(m.rss_kib),
                mib(m.rss_file_kib),
                mib(m.pss_kib),
                mib(m.pss_file_kib),
                mib(m.pss_anon_shmem_kib),
                mib(m.uss_kib)
            )?;
        }
        let (n, file) = row
            .by_kind
            .iter()
            .filter(|(k, _)| k.starts_with("Chromium"))
            .fold((0u64, 0u64), |(n, f), (_, m)| {
                (n + m.processes as u64, f + m.rss_file_kib)
            });
        let last = self.memory.last().unwrap_or(row);
        let b = &last.browser;
        writeln!(
            out,
            "\nReading these. **RSS** counts every page a process maps, so the file pages that \
each Chromium process maps (its binary, {binary}, and libraries, fonts, resource packs) are \
counted again in every process: {per} of file-backed RSS per Chromium process on average \
({n} Chromium processes), which is why RSS overstates the browser. **PSS** splits each \
shared page between the processes that map it, so summed over the browser it counts those \
pages once (Chromium processes outside this sandbox would take a share too; {others} were \
running on the host when the figures were read). **USS** counts only pages no other process \
maps (it includes file pages only this browser maps, such as Xvnc's binary). The \
**cgroup's figure** is what the sandbox's memory limit counts: the anonymous memory of all of \
the sandbox's processes (its shell and page server too) and the page cache charged to the \
group (`/tmp` is a tmpfs, Chromium's shared memory, the profile written in the workspace, and \
file pages this group read first: pages another group had cached already, as Chromium's \
binary is after its first start anywhere, are not charged).{peak}\n",
            binary = std::fs::metadata("/usr/lib/chromium/chromium")
                .map(|m| format!("{} on disk", bytes_mib(m.len())))
                .unwrap_or_else(|_| "Chromium".into()),
            per = file.checked_div(n).map_or("—".into(), mib),
            others = row.other_chromium,
            peak = match self
                .memory
                .iter()
                .filter_map(|r| r.cgroup.as_ref()?.peak)
                .max()
            {
                Some(p) => format!(
                    " The group's peak (`{peak_file}`) over the session's life was {}.",
                    bytes_mib(p)
                ),
                None => String::new(),
            },
        )?;
        let pss_met = b.pss_kib <= MEMORY_TARGET_KIB;
        let marginal_met = b.pss_anon_shmem_kib <= MEMORY_TARGET_KIB;
        writeln!(
            out,
            "**The figure compared with the {target} target is PSS**, {when}: {pss}, so the \
target is {verdict} for one live browser on its own: that is the memory it occupies when it \
is the only browser on the host. Of it, {files} are file pages (Chromium's binary and \
libraries, fonts), shared by every browser on the host, and clean (the kernel may evict them and read them again): each \
*further* live browser adds about its anonymous and shared memory, {marginal}, which {m2} the \
target (the cgroup, which charges no file pages another group read first, counts \
{cgroup} for the whole sandbox). RSS ({rss}) is not a measure of either.\n",
            when = last.when,
            pss = mib(b.pss_kib),
            verdict = if pss_met { "**met**" } else { "**not met**" },
            files = mib(b.pss_file_kib),
            marginal = mib(b.pss_anon_shmem_kib),
            m2 = if marginal_met {
                "is within"
            } else {
                "is also over"
            },
            cgroup = last
                .cgroup
                .as_ref()
                .map_or("—".into(), |c| bytes_mib(c.usage)),
            rss = mib(b.rss_kib),
        )?;
        Ok(())
    }
}

/// The section for the report: measured, or a line saying why not.
pub fn section(outcome: &anyhow::Result<Outcome>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut problems = Vec::new();
    match outcome {
        Ok(Outcome::Measured(report)) => {
            let _ = report.write(&mut out);
            problems = report.problems();
        }
        Ok(Outcome::Unavailable(why)) => {
            let _ = writeln!(
                out,
                "{HEADING}\n\n- Skipped: the sandbox browser is unavailable on this machine ({why}).\n"
            );
        }
        Err(e) => {
            let _ = writeln!(out, "{HEADING}\n\n- Not measured: {e:#}\n");
            problems.push(format!("browser: {e:#}"));
        }
    }
    (out, problems)
}

/// `report` with its browser section replaced by `section` (appended when it has none).
pub fn splice(report: &str, section: &str) -> String {
    splice_under(HEADING, report, section)
}

/// `report` with the section under `heading` (to the next `## `) replaced by `section`
/// (appended when it has none): for the sections `--only` runs alone.
pub fn splice_under(heading: &str, report: &str, section: &str) -> String {
    let Some(start) = report.find(&format!("{heading}\n")) else {
        let mut out = report.trim_end().to_string();
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(section);
        return out;
    };
    let after = start + heading.len();
    let end = report[after..]
        .find("\n## ")
        .map_or(report.len(), |i| after + i + 1);
    format!("{}{section}{}", &report[..start], &report[end..])
}
