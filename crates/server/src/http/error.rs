//! Errors become HTTP answers here and nowhere else. A 500 logs its cause (with the request
//! id of the surrounding span) and tells the client only a generic sentence.

use super::envelope::Envelope;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironhand_core::{DomainError, FieldError};
use serde_json::{Value, json};

#[derive(Debug)]
pub enum ApiError {
    Domain(DomainError),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    MethodNotAllowed,
    RouteNotFound(String),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::Domain(e)
    }
}

impl From<ironhand_core::StoreError> for ApiError {
    fn from(e: ironhand_core::StoreError) -> Self {
        Self::Domain(e.into())
    }
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Domain(DomainError::Validation(vec![FieldError::new(
            field, message,
        )]))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Domain(DomainError::BadRequest(message.into()))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Domain(DomainError::Forbidden(message.into()))
    }
}

fn body(status: StatusCode, msg: String, data: Value) -> Response {
    (
        status,
        Json(Envelope {
            code: status.as_u16(),
            msg,
            data,
        }),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use DomainError as D;
        match self {
            ApiError::Domain(D::Validation(fields)) => {
                let msg = match fields.as_slice() {
                    [only] => only.message.clone(),
                    _ => "Some fields are not valid; see data for each one.".into(),
                };
                body(StatusCode::UNPROCESSABLE_ENTITY, msg, json!(fields))
            }
            ApiError::Domain(D::BadRequest(m)) => body(StatusCode::BAD_REQUEST, m, Value::Null),
            ApiError::Domain(D::Unauthorized(m)) => {
                let mut r = body(StatusCode::UNAUTHORIZED, m, Value::Null);
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            ApiError::Domain(D::Forbidden(m)) => body(StatusCode::FORBIDDEN, m, Value::Null),
            ApiError::Domain(D::NotFound(m)) => body(StatusCode::NOT_FOUND, m, Value::Null),
            ApiError::Domain(D::Conflict(m)) => body(StatusCode::CONFLICT, m, Value::Null),
            ApiError::Domain(D::ConnectorFailed(m)) => {
                body(StatusCode::BAD_GATEWAY, m, Value::Null)
            }
            ApiError::Domain(e @ D::BrowserNotRunning) => {
                body(StatusCode::CONFLICT, e.to_string(), Value::Null)
            }
            ApiError::Domain(D::RateLimited { retry_after }) => {
                let secs = retry_after.as_secs().max(1);
                let mut r = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many requests. Try again in {secs} s."),
                    json!({ "retry_after": secs }),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r
            }
            ApiError::Domain(D::TooManyRuns {
                message,
                retry_after,
            }) => {
                let secs = retry_after.as_secs().max(1);
                let mut r = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    message,
                    json!({ "retry_after": secs }),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r
            }
            ApiError::Domain(D::PaymentRequired { message, details }) => {
                body(StatusCode::PAYMENT_REQUIRED, message, details)
            }
            ApiError::Domain(D::TooLarge(m)) | ApiError::PayloadTooLarge(m) => {
                body(StatusCode::PAYLOAD_TOO_LARGE, m, Value::Null)
            }
            ApiError::Domain(D::UnsupportedType(m)) | ApiError::UnsupportedMediaType(m) => {
                body(StatusCode::UNSUPPORTED_MEDIA_TYPE, m, Value::Null)
            }
            ApiError::Domain(D::Unavailable(m)) => {
                body(StatusCode::SERVICE_UNAVAILABLE, m, Value::Null)
            }
            ApiError::Domain(D::Internal(cause)) => {
                tracing::error!(cause = %cause, "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Try again; if it keeps happening, contact support with the X-Request-Id of this response.".into(),
                    Value::Null,
                )
            }
            ApiError::MethodNotAllowed => body(
                StatusCode::METHOD_NOT_ALLOWED,
                "This method is not allowed on this route.".into(),
                Value::Null,
            ),
            ApiError::RouteNotFound(m) => body(StatusCode::NOT_FOUND, m, Value::Null),
        }
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;
