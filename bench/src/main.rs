//! `make bench`: starts a release `ironhand` process per backend, drives it with concurrent
//! clients over loopback, and writes throughput, latency percentiles and the server's memory
//! to docs/benchmarks.md with the machine and the date. With `--fake-llm`, it also runs the
//! agent against the fake model (`agent/`): whole runs, history replay and SSE fan-out.
//! Files (`files.rs`) and metered run starts (`metering.rs`) each get a server of their own.
//! The browser in a session's sandbox (`browser.rs`, also alone with `--only browser`) uses
//! the sandbox provider directly, with no server.
//! Baselines (`baseline.rs`) are measured in the same run: a bare axum server next to each
//! backend's HTTP scenarios, bare bubblewrap next to the platform's sandbox start; the
//! report gives each figure with a target as a ratio to its baseline, next to the target.

mod agent;
mod baseline;
mod browser;
mod containers;
mod files;
mod metering;
mod procs;
mod scenarios;
mod sse;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The release server binary.
    #[arg(long, default_value = "target/release/ironhand")]
    server: PathBuf,
    /// Where to write the report.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// PostgreSQL server for the scale-out run (a fresh database is created on it).
    #[arg(long, env = "TEST_DATABASE_URL")]
    postgres: Option<String>,
    #[arg(long, env = "TEST_REDIS_URL")]
    redis: Option<String>,
    /// The `fake-llm` binary (crates/fakes); without it the agent scenarios are skipped.
    #[arg(long)]
    fake_llm: Option<PathBuf>,
    /// Scenario files for the fake model (`bench_run.json`).
    #[arg(long, default_value = "bench/scenarios")]
    scenarios: PathBuf,
    /// Concurrent clients of the agent-run scenario (each run starts sandboxed processes).
    #[arg(long, default_value_t = 8)]
    agent_clients: usize,
    /// Seconds of the agent-run scenario.
    #[arg(long, default_value_t = 10)]
    agent_seconds: u64,
    /// Streams attached to one running session in the fan-out scenario.
    #[arg(long, default_value_t = 32)]
    fanout_subscribers: usize,
    /// MiB streamed by the oversized upload (refused at the 10 MiB limit).
    #[arg(long, default_value_t = 2048)]
    oversized_mib: u64,
    /// Concurrent chats per round of the metered-start scenario.
    #[arg(long, default_value_t = 200)]
    meter_requests: usize,
    /// Runs the free plan allows in that scenario (exactly this many must start).
    #[arg(long, default_value_t = 50)]
    meter_runs_left: usize,
    /// Rounds of the metered-start scenario, each with a new account.
    #[arg(long, default_value_t = 3)]
    meter_rounds: usize,
    /// The bare axum baseline (`bench/src/bin/bare-hello.rs`); by default `bare-hello`
    /// next to this binary.
    #[arg(long)]
    bare_hello: Option<PathBuf>,
    /// Runs of bare bubblewrap per user (root, the sandbox user) in the sandbox baseline.
    #[arg(long, default_value_t = 200)]
    bwrap_runs: usize,
    /// Fresh sessions, one after another, in the platform's sandbox start row (through the
    /// server, with the fake model).
    #[arg(long, default_value_t = 50)]
    server_sandbox_runs: usize,
    /// Server starts per backend in the start-to-ready rows (the first on empty data).
    #[arg(long, default_value_t = 5)]
    server_starts: usize,
    /// Run only this section and replace it in `--out`, keeping the rest of the report.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Fresh sessions per provider in the sandbox start rows.
    #[arg(long, default_value_t = 20)]
    sandbox_starts: usize,
    /// Fresh sessions per URL in the browser's cold rows.
    #[arg(long, default_value_t = 10)]
    browser_cold: usize,
    /// Navigations per URL in the browser's warm rows.
    #[arg(long, default_value_t = 30)]
    browser_warm: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// The browser in the sandbox (`bench/src/browser.rs`): no server, no database.
    Browser,
    /// Sandbox starts with bubblewrap and in containers, and workspace snapshots
    /// (`bench/src/containers.rs`): no server, no database.
    Sandboxes,
}

/// Sessions of each user in the `GET /sessions` scenario.
pub(crate) const SESSIONS_PER_USER: usize = 20;

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Killed outright, a server would leave its sandboxes' workspaces mounted, and every
        // later sandbox start (and bare bubblewrap run) slower: the mounts are copied into
        // each new mount namespace. Whatever it still left is unmounted.
        procs::stop(&mut self.child, Duration::from_secs(10));
        procs::unmount_under(self._dir.path());
    }
}

impl Server {
    fn rss_kib(&self) -> Option<u64> {
        procs::rss_kib(self.child.id())
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Spawns the server on `data_dir` (which the caller keeps) and `port`; returns at once.
fn spawn(
    args: &Args,
    env: &[(&str, String)],
    config: Option<&Path>,
    data_dir: &Path,
    port: u16,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&args.server);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IRONHAND_DATA_DIR", data_dir)
        .env("IRONHAND_ADMIN_BIND", "")
        .env("IRONHAND__RATE_LIMITS__ENABLED", "false")
        .env("IRONHAND__SERVER__MAX_STREAMS_PER_USER", "10000")
        .env("RUST_LOG", "error")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.spawn()
        .with_context(|| format!("could not start {}", args.server.display()))
}

async fn start(
    args: &Args,
    env: &[(&str, String)],
    config: Option<&Path>,
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    // The sandbox's unprivileged user must be able to traverse the data dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let port = free_port()?;
    let child = spawn(args, env, config, dir.path(), port)?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/api/v1/health", server.base))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server never became healthy")
}

struct Outcome {
    name: &'static str,
    rss_after_kib: u64,
    requests: usize,
    errors: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// Seconds the scenario ran, and the CPU seconds (user + system) the bench process (the
    /// client) and the server process used meanwhile.
    elapsed: f64,
    client_cpu: f64,
    server_cpu: f64,
    /// Bare axum's req/s in the turns alternating with this scenario's (see [`paired`]).
    bare_alongside: Option<f64>,
}

/// What `clients` loops of a request did against one process in one stretch of time, with
/// the CPU the bench process (the client) and that process used meanwhile.
#[derive(Default)]
struct Slice {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: f64,
    client_cpu: f64,
    server_cpu: f64,
}

impl Slice {
    fn add(&mut self, other: Slice) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.client_cpu += other.client_cpu;
        self.server_cpu += other.server_cpu;
    }

    fn outcome(mut self, name: &'static str, server: u32) -> Outcome {
        let all = &mut self.latencies;
        all.sort();
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Outcome {
            rss_after_kib: procs::rss_kib(server).unwrap_or(0),
            name,
            requests: all.len(),
            errors: self.errors,
            per_sec: all.len() as f64 / self.elapsed.max(f64::EPSILON),
            p50: pct(0.50),
            p99: pct(0.99),
            elapsed: self.elapsed,
            client_cpu: self.client_cpu,
            server_cpu: self.server_cpu,
            bare_alongside: None,
        }
    }
}

/// `clients` loops of `request` against the process `server` for `duration`; each call
/// returns whether it succeeded.
async fn slice<F, Fut>(server: u32, clients: usize, duration: Duration, request: &Arc<F>) -> Slice
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let cpu = || {
        (
            procs::cpu(std::process::id()).map_or(0.0, |c| c.own),
            procs::cpu(server).map_or(0.0, |c| c.own),
        )
    };
    let (client_before, server_before) = cpu();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = request(client).await;
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut out = Slice::default();
    for t in tasks {
        if let Ok((l, e)) = t.await {
            out.latencies.extend(l);
            out.errors += e;
        }
    }
    out.elapsed = started.elapsed().as_secs_f64();
    let (client_after, server_after) = cpu();
    out.client_cpu = client_after - client_before;
    out.server_cpu = server_after - server_before;
    out
}

/// Runs `clients` loops of `request` for `seconds` against the process `server`.
async fn load<F, Fut>(
    name: &'static str,
    server: u32,
    clients: usize,
    seconds: u64,
    request: F,
) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    slice(server, clients, Duration::from_secs(seconds), &request)
        .await
        .outcome(name, server)
}

/// Like [`load`], in turns of one second with bare axum's `GET /` (`bare`, on the process
/// `bare_pid`), `seconds` each: both see the same load from whatever else the machine runs.
/// The outcome is the scenario's, with bare axum's req/s alongside it.
async fn paired<F, Fut, B, BFut>(
    name: &'static str,
    server: u32,
    clients: usize,
    seconds: u64,
    request: F,
    bare_pid: u32,
    bare: &Arc<B>,
) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
    B: Fn(usize) -> BFut + Send + Sync + 'static,
    BFut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let (mut mine, mut theirs) = (Slice::default(), Slice::default());
    for _ in 0..seconds {
        theirs.add(slice(bare_pid, clients, Duration::from_secs(1), bare).await);
        mine.add(slice(server, clients, Duration::from_secs(1), &request).await);
    }
    let bare_per_sec = theirs.latencies.len() as f64 / theirs.elapsed.max(f64::EPSILON);
    let mut outcome = mine.outcome(name, server);
    outcome.bare_alongside = Some(bare_per_sec);
    outcome
}

pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Value,
    token: Option<&str>,
) -> anyhow::Result<Value> {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: Value = req.send().await?.json().await?;
    if v["code"] != json!(0) {
        bail!("{url}: {v}");
    }
    Ok(v)
}

struct BackendResult {
    outcomes: Vec<Outcome>,
    agent: Option<agent::Report>,
    sandbox: Option<anyhow::Result<baseline::SandboxStarts>>,
    idle_rss: u64,
    peak_rss: u64,
}

async fn run_backend(
    args: &Args,
    label: &str,
    env: &[(&str, String)],
    with_agent: bool,
) -> anyhow::Result<BackendResult> {
    let server = start(args, env, None).await?;
    let base = server.base.clone();
    let idle_rss = server.rss_kib().unwrap_or(0);
    eprintln!("{label}: started, RSS {idle_rss} KiB");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;

    // One account per client, with a token pair each.
    let mut tokens = Vec::new();
    for i in 0..args.clients {
        let r = post(
            &client,
            &format!("{base}/api/v1/auth/register"),
            json!({"fullname": "Bench User", "email": format!("bench{i}@example.com"), "password": "bench password"}),
            None,
        )
        .await?;
        tokens.push((
            r["data"]["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            r["data"]["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    let access: Arc<Vec<String>> = Arc::new(tokens.iter().map(|t| t.0.clone()).collect());
    let refresh: Arc<Vec<std::sync::Mutex<String>>> = Arc::new(
        tokens
            .iter()
            .map(|t| std::sync::Mutex::new(t.1.clone()))
            .collect(),
    );
    let mut outcomes = Vec::new();
    let pid = server.child.id();

    // The baseline first: bare axum with the same client and concurrency, then with twice
    // the clients (a client of its own, so its pool keeps every connection). It stays up:
    // each scenario runs in turns with it.
    let bare = baseline::Bare::start(&baseline::bare_binary(args)).await?;
    let bare_pid = bare.pid();
    let bare_get = |c: reqwest::Client| {
        let b = bare.base.clone();
        move |_: usize| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                c.get(format!("{b}/"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        }
    };
    outcomes.push(
        load(
            baseline::BARE,
            bare_pid,
            args.clients,
            args.seconds,
            bare_get(client.clone()),
        )
        .await,
    );
    let twice = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    outcomes.push(
        load(
            baseline::BARE_CHECK,
            bare_pid,
            args.clients * 2,
            args.seconds,
            bare_get(twice),
        )
        .await,
    );
    let bare_request = Arc::new(bare_get(client.clone()));

    let (c, b) = (client.clone(), base.clone());
    outcomes.push(
        paired(
            "GET /health",
            pid,
            args.clients,
            args.seconds,
            move |_| {
                let (c, b) = (c.clone(), b.clone());
                async move {
                    c.get(format!("{b}/api/v1/health"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            },
            bare_pid,
            &bare_request,
        )
        .await,
    );
    let (c, b, a) = (client.clone(), base.clone(), access.clone());
    outcomes.push(
        paired(
            "GET /auth/me (JWT, denylist, user lookup)",
            pid,
            args.clients,
            args.seconds,
            move |i| {
                let (c, b, t) = (c.clone(), b.clone(), a[i].clone());
                async move {
                    c.get(format!("{b}/api/v1/auth/me"))
                        .bearer_auth(t)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            },
            bare_pid,
            &bare_request,
        )
        .await,
    );
    // Every user gets its sessions (no runs); one list is checked, then only the status.
    let mut creating = Vec::new();
    for t in access.iter() {
        let (c, b, t) = (client.clone(), base.clone(), t.clone());
        creating.push(tokio::spawn(async move {
            for _ in 0..SESSIONS_PER_USER {
                agent::new_session(&c, &b, &t).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in creating {
        task.await??;
    }
    let listed: Value = client
        .get(format!("{base}/api/v1/sessions"))
        .bearer_auth(&access[0])
        .send()
        .await?
        .json()
        .await?;
    let n = listed["data"]["sessions"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        n == SESSIONS_PER_USER,
        "GET /sessions listed {n} sessions, not {SESSIONS_PER_USER}"
    );
    const _: () = assert!(SESSIONS_PER_USER == 20, "the scenario's name says 20");
    let (c, b, a) = (client.clone(), base.clone(), access.clone());
    outcomes.push(
        paired(
            "GET /sessions (a user with 20 sessions; JWT, denylist, list query)",
            pid,
            args.clients,
            args.seconds,
            move |i| {
                let (c, b, t) = (c.clone(), b.clone(), a[i].clone());
                async move {
                    c.get(format!("{b}/api/v1/sessions"))
                        .bearer_auth(t)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            },
            bare_pid,
            &bare_request,
        )
        .await,
    );
    let (c, b, r) = (client.clone(), base.clone(), refresh.clone());
    outcomes.push(
        paired(
            "POST /auth/refresh (one transaction, 3 writes)",
            pid,
            args.clients,
            args.seconds,
            move |i| {
                let (c, b, r) = (c.clone(), b.clone(), r.clone());
                async move {
                    let current = r[i].lock().map(|g| g.clone()).unwrap_or_default();
                    match post(
                        &c,
                        &format!("{b}/api/v1/auth/refresh"),
                        json!({"refresh_token": current}),
                        None,
                    )
                    .await
                    {
                        Ok(v) => {
                            if let (Ok(mut g), Some(next)) =
                                (r[i].lock(), v["data"]["refresh_token"].as_str())
                            {
                                *g = next.to_string();
                            }
                            true
                        }
                        Err(_) => false,
                    }
                }
            },
            bare_pid,
            &bare_request,
        )
        .await,
    );
    let (c, b) = (client.clone(), base.clone());
    outcomes.push(
        paired("POST /auth/login (argon2id 19 MiB, t=2)", pid, args.clients, args.seconds, move |i| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                post(&c, &format!("{b}/api/v1/auth/login"), json!({"email": format!("bench{i}@example.com"), "password": "bench password"}), None)
                    .await
                    .is_ok()
            }
        }, bare_pid, &bare_request)
        .await,
    );
    drop(bare);
    // Before the agent scenarios, with no sandbox alive yet.
    let sandbox = if with_agent {
        eprintln!("{label}: sandbox starts through the server");
        Some(baseline::sandbox_starts(&client, &base, pid, label, args.server_sandbox_runs).await)
    } else {
        None
    };
    let agent = if with_agent {
        Some(agent_scenarios(args, &server, &client, label).await?)
    } else {
        None
    };
    let peak_rss = server.rss_kib().unwrap_or(0);
    eprintln!("{label}: done");
    Ok(BackendResult {
        outcomes,
        agent,
        sandbox,
        idle_rss,
        peak_rss,
    })
}

async fn agent_scenarios(
    args: &Args,
    server: &Server,
    client: &reqwest::Client,
    label: &str,
) -> anyhow::Result<agent::Report> {
    let ctx = agent::Ctx {
        client: client.clone(),
        base: server.base.clone(),
        server_pid: server.child.id(),
        label: label.to_string(),
    };
    let tokens = agent::register(&ctx, args.agent_clients.max(2)).await?;
    let mut report = agent::Report::default();
    // One client alone first: the floor that the loaded numbers compare with.
    for clients in [1, args.agent_clients.max(1)] {
        eprintln!("{label}: agent runs, {clients} client(s)");
        let seconds = if clients == 1 {
            args.seconds
        } else {
            args.agent_seconds
        };
        report
            .runs
            .push(agent::runs(&ctx, &tokens[..clients], seconds).await);
    }
    eprintln!("{label}: history replay");
    if let Err(e) = agent::history(&ctx, &mut report, &tokens[0], args.clients, args.seconds).await
    {
        eprintln!("{label}: history replay failed: {e:#}");
        report.failures.push(format!("history replay: {e:#}"));
    }
    eprintln!("{label}: SSE fan-out");
    if let Err(e) = agent::fanout(&ctx, &mut report, &tokens[1], args.fanout_subscribers).await {
        eprintln!("{label}: fan-out failed: {e:#}");
        report.failures.push(format!("SSE fan-out: {e:#}"));
    }
    Ok(report)
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{model}, {cores} cores, {mem} RAM")
}

fn agent_intro(args: &Args) -> String {
    format!(
        "The agent scenarios (`bench/src/agent/`) run the real worker, agent loop, event log, \
bus and bubblewrap sandbox against `fake-llm`, an OpenAI-compatible stand-in on loopback that \
streams scripted answers at once. Model time is therefore zero: what is measured is the \
platform's own cost of a run, which a real model's seconds per answer would dwarf. Billing \
limits are not enforced on this server (the default): runs are counted, never refused.

- **Agent runs, end to end**: one client for {secs_all} s (the floor), then {clients} clients \
for {secs} s, each looping `PUT /sessions`, \
`POST /sessions/{{id}}/chat` with `[scenario:bench_run] …` and reading the SSE stream to `done` \
(`bench/scenarios/bench_run.json`: a one-step plan, one sandboxed `echo hi`, `complete_step`, \
`update_plan`, a summary: 5 model requests). *Run* is the whole loop; *first event* is from the \
POST to the first SSE event (the user's message, stored before the stream opens); *first agent \
event* is from the POST to the second event (the title: a worker claimed the run and the model's \
first answer is in). Every run is a new session, so every run starts a new sandbox, and sandboxes \
stay up until their idle timeout (30 min) or until a start needs room: a user has at most 4 live \
sandboxes and the server 64 (the defaults), so from a client's fifth run on, its start first \
stops that user's longest-idle sandbox. *Sandboxes alive* counts the server's `bwrap` \
children after the row (so far in this server's life); *their processes* are all the processes \
the server started (bubblewrap, the shells, slirp4netns for sandbox networks) with their memory.
- **History replay**: one session holds a run of {tools} `shell_exec` calls ({steps} steps, \
generated by `bench/src/scenarios.rs`); {clients_all} clients for {secs_all} s attach with \
`POST /chat {{}}` (replays every event and ends, since nothing runs) or read \
`GET /sessions/{{id}}`. Each `shell_exec` result event carries that command's console record \
(prompt, command, output); the shell's whole history is only in the `/shell` view.
- **SSE fan-out**: one run of {notes} paced `message_notify_user` calls, watched by its owner's \
stream plus {subs} streams attached with `POST /chat {{}}` while it runs. *Lag* is how much later \
than the first of them a stream received an event; *spread* is first-to-last per event. Client \
and server share the 2 cores, so client scheduling is in these numbers too.
",
        clients = args.agent_clients,
        secs = args.agent_seconds,
        tools = scenarios::HISTORY_STEPS * scenarios::HISTORY_CALLS_PER_STEP,
        steps = scenarios::HISTORY_STEPS,
        clients_all = args.clients,
        secs_all = args.seconds,
        notes = scenarios::FANOUT_STEPS * scenarios::FANOUT_CALLS_PER_STEP,
        subs = args.fanout_subscribers,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Dropping `bench` on a signal drops the server and fake-model guards, which kill them.
    tokio::select! {
        result = bench(args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    if args.only == Some(Only::Browser) {
        return only_browser(&args).await;
    }
    if args.only == Some(Only::Sandboxes) {
        return only_sandboxes(&args).await;
    }
    // First, before any other child of this process: its children's CPU counters time it.
    eprintln!("baseline: bare bubblewrap");
    let runs = args.bwrap_runs;
    let bwrap = tokio::task::spawn_blocking(move || baseline::bwrap_baseline(runs)).await?;
    let mut report = String::new();
    let date = time::OffsetDateTime::now_utc().date();
    writeln!(report, "# Benchmarks\n")?;
    writeln!(
        report,
        "Written by `make bench` (`bench/src/main.rs`): a release `ironhand` process per backend, driven over loopback by {} concurrent clients for {} s per scenario. Client and server share the machine, so the numbers are a floor, not a ceiling. Rate limits are off for the run.\n",
        args.clients, args.seconds
    )?;
    // Other work on the machine shows in every number: say how busy it was.
    let load = load_average();
    writeln!(
        report,
        "- Date: {date}\n- Machine: {}\n- Load average when the bench started (1, 5, 15 min): {load}\n",
        machine()
    )?;
    report.push_str(baseline::GOALS_MARKER);
    writeln!(report, "{}", baseline::intro(&args))?;
    writeln!(
        report,
        "Reading the numbers: `/auth/me` is what every authenticated request pays (JWT check, denylist lookup, user read). Refresh is bound by the database's write path (SQLite has one writer; PostgreSQL commits each rotation). Login is bound by argon2id at the configured cost, one hash per core at a time, each in a reused work area, which is why memory stays flat under a login burst.\n"
    )?;

    let llm = match &args.fake_llm {
        Some(binary) => Some(scenarios::FakeLlm::start(binary, &args.scenarios).await?),
        None => None,
    };
    let mut agent_env: Vec<(&str, String)> = Vec::new();
    if let Some(llm) = &llm {
        agent_env = vec![
            ("LLM_BASE_URL", llm.url.clone()),
            ("LLM_MODEL", "fake-model".into()),
            (
                "IRONHAND__AGENT__MAX_CONCURRENT_RUNS",
                args.agent_clients.max(8).to_string(),
            ),
        ];
        writeln!(report, "{}", agent_intro(&args))?;
    }
    writeln!(
        report,
        "The file and metering scenarios start a server of their own per backend (on PostgreSQL with a database of its own). Unlike the servers above, these keep the rate limiter on, with budgets far above what the clients send, so its cost is in their numbers.\n\n{}{}",
        files::intro(&args),
        metering::intro(&args)
    )?;

    let mut backends: Vec<(&str, Vec<(&str, String)>)> =
        vec![("SQLite, in-process limiter and denylist", vec![])];
    if let (Some(pg), Some(redis)) = (&args.postgres, &args.redis) {
        let db = ironhand_db::testing::fresh_postgres_database(pg)
            .await
            .map_err(anyhow::Error::msg)?;
        backends.push((
            "PostgreSQL + Redis",
            vec![
                ("DATABASE_URL", db),
                ("REDIS_URL", redis.clone()),
                (
                    "IRONHAND__REDIS__KEY_PREFIX",
                    format!("ironhand-bench:{}:", uuid::Uuid::new_v4().simple()),
                ),
            ],
        ));
    }
    bwrap.write(&mut report)?;
    let mut problems = bwrap.problems();
    let mut goals = Vec::new();
    let mut sqlite_shares: Option<baseline::Shares> = None;
    for (label, env) in &mut backends {
        let plain = env.clone();
        env.extend(agent_env.iter().cloned());
        // Starts first, while nothing else runs, on data of their own.
        eprintln!("{label}: server starts");
        let starts_env = own_database(&args, &plain).await?;
        let starts = baseline::startups(&args, &starts_env, args.server_starts).await?;
        problems.extend(baseline::start_problems(label, &starts));
        let BackendResult {
            outcomes,
            agent,
            sandbox,
            idle_rss: idle,
            peak_rss: peak,
        } = run_backend(&args, label, env, llm.is_some()).await?;
        writeln!(report, "## {label}\n")?;
        let shares = baseline::http_table(
            &mut report,
            label,
            &outcomes,
            sqlite_shares.as_ref(),
            &mut goals,
        )?;
        sqlite_shares.get_or_insert(shares);
        baseline::write_starts(&mut report, label, &starts, &mut goals)?;
        match sandbox {
            Some(Ok(s)) => {
                problems.extend(s.problems(label));
                s.write(&mut report, label, &bwrap, &mut goals)?;
            }
            Some(Err(e)) => {
                problems.push(format!("{label}: sandbox starts: {e:#}"));
                writeln!(report, "- Not measured: sandbox starts: {e:#}\n")?;
            }
            None => {}
        }
        if let Some(agent) = agent {
            agent.write(&mut report)?;
        }
        writeln!(
            report,
            "Server memory (RSS): {:.1} MiB after start, {:.1} MiB after the run{}.\n",
            idle as f64 / 1024.0,
            peak as f64 / 1024.0,
            if llm.is_some() {
                " (all of the above, sandboxes not included)"
            } else {
                ""
            }
        )?;
        let mut files_env = own_database(&args, &plain).await?;
        files_env.extend(files::env());
        match files::run(&args, label, &files_env).await {
            Ok(files) => {
                problems.extend(files.problems(label));
                files.write(&mut report)?;
            }
            Err(e) => {
                problems.push(format!("{label}: file scenarios: {e:#}"));
                writeln!(report, "- Not measured: file scenarios: {e:#}\n")?;
            }
        }
        let mut meter_env = own_database(&args, &plain).await?;
        meter_env.extend(metering::env());
        match metering::run(&args, label, &meter_env).await {
            Ok(metering) => {
                problems.extend(metering.problems.iter().cloned());
                metering.write(&mut report)?;
            }
            Err(e) => {
                problems.push(format!("{label}: metered starts: {e:#}"));
                writeln!(report, "- Not measured: metered starts: {e:#}\n")?;
            }
        }
    }
    if let Some(llm) = &llm {
        writeln!(
            report,
            "The fake model process ended the bench at {:.1} MiB RSS (it keeps every request it was sent).\n",
            llm.rss_kib() as f64 / 1024.0
        )?;
    }
    // Last, with the servers gone: Chromium starts want the machine's cores.
    eprintln!("browser: in the sandbox");
    let (section, browser_problems) =
        browser::section(&browser::run(args.browser_cold, args.browser_warm).await);
    report.push_str(&section);
    problems.extend(browser_problems);
    eprintln!("sandboxes: bubblewrap and containers");
    let (section, sandbox_problems) = sandboxes_section(&args).await;
    report.push('\n');
    report.push_str(&section);
    problems.extend(sandbox_problems);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let report = report.replacen(baseline::GOALS_MARKER, &baseline::goals_table(&goals), 1);
    std::fs::write(&args.out, &report)?;
    println!("{report}");
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("ERROR: {problem}");
        }
        bail!(
            "{} problem(s) above (also in {}): they are bugs, not noise",
            problems.len(),
            args.out.display()
        );
    }
    Ok(())
}

/// The sandboxes section and its problems.
async fn sandboxes_section(args: &Args) -> (String, Vec<String>) {
    let binary = containers::daemon_binary(&args.server);
    match containers::run(&binary, args.sandbox_starts).await {
        Ok(report) => {
            let mut out = String::new();
            let _ = report.write(&mut out);
            (out, report.problems())
        }
        Err(e) => (
            format!("{}\n\nNot measured: {e:#}\n", containers::HEADING),
            vec![format!("sandboxes: {e:#}")],
        ),
    }
}

/// `--only sandboxes`: that section alone, replacing its part of `--out`.
async fn only_sandboxes(args: &Args) -> anyhow::Result<()> {
    let (section, problems) = sandboxes_section(args).await;
    let existing = std::fs::read_to_string(&args.out).unwrap_or_default();
    std::fs::write(&args.out, containers::splice(&existing, &section))?;
    println!("{section}");
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("ERROR: {problem}");
        }
        bail!("{} problem(s) above", problems.len());
    }
    Ok(())
}

/// `--only browser`: the browser section alone, replacing its part of `--out` (or appended
/// to it); the other sections keep their numbers.
async fn only_browser(args: &Args) -> anyhow::Result<()> {
    let (section, problems) =
        browser::section(&browser::run(args.browser_cold, args.browser_warm).await);
    let existing = std::fs::read_to_string(&args.out).unwrap_or_default();
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, browser::splice(&existing, &section))?;
    println!("{section}");
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("ERROR: {problem}");
        }
        bail!(
            "{} problem(s) above (also in {})",
            problems.len(),
            args.out.display()
        );
    }
    Ok(())
}

/// A backend's settings for one more server: on PostgreSQL a database and a Redis key
/// prefix of its own, so no server sees another's runs, files or keys.
async fn own_database<'a>(
    args: &Args,
    env: &[(&'a str, String)],
) -> anyhow::Result<Vec<(&'a str, String)>> {
    let mut env = env.to_vec();
    if let Some(pg) = args
        .postgres
        .as_deref()
        .filter(|_| env.iter().any(|(k, _)| *k == "DATABASE_URL"))
    {
        let db = ironhand_db::testing::fresh_postgres_database(pg)
            .await
            .map_err(anyhow::Error::msg)?;
        for (k, v) in &mut env {
            match *k {
                "DATABASE_URL" => *v = db.clone(),
                "IRONHAND__REDIS__KEY_PREFIX" => {
                    *v = format!("ironhand-bench:{}:", uuid::Uuid::new_v4().simple());
                }
                _ => {}
            }
        }
    }
    Ok(env)
}
