//! Cookie mode (`auth.refresh_cookie`): the refresh token also travels in an HttpOnly,
//! SameSite=Strict cookie scoped to /api/v1/auth; requests that rely on it must pass a CSRF
//! check (same-origin signals or a double-submit token). Also the device cookie, in every
//! mode, which marks a client as a known device of an account at sign-in.

use axum::http::{HeaderMap, HeaderValue, header};
use ironhand_core::auth::tokens::secure_eq;
use std::time::Duration;

pub const REFRESH_COOKIE: &str = "ironhand_refresh";
pub const CSRF_COOKIE: &str = "ironhand_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
const DEVICE_COOKIE_PREFIX: &str = "ironhand_device_";

/// The device cookie of one account, named after (a part of) the hash of its email so a
/// browser can be a known device of several accounts.
pub fn device_cookie_name(email_key: &str) -> String {
    let part = email_key.get(..16).unwrap_or(email_key);
    format!("{DEVICE_COOKIE_PREFIX}{part}")
}

/// Sets a device cookie: sent back only to the login route, never readable by scripts.
pub fn set_device(headers: &mut HeaderMap, name: &str, token: &str, lifetime: Duration) {
    let cookie = format!(
        "{name}={token}; Path=/api/v1/auth/login; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        lifetime.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Adds the refresh cookie and a fresh double-submit CSRF cookie to `headers`.
pub fn set(headers: &mut HeaderMap, refresh_token: &str, lifetime: Duration) {
    let max_age = lifetime.as_secs();
    let mut csrf = [0u8; 16];
    rand::fill(&mut csrf);
    let cookies = [
        format!(
            "{REFRESH_COOKIE}={refresh_token}; Path=/api/v1/auth; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
        ),
        format!(
            "{CSRF_COOKIE}={}; Path=/; Max-Age={max_age}; Secure; SameSite=Strict",
            hex::encode(csrf)
        ),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

pub fn clear(headers: &mut HeaderMap) {
    for c in [
        format!(
            "{REFRESH_COOKIE}=; Path=/api/v1/auth; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
        ),
        format!("{CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Strict"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// True when a cookie-authenticated request provably comes from our own pages.
pub fn csrf_ok(headers: &HeaderMap, public_origin: &str) -> bool {
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let (Some(sent), Some(cookie)) = (sent, read(headers, CSRF_COOKIE))
        && secure_eq(sent, &cookie)
    {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return origin.trim_end_matches('/') == public_origin;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn csrf_signals() {
        let origin = "https://app.example.com";
        assert!(csrf_ok(
            &headers(&[("origin", "https://app.example.com")]),
            origin
        ));
        assert!(!csrf_ok(
            &headers(&[("origin", "https://evil.example")]),
            origin
        ));
        assert!(csrf_ok(
            &headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://evil.example")
            ]),
            origin
        ));
        assert!(!csrf_ok(
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://app.example.com")
            ]),
            origin
        ));
        assert!(csrf_ok(
            &headers(&[
                ("cookie", "a=b; ironhand_csrf=abc"),
                ("x-csrf-token", "abc")
            ]),
            origin
        ));
        assert!(!csrf_ok(
            &headers(&[("cookie", "ironhand_csrf=abc"), ("x-csrf-token", "abd")]),
            origin
        ));
        assert!(!csrf_ok(&headers(&[]), origin));
    }

    #[test]
    fn reads_cookies() {
        let h = headers(&[("cookie", "x=1; ironhand_refresh=tok; y=2")]);
        assert_eq!(read(&h, REFRESH_COOKIE).as_deref(), Some("tok"));
        assert_eq!(read(&h, "missing"), None);
    }
}
