//! `become_user` for modules that work in the runner's own process (copy, template, file,
//! lineinfile, ...): as root, with real users, a task for another user runs as that user,
//! so the kernel's permission checks and the new files' owners are that user's.
//!
//! Modules for another user run in a copy of the `rustle-runner` executable built with
//! these tests (the test binary itself is a test harness). Needs root; without it the
//! tests say so and check nothing.
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
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RUNNER: &str = env!("CARGO_BIN_EXE_rustle-runner");
const ALICE: &str = "rustle-bu-alice";
const BOB: &str = "rustle-bu-bob";

fn is_root() -> bool {
    rustle_runner::facts::current_uid() == Some(0)
}

/// The test user `name`, created (with a home) on first use. useradd fails rather than
/// wait while another process holds the passwd lock, so it is retried.
fn user(name: &str) -> RunAs {
    for _ in 0..200 {
        if let Some(u) = RunAs::lookup(name) {
            if Path::new(&u.home).is_dir() {
                return u;
            }
            std::fs::create_dir_all(&u.home).unwrap();
            std::os::unix::fs::chown(&u.home, Some(u.uid), Some(u.gid)).unwrap();
            std::fs::set_permissions(&u.home, std::fs::Permissions::from_mode(0o700)).unwrap();
            continue;
        }
        let _ = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("could not create test user {name}")
}

/// A fresh directory owned by `who` (mode 0700) in that user's home, removed on drop.
struct UserDir(PathBuf);

impl UserDir {
    fn new(who: &RunAs, test: &str) -> UserDir {
        let p = Path::new(&who.home).join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(who.uid), Some(who.gid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        UserDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn at(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }
}

impl Drop for UserDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This process's umask, which the runner and its child runner share.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .unwrap();
    u32::from_str_radix(v.trim(), 8).unwrap()
}

fn host_plan(plays: Value, files: Value) -> HostPlan {
    serde_json::from_value(json!({
        "deployment_id": "test",
        "host": "web1",
        "created_at": 0,
        "packer_version": "0",
        "check_mode": false,
        "diff_mode": false,
        "host_vars": {"inventory_hostname": "web1"},
        "plays": plays,
        "files": files,
    }))
    .unwrap()
}

/// A play run with become (the runner is root) and `become_user` unset unless a task says.
fn play(tasks: Value) -> Value {
    json!([{"name": "p", "hosts": ["all"], "become": true, "tasks": tasks}])
}

fn task(name: &str, module: &str, args: Value, extra: Value) -> Value {
    let mut t = json!({"name": name, "module": module, "args": args});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

fn as_user(user: &str) -> Value {
    json!({"become_user": user})
}

/// Task name -> (status, result), from running `plan` with modules for other users run
/// by `runner`.
fn run_with(
    runner: &str,
    plan: &HostPlan,
    opts: RunOptions,
) -> std::collections::BTreeMap<String, (String, Value)> {
    let mut sink = Collect::default();
    Executor::with_host(plan, &mut sink, opts, Box::new(Local::with_runner(runner))).run();
    sink.0
        .into_iter()
        .filter_map(|e| match e {
            Event::Task {
                name,
                status,
                result,
                ..
            } => Some((name, (status.as_str().to_string(), result))),
            _ => None,
        })
        .collect()
}

fn run(plan: &HostPlan, opts: RunOptions) -> std::collections::BTreeMap<String, (String, Value)> {
    run_with(RUNNER, plan, opts)
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn file_modules_with_become_user_create_that_users_files() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    let alice = user(ALICE);
    let d = UserDir::new(&alice, "file-modules");
    let me = as_user(ALICE);
    let plan = host_plan(
        play(json!([
            task(
                "copy",
                "copy",
                json!({"content": "a=1\nb=2\n", "dest": d.at("copied")}),
                me.clone()
            ),
            task(
                "copy src",
                "copy",
                json!({"src": "files/app.conf", "dest": d.at("app.conf")}),
                me.clone()
            ),
            task(
                "template",
                "template",
                json!({"src": "templates/t.j2", "dest": d.at("rendered")}),
                me.clone()
            ),
            task(
                "dir",
                "file",
                json!({"path": d.at("dir"), "state": "directory"}),
                me.clone()
            ),
            task(
                "touch",
                "file",
                json!({"path": d.at("touched"), "state": "touch"}),
                me.clone()
            ),
            task(
                "lineinfile",
                "lineinfile",
                json!({"path": d.at("lines"), "line": "x=1", "create": true}),
                me.clone()
            ),
            task(
                "blockinfile",
                "blockinfile",
                json!({"path": d.at("block"), "block": "inside", "create": true}),
                me.clone()
            ),
            task(
                "replace",
                "replace",
                json!({"path": d.at("copied"), "regexp": "^b=2$", "replace": "b=3"}),
                me.clone()
            ),
            task("stat", "stat", json!({"path": d.at("copied")}), me.clone()),
            // The same play, a task for root: in the runner's own process, as root.
            task(
                "as root",
                "copy",
                json!({"content": "r\n", "dest": d.at("root-file")}),
                json!({})
            ),
        ])),
        json!({
            "files/app.conf": {"content": b"port=80\n".to_vec(), "mode": null},
            "templates/t.j2": {"content": b"hello {{ who }} from {{ where }}\n".to_vec(), "mode": null},
        }),
    );
    let mut plan = plan;
    plan.host_vars.insert("who".into(), json!("world"));
    // A variable made of another: rendered where the template uses it.
    plan.host_vars
        .insert("where".into(), json!("{{ inventory_hostname }}"));
    let results = run(&plan, RunOptions::default());
    for (name, (status, result)) in &results {
        let want = if name == "stat" { "ok" } else { "changed" };
        assert_eq!(status, want, "{name}: {result:#}");
    }

    let alices = (alice.uid, alice.gid);
    let file_mode = 0o666 & !umask();
    let dir_mode = 0o777 & !umask();
    for name in [
        "copied", "app.conf", "rendered", "touched", "lines", "block",
    ] {
        assert_eq!(owner(&d.join(name)), alices, "{name} belongs to the user");
        assert_eq!(
            mode(&d.join(name)),
            file_mode,
            "{name} has the umask's mode"
        );
    }
    assert_eq!(owner(&d.join("dir")), alices);
    assert_eq!(mode(&d.join("dir")), dir_mode);
    assert_eq!(
        owner(&d.join("root-file")),
        (0, 0),
        "a task for root stays root's"
    );

    let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
    assert_eq!(read("copied"), "a=1\nb=3\n");
    assert_eq!(read("app.conf"), "port=80\n");
    assert_eq!(read("rendered"), "hello world from web1\n");
    assert_eq!(read("lines"), "x=1\n");
    assert!(read("block").contains("inside"));
    // What the module registers comes back whole through the pipe.
    let stat = &results["stat"].1["stat"];
    assert_eq!(stat["exists"], true);
    assert_eq!(stat["pw_name"], ALICE);
    assert_eq!(stat["uid"], alice.uid);
}

#[test]
fn become_user_is_refused_what_that_user_may_not_do() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    let alice = user(ALICE);
    let bob = user(BOB);
    let bobs = UserDir::new(&bob, "refused");
    // Root's own 0700 directory.
    let root_dir = tempfile::tempdir().unwrap();
    let in_root = |n: &str| root_dir.path().join(n).display().to_string();
    std::fs::write(root_dir.path().join("existing"), "old\n").unwrap();
    let me = as_user(ALICE);
    let plan = host_plan(
        play(json!(
            [
                task(
                    "copy into root's dir",
                    "copy",
                    json!({"content": "x\n", "dest": in_root("new")}),
                    me.clone()
                ),
                task(
                    "template into root's dir",
                    "template",
                    json!({"src": "t.j2", "dest": in_root("t")}),
                    me.clone()
                ),
                task(
                    "lineinfile on root's file",
                    "lineinfile",
                    json!({"path": in_root("existing"), "line": "new"}),
                    me.clone()
                ),
                task(
                    "file in bob's dir",
                    "file",
                    json!({"path": bobs.at("f"), "state": "touch"}),
                    me.clone()
                ),
                task(
                    "root may",
                    "copy",
                    json!({"content": "x\n", "dest": in_root("by-root")}),
                    json!({"ignore_errors": true})
                ),
            ]
            .into_iter()
            .map(|mut t| {
                t["ignore_errors"] = json!(true);
                t
            })
            .collect::<Vec<_>>()
        )),
        json!({"t.j2": {"content": b"t\n".to_vec(), "mode": null}}),
    );
    let results = run(&plan, RunOptions::default());
    for name in [
        "copy into root's dir",
        "template into root's dir",
        "lineinfile on root's file",
        "file in bob's dir",
    ] {
        let (status, result) = &results[name];
        assert_eq!(status, "failed", "{name}: {result:#}");
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.contains("Permission denied"), "{name}: {msg}");
    }
    assert!(!root_dir.path().join("new").exists());
    assert!(!root_dir.path().join("t").exists());
    assert_eq!(
        std::fs::read_to_string(root_dir.path().join("existing")).unwrap(),
        "old\n"
    );
    assert!(!bobs.join("f").exists());
    // The same directory takes root's write: the refusals were the user's.
    assert_eq!(results["root may"].0, "changed");
    assert!(root_dir.path().join("by-root").exists());
    drop(alice);
}

#[test]
fn settings_variables_reach_a_module_run_as_another_user() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    let alice = user(ALICE);
    let dir = UserDir::new(&alice, "settings");
    let src = dir.join("big");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("data"), vec![b'x'; 64 * 1024]).unwrap();
    let archive = dir.at("big.tar");
    let made = std::process::Command::new("tar")
        .args(["-cf", &archive, "-C", &dir.at("."), "big"])
        .status()
        .unwrap();
    assert!(made.success());
    let out = UserDir::new(&alice, "settings-out");
    let unarchive = |name: &str, limit: &str| {
        task(
            name,
            "unarchive",
            json!({"src": archive, "dest": out.at("."), "remote_src": true}),
            json!({"become_user": ALICE, "ignore_errors": true,
                   "vars": {"rustle_unarchive_max_bytes": limit}}),
        )
    };
    let plan = host_plan(
        play(json!([
            unarchive("under a small limit", "1K"),
            unarchive("under a large limit", "1M")
        ])),
        json!({}),
    );
    let results = run(&plan, RunOptions::default());
    let (status, result) = &results["under a small limit"];
    assert_eq!(status, "failed", "{result:#}");
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("rustle_unarchive_max_bytes"),
        "{result:#}"
    );
    assert_eq!(results["under a large limit"].0, "changed");
    assert_eq!(owner(&out.join("big/data")).0, alice.uid);
}

#[test]
fn check_and_diff_modes_work_for_another_user() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    let alice = user(ALICE);
    let d = UserDir::new(&alice, "check-diff");
    std::fs::write(d.join("conf"), "a=1\n").unwrap();
    std::os::unix::fs::chown(d.join("conf"), Some(alice.uid), Some(alice.gid)).unwrap();
    let me = as_user(ALICE);
    let plan = host_plan(
        play(json!([
            task(
                "copy",
                "copy",
                json!({"content": "new\n", "dest": d.at("copied")}),
                me.clone()
            ),
            task(
                "template",
                "template",
                json!({"src": "t.j2", "dest": d.at("rendered")}),
                me.clone()
            ),
            task(
                "lineinfile",
                "lineinfile",
                json!({"path": d.at("conf"), "line": "b=2"}),
                me.clone()
            ),
            task(
                "dir",
                "file",
                json!({"path": d.at("dir"), "state": "directory"}),
                me.clone()
            ),
        ])),
        json!({"t.j2": {"content": b"v={{ v }}\n".to_vec(), "mode": null}}),
    );
    let mut plan = plan;
    plan.host_vars.insert("v".into(), json!(7));
    let results = run(
        &plan,
        RunOptions {
            check_mode: true,
            diff_mode: true,
        },
    );
    for (name, (status, result)) in &results {
        assert_eq!(status, "changed", "{name}: {result:#}");
    }
    // Nothing changed on disk.
    assert!(!d.join("copied").exists());
    assert!(!d.join("rendered").exists());
    assert!(!d.join("dir").exists());
    assert_eq!(std::fs::read_to_string(d.join("conf")).unwrap(), "a=1\n");
    // And each says what would have.
    let diff = |n: &str| results[n].1["diff"][0].clone();
    assert_eq!(diff("copy")["after"], "new\n");
    assert_eq!(diff("template")["after"], "v=7\n");
    assert_eq!(diff("lineinfile")["before"], "a=1\n");
    assert_eq!(diff("lineinfile")["after"], "a=1\nb=2\n");
}

#[test]
fn only_tasks_for_another_user_start_a_module_process() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    user(ALICE);
    // No runner to start: a task that needed a child process would fail.
    let missing = "/nonexistent/rustle-runner";
    let dir = tempfile::tempdir().unwrap();
    let at = |n: &str| dir.path().join(n).display().to_string();
    let plan = host_plan(
        play(json!([
            task(
                "no become_user",
                "copy",
                json!({"content": "x\n", "dest": at("a")}),
                json!({})
            ),
            task(
                "become_user root",
                "copy",
                json!({"content": "x\n", "dest": at("b")}),
                as_user("root")
            ),
            // Commands take the user's identity in the process they start, without a child.
            task(
                "command",
                "command",
                json!({"_raw_params": "id -un"}),
                as_user(ALICE)
            ),
            task(
                "copy for alice",
                "copy",
                json!({"content": "x\n", "dest": at("c")}),
                as_user(ALICE)
            ),
        ])),
        json!({}),
    );
    let results = run_with(missing, &plan, RunOptions::default());
    assert_eq!(results["no become_user"].0, "changed");
    assert_eq!(results["become_user root"].0, "changed");
    assert_eq!(results["command"].0, "changed");
    assert_eq!(results["command"].1["stdout"], ALICE);
    let (status, result) = &results["copy for alice"];
    assert_eq!(status, "failed");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("copy as user '{ALICE}': ")) && msg.contains(missing),
        "{msg}"
    );
    assert!(!dir.path().join("c").exists());
}

/// A "runner" that is a shell script doing `body`.
fn fake_runner(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn a_module_process_that_cannot_start_dies_or_babbles_fails_only_its_task() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    let alice = user(ALICE);
    let d = UserDir::new(&alice, "bad-child");
    let scripts = tempfile::tempdir().unwrap();
    let cases = [
        (
            fake_runner(
                scripts.path(),
                "babbles",
                "cat >/dev/null; echo 'not a result'",
            ),
            "answered something that is not a module result",
        ),
        (
            fake_runner(scripts.path(), "dies", "kill -9 $$"),
            "was killed by signal 9",
        ),
        // It runs as the other user, who may make it say anything: the root runner reads
        // no more than a bounded answer.
        (
            fake_runner(
                scripts.path(),
                "floods",
                "cat >/dev/null; head -c 80000000 /dev/zero",
            ),
            "said more than 64 MiB",
        ),
        (
            fake_runner(scripts.path(), "fails", "echo 'it broke' >&2; exit 3"),
            "exited with code 3: it broke",
        ),
        (
            {
                // Its interpreter does not exist: exec fails.
                let p = scripts.path().join("cannot-start");
                std::fs::write(&p, "#!/nonexistent/interpreter\n").unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                p.display().to_string()
            },
            "could not start",
        ),
    ];
    for (runner, expect) in cases {
        let plan = host_plan(
            play(json!([
                task(
                    "copy",
                    "copy",
                    json!({"content": "x\n", "dest": d.at("f")}),
                    json!({"become_user": ALICE, "ignore_errors": true})
                ),
                task(
                    "after",
                    "copy",
                    json!({"content": "y\n", "dest": d.at("g")}),
                    json!({})
                ),
            ])),
            json!({}),
        );
        let results = run_with(&runner, &plan, RunOptions::default());
        let (status, result) = &results["copy"];
        assert_eq!(status, "failed", "{runner}");
        let msg = result["msg"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("copy as user '{ALICE}': ")) && msg.contains(expect),
            "{runner}: {msg}"
        );
        assert_eq!(
            results["after"].0, "changed",
            "the run goes on after {runner}"
        );
        std::fs::remove_file(d.join("g")).unwrap();
    }
}

#[test]
fn module_child_mode_refuses_what_is_not_a_request() {
    let run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(RUNNER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
        child.wait_with_output().unwrap()
    };
    for input in [&b""[..], b"garbage", b"\x92\xa4copy\xc0", &[0xff; 64]] {
        let out = run(&["--module-child"], input);
        assert_eq!(out.status.code(), Some(64), "{input:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a module request"), "{err}");
    }
    let out = run(&["--module-child", "extra"], b"");
    assert_eq!(out.status.code(), Some(64));
    // It is not an option anywhere else on the command line.
    let out = run(&["run", "--module-child"], b"");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
}

/// The copy of the runner that tasks for another user start was made in the temp
/// directory, whatever it was: with `TMPDIR` private to root, or the temp directory on a
/// `noexec` mount, that user could not start it and every such task failed "could not
/// start". The copy now goes where the user can start it (checked by starting it).
#[test]
fn a_private_or_noexec_temp_directory_does_not_stop_tasks_for_another_user() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    user(ALICE);
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let noexec = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,mode=1777,size=64m", "tmpfs"])
        .arg(noexec.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs (the tests run as root)");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(noexec.path());
    for tmpdir in [private.path(), noexec.path()] {
        // This test binary again, running only the task below with that temp directory
        // (the environment is per process, and not to be changed under other tests).
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "copy_for_another_user_with_this_temp_directory",
                "--ignored",
                "--nocapture",
            ])
            .env("TMPDIR", tmpdir)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.contains("1 passed"),
            "TMPDIR={}: {said}",
            tmpdir.display()
        );
        // Nothing is left in it.
        assert_eq!(std::fs::read_dir(tmpdir).unwrap().count(), 0);
    }
}

/// Run by the test above, with its `TMPDIR`.
#[test]
#[ignore = "run by a_private_or_noexec_temp_directory_does_not_stop_tasks_for_another_user"]
fn copy_for_another_user_with_this_temp_directory() {
    let alice = user(ALICE);
    let d = UserDir::new(&alice, "tmpdir");
    let plan = host_plan(
        play(json!([task(
            "copy",
            "copy",
            json!({"content": "x\n", "dest": d.at("f")}),
            as_user(ALICE)
        )])),
        json!({}),
    );
    let results = run(&plan, RunOptions::default());
    let (status, result) = &results["copy"];
    assert_eq!(status, "changed", "{result}");
    assert_eq!(owner(&d.join("f")), (alice.uid, alice.gid));
}

/// setup_test_user (the become, find and slurp targets) runs `whoami` with the connection
/// variables `ansible_become: yes` and `ansible_become_user` in the task's vars and no
/// keyword: the variables decide, as in Ansible (the keywords alone did).
#[test]
fn ansible_become_variables_switch_the_user() {
    assert!(
        is_root(),
        "switching users needs root: run the tests as root, as CI does"
    );
    user(ALICE);
    let plays = json!([{"name": "p", "hosts": ["all"], "tasks": [
        task("who", "shell", json!({"_raw_params": "whoami"}),
             json!({"vars": {"ansible_become": true, "ansible_become_user": ALICE}})),
        task("templated", "shell", json!({"_raw_params": "whoami"}),
             json!({"vars": {"b": "yes", "ansible_become": "{{ b }}", "ansible_become_user": ALICE}})),
        task("off", "shell", json!({"_raw_params": "whoami"}),
             json!({"become": true, "become_user": ALICE, "vars": {"ansible_become": false}})),
    ]}]);
    let r = run(&host_plan(plays, json!({})), RunOptions::default());
    assert_eq!(r["who"].1["stdout"], ALICE, "{:?}", r["who"]);
    assert_eq!(r["templated"].1["stdout"], ALICE);
    assert_eq!(r["off"].1["stdout"], "root");
}
