//! End-to-end deploys over SSH to real OpenSSH `sshd` test hosts on loopback.
//!
//! Needs root (test users), `openssh-server`, and the native runner (`cargo xtask test`
//! builds it). Each test starts and stops its own hosts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support/sshd.rs"]
mod sshd;

use serde_json::{Value, json};
use sshd::{Lab, Sshd};
use std::path::PathBuf;
use std::process::{Command, Output};

struct Deployer {
    home: tempfile::TempDir,
}

impl Deployer {
    fn new() -> Deployer {
        let home = tempfile::tempdir().unwrap();
        Deployer { home }
    }

    fn run(&self, lab: &Lab, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
            .args(args)
            .arg("--known-hosts")
            .arg(&lab.known_hosts)
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUSTLE_DEPLOY_KEY")
            .output()
            .unwrap()
    }

    fn plan(&self, v: &Value) -> PathBuf {
        let p = self.home.path().join("plan.json");
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A plan whose files land in each login user's home, so hosts never collide.
fn plan() -> Value {
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "dir", "module": "file", "args": {"path": "{{ ansible_env_home }}/app", "state": "directory"}},
            {"name": "hello", "module": "copy", "args": {"content": "hello {{ inventory_hostname }}\n", "dest": "{{ ansible_env_home }}/app/hello"}},
            {"name": "whoami", "module": "command", "args": {"_raw_params": "id -un"}, "register": "me", "changed_when": false},
            {"name": "say", "module": "debug", "args": {"msg": "I am {{ me.stdout }}"}}
        ]}]
    })
}

/// Inventory lines give each host its home as a variable the plan uses.
fn inventory(lab: &Lab, hosts: &[&Sshd]) -> PathBuf {
    let path = lab.inventory(hosts, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for h in hosts {
        text = text.replace(
            &format!("{} ansible_host", h.name),
            &format!(
                "{} ansible_env_home={} ansible_host",
                h.name,
                h.home.display()
            ),
        );
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn report(d: &Deployer) -> (PathBuf, String) {
    let p = d.home.path().join("report.json");
    let s = p.to_str().unwrap().to_string();
    (p, s)
}

#[test]
fn deploys_to_five_hosts_and_a_second_run_changes_nothing() {
    let lab = Lab::new();
    let hosts: Vec<Sshd> = (0..5)
        .map(|i| lab.start(&format!("h{i}"), &format!("rustle-t{i}")))
        .collect();
    let refs: Vec<&Sshd> = hosts.iter().collect();
    lab.trust(&refs);
    let inv = inventory(&lab, &refs);
    let d = Deployer::new();
    let plan = d.plan(&plan());
    let (report_path, report_arg) = report(&d);
    let args = [
        "-i",
        inv.to_str().unwrap(),
        plan.to_str().unwrap(),
        "--report",
        &report_arg,
    ];

    let out = d.run(&lab, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for h in &hosts {
        assert_eq!(
            std::fs::read_to_string(h.home.join("app/hello")).unwrap(),
            format!("hello {}\n", h.name)
        );
        assert!(text(&out.stdout).contains(&format!("[{}] => say | I am {}", h.name, h.user)));
        // The release is installed in the login user's home with its report.
        let current = std::fs::read_link(h.root().join("current")).unwrap();
        assert!(h.root().join(&current).join("rustle-runner").exists());
        assert!(h.root().join(&current).join("report.json").exists());
        // The deployer's key is now trusted there for later runs by hand.
        assert!(
            std::fs::read_to_string(h.root().join("trusted_keys"))
                .unwrap()
                .contains("rustle-ed25519")
        );
    }
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    for h in &hosts {
        let host = &r["hosts"][&h.name];
        assert_eq!(host["status"], "ok");
        assert_eq!(host["recap"]["changed"], 2);
        assert!(host["timings"]["bytes_sent"].as_u64().unwrap() > 1_000_000);
    }

    let again = d.run(&lab, &args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    for h in &hosts {
        assert_eq!(r["hosts"][&h.name]["recap"]["changed"], 0);
    }
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let lab = Lab::new();
    let a = lab.start("known", "rustle-t5");
    let b = lab.start("stranger", "rustle-t6");
    lab.trust(&[&a]);
    let inv = inventory(&lab, &[&a, &b]);
    let d = Deployer::new();
    let plan = d.plan(&plan());
    let out = d.run(&lab, &["-i", inv.to_str().unwrap(), plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("is not in"), "{stdout}");
    assert!(stdout.contains("--accept-new-host-keys"), "{stdout}");
    assert!(
        !b.home.join("app").exists(),
        "the unknown host was deployed to"
    );
    assert!(
        a.home.join("app/hello").exists(),
        "the known host was not deployed to"
    );

    // Opting in records the new key, and the host is deployed.
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--accept-new-host-keys",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(b.home.join("app/hello").exists());

    // A changed key is refused even with --accept-new-host-keys.
    let known = std::fs::read_to_string(&lab.known_hosts).unwrap();
    let forged = lab.start("forger", "rustle-t7");
    let tampered = known.replace(&a.host_key_pub, &forged.host_key_pub);
    std::fs::write(&lab.known_hosts, tampered).unwrap();
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--accept-new-host-keys",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("HOST KEY CHANGED"), "{stdout}");
    assert!(
        stdout.contains(lab.known_hosts.to_str().unwrap()),
        "{stdout}"
    );
}

#[test]
fn a_host_that_is_down_is_unreachable_and_the_others_finish() {
    let lab = Lab::new();
    let up = lab.start("up", "rustle-t8");
    let mut down = lab.start("down", "rustle-t9");
    lab.trust(&[&up, &down]);
    down.stop();
    let inv = inventory(&lab, &[&up, &down]);
    let d = Deployer::new();
    let plan = d.plan(&plan());
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--report",
            &report_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["up"]["status"], "ok");
    assert_eq!(r["hosts"]["down"]["status"], "unreachable");
    assert!(
        r["hosts"]["down"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );
    assert!(text(&out.stdout).contains("unreachable=1"));
    assert!(up.home.join("app/hello").exists());
}

#[test]
fn a_failing_task_fails_that_host_only_and_keeps_its_previous_release_current() {
    let lab = Lab::new();
    let a = lab.start("ok-host", "rustle-t10");
    let b = lab.start("bad-host", "rustle-t11");
    lab.trust(&[&a, &b]);
    let inv = inventory(&lab, &[&a, &b]);
    let d = Deployer::new();
    let good = d.plan(&plan());
    let out = d.run(&lab, &["-i", inv.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = std::fs::read_link(b.root().join("current")).unwrap();

    let mut failing = plan();
    failing["plays"][0]["tasks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "boom", "module": "fail", "args": {"msg": "no"}, "when": "inventory_hostname == 'bad-host'"}));
    let failing = d.plan(&failing);
    let out = d.run(
        &lab,
        &["-i", inv.to_str().unwrap(), failing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("failed: [bad-host] => boom | no"));
    assert_eq!(
        std::fs::read_link(b.root().join("current")).unwrap(),
        before
    );
    assert_ne!(
        std::fs::read_link(a.root().join("current")).unwrap(),
        before
    );
}
