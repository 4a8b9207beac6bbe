//! The stdio transport's guard on the server's output: newline-delimited JSON-RPC, each
//! message at most [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES). A longer line ends the
//! connection with a read error (the SDK would drop it and wait on); lines that cannot be
//! JSON-RPC (logs printed to stdout, garbage) are counted so a failed start can say so.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::error::Diagnostics;

/// Where the reader is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// Only whitespace so far.
    Start,
    /// The line started like JSON (`{` or `[`).
    Json,
    /// The line started with something else.
    Other,
}

/// Wraps a server's stdout: bounds line length, counts non-JSON lines.
pub(crate) struct GuardedReader<R> {
    inner: R,
    limit: usize,
    line_len: usize,
    state: LineState,
    failed: bool,
    diagnostics: Arc<Diagnostics>,
}

impl<R> GuardedReader<R> {
    pub(crate) fn new(inner: R, limit: usize, diagnostics: Arc<Diagnostics>) -> Self {
        Self {
            inner,
            limit,
            line_len: 0,
            state: LineState::Start,
            failed: false,
            diagnostics,
        }
    }

    /// Looks at bytes just read; an error once a line is over the limit.
    fn inspect(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &byte in bytes {
            if byte == b'\n' {
                if self.state == LineState::Other {
                    self.diagnostics.saw_non_json_line();
                }
                self.line_len = 0;
                self.state = LineState::Start;
                continue;
            }
            self.line_len += 1;
            if self.state == LineState::Start && !byte.is_ascii_whitespace() {
                // A UTF-8 byte order mark may precede the JSON.
                self.state = if matches!(byte, b'{' | b'[' | 0xEF | 0xBB | 0xBF) {
                    LineState::Json
                } else {
                    LineState::Other
                };
            }
            if self.line_len > self.limit {
                let reason = format!(
                    "the server sent a message larger than {} MiB on stdout",
                    self.limit / (1024 * 1024)
                );
                self.diagnostics.closed_because(reason.clone());
                return Err(io::Error::new(io::ErrorKind::InvalidData, reason));
            }
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for GuardedReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server's output exceeded the message size limit",
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let result = this.inspect(&buf.filled()[before..]);
                if result.is_err() {
                    this.failed = true;
                    buf.set_filled(before);
                }
                Poll::Ready(result)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn counts_non_json_lines_and_bounds_lines() {
        let diagnostics = Arc::new(Diagnostics::default());
        let input: &[u8] = b"{\"jsonrpc\":\"2.0\"}\nhello\n  [1]\nwarning: x\n";
        let mut reader = GuardedReader::new(input, 64, diagnostics.clone());
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.expect("small lines");
        assert_eq!(out, input);
        assert_eq!(diagnostics.non_json_lines(), 2);
        assert!(diagnostics.reason().is_none());

        let long = [b'{'; 100];
        let mut reader = GuardedReader::new(&long[..], 64, diagnostics.clone());
        let mut out = Vec::new();
        let error = reader
            .read_to_end(&mut out)
            .await
            .expect_err("over the limit");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(diagnostics.reason().is_some());
    }
}
