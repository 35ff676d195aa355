//! The lookups that reshape lists: `items`, `list`, `dict`, `indexed_items`, `nested`,
//! `together`, `subelements` and `random_choice`, as ansible-core 2.18's plugins do,
//! Python's iteration rules included (a dict iterates over its keys, a string over its
//! characters).

use super::{LookupError, Scope, py_boolean, py_str, py_type};
use crate::plan::Vars;
use serde_json::{Map, Value};

type Ran = Result<Vec<Value>, LookupError>;

/// A Python exception other than Ansible's own, as the plugin would raise it.
fn python_error(class: &str, msg: impl Into<String>) -> LookupError {
    LookupError::Plugin {
        class: class.to_string(),
        msg: msg.into(),
    }
}

/// What Python's `for x in v` visits.
fn iterate(v: &Value) -> Result<Vec<Value>, LookupError> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        Value::Object(map) => Ok(map.keys().map(|k| Value::String(k.clone())).collect()),
        Value::String(s) => Ok(s.chars().map(|c| Value::String(c.to_string())).collect()),
        other => Err(python_error(
            "TypeError",
            format!("'{}' object is not iterable", py_type(other)),
        )),
    }
}

/// `LookupBase._flatten`: the items of `terms`, lists among them spliced in (one level).
fn flatten(terms: &Value) -> Ran {
    let mut out = Vec::new();
    for term in iterate(terms)? {
        match term {
            Value::Array(inner) => out.extend(inner),
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `listify_lookup_plugin_terms` on an already rendered term: a string or a scalar
/// becomes a one-element list; lists and dicts stay as they are.
fn listify(v: Value) -> Value {
    match v {
        v @ (Value::Array(_) | Value::Object(_)) => v,
        scalar => Value::Array(vec![scalar]),
    }
}

/// `items`: the terms, flattened one level.
pub(super) fn items(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    flatten(terms)
}

/// `community.general.flattened`: the terms with every list inside them spliced in,
/// at any depth; a list of one list counts as that list, and an item "None" or "null"
/// ends the list it is in (the collection's "undefined item").
pub(super) fn flattened(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    let Value::Array(items) = terms else {
        return Err(LookupError::ansible("with_flattened expects a list"));
    };
    Ok(flatten_all(items))
}

fn flatten_all(items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for item in items {
        let mut item = item;
        while let Value::Array(one) = item
            && let [only] = one.as_slice()
        {
            item = only;
        }
        match item {
            Value::String(s) if s == "None" || s == "null" => break,
            Value::Array(inner) => out.extend(flatten_all(inner)),
            other => out.push(other.clone()),
        }
    }
    out
}

/// `list`: the terms as they are.
pub(super) fn list(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    match terms {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(LookupError::ansible("with_list expects a list")),
    }
}

/// `dict`: `{key, value}` for every entry of every dict among the terms.
pub(super) fn dict(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    let terms = match terms {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for term in terms {
        let Value::Object(map) = term else {
            return Err(LookupError::ansible("with_dict expects a dict"));
        };
        for (k, v) in map {
            let mut entry = Map::new();
            entry.insert("key".into(), Value::String(k));
            entry.insert("value".into(), v);
            out.push(Value::Object(entry));
        }
    }
    Ok(out)
}

/// `indexed_items`: `[index, item]` for the terms flattened one level.
pub(super) fn indexed_items(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    if !terms.is_array() {
        return Err(LookupError::ansible("with_indexed_items expects a list"));
    }
    Ok(flatten(terms)?
        .into_iter()
        .enumerate()
        .map(|(i, item)| Value::Array(vec![Value::from(i), item]))
        .collect())
}

/// `LookupBase._combine`: every pairing of an item of `a` with one of `b`, flattened.
fn combine(a: &Value, b: &Value) -> Ran {
    let right = iterate(b)?;
    let mut out = Vec::new();
    for x in iterate(a)? {
        for y in &right {
            out.push(Value::Array(flatten(&Value::Array(vec![
                x.clone(),
                y.clone(),
            ]))?));
        }
    }
    Ok(out)
}

/// `nested`: the product of the lists, each combination flattened.
pub(super) fn nested(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    let lists: Vec<Value> = iterate(terms)?.into_iter().map(listify).collect();
    let mut lists = lists.into_iter();
    let Some(mut result) = lists.next() else {
        return Err(LookupError::ansible(
            "with_nested requires at least one element in the nested list",
        ));
    };
    for next in lists {
        result = Value::Array(combine(&result, &next)?);
    }
    iterate(&result)?
        .iter()
        .map(|x| flatten(x).map(Value::Array))
        .collect()
}

/// `together`: the lists zipped, shorter ones padded with `None`, each row flattened.
pub(super) fn together(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    let lists: Vec<Vec<Value>> = iterate(terms)?
        .into_iter()
        .map(|t| iterate(&listify(t)))
        .collect::<Result<_, _>>()?;
    if lists.is_empty() {
        return Err(LookupError::ansible(
            "with_together requires at least one element in each list",
        ));
    }
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .map(|i| {
            let row: Vec<Value> = lists
                .iter()
                .map(|l| l.get(i).cloned().unwrap_or(Value::Null))
                .collect();
            flatten(&Value::Array(row)).map(Value::Array)
        })
        .collect()
}

/// A random number below `n` (n > 0). `random_choice` needs no cryptographic quality,
/// and the runner has no random source of its own: std's randomly keyed hasher is one.
fn random_below(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    usize::try_from(h.finish() % (n as u64)).unwrap_or(0)
}

/// `random_choice`: one of the terms, chosen at random; no terms, none.
pub(super) fn random_choice(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    match terms {
        Value::Array(items) if items.is_empty() => Ok(Vec::new()),
        Value::Array(items) => Ok(items
            .get(random_below(items.len()))
            .cloned()
            .into_iter()
            .collect()),
        other => Err(LookupError::ansible(format!(
            "Unable to choose random term: {}",
            py_str(other)
        ))),
    }
}

/// Whether a record says it was skipped: a `skipped` key whose value is anything but
/// `False` (Ansible tests `is not False`).
fn skipped(map: &Map<String, Value>) -> bool {
    map.get("skipped")
        .is_some_and(|v| !matches!(v, Value::Bool(false)))
}

/// The object at `path` inside `root` (every step an object, as the caller checked).
fn at_path<'a>(root: &'a Map<String, Value>, path: &[String]) -> &'a Map<String, Value> {
    let mut cur = root;
    for key in path {
        match cur.get(key) {
            Some(Value::Object(inner)) => cur = inner,
            _ => break,
        }
    }
    cur
}

/// Removes `key` from the object at `path` inside `root` and returns its value.
fn pop_at(root: &mut Map<String, Value>, path: &[String], key: &str) -> Option<Value> {
    let mut cur = root;
    for step in path {
        match cur.get_mut(step) {
            Some(Value::Object(inner)) => cur = inner,
            _ => return None,
        }
    }
    cur.shift_remove(key)
}

/// `subelements`: `[record, element]` for every element of the list at a dotted key
/// inside each record; the records come from a list, or the values of a dict. As in
/// Ansible, the record handed out no longer holds that list.
pub(super) fn subelements(terms: &Value, _: &Vars, _: &Scope) -> Ran {
    let bad = |msg: &str| {
        LookupError::ansible(format!(
            "subelements lookup expects a list of two or three items, {msg}"
        ))
    };
    let Value::Array(terms) = terms else {
        // `terms[0]` of a dict: Python's KeyError.
        return Err(python_error("KeyError", "0"));
    };
    let mut terms = terms.clone();
    let Some(first) = terms.first_mut() else {
        return Err(python_error("IndexError", "list index out of range"));
    };
    *first = listify(first.take());
    if !(2..=3).contains(&terms.len()) {
        return Err(bad(""));
    }
    let (Some(records), Some(Value::String(key))) = (terms.first(), terms.get(1)) else {
        return Err(bad(
            "first a dict or a list, second a string pointing to the subkey",
        ));
    };
    let subkeys: Vec<&str> = key.split('.').collect();
    let records: Vec<Value> = match records {
        Value::Object(map) if skipped(map) => return Ok(Vec::new()),
        Value::Object(map) => map.values().cloned().collect(),
        Value::Array(items) => items.clone(),
        _ => {
            return Err(bad(
                "first a dict or a list, second a string pointing to the subkey",
            ));
        }
    };
    let empty = Map::new();
    let flags = match terms.get(2) {
        None => &empty,
        Some(Value::Object(map)) => map,
        Some(other) => {
            let all_flags = iterate(other)?
                .iter()
                .all(|k| k.as_str() == Some("skip_missing"));
            if !all_flags {
                return Err(bad(
                    "the optional third item must be a dict with flags skip_missing",
                ));
            }
            return Err(python_error(
                "AttributeError",
                format!("'{}' object has no attribute 'get'", py_type(other)),
            ));
        }
    };
    let skip_missing = flags.get("skip_missing").is_some_and(py_boolean);
    let mut out = Vec::new();
    for record in records {
        let Value::Object(mut record) = record else {
            return Err(LookupError::ansible(format!(
                "subelements lookup expects a dictionary, got '{}'",
                py_str(&record)
            )));
        };
        if skipped(&record) {
            continue;
        }
        let last = subkeys.last().copied();
        let mut last_reached = false;
        let mut path: Vec<String> = Vec::new();
        let mut sublist: Vec<Value> = Vec::new();
        for subkey in &subkeys {
            // Ansible compares by value: a dotted key that repeats its last part ends early.
            if Some(*subkey) == last {
                last_reached = true;
            }
            let here = at_path(&record, &path);
            let Some(value) = here.get(*subkey) else {
                if skip_missing {
                    continue;
                }
                return Err(LookupError::ansible(format!(
                    "could not find '{subkey}' key in iterated item '{}'",
                    py_str(&Value::Object(here.clone()))
                )));
            };
            if !last_reached {
                if value.is_object() {
                    path.push((*subkey).to_string());
                } else if skip_missing {
                    continue;
                } else {
                    return Err(LookupError::ansible(format!(
                        "the key {subkey} should point to a dictionary, got '{}'",
                        py_str(value)
                    )));
                }
            } else if value.is_array() {
                if let Some(Value::Array(items)) = pop_at(&mut record, &path, subkey) {
                    sublist = items;
                }
            } else {
                return Err(LookupError::ansible(format!(
                    "the key {subkey} should point to a list, got '{}'",
                    py_str(value)
                )));
            }
        }
        let record = Value::Object(record);
        for item in sublist {
            out.push(Value::Array(vec![record.clone(), item]));
        }
    }
    Ok(out)
}
