//! Files: what users upload and what the agent produces. Records (owner, session, name,
//! sniffed type, size, SHA-256) live in the database behind [`FileStore`]; the bytes live in
//! a [`crate::ports::BlobStore`] under an opaque key. [`FileService`] holds the rules.

mod service;
mod signing;

/// The storage port of files, in `ports` with the others.
pub use crate::ports::file_store::FileStore;
pub use service::{
    AgentFileError, FileService, FileSettings, Naming, ScreenshotRefused, StagedUpload,
};
pub use signing::UrlSigner;

use crate::ids::{FileId, SessionId, UserId};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSource {
    /// Uploaded by the user through `POST /files`.
    Upload,
    /// Copied out of the session's sandbox (named in a result, or written by a file tool).
    Agent,
    /// A JPEG of the browser after a browser tool call, shown in that `tool` event. Left out
    /// of file lists; readable like the session's other files.
    Screenshot,
}

impl FileSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FileSource::Upload => "upload",
            FileSource::Agent => "agent",
            FileSource::Screenshot => "screenshot",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "upload" => Some(FileSource::Upload),
            "agent" => Some(FileSource::Agent),
            "screenshot" => Some(FileSource::Screenshot),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub id: FileId,
    pub user_id: UserId,
    /// The session it was attached to or produced in (none for an upload not yet sent).
    pub session_id: Option<SessionId>,
    /// The sanitised display name.
    pub filename: String,
    /// Sniffed from the content, never taken from the client.
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// The blob store key (opaque, server-chosen).
    pub storage_key: String,
    pub source: FileSource,
    /// For agent files: the sandbox path it was copied from (one record per path and session).
    pub sandbox_path: Option<String>,
    pub created_at: OffsetDateTime,
}

impl StoredFile {
    /// `FileInfo` (docs/api.md, section Files); `file_url` is a signed download URL when given.
    pub fn info(&self, file_url: Option<String>) -> Value {
        let mut metadata = json!({ "source": self.source.as_str(), "sha256": self.sha256 });
        if let Some(session) = self.session_id {
            metadata["session_id"] = json!(session.to_string());
        }
        if let Some(path) = &self.sandbox_path {
            metadata["sandbox_path"] = json!(path);
        }
        json!({
            "file_id": self.id.to_string(),
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "upload_date": self.created_at.format(&Rfc3339).unwrap_or_default(),
            "metadata": metadata,
            "file_url": file_url,
        })
    }
}

/// What storing a record within the owner's quota did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaCheck {
    /// Stored. An agent file that replaced the copy of the same path keeps that record's
    /// id (the old bytes' key is now in the garbage list).
    Stored(StoredFile),
    /// The owner's files would exceed the quota; nothing was stored.
    OverQuota { used: i64 },
}

/// The sandbox directory attachments are copied to.
pub const UPLOAD_DIR: &str = "/home/ubuntu/upload";
