//! Ansible Vault's `AES256` format, the one implementation the packer (vaulted files and
//! `!vault` values opened with `--vault-password-file`) and the runner (the `vault` and
//! `unvault` filters, lazy `!vault` values) share.
//!
//! The format (ansible-core's `VaultAES256` and `format_vaulttext_envelope`): a header
//! line `$ANSIBLE_VAULT;1.1;AES256` (or `1.2;AES256;<vault id>`), then hex text wrapped
//! at 80 columns whose decoded form is three hex lines `salt`, `hmac`, `ciphertext`.
//! PBKDF2-HMAC-SHA256 with 10000 iterations turns password and salt into 80 bytes: a
//! 32-byte AES-256-CTR key, a 32-byte HMAC-SHA256 key (the HMAC covers the ciphertext)
//! and a 16-byte initial counter. The plaintext carries PKCS#7 padding.
//!
//! All of it is RustCrypto's pure-Rust crates (`aes`, `ctr`, `hmac`, `pbkdf2`, `sha2`);
//! the HMAC is checked in constant time before anything is decrypted.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{KeyInit, Mac};

/// The first bytes of vault text.
pub const HEADER: &str = "$ANSIBLE_VAULT";

/// The key of the plan's marker for a `!vault` value the packer could not open (no
/// password given): `{"__ansible_vault": "<vault text>"}`, the form Ansible's own JSON
/// encoder gives an encrypted value. The runner keeps it encrypted until a template
/// uses it.
pub const VAULT_KEY: &str = "__ansible_vault";

/// What ansible-core says when an encrypted value is used and no vault secret is known
/// (`VaultLib.decrypt_and_get_vault_id`).
pub const NO_SECRETS: &str = "Attempting to decrypt but no vault secrets found";

/// What ansible-core says when no known secret opens the text (a wrong password).
pub const NO_MATCH: &str = "Decryption failed (no vault secrets were found that could decrypt)";

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = hmac::Hmac<sha2_vault::Sha256>;

/// Why vault text could not be made or opened, in ansible-core's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The password is not the one the text was encrypted with (the HMAC differs).
    #[error("{NO_MATCH}")]
    WrongPassword,
    /// Not well-formed vault text.
    #[error("{0}")]
    Malformed(String),
    /// A cipher other than AES256.
    #[error("{0} cipher could not be found")]
    Cipher(String),
    /// An empty salt given to encrypt (Ansible refuses it).
    #[error("Empty or invalid salt passed to encrypt()")]
    EmptySalt,
    /// The text to encrypt is vault text already.
    #[error("input is already encrypted")]
    AlreadyEncrypted,
}

/// True when the text starts (after whitespace) with the vault header.
pub fn is_vaulted(text: &[u8]) -> bool {
    text.trim_ascii_start().starts_with(HEADER.as_bytes())
}

/// The header's fields: version, cipher and vault id (1.2 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `1.1` or `1.2`.
    pub version: String,
    /// `AES256`.
    pub cipher: String,
    /// The label of a 1.2 header.
    pub vault_id: Option<String>,
}

/// Reads the header line and the hex body (lines joined, as `_parse_vaulttext_envelope`
/// joins them).
fn parse_envelope(text: &str) -> Result<(Envelope, String), VaultError> {
    let mut lines = text.trim().lines();
    let header = lines.next().unwrap_or_default().trim();
    let fields: Vec<&str> = header.split(';').map(str::trim).collect();
    let (Some(&HEADER), Some(version), Some(cipher)) =
        (fields.first(), fields.get(1), fields.get(2))
    else {
        return Err(VaultError::Malformed(
            "input is not vault encrypted data. ".into(),
        ));
    };
    let envelope = Envelope {
        version: version.to_string(),
        cipher: cipher.to_string(),
        vault_id: fields.get(3).map(|s| s.to_string()),
    };
    Ok((envelope, lines.map(str::trim).collect()))
}

/// The header of vault text, when it is vault text.
pub fn envelope(text: &str) -> Option<Envelope> {
    parse_envelope(text).ok().map(|(e, _)| e)
}

/// The AES key, HMAC key and initial counter for a password and salt.
fn derive(password: &[u8], salt: &[u8]) -> [u8; 80] {
    let mut keys = [0u8; 80];
    // PBKDF2 fails only for output lengths HMAC-SHA256 cannot give; 80 bytes it can.
    let _ = pbkdf2::pbkdf2::<HmacSha256>(password, salt, 10_000, &mut keys);
    keys
}

fn hmac(key: &[u8]) -> Result<HmacSha256, VaultError> {
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .map_err(|_| VaultError::Malformed("bad HMAC key length".into()))
}

fn apply_ctr(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), VaultError> {
    let mut c = Aes256Ctr::new_from_slices(key, iv)
        .map_err(|_| VaultError::Malformed("bad key or IV length".into()))?;
    c.apply_keystream(data);
    Ok(())
}

/// `VaultLib.encrypt`: vault text for `plain`, with this password and PBKDF2 salt (32
/// random bytes when none is given), a 1.2 header naming `vault_id` unless it is empty
/// or `default` (then 1.1), the body wrapped at 80 columns, a final newline.
pub fn encrypt(
    plain: &[u8],
    password: &[u8],
    salt: Option<&[u8]>,
    vault_id: &str,
) -> Result<String, VaultError> {
    if plain.starts_with(HEADER.as_bytes()) {
        return Err(VaultError::AlreadyEncrypted);
    }
    let random;
    let salt = match salt {
        Some([]) => return Err(VaultError::EmptySalt),
        Some(s) => s,
        None => {
            random = crate::random::bytes::<32>();
            &random[..]
        }
    };
    let keys = derive(password, salt);
    let (key1, rest) = keys.split_at(32);
    let (key2, iv) = rest.split_at(32);
    // PKCS#7 to the AES block size, as Ansible pads before the counter mode.
    let pad = 16 - plain.len() % 16;
    let mut data = plain.to_vec();
    data.extend(std::iter::repeat_n(pad as u8, pad));
    apply_ctr(key1, iv, &mut data)?;
    let mut mac = hmac(key2)?;
    mac.update(&data);
    let inner = format!(
        "{}\n{}\n{}",
        crate::hex::encode(salt),
        crate::hex::encode(&mac.finalize().into_bytes()),
        crate::hex::encode(&data)
    );
    let body = crate::hex::encode(inner.as_bytes());
    let mut out = if !vault_id.is_empty() && vault_id != "default" {
        format!("{HEADER};1.2;AES256;{vault_id}\n")
    } else {
        format!("{HEADER};1.1;AES256\n")
    };
    for chunk in body.as_bytes().chunks(80) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    Ok(out)
}

/// `VaultLib.decrypt` with one password: the plaintext bytes.
pub fn decrypt(text: &str, password: &[u8]) -> Result<Vec<u8>, VaultError> {
    let (envelope, body) = parse_envelope(text)?;
    if envelope.cipher != "AES256" {
        return Err(VaultError::Cipher(envelope.cipher));
    }
    let unhex_error = || {
        VaultError::Malformed("Vault format unhexlify error: Non-hexadecimal digit found".into())
    };
    let inner = crate::hex::decode(&body).ok_or_else(unhex_error)?;
    let parts: Vec<&[u8]> = inner.splitn(3, |b| *b == b'\n').collect();
    let [salt, mac, cipher] = parts[..] else {
        return Err(VaultError::Malformed(format!(
            "Vault vaulttext format error: not enough values to unpack (expected 3, got {})",
            parts.len()
        )));
    };
    let hex = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| crate::hex::decode(s.trim()))
            .ok_or_else(unhex_error)
    };
    let (salt, mac, mut data) = (hex(salt)?, hex(mac)?, hex(cipher)?);
    let keys = derive(password, &salt);
    let (key1, rest) = keys.split_at(32);
    let (key2, iv) = rest.split_at(32);
    let mut check = hmac(key2)?;
    check.update(&data);
    if check.verify_slice(&mac).is_err() {
        return Err(VaultError::WrongPassword);
    }
    apply_ctr(key1, iv, &mut data)?;
    // PKCS#7: the last byte says how many padding bytes there are, each of that value.
    let pad = usize::from(data.last().copied().unwrap_or(0));
    let keep = data.len().wrapping_sub(pad);
    if pad == 0
        || pad > 16
        || pad > data.len()
        || data
            .get(keep..)
            .is_none_or(|p| p.iter().any(|b| usize::from(*b) != pad))
    {
        return Err(VaultError::Malformed("Invalid padding bytes.".into()));
    }
    data.truncate(keep);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by the real ansible-core (`target/ansible-venv`):
    //   python -c "from ansible.parsing.vault import VaultLib, VaultSecret as S;
    //     print(VaultLib().encrypt(b'secret', S(b'test'), 'filter_default', b'7').decode())"
    // (the value of the filter_encryption target's vars/main.yml).
    const SECRET_TEST_SALT_7: &str = "$ANSIBLE_VAULT;1.2;AES256;filter_default
33370a34333734353636633035656232613935353432656132646533346233326431346232616261
6133383034376566366261316365633931356133633337396363370a376664386236313834326561
6338373864623763613165366636633031303739
";

    #[test]
    fn encrypts_as_ansible_does_with_a_given_salt() {
        let text = encrypt(b"secret", b"test", Some(b"7"), "filter_default").unwrap();
        assert_eq!(text, SECRET_TEST_SALT_7);
        // `default` and no id give a 1.1 header with the same body.
        let text = encrypt(b"secret", b"test", Some(b"7"), "default").unwrap();
        assert!(
            text.starts_with("$ANSIBLE_VAULT;1.1;AES256\n3337"),
            "{text}"
        );
        assert_eq!(
            envelope(SECRET_TEST_SALT_7).unwrap().vault_id.as_deref(),
            Some("filter_default")
        );
    }

    /// Vault text ansible-core made with random salts (its filter_encryption integration
    /// target's `vars/main.yml`: `data1_vaulted`, 1.1; `data2_vaulted_with_id`, 1.2).
    #[test]
    fn decrypts_what_ansible_encrypted() {
        let one_one = "$ANSIBLE_VAULT;1.1;AES256
33323332333033383335333533383338333333303339333733323339333833303334333133313339
33373339333133323331333833373335333933323338333633343338333133343334333733383334
33333335333433383337333133303339333433353332333333363339333733363335333233303330
3337333733353331333633313335333733373334333733320a373938666533366165653830313163
62386564343438653437333564383664646538653364343138303831613039313232636437336530
3438376662373764650a633366646563386335623161646262366137393635633464333265613938
6661
";
        assert_eq!(decrypt(one_one, b"test").unwrap(), b"secret");
        let one_two = "    $ANSIBLE_VAULT;1.2;AES256;test1
    65383166333033626133363239373635393635353232316433386430316265316639663234326638
    6637623162613135623965386334313361383365326466340a316465653939333339393464623664
    32303038646437326134363662393038666538643065613136316361306132636231336233333362
    3665646531363138390a643530333038333936343262343638626535653564616537313635353633
    3865
";
        assert_eq!(decrypt(one_two, b"test1@secret").unwrap(), b"foo: bar\\n");
        assert_eq!(
            envelope(one_two).unwrap().vault_id.as_deref(),
            Some("test1")
        );
        assert_eq!(decrypt(one_two, b"test1"), Err(VaultError::WrongPassword));
    }

    #[test]
    fn decrypts_and_refuses_what_it_must() {
        assert_eq!(decrypt(SECRET_TEST_SALT_7, b"test").unwrap(), b"secret");
        assert_eq!(
            decrypt(SECRET_TEST_SALT_7, b"nope"),
            Err(VaultError::WrongPassword)
        );
        let random = encrypt(b"x\n", b"pw", None, "").unwrap();
        assert_eq!(decrypt(&random, b"pw").unwrap(), b"x\n");
        assert_ne!(random, encrypt(b"x\n", b"pw", None, "").unwrap());
        assert!(matches!(
            decrypt("$ANSIBLE_VAULT;1.1;AES256\nzz\n", b"pw"),
            Err(VaultError::Malformed(_))
        ));
        assert_eq!(
            decrypt("$ANSIBLE_VAULT;1.1;DES\n00\n", b"pw"),
            Err(VaultError::Cipher("DES".into()))
        );
        assert_eq!(
            encrypt(b"a", b"pw", Some(b""), ""),
            Err(VaultError::EmptySalt)
        );
        assert_eq!(
            encrypt(SECRET_TEST_SALT_7.as_bytes(), b"pw", None, ""),
            Err(VaultError::AlreadyEncrypted)
        );
    }
}
