//! `/billing…`: plans, the user's subscription (and its live stream), the trial, Stripe
//! checkout and portal, and Stripe's webhook.

mod webhook;

use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, AuthUser, OptionalJson};
use crate::routes::sessions::stream::{SseItem, StreamSlot, ping_every, sse_response};
use crate::routes::{ErrorEnvelope, StreamEvent, StreamPayload};
use axum::extract::State;
use axum::response::Response;
use axum::response::sse::Event;
use ironhand_core::ids::UserId;
use ironhand_core::ports::event_bus::topics;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A subscription stream re-reads at least this often (a missed bus message heals).
const STREAM_REFRESH: Duration = Duration::from_secs(30);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plans))
        .routes(routes!(subscription))
        .routes(routes!(subscription_stream))
        .routes(routes!(checkout))
        .routes(routes!(portal))
        .routes(routes!(activate_trial))
        .routes(routes!(webhook::webhook))
}

/// A plan on offer.
#[derive(Debug, Serialize, ToSchema)]
struct PlanView {
    id: String,
    name: String,
    price_cents: i64,
    currency: String,
    /// -1 = unlimited.
    monthly_agent_runs_limit: i64,
    max_concurrent_runs: i64,
    features: Vec<String>,
    /// Whether checkout can sell it on this server.
    purchasable: bool,
}

/// The user's subscription and this period's usage
/// (`Subscription` in docs/api.md, section Billing).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documents the shape; handlers build it as JSON
struct SubscriptionView {
    id: String,
    user_id: String,
    /// free, basic, pro or enterprise.
    plan: String,
    /// active, trialing, past_due, canceled, unpaid or incomplete.
    status: String,
    monthly_agent_runs: i64,
    /// -1 = unlimited.
    monthly_agent_runs_limit: i64,
    /// ISO-8601.
    current_period_start: String,
    current_period_end: String,
    cancel_at_period_end: bool,
    is_trial: bool,
    trial_end: Option<String>,
    /// Whether the trial was already taken (it is given once).
    trial_used: bool,
    has_billing_account: bool,
    /// Whether runs past the limit are refused (402); when false they are only counted.
    limits_enforced: bool,
}

/// The subscription stream sends the whole subscription, at once and on every change.
impl StreamPayload for SubscriptionView {
    const EVENT_SCHEMA: &'static str = "SubscriptionEvent";
    const EVENTS: &'static [&'static str] = &["subscription"];
    const WITH_ID: bool = false;
}

/// A `subscription` event, for the OpenAPI document.
type SubscriptionEvent = StreamEvent<SubscriptionView>;

#[utoipa::path(get, path = "/billing/plans", tag = "billing",
    responses((status = 200, body = Envelope<Vec<PlanView>>)))]
async fn plans(State(state): State<AppState>) -> ApiResult {
    let payments = state.billing.payments_configured();
    let plans: Vec<PlanView> = state
        .billing
        .catalog()
        .all()
        .iter()
        .map(|p| PlanView {
            id: p.id.clone(),
            name: p.name.clone(),
            price_cents: p.price_cents,
            currency: p.currency.clone(),
            monthly_agent_runs_limit: p.monthly_agent_runs_limit,
            max_concurrent_runs: p.max_concurrent_runs,
            features: p.features.clone(),
            purchasable: payments && p.stripe_price_id.is_some(),
        })
        .collect();
    Ok(ok(plans))
}

#[utoipa::path(get, path = "/billing/subscription", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = Envelope<SubscriptionView>)))]
async fn subscription(State(state): State<AppState>, AuthUser(who): AuthUser) -> ApiResult {
    let sub = state.billing.current(who.user.id).await?;
    Ok(ok(state.billing.view(&sub)))
}

#[utoipa::path(get, path = "/billing/subscription/stream", tag = "billing", security(("bearer" = [])),
    responses((status = 200, description = "SSE: `subscription` events carrying the Subscription, at once and on every change", content_type = "text/event-stream", body = SubscriptionEvent),
              (status = 429, body = ErrorEnvelope, description = "too many open streams")))]
async fn subscription_stream(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
) -> Result<Response, ApiError> {
    let slot = state.streams.acquire(who.user.id)?;
    let (sender, receiver) = mpsc::channel::<SseItem>(8);
    let user = who.user.id;
    let ping = ping_every(&state);
    tokio::spawn(async move {
        metrics::gauge!("ironhand_sse_subscribers").increment(1.0);
        let _ = pump_subscription(&state, user, &sender, slot).await;
        metrics::gauge!("ironhand_sse_subscribers").decrement(1.0);
    });
    Ok(sse_response(receiver, ping))
}

/// Sends the subscription at once, then again whenever it changes.
async fn pump_subscription(
    state: &AppState,
    user: UserId,
    sender: &mpsc::Sender<SseItem>,
    _slot: StreamSlot,
) -> Result<(), ()> {
    // Subscribed before the first read: no change can fall between the two.
    let mut changes = state
        .bus
        .subscribe(&topics::billing(user))
        .await
        .map_err(|_| ())?
        .receiver;
    let mut last_sent: Option<Value> = None;
    let mut refresh = tokio::time::interval(STREAM_REFRESH);
    loop {
        let sub = state.billing.current(user).await.map_err(|_| ())?;
        let view = state.billing.view(&sub);
        if last_sent.as_ref() != Some(&view) {
            let event = Event::default()
                .event("subscription")
                .data(view.to_string());
            sender.send(Ok(event)).await.map_err(|_| ())?;
            last_sent = Some(view);
        }
        refresh.reset();
        tokio::select! {
            _ = state.stopping.cancelled() => return Ok(()),
            _ = sender.closed() => return Err(()),
            _ = refresh.tick() => {}
            message = changes.recv() => {
                if matches!(message, Err(RecvError::Closed)) {
                    return Err(());
                }
            }
        }
    }
}

/// The plans checkout sells.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum PaidPlan {
    Basic,
    Pro,
}

impl PaidPlan {
    fn id(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Pro => "pro",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct CheckoutRequest {
    plan: PaidPlan,
    /// Where Stripe sends the user after paying (on this server's public origin).
    success_url: Option<String>,
    cancel_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CheckoutCreated {
    checkout_session_id: String,
    checkout_url: String,
}

#[utoipa::path(post, path = "/billing/create-checkout-session", tag = "billing", security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses((status = 200, body = Envelope<CheckoutCreated>), (status = 400, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope, description = "payments not configured")))]
async fn checkout(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiJson(body): ApiJson<CheckoutRequest>,
) -> ApiResult {
    state
        .limit(
            "checkout",
            state.quotas.checkout,
            &[&who.user.id.to_string()],
        )
        .await?;
    let (id, url) = state
        .billing
        .checkout(
            who.user.id,
            who.user.email.as_str(),
            &who.user.fullname,
            body.plan.id(),
            body.success_url.as_deref(),
            body.cancel_url.as_deref(),
        )
        .await?;
    Ok(ok(CheckoutCreated {
        checkout_session_id: id,
        checkout_url: url,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
struct PortalRequest {
    /// Where the portal's "return" link goes (on this server's public origin).
    return_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PortalCreated {
    portal_url: String,
}

#[utoipa::path(post, path = "/billing/create-portal-session", tag = "billing", security(("bearer" = [])),
    params(PortalRequest), request_body(content = Option<PortalRequest>, description = "optional: `return_url` may come in the query instead"),
    responses((status = 200, body = Envelope<PortalCreated>), (status = 400, body = ErrorEnvelope, description = "no billing account yet"),
              (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope),
              (status = 503, body = ErrorEnvelope, description = "payments not configured")))]
async fn portal(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiQuery(query): ApiQuery<PortalRequest>,
    OptionalJson(body): OptionalJson<PortalRequest>,
) -> ApiResult {
    state
        .limit(
            "checkout",
            state.quotas.checkout,
            &[&who.user.id.to_string()],
        )
        .await?;
    let return_url = body.return_url.or(query.return_url);
    let url = state
        .billing
        .portal(who.user.id, return_url.as_deref())
        .await?;
    Ok(ok(PortalCreated { portal_url: url }))
}

#[utoipa::path(post, path = "/billing/activate-trial", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = Envelope<SubscriptionView>), (status = 400, body = ErrorEnvelope, description = "trial already used, or not on the free plan")))]
async fn activate_trial(State(state): State<AppState>, AuthUser(who): AuthUser) -> ApiResult {
    let sub = state.billing.activate_trial(who.user.id).await?;
    Ok(ok(state.billing.view(&sub)))
}

/// `{received: true}`, Stripe's expected acknowledgement.
pub(super) fn received() -> Response {
    ok(json!({ "received": true }))
}
