//! ansible-core's `plugins/filter/core.py`: encodings, JSON and YAML, paths, hashes,
//! regular expressions, data structures and the small helpers (`ternary`, `mandatory`,
//! `comment`, `random`, ...), with Ansible's argument names, defaults and messages.
//!
//! Maps keep insertion order, as Python's dicts do; `sort_keys` sorts them where Python
//! does (`to_nice_json`, both YAML dumps). Set results keep the order of first appearance.

use super::{
    Opts, add_filters, invalid, only, only_str, opts, py_regex, py_str, py_type, split, text_fits,
    to_json,
};
use crate::digest;
use crate::pyre::{Template, group};
use crate::template::{JsonStyle, py_json_styled};
use minijinja::value::{Kwargs, Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The items of a sequence (or the keys of a mapping, or a string's characters).
pub(crate) fn items(v: &JValue, filter: &str) -> Result<Vec<JValue>, Error> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::String => {
            Ok(v.try_iter()?.collect())
        }
        ValueKind::Undefined => Err(invalid(format!("{filter}: the value is undefined"))),
        _ => Err(invalid(format!(
            "{filter}: '{}' object is not iterable",
            py_type(v)
        ))),
    }
}

/// True for a list (Ansible's `is_sequence`: not a string, not a mapping).
pub(crate) fn is_sequence(v: &JValue) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// Distinct values, in the order they first appear.
pub(crate) fn distinct(values: impl IntoIterator<Item = JValue>) -> Vec<JValue> {
    let mut out: Vec<JValue> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Data structures.

/// Ansible's `flatten`: nested lists opened up to `levels` deep; with `skip_nulls`,
/// `None` and the strings `'None'` and `'null'` are dropped.
fn flatten_into(v: &JValue, levels: Option<i64>, skip_nulls: bool, out: &mut Vec<JValue>) {
    for item in v.try_iter().into_iter().flatten() {
        let null_text = matches!(item.as_str(), Some("None" | "null"));
        if skip_nulls && (item.is_none() || item.is_undefined() || null_text) {
            continue;
        }
        match levels {
            _ if !is_sequence(&item) => out.push(item),
            None => flatten_into(&item, None, skip_nulls, out),
            Some(n) if n >= 1 => flatten_into(&item, Some(n - 1), skip_nulls, out),
            Some(_) => out.push(item),
        }
    }
}

fn flatten(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let levels = match o.arg(0, "levels")? {
        None => None,
        Some(l) if l.is_none() => None,
        Some(l) => Some(
            l.as_i64()
                .ok_or_else(|| invalid(format!("flatten: levels must be an integer, got {l}")))?,
        ),
    };
    let skip_nulls = match o.arg(1, "skip_nulls")? {
        Some(s) => s.is_true(),
        None => true,
    };
    o.done("flatten", 2)?;
    if !is_sequence(&v) && v.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "flatten: '{}' object is not iterable",
            py_type(&v)
        )));
    }
    let mut out = Vec::new();
    flatten_into(&v, levels, skip_nulls, &mut out);
    Ok(JValue::from(out))
}

/// Ansible's `merge_hash`: `y` over `x`, dicts merged when `recursive`, lists as
/// `list_merge` says.
fn merge_hash(
    x: &serde_json::Map<String, Value>,
    y: &serde_json::Map<String, Value>,
    recursive: bool,
    list_merge: &str,
) -> serde_json::Map<String, Value> {
    let mut out = x.clone();
    for (key, y_value) in y {
        let Some(x_value) = out.get(key) else {
            out.insert(key.clone(), y_value.clone());
            continue;
        };
        let merged = match (x_value, y_value) {
            (Value::Object(xm), Value::Object(ym)) if recursive => {
                Value::Object(merge_hash(xm, ym, recursive, list_merge))
            }
            (Value::Array(xl), Value::Array(yl)) => match list_merge {
                "append" => Value::Array(xl.iter().chain(yl).cloned().collect()),
                "prepend" => Value::Array(yl.iter().chain(xl).cloned().collect()),
                "append_rp" => Value::Array(
                    xl.iter()
                        .filter(|z| !yl.contains(z))
                        .chain(yl)
                        .cloned()
                        .collect(),
                ),
                "prepend_rp" => Value::Array(
                    yl.iter()
                        .chain(xl.iter().filter(|z| !yl.contains(z)))
                        .cloned()
                        .collect(),
                ),
                "keep" => x_value.clone(),
                _ => y_value.clone(),
            },
            _ => y_value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    out
}

/// True when an undefined value hides anywhere inside `v` (Ansible's
/// `recursive_check_defined`).
fn has_undefined(v: &JValue) -> bool {
    match v.kind() {
        ValueKind::Undefined => true,
        ValueKind::Map => v
            .try_iter()
            .into_iter()
            .flatten()
            .any(|k| v.get_item(&k).map_or(true, |x| has_undefined(&x))),
        ValueKind::Seq | ValueKind::Iterable => v
            .try_iter()
            .into_iter()
            .flatten()
            .any(|x| has_undefined(&x)),
        _ => false,
    }
}

fn combine(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let names: Vec<String> = o.kw.args().map(str::to_string).collect();
    if names.iter().any(|n| n != "recursive" && n != "list_merge") {
        return Err(invalid(
            "'recursive' and 'list_merge' are the only valid keyword arguments",
        ));
    }
    let recursive = o.flag(usize::MAX, "recursive")?;
    let list_merge = match o.kw.get::<Option<JValue>>("list_merge")? {
        Some(l) => py_str(&l),
        None => "replace".to_string(),
    };
    if ![
        "replace",
        "keep",
        "append",
        "prepend",
        "append_rp",
        "prepend_rp",
    ]
    .contains(&list_merge.as_str())
    {
        return Err(invalid(
            "merge_hash: 'list_merge' argument can only be equal to 'replace', 'keep', 'append', 'prepend', 'append_rp' or 'prepend_rp'",
        ));
    }
    // `[d1, d2] | combine` and `d1 | combine(d2, [d3])`: one level of lists is opened.
    let mut terms = Vec::new();
    for t in std::iter::once(v).chain(o.pos) {
        if is_sequence(&t) {
            terms.extend(t.try_iter()?);
        } else {
            terms.push(t);
        }
    }
    if terms.iter().any(has_undefined) {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "combine: a value to combine is undefined",
        ));
    }
    let mut dicts = Vec::new();
    for t in &terms {
        if t.is_none() && terms.len() == 1 {
            // `None | combine` is `{}` in Ansible (its flatten drops the None).
            return Ok(JValue::from_serialize(serde_json::Map::new()));
        }
        if t.is_none() {
            continue;
        }
        match to_json(t, "combine")? {
            Value::Object(m) => dicts.push(m),
            other => {
                return Err(invalid(format!(
                    "failed to combine variables, expected dicts but got a '{}' instead",
                    json_type(&other)
                )));
            }
        }
    }
    let mut it = dicts.into_iter().rev();
    let Some(mut result) = it.next() else {
        return Ok(JValue::from_serialize(serde_json::Map::new()));
    };
    for lower in it {
        result = merge_hash(&lower, &result, recursive, &list_merge);
    }
    Ok(JValue::from_serialize(result))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `extract`: `container[item]`, then `[key]` for each of `morekeys`; a missing key is
/// undefined (so `default` applies), as with Jinja's `environment.getitem`.
fn extract(item: JValue, container: JValue, morekeys: Option<JValue>) -> Result<JValue, Error> {
    let mut keys = vec![item];
    match morekeys {
        None => {}
        Some(m) if is_sequence(&m) => keys.extend(m.try_iter()?),
        Some(m) => keys.push(m),
    }
    let mut value = container;
    for key in keys {
        if value.is_undefined() {
            return Ok(JValue::UNDEFINED);
        }
        value = value.get_item(&key).unwrap_or(JValue::UNDEFINED);
    }
    Ok(value)
}

fn subelements(obj: JValue, subs: JValue, skip_missing: bool) -> Result<JValue, Error> {
    let elements: Vec<JValue> = match obj.kind() {
        ValueKind::Map => obj
            .try_iter()?
            .map(|k| obj.get_item(&k).unwrap_or_default())
            .collect(),
        ValueKind::Seq | ValueKind::Iterable => obj.try_iter()?.collect(),
        _ => return Err(invalid("obj must be a list of dicts or a nested dict")),
    };
    let path: Vec<JValue> = if is_sequence(&subs) {
        subs.try_iter()?.collect()
    } else if let Some(s) = subs.as_str() {
        s.split('.').map(JValue::from).collect()
    } else {
        return Err(invalid("subelements must be a list or a string"));
    };
    let mut out = Vec::new();
    for element in elements {
        let mut values = element.clone();
        let mut missing = false;
        for key in &path {
            // Python: a key of anything but a dict is a TypeError.
            if values.kind() != ValueKind::Map {
                return Err(invalid(format!(
                    "the key {} should point to a dictionary, got '{}'",
                    py_str(key),
                    py_str(&values)
                )));
            }
            let next = values.get_item(key).unwrap_or(JValue::UNDEFINED);
            if next.is_undefined() {
                if skip_missing {
                    missing = true;
                    break;
                }
                return Err(invalid(format!(
                    "could not find {} key in iterated item {}",
                    crate::template::py_display(&JValue::from(vec![key.clone()]))
                        .trim_start_matches('[')
                        .trim_end_matches(']'),
                    crate::template::py_display(&values)
                )));
            }
            values = next;
        }
        if missing {
            continue;
        }
        if !is_sequence(&values) {
            return Err(invalid(format!(
                "the key {} should point to a list, got {}",
                crate::template::py_display(&JValue::from(vec![
                    path.last().cloned().unwrap_or_default()
                ]))
                .trim_start_matches('[')
                .trim_end_matches(']'),
                crate::template::py_display(&values)
            )));
        }
        for value in values.try_iter()? {
            out.push(JValue::from(vec![element.clone(), value]));
        }
    }
    Ok(JValue::from(out))
}

fn item_names(o: &Opts, filter: &str) -> Result<(String, String), Error> {
    let k = o
        .arg(0, "key_name")?
        .map(|k| py_str(&k))
        .unwrap_or_else(|| "key".into());
    let v = o
        .arg(1, "value_name")?
        .map(|v| py_str(&v))
        .unwrap_or_else(|| "value".into());
    o.done(filter, 2)?;
    Ok((k, v))
}

fn dict2items(v: JValue, o: Opts) -> Result<JValue, Error> {
    let (kn, vn) = item_names(&o, "dict2items")?;
    if v.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "dict2items requires a dictionary, got <class '{}'> instead.",
            py_type(&v)
        )));
    }
    let mut out = Vec::new();
    for key in v.try_iter()? {
        let value = v.get_item(&key)?;
        out.push(JValue::from_iter([(kn.clone(), key), (vn.clone(), value)]));
    }
    Ok(JValue::from(out))
}

fn items2dict(v: JValue, o: Opts) -> Result<JValue, Error> {
    let (kn, vn) = item_names(&o, "items2dict")?;
    if !is_sequence(&v) {
        return Err(invalid(format!(
            "items2dict requires a list, got <class '{}'> instead.",
            py_type(&v)
        )));
    }
    let mut out: Vec<(JValue, JValue)> = Vec::new();
    for item in v.try_iter()? {
        if item.kind() != ValueKind::Map {
            return Err(invalid(format!(
                "items2dict requires a list of dictionaries, got {} instead.",
                crate::template::py_display(&v)
            )));
        }
        let (k, val) = (
            item.get_item(&JValue::from(kn.as_str()))?,
            item.get_item(&JValue::from(vn.as_str()))?,
        );
        if k.is_undefined() || val.is_undefined() {
            return Err(invalid(format!(
                "items2dict requires each dictionary in the list to contain the keys '{kn}' and '{vn}', got {} instead.",
                crate::template::py_display(&v)
            )));
        }
        out.push((k, val));
    }
    Ok(JValue::from_iter(out))
}

// ---------------------------------------------------------------------------
// Paths (Python's posixpath and ntpath).

/// `path_join`, like Python's `os.path.join`: an absolute part restarts the path.
fn path_join(v: &JValue) -> Result<String, Error> {
    let parts: Vec<String> = if let Some(s) = v.as_str() {
        vec![s.to_string()]
    } else if is_sequence(v) {
        v.try_iter()?.map(|p| py_str(&p)).collect()
    } else {
        return Err(invalid(format!(
            "|path_join expects string or sequence, got <class '{}'> instead.",
            py_type(v)
        )));
    };
    let mut out = String::new();
    for p in parts {
        if p.starts_with('/') {
            out = p;
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(&p);
        } else {
            out.push('/');
            out.push_str(&p);
        }
    }
    Ok(out)
}

/// Python's `posixpath.normpath`: lexical, `//` kept at the start, `..` above the root
/// dropped, an empty result is `.`.
pub(crate) fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut comps: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if comps.last().is_some_and(|l| *l != "..") {
                    comps.pop();
                } else if initial.is_empty() {
                    comps.push("..");
                }
            }
            other => comps.push(other),
        }
    }
    let joined = format!("{initial}{}", comps.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into())
}

/// Python's `posixpath.abspath`.
fn abspath(p: &str) -> String {
    if p.starts_with('/') {
        normpath(p)
    } else {
        normpath(&format!("{}/{p}", cwd()))
    }
}

/// Python's `os.path.relpath(path, start)`.
fn relpath(path: &str, start: Option<&str>) -> Result<String, Error> {
    if path.is_empty() {
        return Err(invalid("no path specified"));
    }
    let start = start.unwrap_or(".");
    let p = abspath(path);
    let s = abspath(start);
    let pc: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    let sc: Vec<&str> = s.split('/').filter(|c| !c.is_empty()).collect();
    let common = pc.iter().zip(&sc).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = std::iter::repeat_n("..", sc.len() - common).collect();
    out.extend(pc.iter().skip(common));
    Ok(if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    })
}

/// Python's `os.path.realpath`: symlinks resolved where they exist, the rest lexical.
fn realpath(p: &str) -> String {
    let abs = abspath(p);
    let mut resolved = PathBuf::from("/");
    let mut rest: Vec<String> = abs
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    rest.reverse();
    let mut hops = 0;
    while let Some(c) = rest.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(&c);
        match std::fs::read_link(&candidate) {
            Ok(target) if hops < 40 => {
                hops += 1;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    resolved = PathBuf::from("/");
                }
                let mut parts: Vec<String> = t
                    .split('/')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect();
                parts.reverse();
                rest.extend(parts);
            }
            _ => resolved = candidate,
        }
    }
    resolved.to_string_lossy().into_owned()
}

/// Python's `os.path.expanduser` for `~` and `~/...` (the current user's home).
fn expanduser(v: &str) -> String {
    let Ok(home) = std::env::var("HOME") else {
        return v.to_string();
    };
    if v == "~" {
        home
    } else if let Some(rest) = v.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        v.to_string()
    }
}

/// Python's `os.path.expandvars`: `$NAME` and `${NAME}` from the environment; unknown
/// names are left as written.
fn expandvars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        let (name, tail, written) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(end) => (
                    b.get(..end).unwrap_or_default(),
                    b.get(end + 1..).unwrap_or_default(),
                    format!("${{{}}}", b.get(..end).unwrap_or_default()),
                ),
                None => ("", after, "$".to_string()),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = after.get(..end).unwrap_or_default();
            (
                name,
                after.get(end..).unwrap_or_default(),
                format!("${name}"),
            )
        };
        match std::env::var(name) {
            Ok(v) if !name.is_empty() => out.push_str(&v),
            _ => out.push_str(&written),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Python's `os.path.splitext`: the extension starts at the file name's last dot,
/// unless only dots come before it (`.bashrc` has none).
fn splitext(v: &str) -> (String, String) {
    let name_start = v.rfind('/').map_or(0, |i| i + 1);
    let name = v.get(name_start..).unwrap_or_default();
    let leading_dots = name.len() - name.trim_start_matches('.').len();
    let split = match name.rfind('.') {
        Some(i) if i > leading_dots.saturating_sub(1) && i >= leading_dots => name_start + i,
        _ => v.len(),
    };
    let (stem, ext) = v.split_at(split);
    (stem.to_string(), ext.to_string())
}

/// Python's `ntpath.splitdrive`: a drive letter (`C:`) or a UNC share (`//host/share`).
fn win_splitdrive(p: &str) -> (String, String) {
    let norm: String = p.replace('/', "\\");
    if norm.starts_with("\\\\") && !norm.starts_with("\\\\\\") {
        // \\server\share\rest: the drive is \\server\share.
        let rest = norm.get(2..).unwrap_or_default();
        if let Some(i) = rest.find('\\') {
            let after = rest.get(i + 1..).unwrap_or_default();
            let j = after.find('\\').unwrap_or(after.len());
            let drive_len = 2 + i + 1 + j;
            if j > 0 {
                return (
                    p.get(..drive_len).unwrap_or_default().to_string(),
                    p.get(drive_len..).unwrap_or_default().to_string(),
                );
            }
        }
        return (String::new(), p.to_string());
    }
    if p.as_bytes().get(1) == Some(&b':') {
        return (
            p.get(..2).unwrap_or_default().to_string(),
            p.get(2..).unwrap_or_default().to_string(),
        );
    }
    (String::new(), p.to_string())
}

/// Python's `ntpath.split`: (head, tail) at the last `\` or `/` after the drive.
fn win_split(p: &str) -> (String, String) {
    let (drive, rest) = win_splitdrive(p);
    let cut = rest.rfind(['/', '\\']).map_or(0, |i| i + 1);
    let (head, tail) = rest.split_at(cut);
    let trimmed = head.trim_end_matches(['/', '\\']);
    let head = if trimmed.is_empty() { head } else { trimmed };
    (format!("{drive}{head}"), tail.to_string())
}

/// Python's `os.path.commonpath`.
fn commonpath(v: &JValue) -> Result<String, Error> {
    if !is_sequence(v) {
        return Err(invalid(format!(
            "|commonpath expects sequence, got <class '{}'> instead.",
            py_type(v)
        )));
    }
    let paths: Vec<String> = v.try_iter()?.map(|p| py_str(&p)).collect();
    let Some(first) = paths.first() else {
        return Err(invalid("commonpath() arg is an empty sequence"));
    };
    let absolute = first.starts_with('/');
    if paths.iter().any(|p| p.starts_with('/') != absolute) {
        return Err(invalid("Can't mix absolute and relative paths"));
    }
    let split: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| {
            p.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .collect()
        })
        .collect();
    let mut common: Vec<&str> = split.first().cloned().unwrap_or_default();
    for s in &split {
        let n = common.iter().zip(s).take_while(|(a, b)| a == b).count();
        common.truncate(n);
    }
    let prefix = if absolute { "/" } else { "" };
    Ok(format!("{prefix}{}", common.join("/")))
}

/// `fileglob`: the regular files matching a shell pattern (`*`, `?`, `[...]`).
fn fileglob(pattern: &str) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut current: Vec<String> = vec![if absolute { "/".into() } else { String::new() }];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &current {
            let join = |name: &str| {
                if base.is_empty() {
                    name.to_string()
                } else if base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if !part.contains(['*', '?', '[']) {
                let p = join(part);
                if Path::new(&p).symlink_metadata().is_ok() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.is_empty() { "." } else { base.as_str() };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| crate::fnmatch::fnmatch(part, n))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(n)));
        }
        if !last {
            next.retain(|p| Path::new(p).is_dir());
        }
        current = next;
    }
    current.retain(|p| Path::new(p).is_file());
    current
}

// ---------------------------------------------------------------------------
// Encodings and hashes.

/// Text to bytes in one of the encodings playbooks name.
fn encode(s: &str, encoding: &str) -> Result<Vec<u8>, Error> {
    encode_text(s, encoding).map_err(invalid)
}

/// The characters windows-1252 puts at 0x80..=0x9f (Python's `cp1252` codec; `None`
/// where it has none). Elsewhere it is Latin-1.
const CP1252_HIGH: [Option<char>; 32] = [
    Some('\u{20ac}'),
    None,
    Some('\u{201a}'),
    Some('\u{0192}'),
    Some('\u{201e}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{02c6}'),
    Some('\u{2030}'),
    Some('\u{0160}'),
    Some('\u{2039}'),
    Some('\u{0152}'),
    None,
    Some('\u{017d}'),
    None,
    None,
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201c}'),
    Some('\u{201d}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    Some('\u{02dc}'),
    Some('\u{2122}'),
    Some('\u{0161}'),
    Some('\u{203a}'),
    Some('\u{0153}'),
    None,
    Some('\u{017e}'),
    Some('\u{0178}'),
];

/// Text to bytes in one of the encodings playbooks name (Python's codec names: UTF-8,
/// UTF-16, Latin-1, ASCII, windows-1252), or Python's words for why it cannot be.
pub(crate) fn encode_text(s: &str, encoding: &str) -> Result<Vec<u8>, String> {
    let enc = encoding.to_ascii_lowercase().replace(['_', ' '], "-");
    // One byte a character: the byte for `c`, if the codec has one.
    let single = |byte: &dyn Fn(char) -> Option<u8>| -> Result<Vec<u8>, String> {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                byte(c).ok_or_else(|| {
                    format!(
                        "'{encoding}' codec can't encode character '\\u{:04x}' in position {i}",
                        c as u32
                    )
                })
            })
            .collect()
    };
    Ok(match enc.as_str() {
        "utf-8" | "utf8" | "u8" => s.as_bytes().to_vec(),
        "utf-16-le" | "utf-16le" => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        "utf-16-be" | "utf-16be" => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        "utf-16" => [0xff, 0xfe]
            .into_iter()
            .chain(s.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => {
            single(&|c| u8::try_from(c as u32).ok())?
        }
        "ascii" | "us-ascii" | "646" => {
            single(&|c| u8::try_from(c as u32).ok().filter(u8::is_ascii))?
        }
        "cp1252" | "windows-1252" | "1252" => single(&|c| {
            let high = CP1252_HIGH.iter().position(|h| *h == Some(c));
            match (u8::try_from(c as u32).ok(), high) {
                (_, Some(i)) => u8::try_from(0x80 + i).ok(),
                (Some(b), None) if !(0x80..0xa0).contains(&b) => Some(b),
                _ => None,
            }
        })?,
        _ => return Err(format!("unknown encoding: {encoding}")),
    })
}

/// Bytes to text in one of the encodings playbooks name.
fn decode(b: &[u8], encoding: &str) -> Result<String, Error> {
    let enc = encoding.to_ascii_lowercase().replace('_', "-");
    let utf16 = |units: Vec<u16>| {
        String::from_utf16(&units)
            .map_err(|_| invalid(format!("'{encoding}' codec can't decode the bytes")))
    };
    match enc.as_str() {
        "utf-8" | "utf8" => String::from_utf8(b.to_vec())
            .map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8")),
        "utf-16-le" | "utf-16le" => utf16(
            b.chunks(2)
                .map(|c| {
                    u16::from_le_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect(),
        ),
        "utf-16-be" | "utf-16be" => utf16(
            b.chunks(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect(),
        ),
        "utf-16" => {
            let (big, body) = match b {
                [0xfe, 0xff, rest @ ..] => (true, rest),
                [0xff, 0xfe, rest @ ..] => (false, rest),
                rest => (false, rest),
            };
            utf16(
                body.chunks(2)
                    .map(|c| {
                        let pair = [
                            c.first().copied().unwrap_or(0),
                            c.get(1).copied().unwrap_or(0),
                        ];
                        if big {
                            u16::from_be_bytes(pair)
                        } else {
                            u16::from_le_bytes(pair)
                        }
                    })
                    .collect(),
            )
        }
        "latin-1" | "latin1" | "iso-8859-1" => Ok(b.iter().map(|&x| char::from(x)).collect()),
        "ascii" | "us-ascii" if b.is_ascii() => Ok(b.iter().map(|&x| char::from(x)).collect()),
        _ => Err(invalid(format!(
            "unknown or unsuitable encoding: {encoding}"
        ))),
    }
}

/// The namespace `to_uuid` uses by default (`UUID_NAMESPACE_ANSIBLE`).
const UUID_NAMESPACE_ANSIBLE: &str = "361E6D51-FAEC-444A-9079-341386DA8E2E";

/// Python's `uuid.UUID(text)`: hex digits, hyphens and braces and a `urn:uuid:` prefix
/// allowed around them.
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let t = s
        .trim()
        .trim_start_matches("urn:")
        .trim_start_matches("uuid:");
    let hex: String = t
        .chars()
        .filter(|c| !matches!(c, '{' | '}' | '-'))
        .collect();
    let bytes = crate::hex::decode(&hex)?;
    bytes.try_into().ok()
}

/// `uuid.uuid5(namespace, name)`: SHA-1 of namespace and name, version 5.
fn uuid5(namespace: &[u8; 16], name: &str) -> String {
    let raw = digest::sha1(&[namespace, name.as_bytes()]);
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(&raw) {
        *d = *s;
    }
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hex::encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

fn to_uuid(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let ns = o.arg(0, "namespace")?;
    o.done("to_uuid", 1)?;
    let ns_text = match &ns {
        None => UUID_NAMESPACE_ANSIBLE.to_string(),
        Some(n) => py_str(n),
    };
    let bytes = match (&ns, parse_uuid(&ns_text)) {
        (Some(n), _) if n.kind() != ValueKind::String => None,
        (_, b) => b,
    };
    let Some(bytes) = bytes else {
        let why = match &ns {
            Some(n) if n.kind() != ValueKind::String => {
                format!("'{}' object has no attribute 'replace'", py_type(n))
            }
            _ => "badly formed hexadecimal UUID string".to_string(),
        };
        return Err(invalid(format!(
            "Invalid value '{ns_text}' for 'namespace': {why}"
        )));
    };
    Ok(uuid5(&bytes, &py_str(&v)))
}

// ---------------------------------------------------------------------------
// JSON.

/// Reads a `json.dumps` keyword argument set: `indent`, `separators`, `ensure_ascii`, and
/// the ones Ansible passes itself; `sort_keys` is read by [`sort_keys_arg`].
fn json_style(kw: &Kwargs, default_indent: Option<usize>, nice: bool) -> Result<JsonStyle, Error> {
    let indent = match kw.get::<Option<JValue>>("indent")? {
        None => default_indent,
        Some(i) if i.is_none() => None,
        Some(i) => Some(i.as_usize().unwrap_or(0)),
    };
    let mut style = JsonStyle::python(indent);
    if nice {
        // to_nice_json always writes `,` and `: `, whatever it is given.
        let _: Option<JValue> = kw.get("separators")?;
    } else if let Some(seps) = kw.get::<Option<JValue>>("separators")? {
        let parts: Vec<String> = seps.try_iter()?.map(|s| py_str(&s)).collect();
        if let [item, key] = parts.as_slice() {
            style.item_sep = item.clone();
            style.key_sep = key.clone();
        }
    }
    if let Some(a) = kw.get::<Option<bool>>("ensure_ascii")? {
        style.ensure_ascii = a;
    }
    for ignored in [
        "vault_to_text",
        "preprocess_unsafe",
        "skipkeys",
        "allow_nan",
        "check_circular",
    ] {
        let _: Option<JValue> = kw.get(ignored)?;
    }
    kw.assert_all_used()?;
    Ok(style)
}

/// The `sort_keys` keyword (Python truthiness), or `default` without it: `json.dumps`
/// keeps insertion order, Ansible's `to_nice_json` and PyYAML's `dump` sort.
fn sort_keys_arg(kw: &Kwargs, default: bool) -> Result<bool, Error> {
    Ok(match kw.get::<Option<JValue>>("sort_keys")? {
        Some(s) => s.is_true(),
        None => default,
    })
}

/// `v` as JSON, its maps' keys sorted when `sort`.
fn to_json_sorted(v: &JValue, filter: &str, sort: bool) -> Result<Value, Error> {
    let json = to_json(v, filter)?;
    Ok(if sort {
        crate::template::sort_keys(&json)
    } else {
        json
    })
}

fn to_json_filter(v: JValue, o: Opts) -> Result<String, Error> {
    if !o.pos.is_empty() {
        return Err(invalid("to_json() takes json.dumps' arguments by name"));
    }
    let sort = sort_keys_arg(&o.kw, false)?;
    let style = json_style(&o.kw, None, false)?;
    let json = to_json_sorted(&v, "to_json", sort)?;
    let mut out = String::new();
    py_json_styled(&json, &style, 0, &mut out);
    Ok(out)
}

fn to_nice_json(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let indent = match o.pos.first() {
        Some(i) => Some(i.as_usize().unwrap_or(4)),
        None => Some(4),
    };
    let sort = sort_keys_arg(&o.kw, true)?;
    let style = json_style(&o.kw, indent, true)?;
    let json = to_json_sorted(&v, "to_nice_json", sort)?;
    let mut out = String::new();
    py_json_styled(&json, &style, 0, &mut out);
    Ok(out)
}

fn from_json(v: JValue) -> Result<JValue, Error> {
    let s = v.as_str().ok_or_else(|| {
        invalid(format!(
            "the JSON object must be str, bytes or bytearray, not {}",
            py_type(&v)
        ))
    })?;
    let parsed: Value = serde_json::from_str(s).map_err(|e| invalid(e.to_string()))?;
    Ok(JValue::from_serialize(&parsed))
}

fn to_yaml(v: JValue, rest: Rest<JValue>, nice: bool) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let default_indent = if nice { 4 } else { 2 };
    let indent = match o.arg(0, "indent")? {
        Some(i) => i.as_usize().unwrap_or(default_indent),
        None => default_indent,
    };
    // to_yaml's default_flow_style=None writes leaf collections inline; False never.
    let flow_leaves = match o.kw.get::<Option<JValue>>("default_flow_style")? {
        Some(f) if !f.is_none() => f.is_true(),
        Some(_) => true,
        None => !nice,
    };
    let sort = sort_keys_arg(&o.kw, true)?;
    for ignored in ["width", "allow_unicode", "explicit_start", "explicit_end"] {
        let _: Option<JValue> = o.kw.get(ignored)?;
    }
    o.done(if nice { "to_nice_yaml" } else { "to_yaml" }, 1)?;
    let json = to_json_sorted(&v, "to_yaml", sort)?;
    Ok(crate::template::yaml::dump(&json, indent, flow_leaves))
}

// ---------------------------------------------------------------------------
// Regular expressions (Python `re` syntax, through `crate::pyre`).

fn regex_replace(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    // Ansible's to_text of an undefined value raises, as it does for any filter that
    // reads its input as text.
    super::defined(&v)?;
    let o = Opts::new(rest.0)?;
    let value = py_str(&v);
    let pattern = o.arg(0, "pattern")?.map(|p| py_str(&p)).unwrap_or_default();
    let replacement = o
        .arg(1, "replacement")?
        .map(|r| py_str(&r))
        .unwrap_or_default();
    let re = py_regex(&pattern, o.flag(2, "ignorecase")?, o.flag(3, "multiline")?)?;
    let count = o.arg(4, "count")?.and_then(|c| c.as_usize()).unwrap_or(0);
    let mandatory = o
        .arg(5, "mandatory_count")?
        .and_then(|c| c.as_usize())
        .unwrap_or(0);
    o.done("regex_replace", 6)?;
    let template = Template::parse(&replacement, &re).map_err(invalid)?;
    let hay = value.as_bytes();
    let found = re.all(hay).map_err(invalid)?;
    let subs = if count == 0 {
        found.len()
    } else {
        found.len().min(count)
    };
    if mandatory != 0 && mandatory != subs {
        // Ansible's message shows `count`, not the number of substitutions.
        return Err(invalid(format!(
            "'{pattern}' should match {mandatory} times, but matches {count} times in '{value}'"
        )));
    }
    // Built match by match, each expansion's size checked before it is written: a
    // replacement that repeats a group multiplies the text at every step of a chain.
    let mut out = Vec::new();
    let mut last = 0;
    for groups in found.iter().take(subs) {
        let Some(m) = groups.first().cloned().flatten() else {
            continue;
        };
        let most = template
            .most(m.len())
            .and_then(|e| e.checked_add(m.start - last))
            .and_then(|e| e.checked_add(out.len()));
        text_fits("regex_replace", most)?;
        out.extend_from_slice(hay.get(last..m.start).unwrap_or_default());
        template.expand(hay, groups, &mut out);
        last = m.end;
    }
    out.extend_from_slice(hay.get(last..).unwrap_or_default());
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn regex_search(v: JValue, pattern: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    super::defined(&v)?;
    let o = Opts::new(rest.0)?;
    let value = py_str(&v);
    let pattern = py_str(&pattern);
    let re = py_regex(
        &pattern,
        o.flag(usize::MAX, "ignorecase")?,
        o.flag(usize::MAX, "multiline")?,
    )?;
    // Other keywords are accepted and ignored, as Ansible's **kwargs are.
    // Extra arguments '\\1' / '\\g<name>' ask for groups, returned as a list.
    let mut wanted = Vec::new();
    for g in &o.pos {
        let g = py_str(g);
        let n = if let Some(name) = g
            .strip_prefix("\\g<")
            .and_then(|r| r.split_once('>'))
            .map(|(n, _)| n)
        {
            match name.parse::<usize>() {
                Ok(n) => n,
                Err(_) => re
                    .names()
                    .position(|x| x == Some(name))
                    .ok_or_else(|| invalid(format!("no such group: '{name}'")))?,
            }
        } else if let Some(n) = g.strip_prefix('\\') {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().map_err(|_| invalid("Unknown argument"))?
        } else {
            return Err(invalid("Unknown argument"));
        };
        if n >= re.names().count() {
            return Err(invalid(format!("no such group: {n}")));
        }
        wanted.push(n);
    }
    let Some(groups) = re.captures_at(value.as_bytes(), 0).map_err(invalid)? else {
        return Ok(JValue::from(()));
    };
    if wanted.is_empty() {
        return Ok(JValue::from(group(&value, &groups, 0).unwrap_or("")));
    }
    Ok(JValue::from(
        wanted
            .into_iter()
            .map(|n| group(&value, &groups, n).map_or(JValue::from(()), JValue::from))
            .collect::<Vec<_>>(),
    ))
}

fn regex_findall(v: JValue, regex: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    super::defined(&v)?;
    let o = Opts::new(rest.0)?;
    let value = py_str(&v);
    let re = py_regex(
        &py_str(&regex),
        o.flag(1, "ignorecase")?,
        o.flag(0, "multiline")?,
    )?;
    o.done("regex_findall", 2)?;
    // As Python's findall: whole matches, group 1, or a list per match of all groups.
    let n = re.names().count().saturating_sub(1);
    let text = |g, i| JValue::from(group(&value, g, i).unwrap_or(""));
    let found: Vec<JValue> = re
        .all(value.as_bytes())
        .map_err(invalid)?
        .iter()
        .map(|g| match n {
            0 => text(g, 0),
            1 => text(g, 1),
            n => JValue::from((1..=n).map(|i| text(g, i)).collect::<Vec<_>>()),
        })
        .collect();
    Ok(JValue::from(found))
}

/// Python's `re.escape` (3.7 and later): only the characters special in a pattern.
fn re_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn regex_escape(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    super::defined(&v)?;
    let o = Opts::new(rest.0)?;
    let re_type = o
        .arg(0, "re_type")?
        .map(|t| py_str(&t))
        .unwrap_or_else(|| "python".into());
    o.done("regex_escape", 1)?;
    let s = py_str(&v);
    match re_type.as_str() {
        "python" => Ok(re_escape(&s)),
        "posix_basic" => {
            let mut out = String::new();
            for c in s.chars() {
                if "].[^$*\\".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(out)
        }
        "posix_extended" => Err(invalid(format!(
            "Regex type ({re_type}) not yet implemented"
        ))),
        _ => Err(invalid(format!("Invalid regex type ({re_type})"))),
    }
}

// ---------------------------------------------------------------------------
// Small helpers.

/// Ansible's `bool` filter: None and booleans as they are; 'yes', 'on', '1', 'true'
/// (any case) and 1 are true; anything else is false.
fn to_bool(v: JValue) -> JValue {
    match v.kind() {
        ValueKind::None | ValueKind::Bool => v,
        ValueKind::String => JValue::from(matches!(
            v.as_str().unwrap_or_default().to_lowercase().as_str(),
            "yes" | "on" | "1" | "true"
        )),
        ValueKind::Number => {
            JValue::from(v.as_i64() == Some(1) || f64::try_from(v.clone()).is_ok_and(|f| f == 1.0))
        }
        _ => JValue::from(false),
    }
}

fn ternary(v: JValue, yes: JValue, no: JValue, none_val: Option<JValue>) -> JValue {
    match none_val {
        Some(n) if v.is_none() && !n.is_none() => n,
        _ if v.is_true() => yes,
        _ => no,
    }
}

fn mandatory(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let msg = o.arg(0, "msg")?;
    o.done("mandatory", 1)?;
    if !v.is_undefined() {
        return Ok(v);
    }
    if let Some(m) = msg.filter(|m| !m.is_none()) {
        return Err(invalid(py_str(&m)));
    }
    // Ansible names the variable; an undefined value here does not carry its name, so
    // the engine fills it in from the expression (`crate::chainable::mandatory_name`).
    Err(invalid(crate::chainable::MANDATORY_UNNAMED))
}

/// Python's `shlex.quote`.
pub(crate) fn shell_quote(v: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if v.is_empty() {
        "''".into()
    } else if v.chars().all(safe) {
        v.to_string()
    } else {
        crate::modules::sh_quote(v)
    }
}

fn comment(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let style = o
        .arg(0, "style")?
        .map(|s| py_str(&s))
        .unwrap_or_else(|| "plain".into());
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => return Err(invalid(format!("comment: unknown style '{other}'"))),
    };
    let get = |name: &str| -> Result<Option<String>, Error> {
        Ok(o.kw.get::<Option<JValue>>(name)?.map(|v| py_str(&v)))
    };
    let count = |name: &str| -> Result<usize, Error> {
        Ok(o.kw
            .get::<Option<JValue>>(name)?
            .map(|v| {
                v.as_usize()
                    .unwrap_or_else(|| py_str(&v).trim().parse().unwrap_or(1))
            })
            .unwrap_or(1))
    };
    let prepostfix = get("decoration")?.unwrap_or_else(|| decoration.to_string());
    let newline = get("newline")?.unwrap_or_else(|| "\n".into());
    let beginning = get("beginning")?.unwrap_or_else(|| beginning.to_string());
    let prefix = get("prefix")?.unwrap_or_else(|| prepostfix.trim_end().to_string());
    let prefix_count = count("prefix_count")?;
    // Without an explicit decoration, the style's own decorates each line.
    let decoration = get("decoration")?.unwrap_or_else(|| decoration.to_string());
    let postfix = get("postfix")?.unwrap_or_else(|| prepostfix.trim_end().to_string());
    let postfix_count = count("postfix_count")?;
    let end = get("end")?.unwrap_or_else(|| end.to_string());
    o.done("comment", 1)?;
    let text = py_str(&v);
    // The counts and the decoration each line gets multiply text: sized before built.
    let lines = if newline.is_empty() {
        text.len() + 1
    } else {
        text.matches(newline.as_str()).count() + 1
    };
    let around = |part: &str, count: usize| (part.len() + newline.len()).checked_mul(count);
    let most = lines
        .checked_mul(decoration.len() + newline.len())
        .zip(around(&prefix, prefix_count))
        .zip(around(&postfix, postfix_count))
        .and_then(|((body, pre), post)| body.checked_add(pre)?.checked_add(post))
        .and_then(|n| n.checked_add(text.len() + beginning.len() + end.len()));
    text_fits("comment", most)?;
    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&beginning);
        out.push_str(&newline);
    }
    if !prefix.is_empty() {
        if prefix != newline {
            out.push_str(&format!("{prefix}{newline}").repeat(prefix_count));
        } else {
            out.push_str(&newline.repeat(prefix_count));
        }
    }
    let body = format!(
        "{decoration}{}",
        text.replace(&newline, &format!("{newline}{decoration}"))
    );
    out.push_str(&body.replace(
        &format!("{decoration}{newline}"),
        &format!("{}{newline}", decoration.trim_end()),
    ));
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&newline);
        out.push_str(&end);
    }
    Ok(out)
}

/// Python's `posixpath.dirname`: up to the last slash, trailing slashes removed unless
/// the head is all slashes.
fn dirname(s: &str) -> String {
    let head = match s.rfind('/') {
        Some(i) => s.get(..=i).unwrap_or_default(),
        None => "",
    };
    let trimmed = head.trim_end_matches('/');
    if trimmed.is_empty() {
        head.to_string()
    } else {
        trimmed.to_string()
    }
}

fn pair(a: String, b: String) -> JValue {
    JValue::from(vec![JValue::from(a), JValue::from(b)])
}

/// An optional `encoding` argument (UTF-8 by default) and the value's text.
fn encoding_arg(args: &[JValue], filter: &str) -> Result<(String, String), Error> {
    let (v, o) = opts(args)?;
    let enc = o
        .arg(0, "encoding")?
        .map(|e| py_str(&e))
        .unwrap_or_else(|| "utf-8".into());
    o.done(filter, 1)?;
    Ok((py_str(&v), enc))
}

/// Registers the filters of core.py.
/// Python's `dict(...)` as Ansible's templates have it: a mapping or an iterable of
/// key/value pairs (`dict(list | map('reverse'))`), then keyword arguments.
fn dict_global(rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let mut out: Vec<(JValue, JValue)> = Vec::new();
    let mut put = |k: JValue, v: JValue| match out.iter_mut().find(|(old, _)| *old == k) {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    };
    match o.pos.as_slice() {
        [] => {}
        [from] if from.kind() == ValueKind::Map => {
            for k in from.try_iter()? {
                let v = from.get_item(&k)?;
                put(k, v);
            }
        }
        [from] => {
            for (i, pair) in from.try_iter()?.enumerate() {
                let items: Vec<JValue> = match pair.try_iter() {
                    Ok(it) if !pair.is_undefined() => it.collect(),
                    _ => Vec::new(),
                };
                match <[JValue; 2]>::try_from(items) {
                    Ok([k, v]) => put(k, v),
                    Err(items) => {
                        return Err(invalid(format!(
                            "dictionary update sequence element #{i} has length {}; 2 is required",
                            items.len()
                        )));
                    }
                }
            }
        }
        more => {
            return Err(invalid(format!(
                "dict expected at most 1 argument, got {}",
                more.len()
            )));
        }
    }
    for k in o.kw.args() {
        let v: JValue = o.kw.get(k)?;
        put(JValue::from(k), v);
    }
    Ok(JValue::from_iter(out))
}

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("dict", dict_global);
    add_filters(
        env,
        &[
            ("flatten", |a| split(a).and_then(|(v, r)| flatten(v, r))),
            ("combine", |a| split(a).and_then(|(v, r)| combine(v, r))),
            ("extract", |a| {
                let (v, o) = opts(a)?;
                let container = o.req(0, "container", "extract")?;
                let more = o.arg(1, "morekeys")?;
                o.done("extract", 2)?;
                extract(v, container, more)
            }),
            ("subelements", |a| {
                let (v, o) = opts(a)?;
                let subs = o.req(0, "subelements", "subelements")?;
                let skip = o.flag(1, "skip_missing")?;
                o.done("subelements", 2)?;
                subelements(v, subs, skip)
            }),
            ("dict2items", |a| {
                opts(a).and_then(|(v, o)| dict2items(v, o))
            }),
            ("items2dict", |a| {
                opts(a).and_then(|(v, o)| items2dict(v, o))
            }),
            ("path_join", |a| {
                path_join(only(a, "path_join")?).map(JValue::from)
            }),
            ("basename", |a| {
                let s = only_str(a, "basename")?;
                Ok(JValue::from(s.rsplit('/').next().unwrap_or_default()))
            }),
            ("dirname", |a| {
                Ok(JValue::from(dirname(&only_str(a, "dirname")?)))
            }),
            ("expanduser", |a| {
                Ok(JValue::from(expanduser(&only_str(a, "expanduser")?)))
            }),
            ("expandvars", |a| {
                Ok(JValue::from(expandvars(&only_str(a, "expandvars")?)))
            }),
            ("realpath", |a| {
                Ok(JValue::from(realpath(&only_str(a, "realpath")?)))
            }),
            ("normpath", |a| {
                Ok(JValue::from(normpath(&only_str(a, "normpath")?)))
            }),
            ("relpath", |a| {
                let (v, o) = opts(a)?;
                let start = o.arg(0, "start")?.map(|s| py_str(&s));
                o.done("relpath", 1)?;
                relpath(&py_str(&v), start.as_deref()).map(JValue::from)
            }),
            ("splitext", |a| {
                let (stem, ext) = splitext(&only_str(a, "splitext")?);
                Ok(pair(stem, ext))
            }),
            ("win_splitdrive", |a| {
                let (d, p) = win_splitdrive(&only_str(a, "win_splitdrive")?);
                Ok(pair(d, p))
            }),
            ("win_basename", |a| {
                Ok(JValue::from(win_split(&only_str(a, "win_basename")?).1))
            }),
            ("win_dirname", |a| {
                Ok(JValue::from(win_split(&only_str(a, "win_dirname")?).0))
            }),
            ("commonpath", |a| {
                commonpath(only(a, "commonpath")?).map(JValue::from)
            }),
            ("fileglob", |a| {
                Ok(JValue::from(fileglob(&only_str(a, "fileglob")?)))
            }),
            ("b64encode", |a| {
                let (text, enc) = encoding_arg(a, "b64encode")?;
                Ok(JValue::from(crate::hex::base64(&encode(&text, &enc)?)))
            }),
            ("b64decode", |a| {
                let (text, enc) = encoding_arg(a, "b64decode")?;
                decode(
                    &crate::hex::base64_decode(&text)
                        .map_err(|e| invalid(format!("b64decode: {e}")))?,
                    &enc,
                )
                .map(JValue::from)
            }),
            ("to_uuid", |a| {
                split(a).and_then(|(v, r)| to_uuid(v, r)).map(JValue::from)
            }),
            ("to_json", |a| {
                opts(a)
                    .and_then(|(v, o)| to_json_filter(v, o))
                    .map(JValue::from)
            }),
            ("to_nice_json", |a| {
                split(a)
                    .and_then(|(v, r)| to_nice_json(v, r))
                    .map(JValue::from)
            }),
            ("from_json", |a| from_json(only(a, "from_json")?.clone())),
            ("to_yaml", |a| {
                split(a)
                    .and_then(|(v, r)| to_yaml(v, r, false))
                    .map(JValue::from)
            }),
            ("to_nice_yaml", |a| {
                split(a)
                    .and_then(|(v, r)| to_yaml(v, r, true))
                    .map(JValue::from)
            }),
            ("hash", |a| {
                let (v, o) = opts(a)?;
                let algo = o
                    .arg(0, "hashtype")?
                    .map(|h| py_str(&h))
                    .unwrap_or_else(|| "sha1".to_string());
                o.done("hash", 1)?;
                digest::hex(&algo, py_str(&v).as_bytes())
                    .map(JValue::from)
                    .ok_or_else(|| invalid(format!("unsupported hash type {algo}")))
            }),
            ("checksum", |a| {
                Ok(JValue::from(digest::sha1_hex(
                    only_str(a, "checksum")?.as_bytes(),
                )))
            }),
            ("sha1", |a| {
                Ok(JValue::from(digest::sha1_hex(
                    only_str(a, "sha1")?.as_bytes(),
                )))
            }),
            ("md5", |a| {
                Ok(JValue::from(
                    digest::hex("md5", only_str(a, "md5")?.as_bytes()).unwrap_or_default(),
                ))
            }),
            ("regex_replace", |a| {
                split(a)
                    .and_then(|(v, r)| regex_replace(v, r))
                    .map(JValue::from)
            }),
            ("regex_search", |a| {
                let (v, mut r) = split(a)?;
                let pattern = super::first_positional(&mut r, "regex", "regex_search")?;
                regex_search(v, pattern, r)
            }),
            ("regex_findall", |a| {
                let (v, mut r) = split(a)?;
                let pattern = super::first_positional(&mut r, "regex", "regex_findall")?;
                regex_findall(v, pattern, r)
            }),
            ("regex_escape", |a| {
                split(a)
                    .and_then(|(v, r)| regex_escape(v, r))
                    .map(JValue::from)
            }),
            ("bool", |a| Ok(to_bool(only(a, "bool")?.clone()))),
            ("ternary", |a| {
                let (v, o) = opts(a)?;
                let yes = o.req(0, "true_val", "ternary")?;
                let no = o.req(1, "false_val", "ternary")?;
                let none_val = o.arg(2, "none_val")?;
                o.done("ternary", 3)?;
                Ok(ternary(v, yes, no, none_val))
            }),
            ("mandatory", |a| split(a).and_then(|(v, r)| mandatory(v, r))),
            ("quote", |a| {
                let v = only(a, "quote")?;
                Ok(JValue::from(if v.is_none() {
                    "''".to_string()
                } else {
                    shell_quote(&py_str(v))
                }))
            }),
            ("comment", |a| {
                split(a).and_then(|(v, r)| comment(v, r)).map(JValue::from)
            }),
            ("type_debug", |a| {
                Ok(JValue::from(py_type(only(a, "type_debug")?)))
            }),
            ("random", |a| {
                split(a).and_then(|(v, r)| super::math::random(v, r))
            }),
            ("shuffle", |a| {
                split(a).and_then(|(v, r)| super::math::shuffle(v, r))
            }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn core_filters_match_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (
                    r#"'Ansible - くらとみ'|b64encode"#,
                    r#""QW5zaWJsZSAtIOOBj+OCieOBqOOBvw==""#,
                ),
                (
                    r#"'QW5zaWJsZSAtIOOBj+OCieOBqOOBvw=='|b64decode"#,
                    r#""Ansible - くらとみ""#,
                ),
                (
                    r#"'Ansible - くらとみ'|b64encode(encoding='utf-16-le')"#,
                    r#""QQBuAHMAaQBiAGwAZQAgAC0AIABPMIkwaDB/MA==""#,
                ),
                (
                    r#"'QQBuAHMAaQBiAGwAZQAgAC0AIABPMIkwaDB/MAoA'|b64decode(encoding='utf-16-le')"#,
                    r#""Ansible - くらとみ\n""#,
                ),
                (r#"'Zm9v'|b64decode"#, r#""foo""#),
                (
                    r#"'monkeys'|to_uuid"#,
                    r#""0d03a178-da0f-5b51-934e-cda9c76578c3""#,
                ),
                (
                    r#"'monkeys'|to_uuid(namespace='6ba7b810-9dad-11d1-80b4-00c04fd430c8')"#,
                    r#""9283bd90-753b-5b18-bf01-3f56f47c51ca""#,
                ),
                (
                    r#"{'b': [1, 2], 'a': 'x'}|to_nice_json"#,
                    r#""{\n    \"a\": \"x\",\n    \"b\": [\n        1,\n        2\n    ]\n}""#,
                ),
                (
                    r#"{'b': [1, 2], 'a': 'x'}|to_nice_json(indent=2)"#,
                    r#""{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ]\n}""#,
                ),
                (
                    r#"'{"a": [1, 2.5, null]}'|from_json"#,
                    r#"{"a": [1, 2.5, null]}"#,
                ),
                (r#"{'a': [1, 'b']}|to_yaml"#, r#""a: [1, b]\n""#),
                (r#"{'a': [1, 'b']}|to_nice_yaml"#, r#""a:\n- 1\n- b\n""#),
                (r#"{'a': [1, 'b']}|to_yaml(indent=4)"#, r#""a: [1, b]\n""#),
                (r#"'/etc/foo/bar.conf'|basename"#, r#""bar.conf""#),
                (r#"'/etc/foo/bar.conf'|dirname"#, r#""/etc/foo""#),
                (r#"'/etc/foo/'|dirname"#, r#""/etc/foo""#),
                (r#"'foo'|dirname"#, r#""""#),
                (r#"'//a//b'|dirname"#, r#""//a""#),
                (
                    r#"['/etc', 'app', 'x.conf']|path_join"#,
                    r#""/etc/app/x.conf""#,
                ),
                (r#"['a', '/abs', 'b']|path_join"#, r#""/abs/b""#),
                (r#""foo"|path_join"#, r#""foo""#),
                (r#"'/a/b/../c/./d'|normpath"#, r#""/a/c/d""#),
                (r#"'a//b/'|normpath"#, r#""a/b""#),
                (r#"''|normpath"#, r#"".""#),
                (r#"'//a/b'|normpath"#, r#""//a/b""#),
                (r#"'/a/b/c'|relpath('/a/x')"#, r#""../b/c""#),
                (r#"'/a'|relpath('/a')"#, r#"".""#),
                (
                    r#"'dir/file.tar.gz'|splitext"#,
                    r#"["dir/file.tar", ".gz"]"#,
                ),
                (r#"'.bashrc'|splitext"#, r#"[".bashrc", ""]"#),
                (r#"'a/..b'|splitext"#, r#"["a/..b", ""]"#),
                (r#"'a.b/c'|splitext"#, r#"["a.b/c", ""]"#),
                (r#"'C:\\Users\\x\\f.txt'|win_basename"#, r#""f.txt""#),
                (r#"'C:/Users/x/f.txt'|win_dirname"#, r#""C:/Users/x""#),
                (
                    r#"'C:/Users/x/f.txt'|win_splitdrive"#,
                    r#"["C:", "/Users/x/f.txt"]"#,
                ),
                (
                    r#"'//host/share/dir/f'|win_splitdrive"#,
                    r#"["//host/share", "/dir/f"]"#,
                ),
                (r#"['/a/b/c', '/a/b/d', '/a/bx']|commonpath"#, r#""/a""#),
                (r#"['a/b', 'a/c']|commonpath"#, r#""a""#),
                (r#"None|bool"#, r#"null"#),
                (r#"False|bool"#, r#"false"#),
                (r#""TrUe"|bool"#, r#"true"#),
                (r#""FalSe"|bool"#, r#"false"#),
                (r#"7|bool"#, r#"false"#),
                (r#"1|bool"#, r#"true"#),
                (r#""yes"|bool"#, r#"true"#),
                (r#""on"|bool"#, r#"true"#),
                (r#""1"|bool"#, r#"true"#),
                (r#""y"|bool"#, r#"false"#),
                (r#"'abc'|quote"#, r#""abc""#),
                (r#""it's"|quote"#, r#""'it'\"'\"'s'""#),
                (r#"None|quote"#, r#""''""#),
                (r#"'a b'|quote"#, r#""'a b'""#),
                (r#"'abc'|md5"#, r#""900150983cd24fb0d6963f7d28e17f72""#),
                (
                    r#"'abc'|sha1"#,
                    r#""a9993e364706816aba3e25717850c26c9cd0d89d""#,
                ),
                (
                    r#"'abc'|checksum"#,
                    r#""a9993e364706816aba3e25717850c26c9cd0d89d""#,
                ),
                (
                    r#"'hash'|hash('sha1')"#,
                    r#""2346ad27d7568ba9896f1b7da6b5991251debdf2""#,
                ),
                (
                    r#"'café'|hash('sha1')"#,
                    r#""f424452a9673918c6f09b0cdd35b20be8e6ae7d7""#,
                ),
                (
                    r#"'abc'|hash('sha256')"#,
                    r#""ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#,
                ),
                (
                    r#"'abc'|hash('sha512')"#,
                    r#""ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f""#,
                ),
                (
                    r#"'abc'|hash('md5')"#,
                    r#""900150983cd24fb0d6963f7d28e17f72""#,
                ),
                (
                    r#"'hello'|regex_search('HELLO', ignorecase=false)"#,
                    r#"null"#,
                ),
                (
                    r#"'hello'|regex_search('HELLO', ignorecase=true)"#,
                    r#""hello""#,
                ),
                (r#"'hello'|regex_search('world')"#, r#"null"#),
                (
                    r#""hElLo there"|regex_replace("hello", "hi", ignorecase=True)"#,
                    r#""hi there""#,
                ),
                (
                    r#""foo=bar=baz"|regex_replace("=", ":", count=1)"#,
                    r#""foo:bar=baz""#,
                ),
                (
                    r#""foo=bar=baz"|regex_replace("=", ":", mandatory_count=2)"#,
                    r#""foo:bar:baz""#,
                ),
                (
                    r#""hEllo there heLlo haha HELLO there"|regex_findall("h.... ", ignorecase=True)"#,
                    r#"["hEllo ", "heLlo ", "HELLO "]"#,
                ),
                (r#"'ab12cd34'|regex_findall('[0-9]+')"#, r#"["12", "34"]"#),
                (
                    r#"'ab12cd34'|regex_findall('([a-z]+)([0-9]+)')"#,
                    r#"[["ab", "12"], ["cd", "34"]]"#,
                ),
                (r#"'a.b*c d'|regex_escape"#, r#""a\\.b\\*c\\ d""#),
                (
                    r#""]]^"|regex_escape(re_type="posix_basic")"#,
                    r#""\\]\\]\\^""#,
                ),
                (r#"True|ternary("seven", "eight")"#, r#""seven""#),
                (r#"None|ternary("seven", "eight")"#, r#""eight""#),
                (r#"None|ternary("seven", "eight", "nine")"#, r#""nine""#),
                (r#"False|ternary("seven", "eight")"#, r#""eight""#),
                (r#"123|ternary("seven", "eight")"#, r#""seven""#),
                (r#""boo!"|comment"#, r##""#\n# boo!\n#""##),
                (
                    r#""boo!"|comment(decoration="-- ")"#,
                    r#""--\n-- boo!\n--""#,
                ),
                (
                    r#""boo!"|comment(style="cblock")"#,
                    r#""/*\n *\n * boo!\n *\n */""#,
                ),
                (r#""boo!"|comment(decoration="")"#, r#""boo!\n""#),
                (r#""x"|comment('xml')"#, r#""<!--\n -\n - x\n -\n-->""#),
                (
                    r#""x"|comment(prefix_count=2, postfix_count=0)"#,
                    r##""#\n#\n# x""##,
                ),
                (r#"dict([])"#, r#"{}"#),
                (
                    r#"dict([['a', 'b'], ['c', 'd']] | map('reverse'))"#,
                    r#"{"b": "a", "d": "c"}"#,
                ),
                (r#"dict({'x': 1}, y=2)"#, r#"{"x": 1, "y": 2}"#),
                (r#"dict(a=1)"#, r#"{"a": 1}"#),
                (r#""foo"|type_debug"#, r#""str""#),
                (r#"1|type_debug"#, r#""int""#),
                (r#"1.5|type_debug"#, r#""float""#),
                (r#"[1]|type_debug"#, r#""list""#),
                (r#"{}|type_debug"#, r#""dict""#),
                (r#"none|type_debug"#, r#""NoneType""#),
                (r#"true|type_debug"#, r#""bool""#),
                (r#"2 | extract(["a", "b", "c"])"#, r#""c""#),
                (r#"[0]|map('extract',['x','y'])|list"#, r#"["x"]"#),
                (
                    r#"['x','y']|map('extract',{'x':42,'y':31})|list"#,
                    r#"[42, 31]"#,
                ),
                (r#"'key'|extract({'key': {'sub': 'v'}}, 'sub')"#, r#""v""#),
                (
                    r#"'key'|extract({'key': {'sub': {'deep': 1}}}, ['sub', 'deep'])"#,
                    r#"1"#,
                ),
                (r#"'badkey' | extract({'key': 1}) | default('a')"#, r#""a""#),
                (
                    r#"'key' | extract({'key': {'s': 1}}, 'badsubkey') | default('a')"#,
                    r#""a""#,
                ),
                (
                    r#"{"a": 1}|dict2items(key_name='k', value_name='v')"#,
                    r#"[{"k": "a", "v": 1}]"#,
                ),
                (
                    r#"[{"key": "foo", "value": "bar"}, {"key": "banana", "value": "fruit"}]|items2dict"#,
                    r#"{"foo": "bar", "banana": "fruit"}"#,
                ),
                (
                    r#"[{"name": "alice", "groups": ["wheel"], "authorized": ["/tmp/alice/onekey.pub"]}]|subelements("groups")"#,
                    r#"[[{"name": "alice", "groups": ["wheel"], "authorized": ["/tmp/alice/onekey.pub"]}, "wheel"]]"#,
                ),
                (
                    r#"[{"name": "alice", "groups": ["wheel"]}]|subelements(["groups"])"#,
                    r#"[[{"name": "alice", "groups": ["wheel"]}, "wheel"]]"#,
                ),
                (
                    r#"[{"name": "alice", "groups": ["wheel"]}]|subelements("does not compute", skip_missing=True)"#,
                    r#"[]"#,
                ),
                (
                    r#"{'a': {'name': 'x', 'l': [1, 2]}}|subelements('l')"#,
                    r#"[[{"name": "x", "l": [1, 2]}, 1], [{"name": "x", "l": [1, 2]}, 2]]"#,
                ),
                (
                    r#"{'x': 'x', 'key': 'x'}|combine({'y': 'y', 'key': 'y'})"#,
                    r#"{"x": "x", "key": "y", "y": "y"}"#,
                ),
                (r#"[{'x': 1}, {'y': 2}]|combine"#, r#"{"x": 1, "y": 2}"#),
                (r#"None|combine"#, r#"{}"#),
                (
                    r#"{'a': {'b': 1, 'l': [1]}}|combine({'a': {'c': 2, 'l': [2]}}, recursive=True)"#,
                    r#"{"a": {"b": 1, "l": [2], "c": 2}}"#,
                ),
                (
                    r#"{'a': {'b': 1, 'l': [1]}}|combine({'a': {'c': 2, 'l': [2]}})"#,
                    r#"{"a": {"c": 2, "l": [2]}}"#,
                ),
                (
                    r#"{'l': [1, 2]}|combine({'l': [2, 3]}, list_merge='append')"#,
                    r#"{"l": [1, 2, 2, 3]}"#,
                ),
                (
                    r#"{'l': [1, 2]}|combine({'l': [2, 3]}, list_merge='prepend')"#,
                    r#"{"l": [2, 3, 1, 2]}"#,
                ),
                (
                    r#"{'l': [1, 2]}|combine({'l': [2, 3]}, list_merge='append_rp')"#,
                    r#"{"l": [1, 2, 3]}"#,
                ),
                (
                    r#"{'l': [1, 2]}|combine({'l': [2, 3]}, list_merge='prepend_rp')"#,
                    r#"{"l": [2, 3, 1]}"#,
                ),
                (
                    r#"{'l': [1, 2]}|combine({'l': [2, 3]}, list_merge='keep')"#,
                    r#"{"l": [1, 2]}"#,
                ),
                (r#""1,2,3"|split(',')"#, r#"["1", "2", "3"]"#),
                (r#"" a b  c "|split"#, r#"["a", "b", "c"]"#),
                (r#""a,b,c"|split(',', 1)"#, r#"["a", "b,c"]"#),
                (r#"[1, [2, [3]]]|flatten(levels=1)"#, r#"[1, 2, [3]]"#),
            ],
        );
        errors(
            &vars,
            &[
                (
                    r#"'hey'|to_uuid(namespace=22)"#,
                    "Invalid value '22' for 'namespace': 'int' object has no attribute 'replace'",
                ),
                (
                    r#"'hey'|to_uuid(namespace='xyz')"#,
                    "Invalid value 'xyz' for 'namespace': badly formed hexadecimal UUID string",
                ),
                (
                    r#"True|path_join"#,
                    "|path_join expects string or sequence, got <class 'bool'> instead",
                ),
                (
                    r#"'hash'|hash('unsupported_hash_type')"#,
                    "unsupported hash type unsupported_hash_type",
                ),
                (
                    r#"'hello'|regex_search('hello', 'unknown')"#,
                    "Unknown argument",
                ),
                (
                    r#"'foo=bar=baz'|regex_replace('=', ':', mandatory_count=1)"#,
                    "'=' should match 1 times, but matches 0 times in 'foo=bar=baz'",
                ),
                (
                    r#""]]^"|regex_escape(re_type="posix_extended")"#,
                    "Regex type (posix_extended) not yet implemented",
                ),
                (
                    r#""]]^"|regex_escape(re_type="haha")"#,
                    "Invalid regex type (haha)",
                ),
                (
                    r#"True|dict2items"#,
                    "dict2items requires a dictionary, got <class 'bool'> instead",
                ),
                (
                    r#"True|items2dict"#,
                    "items2dict requires a list, got <class 'bool'> instead",
                ),
                (
                    r#"[True]|items2dict"#,
                    "items2dict requires a list of dictionaries, got [True] instead",
                ),
                (
                    r#"[{"key": "foo", "value": "bar"}, {"notkey": "banana", "value": "fruit"}]|items2dict"#,
                    "items2dict requires each dictionary in the list to contain the keys 'key' and 'value', got [{'key': 'foo', 'value': 'bar'}, {'notkey': 'banana', 'value': 'fruit'}] instead",
                ),
                (
                    r#"[{"name": "alice", "groups": ["wheel"]}]|subelements("does not compute")"#,
                    "could not find 'does not compute' key in iterated item {'",
                ),
                (
                    r#"[{"name": "alice", "groups": ["wheel"]}]|subelements("name")"#,
                    "the key 'name' should point to a list, got",
                ),
                (
                    r#"[{"name": "alice", "groups": ["wheel"], "authorized": ["x"]}]|subelements(["groups", "authorized"])"#,
                    "the key authorized should point to a dictionary, got '['wheel']'",
                ),
                (
                    r#"True|subelements("foo")"#,
                    "obj must be a list of dicts or a nested dict",
                ),
                (
                    r#"{}|subelements(17)"#,
                    "subelements must be a list or a string",
                ),
                (
                    r#"{'l': [1, 2]}|combine({'l': [2, 3]}, list_merge='bogus')"#,
                    "merge_hash: 'list_merge' argument can only be equal to 'replace', 'keep', 'append', 'prepend', 'append_rp' or 'prepend_rp'",
                ),
                (
                    r#"[1] | combine(foo='bar')"#,
                    "'recursive' and 'list_merge' are the only valid keyword arguments",
                ),
                (
                    r#"[{'x': 1}, [{'y': 2}]] | combine({'z': 3})"#,
                    "failed to combine variables, expected dicts but got a 'list'",
                ),
            ],
        );
    }

    #[test]
    fn fqcn_names_and_dates_match_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (
                    r#"'abc'|ansible.builtin.hash('md5')"#,
                    r#""900150983cd24fb0d6963f7d28e17f72""#,
                ),
                (r#"[1,[2]]|ansible.builtin.flatten"#, r#"[1, 2]"#),
                (r#"'1.0' is ansible.builtin.version('0.9', '>')"#, r#"true"#),
                (r#"{'failed': true} is ansible.builtin.failed"#, r#"true"#),
                (r#"'/' is ansible.builtin.directory"#, r#"true"#),
                (r#"[1] is ansible.builtin.subset([1,2])"#, r#"true"#),
                (r#"'a'|ansible.legacy.to_json"#, r#""\"a\"""#),
                (
                    r#""10.0.0.1"|ansible.netcommon.ipaddr('address')"#,
                    r#""10.0.0.1""#,
                ),
                (
                    r#"{"a":[1,2]}|ansible.builtin.to_nice_json"#,
                    r#""{\n    \"a\": [\n        1,\n        2\n    ]\n}""#,
                ),
                (r#"'x'|ansible.builtin.quote"#, r#""x""#),
                (r#"'x'|ansible.builtin.b64encode"#, r#""eA==""#),
                (r#"[3,1]|ansible.builtin.unique"#, r#"[3, 1]"#),
                (
                    r#"[1,2]|ansible.builtin.zip([3,4])|list"#,
                    r#"[[1, 3], [2, 4]]"#,
                ),
                (
                    r#"'%Y-%m-%d'|ansible.builtin.strftime(0, utc=true)"#,
                    r#""1970-01-01""#,
                ),
                (
                    r#"'%Y-%m-%d %H:%M:%S %j %a %b %A %B %p %I %y %%'|strftime(1585247522, utc=true)"#,
                    r#""2020-03-26 18:32:02 086 Thu Mar Thursday March PM 06 20 %""#,
                ),
                (
                    r#"('1993-03-26 01:23:45'|to_datetime) < ('1994-03-26 01:23:45'|to_datetime)"#,
                    r#"true"#,
                ),
                (
                    r#"('1993-03-26 01:23:45'|to_datetime) > ('1994-03-26 01:23:45'|to_datetime)"#,
                    r#"false"#,
                ),
                (r#"('1993-03-26 01:23:45'|to_datetime).year"#, r#"1993"#),
                (r#"('26/03/1993'|to_datetime('%d/%m/%Y')).month"#, r#"3"#),
                (
                    r#"'1993-03-26 01:23:45'|to_datetime|string"#,
                    r#""1993-03-26 01:23:45""#,
                ),
                (
                    r#"('2020-01-01T10:20:30.5'|to_datetime('%Y-%m-%dT%H:%M:%S.%f'))|string"#,
                    r#""2020-01-01 10:20:30.500000""#,
                ),
                (
                    r#"('Mar 5 2020 3:04PM'|to_datetime('%b %d %Y %I:%M%p'))|string"#,
                    r#""2020-03-05 15:04:00""#,
                ),
                (
                    r#"('1993-03-26 01:23:45'|to_datetime).strftime('%d.%m.%Y')"#,
                    r#""26.03.1993""#,
                ),
            ],
        );
        errors(
            &vars,
            &[
                (
                    r#"'%Y'|strftime('foo')"#,
                    "Invalid value for epoch value (foo)",
                ),
                (
                    r#"'bad'|to_datetime"#,
                    "time data 'bad' does not match format '%Y-%m-%d %H:%M:%S'",
                ),
                (
                    r#"'2023-02-29 00:00:00'|to_datetime"#,
                    "day is out of range for month",
                ),
            ],
        );
    }
}
