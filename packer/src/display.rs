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

/// `json.dumps(value, sort_keys=True, ensure_ascii=False)`, as Ansible's callbacks
/// print results: on one line with Python's separators (`", "`, `": "`), or with
/// `indent` spaces per level.
pub fn json_text(value: &Value, indent: Option<usize>) -> String {
    use rustle_runner::template::{py_json_dumps, sort_keys};
    py_json_dumps(&sort_keys(value), indent, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_written_as_pythons_json_dumps_writes_it() {
        let v = json!({"b": [1, {"y": null, "x": "é\n"}], "a": true, "c": {}, "f": [1e20, 2.0]});
        // json.dumps(v, sort_keys=True, ensure_ascii=False)
        assert_eq!(
            json_text(&v, None),
            r#"{"a": true, "b": [1, {"x": "é\n", "y": null}], "c": {}, "f": [1e+20, 2.0]}"#
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
