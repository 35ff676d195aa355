//! `password_hash`, as ansible-core 2.18 computes it through passlib: `sha512`
//! (default) and `sha256` crypt with Ansible's default rounds (656000 and 535000),
//! `md5` crypt, and `blowfish` (bcrypt, ident `2b`, cost 12); a random salt in
//! passlib's alphabet and size when none is given. For a given salt the results are
//! passlib's, byte for byte.
//!
//! SHA-crypt and MD5-crypt are a few lines over the digests the runner already has;
//! bcrypt's expensive key schedule comes from RustCrypto's `blowfish`.

use super::math::os_random;
use super::{Opts, add_filters, invalid, py_str, py_type, split};
use crate::digest::md5;
use minijinja::value::{Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};

/// passlib's `hash64` alphabet (crypt's `./0-9A-Za-z`).
const HASH64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// bcrypt's alphabet.
const BCRYPT64: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// crypt's `b64_from_24bit`: `n` characters for three bytes, low bits first.
fn b64_24(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(char::from(
            HASH64.get((w & 0x3f) as usize).copied().unwrap_or(b'.'),
        ));
        w >>= 6;
    }
}

fn byte(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

/// `len` bytes of `block` repeated (crypt's P and S sequences).
fn repeat_to(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

/// SHA-crypt (Drepper's specification), for SHA-256 (`$5$`) or SHA-512 (`$6$`).
fn sha_crypt<D: sha2::Digest + Clone>(pw: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    let digest = |parts: &[&[u8]]| -> Vec<u8> {
        let mut h = D::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().to_vec()
    };
    let b = digest(&[pw, salt, pw]);
    let size = b.len();
    let mut a = D::new();
    a.update(pw);
    a.update(salt);
    a.update(repeat_to(&b, pw.len()));
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(&b);
        } else {
            a.update(pw);
        }
        n >>= 1;
    }
    let mut c = a.finalize().to_vec();
    let dp = digest(&[&pw.repeat(pw.len())]);
    let p = repeat_to(&dp, pw.len());
    let ds = digest(&[&salt.repeat(16 + usize::from(byte(&c, 0)))]);
    let s = repeat_to(&ds, salt.len());
    for i in 0..rounds {
        let mut h = D::new();
        if i & 1 == 1 {
            h.update(&p);
        } else {
            h.update(&c);
        }
        if i % 3 != 0 {
            h.update(&s);
        }
        if i % 7 != 0 {
            h.update(&p);
        }
        if i & 1 == 1 {
            h.update(&c);
        } else {
            h.update(&p);
        }
        c = h.finalize().to_vec();
    }
    debug_assert_eq!(c.len(), size);
    c
}

/// The crypt text of a SHA-crypt digest, in the specification's byte order.
fn sha_crypt_text(c: &[u8]) -> String {
    let mut out = String::new();
    if c.len() == 64 {
        let mut triple =
            |a: usize, b: usize, d: usize| b64_24(&mut out, byte(c, a), byte(c, b), byte(c, d), 4);
        for k in 0..21 {
            let (a, b, d) = (k, k + 21, k + 42);
            // The specification rotates which of the three goes first.
            match k % 3 {
                0 => triple(a, b, d),
                1 => triple(b, d, a),
                _ => triple(d, a, b),
            }
        }
        b64_24(&mut out, 0, 0, byte(c, 63), 2);
    } else {
        let mut triple =
            |a: usize, b: usize, d: usize| b64_24(&mut out, byte(c, a), byte(c, b), byte(c, d), 4);
        for k in 0..10 {
            let (a, b, d) = (k, k + 10, k + 20);
            match k % 3 {
                0 => triple(a, b, d),
                1 => triple(d, a, b),
                _ => triple(b, d, a),
            }
        }
        b64_24(&mut out, 0, byte(c, 31), byte(c, 30), 3);
    }
    out
}

/// MD5-crypt (`$1$`, Poul-Henning Kamp's).
fn md5_crypt(pw: &[u8], salt: &[u8]) -> String {
    let fin = md5(&[pw, salt, pw]);
    let mut ctx: Vec<u8> = [pw, b"$1$", salt].concat();
    ctx.extend(repeat_to(&fin, pw.len()));
    let mut i = pw.len();
    while i > 0 {
        ctx.push(if i & 1 == 1 { 0 } else { byte(pw, 0) });
        i >>= 1;
    }
    let mut fin = md5(&[&ctx]);
    for i in 0..1000 {
        let mut c: Vec<u8> = Vec::new();
        if i & 1 == 1 {
            c.extend_from_slice(pw);
        } else {
            c.extend_from_slice(&fin);
        }
        if i % 3 != 0 {
            c.extend_from_slice(salt);
        }
        if i % 7 != 0 {
            c.extend_from_slice(pw);
        }
        if i & 1 == 1 {
            c.extend_from_slice(&fin);
        } else {
            c.extend_from_slice(pw);
        }
        fin = md5(&[&c]);
    }
    let mut out = String::new();
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        b64_24(&mut out, byte(&fin, a), byte(&fin, b), byte(&fin, c), 4);
    }
    b64_24(&mut out, 0, 0, byte(&fin, 11), 2);
    out
}

/// bcrypt's base64 of `data` (no padding).
fn bcrypt64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for k in 0..=chunk.len() {
            let idx = ((n >> (18 - 6 * k)) & 63) as usize;
            out.push(char::from(BCRYPT64.get(idx).copied().unwrap_or(b'.')));
        }
    }
    out
}

fn bcrypt64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let d = BCRYPT64.iter().position(|&x| x == c)?;
        bits = (bits << 6) | d as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

/// bcrypt's EksBlowfish: the 23-byte digest for a password, 16-byte salt and cost.
fn bcrypt_raw(pw: &[u8], salt: &[u8], cost: u32) -> Vec<u8> {
    // The key is the password with its NUL terminator, at most 72 bytes.
    let mut key: Vec<u8> = pw.to_vec();
    key.push(0);
    key.truncate(72);
    let mut state = blowfish::Blowfish::bc_init_state();
    state.salted_expand_key(salt, &key);
    for _ in 0..(1u64 << cost) {
        state.bc_expand_key(&key);
        state.bc_expand_key(salt);
    }
    let magic = b"OrpheanBeholderScryDoubt";
    let mut words: Vec<u32> = magic
        .chunks(4)
        .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        .collect();
    for pair in words.chunks_mut(2) {
        let mut lr = [
            pair.first().copied().unwrap_or(0),
            pair.get(1).copied().unwrap_or(0),
        ];
        for _ in 0..64 {
            lr = state.bc_encrypt(lr);
        }
        for (slot, v) in pair.iter_mut().zip(lr) {
            *slot = v;
        }
    }
    let mut out: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    out.truncate(23);
    out
}

/// A random salt of `n` characters from `alphabet`.
fn random_salt(n: usize, alphabet: &[u8; 64]) -> Result<String, Error> {
    Ok(os_random(n)?
        .iter()
        .map(|b| char::from(alphabet.get(usize::from(b & 63)).copied().unwrap_or(b'.')))
        .collect())
}

/// The algorithms Ansible documents, by passlib's name.
const ALGORITHMS: [(&str, &str); 4] = [
    ("md5", "md5_crypt"),
    ("blowfish", "bcrypt"),
    ("sha256", "sha256_crypt"),
    ("sha512", "sha512_crypt"),
];

/// The hashes passlib 1.7 has (`dir(passlib.hash)`): Ansible, with passlib installed as
/// the conformance venv has it, says a name outside these is not supported by passlib,
/// and one of these it cannot use is not in its list.
const PASSLIB_HASHES: &[&str] = &[
    "apr_md5_crypt",
    "argon2",
    "atlassian_pbkdf2_sha1",
    "bcrypt",
    "bcrypt_sha256",
    "bigcrypt",
    "bsd_nthash",
    "bsdi_crypt",
    "cisco_asa",
    "cisco_pix",
    "cisco_type7",
    "crypt16",
    "cta_pbkdf2_sha1",
    "des_crypt",
    "django_argon2",
    "django_bcrypt",
    "django_bcrypt_sha256",
    "django_des_crypt",
    "django_disabled",
    "django_pbkdf2_sha1",
    "django_pbkdf2_sha256",
    "django_salted_md5",
    "django_salted_sha1",
    "dlitz_pbkdf2_sha1",
    "fshp",
    "grub_pbkdf2_sha512",
    "hex_md4",
    "hex_md5",
    "hex_sha1",
    "hex_sha256",
    "hex_sha512",
    "htdigest",
    "ldap_bcrypt",
    "ldap_bsdi_crypt",
    "ldap_des_crypt",
    "ldap_hex_md5",
    "ldap_hex_sha1",
    "ldap_md5",
    "ldap_md5_crypt",
    "ldap_pbkdf2_sha1",
    "ldap_pbkdf2_sha256",
    "ldap_pbkdf2_sha512",
    "ldap_plaintext",
    "ldap_salted_md5",
    "ldap_salted_sha1",
    "ldap_salted_sha256",
    "ldap_salted_sha512",
    "ldap_sha1",
    "ldap_sha1_crypt",
    "ldap_sha256_crypt",
    "ldap_sha512_crypt",
    "lmhash",
    "md5_crypt",
    "msdcc",
    "msdcc2",
    "mssql2000",
    "mssql2005",
    "mysql323",
    "mysql41",
    "nthash",
    "oracle10",
    "oracle11",
    "pbkdf2_sha1",
    "pbkdf2_sha256",
    "pbkdf2_sha512",
    "phpass",
    "plaintext",
    "postgres_md5",
    "roundup_plaintext",
    "scram",
    "scrypt",
    "sha1_crypt",
    "sha256_crypt",
    "sha512_crypt",
    "sun_md5_crypt",
    "unix_disabled",
    "unix_fallback",
];

fn password_hash(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let hashtype = o
        .arg(0, "hashtype")?
        .filter(|h| !h.is_none())
        .map(|h| py_str(&h))
        .unwrap_or_else(|| "sha512".into());
    let salt = o
        .arg(1, "salt")?
        .filter(|s| s.is_true())
        .map(|s| py_str(&s));
    let salt_size = o.arg(2, "salt_size")?.filter(|s| s.is_true());
    let rounds = o.arg(3, "rounds")?.filter(|r| r.is_true());
    let ident = o
        .arg(4, "ident")?
        .filter(|i| i.is_true())
        .map(|i| py_str(&i));
    o.done("password_hash", 5)?;
    defined(&v)?;
    let algo = ALGORITHMS
        .iter()
        .find(|(short, long)| *short == hashtype || *long == hashtype)
        .map(|(_, long)| *long)
        .ok_or_else(|| {
            if PASSLIB_HASHES.contains(&hashtype.as_str()) {
                invalid(format!(
                    "{hashtype} is not in the list of supported passlib algorithms: md5, blowfish, sha256, sha512"
                ))
            } else {
                invalid(format!("passlib does not support '{hashtype}' algorithm"))
            }
        })?;
    let salt_size = match salt_size {
        None => None,
        Some(s) if s.kind() == ValueKind::Number => s.as_usize(),
        Some(s) => {
            return Err(invalid(format!(
                "'<' not supported between instances of '{}' and 'int'",
                py_type(&s)
            )));
        }
    };
    let rounds =
        match rounds {
            None => None,
            Some(r) => Some(r.as_i64().filter(|r| *r > 0).ok_or_else(|| {
                invalid(format!("rounds must be an integer, got {}", py_str(&r)))
            })?),
        };
    let secret = py_str(&v);
    let pw = secret.as_bytes();
    let could_not = |why: String| invalid(format!("Could not hash the secret.. {why}"));
    match algo {
        "sha512_crypt" | "sha256_crypt" => {
            let (id, default_rounds) = if algo == "sha512_crypt" {
                ("6", 656_000)
            } else {
                ("5", 535_000)
            };
            let rounds = rounds.unwrap_or(default_rounds);
            if rounds < 1000 {
                return Err(could_not(format!(
                    "{algo}: min_desired_rounds ({rounds}) is too low, must be at least 1000"
                )));
            }
            if rounds > 999_999_999 {
                return Err(could_not(format!(
                    "{algo}: max_desired_rounds ({rounds}) is too high, must be at most 999999999"
                )));
            }
            let salt = match salt {
                Some(s) => s,
                None => random_salt(salt_size.unwrap_or(16).clamp(0, 16), HASH64)?,
            };
            check_salt(&salt, algo, 16)?;
            let digest = if algo == "sha512_crypt" {
                sha_crypt::<sha2::Sha512>(pw, salt.as_bytes(), rounds as u32)
            } else {
                sha_crypt::<sha2::Sha256>(pw, salt.as_bytes(), rounds as u32)
            };
            let rounds_text = if rounds == 5000 {
                String::new()
            } else {
                format!("rounds={rounds}$")
            };
            Ok(format!(
                "${id}${rounds_text}{salt}${}",
                sha_crypt_text(&digest)
            ))
        }
        "md5_crypt" => {
            let salt = match salt {
                Some(s) => s,
                None => random_salt(salt_size.unwrap_or(8).clamp(0, 8), HASH64)?,
            };
            check_salt(&salt, algo, 8)?;
            Ok(format!("$1${salt}${}", md5_crypt(pw, salt.as_bytes())))
        }
        _ => {
            let ident = ident.unwrap_or_else(|| "2b".into());
            if !matches!(ident.as_str(), "2" | "2a" | "2b" | "2x" | "2y") {
                return Err(could_not(format!("bcrypt: invalid ident: '{ident}'")));
            }
            let cost = rounds.unwrap_or(12);
            if !(4..=31).contains(&cost) {
                return Err(could_not(format!(
                    "bcrypt: rounds must be between 4 and 31, got {cost}"
                )));
            }
            let salt = match salt {
                Some(s) => s,
                None => random_salt(22, BCRYPT64)?,
            };
            if salt.len() % 4 == 1 {
                return Err(invalid("source length must != 1 mod 4"));
            }
            // passlib's bcrypt64.repair_unused: the last character's unused bits cleared.
            let raw = bcrypt64_decode(&salt)
                .ok_or_else(|| could_not("invalid characters in bcrypt salt".into()))?;
            if salt.len() != 22 {
                return Err(could_not(format!(
                    "salt too {} (bcrypt requires exactly 22 chars)",
                    if salt.len() < 22 { "small" } else { "large" }
                )));
            }
            let salt_bytes: Vec<u8> = raw.into_iter().take(16).collect();
            let salt_text: String = bcrypt64_encode(&salt_bytes).chars().take(22).collect();
            let digest = bcrypt_raw(pw, &salt_bytes, cost as u32);
            let hash: String = bcrypt64_encode(&digest).chars().take(31).collect();
            Ok(format!("${ident}${cost:02}${salt_text}{hash}"))
        }
    }
}

/// passlib's salt checks for the crypt hashes.
fn check_salt(salt: &str, algo: &str, max: usize) -> Result<(), Error> {
    if salt.len() > max {
        return Err(invalid(format!(
            "Could not hash the secret.. salt too large ({algo} requires <= {max} chars)"
        )));
    }
    if !salt.bytes().all(|b| HASH64.contains(&b)) {
        return Err(invalid(format!(
            "Could not hash the secret.. invalid characters in {algo} salt"
        )));
    }
    Ok(())
}

use super::defined;

/// Registers `password_hash`.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_filters(
        env,
        &[("password_hash", |a| {
            split(a)
                .and_then(|(v, r)| password_hash(v, r))
                .map(JValue::from)
        })],
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn password_hash_and_vault_match_passlib_and_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (
                    r#""pw"|password_hash("sha512", "abc", rounds=5000)"#,
                    r#""$6$abc$MtSdWSZbhct2oe.SOqOUM2M/GA/uj5.vyVtJgRHgKi9uqXuWuJqOYE7H/YlsYGVg/YYzDV0xt3fEIwYt580.5.""#,
                ),
                (
                    r#""pw"|password_hash("sha512", "abc")"#,
                    r#""$6$rounds=656000$abc$oJ6Ey3u3wVR6Q0uOYFyGkLVV0cqCW77IHxP2bL/9FYdgL1DMFJHjFifLRDOWCmEflCPivXM0nb/cPz8bjR7E2/""#,
                ),
                (
                    r#""what in the WORLD is up?"|password_hash("sha512", "abcdefgh12345678", rounds=1000)"#,
                    r#""$6$rounds=1000$abcdefgh12345678$G2uvst7j15f4z8EN54Wh9ybLiKOvbheORxr.qyP2wsTWKS/bsFvZJ/CyLCnNK75g0u9/.y2VA7rn2XrnBdfgA1""#,
                ),
                (
                    r#""pw"|password_hash("sha256", "abc")"#,
                    r#""$5$rounds=535000$abc$VkvFDYvCXDbn.mLQPbERuTqlMbmmguUm.VCJ.rKwVT9""#,
                ),
                (
                    r#""pw"|password_hash("sha256", "abc", rounds=5000)"#,
                    r#""$5$abc$/LKlXd6vuvdFX3oWbf2vGk3DgflzzsvOtMZsiOxqqY5""#,
                ),
                (
                    r#""a much longer password than usual, over 32 bytes!"|password_hash("sha256", "saltsaltsaltsalt", rounds=1000)"#,
                    r#""$5$rounds=1000$saltsaltsaltsalt$yBZOfqFTiyGt3u621vhybzJnNqSQ.LlB0ltdOgzuPS2""#,
                ),
                (
                    r#""pw"|password_hash("md5", "abc")"#,
                    r#""$1$abc$Kb85XxsXB.VXinPhbS4431""#,
                ),
                (
                    r#""a much longer password than usual, over 32 bytes!"|password_hash("md5", "saltsalt")"#,
                    r#""$1$saltsalt$PKRXH7saz9Wuk0sJ//cyf/""#,
                ),
                (
                    r#""pw"|password_hash("blowfish", "1234567890123456789012", rounds=5)"#,
                    r#""$2b$05$123456789012345678901uztUQIoyLDxaIUgJ.x54aS6eyLIVBeKi""#,
                ),
                (
                    r#""pw"|password_hash("bcrypt", "1234567890123456789012", ident="2y", rounds=5)"#,
                    r#""$2y$05$123456789012345678901uztUQIoyLDxaIUgJ.x54aS6eyLIVBeKi""#,
                ),
                (
                    r#""a much longer password than usual, over 32 bytes! and even more than 72 bytes, which bcrypt cuts"|password_hash("blowfish", "abcdefghijklmnopqrstuv", rounds=4)"#,
                    r#""$2b$04$abcdefghijklmnopqrstuuckvEEYtPy1hHeRfWtHfg/1CvLXRiw3K""#,
                ),
                (
                    r#""pw"|password_hash("sha512", rounds=1000)|length"#,
                    r#"118"#,
                ),
                (
                    r#""pw"|password_hash("sha512", salt_size=8)|length"#,
                    r#"112"#,
                ),
                (
                    r#""pw"|password_hash("md5_crypt", "abc")"#,
                    r#""$1$abc$Kb85XxsXB.VXinPhbS4431""#,
                ),
                (
                    r#""pw"|password_hash("sha512_crypt", "abc", rounds=1000)"#,
                    r#""$6$rounds=1000$abc$yxe0KSjmoHd8rpohJgwvF5lnIQ/9t.klcz24a1cca3nWm.PLUmhXgcGgKWCoRFHRHYxXj4SVEtjCnCAwaFY0V0""#,
                ),
                (
                    r#""pw"|password_hash("sha512", 12345, rounds=1000)"#,
                    r#""$6$rounds=1000$12345$Nzt2qWmoLaMcAHCsrxY2P4/XdhXn1VK2c8ThTmWsGtLP2vp1P5VaOk5..jYdKGIjNm.w2i6Pecy3t1uiB1LFS1""#,
                ),
                (r#""pw"|password_hash|length"#, r#"120"#),
                (r#""pw"|password_hash("md5")|length"#, r#"34"#),
                (
                    r#""pw"|password_hash("blowfish", rounds=4)|length"#,
                    r#"60"#,
                ),
                (
                    r#""pw"|password_hash("sha512")|regex_search('^[$]6[$]rounds=656000[$][./0-9A-Za-z]{16}[$]') is string"#,
                    r#"true"#,
                ),
                (
                    r#"'secret'|vault('test', salt=7)"#,
                    r#""$ANSIBLE_VAULT;1.2;AES256;filter_default\n33370a34333734353636633035656232613935353432656132646533346233326431346232616261\n6133383034376566366261316365633931356133633337396363370a376664386236313834326561\n6338373864623763613165366636633031303739\n""#,
                ),
                (
                    r#"'secret'|vault('test', salt=7, vault_id='x1')"#,
                    r#""$ANSIBLE_VAULT;1.2;AES256;x1\n33370a34333734353636633035656232613935353432656132646533346233326431346232616261\n6133383034376566366261316365633931356133633337396363370a376664386236313834326561\n6338373864623763613165366636633031303739\n""#,
                ),
                (
                    r#"'secret'|vault('test', salt='abc', vault_id='default')"#,
                    r#""$ANSIBLE_VAULT;1.1;AES256\n3631363236330a346562373861623635616561333837353032616538623230393939323931343361\n613161333032623934306465316663623033653133353032613633373237370a6464396463316266\n343431326536386566656563616264623862636131393333\n""#,
                ),
                (
                    r#"'secret'|vault('test', salt=7)|unvault('test')"#,
                    r#""secret""#,
                ),
                (
                    r#"'foo: bar'|vault('test1@secret', vault_id='test1')|unvault('test1@secret', vault_id='test1')"#,
                    r#""foo: bar""#,
                ),
                (r#"'notvault'|unvault('x')"#, r#""notvault""#),
                // ansible-core 2.18: no vault id, no label (a 1.1 header).
                (
                    r#"('secret'|vault('test', salt=7, vault_id=None))[:26]"#,
                    r#""$ANSIBLE_VAULT;1.1;AES256\n""#,
                ),
            ],
        );
        errors(
            &vars,
            &[
                (
                    r#""pw"|password_hash("sha512", "abcdefghijklmnopqrst")"#,
                    "Could not hash the secret.. salt too large (sha512_crypt requires <= 16 chars)",
                ),
                (
                    r#""pw"|password_hash("sha512", "ab$c")"#,
                    "Could not hash the secret.. invalid characters in sha512_crypt salt",
                ),
                (
                    r#""pw"|password_hash("md5", "abcdefghijk")"#,
                    "Could not hash the secret.. salt too large (md5_crypt requires <= 8 chars)",
                ),
                (
                    r#""pw"|password_hash("blowfish", "short")"#,
                    "source length must != 1 mod 4",
                ),
                (
                    r#""pw"|password_hash("sha512", "abc", rounds=999)"#,
                    "Could not hash the secret.. sha512_crypt: min_desired_rounds (999) is too low, must be at least 1000",
                ),
                (
                    r#""pw"|password_hash(hashtype="supersecurehashtype")"#,
                    "passlib does not support 'supersecurehashtype' algorithm",
                ),
                (
                    r#""pw"|password_hash("msdcc")"#,
                    "msdcc is not in the list of supported passlib algorithms: md5, blowfish, sha256, sha512",
                ),
                (
                    r#""hey"|password_hash(hashtype="supersecurehashtype")"#,
                    "supersecurehashtype",
                ),
                (
                    r#""hey"|password_hash(salt_size=[999])"#,
                    "'<' not supported between instances of 'list' and 'int'",
                ),
                (
                    r#"'secret'|vault('test', salt=7)|unvault('wrong')"#,
                    "Unable to decrypt: Decryption failed (no vault secrets were found that could decrypt). Decryption failed (no vault secrets were found that could decrypt)",
                ),
                // Messages ansible-playbook 2.18.19 gave for the same expressions.
                (
                    r#"'x'|vault('p', salt=0)"#,
                    "Unable to encrypt: Empty or invalid salt passed to encrypt(). Empty or invalid salt passed to encrypt()",
                ),
                (
                    r#"('x'|vault('p', salt='s'))|vault('p')"#,
                    "Unable to encrypt: input is already encrypted. input is already encrypted",
                ),
                (
                    "'$ANSIBLE_VAULT;1.1;AES256\\nzz\\n'|unvault('p')",
                    "Unable to decrypt: Vault format unhexlify error: Non-hexadecimal digit found. Vault format unhexlify error: Non-hexadecimal digit found",
                ),
                (
                    r#"'secret'|vault(1)"#,
                    "Secret passed is required to be a string, instead we got: <class 'int'>",
                ),
                (
                    r#"1|vault('x')"#,
                    "Can only vault strings, instead we got: <class 'int'>",
                ),
            ],
        );
    }
}
