//! The `password` lookup: a password read from a file on the controller, or generated
//! and written there, as ansible-core 2.18's plugin does (`length`, `chars`, `seed`,
//! `ident`; the file's `salt=`/`ident=` suffix; the lock file beside it; `/dev/null` for
//! a fresh password that is not stored). `encrypt=` is refused: it needs the crypt
//! hashes, which rustle-deploy does not have yet.

use super::{World, path_dwim};
use rustle_runner::lookups::{LookupError, parse_kv};
use rustle_runner::plan::Vars;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The options a term may give as `key=value`.
const VALID_PARAMS: [&str; 5] = ["length", "encrypt", "chars", "ident", "seed"];

/// Python's `string` module constants that `chars` may name.
fn string_constant(name: &str) -> Option<String> {
    let lower = "abcdefghijklmnopqrstuvwxyz";
    let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let digits = "0123456789";
    let punctuation = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;
    let whitespace = " \t\n\r\u{b}\u{c}";
    Some(match name {
        "ascii_letters" => format!("{lower}{upper}"),
        "ascii_lowercase" => lower.to_string(),
        "ascii_uppercase" => upper.to_string(),
        "digits" => digits.to_string(),
        "hexdigits" => "0123456789abcdefABCDEF".to_string(),
        "octdigits" => "01234567".to_string(),
        "punctuation" => punctuation.to_string(),
        "whitespace" => whitespace.to_string(),
        "printable" => format!("{digits}{lower}{upper}{punctuation}{whitespace}"),
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct Params {
    length: i64,
    encrypt: Option<String>,
    chars: Vec<String>,
    ident: Option<String>,
    seed: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            length: 20,
            encrypt: None,
            chars: vec!["ascii_letters".into(), "digits".into(), ".,:-_".into()],
            ident: None,
            seed: None,
        }
    }
}

fn invalid_type(field: &str, v: &Value) -> LookupError {
    LookupError::Options(format!(
        "Invalid type for configuration option plugin_type: lookup plugin: password \
         setting: {field} (from Direct): Invalid type provided for \"int\": {}",
        text(v)
    ))
}

/// Python's `str()` of an option value.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

impl Params {
    /// Sets one option; `from_term` options are text and `chars` is then comma-separated.
    fn set(&mut self, key: &str, v: &Value, from_term: bool) -> Result<(), LookupError> {
        match key {
            "length" => {
                self.length = match v {
                    Value::Number(n) => n.as_i64().ok_or_else(|| invalid_type(key, v))?,
                    Value::String(s) => s.trim().parse().map_err(|_| invalid_type(key, v))?,
                    _ => return Err(invalid_type(key, v)),
                }
            }
            "encrypt" => self.encrypt = (!v.is_null()).then(|| text(v)),
            "ident" => self.ident = (!v.is_null()).then(|| text(v)),
            "seed" => self.seed = (!v.is_null()).then(|| text(v)),
            "chars" => {
                self.chars = match v {
                    Value::Array(items) => items.iter().map(text).collect(),
                    Value::String(s) if from_term => {
                        // `,,` stands for a comma.
                        let mut chars = Vec::new();
                        if s.contains(",,") {
                            chars.push(",".to_string());
                        }
                        chars.extend(
                            s.replace(",,", ",")
                                .split(',')
                                .filter(|c| !c.is_empty())
                                .map(str::to_string),
                        );
                        chars
                    }
                    Value::String(s) => s.split(',').map(|c| c.trim().to_string()).collect(),
                    other => vec![text(other)],
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The path and options of one term: `path [key=value ...]`, a path with spaces allowed.
fn parse_term(term: &str, mut params: Params) -> Result<(String, Params), LookupError> {
    let Some((first, rest)) = term.split_once(' ') else {
        return Ok((term.to_string(), params));
    };
    let mut kv = parse_kv(rest).map_err(LookupError::ansible)?;
    let mut relpath = first.to_string();
    if let Some(Value::String(raw)) = kv.shift_remove("_raw_params") {
        relpath = format!("{relpath} {raw}");
        if !term.starts_with(&relpath) {
            return Err(LookupError::ansible(
                "Unrecognized value after key=value parameters given to password lookup",
            ));
        }
    }
    let mut invalid: Vec<&str> = kv
        .keys()
        .map(String::as_str)
        .filter(|k| !VALID_PARAMS.contains(k))
        .collect();
    if !invalid.is_empty() {
        invalid.sort_unstable();
        return Err(LookupError::ansible(format!(
            "Unrecognized parameter(s) given to password lookup: {}",
            invalid.join(", ")
        )));
    }
    for (k, v) in &kv {
        params.set(k, v, true)?;
    }
    Ok((relpath, params))
}

/// The characters a password is made of: each `chars` entry names a Python `string`
/// constant or is taken literally; quotes never go into a password.
fn candidate_chars(specs: &[String]) -> Vec<char> {
    specs
        .iter()
        .map(|s| string_constant(s).unwrap_or_else(|| s.clone()))
        .collect::<String>()
        .chars()
        .filter(|c| *c != '"' && *c != '\'')
        .collect()
}

/// A password of `length` characters drawn from `chars`: from the system's random
/// source, or, with a seed, as Python's `random.Random(seed).choice` draws them, so a
/// seed gives the password Ansible gives.
fn random_password(length: i64, chars: &[char], seed: Option<&str>) -> Result<String, LookupError> {
    let count = usize::try_from(length).unwrap_or(0);
    if count > 0 && chars.is_empty() {
        return Err(LookupError::Plugin {
            class: "IndexError".into(),
            msg: "Cannot choose from an empty sequence".into(),
        });
    }
    let n = u32::try_from(chars.len())
        .map_err(|_| LookupError::ansible("the password lookup's `chars` are too many"))?;
    let mut out = String::with_capacity(count);
    match seed {
        Some(seed) => {
            let mut rng = PyRandom::from_str_seed(seed);
            for _ in 0..count {
                let i = rng.below(n) as usize;
                out.extend(chars.get(i));
            }
        }
        None => {
            use rand_core::RngCore;
            let mut rng = rand_core::OsRng;
            for _ in 0..count {
                // Rejection sampling: uniform over the characters.
                let zone = u32::MAX - u32::MAX % n;
                let i = loop {
                    let r = rng.next_u32();
                    if r < zone {
                        break r % n;
                    }
                };
                out.extend(chars.get(i as usize));
            }
        }
    }
    Ok(out)
}

/// Python's `random.Random` (MT19937) seeded with a string, as far as `choice` uses it.
struct PyRandom {
    mt: [u32; 624],
    index: usize,
}

/// The state word at `i` (indices wrap, so the generator never indexes out of bounds).
fn word(mt: &[u32; 624], i: usize) -> u32 {
    mt.get(i % 624).copied().unwrap_or(0)
}

fn set_word(mt: &mut [u32; 624], i: usize, v: u32) {
    if let Some(w) = mt.get_mut(i % 624) {
        *w = v;
    }
}

impl PyRandom {
    /// CPython's `init_by_array`.
    fn from_key(key: &[u32]) -> PyRandom {
        let mut mt = [0u32; 624];
        set_word(&mut mt, 0, 19_650_218);
        for i in 1..624 {
            let prev = word(&mt, i - 1);
            let v = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
            set_word(&mut mt, i, v);
        }
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            let prev = word(&mt, i - 1);
            let v = (word(&mt, i) ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key.get(j).copied().unwrap_or(0))
                .wrapping_add(j as u32);
            set_word(&mut mt, i, v);
            i += 1;
            j += 1;
            if i >= 624 {
                let last = word(&mt, 623);
                set_word(&mut mt, 0, last);
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            let prev = word(&mt, i - 1);
            let v = (word(&mt, i) ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            set_word(&mut mt, i, v);
            i += 1;
            if i >= 624 {
                let last = word(&mt, 623);
                set_word(&mut mt, 0, last);
                i = 1;
            }
        }
        set_word(&mut mt, 0, 0x8000_0000);
        PyRandom { mt, index: 624 }
    }

    /// `random.seed(text)`: the text's UTF-8 bytes followed by their SHA-512, read as one
    /// big-endian integer, whose 32-bit words (least significant first) key the generator.
    fn from_str_seed(seed: &str) -> PyRandom {
        use sha2::Digest;
        let mut bytes = seed.as_bytes().to_vec();
        bytes.extend_from_slice(&sha2::Sha512::digest(seed.as_bytes()));
        let mut le: Vec<u8> = bytes.into_iter().rev().collect();
        while le.last() == Some(&0) {
            le.pop();
        }
        let key: Vec<u32> = if le.is_empty() {
            vec![0]
        } else {
            le.chunks(4)
                .map(|c| {
                    let mut w = [0u8; 4];
                    for (dst, src) in w.iter_mut().zip(c) {
                        *dst = *src;
                    }
                    u32::from_le_bytes(w)
                })
                .collect()
        };
        PyRandom::from_key(&key)
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for k in 0..624 {
                let y = (word(&self.mt, k) & 0x8000_0000) | (word(&self.mt, k + 1) & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                let v = word(&self.mt, k + 397) ^ (y >> 1) ^ mag;
                set_word(&mut self.mt, k, v);
            }
            self.index = 0;
        }
        let mut y = word(&self.mt, self.index);
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `_randbelow(n)` for 0 < n < 2^32: `getrandbits(n.bit_length())` until below n.
    fn below(&mut self, n: u32) -> u32 {
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.next_u32() >> (32 - k);
            if r < n {
                return r;
            }
        }
    }
}

/// The password file's content: `password[ salt=SALT[ ident=IDENT]]`.
fn parse_content(content: &str) -> (String, Option<String>, Option<String>) {
    let Some(sep) = content.rfind(" salt=") else {
        return (content.to_string(), None, None);
    };
    let password = content.get(..sep).unwrap_or_default().to_string();
    let rest = content.get(sep + " salt=".len()..).unwrap_or_default();
    if rest.is_empty() {
        return (password, None, None);
    }
    match rest.rfind(" ident=") {
        Some(i) => (
            password,
            Some(rest.get(..i).unwrap_or_default().to_string()),
            Some(
                rest.get(i + " ident=".len()..)
                    .unwrap_or_default()
                    .to_string(),
            ),
        ),
        None => (password, Some(rest.to_string()), None),
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> LookupError {
    LookupError::Plugin {
        class: "OSError".into(),
        msg: format!("{}: {e}", path.display()),
    }
}

/// Creates `dir` and its missing parents with mode 0700, as Ansible's `makedirs_safe`.
fn make_dirs(dir: &Path) -> Result<(), LookupError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error(dir, &e))
}

/// The lock Ansible takes beside the file (`<sha1 of the path>.ansible_lockfile`), so
/// two runs do not both generate it. Returns the lock file when this run created it.
fn lock(path: &Path) -> Result<Option<PathBuf>, LookupError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = format!(
        "{}.ansible_lockfile",
        rustle_runner::digest::sha1_hex(path.as_os_str().as_encoded_bytes())
    );
    let lockfile = dir.join(name);
    make_dirs(dir)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lockfile)
    {
        Ok(_) => return Ok(Some(lockfile)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(&lockfile, &e)),
    }
    // Another run holds it: wait as Ansible does (1 + 2 + 4 seconds), then give up.
    let mut counter = 0u32;
    while lockfile.exists() {
        std::thread::sleep(std::time::Duration::from_secs(1 << counter));
        if counter >= 2 {
            return Err(LookupError::ansible(format!(
                "Password lookup cannot get the lock in 7 seconds, abort...This may caused by \
                 un-removed lockfileyou can manually remove it from controller machine at {} \
                 and try again",
                lockfile.display()
            )));
        }
        counter += 1;
    }
    Ok(None)
}

/// Writes the password file: mode 0600 in a 0700 directory, the content and a newline.
fn write_file(path: &Path, content: &str) -> Result<(), LookupError> {
    if let Some(dir) = path.parent() {
        make_dirs(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, &e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_error(path, &e))?;
    f.write_all(format!("{content}\n").as_bytes())
        .map_err(|e| io_error(path, &e))
}

/// One term: the password for its file.
fn one(world: &World, term: &Value, kwargs: &Params) -> Result<(String, bool), LookupError> {
    let Value::String(term) = term else {
        return Err(LookupError::Plugin {
            class: "AttributeError".into(),
            msg: "the password lookup's term is not a string: 'split' is not an attribute".into(),
        });
    };
    let (relpath, params) = parse_term(term, kwargs.clone())?;
    if let Some(scheme) = &params.encrypt {
        return Err(LookupError::Unavailable(format!(
            "the password lookup's encrypt={scheme} is not supported yet: rustle-deploy has \
             no crypt hashes (the password file was not read or written)"
        )));
    }
    let path = path_dwim(world, &relpath);
    let dev_null = path == Path::new("/dev/null");
    let chars = candidate_chars(&params.chars);
    let lockfile = if dev_null { None } else { lock(&path)? };
    let result = (|| {
        let content = if dev_null {
            None
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let trimmed = bytes.trim_ascii_end();
                    Some(
                        String::from_utf8(trimmed.to_vec()).map_err(|e| LookupError::Plugin {
                            class: "UnicodeDecodeError".into(),
                            msg: format!("{}: {e}", path.display()),
                        })?,
                    )
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&path, &e)),
            }
        };
        let (password, changed) = match content {
            Some(content) => {
                let (password, _salt, ident) = parse_content(&content);
                if let (Some(stored), Some(given)) = (&ident, &params.ident)
                    && stored != given
                {
                    return Err(LookupError::ansible(format!(
                        "The ident parameter provided ({given}) does not match the stored one ({stored})."
                    )));
                }
                (password, false)
            }
            None => (
                random_password(params.length, &chars, params.seed.as_deref())?,
                true,
            ),
        };
        if changed && !dev_null {
            write_file(&path, &password)?;
        }
        Ok((password, !dev_null))
    })();
    if let Some(lockfile) = lockfile {
        let _ = std::fs::remove_file(lockfile);
    }
    result
}

/// The lookup; also says whether the answer may serve other hosts (not for `/dev/null`,
/// which gives a fresh password every time).
pub(super) fn run(
    world: &World,
    terms: &[Value],
    options: &Vars,
) -> (Result<Vec<Value>, LookupError>, bool) {
    let mut params = Params::default();
    for (k, v) in options {
        if let Err(e) = params.set(k, v, false) {
            return (Err(e), true);
        }
    }
    let mut out = Vec::new();
    let mut reusable = true;
    for term in terms {
        match one(world, term, &params) {
            Ok((password, shared)) => {
                reusable &= shared;
                out.push(Value::String(password));
            }
            Err(e) => return (Err(e), reusable),
        }
    }
    (Ok(out), reusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `random.Random(seed).choice`, checked against ansible-core 2.18.19 with
    /// Python 3.11: `ansible localhost -m debug -a "msg={{ lookup('password',
    /// '/dev/null', seed='abc') }}"` and the others below.
    #[test]
    fn seeded_passwords_are_ansibles() {
        let check = |length: i64, specs: &[&str], seed: &str, want: &str| {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            let got = random_password(length, &candidate_chars(&specs), Some(seed)).unwrap();
            assert_eq!(got, want, "seed {seed}");
        };
        check(
            20,
            &["ascii_letters", "digits", ".,:-_"],
            "abc",
            "6TTuIhBjbajOIpXYV3o6",
        );
        check(
            12,
            &["digits", "ascii_lowercase"],
            "inventory",
            "oky55cvusvfy",
        );
        check(5, &[",", "digits"], "x", "94886");
        check(3, &["ascii_letters", "digits", ".,:-_"], "5", "TI_");
    }

    #[test]
    fn terms_and_file_content_parse_as_ansible_parses_them() {
        let (path, p) = parse_term("creds/db length=8 chars=digits,,", Params::default()).unwrap();
        assert_eq!(path, "creds/db");
        assert_eq!(p.length, 8);
        assert_eq!(p.chars, [",", "digits"]);
        let (path, _) = parse_term("a path/with space length=3", Params::default()).unwrap();
        assert_eq!(path, "a path/with space");
        let err = parse_term("x length=3 bogus=1", Params::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unrecognized parameter(s) given to password lookup: bogus"
        );
        assert_eq!(
            parse_content("pw salt=abc ident=2b"),
            ("pw".into(), Some("abc".into()), Some("2b".into()))
        );
        assert_eq!(parse_content("just text"), ("just text".into(), None, None));
    }
}
