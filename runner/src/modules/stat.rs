//! The stat module: registers `stat` with what ansible.builtin.stat reports about a
//! path. Never changes anything, so it is always ok and behaves the same in check mode.
//!
//! `checksum` is SHA-1 by default, or md5, sha224, sha256, sha384 or sha512 as
//! `checksum_algorithm` asks (Ansible's names).
//! `mimetype` and `charset` come from the host's `file` tool, as Ansible's do
//! (`get_mime`, on by default; `unknown` without the tool).
//! Not reported: `readable`/`writeable`/`executable` (they need access(2)) and
//! attributes (`get_attributes` is accepted and ignored).

use super::fsutil::{self, Step};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value, json};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

const KNOWN: &[&str] = &[
    "path",
    "follow",
    "get_checksum",
    "checksum_algorithm",
    "get_mime",
    "get_attributes",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let path = args::req_str(a, "path")?;
    let follow = args::bool_or(a, "follow", false)?;
    let get_checksum = args::bool_or(a, "get_checksum", true)?;
    let get_mime = args::bool_or(a, "get_mime", true)?;
    args::bool_or(a, "get_attributes", true)?;
    let algorithm = args::opt_str(a, "checksum_algorithm")?
        .unwrap_or_else(|| "sha1".to_string())
        .to_ascii_lowercase();
    if crate::digest::Hasher::named(&algorithm).is_none() {
        return Err(ModuleError::BadArgs(format!(
            "argument 'checksum_algorithm' must be one of md5, sha1, sha224, sha256, sha384, sha512, got '{algorithm}'"
        ))
        .into());
    }
    let p = Path::new(&path);
    let meta = if follow {
        fs::metadata(p)
    } else {
        fs::symlink_metadata(p)
    };
    let m = match meta {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::ok().with("stat", json!({"exists": false})));
        }
        Err(e) => return Err(fsutil::io_fail("stat", p, &e)),
    };
    let mut s = describe(&path, &m);
    if m.file_type().is_symlink() {
        let target = fs::read_link(p).map_err(|e| fsutil::io_fail("read", p, &e))?;
        s.insert("lnk_target".into(), target.display().to_string().into());
        let source = fs::canonicalize(p).map_or(Value::Null, |r| r.display().to_string().into());
        s.insert("lnk_source".into(), source);
    }
    if get_checksum && m.is_file() {
        // An unreadable file has no checksum; stat still succeeds, as in Ansible.
        if let Some(Ok(sum)) = crate::digest::file_hex(&algorithm, p) {
            s.insert("checksum".into(), sum.into());
        }
    }
    if get_mime {
        let (mimetype, charset) = mime(p, ctx);
        s.insert("mimetype".into(), mimetype.into());
        s.insert("charset".into(), charset.into());
    }
    Ok(Outcome::ok().with("stat", Value::Object(s)))
}

/// What `file --mime-type --mime-encoding` says of `path` (Ansible's way), as
/// `(mimetype, charset)`; `unknown` for both when the tool is missing or says nothing
/// usable.
fn mime(path: &Path, ctx: &Ctx<'_>) -> (String, String) {
    let unknown = || ("unknown".to_string(), "unknown".to_string());
    let Some(file) = super::tools::find_bin("file") else {
        return unknown();
    };
    let args = vec![
        "--mime-type".to_string(),
        "--mime-encoding".to_string(),
        // `--` so that a path starting with a dash is a path.
        "--".to_string(),
        path.display().to_string(),
    ];
    match super::tools::run_command(ctx.command(&file), &args, None) {
        Ok(out) if out.rc == 0 => parse_mime(&out.stdout).unwrap_or_else(unknown),
        _ => unknown(),
    }
}

/// `file`'s `path: type/subtype; charset=name` line, split as Ansible splits it (after
/// the last colon, so a colon in the path does not matter).
fn parse_mime(out: &str) -> Option<(String, String)> {
    let (_, rest) = out.trim_end().rsplit_once(':')?;
    let (mimetype, charset) = rest.split_once(';')?;
    let (_, charset) = charset.split_once('=')?;
    Some((mimetype.trim().to_string(), charset.trim().to_string()))
}

/// The fields every existing path gets.
pub(super) fn describe(path: &str, m: &fs::Metadata) -> Map<String, Value> {
    let t = m.file_type();
    let mode = m.mode();
    let bit = |b: u32| mode & b != 0;
    let secs = |s: i64, ns: i64| s as f64 + ns as f64 / 1e9;
    let fields = json!({
        "exists": true,
        "path": path,
        "isdir": t.is_dir(),
        "isreg": t.is_file(),
        "islnk": t.is_symlink(),
        "isblk": t.is_block_device(),
        "ischr": t.is_char_device(),
        "isfifo": t.is_fifo(),
        "issock": t.is_socket(),
        "mode": args::mode_string(mode),
        "uid": m.uid(),
        "gid": m.gid(),
        "pw_name": fsutil::user_name(m.uid()),
        "gr_name": fsutil::group_name(m.gid()),
        "size": m.size(),
        "inode": m.ino(),
        "dev": m.dev(),
        "nlink": m.nlink(),
        "mtime": secs(m.mtime(), m.mtime_nsec()),
        "atime": secs(m.atime(), m.atime_nsec()),
        "ctime": secs(m.ctime(), m.ctime_nsec()),
        "isuid": bit(0o4000),
        "isgid": bit(0o2000),
        "rusr": bit(0o400), "wusr": bit(0o200), "xusr": bit(0o100),
        "rgrp": bit(0o040), "wgrp": bit(0o020), "xgrp": bit(0o010),
        "roth": bit(0o004), "woth": bit(0o002), "xoth": bit(0o001),
    });
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};

    use serde_json::{Value, json};

    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Runs stat with `args` (`{p}` replaced by the temp dir); returns the outcome.
    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("stat", dir, &args, check_mode)
    }

    #[test]
    fn a_regular_file_is_described_with_its_checksum() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "abc").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let out = check(t.path(), json!({"path": "{p}/f"}), false).unwrap();
        assert!(!out.changed && !out.failed && out.diff.is_empty());
        let s = &out.data["stat"];
        assert_eq!(s["exists"], true);
        assert_eq!(s["isreg"], true);
        assert_eq!(s["isdir"], false);
        assert_eq!(s["mode"], "0640");
        assert_eq!(s["size"], 3);
        assert_eq!(s["rusr"], true);
        assert_eq!(s["woth"], false);
        assert_eq!(s["checksum"], "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(s["mtime"].as_f64().unwrap() > 1e9);
        let no_sum = check(
            t.path(),
            json!({"path": "{p}/f", "get_checksum": false}),
            true,
        )
        .unwrap();
        assert!(no_sum.data["stat"].get("checksum").is_none());
        let sha256 = check(
            t.path(),
            json!({"path": "{p}/f", "checksum_algorithm": "sha256"}),
            false,
        )
        .unwrap();
        assert_eq!(
            sha256.data["stat"]["checksum"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_paths_and_directories() {
        let t = tempfile::tempdir().unwrap();
        let out = check(t.path(), json!({"path": "{p}/none"}), false).unwrap();
        assert!(!out.failed && !out.changed);
        assert_eq!(out.data["stat"], json!({"exists": false}));
        let out = check(t.path(), json!({"path": "{p}"}), false).unwrap();
        assert_eq!(out.data["stat"]["isdir"], true);
        assert!(out.data["stat"].get("checksum").is_none());
    }

    #[test]
    fn symlinks_are_described_or_followed() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("target"), "x").unwrap();
        std::os::unix::fs::symlink("target", t.path().join("l")).unwrap();
        let out = check(t.path(), json!({"path": "{p}/l"}), false).unwrap();
        let s = &out.data["stat"];
        assert_eq!(s["islnk"], true);
        assert_eq!(s["lnk_target"], "target");
        let real = fs::canonicalize(t.path().join("target")).unwrap();
        assert_eq!(s["lnk_source"], real.display().to_string());
        let out = check(t.path(), json!({"path": "{p}/l", "follow": true}), false).unwrap();
        assert_eq!(out.data["stat"]["islnk"], false);
        assert_eq!(out.data["stat"]["isreg"], true);
    }

    #[test]
    fn file_tool_output_splits_as_ansible_splits_it() {
        assert_eq!(
            super::parse_mime("/a:b/c: text/plain; charset=us-ascii\n"),
            Some(("text/plain".into(), "us-ascii".into()))
        );
        assert_eq!(super::parse_mime("cannot open"), None);
    }

    /// The stat target asserts `mimetype == 'text/plain'` and a charset: `get_mime` is
    /// on by default, as in Ansible, and off when asked.
    #[test]
    fn stat_reports_mimetype_and_charset_by_default() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "hello\n").unwrap();
        let out = check(t.path(), json!({"path": "{p}/f"}), false).unwrap();
        let s = &out.data["stat"];
        if super::super::tools::find_bin("file").is_some() {
            assert_eq!(s["mimetype"], "text/plain");
            assert_eq!(s["charset"], "us-ascii");
        } else {
            assert_eq!(s["mimetype"], "unknown");
        }
        let out = check(t.path(), json!({"path": "{p}/f", "get_mime": false}), false).unwrap();
        assert!(out.data["stat"].get("mimetype").is_none());
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (json!({}), "path"),
            (json!({"path": "{p}", "follow": "sometimes"}), "follow"),
            (
                json!({"path": "{p}", "checksum_algorithm": "crc32"}),
                "checksum_algorithm",
            ),
            (json!({"path": "{p}", "get_md5": true}), "get_md5"),
        ];
        for (args, name) in cases {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }
}
