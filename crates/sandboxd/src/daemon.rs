//! `ironhand sandboxd`: the sandbox operations of one session over HTTP, inside that
//! session's container. Every operation is the local provider's own code
//! ([`LocalSandboxProvider`] with [`LocalSandboxConfig::container`]), so a container's
//! shell, files, browser, connector programs and workspace snapshots behave exactly like a
//! bubblewrap sandbox's; the container (its engine's limits, network and read-only root) is
//! the boundary instead of bubblewrap.
//!
//! Every request needs `Authorization: Bearer <token>`, the token the provider made for this
//! container alone (compared in constant time). Errors are [`ErrorBody`] with 422
//! (`invalid`: the model's request was wrong) or 503 (`unavailable`).

use crate::wire::*;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use ironhand_core::ids::SessionId;
use ironhand_core::ports::sandbox::{Sandbox, SandboxError, SandboxProvider, WriteOptions};
use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the daemon keeps the workspace's snapshot marker and packs archives: the
/// container's second volume (see the `docker` provider).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ironhand-sandbox";
/// Bodies of JSON operations (a file written whole is the largest).
const JSON_LIMIT: usize = 64 * 1024 * 1024;

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub listen: SocketAddr,
    pub token: String,
    pub limits: DaemonLimits,
    pub state_dir: PathBuf,
}

impl DaemonOptions {
    /// From the environment the provider gave the container ([`TOKEN_ENV`], [`LIMITS_ENV`]).
    pub fn from_env(listen: SocketAddr) -> anyhow::Result<Self> {
        let token = std::env::var(TOKEN_ENV)
            .map_err(|_| anyhow::anyhow!("{TOKEN_ENV} is not set: sandboxd needs its token"))?;
        if token.len() < 32 {
            anyhow::bail!("{TOKEN_ENV} must be at least 32 characters");
        }
        let limits = match std::env::var(LIMITS_ENV) {
            Ok(json) => serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("{LIMITS_ENV} is not valid: {e}"))?,
            Err(_) => DaemonLimits::from_config(&LocalSandboxConfig::default()),
        };
        Ok(Self {
            listen,
            token,
            limits,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        })
    }
}

impl DaemonLimits {
    /// The limits of `config` that the daemon applies itself.
    pub fn from_config(config: &LocalSandboxConfig) -> Self {
        Self {
            foreground_wait_secs: config.foreground_wait.as_secs(),
            command_timeout_secs: config.command_timeout.as_secs(),
            cpu_seconds: config.cpu_seconds,
            memory_bytes: config.memory_bytes,
            max_processes: config.max_processes,
            max_open_files: config.max_open_files,
            output_cap_bytes: config.output_cap_bytes,
            workspace_max_bytes: config.workspace_max_bytes,
            browser: config.browser,
            browser_idle_timeout_secs: config.browser_idle_timeout.as_secs(),
        }
    }

    fn config(&self, state_dir: PathBuf) -> LocalSandboxConfig {
        LocalSandboxConfig {
            root_dir: state_dir,
            container: true,
            network: false,
            cgroups: false,
            egress_filter: false,
            foreground_wait: Duration::from_secs(self.foreground_wait_secs.max(1)),
            command_timeout: Duration::from_secs(self.command_timeout_secs.max(1)),
            cpu_seconds: self.cpu_seconds,
            memory_bytes: self.memory_bytes,
            max_processes: self.max_processes,
            max_open_files: self.max_open_files,
            output_cap_bytes: self.output_cap_bytes,
            workspace_max_bytes: self.workspace_max_bytes,
            browser: self.browser,
            browser_idle_timeout: Duration::from_secs(self.browser_idle_timeout_secs.max(1)),
            // The provider stops the container when it is idle.
            idle_timeout: Duration::from_secs(365 * 24 * 3600),
            max_live_sandboxes: 1,
            max_live_sandboxes_per_user: 1,
            ..LocalSandboxConfig::default()
        }
    }
}

struct Daemon {
    provider: LocalSandboxProvider,
    /// The one session this container serves (an internal key of the local provider).
    session: SessionId,
    token: String,
    state_dir: PathBuf,
    /// The last request other than a health check (the provider's idle clock).
    last_used: std::sync::Mutex<tokio::time::Instant>,
}

type Shared = Arc<Daemon>;

impl Daemon {
    async fn sandbox(&self) -> Result<Arc<dyn Sandbox>, ApiError> {
        Ok(self.provider.sandbox(self.session).await?)
    }
}

/// A [`SandboxError`] as an HTTP answer.
struct ApiError(SandboxError);

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0 {
            SandboxError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SandboxError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(ErrorBody::of(&self.0))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError(SandboxError::Unavailable(message.into()))
}

/// Serves until the process is stopped.
pub async fn serve(options: DaemonOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let router = router(options)?;
    tracing::info!(listen = %listener.local_addr()?, "sandboxd listening");
    axum::serve(listener, router).await?;
    Ok(())
}

/// The daemon's routes (for [`serve`] and tests).
pub fn router(options: DaemonOptions) -> anyhow::Result<Router> {
    let config = options.limits.config(options.state_dir.clone());
    let provider = LocalSandboxProvider::new(config)?;
    let daemon = Arc::new(Daemon {
        provider,
        session: SessionId::new(),
        token: options.token,
        state_dir: options.state_dir,
        last_used: std::sync::Mutex::new(tokio::time::Instant::now()),
    });
    // The browser's idle stop and the workspace's periodic size check (where the engine
    // cannot limit a volume's size).
    let ticker = Arc::downgrade(&daemon);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            let Some(daemon) = ticker.upgrade() else {
                return;
            };
            daemon.provider.reap_idle().await;
        }
    });
    let unlimited = Router::new()
        .route("/v1/file/bytes", put(put_bytes).get(get_bytes))
        .route("/v1/workspace/restore", put(restore))
        .layer(DefaultBodyLimit::disable());
    let api = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/shell/exec", post(shell_exec))
        .route("/v1/shell/view", post(shell_view))
        .route("/v1/shell/wait", post(shell_wait))
        .route("/v1/shell/write", post(shell_write))
        .route("/v1/shell/kill", post(shell_kill))
        .route("/v1/file/read", post(file_read))
        .route("/v1/file/write", post(file_write))
        .route("/v1/file/replace", post(file_replace))
        .route("/v1/file/find-in-content", post(find_in_content))
        .route("/v1/file/find-by-name", post(find_by_name))
        .route("/v1/browser/call", post(browser_call))
        .route("/v1/browser/vnc", get(browser_vnc))
        .route("/v1/process", get(process))
        .route("/v1/workspace/version", get(workspace_version))
        .route("/v1/workspace/pack", post(pack))
        .route("/v1/workspace/mark", post(mark))
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .merge(unlimited);
    Ok(api
        .layer(middleware::from_fn_with_state(daemon.clone(), authenticate))
        .with_state(daemon))
}

async fn authenticate(State(daemon): State<Shared>, request: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(daemon.token.as_bytes())) {
        if request.uri().path() != "/v1/health" {
            *daemon.last_used.lock().unwrap_or_else(|p| p.into_inner()) =
                tokio::time::Instant::now();
        }
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody {
                kind: "unavailable".into(),
                message: "not this sandbox's token".into(),
            }),
        )
            .into_response()
    }
}

async fn health(State(daemon): State<Shared>) -> Json<Health> {
    let idle = daemon
        .last_used
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .elapsed();
    Json(Health {
        version: env!("CARGO_PKG_VERSION").into(),
        idle_secs: idle.as_secs(),
        browser_unavailable: SandboxProvider::browser_support(&daemon.provider)
            .err()
            .map(|why| why.to_string()),
    })
}

async fn shell_exec(
    State(d): State<Shared>,
    Json(r): Json<ShellExec>,
) -> ApiResult<impl IntoResponse> {
    let sandbox = d.sandbox().await?;
    Ok(Json(
        sandbox
            .shell_exec(&r.shell_id, &r.exec_dir, &r.command)
            .await?,
    ))
}

async fn shell_view(
    State(d): State<Shared>,
    Json(r): Json<ShellRef>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(d.sandbox().await?.shell_view(&r.shell_id).await?))
}

async fn shell_wait(
    State(d): State<Shared>,
    Json(r): Json<ShellWait>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        d.sandbox()
            .await?
            .shell_wait(&r.shell_id, r.seconds)
            .await?,
    ))
}

async fn shell_write(
    State(d): State<Shared>,
    Json(r): Json<ShellWrite>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        d.sandbox()
            .await?
            .shell_write(&r.shell_id, &r.input, r.press_enter)
            .await?,
    ))
}

async fn shell_kill(
    State(d): State<Shared>,
    Json(r): Json<ShellRef>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(d.sandbox().await?.shell_kill(&r.shell_id).await?))
}

async fn file_read(
    State(d): State<Shared>,
    Json(r): Json<FileRead>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        d.sandbox()
            .await?
            .file_read(&r.path, r.start_line, r.end_line)
            .await?,
    ))
}

async fn file_write(
    State(d): State<Shared>,
    Json(r): Json<FileWrite>,
) -> ApiResult<impl IntoResponse> {
    let options = WriteOptions {
        append: r.append,
        leading_newline: r.leading_newline,
        trailing_newline: r.trailing_newline,
    };
    d.sandbox()
        .await?
        .file_write(&r.path, &r.content, &options)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn file_replace(
    State(d): State<Shared>,
    Json(r): Json<FileReplace>,
) -> ApiResult<impl IntoResponse> {
    let count = d
        .sandbox()
        .await?
        .file_str_replace(&r.path, &r.old, &r.new)
        .await?;
    Ok(Json(Replaced { count }))
}

async fn find_in_content(
    State(d): State<Shared>,
    Json(r): Json<FindInContent>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        d.sandbox()
            .await?
            .file_find_in_content(&r.path, &r.regex)
            .await?,
    ))
}

async fn find_by_name(
    State(d): State<Shared>,
    Json(r): Json<FindByName>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        d.sandbox()
            .await?
            .file_find_by_name(&r.dir, &r.glob)
            .await?,
    ))
}

async fn put_bytes(
    State(d): State<Shared>,
    Query(q): Query<BytesQuery>,
    body: bytes::Bytes,
) -> ApiResult<impl IntoResponse> {
    d.sandbox().await?.put_file(&q.path, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_bytes(
    State(d): State<Shared>,
    Query(q): Query<BytesQuery>,
) -> ApiResult<impl IntoResponse> {
    let max = q.max_bytes.unwrap_or(u64::MAX);
    Ok(d.sandbox().await?.get_file(&q.path, max).await?)
}

async fn browser_call(
    State(d): State<Shared>,
    Json(r): Json<BrowserCall>,
) -> ApiResult<impl IntoResponse> {
    let browser = d.sandbox().await?.browser().await?;
    let outcome = browser.call(&r.function, &r.args).await;
    Ok(Json(BrowserResult {
        success: outcome.success,
        message: outcome.message,
        data: outcome.data,
        screenshot: outcome
            .screenshot
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s)),
    }))
}

/// The live view: the browser's display (RFB) as binary WebSocket messages both ways.
/// Never starts a browser.
async fn browser_vnc(State(d): State<Shared>, ws: WebSocketUpgrade) -> ApiResult<Response> {
    let browser = d
        .provider
        .running_browser(d.session)
        .ok_or_else(|| unavailable("the browser is not running"))?;
    let stream = browser.connect_vnc().await?;
    Ok(ws.on_upgrade(move |socket| async move {
        let (read, write) = tokio::io::split(stream);
        bridge(socket, read, write, None).await;
    }))
}

/// A connector's program: its stdin and stdout as binary WebSocket messages; the last
/// message is a text [`ProcessEnded`]. Closing the socket stops the program.
async fn process(
    State(d): State<Shared>,
    Query(q): Query<SpawnQuery>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let spec: Spawn = serde_json::from_str(&q.spec)
        .map_err(|e| ApiError(SandboxError::Invalid(format!("bad process spec: {e}"))))?;
    let sandbox = d.sandbox().await?;
    let process = sandbox
        .spawn_process(&spec.program, &spec.args, &spec.env)
        .await?;
    Ok(ws.on_upgrade(move |socket| async move {
        let handle = process.handle.clone();
        bridge(socket, process.stdout, process.stdin, Some(handle.clone())).await;
        handle.kill();
    }))
}

/// Pumps `read` to the socket and the socket's binary messages to `write` until either
/// side ends. With a process handle, its end is told as a last text message.
async fn bridge(
    socket: WebSocket,
    mut read: impl tokio::io::AsyncRead + Unpin + Send,
    mut write: impl tokio::io::AsyncWrite + Unpin + Send,
    process: Option<Arc<dyn ironhand_core::ports::sandbox::ProcessHandle>>,
) {
    let (mut tx, mut rx) = socket.split();
    let outbound = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if let Some(process) = &process {
            // Its stdout closed: give it a moment to exit, then say so.
            for _ in 0..20 {
                if !process.is_running() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let ended = ProcessEnded {
                stderr_tail: process.stderr_tail(),
            };
            let text = serde_json::to_string(&ended).unwrap_or_default();
            let _ = tx.send(Message::Text(text.into())).await;
        }
        let _ = tx.close().await;
    };
    let inbound = async {
        while let Some(Ok(message)) = rx.next().await {
            match message {
                Message::Binary(data)
                    if write.write_all(&data).await.is_err() || write.flush().await.is_err() =>
                {
                    break;
                }
                Message::Binary(_) => {}
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = outbound => {}
        () = inbound => {}
    }
}

async fn workspace_version(State(d): State<Shared>) -> ApiResult<impl IntoResponse> {
    let version = d.provider.workspace_version(d.session).await?;
    Ok(Json(Version { version }))
}

/// Packs the workspace into a file of the state volume, then streams it (204 when nothing
/// changed since the last mark).
async fn pack(State(d): State<Shared>) -> ApiResult<Response> {
    // The local provider packs only a workspace it has a sandbox of.
    d.sandbox().await?;
    let file = tempfile::Builder::new()
        .prefix(".pack-")
        .tempfile_in(&d.state_dir)
        .map_err(|e| unavailable(format!("no room to pack the workspace: {e}")))?;
    let Some(packed) = d.provider.pack_workspace(d.session, file.path()).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let report = PackReport {
        files: packed.files,
        bytes: packed.bytes,
        left_out_files: packed.left_out_files,
        left_out_bytes: packed.left_out_bytes,
        left_out: packed.left_out,
        state: packed.state,
    };
    // Unlinked at once: the open file is read to its end, then gone.
    let (std_file, path) = file
        .keep()
        .map_err(|e| unavailable(format!("could not keep the pack: {e}")))?;
    let _ = std::fs::remove_file(&path);
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(std_file));
    let mut response = Body::from_stream(stream).into_response();
    let header = HeaderValue::from_str(&serde_json::to_string(&report).unwrap_or_default())
        .map_err(|e| unavailable(format!("the pack's report: {e}")))?;
    response.headers_mut().insert(PACK_REPORT_HEADER, header);
    Ok(response)
}

async fn mark(State(d): State<Shared>, Json(m): Json<Mark>) -> ApiResult<impl IntoResponse> {
    d.provider
        .mark_workspace(d.session, m.version, &m.state)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the workspace with the archive in the body (received into the state volume
/// first).
async fn restore(
    State(d): State<Shared>,
    Query(q): Query<RestoreQuery>,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let file = tempfile::Builder::new()
        .prefix(".restore-")
        .tempfile_in(&d.state_dir)
        .map_err(|e| unavailable(format!("no room for the snapshot: {e}")))?;
    let mut out = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| unavailable(format!("the snapshot file: {e}")))?,
    );
    let mut stream = body.into_data_stream();
    let limit = d.provider.config().workspace_max_bytes.max(1) * 2 + 64 * 1024 * 1024;
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unavailable(format!("the snapshot did not arrive: {e}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(ApiError(SandboxError::Invalid(
                "the snapshot is larger than this workspace may be".into(),
            )));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| unavailable(format!("could not store the snapshot: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| unavailable(format!("could not store the snapshot: {e}")))?;
    let restored = d
        .provider
        .restore_workspace(d.session, file.path(), q.version)
        .await?;
    Ok(Json(Restored {
        files: restored.files,
        bytes: restored.bytes,
        refused: restored.refused,
    }))
}

/// Logs to stderr (the container's log), at `RUST_LOG` or `info`.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the daemon on a runtime of its own until stopped.
pub fn run(listen: SocketAddr) -> anyhow::Result<()> {
    init_logging();
    let options = DaemonOptions::from_env(listen)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(options))
}
