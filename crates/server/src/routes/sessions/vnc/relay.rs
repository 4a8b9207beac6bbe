//! The live view's pump: WebSocket binary frames to the browser's display (RFB) and back.
//! What the display sends goes out as it comes; what the viewer sends goes through
//! [`ClientFilter`], and its input only while the user has taken the browser over. Either
//! side ending closes the other, with a close code and a sentence the viewer can show.

use super::rfb::{ClientFilter, Kind};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use ironhand_core::ids::SessionId;
use ironhand_core::ports::VncStream;
use ironhand_core::session::{SessionService, TakeoverStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

/// How long a read takeover status holds: a hand-back stops input within this.
const STATUS_TTL: Duration = Duration::from_millis(500);
/// A viewer or display that takes longer than this to accept bytes is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pings keep proxies from closing a quiet view.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Longest wait for the viewer's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Bytes read from the display per frame.
const READ_CHUNK: usize = 64 * 1024;

/// Why a live view ends: the WebSocket close code and a sentence for the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    pub code: u16,
    pub reason: &'static str,
}

impl Closing {
    pub const NOT_RUNNING: Self = Self {
        code: 4404,
        reason: "the browser is not running",
    };
    pub const TOO_MANY: Self = Self {
        code: 4429,
        reason: "too many live views are open for this account: close one and retry",
    };
    pub const UNREACHABLE: Self = Self {
        code: 1011,
        reason: "the browser's display could not be reached",
    };
    pub const DISPLAY_ENDED: Self = Self {
        code: 1000,
        reason: "the browser's display closed",
    };
    pub const VIEWER_LEFT: Self = Self {
        code: 1000,
        reason: "the viewer closed the live view",
    };
    pub const NOT_RFB: Self = Self {
        code: 1002,
        reason: "the viewer sent something that is not RFB this live view understands",
    };
    pub const TEXT: Self = Self {
        code: 1003,
        reason: "the live view takes binary frames only",
    };
    pub const SHUTDOWN: Self = Self {
        code: 1001,
        reason: "the server is restarting: reconnect",
    };
    pub const SLOW: Self = Self {
        code: 1008,
        reason: "the viewer did not keep up",
    };
}

/// Sends `closing` and waits briefly for the viewer's answer, so the close frame arrives
/// before the connection ends.
pub async fn close(mut socket: WebSocket, closing: Closing) {
    let frame = close_frame(closing);
    if tokio::time::timeout(WRITE_TIMEOUT, socket.send(frame))
        .await
        .is_ok_and(|sent| sent.is_ok())
    {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

fn close_frame(closing: Closing) -> Message {
    Message::Close(Some(CloseFrame {
        code: closing.code,
        reason: Utf8Bytes::from_static(closing.reason),
    }))
}

/// Whether the user drives the browser, read through a short cache.
pub struct InputGate {
    sessions: Arc<SessionService>,
    session: SessionId,
    cached: Option<(Instant, bool)>,
}

impl InputGate {
    pub fn new(sessions: Arc<SessionService>, session: SessionId) -> Self {
        Self {
            sessions,
            session,
            cached: None,
        }
    }

    async fn user_drives(&mut self) -> bool {
        if let Some((at, user)) = self.cached
            && at.elapsed() < STATUS_TTL
        {
            return user;
        }
        let user = match self.sessions.takeover_status(self.session).await {
            Ok(status) => status == TakeoverStatus::User,
            Err(error) => {
                // Fail closed: a viewer that cannot be checked only watches.
                tracing::warn!(%error, session_id = %self.session, "live view: could not read the takeover status");
                false
            }
        };
        self.cached = Some((Instant::now(), user));
        user
    }
}

/// Relays between `socket` and `display` until one side ends or the server stops.
pub async fn run(
    socket: WebSocket,
    display: VncStream,
    mut gate: InputGate,
    stopping: CancellationToken,
) -> Closing {
    let (mut to_viewer, mut from_viewer) = socket.split();
    let (mut from_display, mut to_display) = tokio::io::split(display);
    let closing = tokio::select! {
        closing = viewer_to_display(&mut from_viewer, &mut to_display, &mut gate) => closing,
        closing = display_to_viewer(&mut from_display, &mut to_viewer) => closing,
        () = stopping.cancelled() => Closing::SHUTDOWN,
    };
    let _ = to_display.shutdown().await;
    if closing != Closing::VIEWER_LEFT
        && let Ok(socket) = to_viewer.reunite(from_viewer)
    {
        close(socket, closing).await;
    }
    closing
}

async fn viewer_to_display(
    from_viewer: &mut SplitStream<WebSocket>,
    to_display: &mut WriteHalf<VncStream>,
    gate: &mut InputGate,
) -> Closing {
    let mut filter = ClientFilter::new();
    while let Some(message) = from_viewer.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Text(_)) => return Closing::TEXT,
            // A frame over the size limit ends here too; the connection is unusable.
            Ok(Message::Close(_)) | Err(_) => return Closing::VIEWER_LEFT,
        };
        let messages = match filter.feed(&data) {
            Ok(messages) => messages,
            Err(error) => {
                tracing::info!(%error, "live view: closing a viewer");
                return Closing::NOT_RFB;
            }
        };
        let mut out = Vec::with_capacity(data.len());
        for message in messages {
            if message.kind == Kind::Input && !gate.user_drives().await {
                continue;
            }
            out.extend_from_slice(&message.bytes);
        }
        if out.is_empty() {
            continue;
        }
        let write = async {
            to_display.write_all(&out).await?;
            to_display.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Closing::DISPLAY_ENDED,
        }
    }
    Closing::VIEWER_LEFT
}

async fn display_to_viewer(
    from_display: &mut ReadHalf<VncStream>,
    to_viewer: &mut SplitSink<WebSocket, Message>,
) -> Closing {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        let message = tokio::select! {
            read = from_display.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Closing::DISPLAY_ENDED,
                Ok(n) => Message::Binary(Bytes::copy_from_slice(&buf[..n])),
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        match tokio::time::timeout(WRITE_TIMEOUT, to_viewer.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Closing::VIEWER_LEFT,
            Err(_) => return Closing::SLOW,
        }
    }
}
