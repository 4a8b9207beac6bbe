//! Sessions, their event history and the runs of the agent inside them.

use crate::ids::{RunId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// Where a session stands, as the session list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Pending,
    Running,
    Waiting,
    Completed,
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub title: Option<String>,
    pub status: SessionStatus,
    pub latest_message: Option<String>,
    pub latest_message_at: Option<OffsetDateTime>,
    pub unread_message_count: i64,
    pub is_shared: bool,
    /// Sequence number of the newest stored event (0 when none): a stream started now
    /// follows from here.
    pub last_seq: i64,
    pub created_at: OffsetDateTime,
    /// Last activity: the list is ordered by it and retention measures idleness from it.
    pub updated_at: OffsetDateTime,
}

/// One event of a session's history, numbered in the order it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub session_id: SessionId,
    /// Per-session sequence number, from 1, strictly increasing: the stream cursor.
    pub seq: i64,
    /// The SSE event name (`message`, `tool`, `step`, …).
    pub event: String,
    /// The event's fields, without `event_id` and `timestamp` (added by [`Self::wire_data`]).
    pub data: Value,
    pub created_at: OffsetDateTime,
}

impl StoredEvent {
    /// The `event_id` clients see and send back as a cursor.
    pub fn event_id(&self) -> String {
        self.seq.to_string()
    }

    /// The `data` object as streamed: the stored fields plus `event_id` and `timestamp`.
    pub fn wire_data(&self) -> Value {
        let mut data = match &self.data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        data.insert("event_id".into(), Value::String(self.event_id()));
        data.insert(
            "timestamp".into(),
            Value::from(self.created_at.unix_timestamp()),
        );
        Value::Object(data)
    }

    /// True for the events after which a chat stream has nothing more to follow.
    pub fn ends_stream(&self) -> bool {
        self.event == "done" || self.event == "wait"
    }
}

/// Parses a client's cursor (`event_id` or `Last-Event-ID`). Anything else is `None`.
pub fn parse_cursor(raw: &str) -> Option<i64> {
    raw.trim().parse::<i64>().ok().filter(|n| *n >= 0)
}

/// What a run is doing. `queued` runs wait for a worker; `running` ones hold a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    /// The agent asked the user a question; the reply continues the same work.
    Waiting,
    Completed,
    Failed,
    Cancelled,
    /// The process running it went away and the run could not be continued.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "waiting" => Self::Waiting,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
            _ => return None,
        })
    }

    /// Queued or running: the session is busy and refuses another message.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A user's message handed to the agent: a new task, or the reply to its question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A new task: counts against the plan.
    Task,
    /// The answer to `message_ask_user`: continues the agent's work, free.
    Reply,
}

impl RunKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Reply => "reply",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "task" => Self::Task,
            "reply" => Self::Reply,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub kind: RunKind,
    pub status: RunStatus,
    pub message: String,
    /// `[{file_id, filename}]` as the client sent them.
    pub attachments: Value,
    pub client_message_id: Option<String>,
    /// How many times a worker has claimed it (a run resumed after a crash has 2+).
    pub attempts: i32,
    pub cancel_requested: bool,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// What `start_run` did.
#[derive(Debug, Clone, PartialEq)]
pub enum StartRun {
    /// Recorded and queued.
    Started(Run),
    /// A run with the same `client_message_id` exists in this session: this is it.
    Duplicate(Run),
    /// Another run of the session is queued or running.
    Busy,
    /// The meter refused: the period's run limit is reached, or the period rolled over
    /// since the caller read it (nothing was stored).
    LimitReached,
    /// The meter refused: the user already has as many runs in progress as the plan allows.
    TooManyActive,
}

pub mod event;
pub mod publisher;
pub mod service;
pub mod takeover;

pub use event::AgentEvent;
pub use publisher::EventPublisher;
pub use service::SessionService;
pub use takeover::{TakeoverAction, TakeoverStatus};
