//! `/files…`: upload (checked while it streams), info, download (streamed, `Range`, always
//! as an attachment), signed URLs and delete. Not yours is the same 404 as missing; readers
//! of a shared session may download that session's files.

use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, ClientIp, MaybeAuthUser};
use crate::routes::{ErrorEnvelope, FileInfo, NullEnvelope};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ironhand_core::DomainError;
use ironhand_core::files::{StagedUpload, StoredFile};
use ironhand_core::ids::FileId;
use ironhand_files::sniff::{AllowList, classify, may_render_inline, sanitize_filename};
use ironhand_files::staging::{Staging, StagingError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Room for the multipart framing around the file's bytes.
const MULTIPART_SLACK: u64 = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        // The upload counts its own bytes while they stream (and refuses early).
        .layer(DefaultBodyLimit::disable())
        .merge(
            OpenApiRouter::new()
                .routes(routes!(info))
                .routes(routes!(download))
                .routes(routes!(signed_download, delete_file))
                .routes(routes!(signed_url)),
        )
}

fn too_large(message: String) -> ApiError {
    DomainError::TooLarge(message).into()
}

fn allow_list(state: &AppState) -> AllowList {
    if state.settings.files.allowed_types.is_empty() {
        AllowList::default()
    } else {
        AllowList::new(state.settings.files.allowed_types.iter())
    }
}

#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart body
struct UploadForm {
    /// The file's bytes (its name is taken from the part's filename).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/files", tag = "files", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = Envelope<FileInfo>),
              (status = 413, body = ErrorEnvelope, description = "over the size limit or the storage quota"),
              (status = 415, body = ErrorEnvelope, description = "type not allowed, or name and content disagree"),
              (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn upload(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult {
    let user = who.user.id;
    state
        .limit("upload", state.quotas.upload, &[&user.to_string()])
        .await?;
    let (allowance, limit_message) = state.files.upload_allowance(user).await?;
    // A declared length over the limit is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if allowance == 0 || declared.is_some_and(|len| len > allowance.saturating_add(MULTIPART_SLACK))
    {
        return Err(too_large(limit_message));
    }
    let mut multipart = multipart.map_err(|_| {
        ApiError::UnsupportedMediaType(
            "Send the file as multipart/form-data with a part named `file`.".into(),
        )
    })?;
    let mut other_bytes = 0u64;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit_message.clone())
            } else {
                ApiError::bad_request("The multipart body is malformed.")
            }
        })?;
        let Some(mut field) = field else {
            return Err(ApiError::validation(
                "file",
                "a part named `file` is required",
            ));
        };
        if field.name() != Some("file") {
            // Other parts are read and dropped, within a small budget.
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|_| ApiError::bad_request("The multipart body is malformed."))?
            {
                other_bytes += chunk.len() as u64;
                if other_bytes > MULTIPART_SLACK {
                    return Err(too_large(limit_message));
                }
            }
            continue;
        }
        let filename = sanitize_filename(field.file_name().unwrap_or("file"));
        let mut staging = Staging::new(&crate::services::staging_dir(&state.settings), allowance)
            .await
            .map_err(|e| DomainError::internal(format!("staging an upload: {e}")))?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|_| ApiError::bad_request("The upload was interrupted or malformed."))?
        {
            match staging.write(&chunk).await {
                Ok(()) => {}
                Err(StagingError::TooLarge { .. }) => {
                    metrics::counter!("ironhand_uploads_refused_total", "reason" => "too_large")
                        .increment(1);
                    return Err(too_large(limit_message));
                }
                Err(e) => {
                    return Err(DomainError::internal(format!("staging an upload: {e}")).into());
                }
            }
        }
        let staged = staging
            .finish()
            .await
            .map_err(|e| DomainError::internal(format!("staging an upload: {e}")))?;
        let sniffed =
            classify(&filename, &staged.head, &allow_list(&state)).map_err(|refusal| {
                metrics::counter!("ironhand_uploads_refused_total", "reason" => "type")
                    .increment(1);
                DomainError::UnsupportedType(refusal.to_string())
            })?;
        let upload = StagedUpload {
            path: staged.path().to_path_buf(),
            size: staged.size,
            sha256: staged.sha256_hex.clone(),
            filename,
            content_type: sniffed.content_type,
        };
        let file = state.files.store_upload(user, &upload).await?;
        // `staged` (the temp file) is removed when dropped here.
        drop(staged);
        return Ok(ok(state.files.info_with_url(&file)));
    }
}

#[utoipa::path(get, path = "/files/{id}/info", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path, description = "file id")),
    responses((status = 200, body = Envelope<FileInfo>), (status = 404, body = ErrorEnvelope)))]
async fn info(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<FileId>,
) -> ApiResult {
    let file = state.files.owned(who.user.id, id).await?;
    Ok(ok(state.files.info_with_url(&file)))
}

#[utoipa::path(get, path = "/files/{id}/download", tag = "files", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "file id")),
    responses((status = 200, description = "the bytes, as an attachment: the file's own type, or application/octet-stream for anything a browser could run", content_type = "*/*", body = Value),
              (status = 206, description = "the requested range"),
              (status = 404, body = ErrorEnvelope), (status = 416, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope, description = "a shared session's reader over the shared-view limit")))]
async fn download(
    State(state): State<AppState>,
    ip: ClientIp,
    MaybeAuthUser(who): MaybeAuthUser,
    ApiPath(id): ApiPath<FileId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = who.map(|w| w.user.id);
    let file = match viewer {
        Some(user) => state.files.readable(Some(user), id).await,
        None => Err(DomainError::NotFound(String::new())),
    };
    let file = match file {
        Ok(file) => file,
        // Not the owner: a shared session's reader, rate limited like shared views.
        Err(_) => {
            state
                .limit("shared_view", state.quotas.shared_view, &[&ip.limit_key()])
                .await?;
            state.files.readable(None, id).await?
        }
    };
    send_file(&state, &file, &headers).await
}

/// Both come from `signed-url`; without them (or with others) the answer is a 404.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SignedQuery {
    /// Unix seconds after which the URL stops working.
    #[param(required = true, value_type = i64)]
    expires: Option<String>,
    #[param(required = true, value_type = String)]
    signature: Option<String>,
}

#[utoipa::path(get, path = "/files/{id}", tag = "files",
    params(("id" = String, Path, description = "file id"), SignedQuery),
    responses((status = 200, description = "the bytes, as an attachment: the file's own type, or application/octet-stream for anything a browser could run", content_type = "*/*", body = Value),
              (status = 404, body = ErrorEnvelope, description = "unknown file, or a signature that does not hold")))]
async fn signed_download(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<FileId>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Not rate limited: the signature is the permission, and the web app loads every
    // attachment of a conversation through one.
    let expires = query.expires.as_deref().and_then(|e| e.parse::<i64>().ok());
    let (Some(expires), Some(signature)) = (expires, query.signature.as_deref()) else {
        return Err(DomainError::NotFound(
            "This link is not valid or has expired. Ask for a new one.".into(),
        )
        .into());
    };
    let file = state.files.signed(id, expires, signature).await?;
    send_file(&state, &file, &headers).await
}

#[utoipa::path(delete, path = "/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path, description = "file id")),
    responses((status = 200, body = NullEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_file(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<FileId>,
) -> ApiResult {
    state.files.delete(who.user.id, id).await?;
    Ok(ok(Value::Null))
}

#[derive(Debug, Deserialize, ToSchema)]
struct SignedUrlRequest {
    /// How long the URL works, 1 to 15 minutes (15 when absent).
    #[schema(minimum = 1, maximum = 15)]
    expire_minutes: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SignedUrl {
    signed_url: String,
    /// Seconds.
    expires_in: i64,
}

#[utoipa::path(post, path = "/files/{id}/signed-url", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path, description = "file id")), request_body = SignedUrlRequest,
    responses((status = 200, body = Envelope<SignedUrl>), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn signed_url(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<FileId>,
    ApiJson(body): ApiJson<SignedUrlRequest>,
) -> ApiResult {
    let minutes = body.expire_minutes.unwrap_or(15);
    if !(1..=15).contains(&minutes) {
        return Err(ApiError::validation(
            "expire_minutes",
            "expire_minutes must be 1 to 15",
        ));
    }
    let file = state.files.owned(who.user.id, id).await?;
    let expires_in = minutes * 60;
    Ok(ok(SignedUrl {
        signed_url: state.files.signed_url(&file, expires_in),
        expires_in,
    }))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`: `Ok(None)` for no (or an
/// unsupported multi-) range, `Err` when it cannot be satisfied.
fn parse_range(header: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(raw) = header.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let n: u64 = end.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = start.parse().map_err(|_| ())?;
        let end = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
fn content_disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Types a browser would execute or parse as a document with scripts.
fn runnable(content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim();
    !may_render_inline(base)
        && (base.contains("html")
            || base.contains("xml")
            || base.contains("javascript")
            || base.contains("ecmascript")
            || base == "image/svg+xml"
            || base == "application/pdf")
}

/// Streams the file (or the requested range) as a download that never renders inline.
async fn send_file(
    state: &AppState,
    file: &StoredFile,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let size = u64::try_from(file.size).unwrap_or(0);
    let range = match parse_range(headers.get(header::RANGE), size) {
        Ok(range) => range,
        Err(()) => {
            let body = serde_json::json!({"code": 416, "msg": format!("The requested range is outside the file's {size} bytes."), "data": null});
            let mut response =
                (StatusCode::RANGE_NOT_SATISFIABLE, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let stream = state.files.open(file, range).await?;
    let (status, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, end - start + 1),
        None => (StatusCode::OK, size),
    };
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    // Anything a browser could run is sent as opaque bytes.
    let content_type = if runnable(&file.content_type) {
        "application/octet-stream".to_string()
    } else if file.content_type.starts_with("text/") {
        format!("{}; charset=utf-8", file.content_type)
    } else {
        file.content_type.clone()
    };
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&file.filename),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", file.sha256)) {
        h.insert(header::ETAG, v);
    }
    if let Some((start, end)) = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_against_the_size() {
        let h = |s: &str| HeaderValue::from_str(s).expect("header");
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some(&h("bytes=0-0")), 10), Ok(Some((0, 0))));
        assert_eq!(parse_range(Some(&h("bytes=2-")), 10), Ok(Some((2, 9))));
        assert_eq!(parse_range(Some(&h("bytes=-3")), 10), Ok(Some((7, 9))));
        assert_eq!(parse_range(Some(&h("bytes=-30")), 10), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some(&h("bytes=5-100")), 10), Ok(Some((5, 9))));
        assert_eq!(parse_range(Some(&h("bytes=0-1,4-5")), 10), Ok(None));
        assert_eq!(parse_range(Some(&h("items=0-1")), 10), Ok(None));
        assert_eq!(parse_range(Some(&h("bytes=10-")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=5-2")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=x-2")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=-0")), 10), Err(()));
        assert_eq!(parse_range(Some(&h("bytes=0-")), 0), Err(()));
    }

    #[test]
    fn names_are_quoted_safely_in_the_disposition() {
        let v = content_disposition("résumé \"final\".pdf");
        let s = v.to_str().expect("ascii");
        assert!(
            s.starts_with("attachment; filename=\"r_sum_ _final_.pdf\""),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"),
            "{s}"
        );
    }
}
