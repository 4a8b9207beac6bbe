//! The payment provider port on Stripe, through `ironhand-stripe`; and the translation of a
//! verified webhook event into the business layer's `PaymentEvent`.

use async_trait::async_trait;
use ironhand_core::billing::{
    PaymentError, PaymentEvent, Payments, Plan, ProviderSubscription, WebhookDelivery,
    WebhookRefusal,
};
use ironhand_core::ids::UserId;
use ironhand_stripe::{
    CheckoutParams, Event, EventKind, StripeClient, StripeError, SubscriptionObject,
};
use sha2::Digest;
use time::OffsetDateTime;

pub struct StripePayments {
    client: StripeClient,
    /// Webhook signing secrets (several during a rotation) and the signature's tolerance.
    webhook_secrets: Vec<secrecy::SecretString>,
    webhook_tolerance_secs: i64,
}

impl StripePayments {
    pub fn new(
        client: StripeClient,
        webhook_secrets: Vec<secrecy::SecretString>,
        webhook_tolerance_secs: i64,
    ) -> Self {
        Self {
            client,
            webhook_secrets,
            webhook_tolerance_secs,
        }
    }
}

fn payment_error(error: StripeError) -> PaymentError {
    if error.is_transient() {
        PaymentError::Unreachable(error.to_string())
    } else {
        PaymentError::Refused(error.to_string())
    }
}

fn time_of(unix: Option<i64>) -> Option<OffsetDateTime> {
    unix.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
}

/// A Stripe subscription in the business layer's terms.
pub fn provider_subscription(s: &SubscriptionObject) -> ProviderSubscription {
    let period = match (
        time_of(s.current_period_start),
        time_of(s.current_period_end),
    ) {
        (Some(start), Some(end)) if end > start => Some((start, end)),
        _ => None,
    };
    ProviderSubscription {
        id: s.id.clone(),
        customer: s.customer.clone(),
        status: s
            .status
            .as_ref()
            .map_or_else(|| "incomplete".to_string(), |st| st.as_str().to_string()),
        price_id: s.price_id.clone(),
        period,
        cancel_at_period_end: s.cancel_at_period_end,
        user_hint: s.metadata.get("user_id").and_then(|u| UserId::parse(u)),
    }
}

/// What a verified Stripe event means for Ironhand. Objects of an unexpected shape
/// change nothing (`Other`): the event is still acknowledged.
pub fn payment_event(event: &Event) -> PaymentEvent {
    match event.kind() {
        EventKind::CheckoutSessionCompleted => match event.checkout_session() {
            Some(c) => PaymentEvent::CheckoutCompleted {
                user: c
                    .client_reference_id
                    .as_deref()
                    .and_then(UserId::parse)
                    .or_else(|| c.metadata.get("user_id").and_then(|u| UserId::parse(u))),
                customer: c.customer,
                subscription_id: c.subscription,
            },
            None => PaymentEvent::Other,
        },
        EventKind::SubscriptionCreated | EventKind::SubscriptionUpdated => {
            event.subscription().map_or(PaymentEvent::Other, |s| {
                PaymentEvent::SubscriptionChanged(provider_subscription(&s))
            })
        }
        EventKind::SubscriptionDeleted => event.subscription().map_or(PaymentEvent::Other, |s| {
            let mut gone = provider_subscription(&s);
            gone.status = "canceled".into();
            PaymentEvent::SubscriptionDeleted(gone)
        }),
        EventKind::InvoicePaid => {
            event
                .invoice()
                .map_or(PaymentEvent::Other, |i| PaymentEvent::InvoicePaid {
                    customer: i.customer,
                    subscription_id: i.subscription,
                })
        }
        EventKind::InvoicePaymentFailed => {
            event
                .invoice()
                .map_or(PaymentEvent::Other, |i| PaymentEvent::InvoiceFailed {
                    customer: i.customer,
                    subscription_id: i.subscription,
                })
        }
        EventKind::Other => PaymentEvent::Other,
    }
}

#[async_trait]
impl Payments for StripePayments {
    fn read_webhook(
        &self,
        body: &[u8],
        signature: &str,
        now: i64,
    ) -> Result<WebhookDelivery, WebhookRefusal> {
        // Every `v1`, each configured secret, within the tolerance, before anything is read.
        ironhand_stripe::verify_signature(
            body,
            signature,
            &self.webhook_secrets,
            now,
            self.webhook_tolerance_secs,
        )
        .map_err(|why| WebhookRefusal::Signature(why.to_string()))?;
        let event =
            Event::parse(body).map_err(|why| WebhookRefusal::NotAnEvent(why.to_string()))?;
        Ok(WebhookDelivery {
            event: payment_event(&event),
            id: event.id,
            kind: event.type_,
        })
    }

    async fn create_customer(
        &self,
        user: UserId,
        email: &str,
        name: &str,
    ) -> Result<String, PaymentError> {
        // One customer per user even when two checkouts race: Stripe returns the first
        // answer again for the same idempotency key.
        // The key names what is sent: a changed email within Stripe's 24 h key window is a
        // new request, not a conflicting replay.
        let digest = sha2::Sha256::digest(format!("{email}\n{name}").as_bytes());
        let key = format!("customer-{user}-{}", hex::encode(&digest[..6]));
        self.client
            .create_customer(email, Some(name), &user.to_string(), &key)
            .await
            .map(|c| c.id)
            .map_err(payment_error)
    }

    async fn create_checkout(
        &self,
        user: UserId,
        customer: &str,
        plan: &Plan,
        price_id: &str,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<(String, String), PaymentError> {
        let params = CheckoutParams {
            customer: customer.to_string(),
            price: price_id.to_string(),
            success_url: success_url.to_string(),
            cancel_url: cancel_url.to_string(),
            client_reference_id: user.to_string(),
            metadata: vec![
                ("user_id".into(), user.to_string()),
                ("plan".into(), plan.id.clone()),
            ],
            idempotency_key: None,
        };
        self.client
            .create_checkout_session(&params)
            .await
            .map(|c| (c.id, c.url))
            .map_err(payment_error)
    }

    async fn create_portal(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, PaymentError> {
        self.client
            .create_portal_session(customer, return_url)
            .await
            .map(|p| p.url)
            .map_err(payment_error)
    }

    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, PaymentError> {
        self.client
            .retrieve_subscription(id)
            .await
            .map(|s| provider_subscription(&s))
            .map_err(payment_error)
    }
}
