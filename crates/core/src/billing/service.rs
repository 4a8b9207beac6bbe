//! The rules of billing: the current period and its usage, admitting runs, the trial,
//! checkout and portal, and applying the payment provider's events exactly once.

use super::{
    BillingStore, PaymentError, PaymentEvent, Payments, Plan, PlanCatalog, ProviderSubscription,
    RunMeter, SubscriptionUpdate,
};
use crate::error::{DomainError, FieldError};
use crate::ids::UserId;
use crate::ports::EventBus;
use crate::ports::event_bus::topics;
use crate::subscription::{Subscription, add_months};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Refuse runs past the limit (on when payments are configured, or by config).
    pub enforce_limits: bool,
    pub trial_days: i64,
    pub trial_runs: i64,
    /// The plan a trial gives.
    pub trial_plan: String,
    /// The public origin (`https://ironhand.example`): checkout and portal return there.
    pub public_origin: String,
    /// Where the web app shows the subscription (`/billing`).
    pub billing_path: String,
}

pub struct BillingService {
    store: Arc<dyn BillingStore>,
    catalog: PlanCatalog,
    settings: BillingSettings,
    bus: Arc<dyn EventBus>,
    payments: Option<Arc<dyn Payments>>,
    event_turns: super::turns::EventTurns,
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The month-long period, counted from `anchor` (the signup), that contains `now`.
pub fn anniversary_period(
    anchor: OffsetDateTime,
    now: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    if now < anchor {
        return (anchor, add_months(anchor, 1));
    }
    // Jump close to `now` first, then step: at most a couple of iterations.
    let months = (now.year() - anchor.year()) * 12
        + (i32::from(u8::from(now.month())) - i32::from(u8::from(anchor.month())));
    let mut k = (months - 1).max(0);
    loop {
        let start = add_months(anchor, k);
        let end = add_months(anchor, k + 1);
        if now < end || k > 100_000 {
            return (start, end);
        }
        k += 1;
    }
}

fn payment_error(error: PaymentError) -> DomainError {
    tracing::warn!(%error, "payment provider call failed");
    match error {
        PaymentError::Refused(_) => DomainError::Unavailable(
            "The payment provider refused the request. Try again later or contact support.".into(),
        ),
        PaymentError::Unreachable(_) => DomainError::Unavailable(
            "The payment provider cannot be reached right now. Try again shortly.".into(),
        ),
    }
}

/// Stripe's statuses, in the set of the API's `Subscription.status` (docs/api.md, Billing).
fn status_of(provider: &str) -> &'static str {
    match provider {
        "active" => "active",
        "trialing" => "trialing",
        "past_due" | "paused" => "past_due",
        "canceled" => "canceled",
        "unpaid" => "unpaid",
        _ => "incomplete",
    }
}

/// A provider subscription that will never be paid for again.
fn ended(provider_status: &str) -> bool {
    matches!(provider_status, "canceled" | "incomplete_expired")
}

impl BillingService {
    pub fn new(
        store: Arc<dyn BillingStore>,
        catalog: PlanCatalog,
        settings: BillingSettings,
        bus: Arc<dyn EventBus>,
        payments: Option<Arc<dyn Payments>>,
    ) -> Self {
        Self {
            store,
            catalog,
            settings,
            bus,
            payments,
            event_turns: Default::default(),
        }
    }

    pub fn catalog(&self) -> &PlanCatalog {
        &self.catalog
    }

    pub fn payments_configured(&self) -> bool {
        self.payments.is_some()
    }

    fn plan_of(&self, sub: &Subscription) -> &Plan {
        self.catalog.get(&sub.plan).unwrap_or(self.catalog.free())
    }

    /// Tells open subscription streams (on every instance) to re-read.
    pub async fn notify(&self, user: UserId) {
        if let Err(error) = self.bus.publish(&topics::billing(user), "changed").await {
            tracing::warn!(%error, "could not publish a subscription change");
        }
    }

    /// The user's subscription with its period brought up to date (a free period rolls
    /// over on the signup anniversary; an ended trial goes back to free).
    pub async fn current(&self, user: UserId) -> Result<Subscription, DomainError> {
        let now = OffsetDateTime::now_utc();
        let sub = match self.store.subscription_for_user(user).await? {
            Some(sub) => sub,
            None => {
                let free =
                    Subscription::free(user, self.catalog.free().monthly_agent_runs_limit, now);
                self.store.ensure_subscription(&free).await?;
                self.store
                    .subscription_for_user(user)
                    .await?
                    .ok_or_else(|| DomainError::NotFound("Account not found.".into()))?
            }
        };
        self.roll(sub, now).await
    }

    async fn roll(
        &self,
        sub: Subscription,
        now: OffsetDateTime,
    ) -> Result<Subscription, DomainError> {
        let update = if sub.is_trial
            && sub.stripe_subscription_id.is_none()
            && sub.trial_end.is_some_and(|end| now >= end)
        {
            let free = self.catalog.free();
            Some(SubscriptionUpdate {
                plan: Some(free.id.clone()),
                status: Some("active".into()),
                monthly_agent_runs_limit: Some(free.monthly_agent_runs_limit),
                period: Some(anniversary_period(sub.created_at, now)),
                reset_usage: true,
                is_trial: Some(false),
                ..Default::default()
            })
        } else if sub.stripe_subscription_id.is_none() && now >= sub.current_period_end {
            // Paid periods move with the provider's invoices; the others monthly from signup.
            Some(SubscriptionUpdate {
                period: Some(anniversary_period(sub.created_at, now)),
                reset_usage: true,
                ..Default::default()
            })
        } else if !sub.is_trial
            && let Some(plan) = self.catalog.get(&sub.plan)
            && plan.monthly_agent_runs_limit != sub.monthly_agent_runs_limit
        {
            // The operator changed the plan's limit: every subscription on it follows.
            Some(SubscriptionUpdate {
                monthly_agent_runs_limit: Some(plan.monthly_agent_runs_limit),
                ..Default::default()
            })
        } else {
            None
        };
        let Some(update) = update else {
            return Ok(sub);
        };
        let user = sub.user_id;
        match self
            .store
            .update_subscription(user, Some(sub.period_version), &update, now)
            .await?
        {
            Some(rolled) => {
                self.notify(user).await;
                Ok(rolled)
            }
            // Someone else rolled it meanwhile: theirs is current.
            None => self
                .store
                .subscription_for_user(user)
                .await?
                .ok_or_else(|| DomainError::NotFound("Account not found.".into())),
        }
    }

    /// Whether `user` may start a run now, and the meter the run queue applies in the run's
    /// transaction. A new task (`counts`) is refused with 402 when billing is enforced and
    /// the subscription is inactive or visibly at its limit; the limit itself is decided
    /// atomically by the run queue.
    pub async fn admit(&self, user: UserId, counts: bool) -> Result<RunMeter, DomainError> {
        let sub = self.current(user).await?;
        if counts
            && self.settings.enforce_limits
            && matches!(
                sub.status.as_str(),
                "past_due" | "unpaid" | "incomplete" | "canceled"
            )
        {
            return Err(self.refusal(&sub, "subscription_inactive"));
        }
        // Already at the limit: refuse without taking the subscription's lock (the run
        // queue's conditional update still decides every race).
        if counts
            && self.settings.enforce_limits
            && sub.monthly_agent_runs_limit >= 0
            && sub.monthly_agent_runs >= sub.monthly_agent_runs_limit
        {
            return Err(self.refusal(&sub, "run_limit_reached"));
        }
        Ok(RunMeter {
            count: counts,
            enforce_limit: self.settings.enforce_limits,
            period_version: sub.period_version,
            max_active_runs: self.plan_of(&sub).max_concurrent_runs,
        })
    }

    /// The 402 for a refused run: `{reason, plan, used, limit, resets_at}`.
    pub fn refusal(&self, sub: &Subscription, reason: &str) -> DomainError {
        let plan = self.plan_of(sub);
        let resets = sub.current_period_end.date();
        let message = if reason == "subscription_inactive" {
            format!(
                "Your {} subscription is {}. Update your payment method in the billing portal to keep running tasks.",
                plan.name,
                sub.status.replace('_', " ")
            )
        } else {
            format!(
                "You have used all {} runs of your {} plan for this period. They reset on {resets}; upgrade your plan to run more now.",
                sub.monthly_agent_runs_limit, plan.name
            )
        };
        DomainError::PaymentRequired {
            message,
            details: json!({
                "reason": reason,
                "plan": sub.plan,
                "used": sub.monthly_agent_runs,
                "limit": sub.monthly_agent_runs_limit,
                "resets_at": iso(sub.current_period_end),
            }),
        }
    }

    /// The 429 when the user's plan allows no more runs at once.
    pub async fn too_many_active(&self, user: UserId) -> DomainError {
        let limit = match self.store.subscription_for_user(user).await {
            Ok(Some(sub)) => self.plan_of(&sub).max_concurrent_runs,
            _ => self.catalog.free().max_concurrent_runs,
        };
        DomainError::TooManyRuns {
            message: format!(
                "Your plan runs at most {limit} task(s) at once. Wait for one to finish or stop one, then try again."
            ),
            retry_after: Duration::from_secs(10),
        }
    }

    pub async fn activate_trial(&self, user: UserId) -> Result<Subscription, DomainError> {
        let sub = self.current(user).await?;
        if sub.trial_used {
            return Err(DomainError::BadRequest(
                "You have already used your free trial.".into(),
            ));
        }
        if sub.plan != "free" {
            return Err(DomainError::BadRequest(
                "The trial is only available on the free plan.".into(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let end = now + time::Duration::days(self.settings.trial_days);
        let update = SubscriptionUpdate {
            plan: Some(self.settings.trial_plan.clone()),
            status: Some("trialing".into()),
            monthly_agent_runs_limit: Some(self.settings.trial_runs),
            period: Some((now, end)),
            reset_usage: true,
            is_trial: Some(true),
            trial_end: Some(Some(end)),
            trial_used: Some(true),
            ..Default::default()
        };
        match self.store.start_trial(user, &update, now).await? {
            Some(sub) => {
                self.notify(user).await;
                Ok(sub)
            }
            None => Err(DomainError::BadRequest(
                "You have already used your free trial.".into(),
            )),
        }
    }

    /// Checks a redirect URL given by the client: it must be on the public origin.
    fn return_url(
        &self,
        given: Option<&str>,
        default_query: &str,
        field: &str,
    ) -> Result<String, DomainError> {
        let origin = self.settings.public_origin.trim_end_matches('/');
        match given.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(format!(
                "{origin}{}{default_query}",
                self.settings.billing_path
            )),
            Some(url)
                if (url == origin || url.starts_with(&format!("{origin}/")))
                    && !url
                        .chars()
                        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
                    && url.len() <= 2_000 =>
            {
                Ok(url.to_string())
            }
            Some(_) => Err(DomainError::Validation(vec![FieldError::new(
                field,
                format!("must be a URL on {origin}"),
            )])),
        }
    }

    fn payments(&self) -> Result<&Arc<dyn Payments>, DomainError> {
        self.payments.as_ref().ok_or_else(|| {
            DomainError::Unavailable("Payments are not configured on this server.".into())
        })
    }

    /// The user's provider customer, created on first need.
    async fn customer(
        &self,
        sub: &Subscription,
        email: &str,
        name: &str,
    ) -> Result<String, DomainError> {
        if let Some(customer) = &sub.stripe_customer_id {
            return Ok(customer.clone());
        }
        let customer = self
            .payments()?
            .create_customer(sub.user_id, email, name)
            .await
            .map_err(payment_error)?;
        let update = SubscriptionUpdate {
            stripe_customer_id: Some(customer.clone()),
            ..Default::default()
        };
        self.store
            .update_subscription(sub.user_id, None, &update, OffsetDateTime::now_utc())
            .await?;
        Ok(customer)
    }

    /// A checkout for `plan_id`; returns `(session id, url)`.
    pub async fn checkout(
        &self,
        user: UserId,
        email: &str,
        name: &str,
        plan_id: &str,
        success_url: Option<&str>,
        cancel_url: Option<&str>,
    ) -> Result<(String, String), DomainError> {
        let payments = self.payments()?.clone();
        let plan = self
            .catalog
            .get(plan_id)
            .filter(|p| matches!(p.id.as_str(), "basic" | "pro"))
            .ok_or_else(|| {
                DomainError::Validation(vec![FieldError::new("plan", "must be basic or pro")])
            })?;
        let price = plan.stripe_price_id.clone().ok_or_else(|| {
            DomainError::Unavailable(format!(
                "The {} plan has no price configured on this server.",
                plan.name
            ))
        })?;
        let success = self.return_url(
            success_url,
            "?checkout=success&session_id={CHECKOUT_SESSION_ID}",
            "success_url",
        )?;
        let cancel = self.return_url(cancel_url, "?checkout=cancel", "cancel_url")?;
        let sub = self.current(user).await?;
        if sub.stripe_subscription_id.is_some()
            && !matches!(sub.status.as_str(), "canceled" | "incomplete")
        {
            return Err(DomainError::BadRequest(
                "You already have a paid subscription. Change or cancel it in the billing portal."
                    .into(),
            ));
        }
        let customer = self.customer(&sub, email, name).await?;
        payments
            .create_checkout(user, &customer, plan, &price, &success, &cancel)
            .await
            .map_err(payment_error)
    }

    pub async fn portal(
        &self,
        user: UserId,
        return_url: Option<&str>,
    ) -> Result<String, DomainError> {
        let payments = self.payments()?.clone();
        let back = self.return_url(return_url, "", "return_url")?;
        let sub = self.current(user).await?;
        let customer = sub.stripe_customer_id.ok_or_else(|| {
            DomainError::BadRequest(
                "You have no billing account yet. Choose a paid plan first.".into(),
            )
        })?;
        payments
            .create_portal(&customer, &back)
            .await
            .map_err(payment_error)
    }

    /// A webhook delivery: its signature checked by the payment provider, then its event
    /// applied once. `Ok((applied, event type))`; a refused delivery is a 400 with the
    /// reason, no provider a 503.
    pub async fn receive_webhook(
        &self,
        body: &[u8],
        signature: &str,
        now: i64,
    ) -> Result<(bool, String), WebhookError> {
        let Some(payments) = &self.payments else {
            return Err(WebhookError::NotConfigured);
        };
        let delivery = payments
            .read_webhook(body, signature, now)
            .map_err(WebhookError::Refused)?;
        let applied = self
            .apply_event(&delivery.id, &delivery.kind, delivery.event)
            .await
            .map_err(WebhookError::Failed)?;
        Ok((applied, delivery.kind))
    }

    /// Applies a verified provider event once. Returns false for an event already
    /// processed (acknowledged, no second effect). The id is checked before anything else,
    /// and deliveries of one event on this instance take turns, so repeats cost no call to
    /// the provider (two instances handling the same event at the same moment may each
    /// read it once; the store still applies it once).
    pub async fn apply_event(
        &self,
        event_id: &str,
        event_type: &str,
        event: PaymentEvent,
    ) -> Result<bool, DomainError> {
        let _turn = self.event_turns.take(event_id).await;
        if self.store.payment_event_seen(event_id).await? {
            tracing::info!(event_type, "payment event already processed");
            return Ok(false);
        }
        let now = OffsetDateTime::now_utc();
        let change = self.change_for(event, now).await?;
        let applied = self
            .store
            .apply_payment_event(
                event_id,
                event_type,
                change.as_ref().map(|(u, c)| (*u, c)),
                now,
            )
            .await?;
        match (&change, applied) {
            (Some((user, _)), true) => {
                metrics::counter!("ironhand_billing_changes_total", "event" => event_type.to_string()).increment(1);
                self.notify(*user).await;
            }
            (None, true) => {
                tracing::info!(event_type, "payment event acknowledged without a change")
            }
            (_, false) => tracing::info!(event_type, "payment event already processed"),
        }
        Ok(applied)
    }

    /// The authoritative state of a provider subscription (fetched, so events arriving out
    /// of order cannot roll it back); the event's own copy when the provider cannot say.
    /// The subscription's state, and whether it came from the provider just now.
    async fn fresh(
        &self,
        id: &str,
        fallback: Option<ProviderSubscription>,
    ) -> Result<(Option<ProviderSubscription>, bool), DomainError> {
        let Some(payments) = &self.payments else {
            return Ok((fallback, false));
        };
        match payments.subscription(id).await {
            Ok(sub) => Ok((Some(sub), true)),
            Err(PaymentError::Refused(why)) => {
                tracing::warn!(
                    why,
                    "the provider does not know this subscription; using the event's copy"
                );
                Ok((fallback, false))
            }
            Err(error) => Err(payment_error(error)),
        }
    }

    async fn find_user(
        &self,
        hint: Option<UserId>,
        subscription: Option<&str>,
        customer: Option<&str>,
    ) -> Result<Option<Subscription>, DomainError> {
        if let Some(user) = hint
            && let Some(sub) = self.store.subscription_for_user(user).await?
        {
            return Ok(Some(sub));
        }
        if let Some(id) = subscription
            && let Some(sub) = self.store.subscription_by_provider_id(id).await?
        {
            return Ok(Some(sub));
        }
        if let Some(customer) = customer {
            return Ok(self.store.subscription_by_customer(customer).await?);
        }
        Ok(None)
    }

    async fn change_for(
        &self,
        event: PaymentEvent,
        now: OffsetDateTime,
    ) -> Result<Option<(UserId, SubscriptionUpdate)>, DomainError> {
        let (hint, sub_id, customer, fallback, failed) = match event {
            PaymentEvent::Other => return Ok(None),
            PaymentEvent::CheckoutCompleted {
                user,
                customer,
                subscription_id,
            } => (user, subscription_id, customer, None, false),
            PaymentEvent::SubscriptionChanged(s) | PaymentEvent::SubscriptionDeleted(s) => (
                s.user_hint,
                Some(s.id.clone()),
                s.customer.clone(),
                Some(s),
                false,
            ),
            PaymentEvent::InvoicePaid {
                customer,
                subscription_id,
            } => (None, subscription_id, customer, None, false),
            PaymentEvent::InvoiceFailed {
                customer,
                subscription_id,
            } => (None, subscription_id, customer, None, true),
        };
        let (provider, fetched) = match &sub_id {
            Some(id) => self.fresh(id, fallback).await?,
            None => (fallback, false),
        };
        let hint = hint.or(provider.as_ref().and_then(|p| p.user_hint));
        let customer = customer.or(provider.as_ref().and_then(|p| p.customer.clone()));
        let Some(current) = self
            .find_user(hint, sub_id.as_deref(), customer.as_deref())
            .await?
        else {
            tracing::warn!("payment event for a customer no account knows; acknowledged");
            return Ok(None);
        };
        // Events about a subscription the user has since replaced change nothing.
        if let (Some(known), Some(id)) = (&current.stripe_subscription_id, &sub_id)
            && known != id
            && provider.as_ref().is_some_and(|p| ended(&p.status))
        {
            return Ok(None);
        }
        let mut update = match &provider {
            // Ended for good (`incomplete_expired` is terminal too): back to free.
            Some(p) if ended(&p.status) => self.back_to_free(&current, now),
            // Not paid yet (3-D Secure, a pending payment): nothing changes but the link;
            // the plan follows once Stripe says it is active.
            Some(p) if p.status == "incomplete" => SubscriptionUpdate {
                stripe_subscription_id: Some(Some(p.id.clone())),
                ..Default::default()
            },
            Some(p) => self.paid_state(p),
            None => SubscriptionUpdate::default(),
        };
        // Stripe's own state (fetched just now) wins over a failure event that may be late.
        if failed && !fetched {
            update.status = Some("past_due".into());
        }
        if current.stripe_customer_id.is_none() {
            update.stripe_customer_id = customer;
        }
        Ok(Some((current.user_id, update)))
    }

    fn paid_state(&self, p: &ProviderSubscription) -> SubscriptionUpdate {
        let plan = p
            .price_id
            .as_deref()
            .and_then(|price| self.catalog.by_price(price));
        if plan.is_none() {
            tracing::warn!(price = ?p.price_id, "subscription for a price no plan sells; plan unchanged");
        }
        SubscriptionUpdate {
            plan: plan.map(|p| p.id.clone()),
            monthly_agent_runs_limit: plan.map(|p| p.monthly_agent_runs_limit),
            status: Some(status_of(&p.status).into()),
            // The store resets the usage when this period starts at another time than the
            // stored one, against the row as it is at that moment.
            period: p.period,
            cancel_at_period_end: Some(p.cancel_at_period_end),
            is_trial: Some(p.status == "trialing"),
            stripe_subscription_id: Some(Some(p.id.clone())),
            ..Default::default()
        }
    }

    fn back_to_free(&self, current: &Subscription, now: OffsetDateTime) -> SubscriptionUpdate {
        let free = self.catalog.free();
        SubscriptionUpdate {
            plan: Some(free.id.clone()),
            status: Some("active".into()),
            monthly_agent_runs_limit: Some(free.monthly_agent_runs_limit),
            period: Some(anniversary_period(current.created_at, now)),
            reset_usage: true,
            cancel_at_period_end: Some(false),
            is_trial: Some(false),
            stripe_subscription_id: Some(None),
            ..Default::default()
        }
    }

    /// The `Subscription` object of the API (docs/api.md, section Billing).
    pub fn view(&self, sub: &Subscription) -> serde_json::Value {
        json!({
            "id": sub.id.to_string(),
            "user_id": sub.user_id.to_string(),
            "plan": sub.plan,
            "status": sub.status,
            "monthly_agent_runs": sub.monthly_agent_runs,
            "monthly_agent_runs_limit": sub.monthly_agent_runs_limit,
            "current_period_start": iso(sub.current_period_start),
            "current_period_end": iso(sub.current_period_end),
            "cancel_at_period_end": sub.cancel_at_period_end,
            "is_trial": sub.is_trial,
            "trial_end": sub.trial_end.map(iso),
            "trial_used": sub.trial_used,
            "has_billing_account": sub.stripe_customer_id.is_some(),
            "limits_enforced": self.settings.enforce_limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_count_from_the_signup_anniversary() {
        let signup = datetime!(2026-01-31 10:00 UTC);
        assert_eq!(
            anniversary_period(signup, datetime!(2026-02-10 00:00 UTC)),
            (signup, datetime!(2026-02-28 10:00 UTC))
        );
        assert_eq!(
            anniversary_period(signup, datetime!(2026-03-05 00:00 UTC)),
            (
                datetime!(2026-02-28 10:00 UTC),
                datetime!(2026-03-31 10:00 UTC)
            )
        );
        // Long idle: lands in the period containing now.
        let (start, end) = anniversary_period(signup, datetime!(2031-07-31 10:00 UTC));
        assert_eq!(start, datetime!(2031-07-31 10:00 UTC));
        assert_eq!(end, datetime!(2031-08-31 10:00 UTC));
        assert!(start <= datetime!(2031-07-31 10:00 UTC));
    }

    #[test]
    fn provider_statuses_map_to_the_contract() {
        assert_eq!(status_of("incomplete_expired"), "incomplete");
        assert_eq!(status_of("paused"), "past_due");
        assert_eq!(status_of("active"), "active");
    }
}

/// Why a webhook delivery was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("Stripe webhooks are not configured on this server.")]
    NotConfigured,
    #[error("{0}")]
    Refused(#[source] super::WebhookRefusal),
    #[error("{0}")]
    Failed(#[source] DomainError),
}

impl From<WebhookError> for DomainError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NotConfigured => DomainError::Unavailable(error.to_string()),
            WebhookError::Refused(why) => DomainError::BadRequest(why.to_string()),
            WebhookError::Failed(error) => error,
        }
    }
}
