//! ansible-core's `vault` and `unvault` filters (`plugins/filter/encryption.py`) and its
//! encrypted value (`AnsibleVaultEncryptedUnicode`): a `!vault` value the packer could
//! not open (no vault password given) stays encrypted in the plan and here, and is
//! decrypted only when `unvault` is given its password; any other use fails as Ansible's
//! does when it has no vault secret. The cipher is [`crate::vault`].

use super::{Opts, add_filters, first_positional, invalid, py_str, py_type, split};
use crate::vault as format;
use minijinja::value::{Object, ObjectRepr, Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

/// An encrypted value in a template: Ansible's `AnsibleVaultEncryptedUnicode`.
#[derive(Debug)]
pub(crate) struct Vaulted {
    /// The vault text.
    text: String,
    /// A `!vault` value from a file, which Ansible ties to its configured vault secrets
    /// (none here: the packer would have opened it otherwise), so that using it fails.
    /// What `vault(..., wrap_object=True)` gives has no secrets attached: Ansible uses it
    /// as its vault text.
    sealed: bool,
}

thread_local! {
    /// Set when a sealed value was turned into text: the template that did it fails
    /// with Ansible's error (see [`watch`]); minijinja's formatting cannot fail with a
    /// message of its own.
    static SEALED_USED: Cell<bool> = const { Cell::new(false) };
}

/// Runs a render or an evaluation, and says whether it used a sealed value as text.
pub(crate) fn watch<T>(f: impl FnOnce() -> T) -> (T, bool) {
    let before = SEALED_USED.with(|u| u.replace(false));
    let out = f();
    let used = SEALED_USED.with(|u| u.replace(before));
    (out, used)
}

impl Vaulted {
    /// A `!vault` value carried in the plan as `{"__ansible_vault": text}`.
    pub(crate) fn sealed(text: String) -> JValue {
        JValue::from_object(Vaulted { text, sealed: true })
    }

    /// The vault text and whether it is sealed, when `v` is an encrypted value.
    pub(crate) fn of(v: &JValue) -> Option<(&str, bool)> {
        let this = v.downcast_object_ref::<Vaulted>()?;
        Some((this.text.as_str(), this.sealed))
    }
}

impl Object for Vaulted {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    // Python's `len()` and truth of the object read its text (`Sequence` over `.data`).
    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        if self.sealed {
            SEALED_USED.with(|u| u.set(true));
            return Some(0);
        }
        Some(self.text.chars().count())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        self.enumerator_len() != Some(0)
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result
    where
        Self: Sized + 'static,
    {
        if self.sealed {
            // Never the text: the caller of `watch` turns this into Ansible's error.
            SEALED_USED.with(|u| u.set(true));
            return Ok(());
        }
        f.write_str(&self.text)
    }
}

/// The error of a template that used a sealed value.
pub(crate) fn sealed_error() -> Error {
    invalid(format::NO_SECRETS)
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

fn vault(v: JValue, secret: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let salt = o.arg(0, "salt")?.filter(|s| !s.is_none());
    // `vault_id=None` (or '') writes a 1.1 header, as `format_vaulttext_envelope` does.
    // (`arg` gives None for an explicit None: look at the keyword itself.)
    let given = match o.kw.has("vault_id") {
        true => Some(o.kw.get::<JValue>("vault_id")?),
        false => o.pos.get(1).cloned(),
    };
    let vault_id = match given {
        None => "filter_default".into(),
        Some(i) if i.is_none() => String::new(),
        Some(i) => py_str(&i),
    };
    let wrap = o.flag(2, "wrap_object")?;
    let vaultid = o
        .arg(3, "vaultid")?
        .filter(|s| !s.is_none())
        .map(|i| py_str(&i));
    o.done("vault", 4)?;
    let password = secret_text(&secret, "the vault secret")?;
    if !matches!(v.kind(), ValueKind::String | ValueKind::Bytes) || Vaulted::of(&v).is_some() {
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
    // Python's `to_bytes(salt)`: a number is its text (`salt=7` is b"7"); a false salt
    // (0, '') is refused, as `VaultAES256.encrypt` refuses it.
    let salt = salt.map(|s| {
        if s.is_true() {
            py_str(&s).into_bytes()
        } else {
            Vec::new()
        }
    });
    let text = format::encrypt(
        py_str(&v).as_bytes(),
        password.as_bytes(),
        salt.as_deref(),
        &vault_id,
    )
    .map_err(|e| wrapped("encrypt", &e))?;
    Ok(if wrap {
        JValue::from_object(Vaulted {
            text,
            sealed: false,
        })
    } else {
        JValue::from(text)
    })
}

fn unvault(v: JValue, secret: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    // The vault id only picks among several secrets; with one secret it changes nothing.
    let _vault_id = o.arg(0, "vault_id")?;
    let _vaultid = o.arg(1, "vaultid")?;
    o.done("unvault", 2)?;
    let password = secret_text(&secret, "the vault secret")?;
    let plain = if let Some((text, _)) = Vaulted::of(&v) {
        // An encrypted value is opened with the filter's secret in place of its own;
        // Ansible gives its errors as they are.
        format::decrypt(text, password.as_bytes()).map_err(|e| invalid(e.to_string()))?
    } else {
        if !matches!(v.kind(), ValueKind::String | ValueKind::Bytes) {
            defined(&v)?;
            return Err(invalid(format!(
                "Vault should be in the form of a string, instead we got: <class '{}'>",
                py_type(&v)
            )));
        }
        let text = py_str(&v);
        // `is_encrypted`: the header at the very start, no whitespace before it.
        if !text.starts_with(format::HEADER) {
            return Ok(text);
        }
        format::decrypt(&text, password.as_bytes()).map_err(|e| wrapped("decrypt", &e))?
    };
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

/// The filter's `AnsibleFilterError("Unable to ...", orig_exc=e)`, whose message Ansible
/// ends with the original one again: `Unable to decrypt: X. X`.
fn wrapped(action: &str, e: &format::VaultError) -> Error {
    invalid(format!("Unable to {action}: {e}. {e}"))
}

/// The `vault_encrypted` test: true for a `!vault` value only (Ansible asks the value's
/// own vault, which a `wrap_object` value lacks; a string made from one is not one).
pub(crate) fn vault_encrypted(v: &JValue) -> bool {
    Vaulted::of(v).is_some_and(|(_, sealed)| sealed) || is_opened(v)
}

/// The template value of each `!vault` value the packer opened, by vault text. Ansible
/// keeps such a value as an object that reads as its plaintext; here it is the plaintext
/// itself, as an unsafe string (never templated), so every filter and operator takes it
/// as text. What still tells it apart, for `vault_encrypted`, is its identity: a string
/// is shared, never copied, by variable lookups, and every string a template makes
/// (`x ~ ''`, `x | string`, ...) is a new one, as Ansible's `.data` is a plain `str`.
/// Kept for the run (one entry per vault value), so an address is never reused.
static OPENED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, JValue>>> =
    std::sync::LazyLock::new(Default::default);

/// The template value of an opened vault value (see [`OPENED`]).
pub(crate) fn opened(plain: &str, text: &str) -> JValue {
    let mut all = OPENED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    all.entry(text.to_string())
        .or_insert_with(|| JValue::from_safe_string(plain.to_string()))
        .clone()
}

/// Whether `v` is the very string of an opened vault value.
fn is_opened(v: &JValue) -> bool {
    let Some(s) = v.as_str() else {
        return false;
    };
    let all = OPENED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    all.values()
        .filter_map(JValue::as_str)
        .any(|o| std::ptr::eq(o, s))
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
                vault(v, secret, r)
            }),
            ("unvault", |a| {
                let (v, mut r) = split(a)?;
                let secret = first_positional(&mut r, "secret", "unvault")?;
                unvault(v, secret, r).map(JValue::from)
            }),
        ],
    );
}
