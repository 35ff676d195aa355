//! `rustle-deploy adhoc`: Ansible's ad-hoc mode (`ansible PATTERN -m MODULE -a ARGS`).
//!
//! The one task is turned into the play ansible-core's `AdHocCLI._play_ds` builds (`name:
//! Ansible Ad-Hoc`, `hosts: PATTERN`, `gather_facts: no`), which then goes through the
//! playbook loader, the packer and the runners like any other play; only the output
//! differs: one `host | STATUS => {result}` block per host, as Ansible's `minimal`
//! callback prints it, and no recap.

use crate::deploy::printable;
use crate::display::{clean, json_text};
use rustle_runner::events::{Event, Status};
use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};

/// The modules whose argument is a command line (Ansible's `MODULE_REQUIRE_ARGS` minus
/// the includes), whose output Ansible prints as text (`MODULE_NO_JSON`).
const NO_JSON: &[&str] = &["command", "shell", "raw", "win_command", "win_shell"];

/// The play Ansible's ad-hoc command runs: `args` is a JSON mapping when it is written
/// as one (`-a '{"msg": "hi"}'`), otherwise free-form text the loader splits as
/// Ansible's `parse_kv` does (`-a 'msg=hi'`, `-a 'echo hi'` for command modules).
pub fn play(pattern: &str, module: &str, args: &str) -> Yaml {
    let trimmed = args.trim();
    let json = (trimmed.starts_with('{') && trimmed.ends_with('}'))
        .then(|| serde_json::from_str::<serde_json::Map<String, Value>>(trimmed).ok())
        .flatten()
        .filter(|m| !m.is_empty());
    let args = match json {
        Some(map) => serde_norway::to_value(map).unwrap_or(Yaml::Null),
        None if args.is_empty() => Yaml::Null,
        None => Yaml::String(args.to_string()),
    };
    let mut task = Mapping::new();
    task.insert(Yaml::String(module.to_string()), args);
    let mut play = Mapping::new();
    play.insert("name".into(), "Ansible Ad-Hoc".into());
    play.insert("hosts".into(), pattern.into());
    play.insert("gather_facts".into(), Yaml::Bool(false));
    play.insert("tasks".into(), Yaml::Sequence(vec![Yaml::Mapping(task)]));
    Yaml::Sequence(vec![Yaml::Mapping(play)])
}

/// A task's outcome as Ansible's `minimal` callback prints it: `host | SUCCESS => {...}`
/// (`CHANGED`, `FAILED!`), the result indented by four spaces with sorted keys;
/// command-line modules as `host | CHANGED | rc=0 >>` and their output; `host |
/// SKIPPED`. Every line goes through [`printable`]: the result comes from the host.
pub fn line(host: &str, ev: &Event) -> Option<String> {
    let Event::Task {
        status,
        result,
        module,
        ..
    } = ev
    else {
        return None;
    };
    let state = match status {
        Status::Skipped => return Some(format!("{} | SKIPPED", printable(host))),
        Status::Failed => "FAILED!",
        Status::Unreachable => "UNREACHABLE!",
        Status::Changed => "CHANGED",
        Status::Ok => "SUCCESS",
    };
    if NO_JSON.contains(&rustle_runner::modules::canonical(module))
        && result.get("module_stderr").is_none()
    {
        // Ansible's `_command_generic_msg`: the caption without the `!`, then stdout,
        // stderr and msg run together, and a blank line.
        let text = |k: &str| result.get(k).and_then(Value::as_str).unwrap_or("");
        let out = format!(
            "{} | {} | rc={} >>\n{}{}{}\n",
            printable(host),
            state.trim_end_matches('!'),
            result.get("rc").unwrap_or(&Value::from(-1)),
            text("stdout"),
            text("stderr"),
            text("msg"),
        );
        return Some(lines_printable(&out));
    }
    Some(format!(
        "{} | {state} => {}",
        printable(host),
        lines_printable(&json_text(&clean(result, module, 0), Some(4)))
    ))
}

/// What a host that could not be reached prints instead of a task result.
pub fn unreachable_line(host: &str, why: &str) -> String {
    let result = serde_json::json!({"changed": false, "msg": why, "unreachable": true});
    format!(
        "{} | UNREACHABLE! => {}",
        printable(host),
        lines_printable(&json_text(&result, Some(4)))
    )
}

/// [`printable`] line by line: the block's own line breaks stay, anything else a host
/// sent that could move the cursor is escaped.
fn lines_printable(text: &str) -> String {
    text.split('\n')
        .map(|l| printable(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(module: &str, status: Status, result: Value) -> Event {
        Event::Task {
            v: 1,
            play: "Ansible Ad-Hoc".into(),
            name: module.into(),
            module: module.into(),
            status,
            ignored: false,
            handler: false,
            role: None,
            duration_ms: 1.0,
            result,
        }
    }

    #[test]
    fn args_are_json_when_written_as_a_json_mapping_and_free_form_otherwise() {
        let tasks = |y: &Yaml| y[0]["tasks"][0].clone();
        let p = play("web", "debug", r#"{"msg": "hi", "verbosity": 0}"#);
        assert_eq!(tasks(&p)["debug"]["msg"], Yaml::from("hi"));
        assert_eq!(p[0]["hosts"], Yaml::from("web"));
        assert_eq!(p[0]["gather_facts"], Yaml::Bool(false));
        // Not JSON after all (Ansible falls back to parse_kv): kept as text.
        let p = play("all", "debug", "{msg=hi}");
        assert_eq!(tasks(&p)["debug"], Yaml::from("{msg=hi}"));
        let p = play("all", "command", "echo a=b");
        assert_eq!(tasks(&p)["command"], Yaml::from("echo a=b"));
        let p = play("all", "ping", "");
        assert_eq!(tasks(&p)["ping"], Yaml::Null);
    }

    #[test]
    fn results_print_as_ansibles_minimal_callback() {
        let ev = task(
            "debug",
            Status::Ok,
            serde_json::json!({"msg": "nobody", "changed": false, "_ansible_no_log": false}),
        );
        assert_eq!(
            line("localhost", &ev).as_deref(),
            Some("localhost | SUCCESS => {\n    \"msg\": \"nobody\"\n}")
        );
        let ev = task(
            "ansible.builtin.command",
            Status::Changed,
            serde_json::json!({"rc": 0, "stdout": "hi", "stderr": "", "changed": true}),
        );
        assert_eq!(
            line("h1", &ev).as_deref(),
            Some("h1 | CHANGED | rc=0 >>\nhi\n")
        );
        let ev = task("file", Status::Skipped, serde_json::json!({}));
        assert_eq!(line("h1", &ev).as_deref(), Some("h1 | SKIPPED"));
        let ev = task(
            "command",
            Status::Failed,
            serde_json::json!({"rc": 1, "stderr": "no\n", "msg": "bad\u{1b}[2J", "failed": true}),
        );
        let out = line("h1", &ev).unwrap_or_default();
        assert!(out.starts_with("h1 | FAILED | rc=1 >>\nno\nbad"), "{out}");
        let ev = task(
            "copy",
            Status::Failed,
            serde_json::json!({"msg": "bad\u{202e}", "failed": true}),
        );
        let out = line("h1", &ev).unwrap_or_default();
        assert!(out.starts_with("h1 | FAILED! => {"), "{out}");
        assert!(
            !out.contains('\u{202e}'),
            "bidi overrides are escaped: {out}"
        );
        assert!(
            !out.contains('\u{1b}'),
            "escape sequences are escaped: {out}"
        );
    }
}
