//! Task results as Ansible's stdout callbacks show them: what they leave out of a result
//! (`_clean_results`, `_dump_results`) and Python's `json.dumps` text forms, for the
//! deployer's task lines ([`crate::deploy::task_line`]) and the ad-hoc mode
//! ([`crate::adhoc`]).

use serde_json::Value;

/// The keys Ansible's callbacks keep of a `debug` result that has a `msg`.
const DEBUG_ALLOWED: &[&str] = &["msg", "exception", "warnings", "deprecations"];
/// The keys they drop from a `debug` result that shows a variable (`var=`).
const HIDE_IN_DEBUG: &[&str] = &["changed", "failed", "skipped", "invocation", "skip_reason"];

/// `result` as Ansible's callbacks print it at `verbosity`: a `debug` result cut to its
/// message (or its variable), then without the `_ansible_*` keys, `exception`,
/// `warnings` and `deprecations` (shown apart), and `invocation` and `diff` below
/// `-vvv`.
pub fn clean(result: &Value, module: &str, verbosity: u8) -> Value {
    let Value::Object(m) = result else {
        return result.clone();
    };
    let debug = rustle_runner::modules::canonical(module) == "debug";
    let has_msg = m.contains_key("msg");
    let kept = m
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            !(debug && has_msg && !DEBUG_ALLOWED.contains(&k) && !k.starts_with('_')
                || debug && !has_msg && HIDE_IN_DEBUG.contains(&k)
                || k.starts_with("_ansible_")
                || matches!(k, "exception" | "warnings" | "deprecations")
                || verbosity < 3 && matches!(k, "invocation" | "diff"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// `json.dumps(value, sort_keys=True)`: on one line with Python's separators (`", "`,
/// `": "`), or with `indent` spaces per level as `indent=N` writes it.
pub fn json_text(value: &Value, indent: Option<usize>) -> String {
    use serde::Serialize as _;
    let sorted = sort_keys(value);
    let mut out = Vec::new();
    let written = match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
            sorted.serialize(&mut serde_json::Serializer::with_formatter(&mut out, fmt))
        }
        None => sorted.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PythonSeparators,
        )),
    };
    match written {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => value.to_string(),
    }
}

/// Objects with their keys in sorted order, at every depth (`sort_keys=True`, whatever
/// order the map type keeps).
fn sort_keys(value: &Value) -> Value {
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

/// serde_json's compact form with the spaces Python's `json.dumps` puts after `,` and
/// `:`.
struct PythonSeparators;

/// Python's item separator, before every item but the first.
fn item_separator<W: ?Sized + std::io::Write>(writer: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

impl serde_json::ser::Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_written_as_pythons_json_dumps_writes_it() {
        let v = json!({"b": [1, {"y": null, "x": "é\n"}], "a": true, "c": {}});
        // json.dumps(v, sort_keys=True, ensure_ascii=False)
        assert_eq!(
            json_text(&v, None),
            r#"{"a": true, "b": [1, {"x": "é\n", "y": null}], "c": {}}"#
        );
        // json.dumps({"msg": "A", "z": [1]}, sort_keys=True, indent=4)
        assert_eq!(
            json_text(&json!({"z": [1], "msg": "A"}), Some(4)),
            "{\n    \"msg\": \"A\",\n    \"z\": [\n        1\n    ]\n}"
        );
    }

    #[test]
    fn debug_results_are_cut_as_ansibles_callbacks_cut_them() {
        let with_msg =
            json!({"msg": "A", "changed": false, "failed": false, "_ansible_verbose_always": true});
        assert_eq!(clean(&with_msg, "debug", 0), json!({"msg": "A"}));
        let with_var = json!({"x": 1, "changed": false, "failed": false});
        assert_eq!(
            clean(&with_var, "ansible.builtin.debug", 0),
            json!({"x": 1})
        );
        // Other modules keep their keys, less what is shown apart or only at -vvv.
        let cmd = json!({"rc": 0, "changed": true, "warnings": ["w"], "invocation": {}});
        assert_eq!(clean(&cmd, "command", 1), json!({"rc": 0, "changed": true}));
        assert_eq!(
            clean(&cmd, "command", 3),
            json!({"rc": 0, "changed": true, "invocation": {}})
        );
    }
}
