//! `/mcp/servers…`: a user's connectors (MCP servers) and, read-only, the operator's. The
//! rules live in `McpService`; secrets (`env`, `headers` values) are write-only.

use crate::app::AppState;
use crate::http::envelope::{Envelope, ok};
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, AuthUser};
use crate::routes::{ErrorEnvelope, NullEnvelope};
use axum::extract::State;
use ironhand_core::mcp::McpServerInput;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_servers, put_server))
        .routes(routes!(delete_server))
        .routes(routes!(test_server))
}

/// A connector as answers show it: secrets only by their names (`env_keys`, `header_keys`).
/// See docs/api.md, section Connectors (MCP).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documents the shape; the service's view is what is sent
pub struct McpServer {
    pub name: String,
    #[schema(pattern = "^(stdio|sse|streamable-http)$")]
    pub transport: String,
    pub url: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    /// The names of its environment variables (values are never shown).
    pub env_keys: Option<Vec<String>>,
    /// The names of its HTTP headers (values are never shown).
    pub header_keys: Option<Vec<String>>,
    pub enabled: bool,
    #[schema(pattern = "^(user|operator)$")]
    pub scope: String,
    pub description: Option<String>,
    /// The last start or test on this server: "ready: 12 tools", "failed to start: …".
    pub status: Option<String>,
}

/// One connector to create or replace (by name). In `env` and `headers`, `null` keeps the
/// stored value of that name, a string replaces it, and a name left out is removed.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PutServerRequest {
    /// 1–64 letters, digits, `_` or `-`, starting and ending with a letter or digit,
    /// without `__`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$"
    )]
    pub name: String,
    #[schema(pattern = "^(stdio|sse|streamable-http)$")]
    pub transport: String,
    /// sse / streamable-http: an http(s) URL (users' may not point at loopback or private
    /// addresses unless the operator allows it).
    #[schema(min_length = 1, max_length = 2048)]
    pub url: Option<String>,
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub headers: Option<BTreeMap<String, Option<String>>>,
    /// stdio: a program of the operator's allow-list (`mcp.user_stdio_commands`).
    #[schema(min_length = 1, max_length = 256)]
    pub command: Option<String>,
    #[schema(max_items = 64)]
    pub args: Option<Vec<String>>,
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub env: Option<BTreeMap<String, Option<String>>>,
    pub enabled: Option<bool>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct TestedTool {
    pub name: String,
    pub description: String,
}

#[derive(Serialize, ToSchema)]
pub struct TestResult {
    #[schema(value_type = Vec<TestedTool>)]
    pub tools: Vec<ironhand_core::mcp::TestedTool>,
}

#[utoipa::path(get, path = "/mcp/servers", tag = "connectors", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<McpServer>>), (status = 401, body = ErrorEnvelope)))]
async fn list_servers(State(state): State<AppState>, AuthUser(user): AuthUser) -> ApiResult {
    Ok(ok(state.mcp.list(user.user.id).await?))
}

#[utoipa::path(put, path = "/mcp/servers", tag = "connectors", security(("bearer" = [])),
    request_body = PutServerRequest,
    responses((status = 200, body = Envelope<McpServer>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "users' own connectors are turned off"),
              (status = 409, body = ErrorEnvelope, description = "the name of an operator connector"),
              (status = 422, body = ErrorEnvelope, description = "a field is not valid (unknown transport, a command outside the allow-list, a private URL…)")))]
async fn put_server(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<PutServerRequest>,
) -> ApiResult {
    let input = McpServerInput {
        name: req.name,
        transport: req.transport,
        url: req.url,
        headers: req.headers,
        command: req.command,
        args: req.args,
        env: req.env,
        enabled: req.enabled,
        description: req.description,
    };
    Ok(ok(state.mcp.put(user.user.id, input).await?))
}

#[utoipa::path(delete, path = "/mcp/servers/{name}", tag = "connectors", security(("bearer" = [])),
    params(("name" = String, Path, description = "the connector's name")),
    responses((status = 200, body = NullEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope, description = "no such connector of yours (operator connectors cannot be deleted)")))]
async fn delete_server(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(name): ApiPath<String>,
) -> ApiResult {
    state.mcp.delete(user.user.id, &name).await?;
    Ok(ok(serde_json::Value::Null))
}

#[utoipa::path(post, path = "/mcp/servers/{name}/test", tag = "connectors", security(("bearer" = [])),
    params(("name" = String, Path, description = "the connector's name")),
    responses((status = 200, body = Envelope<TestResult>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 502, body = ErrorEnvelope, description = "the connector did not start or answer: the message says why"),
              (status = 503, body = ErrorEnvelope)))]
async fn test_server(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(name): ApiPath<String>,
) -> ApiResult {
    let tools = state.mcp.test(user.user.id, &name).await?;
    Ok(ok(TestResult { tools }))
}
