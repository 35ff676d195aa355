//! Ansible's free-form module arguments: `file: path=/x state=directory` and
//! `shell: echo hi chdir=/tmp`, split the way Ansible's `parse_kv` does.

use serde_json::{Map, Value};

/// Modules whose free-form text is a command line: only the options Ansible takes from a
/// command line (`creates`, `chdir`, ...) are taken out of it as `key=value`, everything
/// else stays in `_raw_params` (Ansible's `FREEFORM_ACTIONS`).
const RAW_MODULES: [&str; 6] = [
    "command",
    "shell",
    "script",
    "raw",
    "win_command",
    "win_shell",
];

/// True for modules that take a command line as free-form text (short name).
pub(crate) fn is_raw_module(module: &str) -> bool {
    RAW_MODULES.contains(&module)
}

/// Splits free-form text into module arguments as Ansible's `parse_kv` does (the
/// runner's port, shared with the lookups' `key=value` terms): for command-line modules
/// (`raw_module`) only the options Ansible takes from a command line become arguments,
/// the rest stays `_raw_params` as written. Unbalanced quotes or Jinja2 blocks are an
/// error, in Ansible's words.
pub(crate) fn parse_kv(text: &str, raw_module: bool) -> Result<Map<String, Value>, String> {
    rustle_runner::lookups::parse_kv_checking_raw(text, raw_module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str, raw_module: bool) -> Map<String, Value> {
        parse_kv(text, raw_module).unwrap()
    }

    /// Ansible's split_args refuses text whose quotes or Jinja2 blocks do not close;
    /// free-form arguments used to be split anyway, the rest of the line in one token.
    #[test]
    fn unbalanced_quotes_or_blocks_are_refused_as_ansible_refuses_them() {
        for text in ["echo \"open", "msg={{ a", "x='y"] {
            let err = parse_kv(text, false).unwrap_err();
            assert!(
                err.starts_with(
                    "failed at splitting arguments, either an unbalanced jinja2 block or quotes"
                ),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn key_values_and_raw_text() {
        assert_eq!(
            Value::Object(ok("path=/x state=directory mode='0755'", false)),
            json!({"path": "/x", "state": "directory", "mode": "0755"})
        );
        assert_eq!(
            Value::Object(ok("echo  a=b   c chdir=/tmp", true)),
            json!({"_raw_params": "echo  a=b   c", "chdir": "/tmp"})
        );
        assert_eq!(
            Value::Object(ok("msg=\"{{ a }} b\" other", false)),
            json!({"msg": "{{ a }} b", "_raw_params": "other"})
        );
        // A templated name, as Ansible's parse_kv splits it (for set_fact).
        assert_eq!(
            Value::Object(ok("{{ 'x' + item }}={{ item }}", false)),
            json!({"{{ 'x' + item }}": "{{ item }}"})
        );
        assert_eq!(
            Value::Object(ok("user_{{ item.0.name }}={{ item.1 }}", false)),
            json!({"user_{{ item.0.name }}": "{{ item.1 }}"})
        );
        assert_eq!(
            Value::Object(ok("echo \"x y\" {{ a | default('p q') }}", true)),
            json!({"_raw_params": "echo \"x y\" {{ a | default('p q') }}"})
        );
        let script = "set -e\nif [ -f x ]; then\n  echo y\nfi\n";
        // Not decoded: raw command text stays as written.
        assert_eq!(
            Value::Object(ok(r"printf 'a\n' creates=/x\ty", true)),
            json!({"_raw_params": r"printf 'a\n'", "creates": "/x\ty"})
        );
        assert_eq!(
            Value::Object(ok(script, true)),
            json!({"_raw_params": script})
        );
    }

    /// Ansible decodes escapes in `key=value` options (found by the Ansible differential
    /// test: `copy: content="{{ s }}\n" dest=...` writes a newline, not a backslash and n).
    #[test]
    fn options_have_their_escapes_decoded() {
        let args = ok(
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
            Value::Object(ok(text, true)),
            json!({"_raw_params": "echo this is a \"multiline echo\" \"with a new line\nin quotes\" | cat\necho \"second\"\n"})
        );
        let text = "executable=\"/bin/bash\"\ncreates=/tmp/x\necho \"test\"\n";
        assert_eq!(
            Value::Object(ok(text, true)),
            json!({"executable": "/bin/bash", "creates": "/tmp/x", "_raw_params": "echo \"test\"\n"})
        );
        // Not one of the options Ansible takes from a command line.
        assert_eq!(
            Value::Object(ok("echo a expand_argument_vars=false", true)),
            json!({"_raw_params": "echo a expand_argument_vars=false"})
        );
        // Only escaped `=`: command text, unescaped.
        assert_eq!(
            Value::Object(ok("a\\=b", false)),
            json!({"_raw_params": "a=b"})
        );
    }
}
