//! Request and response bodies of the session routes (docs/api.md, sections Sessions to
//! The live browser).

use crate::routes::{StreamEvent, StreamPayload};
use ironhand_core::session::{Session, StoredEvent, TakeoverAction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSession {
    pub session_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListSessionItem {
    pub session_id: String,
    pub title: Option<String>,
    pub latest_message: Option<String>,
    /// Epoch seconds.
    pub latest_message_at: Option<i64>,
    /// pending | running | waiting | completed | failed
    pub status: String,
    pub unread_message_count: i64,
    pub is_shared: bool,
    /// Last activity, epoch seconds with millisecond fraction: the list's order, and the
    /// `before` of the next page.
    pub updated_at: f64,
}

/// Longest `latest_message` preview in lists, in characters.
const PREVIEW_CHARS: usize = 200;

impl From<&Session> for ListSessionItem {
    fn from(s: &Session) -> Self {
        Self {
            session_id: s.id.to_string(),
            title: s.title.clone(),
            latest_message: s.latest_message.as_deref().map(|m| {
                match m.char_indices().nth(PREVIEW_CHARS) {
                    Some((cut, _)) => format!("{}…", &m[..cut]),
                    None => m.to_string(),
                }
            }),
            latest_message_at: s.latest_message_at.map(|t| t.unix_timestamp()),
            status: s.status.as_str().to_string(),
            unread_message_count: s.unread_message_count,
            is_shared: s.is_shared,
            updated_at: (s.updated_at.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<ListSessionItem>,
}

/// `POST /sessions` streams the whole list: at once, on every change, at least every 30 s.
impl StreamPayload for SessionList {
    const EVENT_SCHEMA: &'static str = "SessionListEvent";
    const EVENTS: &'static [&'static str] = &["sessions"];
    const WITH_ID: bool = false;
}

/// A `sessions` event, for the OpenAPI document (a plain name: utoipa's paths take no
/// generics that are not derived).
pub type SessionListEvent = StreamEvent<SessionList>;

/// What the `data` of every chat event holds besides its own fields
/// (docs/api.md, section SSE events).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the shape; events are built as JSON
pub struct SessionEventData {
    /// Strictly increasing within the session: the cursor to resume after.
    pub event_id: String,
    /// Epoch seconds.
    pub timestamp: i64,
}

impl StreamPayload for SessionEventData {
    const EVENT_SCHEMA: &'static str = "SessionEvent";
    const EVENTS: &'static [&'static str] = &[
        "message",
        "message_delta",
        "tool",
        "step",
        "plan",
        "title",
        "error",
        "wait",
        "takeover",
        "done",
    ];
    const WITH_ID: bool = true;
}

/// A chat event, for the OpenAPI document.
pub type SessionEvent = StreamEvent<SessionEventData>;

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    pub event: String,
    /// The event's fields with `event_id` and `timestamp`, exactly as streamed.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<&StoredEvent> for HistoryEvent {
    fn from(e: &StoredEvent) -> Self {
        Self {
            event: e.event.clone(),
            data: e.wire_data(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    pub session_id: String,
    pub title: Option<String>,
    pub status: String,
    pub events: Vec<HistoryEvent>,
    pub is_shared: bool,
}

#[derive(Debug, Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    #[schema(format = Uuid)]
    pub file_id: String,
    /// Informational: the stored file's own (sanitised) name is what the agent sees.
    #[serde(default)]
    pub filename: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// A new task, or the reply to the agent's question. Absent or empty: attach to the
    /// session's stream.
    #[schema(max_length = 100000)]
    pub message: Option<String>,
    /// Epoch seconds on the client (informational; accepted, not used).
    #[serde(rename = "timestamp")]
    pub _timestamp: Option<i64>,
    /// Cursor: replay events after this one (also taken from `Last-Event-ID`).
    #[schema(pattern = "^[0-9]{1,18}$")]
    pub event_id: Option<String>,
    #[schema(max_items = 20)]
    pub attachments: Option<Vec<Attachment>>,
    /// A client-generated id that makes a retried POST attach instead of starting again:
    /// 1 to 128 characters, none of them a control character.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub client_message_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ShellViewRequest {
    /// The shell session id the agent used.
    #[schema(min_length = 1, max_length = 64)]
    pub session_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsoleLine {
    pub ps1: String,
    pub command: String,
    pub output: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShellView {
    pub output: String,
    pub session_id: String,
    pub console: Vec<ConsoleLine>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FileViewRequest {
    /// A path inside the sandbox, e.g. `/home/ubuntu/report.md`.
    #[schema(min_length = 1, max_length = 4096)]
    pub file: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub content: String,
    pub file: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareState {
    pub session_id: String,
    pub is_shared: bool,
}

/// What the owner does with the session's browser. Read through a string, so any other
/// value (a number too) is a 422 naming the field.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum TakeoverChoice {
    /// Drive the browser from the live view; the agent pauses at its next tool call.
    Take,
    /// Give the browser back to the agent.
    HandBack,
}

impl TryFrom<String> for TakeoverChoice {
    type Error = &'static str;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.as_str() {
            "take" => Ok(Self::Take),
            "hand_back" => Ok(Self::HandBack),
            _ => Err("must be \"take\" or \"hand_back\""),
        }
    }
}

impl From<TakeoverChoice> for TakeoverAction {
    fn from(choice: TakeoverChoice) -> Self {
        match choice {
            TakeoverChoice::Take => Self::Take,
            TakeoverChoice::HandBack => Self::HandBack,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TakeoverRequest {
    pub action: TakeoverChoice,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VncUrlRequest {
    /// How long the link opens the live view, 1 to 15 minutes.
    #[schema(minimum = 1, maximum = 15)]
    pub expire_minutes: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VncUrl {
    /// `/api/v1/sessions/{id}/vnc?signature=…&expires=…`: open it as a WebSocket (ws:// or
    /// wss:// on this origin).
    pub signed_url: String,
    /// Seconds until the link stops opening new connections (open ones stay).
    pub expires_in: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Epoch seconds (fractions allowed): only sessions whose last activity is older — pass
    /// the last item's `updated_at` for the next page.
    #[param(minimum = 0, exclusive_maximum = 100000000000_i64)]
    pub before: Option<f64>,
    /// With `before`: the last item's `session_id`, so sessions active in the same
    /// millisecond are not skipped.
    #[param(format = Uuid)]
    pub before_id: Option<String>,
}

pub use crate::routes::FileInfo;
