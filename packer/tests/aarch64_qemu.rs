//! The aarch64 Linux runner, packed by rustle-deploy, runs a plan correctly under
//! `qemu-aarch64-static` (user-mode emulation), and still does after `llvm-strip` and
//! GNU `aarch64-linux-gnu-strip` have been at it.
//!
//! Needs the aarch64 runner (`cargo xtask runners`, which `cargo xtask test` runs first)
//! and Debian's qemu-user-static, llvm and binutils-aarch64-linux-gnu (`.ci/run`
//! installs them). A missing piece FAILS the test; only with `RUSTLE_ALLOW_SKIP` set (a
//! developer machine without them) does it skip, with a note saying what is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRIPLE: &str = "aarch64-unknown-linux-musl";
const RUNNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/runners/aarch64-unknown-linux-musl/rustle-runner"
);
const QEMU: &str = "qemu-aarch64-static";

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What this test needs that is not here, or `None` when everything is.
fn missing() -> Option<String> {
    let mut m = Vec::new();
    if !Path::new(RUNNER).exists() {
        m.push(format!(
            "the {TRIPLE} runner ({RUNNER}): cargo xtask runners --target {TRIPLE}"
        ));
    }
    for (tool, package) in [
        (QEMU, "qemu-user-static"),
        ("llvm-strip", "llvm"),
        ("aarch64-linux-gnu-strip", "binutils-aarch64-linux-gnu"),
    ] {
        if !on_path(tool) {
            m.push(format!("{tool}: apt-get install {package}"));
        }
    }
    (!m.is_empty()).then(|| m.join("; "))
}

/// True when the test may go on; panics (fails) when something is missing, unless
/// `RUSTLE_ALLOW_SKIP` says skipping is fine here.
fn ready() -> bool {
    let Some(what) = missing() else {
        return true;
    };
    if std::env::var_os("RUSTLE_ALLOW_SKIP").is_some() {
        eprintln!("aarch64_qemu: SKIPPED (RUSTLE_ALLOW_SKIP is set), missing: {what}");
        return false;
    }
    panic!("missing: {what} (set RUSTLE_ALLOW_SKIP=1 to skip on a developer machine)");
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a packed aarch64 binary under qemu with a clean environment, as an operator
/// would run it by hand on the host.
fn run_under_qemu(home: &Path, bin: &Path, args: &[&str]) -> Output {
    Command::new(QEMU)
        .arg(bin)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn task<'e>(events: &'e [Value], name: &str) -> &'e Value {
    events
        .iter()
        .find(|e| e["type"] == "task" && e["name"] == name)
        .unwrap_or_else(|| panic!("no task event '{name}' in {events:?}"))
}

#[test]
fn packed_aarch64_runner_runs_a_plan_under_qemu_and_after_strip() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::to_vec(&json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"name": "arm", "hosts": ["all"], "gather_facts": true, "vars": {"base": work.to_str().unwrap()}, "tasks": [
                {"name": "dir", "module": "file", "args": {"path": "{{ base }}/app", "state": "directory", "mode": "0750"}},
                {"name": "conf", "module": "template", "args": {"src": "t.j2", "dest": "{{ base }}/app/conf"}},
                {"name": "count", "module": "shell", "args": {"_raw_params": "echo run >> {{ base }}/runs; wc -l < {{ base }}/runs"}, "register": "runs"},
                {"name": "say", "module": "debug", "args": {"msg": "arch={{ ansible_architecture }} runs={{ runs.stdout | trim }}"}}
            ]}],
            "files": {"t.j2": {"content": "host={{ inventory_hostname }} arch={{ ansible_architecture }}\n"}}
        }))
        .unwrap(),
    )
    .unwrap();

    // Pack for aarch64: the local host, forced to the aarch64 runner.
    let out_dir = dir.path().join("out");
    let packed = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(["--compile-only", "--target", TRIPLE, "-o"])
        .arg(&out_dir)
        .arg(&plan)
        .env("HOME", &home)
        .env_remove("RUSTLE_DEPLOY_KEY")
        .env_remove("RUSTLE_RUNNER_DIR")
        .output()
        .unwrap();
    assert_eq!(packed.status.code(), Some(0), "{}", text(&packed));
    let row = String::from_utf8_lossy(&packed.stdout).to_string();
    let fields: Vec<&str> = row.trim().split('\t').collect();
    let (digest, bin) = (fields[1].to_string(), PathBuf::from(fields[2]));
    let header = std::fs::read(&bin).unwrap();
    // ELF, 64-bit, machine 183 (EM_AARCH64): it really is the aarch64 runner.
    assert_eq!(&header[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([header[18], header[19]]), 183);
    let pubkey = home.join(".rustle/keys/deploy.key.pub");
    let pubkey = pubkey.to_str().unwrap();

    let first = run_under_qemu(&home, &bin, &["--trusted-key", pubkey, "--expect", &digest]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let ev = events(&first);
    assert_eq!(ev[0]["type"], "start");
    assert_eq!(task(&ev, "dir")["status"], "changed");
    assert_eq!(task(&ev, "conf")["status"], "changed");
    assert_eq!(
        task(&ev, "say")["result"]["msg"],
        "arch=aarch64 runs=1",
        "{}",
        text(&first)
    );
    assert_eq!(
        std::fs::read_to_string(work.join("app/conf")).unwrap(),
        "host=localhost arch=aarch64\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(work.join("app"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);

    // Stripped copies still find their payload and run the plan; the files are
    // already right, so only the counting task changes anything.
    for (n, tool) in [(2, "llvm-strip"), (3, "aarch64-linux-gnu-strip")] {
        let stripped = dir.path().join(format!("runner.{tool}"));
        std::fs::copy(&bin, &stripped).unwrap();
        let st = Command::new(tool).arg(&stripped).output().unwrap();
        assert!(st.status.success(), "{tool}: {}", text(&st));
        let out = run_under_qemu(
            &home,
            &stripped,
            &["--trusted-key", pubkey, "--expect", &digest],
        );
        assert_eq!(out.status.code(), Some(0), "after {tool}: {}", text(&out));
        let ev = events(&out);
        assert_eq!(task(&ev, "dir")["status"], "ok", "after {tool}");
        assert_eq!(task(&ev, "conf")["status"], "ok", "after {tool}");
        assert_eq!(
            task(&ev, "say")["result"]["msg"],
            format!("arch=aarch64 runs={n}"),
            "after {tool}"
        );
    }
}
