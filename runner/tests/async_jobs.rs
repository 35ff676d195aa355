//! `async` tasks: the module runs as a background job started from the runner executable
//! (`--async-job`), which outlives the run that started it; `poll` waits for it,
//! `async_status` reads it later, a job past its time is ended.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use rustle_runner::events::{Collect, Event};
use rustle_runner::exec::{Executor, RunOptions};
use rustle_runner::modules::Local;
use rustle_runner::plan::HostPlan;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const RUNNER: &str = env!("CARGO_BIN_EXE_rustle-runner");

fn plan(tasks: Value, async_dir: &Path) -> HostPlan {
    serde_json::from_value(json!({
        "deployment_id": "test",
        "host": "web1",
        "created_at": 0,
        "packer_version": "0",
        "check_mode": false,
        "diff_mode": false,
        "host_vars": {"inventory_hostname": "web1", "ansible_async_dir": async_dir.display().to_string()},
        "plays": [{"name": "p", "hosts": ["all"], "tasks": tasks}],
        "files": {},
    }))
    .unwrap()
}

/// Runs the tasks with a runner whose background jobs start from the real runner
/// binary; the `(name, status, result)` of each task.
fn run(tasks: Value, async_dir: &Path) -> Vec<(String, String, Value)> {
    let plan = plan(tasks, async_dir);
    let mut sink = Collect::default();
    Executor::with_host(
        &plan,
        &mut sink,
        RunOptions::default(),
        Box::new(Local::with_runner(RUNNER)),
    )
    .run();
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

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_job_started_with_poll_0_outlives_the_run_and_async_status_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    let marker = dir.path().join("marker");
    let results = run(
        json!([{
            "name": "fire and forget",
            "module": "shell",
            "args": {"_raw_params": format!("sleep 1; echo done > {}; echo out", marker.display())},
            "async": 30, "poll": 0, "register": "job",
        }]),
        &jobs,
    );
    let (_, status, started) = &results[0];
    assert_eq!(status, "changed", "{started}");
    assert_eq!(started["started"], 1);
    assert_eq!(started["finished"], 0);
    let jid = started["ansible_job_id"].as_str().unwrap().to_string();
    assert!(
        regex_like_jid(&jid),
        "job id in Ansible's form j<n>.<pid>: {jid}"
    );
    assert_eq!(
        started["results_file"].as_str().unwrap(),
        jobs.join(&jid).display().to_string()
    );
    // The run is over; the job is not (it sleeps first).
    assert!(!marker.exists(), "the job ran in the foreground");
    let job_file = jobs.join(&jid);
    let running: Value = serde_json::from_slice(&std::fs::read(&job_file).unwrap()).unwrap();
    assert_eq!(running["finished"], 0);
    wait_for("the job to finish", || {
        std::fs::read(&job_file)
            .ok()
            .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
            .is_some_and(|v| v.get("started").is_none())
    });
    assert!(marker.exists());

    // A later run reads the job's result with async_status, then cleans it up.
    let results = run(
        json!([
            {"name": "status", "module": "async_status", "args": {"jid": jid}},
            {"name": "cleanup", "module": "async_status", "args": {"jid": jid, "mode": "cleanup"}},
            {"name": "gone", "module": "async_status", "args": {"jid": jid}, "ignore_errors": true},
        ]),
        &jobs,
    );
    let (_, status, r) = &results[0];
    assert_eq!(status, "changed", "{r}");
    assert_eq!(r["finished"], 1);
    assert_eq!(r["rc"], 0);
    assert_eq!(r["stdout"], "out");
    assert_eq!(r["stdout_lines"], json!(["out"]));
    assert_eq!(r["ansible_job_id"], jid.as_str());
    assert_eq!(results[1].2["erased"], job_file.display().to_string());
    assert!(!job_file.exists());
    assert_eq!(results[2].1, "failed");
    assert_eq!(results[2].2["msg"], "could not find job");
}

fn regex_like_jid(jid: &str) -> bool {
    let Some(rest) = jid.strip_prefix('j') else {
        return false;
    };
    let Some((a, b)) = rest.split_once('.') else {
        return false;
    };
    !a.is_empty()
        && !b.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
}

#[test]
fn poll_waits_for_the_result_and_removes_the_status_file() {
    let dir = tempfile::tempdir().unwrap();
    let results = run(
        json!([{
            "name": "polled",
            "module": "command",
            "args": {"_raw_params": "echo hi"},
            "async": 10, "poll": 1, "register": "r",
        }]),
        dir.path(),
    );
    let (_, status, r) = &results[0];
    assert_eq!(status, "changed", "{r}");
    assert_eq!(r["finished"], 1);
    assert_eq!(r["stdout"], "hi");
    assert_eq!(r["rc"], 0);
    let jid = r["ansible_job_id"].as_str().unwrap();
    assert!(!dir.path().join(jid).exists(), "status file left behind");
}

#[test]
fn a_job_past_its_time_is_ended_and_the_task_fails() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("late");
    // The job may run 1 s; the task looks after 3 s: the job was ended at 1 s, and what
    // it started with it (the marker is never written).
    let results = run(
        json!([{
            "name": "too long",
            "module": "shell",
            "args": {"_raw_params": format!("sleep 2; touch {}", marker.display())},
            "async": 1, "poll": 3,
        }]),
        dir.path(),
    );
    let (_, status, r) = &results[0];
    assert_eq!(status, "failed", "{r}");
    assert_eq!(r["msg"], "Timeout exceeded", "{r}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !marker.exists(),
        "the job's command outlived its time limit"
    );
}

#[test]
fn a_poll_that_outlasts_the_limit_fails_with_ansibles_message() {
    let dir = tempfile::tempdir().unwrap();
    // Polled every second for 2 s, the job (5 s long, limit 30) is still running.
    let results = run(
        json!([{
            "name": "slow",
            "module": "command",
            "args": {"_raw_params": "sleep 5"},
            "async": 2, "poll": 1,
            "vars": {},
        }]),
        dir.path(),
    );
    let (_, status, r) = &results[0];
    assert_eq!(status, "failed", "{r}");
    // The job's own limit is 2 s too: whichever is seen first, the task fails naming
    // the time (Ansible's poller and wrapper race the same way).
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg == "async task did not complete within the requested time - 2s"
            || msg == "Timeout exceeded",
        "{r}"
    );
}

#[test]
fn modules_whose_action_has_no_async_support_fail_as_in_ansible() {
    let dir = tempfile::tempdir().unwrap();
    let results = run(
        json!([{
            "name": "copy in the background",
            "module": "ansible.builtin.copy",
            "args": {"content": "x", "dest": dir.path().join("f").display().to_string()},
            "async": 10, "poll": 1,
        }]),
        dir.path(),
    );
    let (_, status, r) = &results[0];
    assert_eq!(status, "failed");
    assert_eq!(
        r["msg"],
        "This action (ansible.builtin.copy) does not support async."
    );
    assert!(!dir.path().join("f").exists());
}
