//! A small client for the chat stream: `POST /sessions/{id}/chat`, then the SSE events one
//! by one, each with the moment its last byte arrived.

use anyhow::{Context, bail};
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct SseEvent {
    /// `id:`, the session's event id (numeric here).
    pub id: u64,
    pub event: String,
    /// The `data:` text; parsed only where a check needs it, so the client spends little
    /// CPU next to the server it measures.
    pub data: String,
    pub arrived: Instant,
}

pub struct SseStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// When the last chunk came in: the arrival time of every event it completed.
    chunk_at: Instant,
    /// Bytes received, comments included.
    pub bytes: usize,
}

/// Opens the chat stream of `session` with `body`; refuses anything but a 200 SSE answer.
pub async fn chat(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    session: &str,
    body: &Value,
) -> anyhow::Result<SseStream> {
    let response = client
        .post(format!("{base}/api/v1/sessions/{session}/chat"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .context("chat request")?;
    let status = response.status();
    let is_sse = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !status.is_success() || !is_sse {
        let text = response.text().await.unwrap_or_default();
        bail!("chat answered {status}: {}", truncate(&text, 200));
    }
    Ok(SseStream {
        response,
        buffer: Vec::new(),
        chunk_at: Instant::now(),
        bytes: 0,
    })
}

pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

impl SseStream {
    /// The next event, or `None` when the server closed the stream. Comment-only blocks
    /// (`: ping`) are skipped.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block, self.chunk_at)? {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.response.chunk().await.context("reading the stream")? {
                Some(chunk) => {
                    self.chunk_at = Instant::now();
                    self.bytes += chunk.len();
                    self.buffer.extend_from_slice(&chunk);
                }
                None if self.buffer.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => bail!("the stream ended inside an event"),
            }
        }
    }

    /// Reads to the end of the stream (or `limit`), returning every event.
    pub async fn collect(&mut self, limit: Duration) -> anyhow::Result<Vec<SseEvent>> {
        let mut events = Vec::new();
        let read = async {
            while let Some(event) = self.next().await? {
                events.push(event);
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| anyhow::anyhow!("the stream did not end within {limit:?}"))??;
        Ok(events)
    }
}

fn parse_block(block: &[u8], arrived: Instant) -> anyhow::Result<Option<SseEvent>> {
    let text = std::str::from_utf8(block).context("event is not UTF-8")?;
    let (mut id, mut event, mut data) = (None, None, String::new());
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse::<u64>().context("non-numeric event id")?);
        } else if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    let Some(event) = event else {
        return Ok(None);
    };
    Ok(Some(SseEvent {
        id: id.unwrap_or(0),
        event,
        data,
        arrived,
    }))
}
