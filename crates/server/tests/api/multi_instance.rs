//! Two instances sharing PostgreSQL and Redis behave as one service: a logout (of a whole
//! login) on one is seen by the other at once (GAP-AUTH-002), a refresh raced across them
//! answers with one successor, and rate limits are shared. With the file store shared too,
//! a session's workspace follows it to whichever instance runs it next, after a stop or a
//! crash, and runs stay with the instance holding the session's sandbox.

use crate::support::{Backend, TestApp, Tokens, settings_for};
use serde_json::json;

async fn pair() -> (TestApp, TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = settings_for(Backend::PostgresRedis, dir.path()).await;
    settings.auth.jwt_secret = Some(secrecy::SecretString::from(format!(
        "shared-secret-{}",
        uuid::Uuid::new_v4()
    )));
    // A short refresh grace window, so stories can step past it.
    settings.auth.refresh_reuse_grace_secs = 1;
    let a = TestApp::from_settings(settings.clone()).await;
    let b = TestApp::from_settings(settings).await;
    (a, b, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_seen_by_the_other_at_once() {
    let (a, b, _dir) = pair().await;
    let t = a.signed_up("twin@example.com", "long enough pw").await;
    let later = b.refreshed(&t.refresh).await;
    b.get("/api/v1/auth/me", Some(&t.access)).await.assert_ok();
    a.post("/api/v1/auth/logout", Some(&later.access), json!({}))
        .await
        .assert_ok();
    // Every access token of that login is refused on both instances at once, those issued
    // before the refresh too.
    for app in [&a, &b] {
        for access in [&t.access, &later.access] {
            app.get("/api/v1/auth/me", Some(access))
                .await
                .assert_error(401);
        }
    }
    b.refresh(&later.refresh).await.assert_error(401);

    // Two instances racing one refresh token both answer, with one successor…
    let fresh = Tokens::from(&a.login("twin@example.com", "long enough pw").await);
    let (x, y) = tokio::join!(a.refresh(&fresh.refresh), b.refresh(&fresh.refresh));
    let (x, y) = (Tokens::from(x.assert_ok()), Tokens::from(y.assert_ok()));
    assert_eq!(x.refresh, y.refresh);
    // …and a token rotated on one answers with its successor on the other in the window.
    assert_eq!(b.refreshed(&fresh.refresh).await.refresh, x.refresh);

    // After the window, reuse detected on B ends the login, its access tokens on A included.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    b.refresh(&fresh.refresh).await.assert_error(401);
    for access in [&fresh.access, &x.access, &y.access] {
        a.get("/api/v1/auth/me", Some(access))
            .await
            .assert_error(401);
    }
    a.refresh(&x.refresh).await.assert_error(401);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_through_redis() {
    let (a, b, _dir) = pair().await;
    // Rebuild both with a per-IP login budget of 5/minute on the same Redis prefix.
    let mut settings = a.settings.clone();
    settings.rate_limits.login_ip = "5/minute".into();
    a.stop().await;
    b.stop().await;
    let a = TestApp::from_settings(settings.clone()).await;
    let b = TestApp::from_settings(settings).await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.login(&format!("p{i}@example.com"), "wrong")
            .await
            .assert_error(401);
    }
    a.login("p9@example.com", "wrong").await.assert_error(429);
    b.login("p9@example.com", "wrong").await.assert_error(429);
    a.stop().await;
    b.stop().await;
}

/// A runs the worker, B only serves HTTP: a chat started and watched on B is worked on by
/// A, streamed live through Redis, and a stop sent to B reaches the run on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_worked_on_one_instance_streams_and_stops_through_another() {
    use crate::agent::{agent_settings, call, one_step, trace};
    use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios, Scenario};
    let llm = FakeLlm::start(FakeLlmScenarios::new())
        .await
        .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = settings_for(Backend::PostgresRedis, dir.path()).await;
    settings.auth.jwt_secret = Some(secrecy::SecretString::from(format!(
        "shared-secret-{}",
        uuid::Uuid::new_v4()
    )));
    agent_settings(&mut settings, &llm);
    let worker = TestApp::from_settings(settings.clone()).await;
    settings.agent.embedded_worker = false;
    let web = TestApp::from_settings(settings).await;
    let user = web.signed_up("two@example.com", "correct horse").await;
    let session = web.new_session(&user.access).await;

    let mut slow = call(
        "shell_exec",
        json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "hostname"}),
    );
    slow["delay_ms"] = json!(300);
    let scenario = one_step(
        vec![slow, crate::agent::complete("ran hostname")],
        "It ran in the sandbox.",
    );
    llm.add_scenario("across", Scenario::from_value(scenario).expect("scenario"));
    let events = web
        .chat(
            &user.access,
            &session,
            json!({"message": "[scenario:across] run hostname"}),
        )
        .await
        .unwrap_or_else(|r| panic!("{}", r.body))
        .collect()
        .await;
    assert_eq!(
        trace(&events),
        [
            "message:user",
            "title",
            "plan",
            "step:1:running",
            "tool:shell_exec:calling",
            "tool:shell_exec:called",
            "step:1:completed",
            "plan",
            "message:assistant",
            "done"
        ]
    );

    // Stop through B while A works: A's run ends and both see `done`.
    let long = json!({"responses": [
        {"tool_calls": [{"name": "create_plan", "arguments": {"title": "Long", "goal": "g", "language": "en", "steps": [{"id": "1", "description": "wait"}]}}]},
        {"fault": "delay", "ms": 60000},
        {"content": "never"}
    ]});
    llm.add_scenario("long", Scenario::from_value(long).expect("scenario"));
    let mut stream = web
        .chat(
            &user.access,
            &session,
            json!({"message": "[scenario:long] wait forever"}),
        )
        .await
        .expect("stream");
    stream.until("step").await;
    let started = std::time::Instant::now();
    web.call(
        reqwest::Method::POST,
        &format!("/api/v1/sessions/{session}/stop"),
        Some(&user.access),
        None,
    )
    .await
    .assert_ok();
    let rest = stream.collect().await;
    assert_eq!(crate::sse::names(&rest), ["done"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the stop travelled through Redis, not the lease"
    );
    let detail = worker
        .get(&format!("/api/v1/sessions/{session}"), Some(&user.access))
        .await;
    assert_eq!(detail.data()["status"], "completed");
}

/// Settings of instances that share PostgreSQL, Redis and the file store (a shared
/// `files.local_dir`), with `llm` as their model; each gets its own sandbox root from
/// [`instance`].
async fn sharing_everything_but_sandboxes(
    llm: &ironhand_fakes::llm::FakeLlm,
    dir: &std::path::Path,
) -> ironhand_server::Settings {
    let mut settings = settings_for(Backend::PostgresRedis, dir).await;
    settings.auth.jwt_secret = Some(secrecy::SecretString::from(format!(
        "shared-secret-{}",
        uuid::Uuid::new_v4()
    )));
    crate::agent::agent_settings(&mut settings, llm);
    settings.files.local_dir = Some(dir.join("files"));
    settings
}

/// One instance of [`sharing_everything_but_sandboxes`]: its workspaces under
/// `<dir>/sandboxes-<name>`, as on a machine of its own.
fn instance(
    settings: &ironhand_server::Settings,
    dir: &std::path::Path,
    name: &str,
) -> ironhand_server::Settings {
    let mut s = settings.clone();
    s.sandbox.root_dir = Some(dir.join(format!("sandboxes-{name}")));
    s
}

/// Sends `message` and reads the stream to `done`.
async fn ask(
    app: &TestApp,
    token: &str,
    session: &str,
    message: &str,
) -> Vec<crate::sse::SseEvent> {
    app.chat(token, session, json!({ "message": message }))
        .await
        .unwrap_or_else(|r| panic!("chat refused: {} {}", r.status, r.body))
        .collect()
        .await
}

/// The content of the first finished call of `function` in `events`.
fn called(events: &[crate::sse::SseEvent], function: &str) -> serde_json::Value {
    events
        .iter()
        .find(|e| {
            e.event == "tool" && e.data["function"] == function && e.data["status"] == "called"
        })
        .map(|e| e.data["content"].clone())
        .unwrap_or_else(|| {
            panic!(
                "no finished {function} in {:?}",
                crate::agent::trace(events)
            )
        })
}

/// Whether a tool result the model was sent, in the conversation of `marker`, mentions
/// `text`.
fn model_saw(llm: &ironhand_fakes::llm::FakeLlm, marker: &str, text: &str) -> bool {
    llm.requests_for(marker).iter().any(|r| {
        r.messages()
            .iter()
            .any(|m| m["role"] == "tool" && m.to_string().contains(text))
    })
}

fn write_notes(content: &str) -> serde_json::Value {
    crate::agent::call(
        "file_write",
        json!({"file": "/home/ubuntu/notes/plan.txt", "content": content}),
    )
}

fn read_notes() -> serde_json::Value {
    crate::agent::call("file_read", json!({"file": "/home/ubuntu/notes/plan.txt"}))
}

/// The first run writes a file on A; A stops; the next message of the session runs on B,
/// a machine of its own, and the agent reads the file there: the workspace followed the
/// session through the shared file store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_files_follow_it_to_the_instance_that_runs_its_next_message() {
    use crate::agent::{complete, one_step, trace};
    use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios, Scenario};
    let llm = FakeLlm::start(FakeLlmScenarios::new())
        .await
        .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = sharing_everything_but_sandboxes(&llm, dir.path()).await;
    let a = TestApp::from_settings(instance(&settings, dir.path(), "a")).await;
    let user = a.signed_up("follow@example.com", "correct horse").await;
    let session = a.new_session(&user.access).await;

    let write = one_step(
        vec![
            write_notes("the secret word is marmalade"),
            complete("wrote it"),
        ],
        "Written down.",
    );
    llm.add_scenario(
        "follow-write",
        Scenario::from_value(write).expect("scenario"),
    );
    let first = ask(
        &a,
        &user.access,
        &session,
        "[scenario:follow-write] note the word",
    )
    .await;
    let written = called(&first, "file_write");
    assert!(written.get("error").is_none(), "{written}");
    assert_eq!(trace(&first).last().map(String::as_str), Some("done"));
    let saved = a
        .state
        .store
        .latest_snapshot(ironhand_core::SessionId::parse(&session).expect("id"))
        .await
        .expect("latest")
        .expect("a snapshot at the end of the run");
    assert_eq!((saved.version, saved.files), (1, 1));
    a.stop().await;

    let b = TestApp::from_settings(instance(&settings, dir.path(), "b")).await;
    let read = one_step(
        vec![read_notes(), complete("read it")],
        "The word is marmalade.",
    );
    llm.add_scenario("follow-read", Scenario::from_value(read).expect("scenario"));
    let second = ask(
        &b,
        &user.access,
        &session,
        "[scenario:follow-read] what was the word?",
    )
    .await;
    let content = called(&second, "file_read");
    assert!(
        content.to_string().contains("the secret word is marmalade"),
        "{content}"
    );
    assert!(model_saw(
        &llm,
        "[scenario:follow-read]",
        "the secret word is marmalade"
    ));
    assert!(
        dir.path()
            .join(format!("sandboxes-b/{session}/home/notes/plan.txt"))
            .is_file(),
        "restored into B's own workspace"
    );
    // The second run changed nothing: no new snapshot.
    let latest = b
        .state
        .store
        .latest_snapshot(ironhand_core::SessionId::parse(&session).expect("id"))
        .await
        .expect("latest")
        .expect("snapshot");
    assert_eq!(latest.version, 1);

    // Deleting the session removes its snapshot's bytes from the shared store.
    b.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/sessions/{session}"),
        Some(&user.access),
        None,
    )
    .await
    .assert_ok();
    assert!(
        !dir.path().join("files").join(&saved.storage_key).exists(),
        "the snapshot's bytes went with the session"
    );
    b.stop().await;
}

/// The two tasks of the crash stories, registered under `prefix`: the first writes the
/// notes ("first draft"); the second rewrites them, then runs a long command (the crash
/// comes during it), then reads them.
fn crash_tasks(llm: &ironhand_fakes::llm::FakeLlm, prefix: &str) -> (String, String) {
    use crate::agent::{call, complete, one_step};
    use ironhand_fakes::llm::Scenario;
    let write = one_step(
        vec![write_notes("first draft"), complete("drafted")],
        "Drafted.",
    );
    llm.add_scenario(
        format!("{prefix}-first"),
        Scenario::from_value(write).expect("scenario"),
    );
    let cut = one_step(
        vec![
            write_notes("second draft, written after the snapshot"),
            call(
                "shell_exec",
                json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "sleep 60"}),
            ),
            read_notes(),
            complete("read"),
        ],
        "Read the notes.",
    );
    llm.add_scenario(
        format!("{prefix}-second"),
        Scenario::from_value(cut).expect("scenario"),
    );
    (
        format!("[scenario:{prefix}-first] draft it"),
        format!("[scenario:{prefix}-second] redraft, then read"),
    )
}

/// Reads `stream` until the long command of [`crash_tasks`] starts.
async fn until_the_long_command(stream: &mut crate::sse::SseStream) {
    loop {
        let events = stream.until("tool").await;
        let last = events.last().expect("a tool event");
        if last.data["function"] == "shell_exec" && last.data["status"] == "calling" {
            break;
        }
    }
}

/// `survivor` finishes the cut run of [`crash_tasks`] on the last snapshot: it read the
/// first draft, not what the crashed instance wrote after it.
async fn the_run_finishes_on_the_last_snapshot(survivor: &TestApp, token: &str, session: &str) {
    let mut tail = survivor
        .chat(token, session, json!({}))
        .await
        .expect("attach");
    let events = tokio::time::timeout(std::time::Duration::from_secs(90), tail.collect())
        .await
        .expect("the survivor finishes the run");
    assert_eq!(
        crate::sse::names(&events).last().map(String::as_str),
        Some("done"),
        "{:?}",
        crate::agent::trace(&events)
    );
    let content = called(&events, "file_read");
    assert!(content.to_string().contains("first draft"), "{content}");
    assert!(!content.to_string().contains("second draft"), "{content}");
    let detail = survivor
        .get(&format!("/api/v1/sessions/{session}"), Some(token))
        .await;
    assert_eq!(detail.data()["status"], "completed");
}

/// A is killed (its runtime dropped at once, nothing handed back) while a later run works
/// on the session: B takes the run over when its lease lapses and restores the snapshot
/// made at the end of the previous run; what A wrote after it is lost with A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_a_crash_resumes_elsewhere_on_the_last_snapshot() {
    use crate::agent::trace;
    use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios};
    let llm = FakeLlm::start(FakeLlmScenarios::new())
        .await
        .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = sharing_everything_but_sandboxes(&llm, dir.path()).await;
    settings.agent.run_lease_secs = 3;
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let a =
        TestApp::from_settings_on(instance(&settings, dir.path(), "a"), runtime_a.handle()).await;
    let user = a.signed_up("crash@example.com", "correct horse").await;
    let session = a.new_session(&user.access).await;
    let (first_task, cut_task) = crash_tasks(&llm, "crash");
    let first = ask(&a, &user.access, &session, &first_task).await;
    assert_eq!(trace(&first).last().map(String::as_str), Some("done"));

    let mut stream = a
        .chat(&user.access, &session, json!({ "message": cut_task }))
        .await
        .expect("stream");
    until_the_long_command(&mut stream).await;
    assert!(
        dir.path()
            .join(format!("sandboxes-a/{session}/home/notes/plan.txt"))
            .is_file()
    );
    // Killed: no hand-back, no snapshot, its sandbox gone with it.
    runtime_a.shutdown_background();
    drop(stream);
    drop(a);

    let b = TestApp::from_settings(instance(&settings, dir.path(), "b")).await;
    the_run_finishes_on_the_last_snapshot(&b, &user.access, &session).await;
    assert!(model_saw(&llm, "[scenario:crash-second]", "first draft"));
    b.stop().await;
}

/// Instance A as a real process, killed with SIGKILL while a run of the session works on
/// it: its sandbox dies with it (bubblewrap's `--die-with-parent`), nothing is handed back
/// and no snapshot is made. B, which has served every request, takes the run over when the
/// lease lapses and restores the snapshot made at the end of the previous run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_kill_9_of_its_instance_resumes_on_another() {
    use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios};
    use secrecy::ExposeSecret;
    let llm = FakeLlm::start(FakeLlmScenarios::new())
        .await
        .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = sharing_everything_but_sandboxes(&llm, dir.path()).await;
    settings.agent.run_lease_secs = 3;

    // A: the `ironhand` binary, the only worker at first.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    let (port, admin_port) = (free_port(), free_port());
    let secret = |s: &Option<secrecy::SecretString>| {
        s.as_ref()
            .map(|v| v.expose_secret().to_string())
            .expect("set")
    };
    let mut a = std::process::Command::new(env!("CARGO_BIN_EXE_ironhand"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("IRONHAND_DATA_DIR", dir.path().join("a-data"))
        .env("IRONHAND_ADMIN_BIND", format!("127.0.0.1:{admin_port}"))
        .env("DATABASE_URL", secret(&settings.database.url))
        .env("REDIS_URL", secret(&settings.redis.url))
        .env("IRONHAND__REDIS__KEY_PREFIX", &settings.redis.key_prefix)
        .env(
            "IRONHAND__AUTH__JWT_SECRET",
            secret(&settings.auth.jwt_secret),
        )
        .env("IRONHAND__FILES__LOCAL_DIR", dir.path().join("files"))
        .env(
            "IRONHAND__SANDBOX__ROOT_DIR",
            dir.path().join("sandboxes-a"),
        )
        .env("IRONHAND__SANDBOX__WORKSPACE_MAX_BYTES", "0")
        .env("IRONHAND__SANDBOX__FOREGROUND_WAIT_SECS", "5")
        .env("IRONHAND__AGENT__RUN_LEASE_SECS", "3")
        .env("LLM_BASE_URL", llm.url())
        .env("LLM_MODEL", "fake-model")
        .env("IRONHAND__LLM__STALL_TIMEOUT_SECS", "2")
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn instance A");
    let healthy = async {
        loop {
            if reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), healthy)
        .await
        .expect("A becomes healthy");

    // B serves the API (its worker off while A lives, so A runs everything).
    let mut front = instance(&settings, dir.path(), "b");
    front.agent.embedded_worker = false;
    let b = TestApp::from_settings(front).await;
    let user = b.signed_up("kill9@example.com", "correct horse").await;
    let session = b.new_session(&user.access).await;
    let (first_task, cut_task) = crash_tasks(&llm, "kill9");
    let first = ask(&b, &user.access, &session, &first_task).await;
    assert_eq!(
        crate::agent::trace(&first).last().map(String::as_str),
        Some("done")
    );
    assert!(
        dir.path()
            .join(format!("sandboxes-a/{session}/home/notes/plan.txt"))
            .is_file(),
        "A ran the first task"
    );
    let mut stream = b
        .chat(&user.access, &session, json!({ "message": cut_task }))
        .await
        .expect("stream");
    until_the_long_command(&mut stream).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &a.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = a.wait();
    drop(stream);
    b.stop().await;

    // B again, now with its worker: it takes the run over once A's lease lapses.
    let b = TestApp::from_settings(instance(&settings, dir.path(), "b")).await;
    the_run_finishes_on_the_last_snapshot(&b, &user.access, &session).await;
    b.stop().await;
}

/// With both instances working, every run of a session goes to the instance that holds
/// its sandbox: its workspace never has to move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_a_session_stay_with_the_instance_holding_its_sandbox() {
    use crate::agent::{complete, one_step, trace};
    use ironhand_fakes::llm::{FakeLlm, FakeLlmScenarios, Scenario};
    let llm = FakeLlm::start(FakeLlmScenarios::new())
        .await
        .expect("fake llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = sharing_everything_but_sandboxes(&llm, dir.path()).await;
    let a = TestApp::from_settings(instance(&settings, dir.path(), "a")).await;
    let b = TestApp::from_settings(instance(&settings, dir.path(), "b")).await;
    let user = a.signed_up("sticky@example.com", "correct horse").await;
    let session = a.new_session(&user.access).await;
    let id = ironhand_core::SessionId::parse(&session).expect("id");
    let mut holder = None;
    for round in 0..4 {
        let name = format!("sticky-{round}");
        let scenario = one_step(
            vec![write_notes(&format!("round {round}")), complete("noted")],
            "Noted.",
        );
        llm.add_scenario(
            name.clone(),
            Scenario::from_value(scenario).expect("scenario"),
        );
        // Alternate the instance that receives the message.
        let via = if round % 2 == 0 { &a } else { &b };
        let events = ask(
            via,
            &user.access,
            &session,
            &format!("[scenario:{name}] note"),
        )
        .await;
        assert_eq!(trace(&events).last().map(String::as_str), Some("done"));
        let now = a.state.store.sandbox_holder(id).await.expect("holder");
        assert!(now.is_some());
        if let Some(before) = &holder {
            assert_eq!(
                Some(before),
                now.as_ref(),
                "round {round} moved the session"
            );
        }
        holder = now;
    }
    let on_a = holder.as_deref() == Some(&*a.state.instance_id);
    let (kept, never) = if on_a { ("a", "b") } else { ("b", "a") };
    assert!(
        dir.path()
            .join(format!("sandboxes-{kept}/{session}/home"))
            .is_dir()
    );
    assert!(
        !dir.path()
            .join(format!("sandboxes-{never}/{session}"))
            .exists(),
        "the other instance never had to restore the workspace"
    );
    a.stop().await;
    b.stop().await;
}
