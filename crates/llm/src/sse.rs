//! Server-sent events framing: lines (LF, CRLF or CR), `data:` fields joined per event,
//! comments and other fields skipped.

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    data: Vec<String>,
    /// Non-empty lines that are neither fields nor comments (a sign the body is not SSE).
    pub stray_lines: usize,
}

/// What one chunk of bytes produced.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Complete event payloads, in order.
    pub events: Vec<String>,
    /// How many `data:` lines arrived (the stall watchdog counts these, not bytes).
    pub data_lines: usize,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Parsed {
        self.buf.extend_from_slice(bytes);
        let mut out = Parsed::default();
        while let Some(line) = self.next_line(false) {
            self.line(&line, &mut out);
        }
        out
    }

    /// The body ended: whatever is buffered is the last line and the last event.
    pub fn finish(&mut self) -> Parsed {
        let mut out = Parsed::default();
        while let Some(line) = self.next_line(true) {
            self.line(&line, &mut out);
        }
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, &mut out);
        }
        self.dispatch(&mut out);
        out
    }

    fn next_line(&mut self, eof: bool) -> Option<Vec<u8>> {
        let pos = self.buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let skip = if self.buf[pos] == b'\r' {
            match self.buf.get(pos + 1) {
                Some(b'\n') => 2,
                Some(_) => 1,
                // A CR at the end of what we have may be the first half of CRLF.
                None if eof => 1,
                None => return None,
            }
        } else {
            1
        };
        let line = self.buf[..pos].to_vec();
        self.buf.drain(..pos + skip);
        Some(line)
    }

    fn line(&mut self, raw: &[u8], out: &mut Parsed) {
        let line = String::from_utf8_lossy(raw);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                self.data.push(value.to_string());
                out.data_lines += 1;
            }
            "event" | "id" | "retry" => {}
            // Some servers send bare JSON lines; take them as data rather than drop them.
            _ if line.trim_start().starts_with('{') => {
                self.data.push(line.trim().to_string());
                out.data_lines += 1;
                self.dispatch(out);
            }
            _ => self.stray_lines += 1,
        }
    }

    fn dispatch(&mut self, out: &mut Parsed) {
        match self.data.len() {
            0 => {}
            1 => out.events.extend(self.data.pop()),
            _ => {
                let lines = std::mem::take(&mut self.data);
                let joined = lines.join("\n");
                // Servers that omit the blank line between events put several JSON
                // documents in one event; split them back when the whole is not JSON.
                let is_json = |s: &str| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok();
                if !is_json(&joined) && lines.iter().all(|l| l.trim() == "[DONE]" || is_json(l)) {
                    out.events.extend(lines);
                } else {
                    out.events.push(joined);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<String>, usize) {
        let mut p = SseParser::default();
        let mut events = Vec::new();
        let mut lines = 0;
        for c in chunks {
            let out = p.feed(c);
            events.extend(out.events);
            lines += out.data_lines;
        }
        let out = p.finish();
        events.extend(out.events);
        (events, lines + out.data_lines)
    }

    #[test]
    fn lf_crlf_and_cr_split_anywhere() {
        let (events, _) = parse_all(&[b"data: a\r", b"\n\r\ndata: b\n\nda", b"ta: c\r\rdata:d"]);
        assert_eq!(events, vec!["a", "b", "c", "d"]);
    }

    #[test]
    fn comments_do_not_count_and_multiline_data_joins() {
        let (events, lines) =
            parse_all(&[b": keep-alive\n\n: ping\nevent: x\ndata: {\"a\":\ndata: 1}\n\n"]);
        assert_eq!(events, vec!["{\"a\":\n1}"]);
        assert_eq!(lines, 2);
    }

    #[test]
    fn events_without_blank_lines_are_split_back() {
        let (events, _) = parse_all(&[b"data: {\"a\":1}\ndata: {\"b\":2}\ndata: [DONE]\n"]);
        assert_eq!(events, vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"]);
    }

    #[test]
    fn garbage_is_counted_as_stray() {
        let mut p = SseParser::default();
        let out = p.feed(b"not json at all\n");
        assert!(out.events.is_empty());
        p.finish();
        assert_eq!(p.stray_lines, 1);
    }
}
