//! deb822_repository (ansible.builtin): an APT source as a deb822 stanza in
//! /etc/apt/sources.list.d/SLUG.sources, its fields in the module's order and spelling;
//! `signed_by` as a key file's path, an inline key (indented into the stanza), or a URL
//! whose key is fetched with the host's curl/wget into /etc/apt/keyrings/SLUG.asc|gpg.
//! Files are written through `fsutil`'s atomic writer, so an unchanged stanza is ok.

use super::fsutil::{self, Attrs, Step};
use super::{Ctx, ModuleError, Outcome, args, get_url};
use crate::plan::Vars;
use serde_json::Value;
use std::path::{Path, PathBuf};

const BOOLS: &[&str] = &[
    "allow_downgrade_to_insecure",
    "allow_insecure",
    "allow_weak",
    "by_hash",
    "check_date",
    "check_valid_until",
    "enabled",
    "pdiffs",
    "trusted",
];
const LISTS: &[&str] = &[
    "architectures",
    "components",
    "languages",
    "suites",
    "targets",
    "types",
    "uris",
];
const STRS: &[&str] = &["inrelease_path", "name", "signed_by"];
const INTS: &[&str] = &["date_max_future"];
const OTHERS: &[&str] = &["mode", "state"];

/// Where the files go; the system's places, other directories in tests.
struct Places {
    sources_d: PathBuf,
    keyrings: PathBuf,
}

/// `deb822_repository`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let places = Places {
        sources_d: "/etc/apt/sources.list.d".into(),
        keyrings: "/etc/apt/keyrings".into(),
    };
    fsutil::finish(run_at(a, ctx, &places))
}

/// A field's value as the module writes it.
enum Field {
    Bool(bool),
    Int(i64),
    List(Vec<String>),
    Str(String),
}

/// The module's arguments, in its (sorted) order, as fields.
fn fields(a: &Vars) -> Result<Vec<(&'static str, Field)>, ModuleError> {
    let known: Vec<&str> = [BOOLS, LISTS, STRS, INTS, OTHERS].concat();
    args::only(a, &known)?;
    let mut out = Vec::new();
    for name in BOOLS {
        if let Some(b) = args::opt_bool(a, name)? {
            out.push((*name, Field::Bool(b)));
        }
    }
    for name in LISTS {
        let list = match a.get(*name) {
            None | Some(Value::Null) => {
                if *name == "types" {
                    vec!["deb".to_string()]
                } else {
                    continue;
                }
            }
            // Ansible's list type splits a string at its commas.
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Some(_) => args::str_list(a, name)?,
        };
        if *name == "types"
            && let Some(bad) = list
                .iter()
                .find(|t| !matches!(t.as_str(), "deb" | "deb-src"))
        {
            return Err(ModuleError::BadArgs(format!(
                "value of types must be one or more of: deb, deb-src. Got no match for: {bad}"
            )));
        }
        out.push((*name, Field::List(list)));
    }
    for name in STRS {
        if let Some(s) = args::opt_str(a, name)? {
            out.push((*name, Field::Str(s)));
        }
    }
    for name in INTS {
        match a.get(*name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| {
                        ModuleError::BadArgs(format!(
                            "argument '{name}' is of type {} and we were unable to convert to int",
                            crate::lookups::py_repr(v)
                        ))
                    })?;
                out.push((*name, Field::Int(n)));
            }
        }
    }
    out.sort_by_key(|(name, _)| *name);
    Ok(out)
}

/// The file name part the module derives from `name`: lower case, runs of `_` and
/// spaces as `-`, then anything but `a-z`, `0-9` and `-` dropped.
fn slug(name: &str) -> String {
    let mut dashed = String::new();
    let mut in_run = false;
    for c in name.to_lowercase().chars() {
        if c == '_' || c.is_whitespace() {
            if !in_run {
                dashed.push('-');
            }
            in_run = true;
        } else {
            dashed.push(c);
            in_run = false;
        }
    }
    dashed
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect()
}

/// A field's name in the stanza (the module's `format_field_name`: Python's `title()`
/// of the name with `-` for `_`).
fn field_name(name: &str) -> String {
    match name {
        "name" => return "X-Repolib-Name".into(),
        "uris" => return "URIs".into(),
        _ => {}
    }
    let mut out = String::new();
    let mut start = true;
    for c in name.replace('_', "-").chars() {
        if c.is_alphabetic() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

/// A value over several lines, as deb822 continuation lines (the module's
/// `format_multiline`: each stripped and indented, an empty one as `.`).
fn multiline(v: &str) -> String {
    let lines: Vec<String> = v
        .trim()
        .lines()
        .map(|l| {
            let l = l.trim();
            format!("    {}", if l.is_empty() { "." } else { l })
        })
        .collect();
    format!("\n{}", lines.join("\n"))
}

/// What `signed_by` names, and what the stanza says for it.
struct Key {
    /// The field's value.
    value: String,
    /// `key_filename`: a key file given or written.
    file: Option<PathBuf>,
    changed: bool,
}

/// Python's `urlparse(v).scheme`: letters first, then letters, digits, `+`, `-`, `.`,
/// before the first `:`.
fn has_scheme(v: &str) -> bool {
    v.split_once(':').is_some_and(|(s, _)| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The module's `write_signed_by_key`: a file's path is used as it is, a URL's key is
/// fetched and written to the keyrings directory (0644, the directory 0755 root's), and
/// anything else (an inline key) is the field's value itself.
fn signed_by(v: &str, slug: &str, places: &Places, ctx: &Ctx<'_>) -> Step<Key> {
    if Path::new(v).is_file() {
        return Ok(Key {
            value: v.to_string(),
            file: Some(v.into()),
            changed: false,
        });
    }
    if !has_scheme(v) {
        return Ok(Key {
            value: v.to_string(),
            file: None,
            changed: false,
        });
    }
    let data = get_url::download(v, ctx).map_err(|e| {
        fsutil::failed(Outcome::fail(format!("Could not fetch signed_by key: {e}")))
    })?;
    if data.is_empty() {
        return Ok(Key {
            value: v.to_string(),
            file: Some(v.into()),
            changed: false,
        });
    }
    let armored = data
        .windows(PGP_ARMOR.len())
        .any(|w| w == PGP_ARMOR.as_bytes());
    let file = places
        .keyrings
        .join(format!("{slug}.{}", if armored { "asc" } else { "gpg" }));
    let mut changed = false;
    if std::fs::read(&file).ok().as_deref() != Some(data.as_slice()) {
        changed |= keyrings_dir(&places.keyrings, ctx)?;
    }
    let attrs = Attrs {
        mode: Some(0o644),
        ..Attrs::default()
    };
    changed |= write(&file, &data, attrs, ctx)?;
    Ok(Key {
        value: file.display().to_string(),
        file: Some(file),
        changed,
    })
}

const PGP_ARMOR: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

/// The module's `ensure_keyrings_dir`: there, 0755 and root's.
fn keyrings_dir(dir: &Path, ctx: &Ctx<'_>) -> Step<bool> {
    let mut changed = false;
    if !dir.is_dir() {
        changed = true;
        if ctx.check_mode {
            return Ok(true);
        }
        std::fs::create_dir(dir).map_err(|e| fsutil::io_fail("create the directory", dir, &e))?;
    }
    let want = Attrs {
        mode: Some(0o755),
        uid: Some(0),
        gid: Some(0),
        ..Attrs::default()
    };
    Ok(!fsutil::apply_attrs(dir, &want, true, ctx.check_mode)?.is_empty() || changed)
}

/// Writes `content` to `path` (or in check mode says whether it would); whether it
/// changed, content or mode.
fn write(path: &Path, content: &[u8], attrs: Attrs, ctx: &Ctx<'_>) -> Step<bool> {
    Ok(fsutil::write_config(path, content, attrs, ctx)?.changed)
}

fn run_at(a: &Vars, ctx: &Ctx<'_>, places: &Places) -> Step<Outcome> {
    let fields = fields(a)?;
    let Some(name) = args::opt_str(a, "name")? else {
        return Err(ModuleError::BadArgs("missing required arguments: name".into()).into());
    };
    let state = args::opt_str(a, "state")?.unwrap_or_else(|| "present".into());
    if !matches!(state.as_str(), "present" | "absent") {
        return Err(ModuleError::BadArgs(format!(
            "value of state must be one of: present, absent, got: {state}"
        ))
        .into());
    }
    let mode = args::opt_mode(a, "mode")?.unwrap_or(0o644);
    let slug = slug(&name);
    let dest = places.sources_d.join(format!("{slug}.sources"));
    let shown = |p: &Path| p.display().to_string();

    if state == "absent" {
        let mut changed = false;
        let keys = ["asc", "gpg"].map(|ext| places.keyrings.join(format!("{slug}.{ext}")));
        for path in std::iter::once(&dest).chain(keys.iter()) {
            if fsutil::lstat(path)?.is_some() {
                changed = true;
                if !ctx.check_mode {
                    std::fs::remove_file(path).map_err(|e| fsutil::io_fail("remove", path, &e))?;
                }
            }
        }
        // The module registers the last key file it looked for.
        return Ok(Outcome::changed(changed)
            .with("repo", Value::Null)
            .with("dest", shown(&dest))
            .with("key_filename", shown(&keys[1])));
    }

    let mut changed = false;
    let mut key_file = None;
    let mut repo = String::new();
    for (name, field) in fields {
        let mut value = match field {
            Field::Bool(b) => (if b { "yes" } else { "no" }).to_string(),
            Field::Int(n) => n.to_string(),
            Field::List(l) => l.join(" "),
            Field::Str(s) if name == "signed_by" => {
                let key = signed_by(&s, &slug, places, ctx)?;
                changed |= key.changed;
                key_file = key.file;
                key.value
            }
            Field::Str(s) => s,
        };
        if value.contains('\n') {
            value = multiline(&value);
        }
        // python-debian's dump: no space after the colon before an empty value or one
        // that starts on the next line.
        let sep = if value.is_empty() || value.starts_with('\n') {
            ":"
        } else {
            ": "
        };
        repo.push_str(&format!("{}{sep}{value}\n", field_name(name)));
    }
    let attrs = Attrs {
        mode: Some(mode),
        ..Attrs::default()
    };
    changed |= write(&dest, repo.as_bytes(), attrs, ctx)?;
    Ok(Outcome::changed(changed)
        .with("repo", repo)
        .with("dest", shown(&dest))
        .with(
            "key_filename",
            key_file.map_or(Value::Null, |p| Value::from(shown(&p))),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn repo(dir: &Path, args: Value, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        let places = Places {
            sources_d: dir.join("sources.list.d"),
            keyrings: dir.join("keyrings"),
        };
        let a: Vars = serde_json::from_value(args).unwrap();
        fsutil::finish(run_at(&a, &t.ctx(check, false), &places)).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// ansible-core's own target's first steps, on a temporary directory: the stanza's
    /// text is the one that target expects.
    #[test]
    fn a_stanza_is_written_once_in_the_modules_order() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sources.list.d")).unwrap();
        let args = json!({"name": "ansible-test focal archive",
                          "uris": "http://us.archive.ubuntu.com/ubuntu",
                          "suites": ["focal", "focal-updates"],
                          "components": ["main", "restricted"], "date_max_future": 10});
        let file = t
            .path()
            .join("sources.list.d/ansible-test-focal-archive.sources");
        let dry = repo(t.path(), args.clone(), true);
        assert!(dry.changed && !file.exists(), "{dry:?}");
        let out = repo(t.path(), args.clone(), false);
        assert!(out.changed && !out.failed, "{out:?}");
        let expected = "Components: main restricted\nDate-Max-Future: 10\nX-Repolib-Name: ansible-test focal archive\nSuites: focal focal-updates\nTypes: deb\nURIs: http://us.archive.ubuntu.com/ubuntu\n";
        assert_eq!(out.data["repo"], json!(expected));
        assert_eq!(out.data["dest"], json!(file.display().to_string()));
        assert_eq!(out.data["key_filename"], Value::Null);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
        assert_eq!(mode(&file), 0o644);
        assert!(!repo(t.path(), args.clone(), false).changed);
        assert!(!repo(t.path(), args.clone(), true).changed);

        let mut m = args.clone();
        m["mode"] = json!("0600");
        assert!(repo(t.path(), m, false).changed);
        assert_eq!(mode(&file), 0o600);

        let gone = json!({"name": "ansible-test focal archive", "state": "absent"});
        assert!(repo(t.path(), gone.clone(), true).changed);
        assert!(file.exists());
        let out = repo(t.path(), gone.clone(), false);
        assert!(out.changed && !file.exists());
        assert_eq!(out.data["repo"], Value::Null);
        assert!(!repo(t.path(), gone, false).changed);
    }

    #[test]
    fn an_inline_key_is_indented_into_the_stanza() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sources.list.d")).unwrap();
        let key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEYCQjIxYJ\n=IE0r\n-----END PGP PUBLIC KEY BLOCK-----";
        let out = repo(
            t.path(),
            json!({"name": "ansible-test", "types": "deb", "uris": "https://deb.debian.org",
                   "suites": "stable", "components": ["main", "contrib"], "signed_by": key,
                   "enabled": false}),
            false,
        );
        assert_eq!(
            out.data["repo"],
            json!(
                "Components: main contrib\nEnabled: no\nX-Repolib-Name: ansible-test\nSigned-By:\n    -----BEGIN PGP PUBLIC KEY BLOCK-----\n    .\n    mDMEYCQjIxYJ\n    =IE0r\n    -----END PGP PUBLIC KEY BLOCK-----\nSuites: stable\nTypes: deb\nURIs: https://deb.debian.org\n"
            )
        );
        assert_eq!(out.data["key_filename"], Value::Null);
    }

    /// A key given by path is named as it is; by a `file:` URL it is fetched (through
    /// the host's curl, as any URL) into the keyrings directory, which is made 0755.
    #[test]
    fn keys_by_path_and_by_url() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sources.list.d")).unwrap();
        let key = t.path().join("k.gpg");
        std::fs::write(&key, b"\x99\x01binary key").unwrap();
        let by_path = repo(
            t.path(),
            json!({"name": "k", "uris": "http://x", "signed_by": key.display().to_string()}),
            false,
        );
        assert_eq!(
            by_path.data["key_filename"],
            json!(key.display().to_string())
        );
        assert!(
            by_path.data["repo"]
                .as_str()
                .unwrap()
                .contains(&format!("Signed-By: {}\n", key.display()))
        );
        if get_url::download(
            "file:///dev/null",
            &crate::modules::TestCtx::new().ctx(false, false),
        )
        .is_err()
        {
            eprintln!("skipped: no curl or wget");
            return;
        }
        let url = format!("file://{}", key.display());
        let args = json!({"name": "By Url", "uris": "http://x", "signed_by": url});
        let out = repo(t.path(), args.clone(), false);
        let written = t.path().join("keyrings/by-url.gpg");
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            out.data["key_filename"],
            json!(written.display().to_string())
        );
        assert_eq!(std::fs::read(&written).unwrap(), b"\x99\x01binary key");
        assert_eq!(mode(&written), 0o644);
        assert_eq!(mode(&t.path().join("keyrings")), 0o755);
        assert!(!repo(t.path(), args, false).changed);
        let gone = repo(
            t.path(),
            json!({"name": "By Url", "state": "absent"}),
            false,
        );
        assert!(gone.changed && !written.exists());
    }

    #[test]
    fn names_and_arguments() {
        assert_eq!(
            slug("Ansible_Test  focal/archive!"),
            "ansible-test-focalarchive"
        );
        assert_eq!(
            field_name("allow_downgrade_to_insecure"),
            "Allow-Downgrade-To-Insecure"
        );
        assert_eq!(field_name("inrelease_path"), "Inrelease-Path");
        assert!(!has_scheme(
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\nComment: x"
        ));
        assert!(has_scheme("https://example.org/k.gpg"));
        let t = tempfile::tempdir().unwrap();
        let a: Vars = serde_json::from_value(json!({"name": "x", "types": ["rpm"]})).unwrap();
        let places = Places {
            sources_d: t.path().into(),
            keyrings: t.path().into(),
        };
        let tc = crate::modules::TestCtx::new();
        assert!(matches!(
            run_at(&a, &tc.ctx(false, false), &places),
            Err(fsutil::Stop::Bad(ModuleError::BadArgs(m))) if m.contains("deb, deb-src")
        ));
    }
}
