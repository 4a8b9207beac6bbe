//! Runs as jobs: reconnecting, one run at a time, idempotent retries, stop, limits,
//! several instances, restarts and retention.

use super::{AgentApp, agent_settings, call, complete, one_step, trace};
use crate::sse::{SseEvent, names};
use crate::support::{Backend, TestApp};
use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios, Scenario};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    a_client_that_reconnects_with_its_cursor_gets_every_remaining_event_exactly_once,
    one_run_at_a_time_retries_are_idempotent_and_stop_ends_the_run,
    chat_bursts_are_limited_before_any_stream_opens,
    retention_deletes_idle_sessions_once_across_instances,
    a_restart_hands_the_run_back_and_the_next_process_finishes_it,
    a_tool_call_cut_by_a_restart_is_closed_as_interrupted_when_the_run_resumes,
    deleting_a_running_session_stops_its_run,
    stopping_a_run_kills_the_command_it_was_waiting_on,
);

/// A one-step task whose executor answers slowly (each answer `delay_ms` late).
fn slow_task(a: &AgentApp, steps: usize, delay_ms: u64) -> String {
    let mut executor: Vec<Value> = (0..steps)
        .map(|i| {
            let mut c = call("shell_exec", json!({"id": "main", "exec_dir": "/home/ubuntu", "command": format!("echo step {i}")}));
            c["delay_ms"] = json!(delay_ms);
            c
        })
        .collect();
    executor.push(complete("all echoed"));
    a.script(one_step(executor, "Echoed everything."), "echo slowly")
}

async fn a_client_that_reconnects_with_its_cursor_gets_every_remaining_event_exactly_once(
    backend: Backend,
) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let task = slow_task(&a, 4, 300);
    let mut stream = a
        .app
        .chat(&a.user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    let mut seen: Vec<SseEvent> = Vec::new();
    for _ in 0..5 {
        seen.push(stream.next().await.expect("event"));
    }
    drop(stream); // the client goes away; the run goes on
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Reconnect with the cursor in the body…
    let cursor = seen.last().and_then(|e| e.id.clone()).expect("id");
    let mut stream = a
        .app
        .chat(&a.user.access, &session, json!({"event_id": cursor}))
        .await
        .expect("attach");
    for _ in 0..3 {
        seen.push(stream.next().await.expect("event"));
    }
    drop(stream);
    // …and once more with the Last-Event-ID header, as EventSource does.
    let cursor = seen.last().and_then(|e| e.id.clone()).expect("id");
    let rest = a
        .app
        .chat_with_headers(
            &a.user.access,
            &session,
            json!({}),
            &[("Last-Event-ID", &cursor)],
        )
        .await
        .expect("attach")
        .collect()
        .await;
    seen.extend(rest);
    assert_eq!(names(&seen).last().map(String::as_str), Some("done"));
    let history = a.history(&session).await;
    let stored: Vec<(String, Value)> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or("").to_string(),
                e["data"].clone(),
            )
        })
        .collect();
    let streamed: Vec<(String, Value)> = seen
        .iter()
        .map(|e| (e.event.clone(), e.data.clone()))
        .collect();
    assert_eq!(
        streamed, stored,
        "every event once, in order, across three connections"
    );
    // Attaching after the end replays and ends; from the last id there is nothing more.
    let last = seen.last().and_then(|e| e.id.clone()).expect("id");
    let after = a
        .app
        .chat(&a.user.access, &session, json!({"event_id": last}))
        .await
        .expect("attach")
        .collect()
        .await;
    assert!(after.is_empty(), "{:?}", names(&after));
}

async fn one_run_at_a_time_retries_are_idempotent_and_stop_ends_the_run(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let task = a.script(
        json!({"responses": [
            {"tool_calls": [{"name": "create_plan", "arguments": {"title": "Long", "goal": "g", "language": "en", "steps": [{"id": "1", "description": "wait"}]}}]},
            {"fault": "delay", "ms": 60000},
            {"content": "never"}
        ]}),
        "take your time",
    );
    let body = json!({"message": task, "client_message_id": "msg-1"});
    let mut first = a
        .app
        .chat(&a.user.access, &session, body.clone())
        .await
        .expect("stream");
    let opening = first.until("step").await;
    assert_eq!(
        trace(&opening),
        ["message:user", "title", "plan", "step:1:running"]
    );

    // Another message while the run is in progress: 409, and nothing changes.
    let busy = a
        .app
        .chat(
            &a.user.access,
            &session,
            json!({"message": "and another thing"}),
        )
        .await;
    match busy {
        Ok(_) => panic!("a second run started"),
        Err(r) => {
            r.assert_error(409);
            assert!(r.msg().contains("already processing"), "{}", r.body);
        }
    }
    // The same POST again (a client retry): it attaches to the same run, no second one.
    let mut retry = a
        .app
        .chat(&a.user.access, &session, body)
        .await
        .expect("retry attaches");
    let replayed = retry.until("step").await;
    assert_eq!(
        trace(&replayed),
        ["message:user", "title", "plan", "step:1:running"]
    );
    assert_eq!(
        replayed[0].id, opening[0].id,
        "the retry starts at the same user message"
    );

    // Stop: every open stream ends with done, and the session is completed.
    a.app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{session}/stop"),
            Some(&a.user.access),
            None,
        )
        .await
        .assert_ok();
    for stream in [&mut first, &mut retry] {
        let rest = tokio::time::timeout(Duration::from_secs(10), stream.collect())
            .await
            .expect("the stream ends soon after stop");
        assert_eq!(names(&rest), ["done"]);
    }
    let history = a.history(&session).await;
    assert_eq!(history["status"], "completed");
    let users = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["data"]["role"] == "user")
        .count();
    assert_eq!(users, 1, "one user message, one run");
    // The session takes a new task afterwards.
    let next = a.script(one_step(vec![complete("ok")], "Done."), "next task");
    let events = a.run(&session, &next).await;
    assert_eq!(names(&events).last().map(String::as_str), Some("done"));
}

async fn chat_bursts_are_limited_before_any_stream_opens(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| {
        s.rate_limits.chat_user = "20/minute".into();
        s.rate_limits.chat_session = "6/minute".into();
    })
    .await;
    let session = a.session().await;
    let task = a.script(
        json!({"responses": [{"fault": "delay", "ms": 60000}, {"content": "never"}]}),
        "hold on",
    );
    let mut statuses = Vec::new();
    let mut streams = Vec::new();
    for i in 0..10 {
        match a
            .app
            .chat(
                &a.user.access,
                &session,
                json!({"message": format!("{task} {i}")}),
            )
            .await
        {
            Ok(stream) => {
                statuses.push(200);
                streams.push(stream);
            }
            Err(r) => {
                if r.status == 429 {
                    r.assert_error(429);
                    let wait: u64 = r
                        .header("retry-after")
                        .and_then(|v| v.parse().ok())
                        .expect("Retry-After");
                    assert!((1..=60).contains(&wait), "{wait}");
                    assert_eq!(r.data()["retry_after"], json!(wait));
                }
                statuses.push(r.status.as_u16());
            }
        }
    }
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 429, 429, 429, 429]);
    // Per user: 20 a minute across sessions (10 counted above).
    let other = a.session().await;
    let mut refused = 0;
    for _ in 0..12 {
        if let Err(r) = a.app.chat(&a.user.access, &other, json!({})).await {
            assert_eq!(r.status, 429);
            refused += 1;
        }
    }
    // 20 a minute refill one every 3 s: a slow machine may earn one more in between.
    assert!((1..=2).contains(&refused), "{refused}");
    // Another user is not affected.
    let bob = a.app.signed_up("bob@example.com", "correct horse").await;
    let bobs = a.app.new_session(&bob.access).await;
    assert!(a.app.chat(&bob.access, &bobs, json!({})).await.is_ok());
    a.app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{session}/stop"),
            Some(&a.user.access),
            None,
        )
        .await
        .assert_ok();
}

async fn retention_deletes_idle_sessions_once_across_instances(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let task = a.script(
        one_step(
            vec![
                call("file_write", json!({"file": "keep.txt", "content": "x"})),
                complete("ok"),
            ],
            "Done.",
        ),
        "make a file",
    );
    a.run(&session, &task).await;
    let workspace = a
        .app
        .settings
        .server
        .data_dir
        .join("sandboxes")
        .join(&session);
    assert!(
        workspace.exists(),
        "the sandbox workspace is on disk: {}",
        workspace.display()
    );
    let now = time::OffsetDateTime::now_utc();
    let state = &a.app.state;
    // Not idle long enough: kept.
    let report = ironhand_server::jobs::cleanup_sessions_once(
        state,
        "instance-a",
        now + time::Duration::days(89),
    )
    .await
    .expect("cleanup");
    assert!(report.ran);
    assert_eq!(report.sessions_deleted, 0);
    // Another instance holding the lock (at the travelled-to time): this one skips the pass.
    let later = now + time::Duration::days(91);
    assert!(
        state
            .store
            .try_lock(
                "session-retention",
                "instance-b",
                later,
                later + time::Duration::minutes(5)
            )
            .await
            .expect("lock")
    );
    let skipped = ironhand_server::jobs::cleanup_sessions_once(
        state,
        "instance-a",
        now + time::Duration::days(91),
    )
    .await
    .expect("cleanup");
    assert!(!skipped.ran);
    assert_eq!(a.history(&session).await["session_id"], json!(session));
    state
        .store
        .unlock("session-retention", "instance-b")
        .await
        .expect("unlock");
    // 91 days later: the session, its events and its sandbox are gone.
    let report = ironhand_server::jobs::cleanup_sessions_once(
        state,
        "instance-a",
        now + time::Duration::days(91),
    )
    .await
    .expect("cleanup");
    assert_eq!(report.sessions_deleted, 1);
    a.app
        .get(&format!("/api/v1/sessions/{session}"), Some(&a.user.access))
        .await
        .assert_error(404);
    assert!(!workspace.exists(), "the workspace is removed");
}

async fn a_restart_hands_the_run_back_and_the_next_process_finishes_it(backend: Backend) {
    let scenarios = FakeLlmScenarios::bundled().expect("scenarios");
    let llm = FakeLlm::start(scenarios).await.expect("fake llm");
    let app = TestApp::start_with(backend, |s| {
        agent_settings(s, &llm);
        s.server.shutdown_grace_secs = 5;
    })
    .await;
    let user = app.signed_up("restart@example.com", "correct horse").await;
    let session = app.new_session(&user.access).await;
    let name = format!("s{}", uuid::Uuid::new_v4().simple());
    let scenario = one_step(
        vec![
            call("file_write", json!({"file": "before.txt", "content": "1"})),
            // The answer the interrupted request was waiting for (never delivered)…
            json!({"tool_calls": [{"name": "file_write", "arguments": {"file": "after.txt", "content": "2"}}], "delay_ms": 3000}),
            // …and the answer to the same question asked again by the next process.
            call("file_write", json!({"file": "after.txt", "content": "2"})),
            complete("both files written"),
        ],
        "Both files are there.",
    );
    llm.add_scenario(
        name.clone(),
        Scenario::from_value(scenario).expect("scenario"),
    );
    let task = format!("[scenario:{name}] write two files");
    let mut stream = app
        .chat(&user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    let before = stream.until("tool").await;
    assert_eq!(
        trace(&before).last().map(String::as_str),
        Some("tool:file_write:calling")
    );
    let called = stream.next().await.expect("called");
    assert_eq!(called.data["status"], "called");
    // The agent is now waiting for the model's (slow) next answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settings = app.settings.clone();
    // Graceful stop while the model is thinking: the stream ends, the run is handed back.
    let dir = app.stop_keeping_data().await;
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.collect())
        .await
        .expect("stream closed on shutdown");
    assert!(!names(&rest).contains(&"done".to_string()));
    // A new process on the same data continues from the saved memory.
    let mut settings = settings;
    settings.server.bind = "127.0.0.1:0".into();
    let app = TestApp::from_settings(settings).await;
    let mut tail = app
        .chat(&user.access, &session, json!({}))
        .await
        .expect("attach");
    let events = tokio::time::timeout(Duration::from_secs(30), tail.collect())
        .await
        .expect("the run finishes");
    assert_eq!(names(&events).last().map(String::as_str), Some("done"));
    let detail = app
        .get(&format!("/api/v1/sessions/{session}"), Some(&user.access))
        .await;
    assert_eq!(detail.data()["status"], "completed");
    let all = detail.data()["events"].as_array().expect("events").clone();
    assert_eq!(
        all.iter().filter(|e| e["data"]["role"] == "user").count(),
        1,
        "no second user message on resume"
    );
    assert!(
        !all.iter().any(|e| e["event"] == "error"),
        "an error-free continuation"
    );
    let file = app
        .post(
            &format!("/api/v1/sessions/{session}/file"),
            Some(&user.access),
            json!({"file": "after.txt"}),
        )
        .await;
    file.assert_ok();
    assert_eq!(file.data()["content"], "2");
    drop(dir);
}

/// Tool calls in the log with a `calling` but no `called`: `(call id, function)`.
fn unclosed_calls(events: &[Value]) -> Vec<(String, String)> {
    let status_of = |e: &Value, status: &str| e["event"] == "tool" && e["data"]["status"] == status;
    events
        .iter()
        .filter(|e| status_of(e, "calling"))
        .filter(|calling| {
            !events.iter().any(|e| {
                status_of(e, "called")
                    && e["data"]["tool_call_id"] == calling["data"]["tool_call_id"]
            })
        })
        .map(|e| {
            (
                e["data"]["tool_call_id"].as_str().unwrap_or("").to_string(),
                e["data"]["function"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn a_tool_call_cut_by_a_restart_is_closed_as_interrupted_when_the_run_resumes(
    backend: Backend,
) {
    let scenarios = FakeLlmScenarios::bundled().expect("scenarios");
    let llm = FakeLlm::start(scenarios).await.expect("fake llm");
    let app = TestApp::start_with(backend, |s| {
        agent_settings(s, &llm);
        s.server.shutdown_grace_secs = 5;
    })
    .await;
    let user = app.signed_up("cut@example.com", "correct horse").await;
    let session = app.new_session(&user.access).await;
    let name = format!("s{}", uuid::Uuid::new_v4().simple());
    let shell = |command: &str| {
        call(
            "shell_exec",
            json!({"id": "main", "exec_dir": "/home/ubuntu", "command": command}),
        )
    };
    let scenario = one_step(
        vec![
            // Cut by the restart while it runs…
            shell("sleep 4; echo first"),
            // …and done again by the resumed run, under a new call id.
            shell("echo again"),
            complete("echoed"),
        ],
        "Echoed.",
    );
    llm.add_scenario(
        name.clone(),
        Scenario::from_value(scenario).expect("scenario"),
    );
    let task = format!("[scenario:{name}] echo across a restart");
    let mut stream = app
        .chat(&user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    let before = stream.until("tool").await;
    assert_eq!(
        trace(&before).last().map(String::as_str),
        Some("tool:shell_exec:calling")
    );
    let cut = before.last().expect("calling").data["tool_call_id"].clone();
    let settings = app.settings.clone();
    let dir = app.stop_keeping_data().await;
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .expect("stream closed on shutdown");
    assert!(
        !names(&rest).contains(&"done".to_string()),
        "{:?}",
        names(&rest)
    );
    let mut settings = settings;
    settings.server.bind = "127.0.0.1:0".into();
    let app = TestApp::from_settings(settings).await;
    let mut tail = app
        .chat(&user.access, &session, json!({}))
        .await
        .expect("attach");
    let events = tokio::time::timeout(Duration::from_secs(60), tail.collect())
        .await
        .expect("the run finishes");
    assert_eq!(names(&events).last().map(String::as_str), Some("done"));
    let detail = app
        .get(&format!("/api/v1/sessions/{session}"), Some(&user.access))
        .await;
    assert_eq!(detail.data()["status"], "completed");
    let all = detail.data()["events"].as_array().expect("events").clone();
    assert_eq!(unclosed_calls(&all), Vec::<(String, String)>::new());
    let closing = all
        .iter()
        .find(|e| {
            e["event"] == "tool"
                && e["data"]["status"] == "called"
                && e["data"]["tool_call_id"] == cut
        })
        .expect("the cut call is closed");
    assert_eq!(closing["data"]["content"]["success"], false);
    assert!(
        closing["data"]["content"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Interrupted")),
        "{closing}"
    );
    let redone = all
        .iter()
        .filter(|e| e["event"] == "tool" && e["data"]["status"] == "called")
        .filter(|e| e["data"]["tool_call_id"] != cut)
        .count();
    assert_eq!(
        redone, 1,
        "the resumed run did the work again under a new id"
    );
    drop(dir);
}

async fn deleting_a_running_session_stops_its_run(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let task = a.script(
        json!({"responses": [
            {"tool_calls": [{"name": "create_plan", "arguments": {"title": "Long", "goal": "g", "language": "en", "steps": [{"id": "1", "description": "wait"}]}}]},
            {"fault": "delay", "ms": 60000},
            {"content": "never"}
        ]}),
        "delete me",
    );
    let mut stream = a
        .app
        .chat(&a.user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    stream.until("step").await;
    a.app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{session}"),
            Some(&a.user.access),
            None,
        )
        .await
        .assert_ok();
    a.app
        .get(&format!("/api/v1/sessions/{session}"), Some(&a.user.access))
        .await
        .assert_error(404);
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .expect("the stream ends");
    assert!(rest.len() <= 1, "{:?}", names(&rest));
    // The worker is free for other work.
    let other = a.session().await;
    let next = a.script(one_step(vec![complete("ok")], "Done."), "after delete");
    assert_eq!(
        names(&a.run(&other, &next).await)
            .last()
            .map(String::as_str),
        Some("done")
    );
}

/// Whether any host process runs exactly this command line.
fn host_runs(needle: &str) -> bool {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries.flatten().any(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " ").trim() == needle)
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

async fn stopping_a_run_kills_the_command_it_was_waiting_on(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| s.sandbox.foreground_wait_secs = 30).await;
    let marker = format!("sleep 300.{}", rand_suffix());
    let task = a.script(
        one_step(
            vec![
                call(
                    "shell_exec",
                    json!({"id": "main", "exec_dir": "/home/ubuntu", "command": marker.clone()}),
                ),
                complete("slept"),
            ],
            "never",
        ),
        "sleep a long time",
    );
    let session = a.session().await;
    let mut stream = a
        .app
        .chat(&a.user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    stream.until("tool").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !host_runs(&marker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{session}/stop"),
            Some(&a.user.access),
            None,
        )
        .await
        .assert_ok();
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.collect())
        .await
        .expect("the stream ends");
    assert_eq!(names(&rest).last().map(String::as_str), Some("done"));
    // The stopped call is closed before the run's `done`.
    assert_eq!(
        trace(&rest),
        ["tool:shell_exec:called", "done"],
        "{:?}",
        rest
    );
    assert_eq!(rest[0].data["content"]["error"], "Stopped by the user.");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while host_runs(&marker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the command outlived the stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 1_000_000
}

/// The database drops every connection of the server mid-run (a restart, a failover): the
/// chat stream does not end before its run does, sends nothing twice, and ends with `done`.
/// (The pool replaces dropped connections before handing them out; an outage that outlasts
/// its acquire timeout is what the stream's retry in `routes/sessions/stream.rs` is for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_hiccup_mid_run_does_not_end_the_stream_early() {
    use secrecy::ExposeSecret;
    let a = AgentApp::start(Backend::PostgresRedis).await;
    let session = a.session().await;
    let task = slow_task(&a, 4, 400);
    let mut stream = a
        .app
        .chat(&a.user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    let mut seen: Vec<SseEvent> = Vec::new();
    for _ in 0..3 {
        seen.push(stream.next().await.expect("event"));
    }
    // Every connection of the server's pool is cut.
    let url = a
        .app
        .settings
        .database
        .url
        .as_ref()
        .expect("postgres")
        .expose_secret()
        .to_string();
    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&admin)
    .await
    .expect("terminate");
    assert!(cut > 0, "the server had connections to cut");
    admin.close().await;
    seen.extend(stream.collect().await);
    let names = names(&seen);
    assert_eq!(
        names.last().map(String::as_str),
        Some("done"),
        "the stream ends with its run: {names:?}"
    );
    // Nothing twice: the stream resumed after its last event.
    let ids: Vec<&String> = seen.iter().filter_map(|e| e.id.as_ref()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "{names:?}");
}
