//! argon2id password hashing on the blocking pool, so a login storm never stalls the server.

use crate::error::DomainError;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
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

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the email is unknown so that both
    /// failures take the same time.
    decoy: Arc<String>,
    /// At most this many hashes run at once, so a login storm costs bounded memory
    /// (each holds `memory_kib`) and leaves the blocking pool to other work.
    slots: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(p: PasswordParams) -> Result<Self, String> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let mut decoy_password = [0u8; 24];
        rand::fill(&mut decoy_password);
        let decoy = argon(&params)
            .hash_password(&decoy_password)
            .map_err(|e| format!("argon2 failed: {e}"))?
            .to_string();
        let slots = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(Self {
            params,
            decoy: Arc::new(decoy),
            slots: Arc::new(Semaphore::new(slots)),
        })
    }

    /// Checks the cost parameters without hashing anything.
    pub fn check_params(p: PasswordParams) -> Result<(), String> {
        Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map(|_| ())
            .map_err(|e| format!("invalid argon2 parameters: {e}"))
    }

    /// Runs `work` with an argon2 instance on the blocking pool, once a slot is free.
    async fn with_argon<T: Send + 'static>(
        &self,
        work: impl FnOnce(Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, DomainError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(DomainError::internal)?;
        let argon2 = argon(&self.params);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work(argon2)
        })
        .await
        .map_err(DomainError::internal)
    }

    pub async fn hash(&self, password: &str) -> Result<String, DomainError> {
        let password = password.to_owned();
        self.with_argon(move |a| a.hash_password(password.as_bytes()).map(|h| h.to_string()))
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
            .with_argon(move |a| {
                a.verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matched)
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            h.verify("correct horse", Some(&hash))
                .await
                .expect("verify")
        );
        assert!(!h.verify("wrong horse", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("correct horse", None).await.expect("verify"));
    }
}
