//! authorized_key (ansible.posix, also reached as `ansible.builtin.authorized_key`): SSH
//! public keys in a user's authorized_keys, added, updated or removed as that module
//! does (its key parser, option handling, ordering and `exclusive`), the `.ssh`
//! directory and file given the user's ownership and 0700/0600, the file written
//! through `fsutil`'s atomic writer. Keys from a URL are not fetched: the runner makes
//! no network connection of its own.

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use crate::privilege::RunAs;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "user",
    "key",
    "path",
    "manage_dir",
    "state",
    "key_options",
    "exclusive",
    "comment",
    "validate_certs",
    "follow",
];

/// The key types ansible.posix recognises in a line.
const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// Options in the order given; a name may repeat.
type Options = Vec<(String, Option<String>)>;

/// One line of the file, or one key asked for: a key (blob, type, options, comment) or
/// a line kept as it is (comments, blank lines, lines without a key).
#[derive(Debug, Clone)]
enum Line {
    Key {
        blob: String,
        kind: String,
        options: Options,
        comment: String,
    },
    Kept(String),
}

impl Line {
    /// The module compares keys by blob, type, options and comment; options compare as
    /// its dict does: the values of each name, whatever the order of names.
    fn same(&self, other: &Line) -> bool {
        match (self, other) {
            (
                Line::Key {
                    blob: b1,
                    kind: k1,
                    options: o1,
                    comment: c1,
                },
                Line::Key {
                    blob: b2,
                    kind: k2,
                    options: o2,
                    comment: c2,
                },
            ) => b1 == b2 && k1 == k2 && c1 == c2 && by_name(o1) == by_name(o2),
            (Line::Kept(a), Line::Kept(b)) => a == b,
            _ => false,
        }
    }
}

fn by_name(o: &Options) -> BTreeMap<&str, Vec<Option<&str>>> {
    let mut m: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
    for (k, v) in o {
        m.entry(k.as_str()).or_default().push(v.as_deref());
    }
    m
}

/// The module's `parseoptions`: comma-separated, quotes protect commas.
fn parse_options(options: &str) -> Options {
    let mut out = Options::new();
    let Ok(re) = regex::Regex::new(r#"((?:[^,"']|"[^"]*"|'[^']*')+)"#) else {
        return out;
    };
    // Python's re.split with a group, without its first and last pieces: the matches
    // and what lies between them.
    let mut parts: Vec<&str> = Vec::new();
    let mut last = None;
    for m in re.find_iter(options) {
        if let Some(end) = last {
            parts.push(options.get(end..m.start()).unwrap_or(""));
        }
        parts.push(m.as_str());
        last = Some(m.end());
    }
    for part in parts {
        match part.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
            None if part != "," => out.push((part.to_string(), None)),
            None => {}
        }
    }
    out
}

/// The module's `parsekey`: `None` for a line without a key type.
fn parse_key(raw: &str) -> Option<Line> {
    let raw = raw.replace("\\#", "#");
    let parts: Vec<&str> = raw
        .split([' ', '\t', '\r', '\n'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.first() == Some(&"#") {
        return Some(Line::Kept(raw));
    }
    let at = parts.iter().position(|p| KEY_TYPES.contains(p))?;
    let options = match at {
        0 => Options::new(),
        _ => parse_options(&parts.get(..at).unwrap_or(&[]).join(" ")),
    };
    let blob = parts.get(at + 1)?;
    Some(Line::Key {
        blob: (*blob).to_string(),
        kind: parts.get(at)?.to_string(),
        options,
        comment: parts.get(at + 2..).unwrap_or(&[]).join(" "),
    })
}

/// The file's lines by the module's keys (a key's blob, a kept line's text), in the
/// order first seen, each with its rank (a later duplicate takes the place's rank).
#[derive(Default)]
struct Keys(Vec<(String, Line, usize)>);

impl Keys {
    fn parse(text: &str) -> Keys {
        let mut keys = Keys::default();
        for (rank, line) in text.split_inclusive('\n').enumerate() {
            let parsed = parse_key(line).unwrap_or_else(|| Line::Kept(line.to_string()));
            let id = match &parsed {
                Line::Key { blob, .. } => blob.clone(),
                Line::Kept(raw) => raw.clone(),
            };
            keys.set(id, parsed, rank);
        }
        keys
    }

    fn get(&self, id: &str) -> Option<&Line> {
        self.0.iter().find(|(k, _, _)| k == id).map(|(_, l, _)| l)
    }

    fn set(&mut self, id: String, line: Line, rank: usize) {
        match self.0.iter_mut().find(|(k, _, _)| *k == id) {
            Some(slot) => *slot = (id, line, rank),
            None => self.0.push((id, line, rank)),
        }
    }

    fn remove(&mut self, id: &str) {
        self.0.retain(|(k, _, _)| k != id);
    }

    /// The module's `serialize`: by rank; a key as `options type blob comment`.
    fn serialize(&self) -> String {
        let mut all: Vec<&(String, Line, usize)> = self.0.iter().collect();
        all.sort_by_key(|(_, _, rank)| *rank);
        let mut out = String::new();
        for (_, line, _) in all {
            match line {
                Line::Kept(raw) => out.push_str(raw),
                Line::Key {
                    blob,
                    kind,
                    options,
                    comment,
                } => {
                    if !options.is_empty() {
                        let o: Vec<String> = options
                            .iter()
                            .map(|(k, v)| match v {
                                Some(v) => format!("{k}={v}"),
                                None => k.clone(),
                            })
                            .collect();
                        out.push_str(&o.join(","));
                        out.push(' ');
                    }
                    out.push_str(&format!("{kind} {blob} {comment}\n"));
                }
            }
        }
        out
    }
}

/// `authorized_key`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let user = args::req_str(a, "user")?;
    let key = args::req_str(a, "key")?;
    let path = args::opt_str(a, "path")?.map(|p| expand_user(&p));
    let manage_dir = args::bool_or(a, "manage_dir", true)?;
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
    let key_options = args::opt_str(a, "key_options")?;
    let exclusive = args::bool_or(a, "exclusive", false)?;
    let comment = args::opt_str(a, "comment")?;
    let validate_certs = args::bool_or(a, "validate_certs", true)?;
    let follow = args::bool_or(a, "follow", false)?;
    if key.starts_with("http") {
        return fail(format!(
            "Error getting key from: {key} (this runner makes no network connection of its own; fetch the keys in an earlier task, e.g. with get_url, and pass their text)"
        ));
    }

    let account = RunAs::lookup(&user);
    let keyfile = keyfile(ctx, &user, account.as_ref(), path.as_deref(), false)?;
    let existing = match std::fs::read(&keyfile) {
        Ok(b) if keyfile.is_file() => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    let mut keys = Keys::parse(&existing);
    let max_rank = keys.0.len();
    let mut do_write = false;
    let mut to_exist = Vec::new();
    let wanted: Vec<&str> = key
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for (rank, raw) in wanted.iter().enumerate() {
        let Some(Line::Key {
            blob,
            kind,
            options,
            comment: own_comment,
        }) = parse_key(raw)
        else {
            return fail(format!("invalid key specified: {raw}"));
        };
        let new = Line::Key {
            blob: blob.clone(),
            kind,
            options: key_options.as_deref().map_or(options, parse_options),
            comment: comment.clone().unwrap_or(own_comment),
        };
        let mut matched = false;
        let mut differs = false;
        if let Some(have) = keys.get(&blob) {
            if !new.same(have) && present {
                differs = true;
            } else {
                matched = true;
            }
        }
        if present {
            to_exist.push(blob.clone());
            if differs {
                keys.remove(&blob);
                do_write = true;
            }
            if !matched {
                keys.set(blob, new, max_rank + rank);
                do_write = true;
            }
        } else if matched {
            keys.remove(&blob);
            do_write = true;
        }
    }
    if present && exclusive {
        let before = keys.0.len();
        keys.0.retain(|(id, _, _)| to_exist.contains(id));
        do_write |= keys.0.len() != before;
    }

    let mut out = Outcome::changed(do_write);
    if do_write {
        let filename = keyfile_for_write(
            ctx,
            &user,
            account.as_ref(),
            path.as_deref(),
            follow,
            manage_dir,
        )?;
        let content = keys.serialize();
        if ctx.diff_mode {
            out.diff.push(Diff {
                before_header: keyfile.display().to_string(),
                after_header: filename.display().to_string(),
                before: existing,
                after: content.clone(),
            });
        }
        if !ctx.check_mode {
            let req = WriteReq {
                dest: &filename,
                content: content.as_bytes(),
                attrs: Attrs {
                    mode: Some(0o600),
                    sym: None,
                    uid: account.as_ref().map(|u| u.uid),
                    gid: account.as_ref().map(|u| u.gid),
                    ..Attrs::default()
                },
                force: true,
                backup: false,
                follow: false,
                src: None,
                new_mode: None,
            };
            fsutil::write_file(&req, ctx)?;
        }
    }
    let opt = |v: Option<String>| v.map_or(Value::Null, Value::from);
    Ok(out
        .with("user", user)
        .with("key", key)
        .with("path", opt(path.map(|p| p.display().to_string())))
        .with("manage_dir", manage_dir)
        .with("state", if present { "present" } else { "absent" })
        .with("key_options", opt(key_options))
        .with("exclusive", exclusive)
        .with("comment", opt(comment))
        .with("validate_certs", validate_certs)
        .with("follow", follow)
        .with("keyfile", keyfile.display().to_string()))
}

/// `~` and `~/...` to the home of the user the module runs as (the `path` type).
fn expand_user(p: &str) -> PathBuf {
    match (p.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(""), Some(h)) => PathBuf::from(h),
        (Some(rest), Some(h)) if rest.starts_with('/') => {
            PathBuf::from(h).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(p),
    }
}

fn no_user(ctx: &Ctx<'_>, user: &str, path: Option<&Path>) -> Step<PathBuf> {
    if ctx.check_mode && path.is_none() {
        return fail(
            "Either user must exist or you must provide full path to key file in check mode",
        );
    }
    fail(format!(
        "Failed to lookup user {user}: 'getpwnam(): name not found: {user}'"
    ))
}

/// The module's `keyfile` without writing: the file to read.
fn keyfile(
    ctx: &Ctx<'_>,
    user: &str,
    account: Option<&RunAs>,
    path: Option<&Path>,
    follow: bool,
) -> Step<PathBuf> {
    if ctx.check_mode
        && let Some(p) = path
    {
        return Ok(if follow {
            std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
        } else {
            p.to_path_buf()
        });
    }
    let Some(account) = account else {
        return no_user(ctx, user, path);
    };
    let file = match path {
        Some(p) => p.to_path_buf(),
        None => Path::new(&account.home).join(".ssh/authorized_keys"),
    };
    Ok(if follow {
        std::fs::canonicalize(&file).unwrap_or(file)
    } else {
        file
    })
}

/// The module's `keyfile` for writing: outside check mode, the directory (when
/// `manage_dir`) made 0700 and the file's parent made, both owned by the user.
fn keyfile_for_write(
    ctx: &Ctx<'_>,
    user: &str,
    account: Option<&RunAs>,
    path: Option<&Path>,
    follow: bool,
    manage_dir: bool,
) -> Step<PathBuf> {
    let file = keyfile(ctx, user, account, path, follow)?;
    if ctx.check_mode {
        return Ok(file);
    }
    let Some(account) = account else {
        return no_user(ctx, user, path);
    };
    let sshdir = match path {
        Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        None => Path::new(&account.home).join(".ssh"),
    };
    if manage_dir && !sshdir.as_os_str().is_empty() {
        use std::os::unix::fs::DirBuilderExt as _;
        if !sshdir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&sshdir)
                .map_err(|e| {
                    fsutil::failed(Outcome::fail(format!(
                        "Failed to create directory {} : {e}",
                        sshdir.display()
                    )))
                })?;
        }
        let want = Attrs {
            mode: Some(0o700),
            sym: None,
            uid: Some(account.uid),
            gid: Some(account.gid),
            ..Attrs::default()
        };
        fsutil::apply_attrs(&sshdir, &want, true, false)?;
    }
    if let Some(dir) = file.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| fsutil::io_fail("create", dir, &e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;
    use serde_json::json;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFm8g5MzrIlc7HkZM7bq6sTjG9nQ5Cc5hZk6LxYtJbx a@x";
    const B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 b@y";

    fn ak(dir: &Path, args: Value, check: bool) -> Outcome {
        run_in_dir_for_test("authorized_key", dir, &args, check).unwrap()
    }

    fn me() -> String {
        crate::facts::current_user().unwrap()
    }

    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("keys/ak")).unwrap_or_default()
    }

    #[test]
    fn keys_are_added_once_with_the_users_ownership_and_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let args = json!({"user": me(), "key": A, "path": "{p}/keys/ak"});
        let o = ak(d.path(), args.clone(), true);
        assert!(o.changed && !d.path().join("keys").exists(), "{o:?}");
        let o = ak(d.path(), args.clone(), false);
        assert!(o.changed, "{o:?}");
        assert_eq!(read(d.path()), format!("{A}\n"));
        let meta = std::fs::metadata(d.path().join("keys/ak")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir = std::fs::metadata(d.path().join("keys")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        assert!(!ak(d.path(), args, false).changed);
    }

    #[test]
    fn options_and_comments_update_a_key_in_place_of_a_new_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("keys")).unwrap();
        std::fs::write(d.path().join("keys/ak"), format!("# mine\n{A}\n{B}\n")).unwrap();
        let args = json!({"user": me(), "key": A, "path": "{p}/keys/ak",
                          "key_options": "no-pty,from=\"10.0.0.1,10.0.0.2\"", "comment": "new"});
        assert!(ak(d.path(), args.clone(), false).changed);
        let blob = A.split(' ').nth(1).unwrap();
        assert_eq!(
            read(d.path()),
            format!("# mine\n{B}\nno-pty,from=\"10.0.0.1,10.0.0.2\" ssh-ed25519 {blob} new\n")
        );
        assert!(!ak(d.path(), args, false).changed);
        // Same options in another order are the same key.
        let args = json!({"user": me(), "key": A, "path": "{p}/keys/ak",
                          "key_options": "from=\"10.0.0.1,10.0.0.2\",no-pty", "comment": "new"});
        assert!(!ak(d.path(), args, false).changed);
    }

    #[test]
    fn absent_and_exclusive_remove_other_lines() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("keys")).unwrap();
        std::fs::write(d.path().join("keys/ak"), format!("# mine\n{A}\n{B}\n")).unwrap();
        let o = ak(
            d.path(),
            json!({"user": me(), "key": B, "path": "{p}/keys/ak", "state": "absent"}),
            false,
        );
        assert!(o.changed);
        assert_eq!(read(d.path()), format!("# mine\n{A}\n"));
        let o = ak(
            d.path(),
            json!({"user": me(), "key": A, "path": "{p}/keys/ak", "exclusive": true}),
            false,
        );
        assert!(o.changed);
        assert_eq!(read(d.path()), format!("{A}\n"));
    }

    #[test]
    fn bad_keys_and_unknown_users_fail_with_the_modules_messages() {
        let d = tempfile::tempdir().unwrap();
        let o = ak(
            d.path(),
            json!({"user": me(), "key": "not a key", "path": "{p}/ak"}),
            false,
        );
        assert_eq!(o.msg.as_deref(), Some("invalid key specified: not a key"));
        let o = ak(d.path(), json!({"user": "no-such-user-x", "key": A}), false);
        assert!(
            o.msg
                .unwrap()
                .starts_with("Failed to lookup user no-such-user-x")
        );
    }

    #[test]
    fn quoted_commas_stay_inside_an_option() {
        assert_eq!(
            parse_options("a,b=\"x,y\",c"),
            vec![
                ("a".to_string(), None),
                ("b".to_string(), Some("\"x,y\"".to_string())),
                ("c".to_string(), None)
            ]
        );
    }
}
