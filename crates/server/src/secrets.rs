//! Secrets the embedded default generates once and keeps in the data directory, so a
//! restart keeps users signed in. The production profile never generates them.

use crate::config::{Profile, Settings};
use anyhow::Context;
use secrecy::SecretString;
use std::io::Write;

pub fn jwt_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(secret.clone());
    }
    if settings.profile == Profile::Production {
        anyhow::bail!("auth.jwt_secret is required in the production profile");
    }
    let dir = settings.server.data_dir.join("secrets");
    let path = dir.join("jwt_secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 32 {
            return Ok(SecretString::from(existing));
        }
        anyhow::bail!(
            "{} is shorter than 32 characters; delete it to generate a new one",
            path.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes);
    let secret = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .with_context(|| format!("could not write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT signing secret (kept for restarts)");
            Ok(SecretString::from(secret))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read_to_string(&path)
                .with_context(|| format!("could not read {}", path.display()))?;
            Ok(SecretString::from(existing.trim().to_string()))
        }
        Err(e) => Err(e).with_context(|| format!("could not create {}", path.display())),
    }
}
