//! What one session's tools work with: who it is, its sandbox (started on first use) and
//! its files.

use ironhand_core::files::FileService;
use ironhand_core::ids::{SessionId, UserId};
use ironhand_core::ports::sandbox::SandboxError;
use ironhand_core::ports::{Sandbox, SandboxProvider};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::OnceCell;

pub struct ToolContext {
    pub session: SessionId,
    pub user: UserId,
    /// The session's files: where what the agent produced is kept for the user.
    pub files: Arc<FileService>,
    sandboxes: Arc<dyn SandboxProvider>,
    sandbox: OnceCell<Arc<dyn Sandbox>>,
}

impl ToolContext {
    pub fn new(
        session: SessionId,
        user: UserId,
        sandboxes: Arc<dyn SandboxProvider>,
        files: Arc<FileService>,
    ) -> Self {
        Self {
            session,
            user,
            files,
            sandboxes,
            sandbox: OnceCell::new(),
        }
    }

    /// The session's sandbox, started on first use.
    pub async fn sandbox(&self) -> Result<&Arc<dyn Sandbox>, SandboxError> {
        self.sandbox
            .get_or_try_init(|| self.sandboxes.sandbox_for(self.session, self.user))
            .await
    }

    /// The sandbox if a tool already started it (stopping a command must not start one).
    pub fn started_sandbox(&self) -> Option<&Arc<dyn Sandbox>> {
        self.sandbox.get()
    }

    /// Copies files the agent names (a result's attachments) to the session's files;
    /// returns their `FileInfo`s and, for each one that failed, a sentence.
    pub async fn collect(&self, paths: &[String]) -> (Vec<Value>, Vec<String>) {
        let mut infos = Vec::new();
        let mut failures = Vec::new();
        if paths.is_empty() {
            return (infos, failures);
        }
        let sandbox = match self.sandbox().await {
            Ok(sandbox) => sandbox.clone(),
            Err(error) => {
                failures.push(format!("the sandbox is unavailable ({error})"));
                return (infos, failures);
            }
        };
        for path in paths {
            match self
                .files
                .copy_out_of_sandbox(self.user, self.session, sandbox.as_ref(), path, u64::MAX)
                .await
            {
                Ok(file) => infos.push(file.info(None)),
                Err(why) => failures.push(format!(
                    "{} ({why})",
                    crate::plan::truncate_chars(path, 200)
                )),
            }
        }
        (infos, failures)
    }
}
