//! Typed access to module arguments, with Ansible's conversions and errors that name
//! the argument.

use super::ModuleError;
use crate::plan::Vars;
use serde_json::Value;

/// Ansible's boolean strings (`BOOLEANS_TRUE`/`BOOLEANS_FALSE`): yes/no, y/n, true/false,
/// t/f, on/off, 1/0, any case, around spaces; an empty string is false here. The one
/// table of the project: strict callers refuse the empty string with [`strict_bool`].
pub fn truthy_str(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" | "y" | "t" => Some(true),
        "no" | "false" | "off" | "0" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// Ansible's `boolean(value, strict=True)` for a string: one of its words, not empty.
pub fn strict_bool(s: &str) -> Option<bool> {
    truthy_str(s).filter(|_| !s.trim().is_empty())
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

/// An optional string argument; numbers and booleans are accepted as their text, and a
/// list or mapping as Python's text of it, as Ansible's `check_type_str` converts them
/// (`path: '{{ item }}'` over find's `files` names a file called `{'path': ...}`).
pub fn opt_str(args: &Vars, name: &str) -> Result<Option<String>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Ok(Some(crate::lookups::py_repr(other))),
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
/// A non-negative integer argument, given as a number or as digits in a string
/// (Ansible's `type='int'` conversion); absent or null is `None`.
pub fn opt_u64(args: &Vars, name: &str) -> Result<Option<u64>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                ModuleError::BadArgs(format!("argument '{name}' must be an integer, got {v}"))
            }),
    }
}

/// An optional integer argument: a number, or a string of one (Ansible's `int` type).
pub fn opt_int(args: &Vars, name: &str) -> Result<Option<i64>, ModuleError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                ModuleError::BadArgs(format!("argument '{name}' must be an integer, got {v}"))
            }),
    }
}

pub fn bool_or(args: &Vars, name: &str, default: bool) -> Result<bool, ModuleError> {
    Ok(opt_bool(args, name)?.unwrap_or(default))
}

/// The arguments under their own names: each alias of `spec` (`(name, aliases)`) renamed
/// to its name, anything not in `spec` refused, and an argument given under two of its
/// names refused, as Ansible's argument spec does.
pub fn with_aliases(args: &Vars, spec: &[(&str, &[&str])]) -> Result<Vars, ModuleError> {
    let mut out = Vars::new();
    for (k, v) in args {
        let Some((name, _)) = spec
            .iter()
            .find(|(n, aliases)| n == k || aliases.contains(&k.as_str()))
        else {
            let known: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            return Err(ModuleError::BadArgs(format!(
                "unsupported argument '{k}' (supported: {})",
                known.join(", ")
            )));
        };
        if out.insert((*name).to_string(), v.clone()).is_some() {
            return Err(ModuleError::BadArgs(format!(
                "argument '{name}' is given twice, under its name and an alias"
            )));
        }
    }
    Ok(out)
}

/// A Python identifier that is not a keyword (Ansible's `isidentifier`), what a
/// variable name must be.
pub fn is_identifier(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
        "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
        "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
        "try", "while", "with", "yield",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && !KEYWORDS.contains(&name)
}

/// An optional string argument that must be one of `choices`, in Ansible's words when
/// it is not.
pub fn opt_choice(
    args: &Vars,
    name: &str,
    choices: &[&str],
) -> Result<Option<String>, ModuleError> {
    // YAML reads `off` as false: Ansible takes a boolean back to the one choice that
    // spells it (`logging: off` is "off"), when exactly one does.
    if let Some(Value::Bool(b)) = args.get(name) {
        let words: &[&str] = if *b {
            &["y", "yes", "on", "true", "t", "1"]
        } else {
            &["n", "no", "off", "false", "f", "0"]
        };
        let spelled: Vec<&&str> = choices
            .iter()
            .filter(|c| words.contains(&c.to_ascii_lowercase().as_str()))
            .collect();
        if let [one] = spelled.as_slice() {
            return Ok(Some((**one).to_string()));
        }
    }
    match opt_str(args, name)? {
        Some(v) if !choices.contains(&v.as_str()) => Err(ModuleError::BadArgs(format!(
            "value of {name} must be one of: {}, got: {v}",
            choices.join(", ")
        ))),
        v => Ok(v),
    }
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
/// we follow that, since plans come from YAML too. Symbolic modes (`u+x`) are read by
/// [`SymbolicMode`] where a path's current mode is known (the file modules' `mode`).
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
                        "argument '{name}' must be an octal mode like \"0644\", got '{s}'"
                    ))
                })
        }
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be a mode, got {other}"
        ))),
    }
}

/// A symbolic mode (`u=rwX,g+s,o-w`), as Ansible's file arguments take it: checked when
/// read, applied to a path's current mode with [`SymbolicMode::apply`]. Kept as its
/// text in a fixed buffer so that the attributes it travels in stay `Copy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolicMode {
    text: [u8; 64],
    len: usize,
}

impl SymbolicMode {
    /// True when `s` is meant as a symbolic mode (it has an operator).
    pub fn looks_symbolic(s: &str) -> bool {
        s.contains(['+', '-', '='])
    }

    /// Checks `s` as Ansible does (`[ugoa]*` then operator and `[rwxXstugo]*` pairs,
    /// comma-separated clauses).
    pub fn parse(s: &str) -> Result<SymbolicMode, ModuleError> {
        let bad = || {
            ModuleError::BadArgs(format!(
                "mode must be in octal or symbolic form: bad symbolic permission for mode: {s}"
            ))
        };
        for clause in s.split(',') {
            let users_end = clause.find(['+', '-', '=']).ok_or_else(bad)?;
            let (users, rest) = clause.split_at(users_end);
            if !users.chars().all(|c| "ugoa".contains(c)) {
                return Err(bad());
            }
            if !rest.chars().all(|c| "+-=rwxXstugo".contains(c)) {
                return Err(bad());
            }
        }
        let mut text = [0u8; 64];
        let bytes = s.as_bytes();
        text.get_mut(..bytes.len())
            .ok_or_else(|| ModuleError::BadArgs(format!("mode is too long: {s}")))?
            .copy_from_slice(bytes);
        Ok(SymbolicMode {
            text,
            len: bytes.len(),
        })
    }

    /// The mode this gives a path whose mode is `current` (Ansible's
    /// `_symbolic_mode_to_octal`): clauses in order, each user in turn; no user letters
    /// means `a` with the umask applied to r, w and x; `X` is x for a directory or a
    /// path that has some x already.
    pub fn apply(&self, current: u32, is_dir: bool) -> u32 {
        let text = std::str::from_utf8(self.text.get(..self.len).unwrap_or_default()).unwrap_or("");
        let rev_umask = !super::fsutil::process_umask() & 0o7777;
        let mut mode = current & 0o7777;
        for clause in text.split(',') {
            let users_end = clause.find(['+', '-', '=']).unwrap_or(clause.len());
            let (users, rest) = clause.split_at(users_end);
            let use_umask = users.is_empty();
            let users = if users.is_empty() || users.contains('a') {
                "ugo"
            } else {
                users
            };
            // Operator and permission pairs: "+x-w" is ['+', "x"], ['-', "w"].
            let mut pairs: Vec<(char, String)> = Vec::new();
            for c in rest.chars() {
                match c {
                    '+' | '-' | '=' => pairs.push((c, String::new())),
                    p => {
                        if let Some(last) = pairs.last_mut() {
                            last.1.push(p);
                        }
                    }
                }
            }
            for (op, perms) in &pairs {
                for user in users.chars() {
                    let bits = perm_bits(user, perms, mode, is_dir, use_umask, rev_umask);
                    mode = match op {
                        '=' => {
                            let mask = match user {
                                'u' => 0o4700,
                                'g' => 0o2070,
                                _ => 0o1007,
                            };
                            (mode & (mask ^ 0o7777)) | bits
                        }
                        '+' => mode | bits,
                        _ => mode & !bits,
                    };
                }
            }
        }
        mode
    }
}

/// The bits `perms` stand for, for `user`, given the mode so far.
fn perm_bits(
    user: char,
    perms: &str,
    prev: u32,
    is_dir: bool,
    use_umask: bool,
    rev_umask: u32,
) -> u32 {
    let apply_x = is_dir || prev & 0o111 != 0;
    let (r, w, x, s, t, shift) = match user {
        'u' => (0o400, 0o200, 0o100, 0o4000, 0, 6),
        'g' => (0o040, 0o020, 0o010, 0o2000, 0, 3),
        _ => (0o004, 0o002, 0o001, 0, 0o1000, 0),
    };
    let masked = |b: u32| if use_umask { b & rev_umask } else { b };
    // Copying another class's bits (`g=u`): that class's rwx moved to this one's place.
    let class = |from: u32| ((prev >> from) & 0o7) << shift;
    perms.chars().fold(0, |acc, p| {
        acc | match p {
            'r' => masked(r),
            'w' => masked(w),
            'x' => masked(x),
            'X' if apply_x => x,
            's' => s,
            't' => t,
            'u' => class(6),
            'g' => class(3),
            'o' => class(0),
            _ => 0,
        }
    })
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

    /// Symbolic modes as Ansible's `_symbolic_mode_to_octal` computes them (expected
    /// values worked out from its rules; the file target sets `o=rwXt` and the like).
    #[test]
    fn symbolic_modes_apply_to_the_current_mode() {
        let m = |s: &str, cur: u32, dir: bool| SymbolicMode::parse(s).unwrap().apply(cur, dir);
        assert_eq!(m("u+x", 0o644, false), 0o744);
        assert_eq!(m("g-r,o-r", 0o644, false), 0o600);
        assert_eq!(m("o=rwXt", 0o640, true), 0o1647);
        assert_eq!(m("o=rwXt", 0o640, false), 0o1646);
        assert_eq!(m("u=rw,g=u,o=", 0o777, false), 0o660);
        assert_eq!(m("a+X", 0o600, true), 0o711);
        assert_eq!(m("u+s,g+s", 0o755, false), 0o6755);
        assert_eq!(m("u=rwx-x+r", 0o000, false), 0o600);
        for bad in ["u*x", "z+x", "u+q", "rwx"] {
            assert!(SymbolicMode::parse(bad).is_err(), "{bad}");
        }
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
