//! The controller channel end to end: real runners on real OpenSSH `sshd` test hosts
//! asking the deployer for delegated (`delegate_to: localhost`) and `run_once` tasks.
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

use rustle_runner::plan::Templated;
use serde_json::{Value, json};
use sshd::{Lab, Sshd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn deployer(lab: &Lab, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
    c.args(args)
        .arg("--known-hosts")
        .arg(&lab.known_hosts)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUSTLE_DEPLOY_KEY");
    c
}

/// A lab of test hosts `<name><i>` (users `<user><i>`) for `i` in `range`, trusted,
/// and their inventory.
fn lab_of(range: std::ops::Range<usize>, name: &str, user: &str) -> (Lab, Vec<Sshd>, PathBuf) {
    let lab = Lab::new();
    let hosts: Vec<Sshd> = range
        .map(|i| lab.start(&format!("{name}{i}"), &format!("{user}{i}")))
        .collect();
    let refs: Vec<&Sshd> = hosts.iter().collect();
    lab.trust(&refs);
    let inv = lab.inventory(&refs);
    (lab, hosts, inv)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_plan(dir: &Path, tasks: Value) -> PathBuf {
    let p = dir.join("plan.json");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": tasks}]
    });
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    p
}

fn run(lab: &Lab, home: &Path, args: &[&str]) -> (Output, Value) {
    let report = home.join("report.json");
    let mut all = args.to_vec();
    all.extend(["--report", report.to_str().unwrap()]);
    let out = deployer(lab, home, &all).output().unwrap();
    let r =
        serde_json::from_slice(&std::fs::read(&report).unwrap_or_default()).unwrap_or(Value::Null);
    (out, r)
}

fn task_names(r: &Value, host: &str) -> Vec<String> {
    r["hosts"][host]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks for {host}: {r}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn me() -> String {
    text(&Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_string()
}

#[test]
fn delegated_tasks_run_on_the_controller_and_run_once_runs_once_across_hosts() {
    let (lab, hosts, inv) = lab_of(0..3, "c", "rustle-ch");
    let home = tempfile::tempdir().unwrap();
    let log = home.path().join("controller.log");
    let plan = write_plan(
        home.path(),
        json!([
            {"name": "who", "module": "command", "args": {"_raw_params": "id -un"}, "delegate_to": "localhost", "register": "d", "changed_when": false},
            {"name": "here", "module": "command", "args": {"_raw_params": "id -un"}, "register": "h", "changed_when": false},
            {"name": "keep", "module": "copy", "args": {"content": "{{ d.stdout }} for {{ inventory_hostname }}, {{ h.stdout }} here\n", "dest": "{{ ansible_env_home }}/delegated"}},
            {"name": "log", "module": "shell", "args": {"_raw_params": format!("echo {{{{ inventory_hostname }}}} >> {}", log.display())}, "delegate_to": "127.0.0.1"},
            {"name": "once", "module": "command", "args": {"_raw_params": "echo {{ inventory_hostname }}"}, "run_once": true, "register": "o"},
            {"name": "keep once", "module": "copy", "args": {"content": "{{ o.stdout }}\n", "dest": "{{ ansible_env_home }}/once"}}
        ]),
    );
    let (out, r) = run(
        &lab,
        home.path(),
        &["-i", inv.to_str().unwrap(), plan.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let controller = me();
    for h in &hosts {
        assert_eq!(
            std::fs::read_to_string(h.home.join("delegated")).unwrap(),
            format!("{controller} for {}, {} here\n", h.name, h.user)
        );
    }
    let mut logged: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    logged.sort();
    assert_eq!(logged, ["c0", "c1", "c2"]);
    // Exactly one host ran (and reported) the run_once task; every host registered
    // that host's result.
    let ran: Vec<&Sshd> = hosts
        .iter()
        .filter(|h| task_names(&r, &h.name).contains(&"once".to_string()))
        .collect();
    assert_eq!(ran.len(), 1, "{r}");
    for h in &hosts {
        assert_eq!(
            std::fs::read_to_string(h.home.join("once")).unwrap(),
            format!("{}\n", ran[0].name)
        );
    }
}

/// A deployer started in the background, ended if the test fails before it does.
struct Reaped(Option<std::process::Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The pids of processes run by `user` whose command line mentions `needle`.
fn processes_of(user: &str, needle: &str) -> Vec<i32> {
    let uid: u32 = text(
        &Command::new("id")
            .args(["-u", user])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let owned = std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())
                })
            });
            owned
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
        })
        .collect()
}

/// The deployer started in the background on `plan` (a 120 s timeout, a report).
fn start_deployer(lab: &Lab, home: &Path, inv: &Path, plan: &Path, report: &Path) -> Reaped {
    let child = deployer(
        lab,
        home,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--timeout",
            "120",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    Reaped(Some(child))
}

/// Once `user` runs a process whose command line holds `needle`, waits 3 s, runs
/// `check`, and kills that user's runner.
fn kill_runner_in(user: &str, needle: &str, check: impl FnOnce()) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let runner = loop {
        assert!(Instant::now() < deadline, "{user} never ran {needle}");
        if !processes_of(user, needle).is_empty() {
            std::thread::sleep(Duration::from_secs(3));
            check();
            break processes_of(user, "rustle-runner");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!runner.is_empty());
    for pid in runner {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn hosts_waiting_on_a_run_once_host_that_dies_fail_clearly_without_waiting_for_the_timeout() {
    let (lab, _hosts, inv) = lab_of(3..6, "c", "rustle-ch");
    let home = tempfile::tempdir().unwrap();
    // c3 reaches the run_once task first and hangs in it; the others wait for it.
    let plan = write_plan(
        home.path(),
        json!([
            {"name": "stagger", "module": "command", "args": {"_raw_params": "sleep {{ 0 if inventory_hostname == 'c3' else 2 }}"}},
            {"name": "once", "module": "command", "args": {"_raw_params": "sleep 67"}, "run_once": true}
        ]),
    );
    let started = Instant::now();
    let report = home.path().join("report.json");
    let mut child = start_deployer(&lab, home.path(), &inv, &plan, &report);
    // Once c3 sleeps in the run_once task, its runner dies.
    kill_runner_in("rustle-ch3", "sleep 67", || {});
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the waiting hosts waited {:?}",
        started.elapsed()
    );
    assert_ne!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for waiting in ["c4", "c5"] {
        assert_eq!(r["hosts"][waiting]["status"], "failed", "{r}");
        let once = r["hosts"][waiting]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "once")
            .unwrap_or_else(|| panic!("{r}"));
        let msg = once["result"]["msg"].as_str().unwrap();
        assert!(
            msg.contains("c3 ran it and ended before it reported a result"),
            "{msg}"
        );
    }
}

#[test]
fn when_the_controller_dies_during_a_delegated_task_the_runner_stops_and_the_release_stays() {
    let lab = Lab::new();
    let host = lab.start("c6", "rustle-ch6");
    lab.trust(&[&host]);
    let inv = lab.inventory(&[&host]);
    let home = tempfile::tempdir().unwrap();
    let root = host.root();
    // A first release, without the channel, becomes current.
    let first = write_plan(
        home.path(),
        json!([{"name": "v1", "module": "copy", "args": {"content": "v1\n", "dest": "{{ ansible_env_home }}/v"}}]),
    );
    let (out, _) = run(
        &lab,
        home.path(),
        &["-i", inv.to_str().unwrap(), first.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let good = std::fs::read_link(root.join("current")).unwrap();
    // The second waits on the controller, which dies meanwhile.
    let second = write_plan(
        home.path(),
        json!([
            {"name": "wait here", "module": "command", "args": {"_raw_params": "sleep 71"}, "delegate_to": "localhost"},
            {"name": "never", "module": "copy", "args": {"content": "v2\n", "dest": "{{ ansible_env_home }}/v"}}
        ]),
    );
    let child = deployer(
        &lab,
        home.path(),
        &["-i", inv.to_str().unwrap(), second.to_str().unwrap()],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut child = Reaped(Some(child));
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_of(&me(), "sleep 71").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the delegated task never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut deploy = child.0.take().unwrap();
    deploy.kill().unwrap();
    deploy.wait().unwrap();
    // The runner learns it within seconds: its answer never comes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_of("rustle-ch6", "rustle-runner").is_empty() {
        assert!(Instant::now() < deadline, "the runner kept running");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(host.home.join("v")).unwrap(),
        "v1\n"
    );
    assert_eq!(std::fs::read_link(root.join("current")).unwrap(), good);
    let state: Value =
        serde_json::from_slice(&std::fs::read(root.join("state.json")).unwrap()).unwrap();
    let last = state["deployments"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["status"], "failed", "{state}");
    for pid in processes_of(&me(), "sleep 71") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Local hosts (run through `sh` on the controller), in binary mode and in SSH mode: the
/// same channel, the same answers.
/// An inventory of `hosts` on this machine (`ansible_connection=local`), each with its
/// root under `dir`.
fn local_inventory(dir: &Path, hosts: &[&str]) -> PathBuf {
    let inv = dir.join("hosts.ini");
    let mut ini = String::from("[all]\n");
    for h in hosts {
        ini.push_str(&format!(
            "{h} ansible_connection=local rustle_root={}\n",
            dir.join(h).display()
        ));
    }
    std::fs::write(&inv, ini).unwrap();
    inv
}

/// Deploys `plan` to the hosts of `inv` with `strategy`, which must succeed; the path
/// of its report.
fn deploy_locally(dir: &Path, inv: &Path, plan: &Path, strategy: &str) -> PathBuf {
    let report = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(["-i", inv.to_str().unwrap(), plan.to_str().unwrap()])
        .args(["--strategy", strategy, "--report", report.to_str().unwrap()])
        .env("HOME", dir)
        .env_remove("RUSTLE_DEPLOY_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{strategy}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    report
}

/// `check_mode: false` on a block around a task delegated to the controller holds
/// under `--check` there too (node_exporter's checksum fetch): the controller runs it.
#[test]
fn a_blocks_check_mode_false_reaches_a_task_delegated_to_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let inv = local_inventory(dir.path(), &["l1"]);
    let marker = dir.path().join("ran");
    let plan = write_plan(
        dir.path(),
        json!([
            {"name": "outer", "delegate_to": "localhost", "block": [
                {"name": "inner", "check_mode": false, "block": [
                    {"name": "touch", "module": "command", "args": {"_raw_params": format!("touch {}", marker.display())}}
                ]}
            ]}
        ]),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args([
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--check",
        ])
        .env("HOME", dir.path())
        .env_remove("RUSTLE_DEPLOY_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(marker.exists(), "{}", text(&out.stdout));
}

#[test]
fn local_hosts_use_the_channel_in_binary_and_ssh_mode() {
    for strategy in ["parallel", "ssh"] {
        let dir = tempfile::tempdir().unwrap();
        let inv = local_inventory(dir.path(), &["l1", "l2", "l3"]);
        let log = dir.path().join("once.log");
        let plan = write_plan(
            dir.path(),
            json!([
                {"name": "once", "module": "shell", "args": {"_raw_params": format!("echo {{{{ inventory_hostname }}}} >> {}; echo {{{{ inventory_hostname }}}}", log.display())}, "run_once": true, "register": "o"},
                {"name": "delegated", "module": "command", "args": {"_raw_params": "echo {{ o.stdout }} seen by {{ inventory_hostname }}"}, "delegate_to": "localhost", "register": "d"},
                {"name": "check", "module": "assert", "args": {"that": ["d.stdout == o.stdout + ' seen by ' + inventory_hostname"]}}
            ]),
        );
        let report = deploy_locally(dir.path(), &inv, &plan, strategy);
        let ran = std::fs::read_to_string(&log).unwrap();
        assert_eq!(ran.lines().count(), 1, "{strategy}: {ran}");
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        for h in ["l1", "l2", "l3"] {
            assert_eq!(r["hosts"][h]["status"], "ok", "{strategy}: {r}");
            assert!(task_names(&r, h).contains(&"check".to_string()));
        }
    }
}

/// Hosts go through a block in lockstep as Ansible's linear strategy has them: the
/// rescue of the host that failed runs before the `always` of every host, so a host
/// that skipped the rescue reads in its `always` what the other set there (ansible-core's
/// handlers target, test_flush_in_rescue_always.yml). The rescue is slow on purpose: a
/// host that counted tasks instead would read the other before it got there.
#[test]
fn a_host_in_always_reads_what_another_set_in_its_rescue() {
    for strategy in ["parallel", "ssh"] {
        let dir = tempfile::tempdir().unwrap();
        let inv = local_inventory(dir.path(), &["l1", "l2"]);
        let plan = write_plan(
            dir.path(),
            json!([
                {"name": "b", "block": [
                    {"name": "fails on l1", "module": "fail", "args": {"msg": "expected"}, "when": "inventory_hostname == 'l1'"}
                ], "rescue": [
                    {"name": "slow", "module": "command", "args": {"_raw_params": "sleep 1"}},
                    {"name": "mark", "module": "set_fact", "args": {"was_in_rescue": true}}
                ], "always": [
                    {"name": "lockstep", "module": "assert", "args": {"that": ["hostvars['l1']['was_in_rescue'] | default(false)"]}}
                ]}
            ]),
        );
        let report = deploy_locally(dir.path(), &inv, &plan, strategy);
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        for h in ["l1", "l2"] {
            assert_eq!(r["hosts"][h]["status"], "ok", "{strategy}: {r}");
            assert!(task_names(&r, h).contains(&"lockstep".to_string()), "{r}");
        }
        assert!(task_names(&r, "l1").contains(&"mark".to_string()), "{r}");
        assert!(!task_names(&r, "l2").contains(&"mark".to_string()), "{r}");
    }
}

/// The playbook keywords that use the channel become plan fields; what is not
/// supported yet is refused when the plan is made, naming the keyword.
#[test]
fn playbook_keywords_for_the_channel() {
    use rustle_deploy::playbook::{PlaybookOptions, load_playbook};
    let load = |yaml: &str| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("play.yml");
        std::fs::write(&p, yaml).unwrap();
        load_playbook(&p, &PlaybookOptions::default()).map_err(|e| e.to_string())
    };
    let plan = load(
        "- hosts: all\n  tasks:\n\
         \x20   - local_action: command echo hi\n\
         \x20   - command: echo there\n      connection: local\n\
         \x20   - command: echo t\n      delegate_to: \"{{ groups.all[0] }}\"\n      delegate_facts: true\n      run_once: yes\n\
         \x20   - command: echo plain\n",
    )
    .unwrap();
    let tasks = &plan.plays[0].tasks;
    assert_eq!(tasks[0].module, "command");
    assert_eq!(tasks[0].args["_raw_params"], "echo hi");
    assert_eq!(tasks[0].delegate_to.as_deref(), Some("localhost"));
    assert_eq!(tasks[1].delegate_to.as_deref(), Some("localhost"));
    assert_eq!(tasks[2].delegate_to.as_deref(), Some("{{ groups.all[0] }}"));
    assert!(tasks[2].delegate_facts && tasks[2].may_run_once());
    assert!(tasks[3].delegate_to.is_none() && !tasks[3].may_run_once());
    // Another inventory host by name: checked against the inventory when it runs.
    let plan = load("- hosts: all\n  tasks:\n    - command: x\n      delegate_to: db1\n").unwrap();
    assert_eq!(plan.plays[0].tasks[0].delegate_to.as_deref(), Some("db1"));
    // On a block, for each task inside that says nothing else.
    let plan = load(
        "- hosts: all\n  tasks:\n    - delegate_to: localhost\n      run_once: true\n      block:\n\
         \x20       - command: a\n\
         \x20       - command: b\n          delegate_to: \"{{ inventory_hostname }}\"\n",
    )
    .unwrap();
    let inner = plan.plays[0].tasks[0].block.as_ref().unwrap();
    assert_eq!(inner[0].delegate_to.as_deref(), Some("localhost"));
    assert_eq!(
        inner[1].delegate_to.as_deref(),
        Some("{{ inventory_hostname }}")
    );
    assert!(inner[0].may_run_once() && inner[1].may_run_once());
    for (yaml, keyword, why) in [
        (
            "- hosts: all\n  tasks:\n    - command: x\n      connection: ssh\n",
            "connection",
            "only `connection: local`",
        ),
        (
            "- hosts: all\n  tasks:\n    - block:\n        - include_tasks: x.yml\n      run_once: true\n",
            "run_once",
            "holding include_tasks",
        ),
        (
            "- hosts: all\n  run_once: true\n  tasks:\n    - include_tasks: x.yml\n",
            "run_once",
            "holding include_tasks",
        ),
    ] {
        let err = load(yaml).unwrap_err();
        assert!(err.contains(keyword) && err.contains(why), "{err}");
    }
    // On a play, for each task and handler (inside blocks too) that says nothing else.
    let plan = load(
        "- hosts: all\n  run_once: true\n  throttle: 2\n  tasks:\n    - command: a\n\
         \x20   - block:\n        - command: b\n          throttle: 1\n\
         \x20 handlers:\n    - name: h\n      command: c\n",
    )
    .unwrap();
    let play = &plan.plays[0];
    let inner = play.tasks[1].block.as_ref().unwrap();
    for t in [&play.tasks[0], &inner[0], &play.handlers[0]] {
        assert!(t.may_run_once(), "{t:?}");
    }
    assert_eq!(play.tasks[0].throttle, Some(Templated::Value(2)));
    assert_eq!(inner[0].throttle, Some(Templated::Value(1)));
    assert_eq!(play.handlers[0].throttle, Some(Templated::Value(2)));
}

fn write_fatal_plan(dir: &Path, tasks: Value) -> PathBuf {
    let p = dir.join("fatal.json");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [
            {"name": "fatal", "hosts": ["all"], "any_errors_fatal": true, "tasks": tasks},
            {"name": "later", "hosts": ["all"], "tasks": [
                {"name": "later play", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/later"}}
            ]}
        ]
    });
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    p
}

#[test]
fn any_errors_fatal_stops_every_host_at_the_end_of_the_task_one_host_failed() {
    let (lab, hosts, inv) = lab_of(0..3, "f", "rustle-fatal");
    let home = tempfile::tempdir().unwrap();
    // f1 fails at once; f0 and f2 finish the task (after a while), then stop: no host
    // runs the next task or the next play.
    let plan = write_fatal_plan(
        home.path(),
        json!([
            {"name": "first", "module": "shell", "args": {"_raw_params": "if [ {{ inventory_hostname }} = f1 ]; then exit 1; fi; sleep 2; touch {{ ansible_env_home }}/first"}},
            {"name": "second", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/second"}}
        ]),
    );
    let (out, r) = run(
        &lab,
        home.path(),
        &["-i", inv.to_str().unwrap(), plan.to_str().unwrap()],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for h in &hosts {
        assert!(
            !h.home.join("second").exists(),
            "{} ran the next task",
            h.name
        );
        assert!(
            !h.home.join("later").exists(),
            "{} ran the next play",
            h.name
        );
        assert_eq!(task_names(&r, &h.name), ["first"], "{r}");
    }
    assert!(!hosts[1].home.join("first").exists());
    assert!(hosts[0].home.join("first").exists(), "f0 was cut short");
    assert!(hosts[2].home.join("first").exists(), "f2 was cut short");
    // Only f1 failed a task; the others were failed by any_errors_fatal.
    assert_eq!(r["hosts"]["f1"]["recap"]["failed"], 1, "{r}");
    assert_eq!(r["hosts"]["f0"]["recap"]["failed"], 0, "{r}");
    assert_ne!(r["hosts"]["f0"]["status"], "ok", "{r}");
}

#[test]
fn any_errors_fatal_sends_every_host_to_its_rescue_and_a_rescue_recovers() {
    let (lab, hosts, inv) = lab_of(0..2, "r", "rustle-rescue");
    let home = tempfile::tempdir().unwrap();
    // Ansible's integration test 80981: r0 fails in a block; both hosts run the rescue,
    // neither runs the rest of the block, both go on after it.
    let plan = write_fatal_plan(
        home.path(),
        json!([
            {"block": [
                {"name": "fail", "module": "fail", "args": {}, "when": "inventory_hostname == 'r0'"},
                {"name": "should not happen", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/not"}}
            ], "rescue": [
                {"name": "rescued", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/rescued"}}
            ]},
            {"name": "recovered", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/recovered"}}
        ]),
    );
    let (out, r) = run(
        &lab,
        home.path(),
        &["-i", inv.to_str().unwrap(), plan.to_str().unwrap()],
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for h in &hosts {
        assert!(!h.home.join("not").exists(), "{}: {r}\n{said}", h.name);
        assert!(h.home.join("rescued").exists(), "{}: {r}\n{said}", h.name);
        assert!(h.home.join("recovered").exists(), "{}: {r}\n{said}", h.name);
    }
    assert_eq!(r["hosts"]["r0"]["recap"]["rescued"], 1, "{r}");
}

/// `throttle` on a block: at most that many hosts run its task at once, and, the play
/// being linear, no host starts the next task before every host has finished this one
/// (Ansible's lockstep, which keeps the turns apart from the tasks around them). Under
/// `strategy: free` a host goes on at once.
#[test]
fn throttle_lets_that_many_hosts_run_the_task_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let (lab, _hosts, inv) = lab_of(0..3, "t", "rustle-throttle");
    for strategy in ["linear", "free"] {
        let home = tempfile::tempdir().unwrap();
        // A directory every host's user may write: `mkdir busy` fails for a host that
        // starts while another one holds it.
        let shared = tempfile::tempdir().unwrap();
        std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let busy = shared.path().join("busy");
        let log = shared.path().join("log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        let playbook = home.path().join("site.yml");
        std::fs::write(
            &playbook,
            format!(
                "- hosts: all\n  gather_facts: false\n  strategy: {strategy}\n  tasks:\n\
                 \x20   - throttle: 1\n      block:\n\
                 \x20       - name: one at a time\n\
                 \x20         shell: mkdir {b} && echo {{{{ inventory_hostname }}}} >> {l} && sleep 2 && rmdir {b}\n\
                 \x20   - name: after\n\
                 \x20     shell: echo after >> {l}\n",
                b = busy.display(),
                l = log.display()
            ),
        )
        .unwrap();
        let (out, r) = run(
            &lab,
            home.path(),
            &["-i", inv.to_str().unwrap(), playbook.to_str().unwrap()],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{strategy}: {}{}\n{r}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut ran: Vec<String> = lines.iter().filter(|l| *l != "after").cloned().collect();
        ran.sort();
        assert_eq!(ran, ["t0", "t1", "t2"], "{strategy}: {lines:?}");
        let first_after = lines.iter().position(|l| l == "after").unwrap();
        if strategy == "linear" {
            assert_eq!(first_after, 3, "linear: {lines:?}");
        } else {
            // The host with the first turn goes on while the others wait for theirs.
            assert!(first_after < 3, "free: {lines:?}");
        }
    }
}

/// An INI inventory of the lab's hosts in the given groups, each host with the lab's
/// connection variables and `marker=m-<name>`.
fn grouped_inventory(lab: &Lab, groups: &[(&str, &[&Sshd])]) -> PathBuf {
    let all: Vec<&Sshd> = groups.iter().flat_map(|(_, h)| h.iter().copied()).collect();
    let lines = std::fs::read_to_string(lab.inventory(&all)).unwrap();
    let mut text = String::new();
    for (group, hosts) in groups {
        text.push_str(&format!("[{group}]\n"));
        for h in *hosts {
            let line = lines
                .lines()
                .find(|l| l.split_whitespace().next() == Some(h.name.as_str()))
                .unwrap();
            text.push_str(&format!("{line} marker=m-{}\n", h.name));
        }
    }
    let path = lab.dir.path().join("grouped.ini");
    std::fs::write(&path, text).unwrap();
    path
}

/// `delegate_to` another inventory host (`delegate_to: "{{ groups.lb[0] }}"`, or its
/// name): the deployer runs the module on that host over that host's own connection,
/// rendered with the delegating host's variables; the delegating host registers the
/// result. That host need not be in the play. In binary mode and in SSH mode alike.
#[test]
fn delegate_to_another_inventory_host_runs_the_module_there() {
    let lab = Lab::new();
    let web: Vec<Sshd> = (0..2)
        .map(|i| lab.start(&format!("w{i}"), &format!("rustle-dw{i}")))
        .collect();
    let lb = lab.start("lb0", "rustle-dlb0");
    let mut refs: Vec<&Sshd> = web.iter().collect();
    refs.push(&lb);
    lab.trust(&refs);
    let web_refs: Vec<&Sshd> = web.iter().collect();
    let inv = grouped_inventory(&lab, &[("web", &web_refs), ("lb", &[&lb])]);
    for mode in [&[][..], &["--strategy", "ssh"][..]] {
        let home = tempfile::tempdir().unwrap();
        let log = lb.home.join("delegated.log");
        let _ = std::fs::remove_file(&log);
        let plan = home.path().join("plan.json");
        let tasks = json!([
            {"name": "who there", "module": "command", "args": {"_raw_params": "id -un"},
             "delegate_to": "{{ groups.lb[0] }}", "register": "d", "changed_when": false},
            {"name": "log there", "module": "shell", "args": {"_raw_params": format!(
                "echo {{{{ inventory_hostname }}}} {{{{ marker }}}} >> {}", log.display())},
             "delegate_to": "lb0"},
            {"name": "fact there", "module": "set_fact", "args": {"kept": "yes"},
             "delegate_to": "lb0", "delegate_facts": true},
            {"name": "fact here", "module": "set_fact", "args": {"mine": "{{ marker }}"},
             "delegate_to": "lb0"},
            {"name": "nowhere", "module": "command", "args": {"_raw_params": "true"},
             "delegate_to": "{{ 'no-such-host' }}", "register": "n", "ignore_errors": true},
            {"name": "lacking", "module": "getent", "args": {"database": "passwd", "key": "root"},
             "delegate_to": "lb0", "register": "g", "ignore_errors": true},
            {"name": "keep", "module": "copy", "args": {"dest": "{{ ansible_env_home }}/delegated",
             "content": "{{ d.stdout }}|{{ kept | default('unset') }}|{{ mine }}|{{ n.msg }}|{{ g.msg }}|{{ hostvars['lb0'].kept | default('unset') }}\n"}}
        ]);
        std::fs::write(
            &plan,
            serde_json::to_vec(&json!({
                "format": "rustle-deploy-plan", "version": 1,
                "plays": [{"name": "lab", "hosts": ["web"], "tasks": tasks}]
            }))
            .unwrap(),
        )
        .unwrap();
        let mut args = vec!["-i", inv.to_str().unwrap(), plan.to_str().unwrap()];
        args.extend_from_slice(mode);
        let (out, r) = run(&lab, home.path(), &args);
        let what = format!("{mode:?}: {}{}\n{r}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert!(
            r["hosts"].get("lb0").is_none(),
            "lb0 is not in the play: {what}"
        );
        let mut logged: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{e}: {what}"))
            .lines()
            .map(str::to_string)
            .collect();
        logged.sort();
        assert_eq!(logged, ["w0 m-w0", "w1 m-w1"], "{what}");
        for h in &web {
            let got = std::fs::read_to_string(h.home.join("delegated")).unwrap();
            let fields: Vec<&str> = got.trim_end().split('|').collect();
            assert_eq!(fields[0], lb.user, "ran as lb0's login: {what}");
            assert_eq!(
                fields[1], "unset",
                "delegate_facts sent them to lb0: {what}"
            );
            assert_eq!(fields[2], format!("m-{}", h.name), "{what}");
            assert!(
                fields[3].contains("'no-such-host'") && fields[3].contains("inventory"),
                "{got}"
            );
            assert!(
                fields[4].contains("getent") && fields[4].contains("SSH mode"),
                "{got}"
            );
            // ... and are lb0's facts for every host's hostvars from then on (set_fact
            // made the string "yes" the boolean True, as Ansible's does).
            assert_eq!(fields[5], "True", "hostvars['lb0'].kept: {what}");
        }
    }
}

/// `hostvars` of other hosts: their gathered facts, registered and `set_fact` values,
/// as Ansible's linear strategy shows them: a host reading another waits until that one
/// has finished the tasks before the reading task (here the slow host), and never sees
/// what the other set after that point (here the fast host, which runs ahead), in
/// binary mode and in SSH mode alike.
#[test]
fn hostvars_of_other_hosts_hold_what_they_learned_by_the_reading_task() {
    let (lab, hosts, inv) = lab_of(0..3, "v", "rustle-hv");
    for strategy in ["parallel", "ssh"] {
        let home = tempfile::tempdir().unwrap();
        let p = home.path().join("plan.json");
        let seen = "{% for h in groups['all'] | sort %}{{ h }} {{ hostvars[h].mine }} {{ hostvars[h].r.stdout }} {{ hostvars[h].ansible_facts.hostname == ansible_facts.hostname }} {{ hostvars[h].ansible_user_id == hostvars[h].ansible_user }} {{ hostvars[h].later is defined }}\n{% endfor %}";
        let plan = json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [
                {"name": "learn", "hosts": ["all"], "gather_facts": true, "tasks": [
                    {"name": "slow", "module": "command", "args": {"_raw_params": "sleep {{ 3 if inventory_hostname == 'v0' else 0 }}"}, "changed_when": false},
                    {"name": "set", "module": "set_fact", "args": {"mine": "{{ inventory_hostname }}-set"}},
                    {"name": "reg", "module": "command", "args": {"_raw_params": "echo {{ inventory_hostname }}-reg"}, "register": "r", "changed_when": false},
                    {"name": "seen", "module": "copy", "args": {"content": seen, "dest": "{{ ansible_env_home }}/seen"}},
                    {"name": "later", "module": "set_fact", "args": {"later": true}}
                ]},
                {"name": "after", "hosts": ["all"], "tasks": [
                    {"name": "next play", "module": "copy", "args": {"content": "{{ groups['all'] | sort | map('extract', hostvars, 'later') | list }}", "dest": "{{ ansible_env_home }}/next"}}
                ]}
            ]
        });
        std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
        let (out, r) = run(
            &lab,
            home.path(),
            &[
                "-i",
                inv.to_str().unwrap(),
                p.to_str().unwrap(),
                "--strategy",
                strategy,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{strategy}: {}{}\n{r}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let mut want = String::new();
        for h in &hosts {
            want.push_str(&format!("{0} {0}-set {0}-reg True True False\n", h.name));
        }
        for h in &hosts {
            assert_eq!(
                std::fs::read_to_string(h.home.join("seen")).unwrap(),
                want,
                "{strategy}: {}",
                h.name
            );
            assert_eq!(
                std::fs::read_to_string(h.home.join("next")).unwrap(),
                // copy writes a list given as content as JSON, as Ansible's does.
                "[true, true, true]",
                "{strategy}: {}",
                h.name
            );
        }
    }
}

/// `max_fail_percentage` without `serial`: at the end of each task the deployer counts
/// the play's failed hosts, and once more than that share has failed every other host
/// is failed too and runs nothing more (Ansible's linear strategy:
/// `failed / batch_size > percentage`, then the playbook stops).
#[test]
fn max_fail_percentage_stops_every_host_once_too_many_failed() {
    let (lab, hosts, inv) = lab_of(0..3, "m", "rustle-mfp");
    // One host of three failing is 33%: more than 30, not more than 34.
    for (percentage, stops) in [(30, true), (34, false)] {
        let home = tempfile::tempdir().unwrap();
        let p = home.path().join("plan.json");
        let plan = json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [
                {"name": "mfp", "hosts": ["all"], "max_fail_percentage": percentage, "tasks": [
                    {"name": "fail one", "module": "command", "args": {"_raw_params": "sh -c 'sleep {{ 0 if inventory_hostname == \"m0\" else 2 }}; test {{ inventory_hostname }} != m0'"}},
                    {"name": "after", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/after-{{ percentage }}"}}
                ]},
                {"name": "later", "hosts": ["all"], "tasks": [
                    {"name": "later play", "module": "copy", "args": {"content": "x", "dest": "{{ ansible_env_home }}/later-{{ percentage }}"}}
                ]}
            ]
        });
        let plan = serde_json::to_string(&plan)
            .unwrap()
            .replace("{{ percentage }}", &percentage.to_string());
        std::fs::write(&p, plan).unwrap();
        let (out, r) = run(
            &lab,
            home.path(),
            &["-i", inv.to_str().unwrap(), p.to_str().unwrap()],
        );
        assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert_eq!(r["hosts"]["m0"]["status"], "failed", "{r}");
        for h in &hosts[1..] {
            let after = h.home.join(format!("after-{percentage}")).exists();
            let later = h.home.join(format!("later-{percentage}")).exists();
            assert_eq!(
                (after, later),
                (!stops, !stops),
                "{percentage}%: {}\n{r}",
                h.name
            );
            let status = if stops { "failed" } else { "ok" };
            assert_eq!(r["hosts"][&h.name]["status"], status, "{percentage}%: {r}");
        }
    }
}

/// From a playbook: a literal `delegate_to` name and a loop over a group, with
/// `--limit` leaving the hosts delegated to out of the run (Ansible delegates to them
/// all the same).
#[test]
fn a_playbook_delegates_to_hosts_outside_its_limit() {
    let lab = Lab::new();
    let w = lab.start("pw0", "rustle-dpw0");
    let lbs: Vec<Sshd> = (0..2)
        .map(|i| lab.start(&format!("plb{i}"), &format!("rustle-dplb{i}")))
        .collect();
    let mut refs: Vec<&Sshd> = vec![&w];
    refs.extend(lbs.iter());
    lab.trust(&refs);
    let lb_refs: Vec<&Sshd> = lbs.iter().collect();
    let inv = grouped_inventory(&lab, &[("web", &[&w]), ("lb", &lb_refs)]);
    let home = tempfile::tempdir().unwrap();
    let book = home.path().join("site.yml");
    std::fs::write(
        &book,
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - name: drain\n      shell: echo drained {{ inventory_hostname }} > drained\n\
         \x20     delegate_to: \"{{ item }}\"\n      loop: \"{{ groups['lb'] }}\"\n\
         \x20   - name: ask\n      command: cat drained\n      delegate_to: plb1\n      register: asked\n\
         \x20   - name: keep\n      copy:\n        content: \"{{ asked.stdout }}\"\n\
         \x20       dest: \"{{ ansible_env_home }}/asked\"\n",
    )
    .unwrap();
    let (out, r) = run(
        &lab,
        home.path(),
        &[
            "-i",
            inv.to_str().unwrap(),
            book.to_str().unwrap(),
            "--limit",
            "web",
        ],
    );
    let what = format!("{}{}\n{r}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{what}");
    assert_eq!(
        r["hosts"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["pw0"],
        "{what}"
    );
    for lb in &lbs {
        assert_eq!(
            std::fs::read_to_string(lb.home.join("drained")).unwrap(),
            "drained pw0\n",
            "{what}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(w.home.join("asked")).unwrap(),
        "drained pw0"
    );
}

/// A host that dies while others wait on its `hostvars`: they go on at once with what it
/// had reported (its gathered facts), as Ansible's hostvars keep an unreachable host's
/// facts, rather than waiting for the timeout.
#[test]
fn hosts_reading_a_host_that_dies_get_what_it_reported_without_waiting_for_the_timeout() {
    let (lab, hosts, inv) = lab_of(0..3, "d", "rustle-hvd");
    let home = tempfile::tempdir().unwrap();
    let p = home.path().join("plan.json");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "gather_facts": true, "tasks": [
            {"name": "hang", "module": "command", "args": {"_raw_params": "sleep {{ 67 if inventory_hostname == 'd0' else 0 }}"}, "register": "hung"},
            {"name": "read", "module": "copy", "args": {"content": "{{ hostvars['d0'].ansible_facts.hostname is defined }} {{ hostvars['d0'].hung is defined }}", "dest": "{{ ansible_env_home }}/read"}}
        ]}]
    });
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    let started = Instant::now();
    let report = home.path().join("report.json");
    let mut child = start_deployer(&lab, home.path(), &inv, &p, &report);
    kill_runner_in("rustle-hvd0", "sleep 67", || {
        // The others have reached their reading task and wait for d0.
        assert!(!hosts[1].home.join("read").exists(), "d1 did not wait");
    });
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the reading hosts waited {:?}",
        started.elapsed()
    );
    assert_ne!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for h in &hosts[1..] {
        assert_eq!(r["hosts"][&h.name]["status"], "ok", "{r}");
        assert_eq!(
            std::fs::read_to_string(h.home.join("read")).unwrap(),
            "True False"
        );
    }
}

/// `fetch` brings a host's file to the controller, under `dest/<host>/<src>` or, with
/// `flat`, `dest` itself: sent in pieces over the channel (runners) or read over the
/// connection (SSH mode), equal to the host's file, changed only the first time.
#[test]
fn fetch_copies_a_hosts_file_to_the_controller_in_binary_and_ssh_mode() {
    for strategy in ["parallel", "ssh"] {
        let dir = tempfile::tempdir().unwrap();
        let inv = local_inventory(dir.path(), &["l1", "l2"]);
        // Larger than the pieces the channel carries (4 MiB), not a multiple of them.
        let src = dir.path().join("src.bin");
        let bytes: Vec<u8> = (0..9_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &bytes).unwrap();
        let out = dir.path().join("out");
        let flat = dir.path().join("flat");
        let src_s = src.display().to_string();
        let plan = write_plan(
            dir.path(),
            json!([
                {"name": "first", "module": "fetch", "register": "f1",
                 "args": {"src": src_s, "dest": out.display().to_string()}},
                {"name": "second", "module": "fetch", "register": "f2",
                 "args": {"src": src_s, "dest": out.display().to_string()}},
                {"name": "flat", "module": "fetch", "register": "f3",
                 "args": {"src": src_s, "dest": format!("{}/{{{{ inventory_hostname }}}}/", flat.display()), "flat": true}},
                {"name": "missing", "module": "fetch", "register": "f4",
                 "args": {"src": "/nonexistent/file", "dest": out.display().to_string(), "fail_on_missing": false}},
                {"name": "in check mode", "module": "fetch", "register": "f5", "check_mode": true,
                 "args": {"src": src_s, "dest": dir.path().join("never").display().to_string()}},
                {"name": "check", "module": "assert", "args": {"that": [
                    "f1 is changed and f2 is not changed and f3 is changed",
                    "f1.checksum == f1.remote_checksum and f2.checksum == f1.checksum",
                    "f1.dest == '".to_string() + &out.display().to_string() + "/' + inventory_hostname + '" + &src_s + "'",
                    "f4 is not failed and f4.msg == 'the remote file does not exist, not transferring, ignored'",
                    "f5 is skipped",
                ]}}
            ]),
        );
        let report = deploy_locally(dir.path(), &inv, &plan, strategy);
        // sha1sum(1) is the reference for the checksum the task registered.
        let sum = Command::new("sha1sum").arg(&src).output().unwrap();
        let sum = text(&sum.stdout).split(' ').next().unwrap().to_string();
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        for h in ["l1", "l2"] {
            assert_eq!(r["hosts"][h]["status"], "ok", "{strategy}: {r}");
            let copy = out.join(h).join(src.strip_prefix("/").unwrap());
            assert!(
                std::fs::read(&copy).unwrap() == bytes,
                "{strategy}: {copy:?}"
            );
            assert!(std::fs::read(flat.join(h).join("src.bin")).unwrap() == bytes);
            let first = r["hosts"][h]["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == "first")
                .unwrap();
            assert_eq!(
                first["result"]["checksum"],
                sum.as_str(),
                "{strategy}: {first}"
            );
        }
        assert!(!dir.path().join("never").exists());
    }
}
