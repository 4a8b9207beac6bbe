//! `POST /billing/webhook`: Stripe's events. The signature is checked over the raw body
//! (every `v1`, each configured secret, 5-minute tolerance) before anything is parsed;
//! each event id changes things at most once.

use super::received;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::infra::payments::stripe::payment_event;
use crate::routes::ErrorEnvelope;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use ironhand_core::DomainError;
use ironhand_stripe::{Event, verify_signature};
use time::OffsetDateTime;

fn outcome(result: &'static str) {
    metrics::counter!("ironhand_webhooks_total", "outcome" => result).increment(1);
}

#[utoipa::path(post, path = "/billing/webhook", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex>…")),
    request_body(content = String, content_type = "application/json", description = "the raw Stripe event"),
    responses((status = 200, description = "`{received: true}` (also for event types Ironhand ignores and for repeats)"),
              (status = 400, body = ErrorEnvelope, description = "missing, invalid or stale signature; not an event"),
              (status = 503, body = ErrorEnvelope, description = "webhooks not configured, or Stripe unreachable (Stripe retries)")))]
pub(super) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secrets = state.settings.stripe.webhook_secrets();
    if secrets.is_empty() {
        outcome("not_configured");
        return Err(DomainError::Unavailable(
            "Stripe webhooks are not configured on this server.".into(),
        )
        .into());
    }
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Err(why) = verify_signature(
        &body,
        header,
        &secrets,
        now,
        state.settings.stripe.webhook_tolerance_secs,
    ) {
        tracing::warn!(reason = %why, "refused a webhook delivery");
        outcome("bad_signature");
        return Err(ApiError::bad_request(format!("Webhook refused: {why}.")));
    }
    let event = Event::parse(&body).map_err(|why| {
        tracing::warn!(reason = %why, "a signed webhook body is not a Stripe event");
        outcome("bad_event");
        ApiError::bad_request("The webhook body is not a Stripe event.")
    })?;
    let applied = state
        .billing
        .apply_event(&event.id, &event.type_, payment_event(&event))
        .await
        .inspect_err(|_| outcome("failed"))?;
    outcome(if applied { "applied" } else { "duplicate" });
    tracing::info!(event_type = %event.type_, applied, "webhook processed");
    Ok(received())
}
