//! `fake-stripe`: the fake Stripe API, standalone (the API fuzzing of `make test` points
//! the server's payments at it).
//!
//! `fake-stripe` listens on a free loopback port, prints the `[stripe]` section that points
//! a server at it (API base, secret key, webhook secret, the two prices it sells) and serves
//! until it is stopped.

use ironhand_fakes::stripe::{FakeStripe, PRICE_BASIC, PRICE_PRO};
use std::io::Write;

#[tokio::main]
async fn main() {
    let stripe = FakeStripe::start().await;
    println!(
        "[stripe]\napi_base = \"{}\"\nsecret_key = \"{}\"\nwebhook_secret = \"{}\"\nprice_basic = \"{PRICE_BASIC}\"\nprice_pro = \"{PRICE_PRO}\"",
        stripe.base_url(),
        stripe.secret_key(),
        stripe.webhook_secret(),
    );
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
}
