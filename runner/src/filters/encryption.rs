//! ansible-core's `vault` and `unvault` filters (`plugins/filter/encryption.py`): Ansible
//! Vault 1.1/1.2 text, AES-256-CTR with an HMAC-SHA256, keys from PBKDF2-HMAC-SHA256
//! (10000 rounds) over a 32-byte salt, as `ansible.parsing.vault.VaultAES256` does.
//!
//! HMAC and PBKDF2 are written here over the runner's `sha2`; the block cipher is
//! RustCrypto's `aes`, driven in counter mode by `ctr`.

use super::math::os_random;
use super::{Opts, add_filters, first_positional, invalid, py_str, py_type, split};
use aes::cipher::{KeyIvInit, StreamCipher};
use minijinja::value::{Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};
use sha2::{Digest as _, Sha256};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        let d = Sha256::digest(key);
        for (b, k) in block.iter_mut().zip(d.iter()) {
            *b = *k;
        }
    } else {
        for (b, k) in block.iter_mut().zip(key) {
            *b = *k;
        }
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for d in data {
        inner.update(d);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// PBKDF2-HMAC-SHA256 (RFC 8018) for `len` bytes.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block_index = 1u32;
    while out.len() < len {
        let mut u = hmac_sha256(password, &[salt, &block_index.to_be_bytes()]);
        let mut t = u;
        for _ in 1..rounds {
            u = hmac_sha256(password, &[&u]);
            for (x, y) in t.iter_mut().zip(u.iter()) {
                *x ^= y;
            }
        }
        out.extend_from_slice(&t);
        block_index += 1;
    }
    out.truncate(len);
    out
}

/// The cipher key, HMAC key and counter IV derived from a password and salt.
fn derive(password: &[u8], salt: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let keys = pbkdf2_sha256(password, salt, 10_000, 80);
    let (k1, rest) = keys.split_at(32);
    let (k2, iv) = rest.split_at(32);
    (k1.to_vec(), k2.to_vec(), iv.to_vec())
}

fn ctr_apply(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
    let mut c =
        Aes256Ctr::new_from_slices(key, iv).map_err(|_| invalid("vault: bad key or IV length"))?;
    c.apply_keystream(data);
    Ok(())
}

/// `VaultLib.encrypt`: the vault text (envelope, hex body wrapped at 80 columns).
fn encrypt(
    plain: &[u8],
    password: &[u8],
    salt: Option<Vec<u8>>,
    vault_id: &str,
) -> Result<String, Error> {
    let salt = match salt {
        Some(s) if s.is_empty() => {
            return Err(invalid("Unable to encrypt: Empty or invalid salt passed"));
        }
        Some(s) => s,
        None => os_random(32)?,
    };
    let (k1, k2, iv) = derive(password, &salt);
    // PKCS#7 padding to the AES block size, as Ansible pads before the counter mode.
    let pad = 16 - plain.len() % 16;
    let mut data = plain.to_vec();
    data.extend(std::iter::repeat_n(pad as u8, pad));
    ctr_apply(&k1, &iv, &mut data)?;
    let mac = hmac_sha256(&k2, &[&data]);
    let inner = format!(
        "{}\n{}\n{}",
        crate::hex::encode(&salt),
        crate::hex::encode(&mac),
        crate::hex::encode(&data)
    );
    let body = crate::hex::encode(inner.as_bytes());
    let header = if !vault_id.is_empty() && vault_id != "default" {
        format!("$ANSIBLE_VAULT;1.2;AES256;{vault_id}")
    } else {
        "$ANSIBLE_VAULT;1.1;AES256".to_string()
    };
    let mut out = header;
    out.push('\n');
    for chunk in body.as_bytes().chunks(80) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    Ok(out)
}

/// True when the text is vault text (its first line is a vault header).
fn is_vault(text: &str) -> bool {
    text.trim_start().starts_with("$ANSIBLE_VAULT;")
}

/// `VaultLib.decrypt` with one password.
fn decrypt(text: &str, password: &[u8]) -> Result<Vec<u8>, String> {
    let mut lines = text.trim().lines();
    let header = lines.next().unwrap_or_default();
    let fields: Vec<&str> = header.trim().split(';').collect();
    if fields.get(2).map(|c| c.trim()) != Some("AES256") {
        return Err(format!("unsupported vault cipher in header '{header}'"));
    }
    let body: String = lines.flat_map(|l| l.trim().chars()).collect();
    let malformed = || "Vault format unhexlify error: the vault text is malformed".to_string();
    let inner = crate::hex::decode(&body).ok_or_else(malformed)?;
    let inner = String::from_utf8(inner).map_err(|_| malformed())?;
    let mut parts = inner.split('\n');
    let mut next =
        || crate::hex::decode(parts.next().unwrap_or_default().trim()).ok_or_else(malformed);
    let (salt, mac, mut data) = (next()?, next()?, next()?);
    let (k1, k2, iv) = derive(password, &salt);
    if hmac_sha256(&k2, &[&data]).as_slice() != mac.as_slice() {
        return Err("Decryption failed (no vault secrets were found that could decrypt)".into());
    }
    ctr_apply(&k1, &iv, &mut data).map_err(|e| e.to_string())?;
    let pad = usize::from(data.last().copied().unwrap_or(0));
    if pad == 0 || pad > 16 || pad > data.len() {
        return Err("Invalid padding bytes.".into());
    }
    data.truncate(data.len() - pad);
    Ok(data)
}

fn secret_text(v: &JValue, what: &str) -> Result<String, Error> {
    match v.kind() {
        ValueKind::String | ValueKind::Bytes => Ok(py_str(v)),
        ValueKind::Undefined => Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("{what} is undefined"),
        )),
        _ => Err(invalid(format!(
            "Secret passed is required to be a string, instead we got: <class '{}'>",
            py_type(v)
        ))),
    }
}

fn vault(v: JValue, secret: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let salt = o.arg(0, "salt")?.filter(|s| !s.is_none());
    let vault_id = o
        .arg(1, "vault_id")?
        .map(|i| py_str(&i))
        .unwrap_or_else(|| "filter_default".into());
    // wrap_object gives Python an object type; the text is the same.
    let _wrap = o.arg(2, "wrap_object")?;
    let vaultid = o
        .arg(3, "vaultid")?
        .filter(|s| !s.is_none())
        .map(|i| py_str(&i));
    o.done("vault", 4)?;
    let password = secret_text(&secret, "the vault secret")?;
    if !matches!(v.kind(), ValueKind::String | ValueKind::Bytes) {
        defined(&v)?;
        return Err(invalid(format!(
            "Can only vault strings, instead we got: <class '{}'>",
            py_type(&v)
        )));
    }
    let vault_id = match vaultid {
        Some(id) if vault_id == "filter_default" => id,
        _ => vault_id,
    };
    let salt = salt.map(|s| py_str(&s).into_bytes());
    encrypt(py_str(&v).as_bytes(), password.as_bytes(), salt, &vault_id)
}

fn unvault(v: JValue, secret: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    // The vault id only picks among several secrets; with one secret it changes nothing.
    let _vault_id = o.arg(0, "vault_id")?;
    let _vaultid = o.arg(1, "vaultid")?;
    o.done("unvault", 2)?;
    let password = secret_text(&secret, "the vault secret")?;
    if !matches!(v.kind(), ValueKind::String | ValueKind::Bytes) {
        defined(&v)?;
        return Err(invalid(format!(
            "Vault should be in the form of a string, instead we got: <class '{}'>",
            py_type(&v)
        )));
    }
    let text = py_str(&v);
    if !is_vault(&text) {
        return Ok(text);
    }
    let plain = decrypt(&text, password.as_bytes())
        .map_err(|e| invalid(format!("Unable to decrypt: {e}")))?;
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

use super::defined;

/// Registers `vault` and `unvault`.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_filters(
        env,
        &[
            ("vault", |a| {
                let (v, mut r) = split(a)?;
                let secret = first_positional(&mut r, "secret", "vault")?;
                vault(v, secret, r).map(JValue::from)
            }),
            ("unvault", |a| {
                let (v, mut r) = split(a)?;
                let secret = first_positional(&mut r, "secret", "unvault")?;
                unvault(v, secret, r).map(JValue::from)
            }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2 and RFC 7914's PBKDF2-HMAC-SHA256 vector.
    #[test]
    fn hmac_and_pbkdf2_match_published_vectors() {
        assert_eq!(
            crate::hex::encode(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            crate::hex::encode(&pbkdf2_sha256(b"passwd", b"salt", 1, 64)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
    }
}
