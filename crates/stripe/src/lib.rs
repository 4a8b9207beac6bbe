//! Stripe for Ironhand: a small client for the calls the billing flow makes (customers,
//! Checkout, Customer Portal, subscription retrieval), webhook signature verification, and
//! lenient parsing of webhook events.
//!
//! Hand-rolled on reqwest rather than a generated SDK because Ironhand needs four calls, the
//! API base must point at a local fake in tests, and typed SDK parsers fail on shapes from
//! other API versions; here every answer is read leniently (see [`objects`]).

pub mod client;
pub mod error;
pub mod event;
pub mod objects;
pub mod signature;

pub use client::{CheckoutParams, DEFAULT_API_BASE, StripeClient, StripeConfig};
pub use error::StripeError;
pub use event::{Event, EventError, EventKind};
pub use objects::{
    CheckoutSession, CheckoutSessionObject, Customer, InvoiceObject, Metadata, PortalSession,
    SubscriptionObject, SubscriptionStatus,
};
pub use secrecy::SecretString;
pub use signature::{
    DEFAULT_TOLERANCE_SECS, SignatureError, WebhookSecrets, compute_v1, verify_signature,
};
