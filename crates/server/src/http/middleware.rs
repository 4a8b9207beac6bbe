//! Middleware every response passes through: request ids, one tracing span per request,
//! HTTP metrics, security headers, and enveloped answers for unknown routes and panics.

use super::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tracing::Instrument;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of this request, echoed from the client when it sent a sane one.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route template that matched, carried on the response for metrics labels.
#[derive(Debug, Clone)]
struct RouteLabel(String);

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| s.to_string())
}

/// Methods become metric labels only from this fixed set, so clients cannot mint series.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Outermost layer: request id, span, access log line, metrics.
pub async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        path = %req.uri().path(),
        route = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".into());
    span.in_scope(|| {
        // 500 is ours to fix; 502–504 say something upstream (a connector, the sandbox,
        // a busy store) did not answer, which the answer already explains.
        if status == 500 || status > 504 {
            tracing::error!(
                status,
                latency_ms = latency.as_millis() as u64,
                "request failed"
            );
        } else if status >= 500 {
            tracing::warn!(
                status,
                latency_ms = latency.as_millis() as u64,
                "request failed upstream"
            );
        } else {
            tracing::info!(status, latency_ms = latency.as_millis() as u64, "request");
        }
    });
    let labels = [
        ("method", method_label(&method).to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(latency.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}

/// A request that has not produced its response headers in time gets an enveloped 503.
/// It sits inside the CORS and security-header layers so that answer carries them too;
/// streams are not cut once their headers are out.
pub async fn timeout(
    State(limit): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Domain(ironhand_core::DomainError::Unavailable(format!(
            "The server took longer than {} s to answer. Try again.",
            limit.as_secs()
        )))
        .into_response(),
    }
}

/// Route layer: names the matched route template on the span and the response.
pub async fn record_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    if let Some(route) = &route {
        tracing::Span::current().record("route", route.as_str());
    }
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// The headers of GAP-SEC-003, on every response (pages, API, files, errors).
#[derive(Clone)]
pub struct SecurityHeaders {
    pub hsts: bool,
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

pub async fn security_headers(
    State(cfg): State<SecurityHeaders>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    // A route may set a stricter policy of its own (file downloads: `sandbox`).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(h, header::CONTENT_SECURITY_POLICY, CSP);
    }
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::REFERRER_POLICY,
        "strict-origin-when-cross-origin",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if cfg.hsts {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        );
    }
    if !h.contains_key(header::CACHE_CONTROL)
        && h.get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// Unknown routes: JSON 404 under /api, a small page elsewhere.
pub async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    if uri.path() == "/api" || uri.path().starts_with("/api/") {
        return ApiError::RouteNotFound(format!("There is no API route {method} {}.", uri.path()))
            .into_response();
    }
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::response::Html("<!doctype html><title>Not found</title><h1>Not found</h1><p><a href=\"/\">Ironhand</a></p>"),
    )
        .into_response()
}

/// Static-file routers (the docs page) answer unknown files with an empty 404; give it the
/// JSON envelope like every other unknown `/api` path.
pub async fn envelope_bare_not_found(uri: axum::http::Uri, response: Response) -> Response {
    if response.status() == axum::http::StatusCode::NOT_FOUND
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        return ApiError::RouteNotFound(format!("There is no API route {}.", uri.path()))
            .into_response();
    }
    response
}

pub async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// A panic in a handler becomes an enveloped 500; the server keeps serving.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    ApiError::Domain(ironhand_core::DomainError::Internal(format!(
        "handler panicked: {detail}"
    )))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_come_from_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        let invented = Method::from_bytes(b"BREW").expect("a valid token");
        assert_eq!(method_label(&invented), "OTHER");
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(sane_request_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(sane_request_id(&HeaderValue::from_static("a b")), None);
    }
}
