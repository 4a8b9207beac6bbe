//! File storage adapters and upload checks.
//!
//! - [`LocalBlobStore`] and [`S3BlobStore`] implement the core's
//!   [`BlobStore`](ironhand_core::ports::BlobStore) port (local disk by default, an
//!   S3-compatible bucket when configured).
//! - [`Staging`] receives an upload body into a temp file under a size limit, hashing it.
//! - [`sniff`] decides what the bytes are and whether they may be uploaded.

mod key;
pub mod local;
pub mod s3;
pub mod sniff;
pub mod staging;

pub use key::{MAX_KEY_LEN, validate_key};
pub use local::LocalBlobStore;
pub use s3::{S3BlobStore, S3Config};
pub use sniff::{AllowList, Refusal, Sniffed, classify, guess_type, sanitize_filename};
pub use staging::{HEAD_LEN, Staged, Staging, StagingError};
