//! A minimal SMTP server (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT,
//! AUTH PLAIN accepted and recorded, STARTTLS) that keeps every message it receives, for
//! tests that read the mail a user would get. It speaks plain SMTP, STARTTLS or implicit
//! TLS with a certificate from its own throwaway CA (`ca_pem`).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// How the server expects clients to secure the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    Implicit,
}

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
    auth: Arc<Mutex<Vec<String>>>,
}

impl Inbox {
    pub fn all(&self) -> Vec<ReceivedMail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The arguments of every `AUTH` command received (e.g. `PLAIN <base64>`).
    pub fn auth_lines(&self) -> Vec<String> {
        self.auth.lock().map(|a| a.clone()).unwrap_or_default()
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
    pub security: Security,
    ca_pem: String,
}

impl FakeSmtp {
    /// A plain SMTP server.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Security::Plain).await
    }

    pub async fn start_with(security: Security) -> std::io::Result<Self> {
        let (acceptor, ca_pem) = tls_acceptor().map_err(std::io::Error::other)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inbox = Inbox::default();
        let serve_inbox = inbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inbox = serve_inbox.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, inbox, security, acceptor).await {
                        tracing::debug!(error = %e, "fake smtp session ended");
                    }
                });
            }
        });
        Ok(Self {
            port,
            inbox,
            security,
            ca_pem,
        })
    }

    /// The `SMTP_URL` that reaches this server (host `localhost`, which its certificate names).
    pub fn url(&self) -> String {
        let tls = match self.security {
            Security::Plain => "none",
            Security::StartTls => "starttls",
            Security::Implicit => "tls",
        };
        format!("smtp://localhost:{}?tls={tls}", self.port)
    }

    /// The PEM of the CA that signed this server's certificate, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// A throwaway CA and a `localhost` certificate signed by it.
fn tls_acceptor() -> Result<(TlsAcceptor, String), String> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .map_err(err)?
        .signed_by(&leaf_key, &issuer)
        .map_err(err)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .map_err(|e| e.to_string())?;
    Ok((TlsAcceptor::from(Arc::new(config)), ca_cert.pem()))
}

async fn connection(
    stream: TcpStream,
    inbox: Inbox,
    security: Security,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    match security {
        Security::Plain => session(stream, inbox, true).await,
        Security::Implicit => session(acceptor.accept(stream).await?, inbox, true).await,
        Security::StartTls => {
            let stream = until_starttls(stream).await?;
            session(acceptor.accept(stream).await?, inbox, false).await
        }
    }
}

/// The plain-text opening of a STARTTLS connection: greet, answer EHLO offering only
/// STARTTLS, and hand the socket back once the client asks to upgrade.
async fn until_starttls(stream: TcpStream) -> std::io::Result<TcpStream> {
    let mut lines = BufReader::new(stream);
    lines
        .get_mut()
        .write_all(b"220 fake-smtp ready\r\n")
        .await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("closed before STARTTLS"));
        }
        let upper = line.trim_end().to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            lines
                .get_mut()
                .write_all(b"250-fake-smtp\r\n250 STARTTLS\r\n")
                .await?;
        } else if upper == "STARTTLS" {
            lines.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(lines.into_inner());
        } else {
            lines
                .get_mut()
                .write_all(b"530 5.7.0 must issue STARTTLS first\r\n")
                .await?;
        }
    }
}

/// The SMTP dialogue. `greet` is false right after STARTTLS, where the client speaks first.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    inbox: Inbox,
    greet: bool,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read);
    if greet {
        write.write_all(b"220 fake-smtp ready\r\n").await?;
    }
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
            if let Ok(mut auth) = inbox.auth.lock() {
                auth.push(cmd["AUTH".len()..].trim().to_string());
            }
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
