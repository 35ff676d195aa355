//! at (ansible.posix): a one-off job queued with the host's `at`, as that module queues
//! it: `command` (written to a script file in a private directory) or a `script_file`
//! run `now + count units`; `unique` leaves an identical queued job alone; `state:
//! absent` removes every queued job whose text holds the script's (read with `at -c`).
//! The tools run with argument vectors.

use super::fsutil::{self, Step, fail};
use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "command",
    "script_file",
    "count",
    "units",
    "state",
    "unique",
];

/// `at`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(queue(a, ctx))
}

fn queue(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let command = args::opt_str(a, "command")?;
    let script = args::opt_str(a, "script_file")?;
    match (&command, &script) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::BadArgs(
                "parameters are mutually exclusive: command|script_file".into(),
            )
            .into());
        }
        (None, None) => {
            return Err(ModuleError::BadArgs(
                "one of the following is required: command, script_file".into(),
            )
            .into());
        }
        _ => {}
    }
    let count = args::opt_int(a, "count")?;
    let units = args::opt_choice(a, "units", &["minutes", "hours", "days", "weeks"])?;
    let state =
        args::opt_choice(a, "state", &["absent", "present"])?.unwrap_or_else(|| "present".into());
    let unique = args::bool_or(a, "unique", false)?;
    if ctx.check_mode {
        // The module does not support check mode: Ansible skips it.
        let mut o = Outcome::ok();
        o.skipped = true;
        o.msg = Some("remote module (ansible.posix.at) does not support check mode".into());
        return Ok(o);
    }
    let (count, units) = match (count, units) {
        (Some(c), Some(u)) if c != 0 => (Some(c), Some(u)),
        (c, u) if state == "absent" => (c, u),
        _ => return fail("present state requires count and units"),
    };
    let bin = |name: &str| tools::require_bin(name).map_err(fsutil::failed);
    let at = bin("at")?;
    // A command becomes a script file, as the module writes one (with a line end).
    let staging;
    let (script_path, script_text) = match (&command, &script) {
        (Some(cmd), _) => {
            staging = PrivateDir::for_task("at", ctx.run_as)
                .map_err(|e| fsutil::io_fail("create a directory for", Path::new("at"), &e))?;
            let text = format!("{cmd}\n");
            let path = staging
                .write("script", text.as_bytes(), 0o600)
                .map_err(|e| fsutil::io_fail("write", Path::new("at script"), &e))?;
            (path, text)
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| fsutil::io_fail("read", Path::new(file), &e))?;
            (PathBuf::from(file), text)
        }
        (None, None) => return fail("one of the following is required: command, script_file"),
    };
    let run = |program: &Path, argv: &[String]| {
        tools::run_checked(ctx, program, argv).map_err(fsutil::failed)
    };
    let mut result = Outcome::ok().with("state", state.clone());
    if state == "absent" || unique {
        let atq = bin("atq")?;
        let wanted = script_text.trim();
        let mut matching = Vec::new();
        for line in run(&atq, &[])?.stdout.lines() {
            let Some(job) = line.split_whitespace().next() else {
                continue;
            };
            let shown = run(&at, &["-c".to_string(), job.to_string()])?;
            if shown.stdout.contains(wanted) {
                matching.push(job.to_string());
            }
        }
        if state == "absent" {
            for job in matching {
                run(&at, &["-r".to_string(), job])?;
                result.changed = true;
            }
            return Ok(result);
        }
        if !matching.is_empty() {
            return Ok(result);
        }
    }
    let argv: Vec<String> = vec![
        "-f".into(),
        script_path.display().to_string(),
        "now".into(),
        "+".into(),
        count.unwrap_or_default().to_string(),
        units.clone().unwrap_or_default(),
    ];
    run(&at, &argv)?;
    result.changed = true;
    Ok(result
        .with("script_file", script_path.display().to_string())
        .with("count", count)
        .with("units", units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn at(args: serde_json::Value) -> Outcome {
        crate::modules::run_for_test(
            "at",
            args.as_object().unwrap(),
            &BTreeMap::new(),
            &json!({}),
            false,
        )
        .unwrap()
    }

    /// Against the host's at (CI installs it; atd need not run to queue): a job is
    /// queued, a unique one not twice, and `absent` removes it.
    #[test]
    fn a_job_is_queued_once_when_unique_and_removed() {
        if tools::find_bin("at").is_none() || tools::find_bin("atq").is_none() {
            assert!(
                std::env::var_os("RUSTLE_ALLOW_SKIP").is_some(),
                "at is missing: apt-get install at"
            );
            return;
        }
        let cmd = format!("echo rustle-at-test-{}", std::process::id());
        let job = json!({"command": cmd, "count": 20, "units": "weeks", "unique": true});
        let o = at(job.clone());
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["count"], 20);
        assert!(o.data["script_file"].is_string());
        assert!(!at(job.clone()).changed, "a unique job was queued twice");
        let o = at(json!({"command": cmd, "state": "absent"}));
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!at(json!({"command": cmd, "state": "absent"})).changed);
        let o = at(json!({"command": "true"}));
        assert_eq!(
            o.msg.as_deref(),
            Some("present state requires count and units")
        );
    }
}
