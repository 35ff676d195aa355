//! make (community.general): runs `make` in `chdir` as that module does: GNU make
//! (`gmake`) where there is one, else `make`; `make -q` first, so a target that is up to
//! date reports ok (and check mode reports whether it is); otherwise the real run,
//! whose failure fails the task with its output. An argument vector, never a shell.

use super::fsutil::{self, Step};
use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use serde_json::Value;

const KNOWN: &[&str] = &[
    "target", "targets", "params", "chdir", "file", "make", "jobs",
];

/// `make`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(make(a, ctx))
}

fn make(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let chdir = args::opt_str(a, "chdir")?
        .ok_or_else(|| ModuleError::BadArgs("missing required arguments: chdir".into()))?;
    if a.get("target").is_some_and(|v| !v.is_null())
        && a.get("targets").is_some_and(|v| !v.is_null())
    {
        return Err(ModuleError::BadArgs(
            "parameters are mutually exclusive: target|targets".into(),
        )
        .into());
    }
    let target = args::opt_str(a, "target")?;
    let targets = match a.get("targets") {
        None | Some(Value::Null) => None,
        _ => Some(args::str_list(a, "targets")?),
    };
    let file = args::opt_str(a, "file")?;
    let jobs = args::opt_int(a, "jobs")?;
    let params = match a.get("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'params' is of type {} and we were unable to convert to dict",
                crate::lookups::py_repr(other)
            ))
            .into());
        }
    };
    let program = match args::opt_str(a, "make")? {
        Some(p) => std::path::PathBuf::from(p),
        None => match tools::find_bin("gmake") {
            Some(p) => p,
            None => tools::require_bin("make").map_err(fsutil::failed)?,
        },
    };

    let mut argv: Vec<String> = Vec::new();
    if let Some(j) = jobs {
        argv.extend(["-j".to_string(), j.to_string()]);
    }
    if let Some(f) = &file {
        argv.extend(["-f".to_string(), f.clone()]);
    }
    match (&target, &targets) {
        (Some(t), _) if !t.is_empty() => argv.push(t.clone()),
        (_, Some(ts)) => argv.extend(ts.iter().cloned()),
        _ => {}
    }
    for (k, v) in params.iter().flatten() {
        argv.push(match v {
            Value::Null => k.clone(),
            // Python's str() of the value.
            Value::String(s) => format!("{k}={s}"),
            Value::Bool(b) => format!("{k}={}", if *b { "True" } else { "False" }),
            other => format!("{k}={}", crate::lookups::py_repr(other)),
        });
    }
    let command = std::iter::once(program.display().to_string())
        .chain(argv.iter().cloned())
        .map(|w| tools::shlex_quote(&w))
        .collect::<Vec<_>>()
        .join(" ");
    let run = |argv: &[String]| {
        let mut cmd = ctx.command(&program);
        cmd.current_dir(&chdir);
        tools::run_command(cmd, argv, None).map_err(|e| fsutil::io_fail("run", &program, &e))
    };
    let mut probe = argv.clone();
    probe.push("-q".into());
    let mut out = run(&probe)?;
    let changed = out.rc != 0;
    if changed && !ctx.check_mode {
        out = run(&argv)?;
        if out.rc != 0 {
            return Err(fsutil::failed(
                Outcome::fail(out.stderr.trim_end().to_string())
                    .with("cmd", command)
                    .with("rc", out.rc)
                    .with("stdout", out.stdout)
                    .with("stderr", out.stderr),
            ));
        }
    }
    let clean = |s: &str| s.trim_end_matches(['\r', '\n']).to_string();
    Ok(Outcome::changed(changed)
        .with("stdout", clean(&out.stdout))
        .with("stderr", clean(&out.stderr))
        .with("target", target)
        .with("targets", targets)
        .with("params", params.map(Value::Object).unwrap_or(Value::Null))
        .with("chdir", chdir)
        .with("file", file)
        .with("jobs", jobs)
        .with("command", command))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_make(args: Value, check: bool) -> Outcome {
        crate::modules::run_args_for_test("make", args, check).unwrap()
    }

    #[test]
    fn an_up_to_date_target_is_ok_a_stale_one_is_built_and_a_failure_fails() {
        if tools::find_bin("make").is_none() {
            eprintln!("skipped: no make on this machine");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("Makefile"),
            "out.txt: in.txt\n\tcp in.txt out.txt\n\techo $(GREETING) >> out.txt\nbroken:\n\t@echo nope >&2; false\n",
        )
        .unwrap();
        std::fs::write(t.path().join("in.txt"), "in\n").unwrap();
        let dir = t.path().display().to_string();
        let args = json!({"chdir": dir, "target": "out.txt", "params": {"GREETING": "hello"}});

        let checked = run_make(args.clone(), true);
        assert!(
            checked.changed && !t.path().join("out.txt").exists(),
            "{checked:?}"
        );
        let built = run_make(args.clone(), false);
        assert!(built.changed && !built.failed, "{built:?}");
        assert_eq!(
            std::fs::read_to_string(t.path().join("out.txt")).unwrap(),
            "in\nhello\n"
        );
        assert_eq!(
            built.data["stdout"],
            "cp in.txt out.txt\necho hello >> out.txt"
        );
        let cmd = built.data["command"].as_str().unwrap();
        assert!(cmd.ends_with(" out.txt GREETING=hello"), "{cmd}");
        assert!(!run_make(args.clone(), false).changed, "up to date");
        assert!(!run_make(args, true).changed);

        let broken = run_make(json!({"chdir": dir, "target": "broken"}), false);
        assert!(broken.failed, "{broken:?}");
        // As the collection's module reports it (its msg is make's stderr).
        let msg = broken.msg.unwrap();
        assert!(
            msg.starts_with("nope\n") && msg.ends_with(": *** [Makefile:5: broken] Error 1"),
            "{msg}"
        );
        assert_eq!(broken.data["rc"], 2);
    }
}
