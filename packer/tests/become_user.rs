//! End to end through `rustle-deploy` and the real packed runner: a task with
//! `become_user` runs its file module as that user, from a copy of the installed runner
//! (which sits in a 0700 release directory that user cannot enter).
//!
//! Needs root (to switch users) and the native runner that `cargo xtask runners --native`
//! builds (`cargo xtask test` does it first).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use rustle_runner::privilege::RunAs;
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

const RUNNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/runners/x86_64-unknown-linux-musl/rustle-runner"
);
const ALICE: &str = "rustle-bu-alice";

/// The test user `name`, created (with a home) on first use; useradd is retried while
/// another process holds the passwd lock.
fn user(name: &str) -> RunAs {
    for _ in 0..200 {
        if let Some(u) = RunAs::lookup(name)
            && Path::new(&u.home).is_dir()
        {
            return u;
        }
        let _ = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("could not create test user {name}")
}

#[test]
fn become_user_file_modules_run_as_that_user_from_a_copy_of_the_installed_runner() {
    if rustle_runner::facts::current_uid() != Some(0) {
        eprintln!("skipped: switching users needs root");
        return;
    }
    assert!(
        Path::new(RUNNER).exists(),
        "no prebuilt runner at {RUNNER}: run `cargo xtask runners --native` (or `cargo xtask test`)"
    );
    let alice = user(ALICE);
    let env = tempfile::tempdir().unwrap();
    let at = |rel: &str| env.path().join(rel);
    // Root's own directory (0700), and one of alice's, and a temp directory the runner
    // puts its copy in (others must be able to pass through it, as through /tmp).
    let root_only = at("root-only");
    std::fs::create_dir(&root_only).unwrap();
    let mine = Path::new(&alice.home).join(format!("e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&mine);
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(alice.uid), Some(alice.gid)).unwrap();
    let tmp = at("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();

    let m = mine.display().to_string();
    let r = root_only.display().to_string();
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "become": true,
            "vars": {"greeting": "hello"},
            "tasks": [
                {"name": "copy", "module": "copy", "become_user": ALICE,
                 "args": {"content": "x\n", "dest": format!("{m}/copied")}},
                {"name": "template", "module": "template", "become_user": ALICE,
                 "args": {"src": "t.j2", "dest": format!("{m}/rendered")}},
                {"name": "refused", "module": "copy", "become_user": ALICE, "ignore_errors": true,
                 "args": {"content": "x\n", "dest": format!("{r}/copied")}},
                // As root, while the copy exists: what others can do with it.
                {"name": "inspect", "module": "shell",
                 "args": {"_raw_params": "for f in \"$TMPDIR\"/rustle-become-*/rustle-runner; do stat -c '%a %U' \"${f%/*}\" \"$f\"; if \"$f\" info >/dev/null 2>&1; then echo payload; else echo no-payload; fi; done"}}
            ]}],
        "files": {"t.j2": {"content": "{{ greeting }} {{ inventory_hostname }}\n"}}
    });
    let plan_file = at("plan.json");
    std::fs::write(&plan_file, serde_json::to_vec(&plan).unwrap()).unwrap();
    std::fs::create_dir(at("home")).unwrap();
    let out = Command::new("sh")
        .args(["-c", "umask 027 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_rustle-deploy"))
        .arg(&plan_file)
        .env("HOME", at("home"))
        .env("RUSTLE_ROOT", at("root"))
        .env("TMPDIR", &tmp)
        .env_remove("RUSTLE_DEPLOY_KEY")
        .env_remove("RUSTLE_RUNNER_DIR")
        .current_dir(env.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{said}");

    // The installed release's report has every task's result.
    let release = at("root").join(std::fs::read_link(at("root/current")).unwrap());
    let report: Value =
        serde_json::from_slice(&std::fs::read(release.join("report.json")).unwrap()).unwrap();
    let result = |name: &str| {
        report["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no task {name}: {report:#}"))
            .clone()
    };
    assert_eq!(result("copy")["status"], "changed", "{said}");
    assert_eq!(result("template")["status"], "changed", "{said}");

    // The files are alice's, with the mode the caller's umask gives.
    for name in ["copied", "rendered"] {
        let meta = std::fs::metadata(mine.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (alice.uid, alice.gid), "{name}");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(mine.join("rendered")).unwrap(),
        "hello localhost\n"
    );

    // Where alice may not write, the task failed and nothing was written.
    let refused = result("refused");
    assert_eq!(refused["status"], "failed");
    assert!(
        refused["result"]["msg"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{refused:#}"
    );
    assert!(!root_only.join("copied").exists());

    // The copy was root's and unchangeable by others, in a directory they cannot
    // list, and it held no payload (the installed runner does).
    assert_eq!(
        result("inspect")["result"]["stdout"],
        "711 root\n555 root\nno-payload",
        "{:#}",
        result("inspect")
    );
    let info = Command::new(release.join("rustle-runner"))
        .arg("info")
        .output()
        .unwrap();
    assert_eq!(info.status.code(), Some(0));
    // And it is gone once the run is over.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rustle-become-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&mine).unwrap();
}

/// A custom runner (`cli::main_with`) serves `--module-child` too: its Rust module, run
/// for a task's `become_user`, runs as that user.
#[test]
fn a_custom_runners_module_runs_as_the_become_user() {
    if rustle_runner::facts::current_uid() != Some(0) {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let alice = user(ALICE);
    let env = tempfile::tempdir().unwrap();
    let at = |rel: &str| env.path().join(rel);
    let mine = Path::new(&alice.home).join(format!("custom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&mine);
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(alice.uid), Some(alice.gid)).unwrap();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let module = "use serde_json::{Map, Value};\n\npub fn run(args: &Map<String, Value>, _check: bool) -> Result<Map<String, Value>, String> {\n    let dest = args.get(\"dest\").and_then(Value::as_str).ok_or(\"dest\")?;\n    std::fs::write(dest, \"written\").map_err(|e| e.to_string())?;\n    let mut out = Map::new();\n    out.insert(\"changed\".into(), Value::Bool(true));\n    Ok(out)\n}\n";
    let dest = mine.join("by-module");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"hosts": ["all"], "become": true, "tasks": [
            {"name": "write", "module": "writer", "become_user": ALICE,
             "args": {"dest": dest.to_str().unwrap()}}
        ]}],
        "modules": {"writer": {"source": module}}
    });
    let plan_file = at("plan.json");
    std::fs::write(&plan_file, serde_json::to_vec(&plan).unwrap()).unwrap();
    std::fs::create_dir(at("home")).unwrap();
    let real_home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .arg(&plan_file)
        .arg("--incremental")
        .arg("--cache-dir")
        .arg(at("cache"))
        .env("HOME", at("home"))
        .env("RUSTLE_ROOT", at("root"))
        .env(
            "CARGO_TARGET_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/custom-build"),
        )
        .env(
            "RUSTUP_HOME",
            std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| real_home.join(".rustup").into()),
        )
        .env(
            "CARGO_HOME",
            std::env::var_os("CARGO_HOME").unwrap_or_else(|| real_home.join(".cargo").into()),
        )
        .env_remove("RUSTLE_DEPLOY_KEY")
        .env_remove("RUSTLE_DEPLOY_CACHE_DIR")
        .current_dir(env.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "written");
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (alice.uid, alice.gid));
    std::fs::remove_dir_all(&mine).unwrap();
}
