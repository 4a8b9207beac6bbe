//! A user's connectors (MCP servers) through `/mcp/servers`: created, replaced, listed with
//! the operator's, tested and deleted; secrets never come back; one user never sees or uses
//! another's; bad input is a clear 4xx that changes nothing.

use crate::agent::mcp_servers_dir;
use crate::support::{Backend, TestApp};
use ironhand_server::config::McpServerSetting;
use reqwest::Method;
use serde_json::{Value, json};

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    a_user_keeps_connectors_of_their_own_with_write_only_secrets,
    users_never_see_or_use_each_others_connectors,
    bad_connectors_are_refused_and_change_nothing,
    an_operator_can_turn_users_connectors_off,
);

async fn put(app: &TestApp, token: &str, body: Value) -> crate::support::Reply {
    app.call(Method::PUT, "/api/v1/mcp/servers", Some(token), Some(body))
        .await
}

async fn list(app: &TestApp, token: &str) -> Value {
    let r = app.get("/api/v1/mcp/servers", Some(token)).await;
    r.assert_ok();
    r.data().clone()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn with_operator_connector(s: &mut ironhand_server::Settings) {
    s.mcp.packages_dir = Some(mcp_servers_dir());
    s.mcp.servers = vec![McpServerSetting {
        name: "everything".into(),
        command: Some("node".into()),
        args: vec![
            "/opt/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js".into(),
            "stdio".into(),
        ],
        env: [("OPERATOR_TOKEN".to_string(), "op-secret-1234".to_string())].into(),
        description: Some("Everything, for testing".into()),
        ..McpServerSetting::default()
    }];
}

async fn a_user_keeps_connectors_of_their_own_with_write_only_secrets(backend: Backend) {
    let app = TestApp::start_with(backend, with_operator_connector).await;
    let user = app
        .signed_up("mcp-owner@example.com", "correct horse")
        .await;

    let created = put(
        &app,
        &user.access,
        json!({
            "name": "tools",
            "transport": "stdio",
            "command": "node",
            "args": ["/opt/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js", "stdio"],
            "env": {"API_KEY": "user-secret-5678", "MODE": "test"},
        }),
    )
    .await;
    created.assert_ok();
    assert_eq!(created.data()["scope"], "user");
    assert_eq!(created.data()["enabled"], true);
    assert_eq!(created.data()["env_keys"], json!(["API_KEY", "MODE"]));
    assert!(created.data().get("env").is_none());

    let all = list(&app, &user.access).await;
    assert_eq!(
        names(&all),
        ["tools", "everything"],
        "own first, then the operator's"
    );
    assert_eq!(all[1]["scope"], "operator");
    assert_eq!(all[1]["env_keys"], json!(["OPERATOR_TOKEN"]));
    let shown = all.to_string();
    assert!(
        !shown.contains("user-secret-5678") && !shown.contains("op-secret-1234"),
        "{shown}"
    );

    // Test starts it (in a sandbox of its own) and lists its real tools.
    let tested = app
        .post(
            "/api/v1/mcp/servers/tools/test",
            Some(&user.access),
            json!({}),
        )
        .await;
    tested.assert_ok();
    let tools = tested.data()["tools"].to_string();
    assert!(
        tools.contains("get-sum") && tools.contains("echo"),
        "{tools}"
    );
    let tested_operator = app
        .post(
            "/api/v1/mcp/servers/everything/test",
            Some(&user.access),
            json!({}),
        )
        .await;
    tested_operator.assert_ok();
    let all = list(&app, &user.access).await;
    assert!(
        all[0]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("ready: ")),
        "{all}"
    );

    // Replacing by name: `null` keeps a stored secret, a left-out name goes, and the
    // stored value really is kept (the server gets it: its environment shows it).
    let replaced = put(
        &app,
        &user.access,
        json!({
            "name": "tools",
            "transport": "stdio",
            "command": "node",
            "args": ["/opt/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js", "stdio"],
            "env": {"API_KEY": null},
            "enabled": false,
        }),
    )
    .await;
    replaced.assert_ok();
    assert_eq!(replaced.data()["env_keys"], json!(["API_KEY"]));
    assert_eq!(replaced.data()["enabled"], false);
    let all = list(&app, &user.access).await;
    assert_eq!(names(&all), ["tools", "everything"]);
    assert!(
        all[0].get("status").is_none(),
        "a changed connector starts afresh: {all}"
    );

    // A secret can be replaced, and a remote connector lists its header names.
    put(
        &app,
        &user.access,
        json!({"name": "remote", "transport": "sse", "url": "https://mcp.example.com/sse",
               "headers": {"Authorization": "Bearer header-secret-9"}}),
    )
    .await
    .assert_ok();
    let all = list(&app, &user.access).await;
    assert_eq!(names(&all), ["remote", "tools", "everything"]);
    assert_eq!(all[0]["header_keys"], json!(["Authorization"]));
    assert!(!all.to_string().contains("header-secret-9"));

    // Deleting: the user's own only.
    let gone = app
        .call(
            Method::DELETE,
            "/api/v1/mcp/servers/remote",
            Some(&user.access),
            None,
        )
        .await;
    gone.assert_ok();
    app.call(
        Method::DELETE,
        "/api/v1/mcp/servers/remote",
        Some(&user.access),
        None,
    )
    .await
    .assert_error(404);
    app.call(
        Method::DELETE,
        "/api/v1/mcp/servers/everything",
        Some(&user.access),
        None,
    )
    .await
    .assert_error(404);
    assert_eq!(
        names(&list(&app, &user.access).await),
        ["tools", "everything"]
    );
}

async fn users_never_see_or_use_each_others_connectors(backend: Backend) {
    let app = TestApp::start(backend).await;
    let a = app.signed_up("mcp-a@example.com", "correct horse").await;
    let b = app.signed_up("mcp-b@example.com", "correct horse").await;
    put(
        &app,
        &a.access,
        json!({"name": "private", "transport": "streamable-http", "url": "https://mcp.example.com/mcp",
               "headers": {"Authorization": "Bearer a-only"}}),
    )
    .await
    .assert_ok();

    assert_eq!(names(&list(&app, &b.access).await), Vec::<String>::new());
    app.post(
        "/api/v1/mcp/servers/private/test",
        Some(&b.access),
        json!({}),
    )
    .await
    .assert_error(404);
    app.call(
        Method::DELETE,
        "/api/v1/mcp/servers/private",
        Some(&b.access),
        None,
    )
    .await
    .assert_error(404);
    // B may use the same name for their own; A's stays A's.
    put(
        &app,
        &b.access,
        json!({"name": "private", "transport": "sse", "url": "https://other.example.com/sse"}),
    )
    .await
    .assert_ok();
    let a_list = list(&app, &a.access).await;
    assert_eq!(a_list[0]["transport"], "streamable-http");
    assert_eq!(a_list[0]["header_keys"], json!(["Authorization"]));
    // Without a token: nothing.
    app.get("/api/v1/mcp/servers", None).await.assert_error(401);
}

async fn bad_connectors_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::start_with(backend, |s| {
        with_operator_connector(s);
        s.mcp.start_timeout_secs = 5;
    })
    .await;
    let user = app.signed_up("mcp-bad@example.com", "correct horse").await;
    let refused: &[(Value, u16, &str)] = &[
        (
            json!({"name": "x", "transport": "websocket", "url": "https://h.example/"}),
            422,
            "transport",
        ),
        (
            json!({"name": "x", "transport": "stdio", "command": "/bin/sh", "args": ["-c", "id"]}),
            422,
            "not a command connectors may run",
        ),
        (
            json!({"name": "x", "transport": "stdio"}),
            422,
            "needs a command",
        ),
        (
            json!({"name": "x", "transport": "streamable-http", "url": "http://127.0.0.1:5432/"}),
            422,
            "url",
        ),
        (
            json!({"name": "x", "transport": "sse", "url": "http://169.254.169.254/latest"}),
            422,
            "url",
        ),
        (
            json!({"name": "x", "transport": "sse", "url": "http://localhost:8000/sse"}),
            422,
            "url",
        ),
        (
            json!({"name": "x", "transport": "sse", "url": "http://[::1]/sse"}),
            422,
            "url",
        ),
        (
            json!({"name": "x", "transport": "sse", "url": "file:///etc/passwd"}),
            422,
            "url",
        ),
        (
            json!({"name": "a__b", "transport": "sse", "url": "https://h.example/"}),
            422,
            "name",
        ),
        (
            json!({"name": "has space", "transport": "sse", "url": "https://h.example/"}),
            422,
            "name",
        ),
        (
            json!({"name": "x", "transport": "sse", "url": "https://h.example/", "headers": {"Host": "evil"}}),
            422,
            "headers",
        ),
        (
            json!({"name": "x", "transport": "stdio", "command": "npx", "env": {"1BAD": "v"}}),
            422,
            "env",
        ),
        (
            json!({"name": "x", "transport": "stdio", "command": "npx", "env": {"NEW": null}}),
            422,
            "env",
        ),
        (
            json!({"name": "everything", "transport": "sse", "url": "https://h.example/"}),
            409,
            "this server provides",
        ),
        (json!({"name": "x"}), 422, ""),
        (
            json!({"name": "x", "transport": "stdio", "command": "npx", "args": "not a list"}),
            422,
            "",
        ),
    ];
    for (body, status, says) in refused {
        let r = put(&app, &user.access, body.clone()).await;
        r.assert_error(*status);
        let text = format!("{} {}", r.msg(), r.data()).to_lowercase();
        assert!(text.contains(&says.to_lowercase()), "{body}: {}", r.body);
    }
    assert_eq!(
        names(&list(&app, &user.access).await),
        ["everything"],
        "nothing stored"
    );

    // A server that is not an MCP server: the test says why, the connector stays.
    put(
        &app,
        &user.access,
        json!({"name": "garbage", "transport": "stdio", "command": "python3",
               "args": ["-c", "import time\nwhile True:\n    print('garbage', flush=True)\n    time.sleep(0.05)"]}),
    )
    .await
    .assert_ok();
    let tested = app
        .post(
            "/api/v1/mcp/servers/garbage/test",
            Some(&user.access),
            json!({}),
        )
        .await;
    tested.assert_error(502);
    assert!(
        tested.msg().starts_with("failed to start"),
        "{}",
        tested.body
    );
    let all = list(&app, &user.access).await;
    assert!(
        all[0]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("failed to start")),
        "{all}"
    );
}

async fn an_operator_can_turn_users_connectors_off(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.mcp.user_servers = false).await;
    let user = app.signed_up("mcp-off@example.com", "correct horse").await;
    let r = put(
        &app,
        &user.access,
        json!({"name": "x", "transport": "sse", "url": "https://h.example/sse"}),
    )
    .await;
    r.assert_error(403);
    assert_eq!(list(&app, &user.access).await, json!([]));
}
