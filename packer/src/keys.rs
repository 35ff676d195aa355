//! Signing keys: `rustle-deploy keygen`, and finding (or first making) the key a deploy
//! signs payloads with.
//!
//! A private key file is one line, `rustle-ed25519-secret <64 hex digits>`, mode 0600;
//! its public half sits beside it as `<name>.pub` in the trust-store format the runner
//! reads (`rustle-ed25519 <hex> <comment>`).

use ed25519_dalek::{SigningKey, VerifyingKey};
use rustle_runner::{hex, trust};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const SECRET_PREFIX: &str = "rustle-ed25519-secret";

/// A key problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a private key.
    #[error("{path}: not a rustle private key ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Other users can read the private key.
    #[error(
        "{path}: private key is readable by other users (mode {mode:04o}); run chmod 600 on it"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// keygen would overwrite a key.
    #[error(
        "{path} already exists; pass --force to replace it (hosts that trust the old key will refuse new payloads)"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// No home directory to keep the default key in.
    #[error("cannot find a home directory for the default key; pass --key FILE")]
    NoHome,
}

/// A loaded signing key and where it lives.
#[derive(Debug)]
pub struct KeyPair {
    /// The private key.
    pub signing: SigningKey,
    /// The private key file.
    pub path: PathBuf,
    /// The public key file (`<path>.pub`).
    pub public_path: PathBuf,
}

impl KeyPair {
    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }
}

/// `~/.rustle/keys/deploy.key`, the default signing key.
pub fn default_key_path() -> Result<PathBuf, KeyError> {
    let home = std::env::var_os("HOME").ok_or(KeyError::NoHome)?;
    Ok(Path::new(&home).join(".rustle/keys/deploy.key"))
}

/// The public key file that goes with a private key file.
pub fn public_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes a new key pair at `path` (and `path.pub`). Refuses to replace one unless `force`.
pub fn generate(path: &Path, force: bool) -> Result<KeyPair, KeyError> {
    if path.exists() && !force {
        return Err(KeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let signing = SigningKey::generate(&mut rand_core::OsRng);
    // Write to a fresh private temp file and rename, so the key is never briefly
    // world-readable and a crash never leaves half a key.
    let tmp = sibling_temp(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    writeln!(f, "{SECRET_PREFIX} {}", hex::encode(&signing.to_bytes()))
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    let public = public_path(path);
    let comment = format!("rustle-deploy@{}", hostname());
    std::fs::write(
        &public,
        format!(
            "{}\n",
            trust::format_key(&signing.verifying_key(), &comment)
        ),
    )
    .map_err(io(&public))?;
    Ok(KeyPair {
        signing,
        path: path.to_path_buf(),
        public_path: public,
    })
}

fn sibling_temp(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".tmp{}", std::process::id()));
    PathBuf::from(s)
}

/// The controller's host name, for the public key's comment.
#[cfg(target_os = "linux")]
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The controller's host name where there is no procfs (a macOS controller): what
/// `uname -n` says (std has no gethostname).
#[cfg(not(target_os = "linux"))]
fn hostname() -> String {
    std::process::Command::new("uname")
        .arg("-n")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Reads a private key file, refusing one other users can read.
pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let malformed = |reason: &str| KeyError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut words = text.split_whitespace();
    if words.next() != Some(SECRET_PREFIX) {
        return Err(malformed(
            "expected a line starting with rustle-ed25519-secret",
        ));
    }
    let bytes: [u8; 32] = words
        .next()
        .and_then(hex::decode)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("expected 64 hex digits"))?;
    let signing = SigningKey::from_bytes(&bytes);
    let public = public_path(path);
    if !public.exists() {
        let line = trust::format_key(&signing.verifying_key(), "rustle-deploy");
        std::fs::write(&public, format!("{line}\n")).map_err(io(&public))?;
    }
    Ok(KeyPair {
        signing,
        path: path.to_path_buf(),
        public_path: public,
    })
}

/// Loads the key at `path`, or makes it when it does not exist yet. The flag says
/// whether it was just made, so the caller can tell the user where it is.
pub fn load_or_create(path: &Path) -> Result<(KeyPair, bool), KeyError> {
    if path.exists() {
        Ok((load(path)?, false))
    } else {
        Ok((generate(path, false)?, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generate_load_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/deploy.key");
        let made = generate(&p, false).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = load(&p).unwrap();
        assert_eq!(loaded.public(), made.public());
        let pubs = trust::read_key_file(&public_path(&p)).unwrap();
        assert_eq!(pubs, vec![made.public()]);
        assert!(matches!(generate(&p, false), Err(KeyError::Exists { .. })));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&p), Err(KeyError::TooOpen { .. })));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "garbage").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("deploy.key") && e.contains("not a rustle private key"),
            "{e}"
        );
    }

    #[test]
    fn load_or_create_makes_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deploy.key");
        let (a, made) = load_or_create(&p).unwrap();
        assert!(made);
        let (b, made) = load_or_create(&p).unwrap();
        assert!(!made);
        assert_eq!(a.public(), b.public());
    }
}
