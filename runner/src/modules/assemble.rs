//! assemble: a file made of a directory's fragments (sorted by name, optionally filtered
//! by a pattern, with a delimiter between them), as ansible.builtin.assemble's module
//! (`remote_src: true`, fragments on the host) and action plugin (`remote_src: false`,
//! fragments from the controller, carried in the payload) make it; written through
//! `fsutil`'s atomic writer with the file's attributes, optional backup and `validate`.

use super::fsutil::{self, Attrs, Step, WriteReq, fail, failed};
use super::tools;
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use regex::Regex;
use serde_json::json;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "src",
    "dest",
    "delimiter",
    "backup",
    "remote_src",
    "regexp",
    "ignore_hidden",
    "validate",
    "decrypt",
    "follow",
    "mode",
    "owner",
    "group",
    "seuser",
    "serole",
    "setype",
    "selevel",
    "unsafe_writes",
    "attributes",
];

/// `assemble`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    // The action plugin declines check mode as a whole.
    if ctx.check_mode {
        return Ok(Outcome {
            skipped: true,
            ..Outcome::default()
        }
        .msg("check mode is not supported for this operation"));
    }
    let (Some(src), Some(dest)) = (args::opt_str(a, "src")?, args::opt_str(a, "dest")?) else {
        return fail("src and dest are required");
    };
    let remote_src = args::bool_or(a, "remote_src", true)?;
    let delimiter = args::opt_str(a, "delimiter")?;
    let ignore_hidden = args::bool_or(a, "ignore_hidden", false)?;
    let backup = args::bool_or(a, "backup", false)?;
    let validate = args::opt_str(a, "validate")?;
    let follow = args::bool_or(a, "follow", false)?;
    let attrs = Attrs::from_args(a)?;
    let regexp = match args::opt_str(a, "regexp")? {
        Some(r) => Some(
            Regex::new(&r)
                .map_err(|e| failed(Outcome::fail(format!("Invalid Regexp ({e}) in \"{r}\""))))?,
        ),
        None => None,
    };
    if let Some(v) = &validate
        && !v.contains("%s")
    {
        return fail(format!("validate must contain %s: {v}"));
    }
    let dest = expand_user(&dest);

    let fragments = if remote_src {
        let dir = expand_user(&src);
        if !dir.exists() {
            return fail(format!("Source ({src}) does not exist"));
        }
        if !dir.is_dir() {
            return fail(format!("Source ({src}) is not a directory"));
        }
        host_fragments(&dir)?
    } else {
        embedded_fragments(ctx, &src)?
    };
    let content = assemble(
        &fragments,
        delimiter.as_deref(),
        regexp.as_ref(),
        ignore_hidden,
    );
    let checksum = fsutil::sha1_hex(&content);

    let old = std::fs::read(&dest).ok();
    let mut out = Outcome::ok();
    let changed = old.as_deref() != Some(content.as_slice());
    if changed {
        if let Some(v) = &validate {
            let (rc, checked) = validated(ctx, v, &content)?;
            out = out.with("validation", checked.clone());
            if rc != 0 {
                let err = checked.get("stderr").and_then(|e| e.as_str()).unwrap_or("");
                return Err(failed(Outcome::fail(format!(
                    "failed to validate: rc:{rc} error:{err}"
                ))));
            }
        }
        let req = WriteReq {
            dest: &dest,
            content: &content,
            attrs,
            force: true,
            backup,
            follow,
            src: None,
            new_mode: None,
        };
        let written = fsutil::write_file(&req, ctx)?;
        if let Some(b) = written.data.get("backup_file") {
            out = out.with("backup_file", b.clone());
        }
        if ctx.diff_mode {
            out.diff.push(Diff {
                before_header: dest.display().to_string(),
                after_header: if remote_src {
                    dest.display().to_string()
                } else {
                    src.clone()
                },
                before: old.as_deref().map(fsutil::diff_text).unwrap_or_default(),
                after: fsutil::diff_text(&content),
            });
        }
        out.changed = true;
    } else {
        let changes = fsutil::apply_attrs(&dest, attrs, follow, false)?;
        if !changes.is_empty() {
            out.changed = true;
            if ctx.diff_mode {
                out.diff.push(changes.to_diff(&dest));
            }
        }
    }
    let md5 = crate::digest::hex("md5", &content).map_or(serde_json::Value::Null, Into::into);
    let out = out
        .msg("OK")
        .with("src", src)
        .with("dest", dest.display().to_string())
        .with("checksum", checksum)
        .with("md5sum", md5);
    Ok(fsutil::add_path_info(out, &dest, true))
}

/// `~/...` against the home of the user the module runs as.
fn expand_user(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => PathBuf::from(h).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The regular files directly in `dir` (links followed), by name.
fn host_fragments(dir: &Path) -> Step<Vec<(String, Vec<u8>)>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| fsutil::io_fail("read", dir, &e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| fsutil::io_fail("read", &path, &e))?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// The controller directory's files the payload carries (as `<src>/<name>`), those
/// directly in it, by name.
fn embedded_fragments(ctx: &Ctx<'_>, src: &str) -> Step<Vec<(String, Vec<u8>)>> {
    let prefix = format!("{}/", src.trim_end_matches('/'));
    let out: Vec<(String, Vec<u8>)> = ctx
        .files
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, f)| {
            let name = k.strip_prefix(&prefix)?;
            (!name.contains('/')).then(|| (name.to_string(), f.content.clone()))
        })
        .collect();
    if out.is_empty() && !ctx.files.keys().any(|k| k.starts_with(&prefix)) {
        return fail(format!("Source ({src}) is not a directory"));
    }
    Ok(out)
}

/// The module's `assemble_from_fragments`: a newline after a fragment that lacks one,
/// the delimiter (escapes decoded, newline-terminated) between fragments.
fn assemble(
    fragments: &[(String, Vec<u8>)],
    delimiter: Option<&str>,
    regexp: Option<&Regex>,
    ignore_hidden: bool,
) -> Vec<u8> {
    let delimiter = delimiter.filter(|d| !d.is_empty()).map(escape_decode);
    let mut out = Vec::new();
    let mut first = true;
    let mut add_newline = false;
    for (name, content) in fragments {
        if regexp.is_some_and(|r| !r.is_match(name)) || (ignore_hidden && name.starts_with('.')) {
            continue;
        }
        if add_newline {
            out.push(b'\n');
        }
        if !first && let Some(d) = &delimiter {
            out.extend_from_slice(d);
            if d.last() != Some(&b'\n') {
                out.push(b'\n');
            }
        }
        out.extend_from_slice(content);
        first = false;
        add_newline = !content.ends_with(b"\n");
    }
    out
}

/// Python's `codecs.escape_decode`: backslash escapes of a bytes literal.
fn escape_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else {
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match b.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => match b
                .get(i..i + 2)
                .and_then(|h| crate::hex::decode(&String::from_utf8_lossy(h)))
            {
                Some(v) => {
                    out.extend(v);
                    i += 2;
                }
                None => out.extend_from_slice(b"\\x"),
            },
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\n' => {}
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    out
}

/// Runs `validate` (its `%s` replaced by a private copy of the new content), split into
/// words as Ansible's `run_command` splits a string, never through a shell.
fn validated(ctx: &Ctx<'_>, validate: &str, content: &[u8]) -> Step<(i32, serde_json::Value)> {
    let dir = tools::PrivateDir::for_task("assemble", ctx.run_as)
        .map_err(|e| fsutil::io_fail("create", &std::env::temp_dir(), &e))?;
    let file = dir
        .write("src", content, 0o600)
        .map_err(|e| fsutil::io_fail("write", dir.path(), &e))?;
    let line = validate.replace("%s", &file.display().to_string());
    let words = super::split_command_line(&line)
        .map_err(|e| failed(Outcome::fail(format!("validate: {e}"))))?;
    let Some((program, rest)) = words.split_first() else {
        return fail("validate is empty");
    };
    let out = tools::run_command(ctx.command(program), rest, None)
        .map_err(|e| failed(Outcome::fail(format!("validate: {program}: {e}"))))?;
    Ok((
        out.rc,
        json!({"rc": out.rc, "stdout": out.stdout, "stderr": out.stderr}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;
    use serde_json::Value;

    fn asm(dir: &Path, args: Value, check: bool) -> Outcome {
        run_in_dir_for_test("assemble", dir, &args, check).unwrap()
    }

    fn fragments(dir: &Path) {
        std::fs::create_dir(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/fragment1"), "one\n").unwrap();
        std::fs::write(dir.join("src/fragment2"), "two").unwrap();
        std::fs::write(dir.join("src/fragment3"), "three\n").unwrap();
        std::fs::write(dir.join("src/.hidden"), "h\n").unwrap();
    }

    #[test]
    fn fragments_are_joined_in_name_order_once() {
        let d = tempfile::tempdir().unwrap();
        fragments(d.path());
        let args = json!({"src": "{p}/src", "dest": "{p}/out"});
        let o = asm(d.path(), args.clone(), false);
        assert!(o.changed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("out")).unwrap(),
            "h\none\ntwo\nthree\n"
        );
        assert_eq!(
            o.data["checksum"],
            fsutil::sha1_hex(b"h\none\ntwo\nthree\n")
        );
        assert!(!asm(d.path(), args, false).changed);
    }

    #[test]
    fn delimiter_regexp_and_hidden_files() {
        let d = tempfile::tempdir().unwrap();
        fragments(d.path());
        let o = asm(
            d.path(),
            json!({"src": "{p}/src", "dest": "{p}/out", "regexp": "^fragment[1-2]$",
                   "delimiter": "#--- delimiter ---#"}),
            false,
        );
        assert!(o.changed);
        assert_eq!(
            std::fs::read_to_string(d.path().join("out")).unwrap(),
            "one\n#--- delimiter ---#\ntwo"
        );
        asm(
            d.path(),
            json!({"src": "{p}/src", "dest": "{p}/out", "ignore_hidden": true, "delimiter": "--\\n"}),
            false,
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("out")).unwrap(),
            "one\n--\ntwo\n--\nthree\n"
        );
    }

    #[test]
    fn check_mode_is_declined_and_a_missing_source_fails() {
        let d = tempfile::tempdir().unwrap();
        let o = asm(d.path(), json!({"src": "{p}/src", "dest": "{p}/out"}), true);
        assert!(o.skipped);
        let o = asm(
            d.path(),
            json!({"src": "{p}/nope", "dest": "{p}/out"}),
            false,
        );
        assert!(o.failed);
        assert!(o.msg.unwrap().ends_with("does not exist"));
    }

    #[test]
    fn a_failing_validate_leaves_dest_alone() {
        let d = tempfile::tempdir().unwrap();
        fragments(d.path());
        let o = asm(
            d.path(),
            json!({"src": "{p}/src", "dest": "{p}/out", "validate": "false %s"}),
            false,
        );
        assert!(o.failed, "{o:?}");
        assert!(!d.path().join("out").exists());
        let o = asm(
            d.path(),
            json!({"src": "{p}/src", "dest": "{p}/out", "validate": "test -s %s"}),
            false,
        );
        assert!(o.changed && !o.failed, "{o:?}");
    }
}
