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
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
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

/// One event of a `text/event-stream` answer, for the OpenAPI document, which (3.1) reads a
/// stream's schema as each event's: `event` is one of `names`, `data` is JSON text of the
/// component schema `data`, and `id` (the resume cursor) is there when `with_id`.
pub fn stream_event(names: &[&str], data: &str, with_id: bool) -> RefOr<Schema> {
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.iter().copied()));
    let payload = ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .content_schema(Some(Ref::from_schema_name(data)));
    let mut event = ObjectBuilder::new()
        .property("event", name)
        .required("event")
        .property("data", payload)
        .required("data");
    if with_id {
        event = event
            .property("id", ObjectBuilder::new().schema_type(Type::String))
            .required("id");
    }
    event
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build()
        .into()
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
