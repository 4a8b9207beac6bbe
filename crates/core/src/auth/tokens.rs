//! Access tokens (HS256 JWTs), refresh tokens (opaque, stored as SHA-256) and one-time codes
//! (stored as HMAC so a database dump does not reveal them).

use crate::ids::UserId;
use hmac::{KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The user's token version when issued; older versions are refused.
    pub ver: i64,
    /// The login (refresh-token family) this access token came from: ending the login
    /// (logout, refresh-token reuse) puts it on the denylist, which ends every access token
    /// of that login at once.
    pub fam: Uuid,
}

pub const ACCESS: &str = "access";

/// An access token could not be signed (the JWT library's error, as it says it).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SignError(#[from] jsonwebtoken::errors::Error);

#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    code_key: Vec<u8>,
    successor_key: Vec<u8>,
    device_key: Vec<u8>,
}

type HmacSha256 = hmac::Hmac<Sha256>;

fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("hmac accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl TokenSigner {
    /// `secret` signs access tokens; separate keys for one-time codes, refresh-token
    /// successors and device cookies are derived from it.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            code_key: keyed_hash(secret, &[b"ironhand verification codes v1"]).to_vec(),
            successor_key: keyed_hash(secret, &[b"ironhand refresh successors v1"]).to_vec(),
            device_key: keyed_hash(secret, &[b"ironhand device cookies v1"]).to_vec(),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, SignError> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, expiry and type. `None` for anything that is not a live access token.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation).ok()?;
        (data.claims.kind == ACCESS).then_some(data.claims)
    }

    /// Keyed hash of a one-time code, bound to the user it was issued to.
    pub fn hash_code(&self, user: UserId, code: &str) -> String {
        hex::encode(keyed_hash(
            &self.code_key,
            &[user.0.as_bytes(), code.as_bytes()],
        ))
    }

    /// The token a rotation of `previous` hands out, with its SHA-256: a keyed hash of
    /// `previous`, so a token rotated moments ago can be answered with the same successor
    /// again (the refresh grace window) without storing any token. Without the key it is as
    /// unpredictable as a random token.
    pub fn successor_refresh_token(&self, previous: &str) -> (String, String) {
        use base64::Engine as _;
        let bytes = keyed_hash(&self.successor_key, &[previous.as_bytes()]);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_refresh_token(&token);
        (token, hash)
    }

    /// A device token for the account `email` (lower-cased): `<expiry>.<nonce>.<mac>`,
    /// valid until `expires_at` (unix seconds).
    pub fn device_token(&self, email: &str, expires_at: i64) -> String {
        let mut nonce = [0u8; 16];
        rand::fill(&mut nonce);
        let nonce = hex::encode(nonce);
        let mac = self.device_mac(email, expires_at, &nonce);
        format!("{expires_at}.{nonce}.{mac}")
    }

    /// The nonce of `token` when it is an unexpired device token of `email` (lower-cased).
    pub fn device_nonce(&self, email: &str, token: &str, now: i64) -> Option<String> {
        let mut parts = token.splitn(3, '.');
        let (expires_at, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let expires_at: i64 = expires_at.parse().ok()?;
        let valid = expires_at > now
            && nonce.len() == 32
            && secure_eq(mac, &self.device_mac(email, expires_at, nonce));
        valid.then(|| nonce.to_string())
    }

    fn device_mac(&self, email: &str, expires_at: i64, nonce: &str) -> String {
        let expires_at = expires_at.to_string();
        hex::encode(keyed_hash(
            &self.device_key,
            &[
                email.as_bytes(),
                b"\n",
                expires_at.as_bytes(),
                b"\n",
                nonce.as_bytes(),
            ],
        ))
    }
}

/// A new refresh token: 32 random bytes, URL-safe base64; returns (token, sha256 hex).
pub fn new_refresh_token() -> (String, String) {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A 6-digit code from the OS-seeded CSPRNG.
pub fn new_code() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// Constant-time equality for secrets.
pub fn secure_eq(a: &str, b: &str) -> bool {
    secure_eq_bytes(a.as_bytes(), b.as_bytes())
}

pub fn secure_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(kind: &str, exp: i64) -> AccessClaims {
        AccessClaims {
            sub: UserId::new(),
            exp,
            iat: 0,
            jti: "j".into(),
            kind: kind.into(),
            ver: 0,
            fam: Uuid::nil(),
        }
    }

    #[test]
    fn access_tokens_round_trip_and_refuse_other_types_and_keys() {
        let s = TokenSigner::new(b"secret-one");
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
        let t = s.sign(&claims(ACCESS, exp)).expect("sign");
        assert!(s.verify(&t).is_some());
        assert!(TokenSigner::new(b"secret-two").verify(&t).is_none());
        let refresh_typed = s.sign(&claims("refresh", exp)).expect("sign");
        assert!(s.verify(&refresh_typed).is_none());
        let expired = s.sign(&claims(ACCESS, exp - 120)).expect("sign");
        assert!(s.verify(&expired).is_none());
        assert!(s.verify("not.a.jwt").is_none());
    }

    #[test]
    fn codes_are_six_digits_and_hashes_bind_the_user() {
        let code = new_code();
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        let s = TokenSigner::new(b"k");
        let (a, b) = (UserId::new(), UserId::new());
        assert_ne!(s.hash_code(a, "123456"), s.hash_code(b, "123456"));
        assert!(secure_eq(
            &s.hash_code(a, "123456"),
            &s.hash_code(a, "123456")
        ));
    }

    #[test]
    fn successors_are_keyed_and_stable() {
        let s = TokenSigner::new(b"secret-one");
        let (first, _) = new_refresh_token();
        let (next, hash) = s.successor_refresh_token(&first);
        assert_eq!(
            s.successor_refresh_token(&first),
            (next.clone(), hash.clone())
        );
        assert_eq!(hash_refresh_token(&next), hash);
        assert_eq!(next.len(), 43);
        assert_ne!(next, first);
        assert_ne!(
            TokenSigner::new(b"secret-two")
                .successor_refresh_token(&first)
                .0,
            next
        );
    }

    #[test]
    fn device_tokens_bind_the_account_and_expire() {
        let s = TokenSigner::new(b"secret-one");
        let token = s.device_token("ada@example.com", 2_000);
        let nonce = s
            .device_nonce("ada@example.com", &token, 1_000)
            .expect("valid");
        assert_eq!(nonce.len(), 32);
        assert!(s.device_nonce("eve@example.com", &token, 1_000).is_none());
        assert!(s.device_nonce("ada@example.com", &token, 2_000).is_none());
        let forged = token.replacen("2000.", "9000.", 1);
        assert!(s.device_nonce("ada@example.com", &forged, 1_000).is_none());
        assert!(
            TokenSigner::new(b"secret-two")
                .device_nonce("ada@example.com", &token, 1_000)
                .is_none()
        );
        assert!(
            s.device_nonce("ada@example.com", "garbage", 1_000)
                .is_none()
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (t1, h1) = new_refresh_token();
        let (t2, _) = new_refresh_token();
        assert_ne!(t1, t2);
        assert_eq!(hash_refresh_token(&t1), h1);
        assert_eq!(t1.len(), 43);
    }
}
