//! The tools through the agent: web search when configured, and a sandbox that keeps a
//! command inside its session.

use super::{AgentApp, call, complete, one_step, trace};
use crate::on_both_backends;
use crate::sse::SseEvent;
use crate::support::Backend;
use ironhand_fakes::search::FakeSearch;
use serde_json::{Value, json};

on_both_backends!(
    web_search_is_offered_when_configured_and_results_reach_the_user_sanitised,
    a_command_cannot_reach_other_sessions_or_the_servers_files,
    an_endless_loop_is_stopped_at_the_time_limit_and_reported,
    with_the_network_off_a_command_cannot_connect_anywhere,
);

fn called<'a>(events: &'a [SseEvent], function: &str) -> Vec<&'a SseEvent> {
    events
        .iter()
        .filter(|e| {
            e.event == "tool" && e.data["function"] == function && e.data["status"] == "called"
        })
        .collect()
}

fn shell_output(event: &SseEvent) -> String {
    event.data["content"]["console"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|r| r["output"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn web_search_is_offered_when_configured_and_results_reach_the_user_sanitised(
    backend: Backend,
) {
    let search = FakeSearch::start().await;
    let a = AgentApp::start_with(backend, |s| {
        s.search.provider = Some("searxng".into());
        s.search.url = Some(search.url());
    })
    .await;
    let task = a.script(
        one_step(
            vec![
                call(
                    "info_search_web",
                    json!({"query": "rust agents", "date_range": "past_week"}),
                ),
                complete("found it"),
            ],
            "Here is what I found.",
        ),
        "search the web",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    let found = called(&events, "info_search_web");
    assert_eq!(found.len(), 1, "{:?}", trace(&events));
    assert_eq!(found[0].data["name"], "search");
    let results = found[0].data["content"]["results"]
        .as_array()
        .expect("results");
    assert!(!results.is_empty());
    for r in results {
        let link = r["link"].as_str().unwrap_or("");
        assert!(
            link.starts_with("http://") || link.starts_with("https://"),
            "{link}"
        );
        assert!(!r["snippet"].as_str().unwrap_or("").contains('<'), "{r}");
    }
    assert!(a.llm.requests_for(&task)[1].offers_tool("info_search_web"));
    assert_eq!(search.requests()[0].param("time_range"), Some("week"));
}

async fn a_command_cannot_reach_other_sessions_or_the_servers_files(backend: Backend) {
    let a = AgentApp::start(backend).await;
    let first = a.session().await;
    let secret = a.script(
        one_step(
            vec![
                call(
                    "file_write",
                    json!({"file": "secret.txt", "content": "first session's secret"}),
                ),
                complete("ok"),
            ],
            "ok",
        ),
        "keep a secret",
    );
    a.run(&first, &secret).await;
    let data_dir = a.app.settings.server.data_dir.clone();
    let host_path = data_dir
        .join("sandboxes")
        .join(&first)
        .join("home")
        .join("secret.txt");
    assert!(
        host_path.exists(),
        "the first session's file is on the host at {}",
        host_path.display()
    );
    let database = data_dir.join("ironhand.db");
    let jwt = data_dir.join("secrets").join("jwt_secret");
    let command = format!(
        "cat {} ; cat {} ; cat {} ; ls /home ; cat /etc/shadow ; echo LLM_KEY=${{LLM_API_KEY:-unset}}",
        host_path.display(),
        database.display(),
        jwt.display()
    );
    let snoop = a.script(
        one_step(
            vec![
                call(
                    "shell_exec",
                    json!({"id": "main", "exec_dir": "/home/ubuntu", "command": command}),
                ),
                call(
                    "file_read",
                    json!({"file": format!("../../{first}/home/secret.txt")}),
                ),
                call(
                    "file_read",
                    json!({"file": host_path.display().to_string()}),
                ),
                complete("tried"),
            ],
            "I could not read anything else.",
        ),
        "snoop around",
    );
    let second = a.session().await;
    let events = a.run(&second, &snoop).await;
    let shell = called(&events, "shell_exec");
    let output = shell_output(shell[0]);
    assert!(!output.contains("first session's secret"), "{output}");
    assert!(!output.contains("SQLite format"), "{output}");
    assert!(!output.contains("root:"), "no /etc/shadow: {output}");
    assert!(
        output.contains("LLM_KEY=unset"),
        "the server's environment stays outside: {output}"
    );
    let reads = called(&events, "file_read");
    assert_eq!(reads.len(), 2);
    for read in reads {
        assert!(read.data["content"].is_null(), "{}", read.data);
    }
    let requests = a.llm.requests_for(&snoop);
    let seen: Vec<Value> = requests
        .iter()
        .flat_map(|r| r.messages().to_vec())
        .collect();
    assert!(!seen.iter().any(|m| {
        m["content"]
            .as_str()
            .unwrap_or("")
            .contains("first session's secret")
    }));
}

async fn an_endless_loop_is_stopped_at_the_time_limit_and_reported(backend: Backend) {
    let a = AgentApp::start_with(backend, |s| {
        s.sandbox.foreground_wait_secs = 1;
        s.sandbox.command_timeout_secs = 2;
    })
    .await;
    let task = a.script(
        one_step(
            vec![
                call("shell_exec", json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "while true; do :; done"})),
                call("shell_wait", json!({"id": "main", "seconds": 10})),
                call("shell_exec", json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "echo still here"})),
                complete("the loop was stopped"),
            ],
            "The loop was stopped.",
        ),
        "loop forever",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    assert_eq!(trace(&events).last().map(String::as_str), Some("done"));
    let seen: Vec<String> = a
        .llm
        .requests_for(&task)
        .iter()
        .flat_map(|r| r.messages().to_vec())
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        seen.iter()
            .any(|t| t.contains("time limit") || t.contains("wall time")),
        "{seen:?}"
    );
    let after = called(&events, "shell_exec");
    assert!(
        shell_output(after[1]).contains("still here"),
        "the shell is usable after the limit"
    );
}

async fn with_the_network_off_a_command_cannot_connect_anywhere(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let probe = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\" || echo BLOCKED"
    );
    for network in [false, true] {
        let a = AgentApp::start_with(backend, |s| s.sandbox.network = network).await;
        let task = a.script(
            one_step(
                vec![
                    call(
                        "shell_exec",
                        json!({"id": "main", "exec_dir": "/home/ubuntu", "command": probe}),
                    ),
                    complete("probed"),
                ],
                "ok",
            ),
            "probe the network",
        );
        let session = a.session().await;
        let events = a.run(&session, &task).await;
        let output = shell_output(called(&events, "shell_exec")[0]);
        if network {
            assert!(output.contains("CONNECTED"), "network on: {output}");
        } else {
            assert!(
                output.contains("BLOCKED") && !output.contains("CONNECTED"),
                "network off: {output}"
            );
        }
    }
}
