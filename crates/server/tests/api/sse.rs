//! A small SSE client over reqwest, reading frames exactly as a browser's EventSource would.

#![allow(dead_code)]

use crate::support::{Reply, TestApp};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

pub struct SseStream {
    pub headers: reqwest::header::HeaderMap,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    /// Comment lines seen (pings).
    pub comments: usize,
    ended: bool,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            headers: response.headers().clone(),
            body: response.bytes_stream().boxed(),
            buf: Vec::new(),
            comments: 0,
            ended: false,
        }
    }

    fn take_frame(&mut self) -> Option<Option<SseEvent>> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&frame);
        let (mut id, mut event, mut data) = (None, String::from("message"), Vec::new());
        let mut comment_only = true;
        for line in text.lines() {
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            comment_only = false;
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_string()),
                "event" => event = value.to_string(),
                "data" => data.push(value.to_string()),
                _ => {}
            }
        }
        if comment_only {
            return Some(None);
        }
        let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
        Some(Some(SseEvent { id, event, data }))
    }

    /// The next event; `None` when the server ended the stream. Panics after `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(frame) = self.take_frame() {
                if let Some(event) = frame {
                    return Some(event);
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(_))) | Ok(None) => self.ended = true,
                Err(_) => panic!("no SSE event within {within:?}"),
            }
        }
    }

    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(Duration::from_secs(30)).await
    }

    /// Every event until the server ends the stream.
    pub async fn collect(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }

    /// Events up to and including the first one named `name`.
    pub async fn until(&mut self, name: &str) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            let stop = event.event == name;
            events.push(event);
            if stop {
                break;
            }
        }
        events
    }
}

impl TestApp {
    /// POSTs to `/sessions/{id}/chat`: the open stream, or the refusal.
    pub async fn chat(&self, token: &str, session: &str, body: Value) -> Result<SseStream, Reply> {
        self.chat_with_headers(token, session, body, &[]).await
    }

    pub async fn chat_with_headers(
        &self,
        token: &str,
        session: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Result<SseStream, Reply> {
        let mut req = self
            .client
            .post(self.url(&format!("/api/v1/sessions/{session}/chat")))
            .bearer_auth(token)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request reaches the server");
        if res.status() == StatusCode::OK
            && res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"))
        {
            return Ok(SseStream::new(res));
        }
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        Err(Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    pub async fn new_session(&self, token: &str) -> String {
        let r = self
            .call(reqwest::Method::PUT, "/api/v1/sessions", Some(token), None)
            .await;
        r.assert_ok();
        r.data()["session_id"]
            .as_str()
            .expect("session_id")
            .to_string()
    }
}

/// Event names in order.
pub fn names(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.clone()).collect()
}
