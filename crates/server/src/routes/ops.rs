//! Liveness and readiness.

use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::routes::ErrorEnvelope;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    /// Each dependency: `ok`, `not configured`, or what failed.
    pub checks: BTreeMap<String, String>,
}

/// Liveness: touches no dependency.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Envelope<HealthResponse>)))]
async fn health() -> Response {
    ok(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the database, Redis (when configured), the sandbox provider and the file
/// store answer.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Envelope<ReadyResponse>), (status = 503, body = ErrorEnvelope)))]
async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    let mut failed = Vec::new();
    let db = tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ping()).await;
    match db {
        Ok(Ok(())) => checks.insert("database".to_string(), "ok".to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database failed");
            failed.push("database");
            checks.insert("database".into(), "unreachable".into())
        }
        Err(_) => {
            failed.push("database");
            checks.insert("database".into(), "timed out".into())
        }
    };
    match &state.redis {
        None => checks.insert("redis".into(), "not configured".into()),
        Some(redis) => {
            match tokio::time::timeout(std::time::Duration::from_secs(3), redis.ping()).await {
                Ok(Ok(())) => checks.insert("redis".into(), "ok".into()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: redis failed");
                    failed.push("redis");
                    checks.insert("redis".into(), "unreachable".into())
                }
                Err(_) => {
                    failed.push("redis");
                    checks.insert("redis".into(), "timed out".into())
                }
            }
        }
    };
    match state.sandbox_health().await {
        Ok(kind) => checks.insert("sandbox".into(), format!("ok ({kind})")),
        Err(()) => {
            failed.push("sandbox");
            checks.insert("sandbox".into(), "unavailable".into())
        }
    };
    // Informational: without a browser the server works, the browser tools are not offered.
    let browser = match state.sandboxes.browser_support() {
        Ok(()) => "ok".to_string(),
        Err(why) => format!("not offered: {why}"),
    };
    checks.insert("browser".into(), browser);
    match state.files_health().await {
        Ok(kind) => checks.insert("files".into(), format!("ok ({kind})")),
        Err(()) => {
            failed.push("file store");
            checks.insert("files".into(), "unavailable".into())
        }
    };
    if failed.is_empty() {
        return ok(ReadyResponse { checks });
    }
    let body = Envelope {
        code: 503,
        msg: format!("Not ready: {} did not answer.", failed.join(" and ")),
        data: ReadyResponse { checks },
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
