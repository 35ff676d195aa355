//! `from_yaml` and `from_yaml_all` (core.py): YAML text read as Ansible's loader reads
//! it, which is PyYAML's safe loader, so YAML 1.1 types: `yes`/`no`/`on`/`off` are
//! booleans, `0755` is octal, `1_000` an int, `~` null; `<<` merges mappings; quoted
//! scalars stay strings; Ansible's own tags (`!unsafe`, `!vault`) are refused, as its
//! filter (a plain safe loader) refuses them. Timestamps stay text (Python gives datetimes).
//!
//! The syntax is parsed by `yaml-rust2`'s event parser; the scalar resolution and the
//! value building are here, so they follow PyYAML rather than YAML 1.2.

use super::{add_filters, invalid, only, py_type};
use minijinja::value::{Value as JValue, ValueKind};
use minijinja::{Environment, Error};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// A node being built: a mapping's entries keep their order (Python dicts do).
#[derive(Debug, Clone)]
enum Node {
    Scalar(JValue),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn into_value(self) -> JValue {
        match self {
            Node::Scalar(v) => v,
            Node::Seq(items) => {
                JValue::from(items.into_iter().map(Node::into_value).collect::<Vec<_>>())
            }
            Node::Map(entries) => {
                let mut pairs: Vec<(JValue, JValue)> = Vec::new();
                for (k, v) in entries {
                    let key = k.into_value();
                    let val = v.into_value();
                    // A repeated key: the later one wins, as in a Python dict.
                    if let Some(slot) = pairs.iter_mut().find(|(x, _)| *x == key) {
                        slot.1 = val;
                    } else {
                        pairs.push((key, val));
                    }
                }
                JValue::from_iter(pairs)
            }
        }
    }
}

/// PyYAML's implicit resolution of a plain scalar (YAML 1.1 as its Resolver has it).
fn resolve_plain(s: &str) -> JValue {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return JValue::from(()),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return JValue::from(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return JValue::from(false);
        }
        _ => {}
    }
    if let Some(i) = resolve_int(s) {
        return JValue::from(i);
    }
    if let Some(f) = resolve_float(s) {
        return JValue::from(f);
    }
    JValue::from(s)
}

fn sign_split(s: &str) -> (bool, &str) {
    match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    }
}

/// YAML 1.1 ints: `0b`, `0x`, a leading `0` for octal, `_` separators, and base 60.
fn resolve_int(s: &str) -> Option<i128> {
    let (neg, body) = sign_split(s);
    let digits_of = |b: &str, ok: fn(char) -> bool| -> Option<String> {
        (!b.is_empty() && b.chars().all(|c| ok(c) || c == '_')).then(|| b.replace('_', ""))
    };
    let value = if let Some(b) = body.strip_prefix("0b") {
        i128::from_str_radix(&digits_of(b, |c| c == '0' || c == '1')?, 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        i128::from_str_radix(&digits_of(h, |c| c.is_ascii_hexdigit())?, 16).ok()?
    } else if body.contains(':') {
        // Sexagesimal: 1:30 is 90.
        let first = body.chars().next()?;
        if !('1'..='9').contains(&first) {
            return None;
        }
        let mut total: i128 = 0;
        for (i, part) in body.split(':').enumerate() {
            let d = digits_of(part, |c| c.is_ascii_digit())?;
            let n: i128 = d.parse().ok()?;
            if i > 0 && (n > 59 || part.len() > 2) {
                return None;
            }
            total = total * 60 + n;
        }
        total
    } else if body.len() > 1 && body.starts_with('0') {
        let d = digits_of(body.get(1..)?, |c| ('0'..='7').contains(&c))?;
        if d.is_empty() {
            0
        } else {
            i128::from_str_radix(&d, 8).ok()?
        }
    } else {
        let first = body.chars().next()?;
        if !first.is_ascii_digit() || body.starts_with('_') {
            return None;
        }
        digits_of(body, |c| c.is_ascii_digit())?.parse().ok()?
    };
    Some(if neg { -value } else { value })
}

/// YAML 1.1 floats: a dot is required (`1e3` is a string), `.inf`, `.nan`, base 60.
fn resolve_float(s: &str) -> Option<f64> {
    let (neg, body) = sign_split(s);
    let signed = |f: f64| if neg { -f } else { f };
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(signed(f64::INFINITY)),
        ".nan" | ".NaN" | ".NAN" if body.len() == s.len() => return Some(f64::NAN),
        _ => {}
    }
    if body.contains(':') {
        let (whole, frac) = body.split_once('.')?;
        let mut total = 0f64;
        for part in whole.split(':') {
            let n: f64 = part.replace('_', "").parse().ok()?;
            total = total * 60.0 + n;
        }
        let f: f64 = format!("0.{}", frac.replace('_', "")).parse().ok()?;
        return Some(signed(total + f));
    }
    let re = regex::Regex::new(
        r"^(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?)$",
    )
    .ok()?;
    if !re.is_match(body) {
        return None;
    }
    let cleaned = body.replace('_', "");
    let cleaned = if cleaned.starts_with('.') {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    cleaned.parse::<f64>().ok().map(signed)
}

/// A scalar with an explicit tag (`!!int "3"`, `!unsafe x`).
fn tagged(text: &str, tag: &Tag) -> Result<JValue, String> {
    let name = if tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:" {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    };
    Ok(match name.as_str() {
        "!!str" | "!" => JValue::from(text),
        "!!null" => JValue::from(()),
        "!!bool" => match resolve_plain(text) {
            v if v.kind() == ValueKind::Bool => v,
            _ => {
                return Err(format!(
                    "could not determine a constructor for the tag '!!bool' on {text:?}"
                ));
            }
        },
        "!!int" => JValue::from(
            resolve_int(text).ok_or_else(|| format!("invalid literal for int(): {text:?}"))?,
        ),
        "!!float" => JValue::from(
            resolve_float(text)
                .or_else(|| resolve_int(text).map(|i| i as f64))
                .or_else(|| text.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("could not convert string to float: {text:?}"))?,
        ),
        other => {
            return Err(format!(
                "could not determine a constructor for the tag '{other}'"
            ));
        }
    })
}

/// Builds documents from the parser's events.
struct Builder {
    docs: Vec<JValue>,
    stack: Vec<(Node, usize, Option<Node>)>,
    anchors: HashMap<usize, Node>,
}

impl Builder {
    /// Adds a finished node to its parent (or as a document), remembering its anchor.
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), String> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some((parent, _, pending_key)) = self.stack.last_mut() else {
            self.docs.push(node.into_value());
            return Ok(());
        };
        match parent {
            Node::Seq(items) => items.push(node),
            Node::Map(entries) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    let is_merge = matches!(&key, Node::Scalar(k) if k.as_str() == Some("<<"));
                    if is_merge {
                        merge_into(entries, node)?;
                    } else {
                        entries.push((key, node));
                    }
                }
            },
            Node::Scalar(_) => return Err("internal: scalar as a parent".into()),
        }
        Ok(())
    }
}

/// `<<: *base` or `<<: [*a, *b]`: the merged mappings' keys, below the mapping's own.
fn merge_into(entries: &mut Vec<(Node, Node)>, merged: Node) -> Result<(), String> {
    let sources = match merged {
        Node::Map(m) => vec![m],
        Node::Seq(items) => items
            .into_iter()
            .map(|i| match i {
                Node::Map(m) => Ok(m),
                _ => Err("expected a mapping for merging".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Node::Scalar(_) => return Err("expected a mapping or list of mappings for merging".into()),
    };
    for source in sources {
        for (k, v) in source {
            let exists = entries.iter().any(|(x, _)| match (x, &k) {
                (Node::Scalar(a), Node::Scalar(b)) => a == b,
                _ => false,
            });
            if !exists {
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

/// Every document of a YAML stream.
pub(crate) fn load_all(text: &str) -> Result<Vec<JValue>, String> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        docs: Vec::new(),
        stack: Vec::new(),
        anchors: HashMap::new(),
    };
    loop {
        let (event, mark) = parser.next_token().map_err(|e| e.to_string())?;
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
            Event::Alias(id) => {
                let node = b
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("found undefined alias at line {}", mark.line()))?;
                b.push(node, 0)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = match (&tag, style) {
                    (Some(t), _) => tagged(&text, t)?,
                    (None, TScalarStyle::Plain) => resolve_plain(&text),
                    (None, _) => JValue::from(text),
                };
                b.push(Node::Scalar(value), anchor)?;
            }
            Event::SequenceStart(anchor, _) => b.stack.push((Node::Seq(Vec::new()), anchor, None)),
            Event::MappingStart(anchor, _) => b.stack.push((Node::Map(Vec::new()), anchor, None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor, _) = b.stack.pop().ok_or("unbalanced YAML events")?;
                b.push(node, anchor)?;
            }
        }
    }
    Ok(b.docs)
}

fn from_yaml(v: JValue) -> Result<JValue, Error> {
    if v.kind() != ValueKind::String {
        return Ok(v);
    }
    let docs =
        load_all(v.as_str().unwrap_or_default()).map_err(|e| invalid(format!("from_yaml: {e}")))?;
    if docs.len() > 1 {
        return Err(invalid(
            "from_yaml: expected a single document in the stream but found another document",
        ));
    }
    Ok(docs.into_iter().next().unwrap_or(JValue::from(())))
}

fn from_yaml_all(v: JValue) -> Result<JValue, Error> {
    if v.kind() != ValueKind::String {
        if v.is_undefined() {
            return Err(invalid(format!("from_yaml_all: {}", py_type(&v))));
        }
        return Ok(v);
    }
    let docs = load_all(v.as_str().unwrap_or_default())
        .map_err(|e| invalid(format!("from_yaml_all: {e}")))?;
    Ok(JValue::from(docs))
}

/// Registers `from_yaml` and `from_yaml_all`.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_filters(
        env,
        &[
            ("from_yaml", |a| from_yaml(only(a, "from_yaml")?.clone())),
            ("from_yaml_all", |a| {
                from_yaml_all(only(a, "from_yaml_all")?.clone())
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
    fn from_yaml_reads_yaml_1_1_as_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (
                    r#"('---' ~ nl ~ 'bananas: yellow' ~ nl ~ 'apples: red')|from_yaml"#,
                    r#"{"bananas": "yellow", "apples": "red"}"#,
                ),
                (r#"2|from_yaml"#, r#"2"#),
                (
                    r#"('---' ~ nl ~ 'bananas: yellow' ~ nl ~ '---' ~ nl ~ 'apples: red')|from_yaml_all|list"#,
                    r#"[{"bananas": "yellow"}, {"apples": "red"}]"#,
                ),
                (r#"2|from_yaml_all"#, r#"2"#),
                (
                    r#"('base: &b {x: 1, y: 2}' ~ nl ~ 'd:' ~ nl ~ '  <<: *b' ~ nl ~ '  y: 3' ~ nl ~ 'l: [*b, *b]')|from_yaml"#,
                    r#"{"base": {"x": 1, "y": 2}, "d": {"x": 1, "y": 3}, "l": [{"x": 1, "y": 2}, {"x": 1, "y": 2}]}"#,
                ),
                (
                    r#"('- a' ~ nl ~ '- [1, 2]' ~ nl ~ '- {k: v}' ~ nl ~ '- !!str 5' ~ nl ~ '- !!int "7"' ~ nl ~ '- !!float 3')|from_yaml"#,
                    r#"["a", [1, 2], {"k": "v"}, "5", 7, 3.0]"#,
                ),
                (r#"''|from_yaml"#, r#"null"#),
                (
                    r#"('a: |' ~ nl ~ '  line1' ~ nl ~ '  line2' ~ nl ~ 'b: >' ~ nl ~ '  folded' ~ nl ~ '  text' ~ nl ~ '')|from_yaml"#,
                    r#"{"a": "line1\nline2\n", "b": "folded text\n"}"#,
                ),
                (r#"('a: 1' ~ nl ~ 'a: 2')|from_yaml"#, r#"{"a": 2}"#),
                (
                    r#"('"quoted": 1' ~ nl ~ '? complex' ~ nl ~ ': 2')|from_yaml"#,
                    r#"{"quoted": 1, "complex": 2}"#,
                ),
                (r#"'1'|from_yaml"#, r#"1"#),
            ],
        );
        errors(
            &vars,
            &[
                (r#"'{a: 1'|from_yaml"#, "while parsing a flow mapping"),
                (
                    r#"'x: !unsafe "{{ foo }}"'|from_yaml"#,
                    "could not determine a constructor for the tag '!unsafe'",
                ),
                (
                    r#"('a: 1' ~ nl ~ '---' ~ nl ~ 'b: 2')|from_yaml"#,
                    "expected a single document in the stream",
                ),
                (r#"'[1, 2'|from_yaml_all"#, "while parsing a flow sequence"),
            ],
        );
    }
}
