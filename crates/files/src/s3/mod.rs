//! The scale-out blob store: objects in an S3-compatible bucket (AWS S3, MinIO, R2, …),
//! spoken to directly over HTTP with SigV4-signed requests.
//!
//! Uploads stream from the staged temp file with `Content-Length` and the SHA-256 the
//! staging step computed as `x-amz-content-sha256`, so the signature covers the payload and
//! the store refuses bytes that changed on the way. Downloads stream the response body.

pub mod sigv4;

use crate::key::validate_key;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use ironhand_core::ports::blob_store::{BlobError, BlobStore, ByteStream};
use reqwest::{Body, Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use sigv4::{EMPTY_SHA256, SignInput, Signer, amz_date, uri_encode_path};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;
use url::Url;

/// Bytes per chunk read from disk for an upload.
const CHUNK: usize = 64 * 1024;
/// Most of an error response read to find its `<Code>`.
const MAX_ERROR_BODY: usize = 8 * 1024;
/// Key written and removed by [`BlobStore::check`], under the prefix.
const PROBE_KEY: &str = "readiness-probe";

#[derive(Debug, Clone)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`, … (no bucket in it).
    pub endpoint: Url,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    /// Never printed: `SecretString`'s `Debug` is redacted.
    pub secret_access_key: SecretString,
    /// `endpoint/bucket/key` (MinIO and most self-hosted stores) instead of
    /// `bucket.endpoint/key` (AWS's default).
    pub path_style: bool,
    /// Folder inside the bucket under which all keys go, e.g. `ironhand`.
    pub prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct S3BlobStore {
    config: S3Config,
    client: reqwest::Client,
}

/// Which call failed, for log messages.
#[derive(Debug, Clone, Copy)]
enum Op {
    Put,
    Get,
    Delete,
    Check,
}

impl S3BlobStore {
    pub fn new(config: S3Config) -> Result<Self, BlobError> {
        if !matches!(config.endpoint.scheme(), "http" | "https")
            || config.endpoint.host_str().is_none()
        {
            return Err(BlobError::Unavailable(
                "S3 endpoint must be an http(s) URL with a host".into(),
            ));
        }
        if config.bucket.is_empty() || config.bucket.contains('/') {
            return Err(BlobError::Unavailable(
                "S3 bucket name is empty or contains '/'".into(),
            ));
        }
        if let Some(prefix) = &config.prefix {
            let trimmed = prefix.trim_matches('/');
            if !trimmed.is_empty() {
                validate_key(trimmed)
                    .map_err(|_| BlobError::Unavailable("S3 prefix must use [a-z0-9/_-]".into()))?;
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Per read, not per request: a large download may take long, a stalled one may not.
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BlobError::Unavailable(format!("S3 client: {e}")))?;
        Ok(Self { config, client })
    }

    /// The object's name in the bucket: the prefix, then the key.
    fn object_name(&self, key: &str) -> String {
        match self.config.prefix.as_deref().map(|p| p.trim_matches('/')) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}/{key}"),
            _ => key.to_string(),
        }
    }

    /// URL and `Host` value for an object.
    fn locate(&self, object: &str) -> Result<(Url, String), BlobError> {
        let endpoint = &self.config.endpoint;
        let base_path = endpoint.path().trim_end_matches('/');
        let host_name = endpoint.host_str().unwrap_or_default();
        let (host_name, path) = if self.config.path_style {
            let path = format!("{base_path}/{}/{object}", self.config.bucket);
            (host_name.to_string(), path)
        } else {
            let path = format!("{base_path}/{object}");
            (format!("{}.{host_name}", self.config.bucket), path)
        };
        let host = match endpoint.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name,
        };
        let canonical_path = uri_encode_path(&path);
        let url = Url::parse(&format!("{}://{host}{canonical_path}", endpoint.scheme()))
            .map_err(|e| BlobError::Unavailable(format!("S3 URL: {e}")))?;
        Ok((url, host))
    }

    /// Signs and sends one request. `headers` are signed too (lower-case names).
    async fn send(
        &self,
        method: Method,
        object: &str,
        headers: &[(&str, &str)],
        payload_sha256: &str,
        body: Option<(Body, u64)>,
        op: Op,
    ) -> Result<Response, BlobError> {
        let (url, host) = self.locate(object)?;
        let date = amz_date(OffsetDateTime::now_utc());
        let mut signed: Vec<(&str, &str)> = vec![
            ("host", host.as_str()),
            ("x-amz-content-sha256", payload_sha256),
            ("x-amz-date", date.as_str()),
        ];
        signed.extend_from_slice(headers);
        let signer = Signer {
            access_key_id: &self.config.access_key_id,
            secret_access_key: self.config.secret_access_key.expose_secret(),
            region: &self.config.region,
        };
        let authorization = signer.authorization(
            &date,
            &SignInput {
                method: method.as_str(),
                canonical_uri: url.path(),
                query: &[],
                headers: &signed,
                payload_sha256,
            },
        );
        let mut request = self
            .client
            .request(method, url)
            .header("authorization", authorization);
        for (name, value) in &signed {
            request = request.header(*name, *value);
        }
        if let Some((body, length)) = body {
            request = request.header("content-length", length).body(body);
        }
        request.send().await.map_err(|e| {
            BlobError::Unavailable(format!("S3 {op:?}: {}", with_causes(&e.without_url())))
        })
    }

    async fn put(
        &self,
        key: &str,
        body: Body,
        length: u64,
        sha256_hex: &str,
    ) -> Result<(), BlobError> {
        validate_key(key)?;
        let sha = checked_sha256(sha256_hex)?;
        let name = self.object_name(key);
        let response = self
            .send(Method::PUT, &name, &[], &sha, Some((body, length)), Op::Put)
            .await?;
        expect_success(response, Op::Put).await.map(|_| ())
    }
}

/// reqwest's `Display` stops at "error sending request"; the causes say why.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The payload hash goes into a signed header: accept only 64 hex digits.
fn checked_sha256(sha256_hex: &str) -> Result<String, BlobError> {
    if sha256_hex.len() == 64 && sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256_hex.to_ascii_lowercase())
    } else {
        Err(BlobError::Unavailable(
            "S3 put: the SHA-256 is not 64 hex digits".into(),
        ))
    }
}

/// Passes a 2xx response through; turns anything else into a short error naming the S3
/// error code (a missing key becomes `NotFound`).
async fn expect_success(response: Response, op: Op) -> Result<Response, BlobError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code = error_code(response).await;
    if status == StatusCode::NOT_FOUND
        && matches!(op, Op::Get)
        && code.as_deref() != Some("NoSuchBucket")
    {
        return Err(BlobError::NotFound);
    }
    Err(BlobError::Unavailable(match code {
        Some(code) => format!("S3 {op:?}: HTTP {} {code}", status.as_u16()),
        None => format!("S3 {op:?}: HTTP {}", status.as_u16()),
    }))
}

/// The `<Code>` of an S3 XML error body, read from at most the first 8 KiB.
async fn error_code(response: Response) -> Option<String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    let code = &text[start..end];
    // Only a short identifier goes into the log, never arbitrary server text.
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
        .then(|| code.to_string())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_file(
        &self,
        key: &str,
        source: &Path,
        size: u64,
        sha256_hex: &str,
    ) -> Result<(), BlobError> {
        validate_key(key)?;
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| BlobError::Unavailable(format!("S3 put: opening source: {e}")))?;
        // `take` keeps the body to the announced length even if the file grew meanwhile.
        let body = Body::wrap_stream(ReaderStream::with_capacity(file.take(size), CHUNK));
        self.put(key, body, size, sha256_hex).await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes, sha256_hex: &str) -> Result<(), BlobError> {
        let length = bytes.len() as u64;
        self.put(key, Body::from(bytes), length, sha256_hex).await
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream, BlobError> {
        validate_key(key)?;
        let range_header = range.map(|(start, end)| format!("bytes={start}-{end}"));
        let headers: Vec<(&str, &str)> =
            range_header.iter().map(|r| ("range", r.as_str())).collect();
        let name = self.object_name(key);
        let response = self
            .send(Method::GET, &name, &headers, EMPTY_SHA256, None, Op::Get)
            .await?;
        let response = expect_success(response, Op::Get).await?;
        if range.is_some() && response.status() != StatusCode::PARTIAL_CONTENT {
            // A store that ignored the Range header would hand back the wrong bytes.
            return Err(BlobError::Unavailable(format!(
                "S3 Get: asked for a range, got HTTP {}",
                response.status().as_u16()
            )));
        }
        Ok(Box::pin(
            response
                .bytes_stream()
                .map_err(|e| std::io::Error::other(e.without_url())),
        ))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let name = self.object_name(key);
        let response = self
            .send(Method::DELETE, &name, &[], EMPTY_SHA256, None, Op::Delete)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            // Some stores answer 404 for a missing key; S3 answers 204. Both mean "gone".
            return match error_code(response).await.as_deref() {
                Some("NoSuchBucket") => Err(BlobError::Unavailable(
                    "S3 Delete: HTTP 404 NoSuchBucket".into(),
                )),
                _ => Ok(()),
            };
        }
        expect_success(response, Op::Delete).await.map(|_| ())
    }

    /// Writes and removes a probe object: it proves exactly the permissions the store uses
    /// (PutObject, DeleteObject), which a HeadBucket would not (it needs ListBucket).
    async fn check(&self) -> Result<(), BlobError> {
        let name = self.object_name(PROBE_KEY);
        let body = Bytes::from_static(b"ok");
        let sha = "2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df";
        let response = self
            .send(
                Method::PUT,
                &name,
                &[],
                sha,
                Some((Body::from(body), 2)),
                Op::Check,
            )
            .await?;
        expect_success(response, Op::Check).await?;
        let response = self
            .send(Method::DELETE, &name, &[], EMPTY_SHA256, None, Op::Check)
            .await?;
        expect_success(response, Op::Check).await.map(|_| ())
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}
