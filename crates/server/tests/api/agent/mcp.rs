//! Connectors end to end: real third-party MCP servers (npm's server-everything and
//! server-filesystem over stdio inside the session's sandbox, the Python SDK's server over
//! streamable HTTP) called by the agent through `mcp__<server>__<tool>`.

use super::{AgentApp, call, complete, one_step, tool_results, trace};
use crate::sse::SseEvent;
use crate::support::Backend;
use ironhand_server::config::McpServerSetting;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    the_agent_uses_stdio_connectors_inside_its_sandbox,
    a_users_remote_connector_answers_with_its_headers_and_images,
    connectors_tools_are_cut_to_the_configured_maximum,
);

/// The project's installed MCP servers (`scripts/install-mcp-servers.sh`).
pub fn mcp_servers_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../mcp-servers");
    let everything = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        everything.is_file(),
        "the MCP test servers are not installed: run scripts/install-mcp-servers.sh (make test does)"
    );
    dir.canonicalize().expect("mcp-servers")
}

fn node_server(name: &str, package: &str, args: &[&str], env: &[(&str, &str)]) -> McpServerSetting {
    let mut all = vec![format!(
        "/opt/mcp/node_modules/@modelcontextprotocol/{package}/dist/index.js"
    )];
    all.extend(args.iter().map(|a| a.to_string()));
    McpServerSetting {
        name: name.into(),
        command: Some("node".into()),
        args: all,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..McpServerSetting::default()
    }
}

fn mcp_events(events: &[SseEvent]) -> Vec<&SseEvent> {
    events
        .iter()
        .filter(|e| e.event == "tool" && e.data["name"] == "mcp" && e.data["status"] == "called")
        .collect()
}

async fn the_agent_uses_stdio_connectors_inside_its_sandbox(backend: Backend) {
    let packages = mcp_servers_dir();
    let a = AgentApp::start_with(backend, |s| {
        s.sandbox.memory_mb = 2048;
        s.sandbox.cpu_seconds = 60;
        s.mcp.packages_dir = Some(packages);
        s.mcp.servers = vec![
            node_server(
                "everything",
                "server-everything",
                &["stdio"],
                &[("CONNECTOR_SETTING", "for-everything")],
            ),
            node_server("files", "server-filesystem", &["/home/ubuntu"], &[]),
        ];
    })
    .await;
    let task = a.script(
        one_step(
            vec![
                call(
                    "shell_exec",
                    json!({"id": "main", "exec_dir": "/home/ubuntu", "command": "echo workspace-marker-42 > notes.txt && echo written"}),
                ),
                call("mcp__files__read_text_file", json!({"path": "/home/ubuntu/notes.txt"})),
                call("mcp__files__read_text_file", json!({"path": "/etc/passwd"})),
                call("mcp__everything__get-env", json!({})),
                call("mcp__everything__get-sum", json!({"a": 2, "b": 40})),
                call("mcp__everything__get-tiny-image", json!({})),
                call("mcp__everything__no-such-tool", json!({})),
                complete("used the connectors"),
            ],
            "The connectors answered.",
        ),
        "use the connectors",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    assert_eq!(
        trace(&events).last().map(String::as_str),
        Some("done"),
        "{:?}",
        trace(&events)
    );

    let requests = a.llm.requests_for(&task);
    let executor = &requests[1];
    assert!(
        executor.offers_tool("mcp__everything__get-sum"),
        "connector tools are offered"
    );
    assert!(executor.offers_tool("mcp__files__read_text_file"));
    assert!(
        executor.offers_tool("shell_exec"),
        "after the built-in tools"
    );

    let results = tool_results(&a, &task);
    let text = |i: usize| results.get(i).map(Value::to_string).unwrap_or_default();
    // The filesystem server sees the sandbox's workspace: what the shell wrote…
    assert_eq!(results[1]["success"], true, "{}", text(1));
    assert!(text(1).contains("workspace-marker-42"), "{}", text(1));
    // …and nothing outside the directory it was given.
    assert!(
        results[2]["success"] == false || text(2).contains("denied"),
        "{}",
        text(2)
    );
    assert!(!text(2).contains("root:x:0:0"), "{}", text(2));
    // Its environment is the sandbox's basics plus exactly what was configured.
    let env = results[3]["data"]["result"].as_str().unwrap_or_default();
    assert!(
        env.contains("\"CONNECTOR_SETTING\": \"for-everything\""),
        "{env}"
    );
    assert!(env.contains("\"HOME\": \"/home/ubuntu\""), "{env}");
    for secret in [
        "DATABASE_URL",
        "LLM_API_KEY",
        "REDIS_URL",
        "JWT",
        "TEST_",
        "CARGO",
        "RUST",
    ] {
        assert!(
            !env.to_uppercase().contains(secret),
            "{secret} leaked: {env}"
        );
    }
    assert!(text(4).contains("42"), "the server's own sum: {}", text(4));
    // An image becomes a file of the session.
    let files = &results[5]["data"]["files"];
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{}", text(5));
    assert_eq!(files[0]["content_type"], "image/png", "{}", text(5));
    // A tool the session was not offered is a failed result, not a crashed run.
    assert_eq!(results[6]["success"], false, "{}", text(6));

    // The tool events: group `mcp`, the function as called, `content.result`.
    let called = mcp_events(&events);
    assert_eq!(called.len(), 5, "{:?}", trace(&events));
    assert_eq!(called[0].data["function"], "mcp__files__read_text_file");
    assert_eq!(called[0].data["args"]["path"], "/home/ubuntu/notes.txt");
    assert!(
        called[0].data["content"]["result"]
            .as_str()
            .is_some_and(|r| r.contains("workspace-marker-42")),
        "{}",
        called[0].data
    );
    let listed = a
        .app
        .get(
            &format!("/api/v1/sessions/{session}/files"),
            Some(&a.user.access),
        )
        .await;
    listed.assert_ok();
    assert!(
        listed
            .data()
            .to_string()
            .contains("everything-get-tiny-image"),
        "{}",
        listed.data()
    );

    // The settings page reads the connectors' state.
    let servers = a.app.get("/api/v1/mcp/servers", Some(&a.user.access)).await;
    servers.assert_ok();
    let list = servers.data().as_array().expect("list").clone();
    let everything = list
        .iter()
        .find(|s| s["name"] == "everything")
        .expect("listed");
    assert_eq!(everything["scope"], "operator");
    assert_eq!(everything["env_keys"], json!(["CONNECTOR_SETTING"]));
    assert!(
        !servers.body.to_string().contains("for-everything"),
        "values stay out"
    );
    assert!(
        everything["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("ready:")),
        "{everything}"
    );
}

/// The Python SDK's demo server on a free port, over `transport`.
pub struct DemoServer {
    child: tokio::process::Child,
    pub port: u16,
}

impl DemoServer {
    pub async fn start(transport: &str) -> Self {
        let dir = mcp_servers_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = tokio::process::Command::new(dir.join(".venv/bin/python"))
            .arg(dir.join("demo_server.py"))
            .args([transport, "127.0.0.1", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the demo MCP server starts (scripts/install-mcp-servers.sh)");
        for _ in 0..150 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { child, port };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the demo MCP server did not listen on {port}");
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn a_users_remote_connector_answers_with_its_headers_and_images(backend: Backend) {
    let demo = DemoServer::start("streamable-http").await;
    let a = AgentApp::start_with(backend, |s| {
        // The demo server listens on this host's loopback: allowed for this test's users.
        s.mcp.user_private_urls = true;
    })
    .await;
    let secret = "Bearer sk-demo-7731-secret";
    let put = a
        .app
        .call(
            reqwest::Method::PUT,
            "/api/v1/mcp/servers",
            Some(&a.user.access),
            Some(json!({
                "name": "demo",
                "transport": "streamable-http",
                "url": format!("http://127.0.0.1:{}/mcp", demo.port),
                "headers": {"Authorization": secret, "X-Demo": "hello"},
            })),
        )
        .await;
    put.assert_ok();
    assert_eq!(
        put.data()["header_keys"],
        json!(["Authorization", "X-Demo"])
    );
    assert!(!put.body.to_string().contains("sk-demo"), "{}", put.body);

    let tested = a
        .app
        .post(
            "/api/v1/mcp/servers/demo/test",
            Some(&a.user.access),
            json!({}),
        )
        .await;
    tested.assert_ok();
    let names: Vec<&str> = tested.data()["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"add") && names.contains(&"echo_headers"),
        "{names:?}"
    );

    let task = a.script(
        one_step(
            vec![
                call("mcp__demo__add", json!({"a": 20, "b": 22})),
                call(
                    "mcp__demo__echo_headers",
                    json!({"expected_authorization": secret}),
                ),
                call("mcp__demo__fail", json!({"reason": "deliberately"})),
                call("mcp__demo__add", json!({"a": "not a number"})),
                complete("added"),
            ],
            "42.",
        ),
        "add with the demo connector",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    assert_eq!(
        trace(&events).last().map(String::as_str),
        Some("done"),
        "{:?}",
        trace(&events)
    );
    let results = tool_results(&a, &task);
    let text = |i: usize| results.get(i).map(Value::to_string).unwrap_or_default();
    assert_eq!(results[0]["success"], true, "{}", text(0));
    assert!(text(0).contains("42"), "{}", text(0));
    assert!(
        text(1).contains("authorization=match x-demo=hello"),
        "{}",
        text(1)
    );
    assert_eq!(results[2]["success"], false, "a tool error: {}", text(2));
    assert!(text(2).contains("deliberately"), "{}", text(2));
    assert_eq!(results[3]["success"], false, "bad arguments: {}", text(3));

    // The header's value is in no event and no stored record the API shows (the model's
    // own arguments carried it in this story, and those are the model's).
    let history = a.history(&session).await.to_string();
    let called = mcp_events(&events);
    assert_eq!(called.len(), 4);
    for event in &called {
        assert!(
            !event.data["content"].to_string().contains("sk-demo"),
            "{}",
            event.data
        );
    }
    assert!(history.contains("mcp__demo__add"));
    let listed = a.app.get("/api/v1/mcp/servers", Some(&a.user.access)).await;
    assert!(
        !listed.body.to_string().contains("sk-demo"),
        "{}",
        listed.body
    );
    assert_eq!(
        listed.data()[0]["status"],
        "ready: 4 tools",
        "{}",
        listed.body
    );
}

async fn connectors_tools_are_cut_to_the_configured_maximum(backend: Backend) {
    let packages = mcp_servers_dir();
    let a = AgentApp::start_with(backend, |s| {
        s.mcp.packages_dir = Some(packages);
        s.mcp.max_tools = 3;
        s.mcp.servers = vec![node_server(
            "everything",
            "server-everything",
            &["stdio"],
            &[],
        )];
    })
    .await;
    let task = a.script(
        one_step(vec![complete("nothing to do")], "Done."),
        "a short task",
    );
    let session = a.session().await;
    let events = a.run(&session, &task).await;
    assert_eq!(trace(&events).last().map(String::as_str), Some("done"));
    let requests = a.llm.requests_for(&task);
    let offered: Vec<String> = requests[1]
        .body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    let connector_tools: Vec<&String> = offered.iter().filter(|n| n.starts_with("mcp__")).collect();
    assert_eq!(connector_tools.len(), 3, "{offered:?}");
    let last_builtin = offered
        .iter()
        .rposition(|n| !n.starts_with("mcp__") && n != "complete_step")
        .expect("built-in tools");
    let first_connector = offered
        .iter()
        .position(|n| n.starts_with("mcp__"))
        .expect("connector tools");
    assert!(
        last_builtin < first_connector,
        "built-ins first: {offered:?}"
    );
}
