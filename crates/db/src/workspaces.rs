//! The SQL of `WorkspaceStore` (workspace snapshots and who holds a session's sandbox),
//! shared by both backends like `impl_store!`. Times are integer Unix milliseconds.

macro_rules! snapshot_columns {
    () => {
        "session_id, version, storage_key, size, sha256, files, bytes, left_out_files, left_out_bytes, instance, created_at"
    };
}

macro_rules! impl_workspace_store {
    ($store:ty, $row:ty) => {
        const _: () = {
            use crate::sessions::{from_ms, to_ms};
            use crate::store_err;
            use ironhand_core::error::StoreResult;
            use ironhand_core::ids::SessionId;
            use ironhand_core::workspace::{WorkspaceSnapshot, WorkspaceStore};
            use sqlx::Row;

            fn snapshot_from_row(r: &$row) -> Result<WorkspaceSnapshot, sqlx::Error> {
                Ok(WorkspaceSnapshot {
                    session_id: SessionId(r.try_get("session_id")?),
                    version: r.try_get("version")?,
                    storage_key: r.try_get("storage_key")?,
                    size: r.try_get("size")?,
                    sha256: r.try_get("sha256")?,
                    files: r.try_get("files")?,
                    bytes: r.try_get("bytes")?,
                    left_out_files: r.try_get("left_out_files")?,
                    left_out_bytes: r.try_get("left_out_bytes")?,
                    instance: r.try_get("instance")?,
                    created_at: from_ms(r.try_get("created_at")?)?,
                })
            }

            #[async_trait::async_trait]
            impl WorkspaceStore for $store {
                async fn latest_snapshot(
                    &self,
                    session: SessionId,
                ) -> StoreResult<Option<WorkspaceSnapshot>> {
                    let row = sqlx::query(concat!(
                        "SELECT ", snapshot_columns!(), " FROM workspace_snapshots WHERE session_id = $1"
                    ))
                    .bind(session.0)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(store_err)?;
                    row.as_ref().map(snapshot_from_row).transpose().map_err(store_err)
                }

                async fn record_snapshot(
                    &self,
                    s: &WorkspaceSnapshot,
                ) -> StoreResult<Option<WorkspaceSnapshot>> {
                    let now = to_ms(s.created_at);
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // Locks the session's row (as `delete_session` does before it reads the
                    // snapshot), and checks that this instance still holds its sandbox.
                    let held: Option<i32> = sqlx::query_scalar(
                        "UPDATE sessions SET sandbox_instance = sandbox_instance
                         WHERE id = $1 AND sandbox_instance = $2 RETURNING 1",
                    )
                    .bind(s.session_id.0)
                    .bind(&s.instance)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    if held.is_none() {
                        tx.rollback().await.map_err(store_err)?;
                        return Ok(None);
                    }
                    sqlx::query(
                        "INSERT INTO blob_garbage (storage_key, created_at)
                         SELECT storage_key, $2 FROM workspace_snapshots WHERE session_id = $1
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(s.session_id.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    let row = sqlx::query(concat!(
                        "INSERT INTO workspace_snapshots (", snapshot_columns!(), ")
                         VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                         ON CONFLICT (session_id) DO UPDATE SET
                            version = workspace_snapshots.version + 1,
                            storage_key = excluded.storage_key, size = excluded.size,
                            sha256 = excluded.sha256, files = excluded.files,
                            bytes = excluded.bytes, left_out_files = excluded.left_out_files,
                            left_out_bytes = excluded.left_out_bytes,
                            instance = excluded.instance, created_at = excluded.created_at
                         RETURNING ", snapshot_columns!()
                    ))
                    .bind(s.session_id.0)
                    .bind(&s.storage_key)
                    .bind(s.size)
                    .bind(&s.sha256)
                    .bind(s.files)
                    .bind(s.bytes)
                    .bind(s.left_out_files)
                    .bind(s.left_out_bytes)
                    .bind(&s.instance)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    let stored = snapshot_from_row(&row).map_err(store_err)?;
                    tx.commit().await.map_err(store_err)?;
                    Ok(Some(stored))
                }

                async fn hold_sandbox(&self, session: SessionId, instance: &str) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET sandbox_instance = $2 WHERE id = $1")
                        .bind(session.0)
                        .bind(instance)
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(())
                }

                async fn release_sandbox(
                    &self,
                    session: Option<SessionId>,
                    instance: &str,
                ) -> StoreResult<u64> {
                    let done = match session {
                        Some(session) => sqlx::query(
                            "UPDATE sessions SET sandbox_instance = NULL
                             WHERE id = $1 AND sandbox_instance = $2",
                        )
                        .bind(session.0)
                        .bind(instance)
                        .execute(self.writer())
                        .await,
                        None => sqlx::query(
                            "UPDATE sessions SET sandbox_instance = NULL WHERE sandbox_instance = $1",
                        )
                        .bind(instance)
                        .execute(self.writer())
                        .await,
                    }
                    .map_err(store_err)?;
                    Ok(done.rows_affected())
                }

                async fn sandbox_holder(&self, session: SessionId) -> StoreResult<Option<String>> {
                    let holder: Option<Option<String>> =
                        sqlx::query_scalar("SELECT sandbox_instance FROM sessions WHERE id = $1")
                            .bind(session.0)
                            .fetch_optional(self.reader())
                            .await
                            .map_err(store_err)?;
                    Ok(holder.flatten())
                }
            }
        };
    };
}
