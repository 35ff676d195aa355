//! rpm_key: an OpenPGP public key in (or out of) the host's RPM database, as ansible-core's
//! module manages it: a key given as a URL (fetched with the host's curl or wget, as
//! get_url fetches), a file, or (to remove) a key ID or fingerprint; the key IDs and
//! fingerprints of the key and its subkeys computed from its packets as the module
//! computes them (v4: SHA-1, v6: SHA-256), compared with every key `rpm -q gpg-pubkey`
//! lists; `rpm --import` to add, `rpm --erase` (RPM 6: `rpmkeys --delete`) to remove.
//! Argument vectors only.

use super::fsutil::{self, Step, fail};
use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, args, get_url};
use crate::plan::Vars;
use sha1::Digest as _;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &["state", "key", "fingerprint", "validate_certs"];

const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const END: &str = "-----END PGP PUBLIC KEY BLOCK-----";

/// A key or subkey: its 8-byte key ID and its fingerprint, in upper-case hex.
#[derive(Debug, Clone, PartialEq)]
struct KeyId {
    keyid: String,
    fingerprint: String,
}

/// `rpm_key`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(rpm_key(a, ctx))
}

fn rpm_key(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let state =
        args::opt_choice(a, "state", &["absent", "present"])?.unwrap_or_else(|| "present".into());
    let key = args::opt_str(a, "key")?
        .ok_or_else(|| ModuleError::BadArgs("missing required arguments: key".into()))?;
    let wanted: Vec<String> = args::str_list(a, "fingerprint")?
        .iter()
        .map(|f| f.replace(' ', "").to_uppercase())
        .collect();
    args::bool_or(a, "validate_certs", true)?;
    let rpm = tools::require_bin("rpm").map_err(fsutil::failed)?;
    let rpmkeys = tools::require_bin("rpmkeys").map_err(fsutil::failed)?;

    // The key file: fetched, or the host's; or only a key ID.
    let staging;
    let (keyfile, keyid): (Option<PathBuf>, String) = if key.contains("://") {
        let data = get_url::download(&key, ctx).map_err(|e| {
            fsutil::failed(Outcome::fail(format!(
                "failed to fetch key at {key} , error was: {e}"
            )))
        })?;
        let text = String::from_utf8_lossy(&data);
        if !is_pubkey(&text) {
            return fail(format!("Not a public key: {key}"));
        }
        staging = PrivateDir::for_task("rpm_key", ctx.run_as)
            .map_err(|e| fsutil::io_fail("create a directory for", Path::new(&key), &e))?;
        let path = staging
            .write("key.asc", &data, 0o600)
            .map_err(|e| fsutil::io_fail("write", Path::new(&key), &e))?;
        let id = first_keyid(&text)?;
        (Some(path), id)
    } else if is_keyid(&key) {
        (None, key.clone())
    } else if Path::new(&key).is_file() {
        let text = std::fs::read_to_string(&key)
            .map_err(|e| fsutil::io_fail("read", Path::new(&key), &e))?;
        (Some(PathBuf::from(&key)), first_keyid(&text)?)
    } else {
        return fail(format!("Not a valid key {key}"));
    };
    let keyid = normalize(&keyid);

    let installed = installed_keys(&rpm, ctx)?;
    let imported = |id: &str| {
        installed
            .iter()
            .any(|k| k.keyid.ends_with(id) || k.fingerprint == id)
    };
    if state == "present" {
        if imported(&keyid) {
            return Ok(Outcome::changed(false));
        }
        let Some(file) = keyfile else {
            return fail("When importing a key, a valid file must be given");
        };
        if !wanted.is_empty() {
            let text =
                std::fs::read_to_string(&file).map_err(|e| fsutil::io_fail("read", &file, &e))?;
            let have: Vec<String> = identify(&text)
                .map_err(|e| fsutil::failed(Outcome::fail(e)))?
                .into_iter()
                .map(|k| k.fingerprint)
                .collect();
            if have.is_empty() {
                return fail("Failed to get fingerprint");
            }
            if !wanted.iter().all(|w| have.contains(w)) {
                return fail(format!(
                    "The specified fingerprint, '{}', does not match any key fingerprints in '{}'",
                    py_set(&wanted, false),
                    py_set(&have, true)
                ));
            }
        }
        if !ctx.check_mode {
            checked(ctx, &rpm, &["--import".into(), file.display().to_string()])?;
        }
        return Ok(Outcome::changed(true));
    }
    if !imported(&keyid) {
        return Ok(Outcome::changed(false));
    }
    if !ctx.check_mode {
        if rpm_major(&rpm, ctx) >= 6 {
            let fingerprints: Vec<&str> = installed
                .iter()
                .filter(|k| k.keyid.ends_with(&keyid) || k.fingerprint == keyid)
                .map(|k| k.fingerprint.as_str())
                .collect();
            match fingerprints.as_slice() {
                [one] => {
                    checked(ctx, &rpmkeys, &["--delete".into(), (*one).to_string()])?;
                }
                _ => {
                    return fail(format!(
                        "Supplied key ID {keyid} matches more than one fingerprint. Try using the fingerprint instead."
                    ));
                }
            }
        } else {
            let id = installed
                .iter()
                .find(|k| k.fingerprint == keyid)
                .map_or(keyid.as_str(), |k| k.keyid.as_str());
            let short = id.get(id.len().saturating_sub(8)..).unwrap_or(id);
            checked(
                ctx,
                &rpm,
                &[
                    "--erase".into(),
                    "--allmatches".into(),
                    format!("gpg-pubkey-{}", short.to_lowercase()),
                ],
            )?;
        }
    }
    Ok(Outcome::changed(true))
}

/// Runs rpm; a failure fails the task with its stderr, as the module's
/// `execute_command`.
fn checked(ctx: &Ctx<'_>, program: &Path, argv: &[String]) -> Step<tools::Output> {
    let out = tools::run_command(ctx.command(program), argv, None)
        .map_err(|e| fsutil::io_fail("run", program, &e))?;
    if out.rc != 0 {
        return fail(out.stderr);
    }
    Ok(out)
}

/// The major version `rpm --version` reports (`RPM version 4.18.0`).
fn rpm_major(rpm: &Path, ctx: &Ctx<'_>) -> u32 {
    tools::run_command(ctx.command(rpm), &["--version".into()], None)
        .ok()
        .and_then(|o| {
            let version = o.stdout.split_whitespace().last()?.to_string();
            version.split('.').next()?.parse().ok()
        })
        .unwrap_or(4)
}

/// Every key (and subkey) in the RPM database.
fn installed_keys(rpm: &Path, ctx: &Ctx<'_>) -> Step<Vec<KeyId>> {
    let q = |extra: &[&str]| {
        let mut argv = vec!["-q".to_string(), "gpg-pubkey".to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        tools::run_command(ctx.command(rpm), &argv, None)
            .map_err(|e| fsutil::io_fail("run", rpm, &e))
    };
    if q(&[])?.rc != 0 {
        return Ok(Vec::new());
    }
    let out = q(&["--qf", "%{description}"])?;
    if out.rc != 0 {
        return fail(out.stderr);
    }
    let mut keys = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in out.stdout.lines() {
        match line.trim() {
            BEGIN => block = Some(vec![line]),
            END => {
                if let Some(mut b) = block.take() {
                    b.push(line);
                    keys.extend(
                        identify(&b.join("\n")).map_err(|e| fsutil::failed(Outcome::fail(e)))?,
                    );
                }
            }
            _ => {
                if let Some(b) = &mut block {
                    b.push(line);
                }
            }
        }
    }
    Ok(keys)
}

/// The module's test for text that holds an armored public key.
fn is_pubkey(text: &str) -> bool {
    text.find(BEGIN)
        .is_some_and(|at| text.get(at..).is_some_and(|rest| rest.contains(END)))
}

/// The module's test for a key ID: 8 hex digits (after an optional `0x`) at the start,
/// spaces ignored.
fn is_keyid(key: &str) -> bool {
    let k: String = key.chars().filter(|c| *c != ' ').collect();
    let k = k
        .strip_prefix("0x")
        .or_else(|| k.strip_prefix("0X"))
        .unwrap_or(&k);
    k.len() >= 8 && k.chars().take(8).all(|c| c.is_ascii_hexdigit())
}

/// Upper case, no `0x`, no surrounding blanks.
fn normalize(keyid: &str) -> String {
    let k = keyid.trim().to_uppercase();
    k.strip_prefix("0X").map(str::to_string).unwrap_or(k)
}

/// The primary key's ID.
fn first_keyid(armor: &str) -> Step<String> {
    match identify(armor)
        .map_err(|e| fsutil::failed(Outcome::fail(e)))?
        .first()
    {
        Some(k) => Ok(k.keyid.clone()),
        None => fail("Failed to get keyid"),
    }
}

/// Python's repr of a set of strings (`frozenset({...})` when `frozen`).
fn py_set(items: &[String], frozen: bool) -> String {
    let inner = items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if frozen {
        format!("frozenset({{{inner}}})")
    } else {
        format!("{{{inner}}}")
    }
}

/// The key IDs and fingerprints of an armored key's primary key and subkeys, in
/// packet order.
fn identify(armor: &str) -> Result<Vec<KeyId>, String> {
    let packets = dearmor(armor).ok_or("Unable to parse PGP key armor")?;
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((tag, body)) = packet(&packets, &mut at) {
        if tag != 6 && tag != 14 {
            continue;
        }
        let fingerprint = match body.first() {
            Some(4) => {
                let len = u16::try_from(body.len()).map_err(|_| "key packet too long")?;
                let mut h = sha1::Sha1::new();
                h.update([0x99]);
                h.update(len.to_be_bytes());
                h.update(body);
                crate::hex::encode(&h.finalize()).to_uppercase()
            }
            Some(6) => {
                let len = u32::try_from(body.len()).map_err(|_| "key packet too long")?;
                let mut h = sha2::Sha256::new();
                h.update([0x9b]);
                h.update(len.to_be_bytes());
                h.update(body);
                crate::hex::encode(&h.finalize()).to_uppercase()
            }
            Some(v) => return Err(format!("Unhandled key version {v:#04x}")),
            None => continue,
        };
        let keyid = if body.first() == Some(&4) {
            fingerprint.get(fingerprint.len() - 16..)
        } else {
            fingerprint.get(..16)
        }
        .unwrap_or_default()
        .to_string();
        out.push(KeyId { keyid, fingerprint });
    }
    Ok(out)
}

/// The binary packets of an ASCII-armored block (headers and the `=` checksum line
/// skipped).
fn dearmor(armor: &str) -> Option<Vec<u8>> {
    let start = armor.find(BEGIN)? + BEGIN.len();
    let rest = armor.get(start..)?;
    let body = rest.get(..rest.find(END)?)?;
    let mut lines = body.lines().map(str::trim).skip_while(|l| l.is_empty());
    // Armor headers (`Version: ...`) end at the first blank line.
    let mut data = String::new();
    let mut in_headers = true;
    for line in lines.by_ref() {
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            if line.contains(": ") {
                continue;
            }
            in_headers = false;
        }
        if line.starts_with('=') {
            break;
        }
        data.push_str(line);
    }
    crate::hex::base64_decode(&data).ok()
}

/// The next packet at `*at`: its tag and body; `None` at the end or at a header
/// the module cannot read either (partial lengths).
fn packet<'p>(data: &'p [u8], at: &mut usize) -> Option<(u8, &'p [u8])> {
    let first = *data.get(*at)?;
    let byte = |i: usize| data.get(*at + i).copied().map(usize::from);
    let (tag, len, header) = if first & 0x40 != 0 {
        let tag = first & 0x3f;
        let l0 = byte(1)?;
        match l0 {
            0..=191 => (tag, l0, 2),
            192..=223 => (tag, ((l0 - 192) << 8) + byte(2)? + 192, 3),
            255 => (
                tag,
                (byte(2)? << 24) | (byte(3)? << 16) | (byte(4)? << 8) | byte(5)?,
                6,
            ),
            _ => return None,
        }
    } else {
        let tag = (first >> 2) & 0x0f;
        match first & 0x03 {
            0 => (tag, byte(1)?, 2),
            1 => (tag, (byte(1)? << 8) | byte(2)?, 3),
            2 => (
                tag,
                (byte(1)? << 24) | (byte(2)? << 16) | (byte(3)? << 8) | byte(4)?,
                5,
            ),
            _ => return None,
        }
    };
    let body = data.get(*at + header..*at + header + len)?;
    *at += header + len;
    Some((tag, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run_key(args: Value, check: bool) -> Outcome {
        crate::modules::run_args_for_test("rpm_key", args, check).unwrap()
    }

    /// A fresh key made with gpg: its armored export and gpg's own fingerprint of it.
    fn gpg_key(dir: &Path) -> Option<(PathBuf, String)> {
        let gpg = tools::find_bin("gpg")?;
        let home = dir.join("gnupg");
        std::fs::create_dir(&home).ok()?;
        let gpg_run = |argv: &[&str]| {
            std::process::Command::new(&gpg)
                .env("GNUPGHOME", &home)
                .args(["--batch", "--no-tty"])
                .args(argv)
                .output()
                .ok()
                .filter(|o| o.status.success())
        };
        gpg_run(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            "Rustle Test <rt@example.com>",
            "rsa2048",
            "sign",
            "1d",
        ])?;
        let armor = gpg_run(&["--armor", "--export", "rt@example.com"])?.stdout;
        let colons = gpg_run(&["--with-colons", "--fingerprint", "rt@example.com"])?.stdout;
        let fpr = String::from_utf8_lossy(&colons).lines().find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_string())
        })?;
        let file = dir.join("key.asc");
        std::fs::write(&file, armor).ok()?;
        Some((file, fpr))
    }

    #[test]
    fn key_ids_and_fingerprints_are_gpgs() {
        let t = tempfile::tempdir().unwrap();
        let Some((file, fpr)) = gpg_key(t.path()) else {
            eprintln!("skipped: no gpg");
            return;
        };
        let keys = identify(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(
            keys.first().map(|k| k.fingerprint.as_str()),
            Some(fpr.as_str())
        );
        assert_eq!(keys[0].keyid, fpr[fpr.len() - 16..]);
        assert!(identify("no armor here").is_err());
        assert!(is_keyid("0xDEADBEEF") && is_keyid("dead beef 12") && !is_keyid("/etc/pki/key"));
        assert_eq!(normalize(" 0xdeadbeef "), "DEADBEEF");
    }

    // The verdicts and messages below are what ansible-core 2.18.19's module gives for
    // the same keys on this kind of host (Debian's rpm 4.18).
    #[test]
    fn a_key_is_imported_once_checked_against_its_fingerprint_and_removed_by_id() {
        if tools::find_bin("rpm").is_none() || tools::find_bin("rpmkeys").is_none() {
            eprintln!("skipped: no rpm");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let Some((file, fpr)) = gpg_key(t.path()) else {
            eprintln!("skipped: no gpg");
            return;
        };
        let key = file.display().to_string();
        let short = fpr[fpr.len() - 8..].to_lowercase();
        let listed = || {
            std::process::Command::new("rpm")
                .args(["-q", &format!("gpg-pubkey-{short}")])
                .output()
                .unwrap()
                .status
                .success()
        };
        let wrong = run_key(json!({"key": key, "fingerprint": "0000 1111"}), false);
        assert!(wrong.failed, "{wrong:?}");
        assert!(wrong.msg.unwrap().starts_with("The specified fingerprint, '{'00001111'}', does not match any key fingerprints in 'frozenset({"));
        assert!(run_key(json!({"key": key}), true).changed);
        assert!(!listed(), "check mode imports nothing");
        let o = run_key(json!({"key": key, "fingerprint": fpr}), false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(listed());
        assert!(!run_key(json!({"key": key}), false).changed);
        // By key ID (short or long, any case, with 0x) or fingerprint.
        assert!(!run_key(json!({"key": format!("0x{short}")}), false).changed);

        let gone = json!({"key": format!("0x{}", &fpr[fpr.len() - 16..]), "state": "absent"});
        assert!(run_key(gone.clone(), true).changed);
        assert!(listed());
        assert!(run_key(gone.clone(), false).changed);
        assert!(!listed());
        assert!(!run_key(gone, false).changed);

        let o = run_key(json!({"key": "/nonexistent/rustle.asc"}), false);
        assert_eq!(
            o.msg.as_deref(),
            Some("Not a valid key /nonexistent/rustle.asc")
        );
        let o = run_key(json!({"key": "DEADBEEF"}), false);
        assert_eq!(
            o.msg.as_deref(),
            Some("When importing a key, a valid file must be given")
        );
    }
}
