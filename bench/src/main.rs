//! `make bench`: starts a release `ironhand` process per backend, drives it with concurrent
//! clients over loopback, and writes throughput, latency percentiles and the server's memory
//! to docs/benchmarks.md with the machine and the date. With `--fake-llm`, it also runs the
//! agent against the fake model (`agent/`): whole runs, history replay and SSE fan-out.
//! Files (`files.rs`) and metered run starts (`metering.rs`) each get a server of their own.
//! The browser in a session's sandbox (`browser.rs`, also alone with `--only browser`) uses
//! the sandbox provider directly, with no server.

mod agent;
mod browser;
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
    /// Run only this section and replace it in `--out`, keeping the rest of the report.
    #[arg(long, value_enum)]
    only: Option<Only>,
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
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

async fn start(
    args: &Args,
    env: &[(&str, String)],
    config: Option<&Path>,
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    // The sandbox's unprivileged user must be able to traverse the data dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let port = free_port()?;
    let mut cmd = Command::new(&args.server);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IRONHAND_DATA_DIR", dir.path())
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
    let child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", args.server.display()))?;
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
}

/// Runs `clients` loops of `request` for `seconds`; each call returns whether it succeeded.
async fn load<F, Fut>(name: &'static str, clients: usize, seconds: u64, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
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
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Outcome {
        rss_after_kib: 0,
        name,
        requests: all.len(),
        errors,
        per_sec: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
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

    let (c, b) = (client.clone(), base.clone());
    outcomes.push(
        load("GET /health", args.clients, args.seconds, move |_| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                c.get(format!("{b}/api/v1/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await,
    );
    if let Some(last) = outcomes.last_mut() {
        last.rss_after_kib = server.rss_kib().unwrap_or(0);
    }
    let (c, b, a) = (client.clone(), base.clone(), access.clone());
    outcomes.push(
        load(
            "GET /auth/me (JWT, denylist, user lookup)",
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
        )
        .await,
    );
    if let Some(last) = outcomes.last_mut() {
        last.rss_after_kib = server.rss_kib().unwrap_or(0);
    }
    let (c, b, r) = (client.clone(), base.clone(), refresh.clone());
    outcomes.push(
        load(
            "POST /auth/refresh (one transaction, 3 writes)",
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
        )
        .await,
    );
    if let Some(last) = outcomes.last_mut() {
        last.rss_after_kib = server.rss_kib().unwrap_or(0);
    }
    let (c, b) = (client.clone(), base.clone());
    outcomes.push(
        load("POST /auth/login (argon2id 19 MiB, t=2)", args.clients, args.seconds, move |i| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                post(&c, &format!("{b}/api/v1/auth/login"), json!({"email": format!("bench{i}@example.com"), "password": "bench password"}), None)
                    .await
                    .is_ok()
            }
        })
        .await,
    );
    if let Some(last) = outcomes.last_mut() {
        last.rss_after_kib = server.rss_kib().unwrap_or(0);
    }
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
stay up until their idle timeout (30 min): *sandboxes alive* counts the server's `bwrap` \
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
    let mut problems = Vec::new();
    for (label, env) in &mut backends {
        let plain = env.clone();
        env.extend(agent_env.iter().cloned());
        let BackendResult {
            outcomes,
            agent,
            idle_rss: idle,
            peak_rss: peak,
        } = run_backend(&args, label, env, llm.is_some()).await?;
        writeln!(report, "## {label}\n")?;
        writeln!(
            report,
            "| scenario | requests | errors | req/s | p50 | p99 | server RSS after |\n|---|---:|---:|---:|---:|---:|---:|"
        )?;
        for o in outcomes {
            writeln!(
                report,
                "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} MiB |",
                o.name,
                o.requests,
                o.errors,
                o.per_sec,
                o.p50.as_secs_f64() * 1000.0,
                o.p99.as_secs_f64() * 1000.0,
                o.rss_after_kib as f64 / 1024.0
            )?;
        }
        writeln!(report)?;
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
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
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
