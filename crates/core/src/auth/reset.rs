//! Password reset by mailed code (docs/api.md, section Auth; docs/architecture.md, Password
//! reset codes): codes are HMAC-hashed, expire, work once and burn after too many wrong
//! guesses; every refusal looks the same.

use super::service::{AuthService, INVALID_CODE, RESET_PASSWORD, now, validation};
use super::tokens;
use crate::error::{DomainError, FieldError};
use crate::ports::Mail;
use crate::ports::store::VerificationCode;
use crate::user::{Email, check_password};
use tracing::Instrument;
use uuid::Uuid;

impl AuthService {
    /// Mails a reset code if the account exists. The caller answers the same either way, and
    /// the mail goes out in the background so timing does not tell either.
    pub async fn send_reset_code(&self, email: &str) -> Result<(), DomainError> {
        self.require_password_provider("Password reset")?;
        let email = Email::parse(email).map_err(|e| validation(vec![e]))?;
        // Everything that depends on whether the account exists happens after the answer,
        // so neither the answer nor its timing tells.
        let service = self.clone();
        tokio::spawn(
            async move {
                if let Err(e) = service.issue_reset_code(&email).await {
                    tracing::error!(error = %e, "could not issue a password reset code");
                }
            }
            .instrument(tracing::Span::current()),
        );
        Ok(())
    }

    async fn issue_reset_code(&self, email: &Email) -> Result<(), DomainError> {
        let Some(user) = self.store.user_by_email(email).await? else {
            return Ok(());
        };
        if !user.is_active {
            return Ok(());
        }
        let code = tokens::new_code();
        let t = now();
        let record = VerificationCode {
            id: Uuid::now_v7(),
            user_id: user.id,
            purpose: RESET_PASSWORD.into(),
            code_hash: self.signer.hash_code(user.id, &code),
            created_at: t,
            expires_at: t + self.settings.code_ttl,
            attempts: 0,
            consumed_at: None,
        };
        self.store.replace_verification_code(&record).await?;
        let minutes = self.settings.code_ttl.as_secs().div_ceil(60);
        let mail = Mail {
            to: user.email.clone(),
            subject: format!("Your {} password reset code", self.settings.product_name),
            text: format!(
                "Hello {},\n\nYour password reset code is {code}.\nIt expires in {minutes} minutes and works once.\n\nIf you did not ask to reset your password, ignore this email.\n",
                user.fullname
            ),
        };
        self.mailer
            .send(mail)
            .await
            .map_err(|e| DomainError::Unavailable(format!("mail: {e}")))
    }

    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), DomainError> {
        self.require_password_provider("Password reset")?;
        let mut errors = Vec::new();
        let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
        if !(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit())) {
            errors.push(FieldError::new(
                "verification_code",
                "The verification code is 6 digits.",
            ));
        }
        let _ = check_password("new_password", new_password).map_err(|e| errors.push(e));
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(validation(errors));
        };
        let invalid = || DomainError::BadRequest(INVALID_CODE.into());
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Err(invalid());
        };
        let max = self.settings.code_max_attempts;
        let Some(record) = self
            .store
            .active_verification_code(user.id, RESET_PASSWORD)
            .await?
        else {
            return Err(invalid());
        };
        if record.expires_at <= now() || record.attempts >= max {
            return Err(invalid());
        }
        if !tokens::secure_eq(&record.code_hash, &self.signer.hash_code(user.id, code)) {
            let attempts = self
                .store
                .record_failed_code_attempt(record.id, max)
                .await?;
            if attempts.is_some_and(|a| a >= max) {
                tracing::info!(user_id = %user.id, "reset code burned after too many wrong tries");
            }
            return Err(invalid());
        }
        let hash = self.hasher.hash(new_password).await?;
        if !self
            .store
            .reset_password_with_code(record.id, max, user.id, &hash, now())
            .await?
        {
            return Err(invalid());
        }
        Ok(())
    }
}
