//! End-to-end tests of plans with custom Rust modules: the `rustle-deploy` binary builds
//! a custom runner with real cargo, deploys it locally, takes it from the cache the
//! second time (a `cargo` that fails loudly stands in for the real one then), and
//! reports a module that does not compile by its name and line, touching nothing. It
//! also builds one for aarch64 and runs it under qemu-aarch64-static, and falls back to
//! SSH mode after a failed build only when allowed.
//!
//! Builds share one cargo target directory (`target/custom-build`) so dependencies
//! compile once per checkout; the first build on a fresh machine takes minutes. The
//! aarch64 and `--incremental` builds share nothing with it (another triple, another
//! profile) and have directories of their own, so that cargo's lock on a target
//! directory does not make them wait for it: the test threads build side by side.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const UPPERCASE: &str = include_str!("../../examples/modules/uppercase.rs");
const TARGET_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/custom-build");

/// A module that panics when asked to: custom runners unwind, so only its task fails.
const EXPLODE: &str = r#"
use serde_json::{Map, Value};

pub fn run(args: &Map<String, Value>, _check_mode: bool) -> Result<Map<String, Value>, String> {
    if args.get("boom") == Some(&Value::Bool(true)) {
        panic!("asked to explode");
    }
    Ok(Map::new())
}
"#;

/// A private home, state root and cache for one test, and the cargo target directory
/// its builds use.
struct Env {
    dir: tempfile::TempDir,
    target_dir: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Env {
            dir,
            target_dir: TARGET_DIR.to_string(),
        }
    }

    /// This test's builds in `target/<name>` instead of the shared directory.
    fn with_target_dir(mut self, name: &str) -> Env {
        self.target_dir = format!("{}/../target/{name}", env!("CARGO_MANIFEST_DIR"));
        self
    }

    /// An environment with the uppercase example module at `mods/uppercase.rs`.
    fn with_uppercase() -> Env {
        let env = Env::new();
        std::fs::create_dir_all(env.path("mods")).unwrap();
        std::fs::write(env.path("mods/uppercase.rs"), UPPERCASE).unwrap();
        env
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs rustle-deploy with this test's home, state root and cache. The toolchain is
    /// the real one (rustup and cargo find theirs through RUSTUP_HOME/CARGO_HOME, since
    /// HOME is the test's). `fake_cargo`: a `cargo` that records being run and fails,
    /// first on PATH and in $CARGO.
    fn deploy(&self, args: &[&str], fake_cargo: bool) -> Output {
        let real_home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
        cmd.args(args)
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .env("HOME", self.path("home"))
            .env("RUSTLE_ROOT", self.path("root"))
            .env("CARGO_TARGET_DIR", &self.target_dir)
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
            .current_dir(self.dir.path());
        if fake_cargo {
            let bin = self.path("fake-bin");
            std::fs::create_dir_all(&bin).unwrap();
            let cargo = bin.join("cargo");
            std::fs::write(
                &cargo,
                format!(
                    "#!/bin/sh\ntouch '{}'\necho fake cargo ran >&2\nexit 101\n",
                    self.path("cargo-ran").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![bin];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).unwrap())
                .env("CARGO", &cargo);
        }
        cmd.output().unwrap()
    }

    fn write_json(&self, name: &str, v: &Value) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// (task name, status, msg) of localhost from a `--report` file.
fn tasks(report: &Path) -> Vec<(String, String, String)> {
    let r: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    r["hosts"]["localhost"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_string(),
                t["status"].as_str().unwrap_or_default().to_string(),
                t["result"]["msg"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn cached_runners(env: &Env) -> usize {
    std::fs::read_dir(env.path("cache/runners")).map_or(0, |d| d.count())
}

#[test]
fn a_custom_module_is_built_once_then_taken_from_the_cache() {
    let env = Env::with_uppercase();
    let dest = env.path("shout.txt");
    let plan = |text: &str| {
        json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"name": "custom", "hosts": ["all"], "tasks": [
                {"name": "shout", "module": "uppercase", "register": "out",
                 "args": {"text": text, "dest": dest.to_str().unwrap()}},
                {"name": "registered", "module": "assert",
                 "args": {"that": ["out.dest == '{}'".replace("{}", dest.to_str().unwrap())]}},
                {"name": "explode", "module": "explode", "args": {"boom": true}, "ignore_errors": true},
                {"name": "after", "module": "explode", "args": {}}
            ]}],
            "modules": {"uppercase": {"path": "mods/uppercase.rs"}, "explode": {"source": EXPLODE}}
        })
    };
    let plan_file = env.write_json("plan.json", &plan("hello {{ inventory_hostname }}"));
    let plan_arg = plan_file.to_str().unwrap();

    // A dry run says what will be built, and builds nothing.
    let out = env.deploy(&[plan_arg, "--dry-run"], true);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(modules: explode, uppercase) replaces the prebuilt one"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("not built yet"));
    assert!(!env.path("cargo-ran").exists());

    let started = Instant::now();
    let out = env.deploy(&[plan_arg, "--report", "r1.json"], false);
    let first = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(code(&out), 0, "{}\n{err}", text(&out.stdout));
    assert!(
        err.contains("built custom x86_64-unknown-linux-musl runner (modules: explode, uppercase)"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "HELLO LOCALHOST");
    let t = tasks(&env.path("r1.json"));
    assert_eq!((t[0].0.as_str(), t[0].1.as_str()), ("shout", "changed"));
    assert_eq!(t[1].1, "ok", "{t:?}");
    assert_eq!(t[2].1, "failed", "{t:?}");
    assert_eq!(t[2].2, "custom module 'explode' panicked: asked to explode");
    assert_eq!(
        (t[3].0.as_str(), t[3].1.as_str()),
        ("after", "ok"),
        "the run went on"
    );
    assert_eq!(cached_runners(&env), 1);
    assert_eq!(
        std::fs::read_dir(env.path("cache/build")).unwrap().count(),
        0,
        "the project is removed once its runner is cached"
    );

    // Same modules: the cache answers and cargo is never started (the fake one would
    // leave a mark and fail the deploy). The module is idempotent: ok, not changed.
    let started = Instant::now();
    let out = env.deploy(&[plan_arg, "--report", "r2.json"], true);
    let second = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(code(&out), 0, "{}\n{err}", text(&out.stdout));
    assert!(!env.path("cargo-ran").exists(), "cargo was run: {err}");
    assert!(
        err.contains("runner (modules: explode, uppercase) from cache"),
        "{err}"
    );
    let out = env.deploy(&[plan_arg, "--dry-run"], true);
    assert!(
        text(&out.stdout).contains("(cached, "),
        "{}",
        text(&out.stdout)
    );
    let t = tasks(&env.path("r2.json"));
    assert_eq!((t[0].0.as_str(), t[0].1.as_str()), ("shout", "ok"), "{t:?}");

    // Other arguments, same modules: still cached; check mode reports and writes nothing.
    env.write_json("plan.json", &plan("bye"));
    let out = env.deploy(&[plan_arg, "--check", "--report", "r3.json"], true);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(!env.path("cargo-ran").exists());
    assert_eq!(tasks(&env.path("r3.json"))[0].1, "changed");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "HELLO LOCALHOST");

    // --rebuild ignores the cache: the fake cargo runs and its failure is reported.
    let out = env.deploy(&[plan_arg, "--rebuild"], true);
    assert_ne!(code(&out), 0);
    assert!(env.path("cargo-ran").exists());
    assert!(
        text(&out.stderr).contains("fake cargo ran"),
        "{}",
        text(&out.stderr)
    );

    eprintln!(
        "custom runner: first deploy (build) {:.1}s, second deploy (cached) {:.2}s",
        first.as_secs_f64(),
        second.as_secs_f64()
    );
}

#[test]
fn a_module_that_does_not_compile_is_named_with_its_line_and_nothing_runs() {
    let env = Env::new();
    let marker = env.path("touched");
    let broken = "use serde_json::{Map, Value};\n\npub fn run(args: &Map<String, Value>, _check: bool) -> Result<Map<String, Value>, String> {\n    let n: u32 = \"not a number\";\n    Ok(args.clone())\n}\n";
    let plan = env.write_json(
        "plan.json",
        &json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"hosts": ["all"], "tasks": [
                {"name": "first", "module": "file", "args": {"path": marker.to_str().unwrap(), "state": "touch"}},
                {"name": "broken", "module": "broken", "args": {}}
            ]}],
            "modules": {"broken": {"source": broken}}
        }),
    );
    let out = env.deploy(&[plan.to_str().unwrap()], false);
    let err = text(&out.stderr);
    assert_eq!(code(&out), 4, "bad input: {err}");
    assert!(
        err.contains("custom module 'broken' does not compile for x86_64-unknown-linux-musl"),
        "{err}"
    );
    assert!(
        err.contains("module 'broken' line 4, column 18: mismatched types"),
        "{err}"
    );
    assert!(
        err.contains("<module broken>:4:18"),
        "the compiler's own rendering: {err}"
    );
    assert!(!marker.exists(), "no task may run");
    assert!(!env.path("root").exists(), "no host may be touched");
    assert_eq!(cached_runners(&env), 0, "nothing is cached");
    let kept = std::fs::read_dir(env.path("cache/build"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(kept.path().join("custom/src/modules/broken.rs")).unwrap(),
        broken,
        "a failed project is kept for a look"
    );
}

#[test]
fn incremental_builds_reuse_one_project_and_take_each_change() {
    // --incremental builds every module set in one project directory, rewriting only
    // what changed: each change must still reach its runner, and a module that left the
    // plan must leave the project.
    let env = Env::new().with_target_dir("custom-build-incremental");
    let dest = env.path("inc.txt");
    let module = |greeting: &str| {
        format!(
            "use serde_json::{{Map, Value}};\n\npub fn run(args: &Map<String, Value>, _check: bool) -> Result<Map<String, Value>, String> {{\n    let dest = args.get(\"dest\").and_then(Value::as_str).ok_or(\"dest\")?;\n    std::fs::write(dest, \"{greeting}\").map_err(|e| e.to_string())?;\n    let mut out = Map::new();\n    out.insert(\"changed\".into(), Value::Bool(true));\n    Ok(out)\n}}\n"
        )
    };
    let plan = |greeting: &str, extra: bool| {
        let mut modules = json!({"greet": {"source": module(greeting)}});
        if extra {
            modules["explode"] = json!({"source": EXPLODE});
        }
        json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"hosts": ["all"], "tasks": [
                {"name": "greet", "module": "greet", "args": {"dest": dest.to_str().unwrap()}}
            ]}],
            "modules": modules
        })
    };
    let project = env.path("cache/build/incremental/custom/src/modules");
    for (greeting, extra) in [("one", true), ("two", false), ("three", false)] {
        let p = env.write_json("plan.json", &plan(greeting, extra));
        let out = env.deploy(&[p.to_str().unwrap(), "--incremental"], false);
        let err = text(&out.stderr);
        assert_eq!(code(&out), 0, "{greeting}: {err}");
        assert!(err.contains("built custom"), "{err}");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), greeting);
        let mut files: Vec<String> = std::fs::read_dir(&project)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let want: &[&str] = if extra {
            &["explode.rs", "greet.rs"]
        } else {
            &["greet.rs"]
        };
        assert_eq!(files, want, "{greeting}");
    }
    // Each set of modules was cached under its own digest, and the project stays.
    assert_eq!(cached_runners(&env), 3);
    assert!(project.exists());
}

#[test]
fn a_custom_module_builds_for_aarch64_and_runs_there() {
    // The host's triple decides what is built: here aarch64 Linux, run under
    // qemu-aarch64-static (user-mode emulation; `.ci/run` installs qemu-user-static)
    // as an operator would run the packed file on such a host.
    let env = Env::with_uppercase().with_target_dir("custom-build-aarch64");
    let dest = env.path("arm.txt");
    let plan = env.write_json(
        "plan.json",
        &json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"hosts": ["all"], "tasks": [
                {"name": "shout", "module": "uppercase",
                 "args": {"text": "arm says {{ inventory_hostname }}", "dest": dest.to_str().unwrap()}}
            ]}],
            "modules": {"uppercase": {"path": "mods/uppercase.rs"}}
        }),
    );
    let out_dir = env.path("out");
    let out = env.deploy(
        &[
            plan.to_str().unwrap(),
            "--target",
            "aarch64-unknown-linux-musl",
            "--compile-only",
            "-o",
            out_dir.to_str().unwrap(),
        ],
        false,
    );
    let err = text(&out.stderr);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("custom aarch64-unknown-linux-musl runner (modules: uppercase)"),
        "{err}"
    );
    let packed = out_dir.join("localhost");
    let head = std::fs::read(&packed).unwrap();
    // An ELF for the Arm64 machine (e_machine 183 at offset 18).
    assert_eq!(&head[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([head[18], head[19]]), 183);
    let run = Command::new("qemu-aarch64-static")
        .arg(&packed)
        .arg("--trusted-key")
        .arg(env.path("home/.rustle/keys/deploy.key.pub"))
        .env_clear()
        .env("HOME", env.path("home"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("qemu-aarch64-static (apt-get install qemu-user-static)");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "ARM SAYS LOCALHOST"
    );
}

#[test]
fn a_failed_build_falls_back_to_ssh_mode_only_when_allowed() {
    let env = Env::new();
    let marker = env.path("touched");
    let plan = env.write_json(
        "plan.json",
        &json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"hosts": ["all"], "tasks": [
                {"name": "first", "module": "file", "args": {"path": marker.to_str().unwrap(), "state": "touch"}},
                {"name": "custom", "module": "explode", "args": {}},
                {"name": "after", "module": "debug", "args": {"msg": "not reached"}}
            ]}],
            "modules": {"explode": {"source": EXPLODE}}
        }),
    );
    let report = env.path("report.json");
    let args = [plan.to_str().unwrap(), "--report", report.to_str().unwrap()];
    // A cargo that fails: unless fallback is allowed, nothing runs, and the way out is
    // named.
    let out = env.deploy(&args, true);
    let err = text(&out.stderr);
    assert_ne!(code(&out), 0, "{err}");
    assert!(err.contains("building the custom"), "{err}");
    assert!(err.contains("--fallback-ssh"), "{err}");
    assert!(!marker.exists(), "no task may run");
    // Allowed, the host's tasks run in SSH mode (through a local shell here): the plain
    // ones work, the custom module's task fails naming it, and the host stops there.
    let mut with = args.to_vec();
    with.push("--fallback-ssh");
    let out = env.deploy(&with, true);
    let err = text(&out.stderr);
    assert_eq!(code(&out), 2, "a task failed: {err}{}", text(&out.stdout));
    assert!(
        err.contains("runner could not be built (--fallback-ssh); its tasks run over SSH"),
        "{err}"
    );
    assert!(marker.exists(), "the plain task ran");
    let t = tasks(&report);
    assert_eq!((t[0].0.as_str(), t[0].1.as_str()), ("first", "changed"));
    assert_eq!((t[1].0.as_str(), t[1].1.as_str()), ("custom", "failed"));
    assert!(t[1].2.contains("explode"), "{:?}", t[1]);
    assert_eq!(t.len(), 2, "{t:?}");
}

#[test]
fn module_names_and_uses_are_checked_before_any_build() {
    let env = Env::new();
    let deploy = |plan: Value| {
        let p = env.write_json("plan.json", &plan);
        env.deploy(&[p.to_str().unwrap()], true)
    };
    let plan = |modules: Value, module: &str| {
        json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"hosts": ["all"], "tasks": [{"module": module, "args": {}}]}],
            "modules": modules
        })
    };
    // A built-in's name, a name that is no Rust identifier, an unreadable file.
    for (modules, module, expected) in [
        (
            json!({"copy": {"source": ""}}),
            "copy",
            "custom module 'copy': the runner has a built-in module of that name",
        ),
        (
            json!({"my-mod": {"source": ""}}),
            "my-mod",
            "custom module 'my-mod': a module name is lower-case",
        ),
        (
            json!({"gone": {"path": "nope.rs"}}),
            "gone",
            "custom module 'gone': cannot read",
        ),
        (
            json!({"mine": {"source": ""}}),
            "theirs",
            "module 'theirs' is neither the runner's nor one Ansible ships (ansible-core 2.18 and the ansible 11 collections; the runner's: ",
        ),
    ] {
        let out = deploy(plan(modules, module));
        let err = text(&out.stderr);
        assert_eq!(code(&out), 4, "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let out = deploy(plan(json!({"mine": {"source": ""}}), "theirs"));
    assert!(
        text(&out.stderr).contains(", mine)"),
        "custom names are listed"
    );
    assert!(!env.path("cargo-ran").exists(), "no build was attempted");
    assert!(!env.path("root").exists());
}
