//! The billing ports: storage of subscriptions and payment events, and the payment
//! provider (Stripe). The rules are `BillingService`'s.

use crate::billing::{PaymentError, Plan, ProviderSubscription, SubscriptionUpdate};
use crate::error::StoreResult;
use crate::ids::UserId;
use crate::ports::store::SubscriptionStore;
use crate::subscription::Subscription;
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
pub trait BillingStore: SubscriptionStore {
    /// Stores `sub` unless the user already has one.
    async fn ensure_subscription(&self, sub: &Subscription) -> StoreResult<()>;
    /// Applies `update` to the user's subscription; with `only_version`, only if the
    /// period version is still that one. Returns the subscription after, or `None` when
    /// nothing matched.
    async fn update_subscription(
        &self,
        user_id: UserId,
        only_version: Option<i64>,
        update: &SubscriptionUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Subscription>>;
    /// Starts the trial only if the user never had one and is on the free plan.
    async fn start_trial(
        &self,
        user_id: UserId,
        update: &SubscriptionUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Subscription>>;
    async fn subscription_by_customer(
        &self,
        customer_id: &str,
    ) -> StoreResult<Option<Subscription>>;
    async fn subscription_by_provider_id(
        &self,
        subscription_id: &str,
    ) -> StoreResult<Option<Subscription>>;
    /// Whether the provider event with this id was already processed.
    async fn payment_event_seen(&self, event_id: &str) -> StoreResult<bool>;
    /// In one transaction: records the provider event id and, only if it was new, applies
    /// the change. False when the event had already been processed (nothing changes).
    async fn apply_payment_event(
        &self,
        event_id: &str,
        event_type: &str,
        change: Option<(UserId, &SubscriptionUpdate)>,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
}

/// The payment provider (Stripe): customers, checkout, portal, subscription lookups.
#[async_trait]
pub trait Payments: Send + Sync {
    async fn create_customer(
        &self,
        user: UserId,
        email: &str,
        name: &str,
    ) -> Result<String, PaymentError>;
    /// A subscription-mode checkout for `price_id`; returns `(session id, url)`.
    async fn create_checkout(
        &self,
        user: UserId,
        customer: &str,
        plan: &Plan,
        price_id: &str,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<(String, String), PaymentError>;
    async fn create_portal(&self, customer: &str, return_url: &str)
    -> Result<String, PaymentError>;
    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, PaymentError>;
    /// Checks a webhook delivery's signature over its raw body (`signature` is the
    /// provider's header, `now` Unix seconds) and reads the event.
    fn read_webhook(
        &self,
        body: &[u8],
        signature: &str,
        now: i64,
    ) -> Result<WebhookDelivery, WebhookRefusal>;
}

/// A verified webhook delivery.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// The provider's event id: each changes things at most once.
    pub id: String,
    /// The provider's event type (`customer.subscription.updated`…), for logs and metrics.
    pub kind: String,
    pub event: crate::billing::PaymentEvent,
}

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    /// Missing, invalid or stale signature.
    #[error("Webhook refused: {0}.")]
    Signature(String),
    /// Signed, but not an event.
    #[error("The webhook body is not an event: {0}.")]
    NotAnEvent(String),
}
