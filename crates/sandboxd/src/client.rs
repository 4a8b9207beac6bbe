//! A sandbox in a container, seen from the server: each [`Sandbox`] operation is one request
//! to the container's `ironhand sandboxd` (see the `daemon` module). Every answer is
//! bounded in size: the container is as hostile as what runs in it.

use crate::wire::*;
use async_trait::async_trait;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use ironhand_core::ports::sandbox::{
    BrowserUnsupported, ContentMatch, FileText, PackedWorkspace, ProcessHandle, RestoredWorkspace,
    Sandbox, SandboxError, SandboxProcess, SandboxResult, ShellOutcome, WriteOptions,
};
use ironhand_core::ports::{BrowserOutcome, SandboxBrowser, VncStream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The largest JSON answer read from a daemon (a whole file read is capped far below).
const ANSWER_LIMIT: u64 = 64 * 1024 * 1024;
/// How long one operation may take beyond the sandbox's own waits.
const SLACK: Duration = Duration::from_secs(30);

fn unavailable(message: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable(message.into())
}

/// How to reach one container's daemon.
#[derive(Clone)]
pub struct DaemonClient {
    http: reqwest::Client,
    /// `http://<address>:<port>`
    base: String,
    token: String,
    /// The longest an operation may wait (the sandbox's longest wait plus slack).
    timeout: Duration,
    /// Set when the daemon could not be reached at all (its container is gone): the
    /// provider then starts a new one.
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for DaemonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl DaemonClient {
    pub fn new(http: reqwest::Client, base: String, token: String, longest_wait: Duration) -> Self {
        Self {
            http,
            base,
            token,
            timeout: longest_wait + SLACK,
            lost: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the daemon stopped answering (connection refused or reset, no route).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether the daemon answers (for start-up).
    pub async fn health(&self) -> SandboxResult<Health> {
        let response = self
            .http
            .get(self.url("/v1/health"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| unavailable(format!("the sandbox does not answer: {e}")))?;
        read_json(response).await
    }

    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> SandboxResult<T> {
        let response = self.send(self.http.post(self.url(path)).json(body)).await?;
        read_json(response).await
    }

    async fn call_empty<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> SandboxResult<()> {
        let response = self.send(self.http.post(self.url(path)).json(body)).await?;
        check(response).await.map(|_| ())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> SandboxResult<reqwest::Response> {
        request
            .bearer_auth(&self.token)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    self.lost.store(true, Ordering::SeqCst);
                }
                unavailable(format!(
                    "the sandbox's container did not answer: {e}; the next call starts it again"
                ))
            })
    }

    /// A WebSocket to `path` (`http` → `ws`).
    async fn websocket(
        &self,
        path: &str,
    ) -> SandboxResult<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let url = self.url(path).replacen("http://", "ws://", 1);
        let mut request = url
            .into_client_request()
            .map_err(|e| unavailable(format!("bad sandbox address: {e}")))?;
        let auth = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| unavailable("bad sandbox token"))?;
        request.headers_mut().insert("authorization", auth);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(16 * 1024 * 1024))
            .max_frame_size(Some(16 * 1024 * 1024));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        match tokio::time::timeout(Duration::from_secs(20), connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok());
                Err(match body {
                    Some(e) => e.into_error(),
                    None => unavailable(format!("the sandbox refused: {}", response.status())),
                })
            }
            Ok(Err(e)) => Err(unavailable(format!(
                "the sandbox's container did not answer: {e}"
            ))),
            Err(_) => Err(unavailable(
                "the sandbox's container did not answer in time",
            )),
        }
    }

    pub async fn workspace_version(&self) -> SandboxResult<Option<i64>> {
        let response = self
            .send(self.http.get(self.url("/v1/workspace/version")))
            .await?;
        Ok(read_json::<Version>(response).await?.version)
    }

    /// Packs the workspace into `archive`; `None` when nothing changed since the last mark.
    pub async fn pack_workspace(
        &self,
        archive: &std::path::Path,
        max_bytes: u64,
    ) -> SandboxResult<Option<PackedWorkspace>> {
        let response = self
            .send(self.http.post(self.url("/v1/workspace/pack")))
            .await?;
        let response = check(response).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let report: PackReport = response
            .headers()
            .get(PACK_REPORT_HEADER)
            .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
            .ok_or_else(|| unavailable("the sandbox's pack came without its report"))?;
        let mut file = tokio::fs::File::create(archive)
            .await
            .map_err(|e| unavailable(format!("could not write the snapshot: {e}")))?;
        let mut stream = response.bytes_stream();
        let mut written = 0u64;
        // A snapshot is compressed: it never needs more than the workspace's own bound.
        let limit = max_bytes.max(1) * 2 + 64 * 1024 * 1024;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| unavailable(format!("the snapshot did not arrive: {e}")))?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(unavailable("the sandbox's snapshot is larger than allowed"));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| unavailable(format!("could not write the snapshot: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| unavailable(format!("could not write the snapshot: {e}")))?;
        Ok(Some(PackedWorkspace {
            files: report.files,
            bytes: report.bytes,
            left_out_files: report.left_out_files,
            left_out_bytes: report.left_out_bytes,
            left_out: report.left_out,
            state: report.state,
        }))
    }

    pub async fn mark_workspace(&self, version: i64, state: &str) -> SandboxResult<()> {
        self.call_empty(
            "/v1/workspace/mark",
            &Mark {
                version,
                state: state.to_string(),
            },
        )
        .await
    }

    pub async fn restore_workspace(
        &self,
        archive: &std::path::Path,
        version: i64,
    ) -> SandboxResult<RestoredWorkspace> {
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|e| unavailable(format!("could not read the snapshot: {e}")))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let response = self
            .send(
                self.http
                    .put(self.url(&format!("/v1/workspace/restore?version={version}")))
                    .body(body),
            )
            .await?;
        let restored: Restored = read_json(response).await?;
        Ok(RestoredWorkspace {
            files: restored.files,
            bytes: restored.bytes,
            refused: restored.refused,
        })
    }
}

/// The answer, or the daemon's error as a [`SandboxError`].
async fn check(response: reqwest::Response) -> SandboxResult<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let bytes = read_bounded(response, 64 * 1024).await.unwrap_or_default();
    Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => body.into_error(),
        Err(_) => unavailable(format!("the sandbox answered {status}")),
    })
}

async fn read_bounded(response: reqwest::Response, limit: u64) -> SandboxResult<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(unavailable("the sandbox's answer is too large"));
    }
    let mut stream = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| unavailable(format!("the sandbox's answer broke off: {e}")))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(unavailable("the sandbox's answer is too large"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> SandboxResult<T> {
    let response = check(response).await?;
    let bytes = read_bounded(response, ANSWER_LIMIT).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| unavailable(format!("the sandbox's answer is not understood: {e}")))
}

/// One session's sandbox in a container.
pub struct RemoteSandbox {
    client: DaemonClient,
    /// Called on every use (the provider's idle clock).
    touch: Arc<dyn Fn() + Send + Sync>,
    browser_supported: Result<(), BrowserUnsupported>,
}

impl std::fmt::Debug for RemoteSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSandbox")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl RemoteSandbox {
    pub fn new(
        client: DaemonClient,
        touch: Arc<dyn Fn() + Send + Sync>,
        browser_supported: Result<(), BrowserUnsupported>,
    ) -> Self {
        Self {
            client,
            touch,
            browser_supported,
        }
    }

    pub fn client(&self) -> &DaemonClient {
        &self.client
    }
}

#[async_trait]
impl Sandbox for RemoteSandbox {
    async fn shell_exec(
        &self,
        shell_id: &str,
        exec_dir: &str,
        command: &str,
    ) -> SandboxResult<ShellOutcome> {
        (self.touch)();
        let r = ShellExec {
            shell_id: shell_id.into(),
            exec_dir: exec_dir.into(),
            command: command.into(),
        };
        let out = self.client.call("/v1/shell/exec", &r).await;
        (self.touch)();
        out
    }

    async fn shell_view(&self, shell_id: &str) -> SandboxResult<ShellOutcome> {
        (self.touch)();
        let r = ShellRef {
            shell_id: shell_id.into(),
        };
        self.client.call("/v1/shell/view", &r).await
    }

    async fn shell_wait(
        &self,
        shell_id: &str,
        seconds: Option<u64>,
    ) -> SandboxResult<ShellOutcome> {
        (self.touch)();
        let r = ShellWait {
            shell_id: shell_id.into(),
            seconds,
        };
        let out = self.client.call("/v1/shell/wait", &r).await;
        (self.touch)();
        out
    }

    async fn shell_write(
        &self,
        shell_id: &str,
        input: &str,
        press_enter: bool,
    ) -> SandboxResult<ShellOutcome> {
        (self.touch)();
        let r = ShellWrite {
            shell_id: shell_id.into(),
            input: input.into(),
            press_enter,
        };
        self.client.call("/v1/shell/write", &r).await
    }

    async fn shell_kill(&self, shell_id: &str) -> SandboxResult<ShellOutcome> {
        (self.touch)();
        let r = ShellRef {
            shell_id: shell_id.into(),
        };
        self.client.call("/v1/shell/kill", &r).await
    }

    async fn file_read(
        &self,
        path: &str,
        start_line: Option<i64>,
        end_line: Option<i64>,
    ) -> SandboxResult<FileText> {
        (self.touch)();
        let r = FileRead {
            path: path.into(),
            start_line,
            end_line,
        };
        self.client.call("/v1/file/read", &r).await
    }

    async fn file_write(
        &self,
        path: &str,
        content: &str,
        options: &WriteOptions,
    ) -> SandboxResult<()> {
        (self.touch)();
        let r = FileWrite {
            path: path.into(),
            content: content.into(),
            append: options.append,
            leading_newline: options.leading_newline,
            trailing_newline: options.trailing_newline,
        };
        self.client.call_empty("/v1/file/write", &r).await
    }

    async fn file_str_replace(&self, path: &str, old: &str, new: &str) -> SandboxResult<usize> {
        (self.touch)();
        let r = FileReplace {
            path: path.into(),
            old: old.into(),
            new: new.into(),
        };
        let replaced: Replaced = self.client.call("/v1/file/replace", &r).await?;
        Ok(replaced.count)
    }

    async fn file_find_in_content(
        &self,
        path: &str,
        regex: &str,
    ) -> SandboxResult<Vec<ContentMatch>> {
        (self.touch)();
        let r = FindInContent {
            path: path.into(),
            regex: regex.into(),
        };
        self.client.call("/v1/file/find-in-content", &r).await
    }

    async fn file_find_by_name(&self, dir: &str, glob: &str) -> SandboxResult<Vec<String>> {
        (self.touch)();
        let r = FindByName {
            dir: dir.into(),
            glob: glob.into(),
        };
        self.client.call("/v1/file/find-by-name", &r).await
    }

    async fn put_file(&self, path: &str, bytes: &[u8]) -> SandboxResult<()> {
        (self.touch)();
        let request = self
            .client
            .http
            .put(self.client.url("/v1/file/bytes"))
            .query(&BytesQuery {
                path: path.into(),
                max_bytes: None,
            })
            .body(bytes.to_vec());
        let response = self.client.send(request).await?;
        check(response).await.map(|_| ())
    }

    async fn get_file(&self, path: &str, max_bytes: u64) -> SandboxResult<Vec<u8>> {
        (self.touch)();
        let request = self
            .client
            .http
            .get(self.client.url("/v1/file/bytes"))
            .query(&BytesQuery {
                path: path.into(),
                max_bytes: Some(max_bytes),
            });
        let response = check(self.client.send(request).await?).await?;
        read_bounded(response, max_bytes).await
    }

    async fn browser(&self) -> SandboxResult<Arc<dyn SandboxBrowser>> {
        self.browser_supported
            .clone()
            .map_err(|why| unavailable(why.to_string()))?;
        Ok(Arc::new(RemoteBrowser {
            client: self.client.clone(),
            touch: self.touch.clone(),
        }))
    }

    fn running_browser(&self) -> Option<Arc<dyn SandboxBrowser>> {
        // Whether it runs is the daemon's to know: the live view asks it (and is refused
        // when it does not run).
        self.browser_supported.is_ok().then(|| {
            Arc::new(RemoteBrowser {
                client: self.client.clone(),
                touch: self.touch.clone(),
            }) as Arc<dyn SandboxBrowser>
        })
    }

    async fn spawn_process(
        &self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> SandboxResult<SandboxProcess> {
        (self.touch)();
        let spec = serde_json::to_string(&Spawn {
            program: program.into(),
            args: args.to_vec(),
            env: env.to_vec(),
        })
        .map_err(|e| unavailable(format!("bad process spec: {e}")))?;
        let query = serde_json::json!({ "spec": spec });
        let encoded = reqwest::Url::parse_with_params(
            "http://x/v1/process",
            query
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
        )
        .map_err(|e| unavailable(format!("bad process spec: {e}")))?;
        let path = format!("/v1/process?{}", encoded.query().unwrap_or_default());
        let socket = self.client.websocket(&path).await?;
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let handle = Arc::new(RemoteProcess {
            running: AtomicBool::new(true),
            stderr: Mutex::new(String::new()),
            stop: tokio::sync::Notify::new(),
        });
        tokio::spawn(pump(socket, theirs, Some(handle.clone())));
        let (stdout, stdin) = tokio::io::split(ours);
        Ok(SandboxProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            handle,
        })
    }

    fn keep_alive(&self) {
        (self.touch)();
    }
}

/// A connector's program in the container.
struct RemoteProcess {
    running: AtomicBool,
    stderr: Mutex<String>,
    stop: tokio::sync::Notify,
}

impl ProcessHandle for RemoteProcess {
    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn kill(&self) {
        self.stop.notify_one();
    }
}

/// Carries bytes between a WebSocket to the daemon and our end of a duplex pipe.
async fn pump<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    pipe: tokio::io::DuplexStream,
    process: Option<Arc<RemoteProcess>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let (mut tx, mut rx) = socket.split();
    let (mut pipe_read, mut pipe_write) = tokio::io::split(pipe);
    let outbound = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if tx.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.close().await;
    };
    let inbound = async {
        while let Some(Ok(message)) = rx.next().await {
            match message {
                Message::Binary(data) if pipe_write.write_all(&data).await.is_err() => break,
                Message::Binary(_) => {}
                Message::Text(text) => {
                    if let (Some(process), Ok(ended)) =
                        (&process, serde_json::from_str::<ProcessEnded>(&text))
                    {
                        *process.stderr.lock().unwrap_or_else(|p| p.into_inner()) =
                            ended.stderr_tail;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = pipe_write.shutdown().await;
    };
    let stop = async {
        match &process {
            Some(p) => p.stop.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = async { tokio::join!(outbound, inbound); } => {}
        () = stop => {}
    }
    if let Some(process) = process {
        process.running.store(false, Ordering::SeqCst);
    }
}

/// The browser in a container.
struct RemoteBrowser {
    client: DaemonClient,
    touch: Arc<dyn Fn() + Send + Sync>,
}

#[async_trait]
impl SandboxBrowser for RemoteBrowser {
    async fn call(&self, function: &str, args: &serde_json::Value) -> BrowserOutcome {
        (self.touch)();
        let request = BrowserCall {
            function: function.into(),
            args: args.clone(),
        };
        let result: SandboxResult<BrowserResult> =
            self.client.call("/v1/browser/call", &request).await;
        (self.touch)();
        match result {
            Ok(r) => BrowserOutcome {
                success: r.success,
                message: r.message,
                data: r.data,
                screenshot: r
                    .screenshot
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok()),
            },
            Err(e) => BrowserOutcome::failed(e.to_string()),
        }
    }

    async fn connect_vnc(&self) -> SandboxResult<VncStream> {
        (self.touch)();
        let socket = self.client.websocket("/v1/browser/vnc").await?;
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        tokio::spawn(pump(socket, theirs, None));
        Ok(Box::new(ours))
    }

    fn is_running(&self) -> bool {
        true
    }
}
