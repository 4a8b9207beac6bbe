//! Baselines measured in the same run as the figures they judge, the ratios to them, and
//! the targets (issue #15): a bare axum server (`src/bin/bare-hello.rs`) driven by the same
//! client as the server's HTTP scenarios; a bare bubblewrap sandbox (`bwrap … sh -c 'echo
//! hi'`) next to the platform's sandbox start through the server; the server's start to
//! ready and its idle memory. Each target is checked where it is measured and gathered in
//! the report's targets table.

use crate::agent::report::{mib, ms};
use crate::procs;
use crate::sse;
use crate::{Args, Outcome};
use anyhow::{Context, bail, ensure};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bare axum row of the HTTP tables, measured alone. The scenarios' shares use the turns
/// of bare axum run alongside each of them (`crate::paired`), this row when there are none.
pub const BARE: &str = "bare axum `GET /` (the baseline)";
/// The same with twice the clients: if the load generator held the figures back, more
/// clients would raise them.
pub const BARE_CHECK: &str = "bare axum `GET /`, twice the clients (client check)";

/// An HTTP scenario's throughput as a share of bare axum's.
fn http_target(name: &str) -> Option<f64> {
    if name.starts_with("GET /health") {
        Some(0.85)
    } else if name.starts_with("GET /auth/me") {
        Some(0.60)
    } else if name.starts_with("GET /sessions") {
        Some(0.50)
    } else {
        None
    }
}
/// On PostgreSQL + Redis, each share of bare axum as a share of SQLite's.
const VS_SQLITE_TARGET: f64 = 0.70;
/// The platform's sandbox start (p50, and CPU per sandbox) at most this many times bare
/// bubblewrap's.
const SANDBOX_P50_TARGET: f64 = 3.0;
const SANDBOX_CPU_TARGET: f64 = 3.0;
const IDLE_SANDBOX_RSS_TARGET_KIB: u64 = 4 * 1024;
/// From spawning `ironhand serve` to `/api/v1/ready` answering 200.
const START_TARGET: Duration = Duration::from_millis(300);
const IDLE_RSS_TARGET_KIB: u64 = 40 * 1024;
/// How long after `/ready` the idle memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(1);
/// Where the targets table goes in the report, filled in once everything is measured.
pub const GOALS_MARKER: &str = "<!-- the targets table -->\n";

/// The bare bubblewrap run: a new user, mount, PID, IPC, UTS, network and cgroup namespace,
/// `/usr` read-only with the merged-`/usr` links Debian has, a fresh `/proc` and `/dev`.
const BWRAP_ARGS: &[&str] = &[
    "--unshare-all",
    "--die-with-parent",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "sh",
    "-c",
    "echo hi",
];

/// One target, as the targets table shows it.
pub struct Goal {
    pub section: String,
    pub what: String,
    pub measured: String,
    pub target: String,
    pub met: bool,
}

fn met(yes: bool) -> &'static str {
    if yes { "**yes**" } else { "**no**" }
}

fn pct(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

fn times(v: f64) -> String {
    format!("{v:.2}×")
}

/// Nearest-rank percentile of sorted samples.
fn nearest(sorted: &[Duration], p: f64) -> Duration {
    crate::agent::pct(sorted, p)
}

/// The report's intro for baselines, ratios and targets.
pub fn intro(args: &Args) -> String {
    format!(
        "**Baselines, ratios and targets.** Absolute numbers depend on the machine and on what \
else it runs, so every figure that has a target is measured next to a baseline, in the same run, \
with the same client, and judged as a ratio to it:

- **HTTP**: a bare axum server (`bench/src/bin/bare-hello.rs`: the workspace's axum 0.8, \
`axum::serve`, no middleware, no state, `GET /` answers a small JSON) is started next to each \
backend's server and driven by the same load generator with the same concurrency ({clients} \
clients, {secs} s): alone first (the baseline row), then in turns of one second with each \
scenario, {secs} s each, so that both see the same load from whatever else the machine runs (the \
bench shares it with builds and tests). Each scenario's throughput is shown as a share of bare \
axum's in the turns alongside it (*% of bare axum*). \
Targets: `GET /health` ≥ 85 %, `GET /auth/me` ≥ 60 %, `GET /sessions` (a user with \
{sessions} sessions) ≥ 50 %; on PostgreSQL + Redis, each share is also shown as a share of \
SQLite's (*vs SQLite*: the two shares divided, so a machine busier during one backend's run \
than the other's cancels out), target ≥ 70 %. Login and refresh have no target.
- **The load generator** is the bench's own Rust client (`reqwest` 0.12 over HTTP/1.1 \
keep-alive, one pooled connection per client task, on a multi-threaded tokio runtime in the \
`ironhand-bench` process), not wrk or oha. Client and server share the machine's cores, so the \
client's CPU is in every figure; the same client in the same run is what makes the ratios fair. \
Each row shows the CPU the bench process (*client*) and the server process used during it, in \
cores (CPU seconds per second, all threads), and the server's CPU per request, also as a multiple \
of bare axum's (*× bare axum's*). The *client check* row drives bare axum with twice the clients: \
if it is not markedly faster than the baseline row, more concurrency would not raise the figures, \
which are then bound by the cores client and server share, not by the client's concurrency. \
Since the client's cost per request is about the same in every row, a request that costs the \
server more lowers req/s less than in proportion when the client takes a large share of the \
cores: the req/s shares are what the targets judge, the CPU multiples show the server's cost \
without the client's.
- **Sandbox start**: bare bubblewrap (`bwrap {bwrap}`), timed from spawning bubblewrap to \
its exit and its output read: {bwrap_runs} runs one after another at the bench's start, as root \
and as the sandbox user (uid {uid}, what a root server runs bubblewrap as: \
`LocalSandboxConfig::run_as_uid`, with no supplementary groups), and one run as the sandbox user \
before each of the platform's sessions below, which is the baseline of the ratios (the same \
background load). Its CPU is the children's CPU of the bench process (`cutime + cstime`, the \
counters of `getrusage(RUSAGE_CHILDREN)`) over the runs, divided by them. The platform's start is measured through the real server: {sandbox_runs} \
fresh sessions one after another, each running the agent's `bench_run` script (its only command \
is `shell_exec` `echo hi`, the session's first, so the call creates the sandbox: namespaces, \
slirp4netns, cgroup, workspace, the shell); *start* is from the `tool` event `calling` of that \
`shell_exec` to its `called` event, as the client receives them. Its CPU is what the processes \
the server starts for sandboxes used (the server's `cutime + cstime` after the sessions were \
deleted and their processes reaped, plus any still alive), divided by the sessions: a sandbox's \
whole life (creation, the command, idling, removal), not the server's own work to set it up, \
which is shown apart (the server's CPU per run, the whole run included). Targets: p50 ≤ 3× and \
CPU ≤ 3× the bare bubblewrap as the sandbox user; memory ≤ 4 MiB RSS per live idle sandbox (all \
the server's sandbox processes, summed, one second after the last run, divided by the live \
sandboxes; PSS, which shares pages between processes, is shown next to it).
- **Start and idle memory**: the release server started {starts} times on a data directory of \
its own (on PostgreSQL a database of its own): the first start on an empty one (migrations \
run), the others restarts on the same data. *To /health* and *to /ready* are from the spawn \
to the first 200 of `GET /api/v1/health` and of `GET /api/v1/ready` (which checks the database, \
Redis, the file store, and starts a test sandbox), polled every 5 ms; the target (< 300 ms) is \
for `/ready`. Idle memory is the RSS {settle} s after `/ready` answered, with no request since; \
target < 40 MiB.
- Targets not met are **no** in the tables and in the targets table below; they are goals, not \
failures of the bench (which fails on errors only).
",
        clients = args.clients,
        secs = args.seconds,
        sessions = crate::SESSIONS_PER_USER,
        bwrap = BWRAP_ARGS
            .iter()
            .map(|a| if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.to_string()
            })
            .collect::<Vec<_>>()
            .join(" "),
        bwrap_runs = args.bwrap_runs,
        uid = sandbox_ids().0,
        sandbox_runs = args.server_sandbox_runs,
        starts = args.server_starts,
        settle = IDLE_SETTLE.as_secs(),
    )
}

/// The targets table: every target of the report, where it was measured, and whether it
/// was met.
pub fn goals_table(goals: &[Goal]) -> String {
    let mut out = String::from(
        "## Targets\n\n| backend | what | measured | target | met |\n|---|---|---:|---|---|\n",
    );
    for g in goals {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            g.section,
            g.what,
            g.measured,
            g.target,
            met(g.met)
        );
    }
    if goals.is_empty() {
        out.push_str("| — | nothing measured | — | — | — |\n");
    }
    out.push_str(
        "\nEach is in its section below with its baseline; the browser's targets are in its own section.\n\n",
    );
    out
}

// ---------------------------------------------------------------------------------------
// HTTP: bare axum.

/// The bare axum server, killed when dropped.
pub struct Bare {
    child: Child,
    pub base: String,
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bare {
    pub async fn start(binary: &Path) -> anyhow::Result<Bare> {
        let port = crate::free_port()?;
        let child = Command::new(binary)
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let bare = Bare {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..500 {
            if client
                .get(format!("{}/", bare.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(bare);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("{} never answered", binary.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `--bare-hello`, or `bare-hello` next to the bench's own binary (cargo builds both).
pub fn bare_binary(args: &Args) -> PathBuf {
    args.bare_hello.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("bare-hello")))
            .unwrap_or_else(|| PathBuf::from("target/release/bare-hello"))
    })
}

/// Each scenario's share of bare axum, by name: what the next backend compares with.
pub type Shares = Vec<(&'static str, f64)>;

/// The HTTP table of a backend, with the shares of bare axum and, given SQLite's shares,
/// the shares of those; returns this backend's shares.
pub fn http_table(
    out: &mut String,
    section: &str,
    outcomes: &[Outcome],
    sqlite: Option<&Shares>,
    goals: &mut Vec<Goal>,
) -> Result<Shares, std::fmt::Error> {
    let bare = outcomes
        .iter()
        .find(|o| o.name == BARE)
        .map(|o| o.per_sec)
        .filter(|v| *v > 0.0);
    let cpu_per_request = |o: &Outcome| (o.requests > 0).then(|| o.server_cpu / o.requests as f64);
    let bare_cpu = outcomes
        .iter()
        .find(|o| o.name == BARE)
        .and_then(cpu_per_request)
        .filter(|v| *v > 0.0);
    let (vs_head, vs_rule) = if sqlite.is_some() {
        (" vs SQLite | target | met |", "---:|---|---|")
    } else {
        ("", "")
    };
    writeln!(
        out,
        "| scenario | requests | errors | req/s | p50 | p99 | bare axum alongside, req/s | % of bare axum | target | met |{vs_head} client CPU | server CPU | server CPU per request | × bare axum's | server RSS after |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|{vs_rule}---:|---:|---:|---:|---:|"
    )?;
    let mut shares = Vec::new();
    for o in outcomes {
        // Against the bare axum turns run alongside the scenario, else the baseline row.
        let share = o
            .bare_alongside
            .filter(|v| *v > 0.0)
            .or(bare)
            .map(|b| o.per_sec / b);
        if let Some(s) = share {
            shares.push((o.name, s));
        }
        let is_bare = o.name == BARE || o.name == BARE_CHECK;
        let (target, is_met) = match (http_target(o.name), share) {
            (Some(t), Some(s)) => {
                goals.push(Goal {
                    section: section.to_string(),
                    what: format!("{}: req/s as a share of bare axum", short(o.name)),
                    measured: pct(s),
                    target: format!("≥ {}", pct(t)),
                    met: s >= t,
                });
                (format!("≥ {}", pct(t)), met(s >= t).to_string())
            }
            (Some(t), None) => (format!("≥ {}", pct(t)), "—".to_string()),
            (None, _) => (
                (if is_bare { "—" } else { "none set" }).to_string(),
                "—".to_string(),
            ),
        };
        let vs = match sqlite {
            None => String::new(),
            Some(sqlite) => {
                let theirs = sqlite.iter().find(|(n, _)| *n == o.name).map(|(_, s)| *s);
                match (share, theirs) {
                    (Some(mine), Some(theirs)) if !is_bare && theirs > 0.0 => {
                        let v = mine / theirs;
                        goals.push(Goal {
                            section: section.to_string(),
                            what: format!("{}: share of bare axum, vs SQLite's", short(o.name)),
                            measured: pct(v),
                            target: format!("≥ {}", pct(VS_SQLITE_TARGET)),
                            met: v >= VS_SQLITE_TARGET,
                        });
                        format!(
                            " {} | ≥ {} | {} |",
                            pct(v),
                            pct(VS_SQLITE_TARGET),
                            met(v >= VS_SQLITE_TARGET)
                        )
                    }
                    _ => " — | — | — |".to_string(),
                }
            }
        };
        let cores = |cpu: f64| {
            if o.elapsed > 0.0 {
                format!("{:.2}", cpu / o.elapsed)
            } else {
                "—".to_string()
            }
        };
        let per_request = cpu_per_request(o);
        let cpu_ratio = match (per_request, bare_cpu) {
            (Some(mine), Some(bare)) => times(mine / bare),
            _ => "—".to_string(),
        };
        let per_request = per_request.map_or("—".to_string(), |v| format!("{:.0} µs", v * 1e6));
        writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {target} | {is_met} |{vs} {} | {} | {per_request} | {cpu_ratio} | {} |",
            o.name,
            o.requests,
            o.errors,
            o.per_sec,
            o.p50.as_secs_f64() * 1000.0,
            o.p99.as_secs_f64() * 1000.0,
            o.bare_alongside
                .map_or("—".to_string(), |v| format!("{v:.0}")),
            share.map_or("—".to_string(), pct),
            cores(o.client_cpu),
            cores(o.server_cpu),
            mib(o.rss_after_kib),
        )?;
    }
    writeln!(out)?;
    Ok(shares)
}

/// A scenario's name without its parenthesised note, for the targets table.
fn short(name: &str) -> String {
    name.split(" (").next().unwrap_or(name).to_string()
}

// ---------------------------------------------------------------------------------------
// Sandboxes: bare bubblewrap, and the platform's start through the server.

/// The uid and gid a root server runs bubblewrap as.
fn sandbox_ids() -> (u32, u32) {
    let config = ironhand_sandbox::LocalSandboxConfig::default();
    (config.run_as_uid, config.run_as_gid)
}

/// The effective uid of the bench process (`/proc/self/status`).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join("bwrap"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub struct BwrapRow {
    pub label: String,
    pub samples: Vec<Duration>,
    pub errors: BTreeMap<String, usize>,
    /// Children's CPU (user + system) per run.
    pub cpu_per_run: Option<Duration>,
}

impl BwrapRow {
    fn p(&self, p: f64) -> Duration {
        let mut v = self.samples.clone();
        v.sort();
        nearest(&v, p)
    }
}

pub struct BwrapBaseline {
    pub bwrap: Option<PathBuf>,
    pub rows: Vec<BwrapRow>,
}

impl BwrapBaseline {
    /// The row the platform is compared with: as the sandbox user when the bench is root
    /// (as the server would run it), else as the bench's own user.
    pub fn reference(&self) -> Option<&BwrapRow> {
        self.rows.last().filter(|r| !r.samples.is_empty())
    }
}

/// Runs bare bubblewrap `runs` times as root and as the sandbox user (or as the bench's
/// user when it is not root). Blocking; the bench must have no other child that ends
/// meanwhile, since the CPU is read from its children's counters.
/// The user the server runs bubblewrap as, with its row label: the sandbox user when the
/// bench (as the server it starts) is root, else the bench's own user.
fn server_user() -> (String, Option<(u32, u32)>) {
    match euid() {
        Some(0) => {
            let (uid, gid) = sandbox_ids();
            (
                format!("as the sandbox user (uid {uid}, gid {gid}, no supplementary groups)"),
                Some((uid, gid)),
            )
        }
        other => (
            format!(
                "as the bench's user (uid {}; the server runs bubblewrap as itself)",
                other.map_or("?".to_string(), |u| u.to_string())
            ),
            None,
        ),
    }
}

/// One bare bubblewrap run as `ids` (or the bench's user): spawn to exit, output read.
fn bwrap_once(bwrap: &Path, ids: Option<(u32, u32)>) -> Result<Duration, String> {
    let mut cmd = Command::new(bwrap);
    cmd.args(BWRAP_ARGS)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null());
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    let t = Instant::now();
    let out = cmd.output();
    let elapsed = t.elapsed();
    match out {
        Ok(o) if o.status.success() && o.stdout == b"hi\n" => Ok(elapsed),
        Ok(o) => Err(format!(
            "{}: {}",
            o.status,
            sse::truncate(String::from_utf8_lossy(&o.stderr).trim(), 160)
        )),
        Err(e) => Err(format!("cannot start bubblewrap: {e}")),
    }
}

/// Runs bare bubblewrap `runs` times as root and as the sandbox user (or as the bench's
/// user when it is not root). Blocking; the bench must have no other child that ends
/// meanwhile, since the CPU is read from its children's counters.
pub fn bwrap_baseline(runs: usize) -> BwrapBaseline {
    let Some(bwrap) = find_bwrap() else {
        return BwrapBaseline {
            bwrap: None,
            rows: Vec::new(),
        };
    };
    let mut users: Vec<(String, Option<(u32, u32)>)> = Vec::new();
    if euid() == Some(0) {
        users.push(("as root".to_string(), None));
    }
    users.push(server_user());
    let rows = users
        .into_iter()
        .map(|(label, ids)| {
            // Two runs first, untimed: bubblewrap and sh in the page cache.
            for _ in 0..2 {
                let _ = bwrap_once(&bwrap, ids);
            }
            let me = std::process::id();
            let before = procs::cpu(me);
            let mut row = BwrapRow {
                label,
                samples: Vec::new(),
                errors: BTreeMap::new(),
                cpu_per_run: None,
            };
            for _ in 0..runs {
                match bwrap_once(&bwrap, ids) {
                    Ok(d) => row.samples.push(d),
                    Err(e) => *row.errors.entry(e).or_default() += 1,
                }
            }
            if let (Some(b), Some(a)) = (before, procs::cpu(me))
                && runs > 0
            {
                row.cpu_per_run = Some(Duration::from_secs_f64(
                    (a.children - b.children).max(0.0) / runs as f64,
                ));
            }
            row
        })
        .collect();
    BwrapBaseline {
        bwrap: Some(bwrap),
        rows,
    }
}

impl BwrapBaseline {
    /// The section of the bare bubblewrap runs (once per report).
    pub fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "## Baseline: bare bubblewrap\n")?;
        let Some(bwrap) = &self.bwrap else {
            return writeln!(
                out,
                "Not measured: bubblewrap (`bwrap`) is not installed.\n"
            );
        };
        writeln!(
            out,
            "`{} {}`, one run after another at the bench's start (see the intro). The ratios in each backend's *Sandbox start* table use the runs made alongside the platform's sessions there, under the same background load; these rows show the same command on its own.\n",
            bwrap.display(),
            BWRAP_ARGS
                .iter()
                .map(|a| if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.to_string()
                })
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(
            out,
            "| bubblewrap | runs | errors | p50 | p95 | max | CPU per run (user + system) |\n|---|---:|---:|---:|---:|---:|---:|"
        )?;
        for r in &self.rows {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.label,
                r.samples.len(),
                r.errors.values().sum::<usize>(),
                ms(r.p(0.50)),
                ms(r.p(0.95)),
                ms(r.p(1.0)),
                r.cpu_per_run.map_or("—".to_string(), ms),
            )?;
        }
        writeln!(out)?;
        for r in &self.rows {
            for (kind, n) in r.errors.iter().take(3) {
                writeln!(out, "- {}: {n} × `{}`", r.label, kind.replace('`', "'"))?;
            }
        }
        Ok(())
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .rows
            .iter()
            .filter(|r| !r.errors.is_empty())
            .map(|r| {
                format!(
                    "bare bubblewrap {}: {} failed run(s)",
                    r.label,
                    r.errors.values().sum::<usize>()
                )
            })
            .collect();
        if self.bwrap.is_none() {
            problems.push("bare bubblewrap: bwrap is not installed".to_string());
        }
        problems
    }
}

/// The platform's sandbox starts, measured through a server.
pub struct SandboxStarts {
    /// Bare bubblewrap as the server's sandbox user, one run before each session: the
    /// baseline of the ratios, under the same background load.
    pub bare: BwrapRow,
    /// `shell_exec` `calling` to `called`, per successful run.
    pub shell: Vec<Duration>,
    /// The whole run (`PUT /sessions`, chat, stream to `done`).
    pub totals: Vec<Duration>,
    pub errors: BTreeMap<String, usize>,
    /// CPU of the sandboxes' processes, per session.
    pub sandbox_cpu: Option<Duration>,
    /// The server process's own CPU per run, the whole run.
    pub server_cpu: Duration,
    /// Live sandboxes one second after the last run, their processes and memory.
    pub idle_count: usize,
    pub idle: procs::Memory,
    /// Processes of the server still alive after the sessions were deleted.
    pub left: usize,
}

/// `runs` fresh sessions one after another, each an agent run of `bench_run` (whose first
/// command starts the sandbox); then the sessions are deleted and the sandboxes' CPU read.
/// Each session has an account of its own: a user's live sandboxes are capped (4 by
/// default), and a start over the cap would first stop another one.
pub async fn sandbox_starts(
    client: &reqwest::Client,
    base: &str,
    server: u32,
    label: &str,
    runs: usize,
) -> anyhow::Result<SandboxStarts> {
    let mut tokens = Vec::new();
    for n in 0..runs {
        let r = crate::post(
            client,
            &format!("{base}/api/v1/auth/register"),
            json!({"fullname": "Sandbox Bench", "email": format!("sandbox{n}@example.com"), "password": "bench password"}),
            None,
        )
        .await?;
        tokens.push(
            r["data"]["access_token"]
                .as_str()
                .context("no access token")?
                .to_string(),
        );
    }
    let tree_cpu = |pid: u32| -> f64 {
        procs::descendants(pid)
            .into_iter()
            .filter_map(procs::cpu)
            .map(|c| c.own + c.children)
            .sum()
    };
    let before = procs::cpu(server).context("the server's /proc/PID/stat")?;
    let before_tree = tree_cpu(server);
    let (bare_label, bare_ids) = server_user();
    let bwrap = find_bwrap();
    let mut report = SandboxStarts {
        bare: BwrapRow {
            label: format!("{bare_label}, alongside: one run before each session"),
            samples: Vec::new(),
            errors: BTreeMap::new(),
            cpu_per_run: None,
        },
        shell: Vec::new(),
        totals: Vec::new(),
        errors: BTreeMap::new(),
        sandbox_cpu: None,
        server_cpu: Duration::ZERO,
        idle_count: 0,
        idle: procs::Memory::default(),
        left: 0,
    };
    let mut sessions = Vec::new();
    let mut bare_cpu = 0.0;
    for (n, token) in tokens.iter().enumerate() {
        if let Some(bwrap) = bwrap.clone() {
            // Only this child ends while the counters are read.
            let me = std::process::id();
            let before = procs::cpu(me);
            let run = tokio::task::spawn_blocking(move || bwrap_once(&bwrap, bare_ids)).await;
            if let (Some(b), Some(a)) = (before, procs::cpu(me)) {
                bare_cpu += (a.children - b.children).max(0.0);
            }
            match run {
                Ok(Ok(d)) => report.bare.samples.push(d),
                Ok(Err(e)) => *report.bare.errors.entry(e).or_default() += 1,
                Err(e) => *report.bare.errors.entry(e.to_string()).or_default() += 1,
            }
        }
        let once = async {
            let t0 = Instant::now();
            let session = crate::agent::new_session(client, base, token).await?;
            sessions.push((token, session.clone()));
            let text = format!(
                "[scenario:bench_run] {label} sandbox start {n} {}",
                uuid::Uuid::new_v4().simple()
            );
            let events = sse::chat(client, base, token, &session, &json!({"message": text}))
                .await?
                .collect(Duration::from_secs(120))
                .await?;
            if let Some(e) = events.iter().find(|e| e.event == "error") {
                bail!("error event: {}", e.json()["error"]);
            }
            ensure!(
                events.last().is_some_and(|e| e.event == "done"),
                "the stream ended without done"
            );
            let shell = |status: &str| {
                events.iter().find(|e| {
                    let d = e.json();
                    e.event == "tool" && d["function"] == "shell_exec" && d["status"] == status
                })
            };
            let (Some(calling), Some(called)) = (shell("calling"), shell("called")) else {
                bail!("no shell_exec calling and called events");
            };
            ensure!(
                called.json()["content"]["console"][0]["output"] == "hi\n",
                "the shell_exec result is not `hi`"
            );
            anyhow::Ok((called.arrived - calling.arrived, t0.elapsed()))
        };
        match once.await {
            Ok((shell, total)) => {
                report.shell.push(shell);
                report.totals.push(total);
            }
            Err(e) => {
                *report
                    .errors
                    .entry(sse::truncate(&format!("{e:#}"), 160))
                    .or_default() += 1;
            }
        }
    }
    let bare_runs = report.bare.samples.len() + report.bare.errors.values().sum::<usize>();
    if bare_runs > 0 {
        report.bare.cpu_per_run = Some(Duration::from_secs_f64(bare_cpu / bare_runs as f64));
    }
    let after_runs = procs::cpu(server).unwrap_or(before);
    report.server_cpu =
        Duration::from_secs_f64((after_runs.own - before.own).max(0.0) / runs.max(1) as f64);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.idle_count = procs::sandboxes(server).count;
    for pid in procs::descendants(server) {
        if let Some(m) = procs::Memory::of(pid) {
            report.idle.add(&m);
        }
    }
    for (token, session) in &sessions {
        let _ = client
            .delete(format!("{base}/api/v1/sessions/{session}"))
            .bearer_auth(token)
            .send()
            .await;
    }
    // Until every sandbox process is gone and reaped (a zombie still has a /proc entry).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !procs::descendants(server).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.left = procs::descendants(server).len();
    let after = procs::cpu(server).unwrap_or(before);
    let used = (after.children + tree_cpu(server)) - (before.children + before_tree);
    if !sessions.is_empty() {
        report.sandbox_cpu = Some(Duration::from_secs_f64(
            used.max(0.0) / sessions.len() as f64,
        ));
    }
    Ok(report)
}

impl SandboxStarts {
    fn p(&self, p: f64) -> Duration {
        let mut v = self.shell.clone();
        v.sort();
        nearest(&v, p)
    }

    pub fn problems(&self, section: &str) -> Vec<String> {
        self.errors
            .iter()
            .map(|(kind, n)| format!("{section}: sandbox start: {n} × {kind}"))
            .chain(
                self.bare
                    .errors
                    .iter()
                    .map(|(kind, n)| format!("{section}: bare bubblewrap: {n} × {kind}")),
            )
            .collect()
    }

    /// The backend's *Sandbox start* table, with the baseline's rows and the ratios.
    pub fn write(
        &self,
        out: &mut String,
        section: &str,
        baseline: &BwrapBaseline,
        goals: &mut Vec<Goal>,
    ) -> std::fmt::Result {
        writeln!(
            out,
            "### Sandbox start: the platform and bare bubblewrap\n\n| start | runs | errors | p50 | p95 | CPU per run | p50 × baseline | target | met | CPU × baseline | target | met |\n|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|"
        )?;
        for (r, when) in baseline
            .rows
            .iter()
            .map(|r| (r, " (at the bench's start)"))
            .chain(std::iter::once((
                &self.bare,
                " (the baseline of the ratios)",
            )))
        {
            writeln!(
                out,
                "| bare bubblewrap {}{when} | {} | {} | {} | {} | {} | — | — | — | — | — | — |",
                r.label,
                r.samples.len(),
                r.errors.values().sum::<usize>(),
                ms(r.p(0.50)),
                ms(r.p(0.95)),
                r.cpu_per_run.map_or("—".to_string(), ms),
            )?;
        }
        // The runs alongside, else the ones at the bench's start.
        let reference = Some(&self.bare)
            .filter(|r| !r.samples.is_empty())
            .or_else(|| baseline.reference());
        let p50 = self.p(0.50);
        let ratio_p50 = reference
            .map(|r| r.p(0.50).as_secs_f64())
            .filter(|b| *b > 0.0 && !self.shell.is_empty())
            .map(|b| p50.as_secs_f64() / b);
        let ratio_cpu = match (reference.and_then(|r| r.cpu_per_run), self.sandbox_cpu) {
            (Some(b), Some(mine)) if b > Duration::ZERO => {
                Some(mine.as_secs_f64() / b.as_secs_f64())
            }
            _ => None,
        };
        let cell = |ratio: Option<f64>, target: f64| match ratio {
            Some(v) => (times(v), format!("≤ {}", times(target)), met(v <= target)),
            None => ("—".to_string(), format!("≤ {}", times(target)), "—"),
        };
        let (rp, tp, mp) = cell(ratio_p50, SANDBOX_P50_TARGET);
        let (rc, tc, mc) = cell(ratio_cpu, SANDBOX_CPU_TARGET);
        writeln!(
            out,
            "| the platform: a fresh session's first `shell_exec` through the server (`calling` to `called`) | {} | {} | {} | {} | {} | {rp} | {tp} | {mp} | {rc} | {tc} | {mc} |\n",
            self.shell.len(),
            self.errors.values().sum::<usize>(),
            ms(p50),
            ms(self.p(0.95)),
            self.sandbox_cpu.map_or("—".to_string(), ms),
        )?;
        if let Some(v) = ratio_p50 {
            goals.push(Goal {
                section: section.to_string(),
                what: "sandbox start + first command, p50, × bare bubblewrap".into(),
                measured: format!("{} ({})", times(v), ms(p50)),
                target: format!("≤ {}", times(SANDBOX_P50_TARGET)),
                met: v <= SANDBOX_P50_TARGET,
            });
        }
        if let (Some(v), Some(cpu)) = (ratio_cpu, self.sandbox_cpu) {
            goals.push(Goal {
                section: section.to_string(),
                what: "CPU per sandbox, × bare bubblewrap's per run".into(),
                measured: format!("{} ({})", times(v), ms(cpu)),
                target: format!("≤ {}", times(SANDBOX_CPU_TARGET)),
                met: v <= SANDBOX_CPU_TARGET,
            });
        }
        let mut totals = self.totals.clone();
        totals.sort();
        writeln!(
            out,
            "The whole run of each session (`PUT /sessions`, the chat, its stream to `done`: 5 model requests, 11 events) took p50 {}, p95 {}; the server process itself used {} of CPU per run (all of the run, not only the sandbox).{}\n",
            ms(nearest(&totals, 0.50)),
            ms(nearest(&totals, 0.95)),
            ms(self.server_cpu),
            if self.left > 0 {
                format!(
                    " {} of the server's processes were still there 15 s after the sessions were deleted (their CPU so far is counted).",
                    self.left
                )
            } else {
                String::new()
            }
        )?;
        let per = |kib: u64| {
            if self.idle_count > 0 {
                mib(kib / self.idle_count as u64)
            } else {
                "—".to_string()
            }
        };
        let rss_per = (self.idle_count > 0).then(|| self.idle.rss_kib / self.idle_count as u64);
        let (target, is_met) = match rss_per {
            Some(v) => {
                goals.push(Goal {
                    section: section.to_string(),
                    what: "RSS per live idle sandbox".into(),
                    measured: mib(v),
                    target: format!("≤ {}", mib(IDLE_SANDBOX_RSS_TARGET_KIB)),
                    met: v <= IDLE_SANDBOX_RSS_TARGET_KIB,
                });
                (
                    format!("≤ {}", mib(IDLE_SANDBOX_RSS_TARGET_KIB)),
                    met(v <= IDLE_SANDBOX_RSS_TARGET_KIB),
                )
            }
            None => (format!("≤ {}", mib(IDLE_SANDBOX_RSS_TARGET_KIB)), "—"),
        };
        writeln!(
            out,
            "| live idle sandboxes | their processes | RSS | RSS per sandbox | target | met | PSS | PSS per sandbox | USS per sandbox |\n|---:|---:|---:|---:|---|---|---:|---:|---:|\n| {} | {} | {} | {} | {target} | {is_met} | {} | {} | {} |\n",
            self.idle_count,
            self.idle.processes,
            mib(self.idle.rss_kib),
            per(self.idle.rss_kib),
            mib(self.idle.pss_kib),
            per(self.idle.pss_kib),
            per(self.idle.uss_kib),
        )?;
        for (kind, n) in self.errors.iter().take(5) {
            writeln!(
                out,
                "- sandbox start errors: {n} × `{}`",
                kind.replace('`', "'")
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The server's start and idle memory.

pub struct Start {
    pub health: Option<Duration>,
    pub ready: Option<Duration>,
    pub idle_rss_kib: Option<u64>,
    pub error: Option<String>,
}

/// A server process stopped when dropped (see `Server`'s `Drop`); its data dir is unmounted
/// by the caller, which keeps it.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        procs::stop(&mut self.0, Duration::from_secs(10));
    }
}

/// Polls `url` every 5 ms until it answers 200 or `deadline` passes.
async fn until_ok(client: &reqwest::Client, url: &str, deadline: Instant) -> Option<Instant> {
    loop {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts the server `count` times on one data directory (and the backend's database in
/// `env`): spawn to `/health` 200, to `/ready` 200, RSS a second later; then kills it.
pub async fn startups(
    args: &Args,
    env: &[(&str, String)],
    count: usize,
) -> anyhow::Result<Vec<Start>> {
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut starts = Vec::new();
    for _ in 0..count {
        let port = crate::free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        let server = Killed(crate::spawn(args, env, None, dir.path(), port)?);
        let deadline = t0 + Duration::from_secs(30);
        let health = until_ok(&client, &format!("{base}/api/v1/health"), deadline).await;
        let ready = match health {
            Some(_) => until_ok(&client, &format!("{base}/api/v1/ready"), deadline).await,
            None => None,
        };
        let mut start = Start {
            health: health.map(|t| t - t0),
            ready: ready.map(|t| t - t0),
            idle_rss_kib: None,
            error: None,
        };
        if ready.is_some() {
            tokio::time::sleep(IDLE_SETTLE).await;
            start.idle_rss_kib = procs::rss_kib(server.0.id());
        } else {
            let answer = match client.get(format!("{base}/api/v1/ready")).send().await {
                Ok(r) => format!(
                    "{}: {}",
                    r.status(),
                    sse::truncate(&r.text().await.unwrap_or_default(), 200)
                ),
                Err(e) => format!("{e}"),
            };
            start.error = Some(format!("not ready within 30 s ({answer})"));
        }
        drop(server);
        procs::unmount_under(dir.path());
        starts.push(start);
    }
    Ok(starts)
}

/// The backend's start table.
pub fn write_starts(
    out: &mut String,
    section: &str,
    starts: &[Start],
    goals: &mut Vec<Goal>,
) -> std::fmt::Result {
    writeln!(
        out,
        "### Start and idle memory ({} starts)\n\n| start | to `/health` 200 | to `/ready` 200 | target | met | idle RSS ({} s after ready) | target | met |\n|---|---:|---:|---|---|---:|---|---|",
        starts.len(),
        IDLE_SETTLE.as_secs()
    )?;
    let opt = |d: Option<Duration>| d.map_or("—".to_string(), ms);
    for (i, s) in starts.iter().enumerate() {
        writeln!(
            out,
            "| {} | {} | {} | < {} | {} | {} | < {} | {} |",
            if i == 0 {
                "1: new data dir / database (migrations)".to_string()
            } else {
                format!("{}: restart", i + 1)
            },
            opt(s.health),
            opt(s.ready),
            ms(START_TARGET),
            s.ready.map_or("—", |d| met(d < START_TARGET)),
            s.idle_rss_kib.map_or("—".to_string(), mib),
            mib(IDLE_RSS_TARGET_KIB),
            s.idle_rss_kib.map_or("—", |k| met(k < IDLE_RSS_TARGET_KIB)),
        )?;
    }
    writeln!(out)?;
    for (i, s) in starts.iter().enumerate() {
        if let Some(e) = &s.error {
            writeln!(out, "- start {}: {}", i + 1, e.replace('`', "'"))?;
        }
    }
    let mut ready: Vec<Duration> = starts.iter().filter_map(|s| s.ready).collect();
    ready.sort();
    let mut rss: Vec<u64> = starts.iter().filter_map(|s| s.idle_rss_kib).collect();
    rss.sort_unstable();
    if !ready.is_empty() {
        let p50 = nearest(&ready, 0.50);
        goals.push(Goal {
            section: section.to_string(),
            what: format!("start to `/ready` 200, p50 of {}", ready.len()),
            measured: ms(p50),
            target: format!("< {}", ms(START_TARGET)),
            met: p50 < START_TARGET,
        });
    }
    // Nearest-rank p50, as for the times.
    if let Some(&v) = rss.get((rss.len() / 2).min(rss.len().saturating_sub(1))) {
        goals.push(Goal {
            section: section.to_string(),
            what: format!("idle RSS after start, p50 of {}", rss.len()),
            measured: mib(v),
            target: format!("< {}", mib(IDLE_RSS_TARGET_KIB)),
            met: v < IDLE_RSS_TARGET_KIB,
        });
    }
    Ok(())
}

pub fn start_problems(section: &str, starts: &[Start]) -> Vec<String> {
    starts
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some(format!("{section}: start {}: {}", i + 1, s.error.as_ref()?)))
        .collect()
}
