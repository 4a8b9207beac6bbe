//! Storage ports. `ironhand-db` implements them for SQLite and PostgreSQL and runs one
//! conformance suite against both.

use crate::error::StoreResult;
use crate::ids::UserId;
use crate::ports::sessions::{AgentMemoryStore, EventLog, JobLock, RunQueue, SessionStore};
use crate::subscription::Subscription;
use crate::user::{Email, NewUser, Role, User};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored refresh token. The token itself is never stored, only its SHA-256.
#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub user_id: UserId,
    /// Every token rotated from one login shares a family; reuse of a rotated one kills it.
    pub family_id: Uuid,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
    /// When the token's family was revoked (read from the family; tokens are never revoked
    /// one by one).
    pub revoked_at: Option<OffsetDateTime>,
}

/// A one-time code mailed to a user (password reset). Only its keyed hash is stored.
#[derive(Debug, Clone)]
pub struct VerificationCode {
    pub id: Uuid,
    pub user_id: UserId,
    pub purpose: String,
    pub code_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub attempts: i32,
    pub consumed_at: Option<OffsetDateTime>,
}

/// What `prune_auth_records` deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub refresh_tokens: u64,
    pub refresh_families: u64,
    pub verification_codes: u64,
}

/// A page of the admin user list.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub total: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores the user and their free subscription in one transaction. With `role: None`
    /// the first account ever stored becomes admin. A taken email is `StoreError::Conflict`.
    async fn create_user(&self, user: &NewUser, subscription: &Subscription) -> StoreResult<User>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    /// Newest first; `query` matches email or full name, case-insensitively.
    async fn list_users(
        &self,
        offset: i64,
        limit: i64,
        query: Option<&str>,
    ) -> StoreResult<UserPage>;
    async fn update_fullname(
        &self,
        id: UserId,
        fullname: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>>;
    /// In one transaction: sets a new password hash, bumps the token version (older access
    /// tokens and refresh families die) and, with `keep_family`, carries that one family
    /// over to the new version so the session making the change continues.
    async fn update_password(
        &self,
        id: UserId,
        password_hash: &str,
        keep_family: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Swaps `old_hash` for `new_hash` (same password, newer costs) without touching
    /// sessions; does nothing if the hash changed meanwhile.
    async fn replace_password_hash(
        &self,
        id: UserId,
        old_hash: &str,
        new_hash: &str,
    ) -> StoreResult<()>;
    /// Ends every session of the user: bumps the token version and revokes every family.
    async fn end_all_sessions(&self, id: UserId, now: OffsetDateTime) -> StoreResult<()>;
    /// Returns false when the user does not exist. Deactivation bumps the token version.
    async fn set_active(&self, id: UserId, active: bool, now: OffsetDateTime) -> StoreResult<bool>;
    async fn set_role(&self, id: UserId, role: Role, now: OffsetDateTime) -> StoreResult<()>;
    async fn record_login(&self, id: UserId, now: OffsetDateTime) -> StoreResult<()>;
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Starts a new family (a login) with its first token, at the user's `token_version`
    /// as read when the login was checked.
    async fn start_refresh_family(
        &self,
        first: &RefreshTokenRecord,
        token_version: i64,
    ) -> StoreResult<()>;
    /// The token, with `revoked_at` set when its family is revoked.
    async fn refresh_token_by_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<RefreshTokenRecord>>;
    /// In one transaction, and only while the family is live, its token version is the
    /// user's, the user is active and `old_id` not yet rotated: marks `old_id` rotated and
    /// stores `next` in the same family. False otherwise.
    async fn rotate_refresh_token(
        &self,
        old_id: Uuid,
        next: &RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Returns how many families were revoked (0 when it already was).
    async fn revoke_refresh_family(&self, family_id: Uuid, now: OffsetDateTime)
    -> StoreResult<u64>;
    /// Revokes every live family of the user except `keep_family`.
    async fn revoke_user_refresh_tokens(
        &self,
        user_id: UserId,
        keep_family: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait VerificationCodeStore: Send + Sync {
    /// Stores a new code and drops any earlier unconsumed code of the same user and purpose.
    async fn replace_verification_code(&self, code: &VerificationCode) -> StoreResult<()>;
    /// The newest unconsumed code of the user for this purpose, expired or not.
    async fn active_verification_code(
        &self,
        user_id: UserId,
        purpose: &str,
    ) -> StoreResult<Option<VerificationCode>>;
    /// Counts a wrong guess if the code is still usable (`attempts < max_attempts`);
    /// returns the new count, or `None` when the code was already burned or used.
    async fn record_failed_code_attempt(
        &self,
        id: Uuid,
        max_attempts: i32,
    ) -> StoreResult<Option<i32>>;
    /// In one transaction: consume the code (only if unused and under the attempt limit),
    /// set the password, bump the token version and revoke every refresh token.
    /// False when the code was no longer usable.
    async fn reset_password_with_code(
        &self,
        code_id: Uuid,
        max_attempts: i32,
        user_id: UserId,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    async fn subscription_for_user(&self, user_id: UserId) -> StoreResult<Option<Subscription>>;
}

/// Everything Ironhand stores, in one database.
#[async_trait]
pub trait Store:
    UserStore
    + RefreshTokenStore
    + VerificationCodeStore
    + SubscriptionStore
    + SessionStore
    + EventLog
    + RunQueue
    + AgentMemoryStore
    + JobLock
    + crate::files::FileStore
    + crate::billing::BillingStore
    + crate::mcp::McpServerStore
    + crate::workspace::WorkspaceStore
{
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Deletes auth records that can no longer matter: refresh tokens past their expiry,
    /// families with no live token or revoked before `revoked_before`, and verification
    /// codes that expired or were used before `codes_before`. Rotated tokens are kept until
    /// they expire, since presenting one is how reuse is detected.
    async fn prune_auth_records(
        &self,
        now: OffsetDateTime,
        revoked_before: OffsetDateTime,
        codes_before: OffsetDateTime,
    ) -> StoreResult<PruneReport>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}
