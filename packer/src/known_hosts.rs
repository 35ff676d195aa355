//! known_hosts as OpenSSH reads it, and what a host's entries say about the key it offers.
//!
//! russh's own check compares a key only with recorded keys of the same algorithm, so a
//! host known by its ed25519 key that suddenly offers an ECDSA key looks "new", and it
//! takes the `@revoked` and `@cert-authority` markers for host names. This reader keeps
//! OpenSSH's rules instead: a line may start with a marker; host patterns are
//! comma-separated, with `*` and `?` wildcards, `!` negations and hashed names
//! (`|1|salt|hash`, from `ssh-keygen -H`); fields are separated by any whitespace. A
//! host with any recorded key, of any algorithm, is never new.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use russh::keys::PublicKey;

/// What known_hosts says about the key a host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A plain entry for the host records this very key.
    Known,
    /// A `@revoked` entry for the host lists this key: refused, even when another line
    /// records it as known.
    Revoked {
        /// The `@revoked` line (1-based).
        line: usize,
    },
    /// The host has recorded keys, and this is none of them (another key of the same
    /// algorithm, or a key of another algorithm).
    Changed {
        /// The first line recording a key for the host.
        line: usize,
        /// That key's algorithm, as written there (`ssh-ed25519`, ...).
        recorded: String,
    },
    /// The host has no plain key recorded, but a `@cert-authority` line covers it: it is
    /// meant to present a host certificate, and a plain key is no substitute.
    CertificateExpected {
        /// The `@cert-authority` line.
        line: usize,
    },
    /// Nothing is recorded for the host.
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Plain,
    Revoked,
    CertAuthority,
}

/// The name a host is recorded under: `host`, or `[host]:port` for a port other than 22,
/// lowercased as OpenSSH does before matching.
pub fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks `offered`, the key of `host`:`port`, against the text of a known_hosts file.
pub fn check(text: &str, host: &str, port: u16, offered: &PublicKey) -> Verdict {
    let name = host_name(host, port);
    let mut first_plain: Option<(usize, String)> = None;
    let mut first_ca: Option<usize> = None;
    let mut known = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut fields = raw.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            // An unknown marker: OpenSSH skips the line, and so do we.
            m if m.starts_with('@') => continue,
            _ => Marker::Plain,
        };
        if marker != Marker::Plain {
            match fields.next() {
                Some(p) => first = p,
                None => continue,
            }
        }
        let (Some(algorithm), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !matches_host(&name, first) {
            continue;
        }
        // A recorded key that cannot be read still counts as recorded: it can never
        // equal the offered key, and it makes the host "not new".
        let same = russh::keys::parse_public_key_base64(blob)
            .map(|k| k.key_data() == offered.key_data())
            .unwrap_or(false);
        match marker {
            Marker::Revoked if same => return Verdict::Revoked { line },
            Marker::Revoked => {}
            Marker::CertAuthority => {
                first_ca.get_or_insert(line);
            }
            Marker::Plain => {
                known |= same;
                first_plain.get_or_insert_with(|| (line, algorithm.to_string()));
            }
        }
    }
    // Every line has been seen by now, so a revoked key below a known one is refused.
    match (known, first_plain, first_ca) {
        (true, _, _) => Verdict::Known,
        (false, Some((line, recorded)), _) => Verdict::Changed { line, recorded },
        (false, None, Some(line)) => Verdict::CertificateExpected { line },
        (false, None, None) => Verdict::New,
    }
}

/// Whether `name` (from [`host_name`]) matches a comma-separated pattern list: some
/// pattern matches and no negated one does.
fn matches_host(name: &str, patterns: &str) -> bool {
    let mut found = false;
    for p in patterns.split(',') {
        if let Some(hashed) = p.strip_prefix("|1|") {
            found |= matches_hashed(name, hashed);
        } else if let Some(negated) = p.strip_prefix('!') {
            if crate::sshconfig::wildcard(&negated.to_ascii_lowercase(), name) {
                return false;
            }
        } else {
            found |= crate::sshconfig::wildcard(&p.to_ascii_lowercase(), name);
        }
    }
    found
}

/// A hashed name, `salt|hash` in base64: HMAC-SHA1 of the name keyed with the salt.
fn matches_hashed(name: &str, salt_and_hash: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sshconfig::wildcard as glob;
    use std::process::Command;

    /// A fresh key pair made by OpenSSH's ssh-keygen: (algorithm, base64 blob).
    fn keygen(dir: &std::path::Path, name: &str, kind: &str) -> (String, String) {
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let mut f = text.split_whitespace();
        (f.next().unwrap().to_string(), f.next().unwrap().to_string())
    }

    fn key(blob: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(blob).unwrap()
    }

    #[test]
    fn wildcards_and_negations() {
        assert!(glob("*", "web1"));
        assert!(glob("web?", "web1"));
        assert!(!glob("web?", "web10"));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.com"));
        assert!(glob("[10.0.0.*]:2222", "[10.0.0.7]:2222"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(matches_host("web1", "db1,web*"));
        assert!(!matches_host("web1", "web*,!web1"));
        assert!(!matches_host("web1", "!web1"));
        assert!(matches_host("[127.0.0.1]:2222", "[127.0.0.1]:2222"));
        assert!(!matches_host("127.0.0.1", "[127.0.0.1]:2222"));
        assert_eq!(host_name("Web1.Example.COM", 22), "web1.example.com");
        assert_eq!(host_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn any_recorded_key_makes_a_host_known_and_markers_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let (ed_alg, ed) = keygen(dir.path(), "ed", "ed25519");
        let (ec_alg, ec) = keygen(dir.path(), "ec", "ecdsa");
        let (_, other) = keygen(dir.path(), "other", "ed25519");
        let host = "[10.1.2.3]:2222";
        let check_ = |text: &str, k: &str| check(text, "10.1.2.3", 2222, &key(k));

        let plain = format!("# a comment\n\n{host} {ed_alg} {ed}\n");
        assert_eq!(check_(&plain, &ed), Verdict::Known);
        // The same host offering a key of another algorithm is not new: it changed.
        assert_eq!(
            check_(&plain, &ec),
            Verdict::Changed {
                line: 3,
                recorded: ed_alg.clone()
            }
        );
        assert_eq!(
            check_(&plain, &other),
            Verdict::Changed {
                line: 3,
                recorded: ed_alg.clone()
            }
        );
        // Fields separated by tabs and runs of spaces, as OpenSSH accepts them.
        let tabs = format!("other.host {ec_alg} {ec}\n{host}\t{ed_alg}   {ed} comment\n");
        assert_eq!(check_(&tabs, &ed), Verdict::Known);
        assert_eq!(check("", "10.1.2.3", 2222, &key(&ed)), Verdict::New);
        assert_eq!(
            check_(&format!("10.1.2.3 {ed_alg} {ed}\n"), &ed),
            Verdict::New,
            "an entry for port 22 says nothing about port 2222"
        );

        // A revoked key is refused, even when it is also recorded as known, before or
        // after the @revoked line; a revoked line never makes another key known.
        let revoked = format!("{host} {ed_alg} {ed}\n@revoked {host} {ed_alg} {ed}\n");
        assert_eq!(check_(&revoked, &ed), Verdict::Revoked { line: 2 });
        let revoked_all = format!("@revoked * {ed_alg} {ed}\n");
        assert_eq!(check_(&revoked_all, &ed), Verdict::Revoked { line: 1 });
        assert_eq!(check_(&revoked_all, &ec), Verdict::New);

        // A @cert-authority line is not a host key, and the marker is not a host name.
        let ca = format!("@cert-authority {host} {ed_alg} {ed}\n");
        assert_eq!(check_(&ca, &ed), Verdict::CertificateExpected { line: 1 });
        let ca_and_plain = format!("@cert-authority * {ed_alg} {other}\n{host} {ed_alg} {ed}\n");
        assert_eq!(check_(&ca_and_plain, &ed), Verdict::Known);
        // Unknown markers and short lines are skipped.
        let odd = format!("@future {host} {ed_alg} {ed}\n{host}\n{host} {ed_alg}\n");
        assert_eq!(check_(&odd, &ed), Verdict::New);
        // A recorded key that cannot be read still makes the host known, never new.
        let unreadable = format!("{host} ssh-ed25519 AAAA-not-base64\n");
        assert!(matches!(
            check_(&unreadable, &ed),
            Verdict::Changed { line: 1, .. }
        ));
    }

    #[test]
    fn hashed_entries_written_by_ssh_keygen_match() {
        let dir = tempfile::tempdir().unwrap();
        let (ed_alg, ed) = keygen(dir.path(), "ed", "ed25519");
        let (_, ec) = keygen(dir.path(), "ec", "ecdsa");
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!("[127.0.0.1]:2200 {ed_alg} {ed}\nweb.example.com {ed_alg} {ed}\n"),
        )
        .unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("127.0.0.1") && text.contains("|1|"),
            "{text}"
        );
        assert_eq!(check(&text, "127.0.0.1", 2200, &key(&ed)), Verdict::Known);
        assert_eq!(
            check(&text, "WEB.example.com", 22, &key(&ed)),
            Verdict::Known
        );
        assert!(matches!(
            check(&text, "127.0.0.1", 2200, &key(&ec)),
            Verdict::Changed { line: 1, .. }
        ));
        assert_eq!(check(&text, "127.0.0.1", 2201, &key(&ec)), Verdict::New);
    }
}
