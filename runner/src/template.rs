//! Jinja templating with Ansible's conventions, on minijinja.
//!
//! Three uses: rendering module arguments (a string that is one `{{ expr }}` keeps the
//! expression's native type, as Ansible does, so `loop: "{{ pkgs }}"` gives a list),
//! evaluating conditions (`when`, `changed_when`, ...), and rendering template files.
//! Undefined variables are errors, as in Ansible, except under `is defined` and `default`.

use minijinja::value::Value as JValue;
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
}
