//! The tools through the agent: web search when configured, and a sandbox that keeps a
//! command inside its session.

use super::{AgentApp, call, complete, one_step, trace};
use crate::sse::SseEvent;
use crate::support::Backend;
use ironhand_fakes::search::FakeSearch;
use serde_json::{Value, json};

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    web_search_is_offered_when_configured_and_results_reach_the_user_sanitised,
    a_command_cannot_reach_other_sessions_or_the_servers_files,
    an_endless_loop_is_stopped_at_the_time_limit_and_reported,
    the_network_reaches_out_but_never_the_hosts_loopback_and_off_means_off,
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

/// The host's address on its default route (not loopback), if it has one.
fn outside_ipv4() -> Option<std::net::IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.254:9").ok()?; // nothing is sent
    Some(probe.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

async fn listener_on(ip: std::net::IpAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    port
}

fn probe(ip: std::net::IpAddr, port: u16) -> String {
    format!(
        "python3 -c \"import socket; socket.create_connection(('{ip}', {port}), timeout=3); print('CONNECTED')\" || echo BLOCKED"
    )
}

/// With the network on, commands reach the outside world but never the host's loopback
/// (where the database, Redis and the API itself listen); with it off, nothing at all.
async fn the_network_reaches_out_but_never_the_hosts_loopback_and_off_means_off(backend: Backend) {
    let loopback: std::net::IpAddr = [127, 0, 0, 1].into();
    let local_port = listener_on(loopback).await;
    let outside = outside_ipv4();
    let outside_port = match outside {
        Some(ip) => Some(listener_on(ip).await),
        None => None,
    };
    for network in [false, true] {
        let a = AgentApp::start_with(backend, |s| {
            s.sandbox.network = network;
            // The host's own addresses are refused by the egress filter; allowed here (for
            // a sandbox user of this test's own) to show what it lets through is reached.
            s.sandbox.run_as_uid = 60000 + (std::process::id() % 500) + 1700;
            s.sandbox.run_as_gid = s.sandbox.run_as_uid;
            s.sandbox.egress_allow = outside.iter().map(|ip| ip.to_string()).collect();
        })
        .await;
        let mut commands = vec![call(
            "shell_exec",
            json!({"id": "main", "exec_dir": "/home/ubuntu", "command": probe(loopback, local_port)}),
        )];
        if let (Some(ip), Some(port)) = (outside, outside_port) {
            commands.push(call(
                "shell_exec",
                json!({"id": "main", "exec_dir": "/home/ubuntu", "command": probe(ip, port)}),
            ));
        }
        commands.push(complete("probed"));
        let task = a.script(one_step(commands, "ok"), "probe the network");
        let session = a.session().await;
        let events = a.run(&session, &task).await;
        let outputs: Vec<String> = called(&events, "shell_exec")
            .into_iter()
            .map(shell_output)
            .collect();
        assert!(
            outputs[0].contains("BLOCKED") && !outputs[0].contains("CONNECTED"),
            "host loopback, network {network}: {}",
            outputs[0]
        );
        match outputs.get(1) {
            Some(out) if network => {
                assert!(out.contains("CONNECTED"), "outside, network on: {out}")
            }
            Some(out) => assert!(
                out.contains("BLOCKED") && !out.contains("CONNECTED"),
                "outside, network off: {out}"
            ),
            None => {
                eprintln!("no non-loopback address on this host: outside connectivity not checked")
            }
        }
    }
}
