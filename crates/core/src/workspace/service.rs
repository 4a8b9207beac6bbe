//! The rules of workspace snapshots: when a workspace is saved, when it is brought to this
//! instance, what the user is told when it was too large, and who holds a session's sandbox.

use super::{WorkspaceError, WorkspaceSnapshot};
use crate::files::FileService;
use crate::ids::SessionId;
use crate::ports::blob_store::BlobError;
use crate::ports::{SandboxProvider, Store};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    /// Save and restore snapshots at all (off, runs still prefer the instance holding
    /// their sandbox, but a session's files stay where its sandbox ran).
    pub snapshots: bool,
    /// The workspace limit (`sandbox.workspace_max_bytes`, 0 = none), for the note.
    pub max_bytes: u64,
    /// Local directory for archives on their way to and from the file store.
    pub scratch_dir: PathBuf,
}

/// What [`WorkspaceSnapshots::take_over`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOver {
    /// The local copy is the latest (or there is no snapshot yet).
    UpToDate,
    /// The latest snapshot was restored here.
    Restored { version: i64, files: u64 },
    /// The latest snapshot's bytes are gone or damaged: the local copy stays as it is and
    /// counts as that version from now on.
    Lost { version: i64 },
}

/// A snapshot just stored, and the files it had to leave out.
#[derive(Debug, Clone)]
pub struct SavedWorkspace {
    pub snapshot: WorkspaceSnapshot,
    /// Sandbox paths of the newest files left out (a few).
    pub left_out: Vec<String>,
    /// The workspace limit it was made under.
    pub max_bytes: u64,
}

impl SavedWorkspace {
    /// What the user is told when files were left out, in one paragraph.
    pub fn note(&self) -> Option<String> {
        let s = &self.snapshot;
        if s.left_out_files == 0 {
            return None;
        }
        let examples = if self.left_out.is_empty() {
            String::new()
        } else {
            let shown: Vec<&str> = self.left_out.iter().take(5).map(String::as_str).collect();
            format!(" (the newest of them: {})", shown.join(", "))
        };
        Some(format!(
            "Note: this session's files take more than the {} kept when its workspace is saved, \
             so the saved copy keeps the newest files and leaves out {} older file{} ({}){examples}. \
             They are still here while this sandbox runs, but if a later message is handled by \
             another server of this service, they will be missing there.",
            size(self.max_bytes),
            s.left_out_files,
            if s.left_out_files == 1 { "" } else { "s" },
            size(u64::try_from(s.left_out_bytes).unwrap_or(0)),
        ))
    }
}

fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else if b >= MIB {
        format!("{:.0} MiB", b / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub struct WorkspaceSnapshots {
    store: Arc<dyn Store>,
    files: Arc<FileService>,
    sandboxes: Arc<dyn SandboxProvider>,
    /// This instance (the worker id its leases start with).
    instance: String,
    settings: WorkspaceSettings,
}

impl WorkspaceSnapshots {
    pub fn new(
        store: Arc<dyn Store>,
        files: Arc<FileService>,
        sandboxes: Arc<dyn SandboxProvider>,
        instance: String,
        settings: WorkspaceSettings,
    ) -> Self {
        Self {
            store,
            files,
            sandboxes,
            instance,
            settings,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Before this instance works on a session: records it as the holder of the session's
    /// sandbox, and when its local copy of the workspace is older than the latest snapshot
    /// (or missing), restores that snapshot (replacing the stale copy).
    pub async fn take_over(&self, session: SessionId) -> Result<TakeOver, WorkspaceError> {
        self.store.hold_sandbox(session, &self.instance).await?;
        if !self.settings.snapshots {
            return Ok(TakeOver::UpToDate);
        }
        let Some(latest) = self.store.latest_snapshot(session).await? else {
            return Ok(TakeOver::UpToDate);
        };
        let local = self.sandboxes.workspace_version(session).await?;
        if local.is_some_and(|v| v >= latest.version) {
            return Ok(TakeOver::UpToDate);
        }
        let started = std::time::Instant::now();
        let archive = self.scratch_file()?;
        match self.download(&latest, archive.path()).await {
            Ok(()) => {}
            Err(Fetch::Gone(why)) => {
                tracing::error!(session_id = %session, version = latest.version, %why,
                    "the latest workspace snapshot cannot be restored; the local copy stays");
                self.sandboxes
                    .mark_workspace(session, latest.version, "")
                    .await?;
                return Ok(TakeOver::Lost {
                    version: latest.version,
                });
            }
            Err(Fetch::Failed(e)) => return Err(e),
        }
        let restored = self
            .sandboxes
            .restore_workspace(session, archive.path(), latest.version)
            .await?;
        tracing::info!(
            session_id = %session,
            version = latest.version,
            from = %latest.instance,
            files = restored.files,
            bytes = restored.bytes,
            ms = started.elapsed().as_millis() as u64,
            "restored the session's workspace from its snapshot"
        );
        metrics::histogram!("ironhand_workspace_restore_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(TakeOver::Restored {
            version: latest.version,
            files: restored.files,
        })
    }

    /// Packs the session's workspace and stores it as the latest snapshot, unless nothing
    /// here changed it since the last one (or another instance holds its sandbox now).
    pub async fn save(&self, session: SessionId) -> Result<Option<SavedWorkspace>, WorkspaceError> {
        if !self.settings.snapshots {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let archive = self.scratch_file()?;
        let Some(packed) = self
            .sandboxes
            .pack_workspace(session, archive.path())
            .await?
        else {
            return Ok(None);
        };
        let path = archive.path().to_path_buf();
        let (size, sha256) = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| std::io::Error::other(format!("hashing the snapshot failed: {e}")))??;
        let key = format!(
            "workspaces/{}/{}",
            session.0.simple(),
            uuid::Uuid::now_v7().simple()
        );
        let blobs = self.files.blobs();
        blobs
            .put_file(&key, archive.path(), size, &sha256)
            .await
            .map_err(WorkspaceError::Blobs)?;
        let record = WorkspaceSnapshot {
            session_id: session,
            version: 0,
            storage_key: key.clone(),
            size: to_i64(size),
            sha256,
            files: to_i64(packed.files),
            bytes: to_i64(packed.bytes),
            left_out_files: to_i64(packed.left_out_files),
            left_out_bytes: to_i64(packed.left_out_bytes),
            instance: self.instance.clone(),
            created_at: OffsetDateTime::now_utc(),
        };
        let stored = match self.store.record_snapshot(&record).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                // The session went, or its sandbox moved on: this copy is nobody's.
                let _ = blobs.delete(&key).await;
                return Ok(None);
            }
            Err(e) => {
                let _ = blobs.delete(&key).await;
                return Err(e.into());
            }
        };
        self.sandboxes
            .mark_workspace(session, stored.version, &packed.state)
            .await?;
        // The previous snapshot's bytes.
        self.files.collect_garbage().await;
        tracing::info!(
            session_id = %session,
            version = stored.version,
            files = stored.files,
            bytes = stored.bytes,
            archive_bytes = stored.size,
            left_out_files = stored.left_out_files,
            ms = started.elapsed().as_millis() as u64,
            "saved the session's workspace"
        );
        metrics::histogram!("ironhand_workspace_snapshot_seconds")
            .record(started.elapsed().as_secs_f64());
        if stored.left_out_files > 0 {
            tracing::info!(
                session_id = %session,
                left_out_files = stored.left_out_files,
                left_out_bytes = stored.left_out_bytes,
                limit_bytes = self.settings.max_bytes,
                "the workspace is over its limit: its oldest files were left out of the snapshot"
            );
        }
        Ok(Some(SavedWorkspace {
            snapshot: stored,
            left_out: packed.left_out,
            max_bytes: self.settings.max_bytes,
        }))
    }

    /// Before the idle reaper runs: saves the workspaces of the sandboxes it is about to
    /// stop. Returns those sessions, for [`Self::stopped`].
    pub async fn save_idle(&self) -> Vec<SessionId> {
        let idle = self.sandboxes.idle_sandboxes();
        for session in &idle {
            // A session another instance took over has moved on: this copy is stale.
            match self.store.sandbox_holder(*session).await {
                Ok(Some(holder)) if holder == self.instance => {}
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, session_id = %session, "could not check who holds a sandbox");
                    continue;
                }
            }
            if let Err(error) = self.save(*session).await {
                tracing::warn!(%error, session_id = %session, "could not save an idle sandbox's workspace");
            }
        }
        idle
    }

    /// After the idle reaper ran: of `candidates`, the sandboxes it stopped no longer hold
    /// their sessions' runs here.
    pub async fn stopped(&self, candidates: &[SessionId]) {
        let still = self.sandboxes.idle_sandboxes();
        for session in candidates.iter().filter(|s| !still.contains(s)) {
            if let Err(error) = self
                .store
                .release_sandbox(Some(*session), &self.instance)
                .await
            {
                tracing::warn!(%error, session_id = %session, "could not release a stopped sandbox");
            }
        }
    }

    /// When this instance stops: its sandboxes stop with it, so no run waits for it.
    pub async fn release_all(&self) {
        match self.store.release_sandbox(None, &self.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                sessions = n,
                "released the sessions whose sandboxes ran here"
            ),
            Err(error) => tracing::warn!(%error, "could not release this instance's sandboxes"),
        }
    }

    fn scratch_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        std::fs::create_dir_all(&self.settings.scratch_dir)?;
        tempfile::Builder::new()
            .prefix("workspace-")
            .tempfile_in(&self.settings.scratch_dir)
    }

    /// Streams the snapshot's archive to `path`, checking its size and hash.
    async fn download(
        &self,
        snapshot: &WorkspaceSnapshot,
        path: &std::path::Path,
    ) -> Result<(), Fetch> {
        let mut stream = match self.files.blobs().get(&snapshot.storage_key, None).await {
            Ok(s) => s,
            Err(BlobError::NotFound) => return Err(Fetch::Gone("its archive is missing".into())),
            Err(e) => return Err(Fetch::Failed(WorkspaceError::Blobs(e))),
        };
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| Fetch::Failed(e.into()))?;
        let mut hasher = Sha256::new();
        let mut got: u64 = 0;
        let expected = u64::try_from(snapshot.size).unwrap_or(0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Fetch::Failed(e.into()))?;
            got += chunk.len() as u64;
            if got > expected {
                return Err(Fetch::Gone("its archive is larger than recorded".into()));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| Fetch::Failed(e.into()))?;
        }
        file.flush().await.map_err(|e| Fetch::Failed(e.into()))?;
        if got != expected || hex::encode(hasher.finalize()) != snapshot.sha256 {
            return Err(Fetch::Gone(
                "its archive does not match the recorded size and hash".into(),
            ));
        }
        Ok(())
    }
}

enum Fetch {
    /// The bytes are gone for good (missing, or not what was stored).
    Gone(String),
    Failed(WorkspaceError),
}

fn hash_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(left_out_files: i64, left_out: Vec<String>) -> SavedWorkspace {
        SavedWorkspace {
            snapshot: WorkspaceSnapshot {
                session_id: SessionId::new(),
                version: 3,
                storage_key: "workspaces/x/y".into(),
                size: 10,
                sha256: String::new(),
                files: 5,
                bytes: 1024,
                left_out_files,
                left_out_bytes: 300 * 1024 * 1024,
                instance: "worker-a".into(),
                created_at: OffsetDateTime::UNIX_EPOCH,
            },
            left_out,
            max_bytes: 1024 * 1024 * 1024,
        }
    }

    #[test]
    fn the_user_is_told_only_when_files_were_left_out() {
        assert_eq!(saved(0, Vec::new()).note(), None);
        let note = saved(2, vec!["/home/ubuntu/big.iso".into()])
            .note()
            .expect("a note");
        assert!(note.contains("1.0 GiB"), "{note}");
        assert!(note.contains("2 older files (300 MiB)"), "{note}");
        assert!(note.contains("/home/ubuntu/big.iso"), "{note}");
    }
}
