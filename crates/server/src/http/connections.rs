//! The API listener: our own accept loop around hyper, so that every connection is bounded.
//! Each one gets a deadline for its request headers and a cap on their size (hyper's; the
//! header clock also runs while a kept-alive connection waits for its next request), an
//! idle deadline (no byte read or written), and a slot under the instance's and its client
//! address's connection caps. A connection over a cap is answered a minimal 503 (best
//! effort, one non-blocking write) and closed at once, so refusing costs no task and keeps
//! no descriptor.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What bounds each connection (`[server]` settings, resolved at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// 0: no cap per client address.
    pub max_connections_per_ip: usize,
}

impl ConnectionLimits {
    /// The limits the settings ask for; an automatic connection cap is three quarters of
    /// `open_files` (the process's open-file limit; `None` = unlimited).
    pub fn from_settings(s: &crate::config::ServerSettings, open_files: Option<u64>) -> Self {
        let max_connections = match s.max_connections {
            0 => open_files
                .map_or(AUTO_MAX_CONNECTIONS, |n| {
                    usize::try_from(n / 4 * 3).unwrap_or(AUTO_MAX_CONNECTIONS)
                })
                .clamp(64, AUTO_MAX_CONNECTIONS),
            n => n,
        };
        Self {
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            max_header_bytes: s.max_header_bytes,
            max_connections,
            // Behind proxies the peer is a proxy, not a client.
            max_connections_per_ip: if s.trusted_proxies > 0 {
                0
            } else {
                s.max_connections_per_ip
            },
        }
    }
}

/// The automatic connection cap never goes above this.
const AUTO_MAX_CONNECTIONS: usize = 65_536;

/// Raises this process's soft open-file limit to its hard limit (each connection costs a
/// descriptor) and returns the soft limit now in force (`None`: unlimited).
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(error) => {
            tracing::warn!(%error, soft = ?limit.current, hard = ?limit.maximum, "could not raise the open-file limit to its hard limit");
            limit.current
        }
    }
}

/// Counts open connections, in all and per client address.
struct ConnectionGate {
    total: Arc<Semaphore>,
    capacity: u32,
    per_ip: usize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Instance,
    Address,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Address => "address",
        }
    }
}

/// A connection's place under the caps, given back when its socket is dropped (wherever
/// it went: an upgraded WebSocket keeps it).
struct Slot {
    gate: Arc<ConnectionGate>,
    key: Option<IpAddr>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut by_ip = self.gate.by_ip();
            if let Some(count) = by_ip.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    by_ip.remove(&key);
                }
            }
        }
    }
}

/// The address a per-client cap counts under: IPv4 as is, IPv6 by its /64 (one host
/// usually holds a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl ConnectionGate {
    fn new(capacity: usize, per_ip: usize) -> Arc<Self> {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        Arc::new(Self {
            total: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            per_ip,
            by_ip: Mutex::new(HashMap::new()),
        })
    }

    fn by_ip(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.by_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Instance)?;
        let key = if self.per_ip > 0 {
            let key = client_key(ip);
            let mut by_ip = self.by_ip();
            let count = by_ip.entry(key).or_insert(0);
            if *count >= self.per_ip {
                return Err(Refusal::Address);
            }
            *count += 1;
            Some(key)
        } else {
            None
        };
        Ok(Slot {
            gate: self.clone(),
            key,
            _permit: permit,
        })
    }

    /// Resolves once every connection has been closed.
    async fn all_closed(&self) {
        let _ = self.total.acquire_many(self.capacity).await;
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        self.opened
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// A client socket that notes its progress and holds its slot.
struct MeteredStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for MeteredStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for MeteredStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The whole answer to a connection over a cap.
fn refusal_answer(refusal: Refusal) -> String {
    let msg = match refusal {
        Refusal::Instance => "The server has too many open connections. Try again shortly.",
        Refusal::Address => {
            "Too many open connections from your address. Close some and try again."
        }
    };
    let body = serde_json::json!({"code": 503, "msg": msg, "data": null}).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting, lets open
/// requests finish (kept-alive connections close at once) and returns when every
/// connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let gate = ConnectionGate::new(limits.max_connections, limits.max_connections_per_ip);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                if !matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) {
                    // Out of descriptors, most likely: give closing connections a moment.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let slot = match gate.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!("ironhand_connections_refused_total", "cap" => refusal.as_str())
                    .increment(1);
                tracing::debug!(peer = %peer.ip(), cap = refusal.as_str(), "connection refused");
                let _ = stream.try_write(refusal_answer(refusal).as_bytes());
                continue;
            }
        };
        // Without TCP_NODELAY a small SSE frame on a kept-alive connection waits for the
        // client's delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        });
        let stream = MeteredStream {
            inner: stream,
            activity: activity.clone(),
            _slot: slot,
        };
        tokio::spawn(serve_connection(
            http.clone(),
            stream,
            activity,
            peer,
            app.clone(),
            limits.idle_timeout,
            shutdown.clone(),
        ));
    }
    drop(listener);
    gate.all_closed().await;
}

async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: MeteredStream,
    activity: Arc<Activity>,
    peer: SocketAddr,
    app: Router,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, peer = %peer.ip(), "connection ended with an error");
                }
                return;
            }
            _ = activity.idle(idle_timeout) => {
                tracing::debug!(peer = %peer.ip(), "closing a connection idle for {} s", idle_timeout.as_secs());
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn the_caps_count_per_instance_and_per_address_and_free_on_drop() {
        let gate = ConnectionGate::new(3, 2);
        let a1 = gate.admit(ip("10.0.0.1")).expect("first");
        let _a2 = gate.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(gate.admit(ip("10.0.0.1")).err(), Some(Refusal::Address));
        let _b1 = gate.admit(ip("10.0.0.2")).expect("another address");
        assert_eq!(gate.admit(ip("10.0.0.3")).err(), Some(Refusal::Instance));
        drop(a1);
        let _a3 = gate.admit(ip("10.0.0.1")).expect("a freed slot");
        assert_eq!(gate.by_ip().get(&ip("10.0.0.1")), Some(&2));
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(client_key(ip("10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn the_automatic_cap_follows_the_open_file_limit() {
        let s = crate::config::ServerSettings::default();
        assert_eq!(
            ConnectionLimits::from_settings(&s, Some(1024)).max_connections,
            768
        );
        assert_eq!(
            ConnectionLimits::from_settings(&s, None).max_connections,
            AUTO_MAX_CONNECTIONS
        );
        assert_eq!(
            ConnectionLimits::from_settings(&s, Some(16)).max_connections,
            64
        );
        let behind_proxy = crate::config::ServerSettings {
            trusted_proxies: 1,
            ..s
        };
        assert_eq!(
            ConnectionLimits::from_settings(&behind_proxy, Some(1024)).max_connections_per_ip,
            0
        );
    }
}
