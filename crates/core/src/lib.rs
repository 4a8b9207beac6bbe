//! Ironhand's domain: the types every part shares, the ports (traits) the outside world is
//! reached through, and the services that hold the business rules.

pub mod auth;
pub mod billing;
pub mod error;
pub mod files;
pub mod ids;
pub mod mcp;
pub mod ports;
pub mod session;
pub mod subscription;
pub mod text;
pub mod user;
pub mod workspace;

pub use error::{DomainError, FieldError, StoreError};
pub use ids::{FileId, RunId, SessionId, UserId};
