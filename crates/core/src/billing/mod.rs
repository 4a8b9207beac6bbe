//! Billing: plans, a subscription per user with its monthly run usage, the trial, and the
//! payment provider's (Stripe's) events. [`BillingService`] holds the rules; storage and
//! the payment provider are ports.

mod plans;
mod service;
mod turns;

/// The billing ports, in `ports` with the others.
pub use crate::ports::billing::{BillingStore, Payments, WebhookDelivery, WebhookRefusal};
pub use plans::{Plan, PlanCatalog, PlanError, default_plans};
pub use service::{BillingService, BillingSettings, WebhookError};

use crate::ids::UserId;
use time::OffsetDateTime;

/// Columns to change on a subscription; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionUpdate {
    pub plan: Option<String>,
    pub status: Option<String>,
    pub monthly_agent_runs_limit: Option<i64>,
    /// The period. One that starts at another time than the stored one is a new period:
    /// the run count starts again at 0 and the period's version moves on (so a run metered
    /// against the old period is refused and retried).
    pub period: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Start the count again even within the same period.
    pub reset_usage: bool,
    pub cancel_at_period_end: Option<bool>,
    pub is_trial: Option<bool>,
    /// `Some(None)` clears it.
    pub trial_end: Option<Option<OffsetDateTime>>,
    pub trial_used: Option<bool>,
    pub stripe_customer_id: Option<String>,
    /// `Some(None)` clears it.
    pub stripe_subscription_id: Option<Option<String>>,
}

/// How a run start is metered, inside the transaction that stores the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunMeter {
    /// Count the run (a new task); replies to the agent's question are free.
    pub count: bool,
    /// Refuse when the period's limit is reached (billing enforced).
    pub enforce_limit: bool,
    /// The subscription period the caller saw; a period that rolled over meanwhile refuses.
    pub period_version: i64,
    /// The user's queued or running runs may not exceed this (including the new one).
    pub max_active_runs: i64,
}

/// A subscription as the payment provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSubscription {
    pub id: String,
    pub customer: Option<String>,
    /// Stripe's status (`active`, `trialing`, `past_due`, `canceled`, `unpaid`,
    /// `incomplete`, `incomplete_expired`, `paused`).
    pub status: String,
    pub price_id: Option<String>,
    pub period: Option<(OffsetDateTime, OffsetDateTime)>,
    pub cancel_at_period_end: bool,
    /// The user id the checkout put in the metadata, if any.
    pub user_hint: Option<UserId>,
}

/// A payment provider event, already verified and parsed by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// `checkout.session.completed`.
    CheckoutCompleted {
        user: Option<UserId>,
        customer: Option<String>,
        subscription_id: Option<String>,
    },
    /// `customer.subscription.created` / `updated`.
    SubscriptionChanged(ProviderSubscription),
    /// `customer.subscription.deleted`.
    SubscriptionDeleted(ProviderSubscription),
    /// `invoice.paid` / `invoice.payment_succeeded`.
    InvoicePaid {
        customer: Option<String>,
        subscription_id: Option<String>,
    },
    /// `invoice.payment_failed`.
    InvoiceFailed {
        customer: Option<String>,
        subscription_id: Option<String>,
    },
    /// Any other type: acknowledged, nothing changes.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the request (the text is safe to log, not a secret).
    #[error("payment provider refused: {0}")]
    Refused(String),
    #[error("payment provider unreachable: {0}")]
    Unreachable(String),
}
