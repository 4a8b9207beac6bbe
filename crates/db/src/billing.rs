//! The SQL of `BillingStore` and `FileStore`, shared by both backends like `impl_store!`.
//! Subscription times keep the column types of `0001_accounts.sql` (text on SQLite,
//! timestamptz on PostgreSQL) and are only ever compared in Rust; the period version is
//! what SQL compares.

macro_rules! subscription_columns {
    () => {
        "id, user_id, plan, status, monthly_agent_runs, monthly_agent_runs_limit, current_period_start,
         current_period_end, cancel_at_period_end, is_trial, trial_end, trial_used, stripe_customer_id,
         stripe_subscription_id, period_version, created_at, updated_at"
    };
}

macro_rules! file_columns {
    () => {
        "id, user_id, session_id, filename, content_type, size, sha256, storage_key, source, sandbox_path, created_at"
    };
}

/// The insert of a subscription for `$user` (the query, bound; the caller executes it), with
/// `$suffix` after the values (e.g. an `ON CONFLICT` clause).
macro_rules! insert_subscription {
    ($sub:expr, $user:expr, $suffix:literal) => {
        sqlx::query(concat!(
            "INSERT INTO subscriptions (id, user_id, plan, status, monthly_agent_runs, monthly_agent_runs_limit,
                current_period_start, current_period_end, cancel_at_period_end, is_trial, trial_end, trial_used,
                stripe_customer_id, stripe_subscription_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            $suffix
        ))
        .bind($sub.id)
        .bind($user)
        .bind(&$sub.plan)
        .bind(&$sub.status)
        .bind($sub.monthly_agent_runs)
        .bind($sub.monthly_agent_runs_limit)
        .bind($sub.current_period_start)
        .bind($sub.current_period_end)
        .bind($sub.cancel_at_period_end)
        .bind($sub.is_trial)
        .bind($sub.trial_end)
        .bind($sub.trial_used)
        .bind($sub.stripe_customer_id.as_deref())
        .bind($sub.stripe_subscription_id.as_deref())
        .bind($sub.created_at)
        .bind($sub.updated_at)
    };
}

/// The update every subscription change goes through; `$1` is the user, `$17` an optional
/// period version the row must still have. A period with another start resets the usage
/// (decided here, against the row as it is, so two events announcing the same renewal
/// reset it once).
macro_rules! update_subscription_sql {
    ($extra:literal) => {
        concat!(
            "UPDATE subscriptions SET
                plan = COALESCE($2, plan),
                status = COALESCE($3, status),
                monthly_agent_runs_limit = COALESCE($4, monthly_agent_runs_limit),
                current_period_start = COALESCE($5, current_period_start),
                current_period_end = COALESCE($6, current_period_end),
                monthly_agent_runs = CASE WHEN $7 OR ($5 IS NOT NULL AND current_period_start <> $5)
                    THEN 0 ELSE monthly_agent_runs END,
                period_version = period_version + CASE WHEN $7 OR ($5 IS NOT NULL AND current_period_start <> $5)
                    THEN 1 ELSE 0 END,
                cancel_at_period_end = COALESCE($8, cancel_at_period_end),
                is_trial = COALESCE($9, is_trial),
                trial_end = CASE WHEN $10 THEN $11 ELSE trial_end END,
                trial_used = COALESCE($12, trial_used),
                stripe_customer_id = COALESCE($13, stripe_customer_id),
                stripe_subscription_id = CASE WHEN $14 THEN $15 ELSE stripe_subscription_id END,
                updated_at = $16
             WHERE user_id = $1 AND ($17 IS NULL OR period_version = $17) ",
            $extra,
            " RETURNING ",
            subscription_columns!()
        )
    };
}

macro_rules! impl_billing_store {
    ($store:ty, $row:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use ironhand_core::billing::{BillingStore, SubscriptionUpdate};
            use ironhand_core::error::StoreResult;
            use ironhand_core::files::{FileSource, FileStore, QuotaCheck, StoredFile};
            use ironhand_core::ids::{FileId, SessionId, UserId};
            use ironhand_core::ports::store::SubscriptionStore;
            use ironhand_core::subscription::Subscription;
            use sqlx::Row as _;
            use time::OffsetDateTime;
            use $crate::sessions::{decode_err, from_ms, to_ms};
            use $crate::store_err;

            type Tx<'c> = sqlx::Transaction<'c, <$row as sqlx::Row>::Database>;

            fn subscription_row(row: &$row) -> Result<Subscription, sqlx::Error> {
                Ok(Subscription {
                    id: row.try_get("id")?,
                    user_id: UserId(row.try_get("user_id")?),
                    plan: row.try_get("plan")?,
                    status: row.try_get("status")?,
                    monthly_agent_runs: row.try_get("monthly_agent_runs")?,
                    monthly_agent_runs_limit: row.try_get("monthly_agent_runs_limit")?,
                    current_period_start: row.try_get("current_period_start")?,
                    current_period_end: row.try_get("current_period_end")?,
                    cancel_at_period_end: row.try_get("cancel_at_period_end")?,
                    is_trial: row.try_get("is_trial")?,
                    trial_end: row.try_get("trial_end")?,
                    trial_used: row.try_get("trial_used")?,
                    stripe_customer_id: row.try_get("stripe_customer_id")?,
                    stripe_subscription_id: row.try_get("stripe_subscription_id")?,
                    period_version: row.try_get("period_version")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn file_row(row: &$row) -> Result<StoredFile, sqlx::Error> {
                let source: String = row.try_get("source")?;
                Ok(StoredFile {
                    id: FileId(row.try_get("id")?),
                    user_id: UserId(row.try_get("user_id")?),
                    session_id: row.try_get::<Option<uuid::Uuid>, _>("session_id")?.map(SessionId),
                    filename: row.try_get("filename")?,
                    content_type: row.try_get("content_type")?,
                    size: row.try_get("size")?,
                    sha256: row.try_get("sha256")?,
                    storage_key: row.try_get("storage_key")?,
                    source: FileSource::parse(&source).ok_or_else(|| decode_err("file source", &source))?,
                    sandbox_path: row.try_get("sandbox_path")?,
                    created_at: from_ms(row.try_get("created_at")?)?,
                })
            }

            async fn update_in(
                tx: &mut Tx<'_>,
                sql: &'static str,
                user: UserId,
                only_version: Option<i64>,
                u: &SubscriptionUpdate,
                now: OffsetDateTime,
            ) -> StoreResult<Option<Subscription>> {
                let row = sqlx::query(sql)
                    .bind(user.0)
                    .bind(u.plan.as_deref())
                    .bind(u.status.as_deref())
                    .bind(u.monthly_agent_runs_limit)
                    .bind(u.period.map(|p| p.0))
                    .bind(u.period.map(|p| p.1))
                    .bind(u.reset_usage)
                    .bind(u.cancel_at_period_end)
                    .bind(u.is_trial)
                    .bind(u.trial_end.is_some())
                    .bind(u.trial_end.flatten())
                    .bind(u.trial_used)
                    .bind(u.stripe_customer_id.as_deref())
                    .bind(u.stripe_subscription_id.is_some())
                    .bind(u.stripe_subscription_id.clone().flatten())
                    .bind(now)
                    .bind(only_version)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(store_err)?;
                row.as_ref().map(subscription_row).transpose().map_err(store_err)
            }

            /// Queues a blob key for removal after the transaction commits.
            async fn queue_garbage(tx: &mut Tx<'_>, key: &str, now: OffsetDateTime) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO blob_garbage (storage_key, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(key)
                .bind(to_ms(now))
                .execute(&mut **tx)
                .await
                .map_err(store_err)?;
                Ok(())
            }

            impl $store {
                async fn subscription_where(&self, sql: &'static str, value: &str) -> StoreResult<Option<Subscription>> {
                    let row = sqlx::query(sql)
                        .bind(value)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(store_err)?;
                    row.as_ref().map(subscription_row).transpose().map_err(store_err)
                }

                async fn update_with(
                    &self,
                    sql: &'static str,
                    user: UserId,
                    only_version: Option<i64>,
                    u: &SubscriptionUpdate,
                    now: OffsetDateTime,
                ) -> StoreResult<Option<Subscription>> {
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    let updated = update_in(&mut tx, sql, user, only_version, u, now).await?;
                    tx.commit().await.map_err(store_err)?;
                    Ok(updated)
                }
            }

            #[async_trait]
            impl SubscriptionStore for $store {
                async fn subscription_for_user(&self, user_id: UserId) -> StoreResult<Option<Subscription>> {
                    let row = sqlx::query(concat!(
                        "SELECT ", subscription_columns!(), " FROM subscriptions WHERE user_id = $1"
                    ))
                    .bind(user_id.0)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(store_err)?;
                    row.as_ref().map(subscription_row).transpose().map_err(store_err)
                }
            }

            #[async_trait]
            impl BillingStore for $store {
                async fn ensure_subscription(&self, sub: &Subscription) -> StoreResult<()> {
                    insert_subscription!(sub, sub.user_id.0, " ON CONFLICT DO NOTHING")
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                    Ok(())
                }

                async fn update_subscription(
                    &self,
                    user_id: UserId,
                    only_version: Option<i64>,
                    update: &SubscriptionUpdate,
                    now: OffsetDateTime,
                ) -> StoreResult<Option<Subscription>> {
                    self.update_with(update_subscription_sql!(""), user_id, only_version, update, now).await
                }

                async fn start_trial(
                    &self,
                    user_id: UserId,
                    update: &SubscriptionUpdate,
                    now: OffsetDateTime,
                ) -> StoreResult<Option<Subscription>> {
                    self.update_with(
                        update_subscription_sql!("AND trial_used = FALSE AND plan = 'free'"),
                        user_id,
                        None,
                        update,
                        now,
                    )
                    .await
                }

                async fn subscription_by_customer(&self, customer_id: &str) -> StoreResult<Option<Subscription>> {
                    self.subscription_where(
                        concat!("SELECT ", subscription_columns!(), " FROM subscriptions WHERE stripe_customer_id = $1"),
                        customer_id,
                    ).await
                }

                async fn subscription_by_provider_id(&self, subscription_id: &str) -> StoreResult<Option<Subscription>> {
                    self.subscription_where(
                        concat!("SELECT ", subscription_columns!(), " FROM subscriptions WHERE stripe_subscription_id = $1"),
                        subscription_id,
                    ).await
                }

                async fn payment_event_seen(&self, event_id: &str) -> StoreResult<bool> {
                    let seen: Option<i64> =
                        sqlx::query_scalar("SELECT received_at FROM payment_events WHERE id = $1")
                            .bind(event_id)
                            .fetch_optional(self.reader())
                            .await
                            .map_err(store_err)?;
                    Ok(seen.is_some())
                }

                async fn apply_payment_event(
                    &self,
                    event_id: &str,
                    event_type: &str,
                    change: Option<(UserId, &SubscriptionUpdate)>,
                    now: OffsetDateTime,
                ) -> StoreResult<bool> {
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // A concurrent delivery of the same event waits here on the key, then
                    // finds it taken.
                    let inserted = sqlx::query(
                        "INSERT INTO payment_events (id, event_type, received_at) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(event_id)
                    .bind(event_type)
                    .bind(to_ms(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    if inserted.rows_affected() == 0 {
                        tx.rollback().await.map_err(store_err)?;
                        return Ok(false);
                    }
                    if let Some((user, update)) = change {
                        update_in(&mut tx, update_subscription_sql!(""), user, None, update, now).await?;
                    }
                    tx.commit().await.map_err(store_err)?;
                    Ok(true)
                }
            }

            #[async_trait]
            impl FileStore for $store {
                async fn insert_file(&self, f: &StoredFile, quota_bytes: i64) -> StoreResult<QuotaCheck> {
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // Locks the owner's row: a user's concurrent uploads check the quota in turn.
                    sqlx::query("UPDATE users SET is_active = is_active WHERE id = $1")
                        .bind(f.user_id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    let existing = match (f.session_id, f.sandbox_path.as_deref()) {
                        (Some(session), Some(path)) => sqlx::query(concat!(
                            "SELECT ", file_columns!(), " FROM files WHERE session_id = $1 AND sandbox_path = $2"
                        ))
                        .bind(session.0)
                        .bind(path)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_err)?
                        .as_ref()
                        .map(file_row)
                        .transpose()
                        .map_err(store_err)?,
                        _ => None,
                    };
                    let used: i64 = sqlx::query_scalar(
                        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE user_id = $1",
                    )
                    .bind(f.user_id.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    let replaced = existing.as_ref().map_or(0, |e| e.size);
                    if used - replaced + f.size > quota_bytes {
                        tx.rollback().await.map_err(store_err)?;
                        return Ok(QuotaCheck::OverQuota { used });
                    }
                    let id = match &existing {
                        Some(old) => {
                            queue_garbage(&mut tx, &old.storage_key, f.created_at).await?;
                            sqlx::query(
                                "UPDATE files SET filename = $2, content_type = $3, size = $4, sha256 = $5,
                                    storage_key = $6, created_at = $7 WHERE id = $1",
                            )
                            .bind(old.id.0)
                            .bind(&f.filename)
                            .bind(&f.content_type)
                            .bind(f.size)
                            .bind(&f.sha256)
                            .bind(&f.storage_key)
                            .bind(to_ms(f.created_at))
                            .execute(&mut *tx)
                            .await
                            .map_err(store_err)?;
                            old.id
                        }
                        None => {
                            sqlx::query(concat!(
                                "INSERT INTO files (", file_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                            ))
                            .bind(f.id.0)
                            .bind(f.user_id.0)
                            .bind(f.session_id.map(|s| s.0))
                            .bind(&f.filename)
                            .bind(&f.content_type)
                            .bind(f.size)
                            .bind(&f.sha256)
                            .bind(&f.storage_key)
                            .bind(f.source.as_str())
                            .bind(f.sandbox_path.as_deref())
                            .bind(to_ms(f.created_at))
                            .execute(&mut *tx)
                            .await
                            .map_err(store_err)?;
                            f.id
                        }
                    };
                    tx.commit().await.map_err(store_err)?;
                    Ok(QuotaCheck::Stored(StoredFile { id, ..f.clone() }))
                }

                async fn file_by_id(&self, id: FileId) -> StoreResult<Option<StoredFile>> {
                    let row = sqlx::query(concat!("SELECT ", file_columns!(), " FROM files WHERE id = $1"))
                        .bind(id.0)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(store_err)?;
                    row.as_ref().map(file_row).transpose().map_err(store_err)
                }

                async fn session_files(&self, session_id: SessionId) -> StoreResult<Vec<StoredFile>> {
                    let rows = sqlx::query(concat!(
                        "SELECT ", file_columns!(), " FROM files WHERE session_id = $1 AND source <> 'screenshot'
                         ORDER BY created_at, id LIMIT 1000"
                    ))
                    .bind(session_id.0)
                    .fetch_all(self.reader())
                    .await
                    .map_err(store_err)?;
                    rows.iter().map(file_row).collect::<Result<_, _>>().map_err(store_err)
                }

                async fn attach_file(&self, id: FileId, session_id: SessionId) -> StoreResult<()> {
                    sqlx::query("UPDATE files SET session_id = $2 WHERE id = $1 AND session_id IS NULL")
                        .bind(id.0)
                        .bind(session_id.0)
                        .execute(self.writer())
                        .await
                        .map_err(store_err)?;
                    Ok(())
                }

                async fn delete_file(&self, id: FileId, now: OffsetDateTime) -> StoreResult<bool> {
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // The key the deleted row really held (a concurrent replacement may have
                    // changed it), queued in the same transaction.
                    let key: Option<String> =
                        sqlx::query_scalar("DELETE FROM files WHERE id = $1 RETURNING storage_key")
                            .bind(id.0)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(store_err)?;
                    if let Some(key) = &key {
                        queue_garbage(&mut tx, key, now).await?;
                    }
                    tx.commit().await.map_err(store_err)?;
                    Ok(key.is_some())
                }

                async fn storage_used(&self, user_id: UserId) -> StoreResult<i64> {
                    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE user_id = $1")
                        .bind(user_id.0)
                        .fetch_one(self.reader())
                        .await
                        .map_err(store_err)
                }

                async fn blob_garbage(&self, limit: i64) -> StoreResult<Vec<String>> {
                    sqlx::query_scalar("SELECT storage_key FROM blob_garbage ORDER BY created_at LIMIT $1")
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await
                        .map_err(store_err)
                }

                async fn sweep_files(
                    &self,
                    unsent_before: Option<OffsetDateTime>,
                    now: OffsetDateTime,
                ) -> StoreResult<u64> {
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    // One statement deletes and names the keys, so nothing deleted is missed.
                    let mut keys: Vec<String> = sqlx::query_scalar(
                        "DELETE FROM files WHERE session_id IS NOT NULL
                           AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = files.session_id)
                         RETURNING storage_key",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    if let Some(before) = unsent_before {
                        let unsent: Vec<String> = sqlx::query_scalar(
                            "DELETE FROM files WHERE session_id IS NULL AND created_at < $1 RETURNING storage_key",
                        )
                        .bind(to_ms(before))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(store_err)?;
                        keys.extend(unsent);
                    }
                    for key in &keys {
                        queue_garbage(&mut tx, key, now).await?;
                    }
                    tx.commit().await.map_err(store_err)?;
                    Ok(keys.len() as u64)
                }

                async fn forget_blob_garbage(&self, keys: &[String]) -> StoreResult<()> {
                    let mut tx = self.writer().begin().await.map_err(store_err)?;
                    for key in keys {
                        sqlx::query("DELETE FROM blob_garbage WHERE storage_key = $1")
                            .bind(key)
                            .execute(&mut *tx)
                            .await
                            .map_err(store_err)?;
                    }
                    tx.commit().await.map_err(store_err)?;
                    Ok(())
                }
            }
        };
    };
}
