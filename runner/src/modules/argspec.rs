//! validate_argument_spec: variables checked against an argument spec, as Ansible's
//! action checks them, and as it checks a role's `meta/argument_specs.yml` in the task
//! it puts before the role's own (the packer adds that task). The values are the
//! task's variables of the spec's names (templated), with `provided_arguments` over
//! them; the checks are Ansible's `ArgumentSpecValidator`'s, in its order and words:
//! aliases, unknown names, required, types (with its conversions), choices, the
//! option-level `mutually_exclusive` / `required_*` rules, then suboptions. Python's
//! type names in messages are the builtin ones (`<class 'str'>`), never the YAML
//! loader's subclasses.

use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// `validate_argument_spec`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(
        a,
        &[
            "argument_spec",
            "provided_arguments",
            "validate_args_context",
        ],
    )?;
    let spec = match a.get("argument_spec") {
        Some(Value::Object(m)) => m,
        None => {
            return Ok(Outcome::fail(format!(
                "\"argument_spec\" arg is required in args: {}",
                crate::lookups::py_repr(&Value::Object(a.clone()))
            )));
        }
        Some(other) => {
            return Ok(Outcome::fail(format!(
                "Incorrect type for argument_spec, expected dict and got {}",
                py_type(other)
            )));
        }
    };
    let provided = match a.get("provided_arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Ok(Outcome::fail(format!(
                "Incorrect type for provided_arguments, expected dict and got {}",
                py_type(other)
            )));
        }
    };
    // The spec's names among the task's variables, templated, under what was given.
    let mut params = Map::new();
    for name in spec.keys() {
        match ctx.engine.eval(name, ctx.vars) {
            Ok(v) if !v.is_undefined() => match crate::template::to_json(&v, name) {
                Ok(value) => {
                    params.insert(name.clone(), value);
                }
                Err(e) => return Ok(Outcome::fail(e.to_string())),
            },
            Ok(_) => {}
            Err(e) => return Ok(Outcome::fail(e.to_string())),
        }
    }
    params.extend(provided);
    // What is being checked, for the result either way (a role's name and entry point).
    let context = a
        .get("validate_args_context")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let errors = validate(spec, params);
    if !errors.is_empty() {
        return Ok(Outcome::fail(format!(
            "Validation of arguments failed:\n{}",
            errors.join("\n")
        ))
        .with("validate_args_context", context)
        .with("argument_spec_data", Value::Object(spec.clone()))
        .with("argument_errors", errors));
    }
    let mut o = Outcome::ok().with("validate_args_context", context);
    o.msg = Some("The arg spec validation passed".into());
    Ok(o)
}

/// The task Ansible puts before a role's own when the role's argument spec describes
/// its entry point (`Role._create_validation_task`): validate_argument_spec of the
/// spec's `options`, named after the entry point (and its `short_description`),
/// tagged `always`. `path` is the role's directory.
pub fn role_argument_check(
    spec: &Map<String, Value>,
    entry_point: &str,
    role: &str,
    path: &str,
) -> crate::plan::Task {
    let mut name = format!("Validating arguments against arg spec '{entry_point}'");
    if let Some(short) = spec.get("short_description").filter(|v| !v.is_null()) {
        name = format!("{name} - {}", text(short));
    }
    let options = spec
        .get("options")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!({}));
    // Ansible names a collection's role (`ns.coll.role`) by its own name here, and a
    // role given by path by its directory's.
    let parts: Vec<&str> = role.split('.').collect();
    let role = match parts.as_slice() {
        _ if role.contains('/') => role.rsplit('/').next().unwrap_or(role),
        [_, _, short] => short,
        _ => role,
    };
    let mut args = Vars::new();
    args.insert("argument_spec".into(), options);
    args.insert("provided_arguments".into(), json!({}));
    args.insert(
        "validate_args_context".into(),
        json!({"type": "role", "name": role, "argument_spec_name": entry_point, "path": path}),
    );
    crate::plan::Task {
        name: Some(name),
        module: "ansible.builtin.validate_argument_spec".into(),
        args,
        tags: vec!["always".into()],
        ..crate::plan::Task::default()
    }
}

/// The error messages for `params` against `spec`, in Ansible's order.
fn validate(spec: &Map<String, Value>, mut params: Map<String, Value>) -> Vec<String> {
    let mut v = Validator::default();
    v.level(spec, &mut params, &Map::new());
    v.sub_specs(spec, &mut params, "");
    if !v.unsupported.is_empty() {
        let names: BTreeSet<String> = v.unsupported.keys().cloned().collect();
        // Ansible names what the last one's level supports (its loop variable).
        let (supported, aliases) = names
            .last()
            .and_then(|n| v.unsupported.get(n))
            .cloned()
            .unwrap_or_default();
        let mut text = supported.join(", ");
        if !aliases.is_empty() {
            text.push_str(&format!(" ({})", aliases.join(", ")));
        }
        let names: Vec<String> = names.into_iter().collect();
        v.errors.push(format!(
            "{}. Supported parameters include: {text}.",
            names.join(", ")
        ));
    }
    v.errors
}

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
    /// Unknown names (`a.b.c` below the top), with what their level supports: names
    /// and aliases, sorted.
    unsupported: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// The options being looked into (`multi_level_option -> second_level`).
    context: Vec<String>,
}

/// An option's spec field.
fn field<'s>(spec: &'s Value, name: &str) -> Option<&'s Value> {
    spec.get(name).filter(|v| !v.is_null())
}

fn names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

impl Validator {
    /// " found in a -> b" for messages about suboptions.
    fn found_in(&self) -> String {
        if self.context.is_empty() {
            String::new()
        } else {
            format!(" found in {}", self.context.join(" -> "))
        }
    }

    /// The checks of one level: aliases, unknown names, the level's own rules
    /// (`rules`: the option's `mutually_exclusive`... for a suboption level), defaults,
    /// required, types, choices.
    fn level(
        &mut self,
        spec: &Map<String, Value>,
        params: &mut Map<String, Value>,
        rules: &Map<String, Value>,
    ) {
        // Aliases: the value given under an alias is the option's.
        let mut aliases = BTreeSet::new();
        for (name, s) in spec {
            for alias in names(field(s, "aliases")) {
                aliases.insert(alias.clone());
                if !params.contains_key(name)
                    && let Some(v) = params.get(&alias).cloned()
                {
                    params.insert(name.clone(), v);
                }
            }
        }
        for k in params.keys() {
            if !spec.contains_key(k) && !aliases.contains(k) {
                let mut path = self.context.clone();
                path.push(k.clone());
                let supported: Vec<String> = {
                    let mut s: Vec<String> = spec.keys().cloned().collect();
                    s.sort();
                    s
                };
                self.unsupported.insert(
                    path.join("."),
                    (supported, aliases.iter().cloned().collect()),
                );
            }
        }
        self.rule_mutually_exclusive(rules.get("mutually_exclusive"), params);
        for (name, s) in spec {
            if !params.contains_key(name)
                && let Some(default) = field(s, "default")
            {
                params.insert(name.clone(), default.clone());
            }
        }
        let mut missing: Vec<&String> = spec
            .iter()
            .filter(|(name, s)| is_true(field(s, "required")) && !params.contains_key(*name))
            .map(|(name, _)| name)
            .collect();
        if !missing.is_empty() {
            missing.sort();
            let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            self.errors.push(format!(
                "missing required arguments: {}{}",
                missing.join(", "),
                self.found_in()
            ));
        }
        self.types(spec, params);
        self.choices(spec, params);
        self.other_rules(rules, params);
        for name in spec.keys() {
            params.entry(name.clone()).or_insert(Value::Null);
        }
    }

    fn types(&mut self, spec: &Map<String, Value>, params: &mut Map<String, Value>) {
        let context = if self.context.is_empty() {
            String::new()
        } else {
            format!(" found in '{}'.", self.context.join(" -> "))
        };
        for (name, s) in spec {
            let Some(value) = params.get(name).cloned() else {
                continue;
            };
            if value.is_null() && !is_true(field(s, "required")) && field(s, "default").is_none() {
                continue;
            }
            let wanted = field(s, "type").map_or_else(|| "str".to_string(), text);
            match convert(&wanted, &value) {
                Ok(converted) => {
                    let converted = match field(s, "elements").map(text) {
                        Some(elements) => self.elements(name, &wanted, &elements, converted),
                        None => converted,
                    };
                    params.insert(name.clone(), converted);
                }
                Err(why) => self.errors.push(format!(
                    "argument '{name}' is of type {}{context} and we were unable to convert to {wanted}: {why}",
                    py_type(&value)
                )),
            }
        }
    }

    fn elements(&mut self, name: &str, wanted: &str, elements: &str, value: Value) -> Value {
        let Value::Array(items) = value else {
            let mut msg = format!("Invalid type {wanted} for option '{}'", py_text(&value));
            if !self.context.is_empty() {
                msg.push_str(&format!(" found in '{}'.", self.context.join(" -> ")));
            }
            msg.push_str(", elements value check is supported only with 'list' type");
            self.errors.push(msg);
            return value;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match convert(elements, &item) {
                Ok(v) => out.push(v),
                Err(why) => {
                    let mut msg = format!("Elements value for option '{name}'");
                    if !self.context.is_empty() {
                        msg.push_str(&format!(" found in '{}'", self.context.join(" -> ")));
                    }
                    msg.push_str(&format!(
                        " is of type {} and we were unable to convert to {elements}: {why}",
                        py_type(&item)
                    ));
                    self.errors.push(msg);
                }
            }
        }
        Value::Array(out)
    }

    fn choices(&mut self, spec: &Map<String, Value>, params: &mut Map<String, Value>) {
        for (name, s) in spec {
            let Some(Value::Array(choices)) = field(s, "choices") else {
                continue;
            };
            let Some(value) = params.get(name).cloned() else {
                continue;
            };
            let shown: Vec<String> = choices.iter().map(py_text).collect();
            if let Value::Array(items) = &value {
                let stray: Vec<String> = items
                    .iter()
                    .filter(|i| !choices.contains(i))
                    .map(py_text)
                    .collect();
                if !stray.is_empty() {
                    self.errors.push(format!(
                        "value of {name} must be one or more of: {}. Got no match for: {}{}",
                        shown.join(", "),
                        stray.join(", "),
                        self.found_in()
                    ));
                }
                continue;
            }
            if choices.contains(&value) {
                continue;
            }
            // YAML's booleans back to the one choice that spells them, as Ansible does.
            let as_text = py_text(&value);
            let words: &[&str] = match as_text.as_str() {
                "False" => &["n", "no", "off", "false", "f", "0"],
                "True" => &["y", "yes", "on", "true", "t", "1"],
                _ => &[],
            };
            let spelled: Vec<&Value> = choices
                .iter()
                .filter(|c| c.as_str().is_some_and(|c| words.contains(&c)))
                .collect();
            if let [one] = spelled.as_slice() {
                params.insert(name.clone(), (*one).clone());
                continue;
            }
            self.errors.push(format!(
                "value of {name} must be one of: {}, got: {as_text}{}",
                shown.join(", "),
                self.found_in()
            ));
        }
    }

    fn rule_mutually_exclusive(&mut self, rule: Option<&Value>, params: &Map<String, Value>) {
        let hits: Vec<String> = groups(rule)
            .into_iter()
            .filter(|g| g.iter().filter(|n| params.contains_key(*n)).count() > 1)
            .map(|g| g.join("|"))
            .collect();
        if !hits.is_empty() {
            self.errors.push(format!(
                "parameters are mutually exclusive: {}{}",
                hits.join(", "),
                self.found_in()
            ));
        }
    }

    /// `required_together`, `required_one_of`, `required_if`, `required_by`.
    fn other_rules(&mut self, rules: &Map<String, Value>, params: &Map<String, Value>) {
        let given = |n: &String| params.get(n).is_some_and(|v| !v.is_null());
        for g in groups(rules.get("required_together")) {
            let n = g.iter().filter(|n| params.contains_key(*n)).count();
            if n > 0 && n < g.len() {
                self.errors.push(format!(
                    "parameters are required together: {}{}",
                    g.join(", "),
                    self.found_in()
                ));
            }
        }
        for g in groups(rules.get("required_one_of")) {
            if !g.iter().any(|n| params.contains_key(n)) {
                self.errors.push(format!(
                    "one of the following is required: {}{}",
                    g.join(", "),
                    self.found_in()
                ));
            }
        }
        if let Some(Value::Array(rows)) = rules.get("required_if") {
            for row in rows {
                let Some(row) = row.as_array() else { continue };
                let (Some(key), Some(val), Some(reqs)) = (row.first(), row.get(1), row.get(2))
                else {
                    continue;
                };
                let key = text(key);
                if params.get(&key) != Some(val) {
                    continue;
                }
                let any = row.get(3).is_some_and(|v| is_true(Some(v)));
                let reqs = names(Some(reqs));
                let missing: Vec<String> = reqs.iter().filter(|r| !given(r)).cloned().collect();
                if (any && missing.len() == reqs.len()) || (!any && !missing.is_empty()) {
                    self.errors.push(format!(
                        "{key} is {} but {} of the following are missing: {}{}",
                        py_text(val),
                        if any { "any" } else { "all" },
                        missing.join(", "),
                        self.found_in()
                    ));
                }
            }
        }
        if let Some(Value::Object(by)) = rules.get("required_by") {
            for (key, reqs) in by {
                if !given(key) {
                    continue;
                }
                let missing: Vec<String> = names(Some(reqs))
                    .into_iter()
                    .filter(|r| !given(r))
                    .collect();
                if !missing.is_empty() {
                    self.errors.push(format!(
                        "missing parameter(s) required by '{key}': {}{}",
                        missing.join(", "),
                        self.found_in()
                    ));
                }
            }
        }
    }

    /// Suboptions (`options` of a `dict`, or of a `list` of `dict`s), level by level.
    fn sub_specs(
        &mut self,
        spec: &Map<String, Value>,
        params: &mut Map<String, Value>,
        prefix: &str,
    ) {
        for (name, s) in spec {
            let wanted = field(s, "type").map(text);
            let is_dicts = wanted.as_deref() == Some("dict")
                || (wanted.as_deref() == Some("list")
                    && field(s, "elements").map(text).as_deref() == Some("dict"));
            if !is_dicts {
                continue;
            }
            let Some(Value::Object(sub)) = field(s, "options") else {
                continue;
            };
            if is_true(field(s, "apply_defaults")) && params.get(name).is_none_or(Value::is_null) {
                params.insert(name.clone(), json!({}));
            }
            let Some(value) = params.get_mut(name).filter(|v| !v.is_null()) else {
                continue;
            };
            self.context.push(name.clone());
            let single = !value.is_array();
            let items: Vec<&mut Value> = match value {
                Value::Array(items) => items.iter_mut().collect(),
                other => vec![other],
            };
            let rules: Map<String, Value> = [
                "mutually_exclusive",
                "required_together",
                "required_one_of",
                "required_if",
                "required_by",
            ]
            .iter()
            .filter_map(|k| field(s, k).map(|v| (k.to_string(), v.clone())))
            .collect();
            for (idx, item) in items.into_iter().enumerate() {
                let Value::Object(sub_params) = item else {
                    self.errors.push(format!(
                        "value of '{name}' must be of type dict or list of dicts"
                    ));
                    continue;
                };
                let new_prefix = if single {
                    format!("{prefix}{name}.")
                } else {
                    format!("{prefix}{name}[{idx}].")
                };
                self.level(sub, sub_params, &rules);
                self.sub_specs(sub, sub_params, &new_prefix);
            }
            self.context.pop();
        }
    }
}

/// The groups of a `mutually_exclusive`-style rule: a list of lists, or one list.
fn groups(rule: Option<&Value>) -> Vec<Vec<String>> {
    match rule {
        Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
            items.iter().map(|g| names(Some(g))).collect()
        }
        Some(Value::Array(_)) => vec![names(rule)],
        _ => Vec::new(),
    }
}

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => args::truthy_str(s).unwrap_or(false),
        _ => false,
    }
}

/// A value as a string: strings as they are, anything else as Python shows it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_text(other),
    }
}

/// Python's `str()` of a value.
fn py_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => n.to_string(),
        other => crate::lookups::py_repr(other),
    }
}

/// Python's `type()` of a value, as messages show it.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "<class 'str'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Null => "<class 'NoneType'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

/// Ansible's type checker for `wanted` (`check_type_*`): the converted value, or why not.
fn convert(wanted: &str, v: &Value) -> Result<Value, String> {
    let cannot = |what: &str| format!("{} cannot be converted to {what}", py_type(v));
    match wanted {
        // A null is the one value `check_type_str` will not convert.
        "str" | "path" if v.is_null() => {
            Err("'None' is not a string and conversion is not allowed".into())
        }
        "str" => Ok(Value::String(py_text(v))),
        // `os.path.expanduser(os.path.expandvars(value))`.
        "path" => Ok(Value::String(super::command::expand_word(
            &py_text(v),
            &|name| std::env::var(name).ok(),
            &super::command::passwd_home,
        ))),
        "raw" => Ok(v.clone()),
        "list" => match v {
            Value::Array(_) => Ok(v.clone()),
            Value::String(s) => Ok(json!(s.split(',').collect::<Vec<_>>())),
            Value::Number(n) => Ok(json!([n.to_string()])),
            // Python's bool is an int: `[str(True)]`.
            Value::Bool(_) => Ok(json!([py_text(v)])),
            _ => Err(cannot("a list")),
        },
        "dict" => match v {
            Value::Object(_) => Ok(v.clone()),
            Value::String(s) if s.starts_with('{') => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| "unable to evaluate string as dictionary".to_string()),
            Value::String(s) if s.contains('=') => key_values(s),
            Value::String(_) => {
                Err("dictionary requested, could not parse JSON or key=value".into())
            }
            _ => Err(cannot("a dict")),
        },
        "bool" => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(_) | Value::Number(_) => {
                let t = py_text(v);
                match t.to_ascii_lowercase().as_str() {
                    "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Ok(json!(true)),
                    "n" | "no" | "off" | "0" | "false" | "f" | "0.0" => Ok(json!(false)),
                    _ => Err(format!(
                        "The value '{t}' is not a valid boolean.  Valid booleans include: 0, 'on', 'f', 'false', 1, 'no', 'n', '1', 0.0, 't', 'y', 'off', 'true', 'yes', 1.0, '0'"
                    )),
                }
            }
            _ => Err(cannot("a bool")),
        },
        "int" => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            Value::Bool(b) => Ok(json!(i64::from(*b))),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(json!(f as i64)),
                _ => Err(format!("\"{}\" cannot be converted to an int", py_text(v))),
            },
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(json!(i))
                } else if let Some(f) = t
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0)
                {
                    Ok(json!(f as i64))
                } else {
                    Err(format!("\"'{s}'\" cannot be converted to an int"))
                }
            }
            _ => Err(format!(
                "\"{}\" cannot be converted to an int",
                crate::lookups::py_repr(v)
            )),
        },
        "float" => match v {
            Value::Number(n) => Ok(json!(n.as_f64().unwrap_or_default())),
            Value::Bool(b) => Ok(json!(if *b { 1.0 } else { 0.0 })),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|f| json!(f))
                .map_err(|_| cannot("a float")),
            _ => Err(cannot("a float")),
        },
        "bytes" | "bits" => human_to_bytes(&py_text(v), wanted == "bits")
            .map(|n| json!(n))
            .ok_or_else(|| {
                cannot(if wanted == "bits" {
                    "a Bit value"
                } else {
                    "a Byte value"
                })
            }),
        "json" | "jsonarg" => match v {
            Value::String(s) => Ok(json!(s.trim())),
            Value::Array(_) | Value::Object(_) => Ok(json!(v.to_string())),
            _ => Err(cannot("a json string")),
        },
        other => Err(format!("unsupported type '{other}'")),
    }
}

/// `key=value` pairs split on commas and spaces, with quotes and backslashes, as
/// Ansible's `check_type_dict` reads them.
fn key_values(s: &str) -> Result<Value, String> {
    let mut fields = Vec::new();
    let mut buf = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.trim().chars() {
        if escaped {
            buf.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if quote.is_none() && (c == '\'' || c == '"') {
            quote = Some(c);
        } else if quote == Some(c) {
            quote = None;
        } else if quote.is_none() && (c == ',' || c == ' ') {
            if !buf.is_empty() {
                fields.push(std::mem::take(&mut buf));
            }
        } else {
            buf.push(c);
        }
    }
    if !buf.is_empty() {
        fields.push(buf);
    }
    let mut out = Map::new();
    for f in fields {
        let Some((k, v)) = f.split_once('=') else {
            return Err(
                "unable to evaluate string in the \"key=value\" format as dictionary".into(),
            );
        };
        out.insert(k.to_string(), json!(v));
    }
    Ok(Value::Object(out))
}

/// Ansible's `human_to_bytes`: `10M`, `1.5 KB`, `8Mb` (bits), a plain number.
fn human_to_bytes(s: &str, bits: bool) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let mut chars = unit.chars();
    let (prefix, suffix) = match (chars.next(), chars.next(), chars.next()) {
        (None, _, _) => return Some(num as u64),
        (Some(p), None, _) => (p, None),
        (Some(p), Some(b), None) => (p, Some(b)),
        _ => return None,
    };
    let power = "BKMGTPEZY".find(prefix.to_ascii_uppercase())?;
    match (suffix, bits) {
        (None, _) => {}
        (Some('b'), true) | (Some('B'), false) => {}
        _ if prefix.eq_ignore_ascii_case(&'b') => return None,
        _ => return None,
    }
    if prefix == 'b' && !bits || prefix == 'B' && bits && suffix.is_none() {
        return None;
    }
    Some((num * 1024f64.powi(power as i32)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(spec: Value, params: Value) -> Vec<String> {
        validate(
            spec.as_object().unwrap(),
            params.as_object().unwrap().clone(),
        )
    }

    #[test]
    fn valid_parameters_pass_with_conversions() {
        let spec = json!({
            "name": {"type": "str", "required": true},
            "port": {"type": "int"},
            "ratio": {"type": "float"},
            "on": {"type": "bool"},
            "tags": {"type": "list", "elements": "str"},
            "opts": {"type": "dict"},
            "size": {"type": "bytes"},
            "mode": {"choices": ["fast", "off"]},
        });
        let ok = errors(
            spec,
            json!({"name": 5, "port": "80", "ratio": "0.5", "on": "yes", "tags": "a,b",
                   "opts": "a=1 b='x y'", "size": "10M", "mode": false}),
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn errors_are_ansibles_in_its_order() {
        let spec = json!({
            "req": {"required": true},
            "port": {"type": "int"},
            "flag": {"type": "bool"},
            "l": {"type": "list"},
            "d": {"type": "dict"},
            "c": {"choices": ["a", "b"]},
            "many": {"type": "list", "choices": ["x", "y"]},
            "f": {"type": "float"},
        });
        let e = errors(
            spec,
            json!({"port": "eighty", "flag": "maybe", "l": {"a": 1}, "d": "nope",
                   "c": "z", "many": ["x", "q"], "f": "pi"}),
        );
        assert_eq!(
            e,
            [
                "missing required arguments: req",
                "argument 'port' is of type <class 'str'> and we were unable to convert to int: \"'eighty'\" cannot be converted to an int",
                "argument 'flag' is of type <class 'str'> and we were unable to convert to bool: The value 'maybe' is not a valid boolean.  Valid booleans include: 0, 'on', 'f', 'false', 1, 'no', 'n', '1', 0.0, 't', 'y', 'off', 'true', 'yes', 1.0, '0'",
                "argument 'l' is of type <class 'dict'> and we were unable to convert to list: <class 'dict'> cannot be converted to a list",
                "argument 'd' is of type <class 'str'> and we were unable to convert to dict: dictionary requested, could not parse JSON or key=value",
                "argument 'f' is of type <class 'str'> and we were unable to convert to float: <class 'str'> cannot be converted to a float",
                "value of c must be one of: a, b, got: z",
                "value of many must be one or more of: x, y. Got no match for: q",
            ]
        );
    }

    /// The target's own case: a suboption two levels down that is missing, and one
    /// that is not in the spec.
    #[test]
    fn suboptions_name_their_path() {
        let spec = json!({"multi_level_option": {"type": "dict", "options": {
            "second_level": {"type": "dict", "options": {
                "third_level": {"type": "int", "required": true}}}}}});
        let e = errors(
            spec.clone(),
            json!({"multi_level_option": {"second_level": {"not_a_supported_suboption": true}}}),
        );
        assert_eq!(
            e,
            [
                "missing required arguments: third_level found in multi_level_option -> second_level",
                "multi_level_option.second_level.not_a_supported_suboption. Supported parameters include: third_level.",
            ]
        );
        let e = errors(
            spec,
            json!({"multi_level_option": {"second_level": {"third_level": "x"}}}),
        );
        assert_eq!(
            e,
            [
                "argument 'third_level' is of type <class 'str'> found in 'multi_level_option -> second_level'. and we were unable to convert to int: \"'x'\" cannot be converted to an int"
            ]
        );
    }

    #[test]
    fn option_rules_and_lists_of_dicts() {
        let spec = json!({"users": {"type": "list", "elements": "dict",
            "mutually_exclusive": [["uid", "system"]],
            "required_by": {"home": ["shell"]},
            "options": {"name": {"required": true}, "uid": {"type": "int"},
                        "system": {"type": "bool"}, "home": {}, "shell": {}}}});
        let e = errors(
            spec,
            json!({"users": [{"name": "a", "uid": 1, "system": true}, {"home": "/h"}, "bare"]}),
        );
        // The bare string fails the elements check first and is dropped from the
        // list, as Ansible's `_validate_elements` drops it, so no suboption check sees it.
        assert_eq!(
            e,
            [
                "Elements value for option 'users' is of type <class 'str'> and we were unable to convert to dict: dictionary requested, could not parse JSON or key=value",
                "parameters are mutually exclusive: uid|system found in users",
                "missing required arguments: name found in users",
                "missing parameter(s) required by 'home': shell found in users",
            ]
        );
        let one = json!({"opt": {"type": "dict", "options": {"a": {}}}});
        assert_eq!(
            errors(one, json!({"opt": {"a": 1, "b": 2}})),
            ["opt.b. Supported parameters include: a."]
        );
    }

    #[test]
    fn a_required_null_is_not_converted() {
        let spec = json!({"s": {"required": true, "type": "str"}, "i": {"required": true, "type": "int"},
                          "r": {"required": true, "type": "raw"}, "o": {"type": "str"}});
        assert_eq!(
            errors(spec, json!({"s": null, "i": null, "r": null, "o": null})),
            [
                "argument 's' is of type <class 'NoneType'> and we were unable to convert to str: 'None' is not a string and conversion is not allowed",
                "argument 'i' is of type <class 'NoneType'> and we were unable to convert to int: \"None\" cannot be converted to an int",
            ]
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_to_bytes("10M", false), Some(10 << 20));
        assert_eq!(human_to_bytes("1KB", false), Some(1024));
        assert_eq!(human_to_bytes("8", false), Some(8));
        assert_eq!(human_to_bytes("1Mb", true), Some(1 << 20));
        assert_eq!(human_to_bytes("foo", false), None);
        assert_eq!(human_to_bytes("1Mb", false), None);
    }
}
