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

/// The `key=value` options Ansible extracts from a command line (`parse_kv`'s list;
/// `expand_argument_vars` is not in it, so on a command line it stays command text).
const RAW_KEYS: [&str; 8] = [
    "creates",
    "removes",
    "chdir",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// True for modules that take a command line as free-form text (short name).
pub(crate) fn is_raw_module(module: &str) -> bool {
    RAW_MODULES.contains(&module)
}

/// Splits free-form text into module arguments as Ansible's `parse_kv` does: the tokens
/// of [`split_args`] with an unescaped `=` (after their first character) become
/// arguments (escapes decoded, quotes around the value removed); the others are joined
/// back, with the spacing and newlines they had, as `_raw_params`. For command-line
/// modules only the keys in [`RAW_KEYS`] are arguments.
pub(crate) fn parse_kv(text: &str, raw_module: bool) -> Map<String, Value> {
    let mut args = Map::new();
    let mut raw: Vec<String> = Vec::new();
    for orig in split_args(text) {
        let x = rustle_runner::lookups::decode_escapes(&orig);
        let chars: Vec<char> = x.chars().collect();
        let eq = (1..chars.len())
            .find(|&i| chars.get(i) == Some(&'=') && chars.get(i - 1) != Some(&'\\'));
        if !x.contains('=') {
            raw.push(orig);
            continue;
        }
        let Some(pos) = eq else {
            // Only escaped `=`: command text with the escapes removed.
            raw.push(x.replace("\\=", "="));
            continue;
        };
        let key: String = chars.get(..pos).unwrap_or_default().iter().collect();
        let value: String = chars.get(pos + 1..).unwrap_or_default().iter().collect();
        if raw_module && !RAW_KEYS.contains(&key.as_str()) {
            raw.push(orig);
            continue;
        }
        args.insert(
            key.trim().to_string(),
            Value::String(unquote(value.trim()).to_string()),
        );
    }
    if !raw.is_empty() {
        args.insert("_raw_params".to_string(), Value::String(join_args(&raw)));
    }
    args
}

/// Ansible's `unquote`: the outer quotes of a value quoted at both ends (the closing
/// one not escaped).
fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l))
            if b.len() > 1
                && f == l
                && (f == b'"' || f == b'\'')
                && b.get(b.len() - 2) != Some(&b'\\') =>
        {
            v.get(1..v.len() - 1).unwrap_or(v)
        }
        _ => v,
    }
}

/// Ansible's `join_args`: tokens joined by a space, except after a newline.
fn join_args(tokens: &[String]) -> String {
    let mut out = String::new();
    for t in tokens {
        if !(out.is_empty() || out.ends_with('\n')) {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// Ansible's quote tracking over one token: the quote still open after it.
fn quote_state(token: &str, mut quote: Option<char>) -> Option<char> {
    let mut prev: Option<char> = None;
    for c in token.chars() {
        if (c == '"' || c == '\'') && prev != Some('\\') {
            match quote {
                Some(q) if q == c => quote = None,
                Some(_) => {}
                None => quote = Some(c),
            }
        }
        prev = Some(c);
    }
    quote
}

/// The depth of a Jinja2 block kind after `token` (opens minus closes, never below 0).
fn jinja_depth(token: &str, depth: usize, open: &str, close: &str) -> usize {
    let opens = token.matches(open).count();
    let closes = token.matches(close).count();
    if opens == closes {
        return depth;
    }
    (depth + opens).saturating_sub(closes)
}

/// Ansible's `split_args`: the text split on single spaces and on newlines, with what a
/// quote or a `{{ }}`/`{% %}`/`{# #}` block holds kept together, runs of spaces and the
/// newlines kept on the tokens (so `join_args` gives the text back), and a lone `\` at
/// the end of a line joining it to the next.
fn split_args(text: &str) -> Vec<String> {
    let mut params: Vec<String> = Vec::new();
    if text.is_empty() {
        return params;
    }
    let items: Vec<&str> = text.split('\n').collect();
    let mut quote: Option<char> = None;
    let (mut print, mut block, mut comment) = (0usize, 0usize, 0usize);
    let last_item = items.len() - 1;
    for (item_idx, item) in items.iter().enumerate() {
        let mut continuation = false;
        for (idx, token) in item.split(' ').enumerate() {
            if token.is_empty() && idx != 0 {
                match params.last_mut() {
                    Some(p) => p.push(' '),
                    None => params.push(" ".into()),
                }
                continue;
            }
            let inside_before = quote.is_some();
            if token == "\\" && !inside_before {
                continuation = true;
                continue;
            }
            quote = quote_state(token, quote);
            let inside = quote.is_some();
            let in_jinja = print > 0 || block > 0 || comment > 0;
            let mut appended = false;
            if inside && !inside_before && !in_jinja {
                params.push(token.to_string());
                appended = true;
            } else if in_jinja || inside || inside_before {
                let spacer = if idx == 0 && inside_before {
                    ""
                } else if idx > 0 {
                    " "
                } else {
                    ""
                };
                match params.last_mut() {
                    Some(p) => {
                        p.push_str(spacer);
                        p.push_str(token);
                    }
                    None => params.push(token.to_string()),
                }
                appended = true;
            }
            for (depth, open, close) in [
                (&mut print, "{{", "}}"),
                (&mut block, "{%", "%}"),
                (&mut comment, "{#", "#}"),
            ] {
                let before = *depth;
                *depth = jinja_depth(token, before, open, close);
                if *depth != before && !appended {
                    params.push(token.to_string());
                    appended = true;
                }
            }
            if print == 0 && block == 0 && comment == 0 && !inside && !appended && !token.is_empty()
            {
                params.push(token.to_string());
            }
        }
        if items.len() > 1 && item_idx != last_item && !continuation {
            match params.last_mut() {
                Some(p) => p.push('\n'),
                None => params.push("\n".into()),
            }
        }
    }
    params
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
            json!({"_raw_params": script})
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

    /// ansible-core's command_shell target: a line ending in ` \` continues on the
    /// next, newlines and the last one stay, and `k=v` lines of the options go.
    #[test]
    fn command_lines_split_as_ansibles_split_args() {
        let text = "echo this is a \\\n\"multiline echo\" \\\n\"with a new line\nin quotes\" \\\n| cat\necho \"second\"\n";
        assert_eq!(
            Value::Object(parse_kv(text, true)),
            json!({"_raw_params": "echo this is a \"multiline echo\" \"with a new line\nin quotes\" | cat\necho \"second\"\n"})
        );
        let text = "executable=\"/bin/bash\"\ncreates=/tmp/x\necho \"test\"\n";
        assert_eq!(
            Value::Object(parse_kv(text, true)),
            json!({"executable": "/bin/bash", "creates": "/tmp/x", "_raw_params": "echo \"test\"\n"})
        );
        // Not one of the options Ansible takes from a command line.
        assert_eq!(
            Value::Object(parse_kv("echo a expand_argument_vars=false", true)),
            json!({"_raw_params": "echo a expand_argument_vars=false"})
        );
        // Only escaped `=`: command text, unescaped.
        assert_eq!(
            Value::Object(parse_kv("a\\=b", false)),
            json!({"_raw_params": "a=b"})
        );
    }
}
