//! debug, set_fact, set_stats, assert, fail and include_vars: modules that touch nothing on
//! the host.

use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;

/// `debug`: shows `msg`, or the value of the variable named by `var`.
pub(super) fn debug(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["msg", "var", "verbosity"])?;
    if a.contains_key("msg") && a.contains_key("var") {
        return Err(ModuleError::BadArgs(
            "'msg' and 'var' are mutually exclusive".into(),
        ));
    }
    // The runner runs at Ansible's default verbosity (0): a debug that asks for more is
    // skipped, as ansible-playbook without -v skips it.
    if let Some(v) = a.get("verbosity")
        && v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            > Some(0)
    {
        let mut o = Outcome::ok().with("skipped_reason", "Verbosity threshold not met.");
        o.skipped = true;
        return Ok(o);
    }
    if let Some(var) = args::opt_str(a, "var")? {
        // `var` names an expression, not a template: evaluate it. An undefined one is
        // shown as such; any other error (a filter's) fails the task with its message.
        let value = match ctx.engine.eval(&var, ctx.vars) {
            // An encrypted value with no password fails here, as Ansible's does.
            Ok(v) if !v.is_undefined() => match crate::template::to_json(&v, &var) {
                Ok(value) => value,
                Err(e) if e.from_filter && !e.undefined => {
                    return Ok(Outcome::fail(e.to_string()));
                }
                Err(_) => Value::Null,
            },
            Err(e) if e.from_filter && !e.undefined => return Ok(Outcome::fail(e.to_string())),
            _ => Value::String("VARIABLE IS NOT DEFINED!".into()),
        };
        return Ok(Outcome::ok().with(&var, value));
    }
    let msg = a
        .get("msg")
        .cloned()
        .unwrap_or_else(|| "Hello world!".into());
    Ok(Outcome::ok().with("msg", msg))
}

/// `set_fact`: the arguments become host variables (returned as `ansible_facts`, which
/// the executor merges, as Ansible does).
pub(super) fn set_fact(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    // Ansible's set_fact templates the names too: `set_fact: "{{ item }}=on"`.
    let mut facts = Vars::new();
    for (k, v) in a {
        let name = if crate::template::is_template(k) {
            ctx.engine
                .render_str(k, ctx.vars)
                .map_err(|e| ModuleError::BadArgs(e.to_string()))?
        } else {
            k.clone()
        };
        // Ansible's set_fact turns the strings true/false/yes/no (any case) into
        // booleans, unsafe ones too (without jinja2_native, its default).
        let word = match crate::template::unsafe_inner(v).unwrap_or(v) {
            Value::String(s) => match s.to_lowercase().as_str() {
                "true" | "yes" => Some(true),
                "false" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        };
        facts.insert(name, word.map_or_else(|| v.clone(), Value::Bool));
    }
    facts.shift_remove("cacheable");
    if facts.is_empty() {
        return Err(ModuleError::BadArgs(
            "set_fact needs at least one variable".into(),
        ));
    }
    if let Some(bad) = facts.keys().find(|k| !args::is_identifier(k)) {
        return Ok(Outcome::fail(format!(
            "The variable name '{bad}' is not valid. Variables must start with a letter or underscore character, and contain only letters, numbers and underscores."
        )));
    }
    Ok(Outcome::ok().with("ansible_facts", Value::Object(facts)))
}

/// `set_stats`: custom statistics for the deployer to add up and show after the recap
/// (`ANSIBLE_SHOW_CUSTOM_STATS`), returned as Ansible's action returns them:
/// `ansible_stats: {data, per_host, aggregate}`, never changed.
pub(super) fn set_stats(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["data", "per_host", "aggregate"])?;
    let data = match a.get("data") {
        None | Some(Value::Null) => Vars::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Ok(Outcome::fail(
                "The 'data' option needs to be a dictionary/hash",
            ));
        }
    };
    // Ansible reads these loosely (`boolean(..., strict=False)`): "x" is false.
    let flag = |name: &str, default: bool| match a.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => args::truthy_str(s).unwrap_or(false),
        Some(Value::Number(n)) => n.as_f64() == Some(1.0),
        Some(_) => false,
    };
    let mut stats = Vars::new();
    for (k, v) in data {
        // The names are templated, as set_fact's are.
        let name = if crate::template::is_template(&k) {
            ctx.engine
                .render_str(&k, ctx.vars)
                .map_err(|e| ModuleError::BadArgs(e.to_string()))?
        } else {
            k
        };
        if !args::is_identifier(&name) {
            return Ok(Outcome::fail(format!(
                "The variable name '{name}' is not valid. Variables must start with a letter or underscore character, and contain only letters, numbers and underscores."
            )));
        }
        stats.insert(name, v);
    }
    let stats = serde_json::json!({
        "data": stats,
        "per_host": flag("per_host", false),
        "aggregate": flag("aggregate", true),
    });
    Ok(Outcome::ok().with("ansible_stats", stats))
}

/// `assert`: every expression in `that` must hold. Unless `quiet`, its result is shown
/// at any verbosity (`_ansible_verbose_always`), as Ansible's assert action says.
pub(super) fn assert(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let quiet = args::bool_or(a, "quiet", false)?;
    let shown = |mut o: Outcome| {
        if !quiet {
            o.data.insert("_ansible_verbose_always".into(), true.into());
        }
        o
    };
    assert_that(a, ctx).map(shown)
}

fn assert_that(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["that", "fail_msg", "msg", "success_msg", "quiet"])?;
    if matches!(a.get("that"), None | Some(Value::Null)) {
        return Err(ModuleError::BadArgs(
            "missing required argument 'that'".into(),
        ));
    }
    // A null or empty condition in the list holds, as Ansible's `Conditional` takes
    // one (a stray `-` in a YAML list is such a null).
    let that: Vec<String> = args::str_list(a, "that")
        .or_else(|e| match a.get("that") {
            Some(Value::Array(items)) => {
                let kept: Vec<Value> = (items.iter()).filter(|i| !i.is_null()).cloned().collect();
                args::str_list(
                    &Vars::from_iter([("that".into(), Value::Array(kept))]),
                    "that",
                )
            }
            _ => Err(e),
        })?
        .into_iter()
        .filter(|expr| !expr.is_empty())
        .collect();
    let fail_msg = a.get("fail_msg").or_else(|| a.get("msg")).cloned();
    for expr in &that {
        let ok = match ctx.engine.eval_bool(expr, ctx.vars) {
            Ok(b) => b,
            Err(e) => {
                return Ok(Outcome::fail(format!(
                    "The conditional check '{expr}' failed. The error was: {}",
                    e.detail
                ))
                .with("assertion", expr.as_str()));
            }
        };
        if !ok {
            let mut o = Outcome::fail("Assertion failed")
                .with("assertion", expr.as_str())
                .with("evaluated_to", false);
            if let Some(m) = &fail_msg {
                o = o.with("msg", m.clone());
                o.msg = None;
            }
            return Ok(o);
        }
    }
    let msg = a
        .get("success_msg")
        .cloned()
        .unwrap_or_else(|| "All assertions passed".into());
    let mut o = Outcome::ok();
    o.data.insert("msg".into(), msg);
    Ok(o)
}

/// `fail`: fails the task with `msg`.
pub(super) fn fail(a: &Vars, _ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["msg"])?;
    let mut o = Outcome::fail("Failed as requested from task");
    if let Some(m) = a.get("msg") {
        o.msg = None;
        o.data.insert("msg".into(), m.clone());
    }
    Ok(o)
}

/// `include_vars`: variables from a file the packer embedded (it converts YAML to JSON
/// when packing, so the runner needs no YAML parser). They become host variables, as
/// `set_fact`'s do; with `name`, under that one variable.
pub(super) fn include_vars(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(
        a,
        &[
            "file",
            "_raw_params",
            "name",
            "hash_behaviour",
            "dir",
            "files_matching",
        ],
    )?;
    if a.contains_key("dir") || a.contains_key("files_matching") {
        return Err(ModuleError::BadArgs(
            "'dir' is not supported: name each file (the packer embeds files by name)".into(),
        ));
    }
    if let Some(h) = args::opt_str(a, "hash_behaviour")?
        && h != "replace"
    {
        return Err(ModuleError::BadArgs(format!(
            "hash_behaviour '{h}' is not supported (only 'replace')"
        )));
    }
    let file = match args::opt_str(a, "file")? {
        Some(f) => f,
        None => args::req_str(a, "_raw_params")
            .map_err(|_| ModuleError::BadArgs("missing required argument 'file'".into()))?,
    };
    let Some(embedded) = ctx.files.get(&file) else {
        return Ok(Outcome::fail(format!(
            "Could not find or access '{file}': it was not embedded in the payload (the packer embeds include_vars files named literally or found beside the playbook or role)"
        )));
    };
    let vars: Value = match serde_json::from_slice(&embedded.content) {
        Ok(v @ Value::Object(_)) => v,
        Ok(Value::Null) => Value::Object(Vars::new()),
        Ok(other) => {
            return Ok(Outcome::fail(format!(
                "{file} must hold a mapping of variables, not {other}"
            )));
        }
        Err(e) => {
            return Ok(Outcome::fail(format!(
                "{file} is not a variables file the packer converted: {e}"
            )));
        }
    };
    let facts = match args::opt_str(a, "name")? {
        Some(name) => {
            let mut m = Vars::new();
            m.insert(name, vars);
            Value::Object(m)
        }
        None => vars,
    };
    Ok(Outcome::ok()
        .with("ansible_facts", facts)
        .with("ansible_included_var_files", vec![Value::from(file)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn check(module: &str, args: Value, vars: Value) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, &BTreeMap::new(), &vars, false)
    }

    #[test]
    fn debug_msg_and_var() {
        let o = check("debug", json!({"msg": "hi"}), json!({})).unwrap();
        assert_eq!(o.data["msg"], "hi");
        let o = check("debug", json!({"var": "r.rc"}), json!({"r": {"rc": 4}})).unwrap();
        assert_eq!(o.data["r.rc"], 4);
        let o = check("debug", json!({"var": "nope"}), json!({})).unwrap();
        assert_eq!(o.data["nope"], "VARIABLE IS NOT DEFINED!");
        let o = check("debug", json!({}), json!({})).unwrap();
        assert_eq!(o.data["msg"], "Hello world!");
    }

    // As ansible-core 2.18's debug action at the default verbosity: skipped with
    // "Verbosity threshold not met."; a `var` whose filter fails fails the task with the
    // filter's message (filter_urlsplit's integration test checks both).
    #[test]
    fn debug_verbosity_and_failing_var() {
        let o = check("debug", json!({"msg": "x", "verbosity": 1}), json!({})).unwrap();
        assert!(o.skipped);
        assert_eq!(o.data["skipped_reason"], "Verbosity threshold not met.");
        let o = check("debug", json!({"msg": "x", "verbosity": 0}), json!({})).unwrap();
        assert!(!o.skipped);
        let o = check(
            "debug",
            json!({"var": "'http://www.acme.com:9000/dir/index.html' | urlsplit('bad_filter')"}),
            json!({}),
        )
        .unwrap();
        assert!(o.failed);
        assert_eq!(
            o.msg.as_deref(),
            Some("urlsplit: unknown URL component: bad_filter")
        );
    }

    #[test]
    fn set_fact_returns_facts() {
        let o = check("set_fact", json!({"a": 1, "cacheable": true}), json!({})).unwrap();
        assert_eq!(o.data["ansible_facts"], json!({"a": 1}));
        let bad = check("set_fact", json!({"1x": 1}), json!({})).unwrap();
        assert!(
            bad.failed
                && bad
                    .msg
                    .unwrap()
                    .starts_with("The variable name '1x' is not valid.")
        );
        // The strings true/false/yes/no become booleans, as Ansible's set_fact does.
        let o = check(
            "set_fact",
            json!({"a": "false", "b": "Yes", "c": "no way", "d": {"__ansible_unsafe": "TRUE"}}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            o.data["ansible_facts"],
            json!({"a": false, "b": true, "c": "no way", "d": true})
        );
        // Names are templated, as Ansible's set_fact does.
        let o = check("set_fact", json!({"{{ 'x' + n }}": "v"}), json!({"n": "1"})).unwrap();
        assert_eq!(o.data["ansible_facts"], json!({"x1": "v"}));
    }

    #[test]
    fn set_stats_returns_the_stats_with_ansibles_defaults_and_messages() {
        let o = check("set_stats", json!({"data": {"n": 42}}), json!({})).unwrap();
        assert!(!o.changed && !o.failed);
        assert_eq!(
            o.data["ansible_stats"],
            json!({"data": {"n": 42}, "per_host": false, "aggregate": true})
        );
        let o = check(
            "set_stats",
            json!({"data": {"{{ k }}": 1}, "per_host": "yes", "aggregate": "x"}),
            json!({"k": "key"}),
        )
        .unwrap();
        assert_eq!(
            o.data["ansible_stats"],
            json!({"data": {"key": 1}, "per_host": true, "aggregate": false})
        );
        let o = check("set_stats", json!({"data": [1, 2]}), json!({})).unwrap();
        assert_eq!(
            o.msg.as_deref(),
            Some("The 'data' option needs to be a dictionary/hash")
        );
        let o = check("set_stats", json!({"data": {".bad": 1}}), json!({})).unwrap();
        assert!(
            o.failed
                && o.msg
                    .unwrap()
                    .starts_with("The variable name '.bad' is not valid.")
        );
        assert!(check("set_stats", json!({"datum": {}}), json!({})).is_err());
    }

    #[test]
    fn assert_passes_and_fails() {
        let vars = json!({"x": 3});
        let o = check(
            "assert",
            json!({"that": ["x > 1", "x is defined"]}),
            vars.clone(),
        )
        .unwrap();
        assert!(!o.failed);
        assert_eq!(o.data["msg"], "All assertions passed");
        let o = check(
            "assert",
            json!({"that": "x > 5", "fail_msg": "too small"}),
            vars,
        )
        .unwrap();
        assert!(o.failed);
        assert_eq!(o.data["msg"], "too small");
        assert_eq!(o.data["assertion"], "x > 5");
        // A null or empty condition holds, as in Ansible (a stray `-` in the list).
        let o = check(
            "assert",
            json!({"that": ["x > 1", null, "", "x < 5"]}),
            json!({"x": 3}),
        )
        .unwrap();
        assert!(!o.failed, "{o:?}");
        let o = check("assert", json!({"that": [null, "x > 5"]}), json!({"x": 3})).unwrap();
        assert!(o.failed);
        assert!(check("assert", json!({"that": null}), json!({})).is_err());
        let o = check("assert", json!({"that": "y == 1"}), json!({})).unwrap();
        assert!(o.failed, "an undefined name fails the assertion");
    }

    #[test]
    fn include_vars_reads_embedded_json_and_nests_under_name() {
        let mut files = BTreeMap::new();
        files.insert(
            "vars/app.yml".to_string(),
            crate::plan::HostFile {
                content: br#"{"port": 80, "tags": ["a"]}"#.to_vec(),
                mode: None,
            },
        );
        let run = |args: Value| {
            crate::modules::run_for_test(
                "include_vars",
                args.as_object().unwrap(),
                &files,
                &json!({}),
                false,
            )
        };
        let o = run(json!({"_raw_params": "vars/app.yml"})).unwrap();
        assert_eq!(o.data["ansible_facts"], json!({"port": 80, "tags": ["a"]}));
        assert_eq!(
            o.data["ansible_included_var_files"],
            json!(["vars/app.yml"])
        );
        let o = run(json!({"file": "vars/app.yml", "name": "app"})).unwrap();
        assert_eq!(o.data["ansible_facts"]["app"]["port"], 80);
        let o = run(json!({"file": "vars/other.yml"})).unwrap();
        assert!(o.failed && o.msg.unwrap().contains("vars/other.yml"));
        assert!(run(json!({"dir": "vars"})).is_err());
    }

    #[test]
    fn fail_fails() {
        let o = check("fail", json!({"msg": "stop"}), json!({})).unwrap();
        assert!(o.failed);
        assert_eq!(o.data["msg"], "stop");
        assert!(check("fail", json!({"mgs": "x"}), json!({})).is_err());
    }
}
