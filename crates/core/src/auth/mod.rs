//! Accounts and tokens: password hashing, access/refresh tokens, one-time codes and the
//! `AuthService` that holds every rule of them (docs/api.md, section Auth;
//! docs/architecture.md, sections Tokens, Passwords and Password reset codes).

mod accounts;
pub mod password;
mod reset;
pub mod service;
pub mod tokens;

pub use password::{PasswordError, PasswordHasher, PasswordParams};
pub use service::{
    AuthProvider, AuthService, AuthSettings, Authenticated, KNOWN_DEVICE_TTL, TokenPair,
};
pub use tokens::{AccessClaims, SignError, TokenSigner};
