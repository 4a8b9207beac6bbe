//! The live view of a session's browser: a signed URL for it, and the WebSocket that
//! carries the browser's display (RFB) to noVNC or any RFB client. Read-only until the
//! owner takes over (`POST /sessions/{id}/takeover`, in the parent module).
//!
//! A WebSocket cannot send a token from a browser, hence the signed URL: the owner asks
//! for one, valid 1 to 15 minutes, and the socket checks it before anything else. A bad
//! link is an enveloped 403 before the upgrade (a browser cannot read it, so the web app
//! fetches a fresh link on failure); once the link holds, every other refusal (no
//! browser, too many views) is a WebSocket close with a code and a sentence.

pub mod relay;
pub mod rfb;
pub mod signing;

use super::dto::{VncUrl, VncUrlRequest};
use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::routes::ErrorEnvelope;
use crate::routes::sessions::stream::StreamSlots;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::{IntoResponse, Response};
use ironhand_core::SessionId;
use relay::{Closing, InputGate};
use serde::Deserialize;
use signing::VncSigner;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Live views open per user on this instance: each holds a display connection.
pub const MAX_VIEWS_PER_USER: usize = 8;
/// The longest a signed link may be valid, in minutes.
const MAX_EXPIRE_MINUTES: i64 = 15;
/// Longest wait to reach the browser's display.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest WebSocket message a viewer may send: the longest clipboard text and room.
const MAX_VIEWER_MESSAGE: usize = rfb::MAX_CUT_TEXT + 64 * 1024;

/// What the live view keeps between requests.
pub struct LiveView {
    pub signer: VncSigner,
    slots: Arc<StreamSlots>,
}

impl LiveView {
    /// `secret` is the files signing secret (the link key is derived from it).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            signer: VncSigner::new(secret),
            slots: Arc::new(StreamSlots::for_rule(MAX_VIEWS_PER_USER, "open_live_views")),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(vnc_signed_url))
        .routes(routes!(vnc_socket))
}

#[utoipa::path(post, path = "/sessions/{id}/vnc/signed-url", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")), request_body = VncUrlRequest,
    responses((status = 200, body = Envelope<VncUrl>), (status = 404, body = ErrorEnvelope)))]
async fn vnc_signed_url(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
    ApiJson(body): ApiJson<VncUrlRequest>,
) -> ApiResult {
    let session = state.sessions.owned(who.user.id, id).await?;
    if !(1..=MAX_EXPIRE_MINUTES).contains(&body.expire_minutes) {
        return Err(ApiError::validation(
            "expire_minutes",
            format!("expire_minutes must be between 1 and {MAX_EXPIRE_MINUTES}"),
        ));
    }
    let expires_in = body.expire_minutes * 60;
    let expires = OffsetDateTime::now_utc().unix_timestamp() + expires_in;
    Ok(ok(VncUrl {
        signed_url: state.live_view.signer.signed_path(session.id, expires),
        expires_in,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VncQuery {
    /// From the signed URL.
    #[param(required = true, value_type = String)]
    pub signature: Option<String>,
    /// From the signed URL: epoch seconds.
    #[param(required = true, value_type = i64)]
    pub expires: Option<String>,
}

fn bad_link() -> ApiError {
    ApiError::forbidden("This live-view link is not valid or has expired. Ask for a new one.")
}

#[utoipa::path(get, path = "/sessions/{id}/vnc", tag = "sessions",
    params(("id" = String, Path, description = "session id"), VncQuery),
    responses(
        (status = 101, description = "WebSocket (subprotocol `binary` when offered): RFB in binary frames, read-only until the owner takes over. Closes with 4404 when no browser runs, 4429 when the account has too many live views open, 1011 when the display cannot be reached."),
        (status = 400, body = ErrorEnvelope, description = "not a WebSocket request"),
        (status = 403, body = ErrorEnvelope, description = "the signature is missing or wrong, for another session, or expired"),
        (status = 404, body = ErrorEnvelope)))]
async fn vnc_socket(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<SessionId>,
    ApiQuery(query): ApiQuery<VncQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The link first: nothing about the session is revealed, or started, without it.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expires = query.expires.as_deref().and_then(|e| e.parse::<i64>().ok());
    let (Some(signature), Some(expires)) = (query.signature.as_deref(), expires) else {
        return Err(bad_link());
    };
    if !state.live_view.signer.verify(id, expires, signature, now) {
        return Err(bad_link());
    }
    let session = state.sessions.by_signed_link(id).await?;
    let upgrade = upgrade.map_err(|_| {
        ApiError::bad_request("This is a WebSocket route: connect with a WebSocket client.")
    })?;
    let slot = state.live_view.slots.acquire(session.user_id);
    let upgrade = upgrade
        .protocols(["binary"])
        .max_message_size(MAX_VIEWER_MESSAGE)
        .max_frame_size(MAX_VIEWER_MESSAGE);
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            let Ok(_slot) = slot else {
                return relay::close(socket, Closing::TOO_MANY).await;
            };
            let browser = state.sessions.running_browser(id);
            let Some(browser) = browser else {
                return relay::close(socket, Closing::NOT_RUNNING).await;
            };
            let display = match tokio::time::timeout(CONNECT_TIMEOUT, browser.connect_vnc()).await
            {
                Ok(Ok(display)) => display,
                Ok(Err(error)) => {
                    tracing::warn!(%error, session_id = %id, "live view: could not reach the display");
                    return relay::close(socket, Closing::UNREACHABLE).await;
                }
                Err(_) => {
                    tracing::warn!(session_id = %id, "live view: the display did not answer in time");
                    return relay::close(socket, Closing::UNREACHABLE).await;
                }
            };
            tracing::info!(session_id = %id, "live view opened");
            let gate = InputGate::new(state.sessions.clone(), id);
            let closing = relay::run(socket, display, gate, state.stopping.clone()).await;
            tracing::info!(session_id = %id, reason = closing.reason, "live view closed");
        })
        .into_response())
}
