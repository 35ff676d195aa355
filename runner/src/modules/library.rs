//! Custom script modules, by Ansible's WANT_JSON convention: a task whose module is
//! not built in runs the payload's embedded file `library/<module>` (the packer puts a
//! plan's library modules there) as `<module> <args-file>`, where the args file holds
//! the task's arguments as JSON, and reads a JSON object from its stdout.
//!
//! The module is written to a private 0700 temp directory with its arguments and run
//! by its own shebang; the directory goes afterwards. The arguments carry Ansible's
//! `_ansible_check_mode`, `_ansible_diff` and `_ansible_module_name`, so a module that
//! supports check mode sees it (one that does not must check it itself, as with
//! Ansible). Result: `changed`, `failed`, `skipped` and `msg` as the module says, every
//! other key registered as is (`ansible_facts` included); output that is not JSON is a
//! failed result quoting it. Python modules using AnsiballZ (`AnsibleModule`) are not
//! supported: only self-contained scripts.

use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::{HostFile, Vars};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where the packer puts custom modules among a host's embedded files.
pub const LIBRARY_PREFIX: &str = "library/";

/// True when `module` is not built in and the embedded files hold `library/<module>`:
/// the executor (and the packer's plan check) can then run it as a custom module.
pub fn is_custom(module: &str, files: &BTreeMap<String, HostFile>) -> bool {
    valid_name(module)
        && !super::is_supported(module)
        && files.contains_key(&format!("{LIBRARY_PREFIX}{module}"))
}

/// A module name that can only name a file directly in `library/`.
fn valid_name(module: &str) -> bool {
    !module.is_empty()
        && !module.starts_with('.')
        && module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// How much of a module's non-JSON output the failure message quotes.
const QUOTE_LEN: usize = 400;

/// Runs the custom module `module` (see [`is_custom`]).
pub(super) fn run(module: &str, a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let Some(file) = ctx.files.get(&format!("{LIBRARY_PREFIX}{module}")) else {
        return Err(ModuleError::Unsupported(module.to_string()));
    };
    let dir = match PrivateDir::for_task("module", ctx.run_as) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Outcome::fail(format!(
                "could not create a temp directory: {e}"
            )));
        }
    };
    let mut payload = a.clone();
    payload.insert("_ansible_check_mode".into(), ctx.check_mode.into());
    payload.insert("_ansible_diff".into(), ctx.diff_mode.into());
    payload.insert("_ansible_module_name".into(), module.into());
    payload.insert("_ansible_no_log".into(), false.into());
    payload.insert("_ansible_verbosity".into(), 0.into());
    payload.insert(
        "_ansible_tmpdir".into(),
        dir.path().display().to_string().into(),
    );
    let json = serde_json::to_vec(&Value::Object(payload))
        .map_err(|e| ModuleError::BadArgs(format!("arguments cannot be written as JSON: {e}")))?;
    let written = dir
        .write("args", &json, 0o600)
        .and_then(|args_path| Ok((dir.write(module, &file.content, 0o700)?, args_path)));
    let (script, args_path) = match written {
        Ok(p) => p,
        Err(e) => {
            return Ok(Outcome::fail(format!(
                "could not write module {module}: {e}"
            )));
        }
    };
    let out = match tools::run_command(
        ctx.command(&script),
        &[args_path.display().to_string()],
        None,
    ) {
        Ok(o) => o,
        Err(e) => {
            return Ok(Outcome::fail(format!(
                "could not run module {module}: {e} (a custom module needs a #! line naming its interpreter)"
            )));
        }
    };
    drop(dir);
    Ok(interpret(module, &out))
}

/// Ansible tolerates noise around a module's JSON (a login banner, a stray echo):
/// the object runs from the first line starting with `{` to the last ending in `}`.
fn json_part(stdout: &str) -> Option<&str> {
    let (mut start, mut end, mut off) = (None, None, 0);
    for line in stdout.split_inclusive('\n') {
        let body = line.trim_end();
        if start.is_none() && body.trim_start().starts_with('{') {
            start = Some(off);
        }
        if start.is_some() && body.ends_with('}') {
            end = Some(off + body.len());
        }
        off += line.len();
    }
    stdout.get(start?..end?)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => args::truthy_str(s).unwrap_or(false),
        _ => false,
    }
}

/// Turns what the module printed into an outcome.
fn interpret(module: &str, out: &tools::Output) -> Outcome {
    let parsed = json_part(&out.stdout).and_then(|j| serde_json::from_str::<Value>(j).ok());
    let Some(Value::Object(mut data)) = parsed else {
        let start: String = out.stdout.chars().take(QUOTE_LEN).collect();
        let shown = if start.trim().is_empty() {
            "(nothing on stdout)".to_string()
        } else {
            format!("its output began: {start}")
        };
        return Outcome::fail(format!(
            "MODULE FAILURE: module {module} did not return a JSON object (rc={}); {shown}",
            out.rc
        ))
        .with("rc", out.rc)
        .with("module_stdout", out.stdout.clone())
        .with("module_stderr", out.stderr.clone());
    };
    let mut o = Outcome::ok();
    o.changed = data.shift_remove("changed").is_some_and(|v| truthy(&v));
    o.skipped = data.shift_remove("skipped").is_some_and(|v| truthy(&v));
    o.failed = match data.shift_remove("failed") {
        Some(v) => truthy(&v),
        // No verdict: a non-zero exit, or a non-zero rc in the result, is a failure
        // (Ansible's rule for results with an rc).
        None => {
            out.rc != 0
                || data
                    .get("rc")
                    .is_some_and(|rc| rc.as_i64().is_some_and(|n| n != 0))
        }
    };
    match data.shift_remove("msg") {
        Some(Value::String(s)) => o.msg = Some(s),
        Some(other) => {
            data.insert("msg".into(), other);
        }
        None if o.failed && out.rc != 0 => {
            o.msg = Some(format!("module {module} exited with rc={}", out.rc));
        }
        None => {}
    }
    if o.failed && !out.stderr.trim().is_empty() {
        data.entry("module_stderr")
            .or_insert_with(|| out.stderr.clone().into());
    }
    o.data = data;
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lib(name: &str, script: &str) -> BTreeMap<String, HostFile> {
        let mut m = BTreeMap::new();
        m.insert(
            format!("library/{name}"),
            HostFile {
                content: script.as_bytes().to_vec(),
                mode: Some(0o755),
            },
        );
        m
    }

    fn run(
        module: &str,
        args: Value,
        files: &BTreeMap<String, HostFile>,
        check: bool,
    ) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, files, &json!({}), check)
    }

    /// Echoes its arguments file back, with where it ran from.
    const ECHO: &str = "#!/bin/sh\n# WANT_JSON\necho 'some banner'\nprintf '{\"changed\": true, \"msg\": \"hi\", \"args\": %s, \"self\": \"%s\", \"argsfile\": \"%s\", \"ansible_facts\": {\"from_module\": 1}}\\n' \"$(cat \"$1\")\" \"$0\" \"$1\"\n";

    #[test]
    fn a_shell_module_gets_json_args_and_returns_json() {
        let files = lib("echo_args", ECHO);
        assert!(is_custom("echo_args", &files));
        assert!(!is_custom("other", &files));
        assert!(!is_custom("../echo_args", &files));
        let o = run("echo_args", json!({"name": "x", "count": 3}), &files, false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.msg.as_deref(), Some("hi"));
        assert_eq!(o.data["args"]["name"], "x");
        assert_eq!(o.data["args"]["count"], 3);
        assert_eq!(o.data["args"]["_ansible_check_mode"], false);
        assert_eq!(o.data["args"]["_ansible_module_name"], "echo_args");
        assert_eq!(o.data["ansible_facts"], json!({"from_module": 1}));
        for k in ["self", "argsfile"] {
            let p = o.data[k].as_str().unwrap();
            assert!(p.contains("rustle-module-"), "{p}");
            assert!(!std::path::Path::new(p).exists(), "{p} removed afterwards");
        }
        let o = run("echo_args", json!({}), &files, true).unwrap();
        assert_eq!(o.data["args"]["_ansible_check_mode"], true);
    }

    #[test]
    fn failures_from_the_module() {
        let files = lib(
            "says_no",
            "#!/bin/sh\necho '{\"failed\": true, \"msg\": \"nope\", \"detail\": [1]}'\nexit 1\n",
        );
        let o = run("says_no", json!({}), &files, false).unwrap();
        assert!(o.failed);
        assert_eq!(o.msg.as_deref(), Some("nope"));
        assert_eq!(o.data["detail"], json!([1]));

        let files = lib(
            "exits",
            "#!/bin/sh\necho '{\"changed\": false}'\necho oops >&2\nexit 2\n",
        );
        let o = run("exits", json!({}), &files, false).unwrap();
        assert!(o.failed);
        assert_eq!(o.msg.as_deref(), Some("module exits exited with rc=2"));
        assert_eq!(o.data["module_stderr"], "oops\n");

        let files = lib(
            "skips",
            "#!/bin/sh\necho '{\"skipped\": \"yes\", \"msg\": \"n/a\"}'\n",
        );
        let o = run("skips", json!({}), &files, false).unwrap();
        assert!(o.skipped && !o.failed);
    }

    #[test]
    fn non_json_output_fails_quoting_it() {
        let files = lib(
            "chatty",
            "#!/bin/sh\necho 'Traceback: something broke'\nexit 3\n",
        );
        let o = run("chatty", json!({}), &files, false).unwrap();
        assert!(o.failed);
        let msg = o.msg.unwrap();
        assert!(
            msg.contains("rc=3") && msg.contains("Traceback: something broke"),
            "{msg}"
        );
        assert_eq!(o.data["rc"], 3);
        let files = lib("noshebang", "echo '{}'\n");
        let o = run("noshebang", json!({}), &files, false).unwrap();
        assert!(o.failed && o.msg.unwrap().contains("#!"));
    }

    #[test]
    fn unknown_modules_stay_unsupported() {
        let e = run("no_such_module", json!({}), &BTreeMap::new(), false).unwrap_err();
        assert_eq!(e, ModuleError::Unsupported("no_such_module".into()));
        assert_eq!(json_part("x\n{\"a\":\n1}\ny"), Some("{\"a\":\n1}"));
        assert_eq!(json_part("} {"), None);
    }
}
