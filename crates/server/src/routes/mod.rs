//! Routes, one module per product part; each exposes `router()` returning its OpenAPI-aware
//! routes, nested under `/api/v1` by `app::router`.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod files;
pub mod ops;
pub mod sessions;

use crate::app::AppState;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

/// The error envelope, for documentation: `code` = HTTP status, `msg` a sentence, `data`
/// null or details (a list of `{field, message}` for 422, `{retry_after}` for 429).
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub code: u16,
    pub msg: String,
    /// null, an object, or a list of `{field, message}`.
    pub data: Option<serde_json::Value>,
}

/// The answer of routes that return nothing: `{code: 0, msg: "success", data: null}`.
#[derive(Serialize, ToSchema)]
pub struct NullEnvelope {
    pub code: u16,
    pub msg: String,
    #[schema(value_type = Object, nullable)]
    pub data: Option<serde_json::Value>,
}

/// A stored file, as api.md's `FileInfo`.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documents the shape; handlers build it as JSON
pub struct FileInfo {
    pub file_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// ISO-8601 UTC.
    pub upload_date: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// A signed download URL, where the caller may not hold a token.
    pub file_url: Option<String>,
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(admin::router())
        .merge(ops::router())
        .merge(sessions::router())
        .merge(files::router())
        .merge(billing::router())
}
