//! `/sessions…`: create, list, read, chat (SSE), stop, share and delete sessions, look
//! into their sandbox, and take its browser over (the live view itself is in `vnc/`).
//! Every route checks ownership: not yours is the same 404 as missing.

mod dto;
pub mod stream;
pub mod vnc;

use crate::app::{AppState, hashed_key};
use crate::http::envelope::{Envelope, ok};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{
    ApiJson, ApiPath, ApiQuery, AuthUser, ClientIp, MaybeAuthUser, OptionalJson,
};
use crate::routes::{ErrorEnvelope, NullEnvelope};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use dto::*;
use ironhand_core::ids::SessionId;
use ironhand_core::ports::sessions::ListCursor;
use ironhand_core::session::Session;
use ironhand_core::session::service::{ChatInput, ChatRequestFields};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session, list_sessions, stream_sessions))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(stop_session))
        .routes(routes!(chat))
        .routes(routes!(view_shell))
        .routes(routes!(view_file))
        .routes(routes!(session_files))
        .routes(routes!(clear_unread))
        .routes(routes!(share, unshare))
        .routes(routes!(shared_session))
        .routes(routes!(shared_files))
        .routes(routes!(takeover))
        .merge(vnc::router())
}

async fn detail(state: &AppState, session: &Session) -> Result<SessionDetail, ApiError> {
    let events = state.sessions.history(session.id).await?;
    Ok(SessionDetail {
        session_id: session.id.to_string(),
        title: session.title.clone(),
        status: session.status.as_str().to_string(),
        events: events
            .iter()
            .map(|e| {
                let mut event = HistoryEvent::from(e);
                state.files.sign_event_data(&event.event, &mut event.data);
                event
            })
            .collect(),
        is_shared: session.is_shared,
    })
}

/// The files of a session (uploaded with its messages, or produced by the agent), each
/// with a signed download URL.
async fn files_of(state: &AppState, session: &Session) -> Result<Vec<Value>, ApiError> {
    let files = state.files.session_files(session.id).await?;
    Ok(files.iter().map(|f| state.files.info_with_url(f)).collect())
}

#[utoipa::path(put, path = "/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = Envelope<CreatedSession>)))]
async fn create_session(State(state): State<AppState>, AuthUser(who): AuthUser) -> ApiResult {
    let session = state.sessions.create(who.user.id).await?;
    Ok(ok(CreatedSession {
        session_id: session.id.to_string(),
    }))
}

#[utoipa::path(get, path = "/sessions", tag = "sessions", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Envelope<SessionList>)))]
async fn list_sessions(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let before = match q.before {
        Some(seconds) if (0.0..1e11).contains(&seconds) => Some(
            OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128)
                .map_err(|_| ApiError::validation("before", "before must be epoch seconds"))?,
        ),
        Some(_) => {
            return Err(ApiError::validation(
                "before",
                "before must be epoch seconds",
            ));
        }
        None => None,
    };
    let after_id = match q.before_id.as_deref() {
        Some(raw) => Some(SessionId::parse(raw).ok_or_else(|| {
            ApiError::validation("before_id", "before_id must be a session_id from the list")
        })?),
        None => None,
    };
    let before = match (before, after_id) {
        (Some(updated_at), session_id) => Some(ListCursor {
            updated_at,
            session_id,
        }),
        (None, Some(_)) => {
            return Err(ApiError::validation("before_id", "before_id needs before"));
        }
        (None, None) => None,
    };
    let sessions = state.sessions.list(who.user.id, limit, before).await?;
    Ok(ok(SessionList {
        sessions: sessions.iter().map(ListSessionItem::from).collect(),
    }))
}

#[utoipa::path(post, path = "/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, description = "SSE: `sessions` events with `{sessions: [ListSessionItem]}`", content_type = "text/event-stream", body = SessionListEvent),
              (status = 429, body = ErrorEnvelope, description = "too many open streams")))]
async fn stream_sessions(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
) -> Result<Response, ApiError> {
    let slot = state.streams.acquire(who.user.id)?;
    Ok(stream::session_list_stream(state, who.user.id, slot))
}

#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = Envelope<SessionDetail>), (status = 404, body = ErrorEnvelope)))]
async fn get_session(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    let session = state.sessions.owned(who.user.id, id).await?;
    Ok(ok(detail(&state, &session).await?))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = NullEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_session(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    state.sessions.delete(who.user.id, id).await?;
    Ok(ok(Value::Null))
}

#[utoipa::path(post, path = "/sessions/{id}/stop", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = NullEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn stop_session(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    state.sessions.stop(who.user.id, id).await?;
    Ok(ok(Value::Null))
}

/// The chat request's fields for `ChatInput::parse` (the rules are the service's).
fn chat_input(body: ChatRequest, headers: &HeaderMap) -> Result<ChatInput, ApiError> {
    let fields = ChatRequestFields {
        message: body.message,
        client_message_id: body.client_message_id,
        event_id: body.event_id,
        last_event_id: headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        attachments: body
            .attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.file_id)
            .collect(),
    };
    Ok(ChatInput::parse(fields)?)
}

#[utoipa::path(post, path = "/sessions/{id}/chat", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")), request_body(content = Option<ChatRequest>, description = "optional: without a message, the stream attaches"),
    responses((status = 200, description = "SSE: the session's events (docs/api.md, section SSE events)", content_type = "text/event-stream", body = SessionEvent),
              (status = 402, body = ErrorEnvelope, description = "run limit reached or subscription inactive: `data = {reason, plan, used, limit, resets_at}`"),
              (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope, description = "a run is already in progress"),
              (status = 429, body = ErrorEnvelope)))]
async fn chat(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let input = chat_input(body, &headers)?;
    // Ownership first: a stranger's requests must not spend the owner's budget.
    state.sessions.owned(who.user.id, id).await?;
    let user_key = who.user.id.to_string();
    state
        .limit("chat_user", state.quotas.chat_user, &[&user_key])
        .await?;
    if input
        .message
        .as_deref()
        .is_some_and(|m| !m.trim().is_empty())
    {
        state
            .limit(
                "chat_session",
                state.quotas.chat_session,
                &[&hashed_key(&id.to_string())],
            )
            .await?;
    }
    // A slot before anything starts: a refused stream must not leave a run behind.
    let slot = state.streams.acquire(who.user.id)?;
    let start = state.sessions.start_chat(who.user.id, id, input).await?;
    Ok(stream::chat_stream(
        state,
        start.session.id,
        start.cursor,
        slot,
    ))
}

#[utoipa::path(post, path = "/sessions/{id}/shell", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")), request_body = ShellViewRequest,
    responses((status = 200, body = Envelope<ShellView>), (status = 404, body = ErrorEnvelope)))]
async fn view_shell(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
    ApiJson(body): ApiJson<ShellViewRequest>,
) -> ApiResult {
    state.sessions.owned(who.user.id, id).await?;
    if !(1..=64).contains(&body.session_id.chars().count()) {
        return Err(ApiError::validation(
            "session_id",
            "session_id must be a shell id of 1 to 64 characters",
        ));
    }
    let shell = state
        .sessions
        .shell_view(who.user.id, id, &body.session_id)
        .await?;
    Ok(ok(ShellView {
        output: shell.output,
        session_id: shell.id,
        console: shell
            .console
            .into_iter()
            .map(|c| ConsoleLine {
                ps1: c.ps1,
                command: c.command,
                output: c.output,
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/sessions/{id}/takeover", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")), request_body = TakeoverRequest,
    responses((status = 200, body = NullEnvelope, description = "emits `takeover` unless the session already has that status"),
              (status = 404, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope, description = "`take` while no browser is running")))]
async fn takeover(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
    ApiJson(body): ApiJson<TakeoverRequest>,
) -> ApiResult {
    state
        .sessions
        .takeover(who.user.id, id, body.action.into())
        .await?;
    Ok(ok(Value::Null))
}

/// Most text a file view returns.
const FILE_VIEW_LINES: i64 = 5_000;

#[utoipa::path(post, path = "/sessions/{id}/file", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")), request_body = FileViewRequest,
    responses((status = 200, body = Envelope<FileView>), (status = 404, body = ErrorEnvelope)))]
async fn view_file(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
    ApiJson(body): ApiJson<FileViewRequest>,
) -> ApiResult {
    state.sessions.owned(who.user.id, id).await?;
    if !(1..=4096).contains(&body.file.chars().count()) {
        return Err(ApiError::validation("file", "file must be a sandbox path"));
    }
    let text = state
        .sessions
        .file_view(who.user.id, id, &body.file, FILE_VIEW_LINES)
        .await?;
    Ok(ok(FileView {
        content: text.content,
        file: body.file,
    }))
}

#[utoipa::path(get, path = "/sessions/{id}/files", tag = "sessions", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = Envelope<Vec<FileInfo>>), (status = 404, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope, description = "a shared session's reader over the shared-view limit")))]
async fn session_files(
    State(state): State<AppState>,
    ip: ClientIp,
    MaybeAuthUser(who): MaybeAuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    // The owner, or anyone when the session is shared.
    let owned = match &who {
        Some(who) => state.sessions.owned(who.user.id, id).await.ok(),
        None => None,
    };
    if owned.is_none() {
        state
            .limit("shared_view", state.quotas.shared_view, &[&ip.limit_key()])
            .await?;
    }
    let session = match owned {
        Some(session) => session,
        None => state.sessions.shared(id).await?,
    };
    Ok(ok(files_of(&state, &session).await?))
}

#[utoipa::path(post, path = "/sessions/{id}/clear_unread_message_count", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = NullEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn clear_unread(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    state.sessions.clear_unread(who.user.id, id).await?;
    Ok(ok(Value::Null))
}

async fn set_shared(state: &AppState, who: &AuthUser, id: SessionId, shared: bool) -> ApiResult {
    state.sessions.set_shared(who.0.user.id, id, shared).await?;
    Ok(ok(ShareState {
        session_id: id.to_string(),
        is_shared: shared,
    }))
}

#[utoipa::path(post, path = "/sessions/{id}/share", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = Envelope<ShareState>), (status = 404, body = ErrorEnvelope)))]
async fn share(
    State(state): State<AppState>,
    who: AuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    set_shared(&state, &who, id, true).await
}

#[utoipa::path(delete, path = "/sessions/{id}/share", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = Envelope<ShareState>), (status = 404, body = ErrorEnvelope)))]
async fn unshare(
    State(state): State<AppState>,
    who: AuthUser,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    set_shared(&state, &who, id, false).await
}

#[utoipa::path(get, path = "/sessions/shared/{id}", tag = "sessions",
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = Envelope<SessionDetail>), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn shared_session(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    state
        .limit("shared_view", state.quotas.shared_view, &[&ip.limit_key()])
        .await?;
    let session = state.sessions.shared(id).await?;
    Ok(ok(detail(&state, &session).await?))
}

#[utoipa::path(get, path = "/sessions/{id}/share/files", tag = "sessions",
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, body = Envelope<Vec<FileInfo>>, description = "with signed file_url"), (status = 404, body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope)))]
async fn shared_files(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiPath(id): ApiPath<SessionId>,
) -> ApiResult {
    state
        .limit("shared_view", state.quotas.shared_view, &[&ip.limit_key()])
        .await?;
    let session = state.sessions.shared(id).await?;
    Ok(ok(files_of(&state, &session).await?))
}
