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

    /// Like [`Deployer::run`], but started in the background (output piped).
    fn spawn(&self, lab: &Lab, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
            .args(args)
            .arg("--known-hosts")
            .arg(&lab.known_hosts)
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUSTLE_DEPLOY_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Writes a plan under its own name (several plans in one test).
    fn plan_named(&self, name: &str, v: &Value) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
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
        assert!(text(&out.stdout).contains(&format!(
            "[{}] => say => {{\"msg\": \"I am {}\"}}",
            h.name, h.user
        )));
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
    // The timeout leaves the fast host room on a loaded machine (a 4 s one cut it off
    // too there); the hang is far longer, so only cutting it off ends the deploy soon.
    hang["plays"][0]["tasks"].as_array_mut().unwrap().push(
        json!({"name": "hang", "module": "command", "args": {"_raw_params": "sleep 120"}, "when": "inventory_hostname == 'slow'"}),
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
            "20",
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
        took.as_secs() < 100,
        "the hung host held the deploy for {took:?}"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["fast"]["status"], "ok");
    assert_eq!(r["hosts"]["slow"]["status"], "unreachable");
    let err = r["hosts"]["slow"]["error"].as_str().unwrap();
    assert!(err.contains("timed out: no answer within 20 s"), "{err}");
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

/// synchronize pushes a controller directory (from the payload on an SSH host, from
/// where it is on a local one) with its modes, times and links, and copies between two
/// of the host's paths when delegated to the host itself; a second run changes nothing.
#[test]
fn synchronize_pushes_a_tree_with_its_times_and_a_second_run_changes_nothing() {
    use std::os::unix::fs::MetadataExt as _;
    assert!(
        std::path::Path::new("/usr/bin/rsync").exists(),
        "this test needs rsync: apt-get install rsync (.ci/run does)"
    );
    let lab = Lab::new();
    let h = lab.start("remote", "rustle-sync");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let d = Deployer::new();
    let local_root = d.home.path().join("local-sync");
    let mut text_inv = std::fs::read_to_string(&inv).unwrap().replace(
        "remote ansible_env_home=",
        &format!("remote root={}/sync ansible_env_home=", h.home.display()),
    );
    text_inv.push_str(&format!(
        "local ansible_connection=local root={} rustle_root={}\n",
        local_root.display(),
        d.home.path().join("local-state").display()
    ));
    std::fs::write(&inv, text_inv).unwrap();

    let project = d.home.path().join("project");
    let site = project.join("files/site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::create_dir_all(site.join("empty")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>hi</h1>\n").unwrap();
    std::fs::write(site.join("css/a.css"), "a{}\n").unwrap();
    std::os::unix::fs::symlink("index.html", site.join("home.html")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(site.join("css"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let playbook = project.join("site.yml");
    std::fs::write(
        &playbook,
        r#"- hosts: all
  gather_facts: false
  tasks:
    - name: the root
      file: {path: "{{ root }}", state: directory}
    - name: push the site
      ansible.posix.synchronize: {src: site/, dest: "{{ root }}/www/", delete: true}
      register: pushed
    - name: copy it on the host
      synchronize: {src: "{{ root }}/www", dest: "{{ root }}/copy"}
      delegate_to: "{{ inventory_hostname }}"
    - name: what rsync did
      assert:
        that:
          - pushed is changed or pushed.msg == ''
          - "'rsync' in pushed.cmd"
"#,
    )
    .unwrap();
    let (report_path, report_arg) = report(&d);
    let args = [
        "-i",
        inv.to_str().unwrap(),
        playbook.to_str().unwrap(),
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
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let want = [
        ("push the site", "changed"),
        ("copy it on the host", "changed"),
    ];
    for host in ["remote", "local"] {
        let got = statuses_of(&r, host);
        for (task, status) in want {
            assert!(
                got.contains(&(task.to_string(), status.to_string())),
                "{host}: {got:?}"
            );
        }
    }
    let controller = |p: &str| std::fs::symlink_metadata(site.join(p)).unwrap();
    for root in [h.home.join("sync"), local_root.clone()] {
        for copy in ["www", "copy/www"] {
            let m = |p: &str| std::fs::symlink_metadata(root.join(copy).join(p)).unwrap();
            assert_eq!(
                std::fs::read(root.join(copy).join("css/a.css")).unwrap(),
                b"a{}\n"
            );
            assert_eq!(m("css").mode() & 0o777, 0o750, "{copy}");
            assert!(m("empty").is_dir());
            assert!(m("home.html").file_type().is_symlink());
            // (Files: rsync's `--delay-updates` leaves a directory's time to the
            // removal of its temporary directory, on any source.)
            for p in ["index.html", "css/a.css"] {
                assert_eq!(
                    (m(p).mtime(), m(p).mtime_nsec()),
                    (controller(p).mtime(), controller(p).mtime_nsec()),
                    "{} keeps the controller's time",
                    root.join(copy).join(p).display()
                );
            }
        }
    }

    let again = d.run(&lab, &args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    for host in ["remote", "local"] {
        assert_eq!(r["hosts"][host]["recap"]["changed"], 0, "{host}: {r}");
    }

    // What the controller no longer has goes with `delete`.
    std::fs::remove_file(site.join("css/a.css")).unwrap();
    let third = d.run(&lab, &args);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third.stderr));
    for root in [h.home.join("sync"), local_root] {
        assert!(!root.join("www/css/a.css").exists());
    }
}

// ---------------------------------------------------------------------------------
// The host lifecycle: sudo hosts, one deploy at a time, timeouts, pruning, rollback,
// and failures on the host (lost connection, full disk, permissions, damaged files).
// ---------------------------------------------------------------------------------

/// A login user may run anything as root without a password while this lives.
struct SudoRule(PathBuf);

impl SudoRule {
    fn for_user(user: &str) -> SudoRule {
        assert!(
            std::path::Path::new("/usr/bin/sudo").exists(),
            "this test needs sudo: apt-get install sudo (.ci/run does)"
        );
        let rule = SudoRule(PathBuf::from(format!("/etc/sudoers.d/{user}")));
        std::fs::write(&rule.0, format!("{user} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&rule.0, std::fs::Permissions::from_mode(0o440)).unwrap();
        rule
    }
}

impl Drop for SudoRule {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A tmpfs of `size` (e.g. `8m`) owned by `user`, mounted at `dir` while this lives: a
/// small disk that fills up.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str, user: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let uid = text(
            &Command::new("id")
                .args(["-u", user])
                .output()
                .unwrap()
                .stdout,
        );
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},uid={},mode=0700", uid.trim()))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs (root, CAP_SYS_ADMIN): {}",
            text(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Bytes still free.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        text(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Fills it up to `leave` free bytes with a file owned by root.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.0.join("filler");
        let size = std::fs::metadata(&filler).map_or(0, |m| m.len());
        let want = (size + self.free()).saturating_sub(leave);
        std::fs::write(&filler, vec![0u8; usize::try_from(want).unwrap()]).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The host's state.json (under `root`).
fn state_in(root: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(root.join("state.json")).unwrap()).unwrap()
}

/// The ids state.json records under `root`, in order.
fn recorded(root: &std::path::Path) -> Vec<(String, String)> {
    state_in(root)["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The release `current` points at under `root`.
fn current_in(root: &std::path::Path) -> String {
    std::fs::read_link(root.join("current"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The release directories under `root`.
fn releases_in(root: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("releases"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Pids of the processes whose command line contains `needle` (a runner's `--root`,
/// which is unique to its test host).
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Waits (up to 25 s: CI's two cores run the other tests meanwhile) until no process
/// mentions `needle`; false if some still do.
fn gone_soon(needle: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    while std::time::Instant::now() < deadline {
        if processes_with(needle).is_empty() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Waits (up to 60 s) until `path` exists.
fn appears(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Changes one byte of a runner file inside its usage text: it still starts, and is
/// no longer the file its digest names.
fn damage(runner: &std::path::Path) {
    let mut bytes = std::fs::read(runner).unwrap();
    let at = bytes
        .windows(20)
        .position(|w| w == b"usage: rustle-runner")
        .unwrap();
    bytes[at] = b'U';
    std::fs::write(runner, bytes).unwrap();
}

/// A plan that notes it started (app/started), runs `sleep secs`, then writes app/after.
fn slow(secs: u32) -> Value {
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "dir", "module": "file", "args": {"path": "{{ ansible_env_home }}/app", "state": "directory"}},
            {"name": "started", "module": "copy", "args": {"content": "yes", "dest": "{{ ansible_env_home }}/app/started"}},
            {"name": "wait", "module": "command", "args": {"_raw_params": format!("sleep {secs}")}},
            {"name": "after", "module": "copy", "args": {"content": "late", "dest": "{{ ansible_env_home }}/app/after"}}
        ]}]
    })
}

/// An inventory for `h` with `rustle_root` set, for a login user who may sudo.
fn inventory_with_root(lab: &Lab, h: &Sshd, root: &std::path::Path) -> PathBuf {
    let inv = lab.dir.path().join(format!("{}-hosts.ini", h.name));
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
    inv
}

fn ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn become_hosts_list_roll_back_and_clean_the_state_their_deploys_made_through_sudo() {
    let lab = Lab::new();
    let h = lab.start("sudo-ops", "rustle-t41");
    lab.trust(&[&h]);
    let _rule = SudoRule::for_user(&h.user);
    // Root's state goes under the test's own directory, not /var/lib/rustle. Only the
    // plan asks for become: the inventory does not say the host needs sudo.
    let root = h.home.parent().unwrap().join("root-state");
    let inv = inventory_with_root(&lab, &h, &root);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    for v in ["v1", "v2"] {
        let mut plan = versioned(v);
        plan["plays"][0]["become"] = json!(true);
        let plan = d.plan_named(&format!("{v}.json"), &plan);
        ok(&d.run(&lab, &["-i", inv, plan.to_str().unwrap()]));
    }
    let ids: Vec<String> = recorded(&root).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(current_in(&root), ids[1]);
    // Root's release is a copy of the runner, not a link to the login user's cache.
    use std::os::unix::fs::MetadataExt as _;
    let release =
        std::fs::metadata(root.join("releases").join(&ids[1]).join("rustle-runner")).unwrap();
    let cache = h.home.join(".rustle/cache");
    let cached = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let cached = std::fs::metadata(cached.join("rustle-runner")).unwrap();
    assert_eq!(release.uid(), 0);
    assert_ne!(
        release.ino(),
        cached.ino(),
        "root's release shares the cache's inode"
    );

    let list = d.run(&lab, &["-i", inv, "--list-deployments"]);
    ok(&list);
    let listing = text(&list.stdout);
    assert!(listing.contains("through sudo"), "{listing}");
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.contains("version 0.1.0"))
            .count(),
        2,
        "{listing}"
    );
    let marked = listing.lines().find(|l| l.starts_with('*')).unwrap();
    assert!(marked.contains(&ids[1]), "{listing}");

    let out = d.run(&lab, &["-i", inv, "--rollback"]);
    ok(&out);
    assert_eq!(
        read(h.home.join("app/version")),
        "v1",
        "the previous release ran again"
    );
    assert_eq!(current_in(&root), ids[0]);

    let out = d.run(&lab, &["-i", inv, "--cleanup"]);
    ok(&out);
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!(
            "sudo-ops: cleaned {} (through sudo)",
            root.display()
        )),
        "{said}"
    );
    assert!(
        !root.join("releases").exists(),
        "root's releases were left behind"
    );
    assert!(!root.join("state.json").exists());
    assert!(!h.home.join(".rustle/cache").exists());
}

#[test]
fn two_deploys_to_one_host_take_turns_and_no_wait_refuses_clearly() {
    let lab = Lab::new();
    let h = lab.start("busy", "rustle-t42");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    // A first deploy makes the deployer's key and fills the host's runner cache.
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let log = h.home.join("app/log");
    let tagged = |tag: &str| {
        json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
                {"name": "slow", "module": "shell", "args": {"_raw_params":
                    format!("echo start {tag} >> {0}; sleep 3; echo end {tag} >> {0}", log.display())}}
            ]}]
        })
    };
    let a = d.plan_named("a.json", &tagged("A"));
    let b = d.plan_named("b.json", &tagged("B"));
    let first = d.spawn(&lab, &["-i", inv, a.to_str().unwrap()]);
    appears(&log);
    let second = d.spawn(&lab, &["-i", inv, b.to_str().unwrap()]);
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    ok(&first);
    ok(&second);
    // The second waited for the first: the runs did not overlap, and both are recorded.
    assert_eq!(
        read(log.clone()),
        "start A\nend A\nstart B\nend B\n",
        "the two deploys ran at the same time"
    );
    let entries = recorded(&h.root());
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(entries.iter().all(|(_, s)| s == "ok"), "{entries:?}");

    // With --no-wait the second is refused at once, saying who holds the host.
    let first = d.spawn(&lab, &["-i", inv, a.to_str().unwrap()]);
    while !read(log.clone()).ends_with("start A\n") {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let refused = d.run(&lab, &["-i", inv, b.to_str().unwrap(), "--no-wait"]);
    let first = first.wait_with_output().unwrap();
    ok(&first);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stdout));
    let said = text(&refused.stdout);
    assert!(
        said.contains("another deploy is running on this host since "),
        "{said}"
    );
    assert!(said.contains(", pid "), "{said}");
    assert!(
        !read(log.clone()).ends_with("end B\n"),
        "the refused deploy ran"
    );
    assert_eq!(recorded(&h.root()).len(), 4, "{:?}", recorded(&h.root()));
}

#[test]
fn a_host_given_up_at_the_timeout_has_its_runner_stopped_and_the_release_failed() {
    let lab = Lab::new();
    let h = lab.start("given-up", "rustle-t43");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let before = current_in(&h.root());
    // 57 s: long enough that it cannot end by itself while `gone_soon` waits (25 s),
    // and a number no other test sleeps.
    let plan = d.plan_named("slow.json", &slow(57));
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv,
            plan.to_str().unwrap(),
            "--timeout",
            "3",
            "--report",
            &report_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let err = r["hosts"]["given-up"]["error"].as_str().unwrap();
    assert!(err.contains("no answer within 3 s"), "{err}");
    assert!(err.contains("may still be running"), "{err}");
    // The runner notices the closed connection, ends its `sleep` and stops.
    let root = h.root().display().to_string();
    assert!(
        gone_soon(&root),
        "the runner still runs: {:?}",
        processes_with(&root)
    );
    assert!(
        gone_soon("sleep\u{0}57\u{0}"),
        "the task's command still runs"
    );
    assert!(
        !h.home.join("app/after").exists(),
        "a task ran after the deployer left"
    );
    assert_eq!(current_in(&h.root()), before);
    let last = recorded(&h.root()).pop().unwrap();
    assert_eq!(last.1, "failed", "{last:?}");
    assert_ne!(last.0, before);
}

#[test]
fn a_local_host_given_up_at_the_timeout_has_its_whole_process_group_ended() {
    let lab = Lab::new();
    let d = Deployer::new();
    let state = d.home.path().join("local-state");
    let out_dir = d.home.path().join("out");
    let inv = d.home.path().join("local.ini");
    std::fs::write(
        &inv,
        format!(
            "local ansible_connection=local rustle_root={} ansible_env_home={}\n",
            state.display(),
            out_dir.display()
        ),
    )
    .unwrap();
    let plan = d.plan(&slow(59));
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--timeout",
            "3",
            "--report",
            &report_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let err = r["hosts"]["local"]["error"].as_str().unwrap();
    assert!(
        err.contains("no answer within 3 s; its runner was stopped"),
        "{err}"
    );
    let root = state.display().to_string();
    assert!(
        gone_soon(&root),
        "the runner still runs: {:?}",
        processes_with(&root)
    );
    assert!(
        gone_soon("sleep\u{0}59\u{0}"),
        "the task's command still runs"
    );
    assert!(out_dir.join("app/started").exists());
    assert!(
        !out_dir.join("app/after").exists(),
        "a task ran after the deployer left"
    );
    assert!(!state.join("current").exists());
}

/// Kills the sshd processes serving `user`'s sessions (not the listening daemon): the
/// host is lost to the deployer as if it had died.
fn kill_sessions_of(user: &str) -> usize {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.starts_with(&format!("sshd: {user} ")) || c.starts_with(&format!("sshd: {user}@"))
            })
        })
        .collect();
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    pids.len()
}

#[test]
fn a_host_lost_while_its_runner_runs_is_reported_keeps_its_release_and_deploys_again() {
    let lab = Lab::new();
    let h = lab.start("lost", "rustle-t44");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let before = current_in(&h.root());
    // 31: the timeout test beside this one looks for its own `sleep 57` to end.
    let plan = d.plan_named("slow.json", &slow(31));
    let (report_path, report_arg) = report(&d);
    let running = d.spawn(
        &lab,
        &["-i", inv, plan.to_str().unwrap(), "--report", &report_arg],
    );
    appears(&h.home.join("app/started"));
    assert!(kill_sessions_of(&h.user) > 0, "no sshd session found");
    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(r["hosts"]["lost"]["status"], "unreachable");
    let err = r["hosts"]["lost"]["error"].as_str().unwrap();
    assert!(err.contains("connection to the host was lost"), "{err}");
    let root = h.root().display().to_string();
    assert!(
        gone_soon(&root),
        "the runner still runs: {:?}",
        processes_with(&root)
    );
    assert!(
        !h.home.join("app/after").exists(),
        "a task ran after the host was lost"
    );
    assert_eq!(current_in(&h.root()), before);
    assert_eq!(recorded(&h.root()).pop().unwrap().1, "failed");

    let v2 = d.plan_named("v2.json", &versioned("v2"));
    ok(&d.run(&lab, &["-i", inv, v2.to_str().unwrap()]));
    assert_eq!(read(h.home.join("app/version")), "v2");
    assert_ne!(current_in(&h.root()), before);
}

#[test]
fn a_full_disk_on_the_host_is_a_clear_error_and_the_previous_release_stays() {
    let lab = Lab::new();
    let h = lab.start("full", "rustle-t45");
    lab.trust(&[&h]);
    let root = h.home.parent().unwrap().join("small-root");
    // Room for the cache and three releases of the runner (about 5.3 MB each); each
    // step fills the disk to what it tests with `fill`.
    let disk = Tmpfs::mount(&root, "32m", &h.user);
    let inv = inventory_with_root(&lab, &h, &root);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let before = current_in(&root);
    let v2 = d.plan_named("v2.json", &versioned("v2"));
    let (report_path, report_arg) = report(&d);
    let error = || {
        let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
        r["hosts"]["full"]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // The runner is cached, but its copy into the new release does not fit.
    let filler = disk.fill(200_000);
    let out = d.run(
        &lab,
        &["-i", inv, v2.to_str().unwrap(), "--report", &report_arg],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(error().contains("No space left on device"), "{}", error());
    assert!(error().contains("no task was run"), "{}", error());
    assert_eq!(current_in(&root), before);
    assert_eq!(
        releases_in(&root),
        std::slice::from_ref(&before),
        "a half-installed release stayed"
    );

    // The runner is not cached, and the upload itself does not fit.
    std::fs::remove_dir_all(root.join("cache")).unwrap();
    disk.fill(1_000_000);
    let out = d.run(
        &lab,
        &["-i", inv, v2.to_str().unwrap(), "--report", &report_arg],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(error().contains("No space left on device"), "{}", error());
    assert_eq!(current_in(&root), before);
    assert_eq!(read(h.home.join("app/version")), "v1");

    // Room again: the deploy goes through.
    std::fs::remove_file(&filler).unwrap();
    ok(&d.run(&lab, &["-i", inv, v2.to_str().unwrap()]));
    assert_eq!(read(h.home.join("app/version")), "v2");
    let now = current_in(&root);
    assert_ne!(now, before);

    // A task whose target directory is full fails that host; `current` stays.
    let target = h.home.join("small-target");
    let _target_disk = Tmpfs::mount(&target, "64k", &h.user);
    let big = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "big", "module": "copy", "args": {"content": "x".repeat(300_000), "dest": format!("{}/big", target.display())}}
        ]}]
    });
    let big = d.plan_named("big.json", &big);
    let out = d.run(&lab, &["-i", inv, big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("No space left on device"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(current_in(&root), now);
}

#[test]
fn permission_denied_on_a_target_path_fails_the_task_and_keeps_the_release() {
    let lab = Lab::new();
    let h = lab.start("denied", "rustle-t46");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let before = current_in(&h.root());
    // A directory of root's that the login user may read but not write.
    let closed = h.home.join("roots-own");
    std::fs::create_dir_all(&closed).unwrap();
    let dest = closed.join("conf");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "write", "module": "copy", "args": {"content": "x", "dest": dest.to_str().unwrap()}},
            {"name": "after", "module": "copy", "args": {"content": "late", "dest": "{{ ansible_env_home }}/app/after"}}
        ]}]
    });
    let plan = d.plan_named("denied.json", &plan);
    let out = d.run(&lab, &["-i", inv, plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let said = text(&out.stdout);
    assert!(said.contains("failed: [denied] => write"), "{said}");
    assert!(said.contains("Permission denied"), "{said}");
    assert!(!dest.exists() && !h.home.join("app/after").exists());
    assert_eq!(current_in(&h.root()), before);
}

#[test]
fn rollback_after_a_failed_release_checks_the_runner_and_keeps_current_when_the_rerun_fails() {
    let lab = Lab::new();
    let h = lab.start("rb2", "rustle-t47");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    for v in ["v1", "v2"] {
        let plan = d.plan_named(&format!("{v}.json"), &versioned(v));
        ok(&d.run(&lab, &["-i", inv, plan.to_str().unwrap()]));
    }
    let ids: Vec<String> = recorded(&h.root()).into_iter().map(|(id, _)| id).collect();
    let mut v3 = versioned("v3");
    v3["plays"][0]["tasks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "boom", "module": "fail", "args": {"msg": "no"}}));
    let v3 = d.plan_named("v3.json", &v3);
    assert_eq!(
        d.run(&lab, &["-i", inv, v3.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(current_in(&h.root()), ids[1]);
    assert_eq!(read(h.home.join("app/version")), "v3", "v3 got half way");

    // After a failed release, rollback runs the last good one (still current) again.
    let out = d.run(&lab, &["-i", inv, "--rollback"]);
    ok(&out);
    assert_eq!(read(h.home.join("app/version")), "v2");
    assert_eq!(current_in(&h.root()), ids[1]);

    // The next rollback goes to v1, whose runner must still be the file installed.
    let runner = h
        .root()
        .join("releases")
        .join(&ids[0])
        .join("rustle-runner");
    let good = std::fs::read(&runner).unwrap();
    damage(&runner);
    let out = d.run(&lab, &["-i", inv, "--rollback"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a changed release runner was run"
    );
    assert!(
        text(&out.stdout).contains("is not the file installed"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(read(h.home.join("app/version")), "v2");
    assert_eq!(current_in(&h.root()), ids[1]);

    // A rollback whose run fails leaves `current` where it was, and says so.
    std::fs::write(&runner, &good).unwrap();
    let app = h.home.join("app");
    let chown = |owner: &str| {
        let st = Command::new("chown").arg(owner).arg(&app).status().unwrap();
        assert!(st.success());
    };
    chown("root:");
    let out = d.run(&lab, &["-i", inv, "--rollback"]);
    chown(&format!("{}:", h.user));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("current is still {}", ids[1])),
        "{said}"
    );
    assert_eq!(current_in(&h.root()), ids[1]);
    assert_eq!(read(h.home.join("app/version")), "v2");
}

#[test]
fn releases_beyond_the_last_five_are_pruned_and_current_always_stays() {
    let lab = Lab::new();
    let h = lab.start("prune", "rustle-t48");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    for i in 1..=7 {
        let plan = d.plan_named(&format!("v{i}.json"), &versioned(&format!("v{i}")));
        ok(&d.run(&lab, &["-i", inv, plan.to_str().unwrap()]));
    }
    let releases = releases_in(&h.root());
    assert_eq!(releases.len(), 5, "{releases:?}");
    assert!(releases.contains(&current_in(&h.root())));
    let entries = recorded(&h.root());
    assert_eq!(entries.len(), 5, "{entries:?}");
    assert!(
        entries.iter().all(|(id, _)| releases.contains(id)),
        "{entries:?}"
    );
    let cached = std::fs::read_dir(h.root().join("cache")).unwrap().count();
    assert!(cached <= 5, "{cached} runners cached");

    let plan = d.plan_named("v8.json", &versioned("v8"));
    ok(&d.run(
        &lab,
        &["-i", inv, plan.to_str().unwrap(), "--keep-releases", "2"],
    ));
    let releases = releases_in(&h.root());
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(releases.contains(&current_in(&h.root())));
}

#[test]
fn a_damaged_runner_in_the_host_cache_is_sent_again_and_a_loose_cache_refused() {
    let lab = Lab::new();
    let h = lab.start("cache", "rustle-t49");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let dir = std::fs::read_dir(h.root().join("cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let cached = dir.join("rustle-runner");
    damage(&cached);

    let v2 = d.plan_named("v2.json", &versioned("v2"));
    let (report_path, report_arg) = report(&d);
    let out = d.run(
        &lab,
        &["-i", inv, v2.to_str().unwrap(), "--report", &report_arg],
    );
    ok(&out);
    assert_eq!(read(h.home.join("app/version")), "v2");
    let r: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let sent = r["hosts"]["cache"]["timings"]["bytes_sent"]
        .as_u64()
        .unwrap();
    assert!(
        sent > 1_000_000,
        "the runner was not sent again: {sent} bytes"
    );
    let digest = blake3::hash(&std::fs::read(&cached).unwrap())
        .to_hex()
        .to_string();
    assert_eq!(
        digest,
        dir.file_name().unwrap().to_str().unwrap(),
        "the cache still holds the damaged runner"
    );

    // A cache directory others may write to is never run from.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let v3 = d.plan_named("v3.json", &versioned("v3"));
    let out = d.run(&lab, &["-i", inv, v3.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("is not private"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(read(h.home.join("app/version")), "v2");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    ok(&d.run(&lab, &["-i", inv, v3.to_str().unwrap()]));
    assert_eq!(read(h.home.join("app/version")), "v3");
}

#[test]
fn a_damaged_state_file_is_named_and_never_replaced() {
    let lab = Lab::new();
    let h = lab.start("damaged", "rustle-t50");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    let v1 = d.plan(&versioned("v1"));
    ok(&d.run(&lab, &["-i", inv, v1.to_str().unwrap()]));
    let before = current_in(&h.root());
    let state = h.root().join("state.json");
    std::fs::write(&state, "{ not json").unwrap();
    let name = state.display().to_string();

    let v2 = d.plan_named("v2.json", &versioned("v2"));
    let out = d.run(&lab, &["-i", inv, v2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&name), "{}", text(&out.stdout));
    assert_eq!(read(h.home.join("app/version")), "v1", "a task ran");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "{ not json");
    assert_eq!(current_in(&h.root()), before);

    let list = d.run(&lab, &["-i", inv, "--list-deployments"]);
    assert_eq!(list.status.code(), Some(3), "{}", text(&list.stdout));
    assert!(text(&list.stdout).contains(&name), "{}", text(&list.stdout));
    let out = d.run(&lab, &["-i", inv, "--rollback"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&name), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "{ not json");
}

#[test]
fn a_login_with_no_record_of_the_deploys_still_finds_the_root_they_made_through_sudo() {
    let lab = Lab::new();
    let h = lab.start("sudo-other", "rustle-p5");
    lab.trust(&[&h]);
    let _rule = SudoRule::for_user(&h.user);
    let root = h.home.parent().unwrap().join("root-state");
    let inv = inventory_with_root(&lab, &h, &root);
    let inv = inv.to_str().unwrap();
    let d = Deployer::new();
    for v in ["v1", "v2"] {
        let mut plan = versioned(v);
        plan["plays"][0]["become"] = json!(true);
        let plan = d.plan_named(&format!("{v}.json"), &plan);
        ok(&d.run(&lab, &["-i", inv, plan.to_str().unwrap()]));
    }
    let ids: Vec<String> = recorded(&root).into_iter().map(|(id, _)| id).collect();
    // Another operator, or a CI job, logging in as a user whose record says nothing:
    // the inventory does not say become either.
    std::fs::remove_file(h.home.join(".rustle/roots")).unwrap();

    let list = d.run(&lab, &["-i", inv, "--list-deployments"]);
    ok(&list);
    let listing = text(&list.stdout);
    assert!(listing.contains("through sudo"), "{listing}");
    for id in &ids {
        assert!(listing.contains(id.as_str()), "{id}: {listing}");
    }
    ok(&d.run(&lab, &["-i", inv, "--rollback"]));
    assert_eq!(read(h.home.join("app/version")), "v1");
    assert_eq!(current_in(&root), ids[0]);
}

#[test]
fn blue_green_gives_each_host_a_whole_time_limit_for_its_switch() {
    let lab = Lab::new();
    let early = lab.start("bg-early", "rustle-p7");
    let late = lab.start("bg-late", "rustle-p8");
    lab.trust(&[&early, &late]);
    let inv = lab.inventory(&[&early, &late]);
    // Another deploy (this test) holds the late host's state root for 12 s, so it
    // stages that much later; the early host waits for it. Then each host's switch
    // runs a 10 s task: in all, the early host needs more than --timeout 20, though no
    // phase of it does.
    let root = late.root();
    std::fs::create_dir_all(&root).unwrap();
    let lock_path = root.join(".lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    let owner = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:", late.user))
        .arg(&root)
        .status()
        .unwrap();
    assert!(owner.success());
    lock.lock().unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(12));
        drop(lock);
    });
    let d = Deployer::new();
    let mut plan = versioned("switched");
    plan["plays"][0]["tasks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "slow", "module": "command", "args": {"_raw_params": "sleep 10"}}));
    let plan = d.plan(&plan);
    let out = d.run(
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--strategy",
            "blue-green",
            "--timeout",
            "20",
        ],
    );
    holder.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for h in [&early, &late] {
        assert_eq!(read(h.home.join("app/version")), "switched", "{}", h.name);
    }
}
