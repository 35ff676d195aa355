//! Jinja templating with Ansible's conventions, on minijinja.
//!
//! Three uses: rendering module arguments (a string that is one `{{ expr }}` keeps the
//! expression's native type, as Ansible does, so `loop: "{{ pkgs }}"` gives a list),
//! evaluating conditions (`when`, `changed_when`, ...), and rendering template files.
//! Undefined variables are errors, as in Ansible, except under `is defined` and `default`.

use minijinja::value::{Kwargs, Rest, Value as JValue};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// A template or expression that failed, with the text that failed.
#[derive(Debug, thiserror::Error)]
#[error("template error in {source_text:?}: {detail}")]
pub struct TemplateError {
    /// The template or expression text.
    pub source_text: String,
    /// What went wrong (minijinja's message, with line information where it has one).
    pub detail: String,
}

/// The templating engine: one per runner, shared by every task.
pub struct Engine {
    env: Environment<'static>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

fn err(source: &str, e: &Error) -> TemplateError {
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        detail.push_str(": ");
        detail.push_str(&c.to_string());
        cause = c.source();
    }
    TemplateError {
        source_text: source.to_string(),
        detail,
    }
}

/// True when `s` holds template syntax at all; plain strings skip the engine entirely.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// If `s` is exactly one `{{ expression }}`, the expression.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

impl Engine {
    /// An engine with Ansible's settings and filters.
    pub fn new() -> Engine {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Ansible's template module keeps a template's final newline.
        env.set_keep_trailing_newline(true);
        // Ansible renders with trim_blocks on: a line holding only a block tag leaves no blank line.
        env.set_trim_blocks(true);
        register_filters(&mut env);
        crate::filters::register(&mut env);
        Engine { env }
    }

    /// Renders a template string to text.
    pub fn render_str(&self, source: &str, ctx: &JValue) -> Result<String, TemplateError> {
        self.env
            .render_str(source, ctx)
            .map_err(|e| err(source, &e))
    }

    /// Evaluates an expression to a value.
    pub fn eval(&self, expr: &str, ctx: &JValue) -> Result<JValue, TemplateError> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| err(expr, &e))?;
        e.eval(ctx).map_err(|e| err(expr, &e))
    }

    /// Evaluates a condition (`when`, `changed_when`, ...). A condition wrapped in
    /// `{{ }}` is accepted, as Ansible accepts it with a warning.
    pub fn eval_bool(&self, expr: &str, ctx: &JValue) -> Result<bool, TemplateError> {
        let expr = single_expression(expr).unwrap_or(expr);
        let v = self.eval(expr, ctx)?;
        // Ansible evaluates the strings "false"/"no" from variables as false too.
        if let Some(s) = v.as_str() {
            return Ok(crate::modules::args::truthy_str(s).unwrap_or(!s.is_empty()));
        }
        Ok(v.is_true())
    }

    /// Renders every string inside a JSON value. A string that is one `{{ expr }}`
    /// becomes the expression's value with its type (list, number, ...).
    pub fn render_value(&self, v: &Value, ctx: &JValue) -> Result<Value, TemplateError> {
        Ok(match v {
            Value::String(s) if is_template(s) => match single_expression(s) {
                Some(expr) => to_json(&self.eval(expr, ctx)?, s)?,
                None => Value::String(self.render_str(s, ctx)?),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_value(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.render_value(v, ctx)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

/// Converts a template value back into JSON; an undefined value is an error naming it.
pub fn to_json(v: &JValue, source: &str) -> Result<Value, TemplateError> {
    if v.is_undefined() {
        return Err(TemplateError {
            source_text: source.to_string(),
            detail: "undefined value".to_string(),
        });
    }
    serde_json::to_value(v).map_err(|e| TemplateError {
        source_text: source.to_string(),
        detail: e.to_string(),
    })
}

/// Compiles a pattern written in Python's `re` syntax (as Ansible's regex filters and
/// tests take it), or says why it cannot be.
pub(crate) fn python_regex(
    pattern: &str,
    ignorecase: bool,
    multiline: bool,
) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(&py_pattern(pattern))
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| {
            invalid(format!(
                "cannot compile the regular expression '{pattern}' (no look-around or backreferences): {}",
                e.to_string().replace('\n', " ")
            ))
        })
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Ansible's filters that plans commonly use, beyond minijinja's built-ins.
fn register_filters(env: &mut Environment<'static>) {
    env.add_filter("bool", |v: JValue| -> bool {
        match v.as_str() {
            Some(s) => crate::modules::args::truthy_str(s).unwrap_or(false),
            None => v.is_true(),
        }
    });
    env.add_filter("to_json", |v: JValue| -> Result<String, Error> {
        serde_json::to_string(&v).map_err(|e| invalid(e.to_string()))
    });
    env.add_filter("to_nice_json", |v: JValue| -> Result<String, Error> {
        serde_json::to_string_pretty(&v).map_err(|e| invalid(e.to_string()))
    });
    env.add_filter("from_json", |s: String| -> Result<JValue, Error> {
        let v: Value = serde_json::from_str(&s).map_err(|e| invalid(e.to_string()))?;
        Ok(JValue::from_serialize(&v))
    });
    env.add_filter("basename", |s: String| -> String {
        s.rsplit('/').next().unwrap_or_default().to_string()
    });
    env.add_filter("dirname", |s: String| -> String {
        match s.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => s.get(..i).unwrap_or_default().to_string(),
            None => String::new(),
        }
    });
    env.add_filter("ternary", |v: JValue, yes: JValue, no: JValue| -> JValue {
        if v.is_true() { yes } else { no }
    });
    env.add_filter("mandatory", |v: JValue| -> Result<JValue, Error> {
        if v.is_undefined() {
            Err(invalid("mandatory variable is not defined"))
        } else {
            Ok(v)
        }
    });
    // Tests on registered results, as Ansible defines them.
    fn field(v: &JValue, name: &str) -> bool {
        v.get_attr(name).map(|f| f.is_true()).unwrap_or(false)
    }
    env.add_test("failed", |v: JValue| field(&v, "failed"));
    env.add_test("succeeded", |v: JValue| !field(&v, "failed"));
    env.add_test("success", |v: JValue| !field(&v, "failed"));
    env.add_test("changed", |v: JValue| field(&v, "changed"));
    env.add_test("skipped", |v: JValue| field(&v, "skipped"));

    // --- Ansible's regex filters, with Python `re` syntax translated (see py_pattern).
    /// Positional and keyword options after a filter's fixed arguments: Rest<Value>
    /// also swallows the kwargs value, so split it off here.
    struct Opts {
        pos: Vec<JValue>,
        kw: Kwargs,
    }
    fn opts(rest: Vec<JValue>) -> Result<Opts, Error> {
        let mut pos = rest;
        let kw = match pos.last() {
            Some(last) if last.is_kwargs() => {
                let kw = <Kwargs as minijinja::value::ArgType>::from_value(Some(last))?;
                pos.pop();
                kw
            }
            _ => Kwargs::from_iter(std::iter::empty::<(&str, JValue)>()),
        };
        Ok(Opts { pos, kw })
    }
    impl Opts {
        /// A boolean given by name, else at `index` among the positional options.
        fn flag(&self, index: usize, name: &str) -> Result<bool, Error> {
            match self.kw.get::<Option<JValue>>(name)? {
                Some(v) => Ok(v.is_true()),
                None => Ok(self.pos.get(index).is_some_and(JValue::is_true)),
            }
        }
    }
    fn build(pattern: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, Error> {
        python_regex(pattern, ignorecase, multiline)
    }
    env.add_filter(
        "regex_replace",
        |v: String, pattern: String, rest: Rest<JValue>| -> Result<String, Error> {
            let o = opts(rest.0)?;
            let replacement = match o.pos.first() {
                Some(r) => r.to_string(),
                None => {
                    o.kw.get::<Option<String>>("replacement")?
                        .unwrap_or_default()
                }
            };
            let re = build(&pattern, o.flag(1, "ignorecase")?, o.flag(2, "multiline")?)?;
            let count: usize = o.kw.get::<Option<usize>>("count")?.unwrap_or(0);
            o.kw.assert_all_used()?;
            let template = py_template(&replacement, re.capture_names()).map_err(invalid)?;
            Ok(re.replacen(&v, count, template.as_str()).into_owned())
        },
    );
    env.add_filter(
        "regex_search",
        |v: String, pattern: String, rest: Rest<JValue>| -> Result<JValue, Error> {
            let o = opts(rest.0)?;
            let re = build(
                &pattern,
                o.flag(99, "ignorecase")?,
                o.flag(99, "multiline")?,
            )?;
            o.kw.assert_all_used()?;
            let Some(caps) = re.captures(&v) else {
                return Ok(JValue::from(()));
            };
            if o.pos.is_empty() {
                return Ok(JValue::from(caps.get(0).map_or("", |m| m.as_str())));
            }
            // Extra arguments '\\1' / '\\g<name>' ask for groups, returned as a list.
            let mut items = Vec::new();
            for g in &o.pos {
                let g = g.to_string();
                let m = if let Some(name) = g.strip_prefix("\\g<").and_then(|r| r.strip_suffix('>'))
                {
                    match name.parse::<usize>() {
                        Ok(n) => caps.get(n),
                        Err(_) => caps.name(name),
                    }
                } else if let Some(n) = g.strip_prefix('\\').and_then(|n| n.parse::<usize>().ok()) {
                    caps.get(n)
                } else {
                    return Err(invalid(format!("regex_search: unknown argument '{g}'")));
                };
                items.push(m.map_or(JValue::from(()), |m| JValue::from(m.as_str())));
            }
            Ok(JValue::from(items))
        },
    );
    env.add_filter(
        "regex_findall",
        |v: String, pattern: String, rest: Rest<JValue>| -> Result<JValue, Error> {
            let o = opts(rest.0)?;
            let re = build(&pattern, o.flag(1, "ignorecase")?, o.flag(0, "multiline")?)?;
            o.kw.assert_all_used()?;
            // As Python's findall: whole matches, group 1, or a list per match of all groups.
            let groups = re.captures_len().saturating_sub(1);
            let text = |m: Option<regex::Match<'_>>| JValue::from(m.map_or("", |m| m.as_str()));
            let found: Vec<JValue> = re
                .captures_iter(&v)
                .map(|c| match groups {
                    0 => text(c.get(0)),
                    1 => text(c.get(1)),
                    n => JValue::from((1..=n).map(|i| text(c.get(i))).collect::<Vec<_>>()),
                })
                .collect();
            Ok(JValue::from(found))
        },
    );
    env.add_filter("regex_escape", |v: String| -> String { regex::escape(&v) });

    // --- base64, on the string's UTF-8 bytes (Ansible's default encoding).
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    env.add_filter("b64encode", |v: String| -> String {
        let mut out = String::with_capacity(v.len().div_ceil(3) * 4);
        for chunk in v.as_bytes().chunks(3) {
            let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
            let n = (b(0) << 16) | (b(1) << 8) | b(2);
            for k in 0..4 {
                if k <= chunk.len() {
                    let idx = ((n >> (18 - 6 * k)) & 63) as usize;
                    out.push(char::from(B64.get(idx).copied().unwrap_or(b'=')));
                } else {
                    out.push('=');
                }
            }
        }
        out
    });
    env.add_filter("b64decode", |v: String| -> Result<String, Error> {
        let bad = || invalid("b64decode: input is not valid base64");
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(v.len() / 4 * 3);
        // Whitespace is skipped, as Python's decoder does; padding ends the data.
        let body = v.trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
        for c in body.bytes().filter(|c| !c.is_ascii_whitespace()) {
            let d = B64.iter().position(|&x| x == c).ok_or_else(bad)?;
            bits = (bits << 6) | d as u32;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        if nbits >= 6 {
            return Err(bad());
        }
        String::from_utf8(out).map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8"))
    });

    // --- YAML: a block-style emitter for JSON-like values, keys sorted as PyYAML does.
    fn yaml_scalar(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => yaml_str(s),
            Value::Array(a) if a.is_empty() => "[]".into(),
            Value::Object(_) | Value::Array(_) => "{}".into(),
        }
    }
    /// A string plain when YAML reads it back as the same string, else quoted.
    fn yaml_str(s: &str) -> String {
        let special = matches!(
            s.to_ascii_lowercase().as_str(),
            "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off"
        );
        let numeric = s
            .trim_start_matches(['+', '-', '.'])
            .starts_with(|c: char| c.is_ascii_digit())
            || s.parse::<f64>().is_ok();
        let unsafe_char = s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
            || s.ends_with([' ', ':'])
            || s.contains(": ")
            || s.contains(" #");
        if s.chars().any(char::is_control) {
            // JSON's double-quoted string is valid YAML and escapes newlines and controls.
            serde_json::to_string(s).unwrap_or_default()
        } else if special || numeric || unsafe_char {
            format!("'{}'", s.replace('\'', "''"))
        } else {
            s.to_string()
        }
    }
    fn yaml_block(v: &Value, indent: usize, level: usize, out: &mut String) {
        let pad = " ".repeat(indent * level);
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, item) in m {
                    out.push_str(&format!("{pad}{}:", yaml_str(k)));
                    yaml_child(item, indent, level, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for item in a {
                    out.push_str(&format!("{pad}-{}", " ".repeat(indent.saturating_sub(1))));
                    match item {
                        Value::Object(m) if !m.is_empty() => {
                            // The first key shares the dash's line; the rest align with it.
                            let mut inner = String::new();
                            yaml_block(item, indent, level + 1, &mut inner);
                            out.push_str(inner.get(indent * (level + 1)..).unwrap_or_default());
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push('\n');
                            yaml_block(item, indent, level + 1, out);
                        }
                        scalar => {
                            out.push_str(&yaml_scalar(scalar));
                            out.push('\n');
                        }
                    }
                }
            }
            scalar => {
                out.push_str(&pad);
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
    /// A mapping value: scalars and empty collections on the key's line, others below.
    fn yaml_child(v: &Value, indent: usize, level: usize, out: &mut String) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                yaml_block(v, indent, level + 1, out);
            }
            // PyYAML does not indent a list under its key.
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                yaml_block(v, indent, level, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
    fn to_yaml(v: &JValue, kw: &Kwargs, default_indent: usize) -> Result<String, Error> {
        let indent = kw
            .get::<Option<usize>>("indent")?
            .unwrap_or(default_indent)
            .max(1);
        kw.assert_all_used()?;
        let json = serde_json::to_value(v).map_err(|e| invalid(e.to_string()))?;
        let mut out = String::new();
        yaml_block(&json, indent, 0, &mut out);
        Ok(out)
    }
    env.add_filter("to_yaml", |v: JValue, kw: Kwargs| to_yaml(&v, &kw, 2));
    env.add_filter("to_nice_yaml", |v: JValue, kw: Kwargs| to_yaml(&v, &kw, 4));

    // --- Dictionaries and lists.
    fn merge(
        into: &mut serde_json::Map<String, Value>,
        from: serde_json::Map<String, Value>,
        deep: bool,
    ) {
        for (k, v) in from {
            match (into.get_mut(&k), v) {
                (Some(Value::Object(old)), Value::Object(new)) if deep => merge(old, new, true),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    env.add_filter(
        "combine",
        |v: JValue, rest: Rest<JValue>| -> Result<JValue, Error> {
            let o = opts(rest.0)?;
            let deep = o.kw.get::<Option<bool>>("recursive")?.unwrap_or(false);
            if let Some(lm) = o.kw.get::<Option<String>>("list_merge")?
                && lm != "replace"
            {
                return Err(invalid(format!(
                    "combine: list_merge={lm} is not supported yet"
                )));
            }
            o.kw.assert_all_used()?;
            let mut out = serde_json::Map::new();
            // Lists of dicts are flattened, as Ansible's combine does.
            let mut dicts = Vec::new();
            for d in std::iter::once(v).chain(o.pos) {
                match serde_json::to_value(&d).map_err(|e| invalid(e.to_string()))? {
                    Value::Array(items) => dicts.extend(items),
                    other => dicts.push(other),
                }
            }
            for d in dicts {
                let Value::Object(m) = d else {
                    return Err(invalid(format!("combine: expected dictionaries, got {d}")));
                };
                merge(&mut out, m, deep);
            }
            Ok(JValue::from_serialize(&out))
        },
    );
    fn names(kw: &Kwargs) -> Result<(String, String), Error> {
        let k = kw
            .get::<Option<String>>("key_name")?
            .unwrap_or_else(|| "key".into());
        let v = kw
            .get::<Option<String>>("value_name")?
            .unwrap_or_else(|| "value".into());
        kw.assert_all_used()?;
        Ok((k, v))
    }
    env.add_filter(
        "dict2items",
        |v: JValue, kw: Kwargs| -> Result<JValue, Error> {
            let (kn, vn) = names(&kw)?;
            let Ok(Value::Object(m)) = serde_json::to_value(&v) else {
                return Err(invalid("dict2items requires a dictionary"));
            };
            let items: Vec<Value> = m
                .into_iter()
                .map(|(k, v)| {
                    let mut item = serde_json::Map::new();
                    item.insert(kn.clone(), Value::String(k));
                    item.insert(vn.clone(), v);
                    Value::Object(item)
                })
                .collect();
            Ok(JValue::from_serialize(&items))
        },
    );
    env.add_filter(
        "items2dict",
        |v: JValue, kw: Kwargs| -> Result<JValue, Error> {
            let (kn, vn) = names(&kw)?;
            let Ok(Value::Array(items)) = serde_json::to_value(&v) else {
                return Err(invalid("items2dict requires a list"));
            };
            let mut out = serde_json::Map::new();
            for item in items {
                let (Some(k), Some(val)) = (item.get(&kn), item.get(&vn)) else {
                    return Err(invalid(format!(
                        "items2dict: each item needs '{kn}' and '{vn}' keys, got {item}"
                    )));
                };
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(key, val.clone());
            }
            Ok(JValue::from_serialize(&out))
        },
    );
    // Jinja2's tojson (minijinja's needs its `json` feature): JSON with <, >, & and '
    // escaped, so the text is safe inside HTML and single-quoted shell strings.
    env.add_filter("tojson", |v: JValue| -> Result<String, Error> {
        let s = serde_json::to_string(&v).map_err(|e| invalid(e.to_string()))?;
        Ok(s.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\'', "\\u0027"))
    });
    // Ansible's quote: POSIX shell quoting, as Python's shlex.quote.
    env.add_filter("quote", |v: String| -> String {
        let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
        if v.is_empty() {
            "''".into()
        } else if v.chars().all(safe) {
            v
        } else {
            format!("'{}'", v.replace('\'', "'\"'\"'"))
        }
    });
}

// ---------------------------------------------------------------------------
// Python `re` compatibility, shared by the regex filters and the text modules.

/// Translates a Python `re` pattern into the regex crate's syntax where the two differ
/// only in spelling; anything else is passed through for the crate to judge.
pub(crate) fn py_pattern(p: &str) -> String {
    let cs: Vec<char> = p.chars().collect();
    let at = |i: usize| cs.get(i).copied();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while let Some(c) = at(i) {
        i += 1;
        match c {
            '\\' => {
                let Some(d) = at(i) else {
                    // A trailing backslash: let the crate report it.
                    out.push('\\');
                    break;
                };
                i += 1;
                match d {
                    // Python's end of text; the crate spells it \z.
                    'Z' if !in_class => out.push_str(r"\z"),
                    // Literal in Python, word boundaries in the crate.
                    '<' | '>' => out.push(d),
                    _ => {
                        out.push('\\');
                        out.push(d);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if at(i) == Some('^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is literal in both; spell it so anyway.
                if at(i) == Some(']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            // Python has no nested classes or class set operations: all literal.
            '[' => out.push_str(r"\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' | '-' if in_class && at(i) == Some(c) => {
                out.push(c);
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '{' if !in_class => {
                // Python reads `{` as a quantifier only in {n}, {n,}, {,m}, {n,m};
                // otherwise it is a literal brace (`server {`).
                let close = cs
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&x| x == '}'))
                    .map(|k| i + k);
                let body: String = close
                    .and_then(|k| cs.get(i..k))
                    .map(|s| s.iter().collect())
                    .unwrap_or_default();
                let (lo, hi) = body.split_once(',').unwrap_or((&body, ""));
                let digits = |s: &str| s.chars().all(|x| x.is_ascii_digit());
                let valid = close.is_some()
                    && digits(lo)
                    && digits(hi)
                    && (!lo.is_empty() || (body.contains(',') && !hi.is_empty()));
                match close {
                    Some(k) if valid => {
                        out.push('{');
                        if lo.is_empty() {
                            out.push('0');
                        }
                        out.push_str(&body);
                        out.push('}');
                        i = k + 1;
                    }
                    _ => out.push_str(r"\{"),
                }
            }
            '}' if !in_class => out.push_str(r"\}"),
            _ => out.push(c),
        }
    }
    out
}

/// Translates a Python replacement template (`\1`, `\g<1>`, `\g<name>`, `\n`, `\\`)
/// into the regex crate's (`${1}`, `${name}`, `$$`), checking group references against
/// the pattern's groups (`names[i]` is group i's name, group 0 first), as Python does.
pub(crate) fn py_template<'n>(
    t: &str,
    names: impl Iterator<Item = Option<&'n str>>,
) -> Result<String, String> {
    let names: Vec<Option<&str>> = names.collect();
    let group_ok = |n: usize| n < names.len();
    let cs: Vec<char> = t.chars().collect();
    let at = |i: usize| cs.get(i).copied();
    let octal = |c: Option<char>| c.is_some_and(|c| ('0'..='7').contains(&c));
    let mut out = String::with_capacity(t.len() + 8);
    let mut i = 0;
    while let Some(c) = at(i) {
        i += 1;
        if c == '$' {
            out.push_str("$$");
            continue;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(d) = at(i) else {
            return Err("bad escape (end of pattern)".into());
        };
        i += 1;
        let literal = match d {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'f' => '\x0c',
            'v' => '\x0b',
            'a' => '\x07',
            'b' => '\x08',
            '\\' => '\\',
            'g' => {
                let rest: String = cs.get(i..).unwrap_or_default().iter().collect();
                let name = rest
                    .strip_prefix('<')
                    .and_then(|r| r.split_once('>'))
                    .map(|(n, _)| n.to_string())
                    .ok_or_else(|| "missing group name after \\g".to_string())?;
                i += name.chars().count() + 2;
                if let Ok(n) = name.parse::<usize>() {
                    if !group_ok(n) {
                        return Err(format!("invalid group reference {n}"));
                    }
                } else if !names.contains(&Some(name.as_str())) {
                    return Err(format!("unknown group name '{name}'"));
                }
                out.push_str(&format!("${{{name}}}"));
                continue;
            }
            // \0, or three octal digits: an octal character escape.
            '0'..='9' if d == '0' || (octal(Some(d)) && octal(at(i)) && octal(at(i + 1))) => {
                let mut v = d.to_digit(8).unwrap_or(0);
                let mut taken = 0;
                while taken < 2 && octal(at(i)) {
                    v = v * 8 + at(i).and_then(|c| c.to_digit(8)).unwrap_or(0);
                    i += 1;
                    taken += 1;
                }
                char::from_u32(v).ok_or_else(|| format!("invalid octal escape \\{d}"))?
            }
            '1'..='9' => {
                // One or two digits name a group.
                let mut n = d.to_digit(10).unwrap_or(0) as usize;
                if let Some(e) = at(i).and_then(|c| c.to_digit(10)) {
                    n = n * 10 + e as usize;
                    i += 1;
                }
                if !group_ok(n) {
                    return Err(format!("invalid group reference {n}"));
                }
                out.push_str(&format!("${{{n}}}"));
                continue;
            }
            x if x.is_ascii_alphabetic() => return Err(format!("bad escape \\{x}")),
            // Python keeps other unknown escapes as they are, backslash included.
            x => {
                out.push('\\');
                x
            }
        };
        if literal == '$' {
            out.push_str("$$");
        } else {
            out.push(literal);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> JValue {
        JValue::from_serialize(&v)
    }

    #[test]
    fn native_single_expression_keeps_type() {
        let e = Engine::new();
        let c = ctx(json!({"pkgs": ["a", "b"], "n": 3, "mode": "0755"}));
        assert_eq!(
            e.render_value(&json!("{{ pkgs }}"), &c).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(e.render_value(&json!("{{ n }}"), &c).unwrap(), json!(3));
        assert_eq!(
            e.render_value(&json!("{{ mode }}"), &c).unwrap(),
            json!("0755")
        );
        assert_eq!(
            e.render_value(&json!("n={{ n }}"), &c).unwrap(),
            json!("n=3")
        );
    }

    #[test]
    fn undefined_is_an_error_but_defined_tests_and_default_work() {
        let e = Engine::new();
        let c = ctx(json!({}));
        assert!(e.render_str("{{ missing }}", &c).is_err());
        assert!(!e.eval_bool("missing is defined", &c).unwrap());
        assert_eq!(
            e.render_str("{{ missing | default('x') }}", &c).unwrap(),
            "x"
        );
    }

    #[test]
    fn conditions() {
        let e = Engine::new();
        let c = ctx(json!({"os": "Debian", "r": {"rc": 0, "changed": true}, "f": "no"}));
        assert!(e.eval_bool("os == \"Debian\"", &c).unwrap());
        assert!(e.eval_bool("{{ os == 'Debian' }}", &c).unwrap());
        assert!(!e.eval_bool("r.rc != 0", &c).unwrap());
        assert!(e.eval_bool("r is changed", &c).unwrap());
        assert!(e.eval_bool("r is succeeded", &c).unwrap());
        assert!(!e.eval_bool("f", &c).unwrap());
        assert!(!e.eval_bool("f | bool", &c).unwrap());
    }

    #[test]
    fn filters() {
        let e = Engine::new();
        let c = ctx(json!({"p": "/etc/app/x.conf", "l": ["b", "a"]}));
        assert_eq!(
            e.render_str("{{ p | basename }} {{ p | dirname }}", &c)
                .unwrap(),
            "x.conf /etc/app"
        );
        assert_eq!(
            e.render_str("{{ l | join(',') }} {{ l | to_json }}", &c)
                .unwrap(),
            "b,a [\"b\",\"a\"]"
        );
        assert_eq!(e.render_str("line\n", &c).unwrap(), "line\n");
    }

    #[test]
    fn python_patterns_are_translated() {
        assert_eq!(py_pattern(r"^server {"), r"^server \{");
        assert_eq!(py_pattern(r"a{2}b{1,}c{,3}"), r"a{2}b{1,}c{0,3}");
        assert_eq!(py_pattern(r"end\Z"), r"end\z");
        assert_eq!(py_pattern(r"[[]x"), r"[\[]x");
        assert_eq!(py_pattern(r"[]a]"), r"[\]a]");
        assert_eq!(py_pattern(r"\<tag\>"), r"<tag>");
        assert_eq!(py_pattern(r"\\{x}"), r"\\\{x\}");
        assert_eq!(py_pattern(r"[a&&b]"), r"[a&\&b]");
        for p in [r"^server {", r"c{,3}", r"[[]", r"x}"] {
            assert!(regex::Regex::new(&py_pattern(p)).is_ok(), "{p}");
        }
    }

    #[test]
    fn python_templates_are_translated() {
        let re = regex::Regex::new(r"(?P<k>\w+)=(\w+)").unwrap();
        let t = |s: &str| py_template(s, re.capture_names());
        assert_eq!(t(r"\2=\1").unwrap(), "${2}=${1}");
        assert_eq!(t(r"\g<k>: \g<2>$").unwrap(), "${k}: ${2}$$");
        assert_eq!(t(r"a\nb\\c\.").unwrap(), "a\nb\\c\\.");
        assert_eq!(t(r"\0").unwrap(), "\0");
        assert!(t(r"\3").unwrap_err().contains("invalid group reference 3"));
        assert!(t(r"\g<nope>").unwrap_err().contains("nope"));
        assert!(t(r"\q").unwrap_err().contains("bad escape"));
        let caps = re.captures("key=val").unwrap();
        let mut out = String::new();
        caps.expand(&t(r"\2 \g<k> $1").unwrap(), &mut out);
        assert_eq!(out, "val key $1");
    }

    /// Renders `src` with a few variables; errors as their text.
    fn render(src: &str) -> Result<String, String> {
        let c = ctx(json!({
            "s": "Host=web1 port=80\nhost=db port=5432",
            "d": {"a": 1, "n": {"x": 1, "y": 2}},
            "e": {"b": 2, "n": {"x": 9}},
            "l": [3, 1, 3, 2],
            "users": [{"name": "ann", "admin": true}, {"name": "bob", "admin": false}],
        }));
        Engine::new().render_str(src, &c).map_err(|e| e.detail)
    }

    #[test]
    fn regex_filters_use_python_syntax() {
        assert_eq!(
            render(r#"{{ 'ansible' | regex_replace('^a.*i(.*)$', 'a\\1') }}"#).unwrap(),
            "able"
        );
        assert_eq!(
            render(r#"{{ 'k=v' | regex_replace('(?P<k>\\w)=(\\w)', '\\g<k>: \\2 $1') }}"#).unwrap(),
            "k: v $1"
        );
        assert_eq!(
            render(r#"{{ s | regex_replace('^host', 'H', ignorecase=true, multiline=true) }}"#)
                .unwrap(),
            "H=web1 port=80\nH=db port=5432"
        );
        assert_eq!(
            render(r#"{{ 'aaa' | regex_replace('a', 'b', count=2) }}"#).unwrap(),
            "bba"
        );
        assert_eq!(
            render(r#"{{ 'server {' | regex_replace('{$', '{ # x') }}"#).unwrap(),
            "server { # x"
        );
        assert_eq!(
            render(r#"{{ s | regex_search('port=\\d+') }}"#).unwrap(),
            "port=80"
        );
        assert_eq!(
            render(r#"{{ s | regex_search('nomatch') is none }}"#).unwrap(),
            "True"
        );
        assert_eq!(
            render(r#"{{ s | regex_search('(?P<h>\\w+) port=(\\d+)', '\\g<h>', '\\2') }}"#)
                .unwrap(),
            r#"["web1", "80"]"#
        );
        assert_eq!(
            render(r#"{{ s | regex_search('^HOST=db', ignorecase=true, multiline=true) }}"#)
                .unwrap(),
            "host=db"
        );
        assert_eq!(
            render(r#"{{ s | regex_findall('port=\\d+') }}"#).unwrap(),
            r#"["port=80", "port=5432"]"#
        );
        assert_eq!(
            render(r#"{{ s | regex_findall('port=(\\d+)') }}"#).unwrap(),
            r#"["80", "5432"]"#
        );
        assert_eq!(
            render(r#"{{ s | regex_findall('(\\w+)=(\\d+)') }}"#).unwrap(),
            r#"[["port", "80"], ["port", "5432"]]"#
        );
        assert_eq!(render(r#"{{ '1.2*' | regex_escape }}"#).unwrap(), r"1\.2\*");
        let e = render(r#"{{ 'x' | regex_replace('(?<=a)x', 'y') }}"#).unwrap_err();
        assert!(e.contains("look-around"), "{e}");
        let e = render(r#"{{ 'x' | regex_replace('(x)', '\\2') }}"#).unwrap_err();
        assert!(e.contains("invalid group reference 2"), "{e}");
        assert!(render(r#"{{ 'x' | regex_replace('x', 'y', bogus=1) }}"#).is_err());
    }

    #[test]
    fn base64_round_trips() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
            ("héllo\n", "aMOpbGxvCg=="),
        ] {
            let c = ctx(json!({"p": plain, "e": enc}));
            let e = Engine::new();
            assert_eq!(e.render_str("{{ p | b64encode }}", &c).unwrap(), enc);
            assert_eq!(e.render_str("{{ e | b64decode }}", &c).unwrap(), plain);
        }
        assert_eq!(render("{{ 'Zm9v\nYmFy' | b64decode }}").unwrap(), "foobar");
        assert!(
            render("{{ 'Zm9v!' | b64decode }}")
                .unwrap_err()
                .contains("not valid base64")
        );
        assert!(
            render("{{ '/w==' | b64decode }}")
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn yaml_is_block_style_and_reads_back_the_same() {
        assert_eq!(
            render("{{ {'b': [1, 'yes', {'k': 'v', 'j': ''}], 'a': {'x': 'a: b'}, 'c': [], 'n': none} | to_nice_yaml }}").unwrap(),
            "a:\n    x: 'a: b'\nb:\n-   1\n-   'yes'\n-   j: ''\n    k: v\nc: []\nn: null\n"
        );
        assert_eq!(
            render("{{ {'l': [[1, 2], 'x\ny'], 'v': '0755'} | to_yaml }}").unwrap(),
            "l:\n- \n  - 1\n  - 2\n- \"x\\ny\"\nv: '0755'\n"
        );
        assert_eq!(render("{{ 'plain' | to_yaml }}").unwrap(), "plain\n");
    }

    #[test]
    fn dict_filters() {
        assert_eq!(
            render("{{ d | combine(e) | tojson }}").unwrap(),
            r#"{"a":1,"b":2,"n":{"x":9}}"#
        );
        assert_eq!(
            render("{{ d | combine(e, recursive=true) | tojson }}").unwrap(),
            r#"{"a":1,"b":2,"n":{"x":9,"y":2}}"#
        );
        assert_eq!(
            render("{{ {'a': 1} | combine([{'a': 2}, {'c': 3}]) | tojson }}").unwrap(),
            r#"{"a":2,"c":3}"#
        );
        assert!(render("{{ d | combine(e, list_merge='append') }}").is_err());
        assert!(render("{{ d | combine(1) }}").is_err());
        assert_eq!(
            render("{{ {'a': 1, 'b': 2} | dict2items | tojson }}").unwrap(),
            r#"[{"key":"a","value":1},{"key":"b","value":2}]"#
        );
        assert_eq!(
            render("{{ {'a': 1} | dict2items(key_name='k', value_name='v') | items2dict(key_name='k', value_name='v') | tojson }}").unwrap(),
            r#"{"a":1}"#
        );
        assert_eq!(
            render("{{ users | items2dict(key_name='name', value_name='admin') | tojson }}")
                .unwrap(),
            r#"{"ann":true,"bob":false}"#
        );
        assert!(render("{{ [{'x': 1}] | items2dict }}").is_err());
        assert_eq!(
            render(r#"{{ "<a href='x'>&" | tojson }}"#).unwrap(),
            r#""\u003ca href=\u0027x\u0027\u003e\u0026""#
        );
        assert_eq!(
            render(r#"{{ "it's a b" | quote }} {{ 'a-b/c.d' | quote }} {{ '' | quote }}"#).unwrap(),
            r#"'it'"'"'s a b' a-b/c.d ''"#
        );
    }

    #[test]
    fn minijinja_builtins_cover_ansible_common_filters() {
        let out = render(concat!(
            "{{ missing | default('d') }}|{{ l | unique | join(',') }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|",
            "{{ 'a-b' | replace('-', '+') }}|{{ l | length }}|{{ '7' | int + 1 }}|{{ '1.5' | float }}|",
            "{{ l | sort | first }}{{ l | last }}{{ l | min }}{{ l | max }}|{{ ' t ' | trim }}|",
            "{{ users | map(attribute='name') | join(',') }}|{{ users | selectattr('admin') | map(attribute='name') | list }}|",
            "{{ users | rejectattr('admin') | map(attribute='name') | first }}|{{ l | select('odd') | list }}|",
            "{{ l | reject('odd') | list }}|{{ d | dictsort | first | first }}|{{ d | items | list | length }}|{{ 5 | string }}",
        ))
        .unwrap();
        assert_eq!(
            out,
            r#"d|3,1,2|ABab|a+b|4|8|1.5|1213|t|ann,bob|["ann"]|bob|[3, 1, 3]|[2]|a|2|5"#
        );
    }
}
