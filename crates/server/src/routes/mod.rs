//! Routes, one module per product part; each exposes `router()` returning its OpenAPI-aware
//! routes, nested under `/api/v1` by `app::router`.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod files;
pub mod mcp;
pub mod ops;
pub mod sessions;

use crate::app::AppState;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::marker::PhantomData;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
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

/// A stored file (`FileInfo` in docs/api.md, section Files).
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

/// A payload sent as the `data` of a stream's events.
pub trait StreamPayload: ToSchema {
    /// The name of the event's schema in the document.
    const EVENT_SCHEMA: &'static str;
    /// The `event` names it is sent under.
    const EVENTS: &'static [&'static str];
    /// Whether each event carries an `id` (the cursor a client resumes from).
    const WITH_ID: bool;
}

/// One event of a `text/event-stream` answer, for the OpenAPI document, which (3.1) reads a
/// stream's schema as each event's: `{event, data, id?}` with `data` the JSON text of `T`.
pub struct StreamEvent<T>(PhantomData<T>);

impl<T: StreamPayload> PartialSchema for StreamEvent<T> {
    fn schema() -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(T::EVENTS.iter().copied()));
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .content_schema(Some(Ref::from_schema_name(T::name())));
        let mut event = ObjectBuilder::new()
            .property("event", name)
            .required("event")
            .property("data", data)
            .required("data");
        if T::WITH_ID {
            event = event
                .property("id", ObjectBuilder::new().schema_type(Type::String))
                .required("id");
        }
        event
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .build()
            .into()
    }
}

impl<T: StreamPayload> ToSchema for StreamEvent<T> {
    fn name() -> Cow<'static, str> {
        T::EVENT_SCHEMA.into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into(), T::schema()));
        T::schemas(schemas);
    }
}

/// An `OptionalJson` body (`Option<T>` in a route's `request_body`) may be left out, but one
/// that is sent must be the object: utoipa writes `oneOf: [T, null]`, which would let a JSON
/// `null` through. Each such body becomes `T`, not required.
pub fn optional_bodies(doc: &mut utoipa::openapi::OpenApi) {
    let is_null = |schema: &RefOr<Schema>| match schema {
        RefOr::T(Schema::Object(o)) => o.schema_type == SchemaType::Type(Type::Null),
        _ => false,
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.put, &mut item.post, &mut item.patch];
        for op in operations.into_iter().flatten() {
            let Some(RefOr::T(body)) = op.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else {
                    continue;
                };
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
                    && let [a, b] = one_of.items.as_slice()
                    && (is_null(a) || is_null(b))
                {
                    let object = if is_null(a) { b.clone() } else { a.clone() };
                    content.schema = Some(object);
                }
            }
        }
    }
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(admin::router())
        .merge(ops::router())
        .merge(sessions::router())
        .merge(files::router())
        .merge(billing::router())
        .merge(mcp::router())
}
