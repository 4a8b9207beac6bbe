//! The agent scenarios: whole runs end to end against the fake model, replaying a long
//! history, and one run's events fanned out to many subscribers.

use crate::procs::{self, Sandboxes};
use crate::scenarios::{HISTORY_CALLS_PER_STEP, HISTORY_STEPS};
use crate::sse::{self, SseEvent, truncate};
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) mod report;

/// Longest a single run, replay or request may take before it counts as an error.
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Ctx {
    pub client: reqwest::Client,
    pub base: String,
    pub server_pid: u32,
    /// Backend label, so conversations (keyed by the first message) never repeat.
    pub label: String,
}

/// What one iteration measured.
#[derive(Default, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) total: Duration,
    pub(crate) first_event: Duration,
    pub(crate) first_agent_event: Duration,
    pub(crate) events: usize,
    pub(crate) bytes: usize,
}

pub(crate) struct Driven {
    pub(crate) samples: Vec<Sample>,
    pub(crate) errors: usize,
    pub(crate) error_kinds: BTreeMap<String, usize>,
    pub(crate) elapsed: f64,
}

pub(crate) fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

pub(crate) fn percentiles(
    samples: &[Sample],
    field: impl Fn(&Sample) -> Duration,
) -> (Duration, Duration) {
    let mut v: Vec<Duration> = samples.iter().map(field).collect();
    v.sort();
    (pct(&v, 0.50), pct(&v, 0.99))
}

/// `clients` loops of `iteration(client, n)` for `seconds`; failures are counted apart and
/// left out of the percentiles.
pub(crate) async fn drive<F, Fut>(clients: usize, seconds: u64, iteration: F) -> Driven
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Sample>> + Send,
{
    let iteration = Arc::new(iteration);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let iteration = iteration.clone();
        tasks.push(tokio::spawn(async move {
            let (mut samples, mut errors) = (Vec::new(), Vec::new());
            let mut n = 0;
            while Instant::now() < deadline {
                match tokio::time::timeout(TIMEOUT, iteration(client, n)).await {
                    Ok(Ok(sample)) => samples.push(sample),
                    Ok(Err(e)) => errors.push(truncate(&format!("{e:#}"), 160)),
                    Err(_) => errors.push(format!("no answer within {TIMEOUT:?}")),
                }
                n += 1;
            }
            (samples, errors)
        }));
    }
    let mut driven = Driven {
        samples: Vec::new(),
        errors: 0,
        error_kinds: BTreeMap::new(),
        elapsed: 0.0,
    };
    for task in tasks {
        if let Ok((samples, errors)) = task.await {
            driven.samples.extend(samples);
            driven.errors += errors.len();
            for e in errors {
                *driven.error_kinds.entry(e).or_default() += 1;
            }
        }
    }
    driven.elapsed = started.elapsed().as_secs_f64();
    driven
}

pub(crate) async fn new_session(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<String> {
    let v: Value = client
        .put(format!("{base}/api/v1/sessions"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    v["data"]["session_id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("PUT /sessions answered {v}"))
}

/// Checks that a run's events end in `done` without an `error` event.
fn check_run(events: &[SseEvent]) -> anyhow::Result<()> {
    if let Some(e) = events.iter().find(|e| e.event == "error") {
        bail!("error event: {}", e.json()["error"]);
    }
    ensure!(
        events.last().is_some_and(|e| e.event == "done"),
        "the stream ended without done after {} events",
        events.len()
    );
    Ok(())
}

/// One account per client; registration hashes a password once per client.
pub async fn register(ctx: &Ctx, clients: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::new();
    for i in 0..clients {
        let r = crate::post(
            &ctx.client,
            &format!("{}/api/v1/auth/register", ctx.base),
            json!({"fullname": "Agent Bench", "email": format!("agent{i}@example.com"), "password": "bench password"}),
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
    Ok(tokens)
}

/// One row of the agent-run table.
pub struct RunRow {
    clients: usize,
    runs: Driven,
    rss_kib: u64,
    sandboxes: Sandboxes,
}

#[derive(Default)]
pub struct Report {
    pub runs: Vec<RunRow>,
    history: Option<History>,
    fanout: Option<Fanout>,
    /// Scenarios that could not be measured, with why.
    pub failures: Vec<String>,
}

/// Scenario 1: every client loops PUT /sessions, POST chat, stream to `done`.
pub async fn runs(ctx: &Ctx, tokens: &[String], seconds: u64) -> RunRow {
    let (client, base, label) = (ctx.client.clone(), ctx.base.clone(), ctx.label.clone());
    let tokens: Arc<Vec<String>> = Arc::new(tokens.to_vec());
    let clients = tokens.len();
    let runs = drive(clients, seconds, move |i, n| {
        let (client, base, token) = (client.clone(), base.clone(), tokens[i].clone());
        let text = format!(
            "[scenario:bench_run] {label} client {i} run {n} {}",
            uuid::Uuid::new_v4().simple()
        );
        async move {
            let t0 = Instant::now();
            let session = new_session(&client, &base, &token).await?;
            let t1 = Instant::now();
            let mut stream =
                sse::chat(&client, &base, &token, &session, &json!({"message": text})).await?;
            let events = stream.collect(TIMEOUT).await?;
            check_run(&events)?;
            ensure!(
                events.iter().any(|e| {
                    let data = e.json();
                    e.event == "tool"
                        && data["status"] == "called"
                        && data["content"]["console"][0]["output"] == "hi\n"
                }),
                "no shell_exec result with `hi`"
            );
            let since = |e: Option<&SseEvent>| e.map(|e| e.arrived - t1).unwrap_or_default();
            Ok(Sample {
                total: t0.elapsed(),
                first_event: since(events.first()),
                first_agent_event: since(events.get(1)),
                events: events.len(),
                bytes: stream.bytes,
            })
        }
    })
    .await;
    RunRow {
        clients,
        runs,
        rss_kib: procs::rss_kib(ctx.server_pid).unwrap_or(0),
        sandboxes: procs::sandboxes(ctx.server_pid),
    }
}

/// The events in a `GET /sessions/{id}` body, counted without parsing 2 MB of JSON on the
/// client that shares the CPU with the server: each is an object whose first key is `event`
/// (the bytes `{"event":"` cannot occur inside a JSON string, where quotes are escaped).
fn count_events(body: &[u8]) -> usize {
    const KEY: &[u8] = br#"{"event":""#;
    body.windows(KEY.len()).filter(|w| *w == KEY).count()
}

struct History {
    build: Duration,
    events: usize,
    replay: Driven,
    replay_rss_kib: u64,
    get: Driven,
    get_rss_kib: u64,
    clients: usize,
}

/// Scenario 2: one session with a 200-tool-call run, replayed and read by many clients.
pub async fn history(
    ctx: &Ctx,
    report: &mut Report,
    token: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let session = new_session(&ctx.client, &ctx.base, token).await?;
    let text = format!(
        "[scenario:bench_history] {} {}",
        ctx.label,
        uuid::Uuid::new_v4().simple()
    );
    let events = sse::chat(
        &ctx.client,
        &ctx.base,
        token,
        &session,
        &json!({ "message": text }),
    )
    .await?
    .collect(TIMEOUT)
    .await?;
    check_run(&events).context("building the long history")?;
    let build = t0.elapsed();
    let expected = events.len();
    let calls = events
        .iter()
        .filter(|e| e.event == "tool" && e.json()["status"] == "called")
        .count();
    ensure!(
        calls == HISTORY_STEPS * HISTORY_CALLS_PER_STEP,
        "the history run made {calls} tool calls"
    );

    let (client, base) = (ctx.client.clone(), ctx.base.clone());
    let (token, id) = (Arc::new(token.to_string()), Arc::new(session));
    let (t, s) = (token.clone(), id.clone());
    let replay = drive(clients, seconds, move |_, _| {
        let (client, base, token, session) = (client.clone(), base.clone(), t.clone(), s.clone());
        async move {
            let t0 = Instant::now();
            let mut stream = sse::chat(&client, &base, &token, &session, &json!({})).await?;
            let events = stream.collect(TIMEOUT).await?;
            ensure!(
                events.len() == expected,
                "replayed {} of {expected} events",
                events.len()
            );
            Ok(Sample {
                total: t0.elapsed(),
                first_event: events.first().map(|e| e.arrived - t0).unwrap_or_default(),
                events: events.len(),
                bytes: stream.bytes,
                ..Sample::default()
            })
        }
    })
    .await;
    let replay_rss_kib = procs::rss_kib(ctx.server_pid).unwrap_or(0);

    let (client, base) = (ctx.client.clone(), ctx.base.clone());
    let get = drive(clients, seconds, move |_, _| {
        let (client, base, token, session) =
            (client.clone(), base.clone(), token.clone(), id.clone());
        async move {
            let t0 = Instant::now();
            let body = client
                .get(format!("{base}/api/v1/sessions/{session}"))
                .bearer_auth(token.as_str())
                .send()
                .await?
                .bytes()
                .await?;
            ensure!(
                body.starts_with(br#"{"code":0,"#),
                "GET answered {}",
                truncate(&String::from_utf8_lossy(&body), 200)
            );
            let n = count_events(&body);
            ensure!(n == expected, "GET returned {n} of {expected} events");
            Ok(Sample {
                total: t0.elapsed(),
                events: n,
                bytes: body.len(),
                ..Sample::default()
            })
        }
    })
    .await;
    report.history = Some(History {
        build,
        events: expected,
        replay,
        replay_rss_kib,
        get,
        get_rss_kib: procs::rss_kib(ctx.server_pid).unwrap_or(0),
        clients,
    });
    Ok(())
}

struct Fanout {
    subscribers: usize,
    events: usize,
    missing: usize,
    late_attach: usize,
    lag_p50: Duration,
    lag_p99: Duration,
    lag_max: Duration,
    spread_p50: Duration,
    spread_p99: Duration,
    run: Duration,
    rss_kib: u64,
}

/// Scenario 3: one paced run, its owner's stream plus `subscribers` attached streams.
pub async fn fanout(
    ctx: &Ctx,
    report: &mut Report,
    token: &str,
    subscribers: usize,
) -> anyhow::Result<()> {
    let session = new_session(&ctx.client, &ctx.base, token).await?;
    let text = format!(
        "[scenario:bench_fanout] {} {}",
        ctx.label,
        uuid::Uuid::new_v4().simple()
    );
    let t0 = Instant::now();
    let mut owner = sse::chat(
        &ctx.client,
        &ctx.base,
        token,
        &session,
        &json!({ "message": text }),
    )
    .await?;
    let owner = tokio::spawn(async move { owner.collect(TIMEOUT).await });
    let mut watchers = Vec::new();
    for _ in 0..subscribers {
        let (client, base, token, session) = (
            ctx.client.clone(),
            ctx.base.clone(),
            token.to_string(),
            session.clone(),
        );
        watchers.push(tokio::spawn(async move {
            let mut stream = sse::chat(&client, &base, &token, &session, &json!({})).await?;
            let attached = Instant::now();
            Ok::<_, anyhow::Error>((attached, stream.collect(TIMEOUT).await?))
        }));
    }
    let owner_events = owner.await??;
    let run = t0.elapsed();
    check_run(&owner_events).context("the fan-out run")?;
    let mut streams = vec![owner_events];
    let mut attach_times = Vec::new();
    for w in watchers {
        let (attached, events) = w.await??;
        attach_times.push(attached);
        streams.push(events);
    }
    let expected = streams[0].len();
    // Events after the user's message: the planner answers late, so all of them are live.
    let first_live = streams[0]
        .get(1)
        .map(|e| e.arrived)
        .context("no live events")?;
    let late_attach = attach_times.iter().filter(|&&a| a > first_live).count();
    let mut arrivals: HashMap<u64, Vec<Instant>> = HashMap::new();
    let mut missing = 0;
    for s in &streams {
        missing += expected.saturating_sub(s.len());
        for e in s.iter().filter(|e| e.id > 1) {
            arrivals.entry(e.id).or_default().push(e.arrived);
        }
    }
    let (mut lags, mut spreads) = (Vec::new(), Vec::new());
    for times in arrivals.values() {
        let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
            continue;
        };
        lags.extend(times.iter().map(|t| *t - *first));
        spreads.push(*last - *first);
    }
    lags.sort();
    spreads.sort();
    report.fanout = Some(Fanout {
        subscribers: streams.len(),
        events: expected,
        missing,
        late_attach,
        lag_p50: pct(&lags, 0.50),
        lag_p99: pct(&lags, 0.99),
        lag_max: lags.last().copied().unwrap_or_default(),
        spread_p50: pct(&spreads, 0.50),
        spread_p99: pct(&spreads, 0.99),
        run,
        rss_kib: procs::rss_kib(ctx.server_pid).unwrap_or(0),
    });
    Ok(())
}
