//! The assemble module: concatenates the fragments of a directory (on the host, or with
//! `remote_src: false` the controller directory the payload carries) into one file,
//! as ansible.builtin.assemble and its action do: names in sorted order, filtered by
//! `regexp` and `ignore_hidden`, a newline added after a fragment that lacks one, the
//! `delimiter` between fragments; the file written through the shared write procedure
//! (backup, mode/owner/group, validate).
//!
//! Ansible's assemble supports no check mode: there the task is skipped.

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Value, json};
use std::fs;
use std::path::Path;

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
    "unsafe_writes",
    "attributes",
    "attr",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let src = args::req_str(a, "src")?;
    let dest = args::req_str(a, "dest")?;
    let delimiter = args::opt_str(a, "delimiter")?;
    let backup = args::bool_or(a, "backup", false)?;
    let remote_src = args::bool_or(a, "remote_src", true)?;
    let ignore_hidden = args::bool_or(a, "ignore_hidden", false)?;
    // Vaulted fragments are decrypted by the packer, never on the host.
    args::bool_or(a, "decrypt", true)?;
    args::bool_or(a, "unsafe_writes", false)?;
    let follow = args::bool_or(a, "follow", false)?;
    let validate = args::opt_str(a, "validate")?;
    if let Some(v) = &validate
        && !v.contains("%s")
    {
        return fail(format!("validate must contain %s: {v}"));
    }
    let regexp = match args::opt_str(a, "regexp")? {
        Some(p) => Some(crate::pyre::Pattern::new(&p).map_err(|e| {
            fsutil::failed(Outcome::fail(format!(
                "Invalid Regexp ({}) in \"{p}\"",
                e.to_string().replace('\n', " ")
            )))
        })?),
        None => None,
    };
    let attrs = Attrs::from_args(a)?;
    if ctx.check_mode {
        let mut o = Outcome::ok().msg("check mode is not supported for this action");
        o.skipped = true;
        return Ok(o);
    }
    let keep = |name: &str| {
        regexp
            .as_ref()
            .is_none_or(|re| re.is_match(name.as_bytes()) == Ok(true))
            && !(ignore_hidden && name.starts_with('.'))
    };
    let fragments = if remote_src {
        host_fragments(&src, &keep)?
    } else {
        embedded_fragments(ctx, &src, &keep)?
    };
    let content = assemble(&fragments, delimiter.as_deref());
    let dest_path = Path::new(&dest);
    if let Some(v) = &validate {
        super::copy::validate_content(v, dest_path, &content, follow, ctx)?;
    }
    let before = fs::read(dest_path).ok();
    let req = WriteReq {
        dest: dest_path,
        content: &content,
        attrs,
        force: true,
        backup,
        follow,
        src: None,
        new_mode: None,
    };
    let mut out = fsutil::write_file(&req, ctx)?;
    // Ansible's action diffs only a file whose content it replaces, as one mapping.
    out.diff.clear();
    if ctx.diff_mode && before.as_deref() != Some(&content[..]) {
        let mut d = serde_json::Map::new();
        d.insert(
            "before".into(),
            before
                .as_deref()
                .map(fsutil::diff_text)
                .unwrap_or_default()
                .into(),
        );
        if before.is_some() {
            d.insert("before_header".into(), dest.clone().into());
        }
        d.insert("after_header".into(), src.clone().into());
        d.insert("after".into(), fsutil::diff_text(&content).into());
        out.data.insert("diff".into(), Value::Object(d));
    }
    Ok(out
        .with("src", src)
        .with("md5sum", json!(md5_hex(&content)))
        .msg("OK"))
}

/// MD5 of bytes as hex: the module's `md5sum`, kept by Ansible for compatibility.
fn md5_hex(data: &[u8]) -> String {
    crate::digest::hex("md5", data).unwrap_or_default()
}

/// The fragments of a directory on the host: regular files (or links to them) directly
/// in it, by name in sorted order.
fn host_fragments(src: &str, keep: &dyn Fn(&str) -> bool) -> Step<Vec<Vec<u8>>> {
    let dir = Path::new(src);
    if !dir.exists() {
        return fail(format!("Source ({src}) does not exist"));
    }
    if !dir.is_dir() {
        return fail(format!("Source ({src}) is not a directory"));
    }
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| fsutil::io_fail("list", dir, &e))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names.iter().filter(|n| keep(n)) {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        out.push(fs::read(&path).map_err(|e| fsutil::io_fail("read", &path, &e))?);
    }
    Ok(out)
}

/// The fragments of a controller directory the payload carries (the executor found it
/// in the search path's `files/`): the files directly in it, by name in sorted order.
fn embedded_fragments(ctx: &Ctx<'_>, src: &str, keep: &dyn Fn(&str) -> bool) -> Step<Vec<Vec<u8>>> {
    let prefix = format!("{}/", src.trim_end_matches('/'));
    let in_dir: Vec<(&str, &[u8])> = ctx
        .files
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, f)| {
            let name = k.get(prefix.len()..)?;
            (!name.contains('/')).then_some((name, f.content.as_slice()))
        })
        .collect();
    let any_under = ctx
        .files
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix));
    if !any_under {
        return fail(format!("Source ({src}) is not a directory"));
    }
    Ok(in_dir
        .into_iter()
        .filter(|(name, _)| keep(name))
        .map(|(_, c)| c.to_vec())
        .collect())
}

/// The fragments joined as Ansible joins them: a newline after a fragment that does not
/// end with one (before the next), the delimiter (escapes such as `\n` decoded, and
/// followed by a newline unless it ends with one) between fragments.
fn assemble(fragments: &[Vec<u8>], delimiter: Option<&str>) -> Vec<u8> {
    let delimiter = delimiter
        .filter(|d| !d.is_empty())
        .map(|d| crate::lookups::decode_escapes(d).into_bytes());
    let mut out = Vec::new();
    let mut add_newline = false;
    for (i, fragment) in fragments.iter().enumerate() {
        if add_newline {
            out.push(b'\n');
        }
        if i > 0
            && let Some(d) = &delimiter
        {
            out.extend_from_slice(d);
            if d.last() != Some(&b'\n') {
                out.push(b'\n');
            }
        }
        out.extend_from_slice(fragment);
        add_newline = !fragment.ends_with(b"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::assemble;
    use crate::modules::run_in_dir_for_test;
    use serde_json::json;
    use std::fs;

    fn frags(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn fragments_join_with_newlines_and_delimiters_as_ansible_joins_them() {
        assert_eq!(assemble(&frags(&["a\n", "b", "c\n"]), None), b"a\nb\nc\n");
        assert_eq!(
            assemble(&frags(&["a", "b\n"]), Some("#--#")),
            b"a\n#--#\nb\n"
        );
        assert_eq!(
            assemble(&frags(&["a\n", "b\n"]), Some("--\\n")),
            b"a\n--\nb\n"
        );
        assert_eq!(assemble(&frags(&[]), Some("x")), b"");
    }

    #[test]
    fn a_directory_on_the_host_is_assembled_in_name_order_then_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("b"), "two\n").unwrap();
        fs::write(src.join("a"), "one").unwrap();
        fs::write(src.join(".hidden"), "h\n").unwrap();
        fs::create_dir(src.join("sub")).unwrap();
        let args = json!({"src": "{p}/src", "dest": "{p}/out", "ignore_hidden": true});
        let first = run_in_dir_for_test("assemble", t.path(), &args, false).unwrap();
        assert!(first.changed && !first.failed, "{first:?}");
        assert_eq!(
            fs::read_to_string(t.path().join("out")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(first.data["state"], "file");
        assert_eq!(
            first.data["checksum"],
            crate::digest::sha1_hex(b"one\ntwo\n")
        );
        let again = run_in_dir_for_test("assemble", t.path(), &args, false).unwrap();
        assert!(!again.changed, "{again:?}");
        let only_b = json!({"src": "{p}/src", "dest": "{p}/b_only", "regexp": "^b$"});
        run_in_dir_for_test("assemble", t.path(), &only_b, false).unwrap();
        assert_eq!(
            fs::read_to_string(t.path().join("b_only")).unwrap(),
            "two\n"
        );
    }

    /// The assemble target asserts `result.diff.before` and `result.diff.after`: one
    /// mapping, as Ansible's action gives it, only in diff mode.
    #[test]
    fn diff_mode_registers_one_mapping() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        fs::write(t.path().join("src/a"), "one\n").unwrap();
        let args = json!({"src": "{p}/src", "dest": "{p}/out"});
        let out = run_in_dir_for_test("assemble", t.path(), &args, false).unwrap();
        assert_eq!(out.data["diff"]["before"], "");
        assert_eq!(out.data["diff"]["after"], "one\n");
        assert!(out.diff.is_empty());
    }

    #[test]
    fn a_missing_source_fails_naming_it_and_check_mode_skips() {
        let t = tempfile::tempdir().unwrap();
        let args = json!({"src": "{p}/none", "dest": "{p}/out"});
        let out = run_in_dir_for_test("assemble", t.path(), &args, false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("does not exist"));
        let out = run_in_dir_for_test("assemble", t.path(), &args, true).unwrap();
        assert!(out.skipped && !t.path().join("out").exists());
    }
}
