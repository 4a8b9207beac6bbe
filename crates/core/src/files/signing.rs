//! Signed download URLs: `…/files/{id}?expires=<unix s>&signature=<hex>`, an HMAC-SHA256
//! over the method, the path and the expiry with a key of its own (never the JWT key), so a
//! URL cannot be moved to another file or kept past its expiry.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

impl UrlSigner {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, path: &str, expires: i64) -> Vec<u8> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this branch cannot happen.
            Err(_) => return Vec::new(),
        };
        mac.update(format!("GET\n{path}\n{expires}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The query string (`expires=…&signature=…`) that makes `path` readable until `expires`.
    pub fn query(&self, path: &str, expires: i64) -> String {
        format!(
            "expires={expires}&signature={}",
            hex::encode(self.mac(path, expires))
        )
    }

    /// True when `signature` was made by this key for exactly `path` and `expires`, and
    /// `expires` has not passed.
    pub fn verify(&self, path: &str, expires: i64, signature: &str, now: i64) -> bool {
        if expires < now {
            return false;
        }
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let expected = self.mac(path, expires);
        !expected.is_empty() && bool::from(expected.ct_eq(&given))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_bound_to_path_expiry_and_key() {
        let signer = UrlSigner::new(b"files key");
        let query = signer.query("/api/v1/files/a", 1_000);
        let signature = query.split("signature=").nth(1).unwrap_or_default();
        assert!(signer.verify("/api/v1/files/a", 1_000, signature, 999));
        assert!(signer.verify("/api/v1/files/a", 1_000, signature, 1_000));
        assert!(
            !signer.verify("/api/v1/files/a", 1_000, signature, 1_001),
            "expired"
        );
        assert!(
            !signer.verify("/api/v1/files/b", 1_000, signature, 999),
            "other path"
        );
        assert!(
            !signer.verify("/api/v1/files/a", 2_000, signature, 999),
            "other expiry"
        );
        assert!(!UrlSigner::new(b"jwt key").verify("/api/v1/files/a", 1_000, signature, 999));
        assert!(!signer.verify("/api/v1/files/a", 1_000, "zz", 999));
        assert!(!signer.verify("/api/v1/files/a", 1_000, "", 999));
    }
}
