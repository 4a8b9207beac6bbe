//! The web app (`web/`), built by Vite into `web/dist` and embedded into the binary.
//!
//! Every `GET`/`HEAD` outside `/api` that is not an API route lands here: a file of the build
//! is served with its type and an `ETag` (hashed names under `/assets/` are cached for a
//! year), any other path gets `index.html` so the app's own router can show it (the SPA
//! fallback). A path that names a missing file (`/logo.png`) is a plain 404 instead of the
//! app, and nothing here ever answers under `/api` or at `/metrics`.
//!
//! In debug builds `rust-embed` reads the files from disk at run time, so a rebuilt web app
//! is served without recompiling the server.

use crate::http::middleware;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::{EmbeddedFile, RustEmbed};

#[derive(RustEmbed)]
#[folder = "$IRONHAND_WEB_DIST"]
struct Dist;

const INDEX: &str = "index.html";

/// The router's fallback (and `GET /`): the web app for page loads, the JSON 404 for everything else.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || reserved(path) {
        return middleware::not_found(method, uri).await;
    }
    let name = path.trim_start_matches('/');
    if let Some(file) = asset(name) {
        let immutable = name.starts_with("assets/");
        return serve(name, file, immutable, &headers, method == Method::HEAD);
    }
    if names_a_file(name) {
        return middleware::not_found(method, uri).await;
    }
    match Dist::get(INDEX) {
        Some(file) => serve(INDEX, file, false, &headers, method == Method::HEAD),
        None => middleware::not_found(method, uri).await,
    }
}

/// Paths that are never pages: the API, and `/metrics` (served on the admin listener only;
/// a scraper pointed at the public port gets a 404, not the app).
fn reserved(path: &str) -> bool {
    ["/api", "/metrics"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Whether the web app in this binary is the real build (not the placeholder page).
pub fn is_built() -> bool {
    Dist::iter().any(|name| name.starts_with("assets/"))
}

fn asset(name: &str) -> Option<EmbeddedFile> {
    // `..`, empty segments and backslashes never name a file of the build
    if name.is_empty()
        || name.contains('\\')
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    Dist::get(name)
}

/// The last segment has an extension: a request for a file, not for a page of the app.
fn names_a_file(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or("");
    last.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && !ext.is_empty() && ext.len() <= 8)
}

fn serve(name: &str, file: EmbeddedFile, immutable: bool, req: &HeaderMap, head: bool) -> Response {
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // the body may be gzipped on the way out (the compression layer)
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // weak comparison (RFC 9110 §13.1.2): a proxy that compresses marks the tag `W/`
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mime = if name == INDEX {
        "text/html; charset=utf-8".to_string()
    } else {
        let m = file.metadata.mimetype();
        if m.starts_with("text/") || m == "application/javascript" {
            format!("{m}; charset=utf-8")
        } else {
            m.to_string()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.data.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(file.data.into_owned())
    };
    (StatusCode::OK, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_relative_names_reach_the_build() {
        for bad in [
            "",
            "../Cargo.toml",
            "assets/../index.html",
            "a//b",
            "./index.html",
            "a\\b",
        ] {
            assert!(asset(bad).is_none(), "{bad:?}");
        }
        assert!(asset(INDEX).is_some());
    }

    #[test]
    fn the_api_and_metrics_are_never_pages() {
        for p in ["/api", "/api/", "/api/v1/x", "/metrics", "/metrics/x"] {
            assert!(reserved(p), "{p}");
        }
        for p in ["/", "/apis", "/metricsx", "/chat/api"] {
            assert!(!reserved(p), "{p}");
        }
    }

    #[test]
    fn a_name_with_an_extension_is_a_file_request() {
        assert!(names_a_file("logo.png"));
        assert!(names_a_file("assets/app-1234.js"));
        assert!(!names_a_file("chat/5f0c"));
        assert!(!names_a_file("share/abc"));
        assert!(!names_a_file(".well-known"));
        assert!(!names_a_file(""));
    }
}
