//! Object keys: the one shape both stores accept, checked before any path or URL is built
//! from a key so that no key can escape the store's root or bucket prefix.

use ironhand_core::ports::blob_store::BlobError;

/// Longest key accepted; the service's keys (`files/<uuid>` and the like) are far shorter.
pub const MAX_KEY_LEN: usize = 200;

/// Accepts `[a-z0-9/_-]` in non-empty `/`-separated segments, no leading or trailing `/`.
/// (`.` is not in the alphabet, so `..` and hidden temp names can never be keys.)
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let alphabet_ok = key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'_' | b'-'));
    if key.is_empty()
        || key.len() > MAX_KEY_LEN
        || !alphabet_ok
        || key.split('/').any(str::is_empty)
    {
        return Err(BlobError::InvalidKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_keys_the_service_hands_out() {
        for key in [
            "files/0190f3a2-7b1c-7000-8000-000000000001",
            "a",
            "a/b_c/d-e",
            "x9",
        ] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn refuses_anything_that_could_escape_or_collide() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for key in [
            "",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "a/./b",
            ".tmp",
            "A",
            "a b",
            "a\\b",
            "a\0b",
            "é",
            "a.txt",
            long.as_str(),
        ] {
            assert!(
                matches!(validate_key(key), Err(BlobError::InvalidKey)),
                "{key:?}"
            );
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN)).is_ok());
    }
}
