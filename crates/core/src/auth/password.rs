//! argon2id password hashing on the blocking pool, so a login storm never stalls the server.
//!
//! At most one hash per core runs at a time, each in a work area that is kept and reused:
//! memory stays at `cores × memory_kib` however many logins arrive (a fresh 19 MiB
//! allocation per hash left the allocator holding hundreds of MiB after a burst).

use crate::error::DomainError;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// argon2id cost. Defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

const SALT_LEN: usize = 16;
/// Upper bounds for costs read from stored hashes (and accepted in config).
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
pub const MAX_ITERATIONS: u32 = 64;
pub const MAX_LANES: u32 = 16;
const HASH_LEN: usize = 32;

/// Why hashing could not start or run (the cost parameters, or argon2 itself).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(#[source] argon2::Error),
    #[error(
        "argon2 costs above {} KiB, {} passes or {} lanes are refused",
        MAX_MEMORY_KIB,
        MAX_ITERATIONS,
        MAX_LANES
    )]
    CostsTooHigh,
    #[error("argon2: {0}")]
    Hash(#[source] argon2::Error),
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the email is unknown so that both
    /// failures take the same time.
    decoy: Arc<String>,
    slots: Arc<Semaphore>,
    /// Work areas of finished hashes, taken by the next ones (never more than `slots`).
    work_areas: Arc<Mutex<Vec<Vec<Block>>>>,
}

/// A stored hash in PHC form: `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`.
struct Phc {
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Phc {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('$');
        let (empty, alg, version, costs, salt, hash) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if !empty.is_empty() || alg != "argon2id" || version != "v=19" || parts.next().is_some() {
            return None;
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in costs.split(',') {
            let (k, v) = kv.split_once('=')?;
            let v: u32 = v.parse().ok()?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return None,
            }
        }
        let (m, t, p) = (m?, t?, p?);
        // A stored hash is data, not trusted config: costs beyond these would let one row
        // exhaust memory or hold a slot for hours.
        if m > MAX_MEMORY_KIB || t > MAX_ITERATIONS || p > MAX_LANES {
            return None;
        }
        let hash = B64.decode(hash).ok()?;
        let params = Params::new(m, t, p, Some(hash.len())).ok()?;
        Some(Self {
            params,
            salt: B64.decode(salt).ok()?,
            hash,
        })
    }

    fn encode(params: &Params, salt: &[u8], hash: &[u8]) -> String {
        format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            B64.encode(salt),
            B64.encode(hash)
        )
    }
}

fn compute(
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    area: &mut Vec<Block>,
) -> Result<(), PasswordError> {
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt, out, &mut area[..blocks])
        .map_err(PasswordError::Hash)
}

fn hash_with(
    params: &Params,
    password: &[u8],
    area: &mut Vec<Block>,
) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt);
    let mut out = [0u8; HASH_LEN];
    compute(params, password, &salt, &mut out, area)?;
    Ok(Phc::encode(params, &salt, &out))
}

fn verify_with(stored: &str, password: &[u8], area: &mut Vec<Block>) -> bool {
    let Some(phc) = Phc::parse(stored) else {
        return false;
    };
    let mut out = vec![0u8; phc.hash.len()];
    compute(&phc.params, password, &phc.salt, &mut out, area).is_ok()
        && super::tokens::secure_eq_bytes(&out, &phc.hash)
}

impl PasswordHasher {
    pub fn new(p: PasswordParams) -> Result<Self, PasswordError> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(PasswordError::InvalidParams)?;
        let mut decoy_password = [0u8; 24];
        rand::fill(&mut decoy_password);
        let mut area = Vec::new();
        let decoy = hash_with(&params, &decoy_password, &mut area)?;
        let slots = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(Self {
            params,
            decoy: Arc::new(decoy),
            slots: Arc::new(Semaphore::new(slots)),
            work_areas: Arc::new(Mutex::new(vec![area])),
        })
    }

    /// Checks the cost parameters without hashing anything.
    pub fn check_params(p: PasswordParams) -> Result<(), PasswordError> {
        if p.memory_kib > MAX_MEMORY_KIB
            || p.iterations > MAX_ITERATIONS
            || p.parallelism > MAX_LANES
        {
            return Err(PasswordError::CostsTooHigh);
        }
        Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map(|_| ())
            .map_err(PasswordError::InvalidParams)
    }

    /// Runs `work` on the blocking pool with a reused work area, once a slot is free.
    async fn on_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Params, &mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, DomainError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(DomainError::internal)?;
        let areas = self.work_areas.clone();
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut area = areas
                .lock()
                .ok()
                .and_then(|mut a| a.pop())
                .unwrap_or_default();
            let result = work(&params, &mut area);
            // An area grown by a hash with older, larger costs goes back at today's size.
            if area.len() > params.block_count() {
                area.truncate(params.block_count());
                area.shrink_to_fit();
            }
            if let Ok(mut a) = areas.lock() {
                a.push(area);
            }
            result
        })
        .await
        .map_err(DomainError::internal)
    }

    /// True when `stored` was made with today's costs (so it needs no upgrade).
    pub fn is_current(&self, stored: &str) -> bool {
        Phc::parse(stored).is_some_and(|phc| {
            phc.params.m_cost() == self.params.m_cost()
                && phc.params.t_cost() == self.params.t_cost()
                && phc.params.p_cost() == self.params.p_cost()
                && phc.hash.len() == HASH_LEN
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, DomainError> {
        let password = password.to_owned();
        self.on_slot(move |params, area| hash_with(params, password.as_bytes(), area))
            .await?
            .map_err(DomainError::internal)
    }

    /// True when `password` matches `hash`. With no hash, checks against the decoy (and
    /// fails) so that unknown accounts cost the same time as wrong passwords.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, DomainError> {
        let known = hash.is_some();
        let hash = hash
            .map(str::to_owned)
            .unwrap_or_else(|| self.decoy.as_ref().clone());
        let password = password.to_owned();
        let matched = self
            .on_slot(move |_, area| verify_with(&hash, password.as_bytes(), area))
            .await?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .expect("params")
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = cheap();
        let hash = h.hash("correct horse").await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        assert!(
            h.verify("correct horse", Some(&hash))
                .await
                .expect("verify")
        );
        assert!(!h.verify("wrong horse", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("correct horse", None).await.expect("verify"));
        assert!(
            !h.verify("correct horse", Some("$argon2id$garbage"))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn stored_hashes_with_absurd_costs_are_refused_not_run() {
        let h = cheap();
        let huge = "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!h.verify("x", Some(huge)).await.expect("verify"));
        let slow = "$argon2id$v=19$m=256,t=100000,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!h.verify("x", Some(slow)).await.expect("verify"));
        assert!(
            PasswordHasher::check_params(PasswordParams {
                memory_kib: 4 << 20,
                iterations: 1,
                parallelism: 1
            })
            .is_err()
        );
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_both_ways() {
        let h = cheap();
        // Ours verifies with the reference implementation…
        let ours = h.hash("interop").await.expect("hash");
        let reference = Argon2::default();
        assert!(reference.verify_password(b"interop", ours.as_str()).is_ok());
        // …and theirs (other costs, as after a cost change) with ours.
        let theirs = reference
            .hash_password(b"interop")
            .expect("hash")
            .to_string();
        assert!(h.verify("interop", Some(&theirs)).await.expect("verify"));
        assert!(!h.verify("other", Some(&theirs)).await.expect("verify"));
        assert!(h.is_current(&ours) && !h.is_current(&theirs));
    }

    #[test]
    fn refused_costs_say_the_bounds() {
        let refused = PasswordHasher::check_params(PasswordParams {
            memory_kib: MAX_MEMORY_KIB + 1,
            iterations: 1,
            parallelism: 1,
        })
        .expect_err("too much memory");
        assert_eq!(
            refused.to_string(),
            "argon2 costs above 1048576 KiB, 64 passes or 16 lanes are refused"
        );
        let invalid = PasswordHasher::check_params(PasswordParams {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        })
        .expect_err("too little memory");
        assert!(
            invalid
                .to_string()
                .starts_with("invalid argon2 parameters: "),
            "{invalid}"
        );
        assert!(
            std::error::Error::source(&invalid).is_some(),
            "the cause is kept"
        );
    }
}
