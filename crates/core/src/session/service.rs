//! The rules of sessions: who may see what, when a message starts a run, stopping,
//! sharing and deleting. Routes call this; storage and fan-out are ports.

use crate::billing::BillingService;
use crate::error::{DomainError, FieldError};
use crate::files::FileService;
use crate::ids::{FileId, RunId, SessionId, UserId};
use crate::ports::sessions::ListCursor;
use crate::ports::{SandboxProvider, Store};
use crate::session::takeover::TAKEOVER_EVENT;
use crate::session::{
    AgentEvent, EventPublisher, Run, RunKind, RunStatus, Session, SessionStatus, StartRun,
    StoredEvent, TakeoverAction, TakeoverStatus,
};
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

/// The longest message a user may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100_000;
/// The longest `client_message_id`.
pub const MAX_CLIENT_MESSAGE_ID: usize = 128;
/// Most events one history read returns.
const HISTORY_PAGE: i64 = 1_000;

/// What a chat request asks for.
#[derive(Debug, Clone, Default)]
pub struct ChatInput {
    pub message: Option<String>,
    /// Files of the user to copy into the sandbox with the message.
    pub attachments: Vec<FileId>,
    pub client_message_id: Option<String>,
    /// The client's cursor; `None` means "from now" for a new message, "from the start"
    /// for an attach.
    pub cursor: Option<i64>,
}

/// A chat request's fields as the client sent them, before any check.
#[derive(Debug, Clone, Default)]
pub struct ChatRequestFields {
    pub message: Option<String>,
    pub client_message_id: Option<String>,
    /// The body's `event_id`: exactly as streamed.
    pub event_id: Option<String>,
    /// The `Last-Event-ID` header: read leniently (a browser resends what it got).
    pub last_event_id: Option<String>,
    /// The attachments' `file_id`s.
    pub attachments: Vec<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> DomainError {
    DomainError::Validation(vec![crate::error::FieldError::new(field, message)])
}

impl ChatInput {
    /// Checks a chat request's fields; the message reaches the agent exactly as typed.
    pub fn parse(fields: ChatRequestFields) -> Result<Self, DomainError> {
        if let Some(message) = &fields.message
            && message.chars().count() > MAX_MESSAGE_CHARS
        {
            return Err(invalid(
                "message",
                format!("message must be at most {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        if let Some(id) = &fields.client_message_id
            && (id.is_empty()
                || id.chars().count() > MAX_CLIENT_MESSAGE_ID
                || id.chars().any(char::is_control))
        {
            return Err(invalid(
                "client_message_id",
                format!(
                    "client_message_id must be 1 to {MAX_CLIENT_MESSAGE_ID} printable characters"
                ),
            ));
        }
        let not_a_cursor = || {
            invalid(
                "event_id",
                "event_id must be an event_id this session streamed",
            )
        };
        if let Some(id) = &fields.event_id
            && (!(1..=18).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(not_a_cursor());
        }
        let cursor = match fields
            .event_id
            .or(fields.last_event_id)
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(raw) => Some(super::parse_cursor(raw).ok_or_else(not_a_cursor)?),
            None => None,
        };
        if fields.attachments.len() > 20 {
            return Err(invalid("attachments", "at most 20 attachments per message"));
        }
        let attachments = fields
            .attachments
            .iter()
            .map(|id| {
                FileId::parse(id).ok_or_else(|| {
                    invalid(
                        "attachments",
                        "each attachment needs the file_id of an uploaded file",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            message: fields.message,
            attachments,
            client_message_id: fields.client_message_id,
            cursor,
        })
    }
}

/// Where the chat stream starts and whether it follows a run.
#[derive(Debug, Clone)]
pub struct ChatStart {
    pub session: Session,
    pub cursor: i64,
    /// The run this request started or re-attached to.
    pub run: Option<Run>,
}

#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn Store>,
    publisher: EventPublisher,
    sandboxes: Arc<dyn SandboxProvider>,
    billing: Arc<BillingService>,
    files: Arc<FileService>,
}

fn not_found() -> DomainError {
    DomainError::NotFound("Session not found".into())
}

impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        publisher: EventPublisher,
        sandboxes: Arc<dyn SandboxProvider>,
        billing: Arc<BillingService>,
        files: Arc<FileService>,
    ) -> Self {
        Self {
            store,
            publisher,
            sandboxes,
            billing,
            files,
        }
    }

    /// The session's shell `shell_id` as it is now (the user's terminal view), for its
    /// owner. An unknown shell is "not found"; a sandbox that cannot start says why.
    pub async fn shell_view(
        &self,
        user: UserId,
        id: SessionId,
        shell_id: &str,
    ) -> Result<crate::ports::sandbox::ShellOutcome, DomainError> {
        let session = self.owned(user, id).await?;
        let sandbox = self
            .sandboxes
            .sandbox(session.id)
            .await
            .map_err(sandbox_error)?;
        sandbox.shell_view(shell_id).await.map_err(sandbox_error)
    }

    /// The first `max_lines` lines of a file of the session's sandbox, for its owner.
    pub async fn file_view(
        &self,
        user: UserId,
        id: SessionId,
        path: &str,
        max_lines: i64,
    ) -> Result<crate::ports::sandbox::FileText, DomainError> {
        let session = self.owned(user, id).await?;
        let sandbox = self
            .sandboxes
            .sandbox(session.id)
            .await
            .map_err(sandbox_error)?;
        sandbox
            .file_read(path, None, Some(max_lines))
            .await
            .map_err(sandbox_error)
    }

    /// The running browser of the session's live sandbox on this instance (the live view;
    /// the caller checked who may watch). Never starts one.
    pub fn running_browser(&self, id: SessionId) -> Option<Arc<dyn crate::ports::SandboxBrowser>> {
        self.sandboxes
            .running_browser(id)
            .filter(|browser| browser.is_running())
    }

    pub async fn create(&self, user: UserId) -> Result<Session, DomainError> {
        let now = OffsetDateTime::now_utc();
        let session = Session {
            id: SessionId::new(),
            user_id: user,
            title: None,
            status: SessionStatus::Pending,
            latest_message: None,
            latest_message_at: None,
            unread_message_count: 0,
            is_shared: false,
            last_seq: 0,
            created_at: now,
            updated_at: now,
        };
        self.store.create_session(&session).await?;
        self.publisher.sessions_changed(user, session.id).await;
        Ok(session)
    }

    /// The session if `user` owns it; otherwise the same 404 as a session that does not
    /// exist.
    pub async fn owned(&self, user: UserId, id: SessionId) -> Result<Session, DomainError> {
        match self.store.session_by_id(id).await? {
            Some(session) if session.user_id == user => Ok(session),
            _ => Err(not_found()),
        }
    }

    /// The session if its owner shared it.
    pub async fn shared(&self, id: SessionId) -> Result<Session, DomainError> {
        match self.store.session_by_id(id).await? {
            Some(session) if session.is_shared => Ok(session),
            _ => Err(not_found()),
        }
    }

    /// The session, for a caller who proved their right to it another way (a signed
    /// live-view URL the owner asked for).
    pub async fn by_signed_link(&self, id: SessionId) -> Result<Session, DomainError> {
        self.store.session_by_id(id).await?.ok_or_else(not_found)
    }

    /// Whether the session's sandbox runs a browser now (never starts one).
    pub fn browser_running(&self, id: SessionId) -> bool {
        self.sandboxes
            .running_browser(id)
            .is_some_and(|browser| browser.is_running())
    }

    /// Who drives the session's browser: the `status` of its latest `takeover` event,
    /// `agent` when there is none. Read from the log, so every instance agrees; the agent
    /// asks before each tool call, the live view before forwarding input.
    pub async fn takeover_status(&self, id: SessionId) -> Result<TakeoverStatus, DomainError> {
        let latest = self.store.latest_event(id, TAKEOVER_EVENT).await?;
        Ok(TakeoverStatus::of(latest.as_ref()))
    }

    /// The owner takes the browser over from the live view (only while one runs), or hands
    /// it back (always, so a user whose browser died is never stuck). Asking for the
    /// status the session already has stores nothing. Returns the status now in force.
    pub async fn takeover(
        &self,
        user: UserId,
        id: SessionId,
        action: TakeoverAction,
    ) -> Result<TakeoverStatus, DomainError> {
        self.owned(user, id).await?;
        if action == TakeoverAction::Take && !self.browser_running(id) {
            return Err(DomainError::BrowserNotRunning);
        }
        let target = action.target();
        // Two requests racing past this read may both store the same status: harmless,
        // since the status is the latest event's, not a count of toggles.
        if self.takeover_status(id).await? != target {
            self.publisher
                .publish(id, user, &AgentEvent::Takeover { status: target })
                .await?;
        }
        Ok(target)
    }

    pub async fn list(
        &self,
        user: UserId,
        limit: i64,
        before: Option<ListCursor>,
    ) -> Result<Vec<Session>, DomainError> {
        Ok(self.store.list_sessions(user, limit, before).await?)
    }

    /// Every stored event of the session, oldest first.
    pub async fn history(&self, id: SessionId) -> Result<Vec<StoredEvent>, DomainError> {
        let mut events = Vec::new();
        let mut cursor = 0;
        loop {
            let page = self.store.events_after(id, cursor, HISTORY_PAGE).await?;
            let done = (page.len() as i64) < HISTORY_PAGE;
            if let Some(last) = page.last() {
                cursor = last.seq;
            }
            events.extend(page);
            if done {
                return Ok(events);
            }
        }
    }

    pub async fn set_shared(
        &self,
        user: UserId,
        id: SessionId,
        shared: bool,
    ) -> Result<(), DomainError> {
        self.owned(user, id).await?;
        self.store.set_session_shared(id, shared).await?;
        self.publisher.sessions_changed(user, id).await;
        Ok(())
    }

    pub async fn clear_unread(&self, user: UserId, id: SessionId) -> Result<(), DomainError> {
        self.owned(user, id).await?;
        self.store.clear_unread(id).await?;
        self.publisher.sessions_changed(user, id).await;
        Ok(())
    }

    /// Records the run a message asks for (a new task, or the reply to the agent's
    /// question) and wakes the workers; or, without a message, just says where to attach.
    pub async fn start_chat(
        &self,
        user: UserId,
        id: SessionId,
        input: ChatInput,
    ) -> Result<ChatStart, DomainError> {
        let session = self.owned(user, id).await?;
        if input.cursor.is_some_and(|cursor| cursor > session.last_seq) {
            return Err(DomainError::Validation(vec![FieldError::new(
                "event_id",
                "event_id is not an event of this session",
            )]));
        }
        let message = input
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        let Some(message) = message else {
            return Ok(ChatStart {
                cursor: input.cursor.unwrap_or(0),
                run: self.store.active_run(id).await?,
                session,
            });
        };
        let kind = if session.status == SessionStatus::Waiting {
            RunKind::Reply
        } else {
            RunKind::Task
        };
        // A new task counts against the plan; the reply to the agent's question is free.
        let counts = kind == RunKind::Task;
        let attachments = self
            .files
            .check_attachments(user, &input.attachments)
            .await?;
        let run = Run {
            id: RunId::new(),
            session_id: id,
            user_id: user,
            kind,
            status: RunStatus::Queued,
            // Exactly as typed (trimmed of surrounding blank space only).
            message: message.to_string(),
            attachments: json!(
                attachments
                    .iter()
                    .map(|f| json!({"file_id": f.id.to_string(), "filename": f.filename}))
                    .collect::<Vec<_>>()
            ),
            client_message_id: input.client_message_id.clone(),
            attempts: 0,
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            created_at: OffsetDateTime::now_utc(),
            started_at: None,
            finished_at: None,
        };
        let mut rolled_over = false;
        let outcome = loop {
            let meter = match self.billing.admit(user, counts).await {
                Ok(meter) => meter,
                // A retry of a message that already started its run attaches to it, even
                // when the plan would refuse a new one now.
                Err(refusal) => match self.retried_run(&input, &session).await? {
                    Some(run) => break StartRun::Duplicate(run),
                    None => return Err(refusal),
                },
            };
            match self.store.start_run(&run, Some(&meter)).await? {
                StartRun::LimitReached => {
                    let sub = self.billing.current(user).await?;
                    // The period rolled over between reading and metering: meter again.
                    if sub.period_version != meter.period_version && !rolled_over {
                        rolled_over = true;
                        continue;
                    }
                    return Err(self.billing.refusal(&sub, "run_limit_reached"));
                }
                StartRun::TooManyActive => return Err(self.billing.too_many_active(user).await),
                other => break other,
            }
        };
        match outcome {
            StartRun::Started(run) => {
                if counts {
                    self.billing.notify(user).await;
                }
                self.publisher
                    .signal_workers(&format!("run:{}", run.id))
                    .await;
                self.publisher.sessions_changed(user, id).await;
                Ok(ChatStart {
                    cursor: input.cursor.unwrap_or(session.last_seq),
                    run: Some(run),
                    session,
                })
            }
            StartRun::Duplicate(run) => {
                let cursor = match input.cursor {
                    Some(cursor) => cursor,
                    None => self.run_start_cursor(&session, &run).await?,
                };
                Ok(ChatStart {
                    cursor,
                    run: Some(run),
                    session,
                })
            }
            StartRun::Busy | StartRun::LimitReached | StartRun::TooManyActive => {
                Err(DomainError::Conflict(
                    "Session is already processing a request. Stop it first or wait for it to finish."
                        .into(),
                ))
            }
        }
    }

    /// The session's run that this message already started (same `client_message_id`).
    async fn retried_run(
        &self,
        input: &ChatInput,
        session: &Session,
    ) -> Result<Option<Run>, DomainError> {
        let Some(key) = input.client_message_id.as_deref() else {
            return Ok(None);
        };
        Ok(self
            .store
            .latest_run(session.id)
            .await?
            .filter(|run| run.client_message_id.as_deref() == Some(key)))
    }

    /// Where a retried request's stream starts: just before the user message its run
    /// stored, or "now" if the worker has not stored it yet.
    async fn run_start_cursor(&self, session: &Session, run: &Run) -> Result<i64, DomainError> {
        let Some(key) = run.client_message_id.as_deref() else {
            return Ok(session.last_seq);
        };
        // Page through the log rather than holding it all: the newest match wins.
        let mut found = None;
        let mut cursor = 0;
        loop {
            let page = self
                .store
                .events_after(session.id, cursor, HISTORY_PAGE)
                .await?;
            for event in &page {
                if event.event == "message"
                    && event.data.get("client_message_id").and_then(Value::as_str) == Some(key)
                {
                    found = Some(event.seq - 1);
                }
            }
            match page.last() {
                Some(last) if (page.len() as i64) == HISTORY_PAGE => cursor = last.seq,
                _ => return Ok(found.unwrap_or(session.last_seq)),
            }
        }
    }

    /// Stops the session's run. A queued run ends at once; a running one is cancelled by
    /// its worker, which stores `done`. A session waiting for a reply is closed.
    pub async fn stop(&self, user: UserId, id: SessionId) -> Result<(), DomainError> {
        let session = self.owned(user, id).await?;
        let now = OffsetDateTime::now_utc();
        match self.store.request_cancel(id).await? {
            Some(run) if run.status == RunStatus::Queued => {
                if self
                    .store
                    .finish_run(
                        run.id,
                        None,
                        RunStatus::Cancelled,
                        SessionStatus::Completed,
                        now,
                    )
                    .await?
                {
                    self.close_stream(id, user).await;
                } else {
                    // Claimed meanwhile: the worker sees the flag.
                    self.publisher
                        .signal_workers(&format!("cancel:{}", run.id))
                        .await;
                }
            }
            Some(run) => {
                self.publisher
                    .signal_workers(&format!("cancel:{}", run.id))
                    .await;
            }
            None if session.status == SessionStatus::Waiting => {
                self.store
                    .set_session_status(id, SessionStatus::Completed, now)
                    .await?;
                self.close_stream(id, user).await;
            }
            None => {}
        }
        Ok(())
    }

    /// Stores `done` for a run that ended without a worker; a session deleted meanwhile
    /// has no stream to close.
    async fn close_stream(&self, id: SessionId, user: UserId) {
        if let Err(error) = self.publisher.publish(id, user, &AgentEvent::Done).await {
            tracing::info!(%error, session_id = %id, "could not store done (session deleted?)");
        }
    }

    /// Stops any run, then deletes the session, its events and its sandbox.
    pub async fn delete(&self, user: UserId, id: SessionId) -> Result<(), DomainError> {
        self.owned(user, id).await?;
        self.remove(user, id).await
    }

    /// Deletion without the ownership check, for the retention job.
    pub async fn remove(&self, user: UserId, id: SessionId) -> Result<(), DomainError> {
        if let Some(run) = self.store.request_cancel(id).await? {
            self.publisher
                .signal_workers(&format!("cancel:{}", run.id))
                .await;
        }
        self.store.delete_session(id).await?;
        self.files.collect_garbage().await;
        // Open streams of the session end at once instead of at their next poll.
        self.publisher.session_gone(id).await;
        if let Err(error) = self.sandboxes.destroy(id, true).await {
            tracing::warn!(%error, session_id = %id, "could not remove the session's sandbox");
        }
        self.publisher.sessions_changed(user, id).await;
        Ok(())
    }
}

/// A sandbox's answer in the words of a request about it: a wrong shell id or path is
/// "not found", a sandbox that cannot start is unavailable.
fn sandbox_error(error: crate::ports::sandbox::SandboxError) -> DomainError {
    use crate::ports::sandbox::SandboxError;
    match error {
        SandboxError::Invalid(message) => DomainError::NotFound(message),
        SandboxError::Unavailable(message) => {
            DomainError::Unavailable(format!("The sandbox is not available: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: DomainError) -> String {
        match error {
            DomainError::Validation(fields) => fields[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_chat_request_is_checked_field_by_field() {
        let ok = ChatInput::parse(ChatRequestFields {
            message: Some("hello".into()),
            last_event_id: Some(" 41 ".into()),
            attachments: vec![FileId::new().to_string()],
            ..ChatRequestFields::default()
        })
        .expect("valid");
        assert_eq!(ok.cursor, Some(41), "the header is read leniently");
        assert_eq!(ok.attachments.len(), 1);
        let body_wins = ChatInput::parse(ChatRequestFields {
            event_id: Some("7".into()),
            last_event_id: Some("41".into()),
            ..ChatRequestFields::default()
        })
        .expect("valid");
        assert_eq!(body_wins.cursor, Some(7));

        let refused =
            |fields: ChatRequestFields| field_of(ChatInput::parse(fields).expect_err("refused"));
        assert_eq!(
            refused(ChatRequestFields {
                message: Some("x".repeat(MAX_MESSAGE_CHARS + 1)),
                ..Default::default()
            }),
            "message"
        );
        assert_eq!(
            refused(ChatRequestFields {
                event_id: Some(" 7".into()),
                ..Default::default()
            }),
            "event_id",
            "the body's cursor is exactly as streamed"
        );
        assert_eq!(
            refused(ChatRequestFields {
                last_event_id: Some("-3".into()),
                ..Default::default()
            }),
            "event_id"
        );
        assert_eq!(
            refused(ChatRequestFields {
                client_message_id: Some("a\nb".into()),
                ..Default::default()
            }),
            "client_message_id"
        );
        assert_eq!(
            refused(ChatRequestFields {
                attachments: vec!["not-an-id".into()],
                ..Default::default()
            }),
            "attachments"
        );
        assert_eq!(
            refused(ChatRequestFields {
                attachments: vec![FileId::new().to_string(); 21],
                ..Default::default()
            }),
            "attachments"
        );
    }
}
