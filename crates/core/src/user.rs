//! Accounts: who a person is to Ironhand.

use crate::error::FieldError;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub fullname: String,
    pub email: String,
    /// `None` for accounts that cannot log in with a password (the anonymous user).
    pub password_hash: Option<String>,
    pub role: Role,
    pub is_active: bool,
    /// Bumped by logout-all, password change/reset and deactivation: older access tokens die.
    pub token_version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A user about to be stored. `role: None` means "admin if this is the first account".
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub fullname: String,
    pub email: Email,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub now: OffsetDateTime,
}

/// An email address that passed syntax checks, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                "email",
                "Enter a valid email address, like name@example.com.",
            )
        };
        let email = raw.trim().to_lowercase();
        if email.is_empty() || email.len() > 254 {
            return Err(bad());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 2–100 characters, no control characters.
pub fn parse_fullname(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if !(2..=100).contains(&chars) {
        return Err(FieldError::new(
            "fullname",
            "Full name must be between 2 and 100 characters.",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "fullname",
            "Full name must not contain control characters.",
        ));
    }
    Ok(name.to_string())
}

/// Password length rule shared by register, change and reset.
pub fn check_password(field: &str, password: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < 8 {
        return Err(FieldError::new(
            field,
            "Password must be at least 8 characters.",
        ));
    }
    if chars > 128 {
        return Err(FieldError::new(
            field,
            "Password must be at most 128 characters.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_trimmed() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").map(|e| e.0),
            Ok("ada@example.com".into())
        );
    }

    #[test]
    fn email_syntax_is_checked() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@exa_mple.com",
            "ada@@example.com",
            ".ada@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn fullname_bounds() {
        assert!(parse_fullname("A").is_err());
        assert_eq!(parse_fullname(" Ada ").as_deref(), Ok("Ada"));
        assert!(parse_fullname(&"x".repeat(101)).is_err());
        assert!(parse_fullname("Ad\u{0}a").is_err());
    }

    #[test]
    fn password_bounds() {
        assert!(check_password("password", "short").is_err());
        assert!(check_password("password", "longenough").is_ok());
        assert!(check_password("password", &"x".repeat(129)).is_err());
    }
}
