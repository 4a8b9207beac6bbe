//! The listener bounds every connection: a deadline for the request headers (which also
//! ends kept-alive connections nobody uses), a cap on their size, an idle deadline that live
//! streams keep clear of with comment lines, and a cap on the connections one client
//! address holds open, refused without hurting anyone else.

use crate::sse::SseStream;
use crate::support::{Backend, TestApp};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HEALTH: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\n\r\n";

/// Everything the server sends until it closes the connection (end of stream or reset), or
/// `None` if it is still open after `secs` seconds.
async fn read_until_closed(stream: &mut TcpStream, secs: u64) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut piece)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&piece[..n]),
        }
    }
}

/// Reads one answer to `GET /health` (a small body with a Content-Length) and returns its
/// status line; the connection stays open.
async fn health_on(stream: &mut TcpStream) -> String {
    stream.write_all(HEALTH).await.expect("write");
    let mut got = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut piece))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&piece[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A connection to `to` from the loopback address `from` (all of 127/8 is loopback).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(to).await.expect("connect")
}

#[tokio::test]
async fn a_half_sent_request_and_an_unused_kept_alive_connection_are_closed_after_the_header_timeout()
 {
    let app = TestApp::start_with(Backend::Sqlite, |s| s.server.header_read_timeout_secs = 1).await;
    let mut slow = TcpStream::connect(app.addr).await.expect("connect");
    slow.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .await
        .expect("write");
    let answer = read_until_closed(&mut slow, 15)
        .await
        .expect("the half-sent request is closed within the bound");
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let mut kept = TcpStream::connect(app.addr).await.expect("connect");
    assert_eq!(health_on(&mut kept).await, "HTTP/1.1 200 OK");
    assert!(
        read_until_closed(&mut kept, 15).await.is_some(),
        "a kept-alive connection with no next request is closed"
    );
    app.get("/api/v1/health", None).await.assert_ok();
    app.stop().await;
}

#[tokio::test]
async fn a_request_head_over_the_cap_gets_431() {
    let app = TestApp::start(Backend::Sqlite).await;
    assert_eq!(app.settings.server.max_header_bytes, 32 * 1024);
    // Just under the default cap: served.
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/health"))
                .header("x-padding", "a".repeat(30 * 1024)),
        )
        .await;
    r.assert_ok();
    // 200 KB of headers: refused before it is read whole.
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let (mut read, mut write) = stream.split();
    let head = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let (_, answer) = tokio::join!(write.write_all(head.as_bytes()), async {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut got)).await;
        got
    });
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "expected 431, got {answer:?}"
    );
    app.get("/api/v1/health", None).await.assert_ok();
    app.stop().await;
}

#[tokio::test]
async fn over_the_per_address_cap_a_connection_is_refused_while_other_clients_are_served() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.server.max_connections_per_ip = 5;
        s.server.header_read_timeout_secs = 60;
    })
    .await;
    // Five kept-alive connections from 127.0.0.1, each answered once.
    let mut open = Vec::new();
    for _ in 0..5 {
        let mut stream = connect_from("127.0.0.1", app.addr).await;
        assert_eq!(health_on(&mut stream).await, "HTTP/1.1 200 OK");
        open.push(stream);
    }
    // The sixth is refused: a 503, or at least no answer, and closed at once.
    let mut sixth = connect_from("127.0.0.1", app.addr).await;
    let _ = sixth.write_all(HEALTH).await;
    let refused = read_until_closed(&mut sixth, 10)
        .await
        .expect("the refused connection is closed");
    let refused = String::from_utf8_lossy(&refused).to_string();
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 503"),
        "{refused}"
    );
    // Another client address is served meanwhile.
    let mut other = connect_from("127.0.0.2", app.addr).await;
    assert_eq!(health_on(&mut other).await, "HTTP/1.1 200 OK");
    // Closing one of the five makes room again.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from("127.0.0.1", app.addr).await;
        let _ = again.write_all(HEALTH).await;
        let answer = read_status_or_close(&mut again).await;
        if answer == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after closing a connection: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

/// The status line of the answer, or what was read before the server closed.
async fn read_status_or_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut piece = [0u8; 4096];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut piece)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&piece[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_live_stream_outlasts_the_idle_timeout_thanks_to_its_comments() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.server.request_timeout_secs = 1;
        s.server.idle_timeout_secs = 2;
    })
    .await;
    let user = app.signed_up("idle@example.com", "correct horse").await;
    let response = app
        .client
        .post(app.url("/api/v1/sessions"))
        .bearer_auth(&user.access)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = SseStream::new(response);
    let first = stream.next().await.expect("the list at once");
    assert_eq!(first.event, "sessions");
    // Quiet for more than twice the idle timeout…
    tokio::time::sleep(Duration::from_secs(5)).await;
    // …and the stream still carries the next change.
    let session = app.new_session(&user.access).await;
    loop {
        let event = stream
            .next_within(Duration::from_secs(10))
            .await
            .expect("the stream is still open");
        if event.data.to_string().contains(&session) {
            break;
        }
    }
    assert!(stream.comments >= 2, "pings: {}", stream.comments);
    app.stop().await;
}

#[tokio::test]
async fn a_download_its_client_stops_reading_is_closed_after_the_idle_timeout() {
    let app = TestApp::start_with(Backend::Sqlite, |s| {
        s.server.request_timeout_secs = 3;
        s.server.idle_timeout_secs = 4;
    })
    .await;
    let user = app.signed_up("stall@example.com", "correct horse").await;
    let size = 8 << 20;
    let upload = app.upload(&user.access, "big.txt", &vec![b'x'; size]).await;
    upload.assert_ok();
    let file = upload.data()["file_id"]
        .as_str()
        .expect("file id")
        .to_string();
    // A small receive window: the server's writes stall as soon as the buffers are full.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(8 * 1024).expect("small window");
    let mut reader = socket.connect(app.addr).await.expect("connect");
    let request = format!(
        "GET /api/v1/files/{file}/download HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\r\n",
        user.access
    );
    reader.write_all(request.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let got = read_until_closed(&mut reader, 30)
        .await
        .expect("the stalled download was closed");
    assert!(
        got.starts_with(b"HTTP/1.1 200") && got.len() < size,
        "{} bytes arrived: nothing closed the stalled connection",
        got.len()
    );
    app.get("/api/v1/health", None).await.assert_ok();
    app.stop().await;
}
