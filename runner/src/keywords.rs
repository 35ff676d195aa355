//! Task, block and play keywords given as templates (`ignore_errors: "{{ x }}"`,
//! `delay: "{{ d }}"`), evaluated on the host with the task's variables and converted to
//! the keyword's type as Ansible's `FieldAttribute` validation converts them.
//!
//! Ansible templates a task's keywords just before it runs (after `when`), once per loop
//! item, so a keyword may refer to the item or to an `index_var`. A value that renders to
//! null leaves the keyword unset, as Ansible does; one that cannot be converted fails the
//! task with Ansible's message.

use crate::plan::Templated;
use crate::template::Engine;
use minijinja::value::Value as JValue;
use serde_json::Value;

/// Renders `t` (when it is a template) and converts it with `convert`. `Ok(None)` when
/// the template renders to null.
fn evaluate<T: Clone>(
    engine: &Engine,
    t: &Templated<T>,
    ctx: &JValue,
    name: &str,
    isa: &str,
    convert: impl Fn(&Value) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let source = match t {
        Templated::Value(v) => return Ok(Some(v.clone())),
        Templated::Template(s) => s,
    };
    let rendered = engine
        .render_value(&Value::String(source.clone()), ctx)
        .map_err(|e| {
            if e.detail.contains("undefined") {
                format!(
                    "The field '{name}' has an invalid value, which includes an undefined variable. {}",
                    e.detail
                )
            } else {
                format!("The field '{name}' has an invalid value: {e}")
            }
        })?;
    // A keyword that renders to null or to `omit` is left unset, as in Ansible.
    let omit = ctx.get_attr("omit").ok();
    let is_omit = matches!(
        (omit.as_ref().and_then(JValue::as_str), rendered.as_str()),
        (Some(o), Some(r)) if o == r
    );
    if rendered.is_null() || is_omit {
        return Ok(None);
    }
    convert(&rendered).map(Some).map_err(|why| {
        format!(
            "the field '{name}' has an invalid value ({}), and could not be converted to {isa}. {why}",
            py_repr(source)
        )
    })
}

/// A boolean keyword (`ignore_errors`, `become`, `check_mode`, `no_log`, ...).
pub fn flag(
    engine: &Engine,
    t: &Templated<bool>,
    ctx: &JValue,
    name: &str,
) -> Result<Option<bool>, String> {
    evaluate(engine, t, ctx, name, "bool", boolean)
}

/// A float keyword (`delay`, `loop_control.pause`).
pub fn float(
    engine: &Engine,
    t: &Templated<f64>,
    ctx: &JValue,
    name: &str,
) -> Result<Option<f64>, String> {
    evaluate(engine, t, ctx, name, "float", to_float)
}

/// An integer keyword (`retries`).
pub fn int(
    engine: &Engine,
    t: &Templated<i64>,
    ctx: &JValue,
    name: &str,
) -> Result<Option<i64>, String> {
    evaluate(engine, t, ctx, name, "int", to_int)
}

/// A string keyword that may hold a template (`loop_control.loop_var`).
pub fn text(engine: &Engine, source: &str, ctx: &JValue, name: &str) -> Result<String, String> {
    if !crate::template::is_template(source) {
        return Ok(source.to_string());
    }
    let t = Templated::Template(source.to_string());
    let v = evaluate(engine, &t, ctx, name, "string", |v| {
        Ok(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    })?;
    Ok(v.unwrap_or_default())
}

/// Ansible's `boolean(value, strict=True)`.
pub fn boolean(v: &Value) -> Result<bool, String> {
    const VALID: &str = "'y', 'yes', 'on', '1', 'true', 't', 1, 1.0, True, 'n', 'no', 'off', '0', 'false', 'f', 0, 0.0, False";
    let invalid = |shown: String| {
        format!("The value '{shown}' is not a valid boolean.  Valid booleans include: {VALID}")
    };
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(invalid(n.to_string())),
        },
        Value::String(s) => crate::modules::args::strict_bool(s).ok_or_else(|| invalid(s.clone())),
        other => Err(invalid(other.to_string())),
    }
}

/// Python's `float(value)`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("could not convert {n} to float")),
        Value::String(s) => {
            let t: String = s.trim().chars().filter(|c| *c != '_').collect();
            t.parse::<f64>()
                .map_err(|_| format!("could not convert string to float: {}", py_repr(s)))
        }
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            py_type(other)
        )),
    }
}

/// Ansible's int conversion: an integer, or a number or numeric text with nothing after
/// the point (`"3"`, `3.0`); `3.5` would be truncated and is refused.
fn to_int(v: &Value) -> Result<i64, String> {
    let f = match v {
        Value::Bool(b) => return Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            n.as_f64()
        }
        Value::String(s) => {
            let t: String = s.trim().chars().filter(|c| *c != '_').collect();
            if let Ok(i) = t.parse::<i64>() {
                return Ok(i);
            }
            t.parse::<f64>().ok().filter(|f| f.is_finite())
        }
        _ => None,
    };
    match f {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        Some(f) => Err(format!("Floating-point value {f} would be truncated.")),
        None => Err(format!("cannot convert {v} to an integer")),
    }
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `repr` of a string, as Ansible's messages show the keyword's value.
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_flag(source: &str, vars: Value) -> Result<Option<bool>, String> {
        let engine = Engine::new();
        let ctx = JValue::from_serialize(&vars);
        flag(
            &engine,
            &Templated::Template(source.into()),
            &ctx,
            "ignore_errors",
        )
    }

    /// Expected values from ansible-core 2.18.19 (`ignore_errors: "{{ ... }}"` on a task
    /// that fails; the messages are its own).
    #[test]
    fn booleans_as_ansible_converts_them() {
        assert_eq!(eval_flag("{{ t }}", json!({"t": "yes"})), Ok(Some(true)));
        assert_eq!(eval_flag("{{ t }}", json!({"t": " No "})), Ok(Some(false)));
        assert_eq!(eval_flag("{{ 1 }}", json!({})), Ok(Some(true)));
        assert_eq!(eval_flag("{{ none }}", json!({})), Ok(None));
        let e = eval_flag("{{ 'maybe' }}", json!({})).unwrap_err();
        assert!(
            e.starts_with(
                "the field 'ignore_errors' has an invalid value (\"{{ 'maybe' }}\"), and could not be converted to bool. The value 'maybe' is not a valid boolean."
            ),
            "{e}"
        );
        let e = eval_flag("{{ nope }}", json!({})).unwrap_err();
        assert!(
            e.starts_with(
                "The field 'ignore_errors' has an invalid value, which includes an undefined variable."
            ),
            "{e}"
        );
    }

    #[test]
    fn numbers_as_python_converts_them() {
        assert_eq!(to_float(&json!("0.5")), Ok(0.5));
        assert_eq!(to_float(&json!(" 2 ")), Ok(2.0));
        assert_eq!(to_float(&json!(3)), Ok(3.0));
        assert!(to_float(&json!("soon")).is_err());
        assert_eq!(to_int(&json!("3")), Ok(3));
        assert_eq!(to_int(&json!(3.0)), Ok(3));
        assert_eq!(to_int(&json!(-2)), Ok(-2));
        assert!(to_int(&json!(3.5)).unwrap_err().contains("truncated"));
        assert!(to_int(&json!("x")).is_err());
    }
}
