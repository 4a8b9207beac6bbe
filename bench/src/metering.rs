//! Metered run starts, on a server of their own with billing enforced: a burst of
//! concurrent chats from one user with fewer runs left than chats, on distinct sessions.
//! Exactly as many must start as the plan has runs left; the rest get 402.

use crate::Args;
use crate::agent::pct;
use crate::agent::report::{mib, ms};
use crate::sse::truncate;
use anyhow::{Context, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the scenario's server is started with besides the backend's settings: billing
/// enforced, no worker (runs stay queued, so nothing but the starts uses the CPU), and the
/// rate limiter on with budgets far above the burst.
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("IRONHAND__BILLING__ENFORCE_LIMITS", "true".into()),
        ("IRONHAND__AGENT__EMBEDDED_WORKER", "false".into()),
        ("IRONHAND__RATE_LIMITS__ENABLED", "true".into()),
        ("IRONHAND__RATE_LIMITS__REGISTER", "100000/minute".into()),
        ("IRONHAND__RATE_LIMITS__CHAT_USER", "100000/minute".into()),
        (
            "IRONHAND__RATE_LIMITS__CHAT_SESSION",
            "100000/minute".into(),
        ),
        ("IRONHAND__SERVER__MAX_STREAMS_PER_USER", "100000".into()),
    ]
}

/// The config file: the free plan with `runs` runs a month and room for every start at
/// once (plans are a list, which the environment cannot express).
fn config(runs: usize, concurrent: usize) -> String {
    format!(
        r#"# Written by ironhand-bench for the metered-start scenario.
[billing]
enforce_limits = true
trial_plan = "basic"

[[billing.plans]]
id = "free"
name = "Free"
price_cents = 0
currency = "usd"
monthly_agent_runs_limit = {runs}
max_concurrent_runs = {concurrent}
features = ["{runs} agent runs a month"]

[[billing.plans]]
id = "basic"
name = "Basic"
price_cents = 1900
currency = "usd"
monthly_agent_runs_limit = 1000
max_concurrent_runs = 5
features = ["1,000 agent runs a month"]
"#
    )
}

pub fn intro(args: &Args) -> String {
    format!(
        "- **Metered run starts** (`bench/src/metering.rs`): a server of its own with \
`billing.enforce_limits = true` and, from a config file (`--config`), a free plan of \
{runs} runs a month and {burst} runs at once. Per round, a new account creates {burst} \
sessions, then fires {burst} `POST /sessions/{{id}}/chat` with a message at once, one per \
session. Exactly {runs} must answer 200 (the stream opens) and {refused} 402; the \
subscription must then show {runs} runs used, and {runs} sessions must be `running` (each with \
its queued run). Latency is to the answer's status line. The \
server has no worker (`agent.embedded_worker = false`), so started runs stay queued and only \
the starts are measured; no model is configured.
",
        runs = args.meter_runs_left,
        burst = args.meter_requests,
        refused = args.meter_requests.saturating_sub(args.meter_runs_left),
    )
}

struct Round {
    requests: usize,
    started: usize,
    refused: usize,
    /// Any other answer, by status and message.
    other: BTreeMap<String, usize>,
    /// Runs used, by `GET /billing/subscription` after the burst.
    used: Option<i64>,
    /// Sessions whose status is `running` after the burst (each holds a queued run).
    running: usize,
    wall: Duration,
    all: (Duration, Duration),
    ok_p50: Duration,
    refused_p50: Duration,
    rss_kib: u64,
}

pub struct Report {
    runs_left: usize,
    requests: usize,
    idle_rss_kib: u64,
    rounds: Vec<Round>,
    /// Broken invariants, each a sentence.
    pub problems: Vec<String>,
    pub failures: Vec<String>,
}

pub async fn run(args: &Args, label: &str, env: &[(&str, String)]) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench-billing.toml");
    std::fs::write(
        &file,
        config(args.meter_runs_left, args.meter_requests.max(1)),
    )?;
    let server = crate::start(args, env, Some(&file)).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.meter_requests)
        .build()?;
    let mut report = Report {
        runs_left: args.meter_runs_left,
        requests: args.meter_requests,
        idle_rss_kib: server.rss_kib().unwrap_or(0),
        rounds: Vec::new(),
        problems: Vec::new(),
        failures: Vec::new(),
    };
    eprintln!(
        "{label}: metering server started, RSS {} KiB",
        report.idle_rss_kib
    );
    // Exactly this many of the burst may start.
    let starts = args.meter_runs_left.min(args.meter_requests);
    for round in 0..args.meter_rounds {
        eprintln!("{label}: metered starts, round {}", round + 1);
        match burst(args, &client, &base, &format!("meter{round}-")).await {
            Ok(mut r) => {
                r.rss_kib = server.rss_kib().unwrap_or(0);
                let broken = r.started != starts
                    || r.refused != args.meter_requests - starts
                    || r.used != Some(starts as i64)
                    || r.running != starts;
                if broken {
                    let problem = format!(
                        "{label}, round {}: {} of {} chats started and {} were refused with 402 ({} other answers: {:?}); the subscription shows {} runs used and {} sessions are running; expected exactly {} started, {} refused, {} used and {} running",
                        round + 1,
                        r.started,
                        r.requests,
                        r.refused,
                        r.other.values().sum::<usize>(),
                        r.other,
                        r.used.map_or("no".into(), |u| u.to_string()),
                        r.running,
                        starts,
                        args.meter_requests - starts,
                        starts,
                        starts
                    );
                    eprintln!("ERROR: metering invariant broken: {problem}");
                    report.problems.push(problem);
                }
                report.rounds.push(r);
            }
            Err(e) => {
                eprintln!("{label}: metered starts failed: {e:#}");
                report
                    .failures
                    .push(format!("metered starts, round {}: {e:#}", round + 1));
            }
        }
    }
    eprintln!("{label}: metering done");
    Ok(report)
}

/// One round: a new account, its sessions, then every chat at once.
async fn burst(
    args: &Args,
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
) -> anyhow::Result<Round> {
    let token = crate::files::register(client, base, prefix, 1)
        .await?
        .pop()
        .context("no account")?;
    // Created concurrently, which also leaves a warm connection per chat in the pool.
    let mut tasks = Vec::new();
    for _ in 0..args.meter_requests {
        let (client, base, token) = (client.clone(), base.to_string(), token.clone());
        tasks.push(tokio::spawn(async move {
            crate::agent::new_session(&client, &base, &token).await
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await??);
    }
    let before = subscription(client, base, &token).await?;
    ensure!(
        before["monthly_agent_runs"] == json!(0)
            && before["monthly_agent_runs_limit"] == json!(args.meter_runs_left),
        "the new account's subscription is {before}"
    );

    let gate = Arc::new(tokio::sync::Barrier::new(sessions.len() + 1));
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().cloned().enumerate() {
        let (client, base, token, gate) = (
            client.clone(),
            base.to_string(),
            token.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let t0 = Instant::now();
            let answer = client
                .post(format!("{base}/api/v1/sessions/{session}/chat"))
                .bearer_auth(&token)
                .json(&json!({"message": format!("metered start {i}")}))
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            let latency = t0.elapsed();
            match answer {
                // The stream of a started run is dropped at once: the status is the answer.
                Ok(r) if r.status().as_u16() == 200 => (200, latency, String::new()),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or_default();
                    let what = if status == 402 {
                        v["data"]["reason"].as_str().unwrap_or("").to_string()
                    } else {
                        truncate(v["msg"].as_str().unwrap_or(""), 120)
                    };
                    (status, latency, what)
                }
                Err(e) => (0, latency, truncate(&format!("{e:#}"), 120)),
            }
        }));
    }
    gate.wait().await;
    let t0 = Instant::now();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await?);
    }
    let wall = t0.elapsed();
    let used = subscription(client, base, &token).await?["monthly_agent_runs"].as_i64();
    let mut tasks = Vec::new();
    for session in sessions {
        let (client, base, token) = (client.clone(), base.to_string(), token.clone());
        tasks.push(tokio::spawn(async move {
            let v: Value = client
                .get(format!("{base}/api/v1/sessions/{session}"))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(v["data"]["status"] == json!("running"))
        }));
    }
    let mut running = 0;
    for t in tasks {
        running += usize::from(t.await??);
    }

    let mut round = Round {
        requests: answers.len(),
        started: 0,
        refused: 0,
        other: BTreeMap::new(),
        used,
        running,
        wall,
        all: (Duration::ZERO, Duration::ZERO),
        ok_p50: Duration::ZERO,
        refused_p50: Duration::ZERO,
        rss_kib: 0,
    };
    let (mut all, mut ok, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for (status, latency, what) in answers {
        all.push(latency);
        match (status, what.as_str()) {
            (200, _) => {
                round.started += 1;
                ok.push(latency);
            }
            (402, "run_limit_reached") => {
                round.refused += 1;
                refused.push(latency);
            }
            _ => *round.other.entry(format!("{status} {what}")).or_default() += 1,
        }
    }
    for v in [&mut all, &mut ok, &mut refused] {
        v.sort();
    }
    round.all = (pct(&all, 0.50), pct(&all, 0.99));
    round.ok_p50 = pct(&ok, 0.50);
    round.refused_p50 = pct(&refused, 0.50);
    Ok(round)
}

async fn subscription(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Value> {
    let v: Value = client
        .get(format!("{base}/api/v1/billing/subscription"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    ensure!(v["code"] == json!(0), "GET /billing/subscription: {v}");
    Ok(v["data"].clone())
}

impl Report {
    pub fn write(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "### Metered run starts ({} concurrent chats by one account with {} runs left; a server of its own, {} after start)\n",
            self.requests,
            self.runs_left,
            mib(self.idle_rss_kib)
        )?;
        writeln!(
            out,
            "| round | chats | 200 started | 402 refused | other | runs used after | sessions running after | burst | answers/s | p50 | p99 | 200 p50 | 402 p50 | server RSS after |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        for (i, r) in self.rounds.iter().enumerate() {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                i + 1,
                r.requests,
                r.started,
                r.refused,
                r.other.values().sum::<usize>(),
                r.used.map_or("?".into(), |u| u.to_string()),
                r.running,
                ms(r.wall),
                r.requests as f64 / r.wall.as_secs_f64(),
                ms(r.all.0),
                ms(r.all.1),
                if r.started > 0 {
                    ms(r.ok_p50)
                } else {
                    "–".into()
                },
                if r.refused > 0 {
                    ms(r.refused_p50)
                } else {
                    "–".into()
                },
                mib(r.rss_kib)
            )?;
        }
        writeln!(out)?;
        for (i, r) in self.rounds.iter().enumerate() {
            for (what, n) in r.other.iter().take(5) {
                writeln!(out, "- round {}: {n} × `{}`", i + 1, what.replace('`', "'"))?;
            }
        }
        for problem in &self.problems {
            writeln!(out, "- **Invariant broken**: {problem}")?;
        }
        for failure in &self.failures {
            writeln!(out, "- Not measured: {failure}")?;
        }
        if !out.ends_with("\n\n") {
            writeln!(out)?;
        }
        Ok(())
    }
}
