//! Errors of the Stripe HTTP client.
//!
//! Every message here may end up in logs, so none of them carries the secret key: the client
//! scrubs it from anything Stripe (or a proxy) echoes back before building an error.

/// Why a call to the Stripe API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// No answer within the configured timeout.
    #[error("stripe request timed out")]
    Timeout,
    /// The request never got an HTTP answer (DNS, connection refused, TLS, reset).
    #[error("could not reach stripe: {0}")]
    Network(String),
    /// Stripe answered with its JSON error object (`{"error": {"type", "message", ...}}`).
    #[error("stripe API error {status} ({kind}): {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// `error.type`, e.g. `invalid_request_error`, `api_error`, `card_error`.
        kind: String,
        /// `error.code`, e.g. `resource_missing`, when given.
        code: Option<String>,
        /// `error.param`: the request field Stripe complains about, when given.
        param: Option<String>,
        /// `error.message` (or a generic text when Stripe gave none).
        message: String,
        /// The `Request-Id` header, for Stripe support.
        request_id: Option<String>,
    },
    /// An answer that is not what Stripe sends: a non-JSON body (a proxy's HTML page), or a
    /// success without the fields the call needs.
    #[error("unexpected answer from stripe (HTTP {status}): {detail}")]
    InvalidResponse { status: u16, detail: String },
    /// The call was refused before sending anything (e.g. an id that is not a Stripe id).
    #[error("invalid stripe request: {0}")]
    InvalidInput(String),
}

impl StripeError {
    /// The HTTP status Stripe answered with, if it answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::InvalidResponse { status, .. } => Some(*status),
            Self::Timeout | Self::Network(_) | Self::InvalidInput(_) => None,
        }
    }

    /// True when the failure is on Stripe's side or the network's, so the caller may answer
    /// "try again later" (503) rather than blaming the request.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout | Self::Network(_) => true,
            Self::Api { status, .. } | Self::InvalidResponse { status, .. } => {
                *status >= 500 || *status == 429
            }
            Self::InvalidInput(_) => false,
        }
    }

    /// True for 401/403: the configured secret key is wrong or lacks permissions.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::Api {
                status: 401 | 403,
                ..
            }
        )
    }
}
