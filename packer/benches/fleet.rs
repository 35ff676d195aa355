//! Fleet benchmark: a 25-step plan deployed over SSH to 20 and 100 real sshd hosts on
//! loopback. Prints wall time, the deployer's CPU time, bytes and channels per host.
//! A benchmark prints figures; it asserts nothing about them.
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

use serde_json::Value;
use std::process::Command;
use std::time::Instant;

// The shared plan; this benchmark uses only its first revision.
#[allow(dead_code)]
#[path = "support/plan.rs"]
mod fleet_plan;
use fleet_plan::{busy_seconds, plan};

fn main() {
    let lab = sshd::Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan()).unwrap()).unwrap();
    let mut hosts = Vec::new();
    for n in [1usize, 20, 100] {
        while hosts.len() < n {
            let i = hosts.len();
            hosts.push(lab.start(&format!("b{i}"), &format!("rustle-b{i}")));
        }
        let refs: Vec<&sshd::Sshd> = hosts.iter().collect();
        std::fs::write(&lab.known_hosts, "").unwrap();
        lab.trust(&refs);
        let inv = lab.inventory(&refs);
        println!("{n} hosts, 25-step plan:");
        for run in ["first run", "second run"] {
            let report = dir.path().join("report.json");
            // bash's `times` reports the CPU the deployer (its child) used.
            let script = format!(
                "'{}' -i '{}' '{}' --known-hosts '{}' --report '{}' >/dev/null 2>&1; echo rc=$?; times",
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
            let wall = started.elapsed();
            let machine_cpu = busy_seconds() - busy_before;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let rc = stdout.lines().next().unwrap_or("");
            let cpu = stdout.lines().nth(2).unwrap_or("").trim().to_string();
            let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            let hosts_r = r["hosts"].as_object().unwrap();
            let ok = hosts_r.values().filter(|h| h["status"] == "ok").count();
            let bytes: u64 = hosts_r
                .values()
                .map(|h| h["timings"]["bytes_sent"].as_u64().unwrap_or(0))
                .sum();
            let channels: u64 = hosts_r
                .values()
                .map(|h| h["timings"]["channels"].as_u64().unwrap_or(0))
                .sum();
            let changed: u64 = hosts_r
                .values()
                .map(|h| h["recap"]["changed"].as_u64().unwrap_or(0))
                .sum();
            let avg = |k: &str| {
                hosts_r
                    .values()
                    .map(|h| h["timings"][k].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
                    / n as f64
            };
            println!(
                "  {run:<10} wall {:>7.3} s  deployer cpu (user sys) {cpu}  {rc}  ok hosts {ok}/{n}  changed tasks {changed}  bytes/host {}  channels/host {:.1}  mean connect {:.0} ms  mean upload+run {:.0} ms  machine cpu (all processes, hosts included) {:.2} s",
                wall.as_secs_f64(),
                bytes / n as u64,
                channels as f64 / n as f64,
                avg("connect_ms"),
                avg("upload_and_run_ms"),
                machine_cpu
            );
        }
    }
}
