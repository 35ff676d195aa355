//! A 1000-task plan of mixed file, template, copy and command tasks, run locally by a
//! packed runner: total time, time per task by module, and the executor's own cost per
//! task (a plan of 1000 `debug` tasks that do no work at all).
//!
//! Prints figures and asserts nothing about time; it does check every run succeeded and
//! that the second run changed nothing, since a failing or skipped task would be fast
//! for the wrong reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ed25519_dalek::SigningKey;
use rustle_deploy::deploy;
use rustle_deploy::inventory::Inventory;
use rustle_deploy::pack::{self, PayloadSettings};
use rustle_runner::plan::DeployPlan;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TRIPLE: &str = "x86_64-unknown-linux-musl";
const TASKS: usize = 1000;

fn main() {
    let runner = std::fs::read(rustle_tests::runner_path(TRIPLE)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let target = work.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let signing = SigningKey::from_bytes(&[9; 32]);
    let key_file = work.path().join("trusted.pub");
    std::fs::write(
        &key_file,
        format!(
            "{}\n",
            rustle_runner::trust::format_key(&signing.verifying_key(), "bench")
        ),
    )
    .unwrap();

    println!("{TASKS}-task plan, run locally by a packed {TRIPLE} runner");
    let mixed = packed(
        &mixed_plan(&target),
        &signing,
        &runner,
        work.path(),
        "mixed",
    );
    let noop = packed(&noop_plan(), &signing, &runner, work.path(), "noop");

    let first = run(&mixed, &key_file, &home);
    let second = run(&mixed, &key_file, &home);
    assert_eq!(first.changed, TASKS, "the first run changes every task");
    assert_eq!(second.changed, 0, "the second run changes nothing");
    let idle = run(&noop, &key_file, &home);

    println!(
        "{:<34} {:>10} {:>12} {:>14}",
        "run", "wall (ms)", "per task", "outside tasks"
    );
    for (label, r) in [
        ("mixed, first run (all change)", &first),
        ("mixed, second run (all ok)", &second),
        ("1000 x debug (executor alone)", &idle),
    ] {
        let inside: f64 = r.per_module.values().flat_map(|v| v.iter()).sum();
        println!(
            "{label:<34} {:>10.1} {:>9.3} ms {:>11.1} ms",
            ms(r.wall),
            ms(r.wall) / TASKS as f64,
            ms(r.wall) - inside
        );
    }
    println!("mean time inside each task, by module (ms; from the runner's task events):");
    println!(
        "{:<10} {:>8} {:>12} {:>12}",
        "module", "tasks", "first run", "second run"
    );
    for (module, times) in &first.per_module {
        let again = second.per_module.get(module).cloned().unwrap_or_default();
        println!(
            "{module:<10} {:>8} {:>12.3} {:>12.3}",
            times.len(),
            mean(times),
            mean(&again)
        );
    }
    let idle_task = mean(
        &idle
            .per_module
            .values()
            .flatten()
            .copied()
            .collect::<Vec<_>>(),
    );
    println!(
        "executor overhead per task (a debug task that does nothing): {idle_task:.3} ms inside, {:.3} ms wall",
        ms(idle.wall) / TASKS as f64
    );
}

/// A quarter each of file, template, copy and command tasks, each on its own path, with
/// a few variables in scope as real plays have.
fn mixed_plan(target: &Path) -> DeployPlan {
    let t = target.display();
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| match i % 4 {
            0 => json!({"name": format!("dir {i}"), "module": "file",
                        "args": {"path": format!("{t}/d{i}"), "state": "directory", "mode": "0755"}}),
            1 => json!({"name": format!("template {i}"), "module": "template",
                        "args": {"src": "app.conf.j2", "dest": format!("{t}/t{i}.conf"), "mode": "0644"},
                        "vars": {"index": i}}),
            2 => json!({"name": format!("copy {i}"), "module": "copy",
                        "args": {"content": format!("line {i}\n"), "dest": format!("{t}/c{i}")}}),
            _ => json!({"name": format!("command {i}"), "module": "command",
                        "args": {"_raw_params": format!("touch {t}/m{i}"), "creates": format!("{t}/m{i}")}}),
        })
        .collect();
    plan(
        tasks,
        json!({"app.conf.j2": {"content":
            "# {{ app }} on {{ inventory_hostname }}\nport={{ port + index }}\n{% for u in users %}user={{ u | upper }}\n{% endfor %}"}}),
    )
}

fn noop_plan() -> DeployPlan {
    let tasks = (0..TASKS)
        .map(|i| json!({"name": format!("noop {i}"), "module": "debug", "args": {"msg": "x"}}))
        .collect();
    plan(tasks, json!({}))
}

fn plan(tasks: Vec<Value>, files: Value) -> DeployPlan {
    serde_json::from_value(json!({
        "format": rustle_runner::plan::PLAN_FORMAT,
        "version": rustle_runner::plan::PLAN_VERSION,
        "plays": [{"name": "bench", "hosts": ["all"], "gather_facts": false,
                   "vars": {"app": "bench", "port": 8000, "users": ["ann", "bob", "cy"]},
                   "tasks": tasks}],
        "files": files,
    }))
    .unwrap()
}

/// Packs `plan` for localhost with the deployer's own code and writes the runner.
/// Returns its path and the `--expect` digest.
fn packed(
    plan: &DeployPlan,
    signing: &SigningKey,
    runner: &[u8],
    dir: &Path,
    name: &str,
) -> (PathBuf, String) {
    let settings = PayloadSettings {
        deployment_id: format!("20250101T000000Z-{name}"),
        created_at: 1_735_689_600,
        check_mode: false,
        diff_mode: false,
    };
    let mut plan = plan.clone();
    pack::check_modules(&mut plan).unwrap();
    let mut notes = Vec::new();
    let jobs = deploy::pack_jobs(
        &plan,
        &Inventory::localhost(),
        &settings,
        signing,
        None,
        None,
        &mut notes,
    )
    .unwrap();
    let job = &jobs[0];
    let packed = pack::pack(&job.host.name, job.triple, runner, &job.sealed).unwrap();
    let exe = dir.join(format!("rustle-runner-{name}"));
    deploy::write_atomic(&exe, &packed, 0o755).unwrap();
    (exe, job.digest.to_hex())
}

/// One run's figures.
struct Run {
    wall: Duration,
    changed: usize,
    /// Task durations (ms) reported by the runner, by module.
    per_module: BTreeMap<String, Vec<f64>>,
}

fn run((exe, digest): &(PathBuf, String), key: &Path, home: &Path) -> Run {
    let start = Instant::now();
    let out = Command::new(exe)
        .arg("--expect")
        .arg(digest)
        .arg("--trusted-key")
        .arg(key)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "runner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut per_module: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut changed = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        if event["type"] != "task" {
            continue;
        }
        assert_ne!(event["status"], "failed", "{event}");
        if event["status"] == "changed" {
            changed += 1;
        }
        per_module
            .entry(event["module"].as_str().unwrap().to_string())
            .or_default()
            .push(event["duration_ms"].as_f64().unwrap());
    }
    Run {
        wall,
        changed,
        per_module,
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
