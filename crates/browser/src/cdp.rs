//! A small Chrome DevTools Protocol client for Chromium's `--remote-debugging-pipe`.
//!
//! Chromium reads commands on its fd 3 and writes answers and events on its fd 4; every
//! message is one JSON object followed by a NUL byte. [`CdpClient`] owns both halves: a
//! writer task sends commands in order (a caller that times out never leaves half a message
//! on the pipe), a reader task routes each answer to the call waiting for its `id` and fans
//! events out on a broadcast channel. Sessions are flat (`Target.attachToTarget` with
//! `flatten: true`): a command for a page carries that page's `sessionId`, and so do its events.
//!
//! Every call has a timeout. When Chromium exits (the pipe closes) or writes something the
//! client cannot accept, the connection is closed: every waiting call and every later call
//! gets [`CdpError::Closed`] with the reason, at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The largest message accepted from Chromium by default. A bigger one fails the call it
/// answers (or is dropped, for an event) instead of growing a buffer without bound.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How many events a slow subscriber may fall behind before it loses some.
const EVENT_CAPACITY: usize = 4096;
const READ_CHUNK: usize = 64 * 1024;

/// Why a DevTools call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CdpError {
    /// The pipe is closed: Chromium exited, or the connection broke.
    #[error("the browser connection is closed: {0}")]
    Closed(String),
    /// Chromium did not answer within the call's timeout.
    #[error("the browser did not answer {method} within {:.1} s", .timeout.as_secs_f64())]
    Timeout { method: String, timeout: Duration },
    /// Chromium answered with a protocol error.
    #[error("{method} failed: {message} (code {code})")]
    Protocol {
        method: String,
        code: i64,
        message: String,
    },
    /// The answer was larger than the client accepts.
    #[error("the answer to {method} is larger than {limit} bytes")]
    TooLarge { method: String, limit: usize },
}

/// An event from Chromium; `session_id` names the page session it belongs to (none for the
/// browser itself).
#[derive(Debug, Clone)]
pub struct CdpEvent {
    pub method: String,
    pub params: Value,
    pub session_id: Option<String>,
}

/// A connection to one Chromium. Cheap to clone; the reader and writer tasks stop when the
/// last clone is dropped.
#[derive(Clone)]
pub struct CdpClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    router: Arc<Router>,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    next_id: AtomicU64,
    call_timeout: Duration,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Shared by the client and its reader/writer tasks: who waits for which answer, and
/// whether the connection is closed.
struct Router {
    state: Mutex<RouterState>,
    events: broadcast::Sender<CdpEvent>,
    closed_tx: watch::Sender<bool>,
    max_message: usize,
}

#[derive(Default)]
struct RouterState {
    pending: HashMap<u64, Pending>,
    closed: Option<String>,
}

struct Pending {
    method: String,
    reply: oneshot::Sender<Result<Value, CdpError>>,
}

#[derive(Deserialize)]
struct Incoming {
    id: Option<u64>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
    result: Option<Value>,
    error: Option<ProtocolError>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

#[derive(Deserialize)]
struct ProtocolError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<String>,
}

impl CdpClient {
    /// Starts the reader and writer tasks on the two halves of the pipe. `call_timeout` is the
    /// default for [`call`](Self::call); `max_message` bounds one incoming message.
    pub fn new<R, W>(reader: R, writer: W, call_timeout: Duration, max_message: usize) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (closed_tx, _) = watch::channel(false);
        let router = Arc::new(Router {
            state: Mutex::new(RouterState::default()),
            events,
            closed_tx,
            max_message,
        });
        let (outgoing, rx) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_loop(reader, router.clone()));
        let writer_task = tokio::spawn(write_loop(writer, rx, router.clone()));
        CdpClient {
            inner: Arc::new(ClientInner {
                router,
                outgoing,
                next_id: AtomicU64::new(1),
                call_timeout,
                tasks: [reader_task, writer_task],
            }),
        }
    }

    /// Sends a command (to the browser when `session` is `None`, else to that page session)
    /// and waits for its answer within the default timeout.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        session: Option<&str>,
    ) -> Result<Value, CdpError> {
        self.call_with_timeout(method, params, session, self.inner.call_timeout)
            .await
    }

    /// [`call`](Self::call) with its own timeout.
    pub async fn call_with_timeout(
        &self,
        method: &str,
        params: Value,
        session: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        let router = &self.inner.router;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        {
            let mut state = router.lock();
            if let Some(reason) = &state.closed {
                return Err(CdpError::Closed(reason.clone()));
            }
            state.pending.insert(
                id,
                Pending {
                    method: method.to_owned(),
                    reply,
                },
            );
        }
        // Forget the waiter however this future ends (answer, timeout, or being dropped).
        let _forget = ForgetOnDrop { router, id };
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::String(session.to_owned());
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        if self.inner.outgoing.send(bytes).is_err() {
            return Err(CdpError::Closed(router.closed_reason()));
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CdpError::Closed(router.closed_reason())),
            Err(_) => Err(CdpError::Timeout {
                method: method.to_owned(),
                timeout,
            }),
        }
    }

    /// Events from now on. Subscribe before sending the command whose events you await.
    pub fn events(&self) -> broadcast::Receiver<CdpEvent> {
        self.inner.router.events.subscribe()
    }

    /// Why the connection closed, if it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.router.lock().closed.clone()
    }

    /// Resolves when the connection closes (at once if it already has).
    pub async fn closed(&self) {
        let mut rx = self.inner.router.closed_tx.subscribe();
        // An error means the router is gone, which also means closed.
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

struct ForgetOnDrop<'a> {
    router: &'a Router,
    id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.router.lock().pending.remove(&self.id);
    }
}

impl Router {
    fn lock(&self) -> MutexGuard<'_, RouterState> {
        // A panic while holding this lock cannot leave the map inconsistent; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed_reason(&self) -> String {
        self.lock()
            .closed
            .clone()
            .unwrap_or_else(|| "the connection was dropped".to_owned())
    }

    /// Closes the connection once: every waiting call gets the reason.
    fn close(&self, reason: String) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            tracing::debug!(%reason, "DevTools pipe closed");
            state.closed = Some(reason.clone());
            std::mem::take(&mut state.pending)
        };
        for (_, waiter) in pending {
            let _ = waiter.reply.send(Err(CdpError::Closed(reason.clone())));
        }
        self.closed_tx.send_replace(true);
    }

    fn dispatch(&self, raw: &[u8]) {
        let message: Incoming = match serde_json::from_slice(raw) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable DevTools message");
                return;
            }
        };
        if let Some(id) = message.id {
            let Some(waiter) = self.lock().pending.remove(&id) else {
                return; // its caller timed out or went away
            };
            let result = match message.error {
                Some(error) => Err(CdpError::Protocol {
                    method: waiter.method,
                    code: error.code,
                    message: match error.data {
                        Some(data) if !data.is_empty() => format!("{}: {data}", error.message),
                        _ => error.message,
                    },
                }),
                None => Ok(message.result.unwrap_or(Value::Null)),
            };
            let _ = waiter.reply.send(result);
        } else if let Some(method) = message.method {
            // No subscriber is fine: nobody is interested right now.
            let _ = self.events.send(CdpEvent {
                method,
                params: message.params,
                session_id: message.session_id,
            });
        }
    }

    /// A message over the limit: fail the call it answers, if its id can be seen at the start
    /// (Chromium writes `{"id":N,` first in answers).
    fn oversized(&self, head: &[u8]) {
        let id = head
            .strip_prefix(b"{\"id\":")
            .map(|rest| {
                rest.iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u64, |n, b| {
                        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                    })
            })
            .filter(|id| *id > 0);
        tracing::warn!(
            limit = self.max_message,
            ?id,
            "dropping an oversized DevTools message"
        );
        if let Some(id) = id
            && let Some(waiter) = self.lock().pending.remove(&id)
        {
            let _ = waiter.reply.send(Err(CdpError::TooLarge {
                method: waiter.method,
                limit: self.max_message,
            }));
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: R, router: Arc<Router>) {
    let mut message: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    // After an oversized message: drop bytes up to its terminating NUL.
    let mut skipping = false;
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => {
                router.close("Chromium closed the DevTools pipe (the browser has exited)".into());
                return;
            }
            Ok(n) => n,
            Err(e) => {
                router.close(format!("reading the DevTools pipe failed: {e}"));
                return;
            }
        };
        let mut data = &chunk[..n];
        while !data.is_empty() {
            match memchr::memchr(0, data) {
                Some(end) => {
                    if !skipping {
                        message.extend_from_slice(&data[..end]);
                        if message.len() > router.max_message {
                            router.oversized(&message[..message.len().min(32)]);
                        } else {
                            router.dispatch(&message);
                        }
                    }
                    skipping = false;
                    message.clear();
                    if message.capacity() > 4 * READ_CHUNK {
                        message.shrink_to(READ_CHUNK);
                    }
                    data = &data[end + 1..];
                }
                None => {
                    if !skipping {
                        message.extend_from_slice(data);
                        if message.len() > router.max_message {
                            router.oversized(&message[..message.len().min(32)]);
                            skipping = true;
                            message = Vec::with_capacity(READ_CHUNK);
                        }
                    }
                    data = &[];
                }
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    router: Arc<Router>,
) {
    while let Some(bytes) = outgoing.recv().await {
        let written = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        };
        if let Err(e) = written.await {
            router.close(format!("writing to the DevTools pipe failed: {e}"));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader, duplex};

    /// A fake Chromium on the other end of an in-memory pipe.
    fn pair(max: usize) -> (CdpClient, tokio::io::DuplexStream) {
        let (ours, theirs) = duplex(1 << 20);
        let (r, w) = tokio::io::split(ours);
        (
            CdpClient::new(r, w, Duration::from_millis(500), max),
            theirs,
        )
    }

    async fn read_command(
        reader: &mut BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    ) -> Value {
        let mut buf = Vec::new();
        reader.read_until(0, &mut buf).await.expect("read");
        buf.pop();
        serde_json::from_slice(&buf).expect("json")
    }

    #[tokio::test]
    async fn answers_reach_their_callers_and_events_are_broadcast() {
        let (client, theirs) = pair(1024);
        let (r, mut w) = tokio::io::split(theirs);
        let mut r = BufReader::new(r);
        let mut events = client.events();
        let c1 = client.clone();
        let first = tokio::spawn(async move { c1.call("A.one", json!({}), None).await });
        let c2 = client.clone();
        let second =
            tokio::spawn(async move { c2.call("B.two", json!({"x": 1}), Some("S")).await });
        let a = read_command(&mut r).await;
        let b = read_command(&mut r).await;
        let (one, two) = if a["method"] == "A.one" {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(two["sessionId"], "S");
        // answer in reverse order, with an event between
        let reply = format!(
            "{{\"id\":{},\"result\":{{\"v\":2}}}}\0{{\"method\":\"E.ev\",\"params\":{{\"k\":1}},\"sessionId\":\"S\"}}\0{{\"id\":{},\"error\":{{\"code\":-32000,\"message\":\"nope\"}}}}\0",
            two["id"], one["id"]
        );
        w.write_all(reply.as_bytes()).await.expect("write");
        let second = second.await.expect("join").expect("answer");
        assert_eq!(second["v"], 2);
        let first = first.await.expect("join");
        assert!(matches!(
            first,
            Err(CdpError::Protocol { code: -32000, .. })
        ));
        let event = events.recv().await.expect("event");
        assert_eq!(event.method, "E.ev");
        assert_eq!(event.session_id.as_deref(), Some("S"));
    }

    #[tokio::test]
    async fn a_silent_browser_times_out_and_a_dead_one_fails_every_waiter() {
        let (client, theirs) = pair(1024);
        let timed_out = client.call("Slow.call", json!({}), None).await;
        assert!(matches!(timed_out, Err(CdpError::Timeout { .. })));
        let c = client.clone();
        let waiting = tokio::spawn(async move {
            c.call_with_timeout("Never.answered", json!({}), None, Duration::from_secs(60))
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(theirs);
        let result = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("no hang")
            .expect("join");
        assert!(matches!(result, Err(CdpError::Closed(_))), "{result:?}");
        assert!(matches!(
            client.call("After.close", json!({}), None).await,
            Err(CdpError::Closed(_))
        ));
        tokio::time::timeout(Duration::from_secs(1), client.closed())
            .await
            .expect("closed resolves");
    }

    #[tokio::test]
    async fn an_oversized_answer_fails_its_call_and_the_connection_goes_on() {
        let (client, theirs) = pair(1024);
        let (r, mut w) = tokio::io::split(theirs);
        let mut r = BufReader::new(r);
        let c = client.clone();
        let big = tokio::spawn(async move { c.call("Big.answer", json!({}), None).await });
        let cmd = read_command(&mut r).await;
        let huge = format!(
            "{{\"id\":{},\"result\":{{\"s\":\"{}\"}}}}\0",
            cmd["id"],
            "x".repeat(5000)
        );
        w.write_all(huge.as_bytes()).await.expect("write");
        let result = big.await.expect("join");
        assert!(
            matches!(result, Err(CdpError::TooLarge { .. })),
            "{result:?}"
        );
        let c = client.clone();
        let small = tokio::spawn(async move { c.call("Small.answer", json!({}), None).await });
        let cmd = read_command(&mut r).await;
        w.write_all(format!("{{\"id\":{},\"result\":{{}}}}\0", cmd["id"]).as_bytes())
            .await
            .expect("write");
        assert!(small.await.expect("join").is_ok());
    }
}
