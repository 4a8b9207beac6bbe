//! `{code, msg, data}`: every JSON response, success or error.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// 0 on success, otherwise the HTTP status.
    pub code: u16,
    pub msg: String,
    pub data: T,
}

/// A successful answer: HTTP 200, `code` 0.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        code: 0,
        msg: "success".into(),
        data,
    })
    .into_response()
}
