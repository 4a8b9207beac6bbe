//! `TestApp`: a running server on a fresh database, and a small client for the envelope.

#![allow(dead_code)]

use ironhand_server::Settings;
use ironhand_server::config::RateLimitSettings;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What a story runs on: `ironhand_db::on_both_backends!` runs each story of a file once
/// per backend, as `sqlite::<story>` and `postgres_redis::<story>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite, in-process limiter and denylist.
    Sqlite,
    /// The scale-out set: PostgreSQL plus Redis.
    PostgresRedis,
}

/// Generous limits, so stories that are not about rate limiting never trip them.
pub fn relaxed_limits() -> RateLimitSettings {
    RateLimitSettings {
        enabled: true,
        register: "1000/minute".into(),
        login: "1000/minute".into(),
        login_ip: "1000/minute".into(),
        login_email: "1000/minute".into(),
        refresh: "1000/minute".into(),
        logout: "1000/minute".into(),
        send_verification_code: "1000/hour".into(),
        verification_code_cooldown: "1000/minute".into(),
        reset_password: "1000/hour".into(),
        change_password: "1000/minute".into(),
        chat_user: "1000/minute".into(),
        chat_session: "1000/minute".into(),
        shared_view: "1000/minute".into(),
        upload: "1000/minute".into(),
        checkout: "1000/minute".into(),
    }
}

/// A `multipart/form-data` body with one file part: `(content type, body)`.
pub fn multipart(field: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("----ironhand{}", uuid::Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The path and query of a URL the server built with its public origin.
pub fn path_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => url[i + 3..]
            .find('/')
            .map_or_else(|| "/".into(), |j| url[i + 3 + j..].to_string()),
        None => url.to_string(),
    }
}

/// Settings for a fresh, isolated instance on `backend`; the temp dir must outlive it.
pub async fn settings_for(backend: Backend, dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.admin_bind = String::new();
    s.server.data_dir = dir.to_path_buf();
    s.server.shutdown_grace_secs = 2;
    // Test servers end with their test process, often without stopping their sandboxes:
    // plain workspace directories leave no loop mounts behind (the sandbox suite tests the
    // size-limited workspace).
    s.sandbox.workspace_max_bytes = 0;
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    s.rate_limits = relaxed_limits();
    s.log.level = "warn".into();
    if backend == Backend::PostgresRedis {
        let url = ironhand_db::testing::fresh_postgres_database(
            &ironhand_db::testing::test_database_url(),
        )
        .await
        .expect("a fresh PostgreSQL database (is TEST_DATABASE_URL reachable?)");
        s.database.url = Some(SecretString::from(url));
        let redis =
            std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is not set (see README)");
        s.redis.url = Some(SecretString::from(redis));
        s.redis.key_prefix = format!("ironhand-test:{}:", uuid::Uuid::new_v4().simple());
    }
    s
}

pub struct TestApp {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub state: ironhand_server::AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = settings_for(backend, dir.path()).await;
        tweak(&mut settings);
        let mut app = Self::from_settings(settings).await;
        app._dir = Some(dir);
        app
    }

    /// Another instance with exactly these settings (e.g. sharing a database and Redis).
    pub async fn from_settings(settings: Settings) -> Self {
        Self::from_settings_on(settings, &tokio::runtime::Handle::current()).await
    }

    /// Like [`Self::from_settings`], with everything of the server (listener, pools,
    /// worker, sandboxes) on `runtime`: shutting that runtime down drops it all at once, as
    /// a crash would.
    pub async fn from_settings_on(settings: Settings, runtime: &tokio::runtime::Handle) -> Self {
        ironhand_server::telemetry::init_logging(&settings);
        let shutdown = CancellationToken::new();
        let (addr, state, task) = runtime
            .spawn({
                let settings = settings.clone();
                let shutdown = shutdown.clone();
                async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let addr = listener.local_addr().expect("addr");
                    let state = ironhand_server::AppState::build(settings)
                        .await
                        .expect("server state");
                    let task = tokio::spawn(ironhand_server::serve(
                        state.clone(),
                        listener,
                        None,
                        shutdown,
                    ));
                    (addr, state, task)
                }
            })
            .await
            .expect("server start");
        Self {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            settings,
            state,
            shutdown,
            task: Some(task),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(self.request(method, path, token, body)).await
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request reaches the server");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// POSTs a JSON body of 2 MiB over a raw connection (declared with Content-Length, or
    /// chunked), reading the answer while still writing: the server is expected to refuse
    /// before it has read the body, and a normal client would fail on the closed pipe
    /// before seeing that answer.
    pub async fn post_oversized(&self, path: &str, chunked: bool) -> Reply {
        use tokio::io::AsyncWriteExt;
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut read, mut write) = stream.into_split();
        let length = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {}", 2 << 20)
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
        );
        let writer = tokio::spawn(async move {
            write.write_all(head.as_bytes()).await.ok()?;
            let piece = vec![b' '; 64 * 1024];
            for _ in 0..32 {
                let data = if chunked {
                    [
                        format!("{:x}\r\n", piece.len()).as_bytes(),
                        piece.as_slice(),
                        b"\r\n",
                    ]
                    .concat()
                } else {
                    piece.clone()
                };
                write.write_all(&data).await.ok()?;
            }
            Some(())
        });
        let reply = read_answer(&mut read, 10).await;
        writer.abort();
        reply
    }

    /// Streams an upload of up to `total` bytes (chunked, no declared length) over a raw
    /// connection while reading the answer. Returns the answer, how many file bytes had
    /// been written when it arrived, and how long that took.
    pub async fn upload_stream(
        &self,
        token: &str,
        filename: &str,
        total: u64,
    ) -> (Reply, u64, std::time::Duration) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::AsyncWriteExt;
        let started = std::time::Instant::now();
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut read, mut write) = stream.into_split();
        let boundary = "----ironhandstream";
        let head = format!(
            "POST /api/v1/files HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let part = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n"
        );
        let written = Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        let writer = tokio::spawn(async move {
            let chunk =
                |data: &[u8]| [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
            write.write_all(head.as_bytes()).await.ok()?;
            write.write_all(&chunk(part.as_bytes())).await.ok()?;
            let piece = chunk(&vec![b'a'; 256 * 1024]);
            let mut sent = 0u64;
            while sent < total {
                write.write_all(&piece).await.ok()?;
                sent += 256 * 1024;
                counter.store(sent, Ordering::Relaxed);
            }
            write
                .write_all(&chunk(format!("\r\n--{boundary}--\r\n").as_bytes()))
                .await
                .ok()?;
            write.write_all(b"0\r\n\r\n").await.ok()?;
            Some(())
        });
        let reply = read_answer(&mut read, 60).await;
        let sent = written.load(Ordering::Relaxed);
        writer.abort();
        (reply, sent, started.elapsed())
    }

    /// Uploads like [`TestApp::upload`] but over a raw connection that reads the answer while
    /// still writing: for uploads the server refuses before reading them whole (a normal
    /// client may fail on the closed connection before it sees the 413).
    pub async fn upload_refused_early(&self, token: &str, filename: &str, bytes: &[u8]) -> Reply {
        use tokio::io::AsyncWriteExt;
        let (content_type, body) = multipart("file", filename, bytes);
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut read, mut write) = stream.into_split();
        let head = format!(
            "POST /api/v1/files HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let writer = tokio::spawn(async move {
            write.write_all(head.as_bytes()).await.ok()?;
            for piece in body.chunks(64 * 1024) {
                write.write_all(piece).await.ok()?;
            }
            // Kept open: a half-closed connection would be dropped before the answer.
            Some(write)
        });
        let reply = read_answer(&mut read, 30).await;
        writer.abort();
        reply
    }

    /// Uploads `bytes` as `filename` through `POST /api/v1/files`.
    pub async fn upload(&self, token: &str, filename: &str, bytes: &[u8]) -> Reply {
        let (content_type, body) = multipart("file", filename, bytes);
        self.send(
            self.client
                .post(self.url("/api/v1/files"))
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// GETs raw bytes: `(status, headers, body)`.
    pub async fn get_bytes(
        &self,
        path: &str,
        token: Option<&str>,
        range: Option<&str>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let res = req.send().await.expect("request reaches the server");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.expect("body").to_vec();
        (status, headers, body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn register(&self, fullname: &str, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({"fullname": fullname, "email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// `POST /auth/refresh` with the token in the body.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// Refreshes, expecting success, and returns the new pair.
    pub async fn refreshed(&self, refresh_token: &str) -> Tokens {
        let r = self.refresh(refresh_token).await;
        r.assert_ok();
        Tokens::from(&r)
    }

    /// Registers and returns (access token, refresh token, user id).
    pub async fn signed_up(&self, email: &str, password: &str) -> Tokens {
        let r = self.register("Test Person", email, password).await;
        assert_eq!(r.status, StatusCode::OK, "register {email}: {}", r.body);
        Tokens::from(&r)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops gracefully and hands over the data directory, to start again on it.
    pub async fn stop_keeping_data(mut self) -> Option<tempfile::TempDir> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self._dir.take()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl From<&Reply> for Tokens {
    fn from(r: &Reply) -> Self {
        Self {
            access: r.data()["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            refresh: r.data()["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_string(),
            user_id: r.data()["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn msg(&self) -> &str {
        self.body["msg"].as_str().unwrap_or_default()
    }

    /// Asserts the envelope of an error: HTTP status = `code`, a message to act on.
    pub fn assert_error(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status}, got {}: {}",
            self.status,
            self.body
        );
        assert_eq!(
            self.body["code"],
            json!(status),
            "envelope code: {}",
            self.body
        );
        assert!(
            !self.msg().is_empty(),
            "error without a message: {}",
            self.body
        );
        self
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "expected 200: {}", self.body);
        assert_eq!(self.body["code"], json!(0), "{}", self.body);
        assert_eq!(self.body["msg"], json!("success"), "{}", self.body);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Reads a raw connection until it holds a complete answer (the request may still be
/// being written by another task), for at most `secs` seconds.
async fn read_answer(read: &mut tokio::net::tcp::OwnedReadHalf, secs: u64) -> Reply {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut piece = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(reply) = parse_http_response(&buf) {
            return reply;
        }
        match tokio::time::timeout_at(deadline, read.read(&mut piece)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&piece[..n]),
            other => panic!(
                "no complete answer ({other:?}): {}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
}

/// A complete HTTP/1.1 response with a Content-Length body, if `buf` holds one.
fn parse_http_response(buf: &[u8]) -> Option<Reply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        let name = reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).ok()?;
        headers.append(name, v.trim().parse().ok()?);
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = buf.get(end + 4..end + 4 + length)?;
    let text = String::from_utf8_lossy(body).to_string();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some(Reply {
        status: StatusCode::from_u16(status).ok()?,
        headers,
        body,
    })
}
