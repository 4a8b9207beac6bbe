//! The MCP client against real third-party servers, installed by
//! `scripts/install-mcp-servers.sh` (`make mcp-deps`, which `make test` runs first):
//! npm's `@modelcontextprotocol/server-everything` and `server-filesystem` over stdio (and
//! server-everything over HTTP), a Python server on PyPI's `mcp` SDK
//! (`mcp-servers/demo_server.py`) over streamable HTTP and legacy SSE; plus servers that
//! misbehave (garbage, silence, oversized output, death) and the URL policy.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ironhand_mcp::{
    McpClient, McpContent, McpError, Remote, RemoteTransport, check_url, policy::resolve_public,
};
use serde_json::json;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const CONNECT: Duration = Duration::from_secs(20);
const CALL: Duration = Duration::from_secs(20);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/mcp sits two levels below the repository root")
        .to_path_buf()
}

/// A file the install script provides; fails with what to run when it is missing.
fn installed(relative: &str) -> PathBuf {
    let path = repo_root().join(relative);
    assert!(
        path.exists(),
        "{} is missing: the MCP test servers are not installed; run scripts/install-mcp-servers.sh \
         (or `make mcp-deps`) first",
        path.display()
    );
    path
}

const EVERYTHING: &str =
    "mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
const FILESYSTEM: &str =
    "mcp-servers/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js";
const VENV_PYTHON: &str = "mcp-servers/.venv/bin/python";
const DEMO_SERVER: &str = "mcp-servers/demo_server.py";

/// A stdio server: the child (killed on drop) and its pipes.
fn spawn_stdio(program: &str, args: &[&str]) -> (Child, ChildStdout, ChildStdin) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdout, stdin)
}

async fn connect_node(script: &Path, args: &[&str]) -> (Child, McpClient) {
    let mut all = vec![script.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let (child, stdout, stdin) = spawn_stdio("node", &all);
    let client = McpClient::connect_stdio(stdout, stdin, CONNECT)
        .await
        .unwrap_or_else(|e| panic!("{} did not initialise: {e}", script.display()));
    (child, client)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server on 127.0.0.1:`port` (killed on drop), once it accepts connections.
async fn start_http_server(mut command: Command, port: u16) -> Child {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server on port {port} exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the server did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_demo(transport: &str) -> (Child, u16) {
    let python = installed(VENV_PYTHON);
    let script = installed(DEMO_SERVER);
    let port = free_port();
    let mut command = Command::new(python);
    command
        .arg(script)
        .args([transport, "127.0.0.1", &port.to_string()]);
    (start_http_server(command, port).await, port)
}

async fn start_everything_http(transport: &str) -> (Child, u16) {
    let script = installed(EVERYTHING);
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg(script)
        .arg(transport)
        .env("PORT", port.to_string());
    (start_http_server(command, port).await, port)
}

fn remote(url: String, transport: RemoteTransport) -> Remote {
    Remote {
        url,
        headers: vec![
            ("Authorization".into(), "Bearer test-token-123".into()),
            ("X-Demo".into(), "demo-value".into()),
        ],
        transport,
        allow_private: true,
    }
}

fn text_of(content: &[McpContent]) -> String {
    content
        .iter()
        .filter_map(|c| match c {
            McpContent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn png(content: &[McpContent]) -> &[u8] {
    let data = content
        .iter()
        .find_map(|c| match c {
            McpContent::Image { mime_type, data } if mime_type == "image/png" => Some(data),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no PNG image in {content:?}"));
    assert!(
        data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "decoded bytes are a PNG"
    );
    data
}

#[tokio::test]
async fn stdio_server_everything() {
    let script = installed(EVERYTHING);
    let (mut child, client) = connect_node(&script, &["stdio"]).await;
    assert_eq!(
        client.server_name().as_deref(),
        Some("mcp-servers/everything")
    );

    let tools = client.list_tools(CALL).await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in ["echo", "get-sum", "get-tiny-image"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let echo = tools.iter().find(|t| t.name == "echo").expect("echo");
    assert!(!echo.description.is_empty());
    assert_eq!(echo.input_schema["type"], "object");
    assert!(
        echo.input_schema["properties"]["message"].is_object(),
        "{}",
        echo.input_schema
    );

    let result = client
        .call_tool("echo", json!({"message": "hello ironhand"}), CALL)
        .await
        .expect("echo");
    assert!(!result.is_error);
    assert_eq!(result.text(), "Echo: hello ironhand");

    let result = client
        .call_tool("get-sum", json!({"a": 2, "b": 40}), CALL)
        .await
        .expect("get-sum");
    assert_eq!(result.text(), "The sum of 2 and 40 is 42.");

    let result = client
        .call_tool("get-tiny-image", json!({}), CALL)
        .await
        .expect("get-tiny-image");
    assert!(png(&result.content).len() > 100);
    assert!(text_of(&result.content).contains("MCP logo"));

    // An unknown tool: a JSON-RPC error or an error result, never a panic.
    match client.call_tool("no-such-tool", json!({}), CALL).await {
        Err(McpError::Rpc { message, .. }) => {
            assert!(message.contains("no-such-tool"), "{message}")
        }
        Ok(result) => assert!(result.is_error, "{result:?}"),
        Err(other) => panic!("unexpected error for an unknown tool: {other}"),
    }
    // Arguments that are not an object are refused before any call.
    assert!(matches!(
        client.call_tool("echo", json!("hello"), CALL).await,
        Err(McpError::Protocol(_))
    ));
    // Invalid arguments: the server says so.
    match client.call_tool("get-sum", json!({"a": "x"}), CALL).await {
        Err(McpError::Rpc { .. }) => {}
        Ok(result) => assert!(result.is_error, "{result:?}"),
        Err(other) => panic!("unexpected error for invalid arguments: {other}"),
    }

    // Concurrent calls share the session.
    let calls = (0..8).map(|i| client.call_tool("echo", json!({"message": format!("m{i}")}), CALL));
    for (i, result) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            result.expect("concurrent echo").text(),
            format!("Echo: m{i}")
        );
    }

    // The server dies: the client sees the session closed, calls fail with Closed.
    assert!(!client.is_closed());
    child.kill().await.expect("kill the server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_closed() {
        assert!(
            Instant::now() < deadline,
            "is_closed stays false after the server died"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        client
            .call_tool("echo", json!({"message": "x"}), CALL)
            .await,
        Err(McpError::Closed)
    ));
    client.close().await;
}

#[tokio::test]
async fn stdio_server_filesystem() {
    let script = installed(FILESYSTEM);
    let root = tempfile::tempdir().expect("tempdir");
    let root_path = root.path().canonicalize().expect("canonical root");
    std::fs::write(root_path.join("hello.txt"), "hi from the file\n").expect("write");
    std::fs::create_dir(root_path.join("sub")).expect("mkdir");
    let root_str = root_path.to_str().expect("utf-8 root");
    let (_child, client) = connect_node(&script, &[root_str]).await;

    let tools = client.list_tools(CALL).await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in ["list_directory", "read_text_file", "write_file"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    let listing = client
        .call_tool("list_directory", json!({"path": root_str}), CALL)
        .await
        .expect("list_directory");
    assert!(!listing.is_error, "{listing:?}");
    let text = listing.text();
    assert!(
        text.contains("[FILE] hello.txt") && text.contains("[DIR] sub"),
        "{text}"
    );

    let file = root_path.join("hello.txt");
    let read = client
        .call_tool(
            "read_text_file",
            json!({"path": file.to_str().expect("utf-8")}),
            CALL,
        )
        .await
        .expect("read_text_file");
    assert!(!read.is_error);
    assert_eq!(read.text(), "hi from the file\n");

    // Outside the allowed directory: the server's own refusal, as an error result.
    let denied = client
        .call_tool("read_text_file", json!({"path": "/etc/hostname"}), CALL)
        .await;
    match denied {
        Ok(result) => assert!(
            result.is_error && result.text().contains("denied"),
            "{result:?}"
        ),
        Err(McpError::Rpc { .. }) => {}
        Err(other) => panic!("unexpected: {other}"),
    }
    client.close().await;
}

/// The demo server's tools, over either remote transport.
async fn exercise_demo(client: &McpClient) {
    let tools = client.list_tools(CALL).await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo_headers", "fail", "tiny_image"]);
    let add = tools.iter().find(|t| t.name == "add").expect("add");
    assert_eq!(add.description, "Adds two integers.");
    assert_eq!(add.input_schema["properties"]["a"]["type"], "integer");

    let sum = client
        .call_tool("add", json!({"a": 2, "b": 40}), CALL)
        .await
        .expect("add");
    assert!(!sum.is_error);
    assert_eq!(sum.text(), "42");
    assert_eq!(sum.structured, Some(json!({"result": 42})));

    let headers = client
        .call_tool(
            "echo_headers",
            json!({"expected_authorization": "Bearer test-token-123"}),
            CALL,
        )
        .await
        .expect("echo_headers");
    assert_eq!(headers.text(), "authorization=match x-demo=demo-value");

    let image = client
        .call_tool("tiny_image", json!({}), CALL)
        .await
        .expect("tiny_image");
    assert_eq!(png(&image.content).len(), 73, "the server's 2x2 PNG");

    let failed = client
        .call_tool("fail", json!({"reason": "on purpose"}), CALL)
        .await
        .expect("a tool error is a result");
    assert!(failed.is_error);
    assert!(failed.text().contains("on purpose"), "{failed:?}");
}

#[tokio::test]
async fn streamable_http_python_server() {
    let (_server, port) = start_demo("streamable-http").await;
    let client = McpClient::connect_remote(
        &remote(
            format!("http://127.0.0.1:{port}/mcp"),
            RemoteTransport::StreamableHttp,
        ),
        CONNECT,
    )
    .await
    .expect("initialise over streamable HTTP");
    assert_eq!(client.server_name().as_deref(), Some("ironhand-demo"));
    exercise_demo(&client).await;

    // Without the header the server sees none (the headers are ours, not ambient).
    let mut bare = remote(
        format!("http://127.0.0.1:{port}/mcp"),
        RemoteTransport::StreamableHttp,
    );
    bare.headers.clear();
    let bare = McpClient::connect_remote(&bare, CONNECT)
        .await
        .expect("initialise");
    let result = bare
        .call_tool(
            "echo_headers",
            json!({"expected_authorization": "Bearer test-token-123"}),
            CALL,
        )
        .await
        .expect("echo_headers");
    assert_eq!(result.text(), "authorization=missing x-demo=<none>");
    bare.close().await;
    client.close().await;
}

#[tokio::test]
async fn legacy_sse_python_server() {
    let (mut server, port) = start_demo("sse").await;
    let client = McpClient::connect_remote(
        &remote(format!("http://127.0.0.1:{port}/sse"), RemoteTransport::Sse),
        CONNECT,
    )
    .await
    .expect("initialise over legacy SSE");
    assert_eq!(client.server_name().as_deref(), Some("ironhand-demo"));
    exercise_demo(&client).await;

    // The server goes away: the event stream ends, the session is closed.
    server.kill().await.expect("kill the server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_closed() {
        assert!(
            Instant::now() < deadline,
            "is_closed stays false after the SSE server died"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        client
            .call_tool("add", json!({"a": 1, "b": 2}), CALL)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn node_server_everything_over_http() {
    // The other implementation of both HTTP transports (the TypeScript SDK's).
    let (_sse, sse_port) = start_everything_http("sse").await;
    let client = McpClient::connect_remote(
        &remote(
            format!("http://127.0.0.1:{sse_port}/sse"),
            RemoteTransport::Sse,
        ),
        CONNECT,
    )
    .await
    .expect("initialise server-everything over legacy SSE");
    let result = client
        .call_tool("echo", json!({"message": "over sse"}), CALL)
        .await
        .expect("echo over sse");
    assert_eq!(result.text(), "Echo: over sse");
    client.close().await;

    let (_http, http_port) = start_everything_http("streamableHttp").await;
    let client = McpClient::connect_remote(
        &remote(
            format!("http://127.0.0.1:{http_port}/mcp"),
            RemoteTransport::StreamableHttp,
        ),
        CONNECT,
    )
    .await
    .expect("initialise server-everything over streamable HTTP");
    let tools = client.list_tools(CALL).await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "get-tiny-image"));
    let result = client
        .call_tool("get-tiny-image", json!({}), CALL)
        .await
        .expect("get-tiny-image over HTTP");
    png(&result.content);
    client.close().await;
}

#[tokio::test]
async fn wrong_transport_or_path_fails_cleanly() {
    let (_server, port) = start_demo("streamable-http").await;
    // Legacy SSE against a streamable HTTP server's unknown path: an HTTP error, quickly.
    let started = Instant::now();
    let error = McpClient::connect_remote(
        &remote(format!("http://127.0.0.1:{port}/sse"), RemoteTransport::Sse),
        CONNECT,
    )
    .await
    .expect_err("no SSE endpoint there");
    assert!(
        matches!(error, McpError::Http(_) | McpError::Protocol(_)),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing listening: an error within the deadline.
    let closed_port = free_port();
    let error = McpClient::connect_remote(
        &remote(
            format!("http://127.0.0.1:{closed_port}/mcp"),
            RemoteTransport::StreamableHttp,
        ),
        Duration::from_secs(5),
    )
    .await
    .expect_err("nothing listens");
    assert!(!matches!(error, McpError::Refused(_)), "{error}");
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let (_server, port) = start_demo("streamable-http").await;
    for url in [
        format!("http://127.0.0.1:{port}/mcp"),
        format!("http://localhost:{port}/mcp"),
        format!("http://[::1]:{port}/mcp"),
        format!("http://[::ffff:127.0.0.1]:{port}/mcp"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/mcp".to_owned(),
    ] {
        for transport in [RemoteTransport::StreamableHttp, RemoteTransport::Sse] {
            let mut config = remote(url.clone(), transport);
            config.allow_private = false;
            let started = Instant::now();
            match McpClient::connect_remote(&config, CONNECT).await {
                Err(McpError::Refused(message)) => {
                    assert!(!message.contains("test-token"), "{message}")
                }
                other => panic!("{url} should be refused, got {other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "refused without connecting"
            );
        }
    }
    assert!(matches!(
        check_url("ftp://example.com/", true),
        Err(McpError::Refused(_))
    ));
    assert!(matches!(
        check_url("https://user:pass@example.com/mcp", false),
        Err(McpError::Refused(_))
    ));

    // A name that resolves to loopback passes the literal check and is refused by the
    // resolver (DNS rebinding to 127.0.0.1 fails the same way).
    match resolve_public("localhost", port).await {
        Err(McpError::Refused(message)) => assert!(message.contains("localhost"), "{message}"),
        other => panic!("localhost must not resolve to a usable address: {other:?}"),
    }
    // Through the HTTP client: this machine's own name, when it resolves to loopback only
    // (as on Debian, where /etc/hosts maps it to 127.0.x.1), points at the running server.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((hostname.as_str(), port))
        .await
        .map(|a| a.collect())
        .unwrap_or_default();
    if !hostname.is_empty() && !addrs.is_empty() && addrs.iter().all(|a| is_loopback(a.ip())) {
        let url = format!("http://{hostname}:{port}/mcp");
        assert!(
            check_url(&url, false).is_ok(),
            "a plain name passes the literal check"
        );
        let mut config = remote(url.clone(), RemoteTransport::StreamableHttp);
        config.allow_private = false;
        match McpClient::connect_remote(&config, CONNECT).await {
            Err(McpError::Refused(message)) => {
                assert!(message.contains(&hostname), "{message}")
            }
            other => panic!("{url} resolves to loopback and should be refused, got {other:?}"),
        }
        let mut config = remote(
            format!("http://{hostname}:{port}/sse"),
            RemoteTransport::Sse,
        );
        config.allow_private = false;
        assert!(matches!(
            McpClient::connect_remote(&config, CONNECT).await,
            Err(McpError::Refused(_))
        ));
        // Allowed, the same name reaches the server (whose own DNS rebinding protection
        // then refuses a Host header other than 127.0.0.1/localhost with 421).
        config.allow_private = true;
        config.transport = RemoteTransport::StreamableHttp;
        config.url = url;
        match McpClient::connect_remote(&config, CONNECT).await {
            Ok(client) => client.close().await,
            Err(McpError::Http(message)) if message.contains("421") => {}
            Err(other) => panic!("allowed, {hostname} should reach the server: {other}"),
        }
    } else {
        eprintln!(
            "note: {hostname:?} does not resolve to loopback only; resolver checked directly"
        );
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

async fn connect_sh(script: &str, timeout: Duration) -> (Result<McpClient, McpError>, Duration) {
    let (_child, stdout, stdin) = spawn_stdio("sh", &["-c", script]);
    let started = Instant::now();
    let result = McpClient::connect_stdio(stdout, stdin, timeout).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn garbage_and_silent_servers_fail_within_the_timeout() {
    let timeout = Duration::from_secs(2);
    let slack = Duration::from_secs(2);

    let (result, took) = connect_sh("while true; do echo garbage; sleep 0.1; done", timeout).await;
    match result {
        Err(McpError::Start(message)) => assert!(message.contains("not JSON-RPC"), "{message}"),
        other => panic!("garbage should fail to start, got {other:?}"),
    }
    assert!(took < timeout + slack, "took {took:?}");

    let (result, took) = connect_sh("cat >/dev/null", timeout).await;
    assert!(
        matches!(result, Err(McpError::Timeout { .. })),
        "{result:?}"
    );
    assert!(took < timeout + slack, "took {took:?}");

    // Exits at once: fails fast, not at the deadline.
    let (result, took) = connect_sh("exit 0", Duration::from_secs(10)).await;
    assert!(matches!(result, Err(McpError::Start(_))), "{result:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // JSON that is not JSON-RPC, then silence.
    let (result, _) = connect_sh("echo '{\"hello\": 1}'; echo '[]'; sleep 30", timeout).await;
    assert!(result.is_err(), "{result:?}");

    // One line over the 8 MiB message limit: the connection ends with a clear reason.
    let (result, took) = connect_sh(
        "head -c 9000000 /dev/zero | tr '\\0' '{'; sleep 30",
        Duration::from_secs(10),
    )
    .await;
    match result {
        Err(McpError::Start(message)) => {
            assert!(message.contains("larger than 8 MiB"), "{message}")
        }
        other => panic!("an oversized message should fail, got {other:?}"),
    }
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[tokio::test]
async fn a_call_that_never_answers_times_out() {
    // server-everything's long-running operation: 30 s, called with a 1 s limit.
    let script = installed(EVERYTHING);
    let (_child, client) = connect_node(&script, &["stdio"]).await;
    let started = Instant::now();
    let result = client
        .call_tool(
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 3}),
            Duration::from_secs(1),
        )
        .await;
    assert!(
        matches!(result, Err(McpError::Timeout { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The session is still usable afterwards.
    let echo = client
        .call_tool("echo", json!({"message": "still here"}), CALL)
        .await
        .expect("echo after a timed-out call");
    assert_eq!(echo.text(), "Echo: still here");
    let listing = client.list_tools(Duration::from_nanos(1)).await;
    assert!(
        matches!(listing, Err(McpError::Timeout { .. })),
        "{listing:?}"
    );
}

#[test]
fn dropping_a_client_leaves_no_task_behind() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let baseline = metrics.num_alive_tasks();
        let script = installed(EVERYTHING);
        let (_child, client) = connect_node(&script, &["stdio"]).await;
        client.list_tools(CALL).await.expect("tools/list");
        assert!(
            metrics.num_alive_tasks() > baseline,
            "the session runs a task"
        );
        drop(client);

        let (_server, port) = start_demo("sse").await;
        let sse = McpClient::connect_remote(
            &remote(format!("http://127.0.0.1:{port}/sse"), RemoteTransport::Sse),
            CONNECT,
        )
        .await
        .expect("sse");
        sse.list_tools(CALL).await.expect("tools/list over sse");
        drop(sse);

        let (_server, port) = start_demo("streamable-http").await;
        let http = McpClient::connect_remote(
            &remote(
                format!("http://127.0.0.1:{port}/mcp"),
                RemoteTransport::StreamableHttp,
            ),
            CONNECT,
        )
        .await
        .expect("streamable http");
        http.list_tools(CALL).await.expect("tools/list over http");
        drop(http);

        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.num_alive_tasks() > baseline {
            assert!(
                Instant::now() < deadline,
                "{} task(s) still alive after dropping the clients",
                metrics.num_alive_tasks() - baseline
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// A stdio server (Python's standard library only) whose tool list never ends: every page
/// has `argv[1]` tools and a next cursor.
const ENDLESS_PAGES: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    if msg["method"] == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "endless", "version": "1"}}
    elif msg["method"] == "tools/list":
        page = int((msg.get("params") or {}).get("cursor") or "0")
        size = int(sys.argv[1])
        tools = [{"name": f"t{page}_{i}", "inputSchema": {"type": "object"}} for i in range(size)]
        result = {"tools": tools, "nextCursor": str(page + 1)}
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "no"}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"#;

#[tokio::test]
async fn tool_listing_is_bounded() {
    // 60 tools a page: the tool bound ends the listing.
    let (_child, stdout, stdin) = spawn_stdio("python3", &["-c", ENDLESS_PAGES, "60"]);
    let client = McpClient::connect_stdio(stdout, stdin, CONNECT)
        .await
        .expect("the endless server initialises");
    assert_eq!(client.server_name().as_deref(), Some("endless"));
    let tools = client.list_tools(CALL).await.expect("a bounded listing");
    assert_eq!(tools.len(), ironhand_mcp::MAX_TOOLS);
    assert_eq!(tools[0].name, "t0_0");
    assert_eq!(tools[999].name, "t16_39", "pages followed in order");
    assert_eq!(tools[0].description, "");
    client.close().await;

    // 10 tools a page: the page bound ends it.
    let (_child, stdout, stdin) = spawn_stdio("python3", &["-c", ENDLESS_PAGES, "10"]);
    let client = McpClient::connect_stdio(stdout, stdin, CONNECT)
        .await
        .expect("the endless server initialises");
    let tools = client.list_tools(CALL).await.expect("a bounded listing");
    assert_eq!(tools.len(), 10 * ironhand_mcp::MAX_TOOL_PAGES);
    client.close().await;
}
