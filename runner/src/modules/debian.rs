//! Debian's package configuration: `debconf` (answers in the debconf database, through
//! debconf-show, debconf-get-selections and debconf-set-selections) and
//! `dpkg_selections` (a package's dpkg selection, through `dpkg --get-selections` and
//! `--set-selections`), with ansible.builtin's arguments, comparisons and results. The
//! tools run with argument vectors; values reach them on standard input, as Ansible
//! feeds them.

use super::tools;
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

const DEBCONF_ARGS: &[&str] = &[
    "name",
    "pkg",
    "question",
    "selection",
    "setting",
    "vtype",
    "value",
    "answer",
    "unseen",
];

const VTYPES: &[&str] = &[
    "boolean",
    "error",
    "multiselect",
    "note",
    "password",
    "seen",
    "select",
    "string",
    "text",
    "title",
];

/// The first of `names` given (an argument and its aliases), as a raw value.
fn aliased<'a>(a: &'a Vars, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| a.get(*n).filter(|v| !v.is_null()))
}

fn tool(name: &str) -> Result<PathBuf, Outcome> {
    tools::find_bin(name).ok_or_else(|| {
        Outcome::fail(format!(
            "Failed to find required executable \"{name}\" in paths: $PATH, /usr/local/sbin, /usr/sbin, /sbin"
        ))
    })
}

/// A value as Python's `to_text` shows it (`True`, `5`, the string itself).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// `debconf`.
pub(super) fn debconf(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, DEBCONF_ARGS)?;
    let pkg = match aliased(a, &["name", "pkg"]) {
        Some(v) => text(v),
        None => {
            return Err(ModuleError::BadArgs(
                "missing required argument 'name'".into(),
            ));
        }
    };
    let question = aliased(a, &["question", "selection", "setting"]).map(text);
    let vtype = args::opt_str(a, "vtype")?;
    if let Some(t) = &vtype
        && !VTYPES.contains(&t.as_str())
    {
        return Err(ModuleError::BadArgs(format!(
            "argument 'vtype' must be one of {}; got '{t}'",
            VTYPES.join(", ")
        )));
    }
    let mut value = aliased(a, &["value", "answer"]).cloned();
    let unseen = args::bool_or(a, "unseen", false)?;
    let given = [question.is_some(), vtype.is_some(), value.is_some()];
    if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
        return Ok(Outcome::fail(
            "parameters are required together: question, vtype, value",
        ));
    }
    let show = match tool("debconf-show") {
        Ok(p) => p,
        Err(o) => return Ok(o),
    };
    let out = match tools::run_command(ctx.command(&show), std::slice::from_ref(&pkg), None) {
        Ok(o) => o,
        Err(e) => return Ok(Outcome::fail(format!("{}: {e}", show.display()))),
    };
    if out.rc != 0 {
        return Ok(Outcome::fail(out.stderr));
    }
    let mut prev = Map::new();
    for line in out.stdout.lines() {
        if let Some((k, v)) = line.split_once(':') {
            prev.insert(
                k.trim_matches('*').trim().to_string(),
                Value::from(v.trim()),
            );
        }
    }

    let mut changed = false;
    if let (Some(q), Some(t), Some(v)) = (&question, &vtype, &mut value) {
        if t == "boolean" {
            *v = Value::from(text(v).to_lowercase());
        }
        match prev.get(q) {
            None => changed = true,
            Some(existing) => {
                let existing = text(existing);
                let existing = match t.as_str() {
                    "boolean" => Value::from(existing.to_lowercase()),
                    "password" => match password(ctx, &pkg, q, t) {
                        Ok(p) => p.map_or(Value::Null, Value::from),
                        Err(o) => return Ok(o),
                    },
                    "multiselect" if v.is_array() => {
                        let Some(sorted) = sorted_strings(v) else {
                            return Ok(Outcome::fail(
                                "Invalid value provided for 'multiselect': the list must hold strings",
                            ));
                        };
                        *v = Value::from(sorted);
                        let mut have: Vec<String> =
                            existing.split(',').map(|i| i.trim().to_string()).collect();
                        have.sort();
                        Value::from(have)
                    }
                    _ => Value::from(existing),
                };
                changed = *v != existing;
            }
        }
    }
    if !changed {
        return Ok(Outcome::ok().msg("").with("current", Value::Object(prev)));
    }
    let (Some(q), Some(t), Some(mut v)) = (question, vtype, value) else {
        return Ok(Outcome::ok().msg("").with("current", Value::Object(prev)));
    };
    let mut msg = String::new();
    if !ctx.check_mode {
        if t == "multiselect"
            && let Value::Array(items) = &v
        {
            let parts: Vec<String> = items.iter().map(text).collect();
            v = Value::from(parts.join(", "));
        }
        let set = match tool("debconf-set-selections") {
            Ok(p) => p,
            Err(o) => return Ok(o),
        };
        let argv: Vec<String> = if unseen {
            vec!["-u".into()]
        } else {
            Vec::new()
        };
        let data = format!("{pkg} {q} {t} {}\n", text(&v));
        match tools::run_command(ctx.command(&set), &argv, Some(data.as_bytes())) {
            Ok(o) if o.rc == 0 => msg = o.stdout,
            Ok(o) => return Ok(Outcome::fail(o.stderr)),
            Err(e) => return Ok(Outcome::fail(format!("{}: {e}", set.display()))),
        }
    }
    let current = Map::from_iter([(q.clone(), v)]);
    let previous = Map::from_iter([(
        q.clone(),
        prev.get(&q).cloned().unwrap_or_else(|| Value::from("")),
    )]);
    let mut out = Outcome::changed(true);
    let mut diff = json!({});
    if ctx.diff_mode {
        let mut after = previous.clone();
        after.extend(current.clone());
        diff = json!({"before": previous, "after": after});
        let pretty =
            |m: &Map<String, Value>| serde_json::to_string_pretty(m).unwrap_or_default() + "\n";
        out.diff.push(Diff {
            before_header: "before".into(),
            after_header: "after".into(),
            before: pretty(&previous),
            after: pretty(&after),
        });
    }
    Ok(out
        .msg(msg)
        .with("current", Value::Object(current))
        .with("previous", Value::Object(previous))
        .with("diff", diff))
}

/// A list of strings, sorted; `None` when an item is not a string.
fn sorted_strings(v: &Value) -> Option<Vec<String>> {
    let mut out: Vec<String> = v
        .as_array()?
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect::<Option<_>>()?;
    out.sort();
    Some(out)
}

/// The module's `get_password_value`: the answer in `debconf-get-selections`, read the
/// way the module reads it (the first line of the package with too few fields means
/// no password).
fn password(
    ctx: &Ctx<'_>,
    pkg: &str,
    question: &str,
    vtype: &str,
) -> Result<Option<String>, Outcome> {
    let get = tool("debconf-get-selections")?;
    let out = tools::run_command(ctx.command(&get), &[], None)
        .map_err(|e| Outcome::fail(format!("{}: {e}", get.display())))?;
    if out.rc != 0 {
        return Err(Outcome::fail(format!(
            "Failed to get the value '{question}' from '{pkg}': {}",
            out.stderr
        )));
    }
    for line in out.stdout.split('\n') {
        if !line.starts_with(pkg) {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() <= 3 {
            return Ok(Some(String::new()));
        }
        if fields.get(1) == Some(&question) && fields.get(2) == Some(&vtype) {
            return Ok(fields.get(3).map(|s| (*s).to_string()));
        }
    }
    Ok(None)
}

const SELECTIONS: &[&str] = &["install", "hold", "deinstall", "purge"];

/// `dpkg_selections`.
pub(super) fn dpkg_selections(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["name", "selection"])?;
    let name = args::req_str(a, "name")?;
    let selection = args::req_str(a, "selection")?;
    if !SELECTIONS.contains(&selection.as_str()) {
        return Err(ModuleError::BadArgs(format!(
            "argument 'selection' must be one of {}; got '{selection}'",
            SELECTIONS.join(", ")
        )));
    }
    let dpkg = match tool("dpkg") {
        Ok(p) => p,
        Err(o) => return Ok(o),
    };
    // dpkg's messages in the C locale, which the module parses.
    let dpkg_cmd = || {
        let mut c = ctx.command(&dpkg);
        for k in ["LANG", "LC_ALL", "LC_MESSAGES", "LC_CTYPE", "LANGUAGE"] {
            c.env(k, "C");
        }
        c
    };
    let argv = vec!["--get-selections".to_string(), name.clone()];
    let out = match tools::run_command(dpkg_cmd(), &argv, None) {
        Ok(o) => o,
        Err(e) => return Ok(Outcome::fail(format!("{}: {e}", dpkg.display()))),
    };
    if out.rc != 0 {
        return Ok(Outcome::fail(out.stderr.trim_end().to_string())
            .with("rc", out.rc)
            .with("stdout", out.stdout)
            .with("stderr", out.stderr));
    }
    if out.stderr.contains("no packages found matching") {
        return Ok(Outcome::fail(format!(
            "Failed to find package '{name}' to perform selection '{selection}'."
        )));
    }
    let current = match out.stdout.split_whitespace().nth(1) {
        Some(c) => c.to_string(),
        None => "not present".to_string(),
    };
    let changed = current != selection;
    let done = |o: Outcome| {
        o.with("before", current.clone())
            .with("after", selection.clone())
    };
    if ctx.check_mode || !changed {
        return Ok(done(Outcome::changed(changed)));
    }
    let data = format!("{name} {selection}\n");
    match tools::run_command(
        dpkg_cmd(),
        &["--set-selections".to_string()],
        Some(data.as_bytes()),
    ) {
        Ok(o) if o.rc == 0 => Ok(done(Outcome::changed(true))),
        Ok(o) => Ok(Outcome::fail(o.stderr.trim_end().to_string())
            .with("rc", o.rc)
            .with("stdout", o.stdout)
            .with("stderr", o.stderr)),
        Err(e) => Ok(Outcome::fail(format!("{}: {e}", dpkg.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;

    fn run(module: &str, args: Value, check: bool) -> Outcome {
        run_in_dir_for_test(module, &std::env::temp_dir(), &args, check).unwrap()
    }

    fn have(tool: &str) -> bool {
        tools::find_bin(tool).is_some()
    }

    #[test]
    fn debconf_reads_a_packages_answers() {
        if !have("debconf-show") {
            return;
        }
        let o = run("debconf", json!({"name": "no-such-package-x"}), false);
        assert!(!o.failed && !o.changed, "{o:?}");
        assert_eq!(o.data["current"], json!({}));
    }

    #[test]
    fn debconf_reports_a_new_answer_in_check_mode() {
        if !have("debconf-show") {
            return;
        }
        let q = json!({"name": "rustle-test-pkg", "question": "rustle-test-pkg/q",
                       "vtype": "string", "value": "v1"});
        // An unknown package's question never shows in debconf-show: always changed.
        let o = run("debconf", q.clone(), true);
        assert!(o.changed, "{o:?}");
        assert_eq!(o.data["current"], json!({"rustle-test-pkg/q": "v1"}));
        assert_eq!(o.data["previous"], json!({"rustle-test-pkg/q": ""}));
    }

    #[test]
    fn debconf_refuses_a_question_without_its_type_and_value() {
        let o = run(
            "debconf",
            json!({"name": "tzdata", "question": "tzdata/Areas"}),
            false,
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("parameters are required together: question, vtype, value")
        );
    }

    #[test]
    fn dpkg_selections_reads_and_checks_a_selection() {
        if !have("dpkg") {
            return;
        }
        let o = run(
            "dpkg_selections",
            json!({"name": "dpkg", "selection": "install"}),
            true,
        );
        assert!(!o.failed, "{o:?}");
        assert_eq!(o.data["before"], "install");
        assert!(!o.changed);
        let o = run(
            "dpkg_selections",
            json!({"name": "dpkg", "selection": "hold"}),
            true,
        );
        assert!(o.changed && o.data["after"] == "hold", "{o:?}");
        let o = run(
            "dpkg_selections",
            json!({"name": "kernel", "selection": "hold"}),
            true,
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("Failed to find package 'kernel' to perform selection 'hold'.")
        );
    }
}
