//! known_hosts: one host's key in an OpenSSH known_hosts file added, replaced or
//! removed, found as ansible.builtin.known_hosts finds it (the host's `ssh-keygen -F`
//! and `-R`, argument vectors), hashed names kept, and the file rewritten through
//! `fsutil`'s atomic writer.

use super::fsutil::{self, Attrs, Step, WriteReq, fail, failed};
use super::tools::{self, PrivateDir};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &["name", "host", "key", "path", "hash_host", "state"];

/// `known_hosts`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// A known_hosts line split as the module splits it: marker, host field, type, key
/// (whatever follows, a comment, is left out).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    marker: Option<String>,
    host: String,
    kind: String,
    key: String,
}

fn normalize(line: &str) -> Option<Entry> {
    let k: Vec<&str> = line.split_whitespace().collect();
    match k.as_slice() {
        [m, host, kind, key, ..] if m.starts_with('@') => Some(Entry {
            marker: Some((*m).to_string()),
            host: (*host).to_string(),
            kind: (*kind).to_string(),
            key: (*key).to_string(),
        }),
        [host, kind, key, ..] if !host.starts_with('@') => Some(Entry {
            marker: None,
            host: (*host).to_string(),
            kind: (*kind).to_string(),
            key: (*key).to_string(),
        }),
        _ => None,
    }
}

/// `~/...` against the home of the user the module runs as.
fn expand_user(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => PathBuf::from(h).join(rest),
        _ if p == "~" => std::env::var_os("HOME").map_or_else(|| PathBuf::from(p), PathBuf::from),
        _ => PathBuf::from(p),
    }
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let name = match (args::opt_str(a, "name")?, args::opt_str(a, "host")?) {
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => {
            return Err(ModuleError::BadArgs("missing required argument 'name'".into()).into());
        }
    };
    let host = name.to_lowercase();
    let mut key = args::opt_str(a, "key")?.filter(|k| !k.is_empty());
    let path_arg = args::opt_str(a, "path")?.unwrap_or_else(|| "~/.ssh/known_hosts".into());
    let path = expand_user(&path_arg);
    let hash_host = args::bool_or(a, "hash_host", false)?;
    let present = match args::opt_str(a, "state")?.as_deref() {
        None | Some("present") => true,
        Some("absent") => false,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'state' must be one of absent, present; got '{other}'"
            ))
            .into());
        }
    };
    let Some(keygen) = tools::find_bin("ssh-keygen") else {
        return fail(
            "Failed to find required executable \"ssh-keygen\" in paths: $PATH, /usr/local/sbin, /usr/sbin, /sbin",
        );
    };
    if key.is_none() && present {
        return fail("No key specified when adding a host");
    }
    if let (Some(k), true) = (&key, hash_host) {
        key = Some(hash_key(&host, k)?);
    }
    if let Some(k) = &mut key
        && !k.ends_with('\n')
    {
        k.push('\n');
    }
    let params = |o: Outcome| {
        o.with("name", name.clone())
            .with("key", key.clone().map_or(Value::Null, Value::from))
            .with("path", path.display().to_string())
            .with("hash_host", hash_host)
            .with("state", if present { "present" } else { "absent" })
    };
    if let Some(k) = &key {
        sanity_check(ctx, &keygen, &host, k)?;
    }
    let (found, replace, found_line) = search(ctx, &keygen, &host, key.as_deref(), &path)?;

    let old = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fsutil::io_fail("read", &path, &e)),
    };
    let before = old
        .as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let mut lines: Vec<String> = before.split_inclusive('\n').map(str::to_string).collect();
    if (replace || !present)
        && let Some(n) = found_line
        && n >= 1
        && n <= lines.len()
    {
        lines.remove(n - 1);
    }
    if present
        && (replace || found_line.is_none())
        && let Some(k) = &key
    {
        lines.push(k.clone());
    }
    let after = lines.concat();
    let shown = path.display().to_string();
    let diff = Diff {
        before_header: if old.is_some() {
            shown.clone()
        } else {
            "/dev/null".into()
        },
        after_header: shown,
        before: before.clone(),
        after: after.clone(),
    };
    let with_diff = |mut o: Outcome| {
        o = o.with(
            "diff",
            json!({"before_header": diff.before_header, "after_header": diff.after_header,
                   "before": diff.before, "after": diff.after}),
        );
        if ctx.diff_mode && o.changed {
            o.diff.push(diff.clone());
        }
        o
    };

    if !present && found_line.is_none() && key.is_some() {
        return Ok(params(with_diff(Outcome::ok())));
    }
    if ctx.check_mode {
        let changed = replace || present != found;
        return Ok(params(with_diff(Outcome::changed(changed))));
    }
    let mut changed = false;
    if found && key.is_none() && !present {
        // Every line of the host goes, hashed or not: ssh-keygen knows how to find them.
        let argv = vec![
            "-R".to_string(),
            host.clone(),
            "-f".to_string(),
            shown_path(&path),
        ];
        let out = tools::run_command(ctx.command(&keygen), &argv, None)
            .map_err(|e| fsutil::io_fail("run ssh-keygen on", &path, &e))?;
        if out.rc != 0 {
            return Err(failed(
                Outcome::fail(out.stderr.trim().to_string())
                    .with("rc", out.rc)
                    .with("stdout", out.stdout)
                    .with("stderr", out.stderr),
            ));
        }
        changed = true;
    }
    if replace || found != present {
        // After `ssh-keygen -R` the file is read again: that is what is rewritten.
        let content = if changed {
            std::fs::read(&path).map_err(|e| fsutil::io_fail("read", &path, &e))?
        } else {
            after.into_bytes()
        };
        let req = WriteReq {
            dest: &path,
            content: &content,
            attrs: Attrs::default(),
            force: true,
            backup: false,
            follow: false,
            src: None,
            new_mode: None,
        };
        fsutil::write_file(&req, ctx)?;
        changed = true;
    }
    Ok(params(with_diff(Outcome::changed(changed))))
}

fn shown_path(p: &Path) -> String {
    p.display().to_string()
}

/// The key's host field replaced by `|1|salt|hmac`, OpenSSH's hashed form.
fn hash_key(host: &str, key: &str) -> Step<String> {
    let salt: [u8; 20] = crate::random::bytes();
    let mac = hmac_sha1(&salt, host.as_bytes());
    let mut parts: Vec<String> = key.split_whitespace().map(str::to_string).collect();
    let i = usize::from(parts.first().is_some_and(|p| p.starts_with('@')));
    let Some(field) = parts.get_mut(i) else {
        return fail(format!("cannot read the key '{}'", key.trim()));
    };
    *field = format!(
        "|1|{}|{}",
        crate::hex::base64(&salt),
        crate::hex::base64(&mac)
    );
    Ok(parts.join(" "))
}

/// HMAC-SHA1 (RFC 2104), what OpenSSH hashes known host names with.
fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let sha1 = crate::digest::sha1;
    let mut block = [0u8; 64];
    let short;
    let key = if key.len() > 64 {
        short = sha1(&[key]);
        short.as_slice()
    } else {
        key
    };
    for (b, k) in block.iter_mut().zip(key) {
        *b = *k;
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha1(&[&ipad, data]);
    sha1(&[&opad, &inner])
}

/// The module's `sanity_check`: one host name, and a key whose host field matches it.
fn sanity_check(ctx: &Ctx<'_>, keygen: &Path, host: &str, key: &str) -> Step<()> {
    let comma =
        regex::Regex::new(r"\S+(\s+)?,(\s+)?").map_err(|e| ModuleError::BadArgs(e.to_string()))?;
    if comma.is_match(host) {
        return fail(
            "Comma separated list of names is not supported. Please pass a single name to lookup in the known_hosts file.",
        );
    }
    let dir = PrivateDir::for_task("known_hosts", ctx.run_as)
        .map_err(|e| fsutil::io_fail("create", &std::env::temp_dir(), &e))?;
    let file = dir
        .write("key", key.as_bytes(), 0o600)
        .map_err(|e| fsutil::io_fail("write", dir.path(), &e))?;
    let argv = vec![
        "-F".to_string(),
        host.to_string(),
        "-f".to_string(),
        shown_path(&file),
    ];
    let out = tools::run_command(ctx.command(keygen), &argv, None)
        .map_err(|e| fsutil::io_fail("run ssh-keygen on", &file, &e))?;
    if out.stdout.is_empty() {
        return fail("Host parameter does not match hashed host field in supplied key");
    }
    Ok(())
}

/// The module's `search_for_host_key`: whether the host is in the file, whether the
/// given key must replace (or be added to) what is there, and the line of the entry
/// of the same key type.
fn search(
    ctx: &Ctx<'_>,
    keygen: &Path,
    host: &str,
    key: Option<&str>,
    path: &Path,
) -> Step<(bool, bool, Option<usize>)> {
    if !path.exists() {
        return Ok((false, false, None));
    }
    let argv = vec![
        "-F".to_string(),
        host.to_string(),
        "-f".to_string(),
        shown_path(path),
    ];
    let out = tools::run_command(ctx.command(keygen), &argv, None)
        .map_err(|e| fsutil::io_fail("run ssh-keygen on", path, &e))?;
    if out.stdout.is_empty() && out.stderr.is_empty() && (out.rc == 0 || out.rc == 1) {
        return Ok((false, false, None));
    }
    if out.rc != 0 {
        return fail(format!(
            "ssh-keygen failed (rc={}, stdout='{}',stderr='{}')",
            out.rc, out.stdout, out.stderr
        ));
    }
    let Some(key) = key else {
        return Ok((true, false, None));
    };
    let Some(mut want) = normalize(key) else {
        return fail(format!("cannot read the key '{}'", key.trim()));
    };
    let line_no =
        regex::Regex::new(r"found: line (\d+)").map_err(|e| ModuleError::BadArgs(e.to_string()))?;
    let mut found_line = None;
    for l in out.stdout.split('\n') {
        if l.is_empty() {
            continue;
        }
        if l.starts_with('#') {
            found_line = line_no
                .captures(l)
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().parse::<usize>().ok());
            if found_line.is_none() {
                return fail(format!(
                    "failed to parse output of ssh-keygen for line number: '{l}'"
                ));
            }
            continue;
        }
        let Some(have) = normalize(l) else { continue };
        let marker = have.marker.as_deref().unwrap_or("");
        if marker.starts_with("@cert-authority") || marker.starts_with("@revoke") {
            if want == have {
                return Ok((true, false, found_line));
            }
            continue;
        }
        if want.host.starts_with("|1|") && have.host.starts_with("|1|") {
            // A hashed name stays hashed as it is.
            want.host = have.host.clone();
        }
        if want == have {
            return Ok((true, false, found_line));
        }
        if want.kind == have.kind {
            return Ok((true, true, found_line));
        }
    }
    Ok((true, true, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;

    const KEY: &str = "example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFm8g5MzrIlc7HkZM7bq6sTjG9nQ5Cc5hZk6LxYtJbx";
    const KEY2: &str = "example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOH1ddyDXMH6TPjvZ3W3Ezx1Yv4Xn9y8Gf9ZxX8Q3K1c";

    fn kh(dir: &Path, args: Value, check: bool) -> Outcome {
        run_in_dir_for_test("known_hosts", dir, &args, check).unwrap()
    }

    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("kh")).unwrap_or_default()
    }

    #[test]
    fn a_key_is_added_replaced_and_removed_idempotently() {
        let d = tempfile::tempdir().unwrap();
        let add = json!({"name": "example.org", "key": KEY, "path": "{p}/kh"});
        let o = kh(d.path(), add.clone(), true);
        assert!(o.changed && !d.path().join("kh").exists(), "{o:?}");
        let o = kh(d.path(), add.clone(), false);
        assert!(o.changed, "{o:?}");
        assert_eq!(read(d.path()), format!("{KEY}\n"));
        assert!(!kh(d.path(), add, false).changed);
        let o = kh(
            d.path(),
            json!({"name": "Example.org", "key": KEY2, "path": "{p}/kh"}),
            false,
        );
        assert!(o.changed, "{o:?}");
        assert_eq!(read(d.path()), format!("{KEY2}\n"));
        let o = kh(
            d.path(),
            json!({"name": "example.org", "path": "{p}/kh", "state": "absent"}),
            false,
        );
        assert!(o.changed, "{o:?}");
        assert_eq!(read(d.path()), "");
        let o = kh(
            d.path(),
            json!({"name": "example.org", "path": "{p}/kh", "state": "absent"}),
            false,
        );
        assert!(!o.changed, "{o:?}");
    }

    #[test]
    fn a_hashed_entry_is_found_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let add = json!({"name": "example.org", "key": KEY, "path": "{p}/kh", "hash_host": true});
        assert!(kh(d.path(), add.clone(), false).changed);
        let text = read(d.path());
        assert!(
            text.starts_with("|1|") && !text.contains("example.org"),
            "{text}"
        );
        assert!(!kh(d.path(), add, false).changed);
        assert_eq!(read(d.path()), text);
    }

    #[test]
    fn a_key_for_another_host_or_a_list_of_names_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let o = kh(
            d.path(),
            json!({"name": "other.org", "key": KEY, "path": "{p}/kh"}),
            false,
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("Host parameter does not match hashed host field in supplied key")
        );
        let o = kh(
            d.path(),
            json!({"name": "a, b", "key": KEY, "path": "{p}/kh"}),
            false,
        );
        assert!(o.msg.unwrap().starts_with("Comma separated list"));
        let o = kh(d.path(), json!({"name": "a", "path": "{p}/kh"}), false);
        assert_eq!(
            o.msg.as_deref(),
            Some("No key specified when adding a host")
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        let mac = hmac_sha1(&[0x0b; 20], b"Hi There");
        assert_eq!(
            crate::hex::encode(&mac),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
    }
}
