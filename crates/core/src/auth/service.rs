//! Every rule of accounts and tokens (docs/api.md, section Auth; docs/architecture.md, Tokens
//! and Passwords): sign-up, sign-in, sessions and their revocation. Password reset lives in
//! `reset.rs`, administration in `accounts.rs`. Routes call these methods; rate limits and
//! cookies are HTTP concerns and stay in the server.

use super::password::PasswordHasher;
use super::tokens::{self, ACCESS, AccessClaims, TokenSigner};
use crate::error::{DomainError, FieldError};
use crate::ids::UserId;
use crate::ports::store::RefreshTokenRecord;
use crate::ports::{Mailer, Store, TokenDenylist};
use crate::subscription::Subscription;
use crate::user::{Email, NewUser, Role, User, check_password, parse_fullname};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

pub const RESET_PASSWORD: &str = "reset_password";
const INVALID_LOGIN: &str = "Invalid email or password";
/// How far apart the clocks of two instances may be: an ended login stays denied this much
/// longer than an access token lives, so no instance still honours one of its tokens.
const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(60);
/// How long a device token handed out at a sign-in marks that client as a known device.
pub const KNOWN_DEVICE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// The most rotations one grace answer walks to reach a login's newest refresh token.
const MAX_SUCCESSOR_STEPS: usize = 16;
pub(super) const INVALID_CODE: &str =
    "The verification code is invalid or has expired. Request a new code.";
pub(super) const ANONYMOUS_EMAIL: &str = "anonymous@ironhand.local";

/// Who may sign in: anyone with an account, one configured account, or nobody needs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProvider {
    Password,
    Local,
    None,
}

impl AuthProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthProvider::Password => "password",
            AuthProvider::Local => "local",
            AuthProvider::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub provider: AuthProvider,
    pub registration_open: bool,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub code_ttl: Duration,
    pub code_max_attempts: i32,
    /// How long a refresh token that was just rotated still answers, with its successor
    /// (two tabs racing one refresh); zero treats every second use as theft.
    pub refresh_reuse_grace: Duration,
    pub free_monthly_runs: i64,
    pub product_name: String,
    /// The one account that may log in when `provider = Local` (lower-cased).
    pub local_email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_in: Duration,
}

/// A request's verified identity.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    /// `None` for the anonymous user of `auth_provider = none`.
    pub claims: Option<AccessClaims>,
}

#[derive(Clone)]
pub struct AuthService {
    pub(super) store: Arc<dyn Store>,
    pub(super) denylist: Arc<dyn TokenDenylist>,
    pub(super) mailer: Arc<dyn Mailer>,
    pub(super) hasher: PasswordHasher,
    pub(super) signer: TokenSigner,
    pub(super) settings: AuthSettings,
}

pub(super) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(super) fn validation(errors: Vec<FieldError>) -> DomainError {
    DomainError::Validation(errors)
}

/// An email as typed, the way accounts store it (trimmed, lower-cased).
fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn session_expired() -> DomainError {
    DomainError::Unauthorized("Your session has expired. Please log in again.".into())
}

impl AuthService {
    pub fn new(
        store: Arc<dyn Store>,
        denylist: Arc<dyn TokenDenylist>,
        mailer: Arc<dyn Mailer>,
        hasher: PasswordHasher,
        signer: TokenSigner,
        settings: AuthSettings,
    ) -> Self {
        Self {
            store,
            denylist,
            mailer,
            hasher,
            signer,
            settings,
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub(super) fn require_password_provider(&self, action: &str) -> Result<(), DomainError> {
        if self.settings.provider == AuthProvider::Password {
            Ok(())
        } else {
            Err(DomainError::BadRequest(format!(
                "{action} is not available: this server uses auth_provider = {}.",
                self.settings.provider.as_str()
            )))
        }
    }

    /// In `local` mode only the configured account may hold a session, even if the
    /// database has others from an earlier `password` life.
    fn may_sign_in(&self, user: &User) -> bool {
        self.settings.provider != AuthProvider::Local
            || self.settings.local_email.as_deref() == Some(user.email.as_str())
    }

    pub async fn register(
        &self,
        fullname: &str,
        email: &str,
        password: &str,
    ) -> Result<(User, TokenPair), DomainError> {
        self.require_password_provider("Registration")?;
        if !self.settings.registration_open {
            return Err(DomainError::Forbidden(
                "Registration is closed on this server.".into(),
            ));
        }
        let user = self
            .create_with_password(fullname, email, password, None)
            .await?;
        let tokens = self.issue_new_family(&user).await?;
        let t = now();
        self.store.record_login(user.id, t).await?;
        let user = User {
            last_login_at: Some(t),
            ..user
        };
        Ok((user, tokens))
    }

    /// Validates the fields, hashes the password and stores the account; a taken email is
    /// a 409 with a sentence.
    pub(super) async fn create_with_password(
        &self,
        fullname: &str,
        email: &str,
        password: &str,
        role: Option<Role>,
    ) -> Result<User, DomainError> {
        let mut errors = Vec::new();
        let fullname = parse_fullname(fullname).map_err(|e| errors.push(e)).ok();
        let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
        let _ = check_password("password", password).map_err(|e| errors.push(e));
        let (Some(fullname), Some(email), true) = (fullname, email, errors.is_empty()) else {
            return Err(validation(errors));
        };
        let hash = self.hasher.hash(password).await?;
        self.create_account(fullname, email, Some(hash), role)
            .await
            .map_err(|e| match e {
                DomainError::Conflict(_) => {
                    DomainError::Conflict("An account with this email already exists.".into())
                }
                other => other,
            })
    }

    pub(super) async fn create_account(
        &self,
        fullname: String,
        email: Email,
        password_hash: Option<String>,
        role: Option<Role>,
    ) -> Result<User, DomainError> {
        let t = now();
        let new = NewUser {
            id: UserId::new(),
            fullname,
            email,
            password_hash,
            role,
            now: t,
        };
        let free = Subscription::free(new.id, self.settings.free_monthly_runs, t);
        Ok(self.store.create_user(&new, &free).await?)
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(User, TokenPair), DomainError> {
        if self.settings.provider == AuthProvider::None {
            return Err(DomainError::BadRequest(
                "Login is not needed: this server uses auth_provider = none.".into(),
            ));
        }
        let user = match Email::parse(email) {
            // In `local` mode only the configured account may sign in.
            Ok(email)
                if self.settings.provider != AuthProvider::Local
                    || self.settings.local_email.as_deref() == Some(email.as_str()) =>
            {
                self.store.user_by_email(&email).await?
            }
            _ => None,
        };
        let matched = self
            .hasher
            .verify(
                password,
                user.as_ref().and_then(|u| u.password_hash.as_deref()),
            )
            .await?;
        let user = match (user, matched) {
            (Some(user), true) => user,
            _ => return Err(DomainError::Unauthorized(INVALID_LOGIN.into())),
        };
        self.upgrade_hash(&user, password).await;
        if !user.is_active {
            return Err(DomainError::Forbidden(
                "This account has been deactivated. Contact the administrator.".into(),
            ));
        }
        let tokens = self.issue_new_family(&user).await?;
        let t = now();
        self.store.record_login(user.id, t).await?;
        let user = User {
            last_login_at: Some(t),
            ..user
        };
        Ok((user, tokens))
    }

    /// A token that marks this client as a known device of `email`'s account, handed out at
    /// each successful sign-in: the server throttles sign-ins from known devices apart from
    /// everyone else's, so strangers guessing a password cannot lock the owner out.
    pub fn device_token(&self, email: &str) -> String {
        let expires_at = now() + KNOWN_DEVICE_TTL;
        self.signer
            .device_token(&normal_email(email), expires_at.unix_timestamp())
    }

    /// The device id behind `token`, when it is a live device token of `email`'s account.
    pub fn known_device(&self, email: &str, token: &str) -> Option<String> {
        self.signer
            .device_nonce(&normal_email(email), token, now().unix_timestamp())
    }

    /// After a successful login with a hash made under older costs, stores a new hash at
    /// today's costs. Sessions are untouched; a failure only means trying again next time.
    async fn upgrade_hash(&self, user: &User, password: &str) {
        let Some(old) = user.password_hash.as_deref() else {
            return;
        };
        if self.hasher.is_current(old) {
            return;
        }
        let upgraded = async {
            let new = self.hasher.hash(password).await?;
            self.store.replace_password_hash(user.id, old, &new).await?;
            Ok::<_, DomainError>(())
        };
        match upgraded.await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "password hash upgraded to the configured argon2 costs")
            }
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "could not upgrade a password hash")
            }
        }
    }

    /// Rotates a refresh token. A token rotated less than `refresh_reuse_grace` ago answers
    /// with its successor (two tabs racing one refresh); any later use is theft and ends the
    /// whole login.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, DomainError> {
        let hash = tokens::hash_refresh_token(refresh_token);
        let Some(record) = self.store.refresh_token_by_hash(&hash).await? else {
            return Err(session_expired());
        };
        if record.revoked_at.is_some() {
            return Err(session_expired());
        }
        if let Some(rotated_at) = record.rotated_at {
            return self
                .refresh_rotated(refresh_token, &record, rotated_at)
                .await;
        }
        let t = now();
        if record.expires_at <= t {
            return Err(session_expired());
        }
        let user = match self.store.user_by_id(record.user_id).await? {
            Some(u) if u.is_active && self.may_sign_in(&u) => u,
            _ => return Err(session_expired()),
        };
        let (next, pair) = self.mint(&user, record.family_id, Some(refresh_token))?;
        if !self.store.rotate_refresh_token(record.id, &next, t).await? {
            // Another request rotated this token first (two tabs at once), or the family was
            // revoked meanwhile: read it again to tell which.
            return match self.store.refresh_token_by_hash(&hash).await? {
                Some(
                    again @ RefreshTokenRecord {
                        rotated_at: Some(rotated_at),
                        revoked_at: None,
                        ..
                    },
                ) => {
                    self.refresh_rotated(refresh_token, &again, rotated_at)
                        .await
                }
                _ => {
                    self.end_login(record.family_id).await?;
                    Err(session_expired())
                }
            };
        }
        Ok(pair)
    }

    /// A refresh token that was already rotated: within the grace window, the login's newest
    /// token again; after it, reuse, which ends the login (theft detection).
    async fn refresh_rotated(
        &self,
        refresh_token: &str,
        record: &RefreshTokenRecord,
        rotated_at: OffsetDateTime,
    ) -> Result<TokenPair, DomainError> {
        let grace = self.settings.refresh_reuse_grace;
        if !grace.is_zero()
            && now() - rotated_at <= grace
            && let Some(pair) = self.reissue_successor(refresh_token, record).await?
        {
            return Ok(pair);
        }
        tracing::warn!(user_id = %record.user_id, family = %record.family_id, "refresh token reuse detected; ending its login");
        self.end_login(record.family_id).await?;
        Err(session_expired())
    }

    /// Follows the rotations from `refresh_token` (each successor is derived from its
    /// predecessor) to the newest token of the login, and pairs it with a new access token.
    /// `None` when the login can no longer continue.
    async fn reissue_successor(
        &self,
        refresh_token: &str,
        record: &RefreshTokenRecord,
    ) -> Result<Option<TokenPair>, DomainError> {
        let mut token = refresh_token.to_string();
        for _ in 0..MAX_SUCCESSOR_STEPS {
            let (successor, hash) = self.signer.successor_refresh_token(&token);
            let Some(next) = self.store.refresh_token_by_hash(&hash).await? else {
                return Ok(None);
            };
            if next.family_id != record.family_id
                || next.revoked_at.is_some()
                || next.expires_at <= now()
            {
                return Ok(None);
            }
            if next.rotated_at.is_some() {
                token = successor;
                continue;
            }
            let user = match self.store.user_by_id(record.user_id).await? {
                Some(u) if u.is_active && self.may_sign_in(&u) => u,
                _ => return Ok(None),
            };
            return Ok(Some(TokenPair {
                access_token: self.access_token(&user, record.family_id, now())?,
                refresh_token: successor,
                access_expires_in: self.settings.access_ttl,
            }));
        }
        Ok(None)
    }

    /// Ends one login: every access token it issued is refused from now on (on every
    /// instance), and its refresh tokens are revoked. The denial comes first, so a failure
    /// changes nothing and the caller can try again.
    async fn end_login(&self, family: Uuid) -> Result<(), DomainError> {
        self.denylist
            .deny_login(family, self.settings.access_ttl + CLOCK_SKEW_MARGIN)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "token denylist unavailable");
                DomainError::Unavailable(
                    "Could not end the session right now. Try again shortly.".into(),
                )
            })?;
        self.store.revoke_refresh_family(family, now()).await?;
        Ok(())
    }

    async fn issue_new_family(&self, user: &User) -> Result<TokenPair, DomainError> {
        let (first, pair) = self.mint(user, Uuid::now_v7(), None)?;
        self.store
            .start_refresh_family(&first, user.token_version)
            .await?;
        Ok(pair)
    }

    /// A new refresh-token record for `family_id` and the token pair to hand out. A login's
    /// first token is random; each later one is the successor of the token it replaces.
    fn mint(
        &self,
        user: &User,
        family_id: Uuid,
        previous: Option<&str>,
    ) -> Result<(RefreshTokenRecord, TokenPair), DomainError> {
        let t = now();
        let (refresh_token, token_hash) = match previous {
            Some(previous) => self.signer.successor_refresh_token(previous),
            None => tokens::new_refresh_token(),
        };
        let record = RefreshTokenRecord {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id,
            token_hash,
            created_at: t,
            expires_at: t + self.settings.refresh_ttl,
            rotated_at: None,
            revoked_at: None,
        };
        let pair = TokenPair {
            access_token: self.access_token(user, family_id, t)?,
            refresh_token,
            access_expires_in: self.settings.access_ttl,
        };
        Ok((record, pair))
    }

    fn access_token(
        &self,
        user: &User,
        family_id: Uuid,
        t: OffsetDateTime,
    ) -> Result<String, DomainError> {
        let claims = AccessClaims {
            sub: user.id,
            iat: t.unix_timestamp(),
            exp: (t + self.settings.access_ttl).unix_timestamp(),
            jti: Uuid::now_v7().simple().to_string(),
            kind: ACCESS.into(),
            ver: user.token_version,
            fam: family_id,
        };
        self.signer.sign(&claims).map_err(DomainError::internal)
    }

    /// Resolves a bearer token to a live, active user. Anything else is 401.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Authenticated, DomainError> {
        if self.settings.provider == AuthProvider::None {
            let user = self.anonymous_user().await?;
            return Ok(Authenticated { user, claims: None });
        }
        let unauthorized = |msg: &str| DomainError::Unauthorized(msg.into());
        let token = bearer.ok_or_else(|| {
            unauthorized("Log in to continue: this request needs an access token.")
        })?;
        let claims = self
            .signer
            .verify(token)
            .ok_or_else(|| unauthorized("Your access token is invalid or has expired."))?;
        let denied = self
            .denylist
            .is_login_denied(claims.fam)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "token denylist unavailable");
                DomainError::Unavailable(
                    "Authentication is temporarily unavailable. Try again shortly.".into(),
                )
            })?;
        if denied {
            return Err(unauthorized(
                "This access token has been revoked. Log in again.",
            ));
        }
        let user = self
            .store
            .user_by_id(claims.sub)
            .await?
            .filter(|u| u.is_active && u.token_version == claims.ver && self.may_sign_in(u))
            .ok_or_else(|| unauthorized("This access token has been revoked. Log in again."))?;
        Ok(Authenticated {
            user,
            claims: Some(claims),
        })
    }

    /// Ends this login: every access token it issued (not only the one presented) and its
    /// refresh tokens; and the login of `refresh_token` too, if it is another of this user's.
    pub async fn logout(
        &self,
        who: &Authenticated,
        refresh_token: Option<&str>,
    ) -> Result<(), DomainError> {
        self.require_password_provider("Logout")?;
        let Some(claims) = &who.claims else {
            return Ok(());
        };
        self.end_login(claims.fam).await?;
        if let Some(rt) = refresh_token.filter(|s| !s.is_empty())
            && let Some(record) = self
                .store
                .refresh_token_by_hash(&tokens::hash_refresh_token(rt))
                .await?
            && record.user_id == who.user.id
            && record.family_id != claims.fam
        {
            self.end_login(record.family_id).await?;
        }
        Ok(())
    }

    /// Every refresh token and every access token issued so far stop working.
    pub async fn logout_all(&self, who: &Authenticated) -> Result<(), DomainError> {
        Ok(self.store.end_all_sessions(who.user.id, now()).await?)
    }

    /// Changes the password. Every other session ends; this one continues through its
    /// refresh token (its access token is re-issued on the next refresh).
    pub async fn change_password(
        &self,
        who: &Authenticated,
        old: &str,
        new: &str,
    ) -> Result<(), DomainError> {
        check_password("new_password", new).map_err(|e| validation(vec![e]))?;
        if !self
            .hasher
            .verify(old, who.user.password_hash.as_deref())
            .await?
        {
            return Err(DomainError::BadRequest(
                "The current password is not correct.".into(),
            ));
        }
        let hash = self.hasher.hash(new).await?;
        let keep = who.claims.as_ref().map(|c| c.fam);
        self.store
            .update_password(who.user.id, &hash, keep, now())
            .await?;
        Ok(())
    }

    pub async fn change_fullname(
        &self,
        who: &Authenticated,
        fullname: &str,
    ) -> Result<User, DomainError> {
        let fullname = parse_fullname(fullname).map_err(|e| validation(vec![e]))?;
        self.store
            .update_fullname(who.user.id, &fullname, now())
            .await?
            .ok_or_else(|| DomainError::NotFound("User not found.".into()))
    }
}
