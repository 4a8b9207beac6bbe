//! The live view and take-over: the owner takes the browser from the agent and hands it
//! back (`takeover` events in the history), asks for a signed live-view link, and opens
//! the WebSocket that streams the browser's display, read-only until taken over.

use crate::sse::names;
use crate::support::{Backend, TestApp};
use futures::{SinkExt, StreamExt};
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::session::{AgentEvent, TakeoverStatus};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

ironhand_db::on_both_backends!(
    worker_threads = 2,
    sqlite => Backend::Sqlite,
    postgres_redis => Backend::PostgresRedis;
    taking_over_needs_a_running_browser_and_the_owner,
    handing_back_frees_a_user_whose_browser_died,
    live_view_links_are_for_the_owner_and_last_1_to_15_minutes,
    the_live_view_socket_refuses_bad_links_before_upgrading,
    a_valid_link_without_a_browser_closes_with_the_reason,
);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn takeover(
    app: &TestApp,
    token: Option<&str>,
    id: &str,
    body: Value,
) -> crate::support::Reply {
    app.call(
        Method::POST,
        &format!("/api/v1/sessions/{id}/takeover"),
        token,
        Some(body),
    )
    .await
}

async fn signed_url(app: &TestApp, token: &str, id: &str, minutes: i64) -> String {
    let r = app
        .post(
            &format!("/api/v1/sessions/{id}/vnc/signed-url"),
            Some(token),
            json!({ "expire_minutes": minutes }),
        )
        .await;
    r.assert_ok();
    r.data()["signed_url"]
        .as_str()
        .expect("signed_url")
        .to_string()
}

/// The `takeover` events of the session's history, as `(event_id, status)`.
async fn takeovers(app: &TestApp, token: &str, id: &str) -> Vec<(i64, String)> {
    let r = app
        .get(&format!("/api/v1/sessions/{id}"), Some(token))
        .await;
    r.assert_ok();
    r.data()["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "takeover")
        .map(|e| {
            assert!(e["data"]["timestamp"].is_i64(), "timestamp: {e}");
            (
                e["data"]["event_id"]
                    .as_str()
                    .and_then(|i| i.parse().ok())
                    .expect("event_id"),
                e["data"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Opens the live view at `path` (offering noVNC's `binary` subprotocol or none).
async fn open(
    app: &TestApp,
    path: &str,
    binary: bool,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut request = format!("ws://{}{path}", app.addr)
        .into_client_request()
        .expect("request");
    if binary {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("binary"));
    }
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the server answers the upgrade in time")
}

/// A refusal before the upgrade: its status and envelope.
async fn refused(app: &TestApp, path: &str) -> (u16, Value) {
    match open(app, path, true).await {
        Ok(_) => panic!("{path} was upgraded"),
        Err(tungstenite::Error::Http(response)) => {
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or(b""))
                .expect("an enveloped answer");
            (response.status().as_u16(), body)
        }
        Err(other) => panic!("{path}: {other}"),
    }
}

/// The close frame the server ends the socket with (never a hang).
async fn close_of(ws: &mut Ws) -> Option<CloseFrame> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(tungstenite::Message::Close(frame)) => return frame,
                Ok(_) => continue,
                Err(error) => panic!("the socket failed instead of closing: {error}"),
            }
        }
        None
    })
    .await
    .expect("the server closes the socket in time")
}

async fn taking_over_needs_a_running_browser_and_the_owner(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let stranger = app.signed_up("stranger@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;

    // No browser runs in a session that never used one.
    let r = takeover(&app, Some(&owner.access), &id, json!({"action": "take"})).await;
    r.assert_error(409);
    assert!(r.msg().contains("browser"), "{}", r.body);

    for bad in [
        json!({"action": "grab"}),
        json!({"action": "TAKE"}),
        json!({"action": 1}),
        json!({}),
    ] {
        let r = takeover(&app, Some(&owner.access), &id, bad.clone()).await;
        r.assert_error(422);
        assert_eq!(r.data()[0]["field"], "action", "{bad}: {}", r.body);
    }

    // Not yours: the same 404 as a session that does not exist; no token: 401.
    for action in ["take", "hand_back"] {
        let r = takeover(&app, Some(&stranger.access), &id, json!({"action": action})).await;
        r.assert_error(404);
        assert!(r.data().is_null());
        takeover(&app, None, &id, json!({"action": action}))
            .await
            .assert_error(401);
    }
    let missing = uuid::Uuid::now_v7().to_string();
    takeover(
        &app,
        Some(&owner.access),
        &missing,
        json!({"action": "hand_back"}),
    )
    .await
    .assert_error(404);

    // Handing back what the agent already drives changes nothing.
    takeover(
        &app,
        Some(&owner.access),
        &id,
        json!({"action": "hand_back"}),
    )
    .await
    .assert_ok();
    assert_eq!(takeovers(&app, &owner.access, &id).await, []);
    let status = app
        .state
        .sessions
        .takeover_status(SessionId::parse(&id).expect("id"))
        .await
        .expect("status");
    assert_eq!(status, TakeoverStatus::Agent);
}

async fn handing_back_frees_a_user_whose_browser_died(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;
    let session = SessionId::parse(&id).expect("id");
    // The user took the browser over, then the browser went away.
    app.state
        .agent
        .publisher()
        .publish(
            session,
            UserId::parse(&owner.user_id).expect("user id"),
            &AgentEvent::Takeover {
                status: TakeoverStatus::User,
            },
        )
        .await
        .expect("publish");
    let status = |app: &TestApp| {
        let sessions = app.state.sessions.clone();
        async move { sessions.takeover_status(session).await.expect("status") }
    };
    assert_eq!(status(&app).await, TakeoverStatus::User);

    // Taking over again needs a browser; the user still holds it.
    takeover(&app, Some(&owner.access), &id, json!({"action": "take"}))
        .await
        .assert_error(409);
    assert_eq!(status(&app).await, TakeoverStatus::User);

    // Handing back works without one, once.
    takeover(
        &app,
        Some(&owner.access),
        &id,
        json!({"action": "hand_back"}),
    )
    .await
    .assert_ok();
    assert_eq!(status(&app).await, TakeoverStatus::Agent);
    takeover(
        &app,
        Some(&owner.access),
        &id,
        json!({"action": "hand_back"}),
    )
    .await
    .assert_ok();
    let events = takeovers(&app, &owner.access, &id).await;
    let statuses: Vec<&str> = events.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["user", "agent"]);
    assert!(events[0].0 < events[1].0, "in order: {events:?}");

    // Replayed on the stream like every event.
    let mut stream = app
        .chat(&owner.access, &id, json!({}))
        .await
        .unwrap_or_else(|r| panic!("attach refused: {}", r.body));
    let replayed = stream.collect().await;
    assert_eq!(names(&replayed), ["takeover", "takeover"]);
    assert_eq!(replayed[1].data["status"], "agent");
    assert_eq!(
        replayed[1].id.as_deref(),
        Some(events[1].0.to_string().as_str())
    );
}

async fn live_view_links_are_for_the_owner_and_last_1_to_15_minutes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let stranger = app.signed_up("stranger@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;
    let path = format!("/api/v1/sessions/{id}/vnc/signed-url");

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let r = app
        .post(&path, Some(&owner.access), json!({"expire_minutes": 5}))
        .await;
    r.assert_ok();
    assert_eq!(r.data()["expires_in"], 300);
    let url = r.data()["signed_url"].as_str().expect("signed_url");
    let prefix = format!("/api/v1/sessions/{id}/vnc?signature=");
    assert!(url.starts_with(&prefix), "{url}");
    let expires: i64 = url
        .split("&expires=")
        .nth(1)
        .and_then(|e| e.parse().ok())
        .expect("expires");
    assert!((before + 300..=before + 302).contains(&expires), "{url}");

    for minutes in [1, 15] {
        let r = app
            .post(
                &path,
                Some(&owner.access),
                json!({"expire_minutes": minutes}),
            )
            .await;
        r.assert_ok();
        assert_eq!(r.data()["expires_in"], minutes * 60);
    }
    for bad in [
        json!({"expire_minutes": 0}),
        json!({"expire_minutes": 16}),
        json!({"expire_minutes": -1}),
        json!({"expire_minutes": "5"}),
        json!({"expire_minutes": 1.5}),
        json!({}),
    ] {
        let r = app.post(&path, Some(&owner.access), bad.clone()).await;
        r.assert_error(422);
        assert_eq!(r.data()[0]["field"], "expire_minutes", "{bad}: {}", r.body);
    }

    let r = app
        .post(&path, Some(&stranger.access), json!({"expire_minutes": 5}))
        .await;
    r.assert_error(404);
    assert!(r.data().is_null());
    app.post(&path, None, json!({"expire_minutes": 5}))
        .await
        .assert_error(401);
}

async fn the_live_view_socket_refuses_bad_links_before_upgrading(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;
    let other = app.new_session(&owner.access).await;
    let good = signed_url(&app, &owner.access, &id, 5).await;
    let (query_sig, query_exp) = {
        let query = good.split('?').nth(1).expect("query");
        let mut signature = "";
        let mut expires = "";
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("signature", v)) => signature = v,
                Some(("expires", v)) => expires = v,
                _ => {}
            }
        }
        (
            signature.to_string(),
            expires.parse::<i64>().expect("expires"),
        )
    };
    let base = format!("/api/v1/sessions/{id}/vnc");
    let mut flipped = query_sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex");
    // The other session's own valid link, moved onto this session's path.
    let other_url = signed_url(&app, &owner.access, &other, 5).await;
    let other_query = other_url.split('?').nth(1).expect("query");
    let expired = app
        .state
        .live_view
        .signer
        .signed_path(SessionId::parse(&id).expect("id"), query_exp - 3_600);
    for (what, path) in [
        ("no signature", base.clone()),
        ("no expiry", format!("{base}?signature={query_sig}")),
        (
            "a changed signature",
            format!("{base}?signature={flipped}&expires={query_exp}"),
        ),
        (
            "a stretched expiry",
            format!("{base}?signature={query_sig}&expires={}", query_exp + 60),
        ),
        (
            "an expiry that is no number",
            format!("{base}?signature={query_sig}&expires=soon"),
        ),
        (
            "another session's signature",
            format!("{base}?{other_query}"),
        ),
        ("an expired link", expired),
    ] {
        let (status, body) = refused(&app, &path).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(body["code"], 403, "{what}: {body}");
        assert!(
            body["msg"].as_str().is_some_and(|m| m.contains("link")),
            "{what}: {body}"
        );
    }

    // A plain GET with a good link is told to use a WebSocket.
    let r = app.get(&good, None).await;
    r.assert_error(400);

    // A good link to a session deleted since: 404.
    app.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{id}"),
        Some(&owner.access),
        None,
    )
    .await
    .assert_ok();
    let (status, body) = refused(&app, &good).await;
    assert_eq!((status, body["code"].clone()), (404, json!(404)), "{body}");
}

async fn a_valid_link_without_a_browser_closes_with_the_reason(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;
    let url = signed_url(&app, &owner.access, &id, 1).await;
    for binary in [true, false] {
        let (mut ws, response) = open(&app, &url, binary).await.expect("upgraded");
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        assert_eq!(protocol, binary.then_some("binary"));
        let frame = close_of(&mut ws).await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 4404);
        assert_eq!(frame.reason.as_str(), "the browser is not running");
    }
}

/// A viewer speaking RFB over the live view, reading the display's bytes whatever their
/// framing.
struct Viewer {
    ws: Ws,
    buf: Vec<u8>,
}

impl Viewer {
    async fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("the display answers in time")
                .expect("the socket stays open")
                .expect("a frame");
            match message {
                tungstenite::Message::Binary(bytes) => self.buf.extend_from_slice(&bytes),
                tungstenite::Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
        self.buf.drain(..n).collect()
    }

    async fn send(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(tungstenite::Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// ProtocolVersion, security None, ClientInit; returns the framebuffer's size.
    async fn handshake(&mut self) -> (u16, u16) {
        let version = self.read(12).await;
        assert!(version.starts_with(b"RFB 003.00"), "{version:?}");
        self.send(b"RFB 003.008\n".to_vec()).await;
        let count = self.read(1).await[0];
        let types = self.read(usize::from(count)).await;
        assert!(types.contains(&1), "security None offered: {types:?}");
        self.send(vec![1]).await;
        assert_eq!(self.read(4).await, [0, 0, 0, 0], "security result ok");
        self.send(vec![1]).await;
        let init = self.read(24).await;
        let width = u16::from_be_bytes([init[0], init[1]]);
        let height = u16::from_be_bytes([init[2], init[3]]);
        let name_length = u32::from_be_bytes([init[20], init[21], init[22], init[23]]);
        self.read(name_length as usize).await;
        (width, height)
    }

    async fn click_and_type(&mut self, x: u16, y: u16, keysym: u32) {
        let [xh, xl] = x.to_be_bytes();
        let [yh, yl] = y.to_be_bytes();
        let mut input = vec![5, 1, xh, xl, yh, yl, 5, 0, xh, xl, yh, yl];
        for down in [1, 0] {
            input.extend([4, down, 0, 0]);
            input.extend(keysym.to_be_bytes());
        }
        self.send(input).await;
    }
}

/// The full path against a real browser: the RFB handshake through the relay, a
/// framebuffer update, and input that reaches the page only while the user has taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_streams_the_browser_and_passes_input_only_after_take_over() {
    let app = TestApp::start(Backend::Sqlite).await;
    let owner = app.signed_up("owner@example.com", "correct horse").await;
    let id = app.new_session(&owner.access).await;
    let session = SessionId::parse(&id).expect("id");
    // The browser tool path starts the browser, as the agent's first browser call would.
    let browser = app
        .state
        .sandboxes
        .sandbox(session)
        .await
        .expect("sandbox")
        .browser()
        .await
        .expect("browser");
    let outcome = browser
        .call("browser_navigate", &json!({"url": "about:blank"}))
        .await;
    assert!(outcome.success, "{}", outcome.message);
    // A page that is one text area, so a click anywhere on the display lands in it.
    let outcome = browser
        .call(
            "browser_console_exec",
            &json!({"javascript": "document.body.innerHTML = '<textarea id=t style=\"position:fixed;inset:0;width:100%;height:100%\"></textarea>'; document.getElementById('t').focus(); 'ready'"}),
        )
        .await;
    assert!(outcome.success, "{}", outcome.message);
    let typed = async || {
        let outcome = browser
            .call(
                "browser_console_exec",
                &json!({"javascript": "'value=[' + document.getElementById('t').value + ']'"}),
            )
            .await;
        assert!(outcome.success, "{}", outcome.message);
        outcome.data.to_string()
    };

    let url = signed_url(&app, &owner.access, &id, 5).await;
    let (ws, _) = open(&app, &url, true).await.expect("upgraded");
    let mut viewer = Viewer {
        ws,
        buf: Vec::new(),
    };
    let (width, height) = viewer.handshake().await;
    assert!(width > 0 && height > 0);
    // Raw encoding, then a full update request: a FramebufferUpdate comes back.
    viewer.send(vec![2, 0, 0, 1, 0, 0, 0, 0]).await;
    let [wh, wl] = width.to_be_bytes();
    let [hh, hl] = height.to_be_bytes();
    viewer.send(vec![3, 0, 0, 0, 0, 0, wh, wl, hh, hl]).await;
    assert_eq!(viewer.read(1).await, [0], "a FramebufferUpdate");

    // While the agent drives, a click and a key never reach the page.
    viewer
        .click_and_type(width / 2, height / 2, u32::from(b'q'))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let value = typed().await;
    assert!(value.contains("value=[]"), "{value}");

    // Taken over: they do (after the relay's short status cache). Taking twice is one event.
    for _ in 0..2 {
        takeover(&app, Some(&owner.access), &id, json!({"action": "take"}))
            .await
            .assert_ok();
    }
    let statuses: Vec<String> = takeovers(&app, &owner.access, &id)
        .await
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert_eq!(statuses, ["user"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    viewer
        .click_and_type(width / 2, height / 2, u32::from(b'q'))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let value = typed().await;
    assert!(value.contains("value=[q]"), "{value}");

    // Handed back: read-only again.
    takeover(
        &app,
        Some(&owner.access),
        &id,
        json!({"action": "hand_back"}),
    )
    .await
    .assert_ok();
    tokio::time::sleep(Duration::from_millis(800)).await;
    viewer
        .click_and_type(width / 2, height / 2, u32::from(b'z'))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let value = typed().await;
    assert!(value.contains("value=[q]"), "{value}");

    // Several viewers at once, up to the per-user cap; the next is closed with the reason.
    let mut others = Vec::new();
    for _ in 1..8 {
        let (ws, _) = open(&app, &url, true).await.expect("upgraded");
        let mut other = Viewer {
            ws,
            buf: Vec::new(),
        };
        other.handshake().await;
        others.push(other);
    }
    let (mut refused_ws, _) = open(&app, &url, true).await.expect("upgraded");
    let frame = close_of(&mut refused_ws).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4429, "{frame:?}");
    drop(others);
    drop(viewer);
}
