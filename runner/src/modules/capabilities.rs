//! capabilities (community.general): a file capability (`cap_net_raw+ep`) set or
//! removed with the host's getcap/setcap, as that module does: the file's current
//! capabilities read with `getcap -v`, the one asked for compared with its operator and
//! flags, and the whole new set written with one `setcap`. Argument vectors only.

use super::fsutil::{self, Step, fail};
use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;

const SPEC: &[(&str, &[&str])] = &[("path", &["key"]), ("capability", &["cap"]), ("state", &[])];

/// One capability: name, operator (`=`, `-`, `+`) and flags (`ep`).
type Cap = (String, Option<char>, String);

/// `capabilities`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(capabilities(a, ctx))
}

fn capabilities(raw: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    let a = args::with_aliases(raw, SPEC)?;
    let path = args::opt_str(&a, "path")?
        .ok_or_else(|| ModuleError::BadArgs("missing required arguments: path".into()))?;
    let capability = args::opt_str(&a, "capability")?
        .ok_or_else(|| ModuleError::BadArgs("missing required arguments: capability".into()))?;
    let state =
        args::opt_choice(&a, "state", &["absent", "present"])?.unwrap_or_else(|| "present".into());
    let path = path.trim().to_string();
    let wanted = match parse(&capability.trim().to_lowercase()) {
        Some(c) => c,
        None if state == "absent" => (capability.trim().to_lowercase(), None, String::new()),
        None => return fail("Couldn't find operator (one of: ('=', '-', '+'))"),
    };
    let getcap = tools::require_bin("getcap").map_err(fsutil::failed)?;
    let setcap = tools::require_bin("setcap").map_err(fsutil::failed)?;

    let out = tools::run_command(ctx.command(&getcap), &["-v".into(), path.clone()], None)
        .map_err(|e| fsutil::io_fail("run", &getcap, &e))?;
    let unable = |stdout: &str, stderr: &str| {
        fsutil::failed(
            Outcome::fail(format!("Unable to get capabilities of {path}"))
                .with("stdout", stdout.trim().to_string())
                .with("stderr", stderr.to_string()),
        )
    };
    if out.rc != 0 || !out.stderr.is_empty() {
        return Err(unable(&out.stdout, &out.stderr));
    }
    let current = current_caps(&out.stdout, &path).ok_or_else(|| unable(&out.stdout, ""))?;

    let next: Vec<Cap> = match state.as_str() {
        "present" if !current.contains(&wanted) => {
            let mut next: Vec<Cap> = current.into_iter().filter(|c| c.0 != wanted.0).collect();
            next.push(wanted);
            next
        }
        "absent" if current.iter().any(|c| c.0 == wanted.0) => {
            current.into_iter().filter(|c| c.0 != wanted.0).collect()
        }
        _ => return Ok(Outcome::changed(false).with("state", state)),
    };
    if ctx.check_mode {
        return Ok(Outcome::changed(true).msg("capabilities changed"));
    }
    let text = next
        .iter()
        .map(|(name, op, flags)| {
            format!("{name}{}{flags}", op.map(String::from).unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(" ");
    let set = tools::run_command(ctx.command(&setcap), &[text, path.clone()], None)
        .map_err(|e| fsutil::io_fail("run", &setcap, &e))?;
    if set.rc != 0 {
        return Err(fsutil::failed(
            Outcome::fail(format!("Unable to set capabilities of {path}"))
                .with("stdout", set.stdout)
                .with("stderr", set.stderr),
        ));
    }
    Ok(Outcome::changed(true)
        .msg("capabilities changed")
        .with("state", state)
        .with("stdout", set.stdout))
}

/// A capability as the module splits it: at the first `=`, else `-`, else `+`.
fn parse(cap: &str) -> Option<Cap> {
    let at = ['=', '-', '+'].iter().find_map(|op| cap.find(*op))?;
    let op = cap.get(at..)?.chars().next()?;
    let (name, flags) = (cap.get(..at)?, cap.get(at + op.len_utf8()..)?);
    // Python's `cap.split(op)` into exactly two parts: a second operator of the same
    // kind is the module's failure too.
    if flags.contains(op) {
        return None;
    }
    Some((name.to_string(), Some(op), flags.to_string()))
}

/// The capabilities `getcap -v` shows for `path`: none when it prints the path alone,
/// `None` when it prints an error in parentheses. getcap writes capabilities sharing
/// their operator and flags as one comma-separated list (`cap_a,cap_b=ep`).
fn current_caps(stdout: &str, path: &str) -> Option<Vec<Cap>> {
    let text = stdout.trim();
    if text == path {
        return Some(Vec::new());
    }
    let caps: Vec<&str> = if let Some((_, rest)) = text.split_once(" =") {
        // An older libcap: `/foo = cap_a+ep`.
        rest.split_whitespace().collect()
    } else if text.ends_with(')') {
        return None;
    } else {
        text.split_whitespace().skip(1).take(1).collect()
    };
    let mut out = Vec::new();
    for cap in caps {
        let cap = cap.to_lowercase();
        let (names, last) = match cap.rsplit_once(',') {
            Some((names, last)) => (names.split(',').collect::<Vec<_>>(), last.to_string()),
            None => (Vec::new(), cap.clone()),
        };
        let (last, op, flags) = parse(&last)?;
        for name in names
            .into_iter()
            .map(str::to_string)
            .chain(std::iter::once(last))
        {
            out.push((name, op, flags.clone()));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run_caps(args: Value, check: bool) -> Outcome {
        crate::modules::run_args_for_test("capabilities", args, check).unwrap()
    }

    #[test]
    fn getcap_output_is_read_as_the_module_reads_it() {
        let c = |n: &str, op: char, f: &str| (n.to_string(), Some(op), f.to_string());
        assert_eq!(current_caps("/bin/x\n", "/bin/x"), Some(vec![]));
        assert_eq!(
            current_caps("/bin/x cap_net_admin,cap_net_raw=ep\n", "/bin/x"),
            Some(vec![
                c("cap_net_admin", '=', "ep"),
                c("cap_net_raw", '=', "ep")
            ])
        );
        assert_eq!(
            current_caps("/bin/x = cap_net_raw+ep cap_chown+i\n", "/bin/x"),
            Some(vec![c("cap_net_raw", '+', "ep"), c("cap_chown", '+', "i")])
        );
        assert_eq!(
            current_caps("/nope (No such file or directory)\n", "/nope"),
            None
        );
        assert_eq!(parse("cap_net_raw+ep"), Some(c("cap_net_raw", '+', "ep")));
        assert_eq!(parse("cap_net_raw"), None);
    }

    #[test]
    fn a_capability_is_set_changed_and_removed_and_a_second_run_changes_nothing() {
        if tools::find_bin("setcap").is_none() || tools::find_bin("getcap").is_none() {
            eprintln!("skipped: no setcap/getcap on this machine");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("ping");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let path = file.display().to_string();
        let getcap = || {
            let out = std::process::Command::new(tools::find_bin("getcap").unwrap())
                .arg(&file)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        // What the collection's module does with each (checked with ansible 11.13.0).
        let set = json!({"path": path, "capability": "cap_net_raw=ep"});
        let checked = run_caps(set.clone(), true);
        assert!(checked.changed, "{checked:?}");
        assert!(!getcap().contains("cap_"), "check mode set a capability");
        let o = run_caps(set.clone(), false);
        if o.failed
            && (o.data["stderr"].as_str()).is_some_and(|e| e.contains("Operation not supported"))
        {
            eprintln!("skipped: this file system keeps no capabilities");
            return;
        }
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(getcap(), format!("{path} cap_net_raw=ep"));
        assert!(!run_caps(set, false).changed, "the same capability again");
        // getcap shows `+ep` as `=ep`, so the module finds `+ep` missing every time.
        let plus = json!({"path": path, "capability": "cap_net_raw+ep"});
        assert!(run_caps(plus, false).changed);

        let more = json!({"path": path, "cap": "CAP_CHOWN=ep"});
        assert!(run_caps(more, false).changed);
        assert_eq!(getcap(), format!("{path} cap_chown,cap_net_raw=ep"));

        let gone = json!({"key": path, "capability": "cap_net_raw", "state": "absent"});
        assert!(run_caps(gone.clone(), false).changed);
        assert!(!run_caps(gone, false).changed);
        assert_eq!(getcap(), format!("{path} cap_chown=ep"));

        let missing = run_caps(
            json!({"path": "/nonexistent/rustle", "capability": "cap_chown+e"}),
            false,
        );
        assert!(missing.failed, "{missing:?}");
        assert_eq!(
            missing.msg.as_deref(),
            Some("Unable to get capabilities of /nonexistent/rustle")
        );
    }
}
