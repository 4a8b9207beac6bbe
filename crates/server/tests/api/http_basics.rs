//! The HTTP foundation: envelope on every error, never a 500 for client input, security
//! headers and request ids on every response (GAP-SEC-003), CORS only for listed origins.

use crate::support::{Backend, TestApp};
use reqwest::Method;
use serde_json::json;

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
];

fn assert_security_headers(r: &crate::support::Reply, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(r.header(name), Some(*value), "{name} on {what}");
    }
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("CSP on {what}"));
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    assert!(
        r.header("x-request-id").is_some_and(|id| !id.is_empty()),
        "X-Request-Id on {what}"
    );
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let app = TestApp::start(Backend::Sqlite).await;
    let t = app.signed_up("hdr@example.com", "long enough pw").await;
    let cases = [
        ("health", app.get("/api/v1/health", None).await),
        ("ready", app.get("/api/v1/ready", None).await),
        ("me", app.get("/api/v1/auth/me", Some(&t.access)).await),
        ("401", app.get("/api/v1/auth/me", None).await),
        ("404", app.get("/api/v1/nothing/here", None).await),
        ("422", app.post("/api/v1/auth/login", None, json!({})).await),
        ("landing page", app.get("/", None).await),
        ("docs page", app.get("/api/v1/docs/", None).await),
        ("openapi", app.get("/api/v1/openapi.json", None).await),
        ("non-api 404", app.get("/some/page", None).await),
    ];
    for (what, r) in &cases {
        assert_security_headers(r, what);
    }
    // No HSTS over plain http…
    assert!(cases[0].1.header("strict-transport-security").is_none());
    app.stop().await;

    // …and HSTS when the public origin is https (behind a TLS proxy).
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.server.public_url = "https://agents.example.com".into()
    })
    .await;
    let r = app.get("/api/v1/health", None).await;
    assert!(
        r.header("strict-transport-security")
            .is_some_and(|v| v.contains("max-age="))
    );
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_replaced_otherwise() {
    let app = TestApp::start(Backend::Sqlite).await;
    let echoed = app
        .send(
            app.client
                .get(app.url("/api/v1/health"))
                .header("x-request-id", "client-abc_123"),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("client-abc_123"));
    let hostile = app
        .send(
            app.client
                .get(app.url("/api/v1/health"))
                .header("x-request-id", "a b<script>"),
        )
        .await;
    assert_ne!(hostile.header("x-request-id"), Some("a b<script>"));
    let long = "x".repeat(500);
    let replaced = app
        .send(
            app.client
                .get(app.url("/api/v1/health"))
                .header("x-request-id", long.as_str()),
        )
        .await;
    assert_ne!(replaced.header("x-request-id"), Some(long.as_str()));
    let a = app.get("/api/v1/health", None).await;
    let b = app.get("/api/v1/health", None).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
    app.stop().await;
}

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    bad_bodies_get_enveloped_4xx_and_change_nothing,
    optional_bodies_may_be_left_out_but_are_objects_when_sent,
    unknown_routes_and_methods_are_enveloped,
    every_refusal_carries_security_headers,
);

async fn bad_bodies_get_enveloped_4xx_and_change_nothing(backend: Backend) {
    let app = TestApp::start(backend).await;
    let url = app.url("/api/v1/auth/register");
    let raw = |body: &'static str| {
        app.client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body)
    };

    let r = app.send(raw("{\"fullname\": \"Ann\", ")).await;
    r.assert_error(400);
    assert!(r.msg().contains("not valid JSON"), "{}", r.msg());
    app.send(raw("")).await.assert_error(400);
    app.send(raw("{} {}")).await.assert_error(400);

    let missing = app
        .send(raw(
            r#"{"fullname": "Ann Other", "email": "ann@example.com"}"#,
        ))
        .await;
    missing.assert_error(422);
    assert_eq!(
        missing.data(),
        &json!([{"field": "password", "message": "password is required."}])
    );
    let wrong_type = app
        .send(raw(
            r#"{"fullname": 42, "email": "ann@example.com", "password": "long enough"}"#,
        ))
        .await;
    wrong_type.assert_error(422);
    assert_eq!(wrong_type.data()[0]["field"], "fullname");
    app.send(raw("[1, 2, 3]")).await.assert_error(422);
    app.send(raw("null")).await.assert_error(422);

    let not_json = app
        .send(app.client.post(url.clone()).header("content-type", "text/plain").body(r#"{"fullname":"Ann Other","email":"ann@example.com","password":"long enough"}"#))
        .await;
    not_json.assert_error(415);
    let form = app
        .send(
            app.client
                .post(url.clone())
                .form(&[("email", "ann@example.com")]),
        )
        .await;
    form.assert_error(415);

    // Too large: declared…
    let declared = app.post_oversized("/api/v1/auth/register", false).await;
    declared.assert_error(413);
    assert!(declared.msg().contains("limit"), "{}", declared.msg());
    // …or streamed without a length.
    app.post_oversized("/api/v1/auth/register", true)
        .await
        .assert_error(413);

    // None of that created an account.
    app.login("ann@example.com", "long enough")
        .await
        .assert_error(401);
    // Invalid UTF-8 and control characters are client errors too.
    let bytes = app
        .send(
            app.client
                .post(url.clone())
                .header("content-type", "application/json")
                .body(vec![b'{', 0xff, 0xfe, b'}']),
        )
        .await;
    bytes.assert_error(400);
    app.stop().await;
}

/// What the OpenAPI document promises for bodies: an optional one may be left out, but one
/// that is sent is an object (`null` is not), and `7.0` is an integer like `7`.
async fn optional_bodies_may_be_left_out_but_are_objects_when_sent(backend: Backend) {
    let app = TestApp::start(backend).await;
    let alice = app.signed_up("alice@example.com", "correct horse").await;
    let raw = |path: &str, body: &'static str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&alice.access)
            .header("content-type", "application/json")
            .body(body)
    };
    // Left out: the route runs (no refresh token anywhere is a 401, not a bad body).
    app.send(app.client.post(app.url("/api/v1/auth/refresh")))
        .await
        .assert_error(401);
    let session = app.new_session(&alice.access).await;
    let chat = format!("/api/v1/sessions/{session}/chat");
    for path in ["/api/v1/auth/refresh", chat.as_str()] {
        let null = app.send(raw(path, "null")).await;
        null.assert_error(422);
        assert_eq!(null.data()[0]["field"], "body", "{path}");
    }

    let vnc = format!("/api/v1/sessions/{session}/vnc/signed-url");
    let r = app.send(raw(&vnc, r#"{"expire_minutes": 5.0}"#)).await;
    r.assert_ok();
    assert_eq!(r.data()["expires_in"], 300);
    for body in [r#"{"expire_minutes": 5.5}"#, r#"{"expire_minutes": 16}"#] {
        let refused = app.send(raw(&vnc, body)).await;
        refused.assert_error(422);
        assert_eq!(refused.data()[0]["field"], "expire_minutes", "{body}");
    }
    app.stop().await;
}

async fn unknown_routes_and_methods_are_enveloped(backend: Backend) {
    let app = TestApp::start(backend).await;
    let r = app.get("/api/v1/does-not-exist", None).await;
    r.assert_error(404);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    app.get("/api", None).await.assert_error(404);
    app.call(Method::DELETE, "/api/v1/auth/me", None, None)
        .await
        .assert_error(405);
    // Outside /api a page path is the web app's (its router shows its own 404), but a
    // missing file is a 404.
    let page = app.get("/somewhere", None).await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(app.get("/somewhere.png", None).await.status.as_u16(), 404);
    let post = app.call(Method::POST, "/somewhere", None, None).await;
    assert_eq!(post.status.as_u16(), 404);
    // Path ids that are not ids are plain 404s, not 500s.
    let admin = app.signed_up("root@example.com", "long enough pw").await;
    app.get("/api/v1/auth/user/not-a-uuid", Some(&admin.access))
        .await
        .assert_error(404);
    app.get("/api/v1/auth/user/%00%ff", Some(&admin.access))
        .await
        .assert_error(404);
    app.get("/api/v1/auth/users?page=abc", Some(&admin.access))
        .await
        .assert_error(422);
    app.get("/api/v1/auth/users?limit=0", Some(&admin.access))
        .await
        .assert_error(422);
    // Hostile search text is refused, not passed to the database (PostgreSQL rejects NUL).
    app.get("/api/v1/auth/users?q=%00", Some(&admin.access))
        .await
        .assert_error(422);
    app.get(
        "/api/v1/auth/users?q=%C3%89lodie%20%25_",
        Some(&admin.access),
    )
    .await
    .assert_ok();
    // Unknown files under the docs page are JSON 404s too.
    let missing = app.get("/api/v1/docs/nope.js", None).await;
    missing.assert_error(404);
    app.stop().await;
}

#[tokio::test]
async fn health_ready_and_openapi_describe_the_server() {
    let app = TestApp::start(Backend::Sqlite).await;
    let h = app.get("/api/v1/health", None).await;
    h.assert_ok();
    assert_eq!(h.data()["status"], "ok");
    let ready = app.get("/api/v1/ready", None).await;
    ready.assert_ok();
    assert_eq!(
        ready.data()["checks"],
        json!({"database": "ok", "redis": "not configured", "sandbox": "ok (local)", "browser": "ok", "files": "ok (local)"})
    );
    let doc = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status.as_u16(), 200);
    assert!(
        doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/users",
        "/api/v1/health",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} documented");
    }
    // Every response is described and every `$ref` resolves.
    fn walk(v: &serde_json::Value, refs: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    refs.push(r.to_string());
                }
                m.values().for_each(|x| walk(x, refs));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(&doc.body, &mut refs);
    for r in refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc.body["components"]["schemas"].get(name).is_some(),
            "dangling {r}"
        );
    }
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                let described = response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty());
                assert!(described, "{method} {path} {status} has a description");
            }
        }
    }
    let docs = app.send(app.client.get(app.url("/api/v1/docs/"))).await;
    assert_eq!(docs.status.as_u16(), 200);
    assert!(
        docs.body
            .as_str()
            .is_some_and(|html| html.contains("swagger"))
    );
    app.stop().await;
}

async fn every_refusal_carries_security_headers(backend: Backend) {
    let app = TestApp::start_with(backend, |s| s.rate_limits.login = "1/minute".into()).await;
    let url = app.url("/api/v1/auth/login");
    let cases = [
        (
            "405",
            app.call(Method::DELETE, "/api/v1/auth/login", None, None)
                .await,
        ),
        ("413", app.post_oversized("/api/v1/auth/login", false).await),
        (
            "415",
            app.send(app.client.post(url.clone()).body("email=x")).await,
        ),
        ("401", app.login("nobody@example.com", "wrong").await),
        ("429", app.login("nobody@example.com", "wrong").await),
    ];
    for (status, r) in &cases {
        r.assert_error(status.parse().expect("status"));
        assert_security_headers(r, status);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_request_gets_an_enveloped_503_with_security_headers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(Backend::Sqlite, |s| s.server.request_timeout_secs = 1).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    // Promise a body, send half of it, then stall.
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":";
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!("no answer: {other:?}"),
        }
    }
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    for header in [
        "content-security-policy:",
        "x-content-type-options: nosniff",
        "x-request-id:",
    ] {
        assert!(text.contains(header), "{header} in {text}");
    }
    assert!(text.contains("\"code\":503"), "{text}");
    app.stop().await;
}

/// A TCP relay to the real Redis that the test can cut, as an outage would.
async fn redis_relay() -> (String, tokio_util::sync::CancellationToken) {
    let target = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL");
    let target = target
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cut = tokio_util::sync::CancellationToken::new();
    let stop = cut.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => {
                    let Ok((mut inbound, _)) = accepted else { return };
                    let target = target.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    });
                }
            }
        }
    });
    (format!("redis://127.0.0.1:{port}"), cut)
}

#[tokio::test]
async fn readiness_checks_redis_and_says_which_dependency_failed() {
    let (relay, cut) = redis_relay().await;
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.redis.url = Some(secrecy::SecretString::from(relay));
        s.redis.key_prefix = format!("ironhand-test:{}:", uuid::Uuid::new_v4().simple());
    })
    .await;
    let ready = app.get("/api/v1/ready", None).await;
    ready.assert_ok();
    assert_eq!(
        ready.data()["checks"],
        json!({"database": "ok", "redis": "ok", "sandbox": "ok (local)", "browser": "ok", "files": "ok (local)"})
    );

    cut.cancel();
    let down = app.get("/api/v1/ready", None).await;
    down.assert_error(503);
    assert!(down.msg().contains("redis"), "{}", down.msg());
    assert_eq!(down.data()["checks"]["database"], "ok");
    // Liveness does not depend on Redis.
    app.get("/api/v1/health", None).await.assert_ok();
    app.stop().await;
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.server.cors_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.send(
            app.client
                .request(Method::OPTIONS, app.url("/api/v1/auth/login"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        )
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let denied = preflight("https://evil.example").await;
    assert!(denied.header("access-control-allow-origin").is_none());
    app.stop().await;

    let closed = TestApp::start(Backend::Sqlite).await;
    let r = closed
        .send(
            closed
                .client
                .get(closed.url("/api/v1/health"))
                .header("origin", "https://app.example.com"),
        )
        .await;
    assert!(r.header("access-control-allow-origin").is_none());
    closed.stop().await;
}
