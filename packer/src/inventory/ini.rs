//! The Ansible INI inventory format: `[group]` host lines, `[group:vars]`, `[group:children]`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Builder, Inventory, InventoryError, Vars, pattern};

/// What the lines of the current section mean.
#[derive(Debug)]
enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// Parses INI text into an inventory.
pub(super) fn parse(text: &str, source: &str) -> Result<Inventory, InventoryError> {
    read(text, source)?.finish()
}

/// Reads INI text: its hosts and groups, inheritance not resolved yet.
pub(super) fn read(text: &str, source: &str) -> Result<Builder, InventoryError> {
    let mut b = Builder::new(source);
    // Hosts before any section header are ungrouped, as in Ansible.
    let mut section = Section::Hosts("ungrouped".into());
    // Where each `[g:children]` entry was, to refuse children that are never declared.
    let mut child_refs: BTreeMap<String, usize> = BTreeMap::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = parse_header(&b, line, line_no)?;
            let (Section::Hosts(g) | Section::Vars(g) | Section::Children(g)) = &section;
            b.add_group(g);
            continue;
        }
        match &section {
            Section::Hosts(group) => parse_host_line(&mut b, group, line, line_no)?,
            Section::Vars(group) => {
                let (key, value) = parse_var_line(&b, line, line_no)?;
                b.set_group_var(group, key, value);
            }
            Section::Children(group) => {
                let child = parse_child_line(&b, line, line_no)?;
                child_refs.entry(child.clone()).or_insert(line_no);
                b.add_child(group, &child, Some(line_no))?;
            }
        }
    }
    // A child is declared when it has a section of its own or at least one host; naming
    // one in `:children` only would otherwise create an empty group silently.
    let declared = declared_groups(text);
    if let Some((child, line)) = child_refs
        .iter()
        .filter(|(child, _)| !declared.contains(child.as_str()))
        .min_by_key(|(_, line)| **line)
    {
        return Err(b.parse_error(
            Some(*line),
            format!("[...:children] names group '{child}', which has no section of its own"),
        ));
    }
    Ok(b)
}

/// Group names that have a `[name]`, `[name:vars]` or `[name:children]` section.
fn declared_groups(text: &str) -> std::collections::BTreeSet<&str> {
    let mut names: std::collections::BTreeSet<&str> = ["all", "ungrouped"].into();
    for line in text.lines() {
        if let Some(inner) = line
            .trim()
            .strip_prefix('[')
            .and_then(|l| l.split(']').next())
        {
            names.insert(inner.split(':').next().unwrap_or(inner));
        }
    }
    names
}

/// Parses `[name]`, `[name:vars]`, `[name:children]` (and `[name:hosts]`, a synonym of
/// `[name]`), with an optional trailing comment.
fn parse_header(b: &Builder, line: &str, line_no: usize) -> Result<Section, InventoryError> {
    let inner = line.strip_prefix('[').unwrap_or(line);
    let Some((inner, after)) = inner.split_once(']') else {
        return Err(b.parse_error(
            Some(line_no),
            format!("unterminated section header '{line}': missing ']'"),
        ));
    };
    let after = after.trim();
    if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
        return Err(b.parse_error(
            Some(line_no),
            format!("unexpected text '{after}' after section header"),
        ));
    }
    let (name, suffix) = match inner.split_once(':') {
        Some((name, suffix)) => (name, Some(suffix)),
        None => (inner, None),
    };
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '[') {
        return Err(b.parse_error(
            Some(line_no),
            format!("invalid group name '{name}' in section header '{line}'"),
        ));
    }
    let name = name.to_owned();
    match suffix {
        None | Some("hosts") => Ok(Section::Hosts(name)),
        Some("vars") => Ok(Section::Vars(name)),
        Some("children") => Ok(Section::Children(name)),
        Some(other) => Err(b.parse_error(
            Some(line_no),
            format!("unknown section suffix ':{other}' in '{line}' (expected :vars or :children)"),
        )),
    }
}

/// Parses `name[:port] k=v k="v" ...`, expanding ranges in the name (not in values).
fn parse_host_line(
    b: &mut Builder,
    group: &str,
    line: &str,
    line_no: usize,
) -> Result<(), InventoryError> {
    let tokens = tokenize(line).map_err(|msg| b.parse_error(Some(line_no), msg))?;
    let mut tokens = tokens.into_iter();
    let Some(first) = tokens.next() else {
        return Ok(());
    };
    if first.eq.is_some() {
        return Err(b.parse_error(
            Some(line_no),
            format!(
                "host line must start with a host name, got '{}'",
                first.text
            ),
        ));
    }
    let range_error = |reason: String| InventoryError::HostRange {
        source_name: b.source.clone(),
        line: Some(line_no),
        pattern: first.text.clone(),
        reason,
    };
    let (name, port) = pattern::split_port(&first.text).map_err(range_error)?;
    let names = pattern::expand_host_range(name).map_err(range_error)?;

    let mut vars = Vars::new();
    if let Some(port) = port {
        vars.insert("ansible_port".into(), Value::from(port));
    }
    for token in tokens {
        let Some(eq) = token.eq else {
            return Err(b.parse_error(
                Some(line_no),
                format!(
                    "expected key=value after the host name, got '{}'",
                    token.text
                ),
            ));
        };
        let key = token.text.get(..eq).unwrap_or_default();
        let value = token.text.get(eq + 1..).unwrap_or_default();
        b.check_var_name(key, Some(line_no))?;
        let value = if token.value_quoted {
            Value::String(value.to_owned())
        } else {
            typed_value(value)
        };
        vars.insert(key.to_owned(), value);
    }
    for name in names {
        b.add_host(&name, Some(group), vars.clone());
    }
    Ok(())
}

/// Parses `key=value` in a `:vars` section. The value is the rest of the line; a value
/// entirely in matching quotes loses them and stays a string.
fn parse_var_line(
    b: &Builder,
    line: &str,
    line_no: usize,
) -> Result<(String, Value), InventoryError> {
    let Some((key, value)) = line.split_once('=') else {
        return Err(b.parse_error(
            Some(line_no),
            format!("expected key=value in a :vars section, got '{line}'"),
        ));
    };
    let key = key.trim();
    b.check_var_name(key, Some(line_no))?;
    let value = value.trim();
    let quoted = ['"', '\''].into_iter().find_map(|q| {
        value
            .strip_prefix(q)
            .and_then(|v| v.strip_suffix(q))
            .filter(|_| value.len() >= 2)
    });
    let value = match quoted {
        Some(inner) => Value::String(inner.to_owned()),
        None => typed_value(value),
    };
    Ok((key.to_owned(), value))
}

/// Parses one group name in a `:children` section (a trailing comment is allowed).
fn parse_child_line(b: &Builder, line: &str, line_no: usize) -> Result<String, InventoryError> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let rest: Vec<&str> = words.collect();
    let comment = rest
        .first()
        .is_none_or(|w| w.starts_with('#') || w.starts_with(';'));
    if !comment || name.contains([':', '[', ']', '=']) {
        return Err(b.parse_error(
            Some(line_no),
            format!("expected one group name in a :children section, got '{line}'"),
        ));
    }
    Ok(name.to_owned())
}

/// Types an unquoted INI value like Ansible's `ast.literal_eval`, within reason: integers
/// (no leading zeros, so `007` stays a string), floats, booleans, `None`, JSON lists and
/// objects; everything else stays a string.
fn typed_value(raw: &str) -> Value {
    match raw {
        "true" | "True" => return Value::Bool(true),
        "false" | "False" => return Value::Bool(false),
        "None" => return Value::Null,
        _ => {}
    }
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let is_int = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if is_int && let Ok(n) = raw.parse::<i64>() {
        return Value::from(n);
    }
    let float_chars = digits
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'));
    // A float needs a point or an exponent, so `007` is not read as 7.0.
    let float_like = digits.contains(['.', 'e', 'E']);
    if float_chars
        && float_like
        && digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && let Some(n) = raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    if (raw.starts_with('[') || raw.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<Value>(raw)
    {
        return v;
    }
    Value::String(raw.to_owned())
}

/// One shell-like word of a host line.
#[derive(Debug)]
struct Token {
    /// The word with quotes and escapes removed.
    text: String,
    /// Byte offset in `text` of the first `=` outside quotes.
    eq: Option<usize>,
    /// Whether any part of the value (after `eq`) was quoted.
    value_quoted: bool,
}

/// Splits a host line into words like a POSIX shell: whitespace separates, `'...'` and
/// `"..."` quote (backslash escapes `"` and `\` inside double quotes and anything outside),
/// and a `#` at the start of a word begins a comment.
fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars();
    let mut current: Option<Token> = None;
    while let Some(c) = chars.next() {
        let token = match (&mut current, c) {
            (None, c) if c.is_whitespace() => continue,
            (None, '#') => break,
            (Some(_), c) if c.is_whitespace() => {
                tokens.extend(current.take());
                continue;
            }
            (token, _) => token.get_or_insert_with(|| Token {
                text: String::new(),
                eq: None,
                value_quoted: false,
            }),
        };
        match c {
            '\'' | '"' => {
                if token.eq.is_some() {
                    token.value_quoted = true;
                }
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated {c} quote in '{line}'")),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(e @ ('"' | '\\')) => token.text.push(e),
                            Some(e) => {
                                token.text.push('\\');
                                token.text.push(e);
                            }
                            None => return Err(format!("unterminated \" quote in '{line}'")),
                        },
                        Some(other) => token.text.push(other),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(e) => token.text.push(e),
                None => return Err(format!("line ends with a lone backslash: '{line}'")),
            },
            '=' if token.eq.is_none() => {
                token.eq = Some(token.text.len());
                token.text.push('=');
            }
            other => token.text.push(other),
        }
    }
    tokens.extend(current);
    Ok(tokens)
}
