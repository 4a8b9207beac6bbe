//! `POST /billing/webhook`: Stripe's events. The payment provider checks the signature over
//! the raw body (every `v1`, each configured secret, 5-minute tolerance) before anything is
//! parsed (`Payments::read_webhook`); the billing service applies each event id at most once.

use super::received;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::routes::ErrorEnvelope;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use ironhand_core::DomainError;
use ironhand_core::billing::{WebhookError, WebhookRefusal};
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
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match state.billing.receive_webhook(&body, signature, now).await {
        Ok((applied, kind)) => {
            outcome(if applied { "applied" } else { "duplicate" });
            tracing::info!(event_type = %kind, applied, "webhook processed");
            Ok(received())
        }
        Err(error) => {
            match &error {
                WebhookError::NotConfigured => outcome("not_configured"),
                WebhookError::Refused(why) => {
                    tracing::warn!(reason = %why, "refused a webhook delivery");
                    outcome(match why {
                        WebhookRefusal::Signature(_) => "bad_signature",
                        WebhookRefusal::NotAnEvent(_) => "bad_event",
                    });
                }
                WebhookError::Failed(_) => outcome("failed"),
            }
            Err(DomainError::from(error).into())
        }
    }
}
