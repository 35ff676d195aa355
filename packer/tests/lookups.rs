//! End-to-end: lookups and `with_<lookup>` loops through the real `rustle-deploy` binary
//! and the prebuilt runner. Controller lookups are answered on the deploying machine and
//! replayed by the runner, also when a `--compile-only` runner is run by hand elsewhere.
//!
//! They need the native runner that `cargo xtask runners --native` builds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RUNNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/runners/x86_64-unknown-linux-musl/rustle-runner"
);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        assert!(
            Path::new(RUNNER).exists(),
            "no prebuilt runner at {RUNNER}: run `cargo xtask runners --native`"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn deploy(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
            .args(args)
            .env("HOME", self.path("home"))
            .env("RUSTLE_ROOT", self.path("root"))
            .env("RUSTLE_E2E_WORD", "from-the-controller")
            .env_remove("RUSTLE_DEPLOY_KEY")
            .env_remove("RUSTLE_RUNNER_DIR")
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

const PLAYBOOK: &str = r#"
- hosts: localhost
  gather_facts: false
  vars:
    users:
      - {name: ann, keys: [k1, k2]}
      - {name: bob, keys: [k3]}
  tasks:
    - copy:
        dest: "{{ out }}/pipe.txt"
        content: "{{ lookup('pipe', 'echo $RUSTLE_E2E_WORD') }}|{{ lookup('env', 'RUSTLE_E2E_WORD') }}"
    - copy: dest="{{ out }}/seq-{{ item }}" content=x
      with_sequence: start=2 end=6 stride=2 format=n%02d
    - copy: dest="{{ out }}/sub-{{ item.0.name }}-{{ item.1 }}" content=x
      with_subelements:
        - "{{ users }}"
        - keys
    - copy: dest="{{ out }}/line-{{ item }}" content=x
      with_lines: printf 'a\nb\n'
    - copy:
        dest: "{{ out }}/password.txt"
        content: "{{ lookup('password', 'creds/app length=12 chars=digits') }}"
    - command: echo host-side
      register: r
      changed_when: false
    - debug: msg="{{ lookup('pipe', 'echo ' + r.stdout) }}"
      ignore_errors: true
"#;

#[test]
fn lookups_and_with_loops_run_as_in_ansible() {
    let env = Env::new();
    std::fs::write(env.path("site.yml"), PLAYBOOK).unwrap();
    let out_dir = env.path("out");
    let extra = format!("out={}", out_dir.display());
    let report = env.path("report.json");
    let out = env.deploy(&[
        "site.yml",
        "-e",
        &extra,
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        env.read("out/pipe.txt"),
        "from-the-controller|from-the-controller"
    );
    for name in [
        "seq-n02",
        "seq-n04",
        "seq-n06",
        "sub-ann-k1",
        "sub-ann-k2",
        "sub-bob-k3",
        "line-a",
        "line-b",
    ] {
        assert!(out_dir.join(name).exists(), "{name}");
    }
    // The password file is the controller's, next to the playbook, and the host got it.
    let stored = env.read("creds/app");
    assert_eq!(stored.len(), 13);
    assert!(stored.trim_end().chars().all(|c| c.is_ascii_digit()));
    assert_eq!(env.read("out/password.txt"), stored.trim_end());
    // A call whose arguments come from the host is asked of the controller over the
    // channel and runs there, as Ansible runs every lookup.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let tasks = report["hosts"]["localhost"]["tasks"].as_array().unwrap();
    let debug = tasks.iter().find(|t| t["module"] == "debug").unwrap();
    assert_eq!(debug["result"]["msg"], "host-side", "{debug}");
}

/// A runner copied with `--compile-only` and run by hand (an air-gapped host) answers
/// controller lookups from its payload: the deploying machine's values.
#[test]
fn a_runner_run_by_hand_answers_from_its_payload() {
    let env = Env::new();
    std::fs::write(
        env.path("site.yml"),
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - copy:\n        dest: \"{{ out }}/env.txt\"\n        content: \"{{ lookup('env', 'RUSTLE_E2E_WORD') }}\"\n",
    )
    .unwrap();
    let extra = format!("out={}", env.path("out").display());
    let bins = env.path("bins");
    let out = env.deploy(&[
        "site.yml",
        "-e",
        &extra,
        "--compile-only",
        "-o",
        bins.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row = text(&out.stdout);
    let fields: Vec<&str> = row.lines().next().unwrap().split('\t').collect();
    let (digest, bin) = (fields[1], PathBuf::from(fields[2]));
    let pubkey = format!("{}.pub", env.path("home/.rustle/keys/deploy.key").display());
    // The hand run has no RUSTLE_E2E_WORD: the value comes from the payload.
    let run = Command::new(&bin)
        .args(["--trusted-key", &pubkey, "--expect", digest])
        .env_clear()
        .env("HOME", env.path("home"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    assert_eq!(env.read("out/env.txt"), "from-the-controller");
}
