//! Custom modules: the registry a custom runner fills at start-up, and the small,
//! stable contract its modules are written against.
//!
//! A plan may carry Rust source for modules of its own (`modules` in the plan). The packer
//! then builds a runner whose `main` calls [`crate::cli::main_with`] with one
//! `(name, run)` pair per module; everything else is the generic runner, unchanged. The
//! generic runner registers nothing, so for it this file does nothing at all.
//!
//! The contract (documented for plan authors in `docs/plan-format.md`) is deliberately
//! plain JSON in and out, not the runner's internal [`Outcome`]/[`Ctx`] types, so a
//! module keeps compiling when the runner's internals change.

use super::Outcome;
use crate::plan::Vars;
use serde_json::Value;
use std::sync::OnceLock;

/// A custom module's entry point: the task's rendered arguments and whether the task
/// runs in check mode, to the registered result fields (`changed`, `failed`, `skipped`,
/// `msg`, anything else). `Err(msg)` fails the task with `msg`.
pub type CustomFn = fn(&Vars, bool) -> Result<Vars, String>;

/// The modules compiled into this runner; empty (never set) in the generic runner.
static REGISTRY: OnceLock<Vec<(&'static str, CustomFn)>> = OnceLock::new();

/// Registers the custom modules. Only the first call counts (a runner registers once, at
/// start-up); returns false for a later one.
pub fn register(modules: &[(&'static str, CustomFn)]) -> bool {
    REGISTRY.set(modules.to_vec()).is_ok()
}

/// The names of the registered custom modules, in registration order.
pub fn names() -> Vec<&'static str> {
    REGISTRY
        .get()
        .map(|m| m.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default()
}

/// The registered module called `name`, if any.
pub fn find(name: &str) -> Option<CustomFn> {
    REGISTRY
        .get()?
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// Calls a custom module and turns its JSON answer into an [`Outcome`]. A module that
/// panics fails its task instead of taking the whole run down (custom runners are built
/// with unwinding for this reason): the host still reports every task and its recap.
pub fn call(name: &str, f: CustomFn, args: &Vars, check_mode: bool) -> Outcome {
    let answer = std::panic::catch_unwind(|| f(args, check_mode));
    match answer {
        Ok(Ok(fields)) => outcome_of(name, fields),
        Ok(Err(msg)) => Outcome::fail(msg),
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Outcome::fail(format!("custom module '{name}' panicked: {why}"))
        }
    }
}

/// `changed`, `failed` and `skipped` must be booleans and `msg` a string when present:
/// a module that answers otherwise fails its task, rather than having a value guessed.
fn outcome_of(name: &str, mut fields: Vars) -> Outcome {
    let mut out = Outcome::ok();
    for key in ["changed", "failed", "skipped"] {
        let value = match fields.shift_remove(key) {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Outcome::fail(format!(
                    "custom module '{name}' returned '{key}': {other}, not a boolean"
                ));
            }
        };
        match key {
            "changed" => out.changed = value,
            "failed" => out.failed = value,
            _ => out.skipped = value,
        }
    }
    match fields.shift_remove("msg") {
        None => {}
        Some(Value::String(m)) => out.msg = Some(m),
        Some(other) => {
            return Outcome::fail(format!(
                "custom module '{name}' returned 'msg': {other}, not a string"
            ));
        }
    }
    out.data = fields;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Vars {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn echo(args: &Vars, check_mode: bool) -> Result<Vars, String> {
        let mut out = args.clone();
        out.insert("check".into(), check_mode.into());
        Ok(out)
    }

    fn refuse(_: &Vars, _: bool) -> Result<Vars, String> {
        Err("argument 'x' is required".into())
    }

    fn explode(_: &Vars, _: bool) -> Result<Vars, String> {
        panic!("boom")
    }

    #[test]
    fn answers_become_outcomes() {
        let out = call(
            "echo",
            echo,
            &vars(json!({"changed": true, "msg": "hi", "path": "/x"})),
            true,
        );
        assert!(out.changed && !out.failed && !out.skipped);
        assert_eq!(out.msg.as_deref(), Some("hi"));
        assert_eq!(
            Value::Object(out.data),
            json!({"path": "/x", "check": true})
        );

        let out = call("refuse", refuse, &Vars::new(), false);
        assert!(out.failed);
        assert_eq!(out.msg.as_deref(), Some("argument 'x' is required"));

        let out = call("echo", echo, &vars(json!({"changed": "yes"})), false);
        assert!(out.failed);
        assert!(
            out.msg
                .unwrap()
                .contains("'changed': \"yes\", not a boolean")
        );

        let out = call("echo", echo, &vars(json!({"msg": 3})), false);
        assert!(out.failed);
        assert!(out.msg.unwrap().contains("'msg': 3, not a string"));
    }

    #[test]
    fn a_panic_fails_the_task() {
        let out = call("explode", explode, &Vars::new(), false);
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some("custom module 'explode' panicked: boom")
        );
    }

    // The registry is process-wide and set once: one test owns it, and checks that the
    // module runner dispatches to it while built-in modules keep precedence.
    #[test]
    fn registered_modules_are_run_by_name() {
        assert!(register(&[("echo_mod", echo), ("refuse_mod", refuse)]));
        assert!(!register(&[("other", echo)]), "only the first call counts");
        assert_eq!(names(), vec!["echo_mod", "refuse_mod"]);
        assert!(find("other").is_none());
        let files = Default::default();
        let out = super::super::run_for_test(
            "echo_mod",
            &vars(json!({"a": 1})),
            &files,
            &json!({}),
            true,
        )
        .unwrap();
        assert_eq!(Value::Object(out.data), json!({"a": 1, "check": true}));
        let e = super::super::run_for_test("nope", &Vars::new(), &files, &json!({}), false);
        assert_eq!(
            e,
            Err(super::super::ModuleError::Unsupported("nope".into()))
        );
    }
}
