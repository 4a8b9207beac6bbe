//! Secrets at rest: AES-256-GCM under a key derived from `mcp.secrets_key` (never the JWT
//! or URL-signing key), a fresh random nonce per seal, and the owner and connector name as
//! associated data, so a sealed value copied to another row does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1:";

/// A secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("could not seal a secret")]
    Seal(#[source] aws_lc_rs::error::Unspecified),
    /// Not sealed by this key and context (the key changed, or the value was moved or
    /// damaged).
    #[error("a stored secret could not be opened (was mcp.secrets_key changed?)")]
    Open,
}

pub struct SecretSealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer(..)")
    }
}

impl SecretSealer {
    /// The key is SHA-256 of the configured secret (any length, ≥ 32 random bytes advised).
    pub fn new(secret: &[u8]) -> Self {
        let digest = Sha256::digest(secret);
        // AES-256 takes exactly the 32 bytes of a SHA-256: this cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM, &digest)
            .unwrap_or_else(|_| unreachable!("a SHA-256 digest is an AES-256 key"));
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `plain` sealed and bound to `context` (e.g. owner and name), as text.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut buffer = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(format!("{VERSION}{}", STANDARD_NO_PAD.encode(out)))
    }

    /// Opens what [`Self::seal`] made with the same key and context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let body = sealed.strip_prefix(VERSION).ok_or(SealError::Open)?;
        let bytes = STANDARD_NO_PAD.decode(body).map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, cipher) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buffer = cipher.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let sealer = SecretSealer::new(b"connector key");
        let sealed = sealer.seal(b"sk-live-123", "user:a").expect("seal");
        assert!(!sealed.contains("sk-live-123"));
        assert_eq!(
            sealer.open(&sealed, "user:a").expect("open"),
            b"sk-live-123"
        );
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealer.seal(b"sk-live-123", "user:a").expect("seal"), sealed);
        assert!(sealer.open(&sealed, "user:b").is_err(), "another row");
        assert!(SecretSealer::new(b"other").open(&sealed, "user:a").is_err());
        assert!(sealer.open("v1:AAAA", "user:a").is_err());
        assert!(sealer.open("garbage", "user:a").is_err());
    }
}
