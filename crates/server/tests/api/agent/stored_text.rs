//! What gets stored, on both backends alike. PostgreSQL cannot store a NUL character, so
//! one rule holds everywhere: a user's text holding one is refused with 422 naming the
//! field, and what the model and the tools produce is stored without its NULs. When storage
//! does refuse a run's progress, the run ends at once with an error that says so.

use super::{AgentApp, call, complete, one_step, trace};
use crate::sse::names;
use crate::support::Backend;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    user_text_with_a_nul_character_is_refused_with_422_and_nothing_is_stored,
    a_model_answer_with_nul_characters_completes_with_them_removed,
    a_storage_failure_during_a_run_ends_it_with_an_error_that_says_so,
);

async fn user_text_with_a_nul_character_is_refused_with_422_and_nothing_is_stored(
    backend: Backend,
) {
    let a = AgentApp::start(backend).await;
    let token = a.user.access.clone();
    let session = a.session().await;
    let refused = match a
        .app
        .chat(&token, &session, json!({"message": "a\u{0}b"}))
        .await
    {
        Ok(_) => panic!("a run started"),
        Err(r) => r,
    };
    refused.assert_error(422);
    assert_eq!(refused.data()[0]["field"], "message");
    assert!(refused.msg().contains("NUL"), "{}", refused.msg());
    assert_eq!(a.history(&session).await["events"], json!([]));
    let refused = a
        .app
        .chat(
            &token,
            &session,
            json!({"message": "hello", "client_message_id": "id\u{0}"}),
        )
        .await
        .err()
        .expect("refused");
    refused.assert_error(422);
    assert_eq!(refused.data()[0]["field"], "client_message_id");

    // Names, and text that is only searched, follow the same rule.
    let r = a
        .app
        .register("Ann\u{0}Other", "nul@example.com", "long enough pw")
        .await;
    r.assert_error(422);
    assert_eq!(r.data()[0]["field"], "fullname");
    a.app
        .post(
            "/api/v1/auth/change-fullname",
            Some(&token),
            json!({"fullname": "Ada\u{0}"}),
        )
        .await
        .assert_error(422);
    a.app
        .get("/api/v1/auth/users?q=a%00b", Some(&token))
        .await
        .assert_error(422);
    assert_eq!(
        a.app.get("/api/v1/auth/me", Some(&token)).await.data()["fullname"],
        "Test Person"
    );

    // The six characters `\u0000` typed as text are just text.
    let task = a.script(
        one_step(vec![complete("ok")], "Done."),
        r"quote \u0000 literally",
    );
    let events = a.run(&session, &task).await;
    assert_eq!(names(&events).last().map(String::as_str), Some("done"));
    assert!(
        events[0].data["content"]
            .as_str()
            .is_some_and(|c| c.ends_with(r"quote \u0000 literally"))
    );
}

async fn a_model_answer_with_nul_characters_completes_with_them_removed(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let task = a.script(
        json!({"responses": [
            {"tool_calls": [{"name": "create_plan", "arguments": {
                "title": "Nul\u{0}title", "goal": "g", "language": "en",
                "steps": [{"id": "1", "description": "Do\u{0} it"}]}}]},
            call("shell_exec", json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "printf 'x\\000y'"})),
            complete("r\u{0}s"),
            call("update_plan", json!({"steps": []})),
            {"content": "a\u{0}b"}
        ]}),
        "answer with NUL characters",
    );
    let session = a.session().await;
    let events = tokio::time::timeout(Duration::from_secs(60), a.run(&session, &task))
        .await
        .expect("the run ends");
    assert_eq!(
        trace(&events).last().map(String::as_str),
        Some("done"),
        "{:?}",
        trace(&events)
    );
    let history = a.history(&session).await;
    assert_eq!(history["status"], "completed");
    assert_eq!(history["title"], "Nultitle");
    let stored = history["events"].as_array().expect("events");
    let answer = stored
        .iter()
        .rev()
        .find(|e| e["event"] == "message" && e["data"]["role"] == "assistant")
        .expect("an answer");
    assert_eq!(answer["data"]["content"], "ab");
    assert!(
        !history.to_string().contains("\\u0000"),
        "a NUL was stored: {history}"
    );
    let list = a.app.get("/api/v1/sessions", Some(&a.user.access)).await;
    let item = list.data()["sessions"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|i| i["session_id"] == json!(session))
                .cloned()
        })
        .unwrap_or(Value::Null);
    assert_eq!(item["latest_message"], "ab");
    assert_eq!(item["title"], "Nultitle");
}

/// Renames a table under the running server, so that every later use of it fails.
async fn break_table(database_url: &str) {
    if database_url.starts_with("sqlite:") {
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(database_url)
            .expect("sqlite url")
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::SqlitePool::connect_with(options)
            .await
            .expect("sqlite");
        sqlx::query("ALTER TABLE agent_memory RENAME TO agent_memory_gone")
            .execute(&pool)
            .await
            .expect("rename");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.expect("postgres");
        sqlx::query("ALTER TABLE agent_memory RENAME TO agent_memory_gone")
            .execute(&pool)
            .await
            .expect("rename");
        pool.close().await;
    }
}

async fn a_storage_failure_during_a_run_ends_it_with_an_error_that_says_so(backend: Backend) {
    let a = AgentApp::start(backend).await;
    // The planner answers slowly, so the table goes while the run waits for it.
    let mut scenario = one_step(vec![complete("never")], "never");
    scenario["responses"][0]["delay_ms"] = json!(2000);
    let task = a.script(scenario, "lose the storage");
    let session = a.session().await;
    let mut stream = a
        .app
        .chat(&a.user.access, &session, json!({"message": task}))
        .await
        .expect("stream");
    stream.until("message").await;
    break_table(&a.app.settings.database_url()).await;
    let rest = tokio::time::timeout(Duration::from_secs(20), stream.collect())
        .await
        .expect("the run ends at once, without waiting for its lease to run out");
    let t = trace(&rest);
    assert_eq!(t.last().map(String::as_str), Some("done"), "{t:?}");
    let error = rest
        .iter()
        .find(|e| e.event == "error")
        .and_then(|e| e.data["error"].as_str())
        .expect("an error event")
        .to_string();
    assert!(error.contains("could not save its progress"), "{error}");
    assert!(!error.contains("restarted"), "{error}");
    let history = a.history(&session).await;
    assert_eq!(history["status"], "failed");
    a.app
        .call(Method::GET, "/api/v1/health", None, None)
        .await
        .assert_ok();
}
