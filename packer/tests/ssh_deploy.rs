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
    let inv = lab.inventory(&refs);
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
        // The host's runner cache already has this runner: only the payload travels.
        let sent = r["hosts"][&h.name]["timings"]["bytes_sent"]
            .as_u64()
            .unwrap();
        assert!(
            sent < 20_000,
            "{}: {sent} bytes sent on a repeat deploy",
            h.name
        );
    }
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let lab = Lab::new();
    let a = lab.start("known", "rustle-t5");
    let b = lab.start("stranger", "rustle-t6");
    lab.trust(&[&a]);
    let inv = lab.inventory(&[&a, &b]);
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
    let inv = lab.inventory(&[&up, &down]);
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
    let inv = lab.inventory(&[&a, &b]);
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

/// A plan that writes `version` into each host's app/version file.
fn versioned(version: &str) -> Value {
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "dir", "module": "file", "args": {"path": "{{ ansible_env_home }}/app", "state": "directory"}},
            {"name": "version", "module": "copy", "args": {"content": version, "dest": "{{ ansible_env_home }}/app/version"}}
        ]}]
    })
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn rollback_makes_the_previous_release_current_and_runs_it_again() {
    let lab = Lab::new();
    let h = lab.start("rb", "rustle-t13");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    assert_eq!(
        d.run(&lab, &["-i", inv, v1.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let first = std::fs::read_link(h.root().join("current")).unwrap();
    let v2 = d.home.path().join("v2.json");
    std::fs::write(&v2, serde_json::to_vec(&versioned("v2")).unwrap()).unwrap();
    assert_eq!(
        d.run(&lab, &["-i", inv, v2.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(read(h.home.join("app/version")), "v2");

    let out = d.run(&lab, &["-i", inv, "--rollback"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        read(h.home.join("app/version")),
        "v1",
        "the previous release ran again"
    );
    assert_eq!(std::fs::read_link(h.root().join("current")).unwrap(), first);
    assert!(text(&out.stdout).contains("changed: [rb] => version"));

    let list = d.run(&lab, &["-i", inv, "--list-deployments"]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    let listing = text(&list.stdout);
    let first_id = first.file_name().unwrap().to_str().unwrap();
    let current_line = listing.lines().find(|l| l.starts_with('*')).unwrap();
    assert!(current_line.contains(first_id), "{listing}");
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.contains("version 0.1.0"))
            .count(),
        3,
        "{listing}"
    );

    // With only one good release left before it, a second rollback has somewhere to go
    // (v2), and a host with no release at all says so.
    let empty = lab.start("empty", "rustle-t14");
    lab.trust(&[&empty]);
    let inv2 = lab.inventory(&[&empty]);
    let out = d.run(&lab, &["-i", inv2.to_str().unwrap(), "--rollback"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("no current release"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn cleanup_removes_everything_of_ours_and_nothing_else() {
    let lab = Lab::new();
    let h = lab.start("clean", "rustle-t15");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let plan = d.plan(&versioned("v1"));
    assert_eq!(
        d.run(&lab, &["-i", inv, plan.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    // Something of the user's own in the same directory must survive.
    std::fs::write(h.root().join("notes.txt"), "mine").unwrap();
    assert!(h.root().join("current").exists());

    let out = d.run(&lab, &["-i", inv, "--cleanup"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("clean: cleaned"));
    let left: Vec<String> = std::fs::read_dir(h.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["notes.txt".to_string()], "left behind: {left:?}");
    assert_eq!(
        read(h.home.join("app/version")),
        "v1",
        "the plan's own results stay"
    );
    let temps = std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rustle."))
        .filter(|e| {
            use std::os::unix::fs::MetadataExt;
            let uid = Command::new("id").args(["-u", &h.user]).output().unwrap();
            e.metadata().unwrap().uid().to_string() == text(&uid.stdout).trim()
        })
        .count();
    assert_eq!(temps, 0, "temporary upload directories left behind");

    // Without the user's file, the state root itself goes.
    std::fs::remove_file(h.root().join("notes.txt")).unwrap();
    assert_eq!(
        d.run(&lab, &["-i", inv, plan.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        d.run(&lab, &["-i", inv, "--cleanup"]).status.code(),
        Some(0)
    );
    assert!(!h.root().exists());
}

#[test]
fn blue_green_switches_no_host_when_one_cannot_stage() {
    let lab = Lab::new();
    let hosts: Vec<Sshd> = (16..19)
        .map(|i| lab.start(&format!("bg{i}"), &format!("rustle-t{i}")))
        .collect();
    let refs: Vec<&Sshd> = hosts.iter().collect();
    lab.trust(&refs);
    let inv = lab.inventory(&refs);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    let out = d.run(
        &lab,
        &["-i", inv, v1.to_str().unwrap(), "--strategy", "blue-green"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for h in &hosts {
        assert_eq!(read(h.home.join("app/version")), "v1");
    }
    let before: Vec<PathBuf> = hosts
        .iter()
        .map(|h| std::fs::read_link(h.root().join("current")).unwrap())
        .collect();

    // One host cannot stage: its release directory cannot be created.
    let broken = &hosts[1];
    std::fs::remove_dir_all(broken.root().join("releases")).unwrap();
    std::fs::write(broken.root().join("releases"), "not a directory").unwrap();
    let v2 = d.home.path().join("v2.json");
    std::fs::write(&v2, serde_json::to_vec(&versioned("v2")).unwrap()).unwrap();
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv,
            v2.to_str().unwrap(),
            "--strategy",
            "blue-green",
            "--report",
            &report_arg,
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    for (h, was) in hosts.iter().zip(&before) {
        assert_eq!(
            read(h.home.join("app/version")),
            "v1",
            "{} switched",
            h.name
        );
        assert_eq!(&std::fs::read_link(h.root().join("current")).unwrap(), was);
    }
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["bg16"]["status"], "not deployed");
    assert!(
        r["hosts"]["bg16"]["error"]
            .as_str()
            .unwrap()
            .contains("staged, not switched")
    );
    assert_ne!(r["hosts"]["bg17"]["status"], "ok");
}

#[test]
fn a_failed_canary_stops_the_rest_and_a_failed_rolling_batch_stops_later_batches() {
    let lab = Lab::new();
    let hosts: Vec<Sshd> = (19..23)
        .map(|i| lab.start(&format!("c{i}"), &format!("rustle-t{i}")))
        .collect();
    let refs: Vec<&Sshd> = hosts.iter().collect();
    lab.trust(&refs);
    let inv = lab.inventory(&refs);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let mut failing = versioned("v1");
    failing["plays"][0]["tasks"].as_array_mut().unwrap().push(
        json!({"name": "boom", "module": "fail", "args": {"msg": "canary broke"}, "when": "inventory_hostname == 'c19'"}),
    );
    let plan = d.plan(&failing);
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv,
            plan.to_str().unwrap(),
            "--strategy",
            "canary",
            "--canary-percent",
            "25",
            "--report",
            &report_arg,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["c19"]["status"], "failed");
    for h in &hosts[1..] {
        assert_eq!(r["hosts"][&h.name]["status"], "not deployed", "{}", h.name);
        assert!(
            !h.home.join("app").exists(),
            "{} was deployed after the canary failed",
            h.name
        );
    }

    // Rolling, batches of two: the first batch holds the failing host, so the second
    // batch never starts.
    let out = d.run(
        &lab,
        &[
            "-i",
            inv,
            plan.to_str().unwrap(),
            "--strategy",
            "rolling",
            "--batch-size",
            "2",
            "--report",
            &report_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["c20"]["status"], "ok");
    assert_eq!(r["hosts"]["c21"]["status"], "not deployed");
    assert_eq!(r["hosts"]["c22"]["status"], "not deployed");
    assert!(
        r["hosts"]["c21"]["error"]
            .as_str()
            .unwrap()
            .contains("batch 1")
    );
}

/// Forwards one TCP connection to `to` and cuts it after `limit` bytes from the client:
/// a network that dies in the middle of an upload.
fn cutting_proxy(to: u16, limit: usize) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let mut server = std::net::TcpStream::connect(("127.0.0.1", to)).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
        });
        let mut sent = 0;
        let mut buf = [0u8; 16384];
        while sent < limit {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
            }
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    port
}

#[test]
fn a_connection_cut_during_the_upload_leaves_the_previous_release_current() {
    let lab = Lab::new();
    let h = lab.start("cut", "rustle-t23");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    let out = d.run(&lab, &["-i", inv.to_str().unwrap(), v1.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = std::fs::read_link(h.root().join("current")).unwrap();

    // The same host, without the runner in its cache (so the whole runner travels),
    // behind a proxy that dies after 600 kB of the ~2.5 MB upload.
    std::fs::remove_dir_all(h.root().join("cache")).unwrap();
    let port = cutting_proxy(h.port, 600_000);
    // The platform is declared so that no `uname -sm` probe uses up the proxy's one
    // connection before the deploy does.
    let text_inv = std::fs::read_to_string(&inv).unwrap().replace(
        &format!("ansible_port={}", h.port),
        &format!("ansible_port={port} rustle_target=x86_64-unknown-linux-musl"),
    );
    std::fs::write(&inv, text_inv).unwrap();
    let known = std::fs::read_to_string(&lab.known_hosts).unwrap();
    std::fs::write(
        &lab.known_hosts,
        format!("{known}[127.0.0.1]:{port} {}\n", h.host_key_pub),
    )
    .unwrap();
    let v2 = d.home.path().join("v2.json");
    std::fs::write(&v2, serde_json::to_vec(&versioned("v2")).unwrap()).unwrap();
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            v2.to_str().unwrap(),
            "--report",
            &report_arg,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["cut"]["status"], "unreachable");
    // Give the host's shell a moment to notice the cut and clean up.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        std::fs::read_link(h.root().join("current")).unwrap(),
        before
    );
    assert_eq!(read(h.home.join("app/version")), "v1");
    let releases = std::fs::read_dir(h.root().join("releases"))
        .unwrap()
        .count();
    assert_eq!(releases, 1, "a half-uploaded release was installed");
}

#[test]
fn deploy_only_ships_what_compile_only_wrote_and_refuses_a_swapped_file() {
    let lab = Lab::new();
    let a = lab.start("pre-a", "rustle-t24");
    let b = lab.start("pre-b", "rustle-t25");
    lab.trust(&[&a, &b]);
    let inv = lab.inventory(&[&a, &b]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let plan = d.plan(&versioned("packed"));
    let out_dir = d.home.path().join("out");
    let out_arg = out_dir.to_str().unwrap();
    let out = d.run(
        &lab,
        &[
            "--compile-only",
            "-i",
            inv,
            plan.to_str().unwrap(),
            "-o",
            out_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!a.home.join("app").exists(), "--compile-only ran something");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("deployment.json")).unwrap()).unwrap();
    let id = manifest["deployment"].as_str().unwrap().to_string();

    // Swap the two hosts' files: each payload no longer matches its manifest entry.
    let (fa, fb) = (out_dir.join("pre-a"), out_dir.join("pre-b"));
    let (ba, bb) = (std::fs::read(&fa).unwrap(), std::fs::read(&fb).unwrap());
    std::fs::write(&fa, &bb).unwrap();
    std::fs::write(&fb, &ba).unwrap();
    let out = d.run(&lab, &["--deploy-only", "-i", inv, "-o", out_arg]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not the"),
        "{}",
        text(&out.stderr)
    );
    assert!(!a.home.join("app").exists() && !b.home.join("app").exists());

    std::fs::write(&fa, &ba).unwrap();
    std::fs::write(&fb, &bb).unwrap();
    let out = d.run(&lab, &["--deploy-only", "-i", inv, "-o", out_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for h in [&a, &b] {
        assert_eq!(read(h.home.join("app/version")), "packed");
        let current = std::fs::read_link(h.root().join("current")).unwrap();
        assert!(current.ends_with(&id), "{current:?} is not release {id}");
    }
}

#[test]
fn a_hung_host_is_cut_off_at_the_timeout_and_the_others_finish() {
    let lab = Lab::new();
    let slow = lab.start("slow", "rustle-t26");
    let fast = lab.start("fast", "rustle-t27");
    lab.trust(&[&slow, &fast]);
    let inv = lab.inventory(&[&slow, &fast]);
    let d = Deployer::new();
    let mut hang = versioned("v1");
    hang["plays"][0]["tasks"].as_array_mut().unwrap().push(
        json!({"name": "hang", "module": "command", "args": {"_raw_params": "sleep 60"}, "when": "inventory_hostname == 'slow'"}),
    );
    let plan = d.plan(&hang);
    let (report_path, report_arg) = report(&d);
    let started = std::time::Instant::now();
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--timeout",
            "4",
            "--report",
            &report_arg,
        ],
    );
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        took.as_secs() < 30,
        "the hung host held the deploy for {took:?}"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["fast"]["status"], "ok");
    assert_eq!(r["hosts"]["slow"]["status"], "unreachable");
    assert!(
        r["hosts"]["slow"]["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 4 s")
    );
}

#[test]
fn become_without_passwordless_sudo_is_a_clear_error_for_that_host() {
    let lab = Lab::new();
    let h = lab.start("nosudo", "rustle-t28");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let d = Deployer::new();
    let mut plan = versioned("v1");
    plan["plays"][0]["become"] = json!(true);
    let plan = d.plan(&plan);
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
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let err = r["hosts"]["nosudo"]["error"].as_str().unwrap();
    assert!(err.contains("sudo"), "{err}");
    assert!(!h.home.join("app").exists());
}

#[test]
fn become_with_passwordless_sudo_runs_as_root_and_caches_the_runner() {
    assert!(
        std::path::Path::new("/usr/bin/sudo").exists(),
        "this test needs sudo: apt-get install sudo (.ci/run does)"
    );
    let lab = Lab::new();
    let h = lab.start("sudoer", "rustle-t40");
    lab.trust(&[&h]);
    // This login user may run anything as root without a password, as deploy users
    // usually may; the file goes when the test ends.
    struct Sudoers(PathBuf);
    impl Drop for Sudoers {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let rule = Sudoers(PathBuf::from(format!("/etc/sudoers.d/{}", h.user)));
    std::fs::write(&rule.0, format!("{} ALL=(ALL) NOPASSWD: ALL\n", h.user)).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&rule.0, std::fs::Permissions::from_mode(0o440)).unwrap();
    // Root's state goes under the test's own directory, not /var/lib/rustle.
    let root = h.home.parent().unwrap().join("root-state");
    let inv = lab.dir.path().join("sudo-hosts.ini");
    std::fs::write(
        &inv,
        format!(
            "[lab]\n{} ansible_env_home={} ansible_host=127.0.0.1 ansible_port={} ansible_user={} ansible_ssh_private_key_file={} rustle_root={}\n",
            h.name,
            h.home.display(),
            h.port,
            h.user,
            lab.client_key.display(),
            root.display()
        ),
    )
    .unwrap();
    let d = Deployer::new();
    let mut plan = versioned("as root");
    plan["plays"][0]["become"] = json!(true);
    let plan = d.plan(&plan);
    let (report_path, report_arg) = report(&d);
    let args = [
        "-i",
        inv.to_str().unwrap(),
        plan.to_str().unwrap(),
        "--report",
        &report_arg,
    ];
    let uid = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(p).unwrap().uid()
    };
    let sent = |r: &Value| {
        r["hosts"]["sudoer"]["timings"]["bytes_sent"]
            .as_u64()
            .unwrap()
    };
    for run in ["first", "second"] {
        let out = d.run(&lab, &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{run} run: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
        assert_eq!(read(h.home.join("app/version")), "as root");
        assert_eq!(uid(&h.home.join("app/version")), 0, "written by root");
        // The runner is cached in the login user's home and run from there under sudo:
        // the second deploy sends the payload alone.
        let cache = h.home.join(".rustle/cache");
        let cached = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap();
        assert_ne!(uid(&cached.path().join("rustle-runner")), 0);
        if run == "first" {
            assert!(sent(&r) > 1_000_000, "{}", sent(&r));
        } else {
            assert!(sent(&r) < 20_000, "{} bytes on a repeat deploy", sent(&r));
            assert_eq!(r["hosts"]["sudoer"]["recap"]["changed"], 0);
        }
        // Root's state (releases, current) is under rustle_root, owned by root.
        assert_eq!(uid(&root.join("current")), 0);
    }
}

#[test]
fn ssh_config_aliases_and_agent_keys_are_used() {
    let lab = Lab::new();
    let h = lab.start("aliased", "rustle-t29");
    lab.trust(&[&h]);
    let d = Deployer::new();
    let plan = d.plan(&versioned("via-config"));
    // The inventory names only an alias; ~/.ssh/config says where it is and who logs in.
    let ssh_dir = d.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(
        ssh_dir.join("config"),
        format!(
            "Host web-alias\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
            h.port,
            h.user,
            lab.client_key.display()
        ),
    )
    .unwrap();
    let inv = d.home.path().join("alias.ini");
    std::fs::write(
        &inv,
        format!("[x]\nweb-alias ansible_env_home={}\n", h.home.display()),
    )
    .unwrap();
    let out = d.run(&lab, &["-i", inv.to_str().unwrap(), plan.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(read(h.home.join("app/version")), "via-config");

    // No key file anywhere: the only key is in an ssh-agent.
    std::fs::write(
        ssh_dir.join("config"),
        format!(
            "Host web-alias\n  HostName 127.0.0.1\n  Port {}\n  User {}\n",
            h.port, h.user
        ),
    )
    .unwrap();
    let sock = d.home.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&lab.client_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added.stderr));
    let v2 = d.home.path().join("v2.json");
    std::fs::write(&v2, serde_json::to_vec(&versioned("via-agent")).unwrap()).unwrap();
    let run = |with_agent: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
        c.args([
            "-i",
            inv.to_str().unwrap(),
            v2.to_str().unwrap(),
            "--known-hosts",
        ])
        .arg(&lab.known_hosts)
        .env("HOME", d.home.path())
        .env_remove("SSH_AUTH_SOCK");
        if with_agent {
            c.env("SSH_AUTH_SOCK", &sock);
        }
        c.output().unwrap()
    };
    let without = run(false);
    assert_eq!(
        without.status.code(),
        Some(3),
        "no key at all must fail: {}",
        text(&without.stdout)
    );
    assert!(
        text(&without.stdout).contains("authentication"),
        "{}",
        text(&without.stdout)
    );
    let with = run(true);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(
        with.status.code(),
        Some(0),
        "{}{}",
        text(&with.stdout),
        text(&with.stderr)
    );
    assert_eq!(read(h.home.join("app/version")), "via-agent");
}

/// (task name, status) for every task of `host` in a report.
fn statuses_of(r: &Value, host: &str) -> Vec<(String, String)> {
    r["hosts"][host]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks for {host}: {r}"))
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_module_tour_gives_the_same_results_over_ssh_as_locally_and_changes_nothing_twice() {
    let lab = Lab::new();
    let h = lab.start("remote", "rustle-tour");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let d = Deployer::new();
    let local_root = d.home.path().join("local-tour");
    // The same playbook on an SSH host and on this machine, each under its own root.
    let mut text_inv = std::fs::read_to_string(&inv).unwrap().replace(
        "remote ansible_env_home=",
        &format!(
            "remote demo_root={}/tour ansible_env_home=",
            h.home.display()
        ),
    );
    text_inv.push_str(&format!(
        "local ansible_connection=local demo_root={} rustle_root={}\n",
        local_root.display(),
        d.home.path().join("local-state").display()
    ));
    std::fs::write(&inv, text_inv).unwrap();
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tour/site.yml");
    let (report_path, report_arg) = report(&d);
    let args = ["-i", inv.to_str().unwrap(), site, "--report", &report_arg];

    let out = d.run(&lab, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let remote = statuses_of(&r, "remote");
    assert_eq!(remote, statuses_of(&r, "local"), "{r}");
    assert!(remote.len() > 25, "{remote:?}");
    assert!(
        remote.contains(&("config changed".to_string(), "changed".to_string())),
        "the handler ran: {remote:?}"
    );
    for host in ["remote", "local"] {
        let recap = &r["hosts"][host]["recap"];
        assert_eq!(recap["failed"], 0, "{host}: {recap}");
        assert_eq!(recap["rescued"], 1, "{host}: {recap}");
    }
    for root in [h.home.join("tour"), local_root.clone()] {
        let conf = std::fs::read_to_string(root.join("etc/app.conf")).unwrap();
        assert!(
            conf.ends_with("port = 8080\nworker = ALPHA\nworker = BETA\n"),
            "{conf}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/extra.conf")).unwrap(),
            "debug = false\n"
        );
        let unpacked = std::fs::read_to_string(root.join("unpack/etc/motd")).unwrap();
        assert!(
            unpacked.starts_with("Hello to the rustle-deploy tour."),
            "{unpacked}"
        );
        assert!(root.join("data/script.out").exists());
        assert!(root.join("data/reloaded").exists());
    }

    let again = d.run(&lab, &args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(statuses_of(&r, "remote"), statuses_of(&r, "local"));
    for host in ["remote", "local"] {
        assert_eq!(r["hosts"][host]["recap"]["changed"], 0, "{host}: {r}");
    }
}
