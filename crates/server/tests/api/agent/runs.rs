//! A user hands the agent a task and watches it work.

use super::{AgentApp, call, complete, one_step, trace};
use crate::sse::{SseEvent, names};
use crate::support::Backend;
use reqwest::Method;
use serde_json::json;
use std::collections::HashSet;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    a_two_step_task_streams_plan_steps_tools_and_the_answer_and_history_matches,
    the_agent_asks_a_question_waits_and_the_reply_continues_the_same_work,
    a_second_task_in_the_same_session_remembers_the_first,
    the_session_list_stream_follows_a_run,
);

fn ids_increase(events: &[SseEvent]) {
    let ids: Vec<i64> = events
        .iter()
        .map(|e| {
            e.id.as_deref()
                .and_then(|i| i.parse().ok())
                .expect("numeric id")
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: {ids:?}"
    );
    for e in events {
        assert_eq!(
            e.data["event_id"].as_str(),
            e.id.as_deref(),
            "data.event_id = id line"
        );
        assert!(
            e.data["timestamp"]
                .as_i64()
                .is_some_and(|t| t > 1_700_000_000)
        );
    }
}

async fn a_two_step_task_streams_plan_steps_tools_and_the_answer_and_history_matches(
    backend: Backend,
) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let task = "[scenario:two_steps] Write a small Python program that adds 1..10 and run it.";
    let events = a.run(&session, task).await;
    ids_increase(&events);
    assert_eq!(
        trace(&events),
        [
            "message:user",
            "title",
            "plan",
            "step:1:running",
            "tool:file_write:calling",
            "tool:file_write:called",
            "tool:shell_exec:calling",
            "tool:shell_exec:called",
            "step:1:completed",
            "plan",
            "step:2:running",
            "tool:message_notify_user:calling",
            "message:assistant",
            "tool:message_notify_user:called",
            "step:2:completed",
            "plan",
            "message:assistant",
            "done",
        ]
    );
    // The user's message exactly as typed; the title and plan from the model.
    assert_eq!(events[0].data["content"], json!(task));
    assert_eq!(events[1].data["title"], "Hello from Python");
    assert_eq!(events[2].data["steps"].as_array().map(Vec::len), Some(2));
    // The shell tool's console shows the command and what Python printed.
    let shell = events
        .iter()
        .find(|e| {
            e.event == "tool" && e.data["function"] == "shell_exec" && e.data["status"] == "called"
        })
        .expect("shell called");
    assert_eq!(shell.data["name"], "shell");
    assert_eq!(shell.data["args"]["command"], "python3 hello.py");
    let console = shell.data["content"]["console"]
        .as_array()
        .expect("console");
    let last = console.last().expect("a console record");
    assert_eq!(last["command"], "python3 hello.py");
    assert!(
        last["output"]
            .as_str()
            .unwrap_or("")
            .contains("Hello from Ironhand! 1+2+...+10 = 55"),
        "{last}"
    );
    let write = events
        .iter()
        .find(|e| {
            e.event == "tool" && e.data["function"] == "file_write" && e.data["status"] == "called"
        })
        .expect("file_write called");
    assert_eq!(write.data["name"], "file");
    assert!(
        write.data["content"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("def main")
    );
    // The summary streamed as deltas that add up to the final message.
    let summary = &events[events.len() - 2];
    let deltas: String = events
        .iter()
        .filter(|e| e.event == "message_delta")
        .filter_map(|e| e.data["delta"].as_str())
        .collect();
    assert!(!deltas.is_empty(), "the summary streams");
    assert_eq!(summary.data["content"].as_str(), Some(deltas.as_str()));

    // The history is exactly what was streamed.
    let history = a.history(&session).await;
    assert_eq!(history["status"], "completed");
    assert_eq!(history["title"], "Hello from Python");
    let stored = history["events"].as_array().expect("events");
    assert_eq!(stored.len(), events.len());
    for (s, e) in stored.iter().zip(&events) {
        assert_eq!(s["event"], json!(e.event));
        assert_eq!(s["data"], e.data);
    }
    // The list shows the outcome; opening the session clears the unread count.
    let list = a.app.get("/api/v1/sessions", Some(&a.user.access)).await;
    let item = &list.data()["sessions"][0];
    assert_eq!(item["status"], "completed");
    assert_eq!(item["title"], "Hello from Python");
    assert_eq!(item["latest_message"], summary.data["content"]);
    assert_eq!(item["unread_message_count"], 2);
    a.app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{session}/clear_unread_message_count"),
            Some(&a.user.access),
            None,
        )
        .await
        .assert_ok();
    let list = a.app.get("/api/v1/sessions", Some(&a.user.access)).await;
    assert_eq!(list.data()["sessions"][0]["unread_message_count"], 0);
    // The sandbox is still there to look at: the file and the shell.
    let file = a
        .app
        .post(
            &format!("/api/v1/sessions/{session}/file"),
            Some(&a.user.access),
            json!({"file": "/home/ubuntu/hello.py"}),
        )
        .await;
    file.assert_ok();
    assert!(
        file.data()["content"]
            .as_str()
            .unwrap_or("")
            .contains("print(f\"Hello from Ironhand!")
    );
    let shell = a
        .app
        .post(
            &format!("/api/v1/sessions/{session}/shell"),
            Some(&a.user.access),
            json!({"session_id": "main"}),
        )
        .await;
    shell.assert_ok();
    assert_eq!(shell.data()["console"][0]["command"], "python3 hello.py");
    a.app
        .post(
            &format!("/api/v1/sessions/{session}/shell"),
            Some(&a.user.access),
            json!({"session_id": "nope"}),
        )
        .await
        .assert_error(404);
    // The planner was offered create_plan; the executor the contract's tools.
    let requests = a.llm.requests_for("[scenario:two_steps]");
    assert!(requests[0].offers_tool("create_plan"));
    let executor = &requests[1];
    for tool in [
        "shell_exec",
        "shell_view",
        "shell_wait",
        "shell_write_to_process",
        "shell_kill_process",
        "file_read",
        "file_write",
        "file_str_replace",
        "file_find_in_content",
        "file_find_by_name",
        "message_notify_user",
        "message_ask_user",
        "complete_step",
    ] {
        assert!(executor.offers_tool(tool), "executor offered {tool}");
    }
    assert!(
        !executor.offers_tool("info_search_web"),
        "search is off without a provider"
    );
    assert!(
        requests.iter().all(|r| !r.has_authorization()),
        "no key configured, none sent"
    );
}

async fn the_agent_asks_a_question_waits_and_the_reply_continues_the_same_work(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let task = a.script(
        one_step(
            vec![
                call(
                    "message_ask_user",
                    json!({"text": "Which colour do you like?"}),
                ),
                call(
                    "file_write",
                    json!({"file": "colour.txt", "content": "green"}),
                ),
                complete("Saved the colour"),
            ],
            "Your colour is saved in colour.txt.",
        ),
        "Ask me for a colour and save it",
    );
    let session = a.session().await;
    let first = a.run(&session, &task).await;
    assert_eq!(
        trace(&first),
        [
            "message:user",
            "title",
            "plan",
            "step:1:running",
            "tool:message_ask_user:calling",
            "message:assistant",
            "tool:message_ask_user:called",
            "wait"
        ]
    );
    assert_eq!(first[5].data["content"], "Which colour do you like?");
    let history = a.history(&session).await;
    assert_eq!(history["status"], "waiting");

    let second = a.run(&session, "green, please").await;
    assert_eq!(
        trace(&second),
        [
            "message:user",
            "tool:file_write:calling",
            "tool:file_write:called",
            "step:1:completed",
            "plan",
            "message:assistant",
            "done"
        ]
    );
    // The model saw the reply as the answer to its question, in the same conversation.
    let requests = a.llm.requests_for(&task);
    let last_executor = requests
        .iter()
        .rev()
        .find(|r| r.offers_tool("complete_step"))
        .expect("an executor request");
    let messages = last_executor.messages();
    assert!(
        messages.iter().any(|m| m["role"] == "tool"
            && m["content"]
                .as_str()
                .unwrap_or("")
                .contains("green, please")),
        "the reply reached the model as the tool result"
    );
    assert_eq!(a.history(&session).await["status"], "completed");
}

async fn a_second_task_in_the_same_session_remembers_the_first(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let first = a.script(
        one_step(vec![complete("The answer is 42")], "It is 42."),
        "What is the answer?",
    );
    let events = a.run(&session, &first).await;
    assert_eq!(names(&events).last().map(String::as_str), Some("done"));
    let second = a.script(one_step(vec![complete("Doubled it")], "84."), "Double it");
    let events = a.run(&session, &second).await;
    assert_eq!(
        events[0].data["content"],
        json!(second),
        "only the new run's events are streamed"
    );
    assert_eq!(names(&events).last().map(String::as_str), Some("done"));
    let planner = &a.llm.requests_for(&second)[0];
    assert!(
        planner.messages().iter().any(|m| m["content"]
            .as_str()
            .unwrap_or("")
            .contains("The answer is 42")),
        "the earlier task's outcome is context for the next"
    );
}

async fn the_session_list_stream_follows_a_run(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let session = a.session().await;
    let res = a
        .app
        .request(Method::POST, "/api/v1/sessions", Some(&a.user.access), None)
        .send()
        .await
        .expect("list stream");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut list = crate::sse::SseStream::new(res);
    let first = list.next().await.expect("an immediate sessions event");
    assert_eq!(first.event, "sessions");
    assert_eq!(first.data["sessions"][0]["status"], "pending");
    let task = a.script(one_step(vec![complete("ok")], "Done."), "quick task");
    a.run(&session, &task).await;
    let mut statuses = HashSet::new();
    while !statuses.contains("completed") {
        let update = list.next().await.expect("updates");
        statuses.insert(
            update.data["sessions"][0]["status"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
}
