//! apt_key (ansible.builtin): a key in APT's keyring (or `keyring`) through the host's
//! `apt-key` and `gpg`, as the module does: the key's id from `id`, else read by gpg
//! from `file`, `data` or the key at `url` (fetched with the host's curl/wget); present
//! when `apt-key adv --list-public-keys` lists it, so a second run is ok. Every command
//! is an argument vector; a key's bytes go on standard input.

use super::fsutil::{self, Step, fail, failed};
use super::{Ctx, ModuleError, Outcome, args, get_url, tools};
use crate::plan::Vars;
use serde_json::Value;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "id",
    "url",
    "data",
    "file",
    "keyring",
    "validate_certs",
    "keyserver",
    "state",
];

/// The tools the module requires; the host's, found as `get_bin_path` does.
struct Bins {
    apt_key: PathBuf,
    gpg: PathBuf,
}

/// `apt_key`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let given = |n: &str| args::opt_str(a, n);
    let (id, url, data, file, keyring, keyserver) = (
        given("id")?,
        given("url")?,
        given("data")?,
        given("file")?,
        given("keyring")?,
        given("keyserver")?,
    );
    let sources: Vec<&str> = [
        ("data", &data),
        ("file", &file),
        ("keyserver", &keyserver),
        ("url", &url),
    ]
    .iter()
    .filter(|(_, v)| v.is_some())
    .map(|(n, _)| *n)
    .collect();
    if sources.len() > 1 {
        return Err(ModuleError::BadArgs(format!(
            "parameters are mutually exclusive: {}",
            sources.join("|")
        ))
        .into());
    }
    // Checked for its type; downloads always check certificates here.
    args::opt_bool(a, "validate_certs")?;
    let state = args::opt_str(a, "state")?.unwrap_or_else(|| "present".into());
    if !matches!(state.as_str(), "present" | "absent") {
        return Err(ModuleError::BadArgs(format!(
            "value of state must be one of: absent, present, got: {state}"
        ))
        .into());
    }
    let bins = Bins {
        apt_key: tools::require_bin("apt-key").map_err(failed)?,
        gpg: tools::require_bin("gpg").map_err(failed)?,
    };
    let keyring = keyring.map(PathBuf::from);
    let mut data: Option<Vec<u8>> = data.map(String::into_bytes);

    let id = match id.filter(|i| !i.is_empty()) {
        Some(i) => Some(i),
        None => {
            if keyserver.is_some() {
                return fail("Missing key_id, required with keyserver.");
            }
            if let Some(u) = &url {
                data = Some(download(u, ctx)?);
            }
            if let Some(f) = &file {
                key_id_of(&bins, ctx, Path::new(f), None)?
            } else if let Some(d) = data.as_deref().filter(|d| !d.is_empty()) {
                key_id_of(&bins, ctx, Path::new("-"), Some(d))?
            } else {
                None
            }
        }
    };
    let mut out = Outcome::ok().with("id", id.as_deref().map_or(Value::Null, Value::from));
    let Some((short, fingerprint, key_id)) = id.as_deref().and_then(parse_key_id) else {
        out.failed = true;
        return Err(failed(out.msg("Invalid key_id")));
    };
    out = out
        .with("short_id", short.as_str())
        .with("fp", fingerprint.as_str())
        .with("key_id", key_id.as_str());
    let short_format = key_id.len() == 8;
    let listed = |keys: &[String]| {
        if short_format {
            keys.contains(&short)
        } else {
            keys.contains(&fingerprint)
        }
    };
    let before = all_keys(&bins, ctx, keyring.as_deref(), short_format)?;
    out = out.with("before", before.clone());
    let ring_args = |mut rest: Vec<String>| {
        let mut argv = Vec::new();
        if let Some(k) = &keyring {
            argv.push("--keyring".to_string());
            argv.push(k.display().to_string());
        }
        argv.append(&mut rest);
        argv
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    if state == "present" {
        if listed(&before) {
            return Ok(out);
        }
        out.changed = true;
        if ctx.check_mode {
            return Ok(out);
        }
        if let Some(f) = &file {
            let argv = ring_args(s(&["add", f]));
            apt_key(&bins, ctx, &argv, None, || {
                Outcome::fail(format!("Unable to add a key from file {f}"))
                    .with("keyfile", f.as_str())
            })?;
        } else if let Some(ks) = &keyserver {
            import_key(&bins, ctx, &ring_args(Vec::new()), ks, &key_id)?;
        } else {
            let bytes = match (&data, &url) {
                (Some(d), _) => d.clone(),
                (None, Some(u)) => download(u, ctx)?,
                (None, None) => {
                    out.failed = true;
                    return Err(failed(out.msg("No key to add ... how did i get here?!?!")));
                }
            };
            let argv = ring_args(s(&["add", "-"]));
            apt_key(&bins, ctx, &argv, Some(&bytes), || {
                Outcome::fail("Unable to add a key from binary data")
            })?;
        }
        let after = all_keys(&bins, ctx, keyring.as_deref(), short_format)?;
        out = out.with("after", after.clone());
        if !listed(&after) {
            out.failed = true;
            out.msg = Some(
                "apt-key did not return an error, but failed to add the key (check that the id is correct and *not* a subkey)".into(),
            );
        }
        return Ok(out);
    }
    if !before.contains(&fingerprint) {
        return Ok(out);
    }
    out.changed = true;
    if ctx.check_mode {
        return Ok(out);
    }
    // The short id: apt-key del up to 1.10 took no other length.
    let argv = ring_args(s(&["del", &short]));
    apt_key(&bins, ctx, &argv, None, || {
        Outcome::fail(format!("Unable to remove a key with id {short}"))
            .with("key_id", short.as_str())
    })?;
    let after = all_keys(&bins, ctx, keyring.as_deref(), short_format)?;
    out = out.with("after", after.clone());
    if after.contains(&fingerprint) {
        out.failed = true;
        out.msg = Some(
            "apt-key did not return an error, but the key was not removed (check that the id is correct and *not* a subkey)".into(),
        );
    }
    Ok(out)
}

/// The module's `parse_key_id`: hexadecimal, optionally `0x`; 8, 16 or more than 16
/// digits. Returns the short id (last 8), the fingerprint as listed (last 16) and the id.
fn parse_key_id(id: &str) -> Option<(String, String, String)> {
    let upper = id.trim().to_uppercase();
    let key = upper.strip_prefix("0X").unwrap_or(&upper).to_string();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let n = key.len();
    if n != 8 && n != 16 && n <= 16 {
        return None;
    }
    let tail = |k: usize| {
        key.get(n.saturating_sub(k)..)
            .unwrap_or_default()
            .to_string()
    };
    Some((tail(8), tail(16), key))
}

/// The ids of the `pub`/`sub` lines not expired, in apt-key's listing
/// (`pub   ed25519/ID ...`) or gpg's colon format (`pub:-:255:22:ID:...`).
fn parse_keys(output: &str, short_format: bool) -> Vec<String> {
    output
        .split('\n')
        .filter(|l| (l.starts_with("pub") || l.starts_with("sub")) && !l.contains("expired"))
        .filter_map(|l| {
            // Python's two-name unpacking of `code.split("/")`: exactly one slash.
            let listed = l.split_whitespace().nth(1).and_then(|code| {
                code.split_once('/')
                    .filter(|(_, id)| !id.contains('/'))
                    .map(|(_, id)| id.to_string())
            });
            listed.or_else(|| l.split(':').nth(4).map(str::to_string))
        })
        .map(|k| {
            if short_format {
                k.get(k.len().saturating_sub(8)..)
                    .unwrap_or_default()
                    .to_string()
            } else {
                k
            }
        })
        .collect()
}

/// gpg reads keys in the C library's plain locale, so its output parses.
fn c_locale(cmd: &mut std::process::Command) {
    for var in ["LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"] {
        cmd.env(var, "C");
    }
}

/// Every key apt-key lists.
fn all_keys(bins: &Bins, ctx: &Ctx<'_>, keyring: Option<&Path>, short: bool) -> Step<Vec<String>> {
    let mut argv = Vec::new();
    if let Some(k) = keyring {
        argv.extend(["--keyring".to_string(), k.display().to_string()]);
    }
    argv.extend(["adv", "--list-public-keys", "--keyid-format=long"].map(String::from));
    match tools::run_command(ctx.command(&bins.apt_key), &argv, None) {
        Ok(o) if o.rc == 0 => Ok(parse_keys(&o.stdout, short)),
        Ok(o) => Err(failed(
            Outcome::fail("Unable to list public keys")
                .with("cmd", tools::shown(&bins.apt_key, &argv))
                .with("rc", o.rc)
                .with("stdout", o.stdout)
                .with("stderr", o.stderr),
        )),
        Err(e) => fail(format!("{}: {e}", bins.apt_key.display())),
    }
}

/// The first key's id that gpg reads in `file` (`-`: `data` on standard input).
fn key_id_of(bins: &Bins, ctx: &Ctx<'_>, file: &Path, data: Option<&[u8]>) -> Step<Option<String>> {
    let mut cmd = ctx.command(&bins.gpg);
    c_locale(&mut cmd);
    let argv = vec!["--with-colons".to_string(), file.display().to_string()];
    let o = tools::run_command(cmd, &argv, data)
        .map_err(|e| failed(Outcome::fail(format!("{}: {e}", bins.gpg.display()))))?;
    if o.rc != 0 {
        let what = if data.is_some() {
            "inline data".to_string()
        } else {
            file.display().to_string()
        };
        return Err(failed(
            Outcome::fail(format!("Unable to extract key from '{what}'"))
                .with("stdout", o.stdout)
                .with("stderr", o.stderr),
        ));
    }
    Ok(parse_keys(&o.stdout, false).into_iter().next())
}

/// Runs apt-key; a failure is `failure()` with the command and its output.
fn apt_key(
    bins: &Bins,
    ctx: &Ctx<'_>,
    argv: &[String],
    input: Option<&[u8]>,
    failure: impl FnOnce() -> Outcome,
) -> Step<()> {
    let o = tools::run_command(ctx.command(&bins.apt_key), argv, input)
        .map_err(|e| failed(Outcome::fail(format!("{}: {e}", bins.apt_key.display()))))?;
    if o.rc == 0 {
        return Ok(());
    }
    Err(failed(
        failure()
            .with("cmd", tools::shown(&bins.apt_key, argv))
            .with("rc", o.rc)
            .with("stdout", o.stdout)
            .with("stderr", o.stderr),
    ))
}

/// `apt-key adv --recv` from `keyserver`, tried five times as the module does; the
/// first proxy of the environment goes to gpg's keyserver options.
fn import_key(
    bins: &Bins,
    ctx: &Ctx<'_>,
    ring: &[String],
    keyserver: &str,
    key_id: &str,
) -> Step<()> {
    let mut argv = ring.to_vec();
    argv.extend(["adv", "--no-tty", "--keyserver", keyserver].map(String::from));
    let proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .find_map(|v| {
            ctx.env
                .iter()
                .find(|(k, _)| k == v)
                .map(|(_, val)| val.clone())
                .or_else(|| std::env::var(v).ok())
                .filter(|p| !p.is_empty())
        });
    if let Some(p) = proxy {
        argv.extend(["--keyserver-options".to_string(), format!("http-proxy={p}")]);
    }
    argv.extend(["--recv".to_string(), key_id.to_string()]);
    let mut last = None;
    for _ in 0..5 {
        let mut cmd = ctx.command(&bins.apt_key);
        c_locale(&mut cmd);
        let o = tools::run_command(cmd, &argv, None)
            .map_err(|e| failed(Outcome::fail(format!("{}: {e}", bins.apt_key.display()))))?;
        if o.rc == 0 {
            return Ok(());
        }
        last = Some(o);
    }
    let cmd = tools::shown(&bins.apt_key, &argv);
    match last {
        Some(o) if o.rc == 2 && o.stdout.contains("not found on keyserver") => Err(failed(
            Outcome::fail(format!("Key {key_id} not found on keyserver {keyserver}"))
                .with("cmd", cmd),
        )),
        Some(o) => Err(failed(
            Outcome::fail(format!(
                "Error fetching key {key_id} from keyserver: {keyserver}"
            ))
            .with("cmd", cmd)
            .with("rc", o.rc)
            .with("stdout", o.stdout)
            .with("stderr", o.stderr),
        )),
        None => fail(format!(
            "Error fetching key {key_id} from keyserver: {keyserver}"
        )),
    }
}

fn download(url: &str, ctx: &Ctx<'_>) -> Step<Vec<u8>> {
    get_url::download(url, ctx).map_err(|e| {
        failed(Outcome::fail(format!(
            "Failed to download key at {url}: {e}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The key ansible-core's own deb822_repository target uses (an ed25519 key).
    const KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEYCQjIxYJKwYBBAHaRw8BAQdAD/P5Nvvnvk66SxBBHDbhRml9ORg1WV5CvzKY
CuMfoIS0BmFiY2RlZoiQBBMWCgA4FiEErCIG1VhKWMWo2yfAREZd5NfO31cFAmAk
IyMCGyMFCwkIBwMFFQoJCAsFFgIDAQACHgECF4AACgkQREZd5NfO31fbOwD6ArzS
dM0Dkd5h2Ujy1b6KcAaVW9FOa5UNfJ9FFBtjLQEBAJ7UyWD3dZzhvlaAwunsk7DG
3bHcln8DMpIJVXht78sL
=IE0r
-----END PGP PUBLIC KEY BLOCK-----
";

    fn task(v: Value, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        let a: Vars = serde_json::from_value(v).unwrap();
        fsutil::finish(run_inner(&a, &t.ctx(check, false))).unwrap()
    }

    #[test]
    fn key_ids_and_listings_parse_as_the_module_reads_them() {
        assert_eq!(
            parse_key_id("0x44465de4d7cedf57"),
            Some((
                "D7CEDF57".into(),
                "44465DE4D7CEDF57".into(),
                "44465DE4D7CEDF57".into()
            ))
        );
        assert_eq!(parse_key_id("D7CEDF57").unwrap().1, "D7CEDF57");
        assert!(parse_key_id("ABCDE").is_none());
        assert!(parse_key_id("XYZXYZXY").is_none());
        let listing = "/tmp/r.gpg\n---\npub   ed25519/44465DE4D7CEDF57 2021-02-10 [SCA]\n      AC22...\nuid  abcdef\npub   rsa1024/0000000011111111 2001-01-01 [expired: 2002-01-01]\n";
        assert_eq!(parse_keys(listing, false), vec!["44465DE4D7CEDF57"]);
        assert_eq!(parse_keys(listing, true), vec!["D7CEDF57"]);
        assert_eq!(
            parse_keys("pub:-:255:22:44465DE4D7CEDF57:1612981027:::-:\n", false),
            vec!["44465DE4D7CEDF57"]
        );
    }

    /// The host's apt-key and gpg on a keyring in a temporary directory: the key's id
    /// read from inline data, added once, then removed once.
    #[test]
    fn a_key_is_added_and_removed_in_a_private_keyring() {
        if tools::find_bin("apt-key").is_none() || tools::find_bin("gpg").is_none() {
            eprintln!("skipped: apt-key or gpg missing");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let ring = t.path().join("ring.gpg").display().to_string();
        let add = json!({"data": KEY, "keyring": ring});
        let dry = task(add.clone(), true);
        assert!(dry.changed && !dry.failed, "{dry:?}");
        assert_eq!(dry.data["id"], json!("44465DE4D7CEDF57"));
        assert_eq!(dry.data["short_id"], json!("D7CEDF57"));
        let out = task(add.clone(), false);
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(out.data["after"], json!(["44465DE4D7CEDF57"]));
        assert!(!task(add, false).changed);

        let file = t.path().join("k.asc");
        std::fs::write(&file, KEY).unwrap();
        let by_file = task(
            json!({"file": file.display().to_string(), "keyring": ring}),
            false,
        );
        assert!(!by_file.changed && !by_file.failed, "{by_file:?}");

        let del = json!({"id": "D7CEDF57", "keyring": ring, "state": "absent"});
        let gone = task(del.clone(), false);
        assert!(gone.changed && !gone.failed, "{gone:?}");
        assert_eq!(gone.data["after"], json!([]));
        assert!(!task(del, false).changed);

        let bad = task(json!({"data": "not a key", "keyring": ring}), false);
        assert!(bad.failed);
        assert_eq!(
            bad.msg.as_deref(),
            Some("Unable to extract key from 'inline data'")
        );
        let none = task(json!({"keyring": ring}), false);
        assert_eq!(none.msg.as_deref(), Some("Invalid key_id"));
    }

    #[test]
    fn sources_are_mutually_exclusive() {
        let t = crate::modules::TestCtx::new();
        let a: Vars = serde_json::from_value(json!({"data": "x", "url": "http://x"})).unwrap();
        assert!(matches!(
            run_inner(&a, &t.ctx(false, false)),
            Err(fsutil::Stop::Bad(ModuleError::BadArgs(m))) if m == "parameters are mutually exclusive: data|url"
        ));
    }
}
