//! Ansible Vault on the control machine: the password from `--vault-password-file`, and
//! the project's YAML files read with their vaulted content (a whole vaulted file, inline
//! `!vault` values) opened. The cipher itself is [`rustle_runner::vault`], which the
//! runner's `vault`/`unvault` filters use too.
//!
//! With a password, what is read is decrypted here and the plan carries plain values, as
//! `ansible-playbook` sends plain values to its modules. Without one, a whole vaulted
//! file is refused (Ansible needs the password to parse it), but an inline `!vault`
//! value stays encrypted: the plan carries it as `{"__ansible_vault": "<vault text>"}`
//! and the runner decrypts it only when `unvault` is given its password; any other use
//! fails there, as Ansible's lazy `AnsibleVaultEncryptedUnicode` does.

use rustle_runner::vault as cipher;
use std::path::{Path, PathBuf};

pub use rustle_runner::vault::{HEADER, is_vaulted};

/// Why vaulted content could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Vaulted content and no password to open it.
    #[error(
        "{what} is encrypted with Ansible Vault: give the password with --vault-password-file FILE"
    )]
    NoPassword {
        /// The file (and where in it).
        what: String,
    },
    /// The password is not the one the content was encrypted with.
    #[error("HMAC mismatch: wrong vault password for {what}")]
    WrongPassword {
        /// The file (and where in it).
        what: String,
    },
    /// The content is not a well-formed vault.
    #[error("{what}: malformed Ansible Vault content: {detail}")]
    Malformed {
        /// The file (and where in it).
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The password file could not be read or run.
    #[error("vault password file {}: {detail}", path.display())]
    PasswordFile {
        /// The password file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// The vault password, read once.
#[derive(Clone)]
pub struct Vault {
    password: Vec<u8>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<password>)")
    }
}

impl Vault {
    /// A vault opened with this password.
    pub fn from_password(password: &[u8]) -> Vault {
        Vault {
            password: password.to_vec(),
        }
    }

    /// Reads the password file as Ansible does: an executable file is run and its output
    /// is the password; either way surrounding whitespace (the final newline) is dropped.
    pub fn from_password_file(path: &Path) -> Result<Vault, VaultError> {
        let err = |detail: String| VaultError::PasswordFile {
            path: path.to_path_buf(),
            detail,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & 0o111 != 0
        };
        let raw = if executable {
            let out = std::process::Command::new(path)
                .output()
                .map_err(|e| err(format!("cannot run it: {e}")))?;
            if !out.status.success() {
                return Err(err(format!("the script failed ({})", out.status)));
            }
            out.stdout
        } else {
            std::fs::read(path).map_err(|e| err(e.to_string()))?
        };
        let password = raw.trim_ascii().to_vec();
        if password.is_empty() {
            return Err(err("the password is empty".into()));
        }
        Ok(Vault { password })
    }

    /// Decrypts vault text; `what` names the file (and place) in errors.
    pub fn decrypt(&self, text: &str, what: &str) -> Result<Vec<u8>, VaultError> {
        cipher::decrypt(text, &self.password).map_err(|e| match e {
            cipher::VaultError::WrongPassword => VaultError::WrongPassword {
                what: what.to_string(),
            },
            other => VaultError::Malformed {
                what: what.to_string(),
                detail: other.to_string(),
            },
        })
    }

    /// Decrypts vault text into UTF-8 text.
    pub fn decrypt_text(&self, text: &str, what: &str) -> Result<String, VaultError> {
        String::from_utf8(self.decrypt(text, what)?).map_err(|_| VaultError::Malformed {
            what: what.to_string(),
            detail: "the decrypted content is not UTF-8 text".into(),
        })
    }
}

/// Opens vault text with `vault`, or says which flag is missing.
pub fn open(vault: Option<&Vault>, text: &str, what: &str) -> Result<String, VaultError> {
    match vault {
        Some(v) => v.decrypt_text(text, what),
        None => Err(VaultError::NoPassword {
            what: what.to_string(),
        }),
    }
}

/// Reads a YAML file of the project (vars files, group_vars, host_vars, playbooks): a
/// vaulted whole file is decrypted first (it needs the password), then every inline
/// `!vault` value is replaced by its plaintext when there is a password, or left tagged
/// for the plan to carry encrypted. Errors name the file, and the line for inline values.
pub fn parse_yaml(
    text: &str,
    file: &Path,
    vault: Option<&Vault>,
) -> Result<serde_norway::Value, YamlError> {
    let plain;
    let text = if is_vaulted(text.as_bytes()) {
        plain = open(vault, text, &file.display().to_string())?;
        plain.as_str()
    } else {
        text
    };
    // Ansible's YAML 1.1 reading (booleans, octal, merge keys, `!unsafe`), not YAML 1.2.
    let mut value = crate::ansible_yaml::load_from(
        text,
        &file.display().to_string(),
        crate::ansible_yaml::Duplicates::from_env(),
    )
    .map_err(|e| YamlError::Syntax {
        line: e.line,
        column: e.column,
        msg: e.msg,
    })?;
    if text.contains("!vault") {
        // Tagged values come in document order, as do the `!vault` marks in the text:
        // the n-th tagged value is on the line of the n-th mark.
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .flat_map(|(i, l)| std::iter::repeat_n(i + 1, l.matches("!vault").count()))
            .collect();
        let mut seen = 0;
        open_inline(&mut value, vault, file, &lines, &mut seen)?;
    }
    Ok(value)
}

/// Why a YAML file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// Not valid YAML.
    #[error("{msg}")]
    Syntax {
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What the parser said.
        msg: String,
    },
    /// Vaulted content that could not be opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Replaces `!vault` tagged scalars with their plaintext when there is a password, depth
/// first in document order.
fn open_inline(
    value: &mut serde_norway::Value,
    vault: Option<&Vault>,
    file: &Path,
    lines: &[usize],
    seen: &mut usize,
) -> Result<(), VaultError> {
    use serde_norway::Value as Yaml;
    match value {
        Yaml::Sequence(items) => {
            for v in items {
                open_inline(v, vault, file, lines, seen)?;
            }
        }
        Yaml::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                open_inline(v, vault, file, lines, seen)?;
            }
        }
        Yaml::Tagged(tagged) if tagged.tag == "vault" => {
            let what = match lines.get(*seen) {
                Some(line) => format!("{}:{line}", file.display()),
                None => file.display().to_string(),
            };
            *seen += 1;
            let Yaml::String(text) = &tagged.value else {
                return Err(VaultError::Malformed {
                    what,
                    detail: "a !vault value is a string".into(),
                });
            };
            // Without a password the value stays tagged: the plan carries it encrypted
            // (`ansible_yaml::to_json`) and only a use of it on the host fails. With
            // one, it is opened here, and stays tagged as opened: Ansible's value reads
            // as its plaintext but is still `vault_encrypted`.
            if let Some(vault) = vault {
                let plain = vault.decrypt_text(text, &what)?;
                *value = crate::ansible_yaml::opened_vault(plain, text.clone());
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_vault_text() {
        assert!(is_vaulted(b"\n  $ANSIBLE_VAULT;1.1;AES256\n"));
        assert!(!is_vaulted(b"key: value"));
    }

    /// The project fixture, encrypted by the real `ansible-vault` (ansible-core 2.x).
    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ansible_project")
            .join(rel)
    }

    fn vault() -> Vault {
        Vault::from_password_file(&fixture("vault-password")).unwrap()
    }

    #[test]
    fn opens_what_ansible_vault_encrypted() {
        // 1.1 whole file.
        let text = std::fs::read_to_string(fixture("vars/secrets.yml")).unwrap();
        assert!(text.starts_with("$ANSIBLE_VAULT;1.1;AES256"));
        let plain = vault().decrypt_text(&text, "secrets.yml").unwrap();
        assert_eq!(plain, "db_password: s3cret-db\napi_token: tok-42\n");
        // 1.2 with a vault id label.
        let text = std::fs::read_to_string(fixture("group_vars/web/20-vault.yml")).unwrap();
        assert!(text.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod"));
        let plain = vault().decrypt_text(&text, "web").unwrap();
        assert_eq!(plain, "web_secret: web-only-secret\n");
        // Inline `!vault` in YAML, beside plain values.
        let path = fixture("host_vars/web1.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        let value = parse_yaml(&text, &path, Some(&vault())).unwrap();
        let json = crate::ansible_yaml::to_json(&value).unwrap();
        assert_eq!(
            rustle_runner::template::opened_vault(&json["host_secret"]).map(|(plain, _)| plain),
            Some("inline-pass-web1")
        );
        assert_eq!(value["app_port"].as_u64(), Some(9001));
    }

    #[test]
    fn wrong_or_missing_password_names_the_file() {
        let path = fixture("host_vars/web1.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        let wrong = Vault::from_password(b"not it");
        let e = parse_yaml(&text, &path, Some(&wrong))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("HMAC mismatch: wrong vault password for "),
            "{e}"
        );
        // The line of the `!vault` mark.
        assert!(e.ends_with("host_vars/web1.yml:1"), "{e}");
        // No password: an inline value stays encrypted, for the plan to carry as the
        // marker the runner opens only when `unvault` gives it a password.
        let value = parse_yaml(&text, &path, None).unwrap();
        let json = crate::ansible_yaml::to_json(&value).unwrap();
        let sealed = json["host_secret"][rustle_runner::vault::VAULT_KEY]
            .as_str()
            .unwrap();
        assert!(
            sealed.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"),
            "{sealed}"
        );
        assert_eq!(
            vault().decrypt_text(sealed, "web1").unwrap(),
            "inline-pass-web1"
        );
        assert_eq!(json["app_port"], 9001);
        // A whole vaulted file needs the password to be read at all.
        let whole = std::fs::read_to_string(fixture("vars/secrets.yml")).unwrap();
        let e = parse_yaml(&whole, Path::new("vars/secrets.yml"), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "vars/secrets.yml is encrypted with Ansible Vault: give the password with --vault-password-file FILE"
        );
        let whole = std::fs::read_to_string(fixture("vars/secrets.yml")).unwrap();
        let e = parse_yaml(&whole, Path::new("vars/secrets.yml"), Some(&wrong))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "HMAC mismatch: wrong vault password for vars/secrets.yml"
        );
    }

    #[test]
    fn password_file_script_and_whitespace() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("pw.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho '  correct horse battery staple  '\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let text = std::fs::read_to_string(fixture("vars/secrets.yml")).unwrap();
        let v = Vault::from_password_file(&script).unwrap();
        assert!(v.decrypt_text(&text, "s").unwrap().contains("s3cret-db"));
        let empty = d.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = Vault::from_password_file(&empty).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn refuses_malformed_content() {
        let v = Vault::from_password(b"pw");
        let e = v
            .decrypt("$ANSIBLE_VAULT;1.1;AES256\nxyz\n", "f.yml")
            .unwrap_err();
        assert!(e.to_string().contains("f.yml"), "{e}");
        let e = v
            .decrypt("$ANSIBLE_VAULT;1.0;DES\n00\n", "f.yml")
            .unwrap_err();
        assert!(
            e.to_string().contains("DES cipher could not be found"),
            "{e}"
        );
    }
}
