//! Ansible's chainable undefined on minijinja's strict undefined, and Jinja2's refusal
//! of a keyword argument given twice (both differ in minijinja).
//!
//! ansible-core's `AnsibleUndefined` is Jinja2's `StrictUndefined` except that an
//! attribute or item of an undefined value is that undefined value again, so
//! `(x | extract(bad)).subkey | default('a')` and `foo.bar.baz is defined` work while
//! printing, iterating or testing the truth of an undefined value still fails.
//! minijinja's strict mode fails at the second level of lookup instead, and it has no
//! hook there. So when an evaluation fails with an undefined error whose span ends at an
//! attribute (`.name`) or item (`[key]`) access, that one access is rewritten into a call
//! of a function that gives undefined for an undefined parent (`CHAIN_ATTR`,
//! `CHAIN_ITEM`) and the evaluation is run again; every other strictness stays as it was.
//! This only runs on the error path, so templates that work pay nothing.

use minijinja::value::Value as JValue;
use minijinja::{Environment, Error, ErrorKind};

/// The function an undefined parent's attribute access is rewritten into.
const CHAIN_ATTR: &str = "__rustle_chain_attr";
/// The function an undefined parent's item access is rewritten into.
const CHAIN_ITEM: &str = "__rustle_chain_item";
/// How many accesses one evaluation may have rewritten (a chain `a.b.c.d` needs one each).
const MAX_REWRITES: usize = 32;

/// Registers the functions the rewritten expressions call.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function(crate::pyformat::FUNCTION, |fmt: &str, args: &JValue| {
        crate::pyformat::format(fmt, args)
    });
    env.add_function(
        CHAIN_ATTR,
        |parent: &JValue, name: &str| -> Result<JValue, Error> {
            if parent.is_undefined() {
                return Ok(JValue::UNDEFINED);
            }
            parent.get_attr(name)
        },
    );
    env.add_function(
        CHAIN_ITEM,
        |parent: &JValue, key: &JValue| -> Result<JValue, Error> {
            if parent.is_undefined() {
                return Ok(JValue::UNDEFINED);
            }
            Ok(parent.get_item(key).unwrap_or(JValue::UNDEFINED))
        },
    );
}

/// Runs `run` on `source`; when it fails on an attribute or item of an undefined value,
/// runs it again with that access made chainable, until it succeeds or fails otherwise.
/// The error returned is the last one (what Ansible, having passed the chained accesses,
/// would have met).
///
/// An expression that fails on `'literal' % operand` (minijinja's `%` is only the
/// remainder) is run again with Python's string formatting there (`crate::pyformat`);
/// `template` tells whether `source` is a template or an expression.
pub(crate) fn run<T>(
    source: &str,
    template: bool,
    mut run: impl FnMut(&str) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut err = match run(source) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut current = source.to_string();
    if err.kind() == ErrorKind::InvalidOperation
        && let Some(next) = crate::pyformat::rewrite(&current, template)
    {
        current = next;
        match run(&current) {
            Ok(v) => return Ok(v),
            Err(e) => err = e,
        }
    }
    for _ in 0..MAX_REWRITES {
        if err.kind() != ErrorKind::UndefinedError {
            break;
        }
        let Some(end) = err.range().map(|r| r.end) else {
            break;
        };
        let Some(next) = rewrite(&current, end) else {
            break;
        };
        current = next;
        match run(&current) {
            Ok(v) => return Ok(v),
            Err(e) => err = e,
        }
    }
    Err(err)
}

/// `source` with the access that ends at byte `end` rewritten into a chainable call, or
/// `None` when what ends there is not an attribute or item access.
fn rewrite(source: &str, end: usize) -> Option<String> {
    let head = source.get(..end)?;
    let tail = source.get(end..)?;
    let bytes = head.as_bytes();
    let (parent_end, call) = if head.ends_with(']') {
        let open = group_start(bytes, bytes.len() - 1)?;
        let key = head.get(open + 1..bytes.len() - 1)?;
        // A slice of an undefined value is left to fail: rare, and a `:` at the top
        // level of the brackets cannot be passed on as one argument.
        if has_top_level_colon(key) {
            return None;
        }
        (open, (CHAIN_ITEM, key.to_string()))
    } else {
        let name_start = ident_start(bytes, bytes.len());
        if name_start == bytes.len() || name_start == 0 {
            return None;
        }
        let name = head.get(name_start..)?;
        if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let dot = name_start - 1;
        if bytes.get(dot) != Some(&b'.') {
            return None;
        }
        (dot, (CHAIN_ATTR, format!("'{name}'")))
    };
    let parent_start = postfix_start(bytes, parent_end)?;
    let parent = head.get(parent_start..parent_end)?;
    if parent.trim().is_empty() {
        return None;
    }
    let before = head.get(..parent_start)?;
    let (func, arg) = call;
    Some(format!("{before}{func}({parent}, {arg}){tail}"))
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where the identifier that ends at `end` starts (`end` itself when there is none).
fn ident_start(bytes: &[u8], end: usize) -> usize {
    let mut i = end;
    while i > 0 && bytes.get(i - 1).copied().is_some_and(is_ident) {
        i -= 1;
    }
    i
}

/// Where the bracket group whose closing bracket is at `close` opens, skipping string
/// literals inside it.
fn group_start(bytes: &[u8], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = close + 1;
    while i > 0 {
        i -= 1;
        match bytes.get(i).copied()? {
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' | b'{' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            q @ (b'\'' | b'"') => {
                // Back to the opening quote (one not escaped by a backslash).
                loop {
                    if i == 0 {
                        return None;
                    }
                    i -= 1;
                    if bytes.get(i) == Some(&q) && (i == 0 || bytes.get(i - 1) != Some(&b'\\')) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Where the postfix expression (a name, literal or parenthesised expression followed
/// by `.name`, `[key]` and `(args)`) that ends at `end` starts.
fn postfix_start(bytes: &[u8], end: usize) -> Option<usize> {
    let before = |i: usize| i.checked_sub(1).and_then(|j| bytes.get(j).copied());
    let mut i = end;
    loop {
        match before(i)? {
            b')' | b']' | b'}' => {
                i = group_start(bytes, i - 1)?;
                // A call's or subscript's target precedes it (`f(x)`, `a[0]`, `g()()`);
                // otherwise the group was the primary (`(a or b)`, `[1, 2]`).
                match before(i) {
                    Some(b) if is_ident(b) || matches!(b, b')' | b']' | b'\'' | b'"') => {}
                    _ => return Some(i),
                }
            }
            q @ (b'\'' | b'"') => {
                let mut j = i - 1;
                loop {
                    j = j.checked_sub(1)?;
                    if bytes.get(j) == Some(&q) && (j == 0 || bytes.get(j - 1) != Some(&b'\\')) {
                        break;
                    }
                }
                return Some(j);
            }
            b if is_ident(b) => {
                i = ident_start(bytes, i);
                if before(i) == Some(b'.') {
                    i -= 1;
                } else {
                    return Some(i);
                }
            }
            _ => return None,
        }
    }
}

/// `mandatory`'s message for an undefined value (`Mandatory variable  not defined.`)
/// before the engine names the variable.
pub(crate) const MANDATORY_UNNAMED: &str = "Mandatory variable  not defined.";

/// `mandatory`'s message naming the variable as Jinja2's undefined does
/// (`_undefined_name`: the variable, or the attribute or key that was missing), taken
/// from the operand of the first `| mandatory` in `source` with no message argument.
pub(crate) fn mandatory_message(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut from = 0;
    while let Some(at) = source.get(from..).and_then(|r| r.find("mandatory")) {
        let at = from + at;
        from = at + "mandatory".len();
        let ends_name = !bytes.get(from).copied().is_some_and(is_ident);
        let takes_message = source
            .get(from..)
            .is_some_and(|r| r.trim_start().starts_with('(') && !r.trim_start().starts_with("()"));
        let head = source.get(..at).unwrap_or_default();
        let head = head
            .strip_suffix("ansible.builtin.")
            .or_else(|| head.strip_suffix("ansible.legacy."))
            .unwrap_or(head)
            .trim_end();
        let Some(operand_end) = head.strip_suffix('|').map(|h| h.trim_end().len()) else {
            continue;
        };
        if !ends_name || takes_message {
            continue;
        }
        let operand = postfix_start(bytes, operand_end)
            .and_then(|start| source.get(start..operand_end))
            .unwrap_or_default();
        let name = undefined_name(operand);
        return match name {
            Some(n) => format!("Mandatory variable '{n}'  not defined."),
            None => MANDATORY_UNNAMED.to_string(),
        };
    }
    MANDATORY_UNNAMED.to_string()
}

/// The name Jinja2 gives an undefined value got by `operand`: the last name, attribute
/// or string key of its chain.
fn undefined_name(operand: &str) -> Option<String> {
    let bytes = operand.as_bytes();
    if let Some(inner) = operand.strip_suffix(']') {
        let open = group_start(bytes, bytes.len() - 1)?;
        let key = inner.get(open + 1..)?.trim();
        let unquoted = key
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))?;
        return Some(unquoted.to_string());
    }
    let start = ident_start(bytes, bytes.len());
    let name = operand.get(start..)?;
    (!name.is_empty() && !name.as_bytes().first()?.is_ascii_digit()).then(|| name.to_string())
}

fn has_top_level_colon(key: &str) -> bool {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in key.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ':' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_access_that_ends_at_the_error() {
        let s = "('key' | extract(badcontainer)).subkey | default('a') == 'a'";
        assert_eq!(
            rewrite(s, 38).unwrap(),
            "__rustle_chain_attr(('key' | extract(badcontainer)), 'subkey') | default('a') == 'a'"
        );
        assert_eq!(
            rewrite("d.zz.yy is defined", 7).unwrap(),
            "__rustle_chain_attr(d.zz, 'yy') is defined"
        );
        assert_eq!(
            rewrite("x and d['zz']['q'] | default(3)", 18).unwrap(),
            "x and __rustle_chain_item(d['zz'], 'q') | default(3)"
        );
        assert_eq!(
            rewrite("f(a).b[0].c", 11).unwrap(),
            "__rustle_chain_attr(f(a).b[0], 'c')"
        );
        // Not an access: a bare name, a slice, a method call's end.
        assert_eq!(rewrite("{{ nope }}", 7), None);
        assert_eq!(rewrite("x[1:2]", 6), None);
        assert_eq!(rewrite("x.y()", 5), None);
    }
}

/// The first keyword given twice in one call (`f(a=1, a=2)`) inside the template's
/// expressions, which Jinja2 (compiling to Python) refuses with Python's "keyword
/// argument repeated" and minijinja would take with the last value winning. `template`
/// tells whether `source` is a template (only what is inside `{{ }}` and `{% %}` is
/// looked at) or an expression.
pub(crate) fn repeated_keyword(source: &str, template: bool) -> Option<String> {
    if !source.contains('=') || !source.contains('(') {
        return None;
    }
    if !template {
        return repeated_in_expression(source);
    }
    let mut rest = source;
    while let Some(open) = rest.find("{{").or_else(|| rest.find("{%")) {
        let open = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(b)) => a.min(b),
            _ => open,
        };
        let after = rest.get(open + 2..)?;
        let close_tag = if rest.get(open..open + 2) == Some("{{") {
            "}}"
        } else {
            "%}"
        };
        let close = after.find(close_tag).unwrap_or(after.len());
        if let Some(found) = repeated_in_expression(after.get(..close)?) {
            return Some(found);
        }
        rest = after.get(close..)?;
    }
    None
}

/// [`repeated_keyword`] for one expression.
fn repeated_in_expression(expr: &str) -> Option<String> {
    let bytes = expr.as_bytes();
    // One list of keywords seen per open bracket; only parentheses hold calls.
    let mut stack: Vec<(u8, Vec<&str>)> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\'' | b'"' => {
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    if c == b'\\' {
                        i += 1;
                    } else if c == b {
                        break;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => stack.push((b, Vec::new())),
            b')' | b']' | b'}' => {
                stack.pop();
            }
            b if is_ident(b) && !b.is_ascii_digit() => {
                let start = i;
                while bytes.get(i + 1).copied().is_some_and(is_ident) {
                    i += 1;
                }
                let name = expr.get(start..=i)?;
                let mut j = i + 1;
                while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                let keyword = bytes.get(j) == Some(&b'=') && bytes.get(j + 1) != Some(&b'=');
                let before = start
                    .checked_sub(1)
                    .and_then(|k| expr.get(..=k))
                    .map(|t| t.trim_end().chars().last());
                let after_separator = matches!(before, Some(Some('(' | ',')));
                if keyword
                    && after_separator
                    && let Some((b'(', seen)) = stack.last_mut()
                {
                    if seen.contains(&name) {
                        return Some(name.to_string());
                    }
                    seen.push(name);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod keyword_tests {
    use super::repeated_keyword;

    #[test]
    fn a_keyword_given_twice_in_one_call_is_found() {
        let e = |s: &str| repeated_keyword(s, false);
        assert_eq!(
            e("lookup('vars', 'v1', default='', default='')").as_deref(),
            Some("default")
        );
        assert_eq!(e("f(a=1, b=g(a=2))"), None);
        assert_eq!(e("f(a=1) ~ f(a=2)"), None);
        assert_eq!(e("f(a == 1, a == 2)"), None);
        assert_eq!(e("f('a=1, a=2')"), None);
        let t = |s: &str| repeated_keyword(s, true);
        assert_eq!(t("f(a=1, a=2) {{ x }}"), None);
        assert_eq!(t("x {{ f(k=1, k=2) }}").as_deref(), Some("k"));
        assert_eq!(t("{% set y = f(k=1,k=2) %}").as_deref(), Some("k"));
    }
}

/// One access in a chain of lookups that starts at a variable.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    /// `.name`
    Attr(&'a str),
    /// `['key']`
    Key(String),
    /// `[3]`
    Index(i64),
}

/// Words that are never variables in a Jinja expression or statement.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "elif",
    "endif",
    "for",
    "endfor",
    "set",
    "endset",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
    "with",
    "endwith",
    "block",
    "endblock",
    "macro",
    "endmacro",
    "call",
    "endcall",
    "filter",
    "endfilter",
    "import",
    "from",
    "include",
    "extends",
    "as",
    "recursive",
    "raw",
    "endraw",
    "do",
    "ignore",
    "missing",
    "context",
    "without",
    "autoescape",
    "endautoescape",
    "break",
    "continue",
];

/// Ansible's (Jinja2's) words for the first undefined value in `source` (a template when
/// `template`, else an expression): `'x' is undefined` for a variable,
/// `'dict object' has no attribute 'b'` or `list object has no element 3` for a missing
/// attribute or item, as Jinja2's `Undefined._undefined_message` words them. Only chains
/// of plain lookups (`a.b['c'][0]`) are followed, so nothing is run twice; `lookup` gives
/// a variable's value (undefined when there is none) and `declared` tells the names the
/// template sets itself (`{% for i in ... %}`), which cannot be looked up outside it.
pub(crate) fn undefined_words(
    source: &str,
    template: bool,
    lookup: impl Fn(&str) -> JValue,
    declared: impl Fn(&str) -> bool,
) -> Option<String> {
    let parts: Vec<&str> = if template {
        code_parts(source)
    } else {
        vec![source]
    };
    for part in parts {
        for (head, steps) in variable_chains(part) {
            if declared(head) {
                continue;
            }
            let mut v = lookup(head);
            if v.is_undefined() {
                return Some(format!("'{head}' is undefined"));
            }
            for step in steps {
                let next = match &step {
                    Step::Attr(a) => v.get_attr(a).ok(),
                    Step::Key(k) => v.get_item(&JValue::from(k.as_str())).ok(),
                    Step::Index(i) => v.get_item(&JValue::from(*i)).ok(),
                };
                match next {
                    Some(n) if !n.is_undefined() => v = n,
                    _ => {
                        let of = type_repr(&v);
                        return Some(match step {
                            Step::Attr(a) => format!("'{of}' has no attribute '{a}'"),
                            Step::Key(k) => format!("'{of}' has no attribute '{k}'"),
                            Step::Index(i) => format!("{of} has no element {i}"),
                        });
                    }
                }
            }
        }
    }
    None
}

/// Jinja2's `object_type_repr`: `dict object`, `None` for None.
fn type_repr(v: &JValue) -> String {
    if v.is_none() {
        return "None".into();
    }
    if v.kind() == minijinja::value::ValueKind::String && v.is_safe() {
        return "AnsibleUnsafeText object".into();
    }
    format!("{} object", crate::filters::py_type(v))
}

/// The code of a template: what is inside `{{ }}` and `{% %}`.
fn code_parts(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(open) = [rest.find("{{"), rest.find("{%")]
        .into_iter()
        .flatten()
        .min()
    {
        let close_tag = if rest.get(open..open + 2) == Some("{{") {
            "}}"
        } else {
            "%}"
        };
        let Some(after) = rest.get(open + 2..) else {
            break;
        };
        let close = after.find(close_tag).unwrap_or(after.len());
        out.extend(after.get(..close));
        rest = after.get(close..).unwrap_or_default();
    }
    out
}

/// The chains of plain lookups in `expr` that start at a variable, in order: a name
/// that is not an attribute, a filter, a test, a function called, a keyword argument,
/// a keyword or inside a string, followed by `.name`, `['key']` and `[int]` accesses (a
/// method called at the end is not one).
fn variable_chains(expr: &str) -> Vec<(&str, Vec<Step<'_>>)> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The last two words seen (for `is` and `is not` before a test's name).
    let mut last_words: [&str; 2] = ["", ""];
    while let Some(&b) = bytes.get(i) {
        if b == b'\'' || b == b'"' {
            i = crate::template::string_literal_end(bytes, i);
            continue;
        }
        if b.is_ascii_digit() {
            while bytes.get(i).is_some_and(|c| is_ident(*c) || *c == b'.') {
                i += 1;
            }
            continue;
        }
        if !is_ident(b) {
            if !b.is_ascii_whitespace() {
                last_words = ["", ""];
            }
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i).copied().is_some_and(is_ident) {
            i += 1;
        }
        let name = expr.get(start..i).unwrap_or_default();
        let prev = expr.get(..start).unwrap_or_default().trim_end();
        let next = expr.get(i..).unwrap_or_default().trim_start();
        let is_test = last_words[1] == "is" || (last_words == ["is", "not"]);
        let skip = prev.ends_with('.')
            || prev.ends_with('|')
            || is_test
            || next.starts_with('(')
            || (next.starts_with('=') && !next.starts_with("=="))
            || KEYWORDS.contains(&name);
        last_words = [last_words[1], name];
        if skip {
            continue;
        }
        let mut steps = Vec::new();
        loop {
            match bytes.get(i) {
                Some(b'.')
                    if bytes
                        .get(i + 1)
                        .is_some_and(|c| is_ident(*c) && !c.is_ascii_digit()) =>
                {
                    let s = i + 1;
                    let mut e = s;
                    while bytes.get(e).copied().is_some_and(is_ident) {
                        e += 1;
                    }
                    steps.push((i, Step::Attr(expr.get(s..e).unwrap_or_default())));
                    i = e;
                }
                Some(b'[') => {
                    let Some(close) = expr.get(i..).and_then(|r| r.find(']')) else {
                        break;
                    };
                    let key = expr.get(i + 1..i + close).unwrap_or_default().trim();
                    let quoted = key
                        .strip_prefix('\'')
                        .and_then(|k| k.strip_suffix('\''))
                        .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                        .filter(|k| !k.contains(['\'', '"', '\\']));
                    let step = match (quoted, key.parse::<i64>()) {
                        (Some(k), _) => Step::Key(k.to_string()),
                        (None, Ok(n)) => Step::Index(n),
                        _ => break,
                    };
                    steps.push((i, step));
                    i += close + 1;
                }
                _ => break,
            }
        }
        // `x.split(',')`: the last name is a method, not an attribute to look up.
        if expr
            .get(i..)
            .is_some_and(|r| r.trim_start().starts_with('('))
            && matches!(steps.last(), Some((_, Step::Attr(_))))
            && let Some((at, _)) = steps.pop()
        {
            i = at;
        }
        last_words = ["", ""];
        if guarded(expr.get(i..).unwrap_or_default()) {
            continue;
        }
        out.push((name, steps.into_iter().map(|(_, s)| s).collect()));
    }
    out
}

/// True when what follows a lookup (`rest`) makes its being undefined no failure:
/// `is defined`, `is undefined` (and their `not`), `| default`, `| d`.
fn guarded(rest: &str) -> bool {
    let word = |t: &str| {
        let end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len());
        t.get(..end).unwrap_or_default().to_string()
    };
    let r = rest.trim_start();
    if let Some(t) = r.strip_prefix("is ") {
        let t = t.trim_start();
        let t = t.strip_prefix("not ").map_or(t, str::trim_start);
        return matches!(word(t).as_str(), "defined" | "undefined");
    }
    if let Some(f) = r.strip_prefix('|') {
        return matches!(word(f.trim_start()).as_str(), "default" | "d");
    }
    false
}

#[cfg(test)]
mod undefined_tests {
    use super::*;

    fn words(source: &str, template: bool) -> Option<String> {
        let vars = JValue::from_serialize(serde_json::json!({
            "d": {"a": 1, "n": {"x": 1}},
            "l": [1],
            "s": "text",
            "z": null,
        }));
        undefined_words(
            source,
            template,
            |n| vars.get_item(&JValue::from(n)).unwrap_or_default(),
            |n| n == "i",
        )
    }

    #[test]
    fn the_first_undefined_lookup_is_named_as_jinja2_does() {
        let w = |s| words(s, false);
        assert_eq!(w("'x' in y").as_deref(), Some("'y' is undefined"));
        assert_eq!(
            w("d.b").as_deref(),
            Some("'dict object' has no attribute 'b'")
        );
        assert_eq!(
            w("d['b']").as_deref(),
            Some("'dict object' has no attribute 'b'")
        );
        assert_eq!(
            w("d.n.q.r").as_deref(),
            Some("'dict object' has no attribute 'q'")
        );
        assert_eq!(w("l[3]").as_deref(), Some("list object has no element 3"));
        assert_eq!(
            w("s.nope").as_deref(),
            Some("'str object' has no attribute 'nope'")
        );
        assert_eq!(w("z.k").as_deref(), Some("'None' has no attribute 'k'"));
        assert_eq!(
            w("'a' ~ nope ~ d.b").as_deref(),
            Some("'nope' is undefined")
        );
        // Filters, tests, functions, keyword arguments, methods, strings are not variables.
        assert_eq!(
            w("s | regex_replace('y', k=1) is not match('q') and s.split(',') and lookup('x')"),
            None
        );
        assert_eq!(w("d.a is defined and 'nope' and 1.5"), None);
        // What is guarded against being undefined is not the failure.
        assert_eq!(
            w("d.b is not defined or q is undefined or d.c | default(1) or (y|d(2)) ~ l[7]")
                .as_deref(),
            Some("list object has no element 7")
        );
        let t = |s| words(s, true);
        assert_eq!(
            t("x {{ d.a }} y {% if nope %}{% endif %}").as_deref(),
            Some("'nope' is undefined")
        );
        assert_eq!(t("nope {% for i in l %}{{ i.x }}{% endfor %}"), None);
    }
}
