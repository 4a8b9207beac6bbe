//! Extractors: validated JSON bodies and queries (failures enveloped, never the framework's
//! default shape), who is asking, and the client's address.

use super::error::ApiError;
use super::json_body::{Body, BodyError};
use crate::app::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ironhand_core::auth::Authenticated;
use ironhand_core::{DomainError, FieldError};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A JSON body, required. Content-Type must be JSON (so a plain HTML form cannot post here).
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent: an empty body means `T::default()`. A body that is
/// there must be a JSON object, like `ApiJson`'s (`null` too is refused).
pub struct OptionalJson<T>(pub T);

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "The request body is larger than the limit of {limit} bytes."
    ))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn is_json(headers: &HeaderMap) -> bool {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings.server.max_body_bytes;
    if content_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            ApiError::bad_request("The request body could not be read.")
        }
    })
}

/// Parses JSON into `T`, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let syntax = |e: &serde_json::Error| {
        ApiError::bad_request(format!(
            "The request body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        ))
    };
    // Syntax first, so that `{} {}` is "not JSON" rather than "missing field".
    let mut json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| syntax(&e))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation(
            "body",
            "The request body must be a JSON object.",
        ));
    }
    refuse_nul(bytes)?;
    integral_floats_as_integers(&mut json);
    serde_path_to_error::deserialize::<_, T>(Body(json)).map_err(|e| {
        // The path of the value at fault; `.` (or nothing) is the body itself.
        let path = e.path().to_string();
        let at_top = path == "." || path.is_empty();
        let field_error = |field: String, message: String| {
            ApiError::Domain(DomainError::Validation(vec![FieldError::new(
                field, message,
            )]))
        };
        match e.into_inner() {
            // A field of the body is named; one of a nested object is reported on the object.
            BodyError::MissingField(name) => {
                let field = if at_top { name.to_string() } else { path };
                let message = format!("{field} is required.");
                field_error(field, message)
            }
            BodyError::Json(inner) => match inner.classify() {
                Category::Data => {
                    let field = if at_top { "body".to_string() } else { path };
                    let message = format!("{field}: {}.", without_position(&inner));
                    field_error(field, message)
                }
                Category::Syntax | Category::Eof | Category::Io => syntax(&inner),
            },
        }
    })
}

/// serde_json's message without the position it appends to it: read from a parsed value,
/// only a map key (parsed from its text) has one, which says nothing about the body.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.line() == 0 {
        return text;
    }
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_string(),
        None => text,
    }
}

/// JSON Schema (so the OpenAPI document) counts `7.0` as an integer, serde does not: a
/// number without a fraction is read as an integer wherever it stands.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && (i64::MIN as f64..i64::MAX as f64).contains(&f)
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Text with a NUL character cannot be stored (`ironhand_core::text`): a body holding one
/// (JSON can only carry it escaped, as `\u0000`) is refused with the field that holds it.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let field = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| ironhand_core::text::find_nul(&value));
    match field {
        Some(field) => Err(ApiError::validation(
            &field,
            format!("{field} must not contain NUL characters (\\u0000)."),
        )),
        None => Ok(()),
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "Send the request body as JSON with Content-Type: application/json.".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "The request body is empty; this route needs a JSON object.",
            ));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let declared_json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.trim_ascii().is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        if !declared_json {
            return Err(ApiError::UnsupportedMediaType(
                "Send the request body as JSON with Content-Type: application/json.".into(),
            ));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// A query string parsed into `T`; failures are enveloped 422s.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // `%00` decodes to a NUL character, which no stored or searched text may hold.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::validation(
                "query",
                "The query string must not contain NUL characters (%00).",
            ));
        }
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rejection| {
                // What the query's deserializer said (the rejection's cause), without the
                // framework's own sentence before it.
                let message = std::error::Error::source(&rejection)
                    .map_or_else(|| rejection.body_text(), ToString::to_string);
                ApiError::validation(
                    "query",
                    format!("The query string is not valid: {message}."),
                )
            })
    }
}

/// Path parameters, typed (`ApiPath<SessionId>`); anything that does not parse (bad UTF-8,
/// not an id) is a 404 in the resource's words, since no such resource can exist.
pub struct ApiPath<T>(pub T);

/// What a path parameter names, for the 404 of one that cannot exist.
pub trait PathParam {
    const NOT_FOUND: &'static str = "Not found.";
}

impl PathParam for String {}
impl PathParam for ironhand_core::SessionId {
    const NOT_FOUND: &'static str = "Session not found";
}
impl PathParam for ironhand_core::FileId {
    const NOT_FOUND: &'static str = "File not found.";
}
impl PathParam for ironhand_core::UserId {
    const NOT_FOUND: &'static str = "User not found.";
}

impl<T: DeserializeOwned + Send + PathParam, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|_| ApiError::Domain(DomainError::NotFound(T::NOT_FOUND.into())))
    }
}

/// A signed-in, active user whose token is live. Anything less is 401.
pub struct AuthUser(pub Authenticated);

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or("");
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Domain(DomainError::Unauthorized(
            "The Authorization header must be `Bearer <access token>`.".into(),
        ))),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        let who = state.auth.authenticate(token).await?;
        tracing::Span::current().record("user_id", tracing::field::display(who.user.id));
        Ok(AuthUser(who))
    }
}

/// Who is asking where signing in is optional (shared sessions): `None` without an
/// `Authorization` header; a header with a bad token is still a 401.
pub struct MaybeAuthUser(pub Option<Authenticated>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(MaybeAuthUser(None));
        }
        let AuthUser(who) = AuthUser::from_request_parts(parts, state).await?;
        Ok(MaybeAuthUser(Some(who)))
    }
}

/// A signed-in admin; other signed-in users get 403.
pub struct AdminUser(pub Authenticated);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser(who) = AuthUser::from_request_parts(parts, state).await?;
        if !who.user.is_admin() {
            return Err(ApiError::forbidden("This needs an administrator account."));
        }
        Ok(AdminUser(who))
    }
}

/// The client's address: the socket peer, or the `X-Forwarded-For` entry written by the
/// outermost of `server.trusted_proxies` proxies. Never a value the client alone controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_proxies: usize) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if trusted_proxies == 0 {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // Fewer entries than trusted proxies: the request skipped our proxies, so every entry
    // may be the client's own invention.
    if hops.len() < trusted_proxies {
        return peer;
    }
    hops[hops.len() - trusted_proxies].parse().unwrap_or(peer)
}

impl ClientIp {
    /// The limiter key for this client: IPv4 addresses as they are, IPv6 by their /64 (one
    /// subscriber usually holds a whole /64 and could otherwise rotate through it).
    pub fn limit_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("ip:{v4}"),
                None => {
                    let s = v6.segments();
                    format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(client_ip(
            &parts.headers,
            peer,
            state.settings.server.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        age: u8,
    }

    fn field_of(e: ApiError) -> (String, String) {
        match e {
            ApiError::Domain(DomainError::Validation(f)) => {
                (f[0].field.clone(), f[0].message.clone())
            }
            other => panic!("expected validation, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(parse_json::<Login>(br#"{"age": 3}"#).expect_err("err")).0,
            "email"
        );
        let (field, msg) =
            field_of(parse_json::<Login>(br#"{"email": 5, "age": 3}"#).expect_err("err"));
        assert_eq!(field, "email");
        assert!(msg.contains("invalid type"), "{msg}");
        assert_eq!(
            field_of(parse_json::<Login>(br#"[1]"#).expect_err("err")).0,
            "body"
        );
        assert!(matches!(
            parse_json::<Login>(br#"{"email": "#),
            Err(ApiError::Domain(DomainError::BadRequest(_)))
        ));
        assert!(matches!(
            parse_json::<Login>(br#"{"email": "a", "age": 1} trailing"#),
            Err(ApiError::Domain(DomainError::BadRequest(_)))
        ));
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        login: Option<Login>,
        counts: Option<std::collections::BTreeMap<u16, bool>>,
    }

    #[test]
    fn json_errors_are_worded_by_kind_and_path() {
        let refusal = |body: &[u8]| field_of(parse_json::<Nested>(body).expect_err("refused"));
        // A missing field of a nested object is reported on the object.
        assert_eq!(
            refusal(br#"{"login": {"age": 3}}"#),
            ("login".to_string(), "login is required.".to_string())
        );
        assert_eq!(
            refusal(br#"{"login": {"email": 5, "age": 3}}"#),
            (
                "login.email".to_string(),
                "login.email: invalid type: integer `5`, expected a string.".to_string()
            )
        );
        // A map key is read from its text: its error's position is not the body's.
        assert_eq!(
            refusal(br#"{"counts": {"-2": true}}"#),
            (
                "counts.-2".to_string(),
                "counts.-2: invalid value: integer `-2`, expected u16.".to_string()
            )
        );
        // The client's own text is quoted whole, whatever it says.
        assert_eq!(
            field_of(
                parse_json::<Login>(br#"{"email": "a", "age": "3 at line 1 column 2"}"#)
                    .expect_err("refused")
            )
            .1,
            "age: invalid type: string \"3 at line 1 column 2\", expected u8."
        );
    }

    #[tokio::test]
    async fn query_errors_quote_the_deserializer_alone() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Page {
            limit: Option<i64>,
        }
        let request = axum::http::Request::builder()
            .uri("/sessions?limit=lots")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        let refused = ApiQuery::<Page>::from_request_parts(&mut parts, &())
            .await
            .err()
            .expect("refused");
        assert_eq!(
            field_of(refused),
            (
                "query".to_string(),
                "The query string is not valid: limit: invalid digit found in string.".to_string()
            )
        );
    }

    #[test]
    fn integral_floats_are_integers() {
        assert_eq!(
            parse_json::<Login>(br#"{"email": "a", "age": 7.0}"#)
                .expect("7.0 is an integer")
                .age,
            7
        );
        assert_eq!(
            field_of(parse_json::<Login>(br#"{"email": "a", "age": 7.5}"#).expect_err("err")).0,
            "age"
        );
    }

    #[test]
    fn limiter_keys_group_ipv6_by_64() {
        let key = |s: &str| ClientIp(s.parse().expect("ip")).limit_key();
        assert_eq!(key("1.2.3.4"), "ip:1.2.3.4");
        assert_eq!(key("::ffff:1.2.3.4"), "ip:1.2.3.4");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn forwarded_for_is_trusted_only_as_configured() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(client_ip(&h, Some(peer), 0), peer);
        assert_eq!(
            client_ip(&h, Some(peer), 1),
            "10.0.0.2".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_ip(&h, Some(peer), 2),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_ip(&h, Some(peer), 3),
            "6.6.6.6".parse::<IpAddr>().expect("ip")
        );
        // More trusted proxies than entries: the entries are not trustworthy.
        assert_eq!(client_ip(&h, Some(peer), 9), peer);
        h.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(&h, Some(peer), 1), peer);
    }
}
