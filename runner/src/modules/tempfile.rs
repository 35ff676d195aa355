//! The tempfile module: creates a fresh, private temporary file (0600) or directory
//! (0700) and registers its `path`, as ansible.builtin.tempfile. Always changed.
//!
//! Ansible's tempfile does not support check mode, so there the task is skipped with
//! Ansible's message and nothing is created.

use super::fsutil::{self, Step, fail};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

const KNOWN: &[&str] = &["state", "path", "prefix", "suffix"];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// Eight unpredictable name characters, as Python's tempfile uses.
fn random_part() -> String {
    crate::random::chars(8, b"abcdefghijklmnopqrstuvwxyz0123456789_")
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let state = args::opt_str(a, "state")?.unwrap_or_else(|| "file".into());
    if state != "file" && state != "directory" {
        return Err(ModuleError::BadArgs(format!(
            "argument 'state' must be one of file, directory; got '{state}'"
        ))
        .into());
    }
    let prefix = args::opt_str(a, "prefix")?.unwrap_or_else(|| "ansible.".into());
    let suffix = args::opt_str(a, "suffix")?.unwrap_or_default();
    if prefix.contains('/') || suffix.contains('/') {
        return Err(ModuleError::BadArgs(
            "arguments 'prefix' and 'suffix' must not contain '/'".into(),
        )
        .into());
    }
    let dir = match args::opt_str(a, "path")? {
        Some(p) => PathBuf::from(p),
        None => std::env::temp_dir(),
    };
    if ctx.check_mode {
        let mut o = Outcome::ok().msg("remote module (tempfile) does not support check mode");
        o.skipped = true;
        return Ok(o);
    }
    if !dir.is_dir() {
        return fail(format!(
            "No such file or directory: {} is not a directory",
            dir.display()
        ));
    }
    for _ in 0..16 {
        let path = dir.join(format!("{prefix}{}{suffix}", random_part()));
        let made = if state == "file" {
            fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map(drop)
        } else {
            fs::DirBuilder::new().mode(0o700).create(&path)
        };
        match made {
            Ok(()) => {
                // Ansible's module result describes the path it returns (state,
                // mode, owner, ...), as every module returning `path` does.
                let o = Outcome::changed(true).with("path", path.display().to_string());
                return Ok(fsutil::add_path_info(o, &path, false));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fsutil::io_fail("create a temporary path in", &dir, &e)),
        }
    }
    fail(format!(
        "could not find an unused temporary name in {}",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};

    use serde_json::{Value, json};

    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("tempfile", dir, &args, check_mode)
    }

    #[test]
    fn files_and_directories_are_created_private_and_fresh() {
        let t = tempfile::tempdir().unwrap();
        let args = json!({"path": "{p}", "prefix": "pre.", "suffix": ".tmp"});
        let a = check(t.path(), args.clone(), false).unwrap();
        let b = check(t.path(), args, false).unwrap();
        assert!(a.changed && b.changed && !a.failed);
        let (pa, pb) = (
            a.data["path"].as_str().unwrap(),
            b.data["path"].as_str().unwrap(),
        );
        assert_ne!(pa, pb);
        let name = Path::new(pa).file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("pre.") && name.ends_with(".tmp"), "{name}");
        assert_eq!(Path::new(pa).parent().unwrap(), t.path());
        let m = fs::metadata(pa).unwrap();
        assert!(m.is_file() && m.permissions().mode() & 0o777 == 0o600);
        let d = check(
            t.path(),
            json!({"path": "{p}", "state": "directory"}),
            false,
        )
        .unwrap();
        let dp = d.data["path"].as_str().unwrap();
        let m = fs::metadata(dp).unwrap();
        assert!(m.is_dir() && m.permissions().mode() & 0o777 == 0o700);
        assert!(
            Path::new(dp)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("ansible.")
        );
    }

    /// The tempfile target asserts `state == 'file'` / `'directory'`: the result
    /// describes the path, as Ansible's module results do.
    #[test]
    fn the_result_describes_the_path_made() {
        let t = tempfile::tempdir().unwrap();
        let f = check(t.path(), json!({"path": "{p}"}), false).unwrap();
        assert_eq!(f.data["state"], "file");
        assert_eq!(f.data["mode"], "0600");
        assert_eq!(f.data["size"], 0);
        let d = check(
            t.path(),
            json!({"path": "{p}", "state": "directory"}),
            false,
        )
        .unwrap();
        assert_eq!(d.data["state"], "directory");
        assert_eq!(d.data["mode"], "0700");
    }

    #[test]
    fn check_mode_is_skipped_and_creates_nothing() {
        let t = tempfile::tempdir().unwrap();
        let out = check(t.path(), json!({"path": "{p}"}), true).unwrap();
        assert!(out.skipped && !out.changed);
        assert!(out.msg.unwrap().contains("check mode"));
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_directory_fails_and_bad_arguments_are_named() {
        let t = tempfile::tempdir().unwrap();
        let out = check(t.path(), json!({"path": "{p}/none"}), false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("none"));
        for (args, name) in [
            (json!({"state": "link"}), "state"),
            (json!({"prefix": "a/b"}), "prefix"),
            (json!({"dir": "/tmp"}), "dir"),
        ] {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }
}
