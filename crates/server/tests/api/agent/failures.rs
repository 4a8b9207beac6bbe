//! A model that misbehaves ends the run with a clear `error` and `done`; the server goes on.

use super::{AgentApp, call, complete, one_step, trace};
use crate::support::{Backend, TestApp};
use serde_json::json;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    garbage_from_the_model_ends_the_run_with_an_error_and_the_server_keeps_serving,
    a_model_that_keeps_failing_with_500_ends_the_run_after_retries,
    a_stalled_model_is_given_up_on,
    an_invented_tool_and_bad_arguments_become_failed_results_the_model_sees,
    a_planner_that_answers_in_prose_gets_one_correction_then_the_run_fails,
    without_a_model_the_chat_explains_how_to_configure_one,
    budgets_end_a_run_that_does_not_finish,
);

/// Runs `task` and expects `error` then `done`; returns the error sentence.
async fn failed_run(a: &AgentApp, task: &str) -> String {
    let session = a.session().await;
    let events = a.run(&session, task).await;
    let t = trace(&events);
    assert_eq!(t.last().map(String::as_str), Some("done"), "{t:?}");
    assert_eq!(t[t.len() - 2], "error", "{t:?}");
    let history = a.history(&session).await;
    assert_eq!(history["status"], "failed");
    events[events.len() - 2].data["error"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn still_serves(a: &AgentApp) {
    a.app.get("/api/v1/health", None).await.assert_ok();
    let task = a.script(
        one_step(vec![complete("fine")], "All good."),
        "a healthy task",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    assert_eq!(trace(&events).last().map(String::as_str), Some("done"));
    assert_eq!(a.history(&session).await["status"], "completed");
}

async fn garbage_from_the_model_ends_the_run_with_an_error_and_the_server_keeps_serving(
    backend: Backend,
) {
    let a = AgentApp::start(backend).await;
    let error = failed_run(&a, "[scenario:garbage] do something").await;
    assert!(error.contains("language model"), "{error}");
    assert!(
        !error.contains("fake-model") || !error.contains("Bearer"),
        "{error}"
    );
    still_serves(&a).await;
}

async fn a_model_that_keeps_failing_with_500_ends_the_run_after_retries(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let task = a.script(
        json!({"responses": [{"fault": "status", "status": 500, "times": 10}]}),
        "fail please",
    );
    let error = failed_run(&a, &task).await;
    assert!(
        error.contains("500") || error.to_lowercase().contains("server"),
        "{error}"
    );
    // One attempt plus two retries.
    assert_eq!(a.llm.requests_for(&task).len(), 3);
    still_serves(&a).await;
}

async fn a_stalled_model_is_given_up_on(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| s.llm.max_retries = 0).await;
    let task = a.script(
        json!({"responses": [{"fault": "stall", "seconds": 30}]}),
        "stall please",
    );
    let started = std::time::Instant::now();
    let error = failed_run(&a, &task).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "keep-alives did not keep it alive"
    );
    assert!(
        error.to_lowercase().contains("stall") || error.to_lowercase().contains("stopped sending"),
        "{error}"
    );
    still_serves(&a).await;
}

async fn an_invented_tool_and_bad_arguments_become_failed_results_the_model_sees(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let task = a.script(
        one_step(
            vec![
                call("rm_everything", json!({"now": true})),
                json!({"tool_calls": [{"name": "shell_exec", "arguments": "{not json"}]}),
                call("file_read", json!({"file": "/etc/../../nowhere"})),
                complete("Recovered"),
            ],
            "Recovered from my mistakes.",
        ),
        "be clumsy",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    let t = trace(&events);
    assert_eq!(t.last().map(String::as_str), Some("done"), "{t:?}");
    assert!(!t.contains(&"error".to_string()), "{t:?}");
    assert!(
        !t.iter().any(|e| e.contains("rm_everything")),
        "invented tools are not shown as tool events"
    );
    let read = events
        .iter()
        .find(|e| {
            e.event == "tool" && e.data["function"] == "file_read" && e.data["status"] == "called"
        })
        .expect("file_read called");
    assert!(
        read.data["content"].is_null(),
        "a failed read shows no content"
    );
    let requests = a.llm.requests_for(&task);
    let seen_by_model = requests
        .iter()
        .rev()
        .find(|r| r.offers_tool("complete_step"))
        .expect("an executor request")
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        seen_by_model.contains("Unknown tool `rm_everything`"),
        "{seen_by_model}"
    );
    assert!(seen_by_model.contains("not valid JSON"), "{seen_by_model}");
    assert!(
        seen_by_model.contains("\"success\":false"),
        "{seen_by_model}"
    );
}

async fn a_planner_that_answers_in_prose_gets_one_correction_then_the_run_fails(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let task = a.script(
        json!({"responses": [{"content": "Sure! I will do it."}, {"content": "Still prose."}]}),
        "plan in prose",
    );
    let error = failed_run(&a, &task).await;
    assert!(error.contains("plan"), "{error}");
    let requests = a.llm.requests_for(&task);
    assert_eq!(requests.len(), 2, "exactly one corrective retry");
}

async fn without_a_model_the_chat_explains_how_to_configure_one(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = app.signed_up("nomodel@example.com", "correct horse").await;
    let session = app.new_session(&user.access).await;
    let events = app
        .chat(&user.access, &session, json!({"message": "hello?"}))
        .await
        .unwrap_or_else(|r| panic!("{}", r.body))
        .collect()
        .await;
    assert_eq!(trace(&events), ["message:user", "error", "done"]);
    let error = events[1].data["error"].as_str().unwrap_or("");
    assert!(
        error.contains("LLM_BASE_URL") && error.contains("LLM_MODEL"),
        "{error}"
    );
    let detail = app
        .get(&format!("/api/v1/sessions/{session}"), Some(&user.access))
        .await;
    assert_eq!(detail.data()["status"], "failed");
}

async fn budgets_end_a_run_that_does_not_finish(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| s.agent.max_tool_calls_per_step = 3).await;
    let looping: Vec<_> = (0..6)
        .map(|i| {
            call(
                "shell_exec",
                json!({"id": "main", "exec_dir": "/home/ubuntu", "command": format!("echo {i}")}),
            )
        })
        .collect();
    let task = a.script(one_step(looping, "never reached"), "loop forever");
    let error = failed_run(&a, &task).await;
    assert!(error.contains("3 tool calls"), "{error}");
}
