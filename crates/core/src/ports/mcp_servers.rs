//! The storage port of users' connectors (MCP servers), secrets already sealed.

use crate::error::StoreResult;
use crate::ids::UserId;
use crate::mcp::StoredMcpServer;
use async_trait::async_trait;

#[async_trait]
pub trait McpServerStore: Send + Sync {
    /// A user's connectors, by name.
    async fn mcp_servers(&self, user: UserId) -> StoreResult<Vec<StoredMcpServer>>;
    /// Creates or replaces the connector of that user and name (`created_at` of a replaced
    /// one stays).
    async fn put_mcp_server(&self, server: &StoredMcpServer) -> StoreResult<()>;
    /// True when there was one.
    async fn delete_mcp_server(&self, user: UserId, name: &str) -> StoreResult<bool>;
}
