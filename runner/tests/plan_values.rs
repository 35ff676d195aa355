//! Plan values at the edge of what the playbook loader accepts: the runner must turn
//! each into a task result, never a panic (the shipped runner aborts on panic, leaving
//! no report and no state record).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use rustle_runner::events::{Collect, Event};
use rustle_runner::exec::{Executor, RunOptions};
use rustle_runner::plan::HostPlan;
use serde_json::{Value, json};

/// Runs one play of `tasks` and returns each task's (name, status, result).
fn run(tasks: Value) -> Vec<(String, String, Value)> {
    let plan: HostPlan = serde_json::from_value(json!({
        "deployment_id": "test",
        "host": "web1",
        "created_at": 0,
        "packer_version": "0",
        "check_mode": false,
        "diff_mode": false,
        "host_vars": {"inventory_hostname": "web1"},
        "plays": [{"name": "p", "hosts": ["all"], "tasks": tasks}],
        "files": {},
    }))
    .unwrap();
    let mut sink = Collect::default();
    Executor::new(&plan, &mut sink, RunOptions::default()).run();
    sink.0
        .into_iter()
        .filter_map(|e| match e {
            Event::Task {
                name,
                status,
                result,
                ..
            } => Some((name, status.as_str().to_string(), result)),
            _ => None,
        })
        .collect()
}

/// `loop_control.pause: 1e20` once panicked in `Duration::from_secs_f64`; it is
/// longer than any sleep (Python's time.sleep refuses it too), so the task fails
/// naming the setting, and the play goes on to report it.
#[test]
fn a_loop_pause_longer_than_any_sleep_fails_the_task_without_a_panic() {
    for pause in [1e20, 1e300, 9.3e9] {
        let got = run(json!([
            {"name": "paused", "module": "debug", "args": {"msg": "{{ item }}"},
             "loop": [1, 2], "loop_control": {"pause": pause}, "ignore_errors": true},
            {"name": "after", "module": "debug", "args": {"msg": "still here"}},
        ]));
        let (name, status, result) = &got[0];
        assert_eq!(
            (name.as_str(), status.as_str()),
            ("paused", "failed"),
            "{got:?}"
        );
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.contains("loop_control.pause"), "{msg}");
        assert_eq!(got[1].1, "ok", "{got:?}");
    }
    // One item never pauses, so its pause is never looked at (as in Ansible).
    let got = run(json!([
        {"name": "single", "module": "debug", "args": {"msg": "x"},
         "loop": [1], "loop_control": {"pause": 1e20}},
    ]));
    assert_eq!(got[0].1, "ok", "{got:?}");
}
