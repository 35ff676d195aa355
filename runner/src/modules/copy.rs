//! The copy module: write given content, an embedded file, or (remote_src) a file on
//! the host to a destination, with ansible.builtin.copy's semantics.
//!
//! Not supported (refused as unknown arguments): `validate`, `directory_mode`,
//! `checksum`, `decrypt`; copying whole directories (a `src` ending in `/`) is not
//! supported either: the packer embeds files one by one, by name.

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;

const KNOWN: &[&str] = &[
    "content",
    "src",
    "dest",
    "mode",
    "owner",
    "group",
    "force",
    "backup",
    "follow",
    "remote_src",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// `content` as bytes: a string as is; YAML that parsed into a list or mapping is
/// written as JSON, as Ansible does.
fn content_arg(a: &Vars) -> Result<Option<Vec<u8>>, ModuleError> {
    match a.get("content") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone().into_bytes())),
        Some(v @ (Value::Array(_) | Value::Object(_))) => {
            serde_json::to_vec(v).map(Some).map_err(|e| {
                ModuleError::BadArgs(format!("argument 'content' cannot be written: {e}"))
            })
        }
        Some(other) => Ok(Some(other.to_string().into_bytes())),
    }
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let dest = args::req_str(a, "dest")?;
    if dest.is_empty() {
        return Err(ModuleError::BadArgs("argument 'dest' must not be empty".into()).into());
    }
    let content = content_arg(a)?;
    let src = args::opt_str(a, "src")?;
    let remote_src = args::bool_or(a, "remote_src", false)?;
    let force = args::bool_or(a, "force", true)?;
    let backup = args::bool_or(a, "backup", false)?;
    let follow = args::bool_or(a, "follow", false)?;
    // `mode: preserve` gives the destination the source's mode.
    let preserve = args::opt_str(a, "mode")?.is_some_and(|m| m == "preserve");
    let attrs = if preserve {
        let mut rest = a.clone();
        rest.remove("mode");
        Attrs::from_args(&rest)?
    } else {
        Attrs::from_args(a)?
    };

    let (bytes, src_mode, src_name) = match (content, src) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::BadArgs(
                "arguments 'src' and 'content' are mutually exclusive".into(),
            )
            .into());
        }
        (None, None) => {
            return Err(ModuleError::BadArgs(
                "missing required argument 'src' or 'content'".into(),
            )
            .into());
        }
        (Some(c), None) => (c, None, None),
        (None, Some(s)) if remote_src => {
            let p = std::path::Path::new(&s);
            if p.is_dir() {
                return fail(format!(
                    "remote_src {s} is a directory; copying directories is not supported"
                ));
            }
            let bytes = std::fs::read(p).map_err(|e| fsutil::io_fail("read", p, &e))?;
            let mode = std::fs::metadata(p)
                .ok()
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
            (bytes, mode, Some(s))
        }
        (None, Some(s)) => {
            let f = fsutil::embedded(ctx, &s)?;
            (f.content.clone(), f.mode, Some(s))
        }
    };
    let attrs = if preserve {
        Attrs {
            mode: src_mode,
            ..attrs
        }
    } else {
        attrs
    };
    let dest = fsutil::resolve_dest(&dest, src_name.as_deref())?;
    let req = WriteReq {
        dest: &dest,
        content: &bytes,
        attrs,
        force,
        backup,
        follow,
        src: src_name.as_deref(),
        new_mode: if preserve { src_mode } else { None },
    };
    fsutil::write_file(&req, ctx)
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};
    use crate::plan::{HostFile, Vars};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Runs copy with `args` (`{p}` replaced by the temp dir) and two embedded files.
    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let text = args.to_string().replace("{p}", &dir.display().to_string());
        let args: Vars = serde_json::from_str(&text).unwrap();
        let mut files = BTreeMap::new();
        files.insert(
            "files/app.conf".to_string(),
            HostFile {
                content: b"port=80\n".to_vec(),
                mode: Some(0o640),
            },
        );
        files.insert(
            "files/blob.bin".to_string(),
            HostFile {
                content: vec![0, 1, 2, 255],
                mode: None,
            },
        );
        crate::modules::run_for_test("copy", &args, &files, &json!({}), check_mode)
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn content_is_written_once_with_mode_and_checksum() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("out.txt");
        let args = json!({"content": "hello\n", "dest": "{p}/out.txt", "mode": "0600"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !f.exists());
        assert_eq!(dry.diff[0].before, "");
        assert_eq!(dry.diff[0].after, "hello\n");

        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "hello\n");
        assert_eq!(mode_of(&f), 0o600);
        assert_eq!(
            out.data["checksum"],
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
        assert_eq!(out.data["size"], 6);
        assert_eq!(out.data["mode"], "0600");
        assert_eq!(out.data["state"], "file");
        let again = check(t.path(), args, false).unwrap();
        assert!(!again.changed && again.diff.is_empty(), "{again:?}");
        // No temp files are left beside the destination.
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn changed_content_shows_a_diff_and_keeps_a_backup() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("c");
        fs::write(&f, "old\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o604)).unwrap();
        let args = json!({"content": "new\n", "dest": "{p}/c", "backup": true});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && dry.data.get("backup_file").is_none());
        assert_eq!(fs::read_to_string(&f).unwrap(), "old\n");
        let out = check(t.path(), args, false).unwrap();
        assert_eq!(
            (out.diff[0].before.as_str(), out.diff[0].after.as_str()),
            ("old\n", "new\n")
        );
        assert_eq!(fs::read_to_string(&f).unwrap(), "new\n");
        // A replaced file keeps its mode when none is asked for.
        assert_eq!(mode_of(&f), 0o604);
        let backup = out.data["backup_file"].as_str().unwrap();
        assert!(backup.starts_with(&format!("{}.", f.display())) && backup.ends_with('~'));
        assert_eq!(fs::read_to_string(backup).unwrap(), "old\n");
    }

    #[test]
    fn embedded_src_goes_into_a_directory_dest() {
        let t = tempfile::tempdir().unwrap();
        let args = json!({"src": "files/app.conf", "dest": "{p}/", "mode": "preserve"});
        let out = check(t.path(), args.clone(), false).unwrap();
        let f = t.path().join("app.conf");
        assert!(out.changed, "{out:?}");
        assert_eq!(fs::read(&f).unwrap(), b"port=80\n");
        assert_eq!(mode_of(&f), 0o640);
        assert_eq!(out.data["src"], "files/app.conf");
        assert_eq!(out.diff[0].after_header, "files/app.conf");
        assert!(!check(t.path(), args, false).unwrap().changed);
        // Binary content is not pasted into diffs.
        let bin = check(
            t.path(),
            json!({"src": "files/blob.bin", "dest": "{p}/b"}),
            false,
        )
        .unwrap();
        assert!(bin.diff[0].after.contains("binary"));
    }

    #[test]
    fn mode_only_change_is_changed_without_rewriting() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("m");
        fs::write(&f, "same").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let args = json!({"content": "same", "dest": "{p}/m", "mode": "0644"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && mode_of(&f) == 0o600);
        assert!(dry.diff[0].after.contains("mode: 0644"));
        assert!(check(t.path(), args.clone(), false).unwrap().changed);
        assert_eq!(mode_of(&f), 0o644);
        assert!(!check(t.path(), args, false).unwrap().changed);
    }

    #[test]
    fn force_no_keeps_an_existing_file() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("k");
        fs::write(&f, "mine").unwrap();
        let out = check(
            t.path(),
            json!({"content": "theirs", "dest": "{p}/k", "force": false}),
            false,
        )
        .unwrap();
        assert!(!out.changed && !out.failed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "mine");
    }

    #[test]
    fn error_paths_fail_with_clear_messages() {
        let t = tempfile::tempdir().unwrap();
        let out = check(
            t.path(),
            json!({"content": "x", "dest": "{p}/no/such/f"}),
            false,
        )
        .unwrap();
        assert!(out.failed);
        assert!(
            out.msg.unwrap().contains("Destination directory"),
            "missing parent"
        );
        assert!(!t.path().join("no").exists());
        let out = check(
            t.path(),
            json!({"src": "files/nope", "dest": "{p}/f"}),
            false,
        )
        .unwrap();
        let msg = out.msg.unwrap();
        assert!(
            out.failed && msg.contains("files/nope") && msg.contains("2 embedded files"),
            "{msg}"
        );
        let out = check(t.path(), json!({"content": "x", "dest": "{p}"}), false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("content"));
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (json!({"content": "x"}), "dest"),
            (json!({"dest": "{p}/f"}), "content"),
            (
                json!({"content": "x", "src": "files/app.conf", "dest": "{p}/f"}),
                "content",
            ),
            (
                json!({"content": "x", "dest": "{p}/f", "mode": "rw"}),
                "mode",
            ),
            (
                json!({"content": "x", "dest": "{p}/f", "backup": "often"}),
                "backup",
            ),
            (
                json!({"content": "x", "dest": "{p}/f", "validate": "true"}),
                "validate",
            ),
        ];
        for (args, name) in cases {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }
}
