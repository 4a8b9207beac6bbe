//! Ports: the traits through which the business rules reach storage and the outside world.
//! Each has an embedded implementation and a scale-out one (see docs/architecture.md).

pub mod billing;
pub mod blob_store;
pub mod browser;
pub mod denylist;
pub mod event_bus;
pub mod file_store;
pub mod mailer;
pub mod mcp_servers;
pub mod rate_limit;
pub mod sandbox;
pub mod sessions;
pub mod store;
pub mod workspaces;

pub use blob_store::{BlobError, BlobStore, ByteStream};
pub use browser::{BrowserOutcome, SandboxBrowser, VncStream};
pub use denylist::{DenylistError, TokenDenylist};
pub use event_bus::{BusError, EventBus};
pub use mailer::{Mail, MailError, Mailer};
pub use rate_limit::{InvalidQuota, Quota, RateDecision, RateLimiter};
pub use sandbox::{Sandbox, SandboxProvider};
pub use store::Store;
