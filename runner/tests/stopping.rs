//! A runner whose deployer has gone away ends what its tasks started: a command with
//! every process it started, and a `become_user` module child. Its own test binary,
//! because marking the deployer gone is for the whole process. Needs root (a test user).
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
use rustle_runner::privilege::RunAs;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "rustle-stop-alice";

/// The test user, created on first use (useradd is retried while another test holds the
/// passwd lock).
fn user(name: &str) -> RunAs {
    for _ in 0..200 {
        if let Some(u) = RunAs::lookup(name) {
            return u;
        }
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", name])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("could not create test user {name}")
}

fn plan(task: Value) -> HostPlan {
    serde_json::from_value(json!({
        "deployment_id": "test",
        "host": "web1",
        "created_at": 0,
        "packer_version": "0",
        "check_mode": false,
        "diff_mode": false,
        "host_vars": {"inventory_hostname": "web1"},
        "plays": [{"name": "p", "hosts": ["all"], "become": true, "tasks": [task]}],
        "files": {},
    }))
    .unwrap()
}

/// Runs `plan` on a thread; its task results arrive on the channel.
fn start(
    plan: HostPlan,
    runner: Option<String>,
) -> std::sync::mpsc::Receiver<Vec<(String, String, Value)>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Collect::default();
        let host = match runner {
            Some(r) => Local::with_runner(r),
            None => Local::default(),
        };
        Executor::with_host(&plan, &mut sink, RunOptions::default(), Box::new(host)).run();
        let tasks = sink
            .0
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
            .collect();
        let _ = tx.send(tasks);
    });
    rx
}

/// The pid written to `path`, once it is there.
fn pid_in(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` has ended (gone, or a zombie nobody reaps in this container).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits (up to 15 s) for `pid` to end.
fn ends_soon(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ended(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Stopping killed only the `sh -c` of a shell task, so what it had started ran on; and
/// a `become_user` module child was waited for with no way to stop it. Both end now,
/// with everything they started, and their tasks say why.
#[test]
fn a_gone_deployer_ends_commands_and_module_children_with_what_they_started() {
    assert!(
        rustle_runner::facts::current_uid() == Some(0),
        "switching users needs root: run the tests as root, as CI does"
    );
    user(ALICE);
    let dir = tempfile::tempdir().unwrap();
    // The child runs as alice and writes its pid here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let at = |n: &str| -> PathBuf { dir.path().join(n) };

    let command = start(
        plan(
            json!({"name": "long", "module": "shell", "args": {"_raw_params": format!(
                "sleep 120 & echo $! > {}; wait", at("command.pid").display()
            )}}),
        ),
        None,
    );
    let runner = at("slow-runner");
    std::fs::write(
        &runner,
        format!(
            "#!/bin/sh\ncat >/dev/null\nsleep 120 &\necho $! > {}\nwait\n",
            at("child.pid").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = start(
        plan(json!({"name": "long", "module": "copy",
                    "args": {"content": "x", "dest": at("never").display().to_string()},
                    "become_user": ALICE})),
        Some(runner.display().to_string()),
    );
    let command_grandchild = pid_in(&at("command.pid"));
    let child_grandchild = pid_in(&at("child.pid"));

    rustle_runner::events::mark_deployer_gone();

    let wait = Duration::from_secs(60);
    let tasks = command
        .recv_timeout(wait)
        .expect("the shell task was not stopped");
    let (_, status, result) = &tasks[0];
    assert_eq!(status, "failed");
    assert!(
        result["msg"].as_str().unwrap().starts_with("stopped: "),
        "{result}"
    );
    assert!(
        ends_soon(command_grandchild),
        "what the command started still runs"
    );

    let tasks = child
        .recv_timeout(wait)
        .expect("the module child was not stopped");
    let (_, status, result) = &tasks[0];
    assert_eq!(status, "failed");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("copy as user '{ALICE}': stopped: ")),
        "{msg}"
    );
    assert!(
        ends_soon(child_grandchild),
        "what the module child started still runs"
    );
    assert!(!at("never").exists());
}
