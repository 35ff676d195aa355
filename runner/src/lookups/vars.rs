//! The `vars` and `varnames` lookups: variables by name, and the names of variables
//! matching Python regular expressions, among the variables of the template being
//! rendered; and `inventory_hostnames`, the hosts a pattern selects in `groups`.

use super::{LookupError, Scope, is_undefined_marker, py_str, py_type};
use crate::plan::Vars;
use minijinja::value::Value as JValue;
use serde_json::Value;

/// A variable's value, rendered; `None` when it does not exist (or renders to undefined).
fn variable(vars: &JValue, name: &str) -> Option<Value> {
    let found = vars
        .get_item(&JValue::from(name))
        .ok()
        .filter(|v| !v.is_undefined());
    // Ansible looks in hostvars[inventory_hostname] too.
    let found = found.or_else(|| {
        let host = vars.get_item(&JValue::from("inventory_hostname")).ok()?;
        let own = vars
            .get_item(&JValue::from("hostvars"))
            .ok()?
            .get_item(&host)
            .ok()?;
        own.get_item(&JValue::from(name))
            .ok()
            .filter(|v| !v.is_undefined())
    })?;
    serde_json::to_value(&found).ok()
}

/// `vars`: the value of each named variable; `default=` for a missing one.
pub(super) fn vars(
    terms: &Value,
    options: &Vars,
    scope: &Scope,
) -> Result<Vec<Value>, LookupError> {
    let default = options
        .get("default")
        .filter(|d| !d.is_null() && !is_undefined_marker(d));
    let terms = match terms {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map.keys().map(|k| Value::String(k.clone())).collect(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for term in &terms {
        let Value::String(name) = term else {
            return Err(LookupError::ansible(format!(
                "Invalid setting identifier, \"{}\" is not a string, its a <class '{}'>",
                py_str(term),
                py_type(term)
            )));
        };
        match scope.vars.as_ref().and_then(|v| variable(v, name)) {
            Some(value) => out.push(value),
            None => match default {
                Some(d) => out.push(d.clone()),
                None => {
                    return Err(LookupError::Undefined(format!(
                        "No variable found with this name: {name}"
                    )));
                }
            },
        }
    }
    Ok(out)
}

/// The names of the variables in scope, in the order the context holds them.
fn names(vars: &JValue) -> Vec<String> {
    vars.try_iter()
        .map(|keys| {
            keys.filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Python's `re.compile` error texts for what users most often get wrong; other
/// patterns say what the regex engine said.
fn python_regex_error(pattern: &str, detail: &str) -> String {
    let repeat = ['*', '+', '?', '{'];
    let mut prev: Option<char> = None;
    for (i, c) in pattern.char_indices() {
        let at_start = prev.is_none() || matches!(prev, Some('(' | '|'));
        // A `{` without a closing `}` is a literal brace in Python, not a repetition.
        let counted_brace = c != '{' || pattern.get(i..).is_some_and(|r| r.contains('}'));
        if repeat.contains(&c) && at_start && counted_brace {
            return format!("nothing to repeat at position {i}");
        }
        prev = Some(c);
    }
    detail.to_string()
}

/// `varnames`: the names of the variables any of the patterns finds (`re.search`).
pub(super) fn varnames(terms: &Value, _: &Vars, scope: &Scope) -> Result<Vec<Value>, LookupError> {
    let Some(vars) = &scope.vars else {
        return Err(LookupError::ansible("No variables available to search"));
    };
    let all = names(vars);
    let terms = match terms {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for term in &terms {
        let Value::String(pattern) = term else {
            return Err(LookupError::ansible(format!(
                "Invalid setting identifier, \"{}\" is not a string, it is a <class '{}'>",
                py_str(term),
                py_type(term)
            )));
        };
        let re = crate::pyre::Pattern::new(pattern).map_err(|e| {
            LookupError::ansible(format!(
                "Unable to use \"{pattern}\" as a search parameter: {}",
                python_regex_error(pattern, &e)
            ))
        })?;
        for name in &all {
            if re.is_match(name.as_bytes()).map_err(LookupError::ansible)? {
                out.push(Value::String(name.clone()));
            }
        }
    }
    Ok(out)
}

/// `inventory_hostnames`: the inventory's hosts the pattern selects (its terms joined as
/// a union, as Ansible passes them), in inventory order, from `groups` as the template
/// sees it (with what `group_by` and `add_host` did on this host).
pub(super) fn inventory_hostnames(
    terms: &Value,
    _: &Vars,
    scope: &Scope,
) -> Result<Vec<Value>, LookupError> {
    let groups: std::collections::BTreeMap<String, Vec<String>> = scope
        .vars
        .as_ref()
        .and_then(|v| variable(v, "groups"))
        .and_then(|g| serde_json::from_value(g).ok())
        .unwrap_or_default();
    let pattern = match terms {
        Value::Array(items) => items.iter().map(py_str).collect::<Vec<_>>().join(","),
        other => py_str(other),
    };
    let all: Vec<&str> = groups
        .get("all")
        .map(|h| h.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let selected = crate::hostpattern::evaluate(&pattern, all.len(), |base| {
        crate::hostpattern::matching(base, &all, &groups)
    });
    Ok(all
        .iter()
        .zip(selected)
        .filter(|(_, on)| *on)
        .map(|(h, _)| Value::String((*h).to_string()))
        .collect())
}
