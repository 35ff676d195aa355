//! The slurp module: registers a file's content base64-encoded (`content`, `encoding`,
//! `source`), as ansible.builtin.slurp. Only reads, so it is always ok, also in check mode.

use super::fsutil::{self, Step, fail};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::Path;

const KNOWN: &[&str] = &["src", "path"];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, _ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let src = match args::opt_str(a, "src")? {
        Some(s) => s,
        None => args::req_str(a, "path")
            .map_err(|_| ModuleError::BadArgs("missing required argument 'src'".to_string()))?,
    };
    let p = Path::new(&src);
    // Ansible's messages, by what reading says (permission is checked before a
    // directory is noticed: an unreadable directory is "not readable").
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) => {
            use std::io::ErrorKind;
            return fail(match e.kind() {
                ErrorKind::NotFound => format!("file not found: {src}"),
                ErrorKind::PermissionDenied => format!("file is not readable: {src}"),
                ErrorKind::IsADirectory => {
                    format!("source is a directory and must be a file: {src}")
                }
                _ => format!(
                    "unable to slurp file: [Errno {}] {}: '{src}'",
                    e.raw_os_error().unwrap_or(0),
                    python_strerror(&e)
                ),
            });
        }
    };
    Ok(Outcome::ok()
        .with("content", crate::hex::base64(&bytes))
        .with("encoding", "base64")
        .with("source", src))
}

/// The error's text without Rust's " (os error N)" suffix, as Python's strerror.
fn python_strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error") {
        Some(i) => text.get(..i).unwrap_or(&text).to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};

    use serde_json::{Value, json};

    use std::fs;
    use std::path::Path;

    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("slurp", dir, &args, check_mode)
    }

    /// The slurp target's failures, each with Ansible's message.
    #[test]
    fn failures_say_why_as_ansible_does() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("d")).unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let msg = |src: &str| {
            let out = check(t.path(), json!({"src": src}), false).unwrap();
            assert!(out.failed && !out.changed);
            out.msg.unwrap()
        };
        assert!(msg("{p}/none").starts_with("file not found:"));
        assert!(msg("{p}/d").starts_with("source is a directory and must be a file:"));
        assert!(msg("{p}/f/x").starts_with("unable to slurp file: [Errno 20] Not a directory"));
    }

    #[test]
    fn content_is_base64_and_matches_a_real_encoder() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("blob");
        let bytes: Vec<u8> = (0..=255u8).chain([7, 8]).collect();
        fs::write(&f, &bytes).unwrap();
        for check_mode in [false, true] {
            let out = check(t.path(), json!({"src": "{p}/blob"}), check_mode).unwrap();
            assert!(!out.changed && !out.failed);
            assert_eq!(out.data["encoding"], "base64");
            assert_eq!(out.data["source"], f.display().to_string());
            // base64(1) from coreutils is the reference.
            let want = std::process::Command::new("base64")
                .args(["-w0", f.to_str().unwrap()])
                .output()
                .unwrap();
            assert_eq!(
                out.data["content"].as_str().unwrap(),
                String::from_utf8(want.stdout).unwrap()
            );
        }
        let alias = check(t.path(), json!({"path": "{p}/blob"}), false).unwrap();
        assert!(!alias.failed);
    }

    #[test]
    fn missing_files_and_directories_fail() {
        let t = tempfile::tempdir().unwrap();
        let out = check(t.path(), json!({"src": "{p}/none"}), false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("file not found"));
        let out = check(t.path(), json!({"src": "{p}"}), false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("directory"));
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        for (args, name) in [
            (json!({}), "src"),
            (json!({"src": "{p}", "encoding": "x"}), "encoding"),
        ] {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }
}
