//! The `ironhand` binary as an operator runs it: settings validated with the key named,
//! `user create --admin`, `migrate`, `openapi`, `serve` with graceful shutdown, and a
//! generated secret that keeps users signed in across restarts.

use std::process::{Command, Stdio};
use std::time::Duration;

fn ironhand(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironhand"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IRONHAND_DATA_DIR", data_dir)
        .env("IRONHAND__AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("IRONHAND__AUTH__ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn invalid_settings_stop_the_start_and_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ironhand(dir.path())
        .env("IRONHAND_BIND", "nonsense")
        .env("IRONHAND__AUTH__PROVIDER", "ldap")
        .env("IRONHAND__RATE_LIMITS__LOGIN", "often")
        .env("IRONHAND__MAIL__TLS_CA_FILE", "/nonexistent/ca.pem")
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "server.bind (IRONHAND_BIND)",
        "auth.provider",
        "rate_limits.login",
        "mail.tls_ca_file",
    ] {
        assert!(err.contains(key), "`{key}` named in: {err}");
    }

    let out = ironhand(dir.path())
        .env("IRONHAND_PROFILE", "production")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.jwt_secret"));

    let out = ironhand(dir.path())
        .env("DATABASE_URL", "mysql://u:hunter2@db/x")
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DATABASE_URL") && !err.contains("hunter2"),
        "{err}"
    );

    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "[server]\nbindd = \"x\"\n").expect("write");
    let out = ironhand(dir.path())
        .arg("--config")
        .arg(&toml)
        .arg("migrate")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bindd"));
}

#[test]
fn openapi_prints_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ironhand(dir.path()).arg("openapi").output().expect("run");
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["paths"]["/api/v1/auth/login"]["post"].is_object());
}

/// The web app's typed client is generated from `web/openapi.json`; a route or field changed
/// on the server without regenerating it fails here (the web tests then check the generated
/// types against that file). Fix: `cd web && npm run gen:api:server`.
#[test]
fn the_web_apps_copy_of_the_openapi_document_is_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ironhand(dir.path()).arg("openapi").output().expect("run");
    assert!(out.status.success());
    let served: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("web/openapi.json"))
            .expect("web/openapi.json is JSON");
    assert!(
        served == committed,
        "web/openapi.json is out of date: run `cd web && npm run gen:api:server` and commit it"
    );
}

/// `ironhand serve` on a free port with no admin listener, its log in `log`; returns the
/// process and its base URL once it is healthy.
async fn serve_with_log(
    data_dir: &std::path::Path,
    log: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let port = free_port();
    let mut cmd = ironhand(data_dir);
    cmd.env("IRONHAND_ADMIN_BIND", "");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = cmd
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    (server, base)
}

async fn wait_healthy(base: &str) {
    for _ in 0..100 {
        if reqwest::get(format!("{base}/api/v1/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server at {base} never became healthy");
}

#[tokio::test]
async fn operator_creates_an_admin_serves_restarts_and_users_stay_signed_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let created = ironhand(dir.path())
        .env("IRONHAND_USER_PASSWORD", "operator password")
        .args([
            "user",
            "create",
            "--email",
            "Boss@Example.com",
            "--fullname",
            "The Boss",
            "--admin",
        ])
        .output()
        .expect("run");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("role=admin"));
    let again = ironhand(dir.path())
        .env("IRONHAND_USER_PASSWORD", "operator password")
        .args(["user", "create", "--email", "boss@example.com"])
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let migrated = ironhand(dir.path()).arg("migrate").output().expect("run");
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let (port, admin_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let start = || {
        ironhand(dir.path())
            .env("IRONHAND_ADMIN_BIND", format!("127.0.0.1:{admin_port}"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let mut server = start();
    wait_healthy(&base).await;
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "boss@example.com", "password": "operator password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    assert_eq!(login["data"]["user"]["role"], "admin", "{login}");
    let access = login["data"]["access_token"]
        .as_str()
        .expect("token")
        .to_string();

    let metrics = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    // Metrics are not on the public listener.
    assert_eq!(
        reqwest::get(format!("{base}/metrics"))
            .await
            .expect("get")
            .status()
            .as_u16(),
        404
    );

    // SIGTERM: a clean exit.
    let stopped = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    // The generated secret survived: the same access token still works after a restart.
    let mut server = start();
    wait_healthy(&base).await;
    let me = client
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status().as_u16(), 200);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn environment_values_keep_their_text_and_lists_split_on_commas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ironhand(dir.path())
        .env("IRONHAND_PROFILE", "production")
        // All digits: must stay a 40-character string, not become a number.
        .env(
            "IRONHAND__AUTH__JWT_SECRET",
            "0000000000000000000000000000000000000123",
        )
        .env(
            "IRONHAND__FILES__SIGNING_KEY",
            "1111111111111111111111111111111111111111",
        )
        .env(
            "IRONHAND__MCP__SECRETS_KEY",
            "2222222222222222222222222222222222222222",
        )
        .env("IRONHAND__AUTH__REFRESH_COOKIE", "true")
        .env("IRONHAND__SERVER__TRUSTED_PROXIES", "2")
        .env(
            "IRONHAND__SERVER__CORS_ORIGINS",
            "https://a.example.com, https://b.example.com",
        )
        .env("IRONHAND_PUBLIC_URL", "https://agents.example.com")
        .arg("check-config")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "refresh_cookie: true",
        "trusted_proxies: 2",
        "\"https://a.example.com\"",
        "\"https://b.example.com\"",
        "configuration is valid",
    ] {
        assert!(stdout.contains(expected), "`{expected}` in {stdout}");
    }
    assert!(
        !stdout.contains("0000000000000000000000000000000000000123"),
        "secrets stay hidden"
    );
}

#[tokio::test]
async fn without_smtp_the_reset_code_goes_to_the_log_marked_as_the_development_mailer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let (mut server, base) = serve_with_log(dir.path(), &log, &[("RUST_LOG", "warn")]).await;
    let startup = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        startup.contains("development mailer"),
        "a clear warning at start: {startup}"
    );

    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).json(&body).send()
    };
    let r = post(
        "/api/v1/auth/register",
        serde_json::json!({"fullname": "Dev User", "email": "dev@example.com", "password": "long enough pw"}),
    )
    .await
    .expect("register");
    assert_eq!(r.status().as_u16(), 200);
    let r = post(
        "/api/v1/auth/send-verification-code",
        serde_json::json!({"email": "dev@example.com"}),
    )
    .await
    .expect("send code");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"code": 0, "msg": "success", "data": null}),
        "never in the API response"
    );

    let mut code = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("development mailer") && l.contains("dev@example.com"))
        {
            assert!(line.contains("WARN"), "{line}");
            let at = line.find("code is ").expect("code in the logged mail") + "code is ".len();
            code = Some(
                line[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>(),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let code = code.expect("the mail was logged");
    let r = post(
        "/api/v1/auth/reset-password",
        serde_json::json!({"email": "dev@example.com", "verification_code": code, "new_password": "a new password"}),
    )
    .await
    .expect("reset");
    assert_eq!(r.status().as_u16(), 200);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_the_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let secret = "a-very-secret-signing-key-that-must-never-be-logged";
    let env = [
        ("IRONHAND__LOG__FORMAT", "json"),
        ("IRONHAND__AUTH__JWT_SECRET", secret),
        ("RUST_LOG", "info"),
    ];
    let (mut server, base) = serve_with_log(dir.path(), &log, &env).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/api/v1/ready"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("ready");
    assert_eq!(r.status().as_u16(), 200);
    let password = "password-that-must-not-be-logged";
    client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&serde_json::json!({"fullname": "Log Test", "email": "log@example.com", "password": password}))
        .send()
        .await
        .expect("register");

    let mut found = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["span"]["request_id"] == "trace-me-42" && v["fields"]["status"] == 200);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = found.expect("a JSON access-log line with the request id");
    assert_eq!(line["span"]["route"], "/api/v1/ready");
    assert!(line["fields"]["latency_ms"].is_number());
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every line is JSON"
    );
    assert!(
        !text.contains(secret) && !text.contains(password),
        "no secret in the log"
    );
}

/// Connectors' secrets — the operator's from an `mcp.json` (`IRONHAND_MCP_CONFIG`) and a
/// user's from the settings page — never reach the log, even at debug level, while the
/// connectors are saved, listed, started and tested.
#[tokio::test]
async fn connector_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let packages = crate::agent::mcp_servers_dir();
    let everything = "/opt/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
    let config = dir.path().join("mcp.json");
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {
            "everything": {"command": "node", "args": [everything, "stdio"],
                           "env": {"OPERATOR_TOKEN": "op-log-secret-4321"}},
            "partner": {"url": "https://partner.invalid/mcp",
                        "headers": {"Authorization": "Bearer op-header-secret-8765"}}
        }})
        .to_string(),
    )
    .expect("mcp.json");
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    let (mut server, base) = serve_with_log(
        &data,
        &log,
        &[
            ("RUST_LOG", "debug"),
            ("IRONHAND_MCP_CONFIG", config.to_str().expect("utf-8")),
            (
                "IRONHAND__MCP__PACKAGES_DIR",
                packages.to_str().expect("utf-8"),
            ),
            ("IRONHAND__MCP__START_TIMEOUT_SECS", "20"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let signed_up: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(
            &serde_json::json!({"fullname": "Log Reader", "email": "log@example.com",
            "password": "correct horse"}),
        )
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = signed_up["data"]["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = client
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    let saved = call(
        reqwest::Method::PUT,
        "/mcp/servers",
        Some(
            serde_json::json!({"name": "mine", "transport": "stdio", "command": "node",
            "args": [everything, "stdio"], "env": {"USER_TOKEN": "user-log-secret-1357"}}),
        ),
    )
    .await
    .expect("put");
    assert!(saved.status().is_success());
    for name in ["mine", "everything", "partner"] {
        let tested = call(
            reqwest::Method::POST,
            &format!("/mcp/servers/{name}/test"),
            None,
        )
        .await
        .expect("test");
        let status = tested.status();
        let body = tested.text().await.unwrap_or_default();
        assert!(
            if name == "partner" {
                status == 502
            } else {
                status.is_success()
            },
            "{name}: {status} {body}"
        );
        for secret in ["op-log-secret", "op-header-secret", "user-log-secret"] {
            assert!(!body.contains(secret), "{name}: {body}");
        }
    }
    let listed = call(reqwest::Method::GET, "/mcp/servers", None)
        .await
        .expect("list")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        listed.contains("OPERATOR_TOKEN") && listed.contains("USER_TOKEN"),
        "{listed}"
    );
    let _ = server.kill();
    let _ = server.wait();

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("connector tested") && text.contains("connector test failed"),
        "the log says what happened"
    );
    for secret in [
        "op-log-secret-4321",
        "op-header-secret-8765",
        "user-log-secret-1357",
    ] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }
    let mut stored = std::fs::read(data.join("ironhand.db")).expect("database");
    stored.extend(std::fs::read(data.join("ironhand.db-wal")).unwrap_or_default());
    assert!(
        String::from_utf8_lossy(&stored).contains("server-everything"),
        "the connector is stored"
    );
    assert!(
        !String::from_utf8_lossy(&stored).contains("user-log-secret"),
        "the database holds the user's secret sealed, not in clear"
    );
}
