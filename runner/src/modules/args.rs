//! Typed access to module arguments, with Ansible's conversions and errors that name
//! the argument.

use super::ModuleError;
use crate::plan::Vars;
use serde_json::Value;

/// Ansible's boolean strings: yes/no, true/false, on/off, 1/0 (any case).
pub fn truthy_str(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" | "y" | "t" => Some(true),
        "no" | "false" | "off" | "0" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// Refuses arguments the module does not know, so a typo is an error, not a no-op.
pub fn only(args: &Vars, known: &[&str]) -> Result<(), ModuleError> {
    match args.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ModuleError::BadArgs(format!(
            "unsupported argument '{k}' (supported: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// An optional string argument; numbers and booleans are accepted as their text.
pub fn opt_str(args: &Vars, name: &str) -> Result<Option<String>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be a string, got {other}"
        ))),
    }
}

/// A required string argument.
pub fn req_str(args: &Vars, name: &str) -> Result<String, ModuleError> {
    opt_str(args, name)?
        .ok_or_else(|| ModuleError::BadArgs(format!("missing required argument '{name}'")))
}

/// An optional boolean argument with Ansible's conversions.
pub fn opt_bool(args: &Vars, name: &str) -> Result<Option<bool>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => Ok(Some(n.as_f64() != Some(0.0))),
        Some(Value::String(s)) => truthy_str(s).map(Some).ok_or_else(|| {
            ModuleError::BadArgs(format!("argument '{name}' must be a boolean, got '{s}'"))
        }),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be a boolean, got {other}"
        ))),
    }
}

/// A boolean argument with a default.
pub fn bool_or(args: &Vars, name: &str, default: bool) -> Result<bool, ModuleError> {
    Ok(opt_bool(args, name)?.unwrap_or(default))
}

/// A list of strings: a YAML list, or one string (split on commas when `split`).
pub fn str_list(args: &Vars, name: &str) -> Result<Vec<String>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(i.to_string()),
                other => Err(ModuleError::BadArgs(format!(
                    "argument '{name}' must be a list of strings, got {other}"
                ))),
            })
            .collect(),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Bool(b)) => Ok(vec![b.to_string()]),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be a list, got {other}"
        ))),
    }
}

/// A file mode: an octal string ("0644", "644") or a number. Ansible reads a YAML
/// integer as the decimal it is, so `mode: 420` is 0644 and `mode: 644` is the odd 01204;
/// we follow that, since plans come from YAML too. Symbolic modes (`u+x`) are refused.
pub fn opt_mode(args: &Vars, name: &str) -> Result<Option<u32>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .filter(|m| *m <= 0o7777)
            .map(Some)
            .ok_or_else(|| {
                ModuleError::BadArgs(format!("argument '{name}' is not a valid mode: {n}"))
            }),
        Some(Value::String(s)) => {
            let t = s.trim();
            let digits = t.strip_prefix("0o").unwrap_or(t);
            u32::from_str_radix(digits, 8)
                .ok()
                .filter(|m| *m <= 0o7777 && !digits.is_empty())
                .map(Some)
                .ok_or_else(|| {
                    ModuleError::BadArgs(format!(
                        "argument '{name}' must be an octal mode like \"0644\", got '{s}' (symbolic modes are not supported yet)"
                    ))
                })
        }
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be a mode, got {other}"
        ))),
    }
}

/// Formats a mode as Ansible registers it: "0644".
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(v: Value) -> Vars {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn modes() {
        assert_eq!(
            opt_mode(&a(json!({"m": "0755"})), "m").unwrap(),
            Some(0o755)
        );
        assert_eq!(opt_mode(&a(json!({"m": "644"})), "m").unwrap(), Some(0o644));
        assert_eq!(opt_mode(&a(json!({"m": 420})), "m").unwrap(), Some(0o644));
        assert!(opt_mode(&a(json!({"m": "u+x"})), "m").is_err());
        assert!(opt_mode(&a(json!({"m": "999"})), "m").is_err());
        assert_eq!(mode_string(0o644), "0644");
    }

    #[test]
    fn bools_and_lists() {
        assert_eq!(opt_bool(&a(json!({"b": "yes"})), "b").unwrap(), Some(true));
        assert_eq!(opt_bool(&a(json!({"b": "off"})), "b").unwrap(), Some(false));
        assert!(opt_bool(&a(json!({"b": "maybe"})), "b").is_err());
        assert_eq!(str_list(&a(json!({"l": "x"})), "l").unwrap(), vec!["x"]);
        assert!(only(&a(json!({"pth": 1})), &["path"]).is_err());
        assert!(
            req_str(&a(json!({})), "path")
                .unwrap_err()
                .to_string()
                .contains("path")
        );
    }
}
