//! The rules of files: who may read what, the storage quota, signed URLs, and the copies
//! between the file store and a session's sandbox.

use super::{FileSource, QuotaCheck, StoredFile, UPLOAD_DIR, UrlSigner};
use crate::error::DomainError;
use crate::ids::{FileId, SessionId, UserId};
use crate::ports::sandbox::SANDBOX_HOME;
use crate::ports::{BlobError, BlobStore, ByteStream, Sandbox, Store};
use bytes::Bytes;
use futures::TryStreamExt as _;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;

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
            .verify(&self.download_path(id), expires, signature, now)
        {
            return Err(DomainError::NotFound(
                "This link is not valid or has expired. Ask for a new one.".into(),
            ));
        }
        self.store.file_by_id(id).await?.ok_or_else(not_found)
    }

    fn download_path(&self, id: FileId) -> String {
        format!("{}/{id}", self.settings.path_prefix)
    }

    /// A URL that downloads `file` without a token for `ttl_secs`.
    pub fn signed_url(&self, file: &StoredFile, ttl_secs: i64) -> String {
        self.signed_url_for(file.id, ttl_secs)
    }

    /// Adds fresh signed URLs to the attachments of a `message` event's data (stored
    /// events keep none: a stored URL would expire while the history lives on).
    pub fn sign_event_data(&self, event: &str, data: &mut serde_json::Value) {
        if event != "message" {
            return;
        }
        let Some(attachments) = data.get_mut("attachments").and_then(|a| a.as_array_mut()) else {
            return;
        };
        for attachment in attachments {
            let id = attachment
                .get("file_id")
                .and_then(|v| v.as_str())
                .and_then(FileId::parse);
            if let (Some(id), Some(object)) = (id, attachment.as_object_mut()) {
                object.insert(
                    "file_url".into(),
                    serde_json::Value::String(self.signed_url_for(id, self.settings.url_ttl_secs)),
                );
            }
        }
    }

    fn signed_url_for(&self, id: FileId, ttl_secs: i64) -> String {
        let path = self.download_path(id);
        let expires = OffsetDateTime::now_utc().unix_timestamp() + ttl_secs;
        format!(
            "{}{path}?{}",
            self.settings.public_origin,
            self.signer.query(&path, expires)
        )
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

    /// Copies a file out of the sandbox into the store as the session's file (replacing
    /// an earlier copy of the same path). Errors are sentences for the model or the log.
    pub async fn copy_out_of_sandbox(
        &self,
        user: UserId,
        session: SessionId,
        sandbox: &dyn Sandbox,
        name: &str,
        max_bytes: u64,
    ) -> Result<StoredFile, String> {
        let path = sandbox_path(name);
        let bytes = sandbox
            .get_file(&path, max_bytes.min(self.settings.max_agent_file_bytes))
            .await
            .map_err(|error| error.to_string())?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let filename = (self.naming.sanitize)(&path);
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
            sandbox_path: Some(path),
            created_at: OffsetDateTime::now_utc(),
        };
        self.blobs
            .put_bytes(&file.storage_key, Bytes::from(bytes), &sha256)
            .await
            .map_err(|error| {
                tracing::error!(%error, "storing a sandbox file failed");
                "file storage is unavailable".to_string()
            })?;
        let new_id = file.id;
        let stored = self.record(file).await.map_err(|error| error.to_string())?;
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
