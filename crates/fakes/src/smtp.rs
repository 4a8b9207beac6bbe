//! A minimal SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT,
//! AUTH PLAIN/LOGIN accepted) that keeps every message it receives, for tests that read the
//! mail a user would get.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent, with dot-stuffing undone.
    pub data: String,
}

#[derive(Clone, Default)]
pub struct Inbox {
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
}

impl Inbox {
    pub fn all(&self) -> Vec<ReceivedMail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits until a mail to `recipient` beyond the first `seen` ones arrives.
    pub async fn wait_for(
        &self,
        recipient: &str,
        seen: usize,
        timeout: Duration,
    ) -> Option<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let matching: Vec<ReceivedMail> = self
                .all()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(recipient)))
                .collect();
            if matching.len() > seen {
                return matching.into_iter().nth(seen);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

pub struct FakeSmtp {
    pub port: u16,
    pub inbox: Inbox,
}

impl FakeSmtp {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inbox = Inbox::default();
        let serve_inbox = inbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inbox = serve_inbox.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(stream, inbox).await {
                        tracing::debug!(error = %e, "fake smtp session ended");
                    }
                });
            }
        });
        Ok(Self { port, inbox })
    }

    /// The `SMTP_URL` that reaches this server without TLS.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }
}

async fn session(stream: TcpStream, inbox: Inbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake-smtp ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-fake-smtp\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 fake-smtp\r\n"
        } else if upper.starts_with("AUTH") {
            b"235 2.7.0 accepted\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&cmd["MAIL FROM:".len()..]);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&cmd["RCPT TO:".len()..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(l));
                data.push('\n');
            }
            if let Ok(mut mails) = inbox.mails.lock() {
                mails.push(ReceivedMail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
            }
            inbox.arrived.notify_waiters();
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 5.5.1 unrecognized command\r\n"
        };
        write.write_all(reply).await?;
    }
}

fn address(raw: &str) -> String {
    let raw = raw.trim();
    let inner = raw.split_whitespace().next().unwrap_or(raw);
    inner
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}
