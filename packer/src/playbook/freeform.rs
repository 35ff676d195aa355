//! Ansible's free-form module arguments: `file: path=/x state=directory` and
//! `shell: echo hi chdir=/tmp`, split the way Ansible's `parse_kv` does.

use serde_json::{Map, Value};

/// Modules whose free-form text is a command line: only the keys in [`RAW_KEYS`] are taken
/// out of it as `key=value`, everything else stays in `_raw_params` (Ansible's
/// `FREEFORM_ACTIONS`).
const RAW_MODULES: [&str; 6] = [
    "command",
    "shell",
    "script",
    "raw",
    "win_command",
    "win_shell",
];

/// The `key=value` options Ansible extracts from a command line.
const RAW_KEYS: [&str; 9] = [
    "creates",
    "removes",
    "chdir",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "expand_argument_vars",
];

/// True for modules that take a command line as free-form text (short name).
pub(crate) fn is_raw_module(module: &str) -> bool {
    RAW_MODULES.contains(&module)
}

/// Splits free-form text into module arguments: `key=value` tokens become arguments
/// (quotes around the value removed), the other tokens are kept, with the spacing they
/// had, as `_raw_params`. For command-line modules only a few keys are arguments.
pub(crate) fn parse_kv(text: &str, raw_module: bool) -> Map<String, Value> {
    let mut args = Map::new();
    let mut raw = String::new();
    // The end of the previous token, when it went into `raw`: consecutive raw tokens keep
    // the text between them (spaces, newlines of a script) exactly.
    let mut prev_raw_end: Option<usize> = None;
    for (start, end) in split_args(text) {
        let token = text.get(start..end).unwrap_or_default();
        if let Some((key, value)) = key_value(token)
            && (!raw_module || RAW_KEYS.contains(&key))
        {
            let value = rustle_runner::lookups::decode_escapes(value);
            args.insert(
                key.to_string(),
                Value::String(rustle_runner::lookups::unquote(&value).to_string()),
            );
            prev_raw_end = None;
            continue;
        }
        if !raw.is_empty() {
            match prev_raw_end.and_then(|p| text.get(p..start)) {
                Some(gap) => raw.push_str(gap),
                None => raw.push(' '),
            }
        }
        raw.push_str(token);
        prev_raw_end = Some(end);
    }
    if !raw.is_empty() {
        args.insert("_raw_params".to_string(), Value::String(raw));
    }
    args
}

/// `key=value` when the token starts with an identifier followed by `=`, or with a name
/// made with a template (`set_fact: "{{ item }}=on"`, `"user_{{ x }}=y"`: set_fact
/// templates its names).
fn key_value(token: &str) -> Option<(&str, &str)> {
    let (key, value) = token.split_once('=')?;
    if key.contains("{{") && key.contains("}}") {
        return Some((key, value));
    }
    let mut chars = key.chars();
    let first = chars.next()?;
    let ident = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ident.then_some((key, value))
}

/// Byte ranges of the whitespace-separated tokens, where whitespace inside quotes or
/// inside `{{ }}`, `{% %}` and `{# #}` does not separate.
fn split_args(text: &str) -> Vec<(usize, usize)> {
    let mut tokens = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0usize;
    let mut prev = '\0';
    for (i, c) in text.char_indices() {
        if start.is_none() {
            if c.is_whitespace() {
                prev = c;
                continue;
            }
            start = Some(i);
        }
        // A character that completed a `{{`/`}}` pair must not start another one.
        let mut paired = false;
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if (c == '{' || c == '%' || c == '#') && prev == '{' {
            depth += 1;
            paired = true;
        } else if c == '}' && matches!(prev, '}' | '%' | '#') && depth > 0 {
            depth -= 1;
            paired = true;
        } else if depth == 0 && (c == '"' || c == '\'') {
            quote = Some(c);
        } else if depth == 0
            && c.is_whitespace()
            && let Some(s) = start.take()
        {
            tokens.push((s, i));
        }
        prev = if paired { '\0' } else { c };
    }
    if let Some(s) = start {
        tokens.push((s, text.len()));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_values_and_raw_text() {
        assert_eq!(
            Value::Object(parse_kv("path=/x state=directory mode='0755'", false)),
            json!({"path": "/x", "state": "directory", "mode": "0755"})
        );
        assert_eq!(
            Value::Object(parse_kv("echo  a=b   c chdir=/tmp", true)),
            json!({"_raw_params": "echo  a=b   c", "chdir": "/tmp"})
        );
        assert_eq!(
            Value::Object(parse_kv("msg=\"{{ a }} b\" other", false)),
            json!({"msg": "{{ a }} b", "_raw_params": "other"})
        );
        // A templated name, as Ansible's parse_kv splits it (for set_fact).
        assert_eq!(
            Value::Object(parse_kv("{{ 'x' + item }}={{ item }}", false)),
            json!({"{{ 'x' + item }}": "{{ item }}"})
        );
        assert_eq!(
            Value::Object(parse_kv("user_{{ item.0.name }}={{ item.1 }}", false)),
            json!({"user_{{ item.0.name }}": "{{ item.1 }}"})
        );
        assert_eq!(
            Value::Object(parse_kv("echo \"x y\" {{ a | default('p q') }}", true)),
            json!({"_raw_params": "echo \"x y\" {{ a | default('p q') }}"})
        );
        let script = "set -e\nif [ -f x ]; then\n  echo y\nfi\n";
        // Not decoded: raw command text stays as written.
        assert_eq!(
            Value::Object(parse_kv(r"printf 'a\n' creates=/x\ty", true)),
            json!({"_raw_params": r"printf 'a\n'", "creates": "/x\ty"})
        );
        assert_eq!(
            Value::Object(parse_kv(script, true)),
            json!({"_raw_params": script.trim_end()})
        );
    }

    /// Ansible decodes escapes in `key=value` options (found by the Ansible differential
    /// test: `copy: content="{{ s }}\n" dest=...` writes a newline, not a backslash and n).
    #[test]
    fn options_have_their_escapes_decoded() {
        let args = parse_kv(
            r#"content="{{ s }}\n" a=x\ty b='it\'s' c=\\n d=\x41\u00e9\U0001F600 e=\q\x4 f=\N{DASH}"#,
            false,
        );
        assert_eq!(
            Value::Object(args),
            json!({"content": "{{ s }}\n", "a": "x\ty", "b": "it's", "c": "\\n",
                   "d": "Aé😀", "e": "\\q\\x4", "f": "\\N{DASH}"})
        );
    }
}
