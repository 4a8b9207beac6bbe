//! The SQL both backends share. `impl_store!(Type, Row)` implements every storage port for a
//! store type that has `reader()` and `writer()` pools; the text of each query is identical
//! on SQLite and PostgreSQL, so one conformance suite guards both.

macro_rules! impl_store {
    ($store:ty, $row:ty, $backend:literal) => {
        use async_trait::async_trait;
        use ironhand_core::error::StoreResult;
        use ironhand_core::ids::UserId;
        use ironhand_core::ports::store::{
            RefreshTokenRecord, RefreshTokenStore, UserPage, UserStore, VerificationCode,
            VerificationCodeStore,
        };
        use ironhand_core::subscription::Subscription;
        use ironhand_core::user::{Email, NewUser, Role, User};
        use sqlx::Row as _;
        use time::OffsetDateTime;
        use uuid::Uuid;
        use $crate::store_err;

        fn user_from_row(row: &$row) -> Result<User, sqlx::Error> {
            let role: String = row.try_get("role")?;
            Ok(User {
                id: UserId(row.try_get("id")?),
                email: row.try_get("email")?,
                fullname: row.try_get("fullname")?,
                password_hash: row.try_get("password_hash")?,
                role: Role::parse(&role).unwrap_or(Role::User),
                is_active: row.try_get("is_active")?,
                token_version: row.try_get("token_version")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                last_login_at: row.try_get("last_login_at")?,
            })
        }

        fn refresh_from_row(row: &$row) -> Result<RefreshTokenRecord, sqlx::Error> {
            Ok(RefreshTokenRecord {
                id: row.try_get("id")?,
                user_id: UserId(row.try_get("user_id")?),
                family_id: row.try_get("family_id")?,
                token_hash: row.try_get("token_hash")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                rotated_at: row.try_get("rotated_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn code_from_row(row: &$row) -> Result<VerificationCode, sqlx::Error> {
            Ok(VerificationCode {
                id: row.try_get("id")?,
                user_id: UserId(row.try_get("user_id")?),
                purpose: row.try_get("purpose")?,
                code_hash: row.try_get("code_hash")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                attempts: row.try_get("attempts")?,
                consumed_at: row.try_get("consumed_at")?,
            })
        }


        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, user: &NewUser, sub: &Subscription) -> StoreResult<User> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                // Accounts that are admin (or may become one) claim the first-account slot;
                // explicitly plain accounts (the anonymous user, `user create` without
                // --admin) do not take it from the first real registrant.
                let claimed = if user.role == Some(Role::User) {
                    false
                } else {
                    sqlx::query("INSERT INTO first_account (singleton, user_id) VALUES (1, $1) ON CONFLICT DO NOTHING")
                        .bind(user.id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?
                        .rows_affected()
                        == 1
                };
                let role = user.role.unwrap_or(if claimed { Role::Admin } else { Role::User });
                let row = sqlx::query(
                    "INSERT INTO users (id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, TRUE, 0, $6, $6)
                     RETURNING id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at, last_login_at",
                )
                .bind(user.id.0)
                .bind(user.email.as_str())
                .bind(&user.fullname)
                .bind(user.password_hash.as_deref())
                .bind(role.as_str())
                .bind(user.now)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_err)?;
                let created = user_from_row(&row).map_err(store_err)?;
                insert_subscription!(sub, created.id.0, "")
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
                tx.commit().await.map_err(store_err)?;
                Ok(created)
            }

            async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
                let row = sqlx::query(
                    "SELECT id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at, last_login_at
                     FROM users WHERE id = $1",
                )
                .bind(id.0)
                .fetch_optional(self.reader())
                .await
                .map_err(store_err)?;
                row.as_ref().map(user_from_row).transpose().map_err(store_err)
            }

            async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
                let row = sqlx::query(
                    "SELECT id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at, last_login_at
                     FROM users WHERE email = $1",
                )
                .bind(email.as_str())
                .fetch_optional(self.reader())
                .await
                .map_err(store_err)?;
                row.as_ref().map(user_from_row).transpose().map_err(store_err)
            }

            async fn list_users(&self, offset: i64, limit: i64, query: Option<&str>) -> StoreResult<UserPage> {
                let (rows, total) = match query {
                    Some(q) => {
                        let pattern = format!(
                            "%{}%",
                            q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                        );
                        let rows = sqlx::query(
                            "SELECT id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at, last_login_at
                             FROM users
                             WHERE LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(fullname) LIKE $1 ESCAPE '\\'
                             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                        )
                        .bind(&pattern)
                        .bind(limit)
                        .bind(offset)
                        .fetch_all(self.reader())
                        .await
                        .map_err(store_err)?;
                        let total: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM users WHERE LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(fullname) LIKE $1 ESCAPE '\\'",
                        )
                        .bind(&pattern)
                        .fetch_one(self.reader())
                        .await
                        .map_err(store_err)?;
                        (rows, total)
                    }
                    None => {
                        let rows = sqlx::query(
                            "SELECT id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at, last_login_at
                             FROM users ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2",
                        )
                        .bind(limit)
                        .bind(offset)
                        .fetch_all(self.reader())
                        .await
                        .map_err(store_err)?;
                        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                            .fetch_one(self.reader())
                            .await
                            .map_err(store_err)?;
                        (rows, total)
                    }
                };
                let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>().map_err(store_err)?;
                Ok(UserPage { users, total })
            }

            async fn update_fullname(&self, id: UserId, fullname: &str, now: OffsetDateTime) -> StoreResult<Option<User>> {
                let row = sqlx::query(
                    "UPDATE users SET fullname = $2, updated_at = $3 WHERE id = $1
                     RETURNING id, email, fullname, password_hash, role, is_active, token_version, created_at, updated_at, last_login_at",
                )
                .bind(id.0)
                .bind(fullname)
                .bind(now)
                .fetch_optional(self.writer())
                .await
                .map_err(store_err)?;
                row.as_ref().map(user_from_row).transpose().map_err(store_err)
            }

            async fn update_password(
                &self,
                id: UserId,
                password_hash: &str,
                keep_family: Option<Uuid>,
                now: OffsetDateTime,
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                let version: Option<i64> = sqlx::query_scalar(
                    "UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = $3
                     WHERE id = $1 RETURNING token_version",
                )
                .bind(id.0)
                .bind(password_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_err)?;
                if let (Some(version), Some(keep)) = (version, keep_family) {
                    sqlx::query(
                        "UPDATE refresh_families SET token_version = $3
                         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(keep)
                    .bind(id.0)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                }
                revoke_families_except(&mut tx, id, keep_family, now).await.map_err(store_err)?;
                tx.commit().await.map_err(store_err)
            }

            async fn replace_password_hash(&self, id: UserId, old_hash: &str, new_hash: &str) -> StoreResult<()> {
                sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                    .bind(id.0)
                    .bind(old_hash)
                    .bind(new_hash)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                Ok(())
            }

            async fn end_all_sessions(&self, id: UserId, now: OffsetDateTime) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                sqlx::query("UPDATE users SET token_version = token_version + 1, updated_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                revoke_families_except(&mut tx, id, None, now).await.map_err(store_err)?;
                tx.commit().await.map_err(store_err)
            }

            async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE users SET is_active = $2,
                        token_version = CASE WHEN $2 THEN token_version ELSE token_version + 1 END,
                        updated_at = $3
                     WHERE id = $1",
                )
                .bind(id.0)
                .bind(active)
                .bind(now)
                .execute(self.writer())
                .await
                .map_err(store_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> StoreResult<()> {
                sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.0)
                    .bind(role.as_str())
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                Ok(())
            }

            async fn record_login(&self, id: UserId, now: OffsetDateTime) -> StoreResult<()> {
                sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                Ok(())
            }
        }

        /// Revokes the user's live families except `keep`, in id order (so two revocations of
        /// the same user's families never lock them in opposite orders).
        async fn revoke_families_except(
            tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
            user_id: UserId,
            keep: Option<Uuid>,
            now: OffsetDateTime,
        ) -> Result<u64, sqlx::Error> {
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM refresh_families WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
            )
            .bind(user_id.0)
            .fetch_all(&mut **tx)
            .await?;
            let mut revoked = 0;
            for id in ids.into_iter().filter(|id| Some(*id) != keep) {
                revoked += sqlx::query("UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
            }
            Ok(revoked)
        }

        async fn insert_token(
            tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
            t: &RefreshTokenRecord,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at, rotated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(t.id)
            .bind(t.user_id.0)
            .bind(t.family_id)
            .bind(&t.token_hash)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.rotated_at)
            .execute(&mut **tx)
            .await
            .map(|_| ())
        }

        impl $store {
            /// Shared body of `Store::prune_auth_records`. Each batch is its own statement (no
            /// long transaction holding locks or the SQLite writer), at most `PRUNE_BATCH`
            /// rows at a time. Times compare as stored values; on SQLite that is text, exact
            /// to the second, which is ample for these cut-offs.
            async fn prune_auth(
                &self,
                now: OffsetDateTime,
                revoked_before: OffsetDateTime,
                codes_before: OffsetDateTime,
            ) -> StoreResult<ironhand_core::ports::store::PruneReport> {
                const PRUNE_BATCH: i64 = 1000;
                let mut report = ironhand_core::ports::store::PruneReport::default();
                // Families first (their tokens go with them), so that, like a rotation, a
                // prune never locks a token before its family.
                loop {
                    let n = sqlx::query(
                        "DELETE FROM refresh_families WHERE id IN (
                            SELECT f.id FROM refresh_families f
                            WHERE (f.revoked_at IS NOT NULL AND f.revoked_at < $1)
                               OR NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id AND t.expires_at >= $2)
                            LIMIT $3)",
                    )
                    .bind(revoked_before)
                    .bind(now)
                    .bind(PRUNE_BATCH)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?
                    .rows_affected();
                    report.refresh_families += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                }
                loop {
                    let n = sqlx::query(
                        "DELETE FROM refresh_tokens WHERE id IN (
                            SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
                    )
                    .bind(now)
                    .bind(PRUNE_BATCH)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?
                    .rows_affected();
                    report.refresh_tokens += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                }
                loop {
                    let n = sqlx::query(
                        "DELETE FROM verification_codes WHERE id IN (
                            SELECT id FROM verification_codes
                            WHERE expires_at < $1 OR (consumed_at IS NOT NULL AND consumed_at < $1)
                            LIMIT $2)",
                    )
                    .bind(codes_before)
                    .bind(PRUNE_BATCH)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?
                    .rows_affected();
                    report.verification_codes += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                }
                Ok(report)
            }
        }

        #[async_trait]
        impl RefreshTokenStore for $store {
            async fn start_refresh_family(&self, first: &RefreshTokenRecord, token_version: i64) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                sqlx::query(
                    "INSERT INTO refresh_families (id, user_id, created_at, last_used_at, revoked_at, token_version)
                     VALUES ($1, $2, $3, $3, NULL, $4)",
                )
                .bind(first.family_id)
                .bind(first.user_id.0)
                .bind(first.created_at)
                .bind(token_version)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
                insert_token(&mut tx, first).await.map_err(store_err)?;
                tx.commit().await.map_err(store_err)
            }

            async fn refresh_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<RefreshTokenRecord>> {
                let row = sqlx::query(
                    "SELECT t.id, t.user_id, t.family_id, t.token_hash, t.created_at, t.expires_at, t.rotated_at, f.revoked_at
                     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                     WHERE t.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(store_err)?;
                row.as_ref().map(refresh_from_row).transpose().map_err(store_err)
            }

            async fn rotate_refresh_token(&self, old_id: Uuid, next: &RefreshTokenRecord, now: OffsetDateTime) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                // Locks the family row: a concurrent revocation waits for this transaction
                // and then revokes the family, new token included.
                let live = sqlx::query(
                    "UPDATE refresh_families SET last_used_at = $2
                     WHERE id = $1 AND revoked_at IS NULL
                       AND token_version = (SELECT u.token_version FROM users u
                                            WHERE u.id = refresh_families.user_id AND u.is_active)",
                )
                    .bind(next.family_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                if live.rows_affected() != 1 {
                    return Ok(false);
                }
                let rotated = sqlx::query(
                    "UPDATE refresh_tokens SET rotated_at = $2 WHERE id = $1 AND family_id = $3 AND rotated_at IS NULL",
                )
                .bind(old_id)
                .bind(now)
                .bind(next.family_id)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
                if rotated.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_token(&mut tx, next).await.map_err(store_err)?;
                tx.commit().await.map_err(store_err)?;
                Ok(true)
            }

            async fn revoke_refresh_family(&self, family_id: Uuid, now: OffsetDateTime) -> StoreResult<u64> {
                let done = sqlx::query("UPDATE refresh_families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(family_id)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(store_err)?;
                Ok(done.rows_affected())
            }

            async fn revoke_user_refresh_tokens(
                &self,
                user_id: UserId,
                keep_family: Option<Uuid>,
                now: OffsetDateTime,
            ) -> StoreResult<u64> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                let revoked = revoke_families_except(&mut tx, user_id, keep_family, now).await.map_err(store_err)?;
                tx.commit().await.map_err(store_err)?;
                Ok(revoked)
            }
        }

        #[async_trait]
        impl VerificationCodeStore for $store {
            async fn replace_verification_code(&self, c: &VerificationCode) -> StoreResult<()> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                sqlx::query("DELETE FROM verification_codes WHERE user_id = $1 AND purpose = $2")
                    .bind(c.user_id.0)
                    .bind(&c.purpose)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                sqlx::query(
                    "INSERT INTO verification_codes (id, user_id, purpose, code_hash, created_at, expires_at, attempts, consumed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(c.id)
                .bind(c.user_id.0)
                .bind(&c.purpose)
                .bind(&c.code_hash)
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.attempts)
                .bind(c.consumed_at)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
                tx.commit().await.map_err(store_err)
            }

            async fn active_verification_code(&self, user_id: UserId, purpose: &str) -> StoreResult<Option<VerificationCode>> {
                let row = sqlx::query(
                    "SELECT id, user_id, purpose, code_hash, created_at, expires_at, attempts, consumed_at
                     FROM verification_codes
                     WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(user_id.0)
                .bind(purpose)
                .fetch_optional(self.reader())
                .await
                .map_err(store_err)?;
                row.as_ref().map(code_from_row).transpose().map_err(store_err)
            }

            async fn record_failed_code_attempt(&self, id: Uuid, max_attempts: i32) -> StoreResult<Option<i32>> {
                let attempts: Option<i32> = sqlx::query_scalar(
                    "UPDATE verification_codes SET attempts = attempts + 1
                     WHERE id = $1 AND consumed_at IS NULL AND attempts < $2
                     RETURNING attempts",
                )
                .bind(id)
                .bind(max_attempts)
                .fetch_optional(self.writer())
                .await
                .map_err(store_err)?;
                Ok(attempts)
            }

            async fn reset_password_with_code(
                &self,
                code_id: Uuid,
                max_attempts: i32,
                user_id: UserId,
                password_hash: &str,
                now: OffsetDateTime,
            ) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await.map_err(store_err)?;
                let consumed = sqlx::query(
                    "UPDATE verification_codes SET consumed_at = $2
                     WHERE id = $1 AND user_id = $3 AND consumed_at IS NULL AND attempts < $4",
                )
                .bind(code_id)
                .bind(now)
                .bind(user_id.0)
                .bind(max_attempts)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
                if consumed.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = $3 WHERE id = $1",
                )
                .bind(user_id.0)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
                revoke_families_except(&mut tx, user_id, None, now).await.map_err(store_err)?;
                tx.commit().await.map_err(store_err)?;
                Ok(true)
            }
        }

        #[async_trait]
        impl ironhand_core::ports::Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await.map(|_| ()).map_err(store_err)
            }

            async fn prune_auth_records(
                &self,
                now: OffsetDateTime,
                revoked_before: OffsetDateTime,
                codes_before: OffsetDateTime,
            ) -> StoreResult<ironhand_core::ports::store::PruneReport> {
                self.prune_auth(now, revoked_before, codes_before).await
            }

            fn backend(&self) -> &'static str {
                $backend
            }
        }
    };
}
