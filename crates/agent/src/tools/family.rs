//! What a tool family is: a group of tools (the tool groups of docs/api.md: `shell`, `file`,
//! `message`, `search`, `browser`, `mcp`) with their schemas and their handler. Families are
//! shared by every session; what belongs to one session reaches them in the [`ToolContext`].

use super::{ToolContext, ToolOutcome};
use async_trait::async_trait;
use ironhand_llm::ToolSpec;
use serde_json::Value;

#[async_trait]
pub trait ToolFamily: Send + Sync {
    /// The tool group (docs/api.md): the `name` of this family's `tool` events.
    fn group(&self) -> &'static str;

    /// The tools this family offers the session, by the names docs/api.md fixes. Asked at the
    /// start of every step, so the list may depend on the session (MCP servers).
    async fn specs(&self, context: &ToolContext) -> Vec<ToolSpec>;

    /// Runs `function`, one of the names [`Self::specs`] offered.
    async fn call(&self, context: &ToolContext, function: &str, args: &Value) -> ToolOutcome;

    /// The run was stopped while `function` was running: stop what it started, quickly.
    async fn interrupt(&self, _context: &ToolContext, _function: &str, _args: &Value) {}
}
