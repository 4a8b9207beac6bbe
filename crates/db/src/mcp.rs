//! The SQL of `McpServerStore` (users' connectors), shared by both backends like
//! `impl_store!`: one row per user and connector name, secrets already sealed by the
//! service.

macro_rules! impl_mcp_store {
    ($store:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl ironhand_core::mcp::McpServerStore for $store {
            async fn mcp_servers(
                &self,
                user: ironhand_core::UserId,
            ) -> ironhand_core::error::StoreResult<Vec<ironhand_core::mcp::StoredMcpServer>>
            {
                use sqlx::Row;
                let rows: Vec<$row> = sqlx::query(
                    "SELECT user_id, name, transport, settings, secrets, enabled, created_at, updated_at
                     FROM mcp_servers WHERE user_id = $1 ORDER BY name",
                )
                .bind(user.0)
                .fetch_all(self.reader())
                .await
                .map_err(crate::store_err)?;
                rows.iter()
                    .map(|r| -> Result<_, sqlx::Error> {
                        Ok(ironhand_core::mcp::StoredMcpServer {
                            user_id: ironhand_core::UserId(r.try_get("user_id")?),
                            name: r.try_get("name")?,
                            transport: r.try_get("transport")?,
                            settings: r.try_get("settings")?,
                            secrets: r.try_get("secrets")?,
                            enabled: r.try_get("enabled")?,
                            created_at: r.try_get("created_at")?,
                            updated_at: r.try_get("updated_at")?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(crate::store_err)
            }

            async fn put_mcp_server(
                &self,
                server: &ironhand_core::mcp::StoredMcpServer,
            ) -> ironhand_core::error::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO mcp_servers (user_id, name, transport, settings, secrets, enabled, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (user_id, name) DO UPDATE SET
                        transport = excluded.transport, settings = excluded.settings,
                        secrets = excluded.secrets, enabled = excluded.enabled,
                        updated_at = excluded.updated_at",
                )
                .bind(server.user_id.0)
                .bind(&server.name)
                .bind(&server.transport)
                .bind(&server.settings)
                .bind(&server.secrets)
                .bind(server.enabled)
                .bind(server.created_at)
                .bind(server.updated_at)
                .execute(self.writer())
                .await
                .map_err(crate::store_err)?;
                Ok(())
            }

            async fn delete_mcp_server(
                &self,
                user: ironhand_core::UserId,
                name: &str,
            ) -> ironhand_core::error::StoreResult<bool> {
                let done = sqlx::query("DELETE FROM mcp_servers WHERE user_id = $1 AND name = $2")
                    .bind(user.0)
                    .bind(name)
                    .execute(self.writer())
                    .await
                    .map_err(crate::store_err)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
