//! End to end: an existing-Ansible-style project (inventory with groups and children,
//! group_vars/ file and directory, host_vars/ with an inline `!vault` value, a vaulted
//! vars file, group_vars file and role file, a role with defaults, templates and handlers) deployed
//! to local hosts with `--limit`, first and second run, directly and through
//! `plan | rustle-deploy -`.
//!
//! The expected files, modes and recap counts are those `ansible-playbook` (ansible-core
//! 2.x) gives for the same project and limit. Needs the native runner (`cargo xtask
//! runners --native`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const RUNNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/runners/x86_64-unknown-linux-musl/rustle-runner"
);
const PROJECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ansible_project"
);

/// A copy of the project whose inventory points every host's state and output into it.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        assert!(
            Path::new(RUNNER).exists(),
            "no prebuilt runner at {RUNNER}: run `cargo xtask runners --native`"
        );
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new(PROJECT), dir.path());
        let inv = dir.path().join("hosts.ini");
        let text = std::fs::read_to_string(&inv).unwrap();
        let root = dir.path().display().to_string();
        std::fs::write(&inv, text.replace("@ROOT@", &root)).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Project { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
        c.args(args)
            .env("HOME", self.path("home"))
            .env_remove("RUSTLE_DEPLOY_KEY")
            .env_remove("RUSTLE_RUNNER_DIR")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `plan ... | rustle-deploy ... -`.
    fn pipe(&self, plan_args: &[&str], deploy_args: &[&str]) -> Output {
        let plan = self.run(plan_args);
        assert!(plan.status.success(), "{}", text(&plan));
        let mut child = self
            .command(deploy_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&plan.stdout).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Every file and directory under `out/`: relative path, mode, content.
    fn outputs(&self) -> BTreeMap<String, (u32, String)> {
        let mut found = BTreeMap::new();
        walk(&self.path("out"), &self.path("out"), &mut found);
        found
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        if p.is_dir() {
            out.insert(format!("{rel}/"), (mode, String::new()));
            walk(base, &p, out);
        } else {
            out.insert(rel, (mode, std::fs::read_to_string(&p).unwrap()));
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `host -> "ok=.. changed=.. failed=.."` from the recap lines.
fn recap(o: &Output) -> BTreeMap<String, String> {
    let stdout = String::from_utf8_lossy(&o.stdout);
    // Only the recap's lines: a task banner (`TASK [role : name]`) has " : " too.
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .filter_map(|l| {
            let (host, counts) = l.split_once(" : ")?;
            let keep: Vec<&str> = counts
                .split_whitespace()
                .filter(|c| {
                    ["ok=", "changed=", "failed="]
                        .iter()
                        .any(|k| c.starts_with(k))
                })
                .collect();
            Some((host.trim().to_string(), keep.join(" ")))
        })
        .collect()
}

fn expect_recap(o: &Output, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(h, c)| (h.to_string(), c.to_string()))
        .collect();
    assert_eq!(recap(o), want, "{}", text(o));
}

const APP_CONF: &str = "name=demo
port=9001
tier=web
env=production
greeting=from-group-vars-all
listen=ini-web
db_password=s3cret-db
web_secret=web-only-secret
host_secret=inline-pass-web1
";

/// What ansible-playbook leaves under out/ for `--limit web1:db1` (the `out/` directory
/// itself is created by the runner's `file` module as a missing parent: not compared).
fn expected() -> BTreeMap<String, (u32, String)> {
    [
        ("db1/", 0o755, ""),
        (
            "db1/summary.txt",
            0o640,
            "tier=prod env=production greeting=from-group-vars-all groups=db,prod\n",
        ),
        ("web1/", 0o755, ""),
        ("web1/app.conf", 0o600, APP_CONF),
        ("web1/restarted", 0o644, "restarted\n"),
        // A vault-encrypted role file, decrypted as Ansible's copy does.
        ("web1/secret.txt", 0o400, "api-key=abc123\n"),
        (
            "web1/summary.txt",
            0o640,
            "tier=web env=production greeting=from-group-vars-all groups=prod,web\n",
        ),
    ]
    .into_iter()
    .map(|(p, m, c)| (p.to_string(), (m, c.to_string())))
    .collect()
}

const DEPLOY: [&str; 7] = [
    "site.yml",
    "-i",
    "hosts.ini",
    "--vault-password-file",
    "vault-password",
    "--limit",
    "web1:db1",
];

#[test]
fn deploys_like_ansible_playbook_first_and_second_run() {
    let p = Project::new();
    let first = p.run(&DEPLOY);
    assert!(first.status.success(), "{}", text(&first));
    expect_recap(
        &first,
        &[
            ("web1", "ok=6 changed=5 failed=0"),
            ("db1", "ok=2 changed=2 failed=0"),
        ],
    );
    assert_eq!(p.outputs(), expected());
    // Outside the limit: nothing at all, not even the runner's state.
    assert!(!p.path("out/web2").exists());
    assert!(!p.path("state/web2").exists());
    assert!(p.path("state/web1").exists());

    let second = p.run(&DEPLOY);
    assert!(second.status.success(), "{}", text(&second));
    expect_recap(
        &second,
        &[
            ("web1", "ok=5 changed=0 failed=0"),
            ("db1", "ok=2 changed=0 failed=0"),
        ],
    );
    assert_eq!(p.outputs(), expected());
}

#[test]
fn plan_piped_to_deploy_gives_the_same_files() {
    let p = Project::new();
    let out = p.pipe(
        &[
            "plan",
            "site.yml",
            "-i",
            "hosts.ini",
            "--vault-password-file",
            "vault-password",
            "--limit",
            "web1:db1",
        ],
        &[
            "-i",
            "hosts.ini",
            "--vault-password-file",
            "vault-password",
            "-",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    expect_recap(
        &out,
        &[
            ("web1", "ok=6 changed=5 failed=0"),
            ("db1", "ok=2 changed=2 failed=0"),
        ],
    );
    assert_eq!(p.outputs(), expected());
    assert!(!p.path("state/web2").exists());
}

#[test]
fn playbook_side_vars_travel_in_the_plan() {
    // Inventory in its own directory: group_vars/ and host_vars/ now count as the
    // playbook's, so the plan must carry them for the deploy of `-` to see them.
    let p = Project::new();
    std::fs::create_dir_all(p.path("inventory")).unwrap();
    std::fs::rename(p.path("hosts.ini"), p.path("inventory/hosts.ini")).unwrap();
    let out = p.pipe(
        &[
            "plan",
            "site.yml",
            "--vault-password-file",
            "vault-password",
            "--limit",
            "web1:db1",
        ],
        &["-i", "inventory/hosts.ini", "-"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.outputs(), expected());
}

#[test]
fn refusals_name_the_problem() {
    let p = Project::new();
    // No password: the first vaulted file read is named, with the flag to use.
    let out = p.run(&["site.yml", "-i", "hosts.ini", "--limit", "web1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "is encrypted with Ansible Vault: give the password with --vault-password-file"
        ),
        "{err}"
    );

    std::fs::write(p.path("wrong"), "nope\n").unwrap();
    let out = p.run(&[
        "site.yml",
        "-i",
        "hosts.ini",
        "--vault-password-file",
        "wrong",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HMAC mismatch: wrong vault password for"),
        "{err}"
    );

    let mut args = DEPLOY.to_vec();
    args[6] = "nosuch*";
    let out = p.run(&args);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--limit 'nosuch*' matches no host of the inventory"),
        "{}",
        text(&out)
    );
    assert!(!p.path("out").exists());
}

#[test]
fn serial_rolls_and_stops_after_a_failed_batch() {
    let p = Project::new();
    std::fs::write(
        p.path("rolling.yml"),
        "- hosts: all\n  serial: 1\n  max_fail_percentage: 0\n  gather_facts: false\n  tasks:\n    - file: path={{ out_dir }}/{{ inventory_hostname }} state=directory\n    - fail: msg=boom\n      when: inventory_hostname == 'web1'\n",
    )
    .unwrap();
    let out = p.run(&[
        "rolling.yml",
        "-i",
        "hosts.ini",
        "--vault-password-file",
        "vault-password",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // web1 is the first batch; it failed, so no other host was touched.
    assert!(p.path("out/web1").is_dir(), "{}", text(&out));
    assert!(!p.path("out/web2").exists(), "{}", text(&out));
    assert!(!p.path("out/db1").exists(), "{}", text(&out));

    // Without the failure every host is deployed, one at a time.
    let out = p.run(&[
        "rolling.yml",
        "-i",
        "hosts.ini",
        "--vault-password-file",
        "vault-password",
        "--limit",
        "all:!web1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(p.path("out/web2").is_dir() && p.path("out/db1").is_dir());
}

#[test]
fn extra_vars_on_a_direct_deploy() {
    let p = Project::new();
    std::fs::write(p.path("prod.yml"), "env_name: from-file\n").unwrap();
    let out = p.run(&[
        "site.yml",
        "-i",
        "hosts.ini",
        "--vault-password-file",
        "vault-password",
        "--limit",
        "~db",
        "-e",
        "greeting=from-cli tier=x",
        "-e",
        "@prod.yml",
        "-e",
        r#"{"tier": "json"}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(p.path("out/db1/summary.txt")).unwrap(),
        "tier=json env=from-file greeting=from-cli groups=db,prod\n"
    );
    assert!(!p.path("out/web1").exists());
}

#[test]
fn inventory_side_vars_apply_to_a_plan_file() {
    // group_vars/ and host_vars/ beside the inventory only: the plan carries none of them,
    // the deployer reads them with the inventory.
    let p = Project::new();
    std::fs::create_dir_all(p.path("inventory")).unwrap();
    for f in ["hosts.ini", "group_vars", "host_vars"] {
        std::fs::rename(p.path(f), p.path(&format!("inventory/{f}"))).unwrap();
    }
    let plan = p.run(&[
        "plan",
        "site.yml",
        "--vault-password-file",
        "vault-password",
        "-o",
        "plan.json",
    ]);
    assert!(plan.status.success(), "{}", text(&plan));
    let written = std::fs::read_to_string(p.path("plan.json")).unwrap();
    assert!(!written.contains(".rustle/inventory.json"), "{written}");
    assert!(!written.contains("from-group-vars-all"), "{written}");
    let out = p.run(&[
        "plan.json",
        "-i",
        "inventory/hosts.ini",
        "--vault-password-file",
        "vault-password",
        "--limit",
        "web1,db1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.outputs(), expected());
}
