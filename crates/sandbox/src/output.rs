//! Command output: capped byte buffers, UTF-8 decoding that never splits a character, ANSI
//! stripping, and the scanner that finds the end-of-command marker in the shell's output.

use std::collections::VecDeque;

/// Output of one command as raw bytes: the first `cap/2` bytes and the last `cap/2` bytes;
/// whatever lies between is counted, not kept.
#[derive(Debug, Clone)]
pub(crate) struct OutputBuf {
    cap_head: usize,
    cap_tail: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl OutputBuf {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(16);
        let cap_head = cap / 2;
        Self {
            cap_head,
            cap_tail: cap - cap_head,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total = self.total.saturating_add(data.len() as u64);
        if self.head.len() < self.cap_head {
            let take = (self.cap_head - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if data.is_empty() {
            return;
        }
        if data.len() >= self.cap_tail {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.cap_tail..]);
        } else {
            let excess = (self.tail.len() + data.len()).saturating_sub(self.cap_tail);
            self.tail.drain(..excess);
            self.tail.extend(data);
        }
    }

    /// Whether the output is empty or ends a line (for notes appended to it).
    pub(crate) fn at_line_start(&self) -> bool {
        match self.tail.back().or(self.head.last()) {
            None => true,
            Some(b) => *b == b'\n',
        }
    }

    pub(crate) fn push_str(&mut self, text: &str) {
        self.push(text.as_bytes());
    }

    fn elided(&self) -> u64 {
        self.total - self.head.len() as u64 - self.tail.len() as u64
    }

    /// The text for the model: decoded, ANSI stripped, with a note where bytes were elided.
    /// While the command runs (`complete == false`) an unfinished multi-byte character at
    /// the end is held back instead of showing as a replacement character.
    pub(crate) fn render(&self, complete: bool) -> String {
        let (tail_a, tail_b) = self.tail.as_slices();
        let elided = self.elided();
        if elided == 0 {
            let mut all = Vec::with_capacity(self.head.len() + self.tail.len());
            all.extend_from_slice(&self.head);
            all.extend_from_slice(tail_a);
            all.extend_from_slice(tail_b);
            return clean_text(&decode_utf8(&all, complete));
        }
        let head = &self.head[..self.head.len() - incomplete_suffix_len(&self.head)];
        let mut tail = Vec::with_capacity(self.tail.len());
        tail.extend_from_slice(tail_a);
        tail.extend_from_slice(tail_b);
        let skip = tail
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        let mut text = clean_text(&String::from_utf8_lossy(head));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[... {} of output elided: only the first {} and the last {} bytes of a command's output are kept ...]\n",
            human_bytes(elided),
            self.cap_head,
            self.cap_tail
        ));
        text.push_str(&clean_text(&decode_utf8(&tail[skip..], complete)));
        text
    }
}

/// A limit as configured, in whole units when it is one (`1 GiB`, `512 MiB`), else like
/// [`human_bytes`].
pub(crate) fn limit_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n > 0 && n.is_multiple_of(1024 * MIB) {
        format!("{} GiB", n / (1024 * MIB))
    } else if n > 0 && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        human_bytes(n)
    }
}

/// `1.5 MiB (1572864 bytes)`-style sizes for messages.
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB * KIB {
        format!("{:.1} GiB ({n} bytes)", f / (KIB * KIB * KIB))
    } else if f >= KIB * KIB {
        format!("{:.1} MiB ({n} bytes)", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{:.1} KiB ({n} bytes)", f / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Length of an unfinished UTF-8 sequence at the end of `bytes` (0 when the end is a
/// complete character or plain invalid bytes).
pub(crate) fn incomplete_suffix_len(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=3.min(n) {
        let suffix = &bytes[n - back..];
        if (suffix[0] & 0xC0) == 0x80 {
            continue; // a continuation byte: the lead byte is further back
        }
        return match std::str::from_utf8(suffix) {
            // `error_len() == None`: the input ended inside a valid sequence.
            Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => back,
            _ => 0,
        };
    }
    0
}

/// Lossy UTF-8 decoding; with `complete == false` an unfinished character at the end is
/// left out (it shows once the rest of it arrived).
pub(crate) fn decode_utf8(bytes: &[u8], complete: bool) -> String {
    let bytes = if complete {
        bytes
    } else {
        &bytes[..bytes.len() - incomplete_suffix_len(bytes)]
    };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Removes ANSI escape sequences and terminal control characters, keeping what a terminal
/// would show: `\r\n` becomes `\n`, a lone `\r` starts the line over (progress bars), a
/// backspace erases the previous character.
pub(crate) fn clean_text(input: &str) -> String {
    let stripped = strip_ansi(input);
    let mut out = String::with_capacity(stripped.len());
    let mut line = String::new();
    let mut chars = stripped.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                out.push_str(&line);
                out.push('\n');
                line.clear();
            }
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    continue;
                }
                // A lone carriage return: what follows overwrites the line. Keep the old
                // text when nothing follows on this line (e.g. output ending in `\r`).
                let mut rest = chars.clone();
                match rest.peek() {
                    None | Some('\r') => {}
                    _ => line.clear(),
                }
            }
            '\u{8}' => {
                line.pop();
            }
            '\t' => line.push('\t'),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {}
            c => line.push(c),
        }
    }
    out.push_str(&line);
    out
}

/// Drops CSI, OSC, DCS/SOS/PM/APC and two-character escape sequences (and an unfinished one
/// at the end).
pub(crate) fn strip_ansi(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
                    skip_string(&mut chars)
                }
                Some('(') | Some(')') | Some('*') | Some('+') | Some('#') | Some('%') => {
                    chars.next();
                }
                Some(_) | None => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' => skip_string(&mut chars),
            c => out.push(c),
        }
    }
    out
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            // Not a valid CSI body: stop here (the character is dropped too).
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

/// What the scanner found in a chunk of shell output.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Output of the command (everything before the marker).
    pub output: Vec<u8>,
    /// Exit code and working directory when the end marker was complete.
    pub end: Option<(i32, String)>,
    /// Bytes after the marker (output of background processes).
    pub after: Vec<u8>,
}

/// Finds the end marker `\n\x1eIH<token> <rc> <pwd>\x1e\n` the shell prints after each
/// command, across arbitrary read boundaries. The token is random per command, so output
/// of the command cannot fake it by accident.
#[derive(Debug)]
pub(crate) struct Scanner {
    needle: Vec<u8>,
    carry: Vec<u8>,
    marker: Option<Vec<u8>>,
}

pub(crate) const MARK: &str = "\x1eIH";

/// Longest end marker after its token (exit status and working directory): a "marker" that
/// goes on longer is output (so output that starts like one cannot be buffered unbounded).
const MAX_MARKER: usize = 16 * 1024;

impl Scanner {
    pub(crate) fn new(token: &str) -> Self {
        let mut needle = b"\n".to_vec();
        needle.extend_from_slice(MARK.as_bytes());
        needle.extend_from_slice(token.as_bytes());
        needle.push(b' ');
        Self {
            needle,
            carry: Vec::new(),
            marker: None,
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) -> Scanned {
        let mut res = Scanned::default();
        let mut input = data.to_vec();
        loop {
            if let Some(marker) = self.marker.as_mut() {
                marker.extend_from_slice(&input);
                if let Some(end) = memchr::memmem::find(marker, b"\x1e\n") {
                    let body = String::from_utf8_lossy(&marker[..end]).into_owned();
                    res.after = marker[end + 2..].to_vec();
                    let (rc, pwd) = body.split_once(' ').unwrap_or((body.as_str(), ""));
                    res.end = Some((rc.trim().parse().unwrap_or(-1), pwd.to_string()));
                    self.marker = None;
                    return res;
                }
                if marker.len() <= MAX_MARKER {
                    return res;
                }
                // Too long for a marker: it was output that merely looked like one. Its
                // bytes are output again, and scanned for a real marker.
                input = std::mem::take(marker);
                self.marker = None;
                res.output.extend_from_slice(&self.needle);
                continue;
            }
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(&input);
            if let Some(pos) = memchr::memmem::find(&buf, &self.needle) {
                res.output.extend_from_slice(&buf[..pos]);
                self.marker = Some(Vec::new());
                input = buf.split_off(pos + self.needle.len());
                continue;
            }
            let keep = partial_prefix_len(&buf, &self.needle);
            self.carry = buf[buf.len() - keep..].to_vec();
            buf.truncate(buf.len() - keep);
            res.output.extend_from_slice(&buf);
            return res;
        }
    }

    /// Bytes held back because they might start the marker (shown while the command runs).
    pub(crate) fn pending(&self) -> &[u8] {
        if self.marker.is_some() {
            &[]
        } else {
            &self.carry
        }
    }

    /// Bytes held back because they might start the marker (flushed when the shell dies).
    pub(crate) fn take_pending(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.carry);
        if let Some(m) = self.marker.take() {
            out.extend_from_slice(&self.needle);
            out.extend_from_slice(&m);
        }
        out
    }
}

/// Length of the longest suffix of `buf` that is a proper prefix of `needle`.
fn partial_prefix_len(buf: &[u8], needle: &[u8]) -> usize {
    let max = (needle.len() - 1).min(buf.len());
    (1..=max)
        .rev()
        .find(|&k| buf[buf.len() - k..] == needle[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_head_and_tail() {
        let mut b = OutputBuf::new(20);
        for i in 0..100u8 {
            b.push(&[b'a' + (i % 26)]);
        }
        assert_eq!(b.total(), 100);
        let text = b.render(true);
        assert!(text.starts_with("abcdefghij\n[... 80 bytes of output elided"));
        assert!(text.ends_with(&"abcdefghijklmnopqrstuv"[12..22]));
    }

    #[test]
    fn utf8_never_split() {
        let s = "é😀x".repeat(50);
        let bytes = s.as_bytes();
        let mut b = OutputBuf::new(1 << 20);
        for (i, byte) in bytes.iter().enumerate() {
            b.push(&[*byte]);
            let shown = b.render(false);
            assert!(!shown.contains('\u{fffd}'), "at {i}");
            assert!(s.starts_with(&shown));
        }
        assert_eq!(b.render(true), s);
        // Capped in the middle of characters: no replacement characters either.
        let mut c = OutputBuf::new(33);
        c.push(bytes);
        assert!(!c.render(true).contains('\u{fffd}'), "{}", c.render(true));
    }

    #[test]
    fn invalid_bytes_are_lossy() {
        assert_eq!(decode_utf8(b"a\xffb", true), "a\u{fffd}b");
        assert_eq!(decode_utf8(b"a\xc3", false), "a");
        assert_eq!(decode_utf8(b"a\xc3", true), "a\u{fffd}");
        assert_eq!(incomplete_suffix_len(b"\xf0\x9f\x98"), 3);
        assert_eq!(incomplete_suffix_len(b"\xf0\x9f\x98\x80"), 0);
        assert_eq!(incomplete_suffix_len(b"\xff"), 0);
    }

    #[test]
    fn ansi_and_controls() {
        assert_eq!(clean_text("\x1b[1;31mred\x1b[0m ok"), "red ok");
        assert_eq!(clean_text("\x1b]0;title\x07text"), "text");
        assert_eq!(clean_text("a\r\nb\n"), "a\nb\n");
        assert_eq!(clean_text("10%\r50%\r100%\ndone"), "100%\ndone");
        assert_eq!(clean_text("abc\x08d"), "abd");
        assert_eq!(clean_text("unfinished \x1b["), "unfinished ");
    }

    #[test]
    fn scanner_across_boundaries() {
        let stream = b"hello\nworld\n\n\x1eIHtok123 7 /home/ubuntu/a b\x1e\nbg";
        for split in 0..stream.len() {
            let mut sc = Scanner::new("tok123");
            let a = sc.feed(&stream[..split]);
            let mut out = a.output.clone();
            let mut after = a.after.clone();
            let end = if a.end.is_some() {
                // The shell then routes everything else to the background output.
                after.extend_from_slice(&stream[split..]);
                a.end
            } else {
                let b = sc.feed(&stream[split..]);
                out.extend_from_slice(&b.output);
                after.extend_from_slice(&b.after);
                b.end
            };
            assert_eq!(out, b"hello\nworld\n", "split {split}");
            assert_eq!(end, Some((7, "/home/ubuntu/a b".to_string())));
            assert_eq!(after, b"bg");
        }
    }

    #[test]
    fn scanner_bounds_an_unfinished_marker() {
        let mut sc = Scanner::new("tok");
        let mut out = sc.feed(b"a\n\x1eIHtok ").output;
        let zeros = vec![0u8; 4096];
        for _ in 0..64 {
            let r = sc.feed(&zeros);
            assert!(r.end.is_none());
            out.extend_from_slice(&r.output);
            assert!(sc.marker.as_ref().map_or(0, Vec::len) <= MAX_MARKER + zeros.len());
        }
        // The bytes are output, and a real marker after them still ends the command.
        let r = sc.feed(b"\n\x1eIHtok 3 /tmp\x1e\nz");
        out.extend_from_slice(&r.output);
        assert_eq!(r.end, Some((3, "/tmp".to_string())));
        assert_eq!(r.after, b"z");
        out.extend(sc.take_pending());
        assert!(out.len() >= 60 * 4096, "{}", out.len());
        assert!(out.starts_with(b"a\n\x1eIHtok \0"));
    }

    #[test]
    fn scanner_ignores_other_tokens() {
        let mut sc = Scanner::new("good");
        let r = sc.feed(b"x\n\x1eIHbad 0 /\x1e\ny");
        assert!(r.end.is_none());
        let mut all = r.output;
        all.extend(sc.take_pending());
        assert_eq!(all, b"x\n\x1eIHbad 0 /\x1e\ny");
    }
}
