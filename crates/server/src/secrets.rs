//! Secrets the embedded default generates once and keeps in the data directory, so a
//! restart keeps users signed in. The production profile never generates them.

use crate::config::{Profile, Settings};
use anyhow::Context;
use secrecy::SecretString;
use std::io::Write;

pub fn jwt_secret(settings: &Settings) -> anyhow::Result<SecretString> {
    kept_secret(
        settings,
        settings.auth.jwt_secret.as_ref(),
        "jwt_secret",
        "auth.jwt_secret",
    )
}

/// The key of signed download URLs: its own secret, never the JWT key.
pub fn files_signing_key(settings: &Settings) -> anyhow::Result<SecretString> {
    kept_secret(
        settings,
        settings.files.signing_key.as_ref(),
        "files_signing_key",
        "files.signing_key",
    )
}

/// The key sealing users' connector secrets at rest: its own secret, never the JWT key.
pub fn mcp_secrets_key(settings: &Settings) -> anyhow::Result<SecretString> {
    kept_secret(
        settings,
        settings.mcp.secrets_key.as_ref(),
        "mcp_secrets_key",
        "mcp.secrets_key",
    )
}

/// The configured secret, or the one generated into `<data dir>/secrets/<name>` earlier, or
/// a new one (dev profile only).
fn kept_secret(
    settings: &Settings,
    configured: Option<&SecretString>,
    name: &str,
    key: &str,
) -> anyhow::Result<SecretString> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    if settings.profile == Profile::Production {
        anyhow::bail!("{key} is required in the production profile");
    }
    let dir = settings.server.data_dir.join("secrets");
    let path = dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return checked(&path, existing);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes);
    let secret = hex::encode(bytes);
    // Written whole to a private temp file, then linked into place: a second process starting
    // at the same moment either wins the link or reads the complete file of the winner.
    let tmp = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(secret.as_bytes())
            .and_then(|_| file.sync_all())
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("could not write {}", tmp.display()));
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a secret (kept for restarts)");
            Ok(SecretString::from(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read_to_string(&path)
                .with_context(|| format!("could not read {}", path.display()))?;
            checked(&path, existing)
        }
        // Filesystems without hard links: create the file in place, exclusively.
        Err(_) => {
            let mut file = match options.open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let existing = std::fs::read_to_string(&path)
                        .with_context(|| format!("could not read {}", path.display()))?;
                    return checked(&path, existing);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("could not create {}", path.display()));
                }
            };
            file.write_all(secret.as_bytes())
                .and_then(|_| file.sync_all())
                .with_context(|| format!("could not write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a secret (kept for restarts)");
            Ok(SecretString::from(secret))
        }
    }
}

fn checked(path: &std::path::Path, contents: String) -> anyhow::Result<SecretString> {
    let secret = contents.trim();
    if secret.len() < 32 {
        anyhow::bail!(
            "{} holds fewer than 32 characters; delete it to generate a new one",
            path.display()
        );
    }
    Ok(SecretString::from(secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings::default();
        settings.server.data_dir = dir.path().to_path_buf();
        let first = jwt_secret(&settings).expect("generate");
        let again = jwt_secret(&settings).expect("reuse");
        use secrecy::ExposeSecret;
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert_eq!(first.expose_secret().len(), 96);
        std::fs::write(dir.path().join("secrets/jwt_secret"), "short").expect("write");
        assert!(jwt_secret(&settings).is_err());
    }
}
