//! Two instances sharing PostgreSQL and Redis behave as one service: a logout (of a whole
//! login) on one is seen by the other at once (GAP-AUTH-002), a refresh raced across them
//! answers with one successor, and rate limits are shared.

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
