//! Verification of the `Stripe-Signature` header of webhook deliveries, done the way
//! Stripe's own libraries do it, so that a delivery Stripe signed is accepted and nothing
//! else is.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`. Each `v1` is
//! `hex(HMAC-SHA256(key = the endpoint secret, the whole "whsec_..." string as bytes,
//! message = "<t>.<raw body>"))`. Stripe sends several `v1` while an endpoint's secret is
//! being rolled; we accept when any configured secret matches any `v1`. `v0` (test-mode
//! legacy scheme) and unknown schemes are ignored. Items are trimmed, so `t=1, v1=…` is read
//! like `t=1,v1=…`.
//!
//! Unlike Stripe's libraries, timestamps too far in the *future* are refused as well: a
//! replay window should not be widened by a skewed or forged `t`.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance: five minutes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused. Messages are short and contain nothing secret, so they can
/// be logged as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header, or an empty one.
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    /// The header has no usable `t` or no `v1`.
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(&'static str),
    /// No configured secret produced any of the `v1` signatures (also when no secret is
    /// configured at all).
    #[error("no Stripe signature matches")]
    NoMatch,
    /// A valid signature, but `t` is further from now than the tolerance (either way).
    #[error("Stripe signature timestamp outside the tolerance")]
    Stale,
}

/// The `v1` signature (lowercase hex) Stripe sends for `payload` at `timestamp`.
pub fn compute_v1(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this branch cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `header` (the `Stripe-Signature` value) over the raw `payload`.
///
/// Signatures are checked first and the timestamp second, as Stripe's libraries do;
/// every comparison is constant-time.
pub fn verify_signature(
    payload: &[u8],
    header: &str,
    secrets: &[SecretString],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<&str> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            // The first `t` wins, like Stripe's Python/Ruby libraries.
            "t" if timestamp.is_none() => timestamp = Some(value.trim()),
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
    let t: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::Malformed("timestamp is not an integer"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }

    // Every pair is compared (no early exit) so timing says nothing about which matched.
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = compute_v1(payload, secret.expose_secret(), t);
        if expected.is_empty() {
            continue;
        }
        for given in &signatures {
            matched |= expected.as_bytes().ct_eq(given.as_bytes());
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::NoMatch);
    }
    if now_unix.saturating_sub(t).saturating_abs() > tolerance_secs.max(0) {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// The endpoint secrets webhooks are checked against; several during a rotation.
#[derive(Clone, Default)]
pub struct WebhookSecrets(Vec<SecretString>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} secret(s), redacted)", self.0.len())
    }
}

impl WebhookSecrets {
    /// Reads a comma-separated list (`whsec_new,whsec_old`), trimming each entry and
    /// skipping empty ones.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_string()))
                .collect(),
        )
    }

    pub fn from_secrets(secrets: Vec<SecretString>) -> Self {
        Self(secrets)
    }

    pub fn as_slice(&self) -> &[SecretString] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// [`verify_signature`] against these secrets.
    pub fn verify(
        &self,
        payload: &[u8],
        header: &str,
        now_unix: i64,
        tolerance_secs: i64,
    ) -> Result<(), SignatureError> {
        verify_signature(payload, header, &self.0, now_unix, tolerance_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently (Python `hmac.new(b"whsec_test_secret",
    /// b"1700000000.{\"id\":\"evt_1\"}", hashlib.sha256).hexdigest()`).
    const KNOWN_V1: &str = "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";

    #[test]
    fn matches_an_independent_hmac() {
        assert_eq!(
            compute_v1(br#"{"id":"evt_1"}"#, "whsec_test_secret", 1_700_000_000),
            KNOWN_V1
        );
    }

    #[test]
    fn secrets_parse_and_never_print() {
        let s = WebhookSecrets::parse(" whsec_a , ,whsec_b,");
        assert_eq!(s.len(), 2);
        assert_eq!(s.as_slice()[1].expose_secret(), "whsec_b");
        assert!(!format!("{s:?}").contains("whsec"));
        assert!(WebhookSecrets::parse("  ").is_empty());
    }
}
