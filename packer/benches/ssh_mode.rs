//! Binary mode against SSH mode (`--strategy ssh`): the fleet benchmark's 25-step plan
//! on the same 20 real sshd hosts, on fresh hosts, again, and in its next revision (see
//! [`RUNS`]), the hosts' work directories cleared between the modes. Runs on plain loopback and again through a
//! user-space relay adding a LAN (2 ms) and a WAN (20 ms) round trip, since the spec's
//! success criterion (binary mode at least 5x faster) is about real networks, where
//! every SSH channel's round trips cost. Each network is also measured with one host:
//! the 20 hosts here share this machine's few cores, so their sshd and shell work
//! queues up and hides the latency, where real hosts each have their own CPU.
//! Prints the figures; asserts only that every run succeeded.
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
use fleet_plan::{busy_seconds, plan, plan_revision};

#[path = "support/relay.rs"]
mod relay;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTS: usize = 20;

/// Each mode's runs, in order: on fresh hosts (binary mode uploads its runner), the same
/// plan again (nothing changes), and the plan's next revision (content changes, the
/// hosts have the runner): the everyday deploy.
const RUNS: [&str; 3] = ["first run", "second run", "changed plan"];

/// The fleet sizes measured on each network (see the header for why one host too).
const FLEETS: [usize; 2] = [HOSTS, 1];

/// The networks measured: a label and the one-way delay the relay adds (none: the
/// hosts' own loopback ports, no relay).
const NETWORKS: [(&str, Option<Duration>); 3] = [
    ("loopback", None),
    ("RTT 2 ms", Some(Duration::from_millis(1))),
    ("RTT 20 ms", Some(Duration::from_millis(10))),
];

/// Writes a known_hosts file and an inventory addressing each host at `ports[i]`
/// (its sshd's own port or its relay's), both under `dir` tagged with `tag`.
fn address_book(
    dir: &Path,
    tag: usize,
    lab: &sshd::Lab,
    hosts: &[sshd::Sshd],
    ports: &[u16],
) -> (PathBuf, PathBuf) {
    let mut known = String::new();
    let mut inv = String::from("[lab]\n");
    for (h, port) in hosts.iter().zip(ports) {
        known.push_str(&format!("[127.0.0.1]:{port} {}\n", h.host_key_pub));
        inv.push_str(&format!(
            "{} ansible_env_home={} ansible_host=127.0.0.1 ansible_port={port} ansible_user={} ansible_ssh_private_key_file={}\n",
            h.name,
            h.home.display(),
            h.user,
            lab.client_key.display()
        ));
    }
    let known_path = dir.join(format!("known_hosts.{tag}"));
    let inv_path = dir.join(format!("hosts.{tag}.ini"));
    std::fs::write(&known_path, known).unwrap();
    std::fs::write(&inv_path, inv).unwrap();
    (known_path, inv_path)
}

/// One deployment's figures.
struct Run {
    wall: f64,
    ok: bool,
}

/// Deploys the plan once to the `n` hosts of `inv` (`extra`: the mode's flags) and
/// prints a row of figures headed by `label`.
fn deploy(
    dir: &Path,
    plan_path: &Path,
    inv: &Path,
    known_hosts: &Path,
    n: usize,
    extra: &str,
    label: &str,
) -> Run {
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let script = format!(
        "'{}' -i '{}' '{}' {extra} --known-hosts '{}' --report '{}' >/dev/null 2>&1; echo rc=$?; times",
        env!("CARGO_BIN_EXE_rustle-deploy"),
        inv.display(),
        plan_path.display(),
        known_hosts.display(),
        report.display()
    );
    let busy_before = busy_seconds();
    let started = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("HOME", dir)
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let machine_cpu = busy_seconds() - busy_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rc = stdout.lines().next().unwrap_or("");
    let cpu = stdout.lines().nth(2).unwrap_or("").trim().to_string();
    // A failed run may leave no report; it is counted, and reported at the end.
    let r: Value = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let empty = serde_json::Map::new();
    let hs = r["hosts"].as_object().unwrap_or(&empty);
    let ok = hs.values().filter(|h| h["status"] == "ok").count();
    let sum = |f: &dyn Fn(&Value) -> u64| hs.values().map(f).sum::<u64>();
    let changed = sum(&|h| h["recap"]["changed"].as_u64().unwrap_or(0));
    let bytes = sum(&|h| h["timings"]["bytes_sent"].as_u64().unwrap_or(0));
    let channels = sum(&|h| h["timings"]["channels"].as_u64().unwrap_or(0));
    println!(
        "  {n:>2} host(s) {label:<19} wall {wall:>7.3} s  {rc}  ok hosts {ok}/{n}  changed tasks {changed}  bytes/host {}  channels/host {:.1}  deployer cpu (user sys) {cpu}  machine cpu {machine_cpu:.2} s",
        bytes / n as u64,
        channels as f64 / n as f64,
    );
    Run {
        wall,
        ok: rc == "rc=0" && ok == n,
    }
}

fn main() {
    let lab = sshd::Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(&plan()).unwrap()).unwrap();
    let changed_path = dir.path().join("plan-rev2.json");
    std::fs::write(
        &changed_path,
        serde_json::to_vec(&plan_revision(2)).unwrap(),
    )
    .unwrap();
    let hosts: Vec<sshd::Sshd> = (0..HOSTS)
        .map(|i| lab.start(&format!("s{i}"), &format!("rustle-s{i}")))
        .collect();
    println!("25-step plan, binary mode against --strategy ssh:");
    // (network, hosts, run, binary wall, ssh wall) for the summary.
    let mut summary: Vec<(&str, usize, &str, f64, f64)> = Vec::new();
    let mut failures = Vec::new();
    let mut tag = 0;
    for (network, one_way) in NETWORKS {
        let ports: Vec<u16> = match one_way {
            None => hosts.iter().map(|h| h.port).collect(),
            Some(d) => hosts.iter().map(|h| relay::start(h.port, d).port).collect(),
        };
        match one_way {
            None => println!("{network} (no relay):"),
            Some(d) => println!(
                "{network} (relay adds {} ms each way; measured echo round trip {:.2} ms):",
                d.as_millis(),
                relay::measured_rtt(d).as_secs_f64() * 1e3
            ),
        }
        for n in FLEETS {
            let fleet = &hosts[..n];
            tag += 1;
            let (known_hosts, inv) = address_book(dir.path(), tag, &lab, fleet, &ports[..n]);
            let mut walls = Vec::new();
            for (mode, extra) in [("binary", ""), ("ssh", "--strategy ssh")] {
                // Each mode starts from hosts without the plan's files (and without a runner).
                for h in fleet {
                    let _ = std::fs::remove_dir_all(h.home.join("bench"));
                    let _ = std::fs::remove_dir_all(h.root());
                }
                for (run, plan_path) in RUNS.iter().zip([&plan_path, &plan_path, &changed_path]) {
                    let r = deploy(
                        dir.path(),
                        plan_path,
                        &inv,
                        &known_hosts,
                        n,
                        extra,
                        &format!("{mode:<6} {run:<12}"),
                    );
                    if !r.ok {
                        failures.push(format!("{network} {n} host(s) {mode} {run}"));
                    }
                    walls.push(r.wall);
                }
            }
            let (binary, ssh) = walls.split_at(RUNS.len());
            for ((run, b), s) in RUNS.iter().zip(binary).zip(ssh) {
                summary.push((network, n, run, *b, *s));
            }
        }
    }
    println!("wall time (speed-up = ssh / binary; the spec asks for at least 5x):");
    println!(
        "  {:<10} {:>5} {:<12} {:>10} {:>10} {:>9}",
        "network", "hosts", "run", "binary s", "ssh s", "speed-up"
    );
    for (network, n, run, b, s) in &summary {
        println!(
            "  {network:<10} {n:>5} {run:<12} {b:>10.3} {s:>10.3} {:>8.1}x",
            s / b
        );
    }
    assert!(failures.is_empty(), "runs failed: {failures:#?}");
}
