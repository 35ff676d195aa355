//! patch (ansible.posix): a unified diff applied to (or, `state: absent`, taken back
//! from) files on the host with the host's GNU `patch`, as that module does: a dry run
//! in reverse first tells whether the patch is in already, then the real run (a dry
//! run in check mode). The patch file comes in the payload, like copy's `src`, unless
//! `remote_src` says it is on the host; the payload's copy is handed to `patch` through
//! a private directory of the task's user. `patch` runs with an argument vector. Its
//! path arguments are expanded (`~`, `$VAR`) by `paths` before it runs.

use super::fsutil::{self, Step, fail};
use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::{Path, PathBuf};

const SPEC: &[(&str, &[&str])] = &[
    ("src", &["patchfile"]),
    ("dest", &["originalfile"]),
    ("basedir", &[]),
    ("strip", &[]),
    ("remote_src", &[]),
    ("backup", &[]),
    ("binary", &[]),
    ("ignore_whitespace", &[]),
    ("state", &[]),
];

/// `patch`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(apply(a, ctx))
}

fn apply(raw: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    let a = args::with_aliases(raw, SPEC)?;
    let src = args::opt_str(&a, "src")?
        .ok_or_else(|| ModuleError::BadArgs("missing required arguments: src".into()))?;
    let dest = args::opt_str(&a, "dest")?;
    let basedir = args::opt_str(&a, "basedir")?;
    if dest.is_none() && basedir.is_none() {
        return Err(
            ModuleError::BadArgs("one of the following is required: dest, basedir".into()).into(),
        );
    }
    let strip = args::opt_int(&a, "strip")?.unwrap_or(0);
    let remote_src = args::bool_or(&a, "remote_src", false)?;
    let backup = args::bool_or(&a, "backup", false)?;
    let binary = args::bool_or(&a, "binary", false)?;
    let ignore_whitespace = args::bool_or(&a, "ignore_whitespace", false)?;
    let state =
        args::opt_choice(&a, "state", &["absent", "present"])?.unwrap_or_else(|| "present".into());

    // The patch file: the host's own, or the payload's written where `patch` (as the
    // task's user) can read it and nobody else can touch it.
    let staging;
    let input: PathBuf = if remote_src {
        if std::fs::File::open(&src).is_err() {
            return fail(format!("src {src} doesn't exist or not readable"));
        }
        std::path::absolute(&src).unwrap_or_else(|_| PathBuf::from(&src))
    } else {
        let file = fsutil::embedded(ctx, &src)?;
        staging = PrivateDir::for_task("patch", ctx.run_as)
            .map_err(|e| fsutil::io_fail("create a directory for", Path::new(&src), &e))?;
        staging
            .write("input.patch", &file.content, 0o600)
            .map_err(|e| fsutil::io_fail("write", Path::new(&src), &e))?
    };
    if let Some(d) = &dest
        && !fsutil::writable(Path::new(d))
    {
        return fail(format!("dest {d} doesn't exist or not writable"));
    }
    if let Some(b) = &basedir
        && !Path::new(b).exists()
    {
        return fail(format!("basedir {b} doesn't exist"));
    }
    let basedir = basedir.unwrap_or_else(|| {
        dest.as_deref()
            .and_then(|d| Path::new(d).parent())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    });
    let Some(bin) = tools::find_bin("patch") else {
        return fail("patch command not found");
    };
    let common = |mut argv: Vec<String>| {
        argv.extend([
            format!("--strip={strip}"),
            format!("--directory={basedir}"),
            format!("--input={}", input.display()),
        ]);
        argv
    };
    let extras = |argv: &mut Vec<String>| {
        if binary {
            argv.push("--binary".into());
        }
        if ignore_whitespace {
            argv.push("--ignore-whitespace".into());
        }
        argv.extend(dest.clone());
    };
    // Already applied (or, for absent, already taken back): the opposite direction
    // would apply cleanly.
    let mut probe = common(vec!["--quiet".into(), "--forward".into()]);
    probe.push("--dry-run".into());
    extras(&mut probe);
    if state == "present" {
        probe.push("--reverse".into());
    }
    let run = |argv: &[String]| {
        tools::run_command(ctx.command(&bin), argv, None)
            .map_err(|e| fsutil::io_fail("run", &bin, &e))
    };
    if run(&probe)?.rc == 0 {
        return Ok(Outcome::changed(false));
    }
    let mut argv = common(
        ["--quiet", "--forward", "--batch", "--reject-file=-"]
            .map(String::from)
            .to_vec(),
    );
    if ctx.check_mode {
        argv.push("--dry-run".into());
    }
    extras(&mut argv);
    if backup {
        argv.extend(["--backup".into(), "--version-control=numbered".into()]);
    }
    if state == "absent" {
        argv.push("--reverse".into());
    }
    let out = run(&argv)?;
    if out.rc != 0 {
        let msg = if out.stderr.is_empty() {
            out.stdout
        } else {
            out.stderr
        };
        return fail(msg);
    }
    Ok(Outcome::changed(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::HostFile;
    use serde_json::json;
    use std::collections::BTreeMap;

    const PATCH: &str = "--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+deux\n";

    fn run_patch(
        args: serde_json::Value,
        files: &BTreeMap<String, HostFile>,
        check: bool,
    ) -> Outcome {
        crate::modules::run_for_test("patch", args.as_object().unwrap(), files, &json!({}), check)
            .unwrap()
    }

    /// Against the host's GNU patch (CI installs it): applied once, recognised as
    /// applied, taken back with `state: absent`; check mode writes nothing; a patch that
    /// does not fit fails with patch's own words.
    #[test]
    fn a_payload_patch_is_applied_once_and_reverted() {
        if tools::find_bin("patch").is_none() {
            assert!(
                std::env::var_os("RUSTLE_ALLOW_SKIP").is_some(),
                "patch is missing: apt-get install patch"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.txt");
        std::fs::write(&f, "one\ntwo\n").unwrap();
        let files = BTreeMap::from([(
            "files/fix.patch".to_string(),
            HostFile {
                content: PATCH.as_bytes().to_vec(),
                mode: None,
            },
        )]);
        let args = json!({"src": "files/fix.patch", "basedir": d.path(), "strip": 1});
        let o = run_patch(args.clone(), &files, true);
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\ntwo\n");
        let o = run_patch(args.clone(), &files, false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\ndeux\n");
        assert!(!run_patch(args.clone(), &files, false).changed);
        let mut absent = args.clone();
        absent["state"] = "absent".into();
        assert!(run_patch(absent.clone(), &files, false).changed);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\ntwo\n");
        assert!(!run_patch(absent, &files, false).changed);
        std::fs::write(&f, "something else\n").unwrap();
        let o = run_patch(args, &files, false);
        assert!(o.failed, "{o:?}");
        assert!(o.msg.unwrap().contains("FAILED"));
        let o = run_patch(
            json!({"src": "/nonexistent.patch", "remote_src": true, "dest": f}),
            &files,
            false,
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("src /nonexistent.patch doesn't exist or not readable")
        );
    }
}
