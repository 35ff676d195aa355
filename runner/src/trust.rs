//! Trusted signer keys: key files given with `--trusted-key` and the host's trust store
//! (`/etc/rustle/trusted_keys`, `~/.rustle/trusted_keys`).
//!
//! A key file holds one key per line, `rustle-ed25519 <64 hex digits> [comment]` (a bare
//! 64-digit hex key is accepted too); blank lines and `#` comments are ignored.

use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};

/// The word that starts a public key line.
pub const KEY_PREFIX: &str = "rustle-ed25519";

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read.
    #[error("cannot read trusted key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a key.
    #[error("{path}:{line}: not a rustle public key ({reason})")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// Formats a public key as a key file line.
pub fn format_key(key: &VerifyingKey, comment: &str) -> String {
    let hex = crate::hex::encode(key.as_bytes());
    if comment.is_empty() {
        format!("{KEY_PREFIX} {hex}")
    } else {
        format!("{KEY_PREFIX} {hex} {comment}")
    }
}

/// Parses key file text.
pub fn parse_keys(text: &str, path: &Path) -> Result<Vec<VerifyingKey>, TrustError> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| TrustError::BadLine {
            path: path.to_path_buf(),
            line: n + 1,
            reason: reason.to_string(),
        };
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let hex = if first == KEY_PREFIX {
            words.next().ok_or_else(|| bad("no key after the prefix"))?
        } else {
            first
        };
        let bytes: [u8; 32] = crate::hex::decode(hex)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("expected 64 hex digits"))?;
        keys.push(VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid ed25519 key"))?);
    }
    Ok(keys)
}

/// Reads one key file.
pub fn read_key_file(path: &Path) -> Result<Vec<VerifyingKey>, TrustError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_keys(&text, path)
}

/// The host's trust store files, in the order they are read.
pub fn store_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("/etc/rustle/trusted_keys")];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).join(".rustle/trusted_keys"));
    }
    paths
}

/// Keys from the trust store files that exist. A store file that exists but is broken
/// is an error: silently trusting less than the operator wrote would be confusing.
pub fn store_keys() -> Result<Vec<VerifyingKey>, TrustError> {
    let mut keys = Vec::new();
    for p in store_paths() {
        if p.exists() {
            keys.extend(read_key_file(&p)?);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn round_trip_and_errors() {
        let k = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let text = format!(
            "# ops\n\n{}\n{}\n",
            format_key(&k, "me@laptop"),
            crate::hex::encode(k.as_bytes())
        );
        let keys = parse_keys(&text, Path::new("t")).unwrap();
        assert_eq!(keys, vec![k, k]);
        let err = parse_keys("rustle-ed25519 abcd\n", Path::new("t")).unwrap_err();
        assert!(err.to_string().contains("t:1"), "{err}");
        assert!(parse_keys("rustle-ed25519\n", Path::new("t")).is_err());
    }
}
