//! Runner start-up time: spawn to first task event, and whole-process wall time.
//!
//! Prints figures, asserts nothing about time (it does check that each run succeeded,
//! since a refused payload would be fast for the wrong reason). Three cases:
//! the bare runner's `--version` (exec cost alone, no payload), a packed 1-task `debug`
//! plan (locate + verify + decompress + decode + first task), and a packed 50-task
//! debug/set_fact plan (adds the per-task cost).
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
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs per case; enough for a stable median and p90 while the bench stays in seconds.
const RUNS: usize = 50;
const TRIPLE: &str = "x86_64-unknown-linux-musl";

/// One measured run.
struct Sample {
    /// Spawn to the first `"type":"task"` line on stdout (`None` for `--version`).
    first_task: Option<Duration>,
    /// Spawn to exit.
    total: Duration,
}

fn main() {
    let runner_path = rustle_tests::runner_path(TRIPLE);
    let runner = std::fs::read(&runner_path).unwrap();
    let work = tempfile::tempdir().unwrap();
    // An empty HOME: no `~/.rustle/trusted_keys` of the person running the bench can add
    // keys (or a broken file) to what the runner reads.
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();

    let signing = SigningKey::from_bytes(&[7; 32]);
    let key_file = work.path().join("trusted.pub");
    std::fs::write(
        &key_file,
        format!(
            "{}\n",
            rustle_runner::trust::format_key(&signing.verifying_key(), "bench")
        ),
    )
    .unwrap();

    println!("runner start-up benchmark: {RUNS} runs per case, times in ms");
    println!("runner: {} ({} bytes)", runner_path.display(), runner.len());
    println!(
        "{:<44} {:^26}   {:^26}",
        "", "spawn -> first task event", "spawn -> exit"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "case", "median", "p90", "min", "median", "p90", "min"
    );

    let bare = measure(
        RUNS,
        || {
            let mut cmd = Command::new(&runner_path);
            cmd.arg("--version");
            cmd
        },
        &home,
        false,
    );
    report("bare runner --version (no payload)", &bare);

    let mut totals = Vec::new();
    for (label, plan) in [
        ("1 task (debug)", plan_of(debug_tasks(1))),
        ("50 tasks (debug/set_fact)", plan_of(debug_tasks(50))),
    ] {
        let (exe, digest, payload_len) = packed_runner(&plan, &signing, &runner, work.path());
        let samples = measure(
            RUNS,
            || {
                let mut cmd = Command::new(&exe);
                cmd.arg("--expect")
                    .arg(&digest)
                    .arg("--trusted-key")
                    .arg(&key_file);
                cmd
            },
            &home,
            true,
        );
        report(&format!("{label}, payload {payload_len} B"), &samples);
        totals.push(median(samples.iter().map(|s| s.total).collect()));
    }
    let per_task = totals[1].saturating_sub(totals[0]) / 49;
    println!(
        "per-task overhead (50-task total - 1-task total) / 49: {:.3} ms",
        ms(per_task)
    );
}

/// `n` tasks alternating `set_fact` and a `debug` that reads the fact back, so each
/// debug renders a template against variables the run itself made.
fn debug_tasks(n: usize) -> Vec<Value> {
    if n == 1 {
        return vec![
            json!({"name": "hello", "module": "debug", "args": {"msg": "hello from {{ inventory_hostname }}"}}),
        ];
    }
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                json!({"name": format!("fact {i}"), "module": "set_fact", "args": {format!("v{i}"): format!("value {i} on {{{{ inventory_hostname }}}}")}})
            } else {
                json!({"name": format!("show {i}"), "module": "debug", "args": {"msg": format!("{{{{ v{} }}}}", i - 1)}})
            }
        })
        .collect()
}

fn plan_of(tasks: Vec<Value>) -> DeployPlan {
    serde_json::from_value(json!({
        "format": rustle_runner::plan::PLAN_FORMAT,
        "version": rustle_runner::plan::PLAN_VERSION,
        "plays": [{"name": "startup", "hosts": ["all"], "gather_facts": false, "tasks": tasks}]
    }))
    .unwrap()
}

/// Packs `plan` for localhost with the deployer's own code path and writes the runner
/// (mode 0755) under `dir`. Returns its path, the `--expect` digest and the payload size.
fn packed_runner(
    plan: &DeployPlan,
    signing: &SigningKey,
    runner: &[u8],
    dir: &Path,
) -> (PathBuf, String, usize) {
    let settings = PayloadSettings {
        deployment_id: "20250101T000000Z-startup".into(),
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
    assert_eq!(jobs.len(), 1, "localhost inventory gives one job");
    let job = &jobs[0];
    let packed = pack::pack(&job.host.name, job.triple, runner, &job.sealed).unwrap();
    let exe = dir.join(format!("rustle-runner-{}", job.tasks));
    deploy::write_atomic(&exe, &packed, 0o755).unwrap();
    (exe, job.digest.to_hex(), job.sealed.len())
}

/// Runs the command `runs` times (after one unmeasured warm-up run that puts the
/// executable in the page cache), with a clean environment.
fn measure(
    runs: usize,
    make: impl Fn() -> Command,
    home: &Path,
    expect_tasks: bool,
) -> Vec<Sample> {
    let run = || {
        let mut cmd = make();
        cmd.env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let mut first_task = None;
        let mut lines = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if first_task.is_none() && line.contains("\"type\":\"task\"") {
                first_task = Some(start.elapsed());
            }
            lines.push(line);
        }
        // stderr holds only the one-line recap, far below a pipe's capacity, so reading
        // it after stdout cannot deadlock.
        let out = child.wait_with_output().unwrap();
        let total = start.elapsed();
        if !out.status.success() || (expect_tasks && first_task.is_none()) {
            panic!(
                "runner run failed ({}): stdout {:?} stderr {}",
                out.status,
                lines,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Sample { first_task, total }
    };
    run();
    (0..runs).map(|_| run()).collect()
}

fn report(label: &str, samples: &[Sample]) {
    let totals: Vec<Duration> = samples.iter().map(|s| s.total).collect();
    let firsts: Vec<Duration> = samples.iter().filter_map(|s| s.first_task).collect();
    let first = if firsts.is_empty() {
        format!("{:>8} {:>8} {:>8}", "-", "-", "-")
    } else {
        let (m, p, lo) = stats(firsts);
        format!("{m:>8.3} {p:>8.3} {lo:>8.3}")
    };
    let (m, p, lo) = stats(totals);
    println!("{label:<44} {first}   {m:>8.3} {p:>8.3} {lo:>8.3}");
}

/// Median, p90 and min, in milliseconds.
fn stats(mut d: Vec<Duration>) -> (f64, f64, f64) {
    d.sort_unstable();
    let p90 = d[(d.len() * 9 / 10).min(d.len() - 1)];
    (ms(d[d.len() / 2]), ms(p90), ms(d[0]))
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort_unstable();
    d[d.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
