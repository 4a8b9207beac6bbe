//! Payment providers: Stripe.
pub mod stripe;
