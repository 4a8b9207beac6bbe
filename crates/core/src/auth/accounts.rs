//! Administering accounts: lookups and activation for admins, and the operator set-up of
//! `user create`, `auth_provider = local` and `auth_provider = none`.

use super::service::{ANONYMOUS_EMAIL, AuthService, now, validation};
use crate::error::{DomainError, FieldError};
use crate::ids::UserId;
use crate::ports::store::UserPage;
use crate::user::{Email, Role, User};

impl AuthService {
    pub async fn user(&self, id: UserId) -> Result<User, DomainError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or_else(|| DomainError::NotFound("User not found.".into()))
    }

    pub async fn list_users(
        &self,
        page: i64,
        limit: i64,
        query: Option<&str>,
    ) -> Result<UserPage, DomainError> {
        let mut errors = Vec::new();
        if !(1..=1_000_000).contains(&page) {
            errors.push(FieldError::new(
                "page",
                "page must be between 1 and 1000000.",
            ));
        }
        if query.is_some_and(|q| q.chars().any(char::is_control) || q.chars().count() > 200) {
            errors.push(FieldError::new(
                "q",
                "q must be at most 200 characters, without control characters.",
            ));
        }
        if !(1..=100).contains(&limit) {
            errors.push(FieldError::new("limit", "limit must be between 1 and 100."));
        }
        if !errors.is_empty() {
            return Err(validation(errors));
        }
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        Ok(self
            .store
            .list_users((page - 1) * limit, limit, query)
            .await?)
    }

    pub async fn set_active(
        &self,
        actor: &User,
        id: UserId,
        active: bool,
    ) -> Result<(), DomainError> {
        if actor.id == id && !active {
            return Err(DomainError::BadRequest(
                "You cannot deactivate your own account.".into(),
            ));
        }
        let t = now();
        if !self.store.set_active(id, active, t).await? {
            return Err(DomainError::NotFound("User not found.".into()));
        }
        if !active {
            self.store.revoke_user_refresh_tokens(id, None, t).await?;
        }
        Ok(())
    }

    // ---- operator set-up ----

    /// `ironhand user create`: a new account (an admin with `admin`); an existing email is a
    /// conflict, never a silent promotion.
    pub async fn create_user(
        &self,
        fullname: &str,
        email: &str,
        password: &str,
        admin: bool,
    ) -> Result<User, DomainError> {
        let role = Some(if admin { Role::Admin } else { Role::User });
        self.create_with_password(fullname, email, password, role)
            .await
    }

    /// `auth_provider = local`: makes sure the one configured account exists with this
    /// password (updating it when the configured password changed).
    pub async fn ensure_local_account(
        &self,
        email: &str,
        password: &str,
    ) -> Result<User, DomainError> {
        let parsed = Email::parse(email).map_err(|e| validation(vec![e]))?;
        match self.store.user_by_email(&parsed).await? {
            Some(user) => {
                if !self
                    .hasher
                    .verify(password, user.password_hash.as_deref())
                    .await?
                {
                    let hash = self.hasher.hash(password).await?;
                    // A new configured password ends every existing session.
                    self.store
                        .update_password(user.id, &hash, None, now())
                        .await?;
                }
                if user.role != Role::Admin {
                    self.store.set_role(user.id, Role::Admin, now()).await?;
                }
                self.user(user.id).await
            }
            None => {
                self.create_user("Administrator", email, password, true)
                    .await
            }
        }
    }

    /// `auth_provider = none`: the single anonymous account every request acts as.
    pub async fn anonymous_user(&self) -> Result<User, DomainError> {
        let email = Email::parse(ANONYMOUS_EMAIL).map_err(|e| DomainError::internal(e.message))?;
        // A plain user: with no login at all, admin powers would be anyone's.
        if let Some(user) = self.store.user_by_email(&email).await? {
            if user.role == Role::Admin {
                self.store.set_role(user.id, Role::User, now()).await?;
                return self.user(user.id).await;
            }
            return Ok(user);
        }
        match self
            .create_account("Local user".into(), email.clone(), None, Some(Role::User))
            .await
        {
            Ok(user) => Ok(user),
            // Two first requests raced; the other one created it.
            Err(DomainError::Conflict(_)) => self
                .store
                .user_by_email(&email)
                .await?
                .ok_or_else(|| DomainError::internal("anonymous user vanished")),
            Err(e) => Err(e),
        }
    }
}
