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
    /// The refresh-token family this access token came from (logout revokes it).
    pub fam: Uuid,
}

pub const ACCESS: &str = "access";

#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    code_key: Vec<u8>,
}

impl TokenSigner {
    /// `secret` signs access tokens; a separate key for one-time codes is derived from it.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("hmac accepts any key length");
        mac.update(b"ironhand verification codes v1");
        let code_key = mac.finalize().into_bytes().to_vec();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            code_key,
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| e.to_string())
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
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.code_key)
            .expect("hmac accepts any key length");
        mac.update(user.0.as_bytes());
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
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
    fn refresh_tokens_are_random_and_hashed() {
        let (t1, h1) = new_refresh_token();
        let (t2, _) = new_refresh_token();
        assert_ne!(t1, t2);
        assert_eq!(hash_refresh_token(&t1), h1);
        assert_eq!(t1.len(), 43);
    }
}
