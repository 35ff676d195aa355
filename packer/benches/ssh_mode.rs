//! Binary mode against SSH mode (`--strategy ssh`): the fleet benchmark's 25-step plan
//! on the same 20 real sshd hosts, first and second run of each, the hosts' work
//! directories cleared between the modes. Prints the figures side by side; the spec's
//! success criterion is binary mode at least 5x faster. Asserts nothing about them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

// The SSH tests' host helpers; the benchmark uses only some of them.
#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd;

#[path = "support/plan.rs"]
mod fleet_plan;
use fleet_plan::{busy_seconds, plan};

use serde_json::Value;
use std::process::Command;
use std::time::Instant;

const HOSTS: usize = 20;

fn main() {
    let lab = sshd::Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan()).unwrap()).unwrap();
    let hosts: Vec<sshd::Sshd> = (0..HOSTS)
        .map(|i| lab.start(&format!("s{i}"), &format!("rustle-s{i}")))
        .collect();
    let refs: Vec<&sshd::Sshd> = hosts.iter().collect();
    lab.trust(&refs);
    let inv = lab.inventory(&refs);
    println!("{HOSTS} hosts, 25-step plan, binary mode against --strategy ssh:");
    let mut walls = Vec::new();
    for (mode, extra) in [("binary", ""), ("ssh", "--strategy ssh")] {
        // Each mode starts from hosts without the plan's files (and without a runner).
        for h in &hosts {
            let _ = std::fs::remove_dir_all(h.home.join("bench"));
            let _ = std::fs::remove_dir_all(h.root());
        }
        for run in ["first run", "second run"] {
            let report = dir.path().join("report.json");
            let script = format!(
                "'{}' -i '{}' '{}' {extra} --known-hosts '{}' --report '{}' >/dev/null 2>&1; echo rc=$?; times",
                env!("CARGO_BIN_EXE_rustle-deploy"),
                inv.display(),
                plan_path.display(),
                lab.known_hosts.display(),
                report.display()
            );
            let busy_before = busy_seconds();
            let started = Instant::now();
            let out = Command::new("bash")
                .arg("-c")
                .arg(&script)
                .env("HOME", dir.path())
                .output()
                .unwrap();
            let wall = started.elapsed().as_secs_f64();
            let machine_cpu = busy_seconds() - busy_before;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let rc = stdout.lines().next().unwrap_or("");
            let cpu = stdout.lines().nth(2).unwrap_or("").trim().to_string();
            let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            let hs = r["hosts"].as_object().unwrap();
            let ok = hs.values().filter(|h| h["status"] == "ok").count();
            let sum = |f: &dyn Fn(&Value) -> u64| hs.values().map(f).sum::<u64>();
            let changed = sum(&|h| h["recap"]["changed"].as_u64().unwrap_or(0));
            let bytes = sum(&|h| h["timings"]["bytes_sent"].as_u64().unwrap_or(0));
            let channels = sum(&|h| h["timings"]["channels"].as_u64().unwrap_or(0));
            println!(
                "  {mode:<6} {run:<10} wall {wall:>7.3} s  {rc}  ok hosts {ok}/{HOSTS}  changed tasks {changed}  bytes/host {}  channels/host {:.1}  deployer cpu (user sys) {cpu}  machine cpu {machine_cpu:.2} s",
                bytes / HOSTS as u64,
                channels as f64 / HOSTS as f64,
            );
            walls.push(wall);
        }
    }
    if let [b1, b2, s1, s2] = walls.as_slice() {
        println!(
            "  ssh / binary wall time: first run {:.1}x, second run {:.1}x",
            s1 / b1,
            s2 / b2
        );
    }
}
