//! Outgoing mail.

use async_trait::async_trait;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Why a mail was not sent (its cause kept as the source, for the log).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient is not an address the mailer accepts.
    #[error("bad recipient: {0}")]
    Recipient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The message could not be built or delivered.
    #[error("delivery failed: {0}")]
    Delivery(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
    /// `smtp` or `development`.
    fn kind(&self) -> &'static str;
}
