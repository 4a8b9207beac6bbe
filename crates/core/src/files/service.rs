//! The rules of files: who may read what, the storage quota, signed URLs, and the copies
//! between the file store and a session's sandbox.

use super::{FileSource, QuotaCheck, StoredFile, UPLOAD_DIR, UrlSigner};
use crate::error::DomainError;
use crate::ids::{FileId, SessionId, UserId};
use crate::ports::sandbox::{SANDBOX_HOME, SandboxError};
use crate::ports::{BlobError, BlobStore, ByteStream, Sandbox, Store};
use bytes::Bytes;
use futures::TryStreamExt as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;

/// Largest browser screenshot kept (a viewport JPEG is far smaller; this bounds a bad one).
pub const MAX_SCREENSHOT_BYTES: usize = 4 * 1024 * 1024;

/// Why a browser screenshot was not kept: a sentence for the log (the tool event then shows
/// no screenshot).
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotRefused {
    #[error("The screenshot was not kept: it is not a JPEG image.")]
    NotJpeg,
    #[error(
        "The screenshot was not kept: it is larger than {}.",
        mib(MAX_SCREENSHOT_BYTES as u64)
    )]
    TooLarge,
    #[error("The screenshot was not kept: file storage is unavailable.")]
    Storage(#[source] BlobError),
    /// The record was refused (the storage quota, most often).
    #[error("The screenshot was not kept. {0}")]
    Record(#[source] DomainError),
}

/// Why a file of the agent (copied out of the sandbox, or made by a connector) was not
/// stored: a sentence for the model or the log.
#[derive(Debug, thiserror::Error)]
pub enum AgentFileError {
    #[error("it is larger than the {0} bytes a file of the agent may have")]
    TooLarge(u64),
    /// The sandbox could not hand the file over (no such file, over the size limit…).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("file storage is unavailable")]
    Storage(#[source] BlobError),
    /// The record was refused (the storage quota, most often).
    #[error(transparent)]
    Record(#[from] DomainError),
}

/// How the upload checks (`ironhand-files`) name and type a file the agent produced: the
/// same sanitiser and sniffer as uploads, handed in by the server.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    /// A safe display name from any path or client-given name.
    pub sanitize: fn(&str) -> String,
    /// The content type from the name and the first bytes.
    pub guess_type: fn(&str, &[u8]) -> String,
}

#[derive(Debug, Clone)]
pub struct FileSettings {
    /// Largest upload accepted (bytes).
    pub max_upload_bytes: u64,
    /// Bytes a user's files may take in all.
    pub quota_bytes: u64,
    /// Largest file copied out of a sandbox.
    pub max_agent_file_bytes: u64,
    /// How long the signed URLs in `FileInfo.file_url` live (seconds).
    pub url_ttl_secs: i64,
    /// Prefix of download paths, e.g. `/api/v1/files`.
    pub path_prefix: String,
    /// Origin put in front of signed paths (`https://ironhand.example`), or empty for
    /// same-origin relative URLs.
    pub public_origin: String,
}

/// An upload that passed the streaming checks: its bytes sit in a local temp file.
#[derive(Debug, Clone)]
pub struct StagedUpload {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
}

pub struct FileService {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    signer: UrlSigner,
    settings: FileSettings,
    naming: Naming,
}

fn not_found() -> DomainError {
    DomainError::NotFound("File not found.".into())
}

fn blob_error(error: BlobError) -> DomainError {
    match error {
        BlobError::NotFound => {
            tracing::error!("a file record has no stored bytes");
            DomainError::NotFound("The file's content is no longer available.".into())
        }
        other => {
            tracing::error!(error = %other, "file storage failed");
            DomainError::Unavailable("File storage is unavailable. Try again shortly.".into())
        }
    }
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{bytes} bytes")
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A fresh, opaque blob key: `<user>/<uuid>` (never derived from the file name).
fn new_key(user: UserId) -> String {
    format!("{}/{}", user.0.simple(), uuid::Uuid::now_v7().simple())
}

/// `screenshot-20260102-150405-123.jpg` (UTC, to the millisecond).
fn screenshot_name(at: OffsetDateTime) -> String {
    format!(
        "screenshot-{:04}{:02}{:02}-{:02}{:02}{:02}-{:03}.jpg",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

fn download_path(settings: &FileSettings, id: FileId) -> String {
    format!("{}/{id}", settings.path_prefix)
}

/// A screenshot is kept only as a JPEG (it starts FF D8 FF) of at most
/// [`MAX_SCREENSHOT_BYTES`].
fn check_screenshot(jpeg: &[u8]) -> Result<(), ScreenshotRefused> {
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(ScreenshotRefused::NotJpeg);
    }
    if jpeg.len() > MAX_SCREENSHOT_BYTES {
        return Err(ScreenshotRefused::TooLarge);
    }
    Ok(())
}

/// A URL that downloads file `id` without a token for `ttl_secs`.
fn download_url(signer: &UrlSigner, settings: &FileSettings, id: FileId, ttl_secs: i64) -> String {
    let path = download_path(settings, id);
    let expires = OffsetDateTime::now_utc().unix_timestamp() + ttl_secs;
    format!(
        "{}{path}?{}",
        settings.public_origin,
        signer.query(&path, expires)
    )
}

/// [`FileService::sign_event_data`] with the signer and settings handed in.
fn sign_event_files(signer: &UrlSigner, settings: &FileSettings, event: &str, data: &mut Value) {
    let url = |id| Value::String(download_url(signer, settings, id, settings.url_ttl_secs));
    match event {
        "message" => {
            let Some(attachments) = data.get_mut("attachments").and_then(Value::as_array_mut)
            else {
                return;
            };
            for attachment in attachments {
                let id = attachment
                    .get("file_id")
                    .and_then(Value::as_str)
                    .and_then(FileId::parse);
                if let (Some(id), Some(object)) = (id, attachment.as_object_mut()) {
                    object.insert("file_url".into(), url(id));
                }
            }
        }
        // Only the browser group shows screenshots; their ids are written by the agent from
        // `store_screenshot`, never taken from the model.
        "tool" if data.get("name").and_then(Value::as_str) == Some("browser") => {
            let Some(content) = data.get_mut("content").and_then(Value::as_object_mut) else {
                return;
            };
            let id = content
                .get("screenshot_file_id")
                .and_then(Value::as_str)
                .and_then(FileId::parse);
            if let Some(id) = id {
                content.insert("screenshot".into(), url(id));
            }
        }
        _ => {}
    }
}

/// `name` as a sandbox path: relative names are under the home directory.
/// One spelling per file (`a.txt`, `./a.txt`, `~/a.txt`, `/home/ubuntu//a.txt` are one
/// record).
pub fn sandbox_path(name: &str) -> String {
    let name = name.trim();
    let absolute = if name.starts_with('/') {
        name.to_string()
    } else if name == "~" {
        SANDBOX_HOME.to_string()
    } else if let Some(rest) = name.strip_prefix("~/") {
        format!("{SANDBOX_HOME}/{rest}")
    } else {
        format!("{SANDBOX_HOME}/{name}")
    };
    let parts: Vec<&str> = absolute
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl FileService {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        signer: UrlSigner,
        settings: FileSettings,
        naming: Naming,
    ) -> Self {
        Self {
            store,
            blobs,
            signer,
            settings,
            naming,
        }
    }

    pub fn settings(&self) -> &FileSettings {
        &self.settings
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// How many bytes the user may still upload in one file: the per-file limit, or less
    /// when the quota is nearly used up. The message names whichever limit applies.
    pub async fn upload_allowance(&self, user: UserId) -> Result<(u64, String), DomainError> {
        let used = u64::try_from(self.store.storage_used(user).await?).unwrap_or(0);
        let left = self.settings.quota_bytes.saturating_sub(used);
        if left < self.settings.max_upload_bytes {
            Ok((
                left,
                format!(
                    "Your files use {} of your {} storage quota; delete some files to upload more.",
                    mib(used),
                    mib(self.settings.quota_bytes)
                ),
            ))
        } else {
            Ok((
                self.settings.max_upload_bytes,
                format!(
                    "The file is too large: the limit is {}.",
                    mib(self.settings.max_upload_bytes)
                ),
            ))
        }
    }

    /// Stores a checked upload for `user` (its temp file is left for the caller to drop).
    pub async fn store_upload(
        &self,
        user: UserId,
        staged: &StagedUpload,
    ) -> Result<StoredFile, DomainError> {
        let file = StoredFile {
            id: FileId::new(),
            user_id: user,
            session_id: None,
            filename: staged.filename.clone(),
            content_type: staged.content_type.clone(),
            size: to_i64(staged.size),
            sha256: staged.sha256.clone(),
            storage_key: new_key(user),
            source: FileSource::Upload,
            sandbox_path: None,
            created_at: OffsetDateTime::now_utc(),
        };
        self.blobs
            .put_file(&file.storage_key, &staged.path, staged.size, &staged.sha256)
            .await
            .map_err(blob_error)?;
        self.record(file).await
    }

    /// Stores the record within the quota; on refusal the blob just written goes away.
    async fn record(&self, file: StoredFile) -> Result<StoredFile, DomainError> {
        let outcome = self
            .store
            .insert_file(&file, to_i64(self.settings.quota_bytes))
            .await;
        match outcome {
            Ok(QuotaCheck::Stored(stored)) => {
                metrics::counter!("ironhand_files_stored_total", "source" => file.source.as_str())
                    .increment(1);
                Ok(stored)
            }
            Ok(QuotaCheck::OverQuota { used }) => {
                let _ = self.blobs.delete(&file.storage_key).await;
                Err(DomainError::TooLarge(format!(
                    "Your files use {} of your {} storage quota; delete some files to store more.",
                    mib(u64::try_from(used).unwrap_or(0)),
                    mib(self.settings.quota_bytes)
                )))
            }
            Err(error) => {
                let _ = self.blobs.delete(&file.storage_key).await;
                Err(error.into())
            }
        }
    }

    /// The user's own file (404 for anyone else's, as for a missing one).
    pub async fn owned(&self, user: UserId, id: FileId) -> Result<StoredFile, DomainError> {
        match self.store.file_by_id(id).await? {
            Some(file) if file.user_id == user => Ok(file),
            _ => Err(not_found()),
        }
    }

    /// A file `viewer` may download: their own, or one of a shared session.
    pub async fn readable(
        &self,
        viewer: Option<UserId>,
        id: FileId,
    ) -> Result<StoredFile, DomainError> {
        let file = self.store.file_by_id(id).await?.ok_or_else(not_found)?;
        if viewer == Some(file.user_id) {
            return Ok(file);
        }
        if let Some(session_id) = file.session_id
            && let Some(session) = self.store.session_by_id(session_id).await?
            && session.is_shared
            && session.user_id == file.user_id
        {
            return Ok(file);
        }
        Err(not_found())
    }

    /// The file a signed URL names, if the signature holds.
    pub async fn signed(
        &self,
        id: FileId,
        expires: i64,
        signature: &str,
    ) -> Result<StoredFile, DomainError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if !self
            .signer
            .verify(&download_path(&self.settings, id), expires, signature, now)
        {
            return Err(DomainError::NotFound(
                "This link is not valid or has expired. Ask for a new one.".into(),
            ));
        }
        self.store.file_by_id(id).await?.ok_or_else(not_found)
    }

    /// A URL that downloads `file` without a token for `ttl_secs`.
    pub fn signed_url(&self, file: &StoredFile, ttl_secs: i64) -> String {
        download_url(&self.signer, &self.settings, file.id, ttl_secs)
    }

    /// Adds fresh signed URLs to the files an event's data names (stored events keep none:
    /// a stored URL would expire while the history lives on): each attachment of a
    /// `message` gets `file_url`; a browser `tool` event whose `content` has
    /// `screenshot_file_id` gets `content.screenshot` (the id stays, so a client can ask
    /// for a new URL once this one expires).
    pub fn sign_event_data(&self, event: &str, data: &mut Value) {
        sign_event_files(&self.signer, &self.settings, event, data);
    }

    /// `FileInfo` with a fresh signed URL.
    pub fn info_with_url(&self, file: &StoredFile) -> serde_json::Value {
        file.info(Some(self.signed_url(file, self.settings.url_ttl_secs)))
    }

    /// Streams the file's bytes, or bytes `start..=end`.
    pub async fn open(
        &self,
        file: &StoredFile,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, DomainError> {
        self.blobs
            .get(&file.storage_key, range)
            .await
            .map_err(blob_error)
    }

    pub async fn delete(&self, user: UserId, id: FileId) -> Result<(), DomainError> {
        let file = self.owned(user, id).await?;
        if self
            .store
            .delete_file(file.id, OffsetDateTime::now_utc())
            .await?
        {
            self.collect_garbage().await;
        }
        Ok(())
    }

    pub async fn session_files(&self, session: SessionId) -> Result<Vec<StoredFile>, DomainError> {
        Ok(self.store.session_files(session).await?)
    }

    /// Deletes unreachable records (see [`super::FileStore::sweep_files`]) and their bytes.
    pub async fn sweep(&self, unsent_before: Option<OffsetDateTime>) -> Result<u64, DomainError> {
        let swept = self
            .store
            .sweep_files(unsent_before, OffsetDateTime::now_utc())
            .await?;
        if swept > 0 {
            self.collect_garbage().await;
        }
        Ok(swept)
    }

    /// Removes the blobs of deleted records. Failures stay queued for the next pass.
    pub async fn collect_garbage(&self) -> usize {
        let keys = match self.store.blob_garbage(200).await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%error, "could not read the blob garbage list");
                return 0;
            }
        };
        let mut removed = Vec::new();
        for key in keys {
            match self.blobs.delete(&key).await {
                Ok(()) | Err(BlobError::InvalidKey) => removed.push(key),
                Err(error) => tracing::warn!(%error, "could not remove a deleted file's bytes"),
            }
        }
        if let Err(error) = self.store.forget_blob_garbage(&removed).await {
            tracing::warn!(%error, "could not update the blob garbage list");
        }
        removed.len()
    }

    /// Checks the attachments of a chat message: each must be the user's own file.
    /// Nothing is written (a refused message must leave no trace). Returns them in order.
    pub async fn check_attachments(
        &self,
        user: UserId,
        ids: &[FileId],
    ) -> Result<Vec<StoredFile>, DomainError> {
        let mut files = Vec::with_capacity(ids.len());
        for id in ids {
            let file = self.store.file_by_id(*id).await?;
            match file {
                Some(file) if file.user_id == user => files.push(file),
                _ => {
                    return Err(DomainError::Validation(vec![crate::FieldError::new(
                        "attachments",
                        format!("Attachment {id} is not one of your files."),
                    )]));
                }
            }
        }
        Ok(files)
    }

    /// Makes the files a run's message carries files of its session: an upload not yet
    /// sent anywhere is tied to it; a file of another session is copied (so deleting either
    /// session never takes the other's file away). Called once the run has started.
    pub async fn bind_to_session(
        &self,
        session: SessionId,
        files: Vec<StoredFile>,
    ) -> Result<Vec<StoredFile>, DomainError> {
        let mut bound = Vec::with_capacity(files.len());
        for mut file in files {
            match file.session_id {
                Some(owner) if owner == session => bound.push(file),
                None => {
                    self.store.attach_file(file.id, session).await?;
                    // Another run may have tied it first; read back where it belongs.
                    match self.store.file_by_id(file.id).await? {
                        Some(now) if now.session_id == Some(session) => bound.push(now),
                        Some(now) => bound.push(self.copy_for_session(now, session).await?),
                        None => {}
                    }
                }
                Some(_) => {
                    file.sandbox_path = None;
                    bound.push(self.copy_for_session(file, session).await?);
                }
            }
        }
        Ok(bound)
    }

    /// A copy of `file` (bytes and record) belonging to `session`.
    async fn copy_for_session(
        &self,
        file: StoredFile,
        session: SessionId,
    ) -> Result<StoredFile, DomainError> {
        let bytes = self.read_all(&file).await?;
        let copy = StoredFile {
            id: FileId::new(),
            session_id: Some(session),
            storage_key: new_key(file.user_id),
            sandbox_path: None,
            created_at: OffsetDateTime::now_utc(),
            ..file
        };
        self.blobs
            .put_bytes(&copy.storage_key, Bytes::from(bytes), &copy.sha256)
            .await
            .map_err(blob_error)?;
        self.record(copy).await
    }

    async fn read_all(&self, file: &StoredFile) -> Result<Vec<u8>, DomainError> {
        let stream = self.open(file, None).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(file.size).unwrap_or(0));
        let mut stream = stream;
        while let Some(chunk) = stream.try_next().await.map_err(|error| {
            tracing::error!(%error, "reading a stored file failed");
            DomainError::Unavailable("File storage is unavailable. Try again shortly.".into())
        })? {
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Copies the files into the sandbox's upload directory; returns each with its sandbox
    /// path (names made unique: `a.txt`, `a (2).txt`).
    pub async fn copy_into_sandbox(
        &self,
        files: &[StoredFile],
        sandbox: &dyn Sandbox,
    ) -> Result<Vec<(StoredFile, String)>, DomainError> {
        let mut placed: Vec<(StoredFile, String)> = Vec::new();
        for file in files {
            let mut name = file.filename.clone();
            let mut n = 2;
            while placed.iter().any(|(_, p)| p.ends_with(&format!("/{name}"))) {
                name = match file.filename.rsplit_once('.') {
                    Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
                    _ => format!("{} ({n})", file.filename),
                };
                n += 1;
            }
            let bytes = self.read_all(file).await?;
            let path = format!("{UPLOAD_DIR}/{name}");
            sandbox.put_file(&path, &bytes).await.map_err(|error| {
                DomainError::Unavailable(format!("Could not copy {name} into the sandbox: {error}"))
            })?;
            placed.push((file.clone(), path));
        }
        Ok(placed)
    }

    /// Stores a browser screenshot as a file of the session, for the `tool` event that
    /// shows it (`content.screenshot_file_id`). It is left out of file lists but readable
    /// like the session's other files (owner, shared-session readers, signed URLs) and goes
    /// with the session. It counts against the owner's storage quota like every stored
    /// byte. Refused, with a sentence, when it is not a JPEG, is over
    /// [`MAX_SCREENSHOT_BYTES`] or would pass the quota; the caller then shows none.
    pub async fn store_screenshot(
        &self,
        user: UserId,
        session: SessionId,
        jpeg: Vec<u8>,
    ) -> Result<StoredFile, ScreenshotRefused> {
        check_screenshot(&jpeg)?;
        let now = OffsetDateTime::now_utc();
        let sha256 = hex::encode(Sha256::digest(&jpeg));
        let file = StoredFile {
            id: FileId::new(),
            user_id: user,
            session_id: Some(session),
            filename: screenshot_name(now),
            content_type: "image/jpeg".into(),
            size: to_i64(jpeg.len() as u64),
            sha256: sha256.clone(),
            storage_key: new_key(user),
            source: FileSource::Screenshot,
            sandbox_path: None,
            created_at: now,
        };
        self.blobs
            .put_bytes(&file.storage_key, Bytes::from(jpeg), &sha256)
            .await
            .map_err(|error| {
                tracing::error!(%error, "storing a screenshot failed");
                ScreenshotRefused::Storage(error)
            })?;
        self.record(file).await.map_err(ScreenshotRefused::Record)
    }

    /// Stores bytes a tool produced outside the sandbox (a connector's image or resource) as
    /// a file of the session, listed with the agent's other files and counted against the
    /// owner's quota. `name` is sanitised; the type is sniffed. Errors are sentences.
    pub async fn store_generated(
        &self,
        user: UserId,
        session: SessionId,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<StoredFile, AgentFileError> {
        if bytes.len() as u64 > self.settings.max_agent_file_bytes {
            return Err(AgentFileError::TooLarge(self.settings.max_agent_file_bytes));
        }
        self.store_agent_bytes(user, session, name, None, bytes)
            .await
    }

    /// Copies a file out of the sandbox into the store as the session's file (replacing
    /// an earlier copy of the same path). Errors are sentences for the model or the log.
    pub async fn copy_out_of_sandbox(
        &self,
        user: UserId,
        session: SessionId,
        sandbox: &dyn Sandbox,
        name: &str,
        max_bytes: u64,
    ) -> Result<StoredFile, AgentFileError> {
        let path = sandbox_path(name);
        let bytes = sandbox
            .get_file(&path, max_bytes.min(self.settings.max_agent_file_bytes))
            .await?;
        self.store_agent_bytes(user, session, &path.clone(), Some(path), bytes)
            .await
    }

    /// Stores `bytes` as an agent file of the session named after `name` (sanitised, type
    /// sniffed); with a `sandbox_path` it replaces the earlier copy of that path.
    async fn store_agent_bytes(
        &self,
        user: UserId,
        session: SessionId,
        name: &str,
        sandbox_path: Option<String>,
        bytes: Vec<u8>,
    ) -> Result<StoredFile, AgentFileError> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let filename = (self.naming.sanitize)(name);
        let head = &bytes[..bytes.len().min(8192)];
        let content_type = (self.naming.guess_type)(&filename, head);
        let file = StoredFile {
            id: FileId::new(),
            user_id: user,
            session_id: Some(session),
            filename,
            content_type,
            size: to_i64(bytes.len() as u64),
            sha256: sha256.clone(),
            storage_key: new_key(user),
            source: FileSource::Agent,
            sandbox_path,
            created_at: OffsetDateTime::now_utc(),
        };
        self.blobs
            .put_bytes(&file.storage_key, Bytes::from(bytes), &sha256)
            .await
            .map_err(|error| {
                tracing::error!(%error, "storing an agent file failed");
                AgentFileError::Storage(error)
            })?;
        let new_id = file.id;
        let stored = self.record(file).await?;
        // A replaced copy (the record kept its id) left its old bytes in the garbage list.
        if stored.id != new_id {
            self.collect_garbage().await;
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> FileSettings {
        FileSettings {
            max_upload_bytes: 1024,
            quota_bytes: 4096,
            max_agent_file_bytes: 1024,
            url_ttl_secs: 600,
            path_prefix: "/api/v1/files".into(),
            public_origin: "https://ironhand.example".into(),
        }
    }

    /// The file id a signed URL names, if its signature holds now.
    fn verified(signer: &UrlSigner, url: &Value) -> Option<String> {
        let url = url.as_str()?.strip_prefix("https://ironhand.example")?;
        let (path, query) = url.split_once('?')?;
        let field = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        };
        let expires: i64 = field("expires")?.parse().ok()?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if !signer.verify(path, expires, field("signature")?, now) {
            return None;
        }
        path.strip_prefix("/api/v1/files/").map(str::to_string)
    }

    #[test]
    fn browser_tool_events_get_a_fresh_screenshot_url() {
        let signer = UrlSigner::new(b"files key");
        let id = FileId::new();
        let mut data = json!({
            "tool_call_id": "call_1", "name": "browser", "function": "browser_navigate",
            "args": {"url": "https://example.com"}, "status": "called",
            "content": {"screenshot_file_id": id.to_string()},
        });
        sign_event_files(&signer, &settings(), "tool", &mut data);
        assert_eq!(
            verified(&signer, &data["content"]["screenshot"]),
            Some(id.to_string()),
            "{data}"
        );
        assert_eq!(data["content"]["screenshot_file_id"], id.to_string());

        // Nothing to sign: other groups, other events, no or a malformed id, no content.
        let untouched = [
            (
                "tool",
                json!({"name": "mcp", "content": {"screenshot_file_id": id.to_string()}}),
            ),
            (
                "step",
                json!({"name": "browser", "content": {"screenshot_file_id": id.to_string()}}),
            ),
            (
                "tool",
                json!({"name": "browser", "content": {"screenshot_file_id": "not-an-id"}}),
            ),
            ("tool", json!({"name": "browser", "content": {}})),
            ("tool", json!({"name": "browser", "status": "calling"})),
            ("tool", json!({"name": "browser", "content": "text"})),
        ];
        for (event, before) in untouched {
            let mut after = before.clone();
            sign_event_files(&signer, &settings(), event, &mut after);
            assert_eq!(after, before, "{event}");
        }
    }

    #[test]
    fn message_attachments_get_fresh_urls() {
        let signer = UrlSigner::new(b"files key");
        let id = FileId::new();
        let mut data = json!({
            "role": "user", "content": "see",
            "attachments": [{"file_id": id.to_string(), "filename": "a.txt"}, {"filename": "b"}],
        });
        sign_event_files(&signer, &settings(), "message", &mut data);
        assert_eq!(
            verified(&signer, &data["attachments"][0]["file_url"]),
            Some(id.to_string())
        );
        assert!(data["attachments"][1].get("file_url").is_none());
    }

    #[test]
    fn screenshots_are_jpegs_within_the_cap() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        assert!(check_screenshot(&jpeg).is_ok());
        jpeg.resize(MAX_SCREENSHOT_BYTES, 0);
        assert!(check_screenshot(&jpeg).is_ok());
        jpeg.push(0);
        let refusal = check_screenshot(&jpeg).expect_err("too large").to_string();
        assert!(refusal.contains("4 MiB"), "{refusal}");
        let png = b"\x89PNG\r\n\x1a\n";
        assert!(
            check_screenshot(png)
                .expect_err("png")
                .to_string()
                .contains("JPEG")
        );
        assert!(check_screenshot(&[]).is_err());
        assert!(check_screenshot(&[0xFF, 0xD8]).is_err());
    }

    #[test]
    fn screenshot_names_carry_the_time() {
        let at =
            OffsetDateTime::from_unix_timestamp_nanos(1_767_366_245_123_000_000).expect("valid");
        assert_eq!(screenshot_name(at), "screenshot-20260102-150405-123.jpg");
    }

    #[test]
    fn names_from_sandbox_paths() {
        assert_eq!(sandbox_path("report.md"), "/home/ubuntu/report.md");
        assert_eq!(sandbox_path("./out/a.txt"), "/home/ubuntu/out/a.txt");
        assert_eq!(sandbox_path("/tmp/x"), "/tmp/x");
        assert_eq!(sandbox_path("~/out/a.md"), "/home/ubuntu/out/a.md");
        assert_eq!(
            sandbox_path("/home/ubuntu//out/./a.md/"),
            "/home/ubuntu/out/a.md"
        );
    }
}
