//! SMTP delivery: `smtp://user:pass@host:port?tls=starttls|tls|none`.

use async_trait::async_trait;
use ironhand_core::ports::{Mail, MailError, Mailer};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    StartTls,
    Implicit,
    None,
}

/// What is wrong with an `SMTP_URL` (the text never repeats the URL: it may hold a
/// password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    #[error("not a URL like smtp://user:pass@host:587?tls=starttls")]
    NotAUrl(#[source] url::ParseError),
    #[error("the scheme must be smtp:// (or smtps:// for implicit TLS)")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("tls=`{0}` must be starttls, tls or none")]
    TlsMode(String),
}

/// Why the SMTP transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("MAIL_FROM: {0}")]
    From(#[source] lettre::address::AddressError),
    #[error("mail.tls_ca_file: {0}")]
    Certificate(#[source] lettre::transport::smtp::Error),
    #[error("TLS set-up: {0}")]
    Tls(#[source] lettre::transport::smtp::Error),
}

/// A parsed `SMTP_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SmtpTarget {
    pub fn parse(raw: &str) -> Result<Self, SmtpUrlError> {
        let url = url::Url::parse(raw).map_err(SmtpUrlError::NotAUrl)?;
        if url.scheme() != "smtp" && url.scheme() != "smtps" {
            return Err(SmtpUrlError::Scheme);
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(SmtpUrlError::NoHost)?
            .to_string();
        let mut tls = if url.scheme() == "smtps" {
            Tls::Implicit
        } else {
            Tls::StartTls
        };
        for (k, v) in url.query_pairs() {
            if k == "tls" {
                tls = match v.as_ref() {
                    "starttls" => Tls::StartTls,
                    "tls" => Tls::Implicit,
                    "none" => Tls::None,
                    other => return Err(SmtpUrlError::TlsMode(other.to_owned())),
                };
            }
        }
        let port = url.port().unwrap_or(match tls {
            Tls::StartTls => 587,
            Tls::Implicit => 465,
            Tls::None => 25,
        });
        let credentials = if url.username().is_empty() {
            None
        } else {
            let pass = url.password().map(percent_decode).unwrap_or_default();
            Some((percent_decode(url.username()), pass))
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
        })
    }
}

/// `%XX` escapes only (a `+` stays a plus, unlike form decoding).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// `extra_ca_pem`: a CA to trust besides the system's (a private mail relay).
    pub fn new(
        target: &SmtpTarget,
        from: &str,
        timeout: Duration,
        extra_ca_pem: Option<&[u8]>,
    ) -> Result<Self, SmtpSetupError> {
        let from: Mailbox = from.parse().map_err(SmtpSetupError::From)?;
        let tls = match target.tls {
            Tls::None => SmtpTls::None,
            mode => {
                let mut params = TlsParameters::builder(target.host.clone());
                if let Some(pem) = extra_ca_pem {
                    let ca = Certificate::from_pem(pem).map_err(SmtpSetupError::Certificate)?;
                    params = params.add_root_certificate(ca);
                }
                let params = params.build().map_err(SmtpSetupError::Tls)?;
                if mode == Tls::Implicit {
                    SmtpTls::Wrapper(params)
                } else {
                    SmtpTls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some((user, pass)) = &target.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Recipient(Box::new(e)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text)
            .map_err(|e| MailError::Delivery(Box::new(e)))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Delivery(Box::new(e)))
    }

    fn kind(&self) -> &'static str {
        "smtp"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_tls_modes_and_credentials() {
        let t = SmtpTarget::parse("smtp://me%40x.com:p%3Ass@mail.example.com?tls=starttls")
            .expect("parse");
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("mail.example.com", 587, Tls::StartTls)
        );
        assert_eq!(t.credentials, Some(("me@x.com".into(), "p:ss".into())));
        let plus = SmtpTarget::parse("smtp://u:a+b%26c%25@h").expect("parse");
        assert_eq!(plus.credentials, Some(("u".into(), "a+b&c%".into())));
        assert!(!format!("{t:?}").contains("p:ss"));
        assert_eq!(
            SmtpTarget::parse("smtp://h:2525?tls=tls")
                .expect("parse")
                .tls,
            Tls::Implicit
        );
        assert_eq!(
            SmtpTarget::parse("smtp://h?tls=none").expect("parse").port,
            25
        );
        assert_eq!(SmtpTarget::parse("http://h"), Err(SmtpUrlError::Scheme));
        assert_eq!(
            SmtpTarget::parse("smtp://h?tls=maybe")
                .map_err(|e| e.to_string())
                .expect_err("refused"),
            "tls=`maybe` must be starttls, tls or none"
        );
    }
}
