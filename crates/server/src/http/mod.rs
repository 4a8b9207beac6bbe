//! The HTTP foundation: the response envelope, the one place errors become statuses,
//! extractors (who is asking, validated bodies), middleware, and the bounded listener.

pub mod connections;
pub mod envelope;
pub mod error;
pub mod extract;
mod json_body;
pub mod middleware;

pub use envelope::{Envelope, ok};
pub use error::ApiError;
