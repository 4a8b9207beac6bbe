//! With no SMTP configured, mail goes to the log at WARN, marked as the development mailer.

use async_trait::async_trait;
use ironhand_core::ports::{Mail, MailError, Mailer};

pub struct DevMailer;

#[async_trait]
impl Mailer for DevMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        tracing::warn!(
            to = %mail.to,
            subject = %mail.subject,
            body = ?mail.text,
            "development mailer: SMTP_URL is not set, so this email was written here instead of being sent"
        );
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "development"
    }
}
