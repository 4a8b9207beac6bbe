//! The storage port of files: records with the owner's quota, the garbage list of blob
//! keys. The bytes are the [`crate::ports::BlobStore`]'s; the rules are `FileService`'s.

use crate::error::StoreResult;
use crate::files::{QuotaCheck, StoredFile};
use crate::ids::{FileId, SessionId, UserId};
use async_trait::async_trait;
use time::OffsetDateTime;

#[async_trait]
pub trait FileStore: Send + Sync {
    /// In one transaction with the owner's row locked (so concurrent uploads cannot both
    /// slip under the quota): stores `file` if the owner's files, with it, stay within
    /// `quota_bytes`. For an agent file with a `sandbox_path` already recorded in its
    /// session, the existing record is updated in place (same id) and its old blob key is
    /// moved to the garbage list.
    async fn insert_file(&self, file: &StoredFile, quota_bytes: i64) -> StoreResult<QuotaCheck>;
    async fn file_by_id(&self, id: FileId) -> StoreResult<Option<StoredFile>>;
    /// The session's files as its file list shows them (uploads and agent files; browser
    /// screenshots are left out), oldest first.
    async fn session_files(&self, session_id: SessionId) -> StoreResult<Vec<StoredFile>>;
    /// Ties an upload to the session it was sent in (only if it has none yet).
    async fn attach_file(&self, id: FileId, session_id: SessionId) -> StoreResult<()>;
    /// Deletes the record and queues its blob key for removal. False if it did not exist.
    async fn delete_file(&self, id: FileId, now: OffsetDateTime) -> StoreResult<bool>;
    /// Bytes used by the user's files.
    async fn storage_used(&self, user_id: UserId) -> StoreResult<i64>;
    /// Blob keys whose records are gone (deleted files, sessions, replaced copies).
    async fn blob_garbage(&self, limit: i64) -> StoreResult<Vec<String>>;
    async fn forget_blob_garbage(&self, keys: &[String]) -> StoreResult<()>;
    /// Deletes records that can no longer be reached, queueing their keys: files of a
    /// session that is gone (a copy that raced the session's deletion) and, with
    /// `unsent_before`, uploads never sent in any session and older than that. Returns how
    /// many went.
    async fn sweep_files(
        &self,
        unsent_before: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;
}
