//! Signed live-view URLs: `/api/v1/sessions/{id}/vnc?signature=<hex>&expires=<unix s>`.
//!
//! An HMAC-SHA256 over the session id, the path and the expiry, with a key derived from the
//! files signing secret for this purpose only: a download signature never opens a live
//! view, a live-view signature never downloads a file, and neither moves to another
//! session or outlives its expiry.

use hmac::{Hmac, KeyInit, Mac};
use ironhand_core::ids::SessionId;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What the derived key is for; a new format gets a new purpose.
const PURPOSE: &[u8] = b"ironhand live-view url v1";

#[derive(Clone)]
pub struct VncSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for VncSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VncSigner(..)")
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this branch cannot happen.
        Err(_) => Vec::new(),
    }
}

impl VncSigner {
    /// `secret` is the files signing secret; the key used is derived from it.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac(secret, PURPOSE),
        }
    }

    /// The WebSocket path of a session's live view.
    pub fn path(session: SessionId) -> String {
        format!("/api/v1/sessions/{session}/vnc")
    }

    fn mac(&self, session: SessionId, expires: i64) -> Vec<u8> {
        let message = format!("VNC\n{session}\n{}\n{expires}", Self::path(session));
        hmac(&self.key, message.as_bytes())
    }

    /// The path with the query that opens the session's live view until `expires`.
    pub fn signed_path(&self, session: SessionId, expires: i64) -> String {
        format!(
            "{}?signature={}&expires={expires}",
            Self::path(session),
            hex::encode(self.mac(session, expires))
        )
    }

    /// True when `signature` was made by this key for exactly `session` and `expires`, and
    /// `expires` has not passed at `now`.
    pub fn verify(&self, session: SessionId, expires: i64, signature: &str, now: i64) -> bool {
        if expires < now {
            return false;
        }
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let expected = self.mac(session, expires);
        !expected.is_empty() && bool::from(expected.ct_eq(&given))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhand_core::files::UrlSigner;

    fn signature_of(signed_path: &str) -> String {
        signed_path
            .split("signature=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_signature_opens_one_session_until_its_expiry() {
        let signer = VncSigner::new(b"files secret");
        let session = SessionId::new();
        let signed = signer.signed_path(session, 1_000);
        assert!(signed.starts_with(&format!("/api/v1/sessions/{session}/vnc?signature=")));
        assert!(signed.ends_with("&expires=1000"));
        let signature = signature_of(&signed);
        assert!(signer.verify(session, 1_000, &signature, 999));
        assert!(signer.verify(session, 1_000, &signature, 1_000));
        assert!(!signer.verify(session, 1_000, &signature, 1_001), "expired");
        assert!(
            !signer.verify(SessionId::new(), 1_000, &signature, 999),
            "another session"
        );
        assert!(
            !signer.verify(session, 2_000, &signature, 999),
            "a stretched expiry"
        );
        assert!(!VncSigner::new(b"another secret").verify(session, 1_000, &signature, 999));
        assert!(!signer.verify(session, 1_000, "", 999));
        assert!(!signer.verify(session, 1_000, "not hex", 999));
        assert!(!signer.verify(session, 1_000, &signature[..10], 999));
    }

    #[test]
    fn file_signatures_and_live_view_signatures_never_mix() {
        let secret = b"one secret for both";
        let session = SessionId::new();
        let path = VncSigner::path(session);
        // The files signer, with the very same secret, signing the live-view path.
        let files = UrlSigner::new(secret);
        let file_query = files.query(&path, 1_000);
        let file_signature = signature_of(&file_query);
        let vnc = VncSigner::new(secret);
        assert!(!vnc.verify(session, 1_000, &file_signature, 999));
        // And a live-view signature is no download signature.
        let vnc_signature = signature_of(&vnc.signed_path(session, 1_000));
        assert!(!files.verify(&path, 1_000, &vnc_signature, 999));
    }
}
