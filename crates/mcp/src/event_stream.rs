//! A bounded `text/event-stream` decoder (the WHATWG server-sent events format) for the
//! legacy HTTP+SSE transport: bytes in, `(event, data)` pairs out, at most
//! [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES) buffered for one event.

use std::collections::VecDeque;

/// One dispatched event: its type (`message` when the server named none) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) data: String,
}

/// The stream broke the format's bounds: one event (or line) larger than the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event on the server's event stream is larger than {limit} bytes")]
pub(crate) struct EventTooLarge {
    pub(crate) limit: usize,
}

/// Incremental decoder: feed it chunks as they arrive, take the events it completed.
#[derive(Debug)]
pub(crate) struct EventDecoder {
    limit: usize,
    /// The line being read (without its terminator).
    line: Vec<u8>,
    /// The last byte seen was a CR: a LF right after it ends nothing more.
    after_cr: bool,
    /// Nothing read yet: a leading UTF-8 BOM is skipped.
    at_start: bool,
    event: String,
    data: Vec<u8>,
    has_data: bool,
    ready: VecDeque<SseEvent>,
}

impl EventDecoder {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: Vec::new(),
            has_data: false,
            ready: VecDeque::new(),
        }
    }

    /// The next complete event, if one is buffered.
    pub(crate) fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// Feeds bytes; complete events become available through [`Self::next_event`].
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) -> Result<(), EventTooLarge> {
        if self.at_start && !chunk.is_empty() {
            // The BOM may arrive split over chunks only in theory; the common case is whole.
            if let Some(rest) = chunk.strip_prefix(b"\xEF\xBB\xBF") {
                chunk = rest;
            }
            self.at_start = false;
        }
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    self.end_line();
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                    if self.line.len() + self.data.len() > self.limit {
                        return Err(EventTooLarge { limit: self.limit });
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.first() == Some(&b':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &b""[..]),
        };
        match field {
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            // `id` and `retry` matter for reconnecting, which this transport does not do
            // (a legacy SSE session does not survive its stream).
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        self.ready.push_back(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: String::from_utf8_lossy(&data).into_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(decoder: &mut EventDecoder) -> Vec<(String, String)> {
        std::iter::from_fn(|| decoder.next_event())
            .map(|e| (e.event, e.data))
            .collect()
    }

    #[test]
    fn decodes_events_across_chunks_and_line_endings() {
        let mut decoder = EventDecoder::new(1024);
        let stream = b"\xEF\xBB\xBF: ping\r\nevent: endpoint\r\ndata: /messages/?session_id=1\r\n\r\nevent: message\ndata: {\"a\":\ndata: 1}\n\ndata:plain\r\r";
        for chunk in stream.chunks(3) {
            decoder.feed(chunk).expect("within the limit");
        }
        assert_eq!(
            events(&mut decoder),
            vec![
                ("endpoint".into(), "/messages/?session_id=1".into()),
                ("message".into(), "{\"a\":\n1}".into()),
                ("message".into(), "plain".into()),
            ]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut decoder = EventDecoder::new(1024);
        decoder
            .feed(b"event: ping\n\n: comment\n\n")
            .expect("small");
        assert!(decoder.next_event().is_none());
    }

    #[test]
    fn oversized_events_are_an_error() {
        let mut decoder = EventDecoder::new(16);
        assert!(decoder.feed(b"data: 0123456789\n").is_ok());
        assert_eq!(
            decoder.feed(b"data: 0123456789\n"),
            Err(EventTooLarge { limit: 16 })
        );
        let mut decoder = EventDecoder::new(16);
        assert!(
            decoder.feed(&[b'x'; 17]).is_err(),
            "an endless line is bounded too"
        );
    }
}
