//! The one error type of the business layer. The HTTP layer maps each variant to a status
//! in exactly one place (`server::http::error`).

use serde::Serialize;
use std::time::Duration;

/// One rejected field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A take-over asked for while the session's sandbox runs no browser (409).
    #[error("No browser is running in this session. Take over once the agent has opened a page.")]
    BrowserNotRunning,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// Too much at once for the plan (runs in progress); 429 with this sentence.
    #[error("{message}")]
    TooManyRuns {
        message: String,
        retry_after: Duration,
    },
    /// The plan does not allow it (run limit reached, subscription inactive); `details` is
    /// `{reason, plan, used, limit, resets_at}`.
    #[error("{message}")]
    PaymentRequired {
        message: String,
        details: serde_json::Value,
    },
    /// An upload over a size limit or the storage quota; the sentence names the limit.
    #[error("{0}")]
    TooLarge(String),
    /// An upload whose content is not an allowed type or contradicts its name.
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    Unavailable(String),
    /// A connector (MCP server) could not be started, reached or listed: 502 with the
    /// reason ("failed to start: …").
    #[error("{0}")]
    ConnectorFailed(String),
    /// Unexpected: the message goes to the log only, the client sees a generic sentence.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

/// What a storage adapter can report; the services turn it into a `DomainError`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. an email already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A lock conflict the database resolved by aborting us (deadlock, serialization
    /// failure, SQLite busy): safe to retry.
    #[error("storage busy: {0}")]
    Busy(String),
    #[error("storage backend: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            // A constraint's name is the schema's, never a sentence for a client: callers
            // that expect a conflict say what it means; any other gets this.
            StoreError::Conflict(constraint) => {
                tracing::debug!(%constraint, "a write hit a unique constraint");
                DomainError::Conflict(
                    "This conflicts with something that already exists; reload and try again."
                        .into(),
                )
            }
            StoreError::Busy(cause) => {
                tracing::warn!(cause = %cause, "storage busy");
                DomainError::Unavailable(
                    "The server is busy with a conflicting change. Try again.".into(),
                )
            }
            StoreError::Backend(cause) => DomainError::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_violation_never_names_the_constraint() {
        let error = DomainError::from(StoreError::Conflict("users_email_key".into()));
        assert!(matches!(error, DomainError::Conflict(_)));
        assert!(!error.to_string().contains("users_email_key"), "{error}");
    }
}
