//! Jinja templating with Ansible's conventions, on minijinja.
//!
//! Three uses: rendering module arguments (a string that is one `{{ expr }}` keeps the
//! expression's native type, as Ansible does, so `loop: "{{ pkgs }}"` gives a list),
//! evaluating conditions (`when`, `changed_when`, ...), and rendering template files.
//! Undefined variables are errors, as in Ansible, except under `is defined` and `default`.

use minijinja::value::{Value as JValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// A template or expression that failed, with the text that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct TemplateError {
    /// The template or expression text.
    pub source_text: String,
    /// What went wrong (minijinja's message, with line information where it has one).
    pub detail: String,
    /// The failure is an undefined variable or attribute (Ansible's
    /// `AnsibleUndefinedVariable`), which Ansible reports in words of its own for a
    /// task's arguments.
    pub undefined: bool,
    /// A filter or test failed with a message of its own (Ansible's), or, with
    /// `undefined`, what was undefined is named in Jinja2's words (`'x' is undefined`):
    /// `detail` is that message alone, and it is the whole error, as in an Ansible
    /// task's `msg`.
    pub from_filter: bool,
}

impl TemplateError {
    fn message(&self) -> String {
        if self.from_filter {
            self.detail.clone()
        } else {
            format!("template error in {:?}: {}", self.source_text, self.detail)
        }
    }
}

/// The templating engine: one per runner, shared by every task.
pub struct Engine {
    env: Environment<'static>,
    /// Who answers the lookups that read the controller's world (`crate::lookups`).
    controller: std::sync::Arc<dyn crate::lookups::Controller>,
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
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(f) = c.downcast_ref::<crate::filters::FilterFailure>() {
            let mut detail = f.to_string();
            if detail == crate::chainable::MANDATORY_UNNAMED {
                detail = crate::chainable::mandatory_message(source);
            }
            return TemplateError {
                source_text: source.to_string(),
                detail,
                from_filter: true,
                undefined: false,
            };
        }
        cause = c.source();
    }
    // An unknown test or filter fails as Ansible's plugin loader fails on it.
    if let (ErrorKind::UnknownTest | ErrorKind::UnknownFilter, Some(d)) = (e.kind(), e.detail())
        && let Some(name) = d
            .strip_prefix("test ")
            .or_else(|| d.strip_prefix("filter "))
            .and_then(|n| n.strip_suffix(" is unknown"))
    {
        return TemplateError {
            source_text: source.to_string(),
            detail: crate::filters::jinja::could_not_load(name),
            from_filter: false,
            undefined: false,
        };
    }
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
        from_filter: false,
        undefined: e.kind() == ErrorKind::UndefinedError,
    }
}

/// Ansible's `_escape_backslashes`: inside `{{ }}`, every backslash of a string literal
/// is doubled, so `regex_replace('(\w+)', '\1')` reaches the filter
/// as written (Jinja would otherwise read `\1` as an octal escape and `\b` as a
/// backspace). Ansible does this for task arguments and variables; template files and
/// `when`-style conditions are not touched.
pub(crate) fn escape_backslashes(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\\') || !s.contains("{{") {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    let mut in_var = false;
    while let Some(c) = chars.next() {
        match c {
            '{' if !in_var && chars.peek() == Some(&'{') => {
                chars.next();
                out.push_str("{{");
                in_var = true;
            }
            '}' if in_var && chars.peek() == Some(&'}') => {
                chars.next();
                out.push_str("}}");
                in_var = false;
            }
            '\'' | '"' if in_var => {
                // A string literal as Jinja's lexer reads it: a backslash escapes the
                // next character; each backslash of its source text is doubled.
                out.push(c);
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        out.push_str("\\\\");
                        if let Some(e) = chars.next() {
                            if e == '\\' {
                                out.push_str("\\\\");
                            } else {
                                out.push(e);
                            }
                        }
                        continue;
                    }
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// True when `s` holds template syntax at all; plain strings skip the engine entirely.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// What Ansible returns with its native type: a value that is exactly one
/// `{{ expression }}`, after Jinja drops one final newline (so `"{{ n }}\n"` is still the
/// number). Any other text around it, even a space, makes the result a string.
fn native_expression(s: &str) -> Option<&str> {
    let body = s
        .strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .or_else(|| s.strip_suffix('\r'))
        .unwrap_or(s);
    let inner = body.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    // Whitespace control markers (`{{- x -}}`) belong to the tag, not the expression.
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

/// Ansible gives a string result back the final newlines its template had and Jinja dropped.
pub(crate) fn with_trailing_newlines(source: &str, mut rendered: String) -> String {
    let count = |t: &str| t.len() - t.trim_end_matches('\n').len();
    let missing = count(source).saturating_sub(count(&rendered));
    rendered.push_str(&"\n".repeat(missing));
    rendered
}

/// If `s` is one `{{ expression }}` with only whitespace around it, the expression
/// (a condition accepts this form; its type does not matter).
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// Where a `}}` (or `-}}`, `+}}`) that minijinja's lexer would take for the end of a
/// `{{ }}` block stands in an expression: outside string literals, with no bracket open.
///
/// minijinja 2.24's expression lexer pops its only state on such a token and then panics
/// ("empty lexer stack") if anything, even a space, follows; the runner aborts on a panic.
/// Such an expression is an error in any case (Jinja has no `}}` in expressions), so it is
/// refused before minijinja sees it. This mirrors the lexer's rules: strings are `'...'`
/// or `"..."` with backslash escapes, and `(`, `[`, `{` open what `)`, `]`, `}` close.
fn stray_variable_end(expr: &str) -> Option<usize> {
    let bytes = expr.as_bytes();
    let mut balance: isize = 0;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if let Some(q) = quote {
            if b == b'\\' {
                i += 1;
            } else if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        if balance == 0
            && (rest.starts_with(b"}}") || rest.starts_with(b"-}}") || rest.starts_with(b"+}}"))
        {
            return Some(i);
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' | b'[' | b'{' => balance += 1,
            b')' | b']' | b'}' => balance -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Refuses a call with a keyword given twice, as Jinja2's compilation to Python does.
fn repeated_keyword_check(source: &str, template: bool) -> Result<(), TemplateError> {
    match crate::chainable::repeated_keyword(source, template) {
        Some(name) => Err(TemplateError {
            source_text: source.to_string(),
            detail: format!("keyword argument repeated: {name}"),
            from_filter: false,
            undefined: false,
        }),
        None => Ok(()),
    }
}

impl Engine {
    /// An engine with Ansible's settings and filters, whose controller lookups have no
    /// answers.
    pub fn new() -> Engine {
        Engine::with_controller(std::sync::Arc::new(crate::lookups::Answers::default()))
    }

    /// An engine whose `env`, `pipe`, `lines` and `password` lookups `controller` answers.
    pub fn with_controller(controller: std::sync::Arc<dyn crate::lookups::Controller>) -> Engine {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Ansible's template module keeps a template's final newline.
        env.set_keep_trailing_newline(true);
        // Ansible renders with trim_blocks on: a line holding only a block tag leaves no blank line.
        env.set_trim_blocks(true);
        env.set_formatter(ansible_formatter);
        // Python's str and dict methods (`s.split(',')`, `d.items()`), which Ansible's Jinja has.
        env.set_unknown_method_callback(python_method);
        crate::filters::register(&mut env);
        crate::chainable::register(&mut env);
        crate::lookups::register(&mut env, std::sync::Arc::clone(&controller));
        Engine { env, controller }
    }

    /// Who answers this engine's controller lookups.
    pub fn controller(&self) -> &dyn crate::lookups::Controller {
        self.controller.as_ref()
    }

    /// Bounds the instructions one template may run (minijinja's fuel), for the fuzz
    /// harness only: templates come from the controller, so a runner does not limit them.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn set_fuel(&mut self, fuel: Option<u64>) {
        self.env.set_fuel(fuel);
    }

    /// The variables a template string names at its top level (`item` in `{{ item.key
    /// }}`); none for a string that does not parse.
    pub fn names_in(&self, source: &str) -> Vec<String> {
        self.env
            .template_from_str(source)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default()
    }

    /// Ansible's words for why a lone `{{ a.b.c }}` is undefined: the first name or
    /// attribute missing (`'a' is undefined`, `'dict object' has no attribute 'b'`);
    /// `None` for any other template, or one that is defined.
    pub fn undefined_reason(&self, source: &str, ctx: &JValue) -> Option<String> {
        let expr = native_expression(source)?.trim();
        let mut parts = expr.split('.');
        let head = parts.next()?;
        let word =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !expr.split('.').all(word) {
            return None;
        }
        let mut v = ctx
            .get_item(&JValue::from(head))
            .ok()
            .filter(|v| !v.is_undefined());
        if v.is_none() {
            return Some(format!("'{head}' is undefined"));
        }
        for attr in parts {
            let of = v?;
            v = of.get_attr(attr).ok().filter(|v| !v.is_undefined());
            if v.is_none() {
                let kind = match of.kind() {
                    ValueKind::Map => "dict",
                    ValueKind::Seq => "list",
                    ValueKind::String => "str",
                    ValueKind::Number => "int",
                    ValueKind::Bool => "bool",
                    _ => "NoneType",
                };
                return Some(format!("'{kind} object' has no attribute '{attr}'"));
            }
        }
        None
    }

    /// Renders a template string to text.
    pub fn render_str(&self, source: &str, ctx: &JValue) -> Result<String, TemplateError> {
        repeated_keyword_check(source, true)?;
        let (out, sealed_used) = crate::filters::encryption::watch(|| {
            crate::lookups::with_scope(ctx, || {
                crate::chainable::run(source, true, |s| self.env.render_str(s, ctx))
            })
        });
        match out {
            Ok(_) if sealed_used => Err(sealed_error(source)),
            out => out
                .map_err(|e| self.named(err(source, &e), e.detail().is_none(), source, true, ctx)),
        }
    }

    /// `e` with what was undefined named as Ansible (Jinja2) names it, when `e` is the
    /// engine's own undefined failure (`engine_made`: not a lookup's or filter's, which
    /// has a message of its own) of `source` (a template when `template`, else an
    /// expression) and the lookup that failed can be found (see
    /// [`crate::chainable::undefined_words`]).
    fn named(
        &self,
        mut e: TemplateError,
        engine_made: bool,
        source: &str,
        template: bool,
        ctx: &JValue,
    ) -> TemplateError {
        if !e.undefined || e.from_filter || !engine_made {
            return e;
        }
        let wrapped;
        let text = if template {
            source
        } else {
            wrapped = format!("{{{{ {source} }}}}");
            &wrapped
        };
        let parsed = self.env.template_from_str(text);
        // Names the template sets itself (`{% for i in l %}`) are not looked up outside.
        let free = match parsed {
            Ok(t) => t.undeclared_variables(false),
            Err(_) => return e,
        };
        let lookup = |name: &str| {
            ctx.get_item(&JValue::from(name))
                .ok()
                .filter(|v| !v.is_undefined())
                .or_else(|| self.env.globals().find(|(g, _)| *g == name).map(|(_, v)| v))
                .unwrap_or_default()
        };
        let declared = |name: &str| !free.contains(name);
        if let Some(words) = crate::chainable::undefined_words(source, template, lookup, declared) {
            e.detail = words;
            e.from_filter = true;
        }
        e
    }

    /// Renders a template string with a template lookup's setup (include search path,
    /// delimiters): see [`crate::ctlfiles::render_with_setup`].
    pub fn render_with_setup(
        &self,
        source: &str,
        ctx: &JValue,
        setup: &crate::ctlfiles::TemplateSetup,
    ) -> Result<String, TemplateError> {
        crate::lookups::with_scope(ctx, || {
            crate::ctlfiles::render_with_setup(&self.env, source, ctx, setup)
        })
        .map_err(|e| err(source, &e))
    }

    /// When `raw` is one `{{ expression }}` whose value is a mapping object of the
    /// runner's own (`hostvars`, a host's variables), that object as it is: such a value
    /// renders its members when they are used, as Ansible's hostvars do, so that
    /// `all: "{{ hostvars[inventory_hostname] }}"` then `all.foo` renders `foo` only.
    pub(crate) fn lone_lazy_object(&self, raw: &str, ctx: &JValue) -> Option<JValue> {
        let s = escape_backslashes(raw);
        let expr = native_expression(&s)?;
        let v = self.eval(expr, ctx).ok()?;
        let obj = v.as_object()?;
        let lazy = obj.downcast_ref::<crate::lazyvars::LazyVars>().is_some()
            || obj.downcast_ref::<crate::lazyvars::HostVars>().is_some();
        lazy.then_some(v)
    }

    /// Evaluates an expression to a value.
    pub fn eval(&self, expr: &str, ctx: &JValue) -> Result<JValue, TemplateError> {
        if let Some(at) = stray_variable_end(expr) {
            return Err(TemplateError {
                source_text: expr.to_string(),
                detail: format!(
                    "syntax error: unexpected `}}}}` at byte {at} of the expression (only a template, not an expression, has `}}}}`)"
                ),
                from_filter: false,
                undefined: false,
            });
        }
        repeated_keyword_check(expr, false)?;
        // An expression may give an encrypted value as it is (`{{ secret }}`), but not
        // turn one into text.
        let (out, sealed_used) = crate::filters::encryption::watch(|| {
            crate::lookups::with_scope(ctx, || {
                crate::chainable::run(expr, false, |s| self.env.compile_expression(s)?.eval(ctx))
            })
        });
        match out {
            Ok(_) if sealed_used => Err(sealed_error(expr)),
            out => {
                out.map_err(|e| self.named(err(expr, &e), e.detail().is_none(), expr, false, ctx))
            }
        }
    }

    /// Evaluates a condition (`when`, `changed_when`, ...). A condition wrapped in
    /// `{{ }}` is accepted, as Ansible accepts it with a warning.
    pub fn eval_bool(&self, expr: &str, ctx: &JValue) -> Result<bool, TemplateError> {
        let wrapped = single_expression(expr);
        let expr = wrapped.unwrap_or(expr);
        // Ansible fails a condition that names something undefined (`when: nope`)
        // rather than taking it as false, in Jinja2's words for what was undefined.
        let v = match self.eval(expr, ctx) {
            Ok(v) if v.is_undefined() => {
                let mut e = self.named(undefined_value(expr), true, expr, false, ctx);
                if !e.from_filter {
                    e.detail = format!("'{expr}' is undefined");
                    e.from_filter = true;
                }
                Err(e)
            }
            other => other,
        };
        let v = match v {
            Ok(v) => v,
            Err(mut e) if e.undefined && e.from_filter => {
                e.detail = format!("error while evaluating conditional ({expr}): {}", e.detail);
                e.from_filter = false;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // ansible-core 2.18 renders a `{{ }}`-wrapped condition to text and evaluates
        // that text again, so one that gives "false" or "no" is false; any other
        // condition that gives a string is true when the string is not empty (Python's
        // truth: `when: var` with var "false" runs the task).
        if let Some(s) = v.as_str()
            && wrapped.is_some()
        {
            return Ok(crate::modules::args::truthy_str(s).unwrap_or(!s.is_empty()));
        }
        Ok(v.is_true())
    }

    /// Renders every string inside a JSON value. A string that is one `{{ expr }}`
    /// becomes the expression's value with its type (list, number, ...). Unsafe text
    /// (the plan's `{"__ansible_unsafe": ...}` marker) is given as it is, never rendered.
    pub fn render_value(&self, v: &Value, ctx: &JValue) -> Result<Value, TemplateError> {
        self.render(v, ctx, false)
    }

    /// [`Self::render_value`] for a value that is kept and may be rendered again
    /// (`set_fact`, a variable made of variables): unsafe text stays marked, and so
    /// does what a lone `{{ expression }}` gives when it is unsafe text (a registered
    /// result's `stdout`, an `!unsafe` variable), as Ansible keeps it unsafe.
    pub fn render_value_keeping_unsafe(
        &self,
        v: &Value,
        ctx: &JValue,
    ) -> Result<Value, TemplateError> {
        self.render(v, ctx, true)
    }

    fn render(&self, v: &Value, ctx: &JValue, keep: bool) -> Result<Value, TemplateError> {
        if let Some(inner) = unsafe_inner(v) {
            return Ok(if keep { v.clone() } else { strip_unsafe(inner) });
        }
        if let Some(text) = vault_inner(v) {
            // Encrypted, never templated: kept as it is, and given to a module only
            // decrypted, which Ansible cannot do without a vault secret either.
            return if keep {
                Ok(v.clone())
            } else {
                Err(sealed_error(text))
            };
        }
        Ok(match v {
            Value::String(raw) if is_template(raw) => {
                let s = escape_backslashes(raw);
                match native_expression(&s) {
                    Some(expr) => {
                        let mut v = self.eval(expr, ctx)?;
                        // A list built with an undefined item (`[nope]`) is as undefined
                        // as the item: Ansible fails when it turns the list into data.
                        let undefined_item = v.kind() == minijinja::value::ValueKind::Seq
                            && v.try_iter()
                                .is_ok_and(|mut it| it.any(|x| x.is_undefined()));
                        if v.is_undefined() || undefined_item {
                            return Err(self.named(undefined_value(raw), true, expr, false, ctx));
                        }
                        // ansible-core 2.18: a template that names one variable
                        // (`SINGLE_VAR`, `{{ name }}`) gives its None as it is; any
                        // other expression goes through `_ansible_finalize`, which
                        // turns None into the empty string (`{{ lookup(...) }}` with
                        // errors='ignore' is '').
                        let bare_name =
                            expr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if v.is_none() && !bare_name {
                            v = JValue::from("");
                        }
                        match v.as_str() {
                            Some(text) => {
                                let text = with_trailing_newlines(raw, text.to_string());
                                if keep && v.is_safe() {
                                    unsafe_marker(text)
                                } else {
                                    Value::String(text)
                                }
                            }
                            None if keep => to_json_keeping_unsafe(&v, raw)?,
                            None => to_json(&v, raw)?,
                        }
                    }
                    None => {
                        // Ansible's `ansible_eval_concat`: text made of several parts
                        // that reads as a Python list, dict or boolean becomes that value.
                        let text = self.render_str(&s, ctx)?;
                        match crate::pyliteral::convert_rendered(&text) {
                            Some(v) => v,
                            None => Value::String(text),
                        }
                    }
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render(i, ctx, keep))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.render(v, ctx, keep)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

// ---------------------------------------------------------------------------
// Unsafe text: Ansible's `!unsafe` and module results, never templated.
//
// The plan carries it as `{"__ansible_unsafe": value}`: a string, or a list or mapping
// all of whose strings are unsafe. In templates it is a "safe" minijinja string (a flag
// that only matters for HTML auto-escaping, which Ansible's templates never use): the
// flag survives a plain `{{ var }}` or `{{ var.attr }}`, so what such an expression
// gives can be kept unsafe too.

/// The byte just past the Jinja string literal that opens (with its quote) at `open`:
/// a backslash escapes the next byte.
pub fn string_literal_end(bytes: &[u8], open: usize) -> usize {
    let quote = bytes.get(open).copied();
    let mut i = open + 1;
    while let Some(&c) = bytes.get(i) {
        if c == b'\\' {
            i += 2;
            continue;
        }
        i += 1;
        if Some(c) == quote {
            break;
        }
    }
    i
}

/// The value inside an unsafe marker, when `v` is one (an opened vault value's marker
/// is one too: see [`opened_vault_marker`]).
pub fn unsafe_inner(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(crate::plan::UNSAFE_KEY),
        Value::Object(m) if m.len() == 2 && m.contains_key(crate::vault::VAULT_KEY) => {
            m.get(crate::plan::UNSAFE_KEY)
        }
        _ => None,
    }
}

/// The plan's marker for a `!vault` value the packer opened with the vault password:
/// `{"__ansible_unsafe": plaintext, "__ansible_vault": vault text}`. Ansible keeps such a
/// value as its `AnsibleVaultEncryptedUnicode`, which reads as its plaintext, is never
/// templated (hence unsafe), and is still `vault_encrypted` where it is used as it is.
pub fn opened_vault_marker(plain: &str, text: &str) -> Value {
    let mut m = serde_json::Map::with_capacity(2);
    m.insert(
        crate::plan::UNSAFE_KEY.to_string(),
        Value::String(plain.into()),
    );
    m.insert(
        crate::vault::VAULT_KEY.to_string(),
        Value::String(text.into()),
    );
    Value::Object(m)
}

/// The plaintext and vault text of an opened vault value's marker, when `v` is one.
pub fn opened_vault(v: &Value) -> Option<(&str, &str)> {
    match v {
        Value::Object(m) if m.len() == 2 => Some((
            m.get(crate::plan::UNSAFE_KEY)?.as_str()?,
            m.get(crate::vault::VAULT_KEY)?.as_str()?,
        )),
        _ => None,
    }
}

/// The vault text inside the plan's marker for an encrypted value
/// (`{"__ansible_vault": text}`, see [`crate::vault::VAULT_KEY`]), when `v` is one.
pub fn vault_inner(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(crate::vault::VAULT_KEY)?.as_str(),
        _ => None,
    }
}

/// The plan's marker for an encrypted value.
pub fn vault_marker(text: &str) -> Value {
    let mut m = serde_json::Map::with_capacity(1);
    m.insert(
        crate::vault::VAULT_KEY.to_string(),
        Value::String(text.into()),
    );
    Value::Object(m)
}

/// The error of a template that used an encrypted value it has no password for, as
/// ansible-core words it.
fn sealed_error(source: &str) -> TemplateError {
    TemplateError {
        source_text: source.to_string(),
        detail: crate::vault::NO_SECRETS.to_string(),
        from_filter: true,
        undefined: false,
    }
}

/// `text` marked unsafe.
pub fn unsafe_marker(text: String) -> Value {
    let mut m = serde_json::Map::with_capacity(1);
    m.insert(crate::plan::UNSAFE_KEY.to_string(), Value::String(text));
    Value::Object(m)
}

/// `v` with every unsafe marker replaced by what it holds (for modules and output).
pub fn strip_unsafe(v: &Value) -> Value {
    if let Some(inner) = unsafe_inner(v) {
        return strip_unsafe(inner);
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(strip_unsafe).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), strip_unsafe(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A JSON value as a template value: unsafe text becomes a safe string.
pub fn to_jvalue(v: &Value) -> JValue {
    jvalue(v, false)
}

fn jvalue(v: &Value, all_unsafe: bool) -> JValue {
    if let Some((plain, text)) = opened_vault(v) {
        return crate::filters::encryption::opened(plain, text);
    }
    if let Some(inner) = unsafe_inner(v) {
        return jvalue(inner, true);
    }
    if let Some(text) = vault_inner(v) {
        return crate::filters::encryption::Vaulted::sealed(text.to_string());
    }
    match v {
        Value::Null => JValue::from(()),
        Value::Bool(b) => JValue::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => JValue::from(i),
            (None, Some(u)) => JValue::from(u),
            _ => JValue::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) if all_unsafe => JValue::from_safe_string(s.clone()),
        Value::String(s) => JValue::from(s.as_str()),
        Value::Array(items) => items.iter().map(|i| jvalue(i, all_unsafe)).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (JValue::from(k.as_str()), jvalue(v, all_unsafe)))
            .collect(),
    }
}

/// [`to_json`], with safe (unsafe-text) strings given as markers.
fn to_json_keeping_unsafe(v: &JValue, source: &str) -> Result<Value, TemplateError> {
    match v.kind() {
        ValueKind::String if v.is_safe() => {
            Ok(unsafe_marker(v.as_str().unwrap_or_default().to_string()))
        }
        ValueKind::Seq => {
            let mut out = Vec::new();
            for item in v.try_iter().into_iter().flatten() {
                out.push(to_json_keeping_unsafe(&item, source)?);
            }
            Ok(Value::Array(out))
        }
        ValueKind::Map => {
            let mut out = serde_json::Map::new();
            for k in v.try_iter().into_iter().flatten() {
                let item = v.get_item(&k).unwrap_or_default();
                let key = match k.as_str() {
                    Some(s) => s.to_string(),
                    None => k.to_string(),
                };
                out.insert(key, to_json_keeping_unsafe(&item, source)?);
            }
            Ok(Value::Object(out))
        }
        _ => to_json(v, source),
    }
}

/// The error of a template whose value is undefined, before it is named.
fn undefined_value(source: &str) -> TemplateError {
    TemplateError {
        source_text: source.to_string(),
        detail: "undefined value".to_string(),
        from_filter: false,
        undefined: true,
    }
}

/// Converts a template value back into JSON; an undefined value is an error naming it.
pub fn to_json(v: &JValue, source: &str) -> Result<Value, TemplateError> {
    if v.is_undefined() {
        return Err(undefined_value(source));
    }
    // An encrypted value given to a module (or any use that needs its text) is
    // decrypted in Ansible, which fails without a vault secret.
    let (out, sealed_used) = crate::filters::encryption::watch(|| serde_json::to_value(v));
    if sealed_used {
        return Err(sealed_error(source));
    }
    out.map_err(|e| TemplateError {
        source_text: source.to_string(),
        detail: e.to_string(),
        from_filter: false,
        undefined: false,
    })
}

// ---------------------------------------------------------------------------
// Python's text forms of values, as Ansible produces them.

/// Python's `repr(float)`: the shortest text that reads back, in exponent form outside
/// 1e-4 <= |f| < 1e16, and always with a `.0` or an exponent.
pub(crate) fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let fixed = f.to_string();
    if fixed.contains('.') {
        fixed
    } else {
        format!("{fixed}.0")
    }
}

/// Python's `repr(str)`: single quotes unless the text holds a single quote and no double.
pub(crate) fn py_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr()` of a template value: what Ansible writes for a dict or list
/// inside a larger string (`{'a': [1, True, None]}`).
fn py_repr(v: &JValue, out: &mut String) {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number if !v.is_integer() => match f64::try_from(v.clone()) {
            Ok(f) => out.push_str(&py_float(f)),
            Err(_) => out.push_str(&v.to_string()),
        },
        ValueKind::String => py_str_repr(v.as_str().unwrap_or_default(), out),
        ValueKind::Map => {
            out.push('{');
            for (i, k) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&k, out);
                out.push_str(": ");
                py_repr(&v.get_item(&k).unwrap_or_default(), out);
            }
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&item, out);
            }
            out.push(']');
        }
        _ => out.push_str(&v.to_string()),
    }
}

/// Python's `str()` of a template value: strings as they are, anything else as its
/// `repr()` (`None`, `True`, `[1, 'a']`); what Ansible's filters make of non-text input.
pub(crate) fn py_display(v: &JValue) -> String {
    match v.as_str() {
        Some(s) if v.kind() == ValueKind::String => s.to_string(),
        _ => py_repr_of(v),
    }
}

/// Python's `repr()` of a template value, strings quoted (`'a'`).
pub(crate) fn py_repr_of(v: &JValue) -> String {
    let mut out = String::new();
    py_repr(v, &mut out);
    out
}

/// How `{{ value }}` is written into text, as Ansible's templar joins its parts: `None`
/// writes nothing, booleans are `True`/`False`, floats and containers as Python prints them.
fn ansible_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    v: &JValue,
) -> Result<(), Error> {
    let text = match v.kind() {
        ValueKind::None => return Ok(()),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.to_string(),
        ValueKind::Number if !v.is_integer() => match f64::try_from(v.clone()) {
            Ok(f) => py_float(f),
            Err(_) => return minijinja::escape_formatter(out, state, v),
        },
        ValueKind::Map | ValueKind::Seq | ValueKind::Iterable => {
            let mut s = String::new();
            py_repr(v, &mut s);
            s
        }
        _ if matches!(crate::filters::encryption::Vaulted::of(v), Some((_, true))) => {
            return Err(crate::filters::encryption::sealed_error());
        }
        _ => return minijinja::escape_formatter(out, state, v),
    };
    out.write_str(&text)
        .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
}

/// `json.dumps(v)` with Python's defaults: what Ansible writes for a dict or list given
/// as text (copy's `content`, `to_json`).
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    py_json(v, None, 0, &mut out);
    out
}

/// Python methods on template values: minijinja-contrib's set, plus `list.index`.
fn python_method(
    state: &minijinja::State<'_, '_>,
    v: &JValue,
    method: &str,
    args: &[JValue],
) -> Result<JValue, Error> {
    if method == "index" && v.kind() == ValueKind::Seq {
        let [wanted] = args else {
            return Err(invalid("list.index() takes one argument here"));
        };
        return v
            .try_iter()?
            .position(|item| &item == wanted)
            .map(JValue::from)
            .ok_or_else(|| invalid(format!("{wanted} is not in list")));
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, v, method, args)
}

/// How Python's `json.dumps` is asked to write: its `indent`, `separators` and
/// `ensure_ascii` arguments.
#[derive(Debug, Clone)]
pub(crate) struct JsonStyle {
    /// Spaces per level, each item on its own line; None: all on one line.
    pub(crate) indent: Option<usize>,
    /// Between items (Python's default: `", "` on one line, `","` with an indent).
    pub(crate) item_sep: String,
    /// Between a key and its value.
    pub(crate) key_sep: String,
    /// Non-ASCII characters written as `\uXXXX` escapes.
    pub(crate) ensure_ascii: bool,
}

impl JsonStyle {
    /// Python's defaults for an indent (or none).
    pub(crate) fn python(indent: Option<usize>) -> JsonStyle {
        JsonStyle {
            indent,
            item_sep: if indent.is_some() { "," } else { ", " }.to_string(),
            key_sep: ": ".to_string(),
            ensure_ascii: true,
        }
    }
}

/// Python's `json.dumps` as Ansible's `to_json`/`to_nice_json` call it: ASCII only
/// (`ensure_ascii`), `", "`/`": "` separators on one line, or `","` and an indent per level.
fn py_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) {
    py_json_styled(v, &JsonStyle::python(indent), level, out);
}

/// `json.dumps(v, indent=indent, ensure_ascii=ensure_ascii)`, keys in the map's order:
/// what the deployer prints for results, as Ansible's callbacks write them.
pub fn py_json_dumps(v: &Value, indent: Option<usize>, ensure_ascii: bool) -> String {
    let style = JsonStyle {
        ensure_ascii,
        ..JsonStyle::python(indent)
    };
    let mut out = String::new();
    py_json_styled(v, &style, 0, &mut out);
    out
}

/// `value` with every object's keys in sorted order, at every depth: what Python's
/// `sort_keys=True` prints (`json.dumps`, `yaml.dump`'s default), whatever order the
/// maps were built in.
pub fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .filter_map(|k| m.get(k).map(|v| (k.clone(), sort_keys(v))))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// [`py_json`] with any of `json.dumps`' layouts.
pub(crate) fn py_json_styled(v: &Value, style: &JsonStyle, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = style.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => out.push_str(&match py_float(f).as_str() {
                "nan" => "NaN".to_string(),
                "inf" => "Infinity".to_string(),
                "-inf" => "-Infinity".to_string(),
                other => other.to_string(),
            }),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    ' '..='~' => out.push(c),
                    c if !style.ensure_ascii && (c as u32) >= 0x20 => out.push(c),
                    c => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
            out.push('"');
        }
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, level + 1);
                py_json_styled(item, style, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, level + 1);
                py_json_styled(&Value::String(k.clone()), style, level + 1, out);
                out.push_str(&style.key_sep);
                py_json_styled(item, style, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

pub(crate) mod yaml {
    //! PyYAML's emitter (`yaml.dump(v, indent=N, allow_unicode=True, width=80)`) for
    //! JSON-like values, so `to_yaml`/`to_nice_yaml` give Ansible's text byte for byte in
    //! the common cases: indentless lists under keys, `-   ` before nested collections,
    //! PyYAML's choice of plain/single/double quoting and its folding of long lines.

    use serde_json::Value;

    const WIDTH: usize = 80;

    struct Emitter {
        out: String,
        indent: usize,
        flow_leaves: bool,
    }

    /// The YAML text of `v`, block style; with `flow_leaves`, collections holding only
    /// scalars are written inline (`[1, 2]`), as PyYAML's `default_flow_style=None`.
    pub(crate) fn dump(v: &Value, indent: usize, flow_leaves: bool) -> String {
        // PyYAML ignores an indent outside 2..=9.
        let indent = if (2..10).contains(&indent) { indent } else { 2 };
        let mut e = Emitter {
            out: String::new(),
            indent,
            flow_leaves,
        };
        e.node(v, 0, false);
        if !e.out.ends_with('\n') {
            e.out.push('\n');
        }
        e.out
    }

    fn is_block(v: &Value, flow_leaves: bool) -> bool {
        let children: Vec<&Value> = match v {
            Value::Array(a) if !a.is_empty() => a.iter().collect(),
            Value::Object(m) if !m.is_empty() => m.values().collect(),
            _ => return false,
        };
        !flow_leaves
            || children
                .iter()
                .any(|c| matches!(c, Value::Array(_) | Value::Object(_)))
    }

    impl Emitter {
        fn column(&self) -> usize {
            let line = self.out.rsplit('\n').next().unwrap_or_default();
            line.chars().count()
        }

        fn pad(&mut self, col: usize) {
            self.out.push_str(&" ".repeat(col));
        }

        /// A node whose first line starts where the text stands (`inline`) or at `col`;
        /// `col` is also the column of a block collection's entries.
        fn node(&mut self, v: &Value, col: usize, inline: bool) {
            match v {
                Value::Object(m) if is_block(v, self.flow_leaves) => {
                    for (i, (k, item)) in m.iter().enumerate() {
                        if i > 0 || !inline {
                            self.pad(col);
                        }
                        self.scalar(k, col + self.indent, true, false);
                        self.out.push(':');
                        if is_block(item, self.flow_leaves) {
                            self.out.push('\n');
                            // PyYAML does not indent a list under its key.
                            let child = match item {
                                Value::Array(_) => col,
                                _ => col + self.indent,
                            };
                            self.node(item, child, false);
                        } else {
                            self.out.push(' ');
                            self.flow(item, col + self.indent);
                            self.out.push('\n');
                        }
                    }
                }
                Value::Array(a) if is_block(v, self.flow_leaves) => {
                    for (i, item) in a.iter().enumerate() {
                        if i > 0 || !inline {
                            self.pad(col);
                        }
                        if is_block(item, self.flow_leaves) {
                            self.out.push('-');
                            self.pad(self.indent - 1);
                            self.node(item, col + self.indent, true);
                        } else {
                            self.out.push_str("- ");
                            self.flow(item, col + self.indent);
                            self.out.push('\n');
                        }
                    }
                }
                other => {
                    if !inline {
                        self.pad(col);
                    }
                    self.flow(other, col + self.indent);
                    self.out.push('\n');
                }
            }
        }

        /// A scalar or a flow collection (`[1, 2]`, `{a: 1}`, `[]`) on the current line.
        fn flow(&mut self, v: &Value, indent: usize) {
            match v {
                Value::Null => self.out.push_str("null"),
                Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => {
                        // PyYAML: repr(f).lower(), with a `.0` before a bare exponent.
                        let r = super::py_float(f);
                        let r = match r.split_once('e') {
                            Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
                            _ => r,
                        };
                        self.out.push_str(match r.as_str() {
                            "inf" => ".inf",
                            "-inf" => "-.inf",
                            "nan" => ".nan",
                            other => other,
                        });
                    }
                    _ => self.out.push_str(&n.to_string()),
                },
                Value::String(s) => self.scalar(s, indent, false, false),
                Value::Array(a) => {
                    self.out.push('[');
                    for (i, item) in a.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        // Inside a flow collection, PyYAML indents continuations one step more.
                        self.flow_item(item, indent + self.indent);
                    }
                    self.out.push(']');
                }
                Value::Object(m) => {
                    self.out.push('{');
                    for (i, (k, item)) in m.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.scalar(k, indent + self.indent, true, true);
                        self.out.push_str(": ");
                        self.flow_item(item, indent + self.indent);
                    }
                    self.out.push('}');
                }
            }
        }

        fn flow_item(&mut self, v: &Value, indent: usize) {
            match v {
                Value::String(s) => self.scalar(s, indent, false, true),
                other => self.flow(other, indent),
            }
        }

        /// A string, plain when PyYAML would leave it plain, else quoted as it would.
        fn scalar(&mut self, s: &str, indent: usize, key: bool, in_flow: bool) {
            let a = analyze(s);
            let plain_ok = if in_flow { a.flow_plain } else { a.block_plain };
            if !resolves_to_other_type(s) && !(key && (s.is_empty() || a.multiline)) && plain_ok {
                self.folded(s, indent, false, !key);
            } else if a.single && !(key && a.multiline) {
                self.out.push('\'');
                self.folded(s, indent, true, !key);
                self.out.push('\'');
            } else {
                self.double_quoted(s);
            }
        }

        /// PyYAML's write_plain / write_single_quoted: a lone space past the width
        /// becomes a line break; in quotes a line break is written doubled.
        fn folded(&mut self, text: &str, indent: usize, quoted: bool, split: bool) {
            let chars: Vec<char> = text.chars().collect();
            let mut col = self.column();
            let (mut spaces, mut breaks) = (false, false);
            let (mut start, mut end) = (0, 0);
            let slice = |a: usize, b: usize| -> String {
                chars.get(a..b).unwrap_or_default().iter().collect()
            };
            while end <= chars.len() {
                let ch = chars.get(end).copied();
                if spaces {
                    if ch != Some(' ') {
                        if start + 1 == end
                            && col > WIDTH
                            && split
                            && (!quoted || (start != 0 && end != chars.len()))
                        {
                            self.out.push('\n');
                            self.pad(indent);
                            col = indent;
                        } else {
                            self.out.push_str(&slice(start, end));
                            col += end - start;
                        }
                        start = end;
                    }
                } else if breaks {
                    if ch != Some('\n') {
                        if chars.get(start) == Some(&'\n') {
                            self.out.push('\n');
                        }
                        for _ in start..end {
                            self.out.push('\n');
                        }
                        self.pad(indent);
                        col = indent;
                        start = end;
                    }
                } else if ch.is_none_or(|c| c == ' ' || c == '\n' || (quoted && c == '\''))
                    && start < end
                {
                    self.out.push_str(&slice(start, end));
                    col += end - start;
                    start = end;
                }
                if quoted && ch == Some('\'') {
                    self.out.push_str("''");
                    col += 2;
                    start = end + 1;
                }
                if let Some(c) = ch {
                    spaces = c == ' ';
                    breaks = c == '\n';
                }
                end += 1;
            }
        }

        fn double_quoted(&mut self, s: &str) {
            self.out.push('"');
            for c in s.chars() {
                let esc = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match esc {
                    Some(e) => {
                        self.out.push('\\');
                        self.out.push(e);
                    }
                    None if printable(c) => self.out.push(c),
                    None => {
                        let n = c as u32;
                        self.out.push_str(&if n <= 0xff {
                            format!("\\x{n:02X}")
                        } else if n <= 0xffff {
                            format!("\\u{n:04X}")
                        } else {
                            format!("\\U{n:08X}")
                        });
                    }
                }
            }
            self.out.push('"');
        }
    }

    /// PyYAML's printable set with allow_unicode (as Ansible dumps).
    fn printable(c: char) -> bool {
        matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
            && c != '\u{feff}'
    }

    /// What PyYAML's analyze_scalar allows for a string.
    struct Analysis {
        multiline: bool,
        flow_plain: bool,
        block_plain: bool,
        single: bool,
    }

    fn analyze(s: &str) -> Analysis {
        let chars: Vec<char> = s.chars().collect();
        let ws = |c: Option<&char>| {
            c.is_none_or(|c| {
                matches!(
                    c,
                    '\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'
                )
            })
        };
        let brk = |c: char| matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
        let (mut flow_ind, mut block_ind) = (false, false);
        if s.starts_with("---") || s.starts_with("...") {
            (flow_ind, block_ind) = (true, true);
        }
        let (mut line_breaks, mut special) = (false, false);
        let (mut lead_space, mut lead_break, mut trail_space, mut trail_break) =
            (false, false, false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut prev_space, mut prev_break) = (false, false);
        let mut preceded_ws = true;
        let last = chars.len().saturating_sub(1);
        for (i, &c) in chars.iter().enumerate() {
            let followed_ws = ws(chars.get(i + 1));
            if i == 0 {
                if "#,[]{}&*!|>'\"%@`".contains(c) {
                    (flow_ind, block_ind) = (true, true);
                }
                if c == '?' || c == ':' {
                    flow_ind = true;
                    block_ind |= followed_ws;
                }
                if c == '-' && followed_ws {
                    (flow_ind, block_ind) = (true, true);
                }
            } else {
                if ",?[]{}".contains(c) {
                    flow_ind = true;
                }
                if c == ':' {
                    flow_ind = true;
                    block_ind |= followed_ws;
                }
                if c == '#' && preceded_ws {
                    (flow_ind, block_ind) = (true, true);
                }
            }
            if brk(c) {
                line_breaks = true;
            }
            if !(c == '\n' || c == '\u{85}' || printable(c)) {
                special = true;
            }
            if c == ' ' {
                lead_space |= i == 0;
                trail_space |= i == last;
                break_space |= prev_break;
                (prev_space, prev_break) = (true, false);
            } else if brk(c) {
                lead_break |= i == 0;
                trail_break |= i == last;
                space_break |= prev_space;
                (prev_space, prev_break) = (false, true);
            } else {
                (prev_space, prev_break) = (false, false);
            }
            preceded_ws = ws(Some(&c));
        }
        let mut a = Analysis {
            multiline: line_breaks,
            flow_plain: !s.is_empty(),
            block_plain: true,
            single: true,
        };
        if lead_space || lead_break || trail_space || trail_break {
            (a.flow_plain, a.block_plain) = (false, false);
        }
        if break_space {
            (a.flow_plain, a.block_plain, a.single) = (false, false, false);
        }
        if space_break || special {
            (a.flow_plain, a.block_plain, a.single) = (false, false, false);
        }
        if line_breaks {
            (a.flow_plain, a.block_plain) = (false, false);
        }
        if flow_ind {
            a.flow_plain = false;
        }
        if block_ind {
            a.block_plain = false;
        }
        a
    }

    /// True when PyYAML would read the plain text back as something other than a
    /// string (YAML 1.1 booleans, null, numbers, dates, `<<`, `=`).
    fn resolves_to_other_type(s: &str) -> bool {
        const IMPLICIT: &str = concat!(
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"|~|null|Null|NULL|",
            r"|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            r"|[0-9]{4}-[0-9]{2}-[0-9]{2}",
            r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
            r"|<<|=)$"
        );
        // Python's `$` also matches before a final newline.
        let s = s.strip_suffix('\n').unwrap_or(s);
        regex::Regex::new(IMPLICIT).is_ok_and(|re| re.is_match(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> JValue {
        JValue::from_serialize(&v)
    }

    #[test]
    fn expression_with_a_stray_closing_brace_pair_is_an_error_not_a_panic() {
        // Found by the template fuzz target: minijinja's expression lexer panicked on a
        // `}}` followed by anything ("empty lexer stack"), e.g. a `when:` with a typo.
        let e = Engine::new();
        let c = ctx(json!({"x": 1, "d": {"a": {"b": 2}}}));
        for bad in [
            "x }} ",
            "x }}\ny",
            "x -}} y",
            "(x) }}+",
            "Wetname }}\nport = y }}\n",
        ] {
            let err = e.eval_bool(bad, &c).unwrap_err();
            assert!(err.detail.contains("`}}`"), "{bad:?}: {err}");
        }
        // Not stray: inside a string, or closing nested braces.
        assert!(e.eval_bool("'}} ' == '}} '", &c).unwrap());
        assert!(e.eval_bool("\"a\\\"}}\" != x", &c).unwrap());
        assert_eq!(e.eval("d['a']", &c).unwrap().to_string(), r#"{"b": 2}"#);
        assert!(e.eval_bool("{'k': {'v': 1}}['k']['v'] == 1", &c).is_ok());
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
    fn text_of_several_parts_that_reads_as_a_python_literal_becomes_that_value() {
        // ansible-core 2.18's ansible_eval_concat (the templating target's "convert JSON
        // null, true, and false to Python").
        let e = Engine::new();
        let c = ctx(json!({"x": 2, "s": "a"}));
        let r = |t: &str| e.render_value(&json!(t), &c).unwrap();
        assert_eq!(
            r(r#"{{ "" }}{"null": null, "true": true, "false": false}"#),
            json!({"null": null, "true": true, "false": false})
        );
        assert_eq!(r("[1, {{ x }}]"), json!([1, 2]));
        assert_eq!(r("{{ 'Tr' }}ue"), json!(true));
        // What Python cannot read, or does not start as a literal, stays text.
        assert_eq!(r("[{{ s }}]"), json!("[a]"));
        assert_eq!(r("x [{{ x }}]"), json!("x [2]"));
        assert_eq!(r("{{ 'No' }}ne"), json!("None"));
    }

    // Ansible 2.19: Jinja drops one final newline, a lone `{{ }}` keeps its type, and a
    // string result gets the dropped newlines back.
    #[test]
    fn text_around_a_single_expression_is_kept_as_ansible_does() {
        let e = Engine::new();
        let c = ctx(json!({"s": "hello", "n5": 5, "n": null, "d": {"a": 1}}));
        let r = |t: &str| e.render_value(&json!(t), &c).unwrap();
        assert_eq!(r("{{ s }}\n"), json!("hello\n"));
        assert_eq!(r("{{ s }}\n\n"), json!("hello\n\n"));
        assert_eq!(r(" {{ s }}"), json!(" hello"));
        assert_eq!(r("{{ s }} "), json!("hello "));
        assert_eq!(r("{{ n5 }}\n"), json!(5));
        assert_eq!(r("{{ n5 }}\n\n"), json!("5\n\n"));
        assert_eq!(r(" {{ n5 }}"), json!(" 5"));
        assert_eq!(r("{{ n5 }} "), json!("5 "));
        assert_eq!(r("{{ n }}"), json!(null));
        assert_eq!(r("{{ n }}\n"), json!(null));
        // Any other expression giving None is the empty string, as 2.18's finalize
        // makes it (lookup_first_found: `lookup('first_found', ..., errors='ignore')`).
        assert_eq!(r("{{ d.get('x') }}"), json!(""));
        assert_eq!(r("{{ n | default(None) }}"), json!(""));
        assert_eq!(r("{{ d }}\n"), json!({"a": 1}));
        assert_eq!(r("{{- n5 -}}"), json!(5));
        assert_eq!(r("x {{ n }}"), json!("x "));
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
        // A list with an undefined item, and a text filter given an undefined value,
        // fail naming it, as Ansible's do.
        for src in [
            "{{ [1, missing] }}",
            "{{ missing | regex_replace('a', 'b') }}",
        ] {
            let err = e.render_value(&json!(src), &c).unwrap_err();
            assert!(err.undefined, "{src}: {err:?}");
        }
        assert_eq!(
            e.render_value(&json!("{{ [1, 2] }}"), &c).unwrap(),
            json!([1, 2])
        );
    }

    /// templating: an unknown test or filter fails with Ansible's plugin loader message,
    /// also when `selectattr` names it.
    #[test]
    fn unknown_test_or_filter_fails_as_ansibles_loader_does() {
        let e = Engine::new();
        let c = ctx(json!({"l": [{"failed": false}]}));
        let msg = |src: &str| e.render_str(src, &c).unwrap_err().to_string();
        assert!(
            msg(r#"{{ l | selectattr("failed", "asdf ", true) }}"#).contains(
                "TemplateSyntaxError: Could not load \"asdf \": 'invalid plugin name: ansible.builtin.asdf '"
            ),
            "{}",
            msg(r#"{{ l | selectattr("failed", "asdf ", true) }}"#)
        );
        assert!(
            msg("{{ 1 is nonexistent }}")
                .contains(r#"Could not load "nonexistent": 'nonexistent'"#)
        );
        assert!(msg("{{ 1 | nofilter }}").contains(r#"Could not load "nofilter": 'nofilter'"#));
        assert!(msg("{{ l | reject('a.b') | list }}").contains("'invalid plugin name: a.b'"));
        assert_eq!(
            e.render_str(
                r#"{{ l | selectattr("failed", "==", false) | list | length }}"#,
                &c
            )
            .unwrap(),
            "1"
        );
    }

    /// filter_core: `mandatory` names the undefined variable as Jinja2's undefined does.
    #[test]
    fn mandatory_names_the_undefined_variable() {
        let e = Engine::new();
        let c = ctx(json!({"d": {}}));
        let msg = |src: &str| e.render_str(src, &c).unwrap_err().to_string();
        assert_eq!(
            msg("{{hey|mandatory}}"),
            "Mandatory variable 'hey'  not defined."
        );
        assert_eq!(
            msg("{{ d.port | ansible.builtin.mandatory }}"),
            "Mandatory variable 'port'  not defined."
        );
        assert_eq!(
            msg("{{ d['k'] | mandatory }}"),
            "Mandatory variable 'k'  not defined."
        );
        assert_eq!(msg("{{ hey | mandatory('sad wolf') }}"), "sad wolf");
    }

    /// find: Python's `%` formatting of a string literal, in conditions and templates.
    #[test]
    fn percent_formats_a_string_literal_as_python() {
        let e = Engine::new();
        let c = ctx(json!({"d": "/tmp/x", "m": {"p": "/tmp/x/f.gbk"}, "n": 7}));
        assert!(e.eval_bool(r#"m.p == ("%s/f.gbk" % (d))"#, &c).unwrap());
        assert_eq!(
            e.render_str(
                "{{ 'host%02d' % n }} {{ '%s-%s' % (d, n) }} 10 % {{ n % 4 }}",
                &c
            )
            .unwrap(),
            "host07 /tmp/x-7 10 % 3"
        );
        assert!(e.render_str("{{ '%d' % d }}", &c).is_err());
    }

    /// filter_core's first failure: an attribute or item of an undefined value is
    /// undefined again (Ansible's chainable `AnsibleUndefined`), until a filter or test
    /// consumes it; printing or iterating it still fails.
    #[test]
    fn undefined_attribute_chains_until_a_filter_or_test_consumes_it() {
        let e = Engine::new();
        let c = ctx(json!({"badcontainer": {"x": 1}, "d": {"a": {"b": 1}}}));
        assert!(
            e.eval_bool(
                "('key' | extract(badcontainer)).subkey | default('a') == 'a'",
                &c
            )
            .unwrap()
        );
        assert!(!e.eval_bool("nope.a.b is defined", &c).unwrap());
        assert!(e.eval_bool("d.zz.yy is undefined", &c).unwrap());
        assert!(e.eval_bool("d.a.b is defined", &c).unwrap());
        assert_eq!(
            e.render_str("{{ d['zz']['q'][0] | default(3) }}-{{ d.a.b }}", &c)
                .unwrap(),
            "3-1"
        );
        assert_eq!(
            e.render_value(&json!("{{ nope.x.y | default([1]) }}"), &c)
                .unwrap(),
            json!([1])
        );
        assert!(e.render_str("{{ d.zz.yy }}", &c).is_err());
        assert!(e.render_str("{{ nope.a }}", &c).is_err());
        assert!(
            e.render_str("{% for i in nope.a %}{{ i }}{% endfor %}", &c)
                .is_err()
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
        // ansible-core 2.18: a string is true when it is not empty, except what a
        // `{{ }}` condition renders, which is evaluated again ("no" is false).
        assert!(e.eval_bool("f", &c).unwrap());
        assert!(!e.eval_bool("{{ f }}", &c).unwrap());
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
            "b,a [\"b\", \"a\"]"
        );
        assert_eq!(e.render_str("line\n", &c).unwrap(), "line\n");
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
            r#"['web1', '80']"#
        );
        assert_eq!(
            render(r#"{{ s | regex_search('^HOST=db', ignorecase=true, multiline=true) }}"#)
                .unwrap(),
            "host=db"
        );
        assert_eq!(
            render(r#"{{ s | regex_findall('port=\\d+') }}"#).unwrap(),
            r#"['port=80', 'port=5432']"#
        );
        assert_eq!(
            render(r#"{{ s | regex_findall('port=(\\d+)') }}"#).unwrap(),
            r#"['80', '5432']"#
        );
        assert_eq!(
            render(r#"{{ s | regex_findall('(\\w+)=(\\d+)') }}"#).unwrap(),
            r#"[['port', '80'], ['port', '5432']]"#
        );
        assert_eq!(render(r#"{{ '1.2*' | regex_escape }}"#).unwrap(), r"1\.2\*");
        // Look-around and backreferences, which Python has (through fancy-regex).
        assert_eq!(
            render(r#"{{ 'x ax' | regex_replace('(?<=a)x', 'y') }}"#).unwrap(),
            "x ay"
        );
        assert_eq!(
            render(r#"{{ 'aa bb cd' | regex_findall('(\\w)\\1') }}"#).unwrap(),
            "['a', 'b']"
        );
        assert_eq!(
            render(r#"{{ 'k="v" z' | regex_search('(["\x27])(.*?)\\1', '\\2') }}"#).unwrap(),
            "['v']"
        );
        // re.match anchors at the start only; fullmatch tries every way to match all
        // of the text, not just the leftmost-first match.
        assert_eq!(render(r#"{{ 'abx' is match('ab') }}"#).unwrap(), "True");
        assert_eq!(render(r#"{{ 'xab' is match('ab') }}"#).unwrap(), "False");
        assert_eq!(
            render(r#"{{ 'ab' is regex('a|ab', match_type='fullmatch') }}"#).unwrap(),
            "True"
        );
        assert_eq!(
            render(r#"{{ 'abc' is regex('a|ab', match_type='fullmatch') }}"#).unwrap(),
            "False"
        );
        let e = render(r#"{{ 'x' | regex_replace('(x', 'y') }}"#).unwrap_err();
        assert!(
            e.contains("cannot compile the regular expression '(x'"),
            "{e}"
        );
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
        // Python's decoder drops characters outside the alphabet (ansible-core gives "foo").
        assert_eq!(render("{{ 'Zm9v!' | b64decode }}").unwrap(), "foo");
        assert!(
            render("{{ 'Z' | b64decode }}")
                .unwrap_err()
                .contains("1 more than a multiple of 4")
        );
        assert!(
            render("{{ '/w==' | b64decode }}")
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    // Expected texts below are ansible-core 2.19.14's output (PyYAML 6.0.4) for the same input.
    #[test]
    fn yaml_matches_pyyaml_as_ansible_calls_it() {
        assert_eq!(
            render("{{ {'b': [1, 'yes', {'k': 'v', 'j': ''}], 'a': {'x': 'a: b'}, 'c': [], 'n': none} | to_nice_yaml }}").unwrap(),
            "a:\n    x: 'a: b'\nb:\n- 1\n- 'yes'\n-   j: ''\n    k: v\nc: []\nn: null\n"
        );
        let nest = json!({
            "users": [{"name": "ann", "groups": ["a", "b"], "env": {"K": "v"}}, {"name": "bob", "groups": []}],
            "top": [[1, 2], [3, {"k": [4]}]], "e": {}, "s": "a: b", "m": "multi\nline",
            "y": "yes", "num": "0755", "emptys": "",
        });
        let e = Engine::new();
        let c = ctx(json!({"nest": nest, "long": "x ".repeat(50)}));
        assert_eq!(
            e.render_str("{{ nest | to_nice_yaml }}", &c).unwrap(),
            "e: {}\nemptys: ''\nm: 'multi\n\n    line'\nnum: '0755'\ns: 'a: b'\ntop:\n-   - 1\n    - 2\n-   - 3\n    -   k:\n        - 4\nusers:\n-   env:\n        K: v\n    groups:\n    - a\n    - b\n    name: ann\n-   groups: []\n    name: bob\ny: 'yes'\n"
        );
        assert_eq!(
            e.render_str("{{ nest | to_yaml }}", &c).unwrap(),
            "e: {}\nemptys: ''\nm: 'multi\n\n  line'\nnum: '0755'\ns: 'a: b'\ntop:\n- [1, 2]\n- - 3\n  - k: [4]\nusers:\n- env: {K: v}\n  groups: [a, b]\n  name: ann\n- groups: []\n  name: bob\ny: 'yes'\n"
        );
        assert_eq!(
            render("{{ [1, [2, 3], {'a': 1, 'b': [4]}, [], {}] | to_nice_yaml }}").unwrap(),
            "- 1\n-   - 2\n    - 3\n-   a: 1\n    b:\n    - 4\n- []\n- {}\n"
        );
        assert_eq!(
            render("{{ [[[1]]] | to_nice_yaml }}").unwrap(),
            "-   -   - 1\n"
        );
        assert_eq!(
            render("{{ {'a': {'b': [1]}} | to_nice_yaml(indent=2) }}").unwrap(),
            "a:\n  b:\n  - 1\n"
        );
        assert_eq!(render("{{ 'plain' | to_nice_yaml }}").unwrap(), "plain\n");
        assert_eq!(
            render("{{ {'x': {'m': 'a\nb\n'}} | to_nice_yaml }}").unwrap(),
            "x:\n    m: 'a\n\n        b\n\n        '\n"
        );
        assert_eq!(
            render("{{ [{'m': 'a\nb'}] | to_nice_yaml }}").unwrap(),
            "-   m: 'a\n\n        b'\n"
        );
        assert_eq!(
            render("{{ {'m': 'a\n\nb', 'n': \"it's\nx\"} | to_nice_yaml }}").unwrap(),
            "m: 'a\n\n\n    b'\nn: 'it''s\n\n    x'\n"
        );
        assert_eq!(
            e.render_str("{{ {'m': long} | to_nice_yaml }}", &c)
                .unwrap(),
            format!(
                "m: '{}\n    {}'\n",
                "x ".repeat(39).trim_end(),
                "x ".repeat(11)
            )
        );
        // Plain or quoted, as PyYAML chooses for each string.
        let cases = [
            ("tab\there", "\"tab\\there\""),
            ("é", "é"),
            ("a\u{1}", "\"a\\x01\""),
            (" lead", "' lead'"),
            ("trail ", "'trail '"),
            ("a#b", "a#b"),
            ("a #b", "'a #b'"),
            ("-x", "-x"),
            ("- x", "'- x'"),
            ("1.5", "'1.5'"),
            ("1e3", "1e3"),
            ("0x1F", "'0x1F'"),
            ("null", "'null'"),
            ("~", "'~'"),
            ("Yes", "'Yes'"),
            ("y", "y"),
            ("@x", "'@x'"),
            ("a:b", "a:b"),
            ("key: v", "'key: v'"),
            ("2024-01-01", "'2024-01-01'"),
            ("1_000", "'1_000'"),
            (":x", ":x"),
            ("x:", "'x:'"),
            ("!x", "'!x'"),
            ("%x", "'%x'"),
            ("*x", "'*x'"),
            ("?x", "?x"),
            ("? x", "'? x'"),
            ("{x", "'{x'"),
            ("x}", "x}"),
            ("[x", "'[x'"),
            (",x", "',x'"),
            ("x,y", "x,y"),
            ("'x", "'''x'"),
            ("\"x", "'\"x'"),
            ("=", "'='"),
            ("<<", "'<<'"),
            (".", "."),
            (".5", "'.5'"),
            ("+1", "'+1'"),
            ("1:20", "'1:20'"),
        ];
        for (v, want) in cases {
            let got = e
                .render_str("{{ {'k': v} | to_nice_yaml }}", &ctx(json!({"v": v})))
                .unwrap();
            assert_eq!(got, format!("k: {want}\n"), "{v:?}");
        }
        // (to_nice_yaml, to_yaml) of each value.
        let more = [
            (
                json!({"k": ["a\nb"]}),
                "k:\n- 'a\n\n    b'\n",
                "k: ['a\n\n    b']\n",
            ),
            (
                json!({"k": format!("{}end", "word ".repeat(20))}),
                "k: word word word word word word word word word word word word word word word word\n    word word word word end\n",
                "{k: word word word word word word word word word word word word word word word word\n    word word word word end}\n",
            ),
            (
                json!({"a b": 1, "k:": 2}),
                "a b: 1\n'k:': 2\n",
                "{a b: 1, 'k:': 2}\n",
            ),
            (
                json!({"k": ["a,b", "c", ":x", "x: y", "?"]}),
                "k:\n- a,b\n- c\n- :x\n- 'x: y'\n- '?'\n",
                "k: ['a,b', c, ':x', 'x: y', '?']\n",
            ),
            (
                json!({"k": {"a,b": "[x"}}),
                "k:\n    a,b: '[x'\n",
                "k: {'a,b': '[x'}\n",
            ),
            (json!("x: y"), "'x: y'\n", "'x: y'\n"),
            (json!(["a b"]), "- a b\n", "[a b]\n"),
            (
                json!({"k": format!("a  {}", "b ".repeat(45))}),
                "k: 'a  b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b\n    b b b b b b b '\n",
                "{k: 'a  b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b b\n    b b b b b b b b '}\n",
            ),
        ];
        for (v, nice, plain) in more {
            let c = ctx(json!({ "v": v }));
            assert_eq!(
                e.render_str("{{ v | to_nice_yaml }}", &c).unwrap(),
                nice,
                "{v}"
            );
            assert_eq!(e.render_str("{{ v | to_yaml }}", &c).unwrap(), plain, "{v}");
        }
        assert_eq!(
            render("{{ {'k': 1.5, 'f': 1e16, '1': 'int key'} | to_nice_yaml }}").unwrap(),
            "'1': int key\nf: 1.0e+16\nk: 1.5\n"
        );
    }

    // Python's json.dumps output, as ansible-core 2.19 gives it for the same values.
    #[test]
    fn json_filters_match_python_json_dumps() {
        let c = ctx(json!({
            "d": {"b": 1, "a": [1, 2], "c": {"z": true, "y": null}},
            "q": ["it's", "say \"hi\"", "both ' \"", "tab\tnl\n\\ é \u{1}"],
            "f": [1e16, 1e-5, 0.1, 123456789012345678.0, 2.5e-3, 1e15, -0.0],
            "u": "é€ \u{1F600}",
        }));
        let e = Engine::new();
        let r = |t: &str| e.render_str(t, &c).unwrap();
        // json.dumps keeps insertion order unless asked to sort.
        assert_eq!(
            r("{{ d | to_json }}"),
            r#"{"b": 1, "a": [1, 2], "c": {"z": true, "y": null}}"#
        );
        assert_eq!(
            r("{{ d | to_json(sort_keys=True) }}"),
            r#"{"a": [1, 2], "b": 1, "c": {"y": null, "z": true}}"#
        );
        assert_eq!(
            r("{{ d | to_json(sort_keys=true) }}"),
            r#"{"a": [1, 2], "b": 1, "c": {"y": null, "z": true}}"#
        );
        assert_eq!(
            r("{{ d | to_nice_json }}"),
            "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": 1,\n    \"c\": {\n        \"y\": null,\n        \"z\": true\n    }\n}"
        );
        assert_eq!(
            r("{{ q | to_json }}"),
            r#"["it's", "say \"hi\"", "both ' \"", "tab\tnl\n\\ \u00e9 \u0001"]"#
        );
        assert_eq!(
            r("{{ f | to_json }}"),
            "[1e+16, 1e-05, 0.1, 1.2345678901234568e+17, 0.0025, 1000000000000000.0, -0.0]"
        );
        assert_eq!(r("{{ u | to_json }}"), r#""\u00e9\u20ac \ud83d\ude00""#);
        assert_eq!(r("{{ {} | to_nice_json }}"), "{}");
        assert_eq!(
            r("{{ {'a': [], 'b': {}} | to_nice_json }}"),
            "{\n    \"a\": [],\n    \"b\": {}\n}"
        );
        assert_eq!(r("{{ 'x' | to_nice_json }}"), "\"x\"");
        assert_eq!(
            r("{{ d | to_nice_json(indent=2) }}").lines().nth(1),
            Some("  \"a\": [")
        );
    }

    // Ansible 2.19 joins a template's parts with Python's str(): these are its outputs.
    #[test]
    fn values_inside_text_are_written_as_python_prints_them() {
        let c = ctx(json!({
            "d": {"b": 1, "a": [1, 2], "c": {"z": true, "y": null}},
            "l": [1, "x", true, null, 1.5],
            "q": ["it's", "say \"hi\"", "both ' \"", "tab\tnl\n\\ é \u{1}"],
            "f": [1e16, 1e-5, 0.1, 123456789012345678.0, 2.5e-3, 1e15, -0.0],
            "u": "é€ \u{1F600}",
        }));
        let e = Engine::new();
        let r = |t: &str| e.render_str(t, &c).unwrap();
        // The dict's insertion order, as Python's str() writes it.
        assert_eq!(
            r("x {{ d }}"),
            "x {'b': 1, 'a': [1, 2], 'c': {'z': True, 'y': None}}"
        );
        assert_eq!(r("x {{ l }}"), "x [1, 'x', True, None, 1.5]");
        assert_eq!(r("x {{ true }} {{ false }} {{ none }}|"), "x True False |");
        assert_eq!(r("x {{ 1.0 }} {{ 3 }}"), "x 1.0 3");
        assert_eq!(
            r("x{{ q }}"),
            r#"x["it's", 'say "hi"', 'both \' "', 'tab\tnl\n\\ é \x01']"#
        );
        assert_eq!(
            r("x{{ f }}"),
            "x[1e+16, 1e-05, 0.1, 1.2345678901234568e+17, 0.0025, 1000000000000000.0, -0.0]"
        );
        assert_eq!(r("x{{ u }} {{ [u] }}"), "xé€ \u{1F600} ['é€ \u{1F600}']");
        assert!(e.render_str("x {{ missing }}", &c).is_err());
    }

    #[test]
    fn python_methods_work_in_templates() {
        let c = ctx(json!({"s": "hello", "csv": " a,b ,c ", "d": {"b": 1, "a": [1, 2]}}));
        let e = Engine::new();
        let r = |t: &str| e.render_value(&json!(t), &c).unwrap();
        assert_eq!(r("{{ csv.split(',') }}"), json!([" a", "b ", "c "]));
        assert_eq!(r("{{ csv.strip() }}"), json!("a,b ,c"));
        assert_eq!(r("{{ s.startswith('he') }}"), json!(true));
        assert_eq!(r("{{ s.upper() }}"), json!("HELLO"));
        assert_eq!(r("{{ s.replace('l', 'L') }}"), json!("heLLo"));
        assert_eq!(r("{{ d.keys() | list }}"), json!(["b", "a"]));
        assert_eq!(r("{{ d.keys() }}"), json!(["b", "a"]));
        assert_eq!(r("{{ d.values() | list }}"), json!([1, [1, 2]]));
        assert_eq!(
            r("{{ d.items() | list }}"),
            json!([["b", 1], ["a", [1, 2]]])
        );
        assert_eq!(
            e.render_str("x {{ d.keys() }}", &c).unwrap(),
            "x ['b', 'a']"
        );
        assert_eq!(r("{{ ['a', 'b', 'c'].index('b') }}"), json!(1));
        assert!(e.render_str("{{ ['a'].index('z') }}", &c).is_err());
        assert!(e.render_str("{{ s.nosuchmethod() }}", &c).is_err());
        assert_eq!(
            e.render_str(
                "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
                &c
            )
            .unwrap(),
            "b=1;a=[1, 2];"
        );
    }

    // ansible-core 2.18.19's set_fact results for the same task argument text (what YAML
    // single-quoted strings deliver): backslashes in `{{ }}` string literals reach the
    // filters as written; outside `{{ }}` they are plain text.
    #[test]
    fn backslashes_in_expression_strings_are_kept_as_ansible_keeps_them() {
        let e = Engine::new();
        let c = ctx(json!({}));
        let cases = [
            (
                r"{{ 'goodbye' | regex_search('(good)(bye)', '\2', '\1') }}",
                json!(["bye", "good"]),
            ),
            (
                r#"{{ "hello world" | regex_replace('\b(\w)', '<\1>') }}"#,
                json!("<h>ello <w>orld"),
            ),
            (r"{{ 'a.b' | regex_replace('\.', '\\') }}", json!(r"a\b")),
            (
                r"x\n{{ '1-2' | regex_replace('(\d)-(\d)', '\2\1') }}\t",
                json!(r"x\n21\t"),
            ),
            ("{{ 'tab\there' }}", json!("tab\there")),
        ];
        for (template, want) in cases {
            assert_eq!(
                e.render_value(&json!(template), &c).unwrap(),
                want,
                "{template}"
            );
        }
        // As in Ansible, a backslash-escaped quote no longer escapes it.
        assert!(e.render_value(&json!(r"{{ 'q\'s' }}"), &c).is_err());
    }

    // The msg ansible-core 2.18.19 registers for these failing tasks (set_fact/debug with
    // ignore_errors, then `debug: var=r.msg`): the filter's message alone.
    #[test]
    fn a_failing_filter_gives_ansibles_message_as_the_whole_error() {
        let e = Engine::new();
        let c = ctx(json!({}));
        for (template, msg) in [
            (
                "{{[1] | combine(foo='bar')}}",
                "'recursive' and 'list_merge' are the only valid keyword arguments",
            ),
            (
                "{{ 'x' | regex_escape(re_type='haha') }}",
                "Invalid regex type (haha)",
            ),
        ] {
            let err = e.render_value(&json!(template), &c).unwrap_err();
            assert_eq!(err.to_string(), msg);
            assert!(err.from_filter);
        }
        // Errors of the template itself keep naming the template.
        let err = e
            .render_value(&json!("{{ [1] | nosuchfilter }}"), &c)
            .unwrap_err();
        assert!(err.to_string().starts_with("template error in"), "{err}");
    }

    #[test]
    fn dict_filters() {
        assert_eq!(
            render("{{ d | combine(e) | tojson }}").unwrap(),
            r#"{"a": 1, "b": 2, "n": {"x": 9}}"#
        );
        assert_eq!(
            render("{{ d | combine(e, recursive=true) | tojson }}").unwrap(),
            r#"{"a": 1, "b": 2, "n": {"x": 9, "y": 2}}"#
        );
        assert_eq!(
            render("{{ {'a': 1} | combine([{'a': 2}, {'c': 3}]) | tojson }}").unwrap(),
            r#"{"a": 2, "c": 3}"#
        );
        assert!(render("{{ d | combine(e, list_merge='bogus') }}").is_err());
        assert!(render("{{ d | combine(1) }}").is_err());
        assert_eq!(
            render("{{ {'a': 1, 'b': 2} | dict2items | tojson }}").unwrap(),
            r#"[{"key": "a", "value": 1}, {"key": "b", "value": 2}]"#
        );
        assert_eq!(
            render("{{ {'a': 1} | dict2items(key_name='k', value_name='v') | items2dict(key_name='k', value_name='v') | tojson }}").unwrap(),
            r#"{"a": 1}"#
        );
        assert_eq!(
            render("{{ users | items2dict(key_name='name', value_name='admin') | tojson }}")
                .unwrap(),
            r#"{"ann": true, "bob": false}"#
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
            r#"d|3,1,2|ABab|a+b|4|8|1.5|1213|t|ann,bob|['ann']|bob|[3, 1, 3]|[2]|a|2|5"#
        );
    }
}
